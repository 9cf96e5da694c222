/*
 * rewind — exports and undoes the transactions an old primary committed
 * after the last position it shares with the new active node (see rewind.h
 * for the file format). Export first, rewind second: if the node dies in
 * between, the next attempt exports the same records again (same file name,
 * replaced atomically) and rewinds them then.
 */
#define SQLITE_ENABLE_SESSION 1
#define SQLITE_ENABLE_PREUPDATE_HOOK 1
#include "repl/rewind.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "core/base64.h"
#include "core/timeutil.h"
#include "core/xmalloc.h"
#include "repl/apply.h"
#include "repl/log.h"

#define MAX_COLS 64

/* ------------------------------------------------------------- decoding */

static json_t *value_json(sqlite3_value *v)
{
    switch (sqlite3_value_type(v)) {
    case SQLITE_INTEGER:
        return json_integer((json_int_t)sqlite3_value_int64(v));
    case SQLITE_FLOAT:
        return json_real(sqlite3_value_double(v));
    case SQLITE_TEXT:
        return json_stringn((const char *)sqlite3_value_text(v), (size_t)sqlite3_value_bytes(v));
    case SQLITE_BLOB: {
        size_t n = (size_t)sqlite3_value_bytes(v);
        char *b = xmalloc(B64URL_ENCLEN(n));
        json_t *j;

        b64url_encode(sqlite3_value_blob(v), n, b);
        j = json_pack("{s:s}", "base64url", b);
        free(b);
        return j;
    }
    default:
        return json_null();
    }
}

/* Column names of a table, in declaration order; *n of them. */
static int column_names(struct db *db, const char *table, char names[MAX_COLS][64], int *n)
{
    struct db_stmt *st = db_prepare(db, "SELECT name FROM pragma_table_info($1) ORDER BY cid");
    int rc;

    *n = 0;
    if (!st)
        return DB_ERR;
    db_bind_text(st, 1, table, -1);
    while ((rc = db_step(st)) == DB_ROW && *n < MAX_COLS)
        snprintf(names[(*n)++], 64, "%s", db_col_text(st, 0));
    db_done(st);
    return rc < 0 ? rc : 0;
}

static const char *op_name(int op)
{
    return op == SQLITE_INSERT ? "INSERT" : op == SQLITE_DELETE ? "DELETE" : "UPDATE";
}

/* Column names per table, looked up once per export. */
#define NAME_CACHE 32
struct name_cache {
    size_t n;
    struct {
        char table[64];
        int ncol;
        char names[MAX_COLS][64];
    } t[NAME_CACHE];
};

static int cached_names(struct db *db, struct name_cache *nc, const char *table, char (**names)[64], int *ncol)
{
    size_t i;
    int rc;

    for (i = 0; i < nc->n; i++) {
        if (strcmp(nc->t[i].table, table) == 0) {
            *names = nc->t[i].names;
            *ncol = nc->t[i].ncol;
            return 0;
        }
    }
    if (nc->n == NAME_CACHE)
        nc->n = 0;         /* more tables than ever exist: start over */
    i = nc->n;
    snprintf(nc->t[i].table, sizeof(nc->t[i].table), "%s", table);
    rc = column_names(db, table, nc->t[i].names, &nc->t[i].ncol);
    if (rc != 0)
        return rc;
    nc->n++;
    *names = nc->t[i].names;
    *ncol = nc->t[i].ncol;
    return 0;
}

static json_t *changeset_json(struct db *db, struct name_cache *nc, const void *cs, size_t len)
{
    sqlite3_changeset_iter *it = NULL;
    json_t *out = json_array();
    char (*names)[64] = NULL;
    int nnames = 0, rc;
    bool config;
    char why[256];

    /* the same strict check as apply: SQLite's iterator trusts its input */
    if (repl_changeset_check(db, cs, len, &config, why, sizeof(why)) != 0 ||
        sqlite3changeset_start(&it, (int)len, (void *)cs) != SQLITE_OK)
        goto bad;
    while ((rc = sqlite3changeset_next(it)) == SQLITE_ROW) {
        const char *table;
        int ncol, op, indirect, npk;
        unsigned char *pk;
        json_t *ch, *key, *old = NULL, *new = NULL;

        if (sqlite3changeset_op(it, &table, &ncol, &op, &indirect) != SQLITE_OK ||
            sqlite3changeset_pk(it, &pk, &npk) != SQLITE_OK)
            goto bad;
        if (cached_names(db, nc, table, &names, &nnames) != 0 || nnames != ncol)
            goto bad;
        key = json_object();
        if (op != SQLITE_INSERT)
            old = json_object();
        if (op != SQLITE_DELETE)
            new = json_object();
        for (int c = 0; c < ncol; c++) {
            sqlite3_value *ov = NULL, *nv = NULL;

            if (old && sqlite3changeset_old(it, c, &ov) == SQLITE_OK && ov)
                json_object_set_new(old, names[c], value_json(ov));
            if (new && sqlite3changeset_new(it, c, &nv) == SQLITE_OK && nv)
                json_object_set_new(new, names[c], value_json(nv));
            if (pk[c] && (ov || nv))
                json_object_set_new(key, names[c], value_json(ov ? ov : nv));
        }
        ch = json_pack("{s:s, s:s, s:o}", "table", table, "op", op_name(op), "primary_key", key);
        if (old)
            json_object_set_new(ch, "old", old);
        if (new)
            json_object_set_new(ch, "new", new);
        json_array_append_new(out, ch);
    }
    if (rc != SQLITE_DONE)
        goto bad;
    sqlite3changeset_finalize(it);
    return out;
bad:
    if (it)
        sqlite3changeset_finalize(it);
    json_decref(out);
    return NULL;
}

