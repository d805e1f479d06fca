#!/bin/sh
# Run every test binary: BUILD_DIR/tests/unit/* then BUILD_DIR/tests/integration/*.
# Usage: tests/run.sh BUILD_DIR
#
# cmocka 1.1.5 prints its summary to stderr, so each binary runs with 2>&1
# (output kept in BUILD_DIR/tests/logs/<kind>-<name>.log, and shown when the
# binary fails). Counts come from the summary lines
#   [  PASSED  ] N test(s).
#   [  FAILED  ] N test(s), listed below:
#   [  SKIPPED ] N test(s), listed below:
# and from the exit status (cmocka exits with its number of failures, which
# also covers failed setups that have no FAILED summary line). A binary that
# crashes, times out (TASKQ_TEST_TIMEOUT seconds, default 300) or prints no
# summary counts as one more failure. The last line is always
# "N passed, N failed" (", N skipped" appended when something was skipped);
# the exit status is non-zero when anything failed.
set -u

if [ $# -ne 1 ] || [ ! -d "$1" ]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 64
fi
TASKQ_TEST_BUILD=$(cd "$1" && pwd)
export TASKQ_TEST_BUILD
timeout_s=${TASKQ_TEST_TIMEOUT:-300}
# CI and the README's command run as root; the worker refuses root unless
# told (docs/SECURITY.md). The tests are the one place that says so.
TASKQ_ALLOW_ROOT=1
export TASKQ_ALLOW_ROOT
logdir=$TASKQ_TEST_BUILD/tests/logs
mkdir -p "$logdir"

total_pass=0
total_fail=0
total_skip=0
nbin=0

# Sum the N of every line starting with the given cmocka tag and "N test(s)".
sum_tag() {
    sed -n "s/^\[  $1 *\] \([0-9][0-9]*\) test(s)[.,].*/\1/p" "$2" |
        awk '{ s += $1 } END { print s + 0 }'
}

run_one() {
    kind=$1
    bin=$2
    name=$(basename "$bin")
    log=$logdir/$kind-$name.log
    nbin=$((nbin + 1))
    timeout -k 10 "$timeout_s" "$bin" >"$log" 2>&1
    rc=$?
    pass=$(sum_tag PASSED "$log")
    fail=$(sum_tag FAILED "$log")
    skip=$(sum_tag SKIPPED "$log")
    note=""
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        fail=$((fail + 1))
        note=" (timed out after ${timeout_s}s)"
    elif [ "$rc" -gt 128 ]; then
        fail=$((fail + 1))
        note=" (killed by signal $((rc - 128)))"
    elif [ "$rc" -ne 0 ] && [ "$rc" -gt "$fail" ]; then
        # Failed test setups and group setups are in cmocka's exit status
        # but not in its FAILED summary.
        note=" (exit status $rc)"
        fail=$rc
    elif [ "$rc" -ne 0 ]; then
        note=" (exit status $rc)"
    fi
    if ! grep -q '^\[  PASSED  \] [0-9]* test(s)\.' "$log"; then
        if [ "$fail" -eq 0 ]; then
            fail=1
        fi
        note="$note (no cmocka summary)"
    fi
    if [ "$fail" -gt 0 ]; then
        status=FAIL
    else
        status=ok
    fi
    line="$status $kind/$name: $pass passed, $fail failed"
    if [ "$skip" -gt 0 ]; then
        line="$line, $skip skipped"
    fi
    echo "$line$note"
    if [ "$fail" -gt 0 ]; then
        echo "----- output of $kind/$name ($log) -----"
        cat "$log"
        echo "----- end of $kind/$name -----"
    fi
    total_pass=$((total_pass + pass))
    total_fail=$((total_fail + fail))
    total_skip=$((total_skip + skip))
}

for kind in unit integration; do
    dir=$TASKQ_TEST_BUILD/tests/$kind
    [ -d "$dir" ] || continue
    for bin in "$dir"/*; do
        [ -f "$bin" ] && [ -x "$bin" ] || continue
        run_one "$kind" "$bin"
    done
done

if [ "$nbin" -eq 0 ]; then
    echo "no test binaries under $TASKQ_TEST_BUILD/tests"
    total_fail=$((total_fail + 1))
fi
if [ "$total_skip" -gt 0 ]; then
    echo "$total_pass passed, $total_fail failed, $total_skip skipped"
else
    echo "$total_pass passed, $total_fail failed"
fi
[ "$total_fail" -eq 0 ]
