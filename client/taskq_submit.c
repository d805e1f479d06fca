/* taskq-submit: the command-line client. It is libtaskq's first user and
 * includes only the public header (plus jansson for reading bulk files and
 * printing JSON). Exit statuses are listed in usage() and README.md. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "taskq.h"

enum {
    EXIT_OK = 0,
    EXIT_TASK_FAILED = 1, /* --wait: the task ended in FAILURE or REVOKED */
    EXIT_TIMEOUT = 2,     /* --wait: the time-out passed first */
    EXIT_NOTFOUND = 3,    /* no such task */
    EXIT_USAGE = 64,
    EXIT_DATA = 65,        /* refused: invalid, too big, duplicate id, queue full */
    EXIT_UNAVAILABLE = 69, /* Redis unreachable */
    EXIT_SOFTWARE = 70,
};

static void usage(FILE *out)
{
    fprintf(
        out,
        "Usage: taskq-submit [OPTION]... TASK [ARG]...\n"
        "       taskq-submit [OPTION]... --bulk FILE|-\n"
        "       taskq-submit result ID [--wait] [--timeout S] [--json] [--queue Q]\n"
        "       taskq-submit cancel ID [--queue Q]\n"
        "       taskq-submit dead list|show ID|requeue ID|purge [ID] [--queue Q]\n"
        "       taskq-submit --list-tasks [--json]\n"
        "\n"
        "Submit a task to a taskq queue. Each ARG is a JSON literal:\n"
        "  taskq-submit add 2 3            taskq-submit echo '{\"a\":[1,2]}' '\"text\"'\n"
        "\n"
        "Task options:\n"
        "  --kw NAME=JSON        keyword argument (repeatable)\n"
        "  --queue Q             queue (default: default)\n"
        "  --id ID               use this task id instead of a random one\n"
        "  --countdown S         run no earlier than S seconds from now\n"
        "  --eta TIME            run no earlier than TIME (ISO 8601, e.g. 2026-11-25T10:00:00Z)\n"
        "  --expires S           do not run if not started within S seconds\n"
        "  --retries N           maximum retries after the first attempt\n"
        "  --soft-time-limit S   soft time limit      --time-limit S   hard time limit\n"
        "Waiting and output:\n"
        "  --wait                wait for the result and print it\n"
        "  --timeout S           give up waiting after S seconds (default: wait forever)\n"
        "  --json                machine-readable output: one JSON object per task with id,\n"
        "                        state, and result or error\n"
        "  --list-tasks          every task running workers offer, with its signature\n"
        "  --no-validate         do not check arguments against published signatures\n"
        "  --bulk FILE|-         one task per line, each a JSON object "
        "{\"task\":..,\"args\":[..],\n"
        "                        \"kwargs\":{..},\"queue\":..,\"countdown\":..}; options above "
        "are\n"
        "                        defaults; submitted pipelined; prints one id per line\n"
        "Connection:\n"
        "  --redis URL           (or TASKQ_REDIS_URL) redis://[[user]:password@]host[:port][/db]\n"
        "                        or unix:///path.sock?db=N; default redis://127.0.0.1:6379/0\n"
        "  --redis-url-file PATH read the URL from a file (keeps passwords off the command line)\n"
        "  --prefix PREFIX       key prefix (default taskq:, or TASKQ_PREFIX)\n"
        "  --help, --version\n"
        "\n"
        "Exit status:\n"
        "  0   submitted (with --wait: the task succeeded)\n"
        "  1   with --wait: the task failed or was revoked\n"
        "  2   with --wait: the time-out passed before the task finished\n"
        "  3   no such task (result, cancel, dead)\n"
        "  64  usage error (bad option, argument that is not JSON)\n"
        "  65  refused: invalid task, message too large, duplicate id, queue full, not "
        "cancellable\n"
        "  69  Redis unreachable\n"
        "  70  internal or protocol error\n");
}

