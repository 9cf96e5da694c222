/*
 * test_crypto_jws — compact JWS sign/verify for ES256, RS256 and EdDSA, every
 * rejection path of crypto_jws_verify (tampering, alg none, HS256 with the
 * public key as HMAC secret, alg/key mismatch, unknown kid, wrong key, part
 * counts, strict base64url, crit, duplicates, length cap), known-answer
 * vectors (RFC 7638 §3.1 thumbprint, RFC 8037 A.4 Ed25519 signature),
 * interop with cjose in both directions, concurrent use of one key, and a
 * short ES256 signing bench (printed, never asserted).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>
#include <cjose/cjose.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core/base64.h"
#include "core/xmalloc.h"
#include "crypto/jws.h"
#include "crypto/key_internal.h"
#include "crypto/keys.h"
#include "crypto/secret.h"

static const char payload[] = "{\"iss\":\"https://id.example.com\",\"sub\":\"alice\",\"aud\":\"api\","
                              "\"exp\":2000000000,\"iat\":1700000000,\"scope\":\"openid\"}";

static struct crypto_key *keys[3];          /* ES256, RS256, EdDSA */
static struct crypto_keyset set;

static int group_setup(void **state)
{
    if (crypto_key_generate(CRYPTO_ALG_ES256, &keys[0]) ||
        crypto_key_generate(CRYPTO_ALG_RS256, &keys[1]) ||
        crypto_key_generate(CRYPTO_ALG_EDDSA, &keys[2]))
        return -1;
    set.keys = (const struct crypto_key *const *)keys;
    set.n = 3;
    return 0;
}

static int group_teardown(void **state)
{
    for (int i = 0; i < 3; i++)
        crypto_key_free(keys[i]);
    return 0;
}

static int verify(const char *tok, json_t **payload_out, json_t **header_out)
{
    return crypto_jws_verify(tok, strlen(tok), crypto_keyset_find, &set, 0, payload_out, header_out);
}

static int verify_rc(const char *tok)
{
    json_t *p = (json_t *)1, *h = (json_t *)1;
    int rc = verify(tok, &p, &h);
    if (rc < 0) {
        assert_null(p);
        assert_null(h);
    } else {
        json_decref(p);
        json_decref(h);
    }
    return rc;
}

/* header '.' payload '.' sig, each given as raw bytes and encoded here. */
static char *build(const char *header, const void *pl, size_t pllen, const void *sig, size_t siglen)
{
    size_t hl = strlen(header);
    char *t = xmalloc(B64URL_ENCLEN(hl) + B64URL_ENCLEN(pllen) + B64URL_ENCLEN(siglen) + 2);
    size_t pos = b64url_encode(header, hl, t);
    t[pos++] = '.';
    pos += b64url_encode(pl, pllen, t + pos);
    t[pos++] = '.';
    b64url_encode(sig, siglen, t + pos);
    return t;
}

/* Like build() but signs header.payload with k (so only the header content is under test). */
static char *build_signed(const struct crypto_key *k, const char *header, const char *pl)
{
    uint8_t sig[CRYPTO_SIG_MAX];
    size_t siglen;
    char *t = build(header, pl, strlen(pl), "", 0);
    size_t n = strlen(t) - 1;                   /* drop the trailing '.' */

    assert_int_equal(crypto_key_sign_raw(k, t, n, sig, &siglen), 0);
    free(t);
    return build(header, pl, strlen(pl), sig, siglen);
}

/* noinline: gcc 12 -O2 otherwise warns (falsely) that the result may point at a dead local. */
__attribute__((noinline)) static char *sign(const struct crypto_key *k, const char *typ)
{
    char *tok = NULL;
    assert_int_equal(crypto_jws_sign(k, typ, payload, strlen(payload), &tok), 0);
    assert_non_null(tok);
    return tok;
}

/* ---- sign / verify ------------------------------------------------------ */

