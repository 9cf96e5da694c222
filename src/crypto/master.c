/*
 * master — load or create the node's master key file (format and creation
 * protocol in master.h).
 *
 * Creation: write 32 random bytes to "<path>.tmp-<random>" opened with
 * O_CREAT|O_EXCL|O_NOFOLLOW mode 0600, fsync it, link(2) it to <path> (which
 * fails with EEXIST instead of replacing a key another process just made),
 * unlink the temporary name and fsync the directory. Two nodes racing on the
 * same path therefore end up loading the same key.
 */
#include "crypto/master.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/rand.h"
#include "core/xmalloc.h"
#include "crypto/secret.h"

__attribute__((format(printf, 4, 5)))
static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;
    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static int read_full(int fd, uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            return -EINVAL;     /* shrank under us */
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static int write_full(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int fsync_parent(const char *path)
{
    char *copy = xstrdup(path);
    int fd, rc = 0;

    fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) < 0)
        rc = -errno;
    if (fd >= 0)
        close(fd);
    free(copy);
    return rc;
}

/* 0 loaded; -ENOENT when the file does not exist; other negatives with err set. */
static int load(const char *path, uint8_t out[CRYPTO_MASTER_KEY_LEN], char *err, size_t errlen)
{
    struct stat st;
    int fd, rc;

    fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        if (rc == -ENOENT)
            return rc;
        if (rc == -ELOOP)
            return fail(err, errlen, rc, "master key file %s is a symlink; refusing it", path);
        return fail(err, errlen, rc, "cannot open master key file %s: %s", path, strerror(-rc));
    }
    if (fstat(fd, &st) < 0) {
        rc = fail(err, errlen, -errno, "cannot stat master key file %s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = fail(err, errlen, -EINVAL, "master key file %s is not a regular file", path);
        goto out;
    }
    if (st.st_mode & 077) {
        rc = fail(err, errlen, -EPERM,
                  "master key file %s is accessible by group or others (mode %04o); "
                  "chmod 600 it", path, (unsigned)(st.st_mode & 07777));
        goto out;
    }
    if (st.st_size != CRYPTO_MASTER_KEY_LEN) {
        rc = fail(err, errlen, -EINVAL, "master key file %s is %lld bytes, expected exactly %d",
                  path, (long long)st.st_size, CRYPTO_MASTER_KEY_LEN);
        goto out;
    }
    rc = read_full(fd, out, CRYPTO_MASTER_KEY_LEN);
    if (rc < 0)
        rc = fail(err, errlen, rc, "cannot read master key file %s: %s", path,
                  rc == -EINVAL ? "file shrank while reading" : strerror(-rc));
out:
    close(fd);
    return rc;
}

/* 0 created; -EEXIST when someone else created it first; others with err set. */
static int create(const char *path, char *err, size_t errlen)
{
    uint8_t key[CRYPTO_MASTER_KEY_LEN];
    char suffix[16];
    char *tmp;
    int fd, rc;

    rand_token(suffix, 6);
    tmp = xasprintf("%s.tmp-%s", path, suffix);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = fail(err, errlen, -errno, "cannot create master key file %s: %s", tmp, strerror(errno));
        free(tmp);
        return rc;
    }
    rand_bytes(key, sizeof key);
    rc = write_full(fd, key, sizeof key);
    crypto_wipe(key, sizeof key);
    if (rc == 0 && fchmod(fd, 0600) < 0)    /* in case the umask was odd; never wider */
        rc = -errno;
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc < 0) {
        fail(err, errlen, rc, "cannot write master key file %s: %s", tmp, strerror(-rc));
        goto out;
    }
    if (link(tmp, path) < 0) {
        rc = -errno;
        if (rc != -EEXIST)
            fail(err, errlen, rc, "cannot create master key file %s: %s", path, strerror(-rc));
        goto out;
    }
    rc = fsync_parent(path);
    if (rc < 0)
        fail(err, errlen, rc, "cannot fsync the directory of %s: %s", path, strerror(-rc));
out:
    unlink(tmp);
    free(tmp);
    return rc;
}

int crypto_master_load_or_create(const char *path, uint8_t out[CRYPTO_MASTER_KEY_LEN],
                                 bool *created, char *err, size_t errlen)
{
    int rc;

    if (created)
        *created = false;
    if (err && errlen)
        err[0] = '\0';
    rc = load(path, out, err, errlen);
    if (rc == -ENOENT) {
        rc = create(path, err, errlen);
        if (rc == 0 && created)
            *created = true;
        if (rc == 0 || rc == -EEXIST) {     /* ours, or a racing creator's */
            rc = load(path, out, err, errlen);
            if (rc == -ENOENT)
                rc = fail(err, errlen, rc, "master key file %s vanished after creation", path);
        }
    }
    if (rc < 0)
        crypto_wipe(out, CRYPTO_MASTER_KEY_LEN);
    return rc;
}
