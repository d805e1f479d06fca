/* tq_worker: the daemon's event loop.
 *
 * Invariants:
 * - A task is never only in this process's memory: it is fetched by the
 *   atomic `fetch` script into a lease owned by this worker, and leaves it
 *   only through a fenced script (ack, retry, bury, requeue) or by recovery.
 * - Writes that settle a task (ops) are queued in order and re-sent after a
 *   reconnect until Redis answers; a fenced-out answer (the lease was lost)
 *   is logged and dropped, because the task's new owner decides.
 * - The worker fetches at most its idle executors plus --prefetch tasks in
 *   one atomic call. Prefetched tasks wait in `ready`, but they are leased
 *   in Redis exactly like running ones (renewed by the heartbeat, recovered
 *   if this worker dies), so they are never only in this process's memory.
 * - No polling for work: idle workers wait on the queues' wake channel and
 *   on a timer set to the earliest delayed task's due time. A slow safety
 *   sweep covers wake-ups lost while the pub/sub link was down.
 */
#include "tq_worker.h"

#include <errno.h>
#include <jansson.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/tq_aconn.h"
#include "broker/tq_cmd.h"
#include "broker/tq_keys.h"
#include "broker/tq_sign.h"
#include "common/tq_jw.h"
#include "common/tq_sig.h"
#include "common/tq_util.h"

#define SWEEP_MS 5000
#define RECOVER_MAX 1000
#define PROGRESS_MIN_MS 250
#define EXIT_FLUSH_MS 10000
/* --prefetch auto: while fetches come back full and tasks take less than
 * FAST_TASK_MS on average, the window doubles up to PREFETCH_MAX, so a deep
 * queue of short tasks costs a few Redis calls per thousand tasks; slow
 * tasks keep the base window, so one worker does not hoard work that idle
 * workers could run. Off by default: a worker that dies holds at most
 * concurrency + --prefetch tasks until their leases expire. */
#define PREFETCH_MAX 1000
#define FAST_TASK_MS 5.0
/* While tasks are that short, prefetched tasks also go into the pool's
 * backlog (tq_pool_set_backlog), up to this many per executor, so an
 * executor starts its next task without waiting for the loop. */
#define BACKLOG_MAX 32

typedef struct job {
    struct job *prev, *next;
    tq_worker *w;
    int q;
    char id[TQ_ID_MAX + 1];
    long long token;
    char *raw; /* as stored in Redis (maybe a signed envelope) */
    size_t rawlen;
    const char *body; /* the message bytes inside raw */
    size_t bodylen;
    char kid[TQ_SIGN_KID_MAX + 1]; /* key id it was signed with, "" if none */
    tq_msg *msg;
    const tq_task_def *def;
    long lost;
    int64_t started_ms;
    int64_t last_progress_ms;
} job;

typedef enum { OP_ACK, OP_RETRY, OP_BURY, OP_REQUEUE, OP_PROGRESS } op_kind;

typedef struct op {
    struct op *next;
    tq_worker *w;
    op_kind kind;
    tq_cmd cmd;
    int n;      /* tasks in this op */
    char **ids; /* their ids, for logs */
} op;

typedef struct oplist {
    op *head, *tail;
    int len;
} oplist;

typedef struct pending_ack {
    int q;
    long long token;
    char id[TQ_ID_MAX + 1];
    const char *state;
    char *record;
} pending_ack;

typedef struct queue_state {
    const char *name;
    char wake[TQ_KEY_MAX];
    int empty;    /* the last fetch found the queue empty */
    int due_now;  /* a delayed task is due: fetch even with no idle executor */
    unsigned gen; /* bumped by each wake-up (see fetch_cb) */
    struct event *due_ev;
    tq_worker *w;
} queue_state;

struct tq_worker {
    tq_worker_config cfg;
    const tq_registry *reg;
    struct event_base *base;
    tq_aconn *cmd;
    tq_aconn *sub;
    tq_pool *pool;
    char wid[320];
    char host[256];
    queue_state *queues;
    job running; /* list head: handed to the pool */
    int nrunning;
    job ready; /* list head: fetched and leased, waiting for an executor */
    int nready;
    job *reclaim_at;       /* reclaim_backlog: insert before this one */
    int window;            /* current prefetch, >= cfg.prefetch */
    double avg_runtime_ms; /* moving average of task run times */
    int fetching;
    unsigned fetch_gen;
    int fetch_q;
    int fetch_max;
    oplist outbox;   /* not sent yet */
    oplist inflight; /* sent, in order */
    pending_ack *acks;
    int nacks, capacks;
    int acks_inflight; /* ack ops sent (or queued to send) and not answered */
    struct event *flush_ev;
    struct event *pump_ev;
    struct event *heartbeat_ev;
    struct event *sweep_ev;
    struct event *sigterm_ev, *sigint_ev;
    struct event *shutdown_ev;
    struct event *exit_ev;
    int stopping; /* 0 running, 1 warm, 2 cold */
    int unregistering;
    int64_t started_ms;
    long long processed, failed, retried, buried, fenced;
    long long trimmed_at; /* tasks settled when the heap was last trimmed */
    int exit_code;
};

static void maybe_fetch(tq_worker *w);
static void start_ready(tq_worker *w);
static void update_backlog(tq_worker *w);
static void flush_acks(tq_worker *w, int force);
static void check_done(tq_worker *w);
static void pump(tq_worker *w);

/* ---- small helpers --------------------------------------------------- */

static void job_unlink(job *j)
{
    j->prev->next = j->next;
    j->next->prev = j->prev;
    j->prev = j->next = j;
}

static void job_append(job *head, job *j)
{
    j->prev = head->prev;
    j->next = head;
    head->prev->next = j;
    head->prev = j;
}

static void job_free(job *j)
{
    if (!j)
        return;
    free(j->raw);
    tq_msg_free(j->msg);
    free(j);
}

static void oplist_push(oplist *l, op *o)
{
    o->next = NULL;
    if (l->tail)
        l->tail->next = o;
    else
        l->head = o;
    l->tail = o;
    l->len++;
}

static op *oplist_shift(oplist *l)
{
    op *o = l->head;
    if (o) {
        l->head = o->next;
        if (!l->head)
            l->tail = NULL;
        l->len--;
        o->next = NULL;
    }
    return o;
}

static op *op_new(tq_worker *w, op_kind kind)
{
    op *o = tq_xcalloc(1, sizeof(*o));
    o->w = w;
    o->kind = kind;
    tq_cmd_init(&o->cmd);
    return o;
}

static void op_add_id(op *o, const char *id)
{
    o->ids = tq_xrealloc(o->ids, (size_t)(o->n + 1) * sizeof(*o->ids));
    o->ids[o->n++] = tq_xstrdup(id);
}

static void op_free(op *o)
{
    if (o->kind == OP_ACK)
        o->w->acks_inflight--;
    for (int i = 0; i < o->n; i++)
        free(o->ids[i]);
    free(o->ids);
    tq_cmd_release(&o->cmd);
    free(o);
}

static void submit_op(tq_worker *w, op *o)
{
    oplist_push(&w->outbox, o);
    pump(w);
}

static char *dump(json_t *rec)
{
    char *s = json_dumps(rec, JSON_COMPACT | JSON_REAL_PRECISION(12));
    if (!s)
        abort();
    return s;
}

static int64_t random_between(int64_t lo, int64_t hi)
{
    char hex[9];
    if (hi <= lo)
        return lo;
    tq_random_hex(hex, 4);
    unsigned long r = strtoul(hex, NULL, 16);
    return lo + (int64_t)(r % (unsigned long)(hi - lo + 1));
}

