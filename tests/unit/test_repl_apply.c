/*
 * test_repl_apply — capture on one temporary store, apply on another: the
 * replicated tables end identical row by row, the standby's log equals the
 * active's, and every refusal (re-delivery, gap, chain mismatch, lower epoch,
 * conflict, unknown table) leaves the standby exactly as it was before the
 * refused record, with the records before it applied.
 */
#define SQLITE_ENABLE_SESSION 1
#define SQLITE_ENABLE_PREUPDATE_HOOK 1
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

#include "core/buf.h"
#include "core/timeutil.h"
#include "core/xmalloc.h"
#include "repl/apply.h"
#include "repl/capture.h"
#include "repl/log.h"
#include "repl/rewind.h"
#include "repl/snapshot.h"
#include "store/store.h"
#include <jansson.h>

struct side {
    char path[700];
    struct refuge_conf conf;
    struct node node;
    struct store *s;
};

struct fixture {
    char dir[512];
    struct side a, b;            /* a: active with capture, b: standby */
    struct repl_capture *cap;
};

static void open_side(struct fixture *f, struct side *s, const char *name, int role)
{
    struct store_opts o = { 0 };
    char err[256];

    snprintf(s->path, sizeof(s->path), "%s/%s.db", f->dir, name);
    s->conf.replicate_tokens = true;
    s->conf.replicate_sessions = true;
    s->node.conf = &s->conf;
    atomic_init(&s->node.role, role);
    atomic_init(&s->node.epoch, 1);
    o.path = s->path;
    if (store_open(&o, &s->s, err, sizeof(err)) != 0)
        fail_msg("store_open: %s", err);
    s->node.store = s->s;
    store_set_readonly(s->s, role != NODE_ACTIVE);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    const char *base = getenv("REFUGE_TEST_TMP");
    struct store_hooks h;

    if (!base || !*base)
        base = "/tmp";
    mkdir(base, 0700);
    snprintf(f->dir, sizeof(f->dir), "%s/repl-apply-XXXXXX", base);
    assert_non_null(mkdtemp(f->dir));
    open_side(f, &f->a, "a", NODE_ACTIVE);
    open_side(f, &f->b, "b", NODE_STANDBY);
    f->cap = repl_capture_new(&f->a.node, NULL, NULL);
    repl_capture_hooks(f->cap, &h);
    store_set_hooks(f->a.s, &h);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    store_close(f->a.s);
    store_close(f->b.s);
    repl_capture_free(f->cap);
    test_rmtree(f->dir);
    free(f);
    return 0;
}

/* ------------------------------------------------------------- helpers */

static int exec_job(struct db *db, void *arg)
{
    return db_exec(db, arg);
}

static void write_a(struct fixture *f, const char *sql)
{
    assert_int_equal(store_write(f->a.s, exec_job, (void *)sql), 0);
}

static void write_b_raw(struct fixture *f, const char *sql)
{
    assert_int_equal(store_write_flags(f->b.s, exec_job, (void *)sql, STORE_JOB_SYSTEM), 0);
}

struct recs {
    struct repl_record *r;
    size_t n;
};

static void recs_free(struct recs *rs)
{
    for (size_t i = 0; i < rs->n; i++)
        free((void *)rs->r[i].changeset.p);
    free(rs->r);
    rs->r = NULL;
    rs->n = 0;
}

/* The active's records after lsn, copied. */
static struct recs read_log(struct store *s, uint64_t after)
{
    struct recs rs = { 0 };
    struct db *db = store_reader(s);
    struct db_stmt *st = db_prepare(db, "SELECT epoch, lsn, commit_us, hash, changeset FROM repl_log "
                                        "WHERE lsn > $1 ORDER BY lsn");
    size_t cap = 0;

    db_bind_int64(st, 1, (int64_t)after);
    while (db_step(st) == DB_ROW) {
        struct repl_record *r;
        void *cs;

        if (rs.n == cap) {
            cap = cap ? cap * 2 : 16;
            rs.r = xrealloc(rs.r, cap * sizeof(*rs.r));
        }
        r = &rs.r[rs.n++];
        memset(r, 0, sizeof(*r));
        r->pos.epoch = (uint64_t)db_col_int64(st, 0);
        r->pos.lsn = (uint64_t)db_col_int64(st, 1);
        r->commit_us = (uint64_t)db_col_int64(st, 2);
        memcpy(r->hash, db_col_blob(st, 3), 32);
        cs = xmalloc(db_col_bytes(st, 4) + 1);
        memcpy(cs, db_col_blob(st, 4), db_col_bytes(st, 4));
        r->changeset.p = cs;
        r->changeset.len = db_col_bytes(st, 4);
    }
    db_done(st);
    return rs;
}

