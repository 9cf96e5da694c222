/*
 * db_sqlite — the db API (store/db.h) over SQLite 3.
 *
 * Why this file exists: callers write portable SQL with $1..$N placeholders
 * and never see sqlite3_* calls, so a PostgreSQL driver can be added later.
 * SQLite parses "$1" as a *named* parameter, so each prepared statement keeps
 * a small map from the portable index N to SQLite's parameter index for the
 * name "$N" (a statement may use $2 without $1, or $1 twice).
 *
 * Statement cache: one per connection, keyed by SQL text (FNV-1a hash table,
 * LRU list, at most DB_STMT_CACHE_MAX entries; the least recently used idle
 * statement is finalized when a new one needs room). A statement is "busy"
 * from db_prepare() to db_done(); if the same SQL is prepared again while its
 * cached copy is busy (a nested query), a transient statement is prepared that
 * db_done() finalizes, so the two never share cursor state.
 *
 * Errors: SQLite result codes become DB_E* codes; the text of the most recent
 * failure on a connection is kept for db_errmsg().
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "store/db.h"

#define DB_STMT_CACHE_MAX 256
#define DB_STMT_BUCKETS 512          /* power of two, > cache size */
#define DB_BUSY_TIMEOUT_MS 5000
#define DB_MAX_PARAM 999             /* highest $N we map */

struct db_stmt {
    struct db *db;
    sqlite3_stmt *st;
    char *sql;                        /* owned; cache key */
    uint64_t hash;
    int *map;                         /* map[N-1] = sqlite index of "$N", 0 if absent */
    int nmap;
    bool positional;                  /* no $N names: bind index = sqlite index */
    bool busy;                        /* between db_prepare and db_done */
    bool transient;                   /* not in the cache; db_done finalizes */
    struct db_stmt *hnext;            /* hash chain */
    struct db_stmt *prev, *next;      /* LRU list, head = most recent */
};

struct db {
    sqlite3 *h;
    struct db_stmt *buckets[DB_STMT_BUCKETS];
    struct db_stmt *lru_head, *lru_tail;
    size_t nstmts;
    char err[512];
};

/* ---------------------------------------------------------------- errors */

static int map_rc(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
        return 0;
    case SQLITE_CONSTRAINT:
        return DB_ECONSTRAINT;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return DB_EBUSY;
    case SQLITE_FULL:
        return DB_EFULL;
    case SQLITE_READONLY:
        return DB_EREADONLY;
    default:
        return DB_ERR;
    }
}

static void set_err(struct db *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(struct db *db, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(db->err, sizeof(db->err), fmt, ap);
    va_end(ap);
}

/* Records the connection's current error and returns its DB_E* code. */
static int fail(struct db *db, int rc)
{
    set_err(db, "%s", sqlite3_errmsg(db->h));
    return map_rc(rc);
}

const char *db_errmsg(struct db *db)
{
    return db->err;
}

/* ------------------------------------------------------------ connection */

int db_open(const char *path, int flags, struct db **out, char *err, size_t errlen)
{
    struct db *db = xcalloc(1, sizeof(*db));
    int oflags = SQLITE_OPEN_READWRITE;
    int rc;

    *out = NULL;
    /* Read-only connections still open the file read-write: a WAL database
     * may need its -shm created, which SQLITE_OPEN_READONLY cannot do.
     * PRAGMA query_only makes every write fail with SQLITE_READONLY. */
    if (!(flags & DB_OPEN_READONLY))
        oflags |= SQLITE_OPEN_CREATE;
    rc = sqlite3_open_v2(path, &db->h, oflags, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path, db->h ? sqlite3_errmsg(db->h) : sqlite3_errstr(rc));
        rc = map_rc(rc);
        goto out;
    }
    sqlite3_extended_result_codes(db->h, 1);
    sqlite3_busy_timeout(db->h, DB_BUSY_TIMEOUT_MS);
    rc = sqlite3_exec(db->h, (flags & DB_OPEN_READONLY)
                      ? "PRAGMA foreign_keys=ON; PRAGMA query_only=ON"
                      : "PRAGMA foreign_keys=ON", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(db->h));
        rc = map_rc(rc);
        goto out;
    }
    snprintf(db->err, sizeof(db->err), "not an error");
    *out = db;
    db = NULL;
    rc = 0;
out:
    if (db) {
        sqlite3_close(db->h);   /* NULL is a no-op */
        free(db);
    }
    return rc;
}

static void stmt_free(struct db_stmt *s)
{
    sqlite3_finalize(s->st);
    free(s->map);
    free(s->sql);
    free(s);
}

void db_close(struct db *db)
{
    sqlite3_stmt *leak;

    if (!db)
        return;
    for (size_t i = 0; i < DB_STMT_BUCKETS; i++) {
        struct db_stmt *s = db->buckets[i], *next;

        for (; s; s = next) {
            next = s->hnext;
            stmt_free(s);
        }
    }
    /* Transient statements never handed back through db_done are a caller
     * bug; finalize them so the connection can close. */
    while ((leak = sqlite3_next_stmt(db->h, NULL)) != NULL) {
        log_warn("db_close: statement was not released", "sql", sqlite3_sql(leak), NULL);
        sqlite3_finalize(leak);
    }
    if (sqlite3_close(db->h) != SQLITE_OK)
        log_error("db_close failed", "error", sqlite3_errmsg(db->h), NULL);
    free(db);
}

