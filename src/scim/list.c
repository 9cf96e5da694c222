/*
 * list — queries (RFC 7644 §3.4.2, §3.4.3): GET /Users, GET /Groups,
 * POST /Users/.search, /Groups/.search and /.search (both types).
 *
 * A filter becomes a parameterized WHERE fragment (filter.h: values are
 * bound, never spliced into the SQL text); sortBy becomes an ORDER BY over
 * a column or a JSON path taken from the attribute tables. Two statements
 * run in one read transaction, so totalResults and the page agree (the
 * count is skipped when a first page is not full: it is then the total):
 *   SELECT count(*) FROM users u WHERE u.tenant = $1 AND (filter)
 *   SELECT u.data FROM users u WHERE ... ORDER BY (sort) IS NULL, sort, u.id LIMIT $n OFFSET $m
 * Unassigned sort values come last in both orders; u.id breaks ties, so
 * pages are stable. Without sortBy the order is by id (the primary key
 * index: no sort step however large the tenant).
 *
 * Users of the tenant's LDAP userstores: a Users query whose filter pins
 * userName to "STORE/..." (eq or sw, under `and` only) is answered from
 * that directory instead (directory.c); every other query is the SQL above.
 *
 * Paging: startIndex < 1 counts as 1; count < 0 as 0 (only totalResults);
 * count above SCIM_LIST_MAX is clamped to it (ServiceProviderConfig says
 * maxResults); a startIndex beyond the end yields no Resources.
 *
 * Cost bound: a query may run at most REFUGE_SCIM_QUERY_BUDGET_MS
 * milliseconds of SQLite work (default 2000, checked every 1000 VM steps);
 * beyond that it is interrupted and the client gets 400 tooMany ("the
 * filter yields more results than the server is willing to calculate",
 * RFC 7644 Table 9) instead of a worker held hostage by `emails co "a"` over
 * millions of rows. The variable exists so tests can force the bound.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/timeutil.h"
#include "core/xmalloc.h"
#include "scim/path.h"
#include "scim/scim_internal.h"

#define BUDGET_DEFAULT_MS 2000
#define PROGRESS_STEPS 1000

struct sort {
    char expr[512];                  /* empty: by id */
    bool descending;
};

struct list_params {
    const char *filter;              /* NULL: none */
    size_t filter_len;
    const char *sort_by;             /* NULL: none */
    bool descending;
    int64_t start_index;             /* >= 1 */
    int64_t count;                   /* 0 .. SCIM_LIST_MAX */
    const json_t *attributes, *excluded;   /* .search body */
    const char *attributes_q, *excluded_q; /* query string */
};

/* ----------------------------------------------------------- parameters */

static int parse_int_param(struct http_request *req, const char *name, const char *s, int64_t *out)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || end == s || *end) {
        scim_respond_error(req, 400, SCIM_INVALID_VALUE, arena_sprintf(&req->arena, "%s must be an integer", name));
        return -1;
    }
    *out = v;
    return 0;
}

static void clamp_paging(struct list_params *lp)
{
    if (lp->start_index < 1)
        lp->start_index = 1;
    if (lp->count < 0)
        lp->count = 0;
    if (lp->count > SCIM_LIST_MAX)
        lp->count = SCIM_LIST_MAX;
}

static int sort_order(struct http_request *req, const char *s, bool *desc)
{
    *desc = false;
    if (!s)
        return 0;
    if (strcasecmp(s, "ascending") == 0)
        return 0;
    if (strcasecmp(s, "descending") == 0) {
        *desc = true;
        return 0;
    }
    scim_respond_error(req, 400, SCIM_INVALID_VALUE, "sortOrder must be \"ascending\" or \"descending\"");
    return -1;
}

