/* libtaskq: the client side of docs/PROTOCOL.md over one blocking hiredis
 * connection. Invariants: a client is either connected (rc != NULL) or will
 * reconnect at its next call; every failure sets err/errstr before returning
 * its code; nothing here keeps global state. */
#include "taskq.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "broker/tq_cmd.h"
#include "broker/tq_keys.h"
#include "broker/tq_sconn.h"
#include "broker/tq_sign.h"
#include "common/tq_msg.h"
#include "common/tq_sig.h"
#include "common/tq_url.h"
#include "common/tq_util.h"

#define DEFAULT_URL "redis://127.0.0.1:6379/0"
#define DEFAULT_QUEUE "default"
#define DEFAULT_QUEUE_CAP 10000000LL
#define REVOKED_TTL_MS (86400LL * 1000)
#define SIG_CACHE_MS 5000
#define SIG_CACHE_MAX 256
/* A blocking wait blocks in windows of at most this long, re-registering
 * its interest each time (a registration must expire, docs/PROTOCOL.md). */
#define WAIT_WINDOW_S 60.0

/* A published signature, cached so a busy submitter costs no extra round
 * trip per task. sig NULL with known 1: published without a signature. */
typedef struct sig_entry {
    char *name;
    tq_sig *sig;
    int known;
    int64_t fetched_ms;
} sig_entry;

struct taskq_client {
    tq_url url;
    int url_ok;
    char where[320]; /* masked address for messages */
    redisContext *rc;
    char prefix[TQ_PREFIX_MAX + 1];
    double timeout;
    long long queue_cap;
    tq_msg_limits limits;
    int validate;
    int resent;       /* the current batch was sent twice (stale link) */
    unsigned cached;  /* bit per tq_script_id known cached on this connection */
    tq_keyring *keys; /* signing key (first entry), NULL: unsigned */
    tq_jw msgbuf;     /* the message being built (build_message), reused */
    sig_entry sigs[SIG_CACHE_MAX];
    size_t nsigs;
    int err;
    char errstr[768];
};

struct taskq_task {
    char *name;
    json_t *args;
    json_t *kwargs;
    char queue[TQ_QUEUE_MAX + 1];
    char id[TASKQ_ID_SIZE];
    int64_t countdown_ms, eta_ms, expires_ms_rel, soft_ms, hard_ms;
    int retries; /* -1: task default */
    char errstr[256];
};

struct taskq_result {
    taskq_state state;
    json_t *rec; /* owned */
    char *json;  /* owned, compact */
    char *value; /* owned, SUCCESS only */
};

static const char *const state_names[] = {"PENDING", "STARTED", "RETRY",
                                          "SUCCESS", "FAILURE", "REVOKED"};

const char *taskq_state_name(taskq_state s)
{
    return (unsigned)s < 6 ? state_names[s] : "UNKNOWN";
}

int taskq_state_is_final(taskq_state s)
{
    return s == TASKQ_SUCCESS || s == TASKQ_FAILURE || s == TASKQ_REVOKED;
}

static int state_parse(const char *s, taskq_state *out)
{
    for (int i = 0; s && i < 6; i++) {
        if (strcmp(s, state_names[i]) == 0) {
            *out = (taskq_state)i;
            return 0;
        }
    }
    return -1;
}

const char *taskq_strerror(int code)
{
    switch (code) {
    case TASKQ_OK: return "success";
    case TASKQ_EINVAL: return "invalid argument";
    case TASKQ_ECONN: return "cannot reach Redis";
    case TASKQ_EREDIS: return "Redis error";
    case TASKQ_ENOTFOUND: return "no such task";
    case TASKQ_ETIMEDOUT: return "timed out";
    case TASKQ_EFULL: return "queue full";
    case TASKQ_EEXIST: return "task id already queued";
    case TASKQ_ESTATE: return "not possible in the task's state";
    case TASKQ_ETOOBIG: return "message too large";
    case TASKQ_EPROTO: return "protocol error";
    }
    return "unknown error";
}

const char *taskq_version(void)
{
    return TASKQ_VERSION;
}

/* ---- client ---------------------------------------------------------- */

static int fail(taskq_client *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(taskq_client *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errstr, sizeof(c->errstr), fmt, ap);
    va_end(ap);
    c->err = code;
    return code;
}

static void ok(taskq_client *c)
{
    c->err = 0;
    c->errstr[0] = '\0';
}

static int ensure_conn(taskq_client *c)
{
    char err[600];
    if (!c->url_ok)
        return c->err;
    if (c->rc)
        return 0;
    c->cached = 0;
    c->rc = tq_sconn_connect(&c->url, c->timeout, err, sizeof(err));
    if (!c->rc)
        return fail(c, TASKQ_ECONN, "%s", err);
    struct timeval tv = {(time_t)c->timeout,
                         (suseconds_t)((c->timeout - (double)(time_t)c->timeout) * 1e6)};
    redisSetTimeout(c->rc, tv);
    return 0;
}

/* The connection broke mid-call: record why, drop it, reconnect next time.
 * Returns 1 when it was a time-out (Redis may still be working on it). */
static int conn_lost(taskq_client *c)
{
    const char *why = c->rc ? c->rc->errstr : "not connected";
    int timed_out =
        c->rc && c->rc->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK);
    fail(c, TASKQ_ECONN, "lost connection to Redis at %s: %s", c->where,
         timed_out ? "no reply within the time-out" : why);
    redisFree(c->rc);
    c->rc = NULL;
    return timed_out;
}

taskq_client *taskq_client_new(const char *url)
{
    taskq_client *c = tq_xcalloc(1, sizeof(*c));
    char err[256];
    const char *env;

    c->timeout = 5.0;
    c->validate = 1;
    c->queue_cap = DEFAULT_QUEUE_CAP;
    tq_jw_init(&c->msgbuf);
    tq_msg_limits_default(&c->limits);
    snprintf(c->prefix, sizeof(c->prefix), "%s", TQ_DEFAULT_PREFIX);
    if ((env = getenv("TASKQ_PREFIX")) && *env)
        taskq_client_set_prefix(c, env);
    if ((env = getenv("TASKQ_MAX_QUEUE_LENGTH")) && *env) {
        long long v;
        if (tq_parse_int(env, 0, INT64_MAX, &v) == 0)
            c->queue_cap = v;
    }
    if ((env = getenv("TASKQ_SIGNING_KEY")) && *env) {
        c->keys = tq_keyring_new();
        if (tq_keyring_parse(c->keys, env, err, sizeof(err)) < 0) {
            fail(c, TASKQ_EINVAL, "TASKQ_SIGNING_KEY: %s", err);
            return c;
        }
    } else if ((env = getenv("TASKQ_SIGNING_KEY_FILE")) && *env) {
        c->keys = tq_keyring_new();
        if (tq_keyring_load_file(c->keys, env, err, sizeof(err)) < 0) {
            fail(c, TASKQ_EINVAL, "TASKQ_SIGNING_KEY_FILE: %s", err);
            return c;
        }
    }
    if (!url || !*url)
        url = getenv("TASKQ_REDIS_URL");
    if (!url || !*url)
        url = DEFAULT_URL;
    if (tq_url_parse(url, &c->url, err, sizeof(err)) < 0) {
        fail(c, TASKQ_EINVAL, "invalid Redis URL: %s", err);
        return c;
    }
    c->url_ok = 1;
    tq_url_mask(&c->url, c->where, sizeof(c->where));
    if (ensure_conn(c) == 0)
        ok(c);
    return c;
}

