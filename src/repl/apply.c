/*
 * apply — checks and applies received records on the standby, exactly once
 * (see apply.h for the steps). Nothing here skips a record or resolves a
 * conflict: a record either applies completely, with its log row, or not at
 * all and apply halts.
 */
#define SQLITE_ENABLE_SESSION 1
#define SQLITE_ENABLE_PREUPDATE_HOOK 1
#include "repl/apply.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include "core/log.h"
#include "store/store.h"

const char *repl_apply_strerror(int err)
{
    switch (err) {
    case REPL_APPLY_EGAP:
        return "gap in the log";
    case REPL_APPLY_EEPOCH:
        return "record from a lower epoch";
    case REPL_APPLY_ECHAIN:
        return "chained hash mismatch";
    case REPL_APPLY_ESCHEMA:
        return "changeset does not match the schema";
    case REPL_APPLY_ECONFLICT:
        return "apply conflict";
    case REPL_APPLY_ECORRUPT:
        return "corrupt changeset";
    default:
        return "storage error";
    }
}

/* ------------------------------------------------------- changeset check */

#define MAX_TABLES 32
#define MAX_COLS 64

static const struct store_table *table_info(const char *name)
{
    size_t n;
    const struct store_table *t = store_tables(&n);

    for (size_t i = 0; i < n; i++)
        if (strcmp(t[i].name, name) == 0)
            return &t[i];
    return NULL;
}

/* A local table's columns in declaration order: 0, or the column's 1-based
 * position in the primary key (as a changeset's table header has them). */
static int local_columns(struct db *db, const char *table, unsigned char pk[MAX_COLS], int *ncol)
{
    struct db_stmt *st = db_prepare(db, "SELECT pk FROM pragma_table_info($1) ORDER BY cid");
    int rc;

    *ncol = 0;
    if (!st)
        return DB_ERR;
    db_bind_text(st, 1, table, -1);
    while ((rc = db_step(st)) == DB_ROW) {
        if (*ncol == MAX_COLS) {
            rc = -E2BIG;
            break;
        }
        pk[(*ncol)++] = (unsigned char)db_col_int64(st, 0);   /* as the changeset: key position */
    }
    db_done(st);
    return rc < 0 ? rc : 0;
}

/* Every node runs the schema of its own binary (DESIGN.md §5.8), so a
 * table's columns are read once per process and kept. */
#define MAX_REGISTRY 64
static struct {
    bool loaded;
    int ncol;
    unsigned char pk[MAX_COLS];
} colcache[MAX_REGISTRY];
static pthread_mutex_t colcache_mu = PTHREAD_MUTEX_INITIALIZER;

static int table_columns(struct db *db, const struct store_table *t, unsigned char pk[MAX_COLS], int *ncol)
{
    size_t n, i;
    const struct store_table *all = store_tables(&n);
    int rc = 0;

    i = (size_t)(t - all);
    if (i >= MAX_REGISTRY)
        return local_columns(db, t->name, pk, ncol);
    pthread_mutex_lock(&colcache_mu);
    if (!colcache[i].loaded) {
        rc = local_columns(db, t->name, colcache[i].pk, &colcache[i].ncol);
        colcache[i].loaded = rc == 0 && colcache[i].ncol > 0;
    }
    *ncol = colcache[i].ncol;
    memcpy(pk, colcache[i].pk, sizeof(colcache[i].pk));
    pthread_mutex_unlock(&colcache_mu);
    return rc;
}

/*
 * The changeset format (SQLite sessions), walked strictly before SQLite sees
 * the bytes: SQLite's own iterator trusts its input (a malformed table header
 * can make sqlite3changeset_next loop forever), and these bytes come from
 * another machine.
 *
 *   table header   'T' (0x54), varint nCol, nCol bytes: 0, or the column's
 *                  1-based position in the primary key,
 *                  table name, NUL-terminated
 *   change         op: SQLITE_INSERT 18 | SQLITE_DELETE 9 | SQLITE_UPDATE 23,
 *                  indirect (0|1), then records:
 *                  INSERT new, DELETE old, UPDATE old + new
 *   record         nCol values, each a type byte and its data:
 *                  0 undefined (UPDATE only, never a key column of the old
 *                  record), 1 integer (8 bytes BE),
 *                  2 real (8 bytes), 3 text (varint n, n bytes),
 *                  4 blob (varint n, n bytes), 5 NULL
 *
 * Varints are SQLite's: big-endian base 128, 1..9 bytes, the 9th whole.
 */
