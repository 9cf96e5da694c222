/*
 * test_store_commit — the writer thread: group commit, per-job savepoints,
 * hooks, commit failures, read-only mode, back-pressure, shutdown, reopen,
 * schema version checks, per-thread readers and checkpoints.
 *
 * Deterministic batching: a "gate" job blocks the writer inside its batch
 * until the test opens it, so every job submitted meanwhile is queued and
 * lands in the next batch(es).
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

#include "core/buf.h"
#include "core/metrics.h"
#include "store/store.h"

/* ----------------------------------------------------------------- helpers */

struct fixture {
    char dir[512];
    char path[600];
    struct store *s;
};

static int create_t(struct db *db, void *arg)
{
    return db_exec(db, "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)");
}

static void open_store(struct fixture *f, size_t queue_max, size_t batch_max)
{
    struct store_opts o = { .path = f->path, .queue_max = queue_max, .batch_max = batch_max };
    char err[256] = "";

    if (store_open(&o, &f->s, err, sizeof(err)) != 0)
        fail_msg("store_open: %s", err);
    assert_int_equal(store_write(f->s, create_t, NULL), 0);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    test_tmpdir(f->dir, sizeof(f->dir), "store-commit");
    snprintf(f->path, sizeof(f->path), "%s/refuge.db", f->dir);
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

static int64_t query_int(struct db *db, const char *sql)
{
    struct db_stmt *st = db_prepare(db, sql);
    int64_t v;

    assert_non_null(st);
    assert_int_equal(db_step(st), DB_ROW);
    v = db_col_int64(st, 0);
    db_done(st);
    return v;
}

static bool row_exists(struct db *db, int64_t id)
{
    struct db_stmt *st = db_prepare(db, "SELECT 1 FROM t WHERE id = $1");
    bool found;

    assert_int_equal(db_bind_int64(st, 1, id), 0);
    found = db_step(st) == DB_ROW;
    db_done(st);
    return found;
}

/* Counts done callbacks; tests wait for a number of them. */
struct counter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n;
};

static struct counter done_count = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 };

static void counter_reset(void)
{
    pthread_mutex_lock(&done_count.mu);
    done_count.n = 0;
    pthread_mutex_unlock(&done_count.mu);
}

static void counter_inc(void)
{
    pthread_mutex_lock(&done_count.mu);
    done_count.n++;
    pthread_cond_broadcast(&done_count.cv);
    pthread_mutex_unlock(&done_count.mu);
}

static void counter_wait(int n)
{
    pthread_mutex_lock(&done_count.mu);
    while (done_count.n < n)
        pthread_cond_wait(&done_count.cv, &done_count.mu);
    pthread_mutex_unlock(&done_count.mu);
}

/* A job that blocks the writer until opened. */
struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool started;
    bool open;
};

static struct gate gate = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false };

static int gate_fn(struct db *db, void *arg)
{
    pthread_mutex_lock(&gate.mu);
    gate.started = true;
    pthread_cond_broadcast(&gate.cv);
    while (!gate.open)
        pthread_cond_wait(&gate.cv, &gate.mu);
    pthread_mutex_unlock(&gate.mu);
    return 0;
}

static void gate_done(void *arg, int rc)
{
    assert_int_equal(rc, 0);
    counter_inc();
}

/* Submits the gate and returns once the writer is inside it. */
static void gate_close(struct store *s)
{
    pthread_mutex_lock(&gate.mu);
    gate.started = false;
    gate.open = false;
    pthread_mutex_unlock(&gate.mu);
    assert_int_equal(store_submit(s, gate_fn, gate_done, NULL), 0);
    pthread_mutex_lock(&gate.mu);
    while (!gate.started)
        pthread_cond_wait(&gate.cv, &gate.mu);
    pthread_mutex_unlock(&gate.mu);
}

static void gate_open(void)
{
    pthread_mutex_lock(&gate.mu);
    gate.open = true;
    pthread_cond_broadcast(&gate.cv);
    pthread_mutex_unlock(&gate.mu);
}

/* Insert job: inserts pre_id (if any), then id, then returns fail_rc. */
struct ins {
    int64_t id;
    int64_t pre_id;
    int fail_rc;
    atomic_int calls;
    int rc;
};

