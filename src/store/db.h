/*
 * db — a small, portable database API over one connection.
 *
 * SQL is written portably with $1, $2 ... placeholders so that a PostgreSQL
 * driver can be added later without touching callers. Statements are
 * prepared once per connection and cached by SQL text: callers db_prepare(),
 * bind, step, and db_done() when finished (which resets and unbinds the
 * cached statement); they never finalize.
 *
 *   struct db_stmt *st = db_prepare(db, "SELECT name FROM tenants WHERE name = $1");
 *   db_bind_text(st, 1, name, -1);
 *   if (db_step(st) == DB_ROW) use(db_col_text(st, 0));
 *   db_done(st);
 *
 * A connection belongs to one thread at a time.
 */
#ifndef REFUGE_STORE_DB_H
#define REFUGE_STORE_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct db;
struct db_stmt;

/* db_step results */
#define DB_ROW 1
#define DB_DONE 0
/* errors (negative) */
#define DB_ERR (-1000)          /* anything else; see db_errmsg() */
#define DB_ECONSTRAINT (-1001)  /* unique / check / foreign key violation */
#define DB_EBUSY (-1002)
#define DB_EFULL (-1003)        /* disk full */
#define DB_EREADONLY (-1004)

/* Opens a connection to an SQLite file. flags: DB_OPEN_READONLY or 0.
 * 0 creates the file if missing. DB_OPEN_READONLY never creates it, and every
 * write on it fails with DB_EREADONLY (PRAGMA query_only; the file itself is
 * opened read-write so a WAL -shm can be created). Every connection has
 * busy_timeout 5000 ms, foreign_keys ON and extended result codes. */
#define DB_OPEN_READONLY 0x1
int db_open(const char *path, int flags, struct db **out, char *err, size_t errlen);
void db_close(struct db *db);

/* Returns the cached statement for `sql`, or NULL (error logged; see db_errmsg).
 * One SQL statement only. Parameters are $1..$999 (any subset, any order,
 * repeats allowed). The statement is the caller's until db_done(); preparing
 * the same SQL again before that (a nested query) yields a separate statement. */
struct db_stmt *db_prepare(struct db *db, const char *sql);
int db_bind_text(struct db_stmt *st, int i, const char *p, ssize_t len);  /* len < 0: strlen; p NULL binds NULL */
int db_bind_blob(struct db_stmt *st, int i, const void *p, size_t len);
int db_bind_int64(struct db_stmt *st, int i, int64_t v);
int db_bind_double(struct db_stmt *st, int i, double v);
int db_bind_null(struct db_stmt *st, int i);
int db_step(struct db_stmt *st);              /* DB_ROW, DB_DONE or a DB_E* error */
int db_col_count(struct db_stmt *st);
bool db_col_is_null(struct db_stmt *st, int col);   /* columns are 0-based */
const char *db_col_text(struct db_stmt *st, int col); /* valid until the next step/done; "" for NULL */
int64_t db_col_int64(struct db_stmt *st, int col);
double db_col_double(struct db_stmt *st, int col);
const void *db_col_blob(struct db_stmt *st, int col);
size_t db_col_bytes(struct db_stmt *st, int col);
void db_done(struct db_stmt *st);             /* reset + clear bindings; statement stays cached */

/* Runs one or more statements without parameters. 0 or DB_E*. */
int db_exec(struct db *db, const char *sql);
/* Prepare + bind text params (NULL-terminated list) + step to completion. */
int db_execp(struct db *db, const char *sql, ...) __attribute__((sentinel));
int64_t db_changes(struct db *db);
int64_t db_last_insert_id(struct db *db);
const char *db_errmsg(struct db *db);
void *db_native(struct db *db);               /* sqlite3 *, for the replication capture */

#endif
