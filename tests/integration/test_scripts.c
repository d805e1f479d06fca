/* Integration tests for the Lua scripts of docs/PROTOCOL.md#scripts, driven
 * directly through hiredis and the tq_cmd builders against a private
 * redis-server (tests/harness.c). Each test starts from an empty database.
 * Times are read from Redis's own clock (TIME), as the scripts do; waits are
 * deadline polls. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/tq_cmd.h"
#include "broker/tq_keys.h"
#include "common/tq_msg.h"
#include "common/tq_util.h"
#include "harness.h"

#define PFX "taskq:"
#define Q "q"
#define TTL 60000
#define WAIT_MS 5000

typedef struct fx {
    th_redis_server *srv;
    redisContext *c;
} fx;

static fx *F; /* the group fixture, for helpers */

/* ---- plumbing ---------------------------------------------------------- */

/* Send c as EVALSHA, falling back to EVAL on NOSCRIPT (as the clients do). */
static redisReply *run(tq_cmd *cmd)
{
    const char **av = (void *)cmd->argv;
    redisReply *r = redisCommandArgv(F->c, cmd->argc, av, cmd->argvlen);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
        freeReplyObject(r);
        tq_cmd_to_eval(cmd);
        av = (void *)cmd->argv;
        r = redisCommandArgv(F->c, cmd->argc, av, cmd->argvlen);
        assert_non_null(r);
    }
    return r;
}