void taskq_client_free(taskq_client *c)
{
    if (!c)
        return;
    redisFree(c->rc);
    tq_url_clear(&c->url);
    for (size_t i = 0; i < c->nsigs; i++) {
        free(c->sigs[i].name);
        tq_sig_free(c->sigs[i].sig);
    }
    tq_keyring_free(c->keys);
    tq_jw_free(&c->msgbuf);
    free(c);
}

int taskq_client_error(const taskq_client *c)
{
    return c->err;
}

const char *taskq_client_errstr(const taskq_client *c)
{
    return c->errstr;
}

int taskq_client_set_prefix(taskq_client *c, const char *prefix)
{
    if (!prefix || !tq_keys_valid_prefix(prefix))
        return fail(c, TASKQ_EINVAL, "invalid key prefix (1..64 printable characters, no braces)");
    snprintf(c->prefix, sizeof(c->prefix), "%s", prefix);
    return 0;
}

int taskq_client_set_timeout(taskq_client *c, double seconds)
{
    if (!(seconds > 0) || seconds > 86400)
        return fail(c, TASKQ_EINVAL, "time-out must be in (0, 86400] seconds");
    c->timeout = seconds;
    if (c->rc) {
        struct timeval tv = {(time_t)seconds,
                             (suseconds_t)((seconds - (double)(time_t)seconds) * 1e6)};
        redisSetTimeout(c->rc, tv);
    }
    return 0;
}

int taskq_client_set_signing_key(taskq_client *c, const char *kid, const char *hexkey)
{
    char err[256];
    if (!kid || !hexkey)
        return fail(c, TASKQ_EINVAL, "signing key needs a key id and a hex key");
    char *spec = tq_xasprintf("%s:%s", kid, hexkey);
    tq_keyring *kr = tq_keyring_new();
    int rc = tq_keyring_parse(kr, spec, err, sizeof(err));
    memset(spec, 0, strlen(spec));
    free(spec);
    if (rc < 0) {
        tq_keyring_free(kr);
        return fail(c, TASKQ_EINVAL, "signing key: %s", err);
    }
    tq_keyring_free(c->keys);
    c->keys = kr;
    return 0;
}

int taskq_client_set_validate(taskq_client *c, int on)
{
    c->validate = on != 0;
    return 0;
}

int taskq_client_set_queue_cap(taskq_client *c, long long cap)
{
    if (cap < 0)
        return fail(c, TASKQ_EINVAL, "queue cap must be >= 0");
    c->queue_cap = cap;
    return 0;
}

/* Run one command; returns the reply or NULL with err set. */
static redisReply *run(taskq_client *c, tq_cmd *cmd)
{
    int fresh = c->rc == NULL;
    if (ensure_conn(c) < 0)
        return NULL;
    redisReply *r = tq_sconn_run(c->rc, cmd);
    if (r && r->type != REDIS_REPLY_ERROR && cmd->script >= 0)
        c->cached |= 1u << cmd->script; /* EVALSHA worked, or EVAL cached it */
    /* A connection that sat idle may have died with a Redis restart: give it
     * one fresh try. Everything sent through here may run twice (reads, or
     * scripts whose second run is refused or changes nothing). */
    if (!r && !conn_lost(c) && !fresh && ensure_conn(c) == 0) {
        r = tq_sconn_run(c->rc, cmd);
        if (!r)
            conn_lost(c);
    }
    return r;
}

static redisReply *run_fmt(taskq_client *c, int argc, const char **argv)
{
    tq_cmd cmd;
    tq_cmd_init(&cmd);
    for (int i = 0; i < argc; i++)
        tq_cmd_add_str(&cmd, argv[i]);
    redisReply *r = run(c, &cmd);
    tq_cmd_release(&cmd);
    return r;
}

int taskq_client_ping(taskq_client *c)
{
    const char *argv[] = {"PING"};
    redisReply *r = run_fmt(c, 1, argv);
    if (!r)
        return c->err;
    int rc = r->type == REDIS_REPLY_STATUS
                 ? 0
                 : fail(c, TASKQ_EREDIS, "PING failed: %s", r->str ? r->str : "?");
    freeReplyObject(r);
    if (rc == 0)
        ok(c);
    return rc;
}

static int check_queue(taskq_client *c, const char **queue)
{
    if (!*queue)
        *queue = DEFAULT_QUEUE;
    if (!tq_valid_queue(*queue))
        return fail(c, TASKQ_EINVAL, "invalid queue name '%.80s' (1..64 of [0-9A-Za-z_.-])",
                    *queue);
    return 0;
}

static int check_id(taskq_client *c, const char *id)
{
    if (!id || !tq_valid_id(id))
        return fail(c, TASKQ_EINVAL, "invalid task id '%.80s' (1..64 of [0-9A-Za-z_-])",
                    id ? id : "(null)");
    return 0;
}

/* ---- tasks ----------------------------------------------------------- */

static int tfail(taskq_task *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int tfail(taskq_task *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->errstr, sizeof(t->errstr), fmt, ap);
    va_end(ap);
    return TASKQ_EINVAL;
}

taskq_task *taskq_task_new(const char *name)
{
    taskq_task *t = tq_xcalloc(1, sizeof(*t));
    t->args = json_array();
    t->kwargs = json_object();
    t->retries = -1;
    snprintf(t->queue, sizeof(t->queue), "%s", DEFAULT_QUEUE);
    if (name)
        t->name = tq_xstrdup(name);
    return t;
}

void taskq_task_free(taskq_task *t)
{
    if (!t)
        return;
    free(t->name);
    json_decref(t->args);
    json_decref(t->kwargs);
    free(t);
}

taskq_task *taskq_task_dup(const taskq_task *t)
{
    taskq_task *d = tq_xmalloc(sizeof(*d));
    *d = *t;
    d->name = t->name ? tq_xstrdup(t->name) : NULL;
    d->args = json_deep_copy(t->args);
    d->kwargs = json_deep_copy(t->kwargs);
    return d;
}

const char *taskq_task_queue(const taskq_task *t)
{
    return t->queue;
}

const char *taskq_task_errstr(const taskq_task *t)
{
    return t->errstr;
}

int taskq_task_set_name(taskq_task *t, const char *name)
{
    if (!tq_valid_task_name(name))
        return tfail(t, "invalid task name '%.80s' (1..128 printable ASCII, no spaces)",
                     name ? name : "(null)");
    free(t->name);
    t->name = tq_xstrdup(name);
    return 0;
}

static json_t *parse_json(taskq_task *t, const char *json, const char *what)
{
    json_error_t e;
    json_t *v;
    if (!json)
        return tfail(t, "%s: missing JSON", what), NULL;
    v = json_loads(json, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &e);
    if (!v)
        tfail(t, "%s is not valid JSON: %s (text: %.60s)", what, e.text, json);
    return v;
}

int taskq_task_arg_json(taskq_task *t, const char *json)
{
    char what[48];
    snprintf(what, sizeof(what), "argument %zu", json_array_size(t->args) + 1);
    json_t *v = parse_json(t, json, what);
    if (!v)
        return TASKQ_EINVAL;
    json_array_append_new(t->args, v);
    return 0;
}

int taskq_task_args_json(taskq_task *t, const char *json_array)
{
    json_t *v = parse_json(t, json_array, "args");
    if (!v)
        return TASKQ_EINVAL;
    if (!json_is_array(v)) {
        json_decref(v);
        return tfail(t, "args must be a JSON array");
    }
    json_decref(t->args);
    t->args = v;
    return 0;
}

