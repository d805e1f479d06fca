/* fuzz_json: differential libFuzzer target for tq_json_parse (yajl's
 * tokenizer, a jansson tree) against jansson's own parser, json_loadb with
 * JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, which decoded task messages
 * before and is the reference for what they may be.
 *
 * Properties checked, on any bytes:
 *   - no crash, leak, or undefined behaviour (the sanitizers);
 *   - both accept or both reject, except for the differences tq_json.h
 *     names: yajl's extra white space (form feed, vertical tab), and a
 *     NUL byte between tokens, which jansson skips;
 *   - when both accept, the trees are equal (json_equal, and the same type
 *     at the top: 1 and 1.0 are not the same value);
 *   - a rejection comes with a printable reason that quotes none of the
 *     input's bytes. */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/tq_json.h"
#include "common/tq_msg.h"
#include "common/tq_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_DEPTH 64

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_json: check failed at line %d: %s\n", __LINE__, #cond);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* json_equal does not tell an integer from a real of the same value at the
 * top level only; walk both trees for types too. */
static int same_tree(const json_t *a, const json_t *b)
{
    if (json_typeof(a) != json_typeof(b))
        return 0;
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b))
            return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!same_tree(json_array_get(a, i), json_array_get(b, i)))
                return 0;
        return 1;
    }
    if (json_is_object(a)) {
        const char *k;
        const json_t *v;
        if (json_object_size(a) != json_object_size(b))
            return 0;
        json_object_foreach((json_t *)(uintptr_t)a, k, v)
        {
            const json_t *w = json_object_get(b, k);
            if (!w || !same_tree(v, w))
                return 0;
        }
        return 1;
    }
    return json_equal(a, b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    char err[256];
    err[0] = '\0';

    /* Deeper than our limit: we reject, jansson (limit 2048) may not. */
    if (tq_msg_prescan_depth(buf, size, MAX_DEPTH) < 0)
        return 0;
    json_t *ours = tq_json_parse(buf, size, MAX_DEPTH, err, sizeof(err));
    json_t *ref = json_loadb(buf, size, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);

    if (!ours) {
        size_t n = strnlen(err, sizeof(err));
        CHECK(n > 0 && n < sizeof(err));
        for (size_t i = 0; i < n; i++)
            CHECK((unsigned char)err[i] >= 0x20 && (unsigned char)err[i] < 0x7f);
    }
    if (ours && ref) {
        CHECK(same_tree(ours, ref));
    } else if (ours && !ref) {
        CHECK(memchr(buf, '\f', size) || memchr(buf, '\v', size));
    } else if (!ours && ref) {
        CHECK(memchr(buf, '\0', size) != NULL);
    }
    json_decref(ours);
    json_decref(ref);
    return 0;
}
