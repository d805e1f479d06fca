/* Unit tests for tq_sig: the spec parser, the JSON form clients read from
 * Redis, and binding calls (the check both ends run). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/tq_sig.h"

static tq_sig *parse_ok(const char *spec)
{
    char err[256] = "";
    tq_sig *s = tq_sig_parse(spec, err, sizeof(err));
    if (!s)
        print_error("spec '%s' rejected: %s\n", spec, err);
    assert_non_null(s);
    return s;
}

static void parse_err(const char *spec, const char *want)
{
    char err[256] = "";
    tq_sig *s = tq_sig_parse(spec, err, sizeof(err));
    if (s || !strstr(err, want))
        print_error("spec '%s': got '%s', want an error containing '%s'\n", spec, err, want);
    assert_null(s);
    assert_non_null(strstr(err, want));
}

/* Bind a call given as JSON text; returns the bound array as text or the error. */
static char *bind(const tq_sig *s, const char *args, const char *kwargs, int *rc)
{
    char err[256] = "";
    json_t *a = json_loads(args, 0, NULL), *k = kwargs ? json_loads(kwargs, 0, NULL) : NULL;
    json_t *bound = NULL;
    assert_non_null(a);
    *rc = tq_sig_bind(s, "t", a, k, &bound, err, sizeof(err));
    char *out = *rc == 0 ? json_dumps(bound, JSON_COMPACT) : strdup(err);
    json_decref(a);
    json_decref(k);
    json_decref(bound);
    return out;
}

static void expect_bound(const tq_sig *s, const char *args, const char *kwargs, const char *want)
{
    int rc;
    char *got = bind(s, args, kwargs, &rc);
    if (rc != 0 || strcmp(got, want) != 0)
        print_error("bind(%s, %s): got '%s', want '%s'\n", args, kwargs ? kwargs : "-", got, want);
    assert_int_equal(rc, 0);
    assert_string_equal(got, want);
    free(got);
}

static void expect_refused(const tq_sig *s, const char *args, const char *kwargs, const char *want)
{
    int rc;
    char *got = bind(s, args, kwargs, &rc);
    if (rc == 0 || !strstr(got, want))
        print_error("bind(%s, %s): got '%s', want an error containing '%s'\n", args,
                    kwargs ? kwargs : "-", got, want);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(got, want));
    free(got);
}

static void test_sig_parse_forms(void **state)
{
    (void)state;
    tq_sig *s = parse_ok("a:int, r:float[..1.5], t:array[..2], b:int[0..10]=3, "
                         "name:string[1..64]?, o:object?, n:null?, x:any?, f:bool=false");
    assert_int_equal(tq_sig_count(s), 9);
    char *txt = tq_sig_to_string(s);
    assert_string_equal(txt, "a:int, r:float[..1.5], t:array[..2], b:int[0..10]=3, "
                             "name:string[1..64]?, o:object?, n:null?, x:any?, f:bool=false");
    free(txt);
    tq_sig_free(s);
    s = parse_ok("");
    assert_int_equal(tq_sig_count(s), 0);
    tq_sig_free(s);
    s = parse_ok("  v : object = {\"k\": [1, 2]} , w:string=\"a,b\"");
    assert_int_equal(tq_sig_count(s), 2);
    tq_sig_free(s);
}

static void test_sig_parse_errors(void **state)
{
    (void)state;
    parse_err("1a:int", "expected a name");
    parse_err("a int", "expected ':'");
    parse_err("a:integer", "unknown type 'integer'");
    parse_err("a:int, a:float", "declared twice");
    parse_err("a:int=\"x\"", "must be int");
    parse_err("a:int[5..1]", "min above max");
    parse_err("a:string[1.5..2]", "whole numbers");
    parse_err("a:bool[0..1]", "takes no bounds");
    parse_err("a:int[0..", "[MIN..MAX]");
    parse_err("a:int=", "not a JSON literal");
    parse_err("a:int?, b:int", "cannot follow an optional");
    parse_err("a:int,", "trailing ','");
    parse_err("a:int b:int", "unexpected 'b'");
    parse_err("a:int[0..10]=11", "must be <= 10");
}

static void test_sig_bind_positional_keyword_default(void **state)
{
    (void)state;
    tq_sig *s = parse_ok("a:int, b:int=7, c:string?");
    expect_bound(s, "[1]", NULL, "[1,7,null]");
    expect_bound(s, "[1, 2, \"x\"]", NULL, "[1,2,\"x\"]");
    expect_bound(s, "[]", "{\"a\":5,\"c\":\"z\"}", "[5,7,\"z\"]");
    expect_refused(s, "[]", NULL, "t: missing required argument 'a' (int)");
    expect_refused(s, "[1, 2, \"x\", 4]", NULL, "takes at most 3 arguments, got 4");
    expect_refused(s, "[1]", "{\"a\":2}", "got multiple values for argument 'a'");
    expect_refused(s, "[1]", "{\"zz\":2}", "unexpected keyword argument 'zz'");
    tq_sig_free(s);
}

