/* Unit tests for tq_sign: envelopes, key rotation by id, refusal of
 * unsigned, tampered and unknown-key messages, and key-file permissions. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/tq_sign.h"

#define K1 "00112233445566778899aabbccddeeff"
#define K2 "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"

static tq_keyring *ring(const char *spec)
{
    char err[256];
    tq_keyring *kr = tq_keyring_new();
    assert_int_equal(tq_keyring_parse(kr, spec, err, sizeof(err)), 0);
    return kr;
}

static void test_sign_round_trip_and_rotation(void **state)
{
    (void)state;
    const char *msg = "{\"v\":1,\"id\":\"a\"}";
    tq_keyring *signer = ring("new:" K2);
    tq_keyring *verifier = ring("new:" K2 ",old:" K1);
    tq_keyring *old_signer = ring("old:" K1);
    size_t len, blen;
    const char *body;
    char kid[TQ_SIGN_KID_MAX + 1], err[256];

    char *env = tq_sign_wrap(signer, NULL, msg, strlen(msg), &len);
    assert_non_null(env);
    assert_memory_equal(env, "TQS1 new ", 9);
    assert_int_equal(tq_sign_unwrap(verifier, env, len, &body, &blen, kid, err, sizeof(err)),
                     TQ_SIGN_OK);
    assert_string_equal(kid, "new");
    assert_int_equal(blen, strlen(msg));
    assert_memory_equal(body, msg, blen);
    free(env);
    /* A message signed with the previous key still verifies during rotation. */
    env = tq_sign_wrap(old_signer, NULL, msg, strlen(msg), &len);
    assert_int_equal(tq_sign_unwrap(verifier, env, len, &body, &blen, kid, err, sizeof(err)),
                     TQ_SIGN_OK);
    assert_string_equal(kid, "old");
    /* ...but not by a worker that dropped it. */
    assert_int_equal(tq_sign_unwrap(signer, env, len, &body, &blen, kid, err, sizeof(err)),
                     TQ_SIGN_UNKNOWN_KID);
    assert_non_null(strstr(err, "unknown key id 'old'"));
    free(env);
    tq_keyring_free(signer);
    tq_keyring_free(verifier);
    tq_keyring_free(old_signer);
}

static void test_sign_rejects_unsigned_and_tampered(void **state)
{
    (void)state;
    tq_keyring *kr = ring("k:" K1);
    const char *msg = "{\"task\":\"add\",\"args\":[1,2]}";
    size_t len, blen;
    const char *body;
    char err[256];
    assert_int_equal(tq_sign_unwrap(kr, msg, strlen(msg), &body, &blen, NULL, err, sizeof(err)),
                     TQ_SIGN_UNSIGNED);
    assert_non_null(strstr(err, "unsigned message"));
    char *env = tq_sign_wrap(kr, "k", msg, strlen(msg), &len);
    /* Flip one byte of the body, then one of the MAC. */
    env[len - 3] ^= 1;
    assert_int_equal(tq_sign_unwrap(kr, env, len, &body, &blen, NULL, err, sizeof(err)),
                     TQ_SIGN_BAD);
    assert_non_null(strstr(err, "bad signature (key id 'k')"));
    env[len - 3] ^= 1;
    env[10] = env[10] == 'a' ? 'b' : 'a';
    assert_int_equal(tq_sign_unwrap(kr, env, len, &body, &blen, NULL, err, sizeof(err)),
                     TQ_SIGN_BAD);
    /* A truncated envelope is malformed, not a crash. */
    assert_int_equal(tq_sign_unwrap(kr, env, 20, &body, &blen, NULL, err, sizeof(err)),
                     TQ_SIGN_MALFORMED);
    free(env);
    /* Without keys an envelope is stripped, unsigned bytes pass. */
    env = tq_sign_wrap(kr, "k", msg, strlen(msg), &len);
    assert_int_equal(tq_sign_unwrap(NULL, env, len, &body, &blen, NULL, err, sizeof(err)),
                     TQ_SIGN_OK);
    assert_memory_equal(body, msg, strlen(msg));
    assert_int_equal(tq_sign_unwrap(NULL, msg, strlen(msg), &body, &blen, NULL, err, sizeof(err)),
                     TQ_SIGN_OK);
    assert_null(tq_sign_wrap(kr, "nope", msg, strlen(msg), &len));
    free(env);
    tq_keyring_free(kr);
}

static void test_sign_key_parsing(void **state)
{
    (void)state;
    char err[256];
    const char *bad[] = {"",
                         "k",
                         "k:abc",
                         "k:0011",
                         "bad id:" K1,
                         "k:" K1 ",k:" K1,
                         "k:zz112233445566778899aabbccddeeff"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        tq_keyring *kr = tq_keyring_new();
        assert_int_equal(tq_keyring_parse(kr, bad[i], err, sizeof(err)), -1);
        /* Errors never quote key material. */
        assert_null(strstr(err, "112233"));
        tq_keyring_free(kr);
    }
}

static void test_sign_key_file_mode(void **state)
{
    (void)state;
    char path[] = "/tmp/taskq-test-keys-XXXXXX", err[256];
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "# rotation: new first\nnew " K2 "\nold:" K1 "\n");
    fclose(f);
    chmod(path, 0644);
    tq_keyring *kr = tq_keyring_new();
    assert_int_equal(tq_keyring_load_file(kr, path, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "chmod 600"));
    chmod(path, 0600);
    assert_int_equal(tq_keyring_load_file(kr, path, err, sizeof(err)), 0);
    assert_int_equal(tq_keyring_count(kr), 2);
    assert_string_equal(tq_keyring_signing_kid(kr), "new");
    tq_keyring_free(kr);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign_round_trip_and_rotation),
        cmocka_unit_test(test_sign_rejects_unsigned_and_tampered),
        cmocka_unit_test(test_sign_key_parsing),
        cmocka_unit_test(test_sign_key_file_mode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
