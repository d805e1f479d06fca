/* tq_json: JSON text to a jansson tree, read with yajl's tokenizer.
 *
 * jansson's own parser reads its input a byte at a time through a callback
 * and copies every token twice; for a task message that was more than half
 * of the worker loop's time per task (docs/PERFORMANCE.md). yajl (Debian's
 * libyajl2) tokenizes the same text several times faster, and the tree is
 * still built with jansson, so everything after the parse is unchanged.
 *
 * The rules are jansson's (json_loadb with JSON_REJECT_DUPLICATES), checked
 * here where yajl is laxer: valid UTF-8 everywhere, no "\u0000" in strings
 * or keys, escaped surrogates in pairs, no duplicate keys, no comments, one
 * value and nothing after it, numbers read as jansson reads them. Known,
 * harmless differences: any JSON value is accepted at the top (callers
 * check the type they want), yajl also takes form feed and vertical tab as
 * white space between tokens, and a NUL byte between tokens is an error
 * (jansson skips it).
 * tests/fuzz/fuzz_json.c holds both parsers to exactly this. */
#ifndef TQ_JSON_H
#define TQ_JSON_H

#include <jansson.h>
#include <stddef.h>

/* Parse buf[0..len). `max_depth` bounds the nesting (a larger one is an
 * error, checked as the parse goes, before anything deeper is built).
 * Returns a new reference, or NULL with a printable reason in err (it
 * never quotes the input's bytes; err may be NULL). */
json_t *tq_json_parse(const char *buf, size_t len, int max_depth, char *err, size_t errlen);

#endif