/* Run a script that answers with an integer. */
static long long run_int(tq_cmd *cmd)
{
    redisReply *r = run(cmd);
    if (r->type != REDIS_REPLY_INTEGER)
        fail_msg("%s: reply type %d (%s)", tq_scripts[cmd->script].name, r->type,
                 r->type == REDIS_REPLY_ERROR ? r->str : "");
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

static redisReply *cmd(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(F->c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("redis error: %s", r->str);
    return r;
}

static long long cmd_int(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(F->c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    if (r->type != REDIS_REPLY_INTEGER)
        fail_msg("expected an integer reply, got type %d", r->type);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

/* String reply as a malloc'd copy, or NULL for nil. */
static char *cmd_str(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(F->c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    char *s = NULL;
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)
        s = tq_xstrndup(r->str, r->len);
    else if (r->type != REDIS_REPLY_NIL)
        fail_msg("expected a string reply, got type %d", r->type);
    freeReplyObject(r);
    return s;
}

static void assert_str_reply(char *got, const char *want)
{
    if (!want) {
        if (got)
            fail_msg("expected nil, got '%s'", got);
        return;
    }
    if (!got)
        fail_msg("expected '%s', got nil", want);
    assert_string_equal(got, want);
    free(got);
}

/* Key names of queue Q (static buffers: one per kind in use at a time). */
static const char *qk(const char *kind)
{
    static char bufs[8][TQ_KEY_MAX];
    static int n;
    char *b = bufs[n++ % 8];
    tq_key_queue(b, PFX, Q, kind);
    return b;
}

static const char *tk(const char *kind, const char *id)
{
    static char bufs[8][TQ_KEY_MAX];
    static int n;
    char *b = bufs[n++ % 8];
    tq_key_task(b, PFX, Q, kind, id);
    return b;
}

static long long redis_now_ms(void)
{
    redisReply *r = cmd("TIME");
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    long long ms = atoll(r->element[0]->str) * 1000 + atoll(r->element[1]->str) / 1000;
    freeReplyObject(r);
    return ms;
}

/* A valid message for id (malloc'd). */
static char *make_msg(const char *id, int attempts)
{
    tq_msg *m = tq_msg_new(id, "add", Q);
    tq_msg_set_int(m, "attempts", attempts);
    char *s = tq_msg_encode(m, NULL);
    tq_msg_free(m);
    return s;
}

static char *make_record(const char *id, const char *state)
{
    return tq_xasprintf(
        "{\"v\":1,\"id\":\"%s\",\"task\":\"add\",\"queue\":\"" Q "\",\"state\":\"%s\"}", id, state);
}

/* enqueue: returns the integer reply, or -100 for an error reply whose text
 * is copied into err (may be NULL). */
static long long enqueue_full(const char *id, const char *msg, long long delay, long long eta,
                              long long cap, int fresh, long long wait_ms, char *err, size_t errlen)
{
    tq_cmd c;
    tq_cmd_init(&c);
    tq_cmd_enqueue(&c, PFX, Q, id, msg, strlen(msg), delay, eta, cap, fresh, wait_ms);
    redisReply *r = run(&c);
    long long v;
    if (r->type == REDIS_REPLY_ERROR) {
        if (err)
            snprintf(err, errlen, "%s", r->str);
        v = -100;
    } else {
        assert_int_equal(r->type, REDIS_REPLY_INTEGER);
        v = r->integer;
    }
    freeReplyObject(r);
    tq_cmd_release(&c);
    return v;
}

/* enqueue of an id chosen by the user (fresh 0), nobody waiting. */
static long long enqueue_ex(const char *id, const char *msg, long long delay, long long eta,
                            long long cap, char *err, size_t errlen)
{
    return enqueue_full(id, msg, delay, eta, cap, 0, 0, err, errlen);
}

static void enqueue(const char *id, long long delay)
{
    char *m = make_msg(id, 0);
    char err[256] = "";
    long long v = enqueue_ex(id, m, delay, 0, 0, err, sizeof(err));
    if (v == -100)
        fail_msg("enqueue %s: %s", id, err);
    assert_int_equal(v, delay > 0 ? 2 : 1);
    free(m);
}

typedef struct fetched {
    long long token, next_due, now;
    int n;
    char *id[16];
    char *msg[16];
    long long lost[16];
    char wid[32]; /* the worker id fetched with: its lease is "<token> <wid>" */
} fetched;

static void fetched_clear(fetched *f)
{
    for (int i = 0; i < f->n; i++) {
        free(f->id[i]);
        free(f->msg[i]);
    }
    memset(f, 0, sizeof(*f));
}

static void fetch(fetched *f, const char *wid, int max, long long lease_ms)
{
    tq_cmd c;
    tq_cmd_init(&c);
    tq_cmd_fetch(&c, PFX, Q, wid, max, lease_ms, 100);
    redisReply *r = run(&c);
    memset(f, 0, sizeof(*f));
    snprintf(f->wid, sizeof(f->wid), "%s", wid);
    if (r->type != REDIS_REPLY_ARRAY)
        fail_msg("fetch: reply type %d (%s)", r->type, r->type == REDIS_REPLY_ERROR ? r->str : "");
    assert_true(r->elements >= 4);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(r->element[i]->type, REDIS_REPLY_INTEGER);
    f->token = r->element[0]->integer;
    f->next_due = r->element[1]->integer;
    f->now = r->element[2]->integer;
    /* Fields per task: 3 (with the lost count) exactly when the lost hash
     * exists. */
    size_t per = (size_t)r->element[3]->integer;
    assert_int_equal(per, cmd_int("EXISTS %s", qk("lost")) ? 3 : 2);
    assert_int_equal((r->elements - 4) % per, 0);
    f->n = (int)((r->elements - 4) / per);
    assert_true(f->n <= 16);
    for (int i = 0; i < f->n; i++) {
        redisReply *id = r->element[4 + per * i], *m = r->element[5 + per * i];
        assert_int_equal(id->type, REDIS_REPLY_STRING);
        assert_int_equal(m->type, REDIS_REPLY_STRING);
        f->id[i] = tq_xstrndup(id->str, id->len);
        f->msg[i] = tq_xstrndup(m->str, m->len);
        if (per == 3) {
            redisReply *l = r->element[6 + per * i];
            assert_int_equal(l->type, REDIS_REPLY_INTEGER);
            f->lost[i] = l->integer;
        }
    }
    freeReplyObject(r);
    tq_cmd_release(&c);
}

/* Queue task id (not delayed) and fetch it alone as worker "w". */
static void take_one(const char *id, fetched *f)
{
    enqueue(id, 0);
    fetch(f, "w", 1, 10000);
    assert_int_equal(f->n, 1);
    assert_string_equal(f->id[0], id);
}

/* ack one task, its record kept ttl ms; returns 1 if it was settled, 0 if
 * not. */
static long long ack1_ttl(long long token, const char *wid, const char *id, const char *state,
                          const char *record, long long ttl)
{
    tq_cmd c;
    tq_cmd_init(&c);
    tq_cmd_ack_begin(&c, PFX, Q, token, wid, ttl);
    tq_cmd_ack_add(&c, PFX, Q, id, state, record, strlen(record));
    tq_cmd_ack_end(&c);
    redisReply *r = run(&c);
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1)
        fail_msg("ack: reply type %d (%s)", r->type, r->type == REDIS_REPLY_ERROR ? r->str : "");
    /* [settled, positions not settled]: one task is either. */
    long long v = r->element[0]->integer;
    assert_int_equal(r->elements, v == 1 ? 1 : 2);
    if (v == 0)
        assert_int_equal(r->element[1]->integer, 1);
    freeReplyObject(r);
    tq_cmd_release(&c);
    return v;
}

static long long ack1(long long token, const char *wid, const char *id, const char *state,
                      const char *record)
{
    return ack1_ttl(token, wid, id, state, record, TTL);
}

/* ack ids[i] with recs[i] (i < n) in one call under f's lease: the reply
 * (the caller frees it). */
static redisReply *ack_batch(const fetched *f, const char *const *ids, const char *const *recs,
                             int n)
{
    tq_cmd c;
    tq_cmd_init(&c);
    tq_cmd_ack_begin(&c, PFX, Q, f->token, f->wid, TTL);
    for (int i = 0; i < n; i++)
        tq_cmd_ack_add(&c, PFX, Q, ids[i], "SUCCESS", recs[i], strlen(recs[i]));
    tq_cmd_ack_end(&c);
    redisReply *r = run(&c);
    tq_cmd_release(&c);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    return r;
}

static long long revoke(const char *id, const char *record)
{
    tq_cmd c;
    tq_cmd_init(&c);
    tq_cmd_revoke(&c, PFX, Q, id, record, TTL);
    long long v = run_int(&c);
    tq_cmd_release(&c);
    return v;
}

static long long recover(int max)
{
    tq_cmd c;
    tq_cmd_init(&c);
    tq_cmd_recover(&c, PFX, Q, max);
    long long v = run_int(&c);
    tq_cmd_release(&c);
    return v;
}

static long long bury(const char *id, long long token, const char *wid, const char *record,
                      long long dead_max, long long dead_age_ms, const char *entry)
{
    tq_cmd c;
    tq_cmd_init(&c);
    tq_cmd_bury(&c, PFX, Q, id, token, wid, "bad message", record, TTL, dead_max, dead_age_ms,
                entry);
    long long v = run_int(&c);
    tq_cmd_release(&c);
    return v;
}

/* The token `id` is held under (its score in held), or -1: not held. */
static long long held_by(const char *id)
{
    char *s = cmd_str("ZSCORE %s %s", qk("held"), id);
    long long v = s ? atoll(s) : -1;
    free(s);
    return v;
}

/* The deadline of a fetch's lease ("<token> <wid>" in leases), or -1. */
static long long lease_of(const fetched *f)
{
    char member[64];
    snprintf(member, sizeof(member), "%lld %s", f->token, f->wid);
    char *s = cmd_str("ZSCORE %s %s", qk("leases"), member);
    long long v = s ? atoll(s) : -1;
    free(s);
    return v;
}

static void assert_ttl_within(const char *key, long long max_ms)
{
    long long t = cmd_int("PTTL %s", key);
    if (t <= 0 || t > max_ms)
        fail_msg("PTTL %s = %lld, want 1..%lld", key, t, max_ms);
}

/* Wait until Redis's clock passes `when` (ms). */
static int past_cond(void *arg)
{
    return redis_now_ms() > *(long long *)arg;
}

static void wait_redis_time_past(long long when)
{
    if (!th_wait_until(past_cond, &when, WAIT_MS))
        fail_msg("Redis clock did not pass %lld", when);
}

/* ---- final records (docs/PROTOCOL.md#results) -------------------------- */

/* The length of a results generation for records kept ttl ms, as
 * results_put computes it: an eighth of the TTL, 1 s .. 1 h. */
static long long span_of(long long ttl)
{
    long long span = ttl / 8;
    return span < 1000 ? 1000 : span > 3600000 ? 3600000 : span;
}

/* The key of Q's results generation starting at `start` (ms). */
static const char *gen_key(long long start)
{
    static char bufs[4][TQ_KEY_MAX + 32];
    static int n;
    char *b = bufs[n++ % 4];
    snprintf(b, TQ_KEY_MAX + 32, "%s:%lld", qk("results"), start);
    return b;
}

/* The score of `start` in the results index (when that generation retires),
 * or -1 if it is not listed. */
static long long retire_of(long long start)
{
    char *s = cmd_str("ZSCORE %s %lld", qk("results"), start);
    long long v = s ? atoll(s) : -1;
    free(s);
    return v;
}

/* id's final record (malloc'd), read from the generations listed in the
 * results index, or NULL; *start (may be NULL) gets the start of the
 * generation holding it. A task has one final record: finding it in two
 * generations fails the test. */
static char *final_record_at(const char *id, long long *start)
{
    redisReply *gens = cmd("ZRANGE %s 0 -1", qk("results"));
    assert_int_equal(gens->type, REDIS_REPLY_ARRAY);
    char *rec = NULL;
    for (size_t i = 0; i < gens->elements; i++) {
        char *end = NULL;
        long long g = strtoll(gens->element[i]->str, &end, 10);
        if (!end || *end != '\0')
            fail_msg("results index member '%s' is no start time", gens->element[i]->str);
        char *r = cmd_str("HGET %s %s", gen_key(g), id);
        if (!r)
            continue;
        if (rec)
            fail_msg("%s has a final record in two generations", id);
        rec = r;
        if (start)
            *start = g;
    }
    freeReplyObject(gens);
    return rec;
}

static char *final_record(const char *id)
{
    return final_record_at(id, NULL);
}

/* id's final record is `want` (NULL: it has none). */
static void assert_final(const char *id, const char *want)
{
    assert_str_reply(final_record(id), want);
}

/* id's final record is in a generation that expires with the TTL: in
 * (ttl - 5000, ttl + 3 * span] ms (a record lives between ttl and ttl + span,
 * its hash two spans longer), its start a multiple of the span, listed in an
 * index that expires no earlier than it. */
static void assert_final_ttl(const char *id, long long ttl)
{
    long long start = -1, span = span_of(ttl);
    char *r = final_record_at(id, &start);
    if (!r)
        fail_msg("%s has no final record", id);
    free(r);
    assert_int_equal(start % span, 0);
    long long t = cmd_int("PTTL %s", gen_key(start));
    if (t <= ttl - 5000 || t > ttl + 3 * span)
        fail_msg("PTTL %s = %lld, want %lld..%lld", gen_key(start), t, ttl - 5000, ttl + 3 * span);
    long long gen_at = cmd_int("PEXPIRETIME %s", gen_key(start));
    long long idx_at = cmd_int("PEXPIRETIME %s", qk("results"));
    if (idx_at < gen_at)
        fail_msg("the results index expires at %lld, before its generation (%lld)", idx_at, gen_at);
    /* Retired no earlier than the TTL after the record was written. */
    assert_true(retire_of(start) >= start + span + ttl);
}

/* The reply of the watch script for id (as state replies). */
static redisReply *watch(const char *id, long long window_ms)
{
    tq_cmd c;
    tq_cmd_init(&c);
    tq_cmd_watch(&c, PFX, Q, id, window_ms);
    redisReply *r = run(&c);
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3)
        fail_msg("watch: reply type %d (%s)", r->type, r->type == REDIS_REPLY_ERROR ? r->str : "");
    tq_cmd_release(&c);
    return r;
}

static void state_of(const char *id, const char *record, long long running, long long queued)
{
    tq_cmd c;
    tq_cmd_init(&c);
    tq_cmd_state(&c, PFX, Q, id);
    redisReply *r = run(&c);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 3);
    if (record) {
        assert_int_equal(r->element[0]->type, REDIS_REPLY_STRING);
        assert_string_equal(r->element[0]->str, record);
    } else {
        assert_int_equal(r->element[0]->type, REDIS_REPLY_NIL);
    }
    assert_int_equal(r->element[1]->integer, running);
    assert_int_equal(r->element[2]->integer, queued);
    freeReplyObject(r);
    tq_cmd_release(&c);
}

/* The done list of id holds exactly `want`, for at most a minute. */
static void assert_notified(const char *id, const char *want)
{
    redisReply *r = cmd("LRANGE %s 0 -1", tk("done", id));
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    if (r->elements != 1)
        fail_msg("done:%s holds %zu elements, want 1", id, r->elements);
    assert_string_equal(r->element[0]->str, want);
    freeReplyObject(r);
    assert_ttl_within(tk("done", id), 60000);
}

/* ---- fixtures ---------------------------------------------------------- */

static int group_setup(void **state)
{
    static fx f;
    f.srv = th_redis_start(NULL);
    if (!f.srv)
        return -1;
    f.c = th_redis(f.srv);
    if (!f.c)
        return -1;
    F = &f;
    *state = &f;
    return 0;
}

static int group_teardown(void **state)
{
    fx *f = *state;
    if (f) {
        redisFree(f->c);
        th_redis_free(f->srv);
    }
    th_cleanup();
    return 0;
}

static int flush(void **state)
{
    (void)state;
    redisReply *r = redisCommand(F->c, "FLUSHALL");
    int ok = r && r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    return ok ? 0 : -1;
}

/* ---- tests ------------------------------------------------------------- */

static void test_scripts_sha_matches_redis(void **state)
{
    (void)state;
    for (int i = 0; i < TQ_SCRIPT_COUNT; i++) {
        char *sha = cmd_str("SCRIPT LOAD %s", tq_scripts[i].body);
        if (strcmp(sha, tq_scripts[i].sha) != 0)
            fail_msg("%s: Redis computes %s, embedded %s", tq_scripts[i].name, sha,
                     tq_scripts[i].sha);
        free(sha);
    }
}

static void test_scripts_enqueue_fetch_ack(void **state)
{
    (void)state;
    char *m = make_msg("A", 0);
    assert_int_equal(enqueue_ex("A", m, 0, 0, 0, NULL, 0), 1);
    assert_str_reply(cmd_str("HGET %s A", qk("msg")), m);
    assert_int_equal(cmd_int("LLEN %s", qk("pending")), 1);

    long long t0 = redis_now_ms();
    fetched f;
    fetch(&f, "w1", 10, 15000);
    assert_true(f.token > 0);
    assert_int_equal(f.next_due, -1);
    assert_true(f.now >= t0 && f.now <= redis_now_ms());
    assert_int_equal(f.n, 1);
    assert_string_equal(f.id[0], "A");
    assert_string_equal(f.msg[0], m);
    assert_int_equal(f.lost[0], 0);
    /* Held under the fetch's token; one lease for the fetch. */
    assert_int_equal(held_by("A"), f.token);
    assert_int_equal(lease_of(&f), f.now + 15000);
    assert_int_equal(cmd_int("ZCARD %s", qk("leases")), 1);
    assert_int_equal(cmd_int("LLEN %s", qk("pending")), 0);

    char *rec = make_record("A", "SUCCESS");
    assert_int_equal(ack1(f.token, f.wid, "A", "SUCCESS", rec), 1);
    /* The final record is a field of the current results generation, which
     * expires with the TTL from the ack (computed from Redis's clock): not a
     * moment in the past, not a stray small value, at most two spans late. */
    assert_final("A", rec);
    assert_final_ttl("A", TTL);
    state_of("A", rec, 0, 0);
    /* Nobody waited on it: no key of its own at all. */
    assert_int_equal(cmd_int("EXISTS %s", tk("done", "A")), 0);
    assert_int_equal(cmd_int("EXISTS %s", tk("result", "A")), 0);
    assert_int_equal(cmd_int("HEXISTS %s A", qk("msg")), 0);
    assert_int_equal(held_by("A"), -1);
    /* The fetch's last task settled: its lease went with it. */
    assert_int_equal(cmd_int("ZCARD %s", qk("leases")), 0);
    /* A second ack of the same task is fenced out: the record stays. */
    assert_int_equal(ack1(f.token, f.wid, "A", "FAILURE", "other"), 0);
    assert_final("A", rec);
    assert_int_equal(cmd_int("EXISTS %s", tk("done", "A")), 0);
    fetched_clear(&f);
    free(rec);
    free(m);
}

static void test_scripts_fetch_fifo_and_max(void **state)
{
    (void)state;
    enqueue("a", 0);
    enqueue("b", 0);
    enqueue("c", 0);
    fetched f;
    fetch(&f, "w1", 2, 1000);
    assert_int_equal(f.n, 2);
    assert_string_equal(f.id[0], "a");
    assert_string_equal(f.id[1], "b");
    long long t1 = f.token;
    fetched_clear(&f);
    fetch(&f, "w2", 5, 1000);
    assert_int_equal(f.n, 1);
    assert_string_equal(f.id[0], "c");
    assert_true(f.token > t1);
    fetched_clear(&f);
    /* Empty queue: a token, no tasks. max 0: no token at all. */
    fetch(&f, "w2", 5, 1000);
    assert_int_equal(f.n, 0);
    fetched_clear(&f);
    fetch(&f, "w2", 0, 1000);
    assert_int_equal(f.token, 0);
    assert_int_equal(f.n, 0);
    fetched_clear(&f);
}

/* A list entry that is no task id (too long, binary) cannot name keys: fetch
 * moves it to the dead-letter set itself and serves the valid task behind it. */
static void test_scripts_fetch_buries_invalid_ids(void **state)
{
    (void)state;
    char longid[101];
    memset(longid, 'x', 100);
    longid[100] = '\0';
    redisReply *r = cmd("LPUSH %s %s %b", qk("pending"), longid, "bad\0id\xff", (size_t)7);
    freeReplyObject(r);
    r = cmd("HSET %s %s %s", qk("msg"), longid, "{}");
    freeReplyObject(r);
    enqueue("good", 0);
    fetched f;
    fetch(&f, "w1", 5, 1000);
    assert_int_equal(f.n, 1);
    assert_string_equal(f.id[0], "good");
    fetched_clear(&f);
    assert_int_equal(cmd_int("LLEN %s", qk("pending")), 0);
    assert_int_equal(cmd_int("ZCARD %s", qk("dead")), 2);
    assert_int_equal(cmd_int("HEXISTS %s %s", qk("msg"), longid), 0);
    r = cmd("HVALS %s", qk("deadmsg"));
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 2);
    for (size_t i = 0; i < r->elements; i++) {
        assert_non_null(strstr(r->element[i]->str, "invalid task id in the queue"));
        assert_non_null(strstr(r->element[i]->str, "\"id\":\"invalid-"));
    }
    freeReplyObject(r);
}

/* Many tasks due at once: promotion moves them in chunks (a single unpack of
 * thousands of ids overflowed Lua's stack, the script failed half-way and
 * each retry pushed duplicates). */
