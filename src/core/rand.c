/*
 * rand — the only source of randomness for secrets, tokens and ids:
 * getrandom(2) from the kernel CSPRNG. A failure here means the process
 * cannot make secure tokens at all, so it aborts with a message (one place)
 * instead of handing callers an error they might ignore.
 */
#include "core/rand.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/base64.h"

static _Noreturn void rand_fail(int err)
{
    fprintf(stderr, "refuge: getrandom failed: %s\n", strerror(err));
    abort();
}

static void fill_from_kernel(void *out, size_t n)
{
    unsigned char *p = out;

    while (n > 0) {
        ssize_t got = getrandom(p, n, 0);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            rand_fail(errno);
        }
        if (got == 0)
            rand_fail(EIO);
        p += got;
        n -= (size_t)got;
    }
}

/*
 * Small requests (ids, nonces, tokens: the token hot path asks for 16-32
 * bytes several times per request) are served from a per-thread buffer
 * refilled from the kernel 512 bytes at a time: one syscall per ~20 tokens
 * instead of several per token. Bytes are wiped from the buffer as they are
 * handed out, so no byte is ever returned twice. refuged never forks, so
 * two processes can never share a buffer.
 */
#define RAND_BUF 512
static _Thread_local unsigned char tl_buf[RAND_BUF];
static _Thread_local size_t tl_avail;

void rand_bytes(void *out, size_t n)
{
    if (n > RAND_BUF / 4) {
        fill_from_kernel(out, n);
        return;
    }
    if (tl_avail < n) {
        fill_from_kernel(tl_buf, RAND_BUF);
        tl_avail = RAND_BUF;
    }
    unsigned char *src = tl_buf + (RAND_BUF - tl_avail);
    memcpy(out, src, n);
    memset(src, 0, n);
    tl_avail -= n;
}

uint64_t rand_u64(void)
{
    uint64_t v;

    rand_bytes(&v, sizeof v);
    return v;
}

/*
 * Rejection sampling: values below 2^64 mod n would make the low residues
 * more likely, so they are drawn again (as OpenBSD's arc4random_uniform).
 */
uint64_t rand_range(uint64_t n)
{
    uint64_t min, r;

    assert(n > 0);
    if (n <= 1)
        return 0;
    min = -n % n;           /* 2^64 mod n */
    do
        r = rand_u64();
    while (r < min);
    return r % n;
}

void rand_token(char *out, size_t nbytes)
{
    /* Encode in 48-byte chunks: a multiple of 3, so the pieces concatenate
     * into exactly the encoding of the whole. */
    unsigned char chunk[48];
    size_t o = 0;

    out[0] = '\0';
    while (nbytes > 0) {
        size_t k = nbytes < sizeof chunk ? nbytes : sizeof chunk;
        rand_bytes(chunk, k);
        o += b64url_encode(chunk, k, out + o);
        nbytes -= k;
    }
    explicit_bzero(chunk, sizeof chunk);
}
