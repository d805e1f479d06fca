/* tq_sig: typed task signatures. The spec parser and the binder see
 * untrusted input (specs come from task libraries and, in JSON form, from
 * Redis; arguments come from messages), so every path is bounded: at most
 * TQ_SIG_MAX_PARAMS parameters, names of at most 64 characters, defaults
 * parsed by jansson with its own depth limit. Error messages are written for
 * the person who made the call, naming the task and the parameter. */
#include "tq_sig.h"

#include <ctype.h>
#include <errno.h>
#include <math.h> /* isfinite (a macro: no libm needed) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tq_msg.h"
#include "tq_util.h"

typedef enum { T_ANY, T_INT, T_FLOAT, T_STRING, T_BOOL, T_ARRAY, T_OBJECT, T_NULL } ptype;

static const char *const type_names[] = {"any",  "int",   "float",  "string",
                                         "bool", "array", "object", "null"};

typedef struct param {
    char *name;
    ptype type;
    int optional;
    json_t *deflt; /* NULL: none (an omitted optional parameter is null) */
    int has_min, has_max;
    double min, max;
} param;

struct tq_sig {
    size_t n;
    param p[TQ_SIG_MAX_PARAMS];
};

void tq_sig_free(tq_sig *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++) {
        free(s->p[i].name);
        json_decref(s->p[i].deflt);
    }
    free(s);
}

size_t tq_sig_count(const tq_sig *s)
{
    return s->n;
}

static int valid_name(const char *s, size_t n)
{
    if (n == 0 || n > 64 || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_')
            return 0;
    return 1;
}

static int type_parse(const char *s, size_t n, ptype *out)
{
    for (int i = 0; i < 8; i++) {
        if (strlen(type_names[i]) == n && strncmp(s, type_names[i], n) == 0) {
            *out = (ptype)i;
            return 0;
        }
    }
    return -1;
}

static int is_length_type(ptype t)
{
    return t == T_STRING || t == T_ARRAY || t == T_OBJECT;
}

static int type_ok(ptype t, const json_t *v)
{
    switch (t) {
    case T_ANY: return 1;
    case T_INT: return json_is_integer(v);
    case T_FLOAT: return json_is_number(v);
    case T_STRING: return json_is_string(v);
    case T_BOOL: return json_is_boolean(v);
    case T_ARRAY: return json_is_array(v);
    case T_OBJECT: return json_is_object(v);
    case T_NULL: return json_is_null(v);
    }
    return 0;
}

/* Characters (UTF-8 code points) of a valid UTF-8 string. */
static size_t utf8_len(const char *s, size_t n)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            count++;
    return count;
}

/* Copy at most max bytes of s into buf, printable ASCII only ('?' for the
 * rest), so a reason built from hostile input is always valid UTF-8. */
static const char *printable(char *buf, size_t len, const char *s, size_t max)
{
    size_t i = 0;
    for (; i < max && i + 1 < len && s[i]; i++)
        buf[i] = s[i] >= ' ' && s[i] <= '~' ? s[i] : '?';
    buf[i] = '\0';
    return buf;
}

/* A short printable description of a value: `string "x"`, `int 5`. */
static void describe(const json_t *v, char *buf, size_t len)
{
    const char *t = tq_json_type_name(v);
    if (json_is_array(v)) {
        snprintf(buf, len, "array of %zu", json_array_size(v));
    } else if (json_is_object(v)) {
        snprintf(buf, len, "object of %zu", json_object_size(v));
    } else if (json_is_null(v)) {
        snprintf(buf, len, "null");
    } else {
        /* ASCII-only, so truncating it can never split a character. */
        char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_ENSURE_ASCII);
        if (s && strlen(s) > 40)
            snprintf(buf, len, "%s %.37s...", t, s);
        else
            snprintf(buf, len, "%s %s", t, s ? s : "?");
        free(s);
    }
}

static void fmt_num(double d, char *buf, size_t len)
{
    if (d > -1e15 && d < 1e15 && d == (double)(long long)d)
        snprintf(buf, len, "%lld", (long long)d);
    else
        snprintf(buf, len, "%.17g", d);
}

