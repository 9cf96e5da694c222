/*
 * snapshot — making, receiving, verifying and installing a whole-database
 * copy (see snapshot.h for the life cycle and its crash safety).
 */
#include "repl/snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <sqlite3.h>

#include "core/log.h"
#include "core/xmalloc.h"

#define BUSY_MS 5000

static int sqlite_errno(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    case SQLITE_FULL:
        return -ENOSPC;
    case SQLITE_CANTOPEN:
        return -ENOENT;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return -EBADMSG;
    default:
        return -EIO;
    }
}

static int read_tip(sqlite3 *h, struct repl_tip *tip)
{
    sqlite3_stmt *st;
    int rc;

    memset(tip, 0, sizeof(*tip));
    rc = sqlite3_prepare_v2(h, "SELECT epoch, lsn, commit_us, hash FROM repl_log ORDER BY lsn DESC LIMIT 1", -1,
                            &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        tip->epoch = (uint64_t)sqlite3_column_int64(st, 0);
        tip->lsn = (uint64_t)sqlite3_column_int64(st, 1);
        tip->commit_us = (uint64_t)sqlite3_column_int64(st, 2);
        if (sqlite3_column_bytes(st, 3) == REPL_HASH_LEN)
            memcpy(tip->hash, sqlite3_column_blob(st, 3), REPL_HASH_LEN);
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

static int file_sha256(const char *path, uint8_t out[32], uint64_t *size)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char buf[1 << 16];
    unsigned int n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;

    *size = 0;
    if (fd < 0 || !ctx || EVP_DigestInit_ex2(ctx, EVP_sha256(), NULL) != 1) {
        rc = fd < 0 ? -errno : -ENOMEM;
        goto out;
    }
    for (;;) {
        ssize_t r = read(fd, buf, sizeof(buf));

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = -errno;
            goto out;
        }
        if (r == 0)
            break;
        EVP_DigestUpdate(ctx, buf, (size_t)r);
        *size += (uint64_t)r;
    }
    if (EVP_DigestFinal_ex(ctx, out, &n) != 1)
        rc = -EIO;
out:
    if (fd >= 0)
        close(fd);
    EVP_MD_CTX_free(ctx);
    return rc;
}

/* ---------------------------------------------------------------- active */

int repl_snapshot_create(const char *db_path, const char *out_path, struct repl_tip *tip,
                         uint8_t sha256[32], uint64_t *size, char *err, size_t errlen)
{
    sqlite3 *src = NULL, *dst = NULL;
    char *q = NULL;
    int rc;

    unlink(out_path);
    rc = sqlite3_open_v2(db_path, &src, SQLITE_OPEN_READONLY, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(src, BUSY_MS);
        q = sqlite3_mprintf("VACUUM INTO %Q", out_path);
        rc = sqlite3_exec(src, q, NULL, NULL, NULL);
    }
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "snapshot of %s: %s", db_path, src ? sqlite3_errmsg(src) : sqlite3_errstr(rc));
        goto out;
    }
    /* The copy becomes a standby's database: node-local rows say so. */
    rc = sqlite3_open_v2(out_path, &dst, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(dst,
                          "PRAGMA journal_mode=DELETE;"
                          "BEGIN;"
                          "UPDATE node_state SET value = 'standby' WHERE key = 'role';"
                          "DELETE FROM repl_state;"
                          "COMMIT",
                          NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = read_tip(dst, tip);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "snapshot %s: %s", out_path, dst ? sqlite3_errmsg(dst) : sqlite3_errstr(rc));
        goto out;
    }
    sqlite3_close(dst);
    dst = NULL;
    rc = file_sha256(out_path, sha256, size);
    if (rc != 0) {
        snprintf(err, errlen, "snapshot %s: %s", out_path, strerror(-rc));
        goto out;
    }
    rc = SQLITE_OK;
out:
    sqlite3_free(q);
    sqlite3_close(dst);
    sqlite3_close(src);
    if (rc != SQLITE_OK) {
        unlink(out_path);
        return rc < 0 ? rc : sqlite_errno(rc);
    }
    return 0;
}

/* --------------------------------------------------------------- standby */

int repl_snapshot_rx_begin(struct repl_snapshot_rx *rx, const char *path, uint64_t total,
                           const struct repl_tip *tip, uint32_t schema_version, char *err, size_t errlen)
{
    memset(rx, 0, sizeof(*rx));
    rx->fd = -1;
    rx->path = xstrdup(path);
    rx->total = total;
    rx->tip = *tip;
    rx->schema_version = schema_version;
    unlink(path);
    rx->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (rx->fd < 0) {
        int e = errno;

        snprintf(err, errlen, "%s: %s", path, strerror(e));
        repl_snapshot_rx_abort(rx);
        return -e;
    }
    rx->sha = EVP_MD_CTX_new();
    if (!rx->sha || EVP_DigestInit_ex2(rx->sha, EVP_sha256(), NULL) != 1)
        abort();
    return 0;
}

