/*
 * admin — the admin API (bearer token with scope refuge:admin): tenants,
 * clients and signing keys per tenant, and node status at the root.
 */
#ifndef REFUGE_ADMIN_ADMIN_H
#define REFUGE_ADMIN_ADMIN_H

#include "http/http.h"
#include "node/node.h"

size_t admin_routes(struct node *n, struct http_route *out, size_t max);

#endif
