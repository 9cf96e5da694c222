/*
 * resources — one resource at a time: POST /Users, GET/PUT/PATCH/DELETE
 * /Users/{id}, the same for /Groups, and /Me (the bearer's own user).
 *
 * Life of a write:
 *   HTTP worker   authenticate, parse and normalize the body (or parse the
 *                 PATCH), check the password policy; then either
 *   CPU worker    (only when a password is set) hash it with argon2id,
 *                 wipe the clear text it no longer needs, and queue the job;
 *   store writer  inside the batch transaction: load the current version,
 *                 check If-Match (412), apply (PATCH), write through the
 *                 model (identity/user.h, group.h);
 *   after COMMIT  render the response (or the error), resume the request.
 * The connection stays suspended from the first hand-off on (DESIGN.md §6).
 * PATCH and If-Match are evaluated on the writer, against the version the
 * write replaces, so two concurrent PATCHes can never lose each other.
 *
 * Users of an LDAP userstore ("ldap:..." ids, /Me of a directory user) are
 * read from their directory and never written (directory.c).
 *
 * ETags are weak and count versions: W/"N" (meta.version, ETag header).
 * If-Match takes "*" or a list of tags; a GET with a matching If-None-Match
 * answers 304.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/timeutil.h"
#include "core/xmalloc.h"
#include "crypto/secret.h"
#include "oauth/oauth_internal.h"
#include "scim/scim_internal.h"

const struct scim_kind scim_kind_user = { &scim_rt_user, "users", "u", user_load };
const struct scim_kind scim_kind_group = { &scim_rt_group, "groups", "g", group_load };

enum job_op { JOB_CREATE, JOB_REPLACE, JOB_PATCH, JOB_DELETE };

struct job {
    struct http_request *req;
    struct node *n;
    const struct scim_kind *kind;
    enum job_op op;
    const char *tenant;
    const char *id;                    /* target (not for CREATE) */
    const char *if_match;              /* If-Match header, or NULL */
    const char *base;
    struct tenant_settings settings;   /* argon2 parameters */
    struct scim_attr_sel sel;
    json_t *res;                       /* CREATE / REPLACE: the normalized resource (owned) */
    struct scim_patch patch;           /* PATCH (owned) */
    /* password: the clear text lives only until the write has run */
    enum user_pw_op pw_op;
    char *pw;                          /* xmalloc'd clear text, wiped and freed */
    size_t pw_len;
    char pw_hash[CRYPTO_PWHASH_BUFSZ];
    /* result */
    struct identity_doc doc;
    bool unchanged;                    /* a PATCH that changed nothing */
    const char *scim_type;
    char msg[256];
};

static bool is_user(const struct job *j)
{
    return j->kind == &scim_kind_user;
}

static void job_release(struct job *j)
{
    json_decref(j->res);
    j->res = NULL;
    scim_patch_free(&j->patch);
    identity_doc_clear(&j->doc);
    if (j->pw) {
        crypto_wipe(j->pw, j->pw_len);
        free(j->pw);
        j->pw = NULL;
    }
    crypto_wipe(j->pw_hash, sizeof(j->pw_hash));
}

/* ---------------------------------------------------------------- ETags */

static char *etag_of(struct arena *a, int64_t version)
{
    return arena_sprintf(a, "W/\"%lld\"", (long long)version);
}

/* Whether a list of entity-tags (If-Match / If-None-Match) names version;
 * weak comparison (RFC 9110 §8.8.3.2), "*" matches any. */
static bool etag_matches(const char *list, int64_t version)
{
    char want[32];
    const char *p = list;
    size_t wl;

    snprintf(want, sizeof(want), "\"%lld\"", (long long)version);
    wl = strlen(want);
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '*')
            return true;
        if (p[0] == 'W' && p[1] == '/')
            p += 2;
        if (strncmp(p, want, wl) == 0 && (p[wl] == '\0' || p[wl] == ',' || p[wl] == ' ' || p[wl] == '\t'))
            return true;
        while (*p && *p != ',')
            p++;
    }
    return false;
}

/* ----------------------------------------------------------- responding */

