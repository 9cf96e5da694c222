/*
 * test_repl_capture — capture on a real store: one record per committed
 * batch that changed a replicated table, none for local tables, rolled-back
 * jobs or disabled classes, a dense lsn, a verifiable hash chain, the epoch
 * history entry, nothing on a standby; and the cost of capture (writes/s with
 * and without, printed, not asserted: tests never assert on speed).
 */
#define SQLITE_ENABLE_SESSION 1
#define SQLITE_ENABLE_PREUPDATE_HOOK 1
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
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

#include "core/timeutil.h"
#include "repl/capture.h"
#include "repl/log.h"
#include "store/store.h"

struct fixture {
    char dir[512];
    char path[600];
    struct refuge_conf conf;
    struct node node;
    struct store *s;
    struct repl_capture *cap;
    int notified;
    uint64_t last_notified_lsn;
};

static void on_record(void *arg, const struct repl_tip *tip, size_t bytes)
{
    struct fixture *f = arg;

    f->notified++;
    f->last_notified_lsn = tip->lsn;
    assert_true(bytes > 0);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    const char *base = getenv("REFUGE_TEST_TMP");
    struct store_opts o = { 0 };
    struct store_hooks h;
    char err[256];

    if (!base || !*base)
        base = "/tmp";
    mkdir(base, 0700);
    snprintf(f->dir, sizeof(f->dir), "%s/repl-capture-XXXXXX", base);
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/refuge.db", f->dir);
    f->conf.replicate_tokens = false;
    f->conf.replicate_sessions = true;
    f->node.conf = &f->conf;
    atomic_init(&f->node.role, NODE_ACTIVE);
    atomic_init(&f->node.epoch, 1);
    o.path = f->path;
    if (store_open(&o, &f->s, err, sizeof(err)) != 0)
        fail_msg("store_open: %s", err);
    f->node.store = f->s;
    f->cap = repl_capture_new(&f->node, on_record, f);
    repl_capture_hooks(f->cap, &h);
    store_set_hooks(f->s, &h);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    store_close(f->s);
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

static void write_sql(struct fixture *f, const char *sql)
{
    assert_int_equal(store_write(f->s, exec_job, (void *)sql), 0);
}

static int64_t count(struct fixture *f, const char *sql)
{
    struct db *db = store_reader(f->s);
    struct db_stmt *st = db_prepare(db, sql);
    int64_t v;

    assert_non_null(st);
    assert_int_equal(db_step(st), DB_ROW);
    v = db_col_int64(st, 0);
    db_done(st);
    return v;
}

static void tip(struct fixture *f, struct repl_tip *t)
{
    assert_int_equal(repl_log_tip(store_reader(f->s), t), 0);
}

/* ------------------------------------------------------------- tests */

static void test_record_per_batch(void **state)
{
    struct fixture *f = *state;
    struct repl_tip t;

    write_sql(f, "INSERT INTO tenants(name, display_name, created_at, updated_at) VALUES ('a', 'A', 1, 1)");
    tip(f, &t);
    assert_int_equal(t.lsn, 1);
    assert_int_equal(t.epoch, 1);
    assert_int_equal(count(f, "SELECT count(*) FROM repl_log"), 1);
    assert_int_equal(count(f, "SELECT count(*) FROM epoch_history WHERE epoch = 1 AND start_lsn = 1"), 1);
    assert_int_equal(f->notified, 1);
    assert_int_equal(f->last_notified_lsn, 1);
    assert_int_equal(repl_capture_batch_lsn(f->cap), 1);

    /* local table only: no record */
    write_sql(f, "INSERT INTO node_state(key, value) VALUES ('x', 'y')");
    write_sql(f, "INSERT INTO repl_state(key, value) VALUES ('x', 'y')");
    assert_int_equal(count(f, "SELECT count(*) FROM repl_log"), 1);
    assert_int_equal(repl_capture_batch_lsn(f->cap), 0);

    /* tokens class disabled: no record; sessions enabled: a record */
    write_sql(f, "INSERT INTO revoked_jtis(jti, tenant, expires_at) VALUES ('j', 'a', 9)");
    assert_int_equal(count(f, "SELECT count(*) FROM repl_log"), 1);
    write_sql(f, "INSERT INTO sso_sessions(id_hash, tenant, user_id, auth_time, created_at, expires_at, "
                 "last_seen) VALUES ('s', 'a', 'u', 1, 1, 9, 1)");
    tip(f, &t);
    assert_int_equal(t.lsn, 2);

    /* identity class */
    write_sql(f, "INSERT INTO users(tenant, id, user_name, user_name_lc, created_at, updated_at) "
                 "VALUES ('a', 'u1', 'Bob', 'bob', 1, 1)");
    tip(f, &t);
    assert_int_equal(t.lsn, 3);
    assert_int_equal(f->notified, 3);
}

static int insert_then_fail(struct db *db, void *arg)
{
    int rc = db_exec(db, "INSERT INTO tenants(name, display_name, created_at, updated_at) VALUES ('z', 'Z', 1, 1)");

    assert_int_equal(rc, 0);
    return -EINVAL;
}

static void test_rolled_back_and_net_zero(void **state)
{
    struct fixture *f = *state;
    struct repl_tip t;

    assert_int_equal(store_write(f->s, insert_then_fail, NULL), -EINVAL);
    tip(f, &t);
    assert_int_equal(t.lsn, 0);
    /* a row inserted and deleted in one transaction: no net change, no record */
    write_sql(f, "INSERT INTO tenants(name, display_name, created_at, updated_at) VALUES ('n', 'N', 1, 1);"
                 "DELETE FROM tenants WHERE name = 'n'");
    tip(f, &t);
    assert_int_equal(t.lsn, 0);
    /* an UPDATE that changes nothing */
    write_sql(f, "INSERT INTO tenants(name, display_name, created_at, updated_at) VALUES ('m', 'M', 1, 1)");
    write_sql(f, "UPDATE tenants SET display_name = 'M' WHERE name = 'm'");
    tip(f, &t);
    assert_int_equal(t.lsn, 1);
    assert_int_equal(f->notified, 1);
}

static void test_chain_and_content(void **state)
{
    struct fixture *f = *state;
    struct db *db;
    struct db_stmt *st;
    uint8_t prev[32] = { 0 }, h[32];
    uint64_t expect = 1;
    int rc;

    for (int i = 0; i < 5; i++) {
        char sql[200];

        snprintf(sql, sizeof(sql),
                 "INSERT INTO tenants(name, display_name, created_at, updated_at) VALUES ('t%d', 'T', 1, 1)", i);
        write_sql(f, sql);
    }
    write_sql(f, "UPDATE tenants SET display_name = 'changed' WHERE name = 't2'");
    write_sql(f, "DELETE FROM tenants WHERE name = 't3'");

    db = store_reader(f->s);
    st = db_prepare(db, "SELECT epoch, lsn, commit_us, hash, changeset FROM repl_log ORDER BY lsn");
    assert_non_null(st);
    while ((rc = db_step(st)) == DB_ROW) {
        sqlite3_changeset_iter *it;
        const char *table;
        int ncol, op, ind;

        assert_int_equal(db_col_int64(st, 1), (int64_t)expect);   /* dense */
        repl_hash_next(prev, (uint64_t)db_col_int64(st, 0), expect, (uint64_t)db_col_int64(st, 2),
                       db_col_blob(st, 4), db_col_bytes(st, 4), h);
        assert_int_equal(db_col_bytes(st, 3), 32);
        assert_memory_equal(db_col_blob(st, 3), h, 32);
        memcpy(prev, h, 32);

        assert_int_equal(sqlite3changeset_start(&it, (int)db_col_bytes(st, 4), (void *)db_col_blob(st, 4)),
                         SQLITE_OK);
        assert_int_equal(sqlite3changeset_next(it), SQLITE_ROW);
        assert_int_equal(sqlite3changeset_op(it, &table, &ncol, &op, &ind), SQLITE_OK);
        assert_string_equal(table, "tenants");
        assert_int_equal(ncol, 5);
        assert_int_equal(op, expect <= 5 ? SQLITE_INSERT : expect == 6 ? SQLITE_UPDATE : SQLITE_DELETE);
        assert_int_equal(sqlite3changeset_next(it), SQLITE_DONE);
        sqlite3changeset_finalize(it);
        expect++;
    }
    assert_int_equal(rc, DB_DONE);
    db_done(st);
    assert_int_equal(expect, 8);
}

static int system_insert(struct db *db, void *arg)
{
    return db_exec(db, "INSERT INTO tenants(name, display_name, created_at, updated_at) VALUES ('s', 'S', 1, 1)");
}

static void test_standby_captures_nothing(void **state)
{
    struct fixture *f = *state;
    struct repl_tip t;

    atomic_store(&f->node.role, NODE_STANDBY);
    store_set_readonly(f->s, true);
    assert_int_equal(store_write_flags(f->s, system_insert, NULL, STORE_JOB_SYSTEM), 0);
    assert_int_equal(count(f, "SELECT count(*) FROM tenants"), 1);
    tip(f, &t);
    assert_int_equal(t.lsn, 0);
    assert_int_equal(f->notified, 0);
}

static void test_epoch_change(void **state)
{
    struct fixture *f = *state;
    struct repl_tip t;

    write_sql(f, "INSERT INTO tenants(name, display_name, created_at, updated_at) VALUES ('a', 'A', 1, 1)");
    atomic_store(&f->node.epoch, 3);
    write_sql(f, "INSERT INTO tenants(name, display_name, created_at, updated_at) VALUES ('b', 'B', 1, 1)");
    tip(f, &t);
    assert_int_equal(t.epoch, 3);
    assert_int_equal(t.lsn, 2);
    assert_int_equal(count(f, "SELECT start_lsn FROM epoch_history WHERE epoch = 3"), 2);
    assert_int_equal(count(f, "SELECT count(*) FROM epoch_history"), 2);

    /* the tip is re-read after invalidation (an apply or rewind changed the log) */
    write_sql(f, "INSERT INTO repl_log(epoch, lsn, commit_us, hash, changeset) VALUES (3, 3, 1, zeroblob(32), x'')");
    repl_capture_invalidate(f->cap);
    write_sql(f, "INSERT INTO tenants(name, display_name, created_at, updated_at) VALUES ('c', 'C', 1, 1)");
    tip(f, &t);
    assert_int_equal(t.lsn, 4);
}

/* ---------------------------------------------------------------- cost */

struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int left;
    int failed;
};

