/*
 * nodeapi — what refugectl asks a node: an admin token (client_credentials
 * with the cluster's admin client), its status (GET /admin/v1/node, DESIGN.md
 * §4), promote and demote. Every call has a deadline: a node being fenced
 * gets the short fence timeout, never the default.
 */
#ifndef REFUGE_TOOLS_REFUGECTL_NODEAPI_H
#define REFUGE_TOOLS_REFUGECTL_NODEAPI_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "cluster.h"

struct ctl_status {
    int rc;                  /* 0: status read; else negative (transport or HTTP failure) */
    int http_status;
    char error[256];         /* why rc < 0 */
    int64_t rtt_ms;
    /* GET /admin/v1/node */
    char name[CTL_NODE_NAME_MAX + 1];
    char region[129];
    char role[16];           /* "active" | "standby" */
    char mode[16];
    int64_t epoch;
    int64_t lsn;
    int64_t lsn_epoch;       /* epoch of the record at lsn (-1 when the node does not say) */
    bool peer_connected;
    int64_t acked_lsn, lag_records, lag_bytes, lag_ms;
    int64_t rpo_target_ms, rpo_exposure_ms;
    bool diverged;
    json_t *raw;             /* the whole document (owned), NULL when rc < 0 */
};

static inline bool ctl_status_ok(const struct ctl_status *s) { return s->rc == 0; }
bool ctl_status_is_active(const struct ctl_status *s);
bool ctl_status_is_standby(const struct ctl_status *s);

/* POST /oauth2/token client_credentials at base URL u, scope `scope`.
 * Writes the access token to out; *expires_in_s when the server says. */
int ctl_client_token(const struct ctl_url *u, const char *client_id, const char *secret, const char *scope,
                     int timeout_ms, char *out, size_t outlen, int64_t *expires_in_s, char *err, size_t errlen);

/* An admin token for node n (cached in n until shortly before it expires). */
int ctl_node_token(struct ctl_cluster *c, struct ctl_node *n, int timeout_ms, char *err, size_t errlen);

/* One admin call: method path [JSON body] -> *status, *resp (owned, may be
 * NULL for an empty or non-JSON body). A 401 refreshes the token once.
 * 0 when an HTTP answer arrived (any status), negative on transport errors. */
int ctl_node_call(struct ctl_cluster *c, struct ctl_node *n, const char *method, const char *path, json_t *body,
                  int timeout_ms, int *status, json_t **resp, char *err, size_t errlen);

/* GET /admin/v1/node. Always fills st (st->rc says whether it worked). */
void ctl_status_fetch(struct ctl_cluster *c, struct ctl_node *n, int timeout_ms, struct ctl_status *st);
void ctl_status_free(struct ctl_status *st);

/* The error text of an admin answer ({"error","error_description"}) or the status code. */
void ctl_describe_answer(int status, const json_t *resp, char *out, size_t outlen);

/* Plain GET of a path on a base URL: the status code, or a negative transport code. */
int ctl_probe(const struct ctl_url *u, const char *path, int timeout_ms, json_t **resp);

#endif
