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

#include "taskq.h"
#include "taskq_fx.h"

#define Q "default"
#define K(kind) "taskq:{" Q "}:" kind

/* ---- plumbing shared by the tests (more in tests/taskq_fx.h) --------------- */

typedef tf_redis fx; /* srv, rc (plain reads of the key schema), c */

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(tf_redis_open(f, NULL, 1), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    tf_redis_close(f);
    th_cleanup(); /* workers still running, logs */
    free(f);
    return 0;
}

/* The tasks held for the worker with this pid: its leases are
 * "<token> host:pid:nonce", and held maps each task to its token
 * (docs/PROTOCOL.md#key-schema). Read in one script: a snapshot. */
typedef struct own_probe {
    redisContext *rc;
    pid_t pid;
    int min;
} own_probe;

static const char held_by_worker_lua[] =
    "local out = {}\n"
    "for _, l in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do\n"
    "  if string.find(l, ARGV[1], 1, true) then\n"
    "    local t = string.match(l, '^%d+')\n"
    "    for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], t, t)) do\n"
    "      out[#out + 1] = id\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return out\n";

static int owned_by_pid(redisContext *rc, pid_t pid, char ***ids)
{
    char needle[32];
    int n = 0;
    snprintf(needle, sizeof(needle), ":%d:", (int)pid);
    redisReply *r =
        redisCommand(rc, "EVAL %s 2 %s %s %s", held_by_worker_lua, K("leases"), K("held"), needle);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    for (size_t i = 0; i < r->elements; i++) {
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
 * task may have run twice only if a killed worker held it when it died.
 * `opts`: the workers' options; a worker may hold at most `held_limit`
 * tasks when it dies. */
static void kill_storm(fx *f, const char *const *opts, const char *label, int held_limit)
{
    tf_worker ws[STORM_WORKERS];
    tf_worker *dead = calloc(STORM_TASKS / STORM_BATCH + STORM_MIN_KILLS, sizeof(*dead));
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
        tf_worker_start(&ws[i], f->srv->url, opts, NULL, 0);

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
        } else if (tf_rint(f->rc, "LLEN %s", K("pending")) == 0 &&
                   tf_rint(f->rc, "ZCARD %s", K("held")) == 0) {
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
        /* Nobody else touches its tasks for a lease (1.5 s): held and its
         * leases now list exactly what it held when it died. */
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
        tf_worker_start(&ws[v], f->srv->url, opts, NULL, 0);
        struct timespec pace = {0, STORM_PACE_NS};
        nanosleep(&pace, NULL);
    }
    long long t_kills = th_mono_ms() - t0;

    /* Every task completes. */
    int success = 0, retried = 0;
    for (int i = 0; i < STORM_TASKS; i++) {
        double left = STORM_DEADLINE_S - (double)(th_mono_ms() - t0) / 1000.0;
        taskq_result *r = tf_wait_final(f->c, Q, ids[i], left > 1 ? left : 1, NULL);
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
    printf("# faults: kill storm (%s): %d tasks, %d workers x %d prefork, lease 1.5 s, heartbeat "
           "0.3 s, seed %u\n",
           label, STORM_TASKS, STORM_WORKERS, STORM_CONC, seed);
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
    assert_true(held_max <= held_limit);
    free(dead);
    free(ids);
    free(held);
    free(execs);
}

static void test_faults_kill_storm_loses_nothing(void **state)
{
    /* A worker holds its running tasks, its prefetched ones (--prefetch
     * defaults to the concurrency) and, at most, as many finished ones
     * whose acks are on the wire. */
    kill_storm(*state, storm_opts, "default prefetch", 3 * STORM_CONC);
}

/* The same with --prefetch auto: deep prefetch windows, and short tasks
 * waiting in the children's sockets (the pool's backlog) when the worker
 * dies. They are leased like the rest: recovered, never lost. */
static void test_faults_kill_storm_prefetch_auto_loses_nothing(void **state)
{
    static const char *const opts[] = {
        "--pool", "prefork",     "--concurrency", "2",          "--lease", "1.5", "--heartbeat",
        "0.3",    "--log-level", "debug",         "--prefetch", "auto",    NULL};
    /* Running + a window of up to 1,000 + acks on the wire. */
    kill_storm(*state, opts, "prefetch auto", 2 * (STORM_CONC + 1000));
}

/* ---- crash: poison pill ---------------------------------------------------- */

static void test_faults_crash_dead_letters_poison_pill(void **state)
{
    fx *f = *state;
    tf_worker w;
    const char *const opts[] = {"--concurrency", "1", "--max-crashes", "3", NULL};
    char id[TASKQ_ID_SIZE], id2[TASKQ_ID_SIZE];
    tf_worker_start(&w, f->srv->url, opts, NULL, 1);

    long long t0 = th_mono_ms();
    tf_submit_json(f->c, "{\"task\":\"crash\"}", id);
    taskq_result *r = tf_wait_final(f->c, Q, id, 20, NULL);
    long long dt = th_mono_ms() - t0;
    json_t *rec = tf_record(r);
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
    assert_int_equal(tf_rint(f->rc, "HEXISTS %s %s", K("msg"), id), 0);

    /* The worker survived its executor's three deaths and still works. */
    assert_true(tf_alive(w.pid));
    tf_submit_json(f->c, "{\"task\":\"add\",\"args\":[2,3]}", id2);
    r = tf_wait_final(f->c, Q, id2, 10, NULL);
    assert_int_equal(taskq_result_state(r), TASKQ_SUCCESS);
    assert_string_equal(taskq_result_value(r), "5");
    taskq_result_free(r);
    assert_true(tf_alive(w.pid));
}

/* ---- time limits ----------------------------------------------------------- */

static void test_faults_time_limits_hard_kills_soft_warns(void **state)
{
    fx *f = *state;
    tf_worker w;
    /* One executor: the task after the hang can only run in a new child. */
    const char *const opts[] = {"--concurrency", "1", "--time-limit", "0.5", NULL};
    char id[TASKQ_ID_SIZE];
    tf_worker_start(&w, f->srv->url, opts, NULL, 1);

    long long t0 = th_mono_ms();
    tf_submit_json(f->c, "{\"task\":\"hang\"}", id);
    taskq_result *r = tf_wait_final(f->c, Q, id, 10, NULL);
    long long hard_dt = th_mono_ms() - t0;
    assert_int_equal(taskq_result_state(r), TASKQ_FAILURE);
    assert_string_equal(taskq_result_error_type(r), "TimeLimitExceeded");
    taskq_result_free(r);

    tf_submit_json(f->c, "{\"task\":\"add\",\"args\":[1,1]}", id);
    r = tf_wait_final(f->c, Q, id, 10, NULL);
    assert_int_equal(taskq_result_state(r), TASKQ_SUCCESS);
    taskq_result_free(r);

    /* Soft limit 0.3 s before a 5 s hard limit: the task sees it and stops. */
    t0 = th_mono_ms();
    tf_submit_json(f->c, "{\"task\":\"sleep\",\"args\":[10],\"soft_limit\":0.3,\"hard_limit\":5}",
                   id);
    r = tf_wait_final(f->c, Q, id, 10, NULL);
    long long soft_dt = th_mono_ms() - t0;
    json_t *rec = tf_record(r);
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
    assert_true(tf_alive(w.pid));
}

/* ---- SIGSTOP past the lease: fencing --------------------------------------- */

static void test_faults_stopped_worker_is_fenced(void **state)
{
    fx *f = *state;
    tf_worker a, b;
    const char *const opts[] = {"--concurrency", "1", "--lease", "1", "--heartbeat", "0.2", NULL};
    char id[TASKQ_ID_SIZE];
    tf_worker_start(&a, f->srv->url, opts, NULL, 1);
    tf_submit_json(f->c, "{\"task\":\"sleep\",\"args\":[2]}", id);
    own_probe op = {f->rc, a.pid, 1};
    assert_true(th_wait_until(owns_cb, &op, 5000));
    assert_true(
        tf_wait_running(f->rc, "taskq:", a.id, 1, 5000)); /* in its executor, not just leased */

    /* A freezes holding the task; its executor child keeps running. */
    assert_int_equal(th_signal(a.pid, SIGSTOP), 0);
    long long t_stop = th_mono_ms();
    tf_worker_start(&b, f->srv->url, opts, NULL, 1);
    taskq_result *r = tf_wait_final(f->c, Q, id, 15, NULL);
    long long took_over = th_mono_ms() - t_stop;
    assert_int_equal(taskq_result_state(r), TASKQ_SUCCESS);
    assert_string_equal(taskq_result_worker(r), b.id);
    char *before = strdup(taskq_result_json(r));
    taskq_result_free(r);

    /* A wakes up, finds its result and tries to store it: fenced out. */
    long from = 0;
    assert_int_equal(th_signal(a.pid, SIGCONT), 0);
    if (!tf_log_wait(a.log, from, "result not stored, this worker no longer holds the task",
                     10000)) {
        th_dump_file("worker A log", a.log);
        fail_msg("worker A did not report its fenced-out result");
    }
    int lease_lost_seen = tf_log_wait(a.log, from, "lease lost while running", 0);
    r = NULL;
    assert_int_equal(taskq_result_get(f->c, Q, id, &r), 0);
    assert_string_equal(taskq_result_json(r), before); /* written once, by B */
    printf("# faults: SIGSTOP: worker A paused with lease 1 s; B finished the task %lld ms after "
           "the pause; A's late result rejected (fenced)%s; record still B's\n",
           took_over, lease_lost_seen ? ", A also saw its lease lost" : "");
    assert_true(tf_alive(a.pid));
    free(before);
    taskq_result_free(r);
}

/* ---- SIGKILL while running: the lost count ------------------------------- */

/* A task whose worker is lost comes back with the count of such losses
 * (fetch sends it only while the lost hash exists): with --max-lost 1 the
 * next worker dead-letters it as a poison pill instead of running it, and
 * with the default it runs it and says so in the record. */
static void test_faults_lost_worker_counted(void **state)
{
    fx *f = *state;
    const char *const short_lease[] = {"--concurrency", "1",   "--lease", "1",
                                       "--heartbeat",   "0.2", NULL};
    const char *const strict[] = {"--concurrency", "1",          "--lease", "1", "--heartbeat",
                                  "0.2",           "--max-lost", "1",       NULL};
    for (int round = 0; round < 2; round++) {
        tf_worker a, b;
        char id[TASKQ_ID_SIZE];
        tf_worker_start(&a, f->srv->url, short_lease, NULL, 1);
        tf_submit_json(f->c, "{\"task\":\"sleep\",\"args\":[0.5]}", id);
        assert_true(tf_wait_running(f->rc, "taskq:", a.id, 1, 5000));
        assert_int_equal(th_signal(a.pid, SIGKILL), 0);
        assert_int_equal(th_wait_exit(a.pid, 10000, NULL), 0);
        tf_worker_start(&b, f->srv->url, round == 0 ? strict : short_lease, NULL, 1);
        taskq_result *r = tf_wait_final(f->c, Q, id, 15, NULL);
        json_t *rec = tf_record(r);
        if (round == 0) {
            assert_int_equal(taskq_result_state(r), TASKQ_FAILURE);
            assert_string_equal(taskq_result_error_type(r), "PoisonPill");
            assert_non_null(strstr(taskq_result_error_message(r), "was lost 1 times"));
        } else {
            assert_int_equal(taskq_result_state(r), TASKQ_SUCCESS);
            assert_int_equal(json_integer_value(json_object_get(rec, "recovered")), 1);
        }
        printf("# faults: worker SIGKILLed while running a task; the next one (%s): %s %s\n",
               round == 0 ? "--max-lost 1" : "default --max-lost 5",
               taskq_state_name(taskq_result_state(r)),
               round == 0 ? taskq_result_error_message(r) : "recovered: 1");
        json_decref(rec);
        taskq_result_free(r);
        int st = tf_worker_stop(&b, 10000);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_faults_kill_storm_loses_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_faults_kill_storm_prefetch_auto_loses_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_faults_lost_worker_counted, setup, teardown),
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
