/*
 * store — the node's database: a single writer thread with group commit, and
 * one read connection per thread.
 *
 * Why this file exists: SQLite allows one writer at a time and each durable
 * commit costs an fsync. Funnelling every write through one thread lets many
 * callers' jobs share one transaction and one fsync (group commit), gives the
 * replication capture a single place to see every transaction (the hooks),
 * and removes SQLITE_BUSY between writers entirely.
 *
 * Life cycle:
 *   store_open   opens the writer connection (WAL, synchronous=FULL), runs the
 *                migrations, starts the writer thread.
 *   store_submit queues a job; the writer takes up to batch_max jobs:
 *                  BEGIN IMMEDIATE; tx_begin hook;
 *                  for each job: SAVEPOINT job; fn(); RELEASE | ROLLBACK TO;
 *                  tx_precommit hook; COMMIT; tx_end hook;
 *                then calls done(arg, rc) for every job of the batch, in order,
 *                unless the tx_hold hook takes the batch over (replication ack
 *                modes), which later calls store_completion_finish().
 *                A tx_admit hook may hold a batch back before BEGIN (bounded
 *                replication lag) or fail its non-system jobs.
 *                A STORE_JOB_RAW job runs alone, outside any transaction.
 *   store_close  refuses new jobs (-ESHUTDOWN), lets the writer drain the
 *                queue (queued jobs still run), joins it, closes every
 *                connection. Call it once the threads that used the store are
 *                idle: a thread must not use its reader after store_close.
 *
 * Durability: the writer runs synchronous=FULL. In WAL mode NORMAL survives a
 * process crash but may lose the last commits on power loss, and a write we
 * acknowledged (and maybe already replicated) must not disappear. FULL costs
 * one fsync of the WAL per COMMIT, i.e. per batch, which is what group commit
 * amortizes.
 *
 * Checkpoints are ours (wal_autocheckpoint=0 everywhere) and run on the writer
 * thread after a commit, after the done callbacks: PASSIVE when the live part
 * of the WAL (frames since the last reset, reported by sqlite3_wal_hook)
 * exceeds wal_checkpoint_bytes; TRUNCATE when the -wal file itself (stat)
 * exceeds wal_truncate_bytes, which only happens when readers kept the WAL from
 * being reset. A PASSIVE checkpoint does not shrink the file, so deciding it on
 * the file size would checkpoint after every commit once the file had grown.
 *
 * Errors: a job's fn returns 0 or a negative code (DB_E* or -errno), passed
 * to its done unchanged. If the batch cannot commit (BEGIN, a hook or COMMIT
 * fails, or SQLite aborted the whole transaction inside a job, e.g. disk
 * full), every job that ran gets that error and nothing of the batch remains.
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "core/log.h"
#include "core/metrics.h"
#include "core/timeutil.h"
#include "core/xmalloc.h"
#include "store/store.h"

#define DEFAULT_QUEUE_MAX 10000
#define DEFAULT_BATCH_MAX 256
#define DEFAULT_CKPT_BYTES (4LL << 20)
#define DEFAULT_TRUNC_BYTES (64LL << 20)
#define BUSY_TIMEOUT_MS 5000         /* as db_open sets it */
#define TRUNCATE_BUSY_MS 10          /* how long TRUNCATE may wait for readers */
#define TRUNCATE_BACKOFF_US 1000000  /* after a TRUNCATE blocked by readers */

struct job {
    store_write_fn fn;
    void *arg;           /* for fn */
    store_done_fn done;
    void *done_arg;      /* for done: arg, except for store_write */
    unsigned flags;
    int rc;
    bool runnable;      /* false: refused (-EROFS) without running */
    struct job *next;
};

/* A held batch: the jobs of one committed transaction, still linked. */
struct store_completion {
    struct job *jobs;
};

struct reader {
    struct store *s;
    struct db *db;
    struct reader *prev, *next;
};

struct store {
    char *path;
    char *wal_path;
    size_t queue_max;
    size_t batch_max;
    int64_t ckpt_bytes;
    int64_t trunc_bytes;