int taskq_task_kwarg_json(taskq_task *t, const char *name, const char *json)
{
    if (!name || !*name)
        return tfail(t, "keyword argument name is empty");
    char what[160];
    snprintf(what, sizeof(what), "keyword argument '%.100s'", name);
    json_t *v = parse_json(t, json, what);
    if (!v)
        return TASKQ_EINVAL;
    json_object_set_new(t->kwargs, name, v);
    return 0;
}

int taskq_task_set_queue(taskq_task *t, const char *queue)
{
    if (!tq_valid_queue(queue))
        return tfail(t, "invalid queue name '%.80s' (1..64 of [0-9A-Za-z_.-])",
                     queue ? queue : "(null)");
    snprintf(t->queue, sizeof(t->queue), "%s", queue);
    return 0;
}

int taskq_task_set_id(taskq_task *t, const char *id)
{
    if (!tq_valid_id(id))
        return tfail(t, "invalid task id '%.80s' (1..64 of [0-9A-Za-z_-])", id ? id : "(null)");
    snprintf(t->id, sizeof(t->id), "%s", id);
    return 0;
}

static int seconds_ms(taskq_task *t, double s, const char *what, int64_t *out)
{
    if (!(s >= 0) || s > 1e9)
        return tfail(t, "%s must be a number of seconds in [0, 1e9]", what);
    *out = (int64_t)(s * 1000.0 + 0.5);
    return 0;
}

int taskq_task_set_countdown(taskq_task *t, double seconds)
{
    return seconds_ms(t, seconds, "countdown", &t->countdown_ms);
}

int taskq_task_set_eta(taskq_task *t, int64_t eta_ms)
{
    if (eta_ms < 0)
        return tfail(t, "eta must be a time after 1970");
    t->eta_ms = eta_ms;
    return 0;
}

int taskq_task_set_expires(taskq_task *t, double seconds)
{
    int rc = seconds_ms(t, seconds, "expires", &t->expires_ms_rel);
    if (rc == 0 && t->expires_ms_rel == 0 && seconds > 0)
        t->expires_ms_rel = 1;
    return rc;
}

int taskq_task_set_retries(taskq_task *t, int retries)
{
    if (retries < 0 || retries > 1000)
        return tfail(t, "retries must be in [0, 1000]");
    t->retries = retries;
    return 0;
}

int taskq_task_set_time_limits(taskq_task *t, double soft, double hard)
{
    int64_t s = 0, h = 0;
    if (seconds_ms(t, soft, "soft time limit", &s) < 0 ||
        seconds_ms(t, hard, "hard time limit", &h) < 0)
        return TASKQ_EINVAL;
    if (s && h && s > h)
        return tfail(t, "soft time limit (%g s) is above the hard one (%g s)", soft, hard);
    t->soft_ms = s;
    t->hard_ms = h;
    return 0;
}

static int apply_seconds(taskq_task *t, json_t *o, const char *field, int64_t *out)
{
    json_t *v = json_object_get(o, field);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_number(v))
        return tfail(t, "\"%s\" must be a number of seconds", field);
    return seconds_ms(t, json_number_value(v), field, out);
}

int taskq_task_apply_json(taskq_task *t, const char *json_object)
{
    json_error_t e;
    int rc = TASKQ_EINVAL;
    json_t *o = json_loads(json_object ? json_object : "", JSON_REJECT_DUPLICATES, &e), *v;
    const char *k;
    if (!o)
        return tfail(t, "not valid JSON: %s", e.text);
    if (!json_is_object(o)) {
        tfail(t, "a task line must be a JSON object");
        goto out;
    }
    json_object_foreach(o, k, v)
    {
        static const char *const known[] = {"task",    "args",       "kwargs",     "queue",
                                            "id",      "countdown",  "eta",        "expires",
                                            "retries", "soft_limit", "hard_limit", NULL};
        int found = 0;
        for (int i = 0; known[i]; i++)
            found |= strcmp(k, known[i]) == 0;
        if (!found) {
            tfail(t, "unknown field \"%.60s\"", k);
            goto out;
        }
    }
    if ((v = json_object_get(o, "task"))) {
        if (!json_is_string(v) || taskq_task_set_name(t, json_string_value(v)) < 0) {
            tfail(t, "\"task\" must be a valid task name");
            goto out;
        }
    }
    if ((v = json_object_get(o, "args"))) {
        if (!json_is_array(v)) {
            tfail(t, "\"args\" must be an array");
            goto out;
        }
        json_decref(t->args);
        t->args = json_incref(v);
    }
    if ((v = json_object_get(o, "kwargs"))) {
        if (!json_is_object(v)) {
            tfail(t, "\"kwargs\" must be an object");
            goto out;
        }
        json_decref(t->kwargs);
        t->kwargs = json_incref(v);
    }
    if ((v = json_object_get(o, "queue")) &&
        (!json_is_string(v) || taskq_task_set_queue(t, json_string_value(v)) < 0))
        goto out;
    if ((v = json_object_get(o, "id")) &&
        (!json_is_string(v) || taskq_task_set_id(t, json_string_value(v)) < 0))
        goto out;
    if ((v = json_object_get(o, "eta")) && !json_is_null(v)) {
        int64_t ms = json_is_integer(v)  ? json_integer_value(v)
                     : json_is_string(v) ? tq_parse_iso8601_ms(json_string_value(v))
                                         : -1;
        if (ms < 0) {
            tfail(t, "\"eta\" must be an ISO 8601 time or ms since the epoch");
            goto out;
        }
        t->eta_ms = ms;
    }
    if ((v = json_object_get(o, "retries")) && !json_is_null(v)) {
        if (!json_is_integer(v) || taskq_task_set_retries(t, (int)json_integer_value(v)) < 0) {
            tfail(t, "\"retries\" must be an integer in [0, 1000]");
            goto out;
        }
    }
    if (apply_seconds(t, o, "countdown", &t->countdown_ms) < 0 ||
        apply_seconds(t, o, "expires", &t->expires_ms_rel) < 0 ||
        apply_seconds(t, o, "soft_limit", &t->soft_ms) < 0 ||
        apply_seconds(t, o, "hard_limit", &t->hard_ms) < 0)
        goto out;
    rc = 0;
out:
    json_decref(o);
    return rc;
}

static sig_entry *sig_find(taskq_client *c, const char *name)
{
    for (size_t i = 0; i < c->nsigs; i++)
        if (strcmp(c->sigs[i].name, name) == 0)
            return &c->sigs[i];
    return NULL;
}

/* Refresh the cached signatures of these tasks' names in one round trip
 * (HMGET on the published-tasks hash). Failing to read them is not an error:
 * the worker checks every call again anyway. */
