/* Unit tests for worker/tq_pool (prefork and threads) on a real event_base
 * with real children and threads: every job's `done` arrives exactly once
 * with the right outcome; a crashing child is reported with its signal and
 * replaced; hard limits kill, soft limits interrupt; children are recycled
 * by task count and memory; kill and free abort running jobs; progress and
 * large messages cross the pipe. The loop is run until a condition holds or
 * a monotonic deadline passes; no test sleeps to synchronise. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/tq_util.h"
#include "tq_pool.h"

#define MAXJOBS 64

typedef struct rec {
    int done; /* times `done` was called for this job (must end at 1) */
    tq_outcome out;
    int nprogress;
    double last_fraction;
    char last_message[32];
} rec;

typedef struct fx {
    struct event_base *base;
    tq_registry *reg;
    tq_msg_limits lim;
    tq_logger log;
    tq_pool *pool;
    rec recs[MAXJOBS];
    char *msgs[MAXJOBS];
    int ndone;
    int cond_n;   /* argument of the run_until conditions */
    int cond_job; /* the job they look at */
} fx;

static void assert_has(const char *s, const char *sub)
{
    if (!s || !strstr(s, sub))
        fail_msg("'%s' does not contain '%s'", s ? s : "(null)", sub);
}

static int t_pid(taskq_ctx *ctx, json_t *args, json_t *kwargs, json_t **result)
{
    (void)ctx;
    (void)args;
    (void)kwargs;
    *result = json_integer(getpid());
    return 0;
}

/* t.block: says it runs (one progress report), then waits for the stop
 * flag, so a test knows the job has really started. */
static int t_block(taskq_ctx *ctx, json_t *args, json_t *kwargs, json_t **result)
{
    (void)args;
    (void)kwargs;
    (void)result;
    taskq_progress(ctx, 0.0, "running");
    while (!taskq_should_stop(ctx)) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return taskq_retry(ctx, 0, "WorkerShutdown", "t.block: stopped");
}

/* t.grow: appends to its arguments and returns how many it has then: a
 * task may change what it was given, and nobody else may see that. */
static int t_grow(taskq_ctx *ctx, json_t *args, json_t *kwargs, json_t **result)
{
    (void)ctx;
    json_array_append_new(args, json_string("added"));
    json_object_set_new(kwargs, "added", json_true());
    *result = json_integer((json_int_t)json_array_size(args));
    return 0;
}

/* What t.late saw once it returned: the length of its task id, or -1 until
 * then. The one piece of state a test reads across threads. */
static int late_seen = -1;

/* t.late: ignores every stop request for LATE_MS, then reads its message
 * (through the context), long after an abandoning tq_pool_kill. */
