/* Integration tests for libtaskq (client/taskq.h) against a real redis-server
 * and the real taskq-worker binary (tests/harness.c).
 *
 * One redis-server serves the whole file (group fixture); every test gets its
 * own key prefix, so the queues, results and dead letters of one test are
 * invisible to the others, and starts the workers it needs with that prefix.
 * Waits are blocking result waits or deadline polls (th_wait_until), never
 * sleeps. A worker is stopped with SIGTERM at the end of its test and must
 * exit 0. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "taskq.h"
#include "taskq_fx.h"

#define WAIT_S 10.0   /* result waits that should finish well before this */
#define STOP_MS 10000 /* a worker exits after SIGTERM within this */
#define MAX_WORKERS 3

/* Per-test fixture: a client on the test's own prefix and its workers. */
typedef struct tc {
    char prefix[64];
    taskq_client *c;
    tf_worker workers[MAX_WORKERS]; /* every one started; pid 0 once stopped */
    int nworkers;
} tc;

/* ---- helpers ------------------------------------------------------------ */

/* A task `name` with JSON arguments (NULL-terminated). */
static taskq_task *task_v(const char *name, ...)
{
    taskq_task *t = taskq_task_new(name);
    assert_non_null(t);
    va_list ap;
    va_start(ap, name);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL) {
        if (taskq_task_arg_json(t, a) != 0) {
            va_end(ap);
            fail_msg("arg %s: %s", a, taskq_task_errstr(t));
        }
    }
    va_end(ap);
    return t;
}

static void submit(tc *x, taskq_task *t, char id[TASKQ_ID_SIZE])
{
    int rc = taskq_submit(x->c, t, id);
    if (rc != 0)
        fail_msg("submit: %d %s", rc, taskq_client_errstr(x->c));
    assert_true(strlen(id) > 0);
}

/* Submit and free a task, writing its id. */
static void submit_free(tc *x, taskq_task *t, char id[TASKQ_ID_SIZE])
{
    submit(x, t, id);
    taskq_task_free(t);
}

/* Wait for a final state; fails the test on any error or time-out. */
static taskq_result *wait_final(tc *x, const char *id, double timeout)
{
    return tf_wait_final(x->c, NULL, id, timeout, NULL);
}

static taskq_state state_of(tc *x, const char *id)
{
    return tf_state(x->c, NULL, id);
}

static void wait_state(tc *x, const char *id, taskq_state want, int timeout_ms)
{
    if (!tf_wait_state(x->c, NULL, id, want, timeout_ms))
        fail_msg("task %s: state %s, want %s after %d ms", id, taskq_state_name(state_of(x, id)),
                 taskq_state_name(want), timeout_ms);
}

/* An integer field of the result record (its JSON), -1 if absent. */
static long long rec_int(const taskq_result *r, const char *field)
{
    json_error_t e;
    json_t *o = json_loads(taskq_result_json(r), 0, &e);
    if (!o)
        fail_msg("record is not JSON: %s", e.text);
    json_t *v = json_object_get(o, field);
    long long n = json_is_integer(v) ? (long long)json_integer_value(v) : -1;
    json_decref(o);
    return n;
}

/* Size of an array field of the record, -1 if absent or not an array. */
static long long rec_array_size(const taskq_result *r, const char *field)
{
    json_error_t e;
    json_t *o = json_loads(taskq_result_json(r), 0, &e);
    if (!o)
        fail_msg("record is not JSON: %s", e.text);
    json_t *v = json_object_get(o, field);
    long long n = json_is_array(v) ? (long long)json_array_size(v) : -1;
    json_decref(o);
    return n;
}

/* Start a taskq-worker on x's prefix with `extra` options (NULL-terminated,
 * may be NULL) and wait until it is ready. The worker belongs to x. */
static tf_worker *start_worker(tc *x, const char *const *extra)
{
    const char *argv[32] = {"--prefix",        x->prefix, "--concurrency", "2",
                            "--retry-backoff", "0.05",    "--log-level",   "info"};
    int n = 8;
    for (; extra && *extra && n < 31; extra++)
        argv[n++] = *extra;
    argv[n] = NULL;
    assert_int_not_equal(x->nworkers, MAX_WORKERS);
    tf_worker *w = &x->workers[x->nworkers++];
    tf_worker_start(w, tf_group()->srv->url, argv, NULL, 1);
    return w;
}

/* SIGTERM a worker of x and require a clean exit (status 0). */
static void stop_worker(tf_worker *w)
{
    int st = tf_worker_stop(w, STOP_MS);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        th_dump_file("worker log", w->log);
        fail_msg("taskq-worker status 0x%x, want exit 0", st);
    }
}

/* Commands clients sent to Redis so far, from INFO commandstats: the
 * script calls and blocking pops a waiter can issue (commands run inside
 * scripts are counted separately by Redis and are left out). */
static long long redis_commands(void)
{
    static const char *const names[] = {"cmdstat_evalsha:",    "cmdstat_eval:",   "cmdstat_blmove:",
                                        "cmdstat_brpoplpush:", "cmdstat_blpop:",  "cmdstat_brpop:",
                                        "cmdstat_lmove:",      "cmdstat_lindex:", "cmdstat_llen:"};
    redisReply *r = th_cmd(tf_group()->rc, "INFO commandstats");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    long long total = 0;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const char *p = strstr(r->str, names[i]);
        if (p && (p = strstr(p, "calls=")) != NULL)
            total += strtoll(p + 6, NULL, 10);
    }
    freeReplyObject(r);
    return total;
}

/* ---- fixtures ----------------------------------------------------------- */

static int setup(void **state)
{
    tc *x = calloc(1, sizeof(*x));
    assert_non_null(x);
    x->c = tf_client_prefixed(tf_group()->srv->url, "tc", x->prefix);
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    tc *x = *state;
    for (int i = 0; i < x->nworkers; i++)
        tf_worker_stop(&x->workers[i], STOP_MS);
    taskq_client_free(x->c);
    free(x);
    return 0;
}

/* ---- submit and results ------------------------------------------------- */

/* taskq_submit_wait: the same results and codes as submit + wait (on a
 * warm connection the enqueue and the blocking wait go out together). */
static void test_client_submit_wait(void **state)
{
    tc *x = *state;
    start_worker(x, NULL);
    char id[TASKQ_ID_SIZE];
    taskq_result *r = NULL;
    taskq_task *t = task_v("add", "20", "22", NULL);
    for (int i = 0; i < 3; i++) { /* the first call warms the connection */
        assert_int_equal(taskq_submit_wait(x->c, t, WAIT_S, id, &r), 0);
        assert_int_equal(taskq_result_state(r), TASKQ_SUCCESS);
        assert_string_equal(taskq_result_value(r), "42");
        assert_string_equal(taskq_result_id(r), id);
        taskq_result_free(r);
    }
    taskq_task_free(t);
    /* A task that outlives the time-out: ETIMEDOUT within it, latest state. */
    t = task_v("sleep", "2", NULL);
    long long t0 = th_mono_ms();
    assert_int_equal(taskq_submit_wait(x->c, t, 0.3, id, &r), TASKQ_ETIMEDOUT);
    long long dt = th_mono_ms() - t0;
    assert_true(dt >= 250 && dt < 1500);
    assert_non_null(r);
    assert_false(taskq_state_is_final(taskq_result_state(r)));
    taskq_result_free(r);
    taskq_task_free(t);
    /* A refused enqueue (queue full) is reported at once, not after the
     * time-out of the wait pipelined behind it. */
    taskq_client_set_queue_cap(x->c, 1);
    t = task_v("add", "1", "1", NULL);
    t0 = th_mono_ms();
    assert_int_equal(taskq_submit_wait(x->c, t, 5.0, id, &r), TASKQ_EFULL);
    assert_true(th_mono_ms() - t0 < 1000);
    assert_null(r);
    taskq_task_free(t);
}

