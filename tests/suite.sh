#!/bin/sh
# The whole test suite, as `make test` (and so CI) runs it:
#   0. lint (module boundaries, cppcheck, clang-format) and a warning-free
#      clang build (gcc builds everything below)
#   1. unit + integration tests, normal build (build/), and the demo
#   2. the same under AddressSanitizer + UndefinedBehaviorSanitizer (build/asan)
#   3. unit tests under valgrind: zero leaks, zero errors
#   4. fuzz targets for a short bounded time each (tests/fuzz/run.sh, if present)
#   5. the docker-compose demo, really run (tests/compose/run.sh, if present)
# Each stage ends with its own "N passed, N failed" line; the last line of
# this script adds them up. Exit status is non-zero when anything failed.
set -u
cd "$(dirname "$0")/.."
MAKE=${MAKE:-make}
JOBS=${JOBS:-2}
total_p=0
total_f=0
total_s=0
logs=build/suite
mkdir -p "$logs"

# Run a stage; its output is shown and its closing counts are added up.
stage() {
    name=$1
    shift
    echo "=== $name"
    start=$(date +%s)
    "$@" 2>&1 | tee "$logs/$name.log"
    counts=$(grep -E '^([a-z]+: )?[0-9]+ passed, [0-9]+ failed' "$logs/$name.log" | tail -1)
    p=$(echo "$counts" | sed -n 's/.*\b\([0-9][0-9]*\) passed.*/\1/p')
    f=$(echo "$counts" | sed -n 's/.* \([0-9][0-9]*\) failed.*/\1/p')
    s=$(echo "$counts" | sed -n 's/.* \([0-9][0-9]*\) skipped.*/\1/p')
    if [ -z "$counts" ]; then
        echo "$name: no result line (the stage did not finish)"
        p=0
        f=1
    fi
    total_p=$((total_p + ${p:-0}))
    total_f=$((total_f + ${f:-0}))
    total_s=$((total_s + ${s:-0}))
    echo "=== $name: ${p:-0} passed, ${f:-0} failed in $(( $(date +%s) - start )) s"
}

build_and_run() {
    bdir=$1
    shift
    if ! $MAKE -s -j"$JOBS" --no-print-directory BUILD="$bdir" "$@" all tests-build; then
        echo "build failed: 0 passed, 1 failed"
        return
    fi
    sh tests/run.sh "$bdir"
}

# A check that is one pass/fail of its own.
one() {
    if "$@"; then echo "1 passed, 0 failed"; else echo "0 passed, 1 failed"; fi
}
clang_build() {
    $MAKE -s -j"$JOBS" --no-print-directory CC=clang BUILD=build/clang all tests-build
}
demo_runs() {
    sh tests/demo.sh build >"$logs/demo.out" 2>&1 && grep -q '^demo finished' "$logs/demo.out" ||
        { tail -40 "$logs/demo.out"; return 1; }
}

stage lint one env LINT_FORMAT_STRICT=1 sh .ci/lint.sh
stage clang one clang_build
stage unit-integration build_and_run build
stage demo one demo_runs
stage asan build_and_run build/asan OPT="-O1 -g" \
    SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
stage valgrind sh tests/valgrind.sh build
[ -f tests/fuzz/run.sh ] && stage fuzz sh tests/fuzz/run.sh "${TASKQ_FUZZ_SECONDS:-30}"
[ -f tests/compose/run.sh ] && stage compose sh tests/compose/run.sh

line="$total_p passed, $total_f failed"
[ "$total_s" -gt 0 ] && line="$line, $total_s skipped"
echo "$line"
[ "$total_f" -eq 0 ]
