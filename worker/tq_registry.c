/* tq_registry: the worker's table of task functions, keyed by name.
 *
 * Invariants:
 *  - Filled at start-up (built-ins, then task libraries), read-only once the
 *    pools start, so executors share it without locks.
 *  - Entries are individually allocated and never move: a tq_task_def pointer
 *    from tq_registry_find() stays valid for the registry's lifetime.
 *  - The registry owns copies of every string the caller passed (name, doc,
 *    retry_on), never the caller's pointers.
 *  - A message's task name is only ever compared against this table; the one
 *    symbol looked up in a loaded library is the constant "taskq_tasks_init".
 * Lookups are linear: a worker registers tens of tasks, not thousands. */
#include "tq_registry.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/tq_sig.h"
#include "common/tq_util.h"

/* The def is the first member so a const tq_task_def * handed out is also the
 * entry; the non-const copies of the owned strings live beside it so freeing
 * them needs no cast away from const. */
typedef struct entry {
    tq_task_def def;
    char *doc;
    char *signature;
    char **retry_on;
} entry;

struct taskq_registry {
    entry **entries;
    size_t n, cap;
    void **handles; /* dlopen handles, closed in tq_registry_free */
    size_t nhandles;
    char last_err[400]; /* why the last taskq_register call failed */
};

tq_registry *tq_registry_new(void)
{
    return tq_xcalloc(1, sizeof(tq_registry));
}

static void entry_free(entry *e)
{
    if (!e)
        return;
    free(e->def.name);
    free(e->doc);
    free(e->signature);
    tq_sig_free(e->def.sig);
    if (e->retry_on) {
        for (size_t i = 0; e->retry_on[i]; i++)
            free(e->retry_on[i]);
        free(e->retry_on);
    }
    free(e);
}

void tq_registry_free(tq_registry *reg)
{
    if (!reg)
        return;
    for (size_t i = 0; i < reg->n; i++)
        entry_free(reg->entries[i]);
    free(reg->entries);
    /* Entries point into the libraries: close them only after the table is gone. */
    for (size_t i = 0; i < reg->nhandles; i++)
        dlclose(reg->handles[i]);
    free(reg->handles);
    free(reg);
}

const tq_task_def *tq_registry_find(const tq_registry *reg, const char *name)
{
    if (!reg || !name)
        return NULL;
    for (size_t i = 0; i < reg->n; i++) {
        if (strcmp(reg->entries[i]->def.name, name) == 0)
            return &reg->entries[i]->def;
    }
    return NULL;
}

size_t tq_registry_count(const tq_registry *reg)
{
    return reg ? reg->n : 0;
}

const tq_task_def *tq_registry_at(const tq_registry *reg, size_t i)
{
    if (!reg || i >= reg->n)
        return NULL;
    return &reg->entries[i]->def;
}

int taskq_register(taskq_registry *reg, const char *name, taskq_task_fn fn,
                   const taskq_task_opts *opts)
{
    entry *e = NULL;
    int rc = -1;

    if (!reg)
        return -1;
    if (!name || !tq_valid_task_name(name)) {
        snprintf(reg->last_err, sizeof(reg->last_err),
                 "invalid task name (printable ASCII without spaces, 1..%d chars)", TQ_TASK_MAX);
        goto out;
    }
    if (!fn) {
        snprintf(reg->last_err, sizeof(reg->last_err), "task '%.128s' has no function", name);
        goto out;
    }
    if (tq_registry_find(reg, name)) {
        snprintf(reg->last_err, sizeof(reg->last_err), "duplicate task name '%.128s'", name);
        goto out;
    }
    e = tq_xcalloc(1, sizeof(*e));
    e->def.name = tq_xstrdup(name);
    e->def.fn = fn;
    if (opts) {
        e->def.opts = *opts;
        /* Never keep the caller's pointers: a library may pass stack strings. */
        e->def.opts.doc = NULL;
        e->def.opts.retry_on = NULL;
        e->def.opts.signature = NULL;
        if (opts->signature) {
            char serr[256];
            e->def.sig = tq_sig_parse(opts->signature, serr, sizeof(serr));
            if (!e->def.sig) {
                snprintf(reg->last_err, sizeof(reg->last_err),
                         "task '%.64s': bad signature: %.250s", name, serr);
                goto out;
            }
            e->signature = tq_xstrdup(opts->signature);
            e->def.opts.signature = e->signature;
        }
        if (opts->doc) {
            e->doc = tq_xstrdup(opts->doc);
            e->def.opts.doc = e->doc;
        }
        if (opts->retry_on) {
            size_t k = 0;
            while (opts->retry_on[k])
                k++;
            e->retry_on = tq_xcalloc(k + 1, sizeof(char *));
            for (size_t i = 0; i < k; i++)
                e->retry_on[i] = tq_xstrdup(opts->retry_on[i]);
            e->def.opts.retry_on = (const char *const *)e->retry_on;
        }
        if (!e->def.opts.has_max_retries)
            e->def.opts.max_retries = -1;
    } else {
        e->def.opts.max_retries = -1;
    }
    if (reg->n == reg->cap) {
        reg->cap = reg->cap ? reg->cap * 2 : 16;
        reg->entries = tq_xrealloc(reg->entries, reg->cap * sizeof(*reg->entries));
    }
    reg->entries[reg->n++] = e;
    e = NULL;
    reg->last_err[0] = '\0';
    rc = 0;
out:
    entry_free(e);
    return rc;
}

const char *tq_registry_error(const tq_registry *reg)
{
    return reg->last_err;
}

int tq_registry_retries_type(const tq_task_def *def, const char *type)
{
    if (!def || !def->opts.retry_on)
        return 1;
    if (!type)
        return 0;
    for (size_t i = 0; def->opts.retry_on[i]; i++) {
        if (strcmp(def->opts.retry_on[i], type) == 0)
            return 1;
    }
    return 0;
}

typedef int (*tasks_init_fn)(taskq_registry *reg);

int tq_registry_load(tq_registry *reg, const char *path, char *err, size_t errlen)
{
    void *h = NULL;
    int rc = -1;

    if (!path || !*path) {
        snprintf(err, errlen, "empty task library path");
        goto out;
    }
    h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        snprintf(err, errlen, "cannot load task library: %s", why ? why : path);
        goto out;
    }
    dlerror(); /* clear, so a NULL from dlsym can be told from an error */
    /* The entry point's name is a constant: nothing from a message ever
     * reaches dlsym. */
    void *sym = dlsym(h, "taskq_tasks_init");
    if (!sym) {
        snprintf(err, errlen, "no taskq_tasks_init in %s", path);
        goto out;
    }
    /* ISO C has no object-to-function pointer conversion; POSIX guarantees
     * the representations match, and memcpy says so without a warning. */
    tasks_init_fn init;
    memcpy(&init, &sym, sizeof(init));

    /* Keep the handle before calling in: even a failing init may already
     * have registered functions that live in the library. */
    reg->handles = tq_xrealloc(reg->handles, (reg->nhandles + 1) * sizeof(*reg->handles));
    reg->handles[reg->nhandles++] = h;
    h = NULL;
    reg->last_err[0] = '\0';
    int r = init(reg);
    if (r != 0) {
        if (reg->last_err[0])
            snprintf(err, errlen,
                     "taskq_tasks_init returned %d in %s (last registration error: %s)", r, path,
                     reg->last_err);
        else
            snprintf(err, errlen, "taskq_tasks_init returned %d in %s", r, path);
        goto out;
    }
    rc = 0;
out:
    if (h)
        dlclose(h);
    return rc;
}
