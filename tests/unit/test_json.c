/* Unit tests for tq_json (common/tq_json.c): yajl's tokenizer building a
 * jansson tree under jansson's rules. Each case that yajl alone gets wrong
 * (trailing partial tokens, lone surrogate escapes, overlong UTF-8, NUL,
 * duplicate keys) is here, with the tree or the reason expected; the
 * differential fuzz target (tests/fuzz/fuzz_json.c) covers the rest
 * against json_loadb. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/tq_json.h"

/* Parse len bytes and compare with the JSON `want` (read by jansson). */
static void expect_tree(const char *buf, size_t len, const char *want)
{
    char err[256] = "";
    json_t *got = tq_json_parse(buf, len, 32, err, sizeof(err));
    if (!got)
        fail_msg("'%.*s' rejected: %s", (int)len, buf, err);
    json_t *exp = json_loads(want, JSON_DECODE_ANY, NULL);
    assert_non_null(exp);
    char *g = json_dumps(got, JSON_ENCODE_ANY | JSON_COMPACT | JSON_SORT_KEYS);
    char *e = json_dumps(exp, JSON_ENCODE_ANY | JSON_COMPACT | JSON_SORT_KEYS);
    if (strcmp(g, e) != 0)
        fail_msg("'%.*s' read as %s, expected %s", (int)len, buf, g, e);
    free(g);
    free(e);
    json_decref(got);
    json_decref(exp);
}

static void accepts(const char *s, const char *want)
{
    expect_tree(s, strlen(s), want);
}

/* Rejected, with a reason containing `sub` that quotes none of the input
 * (every byte printable ASCII). */
static void rejects_n(const char *buf, size_t len, const char *sub)
{
    char err[256] = "";
    json_t *got = tq_json_parse(buf, len, 32, err, sizeof(err));
    if (got) {
        char *g = json_dumps(got, JSON_ENCODE_ANY);
        fail_msg("'%.*s' accepted as %s", (int)len, buf, g);
    }
    if (!strstr(err, sub))
        fail_msg("'%.*s': reason '%s' lacks '%s'", (int)len, buf, err, sub);
    for (const char *c = err; *c; c++)
        assert_true((unsigned char)*c >= 0x20 && (unsigned char)*c < 0x7f);
}

static void rejects(const char *s, const char *sub)
{
    rejects_n(s, strlen(s), sub);
}

static void test_json_values(void **state)
{
    (void)state;
    accepts("{\"v\":1,\"id\":\"a\",\"args\":[1,-2.5e3,true,false,null],\"kwargs\":{\"k\":{}}}",
            "{\"v\":1,\"id\":\"a\",\"args\":[1,-2500.0,true,false,null],\"kwargs\":{\"k\":{}}}");
    accepts(" \t\r\n[[],{}] \n", "[[],{}]");
    accepts("[9223372036854775807,-9223372036854775808,-0,0.5,1e-400,1E2]",
            "[9223372036854775807,-9223372036854775808,0,0.5,0.0,100.0]");
    accepts("\"top-level string\"", "\"top-level string\"");
    accepts("7", "7");
    /* Integers stay integers, reals reals. */
    json_t *v = tq_json_parse("[1,1.0,1e2]", 11, 32, NULL, 0);
    assert_non_null(v);
    assert_true(json_is_integer(json_array_get(v, 0)));
    assert_true(json_is_real(json_array_get(v, 1)));
    assert_true(json_is_real(json_array_get(v, 2)));
    json_decref(v);
    /* No buffer for the reason: refused all the same. */
    assert_null(tq_json_parse("{\"a\":1,\"a\":2}", 13, 32, NULL, 0));
    assert_null(tq_json_parse("[1", 2, 32, NULL, 0));
}