/* Check v against p's type and bounds; `what` names it in messages. */
static int check_value(const param *p, const json_t *v, const char *task, char *err, size_t errlen)
{
    char got[96], b[40];
    const char *pre = task && *task ? task : "call";
    if (!type_ok(p->type, v)) {
        describe(v, got, sizeof(got));
        snprintf(err, errlen, "%s: argument '%s' must be %s, got %s", pre, p->name,
                 type_names[p->type], got);
        return -1;
    }
    if (p->type == T_INT || p->type == T_FLOAT) {
        double d = json_number_value(v);
        if (p->has_min && d < p->min) {
            fmt_num(p->min, b, sizeof(b));
            describe(v, got, sizeof(got));
            snprintf(err, errlen, "%s: argument '%s' must be >= %s, got %s", pre, p->name, b, got);
            return -1;
        }
        if (p->has_max && d > p->max) {
            fmt_num(p->max, b, sizeof(b));
            describe(v, got, sizeof(got));
            snprintf(err, errlen, "%s: argument '%s' must be <= %s, got %s", pre, p->name, b, got);
            return -1;
        }
    } else if (is_length_type(p->type)) {
        size_t n = json_is_string(v)  ? utf8_len(json_string_value(v), json_string_length(v))
                   : json_is_array(v) ? json_array_size(v)
                                      : json_object_size(v);
        const char *unit = json_is_string(v) ? "characters" : "elements";
        if (p->has_min && (double)n < p->min) {
            fmt_num(p->min, b, sizeof(b));
            snprintf(err, errlen, "%s: argument '%s' must have at least %s %s, got %zu", pre,
                     p->name, b, unit, n);
            return -1;
        }
        if (p->has_max && (double)n > p->max) {
            fmt_num(p->max, b, sizeof(b));
            snprintf(err, errlen, "%s: argument '%s' must have at most %s %s, got %zu", pre,
                     p->name, b, unit, n);
            return -1;
        }
    }
    return 0;
}

static const char *skip_ws(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    return s;
}

/* One bound: a finite number, or nothing. Returns the end, NULL on error. */
static const char *parse_bound(const char *s, int *has, double *out)
{
    s = skip_ws(s);
    if (*s == '.' || *s == ']') {
        *has = 0;
        return s;
    }
    /* The number ends at ".." or "]": strtod alone would take "0." of "0..5". */
    size_t n = 0;
    while (s[n] && s[n] != ']' && !(s[n] == '.' && s[n + 1] == '.'))
        n++;
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    char num[64], *end;
    if (n == 0 || n >= sizeof(num))
        return NULL;
    memcpy(num, s, n);
    num[n] = '\0';
    errno = 0;
    double d = strtod(num, &end);
    if (*end || errno || !isfinite(d))
        return NULL;
    *has = 1;
    *out = d;
    return skip_ws(s + n);
}

/* A whole number >= 0 that fits a length. */
static int whole(double d)
{
    return d >= 0 && d < 1e15 && d == (double)(long long)d;
}

static int add_param(tq_sig *sig, param *p, char *err, size_t errlen)
{
    for (size_t i = 0; i < sig->n; i++) {
        if (strcmp(sig->p[i].name, p->name) == 0) {
            snprintf(err, errlen, "parameter '%s' is declared twice", p->name);
            return -1;
        }
    }
    if (sig->n >= TQ_SIG_MAX_PARAMS) {
        snprintf(err, errlen, "more than %d parameters", TQ_SIG_MAX_PARAMS);
        return -1;
    }
    if (p->has_min && p->has_max && p->min > p->max) {
        snprintf(err, errlen, "parameter '%s': bounds [min..max] with min above max", p->name);
        return -1;
    }
    if (is_length_type(p->type) &&
        ((p->has_min && !whole(p->min)) || (p->has_max && !whole(p->max)))) {
        snprintf(err, errlen, "parameter '%s': length bounds must be whole numbers >= 0", p->name);
        return -1;
    }
    if ((p->has_min || p->has_max) && !is_length_type(p->type) && p->type != T_INT &&
        p->type != T_FLOAT) {
        snprintf(err, errlen, "parameter '%s': type %s takes no bounds", p->name,
                 type_names[p->type]);
        return -1;
    }
    if (p->deflt && check_value(p, p->deflt, "default", err, errlen) < 0)
        return -1;
    sig->p[sig->n++] = *p;
    return 0;
}