static void respond_doc(struct http_request *req, const struct scim_kind *kind, const struct identity_doc *d,
                        const char *base, const struct scim_attr_sel *sel, int status)
{
    json_t *body = scim_render(kind->rt, d->data, base, sel);

    http_add_header(req, "ETag", etag_of(&req->arena, d->version));
    if (status == 201)
        http_add_header(req, "Location",
                        arena_sprintf(&req->arena, "%s%s/%s", base, kind->rt->endpoint, d->id));
    scim_respond(req, status, body);
}

static const char *not_found(struct http_request *req, const struct scim_kind *kind, const char *id)
{
    return arena_sprintf(&req->arena, "%s %.64s not found", kind->rt->name, id);
}

/* ------------------------------------------------------ the writer's part */

static struct user_pw job_pw(const struct job *j)
{
    struct user_pw pw = { .op = j->pw_op };

    if (j->pw_op == USER_PW_SET) {
        pw.hash = j->pw_hash;
        pw.plain = j->pw;
        pw.plain_len = j->pw_len;
    }
    return pw;
}

static int write_resource(struct db *db, struct job *j, const json_t *res, int64_t now)
{
    struct user_pw pw = job_pw(j);

    if (j->op == JOB_CREATE)
        return is_user(j) ? user_create(db, j->tenant, res, &pw, now, &j->doc, j->msg, sizeof(j->msg))
                          : group_create(db, j->tenant, res, now, &j->doc, j->msg, sizeof(j->msg));
    return is_user(j) ? user_replace(db, j->tenant, j->id, res, &pw, now, &j->doc, j->msg, sizeof(j->msg))
                      : group_replace(db, j->tenant, j->id, res, now, &j->doc, j->msg, sizeof(j->msg));
}

static int run_patch(struct db *db, struct job *j, struct identity_doc *cur, int64_t now)
{
    struct scim_err err;
    json_t *res = json_deep_copy(cur->data);
    int rc;

    if ((rc = scim_patch_apply(&j->patch, res, &err)) < 0) {
        j->scim_type = err.scim_type;
        snprintf(j->msg, sizeof(j->msg), "%s", err.detail);
        goto out;
    }
    json_object_del(res, "password");         /* hashed already: j->pw_hash */
    if (j->pw_op == USER_PW_KEEP && json_equal(res, cur->data)) {
        j->unchanged = true;                  /* nothing to write: same version */
        j->doc = *cur;
        memset(cur, 0, sizeof(*cur));
        goto out;
    }
    rc = write_resource(db, j, res, now);
out:
    json_decref(res);
    return rc;
}

/* On the writer thread, inside the batch transaction. */
static int job_run(struct db *db, void *arg)
{
    struct job *j = arg;
    int64_t now = time_wall_us() / 1000000;
    struct identity_doc cur;
    int rc;

    if (j->op == JOB_CREATE)
        return write_resource(db, j, j->res, now);
    rc = j->kind->load(db, j->tenant, j->id, &cur);
    if (rc == -ENOENT)
        snprintf(j->msg, sizeof(j->msg), "%s %.64s not found", j->kind->rt->name, j->id);
    if (rc < 0)
        return rc;
    if (j->if_match && !etag_matches(j->if_match, cur.version)) {
        snprintf(j->msg, sizeof(j->msg), "If-Match does not match the current version W/\"%lld\"",
                 (long long)cur.version);
        rc = -ESTALE;
        goto out;
    }
    switch (j->op) {
    case JOB_REPLACE:
        rc = write_resource(db, j, j->res, now);
        break;
    case JOB_PATCH:
        rc = run_patch(db, j, &cur, now);
        break;
    case JOB_DELETE:
        rc = is_user(j) ? user_delete(db, j->tenant, j->id, now) : group_delete(db, j->tenant, j->id, now);
        break;
    case JOB_CREATE:
        break;
    }
out:
    identity_doc_clear(&cur);
    if (rc < 0)
        identity_doc_clear(&j->doc);
    return rc;
}

/* After COMMIT (rc 0) or the job's rollback; on the writer thread (or the
 * thread that completes a replication-held batch). */
static void job_done(void *arg, int rc)
{
    struct job *j = arg;
    struct http_request *req = j->req;

    if (rc == 0 && j->op == JOB_DELETE)
        scim_respond(req, 204, NULL);
    else if (rc == 0)
        respond_doc(req, j->kind, &j->doc, j->base, &j->sel, j->op == JOB_CREATE ? 201 : 200);
    else
        scim_respond_errno(req, rc, j->scim_type, j->msg[0] ? j->msg : NULL);
    job_release(j);
    http_resume(req);                  /* req and j may be gone after this */
}

