/* taskq_bench: the measuring half of `make bench` (bench/run.sh is the other
 * half: it owns redis-server and the workers, this program owns the clock).
 *
 * Each subcommand runs one scenario against the Redis given by --port, stays
 * within --timeout seconds, and prints exactly one line of `key=value` figures
 * on stdout that bench/run.sh collects; progress and diagnostics go to
 * stderr. A scenario that runs out of time prints `status=timeout` instead of
 * figures it could not measure; `status=ok` otherwise.
 *
 * Scenarios that need a worker (drain, redis-cost) queue their tasks first,
 * then create the --ready-file so the script starts the worker(s), and start
 * their clock only when the first task's result appears: neither the
 * pre-queue time nor the worker's start-up is measured. Results are awaited
 * with taskq_result_wait (blocking in Redis, no polling); only the final
 * "is everything settled" checks poll, with 1 ms sleeps, on O(1) commands.
 *
 * It uses libtaskq's public API for everything a user would do, and hiredis
 * directly only for what a user would not: INFO readings and counting keys of
 * the schema in docs/PROTOCOL.md. */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "taskq.h"

#define ID_LEN 33 /* generated ids: 32 hex digits + NUL */

static struct {
    const char *host;
    int port;
    const char *prefix;
    const char *queue;
    const char *task;
    double timeout;
    const char *ready_file;
    int validate;
} opt = {"127.0.0.1", 6379, "bench:", "bench", "noop", 120.0, NULL, 1};

static double t_start; /* monotonic seconds when main started: the deadline base */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double time_left(void)
{
    return opt.timeout - (now_s() - t_start);
}

static void sleep_ms(double ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms * 1e6) % 1000000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("taskq_bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    printf("status=error\n");
    exit(70);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        die("out of memory");
    return p;
}

