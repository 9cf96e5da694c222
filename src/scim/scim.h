/*
 * scim — the SCIM 2.0 service (RFC 7643, RFC 7644) of every tenant, at
 * /scim2/... and /t/T/scim2/...:
 *
 *   /scim2/Users, /scim2/Users/{id}, /scim2/Users/.search
 *   /scim2/Groups, /scim2/Groups/{id}, /scim2/Groups/.search
 *   /scim2/Me                       the bearer's own user (GET, PUT, PATCH)
 *   /scim2/.search                  Users and Groups together
 *   /scim2/ServiceProviderConfig, /scim2/Schemas[/{id}], /scim2/ResourceTypes[/{id}]
 *
 * Authorization: scope scim:read (or scim:write) for reads, scim:write for
 * writes, refuge:admin for both; /Me with any user token of the tenant;
 * discovery documents without a token. Writes go through the store writer
 * with the connection suspended; password hashing runs on the CPU worker
 * pool first (never on an HTTP worker).
 */
#ifndef REFUGE_SCIM_SCIM_H
#define REFUGE_SCIM_SCIM_H

#include "http/http.h"
#include "node/node.h"

size_t scim_routes(struct node *n, struct http_route *out, size_t max);

#endif
