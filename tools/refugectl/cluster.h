/*
 * cluster — cluster.conf, the file every DR subcommand of refugectl reads:
 * which nodes exist, where their admin APIs are, how to reach the front
 * door, the admin credentials, and the objectives (RTO/RPO).
 *
 *   [cluster]
 *   name = refuge-demo
 *   admin_credentials = a/bootstrap-admin.json   ; {"client_id","client_secret"}
 *   rto_target_ms = 1000
 *   rpo_target_ms = 0
 *
 *   [haproxy]
 *   socket = run/haproxy.sock                   ; runtime API, "level admin"
 *   backend = refuge
 *   frontend_url = http://127.0.0.1:18000
 *
 *   [node.a]                                    ; one section per node
 *   admin_url = http://127.0.0.1:18081
 *   region = region-a
 *   haproxy_server = a                          ; default: the node name
 *   data_dir = a                                ; optional (rejoin: divergent files)
 *   start_command = /usr/bin/refuged -c a.conf  ; optional (rejoin, drill)
 *   pid_file = run/a.pid                        ; optional (drill kills by pid)
 *
 * The file is checked by the core config schema (core/config.h), so errors
 * name file:line:key exactly like refuged's. [node.NAME] sections have names
 * known only when the file is read: a first pass collects them and the schema
 * is built with one key set per node. Relative paths are relative to the
 * directory of cluster.conf.
 */
#ifndef REFUGE_TOOLS_REFUGECTL_CLUSTER_H
#define REFUGE_TOOLS_REFUGECTL_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "http.h"

#define CTL_MAX_NODES 8
#define CTL_NODE_NAME_MAX 64
#define CTL_TOKEN_MAX 4096

struct ctl_node {
    char *name;                /* from the section name [node.NAME] */
    char *section;             /* "node.NAME" (the schema points at it) */
    char *admin_url;
    char *region;
    char *haproxy_server;
    char *data_dir;            /* optional */
    char *start_command;       /* optional: run with sh -c 'exec CMD' */
    char *pid_file;            /* optional */
    char *log_file;            /* optional: start_command's stdout/stderr */
    struct ctl_url url;
    /* an admin token for this node, fetched on first use */
    char token[CTL_TOKEN_MAX];
    int64_t token_expiry_mono_us;
};

struct ctl_cluster {
    char *path;                /* cluster.conf as given */
    char *dir;                 /* its directory */
    /* [cluster] */
    char *name;
    char *admin_credentials;
    int64_t rto_target_ms;
    int64_t rpo_target_ms;
    int64_t request_timeout_ms;
    int64_t fence_timeout_ms;
    int64_t catchup_timeout_ms;
    int64_t rejoin_timeout_ms;
    char *journal;             /* optional: JSON lines of every step */
    /* [haproxy] */
    char *haproxy_socket;
    char *haproxy_backend;
    char *frontend_url;
    struct ctl_url front;
    /* [node.NAME] */
    size_t n_nodes;
    struct ctl_node nodes[CTL_MAX_NODES];
    /* from admin_credentials */
    char *client_id;
    char *client_secret;
};

/* Loads path (NULL: $REFUGE_CLUSTER, else ./cluster.conf). 0, or -1 with a
 * "file:line: key: message" text in err. Release with ctl_cluster_free
 * whatever it returned. */
int ctl_cluster_load(const char *path, struct ctl_cluster *c, char *err, size_t errlen);
void ctl_cluster_free(struct ctl_cluster *c);
struct ctl_node *ctl_cluster_node(struct ctl_cluster *c, const char *name);

#endif