/* ---- the outbox: ordered, retried settle writes ----------------------- */

static int transient_error(const char *s)
{
    static const char *const prefixes[] = {"LOADING",  "BUSY", "TRYAGAIN",    "MASTERDOWN",
                                           "READONLY", "OOM",  "CLUSTERDOWN", NULL};
    for (int i = 0; prefixes[i]; i++)
        if (strncmp(s, prefixes[i], strlen(prefixes[i])) == 0)
            return 1;
    return 0;
}

static void op_reply_cb(tq_aconn *c, redisReply *r, void *privdata)
{
    op *o = privdata;
    tq_worker *w = o->w;
    (void)c;
    /* Replies come in order, so this op is the head of the in-flight list. */
    op *head = oplist_shift(&w->inflight);
    if (head != o) {
        /* Cannot happen with one ordered connection; keep going safely. */
        tq_log_error(w->cfg.log, "internal: reply order mismatch in outbox");
    }
    if (!r) {
        /* Lost with the connection: send again, in order, once it is back. */
        oplist_push(&w->outbox, o);
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        if (strncmp(r->str, "NOSCRIPT", 8) == 0) {
            tq_cmd_to_eval(&o->cmd);
            oplist_push(&w->outbox, o);
            event_active(w->pump_ev, EV_TIMEOUT, 0);
            return;
        }
        if (transient_error(r->str)) {
            tq_log_warn(w->cfg.log, "Redis is not ready (%s); retrying a write", r->str);
            oplist_push(&w->outbox, o);
            struct timeval tv = {0, 500000};
            evtimer_add(w->pump_ev, &tv);
            return;
        }
        tq_log_error(w->cfg.log, "Redis refused a write for task %s: %s", o->n ? o->ids[0] : "?",
                     r->str);
        op_free(o);
        flush_acks(w, 0);
        check_done(w);
        return;
    }
    if (o->kind == OP_ACK && r->type == REDIS_REPLY_ARRAY) {
        /* The count settled, then the positions of the tasks that were not
         * (docs/PROTOCOL.md#ack). */
        for (size_t i = 1; i < r->elements; i++) {
            long long at = r->element[i]->integer;
            if (at < 1 || at > o->n)
                continue;
            w->fenced++;
            tq_log_warn(w->cfg.log,
                        "task %s: result not stored, this worker no longer holds the task "
                        "(lease lost; its new owner decides)",
                        o->ids[at - 1]);
        }
    } else if (o->kind == OP_REQUEUE && r->type == REDIS_REPLY_INTEGER) {
        if (r->integer < o->n)
            tq_log_warn(w->cfg.log, "%d of %d tasks were no longer held and not put back",
                        o->n - (int)r->integer, o->n);
    } else if (r->type == REDIS_REPLY_INTEGER && r->integer == 0 && o->kind != OP_PROGRESS) {
        w->fenced++;
        tq_log_warn(w->cfg.log, "task %s: write dropped, this worker no longer holds the task",
                    o->n ? o->ids[0] : "?");
    }
    op_free(o);
    /* Completions that arrived while that ack was on the wire go now, in
     * one call (see flush_acks). */
    flush_acks(w, 0);
    check_done(w);
}

static void pump(tq_worker *w)
{
    while (w->outbox.head && tq_aconn_up(w->cmd)) {
        op *o = oplist_shift(&w->outbox);
        if (tq_aconn_send(w->cmd, &o->cmd, op_reply_cb, o) < 0) {
            /* Put it back at the front. */
            o->next = w->outbox.head;
            w->outbox.head = o;
            if (!w->outbox.tail)
                w->outbox.tail = o;
            w->outbox.len++;
            break;
        }
        oplist_push(&w->inflight, o);
    }
}

static void pump_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pump(arg);
}

/* ---- acks, batched per (queue, token) each loop iteration -------------- */

/* Send the pending acks, one ack call per (queue, token). Nagle-like: while
 * an ack is on the wire, completions wait for its reply and then go out
 * together, so a busy worker settles many tasks per script call, and an
 * idle one still acks a lone task at once. force: send regardless. */
static void flush_acks(tq_worker *w, int force)
{
    if (!force && w->acks_inflight > 0)
        return;
    for (int i = 0; i < w->nacks; i++) {
        if (!w->acks[i].record)
            continue;
        pending_ack *a = &w->acks[i];
        const char *queue = w->queues[a->q].name;
        op *o = op_new(w, OP_ACK);
        tq_cmd_ack_begin(&o->cmd, w->cfg.prefix, queue, a->token, w->wid, w->cfg.result_ttl_ms);
        for (int k = i; k < w->nacks; k++) {
            pending_ack *b = &w->acks[k];
            if (!b->record || b->q != a->q || b->token != a->token)
                continue;
            tq_cmd_ack_add(&o->cmd, w->cfg.prefix, queue, b->id, b->state, b->record,
                           strlen(b->record));
            op_add_id(o, b->id);
            free(b->record);
            b->record = NULL;
        }
        tq_cmd_ack_end(&o->cmd);
        w->acks_inflight++;
        submit_op(w, o);
    }
    w->nacks = 0;
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    flush_acks(arg, 0);
}

/* Queue a settled record (record: malloc'd text, ownership taken). */
static void queue_ack_text(tq_worker *w, job *j, const char *state, char *record)
{
    if (w->nacks == w->capacks) {
        w->capacks = w->capacks ? w->capacks * 2 : 64;
        w->acks = tq_xrealloc(w->acks, (size_t)w->capacks * sizeof(*w->acks));
    }
    pending_ack *a = &w->acks[w->nacks++];
    a->q = j->q;
    a->token = j->token;
    snprintf(a->id, sizeof(a->id), "%s", j->id);
    a->state = state;
    a->record = record;
    /* One flush per loop iteration gathers every completion of this round. */
    event_active(w->flush_ev, EV_TIMEOUT, 0);
}

static void queue_ack(tq_worker *w, job *j, const char *state, json_t *rec)
{
    queue_ack_text(w, j, state, dump(rec));
}

/* ---- records ----------------------------------------------------------- */

/* A record for a message that could not be decoded (no tq_msg). */
static json_t *bare_record(tq_worker *w, job *j, const char *state)
{
    return json_pack("{s:i, s:s, s:s, s:s, s:i, s:s, s:I}", "v", 1, "id", j->id, "queue",
                     w->queues[j->q].name, "state", state, "attempts", 1, "worker", w->wid,
                     "finished_ms", (json_int_t)tq_now_ms());
}

/* Milliseconds rounded to microseconds: no float noise in records. */
static json_t *ms_real(double ms)
{
    return json_real((double)(int64_t)(ms * 1000.0 + 0.5) / 1000.0);
}

static json_t *job_record(tq_worker *w, job *j, const char *state, const tq_outcome *out)
{
    json_t *rec = j->msg ? tq_msg_record_new(j->msg, state) : bare_record(w, j, state);
    json_object_set_new(rec, "attempts", json_integer(j->msg ? j->msg->attempts + 1 : 1));
    json_object_set_new(rec, "worker", json_string(w->wid));
    if (j->lost > 0) /* its worker was lost this many times before this run */
        json_object_set_new(rec, "recovered", json_integer(j->lost));
    if (j->started_ms)
        json_object_set_new(rec, "started_ms", json_integer(j->started_ms));
    json_object_set_new(rec, "finished_ms", json_integer(tq_now_ms()));
    if (out) {
        json_object_set_new(rec, "runtime_ms", ms_real(out->runtime_ms));
        if (out->cpu_ms >= 0)
            json_object_set_new(rec, "cpu_ms", ms_real(out->cpu_ms));
        if (out->maxrss_kb >= 0)
            json_object_set_new(rec, "maxrss_kb", json_integer(out->maxrss_kb));
    }
    return rec;
}

