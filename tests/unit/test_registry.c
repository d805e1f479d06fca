/* Unit tests for worker/tq_registry: registration (copies, duplicates,
 * invalid names), lookups, the retry_on policy, the built-in table, and
 * loading task libraries with dlopen (the example library, a missing file, a
 * library without the entry point, a library whose init fails).
 * TASKQ_TEST_BUILD names the build directory holding libexample_tasks.so
 * (default "build"). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/tq_util.h"
#include "tq_exec.h"
#include "tq_registry.h"

static void assert_has(const char *s, const char *sub)
{
    if (!s || !strstr(s, sub))
        fail_msg("'%s' does not contain '%s'", s ? s : "(null)", sub);
}

static int t_one(taskq_ctx *ctx, json_t *args, json_t *kwargs, json_t **result)
{
    (void)ctx;
    (void)args;
    (void)kwargs;
    *result = json_integer(1);
    return 0;
}

static int t_two(taskq_ctx *ctx, json_t *args, json_t *kwargs, json_t **result)
{
    (void)ctx;
    (void)args;
    (void)kwargs;
    *result = json_integer(2);
    return 0;
}

static int setup(void **state)
{
    *state = tq_registry_new();
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    tq_registry_free(*state);
    return 0;
}

static void example_path(char *buf, size_t len)
{
    const char *b = getenv("TASKQ_TEST_BUILD");
    snprintf(buf, len, "%s/libexample_tasks.so", b && *b ? b : "build");
}

static void test_registry_register_and_find(void **state)
{
    tq_registry *reg = *state;
    char doc[32] = "first task";
    char r0[16] = "IOError";
    const char *retry_on[] = {r0, "Timeout", NULL};
    taskq_task_opts opts;
    memset(&opts, 0, sizeof(opts));
    opts.doc = doc;
    opts.retry_on = retry_on;
    opts.soft_limit_ms = 1500;

    assert_int_equal(taskq_register(reg, "t.one", t_one, &opts), 0);
    assert_int_equal(taskq_register(reg, "t.two", t_two, NULL), 0);
    /* The registry keeps copies, not the caller's buffers. */
    strcpy(doc, "overwritten");
    strcpy(r0, "Other");

    assert_int_equal(tq_registry_count(reg), 2);
    const tq_task_def *d = tq_registry_find(reg, "t.one");
    assert_non_null(d);
    assert_string_equal(d->name, "t.one");
    assert_ptr_equal(d->fn, t_one);
    assert_string_equal(d->opts.doc, "first task");
    assert_int_equal(d->opts.soft_limit_ms, 1500);
    assert_int_equal(d->opts.max_retries, -1); /* not set: worker default */
    assert_string_equal(d->opts.retry_on[0], "IOError");
    assert_string_equal(d->opts.retry_on[1], "Timeout");
    assert_null(d->opts.retry_on[2]);
    assert_true(tq_registry_retries_type(d, "IOError"));
    assert_true(tq_registry_retries_type(d, "Timeout"));
    assert_false(tq_registry_retries_type(d, "Other"));
    assert_false(tq_registry_retries_type(d, "ValueError"));

    const tq_task_def *d2 = tq_registry_find(reg, "t.two");
    assert_non_null(d2);
    assert_ptr_equal(d2->fn, t_two);
    assert_null(d2->opts.doc);
    assert_null(d2->opts.retry_on);
    /* No retry_on list: every error type is retried. */
    assert_true(tq_registry_retries_type(d2, "Anything"));

    assert_ptr_equal(tq_registry_at(reg, 0), d);
    assert_ptr_equal(tq_registry_at(reg, 1), d2);
    assert_null(tq_registry_at(reg, 2));
    assert_null(tq_registry_find(reg, "t.three"));
    assert_null(tq_registry_find(reg, "t.on"));
    assert_null(tq_registry_find(reg, ""));
}

static void test_registry_register_duplicate(void **state)
{
    tq_registry *reg = *state;
    assert_int_equal(taskq_register(reg, "dup", t_one, NULL), 0);
    assert_int_equal(taskq_register(reg, "dup", t_two, NULL), -1);
    assert_int_equal(tq_registry_count(reg), 1);
    /* The first registration stays in force. */
    assert_ptr_equal(tq_registry_find(reg, "dup")->fn, t_one);
}

static void test_registry_register_invalid(void **state)
{
    tq_registry *reg = *state;
    char longname[TQ_TASK_MAX + 2];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';

    assert_int_equal(taskq_register(reg, "", t_one, NULL), -1);
    assert_int_equal(taskq_register(reg, NULL, t_one, NULL), -1);
    assert_int_equal(taskq_register(reg, "has space", t_one, NULL), -1);
    assert_int_equal(taskq_register(reg, "tab\tname", t_one, NULL), -1);
    assert_int_equal(taskq_register(reg, "caf\xc3\xa9", t_one, NULL), -1);
    assert_int_equal(taskq_register(reg, longname, t_one, NULL), -1);
    assert_int_equal(taskq_register(reg, "nofn", NULL, NULL), -1);
    assert_int_equal(taskq_register(NULL, "x", t_one, NULL), -1);
    assert_int_equal(tq_registry_count(reg), 0);
    longname[TQ_TASK_MAX] = '\0'; /* exactly the maximum is fine */
    assert_int_equal(taskq_register(reg, longname, t_one, NULL), 0);
}

