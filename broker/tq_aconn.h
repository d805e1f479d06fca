/* tq_aconn: one asynchronous Redis connection on a libevent loop (hiredis
 * async API) that never gives up: it authenticates, selects the database,
 * loads the scripts, and reconnects with capped exponential backoff and
 * jitter whenever the link drops. hiredis 0.14 has no async time-outs, so a
 * libevent watchdog drops a connection whose replies stop coming.
 *
 * Reply callbacks get reply == NULL when the connection is lost before the
 * reply arrived; the caller decides whether to send the command again. */
#ifndef TQ_ACONN_H
#define TQ_ACONN_H

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "common/tq_log.h"
#include "common/tq_url.h"
#include "tq_cmd.h"

typedef struct tq_aconn tq_aconn;

/* reply is borrowed: copy what you need. NULL: connection lost. */
typedef void (*tq_aconn_reply_fn)(tq_aconn *c, redisReply *reply, void *privdata);
/* up = 1 when connected and ready, 0 when the link dropped. */
typedef void (*tq_aconn_event_fn)(tq_aconn *c, int up, void *arg);

typedef struct tq_aconn_config {
    const tq_url *url;          /* borrowed; must outlive the connection */
    const tq_logger *log;       /* borrowed */
    const char *name;           /* "commands", "wake" (copied) */
    int64_t connect_timeout_ms; /* default 5000 */
    int64_t reply_timeout_ms;   /* watchdog; 0: off */
    int64_t backoff_base_ms;    /* default 100 */
    int64_t backoff_cap_ms;     /* default 5000 */
    int load_scripts;           /* 1: SCRIPT LOAD every script after connecting */
    tq_aconn_event_fn on_event;
    void *arg;
} tq_aconn_config;

tq_aconn *tq_aconn_new(struct event_base *base, const tq_aconn_config *cfg);
/* Begin connecting (and keep reconnecting until tq_aconn_free). */
void tq_aconn_start(tq_aconn *c);
int tq_aconn_up(const tq_aconn *c);
/* Commands sent and not answered yet. */
int tq_aconn_pending(const tq_aconn *c);
/* Send a command. Returns 0, or -1 when not connected (fn is not called). */
int tq_aconn_send(tq_aconn *c, const tq_cmd *cmd, tq_aconn_reply_fn fn, void *privdata);
/* SUBSCRIBE to channels; fn is called for every reply on them (subscribe
 * confirmations and ["message", channel, payload] arrays). */
int tq_aconn_subscribe(tq_aconn *c, const char *const *channels, int n, tq_aconn_reply_fn fn,
                       void *privdata);
/* Drop the link now (it reconnects). Safe from within a reply callback. */
void tq_aconn_drop(tq_aconn *c, const char *why);
/* Close for good: pending callbacks run with NULL. Accepts NULL. */
void tq_aconn_free(tq_aconn *c);

#endif
