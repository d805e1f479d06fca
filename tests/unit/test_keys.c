/* Unit tests for broker/tq_keys and broker/tq_cmd: the key schema (every key
 * of a queue carries the {Q} hash tag) and the argument layout of each
 * script command, checked against the KEYS/ARGV lists of docs/PROTOCOL.md
 * and against the "-- KEYS:" header of each embedded Lua script. */
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
#include "broker/tq_scripts.h"

#define P "pfx:"
#define Q "q.1"
#define ID "id-1"
#define TAG P "{" Q "}:"

static void test_keys_schema(void **state)
{
    (void)state;
    char k[TQ_KEY_MAX];
    tq_key_queue(k, TQ_DEFAULT_PREFIX, "default", "pending");
    assert_string_equal(k, "taskq:{default}:pending");
    tq_key_task(k, TQ_DEFAULT_PREFIX, "default", "result", "abc");
    assert_string_equal(k, "taskq:{default}:result:abc");
    tq_key_task(k, P, Q, "done", ID);
    assert_string_equal(k, TAG "done:" ID);
    tq_key_global(k, TQ_DEFAULT_PREFIX, "workers");
    assert_string_equal(k, "taskq:workers");
    tq_key_worker(k, TQ_DEFAULT_PREFIX, "host:12:abcd");
    assert_string_equal(k, "taskq:worker:host:12:abcd");
    tq_cmd_wake_channel(k, P, Q);
    assert_string_equal(k, TAG "wake");
    /* The longest valid names fit. */
    char pre[65], q[65], id[65];
    memset(pre, 'p', 64);
    memset(q, 'q', 64);
    memset(id, 'i', 64);
    pre[64] = q[64] = id[64] = '\0';
    tq_key_task(k, pre, q, "result", id);
    assert_int_equal(strlen(k), 64 + 1 + 64 + 2 + 6 + 1 + 64);
}

static void test_keys_valid_prefix(void **state)
{
    (void)state;
    char p64[66];
    memset(p64, 'p', 65);
    p64[65] = '\0';
    assert_false(tq_keys_valid_prefix(p64));
    p64[64] = '\0';
    assert_true(tq_keys_valid_prefix(p64));
    assert_true(tq_keys_valid_prefix("taskq:"));
    assert_true(tq_keys_valid_prefix("app/v2:"));
    assert_false(tq_keys_valid_prefix(""));
    assert_false(tq_keys_valid_prefix("a{b"));
    assert_false(tq_keys_valid_prefix("a}b"));
    assert_false(tq_keys_valid_prefix("a b"));
    assert_false(tq_keys_valid_prefix("a\nb"));
    assert_false(tq_keys_valid_prefix("caf\xc3\xa9"));
}

/* Check c against EVALSHA <sha of s> <numkeys> want[0..n). A NULL entry in
 * `want` matches any argument. Every key must carry the queue's hash tag. */
static void expect_cmd(const tq_cmd *c, tq_script_id s, int numkeys, const char *const *want, int n)
{
    char nk[16];
    snprintf(nk, sizeof(nk), "%d", numkeys);
    assert_int_equal(c->script, (int)s);
    if (c->argc != 3 + n) {
        for (int i = 0; i < c->argc; i++)
            print_message("argv[%d] = %s\n", i, c->argv[i]);
        fail_msg("argc %d, want %d", c->argc, 3 + n);
    }
    assert_string_equal(c->argv[0], "EVALSHA");
    assert_string_equal(c->argv[1], tq_scripts[s].sha);
    assert_string_equal(c->argv[2], nk);
    for (int i = 0; i < c->argc; i++) { /* lengths right, NUL-terminated copies */
        assert_true(c->argvlen[i] >= strlen(c->argv[i]));
        assert_int_equal(c->argv[i][c->argvlen[i]], '\0');
    }
    for (int i = 0; i < n; i++) {
        if (want[i] && strcmp(c->argv[3 + i], want[i]) != 0)
            fail_msg("%s: argv[%d] = '%s', want '%s'", tq_scripts[s].name, 3 + i, c->argv[3 + i],
                     want[i]);
    }
    for (int i = 0; i < numkeys; i++)
        assert_memory_equal(c->argv[3 + i], TAG, strlen(TAG));
}

/* The "-- KEYS:" header of the script, mapped to full key names with this
 * file's prefix, queue and id, must equal the command's keys. */
