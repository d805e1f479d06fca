/* fuzz_msg: libFuzzer target for the message decoder (common/tq_msg.c).
 *
 * The input is a raw message, exactly as a hostile writer could put it into
 * P{Q}:msg. It is decoded with the default limits and with tiny ones (so
 * every limit branch is reached with small inputs). Properties checked:
 *   - no crash, leak, or undefined behaviour (the sanitizers);
 *   - the result is consistent: a message on success (and its fields valid),
 *     no message and a non-empty reason on failure, a reason that is
 *     printable UTF-8 (it goes into JSON records and the dead-letter set);
 *   - round trip: re-encoding a decoded message decodes again to an equal
 *     message, and so does the retry path (attempts + 1, an error appended);
 *   - the depth pre-scan never lets through what the tree walk rejects for
 *     depth, and the decoder never accepts more than max_bytes. */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/tq_msg.h"
#include "common/tq_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_msg: check failed at line %d: %s\n", __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* A reason must be non-empty, NUL-terminated inside its buffer, valid UTF-8
 * and free of control characters: it is stored in JSON and printed in logs. */
static void check_reason(const char *err, size_t errlen)
{
    size_t n = strnlen(err, errlen);
    CHECK(n > 0 && n < errlen);
    CHECK(tq_utf8_valid(err, n));
    for (size_t i = 0; i < n; i++)
        CHECK((unsigned char)err[i] >= 0x20 && err[i] != 0x7f);
}

static void check_fields(const tq_msg *m)
{
    CHECK(json_is_object(m->root));
    CHECK(json_integer_value(json_object_get(m->root, "v")) == TQ_PROTOCOL_VERSION);
    CHECK(m->id && tq_valid_id(m->id));
    CHECK(m->task && tq_valid_task_name(m->task));
    CHECK(m->queue && tq_valid_queue(m->queue));
    CHECK(json_is_array(m->args));
    CHECK(json_is_object(m->kwargs));
    CHECK(m->attempts >= 0 && m->created_ms >= 0);
    CHECK(m->retries >= -1);
    CHECK(m->eta_ms >= 0 && m->expires_ms >= 0);
    CHECK(m->soft_limit_ms >= 0 && m->hard_limit_ms >= 0);
}

static int same_msg(const tq_msg *a, const tq_msg *b)
{
    return json_equal(a->root, b->root) && strcmp(a->id, b->id) == 0 &&
           strcmp(a->task, b->task) == 0 && strcmp(a->queue, b->queue) == 0 &&
           a->attempts == b->attempts && a->retries == b->retries &&
           a->created_ms == b->created_ms && a->eta_ms == b->eta_ms &&
           a->expires_ms == b->expires_ms && a->soft_limit_ms == b->soft_limit_ms &&
           a->hard_limit_ms == b->hard_limit_ms;
}

/* Encode m and decode it again under lim (without the byte limit: an
 * encoding may legitimately be longer than its source, e.g. 1e2 -> 100.0). */
static tq_msg *reencode(const tq_msg *m, const tq_msg_limits *lim)
{
    tq_msg_limits rl = *lim;
    char err[512];
    size_t len = 0;
    tq_msg *m2 = NULL;
    rl.max_bytes = SIZE_MAX;
    char *s = tq_msg_encode(m, &len);
    CHECK(s && len == strlen(s));
    int rc = tq_msg_decode(s, len, &rl, &m2, err, sizeof(err));
    if (rc != TQ_MSG_OK)
        fprintf(stderr, "fuzz_msg: re-encoded message does not decode: %s\n%s\n", err, s);
    CHECK(rc == TQ_MSG_OK && m2);
    free(s);
    return m2;
}

static void one(const char *buf, size_t len, const tq_msg_limits *lim)
{
    char err[512];
    tq_msg *m = (tq_msg *)0x1; /* must be reset by the decoder */
    memset(err, 'X', sizeof(err));
    err[sizeof(err) - 1] = '\0';
    int rc = tq_msg_decode(buf, len, lim, &m, err, sizeof(err));
    if (rc != TQ_MSG_OK) {
        CHECK(rc == TQ_MSG_ELIMIT || rc == TQ_MSG_EJSON || rc == TQ_MSG_ESCHEMA ||
              rc == TQ_MSG_EVERSION);
        CHECK(m == NULL);
        check_reason(err, sizeof(err));
        if (rc == TQ_MSG_ELIMIT)
            CHECK(strstr(err, "(limit max_") != NULL);
        return;
    }
    CHECK(m != NULL);
    CHECK(len <= lim->max_bytes);
    CHECK(tq_msg_prescan_depth(buf, len, lim->max_depth) == 0);
    check_fields(m);
    /* The decoded tree respects every limit. */
    CHECK(tq_msg_check_value(m->root, lim, "message", err, sizeof(err)) == 0);

    /* Round trip. */
    tq_msg *m2 = reencode(m, lim);
    check_fields(m2);
    CHECK(same_msg(m, m2));

    /* The worker's retry path: attempts + 1 and one more error (it retries
     * only while attempts + 1 <= retries, and retries is at most 1e9). */
    if (m2->attempts < 1000000000) {
        tq_msg_set_int(m2, "attempts", m2->attempts + 1);
        tq_msg_add_error(m2, m2->attempts, "TaskError", "boom \xc3\xa9", 1764100000000LL, NULL);
        tq_msg_limits big = *lim;
        big.max_elements = SIZE_MAX;
        big.max_depth = lim->max_depth < 3 ? 3 : lim->max_depth; /* errors: [{...}] */
        tq_msg *m3 = reencode(m2, &big);
        CHECK(same_msg(m2, m3));
        CHECK(m3->attempts == m->attempts + 1);
        tq_msg_free(m3);
    }

    /* The result record skeleton of a decoded message is always well formed. */
    json_t *rec = tq_msg_record_new(m, "FAILURE");
    CHECK(json_is_object(rec));
    char *rs = json_dumps(rec, JSON_COMPACT);
    CHECK(rs != NULL);
    free(rs);
    json_decref(rec);
    tq_msg_free(m2);
    tq_msg_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    tq_msg_limits def,
        tiny = {.max_bytes = 512, .max_depth = 3, .max_elements = 24, .max_string = 16};
    tq_msg_limits_default(&def);
    one(buf, size, &def);
    one(buf, size, &tiny);

    /* The pre-scan on its own, at every small depth: monotone in max_depth. */
    int prev = -1;
    for (int d = 0; d <= 4; d++) {
        int r = tq_msg_prescan_depth(buf, size, d);
        CHECK(r == 0 || r == -1);
        CHECK(!(prev == 0 && r == -1));
        prev = r;
    }
    return 0;
}
