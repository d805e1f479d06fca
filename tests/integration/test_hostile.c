/* Hostile input, end to end (issue 4): 10,000 malformed or hostile messages
 * pushed straight into a queue, exactly as anyone who can write to Redis
 * could (HSET P{Q}:msg id bytes + LPUSH P{Q}:pending id, what the enqueue
 * script does), interleaved with 10,000 valid tasks, then one real prefork
 * taskq-worker with two executors drains the queue. Checked:
 *   - the worker stays up the whole time and still serves a fresh task;
 *   - every valid task ends SUCCESS with the right result;
 *   - every bad message is in P{Q}:dead, its P{Q}:deadmsg entry carries a
 *     precise reason (the limit named, "not valid JSON", "unregistered task
 *     NAME", ...) and the raw bytes (text or hex), and its result record is a
 *     FAILURE with dead=true and the same reason;
 *   - wrong argument types for `add` (and the typed `mul`) are not dead
 *     letters: FAILURE TypeError with a message naming the task;
 *   - nothing is left in the queue.
 * The timings are printed; the whole test must stay well under 60 s. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "broker/tq_cmd.h"
#include "broker/tq_keys.h"
#include "broker/tq_sconn.h"
#include "common/tq_msg.h"
#include "common/tq_util.h"
#include "taskq_fx.h"

#define PFX "hostile:"
#define Q "hq"
#define NVALID 10000
#define NBAD 10000
#define DRAIN_MS 90000 /* hard stop; the figures printed show the real time */
#define BATCH 500      /* pipelined commands between reply reads */
#define KEEP_RAW 512   /* raw bytes kept for the dead-letter comparison */

typedef enum {
    K_NOTJSON,
    K_GARBAGE,
    K_EMPTY,
    K_NONOBJECT,
    K_WRONGTYPE,
    K_MISSING,
    K_VERSION,
    K_BADNAME,
    K_MISMATCH,
    K_OVERSIZE,
    K_DEEP33,
    K_DEEP1K,
    K_DEEP100K,
    K_ELEMENTS,
    K_LONGSTRING,
    K_DUPKEY,
    K_BADUTF8,
    K_BIGCOUNT,
    K_UNREGISTERED,
    K_TYPEERROR, /* not a dead letter: FAILURE TypeError */
    K_COUNT
} kind;

static const struct {
    const char *name;
    int count; /* -1: whatever is left of NBAD */
} kinds[K_COUNT] = {
    [K_NOTJSON] = {"not JSON", 800},
    [K_GARBAGE] = {"binary garbage", 1000},
    [K_EMPTY] = {"empty string", 300},
    [K_NONOBJECT] = {"JSON non-object", 500},
    [K_WRONGTYPE] = {"wrong field type", 1400},
    [K_MISSING] = {"missing field", 800},
    [K_VERSION] = {"unknown version", 400},
    [K_BADNAME] = {"bad id/queue/task name", 900},
    [K_MISMATCH] = {"id mismatch", 400},
    [K_OVERSIZE] = {"over 1 MiB", 4},
    [K_DEEP33] = {"nesting 33", 300},
    [K_DEEP1K] = {"nesting 1,000", 40},
    [K_DEEP100K] = {"nesting 100,000", 3},
    [K_ELEMENTS] = {"too many elements", 4},
    [K_LONGSTRING] = {"string too long", 3},
    [K_DUPKEY] = {"duplicate keys", 500},
    [K_BADUTF8] = {"invalid UTF-8 / raw NUL", -1},
    [K_BIGCOUNT] = {"huge attempts/retries", 200},
    [K_UNREGISTERED] = {"unregistered task", 1000},
    [K_TYPEERROR] = {"add/mul with wrong types", 700},
};

typedef struct item {
    char id[24];
    kind k;
    char expect[128]; /* substring of the reason (or the result, for valid ones) */
    int exact;        /* the reason must equal expect */
    size_t rawlen;
    unsigned char *raw; /* first KEEP_RAW bytes of the message (bad ones) */
} item;

typedef struct fx {
    tf_redis r; /* the server and a plain connection (r.rc) */
    item *bad;
    item *good;
    tf_worker worker;
} fx;

/* ---- small helpers ----------------------------------------------------- */

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static const char *qkey(const char *kind_)
{
    static char bufs[4][TQ_KEY_MAX];
    static int n;
    char *b = bufs[n++ % 4];
    tq_key_queue(b, PFX, Q, kind_);
    return b;
}

/* Growable byte buffer. */
typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