static void test_client_submit_one_success(void **state)
{
    tc *x = *state;
    start_worker(x, NULL);
    char id[TASKQ_ID_SIZE];
    submit_free(x, task_v("add", "2", "3", NULL), id);
    taskq_result *r = wait_final(x, id, WAIT_S);
    assert_int_equal(taskq_result_state(r), TASKQ_SUCCESS);
    assert_string_equal(taskq_result_value(r), "5");
    assert_string_equal(taskq_result_task(r), "add");
    assert_int_equal(taskq_result_attempts(r), 1);
    assert_null(taskq_result_error_type(r));
    assert_non_null(taskq_result_worker(r));
    assert_non_null(strstr(taskq_result_json(r), "\"state\":\"SUCCESS\""));
    assert_true(rec_int(r, "finished_ms") >= rec_int(r, "started_ms"));
    assert_true(rec_int(r, "started_ms") >= rec_int(r, "created_ms"));
    taskq_result_free(r);

    /* kwargs and non-trivial JSON survive the round trip through echo. */
    taskq_task *t = task_v("echo", NULL);
    assert_int_equal(taskq_task_kwarg_json(t, "k", "{\"a\":[1,2,\"x\"]}"), 0);
    assert_int_equal(taskq_task_arg_json(t, "\"text\""), 0);
    submit_free(x, t, id);
    r = wait_final(x, id, WAIT_S);
    assert_int_equal(taskq_result_state(r), TASKQ_SUCCESS);
    json_error_t e;
    json_t *got = json_loads(taskq_result_value(r), 0, &e);
    json_t *want =
        json_loads("{\"args\":[\"text\"],\"kwargs\":{\"k\":{\"a\":[1,2,\"x\"]}}}", 0, &e);
    assert_non_null(got);
    assert_true(json_equal(got, want));
    json_decref(got);
    json_decref(want);
    taskq_result_free(r);
}

static void test_client_submit_many_results(void **state)
{
    tc *x = *state;
    enum { N = 50 };
    taskq_task *tasks[N];
    char ids[N][TASKQ_ID_SIZE];
    int codes[N];
    for (int i = 0; i < N; i++) {
        char a[16], b[16];
        snprintf(a, sizeof(a), "%d", i);
        snprintf(b, sizeof(b), "%d", 1000 * i);
        tasks[i] = task_v("add", a, b, NULL);
        codes[i] = 99;
    }
    assert_int_equal(taskq_submit_many(x->c, tasks, N, ids, codes), 0);
    for (int i = 0; i < N; i++) {
        taskq_task_free(tasks[i]);
        assert_int_equal(codes[i], 0);
        assert_int_equal(strlen(ids[i]), 32);
        for (int j = 0; j < i; j++)
            assert_string_not_equal(ids[i], ids[j]);
        /* Accepted and queued before any worker runs. */
        assert_int_equal(state_of(x, ids[i]), TASKQ_PENDING);
    }
    start_worker(x, NULL);
    for (int i = 0; i < N; i++) {
        taskq_result *r = wait_final(x, ids[i], WAIT_S);
        char want[16];
        snprintf(want, sizeof(want), "%d", 1001 * i);
        assert_int_equal(taskq_result_state(r), TASKQ_SUCCESS);
        assert_string_equal(taskq_result_value(r), want);
        assert_int_equal(taskq_result_attempts(r), 1);
        taskq_result_free(r);
    }
}

static void test_client_submit_many_partial_failure(void **state)
{
    tc *x = *state;
    /* One bad task in a batch: its own code, the others still accepted. */
    taskq_task *tasks[3] = {task_v("add", "1", "1", NULL), task_v("add", "2", "2", NULL),
                            task_v("add", "3", "3", NULL)};
    assert_int_equal(taskq_task_set_id(tasks[1], "dup-in-batch"), 0);
    char id[TASKQ_ID_SIZE];
    taskq_task *first = task_v("noop", NULL);
    assert_int_equal(taskq_task_set_id(first, "dup-in-batch"), 0);
    submit_free(x, first, id);
    assert_string_equal(id, "dup-in-batch");

    char ids[3][TASKQ_ID_SIZE];
    int codes[3] = {99, 99, 99};
    assert_int_equal(taskq_submit_many(x->c, tasks, 3, ids, codes), TASKQ_EEXIST);
    assert_int_equal(codes[0], 0);
    assert_int_equal(codes[1], TASKQ_EEXIST);
    assert_int_equal(codes[2], 0);
    for (int i = 0; i < 3; i++)
        taskq_task_free(tasks[i]);
    assert_int_equal(state_of(x, ids[0]), TASKQ_PENDING);
    assert_int_equal(state_of(x, ids[2]), TASKQ_PENDING);
}

/* ---- states ------------------------------------------------------------- */

static void test_client_state_pending_without_worker(void **state)
{
    tc *x = *state;
    char id[TASKQ_ID_SIZE];
    submit_free(x, task_v("add", "40", "2", NULL), id);
    assert_int_equal(state_of(x, id), TASKQ_PENDING);
    taskq_result *r = NULL;
    assert_int_equal(taskq_result_get(x->c, NULL, id, &r), 0);
    assert_int_equal(taskq_result_state(r), TASKQ_PENDING);
    assert_null(taskq_result_value(r));
    taskq_result_free(r);

    start_worker(x, NULL);
    r = wait_final(x, id, WAIT_S);
    assert_int_equal(taskq_result_state(r), TASKQ_SUCCESS);
    assert_string_equal(taskq_result_value(r), "42");
    taskq_result_free(r);
    /* taskq_result_get reads the same final record. */
    assert_int_equal(taskq_result_get(x->c, NULL, id, &r), 0);
    assert_int_equal(taskq_result_state(r), TASKQ_SUCCESS);
    assert_string_equal(taskq_result_value(r), "42");
    taskq_result_free(r);
}

static void test_client_state_started_while_running(void **state)
{
    tc *x = *state;
    start_worker(x, NULL);
    char id[TASKQ_ID_SIZE];
    submit_free(x, task_v("sleep", "1", NULL), id);
    wait_state(x, id, TASKQ_STARTED, 5000);
    taskq_result *r = NULL;
    assert_int_equal(taskq_result_get(x->c, NULL, id, &r), 0);
    assert_int_equal(taskq_result_state(r), TASKQ_STARTED);
    assert_false(taskq_state_is_final(taskq_result_state(r)));
    taskq_result_free(r);

    /* A started task cannot be cancelled, and goes on to finish. */
    assert_int_equal(taskq_cancel(x->c, NULL, id), TASKQ_ESTATE);
    assert_true(strlen(taskq_client_errstr(x->c)) > 0);
    r = wait_final(x, id, WAIT_S);
    assert_int_equal(taskq_result_state(r), TASKQ_SUCCESS);
    assert_string_equal(taskq_result_value(r), "1");
    assert_true(rec_int(r, "finished_ms") - rec_int(r, "started_ms") >= 1000);
    taskq_result_free(r);
}

static void test_client_state_retry_then_failure(void **state)
{
    tc *x = *state;
    /* Backoff base 0.5 s: the first retry waits 0.25..0.5 s, long enough to
     * observe RETRY. */
    const char *opts[] = {"--retry-backoff", "0.5", NULL};
    start_worker(x, opts);
    taskq_task *t = task_v("fail", "\"boom\"", NULL);
    assert_int_equal(taskq_task_set_retries(t, 2), 0);
    assert_int_equal(taskq_task_kwarg_json(t, "type", "\"CustomError\""), 0);
    char id[TASKQ_ID_SIZE];
    submit_free(x, t, id);

    wait_state(x, id, TASKQ_RETRY, 5000);
    taskq_result *r = NULL;
    int rc = taskq_result_get(x->c, NULL, id, &r);
    assert_int_equal(rc, 0);
    if (taskq_result_state(r) == TASKQ_RETRY) { /* (may have moved on already) */
        assert_string_equal(taskq_result_error_type(r), "CustomError");
        assert_string_equal(taskq_result_error_message(r), "boom");
        assert_true(taskq_result_attempts(r) >= 1);
        assert_true(rec_int(r, "retry_at_ms") > 0);
    }
    taskq_result_free(r);

    r = wait_final(x, id, WAIT_S);
    assert_int_equal(taskq_result_state(r), TASKQ_FAILURE);
    assert_string_equal(taskq_result_error_type(r), "CustomError");
    assert_string_equal(taskq_result_error_message(r), "boom");
    assert_int_equal(taskq_result_attempts(r), 3);
    assert_int_equal(rec_array_size(r, "errors"), 3);
    assert_null(taskq_result_value(r));
    taskq_result_free(r);
}

