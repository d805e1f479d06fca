/* tq_pool: where task functions run, off the worker's event loop. Two
 * implementations behind one interface:
 *   prefork (default): long-lived forked children, one task at a time each;
 *     crash isolation, hard time limits (the child is killed), per-task CPU
 *     and peak memory, --max-tasks-per-child, --max-memory-per-child.
 *   threads: a fixed set of threads in the worker process; no hard time
 *     limit (a thread cannot be killed safely), soft limits only.
 * The pool lives on the worker's libevent loop: completions are delivered by
 * the `done` callback on the loop thread, never from another thread. */
#ifndef TQ_POOL_H
#define TQ_POOL_H

#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>

#include "common/tq_log.h"
#include "tq_exec.h"

typedef struct tq_pool tq_pool;

/* A task handed to the pool. `msg` is borrowed until `done` is called for
 * this job; `cookie` is the caller's and is passed back untouched. */
typedef struct tq_pool_job {
    void *cookie;
    const char *msg;
    size_t msglen;
    int64_t soft_limit_ms; /* 0: none */
    int64_t hard_limit_ms; /* 0: none */
    /* The same message decoded, or NULL. The threads pool then runs it
     * without decoding it again, through a share (tq_msg_share), and lends
     * the task its arguments (tq_exec_run_msg): the caller must not change
     * the message until the job's `done`, nor after an ABORTED `done` (its
     * abandoned thread may still read it), must not read its args or
     * kwargs before `done`, and decodes the bytes again to send it anew.
     * The prefork pool sends the bytes, as a child has its own memory. */
    const tq_msg *decoded;
} tq_pool_job;

/* Called on the loop thread when a job ends (any status, including CRASH and
 * ABORTED). The callee owns the outcome's heap fields (tq_outcome_clear). */
typedef void (*tq_pool_done_fn)(void *arg, void *cookie, tq_outcome *out);
/* Called on the loop thread when a running job reports progress. */
typedef void (*tq_pool_progress_fn)(void *arg, void *cookie, double fraction, const char *message);

typedef enum { TQ_POOL_PREFORK, TQ_POOL_THREADS } tq_pool_kind;

typedef struct tq_pool_config {
    tq_pool_kind kind;
    int concurrency;              /* executors, >= 1 */
    long max_tasks_per_child;     /* prefork: recycle a child after N tasks; 0: never */
    long max_memory_per_child_kb; /* prefork: recycle a child after a task leaves its
                                     RSS above this; 0: never */
    const tq_registry *reg;       /* borrowed, read-only */
    const tq_msg_limits *limits;  /* borrowed */
    const tq_logger *log;         /* borrowed */
    tq_pool_done_fn done;
    tq_pool_progress_fn progress; /* may be NULL */
    void *arg;
} tq_pool_config;

/* Start the executors. NULL with a reason in err (fork/thread failure). */
tq_pool *tq_pool_new(struct event_base *base, const tq_pool_config *cfg, char *err, size_t errlen);
/* Hand a job to the pool. Returns 0, or -1 when it has no room
 * (tq_pool_idle() == 0). */
int tq_pool_submit(tq_pool *p, const tq_pool_job *job);
/* Jobs the pool takes now: idle executors plus free backlog places. */
int tq_pool_idle(const tq_pool *p);
/* Jobs the pool holds (running, or waiting in its backlog). */
int tq_pool_running(const tq_pool *p);
/* Let the pool hold up to `per_executor` jobs per executor beyond the ones
 * running, started in submission order as executors free up. For short
 * tasks this saves a hand-off (a wake-up of the executor and one of the
 * loop) per task; the price is that a queued job waits behind a running one
 * even if another executor frees up first, so callers enable it only while
 * tasks are short. 0 (the default) hands jobs to idle executors only.
 * A job's time limits count from the moment it really starts. */
void tq_pool_set_backlog(tq_pool *p, int per_executor);
/* Take back every job that has not started yet, oldest first: fn(arg,
 * cookie) is called for each, and `done` never will be. Returns how many. */
int tq_pool_reclaim(tq_pool *p, void (*fn)(void *arg, void *cookie), void *arg);
/* Tell running tasks the worker is stopping (taskq_should_stop() turns 1). */
void tq_pool_stopping(tq_pool *p);
/* Cold shutdown: kill running executors now. Each running job completes
 * with TQ_OUT_ABORTED through `done` (synchronously, before this returns). */
void tq_pool_kill(tq_pool *p);
/* Stop and reap every executor; running jobs are ABORTED as with kill.
 * Accepts NULL. */
void tq_pool_free(tq_pool *p);

#endif
