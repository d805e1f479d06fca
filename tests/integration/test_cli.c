/* Integration tests for taskq-submit, run as a user runs it: a real process
 * with its own stdin, stdout and stderr, against a private redis-server and
 * a real taskq-worker (tests/harness.c).
 *
 * One redis-server serves the file; each test has its own key prefix and
 * starts its own worker on it, so queues and dead letters never mix. The
 * CLI gets the server and prefix from TASKQ_REDIS_URL and TASKQ_PREFIX, as
 * a user's shell would give them, unless a test passes --redis itself.
 * Results are checked through the CLI where that is the behaviour under
 * test, and through libtaskq where many ids must be verified quickly. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "taskq.h"
#include "taskq_fx.h"

extern char **environ;

#define RUN_MS 15000 /* any CLI run must end within this */
#define STOP_MS 10000

typedef struct tc {
    char prefix[64];
    char env_url[128];
    char env_prefix[96];
    taskq_client *c; /* to verify many results at once */
    tf_worker worker;
} tc;

/* ---- running taskq-submit ------------------------------------------------ */

typedef struct cli_run {
    int status;   /* exit status; 128+N when killed by signal N */
    char *out;    /* stdout (malloc'd) */
    char *err;    /* stderr (malloc'd) */
    long long ms; /* wall time */
} cli_run;

static void cli_run_free(cli_run *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

typedef struct reap {
    pid_t pid;
    int status;
    int done;
} reap;

static int reap_cond(void *arg)
{
    reap *r = arg;
    pid_t got = waitpid(r->pid, &r->status, WNOHANG);
    if (got == r->pid)
        r->done = 1;
    return r->done;
}

/* The environment for a child: ours minus TASKQ_REDIS_URL/TASKQ_PREFIX,
 * plus `add` (NULL-terminated, may be NULL). Free the array only. */
static char **child_env(const char *const *add)
{
    size_t n = 0, k = 0;
    while (environ[n])
        n++;
    while (add && add[k])
        k++;
    char **env = calloc(n + k + 1, sizeof(*env));
    assert_non_null(env);
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(environ[i], "TASKQ_REDIS_URL=", 16) == 0 ||
            strncmp(environ[i], "TASKQ_PREFIX=", 13) == 0)
            continue;
        env[j++] = environ[i];
    }
    for (size_t i = 0; i < k; i++)
        env[j++] = (char *)(uintptr_t)add[i];
    env[j] = NULL;
    return env;
}

/* Run taskq-submit with `args` (NULL-terminated), stdin from `in_path`
 * (NULL: /dev/null) and extra environment `env`. Fails the test if it does
 * not end within RUN_MS. */
static cli_run run_cli(const char *const *args, const char *in_path, const char *const *env)
{
    static int seq;
    cli_run r = {0};
    char out_path[TH_PATH_MAX], err_path[TH_PATH_MAX];
    seq++;
    snprintf(out_path, sizeof(out_path), "%s/cli-%d.out", th_tmpdir(), seq);
    snprintf(err_path, sizeof(err_path), "%s/cli-%d.err", th_tmpdir(), seq);

    const char *argv[64];
    int n = 0;
    char *bin = th_bin("taskq-submit");
    argv[n++] = bin;
    for (; *args && n < 63; args++)
        argv[n++] = *args;
    argv[n] = NULL;

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, in_path ? in_path : "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    char **envp = child_env(env);
    long long t0 = th_mono_ms();
    pid_t pid;
    int rc = posix_spawn(&pid, bin, &fa, NULL, (char *const *)(uintptr_t)argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    free(envp);
    free(bin);
    if (rc != 0)
        fail_msg("posix_spawn taskq-submit: %s", strerror(rc));

    reap w = {pid, 0, 0};
    if (!th_wait_until(reap_cond, &w, RUN_MS)) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        fail_msg("taskq-submit %s still running after %d ms", argv[1] ? argv[1] : "", RUN_MS);
    }
    r.ms = th_mono_ms() - t0;
    r.status = WIFEXITED(w.status) ? WEXITSTATUS(w.status) : 128 + WTERMSIG(w.status);
    r.out = th_read_file(out_path, NULL);
    r.err = th_read_file(err_path, NULL);
    assert_non_null(r.out);
    assert_non_null(r.err);
    return r;
}

