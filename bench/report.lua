-- report.lua - wrk script: after the run, print one machine-readable line
--
--   RESULT <req/s> <p50 ms> <p90 ms> <p99 ms> <max ms> <errors> <non-2xx>
--
-- wrk's own summary stays above it for people; bench/run.sh reads this line.
-- errors counts connect, read, write and timeout errors; non-2xx the
-- responses whose status was not 2xx or 3xx.

done = function(summary, latency, requests)
   local seconds = summary.duration / 1e6
   local e = summary.errors
   io.write(string.format("RESULT %.0f %.3f %.3f %.3f %.3f %d %d\n",
      summary.requests / seconds,
      latency:percentile(50) / 1000,
      latency:percentile(90) / 1000,
      latency:percentile(99) / 1000,
      latency.max / 1000,
      e.connect + e.read + e.write + e.timeout,
      e.status))
end
