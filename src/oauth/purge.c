/*
 * purge — the background job that keeps token tables bounded: every
 * [store] token_purge_interval_ms it deletes expired refresh tokens, opaque
 * tokens, revoked jtis (a revoked JWT past its exp needs no deny-list
 * entry), authorization codes and SSO sessions, and retired signing keys
 * past retire_after.
 *
 * Each DELETE takes at most PURGE_BATCH rows and is its own write job, so
 * the purge never holds the writer for long: token requests queued behind
 * it wait for one small batch, not for a million-row delete. A table is
 * revisited until a batch comes back short. Only the active node purges: a
 * standby's store is read-only, and the deletions reach it by replication.
 *
 * Shutdown: oauth_purge_stop() wakes the thread, waits for the batch in
 * progress, joins it, and then stops the oauth worker pool (so it must run
 * before the store closes; app.c calls it first).
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/metrics.h"
#include "core/timeutil.h"
#include "identity/keyring.h"
#include "oauth/oauth.h"
#include "oauth/oauth_internal.h"

#define PURGE_BATCH 1000

struct purge_target {
    const char *table;
    const char *sql;          /* $1 = now, $2 = batch size */
};

static const struct purge_target targets[] = {
    { "refresh_tokens", "DELETE FROM refresh_tokens WHERE token_hash IN (SELECT token_hash FROM refresh_tokens"
                        " WHERE expires_at < $1 LIMIT $2)" },
    { "opaque_tokens", "DELETE FROM opaque_tokens WHERE token_hash IN (SELECT token_hash FROM opaque_tokens"
                       " WHERE expires_at < $1 LIMIT $2)" },
    { "revoked_jtis", "DELETE FROM revoked_jtis WHERE jti IN (SELECT jti FROM revoked_jtis"
                      " WHERE expires_at < $1 LIMIT $2)" },
    { "auth_codes", "DELETE FROM auth_codes WHERE code_hash IN (SELECT code_hash FROM auth_codes"
                    " WHERE expires_at < $1 LIMIT $2)" },
    { "sso_sessions", "DELETE FROM sso_sessions WHERE id_hash IN (SELECT id_hash FROM sso_sessions"
                      " WHERE expires_at < $1 LIMIT $2)" },
    { "signing_keys", "DELETE FROM signing_keys WHERE (tenant, kid) IN (SELECT tenant, kid FROM signing_keys"
                      " WHERE status = 'retired' AND retire_after > 0 AND retire_after < $1 LIMIT $2)" },
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_t thread;
    bool running;
    bool stop;
    struct node *n;
} P = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static struct metric *purged_metric;

struct batch {
    const char *sql;
    int64_t now;
    int64_t deleted;
};

static int purge_batch(struct db *db, void *arg)
{
    struct batch *b = arg;
    struct db_stmt *st = db_prepare(db, b->sql);
    if (!st)
        return DB_ERR;
    db_bind_int64(st, 1, b->now);
    db_bind_int64(st, 2, PURGE_BATCH);
    int rc = db_step(st);
    db_done(st);
    if (rc < 0)
        return rc;
    b->deleted = db_changes(db);
    return 0;
}

static bool should_stop(void)
{
    pthread_mutex_lock(&P.lock);
    bool s = P.stop;
    pthread_mutex_unlock(&P.lock);
    return s;
}

/* One pass over every table. Returns the number of rows deleted. */
static int64_t purge_pass(struct node *n)
{
    int64_t now = time_wall_us() / 1000000, total = 0;

    for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
        int64_t table_total = 0;
        for (;;) {
            if (should_stop() || atomic_load(&n->role) != NODE_ACTIVE || !store_writable(n->store))
                return total;
            struct batch b = { targets[i].sql, now, 0 };
            int rc = store_write(n->store, purge_batch, &b);
            if (rc != 0) {
                if (rc != -EROFS)
                    log_warn("purge: batch failed", "table", targets[i].table, "rc", log_i64(rc), NULL);
                break;
            }
            table_total += b.deleted;
            if (b.deleted < PURGE_BATCH)
                break;
        }
        if (table_total > 0) {
            metric_inc(purged_metric, (const char *[]){ targets[i].table }, (double)table_total);
            log_info("purged expired rows", "table", targets[i].table, "rows", log_i64(table_total), NULL);
            if (strcmp(targets[i].table, "signing_keys") == 0)
                keyring_invalidate(n->keyring);
        }
        total += table_total;
    }
    return total;
}

static void *purge_main(void *arg)
{
    struct node *n = arg;
    int64_t interval_ms = n->conf->token_purge_interval_ms > 0 ? n->conf->token_purge_interval_ms : 60000;

    for (;;) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += interval_ms / 1000;
        ts.tv_nsec += (interval_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&P.lock);
        while (!P.stop && pthread_cond_timedwait(&P.cond, &P.lock, &ts) != ETIMEDOUT)
            ;
        bool stop = P.stop;
        pthread_mutex_unlock(&P.lock);
        if (stop)
            break;
        if (atomic_load(&n->role) == NODE_ACTIVE && store_writable(n->store))
            purge_pass(n);
    }
    return NULL;
}

int oauth_purge_start(struct node *n)
{
    int rc = 0;
    oauth_workers_rearm();
    purged_metric = metric_counter("refuge_oauth_purged_rows_total",
                                   "Expired rows deleted by the purge job", "table");
    pthread_mutex_lock(&P.lock);
    if (P.running)
        goto out;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_destroy(&P.cond);
    pthread_cond_init(&P.cond, &ca);
    pthread_condattr_destroy(&ca);
    P.stop = false;
    P.n = n;
    rc = -pthread_create(&P.thread, NULL, purge_main, n);
    P.running = rc == 0;
out:
    pthread_mutex_unlock(&P.lock);
    return rc;
}

void oauth_purge_stop(struct node *n)
{
    (void)n;
    pthread_mutex_lock(&P.lock);
    bool running = P.running;
    P.stop = true;
    pthread_cond_broadcast(&P.cond);
    pthread_mutex_unlock(&P.lock);
    if (running)
        pthread_join(P.thread, NULL);
    pthread_mutex_lock(&P.lock);
    P.running = false;
    pthread_mutex_unlock(&P.lock);
    oauth_workers_stop();
}