tq_sig *tq_sig_parse(const char *spec, char *err, size_t errlen)
{
    tq_sig *sig = tq_xcalloc(1, sizeof(*sig));
    const char *s = skip_ws(spec ? spec : "");
    param p;
    memset(&p, 0, sizeof(p));
    while (*s) {
        memset(&p, 0, sizeof(p));
        const char *name = s;
        while (isalnum((unsigned char)*s) || *s == '_')
            s++;
        if (!valid_name(name, (size_t)(s - name))) {
            snprintf(err, errlen,
                     "parameter %zu: expected a name ([A-Za-z_][A-Za-z0-9_]*, at most 64)",
                     sig->n + 1);
            goto fail;
        }
        p.name = tq_xstrndup(name, (size_t)(s - name));
        s = skip_ws(s);
        if (*s++ != ':') {
            snprintf(err, errlen, "parameter '%s': expected ':' and a type", p.name);
            goto fail;
        }
        s = skip_ws(s);
        const char *tname = s;
        while (isalpha((unsigned char)*s))
            s++;
        if (type_parse(tname, (size_t)(s - tname), &p.type) < 0) {
            snprintf(
                err, errlen,
                "parameter '%s': unknown type '%.*s' (int, float, string, bool, array, object, "
                "null, any)",
                p.name, (int)((size_t)(s - tname) > 20 ? 20 : (size_t)(s - tname)), tname);
            goto fail;
        }
        s = skip_ws(s);
        if (*s == '[') {
            s = parse_bound(s + 1, &p.has_min, &p.min);
            if (!s || s[0] != '.' || s[1] != '.') {
                snprintf(err, errlen, "parameter '%s': bounds must look like [MIN..MAX]", p.name);
                goto fail;
            }
            s = parse_bound(s + 2, &p.has_max, &p.max);
            if (!s || *s != ']') {
                snprintf(err, errlen, "parameter '%s': bounds must look like [MIN..MAX]", p.name);
                goto fail;
            }
            s = skip_ws(s + 1);
        }
        if (*s == '=') {
            json_error_t je;
            s = skip_ws(s + 1);
            p.deflt =
                json_loadb(s, strlen(s),
                           JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK | JSON_REJECT_DUPLICATES, &je);
            if (!p.deflt) {
                char why[160];
                snprintf(err, errlen, "parameter '%s': default is not a JSON literal: %s", p.name,
                         printable(why, sizeof(why), je.text, sizeof(why) - 1));
                goto fail;
            }
            s = skip_ws(s + je.position);
            p.optional = 1;
        } else if (*s == '?') {
            p.optional = 1;
            s = skip_ws(s + 1);
        } else if (sig->n > 0 && sig->p[sig->n - 1].optional) {
            snprintf(err, errlen,
                     "parameter '%s': a required parameter cannot follow an optional one", p.name);
            goto fail;
        }
        if (*s == ',') {
            s = skip_ws(s + 1);
            if (!*s) {
                snprintf(err, errlen, "trailing ',' after parameter '%s'", p.name);
                goto fail;
            }
        } else if (*s) {
            snprintf(err, errlen, "parameter '%s': unexpected '%c' (expected ',' or the end)",
                     p.name, isprint((unsigned char)*s) ? *s : '?');
            goto fail;
        }
        if (add_param(sig, &p, err, errlen) < 0)
            goto fail;
    }
    return sig;
fail:
    free(p.name);
    json_decref(p.deflt);
    tq_sig_free(sig);
    return NULL;
}

json_t *tq_sig_to_json(const tq_sig *s)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < s->n; i++) {
        const param *p = &s->p[i];
        json_t *o = json_pack("{s:s, s:s, s:b}", "name", p->name, "type", type_names[p->type],
                              "optional", p->optional);
        if (p->deflt)
            json_object_set(o, "default", p->deflt);
        if (p->has_min)
            json_object_set_new(o, "min", json_real(p->min));
        if (p->has_max)
            json_object_set_new(o, "max", json_real(p->max));
        json_array_append_new(arr, o);
    }
    return arr;
}

tq_sig *tq_sig_from_json(const json_t *j, char *err, size_t errlen)
{
    tq_sig *sig;
    size_t i;
    json_t *o;
    if (!json_is_array(j)) {
        snprintf(err, errlen, "signature must be a JSON array");
        return NULL;
    }
    sig = tq_xcalloc(1, sizeof(*sig));
    json_array_foreach(j, i, o)
    {
        param p;
        memset(&p, 0, sizeof(p));
        const char *name = json_string_value(json_object_get(o, "name"));
        const char *type = json_string_value(json_object_get(o, "type"));
        json_t *mn = json_object_get(o, "min"), *mx = json_object_get(o, "max");
        json_t *opt = json_object_get(o, "optional");
        if (!json_is_object(o) || !name || !valid_name(name, strlen(name)) || !type ||
            type_parse(type, strlen(type), &p.type) < 0 || (mn && !json_is_number(mn)) ||
            (mx && !json_is_number(mx)) || (opt && !json_is_boolean(opt))) {
            snprintf(err, errlen, "signature parameter %zu is malformed", i + 1);
            goto fail;
        }
        p.name = tq_xstrdup(name);
        p.optional = json_is_true(opt);
        if (json_object_get(o, "default")) {
            p.deflt = json_incref(json_object_get(o, "default"));
            p.optional = 1;
        }
        if (mn) {
            p.has_min = 1;
            p.min = json_number_value(mn);
        }
        if (mx) {
            p.has_max = 1;
            p.max = json_number_value(mx);
        }
        if ((p.has_min && !isfinite(p.min)) || (p.has_max && !isfinite(p.max)) ||
            (!p.optional && sig->n > 0 && sig->p[sig->n - 1].optional)) {
            snprintf(err, errlen, "signature parameter '%s' is malformed", p.name);
            free(p.name);
            json_decref(p.deflt);
            goto fail;
        }
        if (add_param(sig, &p, err, errlen) < 0) {
            free(p.name);
            json_decref(p.deflt);
            goto fail;
        }
    }
    return sig;
fail:
    tq_sig_free(sig);
    return NULL;
}