static void test_scripts_fetch_promotes_thousands_due(void **state)
{
    (void)state;
    enum { N = 12000 };
    long long past = redis_now_ms() - 1000;
    redisContext *c = F->c;
    for (int i = 0; i < N; i++) {
        redisAppendCommand(c, "ZADD %s %lld d%d", qk("delayed"), past + i % 7, i);
        redisAppendCommand(c, "HSET %s d%d {}", qk("msg"), i);
    }
    for (int i = 0; i < 2 * N; i++) {
        void *r;
        assert_int_equal(redisGetReply(c, &r), REDIS_OK);
        freeReplyObject(r);
    }
    tq_cmd fc;
    tq_cmd_init(&fc);
    tq_cmd_fetch(&fc, PFX, Q, "w1", 0, 1000, 10000);
    redisReply *r = run(&fc);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    freeReplyObject(r);
    assert_int_equal(cmd_int("ZCARD %s", qk("delayed")), N - 10000);
    assert_int_equal(cmd_int("LLEN %s", qk("pending")), 10000);
    r = run(&fc);
    freeReplyObject(r);
    tq_cmd_release(&fc);
    assert_int_equal(cmd_int("ZCARD %s", qk("delayed")), 0);
    assert_int_equal(cmd_int("LLEN %s", qk("pending")), N);
    /* Each id exactly once, earliest due first at the right end. */
    r = cmd("LRANGE %s 0 -1", qk("pending"));
    char *seen = calloc(N, 1);
    assert_non_null(seen);
    for (size_t i = 0; i < r->elements; i++) {
        int k = (int)strtol(r->element[i]->str + 1, NULL, 10);
        assert_true(k >= 0 && k < N);
        assert_int_equal(seen[k], 0);
        seen[k] = 1;
    }
    free(seen);
    freeReplyObject(r);
}

/* enqueue_many: one call, the same effects as one enqueue per task, in
 * order; per-task codes for duplicates and a full queue. */
static void test_scripts_enqueue_many(void **state)
{
    (void)state;
    enqueue("dup", 0);
    char *ma = make_msg("a", 0), *mb = make_msg("b", 0), *md = make_msg("dup", 0),
         *mc = make_msg("c", 0);
    tq_cmd c;
    tq_cmd_init(&c);
    tq_cmd_enqueue_many_begin(&c, PFX, Q, 4, 0); /* room for 3 more after "dup" */
    tq_cmd_enqueue_many_add(&c, PFX, Q, "a", ma, strlen(ma), 0, 0);
    tq_cmd_enqueue_many_add(&c, PFX, Q, "dup", md, strlen(md), 0, 0);
    tq_cmd_enqueue_many_add(&c, PFX, Q, "b", mb, strlen(mb), 60000, 0);
    tq_cmd_enqueue_many_add(&c, PFX, Q, "c", mc, strlen(mc), 0, 0);
    tq_cmd_enqueue_many_add(&c, PFX, Q, "d", mc, strlen(mc), 0, 0);
    tq_cmd_enqueue_many_end(&c);
    redisReply *r = run(&c);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 5);
    long long want[] = {1, -1, 2, 1, -2};
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(r->element[i]->integer, want[i]);
    freeReplyObject(r);
    tq_cmd_release(&c);
    /* FIFO order kept: dup (enqueued first), then a, then c. */
    fetched f;
    fetch(&f, "w1", 10, 1000);
    assert_int_equal(f.n, 3);
    assert_string_equal(f.id[0], "dup");
    assert_string_equal(f.id[1], "a");
    assert_string_equal(f.id[2], "c");
    assert_true(f.next_due > f.now + 50000);
    fetched_clear(&f);
    /* The refused task leaves nothing behind (a batch is not waited on). */
    assert_int_equal(cmd_int("EXISTS %s", tk("done", "d")), 0);
    assert_int_equal(cmd_int("HEXISTS %s d", qk("msg")), 0);
    free(ma);
    free(mb);
    free(md);
    free(mc);
}

static void test_scripts_enqueue_duplicate_refused(void **state)
{
    (void)state;
    char *m1 = make_msg("D", 0), *m2 = make_msg("D", 5);
    char err[256] = "";
    assert_int_equal(enqueue_ex("D", m1, 0, 0, 0, err, sizeof(err)), 1);
    assert_int_equal(enqueue_ex("D", m2, 0, 0, 0, err, sizeof(err)), -1);
    assert_str_reply(cmd_str("HGET %s D", qk("msg")), m1);
    assert_int_equal(cmd_int("LLEN %s", qk("pending")), 1);
    /* Still a duplicate while running. */
    fetched f;
    fetch(&f, "w", 1, 10000);
    assert_int_equal(f.n, 1);
    assert_int_equal(enqueue_ex("D", m2, 0, 0, 0, err, sizeof(err)), -1);
    assert_int_equal(cmd_int("LLEN %s", qk("pending")), 0);
    fetched_clear(&f);
    free(m1);
    free(m2);
}

static void test_scripts_enqueue_queue_cap(void **state)
{
    (void)state;
    char err[256] = "";
    const char *ids[] = {"c1", "c2", "c3"};
    for (int i = 0; i < 2; i++) {
        char *m = make_msg(ids[i], 0);
        assert_int_equal(enqueue_ex(ids[i], m, 0, 0, 2, err, sizeof(err)), 1);
        free(m);
    }
    char *m = make_msg("c3", 0);
    assert_int_equal(enqueue_ex("c3", m, 0, 0, 2, err, sizeof(err)), -2);
    /* A wait pipelined behind it wakes at once. */
    assert_str_reply(cmd_str("LINDEX %s 0", tk("done", "c3")), "REFUSED");
    assert_true(cmd_int("PTTL %s", tk("done", "c3")) > 0);
    assert_int_equal(cmd_int("HLEN %s", qk("msg")), 2);
    assert_int_equal(cmd_int("LLEN %s", qk("pending")), 2);
    /* Delayed tasks count against the cap too. */
    assert_int_equal(enqueue_ex("c3", m, 60000, 0, 2, err, sizeof(err)), -2);
    assert_int_equal(cmd_int("ZCARD %s", qk("delayed")), 0);
    /* cap 0: no limit. */
    assert_int_equal(enqueue_ex("c3", m, 0, 0, 0, err, sizeof(err)), 1);
    free(m);
}

static void test_scripts_enqueue_clears_stale_result(void **state)
{
    (void)state;
    redisReply *r = cmd("SET %s old PX 60000", tk("result", "S"));
    freeReplyObject(r);
    assert_int_equal(cmd_int("RPUSH %s old", tk("done", "S")), 1);
    enqueue("S", 0);
    assert_int_equal(cmd_int("EXISTS %s", tk("result", "S")), 0);
    assert_int_equal(cmd_int("EXISTS %s", tk("done", "S")), 0);
}

/* enqueue with a fresh id (a single submit): queued without the duplicate
 * check or the clean-up; resent after tq_cmd_enqueue_unfresh (a stale link)
 * it is refused as a duplicate, so it is not queued twice. */
static void test_scripts_enqueue_fresh(void **state)
{
    (void)state;
    char id[TQ_ID_MAX + 1];
    tq_random_id(id);
    char *m = make_msg(id, 0);
    tq_cmd c;
    tq_cmd_init(&c);
    tq_cmd_enqueue(&c, PFX, Q, id, m, strlen(m), 0, 0, 0, 1, 0);
    for (int round = 0; round < 2; round++) {
        redisReply *r = run(&c);
        assert_int_equal(r->type, REDIS_REPLY_INTEGER);
        assert_int_equal(r->integer, round ? -1 : 1);
        freeReplyObject(r);
        tq_cmd_enqueue_unfresh(&c);
    }
    assert_int_equal(cmd_int("LLEN %s", qk("pending")), 1);
    assert_str_reply(cmd_str("HGET %s %s", qk("msg"), id), m);
    /* Delayed, fresh: into the delayed set. */
    char id2[TQ_ID_MAX + 1];
    tq_random_id(id2);
    tq_cmd_enqueue(&c, PFX, Q, id2, m, strlen(m), 60000, 0, 0, 1, 0);
    redisReply *r = run(&c);
    assert_int_equal(r->integer, 2);
    freeReplyObject(r);
    char *due = cmd_str("ZSCORE %s %s", qk("delayed"), id2);
    assert_true(atoll(due) > redis_now_ms());
    free(due);
    tq_cmd_release(&c);
    free(m);
}

static int fetch_one_cond(void *arg)
{
    fetched *f = arg;
    fetch(f, "wd", 1, 10000);
    if (f->n > 0)
        return 1;
    fetched_clear(f);
    return 0;
}

static void test_scripts_delayed_enqueue(void **state)
{
    (void)state;
    long long before = redis_now_ms();
    enqueue("L", 200);
    char *due_s = cmd_str("ZSCORE %s L", qk("delayed"));
    long long due = atoll(due_s);
    free(due_s);
    assert_true(due >= before + 200 && due <= redis_now_ms() + 200);
    assert_int_equal(cmd_int("LLEN %s", qk("pending")), 0);

    /* Not fetchable before it is due; next_due says when. */
    fetched f;
    fetch(&f, "wd", 1, 10000);
    if (f.now < due) {
        assert_int_equal(f.n, 0);
        assert_int_equal(f.next_due, due);
        assert_true(f.next_due > f.now);
    }
    fetched_clear(&f);

    /* Fetchable once due (deadline poll), and never before by Redis's clock. */
    memset(&f, 0, sizeof(f));
    assert_true(th_wait_until(fetch_one_cond, &f, WAIT_MS));
    assert_string_equal(f.id[0], "L");
    assert_true(f.now >= due);
    assert_int_equal(f.next_due, -1);
    assert_int_equal(cmd_int("ZCARD %s", qk("delayed")), 0);
    fetched_clear(&f);

    /* eta_ms in the future delays to eta; in the past queues right away. */
    char *m = make_msg("E1", 0);
    long long eta = redis_now_ms() + 60000;
    assert_int_equal(enqueue_ex("E1", m, 0, eta, 0, NULL, 0), 2);
    char *s = cmd_str("ZSCORE %s E1", qk("delayed"));
    assert_int_equal(atoll(s), eta);
    free(s);
    free(m);
    m = make_msg("E2", 0);
    assert_int_equal(enqueue_ex("E2", m, 0, redis_now_ms() - 1000, 0, NULL, 0), 1);
    assert_int_equal(cmd_int("LLEN %s", qk("pending")), 1);
    free(m);
    /* delay and eta: the later one wins. */
    m = make_msg("E3", 0);
    long long now = redis_now_ms();
    assert_int_equal(enqueue_ex("E3", m, 120000, now + 1000, 0, NULL, 0), 2);
    s = cmd_str("ZSCORE %s E3", qk("delayed"));
    assert_true(atoll(s) >= now + 120000);
    free(s);
    free(m);
    /* next_due reports the earliest remaining due time. */
    fetch(&f, "wd", 5, 1000);
    assert_int_equal(f.n, 1);
    assert_string_equal(f.id[0], "E2");
    assert_int_equal(f.next_due, eta);
    fetched_clear(&f);
}

static void test_scripts_fencing_after_lease_expiry(void **state)
{
    (void)state;
    enqueue("F", 0);
    fetched f1, f2;
    fetch(&f1, "w1", 1, 50);
    assert_int_equal(f1.n, 1);
    wait_redis_time_past(f1.now + 50);
    assert_int_equal(recover(100), 1);
    assert_int_equal(held_by("F"), -1);
    assert_int_equal(cmd_int("ZCARD %s", qk("leases")), 0);
    assert_str_reply(cmd_str("HGET %s F", qk("lost")), "1");
    /* The stale worker cannot settle it now ... */
    assert_int_equal(ack1(f1.token, f1.wid, "F", "SUCCESS", "stale-1"), 0);
    assert_final("F", NULL);
    assert_int_equal(cmd_int("EXISTS %s", qk("results")), 0);

    fetch(&f2, "w2", 1, 10000);
    assert_int_equal(f2.n, 1);
    assert_string_equal(f2.id[0], "F");
    assert_int_equal(f2.lost[0], 1);
    assert_true(f2.token != f1.token);
    assert_int_equal(held_by("F"), f2.token);
    /* ... nor once another worker holds it. */
    assert_int_equal(ack1(f1.token, f1.wid, "F", "SUCCESS", "stale-2"), 0);
    assert_final("F", NULL);
    assert_int_equal(held_by("F"), f2.token);
    assert_true(lease_of(&f2) > 0);

    char *rec = make_record("F", "SUCCESS");
    assert_int_equal(ack1(f2.token, f2.wid, "F", "SUCCESS", rec), 1);
    /* The late ack of the first worker does not overwrite the result. */
    assert_int_equal(ack1(f1.token, f1.wid, "F", "FAILURE", "stale-3"), 0);
    assert_final("F", rec);
    state_of("F", rec, 0, 0);
    assert_int_equal(cmd_int("HEXISTS %s F", qk("lost")), 0);
    free(rec);
    fetched_clear(&f1);
    fetched_clear(&f2);
}