/* Run against x's server and prefix (through the environment). */
static cli_run run_x(tc *x, const char *const *args, const char *in_path)
{
    const char *env[] = {x->env_url, x->env_prefix, NULL};
    return run_cli(args, in_path, env);
}

static void expect_status(const cli_run *r, int want)
{
    if (r->status != want)
        fail_msg("taskq-submit exit status %d, want %d\n--- stdout:\n%s--- stderr:\n%s", r->status,
                 want, r->out, r->err);
}

/* The one id a submission printed, copied into id. */
static void one_id(const cli_run *r, char id[TASKQ_ID_SIZE])
{
    size_t n = strcspn(r->out, "\n");
    if (n != 32 || r->out[n] != '\n' || r->out[n + 1] != '\0')
        fail_msg("expected one 32-character id line, got '%s'", r->out);
    memcpy(id, r->out, n);
    id[n] = '\0';
}

static json_t *parse_json(const char *s)
{
    json_error_t e;
    json_t *o = json_loads(s, 0, &e);
    if (!o)
        fail_msg("not JSON (%s): '%s'", e.text, s);
    return o;
}

/* ---- fixtures ----------------------------------------------------------- */

/* Every test: its own prefix and a worker on it (queues default,other). */
static int setup(void **state)
{
    const char *url = tf_group()->srv->url;
    tc *x = calloc(1, sizeof(*x));
    assert_non_null(x);
    x->c = tf_client_prefixed(url, "cli", x->prefix);
    snprintf(x->env_url, sizeof(x->env_url), "TASKQ_REDIS_URL=%s", url);
    snprintf(x->env_prefix, sizeof(x->env_prefix), "TASKQ_PREFIX=%s", x->prefix);
    const char *argv[] = {"--prefix", x->prefix,  "--concurrency", "2", "--retry-backoff",
                          "0.05",     "--queues", "default,other", NULL};
    /* A worker that does not start fails the setup (th_cleanup stops it). */
    tf_worker_start(&x->worker, url, argv, NULL, 1);
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    tc *x = *state;
    int st = tf_worker_stop(&x->worker, STOP_MS);
    int clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    if (!clean)
        th_dump_file("worker log", x->worker.log);
    taskq_client_free(x->c);
    free(x);
    return clean ? 0 : -1;
}

/* ---- submit and wait ---------------------------------------------------- */

static void test_cli_add_wait_prints_result(void **state)
{
    tc *x = *state;
    const char *a[] = {"add", "2", "3", "--wait", "--timeout", "10", NULL};
    cli_run r = run_x(x, a, NULL);
    expect_status(&r, 0);
    assert_string_equal(r.out, "5\n");
    cli_run_free(&r);

    /* JSON arguments of every kind, and keyword arguments. */
    const char *b[] = {"echo",   "{\"a\":[1,2]}", "\"text\"", "--kw", "n=null",
                       "--wait", "--timeout",     "10",       NULL};
    r = run_x(x, b, NULL);
    expect_status(&r, 0);
    json_t *got = parse_json(r.out);
    json_t *want = parse_json("{\"args\":[{\"a\":[1,2]},\"text\"],\"kwargs\":{\"n\":null}}");
    assert_true(json_equal(got, want));
    json_decref(got);
    json_decref(want);
    cli_run_free(&r);
}

static void test_cli_json_output(void **state)
{
    tc *x = *state;
    const char *a[] = {"add", "2", "3", "--wait", "--timeout", "10", "--json", NULL};
    cli_run r = run_x(x, a, NULL);
    expect_status(&r, 0);
    json_t *o = parse_json(r.out);
    assert_int_equal(strlen(json_string_value(json_object_get(o, "id"))), 32);
    assert_string_equal(json_string_value(json_object_get(o, "state")), "SUCCESS");
    assert_int_equal(json_integer_value(json_object_get(o, "result")), 5);
    assert_true(json_is_integer(json_object_get(o, "result")));
    json_decref(o);
    cli_run_free(&r);

    /* Without --wait: the id and the state at submission. */
    const char *b[] = {"add", "1", "--countdown", "30", "--json", NULL};
    r = run_x(x, b, NULL);
    expect_status(&r, 0);
    o = parse_json(r.out);
    assert_int_equal(strlen(json_string_value(json_object_get(o, "id"))), 32);
    assert_string_equal(json_string_value(json_object_get(o, "state")), "PENDING");
    json_decref(o);
    cli_run_free(&r);
}

