/* tq_keys: the Redis key schema of docs/PROTOCOL.md#key-schema. Every key of
 * queue Q is "<prefix>{Q}:<kind>" or "<prefix>{Q}:<kind>:<id>", so a queue
 * lives in one Redis Cluster slot. Keys are written into caller buffers. */
#ifndef TQ_KEYS_H
#define TQ_KEYS_H

#include <stddef.h>

#define TQ_KEY_MAX 256
#define TQ_PREFIX_MAX 64
#define TQ_DEFAULT_PREFIX "taskq:"

/* 1 when the prefix is acceptable (1..64 chars, no braces, no spaces). */
int tq_keys_valid_prefix(const char *prefix);

/* "<prefix>{<queue>}:<kind>" */
void tq_key_queue(char buf[TQ_KEY_MAX], const char *prefix, const char *queue, const char *kind);
/* "<prefix>{<queue>}:<kind>:<id>" */
void tq_key_task(char buf[TQ_KEY_MAX], const char *prefix, const char *queue, const char *kind,
                 const char *id);
/* "<prefix><name>" for keys that belong to no queue ("workers"). */
void tq_key_global(char buf[TQ_KEY_MAX], const char *prefix, const char *name);
/* "<prefix>worker:<wid>" */
void tq_key_worker(char buf[TQ_KEY_MAX], const char *prefix, const char *wid);

#endif
