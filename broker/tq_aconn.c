/* tq_aconn: the worker's Redis links. The hiredis pitfalls this file exists
 * to contain (../shared/NOTES-hiredis.md): a refused connect reports through
 * the connect callback only and the context is freed right after; contexts
 * must never be freed inside their own callbacks (teardown is deferred to
 * the loop); redisAsyncFree runs every pending callback with NULL. */
#include "tq_aconn.h"

#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <stdlib.h>
#include <string.h>

#include "common/tq_util.h"
#include "tq_scripts.h"

struct tq_aconn {
    struct event_base *base;
    tq_aconn_config cfg;
    char *name;
    char where[320];
    redisAsyncContext *ac; /* NULL while disconnected */
    int up;
    int closing;
    int attempt; /* consecutive failed connects */
    int pending;
    int64_t last_reply_ms; /* monotonic */
    struct event *retry_ev;
    struct event *connect_ev; /* connect time-out */
    struct event *watch_ev;   /* reply watchdog */
    struct event *drop_ev;    /* deferred drop */
    char drop_why[128];
};

typedef struct pending_cb {
    tq_aconn *c;
    tq_aconn_reply_fn fn;
    void *privdata;
} pending_cb;

static void connect_now(tq_aconn *c);

static void schedule_retry(tq_aconn *c)
{
    if (c->closing)
        return;
    int64_t cap = c->cfg.backoff_cap_ms, base = c->cfg.backoff_base_ms;
    int64_t d = base;
    for (int i = 0; i < c->attempt && d < cap; i++)
        d *= 2;
    if (d > cap)
        d = cap;
    /* Full jitter keeps a fleet of workers from reconnecting in lockstep. */
    unsigned char r[2];
    char hex[5];
    tq_random_hex(hex, sizeof(r));
    long rnd = strtol(hex, NULL, 16);
    int64_t delay = d / 2 + (d / 2) * rnd / 65535;
    c->attempt++;
    struct timeval tv = {(time_t)(delay / 1000), (suseconds_t)((delay % 1000) * 1000)};
    evtimer_add(c->retry_ev, &tv);
}

static void went_down(tq_aconn *c, const char *why)
{
    int was_up = c->up;
    c->up = 0;
    c->ac = NULL;
    c->pending = 0;
    evtimer_del(c->connect_ev);
    if (!c->closing) {
        if (was_up || c->attempt == 0)
            tq_log_warn(c->cfg.log, "redis %s link to %s lost: %s; reconnecting", c->name, c->where,
                        why);
        else
            tq_log_debug(c->cfg.log, "redis %s link to %s: %s", c->name, c->where, why);
    }
    if (was_up && c->cfg.on_event)
        c->cfg.on_event(c, 0, c->cfg.arg);
    schedule_retry(c);
}

static void connect_cb(const redisAsyncContext *ac, int status)
{
    tq_aconn *c = ac->data;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback returns. */
        if (c->attempt == 0 || c->attempt % 10 == 0)
            tq_log_warn(c->cfg.log, "cannot reach Redis at %s (%s): %s; retrying", c->where,
                        c->name, ac->errstr);
        c->ac = NULL;
        c->up = 0;
        evtimer_del(c->connect_ev);
        schedule_retry(c);
        return;
    }
    evtimer_del(c->connect_ev);
    if (c->attempt > 0)
        tq_log_info(c->cfg.log, "redis %s link to %s is back", c->name, c->where);
    c->attempt = 0;
    c->up = 1;
    c->last_reply_ms = tq_mono_ms();
    if (c->cfg.on_event)
        c->cfg.on_event(c, 1, c->cfg.arg);
}

static void disconnect_cb(const redisAsyncContext *ac, int status)
{
    tq_aconn *c = ac->data;
    (void)status;
    went_down(c, ac->errstr[0] ? ac->errstr : "connection closed");
}

