/*
 * test_store_schema — the migrations and the table registry agree with the
 * database they build: every table is registered with a replication class,
 * every registered table exists, and every table has a NOT NULL primary key
 * (the session extension ignores tables without one).
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

#define SQLITE_ENABLE_SESSION 1
#define SQLITE_ENABLE_PREUPDATE_HOOK 1
#include <sqlite3.h>

#include "store/store.h"

struct fixture {
    char dir[512];
    char path[600];
    struct store *s;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct store_opts o = { 0 };
    char err[256];

    test_tmpdir(f->dir, sizeof(f->dir), "store-schema");
    snprintf(f->path, sizeof(f->path), "%s/refuge.db", f->dir);
    o.path = f->path;
    assert_int_equal(store_open(&o, &f->s, err, sizeof(err)), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    store_close(f->s);
    test_rmtree(f->dir);
    free(f);
    return 0;
}

static const struct store_table *find_table(const char *name)
{
    size_t n;
    const struct store_table *t = store_tables(&n);

    for (size_t i = 0; i < n; i++) {
        if (strcmp(t[i].name, name) == 0)
            return &t[i];
    }
    return NULL;
}

static int64_t query_count(struct db *db, const char *sql)
{
    struct db_stmt *st = db_prepare(db, sql);
    int64_t v;

    assert_non_null(st);
    assert_int_equal(db_step(st), DB_ROW);
    v = db_col_int64(st, 0);
    db_done(st);
    return v;
}

static bool table_exists(struct db *db, const char *name)
{
    struct db_stmt *st = db_prepare(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = $1");
    bool found;

    assert_non_null(st);
    assert_int_equal(db_bind_text(st, 1, name, -1), 0);
    found = db_step(st) == DB_ROW;
    db_done(st);
    return found;
}

static void test_every_table_registered(void **state)
{
    struct fixture *f = *state;
    struct db *db = store_reader(f->s);
    struct db_stmt *st;
    int seen = 0, rc;

    assert_non_null(db);
    st = db_prepare(db, "SELECT name FROM sqlite_master WHERE type = 'table'"
                        " AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name");
    assert_non_null(st);
    while ((rc = db_step(st)) == DB_ROW) {
        const char *name = db_col_text(st, 0);

        if (!find_table(name))
            fail_msg("table %s is not in the registry (store_tables)", name);
        seen++;
    }
    assert_int_equal(rc, DB_DONE);
    db_done(st);
    assert_true(seen >= 17);
}

static void test_every_registered_table_exists(void **state)
{
    struct fixture *f = *state;
    struct db *db = store_reader(f->s);
    size_t n;
    const struct store_table *t = store_tables(&n);

    assert_true(n >= 17);
    for (size_t i = 0; i < n; i++) {
        if (!table_exists(db, t[i].name))
            fail_msg("registered table %s does not exist", t[i].name);
        for (size_t k = 0; k < i; k++)
            assert_string_not_equal(t[k].name, t[i].name);      /* no duplicates */
    }
}

/* Every table has a primary key; for replicated tables that is required,
 * and every primary-key column is declared NOT NULL. */
static void test_primary_keys(void **state)
{
    struct fixture *f = *state;
    struct db *db = store_reader(f->s);
    size_t n;
    const struct store_table *t = store_tables(&n);

    for (size_t i = 0; i < n; i++) {
        struct db_stmt *st = db_prepare(db, "SELECT name, \"notnull\", pk FROM pragma_table_info($1)");
        int pk_cols = 0, cols = 0;

        assert_non_null(st);
        assert_int_equal(db_bind_text(st, 1, t[i].name, -1), 0);
        while (db_step(st) == DB_ROW) {
            cols++;
            if (db_col_int64(st, 2) > 0) {
                pk_cols++;
                if (db_col_int64(st, 1) != 1)
                    fail_msg("%s.%s is in the primary key but nullable", t[i].name,
                             db_col_text(st, 0));
            }
        }
        db_done(st);
        assert_true(cols > 0);
        if (t[i].cls != REPL_LOCAL && pk_cols == 0)
            fail_msg("replicated table %s (%s) has no PRIMARY KEY", t[i].name,
                     repl_class_name(t[i].cls));
        if (pk_cols == 0)
            fail_msg("table %s has no PRIMARY KEY", t[i].name);
    }
}

