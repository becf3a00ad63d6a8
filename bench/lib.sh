# bench/lib.sh - what the bench scripts share: a release build, a temporary
# folder and a throw-away PostgreSQL that are always cleaned up, free
# loopback ports, and waiting for a server to answer
#
# A script sets src (the checkout) and build (the build folder), sources
# this file, then:
#   bench_build TARGET...     configure (-O2, no sanitizers) and make them
#   bench_setup NAME          $tmp, the cleanup trap, a descriptor limit
#   bench_postgres DIR [DB]   start the cluster in DIR (and a fresh DB)
# and appends the pid of every server it starts to the array pids, so the
# cleanup stops them whatever way the script ends.
# shellcheck shell=bash

pids=()
bench_pgdir=

bench_build() {
    "$src/scripts/install-deps.sh" bench
    if [ -f "$src/config.status" ]; then
        echo "bench: $src is configured in place; run 'make distclean' there first" >&2
        exit 1
    fi
    [ -x "$src/configure" ] || autoreconf -fi "$src"
    mkdir -p "$build"
    (
        cd "$build"
        [ -f config.status ] || "$src/configure" CFLAGS="-O2 -g" >configure.out 2>&1 \
            || { cat configure.out; exit 1; }
        make -j2 "$@" >make.out 2>&1 || { tail -50 make.out; exit 1; }
    )
}

bench_cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        timeout 15 tail --pid="$pid" -f /dev/null 2>/dev/null || kill -9 "$pid" 2>/dev/null || true
    done
    if [ -n "$bench_pgdir" ]; then
        "$src/scripts/pg-cluster.sh" stop "$bench_pgdir" >/dev/null 2>&1 || true
    fi
    rm -rf "$tmp"
}

bench_setup() {
    tmp=$(mktemp -d "/tmp/plexus-bench-$1.XXXXXX")
    chmod 755 "$tmp"   # nginx's workers read their config from here
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
    # 1000 connections need more than the default 1024 descriptors, for wrk
    # and for the servers (they inherit this limit)
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
}

bench_postgres() {
    bench_pgdir=$1
    eval "$("$src/scripts/pg-cluster.sh" start "$1")"
    if [ -n "${2:-}" ]; then
        dropdb --if-exists "$2"
        createdb "$2"
    fi
}

free_port() {
    local p
    while :; do
        p=$(( 20000 + RANDOM % 40000 ))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
}

wait_http() {
    local url=$1
    for _ in $(seq 1 150); do
        curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null && return 0
        sleep 0.2
    done
    echo "bench: $url did not answer" >&2
    return 1
}
