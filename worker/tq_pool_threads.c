/* tq_pool_threads: `concurrency` threads in the worker process, each with a
 * one-job slot (mutex + condition variable). Cheaper than prefork, and the
 * right choice for tasks that mostly wait on I/O, but:
 *  - no hard time limit: a thread cannot be killed safely, so a job's
 *    hard_limit_ms is ignored (a warning is logged once); the soft limit
 *    works (a loop timer raises that job's flags.soft_limit);
 *  - a task that crashes takes the whole worker with it;
 *  - tq_pool_kill cannot stop a thread: it raises every job's stop flag and
 *    waits up to KILL_WAIT_MS; jobs that finish in time are delivered with
 *    their real outcome, the others as ABORTED and their threads abandoned
 *    (their late results are dropped);
 *  - CPU time is the thread's own (RUSAGE_THREAD); peak RSS is not measured.
 *
 * Completions reach the loop thread through a self-pipe: a thread stores
 * its outcome in its slot and writes one byte; a persistent read event on
 * the loop drains the pipe and calls `done`. A self-pipe rather than
 * event_active() from the thread, because that needs a base created after
 * evthread_use_pthreads(), and the worker's base may predate this pool.
 *
 * Invariants:
 *  - Fields marked (mu) are shared with the threads and read or written
 *    only under `mu`; the others belong to the loop thread.
 *  - The pool's memory is reference counted (the loop plus each thread), so
 *    an abandoned thread that returns after tq_pool_free still finds its
 *    slot; the last reference frees it. Loop-side events are freed by
 *    tq_pool_free itself.
 *  - Every message is copied at submit: an abandoned thread may still read
 *    it after `done` told the caller it may free its own. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/tq_util.h"
#include "tq_pool_impl.h"

#define KILL_WAIT_MS 3000 /* tq_pool_kill: how long running tasks get to return */

typedef struct th_pool th_pool;

typedef struct progress_item {
    struct progress_item *next;
    int idx;
    unsigned long seq;
    double fraction;
    char *message;
} progress_item;

typedef struct tslot {
    th_pool *pool;
    int idx;
    pthread_t tid;
    int have_thread;
    pthread_cond_t cv;
    /* (mu) */
    int has_job;
    int running;
    int finished;
    int abandoned;
    unsigned long seq; /* job number in this slot, tags progress reports */
    char *msg;
    size_t msglen;
    tq_outcome out;
    tq_exec_flags flags; /* written by the loop (timer, stopping), read by the task */
    /* loop thread */
    int busy;
    void *cookie;
    struct event *soft_ev;
} tslot;

struct th_pool {
    struct event_base *base;
    tq_pool_config cfg;
    tq_msg_limits limits;
    const tq_logger *log;
    pthread_mutex_t mu;
    pthread_cond_t done_cv;               /* a job finished (for tq_pool_kill) */
    int refs;                             /* (mu) */
    int quit;                             /* (mu) */
    progress_item *prog_head, *prog_tail; /* (mu) */
    tslot *slots;
    int n;
    int wake[2]; /* self-pipe: [0] loop reads, [1] threads write */
    struct event *wake_ev;
    int stopping, dead, warned_hard;
};

static void flag_set(volatile sig_atomic_t *f)
{
    __atomic_store_n(f, 1, __ATOMIC_RELAXED);
}

/* Called with mu held. */
static void wake_loop(th_pool *p)
{
    char b = 1;
    /* A full pipe already holds a pending wake-up: EAGAIN is fine. */
    while (write(p->wake[1], &b, 1) < 0 && errno == EINTR)
        ;
}

/* Drop one reference; the last one frees the shared state. Called without
 * mu held. */
static void unref(th_pool *p)
{
    pthread_mutex_lock(&p->mu);
    int last = --p->refs == 0;
    pthread_mutex_unlock(&p->mu);
    if (!last)
        return;
    for (int i = 0; i < p->n; i++) {
        tslot *s = &p->slots[i];
        free(s->msg);
        tq_outcome_clear(&s->out);
        pthread_cond_destroy(&s->cv);
    }
    while (p->prog_head) {
        progress_item *it = p->prog_head;
        p->prog_head = it->next;
        free(it->message);
        free(it);
    }
    if (p->wake[0] >= 0)
        close(p->wake[0]);
    if (p->wake[1] >= 0)
        close(p->wake[1]);
    pthread_cond_destroy(&p->done_cv);
    pthread_mutex_destroy(&p->mu);
    free(p->slots);
    free(p);
}

typedef struct thread_progress {
    tslot *slot;
    unsigned long seq;
} thread_progress;

static void thread_progress_cb(void *arg, double fraction, const char *message)
{
    thread_progress *tp = arg;
    th_pool *p = tp->slot->pool;
    progress_item *it = tq_xcalloc(1, sizeof(*it));
    it->idx = tp->slot->idx;
    it->seq = tp->seq;
    it->fraction = fraction;
    it->message = message ? tq_xstrdup(message) : NULL;
    pthread_mutex_lock(&p->mu);
    if (p->prog_tail)
        p->prog_tail->next = it;
    else
        p->prog_head = it;
    p->prog_tail = it;
    wake_loop(p);
    pthread_mutex_unlock(&p->mu);
}

