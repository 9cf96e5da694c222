/*
 * authz — who is calling: verifies bearer access tokens (JWT per RFC 9068
 * or opaque) presented to the admin API, SCIM and userinfo, and checks
 * scopes. Failures are answered here in RFC 6750 form (401 with
 * WWW-Authenticate: Bearer error="invalid_token", 403 insufficient_scope).
 *
 * Tenancy: a token is valid for the tenant whose issuer signed it. A token
 * of the `default` tenant with scope `refuge:admin` is the operator's token
 * and is accepted by every tenant's admin and SCIM API (a super-admin).
 */
#ifndef REFUGE_OAUTH_AUTHZ_H
#define REFUGE_OAUTH_AUTHZ_H

#include <stdbool.h>
#include <stdint.h>
#include "http/http.h"
#include "node/node.h"

struct principal {
    const char *tenant;       /* tenant that issued the token */
    const char *client_id;
    const char *sub;          /* user id, or client id for client_credentials */
    const char *user_id;      /* NULL for client tokens */
    const char *scope;        /* space-separated */
    const char *jti;
    int64_t iat, exp;
    bool super_admin;         /* default tenant + refuge:admin */
};

/* Verifies the request's bearer token for use against `tenant`. On failure
 * the 401 response is already set and -1 is returned. Strings live in the
 * request arena. */
int authz_bearer(struct node *n, struct http_request *req, const char *tenant, struct principal *p);
bool authz_has_scope(const struct principal *p, const char *scope);
/* authz_bearer + at least one of the NULL-terminated scopes; 403 otherwise. */
int authz_require(struct node *n, struct http_request *req, const char *tenant, struct principal *p,
                  const char *const *any_scope);

#endif
