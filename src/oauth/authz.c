/*
 * authz — verifies the bearer access token of a request to the admin API,
 * SCIM or userinfo (RFC 6750) and checks its scopes. The rules for tenancy
 * and super-admins are in authz.h; what makes a token valid is shared with
 * introspection (lookup.c).
 *
 * Answers (RFC 6750 §3): no token -> 401 with a bare Bearer challenge;
 * a bad token -> 401 error="invalid_token"; a valid token without the
 * needed scope -> 403 error="insufficient_scope".
 */
#include "oauth/authz.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include "core/timeutil.h"
#include "identity/tenant.h"
#include "oauth/oauth_internal.h"

#define ADMIN_SCOPE "refuge:admin"
#define BEARER_MAX 16384

static void challenge(struct http_request *req, int status, const char *error, const char *desc,
                      const char *scope)
{
    const char *h;
    if (!error)
        h = arena_sprintf(&req->arena, "Bearer realm=\"%s\"", req->tenant);
    else if (scope)
        h = arena_sprintf(&req->arena, "Bearer realm=\"%s\", error=\"%s\", scope=\"%s\"", req->tenant, error,
                          scope);
    else
        h = arena_sprintf(&req->arena, "Bearer realm=\"%s\", error=\"%s\"", req->tenant, error);
    http_add_header(req, "WWW-Authenticate", h);
    http_respond_error(req, status, error ? error : "invalid_token", desc);
}

static bool scope_has(const char *scope, const char *want)
{
    size_t n = strlen(want);
    const char *p = scope;
    while (p && *p) {
        const char *end = strchr(p, ' ');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && memcmp(p, want, n) == 0)
            return true;
        p = end ? end + 1 : NULL;
    }
    return false;
}

bool authz_has_scope(const struct principal *p, const char *scope)
{
    return p->scope && scope_has(p->scope, scope);
}

/* The token after "Bearer " in the Authorization header, or NULL. */
static const char *bearer_token(struct http_request *req, size_t *len)
{
    const char *h = http_header(req, "Authorization");
    if (!h)
        return NULL;
    while (*h == ' ' || *h == '\t')
        h++;
    if (strncasecmp(h, "Bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t'))
        return NULL;
    h += 7;
    while (*h == ' ' || *h == '\t')
        h++;
    size_t n = strlen(h);
    while (n && (h[n - 1] == ' ' || h[n - 1] == '\t'))
        n--;
    *len = n;
    return h;
}

int authz_bearer(struct node *n, struct http_request *req, const char *tenant, struct principal *p)
{
    struct db *db = store_reader(n->store);
    struct oauth_token_info info;
    int64_t now = time_wall_us() / 1000000;
    size_t len = 0;
    int rc;

    memset(p, 0, sizeof(*p));
    const char *tok = bearer_token(req, &len);
    if (!tok || len == 0) {
        challenge(req, 401, NULL, "bearer token required", NULL);
        return -1;
    }
    if (len > BEARER_MAX) {
        challenge(req, 401, "invalid_token", "token too long", NULL);
        return -1;
    }
    if (oauth_looks_like_jwt(tok, len)) {
        rc = oauth_jwt_verify(n, db, tenant, true, tok, len, now, &req->arena, &info);
    } else {
        rc = oauth_opaque_lookup(n, db, tok, len, now, &req->arena, &info);
        if (rc == 0 && strcmp(info.tenant, tenant) != 0 && strcmp(info.tenant, TENANT_DEFAULT) != 0)
            rc = -EACCES;
    }
    if (rc == -EIO) {
        http_respond_error(req, 500, "server_error", "storage error");
        return -1;
    }
    if (rc < 0) {
        challenge(req, 401, "invalid_token", "the access token is invalid, expired or revoked", NULL);
        return -1;
    }
    bool admin = scope_has(info.scope, ADMIN_SCOPE);
    bool from_default = strcmp(info.tenant, TENANT_DEFAULT) == 0;
    /* A default-tenant token counts elsewhere only as the operator's token. */
    if (from_default && strcmp(tenant, TENANT_DEFAULT) != 0 && !admin) {
        challenge(req, 401, "invalid_token", "the access token was issued for another tenant", NULL);
        return -1;
    }
    p->tenant = info.tenant;
    p->client_id = info.client_id;
    p->sub = info.sub;
    p->user_id = info.user_id;
    p->scope = info.scope;
    p->jti = info.jti;
    p->iat = info.iat;
    p->exp = info.exp;
    p->super_admin = from_default && admin;
    req->user = p;
    return 0;
}

int authz_require(struct node *n, struct http_request *req, const char *tenant, struct principal *p,
                  const char *const *any_scope)
{
    if (authz_bearer(n, req, tenant, p) < 0)
        return -1;
    if (p->super_admin || !any_scope || !any_scope[0])
        return 0;
    for (size_t i = 0; any_scope[i]; i++)
        if (authz_has_scope(p, any_scope[i]))
            return 0;
    size_t len = 0;
    for (size_t i = 0; any_scope[i]; i++)
        len += strlen(any_scope[i]) + 1;
    char *want = arena_alloc(&req->arena, len + 1), *w = want;
    for (size_t i = 0; any_scope[i]; i++) {
        size_t k = strlen(any_scope[i]);
        if (i)
            *w++ = ' ';
        memcpy(w, any_scope[i], k);
        w += k;
    }
    challenge(req, 403, "insufficient_scope", "the access token lacks the required scope", want);
    return -1;
}
