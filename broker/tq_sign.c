/* tq_sign: HMAC-SHA256 envelopes with OpenSSL's libcrypto. Verification runs
 * on raw bytes before any JSON parsing, compares with CRYPTO_memcmp, and key
 * material never appears in an error message. Keys are wiped on free.
 *
 * libcrypto is loaded (dlopen) when a keyring gets its first key, not
 * linked: mapping it costs every process ~1.4 MB of resident memory, over a
 * third of an idle worker's, and most workers and clients sign nothing. The
 * library name and the functions' types come from the headers this was
 * built with. */
#include "tq_sign.h"

#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/opensslv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/tq_util.h"

#define KEY_MIN 16
#define KEY_MAX 128
#define MAC_LEN 32

typedef struct key {
    char kid[TQ_SIGN_KID_MAX + 1];
    unsigned char bytes[KEY_MAX];
    size_t len;
} key;

#define STR_(x) #x
#define STR(x) STR_(x)
#define CRYPTO_SONAME "libcrypto.so." STR(OPENSSL_VERSION_MAJOR)

struct tq_keyring {
    key *keys;
    size_t n;
    /* libcrypto, loaded with the first key (so set whenever n > 0). */
    void *lib;
    __typeof__(HMAC) *hmac;
    __typeof__(EVP_sha256) *sha256;
    __typeof__(CRYPTO_memcmp) *memcmp_ct;
};

tq_keyring *tq_keyring_new(void)
{
    return tq_xcalloc(1, sizeof(tq_keyring));
}

void tq_keyring_free(tq_keyring *kr)
{
    if (!kr)
        return;
    if (kr->keys)
        explicit_bzero(kr->keys, kr->n * sizeof(*kr->keys));
    free(kr->keys);
    if (kr->lib)
        dlclose(kr->lib);
    free(kr);
}

/* dlsym's object pointer into a function pointer of the same size (POSIX
 * guarantees the conversion; ISO C has no cast for it). */
static int sym(void *lib, const char *name, void *fnptr, size_t size)
{
    void *p = dlsym(lib, name);
    if (!p || size != sizeof(p))
        return -1;
    memcpy(fnptr, &p, size);
    return 0;
}

static int load_crypto(tq_keyring *kr, char *err, size_t errlen)
{
    if (kr->lib)
        return 0;
    void *lib = dlopen(CRYPTO_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        const char *why = dlerror();
        snprintf(err, errlen, "message signing needs OpenSSL's %s: %s", CRYPTO_SONAME,
                 why ? why : "cannot load it");
        return -1;
    }
    if (sym(lib, "HMAC", &kr->hmac, sizeof(kr->hmac)) < 0 ||
        sym(lib, "EVP_sha256", &kr->sha256, sizeof(kr->sha256)) < 0 ||
        sym(lib, "CRYPTO_memcmp", &kr->memcmp_ct, sizeof(kr->memcmp_ct)) < 0) {
        snprintf(err, errlen, "message signing: %s lacks HMAC, EVP_sha256 or CRYPTO_memcmp",
                 CRYPTO_SONAME);
        dlclose(lib);
        return -1;
    }
    kr->lib = lib;
    return 0;
}

size_t tq_keyring_count(const tq_keyring *kr)
{
    return kr ? kr->n : 0;
}

const char *tq_keyring_signing_kid(const tq_keyring *kr)
{
    return kr && kr->n ? kr->keys[0].kid : NULL;
}

static int valid_kid(const char *s, size_t n)
{
    if (n == 0 || n > TQ_SIGN_KID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("_.-", s[i]))
            return 0;
    return 1;
}

