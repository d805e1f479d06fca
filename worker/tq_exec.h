/* tq_exec: run one attempt of a task in the current process or thread:
 * decode the raw message (or take the caller's decode), look the task name up in the registry
 * (never anywhere else), call the function, and describe what happened in a tq_outcome. Both pools
 * use this; it knows nothing of Redis. */
#ifndef TQ_EXEC_H
#define TQ_EXEC_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "common/tq_msg.h"
#include "tq_registry.h"

typedef enum {
    TQ_OUT_SUCCESS = 0,
    TQ_OUT_FAILURE = 1, /* the task failed (error type + message); policy decides on retry */
    TQ_OUT_RETRY = 2,   /* the task asked for a retry (retry_countdown_ms) */
    TQ_OUT_CRASH = 3,   /* the executor died (signal) or was killed at the hard limit */
    TQ_OUT_ABORTED = 4, /* cold shutdown killed it: requeue, not an attempt */
} tq_out_status;

typedef struct tq_outcome {
    tq_out_status status;
    char *result;               /* SUCCESS: JSON text of the return value (malloc'd) */
    char err_type[64];          /* FAILURE, RETRY, CRASH */
    char *err_message;          /* malloc'd, may be NULL */
    int no_retry;               /* 1: never retry (bad arguments, unregistered task) */
    int64_t retry_countdown_ms; /* RETRY: requested countdown, -1: policy */
    int signal;                 /* CRASH: the signal that killed the executor, 0 if none */
    int time_limit;             /* CRASH: 1 when killed at the hard time limit */
    double runtime_ms;          /* wall time of the attempt */
    double cpu_ms;              /* CPU time, -1 when unknown */
    long maxrss_kb;             /* peak RSS of the executor, -1 when unknown */
} tq_outcome;

/* Signals from outside the task (soft time limit, shutdown), read by
 * taskq_should_stop(). Writers: the pool (thread) or a signal handler. */
typedef struct tq_exec_flags {
    volatile sig_atomic_t soft_limit; /* soft time limit reached */
    volatile sig_atomic_t stopping;   /* worker shutting down */
} tq_exec_flags;

/* Progress sink: called from the task's thread/process. */
typedef void (*tq_exec_progress_fn)(void *arg, double fraction, const char *message);

typedef struct tq_exec_env {
    const tq_registry *reg;
    const tq_msg_limits *limits;
    tq_exec_flags *flags;         /* may be NULL */
    tq_exec_progress_fn progress; /* may be NULL */
    void *progress_arg;
    int measure_thread_cpu; /* 1: RUSAGE_THREAD, 0: RUSAGE_SELF deltas */
} tq_exec_env;

void tq_outcome_init(tq_outcome *o);
/* Free the outcome's heap fields and re-initialise it. */
void tq_outcome_clear(tq_outcome *o);
void tq_outcome_set_error(tq_outcome *o, tq_out_status st, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Run the task described by msg[0..len). Always fills *out. */
void tq_exec_run(const tq_exec_env *env, const char *msg, size_t len, tq_outcome *out);
/* The same for a message the caller decoded (with the same limits) and
 * keeps. The task gets the message's own arguments and may change them:
 * the caller does not read args or kwargs until this returns, and decodes
 * the bytes again before it sends the message anew (a retry carries the
 * arguments as submitted). */
void tq_exec_run_msg(const tq_exec_env *env, const tq_msg *m, tq_outcome *out);

/* Outcome <-> compact binary-safe text, for the prefork pipe. Returns a
 * malloc'd buffer / 0 on success. */
char *tq_outcome_pack(const tq_outcome *o, size_t *len);
int tq_outcome_unpack(const char *buf, size_t len, tq_outcome *o);

#endif