    /* shared with submitters, under mu */
    pthread_mutex_t mu;
    pthread_cond_t work;
    struct job *head, *tail;
    size_t qlen;
    bool closing;
    struct store_hooks hooks;
    uint64_t batches, jobs, jobs_failed, commit_errors;
    uint64_t hist[STORE_BATCH_HIST];
    atomic_bool ro;

    /* writer thread only (and store_open before it starts) */
    struct db *w;
    pthread_t writer;
    bool writer_started;
    int page_size;
    int wal_frames;              /* from the WAL hook: frames since the last reset */
    int64_t next_truncate_us;

    /* per-thread readers */
    pthread_key_t key;
    bool key_created;
    pthread_mutex_t rmu;
    struct reader *readers;

    struct metric *m_batch;
    struct metric *m_commit;
};

/* The store whose writer runs on this thread (NULL elsewhere): a job that
 * waits for its own writer would wait forever. */
static _Thread_local struct store *writer_of;

static int db_errno(int rc)
{
    switch (rc) {
    case DB_EBUSY:
        return -EBUSY;
    case DB_EFULL:
        return -ENOSPC;
    case DB_EREADONLY:
        return -EROFS;
    default:
        return -EIO;
    }
}

/* Prepares (cached), steps to completion, releases. 0 or DB_E*. */
static int run_sql(struct db *db, const char *sql)
{
    struct db_stmt *st = db_prepare(db, sql);
    int rc;

    if (!st)
        return DB_ERR;
    do
        rc = db_step(st);
    while (rc == DB_ROW);
    db_done(st);
    return rc;
}

static int64_t wal_file_bytes(const struct store *s)
{
    struct stat sb;

    return stat(s->wal_path, &sb) == 0 ? (int64_t)sb.st_size : 0;
}

/* ------------------------------------------------------------ writer thread */

static bool in_transaction(struct store *s)
{
    return !sqlite3_get_autocommit(db_native(s->w));
}

static void run_job(struct store *s, struct job *j)
{
    int rc = run_sql(s->w, "SAVEPOINT job");

    if (rc != 0) {
        j->rc = rc;
        return;
    }
    rc = j->fn(s->w, j->arg);
    if (rc == 0)
        rc = run_sql(s->w, "RELEASE job");
    if (rc != 0) {
        run_sql(s->w, "ROLLBACK TO job");
        run_sql(s->w, "RELEASE job");
    }
    j->rc = rc;
}

static int hist_bucket(size_t n)
{
    int k = 0;

    while (n > 1 && k < STORE_BATCH_HIST - 1) {
        n >>= 1;
        k++;
    }
    return k;
}

static int wal_hook(void *arg, sqlite3 *h, const char *dbname, int frames)
{
    struct store *s = arg;

    s->wal_frames = frames;
    return SQLITE_OK;
}

static void checkpoint(struct store *s)
{
    sqlite3 *h = db_native(s->w);
    int64_t live = s->wal_frames > 0 ? 32 + (int64_t)s->wal_frames * (s->page_size + 24) : 0;
    int64_t file = wal_file_bytes(s);
    int nlog = 0, nckpt = 0, rc;

    if (file > s->trunc_bytes && time_mono_us() >= s->next_truncate_us) {
        sqlite3_busy_timeout(h, TRUNCATE_BUSY_MS);
        rc = sqlite3_wal_checkpoint_v2(h, "main", SQLITE_CHECKPOINT_TRUNCATE, &nlog, &nckpt);
        sqlite3_busy_timeout(h, BUSY_TIMEOUT_MS);
        if (rc == SQLITE_OK) {
            s->wal_frames = 0;
            log_debug("wal truncated", "bytes", log_i64(file), NULL);
        } else {
            s->next_truncate_us = time_mono_us() + TRUNCATE_BACKOFF_US;
            if ((rc & 0xff) != SQLITE_BUSY)
                log_warn("wal checkpoint (truncate) failed", "error", sqlite3_errmsg(h), NULL);
        }
    } else if (live > s->ckpt_bytes) {
        rc = sqlite3_wal_checkpoint_v2(h, "main", SQLITE_CHECKPOINT_PASSIVE, &nlog, &nckpt);
        if (rc != SQLITE_OK)
            log_warn("wal checkpoint failed", "error", sqlite3_errmsg(h), NULL);
    }
}

