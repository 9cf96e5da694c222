/*
 * watcher — the artifacts thread: life cycle, inotify, debounce, and the
 * choice between importer and materializer by the node's role.
 *
 * Life cycle (one thread per node, like a small walsender):
 *
 *   artifacts_start   creates DIR, DIR/tenants, DIR/userstores when missing,
 *                     opens inotify and an eventfd, starts the thread.
 *   thread            loops: role -> mode; on a mode change runs the entry
 *                     pass of the new mode (below); else runs a pass when
 *                     one is due:
 *                       - debounced inotify events: 30 ms after the last
 *                         event, at most 100 ms after the first;
 *                       - importer: a full scan every 10 s (missed events,
 *                         files on filesystems inotify cannot see);
 *                       - materializer: artifacts_applied(), a change of
 *                         the table seen by a 25 ms PRAGMA data_version
 *                         check, or every 1 s;
 *                       - 1 s after a pass that hit a store failure.
 *                     Between passes it sleeps in poll() on inotify and
 *                     the eventfd, never longer than 1 s, so a role change
 *                     is seen within a second even if nobody calls
 *                     artifacts_role_changed().
 *   artifacts_stop    sets stop, wakes the thread, joins it. A write job the
 *                     thread is waiting for is abandoned (the job owns its
 *                     memory and frees it when the writer completes it).
 *
 * Entry passes:
 *   none -> importer          import scan with reapply (a start as active:
 *                             files changed while stopped are picked up)
 *   none -> materializer      materialize
 *   materializer -> importer  (promotion) materialize first, so a pass that
 *                             had not caught up with the last apply cannot
 *                             be mistaken for operator edits, then import
 *                             with reapply (region values of this region)
 *   importer -> materializer  (demotion) materialize: edits not imported
 *                             are drift now and get overwritten
 *
 * Editors that save by rename (vim, emacs, sed -i) produce MOVED_FROM /
 * MOVED_TO / DELETE bursts; the debounce folds them into one pass, and a
 * pass only ever looks at the directory as it is, never at event details.
 */
#include "artifacts/artifacts_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "core/log.h"
#include "core/metrics.h"
#include "core/timeutil.h"
#include "core/xmalloc.h"

#define QUIET_US 30000                  /* debounce: quiet time after the last event */
#define DEBOUNCE_MAX_US 100000          /* debounce: at most this after the first */
#define IMPORT_PERIOD_US 10000000       /* importer full scan */
#define MATERIALIZE_PERIOD_US 1000000   /* materializer full pass (drift without inotify) */
#define TABLE_CHECK_US 25000            /* materializer: PRAGMA data_version check */
#define ROLE_POLL_US 1000000            /* longest sleep: role re-read */
#define RETRY_US 1000000                /* after a store failure */

#define ROOT_MASK (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | \
                   IN_MOVE_SELF | IN_ONLYDIR)
#define SUB_MASK (IN_CLOSE_WRITE | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | \
                  IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)

static const enum artifact_kind sub_kinds[2] = { ARTIFACT_TENANT, ARTIFACT_USERSTORE };

const char *artifacts_mode_name(int mode)
{
    switch (mode) {
    case ART_MODE_IMPORTER:
        return "importer";
    case ART_MODE_MATERIALIZER:
        return "materializer";
    default:
        return "stopped";
    }
}

/* ------------------------------------------------------------------------ */
/* Registry: one instance per node                                          */
/* ------------------------------------------------------------------------ */

#define MAX_INSTANCES 8

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct artifacts *registry[MAX_INSTANCES];

struct artifacts *artifacts_acquire(struct node *n)
{
    size_t i;

    pthread_mutex_lock(&reg_mu);
    for (i = 0; i < MAX_INSTANCES; i++)
        if (registry[i] && registry[i]->n == n)
            return registry[i];
    return NULL;    /* still locked: artifacts_release() */
}

void artifacts_release(void)
{
    pthread_mutex_unlock(&reg_mu);
}

static int reg_add(struct artifacts *a)
{
    size_t i;
    int rc = -ENOSPC;

    pthread_mutex_lock(&reg_mu);
    for (i = 0; i < MAX_INSTANCES; i++) {
        if (registry[i] && registry[i]->n == a->n) {
            rc = -EALREADY;
            break;
        }
    }
    for (i = 0; rc == -ENOSPC && i < MAX_INSTANCES; i++) {
        if (!registry[i]) {
            registry[i] = a;
            rc = 0;
        }
    }
    pthread_mutex_unlock(&reg_mu);
    return rc;
}

