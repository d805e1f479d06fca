/* tq_cmd: argument vectors for Redis. Every builder here mirrors the KEYS and
 * ARGV lists written in docs/PROTOCOL.md#scripts and at the top of each
 * broker/lua/<script>.lua file; change the three together. */
#include "tq_cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/tq_util.h"
#include "tq_keys.h"

void tq_cmd_init(tq_cmd *c)
{
    memset(c, 0, sizeof(*c));
    c->script = -1;
}

void tq_cmd_clear(tq_cmd *c)
{
    for (int i = 0; i < c->argc; i++)
        free(c->argv[i]);
    c->argc = 0;
    c->script = -1;
    c->batch_keys = 0;
}

void tq_cmd_release(tq_cmd *c)
{
    tq_cmd_clear(c);
    free(c->argv);
    free(c->argvlen);
}

void tq_cmd_add(tq_cmd *c, const char *s, size_t len)
{
    if (c->argc == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->argv = tq_xrealloc(c->argv, (size_t)c->cap * sizeof(*c->argv));
        c->argvlen = tq_xrealloc(c->argvlen, (size_t)c->cap * sizeof(*c->argvlen));
    }
    c->argv[c->argc] = tq_xstrndup(s, len);
    c->argvlen[c->argc] = len;
    c->argc++;
}

void tq_cmd_add_str(tq_cmd *c, const char *s)
{
    tq_cmd_add(c, s, strlen(s));
}

void tq_cmd_add_int(tq_cmd *c, long long v)
{
    char buf[32];
    tq_cmd_add(c, buf, tq_fmt_ll(buf, v));
}

void tq_cmd_script(tq_cmd *c, tq_script_id s, int numkeys)
{
    tq_cmd_clear(c);
    c->script = (int)s;
    tq_cmd_add_str(c, "EVALSHA");
    tq_cmd_add_str(c, tq_scripts[s].sha);
    tq_cmd_add_int(c, numkeys);
}

void tq_cmd_set_numkeys(tq_cmd *c, int numkeys)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%d", numkeys);
    free(c->argv[2]);
    c->argv[2] = tq_xstrndup(buf, (size_t)n);
    c->argvlen[2] = (size_t)n;
}

void tq_cmd_to_eval(tq_cmd *c)
{
    if (c->script < 0 || c->argc < 2 || strcmp(c->argv[0], "EVALSHA") != 0)
        return;
    const char *body = tq_scripts[c->script].body;
    free(c->argv[0]);
    free(c->argv[1]);
    c->argv[0] = tq_xstrdup("EVAL");
    c->argvlen[0] = 4;
    c->argv[1] = tq_xstrdup(body);
    c->argvlen[1] = strlen(body);
}

void tq_cmd_wake_channel(char *buf, const char *prefix, const char *queue)
{
    tq_key_queue(buf, prefix, queue, "wake");
}

static void add_qkey(tq_cmd *c, const char *prefix, const char *queue, const char *kind)
{
    char k[TQ_KEY_MAX];
    tq_key_queue(k, prefix, queue, kind);
    tq_cmd_add_str(c, k);
}

static void add_tkey(tq_cmd *c, const char *prefix, const char *queue, const char *kind,
                     const char *id)
{
    char k[TQ_KEY_MAX];
    tq_key_task(k, prefix, queue, kind, id);
    tq_cmd_add_str(c, k);
}

/* A fetch's entry in leases: "<token> <wid>". A worker id too long for the
 * buffer (never one taskq makes) names no lease: the empty one is fenced
 * out. */
static void add_lease(tq_cmd *c, long long token, const char *wid)
{
    char buf[TQ_KEY_MAX];
    int len = snprintf(buf, sizeof(buf), "%lld %s", token, wid);
    tq_cmd_add(c, buf, len > 0 && (size_t)len < sizeof(buf) ? (size_t)len : 0);
}

static void add_wake(tq_cmd *c, const char *prefix, const char *queue)
{
    char k[TQ_KEY_MAX];
    tq_cmd_wake_channel(k, prefix, queue);
    tq_cmd_add_str(c, k);
}