/* The one output line: "scenario=NAME status=STATUS" then the caller's pairs. */
static void report(const char *scenario, const char *status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void report(const char *scenario, const char *status, const char *fmt, ...)
{
    va_list ap;
    printf("scenario=%s status=%s", scenario, status);
    if (fmt && *fmt) {
        putchar(' ');
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
    }
    putchar('\n');
    fflush(stdout);
}

/* ---- connections ------------------------------------------------------- */

static taskq_client *client_open(void)
{
    char url[256];
    snprintf(url, sizeof(url), "redis://%s:%d/0", opt.host, opt.port);
    taskq_client *c = taskq_client_new(url);
    if (!c)
        die("out of memory");
    if (taskq_client_set_prefix(c, opt.prefix) < 0 || taskq_client_set_queue_cap(c, 10000000) < 0 ||
        taskq_client_set_validate(c, opt.validate) < 0)
        die("client options: %s", taskq_client_errstr(c));
    if (taskq_client_ping(c) < 0)
        die("cannot reach Redis at %s: %s", url, taskq_client_errstr(c));
    return c;
}

static redisContext *raw_open(void)
{
    struct timeval tv = {10, 0};
    redisContext *r = redisConnectWithTimeout(opt.host, opt.port, tv);
    if (!r || r->err)
        die("cannot reach Redis at %s:%d: %s", opt.host, opt.port, r ? r->errstr : "oom");
    return r;
}

static redisReply *cmd(redisContext *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(r, fmt, ap);
    va_end(ap);
    if (!rep)
        die("redis: %s", r->errstr);
    if (rep->type == REDIS_REPLY_ERROR)
        die("redis: %s", rep->str);
    return rep;
}

static long long cmd_int(redisContext *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(r, fmt, ap);
    va_end(ap);
    if (!rep)
        die("redis: %s", r->errstr);
    long long v = rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1;
    freeReplyObject(rep);
    return v;
}

static void qkey(char *buf, size_t size, const char *kind)
{
    snprintf(buf, size, "%s{%s}:%s", opt.prefix, opt.queue, kind);
}

/* ---- INFO readings ----------------------------------------------------- */

#define MAX_CMDSTATS 128

typedef struct {
    double cpu_user, cpu_sys; /* seconds, the whole redis-server process */
    long long reads;          /* total_reads_processed: read events ~ round trips */
    long long net_in, net_out;
    long long used_memory;
    int ncmd;
    struct {
        char name[64];
        long long calls;
        long long usec;
    } cmd[MAX_CMDSTATS];
} info_snap;

static double info_num(const char *text, const char *field)
{
    char pat[80];
    snprintf(pat, sizeof(pat), "\r\n%s:", field);
    const char *p = strstr(text, pat);
    return p ? strtod(p + strlen(pat), NULL) : -1;
}

static void info_take(redisContext *r, info_snap *s)
{
    memset(s, 0, sizeof(*s));
    redisReply *rep = cmd(r, "INFO everything");
    const char *t = rep->str;
    s->cpu_user = info_num(t, "used_cpu_user");
    s->cpu_sys = info_num(t, "used_cpu_sys");
    s->reads = (long long)info_num(t, "total_reads_processed");
    s->net_in = (long long)info_num(t, "total_net_input_bytes");
    s->net_out = (long long)info_num(t, "total_net_output_bytes");
    s->used_memory = (long long)info_num(t, "used_memory");
    for (const char *p = strstr(t, "\r\ncmdstat_"); p && s->ncmd < MAX_CMDSTATS;
         p = strstr(p + 1, "\r\ncmdstat_")) {
        const char *name = p + 10;
        const char *colon = strchr(name, ':');
        if (!colon)
            break;
        int i = s->ncmd++;
        snprintf(s->cmd[i].name, sizeof(s->cmd[i].name), "%.*s", (int)(colon - name), name);
        const char *c = strstr(colon, "calls=");
        const char *u = strstr(colon, "usec=");
        s->cmd[i].calls = c ? atoll(c + 6) : 0;
        s->cmd[i].usec = u ? atoll(u + 5) : 0;
    }
    freeReplyObject(rep);
}

static int info_find(const info_snap *s, const char *name)
{
    for (int i = 0; i < s->ncmd; i++)
        if (strcmp(s->cmd[i].name, name) == 0)
            return i;
    return -1;
}

/* The difference b - a, ignoring the INFO calls themselves and the polling
 * commands of this program (hlen, zcard, lindex, ping). */
typedef struct {
    double cpu_us;
    long long reads, calls, lua_calls, lua_usec, cmd_usec;
    char breakdown[2048];
} info_delta;

static int is_probe(const char *name)
{
    return strcmp(name, "info") == 0 || strcmp(name, "hlen") == 0 || strcmp(name, "zcard") == 0 ||
           strcmp(name, "ping") == 0 || strcmp(name, "lindex") == 0 ||
           strcmp(name, "config|resetstat") == 0;
}

static void info_diff(const info_snap *a, const info_snap *b, info_delta *d)
{
    memset(d, 0, sizeof(*d));
    d->cpu_us = ((b->cpu_user + b->cpu_sys) - (a->cpu_user + a->cpu_sys)) * 1e6;
    d->reads = b->reads - a->reads;
    size_t off = 0;
    for (int i = 0; i < b->ncmd; i++) {
        int j = info_find(a, b->cmd[i].name);
        long long calls = b->cmd[i].calls - (j >= 0 ? a->cmd[j].calls : 0);
        long long usec = b->cmd[i].usec - (j >= 0 ? a->cmd[j].usec : 0);
        if (calls <= 0 || is_probe(b->cmd[i].name))
            continue;
        d->calls += calls;
        if (strcmp(b->cmd[i].name, "evalsha") == 0 || strcmp(b->cmd[i].name, "eval") == 0) {
            d->lua_calls += calls;
            d->lua_usec += usec;
        } else {
            d->cmd_usec += usec;
        }
        if (off < sizeof(d->breakdown) - 64)
            off += (size_t)snprintf(d->breakdown + off, sizeof(d->breakdown) - off,
                                    "%s%s:%lld:%lld", off ? "," : "", b->cmd[i].name, calls, usec);
    }
}

/* ---- helpers shared by the scenarios -------------------------------- */

static taskq_task *task_make(int64_t eta_ms)
{
    taskq_task *t = taskq_task_new(opt.task);
    if (!t)
        die("out of memory");
    if (taskq_task_set_queue(t, opt.queue) < 0)
        die("queue: %s", taskq_task_errstr(t));
    if (eta_ms && taskq_task_set_eta(t, eta_ms) < 0)
        die("eta: %s", taskq_task_errstr(t));
    return t;
}

/* Submit n copies of t in pipelined batches; ids (may be NULL) receive the
 * generated ids. Returns the number submitted before the deadline. */
static size_t fill(taskq_client *c, const taskq_task *t, size_t n, size_t batch,
                   char (*ids)[ID_LEN])
{
    taskq_task **v = xcalloc(batch, sizeof(*v));
    char(*bid)[TASKQ_ID_SIZE] = xcalloc(batch, TASKQ_ID_SIZE);
    for (size_t i = 0; i < batch; i++)
        v[i] = (taskq_task *)(uintptr_t)t;
    size_t done = 0;
    while (done < n && time_left() > 0) {
        size_t k = n - done < batch ? n - done : batch;
        if (taskq_submit_many(c, v, k, bid, NULL) < 0)
            die("submit_many: %s", taskq_client_errstr(c));
        if (ids)
            for (size_t i = 0; i < k; i++)
                snprintf(ids[done + i], ID_LEN, "%s", bid[i]);
        done += k;
    }
    free(v);
    free(bid);
    return done;
}

static void signal_ready(void)
{
    if (!opt.ready_file)
        return;
    FILE *f = fopen(opt.ready_file, "w");
    if (!f)
        die("cannot create %s: %s", opt.ready_file, strerror(errno));
    fclose(f);
}

/* Wait for one task's final state; returns the state, or -1 on time-out. */
static int wait_one(taskq_client *c, const char *id)
{
    for (;;) {
        double left = time_left();
        if (left <= 0)
            return -1;
        taskq_result *res = NULL;
        int rc = taskq_result_wait(c, opt.queue, id, left < 5 ? left : 5, &res);
        int st = res ? (int)taskq_result_state(res) : -1;
        taskq_result_free(res);
        if (rc == 0)
            return st;
        if (rc != TASKQ_ETIMEDOUT && rc != TASKQ_ENOTFOUND)
            die("wait %s: %s", id, taskq_client_errstr(c));
        if (rc == TASKQ_ENOTFOUND)
            sleep_ms(1);
    }
}

/* Poll (1 ms) until the O(1) count `cmdname key` is at most `target`. */
static int wait_count(redisContext *r, const char *cmdname, const char *key, long long target)
{
    while (time_left() > 0) {
        if (cmd_int(r, "%s %s", cmdname, key) <= target)
            return 0;
        sleep_ms(1);
    }
    return -1;
}

/* How many of ids[0..n) have reached SUCCESS (a final record in one of the
 * queue's results generations, docs/PROTOCOL.md#results). */
static size_t count_success(redisContext *r, char (*ids)[ID_LEN], size_t n)
{
    size_t ok = 0;
    const size_t chunk = 10000;
    redisReply *gens = redisCommand(r, "ZRANGE %s{%s}:results 0 -1", opt.prefix, opt.queue);
    if (!gens || gens->type != REDIS_REPLY_ARRAY)
        die("redis: cannot read the results index");
    unsigned char *seen = calloc(n, 1);
    if (!seen)
        die("out of memory");
    for (size_t g = 0; g < gens->elements; g++) {
        for (size_t base = 0; base < n; base += chunk) {
            size_t k = n - base < chunk ? n - base : chunk;
            for (size_t i = 0; i < k; i++)
                redisAppendCommand(r, "HGET %s{%s}:results:%s %s", opt.prefix, opt.queue,
                                   gens->element[g]->str, ids[base + i]);
            for (size_t i = 0; i < k; i++) {
                redisReply *rep = NULL;
                if (redisGetReply(r, (void **)&rep) != REDIS_OK)
                    die("redis: %s", r->errstr);
                if (rep->type == REDIS_REPLY_STRING && !seen[base + i] &&
                    strstr(rep->str, "\"state\":\"SUCCESS\"")) {
                    seen[base + i] = 1;
                    ok++;
                }
                freeReplyObject(rep);
            }
        }
    }
    free(seen);
    freeReplyObject(gens);
    return ok;
}

static size_t arg_size(const char *s, const char *what)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v == 0)
        die("%s must be a positive integer, got '%s'", what, s);
    return (size_t)v;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *sorted, size_t n, double p)
{
    size_t i = (size_t)(p * (double)n);
    if (i >= n)
        i = n - 1;
    return sorted[i];
}