static void test_roundtrip_each_alg(void **state)
{
    for (int i = 0; i < 3; i++) {
        json_t *p, *h;
        char *tok = sign(keys[i], "at+jwt");

        assert_int_equal(verify(tok, &p, &h), 0);
        assert_string_equal(json_string_value(json_object_get(p, "sub")), "alice");
        assert_int_equal(json_integer_value(json_object_get(p, "exp")), 2000000000);
        assert_string_equal(json_string_value(json_object_get(h, "alg")),
                            crypto_alg_name(crypto_key_alg(keys[i])));
        assert_string_equal(json_string_value(json_object_get(h, "typ")), "at+jwt");
        assert_string_equal(json_string_value(json_object_get(h, "kid")), crypto_key_kid(keys[i]));
        assert_int_equal(json_object_size(h), 3);
        json_decref(p);
        json_decref(h);

        /* header_out is optional */
        assert_int_equal(verify(tok, &p, NULL), 0);
        json_decref(p);
        free(tok);
    }
}

static void test_signature_shapes(void **state)
{
    static const size_t want[3] = { 64, 256, 64 };   /* ES256 raw R||S, RSA-2048, Ed25519 */
    for (int i = 0; i < 3; i++) {
        char *tok = sign(keys[i], "JWT");
        const char *sig = strrchr(tok, '.') + 1;
        uint8_t raw[B64_DECLEN(1024)];
        size_t len;

        assert_int_equal(b64url_decode(sig, strlen(sig), raw, &len), 0);
        assert_int_equal(len, want[i]);
        free(tok);
    }
    /* The header is exactly {"alg","typ","kid"} in that order; typ NULL omits it. */
    char *tok = sign(keys[0], NULL), hdr[256];
    size_t len;
    assert_int_equal(b64url_decode(tok, (size_t)(strchr(tok, '.') - tok), hdr, &len), 0);
    hdr[len] = '\0';
    char expect[256];
    snprintf(expect, sizeof expect, "{\"alg\":\"ES256\",\"kid\":\"%s\"}", crypto_key_kid(keys[0]));
    assert_string_equal(hdr, expect);
    assert_int_equal(verify_rc(tok), 0);
    free(tok);
}

static void test_sign_refusals(void **state)
{
    char *pub_json = crypto_key_public_jwk(keys[0]), *tok = (char *)1;
    struct crypto_key *pub;

    assert_int_equal(crypto_key_from_jwk(pub_json, strlen(pub_json), &pub), 0);
    assert_int_equal(crypto_jws_sign(pub, "JWT", payload, strlen(payload), &tok), -EINVAL);
    assert_null(tok);
    assert_int_equal(crypto_jws_sign(keys[0], "a\"b", payload, strlen(payload), &tok), -EINVAL);
    assert_int_equal(crypto_jws_sign(keys[0], "", payload, strlen(payload), &tok), -EINVAL);
    assert_int_equal(crypto_jws_sign(keys[0], "with space", payload, strlen(payload), &tok), -EINVAL);
    crypto_key_free(pub);
    free(pub_json);
}

/* ---- tampering ---------------------------------------------------------- */

static void test_tampered_payload(void **state)
{
    for (int i = 0; i < 3; i++) {
        char *tok = sign(keys[i], "JWT");

        /* Replace the payload with another valid JSON object, keep header and signature. */
        const char *d1 = strchr(tok, '.'), *d2 = strrchr(tok, '.');
        const char evil[] = "{\"iss\":\"https://id.example.com\",\"sub\":\"admin\"}";
        char enc[B64URL_ENCLEN(sizeof evil)];
        b64url_encode(evil, strlen(evil), enc);
        char *t2 = xasprintf("%.*s.%s%s", (int)(d1 - tok), tok, enc, d2);
        assert_int_equal(verify_rc(t2), -EBADMSG);
        free(t2);

        /* Flip each character of the payload part in turn (a few positions). */
        for (const char *p = d1 + 1; p < d2; p += 7) {
            char *t3 = xstrdup(tok);
            size_t off = (size_t)(p - tok);
            t3[off] = t3[off] == 'A' ? 'B' : 'A';
            int rc = verify_rc(t3);
            /* A flip can also break base64 strictness (last char) or JSON; never accepted. */
            assert_true(rc == -EBADMSG || rc == -EINVAL);
            free(t3);
        }
        free(tok);
    }
}

