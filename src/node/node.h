/*
 * node — the running node: its configuration, store, HTTP server, role and
 * epoch. One struct node per process, created by refuged.c and handed to the
 * subsystems that need it.
 *
 * Role and epoch are persisted in the store's node_state table (class
 * `local`) and mirrored in atomics so the request path can read them without
 * touching the database.
 */
#ifndef REFUGE_NODE_NODE_H
#define REFUGE_NODE_NODE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "http/http.h"
#include "node/conf.h"
#include "store/store.h"

enum node_role { NODE_ACTIVE = 0, NODE_STANDBY = 1 };

struct keyring;
struct repl;

struct node {
    struct refuge_conf *conf;
    struct store *store;
    struct http_server *http;
    unsigned char master_key[32];
    struct keyring *keyring;     /* tenants' signing keys, parsed */
    _Atomic int role;            /* enum node_role */
    _Atomic int64_t epoch;
    int64_t start_mono_us;
    int64_t start_wall_us;
    char cluster_id[40];
    struct repl *repl;           /* replication manager (src/repl), NULL before repl_start */
};

const char *node_role_name(int role);

/* Reads role/epoch/cluster id from node_state, initialising them on the first
 * start from the configuration. 0 or negative error with err filled. */
int node_state_load(struct node *n, char *err, size_t errlen);
/* Persists role (and epoch) through the writer, as a system job (it also
 * runs on a read-only standby); 0 or negative. */
int node_state_save(struct node *n, int role, int64_t epoch);
/* Gets / sets one node_state value (synchronous; setter goes through the writer). */
int node_state_get(struct store *s, const char *key, char *out, size_t outlen);
int node_state_set(struct store *s, const char *key, const char *value);

/* First start of an active node on an empty store: tenant `default`, its
 * signing key, the `refuge-admin` client and DATA_DIR/bootstrap-admin.json.
 * Does nothing when already bootstrapped or when the node is a standby. */
int node_bootstrap(struct node *n, char *err, size_t errlen);

/* Health, readiness and metrics routes (no authentication). */
size_t node_routes(struct node *n, struct http_route *out, size_t max);
/* Registers scrape-time gauges: RSS, uptime, role, epoch. */
void node_metrics_init(struct node *n);
/* Resident set size in bytes (from /proc/self/statm), or -1. */
int64_t node_rss_bytes(void);

#endif