struct apply_job {
    const struct repl_record *recs;
    size_t n;
    struct repl_apply_result res;
    int rc;
};

static int apply_fn(struct db *db, void *arg)
{
    struct apply_job *j = arg;

    j->rc = repl_apply_records(db, j->recs, j->n, &j->res);
    /* a refusal commits the applied prefix; a storage error rolls back */
    return j->res.err != 0 && j->rc == j->res.err && j->rc <= REPL_APPLY_EGAP && j->rc >= REPL_APPLY_ECORRUPT
               ? 0
               : j->rc;
}

static int apply_b(struct fixture *f, const struct repl_record *recs, size_t n, struct repl_apply_result *res)
{
    struct apply_job j = { recs, n, { 0 }, 0 };
    int rc = store_write_flags(f->b.s, apply_fn, &j, STORE_JOB_SYSTEM);

    assert_int_equal(rc, 0);
    if (getenv("APPLY_DEBUG") && j.res.err)
        fprintf(stderr, "apply: %s\n", j.res.why);
    if (res)
        *res = j.res;
    return j.rc;
}

/* Ships everything the standby lacks. */
static void ship(struct fixture *f)
{
    struct repl_tip t;
    struct recs rs;
    struct repl_apply_result res;

    assert_int_equal(repl_log_tip(store_reader(f->b.s), &t), 0);
    rs = read_log(f->a.s, t.lsn);
    assert_int_equal(apply_b(f, rs.r, rs.n, &res), 0);
    assert_int_equal(res.applied, rs.n);
    recs_free(&rs);
}

/* Every row of a table, ordered by primary key, rendered as text. */
static void dump_table(struct store *s, const char *table, struct buf *out)
{
    struct db *db = store_reader(s);
    struct db_stmt *st = db_prepare(db, "SELECT name FROM pragma_table_info($1) WHERE pk > 0 ORDER BY pk");
    char sql[512] = "";
    size_t k;

    db_bind_text(st, 1, table, -1);
    k = (size_t)snprintf(sql, sizeof(sql), "SELECT * FROM %s ORDER BY ", table);
    while (db_step(st) == DB_ROW)
        k += (size_t)snprintf(sql + k, sizeof(sql) - k, "%s\"%s\"", sql[k - 1] == ' ' ? "" : ", ",
                              db_col_text(st, 0));
    db_done(st);
    st = db_prepare(db, sql);
    assert_non_null(st);
    while (db_step(st) == DB_ROW) {
        for (int c = 0; c < db_col_count(st); c++) {
            if (db_col_is_null(st, c))
                buf_puts(out, "NULL");
            else
                for (size_t i = 0; i < db_col_bytes(st, c); i++)
                    buf_printf(out, "%02x", ((const unsigned char *)db_col_blob(st, c))[i]);
            buf_putc(out, '|');
        }
        buf_putc(out, '\n');
    }
    db_done(st);
}

static void assert_same_data(struct fixture *f)
{
    size_t n;
    const struct store_table *t = store_tables(&n);

    for (size_t i = 0; i < n; i++) {
        struct buf x, y;

        if (t[i].cls == REPL_LOCAL && strcmp(t[i].name, "repl_log") != 0 &&
            strcmp(t[i].name, "epoch_history") != 0)
            continue;
        buf_init(&x, 1 << 24);
        buf_init(&y, 1 << 24);
        dump_table(f->a.s, t[i].name, &x);
        dump_table(f->b.s, t[i].name, &y);
        if (x.len != y.len || memcmp(buf_cstr(&x), buf_cstr(&y), x.len) != 0) {
            FILE *fx = fopen("/tmp/repl-apply-active.txt", "w"), *fy = fopen("/tmp/repl-apply-standby.txt", "w");

            if (fx && fy) {
                fputs(buf_cstr(&x), fx);
                fputs(buf_cstr(&y), fy);
            }
            if (fx)
                fclose(fx);
            if (fy)
                fclose(fy);
        }
        if (x.len != y.len || memcmp(buf_cstr(&x), buf_cstr(&y), x.len) != 0)
            fail_msg("table %s differs:\n--- active\n%s\n--- standby\n%s", t[i].name, buf_cstr(&x), buf_cstr(&y));
        buf_free(&x);
        buf_free(&y);
    }
}