static void *thread_main(void *arg)
{
    tslot *s = arg;
    th_pool *p = s->pool;

    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!s->has_job && !p->quit)
            pthread_cond_wait(&s->cv, &p->mu);
        if (!s->has_job)
            break;
        s->has_job = 0;
        s->running = 1;
        char *msg = s->msg;
        size_t len = s->msglen;
        s->msg = NULL;
        thread_progress tp = {s, s->seq};
        tq_exec_env env = {p->cfg.reg, &p->limits, &s->flags, thread_progress_cb, &tp, 1};
        pthread_mutex_unlock(&p->mu);

        tq_outcome out;
        tq_exec_run(&env, msg, len, &out);
        free(msg);

        pthread_mutex_lock(&p->mu);
        s->running = 0;
        if (s->abandoned) {
            tq_outcome_clear(&out); /* the loop already reported it ABORTED */
        } else {
            s->out = out;
            s->finished = 1;
            wake_loop(p);
        }
        pthread_cond_broadcast(&p->done_cv);
        if (s->abandoned)
            break; /* the pool is dead; this slot gets no more jobs */
    }
    pthread_mutex_unlock(&p->mu);
    unref(p);
    return NULL;
}

static void finish(th_pool *p, tslot *s, tq_outcome *o)
{
    void *cookie = s->cookie;
    s->busy = 0;
    s->cookie = NULL;
    evtimer_del(s->soft_ev);
    p->cfg.done(p->cfg.arg, cookie, o);
}

/* Deliver queued progress reports and finished jobs, on the loop thread. */
static void deliver(th_pool *p)
{
    pthread_mutex_lock(&p->mu);
    progress_item *items = p->prog_head;
    p->prog_head = p->prog_tail = NULL;
    pthread_mutex_unlock(&p->mu);
    while (items) {
        progress_item *it = items;
        items = it->next;
        tslot *s = &p->slots[it->idx];
        if (p->cfg.progress && s->busy && s->seq == it->seq)
            p->cfg.progress(p->cfg.arg, s->cookie, it->fraction, it->message);
        free(it->message);
        free(it);
    }
    for (int i = 0; i < p->n; i++) {
        tslot *s = &p->slots[i];
        tq_outcome o;
        pthread_mutex_lock(&p->mu);
        int ready = s->finished;
        if (ready) {
            o = s->out;
            tq_outcome_init(&s->out);
            s->finished = 0;
        }
        pthread_mutex_unlock(&p->mu);
        if (ready && s->busy)
            finish(p, s, &o);
        else if (ready)
            tq_outcome_clear(&o);
    }
}

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
    char buf[256];
    (void)what;
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
    deliver(arg);
}

static void soft_cb(evutil_socket_t fd, short what, void *arg)
{
    tslot *s = arg;
    (void)fd;
    (void)what;
    if (s->busy)
        flag_set(&s->flags.soft_limit);
}

static int th_submit(void *impl, const tq_pool_job *job)
{
    th_pool *p = impl;
    tslot *s = NULL;

    if (p->dead)
        return -1;
    for (int i = 0; i < p->n && !s; i++) {
        if (!p->slots[i].busy)
            s = &p->slots[i];
    }
    if (!s)
        return -1;
    if (job->hard_limit_ms > 0 && !p->warned_hard) {
        tq_log_warn(p->log, "threads pool: hard time limits cannot be enforced (a thread cannot "
                            "be killed); only the soft limit applies");
        p->warned_hard = 1;
    }
    s->busy = 1;
    s->cookie = job->cookie;
    pthread_mutex_lock(&p->mu);
    s->seq++;
    s->msg = tq_xmalloc(job->msglen ? job->msglen : 1);
    if (job->msglen)
        memcpy(s->msg, job->msg, job->msglen);
    s->msglen = job->msglen;
    s->flags.soft_limit = 0;
    s->flags.stopping = p->stopping;
    s->has_job = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&p->mu);
    if (job->soft_limit_ms > 0) {
        struct timeval tv = {(time_t)(job->soft_limit_ms / 1000),
                             (suseconds_t)(job->soft_limit_ms % 1000) * 1000};
        evtimer_add(s->soft_ev, &tv);
    }
    return 0;
}

static int th_idle(const void *impl)
{
    const th_pool *p = impl;
    int n = 0;
    if (p->dead)
        return 0;
    for (int i = 0; i < p->n; i++)
        n += !p->slots[i].busy;
    return n;
}

static int th_running(const void *impl)
{
    const th_pool *p = impl;
    int n = 0;
    for (int i = 0; i < p->n; i++)
        n += p->slots[i].busy;
    return n;
}

static void th_stopping(void *impl)
{
    th_pool *p = impl;
    p->stopping = 1;
    for (int i = 0; i < p->n; i++) {
        if (p->slots[i].busy)
            flag_set(&p->slots[i].flags.stopping);
    }
}