static void bput(buf *b, const void *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        while (b->len + n + 1 > b->cap)
            b->cap = b->cap ? b->cap * 2 : 256;
        b->p = tq_xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void bputs(buf *b, const char *s)
{
    bput(b, s, strlen(s));
}

static void bprintf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bprintf(buf *b, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof(tmp));
    bput(b, tmp, (size_t)n);
}

static void brepeat(buf *b, const char *s, size_t times)
{
    for (size_t i = 0; i < times; i++)
        bputs(b, s);
}

/* A well-formed message (text) for id/task with the given args JSON text. */
static void good_json(buf *b, const char *id, const char *task, const char *args)
{
    bprintf(b,
            "{\"v\":1,\"id\":\"%s\",\"task\":\"%s\",\"args\":%s,\"kwargs\":{},\"queue\":\"" Q
            "\",\"attempts\":0,\"retries\":0,\"created_ms\":1764100000123}",
            id, task, args);
}

/* The same message with one field replaced (value = NULL: removed). */
static void field_json(buf *b, const char *id, const char *field, const char *value)
{
    static const char *const names[] = {"v",      "id",    "task",     "args",
                                        "kwargs", "queue", "attempts", "created_ms"};
    char idq[40];
    snprintf(idq, sizeof(idq), "\"%s\"", id);
    const char *const vals[] = {"1",  idq,         "\"add\"", "[1,2]",
                                "{}", "\"" Q "\"", "0",       "1764100000123"};
    int first = 1, seen = 0;
    bputs(b, "{");
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const char *v = vals[i];
        if (strcmp(names[i], field) == 0) {
            seen = 1;
            v = value;
        }
        if (!v)
            continue;
        bprintf(b, "%s\"%s\":%s", first ? "" : ",", names[i], v);
        first = 0;
    }
    if (!seen && value)
        bprintf(b, ",\"%s\":%s", field, value);
    bputs(b, "}");
}

/* ---- the bad messages -------------------------------------------------- */

static void expect(item *it, const char *s)
{
    snprintf(it->expect, sizeof(it->expect), "%s", s);
}

