/* Unit tests for common/tq_url: redis:// and unix:// URLs, credentials,
 * percent-escapes, IPv6, defaults, every error, and password masking. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "common/tq_url.h"

static void parse_ok(const char *s, tq_url *u)
{
    char err[256] = "";
    if (tq_url_parse(s, u, err, sizeof(err)) != 0)
        fail_msg("'%s' refused: %s", s, err);
}

/* Expect a refusal whose reason contains `sub` and never the password. */
static void parse_fails(const char *s, const char *sub)
{
    char err[256] = "";
    tq_url u;
    if (tq_url_parse(s, &u, err, sizeof(err)) == 0)
        fail_msg("'%s' accepted", s ? s : "(null)");
    if (!strstr(err, sub))
        fail_msg("'%s': reason '%s' lacks '%s'", s ? s : "(null)", err, sub);
    assert_null(strstr(err, "hunter2"));
    /* The struct is left cleared: nothing to free, nothing dangling. */
    assert_null(u.host);
    assert_null(u.path);
    assert_null(u.user);
    assert_null(u.password);
}

static void test_url_redis_defaults(void **state)
{
    (void)state;
    tq_url u;
    parse_ok("redis://localhost", &u);
    assert_false(u.is_unix);
    assert_string_equal(u.host, "localhost");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 0);
    assert_null(u.user);
    assert_null(u.password);
    assert_null(u.path);
    tq_url_clear(&u);
    parse_ok("redis://redis-1.example.com/", &u);
    assert_string_equal(u.host, "redis-1.example.com");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 0);
    tq_url_clear(&u);
    tq_url_clear(&u); /* twice is harmless */
}

static void test_url_redis_port_db(void **state)
{
    (void)state;
    tq_url u;
    parse_ok("redis://127.0.0.1:6380/3", &u);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 3);
    tq_url_clear(&u);
    parse_ok("redis://h:1", &u);
    assert_int_equal(u.port, 1);
    tq_url_clear(&u);
    parse_ok("redis://h:65535/65535", &u);
    assert_int_equal(u.port, 65535);
    assert_int_equal(u.db, 65535);
    tq_url_clear(&u);
}

static void test_url_userinfo(void **state)
{
    (void)state;
    tq_url u;
    parse_ok("redis://alice:hunter2@h:7000/1", &u);
    assert_string_equal(u.user, "alice");
    assert_string_equal(u.password, "hunter2");
    assert_string_equal(u.host, "h");
    assert_int_equal(u.port, 7000);
    assert_int_equal(u.db, 1);
    tq_url_clear(&u);
    /* Password only (classic AUTH). */
    parse_ok("redis://:hunter2@h", &u);
    assert_null(u.user);
    assert_string_equal(u.password, "hunter2");
    tq_url_clear(&u);
    /* User only. */
    parse_ok("redis://bob@h", &u);
    assert_string_equal(u.user, "bob");
    assert_null(u.password);
    tq_url_clear(&u);
    /* Empty password is a password. */
    parse_ok("redis://bob:@h", &u);
    assert_string_equal(u.password, "");
    tq_url_clear(&u);
    /* An unescaped '@' in the password: the last '@' ends the userinfo. */
    parse_ok("redis://:p@ss@h:1", &u);
    assert_string_equal(u.password, "p@ss");
    assert_string_equal(u.host, "h");
    tq_url_clear(&u);
}

static void test_url_percent_escapes(void **state)
{
    (void)state;
    tq_url u;
    parse_ok("redis://us%65r:p%40ss%3Aw%2Fx%25@h", &u);
    assert_string_equal(u.user, "user");
    assert_string_equal(u.password, "p@ss:w/x%");
    tq_url_clear(&u);
    parse_ok("redis://:%41%4a%4A@h", &u);
    assert_string_equal(u.password, "AJJ");
    tq_url_clear(&u);
    parse_fails("redis://:bad%zz@h", "bad percent-escape in password");
    parse_fails("redis://:bad%4@h", "bad percent-escape in password");
    parse_fails("redis://:bad%@h", "bad percent-escape in password");
    parse_fails("redis://:nul%00x@h", "bad percent-escape in password");
    parse_fails("redis://u%g1:x@h", "bad percent-escape in user name");
}

static void test_url_ipv6(void **state)
{
    (void)state;
    tq_url u;
    parse_ok("redis://[::1]:7000/2", &u);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 7000);
    assert_int_equal(u.db, 2);
    tq_url_clear(&u);
    parse_ok("redis://[fe80::1:2]", &u);
    assert_string_equal(u.host, "fe80::1:2");
    assert_int_equal(u.port, 6379);
    tq_url_clear(&u);
    parse_fails("redis://[::1:7000", "unterminated [");
    parse_fails("redis://[]:7000", "missing host");
    parse_fails("redis://[::1]x", "unexpected text after host");
}

