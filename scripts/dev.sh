#!/usr/bin/env bash
# dev.sh - build, install into .dev/prefix and run plexusd for development
#
#   scripts/dev.sh          build, install, start PostgreSQL, run plexusd in
#                           the foreground (Ctrl-C stops it)
#   scripts/dev.sh stop     stop the development PostgreSQL cluster
#
# Everything stays inside the checkout: the build in .dev/build (out of tree,
# so scripts/test.sh can still build in build/ci), the install in
# .dev/prefix, a PostgreSQL 15 cluster in .dev/pg that is kept between runs
# (started if it is not running) with a database "plexus". The server runs
# with PLEXUS_DATABASE_URL pointing at that cluster and
# PLEXUS_SERVER_DEV_MODE=yes, on the listen address of
# .dev/prefix/etc/plexus/plexus.conf (127.0.0.1:8080 unless you change it).
set -euo pipefail

cd "$(dirname "$0")/.."
src=$PWD
dev=$src/.dev
prefix=$dev/prefix

if [ "${1:-}" = stop ]; then
    "$src/scripts/pg-cluster.sh" stop "$dev/pg"
    echo "development cluster stopped"
    exit 0
elif [ $# -gt 0 ]; then
    echo "usage: $0 [stop]" >&2
    exit 2
fi

"$src/scripts/install-deps.sh" test

if [ -f "$src/config.status" ]; then
    echo "dev.sh: $src is configured in place; run 'make distclean' there first" >&2
    exit 1
fi
# modules.sh rewrites modules/modules.mk when a module folder came or went
sh "$src/scripts/modules.sh" >/dev/null
if [ ! -x "$src/configure" ] || [ "$src/configure.ac" -nt "$src/configure" ] \
    || [ "$src/modules/modules.mk" -nt "$src/configure" ]; then
    echo "==> autoreconf"
    autoreconf -fi
fi

mkdir -p "$dev/build"
cd "$dev/build"
if [ ! -f config.status ]; then
    echo "==> configure --prefix=$prefix"
    "$src/configure" --prefix="$prefix" --enable-werror >configure.out 2>&1 \
        || { cat configure.out; exit 1; }
fi
echo "==> make"
make -j"${JOBS:-2}"
make install >/dev/null

echo "==> PostgreSQL in $dev/pg"
eval "$("$src/scripts/pg-cluster.sh" start "$dev/pg")"
if [ -z "$(psql -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname = 'plexus'")" ]; then
    createdb plexus
fi

export PLEXUS_DATABASE_URL="host=$PGHOST port=$PGPORT user=$PGUSER dbname=plexus"
export PLEXUS_SERVER_DEV_MODE=yes
echo "==> plexusd (Ctrl-C stops it; 'scripts/dev.sh stop' stops PostgreSQL)"
exec "$prefix/sbin/plexusd" --config "$prefix/etc/plexus/plexus.conf"