static void test_tampered_header_and_signature(void **state)
{
    char *tok = sign(keys[0], "at+jwt");
    json_t *p;

    /* Same alg and kid, typ changed: the signature covers the header. */
    char *hdr = xasprintf("{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", crypto_key_kid(keys[0]));
    char enc[256];
    b64url_encode(hdr, strlen(hdr), enc);
    char *t2 = xasprintf("%s%s", enc, strchr(tok, '.'));
    assert_int_equal(verify(t2, &p, NULL), -EBADMSG);
    assert_null(p);
    free(t2);
    free(hdr);

    /* Signature bit flips. */
    char *sig = strrchr(tok, '.') + 1;
    char save = sig[0];
    sig[0] = save == 'A' ? 'B' : 'A';
    assert_int_equal(verify_rc(tok), -EBADMSG);
    sig[0] = save;
    /* Signature one byte short and one byte long (ES256 must be exactly 64 bytes). */
    uint8_t raw[80];
    size_t rawlen;
    assert_int_equal(b64url_decode(sig, strlen(sig), raw, &rawlen), 0);
    assert_int_equal(rawlen, 64);
    for (size_t len = 63; len <= 65; len += 2) {
        char sigenc[128];
        raw[64] = 0;
        b64url_encode(raw, len, sigenc);
        char *t3 = xasprintf("%.*s%s", (int)(sig - tok), tok, sigenc);
        assert_int_equal(verify_rc(t3), -EBADMSG);
        free(t3);
    }
    /* Empty signature. */
    char *t4 = xstrndup(tok, (size_t)(sig - tok));
    assert_int_equal(verify_rc(t4), -EBADMSG);
    free(t4);
    assert_int_equal(verify_rc(tok), 0);
    free(tok);
}

/* ---- algorithm attacks -------------------------------------------------- */

static void test_alg_none(void **state)
{
    char *hdr = xasprintf("{\"alg\":\"none\",\"kid\":\"%s\"}", crypto_key_kid(keys[0]));
    char *tok = build(hdr, payload, strlen(payload), "", 0);
    assert_int_equal(verify_rc(tok), -EKEYREJECTED);
    free(tok);

    /* "none" with a real signature attached, and the "None"/"NONE" spellings. */
    char *tok2 = sign(keys[0], "JWT");
    char enc[256];
    b64url_encode(hdr, strlen(hdr), enc);
    char *t3 = xasprintf("%s%s", enc, strchr(tok2, '.'));
    assert_int_equal(verify_rc(t3), -EKEYREJECTED);
    free(t3);
    free(hdr);
    const char *spellings[] = { "None", "NONE", "", "es256", "ES384", "RS512", "PS256", "Ed25519" };
    for (size_t i = 0; i < sizeof spellings / sizeof spellings[0]; i++) {
        hdr = xasprintf("{\"alg\":\"%s\",\"kid\":\"%s\"}", spellings[i], crypto_key_kid(keys[0]));
        tok = build(hdr, payload, strlen(payload), "sig", 3);
        assert_int_equal(verify_rc(tok), -EKEYREJECTED);
        free(tok);
        free(hdr);
    }
    /* alg missing or not a string */
    tok = build("{\"kid\":\"x\"}", payload, strlen(payload), "sig", 3);
    assert_int_equal(verify_rc(tok), -EKEYREJECTED);
    free(tok);
    tok = build("{\"alg\":256,\"kid\":\"x\"}", payload, strlen(payload), "sig", 3);
    assert_int_equal(verify_rc(tok), -EKEYREJECTED);
    free(tok);
    free(tok2);
}

