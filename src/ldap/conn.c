/*
 * conn — libldap with deadlines. See conn.h for the contract; this file is
 * the mapping from libldap's synchronous world (which by default waits for
 * ever) to ours, where every step takes at most the time that is left.
 *
 * libldap connects lazily: ldap_initialize only parses the URL and the TCP
 * connect (and for ldaps:// the TLS handshake) happens inside the first
 * operation, bounded by LDAP_OPT_NETWORK_TIMEOUT. Operations are sent with
 * the asynchronous calls and collected with ldap_result and an explicit
 * timeout; LDAP_OPT_TIMEOUT bounds what only exists synchronously
 * (StartTLS).
 */
#include "ldap/conn.h"

#include <errno.h>
#include <lber.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/timeutil.h"
#include "core/xmalloc.h"

int64_t ldapconn_left_us(int64_t deadline_us)
{
    int64_t left = deadline_us - time_mono_us();

    if (left <= 0)
        return 0;
    return left < 1000 ? 1000 : left;
}

static struct timeval tv_of(int64_t us)
{
    return (struct timeval){ .tv_sec = (time_t)(us / 1000000), .tv_usec = (suseconds_t)(us % 1000000) };
}

/* libldap's client-side codes (negative) and result codes -> ours. */
static int map_code(int code)
{
    switch (code) {
    case LDAP_SUCCESS:
        return 0;
    case LDAP_SERVER_DOWN:
    case LDAP_CONNECT_ERROR:
    case LDAP_UNAVAILABLE:
    case LDAP_BUSY:
        return -ENETDOWN;
    case LDAP_TIMEOUT:
    case LDAP_TIMELIMIT_EXCEEDED:
        return -ETIMEDOUT;
    case LDAP_INVALID_CREDENTIALS:
    case LDAP_INAPPROPRIATE_AUTH:
    case LDAP_INSUFFICIENT_ACCESS:
    case LDAP_UNWILLING_TO_PERFORM:
        return -EACCES;
    case LDAP_NO_SUCH_OBJECT:
        return -ENOENT;
    default:
        return -EIO;
    }
}

static void set_err(char *err, size_t errlen, const char *what, int code, const char *diag)
{
    if (!err || !errlen)
        return;
    if (diag && *diag)
        snprintf(err, errlen, "%s: %s (%s)", what, ldap_err2string(code), diag);
    else
        snprintf(err, errlen, "%s: %s", what, ldap_err2string(code));
}

void ldapconn_close(struct ldapconn *c)
{
    if (c->ld)
        ldap_unbind_ext_s(c->ld, NULL, NULL);
    c->ld = NULL;
    c->bound_service = false;
    c->used = false;
}

static int set_timeouts(LDAP *ld, int64_t deadline_us)
{
    struct timeval tv = tv_of(ldapconn_left_us(deadline_us));

    if (ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv) != LDAP_OPT_SUCCESS ||
        ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tv) != LDAP_OPT_SUCCESS)
        return -EIO;
    return 0;
}

int ldapconn_open(struct ldapconn *c, const struct ldap_target *t, int64_t deadline_us, char *err,
                  size_t errlen)
{
    int v3 = LDAP_VERSION3, rc;
    LDAP *ld = NULL;
    Sockbuf *sb = NULL;
    ber_len_t max_in = LDAPCONN_MAX_INCOMING;

    ldapconn_close(c);
    if (!ldapconn_left_us(deadline_us)) {
        snprintf(err, errlen, "connect: no time left");
        return -ETIMEDOUT;
    }
    rc = ldap_initialize(&ld, t->url);
    if (rc != LDAP_SUCCESS) {
        set_err(err, errlen, "ldap_initialize", rc, t->url);
        return -EIO;
    }
    if (ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3) != LDAP_OPT_SUCCESS ||
        ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF) != LDAP_OPT_SUCCESS ||
        ldap_set_option(ld, LDAP_OPT_RESTART, LDAP_OPT_ON) != LDAP_OPT_SUCCESS ||
        set_timeouts(ld, deadline_us) < 0)
        goto opt_fail;
    if (ldap_get_option(ld, LDAP_OPT_SOCKBUF, &sb) == LDAP_OPT_SUCCESS && sb)
        ber_sockbuf_ctrl(sb, LBER_SB_OPT_SET_MAX_INCOMING, &max_in);
    if (t->tls != 0) {
        int demand = LDAP_OPT_X_TLS_DEMAND, client = 0, min = LDAP_OPT_X_TLS_PROTOCOL_TLS1_2;

        if (ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand) != LDAP_OPT_SUCCESS ||
            ldap_set_option(ld, LDAP_OPT_X_TLS_PROTOCOL_MIN, &min) != LDAP_OPT_SUCCESS)
            goto opt_fail;
        if (t->ca_file && ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE, t->ca_file) != LDAP_OPT_SUCCESS)
            goto opt_fail;
        /* the per-handle TLS context is built from the options above */
        if (ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &client) != LDAP_OPT_SUCCESS) {
            snprintf(err, errlen, "TLS: cannot create a context (ca_file %s)", t->ca_file ? t->ca_file : "-");
            ldap_unbind_ext_s(ld, NULL, NULL);
            return -EIO;
        }
    }
    if (t->tls == 2) {
        char *diag = NULL;
        rc = ldap_start_tls_s(ld, NULL, NULL);
        if (rc != LDAP_SUCCESS) {
            ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
            set_err(err, errlen, "StartTLS", rc, diag);
            ldap_memfree(diag);
            ldap_unbind_ext_s(ld, NULL, NULL);
            rc = map_code(rc);
            return rc == -EACCES ? -EIO : rc;
        }
    }
    c->ld = ld;
    c->bound_service = false;
    c->used = false;
    return 0;
