/*
 * registry — the node's LDAP userstores: their definitions (read from the
 * replicated `artifacts` table), one worker pool per store, the public
 * request API (asynchronous, and synchronous wrappers), health, metrics
 * and the node-status view.
 *
 * Threads:
 *   monitor     one per node: re-reads the definitions every second (and
 *               a caller may trigger a scan when a name asks for an unknown
 *               domain), queues a probe per store every USERSTORE_PROBE_MS.
 *   pool        pool_size threads per store, one connection each; they run
 *               the queued jobs and call the callbacks.
 * Locks: registry->mu guards the array of stores (held only to copy a
 * reference out or to swap the array); ustore->mu guards one store's queue
 * and health. No lock is held while talking to a directory.
 *
 * Shutdown (userstore_stop): the monitor stops, every store is retired, and
 * the call waits until every pool thread has exited — each is at most one
 * job (bounded by its store's timeout) away from it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/json.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/timeutil.h"
#include "core/xmalloc.h"
#include "crypto/secret.h"
#include "identity/tenant.h"
#include "ldap/userstore_internal.h"
#include "store/db.h"

#define SCAN_INTERVAL_US 1000000
#define SCAN_ON_MISS_US 200000         /* an unknown domain triggers a scan at most this often */
#define PASSWORD_FILE_MAX 4096
#define STOP_WAIT_US (65LL * 1000000)  /* > the largest timeout the schema allows */

struct registry {
    struct node *n;
    pthread_mutex_t mu;                /* stores, errors */
    struct ustore **stores;
    size_t nstores;
    json_t *errors;                    /* [{"path","error"}] of the last scan */
    pthread_mutex_t scan_mu;           /* one scan at a time */
    _Atomic int64_t last_scan_us;
    /* thread life */
    pthread_mutex_t life_mu;
    pthread_cond_t life_cv;
    int live_workers;
    bool stopping;
    pthread_t monitor;
    bool monitor_started;
};

/* The node's registry. Entry points hold g_lock for reading while they use
 * it (never while waiting for a directory); start and stop hold it for
 * writing to install or detach it, so a stopped registry is never in use. */
static pthread_rwlock_t g_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct registry *g_reg;

static struct metric *m_requests, *m_seconds, *m_up;

static void metrics_init(void)
{
    static const double bounds[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 };

    m_requests = metric_counter("refuge_ldap_requests_total", "LDAP userstore requests by store and result",
                                "store,result");
    m_seconds = metric_histogram("refuge_ldap_request_seconds", "LDAP userstore request time, queue included",
                                 "store", bounds, sizeof(bounds) / sizeof(bounds[0]));
    m_up = metric_gauge("refuge_ldap_up", "1 when the userstore's directory answered the last attempt", "store");
}

static const char *result_label(enum ujob_kind kind, int rc)
{
    switch (rc) {
    case 0:
        return "ok";
    case -EACCES:
        return kind == UJOB_AUTH ? "invalid_credentials" : "denied";
    case -ENOENT:
        return "not_found";
    case -ETIMEDOUT:
        return "timeout";
    case -ENETDOWN:
        return "unavailable";
    case -EAGAIN:
        return "busy";
    case -ESHUTDOWN:
        return "shutdown";
    default:
        return "error";
    }
}

/* ------------------------------------------------------------------------ */
/* Stores                                                                   */
/* ------------------------------------------------------------------------ */

void ustore_ref(struct ustore *st)
{
    atomic_fetch_add(&st->refs, 1);
}

void ustore_release(struct ustore *st)
{
    if (!st || atomic_fetch_sub(&st->refs, 1) != 1)
        return;
    artifact_userstore_free(&st->cfg);
    crypto_wipe_free_str(st->bind_password);
    pthread_mutex_destroy(&st->mu);
    pthread_cond_destroy(&st->cv);
    free(st);
}

static void job_free(struct ujob *j)
{
    if (!j)
        return;
    free(j->user);
    if (j->password)
        crypto_wipe_free(j->password, j->plen);
    ustore_release(j->st);
    free(j);
}

static void reply_free(struct userstore_reply *r)
{
    userstore_user_free(&r->user);
    json_decref(r->list);
    r->list = NULL;
}

