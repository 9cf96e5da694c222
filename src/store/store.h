/*
 * store — the node's database: one SQLite file in WAL mode, one read
 * connection per thread that asks for one, and exactly one writer thread
 * that commits many queued write jobs in one transaction (group commit).
 *
 * Write path:
 *   caller -> store_submit(fn, done, arg) -> queue -> writer thread:
 *     BEGIN; for each job: SAVEPOINT; rc = fn(db, arg); RELEASE or ROLLBACK TO;
 *     hooks (replication capture); COMMIT; then done(arg, rc) for each job
 *     (or later, when a replication ack mode holds the batch: tx_hold).
 * A failing job is rolled back to its savepoint alone and never poisons the
 * others in its batch. If COMMIT itself fails every job gets that error.
 *
 * Tables are created by versioned migrations (schema.c). Every table declares
 * its replication class; the replication engine reads the registry.
 */
#ifndef REFUGE_STORE_STORE_H
#define REFUGE_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "store/db.h"

enum repl_class {
    REPL_LOCAL = 0,     /* never leaves the node */
    REPL_CONFIG,        /* tenants, clients, keys, artifacts: always replicated */
    REPL_IDENTITY,      /* users, groups: always replicated */
    REPL_TOKENS,        /* refresh/opaque tokens, revoked jtis: when replicate_tokens */
    REPL_SESSIONS,      /* SSO sessions: when replicate_sessions */
};
const char *repl_class_name(enum repl_class c);

struct store_table {
    const char *name;
    enum repl_class cls;
};
/* The registry of every table the schema creates, with its class. */
const struct store_table *store_tables(size_t *n);
int store_schema_version_latest(void);

struct store_opts {
    const char *path;             /* database file */
    size_t queue_max;             /* pending jobs before store_submit says -EAGAIN (0: 10000) */
    size_t batch_max;             /* jobs per transaction (0: 256) */
    int64_t wal_checkpoint_bytes; /* checkpoint (PASSIVE) when the WAL exceeds this (0: 4 MiB) */
    int64_t wal_truncate_bytes;   /* checkpoint (TRUNCATE) when the WAL exceeds this (0: 64 MiB) */
};

struct store_completion;     /* the done callbacks of one committed batch */

/* Replication hooks, run on the writer thread (set before the first write). */
struct store_hooks {
    void *arg;
    int (*tx_begin)(void *arg, struct db *db);                 /* after BEGIN */
    int (*tx_precommit)(void *arg, struct db *db, size_t njobs); /* before COMMIT; error aborts the batch */
    void (*tx_end)(void *arg, int committed);                  /* after COMMIT / ROLLBACK */
    /* njobs: jobs whose changes are in the transaction (0 when all failed).
     * tx_end runs whenever tx_begin ran, also when tx_begin failed. */

    /* Before BEGIN of a batch that holds at least one non-system job (may
     * block, bounded: replication back-pressure). 0 runs the batch; a
     * negative code fails its non-system jobs with that code without running
     * them (system jobs of the batch still run). */
    int (*tx_admit)(void *arg, size_t njobs);
    /* After a batch committed (after tx_end), before its done callbacks:
     * returning true takes the batch's completions over (replication ack
     * modes hold them until the standby acknowledges). The hook's owner must
     * then call store_completion_finish(c, err) exactly once, from any
     * thread; the done callbacks then run on that thread. */
    bool (*tx_hold)(void *arg, struct store_completion *c);
};

struct store;

typedef int (*store_write_fn)(struct db *db, void *arg);  /* 0 or negative: this job is rolled back */
/* done runs after commit on the writer thread, or, for a batch that tx_hold
 * took over, on the thread that calls store_completion_finish. */
typedef void (*store_done_fn)(void *arg, int rc);

/* Opens or creates the database and runs migrations. A database whose schema
 * is newer than this binary's is refused (-EPROTO) with a clear message. */
int store_open(const struct store_opts *opts, struct store **out, char *err, size_t errlen);
void store_close(struct store *s);   /* drains the queue, stops the writer, closes all connections */
void store_set_hooks(struct store *s, const struct store_hooks *h);

/* The calling thread's read connection (created on first use). */
struct db *store_reader(struct store *s);

/* Queues a write job. 0, -EAGAIN (queue full) or -ESHUTDOWN. done is never
 * called when this returns an error. */
int store_submit(struct store *s, store_write_fn fn, store_done_fn done, void *arg);
/* Queues and waits; returns the job's result (or the commit error), or a
 * store_submit error. -EDEADLK when called on the writer thread (from a job
 * or a done callback). */
int store_write(struct store *s, store_write_fn fn, void *arg);
/* Sets/clears read-only mode: jobs then fail with -EROFS without running. */
void store_set_readonly(struct store *s, bool ro);
bool store_writable(struct store *s);

/* Like store_submit / store_write with flags. STORE_JOB_SYSTEM: the job runs
 * even in read-only mode (the replication applier and role changes on a
 * standby); other jobs then still fail with -EROFS. */
#define STORE_JOB_SYSTEM 0x1
/* STORE_JOB_RAW: the job runs alone on the writer connection, outside any
 * transaction and without hooks (it manages its own transactions, e.g. the
 * SQLite backup API copying a snapshot over the live database). It runs in
 * read-only mode too. */
#define STORE_JOB_RAW 0x2
int store_submit_flags(struct store *s, store_write_fn fn, store_done_fn done, void *arg,
                       unsigned flags);
int store_write_flags(struct store *s, store_write_fn fn, void *arg, unsigned flags);

/* Completes a batch held by tx_hold: calls every job's done callback, in
 * order, with its own result, or with err (when err != 0) for the jobs that
 * succeeded; then frees c. */
void store_completion_finish(struct store_completion *c, int err);
/* Number of jobs in a held batch. */
size_t store_completion_count(const struct store_completion *c);

struct store_stats {
    uint64_t batches;        /* transactions begun by the writer */
    uint64_t jobs;           /* jobs completed (done called) */
    uint64_t jobs_failed;    /* ... of which with rc != 0 (incl. -EROFS, commit errors) */
    uint64_t commit_errors;  /* batches that did not commit (BEGIN/hook/COMMIT failure) */
    size_t queue_len;        /* jobs queued, not yet taken by the writer */
    int64_t wal_bytes;       /* size of the -wal file on disk */
};
void store_stats(struct store *s, struct store_stats *out);

/* Batch-size distribution: hist[k] counts transactions of 2^k .. 2^(k+1)-1
 * jobs (hist[7]: 128 or more). Also exported as the Prometheus histogram
 * refuge_store_commit_batch_size; refuge_store_commit_seconds times COMMIT. */
#define STORE_BATCH_HIST 8
void store_batch_sizes(struct store *s, uint64_t hist[STORE_BATCH_HIST]);

/* Runs the migrations on an open connection (store_open does this). 0,
 * -EPROTO for a database newer than this binary, or another -errno; err says why. */
int store_schema_migrate(struct db *db, char *err, size_t errlen);

#endif
