/* Unit tests for worker/tq_exec and the built-in tasks (worker/tq_builtin):
 * every built-in's success and failure paths run through tq_exec_run with
 * real messages built by tq_msg_new/tq_msg_encode; unknown tasks; malformed
 * messages; the task context; measurements; and the outcome pack/unpack
 * round trip used on the prefork pipe. `crash` runs in a forked child so the
 * real signal can be checked. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/tq_util.h"
#include "tq_exec.h"
#include "tq_registry.h"

typedef struct fixture {
    tq_registry *reg;
    tq_msg_limits lim;
    tq_exec_flags flags;
    tq_exec_env env;
    double fractions[16];
    char messages[16][32];
    int nprogress;
} fixture;

static void assert_has(const char *s, const char *sub)
{
    if (!s || !strstr(s, sub))
        fail_msg("'%s' does not contain '%s'", s ? s : "(null)", sub);
}

/* Test-only tasks for the paths no built-in takes. */
static int t_bad_return(taskq_ctx *ctx, json_t *args, json_t *kwargs, json_t **result)
{
    (void)ctx;
    (void)args;
    (void)kwargs;
    (void)result;
    return 7;
}

static int t_retry(taskq_ctx *ctx, json_t *args, json_t *kwargs, json_t **result)
{
    (void)args;
    (void)kwargs;
    (void)result;
    return taskq_retry(ctx, 1500, "Busy", "try again in %d ms", 1500);
}

static int t_retry_policy(taskq_ctx *ctx, json_t *args, json_t *kwargs, json_t **result)
{
    (void)args;
    (void)kwargs;
    (void)result;
    return taskq_retry(ctx, -5, NULL, NULL);
}

static int t_ctx(taskq_ctx *ctx, json_t *args, json_t *kwargs, json_t **result)
{
    (void)args;
    (void)kwargs;
    *result = json_pack("[s,s,s,i,b]", taskq_ctx_id(ctx), taskq_ctx_task(ctx), taskq_ctx_queue(ctx),
                        taskq_ctx_attempt(ctx), taskq_should_stop(ctx));
    return 0;
}

static int t_fail_then_ok(taskq_ctx *ctx, json_t *args, json_t *kwargs, json_t **result)
{
    (void)args;
    (void)kwargs;
    taskq_fail(ctx, "Ignored", "changed my mind");
    *result = json_string("fine");
    return 0;
}

static int t_leaky_fail(taskq_ctx *ctx, json_t *args, json_t *kwargs, json_t **result)
{
    (void)args;
    (void)kwargs;
    *result = json_string("set before failing"); /* must be released by tq_exec */
    return taskq_fail(ctx, "ValueError", "bad");
}

static void progress_cb(void *arg, double fraction, const char *message)
{
    fixture *f = arg;
    if (f->nprogress < 16) {
        f->fractions[f->nprogress] = fraction;
        snprintf(f->messages[f->nprogress], sizeof(f->messages[0]), "%s", message ? message : "");
    }
    f->nprogress++;
}

/* t.grow: changes its arguments in place (a task may). */
static int t_grow(taskq_ctx *ctx, json_t *args, json_t *kwargs, json_t **result)
{
    (void)ctx;
    json_array_append_new(args, json_integer(99));
    json_object_set_new(kwargs, "grown", json_true());
    *result = json_integer((json_int_t)json_array_size(args));
    return 0;
}

static int setup(void **state)
{
    fixture *f = tq_xcalloc(1, sizeof(*f));
    f->reg = tq_registry_new();
    tq_builtin_register(f->reg);
    taskq_register(f->reg, "t.bad_return", t_bad_return, NULL);
    taskq_register(f->reg, "t.retry", t_retry, NULL);
    taskq_register(f->reg, "t.retry_policy", t_retry_policy, NULL);
    taskq_register(f->reg, "t.ctx", t_ctx, NULL);
    taskq_register(f->reg, "t.fail_then_ok", t_fail_then_ok, NULL);
    taskq_register(f->reg, "t.leaky_fail", t_leaky_fail, NULL);
    taskq_register(f->reg, "t.grow", t_grow, NULL);
    tq_msg_limits_default(&f->lim);
    f->env.reg = f->reg;
    f->env.limits = &f->lim;
    f->env.flags = &f->flags;
    f->env.progress = progress_cb;
    f->env.progress_arg = f;
    f->env.measure_thread_cpu = 0;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    tq_registry_free(f->reg);
    free(f);
    return 0;
}