/* ---- scenarios --------------------------------------------------------- */

static int enqueue_single(size_t n)
{
    taskq_client *c = client_open();
    taskq_task *t = task_make(0);
    char id[TASKQ_ID_SIZE];
    size_t done = 0;
    double t0 = now_s();
    while (done < n) {
        if (taskq_submit(c, t, id) < 0)
            die("submit: %s", taskq_client_errstr(c));
        done++;
        if ((done & 1023) == 0 && time_left() <= 0)
            break;
    }
    double dt = now_s() - t0;
    report("enqueue-single", done == n ? "ok" : "timeout",
           "n=%zu secs=%.3f rate=%.0f us_per_call=%.2f", done, dt, (double)done / dt,
           dt * 1e6 / (double)done);
    taskq_task_free(t);
    taskq_client_free(c);
    return 0;
}

static int enqueue_bulk(size_t n, size_t batch)
{
    taskq_client *c = client_open();
    taskq_task *t = task_make(0);
    double t0 = now_s();
    size_t done = fill(c, t, n, batch, NULL);
    double dt = now_s() - t0;
    report("enqueue-bulk", done == n ? "ok" : "timeout", "n=%zu batch=%zu secs=%.3f rate=%.0f",
           done, batch, dt, (double)done / dt);
    taskq_task_free(t);
    taskq_client_free(c);
    return 0;
}

