/* tq_jw: see tq_jw.h. Invariant: cap > len whenever buf is set, so the NUL
 * that tq_jw_text and tq_jw_take add always fits; the writers themselves
 * do not keep the text terminated (one store less per byte written). */
#include "tq_jw.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tq_util.h"

void tq_jw_init(tq_jw *w)
{
    memset(w, 0, sizeof(*w));
    w->first[0] = 1;
}

void tq_jw_reset(tq_jw *w)
{
    w->len = 0;
    w->depth = 0;
    w->first[0] = 1;
    w->after_key = 0;
}

void tq_jw_free(tq_jw *w)
{
    free(w->buf);
    tq_jw_init(w);
}

const char *tq_jw_text(tq_jw *w)
{
    if (!w->buf)
        return "";
    w->buf[w->len] = '\0';
    return w->buf;
}

char *tq_jw_take(tq_jw *w, size_t *len)
{
    char *s = w->buf ? w->buf : tq_xstrdup("");
    s[w->len] = '\0';
    if (len)
        *len = w->len;
    tq_jw_init(w);
    return s;
}

static void grow_slow(tq_jw *w, size_t more)
{
    size_t cap = w->cap ? w->cap : 512;
    while (cap < w->len + more + 1)
        cap *= 2;
    w->buf = tq_xrealloc(w->buf, cap);
    w->cap = cap;
}

static inline void grow(tq_jw *w, size_t more)
{
    if (w->len + more + 1 > w->cap)
        grow_slow(w, more);
}

static inline void put(tq_jw *w, const char *s, size_t n)
{
    grow(w, n);
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

static inline void putc1(tq_jw *w, char c)
{
    grow(w, 1);
    w->buf[w->len++] = c;
}

/* Before any value or key: the comma that separates it from the last one. */
static void sep(tq_jw *w)
{
    if (w->after_key) {
        w->after_key = 0;
        return;
    }
    if (!w->first[w->depth])
        putc1(w, ',');
    w->first[w->depth] = 0;
}

static void open_(tq_jw *w, char c, char close)
{
    sep(w);
    putc1(w, c);
    if (w->depth + 1 >= TQ_JW_DEPTH)
        abort(); /* a programming error: the nesting is fixed by the caller's code */
    w->depth++;
    w->first[w->depth] = 1;
    w->close[w->depth] = close;
}

void tq_jw_object(tq_jw *w)
{
    open_(w, '{', '}');
}

void tq_jw_array(tq_jw *w)
{
    open_(w, '[', ']');
}

void tq_jw_end(tq_jw *w)
{
    if (w->depth == 0)
        abort(); /* more ends than opens: a programming error */
    putc1(w, w->close[w->depth]);
    w->depth--;
}

static const char hex[] = "0123456789abcdef";

/* Length of the valid UTF-8 sequence at s[0..n), 0 when invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    unsigned cp = c & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

static void write_strn(tq_jw *w, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    grow(w, n + 2);
    putc1(w, '"');
    size_t run = 0; /* bytes of p copied as they are, not yet written */
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        size_t k = 1;
        const char *esc = NULL;
        char u[7];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            run++;
            i++;
            continue;
        }
        if (c >= 0x80) {
            k = utf8_seq(p + i, n - i);
            if (k) {
                run += k;
                i += k;
                continue;
            }
            k = 1;
            esc = "\\ufffd";
        } else if (c == '"') {
            esc = "\\\"";
        } else if (c == '\\') {
            esc = "\\\\";
        } else if (c == '\n') {
            esc = "\\n";
        } else if (c == '\t') {
            esc = "\\t";
        } else if (c == '\r') {
            esc = "\\r";
        } else {
            u[0] = '\\';
            u[1] = 'u';
            u[2] = '0';
            u[3] = '0';
            u[4] = hex[c >> 4];
            u[5] = hex[c & 15];
            u[6] = '\0';
            esc = u;
        }
        put(w, (const char *)p + i - run, run);
        run = 0;
        put(w, esc, strlen(esc));
        i += k;
    }
    put(w, (const char *)p + n - run, run);
    putc1(w, '"');
}

void tq_jw_strn(tq_jw *w, const char *s, size_t n)
{
    sep(w);
    write_strn(w, s, n);
}

void tq_jw_str(tq_jw *w, const char *s)
{
    if (!s) {
        tq_jw_null(w);
        return;
    }
    tq_jw_strn(w, s, strlen(s));
}

void tq_jw_key(tq_jw *w, const char *key)
{
    tq_jw_str(w, key);
    putc1(w, ':');
    w->after_key = 1;
}

static void write_int(tq_jw *w, int64_t v)
{
    grow(w, 24);
    w->len += tq_fmt_ll(w->buf + w->len, (long long)v);
}

void tq_jw_int(tq_jw *w, int64_t v)
{
    sep(w);
    write_int(w, v);
}

void tq_jw_ms(tq_jw *w, double ms)
{
    if (!(ms >= 0) || ms > 9e12)
        ms = ms > 9e12 ? 9e12 : 0; /* NaN and negatives: 0 */
    int64_t us = (int64_t)(ms * 1000.0 + 0.5);
    int frac = (int)(us % 1000);
    sep(w);
    write_int(w, us / 1000);
    if (frac) {
        /* Three decimals, trailing zeros dropped: 12.5, 0.042. */
        char f[4] = {'.', (char)('0' + frac / 100), (char)('0' + frac / 10 % 10),
                     (char)('0' + frac % 10)};
        put(w, f, f[3] != '0' ? 4 : f[2] != '0' ? 3 : 2);
    }
}

void tq_jw_null(tq_jw *w)
{
    sep(w);
    put(w, "null", 4);
}

void tq_jw_raw(tq_jw *w, const char *json, size_t n)
{
    sep(w);
    put(w, json, n);
}

/* A real as jansson writes it by default (17 significant digits, and a
 * ".0" when that looks like an integer), so values survive the round trip
 * unchanged. */
static void write_real(tq_jw *w, double d)
{
    char b[40];
    int n = snprintf(b, sizeof(b), "%.17g", d);
    if (n <= 0 || (size_t)n >= sizeof(b))
        abort(); /* %.17g of a finite double always fits */
    put(w, b, (size_t)n);
    if (!strpbrk(b, ".eE"))
        put(w, ".0", 2);
}

static void write_json(tq_jw *w, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *k;
        json_t *e;
        int first = 1;
        /* jansson's iterators take a non-const object; this only reads. */
        json_t *obj = (json_t *)(uintptr_t)v;
        putc1(w, '{');
        json_object_foreach(obj, k, e)
        {
            if (!first)
                putc1(w, ',');
            first = 0;
            write_strn(w, k, strlen(k));
            putc1(w, ':');
            write_json(w, e);
        }
        putc1(w, '}');
        break;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *e;
        putc1(w, '[');
        json_array_foreach(v, i, e)
        {
            if (i)
                putc1(w, ',');
            write_json(w, e);
        }
        putc1(w, ']');
        break;
    }
    case JSON_STRING: write_strn(w, json_string_value(v), json_string_length(v)); break;
    case JSON_INTEGER: write_int(w, (int64_t)json_integer_value(v)); break;
    case JSON_REAL: write_real(w, json_real_value(v)); break;
    case JSON_TRUE: put(w, "true", 4); break;
    case JSON_FALSE: put(w, "false", 5); break;
    case JSON_NULL: put(w, "null", 4); break;
    }
}

void tq_jw_json(tq_jw *w, const json_t *v)
{
    sep(w);
    if (v)
        write_json(w, v);
    else
        put(w, "null", 4);
}
