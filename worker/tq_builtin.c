/* tq_builtin: the tasks every worker has without --load. They exist for
 * smoke tests, benchmarks and the failure-path tests of the pools (crash,
 * hang, sleep against time limits), so each one does exactly what its name
 * says, including really crashing. They use only the task-author API, like
 * any task library would. Arguments are hostile input: every type is checked
 * and reported with the argument's position. */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/tq_msg.h"
#include "tq_registry.h"

/* Sleep slices: short enough that a soft limit or shutdown interrupts a
 * `sleep` within about 10 ms. */
#define SLICE_NS 10000000L

static void nap(long ns)
{
    struct timespec ts = {0, ns};
    nanosleep(&ts, NULL); /* EINTR (SIGUSR1/2) just ends the slice early */
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* echo(*args, **kwargs): the arguments back; one lone argument as itself. */
static int task_echo(taskq_ctx *ctx, json_t *args, json_t *kwargs, json_t **result)
{
    (void)ctx;
    if (json_object_size(kwargs) == 0) {
        *result =
            json_array_size(args) == 1 ? json_incref(json_array_get(args, 0)) : json_incref(args);
        return 0;
    }
    *result = json_pack("{s:O, s:O}", "args", args, "kwargs", kwargs);
    return *result ? 0 : taskq_fail(ctx, "TaskError", "echo: cannot build the result");
}

/* add(*numbers): their sum; int when every argument is an int. */
static int task_add(taskq_ctx *ctx, json_t *args, json_t *kwargs, json_t **result)
{
    (void)kwargs;
    long long isum = 0;
    double dsum = 0;
    int all_int = 1, overflow = 0;
    size_t i;
    json_t *v;

    json_array_foreach(args, i, v)
    {
        if (json_is_integer(v)) {
            long long x = json_integer_value(v);
            if (!overflow && __builtin_add_overflow(isum, x, &isum))
                overflow = 1;
            dsum += (double)x;
        } else if (json_is_real(v)) {
            all_int = 0;
            dsum += json_real_value(v);
        } else {
            return taskq_fail(ctx, "TypeError", "add: argument %zu must be a number, got %s", i + 1,
                              tq_json_type_name(v));
        }
    }
    if (all_int) {
        if (overflow)
            return taskq_fail(ctx, "OverflowError", "add: integer overflow (result outside int64)");
        *result = json_integer(isum);
        return 0;
    }
    /* jansson refuses inf and NaN: report them instead of a null result. */
    *result = json_real(dsum);
    if (!*result)
        return taskq_fail(ctx, "OverflowError", "add: float result is not finite");
    return 0;
}

/* sleep(seconds): sleep, interruptible by the soft limit and by shutdown. */
static int task_sleep(taskq_ctx *ctx, json_t *args, json_t *kwargs, json_t **result)
{
    (void)kwargs;
    json_t *a = json_array_get(args, 0);
    if (!json_is_number(a))
        return taskq_fail(ctx, "TypeError", "sleep: argument 1 must be a number, got %s",
                          a ? tq_json_type_name(a) : "nothing");
    double secs = json_number_value(a);
    if (!(secs >= 0) || secs > 1e9)
        return taskq_fail(ctx, "ValueError", "sleep: seconds must be in [0, 1e9], got %g", secs);
    double start = mono_s(), end = start + secs;
    for (;;) {
        double now = mono_s();
        if (now >= end)
            break;
        if (taskq_soft_limit_exceeded(ctx))
            return taskq_fail(ctx, "SoftTimeLimitExceeded",
                              "sleep: soft time limit exceeded after %.3f s of %g s", now - start,
                              secs);
        if (taskq_should_stop(ctx))
            /* Shutdown, not the task's fault: ask for a fresh attempt. */
            return taskq_retry(ctx, 0, "WorkerShutdown",
                               "sleep: interrupted by worker shutdown after %.3f s", now - start);
        double left = end - now;
        nap(left * 1e9 < SLICE_NS ? (long)(left * 1e9) + 1 : SLICE_NS);
    }
    *result = json_incref(a);
    return 0;
}

/* fail([message], type=TaskError): fail on purpose. */
static int task_fail(taskq_ctx *ctx, json_t *args, json_t *kwargs, json_t **result)
{
    (void)result;
    const char *type = json_string_value(json_object_get(kwargs, "type"));
    const char *msg = json_string_value(json_array_get(args, 0));
    return taskq_fail(ctx, type && *type ? type : "TaskError", "%s",
                      msg ? msg : "task failed on purpose");
}

/* crash(signal="segv"|"abort"): kill the executor for real. */
static int task_crash(taskq_ctx *ctx, json_t *args, json_t *kwargs, json_t **result)
{
    (void)args;
    (void)result;
    const char *how = json_string_value(json_object_get(kwargs, "signal"));
    if (how && strcmp(how, "abort") == 0)
        abort();
    if (how && strcmp(how, "segv") != 0)
        return taskq_fail(ctx, "ValueError", "crash: signal must be \"segv\" or \"abort\"");
    /* Default disposition first: a sanitizer's SEGV handler would otherwise
     * turn the signal into an exit status. */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigaction(SIGSEGV, &sa, NULL);
    raise(SIGSEGV);
    /* Not reached unless SIGSEGV is blocked; then fault for real. */
    volatile int *volatile p = NULL;
    *p = 1; /* cppcheck-suppress nullPointer ; the point of this task */
    return taskq_fail(ctx, "TaskError", "crash: still alive");
}

/* noop(): nothing, returns null. */
static int task_noop(taskq_ctx *ctx, json_t *args, json_t *kwargs, json_t **result)
{
    (void)ctx;
    (void)args;
    (void)kwargs;
    *result = NULL;
    return 0;
}

/* progress(n=5): report progress 0..1 over n steps. */
static int task_progress(taskq_ctx *ctx, json_t *args, json_t *kwargs, json_t **result)
{
    (void)kwargs;
    json_t *a = json_array_get(args, 0);
    long long n = 5;
    if (a) {
        if (!json_is_integer(a))
            return taskq_fail(ctx, "TypeError", "progress: argument 1 must be an int, got %s",
                              tq_json_type_name(a));
        n = json_integer_value(a);
        if (n < 1 || n > 100000)
            return taskq_fail(ctx, "ValueError", "progress: steps must be in [1, 100000], got %lld",
                              n);
    }
    for (long long i = 0; i <= n; i++) {
        char m[64];
        snprintf(m, sizeof(m), "step %lld/%lld", i, n);
        taskq_progress(ctx, (double)i / (double)n, m);
    }
    *result = json_integer(n);
    return 0;
}

/* hang(): never return, ignoring every stop request. */
static int task_hang(taskq_ctx *ctx, json_t *args, json_t *kwargs, json_t **result)
{
    (void)ctx;
    (void)args;
    (void)kwargs;
    (void)result;
    for (;;)
        nap(SLICE_NS);
    return 0;
}

/* mul(a:int, b:int): the typed example. Its signature is checked before it
 * runs (and by clients before they enqueue), so it only handles ints. */
static int task_mul(taskq_ctx *ctx, json_t *args, json_t *kwargs, json_t **result)
{
    (void)kwargs;
    json_int_t a = json_integer_value(json_array_get(args, 0));
    json_int_t b = json_integer_value(json_array_get(args, 1));
    json_int_t r;
    if (__builtin_mul_overflow(a, b, &r))
        return taskq_fail(ctx, "OverflowError", "mul: %lld * %lld overflows a 64-bit integer",
                          (long long)a, (long long)b);
    *result = json_integer(r);
    return 0;
}

void tq_builtin_register(tq_registry *reg)
{
    static const struct {
        const char *name;
        taskq_task_fn fn;
        const char *doc;
        const char *signature;
    } tasks[] = {
        {"mul", task_mul, "multiply two integers (typed: checked before it runs)", "a:int, b:int"},
        {"echo", task_echo, "return the arguments (a lone argument as itself)", NULL},
        {"add", task_add, "sum numeric arguments (int if all ints, else float)", NULL},
        {"sleep", task_sleep, "sleep N seconds; stops at the soft time limit",
         "seconds:float[0..86400]"},
        {"fail", task_fail, "fail with args[0] as message and kwargs.type as error type", NULL},
        {"crash", task_crash, "kill the executor with SIGSEGV (kwargs signal=\"abort\": abort)",
         NULL},
        {"noop", task_noop, "do nothing, return null (benchmarks)", NULL},
        {"progress", task_progress, "report progress over N steps (default 5), return N", NULL},
        {"hang", task_hang, "never return, ignoring stop requests (hard limit tests)", NULL},
    };
    for (size_t i = 0; i < sizeof(tasks) / sizeof(tasks[0]); i++) {
        taskq_task_opts opts;
        memset(&opts, 0, sizeof(opts));
        opts.doc = tasks[i].doc;
        opts.signature = tasks[i].signature;
        taskq_register(reg, tasks[i].name, tasks[i].fn, &opts);
    }
}
