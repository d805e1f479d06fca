/* tq_exec: one attempt of one task, in the calling process or thread.
 *
 * Decodes the raw message (docs/PROTOCOL.md#task-message) with the worker's
 * limits, finds the task by name in the registry (and nowhere else), runs it
 * with a taskq_ctx and describes the result in a tq_outcome. It knows nothing
 * of Redis or of the pool: the prefork child and the pool threads call it the
 * same way, and tq_outcome_pack/unpack carry its result over the child's pipe.
 *
 * Invariants:
 *  - tq_exec_run and tq_exec_run_msg always fill *out with exactly one
 *    status.
 *  - struct taskq_ctx lives on the stack for one call; a task must not keep
 *    it.
 *  - A task may change its arguments: from tq_exec_run the message is a
 *    private decode; tq_exec_run_msg lends the task the caller's, which
 *    therefore decodes the bytes again before it re-sends them (a deep copy
 *    for every task was 6.5 % of the worker's CPU; a retry is rare).
 *  - The stop flags are written by a signal handler (prefork) or by the loop
 *    thread (threads pool) and only read here. */
#include "tq_exec.h"

#include "common/tq_sig.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "common/tq_util.h"

struct taskq_ctx {
    const tq_exec_env *env;
    const tq_msg *msg;
    tq_outcome *out;
    int attempt;
    int reported; /* taskq_fail/taskq_retry was called */
};

void tq_outcome_init(tq_outcome *o)
{
    memset(o, 0, sizeof(*o));
    o->status = TQ_OUT_SUCCESS;
    o->retry_countdown_ms = -1;
    o->cpu_ms = -1;
    o->maxrss_kb = -1;
}

void tq_outcome_clear(tq_outcome *o)
{
    if (!o)
        return;
    free(o->result);
    free(o->err_message);
    tq_outcome_init(o);
}

static void set_error_v(tq_outcome *o, tq_out_status st, const char *type, const char *fmt,
                        va_list ap) __attribute__((format(printf, 4, 0)));

static void set_error_v(tq_outcome *o, tq_out_status st, const char *type, const char *fmt,
                        va_list ap)
{
    o->status = st;
    snprintf(o->err_type, sizeof(o->err_type), "%s", type && *type ? type : "TaskError");
    free(o->err_message);
    o->err_message = NULL;
    if (fmt) {
        va_list cp;
        va_copy(cp, ap);
        int n = vsnprintf(NULL, 0, fmt, cp);
        va_end(cp);
        if (n >= 0) {
            o->err_message = tq_xmalloc((size_t)n + 1);
            vsnprintf(o->err_message, (size_t)n + 1, fmt, ap);
        }
    }
}

void tq_outcome_set_error(tq_outcome *o, tq_out_status st, const char *type, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_error_v(o, st, type, fmt, ap);
    va_end(ap);
}

/* ---- the task-author API (taskq_worker.h) ---- */

int taskq_fail(taskq_ctx *ctx, const char *type, const char *fmt, ...)
{
    if (!ctx)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    set_error_v(ctx->out, TQ_OUT_FAILURE, type, fmt, ap);
    va_end(ap);
    ctx->reported = 1;
    return -1;
}

int taskq_retry(taskq_ctx *ctx, int64_t countdown_ms, const char *type, const char *fmt, ...)
{
    if (!ctx)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    set_error_v(ctx->out, TQ_OUT_RETRY, type, fmt, ap);
    va_end(ap);
    ctx->out->retry_countdown_ms = countdown_ms < 0 ? -1 : countdown_ms;
    ctx->reported = 1;
    return -1;
}

/* The flags are plain sig_atomic_t (a signal handler writes them in the
 * prefork child); the atomic load also makes the cross-thread read in the
 * threads pool well defined. */
static int flag_get(volatile sig_atomic_t *f)
{
    return __atomic_load_n(f, __ATOMIC_RELAXED) != 0;
}

int taskq_soft_limit_exceeded(const taskq_ctx *ctx)
{
    if (!ctx || !ctx->env->flags)
        return 0;
    return flag_get(&ctx->env->flags->soft_limit);
}

int taskq_should_stop(const taskq_ctx *ctx)
{
    if (!ctx || !ctx->env->flags)
        return 0;
    return flag_get(&ctx->env->flags->soft_limit) || flag_get(&ctx->env->flags->stopping);
}

void taskq_progress(taskq_ctx *ctx, double fraction, const char *message)
{
    if (!ctx || !ctx->env->progress)
        return;
    if (!(fraction >= 0)) /* also catches NaN */
        fraction = 0;
    if (fraction > 1)
        fraction = 1;
    ctx->env->progress(ctx->env->progress_arg, fraction, message);
}

const char *taskq_ctx_id(const taskq_ctx *ctx)
{
    return ctx ? ctx->msg->id : NULL;
}

const char *taskq_ctx_task(const taskq_ctx *ctx)
{
    return ctx ? ctx->msg->task : NULL;
}

const char *taskq_ctx_queue(const taskq_ctx *ctx)
{
    return ctx ? ctx->msg->queue : NULL;
}