static int params_from_query(struct http_request *req, struct list_params *lp)
{
    const char *s;

    memset(lp, 0, sizeof(*lp));
    lp->start_index = 1;
    lp->count = SCIM_LIST_DEFAULT;
    if ((s = http_query(req, "filter"))) {
        lp->filter = s;
        lp->filter_len = strlen(s);
    }
    lp->sort_by = http_query(req, "sortBy");
    if (sort_order(req, http_query(req, "sortOrder"), &lp->descending) < 0)
        return -1;
    if ((s = http_query(req, "startIndex")) && parse_int_param(req, "startIndex", s, &lp->start_index) < 0)
        return -1;
    if ((s = http_query(req, "count")) && parse_int_param(req, "count", s, &lp->count) < 0)
        return -1;
    lp->attributes_q = http_query(req, "attributes");
    lp->excluded_q = http_query(req, "excludedAttributes");
    if (lp->attributes_q && lp->excluded_q) {
        scim_respond_error(req, 400, SCIM_INVALID_VALUE, "give attributes or excludedAttributes, not both");
        return -1;
    }
    clamp_paging(lp);
    return 0;
}

static int body_int(struct http_request *req, const json_t *body, const char *name, int64_t *out)
{
    json_t *v = scim_json_get(body, name);

    if (!v || json_is_null(v))
        return 0;
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 0;
    }
    if (json_is_string(v))
        return parse_int_param(req, name, json_string_value(v), out);
    scim_respond_error(req, 400, SCIM_INVALID_VALUE, arena_sprintf(&req->arena, "%s must be an integer", name));
    return -1;
}

static const char *body_str(struct http_request *req, const json_t *body, const char *name, bool *bad)
{
    json_t *v = scim_json_get(body, name);

    if (!v || json_is_null(v))
        return NULL;
    if (!json_is_string(v)) {
        scim_respond_error(req, 400, SCIM_INVALID_VALUE, arena_sprintf(&req->arena, "%s must be a string", name));
        *bad = true;
        return NULL;
    }
    return arena_strndup(&req->arena, json_string_value(v), json_string_length(v));
}

/* A SearchRequest body (RFC 7644 §3.4.3). The attribute lists stay in
 * `body`, which the caller keeps alive. */
static int params_from_body(struct http_request *req, const json_t *body, struct list_params *lp)
{
    json_t *schemas = scim_json_get(body, "schemas"), *v;
    bool found = false, bad = false;
    size_t i;

    memset(lp, 0, sizeof(*lp));
    lp->start_index = 1;
    lp->count = SCIM_LIST_DEFAULT;
    json_array_foreach(schemas, i, v)
        if (json_is_string(v) && strcasecmp(json_string_value(v), SCIM_URN_SEARCH) == 0)
            found = true;
    if (!found) {
        scim_respond_error(req, 400, SCIM_INVALID_SYNTAX, "\"schemas\" must list " SCIM_URN_SEARCH);
        return -1;
    }
    lp->filter = body_str(req, body, "filter", &bad);
    if (lp->filter)
        lp->filter_len = strlen(lp->filter);
    lp->sort_by = body_str(req, body, "sortBy", &bad);
    if (bad)
        return -1;
    {
        const char *order = body_str(req, body, "sortOrder", &bad);
        if (bad || sort_order(req, order, &lp->descending) < 0)
            return -1;
    }
    if (body_int(req, body, "startIndex", &lp->start_index) < 0 || body_int(req, body, "count", &lp->count) < 0)
        return -1;
    lp->attributes = scim_json_get(body, "attributes");
    lp->excluded = scim_json_get(body, "excludedAttributes");
    if (lp->attributes && lp->excluded) {
        scim_respond_error(req, 400, SCIM_INVALID_VALUE, "give attributes or excludedAttributes, not both");
        return -1;
    }
    clamp_paging(lp);
    return 0;
}

/* ---------------------------------------------------------------- sorting */

struct sort_col {
    const char *attr, *sub, *column;
};

static const struct sort_col user_sort_cols[] = {
    { "id", NULL, "id" }, { "externalId", NULL, "external_id" }, { "userName", NULL, "user_name_lc" },
    { "active", NULL, "active" }, { "meta", "created", "created_at" }, { "meta", "lastModified", "updated_at" },
};
static const struct sort_col group_sort_cols[] = {
    { "id", NULL, "id" }, { "externalId", NULL, "external_id" }, { "displayName", NULL, "display_name_lc" },
    { "meta", "created", "created_at" }, { "meta", "lastModified", "updated_at" },
};

