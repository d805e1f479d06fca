#!/bin/sh
# Unit tests under valgrind: a binary passes when its tests pass and valgrind
# reports no error and no leak (--errors-for-leak-kinds=definite,indirect,possible).
# Usage: tests/valgrind.sh BUILD_DIR
set -u
B=$1
pass=0
fail=0
mkdir -p "$B/tests/logs"
for t in "$B"/tests/unit/test_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    log="$B/tests/logs/valgrind-$name.log"
    TASKQ_TEST_BUILD="$B" timeout 300 valgrind -q --error-exitcode=99 --leak-check=full \
        --errors-for-leak-kinds=definite,indirect,possible --show-leak-kinds=definite,indirect,possible \
        --trace-children=no --child-silent-after-fork=yes "$t" >"$log" 2>&1
    rc=$?
    if [ $rc -eq 0 ]; then
        pass=$((pass + 1))
        echo "ok valgrind/$name"
    else
        fail=$((fail + 1))
        echo "FAIL valgrind/$name (exit status $rc)"
        tail -40 "$log"
    fi
done
echo "$pass passed, $fail failed"