/* Build bad message number n (of its kind: i) into b and fill it->expect. */
static void make_bad(item *it, int i, buf *b)
{
    const char *id = it->id;
    switch (it->k) {
    case K_NOTJSON: {
        static const char *const t[] = {"hello world", "{not json", "{'v':1}", "v=1&id=x",
                                        "{\"v\":1,",   "<xml/>",    "NaN",     "{\"v\":1}}"};
        bputs(b, t[i % 8]);
        expect(it, "malformed message: not valid JSON");
        break;
    }
    case K_GARBAGE: {
        /* Random bytes, NUL and invalid UTF-8 included, never '[' or '{'
         * (so no depth limit is hit first); starts with an invalid byte. */
        size_t n = 1 + rnd() % 300;
        unsigned char c = 0xff;
        bput(b, &c, 1);
        for (size_t j = 1; j < n; j++) {
            c = (unsigned char)rnd();
            if (c == '[' || c == '{')
                c = 0;
            bput(b, &c, 1);
        }
        expect(it, "malformed message: not valid JSON");
        break;
    }
    case K_EMPTY: expect(it, "malformed message: empty message"); break;
    case K_NONOBJECT: {
        /* Any JSON value parses (tq_json); the schema then names its type. */
        static const struct {
            const char *text, *type;
        } t[] = {{"[1,2,3]", "array"}, {"42", "int"},           {"\"a string\"", "string"},
                 {"null", "null"},     {"true", "bool"},        {"-1.5e3", "float"},
                 {"[]", "array"},      {"[{\"v\":1}]", "array"}};
        bputs(b, t[i % 8].text);
        snprintf(it->expect, sizeof(it->expect),
                 "malformed message: message must be a JSON object, got %s", t[i % 8].type);
        it->exact = 1;
        break;
    }
    case K_WRONGTYPE: {
        static const struct {
            const char *field, *value, *reason;
        } t[] = {
            {"v", "1.0", "field 'v' must be int, got float"},
            {"id", "17", "field 'id' must be string, got int"},
            {"task", "[\"add\"]", "field 'task' must be string, got array"},
            {"args", "{\"a\":1}", "field 'args' must be array, got object"},
            {"kwargs", "[]", "field 'kwargs' must be object, got array"},
            {"queue", "null", "field 'queue' must be string, got null"},
            {"attempts", "\"0\"", "field 'attempts' must be int, got string"},
            {"created_ms", "1.5", "field 'created_ms' must be int, got float"},
            {"retries", "true", "field 'retries' must be int, got bool"},
            {"eta_ms", "\"soon\"", "field 'eta_ms' must be int, got string"},
            {"expires_ms", "{}", "field 'expires_ms' must be int, got object"},
            {"soft_limit_ms", "0", "field 'soft_limit_ms' must be >= 1, got 0"},
            {"hard_limit_ms", "-5", "field 'hard_limit_ms' must be >= 1, got -5"},
            {"errors", "\"none\"", "field 'errors' must be array, got string"},
        };
        int k = i % 14;
        field_json(b, id, t[k].field, t[k].value);
        snprintf(it->expect, sizeof(it->expect), "malformed message: %s", t[k].reason);
        it->exact = 1;
        break;
    }
    case K_MISSING: {
        static const char *const f[] = {"v",      "id",    "task",     "args",
                                        "kwargs", "queue", "attempts", "created_ms"};
        const char *field = f[i % 8];
        field_json(b, id, field, NULL);
        snprintf(it->expect, sizeof(it->expect), "malformed message: missing field '%s'", field);
        it->exact = 1;
        break;
    }
    case K_VERSION: {
        static const char *const v[] = {"2", "\"1\"", "-1", "0"};
        static const char *const e[] = {
            "unsupported protocol version 2", "field 'v' must be int, got string",
            "field 'v' must be >= 0, got -1", "unsupported protocol version 0"};
        field_json(b, id, "v", v[i % 4]);
        snprintf(it->expect, sizeof(it->expect), "malformed message: %s", e[i % 4]);
        break;
    }
    case K_BADNAME: {
        static const char *const t[][3] = {
            {"id", "\"has space\"", "field 'id' is not a valid task id"},
            {"id", "\"\"", "field 'id' is not a valid task id"},
            {"id", "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",
             "field 'id' is not a valid task id"},
            {"id", "\"a\\u0000b\"", "not valid JSON: \\u0000 is not allowed"},
            {"queue", "\"a{b}:c\"", "field 'queue' is not a valid queue name"},
            {"queue", "\"\"", "field 'queue' is not a valid queue name"},
            {"task", "\"rm -rf /\"", "field 'task' is not a valid task name"},
            {"task", "\"\\u00e9cho\"", "field 'task' is not a valid task name"},
            {"task", "\"add\\u0000evil\"", "not valid JSON: \\u0000 is not allowed"},
        };
        int k = i % 9;
        field_json(b, id, t[k][0], t[k][1]);
        snprintf(it->expect, sizeof(it->expect), "malformed message: %s", t[k][2]);
        break;
    }
    case K_MISMATCH: {
        char other[32];
        snprintf(other, sizeof(other), "other-%05d", i);
        good_json(b, other, "add", "[1,2]");
        snprintf(it->expect, sizeof(it->expect),
                 "malformed message: its id '%s' is not the queued id", other);
        it->exact = 1;
        break;
    }
    case K_OVERSIZE: {
        /* Valid JSON apart from its size: 1 MiB + 1 byte, then bigger. */
        size_t target = (size_t)1024 * 1024 + 1 + (size_t)i * 512 * 1024;
        bprintf(b, "{\"v\":1,\"id\":\"%s\",\"task\":\"echo\",\"args\":[\"", id);
        const char tail[] =
            "\"],\"kwargs\":{},\"queue\":\"" Q "\",\"attempts\":0,\"created_ms\":1}";
        size_t fill = target - b->len - (sizeof(tail) - 1);
        char *x = tq_xmalloc(fill);
        memset(x, 'x', fill);
        bput(b, x, fill);
        free(x);
        bputs(b, tail);
        assert_int_equal(b->len, target);
        snprintf(it->expect, sizeof(it->expect),
                 "malformed message: message of %zu bytes exceeds 1048576 (limit max_bytes)",
                 target);
        it->exact = 1;
        break;
    }
    case K_DEEP33:
    case K_DEEP1K:
    case K_DEEP100K: {
        /* The root object is level 1: args nested n-1 deep makes n levels. */
        size_t n = it->k == K_DEEP33 ? 33 : it->k == K_DEEP1K ? 1000 : 100000;
        const char *open = i % 2 ? "[" : "{\"a\":", *close = i % 2 ? "]" : "}";
        bprintf(b, "{\"v\":1,\"id\":\"%s\",\"task\":\"echo\",\"args\":[", id);
        brepeat(b, open, n - 2);
        brepeat(b, close, n - 2);
        bputs(b, "],\"kwargs\":{},\"queue\":\"" Q "\",\"attempts\":0,\"created_ms\":1}");
        expect(it, "malformed message: message nesting deeper than 32 (limit max_depth)");
        it->exact = 1;
        break;
    }
    case K_ELEMENTS:
        /* 100,001 numbers, well under 1 MiB. */
        bprintf(b, "{\"v\":1,\"id\":\"%s\",\"task\":\"add\",\"args\":[0", id);
        brepeat(b, ",0", 100000);
        bputs(b, "],\"kwargs\":{},\"queue\":\"" Q "\",\"attempts\":0,\"created_ms\":1}");
        expect(it, "malformed message: message: more than 100000 elements (limit max_elements)");
        it->exact = 1;
        break;
    case K_LONGSTRING: {
        bprintf(b, "{\"v\":1,\"id\":\"%s\",\"task\":\"echo\",\"args\":[\"", id);
        size_t n = 262145 + (size_t)i;
        char *x = tq_xmalloc(n);
        memset(x, 'y', n);
        bput(b, x, n);
        free(x);
        bputs(b, "\"],\"kwargs\":{},\"queue\":\"" Q "\",\"attempts\":0,\"created_ms\":1}");
        snprintf(it->expect, sizeof(it->expect),
                 "malformed message: message: a string of %zu bytes exceeds 262144 (limit "
                 "max_string)",
                 n);
        it->exact = 1;
        break;
    }
    case K_DUPKEY:
        if (i % 3 == 0)
            bprintf(b,
                    "{\"v\":1,\"v\":1,\"id\":\"%s\",\"task\":\"add\",\"args\":[],"
                    "\"kwargs\":{},\"queue\":\"" Q "\",\"attempts\":0,\"created_ms\":1}",
                    id);
        else if (i % 3 == 1)
            bprintf(b,
                    "{\"v\":1,\"id\":\"%s\",\"task\":\"add\",\"task\":\"evil\",\"args\":[],"
                    "\"kwargs\":{},\"queue\":\"" Q "\",\"attempts\":0,\"created_ms\":1}",
                    id);
        else
            bprintf(b,
                    "{\"v\":1,\"id\":\"%s\",\"task\":\"echo\",\"args\":[],"
                    "\"kwargs\":{\"a\":1,\"a\":2},\"queue\":\"" Q
                    "\",\"attempts\":0,\"created_ms\":1}",
                    id);
        expect(it, "malformed message: not valid JSON: duplicate object key");
        break;
    case K_BADUTF8: {
        /* Otherwise valid messages with invalid UTF-8 or a raw control byte
         * inside a string. */
        static const char *const bad[] = {
            "\xc3\x28", "\xff", "\xed\xa0\x80", "\xf8\x88\x80\x80\x80", "\xc0\xaf", "a\x01z"};
        int k = i % 7;
        bprintf(b, "{\"v\":1,\"id\":\"%s\",\"task\":\"echo\",\"args\":[\"", id);
        if (k == 6)
            bput(b, "a\0b", 3);
        else
            bputs(b, bad[k]);
        bputs(b, "\"],\"kwargs\":{},\"queue\":\"" Q "\",\"attempts\":0,\"created_ms\":1}");
        expect(it, "malformed message: not valid JSON");
        break;
    }
    case K_BIGCOUNT: {
        static const char *const t[][3] = {
            {"attempts", "9223372036854775807",
             "field 'attempts' must be <= 1000000000, got 9223372036854775807"},
            {"retries", "4294967297", "field 'retries' must be <= 1000000000, got 4294967297"},
            {"attempts", "-9223372036854775808",
             "field 'attempts' must be >= 0, got -9223372036854775808"},
            {"created_ms", "92233720368547758070", "not valid JSON"},
        };
        int k = i % 4;
        field_json(b, id, t[k][0], t[k][1]);
        snprintf(it->expect, sizeof(it->expect), "malformed message: %s", t[k][2]);
        break;
    }
    case K_UNREGISTERED: {
        static const char *const t[] = {"os.system",    "__import__",  "subprocess.Popen",
                                        "no_such_task", "ADD",         "echo2",
                                        "system",       "../../bin/sh"};
        char task[64];
        if (i % 9 == 8)
            snprintf(task, sizeof(task), "unknown_%d", i);
        else
            snprintf(task, sizeof(task), "%s", t[i % 9 % 8]);
        good_json(b, id, task, "[1,2]");
        snprintf(it->expect, sizeof(it->expect), "unregistered task %s", task);
        it->exact = 1;
        break;
    }
    case K_TYPEERROR: {
        /* add checks its arguments itself; mul has a typed signature
         * ("a:int, b:int"), checked before it runs. The long non-ASCII
         * string must still give a complete, valid UTF-8 reason. */
        static const char *const a[] = {"[\"x\",1]", "[1,{\"a\":1}]", "[null]",
                                        "[[1,2]]",   "[true,false]",  "[\"1\",\"2\"]"};
        if (i % 7 == 6) {
            good_json(b, id, "mul",
                      "[\"a\\u00e9\\ud83d\\ude00\\ud83d\\ude00\\ud83d\\ude00\\ud83d\\ude00\\ud83d"
                      "\\ude00\\ud83d\\ude00\\ud83d\\ude00\\ud83d\\ude00\\ud83d\\ude00\\ud83d\\ude0"
                      "0\",2]");
            expect(it, "mul: argument 'a' must be int, got string");
        } else {
            good_json(b, id, "add", a[i % 7]);
            expect(it, "add: argument ");
        }
        break;
    }
    case K_COUNT: break;
    }
}

