/*
 * filter — the string work of the LDAP userstore that never touches the
 * network: DOMAIN/username parsing, RFC 4515 filter escaping and the user
 * search filter, directory user ids, contextCSN parsing and comparison, and
 * sealed bind passwords.
 *
 * Why it is kept apart: the user name is attacker input that ends up inside
 * an LDAP filter. Escaping is the whole defence against LDAP injection
 * ("*)(uid=*))(|(uid=*" must match nothing), so it lives in one small file
 * that a fuzzer (tests/fuzz/fuzz_ldap_filter.c) can hammer and whose output
 * is checked by a filter parser there.
 *
 * RFC 4515 §3, the assertion value grammar this escaper produces:
 *
 *   valueencoding = 0*(normal / escaped)
 *   normal        = UTF1SUBSET / UTFMB      (anything but NUL ( ) * \)
 *   escaped       = ESC HEX HEX
 *
 * We escape more than we must — every control byte and every byte >= 0x7f
 * as well — so that the filter is plain printable ASCII whatever the input
 * and a directory never sees a byte sequence it might mis-decode.
 */
#include "ldap/userstore.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/base64.h"
#include "core/xmalloc.h"
#include "crypto/seal.h"
#include "crypto/secret.h"
#include "identity/tenant.h"

/* ------------------------------------------------------------------------ */
/* DOMAIN/username                                                          */
/* ------------------------------------------------------------------------ */

int userstore_split(const char *s, size_t n, char domain[USERSTORE_NAME_MAX + 1], struct str *user)
{
    const char *slash = memchr(s, '/', n);
    size_t dl, ul, i;

    if (!slash)
        return 0;
    dl = (size_t)(slash - s);
    if (dl == 0 || dl > USERSTORE_NAME_MAX)
        return 0;
    for (i = 0; i < dl; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        domain[i] = c;
    }
    domain[dl] = '\0';
    if (strlen(domain) != dl || !tenant_name_valid(domain))
        return 0;                   /* a NUL inside, or not a label: an internal name */
    ul = n - dl - 1;
    if (ul == 0 || ul > USERSTORE_USERNAME_MAX)
        return -EINVAL;
    for (i = 0; i < ul; i++) {
        unsigned char c = (unsigned char)slash[1 + i];
        if (c < 0x20 || c == 0x7f)
            return -EINVAL;
    }
    *user = (struct str){ slash + 1, ul };
    return 1;
}

/* ------------------------------------------------------------------------ */
/* RFC 4515 escaping and the user filter                                    */
/* ------------------------------------------------------------------------ */

int userstore_filter_escape(struct buf *out, const char *v, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i, run = 0;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        char esc[3];

        if (c >= 0x20 && c < 0x7f && c != '*' && c != '(' && c != ')' && c != '\\') {
            run++;
            continue;
        }
        if (run && buf_append(out, v + i - run, run) < 0)
            return -E2BIG;
        run = 0;
        esc[0] = '\\';
        esc[1] = hex[c >> 4];
        esc[2] = hex[c & 15];
        if (buf_append(out, esc, 3) < 0)
            return -E2BIG;
    }
    if (run && buf_append(out, v + n - run, run) < 0)
        return -E2BIG;
    return 0;
}

static int put_value(struct buf *out, const char *value, size_t n)
{
    if (!value)
        return buf_putc(out, '*') < 0 ? -E2BIG : 0;
    return userstore_filter_escape(out, value, n);
}

