/*
 * buf — a growable byte buffer with a hard limit fixed at init, so that no
 * input from the network can make it grow without bound (STYLE.md §6, curl's
 * dynbuf). Every operation is all-or-nothing: when an append would pass the
 * limit it returns -E2BIG and the buffer is exactly as it was before.
 *
 * Invariants once data != NULL: len <= limit, len < cap, data[len] == '\0'.
 * Capacity grows geometrically but never beyond limit + 1 (the NUL).
 */
#include "core/buf.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xmalloc.h"

#define BUF_MIN_CAP 64

void buf_init(struct buf *b, size_t limit)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->limit = limit < SIZE_MAX ? limit : SIZE_MAX - 1;
}

/* Makes room for `extra` more bytes plus the NUL. 0 or -E2BIG (nothing changed). */
static int reserve(struct buf *b, size_t extra)
{
    size_t need, cap, max_cap;

    if (extra > b->limit - b->len)
        return -E2BIG;
    need = b->len + extra + 1;
    if (b->data && need <= b->cap)
        return 0;
    max_cap = b->limit + 1;
    cap = b->cap ? b->cap : BUF_MIN_CAP;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
    if (cap > max_cap)
        cap = max_cap;
    assert(cap >= need);
    b->data = xrealloc(b->data, cap);
    if (b->cap == 0)
        b->data[0] = '\0';
    b->cap = cap;
    return 0;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
    int rc = reserve(b, n);

    if (rc < 0)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int buf_puts(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

int buf_putc(struct buf *b, char c)
{
    return buf_append(b, &c, 1);
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

int buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    int n;
    int rc;

    /* First try in the space we already have; most calls fit. */
    va_copy(ap2, ap);
    if (b->data && b->cap > b->len) {
        n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap2);
        va_end(ap2);
        if (n < 0) {
            b->data[b->len] = '\0';
            return -EINVAL;
        }
        if ((size_t)n < b->cap - b->len && (size_t)n <= b->limit - b->len) {
            b->len += (size_t)n;
            return 0;
        }
        b->data[b->len] = '\0';     /* undo the partial write */
    } else {
        n = vsnprintf(NULL, 0, fmt, ap2);
        va_end(ap2);
        if (n < 0)
            return -EINVAL;
    }
    rc = reserve(b, (size_t)n);
    if (rc < 0)
        return rc;
    va_copy(ap2, ap);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    b->len += (size_t)n;
    return 0;
}

/*
 * Length of the valid UTF-8 sequence starting at p (at most n bytes), or 0
 * when the bytes there are not well-formed UTF-8 (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF).
 */
static size_t utf8_seq_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    size_t len, i;
    unsigned char lo = 0x80, hi = 0xBF;

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if (len > n)
        return 0;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    return len;
}

/*
 * Escapes quotes, backslashes and control characters. Bytes that are not
 * valid UTF-8 become U+FFFD so the output is always valid JSON text.
 */
int buf_json_escape(struct buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t saved = b->len;
    size_t i = 0;
    int rc = 0;

    while (i < n) {
        size_t run = i;

        /* copy the longest run that needs no escaping in one append */
        while (run < n && p[run] >= 0x20 && p[run] != '"' && p[run] != '\\') {
            size_t seq = utf8_seq_len(p + run, n - run);
            if (seq == 0)
                break;
            run += seq;
        }
        if (run > i) {
            rc = buf_append(b, p + i, run - i);
            if (rc < 0)
                goto out;
            i = run;
            continue;
        }
        switch (p[i]) {
        case '"': rc = buf_append(b, "\\\"", 2); break;
        case '\\': rc = buf_append(b, "\\\\", 2); break;
        case '\n': rc = buf_append(b, "\\n", 2); break;
        case '\r': rc = buf_append(b, "\\r", 2); break;
        case '\t': rc = buf_append(b, "\\t", 2); break;
        case '\b': rc = buf_append(b, "\\b", 2); break;
        case '\f': rc = buf_append(b, "\\f", 2); break;
        default:
            if (p[i] < 0x20) {
                char esc[6] = { '\\', 'u', '0', '0', hex[p[i] >> 4], hex[p[i] & 15] };
                rc = buf_append(b, esc, sizeof esc);
            } else {
                rc = buf_append(b, "\\ufffd", 6);   /* invalid UTF-8 byte */
            }
            break;
        }
        if (rc < 0)
            goto out;
        i++;
    }
out:
    if (rc < 0 && b->data) {
        b->len = saved;
        b->data[saved] = '\0';
    }
    return rc;
}

const char *buf_cstr(struct buf *b)
{
    return b->data ? b->data : "";
}

struct str buf_str(const struct buf *b)
{
    return (struct str){ b->data ? b->data : "", b->len };
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void buf_free(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

char *buf_steal(struct buf *b)
{
    char *p = b->data ? b->data : xstrdup("");

    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}
