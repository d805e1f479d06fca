/* tq_sign: optional HMAC-SHA256 message signing (docs/SECURITY.md#message-signing).
 *
 * A signed message is stored in Redis as an envelope around the exact
 * message bytes:
 *
 *     "TQS1 " KID " " HEX(HMAC-SHA256(key[KID], message)) "\n" message
 *
 * KID is 1..32 characters of [0-9A-Za-z_.-]. A keyring maps key ids to keys,
 * so keys rotate by id: sign with the new id, keep verifying the old one
 * until every message signed with it is gone. */
#ifndef TQ_SIGN_H
#define TQ_SIGN_H

#include <stddef.h>

#define TQ_SIGN_KID_MAX 32
#define TQ_SIGN_MAGIC "TQS1 "

typedef struct tq_keyring tq_keyring;

tq_keyring *tq_keyring_new(void);
void tq_keyring_free(tq_keyring *kr);
size_t tq_keyring_count(const tq_keyring *kr);
/* The id new signatures use: the first key added. NULL when empty. */
const char *tq_keyring_signing_kid(const tq_keyring *kr);
/* Parse "KID:HEXKEY[,KID:HEXKEY...]" (keys of 16..128 bytes). 0 or -1 with
 * a reason in err (which never quotes a key). */
int tq_keyring_parse(tq_keyring *kr, const char *spec, char *err, size_t errlen);
/* Read keys from a file, one "KID HEXKEY" (or KID:HEXKEY) per line, '#'
 * comments. The file must not be readable or writable by group or others
 * (mode 0600 or stricter). 0 or -1 with a reason in err. */
int tq_keyring_load_file(tq_keyring *kr, const char *path, char *err, size_t errlen);

/* Wrap msg[0..len) in a signed envelope with key `kid` (NULL: the signing
 * kid). Returns a malloc'd buffer and its length, or NULL if kid is unknown. */
char *tq_sign_wrap(const tq_keyring *kr, const char *kid, const char *msg, size_t len,
                   size_t *outlen);

typedef enum {
    TQ_SIGN_OK = 0,
    TQ_SIGN_UNSIGNED = -1,  /* no envelope, and the keyring requires one */
    TQ_SIGN_MALFORMED = -2, /* an envelope that cannot be read */
    TQ_SIGN_UNKNOWN_KID = -3,
    TQ_SIGN_BAD = -4, /* the signature does not match */
} tq_sign_status;

/* Check and strip an envelope before anything parses the message. With a
 * keyring that has keys, an unsigned message is refused; with none (kr NULL
 * or empty), an envelope is stripped without verification. On TQ_SIGN_OK,
 * *msg and *msglen point into buf at the message bytes and *kid_out (if not
 * NULL, TQ_SIGN_KID_MAX + 1 bytes) receives the key id ("" if unsigned).
 * Otherwise err says why. The comparison is constant-time. */
int tq_sign_unwrap(const tq_keyring *kr, const char *buf, size_t len, const char **msg,
                   size_t *msglen, char *kid_out, char *err, size_t errlen);

#endif
