/*
 * seal — AES-256-GCM sealing of secrets at rest with the master key.
 * Format table in seal.h: version || nonce || ciphertext || tag.
 */
#include "crypto/seal.h"

#include <errno.h>
#include <openssl/evp.h>
#include <string.h>

#include "core/rand.h"
#include "core/xmalloc.h"
#include "crypto/secret.h"

#define HDR_LEN (1 + CRYPTO_SEAL_NONCE_LEN)

/* GCM's length arguments are ints: feed large buffers in slices. */
#define SLICE (1 << 30)

static int gcm_update(EVP_CIPHER_CTX *c, uint8_t *out, const uint8_t *in, size_t n)
{
    while (n > 0) {
        int chunk = n > SLICE ? SLICE : (int)n, outl = 0;
        if (EVP_CipherUpdate(c, out, &outl, in, chunk) != 1 || outl != chunk)
            return -1;
        if (out)
            out += chunk;
        in += chunk;
        n -= (size_t)chunk;
    }
    return 0;
}

/* Sets key and nonce, then feeds version byte || caller AAD as AAD. */
static int gcm_start(EVP_CIPHER_CTX *c, int enc, const uint8_t *key32, const uint8_t *hdr,
                     const void *aad, size_t aadlen)
{
    if (EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, CRYPTO_SEAL_NONCE_LEN, NULL) != 1 ||
        EVP_CipherInit_ex(c, NULL, NULL, key32, hdr + 1, enc) != 1)
        return -1;
    if (gcm_update(c, NULL, hdr, 1) < 0)
        return -1;
    if (aadlen && gcm_update(c, NULL, aad, aadlen) < 0)
        return -1;
    return 0;
}

int crypto_seal(const uint8_t key32[32], const void *aad, size_t aadlen,
                const void *plain, size_t n, uint8_t **out, size_t *outlen)
{
    EVP_CIPHER_CTX *c = NULL;
    uint8_t *buf = NULL;
    int outl = 0, rc = -EIO;

    *out = NULL;
    *outlen = 0;
    if (n > CRYPTO_SEAL_MAX_PLAIN)
        return -E2BIG;

    buf = xmalloc(n + CRYPTO_SEAL_OVERHEAD);
    buf[0] = CRYPTO_SEAL_VERSION;
    rand_bytes(buf + 1, CRYPTO_SEAL_NONCE_LEN);

    c = EVP_CIPHER_CTX_new();
    if (!c || gcm_start(c, 1, key32, buf, aad, aadlen) < 0)
        goto out;
    if (n && gcm_update(c, buf + HDR_LEN, plain, n) < 0)
        goto out;
    if (EVP_EncryptFinal_ex(c, buf + HDR_LEN + n, &outl) != 1 || outl != 0)
        goto out;
    if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, CRYPTO_SEAL_TAG_LEN,
                            buf + HDR_LEN + n) != 1)
        goto out;

    *out = buf;
    *outlen = n + CRYPTO_SEAL_OVERHEAD;
    buf = NULL;
    rc = 0;
out:
    EVP_CIPHER_CTX_free(c);
    crypto_wipe_free(buf, buf ? n + CRYPTO_SEAL_OVERHEAD : 0);
    return rc;
}

int crypto_open(const uint8_t key32[32], const void *aad, size_t aadlen,
                const void *sealed, size_t n, uint8_t **out, size_t *outlen)
{
    const uint8_t *in = sealed;
    EVP_CIPHER_CTX *c = NULL;
    uint8_t *plain = NULL;
    uint8_t tag[CRYPTO_SEAL_TAG_LEN];
    size_t plen = 0;
    int outl = 0, rc = -EIO;

    *out = NULL;
    *outlen = 0;
    if (n < CRYPTO_SEAL_OVERHEAD || in[0] != CRYPTO_SEAL_VERSION)
        return -EINVAL;
    plen = n - CRYPTO_SEAL_OVERHEAD;
    if (plen > CRYPTO_SEAL_MAX_PLAIN)
        return -E2BIG;
    memcpy(tag, in + HDR_LEN + plen, sizeof tag);

    plain = xmalloc(plen + 1);
    c = EVP_CIPHER_CTX_new();
    if (!c || gcm_start(c, 0, key32, in, aad, aadlen) < 0)
        goto out;
    if (plen && gcm_update(c, plain, in + HDR_LEN, plen) < 0)
        goto out;
    if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, sizeof tag, tag) != 1)
        goto out;
    if (EVP_DecryptFinal_ex(c, plain + plen, &outl) != 1) {
        rc = -EBADMSG;
        goto out;
    }
    plain[plen] = '\0';
    *out = plain;
    *outlen = plen;
    plain = NULL;
    rc = 0;
out:
    EVP_CIPHER_CTX_free(c);
    crypto_wipe_free(plain, plain ? plen + 1 : 0);
    return rc;
}
