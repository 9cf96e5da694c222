/*
 * routes — the SCIM route table and what every SCIM handler shares: the
 * prologue (token, scopes, tenant), SCIM-shaped responses and errors, and
 * request bodies. See scim.h for the endpoints and scim_internal.h for the
 * error conventions.
 */
#include "scim/scim.h"
#include "repl/repl.h"

#include <errno.h>
#include <string.h>

#include "core/json.h"
#include "scim/scim_internal.h"

#define ADMIN_SCOPE "refuge:admin"

/* ------------------------------------------------------------ responses */

void scim_respond(struct http_request *req, int status, json_t *body)
{
    char *s;

    if (!body) {
        http_respond(req, status, NULL, NULL, 0);
        return;
    }
    s = jsonx_dump(body);
    http_respond(req, status, SCIM_CONTENT_TYPE, s, strlen(s));
    free(s);
    json_decref(body);
}

void scim_respond_error(struct http_request *req, int status, const char *scim_type, const char *detail)
{
    scim_respond(req, status, scim_error_json(status, scim_type, detail));
}

void scim_respond_errno(struct http_request *req, int rc, const char *scim_type, const char *detail)
{
    json_t *j;

    if (detail && !*detail)
        detail = NULL;
    switch (rc) {
    case -EINVAL:
        scim_respond_error(req, 400, scim_type ? scim_type : SCIM_INVALID_VALUE, detail ? detail : "invalid request");
        return;
    case -ENOENT:
        scim_respond_error(req, 404, NULL, detail ? detail : "no such resource");
        return;
    case -EEXIST:
        scim_respond_error(req, 409, SCIM_UNIQUENESS, detail ? detail : "already exists");
        return;
    case -ESTALE:
        scim_respond_error(req, 412, NULL, detail ? detail : "the resource has changed (If-Match does not match)");
        return;
    case -EROFS:
    case -EBUSY: {
        char why[256];
        const char *text = repl_write_error(req->route_data, rc, why, sizeof(why));
        if (!text && rc == -EBUSY)
            goto busy;
        if (!text)
            text = SCIM_STANDBY_MSG;
        j = scim_error_json(503, NULL, text);
        json_object_set_new(j, "error", json_string("temporarily_unavailable"));
        json_object_set_new(j, "error_description", json_string(text));
        http_add_header(req, "Retry-After", "1");
        scim_respond(req, 503, j);
        return;
    }
    case -EAGAIN:
    busy:
        http_add_header(req, "Retry-After", "1");
        scim_respond_error(req, 503, NULL, "the server is busy; retry");
        return;
    case -ESHUTDOWN:
        scim_respond_error(req, 503, NULL, "the node is shutting down");
        return;
    case -ENOSPC:
        scim_respond_error(req, 507, NULL, "the store is out of disk space");
        return;
    default:
        scim_respond_error(req, 500, NULL, "storage error");
        return;
    }
}

/* The bearer check answered in RFC 6750 form; keep its status and
 * WWW-Authenticate header, and give the body the SCIM error shape. */
static void auth_error_to_scim(struct http_request *req)
{
    json_t *j = json_loadb(req->resp_body.data ? req->resp_body.data : "", req->resp_body.len, 0, NULL);
    const char *desc = jsonx_str(j, "error_description", jsonx_str(j, "error", "unauthorized"));
    char *copy = arena_strdup(&req->arena, desc);
    int status = req->status ? req->status : 401;

    json_decref(j);
    scim_respond_error(req, status, NULL, copy);
}

/* -------------------------------------------------------------- prologue */

int scim_begin(struct node *n, struct http_request *req, enum scim_access acc, struct scim_ctx *c)
{
    static const char *const read_scopes[] = { "scim:read", "scim:write", ADMIN_SCOPE, NULL };
    static const char *const write_scopes[] = { "scim:write", ADMIN_SCOPE, NULL };
    int rc;

    memset(c, 0, sizeof(*c));
    c->n = n;
    c->req = req;
    if (acc == SCIM_ME) {
        if (authz_bearer(n, req, req->tenant, &c->p) < 0) {
            auth_error_to_scim(req);
            return -1;
        }
        if (!c->p.user_id || strcmp(c->p.tenant, req->tenant) != 0) {
            scim_respond_error(req, 404, NULL, "the access token does not belong to a user of this tenant");
            return -1;
        }
    } else if (acc != SCIM_PUBLIC) {
        if (authz_require(n, req, req->tenant, &c->p, acc == SCIM_WRITE ? write_scopes : read_scopes) < 0) {
            auth_error_to_scim(req);
            return -1;
        }
    }
    rc = tenant_load(store_reader(n->store), req->tenant, n->conf->public_url, &req->arena, &c->tenant);
    if (rc == -ENOENT) {
        scim_respond_error(req, 404, NULL, arena_sprintf(&req->arena, "no such tenant: %s", req->tenant));
        return -1;
    }
    if (rc < 0 && rc != -EINVAL) {          /* -EINVAL: settings unreadable (logged), defaults apply */
        scim_respond_errno(req, rc, NULL, NULL);
        return -1;
    }
    c->base = arena_sprintf(&req->arena, "%s/scim2", c->tenant.issuer);
    return 0;
}

/* ------------------------------------------------------------------ body */

json_t *scim_body(struct http_request *req)
{
    const char *ct = req->content_type;
    char errmsg[160];
    json_t *j;
    size_t n;

    if (ct && *ct) {
        n = strlen(ct);
        if (strcmp(ct, "application/json") != 0 && !(n > 5 && strcmp(ct + n - 5, "+json") == 0)) {
            scim_respond_error(req, 415, NULL, "send application/scim+json or application/json");
            return NULL;
        }
    }
    errmsg[0] = '\0';
    j = jsonx_parse(req->body.p ? req->body.p : "", req->body.len, SCIM_JSON_DEPTH, errmsg, sizeof(errmsg));
    if (!j) {
        scim_respond_error(req, 400, SCIM_INVALID_SYNTAX,
                           arena_strdup(&req->arena, errmsg[0] ? errmsg : "the body is not valid JSON"));
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        scim_respond_error(req, 400, SCIM_INVALID_SYNTAX, "the body must be a JSON object");
        return NULL;
    }
    return j;
}

int scim_query_sel(struct http_request *req, const struct scim_resource_type *rt, struct scim_attr_sel *sel)
{
    const char *attrs = http_query(req, "attributes"), *excl = http_query(req, "excludedAttributes");
    struct scim_err err;

    if (attrs && excl) {
        scim_respond_error(req, 400, SCIM_INVALID_VALUE, "give attributes or excludedAttributes, not both");
        return -1;
    }
    if (scim_attr_sel_parse(rt, attrs, excl, false, sel, &err) < 0) {
        scim_respond_error(req, 400, err.scim_type, arena_strdup(&req->arena, err.detail));
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- routes */

size_t scim_routes(struct node *n, struct http_route *out, size_t max)
{
    size_t k = 0;

    k += scim_resource_routes(n, out + k, max - k);
    k += scim_list_routes(n, out + k, max - k);
    k += scim_discovery_routes(n, out + k, max - k);
    return k;
}