static void test_client_failure_default_type(void **state)
{
    tc *x = *state;
    start_worker(x, NULL);
    char id[TASKQ_ID_SIZE];
    taskq_task *t = task_v("fail", "\"no luck\"", NULL);
    assert_int_equal(taskq_task_set_retries(t, 0), 0);
    submit_free(x, t, id);
    taskq_result *r = wait_final(x, id, WAIT_S);
    assert_int_equal(taskq_result_state(r), TASKQ_FAILURE);
    assert_string_equal(taskq_result_error_type(r), "TaskError");
    assert_string_equal(taskq_result_error_message(r), "no luck");
    assert_int_equal(taskq_result_attempts(r), 1);
    assert_int_equal(rec_array_size(r, "errors"), 1);
    taskq_result_free(r);

    /* A type error inside a task is a FAILURE too, with its own type. */
    submit_free(x, task_v("add", "2", "\"x\"", NULL), id);
    r = wait_final(x, id, WAIT_S);
    assert_int_equal(taskq_result_state(r), TASKQ_FAILURE);
    assert_string_equal(taskq_result_error_type(r), "TypeError");
    assert_non_null(strstr(taskq_result_error_message(r), "argument 2"));
    taskq_result_free(r);
}

static void test_client_cancel_countdown_revoked(void **state)
{
    tc *x = *state;
    start_worker(x, NULL);
    char id[TASKQ_ID_SIZE];
    taskq_task *t = task_v("echo", "\"never\"", NULL);
    assert_int_equal(taskq_task_set_countdown(t, 60), 0);
    submit_free(x, t, id);
    assert_int_equal(state_of(x, id), TASKQ_PENDING);
    assert_int_equal(taskq_cancel(x->c, NULL, id), 0);

    taskq_result *r = wait_final(x, id, 1.0);
    assert_int_equal(taskq_result_state(r), TASKQ_REVOKED);
    assert_string_equal(taskq_result_error_type(r), "Revoked");
    assert_null(taskq_result_value(r));
    taskq_result_free(r);
    /* Cancelling a finished task is refused. */
    assert_int_equal(taskq_cancel(x->c, NULL, id), TASKQ_ESTATE);

    /* A revoked queued (not delayed) task is skipped by the worker: a task
     * submitted after it still runs, and the revoked one stays REVOKED. */
    stop_worker(&x->workers[0]);
    char id2[TASKQ_ID_SIZE], id3[TASKQ_ID_SIZE];
    submit_free(x, task_v("echo", "\"skipped\"", NULL), id2);
    submit_free(x, task_v("echo", "\"runs\"", NULL), id3);
    assert_int_equal(taskq_cancel(x->c, NULL, id2), 0);
    start_worker(x, NULL);
    r = wait_final(x, id3, WAIT_S);
    assert_int_equal(taskq_result_state(r), TASKQ_SUCCESS);
    taskq_result_free(r);
    r = wait_final(x, id2, 1.0);
    assert_int_equal(taskq_result_state(r), TASKQ_REVOKED);
    taskq_result_free(r);
}

static void test_client_cancel_unknown_notfound(void **state)
{
    tc *x = *state;
    assert_int_equal(taskq_cancel(x->c, NULL, "no-such-task-id"), TASKQ_ENOTFOUND);
    assert_non_null(strstr(taskq_client_errstr(x->c), "no-such-task-id"));
    taskq_result *r = (taskq_result *)1;
    assert_int_equal(taskq_result_get(x->c, NULL, "no-such-task-id", &r), TASKQ_ENOTFOUND);
    taskq_state s;
    assert_int_equal(taskq_state_get(x->c, NULL, "no-such-task-id", &s), TASKQ_ENOTFOUND);
    /* An invalid id is an argument error, not a lookup. */
    assert_int_equal(taskq_cancel(x->c, NULL, "bad id!"), TASKQ_EINVAL);
}

/* ---- unknown tasks and dead letters -------------------------------------- */

static int dead_list_has(tc *x, const char *id)
{
    char *json = NULL;
    int rc = taskq_dead_list(x->c, NULL, 100, &json);
    if (rc != 0)
        fail_msg("dead list: %d %s", rc, taskq_client_errstr(x->c));
    json_error_t e;
    json_t *a = json_loads(json, 0, &e);
    if (!json_is_array(a))
        fail_msg("dead list is not a JSON array: %s", json);
    int found = 0;
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        const char *eid = json_string_value(json_object_get(v, "id"));
        if (eid && strcmp(eid, id) == 0)
            found = 1;
    }
    json_decref(a);
    free(json);
    return found;
}

static void test_client_unknown_task_dead_lettered(void **state)
{
    tc *x = *state;
    start_worker(x, NULL);
    char id[TASKQ_ID_SIZE];
    submit_free(x, task_v("no.such.task", "1", NULL), id);
    taskq_result *r = wait_final(x, id, WAIT_S);
    assert_int_equal(taskq_result_state(r), TASKQ_FAILURE);
    assert_string_equal(taskq_result_error_type(r), "NotRegistered");
    assert_non_null(strstr(taskq_result_error_message(r), "no.such.task"));
    assert_non_null(strstr(taskq_result_json(r), "\"dead\":true"));
    taskq_result_free(r);

    assert_true(dead_list_has(x, id));
    char *json = NULL;
    assert_int_equal(taskq_dead_list(x->c, NULL, 10, &json), 0);
    assert_non_null(strstr(json, "no.such.task"));
    free(json);
    json = NULL;
    assert_int_equal(taskq_dead_show(x->c, NULL, id, &json), 0);
    assert_non_null(strstr(json, id));
    assert_non_null(strstr(json, "no.such.task"));
    free(json);
}

static void test_client_dead_requeue_and_purge(void **state)
{
    tc *x = *state;
    tf_worker *w = start_worker(x, NULL);
    char id1[TASKQ_ID_SIZE], id2[TASKQ_ID_SIZE], id3[TASKQ_ID_SIZE];
    submit_free(x, task_v("no.such.one", NULL), id1);
    submit_free(x, task_v("no.such.two", NULL), id2);
    submit_free(x, task_v("no.such.three", NULL), id3);
    taskq_result_free(wait_final(x, id1, WAIT_S));
    taskq_result_free(wait_final(x, id2, WAIT_S));
    taskq_result_free(wait_final(x, id3, WAIT_S));
    assert_true(dead_list_has(x, id1) && dead_list_has(x, id2) && dead_list_has(x, id3));

    /* Requeue with no worker: the task is queued again, out of the set. */
    stop_worker(w);
    assert_int_equal(taskq_dead_requeue(x->c, NULL, id1), 0);
    assert_false(dead_list_has(x, id1));
    assert_int_equal(state_of(x, id1), TASKQ_PENDING);
    assert_int_equal(taskq_dead_requeue(x->c, NULL, "not-dead"), TASKQ_ENOTFOUND);
    /* A worker runs it again (attempts reset) and dead-letters it again. */
    start_worker(x, NULL);
    wait_state(x, id1, TASKQ_FAILURE, 10000);
    taskq_result *r = wait_final(x, id1, WAIT_S);
    assert_string_equal(taskq_result_error_type(r), "NotRegistered");
    assert_int_equal(taskq_result_attempts(r), 1);
    taskq_result_free(r);
    assert_true(dead_list_has(x, id1));

    /* Purge one, then all. */
    size_t removed = 99;
    assert_int_equal(taskq_dead_purge(x->c, NULL, id2, &removed), 0);
    assert_int_equal(removed, 1);
    assert_false(dead_list_has(x, id2));
    assert_true(dead_list_has(x, id3));
    assert_int_equal(taskq_dead_purge(x->c, NULL, NULL, &removed), 0);
    assert_int_equal(removed, 2);
    assert_false(dead_list_has(x, id1));
    assert_false(dead_list_has(x, id3));
    char *json = NULL;
    assert_int_equal(taskq_dead_list(x->c, NULL, 10, &json), 0);
    assert_string_equal(json, "[]");
    free(json);
}

/* After a dead-lettered task is requeued, a wait must block in Redis again:
 * the done list of its first ending must not wake the waiter. */
static void test_client_dead_requeue_wait_blocks(void **state)
{
    tc *x = *state;
    tf_worker *w = start_worker(x, NULL);
    char id[TASKQ_ID_SIZE];
    submit_free(x, task_v("no.such.task", NULL), id);
    taskq_result_free(wait_final(x, id, WAIT_S));
    stop_worker(w);
    assert_int_equal(taskq_dead_requeue(x->c, NULL, id), 0);

    long long before = redis_commands();
    long long t0 = th_mono_ms();
    taskq_result *r = NULL;
    assert_int_equal(taskq_result_wait(x->c, NULL, id, 1.0, &r), TASKQ_ETIMEDOUT);
    long long dt = th_mono_ms() - t0;
    long long cmds = redis_commands() - before;
    assert_non_null(r);
    assert_int_equal(taskq_result_state(r), TASKQ_PENDING);
    taskq_result_free(r);
    assert_in_range(dt, 700, 1300);
    if (cmds >= 10)
        fail_msg("waiting 1 s on a requeued task sent %lld commands to Redis (polling)", cmds);
}