static int64_t count_b(struct fixture *f, const char *sql)
{
    struct db_stmt *st = db_prepare(store_reader(f->b.s), sql);
    int64_t v;

    assert_int_equal(db_step(st), DB_ROW);
    v = db_col_int64(st, 0);
    db_done(st);
    return v;
}

static void make_history(struct fixture *f)
{
    write_a(f, "INSERT INTO tenants(name, display_name, created_at, updated_at) VALUES ('acme', 'Acme', 1, 1)");
    write_a(f, "INSERT INTO clients(tenant, client_id, type, created_at, updated_at) "
               "VALUES ('acme', 'app', 'public', 1, 1)");
    write_a(f, "INSERT INTO users(tenant, id, user_name, user_name_lc, password_hash, created_at, updated_at) "
               "VALUES ('acme', 'u1', 'Ada', 'ada', x'00ff', 1, 1);"
               "INSERT INTO user_emails(tenant, user_id, value_lc) VALUES ('acme', 'u1', 'ada@example.com');"
               "INSERT INTO groups(tenant, id, display_name, display_name_lc, created_at, updated_at) "
               "VALUES ('acme', 'g1', 'Admins', 'admins', 1, 1);"
               "INSERT INTO group_members(tenant, group_id, member_id) VALUES ('acme', 'g1', 'u1')");
    write_a(f, "UPDATE users SET data = '{\"x\":1}', version = 2 WHERE id = 'u1'");
    write_a(f, "INSERT INTO refresh_tokens(token_hash, tenant, client_id, family_id, issued_at, expires_at) "
               "VALUES ('h1', 'acme', 'app', 'f1', 1, 2)");
    write_a(f, "DELETE FROM group_members WHERE member_id = 'u1'");
    write_a(f, "INSERT INTO signing_keys(tenant, kid, alg, public_jwk, private_enc, created_at) "
               "VALUES ('acme', 'k1', 'ES256', '{}', x'0102', 1)");
}

/* --------------------------------------------------------------- tests */

static void test_round_trip(void **state)
{
    struct fixture *f = *state;
    struct repl_tip ta, tb;
    char v[80], hex[65];
    struct recs rs;
    struct repl_apply_result res;

    make_history(f);
    rs = read_log(f->a.s, 0);
    assert_int_equal(rs.n, 7);
    assert_int_equal(apply_b(f, rs.r, rs.n, &res), 0);
    assert_int_equal(res.applied, 7);
    assert_true(res.config_changed);     /* tenants, clients, signing_keys are config */
    recs_free(&rs);
    assert_same_data(f);

    repl_log_tip(store_reader(f->a.s), &ta);
    repl_log_tip(store_reader(f->b.s), &tb);
    assert_int_equal(ta.lsn, tb.lsn);
    assert_memory_equal(ta.hash, tb.hash, 32);
    /* repl_state carries the applied position */
    assert_int_equal(repl_state_get(store_reader(f->b.s), "applied_lsn", v, sizeof(v)), 0);
    assert_string_equal(v, "7");
    assert_int_equal(repl_state_get(store_reader(f->b.s), "applied_hash", v, sizeof(v)), 0);
    assert_string_equal(v, repl_hash_hex(ta.hash, hex));

    /* more writes, shipped in pieces */
    write_a(f, "UPDATE tenants SET display_name = 'Acme Inc' WHERE name = 'acme'");
    write_a(f, "DELETE FROM users WHERE id = 'u1'; DELETE FROM user_emails WHERE user_id = 'u1'");
    ship(f);
    assert_same_data(f);
}

static void test_exactly_once(void **state)
{
    struct fixture *f = *state;
    struct recs rs;
    struct repl_apply_result res;

    make_history(f);
    rs = read_log(f->a.s, 0);
    assert_int_equal(apply_b(f, rs.r, 4, &res), 0);
    /* re-delivery after a reconnect: the whole batch again */
    assert_int_equal(apply_b(f, rs.r, rs.n, &res), REPL_APPLY_EGAP);
    assert_int_equal(res.applied, 0);
    assert_int_equal(res.failed_lsn, 1);
    assert_int_equal(count_b(f, "SELECT max(lsn) FROM repl_log"), 4);
    /* the sender restarts from the standby's tip */
    assert_int_equal(apply_b(f, rs.r + 4, rs.n - 4, &res), 0);
    recs_free(&rs);
    assert_same_data(f);
}