/* Pre-queue n tasks, signal, then time the results of tasks 1..k (FIFO: the
 * first k queued are the first k taken). k = n unless --first says. */
static int drain(size_t n, size_t k)
{
    taskq_client *c = client_open();
    redisContext *r = raw_open();
    taskq_task *t = task_make(0);
    char(*ids)[ID_LEN] = xcalloc(n, ID_LEN);
    char msgkey[256];
    qkey(msgkey, sizeof(msgkey), "msg");
    if (k > n)
        k = n;

    double f0 = now_s();
    if (fill(c, t, n, 1000, ids) < n) {
        report("drain", "timeout", "n=%zu phase=fill", n);
        return 0;
    }
    double fill_s = now_s() - f0;
    fprintf(stderr, "taskq_bench: %zu tasks queued in %.2f s; waiting for the worker\n", n, fill_s);
    signal_ready();

    int st0 = wait_one(c, ids[0]);
    double t0 = now_s();
    int stk = st0 < 0 ? -1 : wait_one(c, ids[k - 1]);
    double t1 = now_s();
    const char *status = "ok";
    if (st0 < 0 || stk < 0)
        status = "timeout";
    else if (k == n && wait_count(r, "HLEN", msgkey, 0) < 0)
        status = "timeout"; /* a few of the last tasks were still running */
    double t2 = now_s();
    size_t ok = count_success(r, ids, k);
    if (ok != k && strcmp(status, "ok") == 0)
        status = "incomplete";
    double dt = (k == n ? t2 : t1) - t0;
    report("drain", status, "n=%zu measured=%zu secs=%.3f rate=%.0f success=%zu fill_rate=%.0f", n,
           k, dt, (double)(k - 1) / dt, ok, (double)n / fill_s);
    free(ids);
    taskq_task_free(t);
    redisFree(r);
    taskq_client_free(c);
    return 0;
}

