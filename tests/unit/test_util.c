/* Unit tests for common/tq_util: random ids, name validators, duration,
 * integer and ISO 8601 parsing, and UTF-8 validation. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/tq_util.h"

#define T_2026_11_25_10 1795600800000LL /* 2026-11-25T10:00:00Z */

static int cmp_ids(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

static void test_util_random_id_format_and_distinct(void **state)
{
    (void)state;
    enum { N = 2000 };
    char(*ids)[33] = malloc(sizeof(*ids) * N);
    assert_non_null(ids);
    for (int i = 0; i < N; i++) {
        memset(ids[i], 'Z', sizeof(ids[i]));
        tq_random_id(ids[i]);
        assert_int_equal(strlen(ids[i]), 32);
        assert_int_equal(strspn(ids[i], "0123456789abcdef"), 32);
        assert_true(tq_valid_id(ids[i]));
    }
    qsort(ids, N, sizeof(*ids), cmp_ids);
    for (int i = 1; i < N; i++)
        assert_string_not_equal(ids[i - 1], ids[i]);
    free(ids);
    /* Every hex digit shows up somewhere (not a constant or a counter). */
    char a[33], seen[16] = {0};
    for (int i = 0; i < 50; i++) {
        tq_random_id(a);
        for (int k = 0; k < 32; k++)
            seen[strchr("0123456789abcdef", a[k]) - "0123456789abcdef"] = 1;
    }
    for (int k = 0; k < 16; k++)
        assert_true(seen[k]);
    char h[9];
    tq_random_hex(h, 4);
    assert_int_equal(strlen(h), 8);
    assert_int_equal(strspn(h, "0123456789abcdef"), 8);
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static void test_util_validators(void **state)
{
    (void)state;
    char *s64 = repeat('a', 64), *s65 = repeat('a', 65), *s128 = repeat('t', 128),
         *s129 = repeat('t', 129);
    /* ids: [0-9A-Za-z_-]{1,64} */
    assert_true(tq_valid_id("a"));
    assert_true(tq_valid_id("Az09_-"));
    assert_true(tq_valid_id(s64));
    assert_false(tq_valid_id(s65));
    assert_false(tq_valid_id(""));
    assert_false(tq_valid_id(NULL));
    assert_false(tq_valid_id("a.b"));
    assert_false(tq_valid_id("a b"));
    assert_false(tq_valid_id("a:b"));
    assert_false(tq_valid_id("{a}"));
    assert_false(tq_valid_id("caf\xc3\xa9"));
    /* queues: [0-9A-Za-z_.-]{1,64} */
    assert_true(tq_valid_queue("default"));
    assert_true(tq_valid_queue("a.b-c_D9"));
    assert_true(tq_valid_queue(s64));
    assert_false(tq_valid_queue(s65));
    assert_false(tq_valid_queue(""));
    assert_false(tq_valid_queue(NULL));
    assert_false(tq_valid_queue("{q}"));
    assert_false(tq_valid_queue("q:1"));
    assert_false(tq_valid_queue("q 1"));
    assert_false(tq_valid_queue("q/1"));
    /* task names: printable ASCII without spaces, 1..128 */
    assert_true(tq_valid_task_name("add"));
    assert_true(tq_valid_task_name("pkg.mod:func[1]{x}"));
    assert_true(tq_valid_task_name(s128));
    assert_false(tq_valid_task_name(s129));
    assert_false(tq_valid_task_name(""));
    assert_false(tq_valid_task_name(NULL));
    assert_false(tq_valid_task_name("a b"));
    assert_false(tq_valid_task_name("a\tb"));
    assert_false(tq_valid_task_name("a\x7f"));
    assert_false(tq_valid_task_name("caf\xc3\xa9"));
    free(s64);
    free(s65);
    free(s128);
    free(s129);
}

static void test_util_parse_seconds_ms(void **state)
{
    (void)state;
    assert_int_equal(tq_parse_seconds_ms("0"), 0);
    assert_int_equal(tq_parse_seconds_ms("1"), 1000);
    assert_int_equal(tq_parse_seconds_ms("1.5"), 1500);
    assert_int_equal(tq_parse_seconds_ms("0.001"), 1);
    assert_int_equal(tq_parse_seconds_ms("0.0004"), 0);
    assert_int_equal(tq_parse_seconds_ms("86400"), 86400000LL);
    assert_int_equal(tq_parse_seconds_ms("2.25"), 2250);
    assert_int_equal(tq_parse_seconds_ms(NULL), -1);
    assert_int_equal(tq_parse_seconds_ms(""), -1);
    assert_int_equal(tq_parse_seconds_ms("-1"), -1);
    assert_int_equal(tq_parse_seconds_ms("abc"), -1);
    assert_int_equal(tq_parse_seconds_ms("1s"), -1);
    assert_int_equal(tq_parse_seconds_ms("1.5x"), -1);
    assert_int_equal(tq_parse_seconds_ms("nan"), -1);
    assert_int_equal(tq_parse_seconds_ms("inf"), -1);
    assert_int_equal(tq_parse_seconds_ms("1e300"), -1);
}

static void test_util_parse_int(void **state)
{
    (void)state;
    long long v = 7;
    assert_int_equal(tq_parse_int("42", 0, 100, &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(tq_parse_int("0", 0, 100, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(tq_parse_int("100", 0, 100, &v), 0);
    assert_int_equal(v, 100);
    assert_int_equal(tq_parse_int("-5", -10, 10, &v), 0);
    assert_int_equal(v, -5);
    v = 7;
    assert_int_equal(tq_parse_int("101", 0, 100, &v), -1);
    assert_int_equal(tq_parse_int("-1", 0, 100, &v), -1);
    assert_int_equal(tq_parse_int("", 0, 100, &v), -1);
    assert_int_equal(tq_parse_int(NULL, 0, 100, &v), -1);
    assert_int_equal(tq_parse_int("12a", 0, 100, &v), -1);
    assert_int_equal(tq_parse_int("1.0", 0, 100, &v), -1);
    assert_int_equal(tq_parse_int("abc", 0, 100, &v), -1);
    assert_int_equal(tq_parse_int("99999999999999999999", 0, 0x7fffffffffffffffLL, &v), -1);
    assert_int_equal(v, 7); /* untouched on failure */
    assert_int_equal(tq_parse_int("9223372036854775807", 0, 0x7fffffffffffffffLL, &v), 0);
    assert_true(v == 0x7fffffffffffffffLL);
}

static void test_util_parse_iso8601(void **state)
{
    (void)state;
    assert_int_equal(tq_parse_iso8601_ms("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(tq_parse_iso8601_ms("2026-11-25T10:00:00Z"), T_2026_11_25_10);
    assert_int_equal(tq_parse_iso8601_ms("2000-02-29T23:59:59Z"), 951868799000LL);
    /* Fractions: milliseconds, shorter, longer (truncated). */
    assert_int_equal(tq_parse_iso8601_ms("2026-11-25T10:00:00.123Z"), T_2026_11_25_10 + 123);
    assert_int_equal(tq_parse_iso8601_ms("2026-11-25T10:00:00.5Z"), T_2026_11_25_10 + 500);
    assert_int_equal(tq_parse_iso8601_ms("2026-11-25T10:00:00.123456Z"), T_2026_11_25_10 + 123);
    /* Offsets: local time minus the offset is UTC. */
    assert_int_equal(tq_parse_iso8601_ms("2026-11-25T11:00:00+01:00"), T_2026_11_25_10);
    assert_int_equal(tq_parse_iso8601_ms("2026-11-25T07:30:00-02:30"), T_2026_11_25_10);
    assert_int_equal(tq_parse_iso8601_ms("2026-11-25T07:30:00-0230"), T_2026_11_25_10);
    assert_int_equal(tq_parse_iso8601_ms("2026-11-25T12:00:00+02"), T_2026_11_25_10);
    assert_int_equal(tq_parse_iso8601_ms("2026-11-25T10:00:00.250+00:00"), T_2026_11_25_10 + 250);
    /* Date only, space separator, minutes only. */
    assert_int_equal(tq_parse_iso8601_ms("2026-11-25"), T_2026_11_25_10 - 10 * 3600000LL);
    assert_int_equal(tq_parse_iso8601_ms("2026-11-25 10:00:00Z"), T_2026_11_25_10);
    assert_int_equal(tq_parse_iso8601_ms("2026-11-25T10:00Z"), T_2026_11_25_10);
    /* Invalid. */
    const char *bad[] = {"",
                         "2026",
                         "2026-11",
                         "2026-1-25T10:00:00Z",
                         "26-11-25T10:00:00Z",
                         "2026-13-01T00:00:00Z",
                         "2026-00-01T00:00:00Z",
                         "2026-11-32T00:00:00Z",
                         "2026-11-00T00:00:00Z",
                         "2026-11-25T24:00:00Z",
                         "2026-11-25T10:60:00Z",
                         "2026-11-25T10:00:61Z",
                         "2026-11-25T10:00:00.Z",
                         "2026-11-25T10:00:00X",
                         "2026-11-25T10:00:00Z ",
                         "2026-11-25T10:00:00Zjunk",
                         "2026-11-25T10:00:00+1",
                         "2026-11-25T10",
                         "2026/11/25T10:00:00Z",
                         "abcd-ef-ghTij:kl:mnZ"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (tq_parse_iso8601_ms(bad[i]) != -1)
            fail_msg("'%s' accepted", bad[i]);
    }
    assert_int_equal(tq_parse_iso8601_ms(NULL), -1);
}

static void test_util_format_iso8601_roundtrip(void **state)
{
    (void)state;
    char buf[32];
    tq_format_iso8601(T_2026_11_25_10 + 7, buf, sizeof(buf));
    assert_string_equal(buf, "2026-11-25T10:00:00.007Z");
    int64_t samples[] = {0, 1, 999, T_2026_11_25_10, 951868799123LL, 4102444800000LL};
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        tq_format_iso8601(samples[i], buf, sizeof(buf));
        assert_int_equal(tq_parse_iso8601_ms(buf), samples[i]);
    }
}

static void test_util_utf8_valid(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t len;
        int ok;
    } cases[] = {
        {"", 0, 1},
        {"plain ascii", 11, 1},
        {"a\0b", 3, 1},                 /* NUL is valid UTF-8 */
        {"\xc3\xa9", 2, 1},             /* e acute */
        {"\xe2\x82\xac", 3, 1},         /* euro */
        {"\xf0\x9f\x98\x80", 4, 1},     /* emoji */
        {"\xf4\x8f\xbf\xbf", 4, 1},     /* U+10FFFF */
        {"\xed\x9f\xbf", 3, 1},         /* U+D7FF, just below the surrogates */
        {"\xee\x80\x80", 3, 1},         /* U+E000, just above */
        {"\xc0\xaf", 2, 0},             /* overlong '/' */
        {"\xc1\xbf", 2, 0},             /* overlong */
        {"\xe0\x80\xaf", 3, 0},         /* overlong, 3 bytes */
        {"\xe0\x9f\xbf", 3, 0},         /* overlong U+07FF */
        {"\xf0\x80\x80\xaf", 4, 0},     /* overlong, 4 bytes */
        {"\xf0\x8f\xbf\xbf", 4, 0},     /* overlong U+FFFF */
        {"\xed\xa0\x80", 3, 0},         /* surrogate U+D800 */
        {"\xed\xbf\xbf", 3, 0},         /* surrogate U+DFFF */
        {"\xf4\x90\x80\x80", 4, 0},     /* U+110000 */
        {"\xf5\x80\x80\x80", 4, 0},     /* lead byte past U+10FFFF */
        {"\xf8\x88\x80\x80\x80", 5, 0}, /* 5-byte form */
        {"\x80", 1, 0},                 /* lone continuation */
        {"a\xbf", 2, 0},                /* lone continuation */
        {"\xc3", 1, 0},                 /* truncated 2-byte */
        {"\xe2\x82", 2, 0},             /* truncated 3-byte */
        {"\xf0\x9f\x98", 3, 0},         /* truncated 4-byte */
        {"\xc3\x28", 2, 0},             /* bad continuation */
        {"\xe2\x28\xa1", 3, 0},         /* bad continuation */
        {"\xff", 1, 0},
        {"\xfe", 1, 0},
        {"ok\xc3\xa9ok\xc3", 7, 0}, /* valid, then truncated at the end */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (tq_utf8_valid(cases[i].s, cases[i].len) != cases[i].ok)
            fail_msg("case %zu: expected %d", i, cases[i].ok);
    }
    /* The length bounds the scan: a valid sequence cut by len is invalid. */
    assert_false(tq_utf8_valid("\xc3\xa9", 1));
    assert_true(tq_utf8_valid("ab\xc3\xa9", 2));
}

static void test_util_clocks_and_alloc(void **state)
{
    (void)state;
    int64_t now = tq_now_ms();
    int64_t t = (int64_t)time(NULL) * 1000;
    assert_true(now >= t - 2000 && now <= t + 2000);
    int64_t m1 = tq_mono_us(), m2 = tq_mono_us();
    assert_true(m2 >= m1);
    assert_true(tq_mono_ms() >= m1 / 1000);
    char *s = tq_xasprintf("%s-%d", "x", 42);
    assert_string_equal(s, "x-42");
    free(s);
    s = tq_xstrndup("abcdef", 3);
    assert_string_equal(s, "abc");
    free(s);
    s = tq_xstrdup("");
    assert_string_equal(s, "");
    free(s);
    void *p = tq_xcalloc(0, 0);
    assert_non_null(p);
    p = tq_xrealloc(p, 0);
    assert_non_null(p);
    free(p);
}

static void test_util_random_ids_and_fmt_ll(void **state)
{
    (void)state;
    char ids[300][40];
    memset(ids, 'x', sizeof(ids));
    tq_random_ids(ids[0], sizeof(ids[0]), 300);
    for (int i = 0; i < 300; i++) {
        assert_int_equal(strlen(ids[i]), 32);
        assert_true(tq_valid_id(ids[i]));
        assert_int_equal(strspn(ids[i], "0123456789abcdef"), 32);
        assert_int_equal(ids[i][33], 'x'); /* nothing written past the id */
        if (i > 0)
            assert_string_not_equal(ids[i], ids[i - 1]);
    }
    assert_string_not_equal(ids[0], ids[299]);
    const long long v[] = {0, 7, -7, 10, 1234567890123LL, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        char a[32], b[32];
        size_t n = tq_fmt_ll(a, v[i]);
        snprintf(b, sizeof(b), "%lld", v[i]);
        assert_string_equal(a, b);
        assert_int_equal(n, strlen(b));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_util_random_id_format_and_distinct),
        cmocka_unit_test(test_util_validators),
        cmocka_unit_test(test_util_parse_seconds_ms),
        cmocka_unit_test(test_util_parse_int),
        cmocka_unit_test(test_util_parse_iso8601),
        cmocka_unit_test(test_util_format_iso8601_roundtrip),
        cmocka_unit_test(test_util_utf8_valid),
        cmocka_unit_test(test_util_clocks_and_alloc),
        cmocka_unit_test(test_util_random_ids_and_fmt_ll),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