/* Records the outcome of a job that ran (or failed fast) and its health effect. */
static void account(struct ustore *st, enum ujob_kind kind, int rc, bool ran, bool reached, const char *detail,
                    int64_t submitted_us)
{
    const char *labels[2] = { st->name, result_label(kind, rc) };
    /* Health changes only on evidence: the directory answered, or trying
     * to reach it failed. A request refused before any traffic (an empty
     * password, a bad name) says nothing about the directory. */
    bool failed = ran && !reached && (rc == -ETIMEDOUT || rc == -ENETDOWN || rc == -EIO);
    bool health = reached || failed, changed = false;

    pthread_mutex_lock(&st->mu);
    if (health) {
        changed = st->up != reached || !st->checked;
        st->checked = true;
        st->up = reached;
        if (reached) {
            st->last_ok_wall_us = time_wall_us();
            st->down_until_us = 0;
        } else {
            st->down_until_us = time_mono_us() + USTORE_DOWN_HOLD_US;
        }
    }
    if (ran && rc != 0 && rc != -EACCES && rc != -ENOENT && detail && *detail)
        snprintf(st->last_error, sizeof(st->last_error), "%s", detail);
    else if (rc == 0 && kind == UJOB_PROBE)
        st->last_error[0] = '\0';
    if (kind != UJOB_PROBE) {
        st->requests_total++;
        if (rc != 0 && rc != -EACCES && rc != -ENOENT)
            st->errors_total++;
    }
    pthread_mutex_unlock(&st->mu);
    if (health)
        metric_set(m_up, (const char *[]){ st->name }, reached ? 1 : 0);
    /* transitions only: a dead directory under load must not flood the log */
    if (changed && reached)
        log_info("ldap userstore up", "store", st->name, "url", st->cfg.url, NULL);
    else if (changed)
        log_warn("ldap userstore down", "store", st->name, "url", st->cfg.url, "detail", detail, NULL);
    if (kind != UJOB_PROBE) {
        metric_inc(m_requests, labels, 1);
        metric_observe(m_seconds, (const char *[]){ st->name }, (double)(time_mono_us() - submitted_us) / 1e6);
    }
}

static void worker_exit(struct registry *r)
{
    pthread_mutex_lock(&r->life_mu);
    r->live_workers--;
    pthread_cond_broadcast(&r->life_cv);
    pthread_mutex_unlock(&r->life_mu);
}

static void run_job(struct ustore *st, struct ldapconn *c, struct ujob *j)
{
    struct userstore_reply r;
    bool reached = false, ran = false;
    int64_t now = time_mono_us();

    memset(&r, 0, sizeof(r));
    r.store = st->name;
    if (now >= j->deadline_us) {
        r.rc = -ETIMEDOUT;
        snprintf(r.detail, sizeof(r.detail), "directory %s: no answer within %lld ms (queued)", st->name,
                 (long long)st->cfg.timeout_ms);
    } else {
        bool down;
        pthread_mutex_lock(&st->mu);
        down = j->kind != UJOB_PROBE && now < st->down_until_us;
        if (down)
            snprintf(r.detail, sizeof(r.detail), "directory %s is unavailable: %s", st->name, st->last_error);
        pthread_mutex_unlock(&st->mu);
        if (down) {
            r.rc = -ENETDOWN;
        } else {
            users_run(st, c, j, &r, &reached);
            ran = true;
            if (r.rc == -ETIMEDOUT || r.rc == -ENETDOWN || r.rc == -EIO) {
                char d[sizeof(r.detail)];
                snprintf(d, sizeof(d), "%s", r.detail);
                if (r.rc == -ETIMEDOUT)
                    snprintf(r.detail, sizeof(r.detail), "directory %s: no answer within %lld ms (%s)", st->name,
                             (long long)st->cfg.timeout_ms, d);
                else
                    snprintf(r.detail, sizeof(r.detail), "directory %s: %s", st->name, d);
            }
        }
    }
    if (j->kind == UJOB_PROBE) {
        pthread_mutex_lock(&st->mu);
        st->probe_pending = false;
        pthread_mutex_unlock(&st->mu);
    }
    account(st, j->kind, r.rc, ran, reached, r.detail, j->submitted_us);
    /* requests that failed after real traffic (each costs up to the timeout,
     * so these are few); fast refusals are counted, not logged */
    if (ran && r.rc != 0 && r.rc != -EACCES && r.rc != -ENOENT && j->kind != UJOB_PROBE)
        log_warn("ldap userstore request failed", "store", st->name, "result", result_label(j->kind, r.rc),
                 "detail", r.detail, NULL);
    if (j->done)
        j->done(j->arg, &r);
    reply_free(&r);
}

