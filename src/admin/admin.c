/*
 * admin — the route table of the admin API and what its handlers share:
 * caller authentication, JSON bodies, error answers, and write jobs.
 *
 * Writes never block an HTTP worker: a handler validates what it can, then
 * queues a job for the store writer and suspends the connection; the job's
 * done callback (on the writer thread, after COMMIT) answers and resumes.
 * Only after the commit is the keyring invalidated, so no reader can cache
 * the keys of a transaction that then failed.
 */
#include "admin/admin_internal.h"
#include "repl/repl.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "identity/keyring.h"
#include "identity/tenant.h"

#define STANDBY_MSG "this node is a standby; writes go to the active region"

/* --------------------------------------------------------------- auth */

int admin_auth(struct node *n, struct http_request *req, bool super_only, struct principal *p)
{
    static const char *const scopes[] = { ADMIN_SCOPE, NULL };

    if (authz_require(n, req, req->tenant, p, scopes) < 0)
        return -1;
    if (super_only && !p->super_admin) {
        http_add_header(req, "WWW-Authenticate",
                        "Bearer error=\"insufficient_scope\", scope=\"" ADMIN_SCOPE "\"");
        http_respond_error(req, 403, "insufficient_scope",
                           "this operation needs an admin token of the default tenant");
        return -1;
    }
    return 0;
}

/* --------------------------------------------------------------- body */

json_t *admin_body(struct http_request *req, bool allow_empty)
{
    json_t *j;
    size_t i;

    for (i = 0; i < req->body.len; i++)
        if (!strchr(" \t\r\n", req->body.p[i]))
            break;
    if (i == req->body.len) {
        if (allow_empty)
            return json_object();
        http_respond_error(req, 400, "invalid_request", "a JSON object body is required");
        return NULL;
    }
    j = http_json_body(req);
    if (j && !json_is_object(j)) {
        json_decref(j);
        http_respond_error(req, 400, "invalid_request", "the body must be a JSON object");
        return NULL;
    }
    return j;
}

int admin_known_fields(struct http_request *req, const json_t *body, const char *const *known)
{
    const char *key;
    json_t *v;

    json_object_foreach((json_t *)body, key, v) {
        size_t i;
        for (i = 0; known[i]; i++)
            if (strcmp(key, known[i]) == 0)
                break;
        if (!known[i]) {
            http_respond_error(req, 400, "invalid_request",
                               arena_sprintf(&req->arena, "%.64s: unknown field", key));
            return -1;
        }
    }
    return 0;
}

int admin_tenant_exists(struct node *n, struct http_request *req)
{
    struct tenant t;
    int rc = tenant_load(store_reader(n->store), req->tenant, n->conf->public_url, &req->arena, &t);

    if (rc == -ENOENT) {
        http_respond_error(req, 404, "not_found",
                           arena_sprintf(&req->arena, "no such tenant: %s", req->tenant));
        return -1;
    }
    if (rc < 0 && rc != -EINVAL) {   /* -EINVAL: exists, settings unreadable (logged) */
        admin_respond_errno(req, rc, NULL, NULL);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------- errors */

void admin_respond_errno(struct http_request *req, int rc, const char *msg, const char *not_found)
{
    if (msg && !*msg)
        msg = NULL;
    switch (rc) {
    case -EINVAL:
        http_respond_error(req, 400, "invalid_request", msg ? msg : "invalid request");
        break;
    case -EPERM:
        http_respond_error(req, 400, "invalid_request", msg ? msg : "not allowed");
        break;
    case -ENOENT:
        http_respond_error(req, 404, "not_found", msg ? msg : not_found ? not_found : "not found");
        break;
    case -EEXIST:
        http_respond_error(req, 409, "conflict", msg ? msg : "already exists");
        break;
    case -EROFS:
    case -EBUSY: {
        /* Replication's words: the active node's name, or how far behind the standby is. */
        char why[256];
        const char *text = repl_write_error(req->route_data, rc, why, sizeof(why));
        http_add_header(req, "Retry-After", "1");
        http_respond_error(req, 503, "temporarily_unavailable",
                           text ? arena_strdup(&req->arena, text) : rc == -EROFS ? STANDBY_MSG : "busy; retry");
        break;
    }
    case -EAGAIN:
        http_add_header(req, "Retry-After", "1");
        http_respond_error(req, 503, "temporarily_unavailable", "the write queue is full; retry");
        break;
    case -ESHUTDOWN:
        http_respond_error(req, 503, "temporarily_unavailable", "the node is shutting down");
        break;
    case -ENOSPC:
        http_respond_error(req, 507, "server_error", "the store is out of disk space");
        break;
    default:
        http_respond_error(req, 500, "server_error", "storage error");
        break;
    }
}

/* --------------------------------------------------------------- jobs */

struct admin_job *admin_job_new(struct node *n, struct http_request *req, admin_run_fn run)
{
    struct admin_job *j = arena_alloc(&req->arena, sizeof(*j));

    j->req = req;
    j->n = n;
    j->run = run;
    j->tenant = req->tenant;
    j->status = 200;
    return j;
}

/* On the writer thread, inside the batch transaction. */
static int job_write(struct db *db, void *arg)
{
    struct admin_job *j = arg;
    int rc = j->run(db, j);

    if (rc < 0 && j->resp) {
        json_decref(j->resp);
        j->resp = NULL;
    }
    return rc;
}

/* On the writer thread, after COMMIT (rc = 0) or the rollback. */
static void job_done(void *arg, int rc)
{
    struct admin_job *j = arg;
    struct http_request *req = j->req;

    if (rc == 0) {
        if (j->invalidate_keyring)
            keyring_invalidate(j->n->keyring);
        if (j->location)
            http_add_header(req, "Location", j->location);
        if (j->resp) {
            http_respond_json(req, j->status, j->resp);
            j->resp = NULL;
        } else {
            http_respond(req, j->status, NULL, NULL, 0);
        }
    } else {
        json_decref(j->resp);
        j->resp = NULL;
        admin_respond_errno(req, rc, j->msg, j->not_found);
    }
    json_decref(j->body);
    j->body = NULL;
    crypto_wipe(j->secret, sizeof(j->secret));
    http_resume(req);              /* req may be gone after this */
}

enum http_result admin_submit(struct admin_job *j)
{
    int rc = store_writable(j->n->store) ? 0 : -EROFS;

    if (rc == 0)
        rc = store_submit(j->n->store, job_write, job_done, j);
    if (rc != 0) {
        json_decref(j->body);
        j->body = NULL;
        crypto_wipe(j->secret, sizeof(j->secret));
        admin_respond_errno(j->req, rc, NULL, NULL);
        return HTTP_DONE;
    }
    return HTTP_SUSPEND;
}

/* ------------------------------------------------------------- routes */

size_t admin_copy_routes(const struct http_route *routes, size_t n, struct http_route *out, size_t max)
{
    size_t k = n < max ? n : max;

    memcpy(out, routes, k * sizeof(*routes));
    return k;
}

size_t admin_routes(struct node *n, struct http_route *out, size_t max)
{
    size_t k = 0;

    k += admin_tenant_routes(n, out + k, max - k);
    k += admin_client_routes(n, out + k, max - k);
    k += admin_key_routes(n, out + k, max - k);
    k += admin_node_routes(n, out + k, max - k);
    return k;
}
