/*
 * clients — /admin/v1/clients[/ID] of a tenant (also under /t/T/...), for
 * the tenant's admin token or the operator's.
 *
 *   POST   /admin/v1/clients              client body -> 201 client + "client_secret" (once)
 *   GET    /admin/v1/clients              -> {"clients":[client...]}
 *   GET    /admin/v1/clients/ID           -> client
 *   PUT    /admin/v1/clients/ID           fields given replace the stored ones
 *   PATCH  /admin/v1/clients/ID           (the same: arrays are replaced whole)
 *   DELETE /admin/v1/clients/ID           -> 204; the client's tokens go too
 *   POST   /admin/v1/clients/ID/secret    -> {"client_id","client_secret"}: a new
 *                                         secret, the old one stops working
 *
 * The clear secret exists only in the response to POST and .../secret; the
 * store holds its hash (identity/client.h). Validation rules: client.h.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "admin/admin_internal.h"
#include "identity/client.h"
#include "identity/tenant.h"

/* The {id} path parameter, or NULL after answering 404. */
static const char *path_client(struct http_request *req)
{
    const char *id = http_path_param(req, "id");

    if (!id || !client_id_valid(id, strlen(id))) {
        http_respond_error(req, 404, "not_found", "no such client");
        return NULL;
    }
    return id;
}

/* Authenticates and checks that the tenant exists; 0 or -1 after answering. */
static int prologue(struct node *n, struct http_request *req)
{
    struct principal p;

    if (admin_auth(n, req, false, &p) < 0 || admin_tenant_exists(n, req) < 0)
        return -1;
    return 0;
}

/* ------------------------------------------------------------- create */

static int create_run(struct db *db, struct admin_job *j)
{
    struct client *c = j->data;
    int rc = client_insert(db, c, c->confidential ? j->secret : NULL);

    if (rc == -EEXIST)
        snprintf(j->msg, sizeof(j->msg), "client %s already exists", c->client_id);
    if (rc < 0)
        return rc;
    rc = client_load(db, c->tenant, c->client_id, &j->req->arena, c);
    if (rc < 0)
        return rc;
    j->resp = client_to_json(c);
    if (c->confidential)
        json_object_set_new(j->resp, "client_secret", json_string(j->secret));
    return 0;
}

static enum http_result client_create(struct http_request *req)
{
    struct node *n = req->route_data;
    struct admin_job *j;
    struct client *c;
    char msg[256];
    json_t *body;

    if (prologue(n, req) < 0 || !(body = admin_body(req, false)))
        return HTTP_DONE;
    c = arena_alloc(&req->arena, sizeof(*c));
    c->tenant = req->tenant;
    msg[0] = '\0';
    if (client_from_json(body, false, &req->arena, c, msg, sizeof(msg)) < 0) {
        http_respond_error(req, 400, "invalid_request", arena_strdup(&req->arena, msg));
        json_decref(body);
        return HTTP_DONE;
    }
    json_decref(body);            /* c's strings are in the arena */
    j = admin_job_new(n, req, create_run);
    j->data = c;
    j->status = 201;
    j->not_found = "no such tenant";
    j->location = arena_sprintf(&req->arena, "%s/admin/v1/clients/%s",
                                req->tenant_explicit ? arena_sprintf(&req->arena, "/t/%s", req->tenant) : "",
                                c->client_id);
    if (c->confidential)
        crypto_secret_generate(j->secret);
    return admin_submit(j);
}

/* --------------------------------------------------------------- read */

static enum http_result client_list(struct http_request *req)
{
    struct node *n = req->route_data;
    json_t *list;

    if (prologue(n, req) < 0)
        return HTTP_DONE;
    list = client_list_json(store_reader(n->store), req->tenant);
    if (!list) {
        admin_respond_errno(req, -EIO, NULL, NULL);
        return HTTP_DONE;
    }
    http_respond_json(req, 200, json_pack("{s:o}", "clients", list));
    return HTTP_DONE;
}

static enum http_result client_get(struct http_request *req)
{
    struct node *n = req->route_data;
    struct client c;
    const char *id;
    int rc;