static void test_cli_failing_task_exits_1(void **state)
{
    tc *x = *state;
    const char *a[] = {"fail", "\"it broke\"", "--retries", "1", "--wait", "--timeout", "10", NULL};
    cli_run r = run_x(x, a, NULL);
    expect_status(&r, 1);
    assert_non_null(strstr(r.err, "TaskError"));
    assert_non_null(strstr(r.err, "it broke"));
    cli_run_free(&r);

    const char *b[] = {"fail", "\"json too\"", "--wait", "--timeout", "10", "--json", NULL};
    r = run_x(x, b, NULL);
    expect_status(&r, 1);
    json_t *o = parse_json(r.out);
    assert_string_equal(json_string_value(json_object_get(o, "state")), "FAILURE");
    json_t *e = json_object_get(o, "error");
    assert_string_equal(json_string_value(json_object_get(e, "type")), "TaskError");
    assert_string_equal(json_string_value(json_object_get(e, "message")), "json too");
    json_decref(o);
    cli_run_free(&r);
}

static void test_cli_wait_timeout_exits_2(void **state)
{
    tc *x = *state;
    const char *a[] = {"sleep", "5", "--wait", "--timeout", "0.5", NULL};
    cli_run r = run_x(x, a, NULL);
    expect_status(&r, 2);
    if (r.ms < 450 || r.ms > 1200)
        fail_msg("--timeout 0.5 returned after %lld ms", r.ms);
    assert_non_null(strstr(r.err, "timed out"));
    cli_run_free(&r);
}

static void test_cli_result_json(void **state)
{
    tc *x = *state;
    const char *a[] = {"add", "20", "22", NULL};
    cli_run r = run_x(x, a, NULL);
    expect_status(&r, 0);
    char id[TASKQ_ID_SIZE];
    one_id(&r, id);
    cli_run_free(&r);

    const char *b[] = {"result", id, "--wait", "--timeout", "10", "--json", NULL};
    r = run_x(x, b, NULL);
    expect_status(&r, 0);
    json_t *o = parse_json(r.out);
    assert_string_equal(json_string_value(json_object_get(o, "id")), id);
    assert_string_equal(json_string_value(json_object_get(o, "state")), "SUCCESS");
    assert_int_equal(json_integer_value(json_object_get(o, "result")), 42);
    assert_string_equal(json_string_value(json_object_get(o, "task")), "add");
    json_decref(o);
    cli_run_free(&r);

    /* Plain: the result value. */
    const char *c[] = {"result", id, NULL};
    r = run_x(x, c, NULL);
    expect_status(&r, 0);
    assert_string_equal(r.out, "42\n");
    cli_run_free(&r);

    /* Unknown id: exit 3, and it says so. */
    const char *d[] = {"result", "nosuchid", "--json", NULL};
    r = run_x(x, d, NULL);
    expect_status(&r, 3);
    assert_non_null(strstr(r.err, "nosuchid"));
    cli_run_free(&r);
}