#define LATE_MS 3600
static int t_late(taskq_ctx *ctx, json_t *args, json_t *kwargs, json_t **result)
{
    (void)args;
    (void)kwargs;
    taskq_progress(ctx, 0.0, "running");
    struct timespec ts = {LATE_MS / 1000, (LATE_MS % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    const char *id = taskq_ctx_id(ctx);
    *result = json_string(id);
    __atomic_store_n(&late_seen, (int)strlen(id), __ATOMIC_RELEASE);
    return 0;
}

static void done_cb(void *arg, void *cookie, tq_outcome *out)
{
    fx *f = arg;
    rec *r = cookie;
    assert_true(r >= f->recs && r < f->recs + MAXJOBS);
    if (r->done++ == 0)
        r->out = *out; /* take ownership of the heap fields */
    else
        tq_outcome_clear(out);
    f->ndone++;
}

static void progress_cb(void *arg, void *cookie, double fraction, const char *message)
{
    (void)arg;
    rec *r = cookie;
    r->nprogress++;
    r->last_fraction = fraction;
    snprintf(r->last_message, sizeof(r->last_message), "%s", message ? message : "");
}

static int setup(void **state)
{
    fx *f = tq_xcalloc(1, sizeof(*f));
    f->base = event_base_new();
    f->reg = tq_registry_new();
    tq_builtin_register(f->reg);
    taskq_register(f->reg, "t.pid", t_pid, NULL);
    taskq_register(f->reg, "t.block", t_block, NULL);
    taskq_register(f->reg, "t.grow", t_grow, NULL);
    taskq_register(f->reg, "t.late", t_late, NULL);
    tq_msg_limits_default(&f->lim);
    f->log.level = TQ_LOG_ERROR;
    f->log.name = "test";
    *state = f;
    return f->base ? 0 : -1;
}

static int teardown(void **state)
{
    fx *f = *state;
    tq_pool_free(f->pool);
    for (int i = 0; i < MAXJOBS; i++) {
        tq_outcome_clear(&f->recs[i].out);
        free(f->msgs[i]);
    }
    tq_registry_free(f->reg);
    event_base_free(f->base);
    free(f);
    return 0;
}

static void make_pool(fx *f, tq_pool_kind kind, int conc, long max_tasks, long max_mem_kb)
{
    tq_pool_config cfg;
    char err[256] = "";
    memset(&cfg, 0, sizeof(cfg));
    cfg.kind = kind;
    cfg.concurrency = conc;
    cfg.max_tasks_per_child = max_tasks;
    cfg.max_memory_per_child_kb = max_mem_kb;
    cfg.reg = f->reg;
    cfg.limits = &f->lim;
    cfg.log = &f->log;
    cfg.done = done_cb;
    cfg.progress = progress_cb;
    cfg.arg = f;
    f->pool = tq_pool_new(f->base, &cfg, err, sizeof(err));
    if (!f->pool)
        fail_msg("tq_pool_new: %s", err);
}

/* Submit job i: `task` with JSON args (NULL: none). */
static int submit(fx *f, int i, const char *task, const char *args, int64_t soft, int64_t hard)
{
    json_error_t e;
    tq_msg *m = tq_msg_new("job", task, "default");
    if (args) {
        json_t *a = json_loads(args, 0, &e);
        assert_non_null(a);
        tq_msg_set_args(m, a);
    }
    size_t len;
    free(f->msgs[i]);
    f->msgs[i] = tq_msg_encode(m, &len);
    tq_msg_free(m);
    tq_pool_job job = {&f->recs[i], f->msgs[i], len, soft, hard, NULL};
    return tq_pool_submit(f->pool, &job);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

/* Run the loop until cond(f) holds; 0 if it did before `ms` passed. */
static int run_until(fx *f, int (*cond)(fx *), int ms)
{
    int64_t deadline = tq_mono_ms() + ms;
    struct event *tick = evtimer_new(f->base, tick_cb, NULL);
    int rc = -1;
    for (;;) {
        if (cond(f)) {
            rc = 0;
            break;
        }
        int64_t left = deadline - tq_mono_ms();
        if (left <= 0)
            break;
        struct timeval tv = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000};
        evtimer_add(tick, &tv); /* wakes the loop at the deadline at the latest */
        event_base_loop(f->base, EVLOOP_ONCE);
    }
    event_free(tick);
    return rc;
}

static int done_n(fx *f)
{
    return f->ndone >= f->cond_n;
}

static int idle_n(fx *f)
{
    return tq_pool_idle(f->pool) >= f->cond_n;
}

static void wait_done(fx *f, int n, int ms)
{
    f->cond_n = n;
    if (run_until(f, done_n, ms) < 0)
        fail_msg("only %d of %d jobs done after %d ms", f->ndone, n, ms);
}

static void wait_idle(fx *f, int n, int ms)
{
    f->cond_n = n;
    if (run_until(f, idle_n, ms) < 0)
        fail_msg("only %d of %d executors idle after %d ms", tq_pool_idle(f->pool), n, ms);
}

static int progress_n(fx *f)
{
    return f->recs[f->cond_job].nprogress >= f->cond_n;
}

/* Run the loop until job i has reported n progress steps. */
static void wait_progress(fx *f, int i, int n, int ms)
{
    f->cond_job = i;
    f->cond_n = n;
    if (run_until(f, progress_n, ms) < 0)
        fail_msg("job %d reported %d of %d progress steps after %d ms", i, f->recs[i].nprogress, n,
                 ms);
}

static long result_long(const rec *r)
{
    assert_int_equal(r->out.status, TQ_OUT_SUCCESS);
    assert_non_null(r->out.result);
    return strtol(r->out.result, NULL, 10);
}

/* Run job i (t.pid) alone and return the pid of the executor that ran it. */
static long run_pid(fx *f, int i)
{
    int before = f->ndone;
    wait_idle(f, 1, 5000);
    assert_int_equal(submit(f, i, "t.pid", NULL, 0, 0), 0);
    wait_done(f, before + 1, 5000);
    return result_long(&f->recs[i]);
}

static void echo_many(fx *f, tq_pool_kind kind)
{
    enum { CONC = 4, N = 40 };
    make_pool(f, kind, CONC, 0, 0);
    assert_int_equal(tq_pool_idle(f->pool), CONC);
    assert_int_equal(tq_pool_running(f->pool), 0);
    int next = 0;
    /* Fill every executor; one more is refused. */
    for (; next < CONC; next++) {
        char args[32];
        snprintf(args, sizeof(args), "[%d]", next);
        assert_int_equal(submit(f, next, "echo", args, 0, 0), 0);
    }
    assert_int_equal(tq_pool_idle(f->pool), 0);
    assert_int_equal(tq_pool_running(f->pool), CONC);
    assert_int_equal(submit(f, next, "echo", "[0]", 0, 0), -1);
    int64_t deadline = tq_mono_ms() + 10000;
    while (f->ndone < N && tq_mono_ms() < deadline) {
        while (next < N && tq_pool_idle(f->pool) > 0) {
            char args[32];
            snprintf(args, sizeof(args), "[%d]", next);
            assert_int_equal(submit(f, next, "echo", args, 0, 0), 0);
            next++;
        }
        wait_done(f, f->ndone + 1, 5000);
    }
    assert_int_equal(f->ndone, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(f->recs[i].done, 1);
        assert_int_equal(result_long(&f->recs[i]), i);
        assert_true(f->recs[i].out.runtime_ms >= 0);
        assert_true(f->recs[i].out.cpu_ms >= 0);
        if (kind == TQ_POOL_PREFORK)
            assert_true(f->recs[i].out.maxrss_kb > 0);
        else
            assert_int_equal(f->recs[i].out.maxrss_kb, -1);
    }
    assert_int_equal(tq_pool_running(f->pool), 0);
    assert_int_equal(tq_pool_idle(f->pool), CONC);
}

static void test_pool_prefork_echo_many(void **state)
{
    echo_many(*state, TQ_POOL_PREFORK);
}

static void test_pool_threads_echo_many(void **state)
{
    echo_many(*state, TQ_POOL_THREADS);
}

/* Tasks run in other processes: each child has its own pid, not ours. */
static void test_pool_prefork_runs_in_children(void **state)
{
    fx *f = *state;
    make_pool(f, TQ_POOL_PREFORK, 2, 0, 0);
    assert_int_equal(submit(f, 0, "t.pid", NULL, 0, 0), 0);
    assert_int_equal(submit(f, 1, "t.pid", NULL, 0, 0), 0);
    wait_done(f, 2, 5000);
    long a = result_long(&f->recs[0]), b = result_long(&f->recs[1]);
    assert_true(a != getpid() && b != getpid());
    assert_true(a != b);
    /* Long-lived: the same child serves the next job. */
    long c = run_pid(f, 2);
    assert_true(c == a || c == b);
}

static void crash_and_replace(fx *f, const char *kwargs_task, int sig, const char *signame)
{
    make_pool(f, TQ_POOL_PREFORK, 1, 0, 0);
    long pid1 = run_pid(f, 0);
    json_error_t e;
    tq_msg *m = tq_msg_new("job", "crash", "default");
    if (kwargs_task)
        tq_msg_set_kwargs(m, json_loads(kwargs_task, 0, &e));
    size_t len;
    f->msgs[1] = tq_msg_encode(m, &len);
    tq_msg_free(m);
    tq_pool_job job = {&f->recs[1], f->msgs[1], len, 0, 0, NULL};
    assert_int_equal(tq_pool_submit(f->pool, &job), 0);
    wait_done(f, 2, 5000);
    const tq_outcome *o = &f->recs[1].out;
    assert_int_equal(f->recs[1].done, 1);
    assert_int_equal(o->status, TQ_OUT_CRASH);
    assert_int_equal(o->signal, sig);
    assert_int_equal(o->time_limit, 0);
    assert_string_equal(o->err_type, "WorkerLostError");
    assert_has(o->err_message, signame);
    /* A replacement child was forked and runs the next job. */
    long pid2 = run_pid(f, 2);
    assert_true(pid2 != pid1);
    assert_int_equal(f->ndone, 3);
}

static void test_pool_prefork_crash_segv(void **state)
{
    crash_and_replace(*state, NULL, SIGSEGV, "killed by signal 11 (SIGSEGV)");
}

static void test_pool_prefork_crash_abort(void **state)
{
    crash_and_replace(*state, "{\"signal\":\"abort\"}", SIGABRT, "killed by signal 6 (SIGABRT)");
}

/* An idle child that dies (OOM killer, operator) is replaced too. */
static void test_pool_prefork_idle_child_killed(void **state)
{
    fx *f = *state;
    make_pool(f, TQ_POOL_PREFORK, 1, 0, 0);
    long pid1 = run_pid(f, 0);
    assert_int_equal(kill((pid_t)pid1, SIGKILL), 0);
    /* Wait until it is a zombie (its socket closed), without reaping it. */
    siginfo_t si;
    assert_int_equal(waitid(P_PID, (id_t)pid1, &si, WEXITED | WNOWAIT), 0);
    /* Before the pool has seen SIGCHLD it still looks idle: the job is
     * refused rather than lost, and the child no longer counts as idle. */
    assert_int_equal(submit(f, 1, "t.pid", NULL, 0, 0), -1);
    assert_int_equal(tq_pool_idle(f->pool), 0);
    assert_int_equal(f->recs[1].done, 0);
    /* The pool reaps and replaces it; the next job runs in a new child and
     * nothing was reported for the idle one. */
    long pid2 = run_pid(f, 1);
    assert_true(pid2 != pid1);
    assert_int_equal(f->ndone, 2);
}

static void test_pool_prefork_hard_limit(void **state)
{
    fx *f = *state;
    make_pool(f, TQ_POOL_PREFORK, 1, 0, 0);
    int64_t t0 = tq_mono_ms();
    assert_int_equal(submit(f, 0, "hang", NULL, 0, 200), 0);
    wait_done(f, 1, 5000);
    int64_t took = tq_mono_ms() - t0;
    const tq_outcome *o = &f->recs[0].out;
    assert_int_equal(o->status, TQ_OUT_CRASH);
    assert_int_equal(o->time_limit, 1);
    assert_int_equal(o->signal, SIGKILL);
    assert_string_equal(o->err_type, "TimeLimitExceeded");
    assert_string_equal(o->err_message, "hard time limit of 200 ms exceeded");
    assert_true(took >= 200);
    assert_true(o->runtime_ms >= 200);
    /* The slot is refilled and works. */
    run_pid(f, 1);
}

static void soft_limit(fx *f, tq_pool_kind kind)
{
    make_pool(f, kind, 1, 0, 0);
    int64_t t0 = tq_mono_ms();
    assert_int_equal(submit(f, 0, "sleep", "[5]", 100, 0), 0);
    wait_done(f, 1, 3000);
    int64_t took = tq_mono_ms() - t0;
    const tq_outcome *o = &f->recs[0].out;
    assert_int_equal(o->status, TQ_OUT_FAILURE);
    assert_string_equal(o->err_type, "SoftTimeLimitExceeded");
    assert_true(took >= 100);
    assert_true(took < 2000);
    /* The flag does not leak into the next job. */
    assert_int_equal(submit(f, 1, "sleep", "[0.05]", 0, 0), 0);
    wait_done(f, 2, 3000);
    assert_int_equal(f->recs[1].out.status, TQ_OUT_SUCCESS);
}

static void test_pool_prefork_soft_limit(void **state)
{
    soft_limit(*state, TQ_POOL_PREFORK);
}

static void test_pool_threads_soft_limit(void **state)
{
    soft_limit(*state, TQ_POOL_THREADS);
}

/* Threads cannot be killed: a hard limit is ignored (the job completes). */
static void test_pool_threads_hard_limit_ignored(void **state)
{
    fx *f = *state;
    make_pool(f, TQ_POOL_THREADS, 1, 0, 0);
    assert_int_equal(submit(f, 0, "sleep", "[0.2]", 0, 50), 0);
    wait_done(f, 1, 3000);
    assert_int_equal(f->recs[0].out.status, TQ_OUT_SUCCESS);
}

static void stopping(fx *f, tq_pool_kind kind)
{
    make_pool(f, kind, 1, 0, 0);
    assert_int_equal(submit(f, 0, "sleep", "[10]", 0, 0), 0);
    /* At once: the executor may not even have read the job yet (for a fresh
     * child, not yet installed its handlers); the request must still hold. */
    int64_t t0 = tq_mono_ms();
    tq_pool_stopping(f->pool);
    wait_done(f, 1, 3000);
    assert_true(tq_mono_ms() - t0 < 2000);
    assert_int_equal(f->recs[0].out.status, TQ_OUT_RETRY);
    assert_string_equal(f->recs[0].out.err_type, "WorkerShutdown");
}

static void test_pool_prefork_stopping(void **state)
{
    stopping(*state, TQ_POOL_PREFORK);
}

static void test_pool_threads_stopping(void **state)
{
    stopping(*state, TQ_POOL_THREADS);
}

static void test_pool_prefork_recycle_tasks(void **state)
{
    fx *f = *state;
    make_pool(f, TQ_POOL_PREFORK, 1, 2, 0);
    long p[6];
    for (int i = 0; i < 6; i++)
        p[i] = run_pid(f, i);
    /* Two tasks per child, then a fresh one; recycling is not an error. */
    assert_true(p[0] == p[1] && p[2] == p[3] && p[4] == p[5]);
    assert_true(p[0] != p[2] && p[2] != p[4] && p[0] != p[4]);
    for (int i = 0; i < 6; i++)
        assert_int_equal(f->recs[i].done, 1);
    assert_int_equal(f->ndone, 6);
}

static void test_pool_prefork_recycle_memory(void **state)
{
    fx *f = *state;
    /* Any process is above 1 kB: every child exits after one task. */
    make_pool(f, TQ_POOL_PREFORK, 1, 0, 1);
    long a = run_pid(f, 0), b = run_pid(f, 1), c = run_pid(f, 2);
    assert_true(a != b && b != c && a != c);
    assert_int_equal(f->ndone, 3);
}

static void test_pool_prefork_kill(void **state)
{
    fx *f = *state;
    make_pool(f, TQ_POOL_PREFORK, 3, 0, 0);
    assert_int_equal(submit(f, 0, "hang", NULL, 0, 0), 0);
    assert_int_equal(submit(f, 1, "sleep", "[30]", 0, 0), 0);
    assert_int_equal(tq_pool_running(f->pool), 2);
    int64_t t0 = tq_mono_ms();
    tq_pool_kill(f->pool);
    /* Synchronous: both jobs are reported before kill returns. */
    assert_int_equal(f->ndone, 2);
    assert_true(tq_mono_ms() - t0 < 2000);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(f->recs[i].done, 1);
        assert_int_equal(f->recs[i].out.status, TQ_OUT_ABORTED);
    }
    assert_int_equal(tq_pool_running(f->pool), 0);
    /* A killed pool takes no more work and respawns nothing. */
    assert_int_equal(tq_pool_idle(f->pool), 0);
    assert_int_equal(submit(f, 2, "echo", "[1]", 0, 0), -1);
    tq_pool_free(f->pool);
    f->pool = NULL;
    assert_int_equal(f->ndone, 2);
}

static void test_pool_threads_kill(void **state)
{
    fx *f = *state;
    make_pool(f, TQ_POOL_THREADS, 2, 0, 0);
    assert_int_equal(submit(f, 0, "t.block", NULL, 0, 0), 0);
    wait_progress(f, 0, 1, 5000);
    int64_t t0 = tq_mono_ms();
    tq_pool_kill(f->pool);
    /* The task saw the stop flag and returned within kill's wait: its real
     * outcome is delivered, synchronously. */
    assert_int_equal(f->ndone, 1);
    assert_true(tq_mono_ms() - t0 < 2000);
    assert_int_equal(f->recs[0].out.status, TQ_OUT_RETRY);
    assert_string_equal(f->recs[0].out.err_type, "WorkerShutdown");
    assert_int_equal(submit(f, 1, "echo", "[1]", 0, 0), -1);
}

/* Freeing a pool with running jobs aborts them, each reported once. */
static void test_pool_prefork_free_aborts(void **state)
{
    fx *f = *state;
    make_pool(f, TQ_POOL_PREFORK, 2, 0, 0);
    assert_int_equal(submit(f, 0, "hang", NULL, 0, 0), 0);
    tq_pool_free(f->pool);
    f->pool = NULL;
    assert_int_equal(f->ndone, 1);
    assert_int_equal(f->recs[0].out.status, TQ_OUT_ABORTED);
}

static void progress(fx *f, tq_pool_kind kind)
{
    make_pool(f, kind, 1, 0, 0);
    assert_int_equal(submit(f, 0, "progress", "[4]", 0, 0), 0);
    wait_done(f, 1, 5000);
    assert_int_equal(result_long(&f->recs[0]), 4);
    /* Every report reached the loop before the outcome. */
    assert_int_equal(f->recs[0].nprogress, 5);
    assert_true(f->recs[0].last_fraction == 1.0);
    assert_string_equal(f->recs[0].last_message, "step 4/4");
}

static void test_pool_prefork_progress(void **state)
{
    progress(*state, TQ_POOL_PREFORK);
}

static void test_pool_threads_progress(void **state)
{
    progress(*state, TQ_POOL_THREADS);
}

/* Messages and results far larger than a socket buffer cross the pipe
 * whole (partial writes and frame reassembly). */
static void test_pool_prefork_large_message(void **state)
{
    fx *f = *state;
    enum { SLEN = 200000 };
    make_pool(f, TQ_POOL_PREFORK, 1, 0, 0);
    json_t *args = json_array();
    char *s = tq_xmalloc(SLEN + 1);
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < SLEN; i++)
            s[i] = (char)('a' + (i + k) % 26);
        s[SLEN] = '\0';
        json_array_append_new(args, json_string(s));
    }
    free(s);
    tq_msg *m = tq_msg_new("big", "echo", "default");
    tq_msg_set_args(m, json_incref(args));
    size_t len;
    f->msgs[0] = tq_msg_encode(m, &len);
    tq_msg_free(m);
    assert_true(len > 600000);
    tq_pool_job job = {&f->recs[0], f->msgs[0], len, 0, 0, NULL};
    assert_int_equal(tq_pool_submit(f->pool, &job), 0);
    wait_done(f, 1, 10000);
    assert_int_equal(f->recs[0].out.status, TQ_OUT_SUCCESS);
    json_error_t e;
    json_t *got = json_loads(f->recs[0].out.result, 0, &e);
    assert_non_null(got);
    assert_true(json_equal(got, args));
    json_decref(got);
    json_decref(args);
}