json_t *repl_changeset_json(struct db *db, const void *cs, size_t len)
{
    struct name_cache *nc = xcalloc(1, sizeof(*nc));
    json_t *j = changeset_json(db, nc, cs, len);

    free(nc);
    return j;
}

/* --------------------------------------------------------------- export */

static int write_file(const char *dir, const char *name, const char *text, char *err, size_t errlen)
{
    char *path = xasprintf("%s/%s", dir, name);
    char *tmp = xasprintf("%s.tmp", path);
    size_t len = strlen(text), off = 0;
    int fd, rc = 0;

    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        goto out;
    }
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);

        if (w < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        off += (size_t)w;
    }
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    close(fd);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(-rc));
        unlink(tmp);
        goto out;
    }
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
out:
    free(tmp);
    free(path);
    return rc;
}

static int flush_epoch(const char *dir, const char *node_name, uint64_t common, json_t *txs, uint64_t epoch,
                       uint64_t from, uint64_t to, char *paths, size_t pathslen, char *err, size_t errlen)
{
    char now[40], name[96];
    json_t *doc;
    char *text;
    int rc;

    snprintf(name, sizeof(name), "%" PRIu64 "-%" PRIu64 "-%" PRIu64 ".json", epoch, from, to);
    doc = json_pack("{s:s, s:I, s:I, s:I, s:I, s:s, s:O}", "node", node_name ? node_name : "", "epoch",
                    (json_int_t)epoch, "from_lsn", (json_int_t)from, "to_lsn", (json_int_t)to, "common_lsn",
                    (json_int_t)common, "exported_at", time_rfc3339(time_wall_us(), now, sizeof(now), 1),
                    "transactions", txs);
    text = json_dumps(doc, JSON_INDENT(1) | JSON_ENSURE_ASCII);
    json_decref(doc);
    rc = write_file(dir, name, text, err, errlen);
    free(text);
    if (rc == 0 && paths) {
        size_t k = strlen(paths);

        snprintf(paths + k, pathslen - k, "%s%s/%s", k ? ";" : "", dir, name);
    }
    return rc;
}

int repl_divergent_export(struct db *db, const char *data_dir, const char *node_name, uint64_t common_lsn,
                          size_t *nrec, char *paths, size_t pathslen, char *err, size_t errlen)
{
    char *dir = xasprintf("%s/divergent", data_dir);
    struct name_cache *nc = xcalloc(1, sizeof(*nc));
    struct db_stmt *st = NULL;
    json_t *txs = NULL;
    uint64_t epoch = 0, from = 0, to = 0;
    int rc = 0;

    *nrec = 0;
    if (paths && pathslen)
        paths[0] = '\0';
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        goto out;
    }
    /* A second connection's statement would see the same data: this is the
     * caller's connection, and nothing else writes the log of a standby. */
    st = db_prepare(db, "SELECT epoch, lsn, commit_us, hash, changeset FROM repl_log WHERE lsn > $1 ORDER BY lsn");
    if (!st) {
        rc = DB_ERR;
        snprintf(err, errlen, "repl_log: %s", db_errmsg(db));
        goto out;
    }
    db_bind_int64(st, 1, (int64_t)common_lsn);
    while ((rc = db_step(st)) == DB_ROW) {
        uint64_t e = (uint64_t)db_col_int64(st, 0), lsn = (uint64_t)db_col_int64(st, 1);
        uint64_t us = (uint64_t)db_col_int64(st, 2);
        char hex[2 * REPL_HASH_LEN + 1], when[40];
        uint8_t h[REPL_HASH_LEN] = { 0 };
        json_t *changes;

        if (txs && e != epoch) {
            rc = flush_epoch(dir, node_name, common_lsn, txs, epoch, from, to, paths, pathslen, err, errlen);
            json_decref(txs);
            txs = NULL;
            if (rc != 0)
                goto out;
        }
        if (!txs) {
            txs = json_array();
            epoch = e;
            from = lsn;
        }
        to = lsn;
        if (db_col_bytes(st, 3) == REPL_HASH_LEN)
            memcpy(h, db_col_blob(st, 3), REPL_HASH_LEN);
        changes = changeset_json(db, nc, db_col_blob(st, 4), db_col_bytes(st, 4));
        if (!changes) {
            /* still exported: the raw changeset, so nothing is lost */
            size_t n = db_col_bytes(st, 4);
            char *b = xmalloc(B64URL_ENCLEN(n));

            b64url_encode(db_col_blob(st, 4), n, b);
            changes = json_pack("[{s:s}]", "undecodable_changeset_base64url", b);
            free(b);
        }
        json_array_append_new(txs, json_pack("{s:I, s:I, s:I, s:s, s:s, s:o}", "epoch", (json_int_t)e, "lsn",
                                             (json_int_t)lsn, "commit_us", (json_int_t)us, "commit_time",
                                             time_rfc3339((int64_t)us, when, sizeof(when), 1), "hash",
                                             repl_hash_hex(h, hex), "changes", changes));
        (*nrec)++;
    }
    if (rc < 0) {
        snprintf(err, errlen, "repl_log: %s", db_errmsg(db));
        goto out;
    }
    rc = 0;
    if (txs)
        rc = flush_epoch(dir, node_name, common_lsn, txs, epoch, from, to, paths, pathslen, err, errlen);