static int ins_fn(struct db *db, void *arg)
{
    struct ins *j = arg;
    struct db_stmt *st;
    int rc = 0;

    for (int k = 0; k < 2 && rc == 0; k++) {
        int64_t id = k == 0 ? j->pre_id : j->id;

        if (id == 0)
            continue;
        st = db_prepare(db, "INSERT INTO t (id, v) VALUES ($1, $2)");
        if (!st)
            return DB_ERR;
        db_bind_int64(st, 1, id);
        db_bind_text(st, 2, "v", -1);
        rc = db_step(st);
        db_done(st);
    }
    if (rc != DB_DONE && rc != 0)
        return rc;
    return j->fail_rc;
}

static void ins_done(void *arg, int rc)
{
    struct ins *j = arg;

    j->rc = rc;
    atomic_fetch_add(&j->calls, 1);
    counter_inc();
}

static int nop_fn(struct db *db, void *arg)
{
    return 0;
}

static void nop_done(void *arg, int rc)
{
    counter_inc();
}

/* ------------------------------------------------------------ group commit */

#define NTHREADS 8
#define PER_THREAD 500

struct submitter {
    struct store *s;
    struct ins *jobs;
};

static void *submit_many(void *arg)
{
    struct submitter *sub = arg;

    for (int k = 0; k < PER_THREAD; k++) {
        int rc;

        while ((rc = store_submit(sub->s, ins_fn, ins_done, &sub->jobs[k])) == -EAGAIN)
            usleep(1000);
        assert_int_equal(rc, 0);
    }
    return NULL;
}

static void test_group_commit(void **state)
{
    struct fixture *f = *state;
    struct ins *jobs = calloc(NTHREADS * PER_THREAD, sizeof(*jobs));
    struct submitter subs[NTHREADS];
    pthread_t th[NTHREADS];
    struct store_stats before, after;
    uint64_t hist[STORE_BATCH_HIST], nhist = 0;
    int nfailed = 0;
    struct buf out;

    open_store(f, 0, 0);
    store_stats(f->s, &before);
    counter_reset();
    for (int i = 0; i < NTHREADS * PER_THREAD; i++) {
        jobs[i].id = i + 1;
        /* some jobs fail on their own with a code unique to them */
        if (jobs[i].id % 97 == 0) {
            jobs[i].fail_rc = -(100000 + (int)jobs[i].id);
            nfailed++;
        }
    }
    for (int t = 0; t < NTHREADS; t++) {
        subs[t].s = f->s;
        subs[t].jobs = jobs + t * PER_THREAD;
        assert_int_equal(pthread_create(&th[t], NULL, submit_many, &subs[t]), 0);
    }
    for (int t = 0; t < NTHREADS; t++)
        pthread_join(th[t], NULL);
    counter_wait(NTHREADS * PER_THREAD);

    for (int i = 0; i < NTHREADS * PER_THREAD; i++) {
        assert_int_equal(atomic_load(&jobs[i].calls), 1);
        assert_int_equal(jobs[i].rc, jobs[i].fail_rc);       /* its own result */
        assert_int_equal(row_exists(store_reader(f->s), jobs[i].id), jobs[i].fail_rc == 0);
    }
    assert_int_equal(query_int(store_reader(f->s), "SELECT count(*) FROM t"),
                     NTHREADS * PER_THREAD - nfailed);

    store_stats(f->s, &after);
    assert_int_equal(after.jobs - before.jobs, NTHREADS * PER_THREAD);
    assert_int_equal(after.jobs_failed - before.jobs_failed, nfailed);
    assert_int_equal(after.commit_errors, 0);
    assert_int_equal(after.queue_len, 0);
    /* fewer transactions than jobs: the writer grouped them */
    assert_true(after.batches - before.batches < after.jobs - before.jobs);
    store_batch_sizes(f->s, hist);
    for (int k = 0; k < STORE_BATCH_HIST; k++)
        nhist += hist[k];
    assert_int_equal(nhist, after.batches);

    buf_init(&out, 1 << 20);
    assert_int_equal(metrics_render(&out), 0);
    assert_non_null(strstr(buf_cstr(&out), "refuge_store_commit_batch_size"));
    assert_non_null(strstr(buf_cstr(&out), "refuge_store_commit_seconds"));
    buf_free(&out);
    free(jobs);
}