typedef struct cli {
    taskq_task *defaults; /* options applied to every task */
    const char *queue;    /* for result/cancel/dead; NULL: default */
    const char *url;
    char *url_from_file;
    const char *prefix;
    const char *bulk;
    int wait;
    double timeout;
    int json;
    int list_tasks;
    int no_validate;
    char **pos;
    int npos;
} cli;

static int code_to_exit(int code)
{
    switch (code) {
    case TASKQ_OK: return EXIT_OK;
    case TASKQ_ECONN: return EXIT_UNAVAILABLE;
    case TASKQ_ENOTFOUND: return EXIT_NOTFOUND;
    case TASKQ_ETIMEDOUT: return EXIT_TIMEOUT;
    case TASKQ_EINVAL:
    case TASKQ_EFULL:
    case TASKQ_EEXIST:
    case TASKQ_ESTATE:
    case TASKQ_ETOOBIG: return EXIT_DATA;
    }
    return EXIT_SOFTWARE;
}

static int parse_seconds(const char *opt, const char *v, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || !(d >= 0) || d > 1e9) {
        fprintf(stderr, "taskq-submit: --%s expects a number of seconds, got '%.60s'\n", opt, v);
        return -1;
    }
    *out = d;
    return 0;
}

static int task_opt_failed(cli *c, const char *opt)
{
    fprintf(stderr, "taskq-submit: --%s: %s\n", opt, taskq_task_errstr(c->defaults));
    return -1;
}

/* Long options may appear anywhere; "--" ends them. A lone "-5" is a JSON
 * argument, not an option. */
