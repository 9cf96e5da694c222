/*
 * test_crypto_keys — key generation, private/public JWK export and import
 * (roundtrip keeps kid and signing ability), JWK validation (wrong curve,
 * point off the curve, mismatched private half, alg/kty disagreement, use,
 * short RSA, malformed members), JWKS rendering and reference counting.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "core/base64.h"
#include "core/xmalloc.h"
#include "crypto/jws.h"
#include "crypto/keys.h"
#include "crypto/secret.h"

static const char payload[] = "{\"sub\":\"bob\"}";

static json_t *parse(const char *s)
{
    json_error_t e;
    json_t *j = json_loads(s, 0, &e);
    assert_non_null(j);
    return j;
}

static char *dump(const json_t *j)
{
    return json_dumps(j, JSON_COMPACT);
}

/* Imports the JWK text, expecting rc. */
static void expect_import(const char *s, int rc)
{
    struct crypto_key *k = (struct crypto_key *)1;
    assert_int_equal(crypto_key_from_jwk(s, strlen(s), &k), rc);
    if (rc == 0)
        crypto_key_free(k);
    else
        assert_null(k);
}

/* Private JWK of alg with member `name` replaced by value (NULL deletes it). */
static char *mutate(const struct crypto_key *k, const char *name, const char *value)
{
    char *priv = crypto_key_private_jwk(k);
    json_t *j = parse(priv);
    if (value)
        json_object_set_new(j, name, json_string(value));
    else
        json_object_del(j, name);
    char *s = dump(j);
    json_decref(j);
    crypto_wipe_free_str(priv);
    return s;
}

static void test_generate_each(void **state)
{
    for (enum crypto_alg a = CRYPTO_ALG_ES256; a <= CRYPTO_ALG_EDDSA; a++) {
        struct crypto_key *k;
        assert_int_equal(crypto_key_generate(a, &k), 0);
        assert_int_equal(crypto_key_alg(k), a);
        assert_true(crypto_key_has_private(k));
        assert_int_equal(strlen(crypto_key_kid(k)), CRYPTO_THUMBPRINT_LEN);
        crypto_key_free(k);
    }
    struct crypto_key *k = (struct crypto_key *)1;
    assert_int_equal(crypto_key_generate(CRYPTO_ALG_NONE, &k), -EINVAL);
    assert_null(k);
}

static void test_alg_names(void **state)
{
    enum crypto_alg a;
    assert_int_equal(crypto_alg_parse("ES256", 5, &a), 0);
    assert_int_equal(a, CRYPTO_ALG_ES256);
    assert_int_equal(crypto_alg_parse("EdDSA", 5, &a), 0);
    assert_int_equal(a, CRYPTO_ALG_EDDSA);
    assert_int_equal(crypto_alg_parse("RS256", 5, &a), 0);
    assert_int_equal(a, CRYPTO_ALG_RS256);
    assert_int_equal(crypto_alg_parse("ES2560", 6, &a), -EINVAL);
    assert_int_equal(crypto_alg_parse("ES25", 4, &a), -EINVAL);
    assert_int_equal(crypto_alg_parse("eddsa", 5, &a), -EINVAL);
    assert_int_equal(crypto_alg_parse("none", 4, &a), -EINVAL);
    assert_int_equal(crypto_alg_parse("HS256", 5, &a), -EINVAL);
    assert_string_equal(crypto_alg_name(CRYPTO_ALG_NONE), "none");
    assert_string_equal(crypto_alg_name(CRYPTO_ALG_EDDSA), "EdDSA");
}

