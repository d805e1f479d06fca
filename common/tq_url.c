/* tq_url: a strict parser; anything it does not understand is an error with
 * a reason, never a guess. The raw URL may hold a secret, so error messages
 * quote only the part that is wrong, never the password. */
#include "tq_url.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tq_util.h"

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Percent-decode s[0..n) into a new string; NULL on a bad escape or NUL. */
static char *pct_decode(const char *s, size_t n)
{
    char *out = tq_xmalloc(n + 1), *o = out;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            int a, b;
            if (i + 2 >= n) {
                free(out);
                return NULL;
            }
            a = hexval((unsigned char)s[i + 1]);
            b = hexval((unsigned char)s[i + 2]);
            if (a < 0 || b < 0 || (a == 0 && b == 0)) {
                free(out);
                return NULL;
            }
            *o++ = (char)(a * 16 + b);
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

static int parse_db(const char *s, size_t n, int *db)
{
    long long v = 0;
    if (n == 0 || n > 5)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v > 65535)
        return -1;
    *db = (int)v;
    return 0;
}

/* userinfo = [user][:password] before '@' */
static int parse_userinfo(const char *s, size_t n, tq_url *u, char *err, size_t errlen)
{
    const char *colon = memchr(s, ':', n);
    size_t ulen = colon ? (size_t)(colon - s) : n;
    if (ulen > 0 && !(u->user = pct_decode(s, ulen))) {
        snprintf(err, errlen, "bad percent-escape in user name");
        return -1;
    }
    if (colon) {
        size_t plen = n - ulen - 1;
        if (!(u->password = pct_decode(colon + 1, plen))) {
            snprintf(err, errlen, "bad percent-escape in password");
            return -1;
        }
    }
    return 0;
}

int tq_url_parse(const char *s, tq_url *u, char *err, size_t errlen)
{
    memset(u, 0, sizeof(*u));
    u->port = 6379;
    if (!s || !*s) {
        snprintf(err, errlen, "empty Redis URL");
        return -1;
    }
    const char *rest;
    if (strncmp(s, "redis://", 8) == 0) {
        rest = s + 8;
    } else if (strncmp(s, "unix://", 7) == 0) {
        rest = s + 7;
        u->is_unix = 1;
    } else {
        snprintf(err, errlen, "unsupported URL scheme (expected redis:// or unix://)");
        return -1;
    }
    const char *at = strrchr(rest, '@');
    if (at) {
        if (parse_userinfo(rest, (size_t)(at - rest), u, err, errlen) < 0)
            goto fail;
        rest = at + 1;
    }
    if (u->is_unix) {
        const char *q = strchr(rest, '?');
        size_t plen = q ? (size_t)(q - rest) : strlen(rest);
        if (plen == 0 || rest[0] != '/') {
            snprintf(err, errlen, "unix:// URL needs an absolute socket path");
            goto fail;
        }
        if (!(u->path = pct_decode(rest, plen))) {
            snprintf(err, errlen, "bad percent-escape in socket path");
            goto fail;
        }
        if (q) {
            if (strncmp(q, "?db=", 4) != 0 || parse_db(q + 4, strlen(q + 4), &u->db) < 0) {
                snprintf(err, errlen, "bad query in unix:// URL (expected ?db=N, N in 0..65535)");
                goto fail;
            }
        }
        return 0;
    }
    /* host[:port][/db] ; host may be [ipv6] */
    const char *hs = rest, *he, *p;
    if (*hs == '[') {
        he = strchr(hs, ']');
        if (!he) {
            snprintf(err, errlen, "unterminated [ in IPv6 host");
            goto fail;
        }
        u->host = tq_xstrndup(hs + 1, (size_t)(he - hs - 1));
        p = he + 1;
    } else {
        he = hs + strcspn(hs, ":/");
        u->host = tq_xstrndup(hs, (size_t)(he - hs));
        p = he;
    }
    if (!*u->host) {
        snprintf(err, errlen, "missing host in Redis URL");
        goto fail;
    }
    for (const char *c = u->host; *c; c++) {
        if (!isalnum((unsigned char)*c) && !strchr(".-_:", *c)) {
            snprintf(err, errlen, "invalid character in host name");
            goto fail;
        }
    }
    if (*p == ':') {
        long v = 0;
        const char *d = ++p;
        while (isdigit((unsigned char)*p) && v <= 65535)
            v = v * 10 + (*p++ - '0');
        if (p == d || v < 1 || v > 65535 || (*p && *p != '/')) {
            snprintf(err, errlen, "bad port in Redis URL (expected 1..65535)");
            goto fail;
        }
        u->port = (int)v;
    }
    if (*p == '/') {
        p++;
        if (*p && parse_db(p, strlen(p), &u->db) < 0) {
            snprintf(err, errlen, "bad database number in Redis URL (expected 0..65535)");
            goto fail;
        }
    } else if (*p) {
        snprintf(err, errlen, "unexpected text after host in Redis URL");
        goto fail;
    }
    return 0;
fail:
    tq_url_clear(u);
    return -1;
}

void tq_url_clear(tq_url *u)
{
    free(u->host);
    free(u->path);
    free(u->user);
    free(u->password);
    memset(u, 0, sizeof(*u));
}

void tq_url_mask(const tq_url *u, char *buf, size_t len)
{
    char auth[160] = "";
    if (u->user || u->password)
        snprintf(auth, sizeof(auth), "%s%s@", u->user ? u->user : "", u->password ? ":***" : "");
    if (u->is_unix)
        snprintf(buf, len, "unix://%s%s?db=%d", auth, u->path ? u->path : "", u->db);
    else if (u->host && strchr(u->host, ':'))
        snprintf(buf, len, "redis://%s[%s]:%d/%d", auth, u->host, u->port, u->db);
    else
        snprintf(buf, len, "redis://%s%s:%d/%d", auth, u->host ? u->host : "", u->port, u->db);
}
