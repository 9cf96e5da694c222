/*
 * capture — turns every write transaction of the active node into one
 * replication record, inside that same transaction (DESIGN.md §5.1).
 *
 * The store's writer thread runs each group-commit batch as one SQLite
 * transaction; capture hooks around it:
 *
 *   tx_begin      role active?  open a session (SQLite session extension) on
 *                 the writer connection, attached to every replicated table:
 *                 classes config and identity always, tokens and sessions
 *                 when [replication] replicate_tokens / replicate_sessions.
 *   tx_precommit  changeset of the whole batch; empty -> no record. Else
 *                 lsn = tip + 1, epoch = the node's, commit_us = wall clock,
 *                 hash = h(tip) chained; INSERT INTO repl_log (and the
 *                 epoch_history entry when the epoch starts here). A failure
 *                 aborts the batch: data and log never disagree.
 *   tx_end        the session goes; on COMMIT the cached tip advances and the
 *                 on_record callback tells the replication manager.
 *
 * Local tables (node_state, repl_*, epoch_history) are never attached. A
 * standby (role standby) captures nothing: its writes are applies of records
 * that are already in its log.
 */
#ifndef REFUGE_REPL_CAPTURE_H
#define REFUGE_REPL_CAPTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "node/node.h"
#include "repl/log.h"
#include "store/store.h"

struct repl_capture;

/* Called on the writer thread after a batch with a record committed. */
typedef void (*repl_capture_fn)(void *arg, const struct repl_tip *tip, size_t changeset_bytes);

/* n must outlive the capture (role, epoch and the replicate_* flags are read
 * from it). on_record may be NULL. */
struct repl_capture *repl_capture_new(struct node *n, repl_capture_fn on_record, void *arg);
void repl_capture_free(struct repl_capture *c);

/* The three store hooks with c as their argument (for tests that install
 * capture alone; the manager calls the functions below from its own hooks). */
void repl_capture_hooks(struct repl_capture *c, struct store_hooks *h);
int repl_capture_tx_begin(void *c, struct db *db);
int repl_capture_tx_precommit(void *c, struct db *db, size_t njobs);
void repl_capture_tx_end(void *c, int committed);

/* The tip is re-read from repl_log at the next transaction (after an apply,
 * a rewind, a snapshot or a promotion changed the log under the capture). */
void repl_capture_invalidate(struct repl_capture *c);
/* lsn of the record of the batch that committed last on the writer thread,
 * 0 when that batch made none. Writer thread only (tx_hold). */
uint64_t repl_capture_batch_lsn(const struct repl_capture *c);

struct repl_capture_stats {
    uint64_t records;
    uint64_t bytes;
};
void repl_capture_stats(const struct repl_capture *c, struct repl_capture_stats *out);

#endif