/* The ORDER BY expression for sortBy; 0 or -EINVAL with err. */
static int sort_expr(const struct scim_kind *kind, const char *sort_by, struct sort *out, struct scim_err *err)
{
    const struct sort_col *cols = kind == &scim_kind_user ? user_sort_cols : group_sort_cols;
    size_t ncols = kind == &scim_kind_user ? sizeof(user_sort_cols) / sizeof(user_sort_cols[0])
                                           : sizeof(group_sort_cols) / sizeof(group_sort_cols[0]);
    const struct scim_attr *a, *sub;
    const char *ext = NULL;
    char path[300];
    struct scim_path p;
    struct scim_err perr;
    bool fold;
    size_t i;

    out->expr[0] = '\0';
    if (!sort_by)
        return 0;
    if (scim_path_parse(kind->rt, str_from_cstr(sort_by), &p, &perr) < 0)
        return scim_fail(err, SCIM_INVALID_VALUE, "sortBy: %s", perr.detail);
    a = p.attr;
    sub = p.sub;
    if (p.filter || !a) {
        scim_path_free(&p);
        return scim_fail(err, SCIM_INVALID_VALUE, "sortBy must name an attribute");
    }
    if (scim_schema_is_extension(kind->rt, p.schema))
        ext = p.schema->id;
    scim_path_free(&p);
    if (a->returned == SCIM_RET_NEVER || strcmp(a->name, "schemas") == 0)
        return scim_fail(err, SCIM_INVALID_VALUE, "cannot sort by %s", a->name);
    if (!ext)
        for (i = 0; i < ncols; i++)
            if (strcmp(cols[i].attr, a->name) == 0 &&
                ((!cols[i].sub && !sub) || (cols[i].sub && sub && strcmp(cols[i].sub, sub->name) == 0))) {
                snprintf(out->expr, sizeof(out->expr), "%s.%s", kind->alias, cols[i].column);
                return 0;
            }
    if (a->type == SCIM_TYPE_COMPLEX && !sub) {
        sub = scim_attr_sub(a, STR_LIT("value"));
        if (!sub)
            return scim_fail(err, SCIM_INVALID_VALUE, "cannot sort by %s: name a sub-attribute", a->name);
    }
    fold = (sub ? sub : a)->type == SCIM_TYPE_STRING && !(sub ? sub : a)->case_exact;
    /* names below come from the constant attribute tables, never from input */
    snprintf(path, sizeof(path), "$%s%s%s.\"%s\"", ext ? ".\"" : "", ext ? ext : "", ext ? "\"" : "", a->name);
    if (a->multi_valued) {
        /* the primary element's value, else the first one's */
        snprintf(out->expr, sizeof(out->expr),
                 "(SELECT %s(json_extract(scim_e.value, '$.\"%s\"')) FROM json_each(%s.data, '%s') scim_e"
                 " ORDER BY coalesce(json_extract(scim_e.value, '$.primary'), 0) DESC, scim_e.key LIMIT 1)",
                 fold ? "lower" : "", sub->name, kind->alias, path);
    } else if (sub) {
        snprintf(out->expr, sizeof(out->expr), "%s(json_extract(%s.data, '%s.\"%s\"'))", fold ? "lower" : "",
                 kind->alias, path, sub->name);
    } else {
        snprintf(out->expr, sizeof(out->expr), "%s(json_extract(%s.data, '%s'))", fold ? "lower" : "",
                 kind->alias, path);
    }
    return 0;
}

/* ---------------------------------------------------------------- running */

struct budget {
    int64_t deadline_us;
    bool hit;
};

static int on_progress(void *arg)
{
    struct budget *b = arg;

    if (time_mono_us() > b->deadline_us) {
        b->hit = true;
        return 1;                    /* interrupts the statement */
    }
    return 0;
}

static int64_t budget_ms(void)
{
    const char *s = getenv("REFUGE_SCIM_QUERY_BUDGET_MS");
    char *end;
    long long v;

    if (!s || !*s)
        return BUDGET_DEFAULT_MS;
    v = strtoll(s, &end, 10);
    return *end || v < 0 ? BUDGET_DEFAULT_MS : v;
}