static void expect_keys_match_lua(const tq_cmd *c, tq_script_id s)
{
    const char *body = tq_scripts[s].body;
    const char *line = strstr(body, "-- KEYS: ");
    assert_non_null(line);
    line += 9;
    size_t len = strcspn(line, "\n");
    char *list = strndup(line, len);
    int i = 0;
    for (char *save = NULL, *tok = strtok_r(list, ", ", &save); tok;
         tok = strtok_r(NULL, ", ", &save), i++) {
        char want[TQ_KEY_MAX];
        char *colon = strchr(tok, ':');
        if (colon) { /* result:<id> */
            *colon = '\0';
            tq_key_task(want, P, Q, tok, ID);
        } else {
            tq_key_queue(want, P, Q, tok);
        }
        assert_true(3 + i < c->argc);
        if (strcmp(c->argv[3 + i], want) != 0)
            fail_msg("%s: key %d is '%s', the script header says '%s'", tq_scripts[s].name, i,
                     c->argv[3 + i], want);
    }
    assert_int_equal(i, (int)strtol(c->argv[2], NULL, 10));
    free(list);
}

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static void test_keys_cmd_enqueue(void **state)
{
    (void)state;
    tq_cmd c;
    tq_cmd_init(&c);
    /* An id chosen by a user (not fresh): the results index and the result
     * key too, to clear its old records; no wait: 0 before the delay. */
    tq_cmd_enqueue(&c, P, Q, ID, "{\"m\":1}", 7, 250, 0, 1000, 0, 0);
    const char *w[] = {TAG "msg",
                       TAG "pending",
                       TAG "delayed",
                       TAG "done:" ID,
                       TAG "results",
                       TAG "waiting",
                       TAG "result:" ID,
                       ID,
                       "{\"m\":1}",
                       "1000",
                       TAG "wake",
                       "0",
                       "0",
                       "250",
                       "0"};
    expect_cmd(&c, TQ_SCRIPT_ENQUEUE, 7, w, N(w));
    expect_keys_match_lua(&c, TQ_SCRIPT_ENQUEUE);
    tq_cmd_enqueue_unfresh(&c); /* a no-op: not fresh */
    expect_cmd(&c, TQ_SCRIPT_ENQUEUE, 7, w, N(w));
    /* Fresh and waited on (submit and wait): the same keys, the wait. */
    tq_cmd_enqueue(&c, P, Q, ID, "m", 1, 0, 0, 0, 1, 60000);
    const char *w1[] = {TAG "msg",     TAG "pending", TAG "delayed",    TAG "done:" ID,
                        TAG "results", TAG "waiting", TAG "result:" ID, ID,
                        "m",           "0",           TAG "wake",       "1",
                        "60000"};
    expect_cmd(&c, TQ_SCRIPT_ENQUEUE, 7, w1, N(w1));
    /* Fresh, not delayed: no result key, no delay and eta. Message bytes are
     * binary-safe (NUL inside). */
    tq_cmd_enqueue(&c, P, Q, ID, "a\0b", 3, 0, 0, 0, 1, 0);
    const char *w2[] = {
        TAG "msg", TAG "pending", TAG "delayed", TAG "done:" ID, ID, NULL, "0", TAG "wake", "1"};
    expect_cmd(&c, TQ_SCRIPT_ENQUEUE, 4, w2, N(w2));
    assert_int_equal(c.argvlen[3 + 4 + 1], 3);
    assert_memory_equal(c.argv[3 + 4 + 1], "a\0b", 3);
    /* A resend checks the id (same layout). */
    tq_cmd_enqueue_unfresh(&c);
    w2[8] = "2";
    expect_cmd(&c, TQ_SCRIPT_ENQUEUE, 4, w2, N(w2));
    /* An eta alone still sends both, after a zero wait. */
    tq_cmd_enqueue(&c, P, Q, ID, "m", 1, 0, 1764100000123LL, 0, 1, 0);
    assert_int_equal(c.argc, 3 + 4 + 8);
    assert_string_equal(c.argv[3 + 4 + 5], "0");
    assert_string_equal(c.argv[3 + 4 + 6], "0");
    assert_string_equal(c.argv[3 + 4 + 7], "1764100000123");
    tq_cmd_release(&c);
}

