/* workload: submit a mixed batch of tasks, wait for every one, print a
 * summary, and exit 0 only if each task ended the way it should.
 *
 * It is the `submitter` service of the docker-compose demo (docs/DOCKER.md)
 * and a complete example of the client library: it uses nothing but taskq.h.
 *
 * Build (the Makefile does this as build/examples/workload):
 *   cc -std=c11 -D_GNU_SOURCE -Iclient -o workload docs/examples/workload.c \
 *      build/libtaskq.a $(pkg-config --libs hiredis jansson)
 * Run against workers that load build/libexample_tasks.so:
 *   taskq-worker --load build/libexample_tasks.so --retry-backoff 0.2 &
 *   workload --tasks 300
 *
 * The mix, as shares of --tasks N (tasks are shuffled before submission):
 *   quick    echo and add: milliseconds of work, result checked
 *   plugin   example.reverse and example.word_count from the example task
 *            library: shows that --load works, result checked for reverse
 *   slow     sleep 0.5-2 s (--slow-share, default 15 %)
 *   delayed  echo with a countdown of 1-5 s: must not start early
 *   failing  fail with 2 retries: three attempts, then FAILURE
 *   crash    one task that segfaults its executor every time: the worker
 *            dead-letters it as a poison pill, FAILURE (--no-crash: none)
 * Every task gets its expected final state (and, where cheap, its expected
 * result, error type and attempt count) when it is built, so the check at the
 * end is a comparison, not a guess.
 *
 * Options: --tasks N (default 300, or $TASKQ_WORKLOAD_TASKS), --slow-share P,
 * --no-crash, --queue Q, --redis URL (default $TASKQ_REDIS_URL), --timeout S
 * (for the whole wait, default 300), --seed N.
 *
 * Exit status: 0 every task as expected, 1 some task was not, 2 the time-out
 * passed first, 64 usage error, 69 Redis unreachable, 70 other errors. */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "taskq.h"

enum kind { K_QUICK, K_PLUGIN, K_SLOW, K_DELAYED, K_FAILING, K_CRASH, K_NKINDS };
static const char *const kind_names[K_NKINDS] = {"quick",   "plugin",  "slow",
                                                 "delayed", "failing", "crash"};

/* One submitted task: what it should become, then what it became. */
struct job {
    enum kind kind;
    char id[TASKQ_ID_SIZE];
    taskq_state want;
    char want_value[64];    /* result JSON text; "" when not checked */
    const char *want_error; /* error type; NULL when not checked */
    int want_attempts;      /* 0 when not checked */
    double countdown;       /* seconds; 0 when none */

    int done;      /* a final record was read */
    int ok;        /* ... and it matched */
    char why[160]; /* why not, for the report */
    taskq_state got;
    long long created_ms, started_ms, finished_ms;
    char worker[80];
};

struct opts {
    int tasks;
    int slow_share;
    int crash;
    const char *queue;
    const char *redis;
    double timeout;
    unsigned long seed;
};

/* A small deterministic PRNG (xorshift64*), so a --seed replays a mix. */
static uint64_t rng_state;

static unsigned rnd(unsigned n)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (unsigned)((rng_state * 2685821657736338717ULL) >> 33) % n;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void nap(double seconds)
{
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&ts, NULL);
}

/* ---- building the mix ------------------------------------------------- */

/* Fill in job j (its kind already set) and the taskq_task that runs it.
 * Returns the new task, or NULL (with a message) on a library error. */
