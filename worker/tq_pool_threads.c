/* tq_pool_threads: `concurrency` threads in the worker process taking jobs
 * from one shared queue. Cheaper than prefork, and the right choice for
 * tasks that mostly wait on I/O, but:
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
 * Hand-offs are what this pool costs for short tasks, so both directions
 * are batched. The loop appends jobs to the shared queue and signals the
 * condition variable only when a thread is waiting and nobody else will
 * wake it (a thread that takes a job and sees more wakes the next one). A
 * thread that finishes a job takes the next one in the same critical
 * section, without sleeping, while the queue holds any (the backlog, see
 * tq_pool_set_backlog). Completions reach the loop through a self-pipe, but
 * only the first completion since the loop last looked writes a byte; the
 * loop then delivers everything that finished in one go. A self-pipe rather
 * than event_active() from the thread, because that needs a base created
 * after evthread_use_pthreads(), and the worker's base may predate this
 * pool.
 *
 * Soft limits count from a job's real start, which only its thread knows:
 * a thread starting a job with a soft limit puts it on the `started` list
 * and the loop arms its timer for what is left.
 *
 * Invariants:
 *  - Fields marked (mu) are shared with the threads and read or written
 *    only under `mu`; the others belong to the loop thread.
 *  - A job is freed by the loop after its `done` (or reclaim) callback,
 *    except an abandoned one (still running when tq_pool_kill gave up),
 *    which its thread frees when the task returns. Progress reports are
 *    delivered before the completion of their job, from the same batch.
 *  - The pool's memory is reference counted (the loop plus each thread), so
 *    an abandoned thread that returns after tq_pool_free still finds the
 *    pool; the last reference frees it.
 *  - Every job holds a message of its own: the bytes copied at submit, or a
 *    share of the caller's decode (tq_msg_share, nothing copied; the caller
 *    does not change it until `done`, and the task may change its arguments,
 *    see tq_pool_job). An abandoned thread
 *    may still read it after `done` told the caller it may free its own.
 *    A thread drops its share before it reports the job done, so the caller
 *    may change the message in `done`. */
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

typedef enum { J_QUEUED, J_RUNNING, J_DONE } job_state;

typedef struct tjob {
    struct tjob *next;          /* (mu) queue, done list */
    struct tjob *snext;         /* (mu) started list */
    struct tjob *lprev, *lnext; /* loop: every job the pool holds */
    th_pool *pool;
    void *cookie;
    int64_t soft_limit_ms;
    struct event *soft_ev; /* loop; NULL without a soft limit */
    tq_exec_flags flags;   /* written by the loop (timer, stopping), read by the task */
    /* (mu) */
    job_state state;
    int abandoned;
    int64_t started_mono_ms;
    tq_outcome out;
    tq_msg *m; /* a share of the caller's decode, or NULL: then msg */
    size_t msglen;
    char *msg; /* a copy in the same allocation, see the invariants */
} tjob;

typedef struct progress_item {
    struct progress_item *next;
    tjob *job;
    double fraction;
    char *message;
} progress_item;

typedef struct tthread {
    th_pool *pool;
    pthread_t tid;
    int have_thread;
    tjob *cur; /* (mu) the job it runs, NULL when none */
} tthread;

/* A FIFO of jobs linked through `next`. */
typedef struct jlist {
    tjob *head, *tail;
} jlist;

struct th_pool {
    struct event_base *base;
    tq_pool_config cfg;
    tq_msg_limits limits;
    const tq_logger *log;
    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* the queue got a job, or quit */
    pthread_cond_t done_cv; /* a job finished (for tq_pool_kill) */
    /* (mu) */
    int refs;
    int quit;
    int killing; /* tq_pool_kill waits on done_cv */
    jlist queue; /* submitted, not started */
    jlist done;  /* finished, not delivered */
    tjob *started;
    progress_item *prog_head, *prog_tail;
    int nwaiting;   /* threads blocked on work_cv */
    int nsignalled; /* of those, already signalled */
    int notified;   /* a wake byte is in the pipe, the loop has not looked yet */
    /* loop thread */
    tthread *threads;
    int n;
    tjob all; /* list head (lprev/lnext) */
    int njobs;
    int backlog;            /* per executor */
    jlist staging;          /* submitted in this loop iteration, not yet queued */
    struct event *flush_ev; /* queues `staging` after the current callback */
    int wake[2];            /* self-pipe: [0] loop reads, [1] threads write */
    struct event *wake_ev;
    int stopping, dead, warned_hard;
};

