#!/usr/bin/env bash
# bench/run.sh - throughput and tail latency of plexusd beside nginx
#
#   bench/run.sh
#
# Builds a release plexusd (no sanitizers) in build/bench, starts a
# throw-away PostgreSQL, plexusd with the example module, and nginx
# answering a fixed {"status":"ok"} as the yardstick, each on its own
# loopback port, then runs wrk (2 threads, DURATION each) at 50 and 1000
# connections against:
#   nginx            GET /               (the ceiling on this machine)
#   plexusd          GET /health/live    (the HTTP path, no module)
#   plexusd          GET /api/v1/example/hello   (router, hook, module, JSON)
# and prints a table of req/s and latency percentiles. Loopback only; every
# run is bounded; everything started is stopped on exit.
#
# Environment: DURATION (default 10s), CONNECTIONS (default "50 1000"),
# THREADS (wrk threads, default 2), ACCESS_LOG (yes|no, default no: a log
# line per request measures the disk more than the server).
set -euo pipefail

cd "$(dirname "$0")/.."
src=$PWD
build=$src/build/bench
duration=${DURATION:-10s}
connections=${CONNECTIONS:-50 1000}
threads=${THREADS:-2}
access_log=${ACCESS_LOG:-no}

# shellcheck source=bench/lib.sh
. "$src/bench/lib.sh"
bench_build plexusd tests/plugins/example.la
bench_setup run
bench_postgres "$build/pg" plexus_bench

# ---- plexusd -------------------------------------------------------------------
plx_port=$(free_port)
mkdir -p "$tmp/plexus/plugins.d"
cat >"$tmp/plexus/plexus.conf" <<EOF
[server]
listen = 127.0.0.1:$plx_port
data_dir = $src
plugins_dir = $tmp/plexus/plugins.d
access_log = $access_log
# throw-away signing keys: nothing here is authenticated
dev_mode = yes
[log]
level = warn
[database]
url = host=$PGHOST port=$PGPORT user=$PGUSER dbname=plexus_bench
[ratelimit]
# one client address sends everything: keep the limiter in the path, with a
# limit wrk cannot reach
default = 1000000000/1s
EOF
cat >"$tmp/plexus/plugins.d/example.conf" <<EOF
[module]
load = yes
path = $build/tests/plugins/.libs/example.so
data_dir = $src/tests/plugins/example
EOF
"$build/plexusd" --config "$tmp/plexus/plexus.conf" >"$tmp/plexusd.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$plx_port/health/live" || { cat "$tmp/plexusd.log"; exit 1; }

# ---- nginx ----------------------------------------------------------------------
ngx_port=$(free_port)
mkdir -p "$tmp/nginx"
cat >"$tmp/nginx/nginx.conf" <<EOF
worker_processes auto;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $tmp/nginx/body;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    scgi_temp_path $tmp/nginx/scgi;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$ngx_port;
        location / {
            default_type application/json;
            return 200 '{"status":"ok"}';
        }
    }
}
EOF
nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -g 'daemon off;' &
pids+=($!)
wait_http "http://127.0.0.1:$ngx_port/" || { cat "$tmp/nginx/error.log"; exit 1; }

# ---- the runs --------------------------------------------------------------------
targets=(
    "nginx|http://127.0.0.1:$ngx_port/"
    "plexusd /health/live|http://127.0.0.1:$plx_port/health/live"
    "plexusd example/hello|http://127.0.0.1:$plx_port/api/v1/example/hello?name=bench"
)
results=()
for c in $connections; do
    for t in "${targets[@]}"; do
        name=${t%%|*}
        url=${t#*|}
        echo "==> $name, $c connections, $duration"
        out=$(timeout 120 wrk -t"$threads" -c"$c" -d"$duration" --timeout 5s \
                  -s "$src/bench/report.lua" "$url") || true
        echo "$out" | grep -v '^RESULT' | sed 's/^/    /'
        line=$(echo "$out" | grep '^RESULT' || echo "RESULT 0 0 0 0 0 -1 -1")
        results+=("$name|$c|${line#RESULT }")
        sleep 1
    done
done

echo
printf '%-24s %6s %10s %9s %9s %9s %9s %8s %8s\n' target conns "req/s" "p50 ms" \
    "p90 ms" "p99 ms" "max ms" errors non2xx
for r in "${results[@]}"; do
    IFS='|' read -r name c vals <<<"$r"
    read -r rps p50 p90 p99 max errs non2xx <<<"$vals"
    printf '%-24s %6s %10s %9s %9s %9s %9s %8s %8s\n' "$name" "$c" "$rps" "$p50" \
        "$p90" "$p99" "$max" "$errs" "$non2xx"
done
echo
echo "machine: $(nproc) cores, $(uname -r); wrk $threads threads on the same cores"