static bool get_varint(const uint8_t *p, size_t n, size_t *at, uint64_t *out)
{
    uint64_t v = 0;

    for (int i = 0; i < 9; i++) {
        uint8_t b;

        if (*at >= n)
            return false;
        b = p[(*at)++];
        if (i == 8) {
            *out = (v << 8) | b;
            return true;
        }
        v = (v << 7) | (b & 0x7f);
        if (!(b & 0x80)) {
            *out = v;
            return true;
        }
    }
    return false;
}

/* pk: the table's key flags, or NULL when key columns may be undefined */
static bool skip_record(const uint8_t *p, size_t n, size_t *at, uint64_t ncol, bool undefined_ok,
                        const uint8_t *pk)
{
    for (uint64_t c = 0; c < ncol; c++) {
        uint64_t len;

        if (*at >= n)
            return false;
        switch (p[(*at)++]) {
        case 0:
            if (!undefined_ok || (pk && pk[c]))
                return false;
            break;
        case 1:
        case 2:
            if (n - *at < 8)
                return false;
            *at += 8;
            break;
        case 3:
        case 4:
            if (!get_varint(p, n, at, &len) || len > n - *at)
                return false;
            *at += (size_t)len;
            break;
        case 5:
            break;
        default:
            return false;
        }
    }
    return true;
}

int repl_changeset_wellformed(const void *cs, size_t n, char *why, size_t whylen)
{
    const uint8_t *p = cs;
    const uint8_t *pk = NULL;
    size_t at = 0;
    uint64_t ncol = 0;

    while (at < n) {
        uint8_t op = p[at++];

        if (op == 'T') {
            size_t name;

            if (!get_varint(p, n, &at, &ncol) || ncol == 0 || ncol > MAX_COLS || ncol > n - at)
                goto bad;
            pk = p + at;
            for (uint64_t c = 0; c < ncol; c++)    /* 0, or the position in the key */
                if (p[at++] > ncol)
                    goto bad;
            name = at;
            while (at < n && p[at] != '\0')
                at++;
            if (at == n || at == name)
                goto bad;
            at++;
            continue;
        }
        if (ncol == 0 || at >= n || p[at] > 1)   /* a change before any table header */
            goto bad;
        at++;
        switch (op) {
        case SQLITE_INSERT:
        case SQLITE_DELETE:
            if (!skip_record(p, n, &at, ncol, false, NULL))
                goto bad;
            break;
        case SQLITE_UPDATE:
            /* the old record names the row: its key columns are defined */
            if (!skip_record(p, n, &at, ncol, true, pk) || !skip_record(p, n, &at, ncol, true, NULL))
                goto bad;
            break;
        default:
            goto bad;
        }
    }
    return 0;
bad:
    snprintf(why, whylen, "malformed changeset (byte %zu of %zu)", at, n);
    return REPL_APPLY_ECORRUPT;
}

