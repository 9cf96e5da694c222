/*
 * base64 — RFC 4648 base64url (no padding, as JOSE uses it) and standard
 * base64 (for HTTP Basic credentials). Decoders are strict: any character
 * outside the alphabet, bad padding, or non-zero trailing bits is -EINVAL.
 */
#ifndef REFUGE_CORE_BASE64_H
#define REFUGE_CORE_BASE64_H

#include <stddef.h>

#define B64URL_ENCLEN(n) ((((n) + 2) / 3) * 4 + 1)  /* upper bound incl. NUL */
#define B64_DECLEN(n) (((n) / 4 + 1) * 3)           /* upper bound */

/* Writes NUL-terminated text to out; returns its length (without NUL). */
size_t b64url_encode(const void *in, size_t n, char *out);
/* Decodes into out (capacity B64_DECLEN(n)); 0 or -EINVAL. */
int b64url_decode(const char *in, size_t n, void *out, size_t *outlen);
size_t b64_encode(const void *in, size_t n, char *out);        /* with '=' padding */
int b64_decode(const char *in, size_t n, void *out, size_t *outlen);

#endif