int taskq_ctx_attempt(const taskq_ctx *ctx)
{
    return ctx ? ctx->attempt : 0;
}

/* ---- running ---- */

static double tv_ms(const struct timeval *tv)
{
    return (double)tv->tv_sec * 1000.0 + (double)tv->tv_usec / 1000.0;
}

/* CPU time so far of the calling thread (thread) or process, in ms; the
 * process's peak RSS into *maxrss_kb if that is not NULL. */
static double cpu_now_ms(int thread, long *maxrss_kb)
{
    struct rusage ru;
    if (getrusage(thread ? RUSAGE_THREAD : RUSAGE_SELF, &ru) < 0)
        return -1;
    if (maxrss_kb)
        *maxrss_kb = ru.ru_maxrss;
    return tv_ms(&ru.ru_utime) + tv_ms(&ru.ru_stime);
}

/* The attempt's wall and CPU time since t0/c0, and the executor's peak RSS:
 * a process executor's is the prefork child's (read with its CPU time, one
 * system call); in the threads pool it would be the whole worker's, which
 * says nothing. */
static void finish_times(const tq_exec_env *env, int64_t t0, double c0, tq_outcome *out)
{
    out->runtime_ms = (double)(tq_mono_us() - t0) / 1000.0;
    long maxrss = -1;
    double c1 = cpu_now_ms(env->measure_thread_cpu, env->measure_thread_cpu ? NULL : &maxrss);
    out->cpu_ms = c0 >= 0 && c1 >= 0 ? c1 - c0 : -1;
    out->maxrss_kb = c1 >= 0 ? maxrss : -1;
}

/* Compact JSON for a task's return value. Reals are written with 15
 * significant digits when that reads back as the same value (0.1, not
 * 0.10000000000000001), else with the 17 that always do. */
static char *dump_result(json_t *v)
{
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(15));
    if (!s || !strpbrk(s, ".eE"))
        return s;
    json_t *back = json_loads(s, JSON_DECODE_ANY, NULL);
    int same = back && json_equal(back, v);
    json_decref(back);
    if (same)
        return s;
    free(s);
    return json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
}

/* Run the decoded message m; t0 and c0 are when the attempt started (wall
 * and CPU). The task gets m's own arguments (see the invariants). */
static void run_decoded(const tq_exec_env *env, const tq_msg *m, int64_t t0, double c0,
                        tq_outcome *out)
{
    json_t *result = NULL, *bound = NULL, *empty_kwargs = NULL;
    char err[512];

    const tq_task_def *def = tq_registry_find(env->reg, m->task);
    if (!def) {
        tq_outcome_set_error(out, TQ_OUT_FAILURE, "NotRegistered", "unregistered task %s", m->task);
        out->no_retry = 1;
        goto out;
    }

    json_t *args = m->args, *kwargs = m->kwargs;
    if (def->sig) {
        /* Typed signature: a wrong call never reaches the task, and is not
         * retried (the same arguments would fail the same way). */
        if (tq_sig_bind(def->sig, m->task, args, kwargs, &bound, err, sizeof(err)) < 0) {
            tq_outcome_set_error(out, TQ_OUT_FAILURE, "TypeError", "%s", err);
            out->no_retry = 1;
            goto out;
        }
        args = bound;
        kwargs = empty_kwargs = json_object();
    }
    taskq_ctx ctx = {env, m, out, 0, 0};
    ctx.attempt = m->attempts >= 0 && m->attempts < 0x7ffffffe ? (int)m->attempts + 1 : 0x7fffffff;
    int rc = def->fn(&ctx, args, kwargs, &result);
    if (rc == 0) {
        /* The return value decides: an error recorded before a 0 return is
         * dropped, as the task chose to succeed after all. */
        free(out->err_message);
        out->err_message = NULL;
        out->err_type[0] = '\0';
        out->retry_countdown_ms = -1;
        out->status = TQ_OUT_SUCCESS;
        if (!result) {
            out->result = tq_xstrdup("null");
        } else {
            out->result = dump_result(result);
            if (!out->result)
                tq_outcome_set_error(out, TQ_OUT_FAILURE, "TaskError",
                                     "task %s returned a value that cannot be encoded as JSON",
                                     m->task);
        }
    } else if (!ctx.reported) {
        tq_outcome_set_error(out, TQ_OUT_FAILURE, "TaskError", "task returned %d without an error",
                             rc);
    }
out:
    json_decref(result);
    json_decref(bound);
    json_decref(empty_kwargs);
    finish_times(env, t0, c0, out);
}

void tq_exec_run(const tq_exec_env *env, const char *msg, size_t len, tq_outcome *out)
{
    tq_msg *m = NULL;
    char err[512];
    tq_msg_limits deflim;
    const tq_msg_limits *lim = env->limits;

    tq_outcome_init(out);
    if (!lim) {
        tq_msg_limits_default(&deflim);
        lim = &deflim;
    }
    int64_t t0 = tq_mono_us();
    double c0 = cpu_now_ms(env->measure_thread_cpu, NULL);

    if (tq_msg_decode(msg, len, lim, &m, err, sizeof(err)) != TQ_MSG_OK) {
        tq_outcome_set_error(out, TQ_OUT_FAILURE, "MalformedMessage", "%s", err);
        out->no_retry = 1;
        finish_times(env, t0, c0, out);
        return;
    }
    run_decoded(env, m, t0, c0, out);
    tq_msg_free(m);
}

