/*
 * arena — a per-request bump allocator (like h2o's req->pool).
 *
 * Everything a request handler allocates from its arena is released at once
 * when the request ends; handlers need not free anything they got here.
 */
#ifndef REFUGE_CORE_ARENA_H
#define REFUGE_CORE_ARENA_H

#include <stddef.h>
#include "core/str.h"

struct arena_block;
struct arena {
    struct arena_block *head;
    size_t total;          /* bytes handed out, for limits and tests */
};

void arena_init(struct arena *a);
void *arena_alloc(struct arena *a, size_t n);     /* 16-byte aligned, zeroed */
char *arena_strndup(struct arena *a, const char *s, size_t n);
char *arena_strdup(struct arena *a, const char *s);
char *arena_sprintf(struct arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *arena_str(struct arena *a, struct str s);   /* NUL-terminated copy */
void arena_free(struct arena *a);                 /* releases every block */

#endif
