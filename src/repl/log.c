/*
 * log — the chained hash, the replication log, the epoch history and
 * repl_state (see log.h for the formulas). Kept apart from capture and apply
 * so both sides, rewind and the tests share one definition of a position.
 */
#include "repl/log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

static void put_u64be(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)(v & 0xff);
        v >>= 8;
    }
}

void repl_hash_next(const uint8_t prev[REPL_HASH_LEN], uint64_t epoch, uint64_t lsn,
                    uint64_t commit_us, const void *changeset, size_t len,
                    uint8_t out[REPL_HASH_LEN])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    uint8_t hdr[24];
    unsigned int n = 0;

    if (!ctx)
        abort();
    put_u64be(hdr, epoch);
    put_u64be(hdr + 8, lsn);
    put_u64be(hdr + 16, commit_us);
    if (EVP_DigestInit_ex2(ctx, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(ctx, prev, REPL_HASH_LEN) != 1 || EVP_DigestUpdate(ctx, hdr, sizeof(hdr)) != 1 ||
        (len > 0 && EVP_DigestUpdate(ctx, changeset, len) != 1) || EVP_DigestFinal_ex(ctx, out, &n) != 1 ||
        n != REPL_HASH_LEN)
        abort();    /* SHA-256 cannot fail short of memory exhaustion */
    EVP_MD_CTX_free(ctx);
}