static int parse_args(cli *c, int argc, char **argv)
{
    static const char *const with_value[] = {"kw",
                                             "queue",
                                             "id",
                                             "countdown",
                                             "eta",
                                             "expires",
                                             "retries",
                                             "soft-time-limit",
                                             "time-limit",
                                             "timeout",
                                             "bulk",
                                             "redis",
                                             "redis-url-file",
                                             "prefix",
                                             NULL};
    double soft = 0, hard = 0;
    int only_pos = 0;
    c->timeout = -1;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (only_pos || strncmp(a, "--", 2) != 0 || strcmp(a, "--") == 0) {
            if (!only_pos && strcmp(a, "--") == 0) {
                only_pos = 1;
                continue;
            }
            if (!only_pos && (strcmp(a, "-h") == 0 || strcmp(a, "-V") == 0)) {
                if (a[1] == 'h')
                    usage(stdout);
                else
                    printf("taskq-submit %s (protocol v1)\n", taskq_version());
                exit(EXIT_OK);
            }
            c->pos[c->npos++] = a;
            continue;
        }
        char name[64];
        const char *val = NULL, *eq = strchr(a + 2, '=');
        size_t nlen = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        if (nlen >= sizeof(name)) {
            fprintf(stderr, "taskq-submit: unknown option %.80s\nTry 'taskq-submit --help'.\n", a);
            return -1;
        }
        memcpy(name, a + 2, nlen);
        name[nlen] = '\0';
        int needs = 0;
        for (int k = 0; with_value[k]; k++)
            needs |= strcmp(name, with_value[k]) == 0;
        if (needs) {
            if (eq)
                val = eq + 1;
            else if (i + 1 < argc)
                val = argv[++i];
            else {
                fprintf(stderr, "taskq-submit: option --%s needs a value\n", name);
                return -1;
            }
        } else if (eq) {
            fprintf(stderr, "taskq-submit: option --%s takes no value\n", name);
            return -1;
        }
        if (strcmp(name, "help") == 0) {
            usage(stdout);
            exit(EXIT_OK);
        } else if (strcmp(name, "version") == 0) {
            printf("taskq-submit %s (protocol v1)\n", taskq_version());
            exit(EXIT_OK);
        } else if (strcmp(name, "wait") == 0) {
            c->wait = 1;
        } else if (strcmp(name, "json") == 0) {
            c->json = 1;
        } else if (strcmp(name, "list-tasks") == 0) {
            c->list_tasks = 1;
        } else if (strcmp(name, "no-validate") == 0) {
            c->no_validate = 1;
        } else if (strcmp(name, "kw") == 0) {
            const char *e = strchr(val, '=');
            if (!e || e == val) {
                fprintf(stderr, "taskq-submit: --kw expects NAME=JSON, got '%.60s'\n", val);
                return -1;
            }
            char kname[256];
            snprintf(kname, sizeof(kname), "%.*s", (int)(e - val), val);
            if (taskq_task_kwarg_json(c->defaults, kname, e + 1) < 0)
                return task_opt_failed(c, "kw");
        } else if (strcmp(name, "queue") == 0) {
            if (taskq_task_set_queue(c->defaults, val) < 0)
                return task_opt_failed(c, "queue");
            c->queue = val;
        } else if (strcmp(name, "id") == 0) {
            if (taskq_task_set_id(c->defaults, val) < 0)
                return task_opt_failed(c, "id");
        } else if (strcmp(name, "countdown") == 0 || strcmp(name, "expires") == 0) {
            double s;
            if (parse_seconds(name, val, &s) < 0)
                return -1;
            int rc = name[0] == 'c' ? taskq_task_set_countdown(c->defaults, s)
                                    : taskq_task_set_expires(c->defaults, s);
            if (rc < 0)
                return task_opt_failed(c, name);
        } else if (strcmp(name, "eta") == 0) {
            char line[256];
            json_t *s = json_string(val);
            char *q = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
            snprintf(line, sizeof(line), "{\"eta\":%s}", q ? q : "null");
            free(q);
            json_decref(s);
            if (taskq_task_apply_json(c->defaults, line) < 0) {
                fprintf(stderr,
                        "taskq-submit: --eta expects an ISO 8601 time such as "
                        "2026-11-25T10:00:00Z, got '%.60s'\n",
                        val);
                return -1;
            }
        } else if (strcmp(name, "retries") == 0) {
            char *end;
            long n = strtol(val, &end, 10);
            if (*val == '\0' || *end || taskq_task_set_retries(c->defaults, (int)n) < 0 ||
                n > 1000) {
                fprintf(stderr, "taskq-submit: --retries expects an integer in [0, 1000]\n");
                return -1;
            }
        } else if (strcmp(name, "soft-time-limit") == 0) {
            if (parse_seconds(name, val, &soft) < 0)
                return -1;
        } else if (strcmp(name, "time-limit") == 0) {
            if (parse_seconds(name, val, &hard) < 0)
                return -1;
        } else if (strcmp(name, "timeout") == 0) {
            if (parse_seconds(name, val, &c->timeout) < 0)
                return -1;
        } else if (strcmp(name, "bulk") == 0) {
            c->bulk = val;
        } else if (strcmp(name, "redis") == 0) {
            c->url = val;
        } else if (strcmp(name, "redis-url-file") == 0) {
            FILE *f = fopen(val, "r");
            char buf[4096];
            if (!f) {
                fprintf(stderr, "taskq-submit: cannot read %s: %s\n", val, strerror(errno));
                return -1;
            }
            size_t n = fread(buf, 1, sizeof(buf) - 1, f);
            fclose(f);
            buf[n] = '\0';
            buf[strcspn(buf, "\r\n")] = '\0';
            free(c->url_from_file);
            c->url_from_file = strdup(buf);
            c->url = c->url_from_file;
        } else if (strcmp(name, "prefix") == 0) {
            c->prefix = val;
        } else {
            fprintf(stderr, "taskq-submit: unknown option --%s\nTry 'taskq-submit --help'.\n",
                    name);
            return -1;
        }
    }
    if ((soft || hard) && taskq_task_set_time_limits(c->defaults, soft, hard) < 0)
        return task_opt_failed(c, "time-limit");
    return 0;
}

