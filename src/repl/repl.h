/*
 * repl — the replication manager of a node: what the rest of refuged sees of
 * replication (DESIGN.md §5).
 *
 * One manager per node, created by app.c after the store and the node state
 * are loaded. It installs capture on the store, listens on [replication]
 * listen, follows [replication] peer while the node is a standby (receiver.c)
 * and serves one standby while it is active (sender.c), holds write
 * acknowledgements as [replication] mode asks, prunes the log, and performs
 * promotions, demotions and fencing. Node status and metrics read it.
 *
 * Start-up order (app.c):
 *   store_open -> node_state_load -> repl_start (capture, fencing probe,
 *   threads) -> node_bootstrap -> repl_arm (ack modes and lag bound from now
 *   on) -> HTTP.
 * Shut-down: HTTP quiesce -> repl_stop (held writes fail with -ESHUTDOWN,
 *   threads joined) -> HTTP stop -> store_close.
 */
#ifndef REFUGE_REPL_REPL_H
#define REFUGE_REPL_REPL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include "http/http.h"
#include "node/node.h"

struct repl;

/* Starts replication for node n (n->repl is set). Without [replication]
 * listen and peer the node still captures (a standby can be added later)
 * but neither listens nor connects. 0 or negative with err filled. */
int repl_start(struct node *n, char *err, size_t errlen);
/* From now on writes wait for the standby as the mode says. */
void repl_arm(struct node *n);
/* Stops every replication thread; held writes fail with -ESHUTDOWN.
 * Safe when repl_start failed or was never called. */
void repl_stop(struct node *n);

struct repl_promote_opts {
    /* An operator's failover after losing the peer's region: in any mode,
     * acknowledge writes at local commit ("standalone") until a standby
     * connects and catches up, then return to the configured mode. false:
     * writes wait for a standby as the mode says (strict). */
    bool allow_standalone;
    const char *reason;               /* for the log; NULL: "operator request" */
};

/* Standby -> active: stops receiving (everything received is applied),
 * persists epoch + 1 and its history entry, then opens the store for
 * writes. o may be NULL (strict, no reason). 0, -EALREADY (already
 * active), or negative with err filled. */
int repl_promote(struct node *n, const struct repl_promote_opts *o, char *err, size_t errlen);
struct repl_demote_result {
    uint64_t final_lsn;               /* the last lsn this node committed */
    uint64_t standby_acked_lsn;       /* what the standby acknowledged when the drain ended */
    bool drained;                     /* the standby acknowledged final_lsn */
};

/* Active -> standby: stops accepting writes at once; the sender then keeps
 * streaming until the standby acknowledged the final lsn (or disconnects,
 * or max(max_lag_ms, 5 s) pass) before the node follows the peer. Held
 * writes the standby acknowledged in that time succeed, the rest fail.
 * res may be NULL. 0, -EALREADY, or negative with err filled. */
int repl_demote(struct node *n, struct repl_demote_result *res, char *err, size_t errlen);

/* Adds the replication fields of GET /admin/v1/node to obj (lsn, epoch,
 * mode, peer {...}, rpo_target_ms, rpo_exposure_ms, diverged, ...) of the
 * running node. Does nothing before repl_start. */
void repl_status_fill(json_t *obj);
void repl_status_fill_node(struct node *n, json_t *obj);

/* POST /admin/v1/node/promote and /admin/v1/node/demote. */
size_t repl_routes(struct node *n, struct http_route *out, size_t max);

/* Writes refused by replication fail with -EBUSY (a 503): the standby is
 * too far behind (max_lag_ms), or no standby acknowledged in time in a
 * remote_* mode. This gives the words for the 503's error_description
 * (also for -EROFS on a standby: naming the active node). NULL for codes
 * replication does not produce. */
const char *repl_write_error(struct node *n, int rc, char *buf, size_t len);

#endif