/* A job failing inside a batch is rolled back alone. */
static void test_failing_job_does_not_poison_batch(void **state)
{
    struct fixture *f = *state;
    struct ins a = { .id = 1 }, b = { .pre_id = 3, .id = 1 }, c = { .id = 2 };
    struct store_stats before, after;
    struct db *r;

    open_store(f, 0, 0);
    counter_reset();
    store_stats(f->s, &before);
    gate_close(f->s);
    assert_int_equal(store_submit(f->s, ins_fn, ins_done, &a), 0);
    assert_int_equal(store_submit(f->s, ins_fn, ins_done, &b), 0);   /* 3 ok, then duplicate 1 */
    assert_int_equal(store_submit(f->s, ins_fn, ins_done, &c), 0);
    gate_open();
    counter_wait(4);

    assert_int_equal(a.rc, 0);
    assert_int_equal(b.rc, DB_ECONSTRAINT);
    assert_int_equal(c.rc, 0);
    r = store_reader(f->s);
    assert_true(row_exists(r, 1));
    assert_true(row_exists(r, 2));
    assert_false(row_exists(r, 3));     /* b's first insert went with its savepoint */
    store_stats(f->s, &after);
    assert_int_equal(after.batches - before.batches, 2);   /* gate, then a+b+c together */
    assert_int_equal(after.jobs_failed - before.jobs_failed, 1);
    assert_int_equal(after.commit_errors, 0);
}

static void test_batch_max(void **state)
{
    struct fixture *f = *state;
    struct ins jobs[10];
    uint64_t h0[STORE_BATCH_HIST], h1[STORE_BATCH_HIST];
    struct store_stats before, after;

    memset(jobs, 0, sizeof(jobs));
    open_store(f, 0, 4);
    counter_reset();
    store_batch_sizes(f->s, h0);
    store_stats(f->s, &before);
    gate_close(f->s);
    for (int i = 0; i < 10; i++) {
        jobs[i].id = 100 + i;
        assert_int_equal(store_submit(f->s, ins_fn, ins_done, &jobs[i]), 0);
    }
    gate_open();
    counter_wait(11);
    store_stats(f->s, &after);
    store_batch_sizes(f->s, h1);
    assert_int_equal(after.batches - before.batches, 4);   /* 1 + 4 + 4 + 2 */
    assert_int_equal(h1[0] - h0[0], 1);                    /* the gate alone */
    assert_int_equal(h1[1] - h0[1], 1);                    /* 2 */
    assert_int_equal(h1[2] - h0[2], 2);                    /* 4, 4 */
    for (int i = 0; i < 10; i++)
        assert_int_equal(jobs[i].rc, 0);
}

/* --------------------------------------------------------------- hooks */

struct hook_log {
    int begins, precommits, ends, committed_ends;
    size_t last_njobs;
    size_t fail_njobs;      /* precommit fails for a batch of this many jobs */
    int begin_rc;
    int rows_seen_at_precommit;
};

static int hk_begin(void *arg, struct db *db)
{
    struct hook_log *l = arg;

    l->begins++;
    return l->begin_rc;
}

static int hk_precommit(void *arg, struct db *db, size_t njobs)
{
    struct hook_log *l = arg;
    struct db_stmt *st = db_prepare(db, "SELECT count(*) FROM t");

    l->precommits++;
    l->last_njobs = njobs;
    /* the hook runs inside the transaction: it sees the batch's rows */
    if (st && db_step(st) == DB_ROW)
        l->rows_seen_at_precommit = (int)db_col_int64(st, 0);
    db_done(st);
    return njobs == l->fail_njobs ? -EPIPE : 0;
}

static void hk_end(void *arg, int committed)
{
    struct hook_log *l = arg;

    l->ends++;
    l->committed_ends += committed != 0;
}

