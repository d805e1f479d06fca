#!/bin/sh
# make lint: module boundaries, cppcheck, and clang-format drift.
#  - common/ uses libc and jansson only (no hiredis, libevent, OpenSSL, no
#    other module of ours);
#  - broker/ may use common/;
#  - client/ and worker/ use broker/ and common/, never each other;
#  - taskq-submit includes only the public header (it is libtaskq's first user);
#  - installed headers include nothing of ours.
set -u
cd "$(dirname "$0")/.."
bad=0
say() { echo "lint: $*"; bad=1; }

for f in common/*.c common/*.h; do
    grep -nE '#include [<"](hiredis|event2|openssl|broker/|client/|worker/)' "$f" | sed "s|^|$f:|" |
        while read -r l; do echo "lint: common/ must not include this: $l"; done
    grep -qE '#include [<"](hiredis|event2|openssl|broker/|client/|worker/)' "$f" && bad=1
done
for f in broker/*.c broker/*.h; do
    if grep -nE '#include "(client|worker)/' "$f" >/dev/null; then say "$f includes client/ or worker/"; fi
done
for f in client/*.c client/*.h; do
    if grep -nE '#include "worker/' "$f" >/dev/null; then say "$f includes worker/"; fi
done
for f in worker/*.c worker/*.h; do
    if grep -nE '#include "client/|#include "taskq\.h"' "$f" >/dev/null; then say "$f includes client/"; fi
done
if grep -nE '#include "(common|broker|worker)/' client/taskq_submit.c >/dev/null; then
    say "client/taskq_submit.c must include only taskq.h"
fi
for h in client/taskq.h worker/taskq_worker.h; do
    if grep -nE '#include "' "$h" >/dev/null; then say "$h (installed) includes a project header"; fi
done

if command -v cppcheck >/dev/null 2>&1; then
    if ! cppcheck -q --error-exitcode=1 --enable=warning,portability --std=c11 \
        --suppress=missingIncludeSystem --inline-suppr -I. common broker client worker 2>&1; then
        say "cppcheck found problems"
    fi
fi

if command -v clang-format >/dev/null 2>&1 && [ "${LINT_FORMAT:-1}" = 1 ]; then
    drift=$(for f in $(git ls-files '*.c' '*.h' | grep -v '^tests/fuzz/corpus'); do
        clang-format "$f" | cmp -s - "$f" || echo "$f"
    done)
    if [ -n "$drift" ]; then
        echo "lint: not clang-formatted (run make format):"
        echo "$drift" | sed 's/^/  /'
        [ "${LINT_FORMAT_STRICT:-0}" = 1 ] && bad=1
    fi
fi
[ $bad -eq 0 ] && echo "lint: ok"
exit $bad