/* Bytes that are not a message reach tq_exec unchanged and fail cleanly. */
static void test_pool_prefork_malformed(void **state)
{
    fx *f = *state;
    make_pool(f, TQ_POOL_PREFORK, 1, 0, 0);
    static const char junk[] = "{\"v\":1,\0\xff\xfe}";
    tq_pool_job job = {&f->recs[0], junk, sizeof(junk) - 1, 0, 0, NULL};
    assert_int_equal(tq_pool_submit(f->pool, &job), 0);
    wait_done(f, 1, 5000);
    assert_int_equal(f->recs[0].out.status, TQ_OUT_FAILURE);
    assert_string_equal(f->recs[0].out.err_type, "MalformedMessage");
    assert_int_equal(f->recs[0].out.no_retry, 1);
    /* Unknown tasks too, and the child survives both. */
    assert_int_equal(submit(f, 1, "no.such", NULL, 0, 0), 0);
    wait_done(f, 2, 5000);
    assert_string_equal(f->recs[1].out.err_type, "NotRegistered");
    assert_string_equal(f->recs[1].out.err_message, "unregistered task no.such");
}

static void test_pool_bad_config(void **state)
{
    fx *f = *state;
    tq_pool_config cfg;
    char err[256] = "";
    memset(&cfg, 0, sizeof(cfg));
    cfg.reg = f->reg;
    cfg.done = done_cb;
    cfg.concurrency = 0;
    assert_null(tq_pool_new(f->base, &cfg, err, sizeof(err)));
    assert_true(err[0] != '\0');
    cfg.concurrency = 1;
    cfg.done = NULL;
    assert_null(tq_pool_new(f->base, &cfg, err, sizeof(err)));
    tq_pool_free(NULL);
}

