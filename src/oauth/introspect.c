/*
 * introspect — POST /oauth2/introspect (RFC 7662) and POST /oauth2/revoke
 * (RFC 7009).
 *
 * Introspection is for confidential clients of the tenant (resource
 * servers) and answers {"active": false} for anything it cannot vouch for:
 * malformed, badly signed, expired, revoked, rotated, unknown, or another
 * tenant's token. It never says why.
 *
 * Revocation accepts public clients too (RFC 7009 §2.1: they identify with
 * client_id) but only ever touches the caller's own tokens; everything else,
 * unknown tokens included, is a silent 200. What revocation does per kind:
 *   refresh token       the whole family is revoked (status 'revoked'), and
 *                       the opaque access tokens minted from it are deleted;
 *   opaque access token its row is deleted;
 *   JWT access token    its jti enters revoked_jtis until its exp, which
 *                       introspection, userinfo and authz consult.
 */
#include <errno.h>
#include <string.h>

#include "core/log.h"
#include "core/timeutil.h"
#include "oauth/oauth_internal.h"

struct tok_req {
    struct http_request *req;
    struct node *n;
    struct db *db;
    struct tenant t;
    struct client c;
    struct http_params form;
    struct oauth_client_auth auth;
    const char *token;
    size_t token_len;
    const char *hint;
    int64_t now;
    struct oauth_token_info info;
};

/* Shared front half: form, client authentication, token parameter. */
static int begin(struct http_request *req, bool require_confidential, struct tok_req *r)
{
    struct oauth_error err;

    r->req = req;
    r->n = req->route_data;
    r->db = store_reader(r->n->store);
    r->now = time_wall_us() / 1000000;
    if (!req->content_type || strcmp(req->content_type, "application/x-www-form-urlencoded") != 0) {
        oauth_respond_err(req, 400, "invalid_request", "expected application/x-www-form-urlencoded");
        return -EINVAL;
    }
    if (oauth_form_parse(req->body.p, req->body.len, &req->arena, &r->form, &err) < 0 ||
        oauth_client_auth_parse(http_header(req, "Authorization"), &r->form, &req->arena, &r->auth, &err) < 0) {
        oauth_respond_error(req, &err);
        return -EINVAL;
    }
    if (oauth_load_tenant(r->n, req, r->db, &r->t) < 0)
        return -ENOENT;
    if (oauth_client_authenticate(r->db, r->t.name, &r->auth, require_confidential, &req->arena, &r->c,
                                  &err) < 0) {
        oauth_respond_error(req, &err);
        return -EACCES;
    }
    r->token = http_params_get(&r->form, "token");
    if (!r->token || !*r->token) {
        oauth_respond_err(req, 400, "invalid_request", "token is required");
        return -EINVAL;
    }
    r->token_len = strlen(r->token);
    r->hint = http_params_get(&r->form, "token_type_hint");
    return 0;
}

/* Finds what the token is, for this tenant. 0 (r->info filled), -ENOENT or -EIO. */
static int identify(struct tok_req *r)
{
    struct arena *a = &r->req->arena;
    int rc;

    if (oauth_looks_like_jwt(r->token, r->token_len)) {
        rc = oauth_jwt_verify(r->n, r->db, r->t.name, false, r->token, r->token_len, r->now, a, &r->info);
        return rc == -EACCES ? -ENOENT : rc;
    }
    bool refresh_first = r->hint && strcmp(r->hint, "refresh_token") == 0;
    for (int pass = 0; pass < 2; pass++) {
        bool refresh = (pass == 0) == refresh_first;
        if (refresh)
            rc = oauth_refresh_lookup(r->db, r->token, r->token_len, a, &r->info);
        else
            rc = oauth_opaque_lookup(r->n, r->db, r->token, r->token_len, r->now, a, &r->info);
        if (rc == -EIO)
            return rc;
        if (rc == 0 && strcmp(r->info.tenant, r->t.name) == 0)
            return 0;
    }
    memset(&r->info, 0, sizeof(r->info));
    return -ENOENT;
}

/* ---------------------------------------------------------- introspection */

static void respond_inactive(struct http_request *req)
{
    oauth_no_cache(req);
    http_respond(req, 200, "application/json", "{\"active\":false}", 16);
}

