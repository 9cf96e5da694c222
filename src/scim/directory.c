/*
 * directory — SCIM's read-only view of the tenant's LDAP userstores
 * (ldap/userstore.h). Directory users are not rows of `users`: they are read
 * from their directory, on the userstore's own pool, with the request
 * suspended (DESIGN.md §6), and they cannot be written through SCIM.
 *
 * Which requests go to a directory:
 *   GET /Users/{id}        an id "ldap:STORE:..." (userstore_is_user_id):
 *                          the user as the directory has it now, or 404.
 *   GET /Users, POST /Users/.search
 *                          a filter that pins userName to one of the
 *                          tenant's userstores: a term `userName eq
 *                          "STORE/name"` (one user, searched by name in the
 *                          directory) or `userName sw "STORE/..."` (every
 *                          user of STORE) that is reached from the filter's
 *                          root through `and` only. The directory's answer
 *                          is then filtered in memory by the WHOLE filter
 *                          (scim_filter_match), so `userName sw "corp/" and
 *                          emails co "@example.org"` means what it says.
 *                          Every other query lists internal users only, as
 *                          before (also /.search over all types).
 *   writes                 PUT / PATCH / DELETE of a directory id, PUT and
 *                          PATCH of /Me for a directory user: 400
 *                          mutability (USERSTORE_READ_ONLY_DETAIL). POST
 *                          /Users or PUT with a userName in a userstore's
 *                          domain: the same (that name can only ever sign
 *                          in through the directory).
 *
 * Lists are ordered by userName (sortBy may name userName only; sortOrder
 * applies). A directory contributes at most USERSTORE_LIST_MAX users to
 * one query; a directory with more matches answers 400 tooMany (narrow the
 * filter to `userName eq`). A directory that is down or slow answers 503
 * with Retry-After within the store's timeout; one that fails otherwise,
 * 502. Directory users carry no version: no ETag.
 */
#include <errno.h>
#include <string.h>

#include "core/log.h"
#include "ldap/userstore.h"
#include "scim/scim_internal.h"

struct dir_req {
    struct http_request *req;
    const char *base;
    const char *store;
    const char *id;                    /* get */
    struct scim_filter *filter;        /* list: owned, freed when answered */
    struct scim_attr_sel sel;
    bool descending;
    int64_t start, count;
};

/* ------------------------------------------------------------ responses */

/* A failed directory request (rc from the reply or from submitting). */
static void respond_failure(struct http_request *req, const char *store, int rc)
{
    struct arena *a = &req->arena;

    switch (rc) {
    case -ETIMEDOUT:
        http_add_header(req, "Retry-After", "5");
        scim_respond_error(req, 503, NULL, arena_sprintf(a, "the user directory %s did not answer in time", store));
        return;
    case -ENETDOWN:
        http_add_header(req, "Retry-After", "5");
        scim_respond_error(req, 503, NULL, arena_sprintf(a, "the user directory %s is unavailable", store));
        return;
    case -EAGAIN:
        http_add_header(req, "Retry-After", "1");
        scim_respond_error(req, 503, NULL, arena_sprintf(a, "the user directory %s is busy; retry", store));
        return;
    case -ESHUTDOWN:
        scim_respond_error(req, 503, NULL, "the node is shutting down");
        return;
    default:
        scim_respond_error(req, 502, NULL, arena_sprintf(a, "the user directory %s failed", store));
        return;
    }
}

/* The response representation of a directory user's resource: the common
 * rendering (selection, meta.location), plus meta.userStore. */
static json_t *render_user(const json_t *data, const char *base, const struct scim_attr_sel *sel)
{
    json_t *out = scim_render(&scim_rt_user, data, base, sel);
    json_t *meta = json_object_get(out, "meta"), *us = json_object_get(json_object_get(data, "meta"), "userStore");

    if (json_is_object(meta) && json_is_string(us))
        json_object_set(meta, "userStore", us);
    return out;
}

/* ------------------------------------------------------------------ get */

static void get_done(void *arg, struct userstore_reply *r)
{
    struct dir_req *d = arg;
    struct http_request *req = d->req;

    if (r->rc == 0)
        scim_respond(req, 200, render_user(r->user.scim, d->base, &d->sel));
    else if (r->rc == -ENOENT || r->rc == -EINVAL)
        scim_respond_error(req, 404, NULL, arena_sprintf(&req->arena, "User %.400s not found", d->id));
    else
        respond_failure(req, d->store, r->rc);
    http_resume(req);
}

enum http_result scim_directory_get(struct scim_ctx *c, const char *id, const struct scim_attr_sel *sel)
{
    struct http_request *req = c->req;
    struct dir_req *d = arena_alloc(&req->arena, sizeof(*d));
    char store[USERSTORE_NAME_MAX + 1];
    struct str key;
    int rc;

    if (userstore_id_parse(id, store, &key) < 0) {
        scim_respond_error(req, 404, NULL, arena_sprintf(&req->arena, "User %.400s not found", id));
        return HTTP_DONE;
    }
    d->req = req;
    d->base = c->base;
    d->store = arena_strdup(&req->arena, store);
    d->id = id;
    d->sel = *sel;
    rc = userstore_lookup_async(c->n, req->tenant, id, get_done, d);
    if (rc == 0)
        return HTTP_SUSPEND;
    if (rc == -ENOENT || rc == -EINVAL)
        scim_respond_error(req, 404, NULL, arena_sprintf(&req->arena, "User %.400s not found", id));
    else
        respond_failure(req, d->store, rc);
    return HTTP_DONE;
}

/* ----------------------------------------------------------------- list */

