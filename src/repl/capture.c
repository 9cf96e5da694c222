/*
 * capture — one replication record per write transaction of the active node,
 * written to repl_log in that transaction (see capture.h for the hooks).
 *
 * Why a session per batch: the SQLite session extension records the net
 * effect of a transaction on the attached tables, comparing rows with their
 * state when first touched; a job rolled back to its savepoint leaves no
 * trace, and a batch whose jobs changed nothing replicated yields an empty
 * changeset and no record. One record per group-commit batch keeps the
 * standby's applies as grouped as the active's commits.
 */
#define SQLITE_ENABLE_SESSION 1
#define SQLITE_ENABLE_PREUPDATE_HOOK 1
#include "repl/capture.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "core/log.h"
#include "core/timeutil.h"
#include "core/xmalloc.h"

struct repl_capture {
    struct node *node;
    repl_capture_fn on_record;
    void *arg;
    const char **tables;        /* replicated table names (static strings) */
    size_t ntables;

    /* writer thread only */
    sqlite3_session *sess;
    struct repl_tip tip;        /* valid when tip_valid */
    struct repl_tip pending;    /* this batch's record, when has_pending */
    size_t pending_bytes;
    bool has_pending;
    uint64_t batch_lsn;
    atomic_bool tip_valid;

    atomic_uint_fast64_t records;
    atomic_uint_fast64_t bytes;
};

static bool class_replicated(const struct refuge_conf *conf, enum repl_class c)
{
    switch (c) {
    case REPL_CONFIG:
    case REPL_IDENTITY:
        return true;
    case REPL_TOKENS:
        return conf->replicate_tokens;
    case REPL_SESSIONS:
        return conf->replicate_sessions;
    case REPL_LOCAL:
        break;
    }
    return false;
}

struct repl_capture *repl_capture_new(struct node *n, repl_capture_fn on_record, void *arg)
{
    struct repl_capture *c = xcalloc(1, sizeof(*c));
    const struct store_table *t;
    size_t nt;

    c->node = n;
    c->on_record = on_record;
    c->arg = arg;
    t = store_tables(&nt);
    c->tables = xcalloc(nt, sizeof(*c->tables));
    for (size_t i = 0; i < nt; i++)
        if (class_replicated(n->conf, t[i].cls))
            c->tables[c->ntables++] = t[i].name;
    atomic_init(&c->tip_valid, false);
    atomic_init(&c->records, 0);
    atomic_init(&c->bytes, 0);
    return c;
}

void repl_capture_free(struct repl_capture *c)
{
    if (!c)
        return;
    if (c->sess)
        sqlite3session_delete(c->sess);
    free(c->tables);
    free(c);
}

void repl_capture_invalidate(struct repl_capture *c)
{
    atomic_store(&c->tip_valid, false);
}

uint64_t repl_capture_batch_lsn(const struct repl_capture *c)
{
    return c->batch_lsn;
}

void repl_capture_stats(const struct repl_capture *c, struct repl_capture_stats *out)
{
    out->records = atomic_load(&c->records);
    out->bytes = atomic_load(&c->bytes);
}

int repl_capture_tx_begin(void *arg, struct db *db)
{
    struct repl_capture *c = arg;
    sqlite3 *h = db_native(db);
    int rc;

    c->has_pending = false;
    c->batch_lsn = 0;
    if (atomic_load(&c->node->role) != NODE_ACTIVE)
        return 0;
    if (!atomic_load(&c->tip_valid)) {
        rc = repl_log_tip(db, &c->tip);
        if (rc != 0)
            return rc;
        atomic_store(&c->tip_valid, true);
    }
    rc = sqlite3session_create(h, "main", &c->sess);
    if (rc != SQLITE_OK) {
        log_error("capture: cannot create a session", "error", sqlite3_errstr(rc), NULL);
        c->sess = NULL;
        return DB_ERR;
    }
    for (size_t i = 0; i < c->ntables; i++) {
        rc = sqlite3session_attach(c->sess, c->tables[i]);
        if (rc != SQLITE_OK) {
            log_error("capture: cannot attach a table", "table", c->tables[i], "error",
                      sqlite3_errstr(rc), NULL);
            return DB_ERR;
        }
    }
    return 0;
}

int repl_capture_tx_precommit(void *arg, struct db *db, size_t njobs)
{
    struct repl_capture *c = arg;
    struct repl_record r;
    void *cs = NULL;
    int n = 0, rc;

    if (!c->sess)
        return 0;
    rc = sqlite3session_changeset(c->sess, &n, &cs);
    if (rc != SQLITE_OK) {
        log_error("capture: cannot build the changeset", "error", sqlite3_errstr(rc), NULL);
        rc = DB_ERR;
        goto out;
    }
    if (n == 0) {
        rc = 0;
        goto out;
    }
    memset(&r, 0, sizeof(r));
    r.pos.epoch = (uint64_t)atomic_load(&c->node->epoch);
    r.pos.lsn = c->tip.lsn + 1;
    r.commit_us = (uint64_t)time_wall_us();
    r.changeset.p = cs;
    r.changeset.len = (size_t)n;
    if (r.pos.epoch < c->tip.epoch) {
        /* only a bug could get here: the epoch never goes back */
        log_error("capture: node epoch below the log's", "epoch", log_i64((int64_t)r.pos.epoch), "log_epoch",
                  log_i64((int64_t)c->tip.epoch), NULL);
        rc = -ESTALE;
        goto out;
    }
    repl_hash_next(c->tip.hash, r.pos.epoch, r.pos.lsn, r.commit_us, cs, (size_t)n, r.hash);
    if (r.pos.epoch > c->tip.epoch) {
        rc = repl_history_add(db, r.pos.epoch, r.pos.lsn);
        if (rc != 0)
            goto out;
    }
    rc = repl_log_append(db, &r);
    if (rc != 0) {
        log_error("capture: cannot append to repl_log", "error", db_errmsg(db), NULL);
        goto out;
    }
    c->pending.epoch = r.pos.epoch;
    c->pending.lsn = r.pos.lsn;
    c->pending.commit_us = r.commit_us;
    memcpy(c->pending.hash, r.hash, REPL_HASH_LEN);
    c->pending_bytes = (size_t)n;
    c->has_pending = true;
out:
    sqlite3_free(cs);
    return rc;
}

void repl_capture_tx_end(void *arg, int committed)
{
    struct repl_capture *c = arg;

    if (c->sess) {
        sqlite3session_delete(c->sess);
        c->sess = NULL;
    }
    if (committed && c->has_pending) {
        c->tip = c->pending;
        c->batch_lsn = c->pending.lsn;
        atomic_fetch_add(&c->records, 1);
        atomic_fetch_add(&c->bytes, c->pending_bytes);
        if (c->on_record)
            c->on_record(c->arg, &c->tip, c->pending_bytes);
    }
    c->has_pending = false;
}

void repl_capture_hooks(struct repl_capture *c, struct store_hooks *h)
{
    memset(h, 0, sizeof(*h));
    h->arg = c;
    h->tx_begin = repl_capture_tx_begin;
    h->tx_precommit = repl_capture_tx_precommit;
    h->tx_end = repl_capture_tx_end;
}