static void test_scripts_ack_batch(void **state)
{
    (void)state;
    enqueue("b1", 0);
    enqueue("b2", 0);
    enqueue("b3", 0);
    fetched f;
    fetch(&f, "w", 3, 10000);
    assert_int_equal(f.n, 3);
    const char *ids1[] = {"b1", "zz" /* not held */, "b3"}, *recs1[] = {"r1", "rz", "r3"};
    redisReply *r = ack_batch(&f, ids1, recs1, 3);
    /* Two settled; the second (position 2) was not. */
    assert_int_equal(r->elements, 2);
    assert_int_equal(r->element[0]->integer, 2);
    assert_int_equal(r->element[1]->integer, 2);
    freeReplyObject(r);
    assert_final("b1", "r1");
    assert_final("b3", "r3");
    assert_final_ttl("b1", TTL);
    assert_final_ttl("b3", TTL);
    /* One batch, one moment: one generation. */
    long long g1 = -1, g3 = -2;
    free(final_record_at("b1", &g1));
    free(final_record_at("b3", &g3));
    assert_int_equal(g1, g3);
    assert_final("zz", NULL);
    assert_final("b2", NULL);
    assert_int_equal(cmd_int("EXISTS %s", tk("result", "zz")), 0);
    assert_int_equal(cmd_int("EXISTS %s", tk("done", "zz")), 0);
    assert_int_equal(cmd_int("EXISTS %s", tk("done", "b1")), 0);
    /* b2 is untouched: still held. */
    assert_int_equal(held_by("b2"), f.token);
    assert_true(lease_of(&f) > 0); /* its lease stays while b2 is held */
    assert_int_equal(cmd_int("HLEN %s", qk("msg")), 1);
    /* An id given twice in one batch is settled once: the first record. */
    const char *ids2[] = {"b2", "b2"}, *recs2[] = {"first", "second"};
    r = ack_batch(&f, ids2, recs2, 2);
    assert_int_equal(r->elements, 2);
    assert_int_equal(r->element[0]->integer, 1); /* one settled */
    assert_int_equal(r->element[1]->integer, 2); /* the second copy not */
    freeReplyObject(r);
    assert_final("b2", "first");
    assert_int_equal(held_by("b2"), -1);
    assert_int_equal(lease_of(&f), -1); /* the fetch's last task went */
    fetched_clear(&f);
}

static void test_scripts_retry(void **state)
{
    (void)state;
    enqueue("R", 0);
    enqueue("R0", 0);
    fetched f;
    fetch(&f, "w", 2, 10000);
    assert_int_equal(f.n, 2);
    char *m2 = make_msg("R", 1), *rec = make_record("R", "RETRY");
    tq_cmd c;
    tq_cmd_init(&c);
    /* Wrong token: nothing changes. */
    tq_cmd_retry(&c, PFX, Q, "R", f.token + 1, f.wid, m2, strlen(m2), rec, 500, TTL);
    assert_int_equal(run_int(&c), 0);
    assert_int_equal(held_by("R"), f.token);
    assert_int_equal(cmd_int("EXISTS %s", tk("result", "R")), 0);

    long long before = redis_now_ms();
    tq_cmd_retry(&c, PFX, Q, "R", f.token, f.wid, m2, strlen(m2), rec, 500, TTL);
    assert_int_equal(run_int(&c), 1);
    assert_str_reply(cmd_str("HGET %s R", qk("msg")), m2);
    char *s = cmd_str("ZSCORE %s R", qk("delayed"));
    assert_true(atoll(s) >= before + 500 && atoll(s) <= redis_now_ms() + 500);
    free(s);
    assert_str_reply(cmd_str("GET %s", tk("result", "R")), rec);
    assert_ttl_within(tk("result", "R"), TTL);
    assert_int_equal(held_by("R"), -1);
    assert_true(lease_of(&f) > 0); /* R0 is still held under it */
    assert_int_equal(cmd_int("LLEN %s", qk("pending")), 0);
    /* Not a final state: no final record, nothing on done. */
    assert_final("R", NULL);
    assert_int_equal(cmd_int("EXISTS %s", qk("results")), 0);
    assert_int_equal(cmd_int("EXISTS %s", tk("done", "R")), 0);

    /* delay 0: straight back on pending. */
    char *m3 = make_msg("R0", 1);
    tq_cmd_retry(&c, PFX, Q, "R0", f.token, f.wid, m3, strlen(m3), rec, 0, TTL);
    assert_int_equal(run_int(&c), 1);
    assert_int_equal(cmd_int("LLEN %s", qk("pending")), 1);
    assert_int_equal(lease_of(&f), -1); /* its last task went */
    fetched_clear(&f);
    fetch(&f, "w", 1, 10000);
    assert_int_equal(f.n, 1);
    assert_string_equal(f.id[0], "R0");
    assert_string_equal(f.msg[0], m3);
    fetched_clear(&f);
    tq_cmd_release(&c);
    free(m2);
    free(m3);
    free(rec);
}

static void test_scripts_requeue_at_head(void **state)
{
    (void)state;
    enqueue("h1", 0);
    enqueue("h2", 0);
    enqueue("h3", 0);
    fetched f;
    fetch(&f, "w", 1, 10000);
    assert_string_equal(f.id[0], "h1");
    const char *ids[] = {"h1"};
    tq_cmd c;
    tq_cmd_init(&c);
    tq_cmd_requeue(&c, PFX, Q, f.token + 1, f.wid, ids, 1);
    assert_int_equal(run_int(&c), 0);
    tq_cmd_requeue(&c, PFX, Q, f.token, f.wid, ids, 1);
    assert_int_equal(run_int(&c), 1);
    assert_int_equal(held_by("h1"), -1);
    assert_int_equal(cmd_int("ZCARD %s", qk("leases")), 0);
    assert_int_equal(cmd_int("HEXISTS %s h1", qk("lost")), 0);
    fetched_clear(&f);
    /* Back at the head: fetched before h2 and h3. */
    fetch(&f, "w", 3, 10000);
    assert_int_equal(f.n, 3);
    assert_string_equal(f.id[0], "h1");
    assert_string_equal(f.id[1], "h2");
    assert_string_equal(f.id[2], "h3");
    fetched_clear(&f);
    tq_cmd_release(&c);
}

static void test_scripts_bury(void **state)
{
    (void)state;
    /* An old dead-letter entry, older than the max age. */
    long long now = redis_now_ms();
    freeReplyObject(cmd("ZADD %s %lld old", qk("dead"), now - 100000));
    freeReplyObject(cmd("HSET %s old x", qk("deadmsg")));

    const char *ids[] = {"d1", "d2", "d3", "d4", "d5"};
    for (int i = 0; i < 5; i++)
        enqueue(ids[i], 0);
    fetched f;
    fetch(&f, "w", 5, 10000);
    assert_int_equal(f.n, 5);
    freeReplyObject(watch("d5", 10000)); /* someone waits on d5 */
    /* Fenced. */
    assert_int_equal(bury("d1", f.token + 1, f.wid, "rec", 3, 50000, "{}"), 0);
    assert_int_equal(held_by("d1"), f.token);
    assert_int_equal(cmd_int("EXISTS %s", qk("dead")), 1);
    assert_int_equal(cmd_int("ZCARD %s", qk("dead")), 1);

    for (int i = 0; i < 5; i++) {
        char *rec = make_record(ids[i], "FAILURE");
        char *entry = tq_xasprintf("{\"id\":\"%s\",\"reason\":\"bad message\"}", ids[i]);
        assert_int_equal(bury(ids[i], f.token, f.wid, rec, 3, 50000, entry), 1);
        assert_int_equal(cmd_int("EXISTS %s", tk("result", ids[i])), 0);
        assert_final(ids[i], rec);
        assert_final_ttl(ids[i], TTL);
        /* Only the waiter's task is pushed to its done list. */
        if (i == 4)
            assert_notified(ids[i], rec);
        else
            assert_int_equal(cmd_int("EXISTS %s", tk("done", ids[i])), 0);
        assert_str_reply(cmd_str("HGET %s %s", qk("deadmsg"), ids[i]), entry);
        free(rec);
        free(entry);
    }
    /* The old entry went by age, then the set was capped at 3: the newest. */
    assert_int_equal(cmd_int("ZCARD %s", qk("dead")), 3);
    assert_int_equal(cmd_int("HLEN %s", qk("deadmsg")), 3);
    for (int i = 0; i < 5; i++) {
        long long want = i >= 2;
        char *sc = cmd_str("ZSCORE %s %s", qk("dead"), ids[i]);
        assert_int_equal(sc != NULL, want);
        free(sc);
        assert_int_equal(cmd_int("HEXISTS %s %s", qk("deadmsg"), ids[i]), want);
    }
    assert_int_equal(cmd_int("HEXISTS %s old", qk("deadmsg")), 0);
    assert_int_equal(cmd_int("HLEN %s", qk("msg")), 0);
    assert_int_equal(cmd_int("ZCARD %s", qk("held")), 0);
    assert_int_equal(cmd_int("ZCARD %s", qk("leases")), 0);
    fetched_clear(&f);

    /* Never owned (undecodable message found by a client): empty token. */
    enqueue("n1", 0);
    assert_int_equal(bury("n1", -1, "", "rec", 10, 86400000, "{}"), 1);
    assert_int_equal(cmd_int("HEXISTS %s n1", qk("msg")), 0);
    assert_true(cmd_int("ZCARD %s", qk("dead")) == 4);
}

static void test_scripts_extend(void **state)
{
    (void)state;
    enqueue("x1", 0);
    enqueue("x2", 0);
    /* Two fetches, two leases of 50 ms. */
    fetched f, g;
    fetch(&f, "w", 1, 50);
    fetch(&g, "w", 1, 50);
    assert_int_equal(f.n, 1);
    assert_int_equal(g.n, 1);
    assert_string_equal(f.id[0], "x1");
    tq_cmd c;
    tq_cmd_init(&c);
    /* Keep x1's lease alive for a minute; x2's is left to expire. */
    tq_cmd_extend_begin(&c, PFX, Q, f.wid, 60000);
    tq_cmd_extend_add(&c, f.token, "x1");
    redisReply *r = run(&c);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 0);
    freeReplyObject(r);
    assert_true(lease_of(&f) >= f.now + 60000);
    assert_true(lease_of(&g) <= g.now + 50);

    wait_redis_time_past(g.now + 50);
    assert_int_equal(recover(100), 1);
    assert_int_equal(held_by("x1"), f.token);
    assert_int_equal(held_by("x2"), -1);
    assert_int_equal(lease_of(&g), -1);

    /* Extending both reports x2 (lost), plus an unknown id and a wrong token. */
    tq_cmd_extend_begin(&c, PFX, Q, f.wid, 60000);
    tq_cmd_extend_add(&c, f.token, "x1");
    tq_cmd_extend_add(&c, g.token, "x2");
    tq_cmd_extend_add(&c, f.token, "nope");
    tq_cmd_extend_add(&c, f.token + 7, "x1");
    r = run(&c);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 3);
    assert_string_equal(r->element[0]->str, "x2");
    assert_string_equal(r->element[1]->str, "nope");
    assert_string_equal(r->element[2]->str, "x1");
    freeReplyObject(r);
    /* No lease was brought back or made for what is not held. */
    assert_int_equal(lease_of(&g), -1);
    assert_int_equal(cmd_int("ZCARD %s", qk("leases")), 1);
    tq_cmd_release(&c);
    fetched_clear(&f);
    fetched_clear(&g);
}

