/* tq_sconn: blocking connections. Every error message carries the masked
 * address (tq_url_mask) so a user sees which Redis could not be reached, and
 * never the password. */
#include "tq_sconn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "common/tq_util.h"

static void describe(const tq_url *u, char *buf, size_t len)
{
    tq_url_mask(u, buf, len);
}

redisContext *tq_sconn_connect(const tq_url *u, double timeout_s, char *err, size_t errlen)
{
    char where[320];
    struct timeval tv = {(time_t)timeout_s,
                         (suseconds_t)((timeout_s - (double)(time_t)timeout_s) * 1e6)};
    redisContext *c;
    redisReply *r = NULL;

    describe(u, where, sizeof(where));
    if (u->is_unix)
        c = redisConnectUnixWithTimeout(u->path, tv);
    else
        c = redisConnectWithTimeout(u->host, u->port, tv);
    if (!c) {
        snprintf(err, errlen, "cannot reach Redis at %s: out of memory", where);
        return NULL;
    }
    if (c->err) {
        snprintf(err, errlen, "cannot reach Redis at %s: %s", where, c->errstr);
        goto fail;
    }
    /* TCP only: on a Unix socket SO_KEEPALIVE fails and would leave the
     * context in an error state. */
    if (!u->is_unix)
        redisEnableKeepAlive(c);
    if (u->password) {
        if (u->user)
            r = redisCommand(c, "AUTH %s %s", u->user, u->password);
        else
            r = redisCommand(c, "AUTH %s", u->password);
        if (!r) {
            snprintf(err, errlen, "Redis at %s: connection lost during AUTH: %s", where, c->errstr);
            goto fail;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            snprintf(err, errlen, "Redis at %s refused authentication: %s", where, r->str);
            goto fail;
        }
        freeReplyObject(r);
        r = NULL;
    }
    if (u->db != 0) {
        r = redisCommand(c, "SELECT %d", u->db);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            snprintf(err, errlen, "Redis at %s: cannot select database %d: %s", where, u->db,
                     r ? r->str : c->errstr);
            goto fail;
        }
        freeReplyObject(r);
        r = NULL;
    }
    return c;
fail:
    freeReplyObject(r);
    redisFree(c);
    return NULL;
}

int tq_reply_is_error(const redisReply *r, const char *prefix)
{
    return r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, prefix, strlen(prefix)) == 0;
}

/* Format cmd as RESP ourselves (one pass of memcpy; hiredis's argv
 * formatting goes through sdscatfmt per argument, a hot spot of bulk
 * enqueue) and queue it on the context. */
static int append(redisContext *c, const tq_cmd *cmd)
{
    size_t total = 1 + 21 + 2;
    for (int i = 0; i < cmd->argc; i++)
        total += 1 + 21 + 2 + cmd->argvlen[i] + 2;
    char *buf = tq_xmalloc(total), *o = buf;
    *o++ = '*';
    o += tq_fmt_ll(o, cmd->argc);
    *o++ = '\r';
    *o++ = '\n';
    for (int i = 0; i < cmd->argc; i++) {
        *o++ = '$';
        o += tq_fmt_ll(o, (long long)cmd->argvlen[i]);
        *o++ = '\r';
        *o++ = '\n';
        memcpy(o, cmd->argv[i], cmd->argvlen[i]);
        o += cmd->argvlen[i];
        *o++ = '\r';
        *o++ = '\n';
    }
    int rc = redisAppendFormattedCommand(c, buf, (size_t)(o - buf));
    free(buf);
    return rc;
}

redisReply *tq_sconn_run(redisContext *c, tq_cmd *cmd)
{
    redisReply *r = NULL;
    if (tq_sconn_pipeline(c, cmd, 1, &r) < 0)
        return NULL;
    return r;
}

int tq_sconn_pipeline(redisContext *c, tq_cmd *cmds, size_t n, redisReply **replies)
{
    for (size_t i = 0; i < n; i++) {
        replies[i] = NULL;
        if (append(c, &cmds[i]) != REDIS_OK)
            return -1;
    }
    return tq_sconn_collect(c, cmds, n, replies);
}

int tq_sconn_send(redisContext *c, const tq_cmd *cmd)
{
    int done = 0;
    if (append(c, cmd) != REDIS_OK)
        return -1;
    while (!done)
        if (redisBufferWrite(c, &done) != REDIS_OK)
            return -1;
    return 0;
}

int tq_sconn_collect(redisContext *c, tq_cmd *cmds, size_t n, redisReply **replies)
{
    size_t i;
    int again = 0;
    for (i = 0; i < n; i++)
        replies[i] = NULL;
    for (i = 0; i < n; i++) {
        void *r;
        if (redisGetReply(c, &r) != REDIS_OK)
            return -1;
        replies[i] = r;
        if (tq_reply_is_error(replies[i], "NOSCRIPT"))
            again = 1;
    }
    if (!again)
        return 0;
    /* Scripts were flushed (Redis restarted): resend those as EVAL, which
     * also caches them for the EVALSHA calls that follow. */
    for (i = 0; i < n; i++) {
        if (!tq_reply_is_error(replies[i], "NOSCRIPT"))
            continue;
        freeReplyObject(replies[i]);
        replies[i] = NULL;
        tq_cmd_to_eval(&cmds[i]);
        void *r;
        if (append(c, &cmds[i]) != REDIS_OK || redisGetReply(c, &r) != REDIS_OK)
            return -1;
        replies[i] = r;
    }
    return 0;
}
