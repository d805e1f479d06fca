#!/bin/sh
# tests/compose/run.sh: the docker-compose demo, built and run for real.
#
#   sh tests/compose/run.sh          (make test-compose)
#
# 1. installs docker.io and docker-compose when missing (debootstrap too,
#    when step 3 needs it);
# 2. uses the Docker daemon `docker info` reaches, or starts a private one
#    (own data/exec dirs, pidfile and socket in a temp dir, no iptables);
# 3. creates debian:bookworm-slim with debootstrap + `docker import` when the
#    daemon lacks it (no registry needed; the rootfs tarball is cached in
#    $TASKQ_DEBOOTSTRAP_CACHE, default /var/cache/taskq-debootstrap);
# 4. builds the images, brings the stack up with 3 workers, waits until they
#    are healthy and the submitter's workload exits 0;
# 5. runs a second, slower workload and SIGKILLs a worker that holds running
#    tasks in the middle of it: every task must still end as expected (the
#    dead worker's tasks come back when their lease expires);
# 6. SIGSTOPs a worker: the health check, which follows the heartbeat, must
#    turn it unhealthy, and healthy again after SIGCONT;
# 7. stops the other workers with SIGTERM and checks they exit 0;
# 8. tears down (`down -v`) and stops the daemon it started, on failure too.
#
# Where no Docker daemon can be had (not root, an unprivileged container) it
# prints "skipped: <reason>" and exits 0; with CI=true that is a failure.
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PROJECT=taskqtest$$
CACHE=${TASKQ_DEBOOTSTRAP_CACHE:-/var/cache/taskq-debootstrap}
MIRROR=${TASKQ_DEBIAN_MIRROR:-http://deb.debian.org/debian}
TMP=""
DOCKERD_PID=""
STACK_UP=""
RUN2_PID=""
SKIPPED=""

# ---- progress and timing ---------------------------------------------------

now_ms() { echo $(($(date +%s%N) / 1000000)); }
T0=$(now_ms)
STEP_T0=$T0
STEP_NAME=""
TIMINGS=""

fmt_s() { echo "$(($1 / 1000)).$(($1 % 1000 / 100))s"; }

# step NAME: end the current step (print its duration), start the next one.
step() {
    t=$(now_ms)
    if [ -n "$STEP_NAME" ]; then
        d=$((t - STEP_T0))
        echo "    ... $STEP_NAME: $(fmt_s $d)"
        TIMINGS="$TIMINGS$(printf '  %-44s %7s' "$STEP_NAME" "$(fmt_s $d)")
"
    fi
    STEP_NAME=${1:-}
    STEP_T0=$t
    [ -z "$STEP_NAME" ] || echo "[$(fmt_s $((t - T0)))] $STEP_NAME"
}

say() { echo "    $*"; }

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# skip REASON: cannot run here. Under CI=true that is a failure.
skip() {
    if [ "${CI:-}" = "true" ]; then
        fail "cannot run the compose test (CI=true): $*"
    fi
    SKIPPED=$*
    exit 0
}

# ---- cleanup, also after a failure or a signal -------------------------------

dc() { docker-compose -p "$PROJECT" -f "$ROOT/docker-compose.yml" "$@"; }

cleanup() {
    rc=$?
    trap - EXIT INT TERM
    set +e
    if [ -n "$RUN2_PID" ]; then
        kill "$RUN2_PID" 2>/dev/null
        wait "$RUN2_PID" 2>/dev/null
    fi
    if [ -n "$STACK_UP" ]; then
        step "tearing down (down -v)"
        dc down -v --remove-orphans -t 5 >"$TMP/down.log" 2>&1 || tail -20 "$TMP/down.log"
    fi
    if [ -n "$DOCKERD_PID" ]; then
        step "stopping the private dockerd"
        kill "$DOCKERD_PID" 2>/dev/null
        i=0
        while kill -0 "$DOCKERD_PID" 2>/dev/null && [ $i -lt 300 ]; do
            sleep 0.1
            i=$((i + 1))
        done
        if kill -0 "$DOCKERD_PID" 2>/dev/null; then
            say "dockerd did not stop in 30 s: SIGKILL"
            kill -9 "$DOCKERD_PID" 2>/dev/null
            sleep 0.5
        fi
    fi
    if [ -n "$TMP" ]; then
        # Mounts the daemon may have left behind (overlays, netns), deepest first.
        awk -v d="$TMP" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r |
            while read -r m; do umount -l "$m" 2>/dev/null; done
        rm -rf "$TMP"
    fi
    step ""
    if [ -n "$SKIPPED" ]; then
        # The last line, for the suite's tally: skipped is not passed.
        echo "skipped: $SKIPPED"
        echo "0 passed, 0 failed, 1 skipped"
        exit 0
    fi
    if [ -n "$TIMINGS" ]; then
        echo "timings:"
        printf '%s' "$TIMINGS"
        echo "  total                                        $(fmt_s $(($(now_ms) - T0)))"
    fi
    # The closing line the suite adds up (tests/suite.sh).
    if [ "$rc" -eq 0 ]; then
        echo "compose test: passed"
        echo "1 passed, 0 failed"
    else
        echo "compose test: FAILED"
        echo "0 passed, 1 failed"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

TMP=$(mktemp -d /tmp/taskq-compose.XXXXXX)

# ---- 1. tools ----------------------------------------------------------------

step "checking tools"
missing=""
command -v docker >/dev/null 2>&1 || missing="$missing docker.io"
command -v docker-compose >/dev/null 2>&1 || missing="$missing docker-compose"
if [ -n "$missing" ]; then
    [ "$(id -u)" -eq 0 ] || skip "not root, and$missing missing"
    step "installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null 2>&1 || true
    # shellcheck disable=SC2086 # a list of package names
    apt-get install -y -qq $missing >"$TMP/apt.log" 2>&1 || {
        tail -20 "$TMP/apt.log"
        skip "cannot install$missing"
    }
fi

# ---- 2. a Docker daemon ----------------------------------------------------------

step "finding a Docker daemon"
if docker info >/dev/null 2>&1; then
    say "using the daemon at ${DOCKER_HOST:-the default socket}"
else
    [ "$(id -u)" -eq 0 ] || skip "no Docker daemon reachable, and not root to start one"
    command -v dockerd >/dev/null 2>&1 || skip "no dockerd binary"
    step "starting a private dockerd"
    # Own state everywhere, so a daemon already on this machine is untouched;
    # no iptables or ip_forward changes (the compose network still works
    # between containers; builds use the host network for apt-get).
    dockerd --data-root "$TMP/data" --exec-root "$TMP/exec" --pidfile "$TMP/dockerd.pid" \
        -H "unix://$TMP/docker.sock" --iptables=false --ip-forward=false --bridge=none \
        --storage-driver=overlay2 >"$TMP/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    export DOCKER_HOST="unix://$TMP/docker.sock"
    i=0
    until docker info >/dev/null 2>&1; do
        if ! kill -0 "$DOCKERD_PID" 2>/dev/null || [ $i -ge 300 ]; then
            tail -15 "$TMP/dockerd.log" | sed 's/^/    dockerd: /'
            kill "$DOCKERD_PID" 2>/dev/null || true
            DOCKERD_PID=""
            skip "dockerd could not start here (no privileges for containers?)"
        fi
        sleep 0.1
        i=$((i + 1))
    done
    say "dockerd $(docker version -f '{{.Server.Version}}') ready, pid $DOCKERD_PID"
fi
say "$(docker-compose version --short 2>/dev/null | sed 's/^/docker-compose /')"

# ---- 3. the base image -------------------------------------------------------------

if ! docker image inspect debian:bookworm-slim >/dev/null 2>&1; then
    tarball="$CACHE/bookworm-minbase.tar"
    if [ ! -s "$tarball" ]; then
        step "debootstrap bookworm (minbase)"
        if ! command -v debootstrap >/dev/null 2>&1; then
            [ "$(id -u)" -eq 0 ] || skip "debootstrap missing and not root"
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap \
                >"$TMP/apt.log" 2>&1 || fail "cannot install debootstrap"
        fi
        debootstrap --variant=minbase bookworm "$TMP/rootfs" "$MIRROR" \
            >"$TMP/debootstrap.log" 2>&1 || {
            tail -20 "$TMP/debootstrap.log"
            fail "debootstrap failed"
        }
        # The same apt sources as this machine, deb822 style like the real
        # image (which has no sources.list).
        if [ -f /etc/apt/sources.list.d/debian.sources ]; then
            cp /etc/apt/sources.list.d/debian.sources "$TMP/rootfs/etc/apt/sources.list.d/"
            rm -f "$TMP/rootfs/etc/apt/sources.list"
        fi
        rm -rf "$TMP/rootfs/var/lib/apt/lists/"* "$TMP/rootfs/var/cache/apt/"*.bin
        mkdir -p "$CACHE"
        tar -C "$TMP/rootfs" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
        rm -rf "$TMP/rootfs"
    fi
    step "importing debian:bookworm-slim"
    docker import -c 'CMD ["bash"]' "$tarball" debian:bookworm-slim >/dev/null
    say "from $tarball ($(du -h "$tarball" | cut -f1))"
fi

# ---- 4. build and the first workload -------------------------------------------------

step "building the images"
dc build >"$TMP/build.log" 2>&1 || {
    tail -40 "$TMP/build.log"
    fail "docker-compose build failed (log above)"
}
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E '^taskq' | sed 's/^/    /'

step "up -d: redis, 3 workers, submitter"
STACK_UP=1
dc up -d >"$TMP/up.log" 2>&1 || {
    cat "$TMP/up.log"
    fail "docker-compose up failed"
}
workers=$(dc ps -q worker)
nworkers=$(echo "$workers" | grep -c .)
[ "$nworkers" -eq 3 ] || fail "expected 3 worker containers, got $nworkers"
submitter=$(dc ps -q submitter)
[ -n "$submitter" ] || fail "no submitter container"

step "waiting for 3 healthy workers"
i=0
while :; do
    states=$(for w in $workers; do docker inspect -f '{{.State.Health.Status}}' "$w"; done |
        tr '\n' ' ')
    [ "$states" = "healthy healthy healthy " ] && break
    [ $i -lt 60 ] || fail "workers not healthy after 30 s: $states"
    sleep 0.5
    i=$((i + 1))
done
say "health: $states"

step "first workload (submitter service)"
code=$(timeout 240 docker wait "$submitter") || fail "the submitter did not finish in 240 s"
docker logs "$submitter" >"$TMP/run1.log" 2>&1
sed 's/^/    | /' "$TMP/run1.log"
[ "$code" -eq 0 ] || fail "the submitter exited $code"
grep -q '^OK: .*; workers: 3$' "$TMP/run1.log" || fail "the workload did not run on all 3 workers"

# ---- 5. a worker SIGKILLed mid-workload -------------------------------------------

step "second workload, SIGKILL a worker"
dc run --rm -T submitter --tasks 300 --slow-share 50 --no-crash --seed 2 \
    >"$TMP/run2.log" 2>&1 &
RUN2_PID=$!
i=0
until grep -q '^submitted' "$TMP/run2.log"; do
    kill -0 "$RUN2_PID" 2>/dev/null || { cat "$TMP/run2.log"; fail "second workload died early"; }
    [ $i -lt 300 ] || fail "second workload did not submit in 30 s"
    sleep 0.1
    i=$((i + 1))
done
# The victim: the first worker, once it holds running tasks. Its worker id is
# host:pid:nonce, and a container's host name is its short id.
victim=$(echo "$workers" | head -1)
vhost=$(docker inspect -f '{{.Config.Hostname}}' "$victim")
i=0
# The tasks a worker holds: its leases are "<token> <worker id>", and held
# maps each task id to the token of the fetch it came in (PROTOCOL.md).
held_by() {
    dc exec -T redis redis-cli EVAL "
local out = {}
for _, l in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if string.find(l, ARGV[1], 1, true) then
    local t = string.match(l, '^%d+')
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], t, t)) do out[#out + 1] = id end
  end
end
return out" 2 'taskq:{default}:leases' 'taskq:{default}:held' " $1:"
}
while :; do
    held=$(held_by "$vhost" | grep -c . || true)
    [ "$held" -gt 0 ] && break
    [ $i -lt 100 ] || fail "worker $vhost never held a task"
    sleep 0.1
    i=$((i + 1))
