/*
 * jws — compact JWS (RFC 7515) signing and verification for JWTs: access
 * tokens ("at+jwt", RFC 9068), ID tokens and logout tokens ("JWT").
 *
 * Implemented directly on OpenSSL EVP rather than cjose: cjose 0.6.2 has no
 * EdDSA, and signing from a prepared per-key context is at least as fast as
 * cjose for ES256 (see the bench printed by tests/unit/test_crypto_jws.c).
 * ES256 signatures are the raw 64-byte R || S form (RFC 7518 §3.4), not DER.
 *
 * Verification is deliberately strict: exactly three parts, strict base64url
 * (no padding, no stray bits), a JSON-object header without duplicate members
 * and without "crit", "alg" one of ES256/RS256/EdDSA (never "none", never an
 * HMAC), a "kid" that the caller's lookup knows, the header alg equal to that
 * key's alg (so an HS256 token "signed" with a public key is refused), a
 * valid signature, and only then a JSON-object payload.
 * It checks no claims: exp, aud, iss, typ are the caller's job.
 */
#ifndef REFUGE_CRYPTO_JWS_H
#define REFUGE_CRYPTO_JWS_H

#include <jansson.h>
#include <stddef.h>
#include "crypto/keys.h"

#define CRYPTO_JWS_MAX_LEN (16 * 1024)   /* default cap on a compact JWS */
#define CRYPTO_JWS_TYP_MAX 64

/*
 * Signs n bytes of payload (a JSON object's text, used as-is) with k and
 * returns the compact serialization in *out_compact (xmalloc'd,
 * NUL-terminated; caller frees). The protected header is
 * {"alg":<k's alg>,"typ":typ,"kid":<k's kid>}; typ may be NULL (then omitted)
 * and otherwise is 1..CRYPTO_JWS_TYP_MAX characters of [A-Za-z0-9+./-].
 * Thread-safe; k is not modified. Returns 0, -EINVAL (k has no private half,
 * bad typ) or -EIO (OpenSSL failure); on failure *out_compact is NULL.
 */
int crypto_jws_sign(const struct crypto_key *k, const char *typ,
                    const char *payload, size_t n, char **out_compact);

/*
 * Key lookup for verification: returns the key whose id is the kidlen bytes
 * at kid (also NUL-terminated), or NULL when unknown. The returned key is
 * borrowed: it must stay alive until crypto_jws_verify returns (hold a
 * reference or the lock protecting your key cache across the call).
 */
typedef const struct crypto_key *(*crypto_key_lookup_fn)(void *arg, const char *kid, size_t kidlen);

/* A simple key set usable as lookup: crypto_jws_verify(..., crypto_keyset_find, &set, ...). */
struct crypto_keyset {
    const struct crypto_key *const *keys;   /* borrowed; NULL entries skipped */
    size_t n;
};
const struct crypto_key *crypto_keyset_find(void *keyset, const char *kid, size_t kidlen);

/*
 * Verifies the n-byte compact JWS (not necessarily NUL-terminated).
 * max_len caps n (0 = CRYPTO_JWS_MAX_LEN). On success returns 0 and sets
 * *payload_out to the payload as a new JSON object reference (caller
 * json_decref()s); header_out, when not NULL, receives the protected header
 * likewise. On failure both are NULL. Checks run in this order, the first
 * failing one giving the result:
 *   -E2BIG         n > max_len
 *   -EINVAL        not exactly 3 parts; header not strict base64url, not a
 *                  JSON object, duplicate members, or "crit" present
 *   -EKEYREJECTED  "alg" missing, "none", or not ES256/RS256/EdDSA (HS256 too)
 *   -ENOKEY        "kid" missing or empty
 *   -EINVAL        payload or signature part not strict base64url
 *   -ENOKEY        lookup returned NULL for the kid
 *   -EKEYREJECTED  "alg" is not the alg of the key found
 *   -EBADMSG       signature does not verify (wrong length included)
 *   -EINVAL        payload not a JSON object (or duplicate members, or
 *                  nested deeper than 16) -- only checked once signed
 *   -EIO           OpenSSL failure
 * Thread-safe. lookup is called at most once, only for a well-formed header.
 */
int crypto_jws_verify(const char *compact, size_t n, crypto_key_lookup_fn lookup, void *arg,
                      size_t max_len, json_t **payload_out, json_t **header_out);

#endif