static void flag_set(volatile sig_atomic_t *f)
{
    __atomic_store_n(f, 1, __ATOMIC_RELAXED);
}

static void jlist_push(jlist *l, tjob *j)
{
    j->next = NULL;
    if (l->tail)
        l->tail->next = j;
    else
        l->head = j;
    l->tail = j;
}

static tjob *jlist_take_all(jlist *l)
{
    tjob *h = l->head;
    l->head = l->tail = NULL;
    return h;
}

/* Called with mu held: make sure the loop will look at the lists. */
static void notify_loop(th_pool *p)
{
    if (p->notified)
        return;
    p->notified = 1;
    char b = 1;
    /* A full pipe already holds a pending wake-up: EAGAIN is fine. */
    while (write(p->wake[1], &b, 1) < 0 && errno == EINTR)
        ;
}

static void job_free_mem(tjob *j)
{
    tq_outcome_clear(&j->out);
    tq_msg_free(j->m);
    free(j);
}

static void free_progress(progress_item *items)
{
    while (items) {
        progress_item *it = items;
        items = it->next;
        free(it->message);
        free(it);
    }
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
    free_progress(p->prog_head);
    if (p->wake[0] >= 0)
        close(p->wake[0]);
    if (p->wake[1] >= 0)
        close(p->wake[1]);
    pthread_cond_destroy(&p->done_cv);
    pthread_cond_destroy(&p->work_cv);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free(p);
}

static void thread_progress_cb(void *arg, double fraction, const char *message)
{
    tjob *j = arg;
    th_pool *p = j->pool;
    progress_item *it = tq_xcalloc(1, sizeof(*it));
    it->job = j;
    it->fraction = fraction;
    it->message = message ? tq_xstrdup(message) : NULL;
    pthread_mutex_lock(&p->mu);
    if (j->abandoned) {
        /* Nobody will deliver it: the loop has reported this job. */
        pthread_mutex_unlock(&p->mu);
        free(it->message);
        free(it);
        return;
    }
    if (p->prog_tail)
        p->prog_tail->next = it;
    else
        p->prog_head = it;
    p->prog_tail = it;
    notify_loop(p);
    pthread_mutex_unlock(&p->mu);
}

/* Called with mu held: take the next job for thread t, or NULL at quit. */
static tjob *take_job(th_pool *p, tthread *t)
{
    while (!p->queue.head && !p->quit) {
        p->nwaiting++;
        pthread_cond_wait(&p->work_cv, &p->mu);
        p->nwaiting--;
        if (p->nsignalled > 0)
            p->nsignalled--;
    }
    tjob *j = p->queue.head;
    if (!j)
        return NULL;
    p->queue.head = j->next;
    if (!p->queue.head)
        p->queue.tail = NULL;
    j->next = NULL;
    j->state = J_RUNNING;
    t->cur = j;
    if (j->soft_limit_ms > 0) {
        j->started_mono_ms = tq_mono_ms();
        j->snext = p->started;
        p->started = j;
        notify_loop(p);
    }
    /* More work and a sleeping thread nobody has woken: pass it on. */
    if (p->queue.head && p->nwaiting > p->nsignalled) {
        p->nsignalled++;
        pthread_cond_signal(&p->work_cv);
    }
    return j;
}