static void test_keys_cmd_fetch(void **state)
{
    (void)state;
    tq_cmd c;
    tq_cmd_init(&c);
    tq_cmd_fetch(&c, P, Q, "w:1:ab", 4, 15000, 100);
    const char *w[] = {TAG "pending", TAG "msg",  TAG "held", TAG "leases",  TAG "fence",
                       TAG "delayed", TAG "lost", TAG "dead", TAG "deadmsg", "w:1:ab",
                       "4",           "15000",    "100"};
    expect_cmd(&c, TQ_SCRIPT_FETCH, 9, w, N(w));
    expect_keys_match_lua(&c, TQ_SCRIPT_FETCH);
    tq_cmd_release(&c);
}

static void test_keys_cmd_ack_one(void **state)
{
    (void)state;
    tq_cmd c;
    tq_cmd_init(&c);
    tq_cmd_ack_begin(&c, P, Q, 77, "w:1:ab", 86400000);
    tq_cmd_ack_add(&c, P, Q, "a", "SUCCESS", "{\"r\":1}", 7);
    tq_cmd_ack_end(&c);
    const char *w[] = {TAG "msg",     TAG "held",    TAG "leases", TAG "lost",
                       TAG "results", TAG "waiting", "77 w:1:ab",  "86400000",
                       "1",           "a",           "{\"r\":1}"};
    expect_cmd(&c, TQ_SCRIPT_ACK, 6, w, N(w));
    expect_keys_match_lua(&c, TQ_SCRIPT_ACK);
    tq_cmd_release(&c);
}

static void test_keys_cmd_enqueue_many(void **state)
{
    (void)state;
    tq_cmd c;
    tq_cmd_init(&c);
    tq_cmd_enqueue_many_begin(&c, P, Q, 100, 1);
    tq_cmd_enqueue_many_add(&c, P, Q, "a", "ma", 2, 0, 0);
    tq_cmd_enqueue_many_add(&c, P, Q, "b", "m\0b", 3, 250, 0);
    tq_cmd_enqueue_many_end(&c);
    const char *w[] = {TAG "msg", TAG "pending", TAG "delayed", "100", TAG "wake", "1",   "2", "a",
                       "ma",      "0",           "0",           "b",   NULL,       "250", "0"};
    expect_cmd(&c, TQ_SCRIPT_ENQUEUE_MANY, 3, w, N(w));
    assert_int_equal(c.argvlen[3 + 3 + 4 + 5], 3);
    assert_memory_equal(c.argv[3 + 3 + 4 + 5], "m\0b", 3);
    /* A resend checks every id (same layout). */
    tq_cmd_enqueue_unfresh(&c);
    w[5] = "2";
    expect_cmd(&c, TQ_SCRIPT_ENQUEUE_MANY, 3, w, N(w));
    /* Not fresh (ids chosen by a user): the results index, then result and
     * done per task, to clear their old records; no task delayed: no delay
     * and eta per task. */
    tq_cmd_enqueue_many_begin(&c, P, Q, 100, 0);
    tq_cmd_enqueue_many_add(&c, P, Q, "a", "ma", 2, 0, 0);
    tq_cmd_enqueue_many_end(&c);
    const char *w2[] = {TAG "msg",    TAG "pending", TAG "delayed", TAG "results", TAG "result:a",
                        TAG "done:a", "100",         TAG "wake",    "0",           "1",
                        "a",          "ma"};
    expect_cmd(&c, TQ_SCRIPT_ENQUEUE_MANY, 6, w2, N(w2));
    tq_cmd_enqueue_unfresh(&c); /* a no-op */
    expect_cmd(&c, TQ_SCRIPT_ENQUEUE_MANY, 6, w2, N(w2));
    /* Fresh, no task delayed: no per-task key, two arguments per task. */
    tq_cmd_enqueue_many_begin(&c, P, Q, 100, 1);
    tq_cmd_enqueue_many_add(&c, P, Q, "a", "ma", 2, 0, 0);
    tq_cmd_enqueue_many_add(&c, P, Q, "b", "m\0b", 3, 0, 0);
    tq_cmd_enqueue_many_end(&c);
    const char *w3[] = {TAG "msg", TAG "pending", TAG "delayed", "100", TAG "wake", "1",
                        "2",       "a",           "ma",          "b",   NULL};
    expect_cmd(&c, TQ_SCRIPT_ENQUEUE_MANY, 3, w3, N(w3));
    assert_int_equal(c.argvlen[3 + 3 + 4 + 3], 3);
    assert_memory_equal(c.argv[3 + 3 + 4 + 3], "m\0b", 3);
    /* One task with an eta keeps the pair for every task. */
    tq_cmd_enqueue_many_begin(&c, P, Q, 100, 1);
    tq_cmd_enqueue_many_add(&c, P, Q, "a", "ma", 2, 0, 0);
    tq_cmd_enqueue_many_add(&c, P, Q, "b", "mb", 2, 0, 1700000000000);
    tq_cmd_enqueue_many_end(&c);
    const char *w4[] = {TAG "msg", TAG "pending", TAG "delayed", "100", TAG "wake",
                        "1",       "2",           "a",           "ma",  "0",
                        "0",       "b",           "mb",          "0",   "1700000000000"};
    expect_cmd(&c, TQ_SCRIPT_ENQUEUE_MANY, 3, w4, N(w4));
    tq_cmd_release(&c);
}