/* The SUCCESS record, the one written for nearly every task: the same
 * fields as job_record, written straight to text (tq_jw) instead of through
 * a jansson tree, which cost more than the rest of the task's bookkeeping. */
static char *success_record(tq_worker *w, job *j, const tq_outcome *out)
{
    const tq_msg *m = j->msg;
    tq_jw jw;
    tq_jw_init(&jw);
    tq_jw_object(&jw);
    tq_jw_key(&jw, "v");
    tq_jw_int(&jw, TQ_PROTOCOL_VERSION);
    tq_jw_key(&jw, "id");
    tq_jw_str(&jw, m->id);
    tq_jw_key(&jw, "task");
    tq_jw_str(&jw, m->task);
    tq_jw_key(&jw, "queue");
    tq_jw_str(&jw, m->queue);
    tq_jw_key(&jw, "state");
    tq_jw_str(&jw, "SUCCESS");
    tq_jw_key(&jw, "attempts");
    tq_jw_int(&jw, m->attempts + 1);
    tq_jw_key(&jw, "created_ms");
    tq_jw_int(&jw, m->created_ms);
    tq_jw_key(&jw, "errors");
    json_t *errors = json_object_get(m->root, "errors");
    char *etext = json_is_array(errors) && json_array_size(errors) > 0
                      ? json_dumps(errors, JSON_COMPACT | JSON_REAL_PRECISION(12))
                      : NULL;
    tq_jw_raw(&jw, etext ? etext : "[]", etext ? strlen(etext) : 2);
    free(etext);
    tq_jw_key(&jw, "worker");
    tq_jw_str(&jw, w->wid);
    if (j->lost > 0) { /* its worker was lost this many times before this run */
        tq_jw_key(&jw, "recovered");
        tq_jw_int(&jw, j->lost);
    }
    if (j->started_ms) {
        tq_jw_key(&jw, "started_ms");
        tq_jw_int(&jw, j->started_ms);
    }
    tq_jw_key(&jw, "finished_ms");
    tq_jw_int(&jw, tq_now_ms());
    tq_jw_key(&jw, "runtime_ms");
    tq_jw_ms(&jw, out->runtime_ms);
    if (out->cpu_ms >= 0) {
        tq_jw_key(&jw, "cpu_ms");
        tq_jw_ms(&jw, out->cpu_ms);
    }
    if (out->maxrss_kb >= 0) {
        tq_jw_key(&jw, "maxrss_kb");
        tq_jw_int(&jw, out->maxrss_kb);
    }
    /* The executor's JSON text goes into the record as it is (no second
     * encoding that could round its numbers), once it is known to be one
     * valid JSON value; anything else is stored as a string. */
    const char *res = out->result ? out->result : "null";
    tq_jw_key(&jw, "result");
    json_t *v = json_loads(res, JSON_DECODE_ANY, NULL);
    if (v)
        tq_jw_raw(&jw, res, strlen(res));
    else
        tq_jw_str(&jw, res);
    json_decref(v);
    tq_jw_end(&jw);
    return tq_jw_take(&jw, NULL);
}

static void set_error(json_t *rec, const char *type, const char *message)
{
    json_object_set_new(
        rec, "error",
        json_pack("{s:s, s:s}", "type", type ? type : "Error", "message", message ? message : ""));
}

/* ---- settling a job --------------------------------------------------- */

static void job_finish(tq_worker *w, job *j)
{
    job_free(j);
    start_ready(w);
    check_done(w);
    maybe_fetch(w);
}

static char *dead_entry(tq_worker *w, job *j, const char *reason)
{
    json_t *e = json_pack("{s:s, s:s, s:s, s:I}", "id", j->id, "queue", w->queues[j->q].name,
                          "reason", reason, "at_ms", (json_int_t)tq_now_ms());
    if (tq_utf8_valid(j->raw, j->rawlen) && !memchr(j->raw, '\0', j->rawlen)) {
        json_object_set_new(e, "message", json_stringn(j->raw, j->rawlen));
    } else {
        /* Not text: keep the bytes, hex-encoded, so nothing is lost. */
        char *hex = tq_xmalloc(j->rawlen * 2 + 1);
        static const char digits[] = "0123456789abcdef";
        for (size_t i = 0; i < j->rawlen; i++) {
            hex[2 * i] = digits[(unsigned char)j->raw[i] >> 4];
            hex[2 * i + 1] = digits[(unsigned char)j->raw[i] & 15];
        }
        hex[j->rawlen * 2] = '\0';
        json_object_set_new(e, "message_hex", json_string(hex));
        free(hex);
    }
    char *s = dump(e);
    json_decref(e);
    return s;
}

/* Dead-letter the job with a reason; its FAILURE record says so. */
static void bury(tq_worker *w, job *j, const char *type, const char *reason, const tq_outcome *out)
{
    json_t *rec = job_record(w, j, "FAILURE", out);
    set_error(rec, type, reason);
    json_object_set_new(rec, "dead", json_true());
    json_object_set_new(rec, "reason", json_string(reason));
    char *recs = dump(rec), *entry = dead_entry(w, j, reason);
    op *o = op_new(w, OP_BURY);
    tq_cmd_bury(&o->cmd, w->cfg.prefix, w->queues[j->q].name, j->id, j->token, w->wid, reason, recs,
                w->cfg.result_ttl_ms, w->cfg.dead_max, w->cfg.dead_max_age_ms, entry);
    op_add_id(o, j->id);
    submit_op(w, o);
    tq_log_warn(w->cfg.log, "task %s dead-lettered: %s", j->id, reason);
    w->buried++;
    free(recs);
    free(entry);
    json_decref(rec);
}

static void retry_job(tq_worker *w, job *j, int64_t delay_ms, const char *type, const char *message,
                      const tq_outcome *out)
{
    /* The error of this attempt is already in j->msg's errors. */
    json_t *rec = job_record(w, j, "RETRY", out);
    set_error(rec, type, message);
    json_object_set_new(rec, "retry_at_ms", json_integer(tq_now_ms() + delay_ms));
    tq_msg_set_int(j->msg, "attempts", j->msg->attempts + 1);
    size_t len;
    char *m = tq_msg_encode(j->msg, &len), *recs = dump(rec);
    if (tq_keyring_count(w->cfg.keys) > 0) {
        /* The rewritten message must pass the same check on its next fetch:
         * sign it again with the key it came with (keys are symmetric). */
        size_t slen;
        char *signed_m = tq_sign_wrap(w->cfg.keys, j->kid[0] ? j->kid : NULL, m, len, &slen);
        if (signed_m) {
            free(m);
            m = signed_m;
            len = slen;
        }
    }
    op *o = op_new(w, OP_RETRY);
    tq_cmd_retry(&o->cmd, w->cfg.prefix, w->queues[j->q].name, j->id, j->token, w->wid, m, len,
                 recs, delay_ms, w->cfg.result_ttl_ms);
    op_add_id(o, j->id);
    submit_op(w, o);
    tq_log_info(w->cfg.log, "task %s (%s) attempt %lld failed: %s: %s; retry in %lld ms", j->id,
                j->msg->task, (long long)j->msg->attempts, type, message ? message : "",
                (long long)delay_ms);
    w->retried++;
    free(m);
    free(recs);
    json_decref(rec);
}

static void requeue_job(tq_worker *w, job *j)
{
    op *o = op_new(w, OP_REQUEUE);
    const char *ids[1] = {j->id};
    tq_cmd_requeue(&o->cmd, w->cfg.prefix, w->queues[j->q].name, j->token, w->wid, ids, 1);
    op_add_id(o, j->id);
    submit_op(w, o);
}