static void test_cli_cancel(void **state)
{
    tc *x = *state;
    const char *a[] = {"echo", "\"never\"", "--countdown", "60", NULL};
    cli_run r = run_x(x, a, NULL);
    expect_status(&r, 0);
    char id[TASKQ_ID_SIZE];
    one_id(&r, id);
    cli_run_free(&r);

    const char *b[] = {"cancel", id, NULL};
    r = run_x(x, b, NULL);
    expect_status(&r, 0);
    assert_non_null(strstr(r.out, id));
    cli_run_free(&r);

    const char *c[] = {"result", id, "--json", NULL};
    r = run_x(x, c, NULL);
    expect_status(&r, 1); /* revoked: not a success */
    json_t *o = parse_json(r.out);
    assert_string_equal(json_string_value(json_object_get(o, "state")), "REVOKED");
    assert_string_equal(json_string_value(json_object_get(json_object_get(o, "error"), "type")),
                        "Revoked");
    json_decref(o);
    cli_run_free(&r);

    /* Again: not cancellable any more (65); unknown id: 3. */
    r = run_x(x, b, NULL);
    expect_status(&r, 65);
    assert_true(strlen(r.err) > 0);
    cli_run_free(&r);
    const char *d[] = {"cancel", "unknown-id", NULL};
    r = run_x(x, d, NULL);
    expect_status(&r, 3);
    assert_non_null(strstr(r.err, "unknown-id"));
    cli_run_free(&r);

    /* A running task cannot be cancelled. */
    const char *e[] = {"sleep", "0.8", NULL};
    r = run_x(x, e, NULL);
    expect_status(&r, 0);
    one_id(&r, id);
    cli_run_free(&r);
    if (!tf_wait_state(x->c, NULL, id, TASKQ_STARTED, 5000))
        fail_msg("task %s did not start", id);
    const char *f[] = {"cancel", id, NULL};
    r = run_x(x, f, NULL);
    expect_status(&r, 65);
    cli_run_free(&r);
}

/* ---- bulk --------------------------------------------------------------- */

/* Split stdout into lines; each must be a 32-character id. Returns count. */
static size_t split_ids(char *out, char ids[][TASKQ_ID_SIZE], size_t max)
{
    size_t n = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        if (strlen(line) != 32)
            fail_msg("not an id: '%s'", line);
        if (n == max)
            fail_msg("more than %zu ids", max);
        snprintf(ids[n++], TASKQ_ID_SIZE, "%s", line);
    }
    return n;
}

static void check_add_results(tc *x, char ids[][TASKQ_ID_SIZE], size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(ids[i], ids[j]);
        taskq_result *r = NULL;
        int rc = taskq_result_wait(x->c, NULL, ids[i], 10.0, &r);
        if (rc != 0)
            fail_msg("task %zu (%s): %d %s", i, ids[i], rc, taskq_client_errstr(x->c));
        char want[32];
        snprintf(want, sizeof(want), "%zu", 2 * i + 1);
        assert_int_equal(taskq_result_state(r), TASKQ_SUCCESS);
        assert_string_equal(taskq_result_value(r), want);
        taskq_result_free(r);
    }
}

/* A bulk file of n lines: add(i, i + 1). */
static void write_bulk(const char *path, size_t n)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "{\"task\":\"add\",\"args\":[%zu,%zu]}\n", i, i + 1);
    assert_int_equal(fclose(f), 0);
}

static void test_cli_bulk_file(void **state)
{
    tc *x = *state;
    char path[TH_PATH_MAX];
    snprintf(path, sizeof(path), "%s/bulk-%s.jsonl", th_tmpdir(), x->prefix);
    write_bulk(path, 100);
    const char *a[] = {"--bulk", path, NULL};
    cli_run r = run_x(x, a, NULL);
    expect_status(&r, 0);
    static char ids[100][TASKQ_ID_SIZE];
    assert_int_equal(split_ids(r.out, ids, 100), 100);
    cli_run_free(&r);
    check_add_results(x, ids, 100);
}

static void test_cli_bulk_stdin(void **state)
{
    tc *x = *state;
    char path[TH_PATH_MAX];
    snprintf(path, sizeof(path), "%s/stdin-%s.jsonl", th_tmpdir(), x->prefix);
    write_bulk(path, 20);
    const char *a[] = {"--bulk", "-", NULL};
    cli_run r = run_x(x, a, path);
    expect_status(&r, 0);
    static char ids[20][TASKQ_ID_SIZE];
    assert_int_equal(split_ids(r.out, ids, 20), 20);
    cli_run_free(&r);
    check_add_results(x, ids, 20);

    /* Command-line options are defaults for every line; a line's own field
     * wins. */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "{\"task\":\"echo\",\"args\":[1]}\n{\"task\":\"echo\",\"args\":[2],\"queue\":"
               "\"default\"}\n");
    assert_int_equal(fclose(f), 0);
    const char *b[] = {"--bulk", "-", "--queue", "other", NULL};
    r = run_x(x, b, path);
    expect_status(&r, 0);
    assert_int_equal(split_ids(r.out, ids, 20), 2);
    cli_run_free(&r);
    taskq_result *res = NULL;
    assert_int_equal(taskq_result_wait(x->c, "other", ids[0], 10.0, &res), 0);
    assert_string_equal(taskq_result_value(res), "1");
    taskq_result_free(res);
    assert_int_equal(taskq_result_wait(x->c, "default", ids[1], 10.0, &res), 0);
    assert_string_equal(taskq_result_value(res), "2");
    taskq_result_free(res);
}

