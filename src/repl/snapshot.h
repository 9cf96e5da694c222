/*
 * snapshot — a whole, consistent copy of the active node's database at a
 * known position, for a standby that has nothing or is behind the retained
 * log (DESIGN.md §5, issue item 5).
 *
 *   active   repl_snapshot_create: VACUUM INTO a temp file from a read
 *            transaction (a consistent cut: its repl_log tip is the
 *            snapshot's position), then rewrites the copy's node-local rows
 *            for a standby (role standby, no repl_state) and computes its
 *            SHA-256. The file goes out as SNAPSHOT_BEGIN / CHUNK... / END.
 *   standby  struct repl_snapshot_rx writes the chunks, in order, to a temp
 *            file; at END it checks size and SHA-256, fsyncs, opens the copy
 *            and checks its integrity, schema version and tip against BEGIN.
 *            repl_snapshot_install then copies it over the live database
 *            with the SQLite backup API in one write transaction on the
 *            writer connection (a STORE_JOB_RAW job): readers keep their
 *            snapshot, a crash before the commit leaves the previous state.
 *
 * Until install, the standby's own database is untouched: a snapshot
 * interrupted at any point (connection lost, kill -9, bad hash) leaves the
 * previous state usable, and the temp file is removed at the next attempt.
 */
#ifndef REFUGE_REPL_SNAPSHOT_H
#define REFUGE_REPL_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "repl/log.h"
#include "store/store.h"

/* Writes the snapshot of the database at db_path to out_path. 0 with *tip,
 * sha256 and *size set, or negative with err filled. */
int repl_snapshot_create(const char *db_path, const char *out_path, struct repl_tip *tip,
                         uint8_t sha256[32], uint64_t *size, char *err, size_t errlen);

/* Receiving side. */
struct repl_snapshot_rx {
    char *path;
    int fd;
    uint64_t total;
    uint64_t have;
    struct repl_tip tip;
    uint32_t schema_version;
    void *sha;            /* EVP_MD_CTX */
};

/* Starts a snapshot of total bytes into path (replaced). 0 or negative. */
int repl_snapshot_rx_begin(struct repl_snapshot_rx *rx, const char *path, uint64_t total,
                           const struct repl_tip *tip, uint32_t schema_version, char *err, size_t errlen);
/* Appends a chunk: offset must be exactly the bytes received so far. */
int repl_snapshot_rx_chunk(struct repl_snapshot_rx *rx, uint64_t offset, const void *p, size_t n,
                           char *err, size_t errlen);
/* Checks size and hash, fsyncs and verifies the copy (integrity, schema,
 * tip). 0 or negative with err filled. The file stays for install. */
int repl_snapshot_rx_end(struct repl_snapshot_rx *rx, const uint8_t sha256[32], char *err, size_t errlen);
/* Closes and removes the temp file (also after a successful install). */
void repl_snapshot_rx_abort(struct repl_snapshot_rx *rx);

/* Copies the verified file over the live database (a raw job on the
 * writer). 0 or negative with err filled. */
int repl_snapshot_install(struct store *s, const char *path, char *err, size_t errlen);

#endif
