#!/usr/bin/env bash
# bench/projects.sh - the projects module under load: listing a project's
# tasks, 20 per page, with 10,000 tasks in the team
#
#   bench/projects.sh
#
# Builds a release plexusd and the projects module (no sanitizers) in
# BUILD_DIR, starts a throw-away PostgreSQL and plexusd with real keys
# (dev_mode = no), rate limits off, access log off; registers one user,
# makes a team and a project through the API, seeds TASKS tasks into the
# project through SQL (a spread of statuses, assignees and due dates), then
# runs wrk with a valid bearer token against:
#   first page   GET /api/v1/projects/{id}/tasks?limit=20
#   deep page    the same with a cursor from the middle (keyset: as cheap)
#   filtered     ?limit=20&status=done&sort=due_date&order=desc
#   baseline     GET /api/v1/auth/me: the token and session check alone
# Each list request checks the token and the session (core), then the
# membership and the page (this module: one statement); the baseline tells
# the two apart. Prints req/s and latency
# percentiles; the closing line gives the first page's req/s and p99.
# Loopback only; every run is bounded; everything started is stopped on exit.
#
# Environment: BUILD_DIR (default build/bench), DURATION (wrk, default 10s),
# CONNECTIONS (default 50), THREADS (wrk threads, default 2), TASKS
# (default 10000).
set -euo pipefail

cd "$(dirname "$0")/.."
src=$PWD
build=${BUILD_DIR:-$src/build/bench}
duration=${DURATION:-10s}
connections=${CONNECTIONS:-50}
threads=${THREADS:-2}
tasks=${TASKS:-10000}

# shellcheck source=bench/lib.sh
. "$src/bench/lib.sh"
bench_build plexusd modules/projects/projects.la
bench_setup projects
bench_postgres "$build/pg-projects" plexus_bench_projects

json_field() {   # json_field NAME < body: the first "NAME":"value"
    sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p"
}


# ---- plexusd with the projects module ------------------------------------------------
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
url = host=$PGHOST port=$PGPORT user=$PGUSER dbname=plexus_bench_projects
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
cat >"$tmp/plexus/plugins.d/projects.conf" <<EOF
[module]
load = yes
path = $build/modules/projects/.libs/projects.so
data_dir = $src/modules/projects
EOF
"$build/plexusd" --config "$tmp/plexus/plexus.conf" >"$tmp/plexusd.log" 2>&1 &
pids+=($!)
wait_http "$base/health/live" || { cat "$tmp/plexusd.log"; exit 1; }

# ---- a user, a team, a project --------------------------------------------------------
email="bench.$$@example.test"
password="Bench-Harbor-Lantern-$RANDOM"
body="{\"email\":\"$email\",\"password\":\"$password\"}"
curl -fsS --max-time 10 -H 'Content-Type: application/json' -d "$body" \
    "$base/api/v1/auth/register" >/dev/null
token=$(curl -fsS --max-time 10 -H 'Content-Type: application/json' -d "$body" \
    "$base/api/v1/auth/login" | json_field access_token)
[ -n "$token" ] || { echo "bench: login failed" >&2; cat "$tmp/plexusd.log"; exit 1; }
auth=(-H "Authorization: Bearer $token" -H 'Content-Type: application/json')
team=$(curl -fsS --max-time 10 "${auth[@]}" -d '{"name":"bench"}' "$base/api/v1/teams" \
    | json_field id)
project=$(curl -fsS --max-time 10 "${auth[@]}" -d "{\"team_id\":\"$team\",\"name\":\"bench\"}" \
    "$base/api/v1/projects" | json_field id)
[ -n "$project" ] || { echo "bench: no project" >&2; cat "$tmp/plexusd.log"; exit 1; }

# ---- the tasks, through SQL: distinct creation times, a spread of values ------------
user=$(psql -qAt -d plexus_bench_projects -c "SELECT id FROM plexus.users WHERE email = '$email'")
psql -q -v ON_ERROR_STOP=1 -d plexus_bench_projects <<EOF
INSERT INTO projects.tasks (team_id, project_id, title, description, status,
                            assignee_id, assigned_at, due_date, created_by,
                            created_at, updated_at)
SELECT '$team', '$project', 'task ' || i, 'seeded for the benchmark',
       (ARRAY['todo', 'in_progress', 'blocked', 'done'])[1 + i % 4],
       CASE WHEN i % 3 = 0 THEN '$user'::uuid END, now(),
       CASE WHEN i % 5 <> 0 THEN date '2030-01-01' + i % 365 END, '$user',
       now() - (i || ' seconds')::interval, now() - (i || ' seconds')::interval
FROM generate_series(1, $tasks) AS i;
ANALYZE projects.tasks;
EOF

tasks_url="$base/api/v1/projects/$project/tasks"
list="$tasks_url?limit=20"
first=$(curl -fsS --max-time 10 "${auth[@]}" "$list")
items=$(echo "$first" | grep -o '"title"' | wc -l)
[ "$items" -eq 20 ] || { echo "bench: expected 20 tasks, found $items" >&2; exit 1; }
cursor=$(curl -fsS --max-time 10 "${auth[@]}" "$tasks_url?limit=100" | json_field next_cursor)
for _ in $(seq 2 $(( tasks / 200 ))); do   # halfway through, 100 at a time
    cursor=$(curl -fsS --max-time 10 "${auth[@]}" "$tasks_url?limit=100&cursor=$cursor" \
        | json_field next_cursor)
done
[ -n "$cursor" ] || { echo "bench: no cursor halfway" >&2; exit 1; }

# ---- wrk runs ------------------------------------------------------------------------
run_wrk() {   # name url
    local name=$1 url=$2 out line
    echo "==> $name, $connections connections, $duration"
    out=$(timeout 120 wrk -t"$threads" -c"$connections" -d"$duration" --timeout 5s \
        -H "Authorization: Bearer $token" -s "$src/bench/report.lua" "$url") || true
    echo "$out" | grep -v '^RESULT' | sed 's/^/    /'
    line=$(echo "$out" | grep '^RESULT' || echo "RESULT 0 0 0 0 0 -1 -1")
    results+=("$name|${line#RESULT }")
    sleep 1
}

results=()
run_wrk "first page" "$list"
run_wrk "deep page (cursor)" "$list&cursor=$cursor"
run_wrk "status+due_date desc" "$list&status=done&sort=due_date&order=desc"
run_wrk "baseline: auth/me" "$base/api/v1/auth/me"

echo
printf '%-22s %10s %9s %9s %9s %9s %8s %8s\n' target "req/s" "p50 ms" "p90 ms" \
    "p99 ms" "max ms" errors non2xx
for r in "${results[@]}"; do
    IFS='|' read -r name vals <<<"$r"
    read -r rps p50 p90 p99 max errs non2xx <<<"$vals"
    printf '%-22s %10s %9s %9s %9s %9s %8s %8s\n' "$name" "$rps" "$p50" "$p90" "$p99" \
        "$max" "$errs" "$non2xx"
done
IFS='|' read -r _ vals <<<"${results[0]}"
read -r rps _ _ p99 _ errs non2xx <<<"$vals"
echo
echo "projects: list tasks, 20 per page, $tasks tasks, $connections connections:" \
     "$rps req/s, p99 $p99 ms ($errs errors, $non2xx non-2xx)"
echo "machine: $(nproc) cores, $(uname -r); wrk $threads threads on the same cores"
