/*
 * rewind — how an old primary rejoins (DESIGN.md §5.5): the transactions it
 * committed after the last position it shares with the new active node are
 * first exported to a readable file for the operator, then undone by
 * applying their inverted changesets newest first, so it can stream the new
 * active's history from the common position. Nothing disappears silently.
 *
 * Export file: DATA_DIR/divergent/EPOCH-FROM-TO.json, one per epoch of the
 * divergent range, mode 0600, written to a temp file, fsynced and renamed:
 *
 *   { "node": "a", "epoch": 2, "from_lsn": 150, "to_lsn": 180,
 *     "common_lsn": 149, "exported_at": "2026-...Z",
 *     "transactions": [
 *       { "epoch": 2, "lsn": 150, "commit_us": 1764..., "commit_time": "...Z",
 *         "hash": "hex", "changes": [
 *           { "table": "users", "op": "INSERT" | "UPDATE" | "DELETE",
 *             "primary_key": { "tenant": "acme", "id": "u1" },
 *             "old": { column: value, ... },      (UPDATE, DELETE)
 *             "new": { column: value, ... } } ] } ] }
 *
 * Values are JSON numbers, strings or null; blobs are {"base64url": "..."}.
 * An UPDATE lists the primary key and the changed columns only (what the
 * changeset holds).
 */
#ifndef REFUGE_REPL_REWIND_H
#define REFUGE_REPL_REWIND_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "store/db.h"

/* Decodes one changeset into a JSON array of changes (the "changes" above);
 * column names come from db's schema. New reference, or NULL when the
 * changeset is malformed. */
json_t *repl_changeset_json(struct db *db, const void *cs, size_t len);

/* Exports the records after common_lsn (to the tip) to DATA_DIR/divergent/,
 * one file per epoch. *nrec: records exported; paths: the files' names,
 * ';'-separated, into paths (may be NULL). 0 (also when there is nothing to
 * export) or negative with err filled. */
int repl_divergent_export(struct db *db, const char *data_dir, const char *node_name, uint64_t common_lsn,
                          size_t *nrec, char *paths, size_t pathslen, char *err, size_t errlen);

/* In a write job: undoes every record after to_lsn by applying their
 * inverted changesets, newest first, combined into one changeset (a
 * conflict aborts the whole rewind: nothing is forced),
 * deletes those records and the epochs that started after to_lsn, and sets
 * repl_state's applied position to to_lsn. *n: records undone. 0 or
 * negative (REPL_APPLY_* or DB_E*) with why filled. */
int repl_rewind_apply(struct db *db, uint64_t to_lsn, size_t *n, char *why, size_t whylen);

#endif
