/*
 * sender — the active node's end of a replication connection.
 *
 * Life cycle (one thread per accepted connection, started by the listener
 * in repl.c; like PostgreSQL's walsender, it lives exactly as long as its
 * connection):
 *
 *   1. Handshake. The peer speaks first: HELLO within 5 s, or the connection
 *      is dropped. Checked in this order, each failure answered with an
 *      ERROR frame and a log line naming the reason, then close:
 *        - TLS: the certificate's CN must equal the HELLO's node name
 *          (untrusted_peer);
 *        - schema version equal (schema_mismatch, DESIGN §5.8);
 *        - epochs: a peer whose history reaches a higher epoch than ours
 *          fences us (we demote at once; repl_fence) — two nodes never take
 *          writes in the same epoch;
 *        - a peer that says it is active is a fencing probe: answer our
 *          HELLO (it fences itself if ours is higher) and close;
 *        - we must be active (role_conflict otherwise);
 *        - cluster id equal, unless the standby is empty and will adopt
 *          ours with the snapshot (cluster_mismatch);
 *        - one standby at a time (busy).
 *      Then we answer our HELLO.
 *   2. Position. The last common position L of the two histories
 *      (repl_history_common, computed the same way on both ends). A standby
 *      that is empty, asks for a snapshot, or needs records we no longer
 *      retain gets a snapshot (SNAPSHOT_BEGIN, CHUNK..., END) and streams
 *      from its position; otherwise we stream from L + 1. A standby whose
 *      own records go past L rewinds them (receiver.c) before applying ours.
 *   3. Streaming. Records are read from repl_log in lsn order and sent in
 *      RECORDS frames of up to REPL_BATCH_RECORDS records (and at most the
 *      frame size). When caught up the thread sleeps on the capture's
 *      eventfd and the socket, and sends a HEARTBEAT every 100 ms of
 *      silence so the standby knows our position. Every ACK releases the
 *      writes held for it (repl_on_ack).
 *   4. End. The connection ends when the peer closes or errs, nothing was
 *      heard for REPL_DEAD_MS, this node stops being active (fencing; an
 *      operator's demotion only once the drain ended: the standby
 *      acknowledged the demoted node's final lsn, see repl.c), or it shuts
 *      down; in the last cases we send ERROR shutdown first when we can. The
 *      standby reconnects by itself.
 *
 * Test hooks: REFUGE_TEST_CORRUPT_FRAME=N flips a byte of the N-th RECORDS
 * frame after encoding (a bad checksum); REFUGE_TEST_CORRUPT_RECORD=N flips
 * a changeset byte of the N-th RECORDS frame's first record before encoding
 * (a valid frame carrying a chain mismatch).
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/timeutil.h"
#include "core/xmalloc.h"
#include "repl/internal.h"
#include "repl/snapshot.h"

struct sender {
    struct repl *r;
    struct repl_session *s;
    struct repl_conn *c;
    struct db *db;
    struct repl_decoder dec;
    struct repl_frame *f;
    struct buf out;
    uint64_t sent;               /* last lsn sent */
    int64_t last_tx_us, last_rx_us;
    int frames;                  /* RECORDS frames sent */
    char peer[REPL_NODE_NAME_MAX + 1];
};

/* ----------------------------------------------------------- streaming */

static int send_out(struct sender *x)
{
    int rc = repl_conn_write_buf(x->c, &x->out, REPL_IO_TIMEOUT_MS);

    buf_reset(&x->out);
    if (rc == 0)
        x->last_tx_us = time_mono_us();
    return rc;
}

/* Sends the next batch of records after x->sent. 1 when something was sent,
 * 0 when nothing was pending, negative on error. */