static void test_gap_refused(void **state)
{
    struct fixture *f = *state;
    struct recs rs;
    struct repl_apply_result res;

    make_history(f);
    rs = read_log(f->a.s, 0);
    /* records 1, 2, then 4: 1 and 2 apply, 4 is refused */
    struct repl_record batch[3] = { rs.r[0], rs.r[1], rs.r[3] };
    assert_int_equal(apply_b(f, batch, 3, &res), REPL_APPLY_EGAP);
    assert_int_equal(res.applied, 2);
    assert_int_equal(res.failed_lsn, 4);
    assert_int_equal(count_b(f, "SELECT max(lsn) FROM repl_log"), 2);
    assert_int_equal(count_b(f, "SELECT count(*) FROM users"), 0);
    recs_free(&rs);
}

static void test_chain_mismatch_refused(void **state)
{
    struct fixture *f = *state;
    struct recs rs;
    struct repl_apply_result res;
    char *cs;

    make_history(f);
    rs = read_log(f->a.s, 0);
    /* flip one byte of record 3's changeset (a row value, not the framing) */
    cs = (char *)rs.r[2].changeset.p;
    cs[rs.r[2].changeset.len - 1] ^= 0x01;
    assert_int_equal(apply_b(f, rs.r, rs.n, &res), REPL_APPLY_ECHAIN);
    assert_int_equal(res.applied, 2);
    assert_int_equal(res.failed_lsn, 3);
    assert_non_null(strstr(res.why, "chained hash"));
    assert_int_equal(count_b(f, "SELECT count(*) FROM users"), 0);
    assert_int_equal(count_b(f, "SELECT count(*) FROM repl_log"), 2);
    /* a forged hash that matches the forged changeset still breaks at the next record */
    {
        uint8_t prev[32];

        assert_int_equal(repl_log_hash_at(store_reader(f->b.s), 2, prev), 0);
        repl_hash_next(prev, rs.r[2].pos.epoch, 3, rs.r[2].commit_us, rs.r[2].changeset.p, rs.r[2].changeset.len,
                       rs.r[2].hash);
        res.err = 0;
        apply_b(f, rs.r + 2, rs.n - 2, &res);
        assert_true(res.applied <= 1);
        if (res.applied == 1)
            assert_int_equal(res.err, REPL_APPLY_ECHAIN);
    }
    recs_free(&rs);
}

static void test_lower_epoch_refused(void **state)
{
    struct fixture *f = *state;
    struct recs rs;
    struct repl_apply_result res;
    uint8_t prev[32];

    write_a(f, "INSERT INTO tenants(name, display_name, created_at, updated_at) VALUES ('a', 'A', 1, 1)");
    atomic_store(&f->a.node.epoch, 2);
    write_a(f, "INSERT INTO tenants(name, display_name, created_at, updated_at) VALUES ('b', 'B', 1, 1)");
    atomic_store(&f->a.node.epoch, 1);
    repl_capture_invalidate(f->cap);
    rs = read_log(f->a.s, 0);
    assert_int_equal(apply_b(f, rs.r, 2, &res), 0);
    assert_int_equal(count_b(f, "SELECT start_lsn FROM epoch_history WHERE epoch = 2"), 2);
    /* a record of epoch 1 after epoch 2, with a hash that chains correctly */
    struct repl_record r = rs.r[1];
    r.pos.epoch = 1;
    r.pos.lsn = 3;
    repl_log_hash_at(store_reader(f->b.s), 2, prev);
    repl_hash_next(prev, 1, 3, r.commit_us, r.changeset.p, r.changeset.len, r.hash);
    assert_int_equal(apply_b(f, &r, 1, &res), REPL_APPLY_EEPOCH);
    assert_int_equal(count_b(f, "SELECT max(lsn) FROM repl_log"), 2);
    recs_free(&rs);
}

