/* Fault tests of docs/RELIABILITY.md, part 1: what happens to tasks when a
 * worker or one of its executors misbehaves. Each test starts its own
 * redis-server and real taskq-worker processes (tests/harness.c) and checks
 * one guarantee from the outside, through libtaskq and plain Redis reads:
 *   - kill storm: SIGKILLed workers lose nothing; re-runs only for tasks the
 *     killed worker held;
 *   - a task that crashes its executor is retried, then dead-lettered as a
 *     poison pill naming the signal, and the worker lives on;
 *   - hard and soft time limits;
 *   - a worker paused (SIGSTOP) past its lease is fenced out.
 * Measured figures are printed on lines starting with "# faults:" so they can
 * be quoted in docs/RELIABILITY.md. Waits are deadline polls; the only fixed
 * pause is the pacing between two kills of the storm. */
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "taskq.h"

#define Q "default"
#define K(kind) "taskq:{" Q "}:" kind
#define READY_MS 10000

/* ---- plumbing shared by the tests ---------------------------------------- */

typedef struct fx {
    th_redis_server *srv;
    redisContext *rc; /* plain reads of the key schema */
    taskq_client *c;
} fx;

typedef struct worker {
    pid_t pid;
    char log[TH_PATH_MAX]; /* copied: the harness forgets it once reaped */
    char id[256];
} worker;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->srv = th_redis_start(NULL);
    assert_non_null(f->srv);
    f->rc = th_redis(f->srv);
    assert_non_null(f->rc);
    f->c = taskq_client_new(f->srv->url);
    assert_non_null(f->c);
    assert_int_equal(taskq_client_ping(f->c), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    taskq_client_free(f->c);
    redisFree(f->rc);
    th_redis_free(f->srv);
    th_cleanup(); /* workers still running, logs */
    free(f);
    return 0;
}