out:
    if (st)
        db_done(st);
    json_decref(txs);
    free(nc);
    free(dir);
    return rc;
}

/* --------------------------------------------------------------- rewind */

int repl_rewind_apply(struct db *db, uint64_t to_lsn, size_t *n, char *why, size_t whylen)
{
    struct db_stmt *st;
    struct repl_tip tip = { 0 };
    sqlite3_changegroup *g = NULL;
    void *all = NULL;
    int nall = 0;
    char hex[2 * REPL_HASH_LEN + 1], w[200] = "", lsn[32];
    uint64_t newest = 0;
    int rc;

    *n = 0;
    why[0] = '\0';
    rc = repl_log_hash_at(db, to_lsn, tip.hash);
    if (rc != 0) {
        snprintf(why, whylen, "the record at lsn %" PRIu64 " is no longer in the log", to_lsn);
        return rc;
    }
    /* The inverted changesets, newest first, combined into one: applying it
     * to the current state gives the state at to_lsn (each row's combined
     * old values are checked against the data, so nothing is forced), and
     * SQLite prepares its statements once instead of once per record. */
    if (sqlite3changegroup_new(&g) != SQLITE_OK)
        return DB_ERR;
    st = db_prepare(db, "SELECT lsn, changeset FROM repl_log WHERE lsn > $1 ORDER BY lsn DESC");
    if (!st) {
        rc = DB_ERR;
        goto out;
    }
    db_bind_int64(st, 1, (int64_t)to_lsn);
    while ((rc = db_step(st)) == DB_ROW) {
        uint64_t at = (uint64_t)db_col_int64(st, 0);
        const void *cs = db_col_blob(st, 1);
        size_t len = db_col_bytes(st, 1);
        void *inv = NULL;
        int ninv = 0;
        bool config;

        if (!newest)
            newest = at;
        rc = repl_changeset_check(db, cs, len, &config, w, sizeof(w));
        if (rc == 0 && sqlite3changeset_invert((int)len, cs, &ninv, &inv) != SQLITE_OK)
            rc = REPL_APPLY_ECORRUPT;
        if (rc == 0 && sqlite3changegroup_add(g, ninv, inv) != SQLITE_OK)
            rc = REPL_APPLY_ECORRUPT;
        sqlite3_free(inv);
        if (rc != 0) {
            snprintf(why, whylen, "undoing lsn %" PRIu64 ": %s", at, w[0] ? w : "cannot invert the changeset");
            db_done(st);
            goto out;
        }
        (*n)++;
    }
    db_done(st);
    if (rc < 0)
        goto out;
    if (*n > 0) {
        if (sqlite3changegroup_output(g, &nall, &all) != SQLITE_OK) {
            rc = DB_ERR;
            goto out;
        }
        rc = repl_changeset_apply(db, all, (size_t)nall, w, sizeof(w));
        if (rc != 0) {
            snprintf(why, whylen, "undoing lsn %" PRIu64 "..%" PRIu64 ": %s", to_lsn + 1, newest, w);
            goto out;
        }
    }
    snprintf(lsn, sizeof(lsn), "%" PRIu64, to_lsn);
    rc = db_execp(db, "DELETE FROM repl_log WHERE lsn > $1", lsn, NULL);
    if (rc == 0)
        rc = db_execp(db, "DELETE FROM epoch_history WHERE start_lsn > $1", lsn, NULL);
    if (rc == 0)
        rc = repl_log_tip(db, &tip);
    if (rc == 0)
        rc = repl_state_set_u64(db, "applied_epoch", tip.epoch);
    if (rc == 0)
        rc = repl_state_set_u64(db, "applied_lsn", tip.lsn);
    if (rc == 0)
        rc = repl_state_set(db, "applied_hash", repl_hash_hex(tip.hash, hex));
out:
    if (rc != 0 && !why[0])
        snprintf(why, whylen, "%s", db_errmsg(db));
    sqlite3_free(all);
    sqlite3changegroup_delete(g);
    return rc;
}