/* A lease covers one fetch: when it expires, every task still held under
 * its token comes back (and only those), each counted as lost once. */
static void test_scripts_recover_whole_fetch(void **state)
{
    (void)state;
    const char *ids[] = {"r1", "r2", "r3", "r4", "r5"};
    for (int i = 0; i < 5; i++)
        enqueue(ids[i], 0);
    fetched f, g;
    fetch(&f, "w1", 3, 50);    /* r1 r2 r3, short lease */
    fetch(&g, "w2", 1, 60000); /* r4, long lease */
    assert_int_equal(f.n, 3);
    assert_int_equal(g.n, 1);
    assert_int_equal(ack1(f.token, f.wid, "r2", "SUCCESS", "ok"), 1);
    assert_true(lease_of(&f) > 0);
    wait_redis_time_past(f.now + 50);
    assert_int_equal(recover(10), 2);
    assert_int_equal(held_by("r1"), -1);
    assert_int_equal(held_by("r3"), -1);
    assert_int_equal(held_by("r4"), g.token);
    assert_int_equal(lease_of(&f), -1);
    assert_true(lease_of(&g) > 0);
    assert_int_equal(cmd_int("LLEN %s", qk("pending")), 3);
    assert_str_reply(cmd_str("HGET %s r1", qk("lost")), "1");
    assert_str_reply(cmd_str("HGET %s r3", qk("lost")), "1");
    assert_int_equal(cmd_int("HEXISTS %s r2", qk("lost")), 0);
    /* Idempotent: nothing more to recover. */
    assert_int_equal(recover(10), 0);
    fetched_clear(&f);
    /* Back at the head: ahead of r5, which was queued after them. */
    fetch(&f, "w3", 2, 10000);
    assert_int_equal(f.n, 2);
    assert_true(strcmp(f.id[0], "r5") != 0 && strcmp(f.id[1], "r5") != 0);
    assert_int_equal(f.lost[0], 1);
    assert_int_equal(f.lost[1], 1);
    fetched_clear(&f);
    fetched_clear(&g);
}

/* recover's max bounds the tasks one call moves: a lease holding more is
 * taken back in parts and goes with its last task. */
static void test_scripts_recover_in_parts(void **state)
{
    (void)state;
    enqueue("p1", 0);
    enqueue("p2", 0);
    enqueue("p3", 0);
    fetched f;
    fetch(&f, "w1", 3, 50);
    assert_int_equal(f.n, 3);
    wait_redis_time_past(f.now + 50);
    assert_int_equal(recover(2), 2);
    assert_int_equal(cmd_int("ZCARD %s", qk("held")), 1);
    assert_true(lease_of(&f) > 0); /* expired, and kept for what it holds */
    assert_int_equal(recover(2), 1);
    assert_int_equal(cmd_int("ZCARD %s", qk("held")), 0);
    assert_int_equal(lease_of(&f), -1);
    assert_int_equal(cmd_int("LLEN %s", qk("pending")), 3);
    assert_int_equal(recover(2), 0);
    fetched_clear(&f);
}

/* A task leased by a worker of the layout before held/leases (a lease zset
 * of id -> deadline, an owner hash) comes back once that lease expires. */
static void test_scripts_recover_previous_layout(void **state)
{
    (void)state;
    enqueue("L1", 0);
    enqueue("L2", 0);
    assert_int_equal(cmd_int("LLEN %s", qk("pending")), 2);
    /* An old worker took both: L1's lease has expired, L2's has not. */
    freeReplyObject(cmd("RPOP %s 2", qk("pending")));
    long long now = redis_now_ms();
    freeReplyObject(cmd("ZADD %s %lld L1 %lld L2", qk("lease"), now - 1000, now + 60000));
    freeReplyObject(cmd("HSET %s L1 %s L2 %s", qk("owner"), "7 old:1:aa", "7 old:1:aa"));
    assert_int_equal(recover(10), 1);
    assert_true(cmd_str("ZSCORE %s L1", qk("lease")) == NULL);
    assert_int_equal(cmd_int("HEXISTS %s L1", qk("owner")), 0);
    assert_int_equal(cmd_int("HEXISTS %s L2", qk("owner")), 1);
    assert_str_reply(cmd_str("HGET %s L1", qk("lost")), "1");
    fetched f;
    fetch(&f, "w", 10, 10000);
    assert_int_equal(f.n, 1);
    assert_string_equal(f.id[0], "L1");
    assert_int_equal(f.lost[0], 1);
    fetched_clear(&f);
}

static void test_scripts_revoke(void **state)
{
    (void)state;
    char *rec = make_record("A", "REVOKED");
    /* Before start: revoked, the record and done written, fetch skips it. */
    enqueue("A", 0);
    enqueue("B", 0);
    enqueue("C", 0);
    freeReplyObject(watch("C", 10000)); /* someone waits on C */
    assert_int_equal(revoke("A", rec), 1);
    assert_int_equal(cmd_int("HEXISTS %s A", qk("msg")), 0);
    assert_int_equal(cmd_int("EXISTS %s", tk("result", "A")), 0);
    assert_final("A", rec);
    assert_final_ttl("A", TTL);
    assert_int_equal(cmd_int("EXISTS %s", tk("done", "A")), 0);
    /* A waiter is woken with the record. */
    assert_int_equal(revoke("C", "revoked-c"), 1);
    assert_notified("C", "revoked-c");
    assert_final("C", "revoked-c");
    fetched f;
    fetch(&f, "w", 2, 10000);
    assert_int_equal(f.n, 1);
    assert_string_equal(f.id[0], "B");
    assert_int_equal(held_by("A"), -1);
    /* After start. */
    assert_int_equal(revoke("B", rec), -1);
    assert_int_equal(cmd_int("HEXISTS %s B", qk("msg")), 1);
    assert_final("B", NULL);
    /* After finish. */
    assert_int_equal(ack1(f.token, f.wid, "B", "SUCCESS", "done"), 1);
    assert_int_equal(revoke("B", rec), -2);
    assert_final("B", "done");
    /* Already revoked counts as finished. */
    assert_int_equal(revoke("A", rec), -2);
    assert_final("A", rec);
    /* Unknown. */
    assert_int_equal(revoke("nope", rec), 0);
    assert_final("nope", NULL);
    assert_int_equal(cmd_int("EXISTS %s", tk("done", "nope")), 0);
    /* A refused submission's wake-up marker is not a final state. */
    freeReplyObject(cmd("RPUSH %s REFUSED", tk("done", "nope")));
    assert_int_equal(revoke("nope", rec), 0);
    /* A delayed task leaves the delayed set. */
    enqueue("D", 60000);
    assert_int_equal(revoke("D", rec), 1);
    assert_int_equal(cmd_int("ZCARD %s", qk("delayed")), 0);
    fetched_clear(&f);
    free(rec);
}

/* A task whose id is in `pending` twice (revoked and submitted again, or
 * buried unowned and requeued) must not be leased to two workers at once. */
static void test_scripts_fetch_skips_held_duplicates(void **state)
{
    (void)state;
    enqueue("T", 0);
    assert_int_equal(revoke("T", "r"), 1);
    enqueue("T", 0); /* same id, the revoked copy is still in pending */
    assert_int_equal(cmd_int("LLEN %s", qk("pending")), 2);
    fetched f1, f2;
    fetch(&f1, "w1", 1, 10000);
    assert_int_equal(f1.n, 1);
    assert_string_equal(f1.id[0], "T");
    fetch(&f2, "w2", 1, 10000);
    assert_int_equal(f2.n, 0);
    assert_int_equal(held_by("T"), f1.token);
    assert_int_equal(lease_of(&f2), -1); /* an empty fetch leases nothing */
    /* A batch mixing a held copy and a free task takes only the free one,
     * and the held one keeps its holder. */
    assert_int_equal(revoke("T", "r"), -1);
    freeReplyObject(cmd("LPUSH %s T", qk("pending")));
    enqueue("U", 0);
    fetched_clear(&f2);
    fetch(&f2, "w2", 2, 10000);
    assert_int_equal(f2.n, 1);
    assert_string_equal(f2.id[0], "U");
    assert_int_equal(held_by("T"), f1.token);
    assert_int_equal(held_by("U"), f2.token);
    assert_int_equal(ack1(f1.token, f1.wid, "T", "SUCCESS", "ok"), 1);
    fetched_clear(&f1);
    fetched_clear(&f2);
}

/* The same id twice within one batch: enqueue_many accepts it once, and
 * fetch leases it once even when both copies come off pending together. */
static void test_scripts_batch_duplicates(void **state)
{
    (void)state;
    char *m = make_msg("E", 0);
    tq_cmd c;
    tq_cmd_init(&c);
    tq_cmd_enqueue_many_begin(&c, PFX, Q, 0, 0);
    tq_cmd_enqueue_many_add(&c, PFX, Q, "E", m, strlen(m), 0, 0);
    tq_cmd_enqueue_many_add(&c, PFX, Q, "E", m, strlen(m), 0, 0);
    tq_cmd_enqueue_many_end(&c);
    redisReply *r = run(&c);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 2);
    assert_int_equal(r->element[0]->integer, 1);
    assert_int_equal(r->element[1]->integer, -1);
    freeReplyObject(r);
    tq_cmd_release(&c);
    assert_int_equal(cmd_int("LLEN %s", qk("pending")), 1);
    /* Two copies of the id in pending, taken by one fetch. */
    assert_int_equal(revoke("E", "r"), 1);
    enqueue("E", 0);
    assert_int_equal(cmd_int("LLEN %s", qk("pending")), 2);
    fetched f;
    fetch(&f, "w1", 10, 10000);
    assert_int_equal(f.n, 1);
    assert_string_equal(f.id[0], "E");
    assert_int_equal(cmd_int("ZCARD %s", qk("held")), 1);
    assert_int_equal(cmd_int("ZCARD %s", qk("leases")), 1);
    fetched_clear(&f);
    /* A second copy that comes up in a later round of the same call (the
     * first round fell short on a revoked id): skipped too. Taken in the
     * order A, R (revoked), A. */
    enqueue("A", 0);
    enqueue("R", 0);
    assert_int_equal(revoke("R", "r"), 1);
    freeReplyObject(cmd("LPUSH %s A", qk("pending")));
    fetch(&f, "w2", 2, 10000);
    assert_int_equal(f.n, 1);
    assert_string_equal(f.id[0], "A");
    assert_int_equal(held_by("A"), f.token);
    assert_int_equal(cmd_int("LLEN %s", qk("pending")), 0);
    fetched_clear(&f);
    free(m);
}

/* enqueue_many with fresh ids (generated by the caller): queued without the
 * duplicate check; the same call resent after tq_cmd_enqueue_unfresh
 * (a stale link) is refused as duplicates, so nothing is queued twice. */
static void test_scripts_enqueue_many_fresh(void **state)
{
    (void)state;
    char ids[3][TQ_ID_MAX + 1];
    char *m[3];
    tq_cmd c;
    tq_cmd_init(&c);
    tq_cmd_enqueue_many_begin(&c, PFX, Q, 0, 1);
    for (int i = 0; i < 3; i++) {
        tq_random_id(ids[i]);
        m[i] = make_msg(ids[i], 0);
        tq_cmd_enqueue_many_add(&c, PFX, Q, ids[i], m[i], strlen(m[i]), i == 2 ? 60000 : 0, 0);
    }
    tq_cmd_enqueue_many_end(&c);
    for (int round = 0; round < 2; round++) {
        redisReply *r = run(&c);
        assert_int_equal(r->type, REDIS_REPLY_ARRAY);
        assert_int_equal(r->elements, 3);
        for (int i = 0; i < 3; i++)
            assert_int_equal(r->element[i]->integer, round ? -1 : i == 2 ? 2 : 1);
        freeReplyObject(r);
        tq_cmd_enqueue_unfresh(&c);
    }
    assert_int_equal(cmd_int("LLEN %s", qk("pending")), 2);
    assert_int_equal(cmd_int("ZCARD %s", qk("delayed")), 1);
    assert_int_equal(cmd_int("HLEN %s", qk("msg")), 3);
    for (int i = 0; i < 3; i++) {
        char *s = cmd_str("HGET %s %s", qk("msg"), ids[i]);
        assert_string_equal(s, m[i]);
        free(s);
        free(m[i]);
    }
    fetched f;
    fetch(&f, "w", 10, 10000);
    assert_int_equal(f.n, 2);
    assert_string_equal(f.id[0], ids[0]);
    assert_string_equal(f.id[1], ids[1]);
    fetched_clear(&f);
    tq_cmd_release(&c);
}