void tq_cmd_enqueue(tq_cmd *c, const char *prefix, const char *queue, const char *id,
                    const char *msg, size_t msglen, int64_t delay_ms, int64_t eta_ms, long long cap,
                    int fresh, int64_t wait_ms)
{
    /* The last three keys only when used: a user's id (old records go) or a
     * waiter pipelined behind (registered here). Each costs Redis a Lua
     * string, and this runs once per submitted task. */
    int more = !fresh || wait_ms > 0;
    tq_cmd_script(c, TQ_SCRIPT_ENQUEUE, more ? 7 : 4);
    add_qkey(c, prefix, queue, "msg");
    add_qkey(c, prefix, queue, "pending");
    add_qkey(c, prefix, queue, "delayed");
    add_tkey(c, prefix, queue, "done", id);
    if (more) {
        add_qkey(c, prefix, queue, "results");
        add_qkey(c, prefix, queue, "waiting");
        add_tkey(c, prefix, queue, "result", id);
    }
    tq_cmd_add_str(c, id);
    tq_cmd_add(c, msg, msglen);
    tq_cmd_add_int(c, cap);
    add_wake(c, prefix, queue);
    tq_cmd_add_int(c, fresh);
    if (wait_ms > 0 || delay_ms != 0 || eta_ms != 0)
        tq_cmd_add_int(c, wait_ms > 0 ? wait_ms : 0);
    if (delay_ms != 0 || eta_ms != 0) {
        tq_cmd_add_int(c, delay_ms);
        tq_cmd_add_int(c, eta_ms);
    }
}

static void regroup(tq_cmd *c, int fixed_keys, int fixed_args, int per_task, int keys_per_task);

/* Keys and arguments are collected per task (the keys, then id, message,
 * delay, eta) and regrouped at the end. Ids chosen by the user (not fresh)
 * have their old records deleted: the results index, then result and done
 * per task; fresh ids need none of it: docs/PROTOCOL.md#enqueue_many. */
void tq_cmd_enqueue_many_begin(tq_cmd *c, const char *prefix, const char *queue, long long cap,
                               int fresh)
{
    tq_cmd_script(c, TQ_SCRIPT_ENQUEUE_MANY, fresh ? 3 : 4);
    c->batch_keys = !fresh ? 2 : 0;
    add_qkey(c, prefix, queue, "msg");
    add_qkey(c, prefix, queue, "pending");
    add_qkey(c, prefix, queue, "delayed");
    if (!fresh)
        add_qkey(c, prefix, queue, "results");
    tq_cmd_add_int(c, cap);
    add_wake(c, prefix, queue);
    tq_cmd_add_int(c, fresh != 0);
    tq_cmd_add_int(c, 0); /* n, fixed in tq_cmd_enqueue_many_end */
}

void tq_cmd_enqueue_many_add(tq_cmd *c, const char *prefix, const char *queue, const char *id,
                             const char *msg, size_t msglen, int64_t delay_ms, int64_t eta_ms)
{
    if (c->batch_keys == 2) {
        add_tkey(c, prefix, queue, "result", id);
        add_tkey(c, prefix, queue, "done", id);
    }
    tq_cmd_add_str(c, id);
    tq_cmd_add(c, msg, msglen);
    tq_cmd_add_int(c, delay_ms);
    tq_cmd_add_int(c, eta_ms);
}

/* A call in which no task has a delay or an eta leaves out every task's two
 * zeros: Redis turns each argument into a Lua string, and most calls have
 * none. Before regroup the tasks start at `head`, `per` arguments each, the
 * last two of which are delay and eta. */
static int many_untime(tq_cmd *c, int head, int per)
{
    for (int a = head + per - 2; a < c->argc; a += per)
        if (strcmp(c->argv[a], "0") != 0 || strcmp(c->argv[a + 1], "0") != 0)
            return 0;
    int o = head;
    for (int a = head; a < c->argc; a += per) {
        for (int j = 0; j < per - 2; j++) {
            c->argv[o] = c->argv[a + j];
            c->argvlen[o++] = c->argvlen[a + j];
        }
        free(c->argv[a + per - 2]);
        free(c->argv[a + per - 1]);
    }
    c->argc = o;
    return 1;
}

void tq_cmd_enqueue_many_end(tq_cmd *c)
{
    const int kpt = c->batch_keys, fixed = kpt ? 4 : 3;
    /* EVALSHA sha numkeys, msg, pending, delayed[, results], cap, wake, fresh, n */
    int untimed = many_untime(c, 3 + fixed + 4, kpt + 4);
    regroup(c, fixed, 4, kpt + (untimed ? 2 : 4), kpt);
}