static taskq_task *make_task(struct job *j, int n, const char *queue)
{
    char arg[64];
    taskq_task *t = taskq_task_new(NULL);
    int rc = 0;

    if (!t) {
        fprintf(stderr, "workload: out of memory\n");
        return NULL;
    }
    rc = taskq_task_set_queue(t, queue);
    j->want = TASKQ_SUCCESS;
    switch (j->kind) {
    case K_QUICK:
        if (n % 2) {
            int a = (int)rnd(1000), b = (int)rnd(1000);
            snprintf(arg, sizeof(arg), "%d", a);
            rc = rc ? rc : taskq_task_set_name(t, "add");
            rc = rc ? rc : taskq_task_arg_json(t, arg);
            snprintf(arg, sizeof(arg), "%d", b);
            rc = rc ? rc : taskq_task_arg_json(t, arg);
            snprintf(j->want_value, sizeof(j->want_value), "%d", a + b);
        } else {
            snprintf(arg, sizeof(arg), "\"message %d\"", n);
            rc = rc ? rc : taskq_task_set_name(t, "echo");
            rc = rc ? rc : taskq_task_arg_json(t, arg);
            snprintf(j->want_value, sizeof(j->want_value), "%s", arg);
        }
        break;
    case K_PLUGIN:
        if (n % 2) {
            snprintf(arg, sizeof(arg), "\"taskq %d\"", n);
            rc = rc ? rc : taskq_task_set_name(t, "example.reverse");
            rc = rc ? rc : taskq_task_arg_json(t, arg);
            /* "taskq 42" reversed is "24 qksat" */
            char digits[16], rev[16];
            int len = snprintf(digits, sizeof(digits), "%d", n);
            for (int k = 0; k < len; k++)
                rev[k] = digits[len - 1 - k];
            rev[len] = '\0';
            snprintf(j->want_value, sizeof(j->want_value), "\"%s qksat\"", rev);
        } else {
            rc = rc ? rc : taskq_task_set_name(t, "example.word_count");
            rc = rc ? rc : taskq_task_arg_json(t, "\"the quick brown fox\"");
        }
        break;
    case K_SLOW:
        /* 0.5 to 2.0 s in steps of 0.1 s */
        snprintf(arg, sizeof(arg), "%.1f", 0.5 + (double)rnd(16) / 10.0);
        rc = rc ? rc : taskq_task_set_name(t, "sleep");
        rc = rc ? rc : taskq_task_arg_json(t, arg);
        break;
    case K_DELAYED:
        j->countdown = 1.0 + (double)rnd(5);
        snprintf(arg, sizeof(arg), "\"delayed %d\"", n);
        rc = rc ? rc : taskq_task_set_name(t, "echo");
        rc = rc ? rc : taskq_task_arg_json(t, arg);
        rc = rc ? rc : taskq_task_set_countdown(t, j->countdown);
        snprintf(j->want_value, sizeof(j->want_value), "%s", arg);
        break;
    case K_FAILING:
        snprintf(arg, sizeof(arg), "\"planned failure %d\"", n);
        rc = rc ? rc : taskq_task_set_name(t, "fail");
        rc = rc ? rc : taskq_task_arg_json(t, arg);
        rc = rc ? rc : taskq_task_set_retries(t, 2);
        j->want = TASKQ_FAILURE;
        j->want_error = "TaskError";
        j->want_attempts = 3;
        break;
    case K_CRASH:
        rc = rc ? rc : taskq_task_set_name(t, "crash");
        j->want = TASKQ_FAILURE;
        j->want_error = "PoisonPill";
        break;
    case K_NKINDS: break;
    }
    if (rc < 0) {
        fprintf(stderr, "workload: cannot build a %s task: %s\n", kind_names[j->kind],
                taskq_task_errstr(t));
        taskq_task_free(t);
        return NULL;
    }
    return t;
}

