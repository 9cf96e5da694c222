/*
 * test_store_db — the db API over SQLite: $N placeholders, the statement
 * cache, types, and the mapping of SQLite errors to DB_E* codes.
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"
#include <sqlite3.h>

#include "store/db.h"

struct fixture {
    char dir[512];
    char path[600];
    struct db *db;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char err[256];

    test_tmpdir(f->dir, sizeof(f->dir), "store-db");
    snprintf(f->path, sizeof(f->path), "%s/test.db", f->dir);
    assert_int_equal(db_open(f->path, 0, &f->db, err, sizeof(err)), 0);
    assert_int_equal(db_exec(f->db, "CREATE TABLE t (a TEXT, b TEXT, c INTEGER);"
                                    "CREATE TABLE u (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
                                    "  kind TEXT CHECK (kind IN ('x', 'y')))"), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    db_close(f->db);
    test_rmtree(f->dir);
    free(f);
    return 0;
}

static int64_t count_rows(struct db *db, const char *sql)
{
    struct db_stmt *st = db_prepare(db, sql);
    int64_t n;

    assert_non_null(st);
    assert_int_equal(db_step(st), DB_ROW);
    n = db_col_int64(st, 0);
    db_done(st);
    return n;
}

/* ------------------------------------------------------------ placeholders */

static void test_placeholders_in_order(void **state)
{
    struct fixture *f = *state;
    struct db_stmt *st = db_prepare(f->db, "INSERT INTO t (a, b, c) VALUES ($1, $2, $3)");

    assert_non_null(st);
    assert_int_equal(db_bind_text(st, 1, "one", -1), 0);
    assert_int_equal(db_bind_text(st, 2, "twoXXX", 3), 0);   /* explicit length */
    assert_int_equal(db_bind_int64(st, 3, 42), 0);
    assert_int_equal(db_step(st), DB_DONE);
    db_done(st);
    assert_int_equal(db_changes(f->db), 1);

    st = db_prepare(f->db, "SELECT a, b, c FROM t");
    assert_int_equal(db_step(st), DB_ROW);
    assert_int_equal(db_col_count(st), 3);
    assert_string_equal(db_col_text(st, 0), "one");
    assert_string_equal(db_col_text(st, 1), "two");
    assert_int_equal(db_col_int64(st, 2), 42);
    assert_int_equal(db_step(st), DB_DONE);
    db_done(st);
}

static void test_placeholders_out_of_order(void **state)
{
    struct fixture *f = *state;
    struct db_stmt *st = db_prepare(f->db, "INSERT INTO t (a, b, c) VALUES ($3, $1, $2)");

    assert_non_null(st);
    /* bind in yet another order */
    assert_int_equal(db_bind_int64(st, 2, 7), 0);
    assert_int_equal(db_bind_text(st, 3, "A", -1), 0);
    assert_int_equal(db_bind_text(st, 1, "B", -1), 0);
    assert_int_equal(db_step(st), DB_DONE);
    db_done(st);

    st = db_prepare(f->db, "SELECT a, b, c FROM t");
    assert_int_equal(db_step(st), DB_ROW);
    assert_string_equal(db_col_text(st, 0), "A");
    assert_string_equal(db_col_text(st, 1), "B");
    assert_int_equal(db_col_int64(st, 2), 7);
    db_done(st);
}

static void test_placeholder_reused(void **state)
{
    struct fixture *f = *state;
    struct db_stmt *st;

    assert_int_equal(db_execp(f->db, "INSERT INTO t (a, b) VALUES ($1, $2)", "x", "y", NULL), 0);
    assert_int_equal(db_execp(f->db, "INSERT INTO t (a, b) VALUES ($1, $2)", "z", "x", NULL), 0);
    assert_int_equal(db_execp(f->db, "INSERT INTO t (a, b) VALUES ($1, $2)", "q", "q", NULL), 0);

    /* $1 twice: one binding serves both uses */
    st = db_prepare(f->db, "SELECT count(*) FROM t WHERE a = $1 OR b = $1");
    assert_int_equal(db_bind_text(st, 1, "x", -1), 0);
    assert_int_equal(db_step(st), DB_ROW);
    assert_int_equal(db_col_int64(st, 0), 2);
    db_done(st);

    /* a value written through $1 twice in one row */
    assert_int_equal(db_execp(f->db, "INSERT INTO t (a, b) VALUES ($1, $1)", "dup", NULL), 0);
    assert_int_equal(count_rows(f->db, "SELECT count(*) FROM t WHERE a = 'dup' AND b = 'dup'"), 1);
}