/* Run `task` with JSON args/kwargs text (NULL: empty) and `attempts`. */
static void run_full(fixture *f, const char *task, const char *args, const char *kwargs,
                     int64_t attempts, tq_outcome *o)
{
    json_error_t e;
    tq_msg *m = tq_msg_new("id-1", task, "q.test");
    if (args) {
        json_t *a = json_loads(args, JSON_DECODE_ANY, &e);
        assert_non_null(a);
        tq_msg_set_args(m, a);
    }
    if (kwargs) {
        json_t *k = json_loads(kwargs, 0, &e);
        assert_non_null(k);
        tq_msg_set_kwargs(m, k);
    }
    tq_msg_set_int(m, "attempts", attempts);
    size_t len;
    char *raw = tq_msg_encode(m, &len);
    tq_exec_run(&f->env, raw, len, o);
    free(raw);
    tq_msg_free(m);
}

static void run(fixture *f, const char *task, const char *args, const char *kwargs, tq_outcome *o)
{
    run_full(f, task, args, kwargs, 0, o);
}

/* SUCCESS whose result equals the JSON `want` (compared as JSON). */
static void expect_result(fixture *f, const char *task, const char *args, const char *kwargs,
                          const char *want)
{
    tq_outcome o;
    json_error_t e;
    run(f, task, args, kwargs, &o);
    if (o.status != TQ_OUT_SUCCESS)
        fail_msg("%s: status %d %s: %s", task, o.status, o.err_type,
                 o.err_message ? o.err_message : "");
    json_t *got = json_loads(o.result, JSON_DECODE_ANY, &e);
    json_t *exp = json_loads(want, JSON_DECODE_ANY, &e);
    assert_non_null(got);
    assert_non_null(exp);
    if (!json_equal(got, exp) || json_typeof(got) != json_typeof(exp))
        fail_msg("%s: result %s, expected %s", task, o.result, want);
    json_decref(got);
    json_decref(exp);
    tq_outcome_clear(&o);
}

static void expect_error(fixture *f, const char *task, const char *args, const char *kwargs,
                         tq_out_status st, const char *type, const char *msg_sub)
{
    tq_outcome o;
    run(f, task, args, kwargs, &o);
    if (o.status != st)
        fail_msg("%s %s: status %d, expected %d (%s: %s)", task, args ? args : "", o.status, st,
                 o.err_type, o.err_message ? o.err_message : "");
    assert_string_equal(o.err_type, type);
    if (msg_sub)
        assert_has(o.err_message, msg_sub);
    assert_null(o.result);
    tq_outcome_clear(&o);
}

static void test_exec_echo(void **state)
{
    fixture *f = *state;
    expect_result(f, "echo", "[1,\"two\",[3]]", NULL, "[1,\"two\",[3]]");
    expect_result(f, "echo", "[\"alone\"]", NULL, "\"alone\"");
    expect_result(f, "echo", "[{\"a\":null}]", NULL, "{\"a\":null}");
    expect_result(f, "echo", "[]", NULL, "[]");
    expect_result(f, "echo", "[1]", "{\"k\":\"v\"}", "{\"args\":[1],\"kwargs\":{\"k\":\"v\"}}");
    /* The result is compact JSON text. */
    tq_outcome o;
    run(f, "echo", "[1, 2]", NULL, &o);
    assert_string_equal(o.result, "[1,2]");
    tq_outcome_clear(&o);
}

static void test_exec_add(void **state)
{
    fixture *f = *state;
    expect_result(f, "add", "[2,3]", NULL, "5");
    expect_result(f, "add", "[]", NULL, "0");
    expect_result(f, "add", "[-4,1,1]", NULL, "-2");
    expect_result(f, "add", "[1,2.5]", NULL, "3.5");
    expect_result(f, "add", "[0.25,0.5]", NULL, "0.75");
    expect_error(f, "add", "[1,\"x\"]", NULL, TQ_OUT_FAILURE, "TypeError",
                 "add: argument 2 must be a number, got string");
    expect_error(f, "add", "[true]", NULL, TQ_OUT_FAILURE, "TypeError",
                 "argument 1 must be a number, got bool");
    expect_error(f, "add", "[null, 1]", NULL, TQ_OUT_FAILURE, "TypeError", "got null");
    expect_error(f, "add", "[9223372036854775807,1]", NULL, TQ_OUT_FAILURE, "OverflowError",
                 "overflow");
    expect_error(f, "add", "[-9223372036854775807,-2]", NULL, TQ_OUT_FAILURE, "OverflowError",
                 "overflow");
    expect_error(f, "add", "[1.7e308,1.7e308]", NULL, TQ_OUT_FAILURE, "OverflowError",
                 "not finite");
}