static void test_private_roundtrip(void **state)
{
    static const char *const members[][10] = {
        { "kty", "crv", "x", "y", "d", "kid", "alg", "use", NULL },
        { "kty", "n", "e", "d", "p", "q", "dp", "dq", "qi", "kid" },
        { "kty", "crv", "x", "d", "kid", "alg", "use", NULL },
    };
    for (enum crypto_alg a = CRYPTO_ALG_ES256; a <= CRYPTO_ALG_EDDSA; a++) {
        struct crypto_key *k, *k2;
        assert_int_equal(crypto_key_generate(a, &k), 0);
        char *priv = crypto_key_private_jwk(k);
        json_t *j = parse(priv);
        for (int m = 0; m < 10 && members[a - 1][m]; m++)
            assert_true(json_is_string(json_object_get(j, members[a - 1][m])));
        assert_string_equal(json_string_value(json_object_get(j, "alg")), crypto_alg_name(a));
        assert_string_equal(json_string_value(json_object_get(j, "use")), "sig");
        json_decref(j);

        assert_int_equal(crypto_key_from_jwk(priv, strlen(priv), &k2), 0);
        assert_true(crypto_key_has_private(k2));
        assert_int_equal(crypto_key_alg(k2), a);
        assert_string_equal(crypto_key_kid(k2), crypto_key_kid(k));
        /* Re-export is identical. */
        char *priv2 = crypto_key_private_jwk(k2);
        assert_string_equal(priv, priv2);

        /* Signed by the reloaded key, verified by the original, and back. */
        const struct crypto_key *only_k[] = { k }, *only_k2[] = { k2 };
        struct crypto_keyset s1 = { only_k, 1 }, s2 = { only_k2, 1 };
        char *tok;
        json_t *p;
        assert_int_equal(crypto_jws_sign(k2, "JWT", payload, strlen(payload), &tok), 0);
        assert_int_equal(crypto_jws_verify(tok, strlen(tok), crypto_keyset_find, &s1, 0, &p, NULL), 0);
        json_decref(p);
        free(tok);
        assert_int_equal(crypto_jws_sign(k, "JWT", payload, strlen(payload), &tok), 0);
        assert_int_equal(crypto_jws_verify(tok, strlen(tok), crypto_keyset_find, &s2, 0, &p, NULL), 0);
        json_decref(p);
        free(tok);

        crypto_wipe_free_str(priv);
        crypto_wipe_free_str(priv2);
        crypto_key_free(k2);
        crypto_key_free(k);
    }
}

static void test_public_jwk(void **state)
{
    static const char *const private_members[] = { "d", "p", "q", "dp", "dq", "qi" };
    for (enum crypto_alg a = CRYPTO_ALG_ES256; a <= CRYPTO_ALG_EDDSA; a++) {
        struct crypto_key *k, *pk;
        assert_int_equal(crypto_key_generate(a, &k), 0);
        char *pub = crypto_key_public_jwk(k);
        json_t *j = parse(pub);
        for (size_t i = 0; i < 6; i++)
            assert_null(json_object_get(j, private_members[i]));
        assert_string_equal(json_string_value(json_object_get(j, "kid")), crypto_key_kid(k));
        assert_string_equal(json_string_value(json_object_get(j, "alg")), crypto_alg_name(a));
        assert_string_equal(json_string_value(json_object_get(j, "use")), "sig");
        json_decref(j);

        /* A public-only key verifies but cannot sign or export a private JWK. */
        assert_int_equal(crypto_key_from_jwk(pub, strlen(pub), &pk), 0);
        assert_false(crypto_key_has_private(pk));
        assert_null(crypto_key_private_jwk(pk));
        assert_string_equal(crypto_key_kid(pk), crypto_key_kid(k));
        char *tok;
        json_t *p;
        const struct crypto_key *only[] = { pk };
        struct crypto_keyset s = { only, 1 };
        assert_int_equal(crypto_jws_sign(k, "JWT", payload, strlen(payload), &tok), 0);
        assert_int_equal(crypto_jws_verify(tok, strlen(tok), crypto_keyset_find, &s, 0, &p, NULL), 0);
        json_decref(p);
        free(tok);
        char *pub2 = crypto_key_public_jwk(pk);
        assert_string_equal(pub, pub2);
        free(pub2);
        free(pub);
        crypto_key_free(pk);
        crypto_key_free(k);
    }
}