static void test_placeholder_gap(void **state)
{
    struct fixture *f = *state;
    struct db_stmt *st;

    assert_int_equal(db_execp(f->db, "INSERT INTO t (a, b) VALUES ($1, $2)", "k", "v", NULL), 0);
    /* uses $2 but not $1 */
    st = db_prepare(f->db, "SELECT a FROM t WHERE b = $2");
    assert_non_null(st);
    assert_int_equal(db_bind_text(st, 2, "v", -1), 0);
    assert_int_equal(db_bind_text(st, 1, "nope", -1), DB_ERR);   /* $1 is absent */
    assert_non_null(strstr(db_errmsg(f->db), "$1"));
    assert_int_equal(db_bind_text(st, 3, "nope", -1), DB_ERR);
    assert_int_equal(db_step(st), DB_ROW);
    assert_string_equal(db_col_text(st, 0), "k");
    db_done(st);
}

static void test_bind_types(void **state)
{
    struct fixture *f = *state;
    static const unsigned char blob[] = { 0, 1, 2, 0xff, 0 };
    struct db_stmt *st;

    assert_int_equal(db_exec(f->db, "CREATE TABLE v (i INTEGER, d REAL, b BLOB, n TEXT, e BLOB)"), 0);
    st = db_prepare(f->db, "INSERT INTO v VALUES ($1, $2, $3, $4, $5)");
    assert_int_equal(db_bind_int64(st, 1, INT64_MIN), 0);
    assert_int_equal(db_bind_double(st, 2, 2.5), 0);
    assert_int_equal(db_bind_blob(st, 3, blob, sizeof(blob)), 0);
    assert_int_equal(db_bind_null(st, 4), 0);
    assert_int_equal(db_bind_blob(st, 5, blob, 0), 0);         /* empty, not NULL */
    assert_int_equal(db_step(st), DB_DONE);
    db_done(st);
    assert_int_equal(db_last_insert_id(f->db), 1);

    st = db_prepare(f->db, "INSERT INTO v (n) VALUES ($1)");
    assert_int_equal(db_bind_text(st, 1, NULL, -1), 0);        /* NULL pointer -> SQL NULL */
    assert_int_equal(db_step(st), DB_DONE);
    db_done(st);
    assert_int_equal(db_last_insert_id(f->db), 2);

    st = db_prepare(f->db, "SELECT i, d, b, n, e, typeof(e) FROM v ORDER BY rowid");
    assert_int_equal(db_step(st), DB_ROW);
    assert_true(db_col_int64(st, 0) == INT64_MIN);
    assert_true(db_col_double(st, 1) == 2.5);
    assert_int_equal(db_col_bytes(st, 2), sizeof(blob));
    assert_memory_equal(db_col_blob(st, 2), blob, sizeof(blob));
    assert_true(db_col_is_null(st, 3));
    assert_string_equal(db_col_text(st, 3), "");               /* "" for NULL */
    assert_false(db_col_is_null(st, 4));
    assert_int_equal(db_col_bytes(st, 4), 0);
    assert_string_equal(db_col_text(st, 5), "blob");
    assert_int_equal(db_step(st), DB_ROW);
    assert_true(db_col_is_null(st, 3));
    assert_false(db_col_is_null(st, 3) && !db_col_is_null(st, 0));
    assert_int_equal(db_step(st), DB_DONE);
    db_done(st);
}