done
docker kill -s KILL "$victim" >/dev/null
kill_ms=$(date +%s%3N)
# What the dead worker still owns can only be finished by another worker,
# after its lease expires.
orphans=$(held_by "$vhost")
norphans=$(echo "$orphans" | grep -c . || true)
say "killed worker $vhost; it held $norphans running tasks"
[ "$norphans" -gt 0 ] || fail "the killed worker held no task: nothing was tested"
code=0
wait "$RUN2_PID" || code=$?
RUN2_PID=""
sed 's/^/    | /' "$TMP/run2.log"
[ "$code" -eq 0 ] || fail "second workload exited $code after the kill"
# Each final record is in one of the results generations (docs/PROTOCOL.md#results).
find_rec="local g = redis.call('ZRANGE', KEYS[1], 0, -1)
for i = #g, 1, -1 do
  local r = redis.call('HGET', KEYS[1] .. ':' .. g[i], ARGV[1])
  if r then return r end
end"
# shellcheck disable=SC2016,SC2086 # $id and $0 are for the container's shell; a list of ids
records=$(dc exec -T redis sh -c 'for id; do redis-cli EVAL "$0" 1 "taskq:{default}:results" "$id"; done' \
    "$find_rec" $orphans)
last=0
for id in $orphans; do
    rec=$(echo "$records" | grep "\"id\":\"$id\"" || true)
    echo "$rec" | grep -Eq '"state":"(SUCCESS|FAILURE)"' ||
        fail "orphaned task $id did not finish: ${rec:-no record}"
    fin=$(echo "$rec" | grep -o '"finished_ms":[0-9]*' | cut -d: -f2)
    if [ "$fin" -gt "$last" ]; then last=$fin; fi