void tq_exec_run_msg(const tq_exec_env *env, const tq_msg *m, tq_outcome *out)
{
    tq_outcome_init(out);
    int64_t t0 = tq_mono_us();
    double c0 = cpu_now_ms(env->measure_thread_cpu, NULL);
    run_decoded(env, m, t0, c0, out);
}

/* ---- pack/unpack ----
 * Layout (native byte order: both ends are the same binary on one host):
 *   "TQO1"  magic
 *   u8  status, u8 no_retry, u8 time_limit, u8 pad
 *   i32 signal
 *   i64 retry_countdown_ms
 *   f64 runtime_ms, f64 cpu_ms  (bit copies: exact round trip)
 *   i64 maxrss_kb
 *   3 x string: u8 present, u32 length, bytes  (result, err_type, err_message)
 * Strings are length-prefixed, so any bytes (NUL, invalid UTF-8) survive. */

typedef struct wbuf {
    char *p;
    size_t len, cap;
} wbuf;

static void put(wbuf *b, const void *data, size_t n)
{
    if (b->len + n > b->cap) {
        while (b->len + n > b->cap)
            b->cap = b->cap ? b->cap * 2 : 128;
        b->p = tq_xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void put_str(wbuf *b, const char *s, size_t n)
{
    uint8_t present = s != NULL;
    uint32_t l = (uint32_t)n;
    put(b, &present, 1);
    put(b, &l, 4);
    if (s)
        put(b, s, n);
}

char *tq_outcome_pack(const tq_outcome *o, size_t *len)
{
    wbuf b = {NULL, 0, 0};
    uint8_t hdr[4] = {(uint8_t)o->status, (uint8_t)(o->no_retry != 0),
                      (uint8_t)(o->time_limit != 0), 0};
    int32_t sig = o->signal;
    int64_t cd = o->retry_countdown_ms, rss = o->maxrss_kb;

    put(&b, "TQO1", 4);
    put(&b, hdr, 4);
    put(&b, &sig, 4);
    put(&b, &cd, 8);
    put(&b, &o->runtime_ms, 8);
    put(&b, &o->cpu_ms, 8);
    put(&b, &rss, 8);
    put_str(&b, o->result, o->result ? strlen(o->result) : 0);
    put_str(&b, o->err_type, strnlen(o->err_type, sizeof(o->err_type) - 1));
    put_str(&b, o->err_message, o->err_message ? strlen(o->err_message) : 0);
    if (len)
        *len = b.len;
    return b.p;
}

typedef struct rbuf {
    const char *p;
    size_t len, off;
} rbuf;

static int get(rbuf *b, void *dst, size_t n)
{
    if (b->len - b->off < n)
        return -1;
    memcpy(dst, b->p + b->off, n);
    b->off += n;
    return 0;
}

/* *out is a new malloc'd string, or NULL when the field was absent. */
static int get_str(rbuf *b, char **out)
{
    uint8_t present;
    uint32_t l;
    *out = NULL;
    if (get(b, &present, 1) < 0 || get(b, &l, 4) < 0 || present > 1)
        return -1;
    if (!present)
        return l == 0 ? 0 : -1;
    if (b->len - b->off < l)
        return -1;
    *out = tq_xstrndup(b->p + b->off, l);
    b->off += l;
    return 0;
}

int tq_outcome_unpack(const char *buf, size_t len, tq_outcome *o)
{
    rbuf b = {buf, len, 0};
    char magic[4];
    uint8_t hdr[4];
    int32_t sig;
    int64_t cd, rss;
    char *type = NULL;
    int rc = -1;

    tq_outcome_init(o);
    if (!buf || get(&b, magic, 4) < 0 || memcmp(magic, "TQO1", 4) != 0)
        goto out;
    if (get(&b, hdr, 4) < 0 || hdr[0] > TQ_OUT_ABORTED || get(&b, &sig, 4) < 0 ||
        get(&b, &cd, 8) < 0 || get(&b, &o->runtime_ms, 8) < 0 || get(&b, &o->cpu_ms, 8) < 0 ||
        get(&b, &rss, 8) < 0)
        goto out;
    o->status = (tq_out_status)hdr[0];
    o->no_retry = hdr[1];
    o->time_limit = hdr[2];
    o->signal = sig;
    o->retry_countdown_ms = cd;
    o->maxrss_kb = (long)rss;
    if (get_str(&b, &o->result) < 0 || get_str(&b, &type) < 0 || get_str(&b, &o->err_message) < 0)
        goto out;
    if (type) {
        if (strlen(type) >= sizeof(o->err_type))
            goto out;
        memcpy(o->err_type, type, strlen(type) + 1);
    }
    if (b.off != b.len)
        goto out;
    rc = 0;
out:
    free(type);
    if (rc < 0)
        tq_outcome_clear(o);
    return rc;
}
