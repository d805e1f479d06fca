/* tq_log: leveled, timestamped log lines to a stream (stderr by default),
 * as text or one JSON object per line. The logger is a value owned by the
 * program's main and passed down; nothing here is global. */
#ifndef TQ_LOG_H
#define TQ_LOG_H

#include <stdio.h>

typedef enum { TQ_LOG_DEBUG, TQ_LOG_INFO, TQ_LOG_WARN, TQ_LOG_ERROR } tq_log_level;
typedef enum { TQ_LOG_TEXT, TQ_LOG_JSON } tq_log_format;

typedef struct tq_logger {
    tq_log_level level;
    tq_log_format format;
    FILE *out;        /* borrowed; stderr when NULL */
    const char *name; /* borrowed; "worker", "child" ... */
} tq_logger;

/* Returns 0 and sets *out, or -1 for an unknown name. */
int tq_log_level_parse(const char *s, tq_log_level *out);
int tq_log_format_parse(const char *s, tq_log_format *out);

void tq_log(const tq_logger *lg, tq_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define tq_log_debug(lg, ...) tq_log((lg), TQ_LOG_DEBUG, __VA_ARGS__)
#define tq_log_info(lg, ...) tq_log((lg), TQ_LOG_INFO, __VA_ARGS__)
#define tq_log_warn(lg, ...) tq_log((lg), TQ_LOG_WARN, __VA_ARGS__)
#define tq_log_error(lg, ...) tq_log((lg), TQ_LOG_ERROR, __VA_ARGS__)

#endif