/* The classic confusion attack: HS256 "signed" with the public key as HMAC secret. */
static void test_hs256_with_public_key(void **state)
{
    for (int i = 0; i < 2; i++) {                   /* the ES256 and the RS256 key */
        char *pub = crypto_key_public_jwk(keys[i]);
        char *hdr = xasprintf("{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}",
                              crypto_key_kid(keys[i]));
        char *unsigned_tok = build(hdr, payload, strlen(payload), "", 0);
        size_t n = strlen(unsigned_tok) - 1;
        unsigned char mac[32];
        unsigned int maclen = 0;

        assert_non_null(HMAC(EVP_sha256(), pub, (int)strlen(pub), (unsigned char *)unsigned_tok, n,
                             mac, &maclen));
        assert_int_equal(maclen, 32);
        char *tok = build(hdr, payload, strlen(payload), mac, maclen);
        assert_int_equal(verify_rc(tok), -EKEYREJECTED);
        free(tok);

        /* And with alg claiming the key's own alg but carrying the HMAC: bad signature. */
        free(hdr);
        hdr = xasprintf("{\"alg\":\"%s\",\"kid\":\"%s\"}", crypto_alg_name(crypto_key_alg(keys[i])),
                        crypto_key_kid(keys[i]));
        tok = build(hdr, payload, strlen(payload), mac, maclen);
        assert_int_equal(verify_rc(tok), -EBADMSG);
        free(tok);
        free(unsigned_tok);
        free(hdr);
        free(pub);
    }
}

static void test_alg_key_mismatch(void **state)
{
    /* Header says ES256 but the kid names the EdDSA key (both 64-byte signatures). */
    char *hdr = xasprintf("{\"alg\":\"ES256\",\"kid\":\"%s\"}", crypto_key_kid(keys[2]));
    char *tok = build_signed(keys[2], "{\"alg\":\"EdDSA\"}", payload);  /* a real Ed25519 sig */
    char enc[256];
    b64url_encode(hdr, strlen(hdr), enc);
    char *t2 = xasprintf("%s.%s", enc, strchr(tok, '.') + 1);
    assert_int_equal(verify_rc(t2), -EKEYREJECTED);
    free(t2);
    free(tok);
    free(hdr);

    /* RS256 header pointing at the ES256 key. */
    hdr = xasprintf("{\"alg\":\"RS256\",\"kid\":\"%s\"}", crypto_key_kid(keys[0]));
    tok = build_signed(keys[1], hdr, payload);
    assert_int_equal(verify_rc(tok), -EKEYREJECTED);
    free(tok);
    free(hdr);
}

/* ---- keys --------------------------------------------------------------- */

static void test_unknown_kid(void **state)
{
    char *tok = build_signed(keys[0], "{\"alg\":\"ES256\",\"kid\":\"no-such-key\"}", payload);
    assert_int_equal(verify_rc(tok), -ENOKEY);
    free(tok);
    tok = build_signed(keys[0], "{\"alg\":\"ES256\"}", payload);
    assert_int_equal(verify_rc(tok), -ENOKEY);
    free(tok);
    tok = build_signed(keys[0], "{\"alg\":\"ES256\",\"kid\":\"\"}", payload);
    assert_int_equal(verify_rc(tok), -ENOKEY);
    free(tok);
    tok = build_signed(keys[0], "{\"alg\":\"ES256\",\"kid\":7}", payload);
    assert_int_equal(verify_rc(tok), -ENOKEY);
    free(tok);

    /* An empty key set knows nothing. */
    struct crypto_keyset empty = { NULL, 0 };
    json_t *p;
    tok = sign(keys[0], "JWT");
    assert_int_equal(crypto_jws_verify(tok, strlen(tok), crypto_keyset_find, &empty, 0, &p, NULL),
                     -ENOKEY);
    free(tok);
}

static void test_wrong_key_same_alg(void **state)
{
    /* Another ES256 key published under the first key's kid. */
    struct crypto_key *other, *impostor;
    char *tok = sign(keys[0], "JWT");
    json_t *p;

    for (int alg = CRYPTO_ALG_ES256; alg <= CRYPTO_ALG_EDDSA; alg++) {
        const struct crypto_key *orig = keys[alg - CRYPTO_ALG_ES256];
        char *t = sign(orig, "JWT");
        assert_int_equal(crypto_key_generate((enum crypto_alg)alg, &other), 0);
        json_t *jwk = crypto_key_public_jwk_json(other);
        json_object_set_new(jwk, "kid", json_string(crypto_key_kid(orig)));
        char *s = json_dumps(jwk, JSON_COMPACT);
        assert_int_equal(crypto_key_from_jwk(s, strlen(s), &impostor), 0);
        assert_string_equal(crypto_key_kid(impostor), crypto_key_kid(orig));
        const struct crypto_key *only[] = { impostor };
        struct crypto_keyset s1 = { only, 1 };
        assert_int_equal(crypto_jws_verify(t, strlen(t), crypto_keyset_find, &s1, 0, &p, NULL),
                         -EBADMSG);
        assert_null(p);
        crypto_key_free(impostor);
        crypto_key_free(other);
        free(s);
        json_decref(jwk);
        free(t);
    }
    free(tok);
}