static void test_exec_sleep(void **state)
{
    fixture *f = *state;
    tq_outcome o;
    run(f, "sleep", "[0.05]", NULL, &o);
    assert_int_equal(o.status, TQ_OUT_SUCCESS);
    /* jansson prints reals with 17 digits; the value is what counts. */
    assert_true(strtod(o.result, NULL) == 0.05);
    assert_true(o.runtime_ms >= 50.0);
    assert_true(o.runtime_ms < 5000.0);
    tq_outcome_clear(&o);
    expect_result(f, "sleep", "[0]", NULL, "0");
    /* sleep is typed ("seconds:float[0..86400]"): the signature rejects
     * bad calls before the task runs, and they are never retried. */
    expect_error(f, "sleep", "[\"x\"]", NULL, TQ_OUT_FAILURE, "TypeError",
                 "sleep: argument 'seconds' must be float, got string \"x\"");
    expect_error(f, "sleep", "[]", NULL, TQ_OUT_FAILURE, "TypeError",
                 "missing required argument 'seconds'");
    expect_error(f, "sleep", "[-1]", NULL, TQ_OUT_FAILURE, "TypeError",
                 "argument 'seconds' must be >= 0, got int -1");
    expect_error(f, "sleep", "[1, 2]", NULL, TQ_OUT_FAILURE, "TypeError",
                 "takes at most 1 argument, got 2");
    expect_result(f, "sleep", "[]", "{\"seconds\":0}", "0");
    expect_result(f, "mul", "[6, 7]", NULL, "42");
    expect_error(f, "mul", "[2, \"x\"]", NULL, TQ_OUT_FAILURE, "TypeError",
                 "mul: argument 'b' must be int, got string \"x\"");
    expect_error(f, "mul", "[2]", "{\"b\":1,\"c\":2}", TQ_OUT_FAILURE, "TypeError",
                 "mul: unexpected keyword argument 'c'");
}

/* The flags are how the pools interrupt a task: a raised soft limit stops a
 * long sleep at once with SoftTimeLimitExceeded; shutdown asks for a retry. */
static void test_exec_sleep_interrupted(void **state)
{
    fixture *f = *state;
    tq_outcome o;
    f->flags.soft_limit = 1;
    int64_t t0 = tq_mono_ms();
    run(f, "sleep", "[30]", NULL, &o);
    assert_true(tq_mono_ms() - t0 < 1000);
    assert_int_equal(o.status, TQ_OUT_FAILURE);
    assert_string_equal(o.err_type, "SoftTimeLimitExceeded");
    tq_outcome_clear(&o);

    f->flags.soft_limit = 0;
    f->flags.stopping = 1;
    t0 = tq_mono_ms();
    run(f, "sleep", "[30]", NULL, &o);
    assert_true(tq_mono_ms() - t0 < 1000);
    assert_int_equal(o.status, TQ_OUT_RETRY);
    assert_string_equal(o.err_type, "WorkerShutdown");
    assert_int_equal(o.retry_countdown_ms, 0);
    tq_outcome_clear(&o);
}

static void test_exec_fail(void **state)
{
    fixture *f = *state;
    expect_error(f, "fail", NULL, NULL, TQ_OUT_FAILURE, "TaskError", "task failed on purpose");
    expect_error(f, "fail", "[\"boom %s %n\"]", "{\"type\":\"ValueError\"}", TQ_OUT_FAILURE,
                 "ValueError", "boom %s %n"); /* the message is data, never a format */
    tq_outcome o;
    run(f, "fail", "[\"exact\"]", NULL, &o);
    assert_string_equal(o.err_message, "exact");
    assert_int_equal(o.no_retry, 0);
    tq_outcome_clear(&o);
}

