/* Integration tests for the defences of docs/SECURITY.md, against a real
 * redis-server and the real taskq-worker: typed signatures enforced at the
 * caller and at the worker, HMAC message signing, Redis ACL users (a
 * submit-only user cannot consume), secrets kept out of logs and errors, and
 * the worker's refusal to run as root. One server serves the file; each test
 * uses its own queue. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker/tq_scripts.h"
#include "taskq.h"
#include "taskq_fx.h"

#define K1 "00112233445566778899aabbccddeeff"
#define K2 "ffeeddccbbaa99887766554433221100"
#define WORKER_PW "w0rker-s3cret-pw"
#define SUBMIT_PW "subm1tter-s3cret-pw"
#define WAIT_S 10.0

/* The minimal ACL users of docs/SECURITY.md#redis-authentication-and-acls,
 * rule for rule as written there (passwords aside). redis-server joins the
 * words after --user into one config line. The default user stays (the
 * harness uses it). */
#define WORKER_ACL                                                                                 \
    "taskq-worker on >" WORKER_PW " resetchannels &taskq:* ~taskq:* -@all"                         \
    " +ping +auth +select +evalsha +eval +script|load +time +get +set +del +exists"                \
    " +pexpire +publish +subscribe +hget +hmget +hset +hsetnx +hdel +hexists +hlen +hincrby"       \
    " +lpush +rpush +rpop +zadd +zrem +zcard +zrange +zrangebyscore"                               \
    " +zremrangebyscore +incr +pexpireat +pexpiretime +pttl +unlink +zscore +zmscore +zcount"
#define SUBMIT_ACL                                                                                 \
    "taskq-submit on >" SUBMIT_PW " resetchannels &taskq:* ~taskq:* -@all"                         \
    " +ping +auth +select +evalsha +eval +time +get +set +del +exists +pexpire"                    \
    " +publish +hget +hset +hsetnx +hdel +hexists +hlen +hmget +hgetall +lpush +rpush"             \
    " +lindex +zadd +zrem +zrange +zrevrange +zrangebyscore +zremrangebyscore +zcard +blmove"      \
    " +zscore +zmscore +pexpireat +pexpiretime +pttl +unlink"

static th_redis_server *S;

/* "--user" and the rules one word per argument: redis-server quotes an
 * argument that holds spaces, so the rules cannot go as one. */
static int add_user(const char **args, int n, int max, char *rules)
{
    args[n++] = "--user";
    for (char *save = NULL, *w = strtok_r(rules, " ", &save); w && n < max;
         w = strtok_r(NULL, " ", &save))
        args[n++] = w;
    return n;
}

static int group_setup(void **state)
{
    (void)state;
    static char worker[] = WORKER_ACL, submit[] = SUBMIT_ACL;
    const char *args[128];
    int n = add_user(args, 0, 64, worker);
    n = add_user(args, n, 127, submit);
    args[n] = NULL;
    S = th_redis_start(args);
    return S ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    th_redis_free(S);
    th_cleanup();
    return 0;
}

/* Start a worker on `queue` with extra env (may be NULL), on url or, if
 * url_file is set, on the URL in that file; wait until it is ready. */
static void start_worker(tf_worker *w, const char *url, const char *queue,
                         const char *const *extra_env, const char *url_file)
{
    const char *argv[] = {url_file ? "--redis-url-file" : "--redis",
                          url_file ? url_file : url,
                          "--queues",
                          queue,
                          "--concurrency",
                          "2",
                          "--heartbeat",
                          "0.2",
                          NULL};
    tf_worker_start(w, NULL, argv, extra_env, 1);
}

