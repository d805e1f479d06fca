/* taskq_fx: fixtures shared by the integration tests (see taskq_fx.h).
 *
 * Everything here is built from the harness's primitives and the public
 * libtaskq API, plus plain hiredis reads of the key schema
 * (docs/PROTOCOL.md#key-schema). A worker's log path is copied at start-up
 * because the harness drops it once the process has been reaped, and tests
 * read logs of workers they have stopped or killed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "taskq_fx.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_ARGV 48

/* ---- a redis-server and the connections to it ---------------------------- */

int tf_redis_open(tf_redis *r, const char *const *extra, int with_client)
{
    memset(r, 0, sizeof(*r));
    r->srv = th_redis_start(extra);
    if (!r->srv)
        goto fail;
    r->rc = th_redis(r->srv);
    if (!r->rc)
        goto fail;
    if (with_client) {
        r->c = taskq_client_new(r->srv->url);
        if (!r->c || taskq_client_ping(r->c) != 0) {
            fprintf(stderr, "taskq_fx: client for %s: %s\n", r->srv->url,
                    r->c ? taskq_client_errstr(r->c) : "out of memory");
            goto fail;
        }
    }
    return 0;
fail:
    tf_redis_close(r);
    return -1;
}

void tf_redis_close(tf_redis *r)
{
    taskq_client_free(r->c);
    if (r->rc)
        redisFree(r->rc);
    th_redis_free(r->srv);
    r->c = NULL;
    r->rc = NULL;
    r->srv = NULL;
}

static tf_redis group;
static int group_open;

int tf_group_setup(void **state)
{
    if (tf_redis_open(&group, NULL, 0) != 0)
        return -1;
    group_open = 1;
    *state = &group;
    return 0;
}

int tf_group_teardown(void **state)
{
    (void)state;
    tf_redis_close(&group);
    group_open = 0;
    th_cleanup();
    return 0;
}

tf_redis *tf_group(void)
{
    return group_open ? &group : NULL;
}

taskq_client *tf_client_prefixed(const char *url, const char *tag, char prefix[64])
{
    static int seq;
    snprintf(prefix, 64, "%s%d-%d:", tag, (int)getpid(), ++seq);
    taskq_client *c = taskq_client_new(url);
    assert_non_null(c);
    if (taskq_client_error(c) != TASKQ_OK)
        fail_msg("client for %s: %s", url, taskq_client_errstr(c));
    assert_int_equal(taskq_client_set_prefix(c, prefix), 0);
    return c;
}

long long tf_redis_now_ms(redisContext *rc)
{
    redisReply *r = th_cmd(rc, "TIME");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    long long ms =
        strtoll(r->element[0]->str, NULL, 10) * 1000 + strtoll(r->element[1]->str, NULL, 10) / 1000;
    freeReplyObject(r);
    return ms;
}

