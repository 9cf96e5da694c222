/*
 * repl — the replication manager: capture hooks on the store, the write
 * acknowledgement modes, roles (promote, demote, fencing), the listener,
 * housekeeping (held-write timeouts, log retention, fencing probes) and the
 * counters that node status and metrics read. The two ends of a connection
 * live in sender.c (active) and receiver.c (standby).
 *
 * Acknowledgement modes (DESIGN.md §5.4), decided per group-commit batch on
 * the writer thread:
 *
 *   async         the batch's done callbacks run at local commit. With a
 *                 peer configured, a batch waits before BEGIN (tx_admit)
 *                 while the oldest record the standby has not acknowledged
 *                 is older than max_lag_ms, and fails with -EBUSY (503) if
 *                 that lasts: the RPO stays bounded.
 *   remote_write  before BEGIN the batch waits for a connected standby
 *   remote_apply  (bounded, else -EBUSY without writing anything); after
 *                 COMMIT its completions are held (tx_hold) until the
 *                 standby's ACK covers the batch's lsn, or fail with -EBUSY
 *                 when max_lag_ms passes first. A client is never told "done"
 *                 for a write the standby does not have. The standby applies
 *                 each record durably before it acknowledges, so `written`
 *                 and `applied` are the same position and both modes wait
 *                 for the same ACK (one round trip per batch, not per write).
 *
 * Standalone: a promotion asked with allow_standalone (refugectl failover
 * after losing the active's region) turns gating off: every batch is
 * acknowledged at local commit and the async lag bound is lifted, because
 * the operator accepted that there is no second copy until the old region
 * returns. It ends by itself when a standby has connected and acknowledged
 * the position the sender had caught up to (or the tip when it attached);
 * from the next batch on the configured mode applies again. Demotion ends
 * it too. It survives a restart in the same epoch (repl_state
 * standalone_epoch). A promotion without the flag is strict.
 *
 * Roles: promotion and demotion run under role_mu. Promotion persists
 * epoch + 1 and its epoch_history entry before the store turns writable;
 * demotion makes the store read-only before anything else, then drains:
 * the sender streams until the standby acknowledged the final lsn
 * (drain_standby). Fencing is a
 * demotion caused by meeting a peer with a higher epoch (in its HELLO).
 */
#include "repl/repl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/log.h"
#include "core/rand.h"
#include "core/timeutil.h"
#include "core/xmalloc.h"
#include "identity/keyring.h"
#include "repl/internal.h"
#include "repl/tls.h"

static struct repl *g_repl;           /* the running node's, for repl_status_fill */

struct repl *repl_of(struct node *n)
{
    return n ? n->repl : NULL;
}

bool repl_running(struct repl *r)
{
    return !atomic_load(&r->stopping);
}

static int64_t bound_ms(const struct repl *r)
{
    int64_t b = r->conf->max_lag_ms;

    return b > 0 ? b : 5000;
}

/* ---------------------------------------------------------- small helpers */

void repl_cluster_id(struct repl *r, char out[UUID_STRLEN + 1])
{
    pthread_mutex_lock(&r->mu);
    snprintf(out, UUID_STRLEN + 1, "%s", r->n->cluster_id);
    pthread_mutex_unlock(&r->mu);
}

void repl_set_cluster_id(struct repl *r, const char *id)
{
    pthread_mutex_lock(&r->mu);
    snprintf(r->n->cluster_id, sizeof(r->n->cluster_id), "%s", id);
    pthread_mutex_unlock(&r->mu);
}

static void wake(struct repl *r)
{
    uint64_t one = 1;
    ssize_t w = write(r->wake_fd, &one, sizeof(one));

    (void)w;    /* a full counter already wakes the reader */
}

int repl_hello_build(struct repl *r, struct db *db, uint32_t flags, struct repl_hello *h)
{
    struct repl_tip tip;
    size_t nh = 0;
    int rc;

    memset(h, 0, sizeof(*h));
    repl_cluster_id(r, h->cluster_id);
    snprintf(h->node_name, sizeof(h->node_name), "%s", r->conf->node_name ? r->conf->node_name : "node");
    snprintf(h->region, sizeof(h->region), "%s", r->conf->node_region ? r->conf->node_region : "");
    h->schema_version = (uint32_t)store_schema_version_latest();
    h->role = atomic_load(&r->n->role) == NODE_ACTIVE ? REPL_ROLE_ACTIVE : REPL_ROLE_STANDBY;
    h->flags = flags;
    rc = repl_log_tip(db, &tip);
    if (rc == 0)
        rc = repl_history_load(db, h->history, REPL_HELLO_MAX_HISTORY, &nh);
    if (rc != 0)
        return rc;
    h->last.epoch = tip.epoch;
    h->last.lsn = tip.lsn;
    memcpy(h->last_hash, tip.hash, REPL_HASH_LEN);
    h->n_history = (uint32_t)nh;
    /* A node's epoch can be above its log's (promoted, nothing written yet:
     * the history says so; or a standby that met a higher epoch). The
     * history is the log's; the epoch itself travels in last.epoch only
     * when it has records, so peers use repl_history_top_epoch(). */
    return 0;
}

int repl_send_hello(struct repl_conn *c, const struct repl_hello *h)
{
    struct buf b;
    int rc;

    buf_init(&b, REPL_MAX_PAYLOAD_DEFAULT + 64);
    rc = repl_frame_encode_hello(&b, h);
    if (rc == 0)
        rc = repl_conn_write_buf(c, &b, REPL_IO_TIMEOUT_MS);
    buf_free(&b);
    return rc;
}

int repl_send_error(struct repl_conn *c, uint32_t code, const char *fmt, ...)
{
    char msg[REPL_ERROR_MSG_MAX];
    struct buf b;
    va_list ap;
    int rc;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    buf_init(&b, REPL_ERROR_MSG_MAX + 64);
    rc = repl_frame_encode_error(&b, code, msg, strlen(msg));
    if (rc == 0)
        rc = repl_conn_write_buf(c, &b, 1000);
    buf_free(&b);
    return rc;
}

/* ------------------------------------------------------- ring and tip */

/*
 * Lag and RPO exposure are durations on the active node's clock (DESIGN
 * §5.9), and a wall clock can jump. So a commit time (wall, as stored in
 * repl_log for people) is translated into the monotonic domain the moment
 * this node learns of it; every "how old is it" below is then
 * time_mono_us() - that value, which no wall-clock step can shrink or grow.
 */
static int64_t wall_to_mono(int64_t wall_us)
{
    return time_mono_us() - (time_wall_us() - wall_us);
}

static void ring_put(struct repl *r, uint64_t lsn, int64_t wall_us)
{
    r->ring[lsn % REPL_RING].lsn = lsn;
    r->ring[lsn % REPL_RING].us = wall_to_mono(wall_us);
}

/* (mu) commit time of lsn from the ring, monotonic domain, or 0. */
static int64_t ring_get(struct repl *r, uint64_t lsn)
{
    return r->ring[lsn % REPL_RING].lsn == lsn ? r->ring[lsn % REPL_RING].us : 0;
}