static void test_cli_bulk_bad_line_reported(void **state)
{
    tc *x = *state;
    char path[TH_PATH_MAX];
    snprintf(path, sizeof(path), "%s/bad-%s.jsonl", th_tmpdir(), x->prefix);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "{\"task\":\"add\",\"args\":[1,2]}\n");
    fprintf(f, "{\"task\":\"add\",\"args\":[3,4]}\n");
    fprintf(f, "{\"task\":\"add\",\"args\":[oops]}\n");
    fprintf(f, "{\"task\":\"add\",\"args\":[5,6]}\n");
    assert_int_equal(fclose(f), 0);
    const char *a[] = {"--bulk", path, NULL};
    cli_run r = run_x(x, a, NULL);
    if (r.status == 0)
        fail_msg("a bad bulk line exited 0; stderr: %s", r.err);
    if (!strstr(r.err, "line 3"))
        fail_msg("stderr does not name line 3: %s", r.err);
    assert_null(strstr(r.err, "line 1"));
    assert_null(strstr(r.err, "line 4"));
    /* Every id printed is a real task. */
    char ids[4][TASKQ_ID_SIZE];
    size_t n = split_ids(r.out, ids, 4);
    assert_true(n <= 3);
    for (size_t i = 0; i < n; i++) {
        taskq_result *res = NULL;
        assert_int_equal(taskq_result_wait(x->c, NULL, ids[i], 10.0, &res), 0);
        assert_int_equal(taskq_result_state(res), TASKQ_SUCCESS);
        taskq_result_free(res);
    }
    cli_run_free(&r);

    /* A line that is JSON but not a valid task: an unknown option value. */
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "{\"task\":\"add\",\"args\":[1]}\n{\"task\":\"add\",\"countdown\":\"soon\"}\n");
    assert_int_equal(fclose(f), 0);
    r = run_x(x, a, NULL);
    assert_int_not_equal(r.status, 0);
    if (!strstr(r.err, "line 2"))
        fail_msg("stderr does not name line 2: %s", r.err);
    cli_run_free(&r);
}

/* ---- errors ------------------------------------------------------------- */

static void test_cli_bad_flags_exit_64(void **state)
{
    tc *x = *state;
    static const char *const cases[][6] = {
        {"--bogus", "add", "1", NULL},
        {"add", "1", "--countdown", NULL},
        {"add", "1", "--countdown", "soon", NULL},
        {"add", "1", "--retries", "-3", NULL},
        {"add", "1", "--kw", "novalue", NULL},
        {"add", "1", "--wait", "--timeout", "x", NULL},
        {"add", "1", "--eta", "tomorrow", NULL},
        {NULL},
    };
    for (int i = 0; cases[i][0]; i++) {
        cli_run r = run_x(x, cases[i], NULL);
        if (r.status != 64)
            fail_msg("case %d (%s %s %s ...): status %d, want 64; stderr: %s", i, cases[i][0],
                     cases[i][1], cases[i][2] ? cases[i][2] : "", r.status, r.err);
        if (strlen(r.err) < 10 || !strstr(r.err, "taskq-submit"))
            fail_msg("case %d: no message on stderr ('%s')", i, r.err);
        assert_string_equal(r.out, "");
        cli_run_free(&r);
    }
    /* The offending option is named. */
    const char *a[] = {"--bogus", "add", NULL};
    cli_run r = run_x(x, a, NULL);
    assert_non_null(strstr(r.err, "--bogus"));
    cli_run_free(&r);
    /* No task at all. */
    const char *b[] = {NULL};
    r = run_x(x, b, NULL);
    expect_status(&r, 64);
    cli_run_free(&r);
}