static void test_conflict_never_skipped(void **state)
{
    struct fixture *f = *state;
    struct recs rs;
    struct repl_apply_result res;

    make_history(f);
    rs = read_log(f->a.s, 0);
    assert_int_equal(apply_b(f, rs.r, 2, &res), 0);
    /* someone wrote on the standby behind replication's back */
    write_b_raw(f, "INSERT INTO users(tenant, id, user_name, user_name_lc, created_at, updated_at) "
                   "VALUES ('acme', 'u1', 'Eve', 'eve', 1, 1)");
    assert_int_equal(apply_b(f, rs.r + 2, rs.n - 2, &res), REPL_APPLY_ECONFLICT);
    assert_int_equal(res.applied, 0);
    assert_int_equal(res.failed_lsn, 3);
    assert_non_null(strstr(res.why, "users"));
    /* nothing of record 3 landed: no email, no group, Eve untouched */
    assert_int_equal(count_b(f, "SELECT count(*) FROM user_emails"), 0);
    assert_int_equal(count_b(f, "SELECT count(*) FROM groups"), 0);
    assert_int_equal(count_b(f, "SELECT count(*) FROM users WHERE user_name = 'Eve'"), 1);
    assert_int_equal(count_b(f, "SELECT max(lsn) FROM repl_log"), 2);

    /* an UPDATE whose old values differ is a conflict too */
    write_b_raw(f, "DELETE FROM users");
    assert_int_equal(apply_b(f, rs.r + 2, 1, &res), 0);
    write_b_raw(f, "UPDATE users SET data = '{\"local\":true}' WHERE id = 'u1'");
    assert_int_equal(apply_b(f, rs.r + 3, 1, &res), REPL_APPLY_ECONFLICT);
    recs_free(&rs);
}

