/* harness: what integration tests need to run taskq for real. A private
 * redis-server per test (or per group) on a random free loopback port with its
 * own temporary directory, child processes with their output in log files,
 * deadline-bounded waits, and a blocking hiredis connection.
 *
 * Every process started here is tracked; th_cleanup() (also registered with
 * atexit on first use) kills what is still running, process group included,
 * and removes the temporary directories. Children also get PR_SET_PDEATHSIG,
 * so a test binary killed by a time-out does not leave servers behind.
 * Set TASKQ_TEST_KEEP=1 to keep the temporary directories (logs) after a run.
 *
 * Nothing here is thread-safe: the harness is for single-threaded tests. */
#ifndef TH_HARNESS_H
#define TH_HARNESS_H

#include <hiredis/hiredis.h>
#include <sys/types.h>

#define TH_PATH_MAX 256

typedef struct th_redis_server {
    char host[16]; /* "127.0.0.1" */
    int port;
    char url[64];          /* "redis://127.0.0.1:PORT/0" */
    char dir[TH_PATH_MAX]; /* the server's --dir, a fresh /tmp/taskq-test-XXXXXX */
    char log[TH_PATH_MAX]; /* the server's stdout/stderr */
    pid_t pid;             /* 0 while stopped */
    char **extra;          /* owned copies of the extra arguments, NULL-terminated */
} th_redis_server;

/* Start a redis-server on 127.0.0.1 and a random port in 20000..60000, with
 * `--save "" --appendonly no --dir <tmpdir> --daemonize no` followed by
 * `extra` (NULL-terminated, may be NULL; later arguments override earlier
 * ones, e.g. {"--appendonly", "yes", NULL}). Retries other ports when the
 * port is taken. Returns once the server answers PING and is verifiably ours
 * (its dir is our dir), or NULL after a diagnostic on stderr. */
th_redis_server *th_redis_start(const char *const *extra);
/* SIGTERM, then SIGKILL after 10 s; reaps it. The directory is kept. 0 or -1. */
int th_redis_stop(th_redis_server *s);
/* SIGKILL without a shutdown (a crash). The directory is kept. 0 or -1. */
int th_redis_crash(th_redis_server *s);
/* Start again (stopping first if running) on the same port, dir and
 * arguments; waits until it is ready. 0 or -1. */
int th_redis_restart(th_redis_server *s);
/* Stop the server, remove its directory, free s. Accepts NULL. */
void th_redis_free(th_redis_server *s);

/* A blocking connection to s with a 10 s command time-out; NULL (with a
 * diagnostic) on failure. Free with redisFree. */
redisContext *th_redis(const th_redis_server *s);
/* redisCommand; the reply (or NULL on a connection error) belongs to the
 * caller: freeReplyObject. */
redisReply *th_cmd(redisContext *c, const char *fmt, ...);

/* The process-wide temporary directory (/tmp/taskq-test-XXXXXX), created on
 * first use, removed by th_cleanup. Never NULL (aborts if /tmp is unusable). */
const char *th_tmpdir(void);

/* Start argv[0] (searched in PATH unless it contains '/') in its own process
 * group, stdin from /dev/null, stdout and stderr appended to a log file in
 * th_tmpdir() (see th_proc_log). `env` (NULL-terminated, may be NULL) holds
 * "NAME=VALUE" entries set on top of the current environment, or "NAME" to
 * unset one. Returns the pid, or -1. */
pid_t th_spawn(const char *const *argv, const char *const *env);
/* The log file of a process started by th_spawn (borrowed), or NULL. */
const char *th_proc_log(pid_t pid);
/* Send sig to the process (th_signal) or to its whole process group. 0 or -1. */
int th_signal(pid_t pid, int sig);
int th_signal_group(pid_t pid, int sig);
/* Wait up to timeout_ms for the process to exit; 0 with its waitpid status in
 * *status (may be NULL), or -1 on time-out (the process keeps running). */
int th_wait_exit(pid_t pid, int timeout_ms, int *status);
/* SIGTERM, wait up to timeout_ms, then SIGKILL the group and reap. Returns the
 * waitpid status, or -1 if the pid is unknown. */
int th_stop_proc(pid_t pid, int timeout_ms);

/* Poll cond(arg) until it returns non-zero or timeout_ms passes. Returns 1 if
 * the condition became true, 0 on time-out. */
int th_wait_until(int (*cond)(void *arg), void *arg, int timeout_ms);

/* Milliseconds on the monotonic clock. */
long long th_mono_ms(void);

/* Whole contents of a file as a NUL-terminated string (malloc'd; caller
 * frees), or NULL. *len (may be NULL) receives the length. */
char *th_read_file(const char *path, size_t *len);
/* Print a file to stderr under a header, for diagnostics after a failure. */
void th_dump_file(const char *title, const char *path);

/* "<TASKQ_TEST_BUILD or build>/<name>" (malloc'd; caller frees). */
char *th_bin(const char *name);

/* Kill every tracked process (and its group), reap them, remove temporary
 * directories (unless TASKQ_TEST_KEEP is set). Safe to call more than once. */
void th_cleanup(void);

#endif
