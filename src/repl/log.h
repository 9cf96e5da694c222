/*
 * log — the replication log of a node: its position, the chained hash, the
 * epoch history and the repl_state key/values, all in the node's own store
 * (tables repl_log, epoch_history, repl_state; class `local`).
 *
 * Position and chain (DESIGN.md §5.1, like Redis' replid + offset):
 *
 *   h(0) = 32 zero bytes
 *   h(n) = SHA-256( h(n-1) || u64be(epoch) || u64be(lsn) || u64be(commit_us) || changeset )
 *
 * repl_log row n holds (epoch, lsn, commit_us, h(n), changeset); lsn is dense
 * and strictly increasing across epochs. The last row is the node's tip:
 * retention never deletes it, so the tip (and its hash) is always known.
 * epoch_history holds (epoch, start_lsn): the first lsn of each epoch, written
 * by a promotion before its first write and by the standby when it applies
 * the first record of a new epoch.
 *
 * All functions take a connection (writer inside a job, or a reader) and
 * return 0 or a negative code (DB_E* from db.h, or -errno).
 */
#ifndef REFUGE_REPL_LOG_H
#define REFUGE_REPL_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "repl/frame.h"
#include "store/db.h"

/* A node's last position and the chained hash there. */
struct repl_tip {
    uint64_t epoch;
    uint64_t lsn;
    uint64_t commit_us;
    uint8_t hash[REPL_HASH_LEN];
};

/* h(n) from h(n-1) and the record's fields. */
void repl_hash_next(const uint8_t prev[REPL_HASH_LEN], uint64_t epoch, uint64_t lsn,
                    uint64_t commit_us, const void *changeset, size_t len,
                    uint8_t out[REPL_HASH_LEN]);
/* Lowercase hex of a hash into out (65 bytes). */
char *repl_hash_hex(const uint8_t h[REPL_HASH_LEN], char out[2 * REPL_HASH_LEN + 1]);

/* The last row of repl_log, or all zeros when the log is empty. */
int repl_log_tip(struct db *db, struct repl_tip *out);
/* The oldest retained lsn (0 when the log is empty). */
int repl_log_first(struct db *db, uint64_t *out);
/* The hash at lsn: zeros for lsn 0, -ENOENT when that row is not retained. */
int repl_log_hash_at(struct db *db, uint64_t lsn, uint8_t out[REPL_HASH_LEN]);
/* Inserts one record as given (no checks). */
int repl_log_append(struct db *db, const struct repl_record *r);

/* epoch_history, ascending. At most max entries; *n set. */
int repl_history_load(struct db *db, struct repl_epoch_start *out, size_t max, size_t *n);
/* INSERT OR IGNORE (epoch, start_lsn). */
int repl_history_add(struct db *db, uint64_t epoch, uint64_t start_lsn);

/*
 * The last position two nodes have in common, from their epoch histories
 * and last lsns alone (the chained hash then proves it): the longest run of
 * equal leading history entries decides the epoch, and within it the lower
 * of the two nodes' ends. 0 when they share no epoch. Entries that hold no
 * record (an epoch promoted then left before its first write; only the
 * promoted node has it) are skipped on both sides.
 *
 *   a: (1,1) (2,100)        last 180
 *   b: (1,1) (2,100) (3,150) last 200   -> 149: a's 150..180 are divergent
 *   a: (1,1) (2,50) (3,50)  last 392    (epoch 2 empty: promoted, demoted)
 *   b: (1,1) (3,50)         last 392    -> 392: nothing divergent
 */
uint64_t repl_history_common(const struct repl_epoch_start *a, size_t na, uint64_t a_last,
                             const struct repl_epoch_start *b, size_t nb, uint64_t b_last);
/* The highest epoch a history and a last position name (0 when empty). */
uint64_t repl_history_top_epoch(const struct repl_epoch_start *h, size_t n, uint64_t last_epoch);

/* repl_state key/values (text). get: -ENOENT when missing. */
int repl_state_get(struct db *db, const char *key, char *out, size_t outlen);
int repl_state_set(struct db *db, const char *key, const char *value);
int repl_state_get_u64(struct db *db, const char *key, uint64_t *out);
int repl_state_set_u64(struct db *db, const char *key, uint64_t v);

#endif