static void test_hooks(void **state)
{
    struct fixture *f = *state;
    struct hook_log log = { .fail_njobs = 1000 };
    struct store_hooks h = { .arg = &log, .tx_begin = hk_begin, .tx_precommit = hk_precommit,
                             .tx_end = hk_end };
    struct ins a = { .id = 1 }, b = { .id = 2, .fail_rc = -EINVAL }, c = { .id = 3 };
    struct ins d = { .id = 10 }, e = { .id = 11 };
    struct store_stats st;

    open_store(f, 0, 0);
    store_set_hooks(f->s, &h);
    counter_reset();
    gate_close(f->s);
    assert_int_equal(store_submit(f->s, ins_fn, ins_done, &a), 0);
    assert_int_equal(store_submit(f->s, ins_fn, ins_done, &b), 0);
    assert_int_equal(store_submit(f->s, ins_fn, ins_done, &c), 0);
    gate_open();
    counter_wait(4);
    /* two batches: the gate alone, then a, b, c */
    assert_int_equal(log.begins, 2);
    assert_int_equal(log.precommits, 2);
    assert_int_equal(log.ends, 2);
    assert_int_equal(log.committed_ends, 2);
    assert_int_equal(log.last_njobs, 2);             /* a and c; b rolled back */
    assert_int_equal(log.rows_seen_at_precommit, 2);
    assert_int_equal(a.rc, 0);
    assert_int_equal(b.rc, -EINVAL);
    assert_int_equal(c.rc, 0);

    /* a failing precommit aborts its whole batch: every job gets its error */
    log.fail_njobs = 2;
    counter_reset();
    gate_close(f->s);
    assert_int_equal(store_submit(f->s, ins_fn, ins_done, &d), 0);
    assert_int_equal(store_submit(f->s, ins_fn, ins_done, &e), 0);
    gate_open();
    counter_wait(3);
    assert_int_equal(d.rc, -EPIPE);
    assert_int_equal(e.rc, -EPIPE);
    assert_false(row_exists(store_reader(f->s), 10));
    assert_false(row_exists(store_reader(f->s), 11));
    assert_int_equal(log.ends, 4);
    assert_int_equal(log.committed_ends, 3);
    store_stats(f->s, &st);
    assert_int_equal(st.commit_errors, 1);

    /* a failing tx_begin: the job never commits, tx_end still runs */
    log.begin_rc = -ENOLINK;
    assert_int_equal(store_write(f->s, ins_fn, &(struct ins){ .id = 13 }), -ENOLINK);
    assert_false(row_exists(store_reader(f->s), 13));
    assert_int_equal(log.begins, 5);
    assert_int_equal(log.ends, 5);
    assert_int_equal(log.committed_ends, 3);
    log.begin_rc = 0;

    /* hooks removed: no more calls */
    store_set_hooks(f->s, NULL);
    assert_int_equal(store_write(f->s, ins_fn, &(struct ins){ .id = 12 }), 0);
    assert_int_equal(log.begins, 5);
    assert_true(row_exists(store_reader(f->s), 12));
}

/* If COMMIT fails (a deferred foreign key here) every job gets the error and
 * nothing of the batch remains. */
static int make_fk_tables(struct db *db, void *arg)
{
    int rc = db_exec(db, "CREATE TABLE p (id INTEGER PRIMARY KEY)");

    if (rc == 0)
        rc = db_exec(db, "CREATE TABLE c (id INTEGER PRIMARY KEY, pid INTEGER"
                         " REFERENCES p(id) DEFERRABLE INITIALLY DEFERRED)");
    return rc;
}

static int orphan_fn(struct db *db, void *arg)
{
    return db_exec(db, "INSERT INTO c (id, pid) VALUES (1, 999)");
}

static void orphan_done(void *arg, int rc)
{
    *(int *)arg = rc;
    counter_inc();
}

static void test_commit_failure(void **state)
{
    struct fixture *f = *state;
    struct ins x = { .id = 10 }, z = { .id = 11 };
    int orphan_rc = 12345;
    struct store_stats st;

    open_store(f, 0, 0);
    assert_int_equal(store_write(f->s, make_fk_tables, NULL), 0);
    counter_reset();
    gate_close(f->s);
    assert_int_equal(store_submit(f->s, ins_fn, ins_done, &x), 0);
    assert_int_equal(store_submit(f->s, orphan_fn, orphan_done, &orphan_rc), 0);
    assert_int_equal(store_submit(f->s, ins_fn, ins_done, &z), 0);
    gate_open();
    counter_wait(4);
    assert_int_equal(x.rc, DB_ECONSTRAINT);
    assert_int_equal(orphan_rc, DB_ECONSTRAINT);
    assert_int_equal(z.rc, DB_ECONSTRAINT);
    assert_false(row_exists(store_reader(f->s), 10));
    assert_false(row_exists(store_reader(f->s), 11));
    assert_int_equal(query_int(store_reader(f->s), "SELECT count(*) FROM c"), 0);
    store_stats(f->s, &st);
    assert_int_equal(st.commit_errors, 1);
    /* the writer recovered: the next batch commits */
    assert_int_equal(store_write(f->s, ins_fn, &(struct ins){ .id = 12 }), 0);
    assert_true(row_exists(store_reader(f->s), 12));
}