/* One resource type's part of a query. */
struct part {
    const struct scim_kind *kind;
    struct scim_filter *filter;      /* NULL: no filter */
    struct scim_sql sql;
    struct sort sort;
    struct scim_attr_sel sel;
    bool skip;                       /* the filter or sortBy does not apply to this type */
    int64_t total;
};

static void bind_params(struct db_stmt *st, const struct scim_sql *sql, int first)
{
    size_t k;

    for (k = 0; k < sql->nparams; k++) {
        const struct scim_sql_param *p = &sql->params[k];
        int i = first + (int)k;
        switch (p->type) {
        case SCIM_SQL_NULL: db_bind_null(st, i); break;
        case SCIM_SQL_INT: db_bind_int64(st, i, p->i); break;
        case SCIM_SQL_DOUBLE: db_bind_double(st, i, p->d); break;
        case SCIM_SQL_TEXT: db_bind_text(st, i, p->text, (ssize_t)p->len); break;
        }
    }
}

static int run_count(struct db *db, const char *tenant, struct part *pt)
{
    struct db_stmt *st;
    char *q;
    int rc;

    q = xasprintf("SELECT count(*) FROM %s %s WHERE %s.tenant = $1%s%s", pt->kind->table, pt->kind->alias,
                  pt->kind->alias, pt->filter ? " AND " : "", pt->filter ? pt->sql.where : "");
    st = db_prepare(db, q);
    free(q);
    if (!st)
        return -EIO;
    db_bind_text(st, 1, tenant, -1);
    bind_params(st, &pt->sql, 2);
    rc = db_step(st);
    if (rc == DB_ROW)
        pt->total = db_col_int64(st, 0);
    db_done(st);
    return rc == DB_ROW ? 0 : -EIO;
}

static int run_page(struct db *db, struct scim_ctx *c, struct part *pt, int64_t offset, int64_t limit,
                    json_t *resources)
{
    const char *a = pt->kind->alias, *dir = pt->sort.descending ? "DESC" : "ASC";
    struct db_stmt *st;
    char *q;
    int first = 2 + (int)pt->sql.nparams, rc;

    if (pt->sort.expr[0])
        q = xasprintf("SELECT %s.data FROM %s %s WHERE %s.tenant = $1%s%s ORDER BY (%s) IS NULL, %s %s, %s.id"
                      " LIMIT $%d OFFSET $%d",
                      a, pt->kind->table, a, a, pt->filter ? " AND " : "", pt->filter ? pt->sql.where : "",
                      pt->sort.expr, pt->sort.expr, dir, a, first, first + 1);
    else
        q = xasprintf("SELECT %s.data FROM %s %s WHERE %s.tenant = $1%s%s ORDER BY %s.id LIMIT $%d OFFSET $%d",
                      a, pt->kind->table, a, a, pt->filter ? " AND " : "", pt->filter ? pt->sql.where : "", a,
                      first, first + 1);
    st = db_prepare(db, q);
    free(q);
    if (!st)
        return -EIO;
    db_bind_text(st, 1, c->req->tenant, -1);
    bind_params(st, &pt->sql, 2);
    db_bind_int64(st, first, limit);
    db_bind_int64(st, first + 1, offset);
    while ((rc = db_step(st)) == DB_ROW) {
        const char *text = db_col_text(st, 0);
        json_t *data = json_loadb(text, strlen(text), 0, NULL);
        if (data)
            json_array_append_new(resources, scim_render(pt->kind->rt, data, c->base, &pt->sel));
        json_decref(data);
    }
    db_done(st);
    return rc == DB_DONE ? 0 : -EIO;
}

static int step_sql(struct db *db, const char *sql)
{
    struct db_stmt *st = db_prepare(db, sql);
    int rc;

    if (!st)
        return -EIO;
    rc = db_step(st);
    db_done(st);
    return rc < 0 ? -EIO : 0;
}

/* Prepares one part: filter, SQL, sort, selection. 0, or -EINVAL with err
 * (the caller decides whether it is fatal). */
