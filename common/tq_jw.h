/* tq_jw: write compact JSON text into a growing buffer, for the hot paths
 * where building a jansson tree only to serialise it costs more than the
 * work itself (a result record per task). The caller writes keys and values
 * in order; the writer puts the commas, escapes strings (invalid UTF-8
 * becomes U+FFFD, so the text is always valid JSON) and prints numbers.
 * Nesting through tq_jw_object/array is up to TQ_JW_DEPTH levels (the
 * caller's code fixes it); tq_jw_json writes a jansson value of any depth. */
#ifndef TQ_JW_H
#define TQ_JW_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define TQ_JW_DEPTH 16

typedef struct tq_jw {
    char *buf;
    size_t len, cap;
    int depth;
    unsigned char first[TQ_JW_DEPTH]; /* 1: no member written yet at this level */
    char close[TQ_JW_DEPTH];          /* '}' or ']': what ends this level */
    unsigned char after_key;          /* a key was written: the value needs no comma */
} tq_jw;

void tq_jw_init(tq_jw *w);
/* Empty the buffer for the next document; keeps its memory. */
void tq_jw_reset(tq_jw *w);
void tq_jw_free(tq_jw *w);
/* The text so far, NUL-terminated; valid until the next write. */
const char *tq_jw_text(tq_jw *w);
/* Hand the text over (malloc'd, NUL-terminated); *len gets its length if
 * len is not NULL. The writer is empty afterwards. */
char *tq_jw_take(tq_jw *w, size_t *len);

void tq_jw_object(tq_jw *w);
void tq_jw_array(tq_jw *w);
void tq_jw_end(tq_jw *w); /* closes the innermost object or array */
void tq_jw_key(tq_jw *w, const char *key);
void tq_jw_str(tq_jw *w, const char *s);
void tq_jw_strn(tq_jw *w, const char *s, size_t n);
void tq_jw_int(tq_jw *w, int64_t v);
/* A duration in milliseconds, rounded to microseconds and written with at
 * most 3 decimals ("12.5", "0.042"); negative or non-finite values as 0. */
void tq_jw_ms(tq_jw *w, double ms);
void tq_jw_null(tq_jw *w);
/* A value that is already JSON text (the caller vouches for it). */
void tq_jw_raw(tq_jw *w, const char *json, size_t n);
/* A jansson value (NULL: null), keys in the object's order, reals with 17
 * significant digits: what json_dumps(v, JSON_COMPACT) writes, up to string
 * escapes, without its per-fragment callbacks and printf calls. */
void tq_jw_json(tq_jw *w, const json_t *v);

#endif