/* A job that ends the transaction itself (here: ROLLBACK) breaks the batch:
 * the writer notices, every job gets an error, and the next batch works. */
static int rollback_fn(struct db *db, void *arg)
{
    return db_exec(db, "ROLLBACK");
}

static void test_job_ends_transaction(void **state)
{
    struct fixture *f = *state;
    struct ins a = { .id = 30 }, c = { .id = 31 };
    int b_rc = 12345;
    struct store_stats st;

    open_store(f, 0, 0);
    counter_reset();
    gate_close(f->s);
    assert_int_equal(store_submit(f->s, ins_fn, ins_done, &a), 0);
    assert_int_equal(store_submit(f->s, rollback_fn, orphan_done, &b_rc), 0);
    assert_int_equal(store_submit(f->s, ins_fn, ins_done, &c), 0);
    gate_open();
    counter_wait(4);
    assert_int_equal(a.rc, DB_ERR);
    assert_int_equal(b_rc, DB_ERR);
    assert_int_equal(c.rc, DB_ERR);
    assert_false(row_exists(store_reader(f->s), 30));
    assert_false(row_exists(store_reader(f->s), 31));
    store_stats(f->s, &st);
    assert_int_equal(st.commit_errors, 1);
    assert_int_equal(store_write(f->s, ins_fn, &(struct ins){ .id = 32 }), 0);
    assert_true(row_exists(store_reader(f->s), 32));
}

/* ------------------------------------------------------- sync, ro, limits */

static int ret_arg_fn(struct db *db, void *arg)
{
    return *(int *)arg;
}

static void test_store_write_sync(void **state)
{
    struct fixture *f = *state;
    int einval = -EINVAL;

    open_store(f, 0, 0);
    assert_int_equal(store_write(f->s, ins_fn, &(struct ins){ .id = 5 }), 0);
    assert_true(row_exists(store_reader(f->s), 5));        /* visible when store_write returns */
    assert_int_equal(store_write(f->s, ret_arg_fn, &einval), -EINVAL);
    assert_int_equal(store_write(f->s, ins_fn, &(struct ins){ .id = 5 }), DB_ECONSTRAINT);
}

static int nested_write_fn(struct db *db, void *arg)
{
    return store_write(arg, nop_fn, NULL);
}

static void test_write_from_writer_thread(void **state)
{
    struct fixture *f = *state;

    open_store(f, 0, 0);
    assert_int_equal(store_write(f->s, nested_write_fn, f->s), -EDEADLK);
}

static int flag_fn(struct db *db, void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
    return 0;
}

static void rc_done(void *arg, int rc)
{
    *(int *)arg = rc;
    counter_inc();
}

static void test_readonly(void **state)
{
    struct fixture *f = *state;
    atomic_int ran = 0;
    int async_rc = 1;

    open_store(f, 0, 0);
    assert_true(store_writable(f->s));
    store_set_readonly(f->s, true);
    assert_false(store_writable(f->s));
    assert_int_equal(store_write(f->s, flag_fn, &ran), -EROFS);
    assert_int_equal(atomic_load(&ran), 0);
    counter_reset();
    assert_int_equal(store_submit(f->s, flag_fn, rc_done, &async_rc), 0);   /* accepted... */
    counter_wait(1);
    assert_int_equal(async_rc, -EROFS);                                     /* ...refused via done */
    assert_int_equal(atomic_load(&ran), 0);
    /* system jobs (replication apply) still run */
    assert_int_equal(store_write_flags(f->s, flag_fn, &ran, STORE_JOB_SYSTEM), 0);
    assert_int_equal(atomic_load(&ran), 1);
    store_set_readonly(f->s, false);
    assert_true(store_writable(f->s));
    assert_int_equal(store_write(f->s, flag_fn, &ran), 0);
    assert_int_equal(atomic_load(&ran), 2);
}

