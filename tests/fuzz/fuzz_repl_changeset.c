/*
 * fuzz_repl_changeset — changesets arrive from the other region. SQLite's
 * changeset iterator trusts its input (a malformed table header can make it
 * loop forever), so the standby walks every changeset with its own strict
 * parser first (repl_changeset_wellformed). This target checks that promise:
 * whatever the parser accepts, SQLite iterates and inverts to the end, and
 * the export decoder (repl_changeset_json, used for divergent transactions)
 * and the standby's apply run against the real schema without crashing.
 */
#define SQLITE_ENABLE_SESSION 1
#define SQLITE_ENABLE_PREUPDATE_HOOK 1
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <jansson.h>
#include <sqlite3.h>

#include "repl/apply.h"
#include "repl/rewind.h"
#include "store/db.h"
#include "store/store.h"

static struct db *db;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[256], err[256];
    sqlite3_changeset_iter *it;
    void *inv = NULL;
    int ninv = 0;

    if (!db) {
        if (db_open(":memory:", 0, &db, err, sizeof(err)) != 0 || store_schema_migrate(db, err, sizeof(err)) != 0)
            abort();
    }
    if (size > 1 << 20 || repl_changeset_wellformed(data, size, why, sizeof(why)) != 0)
        return 0;
    if (sqlite3changeset_start(&it, (int)size, (void *)data) == SQLITE_OK) {
        while (sqlite3changeset_next(it) == SQLITE_ROW) {
            const char *table;
            int ncol, op, indirect;

            if (sqlite3changeset_op(it, &table, &ncol, &op, &indirect) != SQLITE_OK)
                break;
        }
        sqlite3changeset_finalize(it);
    }
    if (sqlite3changeset_invert((int)size, data, &ninv, &inv) == SQLITE_OK)
        sqlite3_free(inv);
    json_decref(repl_changeset_json(db, data, size));
    /* and apply it as the standby would, then undo */
    {
        bool config;

        if (repl_changeset_check(db, data, size, &config, why, sizeof(why)) == 0 &&
            db_exec(db, "SAVEPOINT f") == 0) {
            repl_changeset_apply(db, data, size, why, sizeof(why));
            db_exec(db, "ROLLBACK TO f; RELEASE f");
        }
    }
    return 0;
}