static struct artifacts *reg_remove(struct node *n)
{
    struct artifacts *a = NULL;
    size_t i;

    pthread_mutex_lock(&reg_mu);
    for (i = 0; i < MAX_INSTANCES; i++) {
        if (registry[i] && registry[i]->n == n) {
            a = registry[i];
            registry[i] = NULL;
            break;
        }
    }
    pthread_mutex_unlock(&reg_mu);
    return a;
}

/* ------------------------------------------------------------------------ */
/* Metrics                                                                  */
/* ------------------------------------------------------------------------ */

static struct metric *m_errors, *m_drift, *m_imported, *m_materialized;
static pthread_once_t metrics_once = PTHREAD_ONCE_INIT;

static void metrics_register(void)
{
    m_errors = metric_counter("refuge_artifact_errors_total",
                              "Artifact files rejected by validation or import", NULL);
    m_drift = metric_counter("refuge_artifact_drift_total",
                             "Local edits of a standby's artifact directory, overwritten", NULL);
    m_imported = metric_counter("refuge_artifact_imports_total",
                                "Artifact changes imported into the store (active node)", NULL);
    m_materialized = metric_counter("refuge_artifact_materialized_total",
                                    "Artifact files written or removed from the store (standby)", NULL);
}

void artifacts_metrics_init(void)
{
    pthread_once(&metrics_once, metrics_register);
}

void artifacts_count_error(struct artifacts *a)
{
    artifacts_metrics_init();
    atomic_fetch_add(&a->errors_total, 1);
    metric_inc(m_errors, NULL, 1);
}

void artifacts_count_drift(struct artifacts *a)
{
    artifacts_metrics_init();
    atomic_fetch_add(&a->drift_total, 1);
    metric_inc(m_drift, NULL, 1);
}

void artifacts_count_imported(struct artifacts *a)
{
    artifacts_metrics_init();
    atomic_fetch_add(&a->imported_total, 1);
    metric_inc(m_imported, NULL, 1);
}

void artifacts_count_materialized(struct artifacts *a)
{
    artifacts_metrics_init();
    atomic_fetch_add(&a->materialized_total, 1);
    metric_inc(m_materialized, NULL, 1);
}

/* ------------------------------------------------------------------------ */
/* Per-path knowledge and the stat cache                                    */
/* ------------------------------------------------------------------------ */

struct art_file *artifacts_file(struct artifacts *a, const char *path, bool create)
{
    struct art_file *f;
    size_t i;

    for (i = 0; i < a->nfiles; i++)
        if (strcmp(a->files[i].path, path) == 0)
            return &a->files[i];
    if (!create || strlen(path) >= ARTIFACT_PATH_MAX)
        return NULL;
    if (a->nfiles == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 16;
        a->files = xrealloc(a->files, a->cap * sizeof(*a->files));
    }
    f = &a->files[a->nfiles++];
    memset(f, 0, sizeof(*f));
    snprintf(f->path, sizeof(f->path), "%s", path);
    return f;
}

void artifacts_files_prune(struct artifacts *a, bool (*keep)(const struct art_file *f))
{
    size_t i, o = 0;

    for (i = 0; i < a->nfiles; i++)
        if (keep(&a->files[i]))
            a->files[o++] = a->files[i];
    a->nfiles = o;
}

static bool same_stat(const struct art_file *f, const struct stat *st)
{
    return f->have_stat && f->dev == st->st_dev && f->ino == st->st_ino && f->size == st->st_size &&
           f->mtime.tv_sec == st->st_mtim.tv_sec && f->mtime.tv_nsec == st->st_mtim.tv_nsec &&
           f->ctime.tv_sec == st->st_ctim.tv_sec && f->ctime.tv_nsec == st->st_ctim.tv_nsec;
}

void artifacts_file_remember(struct artifacts *a, const char *path, const struct stat *st,
                             const char sha[ARTIFACT_SHA_HEX])
{
    struct art_file *f;

    pthread_mutex_lock(&a->mu);
    f = artifacts_file(a, path, true);
    if (f) {
        f->have_stat = st != NULL;
        if (st) {
            f->dev = st->st_dev;
            f->ino = st->st_ino;
            f->size = st->st_size;
            f->mtime = st->st_mtim;
            f->ctime = st->st_ctim;
        }
        memcpy(f->file_sha, sha, ARTIFACT_SHA_HEX);
    }
    pthread_mutex_unlock(&a->mu);
}

