/* taskq.h: libtaskq, the C client library of the taskq task queue.
 *
 * Submit tasks to Redis-backed queues, read and wait for their results,
 * cancel tasks that have not started. The wire format is docs/PROTOCOL.md.
 *
 * Errors: functions that can fail return 0 or a negative TASKQ_E* code; the
 * client keeps a message for the last failure (taskq_client_errstr) that says
 * what went wrong and, for connection errors, which address.
 *
 * Ownership: strings passed in are copied unless stated otherwise. Objects
 * returned through `**out` belong to the caller and are released with their
 * _free function; every _free accepts NULL. `const char *` accessors return
 * pointers owned by the object, valid until it is freed.
 *
 * Thread safety: a taskq_client holds one Redis connection and must not be
 * used by two threads at once; use one client per thread (they are cheap).
 * taskq_task and taskq_result objects are plain data: share them read-only or
 * keep them per thread. The library has no global state.
 *
 * Delivery is at least once: see docs/RELIABILITY.md. */
#ifndef TASKQ_H
#define TASKQ_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TASKQ_VERSION_MAJOR 0
#define TASKQ_VERSION_MINOR 1
#define TASKQ_VERSION_PATCH 0

#if defined(__GNUC__)
#define TASKQ_API __attribute__((visibility("default")))
#else
#define TASKQ_API
#endif

/* Room for a task id and its terminating NUL (ids are at most 64 chars;
 * generated ones are 32 hex digits). */
#define TASKQ_ID_SIZE 65

enum {
    TASKQ_OK = 0,
    TASKQ_EINVAL = -1,    /* invalid argument: name, JSON, option value */
    TASKQ_ECONN = -2,     /* Redis unreachable or the connection was lost */
    TASKQ_EREDIS = -3,    /* Redis answered with an unexpected error */
    TASKQ_ENOTFOUND = -4, /* no such task (unknown id, or its result expired) */
    TASKQ_ETIMEDOUT = -5, /* a wait ended before the task finished */
    TASKQ_EFULL = -6,     /* the queue is at its length cap */
    TASKQ_EEXIST = -7,    /* a task with this id is already queued */
    TASKQ_ESTATE = -8,    /* not possible in the task's state (cancel a started task) */
    TASKQ_ETOOBIG = -9,   /* the message exceeds the size or nesting limits */
    TASKQ_EPROTO = -10,   /* Redis returned something that is not protocol v1 */
};

typedef enum {
    TASKQ_PENDING = 0, /* queued or delayed */
    TASKQ_STARTED,     /* running */
    TASKQ_RETRY,       /* failed, another attempt is scheduled */
    TASKQ_SUCCESS,     /* finished with a result */
    TASKQ_FAILURE,     /* finished with an error (or dead-lettered) */
    TASKQ_REVOKED,     /* cancelled or expired before it ran */
} taskq_state;

/* "PENDING", "STARTED", ... (static strings). */
TASKQ_API const char *taskq_state_name(taskq_state s);
/* 1 for SUCCESS, FAILURE and REVOKED. */
TASKQ_API int taskq_state_is_final(taskq_state s);
/* A static description of a TASKQ_E* code. */
TASKQ_API const char *taskq_strerror(int code);
/* "0.1.0" */
TASKQ_API const char *taskq_version(void);

/* ---- client ---------------------------------------------------------- */

typedef struct taskq_client taskq_client;

/* Create a client and connect to `url`:
 *   redis://[[user]:password@]host[:port][/db]
 *   unix://[[user]:password@]/path/to/redis.sock[?db=N]
 * NULL url: $TASKQ_REDIS_URL, else redis://127.0.0.1:6379/0.
 * Returns NULL only when out of memory. A client whose connection failed is
 * still returned: taskq_client_error() tells, and later calls reconnect. */
TASKQ_API taskq_client *taskq_client_new(const char *url);
TASKQ_API void taskq_client_free(taskq_client *c);
/* The code and message of the last failed call (0 and "" when none). */
TASKQ_API int taskq_client_error(const taskq_client *c);
TASKQ_API const char *taskq_client_errstr(const taskq_client *c);
/* Key prefix (default "taskq:", or $TASKQ_PREFIX). */
TASKQ_API int taskq_client_set_prefix(taskq_client *c, const char *prefix);
/* Connect and command time-out in seconds (default 5). Waits are separate. */
TASKQ_API int taskq_client_set_timeout(taskq_client *c, double seconds);
/* Refuse submissions to a queue holding this many tasks (queued, delayed or
 * running); default 10,000,000 or $TASKQ_MAX_QUEUE_LENGTH; 0: no cap. The
 * cap bounds Redis memory. */