/* ---- the backlog ------------------------------------------------------ */

typedef struct reclaimed {
    void *cookies[MAXJOBS];
    int n;
} reclaimed;

static void reclaim_cb(void *arg, void *cookie)
{
    reclaimed *r = arg;
    assert_true(r->n < MAXJOBS);
    r->cookies[r->n++] = cookie;
}

/* Jobs beyond the executors wait in the backlog, in order; reclaim takes
 * back exactly the ones that have not started, and `done` never comes for
 * them; the rest still run. */
static void backlog(fx *f, tq_pool_kind kind)
{
    make_pool(f, kind, 2, 0, 0);
    tq_pool_set_backlog(f->pool, 3);
    assert_int_equal(tq_pool_idle(f->pool), 8);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(submit(f, i, "t.block", NULL, 0, 0), 0);
        wait_progress(f, i, 1, 5000);
    }
    for (int i = 2; i < 8; i++) {
        char args[32];
        snprintf(args, sizeof(args), "[%d]", i);
        assert_int_equal(submit(f, i, "echo", args, 0, 0), 0);
    }
    assert_int_equal(tq_pool_idle(f->pool), 0);
    assert_int_equal(tq_pool_running(f->pool), 8);
    assert_int_equal(submit(f, 8, "echo", "[8]", 0, 0), -1);

    reclaimed r = {{NULL}, 0};
    assert_int_equal(tq_pool_reclaim(f->pool, reclaim_cb, &r), 6);
    assert_int_equal(r.n, 6);
    for (int i = 0; i < 6; i++)
        assert_ptr_equal(r.cookies[i], &f->recs[2 + i]);
    assert_int_equal(tq_pool_running(f->pool), 2);
    assert_int_equal(tq_pool_idle(f->pool), 6);

    /* Queue four again behind the blocked executors, then let them go. */
    for (int i = 10; i < 14; i++) {
        char args[32];
        snprintf(args, sizeof(args), "[%d]", i);
        assert_int_equal(submit(f, i, "echo", args, 0, 0), 0);
    }
    tq_pool_stopping(f->pool);
    wait_done(f, 6, 5000);
    for (int i = 0; i < 2; i++)
        assert_int_equal(f->recs[i].out.status, TQ_OUT_RETRY);
    for (int i = 2; i < 8; i++)
        assert_int_equal(f->recs[i].done, 0);
    for (int i = 10; i < 14; i++) {
        assert_int_equal(f->recs[i].done, 1);
        assert_int_equal(result_long(&f->recs[i]), i);
    }
    assert_int_equal(tq_pool_running(f->pool), 0);
    assert_int_equal(tq_pool_idle(f->pool), 8);
}

