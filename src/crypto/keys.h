/*
 * keys — JWS signing keys: generation, JWK import/export, key ids, JWKS.
 *
 * A struct crypto_key is the parsed, in-memory form of one key (an OpenSSL
 * EVP_PKEY plus prepared signing/verifying contexts). Parse a key once, when
 * it is loaded or rotated, and keep the object: crypto_jws_sign and
 * crypto_jws_verify then do no key parsing at all. A key is immutable after
 * creation and may be used by any number of threads at once. It is
 * reference-counted like an EVP_PKEY: crypto_key_ref adds a reference,
 * crypto_key_free drops one and destroys the key with the last.
 *
 * Algorithms: ES256 (P-256, the default), RS256 (RSA 2048..4096 bits, 2048
 * generated), EdDSA (Ed25519).
 *
 * Key id: unless the JWK being imported carries its own "kid", the kid is
 * the RFC 7638 JWK thumbprint: base64url(SHA-256(canonical public JWK)),
 * 43 characters. A kid is 1..CRYPTO_KID_MAX characters of [A-Za-z0-9._~:+/=-]
 * (so it never needs escaping in JSON).
 *
 * At rest a key is its private JWK JSON, sealed with the master key
 * (crypto/seal.h); only the public JWK is ever published.
 */
#ifndef REFUGE_CRYPTO_KEYS_H
#define REFUGE_CRYPTO_KEYS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

enum crypto_alg {
    CRYPTO_ALG_NONE = 0,    /* never a valid key algorithm */
    CRYPTO_ALG_ES256,
    CRYPTO_ALG_RS256,
    CRYPTO_ALG_EDDSA,
};
#define CRYPTO_ALG_DEFAULT CRYPTO_ALG_ES256

#define CRYPTO_KID_MAX 64
#define CRYPTO_THUMBPRINT_LEN 43            /* base64url of 32 bytes */
#define CRYPTO_JWK_MAX_LEN (16 * 1024)      /* longest JWK JSON accepted for import */

struct crypto_key;

/* "ES256", "RS256", "EdDSA"; "none" for anything else. Static string. */
const char *crypto_alg_name(enum crypto_alg alg);
/* Exact, case-sensitive JOSE name of length n -> alg. 0 or -EINVAL. */
int crypto_alg_parse(const char *name, size_t n, enum crypto_alg *out);

/* Generates a fresh key pair; *out owns one reference. 0, -EINVAL (alg) or -EIO. */
int crypto_key_generate(enum crypto_alg alg, struct crypto_key **out);

/*
 * Imports a JWK (private or public-only) from n bytes of JSON; *out owns one
 * reference. The alg is taken from "alg" when present (it must fit kty/crv),
 * else inferred (EC P-256 -> ES256, RSA -> RS256, OKP Ed25519 -> EdDSA).
 * "use", when present, must be "sig". Private keys are checked to match their
 * public half. Returns 0, -E2BIG (n > CRYPTO_JWK_MAX_LEN), -EINVAL (not a
 * usable JWK: bad JSON, missing or malformed member, unsupported kty/crv/alg,
 * RSA outside 2048..4096 bits, point not on curve, inconsistent key) or -EIO.
 * The input may hold private material: the caller wipes it.
 */
int crypto_key_from_jwk(const char *json, size_t n, struct crypto_key **out);

/* Adds a reference; returns k. */
struct crypto_key *crypto_key_ref(struct crypto_key *k);
/* Drops a reference; the last one frees the key (private material wiped). NULL is fine. */
void crypto_key_free(struct crypto_key *k);

enum crypto_alg crypto_key_alg(const struct crypto_key *k);
/* The key id; borrowed, valid as long as the caller holds a reference to k. */
const char *crypto_key_kid(const struct crypto_key *k);
/* True when k can sign (was generated or imported with its private half). */
bool crypto_key_has_private(const struct crypto_key *k);

/*
 * The private JWK as compact JSON (kty, crv/n/e, x/y, d, ..., kid, alg, use),
 * xmalloc'd and NUL-terminated. It is secret: seal it, then release it with
 * crypto_wipe_free_str() (crypto/secret.h). Returns NULL when k has no private half.
 */
char *crypto_key_private_jwk(const struct crypto_key *k);

/* The public JWK {"kty",...,"kid","alg","use":"sig"}: xmalloc'd compact JSON, caller frees. */
char *crypto_key_public_jwk(const struct crypto_key *k);
/* The same as a jansson object; new reference, caller json_decref()s it. */
json_t *crypto_key_public_jwk_json(const struct crypto_key *k);

/*
 * RFC 7638 thumbprint of the JWK in n bytes of JSON (public members only are
 * used; private ones are ignored): writes 43 base64url characters + NUL.
 * 0, -E2BIG or -EINVAL.
 */
int crypto_jwk_thumbprint(const char *json, size_t n, char out[CRYPTO_THUMBPRINT_LEN + 1]);

/*
 * JWKS document {"keys":[public JWK, ...]} for the n keys (NULL entries are
 * skipped), in the given order; xmalloc'd compact JSON, caller frees.
 */
char *crypto_jwks_render(const struct crypto_key *const *keys, size_t n);

#endif