static int max_retries(const tq_worker *w, const job *j)
{
    if (j->msg->retries >= 0)
        return (int)j->msg->retries;
    if (j->def && j->def->opts.has_max_retries)
        return j->def->opts.max_retries;
    return w->cfg.default_retries;
}

static int64_t backoff_ms(const tq_worker *w, const job *j, int attempt)
{
    int64_t base = j->def && j->def->opts.backoff_base_ms ? j->def->opts.backoff_base_ms
                                                          : w->cfg.backoff_base_ms;
    int64_t cap =
        j->def && j->def->opts.backoff_cap_ms ? j->def->opts.backoff_cap_ms : w->cfg.backoff_cap_ms;
    int64_t d = base;
    for (int i = 1; i < attempt && d < cap; i++)
        d *= 2;
    if (d > cap)
        d = cap;
    /* "Equal jitter": at least half the backoff, so retries still spread. */
    return random_between(d / 2, d);
}

static int count_errors(const tq_msg *m, const char *type)
{
    json_t *errors = json_object_get(m->root, "errors"), *e;
    size_t i;
    int n = 0;
    json_array_foreach(errors, i, e)
    {
        const char *t = json_string_value(json_object_get(e, "type"));
        if (t && strcmp(t, type) == 0)
            n++;
    }
    return n;
}

/* The threads pool lent the task the arguments of j->msg, which the task
 * may have changed: a message that may be sent again (a retry) is decoded
 * afresh from the bytes as fetched, which decoded before. */
static void redecode(tq_worker *w, job *j)
{
    char err[512];
    tq_msg *fresh = NULL;
    if (w->cfg.pool != TQ_POOL_THREADS)
        return;
    if (tq_msg_decode(j->body, j->bodylen, &w->cfg.limits, &fresh, err, sizeof(err)) != TQ_MSG_OK) {
        tq_log_error(w->cfg.log, "task %s no longer decodes (%s); its arguments may be the task's",
                     j->id, err);
        return;
    }
    tq_msg_free(j->msg);
    j->msg = fresh;
}

static void pool_done_cb(void *arg, void *cookie, tq_outcome *out)
{
    tq_worker *w = arg;
    job *j = cookie;
    job_unlink(j);
    w->nrunning--;
    w->avg_runtime_ms = w->avg_runtime_ms * 0.9 + out->runtime_ms * 0.1;
    update_backlog(w);
    /* The record's start is the executor's (a task may have waited in the
     * pool's backlog after it was handed over). */
    if (out->runtime_ms >= 0)
        j->started_ms = tq_now_ms() - (int64_t)(out->runtime_ms + 0.5);
    int attempt = (int)j->msg->attempts + 1;
    const char *msgtext = out->err_message ? out->err_message : "";

    switch (out->status) {
    case TQ_OUT_SUCCESS: {
        queue_ack_text(w, j, "SUCCESS", success_record(w, j, out));
        w->processed++;
        tq_log_debug(w->cfg.log, "task %s (%s) succeeded in %.2f ms", j->id, j->msg->task,
                     out->runtime_ms);
        break;
    }
    case TQ_OUT_FAILURE:
    case TQ_OUT_RETRY:
    case TQ_OUT_CRASH: {
        const char *type = out->err_type[0] ? out->err_type : "TaskError";
        redecode(w, j);
        tq_msg_add_error(j->msg, attempt, type, msgtext, tq_now_ms(), w->wid);
        if (out->status == TQ_OUT_CRASH && !out->time_limit) {
            int crashes = count_errors(j->msg, type);
            if (crashes >= w->cfg.max_crashes) {
                char reason[512];
                snprintf(reason, sizeof(reason),
                         "poison pill: killed its executor %d times (last: %s)", crashes, msgtext);
                bury(w, j, "PoisonPill", reason, out);
                break;
            }
            retry_job(w, j, 0, type, msgtext, out);
            break;
        }
        int can_retry =
            !out->no_retry && attempt <= max_retries(w, j) &&
            (out->status == TQ_OUT_RETRY || !j->def || tq_registry_retries_type(j->def, type));
        if (can_retry) {
            int64_t delay = out->status == TQ_OUT_RETRY && out->retry_countdown_ms >= 0
                                ? out->retry_countdown_ms
                                : backoff_ms(w, j, attempt);
            retry_job(w, j, delay, type, msgtext, out);
            break;
        }
        json_t *rec = job_record(w, j, "FAILURE", out);
        set_error(rec, type, msgtext);
        queue_ack(w, j, "FAILURE", rec);
        json_decref(rec);
        w->failed++;
        tq_log_info(w->cfg.log, "task %s (%s) failed: %s: %s", j->id, j->msg->task, type, msgtext);
        break;
    }
    case TQ_OUT_ABORTED:
        requeue_job(w, j);
        tq_log_info(w->cfg.log, "task %s (%s) interrupted by shutdown; put back on its queue",
                    j->id, j->msg->task);
        break;
    }
    tq_outcome_clear(out);
    job_finish(w, j);
}

static void pool_progress_cb(void *arg, void *cookie, double fraction, const char *message)
{
    tq_worker *w = arg;
    job *j = cookie;
    int64_t now = tq_mono_ms();
    if (now - j->last_progress_ms < PROGRESS_MIN_MS && fraction < 1.0)
        return;
    j->last_progress_ms = now;
    json_t *rec = job_record(w, j, "STARTED", NULL);
    json_object_del(rec, "finished_ms");
    json_object_set_new(rec, "progress",
                        json_pack("{s:f, s:s?}", "fraction", fraction, "message", message));
    char *s = dump(rec);
    json_decref(rec);
    op *o = op_new(w, OP_PROGRESS);
    tq_cmd_progress(&o->cmd, w->cfg.prefix, w->queues[j->q].name, j->id, j->token, s,
                    w->cfg.result_ttl_ms);
    op_add_id(o, j->id);
    free(s);
    submit_op(w, o);
}

/* ---- dispatch --------------------------------------------------------- */

static void start_job(tq_worker *w, job *j);

/* Check a fetched task just before it goes to an executor: signature,
 * message, id, registration, expiry, lost count. Returns 1 when it may run
 * (j->msg and j->def set); 0 when it was settled here (dead-lettered or
 * revoked) and freed. Done here rather than when the fetch reply arrives,
 * so that decoding a large fetch does not hold the loop while executors
 * wait: each task is decoded as an executor (or a backlog place) frees. */
