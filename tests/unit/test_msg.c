/* Unit tests for common/tq_msg: protocol v1 message decoding (every
 * rejection, with the reason naming the field or limit), encoding round
 * trips, and the result-record skeleton. docs/PROTOCOL.md#task-message */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/tq_msg.h"
#include "common/tq_util.h"

#define ID32 "0123456789abcdef0123456789abcdef"

/* A valid message with every field, as a JSON object (new reference). */
static json_t *base_obj(void)
{
    json_error_t e;
    json_t *o = json_loads("{\"v\":1,\"id\":\"" ID32 "\",\"task\":\"add\",\"args\":[2,3],"
                           "\"kwargs\":{\"k\":\"v\"},\"queue\":\"default\",\"attempts\":0,"
                           "\"retries\":3,\"created_ms\":1764100000123,\"eta_ms\":1764100060123,"
                           "\"expires_ms\":1764103600123,\"soft_limit_ms\":5000,"
                           "\"hard_limit_ms\":10000,\"errors\":[]}",
                           0, &e);
    assert_non_null(o);
    return o;
}

static void assert_has(const char *s, const char *sub)
{
    if (!strstr(s, sub))
        fail_msg("'%s' does not contain '%s'", s, sub);
}

static int decode_str(const char *s, size_t len, const tq_msg_limits *lim, tq_msg **m, char *err,
                      size_t errlen)
{
    tq_msg_limits def;
    if (!lim) {
        tq_msg_limits_default(&def);
        lim = &def;
    }
    err[0] = '\0';
    return tq_msg_decode(s, len, lim, m, err, errlen);
}

/* Decode o (stolen) and expect `status` with a reason containing `sub`. */
static void expect_reject_obj(json_t *o, const tq_msg_limits *lim, int status, const char *sub)
{
    char *s = json_dumps(o, JSON_COMPACT);
    char err[256];
    tq_msg *m = (tq_msg *)1;
    assert_non_null(s);
    int rc = decode_str(s, strlen(s), lim, &m, err, sizeof(err));
    if (rc != status)
        fail_msg("decoding %.200s: status %d, want %d (reason '%s')", s, rc, status, err);
    assert_null(m);
    assert_has(err, sub);
    free(s);
    json_decref(o);
}

static void expect_reject_raw(const char *s, size_t len, const tq_msg_limits *lim, int status,
                              const char *sub)
{
    char err[256];
    tq_msg *m = (tq_msg *)1;
    int rc = decode_str(s, len, lim, &m, err, sizeof(err));
    if (rc != status)
        fail_msg("status %d, want %d (reason '%s')", rc, status, err);
    assert_null(m);
    assert_has(err, sub);
    assert_true(strlen(err) < sizeof(err));
}

static tq_msg *decode_obj_ok(json_t *o, const tq_msg_limits *lim)
{
    char *s = json_dumps(o, JSON_COMPACT);
    char err[256];
    tq_msg *m = NULL;
    assert_non_null(s);
    int rc = decode_str(s, strlen(s), lim, &m, err, sizeof(err));
    if (rc != TQ_MSG_OK)
        fail_msg("decoding %.200s: status %d (reason '%s')", s, rc, err);
    assert_non_null(m);
    free(s);
    json_decref(o);
    return m;
}

static void test_msg_decode_all_fields(void **state)
{
    (void)state;
    tq_msg *m = decode_obj_ok(base_obj(), NULL);
    assert_string_equal(m->id, ID32);
    assert_string_equal(m->task, "add");
    assert_string_equal(m->queue, "default");
    assert_true(json_is_array(m->args) && json_array_size(m->args) == 2);
    assert_int_equal(json_integer_value(json_array_get(m->args, 1)), 3);
    assert_string_equal(json_string_value(json_object_get(m->kwargs, "k")), "v");
    assert_int_equal(m->attempts, 0);
    assert_int_equal(m->retries, 3);
    assert_int_equal(m->created_ms, 1764100000123LL);
    assert_int_equal(m->eta_ms, 1764100060123LL);
    assert_int_equal(m->expires_ms, 1764103600123LL);
    assert_int_equal(m->soft_limit_ms, 5000);
    assert_int_equal(m->hard_limit_ms, 10000);
    tq_msg_free(m);
}