/* Prefork: queued jobs are in their child's socket already, so reclaim
 * takes nothing back; they all run, in order, each reported once, and are
 * spread over the children (the least loaded first). */
static void test_pool_prefork_backlog(void **state)
{
    fx *f = *state;
    make_pool(f, TQ_POOL_PREFORK, 2, 0, 0);
    tq_pool_set_backlog(f->pool, 3);
    assert_int_equal(tq_pool_idle(f->pool), 8);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(submit(f, i, "t.block", NULL, 0, 0), 0);
        wait_progress(f, i, 1, 5000);
    }
    for (int i = 2; i < 8; i++)
        assert_int_equal(submit(f, i, "t.pid", NULL, 0, 0), 0);
    assert_int_equal(tq_pool_idle(f->pool), 0);
    assert_int_equal(tq_pool_running(f->pool), 8);
    assert_int_equal(submit(f, 8, "echo", "[8]", 0, 0), -1);
    reclaimed r = {{NULL}, 0};
    assert_int_equal(tq_pool_reclaim(f->pool, reclaim_cb, &r), 0);
    tq_pool_stopping(f->pool);
    wait_done(f, 8, 5000);
    for (int i = 0; i < 2; i++)
        assert_int_equal(f->recs[i].out.status, TQ_OUT_RETRY);
    int per_pid[2] = {0, 0};
    long pids[2] = {0, 0};
    for (int i = 2; i < 8; i++) {
        assert_int_equal(f->recs[i].done, 1);
        long pid = result_long(&f->recs[i]);
        int k = pids[0] == 0 || pids[0] == pid ? 0 : 1;
        pids[k] = pid;
        per_pid[k]++;
    }
    assert_int_equal(per_pid[0], 3);
    assert_int_equal(per_pid[1], 3);
    assert_int_equal(tq_pool_running(f->pool), 0);
    assert_int_equal(tq_pool_idle(f->pool), 8);
}

