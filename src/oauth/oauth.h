/*
 * oauth — the OAuth 2.0 / OpenID Connect endpoints of every tenant:
 * discovery, JWKS, token, introspection, revocation, userinfo.
 */
#ifndef REFUGE_OAUTH_OAUTH_H
#define REFUGE_OAUTH_OAUTH_H

#include "http/http.h"
#include "node/node.h"

size_t oauth_routes(struct node *n, struct http_route *out, size_t max);
/* Background purge of expired tokens, codes and retired keys in bounded batches. */
int oauth_purge_start(struct node *n);
void oauth_purge_stop(struct node *n);

#endif