/* A userName term that pins the query to a userstore, reached from node i
 * through `and` only. store: the lowercased DOMAIN; *user: the name after
 * "DOMAIN/" for eq (NUL-terminated in the filter), NULL for sw. */
static bool find_target(const struct scim_filter *f, int i, char store[USERSTORE_NAME_MAX + 1],
                        const char **user)
{
    const struct scim_filter_node *nd;
    const char *slash;
    size_t dl, k;

    if (i < 0 || (size_t)i >= f->nnodes)
        return false;
    nd = &f->nodes[i];
    if (nd->op == SCIM_FOP_AND)
        return find_target(f, nd->left, store, user) || find_target(f, nd->right, store, user);
    if ((nd->op != SCIM_FOP_EQ && nd->op != SCIM_FOP_SW) || !nd->ref.attr || nd->ref.sub ||
        strcmp(nd->ref.attr->name, "userName") != 0 || nd->value.kind != SCIM_VAL_STR || !nd->value.s)
        return false;
    slash = memchr(nd->value.s, '/', nd->value.len);
    if (!slash)
        return false;
    dl = (size_t)(slash - nd->value.s);
    if (dl == 0 || dl > USERSTORE_NAME_MAX)
        return false;
    for (k = 0; k < dl; k++) {
        char ch = nd->value.s[k];
        store[k] = ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
    }
    store[dl] = '\0';
    if (!http_tenant_name_valid(store, dl))
        return false;
    *user = nd->op == SCIM_FOP_EQ ? slash + 1 : NULL;
    return true;
}

static json_t *list_response(json_t *resources, int64_t total, int64_t start)
{
    return json_pack("{s:[s], s:I, s:I, s:I, s:o}", "schemas", SCIM_URN_LIST, "totalResults", (json_int_t)total,
                     "startIndex", (json_int_t)start, "itemsPerPage", (json_int_t)json_array_size(resources),
                     "Resources", resources);
}

static void list_done(void *arg, struct userstore_reply *r)
{
    struct dir_req *d = arg;
    struct http_request *req = d->req;
    json_t *all, *matched, *page, *v;
    size_t i, n;

    if (r->rc != 0) {
        respond_failure(req, d->store, r->rc);
    } else if (r->truncated) {
        scim_respond_error(req, 400, SCIM_TOO_MANY,
                           arena_sprintf(&req->arena, "the user directory %s has more than %d matching users; "
                                                      "narrow the filter (userName eq \"%s/NAME\")",
                                         d->store, USERSTORE_LIST_MAX, d->store));
    } else {
        all = json_object_get(r->list, "Resources");
        matched = json_array();
        json_array_foreach(all, i, v)
            if (scim_filter_match(d->filter, v))
                json_array_append(matched, v);
        n = json_array_size(matched);
        page = json_array();
        /* the directory's list is sorted by userName, ascending */
        for (i = (size_t)(d->start - 1); i < n && (int64_t)json_array_size(page) < d->count; i++)
            json_array_append_new(page, render_user(json_array_get(matched, d->descending ? n - 1 - i : i),
                                                    d->base, &d->sel));
        json_decref(matched);
        scim_respond(req, 200, list_response(page, (int64_t)n, d->start));
    }
    scim_filter_free(d->filter);
    d->filter = NULL;
    http_resume(req);
}

bool scim_directory_list(struct scim_ctx *c, struct scim_filter **filter, const struct scim_attr_sel *sel,
                         bool sort_by_user_name, bool descending, int64_t start, int64_t count,
                         enum http_result *out)
{
    struct http_request *req = c->req;
    char store[USERSTORE_NAME_MAX + 1];
    const char *user = NULL;
    struct dir_req *d;
    int rc;

    if (!*filter || !find_target(*filter, (*filter)->root, store, &user))
        return false;
    /* is `store` one of this tenant's userstores? (any name in it will do) */
    if (!userstore_routes(c->n, req->tenant, arena_sprintf(&req->arena, "%s/-", store)))
        return false;
    *out = HTTP_DONE;
    if (!sort_by_user_name) {
        scim_respond_error(req, 400, SCIM_INVALID_VALUE, "sortBy: users of a directory are listed by userName only");
        return true;
    }
    d = arena_alloc(&req->arena, sizeof(*d));
    d->req = req;
    d->base = c->base;
    d->store = arena_strdup(&req->arena, store);
    d->sel = *sel;
    d->descending = descending;
    d->start = start;
    d->count = count;
    d->filter = *filter;
    rc = userstore_scim_list_async(c->n, req->tenant, store, user, 1, USERSTORE_LIST_MAX, list_done, d);
    if (rc == 0) {
        *filter = NULL;                /* d owns it now; list_done frees it */
        *out = HTTP_SUSPEND;
    } else if (rc == -ENOENT) {
        return false;                  /* reconfigured away meanwhile: internal users after all */
    } else if (rc == -EINVAL) {
        scim_respond(req, 200, list_response(json_array(), 0, start));   /* a name no directory user has */
    } else {
        respond_failure(req, store, rc);
    }
    return true;
}

/* ---------------------------------------------------------------- writes */

bool scim_directory_user_id(const char *id)
{
    return userstore_is_user_id(id);
}

bool scim_directory_user_name(struct scim_ctx *c, const char *user_name)
{
    return user_name && userstore_routes(c->n, c->req->tenant, user_name);
}

enum http_result scim_directory_read_only(struct http_request *req)
{
    scim_respond_error(req, 400, SCIM_MUTABILITY, USERSTORE_READ_ONLY_DETAIL);
    return HTTP_DONE;
}