/* A child that crashes with jobs queued behind its task: the task is a
 * crash, the others never started and come back ABORTED (no attempt). */
static void test_pool_prefork_backlog_crash(void **state)
{
    fx *f = *state;
    make_pool(f, TQ_POOL_PREFORK, 1, 0, 0);
    tq_pool_set_backlog(f->pool, 3);
    assert_int_equal(submit(f, 0, "sleep", "[0.1]", 0, 0), 0);
    assert_int_equal(submit(f, 1, "crash", NULL, 0, 0), 0);
    assert_int_equal(submit(f, 2, "echo", "[2]", 0, 0), 0);
    assert_int_equal(submit(f, 3, "echo", "[3]", 0, 0), 0);
    wait_done(f, 4, 5000);
    assert_int_equal(f->recs[0].out.status, TQ_OUT_SUCCESS);
    assert_int_equal(f->recs[1].out.status, TQ_OUT_CRASH);
    assert_int_equal(f->recs[1].out.signal, SIGSEGV);
    for (int i = 2; i < 4; i++) {
        assert_int_equal(f->recs[i].done, 1);
        assert_int_equal(f->recs[i].out.status, TQ_OUT_ABORTED);
    }
    /* The replacement child takes work again. */
    wait_idle(f, 4, 5000);
    assert_int_equal(submit(f, 4, "echo", "[4]", 0, 0), 0);
    wait_done(f, 5, 5000);
    assert_int_equal(result_long(&f->recs[4]), 4);
}

