/*
 * receiver — the standby's end of the replication connection.
 *
 * Life cycle (one thread, started when the node becomes a standby — at
 * start-up or by demotion — and joined by promotion or shutdown; like
 * PostgreSQL's walreceiver it owns the connection to the primary):
 *
 *   1. Connect to [replication] peer; on failure retry after a backoff that
 *      doubles from 100 ms to 5 s, with jitter (a random delay between half
 *      and all of it), so a restarted region is not hammered in lockstep.
 *   2. Handshake: send our HELLO (cluster id, name, schema version, epoch
 *      history, tip and its hash; NEED_SNAPSHOT when our log is empty), read
 *      the active's HELLO. Refuse (log the reason, back off, retry) a peer
 *      that is not active, whose certificate names another node, whose
 *      schema version differs, whose epoch is below ours (a stale primary),
 *      or whose cluster id differs while we hold data. A higher epoch is
 *      adopted and persisted: we will never accept records of a lower one.
 *   3. Position: the last common position L of both histories. If our tip
 *      is past L, our records after L are divergent (we were a primary that
 *      lost the race): before applying anything we verify L really is
 *      common (the first record after L must chain onto our hash at L, or
 *      the active's tip hash at L must equal ours), export the divergent
 *      records to DATA_DIR/divergent/ and rewind them (rewind.c). Status
 *      says where we are (repl_set_sync): rewinding until that is done,
 *      catching_up until our tip reaches the active's position of the
 *      session start, then streaming; snapshot while one is installed.
 *   4. Streaming: RECORDS frames are applied in one system write job per
 *      read (the frame, plus every RECORDS frame already waiting in the
 *      socket, up to 8 MiB: one fsync for all of them; apply.c: checked,
 *      applied, logged, exactly once), keys are reloaded
 *      when config tables changed, and an ACK (written = applied = our new
 *      tip) goes back. HEARTBEATs are answered with an ACK too, so the
 *      active sees us alive and knows our position when idle. A SNAPSHOT
 *      replaces our database (snapshot.c) and we continue from its tip.
 *   5. Halting: a record that cannot be applied (gap, chain mismatch, lower
 *      epoch, conflict, schema) or a frame that fails its checksum marks the
 *      node diverged (status, metric refuge_repl_diverged), is reported to
 *      the active with ERROR apply_failed, and apply stops: the thread stays
 *      idle until promotion or shutdown rather than guess.
 *   6. Stop: promotion or shutdown sets recv_stop and shuts the socket
 *      down; an apply in progress completes first (it runs to its commit on
 *      the writer), so "everything received is applied" when join returns.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/rand.h"
#include "core/timeutil.h"
#include "core/xmalloc.h"
#include "identity/keyring.h"
#include "repl/apply.h"
#include "repl/internal.h"
#include "repl/rewind.h"
#include "repl/snapshot.h"

struct receiver {
    struct repl *r;
    struct repl_conn *c;
    struct db *db;
    struct repl_decoder dec;
    struct repl_frame *f;
    struct buf out;
    struct repl_hello *mine, *active;
    uint64_t common;
    bool pending_rewind;
    bool in_snapshot;
    bool have_frame;             /* x->f holds a frame not yet handled */
    struct repl_snapshot_rx rx;
    struct repl_record *recs;     /* gathered records; changesets in pool */
    size_t n, cap;
    struct buf pool;
    int64_t last_rx_us;
};

static bool stop_requested(struct repl *r)
{
    return atomic_load(&r->recv_stop) || !repl_running(r);
}