/* Runs the runnable jobs of a batch in one transaction. Returns true when it
 * committed; otherwise nothing of the batch remains and every runnable job's
 * rc is the batch's error. */
static bool transact(struct store *s, struct job *jobs, const struct store_hooks *h)
{
    bool began = false, hooked = false, committed = false;
    size_t ok = 0;
    int64_t t0;
    int rc;
    struct job *j;

    rc = run_sql(s->w, "BEGIN IMMEDIATE");
    if (rc != 0) {
        log_error("store: BEGIN failed", "error", db_errmsg(s->w), NULL);
        goto out;
    }
    began = true;
    if (h->tx_begin) {
        hooked = true;
        rc = h->tx_begin(h->arg, s->w);
        if (rc != 0) {
            log_error("store: tx_begin hook failed", "rc", log_i64(rc), NULL);
            goto out;
        }
    }
    for (j = jobs; j; j = j->next) {
        if (!j->runnable)
            continue;
        run_job(s, j);
        if (!in_transaction(s)) {
            /* SQLite rolled the whole transaction back (disk full, I/O
             * error...): the earlier jobs' changes are gone too. */
            rc = j->rc != 0 ? j->rc : DB_ERR;
            log_error("store: transaction aborted inside a job", "rc", log_i64(rc),
                      "error", db_errmsg(s->w), NULL);
            goto out;
        }
        ok += j->rc == 0;
    }
    if (h->tx_precommit) {
        rc = h->tx_precommit(h->arg, s->w, ok);
        if (rc != 0) {
            log_error("store: tx_precommit hook failed", "rc", log_i64(rc), NULL);
            goto out;
        }
    }
    t0 = time_mono_us();
    rc = run_sql(s->w, "COMMIT");
    if (rc != 0) {
        log_error("store: COMMIT failed", "error", db_errmsg(s->w), NULL);
        goto out;
    }
    committed = true;
    metric_observe(s->m_commit, NULL, (double)(time_mono_us() - t0) / 1e6);
out:
    if (began && !committed && in_transaction(s))
        run_sql(s->w, "ROLLBACK");
    if (hooked && h->tx_end)
        h->tx_end(h->arg, committed);
    if (!committed) {
        for (j = jobs; j; j = j->next) {
            if (j->runnable)
                j->rc = rc;
        }
    }
    return committed;
}

static void complete_jobs(struct job *jobs, int err)
{
    struct job *j, *next;

    for (j = jobs; j; j = next) {
        next = j->next;
        if (j->done)
            j->done(j->done_arg, err != 0 && j->rc == 0 ? err : j->rc);
        free(j);
    }
}

void store_completion_finish(struct store_completion *c, int err)
{
    complete_jobs(c->jobs, err);
    free(c);
}

size_t store_completion_count(const struct store_completion *c)
{
    size_t n = 0;

    for (const struct job *j = c->jobs; j; j = j->next)
        n++;
    return n;
}

/* A raw job: alone, outside any transaction, no hooks. */
static void run_raw(struct store *s, struct job *j)
{
    j->rc = j->fn(s->w, j->arg);
    if (in_transaction(s)) {
        log_error("store: raw job left a transaction open; rolled back", NULL);
        run_sql(s->w, "ROLLBACK");
        if (j->rc == 0)
            j->rc = DB_ERR;
    }
    pthread_mutex_lock(&s->mu);
    s->jobs++;
    s->jobs_failed += j->rc != 0;
    pthread_mutex_unlock(&s->mu);
    if (j->done)
        j->done(j->done_arg, j->rc);
    free(j);
    checkpoint(s);
}

/* Runs one batch (jobs linked through next, n of them), then completes every
 * job in order and frees it. In read-only mode only system jobs run. */
