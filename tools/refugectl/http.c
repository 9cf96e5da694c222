/*
 * http — a deadline-bound HTTP/1.1 client over plain sockets (see http.h for
 * why it exists and its limits).
 *
 * One exchange: resolve, non-blocking connect, send the request, read the
 * head (status line + headers, at most CTL_HTTP_MAX_HEAD bytes), then the
 * body as the head says (Content-Length, chunked, or until close). Every
 * wait is a poll() against the one deadline of the request.
 */
#include "http.h"

#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/timeutil.h"

#ifndef REFUGE_VERSION
#define REFUGE_VERSION "unknown"
#endif

/* ------------------------------------------------------------------ URLs */

int ctl_url_parse(const char *s, struct ctl_url *u, char *err, size_t errlen)
{
    const char *p, *host_end, *port = NULL, *path;
    size_t hlen, plen;

    memset(u, 0, sizeof *u);
    if (strncasecmp(s, "https://", 8) == 0) {
        snprintf(err, errlen,
                 "'%s': https admin URLs are not supported by refugectl; expose the admin API as "
                 "plain http on loopback or a private interface (or through a local TLS proxy)", s);
        return -EPROTONOSUPPORT;
    }
    if (strncasecmp(s, "http://", 7) != 0) {
        snprintf(err, errlen, "'%s': expected an http:// URL", s);
        return -EINVAL;
    }
    p = s + 7;
    path = p + strcspn(p, "/?#");
    if (strpbrk(path, "?#")) {
        snprintf(err, errlen, "'%s': a base URL takes no query or fragment", s);
        return -EINVAL;
    }
    if (*p == '[') {
        host_end = memchr(p, ']', (size_t)(path - p));
        if (!host_end) {
            snprintf(err, errlen, "'%s': unclosed '[' in host", s);
            return -EINVAL;
        }
        hlen = (size_t)(host_end - p - 1);
        if (host_end + 1 < path && host_end[1] == ':')
            port = host_end + 2;
        else if (host_end + 1 != path)
            goto bad_host;
        p++;
    } else {
        host_end = memchr(p, ':', (size_t)(path - p));
        if (host_end)
            port = host_end + 1;
        else
            host_end = path;
        hlen = (size_t)(host_end - p);
    }
    if (hlen == 0 || hlen >= sizeof u->host)
        goto bad_host;
    memcpy(u->host, p, hlen);
    u->host[hlen] = '\0';
    if (port) {
        plen = (size_t)(path - port);
        if (plen == 0 || plen > 5 || strspn(port, "0123456789") < plen)
            goto bad_port;
        memcpy(u->port, port, plen);
        u->port[plen] = '\0';
        if (atoi(u->port) < 1 || atoi(u->port) > 65535)
            goto bad_port;
    } else {
        strcpy(u->port, "80");
    }
    plen = strlen(path);
    while (plen > 0 && path[plen - 1] == '/')
        plen--;
    if (plen >= sizeof u->prefix) {
        snprintf(err, errlen, "'%s': path too long", s);
        return -EINVAL;
    }
    memcpy(u->prefix, path, plen);
    u->prefix[plen] = '\0';
    return 0;
bad_host:
    snprintf(err, errlen, "'%s': bad host", s);
    return -EINVAL;
bad_port:
    snprintf(err, errlen, "'%s': bad port", s);
    return -EINVAL;
}

/* ------------------------------------------------------------ transport */

static int remaining_ms(int64_t deadline_us)
{
    int64_t left = deadline_us - time_mono_us();
    if (left <= 0)
        return 0;
    return (int)((left + 999) / 1000);
}

/* Waits for `events` on fd until the deadline. 0, -ETIMEDOUT or -errno. */
static int wait_fd(int fd, short events, int64_t deadline_us)
{
    struct pollfd pfd = { .fd = fd, .events = events };

    for (;;) {
        int ms = remaining_ms(deadline_us);
        if (ms == 0)
            return -ETIMEDOUT;
        int n = poll(&pfd, 1, ms);
        if (n > 0)
            return 0;
        if (n == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

static int connect_one(const struct addrinfo *ai, int64_t deadline_us, int *out)
{
    int fd, rc = 0, soerr = 0, one = 1;
    socklen_t slen = sizeof soerr;

    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        return -errno;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        if (errno != EINPROGRESS) {
            rc = -errno;
            goto out;
        }
        if ((rc = wait_fd(fd, POLLOUT, deadline_us)) < 0)
            goto out;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &slen) < 0) {
            rc = -errno;
            goto out;
        }
        if (soerr) {
            rc = -soerr;
            goto out;
        }
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    *out = fd;
    fd = -1;
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

static int dial(const struct ctl_url *u, int64_t deadline_us, int *fd)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
    struct addrinfo *res = NULL, *ai;
    int rc, gai;

    gai = getaddrinfo(u->host, u->port, &hints, &res);
    if (gai != 0)
        return gai == EAI_SYSTEM ? -errno : -EHOSTUNREACH;
    rc = -EHOSTUNREACH;
    for (ai = res; ai; ai = ai->ai_next) {
        rc = connect_one(ai, deadline_us, fd);
        if (rc == 0 || rc == -ETIMEDOUT)
            break;
    }
    freeaddrinfo(res);
    return rc;
}

static int send_all(int fd, const char *p, size_t n, int64_t deadline_us)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = wait_fd(fd, POLLOUT, deadline_us);
            if (rc < 0)
                return rc;
            continue;
        }
        return w < 0 ? -errno : -EPIPE;
    }
    return 0;
}

