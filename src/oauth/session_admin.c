/*
 * session_admin — the admin API over a user's SSO sessions:
 *
 *   GET    /admin/v1/users/{id}/sessions         -> 200 {"sessions": [...]}
 *   DELETE /admin/v1/users/{id}/sessions         -> 204 (every session)
 *   DELETE /admin/v1/users/{id}/sessions/{sid}   -> 204, or 404 for an unknown sid
 *
 * (per tenant, under /t/T as well). The caller needs an access token with
 * scope refuge:admin for the tenant (or the operator's token of `default`).
 * A revoked session's browser must sign in again at its next authorization
 * request; tokens already issued stay valid until they expire or are
 * revoked at /oauth2/revoke (sessions and tokens are separate grants).
 * Deletes go through the store writer; on a standby they answer 503.
 */
#include <errno.h>
#include <string.h>

#include "core/log.h"
#include "core/timeutil.h"
#include "oauth/authz.h"
#include "oauth/oauth_internal.h"
#include "oauth/session.h"

#define ADMIN_SCOPE "refuge:admin"
#define MAX_ID 256

struct del_job {
    struct http_request *req;
    struct node *n;
    const char *tenant;
    const char *user_id;
    const char *sid;            /* NULL: all */
    int64_t deleted;
};

static int auth(struct node *n, struct http_request *req)
{
    static const char *const scopes[] = { ADMIN_SCOPE, NULL };
    struct principal p;
    return authz_require(n, req, req->tenant, &p, scopes);
}

/* 0 when the user exists; else answers (404 / 500) and returns -1. */
static int user_exists(struct http_request *req, struct db *db, const char *user_id)
{
    struct db_stmt *st = db_prepare(db, "SELECT 1 FROM users WHERE tenant = $1 AND id = $2");
    if (!st) {
        http_respond_error(req, 500, "server_error", "storage error");
        return -1;
    }
    db_bind_text(st, 1, req->tenant, -1);
    db_bind_text(st, 2, user_id, -1);
    int rc = db_step(st);
    db_done(st);
    if (rc == DB_ROW)
        return 0;
    if (rc == DB_DONE)
        http_respond_error(req, 404, "not_found", "no such user");
    else
        http_respond_error(req, 500, "server_error", "storage error");
    return -1;
}

/* Tenant exists, caller authorized, path parameters sane. 0 or -1 (answered). */
static int common(struct node *n, struct http_request *req, struct db *db, const char **user_id)
{
    struct tenant t;
    if (auth(n, req) < 0)              /* first: unauthenticated callers learn nothing */
        return -1;
    if (oauth_load_tenant(n, req, db, &t) < 0)
        return -1;
    *user_id = http_path_param(req, "id");
    if (!*user_id || strlen(*user_id) > MAX_ID) {
        http_respond_error(req, 404, "not_found", "no such user");
        return -1;
    }
    return user_exists(req, db, *user_id);
}

static enum http_result list_handler(struct http_request *req)
{
    struct node *n = req->route_data;
    struct db *db = store_reader(n->store);
    const char *user_id;

    if (common(n, req, db, &user_id) < 0)
        return HTTP_DONE;
    json_t *arr = session_list_json(db, req->tenant, user_id, time_wall_us() / 1000000);
    if (!arr) {
        http_respond_error(req, 500, "server_error", "storage error");
        return HTTP_DONE;
    }
    http_respond_json(req, 200, json_pack("{s:o}", "sessions", arr));
    return HTTP_DONE;
}

static int del_write(struct db *db, void *arg)
{
    struct del_job *j = arg;
    return session_delete_user(db, j->tenant, j->user_id, j->sid, &j->deleted);
}

static void del_done(void *arg, int rc)
{
    struct del_job *j = arg;
    if (rc != 0)
        oauth_respond_write_error(j->req, rc);
    else if (j->sid && j->deleted == 0)
        http_respond_error(j->req, 404, "not_found", "no such session");
    else {
        log_info("admin: sessions revoked", "tenant", j->tenant, "user_id", j->user_id, "count",
                 log_i64(j->deleted), NULL);
        http_respond(j->req, 204, NULL, NULL, 0);
    }
    http_resume(j->req);
}

static enum http_result delete_handler(struct http_request *req)
{
    struct node *n = req->route_data;
    struct db *db = store_reader(n->store);
    struct del_job *j = arena_alloc(&req->arena, sizeof(*j));

    if (common(n, req, db, &j->user_id) < 0)
        return HTTP_DONE;
    j->req = req;
    j->n = n;
    j->tenant = req->tenant;
    j->sid = http_path_param(req, "sid");
    int rc = store_writable(n->store) ? store_submit(n->store, del_write, del_done, j) : -EROFS;
    if (rc != 0) {
        oauth_respond_write_error(req, rc);
        return HTTP_DONE;
    }
    return HTTP_SUSPEND;
}

size_t oauth_session_admin_routes(struct node *n, struct http_route *out, size_t max)
{
    const struct http_route routes[] = {
        { "GET", "/admin/v1/users/{id}/sessions", list_handler, HTTP_ROUTE_TENANT, "sessions", n },
        { "DELETE", "/admin/v1/users/{id}/sessions", delete_handler, HTTP_ROUTE_TENANT, "sessions", n },
        { "DELETE", "/admin/v1/users/{id}/sessions/{sid}", delete_handler, HTTP_ROUTE_TENANT, "sessions", n },
    };
    size_t k = sizeof(routes) / sizeof(routes[0]);
    if (k > max)
        k = max;
    memcpy(out, routes, k * sizeof(routes[0]));
    return k;
}
