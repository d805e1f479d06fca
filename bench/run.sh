#!/bin/sh
# bench/run.sh: taskq's benchmark (`make bench`), method in docs/PERFORMANCE.md.
#
# Starts a private redis-server (loopback, free port, persistence off), takes
# the ceiling with redis-benchmark on that same server, then runs every taskq
# scenario through build/bench/taskq_bench (the clock) and the real
# taskq-worker, flushing the database between scenarios. Each scenario has a
# time limit and reports "timeout" instead of a figure when it passes it.
# Ends with one Markdown table: absolute figures, ratios to the ceiling, the
# targets of issue 5 and whether each is met.
#
# Usage: bench/run.sh [BUILD_DIR] [--quick]    (BUILD_DIR defaults to build)
#   --quick  small N everywhere: a smoke run of well under a minute.
# Raw per-scenario lines are kept in $TASKQ_BENCH_OUT (default: a temp file,
# $B/bench/results.txt); the table is also written to $B/bench/table.md.
set -u
B=build
QUICK=0
for a in "$@"; do
    case $a in
    --quick) QUICK=1 ;;
    -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
    -*) echo "run.sh: unknown option $a" >&2; exit 64 ;;
    *) B=$a ;;
    esac
done

# ---- sizes and limits ---------------------------------------------------
if [ "$QUICK" = 1 ]; then
    CEIL_N=200000; C1_N=20000; SINGLE_N=5000; BULK_N=50000; DRAIN_N=5000
    RT_N=300; COST_N=5000; DEEP_N=50000; DEEP_FIRST=5000; SHALLOW_N=1000
    DELAY_N=5000; DELAY_SMALL=1000; LOAD_N=60000; WARM_N=20000; T_DRAIN=30; T_LONG=40
    REPS=1
else
    CEIL_N=2000000; C1_N=100000; SINGLE_N=50000; BULK_N=500000; DRAIN_N=50000
    RT_N=2000; COST_N=100000; DEEP_N=1000000; DEEP_FIRST=100000; SHALLOW_N=1000
    DELAY_N=100000; DELAY_SMALL=5000; LOAD_N=1000000; WARM_N=200000; T_DRAIN=120; T_LONG=300
    REPS=3 # drain rows: the best of 3, as the references are
fi
BATCH=1000
NPROC=$(nproc)
PREFIX="bench:"
QUEUE="bench"

# ---- build ----------------------------------------------------------------
if grep -q 'bench/bench.mk' Makefile 2>/dev/null; then
    MK="make -s --no-print-directory BUILD=$B"
else
    MK="make -s --no-print-directory -f Makefile -f bench/bench.mk BUILD=$B"
fi
$MK all "$B/bench/taskq_bench" || { echo "run.sh: build failed" >&2; exit 70; }
BENCH="$B/bench/taskq_bench"
WORKER="$B/taskq-worker"

if [ "$(id -u)" -eq 0 ]; then
    # Throwaway local workers: running them as root is deliberate here.
    export TASKQ_ALLOW_ROOT=1
fi
unset TASKQ_MAX_QUEUE_LENGTH TASKQ_SIGNING_KEY TASKQ_SIGNING_KEY_FILE TASKQ_SIGNING_KEYS 2>/dev/null || true

tmp=$(mktemp -d /tmp/taskq-bench.XXXXXX)
OUT=${TASKQ_BENCH_OUT:-$B/bench/results.txt}
TABLE=$B/bench/table.md
: >"$OUT"
redis_pid=""
WORKERS=""

stop_workers() {
    for p in $WORKERS; do kill -TERM "$p" 2>/dev/null || true; done
    for p in $WORKERS; do
        i=0
        while kill -0 "$p" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
        sed -i "/^$p\$/d" "$tmp/pids" 2>/dev/null || true
    done
    WORKERS=""
}