static int send_records(struct sender *x)
{
    struct repl_records_writer w;
    struct db_stmt *st;
    uint64_t expect = x->sent + 1, last = x->sent;
    char *copy = NULL;
    int rc, n = 0;

    st = db_prepare(x->db, "SELECT epoch, lsn, commit_us, hash, changeset FROM repl_log WHERE lsn > $1 "
                           "ORDER BY lsn LIMIT $2");
    if (!st)
        return -EIO;
    db_bind_int64(st, 1, (int64_t)x->sent);
    db_bind_int64(st, 2, REPL_BATCH_RECORDS);
    repl_records_begin(&w, &x->out);
    while ((rc = db_step(st)) == DB_ROW) {
        struct repl_record rec = { 0 };

        rec.pos.epoch = (uint64_t)db_col_int64(st, 0);
        rec.pos.lsn = (uint64_t)db_col_int64(st, 1);
        rec.commit_us = (uint64_t)db_col_int64(st, 2);
        if (db_col_bytes(st, 3) == REPL_HASH_LEN)
            memcpy(rec.hash, db_col_blob(st, 3), REPL_HASH_LEN);
        rec.changeset.p = db_col_blob(st, 4);
        rec.changeset.len = db_col_bytes(st, 4);
        if (rec.pos.lsn != expect) {
            log_error("replication: a record the standby needs was pruned", "lsn", log_i64((int64_t)expect),
                      "found", log_i64((int64_t)rec.pos.lsn), NULL);
            rc = -ENOENT;
            break;
        }
        if (n == 0 && x->r->corrupt_record && x->frames + 1 == x->r->corrupt_record && rec.changeset.len) {
            copy = xmalloc(rec.changeset.len);
            memcpy(copy, rec.changeset.p, rec.changeset.len);
            copy[rec.changeset.len - 1] ^= 0x01;
            rec.changeset.p = copy;
            log_warn("test hook: corrupting a record", "lsn", log_i64((int64_t)rec.pos.lsn), NULL);
        }
        rc = repl_records_add(&w, &rec);
        if (rc == -E2BIG)
            break;              /* the frame is full: the rest goes next time */
        if (rc != 0) {
            log_error("replication: record does not fit any frame", "lsn", log_i64((int64_t)rec.pos.lsn), NULL);
            break;
        }
        n++;
        last = rec.pos.lsn;
        expect++;
    }
    db_done(st);
    free(copy);
    if (rc < 0 && rc != -E2BIG) {
        repl_records_abort(&w);
        return rc;
    }
    if (n == 0) {
        repl_records_abort(&w);
        return 0;
    }
    rc = repl_records_end(&w);
    if (rc != 0)
        return rc;
    x->frames++;
    if (x->r->corrupt_frame && x->frames == x->r->corrupt_frame) {
        x->out.data[x->out.len - 1] ^= 0x01;
        log_warn("test hook: corrupting a RECORDS frame", "frame", log_i64(x->frames), NULL);
    }
    rc = send_out(x);
    if (rc != 0)
        return rc;
    x->sent = last;
    return 1;
}

static int send_heartbeat(struct sender *x)
{
    struct repl_heartbeat hb = { 0 };
    struct repl *r = x->r;

    pthread_mutex_lock(&r->mu);
    hb.pos.epoch = r->tip_epoch;
    hb.pos.lsn = r->tip_lsn;
    pthread_mutex_unlock(&r->mu);
    hb.mono_us = (uint64_t)time_mono_us();
    hb.wall_us = (uint64_t)time_wall_us();
    if (repl_frame_encode_heartbeat(&x->out, &hb) != 0)
        return -EIO;
    return send_out(x);
}

static int send_snapshot(struct sender *x, struct repl_tip *pos)
{
    struct repl *r = x->r;
    char *path = xasprintf("%s/snapshot-out.db", r->data_dir);
    struct repl_snapshot_begin sb = { 0 };
    uint8_t sha[32];
    uint64_t size = 0, off = 0;
    char err[256] = "";
    FILE *fp = NULL;
    char *chunk = xmalloc(REPL_SNAPSHOT_CHUNK_MAX);
    int64_t t0 = time_mono_us();
    int rc;

    rc = repl_snapshot_create(r->db_path, path, pos, sha, &size, err, sizeof(err));
    if (rc != 0) {
        log_error("replication: cannot make a snapshot", "error", err, NULL);
        repl_send_error(x->c, REPL_ERR_SNAPSHOT_FAILED, "%s", err);
        goto out;
    }
    sb.pos.epoch = pos->epoch;
    sb.pos.lsn = pos->lsn;
    memcpy(sb.hash, pos->hash, REPL_HASH_LEN);
    sb.total_bytes = size;
    sb.schema_version = (uint32_t)store_schema_version_latest();
    if ((rc = repl_frame_encode_snapshot_begin(&x->out, &sb)) != 0 || (rc = send_out(x)) != 0)
        goto out;
    fp = fopen(path, "rb");
    if (!fp) {
        rc = -errno;
        goto out;
    }
    while (off < size) {
        size_t n = fread(chunk, 1, REPL_SNAPSHOT_CHUNK_MAX, fp);

        if (n == 0) {
            rc = -EIO;
            goto out;
        }
        if ((rc = repl_frame_encode_snapshot_chunk(&x->out, off, chunk, n)) != 0 || (rc = send_out(x)) != 0)
            goto out;
        off += n;
    }
    if ((rc = repl_frame_encode_snapshot_end(&x->out, sha)) != 0 || (rc = send_out(x)) != 0)
        goto out;
    log_info("replication: snapshot sent", "peer", x->peer, "lsn", log_i64((int64_t)pos->lsn), "bytes",
             log_i64((int64_t)size), "ms", log_i64((time_mono_us() - t0) / 1000), NULL);
out:
    if (fp)
        fclose(fp);
    unlink(path);
    free(path);
    free(chunk);
    return rc;
}

