/* fuzz_url: libFuzzer target for the Redis URL parser (common/tq_url.c).
 *
 * The input (up to its first NUL) is a URL as it could come from a flag, an
 * environment variable or a --redis-url-file. Properties checked:
 *   - no crash, leak, or undefined behaviour (the sanitizers);
 *   - on failure every field is cleared and the reason is printable ASCII;
 *   - on success the fields are in range (port 1..65535, db 0..65535, a
 *     non-empty host for tcp, an absolute path for unix);
 *   - tq_url_mask never shows the password: its output does not depend on
 *     the password at all (only on whether there is one: the same mask comes
 *     out with the password swapped for another), so whatever the mask shows
 *     came from the user, host, port, path or db; it says "***" when there
 *     is a password; truncated masks stay NUL-terminated prefixes;
 *   - a tcp URL rebuilt from the parsed host, port and db parses back to the
 *     same host, port and db. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/tq_url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_url: check failed at line %d: %s\n", __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void check_mask(const tq_url *u)
{
    char m1[1024], m2[1024], small[8];
    tq_url_mask(u, m1, sizeof(m1));
    CHECK(strnlen(m1, sizeof(m1)) < sizeof(m1));

    /* The mask is the same whatever the password is. */
    tq_url v = *u;
    if (u->password) {
        v.password = (char *)(uintptr_t) "a-completely-different-secret";
        tq_url_mask(&v, m2, sizeof(m2));
        CHECK(strcmp(m1, m2) == 0);
        /* The marker survives unless a very long user name filled the buffer. */
        if (!u->user || strlen(u->user) < 100)
            CHECK(strstr(m1, "***") != NULL);
    }

    /* Truncation keeps a terminated prefix of the full mask. */
    memset(small, 'X', sizeof(small));
    tq_url_mask(u, small, sizeof(small));
    CHECK(memchr(small, '\0', sizeof(small)) != NULL);
    CHECK(strncmp(small, m1, strlen(small)) == 0);
    tq_url_mask(u, small, 1);
    CHECK(small[0] == '\0');
}

static void check_reparse(const tq_url *u)
{
    char buf[2048], err[256];
    tq_url r;
    if (u->is_unix)
        return;
    int n =
        snprintf(buf, sizeof(buf), strchr(u->host, ':') ? "redis://[%s]:%d/%d" : "redis://%s:%d/%d",
                 u->host, u->port, u->db);
    if (n < 0 || (size_t)n >= sizeof(buf))
        return;
    CHECK(tq_url_parse(buf, &r, err, sizeof(err)) == 0);
    CHECK(strcmp(r.host, u->host) == 0 && r.port == u->port && r.db == u->db);
    CHECK(!r.is_unix && !r.user && !r.password && !r.path);
    tq_url_clear(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    char err[256];
    tq_url u;
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    memset(err, 'X', sizeof(err));
    err[sizeof(err) - 1] = '\0';

    if (tq_url_parse(s, &u, err, sizeof(err)) != 0) {
        size_t n = strnlen(err, sizeof(err));
        CHECK(n > 0 && n < sizeof(err));
        for (size_t i = 0; i < n; i++)
            CHECK(err[i] >= 0x20 && err[i] < 0x7f);
        CHECK(!u.host && !u.path && !u.user && !u.password);
        free(s);
        return 0;
    }
    CHECK(u.db >= 0 && u.db <= 65535);
    if (u.is_unix) {
        CHECK(u.path && u.path[0] == '/' && !u.host);
    } else {
        CHECK(u.host && *u.host && !u.path);
        CHECK(u.port >= 1 && u.port <= 65535);
    }
    check_mask(&u);
    check_reparse(&u);
    tq_url_clear(&u);
    CHECK(!u.host && !u.path && !u.user && !u.password);
    free(s);
    return 0;
}
