/*
 * node — GET /admin/v1/node at the root, for the operator's token: who this
 * node is, its role and epoch, and the replication figures an operator (and
 * refugectl) decides a failover on. node_status_json is the one place that
 * renders them; the replication layer extends it with live values (lsn,
 * peer state, RPO exposure), which read as zero until then.
 */
#include <stdatomic.h>

#include "admin/admin_internal.h"
#include "artifacts/artifacts.h"
#include "core/timeutil.h"
#include "ldap/userstore.h"
#include "repl/repl.h"

#ifndef REFUGE_VERSION
#define REFUGE_VERSION "unknown"
#endif

json_t *node_status_json(struct node *n)
{
    const struct refuge_conf *c = n->conf;
    json_t *peer = json_pack("{s:b, s:I, s:I, s:I, s:I}", "connected", 0, "acked_lsn", (json_int_t)0,
                             "lag_records", (json_int_t)0, "lag_bytes", (json_int_t)0, "lag_ms",
                             (json_int_t)0);

    json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:o, s:I, s:I, s:I, s:s}",
                     "name", c->node_name ? c->node_name : "",
                     "region", c->node_region ? c->node_region : "",
                     "role", node_role_name(atomic_load(&n->role)),
                     "epoch", (json_int_t)atomic_load(&n->epoch),
                     "lsn", (json_int_t)0,
                     "mode", conf_mode_name(c->repl_mode),
                     "peer", peer,
                     "rpo_target_ms", (json_int_t)c->rpo_target_ms,
                     "rpo_exposure_ms", (json_int_t)0,
                     "uptime_s", (json_int_t)((time_mono_us() - n->start_mono_us) / 1000000),
                     "version", REFUGE_VERSION);
    /* The subsystems overwrite the placeholders above with live values. */
    repl_status_fill_node(n, o);
    artifacts_status_fill(n, o);
    ldap_status_fill(n, o);
    return o;
}

static enum http_result node_get(struct http_request *req)
{
    struct node *n = req->route_data;
    struct principal p;

    if (admin_auth(n, req, true, &p) < 0)
        return HTTP_DONE;
    http_respond_json(req, 200, node_status_json(n));
    return HTTP_DONE;
}

size_t admin_node_routes(struct node *n, struct http_route *out, size_t max)
{
    const struct http_route routes[] = {
        { "GET", "/admin/v1/node", node_get, 0, "admin_node", n },
    };
    return admin_copy_routes(routes, sizeof(routes) / sizeof(routes[0]), out, max);
}