void tq_cmd_enqueue_unfresh(tq_cmd *c)
{
    /* EVALSHA sha numkeys, KEYS, then fresh at ARGV[3] (enqueue_many: cap,
     * wake, fresh) or ARGV[5] (enqueue: id, message, cap, wake, fresh).
     * numkeys is our own decimal text, so it parses. */
    int nargs = c->script == TQ_SCRIPT_ENQUEUE_MANY ? 3 : c->script == TQ_SCRIPT_ENQUEUE ? 5 : 0;
    long nkeys = strtol(c->argv[2], NULL, 10);
    if (nargs == 0 || nkeys < 3 || nkeys > c->argc - 3 - nargs)
        return;
    int at = 3 + (int)nkeys + nargs - 1;
    if (c->argv[at][0] != '1')
        return;
    /* Same layout (no result keys), but the id is checked. */
    c->argv[at][0] = '2';
}

void tq_cmd_fetch(tq_cmd *c, const char *prefix, const char *queue, const char *wid, int max,
                  int64_t lease_ms, int promote_max)
{
    tq_cmd_script(c, TQ_SCRIPT_FETCH, 9);
    add_qkey(c, prefix, queue, "pending");
    add_qkey(c, prefix, queue, "msg");
    add_qkey(c, prefix, queue, "held");
    add_qkey(c, prefix, queue, "leases");
    add_qkey(c, prefix, queue, "fence");
    add_qkey(c, prefix, queue, "delayed");
    add_qkey(c, prefix, queue, "lost");
    add_qkey(c, prefix, queue, "dead");
    add_qkey(c, prefix, queue, "deadmsg");
    tq_cmd_add_str(c, wid);
    tq_cmd_add_int(c, max);
    tq_cmd_add_int(c, lease_ms);
    tq_cmd_add_int(c, promote_max);
}

/* Scripts that take a batch (ack, enqueue_many) are built task by task:
 * after the fixed keys and arguments, each task appends `per_task`
 * arguments of which the first `keys_per_task` are keys. Redis wants every
 * key before any argument, so this moves the tasks' keys after the fixed
 * keys, then the fixed arguments (the last of which is n, the task count),
 * then the tasks' other arguments, and fixes numkeys and n. */
static void regroup(tq_cmd *c, int fixed_keys, int fixed_args, int per_task, int keys_per_task)
{
    const int head = 3 + fixed_keys + fixed_args; /* EVALSHA sha numkeys, keys, args */
    int n = (c->argc - head) / per_task;
    char **argv = tq_xmalloc((size_t)c->argc * sizeof(*argv));
    size_t *lens = tq_xmalloc((size_t)c->argc * sizeof(*lens));
    int o = 0;
    for (int i = 0; i < 3 + fixed_keys; i++)
        argv[o] = c->argv[i], lens[o++] = c->argvlen[i];
    for (int t = 0; t < n; t++)
        for (int j = 0; j < keys_per_task; j++)
            argv[o] = c->argv[head + t * per_task + j],
            lens[o++] = c->argvlen[head + t * per_task + j];
    for (int i = 3 + fixed_keys; i < head; i++)
        argv[o] = c->argv[i], lens[o++] = c->argvlen[i];
    for (int t = 0; t < n; t++)
        for (int j = keys_per_task; j < per_task; j++)
            argv[o] = c->argv[head + t * per_task + j],
            lens[o++] = c->argvlen[head + t * per_task + j];
    memcpy(c->argv, argv, (size_t)o * sizeof(*argv));
    memcpy(c->argvlen, lens, (size_t)o * sizeof(*lens));
    free(argv);
    free(lens);
    tq_cmd_set_numkeys(c, fixed_keys + keys_per_task * n);
    int npos = 3 + fixed_keys + keys_per_task * n + fixed_args - 1;
    char buf[32];
    int len = snprintf(buf, sizeof(buf), "%d", n);
    free(c->argv[npos]);
    c->argv[npos] = tq_xstrndup(buf, (size_t)len);
    c->argvlen[npos] = (size_t)len;
}

/* The ack command: fixed keys and arguments, then an id and a record per
 * task; tq_cmd_ack_end sets the task count. */
