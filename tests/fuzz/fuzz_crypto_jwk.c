/*
 * fuzz_crypto_jwk — arbitrary bytes into the JWK importer and the RFC 7638
 * thumbprint (sealed keys at rest and any imported public key go through
 * them). A key that imports must export a public JWK that imports again
 * with the same kid and alg.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char tp[CRYPTO_THUMBPRINT_LEN + 1];
    struct crypto_key *k, *k2;
    char *pub;

    (void)crypto_jwk_thumbprint((const char *)data, size, tp);
    if (crypto_key_from_jwk((const char *)data, size, &k) != 0)
        return 0;
    pub = crypto_key_public_jwk(k);
    if (crypto_key_from_jwk(pub, strlen(pub), &k2) != 0 ||
        strcmp(crypto_key_kid(k), crypto_key_kid(k2)) != 0 ||
        crypto_key_alg(k) != crypto_key_alg(k2))
        abort();
    free(pub);
    crypto_key_free(k2);
    crypto_key_free(k);
    return 0;
}