int userstore_filter_build(struct buf *out, const char *tmpl, const char *attr, const char *value,
                           size_t n)
{
    const char *p = tmpl, *hit;
    bool any = false;

    if (!tmpl || tmpl[0] != '(' || !attr || !*attr)
        return -EINVAL;
    while ((hit = strstr(p, "%s")) != NULL) {
        any = true;
        if (buf_append(out, p, (size_t)(hit - p)) < 0 || put_value(out, value, n) < 0)
            return -E2BIG;
        p = hit + 2;
    }
    if (any)
        return buf_puts(out, p) < 0 ? -E2BIG : 0;
    if (buf_puts(out, "(&") < 0 || buf_puts(out, tmpl) < 0 || buf_putc(out, '(') < 0 ||
        buf_puts(out, attr) < 0 || buf_putc(out, '=') < 0 || put_value(out, value, n) < 0 ||
        buf_puts(out, "))") < 0)
        return -E2BIG;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Ids                                                                      */
/* ------------------------------------------------------------------------ */

bool userstore_is_user_id(const char *id)
{
    return id && strncmp(id, USERSTORE_ID_PREFIX, sizeof(USERSTORE_ID_PREFIX) - 1) == 0;
}

int userstore_id_parse(const char *id, char store[USERSTORE_NAME_MAX + 1], struct str *key)
{
    const char *p, *colon;
    size_t sl;

    if (!userstore_is_user_id(id))
        return -EINVAL;
    p = id + sizeof(USERSTORE_ID_PREFIX) - 1;
    colon = strchr(p, ':');
    if (!colon)
        return -EINVAL;
    sl = (size_t)(colon - p);
    if (sl == 0 || sl > USERSTORE_NAME_MAX)
        return -EINVAL;
    memcpy(store, p, sl);
    store[sl] = '\0';
    if (!tenant_name_valid(store) || colon[1] == '\0' || strlen(colon + 1) > USERSTORE_USERNAME_MAX + 2)
        return -EINVAL;
    *key = str_from_cstr(colon + 1);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* contextCSN                                                               */
/* ------------------------------------------------------------------------ */

/*
 * A CSN (OpenLDAP, draft-ietf-ldup-model):
 *
 *   20261125195746.730766Z#000000#000#000000
 *   |              |       |      |   +-- modification number (hex)
 *   |              |       |      +------ server id (hex, 3 digits)
 *   |              |       +------------- change count within the microsecond (hex)
 *   |              +--------------------- microseconds
 *   +------------------------------------ UTC time YYYYmmddHHMMSS
 */
static bool digits(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9')
            return false;
    return true;
}

static bool hexdigits(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f') || (p[i] >= 'A' && p[i] <= 'F')))
            return false;
    return true;
}

static int num(const char *p, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (p[i] - '0');
    return v;
}

int ldap_csn_parse(const char *csn, size_t n, int64_t *time_us, int *sid)
{
    /* 14 digits '.' 6 digits 'Z' '#' 6 hex '#' 3 hex '#' 6 hex = 40 bytes */
    struct tm tm;
    char sidbuf[4];
    time_t t;

    if (n != 40 || !digits(csn, 14) || csn[14] != '.' || !digits(csn + 15, 6) || csn[21] != 'Z' ||
        csn[22] != '#' || !hexdigits(csn + 23, 6) || csn[29] != '#' || !hexdigits(csn + 30, 3) ||
        csn[33] != '#' || !hexdigits(csn + 34, 6))
        return -EINVAL;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = num(csn, 4) - 1900;
    tm.tm_mon = num(csn + 4, 2) - 1;
    tm.tm_mday = num(csn + 6, 2);
    tm.tm_hour = num(csn + 8, 2);
    tm.tm_min = num(csn + 10, 2);
    tm.tm_sec = num(csn + 12, 2);
    if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
        tm.tm_min > 59 || tm.tm_sec > 60)
        return -EINVAL;
    t = timegm(&tm);
    if (t == (time_t)-1)
        return -EINVAL;
    memcpy(sidbuf, csn + 30, 3);
    sidbuf[3] = '\0';
    *time_us = (int64_t)t * 1000000 + num(csn + 15, 6);
    *sid = (int)strtol(sidbuf, NULL, 16);
    return 0;
}

int ldap_csn_lag_ms(const char *const *provider, size_t np, const char *const *consumer, size_t nc,
                    int64_t *lag_ms)
{
    int64_t worst = 0;
    bool behind = false;

    *lag_ms = 0;
    for (size_t i = 0; i < nc; i++) {
        int64_t t;
        int sid;
        if (ldap_csn_parse(consumer[i], strlen(consumer[i]), &t, &sid) < 0)
            return -EINVAL;
    }
    for (size_t i = 0; i < np; i++) {
        int64_t pt, ct = 0;
        int psid, csid;
        const char *match = NULL;

        if (ldap_csn_parse(provider[i], strlen(provider[i]), &pt, &psid) < 0)
            return -EINVAL;
        for (size_t j = 0; j < nc; j++) {
            ldap_csn_parse(consumer[j], strlen(consumer[j]), &ct, &csid);
            if (csid == psid) {
                match = consumer[j];
                break;
            }
        }
        if (!match)
            return -ENOENT;
        /* Same layout, fixed width: byte order is time order. */
        if (strcmp(match, provider[i]) < 0) {
            behind = true;
            if ((pt - ct) / 1000 > worst)
                worst = (pt - ct) / 1000;
        }
    }
    *lag_ms = worst;
    return behind ? 1 : 0;
}

/* ------------------------------------------------------------------------ */
/* Sealed bind passwords                                                    */
/* ------------------------------------------------------------------------ */

static const char seal_aad[] = "refuge userstore bind_password";

int userstore_seal_password(const unsigned char key[32], const char *pw, size_t n, char **out)
{
    uint8_t *sealed = NULL;
    size_t slen = 0, plen = sizeof(USERSTORE_SEALED_PREFIX) - 1;
    int rc;

    *out = NULL;
    if (n == 0 || n > USERSTORE_PASSWORD_MAX)
        return -EINVAL;
    rc = crypto_seal(key, seal_aad, sizeof(seal_aad) - 1, pw, n, &sealed, &slen);
    if (rc < 0)
        return rc;
    *out = xmalloc(plen + B64URL_ENCLEN(slen));
    memcpy(*out, USERSTORE_SEALED_PREFIX, plen);
    b64url_encode(sealed, slen, *out + plen);
    free(sealed);
    return 0;
}

int userstore_open_password(const unsigned char key[32], const char *value, char **out)
{
    size_t plen = sizeof(USERSTORE_SEALED_PREFIX) - 1, vlen = strlen(value), blen = 0, olen = 0;
    uint8_t *bin = NULL, *plain = NULL;
    int rc;

    *out = NULL;
    if (strncmp(value, USERSTORE_SEALED_PREFIX, plen) != 0) {
        *out = xstrdup(value);
        return 0;
    }
    if (vlen - plen > B64URL_ENCLEN(USERSTORE_PASSWORD_MAX + CRYPTO_SEAL_OVERHEAD))
        return -EINVAL;
    bin = xmalloc(B64_DECLEN(vlen - plen));
    rc = b64url_decode(value + plen, vlen - plen, bin, &blen);
    if (rc < 0)
        goto out;
    rc = crypto_open(key, seal_aad, sizeof(seal_aad) - 1, bin, blen, &plain, &olen);
    if (rc < 0)
        goto out;
    if (olen == 0 || memchr(plain, '\0', olen)) {
        crypto_wipe_free(plain, olen);
        rc = -EINVAL;
        goto out;
    }
    *out = (char *)plain;
out:
    free(bin);
    return rc;
}