static void th_kill(void *impl)
{
    th_pool *p = impl;
    struct timespec dl;

    p->dead = 1;
    th_stopping(p);
    /* done_cv uses CLOCK_MONOTONIC (see tq_pool_threads_new). */
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += KILL_WAIT_MS / 1000;
    dl.tv_nsec += (long)(KILL_WAIT_MS % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&p->mu);
    for (;;) {
        int pending = 0;
        for (int i = 0; i < p->n; i++)
            pending += p->slots[i].busy && !p->slots[i].finished;
        if (!pending || pthread_cond_timedwait(&p->done_cv, &p->mu, &dl) == ETIMEDOUT)
            break;
    }
    /* Whatever has not finished now never will be reported. */
    for (int i = 0; i < p->n; i++) {
        if (p->slots[i].busy && !p->slots[i].finished)
            p->slots[i].abandoned = 1;
    }
    pthread_mutex_unlock(&p->mu);
    deliver(p);
    for (int i = 0; i < p->n; i++) {
        tslot *s = &p->slots[i];
        if (!s->busy)
            continue;
        tq_log_warn(p->log, "threads pool: a task did not stop within %d ms; abandoning its thread",
                    KILL_WAIT_MS);
        tq_outcome o;
        tq_outcome_init(&o);
        tq_outcome_set_error(&o, TQ_OUT_ABORTED, "WorkerShutdown",
                             "task still running at a cold shutdown");
        finish(p, s, &o);
    }
}

static void th_free(void *impl)
{
    th_pool *p = impl;
    if (!p)
        return;
    th_kill(p);
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    for (int i = 0; i < p->n; i++)
        pthread_cond_signal(&p->slots[i].cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n; i++) {
        tslot *s = &p->slots[i];
        if (!s->have_thread)
            continue;
        pthread_mutex_lock(&p->mu);
        int gone = s->abandoned;
        pthread_mutex_unlock(&p->mu);
        if (gone)
            pthread_detach(s->tid);
        else
            pthread_join(s->tid, NULL);
    }
    for (int i = 0; i < p->n; i++) {
        if (p->slots[i].soft_ev)
            event_free(p->slots[i].soft_ev);
        p->slots[i].soft_ev = NULL;
    }
    if (p->wake_ev)
        event_free(p->wake_ev);
    p->wake_ev = NULL;
    unref(p);
}

void *tq_pool_threads_new(struct event_base *base, const tq_pool_config *cfg, char *err,
                          size_t errlen)
{
    th_pool *p = tq_xcalloc(1, sizeof(*p));
    void *ret = NULL;
    pthread_condattr_t ca;
    sigset_t all, old;

    p->base = base;
    p->cfg = *cfg;
    if (cfg->limits)
        p->limits = *cfg->limits;
    else
        tq_msg_limits_default(&p->limits);
    p->log = cfg->log;
    p->n = cfg->concurrency;
    p->refs = 1;
    p->wake[0] = p->wake[1] = -1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->done_cv, &ca);
    pthread_condattr_destroy(&ca);
    p->slots = tq_xcalloc((size_t)p->n, sizeof(*p->slots));
    for (int i = 0; i < p->n; i++) {
        p->slots[i].pool = p;
        p->slots[i].idx = i;
        tq_outcome_init(&p->slots[i].out);
        pthread_cond_init(&p->slots[i].cv, NULL);
    }
    if (pipe2(p->wake, O_NONBLOCK | O_CLOEXEC) < 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        goto out;
    }
    p->wake_ev = event_new(base, p->wake[0], EV_READ | EV_PERSIST, wake_cb, p);
    if (!p->wake_ev || event_add(p->wake_ev, NULL) < 0) {
        snprintf(err, errlen, "cannot create the pool's events");
        goto out;
    }
    for (int i = 0; i < p->n; i++) {
        p->slots[i].soft_ev = evtimer_new(base, soft_cb, &p->slots[i]);
        if (!p->slots[i].soft_ev) {
            snprintf(err, errlen, "cannot create the pool's timers");
            goto out;
        }
    }
    /* Signals belong to the loop thread (libevent's handlers, the worker's
     * SIGTERM): the pool threads block them all. */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    for (int i = 0; i < p->n; i++) {
        tslot *s = &p->slots[i];
        pthread_mutex_lock(&p->mu);
        p->refs++;
        pthread_mutex_unlock(&p->mu);
        int rc = pthread_create(&s->tid, NULL, thread_main, s);
        if (rc != 0) {
            pthread_mutex_lock(&p->mu);
            p->refs--;
            pthread_mutex_unlock(&p->mu);
            snprintf(err, errlen, "pthread_create: %s", strerror(rc));
            break;
        }
        s->have_thread = 1;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!p->slots[p->n - 1].have_thread)
        goto out;
    tq_log_info(p->log, "threads pool: %d threads", p->n);
    ret = p;
    p = NULL;
out:
    th_free(p);
    return ret;
}

const tq_pool_ops tq_pool_threads_ops = {
    "threads", th_submit, th_idle, th_running, th_stopping, th_kill, th_free,
};
