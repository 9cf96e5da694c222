/*
 * str — helpers over (pointer, length) string views. Nothing here assumes a
 * view is NUL-terminated, and nothing here allocates except str_dup.
 */
#include "core/str.h"

#include <errno.h>
#include <string.h>

#include "core/xmalloc.h"

struct str str_from_cstr(const char *s)
{
    if (!s)
        return STR_NULL;
    return (struct str){ s, strlen(s) };
}

bool str_eq(struct str a, struct str b)
{
    if (a.len != b.len)
        return false;
    return a.len == 0 || memcmp(a.p, b.p, a.len) == 0;
}

bool str_eq_cstr(struct str a, const char *b)
{
    return str_eq(a, str_from_cstr(b));
}

static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

bool str_case_eq(struct str a, struct str b)
{
    size_t i;

    if (a.len != b.len)
        return false;
    for (i = 0; i < a.len; i++)
        if (lower((unsigned char)a.p[i]) != lower((unsigned char)b.p[i]))
            return false;
    return true;
}

bool str_case_eq_cstr(struct str a, const char *b)
{
    return str_case_eq(a, str_from_cstr(b));
}

bool str_has_prefix(struct str s, const char *prefix)
{
    size_t n = strlen(prefix);
    return s.len >= n && (n == 0 || memcmp(s.p, prefix, n) == 0);
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

struct str str_trim(struct str s)
{
    while (s.len > 0 && is_space(s.p[0])) {
        s.p++;
        s.len--;
    }
    while (s.len > 0 && is_space(s.p[s.len - 1]))
        s.len--;
    return s;
}

bool str_split(struct str s, char sep, struct str *head, struct str *tail)
{
    const char *hit = s.len ? memchr(s.p, sep, s.len) : NULL;

    if (!hit) {
        *head = s;
        *tail = STR_NULL;
        return false;
    }
    *head = (struct str){ s.p, (size_t)(hit - s.p) };
    *tail = (struct str){ hit + 1, s.len - (size_t)(hit - s.p) - 1 };
    return true;
}

int str_to_i64(struct str s, int64_t min, int64_t max, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    uint64_t acc = 0;
    /* magnitude bound: INT64_MAX, or INT64_MAX + 1 for negatives */
    uint64_t bound;

    if (s.len == 0)
        return -EINVAL;
    if (s.p[0] == '-') {          /* no '+': one spelling per number */
        neg = true;
        i = 1;
    }
    if (i == s.len)
        return -EINVAL;
    bound = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < s.len; i++) {
        unsigned d;
        if (s.p[i] < '0' || s.p[i] > '9')
            return -EINVAL;
        d = (unsigned)(s.p[i] - '0');
        if (acc > (bound - d) / 10)
            return -ERANGE;
        acc = acc * 10 + d;
    }
    {
        int64_t v;
        if (neg)
            v = acc == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)acc;
        else
            v = (int64_t)acc;
        if (v < min || v > max)
            return -ERANGE;
        *out = v;
    }
    return 0;
}

char *str_dup(struct str s)
{
    char *d = xmalloc(s.len + 1);
    if (s.len)
        memcpy(d, s.p, s.len);
    d[s.len] = '\0';
    return d;
}

bool str_ct_eq(const void *a, size_t alen, const void *b, size_t blen)
{
    const volatile unsigned char *x = a;
    const volatile unsigned char *y = b;
    volatile unsigned char acc = 0;
    size_t i;

    if (alen != blen)
        return false;
    for (i = 0; i < alen; i++)
        acc |= x[i] ^ y[i];
    return acc == 0;
}