/* ---- structure ---------------------------------------------------------- */

static void test_part_counts(void **state)
{
    char *tok = sign(keys[0], "JWT");
    const char *d1 = strchr(tok, '.'), *d2 = strrchr(tok, '.');

    char *two = xstrndup(tok, (size_t)(d2 - tok));                  /* header.payload */
    assert_int_equal(verify_rc(two), -EINVAL);
    char *four = xasprintf("%s.%s", tok, d2 + 1);                    /* extra part */
    assert_int_equal(verify_rc(four), -EINVAL);
    char *trailing = xasprintf("%s.", tok);
    assert_int_equal(verify_rc(trailing), -EINVAL);
    char *one = xstrndup(tok, (size_t)(d1 - tok));
    assert_int_equal(verify_rc(one), -EINVAL);
    assert_int_equal(verify_rc(""), -EINVAL);
    assert_int_equal(verify_rc(".."), -EINVAL);
    assert_int_equal(verify_rc("..."), -EINVAL);
    /* JWE-like five parts */
    char *five = xasprintf("%s.%s.%s", tok, d2 + 1, d2 + 1);
    assert_int_equal(verify_rc(five), -EINVAL);
    free(two);
    free(four);
    free(trailing);
    free(one);
    free(five);
    assert_int_equal(verify_rc(tok), 0);
    free(tok);
}

static void test_strict_base64url(void **state)
{
    char *tok = sign(keys[0], "JWT");
    /* padding, standard-alphabet characters, whitespace */
    char *padded = xasprintf("%s=", tok);
    assert_int_equal(verify_rc(padded), -EINVAL);
    char *plus = xstrdup(tok);
    plus[strlen(plus) - 3] = '+';
    assert_int_equal(verify_rc(plus), -EINVAL);
    char *slash = xstrdup(tok);
    slash[3] = '/';
    assert_int_equal(verify_rc(slash), -EINVAL);
    char *space = xasprintf(" %s", tok);
    assert_int_equal(verify_rc(space), -EINVAL);
    char *nl = xasprintf("%s\n", tok);
    assert_int_equal(verify_rc(nl), -EINVAL);
    free(padded);
    free(plus);
    free(slash);
    free(space);
    free(nl);

    /* Embedded NUL: the length, not the NUL, delimits the input. */
    size_t n = strlen(tok);
    char *withnul = xmalloc(n + 2);
    memcpy(withnul, tok, n);
    withnul[n] = '\0';
    withnul[n + 1] = 'A';
    json_t *p;
    assert_int_equal(crypto_jws_verify(withnul, n + 2, crypto_keyset_find, &set, 0, &p, NULL), -EINVAL);
    assert_int_equal(crypto_jws_verify(withnul, n, crypto_keyset_find, &set, 0, &p, NULL), 0);
    json_decref(p);
    free(withnul);
    free(tok);
}

static void test_header_rules(void **state)
{
    const char *kid = crypto_key_kid(keys[0]);
    char *h, *tok;

    /* crit is refused even when correctly signed. */
    h = xasprintf("{\"alg\":\"ES256\",\"kid\":\"%s\",\"crit\":[\"exp\"],\"exp\":1}", kid);
    tok = build_signed(keys[0], h, payload);
    assert_int_equal(verify_rc(tok), -EINVAL);
    free(tok);
    free(h);
    /* duplicate alg */
    h = xasprintf("{\"alg\":\"none\",\"alg\":\"ES256\",\"kid\":\"%s\"}", kid);
    tok = build_signed(keys[0], h, payload);
    assert_int_equal(verify_rc(tok), -EINVAL);
    free(tok);
    free(h);
    /* header not an object / not JSON */
    tok = build_signed(keys[0], "[\"ES256\"]", payload);
    assert_int_equal(verify_rc(tok), -EINVAL);
    free(tok);
    tok = build_signed(keys[0], "{\"alg\":\"ES256\"", payload);
    assert_int_equal(verify_rc(tok), -EINVAL);
    free(tok);
    /* extra harmless members are fine */
    h = xasprintf("{\"alg\":\"ES256\",\"kid\":\"%s\",\"typ\":\"at+jwt\",\"x-extra\":true}", kid);
    tok = build_signed(keys[0], h, payload);
    assert_int_equal(verify_rc(tok), 0);
    free(tok);
    free(h);
}

