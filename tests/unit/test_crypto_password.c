/*
 * test_crypto_password — argon2id PHC hashes: verify, mismatch, PHC format,
 * parameters honoured, rehash decisions, limits. Tests use small m/t except
 * where the defaults themselves are under test.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "crypto/password.h"

static const struct crypto_pwhash_params fast = { 64, 1 };    /* 64 KiB, 1 pass */

static void test_hash_verify(void **state)
{
    char h[CRYPTO_PWHASH_BUFSZ];
    const char *pw = "correct horse battery staple";

    assert_int_equal(crypto_password_hash(pw, strlen(pw), &fast, h), 0);
    assert_int_equal(crypto_password_verify(h, pw, strlen(pw)), 0);
    assert_int_equal(crypto_password_verify(h, "correct horse battery stapler", 29), -EACCES);
    assert_int_equal(crypto_password_verify(h, pw, strlen(pw) - 1), -EACCES);
    assert_int_equal(crypto_password_verify(h, "", 0), -EACCES);
}

static void test_defaults_phc(void **state)
{
    char h[CRYPTO_PWHASH_BUFSZ];

    assert_int_equal(crypto_password_hash("pw", 2, NULL, h), 0);
    assert_memory_equal(h, "$argon2id$v=19$m=19456,t=2,p=1$", 31);
    /* $argon2id$v=19$params$salt$hash: five '$' */
    int dollars = 0;
    for (const char *p = h; *p; p++)
        dollars += *p == '$';
    assert_int_equal(dollars, 5);
    assert_int_equal(crypto_password_verify(h, "pw", 2), 0);
    assert_false(crypto_password_needs_rehash(h, NULL));
    struct crypto_pwhash_params d = crypto_pwhash_defaults();
    assert_int_equal(d.m_kib, 19456);
    assert_int_equal(d.t, 2);
}

static void test_params_honoured(void **state)
{
    char h[CRYPTO_PWHASH_BUFSZ];
    struct crypto_pwhash_params p = { 128, 3 };

    assert_int_equal(crypto_password_hash("pw", 2, &p, h), 0);
    assert_non_null(strstr(h, "$m=128,t=3,p=1$"));
    assert_int_equal(crypto_password_verify(h, "pw", 2), 0);
    assert_false(crypto_password_needs_rehash(h, &p));
    assert_true(crypto_password_needs_rehash(h, NULL));         /* defaults differ */
    assert_true(crypto_password_needs_rehash(h, &fast));
    struct crypto_pwhash_params more_t = { 128, 4 };
    assert_true(crypto_password_needs_rehash(h, &more_t));
}

static void test_salted(void **state)
{
    char a[CRYPTO_PWHASH_BUFSZ], b[CRYPTO_PWHASH_BUFSZ];

    assert_int_equal(crypto_password_hash("same", 4, &fast, a), 0);
    assert_int_equal(crypto_password_hash("same", 4, &fast, b), 0);
    assert_string_not_equal(a, b);
    assert_int_equal(crypto_password_verify(a, "same", 4), 0);
    assert_int_equal(crypto_password_verify(b, "same", 4), 0);
}

static void test_binary_and_limits(void **state)
{
    char h[CRYPTO_PWHASH_BUFSZ];
    char big[CRYPTO_PASSWORD_MAX + 1];
    const char nul_pw[] = { 'a', '\0', 'b' };

    /* Lengths travel with bytes: an embedded NUL is part of the password. */
    assert_int_equal(crypto_password_hash(nul_pw, 3, &fast, h), 0);
    assert_int_equal(crypto_password_verify(h, nul_pw, 3), 0);
    assert_int_equal(crypto_password_verify(h, "a", 1), -EACCES);

    memset(big, 'x', sizeof big);
    assert_int_equal(crypto_password_hash(big, CRYPTO_PASSWORD_MAX, &fast, h), 0);
    assert_int_equal(crypto_password_verify(h, big, CRYPTO_PASSWORD_MAX), 0);
    assert_int_equal(crypto_password_hash(big, sizeof big, &fast, h), -E2BIG);
    assert_int_equal(crypto_password_verify(h, big, sizeof big), -E2BIG);
}

static void test_bad_params(void **state)
{
    char h[CRYPTO_PWHASH_BUFSZ];
    struct crypto_pwhash_params t0 = { 64, 0 }, m_small = { 4, 1 };

    assert_int_equal(crypto_password_hash("pw", 2, &t0, h), -EINVAL);
    assert_int_equal(crypto_password_hash("pw", 2, &m_small, h), -EINVAL);
    assert_true(crypto_password_needs_rehash("$argon2id$v=19$m=64,t=1,p=1$x$y", &t0));
}

static void test_malformed_stored(void **state)
{
    char h[CRYPTO_PWHASH_BUFSZ];

    assert_int_equal(crypto_password_verify("", "pw", 2), -EINVAL);
    assert_int_equal(crypto_password_verify("sha256$abcd", "pw", 2), -EINVAL);
    assert_int_equal(crypto_password_verify("$2y$10$abcdefghijklmnopqrstuv", "pw", 2), -EINVAL);
    assert_int_equal(crypto_password_verify(NULL, "pw", 2), -EINVAL);
    /* An argon2id prefix with garbage after it does not verify. */
    assert_int_equal(crypto_password_verify("$argon2id$v=19$garbage", "pw", 2), -EACCES);
    assert_true(crypto_password_needs_rehash("sha256$abcd", NULL));
    assert_true(crypto_password_needs_rehash(NULL, NULL));

    /* A truncated real hash does not verify. */
    assert_int_equal(crypto_password_hash("pw", 2, &fast, h), 0);
    h[strlen(h) - 4] = '\0';
    assert_int_equal(crypto_password_verify(h, "pw", 2), -EACCES);
}

static void test_dummy(void **state)
{
    assert_int_equal(crypto_password_verify_dummy("anything", 8), -EACCES);
    assert_int_equal(crypto_password_verify_dummy("", 0), -EACCES);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_verify),
        cmocka_unit_test(test_defaults_phc),
        cmocka_unit_test(test_params_honoured),
        cmocka_unit_test(test_salted),
        cmocka_unit_test(test_binary_and_limits),
        cmocka_unit_test(test_bad_params),
        cmocka_unit_test(test_malformed_stored),
        cmocka_unit_test(test_dummy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
