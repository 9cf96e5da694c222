/*
 * admin — the admin API (bearer token with scope refuge:admin): tenants,
 * clients and signing keys per tenant, and node status at the root.
 *
 * Every route answers JSON, and errors as {"error","error_description"}:
 * 400 invalid_request, 401/403 from authz (RFC 6750), 404 not_found,
 * 409 conflict, 503 temporarily_unavailable (standby, write queue full).
 */
#ifndef REFUGE_ADMIN_ADMIN_H
#define REFUGE_ADMIN_ADMIN_H

#include <jansson.h>
#include "http/http.h"
#include "node/node.h"

size_t admin_routes(struct node *n, struct http_route *out, size_t max);

/* The body of GET /admin/v1/node: {"name","region","role","epoch","lsn",
 * "mode","peer":{"connected","acked_lsn","lag_records","lag_bytes","lag_ms"},
 * "rpo_target_ms","rpo_exposure_ms","uptime_s","version"}. Replication
 * extends it with live values. New reference. */
json_t *node_status_json(struct node *n);

#endif