static int prepare(tq_worker *w, job *j)
{
    char err[512];
    /* Signatures are checked on the raw bytes, before anything parses them. */
    if (tq_sign_unwrap(w->cfg.keys, j->raw, j->rawlen, &j->body, &j->bodylen, j->kid, err,
                       sizeof(err)) != TQ_SIGN_OK) {
        char reason[600];
        snprintf(reason, sizeof(reason), "rejected: %s", err);
        bury(w, j, "SignatureError", reason, NULL);
        job_free(j);
        return 0;
    }
    int rc = tq_msg_decode(j->body, j->bodylen, &w->cfg.limits, &j->msg, err, sizeof(err));
    if (rc != TQ_MSG_OK) {
        const char *type = rc == TQ_MSG_ELIMIT ? "LimitExceeded" : "MalformedMessage";
        char reason[600];
        snprintf(reason, sizeof(reason), "malformed message: %s", err);
        bury(w, j, type, reason, NULL);
        job_free(j);
        return 0;
    }
    if (strcmp(j->msg->id, j->id) != 0) {
        char reason[256];
        snprintf(reason, sizeof(reason), "malformed message: its id '%.64s' is not the queued id",
                 j->msg->id);
        bury(w, j, "MalformedMessage", reason, NULL);
        job_free(j);
        return 0;
    }
    j->def = tq_registry_find(w->reg, j->msg->task);
    if (!j->def) {
        char reason[256];
        snprintf(reason, sizeof(reason), "unregistered task %.128s", j->msg->task);
        bury(w, j, "NotRegistered", reason, NULL);
        job_free(j);
        return 0;
    }
    if (j->msg->expires_ms && j->msg->expires_ms <= tq_now_ms()) {
        json_t *rec = job_record(w, j, "REVOKED", NULL);
        set_error(rec, "Expired", "expired before a worker could start it");
        json_object_set_new(rec, "reason", json_string("expired"));
        queue_ack(w, j, "REVOKED", rec);
        json_decref(rec);
        tq_log_info(w->cfg.log, "task %s (%s) expired; not run", j->id, j->msg->task);
        job_free(j);
        return 0;
    }
    if (j->lost >= w->cfg.max_lost) {
        char reason[256];
        snprintf(reason, sizeof(reason), "poison pill: the worker running it was lost %ld times",
                 j->lost);
        bury(w, j, "PoisonPill", reason, NULL);
        job_free(j);
        return 0;
    }
    return 1;
}

/* The pool's backlog follows the tasks' run time: only short tasks queue
 * behind a running one, and never more than the prefetch window holds. */
static void update_backlog(tq_worker *w)
{
    int per = 0;
    /* The average starts at 1 s: some fifty short tasks are the evidence. */
    if (w->avg_runtime_ms < FAST_TASK_MS && w->window > 0) {
        per = w->window / w->cfg.concurrency;
        if (per < 1)
            per = 1;
        if (per > BACKLOG_MAX)
            per = BACKLOG_MAX;
    }
    tq_pool_set_backlog(w->pool, per);
}

/* A task the pool had not started comes back: it goes to the head of the
 * ready list, after the ones reclaimed before it (reclaim is oldest first). */
static void reclaim_cb(void *arg, void *cookie)
{
    tq_worker *w = arg;
    job *j = cookie;
    job_unlink(j);
    w->nrunning--;
    job_append(w->reclaim_at, j);
    w->nready++;
}

/* Take every task the pool has not started back into `ready`. */
static void reclaim_backlog(tq_worker *w)
{
    w->reclaim_at = w->ready.next;
    int n = tq_pool_reclaim(w->pool, reclaim_cb, w);
    if (n > 0)
        tq_log_debug(w->cfg.log, "took %d task(s) back from the pool's backlog", n);
}

/* Hand ready tasks to the pool (idle executors, then its backlog), oldest
 * first. */
static void start_ready(tq_worker *w)
{
    int settled = 0;
    while (w->nready > 0 && w->stopping < 2 && tq_pool_idle(w->pool) > 0) {
        job *j = w->ready.next;
        job_unlink(j);
        w->nready--;
        if (!j->msg && !prepare(w, j)) {
            settled++;
            continue;
        }
        start_job(w, j);
    }
    if (settled)
        maybe_fetch(w); /* their places are free again */
}

static void start_job(tq_worker *w, job *j)
{
    tq_pool_job pj = {
        .cookie = j,
        .msg = j->body,
        .msglen = j->bodylen,
        .decoded = j->msg,
        .soft_limit_ms = j->msg->soft_limit_ms        ? j->msg->soft_limit_ms
                         : j->def->opts.soft_limit_ms ? j->def->opts.soft_limit_ms
                                                      : w->cfg.soft_limit_ms,
        .hard_limit_ms = j->msg->hard_limit_ms        ? j->msg->hard_limit_ms
                         : j->def->opts.hard_limit_ms ? j->def->opts.hard_limit_ms
                                                      : w->cfg.hard_limit_ms,
    };
    j->started_ms = tq_now_ms();
    if (tq_pool_submit(w->pool, &pj) < 0) {
        /* Rare: an idle child died between tq_pool_idle and the hand-off. */
        tq_log_warn(w->cfg.log, "no executor took task %s; putting it back", j->id);
        requeue_job(w, j);
        job_free(j);
        return;
    }
    job_append(&w->running, j);
    w->nrunning++;
}

/* Put every fetched-but-not-started task back at the head of its queue. */
static void requeue_ready(tq_worker *w)
{
    if (w->nready > 0)
        tq_log_info(w->cfg.log, "putting %d prefetched task(s) back on their queues", w->nready);
    while (w->nready > 0) {
        job *j = w->ready.prev; /* newest first: the oldest ends at the head */
        job_unlink(j);
        w->nready--;
        requeue_job(w, j);
        job_free(j);
    }
}

/* ---- fetching --------------------------------------------------------- */

static void arm_due_timer(queue_state *qs, int64_t next_due, int64_t now)
{
    evtimer_del(qs->due_ev);
    if (next_due < 0)
        return;
    int64_t d = next_due - now;
    if (d < 0)
        d = 0;
    /* +1 ms: Redis's TIME has ms resolution here; never wake a hair early. */
    d += 1;
    struct timeval tv = {(time_t)(d / 1000), (suseconds_t)((d % 1000) * 1000)};
    evtimer_add(qs->due_ev, &tv);
}

static void fetch_reply(tq_worker *w, redisReply *r)
{
    queue_state *qs = &w->queues[w->fetch_q];
    if (!r)
        return; /* link lost: the fetch restarts when it is back */
    if (r->type == REDIS_REPLY_ERROR) {
        tq_log_error(w->cfg.log, "fetch from queue '%s' failed: %s", qs->name, r->str);
        if (strncmp(r->str, "NOSCRIPT", 8) == 0)
            tq_aconn_drop(w->cmd, "scripts missing");
        return;
    }
    /* token, next due, now, fields per task (3: with the lost count), then
     * the tasks (docs/PROTOCOL.md#fetch). */
    size_t per =
        r->type == REDIS_REPLY_ARRAY && r->elements >= 4 ? (size_t)r->element[3]->integer : 0;
    if ((per != 2 && per != 3) || (r->elements - 4) % per != 0) {
        tq_log_error(w->cfg.log, "fetch from queue '%s': unexpected reply", qs->name);
        return;
    }
    long long token = r->element[0]->integer;
    arm_due_timer(qs, r->element[1]->integer, r->element[2]->integer);
    int got = (int)((r->elements - 4) / per);
    qs->due_now = 0;
    if (w->cfg.prefetch_auto && got == w->fetch_max && got > 0 && w->avg_runtime_ms < FAST_TASK_MS)
        w->window = w->window * 2 > PREFETCH_MAX ? PREFETCH_MAX : w->window * 2;
    else if (got < w->fetch_max)
        w->window = w->cfg.prefetch;
    update_backlog(w);
    if (got < w->fetch_max && qs->gen == w->fetch_gen)
        qs->empty = 1;
    for (int i = 0; i < got; i++) {
        redisReply *id = r->element[4 + i * per], *m = r->element[5 + i * per];
        job *j = tq_xcalloc(1, sizeof(*j));
        j->prev = j->next = j;
        j->w = w;
        j->q = w->fetch_q;
        j->token = token;
        snprintf(j->id, sizeof(j->id), "%.*s", (int)(id->len < TQ_ID_MAX ? id->len : TQ_ID_MAX),
                 id->str ? id->str : "");
        j->raw = tq_xstrndup(m->str ? m->str : "", m->len);
        j->rawlen = m->len;
        j->lost = per == 3 ? (long)r->element[6 + i * per]->integer : 0;
        if (w->stopping) {
            /* The fetch crossed a shutdown signal: these tasks have not
             * started, so they go straight back to the head of their queue
             * instead of being run (warm) or left leased until their lease
             * expires (cold, or a warm shutdown with nothing running). */
            tq_log_info(w->cfg.log,
                        "task %s arrived after the shutdown signal; put back on its "
                        "queue",
                        j->id);
            requeue_job(w, j);
            job_free(j);
            continue;
        }
        /* Checked and decoded when it leaves `ready` (prepare). */
        job_append(&w->ready, j);
        w->nready++;
    }
    start_ready(w);
    maybe_fetch(w);
}

