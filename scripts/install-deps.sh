#!/usr/bin/env bash
# install-deps.sh - install the Debian 12 packages Plexus needs, if missing
#
#   scripts/install-deps.sh [build|test|bench]   (default: test)
#
# build: compilers, autotools and the libraries plexusd links
# test:  build + cmocka and PostgreSQL 15 (the suite runs a throw-away cluster)
# bench: test + nginx-light and wrk
#
# A module's own packages are listed in modules/<name>/packages, as lines
# "build: PKG..." (to build it) and "test: PKG..." (for its tests), and
# are wanted only when its folder is there.
#
# Only missing packages are installed (apt-get update first). As root this
# runs apt-get itself; otherwise through sudo when it is there, else it
# prints the command and fails. Used by scripts/test.sh, scripts/dev.sh,
# bench/run.sh and .ci/run.
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)

# the packages of kind (build or test) that the modules present list
module_packages() {
    local f
    for f in "$src"/modules/*/packages; do
        [ -f "$f" ] || continue
        sed -n "s/^$1:[[:space:]]*//p" "$f"
    done
}

BUILD_PACKAGES="build-essential autoconf automake libtool pkg-config
    libcivetweb-dev libpq-dev libjansson-dev libcurl4-openssl-dev libssl-dev
    libinih-dev libjwt-dev libargon2-dev libcrack2-dev cracklib-runtime
    $(module_packages build)"
TEST_PACKAGES="libcmocka-dev postgresql-15 postgresql-common curl
    $(module_packages test)"
BENCH_PACKAGES="nginx-light wrk curl"

profile=${1:-test}
case "$profile" in
    build) wanted="$BUILD_PACKAGES" ;;
    test) wanted="$BUILD_PACKAGES $TEST_PACKAGES" ;;
    bench) wanted="$BUILD_PACKAGES $TEST_PACKAGES $BENCH_PACKAGES" ;;
    list-test) echo $BUILD_PACKAGES $TEST_PACKAGES; exit 0 ;;
    *) echo "usage: $0 [build|test|bench]" >&2; exit 2 ;;
esac

missing=()
for p in $wanted; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
else
    echo "missing packages: ${missing[*]}" >&2
    echo "install them as root: apt-get install ${missing[*]}" >&2
    exit 1
fi

echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
for try in 1 2 3; do
    "${sudo[@]}" apt-get update -qq && break
    echo "apt-get update failed (try $try), retrying" >&2
    sleep 5
done
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
