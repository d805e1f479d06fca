/* tq_msg: protocol v1 messages. Hostile input is the normal case here: every
 * limit is checked on the raw bytes first (size, nesting), jansson parses with
 * JSON_REJECT_DUPLICATES, and then every field is checked for type and range.
 * Reasons are precise because they end up in the dead-letter set and in the
 * submitter's result record. */
#include "tq_msg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tq_json.h"
#include "tq_jw.h"
#include "tq_util.h"

void tq_msg_limits_default(tq_msg_limits *lim)
{
    lim->max_bytes = 1024 * 1024;
    lim->max_depth = 32;
    lim->max_elements = 100000;
    lim->max_string = 256 * 1024;
}

static void bind_fields(tq_msg *m)
{
    m->id = json_string_value(json_object_get(m->root, "id"));
    m->task = json_string_value(json_object_get(m->root, "task"));
    m->queue = json_string_value(json_object_get(m->root, "queue"));
    m->args = json_object_get(m->root, "args");
    m->kwargs = json_object_get(m->root, "kwargs");
}

tq_msg *tq_msg_new(const char *id, const char *task, const char *queue)
{
    tq_msg *m = tq_xcalloc(1, sizeof(*m));
    m->root = json_object();
    if (!m->root)
        abort();
    json_object_set_new(m->root, "v", json_integer(TQ_PROTOCOL_VERSION));
    json_object_set_new(m->root, "id", json_string(id));
    json_object_set_new(m->root, "task", json_string(task));
    json_object_set_new(m->root, "args", json_array());
    json_object_set_new(m->root, "kwargs", json_object());
    json_object_set_new(m->root, "queue", json_string(queue));
    m->retries = -1;
    tq_msg_set_int(m, "attempts", 0);
    tq_msg_set_int(m, "created_ms", tq_now_ms());
    bind_fields(m);
    return m;
}

void tq_msg_free(tq_msg *m)
{
    if (!m)
        return;
    /* Acquire-release: the last holder sees every other holder's reads done. */
    if (__atomic_fetch_sub(&m->shares, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    json_decref(m->root);
    free(m);
}

tq_msg *tq_msg_share(const tq_msg *m)
{
    /* Only the count changes: the message stays as it is for every holder. */
    tq_msg *s = (tq_msg *)(uintptr_t)m;
    __atomic_add_fetch(&s->shares, 1, __ATOMIC_RELAXED);
    return s;
}

int tq_msg_prescan_depth(const char *buf, size_t len, int max_depth)
{
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > max_depth)
                return -1;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return 0;
}

typedef struct walk {
    const tq_msg_limits *lim;
    size_t elements;
    char *err;
    size_t errlen;
    const char *what;
} walk;

static int walk_value(walk *w, const json_t *v, int depth)
{
    if (++w->elements > w->lim->max_elements) {
        snprintf(w->err, w->errlen, "%s: more than %zu elements (limit max_elements)", w->what,
                 w->lim->max_elements);
        return -1;
    }
    if (json_is_string(v) && json_string_length(v) > w->lim->max_string) {
        snprintf(w->err, w->errlen, "%s: a string of %zu bytes exceeds %zu (limit max_string)",
                 w->what, json_string_length(v), w->lim->max_string);
        return -1;
    }
    if (!json_is_array(v) && !json_is_object(v))
        return 0;
    if (depth + 1 > w->lim->max_depth) {
        snprintf(w->err, w->errlen, "%s: nesting deeper than %d (limit max_depth)", w->what,
                 w->lim->max_depth);
        return -1;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            if (walk_value(w, e, depth + 1) < 0)
                return -1;
        }
    } else {
        const char *k;
        json_t *e;
        /* jansson's iterators take a non-const object; walking does not modify it. */
        json_t *obj = (json_t *)(uintptr_t)v;
        json_object_foreach(obj, k, e)
        {
            if (strlen(k) > w->lim->max_string) {
                snprintf(w->err, w->errlen, "%s: a key exceeds %zu bytes (limit max_string)",
                         w->what, w->lim->max_string);
                return -1;
            }
            if (walk_value(w, e, depth + 1) < 0)
                return -1;
        }
    }
    return 0;
}

int tq_msg_check_value(const json_t *v, const tq_msg_limits *lim, const char *what, char *err,
                       size_t errlen)
{
    walk w = {lim, 0, err, errlen, what};
    return walk_value(&w, v, 0) < 0 ? TQ_MSG_ELIMIT : 0;
}

const char *tq_json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "int";
    case JSON_REAL: return "float";
    case JSON_TRUE:
    case JSON_FALSE: return "bool";
    case JSON_NULL: return "null";
    }
    return "?";
}

