#!/bin/sh
# example_module.sh - a plugin author's path, end to end: install only the
# public headers and plexus.pc into a staging folder, build the example
# module out of tree with nothing but `pkg-config plexus`, load it into a
# real plexusd and call it.
set -eu

B=${PLX_BUILDDIR:?make check sets PLX_BUILDDIR}
S=${PLX_SRCDIR:?make check sets PLX_SRCDIR}
if [ -z "${PGHOST:-}" ]; then
    echo "SKIP: no PostgreSQL (PGHOST unset): example module not loaded"
    exit 77
fi

stage=$(mktemp -d /tmp/plx-example-XXXXXX)
pid=
cleanup() {
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
    dropdb --if-exists "$db" >/dev/null 2>&1 || true
    rm -rf "$stage"
}
db="plx_example_$$"
trap cleanup EXIT

# 1. the installed API: headers and plexus.pc only
make -s -C "$B" install-plexusincludeHEADERS install-pkgconfigDATA \
    DESTDIR="$stage/root" >/dev/null
pc=$(find "$stage/root" -name plexus.pc | head -n 1)
[ -n "$pc" ] || { echo "FAIL: plexus.pc was not installed"; exit 1; }
export PKG_CONFIG_PATH="$(dirname "$pc")"
export PKG_CONFIG="pkg-config --define-prefix"

# 2. out of tree: a copy of the template, built with its own Makefile
cp -R "$S/tests/plugins/example" "$stage/src"
chmod -R u+w "$stage/src"
make -s -C "$stage/src" CFLAGS="-O1 -g -Werror" example.so
if nm -D --defined-only "$stage/src/example.so" | grep -v ' plx_module_info$' \
        | grep -q ' T '; then
    echo "FAIL: example.so exports more than plx_module_info"
    exit 1
fi

# 3. a server that loads it
createdb "$db"
mkdir -p "$stage/etc/plugins.d"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$stage/etc/plexus.conf" <<CONF
[server]
listen = 127.0.0.1:$port
threads = 16
data_dir = $S
# throw-away signing and sealing keys: this test is about the module
dev_mode = yes
[database]
url = host=$PGHOST port=${PGPORT:-5432} user=${PGUSER:-postgres} dbname=$db
CONF
cat > "$stage/etc/plugins.d/example.conf" <<CONF
[module]
load = yes
path = $stage/src/example.so
data_dir = $stage/src
CONF
"$B/plexusd" --config "$stage/etc/plexus.conf" > "$stage/server.log" 2>&1 &
pid=$!

ok=
for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$port/health/live" >/dev/null 2>&1; then
        ok=1
        break
    fi
    sleep 0.1
done
if [ -z "$ok" ]; then
    echo "FAIL: the server did not start"
    cat "$stage/server.log"
    exit 1
fi

body=$(curl -fsS "http://127.0.0.1:$port/api/v1/example/hello?name=author")
case "$body" in
    *'"message":"hello, author"'*) echo "PASS: out-of-tree module answered: $body" ;;
    *) echo "FAIL: unexpected answer: $body"; cat "$stage/server.log"; exit 1 ;;
esac

kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
if [ "$rc" -ne 0 ]; then
    echo "FAIL: plexusd exited $rc after SIGTERM"
    cat "$stage/server.log"
    exit 1
fi
echo "PASS: clean shutdown"
