#!/usr/bin/env bash
# test.sh - the whole test suite, the way CI runs it, from a fresh checkout
#
#   scripts/test.sh
#
# Installs missing Debian packages (as root), runs autoreconf, configures a
# build in build/ci with AddressSanitizer, UndefinedBehaviorSanitizer and
# -Werror, builds, starts a throw-away PostgreSQL 15 in build/ci/pg, runs
# `make check` against it, then the standalone stage: a copy of the tracked
# tree with every module folder and plugins.d file removed but those named
# by STANDALONE_KEEP (default "metrics"; "" keeps none) is autoreconf'd,
# configured without sanitizers, built, and runs the core suite against
# the same cluster, proving that a module's folder can go and the rest
# builds and passes. Then `make distcheck`, the cluster is stopped, and it
# ends with one line counting every test case (the standalone stage's
# included):
#
#   N passed, N failed, N skipped
#
# cmocka test cases are counted one by one from the tests' logs; a program
# without a cmocka summary (a script, a crash, a skip) counts as one; make
# distcheck counts as one. The exit status is non-zero if anything failed.
#
# Environment: JOBS (default 2), SKIP_DISTCHECK=1 and SKIP_STANDALONE=1 for
# a quicker local run, BUILD_DIR (default build/ci), STANDALONE_KEEP.
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
    # a standalone stage that did not run at all counts as one skip
    [ "${standalone_result:-none}" = skip ] && s=$((s + 1))
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

# ---- standalone: the core with only some of the modules ---------------------

# a stage step that failed: counted as one failure, the script goes on
standalone_fail() {
    echo "test.sh: standalone: $*" >&2
    failed_stages=$((failed_stages + 1))
}

standalone() {
    local keep=${STANDALONE_KEEP-metrics} dir=$build/standalone name
    stage "standalone: the core with only the modules \"${keep:-none}\""
    if ! git -C "$src" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        echo "not a git checkout: no tracked tree to copy"
        standalone_result=skip
        return
    fi
    rm -rf "$dir"
    mkdir -p "$dir/src" "$dir/build"
    # the tracked files as they are in the working tree (local edits too)
    (cd "$src" && git ls-files -z | tar --null -T - -cf -) | tar -xf - -C "$dir/src" \
        || { standalone_fail "copying the tracked tree failed"; return; }
    for d in "$dir"/src/modules/*/; do
        name=$(basename "$d")
        case " ${keep//,/ } " in
            *" $name "*) ;;
            *) rm -rf "$d" "$dir/src/plugins.d/$name.conf" ;;
        esac
    done
    echo "modules left: $(cd "$dir/src/modules" && ls -d -- */ 2>/dev/null | tr -d / | tr '\n' ' ')"
    (cd "$dir/src" && autoreconf -fi) >"$dir/autoreconf.out" 2>&1 \
        || { cat "$dir/autoreconf.out"; standalone_fail "autoreconf failed"; return; }
    cd "$dir/build" || { standalone_fail "cannot enter $dir/build"; return; }
    "$dir/src/configure" --enable-werror >configure.out 2>&1 \
        || { cat configure.out; standalone_fail "configure failed"; cd "$build"; return; }
    if ! make -j"$jobs" all >make.out 2>&1 || ! make -j"$jobs" check TESTS= >>make.out 2>&1; then
        tail -50 make.out
        standalone_fail "build failed"
        cd "$build"
        return
    fi
    # the core's suite (unit, integration, the example module); its .trs
    # files are counted with the others
    make check TESTS='$(CORE_TESTS)' || echo "standalone make check failed"
    cd "$build" || exit 1
}

standalone_result=none
if [ "${SKIP_STANDALONE:-0}" = 1 ]; then
    standalone_result=skip
else
    standalone
fi

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