/* The kinds of all N jobs, in a shuffled order. */
static void plan(struct job *jobs, const struct opts *o)
{
    int n = o->tasks, k = 0;
    int crash = o->crash ? 1 : 0;
    int failing = n / 20 ? n / 20 : 1;
    int delayed = n / 10;
    int plugin = n / 10;
    int slow = n * o->slow_share / 100;

    for (int i = 0; i < crash && k < n; i++)
        jobs[k++].kind = K_CRASH;
    for (int i = 0; i < failing && k < n; i++)
        jobs[k++].kind = K_FAILING;
    for (int i = 0; i < delayed && k < n; i++)
        jobs[k++].kind = K_DELAYED;
    for (int i = 0; i < plugin && k < n; i++)
        jobs[k++].kind = K_PLUGIN;
    for (int i = 0; i < slow && k < n; i++)
        jobs[k++].kind = K_SLOW;
    while (k < n)
        jobs[k++].kind = K_QUICK;
    for (int i = n - 1; i > 0; i--) { /* Fisher-Yates */
        int r = (int)rnd((unsigned)i + 1);
        enum kind tmp = jobs[i].kind;
        jobs[i].kind = jobs[r].kind;
        jobs[r].kind = tmp;
    }
}

/* Submit every job, pipelined in batches. Returns 0 or a TASKQ_E* code. */
static int submit_all(taskq_client *c, struct job *jobs, const struct opts *o)
{
    enum { BATCH = 100 };
    taskq_task *batch[BATCH];
    char ids[BATCH][TASKQ_ID_SIZE];
    int codes[BATCH];

    for (int start = 0; start < o->tasks; start += BATCH) {
        int n = o->tasks - start < BATCH ? o->tasks - start : BATCH;
        int rc = 0;
        for (int i = 0; i < n; i++) {
            batch[i] = make_task(&jobs[start + i], start + i, o->queue);
            if (!batch[i]) {
                for (int k = 0; k < i; k++)
                    taskq_task_free(batch[k]);
                return TASKQ_EINVAL;
            }
        }
        rc = taskq_submit_many(c, batch, (size_t)n, ids, codes);
        for (int i = 0; i < n; i++) {
            taskq_task_free(batch[i]);
            memcpy(jobs[start + i].id, ids[i], TASKQ_ID_SIZE);
        }
        if (rc < 0) {
            fprintf(stderr, "workload: submitting failed: %s\n", taskq_client_errstr(c));
            return rc;
        }
    }
    return 0;
}

/* ---- reading results -------------------------------------------------- */

/* The integer value of the top-level member `key` of the JSON object `json`,
 * or -1. taskq.h hands the result record over as JSON text; a real program
 * would give it to a JSON parser. This one needs three integers and finds
 * them with a small scanner that skips strings and nested values, so a key
 * inside "errors" or "result" cannot match. */
static long long record_int(const char *json, const char *key)
{
    size_t klen = strlen(key);
    int depth = 0;

    for (const char *p = json; *p; p++) {
        if (*p == '"') {
            const char *s = ++p;
            while (*p && *p != '"') {
                if (*p == '\\' && p[1])
                    p++;
                p++;
            }
            if (!*p)
                return -1;
            const char *q = p + 1;
            while (*q == ' ')
                q++;
            if (depth == 1 && *q == ':' && (size_t)(p - s) == klen && memcmp(s, key, klen) == 0)
                return strtoll(q + 1, NULL, 10);
        } else if (*p == '{' || *p == '[') {
            depth++;
        } else if (*p == '}' || *p == ']') {
            depth--;
        }
    }
    return -1;
}

