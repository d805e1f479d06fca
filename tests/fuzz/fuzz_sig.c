/* fuzz_sig: libFuzzer target for typed task signatures (common/tq_sig.c).
 *
 * Input layout: SPEC [SEP ARGS [SEP KWARGS]], where SEP is the first NUL or
 * newline byte (and then the next one). SPEC is spec text for tq_sig_parse;
 * ARGS and KWARGS are JSON for tq_sig_bind (ARGS not an array: bound as the
 * single positional argument; KWARGS not an object: no keyword arguments).
 * When SPEC itself is JSON it is also fed to tq_sig_from_json, since the
 * published form is read back from Redis, which a hostile writer controls.
 * Properties checked:
 *   - no crash, leak, or undefined behaviour (the sanitizers);
 *   - a failure gives NULL/-1 and a non-empty, valid UTF-8 reason (reasons
 *     go into JSON result records), and bind's reasons name the task;
 *   - canonical form: to_string of a parsed spec parses again to the same
 *     string, and to_json -> from_json gives the same string and JSON;
 *   - bind: on success one bound value per parameter; with and without
 *     `bound` the answer is the same; binding is deterministic. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/tq_sig.h"
#include "common/tq_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_sig: check failed at line %d: %s\n", __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define TASK "fz"

static void check_reason(const char *err, size_t errlen)
{
    size_t n = strnlen(err, errlen);
    CHECK(n > 0 && n < errlen);
    if (!tq_utf8_valid(err, n)) {
        fprintf(stderr, "fuzz_sig: reason is not valid UTF-8: %s\n", err);
        abort();
    }
}

static void reset(char *err, size_t errlen)
{
    memset(err, 'X', errlen);
    err[errlen - 1] = '\0';
}

/* s is a parsed signature: its canonical string and JSON forms are stable. */
static void check_canonical(const tq_sig *s)
{
    char err[512];
    CHECK(tq_sig_count(s) <= TQ_SIG_MAX_PARAMS);
    char *str = tq_sig_to_string(s);
    CHECK(str != NULL);

    reset(err, sizeof(err));
    tq_sig *s2 = tq_sig_parse(str, err, sizeof(err));
    if (!s2)
        fprintf(stderr, "fuzz_sig: canonical spec does not parse: %s\n  spec: %s\n", err, str);
    CHECK(s2 != NULL);
    char *str2 = tq_sig_to_string(s2);
    if (strcmp(str, str2) != 0)
        fprintf(stderr, "fuzz_sig: canonical spec changed:\n  %s\n  %s\n", str, str2);
    CHECK(strcmp(str, str2) == 0);
    CHECK(tq_sig_count(s2) == tq_sig_count(s));

    json_t *j = tq_sig_to_json(s);
    CHECK(json_is_array(j) && json_array_size(j) == tq_sig_count(s));
    reset(err, sizeof(err));
    tq_sig *s3 = tq_sig_from_json(j, err, sizeof(err));
    if (!s3)
        fprintf(stderr, "fuzz_sig: published form does not load: %s\n  spec: %s\n", err, str);
    CHECK(s3 != NULL);
    char *str3 = tq_sig_to_string(s3);
    if (strcmp(str, str3) != 0)
        fprintf(stderr, "fuzz_sig: JSON round trip changed the spec:\n  %s\n  %s\n", str, str3);
    CHECK(strcmp(str, str3) == 0);
    json_t *j3 = tq_sig_to_json(s3);
    CHECK(json_equal(j, j3));
    /* The published form is valid JSON text. */
    char *txt = json_dumps(j, JSON_COMPACT);
    CHECK(txt != NULL);

    free(txt);
    json_decref(j3);
    json_decref(j);
    free(str3);
    free(str2);
    free(str);
    tq_sig_free(s3);
    tq_sig_free(s2);
}

static void check_bind(const tq_sig *s, const json_t *args, const json_t *kwargs)
{
    char err[512], err2[512];
    json_t *bound = (json_t *)0x1;
    reset(err, sizeof(err));
    int rc = tq_sig_bind(s, TASK, args, kwargs, &bound, err, sizeof(err));
    CHECK(rc == 0 || rc == -1);
    reset(err2, sizeof(err2));
    int rc2 = tq_sig_bind(s, TASK, args, kwargs, NULL, err2, sizeof(err2));
    CHECK(rc2 == rc);
    if (rc == 0) {
        CHECK(json_is_array(bound) && json_array_size(bound) == tq_sig_count(s));
        json_decref(bound);
        return;
    }
    CHECK(bound == NULL);
    check_reason(err, sizeof(err));
    CHECK(strcmp(err, err2) == 0);
    CHECK(strncmp(err, TASK ": ", strlen(TASK ": ")) == 0);
}

/* Parse buf[0..len) as any JSON value, or NULL. */
static json_t *load(const char *buf, size_t len)
{
    json_error_t je;
    return json_loadb(buf, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
}

static const char *next_sep(const char *p, const char *end)
{
    for (; p < end; p++)
        if (*p == '\0' || *p == '\n')
            return p;
    return end;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data, *end = buf + size;
    const char *sep1 = next_sep(buf, end);
    const char *a0 = sep1 < end ? sep1 + 1 : end;
    const char *sep2 = next_sep(a0, end);
    const char *k0 = sep2 < end ? sep2 + 1 : end;
    char err[512];

    char *spec = tq_xstrndup(buf, (size_t)(sep1 - buf));
    json_t *args = load(a0, (size_t)(sep2 - a0));
    json_t *kwargs = load(k0, (size_t)(end - k0));
    if (!json_is_array(args)) {
        json_t *one = json_array();
        if (args)
            json_array_append_new(one, args);
        args = one;
    }
    if (kwargs && !json_is_object(kwargs)) {
        json_decref(kwargs);
        kwargs = NULL;
    }

    reset(err, sizeof(err));
    tq_sig *s = tq_sig_parse(spec, err, sizeof(err));
    if (s) {
        check_canonical(s);
        check_bind(s, args, kwargs);
        json_t *empty = json_object();
        check_bind(s, args, empty);
        json_decref(empty);
        tq_sig_free(s);
    } else {
        check_reason(err, sizeof(err));
    }

    /* The published JSON form, as a hostile Redis writer could store it. */
    json_t *pub = load(spec, strlen(spec));
    if (pub) {
        reset(err, sizeof(err));
        tq_sig *p = tq_sig_from_json(pub, err, sizeof(err));
        if (p) {
            check_canonical(p);
            check_bind(p, args, kwargs);
            tq_sig_free(p);
        } else {
            check_reason(err, sizeof(err));
        }
        json_decref(pub);
    }

    json_decref(kwargs);
    json_decref(args);
    free(spec);
    return 0;
}