static void test_classes(void **state)
{
    static const struct { const char *name; enum repl_class cls; } want[] = {
        { "node_state", REPL_LOCAL }, { "tenants", REPL_CONFIG }, { "clients", REPL_CONFIG },
        { "signing_keys", REPL_CONFIG }, { "artifacts", REPL_CONFIG },
        { "users", REPL_IDENTITY }, { "user_emails", REPL_IDENTITY },
        { "groups", REPL_IDENTITY }, { "group_members", REPL_IDENTITY },
        { "refresh_tokens", REPL_TOKENS }, { "opaque_tokens", REPL_TOKENS },
        { "revoked_jtis", REPL_TOKENS }, { "auth_codes", REPL_TOKENS },
        { "sso_sessions", REPL_SESSIONS }, { "repl_log", REPL_LOCAL },
        { "repl_state", REPL_LOCAL }, { "epoch_history", REPL_LOCAL },
    };

    (void)state;
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        const struct store_table *t = find_table(want[i].name);

        if (!t)
            fail_msg("%s missing from the registry", want[i].name);
        assert_int_equal(t->cls, want[i].cls);
    }
    assert_string_equal(repl_class_name(REPL_LOCAL), "local");
    assert_string_equal(repl_class_name(REPL_CONFIG), "config");
    assert_string_equal(repl_class_name(REPL_IDENTITY), "identity");
    assert_string_equal(repl_class_name(REPL_TOKENS), "tokens");
    assert_string_equal(repl_class_name(REPL_SESSIONS), "sessions");
}

static void test_user_version(void **state)
{
    struct fixture *f = *state;
    struct db_stmt *st = db_prepare(store_reader(f->s), "PRAGMA user_version");

    assert_true(store_schema_version_latest() >= 1);
    assert_int_equal(db_step(st), DB_ROW);
    assert_int_equal(db_col_int64(st, 0), store_schema_version_latest());
    db_done(st);
}

/* ------------------------------------------------ constraints the layers use */

static int insert_rows(struct db *db, void *arg)
{
    const char *const *sql = arg;
    int rc = 0;

    for (; *sql && rc == 0; sql++)
        rc = db_exec(db, *sql);
    return rc;
}

static int run(struct store *s, const char *sql)
{
    const char *list[] = { sql, NULL };

    return store_write(s, insert_rows, (void *)list);
}

static void test_constraints(void **state)
{
    struct fixture *f = *state;
    struct store *s = f->s;

    assert_int_equal(run(s, "INSERT INTO tenants (name, display_name, created_at, updated_at)"
                            " VALUES ('default', 'Default', 1, 1)"), 0);
    assert_int_equal(run(s, "INSERT INTO tenants (name, display_name, created_at, updated_at)"
                            " VALUES ('default', 'Again', 1, 1)"), DB_ECONSTRAINT);
    assert_int_equal(run(s, "INSERT INTO tenants (name, display_name, created_at, updated_at)"
                            " VALUES (NULL, 'Null', 1, 1)"), DB_ECONSTRAINT);
    /* clients.type and token_format are checked */
    assert_int_equal(run(s, "INSERT INTO clients (tenant, client_id, type, created_at, updated_at)"
                            " VALUES ('default', 'c1', 'confidential', 1, 1)"), 0);
    assert_int_equal(run(s, "INSERT INTO clients (tenant, client_id, type, created_at, updated_at)"
                            " VALUES ('default', 'c2', 'secret', 1, 1)"), DB_ECONSTRAINT);
    assert_int_equal(run(s, "INSERT INTO clients (tenant, client_id, type, token_format, created_at,"
                            " updated_at) VALUES ('default', 'c3', 'public', 'saml', 1, 1)"),
                     DB_ECONSTRAINT);
    /* user names are unique per tenant through user_name_lc */
    assert_int_equal(run(s, "INSERT INTO users (tenant, id, user_name, user_name_lc, created_at,"
                            " updated_at) VALUES ('default', 'u1', 'Alice', 'alice', 1, 1)"), 0);
    assert_int_equal(run(s, "INSERT INTO users (tenant, id, user_name, user_name_lc, created_at,"
                            " updated_at) VALUES ('default', 'u2', 'ALICE', 'alice', 1, 1)"),
                     DB_ECONSTRAINT);
    assert_int_equal(run(s, "INSERT INTO users (tenant, id, user_name, user_name_lc, created_at,"
                            " updated_at) VALUES ('other', 'u2', 'ALICE', 'alice', 1, 1)"), 0);
    /* refresh token status */
    assert_int_equal(run(s, "INSERT INTO refresh_tokens (token_hash, tenant, client_id, family_id,"
                            " status, issued_at, expires_at) VALUES ('h', 'default', 'c1', 'f',"
                            " 'stolen', 1, 2)"), DB_ECONSTRAINT);
    /* repl_log.lsn is the rowid: dense integers */
    assert_int_equal(run(s, "INSERT INTO repl_log (epoch, lsn, commit_us, hash, changeset)"
                            " VALUES (1, 1, 5, x'00', x'')"), 0);
    assert_int_equal(run(s, "INSERT INTO repl_log (epoch, lsn, commit_us, hash, changeset)"
                            " VALUES (1, 1, 5, x'00', x'')"), DB_ECONSTRAINT);
}