static void test_exec_noop(void **state)
{
    fixture *f = *state;
    tq_outcome o;
    run(f, "noop", NULL, NULL, &o);
    assert_int_equal(o.status, TQ_OUT_SUCCESS);
    assert_string_equal(o.result, "null");
    tq_outcome_clear(&o);
}

static void test_exec_progress(void **state)
{
    fixture *f = *state;
    expect_result(f, "progress", "[4]", NULL, "4");
    assert_int_equal(f->nprogress, 5);
    for (int i = 0; i <= 4; i++)
        assert_true(f->fractions[i] == (double)i / 4.0);
    assert_string_equal(f->messages[4], "step 4/4");
    f->nprogress = 0;
    expect_result(f, "progress", NULL, NULL, "5");
    assert_int_equal(f->nprogress, 6);
    expect_error(f, "progress", "[\"x\"]", NULL, TQ_OUT_FAILURE, "TypeError", "must be an int");
    expect_error(f, "progress", "[0]", NULL, TQ_OUT_FAILURE, "ValueError", "steps");
}

/* crash really kills its executor: run it in a child and look at the
 * status. */
static int crash_status(fixture *f, const char *kwargs)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        tq_outcome o;
        run(f, "crash", NULL, kwargs, &o);
        _exit(0);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return st;
}

static void test_exec_crash(void **state)
{
    fixture *f = *state;
    int st = crash_status(f, NULL);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGSEGV);
    st = crash_status(f, "{\"signal\":\"abort\"}");
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGABRT);
    /* An unknown signal name is an argument error, not a crash. */
    expect_error(f, "crash", NULL, "{\"signal\":\"nope\"}", TQ_OUT_FAILURE, "ValueError", "signal");
}

static void test_exec_unregistered(void **state)
{
    fixture *f = *state;
    tq_outcome o;
    run(f, "no.such.task", "[1]", NULL, &o);
    assert_int_equal(o.status, TQ_OUT_FAILURE);
    assert_string_equal(o.err_type, "NotRegistered");
    assert_string_equal(o.err_message, "unregistered task no.such.task");
    assert_int_equal(o.no_retry, 1);
    tq_outcome_clear(&o);
}

static void test_exec_malformed(void **state)
{
    fixture *f = *state;
    static const char *const bad[] = {
        "not json",
        "[1,2]",
        "{\"v\":1,\"id\":\"a\",\"task\":\"echo\",\"queue\":\"q\",\"args\":[],\"kwargs\":{}}",
        ("{\"v\":2,\"id\":\"a\",\"task\":\"echo\",\"queue\":\"q\",\"args\":[],\"kwargs\":{},"
         "\"attempts\":0,\"created_ms\":1}"),
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        tq_outcome o;
        tq_exec_run(&f->env, bad[i], strlen(bad[i]), &o);
        assert_int_equal(o.status, TQ_OUT_FAILURE);
        assert_string_equal(o.err_type, "MalformedMessage");
        assert_non_null(o.err_message);
        assert_true(strlen(o.err_message) > 0);
        assert_int_equal(o.no_retry, 1);
        tq_outcome_clear(&o);
    }
    /* A NUL inside the bytes is not silently truncated. */
    const char withnul[] = "{\"v\":1}\0garbage";
    tq_outcome o;
    tq_exec_run(&f->env, withnul, sizeof(withnul) - 1, &o);
    assert_string_equal(o.err_type, "MalformedMessage");
    tq_outcome_clear(&o);
    /* The worker's limits apply. */
    f->lim.max_bytes = 10;
    run(f, "echo", "[1]", NULL, &o);
    assert_string_equal(o.err_type, "MalformedMessage");
    assert_has(o.err_message, "max_bytes");
    tq_outcome_clear(&o);
}

static void test_exec_task_contract(void **state)
{
    fixture *f = *state;
    expect_error(f, "t.bad_return", NULL, NULL, TQ_OUT_FAILURE, "TaskError",
                 "task returned 7 without an error");
    expect_error(f, "t.leaky_fail", NULL, NULL, TQ_OUT_FAILURE, "ValueError", "bad");
    expect_result(f, "t.fail_then_ok", NULL, NULL, "\"fine\"");

    tq_outcome o;
    run(f, "t.retry", NULL, NULL, &o);
    assert_int_equal(o.status, TQ_OUT_RETRY);
    assert_string_equal(o.err_type, "Busy");
    assert_string_equal(o.err_message, "try again in 1500 ms");
    assert_int_equal(o.retry_countdown_ms, 1500);
    tq_outcome_clear(&o);
    run(f, "t.retry_policy", NULL, NULL, &o);
    assert_int_equal(o.status, TQ_OUT_RETRY);
    assert_int_equal(o.retry_countdown_ms, -1);
    assert_string_equal(o.err_type, "TaskError");
    tq_outcome_clear(&o);
}