static void auth_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    tq_aconn *c = privdata;
    redisReply *reply = r;
    (void)ac;
    if (reply && reply->type == REDIS_REPLY_ERROR) {
        tq_log_error(c->cfg.log, "Redis at %s refused %s: %s", c->where, c->name, reply->str);
        tq_aconn_drop(c, "setup command refused");
    }
}

static void reply_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    pending_cb *p = privdata;
    tq_aconn *c = p->c;
    (void)ac;
    if (r) {
        c->last_reply_ms = tq_mono_ms();
        if (c->pending > 0)
            c->pending--;
    }
    if (p->fn)
        p->fn(c, r, p->privdata);
    free(p);
}

static void sub_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    pending_cb *p = privdata;
    (void)ac;
    if (r)
        p->c->last_reply_ms = tq_mono_ms();
    if (p->fn)
        p->fn(p->c, r, p->privdata);
    /* hiredis keeps a SUBSCRIBE callback for the channel's lifetime and calls
     * it with NULL once when the context goes away: free only then. */
    if (!r)
        free(p);
}

static void connect_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    tq_aconn *c = arg;
    (void)fd;
    (void)what;
    if (c->ac && !c->up) {
        tq_log_warn(c->cfg.log, "connecting to Redis at %s (%s) timed out after %lld ms", c->where,
                    c->name, (long long)c->cfg.connect_timeout_ms);
        redisAsyncContext *ac = c->ac;
        c->ac = NULL;
        /* Not connected yet: no disconnect callback will come. */
        redisAsyncFree(ac);
        schedule_retry(c);
    }
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    connect_now(arg);
}

static void drop_cb(evutil_socket_t fd, short what, void *arg)
{
    tq_aconn *c = arg;
    (void)fd;
    (void)what;
    if (c->ac) {
        tq_log_warn(c->cfg.log, "dropping redis %s link to %s: %s", c->name, c->where, c->drop_why);
        redisAsyncContext *ac = c->ac;
        int was_connected = c->up;
        redisAsyncFree(ac); /* runs pending callbacks with NULL, then disconnect_cb */
        if (!was_connected) {
            c->ac = NULL;
            schedule_retry(c);
        }
    }
}

static void watch_cb(evutil_socket_t fd, short what, void *arg)
{
    tq_aconn *c = arg;
    (void)fd;
    (void)what;
    if (c->up && c->pending > 0 && tq_mono_ms() - c->last_reply_ms > c->cfg.reply_timeout_ms) {
        char why[96];
        snprintf(why, sizeof(why), "no reply for %lld ms",
                 (long long)(tq_mono_ms() - c->last_reply_ms));
        tq_aconn_drop(c, why);
    }
}

static void connect_now(tq_aconn *c)
{
    const tq_url *u = c->cfg.url;
    redisAsyncContext *ac;
    if (c->closing || c->ac)
        return;
    ac = u->is_unix ? redisAsyncConnectUnix(u->path) : redisAsyncConnect(u->host, u->port);
    if (!ac) {
        tq_log_error(c->cfg.log, "out of memory connecting to Redis");
        schedule_retry(c);
        return;
    }
    if (ac->err) {
        if (c->attempt == 0 || c->attempt % 10 == 0)
            tq_log_warn(c->cfg.log, "cannot reach Redis at %s (%s): %s; retrying", c->where,
                        c->name, ac->errstr);
        redisAsyncFree(ac);
        schedule_retry(c);
        return;
    }
    ac->data = c;
    c->ac = ac;
    redisLibeventAttach(ac, c->base);
    redisAsyncSetConnectCallback(ac, connect_cb);
    redisAsyncSetDisconnectCallback(ac, disconnect_cb);
    /* Setup commands are queued now and go out first once connected. */
    if (u->password) {
        if (u->user)
            redisAsyncCommand(ac, auth_cb, c, "AUTH %s %s", u->user, u->password);
        else
            redisAsyncCommand(ac, auth_cb, c, "AUTH %s", u->password);
    }
    if (u->db)
        redisAsyncCommand(ac, auth_cb, c, "SELECT %d", u->db);
    if (c->cfg.load_scripts)
        for (int i = 0; i < TQ_SCRIPT_COUNT; i++)
            redisAsyncCommand(ac, auth_cb, c, "SCRIPT LOAD %s", tq_scripts[i].body);
    struct timeval tv = {(time_t)(c->cfg.connect_timeout_ms / 1000),
                         (suseconds_t)((c->cfg.connect_timeout_ms % 1000) * 1000)};
    evtimer_add(c->connect_ev, &tv);
}