static void test_cli_non_json_arg_exit_64(void **state)
{
    tc *x = *state;
    const char *a[] = {"add", "2", "three", NULL};
    cli_run r = run_x(x, a, NULL);
    expect_status(&r, 64);
    if (!strstr(r.err, "argument 2"))
        fail_msg("stderr does not say which argument: %s", r.err);
    assert_string_equal(r.out, "");
    cli_run_free(&r);
    /* Nothing was submitted. */
    redisReply *rep = th_cmd(tf_group()->rc, "HLEN %s{default}:msg", x->prefix);
    assert_non_null(rep);
    assert_int_equal(rep->integer, 0);
    freeReplyObject(rep);

    const char *b[] = {"add", "1", "--kw", "weight={bad", NULL};
    r = run_x(x, b, NULL);
    expect_status(&r, 64);
    if (!strstr(r.err, "weight"))
        fail_msg("stderr does not name the keyword argument: %s", r.err);
    cli_run_free(&r);
}

static void test_cli_unreachable_exit_69(void **state)
{
    (void)state;
    int port = tf_dead_port();
    char url[128], addr[32];
    snprintf(url, sizeof(url), "redis://alice:hunter2secret@127.0.0.1:%d/0", port);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    const char *a[] = {"--redis", url, "add", "1", "2", NULL};
    cli_run r = run_cli(a, NULL, NULL);
    expect_status(&r, 69);
    if (!strstr(r.err, addr))
        fail_msg("stderr does not name %s: %s", addr, r.err);
    if (strstr(r.err, "hunter2secret") || strstr(r.out, "hunter2secret"))
        fail_msg("the password is printed: %s", r.err);
    cli_run_free(&r);

    /* The same from the environment, for `result` too. */
    char env_url[160];
    snprintf(env_url, sizeof(env_url), "TASKQ_REDIS_URL=%s", url);
    const char *env[] = {env_url, NULL};
    const char *b[] = {"result", "abc", "--wait", "--timeout", "1", NULL};
    r = run_cli(b, NULL, env);
    expect_status(&r, 69);
    assert_non_null(strstr(r.err, addr));
    assert_null(strstr(r.err, "hunter2secret"));
    cli_run_free(&r);
}

static void test_cli_redis_url_file(void **state)
{
    tc *x = *state;
    char path[TH_PATH_MAX];
    snprintf(path, sizeof(path), "%s/url-%s", th_tmpdir(), x->prefix);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "%s\n", tf_group()->srv->url);
    assert_int_equal(fclose(f), 0);
    const char *a[] = {"--redis-url-file", path,        "--prefix", x->prefix, "add", "1", "1",
                       "--wait",           "--timeout", "10",       NULL};
    const char *env[] = {"TASKQ_REDIS_URL=redis://127.0.0.1:1/0", NULL};
    cli_run r = run_cli(a, NULL, env);
    expect_status(&r, 0);
    assert_string_equal(r.out, "2\n");
    cli_run_free(&r);
}

/* ---- time, help, dead letters ------------------------------------------- */

/* ms since the epoch as ISO 8601 with milliseconds, at UTC offset
 * `offset_min` ("Z" when 0). */
static void iso8601(long long ms, int offset_min, char *buf, size_t len)
{
    time_t t = (time_t)(ms / 1000) + (time_t)offset_min * 60;
    struct tm tm;
    gmtime_r(&t, &tm);
    char date[32], zone[16];
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
    if (offset_min == 0)
        snprintf(zone, sizeof(zone), "Z");
    else
        snprintf(zone, sizeof(zone), "%c%02d:%02d", offset_min < 0 ? '-' : '+',
                 abs(offset_min) / 60, abs(offset_min) % 60);
    snprintf(buf, len, "%s.%03lldZ", date, ms % 1000);
    if (offset_min != 0)
        snprintf(buf + strlen(buf) - 1, len - (strlen(buf) - 1), "%s", zone);
}