/* A child recycles after two tasks: it is never sent more than it will run,
 * so nothing queued is lost to the recycling. */
static void test_pool_prefork_backlog_recycle(void **state)
{
    fx *f = *state;
    make_pool(f, TQ_POOL_PREFORK, 1, 2, 0);
    tq_pool_set_backlog(f->pool, 5);
    assert_int_equal(tq_pool_idle(f->pool), 2);
    int next = 0;
    while (f->ndone < 10) {
        while (next < 10 && tq_pool_idle(f->pool) > 0) {
            char args[32];
            snprintf(args, sizeof(args), "[%d]", next);
            assert_int_equal(submit(f, next, "echo", args, 0, 0), 0);
            next++;
        }
        if (tq_pool_running(f->pool) > 0)
            wait_done(f, f->ndone + 1, 5000);
        else
            wait_idle(f, 1, 5000); /* the replacement child */
    }
    for (int i = 0; i < 10; i++) {
        assert_int_equal(f->recs[i].done, 1);
        assert_int_equal(result_long(&f->recs[i]), i);
    }
}

static void test_pool_threads_backlog(void **state)
{
    backlog(*state, TQ_POOL_THREADS);
}

/* A cold kill aborts the jobs waiting in the backlog, each reported once. */
static void backlog_kill(fx *f, tq_pool_kind kind)
{
    make_pool(f, kind, 1, 0, 0);
    tq_pool_set_backlog(f->pool, 4);
    assert_int_equal(submit(f, 0, "t.block", NULL, 0, 0), 0);
    wait_progress(f, 0, 1, 5000);
    for (int i = 1; i < 5; i++)
        assert_int_equal(submit(f, i, "echo", "[1]", 0, 0), 0);
    tq_pool_kill(f->pool);
    assert_int_equal(f->ndone, 5);
    for (int i = 1; i < 5; i++) {
        assert_int_equal(f->recs[i].done, 1);
        assert_int_equal(f->recs[i].out.status, TQ_OUT_ABORTED);
    }
    assert_int_equal(f->recs[0].done, 1);
    assert_int_equal(tq_pool_running(f->pool), 0);
}

static void test_pool_prefork_backlog_kill(void **state)
{
    backlog_kill(*state, TQ_POOL_PREFORK);
}

static void test_pool_threads_backlog_kill(void **state)
{
    backlog_kill(*state, TQ_POOL_THREADS);
}

/* A soft limit counts from the job's real start, not from its hand-off:
 * the second job waits ~300 ms behind the first, then runs 200 ms. */
static void backlog_soft_limit(fx *f, tq_pool_kind kind)
{
    make_pool(f, kind, 1, 0, 0);
    tq_pool_set_backlog(f->pool, 1);
    assert_int_equal(submit(f, 0, "sleep", "[0.3]", 0, 0), 0);
    assert_int_equal(submit(f, 1, "sleep", "[5]", 200, 0), 0);
    wait_done(f, 2, 5000);
    assert_int_equal(f->recs[0].out.status, TQ_OUT_SUCCESS);
    const tq_outcome *o = &f->recs[1].out;
    assert_int_equal(o->status, TQ_OUT_FAILURE);
    assert_string_equal(o->err_type, "SoftTimeLimitExceeded");
    if (o->runtime_ms < 150)
        fail_msg("the soft limit fired after %.1f ms of running: it counted the wait",
                 o->runtime_ms);
}

static void test_pool_prefork_backlog_soft_limit(void **state)
{
    backlog_soft_limit(*state, TQ_POOL_PREFORK);
}