/* ---- pushing ------------------------------------------------------------ */

/* Queue id -> bytes exactly as the enqueue script does (no wake-up needed:
 * the worker starts afterwards). Replies are read in batches. */
static int pending_replies;

static void drain_replies(redisContext *c)
{
    while (pending_replies > 0) {
        redisReply *r = NULL;
        assert_int_equal(redisGetReply(c, (void **)&r), REDIS_OK);
        assert_non_null(r);
        if (r->type == REDIS_REPLY_ERROR)
            fail_msg("redis error while pushing: %s", r->str);
        freeReplyObject(r);
        pending_replies--;
    }
}

static void push_raw(redisContext *c, const char *id, const char *bytes, size_t len)
{
    const char *hset[] = {"HSET", qkey("msg"), id, bytes};
    size_t hsetl[] = {4, strlen(hset[1]), strlen(id), len};
    const char *lpush[] = {"LPUSH", qkey("pending"), id};
    size_t lpushl[] = {5, strlen(lpush[1]), strlen(id)};
    assert_int_equal(redisAppendCommandArgv(c, 4, hset, hsetl), REDIS_OK);
    assert_int_equal(redisAppendCommandArgv(c, 3, lpush, lpushl), REDIS_OK);
    pending_replies += 2;
    if (pending_replies >= BATCH || len > 65536)
        drain_replies(c);
}