/* A cached statement comes back unbound: values of the last use do not leak. */
static void test_done_clears_bindings(void **state)
{
    struct fixture *f = *state;
    const char *sql = "SELECT $1 IS NULL";
    struct db_stmt *st = db_prepare(f->db, sql);

    assert_int_equal(db_bind_text(st, 1, "x", -1), 0);
    assert_int_equal(db_step(st), DB_ROW);
    assert_int_equal(db_col_int64(st, 0), 0);
    db_done(st);
    st = db_prepare(f->db, sql);
    assert_int_equal(db_step(st), DB_ROW);
    assert_int_equal(db_col_int64(st, 0), 1);
    db_done(st);
}

/* ---------------------------------------------------------- statement cache */

static int count_native_stmts(struct db *db)
{
    sqlite3 *h = db_native(db);
    sqlite3_stmt *s = NULL;
    int n = 0;

    while ((s = sqlite3_next_stmt(h, s)) != NULL)
        n++;
    return n;
}

static void test_cache_reuse(void **state)
{
    struct fixture *f = *state;
    const char *sql = "SELECT count(*) FROM t WHERE a = $1";
    struct db_stmt *a, *b;
    int before;

    a = db_prepare(f->db, sql);
    assert_non_null(a);
    db_done(a);
    before = count_native_stmts(f->db);
    b = db_prepare(f->db, sql);
    assert_ptr_equal(a, b);                       /* same cached statement */
    assert_int_equal(count_native_stmts(f->db), before);
    db_done(b);
    /* identical text with different whitespace is another statement */
    b = db_prepare(f->db, "SELECT count(*) FROM t WHERE a =  $1");
    assert_ptr_not_equal(a, b);
    db_done(b);
}

/* Preparing the same SQL while its cached copy is in use gives a private
 * statement, so a nested query does not reset the outer cursor. */
static void test_cache_nested_same_sql(void **state)
{
    struct fixture *f = *state;
    const char *sql = "SELECT a FROM t WHERE c >= $1 ORDER BY c";
    struct db_stmt *outer, *inner;
    int rows = 0;

    for (int i = 0; i < 5; i++) {
        char a[16], c[16];

        snprintf(a, sizeof(a), "r%d", i);
        snprintf(c, sizeof(c), "%d", i);
        assert_int_equal(db_execp(f->db, "INSERT INTO t (a, c) VALUES ($1, $2)", a, c, NULL), 0);
    }
    outer = db_prepare(f->db, sql);
    assert_int_equal(db_bind_int64(outer, 1, 0), 0);
    while (db_step(outer) == DB_ROW) {
        char want[16];

        snprintf(want, sizeof(want), "r%d", rows);
        assert_string_equal(db_col_text(outer, 0), want);
        inner = db_prepare(f->db, sql);
        assert_non_null(inner);
        assert_ptr_not_equal(inner, outer);
        assert_int_equal(db_bind_int64(inner, 1, 4), 0);
        assert_int_equal(db_step(inner), DB_ROW);
        assert_string_equal(db_col_text(inner, 0), "r4");
        db_done(inner);
        rows++;
    }
    assert_int_equal(rows, 5);
    db_done(outer);
    /* the cached one is reusable afterwards */
    assert_ptr_equal(db_prepare(f->db, sql), outer);
    db_done(outer);
}