/* A changeset for a table this schema does not replicate. */
static void foreign_changeset(const char *table_sql, const char *insert_sql, void **cs, int *n)
{
    sqlite3 *h;
    sqlite3_session *s;

    assert_int_equal(sqlite3_open(":memory:", &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, table_sql, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3session_create(h, "main", &s), SQLITE_OK);
    assert_int_equal(sqlite3session_attach(s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, insert_sql, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3session_changeset(s, n, cs), SQLITE_OK);
    sqlite3session_delete(s);
    sqlite3_close(h);
}

static void test_schema_mismatch_refused(void **state)
{
    struct fixture *f = *state;
    struct repl_apply_result res;
    struct repl_record r = { 0 };
    uint8_t zero[32] = { 0 };
    void *cs;
    int n;

    /* a table the standby does not have */
    foreign_changeset("CREATE TABLE bench (id TEXT PRIMARY KEY NOT NULL)", "INSERT INTO bench VALUES ('x')", &cs, &n);
    r.pos.epoch = 1;
    r.pos.lsn = 1;
    r.commit_us = 5;
    r.changeset.p = cs;
    r.changeset.len = (size_t)n;
    repl_hash_next(zero, 1, 1, 5, cs, (size_t)n, r.hash);
    assert_int_equal(apply_b(f, &r, 1, &res), REPL_APPLY_ESCHEMA);
    assert_non_null(strstr(res.why, "bench"));
    sqlite3_free(cs);

    /* a local table */
    foreign_changeset("CREATE TABLE node_state (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)",
                      "INSERT INTO node_state VALUES ('role', 'active')", &cs, &n);
    r.changeset.p = cs;
    r.changeset.len = (size_t)n;
    repl_hash_next(zero, 1, 1, 5, cs, (size_t)n, r.hash);
    assert_int_equal(apply_b(f, &r, 1, &res), REPL_APPLY_ESCHEMA);
    sqlite3_free(cs);

    /* a replicated table with another column count (another schema version) */
    foreign_changeset("CREATE TABLE tenants (name TEXT PRIMARY KEY NOT NULL, display_name TEXT)",
                      "INSERT INTO tenants VALUES ('x', 'X')", &cs, &n);
    r.changeset.p = cs;
    r.changeset.len = (size_t)n;
    repl_hash_next(zero, 1, 1, 5, cs, (size_t)n, r.hash);
    assert_int_equal(apply_b(f, &r, 1, &res), REPL_APPLY_ESCHEMA);
    sqlite3_free(cs);

    /* garbage that happens to chain */
    r.changeset.p = "\x54\x02\x01garbage";
    r.changeset.len = 10;
    repl_hash_next(zero, 1, 1, 5, r.changeset.p, r.changeset.len, r.hash);
    assert_true(apply_b(f, &r, 1, &res) < 0);
    assert_int_equal(count_b(f, "SELECT count(*) FROM repl_log"), 0);
    assert_int_equal(count_b(f, "SELECT count(*) FROM tenants"), 0);
}


/* ------------------------------------------------------------- rewind */

struct rewind_job {
    uint64_t to;
    size_t n;
    char why[256];
};

static int rewind_fn(struct db *db, void *arg)
{
    struct rewind_job *j = arg;

    return repl_rewind_apply(db, j->to, &j->n, j->why, sizeof(j->why));
}

static void test_export_and_rewind(void **state)
{
    struct fixture *f = *state;
    struct rewind_job rj = { .to = 7 };
    char paths[1024], err[256], *file;
    size_t nrec = 0;
    json_t *doc, *txs, *ch;
    json_error_t jerr;

    make_history(f);
    ship(f);
    /* the old primary goes on alone: three divergent transactions */
    write_a(f, "INSERT INTO tenants(name, display_name, created_at, updated_at) VALUES ('lost', 'Lost', 5, 5)");
    write_a(f, "UPDATE users SET data = '{\"y\":2}' WHERE tenant = 'acme' AND id = 'u1'");
    write_a(f, "DELETE FROM clients WHERE client_id = 'app'; DELETE FROM signing_keys");

    assert_int_equal(repl_divergent_export(store_reader(f->a.s), f->dir, "node-a", 7, &nrec, paths, sizeof(paths),
                                           err, sizeof(err)), 0);
    assert_int_equal(nrec, 3);
    file = xasprintf("%s/divergent/1-8-10.json", f->dir);
    assert_string_equal(paths, file);
    doc = json_load_file(file, 0, &jerr);
    assert_non_null(doc);
    assert_int_equal(json_integer_value(json_object_get(doc, "common_lsn")), 7);
    assert_string_equal(json_string_value(json_object_get(doc, "node")), "node-a");
    txs = json_object_get(doc, "transactions");
    assert_int_equal(json_array_size(txs), 3);
    /* 1: the insert, with its new values and key */
    ch = json_array_get(json_object_get(json_array_get(txs, 0), "changes"), 0);
    assert_string_equal(json_string_value(json_object_get(ch, "op")), "INSERT");
    assert_string_equal(json_string_value(json_object_get(ch, "table")), "tenants");
    assert_string_equal(json_string_value(json_object_get(json_object_get(ch, "primary_key"), "name")), "lost");
    assert_string_equal(json_string_value(json_object_get(json_object_get(ch, "new"), "display_name")), "Lost");
    assert_null(json_object_get(ch, "old"));
    /* 2: the update: old and new of the changed column, the composite key */
    ch = json_array_get(json_object_get(json_array_get(txs, 1), "changes"), 0);
    assert_string_equal(json_string_value(json_object_get(ch, "op")), "UPDATE");
    assert_string_equal(json_string_value(json_object_get(json_object_get(ch, "old"), "data")), "{\"x\":1}");
    assert_string_equal(json_string_value(json_object_get(json_object_get(ch, "new"), "data")), "{\"y\":2}");
    assert_string_equal(json_string_value(json_object_get(json_object_get(ch, "primary_key"), "id")), "u1");
    assert_string_equal(json_string_value(json_object_get(json_object_get(ch, "primary_key"), "tenant")), "acme");
    /* 3: two deletes; the key's blob column comes out as base64url */
    assert_int_equal(json_array_size(json_object_get(json_array_get(txs, 2), "changes")), 2);
    ch = json_array_get(json_object_get(json_array_get(txs, 2), "changes"), 1);
    assert_string_equal(json_string_value(json_object_get(ch, "op")), "DELETE");
    assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(ch, "old"),
                                                                          "private_enc"), "base64url")), "AQI");
    json_decref(doc);
    free(file);

    /* rewind: the old primary, now a standby (which captures nothing), is
     * back at lsn 7 and equal to the new active */
    atomic_store(&f->a.node.role, NODE_STANDBY);
    store_set_readonly(f->a.s, true);
    assert_int_equal(store_write_flags(f->a.s, rewind_fn, &rj, STORE_JOB_SYSTEM), 0);
    assert_int_equal(rj.n, 3);
    assert_same_data(f);
    {
        char v[80];

        assert_int_equal(repl_state_get(store_reader(f->a.s), "applied_lsn", v, sizeof(v)), 0);
        assert_string_equal(v, "7");
    }
    /* nothing left to export */
    assert_int_equal(repl_divergent_export(store_reader(f->a.s), f->dir, "node-a", 7, &nrec, NULL, 0, err,
                                           sizeof(err)), 0);
    assert_int_equal(nrec, 0);
}

