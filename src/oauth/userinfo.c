/*
 * userinfo — GET/POST /oauth2/userinfo (OIDC Core §5.3): the claims about
 * the user behind a bearer access token, limited to the token's scopes.
 * The token must be a user token of this very tenant carrying `openid`
 * (the operator's super-admin token of `default` is no user's token);
 * the user must still exist and be active. A directory user
 * (ldap/userstore.h) is read from its directory, on the userstore's pool,
 * with the connection suspended meanwhile.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "ldap/userstore.h"
#include "oauth/authz.h"
#include "identity/group.h"
#include "oauth/oauth_internal.h"

static void invalid_token(struct http_request *req, const char *desc)
{
    http_add_header(req, "WWW-Authenticate",
                    arena_sprintf(&req->arena, "Bearer realm=\"%s\", error=\"invalid_token\"", req->tenant));
    http_respond_error(req, 401, "invalid_token", desc);
}

struct directory_info {
    struct http_request *req;
    struct oauth_scopes scope;
};

/* Pool-thread callback: the directory's view of the user. */
static void directory_info_done(void *arg, struct userstore_reply *r)
{
    struct directory_info *d = arg;
    struct http_request *req = d->req;

    if (r->rc == 0) {
        char *data = jsonx_dump(r->user.scim);
        json_t *out = json_object();
        json_object_set_new(out, "sub", json_string(r->user.id));
        oauth_user_claims(out, &d->scope, data, r->user.user_name, 0);
        if (oauth_scopes_has(&d->scope, "groups"))
            json_object_set(out, "groups", r->user.groups);
        free(data);
        oauth_no_cache(req);
        http_respond_json(req, 200, out);
    } else if (r->rc == -ENOENT) {
        invalid_token(req, "the user no longer exists or is inactive");
    } else {
        http_respond_error(req, 503, "temporarily_unavailable", "the user directory is unavailable");
    }
    http_resume(req);
}

static enum http_result directory_userinfo(struct node *n, struct http_request *req, const char *tenant,
                                           const struct principal *p)
{
    struct directory_info *d = arena_alloc(&req->arena, sizeof(*d));
    int rc;

    d->req = req;
    oauth_scope_parse(p->scope, strlen(p->scope), &req->arena, &d->scope);
    rc = userstore_lookup_async(n, tenant, p->user_id, directory_info_done, d);
    if (rc == 0)
        return HTTP_SUSPEND;
    if (rc == -ENOENT || rc == -EINVAL)
        invalid_token(req, "the user no longer exists or is inactive");
    else
        http_respond_error(req, 503, "temporarily_unavailable", "the user directory is unavailable");
    return HTTP_DONE;
}

enum http_result oauth_userinfo_handler(struct http_request *req)
{
    struct node *n = req->route_data;
    struct db *db = store_reader(n->store);
    struct principal p;
    struct tenant t;

    if (oauth_load_tenant(n, req, db, &t) < 0)
        return HTTP_DONE;
    if (authz_bearer(n, req, t.name, &p) < 0)
        return HTTP_DONE;
    if (strcmp(p.tenant, t.name) != 0 || !p.user_id) {
        invalid_token(req, "not a user access token of this tenant");
        return HTTP_DONE;
    }
    if (!authz_has_scope(&p, "openid")) {
        http_add_header(req, "WWW-Authenticate",
                        arena_sprintf(&req->arena, "Bearer realm=\"%s\", error=\"insufficient_scope\","
                                                   " scope=\"openid\"", req->tenant));
        http_respond_error(req, 403, "insufficient_scope", "the access token lacks the openid scope");
        return HTTP_DONE;
    }
    if (userstore_is_user_id(p.user_id))
        return directory_userinfo(n, req, t.name, &p);

    struct db_stmt *st = db_prepare(db, "SELECT active, user_name, data, updated_at FROM users"
                                        " WHERE tenant = $1 AND id = $2");
    if (!st) {
        http_respond_error(req, 500, "server_error", "storage error");
        return HTTP_DONE;
    }
    db_bind_text(st, 1, t.name, -1);
    db_bind_text(st, 2, p.user_id, -1);
    int rc = db_step(st);
    bool ok = rc == DB_ROW && db_col_int64(st, 0) != 0;
    const char *user_name = ok ? arena_strdup(&req->arena, db_col_text(st, 1)) : NULL;
    const char *data = ok ? arena_strdup(&req->arena, db_col_text(st, 2)) : NULL;
    int64_t updated_at = ok ? db_col_int64(st, 3) : 0;
    db_done(st);
    if (rc < 0) {
        http_respond_error(req, 500, "server_error", "storage error");
        return HTTP_DONE;
    }
    if (!ok) {
        invalid_token(req, "the user no longer exists or is inactive");
        return HTTP_DONE;
    }

    struct oauth_scopes scope;
    oauth_scope_parse(p.scope, strlen(p.scope), &req->arena, &scope);
    json_t *out = json_object();
    json_object_set_new(out, "sub", json_string(p.user_id));
    oauth_user_claims(out, &scope, data, user_name, updated_at);
    if (oauth_scopes_has(&scope, "groups"))
        json_object_set_new(out, "groups", user_groups_json(db, t.name, p.user_id));
    oauth_no_cache(req);
    http_respond_json(req, 200, out);
    return HTTP_DONE;
}