static void test_cache_bounded_eviction(void **state)
{
    struct fixture *f = *state;
    struct db_stmt *held, *st;
    char sql[64];

    /* a statement in use (mid-iteration) must survive eviction pressure */
    assert_int_equal(db_execp(f->db, "INSERT INTO t (a) VALUES ($1)", "one", NULL), 0);
    assert_int_equal(db_execp(f->db, "INSERT INTO t (a) VALUES ($1)", "two", NULL), 0);
    held = db_prepare(f->db, "SELECT a FROM t ORDER BY rowid");
    assert_int_equal(db_step(held), DB_ROW);
    assert_string_equal(db_col_text(held, 0), "one");

    for (int i = 0; i < 600; i++) {
        snprintf(sql, sizeof(sql), "SELECT %d + $1", i);
        st = db_prepare(f->db, sql);
        assert_non_null(st);
        assert_int_equal(db_bind_int64(st, 1, 1000), 0);
        assert_int_equal(db_step(st), DB_ROW);
        assert_int_equal(db_col_int64(st, 0), 1000 + i);
        db_done(st);
        assert_true(count_native_stmts(f->db) <= 256 + 1);
    }
    assert_int_equal(db_step(held), DB_ROW);
    assert_string_equal(db_col_text(held, 0), "two");
    assert_int_equal(db_step(held), DB_DONE);
    db_done(held);

    /* an evicted statement is simply prepared again */
    st = db_prepare(f->db, "SELECT 0 + $1");
    assert_non_null(st);
    assert_int_equal(db_bind_int64(st, 1, 5), 0);
    assert_int_equal(db_step(st), DB_ROW);
    assert_int_equal(db_col_int64(st, 0), 5);
    db_done(st);
}

/* ----------------------------------------------------------------- errors */

static void test_error_unique(void **state)
{
    struct fixture *f = *state;
    struct db_stmt *st;

    assert_int_equal(db_execp(f->db, "INSERT INTO u (name) VALUES ($1)", "alice", NULL), 0);
    assert_int_equal(db_execp(f->db, "INSERT INTO u (name) VALUES ($1)", "alice", NULL), DB_ECONSTRAINT);
    assert_non_null(strstr(db_errmsg(f->db), "UNIQUE"));
    /* also through prepare/step; the statement is usable after db_done */
    st = db_prepare(f->db, "INSERT INTO u (name) VALUES ($1)");
    assert_int_equal(db_bind_text(st, 1, "alice", -1), 0);
    assert_int_equal(db_step(st), DB_ECONSTRAINT);
    db_done(st);
    st = db_prepare(f->db, "INSERT INTO u (name) VALUES ($1)");
    assert_int_equal(db_bind_text(st, 1, "bob", -1), 0);
    assert_int_equal(db_step(st), DB_DONE);
    db_done(st);
    assert_int_equal(count_rows(f->db, "SELECT count(*) FROM u"), 2);
}

static void test_error_check_notnull(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(db_execp(f->db, "INSERT INTO u (name, kind) VALUES ($1, $2)", "c", "z", NULL),
                     DB_ECONSTRAINT);
    assert_non_null(strstr(db_errmsg(f->db), "CHECK"));
    assert_int_equal(db_exec(f->db, "INSERT INTO u (name) VALUES (NULL)"), DB_ECONSTRAINT);
    assert_non_null(strstr(db_errmsg(f->db), "NOT NULL"));
}

static void test_error_syntax(void **state)
{
    struct fixture *f = *state;

    assert_null(db_prepare(f->db, "SELEKT 1"));
    assert_non_null(strstr(db_errmsg(f->db), "syntax"));
    assert_null(db_prepare(f->db, "SELECT * FROM no_such_table"));
    assert_non_null(strstr(db_errmsg(f->db), "no_such_table"));
    assert_null(db_prepare(f->db, "SELECT 1; SELECT 2"));     /* one statement only */
    assert_null(db_prepare(f->db, "SELECT $abc"));            /* not a portable placeholder */
    assert_int_equal(db_exec(f->db, "CREATE TABLE"), DB_ERR);
    assert_int_equal(db_execp(f->db, "SELEKT $1", "x", NULL), DB_ERR);
    /* a statement with too few parameters for the values given */
    assert_int_equal(db_execp(f->db, "INSERT INTO t (a) VALUES ($1)", "x", "y", NULL), DB_ERR);
    assert_int_equal(count_rows(f->db, "SELECT count(*) FROM t"), 0);
}