static void test_msg_roundtrip_every_field(void **state)
{
    (void)state;
    tq_msg *m = tq_msg_new(ID32, "mod.task", "q-1.x");
    tq_msg_set_int(m, "attempts", 2);
    tq_msg_set_int(m, "retries", 5);
    tq_msg_set_int(m, "created_ms", 1000);
    tq_msg_set_int(m, "eta_ms", 2000);
    tq_msg_set_int(m, "expires_ms", 3000);
    tq_msg_set_int(m, "soft_limit_ms", 40);
    tq_msg_set_int(m, "hard_limit_ms", 50);
    tq_msg_set_args(m, json_pack("[i,s,{s:b},n]", 1, "two\xc3\xa9", "x", 1));
    tq_msg_set_kwargs(m, json_pack("{s:f}", "pi", 3.5));
    tq_msg_add_error(m, 1, "ValueError", "bad \"input\"", 1500, "host:1:abcd");

    size_t len = 0;
    char *s = tq_msg_encode(m, &len);
    assert_int_equal(len, strlen(s));
    tq_msg *d = NULL;
    char err[256];
    assert_int_equal(decode_str(s, len, NULL, &d, err, sizeof(err)), TQ_MSG_OK);
    assert_string_equal(d->id, ID32);
    assert_string_equal(d->task, "mod.task");
    assert_string_equal(d->queue, "q-1.x");
    assert_int_equal(d->attempts, 2);
    assert_int_equal(d->retries, 5);
    assert_int_equal(d->created_ms, 1000);
    assert_int_equal(d->eta_ms, 2000);
    assert_int_equal(d->expires_ms, 3000);
    assert_int_equal(d->soft_limit_ms, 40);
    assert_int_equal(d->hard_limit_ms, 50);
    assert_true(json_equal(d->args, m->args));
    assert_true(json_equal(d->kwargs, m->kwargs));
    assert_true(json_equal(d->root, m->root));
    assert_int_equal(json_integer_value(json_object_get(d->root, "v")), 1);
    json_t *errors = json_object_get(d->root, "errors");
    assert_int_equal(json_array_size(errors), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(errors, 0), "message")),
                        "bad \"input\"");
    /* Encoding again gives the same bytes. */
    char *s2 = tq_msg_encode(d, NULL);
    assert_string_equal(s, s2);
    free(s);
    free(s2);
    tq_msg_free(d);
    tq_msg_free(m);
}

static void test_msg_new_defaults(void **state)
{
    (void)state;
    int64_t before = tq_now_ms();
    tq_msg *m = tq_msg_new("abc", "t", "q");
    assert_string_equal(m->id, "abc");
    assert_string_equal(m->task, "t");
    assert_string_equal(m->queue, "q");
    assert_int_equal(m->attempts, 0);
    assert_int_equal(m->retries, -1);
    assert_true(m->created_ms >= before && m->created_ms <= tq_now_ms());
    assert_int_equal(m->eta_ms, 0);
    assert_true(json_is_array(m->args) && json_array_size(m->args) == 0);
    assert_true(json_is_object(m->kwargs) && json_object_size(m->kwargs) == 0);
    assert_null(json_object_get(m->root, "retries"));
    assert_null(json_object_get(m->root, "eta_ms"));
    /* Removing optional fields with 0 / -1. */
    tq_msg_set_int(m, "eta_ms", 5);
    tq_msg_set_int(m, "retries", 0);
    assert_non_null(json_object_get(m->root, "eta_ms"));
    assert_int_equal(json_integer_value(json_object_get(m->root, "retries")), 0);
    tq_msg_set_int(m, "eta_ms", 0);
    tq_msg_set_int(m, "retries", -1);
    assert_null(json_object_get(m->root, "eta_ms"));
    assert_null(json_object_get(m->root, "retries"));
    assert_int_equal(m->eta_ms, 0);
    assert_int_equal(m->retries, -1);
    tq_msg_free(m);
    tq_msg_free(NULL);
}

static void test_msg_optional_fields_absent(void **state)
{
    (void)state;
    json_t *o = base_obj();
    const char *opt[] = {"retries",       "eta_ms",        "expires_ms",
                         "soft_limit_ms", "hard_limit_ms", "errors"};
    for (size_t i = 0; i < sizeof(opt) / sizeof(opt[0]); i++)
        json_object_del(o, opt[i]);
    tq_msg *m = decode_obj_ok(o, NULL);
    assert_int_equal(m->retries, -1);
    assert_int_equal(m->eta_ms, 0);
    assert_int_equal(m->expires_ms, 0);
    assert_int_equal(m->soft_limit_ms, 0);
    assert_int_equal(m->hard_limit_ms, 0);
    tq_msg_free(m);
}