static void test_keys_cmd_ack_three(void **state)
{
    (void)state;
    tq_cmd c;
    tq_cmd_init(&c);
    tq_cmd_ack_begin(&c, P, Q, 5, "w", 1000);
    tq_cmd_ack_add(&c, P, Q, "a", "SUCCESS", "ra", 2);
    tq_cmd_ack_add(&c, P, Q, "b", "FAILURE", "r\0b", 3);
    tq_cmd_ack_add(&c, P, Q, "c", "REVOKED", "rc", 2);
    tq_cmd_ack_end(&c);
    const char *w[] = {TAG "msg",     TAG "held", TAG "leases", TAG "lost", TAG "results",
                       TAG "waiting", "5 w",      "1000",       "3",        "a",
                       "ra",          "b",        NULL,         "c",        "rc"};
    expect_cmd(&c, TQ_SCRIPT_ACK, 6, w, N(w));
    /* The binary record kept its length. */
    assert_int_equal(c.argvlen[3 + 12], 3);
    assert_memory_equal(c.argv[3 + 12], "r\0b", 3);
    tq_cmd_release(&c);
}

static void test_keys_cmd_ack_reuse(void **state)
{
    (void)state;
    /* A tq_cmd is reused across batches: a second, smaller batch is laid out
     * from scratch. An empty batch is well formed too. */
    tq_cmd c;
    tq_cmd_init(&c);
    for (int round = 0; round < 2; round++) {
        tq_cmd_ack_begin(&c, P, Q, 9, "w", 10);
        for (int i = 0; i < 20; i++)
            tq_cmd_ack_add(&c, P, Q, "x", "SUCCESS", "r", 1);
        tq_cmd_ack_end(&c);
        assert_int_equal(c.argc, 3 + 6 + 3 + 40);
        assert_string_equal(c.argv[2], "6");
        assert_string_equal(c.argv[3 + 6 + 2], "20");
    }
    tq_cmd_ack_begin(&c, P, Q, 9, "w", 10);
    tq_cmd_ack_end(&c);
    const char *w[] = {TAG "msg",     TAG "held", TAG "leases", TAG "lost", TAG "results",
                       TAG "waiting", "9 w",      "10",         "0"};
    expect_cmd(&c, TQ_SCRIPT_ACK, 6, w, N(w));
    tq_cmd_release(&c);
}

static void test_keys_cmd_retry(void **state)
{
    (void)state;
    tq_cmd c;
    tq_cmd_init(&c);
    tq_cmd_retry(&c, P, Q, ID, 12, "w", "MSG", 3, "REC", 5000, 3600000);
    const char *w[] = {TAG "msg",     TAG "held",       TAG "leases", TAG "lost", TAG "delayed",
                       TAG "pending", TAG "result:" ID, ID,           "12 w",     "MSG",
                       "REC",         "5000",           "3600000",    TAG "wake"};
    expect_cmd(&c, TQ_SCRIPT_RETRY, 7, w, N(w));
    expect_keys_match_lua(&c, TQ_SCRIPT_RETRY);
    tq_cmd_release(&c);
}

static void test_keys_cmd_requeue(void **state)
{
    (void)state;
    tq_cmd c;
    const char *ids[] = {"a", "b", "c"};
    tq_cmd_init(&c);
    tq_cmd_requeue(&c, P, Q, 3, "w", ids, 3);
    const char *w[] = {TAG "held", TAG "leases", TAG "pending", "3 w", TAG "wake", "a", "b", "c"};
    expect_cmd(&c, TQ_SCRIPT_REQUEUE, 3, w, N(w));
    expect_keys_match_lua(&c, TQ_SCRIPT_REQUEUE);
    tq_cmd_release(&c);
}

