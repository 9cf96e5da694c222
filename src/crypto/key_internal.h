/*
 * key_internal — what jws.c needs from keys.c. Not for other layers: they
 * sign and verify through crypto/jws.h.
 */
#ifndef REFUGE_CRYPTO_KEY_INTERNAL_H
#define REFUGE_CRYPTO_KEY_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "crypto/keys.h"

#define CRYPTO_SIG_MAX 512      /* RSA-4096; ES256 and EdDSA are 64 */

/*
 * Signs n bytes with k into sig (capacity CRYPTO_SIG_MAX) in JOSE form
 * (ES256: raw R || S). 0, -EINVAL (no private half) or -EIO.
 */
int crypto_key_sign_raw(const struct crypto_key *k, const void *data, size_t n,
                        uint8_t *sig, size_t *siglen);

/* Verifies a JOSE-form signature. 0, -EBADMSG (bad signature, wrong length) or -EIO. */
int crypto_key_verify_raw(const struct crypto_key *k, const void *data, size_t n,
                          const uint8_t *sig, size_t siglen);

#endif