void *db_native(struct db *db)
{
    return db->h;
}

/* ------------------------------------------------------- statement cache */

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ULL;

    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

static void lru_unlink(struct db *db, struct db_stmt *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        db->lru_head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else
        db->lru_tail = s->prev;
    s->prev = s->next = NULL;
}

static void lru_push_front(struct db *db, struct db_stmt *s)
{
    s->prev = NULL;
    s->next = db->lru_head;
    if (db->lru_head)
        db->lru_head->prev = s;
    db->lru_head = s;
    if (!db->lru_tail)
        db->lru_tail = s;
}

static void cache_remove(struct db *db, struct db_stmt *s)
{
    struct db_stmt **pp = &db->buckets[s->hash & (DB_STMT_BUCKETS - 1)];

    while (*pp != s)
        pp = &(*pp)->hnext;
    *pp = s->hnext;
    lru_unlink(db, s);
    db->nstmts--;
}

/* Finalizes least recently used idle statements until there is room. Busy
 * statements are never evicted (their caller still holds the pointer). */
static void cache_make_room(struct db *db)
{
    struct db_stmt *s = db->lru_tail, *prev;

    for (; s && db->nstmts >= DB_STMT_CACHE_MAX; s = prev) {
        prev = s->prev;
        if (s->busy)
            continue;
        cache_remove(db, s);
        stmt_free(s);
    }
}

/* Builds the $N -> SQLite index map. A statement whose parameters have no
 * "$N" names (plain "?") binds positionally. */
static int build_map(struct db_stmt *s)
{
    int count = sqlite3_bind_parameter_count(s->st);
    int maxn = 0;

    s->positional = true;
    for (int i = 1; i <= count; i++) {
        const char *name = sqlite3_bind_parameter_name(s->st, i);
        char *end;
        long n;

        if (!name || name[0] != '$')
            continue;
        n = strtol(name + 1, &end, 10);
        if (name[1] < '0' || name[1] > '9' || *end || n < 1 || n > DB_MAX_PARAM) {
            set_err(s->db, "unsupported parameter name %s (use $1..$%d)", name, DB_MAX_PARAM);
            return DB_ERR;
        }
        s->positional = false;
        if (n > maxn)
            maxn = (int)n;
    }
    if (s->positional)
        return 0;
    s->nmap = maxn;
    s->map = xcalloc((size_t)maxn, sizeof(int));
    for (int i = 1; i <= count; i++) {
        const char *name = sqlite3_bind_parameter_name(s->st, i);

        if (name && name[0] == '$')
            s->map[strtol(name + 1, NULL, 10) - 1] = i;
    }
    return 0;
}

static struct db_stmt *stmt_new(struct db *db, const char *sql, uint64_t hash)
{
    struct db_stmt *s = xcalloc(1, sizeof(*s));
    const char *tail = NULL;
    int rc;

    s->db = db;
    s->hash = hash;
    rc = sqlite3_prepare_v3(db->h, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->st, &tail);
    if (rc != SQLITE_OK) {
        fail(db, rc);
        goto err;
    }
    if (!s->st) {
        set_err(db, "empty SQL statement");
        goto err;
    }
    if (tail && tail[strspn(tail, " \t\r\n;")] != '\0') {
        set_err(db, "db_prepare takes one statement; use db_exec for several");
        goto err;
    }
    if (build_map(s) != 0)
        goto err;
    s->sql = xstrdup(sql);
    return s;
err:
    log_warn("db_prepare failed", "sql", sql, "error", db->err, NULL);
    sqlite3_finalize(s->st);
    free(s->map);
    free(s);
    return NULL;
}

struct db_stmt *db_prepare(struct db *db, const char *sql)
{
    uint64_t hash = fnv1a(sql);
    struct db_stmt **bucket = &db->buckets[hash & (DB_STMT_BUCKETS - 1)];
    struct db_stmt *s;

    for (s = *bucket; s; s = s->hnext) {
        if (s->hash == hash && strcmp(s->sql, sql) == 0)
            break;
    }
    if (s && !s->busy) {
        lru_unlink(db, s);
        lru_push_front(db, s);
        s->busy = true;
        return s;
    }
    if (s) {
        /* Same SQL already in use further up the stack: private copy. */
        s = stmt_new(db, sql, hash);
        if (s) {
            s->transient = true;
            s->busy = true;
        }
        return s;
    }
    cache_make_room(db);
    s = stmt_new(db, sql, hash);
    if (!s)
        return NULL;
    s->hnext = *bucket;
    *bucket = s;
    lru_push_front(db, s);
    db->nstmts++;
    s->busy = true;
    return s;
}