static long long rint_cmd(redisContext *rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(rc, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    if (r->type != REDIS_REPLY_INTEGER)
        fail_msg("'%s': reply type %d (%s)", fmt, r->type,
                 r->type == REDIS_REPLY_ERROR ? r->str : "");
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

typedef struct log_probe {
    const char *path;
    const char *needle;
    long from;
} log_probe;

static int log_has_cb(void *arg)
{
    log_probe *p = arg;
    size_t n = 0;
    char *s = th_read_file(p->path, &n);
    int ok = s && (size_t)p->from <= n && strstr(s + p->from, p->needle) != NULL;
    free(s);
    return ok;
}

static int log_wait(const char *path, long from, const char *needle, int ms)
{
    log_probe p = {path, needle, from};
    return th_wait_until(log_has_cb, &p, ms);
}

/* The worker id from the line "worker <id> ready: ...", or 0 if not yet. */
static int read_worker_id(worker *w)
{
    char *s = th_read_file(w->log, NULL);
    const char *p = s ? strstr(s, " ready: redis") : NULL;
    int ok = 0;
    if (p) {
        const char *b = p;
        while (b > s && b[-1] != ' ')
            b--;
        snprintf(w->id, sizeof(w->id), "%.*s", (int)(p - b), b);
        ok = 1;
    }
    free(s);
    return ok;
}

static int worker_ready_cb(void *arg)
{
    return read_worker_id(arg);
}

/* Start taskq-worker with `extra` options (NULL-terminated); wait_ready:
 * until it printed its id. */
static void worker_start(worker *w, const fx *f, const char *const *extra, int wait_ready)
{
    char *bin = th_bin("taskq-worker");
    const char *argv[40] = {bin, "--redis", f->srv->url};
    int n = 3;
    for (int i = 0; extra && extra[i] && n < 39; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    memset(w, 0, sizeof(*w));
    w->pid = th_spawn(argv, NULL);
    free(bin);
    assert_true(w->pid > 0);
    snprintf(w->log, sizeof(w->log), "%s", th_proc_log(w->pid));
    if (wait_ready && !th_wait_until(worker_ready_cb, w, READY_MS)) {
        th_dump_file("worker log", w->log);
        fail_msg("worker %d did not become ready", (int)w->pid);
    }
}

/* Does the owner hash hold a task for the worker with this pid? Owner
 * values are "<token> host:pid:nonce" (docs/PROTOCOL.md#key-schema). */
typedef struct own_probe {
    redisContext *rc;
    pid_t pid;
    int min;
} own_probe;

static int owned_by_pid(redisContext *rc, pid_t pid, char ***ids)
{
    char needle[32];
    int n = 0;
    snprintf(needle, sizeof(needle), ":%d:", (int)pid);
    redisReply *r = redisCommand(rc, "HGETALL %s", K("owner"));
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        if (!strstr(r->element[i + 1]->str, needle))
            continue;
        if (ids) {
            *ids = realloc(*ids, (size_t)(n + 1) * sizeof(**ids));
            assert_non_null(*ids);
            (*ids)[n] = strdup(r->element[i]->str);
        }
        n++;
    }
    freeReplyObject(r);
    return n;
}

static int owns_cb(void *arg)
{
    own_probe *p = arg;
    return owned_by_pid(p->rc, p->pid, NULL) >= p->min;
}

typedef struct run_probe {
    redisContext *rc;
    const char *wid;
    long long want;
} run_probe;

/* The worker's own heartbeat record says it runs `want` tasks: they reached
 * its executors (the owner hash alone only says Redis handed them out). */
static int running_cb(void *arg)
{
    run_probe *p = arg;
    redisReply *r = redisCommand(p->rc, "GET taskq:worker:%s", p->wid);
    assert_non_null(r);
    json_t *info = r->type == REDIS_REPLY_STRING ? json_loads(r->str, 0, NULL) : NULL;
    long long n = json_integer_value(json_object_get(info, "running"));
    json_decref(info);
    freeReplyObject(r);
    return n >= p->want;
}

static int wait_running(redisContext *rc, const char *wid, long long want, int ms)
{
    run_probe p = {rc, wid, want};
    return th_wait_until(running_cb, &p, ms);
}

/* Submit one task given as a JSON object (taskq_task_apply_json). */
static void submit_json(taskq_client *c, const char *json, char id[TASKQ_ID_SIZE])
{
    taskq_task *t = taskq_task_new(NULL);
    assert_non_null(t);
    if (taskq_task_apply_json(t, json) != 0)
        fail_msg("task %s: %s", json, taskq_task_errstr(t));
    int rc = taskq_submit(c, t, id);
    if (rc != 0)
        fail_msg("submit %s: %s", json, taskq_client_errstr(c));
    taskq_task_free(t);
}

/* Wait for a final state; fails the test on time-out. */
static taskq_result *wait_final(taskq_client *c, const char *id, double timeout)
{
    taskq_result *r = NULL;
    int rc = taskq_result_wait(c, Q, id, timeout, &r);
    if (rc != 0) {
        const char *st = r ? taskq_state_name(taskq_result_state(r)) : "?";
        taskq_result_free(r);
        fail_msg("task %s: no final state within %.1f s (%s; state %s)", id, timeout,
                 taskq_strerror(rc), st);
    }
    return r;
}

static json_t *record_of(const taskq_result *r)
{
    json_t *j = json_loads(taskq_result_json(r), 0, NULL);
    assert_non_null(j);
    return j;
}

static int alive(pid_t pid)
{
    return th_wait_exit(pid, 0, NULL) < 0;
}

/* ---- kill storm ---------------------------------------------------------- */

#define STORM_TASKS 5000
#define STORM_BATCH 200
#define STORM_WORKERS 3
#define STORM_CONC 2
#define STORM_MIN_KILLS 20
#define STORM_PACE_NS 100000000L
#define STORM_DEADLINE_S 90.0

static const char *const storm_opts[] = {
    "--pool",      "prefork", "--concurrency", "2",     "--lease", "1.5",
    "--heartbeat", "0.3",     "--log-level",   "debug", NULL};

static int storm_index(const char *id)
{
    int i;
    if (sscanf(id, "s%05d", &i) != 1 || i < 0 || i >= STORM_TASKS)
        return -1;
    return i;
}

/* Count, per task, the "task <id> (echo) succeeded" lines of one worker log:
 * one per execution that finished in an executor and reached the worker. */
static void count_executions(const char *path, int *execs, long *recovered)
{
    char *s = th_read_file(path, NULL);
    assert_non_null(s);
    for (char *p = s; (p = strstr(p, "task s")) != NULL; p++) {
        int i;
        char tail[32];
        if (sscanf(p, "task s%05d (echo) %10s", &i, tail) == 2 && strcmp(tail, "succeeded") == 0 &&
            i >= 0 && i < STORM_TASKS)
            execs[i]++;
    }
    for (char *p = s; (p = strstr(p, "recovered ")) != NULL; p++) {
        long n;
        if (sscanf(p, "recovered %ld task(s)", &n) == 1)
            *recovered += n;
    }
    free(s);
}

/* 3 workers, 5,000 tasks, at least 20 SIGKILLs of a worker that holds tasks
 * at that moment, each replaced at once. Every task must end SUCCESS, and a
 * task may have run twice only if a killed worker held it when it died. */
static void test_faults_kill_storm_loses_nothing(void **state)
{
    fx *f = *state;
    worker ws[STORM_WORKERS];
    worker *dead = calloc(STORM_TASKS / STORM_BATCH + STORM_MIN_KILLS, sizeof(*dead));
    char(*ids)[TASKQ_ID_SIZE] = calloc(STORM_TASKS, sizeof(*ids));
    int *held = calloc(STORM_TASKS, sizeof(int)), *execs = calloc(STORM_TASKS, sizeof(int));
    int ndead = 0, kills = 0, kills_busy = 0, held_total = 0, held_max = 0;
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    long long t0 = th_mono_ms();
    assert_non_null(dead);
    assert_non_null(ids);
    assert_non_null(held);
    assert_non_null(execs);
    srand(seed);

    for (int i = 0; i < STORM_WORKERS; i++)
        worker_start(&ws[i], f, storm_opts, 0);

    int submitted = 0;
    while (submitted < STORM_TASKS || kills < STORM_MIN_KILLS) {
        if (submitted < STORM_TASKS) {
            taskq_task *batch[STORM_BATCH];
            int codes[STORM_BATCH];
            for (int k = 0; k < STORM_BATCH; k++) {
                char js[128];
                int i = submitted + k;
                snprintf(js, sizeof(js), "{\"task\":\"echo\",\"id\":\"s%05d\",\"args\":[%d]}", i,
                         i);
                batch[k] = taskq_task_new(NULL);
                assert_non_null(batch[k]);
                assert_int_equal(taskq_task_apply_json(batch[k], js), 0);
            }
            int rc = taskq_submit_many(f->c, batch, STORM_BATCH, ids + submitted, codes);
            if (rc != 0)
                fail_msg("submit_many: %s", taskq_client_errstr(f->c));
            for (int k = 0; k < STORM_BATCH; k++)
                taskq_task_free(batch[k]);
            submitted += STORM_BATCH;
        } else if (rint_cmd(f->rc, "LLEN %s", K("pending")) == 0 &&
                   rint_cmd(f->rc, "HLEN %s", K("owner")) == 0) {
            break; /* nothing left to interrupt; reported below */
        }

        /* Kill a random worker, preferably while it holds tasks. */
        int v = rand() % STORM_WORKERS;
        own_probe op = {f->rc, ws[v].pid, 1};
        if (th_wait_until(owns_cb, &op, 3000))
            kills_busy++;
        assert_int_equal(th_signal(ws[v].pid, SIGKILL), 0);
        assert_int_equal(th_wait_exit(ws[v].pid, 10000, NULL), 0);
        kills++;
        /* Nobody else touches its tasks for a lease (1.5 s): the owner hash
         * now lists exactly what it held when it died. */
        char **mine = NULL;
        int n = owned_by_pid(f->rc, ws[v].pid, &mine);
        for (int k = 0; k < n; k++) {
            int i = storm_index(mine[k]);
            if (i >= 0 && !held[i]) {
                held[i] = 1;
                held_total++;
            }
            free(mine[k]);
        }
        free(mine);
        if (n > held_max)
            held_max = n;
        dead[ndead++] = ws[v];
        worker_start(&ws[v], f, storm_opts, 0);
        struct timespec pace = {0, STORM_PACE_NS};
        nanosleep(&pace, NULL);
    }
    long long t_kills = th_mono_ms() - t0;

    /* Every task completes. */
    int success = 0, retried = 0;
    for (int i = 0; i < STORM_TASKS; i++) {
        double left = STORM_DEADLINE_S - (double)(th_mono_ms() - t0) / 1000.0;
        taskq_result *r = wait_final(f->c, ids[i], left > 1 ? left : 1);
        if (taskq_result_state(r) == TASKQ_SUCCESS)
            success++;
        else
            fprintf(stderr, "# faults: task %s ended %s: %s: %s\n", ids[i],
                    taskq_state_name(taskq_result_state(r)),
                    taskq_result_error_type(r) ? taskq_result_error_type(r) : "",
                    taskq_result_error_message(r) ? taskq_result_error_message(r) : "");
        if (taskq_result_attempts(r) > 1)
            retried++;
        taskq_result_free(r);
    }
    long long t_all = th_mono_ms() - t0;

    /* Stop the survivors cleanly so their logs are complete, then count
     * executions in every log, the killed workers' included. */
    long recovered = 0;
    for (int i = 0; i < STORM_WORKERS; i++) {
        th_stop_proc(ws[i].pid, 10000);
        count_executions(ws[i].log, execs, &recovered);
    }
    for (int i = 0; i < ndead; i++)
        count_executions(dead[i].log, execs, &recovered);
    int dup = 0, dup_not_held = 0, never = 0;
    for (int i = 0; i < STORM_TASKS; i++) {
        if (execs[i] == 0)
            never++;
        if (execs[i] > 1) {
            dup++;
            if (!held[i]) {
                dup_not_held++;
                fprintf(stderr, "# faults: task s%05d ran %d times but no killed worker held it\n",
                        i, execs[i]);
            }
        }
    }
    printf("# faults: kill storm: %d tasks, %d workers x %d prefork, lease 1.5 s, heartbeat 0.3 s, "
           "seed %u\n",
           STORM_TASKS, STORM_WORKERS, STORM_CONC, seed);
    printf("# faults: kill storm: %d SIGKILLs (%d while the victim held tasks) in %.1f s; "
           "all tasks final after %.1f s\n",
           kills, kills_busy, (double)t_kills / 1000.0, (double)t_all / 1000.0);
    printf("# faults: kill storm: %d/%d SUCCESS, %d lost, %d with attempts > 1\n", success,
           STORM_TASKS, STORM_TASKS - success, retried);
    printf("# faults: kill storm: held by a killed worker at its death: %d tasks (max %d per kill; "
           "kills x concurrency = %d); recovered (lease expired): %ld\n",
           held_total, held_max, kills * STORM_CONC, recovered);
    printf("# faults: kill storm: ran twice or more: %d tasks (%d of them not held by a killed "
           "worker)\n",
           dup, dup_not_held);
    fflush(stdout);

    assert_true(kills >= STORM_MIN_KILLS);
    assert_int_equal(success, STORM_TASKS); /* nothing lost */
    assert_int_equal(retried, 0);           /* echo never fails: no retry */
    assert_int_equal(never, 0);             /* every SUCCESS came from a logged execution */
    assert_int_equal(dup_not_held, 0);      /* duplicates only for in-flight tasks */
    assert_true(dup <= held_total);
    /* No prefetch buffer: a worker holds its running tasks plus, at most,
     * as many finished ones whose acks are on the wire. */
    assert_true(held_max <= 2 * STORM_CONC);
    free(dead);
    free(ids);
    free(held);
    free(execs);
}

/* ---- crash: poison pill ---------------------------------------------------- */

static void test_faults_crash_dead_letters_poison_pill(void **state)
{
    fx *f = *state;
    worker w;
    const char *const opts[] = {"--concurrency", "1", "--max-crashes", "3", NULL};
    char id[TASKQ_ID_SIZE], id2[TASKQ_ID_SIZE];
    worker_start(&w, f, opts, 1);

    long long t0 = th_mono_ms();
    submit_json(f->c, "{\"task\":\"crash\"}", id);
    taskq_result *r = wait_final(f->c, id, 20);
    long long dt = th_mono_ms() - t0;
    json_t *rec = record_of(r);
    printf("# faults: crash: %s after %lld ms: %s: %s\n", taskq_state_name(taskq_result_state(r)),
           dt, taskq_result_error_type(r), taskq_result_error_message(r));
    assert_int_equal(taskq_result_state(r), TASKQ_FAILURE);
    assert_string_equal(taskq_result_error_type(r), "PoisonPill");
    assert_non_null(strstr(taskq_result_error_message(r), "SIGSEGV"));
    assert_true(json_is_true(json_object_get(rec, "dead")));
    json_t *errors = json_object_get(rec, "errors"), *e;
    size_t i;
    assert_int_equal(json_array_size(errors), 3);
    json_array_foreach(errors, i, e)
    {
        assert_string_equal(json_string_value(json_object_get(e, "type")), "WorkerLostError");
        assert_non_null(strstr(json_string_value(json_object_get(e, "message")), "SIGSEGV"));
    }
    json_decref(rec);
    taskq_result_free(r);

    /* In the dead-letter set, with its reason. */
    char *dl = NULL;
    assert_int_equal(taskq_dead_list(f->c, Q, 10, &dl), 0);
    json_t *arr = json_loads(dl, 0, NULL);
    assert_non_null(arr);
    int found = 0;
    json_array_foreach(arr, i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "id")), id) == 0) {
            found = 1;
            assert_non_null(strstr(json_string_value(json_object_get(e, "reason")), "SIGSEGV"));
        }
    }
    assert_true(found);
    json_decref(arr);
    free(dl);
    assert_int_equal(rint_cmd(f->rc, "HEXISTS %s %s", K("msg"), id), 0);

    /* The worker survived its executor's three deaths and still works. */
    assert_true(alive(w.pid));
    submit_json(f->c, "{\"task\":\"add\",\"args\":[2,3]}", id2);
    r = wait_final(f->c, id2, 10);
    assert_int_equal(taskq_result_state(r), TASKQ_SUCCESS);
    assert_string_equal(taskq_result_value(r), "5");
    taskq_result_free(r);
    assert_true(alive(w.pid));
}

