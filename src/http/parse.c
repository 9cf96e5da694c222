/*
 * parse — the byte-level parsers of the HTTP layer: application/x-www-form-
 * urlencoded lists (query strings and form bodies), Cookie headers and tenant
 * names. They take (pointer, length), never assume NUL termination, allocate
 * only from the caller's arena and bound every output by a caller-given
 * maximum, so they are safe to feed raw network bytes (and are fuzzed).
 *
 * Form/query grammar accepted (WHATWG urlencoded, strict on escapes):
 *
 *   list  = [ pair *( "&" pair ) ]      empty pairs ("a=1&&b=2") are skipped
 *   pair  = name [ "=" value ]          "a" -> ("a", ""), "=b" -> ("", "b")
 *   '+' decodes to a space, "%XY" to the byte 0xXY; a '%' not followed by two
 *   hex digits is -EINVAL. A value may contain NUL (value_len says how long);
 *   a name may not (-EINVAL), since names are compared as C strings.
 *
 * Cookie grammar (RFC 6265 §4.2.1, tolerant of whitespace):
 *
 *   cookie-string = pair *( ";" OWS pair )   pair = token "=" value
 *   Pairs whose name is empty or is not an RFC 7230 token (contains a
 *   separator, space or control) and pairs without '=' are ignored, so one
 *   malformed third-party cookie cannot lock a user out. Values are kept
 *   verbatim (no percent decoding, quotes kept).
 */
#include "http/http.h"

#include <errno.h>
#include <string.h>

/* ------------------------------------------------------------ urlencoded */

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes p[0..n) into a new NUL-terminated arena string. 0 or -EINVAL. */
static int form_decode(const char *p, size_t n, struct arena *a, char **out, size_t *outlen)
{
    char *d = arena_alloc(a, n + 1);
    size_t i, j = 0;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];

        if (c == '+') {
            d[j++] = ' ';
        } else if (c == '%') {
            int hi, lo;

            if (n - i < 3)
                return -EINVAL;
            hi = hexval((unsigned char)p[i + 1]);
            lo = hexval((unsigned char)p[i + 2]);
            if (hi < 0 || lo < 0)
                return -EINVAL;
            d[j++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            d[j++] = (char)c;
        }
    }
    d[j] = '\0';
    *out = d;
    *outlen = j;
    return 0;
}

int http_urlencoded_parse(const char *p, size_t n, struct arena *a, size_t max_params,
                          struct http_params *out)
{
    struct http_param *items = NULL;
    size_t count = 0, i, start;
    int rc = 0;

    out->items = NULL;
    out->n = 0;

    /* First pass: count the non-empty pairs so the array is sized once. */
    for (start = 0, i = 0; i <= n; i++) {
        if (i == n || p[i] == '&') {
            if (i > start)
                count++;
            start = i + 1;
        }
    }
    if (count > max_params)
        return -E2BIG;
    if (count == 0)
        return 0;

    items = arena_alloc(a, count * sizeof *items);
    count = 0;
    for (start = 0, i = 0; i <= n; i++) {
        const char *pair, *eq;
        size_t plen, nlen, dlen;
        char *name, *value;

        if (i < n && p[i] != '&')
            continue;
        pair = p + start;
        plen = i - start;
        start = i + 1;
        if (plen == 0)
            continue;

        eq = memchr(pair, '=', plen);
        nlen = eq ? (size_t)(eq - pair) : plen;
        rc = form_decode(pair, nlen, a, &name, &dlen);
        if (rc < 0)
            goto out;
        if (memchr(name, '\0', dlen)) {
            rc = -EINVAL;
            goto out;
        }
        if (eq) {
            rc = form_decode(eq + 1, plen - nlen - 1, a, &value, &dlen);
            if (rc < 0)
                goto out;
        } else {
            value = arena_strdup(a, "");
            dlen = 0;
        }
        items[count].name = name;
        items[count].value = value;
        items[count].value_len = dlen;
        count++;
    }
    out->items = items;
    out->n = count;
out:
    return rc;
}

const char *http_params_get(const struct http_params *ps, const char *name)
{
    size_t i;

    if (!ps)
        return NULL;
    for (i = 0; i < ps->n; i++)
        if (strcmp(ps->items[i].name, name) == 0)
            return ps->items[i].value;
    return NULL;
}

size_t http_params_count(const struct http_params *ps, const char *name)
{
    size_t i, c = 0;

    if (!ps)
        return 0;
    for (i = 0; i < ps->n; i++)
        if (strcmp(ps->items[i].name, name) == 0)
            c++;
    return c;
}

/* --------------------------------------------------------------- cookies */

/* RFC 7230 tchar. */
static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

int http_cookie_parse(const char *p, size_t n, struct arena *a, size_t max_cookies,
                      struct http_params *out)
{
    struct http_param *items = NULL;
    size_t count = 0, cap = 0, i = 0;
    int rc = 0;

    out->items = NULL;
    out->n = 0;

    while (i < n) {
        size_t s = i, e, ns, ne, vs, ve, k;
        const char *eq;
        bool ok = true;

        while (i < n && p[i] != ';')
            i++;
        e = i;
        i++;                       /* skip ';' (or step past the end) */

        while (s < e && is_ows(p[s]))
            s++;
        while (e > s && is_ows(p[e - 1]))
            e--;
        if (s == e)
            continue;
        eq = memchr(p + s, '=', e - s);
        if (!eq)
            continue;
        ns = s;
        ne = (size_t)(eq - p);
        while (ne > ns && is_ows(p[ne - 1]))
            ne--;
        vs = (size_t)(eq - p) + 1;
        while (vs < e && is_ows(p[vs]))
            vs++;
        ve = e;
        if (ne == ns)
            continue;
        for (k = ns; k < ne; k++)
            if (!is_tchar((unsigned char)p[k]))
                ok = false;
        for (k = vs; k < ve; k++)
            if ((unsigned char)p[k] < 0x20 || p[k] == 0x7f)
                ok = false;
        if (!ok)
            continue;

        if (count == max_cookies) {
            rc = -E2BIG;
            goto out;
        }
        if (count == cap) {
            struct http_param *grown;

            cap = cap ? cap * 2 : 8;
            if (cap > max_cookies)
                cap = max_cookies;
            grown = arena_alloc(a, cap * sizeof *grown);
            if (count)
                memcpy(grown, items, count * sizeof *grown);
            items = grown;
        }
        items[count].name = arena_strndup(a, p + ns, ne - ns);
        items[count].value = arena_strndup(a, p + vs, ve - vs);
        items[count].value_len = ve - vs;
        count++;
    }
    out->items = items;
    out->n = count;
out:
    return rc;
}

/* ---------------------------------------------------------------- tenant */

bool http_tenant_name_valid(const char *s, size_t n)
{
    size_t i;

    if (!s || n == 0 || n > 63)
        return false;
    for (i = 0; i < n; i++) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return false;
    }
    return s[0] != '-' && s[n - 1] != '-';
}