static int submit(struct job *j)
{
    return store_submit(j->n->store, job_run, job_done, j);
}

/* On a CPU worker: hash the password, then hand the job to the writer. */
static void hash_then_submit(void *arg)
{
    struct job *j = arg;
    struct http_request *req = j->req;
    int rc = user_password_hash(&j->settings, j->pw, j->pw_len, j->pw_hash);

    if (rc < 0) {
        log_error("scim: password hashing failed", "tenant", j->tenant, "rc", log_i64(rc), NULL);
        scim_respond_error(req, 500, NULL, "password hashing failed");
    } else if ((rc = submit(j)) == 0) {
        return;                        /* job_done resumes */
    } else {
        scim_respond_errno(req, rc, NULL, NULL);
    }
    job_release(j);
    http_resume(req);
}

/* Queues j: through the CPU pool when a password must be hashed. */
static enum http_result start(struct job *j)
{
    struct http_request *req = j->req;
    int rc;

    if (!store_writable(j->n->store)) {
        rc = -EROFS;
    } else if (j->pw_op == USER_PW_SET) {
        rc = oauth_workers_submit(hash_then_submit, j);
    } else {
        rc = submit(j);
    }
    if (rc == 0)
        return HTTP_SUSPEND;
    scim_respond_errno(req, rc, NULL, NULL);
    job_release(j);
    return HTTP_DONE;
}

/* ----------------------------------------------------------- preparation */

static struct job *job_new(struct scim_ctx *c, const struct scim_kind *kind, enum job_op op, const char *id)
{
    struct job *j = arena_alloc(&c->req->arena, sizeof(*j));

    j->req = c->req;
    j->n = c->n;
    j->kind = kind;
    j->op = op;
    j->tenant = c->req->tenant;
    j->id = id;
    j->base = c->base;
    j->settings = c->tenant.s;
    j->if_match = http_header(c->req, "If-Match");
    return j;
}

/* Takes the clear password out of a normalized user resource and checks
 * the policy. 0 or -1 after answering. */
static int take_password(struct scim_ctx *c, struct job *j, json_t *res)
{
    json_t *pw = json_object_get(res, "password");
    char msg[256];

    if (!pw)
        return 0;
    msg[0] = '\0';
    if (user_password_check(&c->tenant.s.password, json_string_value(json_object_get(res, "userName")),
                            json_string_value(pw), json_string_length(pw), msg, sizeof(msg)) < 0) {
        scim_respond_error(c->req, 400, SCIM_INVALID_VALUE, arena_strdup(&c->req->arena, msg));
        return -1;
    }
    j->pw_op = USER_PW_SET;
    j->pw_len = json_string_length(pw);
    j->pw = xmemdup(json_string_value(pw), j->pw_len + 1);
    json_object_del(res, "password");
    return 0;
}

/* The {id} path parameter, or NULL after answering 404. */
static const char *path_id(struct http_request *req, const struct scim_kind *kind)
{
    const char *id = http_path_param(req, "id");
    /* "ldap:" + store + ":" + entryUUID or "u:" + a user name (directory users) */
    size_t max = kind == &scim_kind_user && id && scim_directory_user_id(id) ? 400 : 64;

    if (!id || !*id || strlen(id) > max) {
        scim_respond_error(req, 404, NULL, arena_sprintf(&req->arena, "no such %s", kind->rt->name));
        return NULL;
    }
    return id;
}

/* POST and PUT: a whole resource. */
static enum http_result put_resource(struct scim_ctx *c, const struct scim_kind *kind, enum job_op op,
                                     const char *id)
{
    struct http_request *req = c->req;
    struct scim_err err;
    struct job *j;
    json_t *body, *res, *given_id;

    if (!(body = scim_body(req)))
        return HTTP_DONE;
    given_id = scim_json_get(body, "id");
    if (op == JOB_REPLACE && json_is_string(given_id) && strcmp(json_string_value(given_id), id) != 0) {
        json_decref(body);
        scim_respond_error(req, 400, SCIM_MUTABILITY, "id is readOnly and differs from the resource's id");
        return HTTP_DONE;
    }
    if (scim_resource_normalize(kind->rt, body, 0, &res, &err) < 0) {
        json_decref(body);
        scim_respond_error(req, 400, err.scim_type, arena_strdup(&req->arena, err.detail));
        return HTTP_DONE;
    }
    json_decref(body);
    if (kind == &scim_kind_user && scim_directory_user_name(c, json_string_value(json_object_get(res, "userName")))) {
        json_decref(res);
        return scim_directory_read_only(req);
    }
    j = job_new(c, kind, op, id);
    j->res = res;
    if (scim_query_sel(req, kind->rt, &j->sel) < 0 || (kind == &scim_kind_user && take_password(c, j, res) < 0)) {
        job_release(j);
        return HTTP_DONE;
    }
    return start(j);
}