static void *worker_main(void *arg)
{
    struct ustore *st = arg;
    struct registry *reg = st->reg;
    struct ldapconn conn = { 0 };

    pthread_mutex_lock(&st->mu);
    for (;;) {
        struct ujob *j;

        while (!st->head && !st->stopping)
            pthread_cond_wait(&st->cv, &st->mu);
        if (!st->head)
            break;
        j = st->head;
        st->head = j->next;
        if (!st->head)
            st->tail = &st->head;
        st->queued--;
        pthread_mutex_unlock(&st->mu);
        run_job(st, &conn, j);
        job_free(j);
        pthread_mutex_lock(&st->mu);
    }
    st->nthreads--;
    pthread_mutex_unlock(&st->mu);
    ldapconn_close(&conn);
    ustore_release(st);
    worker_exit(reg);
    return NULL;
}

static void retire(struct ustore *st)
{
    pthread_mutex_lock(&st->mu);
    st->stopping = true;
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
    ustore_release(st);                 /* the registry's reference */
}

static int read_password_file(const char *path, char **out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char buf[PASSWORD_FILE_MAX + 1];
    size_t n;

    *out = NULL;
    if (!f) {
        snprintf(err, errlen, "bind_password_file %s: %s", path, strerror(errno));
        return -1;
    }
    n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    if (n > PASSWORD_FILE_MAX) {
        snprintf(err, errlen, "bind_password_file %s: longer than %d bytes", path, PASSWORD_FILE_MAX);
        crypto_wipe(buf, sizeof(buf));
        return -1;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    if (n == 0 || memchr(buf, '\0', n)) {
        snprintf(err, errlen, "bind_password_file %s: empty or not text", path);
        crypto_wipe(buf, sizeof(buf));
        return -1;
    }
    *out = xstrndup(buf, n);
    crypto_wipe(buf, sizeof(buf));
    return 0;
}

/* A new store from one artifact row; its pool is started. NULL with err. */
static struct ustore *store_new(struct registry *reg, const char *path, const char *name, const char *sha,
                                const char *content, size_t len, char *err, size_t errlen)
{
    struct ustore *st = xcalloc(1, sizeof(*st));
    struct cfg_error ce;
    char msg[512];
    int i;

    atomic_init(&st->refs, 1);
    st->reg = reg;
    snprintf(st->name, sizeof(st->name), "%s", name);
    snprintf(st->path, sizeof(st->path), "%s", path);
    snprintf(st->sha, sizeof(st->sha), "%s", sha);
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->cv, NULL);
    st->tail = &st->head;
    if (artifact_userstore_parse(path, content, len, &reg->n->conf->region, &st->cfg, &ce) < 0) {
        snprintf(err, errlen, "%s", cfg_error_format(&ce, msg, sizeof(msg)));
        goto fail;
    }
    /* the schema checked it: a tenant name (default "default") */
    snprintf(st->tenant, sizeof(st->tenant), "%s", st->cfg.tenant);
    if (st->cfg.bind_password_file) {
        if (read_password_file(st->cfg.bind_password_file, &st->bind_password, err, errlen) < 0)
            goto fail;
    } else if (st->cfg.bind_password) {
        if (userstore_open_password(reg->n->master_key, st->cfg.bind_password, &st->bind_password) < 0) {
            snprintf(err, errlen, "%s: userstore.bind_password: cannot open the sealed value with this node's "
                                  "master key", path);
            goto fail;
        }
    }
    if (st->cfg.bind_dn && !st->bind_password) {
        snprintf(err, errlen, "%s: userstore.bind_dn needs bind_password or bind_password_file", path);
        goto fail;
    }
    st->target = (struct ldap_target){
        .url = st->cfg.url,
        .tls = st->cfg.tls,
        .ca_file = st->cfg.ca_file,
        .bind_dn = st->cfg.bind_dn,
        .bind_password = st->bind_password,
        .timeout_ms = st->cfg.timeout_ms,
    };
    if (!st->cfg.read_only)
        log_warn("ldap userstore: read_only = false has no effect, directory users are never written",
                 "store", st->name, NULL);
    st->queue_max = (size_t)st->cfg.pool_size * USTORE_QUEUE_PER_THREAD;
    st->up = false;
    metric_set(m_up, (const char *[]){ st->name }, 0);
    for (i = 0; i < (int)st->cfg.pool_size; i++) {
        pthread_t t;
        pthread_attr_t attr;

        ustore_ref(st);
        pthread_mutex_lock(&reg->life_mu);
        reg->live_workers++;
        pthread_mutex_unlock(&reg->life_mu);
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &attr, worker_main, st) != 0)
            abort();                    /* as fatal as running out of memory */
        pthread_attr_destroy(&attr);
        pthread_mutex_lock(&st->mu);
        st->nthreads++;
        pthread_mutex_unlock(&st->mu);
    }
    return st;
