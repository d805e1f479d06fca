/* tq_registry: the table of task functions a worker can run. Filled at
 * start-up by the built-in tasks and by task libraries (--load), read-only
 * afterwards (so the pools may share it without locks). */
#ifndef TQ_REGISTRY_H
#define TQ_REGISTRY_H

#include <stddef.h>

#include "taskq_worker.h"

typedef struct tq_task_def {
    char *name;
    taskq_task_fn fn;
    taskq_task_opts opts; /* strings and retry_on owned by the registry */
    struct tq_sig *sig;   /* parsed opts.signature, NULL when none */
} tq_task_def;

typedef struct taskq_registry tq_registry;

tq_registry *tq_registry_new(void);
void tq_registry_free(tq_registry *reg);
/* NULL when no task has this name. */
const tq_task_def *tq_registry_find(const tq_registry *reg, const char *name);
size_t tq_registry_count(const tq_registry *reg);
const tq_task_def *tq_registry_at(const tq_registry *reg, size_t i);
/* dlopen a task library and call its taskq_tasks_init. Returns 0 or -1 with
 * a reason in err. The handle stays open for the registry's lifetime. */
int tq_registry_load(tq_registry *reg, const char *path, char *err, size_t errlen);
/* Why the last taskq_register call failed ("" when it did not). */
const char *tq_registry_error(const tq_registry *reg);
/* Whether an error type is retried under the task's retry_on list. */
int tq_registry_retries_type(const tq_task_def *def, const char *type);

/* The built-in tasks: echo, add, sleep, fail, crash, noop, progress, hang
 * (tq_builtin.c). */
void tq_builtin_register(tq_registry *reg);

#endif
