/* taskq_fx: test fixtures shared by the integration tests, on top of the
 * harness (tests/harness.h): a private redis-server with a plain connection
 * (and optionally a libtaskq client), real taskq-worker processes whose log
 * path and worker id outlive the harness's bookkeeping, and the waits and
 * Redis reads that several test files make.
 *
 * Functions that return void, or a value the caller needs, fail the running
 * cmocka test (fail_msg) instead of returning an error: call them from a test
 * or a fixture only. Like the harness, nothing here is thread-safe. */
#ifndef TF_TASKQ_FX_H
#define TF_TASKQ_FX_H

#include <jansson.h>

#include "client/taskq.h"
#include "harness.h"

#define TF_READY_MS 10000 /* a worker logs "ready" within this */

/* ---- a redis-server and the connections to it ---------------------------- */

typedef struct tf_redis {
    th_redis_server *srv;
    redisContext *rc; /* plain reads of the key schema (owned) */
    taskq_client *c;  /* libtaskq client (owned), NULL unless asked for */
} tf_redis;

/* Start a redis-server with `extra` arguments (as th_redis_start), open a
 * plain connection to it and, if with_client, a libtaskq client that has
 * answered a ping. 0, or -1 after a diagnostic on stderr with nothing left
 * open. Does not fail the test: usable in group fixtures. */
int tf_redis_open(tf_redis *r, const char *const *extra, int with_client);
/* Free the client and the connection, stop the server and remove its
 * directory. Every member may be NULL; all are NULL afterwards. */
void tf_redis_close(tf_redis *r);

/* cmocka group fixtures for a file whose tests share one server: *state
 * becomes a static tf_redis (no client), also returned by tf_group(); the
 * teardown closes it and runs th_cleanup. */
int tf_group_setup(void **state);
int tf_group_teardown(void **state);
/* The server of tf_group_setup (borrowed), NULL outside the group. */
tf_redis *tf_group(void);

/* A libtaskq client on url, connected, with a key prefix of its own,
 * "<tag><pid>-<n>:" (written into prefix), so that what one test queues is
 * invisible to the others on the same server. The test fails if the client
 * cannot connect. Free with taskq_client_free. */
taskq_client *tf_client_prefixed(const char *url, const char *tag, char prefix[64]);

/* Redis's own clock (TIME), in milliseconds since the epoch. */
long long tf_redis_now_ms(redisContext *rc);

/* redisCommand that must answer with an integer: the integer, or the test
 * fails naming the command and the reply. */
long long tf_rint(redisContext *rc, const char *fmt, ...);

/* ---- processes ------------------------------------------------------------ */

/* th_spawn that fails the test if the process cannot be started; copies its
 * log path into `log` (the harness forgets it once the process is reaped). */
pid_t tf_spawn(const char *const *argv, const char *const *env, char log[TH_PATH_MAX]);

/* Is the process still running? (Reaps it if it has exited.) */
int tf_alive(pid_t pid);

/* A taskq-worker started by tf_worker_start. */
typedef struct tf_worker {
    pid_t pid;             /* 0 once tf_worker_stop reaped it */
    char log[TH_PATH_MAX]; /* its stdout and stderr, kept after it is reaped */
    char id[256];          /* from its "worker <id> ready: redis" line; "" until then */
} tf_worker;

/* Start taskq-worker with `--redis url` (none if url is NULL: extra_argv then
 * says where Redis is) followed by extra_argv (NULL-terminated, may be NULL),
 * and extra_env on top of the environment (as th_spawn; may be NULL). With
 * wait_ready, wait up to TF_READY_MS until it logs its ready line (at log
 * level info or finer) and take its id from it; the test fails, with the
 * log on stderr, if it does not or exits first (w->pid is then 0). */
void tf_worker_start(tf_worker *w, const char *url, const char *const *extra_argv,
                     const char *const *extra_env, int wait_ready);
/* Read the id from the worker's ready line. 1 if found (w->id set), else 0. */
int tf_worker_read_id(tf_worker *w);
/* SIGTERM, up to timeout_ms, then SIGKILL (th_stop_proc). Returns the
 * waitpid status, or -1 if the worker is not running; w->pid becomes 0. */
int tf_worker_stop(tf_worker *w, int timeout_ms);

/* ---- waits (1 when the condition became true, 0 on time-out) ------------- */

/* Size of a file in bytes (0 if it does not exist): an offset for
 * tf_log_wait that skips what a log already holds. */
long tf_file_size(const char *path);
/* Wait until the file holds `needle` at or after byte from_offset. With
 * ms = 0, one look. */
int tf_log_wait(const char *path, long from_offset, const char *needle, int ms);

/* Wait until the command (formatted once, as redisCommand) answers with the
 * integer `want`, e.g. EXISTS of a key that something else creates. The test
 * fails on a reply that is not an integer. */
int tf_wait_rint(redisContext *rc, long long want, int ms, const char *fmt, ...);

/* Wait until the heartbeat record of worker `wid` (the key
 * <prefix>worker:<wid>, docs/PROTOCOL.md#key-schema) says it runs at least
 * `want` tasks: they reached its executors, not just its lease. */
int tf_wait_running(redisContext *rc, const char *prefix, const char *wid, long long want, int ms);

/* ---- tasks through libtaskq ---------------------------------------------- */

/* A task from a JSON object (taskq_task_apply_json); caller frees. */
taskq_task *tf_task_json(const char *json);
/* Submit the task given as a JSON object; its id into id. */
void tf_submit_json(taskq_client *c, const char *json, char id[TASKQ_ID_SIZE]);

/* Wait for a final state of task id on queue (NULL: the default queue).
 * On an error or time-out the test fails, after dumping diag_log (may be
 * NULL). The result belongs to the caller. */
taskq_result *tf_wait_final(taskq_client *c, const char *queue, const char *id, double timeout,
                            const char *diag_log);
/* The state of a task; the test fails if it cannot be read. */
taskq_state tf_state(taskq_client *c, const char *queue, const char *id);
/* Wait until the task is in state want. */
int tf_wait_state(taskq_client *c, const char *queue, const char *id, taskq_state want, int ms);
/* The result record as JSON (new reference; the test fails if it is not). */
json_t *tf_record(const taskq_result *r);

/* ---- misc ------------------------------------------------------------------ */

/* A loopback TCP port nothing listens on (bound, then closed). */
int tf_dead_port(void);

#endif
