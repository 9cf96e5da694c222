/* routes — the one table of every HTTP route a node serves, assembled from the subsystems. */
#ifndef REFUGE_NODE_ROUTES_H
#define REFUGE_NODE_ROUTES_H

#include "http/http.h"
#include "node/node.h"

size_t routes_collect(struct node *n, struct http_route *out, size_t max);

#endif