/* Counters (attempts, retries) end up in int arithmetic in the worker
 * (attempts + 1, backoff exponents): bound them well inside int. */
#define COUNT_MAX 1000000000LL

/* Fetch an optional integer field in [min, max]; -1 on a type or range error
 * (reason in err). */
static int get_int(const json_t *root, const char *field, int required, int64_t min, int64_t max,
                   int64_t *out, int64_t dflt, char *err, size_t errlen)
{
    json_t *v = json_object_get(root, field);
    if (!v || json_is_null(v)) {
        if (required) {
            snprintf(err, errlen, "missing field '%s'", field);
            return -1;
        }
        *out = dflt;
        return 0;
    }
    if (!json_is_integer(v)) {
        snprintf(err, errlen, "field '%s' must be int, got %s", field, tq_json_type_name(v));
        return -1;
    }
    if (json_integer_value(v) < min) {
        snprintf(err, errlen, "field '%s' must be >= %lld, got %lld", field, (long long)min,
                 (long long)json_integer_value(v));
        return -1;
    }
    if (json_integer_value(v) > max) {
        snprintf(err, errlen, "field '%s' must be <= %lld, got %lld", field, (long long)max,
                 (long long)json_integer_value(v));
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

static int get_str(const json_t *root, const char *field, int (*valid)(const char *),
                   const char *rule, char *err, size_t errlen)
{
    json_t *v = json_object_get(root, field);
    if (!v) {
        snprintf(err, errlen, "missing field '%s'", field);
        return -1;
    }
    if (!json_is_string(v)) {
        snprintf(err, errlen, "field '%s' must be string, got %s", field, tq_json_type_name(v));
        return -1;
    }
    if (strlen(json_string_value(v)) != json_string_length(v) || !valid(json_string_value(v))) {
        snprintf(err, errlen, "field '%s' is not a valid %s", field, rule);
        return -1;
    }
    return 0;
}

int tq_msg_decode(const char *buf, size_t len, const tq_msg_limits *lim, tq_msg **out, char *err,
                  size_t errlen)
{
    tq_msg *m = NULL;
    json_t *root = NULL;
    int rc = TQ_MSG_ESCHEMA;

    *out = NULL;
    if (len == 0) {
        snprintf(err, errlen, "empty message");
        return TQ_MSG_EJSON;
    }
    if (len > lim->max_bytes) {
        snprintf(err, errlen, "message of %zu bytes exceeds %zu (limit max_bytes)", len,
                 lim->max_bytes);
        return TQ_MSG_ELIMIT;
    }
    if (tq_msg_prescan_depth(buf, len, lim->max_depth) < 0) {
        snprintf(err, errlen, "message nesting deeper than %d (limit max_depth)", lim->max_depth);
        return TQ_MSG_ELIMIT;
    }
    /* tq_json, not json_loadb: the same rules, a fraction of the time. */
    root = tq_json_parse(buf, len, lim->max_depth, err, errlen);
    if (!root)
        return TQ_MSG_EJSON;
    if (!json_is_object(root)) {
        snprintf(err, errlen, "message must be a JSON object, got %s", tq_json_type_name(root));
        goto out;
    }
    walk w = {lim, 0, err, errlen, "message"};
    /* The root object itself is depth 1, as in the pre-scan. */
    if (walk_value(&w, root, 0) < 0) {
        rc = TQ_MSG_ELIMIT;
        goto out;
    }
    int64_t v;
    if (get_int(root, "v", 1, 0, INT64_MAX, &v, 0, err, errlen) < 0)
        goto out;
    if (v != TQ_PROTOCOL_VERSION) {
        snprintf(err, errlen, "unsupported protocol version %lld (this worker speaks %d)",
                 (long long)v, TQ_PROTOCOL_VERSION);
        rc = TQ_MSG_EVERSION;
        goto out;
    }
    if (get_str(root, "id", tq_valid_id, "task id ([0-9A-Za-z_-]{1,64})", err, errlen) < 0 ||
        get_str(root, "task", tq_valid_task_name, "task name (printable ASCII, 1..128)", err,
                errlen) < 0 ||
        get_str(root, "queue", tq_valid_queue, "queue name ([0-9A-Za-z_.-]{1,64})", err, errlen) <
            0)
        goto out;
    json_t *args = json_object_get(root, "args"), *kwargs = json_object_get(root, "kwargs");
    if (!args) {
        snprintf(err, errlen, "missing field 'args'");
        goto out;
    }
    if (!json_is_array(args)) {
        snprintf(err, errlen, "field 'args' must be array, got %s", tq_json_type_name(args));
        goto out;
    }
    if (!kwargs) {
        snprintf(err, errlen, "missing field 'kwargs'");
        goto out;
    }
    if (!json_is_object(kwargs)) {
        snprintf(err, errlen, "field 'kwargs' must be object, got %s", tq_json_type_name(kwargs));
        goto out;
    }
    json_t *errors = json_object_get(root, "errors");
    if (errors && !json_is_array(errors) && !json_is_null(errors)) {
        snprintf(err, errlen, "field 'errors' must be array, got %s", tq_json_type_name(errors));
        goto out;
    }
    m = tq_xcalloc(1, sizeof(*m));
    m->root = root;
    if (get_int(root, "attempts", 1, 0, COUNT_MAX, &m->attempts, 0, err, errlen) < 0 ||
        get_int(root, "retries", 0, 0, COUNT_MAX, &m->retries, -1, err, errlen) < 0 ||
        get_int(root, "created_ms", 1, 0, INT64_MAX, &m->created_ms, 0, err, errlen) < 0 ||
        get_int(root, "eta_ms", 0, 0, INT64_MAX, &m->eta_ms, 0, err, errlen) < 0 ||
        get_int(root, "expires_ms", 0, 0, INT64_MAX, &m->expires_ms, 0, err, errlen) < 0 ||
        get_int(root, "soft_limit_ms", 0, 1, INT64_MAX, &m->soft_limit_ms, 0, err, errlen) < 0 ||
        get_int(root, "hard_limit_ms", 0, 1, INT64_MAX, &m->hard_limit_ms, 0, err, errlen) < 0) {
        m->root = NULL;
        tq_msg_free(m);
        m = NULL;
        goto out;
    }
    bind_fields(m);
    *out = m;
    return TQ_MSG_OK;
out:
    json_decref(root);
    return rc;
}

void tq_msg_set_int(tq_msg *m, const char *field, int64_t v)
{
    int optional = strcmp(field, "attempts") != 0 && strcmp(field, "created_ms") != 0;
    int absent = optional && (strcmp(field, "retries") == 0 ? v < 0 : v == 0);
    if (absent)
        json_object_del(m->root, field);
    else
        json_object_set_new(m->root, field, json_integer(v));
    if (strcmp(field, "attempts") == 0)
        m->attempts = v;
    else if (strcmp(field, "retries") == 0)
        m->retries = absent ? -1 : v;
    else if (strcmp(field, "created_ms") == 0)
        m->created_ms = v;
    else if (strcmp(field, "eta_ms") == 0)
        m->eta_ms = v;
    else if (strcmp(field, "expires_ms") == 0)
        m->expires_ms = v;
    else if (strcmp(field, "soft_limit_ms") == 0)
        m->soft_limit_ms = v;
    else if (strcmp(field, "hard_limit_ms") == 0)
        m->hard_limit_ms = v;
}

void tq_msg_set_args(tq_msg *m, json_t *args)
{
    json_object_set_new(m->root, "args", args);
    bind_fields(m);
}

void tq_msg_set_kwargs(tq_msg *m, json_t *kwargs)
{
    json_object_set_new(m->root, "kwargs", kwargs);
    bind_fields(m);
}

void tq_msg_add_error(tq_msg *m, int64_t attempt, const char *type, const char *message,
                      int64_t at_ms, const char *worker)
{
    json_t *errors = json_object_get(m->root, "errors");
    if (!json_is_array(errors)) {
        errors = json_array();
        json_object_set_new(m->root, "errors", errors);
    }
    json_t *e = json_object();
    json_object_set_new(e, "attempt", json_integer(attempt));
    json_object_set_new(e, "type", json_string(type ? type : "Error"));
    json_object_set_new(e, "message", json_string(message ? message : ""));
    json_object_set_new(e, "at_ms", json_integer(at_ms));
    if (worker)
        json_object_set_new(e, "worker", json_string(worker));
    json_array_append_new(errors, e);
}

char *tq_msg_encode(const tq_msg *m, size_t *len)
{
    tq_jw w;
    tq_jw_init(&w);
    tq_jw_json(&w, m->root);
    return tq_jw_take(&w, len);
}

int tq_msg_write_new(tq_jw *jw, const tq_msg_fields *f, const tq_msg_limits *lim, char *err,
                     size_t errlen)
{
    /* The limits over the whole message, checked in the order the walk of
     * tq_msg_check_value visits it (same errors): the root, then each field's
     * key and value, in the encoding's order. */
    struct {
        const char *key, *str;
        const json_t *json;
        int present;
    } fs[] = {{"v", NULL, NULL, 1},
              {"id", f->id, NULL, 1},
              {"task", f->task, NULL, 1},
              {"args", NULL, f->args, 1},
              {"kwargs", NULL, f->kwargs, 1},
              {"queue", f->queue, NULL, 1},
              {"attempts", NULL, NULL, 1},
              {"created_ms", NULL, NULL, 1},
              {"retries", NULL, NULL, f->retries >= 0},
              {"eta_ms", NULL, NULL, f->eta_ms != 0},
              {"expires_ms", NULL, NULL, f->expires_ms != 0},
              {"soft_limit_ms", NULL, NULL, f->soft_limit_ms != 0},
              {"hard_limit_ms", NULL, NULL, f->hard_limit_ms != 0}};
    walk wk = {lim, 1, err, errlen, f->task};
    if (lim->max_elements < 1) {
        snprintf(err, errlen, "%s: more than %zu elements (limit max_elements)", f->task,
                 lim->max_elements);
        return TQ_MSG_ELIMIT;
    }
    if (lim->max_depth < 1) {
        snprintf(err, errlen, "%s: nesting deeper than %d (limit max_depth)", f->task,
                 lim->max_depth);
        return TQ_MSG_ELIMIT;
    }
    for (size_t i = 0; i < sizeof(fs) / sizeof(fs[0]); i++) {
        if (!fs[i].present)
            continue;
        if (strlen(fs[i].key) > lim->max_string) {
            snprintf(err, errlen, "%s: a key exceeds %zu bytes (limit max_string)", f->task,
                     lim->max_string);
            return TQ_MSG_ELIMIT;
        }
        if (fs[i].json) {
            if (walk_value(&wk, fs[i].json, 1) < 0)
                return TQ_MSG_ELIMIT;
            continue;
        }
        if (++wk.elements > lim->max_elements) {
            snprintf(err, errlen, "%s: more than %zu elements (limit max_elements)", f->task,
                     lim->max_elements);
            return TQ_MSG_ELIMIT;
        }
        if (fs[i].str && strlen(fs[i].str) > lim->max_string) {
            snprintf(err, errlen, "%s: a string of %zu bytes exceeds %zu (limit max_string)",
                     f->task, strlen(fs[i].str), lim->max_string);
            return TQ_MSG_ELIMIT;
        }
    }
    /* The order of tq_msg_new, then the setters of the submitting client. */
    static const char *const opt_name[] = {"retries", "eta_ms", "expires_ms", "soft_limit_ms",
                                           "hard_limit_ms"};
    const int64_t opt_val[] = {f->retries, f->eta_ms, f->expires_ms, f->soft_limit_ms,
                               f->hard_limit_ms};
    tq_jw_object(jw);
    tq_jw_key(jw, "v");
    tq_jw_int(jw, TQ_PROTOCOL_VERSION);
    tq_jw_key(jw, "id");
    tq_jw_str(jw, f->id);
    tq_jw_key(jw, "task");
    tq_jw_str(jw, f->task);
    tq_jw_key(jw, "args");
    tq_jw_json(jw, f->args);
    tq_jw_key(jw, "kwargs");
    tq_jw_json(jw, f->kwargs);
    tq_jw_key(jw, "queue");
    tq_jw_str(jw, f->queue);
    tq_jw_key(jw, "attempts");
    tq_jw_int(jw, 0);
    tq_jw_key(jw, "created_ms");
    tq_jw_int(jw, f->created_ms);
    for (size_t i = 0; i < sizeof(opt_name) / sizeof(opt_name[0]); i++) {
        if (i == 0 ? opt_val[i] < 0 : opt_val[i] == 0)
            continue; /* absent: retries -1, the others 0 */
        tq_jw_key(jw, opt_name[i]);
        tq_jw_int(jw, opt_val[i]);
    }
    tq_jw_end(jw);
    return 0;
}

json_t *tq_msg_record_new(const tq_msg *m, const char *state)
{
    json_t *r = json_object();
    json_object_set_new(r, "v", json_integer(TQ_PROTOCOL_VERSION));
    json_object_set_new(r, "id", json_string(m->id));
    json_object_set_new(r, "task", json_string(m->task));
    json_object_set_new(r, "queue", json_string(m->queue));
    json_object_set_new(r, "state", json_string(state));
    json_object_set_new(r, "attempts", json_integer(m->attempts));
    json_object_set_new(r, "created_ms", json_integer(m->created_ms));
    json_t *errors = json_object_get(m->root, "errors");
    json_object_set_new(r, "errors", json_is_array(errors) ? json_deep_copy(errors) : json_array());
    return r;
}