static const key *find(const tq_keyring *kr, const char *kid, size_t n)
{
    for (size_t i = 0; kr && i < kr->n; i++)
        if (strlen(kr->keys[i].kid) == n && memcmp(kr->keys[i].kid, kid, n) == 0)
            return &kr->keys[i];
    return NULL;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* One "KID<sep>HEX" entry. */
static int add_entry(tq_keyring *kr, const char *s, size_t n, char sep, char *err, size_t errlen)
{
    const char *p = memchr(s, sep, n);
    if (!p) {
        snprintf(err, errlen, "a key entry must be KID%cHEXKEY", sep);
        return -1;
    }
    size_t kl = (size_t)(p - s), hl = n - kl - 1;
    const char *hex = p + 1;
    if (!valid_kid(s, kl)) {
        snprintf(err, errlen, "invalid key id (1..%d of [0-9A-Za-z_.-])", TQ_SIGN_KID_MAX);
        return -1;
    }
    if (find(kr, s, kl)) {
        snprintf(err, errlen, "key id '%.*s' appears twice", (int)kl, s);
        return -1;
    }
    if (hl % 2 || hl / 2 < KEY_MIN || hl / 2 > KEY_MAX) {
        snprintf(err, errlen, "key '%.*s' must be %d..%d bytes written as hex", (int)kl, s, KEY_MIN,
                 KEY_MAX);
        return -1;
    }
    key k;
    memset(&k, 0, sizeof(k));
    memcpy(k.kid, s, kl);
    for (size_t i = 0; i < hl / 2; i++) {
        int a = hexval((unsigned char)hex[2 * i]), b = hexval((unsigned char)hex[2 * i + 1]);
        if (a < 0 || b < 0) {
            explicit_bzero(&k, sizeof(k));
            snprintf(err, errlen, "key '%.*s' is not valid hex", (int)kl, s);
            return -1;
        }
        k.bytes[i] = (unsigned char)(a * 16 + b);
    }
    k.len = hl / 2;
    if (load_crypto(kr, err, errlen) < 0) {
        explicit_bzero(&k, sizeof(k));
        return -1;
    }
    kr->keys = tq_xrealloc(kr->keys, (kr->n + 1) * sizeof(*kr->keys));
    kr->keys[kr->n++] = k;
    explicit_bzero(&k, sizeof(k));
    return 0;
}

int tq_keyring_parse(tq_keyring *kr, const char *spec, char *err, size_t errlen)
{
    const char *s = spec;
    while (s && *s) {
        size_t n = strcspn(s, ",");
        if (add_entry(kr, s, n, ':', err, errlen) < 0)
            return -1;
        s += n;
        if (*s == ',')
            s++;
    }
    if (kr->n == 0) {
        snprintf(err, errlen, "no keys given");
        return -1;
    }
    return 0;
}

int tq_keyring_load_file(tq_keyring *kr, const char *path, char *err, size_t errlen)
{
    struct stat st;
    char line[512];
    int rc = -1, lineno = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot open key file %s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fileno(f), &st) < 0 || (st.st_mode & 077)) {
        snprintf(err, errlen,
                 "key file %s is accessible by group or others (mode %03o); "
                 "chmod 600 it",
                 path, (unsigned)(st.st_mode & 0777));
        goto out;
    }
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        size_t n = strcspn(line, "\r\n");
        line[n] = '\0';
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p || *p == '#')
            continue;
        n = strlen(p);
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            p[--n] = '\0';
        char sep = strchr(p, ':') ? ':' : ' ';
        char sub[300];
        if (add_entry(kr, p, n, sep, sub, sizeof(sub)) < 0) {
            snprintf(err, errlen, "%s line %d: %s", path, lineno, sub);
            goto out;
        }
    }
    if (kr->n == 0) {
        snprintf(err, errlen, "key file %s holds no keys", path);
        goto out;
    }
    rc = 0;
out:
    explicit_bzero(line, sizeof(line));
    fclose(f);
    return rc;
}

