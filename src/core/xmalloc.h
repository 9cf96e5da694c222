/*
 * xmalloc — the one out-of-memory policy (STYLE.md §5).
 *
 * Every allocation in Refuge goes through these wrappers. On failure they log
 * one line to stderr and abort(); callers never check for NULL. Memory from
 * these functions is released with free().
 */
#ifndef REFUGE_CORE_XMALLOC_H
#define REFUGE_CORE_XMALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);      /* always NUL-terminates */
void *xmemdup(const void *p, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Called on allocation failure; never returns. */
_Noreturn void xoom(size_t n);

#endif