void tq_cmd_ack_begin(tq_cmd *c, const char *prefix, const char *queue, long long token,
                      const char *wid, int64_t result_ttl_ms)
{
    tq_cmd_script(c, TQ_SCRIPT_ACK, 6);
    add_qkey(c, prefix, queue, "msg");
    add_qkey(c, prefix, queue, "held");
    add_qkey(c, prefix, queue, "leases");
    add_qkey(c, prefix, queue, "lost");
    add_qkey(c, prefix, queue, "results");
    add_qkey(c, prefix, queue, "waiting");
    add_lease(c, token, wid);
    tq_cmd_add_int(c, result_ttl_ms);
    tq_cmd_add_int(c, 0); /* n, fixed in tq_cmd_ack_end */
}

void tq_cmd_ack_add(tq_cmd *c, const char *prefix, const char *queue, const char *id,
                    const char *state, const char *record, size_t recordlen)
{
    /* Two arguments per task: id, record (the state is in the record). */
    (void)prefix;
    (void)queue;
    (void)state;
    tq_cmd_add_str(c, id);
    tq_cmd_add(c, record, recordlen);
}

void tq_cmd_ack_end(tq_cmd *c)
{
    regroup(c, 6, 3, 2, 0);
}

void tq_cmd_retry(tq_cmd *c, const char *prefix, const char *queue, const char *id, long long token,
                  const char *wid, const char *msg, size_t msglen, const char *record,
                  int64_t delay_ms, int64_t result_ttl_ms)
{
    tq_cmd_script(c, TQ_SCRIPT_RETRY, 7);
    add_qkey(c, prefix, queue, "msg");
    add_qkey(c, prefix, queue, "held");
    add_qkey(c, prefix, queue, "leases");
    add_qkey(c, prefix, queue, "lost");
    add_qkey(c, prefix, queue, "delayed");
    add_qkey(c, prefix, queue, "pending");
    add_tkey(c, prefix, queue, "result", id);
    tq_cmd_add_str(c, id);
    add_lease(c, token, wid);
    tq_cmd_add(c, msg, msglen);
    tq_cmd_add_str(c, record);
    tq_cmd_add_int(c, delay_ms);
    tq_cmd_add_int(c, result_ttl_ms);
    add_wake(c, prefix, queue);
}

void tq_cmd_requeue(tq_cmd *c, const char *prefix, const char *queue, long long token,
                    const char *wid, const char *const *ids, int n)
{
    tq_cmd_script(c, TQ_SCRIPT_REQUEUE, 3);
    add_qkey(c, prefix, queue, "held");
    add_qkey(c, prefix, queue, "leases");
    add_qkey(c, prefix, queue, "pending");
    add_lease(c, token, wid);
    add_wake(c, prefix, queue);
    for (int i = 0; i < n; i++)
        tq_cmd_add_str(c, ids[i]);
}

void tq_cmd_bury(tq_cmd *c, const char *prefix, const char *queue, const char *id, long long token,
                 const char *wid, const char *reason, const char *record, int64_t result_ttl_ms,
                 long long dead_max, int64_t dead_max_age_ms, const char *dead_entry)
{
    tq_cmd_script(c, TQ_SCRIPT_BURY, 9);
    add_qkey(c, prefix, queue, "msg");
    add_qkey(c, prefix, queue, "held");
    add_qkey(c, prefix, queue, "leases");
    add_qkey(c, prefix, queue, "lost");
    add_qkey(c, prefix, queue, "dead");
    add_qkey(c, prefix, queue, "deadmsg");
    add_tkey(c, prefix, queue, "result", id);
    add_qkey(c, prefix, queue, "results");
    add_qkey(c, prefix, queue, "waiting");
    tq_cmd_add_str(c, id);
    if (token < 0)
        tq_cmd_add(c, "", 0);
    else
        add_lease(c, token, wid);
    tq_cmd_add_str(c, reason);
    tq_cmd_add_str(c, record);
    tq_cmd_add_int(c, result_ttl_ms);
    tq_cmd_add_int(c, dead_max);
    tq_cmd_add_int(c, dead_max_age_ms);
    tq_cmd_add_str(c, dead_entry);
}