/* ---- time limits ----------------------------------------------------------- */

static void test_faults_time_limits_hard_kills_soft_warns(void **state)
{
    fx *f = *state;
    worker w;
    /* One executor: the task after the hang can only run in a new child. */
    const char *const opts[] = {"--concurrency", "1", "--time-limit", "0.5", NULL};
    char id[TASKQ_ID_SIZE];
    worker_start(&w, f, opts, 1);

    long long t0 = th_mono_ms();
    submit_json(f->c, "{\"task\":\"hang\"}", id);
    taskq_result *r = wait_final(f->c, id, 10);
    long long hard_dt = th_mono_ms() - t0;
    assert_int_equal(taskq_result_state(r), TASKQ_FAILURE);
    assert_string_equal(taskq_result_error_type(r), "TimeLimitExceeded");
    taskq_result_free(r);

    submit_json(f->c, "{\"task\":\"add\",\"args\":[1,1]}", id);
    r = wait_final(f->c, id, 10);
    assert_int_equal(taskq_result_state(r), TASKQ_SUCCESS);
    taskq_result_free(r);

    /* Soft limit 0.3 s before a 5 s hard limit: the task sees it and stops. */
    t0 = th_mono_ms();
    submit_json(f->c, "{\"task\":\"sleep\",\"args\":[10],\"soft_limit\":0.3,\"hard_limit\":5}", id);
    r = wait_final(f->c, id, 10);
    long long soft_dt = th_mono_ms() - t0;
    json_t *rec = record_of(r);
    double runtime = json_number_value(json_object_get(rec, "runtime_ms"));
    printf("# faults: time limits: hang with hard limit 0.5 s -> TimeLimitExceeded after %lld ms "
           "(submit to result); sleep 10 with soft 0.3 s / hard 5 s -> %s after %lld ms "
           "(task runtime %.1f ms)\n",
           hard_dt, taskq_result_error_type(r), soft_dt, runtime);
    assert_int_equal(taskq_result_state(r), TASKQ_FAILURE);
    assert_string_equal(taskq_result_error_type(r), "SoftTimeLimitExceeded");
    assert_true(runtime >= 290.0);
    assert_true(hard_dt < 2500);
    assert_true(soft_dt < 2500);
    json_decref(rec);
    taskq_result_free(r);
    assert_true(alive(w.pid));
}

