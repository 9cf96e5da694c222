/*
 * password — user password hashing with argon2id (libsodium).
 *
 * Hashes are PHC strings as libsodium writes them:
 *   $argon2id$v=19$m=19456,t=2,p=1$<salt b64>$<hash b64>
 * Defaults follow OWASP's argon2id minimum (m = 19 MiB, t = 2, p = 1).
 * libsodium fixes parallelism at p = 1, so only m and t are parameters.
 * Each hash costs ~20 MiB of memory and tens of milliseconds: this is for
 * interactive logins, never for per-request client authentication (see
 * crypto/secret.h). All functions are thread-safe; libsodium is initialised
 * on first use (pthread_once).
 */
#ifndef REFUGE_CRYPTO_PASSWORD_H
#define REFUGE_CRYPTO_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRYPTO_PWHASH_DEFAULT_M_KIB 19456u     /* 19 MiB */
#define CRYPTO_PWHASH_DEFAULT_T 2u
#define CRYPTO_PWHASH_MIN_M_KIB 8u             /* libsodium's floor (8 KiB); tests use small m */
#define CRYPTO_PWHASH_MAX_M_KIB (4u * 1024 * 1024)  /* 4 GiB */
#define CRYPTO_PWHASH_BUFSZ 128                /* crypto_pwhash_STRBYTES */
#define CRYPTO_PASSWORD_MAX 1024               /* longer passwords are refused (-E2BIG) */

struct crypto_pwhash_params {
    uint32_t m_kib;     /* memory in KiB, PHC "m" */
    uint32_t t;         /* iterations, PHC "t" (>= 1) */
};

/* Defaults: { CRYPTO_PWHASH_DEFAULT_M_KIB, CRYPTO_PWHASH_DEFAULT_T }. */
struct crypto_pwhash_params crypto_pwhash_defaults(void);

/*
 * Hashes n bytes of `password` with fresh random salt into out (a
 * NUL-terminated PHC string). params NULL means defaults.
 * Returns 0, -E2BIG (n > CRYPTO_PASSWORD_MAX), -EINVAL (params out of range)
 * or -ENOMEM (libsodium could not allocate the m KiB work area).
 */
int crypto_password_hash(const char *password, size_t n,
                         const struct crypto_pwhash_params *params,
                         char out[CRYPTO_PWHASH_BUFSZ]);

/*
 * Checks n bytes of `password` against the NUL-terminated PHC string
 * `stored`. Returns 0 on match, -EACCES on mismatch, -EINVAL when `stored` is
 * not an argon2 PHC string, -E2BIG when n > CRYPTO_PASSWORD_MAX.
 */
int crypto_password_verify(const char *stored, const char *password, size_t n);

/*
 * Spends the same time as a verify against a default-parameter hash and
 * returns -EACCES: call it when the user does not exist so that response
 * time does not reveal which user names are valid.
 */
int crypto_password_verify_dummy(const char *password, size_t n);

/*
 * True when `stored` was made with parameters other than `params` (NULL =
 * defaults) or with another algorithm, i.e. it should be recomputed after
 * the next successful login. A malformed string also answers true.
 */
bool crypto_password_needs_rehash(const char *stored, const struct crypto_pwhash_params *params);

#endif