static void test_url_unix(void **state)
{
    (void)state;
    tq_url u;
    parse_ok("unix:///var/run/redis.sock", &u);
    assert_true(u.is_unix);
    assert_string_equal(u.path, "/var/run/redis.sock");
    assert_int_equal(u.db, 0);
    assert_null(u.host);
    tq_url_clear(&u);
    parse_ok("unix://:hunter2@/tmp/r%20s.sock?db=4", &u);
    assert_string_equal(u.path, "/tmp/r s.sock");
    assert_string_equal(u.password, "hunter2");
    assert_int_equal(u.db, 4);
    tq_url_clear(&u);
    parse_fails("unix://tmp/redis.sock", "absolute");
    parse_fails("unix://", "absolute");
    parse_fails("unix://?db=1", "absolute");
    parse_fails("unix:///tmp/s.sock?db=x", "bad query");
    parse_fails("unix:///tmp/s.sock?db=", "bad query");
    parse_fails("unix:///tmp/s.sock?db=65536", "bad query");
    parse_fails("unix:///tmp/s.sock?foo=1", "bad query");
    parse_fails("unix:///tmp/s%zz.sock", "bad percent-escape in socket path");
}

static void test_url_errors(void **state)
{
    (void)state;
    parse_fails(NULL, "empty");
    parse_fails("", "empty");
    parse_fails("http://h", "unsupported URL scheme");
    parse_fails("rediss://h", "unsupported URL scheme");
    parse_fails("localhost:6379", "unsupported URL scheme");
    parse_fails("redis://", "missing host");
    parse_fails("redis://:hunter2@", "missing host");
    parse_fails("redis://:6379", "missing host");
    parse_fails("redis://h:0", "bad port");
    parse_fails("redis://h:65536", "bad port");
    parse_fails("redis://h:99999999999999999999", "bad port");
    parse_fails("redis://h:abc", "bad port");
    parse_fails("redis://h:", "bad port");
    parse_fails("redis://h:-1", "bad port");
    parse_fails("redis://h:12x", "bad port");
    parse_fails("redis://:hunter2@h:0", "bad port");
    parse_fails("redis://h/abc", "bad database");
    parse_fails("redis://h/-1", "bad database");
    parse_fails("redis://h/65536", "bad database");
    parse_fails("redis://h/1/2", "bad database");
    parse_fails("redis://h:1/0x", "bad database");
    parse_fails("redis://h?db=1", "invalid character in host");
    parse_fails("redis://h o", "invalid character in host");
    parse_fails("redis://:hunter2@h!", "invalid character in host");
}

static void test_url_mask_hides_password(void **state)
{
    (void)state;
    tq_url u;
    char buf[256];
    parse_ok("redis://alice:hunter2@h:7000/1", &u);
    tq_url_mask(&u, buf, sizeof(buf));
    assert_string_equal(buf, "redis://alice:***@h:7000/1");
    tq_url_clear(&u);
    parse_ok("redis://:hunter2@h", &u);
    tq_url_mask(&u, buf, sizeof(buf));
    assert_string_equal(buf, "redis://:***@h:6379/0");
    tq_url_clear(&u);
    parse_ok("redis://h", &u);
    tq_url_mask(&u, buf, sizeof(buf));
    assert_string_equal(buf, "redis://h:6379/0");
    tq_url_clear(&u);
    parse_ok("redis://bob@h", &u);
    tq_url_mask(&u, buf, sizeof(buf));
    assert_string_equal(buf, "redis://bob@h:6379/0");
    tq_url_clear(&u);
    parse_ok("redis://:hunter2@[::1]:7/3", &u);
    tq_url_mask(&u, buf, sizeof(buf));
    assert_string_equal(buf, "redis://:***@[::1]:7/3");
    tq_url_clear(&u);
    parse_ok("unix://u:hunter2@/tmp/s.sock?db=2", &u);
    tq_url_mask(&u, buf, sizeof(buf));
    assert_string_equal(buf, "unix://u:***@/tmp/s.sock?db=2");
    tq_url_clear(&u);
    /* Truncation of the output never exposes the password either. */
    parse_ok("redis://:hunter2@h", &u);
    for (size_t n = 1; n < 32; n++) {
        char small[32];
        tq_url_mask(&u, small, n);
        assert_true(strlen(small) < n);
        assert_null(strstr(small, "hunter"));
    }
    tq_url_clear(&u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_redis_defaults), cmocka_unit_test(test_url_redis_port_db),
        cmocka_unit_test(test_url_userinfo),       cmocka_unit_test(test_url_percent_escapes),
        cmocka_unit_test(test_url_ipv6),           cmocka_unit_test(test_url_unix),
        cmocka_unit_test(test_url_errors),         cmocka_unit_test(test_url_mask_hides_password),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