/* n sequential submit-and-wait calls on a warm worker. */
static int roundtrip(size_t n)
{
    taskq_client *c = client_open();
    taskq_task *t = task_make(0);
    double *lat = xcalloc(n, sizeof(*lat));
    char id[TASKQ_ID_SIZE];
    size_t done = 0;
    const char *status = "ok";
    for (size_t i = 0; i < n + 100; i++) { /* the first 100 warm up */
        double t0 = now_s();
        taskq_result *res = NULL;
        double left = time_left();
        /* One round trip on a warm connection: enqueue and blocking wait
         * pipelined (taskq_submit_wait). */
        int rc = left > 0 ? taskq_submit_wait(c, t, left, id, &res) : TASKQ_ETIMEDOUT;
        double dt = now_s() - t0;
        int st = res ? (int)taskq_result_state(res) : -1;
        taskq_result_free(res);
        if (rc == TASKQ_ETIMEDOUT) {
            status = "timeout";
            break;
        }
        if (rc < 0)
            die("wait: %s", taskq_client_errstr(c));
        if (st != TASKQ_SUCCESS)
            die("task %s ended %s", id, taskq_state_name((taskq_state)st));
        if (i >= 100)
            lat[done++] = dt * 1e3;
    }
    if (done == 0) {
        report("roundtrip", status, "n=0");
        return 0;
    }
    double sum = 0;
    for (size_t i = 0; i < done; i++)
        sum += lat[i];
    qsort(lat, done, sizeof(*lat), cmp_double);
    report("roundtrip", status,
           "n=%zu p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f mean_ms=%.3f", done,
           pct(lat, done, 0.50), pct(lat, done, 0.99), pct(lat, done, 0.999), lat[done - 1],
           sum / (double)done);
    free(lat);
    taskq_task_free(t);
    taskq_client_free(c);
    return 0;
}

/* Redis's own cost of n tasks: memory per queued task (no worker yet), then
 * CPU, commands and read events from enqueue through the last result. */
static int redis_cost(size_t n)
{
    taskq_client *c = client_open();
    redisContext *r = raw_open();
    taskq_task *t = task_make(0);
    char(*ids)[ID_LEN] = xcalloc(n, ID_LEN);
    char msgkey[256];
    qkey(msgkey, sizeof(msgkey), "msg");
    info_snap *a = xcalloc(1, sizeof(*a)), *b = xcalloc(1, sizeof(*b)), *e = xcalloc(1, sizeof(*e));
    info_delta enq, all;

    info_take(r, a);
    if (fill(c, t, n, 1000, ids) < n) {
        report("redis-cost", "timeout", "n=%zu phase=fill", n);
        return 0;
    }
    info_take(r, e);
    signal_ready();
    const char *status = "ok";
    if (wait_one(c, ids[n - 1]) < 0 || wait_count(r, "HLEN", msgkey, 0) < 0)
        status = "timeout";
    info_take(r, b);
    size_t ok = count_success(r, ids, n);
    if (ok != n && strcmp(status, "ok") == 0)
        status = "incomplete";
    info_diff(a, e, &enq);
    info_diff(a, b, &all);
    double dn = (double)n;
    report("redis-cost", status,
           "n=%zu bytes_per_task=%.0f cpu_us_per_task=%.2f enq_cpu_us_per_task=%.2f "
           "cmds_per_task=%.2f lua_calls_per_task=%.2f reads_per_task=%.3f enq_reads_per_task=%.3f "
           "lua_usec_per_task=%.2f cmd_usec_per_task=%.2f net_in_per_task=%.0f "
           "net_out_per_task=%.0f success=%zu cmds=%s",
           n, (double)(e->used_memory - a->used_memory) / dn, all.cpu_us / dn, enq.cpu_us / dn,
           (double)all.calls / dn, (double)all.lua_calls / dn, (double)all.reads / dn,
           (double)enq.reads / dn, (double)all.lua_usec / dn, (double)all.cmd_usec / dn,
           (double)(b->net_in - a->net_in) / dn, (double)(b->net_out - a->net_out) / dn, ok,
           all.breakdown);
    free(a);
    free(b);
    free(e);
    free(ids);
    taskq_task_free(t);
    redisFree(r);
    taskq_client_free(c);
    return 0;
}

