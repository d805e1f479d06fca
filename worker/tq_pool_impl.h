/* tq_pool_impl: the private seam between tq_pool.c (the public interface,
 * argument checks) and its two implementations, tq_pool_prefork.c and
 * tq_pool_threads.c. Not installed, not for other modules. */
#ifndef TQ_POOL_IMPL_H
#define TQ_POOL_IMPL_H

#include "tq_pool.h"

/* One implementation. `impl` is the object its constructor returned. */
typedef struct tq_pool_ops {
    const char *name;
    int (*submit)(void *impl, const tq_pool_job *job);
    int (*idle)(const void *impl);
    int (*running)(const void *impl);
    void (*set_backlog)(void *impl, int per_executor);
    int (*reclaim)(void *impl, void (*fn)(void *arg, void *cookie), void *arg);
    void (*stopping)(void *impl);
    void (*kill)(void *impl);
    void (*free)(void *impl);
} tq_pool_ops;

/* Constructors: the implementation object, or NULL with a reason in err.
 * cfg has been checked by tq_pool_new; it and everything it points to are
 * borrowed for the pool's lifetime (the struct itself is copied). */
void *tq_pool_prefork_new(struct event_base *base, const tq_pool_config *cfg, char *err,
                          size_t errlen);
void *tq_pool_threads_new(struct event_base *base, const tq_pool_config *cfg, char *err,
                          size_t errlen);

extern const tq_pool_ops tq_pool_prefork_ops;
extern const tq_pool_ops tq_pool_threads_ops;

#endif