done
say "its $norphans tasks ran on other workers, the last $(fmt_s $((last - kill_ms))) after the kill"
say "every task of the workload ended as expected"

# ---- 6. the health check follows the heartbeat, not the process -------------

step "SIGSTOP a worker: unhealthy, SIGCONT: healthy"
# wait_health CONTAINER STATUS SECONDS
wait_health() {
    i=0
    until [ "$(docker inspect -f '{{.State.Health.Status}}' "$1")" = "$2" ]; do
        [ $i -lt $(($3 * 2)) ] || fail "worker $1 not $2 after $3 s"
        sleep 0.5
        i=$((i + 1))
    done
}
frozen=$(echo "$workers" | grep -v "$victim" | head -1)
# The worker is the child of the container's init (tini, pid 1).
# shellcheck disable=SC2016 # for the container's shell
docker exec "$frozen" sh -c 'kill -STOP $(cat /proc/1/task/1/children)'
t=$(now_ms)
wait_health "$frozen" unhealthy 60
say "stopped worker: unhealthy after $(fmt_s $(($(now_ms) - t))) (its process still exists)"
# shellcheck disable=SC2016
docker exec "$frozen" sh -c 'kill -CONT $(cat /proc/1/task/1/children)'
t=$(now_ms)
wait_health "$frozen" healthy 30
say "resumed worker: healthy again after $(fmt_s $(($(now_ms) - t)))"

# ---- 7. warm shutdown of the survivors -------------------------------------------

step "SIGTERM the other workers"
dc stop -t 30 worker >"$TMP/stop.log" 2>&1 || { cat "$TMP/stop.log"; fail "stop failed"; }
for w in $workers; do
    [ "$w" = "$victim" ] && continue
    ec=$(docker inspect -f '{{.State.ExitCode}}' "$w")
    [ "$ec" -eq 0 ] || fail "worker $w exited $ec after SIGTERM (want 0)"
done
say "the surviving workers exited 0"