static void mac(const tq_keyring *kr, const key *k, const char *msg, size_t len,
                unsigned char out[MAC_LEN])
{
    unsigned int olen = MAC_LEN;
    if (!kr->hmac(kr->sha256(), k->bytes, (int)k->len, (const unsigned char *)msg, len, out, &olen))
        abort(); /* only on out-of-memory inside libcrypto */
}

char *tq_sign_wrap(const tq_keyring *kr, const char *kid, const char *msg, size_t len,
                   size_t *outlen)
{
    static const char digits[] = "0123456789abcdef";
    if (!kid)
        kid = tq_keyring_signing_kid(kr);
    const key *k = kid ? find(kr, kid, strlen(kid)) : NULL;
    if (!k)
        return NULL;
    unsigned char m[MAC_LEN];
    mac(kr, k, msg, len, m);
    size_t head = strlen(TQ_SIGN_MAGIC) + strlen(k->kid) + 1 + 2 * MAC_LEN + 1;
    char *out = tq_xmalloc(head + len + 1);
    size_t o = (size_t)snprintf(out, head + 1, "%s%s ", TQ_SIGN_MAGIC, k->kid);
    for (size_t i = 0; i < MAC_LEN; i++) {
        out[o++] = digits[m[i] >> 4];
        out[o++] = digits[m[i] & 15];
    }
    out[o++] = '\n';
    memcpy(out + o, msg, len);
    out[o + len] = '\0';
    *outlen = o + len;
    return out;
}

int tq_sign_unwrap(const tq_keyring *kr, const char *buf, size_t len, const char **msg,
                   size_t *msglen, char *kid_out, char *err, size_t errlen)
{
    const size_t ml = strlen(TQ_SIGN_MAGIC);
    int required = tq_keyring_count(kr) > 0;
    if (kid_out)
        kid_out[0] = '\0';
    if (len < ml || memcmp(buf, TQ_SIGN_MAGIC, ml) != 0) {
        if (required) {
            snprintf(err, errlen, "unsigned message (this worker requires HMAC signatures)");
            return TQ_SIGN_UNSIGNED;
        }
        *msg = buf;
        *msglen = len;
        return TQ_SIGN_OK;
    }
    const char *kid = buf + ml, *end = buf + len;
    const char *sp = memchr(kid, ' ', (size_t)(end - kid));
    if (!sp || !valid_kid(kid, (size_t)(sp - kid)) || end - (sp + 1) < 2 * MAC_LEN + 1 ||
        sp[1 + 2 * MAC_LEN] != '\n') {
        snprintf(err, errlen, "malformed signature envelope");
        return TQ_SIGN_MALFORMED;
    }
    size_t kl = (size_t)(sp - kid);
    const char *hex = sp + 1, *body = hex + 2 * MAC_LEN + 1;
    unsigned char want[MAC_LEN], got[MAC_LEN];
    for (size_t i = 0; i < MAC_LEN; i++) {
        int a = hexval((unsigned char)hex[2 * i]), b = hexval((unsigned char)hex[2 * i + 1]);
        if (a < 0 || b < 0) {
            snprintf(err, errlen, "malformed signature envelope");
            return TQ_SIGN_MALFORMED;
        }
        got[i] = (unsigned char)(a * 16 + b);
    }
    if (kid_out)
        snprintf(kid_out, TQ_SIGN_KID_MAX + 1, "%.*s", (int)kl, kid);
    if (required) {
        const key *k = find(kr, kid, kl);
        if (!k) {
            snprintf(err, errlen, "signed with unknown key id '%.*s'", (int)kl, kid);
            return TQ_SIGN_UNKNOWN_KID;
        }
        mac(kr, k, body, (size_t)(end - body), want);
        if (kr->memcmp_ct(want, got, MAC_LEN) != 0) {
            snprintf(err, errlen, "bad signature (key id '%.*s')", (int)kl, kid);
            return TQ_SIGN_BAD;
        }
    }
    *msg = body;
    *msglen = (size_t)(end - body);
    return TQ_SIGN_OK;
}