static void test_msg_unknown_fields_preserved(void **state)
{
    (void)state;
    json_t *o = base_obj();
    json_object_set_new(o, "x_future", json_pack("{s:i}", "a", 1));
    tq_msg *m = decode_obj_ok(o, NULL);
    char *s = tq_msg_encode(m, NULL);
    assert_has(s, "\"x_future\":{\"a\":1}");
    free(s);
    tq_msg_free(m);
}

static void test_msg_reject_empty(void **state)
{
    (void)state;
    expect_reject_raw("", 0, NULL, TQ_MSG_EJSON, "empty");
}

static void test_msg_reject_binary_garbage(void **state)
{
    (void)state;
    const char g[] = "\xff\xfe\x00\x01\x80{\"v\":1}\x00\x00";
    expect_reject_raw(g, sizeof(g) - 1, NULL, TQ_MSG_EJSON, "not valid JSON");
    /* A valid message followed by a NUL byte and junk is rejected too (no
     * silent truncation at NUL). */
    json_t *o = base_obj();
    char *s = json_dumps(o, JSON_COMPACT);
    size_t n = strlen(s);
    char *buf = malloc(n + 4);
    memcpy(buf, s, n);
    memcpy(buf + n, "\0xx", 3);
    expect_reject_raw(buf, n + 3, NULL, TQ_MSG_EJSON, "not valid JSON");
    free(buf);
    free(s);
    json_decref(o);
}

static void test_msg_reject_not_json(void **state)
{
    (void)state;
    expect_reject_raw("hello", 5, NULL, TQ_MSG_EJSON, "not valid JSON");
    expect_reject_raw("{\"v\":1,", 7, NULL, TQ_MSG_EJSON, "not valid JSON");
    expect_reject_raw("{'v':1}", 7, NULL, TQ_MSG_EJSON, "not valid JSON");
    /* Invalid UTF-8 inside a string. */
    const char bad_utf8[] = "{\"v\":1,\"task\":\"a\xc0\xafz\"}";
    expect_reject_raw(bad_utf8, sizeof(bad_utf8) - 1, NULL, TQ_MSG_EJSON, "not valid JSON");
}

static void test_msg_reject_not_object(void **state)
{
    (void)state;
    expect_reject_raw("[1,2]", 5, NULL, TQ_MSG_ESCHEMA, "must be a JSON object, got array");
    /* Scalars at the top level are not even accepted by the parser. */
    char err[256];
    tq_msg *m = NULL;
    assert_true(decode_str("42", 2, NULL, &m, err, sizeof(err)) < 0);
    assert_null(m);
    assert_true(decode_str("\"s\"", 3, NULL, &m, err, sizeof(err)) < 0);
    assert_null(m);
}

static void test_msg_reject_duplicate_keys(void **state)
{
    (void)state;
    const char *s = "{\"v\":1,\"id\":\"a\",\"task\":\"t\",\"args\":[],\"kwargs\":{},"
                    "\"queue\":\"q\",\"attempts\":0,\"created_ms\":1,\"id\":\"b\"}";
    expect_reject_raw(s, strlen(s), NULL, TQ_MSG_EJSON, "duplicate");
    /* Nested duplicates too. */
    const char *s2 =
        "{\"v\":1,\"id\":\"a\",\"task\":\"t\",\"args\":[],\"kwargs\":{\"k\":1,\"k\":2},"
        "\"queue\":\"q\",\"attempts\":0,\"created_ms\":1}";
    expect_reject_raw(s2, strlen(s2), NULL, TQ_MSG_EJSON, "duplicate");
}

typedef struct bad_type {
    const char *field;
    const char *value; /* JSON */
    const char *reason;
} bad_type;