fail:
    ustore_release(st);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Definitions: the artifacts table                                         */
/* ------------------------------------------------------------------------ */

static struct ustore *find_locked(struct registry *r, const char *name)
{
    for (size_t i = 0; i < r->nstores; i++)
        if (strcmp(r->stores[i]->name, name) == 0)
            return r->stores[i];
    return NULL;
}

struct row {
    char path[ARTIFACT_PATH_MAX];
    char name[ARTIFACT_NAME_MAX + 1];
    char sha[ARTIFACT_SHA_HEX];
};

/* Reads the rows of userstores/ (path, sha256). 0 or -EIO. */
static int read_rows(struct db *db, struct row **rows, size_t *n)
{
    struct db_stmt *st = db_prepare(db, "SELECT path, sha256 FROM artifacts WHERE path LIKE 'userstores/%'"
                                        " ORDER BY path LIMIT 1000");
    size_t cap = 0;
    int rc;

    *rows = NULL;
    *n = 0;
    if (!st)
        return -EIO;
    while ((rc = db_step(st)) == DB_ROW) {
        struct row r;
        if (artifact_path_parse(db_col_text(st, 0), r.name) != ARTIFACT_USERSTORE)
            continue;
        snprintf(r.path, sizeof(r.path), "%s", db_col_text(st, 0));
        snprintf(r.sha, sizeof(r.sha), "%s", db_col_text(st, 1));
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            *rows = xrealloc(*rows, cap * sizeof(**rows));
        }
        (*rows)[(*n)++] = r;
    }
    db_done(st);
    return rc == DB_DONE ? 0 : -EIO;
}

static int read_content(struct db *db, const char *path, char **content, size_t *len)
{
    struct db_stmt *st = db_prepare(db, "SELECT content FROM artifacts WHERE path = $1");
    int rc;

    *content = NULL;
    if (!st)
        return -EIO;
    db_bind_text(st, 1, path, -1);
    rc = db_step(st);
    if (rc == DB_ROW) {
        *len = db_col_bytes(st, 0);
        *content = xmalloc(*len + 1);
        if (*len)
            memcpy(*content, db_col_blob(st, 0), *len);
        (*content)[*len] = '\0';
        rc = 0;
    } else {
        rc = rc == DB_DONE ? -ENOENT : -EIO;
    }
    db_done(st);
    return rc;
}

/* Did the last scan reject this very file with this very error? */
static bool known_error(struct registry *r, const char *path, const char *sha, const char *err)
{
    bool known = false;
    size_t i;
    json_t *e;

    pthread_mutex_lock(&r->mu);
    json_array_foreach(r->errors, i, e)
        if (strcmp(jsonx_str(e, "path", ""), path) == 0 && strcmp(jsonx_str(e, "sha256", ""), sha) == 0 &&
            strcmp(jsonx_str(e, "error", ""), err) == 0)
            known = true;
    pthread_mutex_unlock(&r->mu);
    return known;
}

/* Brings the stores in line with the table: unchanged rows keep their
 * store (and pool, and connections), changed or new rows get a new one,
 * vanished rows retire theirs. */
