/* tq_json: yajl's tokenizer feeding a jansson tree (see tq_json.h).
 *
 * yajl calls back once per token; each callback makes the jansson value and
 * puts it into the container on top of the stack (`open`), or makes it the
 * root. The checks jansson makes and yajl does not are made here: strings
 * and keys are checked with tq_utf8_valid (strict: no overlong forms, no
 * encoded surrogates) and for NUL, which also catches what yajl makes of a
 * lone low surrogate escape; a high surrogate escape must be followed by a
 * low one, which only the text shows, so escapes are checked on the raw
 * bytes before yajl starts (check_escapes).
 *
 * Invariants:
 *  - open[0..depth) are borrowed: each is held by its parent, the outermost
 *    by `root`; freeing root frees everything built so far.
 *  - A callback that returns 0 has written the reason into the parse's err,
 *    and yajl then stops (yajl_status_client_canceled). */
#include "tq_json.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "tq_util.h"

#define STACK_INLINE 64

typedef struct parse {
    yajl_handle h;
    int in_parse; /* inside yajl_parse (not yajl_complete_parse) */
    size_t end;   /* where the top-level value ends, once it has */
    json_t *root;
    json_t **open; /* containers not yet closed, outermost first */
    int depth, max_depth;
    char *key; /* the key of the next member of the innermost object: a copy */
    size_t keylen, keycap;
    char key_inline[128];
    char *err;
    size_t errlen;
    int failed;
} parse;

static int fail(parse *p, const char *what)
{
    snprintf(p->err, p->errlen, "%s", what);
    p->failed = 1;
    return 0;
}

/* The top-level value is complete. yajl counts the bytes it has read as it
 * goes; but a token it has not finished when the input ends is not an
 * error to it once the value is complete (`[1]"` passes), so the rest is
 * checked after the parse: white space only. A callback from
 * yajl_complete_parse comes from its own one-byte chunk: the value then
 * ends with the input. */
static void value_done(parse *p)
{
    p->end = p->in_parse ? yajl_get_bytes_consumed(p->h) : SIZE_MAX;
}

/* Put v (a new reference, stolen) where the text has it. */
static int place(parse *p, json_t *v)
{
    if (!v)
        return fail(p, "out of memory");
    if (p->depth == 0) {
        p->root = v; /* yajl allows one top-level value */
        if (!json_is_object(v) && !json_is_array(v))
            value_done(p);
        return 1;
    }
    json_t *in = p->open[p->depth - 1];
    if (json_is_array(in)) {
        if (json_array_append_new(in, v) < 0)
            return fail(p, "out of memory");
        return 1;
    }
    if (json_object_getn(in, p->key, p->keylen)) {
        json_decref(v);
        return fail(p, "duplicate object key");
    }
    if (json_object_setn_new_nocheck(in, p->key, p->keylen, v) < 0)
        return fail(p, "out of memory");
    return 1;
}

/* Strings and keys: text jansson would take, and no NUL (which C strings
 * would cut short, and which jansson refuses without JSON_ALLOW_NUL). */
static int text_ok(parse *p, const unsigned char *s, size_t len, const char *what)
{
    char why[64];
    if (memchr(s, '\0', len)) {
        snprintf(why, sizeof(why), "\\u0000 is not allowed in %s", what);
        return fail(p, why);
    }
    if (!tq_utf8_valid((const char *)s, len)) {
        snprintf(why, sizeof(why), "invalid UTF-8 in %s", what);
        return fail(p, why);
    }
    return 1;
}

static int on_null(void *ctx)
{
    return place(ctx, json_null());
}

static int on_boolean(void *ctx, int b)
{
    return place(ctx, json_boolean(b));
}

/* Numbers as jansson reads them (its range, its errors): an integer when
 * the text has no fraction or exponent, read with strtoll, whose range is
 * the whole of int64 (yajl's own integers stop one short of INT64_MIN);
 * otherwise a real, read with strtod, and an overflow is an error. */
static int on_number(void *ctx, const char *s, size_t len)
{
    parse *p = ctx;
    char small[64], *text = len < sizeof(small) ? small : tq_xmalloc(len + 1);
    memcpy(text, s, len);
    text[len] = '\0';
    json_t *v = NULL;
    errno = 0;
    if (strpbrk(text, ".eE")) {
        double d = strtod(text, NULL);
        if ((d == HUGE_VAL || d == -HUGE_VAL) && errno == ERANGE)
            fail(p, "real number overflow");
        else
            v = json_real(d);
    } else {
        long long i = strtoll(text, NULL, 10);
        if (errno == ERANGE)
            fail(p, i < 0 ? "too big negative integer" : "too big integer");
        else
            v = json_integer((json_int_t)i);
    }
    if (text != small)
        free(text);
    return v ? place(p, v) : 0;
}

static int on_string(void *ctx, const unsigned char *s, size_t len)
{
    if (!text_ok(ctx, s, len, "a string"))
        return 0;
    return place(ctx, json_stringn_nocheck((const char *)s, len));
}

static int on_key(void *ctx, const unsigned char *s, size_t len)
{
    parse *p = ctx;
    if (!text_ok(p, s, len, "an object key"))
        return 0;
    /* Copied: a key with escapes is in yajl's decode buffer, which the
     * value's own escapes then overwrite or move. */
    if (len > p->keycap) {
        char *k = p->key == p->key_inline ? NULL : p->key;
        p->key = tq_xrealloc(k, len);
        p->keycap = len;
    }
    memcpy(p->key, s, len);
    p->keylen = len;
    return 1;
}