/* Reads whatever the standby sent, without waiting. 0, or negative when
 * the connection should end. */
static int drain_input(struct sender *x)
{
    for (;;) {
        int rc = repl_conn_read_frame(x->c, &x->dec, x->f, 0);

        if (rc == -ETIMEDOUT)
            return 0;
        if (rc == 0)
            return -ECONNRESET;       /* the standby closed */
        if (rc < 0)
            return rc;
        x->last_rx_us = time_mono_us();
        switch (x->f->type) {
        case REPL_FRAME_ACK:
            repl_on_ack(x->r, x->db, &x->f->u.ack);
            break;
        case REPL_FRAME_ERROR:
            log_warn("replication: the standby stopped the stream", "peer", x->peer, "code",
                     repl_error_code_name(x->f->u.error.code), "message",
                     log_fmt("%.*s", (int)x->f->u.error.message.len, x->f->u.error.message.p), NULL);
            return -ECONNABORTED;
        default:
            repl_send_error(x->c, REPL_ERR_PROTOCOL, "unexpected %s frame",
                            repl_frame_type_name(x->f->type));
            return -EPROTO;
        }
    }
}

/* A demotion serves the standby up to its final lsn (repl.c drain_standby):
 * true while this sender should go on although the node is no longer
 * active. UINT64_MAX: the final lsn is not known yet. */
static bool draining(struct repl *r, struct repl_session *s)
{
    bool d;

    pthread_mutex_lock(&r->mu);
    d = r->drain_lsn != 0 && r->sender == s && (r->drain_lsn == UINT64_MAX || r->acked_applied < r->drain_lsn);
    pthread_mutex_unlock(&r->mu);
    return d;
}

static void stream(struct sender *x, const struct repl_hello *peer, const struct repl_hello *mine)
{
    struct repl *r = x->r;
    uint64_t common, first = 0;
    bool empty = peer->last.lsn == 0 && peer->n_history == 0;
    bool snapshot;
    int rc;

    common = repl_history_common(peer->history, peer->n_history, peer->last.lsn, mine->history, mine->n_history,
                                 mine->last.lsn);
    repl_log_first(x->db, &first);
    snapshot = (peer->flags & REPL_HELLO_F_NEED_SNAPSHOT) || empty ||
               (common < mine->last.lsn && (first == 0 || common + 1 < first));
    if (!snapshot && common == peer->last.lsn) {
        uint8_t h[REPL_HASH_LEN];

        /* nothing to rewind on the standby: its tip must be ours there */
        if (repl_log_hash_at(x->db, common, h) == 0 && memcmp(h, peer->last_hash, REPL_HASH_LEN) != 0) {
            log_error("replication: the standby's chain differs from ours at the same position", "peer", x->peer,
                      "lsn", log_i64((int64_t)common), NULL);
            repl_send_error(x->c, REPL_ERR_DIVERGED, "chained hash differs at lsn %" PRIu64, common);
            return;
        }
    }
    if (snapshot) {
        struct repl_tip pos;

        log_info("replication: standby needs a snapshot", "peer", x->peer, "standby_lsn",
                 log_i64((int64_t)peer->last.lsn), "common", log_i64((int64_t)common), "first_retained",
                 log_i64((int64_t)first), NULL);
        if (send_snapshot(x, &pos) != 0)
            return;
        x->sent = pos.lsn;
        repl_sender_attached(r, x->s, x->peer, UINT64_MAX);
    } else {
        x->sent = common;
        repl_sender_attached(r, x->s, x->peer, common);
    }
    log_info("replication: streaming to standby", "peer", x->peer, "from_lsn", log_i64((int64_t)x->sent + 1),
             "addr", repl_conn_peer_addr(x->c), NULL);
    x->last_rx_us = time_mono_us();
    for (;;) {
        struct pollfd pf[2];
        uint64_t tip, counter;
        int64_t now, idle;
        int timeout;
        ssize_t rd;

        if (!repl_running(r) || (atomic_load(&r->n->role) != NODE_ACTIVE && !draining(r, x->s))) {
            repl_send_error(x->c, REPL_ERR_SHUTDOWN, "%s",
                            repl_running(r) ? "this node is no longer active" : "shutting down");
            break;
        }
        pthread_mutex_lock(&r->mu);
        tip = r->tip_lsn;
        pthread_mutex_unlock(&r->mu);
        if (tip > x->sent) {
            rc = send_records(x);
            if (rc < 0) {
                if (rc == -ENOENT)
                    repl_send_error(x->c, REPL_ERR_INTERNAL, "records after lsn %" PRIu64 " were pruned", x->sent);
                break;
            }
        }
        if ((rc = drain_input(x)) != 0)
            break;
        now = time_mono_us();
        if (now - x->last_rx_us > REPL_DEAD_MS * 1000) {
            log_warn("replication: standby silent, dropping the connection", "peer", x->peer, NULL);
            break;
        }
        idle = (now - x->last_tx_us) / 1000;
        if (idle >= REPL_HEARTBEAT_MS) {
            if (send_heartbeat(x) != 0)
                break;
            idle = 0;
        }
        pthread_mutex_lock(&r->mu);
        tip = r->tip_lsn;
        pthread_mutex_unlock(&r->mu);
        if (tip > x->sent)
            continue;
        if (atomic_load(&r->standalone))
            repl_sender_caught_up(r, x->s, x->sent);
        timeout = (int)(REPL_HEARTBEAT_MS - idle);
        pf[0] = (struct pollfd){ .fd = x->c->fd, .events = POLLIN };
        pf[1] = (struct pollfd){ .fd = r->wake_fd, .events = POLLIN };
        if (poll(pf, 2, timeout < 1 ? 1 : timeout) > 0 && (pf[1].revents & POLLIN))
            rd = read(r->wake_fd, &counter, sizeof(counter)), (void)rd;
    }
}