int repl_snapshot_rx_chunk(struct repl_snapshot_rx *rx, uint64_t offset, const void *p, size_t n,
                           char *err, size_t errlen)
{
    size_t off = 0;

    if (rx->fd < 0 || offset != rx->have || n > rx->total - rx->have) {
        snprintf(err, errlen, "snapshot chunk at %" PRIu64 " (+%zu) out of order or past %" PRIu64 " bytes", offset,
                 n, rx->total);
        return -EPROTO;
    }
    while (off < n) {
        ssize_t w = write(rx->fd, (const char *)p + off, n - off);

        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            int e = errno;

            snprintf(err, errlen, "%s: %s", rx->path, strerror(e));
            return -e;
        }
        off += (size_t)w;
    }
    EVP_DigestUpdate(rx->sha, p, n);
    rx->have += n;
    return 0;
}

int repl_snapshot_rx_end(struct repl_snapshot_rx *rx, const uint8_t sha256[32], char *err, size_t errlen)
{
    uint8_t got[32];
    unsigned int n = 0;
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    struct repl_tip tip;
    int rc;

    if (rx->fd < 0 || rx->have != rx->total) {
        snprintf(err, errlen, "snapshot ended after %" PRIu64 " of %" PRIu64 " bytes", rx->have, rx->total);
        return -EPROTO;
    }
    EVP_DigestFinal_ex(rx->sha, got, &n);
    if (memcmp(got, sha256, 32) != 0) {
        snprintf(err, errlen, "snapshot SHA-256 mismatch");
        return -EBADMSG;
    }
    if (fsync(rx->fd) != 0) {
        int e = errno;

        snprintf(err, errlen, "%s: fsync: %s", rx->path, strerror(e));
        return -e;
    }
    close(rx->fd);
    rx->fd = -1;

    rc = sqlite3_open_v2(rx->path, &h, SQLITE_OPEN_READONLY, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(h, "PRAGMA quick_check", -1, &st, NULL);
    if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
        strcmp((const char *)sqlite3_column_text(st, 0), "ok") != 0) {
        snprintf(err, errlen, "snapshot fails its integrity check: %s", sqlite3_column_text(st, 0));
        rc = -EBADMSG;
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(h, "PRAGMA user_version", -1, &st, NULL);
    if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
        (uint32_t)sqlite3_column_int64(st, 0) != rx->schema_version) {
        snprintf(err, errlen, "snapshot schema version %lld, announced %u", sqlite3_column_int64(st, 0),
                 rx->schema_version);
        rc = -EPROTO;
        goto out;
    }
    if (rc == SQLITE_OK)
        rc = read_tip(h, &tip);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "snapshot unreadable: %s", h ? sqlite3_errmsg(h) : sqlite3_errstr(rc));
        rc = sqlite_errno(rc);
        goto out;
    }
    if (tip.lsn != rx->tip.lsn || tip.epoch != rx->tip.epoch || memcmp(tip.hash, rx->tip.hash, 32) != 0) {
        snprintf(err, errlen, "snapshot position (%" PRIu64 ", %" PRIu64 ") differs from the announced (%" PRIu64
                 ", %" PRIu64 ")", tip.epoch, tip.lsn, rx->tip.epoch, rx->tip.lsn);
        rc = -EBADMSG;
        goto out;
    }
    rc = 0;
out:
    sqlite3_finalize(st);
    sqlite3_close(h);
    return rc;
}

void repl_snapshot_rx_abort(struct repl_snapshot_rx *rx)
{
    if (rx->fd >= 0)
        close(rx->fd);
    rx->fd = -1;
    if (rx->path)
        unlink(rx->path);
    free(rx->path);
    rx->path = NULL;
    EVP_MD_CTX_free(rx->sha);
    rx->sha = NULL;
}

/* --------------------------------------------------------------- install */

struct install_job {
    const char *path;
    char *err;
    size_t errlen;
};

static int install_fn(struct db *db, void *arg)
{
    struct install_job *j = arg;
    sqlite3 *dst = db_native(db), *src = NULL;
    sqlite3_backup *b;
    int rc;

    rc = sqlite3_open_v2(j->path, &src, SQLITE_OPEN_READONLY, NULL);
    if (rc != SQLITE_OK) {
        snprintf(j->err, j->errlen, "%s: %s", j->path, src ? sqlite3_errmsg(src) : sqlite3_errstr(rc));
        goto out;
    }
    b = sqlite3_backup_init(dst, "main", src, "main");
    if (!b) {
        rc = sqlite3_errcode(dst);
        snprintf(j->err, j->errlen, "backup: %s", sqlite3_errmsg(dst));
        goto out;
    }
    /* one step copies every page in one write transaction on dst */
    rc = sqlite3_backup_step(b, -1);
    sqlite3_backup_finish(b);
    if (rc != SQLITE_DONE) {
        snprintf(j->err, j->errlen, "backup: %s", sqlite3_errstr(rc));
        goto out;
    }
    rc = SQLITE_OK;
out:
    sqlite3_close(src);
    return rc == SQLITE_OK ? 0 : sqlite_errno(rc);
}

int repl_snapshot_install(struct store *s, const char *path, char *err, size_t errlen)
{
    struct install_job j = { path, err, errlen };

    err[0] = '\0';
    return store_write_flags(s, install_fn, &j, STORE_JOB_RAW | STORE_JOB_SYSTEM);
}