static int prepare_part(struct part *pt, const struct list_params *lp, bool lenient, struct scim_err *err)
{
    struct scim_sql_opts o = { .table = pt->kind->alias, .first_param = 2 };
    int rc;

    if (lp->filter) {
        if ((rc = scim_filter_parse(pt->kind->rt, (struct str){ lp->filter, lp->filter_len }, NULL, &pt->filter,
                                    err)) < 0)
            return rc;
        rc = scim_filter_to_sql(pt->filter, &o, &pt->sql, err);
        if (rc < 0) {
            err->scim_type = SCIM_INVALID_FILTER;
            return -EINVAL;
        }
    }
    if ((rc = sort_expr(pt->kind, lp->sort_by, &pt->sort, err)) < 0)
        return rc;
    pt->sort.descending = lp->descending;
    if (lp->attributes_q || lp->excluded_q)
        rc = scim_attr_sel_parse(pt->kind->rt, lp->attributes_q, lp->excluded_q, lenient, &pt->sel, err);
    else
        rc = scim_attr_sel_parse_json(pt->kind->rt, lp->attributes, lp->excluded, lenient, &pt->sel, err);
    return rc;
}

static void part_free(struct part *pt)
{
    scim_filter_free(pt->filter);
    scim_sql_free(&pt->sql);
}

/* Runs a query over parts[0..n) and answers the ListResponse. */
static enum http_result run_query(struct scim_ctx *c, struct part *parts, size_t n, const struct list_params *lp)
{
    struct http_request *req = c->req;
    struct db *db = store_reader(c->n->store);
    struct budget b = { time_mono_us() + budget_ms() * 1000, false };
    sqlite3 *native = db_native(db);
    json_t *resources = json_array(), *body;
    int64_t total = 0, offset = lp->start_index - 1, want = lp->count;
    size_t i;
    int rc;

    if ((rc = step_sql(db, "BEGIN")) < 0)
        goto fail;
    sqlite3_progress_handler(native, PROGRESS_STEPS, on_progress, &b);
    if (n == 1 && offset == 0 && want > 0) {
        /* the first page: when it is not full, it is everything (no count query) */
        rc = run_page(db, c, &parts[0], 0, want, resources);
        if (rc == 0 && (int64_t)json_array_size(resources) < want)
            parts[0].total = (int64_t)json_array_size(resources);
        else if (rc == 0)
            rc = run_count(db, req->tenant, &parts[0]);
        total = parts[0].total;
        goto counted;
    }
    for (i = 0; i < n && rc == 0; i++)
        if (!parts[i].skip)
            rc = run_count(db, req->tenant, &parts[i]);
    for (i = 0; i < n && rc == 0; i++) {
        struct part *pt = &parts[i];
        if (pt->skip)
            continue;
        total += pt->total;
        if (want > 0 && offset < pt->total) {
            int64_t take = pt->total - offset < want ? pt->total - offset : want;
            size_t before = json_array_size(resources);
            rc = run_page(db, c, pt, offset, take, resources);
            want -= (int64_t)(json_array_size(resources) - before);
            offset = 0;
        } else {
            offset = offset > pt->total ? offset - pt->total : 0;
        }
    }
counted:
    sqlite3_progress_handler(native, 0, NULL, NULL);
    step_sql(db, "COMMIT");
    if (rc < 0)
        goto fail;
    body = json_pack("{s:[s], s:I, s:I, s:I, s:o}", "schemas", SCIM_URN_LIST, "totalResults", (json_int_t)total,
                     "startIndex", (json_int_t)lp->start_index, "itemsPerPage",
                     (json_int_t)json_array_size(resources), "Resources", resources);
    scim_respond(req, 200, body);
    return HTTP_DONE;
fail:
    json_decref(resources);
    if (b.hit)
        scim_respond_error(req, 400, SCIM_TOO_MANY,
                           "the query needs more work than the server is willing to do; narrow the filter");
    else
        scim_respond_errno(req, rc, NULL, NULL);
    return HTTP_DONE;
}

/* A query over one resource type. Users whose filter names one of the
 * tenant's LDAP userstores are read from that directory (directory.c). */