/* A valid task built with the library's own encoder. */
static void make_good(item *it, int n, buf *b)
{
    tq_msg *m = tq_msg_new(it->id, n % 2 ? "echo" : "add", Q);
    if (n % 2) {
        tq_msg_set_args(m, json_pack("[s]", it->id));
        snprintf(it->expect, sizeof(it->expect), "\"%s\"", it->id);
    } else {
        tq_msg_set_args(m, json_pack("[ii]", n, n + 1));
        snprintf(it->expect, sizeof(it->expect), "%d", 2 * n + 1);
    }
    tq_msg_set_int(m, "retries", 0);
    size_t len;
    char *s = tq_msg_encode(m, &len);
    bput(b, s, len);
    free(s);
    tq_msg_free(m);
}

/* ---- fixture ------------------------------------------------------------ */

static int setup(void **state)
{
    fx *f = tq_xcalloc(1, sizeof(*f));
    if (tf_redis_open(&f->r, NULL, 0) != 0) {
        free(f);
        return -1;
    }
    f->bad = tq_xcalloc(NBAD, sizeof(item));
    f->good = tq_xcalloc(NVALID, sizeof(item));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    tf_worker_stop(&f->worker, 10000);
    for (int i = 0; i < NBAD; i++)
        free(f->bad[i].raw);
    free(f->bad);
    free(f->good);
    tf_redis_close(&f->r);
    free(f);
    return 0;
}

/* ---- checking ----------------------------------------------------------- */

static int nfail;

