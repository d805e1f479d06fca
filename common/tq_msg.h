/* tq_msg: the protocol v1 task message (docs/PROTOCOL.md#task-message):
 * decoding with limits checked before and during parsing, validation of
 * every field, encoding, and the skeleton of a result record.
 *
 * A tq_msg owns its jansson tree (`root`); every other pointer in it is
 * borrowed from that tree and lives as long as the message. */
#ifndef TQ_MSG_H
#define TQ_MSG_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "tq_jw.h"
#include "tq_util.h"

#define TQ_PROTOCOL_VERSION 1

typedef struct tq_msg_limits {
    size_t max_bytes;    /* whole message, checked before parsing (default 1 MiB) */
    int max_depth;       /* nesting of arrays/objects (default 32) */
    size_t max_elements; /* total values in the message (default 100000) */
    size_t max_string;   /* bytes in one string (default 262144) */
} tq_msg_limits;

typedef enum {
    TQ_MSG_OK = 0,
    TQ_MSG_ELIMIT = -1,   /* a size/depth/element limit was exceeded */
    TQ_MSG_EJSON = -2,    /* not JSON, or not UTF-8, or duplicate keys */
    TQ_MSG_ESCHEMA = -3,  /* JSON, but not a valid v1 message */
    TQ_MSG_EVERSION = -4, /* a protocol version this code does not speak */
} tq_msg_status;

typedef struct tq_msg {
    json_t *root;      /* owned */
    const char *id;    /* borrowed from root */
    const char *task;  /* borrowed from root */
    const char *queue; /* borrowed from root */
    json_t *args;      /* borrowed from root */
    json_t *kwargs;    /* borrowed from root */
    int64_t attempts;
    int64_t retries; /* -1 when absent */
    int64_t created_ms;
    int64_t eta_ms, expires_ms, soft_limit_ms, hard_limit_ms; /* 0 when absent */
    int shares; /* holders beyond the first (tq_msg_share), atomic */
} tq_msg;

void tq_msg_limits_default(tq_msg_limits *lim);

/* A new message with empty args/kwargs, attempts 0, created now. The strings
 * are copied. Never NULL. */
tq_msg *tq_msg_new(const char *id, const char *task, const char *queue);
void tq_msg_free(tq_msg *m);
/* Another holder of the same message, nothing copied: returns m, whose
 * tq_msg_free then only drops one holder; the last one frees it. Holders on
 * different threads may free theirs in any order (the count is atomic, and
 * only the last holder touches the tree's own reference counts, which
 * jansson reads without atomics); but nobody may change the message while
 * another holder reads it. */
tq_msg *tq_msg_share(const tq_msg *m);

/* Decode buf[0..len). On success returns TQ_MSG_OK and *out (caller frees).
 * Otherwise returns a tq_msg_status and writes a precise, printable reason
 * into err (which never quotes more than a few bytes of the input). */
int tq_msg_decode(const char *buf, size_t len, const tq_msg_limits *lim, tq_msg **out, char *err,
                  size_t errlen);

/* Depth pre-scan on raw bytes (outside strings), before any allocation.
 * Returns 0, or -1 when nesting exceeds max_depth. */
int tq_msg_prescan_depth(const char *buf, size_t len, int max_depth);

/* Check a parsed JSON value against depth/element/string limits. `what`
 * names the value in the error ("args"). Returns 0 or TQ_MSG_ELIMIT. */
int tq_msg_check_value(const json_t *v, const tq_msg_limits *lim, const char *what, char *err,
                       size_t errlen);

/* Setters keep the struct and the tree in step. A value of 0 (or -1 for
 * retries) removes an optional field. args/kwargs are stolen references. */
void tq_msg_set_int(tq_msg *m, const char *field, int64_t v);
void tq_msg_set_args(tq_msg *m, json_t *args);
void tq_msg_set_kwargs(tq_msg *m, json_t *kwargs);
/* Append {"attempt","type","message","at_ms","worker"} to "errors". */
void tq_msg_add_error(tq_msg *m, int64_t attempt, const char *type, const char *message,
                      int64_t at_ms, const char *worker);

/* Compact encoding; returns a malloc'd string and its length in *len. */
char *tq_msg_encode(const tq_msg *m, size_t *len);

/* The fields of a message being submitted (attempts 0, no errors). Strings
 * and JSON values are borrowed. */
typedef struct tq_msg_fields {
    const char *id, *task, *queue;
    const json_t *args, *kwargs; /* an array and an object */
    int64_t created_ms;
    int64_t retries;                                          /* -1: absent */
    int64_t eta_ms, expires_ms, soft_limit_ms, hard_limit_ms; /* 0: absent */
} tq_msg_fields;

/* Write the compact encoding of a new message into jw (one document: the
 * caller resets it first) without building a jansson tree for it: the same
 * JSON as tq_msg_new + setters + tq_msg_encode (same field order), for
 * submitting in bulk. The limits are checked as tq_msg_check_value would on
 * the whole message (what = the task name in the error), before anything is
 * written: on a limit error jw is unchanged and TQ_MSG_ELIMIT returned, else
 * 0. max_bytes is the caller's check. */
int tq_msg_write_new(tq_jw *jw, const tq_msg_fields *f, const tq_msg_limits *lim, char *err,
                     size_t errlen);

/* A result record skeleton for this message: v, id, task, queue, state,
 * attempts, created_ms and errors (copied). New reference. */
json_t *tq_msg_record_new(const tq_msg *m, const char *state);

/* Name of a JSON value's type as used in messages ("int", "string", ...). */
const char *tq_json_type_name(const json_t *v);

#endif