/* ---------------------------------------------------------- handshake */

static bool hello_peer_empty(const struct repl_hello *h)
{
    return h->last.lsn == 0 && h->n_history == 0;
}

void *repl_session_main(void *arg)
{
    struct repl_session *s = arg;
    struct repl *r = s->r;
    struct sender x = { .r = r, .s = s, .c = s->conn };
    struct repl_hello *peer = xcalloc(1, sizeof(*peer)), *mine = xcalloc(1, sizeof(*mine));
    char cid[UUID_STRLEN + 1];
    uint64_t peer_epoch, my_epoch;
    bool reserved = false;
    int rc;

    pthread_setname_np(pthread_self(), "refuge-repl-snd");
    x.f = xmalloc(sizeof(*x.f));
    repl_decoder_init(&x.dec);
    buf_init(&x.out, REPL_FRAME_MAX + 4096);
    x.db = store_reader(r->n->store);
    if (!x.db)
        goto out;

    rc = repl_conn_read_frame(x.c, &x.dec, x.f, REPL_HELLO_TIMEOUT_MS);
    if (rc != 1) {
        log_warn("replication: no HELLO from the peer", "addr", repl_conn_peer_addr(x.c), "error",
                 rc == 0 ? "closed" : rc < -1000 ? repl_frame_strerror(rc) : strerror(-rc), NULL);
        goto out;
    }
    if (x.f->type != REPL_FRAME_HELLO) {
        repl_send_error(x.c, REPL_ERR_PROTOCOL, "expected HELLO, got %s", repl_frame_type_name(x.f->type));
        goto out;
    }
    *peer = x.f->u.hello;
    snprintf(x.peer, sizeof(x.peer), "%s", peer->node_name);
    if (repl_conn_is_tls(x.c)) {
        const char *cn = repl_conn_peer_name(x.c);

        if (!cn || strcmp(cn, peer->node_name) != 0) {
            log_warn("replication: refused a peer whose certificate names another node", "hello_name",
                     peer->node_name, "certificate", cn ? cn : "", NULL);
            repl_send_error(x.c, REPL_ERR_UNTRUSTED_PEER, "certificate CN %s does not match node name %s",
                            cn ? cn : "", peer->node_name);
            goto out;
        }
    }
    if (peer->schema_version != (uint32_t)store_schema_version_latest()) {
        log_warn("replication: refused a peer with another schema version", "peer", x.peer, "theirs",
                 log_i64(peer->schema_version), "ours", log_i64(store_schema_version_latest()), NULL);
        repl_send_error(x.c, REPL_ERR_SCHEMA_MISMATCH, "schema version %u, ours %d", peer->schema_version,
                        store_schema_version_latest());
        goto out;
    }
    if (repl_hello_build(r, x.db, 0, mine) != 0)
        goto out;
    peer_epoch = repl_history_top_epoch(peer->history, peer->n_history, peer->last.epoch);
    my_epoch = (uint64_t)atomic_load(&r->n->epoch);

    if (peer->role == REPL_ROLE_ACTIVE) {
        /* a fencing probe from an active peer */
        repl_send_hello(x.c, mine);
        if (atomic_load(&r->n->role) == NODE_ACTIVE) {
            if (peer_epoch > my_epoch)
                repl_fence(r, peer_epoch, x.peer);
            else if (peer_epoch < my_epoch)
                repl_send_error(x.c, REPL_ERR_STALE_EPOCH, "epoch %" PRIu64 " is below ours (%" PRIu64 ")",
                                peer_epoch, my_epoch);
            else
                log_error("replication: another active node in our epoch", "peer", x.peer, "epoch",
                          log_i64((int64_t)my_epoch), NULL);
        }
        goto out;
    }
    if (peer_epoch > my_epoch && atomic_load(&r->n->role) == NODE_ACTIVE) {
        repl_send_hello(x.c, mine);
        repl_fence(r, peer_epoch, x.peer);
        goto out;
    }
    if (atomic_load(&r->n->role) != NODE_ACTIVE) {
        repl_send_hello(x.c, mine);
        repl_send_error(x.c, REPL_ERR_ROLE_CONFLICT, "%s is a standby too", mine->node_name);
        goto out;
    }
    repl_cluster_id(r, cid);
    if (!hello_peer_empty(peer) && !(peer->flags & REPL_HELLO_F_NEED_SNAPSHOT) &&
        strcmp(cid, peer->cluster_id) != 0) {
        log_warn("replication: refused a standby of another cluster", "peer", x.peer, "theirs", peer->cluster_id,
                 "ours", cid, NULL);
        repl_send_error(x.c, REPL_ERR_CLUSTER_MISMATCH, "cluster %s, ours %s", peer->cluster_id, cid);
        goto out;
    }
    pthread_mutex_lock(&r->mu);
    if (!r->sender) {
        r->sender = s;
        reserved = true;
    }
    pthread_mutex_unlock(&r->mu);
    if (!reserved) {
        repl_send_error(x.c, REPL_ERR_BUSY, "another standby is attached");
        goto out;
    }
    if (repl_send_hello(x.c, mine) != 0)
        goto out;
    stream(&x, peer, mine);
out:
    if (reserved)
        repl_sender_detached(r, s);
    repl_decoder_free(&x.dec);
    buf_free(&x.out);
    free(x.f);
    free(peer);
    free(mine);
    atomic_store(&s->done, true);
    return NULL;
}