static void run_batch(struct store *s, struct job *jobs, size_t n, bool ro,
                      const struct store_hooks *h)
{
    size_t runnable = 0, failed = 0, user = 0;
    bool committed = false;
    struct job *j;

    if (n == 1 && (jobs->flags & STORE_JOB_RAW)) {
        run_raw(s, jobs);
        return;
    }
    for (j = jobs; j; j = j->next) {
        j->runnable = !ro || (j->flags & STORE_JOB_SYSTEM);
        j->rc = j->runnable ? 0 : -EROFS;
        user += j->runnable && !(j->flags & STORE_JOB_SYSTEM);
    }
    if (user > 0 && h->tx_admit) {
        int arc = h->tx_admit(h->arg, user);

        if (arc != 0) {
            for (j = jobs; j; j = j->next) {
                if (j->runnable && !(j->flags & STORE_JOB_SYSTEM)) {
                    j->runnable = false;
                    j->rc = arc;
                }
            }
        }
    }
    for (j = jobs; j; j = j->next)
        runnable += j->runnable;
    if (runnable > 0) {
        committed = transact(s, jobs, h);
        metric_observe(s->m_batch, NULL, (double)runnable);
    }
    for (j = jobs; j; j = j->next)
        failed += j->rc != 0;
    pthread_mutex_lock(&s->mu);
    if (runnable > 0) {
        s->batches++;
        s->hist[hist_bucket(runnable)]++;
        s->commit_errors += !committed;
    }
    s->jobs += n;
    s->jobs_failed += failed;
    pthread_mutex_unlock(&s->mu);

    if (committed && h->tx_hold) {
        struct store_completion *c = xmalloc(sizeof(*c));

        c->jobs = jobs;
        if (h->tx_hold(h->arg, c))
            jobs = NULL;
        else
            free(c);
    }
    complete_jobs(jobs, 0);
    if (committed)
        checkpoint(s);
}

static void *writer_main(void *arg)
{
    struct store *s = arg;

    pthread_setname_np(pthread_self(), "refuge-writer");
    writer_of = s;
    for (;;) {
        struct store_hooks hooks;
        struct job *first, *last;
        size_t n = 1;
        bool ro;

        pthread_mutex_lock(&s->mu);
        while (!s->head && !s->closing)
            pthread_cond_wait(&s->work, &s->mu);
        if (!s->head) {               /* closing and drained */
            pthread_mutex_unlock(&s->mu);
            break;
        }
        first = last = s->head;
        /* a raw job runs alone; a batch stops before one */
        while (!(first->flags & STORE_JOB_RAW) && n < s->batch_max && last->next &&
               !(last->next->flags & STORE_JOB_RAW)) {
            last = last->next;
            n++;
        }
        s->head = last->next;
        if (!s->head)
            s->tail = NULL;
        last->next = NULL;
        s->qlen -= n;
        hooks = s->hooks;
        ro = atomic_load(&s->ro);
        pthread_mutex_unlock(&s->mu);

        run_batch(s, first, n, ro, &hooks);
    }
    return NULL;
}

/* ------------------------------------------------------------------ readers */

static void reader_unlink(struct store *s, struct reader *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        s->readers = r->next;
    if (r->next)
        r->next->prev = r->prev;
}

/* pthread key destructor: the thread exits before the store closes. */
static void reader_destroy(void *p)
{
    struct reader *r = p;
    struct store *s = r->s;

    pthread_mutex_lock(&s->rmu);
    reader_unlink(s, r);
    pthread_mutex_unlock(&s->rmu);
    db_close(r->db);
    free(r);
}

struct db *store_reader(struct store *s)
{
    struct reader *r = pthread_getspecific(s->key);
    char err[256];
    int rc;

    if (r)
        return r->db;
    r = xcalloc(1, sizeof(*r));
    rc = db_open(s->path, DB_OPEN_READONLY, &r->db, err, sizeof(err));
    if (rc == 0)
        rc = db_exec(r->db, "PRAGMA wal_autocheckpoint=0");
    if (rc != 0) {
        log_error("store: cannot open read connection", "error",
                  r->db ? db_errmsg(r->db) : err, NULL);
        db_close(r->db);
        free(r);
        return NULL;
    }
    r->s = s;
    pthread_mutex_lock(&s->rmu);
    r->next = s->readers;
    if (s->readers)
        s->readers->prev = r;
    s->readers = r;
    pthread_mutex_unlock(&s->rmu);
    pthread_setspecific(s->key, r);
    return r->db;
}

/* ---------------------------------------------------------------- open/close */