static enum http_result query_one(struct scim_ctx *c, const struct scim_kind *kind, const struct list_params *lp)
{
    struct part pt = { .kind = kind };
    struct scim_err err;
    enum http_result r;

    if (prepare_part(&pt, lp, false, &err) < 0) {
        scim_respond_error(c->req, 400, err.scim_type ? err.scim_type : SCIM_INVALID_VALUE,
                           arena_strdup(&c->req->arena, err.detail));
        part_free(&pt);
        return HTTP_DONE;
    }
    if (kind == &scim_kind_user &&
        scim_directory_list(c, &pt.filter, &pt.sel, !pt.sort.expr[0] || strcmp(pt.sort.expr, "u.user_name_lc") == 0,
                            lp->descending, lp->start_index, lp->count, &r)) {
        part_free(&pt);
        return r;
    }
    r = run_query(c, &pt, 1, lp);
    part_free(&pt);
    return r;
}

/* /.search: Users then Groups. A filter or sortBy that does not resolve
 * for one type leaves that type out; failing for both is an error. */
static enum http_result query_all(struct scim_ctx *c, const struct list_params *lp)
{
    struct part parts[2] = { { .kind = &scim_kind_user }, { .kind = &scim_kind_group } };
    struct scim_err err, first;
    enum http_result r = HTTP_DONE;
    size_t i, ok = 0;

    memset(&first, 0, sizeof(first));
    for (i = 0; i < 2; i++) {
        if (prepare_part(&parts[i], lp, true, &err) < 0) {
            if (!first.scim_type)
                first = err;
            parts[i].skip = true;
        } else {
            ok++;
        }
    }
    if (ok == 0)
        scim_respond_error(c->req, 400, first.scim_type ? first.scim_type : SCIM_INVALID_VALUE,
                           arena_strdup(&c->req->arena, first.detail));
    else
        r = run_query(c, parts, 2, lp);
    for (i = 0; i < 2; i++)
        part_free(&parts[i]);
    return r;
}

/* --------------------------------------------------------------- handlers */

static const struct scim_kind *route_kind(struct http_request *req)
{
    return strncmp(req->route, "scim_group", 10) == 0 ? &scim_kind_group : &scim_kind_user;
}

static enum http_result h_list(struct http_request *req)
{
    struct list_params lp;
    struct scim_ctx c;

    if (scim_begin(req->route_data, req, SCIM_READ, &c) < 0 || params_from_query(req, &lp) < 0)
        return HTTP_DONE;
    return query_one(&c, route_kind(req), &lp);
}

static enum http_result h_search(struct http_request *req)
{
    struct list_params lp;
    struct scim_ctx c;
    enum http_result r;
    json_t *body;

    if (scim_begin(req->route_data, req, SCIM_READ, &c) < 0 || !(body = scim_body(req)))
        return HTTP_DONE;
    if (params_from_body(req, body, &lp) < 0) {
        json_decref(body);
        return HTTP_DONE;
    }
    if (strcmp(req->route, "scim_search") == 0)
        r = query_all(&c, &lp);
    else
        r = query_one(&c, route_kind(req), &lp);
    json_decref(body);
    return r;
}

size_t scim_list_routes(struct node *n, struct http_route *out, size_t max)
{
    const struct http_route routes[] = {
        { "GET", "/scim2/Users", h_list, HTTP_ROUTE_TENANT, "scim_users", n },
        { "GET", "/scim2/Groups", h_list, HTTP_ROUTE_TENANT, "scim_groups", n },
        { "POST", "/scim2/Users/.search", h_search, HTTP_ROUTE_TENANT, "scim_users_search", n },
        { "POST", "/scim2/Groups/.search", h_search, HTTP_ROUTE_TENANT, "scim_groups_search", n },
        { "POST", "/scim2/.search", h_search, HTTP_ROUTE_TENANT, "scim_search", n },
    };
    size_t k = sizeof(routes) / sizeof(routes[0]);

    if (k > max)
        k = max;
    memcpy(out, routes, k * sizeof(routes[0]));
    return k;
}