char *repl_hash_hex(const uint8_t h[REPL_HASH_LEN], char out[2 * REPL_HASH_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";

    for (size_t i = 0; i < REPL_HASH_LEN; i++) {
        out[2 * i] = hex[h[i] >> 4];
        out[2 * i + 1] = hex[h[i] & 15];
    }
    out[2 * REPL_HASH_LEN] = '\0';
    return out;
}

/* ------------------------------------------------------------- repl_log */

static void copy_hash(struct db_stmt *st, int col, uint8_t out[REPL_HASH_LEN])
{
    memset(out, 0, REPL_HASH_LEN);
    if (db_col_bytes(st, col) == REPL_HASH_LEN)
        memcpy(out, db_col_blob(st, col), REPL_HASH_LEN);
}

int repl_log_tip(struct db *db, struct repl_tip *out)
{
    struct db_stmt *st;
    int rc;

    memset(out, 0, sizeof(*out));
    st = db_prepare(db, "SELECT epoch, lsn, commit_us, hash FROM repl_log ORDER BY lsn DESC LIMIT 1");
    if (!st)
        return DB_ERR;
    rc = db_step(st);
    if (rc == DB_ROW) {
        out->epoch = (uint64_t)db_col_int64(st, 0);
        out->lsn = (uint64_t)db_col_int64(st, 1);
        out->commit_us = (uint64_t)db_col_int64(st, 2);
        copy_hash(st, 3, out->hash);
        rc = 0;
    }
    db_done(st);
    return rc < 0 ? rc : 0;
}

int repl_log_first(struct db *db, uint64_t *out)
{
    struct db_stmt *st = db_prepare(db, "SELECT lsn FROM repl_log ORDER BY lsn LIMIT 1");
    int rc;

    *out = 0;
    if (!st)
        return DB_ERR;
    rc = db_step(st);
    if (rc == DB_ROW)
        *out = (uint64_t)db_col_int64(st, 0);
    db_done(st);
    return rc < 0 ? rc : 0;
}

int repl_log_hash_at(struct db *db, uint64_t lsn, uint8_t out[REPL_HASH_LEN])
{
    struct db_stmt *st;
    int rc;

    memset(out, 0, REPL_HASH_LEN);
    if (lsn == 0)
        return 0;
    st = db_prepare(db, "SELECT hash FROM repl_log WHERE lsn = $1");
    if (!st)
        return DB_ERR;
    db_bind_int64(st, 1, (int64_t)lsn);
    rc = db_step(st);
    if (rc == DB_ROW) {
        copy_hash(st, 0, out);
        rc = 0;
    } else if (rc == DB_DONE) {
        rc = -ENOENT;
    }
    db_done(st);
    return rc;
}

int repl_log_append(struct db *db, const struct repl_record *r)
{
    struct db_stmt *st = db_prepare(db, "INSERT INTO repl_log(epoch, lsn, commit_us, hash, changeset) "
                                        "VALUES ($1, $2, $3, $4, $5)");
    int rc;

    if (!st)
        return DB_ERR;
    db_bind_int64(st, 1, (int64_t)r->pos.epoch);
    db_bind_int64(st, 2, (int64_t)r->pos.lsn);
    db_bind_int64(st, 3, (int64_t)r->commit_us);
    db_bind_blob(st, 4, r->hash, REPL_HASH_LEN);
    db_bind_blob(st, 5, r->changeset.p ? r->changeset.p : "", r->changeset.len);
    rc = db_step(st);
    db_done(st);
    return rc < 0 ? rc : 0;
}

/* -------------------------------------------------------- epoch history */

int repl_history_load(struct db *db, struct repl_epoch_start *out, size_t max, size_t *n)
{
    struct db_stmt *st = db_prepare(db, "SELECT epoch, start_lsn FROM epoch_history ORDER BY epoch");
    int rc;

    *n = 0;
    if (!st)
        return DB_ERR;
    while ((rc = db_step(st)) == DB_ROW) {
        if (*n == max) {
            rc = -E2BIG;
            break;
        }
        out[*n].epoch = (uint64_t)db_col_int64(st, 0);
        out[*n].start_lsn = (uint64_t)db_col_int64(st, 1);
        (*n)++;
    }
    db_done(st);
    return rc < 0 ? rc : 0;
}

int repl_history_add(struct db *db, uint64_t epoch, uint64_t start_lsn)
{
    struct db_stmt *st = db_prepare(db, "INSERT OR IGNORE INTO epoch_history(epoch, start_lsn) VALUES ($1, $2)");
    int rc;

    if (!st)
        return DB_ERR;
    db_bind_int64(st, 1, (int64_t)epoch);
    db_bind_int64(st, 2, (int64_t)start_lsn);
    rc = db_step(st);
    db_done(st);
    return rc < 0 ? rc : 0;
}

/* Entry i holds no record: the next entry starts where it does (promoted,
 * then demoted or fenced before a write), or it is the last entry and
 * starts past the node's last lsn (promoted, nothing written yet). Such an
 * entry says nothing about which epoch wrote which lsn, and only the node
 * that was promoted has it: a standby learns epochs from the records it
 * applies. Comparing histories skips these entries. */
static bool entry_empty(const struct repl_epoch_start *h, size_t n, size_t i, uint64_t last)
{
    if (i + 1 < n)
        return h[i + 1].start_lsn <= h[i].start_lsn;
    return h[i].start_lsn > last;
}

/* The first entry at or after i that holds records (n when none). */
static size_t next_entry(const struct repl_epoch_start *h, size_t n, size_t i, uint64_t last)
{
    while (i < n && entry_empty(h, n, i, last))
        i++;
    return i;
}

/* The last lsn of the (non-empty) history entry i: one before the next
 * entry's start, or the node's last lsn for its current epoch. */
static uint64_t epoch_end(const struct repl_epoch_start *h, size_t n, size_t i, uint64_t last)
{
    uint64_t end = last;

    if (i + 1 < n && h[i + 1].start_lsn > 0 && h[i + 1].start_lsn - 1 < end)
        end = h[i + 1].start_lsn - 1;
    return end;
}

uint64_t repl_history_common(const struct repl_epoch_start *a, size_t na, uint64_t a_last,
                             const struct repl_epoch_start *b, size_t nb, uint64_t b_last)
{
    size_t i = next_entry(a, na, 0, a_last), j = next_entry(b, nb, 0, b_last);
    size_t mi = 0, mj = 0;
    bool matched = false;
    uint64_t ea, eb;

    /* the longest run of equal leading entries that hold records */
    while (i < na && j < nb && a[i].epoch == b[j].epoch && a[i].start_lsn == b[j].start_lsn) {
        mi = i;
        mj = j;
        matched = true;
        i = next_entry(a, na, i + 1, a_last);
        j = next_entry(b, nb, j + 1, b_last);
    }
    if (!matched)
        return 0;
    /* within the last common epoch, the lower end; a side that moved on to
     * another epoch ends it where that epoch starts */
    ea = epoch_end(a, na, mi, a_last);
    eb = epoch_end(b, nb, mj, b_last);
    return ea < eb ? ea : eb;
}

uint64_t repl_history_top_epoch(const struct repl_epoch_start *h, size_t n, uint64_t last_epoch)
{
    uint64_t top = last_epoch;

    for (size_t i = 0; i < n; i++)
        if (h[i].epoch > top)
            top = h[i].epoch;
    return top;
}

/* ------------------------------------------------------------ repl_state */

int repl_state_get(struct db *db, const char *key, char *out, size_t outlen)
{
    struct db_stmt *st = db_prepare(db, "SELECT value FROM repl_state WHERE key = $1");
    int rc;

    if (!st)
        return DB_ERR;
    db_bind_text(st, 1, key, -1);
    rc = db_step(st);
    if (rc == DB_ROW) {
        snprintf(out, outlen, "%s", db_col_text(st, 0));
        rc = 0;
    } else if (rc == DB_DONE) {
        rc = -ENOENT;
    }
    db_done(st);
    return rc;
}

int repl_state_set(struct db *db, const char *key, const char *value)
{
    return db_execp(db,
                    "INSERT INTO repl_state(key, value) VALUES ($1, $2) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    key, value, NULL);
}

int repl_state_get_u64(struct db *db, const char *key, uint64_t *out)
{
    char buf[32];
    int rc = repl_state_get(db, key, buf, sizeof(buf));

    if (rc == 0)
        *out = strtoull(buf, NULL, 10);
    return rc;
}

int repl_state_set_u64(struct db *db, const char *key, uint64_t v)
{
    char buf[32];

    snprintf(buf, sizeof(buf), "%" PRIu64, v);
    return repl_state_set(db, key, buf);
}