int repl_changeset_check(struct db *db, const void *cs, size_t len, bool *config, char *why,
                         size_t whylen)
{
    sqlite3_changeset_iter *it = NULL;
    const char *seen[MAX_TABLES];
    size_t nseen = 0;
    int rc;

    *config = false;
    if (len > INT32_MAX) {
        snprintf(why, whylen, "changeset too large");
        return REPL_APPLY_ECORRUPT;
    }
    rc = repl_changeset_wellformed(cs, len, why, whylen);
    if (rc != 0)
        return rc;
    rc = sqlite3changeset_start(&it, (int)len, (void *)cs);
    if (rc != SQLITE_OK) {
        snprintf(why, whylen, "changeset: %s", sqlite3_errstr(rc));
        return REPL_APPLY_ECORRUPT;
    }
    while ((rc = sqlite3changeset_next(it)) == SQLITE_ROW) {
        const char *table;
        int ncol, op, indirect, nlocal = 0, npk = 0;
        unsigned char *pk, lpk[MAX_COLS];
        const struct store_table *t;
        bool known = false;

        if (sqlite3changeset_op(it, &table, &ncol, &op, &indirect) != SQLITE_OK ||
            sqlite3changeset_pk(it, &pk, &npk) != SQLITE_OK) {
            snprintf(why, whylen, "changeset: cannot read a change");
            rc = REPL_APPLY_ECORRUPT;
            goto out;
        }
        for (size_t i = 0; i < nseen; i++)
            if (strcmp(seen[i], table) == 0)
                known = true;
        if (known)
            continue;
        t = table_info(table);
        if (!t || t->cls == REPL_LOCAL) {
            snprintf(why, whylen, "changeset names %s table %.64s", t ? "the local" : "an unknown", table);
            rc = REPL_APPLY_ESCHEMA;
            goto out;
        }
        rc = table_columns(db, t, lpk, &nlocal);
        if (rc != 0)
            goto out;
        if (nlocal != ncol || memcmp(lpk, pk, (size_t)ncol) != 0) {
            snprintf(why, whylen, "table %s: changeset has %d columns, this schema %d (or the primary key differs)",
                     table, ncol, nlocal);
            rc = REPL_APPLY_ESCHEMA;
            goto out;
        }
        if (t->cls == REPL_CONFIG)
            *config = true;
        if (nseen < MAX_TABLES)
            seen[nseen++] = t->name;   /* static string: outlives the iterator */
    }
    if (rc != SQLITE_DONE) {
        snprintf(why, whylen, "changeset: %s", sqlite3_errstr(rc));
        rc = REPL_APPLY_ECORRUPT;
        goto out;
    }
    rc = 0;
out:
    sqlite3changeset_finalize(it);
    return rc;
}

/* ----------------------------------------------------------------- apply */

struct conflict_ctx {
    int type;               /* SQLITE_CHANGESET_* of the first conflict, 0 none */
    char table[64];
};

static const char *conflict_name(int type)
{
    switch (type) {
    case SQLITE_CHANGESET_DATA:
        return "row differs from the changeset's old values";
    case SQLITE_CHANGESET_NOTFOUND:
        return "row not found";
    case SQLITE_CHANGESET_CONFLICT:
        return "row already exists";
    case SQLITE_CHANGESET_CONSTRAINT:
        return "constraint violation";
    case SQLITE_CHANGESET_FOREIGN_KEY:
        return "foreign key violation";
    default:
        return "conflict";
    }
}

/* Never skip, never replace: the first conflict aborts the record. */
static int on_conflict(void *arg, int type, sqlite3_changeset_iter *it)
{
    struct conflict_ctx *cc = arg;

    if (cc->type == 0) {
        const char *table = "?";
        int ncol, op, indirect;

        cc->type = type;
        if (type != SQLITE_CHANGESET_FOREIGN_KEY &&
            sqlite3changeset_op(it, &table, &ncol, &op, &indirect) != SQLITE_OK)
            table = "?";
        snprintf(cc->table, sizeof(cc->table), "%s", table);
    }
    return SQLITE_CHANGESET_ABORT;
}

int repl_changeset_apply(struct db *db, const void *cs, size_t len, char *why, size_t whylen)
{
    struct conflict_ctx cc = { 0 };
    int rc = sqlite3changeset_apply_v2(db_native(db), (int)len, (void *)cs, NULL, on_conflict, &cc, NULL, NULL, 0);

    if (rc == SQLITE_OK)
        return 0;
    if (cc.type != 0 || rc == SQLITE_ABORT) {
        snprintf(why, whylen, "table %s: %s", cc.table, conflict_name(cc.type));
        return REPL_APPLY_ECONFLICT;
    }
    snprintf(why, whylen, "%s", sqlite3_errstr(rc));
    return DB_ERR;
}