static int open_writer(struct store *s, char *err, size_t errlen)
{
    struct db_stmt *st;
    int rc;

    rc = db_open(s->path, 0, &s->w, err, errlen);
    if (rc != 0)
        return db_errno(rc);
    st = db_prepare(s->w, "PRAGMA journal_mode=WAL");
    if (!st) {
        rc = DB_ERR;
    } else {
        rc = db_step(st);
        if (rc == DB_ROW)
            rc = strcmp(db_col_text(st, 0), "wal") == 0 ? 0 : DB_ERR;
        else if (rc == DB_DONE)
            rc = DB_ERR;
        db_done(st);
    }
    if (rc != 0) {
        snprintf(err, errlen, "%s: cannot enable WAL mode: %s", s->path, db_errmsg(s->w));
        return db_errno(rc);
    }
    /* wal_autocheckpoint=0 removes SQLite's own WAL hook; ours replaces it. */
    rc = db_exec(s->w, "PRAGMA synchronous=FULL; PRAGMA wal_autocheckpoint=0");
    if (rc == 0) {
        st = db_prepare(s->w, "PRAGMA page_size");
        rc = st ? db_step(st) : DB_ERR;
        if (rc == DB_ROW) {
            s->page_size = (int)db_col_int64(st, 0);
            rc = 0;
        }
        db_done(st);
    }
    if (rc != 0) {
        snprintf(err, errlen, "%s: %s", s->path, db_errmsg(s->w));
        return db_errno(rc);
    }
    return 0;
}

static void register_metrics(struct store *s)
{
    static const double batch_bounds[] = { 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024 };
    static const double commit_bounds[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                            0.05, 0.1, 0.25, 0.5, 1, 2.5 };

    s->m_batch = metric_histogram("refuge_store_commit_batch_size",
                                  "Write jobs per transaction of the writer thread (group commit)",
                                  NULL, batch_bounds, sizeof(batch_bounds) / sizeof(batch_bounds[0]));
    s->m_commit = metric_histogram("refuge_store_commit_seconds",
                                   "Time spent in COMMIT (WAL write and fsync) per batch",
                                   NULL, commit_bounds,
                                   sizeof(commit_bounds) / sizeof(commit_bounds[0]));
}

static void store_free(struct store *s)
{
    struct reader *r, *next;

    if (s->key_created)
        pthread_key_delete(s->key);   /* no destructor runs for this key from now on */
    pthread_mutex_lock(&s->rmu);
    for (r = s->readers; r; r = next) {
        next = r->next;
        db_close(r->db);
        free(r);
    }
    s->readers = NULL;
    pthread_mutex_unlock(&s->rmu);
    db_close(s->w);
    pthread_mutex_destroy(&s->rmu);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->work);
    free(s->wal_path);
    free(s->path);
    free(s);
}

int store_open(const struct store_opts *opts, struct store **out, char *err, size_t errlen)
{
    struct store *s = xcalloc(1, sizeof(*s));
    sigset_t all, old;
    int rc;

    *out = NULL;
    s->path = xstrdup(opts->path);
    s->wal_path = xasprintf("%s-wal", opts->path);
    s->queue_max = opts->queue_max ? opts->queue_max : DEFAULT_QUEUE_MAX;
    s->batch_max = opts->batch_max ? opts->batch_max : DEFAULT_BATCH_MAX;
    s->ckpt_bytes = opts->wal_checkpoint_bytes > 0 ? opts->wal_checkpoint_bytes : DEFAULT_CKPT_BYTES;
    s->trunc_bytes = opts->wal_truncate_bytes > 0 ? opts->wal_truncate_bytes : DEFAULT_TRUNC_BYTES;
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->rmu, NULL);
    pthread_cond_init(&s->work, NULL);
    atomic_init(&s->ro, false);
    rc = -pthread_key_create(&s->key, reader_destroy);
    if (rc != 0) {
        snprintf(err, errlen, "pthread_key_create: %s", strerror(-rc));
        goto out;
    }
    s->key_created = true;

    rc = open_writer(s, err, errlen);
    if (rc != 0)
        goto out;
    rc = store_schema_migrate(s->w, err, errlen);
    if (rc != 0)
        goto out;
    sqlite3_wal_hook(db_native(s->w), wal_hook, s);
    register_metrics(s);

    /* The writer takes no asynchronous signals: they belong to the main loop. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = -pthread_create(&s->writer, NULL, writer_main, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the writer thread: %s", strerror(-rc));
        goto out;
    }
    s->writer_started = true;
    *out = s;
    s = NULL;
out:
    if (s)
        store_free(s);
    return rc;
}

void store_close(struct store *s)
{
    if (!s)
        return;
    assert(writer_of != s);     /* store_close from a job or done would deadlock */
    pthread_mutex_lock(&s->mu);
    s->closing = true;
    pthread_cond_broadcast(&s->work);
    pthread_mutex_unlock(&s->mu);
    if (s->writer_started)
        pthread_join(s->writer, NULL);
    store_free(s);
}

