/* tq_log: one line per call, written with a single fwrite so lines from a
 * parent and its children do not interleave mid-line. */
#include "tq_log.h"

#include <jansson.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "tq_util.h"

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int tq_log_level_parse(const char *s, tq_log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (tq_log_level)i;
            return 0;
        }
    }
    if (strcmp(s, "warning") == 0) {
        *out = TQ_LOG_WARN;
        return 0;
    }
    return -1;
}

int tq_log_format_parse(const char *s, tq_log_format *out)
{
    if (strcmp(s, "text") == 0)
        *out = TQ_LOG_TEXT;
    else if (strcmp(s, "json") == 0)
        *out = TQ_LOG_JSON;
    else
        return -1;
    return 0;
}

void tq_log(const tq_logger *lg, tq_log_level lvl, const char *fmt, ...)
{
    if (!lg || lvl < lg->level)
        return;
    char msg[2048], ts[40], line[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    tq_format_iso8601(tq_now_ms(), ts, sizeof(ts));
    const char *name = lg->name ? lg->name : "taskq";
    int n;
    if (lg->format == TQ_LOG_JSON) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:s}", "ts", ts, "level", level_names[lvl],
                              "proc", name, "pid", (json_int_t)getpid(), "msg", msg);
        char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
        n = snprintf(line, sizeof(line), "%s\n", s ? s : "{}");
        free(s);
        json_decref(o);
    } else {
        n = snprintf(line, sizeof(line), "%s %-5s %s[%d] %s\n", ts, level_names[lvl], name,
                     (int)getpid(), msg);
    }
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(line))
        n = sizeof(line) - 1, line[n - 1] = '\n';
    FILE *out = lg->out ? lg->out : stderr;
    fwrite(line, 1, (size_t)n, out);
    fflush(out);
}