static void test_import_rejections(void **state)
{
    struct crypto_key *ec, *rsa, *ed, *ec2;
    char *s;

    assert_int_equal(crypto_key_generate(CRYPTO_ALG_ES256, &ec), 0);
    assert_int_equal(crypto_key_generate(CRYPTO_ALG_ES256, &ec2), 0);
    assert_int_equal(crypto_key_generate(CRYPTO_ALG_RS256, &rsa), 0);
    assert_int_equal(crypto_key_generate(CRYPTO_ALG_EDDSA, &ed), 0);

    /* Not JSON / not an object / unknown kty / symmetric keys */
    expect_import("", -EINVAL);
    expect_import("[]", -EINVAL);
    expect_import("{\"kty\":\"oct\",\"k\":\"AAAA\"}", -EINVAL);
    expect_import("{\"kty\":\"EC\"}", -EINVAL);

    /* alg must fit kty; use must be sig; kid must be sane */
    s = mutate(ec, "alg", "RS256"); expect_import(s, -EINVAL); free(s);
    s = mutate(ec, "alg", "none"); expect_import(s, -EINVAL); free(s);
    s = mutate(ec, "alg", "HS256"); expect_import(s, -EINVAL); free(s);
    s = mutate(ed, "alg", "ES256"); expect_import(s, -EINVAL); free(s);
    s = mutate(ec, "use", "enc"); expect_import(s, -EINVAL); free(s);
    s = mutate(ec, "kid", ""); expect_import(s, -EINVAL); free(s);
    s = mutate(ec, "kid", "has space"); expect_import(s, -EINVAL); free(s);
    s = mutate(ec, "kid", "q\"uote"); expect_import(s, -EINVAL); free(s);
    s = mutate(ec, "alg", NULL); expect_import(s, 0); free(s);         /* alg inferred */
    s = mutate(ec, "use", NULL); expect_import(s, 0); free(s);

    /* EC: wrong curve, bad lengths, off-curve point, mismatched d */
    s = mutate(ec, "crv", "P-384"); expect_import(s, -EINVAL); free(s);
    s = mutate(ec, "x", "AAAA"); expect_import(s, -EINVAL); free(s);
    s = mutate(ec, "x", "not+base64/url"); expect_import(s, -EINVAL); free(s);
    s = mutate(ec, "d", "AAAA"); expect_import(s, -EINVAL); free(s);
    {
        char *pub = crypto_key_public_jwk(ec);
        json_t *j = parse(pub);
        uint8_t y[64];
        size_t len;
        const char *yb = json_string_value(json_object_get(j, "y"));
        assert_int_equal(b64url_decode(yb, strlen(yb), y, &len), 0);
        y[31] ^= 1;                                  /* (x, y') is not on P-256 */
        char enc[64];
        b64url_encode(y, 32, enc);
        json_object_set_new(j, "y", json_string(enc));
        s = dump(j);
        expect_import(s, -EINVAL);
        free(s);
        json_decref(j);
        free(pub);
    }
    {
        /* ec's public half with ec2's private scalar */
        char *p2 = crypto_key_private_jwk(ec2);
        json_t *j2 = parse(p2);
        s = mutate(ec, "d", json_string_value(json_object_get(j2, "d")));
        expect_import(s, -EINVAL);
        crypto_wipe_free_str(s);
        json_decref(j2);
        crypto_wipe_free_str(p2);
    }

    /* OKP: wrong curve, x not matching d */
    s = mutate(ed, "crv", "X25519"); expect_import(s, -EINVAL); free(s);
    {
        char *pub = crypto_key_public_jwk(ec);     /* any other 32-byte x */
        json_t *j = parse(pub);
        s = mutate(ed, "x", json_string_value(json_object_get(j, "x")));
        expect_import(s, -EINVAL);
        free(s);
        json_decref(j);
        free(pub);
    }

    /* RSA: incomplete private part, multi-prime, tampered factor, too short */
    s = mutate(rsa, "qi", NULL); expect_import(s, -EINVAL); free(s);
    s = mutate(rsa, "oth", "x"); expect_import(s, -EINVAL); free(s);
    {
        char *priv = crypto_key_private_jwk(rsa);
        json_t *j = parse(priv);
        char *p = xstrdup(json_string_value(json_object_get(j, "p")));
        p[10] = p[10] == 'A' ? 'B' : 'A';
        s = mutate(rsa, "p", p);
        expect_import(s, -EINVAL);
        free(s);
        free(p);
        json_decref(j);
        crypto_wipe_free_str(priv);
    }
    {
        EVP_PKEY *small = EVP_RSA_gen(1024);
        BIGNUM *n = NULL, *e = NULL;
        uint8_t nb[128], eb[8];
        char nenc[200], eenc[16];
        assert_non_null(small);
        assert_int_equal(EVP_PKEY_get_bn_param(small, OSSL_PKEY_PARAM_RSA_N, &n), 1);
        assert_int_equal(EVP_PKEY_get_bn_param(small, OSSL_PKEY_PARAM_RSA_E, &e), 1);
        int nl = BN_bn2bin(n, nb), el = BN_bn2bin(e, eb);
        b64url_encode(nb, (size_t)nl, nenc);
        b64url_encode(eb, (size_t)el, eenc);
        s = xasprintf("{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"%s\"}", nenc, eenc);
        expect_import(s, -EINVAL);
        free(s);
        BN_free(n);
        BN_free(e);
        EVP_PKEY_free(small);
    }

    /* Size and duplicate limits */
    char *huge = xmalloc(CRYPTO_JWK_MAX_LEN + 2);
    memset(huge, ' ', CRYPTO_JWK_MAX_LEN + 1);
    huge[CRYPTO_JWK_MAX_LEN + 1] = '\0';
    struct crypto_key *k;
    assert_int_equal(crypto_key_from_jwk(huge, CRYPTO_JWK_MAX_LEN + 1, &k), -E2BIG);
    free(huge);
    {
        char *pub = crypto_key_public_jwk(ec);
        s = xasprintf("{\"kty\":\"RSA\",%s", pub + 1);   /* kty twice */
        expect_import(s, -EINVAL);
        free(s);
        free(pub);
    }

    crypto_key_free(ec);
    crypto_key_free(ec2);
    crypto_key_free(rsa);
    crypto_key_free(ed);
}

