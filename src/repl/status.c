/*
 * status — the replication part of GET /admin/v1/node (DESIGN.md §4): the
 * node's position, its link to the peer, lag in records, bytes and
 * milliseconds, and the RPO exposure, always measured on the active node's
 * own clock (DESIGN.md §5.9): the age of the oldest record the standby has
 * not acknowledged. admin/node.c builds the object; this fills it in.
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <string.h>

#include "core/timeutil.h"
#include "repl/internal.h"

static int64_t bytes_after(struct db *db, uint64_t lsn)
{
    struct db_stmt *st;
    int64_t v = 0;

    if (!db || !(st = db_prepare(db, "SELECT COALESCE(SUM(length(changeset)), 0) FROM repl_log WHERE lsn > $1")))
        return 0;
    db_bind_int64(st, 1, (int64_t)lsn);
    if (db_step(st) == DB_ROW)
        v = db_col_int64(st, 0);
    db_done(st);
    return v;
}

void repl_status_fill_node(struct node *n, json_t *obj)
{
    struct repl *r = repl_of(n);
    bool active = atomic_load(&n->role) == NODE_ACTIVE;
    uint64_t tip, tip_epoch, acked, active_lsn, reconnects, applied;
    int64_t oldest, hb, ack_lat, log_bytes;
    bool connected, diverged;
    char peer_name[REPL_NODE_NAME_MAX + 1], active_name[REPL_NODE_NAME_MAX + 1];
    char why[300], last_error[300], cid[UUID_STRLEN + 1], sa_reason[240];
    bool standalone;
    int64_t sa_since;
    enum repl_sync sync;
    uint64_t common;
    double rate;
    int64_t exposure = 0, lag_ms = 0, lag_records = 0, lag_bytes = 0;
    json_t *peer;

    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    tip = r->tip_lsn;
    tip_epoch = r->tip_epoch;
    acked = r->acked_written;
    oldest = r->oldest_unacked_us;
    connected = active ? r->peer_connected : (r->recv_conn != NULL && r->active_name[0]);
    memcpy(peer_name, active ? r->peer_name : r->active_name, sizeof(peer_name));
    memcpy(active_name, r->active_name, sizeof(active_name));
    active_lsn = r->active_lsn;
    hb = r->last_heartbeat_mono;
    diverged = r->diverged;
    memcpy(why, r->diverged_reason, sizeof(why));
    memcpy(last_error, r->last_error, sizeof(last_error));
    reconnects = r->reconnects;
    applied = r->applied_total;
    rate = r->apply_rate;
    ack_lat = r->last_ack_latency_us;
    log_bytes = r->log_bytes;
    memcpy(cid, n->cluster_id, sizeof(cid));
    standalone = atomic_load(&r->standalone) && active;
    memcpy(sa_reason, r->standalone_reason, sizeof(sa_reason));
    sa_since = r->standalone_since_us;
    sync = r->sync;
    common = r->common_lsn;
    pthread_mutex_unlock(&r->mu);

    if (active && r->has_peer) {
        lag_records = (int64_t)(tip - acked);
        exposure = oldest ? (time_mono_us() - oldest) / 1000 : 0;   /* monotonic domain (repl.c) */
        if (exposure < 0)
            exposure = 0;
        lag_ms = exposure;
        lag_bytes = lag_records > 0 ? bytes_after(store_reader(n->store), acked) : 0;
    } else if (!active) {
        lag_records = active_lsn > tip ? (int64_t)(active_lsn - tip) : 0;
        acked = tip;
    }
    peer = json_pack("{s:b, s:s, s:I, s:I, s:I, s:I}", "connected", connected, "name", peer_name,
                     "acked_lsn", (json_int_t)acked, "lag_records", (json_int_t)lag_records, "lag_bytes",
                     (json_int_t)lag_bytes, "lag_ms", (json_int_t)lag_ms);
    if (active)
        json_object_set_new(peer, "last_ack_latency_ms", json_real((double)ack_lat / 1000.0));
    else
        json_object_set_new(peer, "last_heartbeat_ms_ago",
                            hb ? json_integer((json_int_t)((time_mono_us() - hb) / 1000)) : json_null());
    json_object_set_new(obj, "lsn", json_integer((json_int_t)tip));
    json_object_set_new(obj, "lsn_epoch", json_integer((json_int_t)tip_epoch));
    json_object_set_new(obj, "epoch", json_integer((json_int_t)atomic_load(&n->epoch)));
    json_object_set_new(obj, "role", json_string(node_role_name(atomic_load(&n->role))));
    json_object_set_new(obj, "mode", json_string(conf_mode_name(r->conf->repl_mode)));
    /* standalone: acknowledged at local commit whatever the mode (repl.c) */
    json_object_set_new(obj, "effective_mode",
                        json_string(standalone ? "async" : conf_mode_name(r->conf->repl_mode)));
    json_object_set_new(obj, "standalone", json_boolean(standalone));
    if (standalone) {
        json_object_set_new(obj, "standalone_reason", json_string(sa_reason));
        json_object_set_new(obj, "standalone_ms",
                            json_integer((json_int_t)((time_wall_us() - sa_since) / 1000)));
    }
    json_object_set_new(obj, "cluster_id", json_string(cid));
    json_object_set_new(obj, "writable", json_boolean(store_writable(n->store)));
    json_object_set_new(obj, "peer", peer);
    json_object_set_new(obj, "rpo_target_ms", json_integer((json_int_t)r->conf->rpo_target_ms));
    json_object_set_new(obj, "rpo_exposure_ms", json_integer((json_int_t)exposure));
    json_object_set_new(obj, "diverged", json_boolean(diverged));
    if (diverged)
        json_object_set_new(obj, "diverged_reason", json_string(why));
    json_object_set_new(obj, "replication", json_pack("{s:s?, s:s?, s:I, s:f, s:I, s:I, s:s?}", "listen",
                                                      r->conf->repl_listen, "peer", r->conf->repl_peer,
                                                      "applied_total", (json_int_t)applied, "apply_rate", rate,
                                                      "reconnects", (json_int_t)reconnects, "log_bytes",
                                                      (json_int_t)log_bytes, "last_error",
                                                      last_error[0] ? last_error : NULL));
    if (!active && active_name[0])
        json_object_set_new(obj, "active_node", json_string(active_name));
    /* sync_state: "active" on the active node; on a standby where its
     * receiver is (internal.h enum repl_sync), or "halted" when apply
     * stopped (diverged). A rejoining old primary reports "rewinding" while
     * it still holds its divergent tail and "catching_up" until it reached
     * the active's position of its session start: only "streaming" means
     * it follows live. */
    json_object_set_new(obj, "sync_state",
                        json_string(active ? "active" : diverged ? "halted" : repl_sync_name(sync)));
    if (!active && sync != REPL_SYNC_DISCONNECTED)
        json_object_set_new(obj, "common_lsn", json_integer((json_int_t)common));
}