/* The layouts of enqueue_many (docs/PROTOCOL.md#enqueue_many): a fresh call
 * passes no per-task key, a call of ids chosen by the user two (their old
 * records go); either way a refused task leaves nothing behind, as a batch
 * is never waited on. A single enqueue that is waited on (wait_ms > 0) wakes
 * the wait with REFUSED instead, and registers no waiter. A call whose
 * counts fit no layout is refused as a whole. */
static void test_scripts_enqueue_many_layouts(void **state)
{
    (void)state;
    char ids[2][TQ_ID_MAX + 1];
    char *m[2];
    tq_cmd c;
    tq_cmd_init(&c);
    for (int fresh = 0; fresh < 2; fresh++) {
        cmd_int("DEL %s %s", qk("msg"), qk("pending"));
        tq_cmd_enqueue_many_begin(&c, PFX, Q, 1, fresh); /* room for one */
        for (int i = 0; i < 2; i++) {
            tq_random_id(ids[i]);
            m[i] = make_msg(ids[i], 0);
            tq_cmd_enqueue_many_add(&c, PFX, Q, ids[i], m[i], strlen(m[i]), 0, 0);
        }
        tq_cmd_enqueue_many_end(&c);
        /* Two arguments per task; the results index and two keys per task
         * only for ids chosen by the user. */
        assert_int_equal(c.argc, 3 + 3 + (fresh ? 0 : 1 + 2 * 2) + 4 + 2 * 2);
        redisReply *r = run(&c);
        assert_int_equal(r->type, REDIS_REPLY_ARRAY);
        assert_int_equal(r->elements, 2);
        assert_int_equal(r->element[0]->integer, 1);
        assert_int_equal(r->element[1]->integer, -2);
        freeReplyObject(r);
        char *s = cmd_str("HGET %s %s", qk("msg"), ids[0]);
        assert_string_equal(s, m[0]);
        free(s);
        assert_int_equal(cmd_int("HEXISTS %s %s", qk("msg"), ids[1]), 0);
        for (int i = 0; i < 2; i++) {
            assert_int_equal(cmd_int("EXISTS %s", tk("done", ids[i])), 0);
            assert_int_equal(cmd_int("EXISTS %s", tk("result", ids[i])), 0);
            free(m[i]);
        }
        /* Nothing but the message and the queue. */
        r = cmd("KEYS *");
        assert_int_equal(r->elements, 2);
        freeReplyObject(r);
    }
    /* A single submit-and-wait refused: the wait wakes at once, and no
     * waiter is left registered (nothing will settle the task). */
    char id[TQ_ID_MAX + 1];
    tq_random_id(id);
    char *mw = make_msg(id, 0);
    assert_int_equal(enqueue_full(id, mw, 0, 0, 1, 1, 30000, NULL, 0), -2);
    assert_notified(id, "REFUSED");
    assert_int_equal(cmd_int("HEXISTS %s %s", qk("msg"), id), 0);
    assert_int_equal(cmd_int("EXISTS %s", qk("waiting")), 0);
    /* The same for an id chosen by the user, and a delayed one. */
    assert_int_equal(enqueue_full("uw", mw, 60000, 0, 1, 0, 30000, NULL, 0), -2);
    assert_notified("uw", "REFUSED");
    assert_int_equal(cmd_int("EXISTS %s", qk("waiting")), 0);
    assert_int_equal(cmd_int("EXISTS %s", qk("delayed")), 0);
    free(mw);
    /* Three tasks' arguments but n says two: refused, nothing stored. */
    cmd_int("DEL %s %s", qk("msg"), qk("pending"));
    tq_cmd_enqueue_many_begin(&c, PFX, Q, 0, 1);
    for (int i = 0; i < 3; i++)
        tq_cmd_enqueue_many_add(&c, PFX, Q, "x", "{}", 2, 0, 0);
    tq_cmd_enqueue_many_end(&c);
    free(c.argv[3 + 3 + 3]);
    c.argv[3 + 3 + 3] = strdup("2");
    c.argvlen[3 + 3 + 3] = 1;
    redisReply *r = run(&c);
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    assert_non_null(strstr(r->str, "do not fit 2 tasks"));
    freeReplyObject(r);
    assert_int_equal(cmd_int("HLEN %s", qk("msg")), 0);
    tq_cmd_release(&c);
}

static void test_scripts_state(void **state)
{
    (void)state;
    state_of("S", NULL, 0, 0);
    enqueue("S", 0);
    state_of("S", NULL, 0, 1);
    fetched f;
    fetch(&f, "w", 1, 10000);
    /* Running: owner set (the message stays until it is settled). */
    tq_cmd c;
    tq_cmd_init(&c);
    tq_cmd_state(&c, PFX, Q, "S");
    redisReply *r = run(&c);
    assert_int_equal(r->element[1]->integer, 1);
    freeReplyObject(r);
    tq_cmd_release(&c);
    /* An intermediate record (progress) shows while it runs ... */
    tq_cmd_init(&c);
    tq_cmd_progress(&c, PFX, Q, "S", f.token, "prog", TTL);
    assert_int_equal(run_int(&c), 1);
    tq_cmd_release(&c);
    state_of("S", "prog", 1, 1);
    /* ... and the final record, in its generation, wins over it. */
    assert_int_equal(ack1(f.token, f.wid, "S", "SUCCESS", "rec"), 1);
    state_of("S", "rec", 0, 0);
    fetched_clear(&f);
    /* A refused submission's wake-up marker is no record. */
    freeReplyObject(cmd("RPUSH %s REFUSED", tk("done", "U")));
    state_of("U", NULL, 0, 0);
}

static void test_scripts_progress(void **state)
{
    (void)state;
    fetched f;
    take_one("P", &f);
    tq_cmd c;
    tq_cmd_init(&c);
    tq_cmd_progress(&c, PFX, Q, "P", f.token + 1, "stale", TTL);
    assert_int_equal(run_int(&c), 0);
    assert_int_equal(cmd_int("EXISTS %s", tk("result", "P")), 0);
    tq_cmd_progress(&c, PFX, Q, "P", f.token, "{\"state\":\"STARTED\"}", TTL);
    assert_int_equal(run_int(&c), 1);
    assert_str_reply(cmd_str("GET %s", tk("result", "P")), "{\"state\":\"STARTED\"}");
    assert_ttl_within(tk("result", "P"), TTL);
    tq_cmd_release(&c);
    fetched_clear(&f);
}

static void test_scripts_dead_requeue(void **state)
{
    (void)state;
    fetched f;
    take_one("Z", &f);
    assert_int_equal(bury("Z", f.token, f.wid, "rec", 10, 86400000, "{\"id\":\"Z\"}"), 1);
    fetched_clear(&f);
    assert_final("Z", "rec");
    /* A wait on it got the record in its done list. */
    freeReplyObject(watch("Z", 10000));
    assert_notified("Z", "rec");
    char *m = make_msg("Z", 0);
    tq_cmd c;
    tq_cmd_init(&c);
    tq_cmd_dead_requeue(&c, PFX, Q, "nope", m, strlen(m));
    assert_int_equal(run_int(&c), 0);
    assert_int_equal(cmd_int("HEXISTS %s nope", qk("msg")), 0);
    tq_cmd_dead_requeue(&c, PFX, Q, "Z", m, strlen(m));
    assert_int_equal(run_int(&c), 1);
    assert_true(cmd_str("ZSCORE %s Z", qk("dead")) == NULL);
    assert_int_equal(cmd_int("HEXISTS %s Z", qk("deadmsg")), 0);
    assert_int_equal(cmd_int("EXISTS %s", tk("result", "Z")), 0);
    assert_str_reply(cmd_str("HGET %s Z", qk("msg")), m);
    /* Its old final record and notification went: queued, not finished. */
    assert_final("Z", NULL);
    assert_int_equal(cmd_int("EXISTS %s", tk("done", "Z")), 0);
    state_of("Z", NULL, 0, 1);
    fetch(&f, "w", 1, 10000);
    assert_int_equal(f.n, 1);
    assert_string_equal(f.id[0], "Z");
    assert_string_equal(f.msg[0], m);
    /* Only once. */
    tq_cmd_dead_requeue(&c, PFX, Q, "Z", m, strlen(m));
    assert_int_equal(run_int(&c), 0);
    fetched_clear(&f);
    tq_cmd_release(&c);
    free(m);
}

/* watch (what a blocking wait sends before its BLMOVE) on a task not yet
 * finished registers a waiter until the window's end plus some slack, as an
 * enqueue with wait_ms does; the ack that settles it pushes the record to
 * done:<id> for a minute and unregisters it. A task nobody waits on gets no
 * done list, nor does one whose registration is past its deadline. */
static void test_scripts_watch_registers(void **state)
{
    (void)state;
    enqueue("W", 0);
    enqueue("N", 0);
    enqueue("X", 0);
    long long t0 = redis_now_ms();
    redisReply *r = watch("W", 10000);
    long long t1 = redis_now_ms();
    /* The reply is state's: no record, not running, queued. */
    assert_int_equal(r->element[0]->type, REDIS_REPLY_NIL);
    assert_int_equal(r->element[1]->integer, 0);
    assert_int_equal(r->element[2]->integer, 1);
    freeReplyObject(r);
    char *s = cmd_str("ZSCORE %s W", qk("waiting"));
    assert_non_null(s);
    long long deadline = atoll(s);
    free(s);
    assert_true(deadline >= t0 + 10000 + 5000 && deadline <= t1 + 10000 + 5000);
    assert_true(cmd_int("PEXPIRETIME %s", qk("waiting")) >= deadline);
    assert_int_equal(cmd_int("EXISTS %s", tk("done", "W")), 0);
    /* A submit-and-wait registers its task the same way. */
    char *mv = make_msg("V", 0);
    t0 = redis_now_ms();
    assert_int_equal(enqueue_full("V", mv, 0, 0, 0, 0, 20000, NULL, 0), 1);
    t1 = redis_now_ms();
    s = cmd_str("ZSCORE %s V", qk("waiting"));
    assert_non_null(s);
    assert_true(atoll(s) >= t0 + 20000 + 5000 && atoll(s) <= t1 + 20000 + 5000);
    free(s);
    assert_true(cmd_int("PEXPIRETIME %s", qk("waiting")) >= t0 + 25000);
    free(mv);
    /* X was registered once, by a wait that has ended since. */
    freeReplyObject(cmd("ZADD %s %lld X", qk("waiting"), redis_now_ms() - 1));

    fetched f;
    fetch(&f, "w", 4, 10000);
    assert_int_equal(f.n, 4);
    /* Watched again while running, with a shorter window: the state says
     * running, and the registration is not cut short. */
    r = watch("W", 0);
    assert_int_equal(r->element[0]->type, REDIS_REPLY_NIL);
    assert_int_equal(r->element[1]->integer, 1);
    assert_int_equal(r->element[2]->integer, 1);
    freeReplyObject(r);
    s = cmd_str("ZSCORE %s W", qk("waiting"));
    assert_int_equal(atoll(s), deadline);
    free(s);

    char *rec = make_record("W", "SUCCESS");
    assert_int_equal(ack1(f.token, f.wid, "W", "SUCCESS", rec), 1);
    assert_notified("W", rec);
    assert_final("W", rec);
    /* The registration goes with the notification. */
    assert_true(cmd_str("ZSCORE %s W", qk("waiting")) == NULL);
    /* The others are not woken by it. */
    assert_int_equal(cmd_int("EXISTS %s", tk("done", "V")), 0);
    assert_int_equal(ack1(f.token, f.wid, "V", "FAILURE", "rv"), 1);
    assert_notified("V", "rv");
    assert_true(cmd_str("ZSCORE %s V", qk("waiting")) == NULL);
    /* Nobody waits on N; X's registration is past its deadline. */
    assert_int_equal(ack1(f.token, f.wid, "N", "SUCCESS", "rn"), 1);
    assert_int_equal(ack1(f.token, f.wid, "X", "SUCCESS", "rx"), 1);
    assert_int_equal(cmd_int("EXISTS %s", tk("done", "N")), 0);
    assert_int_equal(cmd_int("EXISTS %s", tk("done", "X")), 0);
    assert_final("N", "rn");
    assert_final("X", "rx");
    /* X's registration, past its deadline, went with its ack too. */
    assert_int_equal(cmd_int("EXISTS %s", qk("waiting")), 0);
    fetched_clear(&f);
    free(rec);
}