int artifacts_file_digest(struct artifacts *a, const char *path, char sha[ARTIFACT_SHA_HEX],
                          char **content, size_t *len)
{
    char *full = xasprintf("%s/%s", a->dir, path);
    struct stat st, st2;
    struct art_file *f;
    char *data = NULL;
    size_t n = 0, cap;
    int fd, rc = 0;
    bool cached = false;

    if (content)
        *content = NULL;
    if (len)
        *len = 0;
    /* O_NONBLOCK: a FIFO someone left here must not hang the thread */
    fd = open(full, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        rc = errno == ENOENT || errno == ENOTDIR ? -ENOENT : -errno;
        goto out;
    }
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = -ENOENT;
        goto out;
    }
    if (st.st_size > ARTIFACT_MAX_BYTES) {
        rc = -EFBIG;
        goto out;
    }
    if (!content) {
        pthread_mutex_lock(&a->mu);
        f = artifacts_file(a, path, false);
        if (f && same_stat(f, &st)) {
            memcpy(sha, f->file_sha, ARTIFACT_SHA_HEX);
            cached = true;
        }
        pthread_mutex_unlock(&a->mu);
        if (cached)
            goto out;
    }
    cap = (size_t)st.st_size + 1;
    data = xmalloc(cap + 1);
    for (;;) {
        ssize_t r;

        if (n == cap) {
            if (cap > ARTIFACT_MAX_BYTES) {
                rc = -EFBIG;
                goto out;
            }
            cap = cap * 2 > ARTIFACT_MAX_BYTES + 1 ? ARTIFACT_MAX_BYTES + 1 : cap * 2;
            data = xrealloc(data, cap + 1);
        }
        r = read(fd, data + n, cap - n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            goto out;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (n > ARTIFACT_MAX_BYTES) {
        rc = -EFBIG;
        goto out;
    }
    data[n] = '\0';
    artifact_sha256_hex(data, n, sha);
    /* cache only when the file did not change while we read it */
    artifacts_file_remember(a, path,
                            fstat(fd, &st2) == 0 && st2.st_size == (off_t)n &&
                                    st2.st_mtim.tv_sec == st.st_mtim.tv_sec &&
                                    st2.st_mtim.tv_nsec == st.st_mtim.tv_nsec
                                ? &st
                                : NULL,
                            sha);
    if (content) {
        *content = data;
        data = NULL;
        if (len)
            *len = n;
    }
out:
    if (fd >= 0)
        close(fd);
    free(data);
    free(full);
    return rc;
}

int artifacts_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = 0;

    if (fd < 0)
        return -errno;
    if (fsync(fd) < 0)
        rc = -errno;
    close(fd);
    return rc;
}