static void test_payload_rules(void **state)
{
    const char *kid = crypto_key_kid(keys[0]);
    char *h = xasprintf("{\"alg\":\"ES256\",\"kid\":\"%s\"}", kid);
    char *tok;
    const char *bad[] = { "[1,2]", "\"str\"", "42", "not json", "", "{\"a\":1,\"a\":2}",
                          "{\"a\":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]}" };

    /* Correctly signed, but the payload is not a usable JSON object. */
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tok = build_signed(keys[0], h, bad[i]);
        assert_int_equal(verify_rc(tok), -EINVAL);
        free(tok);
    }
    tok = build_signed(keys[0], h, "{}");
    assert_int_equal(verify_rc(tok), 0);
    free(tok);
    free(h);
}

static void test_length_cap(void **state)
{
    char *big = xmalloc(CRYPTO_JWS_MAX_LEN);
    size_t n = 0;
    json_t *p;
    char *tok;

    /* A payload large enough that the token exceeds the default cap. */
    n += (size_t)sprintf(big, "{\"pad\":\"");
    while (n < CRYPTO_JWS_MAX_LEN * 3 / 4)
        big[n++] = 'x';
    n += (size_t)sprintf(big + n, "\"}");
    assert_int_equal(crypto_jws_sign(keys[0], "JWT", big, n, &tok), 0);
    assert_true(strlen(tok) > CRYPTO_JWS_MAX_LEN);
    assert_int_equal(crypto_jws_verify(tok, strlen(tok), crypto_keyset_find, &set, 0, &p, NULL), -E2BIG);
    /* A caller may allow more ... */
    assert_int_equal(crypto_jws_verify(tok, strlen(tok), crypto_keyset_find, &set, 2 * CRYPTO_JWS_MAX_LEN,
                                       &p, NULL), 0);
    json_decref(p);
    free(tok);
    /* ... or less. */
    tok = sign(keys[0], "JWT");
    assert_int_equal(crypto_jws_verify(tok, strlen(tok), crypto_keyset_find, &set, strlen(tok) - 1,
                                       &p, NULL), -E2BIG);
    assert_int_equal(crypto_jws_verify(tok, strlen(tok), crypto_keyset_find, &set, strlen(tok),
                                       &p, NULL), 0);
    json_decref(p);
    free(tok);
    free(big);
}

/* ---- known answers ------------------------------------------------------ */

#define RFC7638_N "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJ" \
    "ECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2Q" \
    "vzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6W" \
    "eZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"