static int scan(struct registry *r)
{
    struct db *db = store_reader(r->n->store);
    struct row *rows = NULL;
    struct ustore **next = NULL, **old = NULL;
    json_t *errors = json_array();
    size_t nrows = 0, nnext = 0, nold = 0, i, j;
    int rc;

    pthread_mutex_lock(&r->scan_mu);
    atomic_store(&r->last_scan_us, time_mono_us());
    rc = read_rows(db, &rows, &nrows);
    if (rc < 0) {
        pthread_mutex_unlock(&r->scan_mu);
        json_decref(errors);
        return rc;
    }
    next = xcalloc(nrows + 1, sizeof(*next));
    for (i = 0; i < nrows; i++) {
        struct ustore *cur;
        char *content = NULL, err[600] = "";
        size_t len = 0;

        pthread_mutex_lock(&r->mu);
        cur = find_locked(r, rows[i].name);
        if (cur && strcmp(cur->sha, rows[i].sha) == 0) {
            ustore_ref(cur);
            next[nnext++] = cur;
            pthread_mutex_unlock(&r->mu);
            continue;
        }
        pthread_mutex_unlock(&r->mu);
        if (read_content(db, rows[i].path, &content, &len) == 0) {
            struct ustore *st = store_new(r, rows[i].path, rows[i].name, rows[i].sha, content, len, err,
                                          sizeof(err));
            if (st) {
                next[nnext++] = st;
                log_info("ldap userstore loaded", "store", st->name, "url", st->cfg.url, "sha256", st->sha,
                         NULL);
            } else {
                /* tried again every scan (a password file may appear), logged once per error */
                if (!known_error(r, rows[i].path, rows[i].sha, err))
                    log_error("ldap userstore rejected", "path", rows[i].path, "error", err, NULL);
                json_array_append_new(errors, json_pack("{s:s, s:s, s:s}", "path", rows[i].path, "sha256",
                                                        rows[i].sha, "error", err));
            }
        }
        free(content);
    }
    pthread_mutex_lock(&r->mu);
    old = r->stores;
    nold = r->nstores;
    r->stores = next;
    r->nstores = nnext;
    json_decref(r->errors);
    r->errors = errors;
    pthread_mutex_unlock(&r->mu);
    for (i = 0; i < nold; i++) {
        bool kept = false;
        for (j = 0; j < nnext && !kept; j++)
            kept = next[j] == old[i];
        if (!kept)
            log_info("ldap userstore retired", "store", old[i]->name, NULL);
        if (kept)
            ustore_release(old[i]);     /* the new array took its own reference */
        else
            retire(old[i]);
    }
    free(old);
    free(rows);
    pthread_mutex_unlock(&r->scan_mu);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Monitor                                                                  */
/* ------------------------------------------------------------------------ */

static int submit(struct ustore *st, struct ujob *j, bool fail_fast_when_down);

static void *monitor_main(void *arg)
{
    struct registry *r = arg;
    int64_t next_probe = 0;

    pthread_mutex_lock(&r->life_mu);
    while (!r->stopping) {
        struct timespec ts;
        int64_t now;

        pthread_mutex_unlock(&r->life_mu);
        now = time_mono_us();
        if (now - atomic_load(&r->last_scan_us) >= SCAN_INTERVAL_US && scan(r) < 0)
            log_warn("ldap userstores: cannot read the artifacts table", NULL);
        if (now >= next_probe) {
            struct ustore **list;
            size_t n, i;

            pthread_mutex_lock(&r->mu);
            n = r->nstores;
            list = xcalloc(n + 1, sizeof(*list));
            for (i = 0; i < n; i++) {
                list[i] = r->stores[i];
                ustore_ref(list[i]);
            }
            pthread_mutex_unlock(&r->mu);
            for (i = 0; i < n; i++) {
                struct ujob *j = xcalloc(1, sizeof(*j));
                bool pending;

                pthread_mutex_lock(&list[i]->mu);
                pending = list[i]->probe_pending;
                list[i]->probe_pending = true;
                pthread_mutex_unlock(&list[i]->mu);
                j->kind = UJOB_PROBE;
                j->st = list[i];       /* the job takes this reference */
                if (pending || submit(list[i], j, false) < 0) {
                    if (!pending) {
                        pthread_mutex_lock(&list[i]->mu);
                        list[i]->probe_pending = false;
                        pthread_mutex_unlock(&list[i]->mu);
                    }
                    job_free(j);
                }
            }
            free(list);
            next_probe = now + (int64_t)USERSTORE_PROBE_MS * 1000;
        }
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 250 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&r->life_mu);
        if (!r->stopping)
            pthread_cond_timedwait(&r->life_cv, &r->life_mu, &ts);
    }
    pthread_mutex_unlock(&r->life_mu);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Start and stop                                                           */
/* ------------------------------------------------------------------------ */

/* The running registry, with g_lock held for reading, or NULL (not
 * started, or stopped: the lock is then not held). */
static struct registry *reg_enter(void)
{
    pthread_rwlock_rdlock(&g_lock);
    if (g_reg)
        return g_reg;
    pthread_rwlock_unlock(&g_lock);
    return NULL;
}

static void reg_leave(void)
{
    pthread_rwlock_unlock(&g_lock);
}

int userstore_start(struct node *n)
{
    struct registry *r;

    pthread_rwlock_wrlock(&g_lock);
    if (g_reg) {
        pthread_rwlock_unlock(&g_lock);
        return 0;
    }
    metrics_init();
    r = xcalloc(1, sizeof(*r));
    r->n = n;
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->scan_mu, NULL);
    pthread_mutex_init(&r->life_mu, NULL);
    pthread_cond_init(&r->life_cv, NULL);
    r->errors = json_array();
    if (scan(r) < 0)
        log_warn("ldap userstores: cannot read the artifacts table", NULL);
    if (pthread_create(&r->monitor, NULL, monitor_main, r) != 0)
        abort();
    r->monitor_started = true;
    g_reg = r;
    pthread_rwlock_unlock(&g_lock);
    return 0;
}