static void fetch_cb(tq_aconn *c, redisReply *r, void *privdata)
{
    tq_worker *w = privdata;
    (void)c;
    w->fetching = 0;
    fetch_reply(w, r);
    /* A shutdown waits for the fetch it crossed (see check_done). */
    check_done(w);
}

static void maybe_fetch(tq_worker *w)
{
    if (w->stopping || w->fetching || !tq_aconn_up(w->cmd))
        return;
    /* Room: the executors plus the prefetch allowance, less what is held
     * (running, in the pool's backlog, or waiting in `ready`). */
    int want = w->cfg.concurrency + w->window - w->nrunning - w->nready;
    if (want < 0)
        want = 0;
    for (int q = 0; q < w->cfg.nqueues; q++) {
        queue_state *qs = &w->queues[q];
        if ((want > 0 && !qs->empty) || qs->due_now) {
            tq_cmd cmd;
            tq_cmd_init(&cmd);
            tq_cmd_fetch(&cmd, w->cfg.prefix, qs->name, w->wid, want, w->cfg.lease_ms, 10000);
            w->fetch_q = q;
            w->fetch_max = want;
            w->fetch_gen = qs->gen;
            if (tq_aconn_send(w->cmd, &cmd, fetch_cb, w) == 0)
                w->fetching = 1;
            tq_cmd_release(&cmd);
            return;
        }
    }
}

static void wake_queue(queue_state *qs, int due)
{
    qs->gen++;
    qs->empty = 0;
    if (due)
        qs->due_now = 1;
}

static void due_cb(evutil_socket_t fd, short what, void *arg)
{
    queue_state *qs = arg;
    (void)fd;
    (void)what;
    wake_queue(qs, 1);
    maybe_fetch(qs->w);
}

static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
    tq_worker *w = arg;
    (void)fd;
    (void)what;
    for (int q = 0; q < w->cfg.nqueues; q++)
        wake_queue(&w->queues[q], 0);
    maybe_fetch(w);
}

static void wake_msg_cb(tq_aconn *c, redisReply *r, void *privdata)
{
    tq_worker *w = privdata;
    (void)c;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_STRING || strcmp(r->element[0]->str, "message") != 0)
        return;
    for (int q = 0; q < w->cfg.nqueues; q++) {
        if (strcmp(w->queues[q].wake, r->element[1]->str) == 0) {
            int due = r->element[2]->len > 0 && r->element[2]->str[0] == 'd';
            wake_queue(&w->queues[q], due);
        }
    }
    maybe_fetch(w);
}

/* ---- heartbeat: liveness, lease extension, recovery ------------------- */

static void ignore_cb(tq_aconn *c, redisReply *r, void *privdata)
{
    (void)c;
    (void)r;
    (void)privdata;
}

static void extend_cb(tq_aconn *c, redisReply *r, void *privdata)
{
    tq_worker *w = privdata;
    (void)c;
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i < r->elements; i++)
        tq_log_warn(w->cfg.log,
                    "task %s: lease lost while running (worker paused or cut off?); its result "
                    "will be dropped, another worker runs it",
                    r->element[i]->str);
}

static void recover_cb(tq_aconn *c, redisReply *r, void *privdata)
{
    queue_state *qs = privdata;
    (void)c;
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer > 0)
        tq_log_warn(qs->w->cfg.log,
                    "recovered %lld task(s) on queue '%s' whose worker stopped renewing its lease",
                    r->integer, qs->name);
}

static void send_plain(tq_worker *w, int argc, const char **argv, tq_aconn_reply_fn fn, void *arg)
{
    tq_cmd cmd;
    tq_cmd_init(&cmd);
    for (int i = 0; i < argc; i++)
        tq_cmd_add_str(&cmd, argv[i]);
    tq_aconn_send(w->cmd, &cmd, fn, arg);
    tq_cmd_release(&cmd);
}

/* The heartbeat reached Redis: tell a container health check (the file's
 * mtime is the proof of liveness, not the process's existence). */
static void heartbeat_cb_reply(tq_aconn *c, redisReply *r, void *privdata)
{
    tq_worker *w = privdata;
    (void)c;
    if (!r || r->type == REDIS_REPLY_ERROR || !w->cfg.health_file)
        return;
    FILE *f = fopen(w->cfg.health_file, "w");
    if (!f) {
        tq_log_warn(w->cfg.log, "cannot write health file %s: %s", w->cfg.health_file,
                    strerror(errno));
        return;
    }
    fprintf(f, "%s %lld\n", w->wid, (long long)tq_now_ms());
    fclose(f);
}

/* Publish the registered tasks and their signatures (docs/SECURITY.md): one
 * HSET into "<prefix>tasks", whose TTL every heartbeat renews, so clients can
 * check calls before they enqueue and list what workers offer. */
static void publish_tasks(tq_worker *w)
{
    char key[TQ_KEY_MAX], ttl[32];
    tq_cmd cmd;
    tq_cmd_init(&cmd);
    tq_key_global(key, w->cfg.prefix, "tasks");
    tq_cmd_add_str(&cmd, "HSET");
    tq_cmd_add_str(&cmd, key);
    for (size_t i = 0; i < tq_registry_count(w->reg); i++) {
        const tq_task_def *d = tq_registry_at(w->reg, i);
        json_t *info = json_pack("{s:s, s:s?}", "name", d->name, "doc", d->opts.doc);
        if (d->sig) {
            char *spec = tq_sig_to_string(d->sig);
            json_object_set_new(info, "spec", json_string(spec));
            json_object_set_new(info, "signature", tq_sig_to_json(d->sig));
            free(spec);
        } else {
            json_object_set_new(info, "signature", json_null());
        }
        char *s = dump(info);
        json_decref(info);
        tq_cmd_add_str(&cmd, d->name);
        tq_cmd_add_str(&cmd, s);
        free(s);
    }
    if (cmd.argc > 2)
        tq_aconn_send(w->cmd, &cmd, ignore_cb, NULL);
    tq_cmd_clear(&cmd);
    snprintf(ttl, sizeof(ttl), "%lld", (long long)(w->cfg.heartbeat_ms * 3));
    tq_cmd_add_str(&cmd, "PEXPIRE");
    tq_cmd_add_str(&cmd, key);
    tq_cmd_add_str(&cmd, ttl);
    tq_aconn_send(w->cmd, &cmd, ignore_cb, NULL);
    tq_cmd_release(&cmd);
}