void db_done(struct db_stmt *st)
{
    if (!st)
        return;
    if (st->transient) {
        stmt_free(st);
        return;
    }
    sqlite3_reset(st->st);
    sqlite3_clear_bindings(st->st);
    st->busy = false;
}

/* --------------------------------------------------------------- binding */

/* Returns SQLite's index for portable parameter i, or 0 (error recorded). */
static int param_index(struct db_stmt *st, int i)
{
    if (st->positional) {
        if (i >= 1 && i <= sqlite3_bind_parameter_count(st->st))
            return i;
    } else if (i >= 1 && i <= st->nmap && st->map[i - 1] > 0) {
        return st->map[i - 1];
    }
    set_err(st->db, "statement has no parameter $%d: %s", i, st->sql);
    return 0;
}

static int bind_result(struct db_stmt *st, int rc)
{
    return rc == SQLITE_OK ? 0 : fail(st->db, rc);
}

int db_bind_text(struct db_stmt *st, int i, const char *p, ssize_t len)
{
    int idx = param_index(st, i);

    if (!idx)
        return DB_ERR;
    if (!p)
        return bind_result(st, sqlite3_bind_null(st->st, idx));
    if (len < 0)
        len = (ssize_t)strlen(p);
    if (len > INT_MAX) {
        set_err(st->db, "text parameter too long");
        return DB_ERR;
    }
    return bind_result(st, sqlite3_bind_text(st->st, idx, p, (int)len, SQLITE_TRANSIENT));
}

int db_bind_blob(struct db_stmt *st, int i, const void *p, size_t len)
{
    int idx = param_index(st, i);

    if (!idx)
        return DB_ERR;
    if (len > INT_MAX) {
        set_err(st->db, "blob parameter too long");
        return DB_ERR;
    }
    if (!p)   /* NULL pointer binds SQL NULL, like db_bind_text */
        return bind_result(st, sqlite3_bind_null(st->st, idx));
    if (len == 0)
        return bind_result(st, sqlite3_bind_zeroblob(st->st, idx, 0));
    return bind_result(st, sqlite3_bind_blob(st->st, idx, p, (int)len, SQLITE_TRANSIENT));
}

int db_bind_int64(struct db_stmt *st, int i, int64_t v)
{
    int idx = param_index(st, i);

    return idx ? bind_result(st, sqlite3_bind_int64(st->st, idx, v)) : DB_ERR;
}

int db_bind_double(struct db_stmt *st, int i, double v)
{
    int idx = param_index(st, i);

    return idx ? bind_result(st, sqlite3_bind_double(st->st, idx, v)) : DB_ERR;
}

int db_bind_null(struct db_stmt *st, int i)
{
    int idx = param_index(st, i);

    return idx ? bind_result(st, sqlite3_bind_null(st->st, idx)) : DB_ERR;
}

/* ------------------------------------------------------ stepping, columns */

int db_step(struct db_stmt *st)
{
    int rc = sqlite3_step(st->st);

    if (rc == SQLITE_ROW)
        return DB_ROW;
    if (rc == SQLITE_DONE)
        return DB_DONE;
    return fail(st->db, rc);
}

int db_col_count(struct db_stmt *st)
{
    return sqlite3_column_count(st->st);
}

bool db_col_is_null(struct db_stmt *st, int col)
{
    return sqlite3_column_type(st->st, col) == SQLITE_NULL;
}

const char *db_col_text(struct db_stmt *st, int col)
{
    const unsigned char *p = sqlite3_column_text(st->st, col);

    return p ? (const char *)p : "";
}

int64_t db_col_int64(struct db_stmt *st, int col)
{
    return sqlite3_column_int64(st->st, col);
}

double db_col_double(struct db_stmt *st, int col)
{
    return sqlite3_column_double(st->st, col);
}

const void *db_col_blob(struct db_stmt *st, int col)
{
    return sqlite3_column_blob(st->st, col);
}

size_t db_col_bytes(struct db_stmt *st, int col)
{
    return (size_t)sqlite3_column_bytes(st->st, col);
}

/* ------------------------------------------------------------ one-liners */

int db_exec(struct db *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db->h, sql, NULL, NULL, &msg);

    if (rc != SQLITE_OK) {
        set_err(db, "%s", msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return map_rc(rc);
    }
    return 0;
}

int db_execp(struct db *db, const char *sql, ...)
{
    struct db_stmt *st = db_prepare(db, sql);
    const char *p;
    va_list ap;
    int rc = 0, i = 1;

    if (!st)
        return DB_ERR;
    va_start(ap, sql);
    while ((p = va_arg(ap, const char *)) != NULL) {
        rc = db_bind_text(st, i++, p, -1);
        if (rc != 0)
            break;
    }
    va_end(ap);
    if (rc != 0)
        goto out;
    do
        rc = db_step(st);
    while (rc == DB_ROW);
out:
    db_done(st);
    return rc;
}

int64_t db_changes(struct db *db)
{
    return sqlite3_changes64(db->h);
}

int64_t db_last_insert_id(struct db *db)
{
    return sqlite3_last_insert_rowid(db->h);
}