/* ---- timing ------------------------------------------------------------- */

static void test_client_countdown_not_before_time(void **state)
{
    tc *x = *state;
    start_worker(x, NULL);
    char id[TASKQ_ID_SIZE];
    taskq_task *t = task_v("add", "1", "2", NULL);
    assert_int_equal(taskq_task_set_countdown(t, 2.0), 0);
    submit_free(x, t, id);

    /* Still PENDING for (about) the first 1.5 s: the wait times out. */
    taskq_result *r = NULL;
    assert_int_equal(taskq_result_wait(x->c, NULL, id, 1.5, &r), TASKQ_ETIMEDOUT);
    assert_int_equal(taskq_result_state(r), TASKQ_PENDING);
    taskq_result_free(r);

    r = wait_final(x, id, WAIT_S);
    assert_int_equal(taskq_result_state(r), TASKQ_SUCCESS);
    assert_string_equal(taskq_result_value(r), "3");
    long long delay = rec_int(r, "started_ms") - rec_int(r, "created_ms");
    taskq_result_free(r);
    if (delay < 2000 || delay > 2300)
        fail_msg("countdown 2 s: started %lld ms after creation, want 2000..2300", delay);
}

static void test_client_eta_runs_at_time(void **state)
{
    tc *x = *state;
    start_worker(x, NULL);
    long long now = tf_redis_now_ms(tf_group()->rc);
    taskq_task *t = task_v("echo", "\"eta\"", NULL);
    assert_int_equal(taskq_task_set_eta(t, now + 1000), 0);
    char id[TASKQ_ID_SIZE];
    submit_free(x, t, id);
    taskq_result *r = wait_final(x, id, WAIT_S);
    assert_int_equal(taskq_result_state(r), TASKQ_SUCCESS);
    long long started = rec_int(r, "started_ms");
    taskq_result_free(r);
    assert_in_range(started - now, 1000, 1300);
}

static void test_client_wait_timeout_blocks_in_redis(void **state)
{
    tc *x = *state;
    /* No worker: the task stays PENDING and the wait must time out. */
    char id[TASKQ_ID_SIZE];
    submit_free(x, task_v("echo", "1", NULL), id);

    long long before = redis_commands();
    long long t0 = th_mono_ms();
    taskq_result *r = NULL;
    int rc = taskq_result_wait(x->c, NULL, id, 1.0, &r);
    long long dt = th_mono_ms() - t0;
    long long cmds = redis_commands() - before;
    assert_int_equal(rc, TASKQ_ETIMEDOUT);
    assert_int_equal(taskq_client_error(x->c), TASKQ_ETIMEDOUT);
    assert_non_null(strstr(taskq_client_errstr(x->c), id));
    assert_non_null(r); /* the latest state */
    assert_int_equal(taskq_result_state(r), TASKQ_PENDING);
    taskq_result_free(r);
    assert_in_range(dt, 700, 1300);
    if (cmds >= 10)
        fail_msg("a 1 s wait sent %lld commands to Redis (polling?)", cmds);

    /* A short wait on a running task times out too, state STARTED. */
    start_worker(x, NULL);
    submit_free(x, task_v("sleep", "2", NULL), id);
    wait_state(x, id, TASKQ_STARTED, 5000);
    t0 = th_mono_ms();
    rc = taskq_result_wait(x->c, NULL, id, 0.3, &r);
    dt = th_mono_ms() - t0;
    assert_int_equal(rc, TASKQ_ETIMEDOUT);
    assert_int_equal(taskq_result_state(r), TASKQ_STARTED);
    taskq_result_free(r);
    assert_in_range(dt, 0, 600);
    /* Zero time-out: a single look. */
    assert_int_equal(taskq_result_wait(x->c, NULL, id, 0, &r), TASKQ_ETIMEDOUT);
    taskq_result_free(r);
}

static void test_client_wait_wakes_on_finish(void **state)
{
    tc *x = *state;
    start_worker(x, NULL);
    char id[TASKQ_ID_SIZE];
    submit_free(x, task_v("sleep", "0.5", NULL), id);
    long long t0 = th_mono_ms();
    taskq_result *r = wait_final(x, id, WAIT_S);
    long long dt = th_mono_ms() - t0;
    assert_int_equal(taskq_result_state(r), TASKQ_SUCCESS);
    taskq_result_free(r);
    /* Woken by the done list, not by the 10 s time-out. */
    assert_in_range(dt, 450, 1500);
}

static void test_client_expires_revoked(void **state)
{
    tc *x = *state;
    taskq_task *t = task_v("echo", "\"late\"", NULL);
    assert_int_equal(taskq_task_set_expires(t, 0.5), 0);
    char id[TASKQ_ID_SIZE];
    submit_free(x, t, id);
    /* Let the expiry pass with no worker (a blocking wait, not a sleep). */
    taskq_result *r = NULL;
    assert_int_equal(taskq_result_wait(x->c, NULL, id, 1.0, &r), TASKQ_ETIMEDOUT);
    taskq_result_free(r);
    start_worker(x, NULL);
    r = wait_final(x, id, WAIT_S);
    assert_int_equal(taskq_result_state(r), TASKQ_REVOKED);
    assert_string_equal(taskq_result_error_type(r), "Expired");
    assert_null(taskq_result_value(r));
    taskq_result_free(r);

    /* An unexpired task with the same option runs normally. */
    t = task_v("echo", "\"in time\"", NULL);
    assert_int_equal(taskq_task_set_expires(t, 30), 0);
    submit_free(x, t, id);
    r = wait_final(x, id, WAIT_S);
    assert_int_equal(taskq_result_state(r), TASKQ_SUCCESS);
    taskq_result_free(r);
}

/* ---- refusals ----------------------------------------------------------- */

static void test_client_queue_cap_full(void **state)
{
    tc *x = *state;
    assert_int_equal(taskq_client_set_queue_cap(x->c, 5), 0);
    char ids[5][TASKQ_ID_SIZE], id[TASKQ_ID_SIZE];
    for (int i = 0; i < 4; i++)
        submit_free(x, task_v("noop", NULL), ids[i]);
    /* Delayed tasks count too. */
    taskq_task *d = task_v("noop", NULL);
    assert_int_equal(taskq_task_set_countdown(d, 0.5), 0);
    submit_free(x, d, ids[4]);
    taskq_task *t = task_v("noop", NULL);
    assert_int_equal(taskq_submit(x->c, t, id), TASKQ_EFULL);
    assert_int_equal(taskq_client_error(x->c), TASKQ_EFULL);
    assert_non_null(strstr(taskq_client_errstr(x->c), "full"));
    /* In a batch, the same. */
    int code = 0;
    char bid[1][TASKQ_ID_SIZE];
    assert_int_equal(taskq_submit_many(x->c, &t, 1, bid, &code), TASKQ_EFULL);
    assert_int_equal(code, TASKQ_EFULL);
    /* Another queue of the same client is not affected. */
    assert_int_equal(taskq_task_set_queue(t, "other"), 0);
    assert_int_equal(taskq_submit(x->c, t, id), 0);
    /* The cap counts tasks still held: once the worker has run them, the
     * queue takes new ones again. */
    start_worker(x, NULL);
    for (int i = 0; i < 5; i++)
        taskq_result_free(wait_final(x, ids[i], WAIT_S));
    assert_int_equal(taskq_task_set_queue(t, "default"), 0);
    assert_int_equal(taskq_submit(x->c, t, id), 0);
    taskq_task_free(t);
    /* 0: no cap. */
    assert_int_equal(taskq_client_set_queue_cap(x->c, 0), 0);
    assert_int_equal(taskq_client_set_queue_cap(x->c, -1), TASKQ_EINVAL);
}

static void test_client_duplicate_id_exists(void **state)
{
    tc *x = *state;
    taskq_task *t = task_v("echo", "1", NULL);
    assert_int_equal(taskq_task_set_id(t, "my-task_01"), 0);
    char id[TASKQ_ID_SIZE];
    assert_int_equal(taskq_submit(x->c, t, id), 0);
    assert_string_equal(id, "my-task_01");
    assert_int_equal(taskq_submit(x->c, t, id), TASKQ_EEXIST);
    assert_non_null(strstr(taskq_client_errstr(x->c), "my-task_01"));
    /* Once it has run, the id may be used again. */
    start_worker(x, NULL);
    taskq_result_free(wait_final(x, "my-task_01", WAIT_S));
    assert_int_equal(taskq_submit(x->c, t, id), 0);
    taskq_task_free(t);
    taskq_result *r = wait_final(x, "my-task_01", WAIT_S);
    assert_int_equal(taskq_result_state(r), TASKQ_SUCCESS);
    taskq_result_free(r);
    /* Invalid ids are refused by the setter. */
    taskq_task *b = taskq_task_new("echo");
    assert_int_equal(taskq_task_set_id(b, "has space"), TASKQ_EINVAL);
    assert_non_null(strstr(taskq_task_errstr(b), "has space"));
    taskq_task_free(b);
}