static int sql(struct db *db, const char *q)
{
    return db_exec(db, q);
}

/* One record under its own savepoint. */
static int apply_one(struct db *db, struct repl_tip *tip, const struct repl_record *r,
                     struct repl_apply_result *res)
{
    uint8_t h[REPL_HASH_LEN];
    char why[200];
    bool config = false;
    int rc;

    if (r->pos.lsn != tip->lsn + 1) {
        snprintf(res->why, sizeof(res->why), "record lsn %" PRIu64 " after tip %" PRIu64, r->pos.lsn, tip->lsn);
        return REPL_APPLY_EGAP;
    }
    if (r->pos.epoch < tip->epoch) {
        snprintf(res->why, sizeof(res->why), "record epoch %" PRIu64 " below tip epoch %" PRIu64, r->pos.epoch,
                 tip->epoch);
        return REPL_APPLY_EEPOCH;
    }
    repl_hash_next(tip->hash, r->pos.epoch, r->pos.lsn, r->commit_us, r->changeset.p, r->changeset.len, h);
    if (memcmp(h, r->hash, REPL_HASH_LEN) != 0) {
        snprintf(res->why, sizeof(res->why), "chained hash mismatch at lsn %" PRIu64, r->pos.lsn);
        return REPL_APPLY_ECHAIN;
    }
    rc = repl_changeset_check(db, r->changeset.p, r->changeset.len, &config, res->why, sizeof(res->why));
    if (rc != 0)
        return rc;

    rc = sql(db, "SAVEPOINT rec");
    if (rc != 0)
        return rc;
    rc = repl_changeset_apply(db, r->changeset.p, r->changeset.len, why, sizeof(why));
    if (rc != 0) {
        snprintf(res->why, sizeof(res->why), "lsn %" PRIu64 ": %s", r->pos.lsn, why);
        goto undo;
    }
    if (r->pos.epoch > tip->epoch && (rc = repl_history_add(db, r->pos.epoch, r->pos.lsn)) != 0)
        goto undo;
    if ((rc = repl_log_append(db, r)) != 0)
        goto undo;
    rc = sql(db, "RELEASE rec");
    if (rc != 0)
        goto undo;
    tip->epoch = r->pos.epoch;
    tip->lsn = r->pos.lsn;
    tip->commit_us = r->commit_us;
    memcpy(tip->hash, r->hash, REPL_HASH_LEN);
    res->config_changed |= config;
    return 0;
undo:
    if (res->why[0] == '\0')
        snprintf(res->why, sizeof(res->why), "lsn %" PRIu64 ": %s", r->pos.lsn, db_errmsg(db));
    sql(db, "ROLLBACK TO rec");
    sql(db, "RELEASE rec");
    return rc;
}

static int save_state(struct db *db, const struct repl_tip *tip)
{
    char hex[2 * REPL_HASH_LEN + 1];
    int rc = repl_state_set_u64(db, "applied_epoch", tip->epoch);

    if (rc == 0)
        rc = repl_state_set_u64(db, "applied_lsn", tip->lsn);
    if (rc == 0)
        rc = repl_state_set(db, "applied_hash", repl_hash_hex(tip->hash, hex));
    return rc;
}

int repl_apply_records(struct db *db, const struct repl_record *recs, size_t n,
                       struct repl_apply_result *res)
{
    int rc;

    memset(res, 0, sizeof(*res));
    rc = repl_log_tip(db, &res->tip);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        rc = apply_one(db, &res->tip, &recs[i], res);
        if (rc != 0) {
            res->err = rc;
            res->failed_lsn = recs[i].pos.lsn;
            break;
        }
        res->applied++;
    }
    if (res->applied > 0) {
        int src = save_state(db, &res->tip);

        if (src != 0)
            return src;     /* the job fails and rolls back: nothing applied */
    }
    return rc;
}
