/* taskq-worker: command line and environment (TASKQ_*) into a
 * tq_worker_config, task registry set-up (built-ins, then --load libraries),
 * then the worker's loop. Exit codes follow sysexits: 64 usage, 78 config,
 * 70 internal. */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/tq_keys.h"
#include "broker/tq_sign.h"
#include "common/tq_log.h"
#include "common/tq_util.h"
#include "tq_registry.h"
#include "tq_worker.h"

#define EX_OK_ 0
#define EX_USAGE_ 64
#define EX_SOFTWARE_ 70
#define EX_CONFIG_ 78

enum {
    OPT_REDIS = 1000,
    OPT_REDIS_URL_FILE,
    OPT_PREFIX,
    OPT_QUEUES,
    OPT_CONCURRENCY,
    OPT_POOL,
    OPT_LOAD,
    OPT_LEASE,
    OPT_HEARTBEAT,
    OPT_RESULT_TTL,
    OPT_SHUTDOWN_TIMEOUT,
    OPT_MAX_TASKS_PER_CHILD,
    OPT_MAX_MEMORY_PER_CHILD,
    OPT_RETRIES,
    OPT_RETRY_BACKOFF,
    OPT_RETRY_BACKOFF_MAX,
    OPT_SOFT_TIME_LIMIT,
    OPT_TIME_LIMIT,
    OPT_MAX_CRASHES,
    OPT_MAX_LOST,
    OPT_DEAD_MAX,
    OPT_DEAD_MAX_AGE,
    OPT_MAX_MESSAGE_BYTES,
    OPT_MAX_DEPTH,
    OPT_MAX_ELEMENTS,
    OPT_MAX_STRING,
    OPT_LOG_LEVEL,
    OPT_LOG_FORMAT,
    OPT_HEALTH_FILE,
    OPT_ALLOW_ROOT,
    OPT_USER,
    OPT_GROUP,
    OPT_SIGNING_KEYS_FILE,
    OPT_PREFETCH,
    OPT_NO_BUILTINS,
    OPT_LIST_TASKS,
    OPT_HELP,
    OPT_VERSION,
};

