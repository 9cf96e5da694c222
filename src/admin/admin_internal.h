/*
 * admin_internal — what the admin API's files share: authentication of the
 * caller, body parsing, error answers, and write jobs that suspend the
 * request until the store writer has committed them (DESIGN.md §6).
 *
 * A write handler fills a struct admin_job (in the request arena), sets
 * `run` (called on the writer thread inside the batch transaction, may read
 * and write through `db`, sets `resp` and `status` on success or `msg` on
 * failure) and returns admin_submit(job). After the commit, the job's
 * response is sent, or the error mapped to a status (admin_respond_errno).
 */
#ifndef REFUGE_ADMIN_INTERNAL_H
#define REFUGE_ADMIN_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include "admin/admin.h"
#include "crypto/secret.h"
#include "oauth/authz.h"

#define ADMIN_SCOPE "refuge:admin"

struct admin_job;
typedef int (*admin_run_fn)(struct db *db, struct admin_job *j);

struct admin_job {
    struct http_request *req;
    struct node *n;
    admin_run_fn run;
    const char *tenant;          /* the tenant the job works on */
    const char *id;              /* client id, tenant name of the path */
    json_t *body;                /* request body (owned; released after the job) */
    int status;                  /* success status (200, 201, 204) */
    json_t *resp;                /* success body, NULL for 204 */
    const char *location;        /* Location header of a 201 */
    bool invalidate_keyring;     /* keys changed: drop the cache after commit */
    const char *not_found;       /* 404 description for -ENOENT */
    char msg[256];               /* error description from run */
    char secret[CRYPTO_SECRET_BUFSZ];   /* a client secret to wipe after answering */
    void *data;                  /* handler-specific */
};

/* Verifies the bearer token for req->tenant with scope refuge:admin; with
 * super_only, also requires the operator's (default tenant) token. 0, or -1
 * with the 401/403 answer set. */
int admin_auth(struct node *n, struct http_request *req, bool super_only, struct principal *p);

/* The body as a JSON object (new reference), or NULL after answering 400.
 * When allow_empty and the body is empty, returns an empty object. */
json_t *admin_body(struct http_request *req, bool allow_empty);

/* Rejects members not in the NULL-terminated list (400 "KEY: unknown field"). 0 or -1. */
int admin_known_fields(struct http_request *req, const json_t *body, const char *const *known);

/* 404 unless the request's tenant exists (also what store reads fail with). 0 or -1. */
int admin_tenant_exists(struct node *n, struct http_request *req);

/* Answers a negative errno with a fitting status and {"error","error_description"}. */
void admin_respond_errno(struct http_request *req, int rc, const char *msg, const char *not_found);

/* A new job in the request arena. */
struct admin_job *admin_job_new(struct node *n, struct http_request *req, admin_run_fn run);
/* Queues the job for the writer: HTTP_SUSPEND, or HTTP_DONE with a 503
 * (standby, queue full, shutting down). */
enum http_result admin_submit(struct admin_job *j);

/* Route tables of the parts. */
size_t admin_tenant_routes(struct node *n, struct http_route *out, size_t max);
size_t admin_client_routes(struct node *n, struct http_route *out, size_t max);
size_t admin_key_routes(struct node *n, struct http_route *out, size_t max);
size_t admin_node_routes(struct node *n, struct http_route *out, size_t max);

/* Copies routes into out, at most max. */
size_t admin_copy_routes(const struct http_route *routes, size_t n, struct http_route *out, size_t max);

#endif
