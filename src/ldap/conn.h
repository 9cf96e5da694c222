/*
 * conn — one connection to an LDAP directory through libldap, where every
 * step is bounded by a deadline (CLOCK_MONOTONIC microseconds): connect and
 * TLS handshake (LDAP_OPT_NETWORK_TIMEOUT), StartTLS and every operation
 * (ldap_result with the time that is left). An operation that runs out of
 * time is abandoned and the connection closed: a half-answered connection is
 * never reused.
 *
 * Not thread-safe: a connection belongs to one pool thread.
 */
#ifndef REFUGE_LDAP_CONN_H
#define REFUGE_LDAP_CONN_H

#include <ldap.h>
#include <stdbool.h>
#include <stdint.h>

#include "ldap/userstore.h"

#define LDAPCONN_MAX_INCOMING (4 * 1024 * 1024)   /* largest LDAP message accepted */

struct ldapconn {
    LDAP *ld;                  /* NULL: not connected */
    bool bound_service;        /* currently bound as the service DN */
    bool used;                 /* served at least one operation (a stale connection may fail once) */
};

/* Result codes: 0, -EACCES (invalidCredentials / insufficientAccess),
 * -ETIMEDOUT, -ENETDOWN (cannot connect, connection lost), -ENOENT
 * (noSuchObject), -EIO (anything else). err gets a short description. */

/* Connects (lazily: libldap connects on the first operation) and, for
 * STARTTLS, upgrades the connection. */
int ldapconn_open(struct ldapconn *c, const struct ldap_target *t, int64_t deadline_us, char *err,
                  size_t errlen);
void ldapconn_close(struct ldapconn *c);

/* Simple bind. An empty password is refused here (-EACCES) whatever the
 * caller checked: it would be an unauthenticated bind. dn NULL with pw NULL:
 * anonymous. */
int ldapconn_bind(struct ldapconn *c, const char *dn, const char *pw, size_t pwlen, int64_t deadline_us,
                  char *err, size_t errlen);

/* Search; *res (free with ldap_msgfree) holds the entries. sizelimit 0: none.
 * LDAP_SIZELIMIT_EXCEEDED is success (*truncated set). */
int ldapconn_search(struct ldapconn *c, const char *base, int scope, const char *filter,
                    const char *const *attrs, int sizelimit, int64_t deadline_us, LDAPMessage **res,
                    bool *truncated, char *err, size_t errlen);

/* The contextCSN of the naming context holding base (walking up from base),
 * values sorted and space-separated in out; *found_base names the entry
 * (caller-provided buffer). 0, -ENOENT (no contextCSN up to the root) or an error. */
int ldapconn_context_csn(struct ldapconn *c, const char *base, int64_t deadline_us, char *out,
                         size_t outlen, char *found_base, size_t fblen, char *err, size_t errlen);

/* Microseconds left until deadline (at least 1 ms while positive), or 0 once passed. */
int64_t ldapconn_left_us(int64_t deadline_us);

#endif
