/* tq_pool_prefork: `concurrency` long-lived child processes, each running
 * one job at a time. Forked once at start (and again only to replace a
 * child that died or was recycled), never per task.
 *
 * With a backlog (tq_pool_set_backlog), up to that many more job frames
 * wait in a child's socket behind the running one, so the child goes from
 * one job to the next without waiting for the parent, and the parent sends
 * the frames of one loop callback in one write. The child runs frames in
 * order, so a slot's first job is the running one: its time limits start
 * when the job before it ends (finish_job). A child that dies takes only
 * that job with it; the ones behind never started and come back ABORTED.
 * Frames already sent cannot be taken back (tq_pool_reclaim returns none),
 * and a recycling child is never sent more jobs than it has left.
 *
 * Parent <-> child: one AF_UNIX stream socket per child, frames of
 * [u32 length][u8 type][payload] in native byte order (same binary, same
 * host):
 *   'J' parent->child  [u8 stopping][i64 soft_ms][i64 hard_ms][u32 seq][message bytes]
 *   'O' child->parent  [u8 exiting][tq_outcome_pack bytes]
 *   'P' child->parent  [f64 fraction][message bytes]
 * The parent's ends are non-blocking and driven by libevent; the child is a
 * plain blocking loop (read job, tq_exec_run, write outcome) that never
 * touches the parent's event_base.
 *
 * Time limits are the parent's timers: soft -> SIGUSR1 sent with sigqueue
 * carrying the job's sequence number (the child's handler raises
 * flags.soft_limit only for the job it belongs to, so a late signal for the
 * previous job or an early one for the next is never misapplied), hard ->
 * SIGKILL. Shutdown -> SIGUSR2 (flags.stopping, sticky). Child deaths come from a SIGCHLD
 * signal event on the worker's base; every death is reaped with waitpid on
 * that child's pid only (never -1: the worker may have other children).
 *
 * Invariants:
 *  - A slot is an executor position; its `proc` is the process filling it
 *    now (NULL while none). A proc that died is detached from its slot and
 *    put on a graveyard list, freed by a zero-delay event after control has
 *    returned to the loop (Redis's freeClientAsync pattern), so no event or
 *    buffer is freed inside its own callback.
 *  - A job is in exactly one slot from submit until `done`; `done` is called
 *    once per job, last, after the slot's state is consistent again, so the
 *    callee may submit, stop or kill (but not free) the pool.
 *  - Once the pool is dead (killed or freeing) nothing is respawned. */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/util.h>

#include "common/tq_util.h"
#include "tq_pool_impl.h"

#define FRAME_MAX (256u << 20) /* sanity bound on one frame, either way */
#define JOB_HDR 22             /* type + stopping + soft + hard + seq */
#define FREE_GRACE_MS 2000     /* tq_pool_free: how long idle children get to exit */
#define RESPAWN_RETRY_S 1      /* fork failed: try again after this */

typedef struct pf_pool pf_pool;
typedef struct slot slot;

typedef struct proc {
    struct proc *next_dead; /* graveyard link */
    slot *slot;
    pid_t pid;
    int fd; /* parent's end, -1 once closed */
    struct event *rev, *wev;
    struct evbuffer *in, *out;
    long tasks;           /* jobs sent to this process */
    uint64_t added, sent; /* bytes queued for it and written to its socket */
    int exiting;          /* announced it exits after its last outcome (recycling) */
    int dead;             /* exited, reaped or being killed: never give it a job */
} proc;

/* A job sent to a slot's child. The child runs its frames in order, so the
 * slot's first job is the one running and the others wait in its socket. */
typedef struct pjob {
    struct pjob *next;
    void *cookie;
    int64_t soft_ms, hard_ms;
    uint32_t seq;       /* job number, names the job in soft-limit signals */
    uint64_t frame_end; /* proc->added once its frame was queued */
} pjob;

struct slot {
    pf_pool *pool;
    int idx;
    proc *proc;
    pjob *head, *tail; /* head: running (or about to start) */
    int njobs;
    /* the head job */
    int64_t started_us;
    int hard_killed;
    uint32_t seq;                    /* the last job number given out */
    struct event *soft_ev, *hard_ev; /* fd-less timers for the head job */
};

struct pf_pool {
    struct event_base *base;
    tq_pool_config cfg;
    tq_msg_limits limits;
    tq_logger clog; /* the children's logger: cfg.log named "child" */
    const tq_logger *log;
    slot *slots;
    int n;
    proc *graveyard;
    struct event *sigchld_ev, *gc_ev, *respawn_ev;
    int backlog; /* jobs per child beyond the running one */
    int stopping;
    int dead;
};

