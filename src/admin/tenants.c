/*
 * tenants — /admin/v1/tenants[/NAME] at the root, for the operator's token
 * only (a tenant's own admin cannot create, list or delete tenants).
 *
 *   POST   /admin/v1/tenants         {"name","display_name"?,"settings"?,"signing_alg"?}
 *                                    -> 201 tenant; its first signing key is
 *                                    created in the same transaction
 *   GET    /admin/v1/tenants         -> {"tenants":[tenant...]}
 *   GET    /admin/v1/tenants/NAME    -> tenant
 *   PUT    /admin/v1/tenants/NAME    {"display_name"?,"settings"?}: settings given replace the stored ones
 *   PATCH  /admin/v1/tenants/NAME    {"display_name"?,"settings"?}: settings are merged (RFC 7396:
 *                                    null removes a key, i.e. restores its default)
 *   DELETE /admin/v1/tenants/NAME    -> 204; everything of the tenant goes in one transaction
 *
 * A tenant is {"name","display_name","issuer","settings" (effective, with
 * defaults),"created_at","updated_at"}.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "admin/admin_internal.h"
#include "core/json.h"
#include "crypto/keys.h"
#include "identity/keyring.h"
#include "identity/tenant.h"

#define NAME_RULE "must be a lowercase DNS label: 1-63 characters of a-z, 0-9 and '-', " \
                  "not starting or ending with '-'"
#define DISPLAY_RULE "must be a string of 1..256 characters without control characters"

/* ------------------------------------------------------------ helpers */

/* RFC 7396 JSON merge patch of target by patch. New reference. */
static json_t *merge_patch(const json_t *target, const json_t *patch)
{
    const char *key;
    json_t *v, *out;

    if (!json_is_object(patch))
        return json_deep_copy(patch);
    out = json_is_object(target) ? json_deep_copy(target) : json_object();
    json_object_foreach((json_t *)patch, key, v) {
        if (json_is_null(v))
            json_object_del(out, key);
        else
            json_object_set_new(out, key, merge_patch(json_object_get(out, key), v));
    }
    return out;
}

/* Checks display_name and settings of a body; 0 or -1 after answering 400. */
static int check_common(struct http_request *req, const json_t *body, bool settings_are_patch)
{
    const json_t *dn = json_object_get(body, "display_name");
    const json_t *s = json_object_get(body, "settings");
    struct tenant_settings ts;
    char msg[256];

    if (dn && (!json_is_string(dn) || !tenant_display_name_valid(json_string_value(dn)) ||
               strlen(json_string_value(dn)) != json_string_length(dn))) {
        http_respond_error(req, 400, "invalid_request", "display_name: " DISPLAY_RULE);
        return -1;
    }
    if (s && !json_is_object(s)) {
        http_respond_error(req, 400, "invalid_request", "settings: must be an object");
        return -1;
    }
    /* a merge patch may hold nulls; it is validated after merging */
    if (s && !settings_are_patch && tenant_settings_parse(s, &ts, msg, sizeof(msg)) < 0) {
        http_respond_error(req, 400, "invalid_request", arena_strdup(&req->arena, msg));
        return -1;
    }
    return 0;
}

/* Loads the tenant on the writer's connection into the job's response. */
static int respond_tenant(struct db *db, struct admin_job *j, const char *name)
{
    struct tenant t;
    int rc = tenant_load(db, name, j->n->conf->public_url, &j->req->arena, &t);

    if (rc == 0)
        j->resp = tenant_to_json(&t);
    return rc;
}

/* The {name} path parameter, or NULL after answering 404. */
static const char *path_tenant(struct http_request *req)
{
    const char *name = http_path_param(req, "name");

    if (!tenant_name_valid(name)) {
        http_respond_error(req, 404, "not_found", "no such tenant");
        return NULL;
    }
    return name;
}

/* ------------------------------------------------------------- create */

struct create {
    const char *display_name;
    const json_t *settings;
    const char *alg;
};

