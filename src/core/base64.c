/*
 * base64 — RFC 4648 encodings. base64url without padding is what JOSE
 * (JWS, JWK, PKCE) uses; standard base64 with padding is what HTTP Basic
 * credentials use. The decoders are strict because their input comes from
 * the network and two spellings of one value must not both be accepted:
 * unknown characters, misplaced or missing padding, lengths that no encoder
 * produces (1 mod 4) and non-zero unused trailing bits are all -EINVAL.
 */
#include "core/base64.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

static const char alpha_std[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char alpha_url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* ------------------------------------------------------------ encoding */

static size_t encode(const char *alpha, bool pad, const void *in, size_t n, char *out)
{
    const unsigned char *p = in;
    size_t i, o = 0;

    for (i = 0; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = alpha[v >> 18];
        out[o++] = alpha[(v >> 12) & 63];
        out[o++] = alpha[(v >> 6) & 63];
        out[o++] = alpha[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = alpha[v >> 18];
        out[o++] = alpha[(v >> 12) & 63];
        if (pad) {
            out[o++] = '=';
            out[o++] = '=';
        }
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = alpha[v >> 18];
        out[o++] = alpha[(v >> 12) & 63];
        out[o++] = alpha[(v >> 6) & 63];
        if (pad)
            out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

size_t b64url_encode(const void *in, size_t n, char *out)
{
    return encode(alpha_url, false, in, n, out);
}

size_t b64_encode(const void *in, size_t n, char *out)
{
    return encode(alpha_std, true, in, n, out);
}

/* ------------------------------------------------------------ decoding */

/* The 6-bit value of c in the given alphabet (url selects -_ over +/), or -1. */
static int sextet(unsigned char c, bool url)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == (url ? '-' : '+'))
        return 62;
    if (c == (url ? '_' : '/'))
        return 63;
    return -1;
}

/*
 * Decodes n characters with no padding. n % 4 must not be 1, and the bits a
 * final partial group does not use must be zero.
 */
static int decode(const char *in, size_t n, bool url, unsigned char *out, size_t *outlen)
{
    size_t i, o = 0;
    uint32_t acc = 0;
    int bits = 0;

    if (n % 4 == 1)
        return -EINVAL;
    for (i = 0; i < n; i++) {
        int v = sextet((unsigned char)in[i], url);
        if (v < 0)
            return -EINVAL;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0)           /* leftover (2 or 4) bits must be zero */
        return -EINVAL;
    *outlen = o;
    return 0;
}

int b64url_decode(const char *in, size_t n, void *out, size_t *outlen)
{
    return decode(in, n, true, out, outlen);
}

int b64_decode(const char *in, size_t n, void *out, size_t *outlen)
{
    size_t pad = 0;

    /* Padded form only: a multiple of 4 with at most two '=' at the end. */
    if (n % 4 != 0)
        return -EINVAL;
    if (n >= 1 && in[n - 1] == '=')
        pad++;
    if (n >= 2 && in[n - 2] == '=')
        pad++;
    if (pad == 1 && n >= 2 && in[n - 2] == '=')
        return -EINVAL;
    /* any further '=' is caught by decode() as a bad character */
    return decode(in, n - pad, false, out, outlen);
}
