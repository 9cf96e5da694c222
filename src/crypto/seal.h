/*
 * seal — authenticated encryption of secrets at rest (signing keys' private
 * JWKs, anything else that must not sit in the store in the clear) with the
 * master key: AES-256-GCM through OpenSSL EVP.
 *
 * Sealed format (all lengths in bytes):
 *
 *   offset  size  field
 *   0       1     version (CRYPTO_SEAL_VERSION = 1)
 *   1       12    nonce, random per seal
 *   13      n     ciphertext (same length as the plaintext)
 *   13+n    16    GCM tag over version byte || ciphertext, with AAD
 *
 * The AAD binds a ciphertext to where it belongs (e.g. "tenant/kid"): a
 * sealed blob copied into another row does not open there. The version byte
 * is authenticated too (it is part of the GCM AAD, prefixed to the caller's).
 * Random 96-bit nonces are fine for the number of seals a node will ever make
 * (far below 2^32 per key).
 */
#ifndef REFUGE_CRYPTO_SEAL_H
#define REFUGE_CRYPTO_SEAL_H

#include <stddef.h>
#include <stdint.h>

#define CRYPTO_SEAL_VERSION 1
#define CRYPTO_SEAL_NONCE_LEN 12
#define CRYPTO_SEAL_TAG_LEN 16
#define CRYPTO_SEAL_OVERHEAD (1 + CRYPTO_SEAL_NONCE_LEN + CRYPTO_SEAL_TAG_LEN)   /* 29 */
#define CRYPTO_SEAL_MAX_PLAIN (64u * 1024 * 1024)

/*
 * Seals n bytes of `plain` under key32 with `aad` (aadlen may be 0, aad then
 * may be NULL). *out receives an xmalloc'd buffer of *outlen = n + 29 bytes;
 * the caller frees it with free(). Returns 0, -E2BIG (n > CRYPTO_SEAL_MAX_PLAIN)
 * or -EIO (OpenSSL failure; nothing is returned).
 */
int crypto_seal(const uint8_t key32[32], const void *aad, size_t aadlen,
                const void *plain, size_t n, uint8_t **out, size_t *outlen);

/*
 * Opens a sealed buffer produced by crypto_seal with the same key and AAD.
 * On success *out receives an xmalloc'd buffer of *outlen bytes followed by a
 * NUL (not counted), so a sealed string opens as a C string; it holds secret
 * material: release it with crypto_wipe_free(*out, *outlen) (crypto/secret.h).
 * Returns 0; -EINVAL when n is shorter than the overhead or the version byte
 * is unknown; -EBADMSG when authentication fails (any tampered byte, wrong
 * key, wrong AAD). On failure *out is NULL and no plaintext is released.
 */
int crypto_open(const uint8_t key32[32], const void *aad, size_t aadlen,
                const void *sealed, size_t n, uint8_t **out, size_t *outlen);

#endif