static void test_error_busy(void **state)
{
    struct fixture *f = *state;
    struct db *other;
    char err[256];

    assert_int_equal(db_exec(f->db, "PRAGMA journal_mode=WAL"), 0);
    assert_int_equal(db_open(f->path, 0, &other, err, sizeof(err)), 0);
    sqlite3_busy_timeout(db_native(other), 0);                  /* don't wait 5 s */
    assert_int_equal(db_exec(f->db, "BEGIN IMMEDIATE"), 0);
    assert_int_equal(db_execp(other, "INSERT INTO t (a) VALUES ($1)", "x", NULL), DB_EBUSY);
    assert_int_equal(db_exec(other, "BEGIN IMMEDIATE"), DB_EBUSY);
    assert_int_equal(db_exec(f->db, "COMMIT"), 0);
    assert_int_equal(db_execp(other, "INSERT INTO t (a) VALUES ($1)", "x", NULL), 0);
    db_close(other);
}

static void test_error_readonly(void **state)
{
    struct fixture *f = *state;
    struct db *ro;
    char err[256];

    assert_int_equal(db_execp(f->db, "INSERT INTO t (a) VALUES ($1)", "seen", NULL), 0);
    assert_int_equal(db_open(f->path, DB_OPEN_READONLY, &ro, err, sizeof(err)), 0);
    assert_int_equal(count_rows(ro, "SELECT count(*) FROM t WHERE a = 'seen'"), 1);
    assert_int_equal(db_execp(ro, "INSERT INTO t (a) VALUES ($1)", "x", NULL), DB_EREADONLY);
    assert_int_equal(db_exec(ro, "DELETE FROM t"), DB_EREADONLY);
    db_close(ro);
    assert_int_equal(count_rows(f->db, "SELECT count(*) FROM t"), 1);
}

static void test_error_full(void **state)
{
    struct fixture *f = *state;
    struct db_stmt *st;
    static char big[64 * 1024];
    int rc = 0;

    memset(big, 'x', sizeof(big) - 1);
    assert_int_equal(db_exec(f->db, "PRAGMA max_page_count = 20"), 0);
    st = db_prepare(f->db, "INSERT INTO t (a) VALUES ($1)");
    for (int i = 0; i < 100 && rc == 0; i++) {
        assert_int_equal(db_bind_text(st, 1, big, -1), 0);
        rc = db_step(st);
        db_done(st);
        if (rc == DB_DONE)
            rc = 0;
    }
    assert_int_equal(rc, DB_EFULL);
}

static void test_open_errors(void **state)
{
    struct fixture *f = *state;
    struct db *db = (struct db *)&db;
    char err[256] = "";
    char path[700];

    snprintf(path, sizeof(path), "%s/no/such/dir/x.db", f->dir);
    assert_int_not_equal(db_open(path, 0, &db, err, sizeof(err)), 0);
    assert_null(db);
    assert_non_null(strstr(err, path));

    /* read-only never creates */
    snprintf(path, sizeof(path), "%s/absent.db", f->dir);
    err[0] = '\0';
    assert_int_not_equal(db_open(path, DB_OPEN_READONLY, &db, err, sizeof(err)), 0);
    assert_null(db);
    assert_true(err[0] != '\0');
    assert_int_equal(access(path, F_OK), -1);
}

static void test_foreign_keys_on(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(db_exec(f->db, "CREATE TABLE p (id INTEGER PRIMARY KEY);"
                                    "CREATE TABLE ch (pid INTEGER REFERENCES p(id))"), 0);
    assert_int_equal(db_exec(f->db, "INSERT INTO ch VALUES (1)"), DB_ECONSTRAINT);
    assert_non_null(strstr(db_errmsg(f->db), "FOREIGN KEY"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_placeholders_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_placeholders_out_of_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_placeholder_reused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_placeholder_gap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bind_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_done_clears_bindings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_nested_same_sql, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_bounded_eviction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_unique, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_check_notnull, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_syntax, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_readonly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_keys_on, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