void tq_cmd_extend_begin(tq_cmd *c, const char *prefix, const char *queue, const char *wid,
                         int64_t lease_ms)
{
    tq_cmd_script(c, TQ_SCRIPT_EXTEND, 2);
    add_qkey(c, prefix, queue, "held");
    add_qkey(c, prefix, queue, "leases");
    tq_cmd_add_int(c, lease_ms);
    tq_cmd_add_str(c, wid);
}

void tq_cmd_extend_add(tq_cmd *c, long long token, const char *id)
{
    tq_cmd_add_int(c, token);
    tq_cmd_add_str(c, id);
}

void tq_cmd_progress(tq_cmd *c, const char *prefix, const char *queue, const char *id,
                     long long token, const char *record, int64_t result_ttl_ms)
{
    tq_cmd_script(c, TQ_SCRIPT_PROGRESS, 2);
    add_qkey(c, prefix, queue, "held");
    add_tkey(c, prefix, queue, "result", id);
    tq_cmd_add_str(c, id);
    tq_cmd_add_int(c, token);
    tq_cmd_add_str(c, record);
    tq_cmd_add_int(c, result_ttl_ms);
}

void tq_cmd_recover(tq_cmd *c, const char *prefix, const char *queue, int max)
{
    tq_cmd_script(c, TQ_SCRIPT_RECOVER, 6);
    add_qkey(c, prefix, queue, "held");
    add_qkey(c, prefix, queue, "leases");
    add_qkey(c, prefix, queue, "pending");
    add_qkey(c, prefix, queue, "lost");
    add_qkey(c, prefix, queue, "lease"); /* the layout before held/leases */
    add_qkey(c, prefix, queue, "owner");
    tq_cmd_add_int(c, max);
    add_wake(c, prefix, queue);
}

void tq_cmd_revoke(tq_cmd *c, const char *prefix, const char *queue, const char *id,
                   const char *record, int64_t result_ttl_ms)
{
    tq_cmd_script(c, TQ_SCRIPT_REVOKE, 7);
    add_qkey(c, prefix, queue, "msg");
    add_qkey(c, prefix, queue, "held");
    add_qkey(c, prefix, queue, "delayed");
    add_tkey(c, prefix, queue, "result", id);
    add_qkey(c, prefix, queue, "lost");
    add_qkey(c, prefix, queue, "results");
    add_qkey(c, prefix, queue, "waiting");
    tq_cmd_add_str(c, id);
    tq_cmd_add_str(c, record);
    tq_cmd_add_int(c, result_ttl_ms);
}

void tq_cmd_state(tq_cmd *c, const char *prefix, const char *queue, const char *id)
{
    tq_cmd_script(c, TQ_SCRIPT_STATE, 4);
    add_qkey(c, prefix, queue, "msg");
    add_qkey(c, prefix, queue, "held");
    add_tkey(c, prefix, queue, "result", id);
    add_qkey(c, prefix, queue, "results");
    tq_cmd_add_str(c, id);
}

void tq_cmd_watch(tq_cmd *c, const char *prefix, const char *queue, const char *id,
                  int64_t window_ms)
{
    tq_cmd_script(c, TQ_SCRIPT_WATCH, 6);
    add_qkey(c, prefix, queue, "msg");
    add_qkey(c, prefix, queue, "held");
    add_tkey(c, prefix, queue, "result", id);
    add_tkey(c, prefix, queue, "done", id);
    add_qkey(c, prefix, queue, "results");
    add_qkey(c, prefix, queue, "waiting");
    tq_cmd_add_str(c, id);
    tq_cmd_add_int(c, window_ms);
}

void tq_cmd_dead_requeue(tq_cmd *c, const char *prefix, const char *queue, const char *id,
                         const char *msg, size_t msglen)
{
    tq_cmd_script(c, TQ_SCRIPT_DEAD_REQUEUE, 7);
    add_qkey(c, prefix, queue, "dead");
    add_qkey(c, prefix, queue, "deadmsg");
    add_qkey(c, prefix, queue, "msg");
    add_qkey(c, prefix, queue, "pending");
    add_tkey(c, prefix, queue, "result", id);
    add_tkey(c, prefix, queue, "done", id);
    add_qkey(c, prefix, queue, "results");
    tq_cmd_add_str(c, id);
    tq_cmd_add(c, msg, msglen);
    add_wake(c, prefix, queue);
}