/* ---- SIGSTOP past the lease: fencing --------------------------------------- */

static void test_faults_stopped_worker_is_fenced(void **state)
{
    fx *f = *state;
    worker a, b;
    const char *const opts[] = {"--concurrency", "1", "--lease", "1", "--heartbeat", "0.2", NULL};
    char id[TASKQ_ID_SIZE];
    worker_start(&a, f, opts, 1);
    submit_json(f->c, "{\"task\":\"sleep\",\"args\":[2]}", id);
    own_probe op = {f->rc, a.pid, 1};
    assert_true(th_wait_until(owns_cb, &op, 5000));
    assert_true(wait_running(f->rc, a.id, 1, 5000)); /* in its executor, not just leased */

    /* A freezes holding the task; its executor child keeps running. */
    assert_int_equal(th_signal(a.pid, SIGSTOP), 0);
    long long t_stop = th_mono_ms();
    worker_start(&b, f, opts, 1);
    taskq_result *r = wait_final(f->c, id, 15);
    long long took_over = th_mono_ms() - t_stop;
    assert_int_equal(taskq_result_state(r), TASKQ_SUCCESS);
    assert_string_equal(taskq_result_worker(r), b.id);
    char *before = strdup(taskq_result_json(r));
    taskq_result_free(r);

    /* A wakes up, finds its result and tries to store it: fenced out. */
    long from = 0;
    assert_int_equal(th_signal(a.pid, SIGCONT), 0);
    if (!log_wait(a.log, from, "result not stored, this worker no longer holds the task", 10000)) {
        th_dump_file("worker A log", a.log);
        fail_msg("worker A did not report its fenced-out result");
    }
    int lease_lost_seen = log_wait(a.log, from, "lease lost while running", 0);
    r = NULL;
    assert_int_equal(taskq_result_get(f->c, Q, id, &r), 0);
    assert_string_equal(taskq_result_json(r), before); /* written once, by B */
    printf("# faults: SIGSTOP: worker A paused with lease 1 s; B finished the task %lld ms after "
           "the pause; A's late result rejected (fenced)%s; record still B's\n",
           took_over, lease_lost_seen ? ", A also saw its lease lost" : "");
    assert_true(alive(a.pid));
    free(before);
    taskq_result_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_faults_kill_storm_loses_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_faults_crash_dead_letters_poison_pill, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_faults_time_limits_hard_kills_soft_warns, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_faults_stopped_worker_is_fenced, setup, teardown),
    };
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (getenv("TASKQ_TEST_FILTER")) /* e.g. "*outage*": run only matching tests */
        cmocka_set_test_filter(getenv("TASKQ_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