static void problem(const item *it, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(const item *it, const char *fmt, ...)
{
    if (++nfail > 20)
        return;
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    print_error("  %s (%s): %s\n", it->id, it->k < K_COUNT ? kinds[it->k].name : "valid", msg);
}

static int has_text(const char *s, const item *it)
{
    return s && (it->exact ? strcmp(s, it->expect) == 0 : strstr(s, it->expect) != NULL);
}

/* The deadmsg entry keeps the bytes: "message" (text) or "message_hex". */
static void check_dead_bytes(const item *it, json_t *entry)
{
    const char *text = json_string_value(json_object_get(entry, "message"));
    const char *hex = json_string_value(json_object_get(entry, "message_hex"));
    size_t n = it->rawlen < KEEP_RAW ? it->rawlen : KEEP_RAW;
    if (text) {
        if (json_string_length(json_object_get(entry, "message")) != it->rawlen ||
            memcmp(text, it->raw, n) != 0)
            problem(it, "dead letter 'message' differs from the queued bytes");
    } else if (hex) {
        static const char digits[] = "0123456789abcdef";
        int ok = strlen(hex) == 2 * it->rawlen;
        for (size_t j = 0; ok && j < n; j++)
            ok = hex[2 * j] == digits[it->raw[j] >> 4] && hex[2 * j + 1] == digits[it->raw[j] & 15];
        if (!ok)
            problem(it, "dead letter 'message_hex' differs from the queued bytes");
    } else {
        problem(it, "dead letter keeps neither 'message' nor 'message_hex'");
    }
}

static void check_bad(const item *it, redisReply *dead, redisReply *entry, redisReply *rec)
{
    json_t *e = NULL, *r = NULL;
    const char *reason = NULL;
    if (rec->type != REDIS_REPLY_STRING || !(r = json_loadb(rec->str, rec->len, 0, NULL))) {
        problem(it, "no result record");
        goto out;
    }
    const char *state = json_string_value(json_object_get(r, "state"));
    json_t *err = json_object_get(r, "error");
    if (!state || strcmp(state, "FAILURE") != 0) {
        problem(it, "result state %s, expected FAILURE", state ? state : "(none)");
        goto out;
    }
    if (it->k == K_TYPEERROR) {
        const char *type = json_string_value(json_object_get(err, "type"));
        const char *msg = json_string_value(json_object_get(err, "message"));
        if (!type || strcmp(type, "TypeError") != 0)
            problem(it, "error type %s, expected TypeError", type ? type : "(none)");
        else if (!msg || strncmp(msg, it->expect, strlen(it->expect)) != 0)
            problem(it, "error message '%.200s', expected it to start with '%s' (record %.300s)",
                    msg ? msg : "(none)", it->expect, rec->str);
        if (dead->type != REDIS_REPLY_NIL || entry->type != REDIS_REPLY_NIL ||
            json_is_true(json_object_get(r, "dead")))
            problem(it, "a TypeError was dead-lettered");
        goto out;
    }
    if (dead->type != REDIS_REPLY_STRING)
        problem(it, "not in the dead-letter set");
    if (entry->type != REDIS_REPLY_STRING || !(e = json_loadb(entry->str, entry->len, 0, NULL))) {
        problem(it, "no deadmsg entry");
        goto out;
    }
    reason = json_string_value(json_object_get(e, "reason"));
    if (!has_text(reason, it))
        problem(it, "reason '%.200s', expected %s'%.100s'", reason ? reason : "(none)",
                it->exact ? "" : "to contain ", it->expect);
    const char *qid = json_string_value(json_object_get(e, "id"));
    if (!qid || strcmp(qid, it->id) != 0)
        problem(it, "deadmsg id '%s'", qid ? qid : "(none)");
    check_dead_bytes(it, e);
    if (!json_is_true(json_object_get(r, "dead")))
        problem(it, "result record lacks dead=true");
    const char *rmsg = json_string_value(json_object_get(err, "message"));
    if (!reason || !rmsg || strcmp(rmsg, reason) != 0)
        problem(it, "result error message '%.200s' differs from the reason",
                rmsg ? rmsg : "(none)");
out:
    json_decref(e);
    json_decref(r);
}

static void check_good(const item *it, redisReply *rec)
{
    json_t *r = NULL;
    if (rec->type != REDIS_REPLY_STRING || !(r = json_loadb(rec->str, rec->len, 0, NULL))) {
        problem(it, "no result record");
        return;
    }
    const char *state = json_string_value(json_object_get(r, "state"));
    char *res = json_dumps(json_object_get(r, "result"), JSON_ENCODE_ANY | JSON_COMPACT);
    if (!state || strcmp(state, "SUCCESS") != 0)
        problem(it, "state %s (%.200s)", state ? state : "(none)", rec->str);
    else if (!res || strcmp(res, it->expect) != 0)
        problem(it, "result %s, expected %s", res ? res : "(none)", it->expect);
    free(res);
    json_decref(r);
}

/* Append a script call (sent as EVAL: nothing here loaded it). */
static void append_script(redisContext *c, tq_cmd *cmd)
{
    tq_cmd_to_eval(cmd);
    assert_int_equal(tq_sconn_send(c, cmd), 0);
    tq_cmd_release(cmd);
}

/* Append the state script's read of id: [record, running, queued]. */
static void append_state(redisContext *c, const char *id)
{
    tq_cmd cmd;
    tq_cmd_init(&cmd);
    tq_cmd_state(&cmd, PFX, Q, id);
    append_script(c, &cmd);
}

/* The record of a state reply (its first element), or the reply itself
 * when it is not one (an error: check_* then report it). */
static redisReply *state_record(redisReply *r)
{
    return r->type == REDIS_REPLY_ARRAY && r->elements == 3 ? r->element[0] : r;
}

/* Pipelined reads of every record and dead letter. */
static void check_all(fx *f)
{
    redisContext *c = f->r.rc;
    for (int base = 0; base < NBAD; base += BATCH / 4) {
        int end = base + BATCH / 4 < NBAD ? base + BATCH / 4 : NBAD;
        for (int i = base; i < end; i++) {
            const item *it = &f->bad[i];
            redisAppendCommand(c, "ZSCORE %s %s", qkey("dead"), it->id);
            redisAppendCommand(c, "HGET %s %s", qkey("deadmsg"), it->id);
            append_state(c, it->id); /* the final record */
        }
        for (int i = base; i < end; i++) {
            redisReply *r[3];
            for (int k = 0; k < 3; k++) {
                assert_int_equal(redisGetReply(c, (void **)&r[k]), REDIS_OK);
                assert_non_null(r[k]);
            }
            check_bad(&f->bad[i], r[0], r[1], state_record(r[2]));
            for (int k = 0; k < 3; k++)
                freeReplyObject(r[k]);
        }
    }
    for (int base = 0; base < NVALID; base += BATCH) {
        int end = base + BATCH < NVALID ? base + BATCH : NVALID;
        for (int i = base; i < end; i++) {
            append_state(c, f->good[i].id);
        }
        for (int i = base; i < end; i++) {
            redisReply *r;
            assert_int_equal(redisGetReply(c, (void **)&r), REDIS_OK);
            assert_non_null(r);
            check_good(&f->good[i], state_record(r));
            freeReplyObject(r);
        }
    }
}

/* ---- the test ----------------------------------------------------------- */

static void test_hostile_worker_survives_and_dead_letters(void **state)
{
    fx *f = *state;
    long long t0 = th_mono_ms();

    /* Spread the kinds evenly over the 10,000 bad messages. */
    kind *order = tq_xmalloc(NBAD * sizeof(*order));
    int n = 0, per_kind[K_COUNT] = {0};
    for (int k = 0; k < K_COUNT; k++) {
        int cnt = kinds[k].count;
        if (cnt < 0) {
            cnt = NBAD;
            for (int j = 0; j < K_COUNT; j++)
                cnt -= kinds[j].count > 0 ? kinds[j].count : 0;
        }
        assert_true(cnt > 0 && n + cnt <= NBAD);
        for (int j = 0; j < cnt; j++)
            order[n++] = (kind)k;
    }
    assert_int_equal(n, NBAD);
    for (int i = NBAD - 1; i > 0; i--) {
        int j = (int)(rnd() % (uint64_t)(i + 1));
        kind t = order[i];
        order[i] = order[j];
        order[j] = t;
    }

    /* Push them interleaved: valid, bad, valid, bad, ... */
    size_t bytes = 0;
    for (int i = 0; i < NVALID + NBAD; i++) {
        buf b = {0};
        item *it;
        if (i % 2 == 0) {
            it = &f->good[i / 2];
            it->k = K_COUNT;
            snprintf(it->id, sizeof(it->id), "ok-%05d", i / 2);
            make_good(it, i / 2, &b);
        } else {
            it = &f->bad[i / 2];
            it->k = order[i / 2];
            snprintf(it->id, sizeof(it->id), "bad-%05d", i / 2);
            make_bad(it, per_kind[it->k]++, &b);
            it->rawlen = b.len;
            it->raw = tq_xmalloc(b.len < KEEP_RAW ? b.len + 1 : KEEP_RAW);
            memcpy(it->raw, b.p ? b.p : "", b.len < KEEP_RAW ? b.len : KEEP_RAW);
        }
        push_raw(f->r.rc, it->id, b.p ? b.p : "", b.len);
        bytes += b.len;
        free(b.p);
    }
    drain_replies(f->r.rc);
    free(order);
    assert_int_equal(tf_rint(f->r.rc, "LLEN %s", qkey("pending")), NVALID + NBAD);
    assert_int_equal(tf_rint(f->r.rc, "HLEN %s", qkey("msg")), NVALID + NBAD);
    long long t_push = th_mono_ms();

    /* One real worker drains the queue. */
    const char *argv[] = {"--prefix", PFX,       "--queues",   Q,        "--concurrency", "2",
                          "--pool",   "prefork", "--dead-max", "100000", "--log-level",   "warn",
                          NULL};
    const char *env[] = {"TASKQ_ALLOW_ROOT=1", "TASKQ_SIGNING_KEYS", "TASKQ_LOAD", "TASKQ_QUEUES",
                         NULL};
    tf_worker_start(&f->worker, f->r.srv->url, argv, env, 0);
    const char *wlog = f->worker.log; /* kept after the process is reaped */

    long long deadline = t_push + DRAIN_MS, left = -1;
    while (th_mono_ms() < deadline) {
        if (!tf_alive(f->worker.pid)) {
            th_dump_file("taskq-worker log", wlog);
            f->worker.pid = 0;
            fail_msg("taskq-worker exited while draining the queue");
        }
        left = tf_rint(f->r.rc, "HLEN %s", qkey("msg"));
        if (left == 0)
            break;
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    long long t_drain = th_mono_ms();
    if (left != 0) {
        th_dump_file("taskq-worker log", wlog);
        fail_msg("%lld messages still queued after %d ms", left, DRAIN_MS);
    }
    assert_int_equal(tf_rint(f->r.rc, "LLEN %s", qkey("pending")), 0);

    /* Every outcome. */
    long long ndead = tf_rint(f->r.rc, "ZCARD %s", qkey("dead"));
    int want_dead = NBAD - per_kind[K_TYPEERROR];
    nfail = 0;
    check_all(f);
    long long t_check = th_mono_ms();

    /* Still up, still serving: a fresh task. */
    assert_true(tf_alive(f->worker.pid));
    {
        buf b = {0};
        item fresh = {.k = K_COUNT};
        snprintf(fresh.id, sizeof(fresh.id), "ok-fresh");
        make_good(&fresh, 20, &b); /* add(20, 21) = 41 */
        push_raw(f->r.rc, fresh.id, b.p, b.len);
        drain_replies(f->r.rc);
        free(b.p);
        redisReply *r = th_cmd(f->r.rc, "PUBLISH %s x", qkey("wake"));
        freeReplyObject(r);
        /* Wait as a client does: register, then block on the done list,
         * whose element is the final record itself. */
        char key[TQ_KEY_MAX];
        tq_key_task(key, PFX, Q, "done", fresh.id);
        tq_cmd w;
        tq_cmd_init(&w);
        tq_cmd_watch(&w, PFX, Q, fresh.id, 8000);
        append_script(f->r.rc, &w);
        redisAppendCommand(f->r.rc, "BLMOVE %s %s RIGHT LEFT 8", key, key);
        assert_int_equal(redisGetReply(f->r.rc, (void **)&r), REDIS_OK);
        freeReplyObject(r);
        assert_int_equal(redisGetReply(f->r.rc, (void **)&r), REDIS_OK);
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_STRING);
        check_good(&fresh, r);
        freeReplyObject(r);
    }
    assert_true(tf_alive(f->worker.pid));

    print_message("hostile: pushed %d messages (%zu bytes) in %lld ms; worker drained them in "
                  "%lld ms (%.0f msg/s); checked in %lld ms; total %lld ms\n",
                  NVALID + NBAD, bytes, t_push - t0, t_drain - t_push,
                  (NVALID + NBAD) * 1000.0 / (double)(t_drain - t_push > 0 ? t_drain - t_push : 1),
                  t_check - t_drain, th_mono_ms() - t0);
    print_message("hostile: %d valid SUCCESS expected, %d dead letters expected (%lld found), "
                  "%d TypeError failures expected; %d problems\n",
                  NVALID, want_dead, ndead, per_kind[K_TYPEERROR], nfail);
    for (int k = 0; k < K_COUNT; k++)
        print_message("hostile:   %-26s %5d\n", kinds[k].name, per_kind[k]);

    /* A clean, warm shutdown: exit status 0. */
    int st = tf_worker_stop(&f->worker, 15000);
    if (nfail)
        fail_msg("%d problems (first 20 listed above)", nfail);
    assert_int_equal(ndead, want_dead);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hostile_worker_survives_and_dead_letters, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