/* Compare a final record with what job j expected. */
static void check(struct job *j, const taskq_result *r)
{
    const char *json = taskq_result_json(r);
    const char *value = taskq_result_value(r);
    const char *etype = taskq_result_error_type(r);
    const char *worker = taskq_result_worker(r);

    j->done = 1;
    j->got = taskq_result_state(r);
    j->created_ms = record_int(json, "created_ms");
    j->started_ms = record_int(json, "started_ms");
    j->finished_ms = record_int(json, "finished_ms");
    snprintf(j->worker, sizeof(j->worker), "%s", worker ? worker : "(none)");

    j->ok = 0;
    if (j->got != j->want)
        snprintf(j->why, sizeof(j->why), "%s, expected %s (%s: %s)", taskq_state_name(j->got),
                 taskq_state_name(j->want), etype ? etype : "-",
                 taskq_result_error_message(r) ? taskq_result_error_message(r) : "-");
    else if (j->want_value[0] && (!value || strcmp(value, j->want_value) != 0))
        snprintf(j->why, sizeof(j->why), "result %s, expected %s", value ? value : "(none)",
                 j->want_value);
    else if (j->want_error && (!etype || strcmp(etype, j->want_error) != 0))
        snprintf(j->why, sizeof(j->why), "error %s, expected %s", etype ? etype : "(none)",
                 j->want_error);
    else if (j->want_attempts && taskq_result_attempts(r) != j->want_attempts)
        snprintf(j->why, sizeof(j->why), "%d attempts, expected %d", taskq_result_attempts(r),
                 j->want_attempts);
    /* The countdown runs on Redis's clock, created_ms on ours: allow a
     * little skew, but a task that ran clearly early is a bug. */
    else if (j->countdown > 0 && j->started_ms >= 0 && j->created_ms >= 0 &&
             j->started_ms - j->created_ms < (long long)(j->countdown * 1000.0) - 250)
        snprintf(j->why, sizeof(j->why), "started %lld ms after submission, countdown %.0f s",
                 j->started_ms - j->created_ms, j->countdown);
    else
        j->ok = 1;
}

/* Wait for every job in turn; the slowest one bounds the total. Returns 0,
 * or TASKQ_ETIMEDOUT / another code when the wait had to stop. */
static int wait_all(taskq_client *c, struct job *jobs, const struct opts *o)
{
    double deadline = now_s() + o->timeout;
    int next_report = o->tasks / 10 ? o->tasks / 10 : 1;

    for (int i = 0; i < o->tasks; i++) {
        taskq_result *r = NULL;
        int rc, conn_errors = 0;
        for (;;) {
            double left = deadline - now_s();
            rc = taskq_result_wait(c, o->queue, jobs[i].id, left > 0 ? left : 0, &r);
            /* Losing Redis for a moment is not the end: the client
             * reconnects on the next call. */
            if (rc != TASKQ_ECONN || ++conn_errors > 30)
                break;
            fprintf(stderr, "workload: %s; retrying\n", taskq_client_errstr(c));
            nap(1.0);
        }
        if (rc == 0)
            check(&jobs[i], r);
        taskq_result_free(r);
        if (rc == TASKQ_ETIMEDOUT) {
            printf("time-out: %d of %d tasks finished within %.0f s\n", i, o->tasks, o->timeout);
            return rc;
        }
        if (rc < 0) {
            fprintf(stderr, "workload: waiting for %s: %s\n", jobs[i].id, taskq_client_errstr(c));
            return rc;
        }
        if ((i + 1) % next_report == 0 || i + 1 == o->tasks)
            printf("  %d/%d finished\n", i + 1, o->tasks);
    }
    return 0;
}

/* ---- the summary ------------------------------------------------------ */

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of n sorted values. */
static long long pct(const long long *v, int n, int p)
{
    int rank = (p * n + 99) / 100;
    return v[rank > 0 ? rank - 1 : 0];
}

/* One latency row: created -> finished of the done jobs of `kind` (or all
 * kinds with kind == K_NKINDS). */
static void latency_row(const struct job *jobs, int n, enum kind kind, long long *buf)
{
    int m = 0;
    for (int i = 0; i < n; i++)
        if (jobs[i].done && (kind == K_NKINDS || jobs[i].kind == kind) && jobs[i].created_ms >= 0 &&
            jobs[i].finished_ms >= 0)
            buf[m++] = jobs[i].finished_ms - jobs[i].created_ms;
    if (m == 0)
        return;
    qsort(buf, (size_t)m, sizeof(*buf), cmp_ll);
    printf("  %-9s %6d %7lld %7lld %7lld %7lld\n", kind == K_NKINDS ? "all" : kind_names[kind], m,
           pct(buf, m, 50), pct(buf, m, 90), pct(buf, m, 99), buf[m - 1]);
}