static void test_keys_cmd_bury(void **state)
{
    (void)state;
    tq_cmd c;
    tq_cmd_init(&c);
    tq_cmd_bury(&c, P, Q, ID, 44, "w", "bad message", "REC", 1000, 500, 86400000, "ENTRY");
    const char *w[] = {TAG "msg",     TAG "held",       TAG "leases",  TAG "lost",    TAG "dead",
                       TAG "deadmsg", TAG "result:" ID, TAG "results", TAG "waiting", ID,
                       "44 w",        "bad message",    "REC",         "1000",        "500",
                       "86400000",    "ENTRY"};
    expect_cmd(&c, TQ_SCRIPT_BURY, 9, w, N(w));
    expect_keys_match_lua(&c, TQ_SCRIPT_BURY);
    /* Never held: an empty lease. */
    tq_cmd_bury(&c, P, Q, ID, -1, "w", "r", "REC", 1000, 500, 86400000, "ENTRY");
    assert_string_equal(c.argv[3 + 10], "");
    assert_int_equal(c.argvlen[3 + 10], 0);
    tq_cmd_release(&c);
}

static void test_keys_cmd_extend(void **state)
{
    (void)state;
    tq_cmd c;
    tq_cmd_init(&c);
    tq_cmd_extend_begin(&c, P, Q, "w", 15000);
    tq_cmd_extend_add(&c, 3, "a");
    tq_cmd_extend_add(&c, 4, "b");
    const char *w[] = {TAG "held", TAG "leases", "15000", "w", "3", "a", "4", "b"};
    expect_cmd(&c, TQ_SCRIPT_EXTEND, 2, w, N(w));
    expect_keys_match_lua(&c, TQ_SCRIPT_EXTEND);
    tq_cmd_release(&c);
}

static void test_keys_cmd_recover_revoke_state(void **state)
{
    (void)state;
    tq_cmd c;
    tq_cmd_init(&c);
    tq_cmd_recover(&c, P, Q, 100);
    const char *w1[] = {TAG "held",  TAG "leases", TAG "pending", TAG "lost",
                        TAG "lease", TAG "owner",  "100",         TAG "wake"};
    expect_cmd(&c, TQ_SCRIPT_RECOVER, 6, w1, N(w1));
    expect_keys_match_lua(&c, TQ_SCRIPT_RECOVER);

    tq_cmd_revoke(&c, P, Q, ID, "REC", 777);
    const char *w2[] = {TAG "msg",  TAG "held",    TAG "delayed", TAG "result:" ID,
                        TAG "lost", TAG "results", TAG "waiting", ID,
                        "REC",      "777"};
    expect_cmd(&c, TQ_SCRIPT_REVOKE, 7, w2, N(w2));
    expect_keys_match_lua(&c, TQ_SCRIPT_REVOKE);

    tq_cmd_state(&c, P, Q, ID);
    const char *w3[] = {TAG "msg", TAG "held", TAG "result:" ID, TAG "results", ID};
    expect_cmd(&c, TQ_SCRIPT_STATE, 4, w3, N(w3));
    expect_keys_match_lua(&c, TQ_SCRIPT_STATE);

    tq_cmd_watch(&c, P, Q, ID, 60000);
    const char *w5[] = {TAG "msg",     TAG "held", TAG "result:" ID, TAG "done:" ID, TAG "results",
                        TAG "waiting", ID,         "60000"};
    expect_cmd(&c, TQ_SCRIPT_WATCH, 6, w5, N(w5));
    expect_keys_match_lua(&c, TQ_SCRIPT_WATCH);

    tq_cmd_dead_requeue(&c, P, Q, ID, "M\0G", 3);
    const char *w4[] = {TAG "dead",     TAG "deadmsg", TAG "msg", TAG "pending", TAG "result:" ID,
                        TAG "done:" ID, TAG "results", ID,        NULL,          TAG "wake"};
    expect_cmd(&c, TQ_SCRIPT_DEAD_REQUEUE, 7, w4, N(w4));
    expect_keys_match_lua(&c, TQ_SCRIPT_DEAD_REQUEUE);
    assert_int_equal(c.argvlen[11], 3);
    assert_memory_equal(c.argv[11], "M\0G", 3);
    tq_cmd_release(&c);
}

