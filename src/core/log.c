/*
 * log — structured logging for a server that is read by machines first:
 * one JSON object per line (or `TIME LEVEL msg key=value` for humans), each
 * line written with a single write(2) to an O_APPEND descriptor so lines from
 * different threads never interleave.
 *
 * The current descriptor is an atomic int. log_reopen (SIGHUP, after log
 * rotation) opens the file again and dup2()s the new descriptor over the old
 * number, so a thread that is in the middle of a write never sees a closed
 * descriptor. log_reopen takes a mutex, so it is not async-signal-safe: the
 * SIGHUP handler sets a flag and the main loop calls log_reopen. The request
 * id is thread-local: the HTTP layer sets it when it starts handling a
 * request on a thread and clears it after.
 *
 * Lines are capped at LOG_LINE_MAX bytes: fields that no longer fit are
 * dropped and the line gets "truncated":true; a single value is cut at
 * LOG_VALUE_MAX bytes. Logging can never be made to allocate without bound.
 */
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/timeutil.h"
#include "core/xmalloc.h"

#define LOG_LINE_MAX 32768
#define LOG_VALUE_MAX 4096
#define LOG_TAIL_RESERVE 32     /* room kept for the truncation marker */
#define LOG_REQID_MAX 128
#define LOG_RING_SLOTS 16
#define LOG_RING_SLOT_SIZE 512

static atomic_int g_min_level = LOG_LVL_INFO;
static atomic_bool g_json = true;
static atomic_int g_fd = STDERR_FILENO;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;  /* init/reopen/close */
static char *g_path;            /* NULL: stderr */

static _Thread_local char tl_reqid[LOG_REQID_MAX + 1];
static _Thread_local char tl_ring[LOG_RING_SLOTS][LOG_RING_SLOT_SIZE];
static _Thread_local unsigned tl_ring_next;

static const char *const level_names[] = { "debug", "info", "warn", "error" };
static const char *const level_upper[] = { "DEBUG", "INFO", "WARN", "ERROR" };

/* ------------------------------------------------------------ setup */

static int open_log(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    return fd < 0 ? -errno : fd;
}

int log_init(enum log_level min, bool json, const char *path)
{
    int rc = 0;
    int fd = STDERR_FILENO;
    int old;

    pthread_mutex_lock(&g_lock);
    if (path && strcmp(path, "-") != 0) {
        fd = open_log(path);
        if (fd < 0) {
            rc = fd;
            goto out;
        }
    }
    old = atomic_exchange(&g_fd, fd);
    if (old != STDERR_FILENO && old != fd)
        close(old);
    free(g_path);
    g_path = fd == STDERR_FILENO ? NULL : xstrdup(path);
    atomic_store(&g_min_level, (int)min);
    atomic_store(&g_json, json);
out:
    pthread_mutex_unlock(&g_lock);
    return rc;
}

int log_reopen(void)
{
    int rc = 0;
    int fd;

    pthread_mutex_lock(&g_lock);
    if (!g_path)
        goto out;
    fd = open_log(g_path);
    if (fd < 0) {
        rc = fd;        /* keep writing to the old file */
        goto out;
    }
    /* Atomically replace what the old number refers to. */
    if (dup2(fd, atomic_load(&g_fd)) < 0)
        rc = -errno;
    close(fd);
out:
    pthread_mutex_unlock(&g_lock);
    return rc;
}

void log_close(void)
{
    int old;

    pthread_mutex_lock(&g_lock);
    old = atomic_exchange(&g_fd, STDERR_FILENO);
    if (old != STDERR_FILENO)
        close(old);
    free(g_path);
    g_path = NULL;
    pthread_mutex_unlock(&g_lock);
}

int log_level_parse(const char *s, enum log_level *out)
{
    if (!s)
        return -EINVAL;
    if (strcasecmp(s, "debug") == 0)
        *out = LOG_LVL_DEBUG;
    else if (strcasecmp(s, "info") == 0)
        *out = LOG_LVL_INFO;
    else if (strcasecmp(s, "warn") == 0 || strcasecmp(s, "warning") == 0)
        *out = LOG_LVL_WARN;
    else if (strcasecmp(s, "error") == 0)
        *out = LOG_LVL_ERROR;
    else
        return -EINVAL;
    return 0;
}

bool log_enabled(enum log_level lvl)
{
    return (int)lvl >= atomic_load_explicit(&g_min_level, memory_order_relaxed);
}

/* ------------------------------------------------------------ request id */

void log_set_request_id(const char *id)
{
    size_t n;

    if (!id) {
        tl_reqid[0] = '\0';
        return;
    }
    n = strnlen(id, LOG_REQID_MAX);
    memcpy(tl_reqid, id, n);
    tl_reqid[n] = '\0';
}

const char *log_request_id(void)
{
    return tl_reqid[0] ? tl_reqid : NULL;
}

/* ------------------------------------------------------------ formatting */