static void test_rewind_conflict_refused(void **state)
{
    struct fixture *f = *state;
    struct rewind_job rj = { .to = 7 };

    make_history(f);
    write_a(f, "INSERT INTO tenants(name, display_name, created_at, updated_at) VALUES ('lost', 'Lost', 5, 5)");
    /* a later local change the log does not know about makes the undo conflict */
    store_set_hooks(f->a.s, NULL);
    write_a(f, "UPDATE tenants SET display_name = 'edited' WHERE name = 'lost'");
    assert_true(store_write_flags(f->a.s, rewind_fn, &rj, STORE_JOB_SYSTEM) == REPL_APPLY_ECONFLICT);
    assert_non_null(strstr(rj.why, "lsn 8"));
    {
        struct repl_tip t;

        repl_log_tip(store_reader(f->a.s), &t);
        assert_int_equal(t.lsn, 8);     /* nothing rewound */
    }
}


/* 10,000 divergent transactions, made in one job (a session per
 * transaction, as capture does), then exported and rewound: correctness is
 * asserted, the time is printed (the goal is 1 s; tests never assert speed). */
struct many_job {
    int n;
};

static int many_fn(struct db *db, void *arg)
{
    struct many_job *j = arg;
    struct repl_tip tip;
    int rc = repl_log_tip(db, &tip);

    for (int i = 0; i < j->n && rc == 0; i++) {
        sqlite3_session *s;
        struct repl_record r = { 0 };
        void *cs = NULL;
        int n = 0;
        char sql[256];

        assert_int_equal(sqlite3session_create(db_native(db), "main", &s), SQLITE_OK);
        assert_int_equal(sqlite3session_attach(s, NULL), SQLITE_OK);
        snprintf(sql, sizeof(sql),
                 "INSERT INTO users(tenant, id, user_name, user_name_lc, created_at, updated_at) "
                 "VALUES ('acme', 'd%d', 'D%d', 'd%d', 1, 1); UPDATE tenants SET updated_at = %d WHERE name = 'acme'",
                 i, i, i, i + 10);
        rc = db_exec(db, sql);
        assert_int_equal(sqlite3session_changeset(s, &n, &cs), SQLITE_OK);
        sqlite3session_delete(s);
        r.pos.epoch = tip.epoch;
        r.pos.lsn = tip.lsn + 1;
        r.commit_us = 1;
        r.changeset.p = cs;
        r.changeset.len = (size_t)n;
        repl_hash_next(tip.hash, r.pos.epoch, r.pos.lsn, 1, cs, (size_t)n, r.hash);
        if (rc == 0)
            rc = repl_log_append(db, &r);
        tip.lsn = r.pos.lsn;
        memcpy(tip.hash, r.hash, 32);
        sqlite3_free(cs);
    }
    return rc;
}

static void test_rewind_10k(void **state)
{
    struct fixture *f = *state;
    struct many_job mj = { 10000 };
    struct rewind_job rj = { .to = 7 };
    char err[256];
    size_t nrec;
    int64_t t0, t1, t2;

    make_history(f);
    ship(f);
    atomic_store(&f->a.node.role, NODE_STANDBY);     /* the old primary, rejoining */
    store_set_readonly(f->a.s, true);
    assert_int_equal(store_write_flags(f->a.s, many_fn, &mj, STORE_JOB_SYSTEM), 0);
    t0 = time_mono_us();
    assert_int_equal(repl_divergent_export(store_reader(f->a.s), f->dir, "a", 7, &nrec, NULL, 0, err, sizeof(err)), 0);
    t1 = time_mono_us();
    assert_int_equal(nrec, 10000);
    assert_int_equal(store_write_flags(f->a.s, rewind_fn, &rj, STORE_JOB_SYSTEM), 0);
    t2 = time_mono_us();
    assert_int_equal(rj.n, 10000);
    assert_same_data(f);
    printf("rewind of 10000 divergent transactions: export %.0f ms, rewind %.0f ms\n", (t1 - t0) / 1000.0,
           (t2 - t1) / 1000.0);
}

/* ------------------------------------------------------------ snapshot */

static void send_file(struct repl_snapshot_rx *rx, const char *path)
{
    FILE *fp = fopen(path, "rb");
    char buf[4096];
    uint64_t off = 0;
    size_t n;
    char err[256];

    assert_non_null(fp);
    while ((n = fread(buf, 1, sizeof(buf), fp)) > 0) {
        assert_int_equal(repl_snapshot_rx_chunk(rx, off, buf, n, err, sizeof(err)), 0);
        off += n;
    }
    fclose(fp);
}

