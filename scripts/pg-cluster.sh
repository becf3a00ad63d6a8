#!/usr/bin/env bash
# pg-cluster.sh - a throw-away PostgreSQL 15 cluster for tests and development
#
#   scripts/pg-cluster.sh start DIR   create (once) and start a cluster in DIR,
#                                     print its environment as export lines
#   scripts/pg-cluster.sh stop DIR    stop it (does nothing if it is not running)
#   scripts/pg-cluster.sh env DIR     print the export lines of a running cluster
#   scripts/pg-cluster.sh status DIR  exit 0 when it runs, 3 when it does not
#
# Use it as:  eval "$(scripts/pg-cluster.sh start build/pg)"
#
# The cluster listens on 127.0.0.1 on a free port and on a unix socket in DIR,
# trusts local connections, and runs with fsync off: it is for tests only.
# Everything lives in DIR. As root, initdb and the server run as the
# "postgres" system user (PostgreSQL refuses to run as root); if that user
# cannot reach DIR (a checkout under /root), the data directory goes to a
# mktemp folder in /tmp that DIR points to and `stop` removes again.
set -euo pipefail

die() { echo "pg-cluster: $*" >&2; exit 1; }

usage() {
    echo "usage: $0 start|stop|env|status DIR" >&2
    exit 2
}

[ $# -eq 2 ] || usage
cmd=$1
if [ "$cmd" = start ]; then
    mkdir -p "$2"
elif [ ! -d "$2" ]; then
    case "$cmd" in
        stop) exit 0 ;;
        status) echo "not running"; exit 3 ;;
        *) die "no cluster in $2" ;;
    esac
fi
dir=$(cd "$2" && pwd)

find_bindir() {
    local d
    for d in /usr/lib/postgresql/15/bin "$(pg_config --bindir 2>/dev/null || true)"; do
        if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
            echo "$d"
            return 0
        fi
    done
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v pg_ctl)"
        return 0
    fi
    die "initdb and pg_ctl not found: install postgresql-15"
}

bindir=$(find_bindir)

# run a PostgreSQL program as the user that owns the cluster
if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || die "user \"postgres\" not found: install postgresql-15"
    as_owner() { runuser -u postgres -- "$@"; }
else
    as_owner() { "$@"; }
fi

# where the data directory is: DIR/data, or the folder named in DIR/datadir
data_dir() {
    if [ -f "$dir/datadir" ]; then
        cat "$dir/datadir"
    else
        echo "$dir/data"
    fi
}

# can the cluster owner create files in DIR (as root: can "postgres" reach it)?
owner_can_use_dir() {
    # a unix socket path holds at most 107 bytes: DIR/.s.PGSQL.NNNNN
    [ ${#dir} -le 88 ] || return 1
    [ "$(id -u)" -ne 0 ] && return 0
    chown postgres: "$dir"
    as_owner test -x "$dir" -a -w "$dir"
}

is_running() {
    local data
    data=$(data_dir)
    [ -f "$data/PG_VERSION" ] || return 1
    as_owner "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1
}

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

free_port() {
    local p
    for _ in $(seq 1 50); do
        p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
        if ! port_in_use "$p"; then
            echo "$p"
            return 0
        fi
    done
    die "no free port found on 127.0.0.1"
}

create_cluster() {
    local data
    if owner_can_use_dir; then
        data="$dir/data"
        rm -f "$dir/datadir"
        touch "$dir/socket-ok"
    else
        data=$(mktemp -d /tmp/plexus-pg.XXXXXX)
        chown postgres: "$data"
        echo "$data" > "$dir/datadir"
        rm -f "$dir/socket-ok"
        echo "pg-cluster: user \"postgres\" cannot reach $dir, data in $data" >&2
    fi
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$data" 2>/dev/null || true
    fi
    as_owner "$bindir/initdb" -D "$data" -U postgres --auth=trust \
        --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
}

# settings written on every start: the port may change between starts
write_settings() {
    local data=$1 port=$2 sockdir="''"
    [ -f "$dir/socket-ok" ] && sockdir="'$dir'"
    cat >"$data/postgresql.auto.conf" <<EOF
# written by scripts/pg-cluster.sh: a throw-away test cluster
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = $sockdir
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 64MB
log_min_messages = warning
log_line_prefix = '%m [%p] %d '
EOF
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$data/postgresql.auto.conf"
    fi
}

print_env() {
    local port host
    port=$(cat "$dir/port")
    host=127.0.0.1
    [ -f "$dir/socket-ok" ] && host=$dir
    echo "export PGHOST='$host'"
    echo "export PGPORT='$port'"
    echo "export PGUSER='postgres'"
    echo "export PGDATABASE='postgres'"
}

start() {
    local data port logfile
    if is_running; then
        print_env
        return 0
    fi
    data=$(data_dir)
    [ -f "$data/PG_VERSION" ] || create_cluster
    data=$(data_dir)
    logfile="$data/server.log"
    for _ in 1 2 3 4 5; do
        port=$(free_port)
        write_settings "$data" "$port"
        if as_owner "$bindir/pg_ctl" -D "$data" -l "$logfile" -w -t 60 \
                start >/dev/null 2>&1; then
            echo "$port" > "$dir/port"
            print_env
            return 0
        fi
        # another process may have taken the port between the check and bind
        grep -q "could not bind\|already in use" "$logfile" 2>/dev/null || break
    done
    cat "$logfile" >&2 2>/dev/null || true
    die "the server did not start (log: $logfile)"
}

stop() {
    local data
    data=$(data_dir)
    if [ -f "$data/PG_VERSION" ] && is_running; then
        as_owner "$bindir/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null \
            || die "pg_ctl stop failed"
    fi
    # a data directory outside DIR is never kept between runs
    if [ -f "$dir/datadir" ]; then
        case "$data" in
            /tmp/plexus-pg.*) rm -rf "$data" ;;
        esac
        rm -f "$dir/datadir"
    fi
    return 0
}

case "$cmd" in
    start) start ;;
    stop) stop ;;
    env)
        is_running || die "no cluster running in $dir"
        print_env
        ;;
    status)
        if is_running; then echo "running on port $(cat "$dir/port")"; exit 0; fi
        echo "not running"
        exit 3
        ;;
    *) usage ;;
esac
