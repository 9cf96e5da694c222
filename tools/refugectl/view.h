/*
 * view — one observation of the whole deployment: every node's status (read
 * in parallel, each with its own deadline), the HAProxy servers, and what the
 * front door answers on /health/ready. The controllers (failover,
 * switchover, rejoin, drill) observe, then act (STYLE.md §12): every decision
 * is taken on a view, never on a half-remembered state.
 */
#ifndef REFUGE_TOOLS_REFUGECTL_VIEW_H
#define REFUGE_TOOLS_REFUGECTL_VIEW_H

#include "cluster.h"
#include "haproxy.h"
#include "nodeapi.h"

struct ctl_view {
    struct ctl_cluster *c;
    struct ctl_status st[CTL_MAX_NODES];     /* index = node index in c */
    int hap_rc;                              /* 0, or negative with hap_err */
    char hap_err[256];
    struct ctl_hap_server hap[CTL_HAP_MAX_SERVERS];
    size_t n_hap;
    int front_status;                        /* /health/ready through HAProxy, or negative */
    json_t *front_ready;                     /* its JSON (owned), maybe NULL */
};

#define CTL_VIEW_NO_FRONT 1      /* skip the front door probe (a controller's hot path) */

/* Observes everything. timeouts[i] is node i's deadline in ms (NULL: the
 * cluster's request timeout for every node). */
void ctl_view_observe(struct ctl_view *v, struct ctl_cluster *c, const int *timeouts, int flags);
void ctl_view_free(struct ctl_view *v);

size_t ctl_node_index(const struct ctl_cluster *c, const struct ctl_node *n);
/* HAProxy's record of node n, or NULL. */
const struct ctl_hap_server *ctl_view_hap(const struct ctl_view *v, const struct ctl_node *n);
/* Number of reachable nodes reporting role active; *first gets the first one's index. */
size_t ctl_view_actives(const struct ctl_view *v, size_t *first);
/* The region / node name the front door answered from ("" when it did not). */
const char *ctl_view_front_region(const struct ctl_view *v);

#endif
