#!/bin/sh
# Build the libFuzzer targets and run each one for a bounded time.
# Usage: tests/fuzz/run.sh [SECONDS]   (default 30 per target)
#
# Each target runs through `make fuzz-<t>` (tests/fuzz/fuzz.mk: the same
# options as `make fuzz`, on a copy of the seed corpus under build/fuzz/).
# One line per target:
#   ok fuzz/<t>: N runs, cov X (ft F, corpus C, E exec/s)
#   FAIL fuzz/<t>: <libFuzzer's summary>; reproducer <path>   (+ the log's tail)
# and the last line is "N passed, N failed" (one test per target). Replay a
# reproducer with `build/fuzz/fuzz_<t> <path>`. Exit status non-zero on failure.
set -u
cd "$(dirname "$0")/../.."
secs=${1:-30}
case $secs in
'' | *[!0-9]*)
    echo "usage: $0 [SECONDS]" >&2
    exit 64
    ;;
esac
MAKE=${MAKE:-make}
BUILD=${BUILD:-build}
targets="msg sig url json"
logdir=$BUILD/fuzz/logs
mkdir -p "$logdir"
pass=0
fail=0

if ! $MAKE -s --no-print-directory BUILD="$BUILD" fuzz-build >"$logdir/build.log" 2>&1; then
    for t in $targets; do
        echo "FAIL fuzz/$t: the fuzz targets do not build"
    done
    tail -n 40 "$logdir/build.log"
    echo "0 passed, 4 failed"
    exit 1
fi

# The value after "key: " on the last line of the log that has it.
last_field() {
    grep -a -o "$1: [0-9][0-9]*" "$2" | tail -n 1 | sed 's/.*: //'
}

for t in $targets; do
    log=$logdir/$t.log
    # libFuzzer stops itself after $secs; the outer limit only catches a hang.
    timeout -k 10 $((secs + 120)) $MAKE -s --no-print-directory BUILD="$BUILD" \
        FUZZ_SECONDS="$secs" "fuzz-$t" >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^Done \([0-9][0-9]*\) runs in .*/\1/p' "$log" | tail -n 1)
    if [ "$rc" -eq 0 ] && [ -n "$runs" ]; then
        cov=$(last_field cov "$log")
        ft=$(last_field ft "$log")
        corp=$(grep -a -o 'corp: [0-9]*' "$log" | tail -n 1 | sed 's/.*: //')
        eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
        echo "ok fuzz/$t: $runs runs, cov ${cov:-?} (ft ${ft:-?}, corpus ${corp:-?}, ${eps:-?} exec/s)"
        pass=$((pass + 1))
    else
        what=$(grep -a -m 1 '^SUMMARY: ' "$log" | sed 's/^SUMMARY: //')
        [ -n "$what" ] || what=$(grep -a -m 1 'ERROR: ' "$log")
        [ "$rc" -eq 124 ] && what="hung past $((secs + 120)) s"
        repro=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
        echo "FAIL fuzz/$t: ${what:-exit status $rc}; reproducer ${repro:-none}"
        echo "----- tail of $log -----"
        # Inputs are quoted in the log: keep the shown tail printable.
        grep -a -v '^    #[0-9]* 0x[0-9a-f]* in fuzzer::' "$log" | tail -n 40 |
            LC_ALL=C tr -c '[:print:]\t\n' '?'
        echo "----- end of fuzz/$t -----"
        fail=$((fail + 1))
    fi
done

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