static int64_t commit_us_at(struct db *db, uint64_t lsn)
{
    struct db_stmt *st = db_prepare(db, "SELECT commit_us FROM repl_log WHERE lsn = $1");
    int64_t us = 0;

    if (!st)
        return 0;
    db_bind_int64(st, 1, (int64_t)lsn);
    if (db_step(st) == DB_ROW)
        us = db_col_int64(st, 0);
    db_done(st);
    return us;
}

static int64_t log_bytes(struct db *db)
{
    struct db_stmt *st = db_prepare(db, "SELECT COALESCE(SUM(length(changeset)), 0) FROM repl_log");
    int64_t v = 0;

    if (!st)
        return 0;
    if (db_step(st) == DB_ROW)
        v = db_col_int64(st, 0);
    db_done(st);
    return v;
}

/* (mu held by caller? no: takes it) recomputes the oldest unacknowledged
 * record's commit time, reading the log when the ring has forgotten it. */
static void update_oldest(struct repl *r, struct db *db)
{
    uint64_t want;
    int64_t us;

    pthread_mutex_lock(&r->mu);
    if (r->acked_written >= r->tip_lsn) {
        r->oldest_unacked_us = 0;
        pthread_mutex_unlock(&r->mu);
        return;
    }
    want = r->acked_written + 1;
    us = ring_get(r, want);
    pthread_mutex_unlock(&r->mu);
    if (us == 0 && db && (us = commit_us_at(db, want)) != 0)
        us = wall_to_mono(us);
    pthread_mutex_lock(&r->mu);
    if (r->acked_written + 1 == want && r->acked_written < r->tip_lsn)
        r->oldest_unacked_us = us ? us : time_mono_us();
    pthread_mutex_unlock(&r->mu);
}

void repl_reload_tip(struct repl *r, struct db *db)
{
    struct repl_tip tip;
    int64_t bytes = log_bytes(db);

    if (repl_log_tip(db, &tip) != 0)
        return;
    pthread_mutex_lock(&r->mu);
    r->tip_lsn = tip.lsn;
    r->tip_epoch = tip.epoch;
    r->tip_commit_us = (int64_t)tip.commit_us;
    r->log_bytes = bytes;
    if (tip.lsn)
        ring_put(r, tip.lsn, (int64_t)tip.commit_us);
    pthread_mutex_unlock(&r->mu);
    repl_capture_invalidate(r->cap);
}

/* --------------------------------------------------------------- hooks */

/* Writer thread: a batch with a record committed. */
static void on_record(void *arg, const struct repl_tip *tip, size_t bytes)
{
    struct repl *r = arg;

    pthread_mutex_lock(&r->mu);
    r->tip_lsn = tip->lsn;
    r->tip_epoch = tip->epoch;
    r->tip_commit_us = (int64_t)tip->commit_us;
    r->log_bytes += (int64_t)bytes;
    ring_put(r, tip->lsn, (int64_t)tip->commit_us);
    if (r->oldest_unacked_us == 0 && r->acked_written < tip->lsn)
        r->oldest_unacked_us = wall_to_mono((int64_t)tip->commit_us);
    pthread_mutex_unlock(&r->mu);
    wake(r);
}

static int hook_begin(void *arg, struct db *db)
{
    return repl_capture_tx_begin(((struct repl *)arg)->cap, db);
}

static int hook_precommit(void *arg, struct db *db, size_t njobs)
{
    return repl_capture_tx_precommit(((struct repl *)arg)->cap, db, njobs);
}

static void hook_end(void *arg, int committed)
{
    repl_capture_tx_end(((struct repl *)arg)->cap, committed);
}

static bool gating(struct repl *r)
{
    return atomic_load(&r->armed) && r->has_peer && atomic_load(&r->n->role) == NODE_ACTIVE &&
           !atomic_load(&r->standalone);
}

static void deadline_ts(int64_t mono_deadline_us, struct timespec *ts)
{
    /* the condition variable runs on CLOCK_MONOTONIC (see repl_start) */
    ts->tv_sec = (time_t)(mono_deadline_us / 1000000);
    ts->tv_nsec = (long)(mono_deadline_us % 1000000) * 1000;
}