/* Registrations past their deadline are shed by a watch, and by an ack of
 * several tasks once the set holds more than 1,000; live ones stay. The set
 * expires after the longest registration there can be (a window of at
 * most a minute, plus 5 s). */
static void test_scripts_waiting_shed(void **state)
{
    (void)state;
    long long past = redis_now_ms() - 1000;
    for (int i = 0; i < 1001; i++)
        freeReplyObject(cmd("ZADD %s %lld old%d", qk("waiting"), past, i));
    enqueue("L", 0);
    enqueue("M", 0);
    enqueue("K", 0);
    freeReplyObject(watch("L", 30000)); /* a watch sheds the dead ones */
    assert_int_equal(cmd_int("ZCARD %s", qk("waiting")), 1);
    long long pttl = cmd_int("PTTL %s", qk("waiting"));
    assert_true(pttl > 60000 && pttl <= 65000);
    freeReplyObject(watch("K", 30000));
    for (int i = 0; i < 1001; i++)
        freeReplyObject(cmd("ZADD %s %lld old%d", qk("waiting"), past, i));
    fetched f;
    fetch(&f, "w", 3, 10000);
    assert_int_equal(f.n, 3);
    /* An ack of two (L, M) sheds the dead ones and L's, not K's. */
    const char *ids[] = {"L", "M"}, *recs[] = {"rl", "rm"};
    redisReply *r = ack_batch(&f, ids, recs, 2);
    assert_int_equal(r->element[0]->integer, 2);
    freeReplyObject(r);
    assert_notified("L", "rl");
    assert_int_equal(cmd_int("EXISTS %s", tk("done", "M")), 0);
    assert_int_equal(cmd_int("ZCARD %s", qk("waiting")), 1);
    char *k = cmd_str("ZSCORE %s K", qk("waiting"));
    assert_non_null(k);
    free(k);
    fetched_clear(&f);
}

/* watch on a task that has finished puts its record in done:<id> at once
 * (the BLMOVE behind returns) and registers nothing; watched again, with
 * the record still there, it adds no second copy. */
static void test_scripts_watch_finished(void **state)
{
    (void)state;
    fetched f;
    take_one("F", &f);
    char *rec = make_record("F", "SUCCESS");
    assert_int_equal(ack1(f.token, f.wid, "F", "SUCCESS", rec), 1);
    assert_int_equal(cmd_int("EXISTS %s", tk("done", "F")), 0);
    for (int round = 0; round < 2; round++) {
        redisReply *r = watch("F", 10000);
        assert_int_equal(r->element[0]->type, REDIS_REPLY_STRING);
        assert_string_equal(r->element[0]->str, rec);
        assert_int_equal(r->element[1]->integer, 0);
        assert_int_equal(r->element[2]->integer, 0);
        freeReplyObject(r);
        assert_notified("F", rec);
        assert_int_equal(cmd_int("EXISTS %s", qk("waiting")), 0);
    }
    assert_final("F", rec);
    /* An unknown task: registered (it may be submitted yet), nothing pushed. */
    redisReply *r = watch("U", 1000);
    assert_int_equal(r->element[0]->type, REDIS_REPLY_NIL);
    assert_int_equal(r->element[2]->integer, 0);
    freeReplyObject(r);
    assert_int_equal(cmd_int("EXISTS %s", tk("done", "U")), 0);
    assert_int_equal(cmd_int("ZCARD %s", qk("waiting")), 1);
    fetched_clear(&f);
    free(rec);
}

static int early_in_span_cond(void *arg)
{
    (void)arg;
    return redis_now_ms() % 1000 < 200;
}

/* The results generations: a record goes into the generation of its span
 * (start = now - now % span), listed in the index with the time it retires,
 * start + span + ttl, and expiring two spans after that; a longer TTL in
 * the same generation postpones both, a shorter one does not bring them
 * forward. The first write to a new generation after the retirement time
 * unlinks the old one and drops it from the index, and sheds the waiter
 * registrations past their deadline. */
static void test_scripts_results_generations(void **state)
{
    (void)state;
    const long long ttl = 2000, span = span_of(ttl);
    assert_int_equal(span, 1000);
    const char *ids[] = {"g1", "g2", "g3", "g4"};
    for (int i = 0; i < 4; i++)
        enqueue(ids[i], 0);
    fetched f;
    fetch(&f, "w", 4, 60000);
    assert_int_equal(f.n, 4);
    /* Early in a span: the next acks most likely land in the same one. */
    assert_true(th_wait_until(early_in_span_cond, NULL, WAIT_MS));
    long long t0 = redis_now_ms();
    assert_int_equal(ack1_ttl(f.token, f.wid, "g1", "SUCCESS", "r1", ttl), 1);
    long long t1 = redis_now_ms();
    long long start = -1;
    assert_str_reply(final_record_at("g1", &start), "r1");
    assert_int_equal(start % span, 0);
    assert_true(start > t0 - span && start <= t1);
    assert_int_equal(cmd_int("ZCARD %s", qk("results")), 1);
    long long retire = retire_of(start);
    assert_int_equal(retire, start + span + ttl);
    assert_int_equal(cmd_int("PEXPIRETIME %s", gen_key(start)), retire + 2 * span);
    assert_true(cmd_int("PEXPIRETIME %s", qk("results")) >= retire + 2 * span);
    assert_final_ttl("g1", ttl);

    /* A longer TTL (the span is the same up to 8 s), then a shorter one. */
    assert_int_equal(ack1_ttl(f.token, f.wid, "g2", "SUCCESS", "r2", ttl + 1000), 1);
    assert_int_equal(ack1_ttl(f.token, f.wid, "g3", "SUCCESS", "r3", 1000), 1);
    int same = redis_now_ms() < start + span; /* all three in one generation */
    if (same) {
        long long s2 = -1, s3 = -1;
        assert_str_reply(final_record_at("g2", &s2), "r2");
        assert_str_reply(final_record_at("g3", &s3), "r3");
        assert_int_equal(s2, start);
        assert_int_equal(s3, start);
        assert_int_equal(cmd_int("HLEN %s", gen_key(start)), 3);
        retire = retire_of(start);
        assert_int_equal(retire, start + span + ttl + 1000);
        assert_int_equal(cmd_int("PEXPIRETIME %s", gen_key(start)), retire + 2 * span);
        assert_true(cmd_int("PEXPIRETIME %s", qk("results")) >= retire + 2 * span);
    } else {
        print_message("acks crossed a span boundary: postponement not checked\n");
    }

    /* From now on only the script may remove the generation (whichever of
     * the acks above landed in it set its retirement). */
    retire = retire_of(start);
    assert_true(retire >= start + span + ttl);
    assert_int_equal(cmd_int("PERSIST %s", gen_key(start)), 1);
    assert_int_equal(cmd_int("PERSIST %s", qk("results")), 1);
    wait_redis_time_past(retire);
    assert_int_equal(cmd_int("EXISTS %s", gen_key(start)), 1);
    /* A dead registration (its waiter gone) and a live one. */
    freeReplyObject(cmd("ZADD %s %lld gone", qk("waiting"), redis_now_ms() - 1));
    freeReplyObject(cmd("ZADD %s %lld live", qk("waiting"), redis_now_ms() + 60000));
    assert_int_equal(ack1_ttl(f.token, f.wid, "g4", "SUCCESS", "r4", ttl), 1);
    assert_int_equal(cmd_int("EXISTS %s", gen_key(start)), 0);
    /* A new generation sheds the dead registration, not the live one. */
    assert_true(cmd_str("ZSCORE %s gone", qk("waiting")) == NULL);
    char *live = cmd_str("ZSCORE %s live", qk("waiting"));
    assert_non_null(live);
    free(live);
    assert_int_equal(retire_of(start), -1);
    assert_final("g1", NULL);
    state_of("g1", NULL, 0, 0);
    if (same) {
        assert_final("g2", NULL);
        assert_final("g3", NULL);
    }
    /* The new record is in a new generation, which set the index's expiry. */
    long long start4 = -1;
    assert_str_reply(final_record_at("g4", &start4), "r4");
    assert_true(start4 > start);
    assert_int_equal(retire_of(start4), start4 + span + ttl);
    assert_int_equal(cmd_int("PEXPIRETIME %s", qk("results")), retire_of(start4) + 2 * span);
    assert_final_ttl("g4", ttl);
    state_of("g4", "r4", 0, 0);
    fetched_clear(&f);
}

/* An id chosen by the user, submitted again after it finished: its old
 * final record goes (enqueue and enqueue_many alike), and the task is
 * queued, not finished: state shows no record, revoke cancels it. */
static void test_scripts_reenqueue_forgets_final_record(void **state)
{
    (void)state;
    const char *ids[] = {"X", "Y", "K"};
    for (int i = 0; i < 3; i++)
        enqueue(ids[i], 0);
    fetched f;
    fetch(&f, "w", 3, 10000);
    assert_int_equal(f.n, 3);
    assert_int_equal(ack1(f.token, f.wid, "X", "SUCCESS", "rx"), 1);
    assert_int_equal(ack1(f.token, f.wid, "Y", "SUCCESS", "ry"), 1);
    assert_int_equal(ack1(f.token, f.wid, "K", "SUCCESS", "rk"), 1);
    fetched_clear(&f);
    state_of("X", "rx", 0, 0);
    assert_int_equal(revoke("X", "rev"), -2);

    enqueue("X", 0);
    assert_final("X", NULL);
    state_of("X", NULL, 0, 1);
    assert_final("Y", "ry"); /* the others stay */
    assert_final("K", "rk");

    char *m = make_msg("Y", 0);
    tq_cmd c;
    tq_cmd_init(&c);
    tq_cmd_enqueue_many_begin(&c, PFX, Q, 0, 0);
    tq_cmd_enqueue_many_add(&c, PFX, Q, "Y", m, strlen(m), 0, 0);
    tq_cmd_enqueue_many_end(&c);
    redisReply *r = run(&c);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 1);
    assert_int_equal(r->element[0]->integer, 1);
    freeReplyObject(r);
    tq_cmd_release(&c);
    free(m);
    assert_final("Y", NULL);
    state_of("Y", NULL, 0, 1);
    assert_final("K", "rk");

    /* Queued again: revoke cancels it rather than call it finished. */
    assert_int_equal(revoke("X", "rev"), 1);
    assert_final("X", "rev");
}

/* A generation emptied by results_forget (its hash is gone, its index
 * entry stays) and written again gets its expiry back: the ZADD to the
 * index changes nothing then, so that alone must not decide. */
