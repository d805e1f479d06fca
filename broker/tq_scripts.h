/* tq_scripts: the Lua scripts of docs/PROTOCOL.md#scripts, embedded at build
 * time (broker/gen_scripts.sh) with their SHA1 for EVALSHA. */
#ifndef TQ_SCRIPTS_H
#define TQ_SCRIPTS_H

typedef enum {
    TQ_SCRIPT_ACK,
    TQ_SCRIPT_BURY,
    TQ_SCRIPT_DEAD_REQUEUE,
    TQ_SCRIPT_ENQUEUE,
    TQ_SCRIPT_ENQUEUE_MANY,
    TQ_SCRIPT_EXTEND,
    TQ_SCRIPT_FETCH,
    TQ_SCRIPT_PROGRESS,
    TQ_SCRIPT_RECOVER,
    TQ_SCRIPT_REQUEUE,
    TQ_SCRIPT_RETRY,
    TQ_SCRIPT_REVOKE,
    TQ_SCRIPT_STATE,
    TQ_SCRIPT_WATCH,
    TQ_SCRIPT_COUNT
} tq_script_id;

typedef struct tq_script {
    const char *name;
    const char *sha; /* 40 hex digits */
    const char *body;
} tq_script;

extern const tq_script tq_scripts[TQ_SCRIPT_COUNT];

#endif