static const struct option long_opts[] = {
    {"redis", required_argument, NULL, OPT_REDIS},
    {"redis-url-file", required_argument, NULL, OPT_REDIS_URL_FILE},
    {"prefix", required_argument, NULL, OPT_PREFIX},
    {"queues", required_argument, NULL, OPT_QUEUES},
    {"concurrency", required_argument, NULL, OPT_CONCURRENCY},
    {"prefetch", required_argument, NULL, OPT_PREFETCH},
    {"pool", required_argument, NULL, OPT_POOL},
    {"load", required_argument, NULL, OPT_LOAD},
    {"lease", required_argument, NULL, OPT_LEASE},
    {"heartbeat", required_argument, NULL, OPT_HEARTBEAT},
    {"result-ttl", required_argument, NULL, OPT_RESULT_TTL},
    {"shutdown-timeout", required_argument, NULL, OPT_SHUTDOWN_TIMEOUT},
    {"max-tasks-per-child", required_argument, NULL, OPT_MAX_TASKS_PER_CHILD},
    {"max-memory-per-child", required_argument, NULL, OPT_MAX_MEMORY_PER_CHILD},
    {"retries", required_argument, NULL, OPT_RETRIES},
    {"retry-backoff", required_argument, NULL, OPT_RETRY_BACKOFF},
    {"retry-backoff-max", required_argument, NULL, OPT_RETRY_BACKOFF_MAX},
    {"soft-time-limit", required_argument, NULL, OPT_SOFT_TIME_LIMIT},
    {"time-limit", required_argument, NULL, OPT_TIME_LIMIT},
    {"max-crashes", required_argument, NULL, OPT_MAX_CRASHES},
    {"max-lost", required_argument, NULL, OPT_MAX_LOST},
    {"dead-max", required_argument, NULL, OPT_DEAD_MAX},
    {"dead-max-age", required_argument, NULL, OPT_DEAD_MAX_AGE},
    {"max-message-bytes", required_argument, NULL, OPT_MAX_MESSAGE_BYTES},
    {"max-depth", required_argument, NULL, OPT_MAX_DEPTH},
    {"max-elements", required_argument, NULL, OPT_MAX_ELEMENTS},
    {"max-string", required_argument, NULL, OPT_MAX_STRING},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
    {"health-file", required_argument, NULL, OPT_HEALTH_FILE},
    {"allow-root", no_argument, NULL, OPT_ALLOW_ROOT},
    {"signing-keys-file", required_argument, NULL, OPT_SIGNING_KEYS_FILE},
    {"user", required_argument, NULL, OPT_USER},
    {"group", required_argument, NULL, OPT_GROUP},
    {"no-builtins", no_argument, NULL, OPT_NO_BUILTINS},
    {"list-tasks", no_argument, NULL, OPT_LIST_TASKS},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

static void usage(FILE *out)
{
    fprintf(
        out,
        "Usage: taskq-worker [OPTION]...\n"
        "Run registered C task functions from taskq queues in Redis.\n"
        "\n"
        "Every option can also be given as an environment variable: --max-tasks-per-child N\n"
        "is TASKQ_MAX_TASKS_PER_CHILD=N (the command line wins). Durations are in seconds.\n"
        "\n"
        "Connection:\n"
        "  --redis URL               redis://[[user]:password@]host[:port][/db] or\n"
        "                            unix:///path.sock?db=N (default redis://127.0.0.1:6379/0)\n"
        "  --redis-url-file PATH     read the URL from a file (keeps passwords off the command "
        "line)\n"
        "  --prefix PREFIX           key prefix (default taskq:)\n"
        "Work:\n"
        "  --queues A,B,...          queues in priority order (default: default)\n"
        "  --concurrency N           executors (default: number of CPUs)\n"
        "  --prefetch N|auto         tasks taken beyond the idle executors, in the same atomic\n"
        "                            fetch, to save round trips (default: concurrency; 0: none).\n"
        "                            They are leased like running tasks, so nothing is lost.\n"
        "                            auto: grow up to 1000 while the queue is deep and tasks\n"
        "                            are short (fastest drain; a lost worker holds more)\n"
        "  --pool prefork|threads    prefork: forked children, crash isolation, hard time limits\n"
        "                            (default); threads: one process, no hard time limits\n"
        "  --load PATH.so            load a task library (repeatable; TASKQ_LOAD takes a\n"
        "                            colon-separated list); it must define taskq_tasks_init()\n"
        "  --no-builtins             do not register the built-in tasks (echo, add, sleep, ...)\n"
        "  --list-tasks              print the registered tasks and exit\n"
        "Reliability:\n"
        "  --lease S                 task lease (default 10); a lost worker's tasks are\n"
        "                            recovered within about this long\n"
        "  --heartbeat S             heartbeat and lease renewal period (default lease/5)\n"
        "  --shutdown-timeout S      warm shutdown waits this long for running tasks (default 30)\n"
        "  --retries N               default retries when neither task nor message says (default "
        "0)\n"
        "  --retry-backoff S         retry backoff base (default 1), doubled each attempt\n"
        "  --retry-backoff-max S     retry backoff cap (default 600)\n"
        "  --soft-time-limit S       default soft time limit (default none)\n"
        "  --time-limit S            default hard time limit (default none; prefork only)\n"
        "  --max-crashes N           executor deaths before a task is dead-lettered (default 3)\n"
        "  --max-lost N              worker losses before a task is dead-lettered (default 5)\n"
        "  --max-tasks-per-child N   recycle a child after N tasks (default 0: never)\n"
        "  --max-memory-per-child KB recycle a child whose RSS passes KB KiB (default 0: never)\n"
        "Storage:\n"
        "  --result-ttl S            keep results this long (default 86400)\n"
        "  --dead-max N              dead-letter set cap per queue (default 100000)\n"
        "  --dead-max-age S          drop dead letters older than this (default 604800)\n"
        "Limits on incoming messages:\n"
        "  --max-message-bytes N     (default 1048576)   --max-depth N     (default 32)\n"
        "  --max-elements N          (default 100000)    --max-string N    (default 262144)\n"
        "Message signing (docs/SECURITY.md):\n"
        "  --signing-keys-file PATH  HMAC-SHA256 keys, one \"KID HEXKEY\" per line, mode 0600;\n"
        "                            or TASKQ_SIGNING_KEYS=KID:HEX[,KID:HEX] in the environment.\n"
        "                            With keys, unsigned or badly signed messages are rejected\n"
        "Privileges:\n"
        "  --user NAME, --group NAME drop to this user/group before loading task libraries\n"
        "  --allow-root              run as root (refused by default: tasks would run as root)\n"
        "Logging:\n"
        "  --log-level debug|info|warn|error (default info)   --log-format text|json\n"
        "  --health-file PATH        rewritten after every heartbeat Redis accepted (for\n"
        "                            container health checks: a fresh mtime means alive)\n"
        "\n"
        "  --help, --version\n"
        "\n"
        "Signals: SIGTERM or SIGINT stops fetching and lets running tasks finish (up to\n"
        "--shutdown-timeout), then puts unfinished tasks back; a second signal does that now.\n"
        "Exit status: 0 after a clean shutdown, 64 usage error, 78 configuration error,\n"
        "70 internal error.\n");
}

typedef struct opts {
    tq_worker_config cfg;
    char *url_s;
    char *queues_s;
    char *health_s;
    char *user_s;
    char *keys_file;
    int prefetch_set;
    char *group_s;
    int allow_root;
    char **loads;
    int nloads;
    int no_builtins;
    int list_tasks;
    tq_logger log;
} opts;

static int bad(const char *opt, const char *val, const char *why)
{
    fprintf(stderr, "taskq-worker: invalid value '%.80s' for --%s: %s\n", val, opt, why);
    return -1;
}

static int seconds_opt(const char *name, const char *v, int64_t min_ms, int64_t *out)
{
    int64_t ms = tq_parse_seconds_ms(v);
    if (ms < 0 || ms < min_ms)
        return bad(name, v, "expected a number of seconds");
    *out = ms;
    return 0;
}

static int int_opt(const char *name, const char *v, long long min, long long max, long long *out)
{
    if (tq_parse_int(v, min, max, out) < 0) {
        char why[96];
        snprintf(why, sizeof(why), "expected an integer in [%lld, %lld]", min, max);
        return bad(name, v, why);
    }
    return 0;
}

static char *read_url_file(const char *path)
{
    FILE *f = fopen(path, "r");
    char buf[4096];
    if (!f) {
        fprintf(stderr, "taskq-worker: cannot read --redis-url-file %s: %s\n", path,
                strerror(errno));
        return NULL;
    }
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    return tq_xstrdup(buf);
}

static int apply(opts *o, int id, const char *name, const char *v)
{
    long long n;
    tq_worker_config *c = &o->cfg;
    switch (id) {
    case OPT_REDIS:
        free(o->url_s);
        o->url_s = tq_xstrdup(v);
        return 0;
    case OPT_REDIS_URL_FILE: {
        char *u = read_url_file(v);
        if (!u)
            return -1;
        free(o->url_s);
        o->url_s = u;
        return 0;
    }
    case OPT_PREFIX:
        if (!tq_keys_valid_prefix(v))
            return bad(name, v, "1..64 printable characters without spaces or braces");
        snprintf(c->prefix, sizeof(c->prefix), "%s", v);
        return 0;
    case OPT_QUEUES:
        free(o->queues_s);
        o->queues_s = tq_xstrdup(v);
        return 0;
    case OPT_CONCURRENCY:
        if (int_opt(name, v, 1, 1024, &n) < 0)
            return -1;
        c->concurrency = (int)n;
        return 0;
    case OPT_PREFETCH:
        if (strcmp(v, "auto") == 0) {
            c->prefetch_auto = 1;
            return 0;
        }
        if (int_opt(name, v, 0, 100000, &n) < 0)
            return -1;
        c->prefetch = (int)n;
        c->prefetch_auto = 0;
        o->prefetch_set = 1;
        return 0;
    case OPT_POOL:
        if (strcmp(v, "prefork") == 0)
            c->pool = TQ_POOL_PREFORK;
        else if (strcmp(v, "threads") == 0)
            c->pool = TQ_POOL_THREADS;
        else
            return bad(name, v, "expected prefork or threads");
        return 0;
    case OPT_LOAD: {
        /* From the environment: a colon-separated list. */
        char *copy = tq_xstrdup(v), *save = NULL;
        for (char *p = strtok_r(copy, ":", &save); p; p = strtok_r(NULL, ":", &save)) {
            o->loads = tq_xrealloc(o->loads, (size_t)(o->nloads + 1) * sizeof(*o->loads));
            o->loads[o->nloads++] = tq_xstrdup(p);
        }
        free(copy);
        return 0;
    }
    case OPT_LEASE: return seconds_opt(name, v, 500, &c->lease_ms);
    case OPT_HEARTBEAT: return seconds_opt(name, v, 50, &c->heartbeat_ms);
    case OPT_RESULT_TTL: return seconds_opt(name, v, 1000, &c->result_ttl_ms);
    case OPT_SHUTDOWN_TIMEOUT: return seconds_opt(name, v, 0, &c->shutdown_timeout_ms);
    case OPT_MAX_TASKS_PER_CHILD:
        if (int_opt(name, v, 0, 1000000000, &n) < 0)
            return -1;
        c->max_tasks_per_child = (long)n;
        return 0;
    case OPT_MAX_MEMORY_PER_CHILD:
        if (int_opt(name, v, 0, 1LL << 40, &n) < 0)
            return -1;
        c->max_memory_per_child_kb = (long)n;
        return 0;
    case OPT_RETRIES:
        if (int_opt(name, v, 0, 1000, &n) < 0)
            return -1;
        c->default_retries = (int)n;
        return 0;
    case OPT_RETRY_BACKOFF: return seconds_opt(name, v, 0, &c->backoff_base_ms);
    case OPT_RETRY_BACKOFF_MAX: return seconds_opt(name, v, 0, &c->backoff_cap_ms);
    case OPT_SOFT_TIME_LIMIT: return seconds_opt(name, v, 0, &c->soft_limit_ms);
    case OPT_TIME_LIMIT: return seconds_opt(name, v, 0, &c->hard_limit_ms);
    case OPT_MAX_CRASHES:
        if (int_opt(name, v, 1, 1000, &n) < 0)
            return -1;
        c->max_crashes = (int)n;
        return 0;
    case OPT_MAX_LOST:
        if (int_opt(name, v, 1, 1000, &n) < 0)
            return -1;
        c->max_lost = (int)n;
        return 0;
    case OPT_DEAD_MAX:
        if (int_opt(name, v, 1, 100000000, &n) < 0)
            return -1;
        c->dead_max = n;
        return 0;
    case OPT_DEAD_MAX_AGE: return seconds_opt(name, v, 1000, &c->dead_max_age_ms);
    case OPT_MAX_MESSAGE_BYTES:
        if (int_opt(name, v, 64, 512LL * 1024 * 1024, &n) < 0)
            return -1;
        c->limits.max_bytes = (size_t)n;
        return 0;
    case OPT_MAX_DEPTH:
        if (int_opt(name, v, 2, 1000, &n) < 0)
            return -1;
        c->limits.max_depth = (int)n;
        return 0;
    case OPT_MAX_ELEMENTS:
        if (int_opt(name, v, 16, 100000000, &n) < 0)
            return -1;
        c->limits.max_elements = (size_t)n;
        return 0;
    case OPT_MAX_STRING:
        if (int_opt(name, v, 16, 512LL * 1024 * 1024, &n) < 0)
            return -1;
        c->limits.max_string = (size_t)n;
        return 0;
    case OPT_LOG_LEVEL:
        if (tq_log_level_parse(v, &o->log.level) < 0)
            return bad(name, v, "expected debug, info, warn or error");
        return 0;
    case OPT_LOG_FORMAT:
        if (tq_log_format_parse(v, &o->log.format) < 0)
            return bad(name, v, "expected text or json");
        return 0;
    case OPT_HEALTH_FILE:
        free(o->health_s);
        o->health_s = tq_xstrdup(v);
        c->health_file = o->health_s;
        return 0;
    case OPT_SIGNING_KEYS_FILE:
        free(o->keys_file);
        o->keys_file = tq_xstrdup(v);
        return 0;
    case OPT_ALLOW_ROOT: o->allow_root = 1; return 0;
    case OPT_USER:
        free(o->user_s);
        o->user_s = tq_xstrdup(v);
        return 0;
    case OPT_GROUP:
        free(o->group_s);
        o->group_s = tq_xstrdup(v);
        return 0;
    case OPT_NO_BUILTINS: o->no_builtins = 1; return 0;
    case OPT_LIST_TASKS: o->list_tasks = 1; return 0;
    }
    return 0;
}

/* TASKQ_MAX_TASKS_PER_CHILD for "max-tasks-per-child". */
static void env_name(const char *opt, char *buf, size_t len)
{
    size_t n = (size_t)snprintf(buf, len, "TASKQ_");
    for (const char *p = opt; *p && n + 1 < len; p++)
        buf[n++] = *p == '-' ? '_' : (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
    buf[n] = '\0';
}

static int from_env(opts *o)
{
    char name[96];
    for (const struct option *lo = long_opts; lo->name; lo++) {
        if (lo->val == OPT_HELP || lo->val == OPT_VERSION || lo->val == OPT_LIST_TASKS)
            continue;
        env_name(lo->name, name, sizeof(name));
        /* TASKQ_REDIS_URL is the documented name of --redis. */
        if (lo->val == OPT_REDIS)
            snprintf(name, sizeof(name), "TASKQ_REDIS_URL");
        const char *v = getenv(name);
        if (!v || !*v)
            continue;
        if (lo->has_arg == no_argument) {
            if (strcmp(v, "0") != 0 && strcmp(v, "false") != 0 &&
                apply(o, lo->val, lo->name, v) < 0)
                return -1;
        } else if (apply(o, lo->val, lo->name, v) < 0) {
            fprintf(stderr, "taskq-worker: (from environment variable %s)\n", name);
            return -1;
        }
    }
    return 0;
}

static int split_queues(opts *o)
{
    const char *s = o->queues_s ? o->queues_s : "default";
    char *copy = tq_xstrdup(s), *save = NULL;
    for (char *p = strtok_r(copy, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        if (!tq_valid_queue(p)) {
            fprintf(stderr, "taskq-worker: invalid queue name '%.80s' (1..64 of [0-9A-Za-z_.-])\n",
                    p);
            free(copy);
            return -1;
        }
        for (int i = 0; i < o->cfg.nqueues; i++) {
            if (strcmp(o->cfg.queues[i], p) == 0) {
                fprintf(stderr, "taskq-worker: queue '%s' is listed twice\n", p);
                free(copy);
                return -1;
            }
        }
        o->cfg.queues = tq_xrealloc(o->cfg.queues, (size_t)(o->cfg.nqueues + 1) * sizeof(char *));
        o->cfg.queues[o->cfg.nqueues++] = tq_xstrdup(p);
    }
    free(copy);
    if (o->cfg.nqueues == 0) {
        fprintf(stderr, "taskq-worker: --queues names no queue\n");
        return -1;
    }
    return 0;
}

/* Drop to --user/--group (before any task library's code runs), then refuse
 * root unless --allow-root: a task runs with the worker's privileges. */
static int drop_privileges(const opts *o)
{
    if (o->group_s || o->user_s) {
        if (geteuid() != 0) {
            fprintf(stderr, "taskq-worker: --user/--group need to start as root\n");
            return -1;
        }
        struct passwd *pw = NULL;
        gid_t gid = (gid_t)-1;
        if (o->user_s && !(pw = getpwnam(o->user_s))) {
            fprintf(stderr, "taskq-worker: --user: no user named '%.64s'\n", o->user_s);
            return -1;
        }
        if (o->group_s) {
            struct group *gr = getgrnam(o->group_s);
            if (!gr) {
                fprintf(stderr, "taskq-worker: --group: no group named '%.64s'\n", o->group_s);
                return -1;
            }
            gid = gr->gr_gid;
        } else if (pw) {
            gid = pw->pw_gid;
        }
        if (setgroups(0, NULL) < 0 || (gid != (gid_t)-1 && setgid(gid) < 0) ||
            (pw && setuid(pw->pw_uid) < 0)) {
            fprintf(stderr, "taskq-worker: cannot drop privileges: %s\n", strerror(errno));
            return -1;
        }
        if (pw && (setuid(0) == 0 || geteuid() == 0)) {
            fprintf(stderr, "taskq-worker: privileges were not dropped; refusing to continue\n");
            return -1;
        }
    }
    if (geteuid() == 0 && !o->allow_root) {
        fprintf(stderr, "taskq-worker: refusing to run as root: tasks would run as root too.\n"
                        "  Use --user NAME [--group NAME] to drop privileges, or --allow-root\n"
                        "  (TASKQ_ALLOW_ROOT=1) if you really mean it.\n");
        return -1;
    }
    return 0;
}

static void list_tasks(const tq_registry *reg)
{
    for (size_t i = 0; i < tq_registry_count(reg); i++) {
        const tq_task_def *d = tq_registry_at(reg, i);
        printf("%-24s %s\n", d->name, d->opts.doc ? d->opts.doc : "");
    }
}

int main(int argc, char **argv)
{
    opts o;
    int rc = EX_CONFIG_, c;
    char err[512];
    tq_registry *reg = NULL;
    tq_worker *w = NULL;
    tq_keyring *keys = tq_keyring_new();

    memset(&o, 0, sizeof(o));
    o.log.level = TQ_LOG_INFO;
    o.log.name = "worker";
    tq_worker_config *cfg = &o.cfg;
    snprintf(cfg->prefix, sizeof(cfg->prefix), "%s", TQ_DEFAULT_PREFIX);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->concurrency = ncpu > 0 ? (int)ncpu : 1;
    cfg->pool = TQ_POOL_PREFORK;
    cfg->lease_ms = 10000;
    cfg->result_ttl_ms = 86400LL * 1000;
    cfg->shutdown_timeout_ms = 30000;
    cfg->backoff_base_ms = 1000;
    cfg->backoff_cap_ms = 600000;
    cfg->max_crashes = 3;
    cfg->max_lost = 5;
    cfg->dead_max = 100000;
    cfg->dead_max_age_ms = 7LL * 86400 * 1000;
    tq_msg_limits_default(&cfg->limits);

    if (from_env(&o) < 0)
        goto out;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "hV", long_opts, NULL)) != -1) {
        if (c == 'h' || c == OPT_HELP) {
            usage(stdout);
            rc = EX_OK_;
            goto out;
        }
        if (c == 'V' || c == OPT_VERSION) {
            printf("taskq-worker %s (protocol v1)\n", TASKQ_VERSION);
            rc = EX_OK_;
            goto out;
        }
        if (c == '?' || c == ':') {
            if (optopt)
                fprintf(stderr, "taskq-worker: unknown option -%c\n", optopt);
            else
                fprintf(stderr, "taskq-worker: unknown option or missing value: %s\n",
                        argv[optind - 1]);
            fprintf(stderr, "Try 'taskq-worker --help'.\n");
            rc = EX_USAGE_;
            goto out;
        }
        const char *name = "";
        for (const struct option *lo = long_opts; lo->name; lo++)
            if (lo->val == c)
                name = lo->name;
        if (apply(&o, c, name, optarg) < 0) {
            rc = EX_USAGE_;
            goto out;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "taskq-worker: unexpected argument '%s'\nTry 'taskq-worker --help'.\n",
                argv[optind]);
        rc = EX_USAGE_;
        goto out;
    }
    if (split_queues(&o) < 0)
        goto out;
    if (!o.prefetch_set)
        cfg->prefetch = cfg->concurrency;
    if (!cfg->heartbeat_ms)
        cfg->heartbeat_ms = cfg->lease_ms / 5 > 50 ? cfg->lease_ms / 5 : 50;
    if (cfg->heartbeat_ms * 2 > cfg->lease_ms) {
        fprintf(stderr, "taskq-worker: --heartbeat must be at most half of --lease\n");
        goto out;
    }
    if (cfg->soft_limit_ms && cfg->hard_limit_ms && cfg->soft_limit_ms > cfg->hard_limit_ms) {
        fprintf(stderr, "taskq-worker: --soft-time-limit is above --time-limit\n");
        goto out;
    }
    const char *url = o.url_s ? o.url_s : "redis://127.0.0.1:6379/0";
    if (tq_url_parse(url, &cfg->url, err, sizeof(err)) < 0) {
        fprintf(stderr, "taskq-worker: invalid Redis URL: %s\n", err);
        goto out;
    }

    /* Keys are read before privileges drop: the key file may be root's. */
    const char *keys_env = getenv("TASKQ_SIGNING_KEYS");
    if (o.keys_file && tq_keyring_load_file(keys, o.keys_file, err, sizeof(err)) < 0) {
        fprintf(stderr, "taskq-worker: %s\n", err);
        goto out;
    }
    if (keys_env && *keys_env && tq_keyring_parse(keys, keys_env, err, sizeof(err)) < 0) {
        fprintf(stderr, "taskq-worker: TASKQ_SIGNING_KEYS: %s\n", err);
        goto out;
    }
    cfg->keys = keys;
    if (!o.list_tasks && drop_privileges(&o) < 0)
        goto out;
    reg = tq_registry_new();
    if (!o.no_builtins)
        tq_builtin_register(reg);
    for (int i = 0; i < o.nloads; i++) {
        if (tq_registry_load(reg, o.loads[i], err, sizeof(err)) < 0) {
            fprintf(stderr, "taskq-worker: cannot load task library %s: %s\n", o.loads[i], err);
            goto out;
        }
    }
    if (o.list_tasks) {
        list_tasks(reg);
        rc = EX_OK_;
        goto out;
    }
    if (tq_registry_count(reg) == 0) {
        fprintf(stderr, "taskq-worker: no tasks registered (use --load, or drop --no-builtins)\n");
        goto out;
    }
    /* hiredis writes to sockets the peer may have closed. */
    signal(SIGPIPE, SIG_IGN);
    cfg->log = &o.log;
    w = tq_worker_new(cfg, reg, err, sizeof(err));
    if (!w) {
        fprintf(stderr, "taskq-worker: cannot start: %s\n", err);
        rc = EX_SOFTWARE_;
        goto out;
    }
    rc = tq_worker_run(w);
out:
    tq_worker_free(w);
    tq_registry_free(reg);
    tq_url_clear(&cfg->url);
    for (int i = 0; i < cfg->nqueues; i++)
        free(cfg->queues[i]);
    free(cfg->queues);
    for (int i = 0; i < o.nloads; i++)
        free(o.loads[i]);
    free(o.loads);
    free(o.url_s);
    free(o.queues_s);
    free(o.health_s);
    free(o.user_s);
    free(o.keys_file);
    tq_keyring_free(keys);
    free(o.group_s);
    return rc;
}