static int put_json_str(struct buf *b, const char *s)
{
    size_t n = strnlen(s, LOG_VALUE_MAX);
    int rc;

    if ((rc = buf_putc(b, '"')) < 0 || (rc = buf_json_escape(b, s, n)) < 0)
        return rc;
    return buf_putc(b, '"');
}

/* A text-format token: bare when it is plain printable ASCII, otherwise
 * quoted with JSON escapes so a value can never fake a new line or field. */
static int put_text_str(struct buf *b, const char *s)
{
    size_t n = strnlen(s, LOG_VALUE_MAX);
    bool bare = n > 0;
    size_t i;

    for (i = 0; i < n && bare; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || c == '"' || c == '=' || c == '\\')
            bare = false;
    }
    if (bare)
        return buf_append(b, s, n);
    return put_json_str(b, s);
}

/* Appends one field (" key=value" or ",\"key\":\"value\""); all or nothing. */
static int put_field(struct buf *b, bool json, const char *key, const char *val)
{
    size_t saved = b->len;
    int rc;

    if (json) {
        if ((rc = buf_putc(b, ',')) < 0 || (rc = put_json_str(b, key)) < 0 ||
            (rc = buf_putc(b, ':')) < 0)
            goto out;
        rc = val ? put_json_str(b, val) : buf_puts(b, "null");
    } else {
        if ((rc = buf_putc(b, ' ')) < 0 || (rc = put_text_str(b, key)) < 0 ||
            (rc = buf_putc(b, '=')) < 0)
            goto out;
        rc = val ? put_text_str(b, val) : buf_puts(b, "null");
    }
out:
    if (rc < 0 && b->data) {
        b->len = saved;
        b->data[saved] = '\0';
    }
    return rc;
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return;         /* nowhere left to report a logging failure */
        }
        p += w;
        n -= (size_t)w;
    }
}

void log_write(enum log_level lvl, const char *msg, ...)
{
    int saved_errno = errno;
    bool json = atomic_load_explicit(&g_json, memory_order_relaxed);
    const char *reqid = log_request_id();
    bool dropped = false;   /* a field did not fit: the rest are skipped */
    bool cut = false;       /* a value was longer than LOG_VALUE_MAX */
    char when[40];
    struct buf b;
    va_list ap;
    int lv = (int)lvl;

    if (!log_enabled(lvl))
        return;
    if (lv < LOG_LVL_DEBUG || lv > LOG_LVL_ERROR)
        lv = LOG_LVL_ERROR;
    time_rfc3339(time_wall_us(), when, sizeof when, 1);
    buf_init(&b, LOG_LINE_MAX - LOG_TAIL_RESERVE);

    /* time, level, request id and msg always fit: escaping grows a byte to
     * at most 6, and 6 * (LOG_REQID_MAX + LOG_VALUE_MAX) + 100 < LOG_LINE_MAX. */
    if (!msg)
        msg = "";
    cut = strnlen(msg, LOG_VALUE_MAX + 1) > LOG_VALUE_MAX;
    if (json) {
        buf_printf(&b, "{\"time\":\"%s\",\"level\":\"%s\"", when, level_names[lv]);
        if (reqid)
            put_field(&b, true, "request_id", reqid);
        put_field(&b, true, "msg", msg);
    } else {
        buf_printf(&b, "%s %s ", when, level_upper[lv]);
        put_text_str(&b, msg);
        if (reqid)
            put_field(&b, false, "request_id", reqid);
    }

    va_start(ap, msg);
    for (;;) {
        const char *key = va_arg(ap, const char *);
        const char *val;

        if (!key)
            break;
        val = va_arg(ap, const char *);
        if (dropped)
            continue;
        if (put_field(&b, json, key, val) < 0)
            dropped = true;
        else if (val && strnlen(val, LOG_VALUE_MAX + 1) > LOG_VALUE_MAX)
            cut = true;
    }
    va_end(ap);

    b.limit = LOG_LINE_MAX;     /* the reserve is for the tail */
    if (dropped || cut)
        buf_puts(&b, json ? ",\"truncated\":true" : " truncated=true");
    buf_puts(&b, json ? "}\n" : "\n");
    write_all(atomic_load(&g_fd), b.data, b.len);
    buf_free(&b);
    errno = saved_errno;
}

/* ------------------------------------------------------------ value ring */

static char *ring_slot(void)
{
    char *slot = tl_ring[tl_ring_next];

    tl_ring_next = (tl_ring_next + 1) % LOG_RING_SLOTS;
    return slot;
}

const char *log_i64(int64_t v)
{
    char *slot = ring_slot();

    snprintf(slot, LOG_RING_SLOT_SIZE, "%lld", (long long)v);
    return slot;
}

const char *log_fmt(const char *fmt, ...)
{
    char *slot = ring_slot();
    va_list ap;

    va_start(ap, fmt);
    if (vsnprintf(slot, LOG_RING_SLOT_SIZE, fmt, ap) < 0)
        slot[0] = '\0';
    va_end(ap);
    return slot;
}