static void test_msg_reject_wrong_types(void **state)
{
    (void)state;
    static const bad_type cases[] = {
        {"v", "\"1\"", "field 'v' must be int, got string"},
        {"v", "1.0", "field 'v' must be int, got float"},
        {"id", "5", "field 'id' must be string, got int"},
        {"task", "[]", "field 'task' must be string, got array"},
        {"queue", "{}", "field 'queue' must be string, got object"},
        {"args", "{}", "field 'args' must be array, got object"},
        {"args", "null", "field 'args' must be array, got null"},
        {"kwargs", "[]", "field 'kwargs' must be object, got array"},
        {"attempts", "\"0\"", "field 'attempts' must be int, got string"},
        {"retries", "1.5", "field 'retries' must be int, got float"},
        {"created_ms", "true", "field 'created_ms' must be int, got bool"},
        {"eta_ms", "\"x\"", "field 'eta_ms' must be int, got string"},
        {"expires_ms", "[1]", "field 'expires_ms' must be int, got array"},
        {"soft_limit_ms", "false", "field 'soft_limit_ms' must be int, got bool"},
        {"hard_limit_ms", "2.5", "field 'hard_limit_ms' must be int, got float"},
        {"errors", "{}", "field 'errors' must be array, got object"},
        {"errors", "\"e\"", "field 'errors' must be array, got string"},
        /* Ranges. */
        {"attempts", "-1", "field 'attempts' must be >= 0, got -1"},
        {"retries", "-2", "field 'retries' must be >= 0"},
        {"created_ms", "-5", "field 'created_ms' must be >= 0"},
        {"eta_ms", "-1", "field 'eta_ms' must be >= 0"},
        {"expires_ms", "-1", "field 'expires_ms' must be >= 0"},
        {"soft_limit_ms", "0", "field 'soft_limit_ms' must be >= 1, got 0"},
        {"hard_limit_ms", "-3", "field 'hard_limit_ms' must be >= 1"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_error_t e;
        json_t *o = base_obj();
        json_t *v = json_loads(cases[i].value, JSON_DECODE_ANY, &e);
        assert_non_null(v);
        json_object_set_new(o, cases[i].field, v);
        expect_reject_obj(o, NULL, TQ_MSG_ESCHEMA, cases[i].reason);
    }
}

static void test_msg_reject_missing_required(void **state)
{
    (void)state;
    const char *req[] = {"v", "id", "task", "args", "kwargs", "queue", "attempts", "created_ms"};
    for (size_t i = 0; i < sizeof(req) / sizeof(req[0]); i++) {
        char want[64];
        json_t *o = base_obj();
        json_object_del(o, req[i]);
        snprintf(want, sizeof(want), "missing field '%s'", req[i]);
        expect_reject_obj(o, NULL, TQ_MSG_ESCHEMA, want);
    }
    /* null counts as missing for the required integers. */
    json_t *o = base_obj();
    json_object_set_new(o, "attempts", json_null());
    expect_reject_obj(o, NULL, TQ_MSG_ESCHEMA, "missing field 'attempts'");
}

static void test_msg_reject_bad_names(void **state)
{
    (void)state;
    char long_id[66], long_task[130];
    memset(long_id, 'a', 65);
    long_id[65] = '\0';
    memset(long_task, 't', 129);
    long_task[129] = '\0';
    const struct {
        const char *field, *value, *reason;
    } cases[] = {
        {"id", "", "field 'id' is not a valid task id"},
        {"id", "a b", "field 'id' is not a valid task id"},
        {"id", "a.b", "field 'id' is not a valid task id"},
        {"id", "a{b}", "field 'id' is not a valid task id"},
        {"id", long_id, "field 'id' is not a valid task id"},
        {"queue", "", "field 'queue' is not a valid queue name"},
        {"queue", "q:1", "field 'queue' is not a valid queue name"},
        {"queue", "{q}", "field 'queue' is not a valid queue name"},
        {"queue", long_id, "field 'queue' is not a valid queue name"},
        {"task", "", "field 'task' is not a valid task name"},
        {"task", "has space", "field 'task' is not a valid task name"},
        {"task", "caf\xc3\xa9", "field 'task' is not a valid task name"},
        {"task", "tab\there", "field 'task' is not a valid task name"},
        {"task", long_task, "field 'task' is not a valid task name"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *o = base_obj();
        json_object_set_new(o, cases[i].field, json_string(cases[i].value));
        expect_reject_obj(o, NULL, TQ_MSG_ESCHEMA, cases[i].reason);
    }
    /* An embedded NUL cannot sneak a valid prefix through (jansson already
     * refuses \u0000 without JSON_ALLOW_NUL). */
    json_t *o = base_obj();
    json_object_set_new(o, "id", json_stringn("abc\0def", 7));
    char *s = json_dumps(o, JSON_COMPACT);
    char err[256];
    tq_msg *nm = (tq_msg *)1;
    assert_true(decode_str(s, strlen(s), NULL, &nm, err, sizeof(err)) < 0);
    assert_null(nm);
    free(s);
    json_decref(o);

    /* The longest accepted names. */
    long_id[64] = '\0';
    long_task[128] = '\0';
    o = base_obj();
    json_object_set_new(o, "id", json_string(long_id));
    json_object_set_new(o, "queue", json_string(long_id));
    json_object_set_new(o, "task", json_string(long_task));
    tq_msg *m = decode_obj_ok(o, NULL);
    assert_int_equal(strlen(m->id), 64);
    assert_int_equal(strlen(m->task), 128);
    tq_msg_free(m);
}

static void test_msg_reject_other_version(void **state)
{
    (void)state;
    json_t *o = base_obj();
    json_object_set_new(o, "v", json_integer(2));
    expect_reject_obj(o, NULL, TQ_MSG_EVERSION, "unsupported protocol version 2");
    o = base_obj();
    json_object_set_new(o, "v", json_integer(0));
    expect_reject_obj(o, NULL, TQ_MSG_EVERSION, "unsupported protocol version 0");
}

static void test_msg_reject_over_max_bytes(void **state)
{
    (void)state;
    tq_msg_limits lim;
    tq_msg_limits_default(&lim);
    assert_int_equal(lim.max_bytes, 1024 * 1024);
    json_t *o = base_obj();
    char *s = json_dumps(o, JSON_COMPACT);
    size_t n = strlen(s);
    json_decref(o);
    /* Exactly at the limit: accepted. */
    lim.max_bytes = n;
    char err[256];
    tq_msg *m = NULL;
    assert_int_equal(decode_str(s, n, &lim, &m, err, sizeof(err)), TQ_MSG_OK);
    tq_msg_free(m);
    /* One byte less: refused with the limit named. */
    lim.max_bytes = n - 1;
    expect_reject_raw(s, n, &lim, TQ_MSG_ELIMIT, "max_bytes");
    free(s);
    /* Checked before parsing: garbage over the limit is a size error, not a
     * JSON error, and a huge deep buffer is not scanned. */
    lim.max_bytes = 100;
    char big[4096];
    memset(big, '[', sizeof(big));
    expect_reject_raw(big, sizeof(big), &lim, TQ_MSG_ELIMIT, "4096 bytes exceeds 100");
}

static void test_msg_reject_deep_nesting(void **state)
{
    (void)state;
    const size_t n = 10000;
    char *buf = malloc(2 * n);
    memset(buf, '[', n);
    memset(buf + n, ']', n);
    expect_reject_raw(buf, 2 * n, NULL, TQ_MSG_ELIMIT, "max_depth");
    memset(buf, '{', n);
    expect_reject_raw(buf, n, NULL, TQ_MSG_ELIMIT, "max_depth");
    free(buf);

    /* Boundary with the default depth of 32: the root object is level 1,
     * args level 2, so 30 nested arrays inside args are fine and 31 are not. */
    for (int extra = 30; extra <= 31; extra++) {
        json_t *o = base_obj();
        json_t *inner = json_array();
        for (int i = 1; i < extra; i++) {
            json_t *a = json_array();
            json_array_append_new(a, inner);
            inner = a;
        }
        json_t *args = json_array();
        json_array_append_new(args, inner);
        json_object_set_new(o, "args", args);
        if (extra == 30) {
            tq_msg_free(decode_obj_ok(o, NULL));
        } else {
            expect_reject_obj(o, NULL, TQ_MSG_ELIMIT, "deeper than 32 (limit max_depth)");
        }
    }

    /* Brackets inside strings (with escaped quotes) do not count. */
    char str[200];
    memset(str, '[', sizeof(str) - 1);
    str[sizeof(str) - 1] = '\0';
    str[10] = '"';
    json_t *o = base_obj();
    json_object_set_new(o, "args", json_pack("[s,s]", str, "\\\"{{{{"));
    tq_msg_free(decode_obj_ok(o, NULL));
}

static void test_msg_prescan_depth(void **state)
{
    (void)state;
    assert_int_equal(tq_msg_prescan_depth("[[[]]]", 6, 3), 0);
    assert_int_equal(tq_msg_prescan_depth("[[[]]]", 6, 2), -1);
    assert_int_equal(tq_msg_prescan_depth("[{\"a\":[1]}]", 11, 3), 0);
    assert_int_equal(tq_msg_prescan_depth("[{\"a\":[1]}]", 11, 2), -1);
    assert_int_equal(tq_msg_prescan_depth("[\"[[[[\"]", 8, 1), 0);
    assert_int_equal(tq_msg_prescan_depth("[\"\\\"[[\"]", 8, 1), 0);
    assert_int_equal(tq_msg_prescan_depth("[][][][]", 8, 1), 0);
}

static void test_msg_reject_too_many_elements(void **state)
{
    (void)state;
    tq_msg_limits lim;
    tq_msg_limits_default(&lim);
    assert_int_equal(lim.max_elements, 100000);
    lim.max_elements = 30;
    json_t *o = base_obj();
    json_t *args = json_array();
    for (int i = 0; i < 40; i++)
        json_array_append_new(args, json_integer(i));
    json_object_set_new(o, "args", args);
    expect_reject_obj(o, &lim, TQ_MSG_ELIMIT, "more than 30 elements (limit max_elements)");
    /* The same number spread over kwargs counts too. */
    o = base_obj();
    json_t *kw = json_object();
    for (int i = 0; i < 40; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%d", i);
        json_object_set_new(kw, k, json_null());
    }
    json_object_set_new(o, "kwargs", kw);
    expect_reject_obj(o, &lim, TQ_MSG_ELIMIT, "max_elements");
    /* Under the limit is fine. */
    lim.max_elements = 100;
    o = base_obj();
    tq_msg_free(decode_obj_ok(o, &lim));
}

static void test_msg_reject_long_strings(void **state)
{
    (void)state;
    tq_msg_limits lim;
    tq_msg_limits_default(&lim);
    assert_int_equal(lim.max_string, 256 * 1024);
    lim.max_string = 64;
    char s[66];
    memset(s, 'x', 65);
    s[65] = '\0';
    json_t *o = base_obj();
    json_object_set_new(o, "args", json_pack("[s]", s));
    expect_reject_obj(o, &lim, TQ_MSG_ELIMIT, "65 bytes exceeds 64 (limit max_string)");
    o = base_obj();
    json_object_set_new(o, "kwargs", json_pack("{s:i}", s, 1));
    expect_reject_obj(o, &lim, TQ_MSG_ELIMIT, "key exceeds 64 bytes (limit max_string)");
    s[64] = '\0';
    o = base_obj();
    json_object_set_new(o, "args", json_pack("[s]", s));
    tq_msg_free(decode_obj_ok(o, &lim));
}

static void test_msg_check_value_limits(void **state)
{
    (void)state;
    tq_msg_limits lim;
    char err[256] = "";
    tq_msg_limits_default(&lim);
    lim.max_depth = 2;
    json_t *v = json_pack("[[i]]", 1);
    assert_non_null(v);
    assert_int_equal(tq_msg_check_value(v, &lim, "args", err, sizeof(err)), 0);
    json_decref(v);
    v = json_pack("[[[i]]]", 1);
    assert_non_null(v);
    assert_int_equal(tq_msg_check_value(v, &lim, "result", err, sizeof(err)), TQ_MSG_ELIMIT);
    assert_has(err, "result: nesting deeper than 2");
    json_decref(v);
}

static void test_msg_add_error(void **state)
{
    (void)state;
    tq_msg *m = tq_msg_new("id1", "t", "q");
    tq_msg_add_error(m, 1, "KeyError", "no such key", 111, "w1");
    tq_msg_add_error(m, 2, NULL, NULL, 222, NULL);
    json_t *errors = json_object_get(m->root, "errors");
    assert_true(json_is_array(errors));
    assert_int_equal(json_array_size(errors), 2);
    json_t *e0 = json_array_get(errors, 0), *e1 = json_array_get(errors, 1);
    assert_int_equal(json_integer_value(json_object_get(e0, "attempt")), 1);
    assert_string_equal(json_string_value(json_object_get(e0, "type")), "KeyError");
    assert_string_equal(json_string_value(json_object_get(e0, "message")), "no such key");
    assert_int_equal(json_integer_value(json_object_get(e0, "at_ms")), 111);
    assert_string_equal(json_string_value(json_object_get(e0, "worker")), "w1");
    assert_int_equal(json_integer_value(json_object_get(e1, "attempt")), 2);
    assert_string_equal(json_string_value(json_object_get(e1, "type")), "Error");
    assert_string_equal(json_string_value(json_object_get(e1, "message")), "");
    assert_null(json_object_get(e1, "worker"));
    /* A decoded message with "errors": null gets a fresh array. */
    json_t *o = base_obj();
    json_object_set_new(o, "errors", json_null());
    tq_msg *d = decode_obj_ok(o, NULL);
    tq_msg_add_error(d, 1, "E", "m", 1, NULL);
    assert_int_equal(json_array_size(json_object_get(d->root, "errors")), 1);
    /* And the result survives a round trip through decode. */
    char *s = tq_msg_encode(m, NULL);
    tq_msg *r = NULL;
    char err[256];
    assert_int_equal(decode_str(s, strlen(s), NULL, &r, err, sizeof(err)), TQ_MSG_OK);
    assert_true(json_equal(json_object_get(r->root, "errors"), errors));
    free(s);
    tq_msg_free(r);
    tq_msg_free(d);
    tq_msg_free(m);
}

static void test_msg_record_new(void **state)
{
    (void)state;
    tq_msg *m = decode_obj_ok(base_obj(), NULL);
    tq_msg_set_int(m, "attempts", 3);
    tq_msg_add_error(m, 1, "E", "first", 5, "w");
    json_t *r = tq_msg_record_new(m, "SUCCESS");
    assert_int_equal(json_integer_value(json_object_get(r, "v")), 1);
    assert_string_equal(json_string_value(json_object_get(r, "id")), ID32);
    assert_string_equal(json_string_value(json_object_get(r, "task")), "add");
    assert_string_equal(json_string_value(json_object_get(r, "queue")), "default");
    assert_string_equal(json_string_value(json_object_get(r, "state")), "SUCCESS");
    assert_int_equal(json_integer_value(json_object_get(r, "attempts")), 3);
    assert_int_equal(json_integer_value(json_object_get(r, "created_ms")), 1764100000123LL);
    json_t *errors = json_object_get(r, "errors");
    assert_int_equal(json_array_size(errors), 1);
    /* A copy: later changes to the message do not leak into the record. */
    tq_msg_add_error(m, 2, "E", "second", 6, "w");
    assert_int_equal(json_array_size(json_object_get(r, "errors")), 1);
    assert_null(json_object_get(r, "args"));
    json_decref(r);
    /* A message without errors gives an empty array. */
    tq_msg *n = tq_msg_new("x", "t", "q");
    r = tq_msg_record_new(n, "FAILURE");
    assert_true(json_is_array(json_object_get(r, "errors")));
    assert_int_equal(json_array_size(json_object_get(r, "errors")), 0);
    json_decref(r);
    tq_msg_free(n);
    tq_msg_free(m);
}

static void test_msg_json_type_names(void **state)
{
    (void)state;
    json_t *v[] = {json_object(),  json_array(), json_string("s"), json_integer(1),
                   json_real(1.5), json_true(),  json_false(),     json_null()};
    const char *want[] = {"object", "array", "string", "int", "float", "bool", "bool", "null"};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        assert_string_equal(tq_json_type_name(v[i]), want[i]);
        json_decref(v[i]);
    }
}

/* tq_msg_write_new writes the bytes tq_msg_new + setters + tq_msg_encode
 * would, and checks the limits as tq_msg_check_value does on the whole. */
static void write_both(const tq_msg_fields *f, const tq_msg_limits *lim)
{
    tq_msg *m = tq_msg_new(f->id, f->task, f->queue);
    m->created_ms = f->created_ms;
    tq_msg_set_int(m, "created_ms", f->created_ms);
    tq_msg_set_args(m, json_deep_copy(f->args));
    tq_msg_set_kwargs(m, json_deep_copy(f->kwargs));
    if (f->retries >= 0)
        tq_msg_set_int(m, "retries", f->retries);
    tq_msg_set_int(m, "eta_ms", f->eta_ms);
    tq_msg_set_int(m, "expires_ms", f->expires_ms);
    tq_msg_set_int(m, "soft_limit_ms", f->soft_limit_ms);
    tq_msg_set_int(m, "hard_limit_ms", f->hard_limit_ms);
    char e1[256] = "", e2[256] = "";
    int want = tq_msg_check_value(m->root, lim, f->task, e1, sizeof(e1));
    tq_jw b;
    tq_jw_init(&b);
    int got = tq_msg_write_new(&b, f, lim, e2, sizeof(e2));
    assert_int_equal(got, want);
    if (want == 0) {
        size_t len;
        char *s = tq_msg_encode(m, &len);
        assert_int_equal(b.len, len);
        assert_memory_equal(b.buf, s, len);
        free(s);
    } else {
        assert_int_equal(b.len, 0); /* nothing written on a limit error */
        assert_string_equal(e2, e1);
    }
    tq_jw_free(&b);
    tq_msg_free(m);
}

static void test_msg_write_new_matches_encode(void **state)
{
    (void)state;
    tq_msg_limits lim;
    tq_msg_limits_default(&lim);
    json_t *args = json_pack("[i, s, {s:[f, b, n]}]", -5, "a\"b\\c\u00e9", "k", 1.5, 1);
    json_t *kw = json_pack("{s:i, s:s}", "x", 1, "y", "z");
    json_t *empty_a = json_array(), *empty_o = json_object();
    tq_msg_fields f = {.id = "0123abc",
                       .task = "weird\"name\\",
                       .queue = "q.1",
                       .args = args,
                       .kwargs = kw,
                       .created_ms = 1764100000123LL,
                       .retries = -1};
    write_both(&f, &lim);
    f.retries = 0;
    f.eta_ms = 1764100060123LL;
    f.expires_ms = 9;
    f.soft_limit_ms = 5000;
    f.hard_limit_ms = -7;
    write_both(&f, &lim);
    f.args = empty_a;
    f.kwargs = empty_o;
    f.retries = 3;
    f.eta_ms = f.expires_ms = f.soft_limit_ms = f.hard_limit_ms = 0;
    write_both(&f, &lim);
    /* Limits: elements (the envelope counts), depth, string length. */
    f.args = args;
    f.kwargs = kw;
    for (size_t max = 8; max < 20; max++) {
        lim.max_elements = max;
        write_both(&f, &lim);
    }
    tq_msg_limits_default(&lim);
    for (int d = 0; d < 5; d++) {
        lim.max_depth = d;
        write_both(&f, &lim);
    }
    tq_msg_limits_default(&lim);
    for (size_t n = 0; n < 14; n++) {
        lim.max_string = n;
        write_both(&f, &lim);
    }
    json_decref(args);
    json_decref(kw);
    json_decref(empty_a);
    json_decref(empty_o);
}

/* A share is the same message with one more holder: freeing the first
 * holder leaves it whole for the other, and the last free releases it (the
 * ASan and valgrind stages would report a leak or a read after free). */
static void test_msg_share(void **state)
{
    (void)state;
    tq_msg *m = tq_msg_new("abc", "t.x", "q");
    tq_msg_set_args(m, json_pack("[i]", 5));
    tq_msg *s1 = tq_msg_share(m), *s2 = tq_msg_share(m);
    assert_ptr_equal(s1, m);
    assert_ptr_equal(s2, m);
    tq_msg_free(m);
    tq_msg_free(s1);
    assert_string_equal(s2->id, "abc");
    assert_string_equal(s2->task, "t.x");
    assert_int_equal(json_integer_value(json_array_get(s2->args, 0)), 5);
    size_t len;
    char *enc = tq_msg_encode(s2, &len);
    assert_non_null(strstr(enc, "\"args\":[5]"));
    free(enc);
    tq_msg_free(s2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_msg_decode_all_fields),
        cmocka_unit_test(test_msg_roundtrip_every_field),
        cmocka_unit_test(test_msg_new_defaults),
        cmocka_unit_test(test_msg_optional_fields_absent),
        cmocka_unit_test(test_msg_unknown_fields_preserved),
        cmocka_unit_test(test_msg_reject_empty),
        cmocka_unit_test(test_msg_reject_binary_garbage),
        cmocka_unit_test(test_msg_reject_not_json),
        cmocka_unit_test(test_msg_reject_not_object),
        cmocka_unit_test(test_msg_reject_duplicate_keys),
        cmocka_unit_test(test_msg_reject_wrong_types),
        cmocka_unit_test(test_msg_reject_missing_required),
        cmocka_unit_test(test_msg_reject_bad_names),
        cmocka_unit_test(test_msg_reject_other_version),
        cmocka_unit_test(test_msg_reject_over_max_bytes),
        cmocka_unit_test(test_msg_reject_deep_nesting),
        cmocka_unit_test(test_msg_prescan_depth),
        cmocka_unit_test(test_msg_reject_too_many_elements),
        cmocka_unit_test(test_msg_reject_long_strings),
        cmocka_unit_test(test_msg_check_value_limits),
        cmocka_unit_test(test_msg_add_error),
        cmocka_unit_test(test_msg_record_new),
        cmocka_unit_test(test_msg_json_type_names),
        cmocka_unit_test(test_msg_write_new_matches_encode),
        cmocka_unit_test(test_msg_share),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