long long tf_rint(redisContext *rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(rc, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    if (r->type != REDIS_REPLY_INTEGER)
        fail_msg("'%s': expected an integer reply, got type %d (%s)", fmt, r->type,
                 r->type == REDIS_REPLY_ERROR ? r->str : "");
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

/* ---- processes ------------------------------------------------------------ */

pid_t tf_spawn(const char *const *argv, const char *const *env, char log[TH_PATH_MAX])
{
    pid_t pid = th_spawn(argv, env);
    if (pid <= 0)
        fail_msg("could not start %s", argv[0]);
    snprintf(log, TH_PATH_MAX, "%s", th_proc_log(pid));
    return pid;
}

int tf_alive(pid_t pid)
{
    return th_wait_exit(pid, 0, NULL) != 0;
}

int tf_worker_read_id(tf_worker *w)
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

/* Ready, or exited (w->pid becomes 0): stop waiting either way. */
static int ready_or_exited_cb(void *arg)
{
    tf_worker *w = arg;
    if (!tf_alive(w->pid)) {
        w->pid = 0;
        return 1;
    }
    return tf_worker_read_id(w);
}

void tf_worker_start(tf_worker *w, const char *url, const char *const *extra_argv,
                     const char *const *extra_env, int wait_ready)
{
    char *bin = th_bin("taskq-worker");
    const char *argv[MAX_ARGV] = {bin};
    int n = 1;
    if (url) {
        argv[n++] = "--redis";
        argv[n++] = url;
    }
    for (; extra_argv && *extra_argv; extra_argv++) {
        if (n == MAX_ARGV - 1)
            fail_msg("taskq-worker: more than %d arguments", MAX_ARGV - 1);
        argv[n++] = *extra_argv;
    }
    argv[n] = NULL;
    memset(w, 0, sizeof(*w));
    w->pid = tf_spawn(argv, extra_env, w->log);
    free(bin);
    if (!wait_ready)
        return;
    pid_t pid = w->pid;
    if (!th_wait_until(ready_or_exited_cb, w, TF_READY_MS) || w->pid == 0) {
        th_dump_file("worker log", w->log);
        fail_msg("taskq-worker %d %s", (int)pid,
                 w->pid ? "did not become ready in time" : "exited at start-up");
    }
}

int tf_worker_stop(tf_worker *w, int timeout_ms)
{
    if (w->pid <= 0)
        return -1;
    int st = th_stop_proc(w->pid, timeout_ms);
    w->pid = 0;
    return st;
}

/* ---- waits ------------------------------------------------------------------ */

long tf_file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

typedef struct log_probe {
    const char *path;
    long from;
    const char *needle;
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

int tf_log_wait(const char *path, long from_offset, const char *needle, int ms)
{
    log_probe p = {path, from_offset, needle};
    return th_wait_until(log_has_cb, &p, ms);
}

typedef struct rint_probe {
    redisContext *rc;
    const char *cmd; /* in the protocol: sent as it is at every probe */
    size_t len;
    long long want;
} rint_probe;

static int rint_cb(void *arg)
{
    rint_probe *p = arg;
    redisReply *r = NULL;
    assert_int_equal(redisAppendFormattedCommand(p->rc, p->cmd, p->len), REDIS_OK);
    assert_int_equal(redisGetReply(p->rc, (void **)&r), REDIS_OK);
    assert_non_null(r);
    if (r->type != REDIS_REPLY_INTEGER)
        fail_msg("'%.*s': expected an integer reply, got type %d (%s)", (int)p->len, p->cmd,
                 r->type, r->type == REDIS_REPLY_ERROR ? r->str : "");
    long long v = r->integer;
    freeReplyObject(r);
    return v == p->want;
}

int tf_wait_rint(redisContext *rc, long long want, int ms, const char *fmt, ...)
{
    char *cmd = NULL;
    va_list ap;
    va_start(ap, fmt);
    int len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    if (len < 0)
        fail_msg("'%s': cannot format the command", fmt);
    rint_probe p = {rc, cmd, (size_t)len, want};
    int ok = th_wait_until(rint_cb, &p, ms);
    redisFreeCommand(cmd);
    return ok;
}

typedef struct run_probe {
    redisContext *rc;
    const char *prefix;
    const char *wid;
    long long want;
} run_probe;

static int running_cb(void *arg)
{
    run_probe *p = arg;
    redisReply *r = th_cmd(p->rc, "GET %sworker:%s", p->prefix, p->wid);
    assert_non_null(r);
    json_t *info = r->type == REDIS_REPLY_STRING ? json_loads(r->str, 0, NULL) : NULL;
    long long n = json_integer_value(json_object_get(info, "running"));
    json_decref(info);
    freeReplyObject(r);
    return n >= p->want;
}

int tf_wait_running(redisContext *rc, const char *prefix, const char *wid, long long want, int ms)
{
    run_probe p = {rc, prefix, wid, want};
    return th_wait_until(running_cb, &p, ms);
}

/* ---- tasks through libtaskq ---------------------------------------------- */

taskq_task *tf_task_json(const char *json)
{
    taskq_task *t = taskq_task_new(NULL);
    assert_non_null(t);
    if (taskq_task_apply_json(t, json) != 0)
        fail_msg("task %s: %s", json, taskq_task_errstr(t));
    return t;
}

void tf_submit_json(taskq_client *c, const char *json, char id[TASKQ_ID_SIZE])
{
    taskq_task *t = tf_task_json(json);
    if (taskq_submit(c, t, id) != 0)
        fail_msg("submit %s: %s", json, taskq_client_errstr(c));
    taskq_task_free(t);
}

taskq_result *tf_wait_final(taskq_client *c, const char *queue, const char *id, double timeout,
                            const char *diag_log)
{
    taskq_result *r = NULL;
    int rc = taskq_result_wait(c, queue, id, timeout, &r);
    if (rc != 0) {
        const char *st = r ? taskq_state_name(taskq_result_state(r)) : "?";
        if (diag_log)
            th_dump_file("worker log", diag_log);
        fail_msg("task %s: no final state within %.1f s (%d %s: %s; state %s)", id, timeout, rc,
                 taskq_strerror(rc), taskq_client_errstr(c), st);
    }
    assert_non_null(r);
    assert_true(taskq_state_is_final(taskq_result_state(r)));
    assert_string_equal(taskq_result_id(r), id);
    return r;
}

taskq_state tf_state(taskq_client *c, const char *queue, const char *id)
{
    taskq_state s = TASKQ_PENDING;
    int rc = taskq_state_get(c, queue, id, &s);
    if (rc != 0)
        fail_msg("state of %s: %d %s", id, rc, taskq_client_errstr(c));
    return s;
}

typedef struct state_probe {
    taskq_client *c;
    const char *queue;
    const char *id;
    taskq_state want;
} state_probe;

static int state_cb(void *arg)
{
    state_probe *p = arg;
    return tf_state(p->c, p->queue, p->id) == p->want;
}

int tf_wait_state(taskq_client *c, const char *queue, const char *id, taskq_state want, int ms)
{
    state_probe p = {c, queue, id, want};
    return th_wait_until(state_cb, &p, ms);
}

json_t *tf_record(const taskq_result *r)
{
    json_error_t e;
    json_t *j = json_loads(taskq_result_json(r), 0, &e);
    if (!j)
        fail_msg("record is not JSON: %s", e.text);
    return j;
}

/* ---- misc ------------------------------------------------------------------ */

int tf_dead_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}