/* n tasks due in the same second, about 2 s after they are all queued (more
 * when queueing them takes long); a worker is already running and idle. */
static int delayed(size_t n)
{
    taskq_client *c = client_open();
    redisContext *r = raw_open();
    char dkey[256], msgkey[256];
    qkey(dkey, sizeof(dkey), "delayed");
    qkey(msgkey, sizeof(msgkey), "msg");
    /* Allow 20 µs per task for queueing them (50,000/s), then 2 s. */
    int64_t due = wall_ms() + 2000 + (int64_t)n / 50;
    due = (due / 1000 + 1) * 1000;
    taskq_task *t = task_make(due);
    if (fill(c, t, n, 1000, NULL) < n) {
        report("delayed", "timeout", "n=%zu phase=fill", n);
        return 0;
    }
    int64_t queued_at = wall_ms();
    if (queued_at >= due) {
        report("delayed", "late", "n=%zu fill_overran_ms=%lld", n, (long long)(queued_at - due));
        return 0;
    }
    long long pending = cmd_int(r, "ZCARD %s", dkey);
    if (pending != (long long)n)
        die("delayed set holds %lld of %zu tasks before the due time", pending, n);
    while (wall_ms() < due - 20)
        sleep_ms(5);
    double first = -1, queued = -1, done = -1;
    const char *status = "ok";
    long long zc = (long long)n, last_zc = zc;
    int64_t last_change = due;
    for (;;) {
        zc = cmd_int(r, "ZCARD %s", dkey);
        int64_t w = wall_ms();
        double at = (double)(w - due);
        if (first < 0 && zc < (long long)n)
            first = at;
        if (zc == 0 && queued < 0)
            queued = at;
        if (zc != last_zc) {
            last_zc = zc;
            last_change = w;
        }
        if (queued >= 0 && cmd_int(r, "HLEN %s", msgkey) == 0) {
            done = at;
            break;
        }
        if (zc > 0 && w - last_change > 10000) {
            status = "stalled"; /* no promotion for 10 s after the due time */
            break;
        }
        if (time_left() <= 0) {
            status = "timeout";
            break;
        }
        sleep_ms(1);
    }
    char pkey[256];
    qkey(pkey, sizeof(pkey), "pending");
    report("delayed", status,
           "n=%zu lead_ms=%lld first_ms=%.0f all_queued_ms=%.0f all_done_ms=%.0f "
           "left_delayed=%lld left_msg=%lld pending_len=%lld",
           n, (long long)(due - queued_at), first, queued, done, zc, cmd_int(r, "HLEN %s", msgkey),
           cmd_int(r, "LLEN %s", pkey));
    taskq_task_free(t);
    redisFree(r);
    taskq_client_free(c);
    return 0;
}

/* A long run through an already running worker: n tasks submitted in
 * batches while at most `window` are outstanding, until all are settled.
 * For the RSS-after-a-million-tasks figure (no growth = no leak). */