static void test_cli_eta_iso8601(void **state)
{
    tc *x = *state;
    long long eta = tf_redis_now_ms(tf_group()->rc) + 1500;
    char when[64], when2[64];
    iso8601(eta, 0, when, sizeof(when));
    iso8601(eta, 120, when2, sizeof(when2)); /* the same instant at +02:00 */

    const char *a[] = {"echo", "\"utc\"", "--eta", when, NULL};
    cli_run r = run_x(x, a, NULL);
    expect_status(&r, 0);
    char id1[TASKQ_ID_SIZE], id2[TASKQ_ID_SIZE];
    one_id(&r, id1);
    cli_run_free(&r);
    const char *b[] = {"echo", "\"offset\"", "--eta", when2, NULL};
    r = run_x(x, b, NULL);
    expect_status(&r, 0);
    one_id(&r, id2);
    cli_run_free(&r);

    const char *ids[2] = {id1, id2};
    for (int i = 0; i < 2; i++) {
        const char *c[] = {"result", ids[i], "--wait", "--timeout", "10", "--json", NULL};
        r = run_x(x, c, NULL);
        expect_status(&r, 0);
        json_t *o = parse_json(r.out);
        long long started = (long long)json_integer_value(json_object_get(o, "started_ms"));
        json_decref(o);
        cli_run_free(&r);
        if (started < eta || started > eta + 300)
            fail_msg("--eta %s: started %lld ms after the eta", i ? when2 : when, started - eta);
    }
}

static void test_cli_help_version(void **state)
{
    (void)state;
    const char *a[] = {"--help", NULL};
    cli_run r = run_cli(a, NULL, NULL);
    expect_status(&r, 0);
    assert_non_null(strstr(r.out, "Usage: taskq-submit"));
    assert_non_null(strstr(r.out, "--bulk"));
    assert_non_null(strstr(r.out, "Exit status"));
    cli_run_free(&r);
    const char *b[] = {"--version", NULL};
    r = run_cli(b, NULL, NULL);
    expect_status(&r, 0);
    assert_non_null(strstr(r.out, taskq_version()));
    cli_run_free(&r);
}

static void test_cli_dead_list(void **state)
{
    tc *x = *state;
    const char *a[] = {"no.such.task", "1", "--wait", "--timeout", "10", "--json", NULL};
    cli_run r = run_x(x, a, NULL);
    expect_status(&r, 1);
    json_t *o = parse_json(r.out);
    char id[TASKQ_ID_SIZE];
    snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(o, "id")));
    assert_string_equal(json_string_value(json_object_get(json_object_get(o, "error"), "type")),
                        "NotRegistered");
    json_decref(o);
    cli_run_free(&r);

    const char *b[] = {"dead", "list", NULL};
    r = run_x(x, b, NULL);
    expect_status(&r, 0);
    if (!strstr(r.out, id) || !strstr(r.out, "no.such.task"))
        fail_msg("dead list does not show %s: %s", id, r.out);
    cli_run_free(&r);

    const char *c[] = {"dead", "show", id, NULL};
    r = run_x(x, c, NULL);
    expect_status(&r, 0);
    assert_non_null(strstr(r.out, id));
    cli_run_free(&r);

    const char *d[] = {"dead", "purge", NULL};
    r = run_x(x, d, NULL);
    expect_status(&r, 0);
    cli_run_free(&r);
    r = run_x(x, b, NULL);
    expect_status(&r, 0);
    assert_null(strstr(r.out, id));
    cli_run_free(&r);
    r = run_x(x, c, NULL);
    expect_status(&r, 3);
    cli_run_free(&r);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_cli_add_wait_prints_result),
        T(test_cli_json_output),
        T(test_cli_failing_task_exits_1),
        T(test_cli_wait_timeout_exits_2),
        T(test_cli_result_json),
        T(test_cli_cancel),
        T(test_cli_bulk_file),
        T(test_cli_bulk_stdin),
        T(test_cli_bulk_bad_line_reported),
        T(test_cli_bad_flags_exit_64),
        T(test_cli_non_json_arg_exit_64),
        T(test_cli_unreachable_exit_69),
        T(test_cli_redis_url_file),
        T(test_cli_eta_iso8601),
        T(test_cli_help_version),
        T(test_cli_dead_list),
    };
#undef T
    return cmocka_run_group_tests(tests, tf_group_setup, tf_group_teardown);
}