static void stop_worker(tf_worker *w)
{
    int st = tf_worker_stop(w, 10000);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

static taskq_client *client(const char *url)
{
    taskq_client *c = taskq_client_new(url);
    assert_non_null(c);
    if (taskq_client_error(c))
        fail_msg("client: %s", taskq_client_errstr(c));
    return c;
}

static taskq_task *task2(const char *name, const char *queue, const char *a, const char *b)
{
    taskq_task *t = taskq_task_new(name);
    assert_int_equal(taskq_task_set_queue(t, queue), 0);
    assert_int_equal(taskq_task_arg_json(t, a), 0);
    assert_int_equal(taskq_task_arg_json(t, b), 0);
    return t;
}

/* Submit, wait, and return the final result (caller frees). */
static taskq_result *run_task(taskq_client *c, taskq_task *t, const char *queue)
{
    char id[TASKQ_ID_SIZE];
    taskq_result *r = NULL;
    if (taskq_submit(c, t, id) != 0)
        fail_msg("submit: %s", taskq_client_errstr(c));
    if (taskq_result_wait(c, queue, id, WAIT_S, &r) != 0)
        fail_msg("wait: %s", taskq_client_errstr(c));
    return r;
}

/* Does process pid map OpenSSL's libcrypto? tq_sign loads it with the first
 * signing key only. */
static int maps_libcrypto(pid_t pid)
{
    char path[64], line[512];
    snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    int found = 0;
    while (!found && fgets(line, sizeof(line), f))
        found = strstr(line, "/libcrypto.so") != NULL;
    fclose(f);
    return found;
}

static void test_security_typed_call_refused_at_submit(void **state)
{
    (void)state;
    tf_worker w;
    start_worker(&w, S->url, "typed", NULL, NULL);
    redisContext *rc = th_redis(S);
    assert_true(tf_wait_rint(rc, 1, 10000, "HEXISTS taskq:tasks %s", "mul")); /* published */

    taskq_client *c = client(S->url);
    char id[TASKQ_ID_SIZE];
    taskq_task *t = task2("mul", "typed", "2", "\"x\"");
    assert_int_equal(taskq_submit(c, t, id), TASKQ_EINVAL);
    assert_non_null(
        strstr(taskq_client_errstr(c), "mul: argument 'b' must be int, got string \"x\""));
    /* Nothing was enqueued. */
    assert_int_equal(tf_rint(rc, "LLEN taskq:{typed}:pending"), 0);

    /* Let it through the client: the worker refuses it the same way, and a
     * TypeError is not retried even with retries to spare. */
    taskq_client_set_validate(c, 0);
    assert_int_equal(taskq_task_set_retries(t, 3), 0);
    taskq_result *res = run_task(c, t, "typed");
    assert_int_equal(taskq_result_state(res), TASKQ_FAILURE);
    assert_string_equal(taskq_result_error_type(res), "TypeError");
    assert_non_null(strstr(taskq_result_error_message(res), "argument 'b' must be int"));
    assert_int_equal(taskq_result_attempts(res), 1);
    taskq_result_free(res);
    taskq_task_free(t);

    taskq_client_set_validate(c, 1);
    t = task2("mul", "typed", "6", "7");
    res = run_task(c, t, "typed");
    assert_int_equal(taskq_result_state(res), TASKQ_SUCCESS);
    assert_string_equal(taskq_result_value(res), "42");
    taskq_result_free(res);
    taskq_task_free(t);

    /* The published list names the signature. */
    char *json = NULL;
    assert_int_equal(taskq_tasks_list(c, &json), 0);
    assert_non_null(strstr(json, "\"spec\":\"a:int, b:int\""));
    free(json);
    taskq_client_free(c);
    redisFree(rc);
    stop_worker(&w);
}

static void test_security_signed_messages(void **state)
{
    (void)state;
    const char *env[] = {"TASKQ_SIGNING_KEYS=k1:" K1 ",k0:" K2, NULL};
    tf_worker w, plainw;
    start_worker(&w, S->url, "signed", env, NULL);
    /* libcrypto is mapped where keys are configured, and only there (an
     * idle worker without it is ~1.4 MB smaller). */
    start_worker(&plainw, S->url, "unsigned", NULL, NULL);
    assert_true(maps_libcrypto(w.pid));
    assert_false(maps_libcrypto(plainw.pid));
    assert_false(maps_libcrypto(getpid())); /* clients without a key yet */
    stop_worker(&plainw);
    taskq_client *good = client(S->url), *plain = client(S->url), *forged = client(S->url);
    assert_int_equal(taskq_client_set_signing_key(good, "k1", K1), 0);
    /* Right key id, wrong key: what an attacker who can write to Redis has. */
    assert_int_equal(taskq_client_set_signing_key(forged, "k1", K2), 0);
    assert_true(maps_libcrypto(getpid()));

    taskq_task *t = task2("add", "signed", "2", "3");
    taskq_result *r = run_task(good, t, "signed");
    assert_int_equal(taskq_result_state(r), TASKQ_SUCCESS);
    assert_string_equal(taskq_result_value(r), "5");
    taskq_result_free(r);

    r = run_task(plain, t, "signed");
    assert_int_equal(taskq_result_state(r), TASKQ_FAILURE);
    assert_string_equal(taskq_result_error_type(r), "SignatureError");
    assert_non_null(strstr(taskq_result_error_message(r), "unsigned message"));
    taskq_result_free(r);

    r = run_task(forged, t, "signed");
    assert_int_equal(taskq_result_state(r), TASKQ_FAILURE);
    assert_non_null(strstr(taskq_result_error_message(r), "bad signature (key id 'k1')"));
    taskq_result_free(r);
    taskq_task_free(t);

    /* Both rejected messages are in the dead-letter set with their reason. */
    char *json = NULL;
    assert_int_equal(taskq_dead_list(good, "signed", 10, &json), 0);
    assert_non_null(strstr(json, "unsigned message"));
    assert_non_null(strstr(json, "bad signature"));
    free(json);
    taskq_client_free(good);
    taskq_client_free(plain);
    taskq_client_free(forged);
    stop_worker(&w);
}

static void test_security_acl_users_and_secrets(void **state)
{
    (void)state;
    char wurl[128], surl[128], badurl[128], path[TH_PATH_MAX];
    snprintf(wurl, sizeof(wurl), "redis://taskq-worker:%s@127.0.0.1:%d/0", WORKER_PW, S->port);
    snprintf(surl, sizeof(surl), "redis://taskq-submit:%s@127.0.0.1:%d/0", SUBMIT_PW, S->port);
    snprintf(badurl, sizeof(badurl), "redis://taskq-submit:wrong-%s@127.0.0.1:%d/0", SUBMIT_PW,
             S->port);
    /* The worker's secret comes from a file, never from its command line. */
    snprintf(path, sizeof(path), "%s/worker-url", th_tmpdir());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "%s\n", wurl);
    fclose(f);
    chmod(path, 0600);
    tf_worker w;
    start_worker(&w, NULL, "acl", NULL, path);

    taskq_client *c = client(surl);
    taskq_task *t = task2("add", "acl", "20", "22");
    taskq_result *r = run_task(c, t, "acl");
    assert_int_equal(taskq_result_state(r), TASKQ_SUCCESS);
    assert_string_equal(taskq_result_value(r), "42");
    /* Settled in full under the worker's ACL: no longer held, the message
     * gone, the record expiring (a command refused half-way through the ack
     * would leave the record without a TTL and the task held). */
    redisContext *adm = th_redis(S);
    assert_true(tf_wait_rint(adm, 0, 5000, "ZCARD taskq:{acl}:held"));
    assert_int_equal(tf_rint(adm, "ZCARD taskq:{acl}:leases"), 0);
    assert_int_equal(tf_rint(adm, "HLEN taskq:{acl}:msg"), 0);
    /* The record went to a results generation, which expires. */
    redisReply *gens = th_cmd(adm, "ZRANGE taskq:{acl}:results 0 -1");
    assert_int_equal(gens->elements, 1);
    assert_true(tf_rint(adm, "PTTL taskq:{acl}:results:%s", gens->element[0]->str) > 0);
    assert_true(tf_rint(adm, "HEXISTS taskq:{acl}:results:%s %s", gens->element[0]->str,
                        taskq_result_id(r)) == 1);
    freeReplyObject(gens);
    redisFree(adm);
    taskq_result_free(r);
    taskq_task_free(t);
    taskq_client_free(c);

    /* The submit-only user cannot consume: popping a queue is refused. */
    redisContext *rc = th_redis(S);
    redisReply *rr = th_cmd(rc, "AUTH taskq-submit %s", SUBMIT_PW);
    assert_int_equal(rr->type, REDIS_REPLY_STATUS);
    freeReplyObject(rr);
    rr = th_cmd(rc, "RPOP taskq:{acl}:pending");
    assert_int_equal(rr->type, REDIS_REPLY_ERROR);
    assert_non_null(strstr(rr->str, "NOPERM"));
    freeReplyObject(rr);
    redisFree(rc);

    /* A wrong password: a precise error naming the address, no secret. */
    c = taskq_client_new(badurl);
    assert_int_equal(taskq_client_error(c), TASKQ_ECONN);
    const char *e = taskq_client_errstr(c);
    assert_non_null(strstr(e, "refused authentication"));
    assert_non_null(strstr(e, "taskq-submit:***@127.0.0.1"));
    assert_null(strstr(e, SUBMIT_PW));
    taskq_client_free(c);

    stop_worker(&w);
    char *log = th_read_file(w.log, NULL);
    assert_non_null(log);
    assert_non_null(strstr(log, "taskq-worker:***@127.0.0.1"));
    assert_null(strstr(log, WORKER_PW));
    assert_null(strstr(log, "Redis refused"));
    free(log);
}