static int create_run(struct db *db, struct admin_job *j)
{
    struct create *c = j->data;
    int64_t ttl;
    char kid[64];
    int rc;

    rc = tenant_insert(db, j->id, c->display_name, c->settings);
    if (rc == -EEXIST)
        snprintf(j->msg, sizeof(j->msg), "tenant %s already exists", j->id);
    if (rc < 0)
        return rc;
    rc = tenant_max_token_ttl(db, j->id, &ttl);
    if (rc < 0)
        return rc;
    rc = keyring_rotate(db, j->n->master_key, j->id, c->alg, ttl, kid);
    if (rc < 0)
        return rc;
    return respond_tenant(db, j, j->id);
}

static enum http_result tenant_create(struct http_request *req)
{
    static const char *const known[] = { "name", "display_name", "settings", "signing_alg", NULL };
    struct node *n = req->route_data;
    struct principal p;
    struct admin_job *j;
    struct create *c;
    json_t *body, *v;
    enum crypto_alg alg;

    if (admin_auth(n, req, true, &p) < 0)
        return HTTP_DONE;
    if (!(body = admin_body(req, false)))
        return HTTP_DONE;
    if (admin_known_fields(req, body, known) < 0 || check_common(req, body, false) < 0)
        goto bad;
    v = json_object_get(body, "name");
    if (!v) {
        http_respond_error(req, 400, "invalid_request", "name: required");
        goto bad;
    }
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) ||
        !tenant_name_valid(json_string_value(v))) {
        http_respond_error(req, 400, "invalid_request", "name: " NAME_RULE);
        goto bad;
    }
    j = admin_job_new(n, req, create_run);
    c = arena_alloc(&req->arena, sizeof(*c));
    j->data = c;
    j->body = body;
    j->id = arena_strdup(&req->arena, json_string_value(v));
    j->status = 201;
    j->location = arena_sprintf(&req->arena, "/admin/v1/tenants/%s", j->id);
    j->invalidate_keyring = true;
    c->display_name = jsonx_str(body, "display_name", NULL);
    c->settings = json_object_get(body, "settings");
    c->alg = "ES256";
    if ((v = json_object_get(body, "signing_alg"))) {
        if (!json_is_string(v) ||
            crypto_alg_parse(json_string_value(v), json_string_length(v), &alg) < 0) {
            http_respond_error(req, 400, "invalid_request",
                               "signing_alg: must be \"ES256\", \"RS256\" or \"EdDSA\"");
            goto bad;
        }
        c->alg = crypto_alg_name(alg);
    }
    return admin_submit(j);
bad:
    json_decref(body);
    return HTTP_DONE;
}

/* --------------------------------------------------------------- read */

static enum http_result tenant_list(struct http_request *req)
{
    struct node *n = req->route_data;
    struct principal p;
    json_t *list;

    if (admin_auth(n, req, true, &p) < 0)
        return HTTP_DONE;
    list = tenant_list_json(store_reader(n->store), n->conf->public_url);
    if (!list) {
        admin_respond_errno(req, -EIO, NULL, NULL);
        return HTTP_DONE;
    }
    http_respond_json(req, 200, json_pack("{s:o}", "tenants", list));
    return HTTP_DONE;
}

static enum http_result tenant_get(struct http_request *req)
{
    struct node *n = req->route_data;
    struct principal p;
    struct tenant t;
    const char *name;
    int rc;

    if (admin_auth(n, req, true, &p) < 0 || !(name = path_tenant(req)))
        return HTTP_DONE;
    rc = tenant_load(store_reader(n->store), name, n->conf->public_url, &req->arena, &t);
    if (rc < 0 && rc != -EINVAL)
        admin_respond_errno(req, rc, NULL, "no such tenant");
    else
        http_respond_json(req, 200, tenant_to_json(&t));
    return HTTP_DONE;
}

/* ------------------------------------------------------------- update */

struct update {
    bool patch;
};