static int load(size_t n, size_t window)
{
    taskq_client *c = client_open();
    redisContext *r = raw_open();
    taskq_task *t = task_make(0);
    char msgkey[256];
    qkey(msgkey, sizeof(msgkey), "msg");
    size_t sent = 0;
    const char *status = "ok";
    double t0 = now_s();
    while (sent < n) {
        long long out = cmd_int(r, "HLEN %s", msgkey);
        if (out < (long long)window) {
            size_t k = window - (size_t)out;
            if (k > n - sent)
                k = n - sent;
            sent += fill(c, t, k, 1000, NULL);
        } else {
            sleep_ms(1);
        }
        if (time_left() <= 0) {
            status = "timeout";
            break;
        }
    }
    if (strcmp(status, "ok") == 0 && wait_count(r, "HLEN", msgkey, 0) < 0)
        status = "timeout";
    double dt = now_s() - t0;
    report("load", status, "n=%zu secs=%.3f rate=%.0f", sent, dt, (double)sent / dt);
    taskq_task_free(t);
    redisFree(r);
    taskq_client_free(c);
    return 0;
}

static void usage(void)
{
    fputs("usage: taskq_bench [--port P] [--host H] [--prefix P] [--queue Q] [--task NAME]\n"
          "                   [--timeout S] [--ready-file PATH] [--no-validate] [--first K]\n"
          "                   SCENARIO ARGS\n"
          "scenarios:\n"
          "  enqueue-single N        N taskq_submit calls, one round trip each\n"
          "  enqueue-bulk N BATCH    taskq_submit_many in batches of BATCH\n"
          "  drain N                 pre-queue N, signal, time the results (--first K: of the\n"
          "                          first K only)\n"
          "  roundtrip N             N sequential submit-and-wait on a warm worker\n"
          "  redis-cost N            Redis CPU, commands, reads and memory per task\n"
          "  delayed N               N tasks due in the same second: time until all queued\n"
          "  load N WINDOW           N tasks through a running worker, WINDOW outstanding\n",
          stderr);
    exit(64);
}

int main(int argc, char **argv)
{
    t_start = now_s();
    size_t first = 0;
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        const char *o = argv[i];
        if (strcmp(o, "--help") == 0)
            usage();
        if (strcmp(o, "--no-validate") == 0) {
            opt.validate = 0;
            continue;
        }
        if (i + 1 >= argc)
            usage();
        const char *v = argv[++i];
        if (strcmp(o, "--port") == 0) {
            char *end;
            long port = strtol(v, &end, 10);
            if (*end || port < 1 || port > 65535)
                usage();
            opt.port = (int)port;
        } else if (strcmp(o, "--host") == 0)
            opt.host = v;
        else if (strcmp(o, "--prefix") == 0)
            opt.prefix = v;
        else if (strcmp(o, "--queue") == 0)
            opt.queue = v;
        else if (strcmp(o, "--task") == 0)
            opt.task = v;
        else if (strcmp(o, "--timeout") == 0)
            opt.timeout = atof(v);
        else if (strcmp(o, "--ready-file") == 0)
            opt.ready_file = v;
        else if (strcmp(o, "--first") == 0)
            first = arg_size(v, "--first");
        else
            usage();
    }
    if (i >= argc)
        usage();
    const char *sc = argv[i++];
    int nargs = argc - i;
    char **a = argv + i;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (strcmp(sc, "enqueue-single") == 0 && nargs == 1)
        return enqueue_single(arg_size(a[0], "N"));
    if (strcmp(sc, "enqueue-bulk") == 0 && nargs == 2)
        return enqueue_bulk(arg_size(a[0], "N"), arg_size(a[1], "BATCH"));
    if (strcmp(sc, "drain") == 0 && nargs == 1) {
        size_t n = arg_size(a[0], "N");
        return drain(n, first ? first : n);
    }
    if (strcmp(sc, "roundtrip") == 0 && nargs == 1)
        return roundtrip(arg_size(a[0], "N"));
    if (strcmp(sc, "redis-cost") == 0 && nargs == 1)
        return redis_cost(arg_size(a[0], "N"));
    if (strcmp(sc, "delayed") == 0 && nargs == 1)
        return delayed(arg_size(a[0], "N"));
    if (strcmp(sc, "load") == 0 && nargs == 2)
        return load(arg_size(a[0], "N"), arg_size(a[1], "WINDOW"));
    usage();
}
