#!/usr/bin/env bash
# modules/ai/bench/ai.sh - the ai module under load, over the fake provider
#
#   modules/ai/bench/ai.sh
#
# Builds a release plexusd, the ai and metrics modules and the fake
# provider (modules/ai/tests/fake-llm) in BUILD_DIR, starts a throw-away PostgreSQL,
# the fake and plexusd (real keys, rate limits off, access log off), makes
# an admin, a model on the fake and an API key with the "ai" scope, then
# measures with modules/ai/bench/ai_load.c (libcurl multi, one thread):
#
#   first token   REQUESTS streamed /v1/chat/completions of 5 tokens, one
#                 at a time: the time to the first token straight from the
#                 fake and through plexusd, in alternating rounds; the
#                 difference is what the gateway adds (auth, quota
#                 reservation, usage row, the upstream connection)
#   500 streams   STREAMS concurrent streams of 200 tokens, 10 ms apart:
#                 errors, plexusd's CPU time and memory (RSS before, peak),
#                 and the usage rows written, against the same streams
#                 straight from the fake
#
# Loopback only; every run is bounded; everything started is stopped on exit.
# Environment: BUILD_DIR (default build/bench), REQUESTS (default 1000),
# STREAMS (default 500), TOKENS (default 200), DELAY_MS (default 10).
set -euo pipefail

cd "$(dirname "$0")/../../.."
src=$PWD
build=${BUILD_DIR:-$src/build/bench}
requests=${REQUESTS:-1000}
streams=${STREAMS:-500}
tokens=${TOKENS:-200}
delay_ms=${DELAY_MS:-10}

# shellcheck source=bench/lib.sh
. "$src/bench/lib.sh"
bench_build plexusd modules/ai/ai.la modules/metrics/metrics.la modules/ai/tests/fake-llm
bench_setup ai
bench_postgres "$build/pg-ai" plexus_bench_ai
gcc -O2 -o "$tmp/ai_load" "$src/modules/ai/bench/ai_load.c" -lcurl

json_field() {   # json_field NAME < body: the first "NAME":"value"
    sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p"
}

# ---- the fake provider ----------------------------------------------------------------
fport=$(free_port)
fake_key="sk-bench-$RANDOM"
"$build/modules/ai/tests/fake-llm" --port "$fport" --key "$fake_key" >"$tmp/fake.log" 2>&1 &
pids+=($!)
fake_pid=$!
for _ in $(seq 1 50); do
    grep -q listening "$tmp/fake.log" && break
    sleep 0.1
done

# ---- plexusd with the ai module -------------------------------------------------------
port=$(free_port)
base=http://127.0.0.1:$port
mkdir -p "$tmp/plexus/plugins.d"
umask 077
openssl rand -hex 32 >"$tmp/jwt_secret"
openssl rand -base64 32 >"$tmp/mfa_key"
echo "$fake_key" >"$tmp/fake_key"
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
url = host=$PGHOST port=$PGPORT user=$PGUSER dbname=plexus_bench_ai
[auth]
jwt_secret_file = $tmp/jwt_secret
mfa_key_file = $tmp/mfa_key
[ratelimit]
enabled = no
[smtp]
url = smtp://127.0.0.1:9
tls = no
timeout = 1s
EOF
cat >"$tmp/plexus/plugins.d/metrics.conf" <<EOF
[module]
load = yes
path = $build/modules/metrics/.libs/metrics.so
EOF
cat >"$tmp/plexus/plugins.d/ai.conf" <<EOF
[module]
load = yes
path = $build/modules/ai/.libs/ai.so
data_dir = $src/modules/ai
[ai]
providers = fake
provider.fake.type = openai
provider.fake.base_url = http://127.0.0.1:$fport/v1
provider.fake.api_key_file = $tmp/fake_key
EOF
"$build/plexusd" --config "$tmp/plexus/plexus.conf" >"$tmp/plexusd.log" 2>&1 &
pids+=($!)
plexus_pid=$!
wait_http "$base/health/live" || { cat "$tmp/plexusd.log"; exit 1; }

# ---- an admin, a model, an API key ---------------------------------------------------
email="bench.$$@example.test"
password="Bench-Harbor-Lantern-$RANDOM"
body="{\"email\":\"$email\",\"password\":\"$password\"}"
curl -fsS --max-time 10 -H 'Content-Type: application/json' -d "$body" \
    "$base/api/v1/auth/register" >/dev/null
psql -qAt -d plexus_bench_ai -c "UPDATE plexus.users SET role = 'admin',
    email_verified_at = now() WHERE email = '$email'" >/dev/null
token=$(curl -fsS --max-time 10 -H 'Content-Type: application/json' -d "$body" \
    "$base/api/v1/auth/login" | json_field access_token)
[ -n "$token" ] || { echo "bench: login failed" >&2; cat "$tmp/plexusd.log"; exit 1; }
auth=(-H "Authorization: Bearer $token" -H 'Content-Type: application/json')
curl -fsS --max-time 10 "${auth[@]}" -d '{"name":"bench","provider":"fake","upstream":"fake-up"}' \
    "$base/api/v1/admin/ai/models" >/dev/null
key=$(curl -fsS --max-time 10 "${auth[@]}" -d '{"name":"bench","scopes":["ai"]}' \
    "$base/api/v1/api-keys" | json_field key)
[ -n "$key" ] || { echo "bench: no API key" >&2; cat "$tmp/plexusd.log"; exit 1; }