static void never_done(void *arg, int rc)
{
    fail_msg("done called for a job store_submit refused");
}

static void test_queue_full(void **state)
{
    struct fixture *f = *state;
    struct ins a = { .id = 1 }, b = { .id = 2 };
    struct store_stats st;

    open_store(f, 2, 0);
    counter_reset();
    gate_close(f->s);                         /* taken off the queue: writer busy */
    assert_int_equal(store_submit(f->s, ins_fn, ins_done, &a), 0);
    assert_int_equal(store_submit(f->s, ins_fn, ins_done, &b), 0);
    assert_int_equal(store_submit(f->s, nop_fn, never_done, NULL), -EAGAIN);
    assert_int_equal(store_write(f->s, nop_fn, NULL), -EAGAIN);
    store_stats(f->s, &st);
    assert_int_equal(st.queue_len, 2);
    gate_open();
    counter_wait(3);
    assert_int_equal(a.rc, 0);
    assert_int_equal(b.rc, 0);
    assert_int_equal(store_submit(f->s, nop_fn, nop_done, NULL), 0);   /* room again */
    counter_wait(4);
}

/* ------------------------------------------------------ close and reopen */

struct closer_probe {
    struct store *s;
    int accepted;
};

/* Submits until close has begun (-ESHUTDOWN), then lets the writer go on. */
static void *probe_until_shutdown(void *arg)
{
    struct closer_probe *p = arg;

    for (;;) {
        int rc = store_submit(p->s, nop_fn, nop_done, NULL);

        if (rc == -ESHUTDOWN)
            break;
        assert_true(rc == 0 || rc == -EAGAIN);
        p->accepted += rc == 0;
        usleep(1000);
    }
    gate_open();
    return NULL;
}

static void test_close_drains(void **state)
{
    struct fixture *f = *state;
    enum { N = 50 };
    struct ins jobs[N];
    struct closer_probe probe;
    pthread_t th;
    char err[256];
    struct store_opts o = { .path = f->path };

    memset(jobs, 0, sizeof(jobs));
    open_store(f, 0, 0);
    counter_reset();
    gate_close(f->s);
    for (int i = 0; i < N; i++) {
        jobs[i].id = 1000 + i;
        assert_int_equal(store_submit(f->s, ins_fn, ins_done, &jobs[i]), 0);
    }
    probe.s = f->s;
    probe.accepted = 0;
    assert_int_equal(pthread_create(&th, NULL, probe_until_shutdown, &probe), 0);
    store_close(f->s);                          /* returns once everything ran */
    f->s = NULL;
    pthread_join(th, NULL);
    pthread_mutex_lock(&done_count.mu);
    assert_int_equal(done_count.n, 1 + N + probe.accepted);
    pthread_mutex_unlock(&done_count.mu);
    for (int i = 0; i < N; i++)
        assert_int_equal(jobs[i].rc, 0);

    /* reopen: the drained jobs were committed */
    assert_int_equal(store_open(&o, &f->s, err, sizeof(err)), 0);
    assert_int_equal(query_int(store_reader(f->s), "SELECT count(*) FROM t WHERE id >= 1000"), N);
}

static void test_reopen_and_idempotent_migrations(void **state)
{
    struct fixture *f = *state;
    struct store_opts o = { .path = f->path };
    int64_t tables, indexes;
    char err[256];

    open_store(f, 0, 0);
    for (int i = 1; i <= 20; i++)
        assert_int_equal(store_write(f->s, ins_fn, &(struct ins){ .id = i }), 0);
    tables = query_int(store_reader(f->s), "SELECT count(*) FROM sqlite_master WHERE type = 'table'");
    indexes = query_int(store_reader(f->s), "SELECT count(*) FROM sqlite_master WHERE type = 'index'");
    store_close(f->s);
    f->s = NULL;

    for (int round = 0; round < 2; round++) {
        assert_int_equal(store_open(&o, &f->s, err, sizeof(err)), 0);
        assert_int_equal(query_int(store_reader(f->s), "SELECT count(*) FROM t"), 20);
        assert_int_equal(query_int(store_reader(f->s), "PRAGMA user_version"),
                         store_schema_version_latest());
        assert_int_equal(query_int(store_reader(f->s),
                                   "SELECT count(*) FROM sqlite_master WHERE type = 'table'"), tables);
        assert_int_equal(query_int(store_reader(f->s),
                                   "SELECT count(*) FROM sqlite_master WHERE type = 'index'"), indexes);
        {
            struct db_stmt *st = db_prepare(store_reader(f->s), "PRAGMA journal_mode");

            assert_int_equal(db_step(st), DB_ROW);
            assert_string_equal(db_col_text(st, 0), "wal");
            db_done(st);
        }
        store_close(f->s);
        f->s = NULL;
    }
}