static void test_client_message_too_big(void **state)
{
    tc *x = *state;
    size_t n = (1u << 20) + 100;
    char *big = malloc(n + 3);
    assert_non_null(big);
    big[0] = '"';
    memset(big + 1, 'a', n);
    big[n + 1] = '"';
    big[n + 2] = '\0';
    taskq_task *t = taskq_task_new("echo");
    int rc = taskq_task_arg_json(t, big);
    free(big);
    char id[TASKQ_ID_SIZE];
    if (rc == 0)
        rc = taskq_submit(x->c, t, id);
    taskq_task_free(t);
    assert_int_equal(rc, TASKQ_ETOOBIG);
    assert_true(strlen(taskq_client_errstr(x->c)) > 0);
    /* Nothing was queued. */
    redisReply *r = th_cmd(tf_group()->rc, "HLEN %s{default}:msg", x->prefix);
    assert_non_null(r);
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
}

static void test_client_invalid_json_arg(void **state)
{
    tc *x = *state;
    taskq_task *t = taskq_task_new("add");
    assert_int_equal(taskq_task_arg_json(t, "1"), 0);
    assert_int_equal(taskq_task_arg_json(t, "{not json"), TASKQ_EINVAL);
    assert_non_null(strstr(taskq_task_errstr(t), "argument 2"));
    /* The task is not submittable in that state, and says why. */
    char id[TASKQ_ID_SIZE];
    assert_int_equal(taskq_submit(x->c, t, id), TASKQ_EINVAL);
    assert_non_null(strstr(taskq_client_errstr(x->c), "argument 2"));
    taskq_task_free(t);

    t = taskq_task_new("add");
    assert_int_equal(taskq_task_kwarg_json(t, "scale", "nope"), TASKQ_EINVAL);
    assert_non_null(strstr(taskq_task_errstr(t), "scale"));
    assert_int_equal(taskq_task_args_json(t, "{\"a\":1}"), TASKQ_EINVAL);
    taskq_task_free(t);

    /* No name, bad queue name. */
    t = taskq_task_new(NULL);
    assert_int_equal(taskq_submit(x->c, t, id), TASKQ_EINVAL);
    assert_int_equal(taskq_task_set_queue(t, "a:b"), TASKQ_EINVAL);
    taskq_task_free(t);
}

static void test_client_unreachable_econn(void **state)
{
    (void)state;
    int port = tf_dead_port();
    char url[64], addr[32];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", port);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    taskq_client *c = taskq_client_new(url);
    assert_non_null(c);
    assert_int_equal(taskq_client_error(c), TASKQ_ECONN);
    if (!strstr(taskq_client_errstr(c), addr))
        fail_msg("errstr '%s' does not name %s", taskq_client_errstr(c), addr);
    assert_int_equal(taskq_client_ping(c), TASKQ_ECONN);
    taskq_task *t = task_v("echo", NULL);
    char id[TASKQ_ID_SIZE];
    assert_int_equal(taskq_submit(c, t, id), TASKQ_ECONN);
    assert_non_null(strstr(taskq_client_errstr(c), addr));
    taskq_result *r = NULL;
    assert_int_equal(taskq_result_wait(c, NULL, "abc", 0.2, &r), TASKQ_ECONN);
    assert_null(r);
    taskq_task_free(t);
    taskq_client_free(c);
}

static void test_client_password_not_in_errstr(void **state)
{
    (void)state;
    const char *pw = "s3cretPassw0rd";
    char url[128];
    /* Unreachable. */
    snprintf(url, sizeof(url), "redis://bob:%s@127.0.0.1:%d/0", pw, tf_dead_port());
    taskq_client *c = taskq_client_new(url);
    assert_non_null(c);
    assert_int_equal(taskq_client_error(c), TASKQ_ECONN);
    if (strstr(taskq_client_errstr(c), pw))
        fail_msg("errstr shows the password: %s", taskq_client_errstr(c));
    assert_non_null(strstr(taskq_client_errstr(c), "127.0.0.1"));
    taskq_client_free(c);
    /* Reachable, but the server refuses the credentials. */
    snprintf(url, sizeof(url), "redis://bob:%s@127.0.0.1:%d/0", pw, tf_group()->srv->port);
    c = taskq_client_new(url);
    assert_non_null(c);
    assert_int_not_equal(taskq_client_error(c), TASKQ_OK);
    if (strstr(taskq_client_errstr(c), pw))
        fail_msg("errstr shows the password: %s", taskq_client_errstr(c));
    taskq_client_free(c);
    /* Password only, with a bad database number. */
    snprintf(url, sizeof(url), "redis://:%s@127.0.0.1:%d/99999", pw, tf_group()->srv->port);
    c = taskq_client_new(url);
    assert_non_null(c);
    assert_int_not_equal(taskq_client_error(c), TASKQ_OK);
    if (strstr(taskq_client_errstr(c), pw))
        fail_msg("errstr shows the password: %s", taskq_client_errstr(c));
    taskq_client_free(c);
}

/* ---- connections -------------------------------------------------------- */

static void test_client_reconnects_after_redis_restart(void **state)
{
    tc *x = *state;
    (void)x;
    th_redis_server *srv = th_redis_start(NULL);
    assert_non_null(srv);
    taskq_client *c = taskq_client_new(srv->url);
    assert_non_null(c);
    assert_int_equal(taskq_client_error(c), TASKQ_OK);
    taskq_task *t = task_v("echo", "1", NULL);
    char id[TASKQ_ID_SIZE];
    assert_int_equal(taskq_submit(c, t, id), 0);

    /* Redis goes away: calls fail with ECONN naming the address... */
    assert_int_equal(th_redis_stop(srv), 0);
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", srv->port);
    assert_int_equal(taskq_submit(c, t, id), TASKQ_ECONN);
    if (!strstr(taskq_client_errstr(c), addr))
        fail_msg("errstr '%s' does not name %s", taskq_client_errstr(c), addr);
    assert_int_equal(taskq_client_ping(c), TASKQ_ECONN);
    /* ...and work again once it is back, scripts reloaded (NOSCRIPT). */
    assert_int_equal(th_redis_restart(srv), 0);
    int rc = taskq_submit(c, t, id);
    if (rc != 0)
        fail_msg("submit after restart: %d %s", rc, taskq_client_errstr(c));
    assert_int_equal(taskq_client_error(c), TASKQ_OK);
    taskq_state st;
    assert_int_equal(taskq_state_get(c, NULL, id, &st), 0);
    assert_int_equal(st, TASKQ_PENDING);
    taskq_task_free(t);
    taskq_client_free(c);
    th_redis_free(srv);
}

