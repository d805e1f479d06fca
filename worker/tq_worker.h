/* tq_worker: the taskq-worker daemon's core. One libevent loop owns all
 * Redis I/O (two hiredis async links: commands, and pub/sub wake-ups) and a
 * pool (tq_pool) runs task functions off the loop. The protocol is
 * docs/PROTOCOL.md; the guarantees are docs/RELIABILITY.md. */
#ifndef TQ_WORKER_H
#define TQ_WORKER_H

#include <stdint.h>

#include "common/tq_log.h"
#include "common/tq_msg.h"
#include "common/tq_url.h"
#include "tq_pool.h"
#include "tq_registry.h"

typedef struct tq_worker_config {
    tq_url url; /* owned by the caller */
    char prefix[65];
    char **queues; /* priority order; borrowed */
    int nqueues;
    tq_pool_kind pool;
    int concurrency;
    int prefetch;         /* tasks fetched beyond the idle executors */
    int prefetch_auto;    /* grow the window on deep queues of short tasks */
    int64_t lease_ms;     /* task lease; a lost worker's tasks return after this */
    int64_t heartbeat_ms; /* heartbeat, lease extension and recovery period */
    int64_t result_ttl_ms;
    int64_t shutdown_timeout_ms;
    long max_tasks_per_child;
    long max_memory_per_child_kb;
    int default_retries; /* when neither message nor task says */
    int64_t backoff_base_ms, backoff_cap_ms;
    int64_t soft_limit_ms, hard_limit_ms; /* defaults; 0: none */
    int max_crashes;                      /* executor deaths before a task is a poison pill */
    int max_lost;                         /* worker losses before a task is a poison pill */
    long long dead_max;
    int64_t dead_max_age_ms;
    tq_msg_limits limits;
    const struct tq_keyring *keys; /* HMAC keys; NULL/empty: signatures not required */
    const char *health_file;       /* touched after each heartbeat Redis took; may be NULL */
    const tq_logger *log;
} tq_worker_config;

typedef struct tq_worker tq_worker;

/* NULL with a reason in err when the pool cannot start. */
tq_worker *tq_worker_new(const tq_worker_config *cfg, const tq_registry *reg, char *err,
                         size_t errlen);
/* Run until shut down by SIGTERM/SIGINT. Returns the process exit status. */
int tq_worker_run(tq_worker *w);
void tq_worker_free(tq_worker *w);
const char *tq_worker_id(const tq_worker *w);

#endif
