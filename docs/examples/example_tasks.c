/* example_tasks: a complete task library for taskq-worker.
 *
 * Build (the Makefile does this as build/libexample_tasks.so):
 *   cc -std=c11 -fPIC -shared -fvisibility=hidden -Iworker \
 *      -o libexample_tasks.so docs/examples/example_tasks.c
 * Run:
 *   taskq-worker --load ./libexample_tasks.so
 *   taskq-submit example.reverse '"hello"'
 *
 * A library exports exactly one symbol, taskq_tasks_init, which registers
 * its tasks by name. Task functions get their arguments as borrowed jansson
 * values, must check every type (arguments come from the network), and
 * either set *result to a new reference and return 0, or return
 * taskq_fail()/taskq_retry(). In the threads pool several tasks run at once,
 * so keep no unsynchronised global state. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "taskq_worker.h"

/* example.reverse("text") -> "txet". Reverses code points, not bytes, so
 * the result is still valid UTF-8. */
static int reverse(taskq_ctx *ctx, json_t *args, json_t *kwargs, json_t **result)
{
    (void)kwargs;
    json_t *a = json_array_get(args, 0);
    if (json_array_size(args) != 1 || !json_is_string(a))
        return taskq_fail(ctx, "TypeError", "example.reverse takes one string argument");
    const char *s = json_string_value(a);
    size_t n = json_string_length(a);
    char *out = malloc(n + 1);
    if (!out)
        return taskq_fail(ctx, "MemoryError", "example.reverse: out of memory");
    /* Walk code points from the front, copying each to the mirrored end. */
    size_t i = 0;
    while (i < n) {
        size_t len = 1;
        while (i + len < n && ((unsigned char)s[i + len] & 0xC0) == 0x80)
            len++;
        memcpy(out + (n - i - len), s + i, len);
        i += len;
    }
    out[n] = '\0';
    *result = json_stringn(out, n);
    free(out);
    return *result ? 0 : taskq_fail(ctx, "ValueError", "example.reverse: not valid UTF-8");
}

/* example.word_count("some text") -> {"words": 2, "chars": 9} */
static int word_count(taskq_ctx *ctx, json_t *args, json_t *kwargs, json_t **result)
{
    (void)kwargs;
    json_t *a = json_array_get(args, 0);
    if (json_array_size(args) != 1 || !json_is_string(a))
        return taskq_fail(ctx, "TypeError", "example.word_count takes one string argument");
    const char *s = json_string_value(a);
    size_t n = json_string_length(a), words = 0;
    int in_word = 0;
    for (size_t i = 0; i < n; i++) {
        int space = isspace((unsigned char)s[i]);
        if (!space && !in_word)
            words++;
        in_word = !space;
    }
    *result = json_pack("{s:I, s:I}", "words", (json_int_t)words, "chars", (json_int_t)n);
    return 0;
}

TASKQ_WORKER_EXPORT int taskq_tasks_init(taskq_registry *reg)
{
    static const char *const retry_on[] = {"MemoryError", NULL};
    taskq_task_opts opts;

    memset(&opts, 0, sizeof(opts));
    opts.doc = "reverse a string";
    opts.retry_on = retry_on;
    if (taskq_register(reg, "example.reverse", reverse, &opts) != 0)
        return 1;
    memset(&opts, 0, sizeof(opts));
    opts.doc = "count the words and bytes of a string";
    opts.has_max_retries = 1;
    opts.max_retries = 0;
    if (taskq_register(reg, "example.word_count", word_count, &opts) != 0)
        return 1;
    return 0;
}