    if (prologue(n, req) < 0 || !(id = path_client(req)))
        return HTTP_DONE;
    rc = client_load(store_reader(n->store), req->tenant, id, &req->arena, &c);
    if (rc < 0)
        admin_respond_errno(req, rc, NULL, "no such client");
    else
        http_respond_json(req, 200, client_to_json(&c));
    return HTTP_DONE;
}

/* ------------------------------------------------------------- update */

/* Load, merge and validate on the writer, so concurrent updates cannot lose each other. */
static int update_run(struct db *db, struct admin_job *j)
{
    struct client c;
    int rc = client_load(db, j->tenant, j->id, &j->req->arena, &c);

    if (rc < 0)
        return rc;
    if (client_from_json(j->body, true, &j->req->arena, &c, j->msg, sizeof(j->msg)) < 0)
        return -EINVAL;
    rc = client_update(db, &c);
    if (rc < 0)
        return rc;
    rc = client_load(db, j->tenant, j->id, &j->req->arena, &c);
    if (rc == 0)
        j->resp = client_to_json(&c);
    return rc;
}

static enum http_result client_update_h(struct http_request *req)
{
    struct node *n = req->route_data;
    struct admin_job *j;
    const char *id;
    json_t *body;

    if (prologue(n, req) < 0 || !(id = path_client(req)) || !(body = admin_body(req, false)))
        return HTTP_DONE;
    j = admin_job_new(n, req, update_run);
    j->id = id;
    j->body = body;
    j->not_found = "no such client";
    return admin_submit(j);
}

/* ------------------------------------------------------------- delete */

static int delete_run(struct db *db, struct admin_job *j)
{
    return client_delete(db, j->tenant, j->id);
}

static enum http_result client_delete_h(struct http_request *req)
{
    struct node *n = req->route_data;
    struct admin_job *j;
    const char *id;

    if (prologue(n, req) < 0 || !(id = path_client(req)))
        return HTTP_DONE;
    j = admin_job_new(n, req, delete_run);
    j->id = id;
    j->status = 204;
    j->not_found = "no such client";
    return admin_submit(j);
}

/* ------------------------------------------------------------- secret */

static int secret_run(struct db *db, struct admin_job *j)
{
    int rc = client_set_secret(db, j->tenant, j->id, j->secret);

    if (rc == -EINVAL)
        snprintf(j->msg, sizeof(j->msg), "client %s is public: public clients have no secret", j->id);
    if (rc == 0)
        j->resp = json_pack("{s:s, s:s}", "client_id", j->id, "client_secret", j->secret);
    return rc;
}

static enum http_result client_secret(struct http_request *req)
{
    struct node *n = req->route_data;
    struct admin_job *j;
    const char *id;

    if (prologue(n, req) < 0 || !(id = path_client(req)))
        return HTTP_DONE;
    j = admin_job_new(n, req, secret_run);
    j->id = id;
    j->not_found = "no such client";
    crypto_secret_generate(j->secret);
    return admin_submit(j);
}

/* ------------------------------------------------------------- routes */

size_t admin_client_routes(struct node *n, struct http_route *out, size_t max)
{
    const struct http_route routes[] = {
        { "POST", "/admin/v1/clients", client_create, HTTP_ROUTE_TENANT, "admin_clients", n },
        { "GET", "/admin/v1/clients", client_list, HTTP_ROUTE_TENANT, "admin_clients", n },
        { "GET", "/admin/v1/clients/{id}", client_get, HTTP_ROUTE_TENANT, "admin_client", n },
        { "PUT", "/admin/v1/clients/{id}", client_update_h, HTTP_ROUTE_TENANT, "admin_client", n },
        { "PATCH", "/admin/v1/clients/{id}", client_update_h, HTTP_ROUTE_TENANT, "admin_client", n },
        { "DELETE", "/admin/v1/clients/{id}", client_delete_h, HTTP_ROUTE_TENANT, "admin_client", n },
        { "POST", "/admin/v1/clients/{id}/secret", client_secret, HTTP_ROUTE_TENANT, "admin_client_secret",
          n },
    };
    return admin_copy_routes(routes, sizeof(routes) / sizeof(routes[0]), out, max);
}