/* ------------------------------------------------------------------ child */

/* What the child's signal handler shares with the child's main loop. */
typedef struct child_sig {
    tq_exec_flags flags;
    volatile sig_atomic_t cur_seq;  /* job running now */
    volatile sig_atomic_t soft_seq; /* last job whose soft limit passed */
} child_sig;

/* The one piece of mutable file-scope state: a signal handler can reach the
 * child's flags no other way. Set once in the child before its handlers are
 * installed; never used in the parent. */
static child_sig *child_state;

static void child_sig_cb(int sig, siginfo_t *si, void *uctx)
{
    (void)uctx;
    if (!child_state)
        return;
    if (sig == SIGUSR2) {
        child_state->flags.stopping = 1;
        return;
    }
    /* Only the pool's sigqueue carries a job number; a plain kill (an
     * operator) counts for the job running now. */
    sig_atomic_t seq =
        si && si->si_code == SI_QUEUE ? (sig_atomic_t)si->si_value.sival_int : child_state->cur_seq;
    child_state->soft_seq = seq;
    if (seq == child_state->cur_seq)
        child_state->flags.soft_limit = 1;
}

/* The child's reads go through one buffer: frames that wait in the socket
 * (the backlog) are taken several per read(2), not two reads each. */
typedef struct child_in {
    int fd;
    size_t start, end;
    char buf[65536];
} child_in;

/* Read exactly n bytes. 1: done, 0: EOF before any byte, -1: error or EOF
 * in the middle. */