static void test_exec_ctx(void **state)
{
    fixture *f = *state;
    tq_outcome o;
    run_full(f, "t.ctx", NULL, NULL, 2, &o);
    assert_int_equal(o.status, TQ_OUT_SUCCESS);
    assert_string_equal(o.result, "[\"id-1\",\"t.ctx\",\"q.test\",3,false]");
    tq_outcome_clear(&o);
    f->flags.stopping = 1;
    run(f, "t.ctx", NULL, NULL, &o);
    assert_string_equal(o.result, "[\"id-1\",\"t.ctx\",\"q.test\",1,true]");
    tq_outcome_clear(&o);
    /* Without flags nothing ever asks a task to stop. */
    f->env.flags = NULL;
    run(f, "t.ctx", NULL, NULL, &o);
    assert_string_equal(o.result, "[\"id-1\",\"t.ctx\",\"q.test\",1,false]");
    tq_outcome_clear(&o);
}

static void test_exec_measurements(void **state)
{
    fixture *f = *state;
    tq_outcome o;
    run(f, "noop", NULL, NULL, &o);
    assert_true(o.runtime_ms >= 0);
    assert_true(o.cpu_ms >= 0);
    assert_true(o.maxrss_kb > 0); /* a process executor reports its peak RSS */
    tq_outcome_clear(&o);
    f->env.measure_thread_cpu = 1;
    run(f, "noop", NULL, NULL, &o);
    assert_true(o.cpu_ms >= 0);
    assert_int_equal(o.maxrss_kb, -1); /* meaningless for one thread */
    tq_outcome_clear(&o);
}

static void assert_outcome_equal(const tq_outcome *a, const tq_outcome *b)
{
    assert_int_equal(a->status, b->status);
    if (a->result || b->result)
        assert_string_equal(a->result, b->result);
    assert_string_equal(a->err_type, b->err_type);
    if (a->err_message || b->err_message)
        assert_memory_equal(a->err_message, b->err_message, strlen(a->err_message) + 1);
    assert_int_equal(a->no_retry, b->no_retry);
    assert_int_equal(a->retry_countdown_ms, b->retry_countdown_ms);
    assert_int_equal(a->signal, b->signal);
    assert_int_equal(a->time_limit, b->time_limit);
    assert_memory_equal(&a->runtime_ms, &b->runtime_ms, sizeof(double));
    assert_memory_equal(&a->cpu_ms, &b->cpu_ms, sizeof(double));
    assert_int_equal(a->maxrss_kb, b->maxrss_kb);
}

static void test_exec_outcome_pack_roundtrip(void **state)
{
    (void)state;
    tq_outcome a, b;
    tq_outcome_init(&a);
    a.status = TQ_OUT_CRASH;
    a.result = tq_xstrdup("{\"big\":[1,2,3],\"s\":\"\\u0000\"}");
    tq_outcome_set_error(&a, TQ_OUT_CRASH, "WorkerLostError", "bytes \xff\xfe\x01 and %s", "more");
    a.no_retry = 1;
    a.retry_countdown_ms = 1234567890123LL;
    a.signal = 11;
    a.time_limit = 1;
    a.runtime_ms = 0.1 + 0.2; /* not representable exactly: bits must survive */
    a.cpu_ms = 1.0 / 3.0;
    a.maxrss_kb = 987654;

    size_t len;
    char *buf = tq_outcome_pack(&a, &len);
    assert_non_null(buf);
    assert_int_equal(tq_outcome_unpack(buf, len, &b), 0);
    assert_outcome_equal(&a, &b);
    tq_outcome_clear(&b);

    /* Every truncation and a trailing byte are rejected, never misread. */
    for (size_t i = 0; i < len; i++)
        assert_int_equal(tq_outcome_unpack(buf, i, &b), -1);
    char *longer = tq_xmalloc(len + 1);
    memcpy(longer, buf, len);
    longer[len] = 0;
    assert_int_equal(tq_outcome_unpack(longer, len + 1, &b), -1);
    longer[0] = 'X';
    assert_int_equal(tq_outcome_unpack(longer, len, &b), -1);
    free(longer);
    free(buf);
    tq_outcome_clear(&a);

    /* The empty outcome, with NULL strings, round-trips too. */
    tq_outcome_init(&a);
    buf = tq_outcome_pack(&a, &len);
    assert_int_equal(tq_outcome_unpack(buf, len, &b), 0);
    assert_null(b.result);
    assert_null(b.err_message);
    assert_outcome_equal(&a, &b);
    free(buf);

    /* And a real outcome from tq_exec_run. */
    void *fs = NULL;
    setup(&fs);
    fixture *f = fs;
    run(f, "add", "[1,\"x\"]", NULL, &a);
    buf = tq_outcome_pack(&a, &len);
    assert_int_equal(tq_outcome_unpack(buf, len, &b), 0);
    assert_outcome_equal(&a, &b);
    free(buf);
    tq_outcome_clear(&a);
    tq_outcome_clear(&b);
    teardown(&fs);
}