static void test_newer_schema_refused(void **state)
{
    struct fixture *f = *state;
    struct store_opts o = { .path = f->path };
    struct store *s2 = (struct store *)&s2;
    struct db *raw;
    char err[256] = "", want[256], sql[64];
    int newer = store_schema_version_latest() + 4;

    open_store(f, 0, 0);
    store_close(f->s);
    f->s = NULL;
    assert_int_equal(db_open(f->path, 0, &raw, err, sizeof(err)), 0);
    snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", newer);
    assert_int_equal(db_exec(raw, sql), 0);
    db_close(raw);

    assert_int_equal(store_open(&o, &s2, err, sizeof(err)), -EPROTO);
    assert_null(s2);
    snprintf(want, sizeof(want),
             "database schema version %d is newer than this refuged supports (%d)",
             newer, store_schema_version_latest());
    assert_string_equal(err, want);

    /* the refused database was not touched */
    assert_int_equal(db_open(f->path, 0, &raw, err, sizeof(err)), 0);
    {
        struct db_stmt *st = db_prepare(raw, "PRAGMA user_version");

        assert_int_equal(db_step(st), DB_ROW);
        assert_int_equal(db_col_int64(st, 0), newer);
        db_done(st);
    }
    db_close(raw);
}

static void test_open_error(void **state)
{
    struct fixture *f = *state;
    char path[700], err[256] = "";
    struct store_opts o = { .path = path };
    struct store *s = (struct store *)&s;

    snprintf(path, sizeof(path), "%s/missing/dir/refuge.db", f->dir);
    assert_true(store_open(&o, &s, err, sizeof(err)) < 0);
    assert_null(s);
    assert_non_null(strstr(err, path));
}

/* ------------------------------------------------------------------ readers */

#define NREADERS 4

struct reader_ctx {
    struct store *s;
    pthread_barrier_t *b1, *b2, *b3, *b4;
    struct db *conn;
    int64_t first, second;
    int write_rc;
    bool exit_early;
};

static void *reader_thread(void *arg)
{
    struct reader_ctx *c = arg;

    c->conn = store_reader(c->s);
    assert_non_null(c->conn);
    assert_ptr_equal(store_reader(c->s), c->conn);          /* one per thread */
    c->first = query_int(c->conn, "SELECT count(*) FROM t");
    c->write_rc = db_exec(c->conn, "INSERT INTO t (id) VALUES (-1)");
    pthread_barrier_wait(c->b1);                             /* main writes one more row */
    pthread_barrier_wait(c->b2);
    c->second = query_int(c->conn, "SELECT count(*) FROM t");
    pthread_barrier_wait(c->b3);
    if (c->exit_early)
        return NULL;                                         /* destructor closes it */
    pthread_barrier_wait(c->b4);                             /* alive across store_close */
    return NULL;
}

