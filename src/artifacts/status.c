/*
 * status — what an operator sees of the artifacts: GET /admin/v1/artifacts
 * (every row of the table with this node's verdict on its file, plus files
 * that were rejected before they ever made it into the table) and the
 * "artifacts" object of GET /admin/v1/node (drift, errors).
 *
 * Both read the table through the calling thread's read connection and the
 * in-memory verdicts under the instance's mutex; nothing here writes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "artifacts/artifacts_internal.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "oauth/authz.h"

#define ADMIN_SCOPE "refuge:admin"

struct entry {
    const char *path;            /* points into the json object */
    json_t *obj;
};

static int entry_cmp(const void *x, const void *y)
{
    return strcmp(((const struct entry *)x)->path, ((const struct entry *)y)->path);
}

static const char *kind_name(const char *path)
{
    char name[ARTIFACT_NAME_MAX + 1];

    switch (artifact_path_parse(path, name)) {
    case ARTIFACT_TENANT:
        return "tenant";
    case ARTIFACT_USERSTORE:
        return "userstore";
    default:
        return "unknown";
    }
}

/* Adds this node's verdict on f (may be NULL) to an entry. Caller holds mu. */
static void add_verdict(json_t *o, const struct art_file *f)
{
    const char *status = "ok";

    if (f && f->status == ART_REJECTED) {
        status = "rejected";
        if (f->rejected_sha[0])
            json_object_set_new(o, "file_sha256", json_string(f->rejected_sha));
    } else if (f && f->retry) {
        status = "pending";
    }
    json_object_set_new(o, "status", json_string(status));
    json_object_set_new(o, "last_error",
                        f && f->last_error[0] ? json_string(f->last_error) : json_null());
}

/* The list, sorted by path. New reference, or NULL on a store error. */
static json_t *artifacts_list(struct node *n, struct artifacts *a)
{
    struct db *db = store_reader(n->store);
    struct db_stmt *st;
    struct entry *es = NULL;
    size_t nes = 0, cap = 0, i;
    json_t *arr = NULL;
    int rc;

    if (!db ||
        !(st = db_prepare(db, "SELECT path, sha256, version, updated_at FROM artifacts ORDER BY path")))
        return NULL;
    arr = json_array();
    while ((rc = db_step(st)) == DB_ROW) {
        const char *path = db_col_text(st, 0);
        json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:I}", "path", path, "kind", kind_name(path),
                              "sha256", db_col_text(st, 1), "version",
                              (json_int_t)db_col_int64(st, 2), "updated_at",
                              (json_int_t)db_col_int64(st, 3));
        if (a) {
            pthread_mutex_lock(&a->mu);
            add_verdict(o, artifacts_file(a, path, false));
            pthread_mutex_unlock(&a->mu);
        } else {
            add_verdict(o, NULL);
        }
        json_array_append_new(arr, o);
    }
    db_done(st);
    if (rc != DB_DONE) {
        json_decref(arr);
        return NULL;
    }
    if (!a)
        return arr;
    /* rejected files that have no row (a first version that never validated) */
    pthread_mutex_lock(&a->mu);
    for (i = 0; i < a->nfiles; i++) {
        const struct art_file *f = &a->files[i];
        bool in_table = false;
        size_t k;
        json_t *o;

        if (f->status != ART_REJECTED && !f->retry)
            continue;
        for (k = 0; k < json_array_size(arr) && !in_table; k++)
            in_table = strcmp(json_string_value(json_object_get(json_array_get(arr, k), "path")),
                              f->path) == 0;
        if (in_table)
            continue;
        o = json_pack("{s:s, s:s, s:o, s:o, s:o}", "path", f->path, "kind", kind_name(f->path),
                      "sha256", f->rejected_sha[0] ? json_string(f->rejected_sha) : json_null(),
                      "version", json_null(), "updated_at", json_null());
        add_verdict(o, f);
        json_array_append_new(arr, o);
    }
    pthread_mutex_unlock(&a->mu);

    /* one order for both sources */
    for (i = 0; i < json_array_size(arr); i++) {
        json_t *o = json_array_get(arr, i);
        if (nes == cap) {
            cap = cap ? cap * 2 : 16;
            es = xrealloc(es, cap * sizeof(*es));
        }
        es[nes].obj = json_incref(o);
        es[nes].path = json_string_value(json_object_get(o, "path"));
        nes++;
    }
    if (nes > 1)
        qsort(es, nes, sizeof(*es), entry_cmp);
    json_array_clear(arr);
    for (i = 0; i < nes; i++)
        json_array_append_new(arr, es[i].obj);
    free(es);
    return arr;
}