static void set_error(struct repl *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(struct repl *r, const char *fmt, ...)
{
    va_list ap;

    pthread_mutex_lock(&r->mu);
    va_start(ap, fmt);
    vsnprintf(r->last_error, sizeof(r->last_error), fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&r->mu);
}

static int send_ack(struct receiver *x)
{
    struct repl_tip tip;
    struct repl_ack a = { 0 };
    int rc = repl_log_tip(x->db, &tip);

    if (rc != 0)
        return rc;
    a.written.epoch = a.applied.epoch = tip.epoch;
    a.written.lsn = a.applied.lsn = tip.lsn;
    memcpy(a.applied_hash, tip.hash, REPL_HASH_LEN);
    rc = repl_frame_encode_ack(&x->out, &a);
    if (rc == 0)
        rc = repl_conn_write_buf(x->c, &x->out, REPL_IO_TIMEOUT_MS);
    buf_reset(&x->out);
    return rc;
}

/* Apply halts: diverged, the active is told why. */
static void halt(struct receiver *x, const char *why)
{
    repl_set_diverged(x->r, why);
    repl_send_error(x->c, REPL_ERR_APPLY_FAILED, "%s", why);
}

/* ------------------------------------------------------------- rewind */

struct rewind_job {
    uint64_t to;
    size_t n;
    char why[256];
};

static int rewind_fn(struct db *db, void *arg)
{
    struct rewind_job *j = arg;

    return repl_rewind_apply(db, j->to, &j->n, j->why, sizeof(j->why));
}

/* Exports then undoes our records after x->common. 0 or negative. */
static int rewind_divergent(struct receiver *x)
{
    struct repl *r = x->r;
    struct rewind_job j = { .to = x->common };
    char paths[1024] = "", err[256] = "";
    size_t nrec = 0;
    int64_t t0 = time_mono_us();
    int rc;

    rc = repl_divergent_export(x->db, r->data_dir, r->conf->node_name, x->common, &nrec, paths, sizeof(paths), err,
                               sizeof(err));
    if (rc != 0) {
        log_error("rejoin: cannot export the divergent transactions; not rewinding", "error", err, NULL);
        set_error(r, "cannot export divergent transactions: %s", err);
        return rc;
    }
    rc = store_write_flags(r->n->store, rewind_fn, &j, STORE_JOB_SYSTEM);
    if (rc != 0) {
        char why[300];

        snprintf(why, sizeof(why), "rewind to lsn %" PRIu64 " failed: %s", x->common, j.why);
        halt(x, why);
        return rc;
    }
    repl_reload_tip(r, x->db);
    keyring_invalidate(r->n->keyring);
    repl_set_sync(r, REPL_SYNC_CATCHING_UP, x->common);
    log_warn("rejoin: divergent transactions exported and rewound", "common_lsn", log_i64((int64_t)x->common),
             "records", log_i64((int64_t)nrec), "files", paths, "ms", log_i64((time_mono_us() - t0) / 1000), NULL);
    x->pending_rewind = false;
    return 0;
}

/* ------------------------------------------------------------- records */

struct apply_job {
    const struct repl_record *recs;
    size_t n;
    struct repl_apply_result res;
    int rc;
};

static bool is_refusal(int rc)
{
    return rc <= REPL_APPLY_EGAP && rc >= REPL_APPLY_ECORRUPT;
}

static int apply_fn(struct db *db, void *arg)
{
    struct apply_job *j = arg;

    j->rc = repl_apply_records(db, j->recs, j->n, &j->res);
    /* a refusal keeps the applied prefix; a storage error keeps nothing */
    return is_refusal(j->rc) ? 0 : j->rc;
}

/*
 * One apply transaction for every RECORDS frame already waiting: under load
 * the active sends a frame per group commit, and applying each in its own
 * transaction would cost the standby one fsync per frame. Reads more frames
 * without waiting, up to RX_COALESCE_BYTES of changesets; a frame of another
 * type stays in x->f for the caller (*have_next), a read error is returned in
 * *read_rc after what was gathered is applied.
 */
#define RX_COALESCE_BYTES (8u << 20)

static int on_records(struct receiver *x, bool *have_next, int *read_rc)
{
    struct repl *r = x->r;
    struct apply_job j = { 0 };
    int rc;

    *have_next = false;
    *read_rc = 0;
    x->n = 0;
    buf_reset(&x->pool);
    for (;;) {
        struct repl_records_iter it = repl_records_iter(&x->f->u.records);
        struct repl_record rec;

        while (repl_records_next(&it, &rec)) {
            if (x->n == x->cap) {
                x->cap = x->cap ? 2 * x->cap : 64;
                x->recs = xrealloc(x->recs, x->cap * sizeof(*x->recs));
            }
            x->recs[x->n] = rec;
            x->recs[x->n].changeset.p = (const char *)(uintptr_t)x->pool.len;   /* an offset until the pool is final */
            if (rec.changeset.len && buf_append(&x->pool, rec.changeset.p, rec.changeset.len) != 0)
                abort();      /* the pool's limit is above RX_COALESCE_BYTES + one frame */
            x->n++;
        }
        if (x->pool.len >= RX_COALESCE_BYTES)
            break;
        rc = repl_conn_read_frame(x->c, &x->dec, x->f, 0);
        if (rc == -ETIMEDOUT)
            break;
        if (rc != 1) {
            *read_rc = rc == 0 ? -ECONNRESET : rc;
            break;
        }
        x->last_rx_us = time_mono_us();
        if (x->f->type != REPL_FRAME_RECORDS) {
            *have_next = true;
            break;
        }
    }
    for (size_t i = 0; i < x->n; i++)
        x->recs[i].changeset.p = x->pool.data ? x->pool.data + (uintptr_t)x->recs[i].changeset.p : "";
    if (x->n == 0)
        return 0;
    if (r->apply_delay_ms > 0)
        time_sleep_us((int64_t)r->apply_delay_ms * 1000);     /* test hook: a slow standby */
    if (x->pending_rewind) {
        uint8_t h[REPL_HASH_LEN], at[REPL_HASH_LEN];

        /* the first record after the common position must chain onto our
         * hash there: only then is that position really common */
        if (x->recs[0].pos.lsn != x->common + 1 || repl_log_hash_at(x->db, x->common, at) != 0) {
            halt(x, "rejoin: the active's first record does not follow the common position");
            return -EPROTO;
        }
        repl_hash_next(at, x->recs[0].pos.epoch, x->recs[0].pos.lsn, x->recs[0].commit_us,
                       x->recs[0].changeset.p, x->recs[0].changeset.len, h);
        if (memcmp(h, x->recs[0].hash, REPL_HASH_LEN) != 0) {
            halt(x, "rejoin: histories agree but chained hashes differ at the common position");
            return -EPROTO;
        }
        if ((rc = rewind_divergent(x)) != 0)
            return rc;
    }
    j.recs = x->recs;
    j.n = x->n;
    rc = store_write_flags(r->n->store, apply_fn, &j, STORE_JOB_SYSTEM);
    if (rc != 0) {
        log_error("replication: apply failed (storage); reconnecting", "rc", log_i64(rc), NULL);
        set_error(r, "apply failed: storage error %d", rc);
        return rc;
    }
    if (j.res.applied > 0) {
        int64_t applied_bytes = 0;

        for (size_t i = 0; i < j.res.applied; i++)
            applied_bytes += (int64_t)x->recs[i].changeset.len;
        repl_count_applied(r, j.res.applied, applied_bytes, &j.res.tip);
        if (j.res.config_changed)
            keyring_invalidate(r->n->keyring);
    }
    if (j.rc != 0) {
        char why[400];

        snprintf(why, sizeof(why), "%s: %s", repl_apply_strerror(j.rc), j.res.why);
        if (j.res.applied > 0)
            send_ack(x);
        halt(x, why);
        return -EBADMSG;
    }
    return send_ack(x);
}

/* ------------------------------------------------------------ snapshot */

struct fixup_job {
    struct repl_tip tip;
};

static int fixup_fn(struct db *db, void *arg)
{
    struct fixup_job *j = arg;
    char hex[2 * REPL_HASH_LEN + 1];
    int rc = repl_state_set_u64(db, "applied_epoch", j->tip.epoch);

    if (rc == 0)
        rc = repl_state_set_u64(db, "applied_lsn", j->tip.lsn);
    if (rc == 0)
        rc = repl_state_set(db, "applied_hash", repl_hash_hex(j->tip.hash, hex));
    if (rc == 0)
        rc = db_execp(db, "INSERT INTO node_state(key, value) VALUES ('role', 'standby') "
                          "ON CONFLICT(key) DO UPDATE SET value = excluded.value", NULL);
    return rc;
}

static int read_node_state(struct db *db, const char *key, char *out, size_t len)
{
    struct db_stmt *st = db_prepare(db, "SELECT value FROM node_state WHERE key = $1");
    int rc;

    if (!st)
        return DB_ERR;
    db_bind_text(st, 1, key, -1);
    rc = db_step(st);
    if (rc == DB_ROW)
        snprintf(out, len, "%s", db_col_text(st, 0));
    db_done(st);
    return rc == DB_ROW ? 0 : -ENOENT;
}

static int on_snapshot_begin(struct receiver *x)
{
    struct repl *r = x->r;
    const struct repl_snapshot_begin *sb = &x->f->u.snap_begin;
    struct repl_tip tip = { .epoch = sb->pos.epoch, .lsn = sb->pos.lsn };
    char *path = xasprintf("%s/snapshot-in.db", r->data_dir);
    char err[256] = "";
    int rc;

    memcpy(tip.hash, sb->hash, REPL_HASH_LEN);
    if (x->in_snapshot)
        repl_snapshot_rx_abort(&x->rx);
    /* our records after the common position are about to disappear under
     * the snapshot: export them first (nothing disappears silently) */
    if (x->mine->last.lsn > x->common) {
        char paths[1024] = "";
        size_t nrec = 0;

        rc = repl_divergent_export(x->db, r->data_dir, r->conf->node_name, x->common, &nrec, paths, sizeof(paths),
                                   err, sizeof(err));
        if (rc != 0) {
            log_error("snapshot refused: cannot export our divergent transactions", "error", err, NULL);
            free(path);
            return rc;
        }
        log_warn("divergent transactions exported before a snapshot replaces them", "records",
                 log_i64((int64_t)nrec), "files", paths, NULL);
    }
    log_info("replication: receiving a snapshot", "lsn", log_i64((int64_t)tip.lsn), "bytes",
             log_i64((int64_t)sb->total_bytes), NULL);
    repl_set_sync(r, REPL_SYNC_SNAPSHOT, x->common);
    rc = repl_snapshot_rx_begin(&x->rx, path, sb->total_bytes, &tip, sb->schema_version, err, sizeof(err));
    free(path);
    if (rc != 0) {
        log_error("replication: cannot start the snapshot", "error", err, NULL);
        return rc;
    }
    x->in_snapshot = true;
    return 0;
}

static int on_snapshot_end(struct receiver *x)
{
    struct repl *r = x->r;
    struct fixup_job fj;
    char err[256] = "", v[64];
    int64_t t0 = time_mono_us();
    int rc;

    rc = repl_snapshot_rx_end(&x->rx, x->f->u.snap_end.sha256, err, sizeof(err));
    if (rc == 0)
        rc = repl_snapshot_install(r->n->store, x->rx.path, err, sizeof(err));
    fj.tip = x->rx.tip;
    repl_snapshot_rx_abort(&x->rx);
    x->in_snapshot = false;
    if (rc != 0) {
        log_error("replication: snapshot refused; our previous state is kept", "error", err, NULL);
        set_error(r, "snapshot refused: %s", err);
        return rc;
    }
    rc = store_write_flags(r->n->store, fixup_fn, &fj, STORE_JOB_SYSTEM);
    if (rc != 0)
        return rc;
    /* the copy carries the active's cluster id and epoch: adopt them */
    if (read_node_state(x->db, "cluster_id", v, sizeof(v)) == 0)
        repl_set_cluster_id(r, v);
    if (read_node_state(x->db, "epoch", v, sizeof(v)) == 0 && strtoll(v, NULL, 10) > atomic_load(&r->n->epoch))
        atomic_store(&r->n->epoch, strtoll(v, NULL, 10));
    repl_reload_tip(r, x->db);
    keyring_invalidate(r->n->keyring);
    pthread_mutex_lock(&r->mu);
    r->diverged = false;
    r->diverged_reason[0] = '\0';
    pthread_mutex_unlock(&r->mu);
    x->pending_rewind = false;
    x->common = fj.tip.lsn;
    x->mine->last.lsn = fj.tip.lsn;
    repl_set_sync(r, REPL_SYNC_CATCHING_UP, x->common);
    log_info("replication: snapshot installed", "lsn", log_i64((int64_t)fj.tip.lsn), "ms",
             log_i64((time_mono_us() - t0) / 1000), NULL);
    return send_ack(x);
}

/* ------------------------------------------------------------ session */

/* Runs one connection. true when it got as far as streaming (the backoff
 * starts over). */
static bool session(struct receiver *x)
{
    struct repl *r = x->r;
    struct repl_hello *a = x->active;
    char cid[UUID_STRLEN + 1];
    uint64_t their, mine_epoch;
    bool empty, streaming = false;
    int rc;

    x->have_frame = false;
    if (repl_hello_build(r, x->db, REPL_HELLO_F_WANT_STREAM, x->mine) != 0)
        return false;
    empty = x->mine->last.lsn == 0;
    if (empty)
        x->mine->flags |= REPL_HELLO_F_NEED_SNAPSHOT;
    if (repl_send_hello(x->c, x->mine) != 0)
        return false;
    rc = repl_conn_read_frame(x->c, &x->dec, x->f, REPL_HELLO_TIMEOUT_MS);
    if (rc != 1) {
        set_error(r, "no HELLO from %s", r->conf->repl_peer);
        return false;
    }
    if (x->f->type == REPL_FRAME_ERROR) {
        set_error(r, "refused by the peer: %s: %.*s", repl_error_code_name(x->f->u.error.code),
                  (int)x->f->u.error.message.len, x->f->u.error.message.p);
        log_warn("replication: the peer refused us", "code", repl_error_code_name(x->f->u.error.code), "message",
                 log_fmt("%.*s", (int)x->f->u.error.message.len, x->f->u.error.message.p), NULL);
        return false;
    }
    if (x->f->type != REPL_FRAME_HELLO) {
        set_error(r, "expected HELLO from the peer, got %s", repl_frame_type_name(x->f->type));
        return false;
    }
    *a = x->f->u.hello;
    if (repl_conn_is_tls(x->c)) {
        const char *cn = repl_conn_peer_name(x->c);

        if (!cn || strcmp(cn, a->node_name) != 0) {
            set_error(r, "peer certificate CN %s does not match its node name %s", cn ? cn : "", a->node_name);
            log_warn("replication: refused the peer", "reason", r->last_error, NULL);
            return false;
        }
    }
    if (a->schema_version != (uint32_t)store_schema_version_latest()) {
        set_error(r, "the active runs schema version %u, we run %d: not applying (upgrade both nodes)",
                  a->schema_version, store_schema_version_latest());
        log_error("replication: schema version mismatch", "reason", r->last_error, NULL);
        return false;
    }
    if (a->role != REPL_ROLE_ACTIVE) {
        set_error(r, "peer %s is not active", a->node_name);
        /* it may answer with ERROR role_conflict after its HELLO; either way we wait */
        return false;
    }
    their = repl_history_top_epoch(a->history, a->n_history, a->last.epoch);
    mine_epoch = (uint64_t)atomic_load(&r->n->epoch);
    if (their < mine_epoch) {
        set_error(r, "peer %s runs epoch %" PRIu64 ", below ours (%" PRIu64 "): a stale primary", a->node_name, their,
                  mine_epoch);
        log_warn("replication: refused a peer with a lower epoch", "reason", r->last_error, NULL);
        return false;
    }
    repl_cluster_id(r, cid);
    if (!empty && strcmp(cid, a->cluster_id) != 0) {
        set_error(r, "peer %s belongs to cluster %s, we to %s", a->node_name, a->cluster_id, cid);
        log_error("replication: refused a peer of another cluster", "reason", r->last_error, NULL);
        return false;
    }
    if (their > mine_epoch)
        repl_adopt_epoch(r, their);
    pthread_mutex_lock(&r->mu);
    snprintf(r->active_name, sizeof(r->active_name), "%s", a->node_name);
    snprintf(r->active_region, sizeof(r->active_region), "%s", a->region);
    r->active_lsn = a->last.lsn;
    r->last_heartbeat_mono = time_mono_us();
    r->last_error[0] = '\0';
    pthread_mutex_unlock(&r->mu);

    x->common = repl_history_common(x->mine->history, x->mine->n_history, x->mine->last.lsn, a->history,
                                    a->n_history, a->last.lsn);
    x->pending_rewind = !empty && x->common < x->mine->last.lsn;
    /* status: rewinding until our records after common are undone, then
     * catching up until we reach the active's position of now */
    repl_set_sync(r, x->pending_rewind ? REPL_SYNC_REWINDING : REPL_SYNC_CATCHING_UP, x->common);
    if (x->pending_rewind) {
        log_warn("rejoin: this node holds transactions the active does not", "common_lsn",
                 log_i64((int64_t)x->common), "our_lsn", log_i64((int64_t)x->mine->last.lsn), "active_lsn",
                 log_i64((int64_t)a->last.lsn), NULL);
        if (a->last.lsn == x->common) {
            uint8_t h[REPL_HASH_LEN];

            /* nothing will follow to verify with: compare the tips' hashes */
            if (repl_log_hash_at(x->db, x->common, h) == 0 && memcmp(h, a->last_hash, REPL_HASH_LEN) == 0) {
                if (rewind_divergent(x) != 0)
                    return false;
            } else {
                halt(x, "rejoin: no common position with the active (hash mismatch)");
                return false;
            }
        }
    }
    x->last_rx_us = time_mono_us();
    for (;;) {
        bool have_next = false;
        int read_rc = 0;

        if (stop_requested(r))
            break;
        if (x->have_frame) {
            x->have_frame = false;
            rc = 1;
        } else {
            rc = repl_conn_read_frame(x->c, &x->dec, x->f, 500);
        }
        if (rc == -ETIMEDOUT) {
            if (time_mono_us() - x->last_rx_us > REPL_DEAD_MS * 1000) {
                set_error(r, "the active went silent");
                log_warn("replication: the active went silent; reconnecting", NULL);
                break;
            }
            continue;
        }
        if (rc == 0) {
            set_error(r, "the active closed the connection");
            break;
        }
        if (rc < 0) {
            if (rc <= REPL_FRAME_EBADMAGIC && rc >= REPL_FRAME_ETRAILING) {
                char why[200];

                snprintf(why, sizeof(why), "bad frame from the active: %s", repl_frame_strerror(rc));
                halt(x, why);
            } else if (!stop_requested(r)) {
                set_error(r, "connection lost: %s", repl_conn_last_error(x->c));
            }
            break;
        }
        x->last_rx_us = time_mono_us();
        streaming = true;
        switch (x->f->type) {
        case REPL_FRAME_RECORDS:
            rc = on_records(x, &have_next, &read_rc);
            if (rc == 0 && read_rc != 0) {
                /* what came before the bad read is applied; now the read */
                if (read_rc <= REPL_FRAME_EBADMAGIC && read_rc >= REPL_FRAME_ETRAILING) {
                    char why[200];

                    snprintf(why, sizeof(why), "bad frame from the active: %s", repl_frame_strerror(read_rc));
                    halt(x, why);
                } else {
                    set_error(r, "connection lost: %s", repl_conn_last_error(x->c));
                }
                rc = read_rc;
            }
            x->have_frame = have_next;
            break;
        case REPL_FRAME_HEARTBEAT:
            pthread_mutex_lock(&r->mu);
            r->active_lsn = x->f->u.heartbeat.pos.lsn;
            r->last_heartbeat_mono = time_mono_us();
            pthread_mutex_unlock(&r->mu);
            repl_sync_progress(r);
            rc = send_ack(x);
            break;
        case REPL_FRAME_SNAPSHOT_BEGIN:
            rc = on_snapshot_begin(x);
            break;
        case REPL_FRAME_SNAPSHOT_CHUNK: {
            char err[256];

            rc = x->in_snapshot ? repl_snapshot_rx_chunk(&x->rx, x->f->u.snap_chunk.offset, x->f->u.snap_chunk.data.p,
                                                         x->f->u.snap_chunk.data.len, err, sizeof(err))
                                : -EPROTO;
            if (rc != 0)
                log_error("replication: snapshot chunk refused", "error", x->in_snapshot ? err : "no snapshot begun",
                          NULL);
            break;
        }
        case REPL_FRAME_SNAPSHOT_END:
            rc = x->in_snapshot ? on_snapshot_end(x) : -EPROTO;
            break;
        case REPL_FRAME_ERROR:
            set_error(r, "the active stopped the stream: %s: %.*s", repl_error_code_name(x->f->u.error.code),
                      (int)x->f->u.error.message.len, x->f->u.error.message.p);
            log_warn("replication: the active stopped the stream", "reason", r->last_error, NULL);
            if (x->f->u.error.code == REPL_ERR_DIVERGED)
                repl_set_diverged(r, r->last_error);
            rc = -ECONNABORTED;
            break;
        default:
            repl_send_error(x->c, REPL_ERR_PROTOCOL, "unexpected %s frame", repl_frame_type_name(x->f->type));
            rc = -EPROTO;
            break;
        }
        if (rc != 0)
            break;
    }
    if (x->in_snapshot) {
        repl_snapshot_rx_abort(&x->rx);     /* the previous state stays */
        x->in_snapshot = false;
    }
    pthread_mutex_lock(&r->mu);
    r->active_name[0] = '\0';
    r->active_region[0] = '\0';
    pthread_mutex_unlock(&r->mu);
    repl_set_sync(r, REPL_SYNC_DISCONNECTED, 0);
    return streaming;
}

/* Sleeps ms, waking early when asked to stop. */
static void nap(struct repl *r, int64_t ms)
{
    int64_t until = time_mono_us() + ms * 1000;

    while (!stop_requested(r) && time_mono_us() < until)
        time_sleep_us(20000);
}

void *repl_receiver_main(void *arg)
{
    struct repl *r = arg;
    struct receiver x = { .r = r };
    int64_t backoff = REPL_BACKOFF_MIN_MS;
    bool first = true;
    char last_err[256] = "";

    pthread_setname_np(pthread_self(), "refuge-repl-rcv");
    x.f = xmalloc(sizeof(*x.f));
    x.mine = xcalloc(1, sizeof(*x.mine));
    x.active = xcalloc(1, sizeof(*x.active));
    buf_init(&x.out, 1 << 16);
    buf_init(&x.pool, RX_COALESCE_BYTES + REPL_MAX_PAYLOAD_RECORDS);
    x.db = store_reader(r->n->store);
    {
        char *stale = xasprintf("%s/snapshot-in.db", r->data_dir);

        unlink(stale);    /* an interrupted snapshot of a previous life */
        free(stale);
    }
    while (!stop_requested(r) && x.db) {
        char err[256] = "";
        bool diverged;
        int rc;

        pthread_mutex_lock(&r->mu);
        diverged = r->diverged;
        pthread_mutex_unlock(&r->mu);
        if (diverged) {         /* apply halted: wait for an operator */
            nap(r, 200);
            continue;
        }
        rc = repl_conn_connect(r->conf->repl_peer, 2000, r->tls, &x.c, err, sizeof(err));
        if (rc != 0) {
            if (strcmp(err, last_err) != 0)
                log_warn("replication: cannot reach the active", "peer", r->conf->repl_peer, "error", err, NULL);
            snprintf(last_err, sizeof(last_err), "%s", err);
            set_error(r, "cannot reach %s: %s", r->conf->repl_peer, err);
        } else {
            last_err[0] = '\0';
            if (!first) {
                pthread_mutex_lock(&r->mu);
                r->reconnects++;
                pthread_mutex_unlock(&r->mu);
                metric_inc(r->m_reconnects, NULL, 1);
            }
            first = false;
            repl_decoder_init(&x.dec);
            pthread_mutex_lock(&r->mu);
            r->recv_conn = x.c;
            pthread_mutex_unlock(&r->mu);
            if (session(&x))
                backoff = REPL_BACKOFF_MIN_MS;
            pthread_mutex_lock(&r->mu);
            r->recv_conn = NULL;
            pthread_mutex_unlock(&r->mu);
            repl_conn_close(x.c);
            x.c = NULL;
            repl_decoder_free(&x.dec);
            buf_reset(&x.out);
        }
        if (stop_requested(r))
            break;
        /* jitter: between half and all of the backoff */
        nap(r, backoff / 2 + (int64_t)rand_range((uint64_t)backoff / 2 + 1));
        backoff = backoff * 2 > REPL_BACKOFF_MAX_MS ? REPL_BACKOFF_MAX_MS : backoff * 2;
    }
    buf_free(&x.out);
    buf_free(&x.pool);
    free(x.recs);
    free(x.f);
    free(x.mine);
    free(x.active);
    return NULL;
}