static void heartbeat(tq_worker *w)
{
    if (!tq_aconn_up(w->cmd))
        return;
    char key[TQ_KEY_MAX], reg[TQ_KEY_MAX], now[32], ttl[32], old[32];
    int64_t t = tq_now_ms();
    json_t *info = json_pack("{s:s, s:s, s:I, s:s, s:i, s:I, s:s, s:I, s:I, s:I, s:I, s:i}", "id",
                             w->wid, "host", w->host, "pid", (json_int_t)getpid(), "pool",
                             w->cfg.pool == TQ_POOL_PREFORK ? "prefork" : "threads", "concurrency",
                             w->cfg.concurrency, "started_ms", (json_int_t)w->started_ms, "version",
                             TASKQ_VERSION, "processed", (json_int_t)w->processed, "failed",
                             (json_int_t)w->failed, "retried", (json_int_t)w->retried, "dead",
                             (json_int_t)w->buried, "running", w->nrunning);
    json_object_set_new(info, "prefetched", json_integer(w->nready));
    json_t *queues = json_array(), *tasks = json_array();
    for (int q = 0; q < w->cfg.nqueues; q++)
        json_array_append_new(queues, json_string(w->queues[q].name));
    for (size_t i = 0; i < tq_registry_count(w->reg); i++)
        json_array_append_new(tasks, json_string(tq_registry_at(w->reg, i)->name));
    json_object_set_new(info, "queues", queues);
    json_object_set_new(info, "tasks", tasks);
    char *s = dump(info);
    json_decref(info);
    tq_key_worker(key, w->cfg.prefix, w->wid);
    tq_key_global(reg, w->cfg.prefix, "workers");
    snprintf(now, sizeof(now), "%lld", (long long)t);
    snprintf(ttl, sizeof(ttl), "%lld", (long long)(w->cfg.heartbeat_ms * 3));
    snprintf(old, sizeof(old), "%lld", (long long)(t - 86400000LL));
    const char *set[] = {"SET", key, s, "PX", ttl};
    const char *zadd[] = {"ZADD", reg, now, w->wid};
    const char *trim[] = {"ZREMRANGEBYSCORE", reg, "-inf", old};
    send_plain(w, 5, set, heartbeat_cb_reply, w);
    send_plain(w, 4, zadd, ignore_cb, NULL);
    send_plain(w, 4, trim, ignore_cb, NULL);
    free(s);
    publish_tasks(w);

    for (int q = 0; q < w->cfg.nqueues; q++) {
        tq_cmd cmd;
        tq_cmd_init(&cmd);
        int n = 0;
        tq_cmd_extend_begin(&cmd, w->cfg.prefix, w->queues[q].name, w->wid, w->cfg.lease_ms);
        for (job *j = w->running.next; j != &w->running; j = j->next) {
            if (j->q == q) {
                tq_cmd_extend_add(&cmd, j->token, j->id);
                n++;
            }
        }
        for (job *j = w->ready.next; j != &w->ready; j = j->next) {
            if (j->q == q) {
                tq_cmd_extend_add(&cmd, j->token, j->id);
                n++;
            }
        }
        if (n > 0)
            tq_aconn_send(w->cmd, &cmd, extend_cb, w);
        /* Settle writes still waiting in our outbox (e.g. re-queued after a
         * LOADING reply while Redis restarts) must reach Redis before our
         * own recovery runs: after an outage longer than the lease it would
         * otherwise take back tasks this worker has already finished, fence
         * out their results and run them again. Sent writes are ahead of
         * this on the ordered link anyway. Acks held back behind one on
         * the wire (flush_acks) count as waiting too. */
        if (w->outbox.len == 0 && w->nacks == 0) {
            tq_cmd_recover(&cmd, w->cfg.prefix, w->queues[q].name, RECOVER_MAX);
            tq_aconn_send(w->cmd, &cmd, recover_cb, &w->queues[q]);
        }
        tq_cmd_release(&cmd);
    }
}

/* Idle after work: give the allocator's free memory back to the system.
 * A busy worker's large fetch replies and batches leave up to ~1 MB of
 * free heap that glibc keeps (its trim threshold rises with the largest
 * block freed), so an idle worker would otherwise hold its busiest moment's
 * RSS. Once per idle spell, from the heartbeat: never on the hot path. */
static void trim_if_idle(tq_worker *w)
{
#ifdef __GLIBC__
    long long settled = w->processed + w->failed + w->retried + w->buried + w->fenced;
    if (settled == w->trimmed_at || w->nrunning > 0 || w->nready > 0 || w->nacks > 0 ||
        w->outbox.len > 0 || w->inflight.len > 0)
        return;
    w->trimmed_at = settled;
    int released = malloc_trim(0);
    tq_log_debug(w->cfg.log, "idle: heap trimmed (%s)",
                 released ? "free memory returned to the system" : "nothing to return");
#else
    (void)w;
#endif
}

static void heartbeat_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    heartbeat(arg);
    trim_if_idle(arg);
}

/* ---- connection events ------------------------------------------------ */

static void cmd_event_cb(tq_aconn *c, int up, void *arg)
{
    tq_worker *w = arg;
    (void)c;
    if (!up)
        return;
    /* Writes lost with the old link go first, in their original order. */
    pump(w);
    heartbeat(w);
    for (int q = 0; q < w->cfg.nqueues; q++)
        wake_queue(&w->queues[q], 1);
    maybe_fetch(w);
}

static void sub_event_cb(tq_aconn *c, int up, void *arg)
{
    tq_worker *w = arg;
    if (!up)
        return;
    const char **chans = tq_xmalloc((size_t)w->cfg.nqueues * sizeof(*chans));
    for (int q = 0; q < w->cfg.nqueues; q++)
        chans[q] = w->queues[q].wake;
    tq_aconn_subscribe(c, chans, w->cfg.nqueues, wake_msg_cb, w);
    free(chans);
    /* Wake-ups may have been missed while the link was down. */
    for (int q = 0; q < w->cfg.nqueues; q++)
        wake_queue(&w->queues[q], 0);
    maybe_fetch(w);
}

/* ---- shutdown --------------------------------------------------------- */

static void exit_cb(evutil_socket_t fd, short what, void *arg)
{
    tq_worker *w = arg;
    (void)fd;
    (void)what;
    if (w->outbox.len || w->inflight.len || w->nacks)
        tq_log_error(w->cfg.log,
                     "exiting with %d write(s) Redis did not take; those tasks stay leased and "
                     "return to their queue when the lease expires",
                     w->outbox.len + w->inflight.len + w->nacks);
    event_base_loopbreak(w->base);
}

static void unregister_cb(tq_aconn *c, redisReply *r, void *privdata)
{
    tq_worker *w = privdata;
    (void)c;
    (void)r;
    event_base_loopbreak(w->base);
}

static void check_done(tq_worker *w)
{
    /* `fetching`: a fetch sent before the signal may still hand us tasks;
     * they must be put back before we unregister and exit. */
    if (!w->stopping || w->nrunning > 0 || w->nready > 0 || w->nacks > 0 || w->outbox.len > 0 ||
        w->inflight.len > 0 || w->fetching || w->unregistering)
        return;
    w->unregistering = 1;
    if (tq_aconn_up(w->cmd)) {
        char key[TQ_KEY_MAX], reg[TQ_KEY_MAX];
        tq_key_worker(key, w->cfg.prefix, w->wid);
        tq_key_global(reg, w->cfg.prefix, "workers");
        const char *del[] = {"DEL", key};
        const char *zrem[] = {"ZREM", reg, w->wid};
        send_plain(w, 2, del, ignore_cb, NULL);
        send_plain(w, 3, zrem, unregister_cb, w);
    } else {
        event_base_loopbreak(w->base);
    }
}

static void go_cold(tq_worker *w, const char *why)
{
    if (w->stopping >= 2)
        return;
    w->stopping = 2;
    reclaim_backlog(w);
    tq_log_warn(w->cfg.log, "cold shutdown (%s): stopping %d running task(s) and putting them back",
                why, w->nrunning);
    requeue_ready(w);
    tq_pool_kill(w->pool); /* ABORTED outcomes requeue each job */
    flush_acks(w, 1);
    struct timeval tv = {EXIT_FLUSH_MS / 1000, 0};
    evtimer_add(w->exit_ev, &tv);
    check_done(w);
}

