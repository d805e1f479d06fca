/* tq_keys: building key names in one place so the schema in
 * docs/PROTOCOL.md has exactly one implementation. Names are validated by the
 * callers (tq_valid_queue, tq_valid_id), so they always fit TQ_KEY_MAX. */
#include "tq_keys.h"

#include <stdio.h>
#include <string.h>

int tq_keys_valid_prefix(const char *prefix)
{
    size_t n = strlen(prefix);
    if (n == 0 || n > TQ_PREFIX_MAX)
        return 0;
    for (const char *p = prefix; *p; p++)
        if (*p <= ' ' || *p > '~' || *p == '{' || *p == '}')
            return 0;
    return 1;
}

/* Key names are built on every command of the hot path: plain copies, not
 * snprintf. Like snprintf, a name that would not fit is cut at
 * TQ_KEY_MAX - 1 bytes (never the case for validated names). */
static size_t put(char *buf, size_t at, const char *s)
{
    size_t n = strlen(s);
    if (at + n > TQ_KEY_MAX - 1)
        n = TQ_KEY_MAX - 1 - at;
    memcpy(buf + at, s, n);
    return at + n;
}

void tq_key_queue(char buf[TQ_KEY_MAX], const char *prefix, const char *queue, const char *kind)
{
    size_t at = put(buf, 0, prefix);
    at = put(buf, at, "{");
    at = put(buf, at, queue);
    at = put(buf, at, "}:");
    at = put(buf, at, kind);
    buf[at] = '\0';
}

void tq_key_task(char buf[TQ_KEY_MAX], const char *prefix, const char *queue, const char *kind,
                 const char *id)
{
    size_t at = put(buf, 0, prefix);
    at = put(buf, at, "{");
    at = put(buf, at, queue);
    at = put(buf, at, "}:");
    at = put(buf, at, kind);
    at = put(buf, at, ":");
    at = put(buf, at, id);
    buf[at] = '\0';
}

void tq_key_global(char buf[TQ_KEY_MAX], const char *prefix, const char *name)
{
    snprintf(buf, TQ_KEY_MAX, "%s%s", prefix, name);
}

void tq_key_worker(char buf[TQ_KEY_MAX], const char *prefix, const char *wid)
{
    snprintf(buf, TQ_KEY_MAX, "%sworker:%s", prefix, wid);
}
