/* tq_sconn: blocking Redis connections (hiredis sync API) for libtaskq and
 * the CLI: connect from a parsed URL with a time-out, authenticate, select
 * the database, and run tq_cmd commands (one or pipelined), falling back
 * from EVALSHA to EVAL when Redis answers NOSCRIPT (after a restart). */
#ifndef TQ_SCONN_H
#define TQ_SCONN_H

#include <hiredis/hiredis.h>
#include <stddef.h>

#include "common/tq_url.h"
#include "tq_cmd.h"

/* Connect, AUTH and SELECT. Returns a context or NULL with a reason in err
 * that names the (masked) address. */
redisContext *tq_sconn_connect(const tq_url *u, double timeout_s, char *err, size_t errlen);

/* Run one command; NULL when the connection failed (c->err/errstr set).
 * A script answered with NOSCRIPT is re-sent once as EVAL. */
redisReply *tq_sconn_run(redisContext *c, tq_cmd *cmd);

/* Pipeline n commands in one round trip; replies[i] receives each reply (the
 * caller frees them). Returns 0, or -1 when the connection failed (replies
 * not received are NULL). */
int tq_sconn_pipeline(redisContext *c, tq_cmd *cmds, size_t n, redisReply **replies);

/* The same in two halves, so the caller can build the next command while
 * Redis already runs the previous one: tq_sconn_send queues cmd and writes
 * it out at once; tq_sconn_collect then reads the replies of the n commands
 * sent since (the NOSCRIPT fallback included). cmds must stay valid until
 * then. Both return 0 or -1 as tq_sconn_pipeline. */
int tq_sconn_send(redisContext *c, const tq_cmd *cmd);
int tq_sconn_collect(redisContext *c, tq_cmd *cmds, size_t n, redisReply **replies);

/* 1 when the reply is an error starting with `prefix` ("NOSCRIPT"). */
int tq_reply_is_error(const redisReply *r, const char *prefix);

#endif
