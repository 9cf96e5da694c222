/*
 * password — argon2id password hashes in PHC format via libsodium
 * (see password.h for parameters and why p is fixed at 1).
 */
#include "crypto/password.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/secret.h"

static pthread_once_t sodium_once = PTHREAD_ONCE_INIT;

static void sodium_setup(void)
{
    if (sodium_init() < 0) {
        fputs("refuge: libsodium initialisation failed\n", stderr);
        abort();
    }
}

static void ensure_sodium(void)
{
    pthread_once(&sodium_once, sodium_setup);
}

struct crypto_pwhash_params crypto_pwhash_defaults(void)
{
    return (struct crypto_pwhash_params){ CRYPTO_PWHASH_DEFAULT_M_KIB, CRYPTO_PWHASH_DEFAULT_T };
}

static int check_params(const struct crypto_pwhash_params *p)
{
    if (p->t < crypto_pwhash_argon2id_OPSLIMIT_MIN)
        return -EINVAL;
    if (p->m_kib < CRYPTO_PWHASH_MIN_M_KIB || p->m_kib > CRYPTO_PWHASH_MAX_M_KIB)
        return -EINVAL;
    if ((size_t)p->m_kib * 1024 < crypto_pwhash_argon2id_MEMLIMIT_MIN)
        return -EINVAL;
    return 0;
}

static bool is_argon2(const char *stored)
{
    return stored && (strncmp(stored, crypto_pwhash_argon2id_STRPREFIX,
                              sizeof crypto_pwhash_argon2id_STRPREFIX - 1) == 0 ||
                      strncmp(stored, crypto_pwhash_argon2i_STRPREFIX,
                              sizeof crypto_pwhash_argon2i_STRPREFIX - 1) == 0) &&
           strlen(stored) < crypto_pwhash_STRBYTES;
}

int crypto_password_hash(const char *password, size_t n,
                         const struct crypto_pwhash_params *params,
                         char out[CRYPTO_PWHASH_BUFSZ])
{
    struct crypto_pwhash_params p = params ? *params : crypto_pwhash_defaults();
    int rc;

    out[0] = '\0';
    if (n > CRYPTO_PASSWORD_MAX)
        return -E2BIG;
    rc = check_params(&p);
    if (rc < 0)
        return rc;
    ensure_sodium();
    if (crypto_pwhash_str_alg(out, password, n, p.t, (size_t)p.m_kib * 1024,
                              crypto_pwhash_ALG_ARGON2ID13) != 0) {
        out[0] = '\0';
        return -ENOMEM;     /* libsodium's only runtime failure: the work area */
    }
    return 0;
}

int crypto_password_verify(const char *stored, const char *password, size_t n)
{
    if (n > CRYPTO_PASSWORD_MAX)
        return -E2BIG;
    if (!is_argon2(stored))
        return -EINVAL;
    ensure_sodium();
    return crypto_pwhash_str_verify(stored, password, n) == 0 ? 0 : -EACCES;
}

/* ---- constant-time answer for unknown users ------------------------------ */

static char dummy_hash[CRYPTO_PWHASH_BUFSZ];
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;

static void dummy_setup(void)
{
    char pw[CRYPTO_SECRET_BUFSZ];
    crypto_secret_generate(pw);
    if (crypto_password_hash(pw, strlen(pw), NULL, dummy_hash) != 0)
        dummy_hash[0] = '\0';
    crypto_wipe(pw, sizeof pw);
}

int crypto_password_verify_dummy(const char *password, size_t n)
{
    pthread_once(&dummy_once, dummy_setup);
    if (dummy_hash[0] && n <= CRYPTO_PASSWORD_MAX)
        (void)crypto_password_verify(dummy_hash, password, n);
    return -EACCES;
}

bool crypto_password_needs_rehash(const char *stored, const struct crypto_pwhash_params *params)
{
    struct crypto_pwhash_params p = params ? *params : crypto_pwhash_defaults();

    if (check_params(&p) < 0 || !stored ||
        strncmp(stored, crypto_pwhash_argon2id_STRPREFIX,
                sizeof crypto_pwhash_argon2id_STRPREFIX - 1) != 0 ||
        strlen(stored) >= crypto_pwhash_STRBYTES)
        return true;
    ensure_sodium();
    return crypto_pwhash_str_needs_rehash(stored, p.t, (size_t)p.m_kib * 1024) != 0;
}