static void refresh_sigs(taskq_client *c, taskq_task *const *tasks, size_t n)
{
    char key[TQ_KEY_MAX];
    int64_t now = tq_mono_ms();
    tq_cmd cmd;
    tq_cmd_init(&cmd);
    tq_key_global(key, c->prefix, "tasks");
    tq_cmd_add_str(&cmd, "HMGET");
    tq_cmd_add_str(&cmd, key);
    for (size_t i = 0; i < n; i++) {
        const char *name = tasks[i]->name;
        if (!name)
            continue;
        sig_entry *e = sig_find(c, name);
        if (e && now - e->fetched_ms < SIG_CACHE_MS)
            continue;
        int dup = 0;
        for (int k = 2; k < cmd.argc; k++)
            dup |= strcmp(cmd.argv[k], name) == 0;
        if (!dup && cmd.argc < 2 + 64)
            tq_cmd_add_str(&cmd, name);
    }
    if (cmd.argc > 2 && ensure_conn(c) == 0) {
        redisReply *r = tq_sconn_run(c->rc, &cmd);
        if (!r) {
            conn_lost(c);
        } else if (r->type == REDIS_REPLY_ARRAY) {
            for (size_t i = 0; i < r->elements && (int)i + 2 < cmd.argc; i++) {
                const char *name = cmd.argv[i + 2];
                sig_entry *e = sig_find(c, name);
                if (!e) {
                    if (c->nsigs == SIG_CACHE_MAX) {
                        /* Full: recycle the oldest entry. */
                        size_t old = 0;
                        for (size_t k = 1; k < c->nsigs; k++)
                            if (c->sigs[k].fetched_ms < c->sigs[old].fetched_ms)
                                old = k;
                        e = &c->sigs[old];
                        free(e->name);
                        tq_sig_free(e->sig);
                    } else {
                        e = &c->sigs[c->nsigs++];
                    }
                    e->name = tq_xstrdup(name);
                    e->sig = NULL;
                }
                tq_sig_free(e->sig);
                e->sig = NULL;
                e->known = 0;
                e->fetched_ms = now;
                redisReply *v = r->element[i];
                if (v->type != REDIS_REPLY_STRING)
                    continue;
                json_t *info = json_loadb(v->str, v->len, 0, NULL);
                json_t *sj = json_object_get(info, "signature");
                char err[128];
                e->known = info != NULL;
                if (sj && !json_is_null(sj))
                    e->sig = tq_sig_from_json(sj, err, sizeof(err));
                json_decref(info);
            }
        }
        freeReplyObject(r);
    }
    tq_cmd_release(&cmd);
}

/* With a signing key, replace *s (malloc'd message) by its signed envelope. */
static void sign_message(const taskq_client *c, char **s, size_t *len)
{
    if (tq_keyring_count(c->keys) == 0)
        return;
    size_t slen;
    char *signed_s = tq_sign_wrap(c->keys, NULL, *s, *len, &slen);
    free(*s);
    *s = signed_s;
    *len = slen;
}

/* Check, encode and sign t's message into c->msgbuf (from offset 0; valid
 * until the next call). id: t's own id, else the random one it holds on
 * entry (the caller generates ids in bulk). On error returns a code with
 * errstr set. */
static int build_message(taskq_client *c, const taskq_task *t, char id[TASKQ_ID_SIZE])
{
    char err[256];
    if (t->errstr[0])
        return fail(c, TASKQ_EINVAL, "%s", t->errstr);
    if (!t->name || !tq_valid_task_name(t->name))
        return fail(c, TASKQ_EINVAL, "task has no valid name");
    if (c->validate) {
        sig_entry *e = sig_find(c, t->name);
        if (e && e->sig &&
            tq_sig_bind(e->sig, t->name, t->args, t->kwargs, NULL, err, sizeof(err)) < 0)
            return fail(c, TASKQ_EINVAL, "%s", err);
    }
    if (t->id[0])
        snprintf(id, TASKQ_ID_SIZE, "%s", t->id);
    /* Written straight into a reused buffer: no jansson tree per task. */
    int64_t now = tq_now_ms();
    tq_msg_fields f = {.id = id,
                       .task = t->name,
                       .queue = t->queue,
                       .args = t->args,
                       .kwargs = t->kwargs,
                       .created_ms = now,
                       .retries = t->retries,
                       .soft_limit_ms = t->soft_ms,
                       .hard_limit_ms = t->hard_ms};
    if (t->eta_ms || t->countdown_ms)
        f.eta_ms = t->eta_ms > now + t->countdown_ms ? t->eta_ms : now + t->countdown_ms;
    if (t->expires_ms_rel)
        f.expires_ms = now + t->expires_ms_rel;
    tq_jw_reset(&c->msgbuf);
    if (tq_msg_write_new(&c->msgbuf, &f, &c->limits, err, sizeof(err)) < 0)
        return fail(c, TASKQ_ETOOBIG, "%s", err);
    size_t len = c->msgbuf.len;
    if (len > c->limits.max_bytes)
        return fail(c, TASKQ_ETOOBIG, "%s: message of %zu bytes exceeds %zu (limit max_bytes)",
                    t->name, len, c->limits.max_bytes);
    if (tq_keyring_count(c->keys) > 0) {
        char *s = tq_xstrndup(c->msgbuf.buf, len);
        sign_message(c, &s, &len);
        tq_jw_reset(&c->msgbuf);
        tq_jw_raw(&c->msgbuf, s, len);
        free(s);
    }
    return 0;
}

/* The enqueue command for t under a fresh id (taskq_submit_wait pipelines
 * it, with a wait of wait_ms registered). */
static int build_enqueue(taskq_client *c, const taskq_task *t, tq_cmd *cmd, char id[TASKQ_ID_SIZE],
                         int64_t wait_ms)
{
    tq_random_id(id);
    int rc = build_message(c, t, id);
    if (rc < 0)
        return rc;
    tq_cmd_enqueue(cmd, c->prefix, t->queue, id, c->msgbuf.buf, c->msgbuf.len, t->countdown_ms,
                   t->eta_ms, c->queue_cap, 1, wait_ms);
    return 0;
}

/* Task e's integer in the reply to an enqueue (one task: the integer itself)
 * or an enqueue_many of `count` tasks; NULL if the reply is not one. */
static const redisReply *enqueue_reply_code(const tq_cmd *cmd, const redisReply *r, size_t e,
                                            size_t count)
{
    if (!r)
        return NULL;
    if (cmd->script == TQ_SCRIPT_ENQUEUE)
        return r->type == REDIS_REPLY_INTEGER ? r : NULL;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != count ||
        r->element[e]->type != REDIS_REPLY_INTEGER)
        return NULL;
    return r->element[e];
}

/* One task's code from an enqueue or enqueue_many reply (docs/PROTOCOL.md). */
static int enqueue_code(taskq_client *c, long long v, const taskq_task *t, const char *id)
{
    if (v == 1 || v == 2)
        return 0;
    if (v == -1) {
        if (c->resent)
            return 0; /* our own first try got through before the link broke */
        return fail(c, TASKQ_EEXIST, "task id %s is already queued on '%s'", id, t->queue);
    }
    if (v == -2)
        return fail(c, TASKQ_EFULL, "queue '%s' is full (%lld tasks)", t->queue, c->queue_cap);
    return fail(c, TASKQ_EPROTO, "enqueue on '%s': unexpected reply %lld", t->queue, v);
}

int taskq_submit(taskq_client *c, const taskq_task *t, char id[TASKQ_ID_SIZE])
{
    char idbuf[TASKQ_ID_SIZE];
    taskq_task *const tasks[1] = {(taskq_task *)(uintptr_t)t};
    int code = 0;
    int rc = taskq_submit_many(c, tasks, 1, &idbuf, &code);
    if (rc == 0 && id)
        memcpy(id, idbuf, TASKQ_ID_SIZE);
    return rc;
}

#define ENQUEUE_BATCH 256
/* The first call of a submission is smaller, so Redis starts on it sooner. */
#define ENQUEUE_FIRST_BATCH 64

