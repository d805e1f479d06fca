/* harness: processes and servers for integration tests (see harness.h).
 *
 * Invariants: every child we fork is in `procs` until it is reaped, so
 * th_cleanup can always kill it; every directory we create is in `dirs`
 * until it is removed. Waits are deadline polls on the monotonic clock (a
 * few milliseconds between probes), never fixed sleeps used as
 * synchronisation. */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PROCS 128
#define MAX_DIRS 64
#define READY_TIMEOUT_MS 10000
#define STOP_TIMEOUT_MS 10000

typedef struct proc {
    pid_t pid;
    char log[TH_PATH_MAX];
} proc;

static proc procs[MAX_PROCS];
static int nprocs;
static char *dirs[MAX_DIRS];
static int ndirs;
static char tmproot[TH_PATH_MAX];
static int registered;
static unsigned spawn_seq;

static void register_cleanup(void)
{
    if (!registered) {
        registered = 1;
        atexit(th_cleanup);
    }
}

long long th_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The pause between two probes of a deadline poll. */
static void poll_pause(void)
{
    struct timespec ts = {0, 5 * 1000 * 1000};
    nanosleep(&ts, NULL);
}

int th_wait_until(int (*cond)(void *arg), void *arg, int timeout_ms)
{
    long long deadline = th_mono_ms() + timeout_ms;
    for (;;) {
        if (cond(arg))
            return 1;
        if (th_mono_ms() >= deadline)
            return cond(arg) ? 1 : 0;
        poll_pause();
    }
}

