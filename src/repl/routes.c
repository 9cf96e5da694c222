/*
 * routes — node control for the operator (DESIGN.md §4): POST
 * /admin/v1/node/promote (optional body {"reason": "...", "allow_standalone":
 * true}, see repl.h) and /admin/v1/node/demote, with the operator's
 * token (default tenant, scope refuge:admin), and GET
 * /admin/v1/node/replication (the status alone). Both changes answer the node's
 * replication status after the change. A role change takes a few
 * milliseconds (one fsync, and joining the receiver on promotion), so the
 * handler runs it in place rather than suspending the request.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "oauth/authz.h"
#include "repl/repl.h"

static bool has_body(const struct http_request *req)
{
    for (size_t i = 0; i < req->body.len; i++)
        if (req->body.p[i] != ' ' && req->body.p[i] != '\t' && req->body.p[i] != '\r' && req->body.p[i] != '\n')
            return true;
    return false;
}

/* The optional promote body {"reason": "...", "allow_standalone": true}.
 * 0, or -1 after answering 400. */
static int promote_opts(struct http_request *req, struct repl_promote_opts *o, char *reason, size_t len)
{
    const char *bad = NULL;
    json_t *body, *v;

    if (!has_body(req))
        return 0;
    if (!(body = http_json_body(req)))
        return -1;
    if (!json_is_object(body)) {
        bad = "the body must be a JSON object";
        goto out;
    }
    v = json_object_get(body, "allow_standalone");
    if (v && !json_is_boolean(v)) {
        bad = "allow_standalone must be a boolean";
        goto out;
    }
    o->allow_standalone = v && json_is_true(v);
    v = json_object_get(body, "reason");
    if (v && !json_is_string(v)) {
        bad = "reason must be a string";
        goto out;
    }
    if (v)
        snprintf(reason, len, "%s", json_string_value(v));
    o->reason = reason;
out:
    json_decref(body);
    if (bad)
        http_respond_error(req, 400, "invalid_request", bad);
    return bad ? -1 : 0;
}

static enum http_result change_role(struct http_request *req, bool promote)
{
    static const char *const scopes[] = { "refuge:admin", NULL };
    struct node *n = req->route_data;
    struct principal p;
    struct repl_demote_result dres = { 0 };
    char err[256] = "", reason[128] = "";
    json_t *body;
    int rc;

    if (authz_require(n, req, req->tenant, &p, scopes) < 0)
        return HTTP_DONE;
    if (!p.super_admin) {
        http_respond_error(req, 403, "insufficient_scope", "node control needs the operator's token");
        return HTTP_DONE;
    }
    if (promote) {
        struct repl_promote_opts o = { 0 };

        if (promote_opts(req, &o, reason, sizeof(reason)) != 0)
            return HTTP_DONE;
        rc = repl_promote(n, &o, err, sizeof(err));
    } else {
        rc = repl_demote(n, &dres, err, sizeof(err));
    }
    if (rc == -EALREADY) {
        http_respond_error(req, 409, "conflict", err);
        return HTTP_DONE;
    }
    if (rc != 0) {
        http_respond_error(req, 500, "server_error", err[0] ? err : "role change failed");
        return HTTP_DONE;
    }
    body = json_object();
    repl_status_fill_node(n, body);
    if (!promote)
        json_object_set_new(body, "demote",
                            json_pack("{s:I, s:I, s:b}", "final_lsn", (json_int_t)dres.final_lsn,
                                      "standby_acked_lsn", (json_int_t)dres.standby_acked_lsn, "drained",
                                      dres.drained));
    http_respond_json(req, 200, body);
    return HTTP_DONE;
}

/* GET /admin/v1/node/replication: the replication status alone (the same
 * fields GET /admin/v1/node carries), for refugectl and the tests. */
static enum http_result status(struct http_request *req)
{
    static const char *const scopes[] = { "refuge:admin", NULL };
    struct node *n = req->route_data;
    struct principal p;
    json_t *body;

    if (authz_require(n, req, req->tenant, &p, scopes) < 0)
        return HTTP_DONE;
    body = json_pack("{s:s, s:s}", "name", n->conf->node_name ? n->conf->node_name : "", "region",
                     n->conf->node_region ? n->conf->node_region : "");
    repl_status_fill_node(n, body);
    http_respond_json(req, 200, body);
    return HTTP_DONE;
}

static enum http_result promote(struct http_request *req)
{
    return change_role(req, true);
}

static enum http_result demote(struct http_request *req)
{
    return change_role(req, false);
}

size_t repl_routes(struct node *n, struct http_route *out, size_t max)
{
    const struct http_route routes[] = {
        { "GET", "/admin/v1/node/replication", status, 0, "admin_node_replication", n },
        { "POST", "/admin/v1/node/promote", promote, 0, "admin_node_promote", n },
        { "POST", "/admin/v1/node/demote", demote, 0, "admin_node_demote", n },
    };
    size_t k = sizeof(routes) / sizeof(routes[0]);

    if (k > max)
        k = max;
    memcpy(out, routes, k * sizeof(routes[0]));
    return k;
}