int taskq_submit_many(taskq_client *c, taskq_task *const *tasks, size_t n,
                      char (*ids)[TASKQ_ID_SIZE], int *codes)
{
    int first = 0;
    size_t i, ncmd = 0;
    /* Consecutive tasks of one queue share an enqueue_many call (at most
     * ENQUEUE_BATCH each); all calls go out in one pipelined round trip,
     * each written as soon as it is built so that Redis runs it while the
     * next one is built. */
    tq_cmd *cmds = tq_xcalloc(n ? n : 1, sizeof(*cmds));
    size_t *start = tq_xcalloc(n ? n : 1, sizeof(*start)); /* first task of each call */
    size_t *count = tq_xcalloc(n ? n : 1, sizeof(*count));
    size_t *which = tq_xcalloc(n ? n : 1, sizeof(*which)); /* accepted tasks, in order */
    redisReply **replies = tq_xcalloc(n ? n : 1, sizeof(*replies));
    char(*idv)[TASKQ_ID_SIZE] = tq_xcalloc(n ? n : 1, TASKQ_ID_SIZE);
    char firstmsg[sizeof(c->errstr)] = "";
    size_t nok = 0;

#define NOTE_FAIL(rc)                                                                              \
    do {                                                                                           \
        if (!first) {                                                                              \
            first = (rc);                                                                          \
            snprintf(firstmsg, sizeof(firstmsg), "%s", c->errstr);                                 \
        }                                                                                          \
    } while (0)

    if (c->validate)
        refresh_sigs(c, tasks, n);
    tq_random_ids(idv[0], TASKQ_ID_SIZE, n);
    const char *cur_queue = NULL;
    int cur_fresh = 0;
    /* A single task goes in an enqueue, whose script costs Redis about a
     * fifth less than a one-task enqueue_many (docs/PERFORMANCE.md). */
    const int single = n == 1;
    int fresh_link = 0, linked = -1; /* -1: not connected yet; 0: a send failed */
#define SEND(cmd)                                                                                  \
    do {                                                                                           \
        if (linked < 0) {                                                                          \
            fresh_link = c->rc == NULL;                                                            \
            linked = ensure_conn(c) == 0;                                                          \
        }                                                                                          \
        if (linked)                                                                                \
            linked = tq_sconn_send(c->rc, (cmd)) == 0;                                             \
    } while (0)
    for (i = 0; i < n; i++) {
        int rc = build_message(c, tasks[i], idv[i]);
        if (codes)
            codes[i] = rc;
        if (rc < 0) {
            NOTE_FAIL(rc);
            continue;
        }
        const taskq_task *t = tasks[i];
        /* A call's ids are all generated here (fresh: Redis skips the
         * duplicate check) or not: see docs/PROTOCOL.md#enqueue_many. */
        int fresh = !t->id[0];
        if (single) {
            tq_cmd_init(&cmds[0]);
            tq_cmd_enqueue(&cmds[0], c->prefix, t->queue, idv[i], c->msgbuf.buf, c->msgbuf.len,
                           t->countdown_ms, t->eta_ms, c->queue_cap, fresh, 0);
            start[0] = nok;
            count[0] = 1;
            ncmd = 1;
            which[nok++] = i;
            SEND(&cmds[0]);
            continue;
        }
        if (ncmd == 0 || strcmp(cur_queue, t->queue) != 0 || cur_fresh != fresh ||
            count[ncmd - 1] == (ncmd == 1 ? ENQUEUE_FIRST_BATCH : ENQUEUE_BATCH)) {
            if (ncmd > 0) {
                tq_cmd_enqueue_many_end(&cmds[ncmd - 1]);
                SEND(&cmds[ncmd - 1]);
            }
            tq_cmd_init(&cmds[ncmd]);
            tq_cmd_enqueue_many_begin(&cmds[ncmd], c->prefix, t->queue, c->queue_cap, fresh);
            cur_fresh = fresh;
            start[ncmd] = nok;
            count[ncmd] = 0;
            ncmd++;
            cur_queue = t->queue;
        }
        tq_cmd_enqueue_many_add(&cmds[ncmd - 1], c->prefix, t->queue, idv[i], c->msgbuf.buf,
                                c->msgbuf.len, t->countdown_ms, t->eta_ms);
        count[ncmd - 1]++;
        which[nok++] = i;
    }
    if (ncmd > 0 && !single) {
        tq_cmd_enqueue_many_end(&cmds[ncmd - 1]);
        SEND(&cmds[ncmd - 1]);
    }
#undef SEND
    if (ncmd > 0) {
        int again = 0;
        if (linked && tq_sconn_collect(c->rc, cmds, ncmd, replies) == 0)
            linked = 1;
        else if (c->rc)
            linked = 0;
        if (!linked && c->rc && !conn_lost(c) && !fresh_link) {
            /* The link was stale (e.g. Redis restarted since the last call):
             * send the batch once more on a new one. A task of the first try
             * that did reach Redis is then refused as a duplicate of its own
             * id, which means it is queued: see enqueue_many_code. */
            for (size_t k = 0; k < ncmd; k++) {
                freeReplyObject(replies[k]);
                replies[k] = NULL;
                tq_cmd_enqueue_unfresh(&cmds[k]);
            }
            again = 1;
            if (ensure_conn(c) == 0 && tq_sconn_pipeline(c->rc, cmds, ncmd, replies) < 0)
                conn_lost(c);
        }
        c->resent = again;
        for (size_t k = 0; k < ncmd; k++) {
            redisReply *r = replies[k];
            if (enqueue_reply_code(&cmds[k], r, 0, count[k]))
                c->cached |= 1u << cmds[k].script;
            for (size_t e = 0; e < count[k]; e++) {
                size_t ti = which[start[k] + e];
                const redisReply *v = enqueue_reply_code(&cmds[k], r, e, count[k]);
                int rc;
                if (!r) {
                    rc = TASKQ_ECONN;
                } else if (v) {
                    rc = enqueue_code(c, v->integer, tasks[ti], idv[ti]);
                } else {
                    rc = fail(c, TASKQ_EREDIS, "enqueue on '%s' failed: %s", tasks[ti]->queue,
                              r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
                }
                if (codes)
                    codes[ti] = rc;
                if (rc < 0)
                    NOTE_FAIL(rc);
            }
            freeReplyObject(r);
        }
        c->resent = 0;
    }
#undef NOTE_FAIL
    if (ids)
        memcpy(ids, idv, n * TASKQ_ID_SIZE);
    for (size_t k = 0; k < ncmd; k++)
        tq_cmd_release(&cmds[k]);
    free(cmds);
    free(start);
    free(count);
    free(which);
    free(replies);
    free(idv);
    if (first)
        return fail(c, first, "%s", firstmsg);
    ok(c);
    return 0;
}

/* ---- results --------------------------------------------------------- */

/* Extract the text of the top-level "result" member from a compact record
 * as the worker wrote it, so numbers come back exactly as the task returned
 * them; NULL when it cannot be found that way. */
static char *raw_result(const char *text, const json_t *v)
{
    const char *p = strstr(text, ",\"result\":");
    if (!p)
        return NULL;
    p += 10;
    size_t n = strlen(p);
    if (n < 2 || p[n - 1] != '}')
        return NULL;
    char *s = tq_xstrndup(p, n - 1);
    json_t *back = json_loads(s, JSON_DECODE_ANY, NULL);
    int same = back && json_equal(back, v);
    json_decref(back);
    if (!same) {
        free(s);
        return NULL;
    }
    return s;
}

/* raw: the record's text as stored (kept verbatim), or NULL to encode it. */
static taskq_result *result_from_record(json_t *rec, taskq_state st, const char *raw)
{
    taskq_result *r = tq_xcalloc(1, sizeof(*r));
    r->rec = rec;
    r->state = st;
    r->json = raw ? tq_xstrdup(raw) : json_dumps(rec, JSON_COMPACT | JSON_REAL_PRECISION(15));
    json_t *v = json_object_get(rec, "result");
    if (st == TASKQ_SUCCESS) {
        r->value = raw && v ? raw_result(raw, v) : NULL;
        if (!r->value)
            r->value = json_dumps(v ? v : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
    }
    return r;
}

/* A record for a state that has no stored record (PENDING, STARTED). */
static taskq_result *result_derived(const char *queue, const char *id, taskq_state st)
{
    json_t *rec = json_pack("{s:i, s:s, s:s, s:s}", "v", 1, "id", id, "queue", queue, "state",
                            taskq_state_name(st));
    return result_from_record(rec, st, NULL);
}

static int parse_record(taskq_client *c, const char *s, size_t len, json_t **rec, taskq_state *st)
{
    json_error_t e;
    json_t *o = json_loadb(s, len, 0, &e);
    if (!o || !json_is_object(o) ||
        state_parse(json_string_value(json_object_get(o, "state")), st) < 0) {
        json_decref(o);
        return fail(c, TASKQ_EPROTO, "result record is not protocol v1 JSON");
    }
    *rec = o;
    return 0;
}

/* Run the state script: fills *out with the record or a derived state. */
static int state_reply(taskq_client *c, const char *queue, const char *id, const redisReply *r,
                       taskq_result **out);

/* The task's state in one round trip: the state script, or with watch_ms >
 * 0 the watch script (the same reply; it also registers a wait). */
static int fetch_state(taskq_client *c, const char *queue, const char *id, int64_t watch_ms,
                       taskq_result **out)
{
    tq_cmd cmd;
    int rc;
    *out = NULL;
    if ((rc = check_queue(c, &queue)) < 0 || (rc = check_id(c, id)) < 0)
        return rc;
    tq_cmd_init(&cmd);
    if (watch_ms > 0)
        tq_cmd_watch(&cmd, c->prefix, queue, id, watch_ms);
    else
        tq_cmd_state(&cmd, c->prefix, queue, id);
    redisReply *r = run(c, &cmd);
    tq_cmd_release(&cmd);
    if (!r)
        return c->err;
    rc = state_reply(c, queue, id, r, out);
    freeReplyObject(r);
    return rc;
}

int taskq_result_get(taskq_client *c, const char *queue, const char *id, taskq_result **out)
{
    int rc = fetch_state(c, queue, id, 0, out);
    if (rc == 0)
        ok(c);
    return rc;
}

int taskq_state_get(taskq_client *c, const char *queue, const char *id, taskq_state *out)
{
    taskq_result *r;
    int rc = taskq_result_get(c, queue, id, &r);
    if (rc == 0)
        *out = r->state;
    taskq_result_free(r);
    return rc;
}

static struct timeval tv_of(double s)
{
    struct timeval tv = {(time_t)s, (suseconds_t)((s - (double)(time_t)s) * 1e6)};
    return tv;
}

/* A stored record (JSON text) into *out. */
static int record_result(taskq_client *c, const char *s, size_t len, taskq_result **out)
{
    json_t *rec = NULL;
    taskq_state st = TASKQ_PENDING;
    int rc = parse_record(c, s, len, &rec, &st);
    if (rc < 0)
        return rc;
    char *raw = tq_xstrndup(s, len);
    *out = result_from_record(rec, st, raw);
    free(raw);
    return 0;
}

/* Interpret a state-script reply into *out (see fetch_state). */
static int state_reply(taskq_client *c, const char *queue, const char *id, const redisReply *r,
                       taskq_result **out)
{
    *out = NULL;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3)
        return fail(c, TASKQ_EREDIS, "state of %s failed: %s", id,
                    r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    if (r->element[0]->type == REDIS_REPLY_STRING) {
        return record_result(c, r->element[0]->str, r->element[0]->len, out);
    } else if (r->element[1]->integer == 1) {
        *out = result_derived(queue, id, TASKQ_STARTED);
    } else if (r->element[2]->integer == 1) {
        *out = result_derived(queue, id, TASKQ_PENDING);
    } else {
        return fail(c, TASKQ_ENOTFOUND,
                    "no task %s on queue '%s' (never submitted, or its result expired)", id, queue);
    }
    return 0;
}

/* The window of a blocking wait with `left` seconds to go (< 0: no limit). */
static double wait_window(double left)
{
    if (left < 0 || left > WAIT_WINDOW_S)
        return WAIT_WINDOW_S;
    return left < 0.001 ? 0.001 : left;
}

/* One round trip: [pre (an enqueue that registers the wait) or the watch
 * script, BLMOVE on the done list for the window of `left` seconds (< 0: no
 * limit)]. The BLMOVE blocks in Redis until the task reaches a final state
 * (an ack pushes the record to the done list of a registered task; rotating
 * the list onto itself leaves it for other waiters) and returns the record
 * itself; only when the window ends first (or the enqueue was refused) does
 * a second round trip read the state. *pre_reply receives pre's reply when
 * pre is given (caller frees). */
static int block_then_state(taskq_client *c, const char *queue, const char *id, double left,
                            const tq_cmd *pre, redisReply **pre_reply, taskq_result **out)
{
    char key[TQ_KEY_MAX], tmo[32];
    tq_cmd cmds[2];
    redisReply *replies[2] = {NULL, NULL};
    int rc;
    double win = wait_window(left);
    *out = NULL;
    if ((rc = ensure_conn(c)) < 0)
        return rc;
    if (!pre && !(c->cached & (1u << TQ_SCRIPT_WATCH))) {
        /* Not known to be cached: a NOSCRIPT in the pipeline would leave
         * the BLMOVE unregistered, blocking for its whole window. This
         * round trip registers (and caches the script) on its own. */
        if ((rc = fetch_state(c, queue, id, (int64_t)(win * 1000.0), out)) < 0 ||
            taskq_state_is_final((*out)->state))
            return rc;
        taskq_result_free(*out);
        *out = NULL;
    }
    if (pre) {
        cmds[0] = *pre; /* shallow copy: the caller keeps ownership */
    } else {
        tq_cmd_init(&cmds[0]);
        tq_cmd_watch(&cmds[0], c->prefix, queue, id, (int64_t)(win * 1000.0));
    }
    tq_key_task(key, c->prefix, queue, "done", id);
    snprintf(tmo, sizeof(tmo), "%.3f", win);
    tq_cmd *bl = &cmds[1];
    tq_cmd_init(bl);
    const char *argv[] = {"BLMOVE", key, key, "RIGHT", "LEFT", tmo};
    for (int i = 0; i < 6; i++)
        tq_cmd_add_str(bl, argv[i]);
    redisSetTimeout(c->rc, tv_of(win + c->timeout));
    if (tq_sconn_pipeline(c->rc, cmds, 2, replies) < 0) {
        conn_lost(c);
        rc = TASKQ_ECONN;
    } else {
        redisSetTimeout(c->rc, tv_of(c->timeout));
        redisReply *br = replies[1];
        if (br->type == REDIS_REPLY_ERROR)
            rc = fail(c, TASKQ_EREDIS, "waiting for %s failed: %s", id, br->str);
        else if (br->type == REDIS_REPLY_STRING && strcmp(br->str, "REFUSED") != 0)
            rc = record_result(c, br->str, br->len, out);
        else /* the window ended, or REFUSED: what is the state now? */
            rc = fetch_state(c, queue, id, 0, out);
    }
    if (pre) {
        *pre_reply = replies[0];
        replies[0] = NULL;
    } else {
        tq_cmd_release(&cmds[0]);
    }
    for (int i = 0; i < 2; i++)
        freeReplyObject(replies[i]);
    tq_cmd_release(bl);
    return rc;
}

int taskq_result_wait(taskq_client *c, const char *queue, const char *id, double timeout,
                      taskq_result **out)
{
    int64_t deadline = timeout >= 0 ? tq_mono_ms() + (int64_t)(timeout * 1000.0) : -1;
    taskq_result *r;
    int rc;
    *out = NULL;
    if (!queue)
        queue = DEFAULT_QUEUE;
    /* First a plain read (an unknown id must not block until the time-out),
     * then block and read again in one round trip until final or late. */
    if ((rc = fetch_state(c, queue, id, 0, &r)) < 0)
        return rc;
    for (;;) {
        if (taskq_state_is_final(r->state)) {
            *out = r;
            ok(c);
            return 0;
        }
        double left = -1;
        if (deadline >= 0) {
            int64_t ms = deadline - tq_mono_ms();
            if (ms <= 0) {
                *out = r;
                return fail(c, TASKQ_ETIMEDOUT, "task %s is still %s after %.3g s", id,
                            taskq_state_name(r->state), timeout);
            }
            left = (double)ms / 1000.0;
        }
        taskq_result_free(r);
        if ((rc = block_then_state(c, queue, id, left, NULL, NULL, &r)) < 0)
            return rc;
    }
}

int taskq_submit_wait(taskq_client *c, const taskq_task *t, double timeout, char id[TASKQ_ID_SIZE],
                      taskq_result **out)
{
    char idbuf[TASKQ_ID_SIZE];
    int rc;
    unsigned need = 1u << TQ_SCRIPT_ENQUEUE;
    *out = NULL;
    if (!c->rc || (c->cached & need) != need || t->id[0] ||
        (c->validate && (!t->name || !sig_find(c, t->name)))) {
        /* Two steps for: a fresh connection (a NOSCRIPT enqueue must not sit
         * behind a blocking wait), an explicit id (a duplicate would leave
         * the wait blocked on another task), a signature not fetched yet. */
        if ((rc = taskq_submit(c, t, idbuf)) < 0)
            return rc;
        if (id)
            memcpy(id, idbuf, TASKQ_ID_SIZE);
        return taskq_result_wait(c, t->queue, idbuf, timeout, out);
    }
    int64_t t0 = tq_mono_ms();
    double win = wait_window(timeout);
    tq_cmd enq;
    tq_cmd_init(&enq);
    if ((rc = build_enqueue(c, t, &enq, idbuf, (int64_t)(win * 1000.0))) < 0) {
        tq_cmd_release(&enq);
        return rc;
    }
    if (id)
        memcpy(id, idbuf, TASKQ_ID_SIZE);
    redisReply *er = NULL;
    rc = block_then_state(c, t->queue, idbuf, win, &enq, &er, out);
    const redisReply *v = enqueue_reply_code(&enq, er, 0, 1);
    tq_cmd_release(&enq);
    if (er) {
        int erc = v ? enqueue_code(c, v->integer, t, idbuf)
                    : fail(c, TASKQ_EREDIS, "enqueue on '%s' failed: %s", t->queue,
                           er->type == REDIS_REPLY_ERROR ? er->str : "unexpected reply");
        freeReplyObject(er);
        if (erc < 0) {
            taskq_result_free(*out);
            *out = NULL;
            return erc;
        }
    }
    if (rc < 0)
        return rc;
    if (!taskq_state_is_final((*out)->state)) {
        /* The first window ended: wait on for the rest of the time. */
        double left = timeout < 0 ? -1 : timeout - (double)(tq_mono_ms() - t0) / 1000.0;
        if (timeout < 0 || left > 0) {
            taskq_result_free(*out);
            *out = NULL;
            return taskq_result_wait(c, t->queue, idbuf, left, out);
        }
        return fail(c, TASKQ_ETIMEDOUT, "task %s is still %s after %.3g s", idbuf,
                    taskq_state_name((*out)->state), timeout);
    }
    ok(c);
    return 0;
}

int taskq_cancel(taskq_client *c, const char *queue, const char *id)
{
    tq_cmd cmd;
    int rc;
    if ((rc = check_queue(c, &queue)) < 0 || (rc = check_id(c, id)) < 0)
        return rc;
    json_t *rec = json_pack("{s:i, s:s, s:s, s:s, s:{s:s, s:s}, s:I}", "v", 1, "id", id, "queue",
                            queue, "state", "REVOKED", "error", "type", "Revoked", "message",
                            "cancelled before it started", "finished_ms", (json_int_t)tq_now_ms());
    char *s = json_dumps(rec, JSON_COMPACT);
    json_decref(rec);
    tq_cmd_init(&cmd);
    tq_cmd_revoke(&cmd, c->prefix, queue, id, s, REVOKED_TTL_MS);
    free(s);
    redisReply *r = run(c, &cmd);
    tq_cmd_release(&cmd);
    if (!r)
        return c->err;
    if (r->type != REDIS_REPLY_INTEGER)
        rc = fail(c, TASKQ_EREDIS, "cancel %s failed: %s", id,
                  r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    else if (r->integer == 1)
        rc = 0;
    else if (r->integer == -1)
        rc = fail(c, TASKQ_ESTATE, "task %s has already started; it cannot be cancelled", id);
    else if (r->integer == -2)
        rc = fail(c, TASKQ_ESTATE, "task %s has already finished", id);
    else
        rc = fail(c, TASKQ_ENOTFOUND, "no task %s on queue '%s'", id, queue);
    freeReplyObject(r);
    if (rc == 0)
        ok(c);
    return rc;
}

void taskq_result_free(taskq_result *r)
{
    if (!r)
        return;
    json_decref(r->rec);
    free(r->json);
    free(r->value);
    free(r);
}

taskq_state taskq_result_state(const taskq_result *r)
{
    return r->state;
}

static const char *rec_str(const taskq_result *r, const char *field)
{
    return json_string_value(json_object_get(r->rec, field));
}

const char *taskq_result_id(const taskq_result *r)
{
    return rec_str(r, "id");
}

const char *taskq_result_task(const taskq_result *r)
{
    return rec_str(r, "task");
}

const char *taskq_result_value(const taskq_result *r)
{
    return r->value;
}

const char *taskq_result_error_type(const taskq_result *r)
{
    return json_string_value(json_object_get(json_object_get(r->rec, "error"), "type"));
}

const char *taskq_result_error_message(const taskq_result *r)
{
    return json_string_value(json_object_get(json_object_get(r->rec, "error"), "message"));
}

int taskq_result_attempts(const taskq_result *r)
{
    return (int)json_integer_value(json_object_get(r->rec, "attempts"));
}

const char *taskq_result_worker(const taskq_result *r)
{
    return rec_str(r, "worker");
}

const char *taskq_result_json(const taskq_result *r)
{
    return r->json;
}

int taskq_tasks_list(taskq_client *c, char **json)
{
    char key[TQ_KEY_MAX];
    *json = NULL;
    tq_key_global(key, c->prefix, "tasks");
    const char *argv[] = {"HGETALL", key};
    redisReply *r = run_fmt(c, 2, argv);
    if (!r)
        return c->err;
    int rc = 0;
    if (r->type != REDIS_REPLY_ARRAY) {
        rc = fail(c, TASKQ_EREDIS, "listing tasks failed: %s",
                  r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    } else {
        json_t *arr = json_array();
        for (size_t i = 0; i + 1 < r->elements; i += 2) {
            json_t *info = json_loadb(r->element[i + 1]->str, r->element[i + 1]->len, 0, NULL);
            if (json_is_object(info))
                json_array_append(arr, info);
            json_decref(info);
        }
        *json = json_dumps(arr, JSON_COMPACT);
        json_decref(arr);
        ok(c);
    }
    freeReplyObject(r);
    return rc;
}

/* ---- dead letters ------------------------------------------------------ */

static int dead_keys(taskq_client *c, const char **queue, char dead[TQ_KEY_MAX],
                     char deadmsg[TQ_KEY_MAX])
{
    int rc = check_queue(c, queue);
    if (rc < 0)
        return rc;
    tq_key_queue(dead, c->prefix, *queue, "dead");
    tq_key_queue(deadmsg, c->prefix, *queue, "deadmsg");
    return 0;
}

int taskq_dead_list(taskq_client *c, const char *queue, size_t max, char **json)
{
    char dead[TQ_KEY_MAX], deadmsg[TQ_KEY_MAX], stop[32];
    int rc;
    *json = NULL;
    if ((rc = dead_keys(c, &queue, dead, deadmsg)) < 0)
        return rc;
    snprintf(stop, sizeof(stop), "%zd", max ? (ssize_t)max - 1 : (ssize_t)-1);
    const char *argv[] = {"ZREVRANGE", dead, "0", stop};
    redisReply *ids = run_fmt(c, 4, argv);
    if (!ids)
        return c->err;
    json_t *arr = json_array();
    rc = 0;
    if (ids->type != REDIS_REPLY_ARRAY) {
        rc = fail(c, TASKQ_EREDIS, "listing dead letters failed");
        goto out;
    }
    for (size_t i = 0; i < ids->elements; i++) {
        const char *hargv[] = {"HGET", deadmsg, ids->element[i]->str};
        redisReply *e = run_fmt(c, 3, hargv);
        if (!e) {
            rc = c->err;
            goto out;
        }
        json_t *entry = e->type == REDIS_REPLY_STRING ? json_loadb(e->str, e->len, 0, NULL) : NULL;
        freeReplyObject(e);
        json_t *item = json_object();
        json_object_set_new(item, "id", json_string(ids->element[i]->str));
        if (entry) {
            json_object_set(item, "reason", json_object_get(entry, "reason"));
            json_object_set(item, "at_ms", json_object_get(entry, "at_ms"));
            const char *raw = json_string_value(json_object_get(entry, "message"));
            json_t *m = raw ? json_loads(raw, 0, NULL) : NULL;
            if (json_is_string(json_object_get(m, "task")))
                json_object_set(item, "task", json_object_get(m, "task"));
            json_decref(m);
            json_decref(entry);
        }
        json_array_append_new(arr, item);
    }
    *json = json_dumps(arr, JSON_COMPACT);
    ok(c);
out:
    json_decref(arr);
    freeReplyObject(ids);
    return rc;
}

int taskq_dead_show(taskq_client *c, const char *queue, const char *id, char **json)
{
    char dead[TQ_KEY_MAX], deadmsg[TQ_KEY_MAX];
    int rc;
    *json = NULL;
    if ((rc = dead_keys(c, &queue, dead, deadmsg)) < 0 || (rc = check_id(c, id)) < 0)
        return rc;
    const char *argv[] = {"HGET", deadmsg, id};
    redisReply *r = run_fmt(c, 3, argv);
    if (!r)
        return c->err;
    if (r->type == REDIS_REPLY_STRING) {
        *json = tq_xstrndup(r->str, r->len);
        ok(c);
    } else {
        rc = fail(c, TASKQ_ENOTFOUND, "no dead-lettered task %s on queue '%s'", id, queue);
    }
    freeReplyObject(r);
    return rc;
}

int taskq_dead_requeue(taskq_client *c, const char *queue, const char *id)
{
    char *entry_s = NULL, err[256];
    json_t *entry = NULL;
    tq_msg *m = NULL;
    int rc = taskq_dead_show(c, queue, id, &entry_s);
    if (rc < 0)
        return rc;
    if (!queue)
        queue = DEFAULT_QUEUE;
    entry = json_loads(entry_s, 0, NULL);
    const char *raw = json_string_value(json_object_get(entry, "message")), *body = NULL;
    size_t bodylen = 0;
    /* Strip (not verify) a signature envelope: the message is re-signed
     * with this client's key below. */
    if (raw && tq_sign_unwrap(NULL, raw, strlen(raw), &body, &bodylen, NULL, err, sizeof(err)) !=
                   TQ_SIGN_OK)
        raw = NULL;
    if (!raw || tq_msg_decode(body, bodylen, &c->limits, &m, err, sizeof(err)) != TQ_MSG_OK) {
        rc = fail(c, TASKQ_EINVAL,
                  "dead-lettered task %s cannot be requeued: its message is not a valid task (%s)",
                  id, raw ? err : "no message stored");
        goto out;
    }
    tq_msg_set_int(m, "attempts", 0);
    json_object_del(m->root, "errors");
    size_t len;
    char *s = tq_msg_encode(m, &len);
    sign_message(c, &s, &len);
    tq_cmd cmd;
    tq_cmd_init(&cmd);
    tq_cmd_dead_requeue(&cmd, c->prefix, queue, id, s, len);
    free(s);
    redisReply *r = run(c, &cmd);
    tq_cmd_release(&cmd);
    if (!r) {
        rc = c->err;
        goto out;
    }
    if (r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
        rc = 0;
        ok(c);
    } else {
        rc = fail(c, r->type == REDIS_REPLY_INTEGER ? TASKQ_ENOTFOUND : TASKQ_EREDIS,
                  "requeue of dead-lettered task %s failed%s%s", id,
                  r->type == REDIS_REPLY_ERROR ? ": " : "",
                  r->type == REDIS_REPLY_ERROR ? r->str : "");
    }
    freeReplyObject(r);
out:
    tq_msg_free(m);
    json_decref(entry);
    free(entry_s);
    return rc;
}

int taskq_dead_purge(taskq_client *c, const char *queue, const char *id, size_t *removed)
{
    char dead[TQ_KEY_MAX], deadmsg[TQ_KEY_MAX];
    int rc;
    if (removed)
        *removed = 0;
    if ((rc = dead_keys(c, &queue, dead, deadmsg)) < 0)
        return rc;
    if (id && (rc = check_id(c, id)) < 0)
        return rc;
    redisReply *r;
    if (id) {
        const char *argv[] = {"ZREM", dead, id};
        r = run_fmt(c, 3, argv);
        if (r && r->type == REDIS_REPLY_INTEGER && removed)
            *removed = (size_t)r->integer;
        freeReplyObject(r);
        const char *hargv[] = {"HDEL", deadmsg, id};
        r = r ? run_fmt(c, 3, hargv) : NULL;
    } else {
        const char *zargv[] = {"ZCARD", dead};
        r = run_fmt(c, 2, zargv);
        if (r && r->type == REDIS_REPLY_INTEGER && removed)
            *removed = (size_t)r->integer;
        freeReplyObject(r);
        const char *dargv[] = {"DEL", dead, deadmsg};
        r = r ? run_fmt(c, 3, dargv) : NULL;
    }
    if (!r)
        return c->err;
    freeReplyObject(r);
    ok(c);
    return 0;
}