static void done_count(void *arg, int rc)
{
    struct waiter *w = arg;

    pthread_mutex_lock(&w->mu);
    w->left--;
    w->failed += rc != 0;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

struct user_job {
    struct waiter *w;
    int i;
    int run;
};

static int insert_user(struct db *db, void *arg)
{
    struct user_job *j = arg;
    char id[64];
    struct db_stmt *st = db_prepare(db, "INSERT INTO users(tenant, id, user_name, user_name_lc, data, created_at, "
                                        "updated_at) VALUES ('a', $1, $1, $1, $2, 1, 1)");
    int rc;

    snprintf(id, sizeof(id), "user-%d-%d", j->run, j->i);
    db_bind_text(st, 1, id, -1);
    db_bind_text(st, 2, "{\"name\":{\"givenName\":\"Ada\",\"familyName\":\"Lovelace\"}}", -1);
    rc = db_step(st);
    db_done(st);
    return rc < 0 ? rc : 0;
}

static void job_done(void *arg, int rc)
{
    struct user_job *j = arg;

    done_count(j->w, rc);
}

/* Offers n one-row writes at once (as many concurrent requests would) and
 * returns writes per second. */
static double offered_load(struct fixture *f, int n, int run)
{
    struct waiter w = { .left = n };
    struct user_job *jobs = calloc((size_t)n, sizeof(*jobs));
    int64_t t0 = time_mono_us();
    double secs;

    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    for (int i = 0; i < n; i++) {
        jobs[i] = (struct user_job){ &w, i, run };
        assert_int_equal(store_submit(f->s, insert_user, job_done, &jobs[i]), 0);
    }
    pthread_mutex_lock(&w.mu);
    while (w.left > 0)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    secs = (double)(time_mono_us() - t0) / 1e6;
    assert_int_equal(w.failed, 0);
    free(jobs);
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    return n / secs;
}

static void test_capture_cost(void **state)
{
    struct fixture *f = *state;
    struct store_hooks h;
    double with = 0, without = 0;
    int64_t records;

    /* alternate runs so drift on a shared machine hits both sides */
    for (int run = 0; run < 4; run++) {
        if (run % 2 == 0) {
            repl_capture_hooks(f->cap, &h);
            store_set_hooks(f->s, &h);
            with += offered_load(f, 2000, run);
        } else {
            store_set_hooks(f->s, NULL);
            without += offered_load(f, 2000, run);
        }
    }
    records = count(f, "SELECT count(*) FROM repl_log");
    assert_true(records > 0);
    assert_int_equal(count(f, "SELECT count(*) FROM users"), 8000);
    printf("capture cost: %.0f writes/s with capture, %.0f without (%.1f%%), %lld records for 4000 writes\n",
           with / 2, without / 2, 100.0 * (without - with) / without, (long long)records);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_record_per_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rolled_back_and_net_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_and_content, setup, teardown),
        cmocka_unit_test_setup_teardown(test_standby_captures_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_epoch_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capture_cost, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