static enum http_result patch_resource(struct scim_ctx *c, const struct scim_kind *kind, const char *id)
{
    struct http_request *req = c->req;
    struct scim_err err;
    struct job *j;
    json_t *body;
    const char *pw;
    size_t pw_len;
    char msg[256];

    if (!(body = scim_body(req)))
        return HTTP_DONE;
    j = job_new(c, kind, JOB_PATCH, id);
    if (scim_patch_parse(kind->rt, body, &j->patch, &err) < 0) {
        json_decref(body);
        scim_respond_error(req, 400, err.scim_type, arena_strdup(&req->arena, err.detail));
        return HTTP_DONE;
    }
    json_decref(body);
    if (scim_query_sel(req, kind->rt, &j->sel) < 0) {
        job_release(j);
        return HTTP_DONE;
    }
    switch (scim_patch_password(&j->patch, &pw, &pw_len)) {
    case SCIM_PATCH_PW_SET:
        msg[0] = '\0';
        /* the userName rule is checked by the writer, against the patched resource */
        if (user_password_check(&c->tenant.s.password, NULL, pw, pw_len, msg, sizeof(msg)) < 0) {
            job_release(j);
            scim_respond_error(req, 400, SCIM_INVALID_VALUE, arena_strdup(&req->arena, msg));
            return HTTP_DONE;
        }
        j->pw_op = USER_PW_SET;
        j->pw = xmemdup(pw, pw_len + 1);
        j->pw_len = pw_len;
        break;
    case SCIM_PATCH_PW_REMOVE:
        j->pw_op = USER_PW_CLEAR;
        break;
    case SCIM_PATCH_PW_NONE:
        break;
    }
    return start(j);
}

static enum http_result get_resource(struct scim_ctx *c, const struct scim_kind *kind, const char *id)
{
    struct http_request *req = c->req;
    const char *inm = http_header(req, "If-None-Match");
    struct scim_attr_sel sel;
    struct identity_doc d;
    int rc;

    if (scim_query_sel(req, kind->rt, &sel) < 0)
        return HTTP_DONE;
    if (kind == &scim_kind_user && scim_directory_user_id(id))
        return scim_directory_get(c, id, &sel);
    rc = kind->load(store_reader(c->n->store), req->tenant, id, &d);
    if (rc < 0) {
        scim_respond_errno(req, rc, NULL, rc == -ENOENT ? not_found(req, kind, id) : NULL);
        return HTTP_DONE;
    }
    if (inm && etag_matches(inm, d.version)) {
        http_add_header(req, "ETag", etag_of(&req->arena, d.version));
        http_respond(req, 304, NULL, NULL, 0);
    } else {
        respond_doc(req, kind, &d, c->base, &sel, 200);
    }
    identity_doc_clear(&d);
    return HTTP_DONE;
}

/* -------------------------------------------------------------- handlers */

/* The kind a route serves, by its metric name ("scim_group", "scim_groups"). */
static const struct scim_kind *route_kind(struct http_request *req)
{
    return strncmp(req->route, "scim_group", 10) == 0 ? &scim_kind_group : &scim_kind_user;
}

static enum http_result h_create(struct http_request *req)
{
    struct scim_ctx c;

    if (scim_begin(req->route_data, req, SCIM_WRITE, &c) < 0)
        return HTTP_DONE;
    return put_resource(&c, route_kind(req), JOB_CREATE, NULL);
}

static enum http_result h_get(struct http_request *req)
{
    const struct scim_kind *kind = route_kind(req);
    struct scim_ctx c;
    const char *id;

    if (scim_begin(req->route_data, req, SCIM_READ, &c) < 0 || !(id = path_id(req, kind)))
        return HTTP_DONE;
    return get_resource(&c, kind, id);
}

