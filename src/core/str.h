/*
 * str — string views: a pointer and a length (STYLE.md §7).
 *
 * A struct str never owns its bytes and is never assumed NUL-terminated.
 * Parsed network input travels as struct str until it is copied.
 */
#ifndef REFUGE_CORE_STR_H
#define REFUGE_CORE_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct str {
    const char *p;
    size_t len;
};

#define STR_LIT(lit) ((struct str){ (lit), sizeof(lit) - 1 })
#define STR_NULL ((struct str){ NULL, 0 })
#define STR_FMT(s) (int)(s).len, (s).p /* printf("%.*s", STR_FMT(s)) */

struct str str_from_cstr(const char *s);           /* NULL -> STR_NULL */
bool str_eq(struct str a, struct str b);
bool str_eq_cstr(struct str a, const char *b);
bool str_case_eq(struct str a, struct str b);      /* ASCII case-insensitive */
bool str_case_eq_cstr(struct str a, const char *b);
bool str_has_prefix(struct str s, const char *prefix);
struct str str_trim(struct str s);                 /* ASCII whitespace */
/* Splits at the first `sep`: *head gets bytes before it, *tail after it.
 * Returns false (head = s, tail = STR_NULL) when sep does not occur. */
bool str_split(struct str s, char sep, struct str *head, struct str *tail);
/* Parses a decimal integer filling the whole view, within [min, max]. 0 or -EINVAL/-ERANGE. */
int str_to_i64(struct str s, int64_t min, int64_t max, int64_t *out);
char *str_dup(struct str s);                       /* xmalloc'd, NUL-terminated; caller frees */
/* Constant-time equality of two byte strings (lengths may leak, contents do not). */
bool str_ct_eq(const void *a, size_t alen, const void *b, size_t blen);

#endif
