/* tq_url: parse Redis connection URLs.
 *   redis://[[user]:password@]host[:port][/db]
 *   unix://[[user]:password@]/path/to/redis.sock[?db=N]
 * Passwords are percent-decoded. tq_url_mask() gives a printable form with
 * the password replaced, for logs and error messages. */
#ifndef TQ_URL_H
#define TQ_URL_H

#include <stddef.h>

typedef struct tq_url {
    int is_unix;
    char *host;     /* tcp only */
    int port;       /* tcp only, default 6379 */
    char *path;     /* unix only */
    char *user;     /* NULL when absent */
    char *password; /* NULL when absent */
    int db;
} tq_url;

/* Returns 0 and fills *u (free with tq_url_clear), or -1 with a reason in err. */
int tq_url_parse(const char *s, tq_url *u, char *err, size_t errlen);
void tq_url_clear(tq_url *u);
/* Printable "redis://user:***@host:port/db" into buf. */
void tq_url_mask(const tq_url *u, char *buf, size_t len);

#endif