static void test_pool_threads_backlog_soft_limit(void **state)
{
    backlog_soft_limit(*state, TQ_POOL_THREADS);
}

/* A decoded message handed to the threads pool is run as it is (here
 * without any bytes at all), and the task has its arguments: its changes
 * are in the caller's message (which is why the worker decodes the bytes
 * again before a retry), and each job's in its own. */
static void test_pool_threads_decoded(void **state)
{
    fx *f = *state;
    make_pool(f, TQ_POOL_THREADS, 2, 0, 0);
    tq_msg *m[2];
    for (int i = 0; i < 2; i++) {
        m[i] = tq_msg_new("job", "t.grow", "default");
        tq_msg_set_args(m[i], json_pack("[i,i]", 1, 2));
        tq_pool_job job = {&f->recs[i], NULL, 0, 0, 0, m[i]};
        assert_int_equal(tq_pool_submit(f->pool, &job), 0);
    }
    wait_done(f, 2, 5000);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(result_long(&f->recs[i]), 3);
        assert_int_equal(json_array_size(m[i]->args), 3);
        assert_true(json_is_true(json_object_get(m[i]->kwargs, "added")));
        tq_msg_free(m[i]);
    }
}

/* The prefork pool sends the bytes (a child has its own memory): the
 * decoded message is not what runs there. */
static void test_pool_prefork_ignores_decoded(void **state)
{
    fx *f = *state;
    make_pool(f, TQ_POOL_PREFORK, 1, 0, 0);
    tq_msg *bytes = tq_msg_new("job", "echo", "default");
    tq_msg_set_args(bytes, json_pack("[i]", 7));
    size_t len;
    f->msgs[0] = tq_msg_encode(bytes, &len);
    tq_msg_free(bytes);
    tq_msg *other = tq_msg_new("job", "t.grow", "default");
    tq_pool_job job = {&f->recs[0], f->msgs[0], len, 0, 0, other};
    assert_int_equal(tq_pool_submit(f->pool, &job), 0);
    wait_done(f, 1, 5000);
    assert_int_equal(result_long(&f->recs[0]), 7);
    tq_msg_free(other);
}

/* A thread abandoned by tq_pool_kill may run on after its job was reported
 * ABORTED and the caller freed its message: the thread's share keeps the
 * message alive until the task is done with it (ASan would see a read of
 * freed memory otherwise). */
static void test_pool_threads_abandoned_decoded(void **state)
{
    fx *f = *state;
    make_pool(f, TQ_POOL_THREADS, 1, 0, 0);
    tq_msg *m = tq_msg_new("job-abandoned", "t.late", "default");
    tq_pool_job job = {&f->recs[0], NULL, 0, 0, 0, m};
    assert_int_equal(tq_pool_submit(f->pool, &job), 0);
    wait_progress(f, 0, 1, 5000);
    tq_pool_kill(f->pool); /* waits 3 s, then abandons the thread */
    assert_int_equal(f->ndone, 1);
    assert_int_equal(f->recs[0].out.status, TQ_OUT_ABORTED);
    tq_msg_free(m);
    int64_t deadline = tq_mono_ms() + 5000;
    while (__atomic_load_n(&late_seen, __ATOMIC_ACQUIRE) < 0 && tq_mono_ms() < deadline) {
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(__atomic_load_n(&late_seen, __ATOMIC_ACQUIRE), (int)strlen("job-abandoned"));
    assert_int_equal(f->recs[0].done, 1);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_pool_prefork_echo_many),
        T(test_pool_threads_echo_many),
        T(test_pool_prefork_runs_in_children),
        T(test_pool_prefork_crash_segv),
        T(test_pool_prefork_crash_abort),
        T(test_pool_prefork_idle_child_killed),
        T(test_pool_prefork_hard_limit),
        T(test_pool_prefork_soft_limit),
        T(test_pool_threads_soft_limit),
        T(test_pool_threads_hard_limit_ignored),
        T(test_pool_prefork_stopping),
        T(test_pool_threads_stopping),
        T(test_pool_prefork_recycle_tasks),
        T(test_pool_prefork_recycle_memory),
        T(test_pool_prefork_kill),
        T(test_pool_threads_kill),
        T(test_pool_prefork_free_aborts),
        T(test_pool_prefork_progress),
        T(test_pool_threads_progress),
        T(test_pool_prefork_large_message),
        T(test_pool_prefork_malformed),
        T(test_pool_bad_config),
        T(test_pool_prefork_backlog),
        T(test_pool_threads_backlog),
        T(test_pool_prefork_backlog_crash),
        T(test_pool_prefork_backlog_recycle),
        T(test_pool_prefork_backlog_kill),
        T(test_pool_threads_backlog_kill),
        T(test_pool_prefork_backlog_soft_limit),
        T(test_pool_threads_backlog_soft_limit),
        T(test_pool_threads_decoded),
        T(test_pool_prefork_ignores_decoded),
        T(test_pool_threads_abandoned_decoded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