static enum http_result artifacts_get(struct http_request *req)
{
    static const char *const scopes[] = { ADMIN_SCOPE, NULL };
    struct node *n = req->route_data;
    struct artifacts *a;
    struct principal p;
    json_t *list, *body;

    if (authz_require(n, req, req->tenant, &p, scopes) < 0)
        return HTTP_DONE;
    if (!p.super_admin) {
        http_add_header(req, "WWW-Authenticate",
                        "Bearer error=\"insufficient_scope\", scope=\"" ADMIN_SCOPE "\"");
        http_respond_error(req, 403, "insufficient_scope",
                           "this operation needs an admin token of the default tenant");
        return HTTP_DONE;
    }
    a = artifacts_acquire(n);
    list = artifacts_list(n, a);
    body = list ? json_pack("{s:o, s:s, s:I, s:I}", "artifacts", list, "mode",
                            artifacts_mode_name(a ? atomic_load(&a->mode_shown) : ART_MODE_NONE),
                            "drift_total", (json_int_t)(a ? atomic_load(&a->drift_total) : 0),
                            "errors_total", (json_int_t)(a ? atomic_load(&a->errors_total) : 0))
                : NULL;
    artifacts_release();
    if (!body) {
        http_respond_error(req, 500, "server_error", "the artifacts table cannot be read");
        return HTTP_DONE;
    }
    http_respond_json(req, 200, body);
    return HTTP_DONE;
}

size_t artifacts_routes(struct node *n, struct http_route *out, size_t max)
{
    const struct http_route routes[] = {
        { "GET", "/admin/v1/artifacts", artifacts_get, 0, "admin_artifacts", n },
    };
    size_t i, k = sizeof(routes) / sizeof(routes[0]);

    for (i = 0; i < k && i < max; i++)
        out[i] = routes[i];
    return i;
}

void artifacts_status_fill(struct node *n, json_t *obj)
{
    struct artifacts *a = artifacts_acquire(n);
    struct db *db = store_reader(n->store);
    struct db_stmt *st = db ? db_prepare(db, "SELECT count(*) FROM artifacts") : NULL;
    json_int_t count = -1, rejected = 0;
    size_t i;

    if (st) {
        if (db_step(st) == DB_ROW)
            count = (json_int_t)db_col_int64(st, 0);
        db_done(st);
    }
    if (a) {
        pthread_mutex_lock(&a->mu);
        for (i = 0; i < a->nfiles; i++)
            rejected += a->files[i].status == ART_REJECTED;
        pthread_mutex_unlock(&a->mu);
    }
    json_object_set_new(
        obj, "artifacts",
        json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "mode",
                  artifacts_mode_name(a ? atomic_load(&a->mode_shown) : ART_MODE_NONE), "count",
                  count, "rejected", rejected, "drift_total",
                  (json_int_t)(a ? atomic_load(&a->drift_total) : 0), "errors_total",
                  (json_int_t)(a ? atomic_load(&a->errors_total) : 0), "imported_total",
                  (json_int_t)(a ? atomic_load(&a->imported_total) : 0), "materialized_total",
                  (json_int_t)(a ? atomic_load(&a->materialized_total) : 0)));
    artifacts_release();
}