static char *make_tmpdir(void)
{
    char tmpl[] = "/tmp/taskq-test-XXXXXX";
    register_cleanup();
    if (ndirs == MAX_DIRS) {
        fprintf(stderr, "harness: too many temporary directories\n");
        return NULL;
    }
    if (!mkdtemp(tmpl)) {
        fprintf(stderr, "harness: mkdtemp: %s\n", strerror(errno));
        return NULL;
    }
    char *d = strdup(tmpl);
    if (!d)
        abort();
    dirs[ndirs++] = d;
    return d;
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void remove_dir(const char *d)
{
    if (getenv("TASKQ_TEST_KEEP")) {
        fprintf(stderr, "harness: keeping %s\n", d);
        return;
    }
    nftw(d, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* Remove d (one of ours) from disk and from the list. */
static void drop_dir(const char *d)
{
    for (int i = 0; i < ndirs; i++) {
        if (strcmp(dirs[i], d) == 0) {
            remove_dir(dirs[i]);
            free(dirs[i]);
            dirs[i] = dirs[--ndirs];
            return;
        }
    }
}

const char *th_tmpdir(void)
{
    if (!tmproot[0]) {
        char *d = make_tmpdir();
        if (!d)
            abort();
        snprintf(tmproot, sizeof(tmproot), "%s", d);
    }
    return tmproot;
}

static proc *find_proc(pid_t pid)
{
    for (int i = 0; i < nprocs; i++)
        if (procs[i].pid == pid)
            return &procs[i];
    return NULL;
}

static void untrack(pid_t pid)
{
    for (int i = 0; i < nprocs; i++) {
        if (procs[i].pid == pid) {
            procs[i] = procs[--nprocs];
            return;
        }
    }
}

/* Fork and exec argv with output appended to logpath. */
static pid_t spawn_logged(const char *const *argv, const char *const *env, const char *logpath)
{
    register_cleanup();
    if (nprocs == MAX_PROCS) {
        fprintf(stderr, "harness: too many processes\n");
        return -1;
    }
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "harness: fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        setpgid(0, 0);
        /* Die with the test binary, even when it is killed by a time-out. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int in = open("/dev/null", O_RDONLY);
        int out = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (in < 0 || out < 0)
            _exit(127);
        dup2(in, 0);
        dup2(out, 1);
        dup2(out, 2);
        /* Tests run as root on CI; the worker refuses root unless told
         * (docs/SECURITY.md). A test's own env entries below still win. */
        setenv("TASKQ_ALLOW_ROOT", "1", 0);
        for (int i = 0; env && env[i]; i++) {
            const char *eq = strchr(env[i], '=');
            if (!eq) {
                unsetenv(env[i]);
            } else {
                char *name = strndup(env[i], (size_t)(eq - env[i]));
                if (!name || setenv(name, eq + 1, 1) < 0)
                    _exit(127);
                free(name);
            }
        }
        /* execvp's argv is char *const[]; the strings are not modified. */
        execvp(argv[0], (char *const *)(uintptr_t)argv);
        dprintf(2, "harness: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid); /* also here, so the group exists before we signal it */
    proc *p = &procs[nprocs++];
    p->pid = pid;
    snprintf(p->log, sizeof(p->log), "%s", logpath);
    return pid;
}

pid_t th_spawn(const char *const *argv, const char *const *env)
{
    char logpath[TH_PATH_MAX];
    const char *base = strrchr(argv[0], '/');
    base = base ? base + 1 : argv[0];
    if (snprintf(logpath, sizeof(logpath), "%s/%s.%u.log", th_tmpdir(), base, ++spawn_seq) >=
        (int)sizeof(logpath)) {
        fprintf(stderr, "harness: log path too long\n");
        return -1;
    }
    return spawn_logged(argv, env, logpath);
}

const char *th_proc_log(pid_t pid)
{
    proc *p = find_proc(pid);
    return p ? p->log : NULL;
}

int th_signal(pid_t pid, int sig)
{
    if (!find_proc(pid))
        return -1;
    return kill(pid, sig);
}

int th_signal_group(pid_t pid, int sig)
{
    if (!find_proc(pid))
        return -1;
    return kill(-pid, sig);
}

int th_wait_exit(pid_t pid, int timeout_ms, int *status)
{
    long long deadline = th_mono_ms() + timeout_ms;
    int st;
    if (!find_proc(pid))
        return -1;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD)) {
            untrack(pid);
            if (status)
                *status = r == pid ? st : 0;
            return 0;
        }
        if (th_mono_ms() >= deadline)
            return -1;
        poll_pause();
    }
}

int th_stop_proc(pid_t pid, int timeout_ms)
{
    int st = 0;
    if (!find_proc(pid))
        return -1;
    kill(pid, SIGTERM);
    if (th_wait_exit(pid, timeout_ms, &st) == 0) {
        kill(-pid, SIGKILL); /* leftovers of its group, if any */
        return st;
    }
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
    th_wait_exit(pid, 60000, &st);
    return st;
}

void th_cleanup(void)
{
    while (nprocs > 0) {
        pid_t pid = procs[nprocs - 1].pid;
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        nprocs--;
    }
    while (ndirs > 0) {
        char *d = dirs[--ndirs];
        remove_dir(d);
        free(d);
    }
    tmproot[0] = '\0';
}

char *th_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0, cap = 0;
    if (!f)
        return NULL;
    for (;;) {
        if (cap - n < 4096) {
            cap = cap ? cap * 2 : 8192;
            char *nb = realloc(buf, cap);
            if (!nb)
                abort();
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0)
            break;
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

void th_dump_file(const char *title, const char *path)
{
    size_t n = 0;
    char *s = path ? th_read_file(path, &n) : NULL;
    const size_t tail = 16384;
    fprintf(stderr, "----- %s (%s) -----\n", title, path ? path : "no file");
    if (s)
        fprintf(stderr, "%s%s\n", n > tail ? "[...]\n" : "", n > tail ? s + n - tail : s);
    fprintf(stderr, "----- end of %s -----\n", title);
    free(s);
}

char *th_bin(const char *name)
{
    const char *b = getenv("TASKQ_TEST_BUILD");
    char *p = NULL;
    if (!b || !*b)
        b = "build";
    if (asprintf(&p, "%s/%s", b, name) < 0)
        abort();
    return p;
}

redisReply *th_cmd(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    void *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    return r;
}

static redisContext *connect_ms(const char *host, int port, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(host, port, tv);
    if (c && !c->err)
        redisSetTimeout(c, tv);
    return c;
}

redisContext *th_redis(const th_redis_server *s)
{
    redisContext *c = connect_ms(s->host, s->port, 10000);
    if (!c || c->err) {
        fprintf(stderr, "harness: connect to %s: %s\n", s->url, c ? c->errstr : "out of memory");
        redisFree(c);
        return NULL;
    }
    return c;
}

/* 1 when the server on s->port answers PING and runs in s->dir; 0 when not
 * (yet); -1 when it answers but is somebody else's. */
static int probe(const th_redis_server *s)
{
    redisContext *c = connect_ms(s->host, s->port, 500);
    redisReply *r = NULL;
    int ok = 0;
    char real[PATH_MAX];
    if (!c || c->err)
        goto out;
    r = redisCommand(c, "PING");
    if (!r || r->type != REDIS_REPLY_STATUS || strcmp(r->str, "PONG") != 0)
        goto out; /* e.g. -LOADING while it reads its AOF */
    freeReplyObject(r);
    r = redisCommand(c, "CONFIG GET dir");
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[1]->type != REDIS_REPLY_STRING)
        goto out;
    if (!realpath(s->dir, real))
        snprintf(real, sizeof(real), "%s", s->dir);
    ok = strcmp(r->element[1]->str, real) == 0 ? 1 : -1;
out:
    freeReplyObject(r);
    redisFree(c);
    return ok;
}

static int random_port(void)
{
    unsigned v = 0;
    if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v))
        v = (unsigned)getpid() * 2654435761u ^ (unsigned)th_mono_ms();
    return 20000 + (int)(v % 40001);
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* Does the log, from byte `from` on, contain `needle`? */
static int log_has(const char *path, long from, const char *needle)
{
    size_t n = 0;
    char *s = th_read_file(path, &n);
    int found = s && (size_t)from <= n && strstr(s + from, needle) != NULL;
    free(s);
    return found;
}