static void test_json_strings(void **state)
{
    (void)state;
    accepts("[\"x\\u00e9\\ud83d\\ude00\\n\\\"\\/\\\\\"]",
            "[\"x\\u00e9\\ud83d\\ude00\\n\\\"/\\\\\"]");
    accepts("[\"caf\xc3\xa9\"]", "[\"caf\\u00e9\"]");
    /* An escaped backslash before "u" is not an escape. */
    accepts("[\"a\\\\ud800\"]", "[\"a\\\\ud800\"]");
    accepts("{\"\\u00e9\":1}", "{\"\\u00e9\":1}");
    /* A key with escapes, then a value with escapes: yajl decodes both into
     * one buffer (the fuzz target's first find, under ASan). */
    accepts("{\"k\\u00e9\":\"v\\u00e8\",\"\\u00e9\\u00e9\":[\"\\n\"]}",
            "{\"k\\u00e9\":\"v\\u00e8\",\"\\u00e9\\u00e9\":[\"\\n\"]}");
    char big[600];
    int n = snprintf(big, sizeof(big), "{\"%0300d\\u00e9\":\"x\\u00e8\",\"%0200d\":2}", 1, 2);
    json_t *v = tq_json_parse(big, (size_t)n, 32, NULL, 0);
    assert_non_null(v);
    assert_int_equal(json_object_size(v), 2);
    json_decref(v);
    rejects("[\"\\ud800\"]", "unpaired high surrogate");
    rejects("[\"\\ud800\\u0041\"]", "unpaired high surrogate");
    rejects("[\"\\udc00x\"]", "lone low surrogate");
    rejects("[\"a\\u0000b\"]", "\\u0000 is not allowed in a string");
    rejects("{\"\\u0000\":1}", "\\u0000 is not allowed in an object key");
    rejects("[\"\xc0\x80\"]", "invalid UTF-8 in a string");     /* overlong NUL */
    rejects("[\"\xed\xa0\x80\"]", "invalid UTF-8 in a string"); /* encoded surrogate */
    rejects("{\"\xff\":1}", "invalid UTF-8 in an object key");
    rejects("[\"tab\there\"]", "not valid JSON"); /* raw control character */
}

static void test_json_structure(void **state)
{
    (void)state;
    rejects("{\"a\":1,\"a\":2}", "duplicate object key");
    rejects("{\"o\":{\"b\":1,\"b\":1}}", "duplicate object key");
    rejects("[1] x", "not valid JSON");
    rejects("[1]\"", "end of file expected at byte 3"); /* a token yajl leaves open */
    rejects("[\"[\"]\"]", "end of file expected");
    rejects("[1][2]", "not valid JSON");
    rejects("/*c*/[1]", "not valid JSON");
    rejects("[1,]", "not valid JSON");
    rejects("{'v':1}", "not valid JSON");
    rejects("[1", "not valid JSON");
    rejects("", "not valid JSON");
    rejects("   ", "not valid JSON");
    rejects_n("[1\0]", 4, "not valid JSON");
    rejects("[1e309]", "not valid JSON");
    rejects("[1e309]", "real number overflow");
    rejects("[9223372036854775808]", "too big integer");
    rejects("[-9223372036854775809]", "too big negative integer");
    rejects("[NaN]", "not valid JSON");
}

/* Nesting is bounded as the parse goes, including with a larger bound than
 * the inline stack. */
static void test_json_depth(void **state)
{
    (void)state;
    char buf[300];
    char err[256];
    for (int depth = 1; depth <= 100; depth++) {
        memset(buf, '[', (size_t)depth);
        memset(buf + depth, ']', (size_t)depth);
        json_t *v = tq_json_parse(buf, (size_t)depth * 2, 70, err, sizeof(err));
        if (depth <= 70) {
            assert_non_null(v);
        } else {
            assert_null(v);
            assert_non_null(strstr(err, "nesting too deep"));
        }
        json_decref(v);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_values),
        cmocka_unit_test(test_json_strings),
        cmocka_unit_test(test_json_structure),
        cmocka_unit_test(test_json_depth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