/* Print the tables; returns the number of workers seen. */
static int summary(const struct job *jobs, const struct opts *o, double seconds)
{
    enum { MAX_WORKERS = 64 };
    struct {
        const char *id;
        int tasks, success, failure;
    } workers[MAX_WORKERS];
    int nworkers = 0, n = o->tasks;
    long long *buf = malloc((size_t)n * sizeof(*buf));

    if (!buf) {
        fprintf(stderr, "workload: out of memory\n");
        exit(70);
    }
    printf("\n%d tasks on queue \"%s\" in %.1f s\n", n, o->queue, seconds);

    printf("\nby final state     tasks  expected  as expected\n");
    for (int s = TASKQ_PENDING; s <= TASKQ_REVOKED; s++) {
        int got = 0, want = 0, ok = 0;
        for (int i = 0; i < n; i++) {
            got += jobs[i].done && (int)jobs[i].got == s;
            want += (int)jobs[i].want == s;
            ok += jobs[i].ok && (int)jobs[i].got == s;
        }
        if (got || want)
            printf("  %-15s %6d %9d %12d\n", taskq_state_name((taskq_state)s), got, want, ok);
    }
    int unfinished = 0;
    for (int i = 0; i < n; i++)
        unfinished += !jobs[i].done;
    if (unfinished)
        printf("  %-15s %6d\n", "(not finished)", unfinished);

    for (int i = 0; i < n; i++) {
        if (!jobs[i].done)
            continue;
        int w = 0;
        while (w < nworkers && strcmp(workers[w].id, jobs[i].worker) != 0)
            w++;
        if (w == nworkers) {
            if (nworkers == MAX_WORKERS)
                continue;
            workers[w].id = jobs[i].worker;
            workers[w].tasks = workers[w].success = workers[w].failure = 0;
            nworkers++;
        }
        workers[w].tasks++;
        workers[w].success += jobs[i].got == TASKQ_SUCCESS;
        workers[w].failure += jobs[i].got == TASKQ_FAILURE;
    }
    printf("\nby worker (%d)                     tasks  success  failure\n", nworkers);
    for (int w = 0; w < nworkers; w++)
        printf("  %-30s %7d %8d %8d\n", workers[w].id, workers[w].tasks, workers[w].success,
               workers[w].failure);

    printf("\nlatency, submitted -> finished, ms (delayed includes its countdown)\n");
    printf("  %-9s %6s %7s %7s %7s %7s\n", "kind", "tasks", "p50", "p90", "p99", "max");
    for (int k = 0; k < K_NKINDS; k++)
        latency_row(jobs, n, (enum kind)k, buf);
    latency_row(jobs, n, K_NKINDS, buf);
    free(buf);
    return nworkers;
}

