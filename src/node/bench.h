/* bench — routes that exist only in bench builds (-DREFUGE_BENCH=ON) to measure the write path. */
#ifndef REFUGE_NODE_BENCH_H
#define REFUGE_NODE_BENCH_H

#include "http/http.h"
#include "node/node.h"

size_t bench_routes(struct node *n, struct http_route *out, size_t max);

#endif