static void *thread_main(void *arg)
{
    tthread *t = arg;
    th_pool *p = t->pool;

    pthread_mutex_lock(&p->mu);
    for (;;) {
        tjob *j = take_job(p, t);
        if (!j)
            break;
        tq_exec_env env = {p->cfg.reg, &p->limits, &j->flags, thread_progress_cb, j, 1};
        pthread_mutex_unlock(&p->mu);

        tq_outcome out;
        if (j->m) {
            tq_exec_run_msg(&env, j->m, &out);
            /* Before `done`: the caller may change the message there. */
            tq_msg_free(j->m);
            j->m = NULL;
        } else {
            tq_exec_run(&env, j->msg, j->msglen, &out);
        }

        pthread_mutex_lock(&p->mu);
        t->cur = NULL;
        if (p->killing)
            pthread_cond_broadcast(&p->done_cv);
        if (j->abandoned) {
            /* The loop already reported it ABORTED, and the pool is dead:
             * this thread takes no more jobs. */
            tq_outcome_clear(&out);
            job_free_mem(j);
            break;
        }
        j->out = out;
        j->state = J_DONE;
        jlist_push(&p->done, j);
        notify_loop(p);
    }
    pthread_mutex_unlock(&p->mu);
    unref(p);
    return NULL;
}

static void loop_link(th_pool *p, tjob *j)
{
    j->lnext = &p->all;
    j->lprev = p->all.lprev;
    p->all.lprev->lnext = j;
    p->all.lprev = j;
    p->njobs++;
}

static void loop_unlink(th_pool *p, tjob *j)
{
    j->lprev->lnext = j->lnext;
    j->lnext->lprev = j->lprev;
    j->lprev = j->lnext = NULL;
    p->njobs--;
}

/* The loop's side of a job that leaves the pool: its list and its timer. */
static void leave_loop(th_pool *p, tjob *j)
{
    loop_unlink(p, j);
    if (j->soft_ev)
        event_free(j->soft_ev);
    j->soft_ev = NULL;
}

/* The job leaves the pool (its thread is done with it): freed, then
 * reported through `done`. */
static void finish(th_pool *p, tjob *j, tq_outcome *o)
{
    void *cookie = j->cookie;
    leave_loop(p, j);
    job_free_mem(j);
    p->cfg.done(p->cfg.arg, cookie, o);
}

static void arm_soft(tjob *j, int64_t now)
{
    int64_t left = j->soft_limit_ms - (now - j->started_mono_ms);
    if (left < 0)
        left = 0;
    struct timeval tv = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000};
    evtimer_add(j->soft_ev, &tv);
}

/* Report every job of a detached done list with its outcome. */
static void finish_done(th_pool *p, tjob *done)
{
    while (done) {
        tjob *j = done;
        done = j->next;
        tq_outcome o = j->out;
        tq_outcome_init(&j->out);
        finish(p, j, &o);
    }
}

/* Deliver what the threads reported since the last look, on the loop
 * thread: timers for started jobs, progress, then completions. */
static void deliver(th_pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->notified = 0;
    tjob *started = p->started;
    p->started = NULL;
    progress_item *items = p->prog_head;
    p->prog_head = p->prog_tail = NULL;
    tjob *done = jlist_take_all(&p->done);
    pthread_mutex_unlock(&p->mu);

    if (started) {
        int64_t now = tq_mono_ms();
        for (tjob *j = started; j; j = j->snext)
            if (j->soft_ev)
                arm_soft(j, now);
    }
    for (progress_item *it = items; it && p->cfg.progress; it = it->next)
        p->cfg.progress(p->cfg.arg, it->job->cookie, it->fraction, it->message);
    free_progress(items);
    finish_done(p, done);
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
    tjob *j = arg;
    (void)fd;
    (void)what;
    flag_set(&j->flags.soft_limit);
}

static int room(const th_pool *p)
{
    if (p->dead)
        return 0;
    int r = p->n * (1 + p->backlog) - p->njobs;
    return r > 0 ? r : 0;
}

