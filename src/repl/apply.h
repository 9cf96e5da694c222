/*
 * apply — the standby's half of exactly-once: each received record is
 * checked, applied and logged in one transaction (DESIGN.md §5.2).
 *
 * For each record, inside the caller's write job (a STORE_JOB_SYSTEM job, so
 * it runs on a read-only standby) and under its own savepoint:
 *
 *   1. position: lsn = tip + 1 (else a gap), epoch >= tip epoch;
 *   2. chain: SHA-256(h(tip) || record) equals the record's hash;
 *   3. changeset: every table it names is a replicated table of this schema
 *      with the same columns and primary key (SQLite would silently skip a
 *      table it cannot match: we refuse instead);
 *   4. sqlite3changeset_apply with a conflict handler that always answers
 *      ABORT: a conflict is never skipped or resolved by guessing;
 *   5. the record goes into this node's repl_log (and epoch_history when it
 *      opens an epoch), and repl_state's applied position advances.
 *
 * Steps 1-5 commit together or not at all, so a standby killed at any point
 * restarts from a tip that matches its data. The first failing record is
 * rolled back and everything after it is left alone: apply halts there.
 */
#ifndef REFUGE_REPL_APPLY_H
#define REFUGE_REPL_APPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "repl/frame.h"
#include "repl/log.h"
#include "store/db.h"

/* Why a record was refused (negative, apart from -errno and DB_E*). */
enum repl_apply_err {
    REPL_APPLY_EGAP = -2001,       /* lsn is not tip + 1 */
    REPL_APPLY_EEPOCH = -2002,     /* epoch below the tip's */
    REPL_APPLY_ECHAIN = -2003,     /* chained hash mismatch */
    REPL_APPLY_ESCHEMA = -2004,    /* unknown or local table, column mismatch */
    REPL_APPLY_ECONFLICT = -2005,  /* the changeset conflicts with the data */
    REPL_APPLY_ECORRUPT = -2006,   /* changeset cannot be parsed */
};
const char *repl_apply_strerror(int err);

struct repl_apply_result {
    size_t applied;               /* records applied (a prefix of the input) */
    struct repl_tip tip;          /* position after the last applied record */
    bool config_changed;          /* a table of class config changed: reload keys */
    int err;                      /* 0, or why record [applied] was refused */
    uint64_t failed_lsn;
    char why[256];                /* human text for err */
};

/* Applies recs[0..n) in order in the current transaction. Returns 0 when all
 * were applied, else the failing record's error (res says which and why);
 * the records before it stay applied. A DB error other than a conflict is
 * returned as is. */
int repl_apply_records(struct db *db, const struct repl_record *recs, size_t n,
                       struct repl_apply_result *res);

/* Checks that a changeset only names replicated tables of this schema, with
 * matching columns; sets *config when a config-class table appears. 0 or
 * REPL_APPLY_ESCHEMA / REPL_APPLY_ECORRUPT with why filled. */
int repl_changeset_check(struct db *db, const void *cs, size_t len, bool *config, char *why,
                         size_t whylen);

/* The structural check alone (see apply.c for the format): every table
 * header, change and value is complete and in range, so SQLite's iterator
 * can walk it. 0 or REPL_APPLY_ECORRUPT with why filled. */
int repl_changeset_wellformed(const void *cs, size_t len, char *why, size_t whylen);

/* sqlite3changeset_apply with the never-skip conflict handler: 0,
 * REPL_APPLY_ECONFLICT or DB_ERR with why filled. No checks, no savepoint of
 * its own beyond SQLite's (the changeset applies whole or not at all). */
int repl_changeset_apply(struct db *db, const void *cs, size_t len, char *why, size_t whylen);

#endif
