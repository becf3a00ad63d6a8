#!/usr/bin/env bash
# test.sh - the whole test suite, the way CI runs it, from a fresh checkout
#
#   scripts/test.sh
#
# Installs missing Debian packages (as root), runs autoreconf, configures a
# build in build/ci with AddressSanitizer, UndefinedBehaviorSanitizer and
# -Werror, builds, starts a throw-away PostgreSQL 15 in build/ci/pg, runs
# `make check` and `make distcheck` against it, stops the cluster, and ends
# with one line counting every test case:
#
#   N passed, N failed, N skipped
#
# cmocka test cases are counted one by one from the tests' logs; a program
# without a cmocka summary (a script, a crash, a skip) counts as one; make
# distcheck counts as one. The exit status is non-zero if anything failed.
#
# Environment: JOBS (default 2), SKIP_DISTCHECK=1 for a quicker local run,
# BUILD_DIR (default build/ci).
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
src=$PWD
build=${BUILD_DIR:-$src/build/ci}
jobs=${JOBS:-2}
failed_stages=0
distcheck_result=none
started=$(date +%s)

stage() { echo; echo "==> $* ($(( $(date +%s) - started ))s)"; }

# ---- counting ----------------------------------------------------------------

# one line "passed failed skipped" for a test's .log and .trs
count_one() {
    local log=$1 trs=$2 result
    result=$(sed -n 's/^:test-result: *//p' "$trs" | head -n1)
    awk -v result="$result" '
        /^\[==========\] Running [0-9]+ test/ { total += $3 }
        /^\[       OK \] /                     { ok++ }
        /^\[  SKIPPED \] [^0-9]/               { skipped_names++ }
        /^\[  PASSED  \] [0-9]+ test/  { p += $4; seen = 1 }
        /^\[  FAILED  \] [0-9]+ test/  { f += $4; seen = 1 }
        /^\[  SKIPPED \] [0-9]+ test/  { s += $4; seen = 1 }
        END {
            bad = (result == "FAIL" || result == "ERROR" || result == "XPASS")
            if (!seen && total > 0) {
                # crashed in the middle: what finished counts, the rest failed
                p = ok; s = skipped_names
                f = total - p - s
                if (f < 1 && bad) f = 1
            } else if (!seen) {
                if (bad) f = 1
                else if (result == "SKIP") s = 1
                else p = 1
            } else if (bad && p + f + s < total) {
                f += total - (p + f + s)   # a group setup failed: none ran
            } else if (bad && f == 0) {
                f = 1   # every case passed, then it crashed or leaked at exit
            }
            print p + 0, f + 0, s + 0
        }' "$log"
}

count_all() {
    local p=0 f=0 s=0 trs log a b c
    while IFS= read -r trs; do
        log=${trs%.trs}.log
        [ -f "$log" ] || log=/dev/null
        read -r a b c < <(count_one "$log" "$trs")
        p=$((p + a)); f=$((f + b)); s=$((s + c))
    done < <(find "$build" -name '*.trs' -not -path "$build/plexus-*" \
                 -not -path "$build/pg/*" 2>/dev/null | sort)
    case "$distcheck_result" in
        pass) p=$((p + 1)) ;;
        fail) f=$((f + 1)) ;;
        skip) s=$((s + 1)) ;;
    esac
    f=$((f + failed_stages))
    echo "$p passed, $f failed, $s skipped"
    [ "$f" -eq 0 ]
}

finish() {
    local rc
    if [ -d "$build/pg" ]; then
        "$src/scripts/pg-cluster.sh" stop "$build/pg" || true
    fi
    echo
    echo "total time $(( $(date +%s) - started ))s"
    count_all
    rc=$?
    exit $rc
}
trap finish EXIT
trap 'exit 130' INT TERM

# a stage that cannot go on: count it as one failure and end
die_stage() {
    echo "test.sh: $*" >&2
    failed_stages=$((failed_stages + 1))
    exit 1
}

# ---- the steps ---------------------------------------------------------------

stage "packages"
"$src/scripts/install-deps.sh" test || die_stage "installing packages failed"

if [ -f "$src/config.status" ]; then
    die_stage "$src is configured in place; a build in $build needs a clean source tree: run 'make distclean' there (or use a fresh clone)"
fi

stage "autoreconf"
autoreconf -fi "$src" || die_stage "autoreconf failed"

stage "configure in $build"
mkdir -p "$build"
cd "$build" || die_stage "cannot enter $build"
if [ ! -f config.status ]; then
    "$src/configure" --enable-sanitizers --enable-werror \
        >configure.out 2>&1 || { cat configure.out; die_stage "configure failed"; }
fi

stage "build"
make -j"$jobs" all || die_stage "build failed"
# the test programs and plugins, built in parallel; run below one at a time
make -j"$jobs" check TESTS= || die_stage "building the tests failed"

stage "PostgreSQL"
find "$build" -name '*.trs' -not -path "$build/pg/*" -delete 2>/dev/null
env_lines=$("$src/scripts/pg-cluster.sh" start "$build/pg") \
    || die_stage "the throw-away PostgreSQL cluster did not start"
eval "$env_lines"
echo "$env_lines"

unset CMOCKA_MESSAGE_OUTPUT CMOCKA_TEST_ABORT
export VERBOSE=1

stage "make check"
make check || echo "make check failed"

if [ "${SKIP_DISTCHECK:-0}" = 1 ]; then
    distcheck_result=skip
else
    stage "make distcheck"
    if make -j"$jobs" distcheck; then
        distcheck_result=pass
    else
        distcheck_result=fail
    fi
fi
stage "done"