load() {   # load NAME URL MODEL AUTH N CONCURRENCY DIRECTIVE
    local out
    out=$("$tmp/ai_load" --url "$2" --header "Authorization: Bearer $4" \
        --body "{\"model\":\"$3\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"$7 hello\"}]}" \
        --requests "$5" --concurrency "$6" --timeout 120 2>"$tmp/load.err") || true
    head -3 "$tmp/load.err" | sed 's/^/    /' >&2
    echo "$out" | grep '^RESULT' | sed "s/^RESULT/$1/"
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }

# ---- first token: direct and through plexusd, alternating ------------------------
direct="http://127.0.0.1:$fport/v1/chat/completions"
via="$base/v1/chat/completions"
load warmup "$via" bench "$key" 50 1 "[[fake tokens=5]]" >/dev/null
echo "==> first token, $requests requests one at a time, 5 tokens each, 2 rounds"
rows=()
for round in 1 2; do
    rows+=("$(load "direct-$round" "$direct" fake-up "$fake_key" "$requests" 1 "[[fake tokens=5]]")")
    rows+=("$(load "plexusd-$round" "$via" bench "$key" "$requests" 1 "[[fake tokens=5]]")")
done
printf '%-12s %8s %7s %9s %9s %9s %9s\n' run requests errors "p50 ms" "p90 ms" "p99 ms" "max ms"
for r in "${rows[@]}"; do
    read -r name n errs p50 p90 p99 max _ _ <<<"$r"
    printf '%-12s %8s %7s %9s %9s %9s %9s\n' "$name" "$n" "$errs" "$p50" "$p90" "$p99" "$max"
done
# medians of the two rounds, then the difference
read -r _ _ _ d50a _ d99a _ _ _ <<<"${rows[0]}"
read -r _ _ _ v50a _ v99a _ _ _ <<<"${rows[1]}"
read -r _ _ _ d50b _ d99b _ _ _ <<<"${rows[2]}"
read -r _ _ _ v50b _ v99b _ _ _ <<<"${rows[3]}"
added50=$(awk "BEGIN {printf \"%.2f\", (($v50a + $v50b) - ($d50a + $d50b)) / 2}")
added99=$(awk "BEGIN {printf \"%.2f\", (($v99a + $v99b) - ($d99a + $d99b)) / 2}")

# ---- 500 concurrent streams ---------------------------------------------------------
directive="[[fake tokens=$tokens delay_ms=$delay_ms]]"
echo
echo "==> $streams concurrent streams of $tokens tokens, $delay_ms ms apart"
fake_cpu0=$(cpu_ticks "$fake_pid")
direct_row=$(load direct "$direct" fake-up "$fake_key" "$streams" "$streams" "$directive")
fake_cpu1=$(cpu_ticks "$fake_pid")
usage0=$(psql -qAt -d plexus_bench_ai -c "SELECT count(*) FROM ai.usage")
rss0=$(rss_kb "$plexus_pid")
cpu0=$(cpu_ticks "$plexus_pid")
t0=$(date +%s.%N)
peak=$rss0
( while kill -0 "$plexus_pid" 2>/dev/null; do rss_kb "$plexus_pid"; sleep 0.2; done ) \
    >"$tmp/rss.samples" 2>/dev/null &
sampler=$!
via_row=$(load plexusd "$via" bench "$key" "$streams" "$streams" "$directive")
t1=$(date +%s.%N)
cpu1=$(cpu_ticks "$plexus_pid")
kill "$sampler" 2>/dev/null || true
peak=$(sort -n "$tmp/rss.samples" | tail -1)
sleep 1
usage1=$(psql -qAt -d plexus_bench_ai -c "SELECT count(*) FROM ai.usage")
hz=$(getconf CLK_TCK)
wall=$(awk "BEGIN {printf \"%.2f\", $t1 - $t0}")
cpu_s=$(awk "BEGIN {printf \"%.2f\", ($cpu1 - $cpu0) / $hz}")
fake_cpu_s=$(awk "BEGIN {printf \"%.2f\", ($fake_cpu1 - $fake_cpu0) / $hz}")
printf '%-10s %8s %7s %14s %14s %14s\n' run streams errors "ttft p50 ms" "ttft p99 ms" "stream p99 ms"
for r in "$direct_row" "$via_row"; do
    read -r name n errs p50 _ p99 _ _ t99 <<<"$r"
    printf '%-10s %8s %7s %14s %14s %14s\n' "$name" "$n" "$errs" "$p50" "$p99" "$t99"
done
read -r _ _ via_errs _ <<<"$via_row"
echo "plexusd: CPU ${cpu_s} s over ${wall} s of wall time; RSS $((rss0 / 1024)) MiB before," \
     "peak $((peak / 1024)) MiB (VmHWM $(( $(hwm_kb "$plexus_pid") / 1024 )) MiB)"
echo "fake provider: CPU ${fake_cpu_s} s for the same streams sent directly"
echo "usage rows written: $((usage1 - usage0)) for $streams streams"
echo
echo "ai: time added to the first token p50 ${added50} ms, p99 ${added99} ms;" \
     "$streams streams x $tokens tokens: $via_errs errors, CPU ${cpu_s} s," \
     "peak RSS $((peak / 1024)) MiB"
echo "machine: $(nproc) cores, $(uname -r); client, fake and plexusd on the same cores"