/* mkdir that is fine when the directory exists; fsyncs the parent when it created one. */
static int ensure_dir(const char *path, const char *parent)
{
    struct stat st;

    if (mkdir(path, 0750) == 0)
        return parent ? artifacts_fsync_dir(parent) : 0;
    if (errno != EEXIST)
        return -errno;
    if (stat(path, &st) < 0)
        return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

/* ------------------------------------------------------------------------ */
/* State                                                                    */
/* ------------------------------------------------------------------------ */

struct artifacts *artifacts_new(struct node *n, int *rc)
{
    struct artifacts *a = xcalloc(1, sizeof(*a));
    char *sub;
    size_t i;
    int r;

    a->n = n;
    a->dir = xstrdup(n->conf->artifacts_dir);
    a->inofd = -1;
    a->wakefd = -1;
    a->wd_root = a->wd_sub[0] = a->wd_sub[1] = -1;
    pthread_mutex_init(&a->mu, NULL);
    artifacts_metrics_init();
    r = ensure_dir(a->dir, NULL);
    for (i = 0; r == 0 && i < 2; i++) {
        sub = xasprintf("%s/%s", a->dir, artifact_kind_dir(sub_kinds[i]));
        r = ensure_dir(sub, a->dir);
        free(sub);
    }
    if (r < 0) {
        log_error("artifacts: cannot create the directory", "dir", a->dir, "error", strerror(-r), NULL);
        artifacts_free(a);
        *rc = r;
        return NULL;
    }
    *rc = 0;
    return a;
}

void artifacts_free(struct artifacts *a)
{
    if (!a)
        return;
    if (a->inofd >= 0)
        close(a->inofd);
    if (a->wakefd >= 0)
        close(a->wakefd);
    pthread_mutex_destroy(&a->mu);
    free(a->files);
    free(a->dir);
    free(a);
}

/* ------------------------------------------------------------------------ */
/* inotify                                                                  */
/* ------------------------------------------------------------------------ */

/* (Re)adds the watches; idempotent (the kernel returns the same wd). */
static void ensure_watches(struct artifacts *a)
{
    size_t i;

    if (a->inofd < 0)
        return;
    a->wd_root = inotify_add_watch(a->inofd, a->dir, ROOT_MASK);
    for (i = 0; i < 2; i++) {
        char *sub = xasprintf("%s/%s", a->dir, artifact_kind_dir(sub_kinds[i]));
        a->wd_sub[i] = inotify_add_watch(a->inofd, sub, SUB_MASK);
        free(sub);
    }
}

/* Does this event concern an artifact (or the directories holding them)? */
static bool relevant(struct artifacts *a, const struct inotify_event *ev)
{
    char name[ARTIFACT_NAME_MAX + 1];

    if (ev->mask & (IN_Q_OVERFLOW | IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF))
        return true;
    if (ev->len == 0)
        return true;
    if (ev->wd == a->wd_root)
        return strcmp(ev->name, "tenants") == 0 || strcmp(ev->name, "userstores") == 0;
    return artifact_fname_class(ev->name, name) != 0;
}

/* Reads every queued event; true when one of them was relevant. */
static bool drain_inotify(struct artifacts *a)
{
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool any = false;

    if (a->inofd < 0)
        return false;
    for (;;) {
        ssize_t r = read(a->inofd, buf, sizeof(buf));
        char *p;

        if (r <= 0)
            break;
        for (p = buf; p < buf + r;) {
            const struct inotify_event *ev = (const struct inotify_event *)(void *)p;
            if (relevant(a, ev))
                any = true;
            if (ev->mask & IN_IGNORED) {
                /* a watched directory went away: re-add at the next pass */
                if (ev->wd == a->wd_root)
                    a->wd_root = -1;
                if (ev->wd == a->wd_sub[0])
                    a->wd_sub[0] = -1;
                if (ev->wd == a->wd_sub[1])
                    a->wd_sub[1] = -1;
            }
            p += sizeof(struct inotify_event) + ev->len;
        }
    }
    return any;
}

static void drain_wake(struct artifacts *a)
{
    uint64_t v;

    if (a->wakefd >= 0 && read(a->wakefd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        log_debug("artifacts: eventfd read failed", "error", strerror(errno), NULL);
}

static void wake(struct artifacts *a)
{
    uint64_t one = 1;

    if (a->wakefd >= 0 && write(a->wakefd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        log_debug("artifacts: eventfd write failed", "error", strerror(errno), NULL);
}

/* ------------------------------------------------------------------------ */
/* The thread                                                               */
/* ------------------------------------------------------------------------ */

static int desired_mode(struct artifacts *a)
{
    return atomic_load(&a->n->role) == NODE_ACTIVE ? ART_MODE_IMPORTER : ART_MODE_MATERIALIZER;
}

static int run_pass(struct artifacts *a)
{
    int rc;

    ensure_watches(a);
    if (a->mode == ART_MODE_IMPORTER)
        rc = artifacts_import_scan(a, false);
    else
        rc = artifacts_materialize(a);
    return rc;
}

static void enter_mode(struct artifacts *a, int mode)
{
    int old = a->mode;
    int rc;

    a->mode = mode;
    atomic_store(&a->mode_shown, mode);
    log_info("artifacts: mode", "mode", artifacts_mode_name(mode), "was", artifacts_mode_name(old),
             "dir", a->dir, NULL);
    ensure_watches(a);
    if (mode == ART_MODE_IMPORTER) {
        if (old == ART_MODE_MATERIALIZER)
            artifacts_materialize(a);   /* the directory now equals the table */
        rc = artifacts_import_scan(a, true);
    } else {
        rc = artifacts_materialize(a);
    }
    if (rc < 0)
        a->retry_at_us = time_mono_us() + RETRY_US;
}

static int64_t min64(int64_t x, int64_t y)
{
    return x < y ? x : y;
}

static void *thread_main(void *arg)
{
    struct artifacts *a = arg;
    int64_t pending_first = 0, pending_due = 0, next_full = 0, next_check = 0, now, due;
    bool pending = false;

    while (!atomic_load(&a->stop)) {
        struct pollfd pfd[2];
        bool run = false;
        int timeout_ms, want;

        atomic_store(&a->role_changed, false);
        want = desired_mode(a);
        now = time_mono_us();
        if (a->mode != want) {
            atomic_store(&a->applied, false);
            enter_mode(a, want);
            pending = false;
            next_full = time_mono_us() +
                        (want == ART_MODE_IMPORTER ? IMPORT_PERIOD_US : MATERIALIZE_PERIOD_US);
            continue;
        }
        if (atomic_exchange(&a->applied, false) && a->mode == ART_MODE_MATERIALIZER)
            run = true;
        if (a->mode == ART_MODE_MATERIALIZER && now >= next_check) {
            next_check = now + TABLE_CHECK_US;
            if (artifacts_table_changed(a) > 0)
                run = true;
        }
        if ((pending && now >= pending_due) || now >= next_full ||
            (a->retry_at_us && now >= a->retry_at_us))
            run = true;
        if (run) {
            pending = false;
            a->retry_at_us = 0;
            if (run_pass(a) < 0)
                a->retry_at_us = time_mono_us() + RETRY_US;
            next_full = time_mono_us() +
                        (a->mode == ART_MODE_IMPORTER ? IMPORT_PERIOD_US : MATERIALIZE_PERIOD_US);
            continue;
        }
        due = min64(next_full, now + ROLE_POLL_US);
        if (a->mode == ART_MODE_MATERIALIZER)
            due = min64(due, next_check);
        if (pending)
            due = min64(due, pending_due);
        if (a->retry_at_us)
            due = min64(due, a->retry_at_us);
        timeout_ms = due > now ? (int)((due - now + 999) / 1000) : 0;

        pfd[0].fd = a->wakefd;
        pfd[0].events = POLLIN;
        pfd[1].fd = a->inofd;
        pfd[1].events = POLLIN;
        if (poll(pfd, a->inofd >= 0 ? 2 : 1, timeout_ms) < 0 && errno != EINTR) {
            log_error("artifacts: poll failed", "error", strerror(errno), NULL);
            time_sleep_us(100000);
        }
        drain_wake(a);
        if (drain_inotify(a)) {
            now = time_mono_us();
            if (!pending) {
                pending = true;
                pending_first = now;
            }
            pending_due = min64(now + QUIET_US, pending_first + DEBOUNCE_MAX_US);
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Public life cycle                                                        */
/* ------------------------------------------------------------------------ */

int artifacts_start(struct node *n)
{
    struct artifacts *a;
    int rc;

    a = artifacts_new(n, &rc);
    if (!a)
        return rc;
    a->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (a->wakefd < 0) {
        rc = -errno;
        goto fail;
    }
    a->inofd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (a->inofd < 0)
        log_warn("artifacts: inotify unavailable, relying on the periodic scan", "error",
                 strerror(errno), NULL);
    if ((rc = reg_add(a)) < 0)
        goto fail;
    rc = -pthread_create(&a->thread, NULL, thread_main, a);
    if (rc < 0) {
        reg_remove(n);
        goto fail;
    }
    a->thread_started = true;
    return 0;
fail:
    log_error("artifacts: cannot start", "error", strerror(-rc), NULL);
    artifacts_free(a);
    return rc;
}

void artifacts_stop(struct node *n)
{
    struct artifacts *a = reg_remove(n);

    if (!a)
        return;
    atomic_store(&a->stop, true);
    wake(a);
    if (a->thread_started)
        pthread_join(a->thread, NULL);
    artifacts_free(a);
}

void artifacts_role_changed(struct node *n)
{
    struct artifacts *a = artifacts_acquire(n);

    if (a) {
        atomic_store(&a->role_changed, true);
        wake(a);
    }
    artifacts_release();
}

void artifacts_applied(struct node *n)
{
    struct artifacts *a = artifacts_acquire(n);

    if (a) {
        atomic_store(&a->applied, true);
        wake(a);
    }
    artifacts_release();
}