static void test_snapshot(void **state)
{
    struct fixture *f = *state;
    char out[800], rxpath[800], err[256], v[64];
    struct repl_tip tip, tb;
    uint8_t sha[32], bad[32];
    uint64_t size;
    struct repl_snapshot_rx rx;
    struct db *rb;

    write_a(f, "INSERT INTO node_state(key, value) VALUES ('role', 'active'), ('cluster_id', 'c-a')");
    make_history(f);
    write_b_raw(f, "INSERT INTO node_state(key, value) VALUES ('role', 'standby'), ('cluster_id', 'c-b')");
    write_b_raw(f, "INSERT INTO tenants(name, display_name, created_at, updated_at) VALUES ('old', 'Old', 1, 1)");
    snprintf(out, sizeof(out), "%s/snap-out.db", f->dir);
    snprintf(rxpath, sizeof(rxpath), "%s/snap-in.db", f->dir);
    assert_int_equal(repl_snapshot_create(f->a.path, out, &tip, sha, &size, err, sizeof(err)), 0);
    assert_int_equal(tip.lsn, 7);
    assert_true(size > 4096);

    /* a corrupted transfer is refused and changes nothing */
    memcpy(bad, sha, 32);
    bad[0] ^= 1;
    assert_int_equal(repl_snapshot_rx_begin(&rx, rxpath, size, &tip, (uint32_t)store_schema_version_latest(), err,
                                            sizeof(err)), 0);
    send_file(&rx, out);
    assert_int_equal(repl_snapshot_rx_end(&rx, bad, err, sizeof(err)), -EBADMSG);
    repl_snapshot_rx_abort(&rx);
    assert_int_equal(access(rxpath, F_OK), -1);
    /* a chunk out of order too */
    assert_int_equal(repl_snapshot_rx_begin(&rx, rxpath, size, &tip, (uint32_t)store_schema_version_latest(), err,
                                            sizeof(err)), 0);
    assert_int_equal(repl_snapshot_rx_chunk(&rx, 10, "x", 1, err, sizeof(err)), -EPROTO);
    repl_snapshot_rx_abort(&rx);
    /* an announced position that the file does not hold */
    tb = tip;
    tb.lsn = 6;
    assert_int_equal(repl_snapshot_rx_begin(&rx, rxpath, size, &tb, (uint32_t)store_schema_version_latest(), err,
                                            sizeof(err)), 0);
    send_file(&rx, out);
    assert_int_equal(repl_snapshot_rx_end(&rx, sha, err, sizeof(err)), -EBADMSG);
    repl_snapshot_rx_abort(&rx);
    assert_int_equal(count_b(f, "SELECT count(*) FROM tenants WHERE name = 'old'"), 1);

    /* the real thing, while a reader of the standby is open */
    rb = store_reader(f->b.s);
    assert_int_equal(count_b(f, "SELECT count(*) FROM repl_log"), 0);
    assert_int_equal(repl_snapshot_rx_begin(&rx, rxpath, size, &tip, (uint32_t)store_schema_version_latest(), err,
                                            sizeof(err)), 0);
    send_file(&rx, out);
    assert_int_equal(repl_snapshot_rx_end(&rx, sha, err, sizeof(err)), 0);
    if (repl_snapshot_install(f->b.s, rxpath, err, sizeof(err)) != 0)
        fail_msg("install: %s", err);
    repl_snapshot_rx_abort(&rx);
    assert_same_data(f);
    assert_int_equal(repl_log_tip(rb, &tb), 0);
    assert_int_equal(tb.lsn, 7);
    assert_memory_equal(tb.hash, tip.hash, 32);
    assert_int_equal(db_execp(rb, "SELECT 1", NULL), 0);
    {
        struct db_stmt *st = db_prepare(rb, "SELECT value FROM node_state WHERE key = 'role'");

        assert_int_equal(db_step(st), DB_ROW);
        snprintf(v, sizeof(v), "%s", db_col_text(st, 0));
        db_done(st);
        assert_string_equal(v, "standby");
        st = db_prepare(rb, "SELECT value FROM node_state WHERE key = 'cluster_id'");
        assert_int_equal(db_step(st), DB_ROW);
        snprintf(v, sizeof(v), "%s", db_col_text(st, 0));
        db_done(st);
        assert_string_equal(v, "c-a");
    }
    assert_int_equal(count_b(f, "SELECT count(*) FROM tenants WHERE name = 'old'"), 0);
    /* and the standby streams on from the snapshot's position */
    write_a(f, "UPDATE tenants SET display_name = 'After' WHERE name = 'acme'");
    ship(f);
    assert_same_data(f);
    unlink(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exactly_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gap_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_mismatch_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lower_epoch_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conflict_never_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_mismatch_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_export_and_rewind, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rewind_conflict_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rewind_10k, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