static int th_submit(void *impl, const tq_pool_job *job)
{
    th_pool *p = impl;

    if (room(p) == 0)
        return -1;
    if (job->hard_limit_ms > 0 && !p->warned_hard) {
        tq_log_warn(p->log, "threads pool: hard time limits cannot be enforced (a thread cannot "
                            "be killed); only the soft limit applies");
        p->warned_hard = 1;
    }
    /* A decoded message is shared, not copied: no bytes to keep. */
    size_t keep = job->decoded ? 0 : job->msglen;
    tjob *j = tq_xcalloc(1, sizeof(*j) + keep + 1);
    j->pool = p;
    j->cookie = job->cookie;
    j->soft_limit_ms = job->soft_limit_ms > 0 ? job->soft_limit_ms : 0;
    if (j->soft_limit_ms > 0)
        j->soft_ev = evtimer_new(p->base, soft_cb, j);
    j->flags.stopping = p->stopping;
    tq_outcome_init(&j->out);
    j->msg = (char *)(j + 1);
    j->msglen = keep;
    if (job->decoded)
        j->m = tq_msg_share(job->decoded);
    else if (keep)
        memcpy(j->msg, job->msg, keep);
    loop_link(p, j);
    j->state = J_QUEUED;
    /* The caller usually hands over several jobs in one callback: they
     * reach the threads together, for one lock and at most one wake-up per
     * sleeping thread, when that callback returns. */
    if (!p->staging.head)
        event_active(p->flush_ev, EV_TIMEOUT, 1);
    jlist_push(&p->staging, j);
    return 0;
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    th_pool *p = arg;
    (void)fd;
    (void)what;
    tjob *h = p->staging.head, *t = p->staging.tail;
    if (!h)
        return;
    p->staging.head = p->staging.tail = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->queue.tail)
        p->queue.tail->next = h;
    else
        p->queue.head = h;
    p->queue.tail = t;
    /* One wake-up per sleeping thread that has work and no wake-up yet;
     * a woken thread passes on what is left (take_job). */
    if (p->nwaiting > p->nsignalled) {
        p->nsignalled++;
        pthread_cond_signal(&p->work_cv);
    }
    pthread_mutex_unlock(&p->mu);
}

static int th_idle(const void *impl)
{
    return room(impl);
}

static int th_running(const void *impl)
{
    const th_pool *p = impl;
    return p->njobs;
}

static void th_set_backlog(void *impl, int per_executor)
{
    th_pool *p = impl;
    p->backlog = per_executor;
}

/* Take the jobs that have not started out of the shared queue and the
 * staging list, oldest first. */
static tjob *unqueue_all(th_pool *p)
{
    pthread_mutex_lock(&p->mu);
    jlist q = p->queue;
    p->queue.head = p->queue.tail = NULL;
    pthread_mutex_unlock(&p->mu);
    if (p->staging.head) {
        if (q.tail)
            q.tail->next = p->staging.head;
        else
            q.head = p->staging.head;
        q.tail = p->staging.tail;
        p->staging.head = p->staging.tail = NULL;
    }
    return q.head;
}

static int th_reclaim(void *impl, void (*fn)(void *arg, void *cookie), void *arg)
{
    th_pool *p = impl;
    int n = 0;
    tjob *q = unqueue_all(p);
    while (q) {
        tjob *j = q;
        q = j->next;
        void *cookie = j->cookie;
        loop_unlink(p, j);
        if (j->soft_ev)
            event_free(j->soft_ev);
        job_free_mem(j);
        fn(arg, cookie);
        n++;
    }
    return n;
}

static void th_stopping(void *impl)
{
    th_pool *p = impl;
    p->stopping = 1;
    for (tjob *j = p->all.lnext; j != &p->all; j = j->lnext)
        flag_set(&j->flags.stopping);
}

