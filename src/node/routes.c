/*
 * routes — assembles the route table. Each subsystem exports a function that
 * appends its routes; the order here is only for readability (the router
 * matches on method and path, not on order).
 */
#include "node/routes.h"

#include "admin/admin.h"
#include "artifacts/artifacts.h"
#include "node/bench.h"
#include "oauth/oauth.h"
#include "repl/repl.h"
#include "scim/scim.h"

size_t routes_collect(struct node *n, struct http_route *out, size_t max)
{
    size_t k = 0;
    k += node_routes(n, out + k, max - k);
    k += oauth_routes(n, out + k, max - k);
    k += admin_routes(n, out + k, max - k);
    k += repl_routes(n, out + k, max - k);
    k += scim_routes(n, out + k, max - k);
    k += artifacts_routes(n, out + k, max - k);
    k += bench_routes(n, out + k, max - k);
    return k;
}