static void test_client_password_and_db(void **state)
{
    tc *x = *state;
    /* (The harness pings the server to know it is ready: set the password
     * afterwards.) */
    th_redis_server *srv = th_redis_start(NULL);
    assert_non_null(srv);
    redisContext *rc = th_redis(srv);
    assert_non_null(rc);
    freeReplyObject(th_cmd(rc, "CONFIG SET requirepass pa55-word"));
    char url[160];
    /* Right password, database 3. */
    snprintf(url, sizeof(url), "redis://:pa55-word@127.0.0.1:%d/3", srv->port);
    taskq_client *c = taskq_client_new(url);
    assert_non_null(c);
    if (taskq_client_error(c) != TASKQ_OK)
        fail_msg("client: %s", taskq_client_errstr(c));
    assert_int_equal(taskq_client_set_prefix(c, x->prefix), 0);
    taskq_task *t = task_v("echo", "\"db3\"", NULL);
    char id[TASKQ_ID_SIZE];
    assert_int_equal(taskq_submit(c, t, id), 0);
    taskq_task_free(t);
    freeReplyObject(th_cmd(rc, "SELECT 3"));
    redisReply *r = th_cmd(rc, "HEXISTS %s{default}:msg %s", x->prefix, id);
    assert_non_null(r);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);

    /* A worker with the same URL runs it. */
    const char *argv[] = {"--prefix", x->prefix, "--concurrency", "1", NULL};
    tf_worker w;
    tf_worker_start(&w, url, argv, NULL, 0);
    taskq_result *res = NULL;
    assert_int_equal(taskq_result_wait(c, NULL, id, WAIT_S, &res), 0);
    assert_string_equal(taskq_result_value(res), "\"db3\"");
    taskq_result_free(res);
    int st = tf_worker_stop(&w, STOP_MS);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    char *log = th_read_file(w.log, NULL);
    if (log && strstr(log, "pa55-word"))
        fail_msg("the worker logged the password:\n%s", log);
    free(log);
    taskq_client_free(c);

    /* Wrong password: a clear error, without the password. */
    snprintf(url, sizeof(url), "redis://:wrong-pw-xyz@127.0.0.1:%d/0", srv->port);
    c = taskq_client_new(url);
    assert_non_null(c);
    assert_int_not_equal(taskq_client_error(c), TASKQ_OK);
    assert_true(strlen(taskq_client_errstr(c)) > 0);
    if (strstr(taskq_client_errstr(c), "wrong-pw-xyz"))
        fail_msg("errstr shows the password: %s", taskq_client_errstr(c));
    assert_int_not_equal(taskq_client_ping(c), 0);
    taskq_client_free(c);
    /* No password at all. */
    c = taskq_client_new(srv->url);
    assert_non_null(c);
    t = task_v("echo", NULL);
    assert_int_not_equal(taskq_submit(c, t, id), 0);
    assert_true(strlen(taskq_client_errstr(c)) > 0);
    taskq_task_free(t);
    taskq_client_free(c);
    /* (Let the harness stop it.) */
    freeReplyObject(th_cmd(rc, "CONFIG SET requirepass \"\""));
    redisFree(rc);
    th_redis_free(srv);
}

static void test_client_unix_socket(void **state)
{
    tc *x = *state;
    char sock[TH_PATH_MAX];
    snprintf(sock, sizeof(sock), "%s/redis-%d.sock", th_tmpdir(), (int)getpid());
    const char *extra[] = {"--unixsocket", sock, NULL};
    th_redis_server *srv = th_redis_start(extra);
    assert_non_null(srv);
    char url[TH_PATH_MAX + 32];
    snprintf(url, sizeof(url), "unix://%s?db=2", sock);
    taskq_client *c = taskq_client_new(url);
    assert_non_null(c);
    if (taskq_client_error(c) != TASKQ_OK) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", taskq_client_errstr(c));
        taskq_client_free(c);
        th_redis_free(srv);
        fail_msg("client %s: %s", url, msg);
    }
    assert_int_equal(taskq_client_set_prefix(c, x->prefix), 0);
    const char *argv[] = {"--prefix", x->prefix, "--concurrency", "1", NULL};
    tf_worker w;
    tf_worker_start(&w, url, argv, NULL, 0);
    taskq_task *t = task_v("add", "7", "8", NULL);
    char id[TASKQ_ID_SIZE];
    assert_int_equal(taskq_submit(c, t, id), 0);
    taskq_task_free(t);
    taskq_result *res = NULL;
    assert_int_equal(taskq_result_wait(c, NULL, id, WAIT_S, &res), 0);
    assert_string_equal(taskq_result_value(res), "15");
    taskq_result_free(res);
    redisContext *rc = th_redis(srv);
    freeReplyObject(th_cmd(rc, "SELECT 2"));
    redisReply *r = th_cmd(rc, "EXISTS %s{default}:done:%s", x->prefix, id);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    redisFree(rc);
    int st = tf_worker_stop(&w, STOP_MS);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    taskq_client_free(c);
    th_redis_free(srv);
}

/* ---- more of the task lifecycle ----------------------------------------- */

static void test_client_time_limits(void **state)
{
    tc *x = *state;
    start_worker(x, NULL);
    char soft[TASKQ_ID_SIZE], hard[TASKQ_ID_SIZE];
    taskq_task *t = task_v("sleep", "10", NULL);
    assert_int_equal(taskq_task_set_time_limits(t, 0.3, 0), 0);
    submit_free(x, t, soft);
    t = task_v("hang", NULL);
    assert_int_equal(taskq_task_set_time_limits(t, 0, 0.5), 0);
    assert_int_equal(taskq_task_set_retries(t, 0), 0);
    submit_free(x, t, hard);

    taskq_result *r = wait_final(x, soft, WAIT_S);
    assert_int_equal(taskq_result_state(r), TASKQ_FAILURE);
    assert_string_equal(taskq_result_error_type(r), "SoftTimeLimitExceeded");
    assert_true(rec_int(r, "finished_ms") - rec_int(r, "started_ms") < 2000);
    taskq_result_free(r);
    r = wait_final(x, hard, WAIT_S);
    assert_int_equal(taskq_result_state(r), TASKQ_FAILURE);
    assert_string_equal(taskq_result_error_type(r), "TimeLimitExceeded");
    assert_true(rec_int(r, "finished_ms") - rec_int(r, "started_ms") < 3000);
    taskq_result_free(r);
    /* The pool recovered: the worker still runs tasks. */
    submit_free(x, task_v("add", "1", "1", NULL), soft);
    r = wait_final(x, soft, WAIT_S);
    assert_int_equal(taskq_result_state(r), TASKQ_SUCCESS);
    taskq_result_free(r);
}

static void test_client_wait_no_limit_and_two_waiters(void **state)
{
    tc *x = *state;
    start_worker(x, NULL);
    char id[TASKQ_ID_SIZE];
    submit_free(x, task_v("sleep", "0.5", NULL), id);
    /* A second waiter in another process (taskq-submit result --wait). */
    char *bin = th_bin("taskq-submit");
    const char *argv[] = {
        bin, "--redis", tf_group()->srv->url, "--prefix", x->prefix, "result", id, "--wait", NULL};
    char plog[TH_PATH_MAX];
    pid_t p = tf_spawn(argv, NULL, plog);
    free(bin);
    /* Timeout < 0: no limit. */
    taskq_result *r = NULL;
    assert_int_equal(taskq_result_wait(x->c, NULL, id, -1, &r), 0);
    assert_int_equal(taskq_result_state(r), TASKQ_SUCCESS);
    taskq_result_free(r);
    int st = 0;
    assert_int_equal(th_wait_exit(p, 5000, &st), 0);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    char *out = th_read_file(plog, NULL);
    assert_non_null(out);
    assert_string_equal(out, "0.5\n");
    free(out);
    /* A third, later waiter still finds the result at once. */
    long long t0 = th_mono_ms();
    r = wait_final(x, id, WAIT_S);
    assert_true(th_mono_ms() - t0 < 500);
    taskq_result_free(r);
}

static void test_client_progress_task_runs(void **state)
{
    tc *x = *state;
    start_worker(x, NULL);
    taskq_task *t = task_v("progress", "20", NULL);
    char id[TASKQ_ID_SIZE];
    submit_free(x, t, id);
    taskq_result *r = wait_final(x, id, WAIT_S);
    assert_int_equal(taskq_result_state(r), TASKQ_SUCCESS);
    assert_string_equal(taskq_result_value(r), "20");
    taskq_result_free(r);
}

/* Polled by test_client_result_ttl: true once the task's record is gone. */
typedef struct gone_arg {
    taskq_client *c;
    const char *id;
} gone_arg;

static int result_gone(void *arg)
{
    gone_arg *g = arg;
    taskq_result *res = NULL;
    int rc = taskq_result_get(g->c, NULL, g->id, &res);
    taskq_result_free(res);
    return rc == TASKQ_ENOTFOUND;
}

static void test_client_result_ttl(void **state)
{
    tc *x = *state;
    const char *opts[] = {"--result-ttl", "2", NULL};
    start_worker(x, opts);
    char id[TASKQ_ID_SIZE];
    submit_free(x, task_v("noop", NULL), id);
    taskq_result_free(wait_final(x, id, WAIT_S));
    long long t0 = th_mono_ms();
    /* The record lives in a results generation of a 1 s span (a TTL of 2 s
     * over 8, at least 1 s), whose hash expires two spans after it
     * retires: at most 2 + 1 + 2 s from now. */
    redisReply *r = th_cmd(tf_group()->rc, "ZRANGE %s{default}:results 0 -1", x->prefix);
    assert_int_equal(r->elements, 1);
    redisReply *h =
        th_cmd(tf_group()->rc, "HGET %s{default}:results:%s %s", x->prefix, r->element[0]->str, id);
    assert_int_equal(h->type, REDIS_REPLY_STRING);
    assert_non_null(strstr(h->str, "\"SUCCESS\""));
    freeReplyObject(h);
    h = th_cmd(tf_group()->rc, "PTTL %s{default}:results:%s", x->prefix, r->element[0]->str);
    assert_in_range(h->integer, 1, 5000);
    freeReplyObject(h);
    freeReplyObject(r);
    /* The wait above registered: the waiter's copy is kept for a minute. */
    r = th_cmd(tf_group()->rc, "PTTL %s{default}:done:%s", x->prefix, id);
    assert_true(r->integer <= 60000);
    freeReplyObject(r);
    /* Gone once its generation expires, and not before the TTL: then the
     * task is unknown. */
    gone_arg g = {x->c, id};
    assert_true(th_wait_until(result_gone, &g, 10000));
    assert_true(th_mono_ms() - t0 >= 1500);
}

