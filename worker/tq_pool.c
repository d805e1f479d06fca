/* tq_pool: the executor pool's public face. It checks the configuration and
 * dispatches to one of two implementations through a small table of
 * functions (tq_pool_impl.h):
 *   tq_pool_prefork.c  long-lived forked children, one job each at a time
 *                      (more may wait in a child's socket: the backlog);
 *                      crash isolation, hard time limits, per-task CPU and
 *                      peak RSS, recycling by task count or memory.
 *   tq_pool_threads.c  threads in the worker process. No hard time limit (a
 *                      thread cannot be killed safely: a job with one logs a
 *                      warning once and runs with its soft limit only), and a
 *                      crashing task takes the whole worker down. Cold
 *                      shutdown cannot stop a thread either: tq_pool_kill
 *                      raises the stop flag and waits a bounded time.
 * Both deliver `done` exactly once per submitted job, on the loop thread. */
#include "tq_pool.h"

#include <stdio.h>
#include <stdlib.h>

#include "common/tq_util.h"
#include "tq_pool_impl.h"

struct tq_pool {
    const tq_pool_ops *ops;
    void *impl;
};

tq_pool *tq_pool_new(struct event_base *base, const tq_pool_config *cfg, char *err, size_t errlen)
{
    tq_pool *p = NULL;
    void *impl = NULL;
    const tq_pool_ops *ops;

    if (!base || !cfg || !cfg->reg || !cfg->done || cfg->concurrency < 1 ||
        cfg->max_tasks_per_child < 0 || cfg->max_memory_per_child_kb < 0) {
        snprintf(err, errlen,
                 "invalid pool configuration (need a base, a registry, a done "
                 "callback, concurrency >= 1 and non-negative limits)");
        goto out;
    }
    switch (cfg->kind) {
    case TQ_POOL_PREFORK:
        ops = &tq_pool_prefork_ops;
        impl = tq_pool_prefork_new(base, cfg, err, errlen);
        break;
    case TQ_POOL_THREADS:
        ops = &tq_pool_threads_ops;
        impl = tq_pool_threads_new(base, cfg, err, errlen);
        break;
    default: snprintf(err, errlen, "unknown pool kind %d", (int)cfg->kind); goto out;
    }
    if (!impl)
        goto out;
    p = tq_xcalloc(1, sizeof(*p));
    p->ops = ops;
    p->impl = impl;
out:
    return p;
}

int tq_pool_submit(tq_pool *p, const tq_pool_job *job)
{
    if (!p || !job || (!job->msg && job->msglen))
        return -1;
    return p->ops->submit(p->impl, job);
}

int tq_pool_idle(const tq_pool *p)
{
    return p ? p->ops->idle(p->impl) : 0;
}

int tq_pool_running(const tq_pool *p)
{
    return p ? p->ops->running(p->impl) : 0;
}

void tq_pool_set_backlog(tq_pool *p, int per_executor)
{
    if (p && per_executor >= 0)
        p->ops->set_backlog(p->impl, per_executor);
}

int tq_pool_reclaim(tq_pool *p, void (*fn)(void *arg, void *cookie), void *arg)
{
    return p && fn ? p->ops->reclaim(p->impl, fn, arg) : 0;
}

void tq_pool_stopping(tq_pool *p)
{
    if (p)
        p->ops->stopping(p->impl);
}

void tq_pool_kill(tq_pool *p)
{
    if (p)
        p->ops->kill(p->impl);
}

void tq_pool_free(tq_pool *p)
{
    if (!p)
        return;
    p->ops->free(p->impl);
    free(p);
}