void userstore_stop(struct node *n)
{
    struct registry *r;
    int64_t until = time_mono_us() + STOP_WAIT_US;
    size_t i;

    (void)n;
    pthread_rwlock_wrlock(&g_lock);
    r = g_reg;
    g_reg = NULL;
    pthread_rwlock_unlock(&g_lock);
    if (!r)
        return;
    pthread_mutex_lock(&r->life_mu);
    r->stopping = true;
    pthread_cond_broadcast(&r->life_cv);
    pthread_mutex_unlock(&r->life_mu);
    if (r->monitor_started)
        pthread_join(r->monitor, NULL);
    pthread_mutex_lock(&r->mu);
    for (i = 0; i < r->nstores; i++)
        retire(r->stores[i]);
    free(r->stores);
    r->stores = NULL;
    r->nstores = 0;
    pthread_mutex_unlock(&r->mu);
    pthread_mutex_lock(&r->life_mu);
    while (r->live_workers > 0 && time_mono_us() < until) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&r->life_cv, &r->life_mu, &ts);
    }
    if (r->live_workers > 0) {
        /* A worker stuck beyond every timeout: leave the registry to it. */
        pthread_mutex_unlock(&r->life_mu);
        log_error("ldap userstores: a pool thread did not stop", NULL);
        return;
    }
    pthread_mutex_unlock(&r->life_mu);
    json_decref(r->errors);
    pthread_mutex_destroy(&r->mu);
    pthread_mutex_destroy(&r->scan_mu);
    pthread_mutex_destroy(&r->life_mu);
    pthread_cond_destroy(&r->life_cv);
    free(r);
}

/* ------------------------------------------------------------------------ */
/* Requests                                                                 */
/* ------------------------------------------------------------------------ */

/* A reference to tenant's store `name` (scanning once more when unknown),
 * or NULL: -ENOENT in *rc, or -ESHUTDOWN when the registry is not running. */
static struct ustore *store_get(struct node *n, const char *tenant, const char *name, int *rc)
{
    struct registry *r = reg_enter();
    struct ustore *st = NULL;

    (void)n;
    *rc = -ESHUTDOWN;
    if (!r)
        return NULL;
    *rc = -ENOENT;
    for (int pass = 0; pass < 2; pass++) {
        pthread_mutex_lock(&r->mu);
        st = find_locked(r, name);
        if (st && strcmp(st->tenant, tenant) == 0) {
            ustore_ref(st);
            pthread_mutex_unlock(&r->mu);
            reg_leave();
            *rc = 0;
            return st;
        }
        pthread_mutex_unlock(&r->mu);
        if (st || pass > 0 || time_mono_us() - atomic_load(&r->last_scan_us) < SCAN_ON_MISS_US)
            break;
        scan(r);
    }
    reg_leave();
    return NULL;
}

/* Queues j on st (taking over j and its store reference on success). */
static int submit(struct ustore *st, struct ujob *j, bool fail_fast_when_down)
{
    int64_t now = time_mono_us();
    int rc = 0;

    j->submitted_us = now;
    j->deadline_us = now + st->cfg.timeout_ms * 1000;
    pthread_mutex_lock(&st->mu);
    if (st->stopping || st->nthreads == 0)
        rc = -ESHUTDOWN;
    else if (fail_fast_when_down && now < st->down_until_us)
        rc = -ENETDOWN;
    else if (st->queued >= st->queue_max)
        rc = -EAGAIN;
    if (rc == 0) {
        j->next = NULL;
        *st->tail = j;
        st->tail = &j->next;
        st->queued++;
        pthread_cond_signal(&st->cv);
    }
    pthread_mutex_unlock(&st->mu);
    return rc;
}

/* Submits a job for a caller; on failure the job is freed and the failure counted. */
static int submit_user_job(struct ustore *st, struct ujob *j)
{
    int rc = submit(st, j, true);

    if (rc < 0) {
        account(st, j->kind, rc, false, false, NULL, j->submitted_us);
        job_free(j);
    }
    return rc;
}