static void test_scripts_results_generation_remade_expires(void **state)
{
    (void)state;
    enqueue("X", 0);
    enqueue("Y", 0);
    fetched f;
    fetch(&f, "w", 2, 10000);
    assert_int_equal(f.n, 2);
    assert_int_equal(ack1(f.token, f.wid, "X", "SUCCESS", "rx"), 1);
    long long sx = 0;
    free(final_record_at("X", &sx));
    enqueue("X", 0); /* a user's id again: its old record goes, and the hash with it */
    assert_int_equal(cmd_int("EXISTS %s", gen_key(sx)), 0);
    assert_int_equal(ack1(f.token, f.wid, "Y", "SUCCESS", "ry"), 1);
    fetched_clear(&f);
    long long sy = 0;
    free(final_record_at("Y", &sy));
    if (sy != sx)
        print_message("note: the acks fell into two generations; the hash was not remade\n");
    long long pttl = cmd_int("PTTL %s", gen_key(sy));
    if (pttl <= TTL - 5000 || pttl > TTL + 3 * span_of(TTL))
        fail_msg("generation %lld: PTTL %lld, want %d..%lld", sy, pttl, TTL - 5000,
                 TTL + 3 * span_of(TTL));
}

/* revoke of a task that has finished (acked, buried or revoked) says so
 * (-2) and changes nothing: the record stays, no waiter is woken. */
static void test_scripts_revoke_finished(void **state)
{
    (void)state;
    enqueue("a", 0);
    enqueue("b", 0);
    enqueue("r", 0);
    assert_int_equal(revoke("r", "rr"), 1);
    fetched f;
    fetch(&f, "w", 2, 10000);
    assert_int_equal(f.n, 2);
    assert_int_equal(ack1(f.token, f.wid, "a", "SUCCESS", "ra"), 1);
    assert_int_equal(bury("b", f.token, f.wid, "rb", 10, 86400000, "{}"), 1);
    fetched_clear(&f);
    const char *ids[] = {"a", "b", "r"}, *recs[] = {"ra", "rb", "rr"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(revoke(ids[i], "late"), -2);
        assert_final(ids[i], recs[i]);
        assert_int_equal(cmd_int("EXISTS %s", tk("done", ids[i])), 0);
        assert_int_equal(cmd_int("HEXISTS %s %s", qk("msg"), ids[i]), 0);
    }
    /* Never submitted: unknown, not finished. */
    assert_int_equal(revoke("nope", "late"), 0);
    assert_final("nope", NULL);
}

/* After every kind of write, each key either expires or is one of the
 * bounded per-queue structures, and carries the queue's hash tag: the
 * results generations and their index expire a TTL and at most three spans
 * after the last record, the waiter registrations and notifications too. */
static void test_scripts_keys_bounded_or_ttl(void **state)
{
    (void)state;
    enqueue("k1", 0);
    enqueue("k2", 0);
    enqueue("k3", 0);
    enqueue("k4", 0);
    enqueue("k5", 60000);
    /* A waiter on k1 (notified by its ack) and a submit-and-wait (k6). */
    freeReplyObject(watch("k1", 10000));
    char *m6 = make_msg("k6", 0);
    assert_int_equal(enqueue_full("k6", m6, 0, 0, 0, 0, 10000, NULL, 0), 1);
    free(m6);
    fetched f;
    fetch(&f, "w", 3, 10000);
    assert_int_equal(f.n, 3);
    assert_string_equal(f.id[0], "k1");
    char *rec = make_record("x", "SUCCESS");
    assert_int_equal(ack1(f.token, f.wid, f.id[0], "SUCCESS", rec), 1);
    assert_int_equal(bury(f.id[1], f.token, f.wid, rec, 10, 86400000, "{}"), 1);
    tq_cmd c;
    tq_cmd_init(&c);
    tq_cmd_retry(&c, PFX, Q, f.id[2], f.token, f.wid, "m", 1, rec, 1000, TTL);
    assert_int_equal(run_int(&c), 1);
    tq_cmd_release(&c);
    assert_int_equal(revoke("k4", rec), 1);
    free(rec);
    fetched_clear(&f);

    static const char *bounded[] = {"pending", "msg",  "delayed", "held",   "leases",
                                    "fence",   "lost", "dead",    "deadmsg"};
    /* The kinds that must expire, each seen at least once. */
    enum { INDEX, GEN, WAITING, DONE, RESULT, NKINDS };
    int seen[NKINDS] = {0};
    redisReply *keys = cmd("KEYS *");
    assert_true(keys->elements > 0);
    for (size_t i = 0; i < keys->elements; i++) {
        const char *k = keys->element[i]->str;
        const char *tag = PFX "{" Q "}:";
        if (strncmp(k, tag, strlen(tag)) != 0)
            fail_msg("key %s lacks the {" Q "} hash tag", k);
        const char *kind = k + strlen(tag);
        int is_bounded = 0;
        for (size_t j = 0; j < sizeof(bounded) / sizeof(bounded[0]); j++)
            is_bounded |= strcmp(kind, bounded[j]) == 0;
        if (is_bounded)
            continue;
        long long max = TTL;
        if (strcmp(kind, "results") == 0) {
            seen[INDEX]++;
            max = TTL + 3 * span_of(TTL);
        } else if (strncmp(kind, "results:", 8) == 0) {
            seen[GEN]++;
            max = TTL + 3 * span_of(TTL);
        } else if (strcmp(kind, "waiting") == 0) {
            seen[WAITING]++;
            max = 60000 + 5000;
        } else if (strncmp(kind, "done:", 5) == 0) {
            seen[DONE]++;
            max = 60000;
        } else if (strncmp(kind, "result:", 7) == 0) {
            seen[RESULT]++;
        } else {
            fail_msg("unexpected key %s", k);
        }
        long long pttl = cmd_int("PTTL %s", k);
        if (pttl <= 0 || pttl > max)
            fail_msg("key %s has PTTL %lld: neither bounded nor expiring (max %lld)", k, pttl, max);
    }
    freeReplyObject(keys);
    /* One index and one generation (ack, bury and revoke within a span, or
     * a few more at a boundary), the registration of k6, the notification
     * of k1, retry's intermediate record. */
    assert_int_equal(seen[INDEX], 1);
    assert_true(seen[GEN] >= 1 && seen[GEN] <= 3);
    assert_int_equal(seen[WAITING], 1);
    assert_int_equal(seen[DONE], 1);
    assert_int_equal(seen[RESULT], 1);
    assert_int_equal(cmd_int("EXISTS %s", tk("done", "k1")), 1);
    /* k1's registration went with its notification; k6's stays. */
    assert_int_equal(cmd_int("ZCARD %s", qk("waiting")), 1);
}

/* Read one pub/sub message (with the context's read time-out) and return its
 * payload (malloc'd), failing the test on time-out. */
static char *next_message(redisContext *sub)
{
    void *rv = NULL;
    if (redisGetReply(sub, &rv) != REDIS_OK)
        fail_msg("no pub/sub message: %s", sub->errstr);
    redisReply *r = rv;
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 3);
    assert_string_equal(r->element[0]->str, "message");
    char *s = tq_xstrndup(r->element[2]->str, r->element[2]->len);
    freeReplyObject(r);
    return s;
}

/* Publish a marker and expect it to be the next message: proves nothing
 * else was published in between. */
static void expect_no_wake(redisContext *sub, const char *chan)
{
    freeReplyObject(cmd("PUBLISH %s marker", chan));
    assert_str_reply(next_message(sub), "marker");
}

static void test_scripts_wake_channel(void **state)
{
    (void)state;
    char chan[TQ_KEY_MAX];
    tq_cmd_wake_channel(chan, PFX, Q);
    redisContext *sub = th_redis(F->srv);
    assert_non_null(sub);
    struct timeval tv = {WAIT_MS / 1000, 0};
    redisSetTimeout(sub, tv);
    redisReply *r = redisCommand(sub, "SUBSCRIBE %s", chan);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    freeReplyObject(r);

    enqueue("w1", 0); /* into an empty list */
    assert_str_reply(next_message(sub), "p");
    enqueue("w2", 0); /* list not empty: no wake */
    expect_no_wake(sub, chan);

    enqueue("d1", 60000); /* the earliest delayed task */
    assert_str_reply(next_message(sub), "d");
    enqueue("d2", 120000); /* not the earliest */
    expect_no_wake(sub, chan);
    enqueue("d3", 30000); /* earlier than d1 */
    assert_str_reply(next_message(sub), "d");

    /* Lost tasks recovered into an empty list (recover's max counts
     * leases: one fetch each here). */
    fetched f, g;
    fetch(&f, "w", 1, 50);
    fetch(&g, "w", 1, 50);
    assert_int_equal(f.n + g.n, 2);
    expect_no_wake(sub, chan);
    wait_redis_time_past(g.now + 50);
    assert_int_equal(recover(1), 1);
    assert_str_reply(next_message(sub), "p");
    assert_int_equal(recover(1), 1); /* list no longer empty */
    expect_no_wake(sub, chan);
    fetched_clear(&f);
    fetched_clear(&g);
    redisFree(sub);
}

static void test_scripts_noscript_fallback(void **state)
{
    (void)state;
    enqueue("N", 0);
    freeReplyObject(cmd("SCRIPT FLUSH"));
    tq_cmd c;
    tq_cmd_init(&c);
    tq_cmd_state(&c, PFX, Q, "N");
    const char **av = (void *)c.argv;
    redisReply *r = redisCommandArgv(F->c, c.argc, av, c.argvlen);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    assert_memory_equal(r->str, "NOSCRIPT", 8);
    freeReplyObject(r);
    tq_cmd_to_eval(&c);
    av = (void *)c.argv;
    r = redisCommandArgv(F->c, c.argc, av, c.argvlen);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->element[2]->integer, 1);
    freeReplyObject(r);
    /* EVAL cached the body under the embedded SHA: EVALSHA works again. */
    tq_cmd_state(&c, PFX, Q, "N");
    av = (void *)c.argv;
    r = redisCommandArgv(F->c, c.argc, av, c.argvlen);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    freeReplyObject(r);
    tq_cmd_release(&c);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup(name, flush)
    const struct CMUnitTest tests[] = {
        T(test_scripts_sha_matches_redis),
        T(test_scripts_enqueue_fetch_ack),
        T(test_scripts_fetch_fifo_and_max),
        T(test_scripts_fetch_buries_invalid_ids),
        T(test_scripts_fetch_promotes_thousands_due),
        T(test_scripts_enqueue_many),
        T(test_scripts_enqueue_duplicate_refused),
        T(test_scripts_enqueue_queue_cap),
        T(test_scripts_enqueue_clears_stale_result),
        T(test_scripts_enqueue_fresh),
        T(test_scripts_delayed_enqueue),
        T(test_scripts_fencing_after_lease_expiry),
        T(test_scripts_ack_batch),
        T(test_scripts_retry),
        T(test_scripts_requeue_at_head),
        T(test_scripts_bury),
        T(test_scripts_extend),
        T(test_scripts_recover_whole_fetch),
        T(test_scripts_recover_in_parts),
        T(test_scripts_recover_previous_layout),
        T(test_scripts_revoke),
        T(test_scripts_fetch_skips_held_duplicates),
        T(test_scripts_batch_duplicates),
        T(test_scripts_enqueue_many_fresh),
        T(test_scripts_enqueue_many_layouts),
        T(test_scripts_state),
        T(test_scripts_progress),
        T(test_scripts_dead_requeue),
        T(test_scripts_watch_registers),
        T(test_scripts_watch_finished),
        T(test_scripts_results_generations),
        T(test_scripts_reenqueue_forgets_final_record),
        T(test_scripts_results_generation_remade_expires),
        T(test_scripts_waiting_shed),
        T(test_scripts_revoke_finished),
        T(test_scripts_keys_bounded_or_ttl),
        T(test_scripts_wake_channel),
        T(test_scripts_noscript_fallback),
    };
#undef T
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