static int read_full(child_in *in, void *dst, size_t n)
{
    char *d = dst;
    size_t got = 0;
    while (got < n) {
        if (in->start < in->end) {
            size_t k = in->end - in->start;
            if (k > n - got)
                k = n - got;
            memcpy(d + got, in->buf + in->start, k);
            in->start += k;
            got += k;
            continue;
        }
        /* Large remainders go straight to their destination. */
        int direct = n - got >= sizeof(in->buf);
        ssize_t r =
            direct ? read(in->fd, d + got, n - got) : read(in->fd, in->buf, sizeof(in->buf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return got == 0 && r == 0 ? 0 : -1;
        if (direct) {
            got += (size_t)r;
        } else {
            in->start = 0;
            in->end = (size_t)r;
        }
    }
    return 1;
}

static int write_full(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* One frame, in one write(2) when it is small (an outcome nearly always
 * is): fewer system calls, and the parent never wakes for half a frame. */
static int child_send(int fd, char type, const void *hdr, size_t hlen, const void *body,
                      size_t blen)
{
    uint32_t len = (uint32_t)(1 + hlen + blen);
    char small[4096];
    size_t total = 4 + (size_t)len;
    char *f = total <= sizeof(small) ? small : tq_xmalloc(total);
    memcpy(f, &len, 4);
    f[4] = type;
    if (hlen)
        memcpy(f + 5, hdr, hlen);
    if (blen)
        memcpy(f + 5 + hlen, body, blen);
    int rc = write_full(fd, f, total);
    if (f != small)
        free(f);
    return rc;
}

typedef struct child_progress {
    int fd;
} child_progress;

static void child_progress_cb(void *arg, double fraction, const char *message)
{
    const child_progress *cp = arg;
    /* Best effort: a lost progress report is not worth killing the task. */
    child_send(cp->fd, 'P', &fraction, sizeof(fraction), message, message ? strlen(message) : 0);
}

/* Current resident set in kB, -1 when unknown. */
static long current_rss_kb(void)
{
    char buf[128];
    long size, resident;
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t r = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (r <= 0)
        return -1;
    buf[r] = '\0';
    if (sscanf(buf, "%ld %ld", &size, &resident) != 2)
        return -1;
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Keep only stdio and our socket: the child must not hold the worker's Redis
 * connections, libevent's internal fds or the other children's sockets. */
static int child_close_fds(int fd)
{
    if (fd < 3) {
        int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (nfd < 0)
            return -1;
        fd = nfd;
    }
#ifdef SYS_close_range
    if (syscall(SYS_close_range, 3u, (unsigned)fd - 1, 0u) == 0 &&
        syscall(SYS_close_range, (unsigned)fd + 1, ~0u, 0u) == 0)
        return fd;
#endif
    struct rlimit rl;
    long max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
                   ? (long)rl.rlim_cur
                   : 65536;
    for (long i = 3; i < max; i++) {
        if (i != fd)
            close((int)i);
    }
    return fd;
}

static void child_signals(void)
{
    struct sigaction sa;
    sigset_t none;

    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    /* The parent decides when a child ends: a terminal's ^C or a SIGTERM to
     * the process group must not kill running tasks behind its back. */
    sa.sa_handler = SIG_IGN;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* Whatever libevent installed in the parent points at its signal pipe,
     * which is closed here. */
    sa.sa_handler = SIG_DFL;
    static const int dfl[] = {SIGCHLD, SIGPIPE, SIGHUP, SIGQUIT, SIGALRM, SIGWINCH};
    for (size_t i = 0; i < sizeof(dfl) / sizeof(dfl[0]); i++)
        sigaction(dfl[i], &sa, NULL);
    sa.sa_sigaction = child_sig_cb;
    sa.sa_flags = SA_RESTART | SA_SIGINFO;
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

static void child_main(pf_pool *p, int fd, pid_t parent)
{
    child_sig cs;
    const tq_logger *log = p->log ? &p->clog : NULL;
    long tasks = 0;
    char *frame = NULL;

    memset(&cs, 0, sizeof(cs));
    cs.cur_seq = cs.soft_seq = -1;
    child_state = &cs;
    child_signals();
    /* Die with the worker even if it is SIGKILLed; getppid catches the race
     * where it died before prctl. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(1);
    fd = child_close_fds(fd);
    if (fd < 0)
        _exit(1);
    child_in inbuf; /* on the stack: the child ends with _exit, never a free */
    child_in *in = &inbuf;
    in->fd = fd;
    in->start = in->end = 0;

    child_progress cp = {fd};
    tq_exec_env env = {p->cfg.reg, &p->limits, &cs.flags, child_progress_cb, &cp, 0};
    for (;;) {
        uint32_t len;
        int r = read_full(in, &len, 4);
        if (r == 0)
            _exit(0); /* the parent closed our socket: a normal stop */
        if (r < 0 || len < JOB_HDR || len > FRAME_MAX) {
            tq_log_error(log, "bad frame from the worker (length %u)", (unsigned)len);
            _exit(2);
        }
        frame = tq_xmalloc(len);
        if (read_full(in, frame, len) != 1 || frame[0] != 'J') {
            tq_log_error(log, "truncated or unknown frame from the worker");
            _exit(2);
        }
        /* frame[2..18) carries the soft and hard limits for diagnostics;
         * the parent's timers enforce them. */
        uint32_t seq;
        memcpy(&seq, frame + 18, 4);
        /* Publish the job number, clear what an older job left, then take
         * over a soft-limit signal for this job that came before we read
         * the frame. After the clear nothing here writes 0, so a handler
         * running between any two of these lines cannot be undone. */
        cs.cur_seq = (sig_atomic_t)(seq & 0x7fffffff);
        cs.flags.soft_limit = 0;
        if (cs.soft_seq == cs.cur_seq)
            cs.flags.soft_limit = 1;
        if (frame[1])
            cs.flags.stopping = 1;

        tq_outcome out;
        tq_exec_run(&env, frame + JOB_HDR, len - JOB_HDR, &out);
        free(frame);
        frame = NULL;
        tasks++;

        long rss = p->cfg.max_memory_per_child_kb > 0 ? current_rss_kb() : -1;
        int recycle = (p->cfg.max_tasks_per_child > 0 && tasks >= p->cfg.max_tasks_per_child) ||
                      (p->cfg.max_memory_per_child_kb > 0 && rss > p->cfg.max_memory_per_child_kb);
        size_t plen;
        char *packed = tq_outcome_pack(&out, &plen);
        uint8_t exiting = (uint8_t)recycle;
        int wr = child_send(fd, 'O', &exiting, 1, packed, plen);
        free(packed);
        tq_outcome_clear(&out);
        if (wr < 0)
            _exit(1);
        if (recycle) {
            tq_log_debug(log, "recycling after %ld tasks (rss %ld kB)", tasks, rss);
            _exit(0);
        }
    }
}

/* ----------------------------------------------------------------- parent */

static void finish_job(slot *s, tq_outcome *o);
static void finish_all(slot *s, tq_outcome *o, const char *why);
static void proc_read_cb(evutil_socket_t fd, short what, void *arg);
static void proc_write_cb(evutil_socket_t fd, short what, void *arg);

static const char *sig_name(int sig, char *buf, size_t len)
{
    const char *abbrev = sigabbrev_np(sig);
    snprintf(buf, len, "SIG%s", abbrev ? abbrev : "?");
    return buf;
}

static int spawn(pf_pool *p, slot *s, char *err, size_t errlen)
{
    int sv[2] = {-1, -1};
    proc *c = NULL;
    int rc = -1;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        snprintf(err, errlen, "socketpair: %s", strerror(errno));
        goto out;
    }
    fflush(NULL); /* nothing buffered may be written twice */
    /* Until the child has installed its handlers, a SIGUSR1/2 from the pool
     * or a terminal's SIGINT would kill it: keep them blocked across fork;
     * the child unblocks them once ready (pending ones are then handled). */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigaddset(&block, SIGUSR2);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0)
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        goto out;
    }
    if (pid == 0) {
        close(sv[0]);
        child_main(p, sv[1], parent);
        _exit(0);
    }
    close(sv[1]);
    sv[1] = -1;
    if (evutil_make_socket_nonblocking(sv[0]) < 0) {
        snprintf(err, errlen, "cannot make the child socket non-blocking");
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        goto out;
    }
    c = tq_xcalloc(1, sizeof(*c));
    c->slot = s;
    c->pid = pid;
    c->fd = sv[0];
    sv[0] = -1;
    c->in = evbuffer_new();
    c->out = evbuffer_new();
    c->rev = event_new(p->base, c->fd, EV_READ | EV_PERSIST, proc_read_cb, c);
    c->wev = event_new(p->base, c->fd, EV_WRITE | EV_PERSIST, proc_write_cb, c);
    if (!c->in || !c->out || !c->rev || !c->wev || event_add(c->rev, NULL) < 0) {
        fprintf(stderr, "taskq: out of memory creating a child's events\n");
        abort();
    }
    s->proc = c;
    tq_log_debug(p->log, "child %d started (pid %d)", s->idx, (int)pid);
    rc = 0;
out:
    if (sv[0] >= 0)
        close(sv[0]);
    if (sv[1] >= 0)
        close(sv[1]);
    return rc;
}

static void proc_free(proc *c)
{
    if (!c)
        return;
    if (c->rev)
        event_free(c->rev);
    if (c->wev)
        event_free(c->wev);
    if (c->in)
        evbuffer_free(c->in);
    if (c->out)
        evbuffer_free(c->out);
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

static void proc_close_fd(proc *c)
{
    if (c->fd < 0)
        return;
    event_del(c->rev);
    event_del(c->wev);
    close(c->fd);
    c->fd = -1;
}

/* Detach a reaped process from its slot; the memory goes after the loop
 * iteration (gc_cb), because we may be inside one of its callbacks. */
static void retire(pf_pool *p, slot *s)
{
    proc *c = s->proc;
    if (!c)
        return;
    c->dead = 1;
    proc_close_fd(c);
    s->proc = NULL;
    c->slot = NULL;
    c->next_dead = p->graveyard;
    p->graveyard = c;
    event_active(p->gc_ev, EV_TIMEOUT, 1);
}

static void gc_cb(evutil_socket_t fd, short what, void *arg)
{
    pf_pool *p = arg;
    (void)fd;
    (void)what;
    while (p->graveyard) {
        proc *c = p->graveyard;
        p->graveyard = c->next_dead;
        proc_free(c);
    }
}

static void respawn_all(pf_pool *p)
{
    char err[128];
    if (p->dead)
        return;
    for (int i = 0; i < p->n; i++) {
        if (p->slots[i].proc)
            continue;
        if (spawn(p, &p->slots[i], err, sizeof(err)) < 0) {
            tq_log_error(p->log, "cannot replace child %d: %s; retrying in %d s", i, err,
                         RESPAWN_RETRY_S);
            struct timeval tv = {RESPAWN_RETRY_S, 0};
            evtimer_add(p->respawn_ev, &tv);
            return;
        }
    }
}

static void respawn_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    respawn_all(arg);
}

/* Push buffered output to the child; on EAGAIN wait for EV_WRITE. A write
 * error means the child is gone: SIGKILL it and let the reaper report it. */
static void flush_out(proc *c)
{
    while (evbuffer_get_length(c->out) > 0 && c->fd >= 0) {
        size_t n = evbuffer_get_length(c->out);
        if (n > 65536)
            n = 65536;
        const unsigned char *data = evbuffer_pullup(c->out, (ssize_t)n);
        ssize_t w = send(c->fd, data, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            event_add(c->wev, NULL);
            return;
        }
        if (w <= 0) {
            c->dead = 1;
            kill(c->pid, SIGKILL);
            event_del(c->wev);
            return;
        }
        evbuffer_drain(c->out, (size_t)w);
        c->sent += (uint64_t)w;
    }
    event_del(c->wev);
}

/* The whole frame of the slot's head job reached its child's socket. */
static int head_delivered(const slot *s)
{
    return s->head && s->proc && s->proc->sent >= s->head->frame_end;
}

static void proc_write_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    flush_out(arg);
}

static void protocol_error(pf_pool *p, proc *c, const char *why)
{
    tq_log_error(p->log, "child pid %d: %s; killing it", (int)c->pid, why);
    c->dead = 1;
    kill(c->pid, SIGKILL);
}

/* Handle the complete frames in c->in. Stops early when a callback changed
 * the slot (the pool was killed from `done`). */
static void process_frames(pf_pool *p, proc *c)
{
    while (c->slot) {
        uint32_t len;
        size_t have = evbuffer_get_length(c->in);
        if (have < 4)
            return;
        evbuffer_copyout(c->in, &len, 4);
        if (len < 1 || len > FRAME_MAX) {
            protocol_error(p, c, "frame length out of range");
            return;
        }
        if (have < 4 + (size_t)len)
            return;
        evbuffer_drain(c->in, 4);
        char *f = (char *)evbuffer_pullup(c->in, len);
        slot *s = c->slot;
        if (f[0] == 'O' && len >= 2 && s && s->head && s->proc == c) {
            tq_outcome o;
            c->exiting = f[1] != 0;
            int ok = tq_outcome_unpack(f + 2, len - 2, &o) == 0;
            evbuffer_drain(c->in, len);
            if (!ok) {
                protocol_error(p, c, "undecodable outcome frame");
                return;
            }
            finish_job(s, &o);
        } else if (f[0] == 'P' && len >= 9) {
            double frac;
            memcpy(&frac, f + 1, 8);
            char *m = tq_xstrndup(f + 9, len - 9);
            evbuffer_drain(c->in, len);
            if (s && s->head && s->proc == c && p->cfg.progress)
                p->cfg.progress(p->cfg.arg, s->head->cookie, frac, m);
            free(m);
        } else {
            protocol_error(p, c, "unexpected frame");
            return;
        }
        if (c->slot != s || !s)
            return; /* retired by a callback */
    }
}

/* Read what the child sent. Returns 0 on EOF or error (the socket is then
 * closed; the death itself is handled by the SIGCHLD reaper). */
static int read_some(proc *c)
{
    for (;;) {
        int n = evbuffer_read(c->in, c->fd, 65536);
        if (n > 0)
            return 1;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return -1;
        proc_close_fd(c);
        return 0;
    }
}

static void proc_read_cb(evutil_socket_t fd, short what, void *arg)
{
    proc *c = arg;
    (void)fd;
    (void)what;
    if (c->fd < 0)
        return;
    read_some(c);
    if (c->slot)
        process_frames(c->slot->pool, c);
}

static void fill_crash(slot *s, tq_outcome *o, int status, const struct rusage *ru)
{
    char nm[32];
    tq_outcome_init(o);
    if (!head_delivered(s)) {
        /* It cannot have started: put it back without counting an attempt. */
        tq_outcome_set_error(o, TQ_OUT_ABORTED, "WorkerLostError",
                             "executor died before the job reached it");
    } else if (s->hard_killed) {
        tq_outcome_set_error(o, TQ_OUT_CRASH, "TimeLimitExceeded",
                             "hard time limit of %lld ms exceeded", (long long)s->head->hard_ms);
        o->time_limit = 1;
        o->signal = SIGKILL;
    } else if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        tq_outcome_set_error(o, TQ_OUT_CRASH, "WorkerLostError",
                             "executor killed by signal %d (%s)", sig,
                             sig_name(sig, nm, sizeof(nm)));
        o->signal = sig;
    } else {
        tq_outcome_set_error(o, TQ_OUT_CRASH, "WorkerLostError", "executor exited with status %d",
                             WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
    o->runtime_ms = (double)(tq_mono_us() - s->started_us) / 1000.0;
    o->maxrss_kb = ru ? ru->ru_maxrss : -1;
}

/* A child process has been reaped with `status`. */
static void proc_exited(pf_pool *p, slot *s, int status, const struct rusage *ru)
{
    proc *c = s->proc;
    c->dead = 1;
    /* An outcome written just before exiting (recycling) may still sit in
     * the socket: read it before calling the job lost. */
    while (c->fd >= 0 && read_some(c) > 0)
        ;
    process_frames(p, c);
    if (s->proc != c)
        return; /* a callback killed the pool meanwhile */
    tq_outcome o;
    int lost = s->head != NULL;
    if (lost && c->exiting) {
        /* It recycled itself after its last outcome: what it held behind
         * that never started. */
        tq_outcome_init(&o);
        tq_outcome_set_error(&o, TQ_OUT_ABORTED, "WorkerLostError",
                             "executor recycled before the job started");
    } else if (lost) {
        fill_crash(s, &o, status, ru);
        tq_log_warn(p->log, "child %d (pid %d) lost its task: %s", s->idx, (int)c->pid,
                    o.err_message);
    } else if (!c->exiting) {
        tq_log_warn(p->log, "idle child %d (pid %d) died (status 0x%x)", s->idx, (int)c->pid,
                    status);
    }
    retire(p, s);
    respawn_all(p);
    if (lost)
        finish_all(s, &o, "executor died before the job started");
}

static void sigchld_cb(evutil_socket_t fd, short what, void *arg)
{
    pf_pool *p = arg;
    (void)fd;
    (void)what;
    for (int i = 0; i < p->n; i++) {
        slot *s = &p->slots[i];
        if (!s->proc)
            continue;
        int status;
        struct rusage ru;
        pid_t r = wait4(s->proc->pid, &status, WNOHANG, &ru);
        if (r == s->proc->pid)
            proc_exited(p, s, status, &ru);
    }
}

static void soft_cb(evutil_socket_t fd, short what, void *arg)
{
    slot *s = arg;
    (void)fd;
    (void)what;
    if (s->head && s->proc && !s->proc->dead) {
        union sigval v;
        v.sival_int = (int)(s->head->seq & 0x7fffffff);
        sigqueue(s->proc->pid, SIGUSR1, v);
    }
}

static void hard_cb(evutil_socket_t fd, short what, void *arg)
{
    slot *s = arg;
    (void)fd;
    (void)what;
    if (s->head && s->proc && !s->proc->dead) {
        tq_log_warn(s->pool->log, "child %d (pid %d): hard time limit of %lld ms, killing it",
                    s->idx, (int)s->proc->pid, (long long)s->head->hard_ms);
        s->hard_killed = 1;
        s->proc->dead = 1;
        kill(s->proc->pid, SIGKILL);
    }
}

static void arm(struct event *ev, int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(ev, &tv);
}

/* The slot's head job starts now (its child is done with the one before):
 * its time limits count from here. */
static void head_started(slot *s)
{
    s->hard_killed = 0;
    evtimer_del(s->soft_ev);
    evtimer_del(s->hard_ev);
    if (!s->head)
        return;
    s->started_us = tq_mono_us();
    if (s->head->soft_ms > 0)
        arm(s->soft_ev, s->head->soft_ms);
    if (s->head->hard_ms > 0)
        arm(s->hard_ev, s->head->hard_ms);
}

/* End the slot's head job, start the clock of the next one, and hand the
 * outcome to the caller, last. */
static void finish_job(slot *s, tq_outcome *o)
{
    pf_pool *p = s->pool;
    pjob *j = s->head;
    s->head = j->next;
    if (!s->head)
        s->tail = NULL;
    s->njobs--;
    head_started(s);
    void *cookie = j->cookie;
    free(j);
    p->cfg.done(p->cfg.arg, cookie, o);
}

/* Every job of the slot ends: the head with *o, the ones behind it (never
 * started) as ABORTED for `why`. The list is detached first, so a callback
 * that kills the pool finds the slot empty. */
static void finish_all(slot *s, tq_outcome *o, const char *why)
{
    pf_pool *p = s->pool;
    pjob *j = s->head;
    s->head = s->tail = NULL;
    s->njobs = 0;
    head_started(s);
    for (int first = 1; j; first = 0) {
        pjob *next = j->next;
        void *cookie = j->cookie;
        free(j);
        if (first) {
            p->cfg.done(p->cfg.arg, cookie, o);
        } else {
            tq_outcome a;
            tq_outcome_init(&a);
            tq_outcome_set_error(&a, TQ_OUT_ABORTED, "WorkerLostError", "%s", why);
            p->cfg.done(p->cfg.arg, cookie, &a);
        }
        j = next;
    }
}

/* Jobs slot s takes now: its child's free places (one running plus the
 * backlog), never more than a recycling child has tasks left. */
static int slot_room(const pf_pool *p, const slot *s)
{
    if (p->dead || !s->proc || s->proc->dead || s->proc->exiting || s->proc->fd < 0)
        return 0;
    long r = 1 + p->backlog - s->njobs;
    if (p->cfg.max_tasks_per_child > 0 && p->cfg.max_tasks_per_child - s->proc->tasks < r)
        r = p->cfg.max_tasks_per_child - s->proc->tasks;
    return r > 0 ? (int)r : 0;
}

/* Hand the job to slot s. -1 when its child turned out to be dead already
 * (the send failed at once): then the job was not taken. */
static int submit_to(pf_pool *p, slot *s, const tq_pool_job *job)
{
    proc *c = s->proc;
    uint32_t len = (uint32_t)(JOB_HDR + job->msglen);
    char hdr[4 + JOB_HDR];
    memcpy(hdr, &len, 4);
    hdr[4] = 'J';
    hdr[5] = (char)(p->stopping != 0);
    memcpy(hdr + 6, &job->soft_limit_ms, 8);
    memcpy(hdr + 14, &job->hard_limit_ms, 8);
    s->seq = (s->seq + 1) & 0x7fffffff;
    memcpy(hdr + 22, &s->seq, 4);
    size_t before = evbuffer_get_length(c->out);
    evbuffer_add(c->out, hdr, sizeof(hdr));
    if (job->msglen)
        evbuffer_add(c->out, job->msg, job->msglen);
    c->added += sizeof(hdr) + job->msglen;

    pjob *j = tq_xcalloc(1, sizeof(*j));
    j->cookie = job->cookie;
    j->soft_ms = job->soft_limit_ms;
    j->hard_ms = job->hard_limit_ms;
    j->seq = s->seq;
    j->frame_end = c->added;
    if (s->tail)
        s->tail->next = j;
    else
        s->head = j;
    s->tail = j;
    s->njobs++;
    c->tasks++;
    if (s->head == j)
        head_started(s);
    /* A lone job goes now. Frames queued behind others go out together
     * when the caller's callback returns (the write event, activated here
     * unless output is already waiting for it). */
    if (s->head == j)
        flush_out(c);
    else if (before == 0)
        event_active(c->wev, EV_WRITE, 1);
    if (c->dead && s->head == j && !head_delivered(s)) {
        /* The child died while idle and the pool has not reaped it yet. */
        s->head = s->tail = NULL;
        s->njobs = 0;
        free(j);
        head_started(s);
        evbuffer_drain(c->out, evbuffer_get_length(c->out));
        c->added = c->sent;
        c->tasks--;
        return -1;
    }
    /* A later write error kills the child; the reaper then completes the
     * job (ABORTED, as it never arrived), so it is accepted. */
    return 0;
}

static int pf_submit(void *impl, const tq_pool_job *job)
{
    pf_pool *p = impl;

    if (job->msglen > FRAME_MAX - JOB_HDR)
        return -1;
    /* The least loaded child first: an idle one, else the shortest queue. */
    for (;;) {
        slot *best = NULL;
        for (int i = 0; i < p->n; i++) {
            slot *s = &p->slots[i];
            if (slot_room(p, s) > 0 && (!best || s->njobs < best->njobs))
                best = s;
        }
        if (!best)
            return -1;
        if (submit_to(p, best, job) == 0)
            return 0;
        /* Its child was dead already: it has no room now; try another. */
    }
}

static int pf_idle(const void *impl)
{
    const pf_pool *p = impl;
    int n = 0;
    for (int i = 0; i < p->n; i++)
        n += slot_room(p, &p->slots[i]);
    return n;
}

static int pf_running(const void *impl)
{
    const pf_pool *p = impl;
    int n = 0;
    for (int i = 0; i < p->n; i++)
        n += p->slots[i].njobs;
    return n;
}

static void pf_set_backlog(void *impl, int per_executor)
{
    pf_pool *p = impl;
    p->backlog = per_executor;
}

/* A job behind another is already in its child's socket, and the child
 * will run it: nothing can be taken back. (Backlogs are only used for
 * short tasks, so a warm shutdown waits little for them.) */
static int pf_reclaim(void *impl, void (*fn)(void *arg, void *cookie), void *arg)
{
    (void)impl;
    (void)fn;
    (void)arg;
    return 0;
}

static void pf_stopping(void *impl)
{
    pf_pool *p = impl;
    p->stopping = 1;
    for (int i = 0; i < p->n; i++) {
        slot *s = &p->slots[i];
        if (s->head && s->proc && !s->proc->dead)
            kill(s->proc->pid, SIGUSR2);
    }
}

static void wait_blocking(pid_t pid)
{
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

static void pf_kill(void *impl)
{
    pf_pool *p = impl;
    p->dead = 1;
    if (p->respawn_ev)
        evtimer_del(p->respawn_ev);
    /* Signal every busy child first, then reap: they die in parallel. */
    for (int i = 0; i < p->n; i++) {
        slot *s = &p->slots[i];
        if (s->head && s->proc)
            kill(s->proc->pid, SIGKILL);
    }
    for (int i = 0; i < p->n; i++) {
        slot *s = &p->slots[i];
        if (!s->head || !s->proc)
            continue;
        wait_blocking(s->proc->pid);
        retire(p, s);
        tq_outcome o;
        tq_outcome_init(&o);
        tq_outcome_set_error(&o, TQ_OUT_ABORTED, "WorkerShutdown",
                             "executor killed by a cold shutdown");
        o.runtime_ms = (double)(tq_mono_us() - s->started_us) / 1000.0;
        finish_all(s, &o, "not started at a cold shutdown");
    }
}

static void pf_free(void *impl)
{
    pf_pool *p = impl;
    if (!p)
        return;
    pf_kill(p);
    /* Idle children exit on EOF; give them a moment, then insist. */
    for (int i = 0; i < p->n; i++) {
        if (p->slots[i].proc)
            proc_close_fd(p->slots[i].proc);
    }
    int64_t deadline = tq_mono_ms() + FREE_GRACE_MS;
    for (;;) {
        int left = 0;
        for (int i = 0; i < p->n; i++) {
            slot *s = &p->slots[i];
            if (!s->proc)
                continue;
            pid_t r = waitpid(s->proc->pid, NULL, WNOHANG);
            if (r == s->proc->pid || (r < 0 && errno == ECHILD))
                retire(p, s);
            else
                left++;
        }
        if (!left)
            break;
        if (tq_mono_ms() >= deadline) {
            for (int i = 0; i < p->n; i++) {
                slot *s = &p->slots[i];
                if (!s->proc)
                    continue;
                tq_log_warn(p->log, "child %d (pid %d) did not exit, killing it", i,
                            (int)s->proc->pid);
                kill(s->proc->pid, SIGKILL);
                wait_blocking(s->proc->pid);
                retire(p, s);
            }
            break;
        }
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    gc_cb(-1, 0, p);
    for (int i = 0; i < p->n; i++) {
        if (p->slots[i].soft_ev)
            event_free(p->slots[i].soft_ev);
        if (p->slots[i].hard_ev)
            event_free(p->slots[i].hard_ev);
    }
    free(p->slots);
    if (p->sigchld_ev)
        event_free(p->sigchld_ev);
    if (p->gc_ev)
        event_free(p->gc_ev);
    if (p->respawn_ev)
        event_free(p->respawn_ev);
    free(p);
}

void *tq_pool_prefork_new(struct event_base *base, const tq_pool_config *cfg, char *err,
                          size_t errlen)
{
    pf_pool *p = tq_xcalloc(1, sizeof(*p));
    void *ret = NULL;

    p->base = base;
    p->cfg = *cfg;
    if (cfg->limits)
        p->limits = *cfg->limits;
    else
        tq_msg_limits_default(&p->limits);
    p->log = cfg->log;
    if (cfg->log) {
        p->clog = *cfg->log;
        p->clog.name = "child";
    }
    p->n = cfg->concurrency;
    p->slots = tq_xcalloc((size_t)p->n, sizeof(*p->slots));
    /* The worker installs no SIGCHLD handler of its own: this event is how
     * child deaths reach the loop. Added before the first fork so no death
     * can be missed. */
    p->sigchld_ev = evsignal_new(base, SIGCHLD, sigchld_cb, p);
    p->gc_ev = event_new(base, -1, 0, gc_cb, p);
    p->respawn_ev = evtimer_new(base, respawn_cb, p);
    if (!p->sigchld_ev || !p->gc_ev || !p->respawn_ev || event_add(p->sigchld_ev, NULL) < 0) {
        snprintf(err, errlen, "cannot create the pool's events");
        goto out;
    }
    for (int i = 0; i < p->n; i++) {
        slot *s = &p->slots[i];
        s->pool = p;
        s->idx = i;
        s->soft_ev = evtimer_new(base, soft_cb, s);
        s->hard_ev = evtimer_new(base, hard_cb, s);
        if (!s->soft_ev || !s->hard_ev) {
            snprintf(err, errlen, "cannot create the pool's timers");
            goto out;
        }
    }
    for (int i = 0; i < p->n; i++) {
        if (spawn(p, &p->slots[i], err, errlen) < 0)
            goto out;
    }
    tq_log_info(p->log, "prefork pool: %d children", p->n);
    ret = p;
    p = NULL;
out:
    pf_free(p);
    return ret;
}

const tq_pool_ops tq_pool_prefork_ops = {
    "prefork",  pf_submit,   pf_idle, pf_running, pf_set_backlog,
    pf_reclaim, pf_stopping, pf_kill, pf_free,
};