TASKQ_API int taskq_client_set_queue_cap(taskq_client *c, long long cap);
/* Check arguments against the signatures workers publish before enqueueing
 * (default on): a wrong call fails here with TASKQ_EINVAL and a message such
 * as "mul: argument 'b' must be int, got string \"x\"". Tasks no running
 * worker has published are not checked. */
TASKQ_API int taskq_client_set_validate(taskq_client *c, int on);
/* Every task running workers have published, as a JSON array of
 * {"name","doc","signature","spec"} into *json (malloc'd; free()). */
TASKQ_API int taskq_tasks_list(taskq_client *c, char **json);
/* Sign every message this client submits with HMAC-SHA256 (key id `kid`,
 * key given as hex, 16..128 bytes), for workers that require signatures.
 * By default the key comes from $TASKQ_SIGNING_KEY ("KID:HEX") or from the
 * file named by $TASKQ_SIGNING_KEY_FILE (mode 0600). The key is copied. */
TASKQ_API int taskq_client_set_signing_key(taskq_client *c, const char *kid, const char *hexkey);
/* Round trip to Redis; 0 when reachable. */
TASKQ_API int taskq_client_ping(taskq_client *c);

/* ---- tasks ----------------------------------------------------------- */

typedef struct taskq_task taskq_task;

/* A task to submit, named `name` (may be NULL and set later). Defaults: no
 * arguments, queue "default", no countdown, no expiry, the task's registered
 * retry policy. Returns NULL only when out of memory. */
TASKQ_API taskq_task *taskq_task_new(const char *name);
TASKQ_API void taskq_task_free(taskq_task *t);
/* A copy of t (name, arguments, options); NULL only when out of memory. */
TASKQ_API taskq_task *taskq_task_dup(const taskq_task *t);
/* The task's queue (borrowed). */
TASKQ_API const char *taskq_task_queue(const taskq_task *t);
/* Why the last setter on this task failed. */
TASKQ_API const char *taskq_task_errstr(const taskq_task *t);

TASKQ_API int taskq_task_set_name(taskq_task *t, const char *name);
/* Append one positional argument given as JSON text ("2", "\"x\"", "{...}"). */
TASKQ_API int taskq_task_arg_json(taskq_task *t, const char *json);
/* Replace all positional arguments with a JSON array. */
TASKQ_API int taskq_task_args_json(taskq_task *t, const char *json_array);
/* Set keyword argument `name` to a JSON value. */
TASKQ_API int taskq_task_kwarg_json(taskq_task *t, const char *name, const char *json);
TASKQ_API int taskq_task_set_queue(taskq_task *t, const char *queue);
/* Use this id instead of a random one (1..64 of [0-9A-Za-z_-]). */
TASKQ_API int taskq_task_set_id(taskq_task *t, const char *id);
/* Run no earlier than `seconds` from submission (measured on Redis's clock). */
TASKQ_API int taskq_task_set_countdown(taskq_task *t, double seconds);
/* Run no earlier than this time (ms since the epoch). */
TASKQ_API int taskq_task_set_eta(taskq_task *t, int64_t eta_ms);
/* Do not run if not started within `seconds` after submission. */
TASKQ_API int taskq_task_set_expires(taskq_task *t, double seconds);
/* Maximum retries after the first attempt (overrides the task's default). */
TASKQ_API int taskq_task_set_retries(taskq_task *t, int retries);
/* Soft and hard time limits in seconds (0: none). */
TASKQ_API int taskq_task_set_time_limits(taskq_task *t, double soft, double hard);
/* Apply the fields of a JSON object onto t: "task", "args", "kwargs",
 * "queue", "id", "countdown", "eta" (ISO 8601 or ms), "expires", "retries",
 * "soft_limit", "hard_limit". Fields absent keep their current values, so a
 * task prepared with defaults can take one line of a bulk file. */