/* ------------------------------------------------------------- probe */

void repl_probe_peer(struct repl *r, int timeout_ms)
{
    struct repl_conn *c = NULL;
    struct repl_hello *mine = xcalloc(1, sizeof(*mine));
    struct repl_frame *f = xmalloc(sizeof(*f));
    struct repl_decoder dec;
    struct db *db = store_reader(r->n->store);
    char err[256] = "";
    int rc;

    repl_decoder_init(&dec);
    if (!db || repl_hello_build(r, db, 0, mine) != 0)
        goto out;
    rc = repl_conn_connect(r->conf->repl_peer, timeout_ms, r->tls, &c, err, sizeof(err));
    if (rc != 0) {
        log_debug("replication probe: peer unreachable", "peer", r->conf->repl_peer, "error", err, NULL);
        goto out;
    }
    if (repl_send_hello(c, mine) != 0)
        goto out;
    rc = repl_conn_read_frame(c, &dec, f, timeout_ms > 0 ? timeout_ms * 2 : 2000);
    if (rc == 1 && f->type == REPL_FRAME_HELLO) {
        uint64_t e = repl_history_top_epoch(f->u.hello.history, f->u.hello.n_history, f->u.hello.last.epoch);

        if (e > (uint64_t)atomic_load(&r->n->epoch))
            repl_fence(r, e, f->u.hello.node_name);
    }
out:
    repl_conn_close(c);
    repl_decoder_free(&dec);
    free(f);
    free(mine);
}