static void test_keys_cmd_to_eval(void **state)
{
    (void)state;
    tq_cmd c;
    tq_cmd_init(&c);
    tq_cmd_state(&c, P, Q, ID);
    int argc = c.argc;
    tq_cmd_to_eval(&c);
    assert_int_equal(c.argc, argc);
    assert_string_equal(c.argv[0], "EVAL");
    assert_int_equal(c.argvlen[0], 4);
    assert_string_equal(c.argv[1], tq_scripts[TQ_SCRIPT_STATE].body);
    assert_int_equal(c.argvlen[1], strlen(tq_scripts[TQ_SCRIPT_STATE].body));
    assert_string_equal(c.argv[2], "4");
    assert_string_equal(c.argv[7], ID);
    /* Idempotent, and a no-op on plain commands. */
    tq_cmd_to_eval(&c);
    assert_string_equal(c.argv[0], "EVAL");
    tq_cmd_clear(&c);
    assert_int_equal(c.script, -1);
    tq_cmd_add_str(&c, "GET");
    tq_cmd_add_str(&c, "k");
    tq_cmd_to_eval(&c);
    assert_string_equal(c.argv[0], "GET");
    tq_cmd_add_int(&c, -42);
    assert_string_equal(c.argv[2], "-42");
    tq_cmd_release(&c);
}

static void test_keys_scripts_table(void **state)
{
    (void)state;
    static const struct {
        tq_script_id id;
        const char *name;
    } known[] = {
        {TQ_SCRIPT_ACK, "ack"},
        {TQ_SCRIPT_BURY, "bury"},
        {TQ_SCRIPT_DEAD_REQUEUE, "dead_requeue"},
        {TQ_SCRIPT_ENQUEUE, "enqueue"},
        {TQ_SCRIPT_ENQUEUE_MANY, "enqueue_many"},
        {TQ_SCRIPT_EXTEND, "extend"},
        {TQ_SCRIPT_FETCH, "fetch"},
        {TQ_SCRIPT_PROGRESS, "progress"},
        {TQ_SCRIPT_RECOVER, "recover"},
        {TQ_SCRIPT_REQUEUE, "requeue"},
        {TQ_SCRIPT_RETRY, "retry"},
        {TQ_SCRIPT_REVOKE, "revoke"},
        {TQ_SCRIPT_STATE, "state"},
    };
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        assert_non_null(tq_scripts[known[i].id].name);
        assert_string_equal(tq_scripts[known[i].id].name, known[i].name);
    }
    /* Every enum value has a generated entry (a script file per name). */
    for (int i = 0; i < TQ_SCRIPT_COUNT; i++) {
        if (!tq_scripts[i].name || !tq_scripts[i].sha || !tq_scripts[i].body)
            fail_msg("tq_scripts[%d] is empty: no broker/lua file for it", i);
        assert_int_equal(strlen(tq_scripts[i].sha), 40);
        assert_int_equal(strspn(tq_scripts[i].sha, "0123456789abcdef"), 40);
        assert_non_null(strstr(tq_scripts[i].body, "docs/PROTOCOL.md#"));
        assert_non_null(strstr(tq_scripts[i].body, "-- KEYS: "));
        for (int j = 0; j < i; j++)
            assert_string_not_equal(tq_scripts[i].sha, tq_scripts[j].sha);
    }
}

static void test_keys_cmd_progress(void **state)
{
    (void)state;
    tq_cmd c;
    tq_cmd_init(&c);
    tq_cmd_progress(&c, P, Q, ID, 8, "REC", 1000);
    const char *w[] = {TAG "held", TAG "result:" ID, ID, "8", "REC", "1000"};
    expect_cmd(&c, TQ_SCRIPT_PROGRESS, 2, w, N(w));
    expect_keys_match_lua(&c, TQ_SCRIPT_PROGRESS);
    tq_cmd_release(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_schema),
        cmocka_unit_test(test_keys_valid_prefix),
        cmocka_unit_test(test_keys_cmd_enqueue),
        cmocka_unit_test(test_keys_cmd_fetch),
        cmocka_unit_test(test_keys_cmd_ack_one),
        cmocka_unit_test(test_keys_cmd_ack_three),
        cmocka_unit_test(test_keys_cmd_enqueue_many),
        cmocka_unit_test(test_keys_cmd_ack_reuse),
        cmocka_unit_test(test_keys_cmd_retry),
        cmocka_unit_test(test_keys_cmd_requeue),
        cmocka_unit_test(test_keys_cmd_bury),
        cmocka_unit_test(test_keys_cmd_extend),
        cmocka_unit_test(test_keys_cmd_progress),
        cmocka_unit_test(test_keys_cmd_recover_revoke_state),
        cmocka_unit_test(test_keys_cmd_to_eval),
        cmocka_unit_test(test_keys_scripts_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
