/*
 * buf — a growable byte buffer with a hard limit set at init (STYLE.md §6,
 * like curl's dynbuf). Appending past the limit fails with -E2BIG and leaves
 * the buffer unchanged; it never grows without bound. data is always
 * NUL-terminated after any successful call (the NUL is not counted in len).
 */
#ifndef REFUGE_CORE_BUF_H
#define REFUGE_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include "core/str.h"

struct buf {
    char *data;     /* owned; NULL until the first append */
    size_t len;
    size_t cap;
    size_t limit;   /* maximum len; appends beyond it fail */
};

void buf_init(struct buf *b, size_t limit);
int buf_append(struct buf *b, const void *p, size_t n);        /* 0 or -E2BIG */
int buf_puts(struct buf *b, const char *s);
int buf_putc(struct buf *b, char c);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap);
/* Appends s as the inside of a JSON string (escapes quotes, controls, \). */
int buf_json_escape(struct buf *b, const char *s, size_t n);
const char *buf_cstr(struct buf *b);   /* "" when empty; never NULL */
struct str buf_str(const struct buf *b);
void buf_reset(struct buf *b);         /* len = 0, keeps memory */
void buf_free(struct buf *b);          /* releases memory, keeps limit */
char *buf_steal(struct buf *b);        /* caller frees; buffer becomes empty */

#endif