/* The indexes the identity and token layers rely on exist. */
static void test_indexes(void **state)
{
    struct fixture *f = *state;
    struct db *db = store_reader(f->s);
    static const char *const want[][2] = {
        { "users", "external_id" }, { "user_emails", "value_lc" },
        { "group_members", "member_id" }, { "refresh_tokens", "family_id" },
        { "refresh_tokens", "expires_at" }, { "opaque_tokens", "expires_at" },
        { "revoked_jtis", "expires_at" }, { "sso_sessions", "user_id" },
    };

    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        struct db_stmt *st = db_prepare(db,
            "SELECT count(*) FROM pragma_index_list($1) AS il, pragma_index_info(il.name) AS ii"
            " WHERE ii.name = $2");

        assert_int_equal(db_bind_text(st, 1, want[i][0], -1), 0);
        assert_int_equal(db_bind_text(st, 2, want[i][1], -1), 0);
        assert_int_equal(db_step(st), DB_ROW);
        if (db_col_int64(st, 0) < 1)
            fail_msg("no index on %s(%s)", want[i][0], want[i][1]);
        db_done(st);
    }
}

/* --------------------------------------------- the session extension sees it */

/* One valid row per replicated table. A new replicated table needs a line
 * here, or the test below fails and says so. */
static const char *const sample_rows[][2] = {
    { "tenants", "INSERT INTO tenants (name, display_name, created_at, updated_at)"
                 " VALUES ('t', 'T', 1, 1)" },
    { "clients", "INSERT INTO clients (tenant, client_id, type, created_at, updated_at)"
                 " VALUES ('t', 'c', 'public', 1, 1)" },
    { "signing_keys", "INSERT INTO signing_keys (tenant, kid, alg, public_jwk, private_enc,"
                      " created_at) VALUES ('t', 'k', 'ES256', '{}', x'00', 1)" },
    { "artifacts", "INSERT INTO artifacts (path, content, sha256, updated_at)"
                   " VALUES ('tenants/t.conf', x'00', 'ab', 1)" },
    { "users", "INSERT INTO users (tenant, id, user_name, user_name_lc, created_at, updated_at)"
               " VALUES ('t', 'u', 'U', 'u', 1, 1)" },
    { "user_emails", "INSERT INTO user_emails (tenant, user_id, value_lc)"
                     " VALUES ('t', 'u', 'u@example.com')" },
    { "groups", "INSERT INTO groups (tenant, id, display_name, display_name_lc, created_at,"
                " updated_at) VALUES ('t', 'g', 'G', 'g', 1, 1)" },
    { "group_members", "INSERT INTO group_members (tenant, group_id, member_id)"
                       " VALUES ('t', 'g', 'u')" },
    { "refresh_tokens", "INSERT INTO refresh_tokens (token_hash, tenant, client_id, family_id,"
                        " issued_at, expires_at) VALUES ('h', 't', 'c', 'f', 1, 2)" },
    { "opaque_tokens", "INSERT INTO opaque_tokens (token_hash, tenant, client_id, issued_at,"
                       " expires_at) VALUES ('h', 't', 'c', 1, 2)" },
    { "revoked_jtis", "INSERT INTO revoked_jtis (jti, tenant, expires_at) VALUES ('j', 't', 2)" },
    { "auth_codes", "INSERT INTO auth_codes (code_hash, tenant, client_id, user_id, redirect_uri,"
                    " auth_time, expires_at) VALUES ('h', 't', 'c', 'u', 'https://a/cb', 1, 2)" },
    { "sso_sessions", "INSERT INTO sso_sessions (id_hash, tenant, user_id, auth_time, created_at,"
                      " expires_at, last_seen) VALUES ('h', 't', 'u', 1, 1, 2, 1)" },
};