static void test_sig_bind_every_type(void **state)
{
    (void)state;
    static const struct {
        const char *type, *good, *bad, *badname;
    } cases[] = {
        {"int", "3", "3.5", "float 3.5"},        {"float", "3", "\"3\"", "string \"3\""},
        {"string", "\"s\"", "1", "int 1"},       {"bool", "true", "0", "int 0"},
        {"array", "[1]", "{}", "object of 0"},   {"object", "{}", "[]", "array of 0"},
        {"null", "null", "false", "bool false"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char spec[64], args[64], want[128];
        snprintf(spec, sizeof(spec), "v:%s", cases[i].type);
        tq_sig *s = parse_ok(spec);
        snprintf(args, sizeof(args), "[%s]", cases[i].good);
        expect_bound(s, args, NULL,
                     args[0] == '[' && strcmp(cases[i].good, "3") == 0 ? "[3]" : args);
        snprintf(args, sizeof(args), "[%s]", cases[i].bad);
        snprintf(want, sizeof(want), "t: argument 'v' must be %s, got %s", cases[i].type,
                 cases[i].badname);
        expect_refused(s, args, NULL, want);
        tq_sig_free(s);
    }
    tq_sig *s = parse_ok("v:any");
    expect_bound(s, "[{\"x\":[null]}]", NULL, "[{\"x\":[null]}]");
    tq_sig_free(s);
}

static void test_sig_bind_bounds(void **state)
{
    (void)state;
    tq_sig *s =
        parse_ok("n:int[-5..5], r:float[0..1]?, s:string[2..3]?, a:array[..2]?, o:object[1..]?");
    expect_bound(s, "[-5]", NULL, "[-5,null,null,null,null]");
    expect_refused(s, "[6]", NULL, "argument 'n' must be <= 5, got int 6");
    expect_refused(s, "[-6]", NULL, "argument 'n' must be >= -5, got int -6");
    expect_refused(s, "[0, 1.5]", NULL, "argument 'r' must be <= 1, got float 1.5");
    expect_refused(s, "[0]", "{\"s\":\"x\"}", "must have at least 2 characters, got 1");
    /* Lengths count characters, not bytes. */
    expect_bound(s, "[0]", "{\"s\":\"\\u00e9\\u00e9\\u00e9\"}",
                 "[0,null,\"\xc3\xa9\xc3\xa9\xc3\xa9\",null,null]");
    expect_refused(s, "[0]", "{\"a\":[1,2,3]}", "must have at most 2 elements, got 3");
    expect_refused(s, "[0]", "{\"o\":{}}", "must have at least 1 elements, got 0");
    tq_sig_free(s);
}

static void test_sig_json_round_trip(void **state)
{
    (void)state;
    const char *spec = "c:float[-1.25..], d:any, a:int[0..10]=3, b:string[..5]?";
    tq_sig *s = parse_ok(spec);
    json_t *j = tq_sig_to_json(s);
    char err[128];
    tq_sig *t = tq_sig_from_json(j, err, sizeof(err));
    assert_non_null(t);
    char *a = tq_sig_to_string(s), *b = tq_sig_to_string(t);
    assert_string_equal(a, b);
    free(a);
    free(b);
    json_decref(j);
    tq_sig_free(s);
    tq_sig_free(t);
    /* Malformed published forms are refused, not trusted. */
    const char *bad[] = {"{}",
                         "[1]",
                         "[{\"name\":\"a\"}]",
                         "[{\"name\":\"a\",\"type\":\"x\"}]",
                         "[{\"name\":\"a b\",\"type\":\"int\"}]",
                         "[{\"name\":\"a\",\"type\":\"int\",\"min\":\"0\"}]",
                         "[{\"name\":\"a\",\"type\":\"int\",\"default\":\"s\"}]"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *x = json_loads(bad[i], 0, NULL);
        assert_non_null(x);
        t = tq_sig_from_json(x, err, sizeof(err));
        assert_null(t);
        json_decref(x);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sig_parse_forms),
        cmocka_unit_test(test_sig_parse_errors),
        cmocka_unit_test(test_sig_bind_positional_keyword_default),
        cmocka_unit_test(test_sig_bind_every_type),
        cmocka_unit_test(test_sig_bind_bounds),
        cmocka_unit_test(test_sig_json_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
