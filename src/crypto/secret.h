/*
 * secret — client secrets, hashes of bearer tokens, and wiping memory that
 * held secret material.
 *
 * Client secrets are 32 random bytes (base64url, 43 characters). Because they
 * carry 256 bits of entropy, a single SHA-256 is as good as a slow password
 * hash for storage, and client authentication sits on the token hot path
 * (argon2 per request would cap throughput at a few dozen per second).
 * Stored form: "sha256$" + hex(SHA-256("refuge-client-secret-v1" || 0x00 || secret)).
 *
 * Opaque access tokens, refresh tokens and authorization codes are stored as
 * crypto_token_hash(token) = hex(SHA-256(token)) (plain, no prefix), so a
 * leaked table does not leak usable tokens.
 */
#ifndef REFUGE_CRYPTO_SECRET_H
#define REFUGE_CRYPTO_SECRET_H

#include <stdbool.h>
#include <stddef.h>

#define CRYPTO_SECRET_BYTES 32                 /* entropy of a generated secret */
#define CRYPTO_SECRET_LEN 43                   /* its base64url length */
#define CRYPTO_SECRET_BUFSZ (CRYPTO_SECRET_LEN + 1)
#define CRYPTO_SECRET_HASH_LEN (7 + 64)        /* "sha256$" + 64 hex digits */
#define CRYPTO_SECRET_HASH_BUFSZ (CRYPTO_SECRET_HASH_LEN + 1)
#define CRYPTO_TOKEN_HASH_LEN 64               /* hex SHA-256 */
#define CRYPTO_TOKEN_HASH_BUFSZ (CRYPTO_TOKEN_HASH_LEN + 1)
#define CRYPTO_SECRET_MAX_INPUT 1024           /* longer presented secrets never verify */

/* Writes a new random secret (43 base64url characters + NUL) into out. */
void crypto_secret_generate(char out[CRYPTO_SECRET_BUFSZ]);

/* Writes the storage form "sha256$<64 hex>" + NUL of the n-byte secret into out. */
void crypto_secret_hash(const char *secret, size_t n, char out[CRYPTO_SECRET_HASH_BUFSZ]);

/*
 * True when the n-byte `secret` (as presented by a client) matches `stored`
 * (a NUL-terminated crypto_secret_hash output). The digest comparison is
 * constant-time. An unknown or malformed stored form, or a secret longer than
 * CRYPTO_SECRET_MAX_INPUT, never matches.
 */
bool crypto_secret_verify(const char *secret, size_t n, const char *stored);

/* Writes hex(SHA-256(token)) + NUL (65 bytes) into out. */
void crypto_token_hash(const char *token, size_t n, char out[CRYPTO_TOKEN_HASH_BUFSZ]);

/* Zeroes n bytes in a way the compiler cannot elide. NULL is fine when n == 0. */
void crypto_wipe(void *p, size_t n);
/* crypto_wipe(p, n) then free(p). p may be NULL. */
void crypto_wipe_free(void *p, size_t n);
/* For NUL-terminated secret strings: crypto_wipe_free(s, strlen(s)). s may be NULL. */
void crypto_wipe_free_str(char *s);

#endif
