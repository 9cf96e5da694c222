/*
 * http — the small HTTP/1.1 client refugectl speaks to the admin API, the
 * token endpoint and the front door with.
 *
 * Why not libcurl: refugectl talks to a handful of URLs on loopback or a
 * private network, one request per connection, and needs hard deadlines that
 * a failover can rely on (a fenced node that does not answer must cost at
 * most its timeout, never a TCP retransmission cycle). A blocking client over
 * a non-blocking socket with poll() and one deadline per request is ~300
 * lines and has no dependency. Plain http:// only: an https:// admin URL is
 * refused with a clear message (put the admin API on a private interface, or
 * use a local TLS-terminating proxy).
 *
 * Limits: response head 16 KiB, response body CTL_HTTP_MAX_BODY; both Content-
 * Length and chunked bodies are read, and bodies delimited by close.
 * Thread-safe: no shared state (the drill's load threads call it concurrently).
 */
#ifndef REFUGE_TOOLS_REFUGECTL_HTTP_H
#define REFUGE_TOOLS_REFUGECTL_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define CTL_HTTP_MAX_HEAD (16 * 1024)
#define CTL_HTTP_MAX_BODY (8 * 1024 * 1024)

struct ctl_url {
    char host[256];    /* without brackets for IPv6 */
    char port[8];
    char prefix[512];  /* path part of the base URL without trailing '/', maybe "" */
};

/* Parses "http://host[:port][/prefix]". 0, or -EINVAL / -EPROTONOSUPPORT
 * (https) with err filled. */
int ctl_url_parse(const char *s, struct ctl_url *u, char *err, size_t errlen);

struct ctl_http_req {
    const char *method;         /* "GET", "POST" */
    const char *path;           /* appended to the URL's prefix: "/admin/v1/node" */
    const char *content_type;   /* NULL: no body header */
    const char *authorization;  /* full header value ("Bearer ..."), or NULL */
    const void *body;
    size_t body_len;
    int timeout_ms;             /* the whole exchange: connect, send, receive */
};

struct ctl_http_resp {
    int status;                 /* 0 until a status line was read */
    struct buf body;            /* owned; release with ctl_http_resp_free */
};

/* One exchange on a fresh connection (Connection: close). Returns 0 when a
 * complete response was read (any status), else a negative errno:
 * -ECONNREFUSED, -ETIMEDOUT, -EPROTO (malformed response), -E2BIG (over a
 * limit), -ECONNRESET, or another connect/resolve error. resp is initialised
 * by the call and must be freed whatever it returns. */
int ctl_http_do(const struct ctl_url *u, const struct ctl_http_req *rq, struct ctl_http_resp *resp);
void ctl_http_resp_free(struct ctl_http_resp *resp);

/* application/x-www-form-urlencoded escaping of s, appended to b. */
int ctl_form_escape(struct buf *b, const char *s);

/* A short text for a negative code returned by ctl_http_do ("connection refused"). */
const char *ctl_http_strerror(int rc);

#endif