static enum http_result h_replace(struct http_request *req)
{
    const struct scim_kind *kind = route_kind(req);
    struct scim_ctx c;
    const char *id;

    if (scim_begin(req->route_data, req, SCIM_WRITE, &c) < 0 || !(id = path_id(req, kind)))
        return HTTP_DONE;
    if (kind == &scim_kind_user && scim_directory_user_id(id))
        return scim_directory_read_only(req);
    return put_resource(&c, kind, JOB_REPLACE, id);
}

static enum http_result h_patch(struct http_request *req)
{
    const struct scim_kind *kind = route_kind(req);
    struct scim_ctx c;
    const char *id;

    if (scim_begin(req->route_data, req, SCIM_WRITE, &c) < 0 || !(id = path_id(req, kind)))
        return HTTP_DONE;
    if (kind == &scim_kind_user && scim_directory_user_id(id))
        return scim_directory_read_only(req);
    return patch_resource(&c, kind, id);
}

static enum http_result h_delete(struct http_request *req)
{
    const struct scim_kind *kind = route_kind(req);
    struct scim_ctx c;
    struct job *j;
    const char *id;

    if (scim_begin(req->route_data, req, SCIM_WRITE, &c) < 0 || !(id = path_id(req, kind)))
        return HTTP_DONE;
    if (kind == &scim_kind_user && scim_directory_user_id(id))
        return scim_directory_read_only(req);
    j = job_new(&c, kind, JOB_DELETE, id);
    return start(j);
}

/* /Me: the user the token was issued to (RFC 7644 §3.11). */
static enum http_result h_me(struct http_request *req)
{
    struct scim_ctx c;

    if (scim_begin(req->route_data, req, SCIM_ME, &c) < 0)
        return HTTP_DONE;
    http_add_header(req, "Content-Location",
                    arena_sprintf(&req->arena, "%s/Users/%s", c.base, c.p.user_id));
    if (scim_directory_user_id(c.p.user_id) && strcmp(req->method, "GET") != 0)
        return scim_directory_read_only(req);
    if (strcmp(req->method, "PUT") == 0)
        return put_resource(&c, &scim_kind_user, JOB_REPLACE, c.p.user_id);
    if (strcmp(req->method, "PATCH") == 0)
        return patch_resource(&c, &scim_kind_user, c.p.user_id);
    return get_resource(&c, &scim_kind_user, c.p.user_id);
}

size_t scim_resource_routes(struct node *n, struct http_route *out, size_t max)
{
    const struct http_route routes[] = {
        { "POST", "/scim2/Users", h_create, HTTP_ROUTE_TENANT, "scim_users", n },
        { "GET", "/scim2/Users/{id}", h_get, HTTP_ROUTE_TENANT, "scim_user", n },
        { "PUT", "/scim2/Users/{id}", h_replace, HTTP_ROUTE_TENANT, "scim_user", n },
        { "PATCH", "/scim2/Users/{id}", h_patch, HTTP_ROUTE_TENANT, "scim_user", n },
        { "DELETE", "/scim2/Users/{id}", h_delete, HTTP_ROUTE_TENANT, "scim_user", n },
        { "POST", "/scim2/Groups", h_create, HTTP_ROUTE_TENANT, "scim_groups", n },
        { "GET", "/scim2/Groups/{id}", h_get, HTTP_ROUTE_TENANT, "scim_group", n },
        { "PUT", "/scim2/Groups/{id}", h_replace, HTTP_ROUTE_TENANT, "scim_group", n },
        { "PATCH", "/scim2/Groups/{id}", h_patch, HTTP_ROUTE_TENANT, "scim_group", n },
        { "DELETE", "/scim2/Groups/{id}", h_delete, HTTP_ROUTE_TENANT, "scim_group", n },
        { "GET", "/scim2/Me", h_me, HTTP_ROUTE_TENANT, "scim_me", n },
        { "PUT", "/scim2/Me", h_me, HTTP_ROUTE_TENANT, "scim_me", n },
        { "PATCH", "/scim2/Me", h_me, HTTP_ROUTE_TENANT, "scim_me", n },
    };
    size_t k = sizeof(routes) / sizeof(routes[0]);

    if (k > max)
        k = max;
    memcpy(out, routes, k * sizeof(routes[0]));
    return k;
}