/* ---- main ------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "Usage: workload [--tasks N] [--slow-share PERCENT] [--no-crash] [--queue Q]\n"
               "                [--redis URL] [--timeout S] [--seed N]\n"
               "Submit a mixed taskq workload, wait for it and check every outcome.\n"
               "Needs workers that load libexample_tasks.so (for example.*) and use a\n"
               "short --retry-backoff. Exit 0 only if every task ended as expected.\n");
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {
        {"tasks", required_argument, NULL, 'n'},
        {"slow-share", required_argument, NULL, 's'},
        {"no-crash", no_argument, NULL, 'C'},
        {"queue", required_argument, NULL, 'q'},
        {"redis", required_argument, NULL, 'r'},
        {"timeout", required_argument, NULL, 't'},
        {"seed", required_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *env = getenv("TASKQ_WORKLOAD_TASKS");
    char *end;
    int ch;

    o->tasks = 300;
    if (env && *env) {
        o->tasks = (int)strtol(env, &end, 10);
        if (*end)
            o->tasks = -1; /* refused below, like a bad --tasks */
    }
    o->slow_share = 15;
    o->crash = 1;
    o->queue = "default";
    o->redis = NULL; /* taskq_client_new: $TASKQ_REDIS_URL or localhost */
    o->timeout = 300;
    o->seed = 1;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'n':
            o->tasks = (int)strtol(optarg, &end, 10);
            if (*end)
                o->tasks = -1;
            break;
        case 's':
            o->slow_share = (int)strtol(optarg, &end, 10);
            if (*end)
                o->slow_share = -1;
            break;
        case 'C': o->crash = 0; break;
        case 'q': o->queue = optarg; break;
        case 'r': o->redis = optarg; break;
        case 't':
            o->timeout = strtod(optarg, &end);
            if (*end)
                o->timeout = -1;
            break;
        case 'S': o->seed = strtoul(optarg, NULL, 10); break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
    }
    if (optind < argc || o->tasks < 1 || o->tasks > 100000 || o->slow_share < 0 ||
        o->slow_share > 70 || !(o->timeout > 0)) {
        fprintf(stderr, "workload: --tasks must be 1..100000, --slow-share 0..70, "
                        "--timeout positive\n");
        usage(stderr);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o;
    struct job *jobs = NULL;
    taskq_client *c = NULL;
    int status = 70;

    setvbuf(stdout, NULL, _IOLBF, 0); /* progress lines show up in `docker logs` at once */
    if (parse_opts(argc, argv, &o) < 0)
        return 64;
    rng_state = 0x9E3779B97F4A7C15ULL ^ o.seed;

    c = taskq_client_new(o.redis);
    jobs = calloc((size_t)o.tasks, sizeof(*jobs));
    if (!c || !jobs) {
        fprintf(stderr, "workload: out of memory\n");
        goto out;
    }
    /* Redis may still be starting (a container next to ours): give it 30 s. */
    for (int tries = 0; taskq_client_ping(c) < 0; tries++) {
        if (tries == 30) {
            fprintf(stderr, "workload: %s\n", taskq_client_errstr(c));
            status = 69;
            goto out;
        }
        if (tries == 0)
            printf("waiting for Redis: %s\n", taskq_client_errstr(c));
        nap(1.0);
    }

    plan(jobs, &o);
    int count[K_NKINDS] = {0};
    for (int i = 0; i < o.tasks; i++)
        count[jobs[i].kind]++;
    printf("submitting %d tasks:", o.tasks);
    for (int k = 0; k < K_NKINDS; k++)
        printf(" %d %s%s", count[k], kind_names[k], k + 1 < K_NKINDS ? "," : "\n");

    double t0 = now_s();
    int rc = submit_all(c, jobs, &o);
    if (rc < 0) {
        status = rc == TASKQ_ECONN ? 69 : 70;
        goto out;
    }
    printf("submitted %d tasks in %.2f s; waiting for them\n", o.tasks, now_s() - t0);

    rc = wait_all(c, jobs, &o);
    int nworkers = summary(jobs, &o, now_s() - t0);
    if (rc < 0 && rc != TASKQ_ETIMEDOUT) {
        status = rc == TASKQ_ECONN ? 69 : 70;
        goto out;
    }

    int bad = 0;
    for (int i = 0; i < o.tasks; i++) {
        if (!jobs[i].done || jobs[i].ok)
            continue;
        if (bad++ < 10)
            printf("UNEXPECTED %s %s: %s\n", kind_names[jobs[i].kind], jobs[i].id, jobs[i].why);
    }
    if (rc == TASKQ_ETIMEDOUT) {
        printf("\nFAILED: time-out after %.0f s\n", o.timeout);
        status = 2;
    } else if (bad) {
        printf("\nFAILED: %d of %d tasks did not end as expected\n", bad, o.tasks);
        status = 1;
    } else {
        printf("\nOK: all %d tasks ended as expected; workers: %d\n", o.tasks, nworkers);
        status = 0;
    }
out:
    free(jobs);
    taskq_client_free(c);
    return status;
}
