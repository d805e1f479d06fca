#!/bin/sh
# The taskq demo (`make demo`): a private redis-server on a free loopback
# port (unless TASKQ_REDIS_URL points at one), one taskq-worker, a handful of
# tasks of every built-in kind submitted with taskq-submit, their results
# printed, everything shut down cleanly. Usage: tests/demo.sh BUILD_DIR
set -eu
B=${1:-build}
SUBMIT="$B/taskq-submit"
WORKER="$B/taskq-worker"
tmp=$(mktemp -d /tmp/taskq-demo.XXXXXX)
redis_pid=""
worker_pid=""

cleanup() {
    if [ -n "$worker_pid" ] && kill -0 "$worker_pid" 2>/dev/null; then
        kill -TERM "$worker_pid" 2>/dev/null || true
        wait "$worker_pid" 2>/dev/null || true
    fi
    if [ -n "$redis_pid" ]; then
        kill -TERM "$redis_pid" 2>/dev/null || true
        wait "$redis_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@" || printf '  (exit status %d)\n' "$?"; }

if [ -z "${TASKQ_REDIS_URL:-}" ]; then
    step "starting a private redis-server"
    for attempt in 1 2 3 4 5 6 7 8 9 10; do
        port=$(( 20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 40000 ))
        redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
            --dir "$tmp" --logfile "$tmp/redis.log" &
        redis_pid=$!
        ok=0
        for i in $(seq 1 50); do
            if redis-cli -p "$port" ping >/dev/null 2>&1; then ok=1; break; fi
            kill -0 "$redis_pid" 2>/dev/null || break
            sleep 0.05
        done
        [ "$ok" = 1 ] && break
        kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true
        redis_pid=""
    done
    [ -n "$redis_pid" ] || { echo "demo: could not start redis-server" >&2; exit 1; }
    TASKQ_REDIS_URL="redis://127.0.0.1:$port/0"
    echo "redis-server pid $redis_pid on $TASKQ_REDIS_URL"
fi
export TASKQ_REDIS_URL
# Use a prefix of our own so a shared Redis is not disturbed.
export TASKQ_PREFIX="taskq-demo-$$:"

if [ "$(id -u)" -eq 0 ]; then
    # The worker refuses root by default (tasks would run as root); the demo
    # is a local, throwaway run, so it says --allow-root explicitly.
    export TASKQ_ALLOW_ROOT=1
fi

step "starting taskq-worker (prefork pool, 2 children)"
"$WORKER" --concurrency 2 --retry-backoff 0.2 --log-level info >"$tmp/worker.log" 2>&1 &
worker_pid=$!
echo "taskq-worker pid $worker_pid, log in the summary below"

step "submitting tasks and waiting for their results"
run "$SUBMIT" add 2 3 --wait --timeout 10
run "$SUBMIT" echo '{"hello":["taskq",1]}' --wait --timeout 10
run "$SUBMIT" add 1.5 2 --wait --timeout 10 --json
run "$SUBMIT" mul 6 7 --wait --timeout 10
run "$SUBMIT" sleep 0.5 --countdown 1 --wait --timeout 10 --json
run "$SUBMIT" fail '"something went wrong"' --retries 2 --wait --timeout 10

step "typed tasks: workers publish signatures, taskq-submit checks calls before enqueueing"
run "$SUBMIT" --list-tasks
run "$SUBMIT" mul 2 '"x"' --wait --timeout 10

step "failures end in a result record, bad messages in the dead-letter set"
run "$SUBMIT" no.such.task --wait --timeout 10
run "$SUBMIT" crash --wait --timeout 10
run "$SUBMIT" sleep 5 --wait --timeout 0.5

step "cancelling a delayed task before it starts"
id=$("$SUBMIT" echo '"never runs"' --countdown 60)
run "$SUBMIT" cancel "$id"
run "$SUBMIT" result "$id" --json

step "bulk: 200 tasks in one pipelined round trip, then waiting for all"
i=0
while [ $i -lt 200 ]; do
    printf '{"task":"add","args":[%d,%d]}\n' $i $i
    i=$((i + 1))
done >"$tmp/bulk.jsonl"
start=$(date +%s%N)
"$SUBMIT" --bulk "$tmp/bulk.jsonl" >"$tmp/ids"
for id in $(cat "$tmp/ids"); do "$SUBMIT" result "$id" --wait --timeout 10 >/dev/null; done
end=$(date +%s%N)
echo "$(wc -l <"$tmp/ids") tasks submitted and completed in $(( (end - start) / 1000000 )) ms"

step "dead-letter set"
run "$SUBMIT" dead list

step "shutting down (SIGTERM: warm shutdown)"
kill -TERM "$worker_pid"
wait "$worker_pid" && echo "taskq-worker exited with status 0"
worker_pid=""

step "worker log"
cat "$tmp/worker.log"
echo
echo "demo finished"