/* tq_exec_run_msg runs a message the caller decoded and keeps: the same
 * outcome as from the bytes, a typed signature still checked, the context
 * from the message, and the arguments lent to the task: its changes are
 * in the caller's message (the worker decodes the bytes again to retry). */
static void test_exec_run_msg(void **state)
{
    fixture *f = *state;
    tq_outcome o;
    tq_msg *m = tq_msg_new("rid", "add", "qq");
    tq_msg_set_args(m, json_pack("[i,i]", 2, 3));
    tq_exec_run_msg(&f->env, m, &o);
    assert_int_equal(o.status, TQ_OUT_SUCCESS);
    assert_string_equal(o.result, "5");
    assert_true(o.runtime_ms >= 0 && o.cpu_ms >= 0 && o.maxrss_kb > 0);
    tq_outcome_clear(&o);
    tq_msg_free(m);
    /* sleep has a typed signature: bound from the copies, still checked. */
    m = tq_msg_new("rid1", "sleep", "qq");
    tq_msg_set_args(m, json_pack("[i]", 0));
    tq_exec_run_msg(&f->env, m, &o);
    assert_int_equal(o.status, TQ_OUT_SUCCESS);
    tq_outcome_clear(&o);
    tq_msg_set_args(m, json_pack("[s]", "two"));
    tq_exec_run_msg(&f->env, m, &o);
    assert_int_equal(o.status, TQ_OUT_FAILURE);
    assert_string_equal(o.err_type, "TypeError");
    assert_true(o.no_retry);
    tq_outcome_clear(&o);
    tq_msg_free(m);

    m = tq_msg_new("rid2", "t.ctx", "qq");
    tq_msg_set_int(m, "attempts", 2);
    tq_exec_run_msg(&f->env, m, &o);
    assert_int_equal(o.status, TQ_OUT_SUCCESS);
    assert_string_equal(o.result, "[\"rid2\",\"t.ctx\",\"qq\",3,false]");
    tq_outcome_clear(&o);
    tq_msg_free(m);

    m = tq_msg_new("rid3", "t.grow", "qq");
    tq_msg_set_args(m, json_pack("[i]", 1));
    for (int round = 0; round < 2; round++) {
        tq_exec_run_msg(&f->env, m, &o);
        assert_int_equal(o.status, TQ_OUT_SUCCESS);
        assert_string_equal(o.result, round == 0 ? "2" : "3"); /* the same arguments */
        tq_outcome_clear(&o);
    }
    assert_int_equal(json_array_size(m->args), 3);
    assert_int_equal(json_object_size(m->kwargs), 1);
    tq_msg_free(m);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_exec_echo),          T(test_exec_add),
        T(test_exec_sleep),         T(test_exec_sleep_interrupted),
        T(test_exec_fail),          T(test_exec_noop),
        T(test_exec_progress),      T(test_exec_crash),
        T(test_exec_unregistered),  T(test_exec_malformed),
        T(test_exec_task_contract), T(test_exec_ctx),
        T(test_exec_measurements),  cmocka_unit_test(test_exec_outcome_pack_roundtrip),
        T(test_exec_run_msg),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