/* Writer thread, before BEGIN of a batch with user jobs. */
static int hook_admit(void *arg, size_t njobs)
{
    struct repl *r = arg;
    int64_t deadline, max_lag_us = r->conf->max_lag_ms * 1000;
    bool async = r->conf->repl_mode == CONF_MODE_ASYNC;
    struct timespec ts;
    int rc = 0;

    if (!gating(r))
        return 0;
    deadline = time_mono_us() + bound_ms(r) * 1000;
    deadline_ts(deadline, &ts);
    pthread_mutex_lock(&r->mu);
    for (;;) {
        int64_t lag = r->oldest_unacked_us ? time_mono_us() - r->oldest_unacked_us : 0;

        if (atomic_load(&r->stopping)) {
            rc = -ESHUTDOWN;
            break;
        }
        if (atomic_load(&r->n->role) != NODE_ACTIVE || atomic_load(&r->demoting)) {
            rc = -EROFS;
            break;
        }
        if (async ? lag <= max_lag_us : r->peer_connected)
            break;
        if (time_mono_us() >= deadline) {
            if (async)
                snprintf(r->pause_reason, sizeof(r->pause_reason),
                         "standby is %" PRId64 " ms behind; writes paused (max_lag_ms)", lag / 1000);
            else
                snprintf(r->pause_reason, sizeof(r->pause_reason),
                         "no standby connected; %s writes need its acknowledgement",
                         conf_mode_name(r->conf->repl_mode));
            rc = -EBUSY;
            break;
        }
        pthread_cond_timedwait(&r->cv, &r->mu, &ts);
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

/* Writer thread, after COMMIT: hold the batch until the standby has it. */
static bool hook_hold(void *arg, struct store_completion *c)
{
    struct repl *r = arg;
    uint64_t lsn = repl_capture_batch_lsn(r->cap);
    struct repl_waiter *w;

    if (lsn == 0 || r->conf->repl_mode == CONF_MODE_ASYNC)
        return false;
    if (!gating(r)) {
        /* A batch that committed while this node was being demoted: nobody
         * will wait for its acknowledgement any more, and releasing it as a
         * success would acknowledge what no standby confirmed. Unless the
         * standby already has it, it fails (-EROFS: the client retries on
         * the new active, where the rewind will have removed it). */
        bool demoted = atomic_load(&r->armed) && r->has_peer && !atomic_load(&r->standalone) &&
                       atomic_load(&r->n->role) != NODE_ACTIVE;
        if (!demoted)
            return false;
        pthread_mutex_lock(&r->mu);
        bool acked = (r->conf->repl_mode == CONF_MODE_REMOTE_APPLY ? r->acked_applied : r->acked_written) >= lsn;
        pthread_mutex_unlock(&r->mu);
        if (acked)
            return false;
        store_completion_finish(c, -EROFS);
        return true;
    }
    w = xcalloc(1, sizeof(*w));
    w->lsn = lsn;
    w->deadline_us = time_mono_us() + bound_ms(r) * 1000;
    w->c = c;
    pthread_mutex_lock(&r->mu);
    /* the ACK may have come between COMMIT and here (tx_end published the tip) */
    if ((r->conf->repl_mode == CONF_MODE_REMOTE_APPLY ? r->acked_applied : r->acked_written) >= lsn) {
        pthread_mutex_unlock(&r->mu);
        free(w);
        return false;
    }
    if (r->w_tail)
        r->w_tail->next = w;
    else
        r->w_head = w;
    r->w_tail = w;
    r->nwaiters++;
    pthread_mutex_unlock(&r->mu);
    return true;
}

/* Finishes a detached list of waiters. */
static void finish_waiters(struct repl_waiter *w, int err)
{
    while (w) {
        struct repl_waiter *next = w->next;

        store_completion_finish(w->c, err);
        free(w);
        w = next;
    }
}

/* (mu) Detaches the waiters covered by lsn, or all when lsn is UINT64_MAX. */
static struct repl_waiter *take_waiters(struct repl *r, uint64_t lsn)
{
    struct repl_waiter *head = r->w_head, *last = NULL, *w;

    for (w = r->w_head; w && w->lsn <= lsn; w = w->next) {
        last = w;
        r->nwaiters--;
    }
    if (!last)
        return NULL;
    r->w_head = last->next;
    if (!r->w_head)
        r->w_tail = NULL;
    last->next = NULL;
    return head;
}

/* (mu) Detaches the waiters whose deadline passed (they are in deadline order). */
static struct repl_waiter *take_expired(struct repl *r, int64_t now)
{
    struct repl_waiter *head = r->w_head, *last = NULL, *w;

    for (w = r->w_head; w && w->deadline_us <= now; w = w->next) {
        last = w;
        r->nwaiters--;
    }
    if (!last)
        return NULL;
    r->w_head = last->next;
    if (!r->w_head)
        r->w_tail = NULL;
    last->next = NULL;
    return head;
}

/* --------------------------------------------------------------- acks */

/* ----------------------------------------------------------- standalone */

static uint64_t mode_acked(const struct repl *r)
{
    return r->conf->repl_mode == CONF_MODE_REMOTE_APPLY ? r->acked_applied : r->acked_written;
}

/* (mu) Leaves standalone when the standby acknowledged the target. True
 * when it did (the caller logs, outside mu). */
static bool standalone_check(struct repl *r)
{
    if (!atomic_load(&r->standalone) || !r->sender || r->standalone_target == 0 ||
        mode_acked(r) < r->standalone_target)
        return false;
    atomic_store(&r->standalone, false);
    r->standalone_target = 0;
    r->standalone_reason[0] = '\0';
    r->pause_reason[0] = '\0';
    return true;
}

static void standalone_left(struct repl *r)
{
    char peer[REPL_NODE_NAME_MAX + 1];
    uint64_t acked;

    pthread_mutex_lock(&r->mu);
    memcpy(peer, r->peer_name, sizeof(peer));
    acked = mode_acked(r);
    pthread_mutex_unlock(&r->mu);
    log_warn("replication: standalone ended, the standby caught up; writes wait for it again", "peer", peer,
             "acked_lsn", log_i64((int64_t)acked), "mode", conf_mode_name(r->conf->repl_mode), NULL);
}

/* (mu) */
static void standalone_enter(struct repl *r, const char *why)
{
    atomic_store(&r->standalone, true);
    r->standalone_target = 0;
    r->standalone_since_us = time_wall_us();
    r->standalone_warned_us = time_mono_us();
    snprintf(r->standalone_reason, sizeof(r->standalone_reason), "%s", why);
}

void repl_sender_caught_up(struct repl *r, struct repl_session *s, uint64_t sent)
{
    bool left;

    pthread_mutex_lock(&r->mu);
    if (!atomic_load(&r->standalone) || r->sender != s || r->standalone_target != 0) {
        pthread_mutex_unlock(&r->mu);
        return;
    }
    r->standalone_target = sent ? sent : 1;
    left = standalone_check(r);
    pthread_mutex_unlock(&r->mu);
    if (left)
        standalone_left(r);
}

void repl_on_ack(struct repl *r, struct db *db, const struct repl_ack *ack)
{
    struct repl_waiter *done = NULL;
    bool advanced = false, left;
    int64_t us = 0;

    pthread_mutex_lock(&r->mu);
    r->last_ack_mono = time_mono_us();
    if (ack->written.lsn > r->acked_written && ack->written.lsn <= r->tip_lsn) {
        r->acked_written = ack->written.lsn;
        advanced = true;
    }
    if (ack->applied.lsn > r->acked_applied && ack->applied.lsn <= r->tip_lsn) {
        r->acked_applied = ack->applied.lsn;
        pthread_cond_broadcast(&r->cv);
    }
    if (advanced) {
        us = ring_get(r, r->acked_written);
        pthread_cond_broadcast(&r->cv);
    }
    if (r->w_head)
        done = take_waiters(r, mode_acked(r));
    left = standalone_check(r);
    pthread_mutex_unlock(&r->mu);
    if (left)
        standalone_left(r);
    if (advanced) {
        if (us) {
            int64_t lat = time_mono_us() - us;

            pthread_mutex_lock(&r->mu);
            r->last_ack_latency_us = lat;
            pthread_mutex_unlock(&r->mu);
            metric_observe(r->m_ack_latency, NULL, (double)lat / 1e6);
        }
        update_oldest(r, db);
        pthread_mutex_lock(&r->mu);
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
    }
    finish_waiters(done, 0);
}

void repl_sender_attached(struct repl *r, struct repl_session *s, const char *name, uint64_t pos)
{
    struct repl_waiter *done = NULL;
    bool left = false;

    pthread_mutex_lock(&r->mu);
    r->sender = s;
    r->peer_connected = true;
    r->last_ack_mono = time_mono_us();
    snprintf(r->peer_name, sizeof(r->peer_name), "%s", name);
    /* what the standby holds now is acknowledged, whatever we thought: it
     * may have applied records whose ACK was lost with the last connection */
    if (pos <= r->tip_lsn) {
        r->acked_written = pos;
        r->acked_applied = pos;
        done = take_waiters(r, pos);
        /* a standby that holds our tip already ends standalone at once */
        if (pos == r->tip_lsn && atomic_load(&r->standalone)) {
            r->standalone_target = pos ? pos : 1;
            left = standalone_check(r);
        }
    }
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (left)
        standalone_left(r);
    finish_waiters(done, 0);
}

void repl_sender_detached(struct repl *r, struct repl_session *s)
{
    pthread_mutex_lock(&r->mu);
    if (r->sender == s) {
        r->sender = NULL;
        r->peer_connected = false;
        r->standalone_target = 0;
        if (atomic_load(&r->n->role) != NODE_ACTIVE)
            r->drain_lsn = 0;     /* a demotion's drain ends with its sender */
    }
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* ----------------------------------------------------- standby counters */

static void sync_progress_locked(struct repl *r);

void repl_count_applied(struct repl *r, uint64_t n, int64_t bytes, const struct repl_tip *tip)
{
    pthread_mutex_lock(&r->mu);
    r->applied_total += n;
    r->log_bytes += bytes;
    r->tip_lsn = tip->lsn;
    r->tip_epoch = tip->epoch;
    r->tip_commit_us = (int64_t)tip->commit_us;
    ring_put(r, tip->lsn, (int64_t)tip->commit_us);
    sync_progress_locked(r);
    pthread_mutex_unlock(&r->mu);
    metric_inc(r->m_applied, NULL, (double)n);
}

const char *repl_sync_name(enum repl_sync s)
{
    switch (s) {
    case REPL_SYNC_SNAPSHOT: return "snapshot";
    case REPL_SYNC_REWINDING: return "rewinding";
    case REPL_SYNC_CATCHING_UP: return "catching_up";
    case REPL_SYNC_STREAMING: return "streaming";
    case REPL_SYNC_DISCONNECTED: break;
    }
    return "disconnected";
}

/* (mu) */
static void sync_progress_locked(struct repl *r)
{
    if (r->sync == REPL_SYNC_CATCHING_UP && r->tip_lsn >= r->active_lsn) {
        r->sync = REPL_SYNC_STREAMING;
        pthread_cond_broadcast(&r->cv);
    }
}

void repl_set_sync(struct repl *r, enum repl_sync s, uint64_t common)
{
    pthread_mutex_lock(&r->mu);
    r->sync = s;
    if (s != REPL_SYNC_DISCONNECTED)
        r->common_lsn = common;
    sync_progress_locked(r);
    pthread_mutex_unlock(&r->mu);
}

void repl_sync_progress(struct repl *r)
{
    pthread_mutex_lock(&r->mu);
    sync_progress_locked(r);
    pthread_mutex_unlock(&r->mu);
}

void repl_set_diverged(struct repl *r, const char *why)
{
    pthread_mutex_lock(&r->mu);
    r->diverged = true;
    snprintf(r->diverged_reason, sizeof(r->diverged_reason), "%s", why);
    pthread_mutex_unlock(&r->mu);
    log_error("replication diverged: apply halted", "reason", why, NULL);
}

/* ---------------------------------------------------------------- roles */

static void start_receiver(struct repl *r);
static void stop_receiver(struct repl *r);

struct kv {
    const char *k[4];
    const char *v[4];
    size_t n;
};

static int persist_epoch_job(struct db *db, void *arg)
{
    struct kv *kv = arg;

    for (size_t i = 0; i < kv->n; i++) {
        int rc = db_execp(db,
                          "INSERT INTO node_state(key, value) VALUES ($1, $2) "
                          "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                          kv->k[i], kv->v[i], NULL);
        if (rc != 0)
            return rc;
    }
    return 0;
}

void repl_adopt_epoch(struct repl *r, uint64_t epoch)
{
    char e[32];
    struct kv kv = { { "epoch" }, { e }, 1 };

    if ((int64_t)epoch <= atomic_load(&r->n->epoch))
        return;
    snprintf(e, sizeof(e), "%" PRIu64, epoch);
    if (store_write_flags(r->n->store, persist_epoch_job, &kv, STORE_JOB_SYSTEM) == 0) {
        atomic_store(&r->n->epoch, (int64_t)epoch);
        log_info("adopted the active node's epoch", "epoch", e, NULL);
    }
}

/* Stops serving: every accepted connection is shut down. */
static void drop_sessions(struct repl *r)
{
    pthread_mutex_lock(&r->mu);
    for (struct repl_session *s = r->sessions; s; s = s->next)
        repl_conn_shutdown(s->conn);
    pthread_mutex_unlock(&r->mu);
    wake(r);
}

/* (role_mu) The demoted node's sender streams on until the standby has
 * acknowledged final (the demoted node's last lsn) or goes. The demotion
 * waits for that while the standby makes progress: it returns when the
 * standby has everything, is gone, sent no ACK for REPL_DRAIN_STALL_MS
 * (a cut link must not hold the operator's demotion), or the bound
 * (max(max_lag_ms, 5 s)) passes; in the last two cases the sender keeps
 * draining in the background until the standby acknowledged final or the
 * link is declared dead. ACKs release held writes meanwhile. True when the
 * drain is over (the caller may close the sessions). */
static bool drain_standby(struct repl *r, uint64_t final, struct repl_demote_result *res)
{
    int64_t bound = bound_ms(r) > REPL_DEAD_MS ? bound_ms(r) : REPL_DEAD_MS;
    int64_t t0 = time_mono_us(), deadline = t0 + bound * 1000;
    bool had_sender, over;

    pthread_mutex_lock(&r->mu);
    had_sender = r->sender != NULL;
    r->drain_lsn = final ? final : 1;
    pthread_cond_broadcast(&r->cv);
    for (;;) {
        int64_t now = time_mono_us(), wake_at = now + 50000;
        struct timespec ts;

        if (!r->sender || r->acked_applied >= final || atomic_load(&r->stopping) || now >= deadline ||
            now - r->last_ack_mono > REPL_DRAIN_STALL_MS * 1000)
            break;
        deadline_ts(wake_at < deadline ? wake_at : deadline, &ts);
        pthread_cond_timedwait(&r->cv, &r->mu, &ts);
    }
    res->standby_acked_lsn = r->acked_applied;
    res->drained = r->acked_applied >= final;
    over = res->drained || !r->sender || atomic_load(&r->stopping);
    if (over)
        r->drain_lsn = 0;
    pthread_mutex_unlock(&r->mu);
    if (had_sender)
        log_info("demote: drained the standby", "final_lsn", log_i64((int64_t)final), "acked_lsn",
                 log_i64((int64_t)res->standby_acked_lsn), "complete", res->drained ? "true" : "false",
                 "continues", over ? "false" : "true", "ms", log_i64((time_mono_us() - t0) / 1000), NULL);
    return over;
}

/* (role_mu) drain: an operator's demotion, which serves the standby up to
 * the final position first; fencing does not (a higher epoch exists). */
static int demote_locked(struct repl *r, const char *why, bool drain, struct repl_demote_result *res,
                         char *err, size_t errlen)
{
    struct node *n = r->n;
    struct repl_demote_result dummy;
    struct repl_waiter *held;
    bool drained = true;
    int rc;

    if (!res)
        res = &dummy;
    memset(res, 0, sizeof(*res));
    if (atomic_load(&n->role) != NODE_ACTIVE) {
        snprintf(err, errlen, "this node is already a standby");
        return -EALREADY;
    }
    /* writes stop first: nothing may commit in this role from here on. A
     * batch already past tx_admit commits (and is captured: the role is
     * still active); the role job below queues behind it, so when it
     * returns the log's tip is final. */
    store_set_readonly(n->store, true);
    atomic_store(&r->demoting, true);
    pthread_mutex_lock(&r->mu);
    if (drain)
        r->drain_lsn = UINT64_MAX;       /* the sender keeps streaming from now on */
    pthread_cond_broadcast(&r->cv);      /* a batch waiting in tx_admit fails now */
    pthread_mutex_unlock(&r->mu);
    rc = node_state_save(n, NODE_STANDBY, atomic_load(&n->epoch));
    if (rc != 0)
        log_error("demote: cannot persist the role (the store stays read-only)", "rc", log_i64(rc), NULL);
    atomic_store(&n->role, NODE_STANDBY);
    atomic_store(&r->demoting, false);
    pthread_mutex_lock(&r->mu);
    res->final_lsn = r->tip_lsn;
    res->standby_acked_lsn = r->acked_applied;
    res->drained = r->acked_applied >= r->tip_lsn;
    atomic_store(&r->standalone, false);
    r->standalone_target = 0;
    r->standalone_reason[0] = '\0';
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (drain)
        drained = drain_standby(r, res->final_lsn, res);
    pthread_mutex_lock(&r->mu);
    held = take_waiters(r, UINT64_MAX);
    r->peer_connected = false;
    if (!drain)
        r->drain_lsn = 0;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    finish_waiters(held, -EROFS);
    if (drained)
        drop_sessions(r);     /* else the sender ends itself when the drain does */
    log_warn("demoted to standby", "reason", why, "epoch", log_i64(atomic_load(&n->epoch)), "final_lsn",
             log_i64((int64_t)res->final_lsn), "standby_acked_lsn", log_i64((int64_t)res->standby_acked_lsn), NULL);
    start_receiver(r);
    return 0;
}

int repl_demote(struct node *n, struct repl_demote_result *res, char *err, size_t errlen)
{
    struct repl *r = repl_of(n);
    int rc;

    if (!r) {
        snprintf(err, errlen, "replication is not running");
        return -ENOTCONN;
    }
    pthread_mutex_lock(&r->role_mu);
    rc = demote_locked(r, "operator request", true, res, err, errlen);
    pthread_mutex_unlock(&r->role_mu);
    return rc;
}

void repl_fence(struct repl *r, uint64_t peer_epoch, const char *peer)
{
    char err[128], why[200];

    if (atomic_load(&r->n->role) != NODE_ACTIVE || (int64_t)peer_epoch <= atomic_load(&r->n->epoch))
        return;
    snprintf(why, sizeof(why), "peer %s runs epoch %" PRIu64 ", above ours (%" PRId64 "): fenced", peer, peer_epoch,
             atomic_load(&r->n->epoch));
    pthread_mutex_lock(&r->role_mu);
    if (atomic_load(&r->n->role) == NODE_ACTIVE && (int64_t)peer_epoch > atomic_load(&r->n->epoch)) {
        demote_locked(r, why, false, NULL, err, sizeof(err));
        /* the highest epoch seen is ours from now on: never accept its
         * predecessor's records again */
        repl_adopt_epoch(r, peer_epoch);
    }
    pthread_mutex_unlock(&r->role_mu);
}

struct promote_job {
    struct node *n;
    bool standalone;
    uint64_t epoch;
    struct repl_tip tip;
};

static int promote_fn(struct db *db, void *arg)
{
    struct promote_job *j = arg;
    struct repl_epoch_start h[REPL_HELLO_MAX_HISTORY];
    size_t nh = 0;
    uint64_t top;
    char e[32];
    int rc;

    rc = repl_log_tip(db, &j->tip);
    if (rc == 0)
        rc = repl_history_load(db, h, REPL_HELLO_MAX_HISTORY, &nh);
    if (rc != 0)
        return rc;
    top = repl_history_top_epoch(h, nh, j->tip.epoch);
    if ((uint64_t)atomic_load(&j->n->epoch) > top)
        top = (uint64_t)atomic_load(&j->n->epoch);
    j->epoch = top + 1;
    /* the history entry and the epoch are durable before the first write */
    rc = repl_history_add(db, j->epoch, j->tip.lsn + 1);
    if (rc != 0)
        return rc;
    snprintf(e, sizeof(e), "%" PRIu64, j->epoch);
    rc = db_execp(db,
                  "INSERT INTO node_state(key, value) VALUES ('role', 'active'), ('epoch', $1), "
                  "('bootstrapped', '1') ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                  e, NULL);
    if (rc == 0)
        rc = repl_state_set_u64(db, "peer_acked_lsn", j->tip.lsn);
    if (rc == 0)
        rc = repl_state_set_u64(db, "standalone_epoch", j->standalone ? j->epoch : 0);
    return rc;
}

int repl_promote(struct node *n, const struct repl_promote_opts *o, char *err, size_t errlen)
{
    struct repl *r = repl_of(n);
    struct promote_job j = { .n = n };
    const char *reason = o && o->reason && o->reason[0] ? o->reason : "operator request";
    int64_t t0 = time_mono_us();
    int rc;

    if (!r) {
        snprintf(err, errlen, "replication is not running");
        return -ENOTCONN;
    }
    pthread_mutex_lock(&r->role_mu);
    if (atomic_load(&n->role) == NODE_ACTIVE) {
        snprintf(err, errlen, "this node is already active");
        rc = -EALREADY;
        goto out;
    }
    /* 1. stop receiving; the receiver applies what it has before it exits */
    stop_receiver(r);
    j.standalone = o && o->allow_standalone && r->has_peer;
    /* 2. epoch + 1 and its history entry, durable */
    rc = store_write_flags(n->store, promote_fn, &j, STORE_JOB_SYSTEM);
    if (rc != 0) {
        snprintf(err, errlen, "cannot persist the new epoch: %d", rc);
        start_receiver(r);
        goto out;
    }
    atomic_store(&n->epoch, (int64_t)j.epoch);
    repl_reload_tip(r, store_reader(n->store));
    pthread_mutex_lock(&r->mu);
    r->acked_written = r->acked_applied = r->acked_persisted = j.tip.lsn;
    r->oldest_unacked_us = 0;
    r->diverged = false;
    r->diverged_reason[0] = '\0';
    r->active_name[0] = '\0';
    r->active_region[0] = '\0';
    r->pause_reason[0] = '\0';
    r->drain_lsn = 0;             /* a drain still running: that sender now serves a standby of ours */
    if (j.standalone) {
        char why[200];

        snprintf(why, sizeof(why), "promoted (%s) with allow_standalone: no standby has caught up since", reason);
        standalone_enter(r, why);
        r->standalone_persisted = true;
    } else {
        atomic_store(&r->standalone, false);
        r->standalone_reason[0] = '\0';
        r->standalone_persisted = false;
    }
    pthread_mutex_unlock(&r->mu);
    /* 3. active, then writable */
    atomic_store(&n->role, NODE_ACTIVE);
    store_set_readonly(n->store, false);
    log_warn("promoted to active", "epoch", log_i64((int64_t)j.epoch), "start_lsn", log_i64((int64_t)j.tip.lsn + 1),
             "reason", reason, "standalone", j.standalone ? "true" : "false", "ms",
             log_fmt("%.1f", (double)(time_mono_us() - t0) / 1000.0), NULL);
    if (j.standalone)
        log_warn("replication: STANDALONE - writes are acknowledged at local commit with NO second copy until a "
                 "standby connects and catches up (failover accepted the loss of the peer region)",
                 "mode", conf_mode_name(r->conf->repl_mode), "effective_mode", "async", NULL);
    rc = 0;
out:
    pthread_mutex_unlock(&r->role_mu);
    return rc;
}

/* ------------------------------------------------------------ receiver */

/* (role_mu) */
static void start_receiver(struct repl *r)
{
    if (r->recv_started || !r->has_peer || atomic_load(&r->stopping))
        return;
    atomic_store(&r->recv_stop, false);
    if (pthread_create(&r->recv_thr, NULL, repl_receiver_main, r) != 0) {
        log_error("cannot start the replication receiver", NULL);
        return;
    }
    r->recv_started = true;
}

/* (role_mu) */
static void stop_receiver(struct repl *r)
{
    if (!r->recv_started)
        return;
    atomic_store(&r->recv_stop, true);
    pthread_mutex_lock(&r->mu);
    if (r->recv_conn)
        repl_conn_shutdown(r->recv_conn);
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->recv_thr, NULL);
    r->recv_started = false;
}

/* -------------------------------------------------------------- listener */

static void reap_sessions(struct repl *r, bool all)
{
    for (;;) {
        struct repl_session *found = NULL, **pp;

        pthread_mutex_lock(&r->mu);
        for (pp = &r->sessions; *pp; pp = &(*pp)->next) {
            if (all || atomic_load(&(*pp)->done)) {
                found = *pp;
                *pp = found->next;
                break;
            }
        }
        pthread_mutex_unlock(&r->mu);
        if (!found)
            return;
        if (all)
            repl_conn_shutdown(found->conn);
        pthread_join(found->thr, NULL);
        repl_conn_close(found->conn);
        free(found);
    }
}

static void *listen_main(void *arg)
{
    struct repl *r = arg;

    pthread_setname_np(pthread_self(), "refuge-repl-lis");
    while (repl_running(r)) {
        struct repl_conn *c = NULL;
        struct repl_session *s;
        char err[256] = "";
        size_t live = 0;
        int rc = repl_listener_accept(r->lis, 200, &c, err, sizeof(err));

        if (rc == -ETIMEDOUT)
            continue;
        if (rc == -ECONNABORTED) {
            log_warn("replication: refused a connection", "reason", err, NULL);
            continue;
        }
        if (rc != 0) {
            log_error("replication: accept failed", "error", err, NULL);
            time_sleep_us(100000);
            continue;
        }
        pthread_mutex_lock(&r->mu);
        for (s = r->sessions; s; s = s->next)
            live += !atomic_load(&s->done);
        pthread_mutex_unlock(&r->mu);
        if (live >= REPL_MAX_SESSIONS) {
            repl_send_error(c, REPL_ERR_BUSY, "too many replication connections");
            repl_conn_close(c);
            continue;
        }
        s = xcalloc(1, sizeof(*s));
        s->r = r;
        s->conn = c;
        atomic_init(&s->done, false);
        pthread_mutex_lock(&r->mu);
        s->next = r->sessions;
        r->sessions = s;
        pthread_mutex_unlock(&r->mu);
        if (pthread_create(&s->thr, NULL, repl_session_main, s) != 0) {
            pthread_mutex_lock(&r->mu);
            r->sessions = s->next;
            pthread_mutex_unlock(&r->mu);
            repl_conn_close(c);
            free(s);
        }
    }
    return NULL;
}

/* ---------------------------------------------------------- housekeeping */

struct prune_job {
    uint64_t below;          /* delete lsn < below ... */
    int64_t cutoff_us;       /* ... committed before this, */
    int64_t bytes_over;      /* ... or while the log is this much over its byte budget */
    uint64_t persist_acked;  /* > 0: save as peer_acked_lsn */
    size_t deleted;
    int64_t deleted_bytes;
};

static int prune_fn(struct db *db, void *arg)
{
    struct prune_job *j = arg;
    struct db_stmt *st;
    uint64_t last = 0;
    int64_t over = j->bytes_over;
    int rc;

    if (j->persist_acked && (rc = repl_state_set_u64(db, "peer_acked_lsn", j->persist_acked)) != 0)
        return rc;
    if (j->below <= 1)
        return 0;
    st = db_prepare(db, "SELECT lsn, commit_us, length(changeset) FROM repl_log WHERE lsn < $1 ORDER BY lsn LIMIT $2");
    if (!st)
        return DB_ERR;
    db_bind_int64(st, 1, (int64_t)j->below);
    db_bind_int64(st, 2, REPL_PRUNE_BATCH);
    while ((rc = db_step(st)) == DB_ROW) {
        int64_t us = db_col_int64(st, 1), len = db_col_int64(st, 2);

        if (us >= j->cutoff_us && over <= 0)
            break;
        last = (uint64_t)db_col_int64(st, 0);
        over -= len;
        j->deleted++;
        j->deleted_bytes += len;
    }
    db_done(st);
    if (rc < 0)
        return rc;
    if (last) {
        char b[32];

        snprintf(b, sizeof(b), "%" PRIu64, last);
        rc = db_execp(db, "DELETE FROM repl_log WHERE lsn <= $1", b, NULL);
    }
    return rc < 0 ? rc : 0;
}

/* Keeps repl_log to what a standby may still need: every record the
 * standby has not acknowledged (active), every record not known to be on
 * the active (standby: beyond applied_lsn), plus a window of retain_ms and
 * retain_bytes; never the tip. Bounded batches, a few per second. */
static void retention(struct repl *r)
{
    struct db *db = store_reader(r->n->store);
    uint64_t safe, tip, persist = 0;
    int64_t over;

    if (!db)
        return;
    pthread_mutex_lock(&r->mu);
    tip = r->tip_lsn;
    if (atomic_load(&r->n->role) == NODE_ACTIVE) {
        safe = r->has_peer ? r->acked_written : tip;
        if (r->has_peer && r->acked_written > r->acked_persisted) {
            persist = r->acked_written;
            r->acked_persisted = persist;
        }
    } else {
        safe = 0;
    }
    over = r->log_bytes - r->retain_bytes;
    pthread_mutex_unlock(&r->mu);
    if (atomic_load(&r->n->role) != NODE_ACTIVE && repl_state_get_u64(db, "applied_lsn", &safe) != 0)
        safe = 0;
    if (safe > tip)
        safe = tip;
    for (int round = 0; round < 5; round++) {
        struct prune_job j = { .below = safe, .cutoff_us = time_wall_us() - r->retain_ms * 1000,
                               .bytes_over = over, .persist_acked = persist };

        if (j.below <= 1 && !persist)
            return;
        if (store_write_flags(r->n->store, prune_fn, &j, STORE_JOB_SYSTEM) != 0)
            return;
        persist = 0;
        pthread_mutex_lock(&r->mu);
        r->log_bytes -= j.deleted_bytes;
        over = r->log_bytes - r->retain_bytes;
        pthread_mutex_unlock(&r->mu);
        if (j.deleted < REPL_PRUNE_BATCH)
            return;
    }
}

static int clear_standalone_job(struct db *db, void *arg)
{
    (void)arg;
    return repl_state_set_u64(db, "standalone_epoch", 0);
}

/* Standalone bookkeeping, once a second: a reminder in the log every
 * minute while it lasts, and the persisted flag cleared once it ended. */
static void standalone_house(struct repl *r)
{
    bool on = atomic_load(&r->standalone), clear = false, remind = false;
    int64_t since = 0;

    pthread_mutex_lock(&r->mu);
    if (!on && r->standalone_persisted)
        clear = true;
    if (on && time_mono_us() - r->standalone_warned_us >= 60 * 1000000LL) {
        r->standalone_warned_us = time_mono_us();
        since = r->standalone_since_us;
        remind = true;
    }
    pthread_mutex_unlock(&r->mu);
    if (remind)
        log_warn("replication: still STANDALONE - no standby holds a copy of new writes", "since_s",
                 log_i64((time_wall_us() - since) / 1000000), NULL);
    if (clear && store_write_flags(r->n->store, clear_standalone_job, NULL, STORE_JOB_SYSTEM) == 0) {
        pthread_mutex_lock(&r->mu);
        if (!atomic_load(&r->standalone))
            r->standalone_persisted = false;
        pthread_mutex_unlock(&r->mu);
    }
}

static void *house_main(void *arg)
{
    struct repl *r = arg;
    int64_t next_second = time_mono_us() + 1000000, next_probe = time_mono_us() + REPL_PROBE_MS * 1000;

    pthread_setname_np(pthread_self(), "refuge-repl-hk");
    while (repl_running(r)) {
        int64_t now = time_mono_us();
        struct repl_waiter *expired;

        pthread_mutex_lock(&r->mu);
        expired = take_expired(r, now);
        if (expired)
            snprintf(r->pause_reason, sizeof(r->pause_reason),
                     "the standby did not acknowledge within %" PRId64 " ms (%s)", bound_ms(r),
                     conf_mode_name(r->conf->repl_mode));
        pthread_mutex_unlock(&r->mu);
        if (expired) {
            log_warn("replication: writes not acknowledged by the standby in time", "mode",
                     conf_mode_name(r->conf->repl_mode), NULL);
            finish_waiters(expired, -EBUSY);
        }
        if (now >= next_second) {
            next_second = now + 1000000;
            reap_sessions(r, false);
            retention(r);
            standalone_house(r);
            pthread_mutex_lock(&r->mu);
            r->apply_rate = (double)(r->applied_total - r->rate_prev) * 1e6 /
                            (double)(now - (r->rate_at ? r->rate_at : now - 1000000));
            r->rate_prev = r->applied_total;
            r->rate_at = now;
            pthread_mutex_unlock(&r->mu);
        }
        if (r->has_peer && now >= next_probe) {
            bool probe;

            next_probe = now + REPL_PROBE_MS * 1000;
            pthread_mutex_lock(&r->mu);
            probe = atomic_load(&r->n->role) == NODE_ACTIVE && !r->sender;
            pthread_mutex_unlock(&r->mu);
            if (probe)
                repl_probe_peer(r, 1000);
        }
        time_sleep_us(20000);
    }
    return NULL;
}

/* --------------------------------------------------------------- metrics */

static double g_lag_records(void *arg)
{
    struct repl *r = arg;
    double v;

    pthread_mutex_lock(&r->mu);
    if (atomic_load(&r->n->role) == NODE_ACTIVE)
        v = r->has_peer ? (double)(r->tip_lsn - r->acked_written) : 0;
    else
        v = r->active_lsn > r->tip_lsn ? (double)(r->active_lsn - r->tip_lsn) : 0;
    pthread_mutex_unlock(&r->mu);
    return v;
}

static double g_exposure(void *arg)
{
    struct repl *r = arg;
    double v = 0;

    pthread_mutex_lock(&r->mu);
    if (atomic_load(&r->n->role) == NODE_ACTIVE && r->has_peer && r->oldest_unacked_us)
        v = (double)(time_mono_us() - r->oldest_unacked_us) / 1000.0;
    pthread_mutex_unlock(&r->mu);
    return v < 0 ? 0 : v;
}

static double g_connected(void *arg)
{
    struct repl *r = arg;
    double v;

    pthread_mutex_lock(&r->mu);
    v = atomic_load(&r->n->role) == NODE_ACTIVE ? r->peer_connected : r->recv_conn != NULL && r->active_name[0];
    pthread_mutex_unlock(&r->mu);
    return v;
}

static double g_diverged(void *arg)
{
    struct repl *r = arg;
    double v;

    pthread_mutex_lock(&r->mu);
    v = r->diverged;
    pthread_mutex_unlock(&r->mu);
    return v;
}

static double g_lsn(void *arg)
{
    struct repl *r = arg;
    double v;

    pthread_mutex_lock(&r->mu);
    v = (double)r->tip_lsn;
    pthread_mutex_unlock(&r->mu);
    return v;
}

static double g_standalone(void *arg)
{
    return atomic_load(&((struct repl *)arg)->standalone) ? 1 : 0;
}

static void register_metrics(struct repl *r)
{
    static const double lat_bounds[] = { 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 5 };

    metric_gauge_fn("refuge_repl_lag_records", "Records the standby has not acknowledged (active) or not received (standby)",
                    g_lag_records, r);
    metric_gauge_fn("refuge_repl_lag_ms", "Age of the oldest record the standby has not acknowledged, on the active's clock",
                    g_exposure, r);
    metric_gauge_fn("refuge_repl_rpo_exposure_ms", "Writes at risk if this region were lost now: age of the oldest unacknowledged record",
                    g_exposure, r);
    metric_gauge_fn("refuge_repl_connected", "1 while the replication link to the peer is up", g_connected, r);
    metric_gauge_fn("refuge_repl_diverged", "1 when apply halted on a record it could not apply", g_diverged, r);
    metric_gauge_fn("refuge_repl_standalone",
                    "1 while the active acknowledges writes without a standby (promoted with allow_standalone)",
                    g_standalone, r);
    metric_gauge_fn("refuge_repl_lsn", "Last committed (active) or applied (standby) lsn", g_lsn, r);
    r->m_reconnects = metric_counter("refuge_repl_reconnects_total", "Connections the standby made to the active", NULL);
    r->m_applied = metric_counter("refuge_repl_applied_total", "Records applied by this standby", NULL);
    r->m_ack_latency = metric_histogram("refuge_repl_ack_latency_seconds",
                                        "Commit to standby acknowledgement of the newest acknowledged record (active's clock)",
                                        NULL, lat_bounds, sizeof(lat_bounds) / sizeof(lat_bounds[0]));
}

/* ------------------------------------------------------------ start/stop */

static int64_t env_i64(const char *name, int64_t def)
{
    const char *v = getenv(name);

    return v && *v ? strtoll(v, NULL, 10) : def;
}

/* An active node makes sure its current epoch has a history entry before
 * its first write (a node's first start: epoch 1 from lsn 1). */
static int history_job(struct db *db, void *arg)
{
    struct node *n = arg;
    struct repl_epoch_start h[REPL_HELLO_MAX_HISTORY];
    struct repl_tip tip;
    size_t nh = 0;
    int rc = repl_log_tip(db, &tip);

    if (rc == 0)
        rc = repl_history_load(db, h, REPL_HELLO_MAX_HISTORY, &nh);
    if (rc != 0)
        return rc;
    if (nh > 0 && h[nh - 1].epoch >= (uint64_t)atomic_load(&n->epoch))
        return 0;
    return repl_history_add(db, (uint64_t)atomic_load(&n->epoch), tip.lsn + 1);
}

int repl_start(struct node *n, char *err, size_t errlen)
{
    struct repl *r = xcalloc(1, sizeof(*r));
    struct refuge_conf *c = n->conf;
    struct store_hooks h = { 0 };
    pthread_condattr_t ca;
    struct db *db;
    uint64_t acked = 0;
    int rc;

    r->n = n;
    r->conf = c;
    r->has_peer = c->repl_peer != NULL;
    r->data_dir = xstrdup(c->data_dir);
    r->db_path = xasprintf("%s/refuge.db", c->data_dir);
    /* [replication] retain_ms / retain_bytes; the environment overrides them in tests. */
    r->retain_ms = env_i64("REFUGE_REPL_RETAIN_MS", c->retain_ms);
    r->retain_bytes = env_i64("REFUGE_REPL_RETAIN_BYTES", c->retain_bytes);
    r->corrupt_frame = (int)env_i64("REFUGE_TEST_CORRUPT_FRAME", 0);
    r->corrupt_record = (int)env_i64("REFUGE_TEST_CORRUPT_RECORD", 0);
    r->apply_delay_ms = (int)env_i64("REFUGE_TEST_APPLY_DELAY_MS", 0);
    atomic_init(&r->stopping, false);
    atomic_init(&r->armed, false);
    atomic_init(&r->demoting, false);
    atomic_init(&r->recv_stop, false);
    pthread_mutex_init(&r->role_mu, NULL);
    pthread_mutex_init(&r->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    r->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (r->wake_fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        goto fail;
    }
    r->cap = repl_capture_new(n, on_record, r);
    n->repl = r;
    register_metrics(r);

    db = store_reader(n->store);
    if (!db) {
        rc = -EIO;
        snprintf(err, errlen, "cannot read the store");
        goto fail;
    }
    repl_reload_tip(r, db);
    if (repl_state_get_u64(db, "peer_acked_lsn", &acked) != 0)
        acked = 0;
    r->acked_written = r->acked_applied = r->acked_persisted = acked < r->tip_lsn ? acked : r->tip_lsn;
    update_oldest(r, db);
    atomic_init(&r->standalone, false);
    if (repl_state_get_u64(db, "standalone_epoch", &acked) == 0 && acked != 0) {
        r->standalone_persisted = true;
        if (atomic_load(&n->role) == NODE_ACTIVE && r->has_peer && (int64_t)acked == atomic_load(&n->epoch)) {
            standalone_enter(r, "promoted with allow_standalone before a restart: no standby has caught up since");
            log_warn("replication: STANDALONE (resumed at start) - writes are acknowledged at local commit with NO "
                     "second copy until a standby connects and catches up",
                     "epoch", log_i64((int64_t)acked), NULL);
        }
    }

    h.arg = r;
    h.tx_begin = hook_begin;
    h.tx_precommit = hook_precommit;
    h.tx_end = hook_end;
    h.tx_admit = hook_admit;
    h.tx_hold = hook_hold;
    store_set_hooks(n->store, &h);

    if (atomic_load(&n->role) == NODE_ACTIVE) {
        rc = store_write_flags(n->store, history_job, n, STORE_JOB_SYSTEM);
        if (rc != 0) {
            snprintf(err, errlen, "cannot record the epoch history: %d", rc);
            goto fail;
        }
    }

    if (c->repl_listen || c->repl_peer) {
        if (c->insecure_plaintext) {
            log_warn("replication runs WITHOUT TLS (insecure_plaintext = true): anyone on the network can read "
                     "and inject the identity data stream",
                     NULL);
        } else {
            rc = repl_tls_new(c->repl_tls_ca, c->repl_tls_cert, c->repl_tls_key, &r->tls, err, errlen);
            if (rc != 0)
                goto fail;
        }
    }
    if (c->repl_listen) {
        rc = repl_listener_open(c->repl_listen, r->tls, &r->lis, err, errlen);
        if (rc != 0)
            goto fail;
    }
    /* fencing before the first write: an old primary restarting after a
     * failover must not take writes in its stale epoch */
    if (r->has_peer && atomic_load(&n->role) == NODE_ACTIVE)
        repl_probe_peer(r, 1000);

    if (r->lis) {
        if (pthread_create(&r->listen_thr, NULL, listen_main, r) != 0) {
            rc = -EAGAIN;
            snprintf(err, errlen, "cannot start the replication listener thread");
            goto fail;
        }
        r->listen_started = true;
    }
    if (pthread_create(&r->house_thr, NULL, house_main, r) != 0) {
        rc = -EAGAIN;
        snprintf(err, errlen, "cannot start the replication housekeeping thread");
        goto fail;
    }
    r->house_started = true;
    pthread_mutex_lock(&r->role_mu);
    if (atomic_load(&n->role) == NODE_STANDBY)
        start_receiver(r);
    pthread_mutex_unlock(&r->role_mu);
    g_repl = r;
    log_info("replication started", "role", node_role_name(atomic_load(&n->role)), "epoch",
             log_i64(atomic_load(&n->epoch)), "lsn", log_i64((int64_t)r->tip_lsn), "mode",
             conf_mode_name(c->repl_mode), "listen", c->repl_listen, "peer", c->repl_peer, NULL);
    return 0;
fail:
    repl_stop(n);
    return rc;
}

void repl_arm(struct node *n)
{
    struct repl *r = repl_of(n);

    if (r)
        atomic_store(&r->armed, true);
}

void repl_stop(struct node *n)
{
    struct repl *r = repl_of(n);
    struct repl_waiter *held;

    if (!r)
        return;
    atomic_store(&r->stopping, true);
    if (g_repl == r)
        g_repl = NULL;
    pthread_mutex_lock(&r->mu);
    held = take_waiters(r, UINT64_MAX);
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    finish_waiters(held, -ESHUTDOWN);

    pthread_mutex_lock(&r->role_mu);
    stop_receiver(r);
    pthread_mutex_unlock(&r->role_mu);
    if (r->listen_started)
        pthread_join(r->listen_thr, NULL);
    if (r->house_started)
        pthread_join(r->house_thr, NULL);
    reap_sessions(r, true);
    store_set_hooks(n->store, NULL);
    /* a batch may have been held between the sweep above and unhooking */
    pthread_mutex_lock(&r->mu);
    held = take_waiters(r, UINT64_MAX);
    pthread_mutex_unlock(&r->mu);
    finish_waiters(held, -ESHUTDOWN);

    repl_listener_close(r->lis);
    repl_tls_free(r->tls);
    repl_capture_free(r->cap);
    if (r->wake_fd >= 0)
        close(r->wake_fd);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    pthread_mutex_destroy(&r->role_mu);
    free(r->db_path);
    free(r->data_dir);
    n->repl = NULL;
    free(r);
}

/* ----------------------------------------------------------- write errors */

const char *repl_write_error(struct node *n, int rc, char *buf, size_t len)
{
    struct repl *r = repl_of(n);

    if (!r)
        return NULL;
    if (rc == -EBUSY) {
        pthread_mutex_lock(&r->mu);
        snprintf(buf, len, "%s", r->pause_reason[0] ? r->pause_reason : "replication cannot keep up; retry");
        pthread_mutex_unlock(&r->mu);
        return buf;
    }
    if (rc == -EROFS) {
        pthread_mutex_lock(&r->mu);
        if (r->active_name[0] && r->active_region[0])
            snprintf(buf, len, "this node (region %s) is a standby; writes go to the active region %s (node %s)",
                     r->conf->node_region ? r->conf->node_region : "?", r->active_region, r->active_name);
        else if (r->active_name[0])
            snprintf(buf, len, "this node (region %s) is a standby; writes go to the active node %s",
                     r->conf->node_region ? r->conf->node_region : "?", r->active_name);
        else
            snprintf(buf, len, "this node (region %s) is a standby; writes go to the active region",
                     r->conf->node_region ? r->conf->node_region : "?");
        pthread_mutex_unlock(&r->mu);
        return buf;
    }
    return NULL;
}

/* ---------------------------------------------------------------- status */

void repl_status_fill(json_t *obj)
{
    if (g_repl)
        repl_status_fill_node(g_repl->n, obj);
}