opt_fail:
    snprintf(err, errlen, "cannot set LDAP options");
    ldap_unbind_ext_s(ld, NULL, NULL);
    return -EIO;
}

/* Waits for the complete answer to msgid. On a timeout the operation is
 * abandoned and the connection closed; on a lost connection it is closed. */
static int wait_result(struct ldapconn *c, int msgid, int64_t deadline_us, LDAPMessage **res,
                       const char *what, char *err, size_t errlen)
{
    int64_t left = ldapconn_left_us(deadline_us);
    struct timeval tv;
    int rc, code = LDAP_OTHER;

    *res = NULL;
    if (left) {
        tv = tv_of(left);
        rc = ldap_result(c->ld, msgid, LDAP_MSG_ALL, &tv, res);
    } else {
        rc = 0;
    }
    if (rc > 0)
        return 0;
    if (rc == 0) {
        ldap_abandon_ext(c->ld, msgid, NULL, NULL);
        ldapconn_close(c);
        snprintf(err, errlen, "%s: no answer in time", what);
        return -ETIMEDOUT;
    }
    ldap_get_option(c->ld, LDAP_OPT_RESULT_CODE, &code);
    set_err(err, errlen, what, code, NULL);
    ldapconn_close(c);
    rc = map_code(code);
    return rc == 0 || rc == -EACCES || rc == -ENOENT ? -EIO : rc;
}

/* A local error from ldap_sasl_bind / ldap_search_ext (nothing sent, or the
 * connect failed): the connection is of no further use. */