/* Start s's server; a new random port on every attempt unless keep_port. */
static int start_server(th_redis_server *s, int keep_port)
{
    long long deadline = th_mono_ms() + READY_TIMEOUT_MS;
    for (int attempt = 0; attempt < 50; attempt++) {
        if (!keep_port)
            s->port = random_port();
        snprintf(s->url, sizeof(s->url), "redis://%s:%d/0", s->host, s->port);
        char port[16];
        snprintf(port, sizeof(port), "%d", s->port);
        const char *argv[256] = {
            "redis-server", "--port", port,    "--bind", s->host,       "--save", "",
            "--appendonly", "no",     "--dir", s->dir,   "--daemonize", "no"};
        int argc = 13;
        for (int i = 0; s->extra && s->extra[i] && argc < 255; i++)
            argv[argc++] = s->extra[i];
        argv[argc] = NULL;
        long from = file_size(s->log);
        pid_t pid = spawn_logged(argv, NULL, s->log);
        if (pid < 0)
            return -1;
        s->pid = pid;
        for (;;) {
            int st;
            if (th_wait_exit(pid, 0, &st) == 0) {
                s->pid = 0;
                if (log_has(s->log, from, "Address already in use"))
                    break; /* try again (another port, or the same one later) */
                fprintf(stderr, "harness: redis-server exited (status %d) on port %d\n", st,
                        s->port);
                th_dump_file("redis-server log", s->log);
                return -1;
            }
            int p = probe(s);
            if (p > 0)
                return 0;
            if (p < 0) { /* another server answered: ours cannot bind; retry */
                th_stop_proc(pid, STOP_TIMEOUT_MS);
                s->pid = 0;
                break;
            }
            if (th_mono_ms() >= deadline) {
                fprintf(stderr, "harness: redis-server on port %d not ready in %d ms\n", s->port,
                        READY_TIMEOUT_MS);
                th_dump_file("redis-server log", s->log);
                th_stop_proc(pid, STOP_TIMEOUT_MS);
                s->pid = 0;
                return -1;
            }
            poll_pause();
        }
        if (th_mono_ms() >= deadline)
            break;
        if (keep_port)
            poll_pause();
    }
    fprintf(stderr, "harness: could not start redis-server (port %d busy?)\n", s->port);
    return -1;
}

th_redis_server *th_redis_start(const char *const *extra)
{
    th_redis_server *s = calloc(1, sizeof(*s));
    int n = 0;
    char *d = NULL;
    if (!s)
        abort();
    snprintf(s->host, sizeof(s->host), "127.0.0.1");
    while (extra && extra[n])
        n++;
    s->extra = calloc((size_t)n + 1, sizeof(*s->extra));
    if (!s->extra)
        abort();
    for (int i = 0; i < n; i++)
        if (!(s->extra[i] = strdup(extra[i])))
            abort();
    if (!(d = make_tmpdir()))
        goto fail;
    if (snprintf(s->dir, sizeof(s->dir), "%s", d) >= (int)sizeof(s->dir) ||
        snprintf(s->log, sizeof(s->log), "%s/redis.log", s->dir) >= (int)sizeof(s->log))
        goto fail;
    if (start_server(s, 0) < 0)
        goto fail;
    return s;
fail:
    th_redis_free(s);
    return NULL;
}

int th_redis_stop(th_redis_server *s)
{
    if (!s->pid)
        return 0;
    int st = th_stop_proc(s->pid, STOP_TIMEOUT_MS);
    s->pid = 0;
    return st < 0 ? -1 : 0;
}

int th_redis_crash(th_redis_server *s)
{
    if (!s->pid)
        return -1;
    th_signal_group(s->pid, SIGKILL);
    int rc = th_wait_exit(s->pid, 60000, NULL);
    s->pid = 0;
    return rc;
}

int th_redis_restart(th_redis_server *s)
{
    if (th_redis_stop(s) < 0)
        return -1;
    return start_server(s, 1);
}

void th_redis_free(th_redis_server *s)
{
    if (!s)
        return;
    th_redis_stop(s);
    if (s->dir[0])
        drop_dir(s->dir);
    for (int i = 0; s->extra && s->extra[i]; i++)
        free(s->extra[i]);
    free(s->extra);
    free(s);
}
