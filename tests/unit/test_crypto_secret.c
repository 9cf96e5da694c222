/*
 * test_crypto_secret — client secrets (generation, storage hash, constant-time
 * verify) and token hashes against known SHA-256 values.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/sha.h>

#include "core/base64.h"
#include "crypto/secret.h"

static void test_generate(void **state)
{
    char a[CRYPTO_SECRET_BUFSZ], b[CRYPTO_SECRET_BUFSZ];
    unsigned char raw[64];
    size_t len;

    crypto_secret_generate(a);
    crypto_secret_generate(b);
    assert_int_equal(strlen(a), CRYPTO_SECRET_LEN);
    assert_string_not_equal(a, b);
    assert_int_equal(b64url_decode(a, strlen(a), raw, &len), 0);
    assert_int_equal(len, 32);
}

static void test_hash_and_verify(void **state)
{
    char s[CRYPTO_SECRET_BUFSZ], h[CRYPTO_SECRET_HASH_BUFSZ], h2[CRYPTO_SECRET_HASH_BUFSZ];

    crypto_secret_generate(s);
    crypto_secret_hash(s, strlen(s), h);
    assert_int_equal(strlen(h), CRYPTO_SECRET_HASH_LEN);
    assert_memory_equal(h, "sha256$", 7);
    for (size_t i = 7; i < CRYPTO_SECRET_HASH_LEN; i++)
        assert_non_null(strchr("0123456789abcdef", h[i]));
    crypto_secret_hash(s, strlen(s), h2);
    assert_string_equal(h, h2);                         /* deterministic */

    assert_true(crypto_secret_verify(s, strlen(s), h));
    assert_false(crypto_secret_verify(s, strlen(s) - 1, h));
    s[0] ^= 1;
    assert_false(crypto_secret_verify(s, strlen(s), h));
    s[0] ^= 1;
    /* A stored hash with one digit changed, or malformed, never matches. */
    h2[CRYPTO_SECRET_HASH_LEN - 1] = h2[CRYPTO_SECRET_HASH_LEN - 1] == '0' ? '1' : '0';
    assert_false(crypto_secret_verify(s, strlen(s), h2));
    assert_false(crypto_secret_verify(s, strlen(s), ""));
    assert_false(crypto_secret_verify(s, strlen(s), NULL));
    assert_false(crypto_secret_verify(s, strlen(s), "sha256$"));
    h2[CRYPTO_SECRET_HASH_LEN - 1] = '\0';
    assert_false(crypto_secret_verify(s, strlen(s), h2));
    memcpy(h2, h, sizeof h2);
    memcpy(h2, "sha512$", 7);
    assert_false(crypto_secret_verify(s, strlen(s), h2));
}

static void test_domain_separated(void **state)
{
    /* The stored hash is not the plain SHA-256 of the secret (that is the
     * token hash), so the two kinds of hashes never collide. */
    char h[CRYPTO_SECRET_HASH_BUFSZ], t[CRYPTO_TOKEN_HASH_BUFSZ];

    crypto_secret_hash("abc", 3, h);
    crypto_token_hash("abc", 3, t);
    assert_string_not_equal(h + 7, t);
    /* Expected value computed independently with OpenSSL's SHA-256. */
    unsigned char in[64], d[32];
    char hex[65];
    memcpy(in, "refuge-client-secret-v1", 24);      /* includes the NUL separator */
    memcpy(in + 24, "abc", 3);
    SHA256(in, 27, d);
    for (int i = 0; i < 32; i++)
        sprintf(hex + 2 * i, "%02x", d[i]);
    assert_string_equal(h + 7, hex);
}

static void test_long_secret_never_verifies(void **state)
{
    char big[CRYPTO_SECRET_MAX_INPUT + 10], h[CRYPTO_SECRET_HASH_BUFSZ];

    memset(big, 'a', sizeof big);
    crypto_secret_hash(big, CRYPTO_SECRET_MAX_INPUT, h);
    assert_true(crypto_secret_verify(big, CRYPTO_SECRET_MAX_INPUT, h));
    crypto_secret_hash(big, sizeof big, h);
    assert_false(crypto_secret_verify(big, sizeof big, h));
}

static void test_token_hash_vectors(void **state)
{
    char t[CRYPTO_TOKEN_HASH_BUFSZ];

    /* FIPS 180-2 test vectors. */
    crypto_token_hash("abc", 3, t);
    assert_string_equal(t, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    crypto_token_hash("", 0, t);
    assert_string_equal(t, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_wipe(void **state)
{
    char *s = strdup("secret");
    unsigned char buf[8];

    memset(buf, 0xff, sizeof buf);
    crypto_wipe(buf, sizeof buf);
    for (size_t i = 0; i < sizeof buf; i++)
        assert_int_equal(buf[i], 0);
    crypto_wipe_free_str(s);
    crypto_wipe_free_str(NULL);
    crypto_wipe_free(NULL, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate),
        cmocka_unit_test(test_hash_and_verify),
        cmocka_unit_test(test_domain_separated),
        cmocka_unit_test(test_long_secret_never_verifies),
        cmocka_unit_test(test_token_hash_vectors),
        cmocka_unit_test(test_wipe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