static void test_readers_on_threads(void **state)
{
    struct fixture *f = *state;
    struct reader_ctx ctx[NREADERS];
    pthread_t th[NREADERS];
    pthread_barrier_t b1, b2, b3, b4;
    struct db *mine;

    open_store(f, 0, 0);
    for (int i = 1; i <= 100; i++)
        assert_int_equal(store_write(f->s, ins_fn, &(struct ins){ .id = i }), 0);
    mine = store_reader(f->s);
    pthread_barrier_init(&b1, NULL, NREADERS + 1);
    pthread_barrier_init(&b2, NULL, NREADERS + 1);
    pthread_barrier_init(&b3, NULL, NREADERS + 1);
    pthread_barrier_init(&b4, NULL, NREADERS / 2 + 1);
    for (int i = 0; i < NREADERS; i++) {
        ctx[i] = (struct reader_ctx){ .s = f->s, .b1 = &b1, .b2 = &b2, .b3 = &b3, .b4 = &b4,
                                      .exit_early = i < NREADERS / 2 };
        assert_int_equal(pthread_create(&th[i], NULL, reader_thread, &ctx[i]), 0);
    }
    pthread_barrier_wait(&b1);
    assert_int_equal(store_write(f->s, ins_fn, &(struct ins){ .id = 101 }), 0);
    pthread_barrier_wait(&b2);
    pthread_barrier_wait(&b3);
    for (int i = 0; i < NREADERS / 2; i++)
        pthread_join(th[i], NULL);                 /* these exited: their readers closed */

    for (int i = 0; i < NREADERS; i++) {
        assert_int_equal(ctx[i].first, 100);
        assert_int_equal(ctx[i].second, 101);
        assert_int_equal(ctx[i].write_rc, DB_EREADONLY);
        assert_ptr_not_equal(ctx[i].conn, mine);
        for (int k = 0; k < i; k++)
            assert_ptr_not_equal(ctx[i].conn, ctx[k].conn);
    }
    /* close while two reader threads are still alive: their connections are
     * closed here, and no destructor touches them afterwards */
    store_close(f->s);
    f->s = NULL;
    pthread_barrier_wait(&b4);
    for (int i = NREADERS / 2; i < NREADERS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&b1);
    pthread_barrier_destroy(&b2);
    pthread_barrier_destroy(&b3);
    pthread_barrier_destroy(&b4);
}

/* --------------------------------------------------------------- checkpoints */

static int insert_blob_fn(struct db *db, void *arg)
{
    static char blob[20 * 1024];
    struct db_stmt *st = db_prepare(db, "INSERT INTO t (id, v) VALUES ($1, $2)");
    int rc;

    memset(blob, 'b', sizeof(blob));
    db_bind_int64(st, 1, *(int64_t *)arg);
    db_bind_blob(st, 2, blob, sizeof(blob));
    rc = db_step(st);
    db_done(st);
    return rc == DB_DONE ? 0 : rc;
}

static void test_checkpoints(void **state)
{
    struct fixture *f = *state;
    struct store_opts o = { .path = f->path, .wal_checkpoint_bytes = 64 * 1024,
                            .wal_truncate_bytes = 256 * 1024 };
    struct store_stats st;
    struct db_stmt *pin;
    char err[256];
    int64_t id = 1;

    assert_int_equal(store_open(&o, &f->s, err, sizeof(err)), 0);
    assert_int_equal(store_write(f->s, create_t, NULL), 0);
    /* 4 MB through the WAL: passive checkpoints keep it near the threshold */
    for (int i = 0; i < 200; i++, id++)
        assert_int_equal(store_write(f->s, insert_blob_fn, &id), 0);
    assert_int_equal(store_write(f->s, nop_fn, NULL), 0);   /* after the last checkpoint */
    store_stats(f->s, &st);
    assert_true(st.wal_bytes > 0);
    assert_true(st.wal_bytes < 512 * 1024);

    /* a reader holding a snapshot keeps the WAL from being reset: it grows */
    pin = db_prepare(store_reader(f->s), "SELECT id FROM t");
    assert_int_equal(db_step(pin), DB_ROW);
    for (int i = 0; i < 30; i++, id++)
        assert_int_equal(store_write(f->s, insert_blob_fn, &id), 0);
    store_stats(f->s, &st);
    assert_true(st.wal_bytes > 256 * 1024);
    db_done(pin);

    /* once released, the file is truncated (after the 1 s back-off of the
     * TRUNCATE that the pinned reader made fail) */
    usleep(1100 * 1000);
    assert_int_equal(store_write(f->s, insert_blob_fn, &id), 0);
    assert_int_equal(store_write(f->s, nop_fn, NULL), 0);
    store_stats(f->s, &st);
    assert_true(st.wal_bytes < 64 * 1024);
    assert_int_equal(query_int(store_reader(f->s), "SELECT count(*) FROM t"), id);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failing_job_does_not_poison_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_max, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hooks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_job_ends_transaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_write_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_from_writer_thread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readonly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_drains, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_and_idempotent_migrations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readers_on_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoints, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