/* Reads what is available into b (at most `room` bytes). Returns bytes read,
 * 0 at EOF, or a negative code. */
static ssize_t recv_some(int fd, struct buf *b, size_t room, int64_t deadline_us)
{
    char tmp[16384];
    size_t want = room < sizeof tmp ? room : sizeof tmp;

    if (want == 0)
        return -E2BIG;
    for (;;) {
        ssize_t r = recv(fd, tmp, want, 0);
        if (r > 0)
            return buf_append(b, tmp, (size_t)r) < 0 ? -E2BIG : r;
        if (r == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int rc = wait_fd(fd, POLLIN, deadline_us);
            if (rc < 0)
                return rc;
            continue;
        }
        return -errno;
    }
}

/* ------------------------------------------------------------- parsing */

struct head {
    int status;
    bool chunked;
    bool has_length;
    size_t length;
};

static const char *find_crlfcrlf(const char *p, size_t n)
{
    for (size_t i = 0; i + 3 < n; i++)
        if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n')
            return p + i;
    return NULL;
}

static int parse_head(const char *p, size_t n, struct head *h)
{
    const char *end = p + n, *line, *eol, *colon;
    struct str name, value;
    int64_t v;

    memset(h, 0, sizeof *h);
    if (n < 12 || memcmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ')
        return -EPROTO;
    if (!isdigit((unsigned char)p[9]) || !isdigit((unsigned char)p[10]) || !isdigit((unsigned char)p[11]))
        return -EPROTO;
    h->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    if (h->status < 100)
        return -EPROTO;
    line = memchr(p, '\n', n);
    while (line && ++line < end) {
        eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol)
            eol = end;
        colon = memchr(line, ':', (size_t)(eol - line));
        if (colon) {
            name = str_trim((struct str){ line, (size_t)(colon - line) });
            value = str_trim((struct str){ colon + 1, (size_t)(eol - colon - 1) });
            if (str_case_eq_cstr(name, "content-length")) {
                if (str_to_i64(value, 0, CTL_HTTP_MAX_BODY, &v) < 0)
                    return str_to_i64(value, 0, INT64_MAX, &v) == 0 ? -E2BIG : -EPROTO;
                h->has_length = true;
                h->length = (size_t)v;
            } else if (str_case_eq_cstr(name, "transfer-encoding")) {
                h->chunked = value.len >= 7 && strncasecmp(value.p + value.len - 7, "chunked", 7) == 0;
            }
        }
        line = eol;
    }
    return 0;
}

/* Decodes a chunked body held in raw[0..n). Sets *complete when the last
 * chunk (and the trailer's empty line) is in; out receives the payload.
 * 0, -EPROTO or -E2BIG. */
static int dechunk(const char *raw, size_t n, struct buf *out, bool *complete)
{
    size_t i = 0;

    *complete = false;
    buf_reset(out);
    for (;;) {
        size_t size = 0, digits = 0;
        const char *eol = memchr(raw + i, '\n', n - i);
        if (!eol)
            return 0;
        for (; i < (size_t)(eol - raw); i++) {
            int c = (unsigned char)raw[i], d;
            if (c >= '0' && c <= '9')
                d = c - '0';
            else if (c >= 'a' && c <= 'f')
                d = c - 'a' + 10;
            else if (c >= 'A' && c <= 'F')
                d = c - 'A' + 10;
            else
                break;              /* ';' extensions or '\r' */
            if (size > CTL_HTTP_MAX_BODY)
                return -E2BIG;
            size = size * 16 + (size_t)d;
            digits++;
        }
        if (digits == 0)
            return -EPROTO;
        i = (size_t)(eol - raw) + 1;
        if (size == 0) {
            /* trailer: lines until an empty one */
            for (;;) {
                eol = memchr(raw + i, '\n', n - i);
                if (!eol)
                    return 0;
                size_t len = (size_t)(eol - raw) - i;
                i = (size_t)(eol - raw) + 1;
                if (len == 0 || (len == 1 && raw[i - 2] == '\r')) {
                    *complete = true;
                    return 0;
                }
            }
        }
        if (n - i < size + 2)
            return 0;
        if (buf_append(out, raw + i, size) < 0)
            return -E2BIG;
        i += size;
        if (raw[i] == '\r')
            i++;
        if (i >= n || raw[i] != '\n')
            return -EPROTO;
        i++;
    }
}

/* ------------------------------------------------------------- exchange */