void store_set_hooks(struct store *s, const struct store_hooks *h)
{
    pthread_mutex_lock(&s->mu);
    if (h)
        s->hooks = *h;
    else
        memset(&s->hooks, 0, sizeof(s->hooks));
    pthread_mutex_unlock(&s->mu);
}

/* --------------------------------------------------------------- submitting */

static int submit(struct store *s, store_write_fn fn, void *arg, store_done_fn done,
                  void *done_arg, unsigned flags)
{
    struct job *j = xcalloc(1, sizeof(*j));
    int rc = 0;

    j->fn = fn;
    j->arg = arg;
    j->done = done;
    j->done_arg = done_arg;
    j->flags = flags;
    pthread_mutex_lock(&s->mu);
    if (s->closing) {
        rc = -ESHUTDOWN;
    } else if (s->qlen >= s->queue_max) {
        rc = -EAGAIN;
    } else {
        if (s->tail)
            s->tail->next = j;
        else
            s->head = j;
        s->tail = j;
        s->qlen++;
        pthread_cond_signal(&s->work);
    }
    pthread_mutex_unlock(&s->mu);
    if (rc != 0)
        free(j);
    return rc;
}

int store_submit_flags(struct store *s, store_write_fn fn, store_done_fn done, void *arg,
                       unsigned flags)
{
    return submit(s, fn, arg, done, arg, flags);
}

int store_submit(struct store *s, store_write_fn fn, store_done_fn done, void *arg)
{
    return store_submit_flags(s, fn, done, arg, 0);
}

struct sync_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int rc;
};

static void sync_done(void *arg, int rc)
{
    struct sync_wait *w = arg;

    pthread_mutex_lock(&w->mu);
    w->rc = rc;
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int store_write_flags(struct store *s, store_write_fn fn, void *arg, unsigned flags)
{
    struct sync_wait w = { .done = false, .rc = 0 };
    int rc;

    if (writer_of == s)         /* called from a job or a done callback */
        return -EDEADLK;
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    rc = submit(s, fn, arg, sync_done, &w, flags);
    if (rc != 0)
        goto out;
    pthread_mutex_lock(&w.mu);
    while (!w.done)
        pthread_cond_wait(&w.cv, &w.mu);
    rc = w.rc;
    pthread_mutex_unlock(&w.mu);
out:
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    return rc;
}

int store_write(struct store *s, store_write_fn fn, void *arg)
{
    return store_write_flags(s, fn, arg, 0);
}

void store_set_readonly(struct store *s, bool ro)
{
    atomic_store(&s->ro, ro);
}

bool store_writable(struct store *s)
{
    return !atomic_load(&s->ro);
}

/* -------------------------------------------------------------------- stats */

void store_stats(struct store *s, struct store_stats *out)
{
    pthread_mutex_lock(&s->mu);
    out->batches = s->batches;
    out->jobs = s->jobs;
    out->jobs_failed = s->jobs_failed;
    out->commit_errors = s->commit_errors;
    out->queue_len = s->qlen;
    pthread_mutex_unlock(&s->mu);
    out->wal_bytes = wal_file_bytes(s);
}

void store_batch_sizes(struct store *s, uint64_t hist[STORE_BATCH_HIST])
{
    pthread_mutex_lock(&s->mu);
    memcpy(hist, s->hist, sizeof(s->hist));
    pthread_mutex_unlock(&s->mu);
}
