/*
 * secret — client secrets and token hashes (see secret.h for why a single
 * SHA-256 is the right storage hash here), and memory wiping.
 */
#include "crypto/secret.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64.h"
#include "core/rand.h"

#define SECRET_DOMAIN "refuge-client-secret-v1"   /* hashed with its NUL as separator */
#define HASH_PREFIX "sha256$"

static void hex32(const unsigned char d[32], char out[65])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[64] = '\0';
}

/* ---- memory ------------------------------------------------------------- */

void crypto_wipe(void *p, size_t n)
{
    if (p && n)
        OPENSSL_cleanse(p, n);
}

void crypto_wipe_free(void *p, size_t n)
{
    crypto_wipe(p, n);
    free(p);
}

void crypto_wipe_free_str(char *s)
{
    if (s)
        crypto_wipe_free(s, strlen(s));
}

/* ---- client secrets ----------------------------------------------------- */

void crypto_secret_generate(char out[CRYPTO_SECRET_BUFSZ])
{
    unsigned char raw[CRYPTO_SECRET_BYTES];
    rand_bytes(raw, sizeof raw);
    b64url_encode(raw, sizeof raw, out);
    crypto_wipe(raw, sizeof raw);
}

/* SHA-256(domain || NUL || secret); n <= CRYPTO_SECRET_MAX_INPUT. */
static void secret_digest(const char *secret, size_t n, unsigned char d[32])
{
    unsigned char in[sizeof SECRET_DOMAIN + CRYPTO_SECRET_MAX_INPUT];
    memcpy(in, SECRET_DOMAIN, sizeof SECRET_DOMAIN);
    if (n)
        memcpy(in + sizeof SECRET_DOMAIN, secret, n);
    SHA256(in, sizeof SECRET_DOMAIN + n, d);
    crypto_wipe(in, sizeof SECRET_DOMAIN + n);
}

void crypto_secret_hash(const char *secret, size_t n, char out[CRYPTO_SECRET_HASH_BUFSZ])
{
    unsigned char d[32];
    if (n > CRYPTO_SECRET_MAX_INPUT) {
        /* Never produced for our own secrets; hash the long input in two
         * steps so the function stays total. It can never verify anyway. */
        SHA256((const unsigned char *)secret, n, d);
        secret_digest((const char *)d, sizeof d, d);
    } else {
        secret_digest(secret, n, d);
    }
    memcpy(out, HASH_PREFIX, sizeof HASH_PREFIX - 1);
    hex32(d, out + sizeof HASH_PREFIX - 1);
}

bool crypto_secret_verify(const char *secret, size_t n, const char *stored)
{
    char want[CRYPTO_SECRET_HASH_BUFSZ];
    bool ok;

    if (!stored || strlen(stored) != CRYPTO_SECRET_HASH_LEN ||
        memcmp(stored, HASH_PREFIX, sizeof HASH_PREFIX - 1) != 0)
        return false;
    if (n > CRYPTO_SECRET_MAX_INPUT)
        return false;
    crypto_secret_hash(secret, n, want);
    ok = CRYPTO_memcmp(want, stored, CRYPTO_SECRET_HASH_LEN) == 0;
    crypto_wipe(want, sizeof want);
    return ok;
}

/* ---- token hashes ------------------------------------------------------- */

void crypto_token_hash(const char *token, size_t n, char out[CRYPTO_TOKEN_HASH_BUFSZ])
{
    unsigned char d[32];
    SHA256((const unsigned char *)token, n, d);
    hex32(d, out);
}