static int update_run(struct db *db, struct admin_job *j)
{
    struct update *u = j->data;
    const json_t *settings = json_object_get(j->body, "settings");
    const char *display_name = jsonx_str(j->body, "display_name", NULL);
    json_t *merged = NULL;
    struct tenant_settings ts;
    int rc;

    if (settings && u->patch) {
        struct tenant t;
        json_t *cur;
        rc = tenant_load(db, j->id, "", &j->req->arena, &t);
        if (rc < 0 && rc != -EINVAL)
            return rc;
        cur = json_loads(t.settings_text, 0, NULL);
        merged = merge_patch(cur, settings);
        json_decref(cur);
        rc = tenant_settings_parse(merged, &ts, j->msg, sizeof(j->msg));
        if (rc < 0)
            goto out;
        settings = merged;
    }
    rc = tenant_update(db, j->id, display_name, settings);
    if (rc == 0)
        rc = respond_tenant(db, j, j->id);
out:
    json_decref(merged);
    return rc;
}

static enum http_result tenant_update_h(struct http_request *req)
{
    static const char *const known[] = { "name", "display_name", "settings", "issuer", "created_at",
                                         "updated_at", NULL };
    struct node *n = req->route_data;
    struct principal p;
    struct admin_job *j;
    struct update *u;
    const char *name;
    json_t *body, *v;

    if (admin_auth(n, req, true, &p) < 0 || !(name = path_tenant(req)))
        return HTTP_DONE;
    if (!(body = admin_body(req, false)))
        return HTTP_DONE;
    bool patch = strcmp(req->method, "PATCH") == 0;
    if (admin_known_fields(req, body, known) < 0 || check_common(req, body, patch) < 0)
        goto bad;
    if ((v = json_object_get(body, "name")) &&
        (!json_is_string(v) || strcmp(json_string_value(v), name) != 0)) {
        http_respond_error(req, 400, "invalid_request", "name: cannot be changed");
        goto bad;
    }
    j = admin_job_new(n, req, update_run);
    u = arena_alloc(&req->arena, sizeof(*u));
    u->patch = patch;
    j->data = u;
    j->body = body;
    j->id = name;
    j->not_found = "no such tenant";
    return admin_submit(j);
bad:
    json_decref(body);
    return HTTP_DONE;
}

/* ------------------------------------------------------------- delete */

static int delete_run(struct db *db, struct admin_job *j)
{
    int rc = tenant_delete(db, j->id);

    if (rc == -EPERM)
        snprintf(j->msg, sizeof(j->msg), "the default tenant cannot be deleted");
    return rc;
}

static enum http_result tenant_delete_h(struct http_request *req)
{
    struct node *n = req->route_data;
    struct principal p;
    struct admin_job *j;
    const char *name;

    if (admin_auth(n, req, true, &p) < 0 || !(name = path_tenant(req)))
        return HTTP_DONE;
    j = admin_job_new(n, req, delete_run);
    j->id = name;
    j->status = 204;
    j->not_found = "no such tenant";
    j->invalidate_keyring = true;
    return admin_submit(j);
}

/* ------------------------------------------------------------- routes */

size_t admin_tenant_routes(struct node *n, struct http_route *out, size_t max)
{
    const struct http_route routes[] = {
        { "POST", "/admin/v1/tenants", tenant_create, 0, "admin_tenants", n },
        { "GET", "/admin/v1/tenants", tenant_list, 0, "admin_tenants", n },
        { "GET", "/admin/v1/tenants/{name}", tenant_get, 0, "admin_tenant", n },
        { "PUT", "/admin/v1/tenants/{name}", tenant_update_h, 0, "admin_tenant", n },
        { "PATCH", "/admin/v1/tenants/{name}", tenant_update_h, 0, "admin_tenant", n },
        { "DELETE", "/admin/v1/tenants/{name}", tenant_delete_h, 0, "admin_tenant", n },
    };
    return admin_copy_routes(routes, sizeof(routes) / sizeof(routes[0]), out, max);
}
