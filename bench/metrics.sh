#!/usr/bin/env bash
# bench/metrics.sh - what the metrics module costs a request
#
#   bench/metrics.sh
#
# Builds a release plexusd and the metrics module (no sanitizers), starts a
# throw-away PostgreSQL and two plexusd side by side, identical but for
# one thing: "with" loads the metrics module (every request then goes
# through its request.end hook: a counter and a histogram), "without" does
# not load it. wrk (THREADS threads, DURATION each) then alternates between
# them, ROUNDS times at each connection count, against GET /health/live,
# so both see the same machine state; only one server is under load at a
# time. Prints each run, the median req/s and p99 of each side, and the
# ratio with/without. Finally it scrapes "with" and compares its count of
# /health/live requests with what wrk reported.
#
# Environment: DURATION (10s), CONNECTIONS ("50"), ROUNDS (3), THREADS (2),
# BUILD (build/bench: the build folder, shared with bench/run.sh).
set -euo pipefail

cd "$(dirname "$0")/.."
src=$PWD
build=${BUILD:-$src/build/bench}
duration=${DURATION:-10s}
connections=${CONNECTIONS:-50}
rounds=${ROUNDS:-3}
threads=${THREADS:-2}

# shellcheck source=bench/lib.sh
. "$src/bench/lib.sh"
bench_build plexusd modules/metrics/metrics.la
bench_setup metrics
bench_postgres "$build/pg-metrics"

# ---- two servers ----------------------------------------------------------------
# start_server NAME LOAD_METRICS: sets server_port (not in a subshell, so
# that the pid lands in pids and cleanup stops it)
start_server() {
    local name=$1 load=$2 port dir=$tmp/$1
    port=$(free_port)
    mkdir -p "$dir/plugins.d"
    dropdb --if-exists "plexus_bench_$name" 2>/dev/null
    createdb "plexus_bench_$name"
    cat >"$dir/plexus.conf" <<EOF
[server]
listen = 127.0.0.1:$port
data_dir = $src
plugins_dir = $dir/plugins.d
access_log = no
dev_mode = yes
[log]
level = warn
[database]
url = host=$PGHOST port=$PGPORT user=$PGUSER dbname=plexus_bench_$name
EOF
    cat >"$dir/plugins.d/metrics.conf" <<EOF
[module]
load = $load
path = $build/modules/metrics/.libs/metrics.so
EOF
    "$build/plexusd" --config "$dir/plexus.conf" >"$dir/plexusd.log" 2>&1 &
    pids+=($!)
    wait_http "http://127.0.0.1:$port/health/live" || { cat "$dir/plexusd.log"; exit 1; }
    server_port=$port
}

start_server without no
port_without=$server_port
start_server with yes
port_with=$server_port
curl -fsS -o /dev/null "http://127.0.0.1:$port_with/metrics" \
    || { echo "bench: the metrics module did not load" >&2; exit 1; }
if curl -fsS -o /dev/null "http://127.0.0.1:$port_without/metrics" 2>/dev/null; then
    echo "bench: /metrics answers on the server without the module" >&2
    exit 1
fi

# ---- the runs --------------------------------------------------------------------
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

declare -A rps p99
wrk_requests=0
echo "metrics module overhead: GET /health/live, wrk $threads threads, $duration per run"
for c in $connections; do
    for r in $(seq 1 "$rounds"); do
        for side in without with; do
            port=port_$side
            out=$(timeout 120 wrk -t"$threads" -c"$c" -d"$duration" --timeout 5s \
                      -s "$src/bench/report.lua" "http://127.0.0.1:${!port}/health/live") || true
            line=$(echo "$out" | grep '^RESULT' || echo "RESULT 0 0 0 0 0 -1 -1")
            read -r _ r_rps _ _ r_p99 _ r_err r_non2xx <<<"$line"
            if [ "$side" = with ]; then
                n=$(echo "$out" | awk '/requests in/ { print $1 }')
                wrk_requests=$(( wrk_requests + ${n:-0} ))
            fi
            printf '  c=%-5s round %d  %-8s %9s req/s  p99 %7s ms  errors %s non-2xx %s\n' \
                "$c" "$r" "$side" "$r_rps" "$r_p99" "$r_err" "$r_non2xx"
            rps[$c,$side]="${rps[$c,$side]:-} $r_rps"
            p99[$c,$side]="${p99[$c,$side]:-} $r_p99"
            sleep 1
        done
    done
done

echo
printf '%-6s %14s %14s %12s %12s %14s\n' conns "without req/s" "with req/s" \
    "without p99" "with p99" "ratio (with/without)"
for c in $connections; do
    a=$(echo ${rps[$c,without]} | tr ' ' '\n' | median)
    b=$(echo ${rps[$c,with]} | tr ' ' '\n' | median)
    pa=$(echo ${p99[$c,without]} | tr ' ' '\n' | median)
    pb=$(echo ${p99[$c,with]} | tr ' ' '\n' | median)
    ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", (a > 0 ? b / a : 0) }')
    printf '%-6s %14s %14s %9s ms %9s ms %14s\n' "$c" "$a" "$b" "$pa" "$pb" "$ratio"
done

counted=$(curl -fsS "http://127.0.0.1:$port_with/metrics" \
    | awk '/^plexus_http_requests_total\{route="\/health\/live",method="GET",code_class="2xx"\}/ { print $2 }')
echo
echo "the \"with\" server counted ${counted:-0} GET /health/live 2xx; wrk saw $wrk_requests complete"
echo "(the server's count may be higher by the requests still in flight when each wrk run stopped, plus 1 readiness probe)"
echo "machine: $(nproc) cores, $(uname -r); wrk $threads threads on the same cores"
