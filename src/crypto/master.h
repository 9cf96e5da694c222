/*
 * master — the node's 32-byte master key, the root of key encryption at rest
 * (crypto/seal.h seals signing keys and other secrets with it).
 *
 * On-disk format: exactly 32 raw random bytes, nothing else, mode 0600.
 * The file is created atomically on first start (temporary file written with
 * O_EXCL, fsync'd, then link(2)ed into place, parent directory fsync'd), so a
 * crash never leaves a short key file behind. Losing this file means losing
 * every sealed secret: operators back it up separately from the data dir.
 */
#ifndef REFUGE_CRYPTO_MASTER_H
#define REFUGE_CRYPTO_MASTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRYPTO_MASTER_KEY_LEN 32

/*
 * Loads the master key from `path` into out[32], creating the file with 32
 * bytes from getrandom(2) when it does not exist. `created` (may be NULL) is
 * set to true when this call created the file.
 *
 * Refuses (returning a negative errno and a one-line message in err, which
 * names the path) a file that is not a regular file, that has any group or
 * other permission bit (-EPERM: "chmod 600 it"), or whose size is not 32
 * bytes (-EINVAL). A symlink at `path` is refused (O_NOFOLLOW).
 * On failure `out` is zeroed. The caller should wipe `out` (crypto_wipe)
 * when done with it.
 */
int crypto_master_load_or_create(const char *path, uint8_t out[CRYPTO_MASTER_KEY_LEN],
                                 bool *created, char *err, size_t errlen);

#endif