static void th_kill(void *impl)
{
    th_pool *p = impl;
    struct timespec dl;

    p->dead = 1;
    th_stopping(p);
    /* Jobs that never started are aborted at once. */
    tjob *q = unqueue_all(p);
    /* done_cv uses CLOCK_MONOTONIC (see tq_pool_threads_new). */
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += KILL_WAIT_MS / 1000;
    dl.tv_nsec += (long)(KILL_WAIT_MS % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&p->mu);
    p->killing = 1;
    for (;;) {
        int busy = 0;
        for (int i = 0; i < p->n; i++)
            busy += p->threads[i].cur != NULL;
        if (!busy || pthread_cond_timedwait(&p->done_cv, &p->mu, &dl) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&p->mu);
    /* Everything that finished in time, with its progress, and the timers
     * of jobs that started. */
    deliver(p);
    /* Whatever still runs now is abandoned: its thread frees it later, as
     * soon as it sees the flag, so the loop is done with the job (list,
     * timer) before it sets the flag, under mu, and afterwards keeps only
     * the cookie. */
    void **stuck = tq_xcalloc((size_t)p->n + 1, sizeof(*stuck));
    int nstuck = 0;
    pthread_mutex_lock(&p->mu);
    p->killing = 0;
    for (int i = 0; i < p->n; i++) {
        tjob *j = p->threads[i].cur;
        if (j && !j->abandoned) {
            stuck[nstuck++] = j->cookie;
            leave_loop(p, j);
            j->abandoned = 1;
        }
    }
    /* Reports the threads made between deliver and here would name jobs
     * already reported or abandoned: drop them. */
    progress_item *items = p->prog_head;
    p->prog_head = p->prog_tail = NULL;
    tjob *late = jlist_take_all(&p->done);
    tjob *started = p->started;
    p->started = NULL;
    pthread_mutex_unlock(&p->mu);
    (void)started; /* their timers do not matter any more */
    free_progress(items);
    finish_done(p, late);
    while (q) {
        tjob *j = q;
        q = j->next;
        tq_outcome o;
        tq_outcome_init(&o);
        tq_outcome_set_error(&o, TQ_OUT_ABORTED, "WorkerShutdown",
                             "task not started at a cold shutdown");
        finish(p, j, &o);
    }
    for (int i = 0; i < nstuck; i++) {
        tq_log_warn(p->log, "threads pool: a task did not stop within %d ms; abandoning its thread",
                    KILL_WAIT_MS);
        tq_outcome o;
        tq_outcome_init(&o);
        tq_outcome_set_error(&o, TQ_OUT_ABORTED, "WorkerShutdown",
                             "task still running at a cold shutdown");
        p->cfg.done(p->cfg.arg, stuck[i], &o);
    }
    free(stuck);
}

static void th_free(void *impl)
{
    th_pool *p = impl;
    if (!p)
        return;
    th_kill(p);
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n; i++) {
        tthread *t = &p->threads[i];
        if (!t->have_thread)
            continue;
        pthread_mutex_lock(&p->mu);
        int gone = t->cur != NULL; /* still in an abandoned task */
        pthread_mutex_unlock(&p->mu);
        if (gone)
            pthread_detach(t->tid);
        else
            pthread_join(t->tid, NULL);
    }
    if (p->wake_ev)
        event_free(p->wake_ev);
    p->wake_ev = NULL;
    if (p->flush_ev)
        event_free(p->flush_ev);
    p->flush_ev = NULL;
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
    p->all.lnext = p->all.lprev = &p->all;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->done_cv, &ca);
    pthread_condattr_destroy(&ca);
    p->threads = tq_xcalloc((size_t)p->n, sizeof(*p->threads));
    for (int i = 0; i < p->n; i++)
        p->threads[i].pool = p;
    if (pipe2(p->wake, O_NONBLOCK | O_CLOEXEC) < 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        goto out;
    }
    p->wake_ev = event_new(base, p->wake[0], EV_READ | EV_PERSIST, wake_cb, p);
    p->flush_ev = event_new(base, -1, 0, flush_cb, p);
    if (!p->wake_ev || !p->flush_ev || event_add(p->wake_ev, NULL) < 0) {
        snprintf(err, errlen, "cannot create the pool's events");
        goto out;
    }
    /* Signals belong to the loop thread (libevent's handlers, the worker's
     * SIGTERM): the pool threads block them all. */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    for (int i = 0; i < p->n; i++) {
        tthread *t = &p->threads[i];
        pthread_mutex_lock(&p->mu);
        p->refs++;
        pthread_mutex_unlock(&p->mu);
        int rc = pthread_create(&t->tid, NULL, thread_main, t);
        if (rc != 0) {
            pthread_mutex_lock(&p->mu);
            p->refs--;
            pthread_mutex_unlock(&p->mu);
            snprintf(err, errlen, "pthread_create: %s", strerror(rc));
            break;
        }
        t->have_thread = 1;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!p->threads[p->n - 1].have_thread)
        goto out;
    tq_log_info(p->log, "threads pool: %d threads", p->n);
    ret = p;
    p = NULL;
out:
    th_free(p);
    return ret;
}

const tq_pool_ops tq_pool_threads_ops = {
    "threads",  th_submit,   th_idle, th_running, th_set_backlog,
    th_reclaim, th_stopping, th_kill, th_free,
};