static void test_client_task_dup_and_apply_json(void **state)
{
    tc *x = *state;
    start_worker(x, NULL);
    taskq_task *t = taskq_task_new(NULL);
    assert_int_equal(taskq_task_apply_json(t, "{\"task\":\"add\",\"args\":[1,2],\"queue\":\"q2\"}"),
                     0);
    assert_string_equal(taskq_task_queue(t), "q2");
    taskq_task *d = taskq_task_dup(t);
    assert_non_null(d);
    assert_int_equal(taskq_task_apply_json(d, "{\"args\":[10,20],\"queue\":\"default\"}"), 0);
    assert_string_equal(taskq_task_queue(t), "q2"); /* the copy is independent */
    assert_int_equal(taskq_task_apply_json(d, "{\"countdown\":\"soon\"}"), TASKQ_EINVAL);
    assert_non_null(strstr(taskq_task_errstr(d), "countdown"));
    taskq_task_free(d);
    d = taskq_task_dup(t);
    assert_int_equal(taskq_task_apply_json(d, "{\"args\":[10,20],\"queue\":\"default\"}"), 0);
    char id[TASKQ_ID_SIZE], id2[TASKQ_ID_SIZE];
    submit_free(x, d, id);
    assert_int_equal(taskq_submit(x->c, t, id2), 0);
    taskq_task_free(t);
    taskq_result *r = wait_final(x, id, WAIT_S);
    assert_string_equal(taskq_result_value(r), "30");
    taskq_result_free(r);
    /* q2 has no worker: still pending there, unknown on default. */
    taskq_state st;
    assert_int_equal(taskq_state_get(x->c, "q2", id2, &st), 0);
    assert_int_equal(st, TASKQ_PENDING);
    assert_int_equal(taskq_state_get(x->c, NULL, id2, &st), TASKQ_ENOTFOUND);
}

/* ---- workers ------------------------------------------------------------ */

/* "stopped: N succeeded" from a worker's final log line, -1 if absent. */
static long long worker_succeeded(const tf_worker *w)
{
    char *s = th_read_file(w->log, NULL);
    long long n = -1;
    const char *p = s ? strstr(s, " stopped: ") : NULL;
    if (p)
        n = strtoll(p + 10, NULL, 10);
    free(s);
    return n;
}

static void test_client_two_workers_each_task_once(void **state)
{
    tc *x = *state;
    enum { N = 500 };
    tf_worker *w1 = start_worker(x, NULL);
    tf_worker *w2 = start_worker(x, NULL);
    static taskq_task *tasks[N];
    static char ids[N][TASKQ_ID_SIZE];
    static int codes[N];
    for (int i = 0; i < N; i++) {
        char a[16];
        snprintf(a, sizeof(a), "%d", i);
        tasks[i] = task_v("echo", a, NULL);
    }
    assert_int_equal(taskq_submit_many(x->c, tasks, N, ids, codes), 0);
    for (int i = 0; i < N; i++)
        taskq_task_free(tasks[i]);

    char wid[2][128] = {"", ""};
    int per[2] = {0, 0};
    for (int i = 0; i < N; i++) {
        taskq_result *r = wait_final(x, ids[i], WAIT_S);
        char want[16];
        snprintf(want, sizeof(want), "%d", i);
        assert_int_equal(taskq_result_state(r), TASKQ_SUCCESS);
        assert_string_equal(taskq_result_value(r), want);
        assert_int_equal(taskq_result_attempts(r), 1);
        const char *w = taskq_result_worker(r);
        assert_non_null(w);
        int k;
        for (k = 0; k < 2; k++) {
            if (!wid[k][0])
                snprintf(wid[k], sizeof(wid[k]), "%s", w);
            if (strcmp(wid[k], w) == 0)
                break;
        }
        if (k == 2)
            fail_msg("a third worker id: %s (%s, %s)", w, wid[0], wid[1]);
        per[k]++;
        taskq_result_free(r);
    }
    if (per[0] == 0 || per[1] == 0 || !wid[1][0])
        fail_msg("one worker did all the work: %d / %d", per[0], per[1]);
    /* Executions, counted by the workers themselves: exactly N in total. */
    stop_worker(w1);
    stop_worker(w2);
    long long s1 = worker_succeeded(w1), s2 = worker_succeeded(w2);
    if (s1 < 0 || s2 < 0)
        fail_msg("no 'stopped: N succeeded' line in the worker logs");
    assert_int_equal(s1 + s2, N);
}

static void test_client_sigterm_waits_for_running(void **state)
{
    tc *x = *state;
    const char *opts[] = {"--concurrency", "4", NULL};
    tf_worker *w = start_worker(x, opts);
    char ids[6][TASKQ_ID_SIZE];
    for (int i = 0; i < 4; i++)
        submit_free(x, task_v("sleep", "1", NULL), ids[i]);
    for (int i = 0; i < 4; i++)
        wait_state(x, ids[i], TASKQ_STARTED, 5000);
    /* Two more that cannot start before the shutdown. */
    for (int i = 4; i < 6; i++)
        submit_free(x, task_v("add", "1", "2", NULL), ids[i]);

    long long t0 = th_mono_ms();
    assert_int_equal(th_signal(w->pid, SIGTERM), 0);
    int st = 0;
    if (th_wait_exit(w->pid, 5000, &st) != 0) {
        th_dump_file("worker log", w->log);
        fail_msg("worker still running 5 s after SIGTERM");
    }
    long long dt = th_mono_ms() - t0;
    w->pid = 0; /* reaped */
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        th_dump_file("worker log", w->log);
        fail_msg("worker status 0x%x after SIGTERM, want exit 0", st);
    }
    /* It waited for the tasks (they had up to 1 s left), not much longer. */
    assert_true(dt < 4000);
    for (int i = 0; i < 4; i++) {
        taskq_result *r = NULL;
        assert_int_equal(taskq_result_wait(x->c, NULL, ids[i], 0, &r), 0);
        assert_int_equal(taskq_result_state(r), TASKQ_SUCCESS);
        assert_string_equal(taskq_result_value(r), "1");
        assert_int_equal(taskq_result_attempts(r), 1);
        taskq_result_free(r);
    }
    /* The queued ones were not taken (or were put back): a new worker runs
     * them, each once. */
    for (int i = 4; i < 6; i++) {
        taskq_state s = state_of(x, ids[i]);
        if (s != TASKQ_PENDING && s != TASKQ_SUCCESS)
            fail_msg("queued task %d is %s after the shutdown", i, taskq_state_name(s));
    }
    start_worker(x, NULL);
    for (int i = 4; i < 6; i++) {
        taskq_result *r = wait_final(x, ids[i], WAIT_S);
        assert_int_equal(taskq_result_state(r), TASKQ_SUCCESS);
        assert_string_equal(taskq_result_value(r), "3");
        assert_int_equal(taskq_result_attempts(r), 1);
        taskq_result_free(r);
    }
}

/* A task that changes its arguments and fails gets them as submitted on
 * its retry, in either pool: the threads pool lends a task the worker's own
 * decode, which the worker decodes again before it sends a retry. */
static void mutated_args_retried(tc *x, const char *pool)
{
    char *lib = th_bin("tests/libtest_tasks.so");
    const char *opts[] = {"--pool", pool, "--load", lib, NULL};
    start_worker(x, opts);
    char id[TASKQ_ID_SIZE];
    taskq_task *t = task_v("t.mutate", "1", NULL);
    assert_int_equal(taskq_task_set_retries(t, 1), 0);
    submit_free(x, t, id);
    taskq_result *r = wait_final(x, id, WAIT_S);
    assert_int_equal(taskq_result_state(r), TASKQ_SUCCESS);
    assert_string_equal(taskq_result_value(r), "[[1,\"added\"],{\"added\":true}]");
    assert_int_equal(taskq_result_attempts(r), 2);
    taskq_result_free(r);
    free(lib);
}

