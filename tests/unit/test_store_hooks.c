/*
 * test_store_hooks — the store hooks replication's acknowledgement modes
 * and snapshots rely on: tx_admit (hold a batch back before BEGIN, or fail
 * its user jobs without running them, system jobs still run), tx_hold (take
 * a committed batch's completions over and finish them later, from another
 * thread, with an error for the jobs that succeeded), and STORE_JOB_RAW
 * (a job alone, outside any transaction, also in read-only mode).
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
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

#include "store/store.h"

struct fixture {
    char dir[512];
    char path[600];
    struct store *s;
    /* hook state */
    int admit_rc;
    atomic_int admits;
    size_t admit_njobs;
    bool hold;
    size_t hold_min;             /* hold only batches of at least this many jobs */
    struct store_completion *held;
    atomic_int holds;
};

static int create_t(struct db *db, void *arg)
{
    return db_exec(db, "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)");
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    const char *base = getenv("REFUGE_TEST_TMP");
    struct store_opts o = { 0 };
    char err[256];

    if (!base || !*base)
        base = "/tmp";
    mkdir(base, 0700);
    snprintf(f->dir, sizeof(f->dir), "%s/store-hooks-XXXXXX", base);
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/refuge.db", f->dir);
    o.path = f->path;
    if (store_open(&o, &f->s, err, sizeof(err)) != 0)
        fail_msg("store_open: %s", err);
    assert_int_equal(store_write(f->s, create_t, NULL), 0);
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

static int admit(void *arg, size_t njobs)
{
    struct fixture *f = arg;

    atomic_fetch_add(&f->admits, 1);
    f->admit_njobs = njobs;
    return f->admit_rc;
}

static bool hold(void *arg, struct store_completion *c)
{
    struct fixture *f = arg;

    atomic_fetch_add(&f->holds, 1);
    if (!f->hold || store_completion_count(c) < f->hold_min)
        return false;
    f->held = c;
    return true;
}

static void install(struct fixture *f)
{
    struct store_hooks h = { .arg = f, .tx_admit = admit, .tx_hold = hold };

    store_set_hooks(f->s, &h);
}

static int insert_row(struct db *db, void *arg)
{
    char sql[100];

    snprintf(sql, sizeof(sql), "INSERT INTO t (id, v) VALUES (%d, 'x')", (int)(intptr_t)arg);
    return db_exec(db, sql);
}

static bool row_exists(struct fixture *f, int id)
{
    struct db_stmt *st = db_prepare(store_reader(f->s), "SELECT 1 FROM t WHERE id = $1");
    bool found;

    db_bind_int64(st, 1, id);
    found = db_step(st) == DB_ROW;
    db_done(st);
    return found;
}

/* --------------------------------------------------------------- admit */

static void test_admit_refuses_user_jobs(void **state)
{
    struct fixture *f = *state;

    install(f);
    f->admit_rc = -EBUSY;
    assert_int_equal(store_write(f->s, insert_row, (void *)1), -EBUSY);
    assert_false(row_exists(f, 1));
    assert_int_equal(atomic_load(&f->admits), 1);
    assert_int_equal(f->admit_njobs, 1);
    /* a system job is not a client write: it runs without asking */
    assert_int_equal(store_write_flags(f->s, insert_row, (void *)2, STORE_JOB_SYSTEM), 0);
    assert_true(row_exists(f, 2));
    assert_int_equal(atomic_load(&f->admits), 1);
    f->admit_rc = 0;
    assert_int_equal(store_write(f->s, insert_row, (void *)3), 0);
    assert_true(row_exists(f, 3));
    assert_int_equal(atomic_load(&f->admits), 2);
}

/* ---------------------------------------------------------------- hold */

struct done_log {
    pthread_mutex_t mu;
    int calls;
    int rcs[8];
};

struct hjob {
    int id;                 /* row to insert; 0: the job fails */
    struct done_log *d;
};

static void logged_done(void *arg, int rc)
{
    struct hjob *j = arg;

    pthread_mutex_lock(&j->d->mu);
    j->d->rcs[j->d->calls++] = rc;
    pthread_mutex_unlock(&j->d->mu);
}

static int hjob_fn(struct db *db, void *arg)
{
    struct hjob *j = arg;

    return j->id ? insert_row(db, (void *)(intptr_t)j->id) : -EINVAL;
}

static int fail_job(struct db *db, void *arg)
{
    return -EINVAL;
}

static int gate_job(struct db *db, void *arg)
{
    atomic_int *open = arg;

    while (!atomic_load(open))
        usleep(1000);
    return 0;
}

static void *finisher(void *arg)
{
    struct fixture *f = arg;

    store_completion_finish(f->held, -EBUSY);
    return NULL;
}

static void test_hold_and_finish_later(void **state)
{
    struct fixture *f = *state;
    struct done_log d = { .mu = PTHREAD_MUTEX_INITIALIZER };
    atomic_int open = 0;
    pthread_t th;

    install(f);
    /* a gate keeps the writer busy so the next three jobs share one batch */
    assert_int_equal(store_submit(f->s, gate_job, NULL, &open), 0);
    usleep(20000);
    struct hjob j1 = { 10, &d }, j2 = { 0, &d }, j3 = { 11, &d };

    assert_int_equal(store_submit(f->s, hjob_fn, logged_done, &j1), 0);
    assert_int_equal(store_submit(f->s, hjob_fn, logged_done, &j2), 0);
    assert_int_equal(store_submit(f->s, hjob_fn, logged_done, &j3), 0);
    f->hold = true;
    f->hold_min = 3;            /* not the gate's own batch */
    atomic_store(&open, 1);
    for (int i = 0; i < 500 && !f->held; i++)
        usleep(2000);
    assert_non_null(f->held);
    assert_int_equal(store_completion_count(f->held), 3);
    /* committed, but nobody has been told */
    assert_true(row_exists(f, 10));
    assert_true(row_exists(f, 11));
    assert_int_equal(d.calls, 0);
    /* finished from another thread with an error: the jobs that succeeded
     * get it, the failed one keeps its own */
    assert_int_equal(pthread_create(&th, NULL, finisher, f), 0);
    pthread_join(th, NULL);
    assert_int_equal(d.calls, 3);
    assert_int_equal(d.rcs[0], -EBUSY);
    assert_int_equal(d.rcs[1], -EINVAL);
    assert_int_equal(d.rcs[2], -EBUSY);

    /* not held: done runs at commit as always */
    f->hold = false;
    f->held = NULL;
    assert_int_equal(store_write(f->s, insert_row, (void *)12), 0);
    assert_null(f->held);
}

static void test_hold_finish_ok(void **state)
{
    struct fixture *f = *state;
    struct done_log d = { .mu = PTHREAD_MUTEX_INITIALIZER };
    struct hjob j = { 20, &d };

    install(f);
    f->hold = true;
    assert_int_equal(store_submit(f->s, hjob_fn, logged_done, &j), 0);
    for (int i = 0; i < 500 && !f->held; i++)
        usleep(2000);
    assert_non_null(f->held);
    store_completion_finish(f->held, 0);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.rcs[0], 0);
    assert_int_equal(atomic_load(&f->holds), 1);
    /* a batch refused by tx_admit runs nothing, commits nothing, holds nothing */
    f->held = NULL;
    f->admit_rc = -EBUSY;
    assert_int_equal(store_write(f->s, fail_job, NULL), -EBUSY);
    assert_null(f->held);
    assert_int_equal(atomic_load(&f->holds), 1);
}

