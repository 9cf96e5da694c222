/*
 * materializer — the standby's half: the `artifacts` table (replicated in
 * the same transactions as the data) is the source of truth and the
 * directory follows it, byte for byte.
 *
 * One pass (artifacts_materialize), run after each replication apply
 * (artifacts_applied), when a 25 ms check of PRAGMA data_version and the
 * table's (path, sha256) list sees a change (so latency does not depend on
 * being told), and every second:
 *
 *   1. read every row (path, content) in one statement: one snapshot;
 *   2. each row's file: equal digest -> nothing; else write it atomically:
 *        DIR/KIND/.NAME.conf.refuge-tmp.XXXXXX  (same directory)
 *        write all, fsync, close, rename over DIR/KIND/NAME.conf, fsync DIR/KIND
 *      so a reader sees the old bytes or the new ones, never a mix, and a
 *      crash leaves one of them;
 *   3. every NAME.conf without a row is removed (then the directory fsynced).
 *
 * Drift: the digest this node last wrote or verified for a path is kept
 * (local_sha). A file that differs from the table AND from local_sha was
 * changed by someone else: "artifact drift" is logged with both digests,
 * counted (refuge_artifact_drift_total, node status), and overwritten. So is
 * a NAME.conf that appears without a row, and a file this node wrote that
 * someone deleted. A file that still holds what this node last wrote is
 * simply behind the table (a normal update). After a restart nothing was
 * written yet, so any difference counts as drift.
 *
 * Paths come from the network: only tenants/NAME.conf and
 * userstores/NAME.conf with a valid NAME are ever written (artifact_path_parse),
 * so a row can never make us write outside the directory. Other files (notes,
 * editor files, a .conf with an invalid name) are left alone.
 */
#include "artifacts/artifacts_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/xmalloc.h"

#define TMP_MARK ".refuge-tmp."

struct mrow {
    char path[ARTIFACT_PATH_MAX];
    char *content;
    size_t len;
    char sha[ARTIFACT_SHA_HEX];      /* digest of content (the bytes decide, not the column) */
};

struct mrows {
    struct mrow *items;
    size_t n, cap;
};

static void mrows_free(struct mrows *rs)
{
    size_t i;

    for (i = 0; i < rs->n; i++)
        free(rs->items[i].content);
    free(rs->items);
    memset(rs, 0, sizeof(*rs));
}

static int read_table(struct artifacts *a, struct mrows *out)
{
    struct db *db = store_reader(a->n->store);
    struct db_stmt *st;
    char name[ARTIFACT_NAME_MAX + 1];
    size_t bad = 0;
    int rc;

    if (!db || !(st = db_prepare(db, "SELECT path, content, sha256 FROM artifacts ORDER BY path")))
        return -EIO;
    while ((rc = db_step(st)) == DB_ROW) {
        const char *p = db_col_text(st, 0);
        const void *c = db_col_blob(st, 1);
        size_t n = db_col_bytes(st, 1);
        struct mrow *r;

        if (artifact_path_parse(p, name) == ARTIFACT_NONE) {
            if (++bad > a->bad_rows_logged)     /* once, not every second */
                log_error("artifact row with an invalid path is not materialized", "path", p, NULL);
            continue;
        }
        if (out->n == out->cap) {
            out->cap = out->cap ? out->cap * 2 : 16;
            out->items = xrealloc(out->items, out->cap * sizeof(*out->items));
        }
        r = &out->items[out->n++];
        snprintf(r->path, sizeof(r->path), "%s", p);
        r->content = xmalloc(n + 1);
        if (n)
            memcpy(r->content, c, n);
        r->content[n] = '\0';
        r->len = n;
        artifact_sha256_hex(r->content, n, r->sha);
        if (strcmp(r->sha, db_col_text(st, 2)) != 0 && ++bad > a->bad_rows_logged)
            log_warn("artifact row: sha256 column does not match its content; the content wins",
                     "path", p, "column", db_col_text(st, 2), "content", r->sha, NULL);
    }
    db_done(st);
    a->bad_rows_logged = bad;
    return rc == DB_DONE ? 0 : -EIO;
}

static const struct mrow *find_mrow(const struct mrows *rs, const char *path)
{
    size_t i;

    for (i = 0; i < rs->n; i++)
        if (strcmp(rs->items[i].path, path) == 0)
            return &rs->items[i];
    return NULL;
}

