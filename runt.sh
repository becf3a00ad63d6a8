#!/bin/bash
# run given test programs directly from build/dev (no make check)
cd /work/wt/lead/build/dev
eval "$(../../scripts/pg-cluster.sh env ../pg)"
export PLX_SRCDIR=/work/wt/lead PLX_BUILDDIR=/work/wt/lead/build/dev
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
for t in "$@"; do
  ./$t > ../../$(basename $t).log 2>&1; echo "$t rc=$?"; grep -E "^\[  (PASSED|FAILED) |^\[  FAILED  \]" ../../$(basename $t).log | head -5
done