tq_aconn *tq_aconn_new(struct event_base *base, const tq_aconn_config *cfg)
{
    tq_aconn *c = tq_xcalloc(1, sizeof(*c));
    c->base = base;
    c->cfg = *cfg;
    c->name = tq_xstrdup(cfg->name ? cfg->name : "redis");
    if (!c->cfg.connect_timeout_ms)
        c->cfg.connect_timeout_ms = 5000;
    if (!c->cfg.backoff_base_ms)
        c->cfg.backoff_base_ms = 100;
    if (!c->cfg.backoff_cap_ms)
        c->cfg.backoff_cap_ms = 5000;
    tq_url_mask(cfg->url, c->where, sizeof(c->where));
    c->retry_ev = evtimer_new(base, retry_cb, c);
    c->connect_ev = evtimer_new(base, connect_timeout_cb, c);
    c->drop_ev = evtimer_new(base, drop_cb, c);
    c->watch_ev = event_new(base, -1, EV_PERSIST, watch_cb, c);
    if (!c->retry_ev || !c->connect_ev || !c->drop_ev || !c->watch_ev)
        abort();
    if (c->cfg.reply_timeout_ms > 0) {
        struct timeval tv = {0, 250000};
        event_add(c->watch_ev, &tv);
    }
    return c;
}

void tq_aconn_start(tq_aconn *c)
{
    connect_now(c);
}

int tq_aconn_up(const tq_aconn *c)
{
    return c->up;
}

int tq_aconn_pending(const tq_aconn *c)
{
    return c->pending;
}

int tq_aconn_send(tq_aconn *c, const tq_cmd *cmd, tq_aconn_reply_fn fn, void *privdata)
{
    if (!c->up || !c->ac)
        return -1;
    pending_cb *p = tq_xmalloc(sizeof(*p));
    p->c = c;
    p->fn = fn;
    p->privdata = privdata;
    if (c->pending == 0)
        c->last_reply_ms = tq_mono_ms();
    if (redisAsyncCommandArgv(c->ac, reply_cb, p, cmd->argc, (const char **)(void *)cmd->argv,
                              cmd->argvlen) != REDIS_OK) {
        free(p);
        return -1;
    }
    c->pending++;
    return 0;
}

int tq_aconn_subscribe(tq_aconn *c, const char *const *channels, int n, tq_aconn_reply_fn fn,
                       void *privdata)
{
    if (!c->up || !c->ac)
        return -1;
    for (int i = 0; i < n; i++) {
        pending_cb *p = tq_xmalloc(sizeof(*p));
        p->c = c;
        p->fn = fn;
        p->privdata = privdata;
        const char *argv[2] = {"SUBSCRIBE", channels[i]};
        if (redisAsyncCommandArgv(c->ac, sub_cb, p, 2, argv, NULL) != REDIS_OK) {
            free(p);
            return -1;
        }
    }
    return 0;
}

void tq_aconn_drop(tq_aconn *c, const char *why)
{
    snprintf(c->drop_why, sizeof(c->drop_why), "%s", why);
    event_active(c->drop_ev, EV_TIMEOUT, 0);
}

void tq_aconn_free(tq_aconn *c)
{
    if (!c)
        return;
    c->closing = 1;
    if (c->ac) {
        redisAsyncContext *ac = c->ac;
        c->ac = NULL;
        redisAsyncFree(ac);
    }
    event_free(c->retry_ev);
    event_free(c->connect_ev);
    event_free(c->drop_ev);
    event_free(c->watch_ev);
    free(c->name);
    free(c);
}