static int build_request(const struct ctl_url *u, const struct ctl_http_req *rq, struct buf *b)
{
    bool v6 = strchr(u->host, ':') != NULL;

    buf_printf(b, "%s %s%s HTTP/1.1\r\nHost: %s%s%s:%s\r\nUser-Agent: refugectl/%s\r\n"
                  "Accept: application/json\r\nConnection: close\r\n",
               rq->method, u->prefix, rq->path, v6 ? "[" : "", u->host, v6 ? "]" : "", u->port,
               REFUGE_VERSION);
    if (rq->authorization)
        buf_printf(b, "Authorization: %s\r\n", rq->authorization);
    if (rq->content_type)
        buf_printf(b, "Content-Type: %s\r\n", rq->content_type);
    if (rq->body_len || rq->content_type || strcmp(rq->method, "POST") == 0)
        buf_printf(b, "Content-Length: %zu\r\n", rq->body_len);
    if (buf_puts(b, "\r\n") < 0)
        return -E2BIG;
    if (rq->body_len && buf_append(b, rq->body, rq->body_len) < 0)
        return -E2BIG;
    return 0;
}

int ctl_http_do(const struct ctl_url *u, const struct ctl_http_req *rq, struct ctl_http_resp *resp)
{
    int64_t deadline = time_mono_us() + (int64_t)(rq->timeout_ms > 0 ? rq->timeout_ms : 5000) * 1000;
    struct buf req, raw;
    struct head h;
    const char *sep = NULL;
    size_t head_len = 0;
    bool complete = false;
    int fd = -1, rc;
    ssize_t r;

    resp->status = 0;
    buf_init(&resp->body, CTL_HTTP_MAX_BODY);
    buf_init(&req, CTL_HTTP_MAX_BODY + 8192);
    buf_init(&raw, CTL_HTTP_MAX_HEAD + CTL_HTTP_MAX_BODY + 65536);
    if ((rc = build_request(u, rq, &req)) < 0)
        goto out;
    if ((rc = dial(u, deadline, &fd)) < 0)
        goto out;
    if ((rc = send_all(fd, req.data, req.len, deadline)) < 0)
        goto out;

    /* head */
    while (!sep) {
        r = recv_some(fd, &raw, CTL_HTTP_MAX_HEAD + 4 - raw.len, deadline);
        if (r < 0) {
            rc = (int)r;
            goto out;
        }
        if (r == 0) {
            rc = raw.len ? -EPROTO : -ECONNRESET;
            goto out;
        }
        sep = find_crlfcrlf(raw.data, raw.len);
        if (!sep && raw.len >= CTL_HTTP_MAX_HEAD) {
            rc = -E2BIG;
            goto out;
        }
    }
    head_len = (size_t)(sep - raw.data) + 4;
    if ((rc = parse_head(raw.data, head_len - 2, &h)) < 0)
        goto out;
    resp->status = h.status;
    if (strcmp(rq->method, "HEAD") == 0 || h.status == 204 || h.status == 304 || h.status < 200) {
        rc = 0;
        goto out;
    }

    /* body: keep reading until the framing says it is complete */
    for (;;) {
        const char *body = raw.data + head_len;
        size_t have = raw.len - head_len;
        if (h.chunked) {
            if ((rc = dechunk(body, have, &resp->body, &complete)) < 0)
                goto out;
            if (complete)
                break;
        } else if (h.has_length && have >= h.length) {
            buf_reset(&resp->body);
            rc = buf_append(&resp->body, body, h.length) < 0 ? -E2BIG : 0;
            goto out;
        }
        r = recv_some(fd, &raw, raw.limit - raw.len, deadline);
        if (r < 0) {
            rc = (int)r;
            goto out;
        }
        if (r == 0) {
            if (h.chunked || h.has_length) {
                rc = -EPROTO;       /* closed before the framing was satisfied */
                goto out;
            }
            buf_reset(&resp->body);
            rc = buf_append(&resp->body, raw.data + head_len, raw.len - head_len) < 0 ? -E2BIG : 0;
            goto out;
        }
    }
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    buf_free(&req);
    buf_free(&raw);
    if (rc < 0)
        resp->status = rc == -EPROTO || rc == -E2BIG ? resp->status : 0;
    return rc;
}

void ctl_http_resp_free(struct ctl_http_resp *resp)
{
    buf_free(&resp->body);
}

int ctl_form_escape(struct buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";

    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        int rc;
        if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~')
            rc = buf_putc(b, (char)c);
        else if (c == ' ')
            rc = buf_putc(b, '+');
        else
            rc = buf_printf(b, "%%%c%c", hex[c >> 4], hex[c & 15]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

const char *ctl_http_strerror(int rc)
{
    switch (rc) {
    case -ECONNREFUSED:
        return "connection refused";
    case -ETIMEDOUT:
        return "timed out";
    case -EPROTO:
        return "malformed HTTP response";
    case -E2BIG:
        return "response over the size limit";
    case -ECONNRESET:
        return "connection closed without a response";
    case -EHOSTUNREACH:
        return "host unreachable or unknown";
    default:
        return strerror(rc < 0 ? -rc : rc);
    }
}