static int open_container(parse *p, json_t *c)
{
    if (p->depth >= p->max_depth) {
        json_decref(c);
        return fail(p, "nesting too deep");
    }
    if (!place(p, c))
        return 0;
    p->open[p->depth++] = c;
    return 1;
}

static int on_start_map(void *ctx)
{
    return open_container(ctx, json_object());
}

static int on_start_array(void *ctx)
{
    return open_container(ctx, json_array());
}

static int on_end(void *ctx)
{
    parse *p = ctx;
    if (--p->depth == 0)
        value_done(p);
    return 1;
}

static const yajl_callbacks callbacks = {
    .yajl_null = on_null,
    .yajl_boolean = on_boolean,
    .yajl_number = on_number, /* not yajl_integer/yajl_double: see on_number */
    .yajl_string = on_string,
    .yajl_start_map = on_start_map,
    .yajl_map_key = on_key,
    .yajl_end_map = on_end,
    .yajl_start_array = on_start_array,
    .yajl_end_array = on_end,
};

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The code unit of a "\uXXXX" at s (6 bytes available), or -1. */
static long escape_at(const char *s, size_t avail)
{
    if (avail < 6 || s[0] != '\\' || s[1] != 'u')
        return -1;
    long v = 0;
    for (int i = 2; i < 6; i++) {
        int h = hexval(s[i]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

/* Escaped surrogates in pairs, high then low, as jansson requires. yajl
 * joins a high surrogate with whatever escape follows it, or turns a lone
 * one into '?'. Backslashes appear only inside strings in valid JSON, and
 * an escape is always a backslash and the next byte, so stepping over
 * pairs finds every "\u" (anything else yajl rejects itself). */
static int check_escapes(const char *buf, size_t len, char *err, size_t errlen)
{
    const char *s = memchr(buf, '\\', len);
    while (s) {
        size_t off = (size_t)(s - buf);
        long cu = escape_at(s, len - off);
        size_t step = 2;
        if (cu >= 0xDC00 && cu <= 0xDFFF) {
            snprintf(err, errlen, "not valid JSON: lone low surrogate escape at byte %zu", off);
            return -1;
        }
        if (cu >= 0xD800 && cu <= 0xDBFF) {
            long lo = off + 6 < len ? escape_at(s + 6, len - off - 6) : -1;
            if (lo < 0xDC00 || lo > 0xDFFF) {
                snprintf(err, errlen, "not valid JSON: unpaired high surrogate escape at byte %zu",
                         off);
                return -1;
            }
            step = 12;
        }
        if (off + step >= len)
            break;
        s = memchr(s + step, '\\', len - off - step);
    }
    return 0;
}

json_t *tq_json_parse(const char *buf, size_t len, int max_depth, char *err, size_t errlen)
{
    char no_err[1];
    if (!err || !errlen) { /* the caller wants no reason: one is still made */
        err = no_err;
        errlen = sizeof(no_err);
    }
    json_t *inline_open[STACK_INLINE];
    parse p = {.open = inline_open,
               .max_depth = max_depth > 0 ? max_depth : 1,
               .err = err,
               .errlen = errlen};
    p.key = p.key_inline;
    p.keycap = sizeof(p.key_inline);
    yajl_handle h = NULL;
    json_t *out = NULL;

    if (check_escapes(buf, len, err, errlen) < 0)
        return NULL;
    if (p.max_depth > STACK_INLINE)
        p.open = tq_xmalloc(sizeof(*p.open) * (size_t)p.max_depth);
    h = yajl_alloc(&callbacks, NULL, &p);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        goto cleanup;
    }
    /* Strings are checked strictly in text_ok: yajl's own check is laxer
     * (it lets overlong forms through), and one pass is enough. */
    yajl_config(h, yajl_dont_validate_strings, 1);
    p.h = h;
    p.in_parse = 1;
    yajl_status st = yajl_parse(h, (const unsigned char *)buf, len);
    p.in_parse = 0;
    if (st == yajl_status_ok)
        st = yajl_complete_parse(h);
    if (st != yajl_status_ok) {
        if (!p.failed) {
            /* Not verbose: the verbose form quotes the input. */
            unsigned char *e = yajl_get_error(h, 0, NULL, 0);
            char *text = e ? (char *)e : NULL;
            size_t n = text ? strcspn(text, "\n") : 0;
            snprintf(err, errlen, "not valid JSON: %.*s at byte %zu", (int)n,
                     text ? text : "parse error", yajl_get_bytes_consumed(h));
            if (e)
                yajl_free_error(h, e);
        } else {
            char why[256];
            snprintf(why, sizeof(why), "%s", err);
            snprintf(err, errlen, "not valid JSON: %s at byte %zu", why,
                     yajl_get_bytes_consumed(h));
        }
        goto cleanup;
    }
    if (!p.root) {
        snprintf(err, errlen, "not valid JSON: no value");
        goto cleanup;
    }
    for (size_t i = p.end; i < len; i++) {
        if (buf[i] != ' ' && buf[i] != '\t' && buf[i] != '\n' && buf[i] != '\r') {
            snprintf(err, errlen, "not valid JSON: end of file expected at byte %zu", i);
            goto cleanup;
        }
    }
    out = p.root;
    p.root = NULL;
cleanup:
    json_decref(p.root);
    if (h)
        yajl_free(h);
    if (p.open != inline_open)
        free(p.open);
    if (p.key != p.key_inline)
        free(p.key);
    return out;
}