static taskq_client *connect_client(cli *c, int *exit_code)
{
    taskq_client *cl = taskq_client_new(c->url);
    if (!cl) {
        fprintf(stderr, "taskq-submit: out of memory\n");
        *exit_code = EXIT_SOFTWARE;
        return NULL;
    }
    if (c->prefix && taskq_client_set_prefix(cl, c->prefix) < 0) {
        fprintf(stderr, "taskq-submit: %s\n", taskq_client_errstr(cl));
        *exit_code = EXIT_USAGE;
        taskq_client_free(cl);
        return NULL;
    }
    if (c->no_validate)
        taskq_client_set_validate(cl, 0);
    if (taskq_client_error(cl)) {
        fprintf(stderr, "taskq-submit: %s\n", taskq_client_errstr(cl));
        *exit_code = code_to_exit(taskq_client_error(cl));
        taskq_client_free(cl);
        return NULL;
    }
    return cl;
}

/* Print a result as the user asked; returns the exit status it implies. */
static int print_result(cli *c, const taskq_result *r, int timed_out)
{
    taskq_state st = taskq_result_state(r);
    if (c->json && !timed_out) {
        printf("%s\n", taskq_result_json(r));
    } else if (c->json) {
        json_t *rec = json_loads(taskq_result_json(r), 0, NULL);
        if (rec && !json_object_get(rec, "error"))
            json_object_set_new(rec, "error",
                                json_pack("{s:s, s:s}", "type", "Timeout", "message",
                                          "still running when --timeout passed"));
        char *s = rec ? json_dumps(rec, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
        printf("%s\n", s ? s : taskq_result_json(r));
        free(s);
        json_decref(rec);
    } else if (st == TASKQ_SUCCESS) {
        printf("%s\n", taskq_result_value(r));
    } else if (timed_out) {
        fprintf(stderr, "taskq-submit: timed out waiting for task %s (state %s)\n",
                taskq_result_id(r), taskq_state_name(st));
    } else if (st == TASKQ_FAILURE || st == TASKQ_REVOKED || st == TASKQ_RETRY) {
        fprintf(stderr, "taskq-submit: task %s %s: %s: %s\n", taskq_result_id(r),
                st == TASKQ_REVOKED ? "was revoked"
                : st == TASKQ_RETRY ? "is waiting to retry"
                                    : "failed",
                taskq_result_error_type(r) ? taskq_result_error_type(r) : "Error",
                taskq_result_error_message(r) ? taskq_result_error_message(r) : "");
        printf("%s\n", taskq_state_name(st));
    } else {
        printf("%s\n", taskq_state_name(st));
    }
    if (timed_out)
        return EXIT_TIMEOUT;
    if (st == TASKQ_FAILURE || st == TASKQ_REVOKED)
        return EXIT_TASK_FAILED;
    return EXIT_OK;
}

static int wait_and_print(cli *c, taskq_client *cl, const char *queue, const char *id)
{
    taskq_result *r = NULL;
    int rc = c->wait ? taskq_result_wait(cl, queue, id, c->timeout, &r)
                     : taskq_result_get(cl, queue, id, &r);
    int ex;
    if (rc == TASKQ_ETIMEDOUT && r)
        ex = print_result(c, r, 1);
    else if (rc < 0) {
        fprintf(stderr, "taskq-submit: %s\n", taskq_client_errstr(cl));
        ex = code_to_exit(rc);
    } else
        ex = print_result(c, r, 0);
    taskq_result_free(r);
    return ex;
}

static int cmd_submit(cli *c)
{
    int ex = EXIT_OK;
    char id[TASKQ_ID_SIZE];
    if (taskq_task_set_name(c->defaults, c->pos[0]) < 0) {
        fprintf(stderr, "taskq-submit: %s\n", taskq_task_errstr(c->defaults));
        return EXIT_USAGE;
    }
    for (int i = 1; i < c->npos; i++) {
        if (taskq_task_arg_json(c->defaults, c->pos[i]) < 0) {
            fprintf(stderr, "taskq-submit: %s\n  (quote strings as JSON, e.g. '\"text\"')\n",
                    taskq_task_errstr(c->defaults));
            return EXIT_USAGE;
        }
    }
    taskq_client *cl = connect_client(c, &ex);
    if (!cl)
        return ex;
    if (c->wait) {
        taskq_result *r = NULL;
        int rc = taskq_submit_wait(cl, c->defaults, c->timeout, id, &r);
        if (rc == TASKQ_ETIMEDOUT && r) {
            ex = print_result(c, r, 1);
        } else if (rc < 0) {
            fprintf(stderr, "taskq-submit: %s\n", taskq_client_errstr(cl));
            ex = code_to_exit(rc);
        } else {
            ex = print_result(c, r, 0);
        }
        taskq_result_free(r);
        taskq_client_free(cl);
        return ex;
    }
    int rc = taskq_submit(cl, c->defaults, id);
    if (rc < 0) {
        fprintf(stderr, "taskq-submit: %s\n", taskq_client_errstr(cl));
        ex = code_to_exit(rc);
    } else if (c->json) {
        printf("{\"id\":\"%s\",\"state\":\"PENDING\",\"queue\":\"%s\"}\n", id,
               c->queue ? c->queue : "default");
    } else {
        printf("%s\n", id);
    }
    taskq_client_free(cl);
    return ex;
}

static void progress(size_t done, size_t total_known)
{
    static const char bar[] = "########################################";
    if (total_known) {
        size_t fill = done * 40 / total_known;
        fprintf(stderr, "\r[%-40.*s] %zu/%zu", (int)fill, bar, done, total_known);
    } else {
        fprintf(stderr, "\rsubmitted %zu", done);
    }
}

#define BULK_BATCH 1000

typedef struct submitted {
    char id[TASKQ_ID_SIZE];
    char queue[80];
} submitted;

static int cmd_bulk(cli *c)
{
    int ex = EXIT_OK;
    FILE *f = strcmp(c->bulk, "-") == 0 ? stdin : fopen(c->bulk, "r");
    if (!f) {
        fprintf(stderr, "taskq-submit: cannot open %s: %s\n", c->bulk, strerror(errno));
        return EXIT_USAGE;
    }
    taskq_client *cl = connect_client(c, &ex);
    if (!cl) {
        if (f != stdin)
            fclose(f);
        return ex;
    }
    int tty = isatty(2);
    size_t total = 0, lineno = 0, nbatch = 0, nsub = 0, capsub = 0;
    submitted *subs = NULL;
    taskq_task *batch[BULK_BATCH];
    char ids[BULK_BATCH][TASKQ_ID_SIZE];
    int codes[BULK_BATCH];
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    for (;;) {
        len = getline(&line, &cap, f);
        if (len >= 0) {
            lineno++;
            while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
                line[--len] = '\0';
            if (len == 0 || line[0] == '#')
                continue;
            /* Start from the command-line defaults, then the line's fields. */
            taskq_task *t = taskq_task_dup(c->defaults);
            if (taskq_task_apply_json(t, line) < 0) {
                fprintf(stderr, "taskq-submit: %s line %zu: %s\n", c->bulk, lineno,
                        taskq_task_errstr(t));
                taskq_task_free(t);
                ex = EXIT_DATA;
                continue;
            }
            batch[nbatch++] = t;
        }
        if (nbatch == BULK_BATCH || (len < 0 && nbatch > 0)) {
            int rc = taskq_submit_many(cl, batch, nbatch, ids, codes);
            for (size_t i = 0; i < nbatch; i++) {
                if (codes[i] == 0) {
                    if (!c->wait)
                        printf("%s\n", ids[i]);
                    if (c->wait) {
                        if (nsub == capsub) {
                            capsub = capsub ? capsub * 2 : 1024;
                            subs = realloc(subs, capsub * sizeof(*subs));
                            if (!subs)
                                abort();
                        }
                        memcpy(subs[nsub].id, ids[i], TASKQ_ID_SIZE);
                        snprintf(subs[nsub].queue, sizeof(subs[nsub].queue), "%s",
                                 taskq_task_queue(batch[i]));
                        nsub++;
                    }
                    total++;
                }
                taskq_task_free(batch[i]);
            }
            if (rc < 0) {
                fprintf(stderr, "%staskq-submit: %s\n", tty ? "\n" : "", taskq_client_errstr(cl));
                ex = code_to_exit(rc);
                if (rc == TASKQ_ECONN) {
                    nbatch = 0;
                    break;
                }
            }
            nbatch = 0;
            if (tty)
                progress(total, 0);
        }
        if (len < 0)
            break;
    }
    if (tty)
        fprintf(stderr, "\n");
    free(line);
    if (f != stdin)
        fclose(f);
    for (size_t i = 0; i < nsub; i++) {
        int e = wait_and_print(c, cl, subs[i].queue, subs[i].id);
        if (e != EXIT_OK && ex == EXIT_OK)
            ex = e;
    }
    free(subs);
    taskq_client_free(cl);
    return ex;
}

static int cmd_result(cli *c)
{
    int ex = EXIT_OK;
    if (c->npos != 2) {
        fprintf(stderr, "taskq-submit: usage: taskq-submit result ID [--wait] [--json]\n");
        return EXIT_USAGE;
    }
    taskq_client *cl = connect_client(c, &ex);
    if (!cl)
        return ex;
    ex = wait_and_print(c, cl, c->queue, c->pos[1]);
    taskq_client_free(cl);
    return ex;
}

static int cmd_cancel(cli *c)
{
    int ex = EXIT_OK;
    if (c->npos != 2) {
        fprintf(stderr, "taskq-submit: usage: taskq-submit cancel ID [--queue Q]\n");
        return EXIT_USAGE;
    }
    taskq_client *cl = connect_client(c, &ex);
    if (!cl)
        return ex;
    int rc = taskq_cancel(cl, c->queue, c->pos[1]);
    if (rc < 0) {
        fprintf(stderr, "taskq-submit: %s\n", taskq_client_errstr(cl));
        ex = code_to_exit(rc);
    } else {
        printf(c->json ? "{\"id\":\"%s\",\"state\":\"REVOKED\"}\n" : "revoked %s\n", c->pos[1]);
    }
    taskq_client_free(cl);
    return ex;
}

static int cmd_dead(cli *c)
{
    int ex = EXIT_OK, rc;
    const char *sub = c->npos > 1 ? c->pos[1] : "list";
    const char *id = c->npos > 2 ? c->pos[2] : NULL;
    char *json = NULL;
    size_t n = 0;
    if (strcmp(sub, "list") && strcmp(sub, "show") && strcmp(sub, "requeue") &&
        strcmp(sub, "purge")) {
        fprintf(stderr, "taskq-submit: dead: unknown action '%.40s' (list, show, requeue, purge)\n",
                sub);
        return EXIT_USAGE;
    }
    if ((!strcmp(sub, "show") || !strcmp(sub, "requeue")) && !id) {
        fprintf(stderr, "taskq-submit: dead %s needs a task id\n", sub);
        return EXIT_USAGE;
    }
    taskq_client *cl = connect_client(c, &ex);
    if (!cl)
        return ex;
    if (!strcmp(sub, "list")) {
        rc = taskq_dead_list(cl, c->queue, 1000, &json);
        if (rc == 0) {
            if (c->json) {
                printf("%s\n", json);
            } else {
                json_t *arr = json_loads(json, 0, NULL), *e;
                size_t i;
                json_array_foreach(arr, i, e)
                {
                    printf("%s  %-20s %s\n", json_string_value(json_object_get(e, "id")),
                           json_string_value(json_object_get(e, "task"))
                               ? json_string_value(json_object_get(e, "task"))
                               : "-",
                           json_string_value(json_object_get(e, "reason"))
                               ? json_string_value(json_object_get(e, "reason"))
                               : "");
                }
                json_decref(arr);
            }
        }
    } else if (!strcmp(sub, "show")) {
        rc = taskq_dead_show(cl, c->queue, id, &json);
        if (rc == 0)
            printf("%s\n", json);
    } else if (!strcmp(sub, "requeue")) {
        rc = taskq_dead_requeue(cl, c->queue, id);
        if (rc == 0)
            printf("requeued %s\n", id);
    } else {
        rc = taskq_dead_purge(cl, c->queue, id, &n);
        if (rc == 0)
            printf("purged %zu\n", n);
    }
    if (rc < 0) {
        fprintf(stderr, "taskq-submit: %s\n", taskq_client_errstr(cl));
        ex = code_to_exit(rc);
    }
    free(json);
    taskq_client_free(cl);
    return ex;
}

static int cmd_list_tasks(cli *c)
{
    int ex = EXIT_OK;
    char *json = NULL;
    taskq_client *cl = connect_client(c, &ex);
    if (!cl)
        return ex;
    if (taskq_tasks_list(cl, &json) < 0) {
        fprintf(stderr, "taskq-submit: %s\n", taskq_client_errstr(cl));
        ex = code_to_exit(taskq_client_error(cl));
    } else if (c->json) {
        printf("%s\n", json);
    } else {
        json_t *arr = json_loads(json, 0, NULL), *e;
        size_t i;
        if (json_array_size(arr) == 0)
            fprintf(stderr, "taskq-submit: no worker has published its tasks (is one running?)\n");
        json_array_foreach(arr, i, e)
        {
            const char *spec = json_string_value(json_object_get(e, "spec"));
            const char *doc = json_string_value(json_object_get(e, "doc"));
            char sig[512];
            snprintf(sig, sizeof(sig), "%s(%s)", json_string_value(json_object_get(e, "name")),
                     spec ? spec : "...");
            printf("%-40s %s\n", sig, doc ? doc : "");
        }
        json_decref(arr);
    }
    free(json);
    taskq_client_free(cl);
    return ex;
}

int main(int argc, char **argv)
{
    cli c;
    int ex;
    memset(&c, 0, sizeof(c));
    c.defaults = taskq_task_new(NULL);
    c.pos = calloc((size_t)argc + 1, sizeof(*c.pos));
    if (!c.defaults || !c.pos) {
        fprintf(stderr, "taskq-submit: out of memory\n");
        return EXIT_SOFTWARE;
    }
    if (parse_args(&c, argc, argv) < 0) {
        ex = EXIT_USAGE;
        goto out;
    }
    if (c.list_tasks) {
        ex = cmd_list_tasks(&c);
    } else if (c.bulk) {
        if (c.npos > 0) {
            fprintf(stderr, "taskq-submit: --bulk takes no task name or arguments\n");
            ex = EXIT_USAGE;
            goto out;
        }
        ex = cmd_bulk(&c);
    } else if (c.npos == 0) {
        usage(stderr);
        ex = EXIT_USAGE;
    } else if (!strcmp(c.pos[0], "result")) {
        ex = cmd_result(&c);
    } else if (!strcmp(c.pos[0], "cancel")) {
        ex = cmd_cancel(&c);
    } else if (!strcmp(c.pos[0], "dead")) {
        ex = cmd_dead(&c);
    } else {
        ex = cmd_submit(&c);
    }
out:
    taskq_task_free(c.defaults);
    free(c.pos);
    free(c.url_from_file);
    return ex;
}
