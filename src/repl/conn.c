/*
 * conn — the replication transport, plain half: timeouts, the plain-fd
 * implementation, frames over a conn, connecting and listening.
 *
 * All sockets are non-blocking and every wait is a poll(2) against a
 * monotonic deadline, so a peer that stops reading or writing costs at most
 * the caller's timeout, never a stuck thread. The TLS implementation of
 * struct repl_conn_ops lives in tls.c and reuses the helpers at the end of
 * conn.h.
 */
#include "repl/conn.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/timeutil.h"
#include "core/xmalloc.h"
#include "repl/tls.h"

#define ERRF(...) ((err && errlen) ? (void)snprintf(err, errlen, __VA_ARGS__) : (void)0)

/* ---- Deadlines and waiting ----------------------------------------------- */

int64_t repl_deadline(int timeout_ms)
{
    return timeout_ms < 0 ? -1 : time_mono_us() + (int64_t)timeout_ms * 1000;
}

int repl_deadline_left_ms(int64_t deadline)
{
    int64_t left;

    if (deadline < 0)
        return -1;
    left = deadline - time_mono_us();
    if (left <= 0)
        return 0;
    return left / 1000 > INT32_MAX ? INT32_MAX : (int)((left + 999) / 1000);
}

int repl_conn_poll(int fd, short events, int64_t deadline)
{
    struct pollfd p = { .fd = fd, .events = events };
    int rc;

    for (;;) {
        rc = poll(&p, 1, repl_deadline_left_ms(deadline));
        if (rc > 0)
            return 0;           /* ready, or HUP/ERR: the next I/O call reports it */
        if (rc == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

/* ---- Peer description ----------------------------------------------------- */

static void format_addr(const struct sockaddr *sa, socklen_t len, char *out, size_t outlen)
{
    char host[NI_MAXHOST], port[NI_MAXSERV];

    if (getnameinfo(sa, len, host, sizeof host, port, sizeof port,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        snprintf(out, outlen, "unknown");
        return;
    }
    if (sa->sa_family == AF_INET6)
        snprintf(out, outlen, "[%s]:%s", host, port);
    else
        snprintf(out, outlen, "%s:%s", host, port);
}

static void update_desc(struct repl_conn *c)
{
    if (c->peer_name[0])
        snprintf(c->desc, sizeof c->desc, "%s (%s)", c->peer_addr, c->peer_name);
    else
        snprintf(c->desc, sizeof c->desc, "%s", c->peer_addr);
}

struct repl_conn *repl_conn_alloc(const struct repl_conn_ops *ops, int fd, const char *peer_desc)
{
    struct repl_conn *c = xcalloc(1, sizeof *c);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int fl = fcntl(fd, F_GETFL);

    if (fl >= 0 && !(fl & O_NONBLOCK))
        (void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    c->ops = ops;
    c->fd = fd;
    if (peer_desc)
        snprintf(c->peer_addr, sizeof c->peer_addr, "%s", peer_desc);
    else if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0 &&
             (ss.ss_family == AF_INET || ss.ss_family == AF_INET6))
        format_addr((struct sockaddr *)&ss, len, c->peer_addr, sizeof c->peer_addr);
    else
        snprintf(c->peer_addr, sizeof c->peer_addr, "socketpair");
    update_desc(c);
    return c;
}

void repl_conn_set_peer_name(struct repl_conn *c, const char *name)
{
    snprintf(c->peer_name, sizeof c->peer_name, "%s", name ? name : "");
    update_desc(c);
}

const char *repl_conn_peer_addr(const struct repl_conn *c)
{
    return c->peer_addr;
}

const char *repl_conn_describe(const struct repl_conn *c)
{
    return c->desc;
}

const char *repl_conn_peer_name(const struct repl_conn *c)
{
    return repl_conn_is_tls(c) ? c->peer_name : NULL;
}

bool repl_conn_is_tls(const struct repl_conn *c)
{
    return strcmp(c->ops->name, "tls") == 0;
}

const char *repl_conn_last_error(const struct repl_conn *c)
{
    return c->last_err;
}

/* ---- Generic entry points ------------------------------------------------- */

/* Keeps a reason for a failed call unless the implementation left a better one. */
static void note_error(struct repl_conn *c, int rc)
{
    if (rc < 0 && !c->last_err[0])
        snprintf(c->last_err, sizeof c->last_err, "%s",
                 rc == -ETIMEDOUT ? "timed out" : strerror(-rc));
}

ssize_t repl_conn_read(struct repl_conn *c, void *buf, size_t n, int timeout_ms)
{
    ssize_t r;

    if (n == 0)
        return -EINVAL;
    c->last_err[0] = '\0';
    r = c->ops->read(c, buf, n, timeout_ms);
    note_error(c, (int)(r < 0 ? r : 0));
    return r;
}

int repl_conn_write_all(struct repl_conn *c, const void *buf, size_t n, int timeout_ms)
{
    int rc;

    c->last_err[0] = '\0';
    if (__atomic_load_n(&c->shut, __ATOMIC_ACQUIRE))
        rc = -EPIPE;
    else
        rc = c->ops->write_all(c, buf, n, timeout_ms);
    note_error(c, rc);
    return rc;
}

void repl_conn_shutdown(struct repl_conn *c)
{
    __atomic_store_n(&c->shut, 1, __ATOMIC_RELEASE);
    (void)shutdown(c->fd, SHUT_RDWR);
}

void repl_conn_close(struct repl_conn *c)
{
    if (!c)
        return;
    c->ops->close(c);
    free(c);
}

/* ---- Plain transport ------------------------------------------------------ */

static ssize_t plain_read(struct repl_conn *c, void *buf, size_t n, int timeout_ms)
{
    int64_t deadline = repl_deadline(timeout_ms);
    ssize_t r;
    int rc;

    for (;;) {
        r = read(c->fd, buf, n);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        if ((rc = repl_conn_poll(c->fd, POLLIN, deadline)) < 0)
            return rc;
    }
}

static int plain_write_all(struct repl_conn *c, const void *buf, size_t n, int timeout_ms)
{
    int64_t deadline = repl_deadline(timeout_ms);
    const char *p = buf;
    ssize_t w;
    int rc;

    while (n > 0) {
        w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == ENOTSOCK)
            w = write(c->fd, p, n);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return errno == EPIPE && !__atomic_load_n(&c->shut, __ATOMIC_ACQUIRE) ? -ECONNRESET
                                                                                   : -errno;
        if ((rc = repl_conn_poll(c->fd, POLLOUT, deadline)) < 0)
            return rc;
    }
    return 0;
}

static void plain_close(struct repl_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

static const struct repl_conn_ops plain_ops = {
    .name = "plain",
    .read = plain_read,
    .write_all = plain_write_all,
    .close = plain_close,
};

struct repl_conn *repl_conn_plain(int fd, const char *peer_desc)
{
    return repl_conn_alloc(&plain_ops, fd, peer_desc);
}

/* ---- Frames over a conn ----------------------------------------------------- */

int repl_conn_read_frame(struct repl_conn *c, struct repl_decoder *d, struct repl_frame *out,
                         int timeout_ms)
{
    int64_t deadline = repl_deadline(timeout_ms);
    size_t want;
    ssize_t r;
    void *dst;
    int rc;

    for (;;) {
        want = repl_decoder_want(d, &dst);
        if (want == 0)
            return d->err;
        r = repl_conn_read(c, dst, want, repl_deadline_left_ms(deadline));
        if (r < 0)
            return (int)r;
        if (r == 0) {
            if (d->have == 0)
                return 0;
            snprintf(c->last_err, sizeof c->last_err, "connection closed inside a frame");
            return -ECONNRESET;
        }
        rc = repl_decoder_wrote(d, (size_t)r, out);
        if (rc < 0)
            snprintf(c->last_err, sizeof c->last_err, "%s", repl_frame_strerror(rc));
        if (rc != 0)
            return rc;
    }
}

int repl_conn_write_buf(struct repl_conn *c, const struct buf *b, int timeout_ms)
{
    return b->len ? repl_conn_write_all(c, b->data, b->len, timeout_ms) : 0;
}

/* ---- Addresses ------------------------------------------------------------ */

/* Splits "host:port" / "[v6]:port" / ":port" / "*:port"; host "" = any. */
static int split_hostport(const char *s, char *host, size_t hostlen, char *port, size_t portlen)
{
    const char *colon, *h = s;
    size_t hl;
    char *end;
    long pn;

    if (!s || !(colon = strrchr(s, ':')))
        return -EINVAL;
    hl = (size_t)(colon - s);
    if (hl >= 2 && s[0] == '[' && s[hl - 1] == ']') {
        h = s + 1;
        hl -= 2;
    } else if (memchr(s, ':', hl)) {
        return -EINVAL;     /* bare IPv6 without brackets */
    }
    if (hl == 1 && h[0] == '*')
        hl = 0;
    if (hl >= hostlen || strlen(colon + 1) >= portlen || colon[1] == '\0')
        return -EINVAL;
    errno = 0;
    pn = strtol(colon + 1, &end, 10);
    if (errno || *end || pn < 0 || pn > 65535)
        return -EINVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';
    snprintf(port, portlen, "%ld", pn);
    return 0;
}

/* ---- Connecting ------------------------------------------------------------ */

static void tune_socket(int fd)
{
    int one = 1;

    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
}

/* One connect attempt within deadline: the fd, or negative. */
static int connect_one(const struct addrinfo *ai, int64_t deadline)
{
    int fd, rc = 0, soerr = 0;
    socklen_t sl = sizeof soerr;

    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        return -errno;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        if (errno != EINPROGRESS) {
            rc = -errno;
            goto out;
        }
        if ((rc = repl_conn_poll(fd, POLLOUT, deadline)) < 0)
            goto out;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
            rc = -errno;
        else if (soerr)
            rc = -soerr;
    }
out:
    if (rc < 0) {
        close(fd);
        return rc;
    }
    tune_socket(fd);
    return fd;
}

int repl_conn_connect(const char *hostport, int timeout_ms, struct repl_tls *tls,
                      struct repl_conn **out, char *err, size_t errlen)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct addrinfo *res = NULL, *ai;
    int64_t deadline = repl_deadline(timeout_ms);
    char host[256], port[16], desc[64];
    int fd = -ECONNREFUSED, gai, rc;

    *out = NULL;
    if (split_hostport(hostport, host, sizeof host, port, sizeof port) < 0 || !host[0]) {
        ERRF("%s: bad address (want host:port)", hostport ? hostport : "(null)");
        return -EINVAL;
    }
    gai = getaddrinfo(host, port, &hints, &res);
    if (gai != 0) {
        ERRF("%s: cannot resolve: %s", hostport, gai_strerror(gai));
        return -EHOSTUNREACH;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        fd = connect_one(ai, deadline);
        if (fd >= 0) {
            format_addr(ai->ai_addr, ai->ai_addrlen, desc, sizeof desc);
            break;
        }
        if (fd == -ETIMEDOUT)
            break;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        ERRF("%s: connect failed: %s", hostport, strerror(-fd));
        return fd;
    }
    if (!tls) {
        *out = repl_conn_plain(fd, desc);
        return 0;
    }
    rc = repl_conn_tls_client(fd, tls, host, desc, repl_deadline_left_ms(deadline), out, err,
                              errlen);
    return rc;
}

/* ---- Listening ------------------------------------------------------------- */

struct repl_listener {
    int fd;
    int port;
    struct repl_tls *tls;   /* borrowed */
};

int repl_listener_open(const char *addr, struct repl_tls *tls, struct repl_listener **out,
                       char *err, size_t errlen)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE };
    struct addrinfo *res = NULL, *ai;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char host[256], port[16];
    int fd = -1, one = 1, rc = -EADDRNOTAVAIL, gai;

    *out = NULL;
    if (split_hostport(addr, host, sizeof host, port, sizeof port) < 0) {
        ERRF("%s: bad listen address (want host:port)", addr ? addr : "(null)");
        return -EINVAL;
    }
    gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
    if (gai != 0) {
        ERRF("%s: cannot resolve: %s", addr, gai_strerror(gai));
        return -EADDRNOTAVAIL;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            rc = -errno;
            continue;
        }
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 16) == 0)
            break;
        rc = -errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        ERRF("%s: cannot listen: %s", addr, strerror(-rc));
        return rc;
    }
    *out = xcalloc(1, sizeof **out);
    (*out)->fd = fd;
    (*out)->tls = tls;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        (*out)->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                      : ((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

int repl_listener_accept(struct repl_listener *l, int timeout_ms, struct repl_conn **out,
                         char *err, size_t errlen)
{
    int64_t deadline = repl_deadline(timeout_ms);
    struct sockaddr_storage ss;
    socklen_t sl;
    char desc[64];
    int fd, rc, hs_ms;

    *out = NULL;
    for (;;) {
        sl = sizeof ss;
        fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0)
            break;
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            rc = -errno;
            ERRF("accept failed: %s", strerror(errno));
            return rc;
        }
        if ((rc = repl_conn_poll(l->fd, POLLIN, deadline)) < 0)
            return rc;
    }
    tune_socket(fd);
    format_addr((struct sockaddr *)&ss, sl, desc, sizeof desc);
    if (!l->tls) {
        *out = repl_conn_plain(fd, desc);
        return 0;
    }
    hs_ms = timeout_ms < 0 ? 10000 : timeout_ms < 1000 ? 1000 : timeout_ms;
    rc = repl_conn_tls_server(fd, l->tls, desc, hs_ms, out, err, errlen);
    return rc < 0 ? -ECONNABORTED : 0;
}

int repl_listener_port(const struct repl_listener *l)
{
    return l->port;
}

int repl_listener_fd(const struct repl_listener *l)
{
    return l->fd;
}

void repl_listener_close(struct repl_listener *l)
{
    if (!l)
        return;
    close(l->fd);
    free(l);
}