char *tq_sig_to_string(const tq_sig *s)
{
    size_t cap = 256, len = 0;
    char *out = tq_xmalloc(cap);
    out[0] = '\0';
    for (size_t i = 0; i < s->n; i++) {
        const param *p = &s->p[i];
        char bounds[96] = "", lo[40] = "", hi[40] = "", *dflt = NULL;
        if (p->has_min)
            fmt_num(p->min, lo, sizeof(lo));
        if (p->has_max)
            fmt_num(p->max, hi, sizeof(hi));
        if (p->has_min || p->has_max)
            snprintf(bounds, sizeof(bounds), "[%s..%s]", lo, hi);
        if (p->deflt)
            dflt = json_dumps(p->deflt, JSON_ENCODE_ANY | JSON_COMPACT | JSON_SORT_KEYS);
        char *item = tq_xasprintf("%s%s:%s%s%s%s", i ? ", " : "", p->name, type_names[p->type],
                                  bounds, dflt ? "=" : (p->optional ? "?" : ""), dflt ? dflt : "");
        free(dflt);
        size_t n = strlen(item);
        if (len + n + 1 > cap) {
            while (len + n + 1 > cap)
                cap *= 2;
            out = tq_xrealloc(out, cap);
        }
        memcpy(out + len, item, n + 1);
        len += n;
        free(item);
    }
    return out;
}

static ssize_t find_param(const tq_sig *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->p[i].name, name) == 0)
            return (ssize_t)i;
    return -1;
}

int tq_sig_bind(const tq_sig *s, const char *task, const json_t *args, const json_t *kwargs,
                json_t **bound, char *err, size_t errlen)
{
    const json_t *vals[TQ_SIG_MAX_PARAMS] = {0};
    const char *pre = task && *task ? task : "call";
    const char *k;
    json_t *v;
    if (bound)
        *bound = NULL;
    if (!json_is_array(args)) {
        snprintf(err, errlen, "%s: positional arguments must be an array", pre);
        return -1;
    }
    if (kwargs && !json_is_object(kwargs)) {
        snprintf(err, errlen, "%s: keyword arguments must be an object", pre);
        return -1;
    }
    size_t nargs = json_array_size(args);
    if (nargs > s->n) {
        snprintf(err, errlen, "%s: takes at most %zu argument%s, got %zu", pre, s->n,
                 s->n == 1 ? "" : "s", nargs);
        return -1;
    }
    for (size_t i = 0; i < nargs; i++)
        vals[i] = json_array_get(args, i);
    if (kwargs) {
        json_object_foreach((json_t *)(uintptr_t)kwargs, k, v)
        {
            ssize_t idx = find_param(s, k);
            if (idx < 0) {
                char name[72];
                snprintf(err, errlen, "%s: unexpected keyword argument '%s'", pre,
                         printable(name, sizeof(name), k, 64));
                return -1;
            }
            if (vals[idx]) {
                snprintf(err, errlen, "%s: got multiple values for argument '%s'", pre,
                         s->p[idx].name);
                return -1;
            }
            vals[idx] = v;
        }
    }
    for (size_t i = 0; i < s->n; i++) {
        const param *p = &s->p[i];
        if (!vals[i]) {
            if (!p->optional) {
                snprintf(err, errlen, "%s: missing required argument '%s' (%s)", pre, p->name,
                         type_names[p->type]);
                return -1;
            }
            continue;
        }
        if (check_value(p, vals[i], pre, err, errlen) < 0)
            return -1;
    }
    if (bound) {
        json_t *arr = json_array();
        for (size_t i = 0; i < s->n; i++) {
            const json_t *x = vals[i] ? vals[i] : s->p[i].deflt;
            json_array_append_new(arr, x ? json_deep_copy(x) : json_null());
        }
        *bound = arr;
    }
    return 0;
}
