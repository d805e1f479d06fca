/* tq_cmd: Redis commands as argument vectors, and one builder per script of
 * docs/PROTOCOL.md#scripts. Both the blocking client (libtaskq) and the
 * asynchronous worker send what these build, so the two can never disagree
 * on keys or argument order. A tq_cmd owns copies of its arguments. */
#ifndef TQ_CMD_H
#define TQ_CMD_H

#include <stddef.h>
#include <stdint.h>

#include "tq_scripts.h"

typedef struct tq_cmd {
    int argc;
    int cap;
    char **argv;
    size_t *argvlen;
    int script;     /* tq_script_id, or -1 for a plain command */
    int batch_keys; /* keys per task of an enqueue_many being built */
} tq_cmd;

void tq_cmd_init(tq_cmd *c);
void tq_cmd_clear(tq_cmd *c);   /* frees the arguments; c can be reused */
void tq_cmd_release(tq_cmd *c); /* frees everything; c must be re-initialised */
void tq_cmd_add(tq_cmd *c, const char *s, size_t len);
void tq_cmd_add_str(tq_cmd *c, const char *s);
void tq_cmd_add_int(tq_cmd *c, long long v);
/* Start "EVALSHA <sha> <numkeys>"; the caller adds numkeys keys, then ARGV. */
void tq_cmd_script(tq_cmd *c, tq_script_id s, int numkeys);
/* Turn an EVALSHA into EVAL with the script body (after NOSCRIPT). */
void tq_cmd_to_eval(tq_cmd *c);
/* Fix up the numkeys argument once the keys are known (variable-key scripts). */
void tq_cmd_set_numkeys(tq_cmd *c, int numkeys);

/* The queue's wake channel name ("<prefix>{Q}:wake") into buf[TQ_KEY_MAX]. */
void tq_cmd_wake_channel(char *buf, const char *prefix, const char *queue);

/* Builders. Strings are copied; message bytes may contain anything. */
/* enqueue: one task (a single submit). fresh: as for enqueue_many.
 * wait_ms > 0: a blocking wait of that long on the task's done list is
 * pipelined behind the call; the task's waiter is registered for it. */
void tq_cmd_enqueue(tq_cmd *c, const char *prefix, const char *queue, const char *id,
                    const char *msg, size_t msglen, int64_t delay_ms, int64_t eta_ms, long long cap,
                    int fresh, int64_t wait_ms);
/* enqueue_many: begin, one add per task (all of one queue), end. fresh: every
 * id of the call was just generated with tq_random_id (docs/PROTOCOL.md). */
void tq_cmd_enqueue_many_begin(tq_cmd *c, const char *prefix, const char *queue, long long cap,
                               int fresh);
void tq_cmd_enqueue_many_add(tq_cmd *c, const char *prefix, const char *queue, const char *id,
                             const char *msg, size_t msglen, int64_t delay_ms, int64_t eta_ms);
void tq_cmd_enqueue_many_end(tq_cmd *c);
/* After end (enqueue_many) or the build (enqueue): make a fresh call check
 * every id (a resent call's tasks may be queued already). */
void tq_cmd_enqueue_unfresh(tq_cmd *c);
void tq_cmd_fetch(tq_cmd *c, const char *prefix, const char *queue, const char *wid, int max,
                  int64_t lease_ms, int promote_max);
/* The fenced builders below name the lease a task is held under: the token
 * its fetch returned and the worker id the fetch was made with (the lease
 * is "<token> <wid>", docs/PROTOCOL.md#key-schema). */
/* ack: begin, then one tq_cmd_ack_add per task, then tq_cmd_ack_end. `state`
 * is not sent (the record carries it); it stays for the callers' sake. */
void tq_cmd_ack_begin(tq_cmd *c, const char *prefix, const char *queue, long long token,
                      const char *wid, int64_t result_ttl_ms);
void tq_cmd_ack_add(tq_cmd *c, const char *prefix, const char *queue, const char *id,
                    const char *state, const char *record, size_t recordlen);
void tq_cmd_ack_end(tq_cmd *c);
void tq_cmd_retry(tq_cmd *c, const char *prefix, const char *queue, const char *id, long long token,
                  const char *wid, const char *msg, size_t msglen, const char *record,
                  int64_t delay_ms, int64_t result_ttl_ms);
void tq_cmd_requeue(tq_cmd *c, const char *prefix, const char *queue, long long token,
                    const char *wid, const char *const *ids, int n);
void tq_cmd_bury(tq_cmd *c, const char *prefix, const char *queue, const char *id,
                 long long token /* <0: never held */, const char *wid, const char *reason,
                 const char *record, int64_t result_ttl_ms, long long dead_max,
                 int64_t dead_max_age_ms, const char *dead_entry);
/* extend: begin, one add per held task, end. */
void tq_cmd_extend_begin(tq_cmd *c, const char *prefix, const char *queue, const char *wid,
                         int64_t lease_ms);
void tq_cmd_extend_add(tq_cmd *c, long long token, const char *id);
void tq_cmd_progress(tq_cmd *c, const char *prefix, const char *queue, const char *id,
                     long long token, const char *record, int64_t result_ttl_ms);
void tq_cmd_recover(tq_cmd *c, const char *prefix, const char *queue, int max);
void tq_cmd_revoke(tq_cmd *c, const char *prefix, const char *queue, const char *id,
                   const char *record, int64_t result_ttl_ms);
void tq_cmd_state(tq_cmd *c, const char *prefix, const char *queue, const char *id);
/* watch: register a waiter for a task's final record for window_ms (or, if
 * it has one, put it in its done list), then the task's state, as state
 * replies: what a blocking wait pipelines before its BLMOVE. */
void tq_cmd_watch(tq_cmd *c, const char *prefix, const char *queue, const char *id,
                  int64_t window_ms);
void tq_cmd_dead_requeue(tq_cmd *c, const char *prefix, const char *queue, const char *id,
                         const char *msg, size_t msglen);

#endif