TASKQ_API int taskq_task_apply_json(taskq_task *t, const char *json_object);

/* Submit one task; writes its id into `id` (may be NULL). One round trip. */
TASKQ_API int taskq_submit(taskq_client *c, const taskq_task *t, char id[TASKQ_ID_SIZE]);
/* Submit n tasks in one pipelined round trip. ids[i] receives each id (ids
 * may be NULL); codes[i] (may be NULL) each task's result code. Returns 0
 * when all were accepted, else the first failure's code. */
TASKQ_API int taskq_submit_many(taskq_client *c, taskq_task *const *tasks, size_t n,
                                char (*ids)[TASKQ_ID_SIZE], int *codes);

/* ---- results --------------------------------------------------------- */

typedef struct taskq_result taskq_result;

/* Read a task's current state and record. `queue` NULL means "default".
 * TASKQ_ENOTFOUND when Redis knows nothing of the id. */
TASKQ_API int taskq_result_get(taskq_client *c, const char *queue, const char *id,
                               taskq_result **out);
/* Wait until the task reaches a final state (SUCCESS, FAILURE, REVOKED), for
 * at most `timeout` seconds (< 0: no limit). Blocks in Redis (no polling).
 * TASKQ_ETIMEDOUT when the time ran out; *out then holds the latest state. */
TASKQ_API int taskq_result_wait(taskq_client *c, const char *queue, const char *id, double timeout,
                                taskq_result **out);
/* Submit t and wait for its final result, in one round trip once the
 * connection is warm (the enqueue and a blocking wait pipelined). Same
 * results and codes as taskq_submit followed by taskq_result_wait. */
TASKQ_API int taskq_submit_wait(taskq_client *c, const taskq_task *t, double timeout,
                                char id[TASKQ_ID_SIZE], taskq_result **out);
/* The state only. */
TASKQ_API int taskq_state_get(taskq_client *c, const char *queue, const char *id, taskq_state *out);
/* Cancel a task that has not started: its state becomes REVOKED.
 * TASKQ_ESTATE if it already started or finished, TASKQ_ENOTFOUND if unknown. */
TASKQ_API int taskq_cancel(taskq_client *c, const char *queue, const char *id);

TASKQ_API void taskq_result_free(taskq_result *r);
TASKQ_API taskq_state taskq_result_state(const taskq_result *r);
TASKQ_API const char *taskq_result_id(const taskq_result *r);
/* Task name; NULL for a derived PENDING/STARTED state without a record. */
TASKQ_API const char *taskq_result_task(const taskq_result *r);
/* SUCCESS: the return value as JSON text; otherwise NULL. */
TASKQ_API const char *taskq_result_value(const taskq_result *r);
/* FAILURE, REVOKED, RETRY: the error type and message; otherwise NULL. */
TASKQ_API const char *taskq_result_error_type(const taskq_result *r);
TASKQ_API const char *taskq_result_error_message(const taskq_result *r);
/* Attempts made so far (0 when unknown). */
TASKQ_API int taskq_result_attempts(const taskq_result *r);
/* Id of the worker that ran the last attempt; NULL when unknown. */
TASKQ_API const char *taskq_result_worker(const taskq_result *r);
/* The whole record as compact JSON text (docs/PROTOCOL.md#result-record). */
TASKQ_API const char *taskq_result_json(const taskq_result *r);

/* ---- dead letters ------------------------------------------------------ */

/* List up to `max` dead-lettered task ids of `queue`, newest first, as a JSON
 * array of entries {"id","reason","at_ms","task"} into *json (malloc'd;
 * free()). */
TASKQ_API int taskq_dead_list(taskq_client *c, const char *queue, size_t max, char **json);
/* One dead-letter entry (with the original message) as JSON into *json. */
TASKQ_API int taskq_dead_show(taskq_client *c, const char *queue, const char *id, char **json);
/* Put a dead-lettered task back on its queue with its attempts reset. */
TASKQ_API int taskq_dead_requeue(taskq_client *c, const char *queue, const char *id);
/* Remove one entry (id) or, with id NULL, every entry; *removed gets the count. */
TASKQ_API int taskq_dead_purge(taskq_client *c, const char *queue, const char *id, size_t *removed);

#ifdef __cplusplus
}
#endif
#endif
