/* taskq_worker.h: the task-author API of taskq-worker (installed).
 *
 * A task library is a shared object loaded with `taskq-worker --load
 * libmytasks.so`. The worker calls its one well-known entry point,
 * taskq_tasks_init(), which registers task functions by name. Messages name a
 * task; the name is only ever looked up in this table.
 *
 * Task functions receive their arguments as jansson values, so <jansson.h>
 * (jansson 2.14) is part of this API.
 *
 * Thread safety: in the threads pool several tasks run at once in one
 * process; a task function must not keep unsynchronised global state. In the
 * prefork pool each task runs in a long-lived child process. */
#ifndef TASKQ_WORKER_H
#define TASKQ_WORKER_H

#include <jansson.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TASKQ_WORKER_API_VERSION 1

#if defined(__GNUC__)
#define TASKQ_WORKER_EXPORT __attribute__((visibility("default")))
#else
#define TASKQ_WORKER_EXPORT
#endif

typedef struct taskq_ctx taskq_ctx;           /* one running attempt; borrowed */
typedef struct taskq_registry taskq_registry; /* the worker's task table; borrowed */

/* A task function.
 * args:   the positional arguments (JSON array), borrowed.
 * kwargs: the keyword arguments (JSON object), borrowed.
 *         The task may change both while it runs; a retry still gets them
 *         as they were submitted.
 * result: on success, set *result to a new reference (or leave it NULL for
 *         JSON null) and return 0. Ownership passes to the worker.
 * On failure return taskq_fail(...) or taskq_retry(...). */
typedef int (*taskq_task_fn)(taskq_ctx *ctx, json_t *args, json_t *kwargs, json_t **result);

/* Per task type options; zero-initialise and set what you need. */
typedef struct taskq_task_opts {
    int max_retries;             /* retries after the first attempt when a message
                                    does not say; -1 (or 0 in a zeroed struct with
                                    has_max_retries 0): the worker's default */
    int has_max_retries;         /* 1 when max_retries is set */
    int64_t soft_limit_ms;       /* default soft time limit; 0: worker default */
    int64_t hard_limit_ms;       /* default hard time limit; 0: worker default */
    int64_t backoff_base_ms;     /* retry backoff base; 0: worker default */
    int64_t backoff_cap_ms;      /* retry backoff cap; 0: worker default */
    const char *const *retry_on; /* NULL-terminated error types that are
                                    retried; NULL: every error type */
    const char *doc;             /* one line shown by --list-tasks; copied */
    const char *signature;       /* typed parameters, e.g. "a:int, b:int[0..10]=0,
                                    name:string[..64]?" (see below); NULL: any
                                    arguments are passed through unchecked */
} taskq_task_opts;

/* Signatures. Each parameter is NAME:TYPE, optional bounds [MIN..MAX]
 * (value range for int and float, length for string, array and object;
 * either side may be left out), then =DEFAULT (a JSON literal) or ? for an
 * optional parameter. Types: int, float (ints accepted), string, bool,
 * array, object, null, any. With a signature, the worker checks every call
 * before running the task (a wrong call fails with TypeError, never
 * retried), publishes the signature so clients check calls before they
 * enqueue, and passes the task `args` holding exactly one value per
 * parameter, in order (keyword arguments and defaults bound, null for an
 * omitted optional parameter without default) and an empty `kwargs`. */

/* Register `fn` under `name` (printable ASCII, 1..128 chars). `opts` may be
 * NULL; it and its strings are copied. Returns 0, or -1 for an invalid or
 * duplicate name or an invalid signature (the worker reports why). */
TASKQ_WORKER_EXPORT int taskq_register(taskq_registry *reg, const char *name, taskq_task_fn fn,
                                       const taskq_task_opts *opts);

/* Record a failure of this attempt with an error type ("ValueError") and a
 * printf-style message; returns -1 so a task can `return taskq_fail(...)`.
 * The retry policy decides whether another attempt follows. */
TASKQ_WORKER_EXPORT int taskq_fail(taskq_ctx *ctx, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Ask for another attempt after countdown_ms (-1: the backoff policy decides),
 * within the task's retry limit; returns -1. */
TASKQ_WORKER_EXPORT int taskq_retry(taskq_ctx *ctx, int64_t countdown_ms, const char *type,
                                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* 1 once the soft time limit has passed or the worker is shutting down: the
 * task should clean up and return soon. */
TASKQ_WORKER_EXPORT int taskq_should_stop(const taskq_ctx *ctx);
/* 1 once the soft time limit has passed. */
TASKQ_WORKER_EXPORT int taskq_soft_limit_exceeded(const taskq_ctx *ctx);

/* Report progress (fraction in [0,1], message may be NULL); it appears in the
 * task's STARTED record. Cheap; rate-limited by the worker. */
TASKQ_WORKER_EXPORT void taskq_progress(taskq_ctx *ctx, double fraction, const char *message);

/* The running task: its id, name, queue (borrowed, valid during the call) and
 * attempt number (1 for the first run). */
TASKQ_WORKER_EXPORT const char *taskq_ctx_id(const taskq_ctx *ctx);
TASKQ_WORKER_EXPORT const char *taskq_ctx_task(const taskq_ctx *ctx);
TASKQ_WORKER_EXPORT const char *taskq_ctx_queue(const taskq_ctx *ctx);
TASKQ_WORKER_EXPORT int taskq_ctx_attempt(const taskq_ctx *ctx);

/* The entry point every task library defines: register its tasks, return 0
 * (non-zero aborts the worker's start with a configuration error). */
int taskq_tasks_init(taskq_registry *reg);

#ifdef __cplusplus
}
#endif
#endif