static void test_rfc7638_thumbprint(void **state)
{
    const char *jwk = "{\"kty\":\"RSA\",\"n\":\"" RFC7638_N "\",\"e\":\"AQAB\",\"alg\":\"RS256\","
                      "\"kid\":\"2011-04-29\"}";
    char tp[CRYPTO_THUMBPRINT_LEN + 1];
    struct crypto_key *k;

    assert_int_equal(crypto_jwk_thumbprint(jwk, strlen(jwk), tp), 0);
    assert_string_equal(tp, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");

    /* Imported, the key keeps its own kid ... */
    assert_int_equal(crypto_key_from_jwk(jwk, strlen(jwk), &k), 0);
    assert_string_equal(crypto_key_kid(k), "2011-04-29");
    assert_false(crypto_key_has_private(k));
    crypto_key_free(k);
    /* ... and without one its kid is the thumbprint. */
    const char *nokid = "{\"kty\":\"RSA\",\"n\":\"" RFC7638_N "\",\"e\":\"AQAB\"}";
    assert_int_equal(crypto_key_from_jwk(nokid, strlen(nokid), &k), 0);
    assert_string_equal(crypto_key_kid(k), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    assert_int_equal(crypto_key_alg(k), CRYPTO_ALG_RS256);
    crypto_key_free(k);

    /* Generated keys: kid == thumbprint of their public JWK. */
    for (int i = 0; i < 3; i++) {
        char *pub = crypto_key_public_jwk(keys[i]);
        assert_int_equal(crypto_jwk_thumbprint(pub, strlen(pub), tp), 0);
        assert_string_equal(tp, crypto_key_kid(keys[i]));
        assert_int_equal(strlen(tp), CRYPTO_THUMBPRINT_LEN);
        free(pub);
    }
    assert_int_equal(crypto_jwk_thumbprint("{\"kty\":\"oct\",\"k\":\"AAAA\"}", 25, tp), -EINVAL);
    assert_int_equal(crypto_jwk_thumbprint("{\"kty\":\"RSA\",\"e\":\"AQAB\"}", 25, tp), -EINVAL);
}

/* RFC 8037 A.1-A.4: Ed25519 is deterministic, so the exact signature is known. */
static void test_rfc8037_ed25519(void **state)
{
    const char *jwk = "{\"kty\":\"OKP\",\"crv\":\"Ed25519\","
                      "\"d\":\"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A\","
                      "\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}";
    const char *input = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
    const char *want = "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
    struct crypto_key *k;
    uint8_t sig[CRYPTO_SIG_MAX];
    size_t siglen;
    char enc[128];

    assert_int_equal(crypto_key_from_jwk(jwk, strlen(jwk), &k), 0);
    assert_int_equal(crypto_key_alg(k), CRYPTO_ALG_EDDSA);
    assert_true(crypto_key_has_private(k));
    /* RFC 8037 A.3 thumbprint */
    assert_string_equal(crypto_key_kid(k), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    assert_int_equal(crypto_key_sign_raw(k, input, strlen(input), sig, &siglen), 0);
    assert_int_equal(siglen, 64);
    b64url_encode(sig, siglen, enc);
    assert_string_equal(enc, want);
    assert_int_equal(crypto_key_verify_raw(k, input, strlen(input), sig, siglen), 0);
    sig[10] ^= 1;
    assert_int_equal(crypto_key_verify_raw(k, input, strlen(input), sig, siglen), -EBADMSG);
    crypto_key_free(k);
}

/* ---- interop with cjose (independent ES256/RS256 implementation) ---------- */

static void test_cjose_interop(void **state)
{
    for (int i = 0; i < 2; i++) {                   /* ES256, RS256: what cjose 0.6.2 has */
        cjose_err err;
        char *priv = crypto_key_private_jwk(keys[i]);
        cjose_jwk_t *cj = cjose_jwk_import(priv, strlen(priv), &err);
        assert_non_null(cj);

        /* ours -> cjose */
        char *tok = sign(keys[i], "JWT");
        cjose_jws_t *jws = cjose_jws_import(tok, strlen(tok), &err);
        assert_non_null(jws);
        assert_true(cjose_jws_verify(jws, cj, &err));
        uint8_t *plain;
        size_t plen;
        assert_true(cjose_jws_get_plaintext(jws, &plain, &plen, &err));
        assert_int_equal(plen, strlen(payload));
        assert_memory_equal(plain, payload, plen);
        cjose_jws_release(jws);
        free(tok);

        /* cjose -> ours */
        cjose_header_t *h = cjose_header_new(&err);
        cjose_header_set(h, CJOSE_HDR_ALG, i == 0 ? CJOSE_HDR_ALG_ES256 : CJOSE_HDR_ALG_RS256, &err);
        cjose_header_set(h, CJOSE_HDR_KID, crypto_key_kid(keys[i]), &err);
        jws = cjose_jws_sign(cj, h, (const uint8_t *)payload, strlen(payload), &err);
        assert_non_null(jws);
        const char *ser;
        assert_true(cjose_jws_export(jws, &ser, &err));
        assert_int_equal(verify_rc(ser), 0);
        cjose_jws_release(jws);
        cjose_header_release(h);
        cjose_jwk_release(cj);
        crypto_wipe_free_str(priv);
    }
}

/* ---- concurrency: one key, two threads ------------------------------------ */

static void *worker(void *arg)
{
    const struct crypto_key *k = arg;
    long failures = 0;
    for (int i = 0; i < 300; i++) {
        char *tok = NULL;
        json_t *p = NULL;
        if (crypto_jws_sign(k, "at+jwt", payload, strlen(payload), &tok) != 0 ||
            crypto_jws_verify(tok, strlen(tok), crypto_keyset_find, &set, 0, &p, NULL) != 0)
            failures++;
        json_decref(p);
        free(tok);
    }
    return (void *)failures;
}

static void test_concurrent_use(void **state)
{
    for (int i = 0; i < 3; i += 2) {                /* ES256 and EdDSA (RSA signing is slow) */
        pthread_t t[2];
        void *r;
        long failures = 0;
        for (int j = 0; j < 2; j++)
            assert_int_equal(pthread_create(&t[j], NULL, worker, keys[i]), 0);
        for (int j = 0; j < 2; j++) {
            assert_int_equal(pthread_join(t[j], &r), 0);
            failures += (long)r;
        }
        assert_int_equal(failures, 0);
    }
}

/* ---- bench (printed only) --------------------------------------------------- */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_bench_es256(void **state)
{
    const int n = 2000;
    cjose_err err;
    double t0, ours, theirs, ver;

    /* direct OpenSSL (this module) */
    t0 = now();
    for (int i = 0; i < n; i++) {
        char *tok;
        assert_int_equal(crypto_jws_sign(keys[0], "at+jwt", payload, strlen(payload), &tok), 0);
        free(tok);
    }
    ours = n / (now() - t0);

    /* cjose, same key, same header, sign + compact export */
    char *priv = crypto_key_private_jwk(keys[0]);
    cjose_jwk_t *cj = cjose_jwk_import(priv, strlen(priv), &err);
    cjose_header_t *h = cjose_header_new(&err);
    assert_non_null(cj);
    cjose_header_set(h, CJOSE_HDR_ALG, CJOSE_HDR_ALG_ES256, &err);
    cjose_header_set(h, "typ", "at+jwt", &err);
    cjose_header_set(h, CJOSE_HDR_KID, crypto_key_kid(keys[0]), &err);
    t0 = now();
    for (int i = 0; i < n; i++) {
        cjose_jws_t *jws = cjose_jws_sign(cj, h, (const uint8_t *)payload, strlen(payload), &err);
        const char *ser;
        assert_true(jws && cjose_jws_export(jws, &ser, &err));
        cjose_jws_release(jws);
    }
    theirs = n / (now() - t0);

    char *tok = sign(keys[0], "at+jwt");
    t0 = now();
    for (int i = 0; i < n; i++) {
        json_t *p;
        assert_int_equal(verify(tok, &p, NULL), 0);
        json_decref(p);
    }
    ver = n / (now() - t0);
    printf("[bench] ES256 single thread: refuge sign %.0f/s, cjose sign %.0f/s (%.2fx), "
           "refuge verify %.0f/s\n", ours, theirs, ours / theirs, ver);
    free(tok);
    cjose_header_release(h);
    cjose_jwk_release(cj);
    crypto_wipe_free_str(priv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_each_alg),
        cmocka_unit_test(test_signature_shapes),
        cmocka_unit_test(test_sign_refusals),
        cmocka_unit_test(test_tampered_payload),
        cmocka_unit_test(test_tampered_header_and_signature),
        cmocka_unit_test(test_alg_none),
        cmocka_unit_test(test_hs256_with_public_key),
        cmocka_unit_test(test_alg_key_mismatch),
        cmocka_unit_test(test_unknown_kid),
        cmocka_unit_test(test_wrong_key_same_alg),
        cmocka_unit_test(test_part_counts),
        cmocka_unit_test(test_strict_base64url),
        cmocka_unit_test(test_header_rules),
        cmocka_unit_test(test_payload_rules),
        cmocka_unit_test(test_length_cap),
        cmocka_unit_test(test_rfc7638_thumbprint),
        cmocka_unit_test(test_rfc8037_ed25519),
        cmocka_unit_test(test_cjose_interop),
        cmocka_unit_test(test_concurrent_use),
        cmocka_unit_test(test_bench_es256),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