static int send_failed(struct ldapconn *c, int code, const char *what, char *err, size_t errlen)
{
    char *diag = NULL;
    int rc;

    ldap_get_option(c->ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
    set_err(err, errlen, what, code, diag);
    ldap_memfree(diag);
    ldapconn_close(c);
    rc = map_code(code);
    return rc == 0 || rc == -EACCES || rc == -ENOENT ? -EIO : rc;
}

int ldapconn_bind(struct ldapconn *c, const char *dn, const char *pw, size_t pwlen, int64_t deadline_us,
                  char *err, size_t errlen)
{
    struct berval cred = { 0, NULL };
    LDAPMessage *res = NULL;
    char *diag = NULL;
    int msgid = -1, rc, code = LDAP_OTHER;

    if (dn && (!pw || pwlen == 0)) {
        snprintf(err, errlen, "bind: empty password refused (it would be an unauthenticated bind)");
        return -EACCES;
    }
    if (!c->ld)
        return -ENETDOWN;
    cred.bv_val = (char *)pw;
    cred.bv_len = dn ? pwlen : 0;
    set_timeouts(c->ld, deadline_us);
    c->bound_service = false;
    rc = ldap_sasl_bind(c->ld, dn ? dn : "", LDAP_SASL_SIMPLE, &cred, NULL, NULL, &msgid);
    if (rc != LDAP_SUCCESS)
        return send_failed(c, rc, "bind", err, errlen);
    c->used = true;
    rc = wait_result(c, msgid, deadline_us, &res, "bind", err, errlen);
    if (rc < 0)
        return rc;
    rc = ldap_parse_result(c->ld, res, &code, NULL, &diag, NULL, NULL, 1);
    if (rc != LDAP_SUCCESS) {
        set_err(err, errlen, "bind", rc, NULL);
        ldapconn_close(c);
        return -EIO;
    }
    if (code != LDAP_SUCCESS) {
        set_err(err, errlen, "bind", code, diag);
        ldap_memfree(diag);
        return map_code(code);
    }
    ldap_memfree(diag);
    return 0;
}

int ldapconn_search(struct ldapconn *c, const char *base, int scope, const char *filter,
                    const char *const *attrs, int sizelimit, int64_t deadline_us, LDAPMessage **res,
                    bool *truncated, char *err, size_t errlen)
{
    char *diag = NULL;
    int msgid = -1, rc, code = LDAP_OTHER;

    *res = NULL;
    if (truncated)
        *truncated = false;
    if (!c->ld)
        return -ENETDOWN;
    set_timeouts(c->ld, deadline_us);
    rc = ldap_search_ext(c->ld, base, scope, filter, (char **)attrs, 0, NULL, NULL, NULL, sizelimit,
                         &msgid);
    if (rc != LDAP_SUCCESS)
        return send_failed(c, rc, "search", err, errlen);
    c->used = true;
    rc = wait_result(c, msgid, deadline_us, res, "search", err, errlen);
    if (rc < 0)
        return rc;
    rc = ldap_parse_result(c->ld, *res, &code, NULL, &diag, NULL, NULL, 0);
    if (rc != LDAP_SUCCESS) {
        set_err(err, errlen, "search", rc, NULL);
        ldap_msgfree(*res);
        *res = NULL;
        ldapconn_close(c);
        return -EIO;
    }
    if (code == LDAP_SIZELIMIT_EXCEEDED) {
        if (truncated)
            *truncated = true;
        code = LDAP_SUCCESS;
    }
    if (code != LDAP_SUCCESS) {
        set_err(err, errlen, "search", code, diag);
        ldap_memfree(diag);
        ldap_msgfree(*res);
        *res = NULL;
        return map_code(code);
    }
    ldap_memfree(diag);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* contextCSN                                                               */
/* ------------------------------------------------------------------------ */

static int cmp_bv(const void *a, const void *b)
{
    const struct berval *x = *(const struct berval *const *)a, *y = *(const struct berval *const *)b;
    size_t n = x->bv_len < y->bv_len ? x->bv_len : y->bv_len;
    int r = memcmp(x->bv_val, y->bv_val, n);

    return r ? r : (x->bv_len > y->bv_len) - (x->bv_len < y->bv_len);
}

/* The parent of dn (xmalloc'd), or NULL at the top. */
static char *parent_dn(const char *dn)
{
    LDAPDN ldn = NULL;
    char *s = NULL, *out = NULL;

    if (ldap_str2dn(dn, &ldn, LDAP_DN_FORMAT_LDAPV3) != LDAP_SUCCESS || !ldn)
        return NULL;
    if (ldn[0] && ldn[1] && ldap_dn2str(&ldn[1], &s, LDAP_DN_FORMAT_LDAPV3) == LDAP_SUCCESS && s && *s)
        out = xstrdup(s);
    ldap_memfree(s);
    ldap_dnfree(ldn);
    return out;
}

int ldapconn_context_csn(struct ldapconn *c, const char *base, int64_t deadline_us, char *out,
                         size_t outlen, char *found_base, size_t fblen, char *err, size_t errlen)
{
    static const char *const attrs[] = { "contextCSN", NULL };
    char *dn = xstrdup(base);
    int rc = -ENOENT, depth;

    out[0] = '\0';
    if (found_base && fblen)
        found_base[0] = '\0';
    for (depth = 0; dn && depth < 32; depth++) {
        LDAPMessage *res = NULL, *e;
        struct berval **vals = NULL;
        char *up;

        rc = ldapconn_search(c, dn, LDAP_SCOPE_BASE, "(objectClass=*)", attrs, 1, deadline_us, &res,
                             NULL, err, errlen);
        if (rc < 0 && rc != -ENOENT)
            goto out;
        e = rc == 0 ? ldap_first_entry(c->ld, res) : NULL;
        if (e)
            vals = ldap_get_values_len(c->ld, e, "contextCSN");
        if (vals && vals[0]) {
            size_t n = 0, i, len = 0;
            while (vals[n])
                n++;
            qsort(vals, n, sizeof(*vals), cmp_bv);
            for (i = 0; i < n && i < USERSTORE_CSN_VALUES; i++) {
                size_t vl = vals[i]->bv_len;
                if (vl >= USERSTORE_CSN_MAX || len + vl + 2 > outlen)
                    break;
                if (len)
                    out[len++] = ' ';
                memcpy(out + len, vals[i]->bv_val, vl);
                len += vl;
                out[len] = '\0';
            }
            if (found_base && fblen)
                snprintf(found_base, fblen, "%s", dn);
            ldap_value_free_len(vals);
            ldap_msgfree(res);
            rc = 0;
            goto out;
        }
        ldap_value_free_len(vals);
        ldap_msgfree(res);
        up = parent_dn(dn);
        free(dn);
        dn = up;
        rc = -ENOENT;
    }
    snprintf(err, errlen, "no contextCSN on %s or above it (not a syncrepl provider or consumer?)", base);
out:
    free(dn);
    return rc;
}

int ldap_context_csn(const struct ldap_target *t, const char *base, char *out, size_t outlen, char *err,
                     size_t errlen)
{
    struct ldapconn c = { 0 };
    int64_t deadline = time_mono_us() + (t->timeout_ms > 0 ? t->timeout_ms : 5000) * 1000;
    int rc;

    out[0] = '\0';
    rc = ldapconn_open(&c, t, deadline, err, errlen);
    if (rc < 0)
        return rc;
    if (t->bind_dn)
        rc = ldapconn_bind(&c, t->bind_dn, t->bind_password, t->bind_password ? strlen(t->bind_password) : 0,
                           deadline, err, errlen);
    if (rc == 0)
        rc = ldapconn_context_csn(&c, base, deadline, out, outlen, NULL, 0, err, errlen);
    ldapconn_close(&c);
    return rc;
}