bool userstore_routes(struct node *n, const char *tenant, const char *domain_user)
{
    char domain[USERSTORE_NAME_MAX + 1];
    struct str user;
    struct ustore *st;
    int rc;

    if (!domain_user || userstore_split(domain_user, strlen(domain_user), domain, &user) == 0)
        return false;
    st = store_get(n, tenant, domain, &rc);
    ustore_release(st);
    return st != NULL;
}

int userstore_authenticate_async(struct node *n, const char *tenant, const char *domain_user,
                                 const char *password, size_t plen, userstore_done_fn done, void *arg)
{
    char domain[USERSTORE_NAME_MAX + 1];
    struct str user;
    struct ustore *st;
    struct ujob *j;
    int rc = userstore_split(domain_user, strlen(domain_user), domain, &user);

    if (rc <= 0)
        return rc == 0 ? -ENOENT : -EINVAL;
    if (plen > USERSTORE_PASSWORD_MAX)
        return -EINVAL;
    st = store_get(n, tenant, domain, &rc);
    if (!st)
        return rc;
    j = xcalloc(1, sizeof(*j));
    j->kind = UJOB_AUTH;
    j->st = st;
    j->user = str_dup(user);
    j->password = xmemdup(password, plen + 1);
    j->password[plen] = '\0';
    j->plen = plen;
    j->done = done;
    j->arg = arg;
    return submit_user_job(st, j);
}

int userstore_lookup_async(struct node *n, const char *tenant, const char *user_id, userstore_done_fn done,
                           void *arg)
{
    char store[USERSTORE_NAME_MAX + 1];
    struct str key;
    struct ustore *st;
    struct ujob *j;
    int rc;

    if (userstore_id_parse(user_id, store, &key) < 0)
        return -EINVAL;
    st = store_get(n, tenant, store, &rc);
    if (!st)
        return rc;
    j = xcalloc(1, sizeof(*j));
    j->kind = UJOB_LOOKUP;
    j->st = st;
    j->user = str_dup(key);
    j->done = done;
    j->arg = arg;
    return submit_user_job(st, j);
}

int userstore_scim_list_async(struct node *n, const char *tenant, const char *store, const char *user_name,
                              int64_t start, int64_t count, userstore_done_fn done, void *arg)
{
    struct ustore *st;
    struct ujob *j;
    int rc;

    if (!store || !tenant_name_valid(store))
        return -EINVAL;
    if (user_name && (!*user_name || strlen(user_name) > USERSTORE_USERNAME_MAX))
        return -EINVAL;
    st = store_get(n, tenant, store, &rc);
    if (!st)
        return rc;
    j = xcalloc(1, sizeof(*j));
    j->kind = UJOB_LIST;
    j->st = st;
    j->user = user_name ? xstrdup(user_name) : NULL;
    j->start = start;
    j->count = count;
    j->done = done;
    j->arg = arg;
    return submit_user_job(st, j);
}

/* ------------------------------------------------------------------------ */
/* Synchronous wrappers                                                     */
/* ------------------------------------------------------------------------ */

struct waiter {
    atomic_int refs;                    /* the caller and the callback */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int rc;
    struct userstore_user user;
    json_t *list;
};

static void waiter_release(struct waiter *w)
{
    if (atomic_fetch_sub(&w->refs, 1) != 1)
        return;
    userstore_user_free(&w->user);
    json_decref(w->list);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
}

static void waiter_done(void *arg, struct userstore_reply *r)
{
    struct waiter *w = arg;

    pthread_mutex_lock(&w->mu);
    w->rc = r->rc;
    w->user = r->user;
    memset(&r->user, 0, sizeof(r->user));
    w->list = r->list;
    r->list = NULL;
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    waiter_release(w);
}

static struct waiter *waiter_new(void)
{
    struct waiter *w = xcalloc(1, sizeof(*w));

    atomic_init(&w->refs, 2);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    return w;
}

/*
 * Waits for the callback (a job is bounded by its store's timeout; 61 s is
 * only the backstop beyond the largest one) and moves the result out.
 * Releases the caller's reference; a callback that comes later releases
 * the other and frees the waiter.
 */