static void shutdown_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    go_cold(arg, "shutdown timeout reached");
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    tq_worker *w = arg;
    (void)what;
    if (w->stopping == 0) {
        w->stopping = 1;
        reclaim_backlog(w);
        tq_log_info(w->cfg.log,
                    "%s: warm shutdown, no new tasks; waiting up to %lld ms for %d running "
                    "task(s) (signal again for a cold shutdown)",
                    sig == SIGINT ? "SIGINT" : "SIGTERM", (long long)w->cfg.shutdown_timeout_ms,
                    w->nrunning);
        struct timeval tv = {(time_t)(w->cfg.shutdown_timeout_ms / 1000),
                             (suseconds_t)((w->cfg.shutdown_timeout_ms % 1000) * 1000)};
        evtimer_add(w->shutdown_ev, &tv);
        evtimer_del(w->sweep_ev);
        requeue_ready(w);
        check_done(w);
    } else {
        go_cold(w, sig == SIGINT ? "second signal, SIGINT" : "second signal, SIGTERM");
    }
}

/* ---- life cycle ------------------------------------------------------- */

tq_worker *tq_worker_new(const tq_worker_config *cfg, const tq_registry *reg, char *err,
                         size_t errlen)
{
    tq_worker *w = tq_xcalloc(1, sizeof(*w));
    char nonce[9];
    w->cfg = *cfg;
    w->reg = reg;
    w->running.next = w->running.prev = &w->running;
    w->ready.next = w->ready.prev = &w->ready;
    w->window = cfg->prefetch;
    w->avg_runtime_ms = 1000.0; /* slow until tasks prove otherwise */
    w->started_ms = tq_now_ms();
    w->base = event_base_new();
    if (!w->base) {
        snprintf(err, errlen, "cannot create the event loop");
        free(w);
        return NULL;
    }
    if (gethostname(w->host, sizeof(w->host) - 1) < 0)
        snprintf(w->host, sizeof(w->host), "unknown");
    tq_random_hex(nonce, 4);
    snprintf(w->wid, sizeof(w->wid), "%s:%d:%s", w->host, (int)getpid(), nonce);
    w->queues = tq_xcalloc((size_t)cfg->nqueues, sizeof(*w->queues));
    for (int q = 0; q < cfg->nqueues; q++) {
        queue_state *qs = &w->queues[q];
        qs->name = cfg->queues[q];
        qs->w = w;
        tq_cmd_wake_channel(qs->wake, cfg->prefix, qs->name);
        qs->due_ev = evtimer_new(w->base, due_cb, qs);
    }
    tq_pool_config pc = {
        .kind = cfg->pool,
        .concurrency = cfg->concurrency,
        .max_tasks_per_child = cfg->max_tasks_per_child,
        .max_memory_per_child_kb = cfg->max_memory_per_child_kb,
        .reg = reg,
        .limits = &w->cfg.limits,
        .log = cfg->log,
        .done = pool_done_cb,
        .progress = pool_progress_cb,
        .arg = w,
    };
    /* The pool forks first, before any Redis socket exists, so children
     * inherit nothing they could write to by mistake. */
    w->pool = tq_pool_new(w->base, &pc, err, errlen);
    if (!w->pool) {
        tq_worker_free(w);
        return NULL;
    }
    tq_aconn_config ac = {
        .url = &w->cfg.url,
        .log = cfg->log,
        .name = "commands",
        .reply_timeout_ms = cfg->lease_ms > 3000 ? cfg->lease_ms / 2 : 1500,
        .load_scripts = 1,
        .on_event = cmd_event_cb,
        .arg = w,
    };
    w->cmd = tq_aconn_new(w->base, &ac);
    ac.name = "wake";
    ac.reply_timeout_ms = 0;
    ac.load_scripts = 0;
    ac.on_event = sub_event_cb;
    w->sub = tq_aconn_new(w->base, &ac);
    w->flush_ev = event_new(w->base, -1, 0, flush_cb, w);
    w->pump_ev = evtimer_new(w->base, pump_cb, w);
    w->heartbeat_ev = event_new(w->base, -1, EV_PERSIST, heartbeat_cb, w);
    w->sweep_ev = event_new(w->base, -1, EV_PERSIST, sweep_cb, w);
    w->shutdown_ev = evtimer_new(w->base, shutdown_timeout_cb, w);
    w->exit_ev = evtimer_new(w->base, exit_cb, w);
    w->sigterm_ev = evsignal_new(w->base, SIGTERM, signal_cb, w);
    w->sigint_ev = evsignal_new(w->base, SIGINT, signal_cb, w);
    return w;
}

const char *tq_worker_id(const tq_worker *w)
{
    return w->wid;
}

int tq_worker_run(tq_worker *w)
{
    char where[320];
    tq_url_mask(&w->cfg.url, where, sizeof(where));
    struct timeval hb = {(time_t)(w->cfg.heartbeat_ms / 1000),
                         (suseconds_t)((w->cfg.heartbeat_ms % 1000) * 1000)};
    struct timeval sw = {SWEEP_MS / 1000, 0};
    event_add(w->heartbeat_ev, &hb);
    event_add(w->sweep_ev, &sw);
    evsignal_add(w->sigterm_ev, NULL);
    evsignal_add(w->sigint_ev, NULL);
    tq_aconn_start(w->cmd);
    tq_aconn_start(w->sub);
    tq_log_info(w->cfg.log, "worker %s ready: redis %s, %s pool x%d, %zu task(s), queues:", w->wid,
                where, w->cfg.pool == TQ_POOL_PREFORK ? "prefork" : "threads", w->cfg.concurrency,
                tq_registry_count(w->reg));
    for (int q = 0; q < w->cfg.nqueues; q++)
        tq_log_info(w->cfg.log, "  queue %d: %s", q + 1, w->queues[q].name);
    if (tq_keyring_count(w->cfg.keys) > 0)
        tq_log_info(w->cfg.log, "message signatures required (%zu key(s); signing key id '%s')",
                    tq_keyring_count(w->cfg.keys), tq_keyring_signing_kid(w->cfg.keys));
    event_base_dispatch(w->base);
    tq_log_info(w->cfg.log,
                "worker %s stopped: %lld succeeded, %lld failed, %lld retried, %lld "
                "dead-lettered, %lld fenced",
                w->wid, w->processed, w->failed, w->retried, w->buried, w->fenced);
    return w->exit_code;
}

void tq_worker_free(tq_worker *w)
{
    if (!w)
        return;
    w->stopping = 2; /* completions during teardown must not fetch */
    w->unregistering = 1;
    tq_pool_free(w->pool);
    tq_aconn_free(w->cmd);
    tq_aconn_free(w->sub);
    while (w->running.next != &w->running) {
        job *j = w->running.next;
        job_unlink(j);
        job_free(j);
    }
    while (w->ready.next != &w->ready) {
        job *j = w->ready.next;
        job_unlink(j);
        job_free(j);
    }
    op *o;
    while ((o = oplist_shift(&w->outbox)))
        op_free(o);
    while ((o = oplist_shift(&w->inflight)))
        op_free(o);
    for (int i = 0; i < w->nacks; i++)
        free(w->acks[i].record);
    free(w->acks);
    for (int q = 0; w->queues && q < w->cfg.nqueues; q++)
        if (w->queues[q].due_ev)
            event_free(w->queues[q].due_ev);
    free(w->queues);
    struct event *evs[] = {w->flush_ev,    w->pump_ev, w->heartbeat_ev, w->sweep_ev,
                           w->shutdown_ev, w->exit_ev, w->sigterm_ev,   w->sigint_ev};
    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
        if (evs[i])
            event_free(evs[i]);
    event_base_free(w->base);
    free(w);
}