static void test_client_threads_mutated_args_retried(void **state)
{
    mutated_args_retried(*state, "threads");
}

static void test_client_prefork_mutated_args_retried(void **state)
{
    mutated_args_retried(*state, "prefork");
}

static void test_client_threads_pool_basic(void **state)
{
    tc *x = *state;
    const char *opts[] = {"--pool", "threads", NULL};
    start_worker(x, opts);
    char id_add[TASKQ_ID_SIZE], id_echo[TASKQ_ID_SIZE], id_fail[TASKQ_ID_SIZE],
        id_unk[TASKQ_ID_SIZE], id_sleep[TASKQ_ID_SIZE];
    submit_free(x, task_v("add", "2", "3.5", NULL), id_add);
    submit_free(x, task_v("echo", "[1,{\"b\":null}]", NULL), id_echo);
    taskq_task *t = task_v("fail", "\"threaded\"", NULL);
    assert_int_equal(taskq_task_set_retries(t, 1), 0);
    submit_free(x, t, id_fail);
    submit_free(x, task_v("nope.task", NULL), id_unk);
    submit_free(x, task_v("sleep", "0.3", NULL), id_sleep);

    taskq_result *r = wait_final(x, id_add, WAIT_S);
    assert_int_equal(taskq_result_state(r), TASKQ_SUCCESS);
    assert_string_equal(taskq_result_value(r), "5.5");
    taskq_result_free(r);
    r = wait_final(x, id_echo, WAIT_S);
    assert_int_equal(taskq_result_state(r), TASKQ_SUCCESS);
    assert_string_equal(taskq_result_value(r), "[1,{\"b\":null}]");
    taskq_result_free(r);
    r = wait_final(x, id_fail, WAIT_S);
    assert_int_equal(taskq_result_state(r), TASKQ_FAILURE);
    assert_string_equal(taskq_result_error_type(r), "TaskError");
    assert_string_equal(taskq_result_error_message(r), "threaded");
    assert_int_equal(taskq_result_attempts(r), 2);
    assert_int_equal(rec_array_size(r, "errors"), 2);
    taskq_result_free(r);
    r = wait_final(x, id_unk, WAIT_S);
    assert_int_equal(taskq_result_state(r), TASKQ_FAILURE);
    assert_string_equal(taskq_result_error_type(r), "NotRegistered");
    taskq_result_free(r);
    r = wait_final(x, id_sleep, WAIT_S);
    assert_int_equal(taskq_result_state(r), TASKQ_SUCCESS);
    assert_true(rec_int(r, "finished_ms") - rec_int(r, "started_ms") >= 300);
    taskq_result_free(r);
}

/* ---- docs/examples/client_basic.c --------------------------------------- */

static void test_client_example_client_basic(void **state)
{
    tc *x = *state;
    char *bin = th_bin("examples/client_basic");
    struct stat sb;
    if (stat(bin, &sb) != 0) {
        free(bin);
        skip(); /* built by `make check` */
    }
    start_worker(x, NULL);
    char env_url[128], env_pfx[96];
    snprintf(env_url, sizeof(env_url), "TASKQ_REDIS_URL=%s", tf_group()->srv->url);
    snprintf(env_pfx, sizeof(env_pfx), "TASKQ_PREFIX=%s", x->prefix);
    const char *argv[] = {bin, NULL};
    const char *env[] = {env_url, env_pfx, NULL};
    char log[TH_PATH_MAX];
    pid_t pid = tf_spawn(argv, env, log);
    free(bin);
    int st = 0;
    assert_int_equal(th_wait_exit(pid, 15000, &st), 0);
    char *out = th_read_file(log, NULL);
    assert_non_null(out);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || strcmp(out, "add(2, 3) = 5\n") != 0)
        fail_msg("client_basic: status 0x%x, output '%s'", st, out);
    free(out);

    /* Without a worker it reports the time-out... too slow (10 s); with an
     * unreachable Redis it reports the address and exits 1. */
    char env_bad[96];
    int port = tf_dead_port();
    snprintf(env_bad, sizeof(env_bad), "TASKQ_REDIS_URL=redis://127.0.0.1:%d/0", port);
    const char *env2[] = {env_bad, env_pfx, NULL};
    bin = th_bin("examples/client_basic");
    argv[0] = bin;
    pid = tf_spawn(argv, env2, log);
    free(bin);
    assert_int_equal(th_wait_exit(pid, 15000, &st), 0);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    out = th_read_file(log, NULL);
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    if (!out || !strstr(out, addr))
        fail_msg("client_basic with no Redis: '%s'", out ? out : "(no output)");
    free(out);
}

/* A worker that goes idle after work gives its free heap back once, from
 * the heartbeat; while nothing runs it does not do it again. */
static void test_client_idle_worker_trims_heap(void **state)
{
    tc *x = *state;
    enum { N = 300 };
    const char *const opts[] = {"--lease", "1", "--heartbeat", "0.2", "--log-level", "debug", NULL};
    tf_worker *w = start_worker(x, opts);
    static taskq_task *tasks[N];
    static char ids[N][TASKQ_ID_SIZE];
    static int codes[N];
    for (int i = 0; i < N; i++)
        tasks[i] = task_v("echo", "1", NULL);
    assert_int_equal(taskq_submit_many(x->c, tasks, N, ids, codes), 0);
    for (int i = 0; i < N; i++)
        taskq_task_free(tasks[i]);
    taskq_result *r = wait_final(x, ids[N - 1], WAIT_S);
    assert_int_equal(taskq_result_state(r), TASKQ_SUCCESS);
    taskq_result_free(r);
    if (!tf_log_wait(w->log, 0, "idle: heap trimmed", 5000)) {
        th_dump_file("worker log", w->log);
        fail_msg("the idle worker did not trim its heap");
    }
    /* Five more heartbeats with nothing to do: no second trim. */
    long from = tf_file_size(w->log);
    assert_false(tf_log_wait(w->log, from, "idle: heap trimmed", 1000));
    /* New work, then idle again: trimmed again. */
    char id[TASKQ_ID_SIZE];
    taskq_task *t = task_v("echo", "2", NULL);
    assert_int_equal(taskq_submit(x->c, t, id), 0);
    taskq_task_free(t);
    r = wait_final(x, id, WAIT_S);
    assert_int_equal(taskq_result_state(r), TASKQ_SUCCESS);
    taskq_result_free(r);
    assert_true(tf_log_wait(w->log, from, "idle: heap trimmed", 5000));
    stop_worker(w);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_client_submit_one_success),
        T(test_client_submit_wait),
        T(test_client_submit_many_results),
        T(test_client_submit_many_partial_failure),
        T(test_client_state_pending_without_worker),
        T(test_client_state_started_while_running),
        T(test_client_state_retry_then_failure),
        T(test_client_failure_default_type),
        T(test_client_cancel_countdown_revoked),
        T(test_client_cancel_unknown_notfound),
        T(test_client_unknown_task_dead_lettered),
        T(test_client_dead_requeue_and_purge),
        T(test_client_dead_requeue_wait_blocks),
        T(test_client_countdown_not_before_time),
        T(test_client_eta_runs_at_time),
        T(test_client_wait_timeout_blocks_in_redis),
        T(test_client_wait_wakes_on_finish),
        T(test_client_expires_revoked),
        T(test_client_queue_cap_full),
        T(test_client_duplicate_id_exists),
        T(test_client_message_too_big),
        T(test_client_invalid_json_arg),
        T(test_client_unreachable_econn),
        T(test_client_password_not_in_errstr),
        T(test_client_reconnects_after_redis_restart),
        T(test_client_password_and_db),
        T(test_client_unix_socket),
        T(test_client_time_limits),
        T(test_client_wait_no_limit_and_two_waiters),
        T(test_client_progress_task_runs),
        T(test_client_result_ttl),
        T(test_client_task_dup_and_apply_json),
        T(test_client_two_workers_each_task_once),
        T(test_client_sigterm_waits_for_running),
        T(test_client_threads_pool_basic),
        T(test_client_threads_mutated_args_retried),
        T(test_client_prefork_mutated_args_retried),
        T(test_client_idle_worker_trims_heap),
        T(test_client_example_client_basic),
    };
#undef T
    return cmocka_run_group_tests(tests, tf_group_setup, tf_group_teardown);
}
