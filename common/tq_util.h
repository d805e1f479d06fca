/* tq_util: allocation that aborts on out-of-memory, clocks, random ids and
 * name validation. Depends on libc only. */
#ifndef TQ_UTIL_H
#define TQ_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define TQ_ID_MAX 64    /* longest task id accepted */
#define TQ_QUEUE_MAX 64 /* longest queue name accepted */
#define TQ_TASK_MAX 128 /* longest task name accepted */

void *tq_xmalloc(size_t n);
void *tq_xcalloc(size_t nmemb, size_t n);
void *tq_xrealloc(void *p, size_t n);
char *tq_xstrdup(const char *s);
char *tq_xstrndup(const char *s, size_t n);
/* printf into a new malloc'd string; aborts on OOM. */
char *tq_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2), nonnull(1)));

/* Wall clock and monotonic clock in milliseconds. */
int64_t tq_now_ms(void);
int64_t tq_mono_ms(void);
/* Monotonic clock in microseconds (latency measurements). */
int64_t tq_mono_us(void);

/* Fill `out` (33 bytes) with 32 lowercase hex digits from getrandom(2). */
void tq_random_id(char out[33]);
/* n ids as tq_random_id at out, out + stride, ... (stride >= 33), with one
 * getrandom(2) per 128 ids. */
void tq_random_ids(char *out, size_t stride, size_t n);
/* Fill `out` (2*nbytes+1 bytes) with random hex. */
void tq_random_hex(char *out, size_t nbytes);

/* Validators: 1 when the string is an acceptable name (docs/PROTOCOL.md). */
int tq_valid_id(const char *s);
int tq_valid_queue(const char *s);
int tq_valid_task_name(const char *s);

/* Decimal text of v into buf (>= 21 bytes), NUL-terminated; returns its
 * length. snprintf's "%lld" without the format parsing (hot paths). */
size_t tq_fmt_ll(char *buf, long long v);

/* Parse a duration in seconds ("1.5") into milliseconds; -1 when invalid. */
int64_t tq_parse_seconds_ms(const char *s);
/* Parse a non-negative decimal integer within [min, max]; -1 when invalid. */
int tq_parse_int(const char *s, long long min, long long max, long long *out);
/* Parse an ISO 8601 time ("2026-11-25T10:00:00Z", "+01:00" offsets, optional
 * fraction) into ms since the epoch; -1 when invalid. */
int64_t tq_parse_iso8601_ms(const char *s);
/* Format ms since the epoch as ISO 8601 UTC with milliseconds into buf (>= 32). */
void tq_format_iso8601(int64_t ms, char *buf, size_t len);

/* 1 when buf[0..len) is valid UTF-8. */
int tq_utf8_valid(const char *buf, size_t len);

#endif
