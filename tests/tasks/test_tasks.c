/* libtest_tasks.so: task functions the integration tests load into a real
 * taskq-worker with --load, for behaviour the built-in tasks do not have. */
#include <jansson.h>
#include <string.h>

#include "taskq_worker.h"

/* t.mutate: changes its arguments (a task may), fails its first attempt
 * and returns what it was given on the next. A retry must run with the
 * arguments as submitted, so the result has exactly one "added". */
static int t_mutate(taskq_ctx *ctx, json_t *args, json_t *kwargs, json_t **result)
{
    json_array_append_new(args, json_string("added"));
    json_object_set_new(kwargs, "added", json_true());
    if (taskq_ctx_attempt(ctx) == 1)
        return taskq_fail(ctx, "TaskError", "first attempt fails");
    *result = json_pack("[O,O]", args, kwargs);
    return 0;
}

TASKQ_WORKER_EXPORT int taskq_tasks_init(taskq_registry *reg)
{
    taskq_task_opts opts;
    memset(&opts, 0, sizeof(opts));
    opts.doc = "change the arguments, fail once, then return them";
    return taskq_register(reg, "t.mutate", t_mutate, &opts) == 0 ? 0 : 1;
}
