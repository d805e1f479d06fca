/* client_basic: submit one task with libtaskq and wait for its result.
 *
 * Build (the test suite does this as build/examples/client_basic):
 *   cc -std=c11 -o client_basic docs/examples/client_basic.c \
 *      $(pkg-config --cflags --libs taskq)
 * Run, with a worker consuming the same Redis:
 *   taskq-worker &
 *   TASKQ_REDIS_URL=redis://127.0.0.1:6379/0 ./client_basic
 * It prints "add(2, 3) = 5" and exits 0, or prints the error and exits 1.
 * TASKQ_PREFIX, when set, selects the key prefix (the library reads it). */
#include <stdio.h>

#include "taskq.h"

int main(void)
{
    int status = 1;
    taskq_client *client = NULL;
    taskq_task *task = NULL;
    taskq_result *result = NULL;
    char id[TASKQ_ID_SIZE];

    /* NULL: the URL comes from $TASKQ_REDIS_URL (or the local default). A
     * client is returned even if Redis is down; the error tells. */
    client = taskq_client_new(NULL);
    if (!client) {
        fprintf(stderr, "client_basic: out of memory\n");
        goto out;
    }
    if (taskq_client_error(client) != TASKQ_OK) {
        fprintf(stderr, "client_basic: %s\n", taskq_client_errstr(client));
        goto out;
    }

    /* add(2, 3): every argument is a JSON literal. */
    task = taskq_task_new("add");
    if (!task) {
        fprintf(stderr, "client_basic: out of memory\n");
        goto out;
    }
    if (taskq_task_arg_json(task, "2") != TASKQ_OK || taskq_task_arg_json(task, "3") != TASKQ_OK) {
        fprintf(stderr, "client_basic: %s\n", taskq_task_errstr(task));
        goto out;
    }
    if (taskq_submit(client, task, id) != TASKQ_OK) {
        fprintf(stderr, "client_basic: submit: %s\n", taskq_client_errstr(client));
        goto out;
    }

    /* Block in Redis for at most 10 s. On a time-out, result still holds the
     * latest state (PENDING or STARTED): the task is not cancelled. */
    int rc = taskq_result_wait(client, NULL, id, 10.0, &result);
    if (rc == TASKQ_ETIMEDOUT) {
        fprintf(stderr, "client_basic: task %s not finished after 10 s (state %s)\n", id,
                taskq_state_name(taskq_result_state(result)));
        goto out;
    }
    if (rc != TASKQ_OK) {
        fprintf(stderr, "client_basic: wait: %s\n", taskq_client_errstr(client));
        goto out;
    }

    if (taskq_result_state(result) == TASKQ_SUCCESS) {
        printf("add(2, 3) = %s\n", taskq_result_value(result));
        status = 0;
    } else {
        fprintf(stderr, "client_basic: task %s %s: %s: %s\n", id,
                taskq_state_name(taskq_result_state(result)), taskq_result_error_type(result),
                taskq_result_error_message(result));
    }

out:
    taskq_result_free(result);
    taskq_task_free(task);
    taskq_client_free(client);
    return status;
}
