/*
 * test_crypto_seal — AES-256-GCM sealing: roundtrip, format, and that every
 * kind of tampering (any byte, AAD, key, truncation, version) is refused.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "crypto/seal.h"
#include "crypto/secret.h"

static const uint8_t key[32] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32 };
static const char aad[] = "default/kid-1";
static const char plain[] = "{\"kty\":\"EC\",\"d\":\"secret material\"}";

static void seal_it(uint8_t **sealed, size_t *len)
{
    assert_int_equal(crypto_seal(key, aad, strlen(aad), plain, strlen(plain), sealed, len), 0);
}

static void test_roundtrip(void **state)
{
    uint8_t *sealed, *opened;
    size_t len, olen;

    seal_it(&sealed, &len);
    assert_int_equal(len, strlen(plain) + CRYPTO_SEAL_OVERHEAD);
    assert_int_equal(sealed[0], CRYPTO_SEAL_VERSION);
    /* The plaintext does not appear in the output. */
    assert_null(memmem(sealed, len, "secret material", 15));
    assert_int_equal(crypto_open(key, aad, strlen(aad), sealed, len, &opened, &olen), 0);
    assert_int_equal(olen, strlen(plain));
    assert_memory_equal(opened, plain, olen);
    assert_int_equal(opened[olen], '\0');           /* opens as a C string */
    assert_string_equal((char *)opened, plain);
    crypto_wipe_free(opened, olen);
    free(sealed);
}

static void test_nonce_fresh(void **state)
{
    uint8_t *a, *b;
    size_t alen, blen;

    seal_it(&a, &alen);
    seal_it(&b, &blen);
    assert_int_equal(alen, blen);
    assert_memory_not_equal(a + 1, b + 1, CRYPTO_SEAL_NONCE_LEN);
    assert_memory_not_equal(a, b, alen);
    free(a);
    free(b);
}

static void test_empty_plaintext_and_aad(void **state)
{
    uint8_t *sealed, *opened;
    size_t len, olen;

    assert_int_equal(crypto_seal(key, NULL, 0, "", 0, &sealed, &len), 0);
    assert_int_equal(len, CRYPTO_SEAL_OVERHEAD);
    assert_int_equal(crypto_open(key, NULL, 0, sealed, len, &opened, &olen), 0);
    assert_int_equal(olen, 0);
    assert_int_equal(opened[0], '\0');
    free(opened);
    /* Tag still authenticates the empty message with AAD. */
    assert_int_equal(crypto_open(key, "x", 1, sealed, len, &opened, &olen), -EBADMSG);
    assert_null(opened);
    free(sealed);
}

static void test_tamper_every_byte(void **state)
{
    uint8_t *sealed, *opened = (uint8_t *)"sentinel";
    size_t len, olen = 99;

    seal_it(&sealed, &len);
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit += 7) {     /* lowest and highest bit */
            sealed[i] ^= (uint8_t)(1u << bit);
            int rc = crypto_open(key, aad, strlen(aad), sealed, len, &opened, &olen);
            /* Byte 0 is the version: an unknown version is -EINVAL, the rest -EBADMSG. */
            assert_int_equal(rc, i == 0 ? -EINVAL : -EBADMSG);
            assert_null(opened);
            assert_int_equal(olen, 0);
            sealed[i] ^= (uint8_t)(1u << bit);
        }
    }
    /* Untouched again: opens. */
    assert_int_equal(crypto_open(key, aad, strlen(aad), sealed, len, &opened, &olen), 0);
    free(opened);
    free(sealed);
}

static void test_wrong_aad(void **state)
{
    uint8_t *sealed, *opened;
    size_t len, olen;

    seal_it(&sealed, &len);
    assert_int_equal(crypto_open(key, "default/kid-2", 13, sealed, len, &opened, &olen), -EBADMSG);
    assert_int_equal(crypto_open(key, aad, strlen(aad) - 1, sealed, len, &opened, &olen), -EBADMSG);
    assert_int_equal(crypto_open(key, NULL, 0, sealed, len, &opened, &olen), -EBADMSG);
    free(sealed);
}

static void test_wrong_key(void **state)
{
    uint8_t other[32], *sealed, *opened;
    size_t len, olen;

    memcpy(other, key, 32);
    other[31] ^= 0x80;
    seal_it(&sealed, &len);
    assert_int_equal(crypto_open(other, aad, strlen(aad), sealed, len, &opened, &olen), -EBADMSG);
    assert_null(opened);
    free(sealed);
}

static void test_truncated(void **state)
{
    uint8_t *sealed, *opened;
    size_t len, olen;

    seal_it(&sealed, &len);
    assert_int_equal(crypto_open(key, aad, strlen(aad), sealed, len - 1, &opened, &olen), -EBADMSG);
    assert_int_equal(crypto_open(key, aad, strlen(aad), sealed, CRYPTO_SEAL_OVERHEAD - 1,
                                 &opened, &olen), -EINVAL);
    assert_int_equal(crypto_open(key, aad, strlen(aad), sealed, 0, &opened, &olen), -EINVAL);
    free(sealed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_nonce_fresh),
        cmocka_unit_test(test_empty_plaintext_and_aad),
        cmocka_unit_test(test_tamper_every_byte),
        cmocka_unit_test(test_wrong_aad),
        cmocka_unit_test(test_wrong_key),
        cmocka_unit_test(test_truncated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
