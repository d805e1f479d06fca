/* Unit tests for common/tq_jw: the text it writes is valid JSON that
 * jansson reads back to the same values (commas, nesting, escapes, invalid
 * UTF-8, integer extremes, millisecond formatting). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/tq_jw.h"

/* Parse w's text (it must be JSON) and hand the writer's buffer back. */
static json_t *parse(tq_jw *w, char **text)
{
    size_t len;
    *text = tq_jw_take(w, &len);
    assert_int_equal(strlen(*text), len);
    json_error_t e;
    json_t *v = json_loadb(*text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (!v)
        fail_msg("not JSON: %s (%s)", *text, e.text);
    return v;
}

static void test_jw_nested_document(void **state)
{
    (void)state;
    tq_jw w;
    tq_jw_init(&w);
    tq_jw_object(&w);
    tq_jw_key(&w, "a");
    tq_jw_int(&w, 1);
    tq_jw_key(&w, "list");
    tq_jw_array(&w);
    tq_jw_int(&w, 1);
    tq_jw_str(&w, "two");
    tq_jw_object(&w);
    tq_jw_end(&w);
    tq_jw_array(&w);
    tq_jw_end(&w);
    tq_jw_null(&w);
    tq_jw_end(&w);
    tq_jw_key(&w, "raw");
    tq_jw_raw(&w, "{\"x\":[true]}", 12);
    tq_jw_key(&w, "none");
    tq_jw_str(&w, NULL);
    tq_jw_end(&w);
    char *text;
    json_t *v = parse(&w, &text);
    assert_string_equal(text, "{\"a\":1,\"list\":[1,\"two\",{},[],null],\"raw\":{\"x\":[true]},"
                              "\"none\":null}");
    assert_true(json_is_true(json_array_get(json_object_get(json_object_get(v, "raw"), "x"), 0)));
    json_decref(v);
    free(text);
}

static void test_jw_string_escapes(void **state)
{
    (void)state;
    /* quotes, backslash, every control character, valid 2/3/4-byte UTF-8 */
    char in[64];
    size_t n = 0;
    const char *head = "q\"b\\s/\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
    memcpy(in, head, strlen(head));
    n = strlen(head);
    for (int c = 1; c < 0x20; c++)
        in[n++] = (char)c;
    in[n++] = 'z';
    tq_jw w;
    tq_jw_init(&w);
    tq_jw_strn(&w, in, n);
    char *text;
    json_t *v = parse(&w, &text);
    assert_true(json_is_string(v));
    assert_int_equal(json_string_length(v), n);
    assert_memory_equal(json_string_value(v), in, n);
    json_decref(v);
    free(text);
}

static void test_jw_invalid_utf8_replaced(void **state)
{
    (void)state;
    /* a lone continuation byte, a truncated sequence, an overlong '/', a
     * UTF-16 surrogate, a byte that never appears in UTF-8, and a NUL */
    const char in[] = "a\x80"
                      "b\xe2\x82"
                      "c\xc0\xaf"
                      "d\xed\xa0\x80"
                      "e\xff"
                      "f\0g";
    tq_jw w;
    tq_jw_init(&w);
    tq_jw_strn(&w, in, sizeof(in) - 1);
    char *text;
    json_t *v = parse(&w, &text);
    assert_true(json_is_string(v));
    const char *s = json_string_value(v);
    /* Every bad byte is one U+FFFD (EF BF BD); the NUL is kept, escaped. */
    assert_non_null(strstr(s, "a\xef\xbf\xbd"
                              "b"));
    assert_non_null(strstr(s, "e\xef\xbf\xbd"
                              "f"));
    assert_int_equal(json_string_length(v), strlen(s) + 2); /* NUL, 'g' */
    assert_non_null(strstr(text, "\\u0000g"));
    json_decref(v);
    free(text);
}

static void test_jw_numbers(void **state)
{
    (void)state;
    tq_jw w;
    tq_jw_init(&w);
    tq_jw_array(&w);
    tq_jw_int(&w, 0);
    tq_jw_int(&w, -7);
    tq_jw_int(&w, INT64_MAX);
    tq_jw_int(&w, INT64_MIN);
    tq_jw_ms(&w, 0.0);
    tq_jw_ms(&w, 12.5);
    tq_jw_ms(&w, 0.0424);
    tq_jw_ms(&w, 0.0425);
    tq_jw_ms(&w, 1234.0009);
    tq_jw_ms(&w, -3.0);
    tq_jw_end(&w);
    char *text;
    json_t *v = parse(&w, &text);
    assert_string_equal(text, "[0,-7,9223372036854775807,-9223372036854775808,0,12.5,0.042,"
                              "0.043,1234.001,0]");
    assert_int_equal(json_integer_value(json_array_get(v, 3)), INT64_MIN);
    json_decref(v);
    free(text);
}

static void test_jw_reset_reuses_buffer(void **state)
{
    (void)state;
    tq_jw w;
    tq_jw_init(&w);
    for (int i = 0; i < 3; i++) {
        tq_jw_reset(&w);
        tq_jw_object(&w);
        tq_jw_key(&w, "i");
        tq_jw_int(&w, i);
        tq_jw_end(&w);
        char want[32];
        snprintf(want, sizeof(want), "{\"i\":%d}", i);
        assert_string_equal(tq_jw_text(&w), want);
    }
    tq_jw_free(&w);
    assert_null(w.buf);
}

/* A jansson value of every kind, nested deeper than the writer's own
 * object/array stack, comes back equal (json_equal) from its text. */
static void test_jw_json_round_trip(void **state)
{
    (void)state;
    json_error_t e;
    const char *src = "{\"s\":\"caf\u00e9 \\\"q\\\" \\u0000 \\n\",\"i\":-9223372036854775808,"
                      "\"r\":[0.1,3.0,-0.0,1e300,2.5e-300,123456789.125],"
                      "\"b\":[true,false,null],\"o\":{},\"a\":[],"
                      "\"deep\":[[[[[[[[[[[[[[[[[[[[{\"x\":1}]]]]]]]]]]]]]]]]]]]]}";
    json_t *v = json_loads(src, JSON_ALLOW_NUL, &e);
    if (!v)
        fail_msg("test input: %s", e.text);
    tq_jw w;
    tq_jw_init(&w);
    tq_jw_json(&w, v);
    char *text;
    json_t *back = parse(&w, &text);
    if (!json_equal(v, back))
        fail_msg("round trip changed the value: %s", text);
    /* Key order is the object's own, as json_dumps keeps it. */
    assert_true(strncmp(text, "{\"s\":", 5) == 0);
    assert_non_null(strstr(text, "3.0,"));
    assert_non_null(strstr(text, "0.10000000000000001"));
    json_decref(back);
    free(text);
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jw_nested_document),       cmocka_unit_test(test_jw_string_escapes),
        cmocka_unit_test(test_jw_invalid_utf8_replaced), cmocka_unit_test(test_jw_numbers),
        cmocka_unit_test(test_jw_reset_reuses_buffer),   cmocka_unit_test(test_jw_json_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