static int waiter_finish(struct waiter *w, int queued_rc, struct userstore_user *user, json_t **list)
{
    struct timespec ts;
    int rc;

    if (queued_rc < 0) {
        atomic_fetch_sub(&w->refs, 1);  /* nothing was queued: no callback will come */
        waiter_release(w);
        return queued_rc;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 61;
    pthread_mutex_lock(&w->mu);
    while (!w->done)
        if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT)
            break;
    rc = w->done ? w->rc : -ETIMEDOUT;
    if (w->done && rc == 0) {
        if (user) {
            *user = w->user;
            memset(&w->user, 0, sizeof(w->user));
        }
        if (list) {
            *list = w->list;
            w->list = NULL;
        }
    }
    pthread_mutex_unlock(&w->mu);
    waiter_release(w);
    return rc;
}

int userstore_authenticate(struct node *n, const char *tenant, const char *domain_user, const char *password,
                           struct userstore_user *out)
{
    struct waiter *w = waiter_new();

    memset(out, 0, sizeof(*out));
    return waiter_finish(w, userstore_authenticate_async(n, tenant, domain_user, password, strlen(password),
                                                         waiter_done, w),
                         out, NULL);
}

int userstore_lookup(struct node *n, const char *tenant, const char *user_id, struct userstore_user *out)
{
    struct waiter *w = waiter_new();

    memset(out, 0, sizeof(*out));
    return waiter_finish(w, userstore_lookup_async(n, tenant, user_id, waiter_done, w), out, NULL);
}

int userstore_scim_get(struct node *n, const char *tenant, const char *user_id, json_t **out)
{
    struct userstore_user u;
    int rc = userstore_lookup(n, tenant, user_id, &u);

    *out = NULL;
    if (rc == 0) {
        *out = u.scim;
        u.scim = NULL;
    }
    userstore_user_free(&u);
    return rc;
}

int userstore_scim_list(struct node *n, const char *tenant, const char *store, const char *user_name,
                        int64_t start, int64_t count, json_t **out)
{
    struct waiter *w = waiter_new();

    *out = NULL;
    return waiter_finish(w, userstore_scim_list_async(n, tenant, store, user_name, start, count, waiter_done, w),
                         NULL, out);
}

/* ------------------------------------------------------------------------ */
/* Node status                                                              */
/* ------------------------------------------------------------------------ */

static json_t *rfc3339_or_null(int64_t wall_us)
{
    char buf[64];

    if (wall_us <= 0)
        return json_null();
    return json_string(time_rfc3339(wall_us, buf, sizeof(buf), 0));
}

static json_t *csn_array(const char *csn)
{
    json_t *arr = json_array();
    struct str rest = str_from_cstr(csn), one;

    while (rest.len) {
        if (!str_split(rest, ' ', &one, &rest))
            rest = STR_NULL;
        if (one.len)
            json_array_append_new(arr, json_stringn(one.p, one.len));
    }
    return arr;
}

static json_t *store_status(struct ustore *st)
{
    json_t *o;

    pthread_mutex_lock(&st->mu);
    o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:b, s:o, s:o, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:o}",
                  "name", st->name,
                  "tenant", st->tenant,
                  "path", st->path,
                  "sha256", st->sha,
                  "url", st->cfg.url,
                  "up", st->up,
                  "checked", st->checked,
                  "last_error", st->last_error[0] ? json_string(st->last_error) : json_null(),
                  "last_ok_at", rfc3339_or_null(st->last_ok_wall_us),
                  "requests_total", (json_int_t)st->requests_total,
                  "errors_total", (json_int_t)st->errors_total,
                  "queued", (json_int_t)st->queued,
                  "pool_size", (json_int_t)st->cfg.pool_size,
                  "timeout_ms", (json_int_t)st->cfg.timeout_ms,
                  "context_csn", csn_array(st->csn),
                  "csn_base", st->csn_base[0] ? json_string(st->csn_base) : json_null(),
                  "csn_read_at", rfc3339_or_null(st->csn_read_wall_us));
    pthread_mutex_unlock(&st->mu);
    return o;
}

void ldap_status_fill(struct node *n, json_t *obj)
{
    struct registry *r = reg_enter();
    json_t *stores = json_array(), *errors;
    size_t i;

    (void)n;
    if (r) {
        pthread_mutex_lock(&r->mu);
        for (i = 0; i < r->nstores; i++)
            json_array_append_new(stores, store_status(r->stores[i]));
        errors = json_deep_copy(r->errors);
        pthread_mutex_unlock(&r->mu);
        reg_leave();
    } else {
        errors = json_array();
    }
    json_object_set_new(obj, "ldap", json_pack("{s:o, s:o}", "stores", stores, "errors", errors));
}