static void test_jwks(void **state)
{
    struct crypto_key *a, *b;
    assert_int_equal(crypto_key_generate(CRYPTO_ALG_ES256, &a), 0);
    assert_int_equal(crypto_key_generate(CRYPTO_ALG_EDDSA, &b), 0);
    const struct crypto_key *ks[] = { a, NULL, b };

    char *doc = crypto_jwks_render(ks, 3);
    json_t *j = parse(doc);
    json_t *arr = json_object_get(j, "keys");
    assert_int_equal(json_object_size(j), 1);
    assert_true(json_is_array(arr));
    assert_int_equal(json_array_size(arr), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 0), "kid")),
                        crypto_key_kid(a));
    assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 1), "kid")),
                        crypto_key_kid(b));
    assert_null(strstr(doc, "\"d\""));
    /* Each entry re-imports as a verification key. */
    for (size_t i = 0; i < 2; i++) {
        char *e = dump(json_array_get(arr, i));
        expect_import(e, 0);
        free(e);
    }
    json_decref(j);
    free(doc);

    doc = crypto_jwks_render(NULL, 0);
    assert_string_equal(doc, "{\"keys\":[]}");
    free(doc);
    crypto_key_free(a);
    crypto_key_free(b);
}

static void test_refcount(void **state)
{
    struct crypto_key *k;
    char *tok;
    assert_int_equal(crypto_key_generate(CRYPTO_ALG_ES256, &k), 0);
    assert_ptr_equal(crypto_key_ref(k), k);
    crypto_key_free(k);                              /* one reference left */
    assert_int_equal(crypto_jws_sign(k, "JWT", payload, strlen(payload), &tok), 0);
    free(tok);
    crypto_key_free(k);                              /* freed (ASan would flag a leak otherwise) */
    crypto_key_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate_each),
        cmocka_unit_test(test_alg_names),
        cmocka_unit_test(test_private_roundtrip),
        cmocka_unit_test(test_public_jwk),
        cmocka_unit_test(test_import_rejections),
        cmocka_unit_test(test_jwks),
        cmocka_unit_test(test_refcount),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