struct capture {
    char tables[64][64];
    int n;
};

static int capture_job(struct db *db, void *arg)
{
    struct capture *cap = arg;
    sqlite3 *h = db_native(db);
    sqlite3_session *sess = NULL;
    sqlite3_changeset_iter *it = NULL;
    void *cs = NULL;
    int ncs = 0, rc;
    size_t n;
    const struct store_table *t = store_tables(&n);

    assert_int_equal(sqlite3session_create(h, "main", &sess), SQLITE_OK);
    assert_int_equal(sqlite3session_attach(sess, NULL), SQLITE_OK);   /* every table */
    for (size_t i = 0; i < n; i++) {
        size_t k;

        if (t[i].cls == REPL_LOCAL)
            continue;
        for (k = 0; k < sizeof(sample_rows) / sizeof(sample_rows[0]); k++) {
            if (strcmp(sample_rows[k][0], t[i].name) == 0)
                break;
        }
        if (k == sizeof(sample_rows) / sizeof(sample_rows[0]))
            fail_msg("no sample row for replicated table %s in this test", t[i].name);
        rc = db_exec(db, sample_rows[k][1]);
        if (rc != 0)
            fail_msg("%s: %s", sample_rows[k][1], db_errmsg(db));
    }
    assert_int_equal(sqlite3session_changeset(sess, &ncs, &cs), SQLITE_OK);
    assert_int_equal(sqlite3changeset_start(&it, ncs, cs), SQLITE_OK);
    while (sqlite3changeset_next(it) == SQLITE_ROW) {
        const char *name;
        int ncol, op, ind;

        assert_int_equal(sqlite3changeset_op(it, &name, &ncol, &op, &ind), SQLITE_OK);
        assert_int_equal(op, SQLITE_INSERT);
        if (cap->n < 64)
            snprintf(cap->tables[cap->n++], sizeof(cap->tables[0]), "%s", name);
    }
    sqlite3changeset_finalize(it);
    sqlite3_free(cs);
    sqlite3session_delete(sess);
    return -ECANCELED;     /* roll the sample rows back */
}

static void test_session_captures_replicated_tables(void **state)
{
    struct fixture *f = *state;
    struct capture cap = { .n = 0 };
    size_t n;
    const struct store_table *t = store_tables(&n);

    assert_int_equal(store_write(f->s, capture_job, &cap), -ECANCELED);
    for (size_t i = 0; i < n; i++) {
        bool seen = false;

        for (int k = 0; k < cap.n; k++)
            seen = seen || strcmp(cap.tables[k], t[i].name) == 0;
        if (t[i].cls != REPL_LOCAL && !seen)
            fail_msg("the session extension did not capture %s", t[i].name);
    }
    assert_int_equal(query_count(store_reader(f->s), "SELECT count(*) FROM tenants"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_every_table_registered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_registered_table_exists, setup, teardown),
        cmocka_unit_test_setup_teardown(test_primary_keys, setup, teardown),
        cmocka_unit_test(test_classes),
        cmocka_unit_test_setup_teardown(test_user_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_constraints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_indexes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_captures_replicated_tables, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