static void test_registry_builtins(void **state)
{
    tq_registry *reg = *state;
    static const char *const names[] = {"echo", "add",      "sleep", "fail", "crash",
                                        "noop", "progress", "hang",  "mul"};
    tq_builtin_register(reg);
    assert_int_equal(tq_registry_count(reg), sizeof(names) / sizeof(names[0]));
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const tq_task_def *d = tq_registry_find(reg, names[i]);
        assert_non_null(d);
        assert_non_null(d->opts.doc);
        assert_true(strlen(d->opts.doc) > 0);
        assert_null(strchr(d->opts.doc, '\n'));
    }
    /* Typed built-ins carry a parsed signature. */
    assert_non_null(tq_registry_find(reg, "mul")->sig);
    assert_non_null(tq_registry_find(reg, "sleep")->sig);
    assert_null(tq_registry_find(reg, "add")->sig);
}

/* Load the example library and run one of its tasks through tq_exec: the
 * library calls back into taskq_* functions exported by this binary. */
static void test_registry_load_example(void **state)
{
    tq_registry *reg = *state;
    char path[512], err[512] = "";
    example_path(path, sizeof(path));

    int rc = tq_registry_load(reg, path, err, sizeof(err));
    if (rc != 0)
        fail_msg("load %s: %s", path, err);
    const tq_task_def *rev = tq_registry_find(reg, "example.reverse");
    const tq_task_def *wc = tq_registry_find(reg, "example.word_count");
    assert_non_null(rev);
    assert_non_null(wc);
    assert_string_equal(rev->opts.doc, "reverse a string");
    assert_true(tq_registry_retries_type(rev, "MemoryError"));
    assert_false(tq_registry_retries_type(rev, "TypeError"));
    assert_int_equal(wc->opts.has_max_retries, 1);
    assert_int_equal(wc->opts.max_retries, 0);

    tq_msg_limits lim;
    tq_msg_limits_default(&lim);
    tq_exec_env env = {reg, &lim, NULL, NULL, NULL, 0};
    tq_msg *m = tq_msg_new("r1", "example.reverse", "default");
    tq_msg_set_args(m, json_pack("[s]", "h\xc3\xa9llo"));
    size_t len;
    char *raw = tq_msg_encode(m, &len);
    tq_outcome o;
    tq_exec_run(&env, raw, len, &o);
    assert_int_equal(o.status, TQ_OUT_SUCCESS);
    assert_string_equal(o.result, "\"oll\xc3\xa9h\"");
    tq_outcome_clear(&o);
    free(raw);

    tq_msg_set_args(m, json_pack("[i]", 5));
    raw = tq_msg_encode(m, &len);
    tq_exec_run(&env, raw, len, &o);
    assert_int_equal(o.status, TQ_OUT_FAILURE);
    assert_string_equal(o.err_type, "TypeError");
    tq_outcome_clear(&o);
    free(raw);
    tq_msg_free(m);

    /* Loading it again registers the same names: refused, with the reason. */
    rc = tq_registry_load(reg, path, err, sizeof(err));
    assert_int_equal(rc, -1);
    assert_has(err, "taskq_tasks_init returned 1");
    assert_has(err, "duplicate task name 'example.reverse'");
    assert_int_equal(tq_registry_count(reg), 2);
}

static void test_registry_load_bad_path(void **state)
{
    tq_registry *reg = *state;
    char err[512] = "";
    assert_int_equal(tq_registry_load(reg, "/nonexistent/libnope.so", err, sizeof(err)), -1);
    assert_has(err, "/nonexistent/libnope.so"); /* dlerror names the file */
    assert_has(err, "cannot load task library");
    err[0] = '\0';
    assert_int_equal(tq_registry_load(reg, "", err, sizeof(err)), -1);
    assert_true(err[0] != '\0');
    assert_int_equal(tq_registry_count(reg), 0);
}

static void test_registry_load_no_entry_point(void **state)
{
    tq_registry *reg = *state;
    char err[512] = "";
    /* A real shared library without taskq_tasks_init. */
    assert_int_equal(tq_registry_load(reg, "libm.so.6", err, sizeof(err)), -1);
    assert_string_equal(err, "no taskq_tasks_init in libm.so.6");
    assert_int_equal(tq_registry_count(reg), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_registry_register_and_find, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_register_duplicate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_register_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_builtins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_load_example, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_load_bad_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_load_no_entry_point, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
