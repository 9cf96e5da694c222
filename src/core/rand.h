/* rand — cryptographically secure random bytes from getrandom(2). Failure aborts (one place). */
#ifndef REFUGE_CORE_RAND_H
#define REFUGE_CORE_RAND_H

#include <stddef.h>
#include <stdint.h>

void rand_bytes(void *out, size_t n);
uint64_t rand_u64(void);
uint64_t rand_range(uint64_t n);               /* uniform in [0, n), n > 0 */
/* nbytes random bytes rendered as base64url into out (capacity B64URL_ENCLEN(nbytes)). */
void rand_token(char *out, size_t nbytes);

#endif
