#!/usr/bin/env bash
# bench/identity.sh - what identity costs a request: a login (argon2id) and
# the check of an access token on every authenticated request
#
#   bench/identity.sh
#
# Builds a release plexusd (no sanitizers) in BUILD_DIR, starts a throw-away
# PostgreSQL and plexusd with real keys (dev_mode = no) and rate limits off,
# registers one user, then measures:
#   login       POST /api/v1/auth/login, one at a time with curl (LOGINS
#               times): median and p99 of the whole round trip, which is
#               mostly argon2id (m=19 MiB, t=2); then wrk with LOGIN_CONNS
#               connections for the throughput the cores allow
#   verify      GET /api/v1/auth/me with a bearer token under wrk: JWT
#               signature check plus the one query that checks the session
#               and the user (and the handler's own query), next to
#               GET /health/live (no token, no query) as the baseline and
#               the same route with a forged signature (refused with 401
#               after the signature check, before any query: its non-2xx
#               count is expected)
# Loopback only; every run is bounded; everything started is stopped on exit.
#
# Environment: BUILD_DIR (default build/bench), DURATION (wrk, default 10s),
# CONNECTIONS (wrk for verify, default 50), LOGIN_CONNS (default 4),
# LOGINS (sequential logins, default 50), THREADS (wrk threads, default 2).
set -euo pipefail

cd "$(dirname "$0")/.."
src=$PWD
build=${BUILD_DIR:-$src/build/bench}
duration=${DURATION:-10s}
connections=${CONNECTIONS:-50}
login_conns=${LOGIN_CONNS:-4}
logins=${LOGINS:-50}
threads=${THREADS:-2}

# shellcheck source=bench/lib.sh
. "$src/bench/lib.sh"
bench_build plexusd
bench_setup identity
bench_postgres "$build/pg-identity" plexus_bench_identity

# median and p99 (nearest rank) of the numbers on stdin, in ms
percentiles() {
    sort -n | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "0 0"; exit }
        m = v[int((NR + 1) / 2)]; i = int(NR * 0.99 + 0.999); if (i > NR) i = NR
        printf "%.1f %.1f\n", m, v[i] }'
}


# ---- plexusd: real keys, made up for this run ------------------------------------
port=$(free_port)
base=http://127.0.0.1:$port
mkdir -p "$tmp/plexus/plugins.d"
umask 077
openssl rand -hex 32 >"$tmp/jwt_secret"
openssl rand -base64 32 >"$tmp/mfa_key"
umask 022
cat >"$tmp/plexus/plexus.conf" <<EOF
[server]
listen = 127.0.0.1:$port
data_dir = $src
plugins_dir = $tmp/plexus/plugins.d
access_log = no
dev_mode = no
[log]
level = warn
[database]
url = host=$PGHOST port=$PGPORT user=$PGUSER dbname=plexus_bench_identity
[auth]
jwt_secret_file = $tmp/jwt_secret
mfa_key_file = $tmp/mfa_key
login_ip_max_failures = 100000
[ratelimit]
enabled = no
[smtp]
url = smtp://127.0.0.1:9
tls = no
timeout = 1s
EOF
"$build/plexusd" --config "$tmp/plexus/plexus.conf" >"$tmp/plexusd.log" 2>&1 &
pids+=($!)
wait_http "$base/health/live" || { cat "$tmp/plexusd.log"; exit 1; }

# ---- one user ----------------------------------------------------------------------
email="bench.$$@example.test"
password="Bench-Harbor-Lantern-$RANDOM"
body="{\"email\":\"$email\",\"password\":\"$password\"}"
curl -fsS --max-time 10 -H 'Content-Type: application/json' -d "$body" \
    "$base/api/v1/auth/register" >/dev/null
token=$(curl -fsS --max-time 10 -H 'Content-Type: application/json' -d "$body" \
    "$base/api/v1/auth/login" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
[ -n "$token" ] || { echo "bench: login failed" >&2; cat "$tmp/plexusd.log"; exit 1; }

# ---- login, one at a time ------------------------------------------------------------
echo "==> login: $logins sequential requests"
for _ in $(seq 1 "$logins"); do
    curl -sS -o /dev/null --max-time 10 -w '%{http_code} %{time_total}\n' \
        -H 'Content-Type: application/json' -d "$body" "$base/api/v1/auth/login"
done >"$tmp/logins"
bad=$(awk '$1 != 200' "$tmp/logins" | wc -l)
read -r login_p50 login_p99 < <(awk '{ print $2 * 1000 }' "$tmp/logins" | percentiles)

# ---- wrk runs ------------------------------------------------------------------------
cat >"$tmp/login.lua" <<EOF
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
dofile("$src/bench/report.lua")
EOF

run_wrk() {   # name conns url [wrk args...]
    local name=$1 c=$2 url=$3 out line t=$threads
    shift 3
    [ "$t" -le "$c" ] || t=$c   # wrk wants connections >= threads
    echo "==> $name, $c connections, $duration"
    out=$(timeout 120 wrk -t"$t" -c"$c" -d"$duration" --timeout 5s "$@" "$url") || true
    echo "$out" | grep -v '^RESULT' | sed 's/^/    /'
    line=$(echo "$out" | grep '^RESULT' || echo "RESULT 0 0 0 0 0 -1 -1")
    results+=("$name|$c|${line#RESULT }")
    sleep 1
}

results=()
run_wrk "login (argon2id)" "$login_conns" "$base/api/v1/auth/login" -s "$tmp/login.lua"
run_wrk "GET /health/live" "$connections" "$base/health/live" -s "$src/bench/report.lua"
# the signature check alone: a token whose last signature character is
# changed is refused (401) before any query
forged=${token%?}
[ "${token: -1}" = A ] && forged+=B || forged+=A
run_wrk "GET /auth/me bad sig" "$connections" "$base/api/v1/auth/me" \
    -H "Authorization: Bearer $forged" -s "$src/bench/report.lua"
run_wrk "GET /auth/me + token" "$connections" "$base/api/v1/auth/me" \
    -H "Authorization: Bearer $token" -s "$src/bench/report.lua"

echo
echo "sequential login: median $login_p50 ms, p99 $login_p99 ms over $logins" \
     "requests ($bad not 200)"
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