/* Does the ACL rule text allow the command (a "+cmd" word)? */
static int acl_allows(const char *rules, const char *cmd)
{
    size_t n = strlen(cmd);
    for (const char *p = rules; (p = strstr(p, " +")) != NULL; p += 2)
        if (strncmp(p + 2, cmd, n) == 0 && (p[2 + n] == ' ' || p[2 + n] == '\0'))
            return 1;
    return 0;
}

/* Scripts run with the caller's permissions, and a command refused half-way
 * through a script leaves what it already wrote (an ack once pushed the
 * record and then was refused its PEXPIREAT: a result without a TTL and a
 * task still held). So every command a script calls must be allowed to the
 * user that runs it: read from the scripts themselves. */
static void test_security_acl_covers_scripts(void **state)
{
    (void)state;
    static const struct {
        tq_script_id s;
        const char *rules;
    } runs[] = {
        {TQ_SCRIPT_FETCH, WORKER_ACL},        {TQ_SCRIPT_ACK, WORKER_ACL},
        {TQ_SCRIPT_RETRY, WORKER_ACL},        {TQ_SCRIPT_REQUEUE, WORKER_ACL},
        {TQ_SCRIPT_BURY, WORKER_ACL},         {TQ_SCRIPT_EXTEND, WORKER_ACL},
        {TQ_SCRIPT_RECOVER, WORKER_ACL},      {TQ_SCRIPT_PROGRESS, WORKER_ACL},
        {TQ_SCRIPT_ENQUEUE, SUBMIT_ACL},      {TQ_SCRIPT_ENQUEUE_MANY, SUBMIT_ACL},
        {TQ_SCRIPT_REVOKE, SUBMIT_ACL},       {TQ_SCRIPT_STATE, SUBMIT_ACL},
        {TQ_SCRIPT_DEAD_REQUEUE, SUBMIT_ACL}, {TQ_SCRIPT_WATCH, SUBMIT_ACL},
    };
    assert_int_equal(sizeof(runs) / sizeof(runs[0]), TQ_SCRIPT_COUNT);
    int checked = 0;
    for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
        const char *p = tq_scripts[runs[i].s].body;
        while ((p = strstr(p, "redis.call('")) != NULL) {
            p += strlen("redis.call('");
            char cmd[32];
            size_t n = 0;
            for (; p[n] && p[n] != '\'' && n + 1 < sizeof(cmd); n++)
                cmd[n] = (char)(p[n] >= 'A' && p[n] <= 'Z' ? p[n] + ('a' - 'A') : p[n]);
            cmd[n] = '\0';
            if (!acl_allows(runs[i].rules, cmd))
                fail_msg("script %s calls %s, which the ACL of its user (docs/SECURITY.md) does "
                         "not allow",
                         tq_scripts[runs[i].s].name, cmd);
            checked++;
        }
    }
    assert_true(checked > 50);
}

static void test_security_refuses_root(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    char *bin = th_bin("taskq-worker");
    const char *argv[] = {bin, "--redis", S->url, NULL};
    const char *env[] = {"TASKQ_ALLOW_ROOT", NULL}; /* unset it */
    char logpath[TH_PATH_MAX];                      /* kept: the harness forgets it once reaped */
    pid_t pid = tf_spawn(argv, env, logpath);
    free(bin);
    int st;
    assert_int_equal(th_wait_exit(pid, 10000, &st), 0);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 78);
    char *log = th_read_file(logpath, NULL);
    assert_non_null(log);
    assert_non_null(strstr(log, "refusing to run as root"));
    free(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_security_typed_call_refused_at_submit),
        cmocka_unit_test(test_security_signed_messages),
        cmocka_unit_test(test_security_acl_users_and_secrets),
        cmocka_unit_test(test_security_acl_covers_scripts),
        cmocka_unit_test(test_security_refuses_root),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
