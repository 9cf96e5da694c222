/*
 * arena — a bump allocator for everything one request allocates (h2o's
 * req->pool). Memory comes in blocks: the first is 4 KiB, later ones double
 * up to 64 KiB, and an allocation larger than a quarter of the current block
 * size gets a block of its own so it does not waste the rest of a small one.
 * All memory is zeroed and 16-byte aligned; arena_free releases it all.
 */
#include "core/arena.h"

#include <stdalign.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xmalloc.h"

#define ARENA_ALIGN 16
#define ARENA_FIRST_BLOCK 4096
#define ARENA_MAX_BLOCK (64 * 1024)

struct arena_block {
    struct arena_block *next;
    size_t size;        /* usable bytes in data[] */
    size_t used;
    alignas(ARENA_ALIGN) unsigned char data[];
};

void arena_init(struct arena *a)
{
    a->head = NULL;
    a->total = 0;
}

static struct arena_block *block_new(size_t size)
{
    struct arena_block *blk;

    if (size > SIZE_MAX - sizeof *blk)
        xoom(size);
    blk = xcalloc(1, sizeof *blk + size);   /* zeroed once; bump never reuses */
    blk->size = size;
    blk->used = 0;
    return blk;
}

void *arena_alloc(struct arena *a, size_t n)
{
    struct arena_block *blk = a->head;
    size_t rounded;
    void *p;

    if (n > SIZE_MAX - ARENA_ALIGN)
        xoom(n);
    rounded = n ? (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1) : ARENA_ALIGN;

    if (!blk || blk->size - blk->used < rounded) {
        size_t next = blk ? blk->size * 2 : ARENA_FIRST_BLOCK;

        if (next > ARENA_MAX_BLOCK)
            next = ARENA_MAX_BLOCK;
        if (rounded > next / 4) {
            /* A big allocation: its own block, placed behind the current
             * head so the head's free space stays available. */
            struct arena_block *big = block_new(rounded);
            big->used = rounded;
            if (blk) {
                big->next = blk->next;
                blk->next = big;
            } else {
                big->next = NULL;
                a->head = big;
            }
            a->total += n;
            return big->data;
        }
        blk = block_new(next);
        blk->next = a->head;
        a->head = blk;
    }
    p = blk->data + blk->used;
    blk->used += rounded;
    a->total += n;
    return p;
}

char *arena_strndup(struct arena *a, const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *d = arena_alloc(a, len + 1);

    memcpy(d, s, len);     /* arena memory is zeroed: d[len] is already NUL */
    return d;
}

char *arena_strdup(struct arena *a, const char *s)
{
    size_t len = strlen(s);
    char *d = arena_alloc(a, len + 1);

    memcpy(d, s, len);
    return d;
}

char *arena_sprintf(struct arena *a, const char *fmt, ...)
{
    va_list ap;
    int len;
    char *d;

    va_start(ap, fmt);
    len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (len < 0)
        abort();        /* invalid format string: a bug */
    d = arena_alloc(a, (size_t)len + 1);
    va_start(ap, fmt);
    vsnprintf(d, (size_t)len + 1, fmt, ap);
    va_end(ap);
    return d;
}

char *arena_str(struct arena *a, struct str s)
{
    char *d = arena_alloc(a, s.len + 1);

    if (s.len)
        memcpy(d, s.p, s.len);
    return d;
}

void arena_free(struct arena *a)
{
    struct arena_block *blk = a->head;

    while (blk) {
        struct arena_block *next = blk->next;
        free(blk);
        blk = next;
    }
    a->head = NULL;
    a->total = 0;
}