enum http_result oauth_introspect_handler(struct http_request *req)
{
    struct tok_req *r = arena_alloc(&req->arena, sizeof(*r));
    if (begin(req, true, r) < 0)
        return HTTP_DONE;
    int rc = identify(r);
    if (rc == -EIO) {
        oauth_respond_err(req, 500, "server_error", "storage error");
        return HTTP_DONE;
    }
    struct oauth_token_info *i = &r->info;
    if (rc < 0 || (i->kind == OAUTH_TOKEN_REFRESH && (strcmp(i->status, "active") != 0 || i->exp <= r->now))) {
        respond_inactive(req);
        return HTTP_DONE;
    }

    struct buf b;
    struct jw w;
    buf_init(&b, OAUTH_RESP_LIMIT);
    jw_begin(&w, &b);
    jw_bool(&w, "active", true);
    jw_str(&w, "scope", i->scope);
    jw_str(&w, "client_id", i->client_id);
    jw_str(&w, "sub", i->sub);
    jw_int(&w, "exp", i->exp);
    jw_int(&w, "iat", i->iat);
    jw_str(&w, "iss", r->t.issuer);
    jw_str(&w, "token_type", i->kind == OAUTH_TOKEN_REFRESH ? "refresh_token" : "Bearer");
    if (i->jti)
        jw_str(&w, "jti", i->jti);
    if (i->kind != OAUTH_TOKEN_REFRESH)
        jw_str(&w, "aud", r->t.issuer);
    if (i->auth_time)
        jw_int(&w, "auth_time", i->auth_time);
    jw_end(&w);
    oauth_no_cache(req);
    http_respond(req, 200, "application/json", b.data, b.len);
    buf_free(&b);
    return HTTP_DONE;
}

/* ------------------------------------------------------------- revocation */

static int revoke_write(struct db *db, void *arg)
{
    struct tok_req *r = arg;
    struct oauth_token_info *i = &r->info;

    switch (i->kind) {
    case OAUTH_TOKEN_REFRESH:
        return oauth_family_revoke(db, i->family_id);
    case OAUTH_TOKEN_OPAQUE:
        return db_execp(db, "DELETE FROM opaque_tokens WHERE token_hash = $1", i->hash, NULL);
    case OAUTH_TOKEN_JWT: {
        struct db_stmt *st = db_prepare(db, "INSERT INTO revoked_jtis (jti, tenant, expires_at)"
                                            " VALUES ($1, $2, $3) ON CONFLICT (jti) DO NOTHING");
        if (!st)
            return DB_ERR;
        db_bind_text(st, 1, i->jti, -1);
        db_bind_text(st, 2, i->tenant, -1);
        db_bind_int64(st, 3, i->exp);
        int rc = db_step(st);
        db_done(st);
        return rc < 0 ? rc : 0;
    }
    case OAUTH_TOKEN_NONE:
        break;
    }
    return 0;
}

static void revoke_ok(struct http_request *req)
{
    oauth_no_cache(req);
    http_respond(req, 200, NULL, NULL, 0);
}

static void revoke_done(void *arg, int rc)
{
    struct tok_req *r = arg;
    if (rc != 0)
        oauth_respond_write_error(r->req, rc);
    else
        revoke_ok(r->req);
    http_resume(r->req);
}

enum http_result oauth_revoke_handler(struct http_request *req)
{
    struct tok_req *r = arena_alloc(&req->arena, sizeof(*r));
    if (begin(req, false, r) < 0)
        return HTTP_DONE;
    int rc = identify(r);
    if (rc == -EIO) {
        oauth_respond_err(req, 500, "server_error", "storage error");
        return HTTP_DONE;
    }
    /* Unknown tokens and other clients' tokens: nothing to do, and say nothing. */
    if (rc < 0 || strcmp(r->info.client_id, r->c.client_id) != 0 ||
        (r->info.kind == OAUTH_TOKEN_REFRESH && strcmp(r->info.status, "revoked") == 0)) {
        revoke_ok(req);
        return HTTP_DONE;
    }
    log_info("token revoked", "tenant", r->t.name, "client_id", r->c.client_id, "kind",
             r->info.kind == OAUTH_TOKEN_JWT ? "jwt" : r->info.kind == OAUTH_TOKEN_OPAQUE ? "opaque" : "refresh",
             NULL);
    rc = store_submit(r->n->store, revoke_write, revoke_done, r);
    if (rc != 0) {
        oauth_respond_write_error(req, rc);
        return HTTP_DONE;
    }
    return HTTP_SUSPEND;
}
