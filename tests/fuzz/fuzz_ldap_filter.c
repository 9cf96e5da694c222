/*
 * fuzz_ldap_filter — arbitrary bytes as a password-grant user name
 * ("DOMAIN/username"), through the path that ends in an LDAP filter:
 * userstore_split, then userstore_filter_build with several templates.
 * What must hold for every input:
 *   - the escaped value contains none of ( ) * \ NUL or non-printable bytes
 *     except as \XX escapes, and unescapes to exactly the input: the user
 *     name can never add filter structure (RFC 4515, LDAP injection);
 *   - a built filter has exactly the template's parentheses (balanced, the
 *     same count) and no '*' beyond the template's own;
 *   - the user part of a qualified name is 1..USERSTORE_USERNAME_MAX bytes
 *     without control characters, and the domain a lowercase label.
 * The same bytes also go through the id and contextCSN parsers.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "identity/tenant.h"
#include "ldap/userstore.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Checks an escaped value and that it decodes back to v[0..n). */
static void check_escaped(const char *e, size_t elen, const char *v, size_t n)
{
    size_t i, o = 0;

    for (i = 0; i < elen; i++) {
        unsigned char c = (unsigned char)e[i];
        if (c == '(' || c == ')' || c == '*' || c < 0x20 || c >= 0x7f)
            abort();
        if (c == '\\') {
            int hi, lo;
            if (i + 2 >= elen)
                abort();
            hi = hexval(e[i + 1]);
            lo = hexval(e[i + 2]);
            if (hi < 0 || lo < 0)
                abort();
            c = (unsigned char)(hi * 16 + lo);
            i += 2;
        }
        if (o >= n || (unsigned char)v[o] != c)
            abort();
        o++;
    }
    if (o != n)
        abort();
}

static size_t count(const char *s, size_t n, char ch)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += s[i] == ch;
    return k;
}

static void check_filter(const char *tmpl, const char *value, size_t n)
{
    struct buf b;
    size_t extra_parens;
    bool has_s = strstr(tmpl, "%s") != NULL;
    int depth = 0;

    buf_init(&b, 16384);
    if (userstore_filter_build(&b, tmpl, "uid", value, n) != 0) {
        buf_free(&b);
        return;                              /* too long: refused, nothing built */
    }
    extra_parens = has_s ? 0 : 2;            /* "(&" ... "(uid=" ")" ")" adds two pairs */
    if (count(b.data, b.len, '(') != count(tmpl, strlen(tmpl), '(') + extra_parens ||
        count(b.data, b.len, ')') != count(tmpl, strlen(tmpl), ')') + extra_parens)
        abort();
    if (value && count(b.data, b.len, '*') != count(tmpl, strlen(tmpl), '*'))
        abort();
    if (!value && count(b.data, b.len, '*') < 1)     /* every user: a presence test */
        abort();
    for (size_t i = 0; i < b.len; i++) {
        depth += b.data[i] == '(';
        depth -= b.data[i] == ')';
        if (depth < 0 || (depth == 0 && i + 1 < b.len))
            abort();
    }
    if (depth != 0)
        abort();
    buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const templates[] = {
        "(&(objectClass=inetOrgPerson)(uid=%s))",
        "(objectClass=inetOrgPerson)",
        "(|(uid=%s)(mail=%s))",
    };
    const char *s = (const char *)data;
    char domain[USERSTORE_NAME_MAX + 1];
    struct str user;
    struct buf e;
    int rc;

    rc = userstore_split(s, size, domain, &user);
    if (rc == 1) {
        if (user.len == 0 || user.len > USERSTORE_USERNAME_MAX || !tenant_name_valid(domain))
            abort();
        for (size_t i = 0; i < user.len; i++)
            if ((unsigned char)user.p[i] < 0x20 || user.p[i] == 0x7f)
                abort();
    } else if (rc != 0 && rc != -22) {
        abort();
    }

    /* the whole input as a value, whatever split said */
    buf_init(&e, 8 * size + 16);
    if (userstore_filter_escape(&e, s, size) != 0)
        abort();                             /* the limit above always suffices */
    check_escaped(e.data ? e.data : "", e.len, s, size);
    buf_free(&e);
    for (size_t t = 0; t < sizeof(templates) / sizeof(templates[0]); t++)
        check_filter(templates[t], s, size);
    check_filter(templates[0], NULL, 0);

    /* ids and CSNs from the same bytes (NUL-terminated copy) */
    char *z = malloc(size + 1);
    char store[USERSTORE_NAME_MAX + 1];
    struct str key;
    int64_t t;
    int sid;
    memcpy(z, data, size);
    z[size] = '\0';
    if (userstore_id_parse(z, store, &key) == 0 && (!tenant_name_valid(store) || key.len == 0))
        abort();
    if (ldap_csn_parse(z, strlen(z), &t, &sid) == 0 && (sid < 0 || sid > 0xfff))
        abort();
    free(z);
    return 0;
}