cleanup() {
    stop_workers
    # Workers started inside command substitutions (subshells) are not in
    # WORKERS here: every pid we started is also listed in $tmp/pids.
    if [ -f "$tmp/pids" ]; then
        for p in $(cat "$tmp/pids"); do kill -KILL "$p" 2>/dev/null || true; done
    fi
    if [ -n "$redis_pid" ]; then
        kill -TERM "$redis_pid" 2>/dev/null || true
        wait "$redis_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---- redis-server ---------------------------------------------------------
for attempt in 1 2 3 4 5 6 7 8 9 10; do
    PORT=$((20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 40000))
    redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$tmp" --logfile "$tmp/redis.log" &
    redis_pid=$!
    ok=0
    for i in $(seq 1 50); do
        if redis-cli -p "$PORT" ping >/dev/null 2>&1; then ok=1; break; fi
        kill -0 "$redis_pid" 2>/dev/null || break
        sleep 0.05
    done
    [ "$ok" = 1 ] && break
    kill "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
    redis_pid=""
done
[ -n "$redis_pid" ] || { echo "run.sh: could not start redis-server" >&2; exit 69; }
URL="redis://127.0.0.1:$PORT/0"
log "redis-server pid $redis_pid on $URL"
rcli() { redis-cli -p "$PORT" "$@"; }
flush() { rcli flushall >/dev/null; }

# ---- helpers --------------------------------------------------------------
# val KEY LINE: the value of KEY in a `key=value ...` line ("" when absent).
val() { printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n 1; }

# record NAME LINE: keep a scenario's line (for the table and the raw file).
record() {
    printf '%s %s\n' "$1" "$2" >>"$OUT"
    log "$1: $2"
}
get() { sed -n "s/^$1 //p" "$OUT" | tail -n 1; }

# bench LIMIT ARGS...: run taskq_bench with a time limit, print its line.
bench() {
    lim=$1; shift
    line=$(timeout -k 5 $((lim + 15)) "$BENCH" --port "$PORT" --prefix "$PREFIX" --queue "$QUEUE" \
        --timeout "$lim" "$@" 2>>"$tmp/bench.err" | tail -n 1)
    [ -n "$line" ] || line="scenario=unknown status=timeout"
    printf '%s\n' "$line"
}

# start_worker POOL CONCURRENCY: one more taskq-worker on the bench queue.
start_worker() {
    "$WORKER" --redis "$URL" --prefix "$PREFIX" --queues "$QUEUE" --pool "$1" \
        --concurrency "$2" --shutdown-timeout 3 --log-level warn \
        --prefetch "${TASKQ_BENCH_PREFETCH:-auto}" \
        >>"$tmp/worker.log" 2>&1 &
    WORKERS="$WORKERS $!"
    echo "$!" >>"$tmp/pids"
}

# with_workers LIMIT "POOL CONC [POOL CONC ...]" ARGS...: run a taskq_bench
# scenario that signals through --ready-file, start the workers on the
# signal, stop them when the scenario has printed its line.
with_workers() {
    lim=$1; specs=$2; shift 2
    rm -f "$tmp/ready"
    bench "$lim" --ready-file "$tmp/ready" "$@" >"$tmp/line" &
    bp=$!
    i=0
    while [ ! -f "$tmp/ready" ] && kill -0 "$bp" 2>/dev/null && [ $i -lt $((lim * 10)) ]; do
        sleep 0.05; i=$((i + 1))
    done
    if [ -f "$tmp/ready" ]; then
        set -- $specs
        while [ $# -ge 2 ]; do start_worker "$1" "$2"; shift 2; done
    fi
    wait "$bp" 2>/dev/null
    stop_workers
    cat "$tmp/line"
}

rss_kb() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$1/status" 2>/dev/null; }
children() {
    cat /proc/"$1"/task/*/children 2>/dev/null | tr ' ' '\n' | sed '/^$/d'
}
# rss_of PID: "parent=KB children=KB,KB max_child=KB"
rss_of() {
    p=$(rss_kb "$1"); list=""; max=0
    for c in $(children "$1"); do
        r=$(rss_kb "$c"); [ -n "$r" ] || continue
        list="${list:+$list,}$r"; [ "$r" -gt "$max" ] && max=$r
    done
    printf 'parent_kb=%s children_kb=%s max_child_kb=%s' "${p:-0}" "${list:--}" "$max"
}

# wait_idle_workers PID: give a freshly started worker time to settle.
settle() { sleep "${1:-1.5}"; }

T0=$(date +%s)
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- ceiling ----------------------------------------------------------------
# Each reference is the best of CEIL_RUNS runs: other work on a shared
# machine only ever slows a run down, and a ceiling taken in a slow moment
# would flatter every ratio (one run here measured 610k, others 840k-940k).
CEIL_RUNS=3
# rb_best N ARGS...: the best LPUSH rate of CEIL_RUNS redis-benchmark runs.
rb_best() {
    n=$1; shift
    best=""
    for k in $(seq 1 "$CEIL_RUNS"); do
        r=$(timeout 120 redis-benchmark -p "$PORT" "$@" -t lpush -n "$n" -q 2>/dev/null |
            tr '\r' '\n' | sed -n 's/^LPUSH: \([0-9.]*\) requests per second.*/\1/p' | tail -n 1)
        flush
        log "  run $k: ${r:-failed} ops/s"
        if [ -n "$r" ] && { [ -z "$best" ] || awk "BEGIN { exit !($r > $best) }"; }; then best=$r; fi
    done
    printf '%s' "$best"
}
log "ceiling: redis-benchmark LPUSH -c 50 -P 16 -d 512, then -c 1 -P 1 (best of $CEIL_RUNS each)"
ceil=$(rb_best "$CEIL_N" -c 50 -P 16 -d 512)
c1=$(rb_best "$C1_N" -c 1 -P 1)
record ceiling "scenario=ceiling status=${ceil:+ok} rate=${ceil:-0}"
record c1p1 "scenario=c1p1 status=${c1:+ok} rate=${c1:-0}"

# best_of NAME RUNS COMMAND...: RUNS runs of a scenario, each kept as
# NAME_rK; NAME is the fastest ok run (other sessions on a shared box only
# ever slow a run down, and the references are taken the same way).
best_of() {
    name=$1; runs=$2; shift 2; best=""; bestrate=-1
    for k in $(seq 1 "$runs"); do
        l=$("$@")
        flush
        record "${name}_r$k" "$l"
        r=$(val rate "$l")
        if [ "$(val status "$l")" = ok ] && awk -v a="$r" -v b="$bestrate" 'BEGIN { exit !(a > b) }'; then
            best=$l; bestrate=$r
        fi
        [ -n "$best" ] || best=$l
    done
    record "$name" "$best"
}

# ---- enqueue ----------------------------------------------------------------
# As many runs as their references (redis-benchmark, best of CEIL_RUNS).
best_of enq_single "$CEIL_RUNS" bench 60 enqueue-single "$SINGLE_N"
best_of enq_bulk "$CEIL_RUNS" bench 60 enqueue-bulk "$BULK_N" "$BATCH"

# ---- drain ------------------------------------------------------------------
# best_drain NAME "WORKER SPECS": the best of REPS drain runs.
best_drain() {
    best_of "$1" "$REPS" with_workers "$T_DRAIN" "$2" drain "$DRAIN_N"
}
for pool in prefork threads; do
    for c in 1 2 4; do
        best_drain "drain_${pool}_c$c" "$pool $c"
    done
done
for pool in prefork threads; do
    best_drain "drain_${pool}_2proc" "$pool 1 $pool 1"
    best_drain "drain_${pool}_4proc" "$pool 1 $pool 1 $pool 1 $pool 1"
done

# ---- round trip -------------------------------------------------------------
for pool in threads prefork; do
    start_worker "$pool" "$NPROC"; settle 1
    record "rt_$pool" "$(bench 60 roundtrip "$RT_N")"
    stop_workers; flush
done

# ---- Redis cost -------------------------------------------------------------
for pool in threads prefork; do
    record "cost_$pool" "$(with_workers "$T_DRAIN" "$pool $NPROC" redis-cost "$COST_N")"
    flush
done

# ---- depth ------------------------------------------------------------------
record depth_deep "$(with_workers "$T_LONG" "threads $NPROC" --first "$DEEP_FIRST" drain "$DEEP_N")"
flush
# 1,000 tasks drain in well under a second: five runs, pooled.
for k in 1 2 3 4 5; do
    record "depth_shallow_$k" "$(with_workers "$T_DRAIN" "threads $NPROC" drain "$SHALLOW_N")"
    flush
done
pooled=$(for k in 1 2 3 4 5; do get "depth_shallow_$k"; done | awk '
    { ok = 0; for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      if (v["status"] == "ok") { n += v["measured"] - 1; t += v["secs"]; runs++ } }
    END { if (runs) printf "scenario=drain status=ok runs=%d measured=%d secs=%.3f rate=%.0f", runs, n, t, n / t;
          else print "scenario=drain status=timeout" }')
record depth_shallow "$pooled"

# ---- delayed ----------------------------------------------------------------
for n in "$DELAY_N" "$DELAY_SMALL"; do
    start_worker threads "$NPROC"; settle 1
    record "delayed_$n" "$(bench 60 delayed "$n")"
    stop_workers; flush
done

# ---- RSS --------------------------------------------------------------------
start_worker threads "$NPROC"; wp=${WORKERS# }; settle 2
record rss_threads_idle "scenario=rss status=ok $(rss_of "$wp")"
stop_workers; flush
start_worker prefork "$NPROC"; wp=${WORKERS# }; settle 2
record rss_prefork_idle "scenario=rss status=ok $(rss_of "$wp")"
flush
record load_warm "$(bench "$T_LONG" load "$WARM_N" 20000)"
settle 2.5
record rss_prefork_warm "scenario=rss status=ok $(rss_of "$wp")"
# The rest in four parts, RSS after each: a leak grows with every part,
# while the allocator's noise (a few hundred kB either way) does not.
part=$(((LOAD_N - WARM_N) / 4)); secs=0; ldone=$WARM_N; lstatus=ok; samples=""
for k in 1 2 3 4; do
    l=$(bench "$T_LONG" load "$part" 20000)
    record "load_p$k" "$l"
    [ "$(val status "$l")" = ok ] || lstatus=$(val status "$l")
    secs=$(awk -v a="$secs" -v b="$(val secs "$l")" 'BEGIN { print a + b }')
    ldone=$((ldone + part))
    settle 2.5
    record "rss_prefork_p$k" "scenario=rss status=ok tasks=$ldone $(rss_of "$wp")"
    samples="${samples:+$samples,}$(val parent_kb "$(get "rss_prefork_p$k")")"
done
record load "scenario=load status=$lstatus n=$((ldone - WARM_N)) secs=$secs rate=$(awk -v n=$((ldone - WARM_N)) -v s="$secs" 'BEGIN { if (s > 0) printf "%.0f", n / s }') parent_samples_kb=$samples"
record rss_prefork_after "$(get rss_prefork_p4)"
stop_workers; flush

ELAPSED=$(($(date +%s) - T0))

# ---- the table ----------------------------------------------------------------
CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
RV=$(redis-server --version | sed -n 's/.*v=\([^ ]*\).*malloc=\([^ ]*\).*/\1 (\2)/p')
GV=$(${CC:-cc} --version 2>/dev/null | head -n 1)
TV=$("$WORKER" --version 2>/dev/null | head -n 1)
GIT=$(git rev-parse --short HEAD 2>/dev/null || echo "?")
DIRTY=$(git status --porcelain 2>/dev/null | grep -q . && echo "+local changes" || true)
CEIL=$(val rate "$(get ceiling)")
C1=$(val rate "$(get c1p1)")

# fmt NUMBER: thousands separators, no decimals.
fmt() { printf '%s' "$1" | awk '{ if ($1 == "" || $1 !~ /^-?[0-9.]+$/) { print "—"; exit }
    n = sprintf("%.0f", $1); s = ""; neg = (n ~ /^-/); if (neg) n = substr(n, 2)
    while (length(n) > 3) { s = "," substr(n, length(n) - 2) s; n = substr(n, 1, length(n) - 3) }
    print (neg ? "-" : "") n s }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "—";
    else printf "%.3f×", a / b }'; }
# ge A B: "met" when A >= B, "missed" otherwise, "—" when A is empty.
ge() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "") print "—"; else print (a + 0 >= b + 0) ? "met" : "**missed**" }'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || a + 0 < 0) print "—"; else print (a + 0 <= b + 0) ? "met" : "**missed**" }'; }

# rate_of NAME: the rate of an ok scenario, "" otherwise; status_of NAME.
status_of() { val status "$(get "$1")"; }
rate_of() { l=$(get "$1"); [ "$(val status "$l")" = ok ] && val rate "$l"; }
fig() { [ -n "$1" ] && fmt "$1" || printf '%s' "$(status_of "$2" | sed 's/^$/missing/')"; }

row() { printf '| %s | %s | %s | %s | %s |\n' "$1" "$2" "$3" "$4" "$5"; }
rrow() { # rrow LABEL NAME REF TARGET_RATIO: a rate row against a reference
    r=$(rate_of "$2")
    q=$(awk -v a="$r" -v b="$3" 'BEGIN { if (a == "" || b + 0 == 0) print ""; else print a / b }')
    if [ -n "$4" ]; then
        row "$1" "$(fig "$r" "$2") tasks/s" "$(ratio "$r" "$3")" "≥ $4×" "$(ge "$q" "$4")"
    else
        row "$1" "$(fig "$r" "$2") tasks/s" "$(ratio "$r" "$3")" "—" "—"
    fi
}


{
echo
echo "## taskq benchmark$( [ "$QUICK" = 1 ] && echo ' (--quick: small N, smoke run only)')"
echo
echo "- machine: $NPROC × $CPU, $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo), kernel $(uname -r); load average before the run: $LOAD0"
echo "- versions: Redis $RV; $GV; $TV (git $GIT$DIRTY)"
echo "- settings: redis-server on 127.0.0.1 TCP, --save \"\" --appendonly no; task \`noop\`, queue cap 10,000,000, argument validation on; results stored (TTL 86400 s), leases on (10 s); workers --log-level warn --prefetch ${TASKQ_BENCH_PREFETCH:-auto}; N: drain $(fmt "$DRAIN_N") (bulk pre-queued in batches of $BATCH; each drain row is the best of $REPS runs, every run in the raw lines), enqueue single $(fmt "$SINGLE_N"), bulk $(fmt "$BULK_N") (each the best of $CEIL_RUNS runs, like its reference); ceiling = best of $CEIL_RUNS runs of redis-benchmark -c 50 -P 16 -d 512 -t lpush -n $(fmt "$CEIL_N") (single-call reference: best of $CEIL_RUNS, -c 1 -P 1); run took ${ELAPSED} s"
echo
row "scenario" "taskq" "ratio" "target" "met"
row "---" "---:" "---:" "---" "---"
row "**ceiling**: redis-benchmark LPUSH -c 50 -P 16 -d 512" "$(fmt "$CEIL") ops/s" "1.000×" "—" "—"
row "redis-benchmark LPUSH -c 1 -P 1 (single-call reference)" "$(fmt "$C1") ops/s" "$(ratio "$C1" "$CEIL")" "—" "—"
r=$(rate_of enq_single); q=$(awk -v a="$r" -v b="$C1" 'BEGIN { if (a != "" && b + 0 > 0) print a / b }')
row "enqueue, single calls (taskq_submit)" "$(fig "$r" enq_single) tasks/s" "$(ratio "$r" "$C1") of c1/P1" "≥ 0.8× c1/P1" "$(ge "$q" 0.8)"
rrow "enqueue, bulk (taskq_submit_many, batches of $BATCH)" enq_bulk "$CEIL" 0.5
for c in 1 2 4; do
    t=""; [ "$c" = "$NPROC" ] && t=0.10
    rrow "drain, 1 worker, prefork -c $c$( [ "$c" = "$NPROC" ] && echo ' (default)')" "drain_prefork_c$c" "$CEIL" "$t"
done
for c in 1 2 4; do
    t=""; [ "$c" = "$NPROC" ] && t=0.20
    rrow "drain, 1 worker, threads -c $c" "drain_threads_c$c" "$CEIL" "$t"
done
for pool in prefork threads; do
    rrow "drain, 2 workers × $pool -c 1, one queue" "drain_${pool}_2proc" "$CEIL" ""
    rrow "drain, 4 workers × $pool -c 1, one queue" "drain_${pool}_4proc" "$CEIL" ""
done
for pool in threads prefork; do
    l=$(get "rt_$pool"); s=$(val status "$l")
    p50=$(val p50_ms "$l"); p99=$(val p99_ms "$l"); p999=$(val p999_ms "$l"); mx=$(val max_ms "$l")
    [ "$s" = ok ] || { p50=""; p99=""; }
    row "round trip submit→result, $pool -c $NPROC, $(fmt "$RT_N") sequential: p50" "${p50:-$s} ms" "—" "≤ 0.25 ms" "$(le "$p50" 0.25)"
    row "… p99 / p99.9 / max" "${p99:-$s} / ${p999:-—} / ${mx:-—} ms" "—" "p99 ≤ 1 ms" "$(le "$p99" 1)"
done
for pool in threads prefork; do
    l=$(get "cost_$pool"); s=$(val status "$l")
    cpu=$(val cpu_us_per_task "$l"); [ "$s" = ok ] || cpu=""
    row "Redis CPU per task, enqueue→result ($pool -c $NPROC, $(fmt "$COST_N") tasks)" "${cpu:-$s} µs" "—" "≤ 10 µs" "$(le "$cpu" 10)"
    row "… of which enqueue / Lua (EVALSHA usec) / other commands" "$(val enq_cpu_us_per_task "$l") / $(val lua_usec_per_task "$l") / $(val cmd_usec_per_task "$l") µs" "—" "—" "—"
    row "… commands (incl. inside Lua) / Lua calls / read events (≈ round trips) per task" "$(val cmds_per_task "$l") / $(val lua_calls_per_task "$l") / $(val reads_per_task "$l")" "—" "—" "—"
    # What one fully busy Redis core could drain at this cost: a bound on
    # every drain row, whatever the worker does.
    bound=$(awk -v a="$cpu" -v b="$(val enq_cpu_us_per_task "$l")" 'BEGIN { if (a != "" && b != "" && a - b > 0) print 1e6 / (a - b) }')
    row "… drain rate one Redis core allows at this cost: 10⁶ / (CPU − enqueue, µs)" "$(fmt "$bound") tasks/s" "$(ratio "$bound" "$CEIL")" "—" "—"
done
l=$(get cost_threads)
row "Redis memory per queued task (used_memory, no worker)" "$(val bytes_per_task "$l") B" "—" "—" "—"
deep=$(rate_of depth_deep)
sh1=$(rate_of depth_shallow)
q=$(awk -v a="$deep" -v b="$sh1" 'BEGIN { if (a != "" && b + 0 > 0) print a / b }')
row "depth: drain rate, first $(fmt "$DEEP_FIRST") of $(fmt "$DEEP_N") queued (threads -c $NPROC)" "$(fig "$deep" depth_deep) tasks/s" "$(ratio "$deep" "$CEIL")" "—" "—"
row "depth: drain rate, $(fmt "$SHALLOW_N") queued (5 runs pooled)" "$(fmt "$sh1") tasks/s" "$(ratio "$deep" "$sh1") deep/shallow" "deep/shallow ≥ 0.9" "$(ge "$q" 0.9)"
for n in "$DELAY_N" "$DELAY_SMALL"; do
    l=$(get "delayed_$n"); s=$(val status "$l")
    if [ "$s" = ok ]; then
        f="first $(val first_ms "$l") / all queued $(val all_queued_ms "$l") / all done $(val all_done_ms "$l") ms"
    else
        f="$s (left in delayed set: $(val left_delayed "$l"), pending list length: $(val pending_len "$l"))"
    fi
    row "delayed: $(fmt "$n") tasks due in the same second, time after due (threads -c $NPROC)" "$f" "—" "—" "$( [ "$s" = ok ] && echo — || echo '**failed**')"
done
l=$(get rss_threads_idle)
row "idle RSS, threads -c $NPROC (one process)" "$(fmt "$(val parent_kb "$l")") kB" "—" "≤ 4096 kB" "$(le "$(val parent_kb "$l")" 4096)"
l=$(get rss_prefork_idle)
ip=$(val parent_kb "$l"); ic=$(val max_child_kb "$l")
row "idle RSS, prefork -c $NPROC: parent" "$(fmt "$ip") kB" "—" "≤ 4096 kB" "$(le "$ip" 4096)"
row "idle RSS, prefork -c $NPROC: children" "$(val children_kb "$l") kB" "—" "≤ 2048 kB each" "$(le "$ic" 2048)"
l=$(get rss_prefork_after); lo=$(get load); lw=$(get rss_prefork_warm)
ap=$(val parent_kb "$l"); ac=$(val max_child_kb "$l")
wpk=$(val parent_kb "$lw"); wck=$(val max_child_kb "$lw")
row "RSS after the first $(fmt "$WARM_N") tasks (warm): parent / children" "$(fmt "$wpk") / $(val children_kb "$lw") kB" "—" "—" "—"
# Signed growth ("+180", "-56"): a worker can also end below its warm size.
gp=$(awk -v a="$ap" -v b="$wpk" 'BEGIN { if (a != "" && b != "") printf "%+d", a - b }')
gc=$(awk -v a="$ac" -v b="$wck" 'BEGIN { if (a != "" && b != "") printf "%+d", a - b }')
row "RSS after $(fmt "$LOAD_N") tasks (prefork -c $NPROC, $(fmt "$(val rate "$lo")") tasks/s, $(val status "$lo")): parent / children" "$(fmt "$ap") / $(val children_kb "$l") kB ($gp / $gc kB since warm; parent every $(fmt $(((LOAD_N - WARM_N) / 4))) tasks: $(val parent_samples_kb "$lo" | sed 's/,/, /g') kB)" "—" "growth since warm ≤ 512 kB" "$( [ "$(val status "$lo")" = ok ] && le "$(awk -v a="$gp" -v b="$gc" 'BEGIN { m = a > b ? a : b; print (m > 0 ? m : 0) }')" 512 || echo '—')"
echo
echo "Raw lines: $OUT; this table: $TABLE"
} | tee "$TABLE"