/* ----------------------------------------------------------------- raw */

struct raw_probe {
    bool autocommit;
    atomic_int ran;
};

static int raw_job(struct db *db, void *arg)
{
    struct raw_probe *p = arg;

    p->autocommit = sqlite3_get_autocommit(db_native(db)) != 0;
    atomic_fetch_add(&p->ran, 1);
    return db_exec(db, "BEGIN IMMEDIATE; INSERT INTO t (id, v) VALUES (30, 'raw'); COMMIT");
}

static int raw_leaves_tx_open(struct db *db, void *arg)
{
    return db_exec(db, "BEGIN; INSERT INTO t (id, v) VALUES (31, 'raw')");
}

static void test_raw_job(void **state)
{
    struct fixture *f = *state;
    struct raw_probe p = { 0 };

    install(f);
    f->hold = true;        /* hooks never see a raw job */
    store_set_readonly(f->s, true);
    assert_int_equal(store_write_flags(f->s, raw_job, &p, STORE_JOB_RAW), 0);
    assert_true(p.autocommit);       /* outside any transaction */
    assert_true(row_exists(f, 30));
    assert_int_equal(atomic_load(&f->admits), 0);
    assert_int_equal(atomic_load(&f->holds), 0);
    /* a raw job that leaves a transaction open is rolled back and fails */
    assert_true(store_write_flags(f->s, raw_leaves_tx_open, NULL, STORE_JOB_RAW) != 0);
    assert_false(row_exists(f, 31));
    store_set_readonly(f->s, false);
    f->hold = false;
    assert_int_equal(store_write(f->s, insert_row, (void *)32), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_admit_refuses_user_jobs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hold_and_finish_later, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hold_finish_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_raw_job, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