static void local_get(struct artifacts *a, const char *path, char out[ARTIFACT_SHA_HEX], bool mark)
{
    struct art_file *f;

    pthread_mutex_lock(&a->mu);
    f = artifacts_file(a, path, mark);
    if (f && mark)
        f->present = true;
    snprintf(out, ARTIFACT_SHA_HEX, "%s", f ? f->local_sha : "");
    pthread_mutex_unlock(&a->mu);
}

static void local_set(struct artifacts *a, const char *path, const char *sha)
{
    struct art_file *f;

    pthread_mutex_lock(&a->mu);
    if ((f = artifacts_file(a, path, true))) {
        snprintf(f->local_sha, sizeof(f->local_sha), "%s", sha);
        f->present = true;
    }
    pthread_mutex_unlock(&a->mu);
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Atomically replaces DIR/path with content. 0 or -errno. */
static int write_atomic(struct artifacts *a, const struct mrow *r)
{
    const char *slash = strchr(r->path, '/');
    char *dir = xasprintf("%s/%.*s", a->dir, (int)(slash - r->path), r->path);
    char *full = xasprintf("%s/%s", a->dir, r->path);
    char *tmp = xasprintf("%s/.%s" TMP_MARK "XXXXXX", dir, slash + 1);
    struct stat st;
    int fd = -1, rc;

    if (mkdir(dir, 0750) == 0)
        artifacts_fsync_dir(a->dir);
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    if ((rc = write_all(fd, r->content, r->len)) < 0)
        goto out;
    if (fsync(fd) < 0) {
        rc = -errno;
        goto out;
    }
    if (close(fd) < 0) {
        fd = -1;
        rc = -errno;
        goto out;
    }
    fd = -1;
    if (rename(tmp, full) < 0) {
        rc = -errno;
        goto out;
    }
    tmp[0] = '\0';
    rc = artifacts_fsync_dir(dir);
    /* the rename changed ctime: remember the stat as it is now */
    artifacts_file_remember(a, r->path, stat(full, &st) == 0 ? &st : NULL, r->sha);
out:
    if (fd >= 0)
        close(fd);
    if (tmp[0])
        unlink(tmp);
    free(tmp);
    free(full);
    free(dir);
    return rc;
}

/* One row: bring its file to the table's bytes. */
static int materialize_row(struct artifacts *a, const struct mrow *r)
{
    char disk[ARTIFACT_SHA_HEX], local[ARTIFACT_SHA_HEX];
    bool drift;
    int rc;

    local_get(a, r->path, local, true);
    rc = artifacts_file_digest(a, r->path, disk, NULL, NULL);
    if (rc == 0 && strcmp(disk, r->sha) == 0) {
        local_set(a, r->path, r->sha);
        return 0;
    }
    if (rc == 0)
        drift = !local[0] || strcmp(disk, local) != 0;
    else if (rc == -ENOENT)
        drift = local[0] != '\0';       /* this node had written it; someone removed it */
    else
        drift = true;                   /* too big, unreadable: not what we wrote */
    if (drift) {
        log_warn("artifact drift: local file differs from the replicated artifact; overwriting",
                 "path", r->path, "found", rc == 0 ? disk : rc == -ENOENT ? "missing" : strerror(-rc),
                 "expected", r->sha, "dir", a->dir, NULL);
        artifacts_count_drift(a);
    }
    rc = write_atomic(a, r);
    if (rc < 0) {
        log_error("artifact could not be materialized; will retry", "path", r->path, "error",
                  strerror(-rc), NULL);
        return rc;
    }
    local_set(a, r->path, r->sha);
    artifacts_count_materialized(a);
    log_info("artifact materialized", "path", r->path, "sha256", r->sha, NULL);
    return 0;
}

/* Removes NAME.conf files without a row (and our stale temp files) in one kind's directory. */
static int sweep_dir(struct artifacts *a, const struct mrows *rows, enum artifact_kind kind)
{
    const char *sub = artifact_kind_dir(kind);
    char *dirpath = xasprintf("%s/%s", a->dir, sub);
    char name[ARTIFACT_NAME_MAX + 1], rel[ARTIFACT_PATH_MAX + 256];
    char disk[ARTIFACT_SHA_HEX], local[ARTIFACT_SHA_HEX];
    bool removed = false;
    struct dirent *e;
    DIR *d = opendir(dirpath);
    int rc = 0;

    if (!d) {
        rc = errno == ENOENT ? 0 : -errno;
        goto out;
    }
    while ((e = readdir(d))) {
        char *full;
        bool drift;

        if (e->d_name[0] == '.' && strstr(e->d_name, TMP_MARK)) {
            /* a temp file of a write that never finished (crash) */
            full = xasprintf("%s/%s", dirpath, e->d_name);
            unlink(full);
            free(full);
            continue;
        }
        if (artifact_fname_class(e->d_name, name) != 1)
            continue;
        snprintf(rel, sizeof(rel), "%s/%s", sub, e->d_name);
        if (find_mrow(rows, rel))
            continue;
        local_get(a, rel, local, false);
        if (artifacts_file_digest(a, rel, disk, NULL, NULL) == -ENOENT)
            continue;           /* a directory or a device named *.conf: not ours */
        drift = !local[0] || strcmp(disk, local) != 0;
        full = xasprintf("%s/%s", dirpath, e->d_name);
        if (unlink(full) < 0) {
            rc = -errno;
            log_error("artifact could not be removed; will retry", "path", rel, "error",
                      strerror(errno), NULL);
        } else {
            removed = true;
            if (drift) {
                log_warn("artifact drift: local file without a replicated artifact; removed",
                         "path", rel, "found", disk, "dir", a->dir, NULL);
                artifacts_count_drift(a);
            } else {
                log_info("artifact removed", "path", rel, NULL);
            }
            artifacts_count_materialized(a);
        }
        free(full);
    }
    closedir(d);
    if (removed) {
        int r = artifacts_fsync_dir(dirpath);
        if (r < 0 && rc == 0)
            rc = r;
    }
out:
    free(dirpath);
    return rc;
}

int artifacts_table_changed(struct artifacts *a)
{
    struct db *db = store_reader(a->n->store);
    struct db_stmt *st;
    EVP_MD_CTX *ctx = NULL;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    int64_t version;
    int rc;

    if (!db || !(st = db_prepare(db, "PRAGMA data_version")))
        return -EIO;
    rc = db_step(st);
    version = rc == DB_ROW ? db_col_int64(st, 0) : -1;
    db_done(st);
    if (rc != DB_ROW)
        return -EIO;
    if (a->have_fp && version == a->data_version)
        return 0;               /* nothing committed since the last look */
    a->data_version = version;
    if (!(st = db_prepare(db, "SELECT path, sha256 FROM artifacts ORDER BY path")))
        return -EIO;
    ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        abort();
    while ((rc = db_step(st)) == DB_ROW) {
        const char *p = db_col_text(st, 0), *h = db_col_text(st, 1);
        EVP_DigestUpdate(ctx, p, strlen(p) + 1);
        EVP_DigestUpdate(ctx, h, strlen(h) + 1);
    }
    db_done(st);
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    if (rc != DB_DONE)
        return -EIO;
    if (a->have_fp && memcmp(md, a->table_fp, sizeof(a->table_fp)) == 0)
        return 0;               /* other tables changed */
    memcpy(a->table_fp, md, sizeof(a->table_fp));
    a->have_fp = true;
    return 1;
}

static bool is_present(const struct art_file *f)
{
    return f->present;
}

int artifacts_materialize(struct artifacts *a)
{
    struct mrows rows = { 0 };
    size_t i;
    int rc, r;

    rc = read_table(a, &rows);
    if (rc < 0) {
        log_warn("artifacts: cannot read the artifacts table", "error", strerror(-rc), NULL);
        goto out;
    }
    pthread_mutex_lock(&a->mu);
    for (i = 0; i < a->nfiles; i++) {
        a->files[i].present = false;
        /* the importer's verdicts mean nothing on a standby */
        a->files[i].status = ART_OK;
        a->files[i].retry = false;
        a->files[i].rejected_sha[0] = '\0';
        a->files[i].last_error[0] = '\0';
    }
    pthread_mutex_unlock(&a->mu);
    for (i = 0; i < rows.n; i++)
        if ((r = materialize_row(a, &rows.items[i])) < 0 && rc == 0)
            rc = r;
    if ((r = sweep_dir(a, &rows, ARTIFACT_TENANT)) < 0 && rc == 0)
        rc = r;
    if ((r = sweep_dir(a, &rows, ARTIFACT_USERSTORE)) < 0 && rc == 0)
        rc = r;
    pthread_mutex_lock(&a->mu);
    artifacts_files_prune(a, is_present);
    pthread_mutex_unlock(&a->mu);
out:
    mrows_free(&rows);
    return rc;
}
