/*
 * http — the HTTP server: libmicrohttpd with its internal thread pool and
 * epoll, a router on method + path that understands the tenant prefix
 * /t/{tenant}, request limits, body/query/cookie parsing, a per-request
 * arena, request ids, access logging, and suspension of connections whose
 * handler waits for the store (DESIGN.md §6).
 *
 * Life of a request:
 *   1. libmicrohttpd calls us with headers; we check URL length and the
 *      Content-Length against max_body_bytes (413 at once when too big),
 *      find the route (404/405 otherwise) and allocate a struct http_request.
 *   2. Body bytes are collected into req->body up to the limit.
 *   3. The handler runs on the worker thread. It fills the response with the
 *      http_respond_* functions and returns HTTP_DONE, or hands work to
 *      another thread and returns HTTP_SUSPEND; that thread later fills the
 *      response and calls http_resume(req) exactly once.
 *   4. The response is queued, one access-log line is written, metrics are
 *      updated and the arena is released when libmicrohttpd completes.
 */
#ifndef REFUGE_HTTP_H
#define REFUGE_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/arena.h"
#include "core/buf.h"
#include "core/str.h"

/* ---------------------------------------------------------------- params */

/* A parsed application/x-www-form-urlencoded list (query string or body).
 * Names and values are percent-decoded, NUL-terminated, arena-allocated. */
struct http_param {
    const char *name;
    const char *value;
    size_t value_len;      /* values may contain NUL after decoding %00 */
};
struct http_params {
    struct http_param *items;
    size_t n;
};

#define HTTP_MAX_PARAMS 64

/* Parses `p[0..n)`. 0, -EINVAL (bad percent escape), -E2BIG (> max_params). */
int http_urlencoded_parse(const char *p, size_t n, struct arena *a, size_t max_params,
                          struct http_params *out);
const char *http_params_get(const struct http_params *ps, const char *name);
size_t http_params_count(const struct http_params *ps, const char *name);

/* Parses a Cookie header ("a=b; c=d"). Cookie values are not decoded. */
int http_cookie_parse(const char *p, size_t n, struct arena *a, size_t max_cookies,
                      struct http_params *out);

/* --------------------------------------------------------------- request */

enum http_result { HTTP_DONE = 0, HTTP_SUSPEND = 1 };

struct http_request;
typedef enum http_result (*http_handler_fn)(struct http_request *req);

/* Route flags */
#define HTTP_ROUTE_TENANT 0x1   /* also served under /t/{tenant}/... */

struct http_route {
    const char *method;      /* "GET", "POST", ...; "*" for any */
    const char *pattern;     /* "/admin/v1/tenants/{name}": {x} matches one segment */
    http_handler_fn fn;
    unsigned flags;
    const char *name;        /* metric label: "token", "tenants" */
    void *data;              /* handed to the handler as req->route_data */
};

#define HTTP_MAX_PATH_PARAMS 4

struct http_request {
    struct arena arena;          /* everything below lives here */
    const char *method;
    const char *url;             /* path as received, without query */
    const char *path;            /* path after a /t/{tenant} prefix */
    const char *tenant;          /* "default" at the root */
    bool tenant_explicit;        /* came in through /t/{tenant} */
    const char *route;           /* route name, "-" when none matched */
    void *route_data;
    const char *path_param_names[HTTP_MAX_PATH_PARAMS];
    const char *path_params[HTTP_MAX_PATH_PARAMS];
    size_t npath_params;
    struct http_params query;
    struct str body;             /* raw body bytes (NUL-terminated copy) */
    const char *content_type;    /* media type only, lowercased, without parameters */
    const char *request_id;
    const char *remote_addr;     /* the client: the TCP peer, or X-Forwarded-For's entry when the
                                    peer is a trusted proxy (http_config.trusted_proxies) */
    const char *peer_addr;       /* the TCP peer, always */
    bool tls;
    int64_t start_us;            /* monotonic */
    void *user;                  /* free for the handler (e.g. the authenticated principal) */

    /* response, filled by http_respond_* */
    int status;
    struct buf resp_body;
    const char *resp_type;

    struct http_conn_priv *priv; /* owned by the HTTP layer */
};

const char *http_header(struct http_request *req, const char *name);
const char *http_query(struct http_request *req, const char *name);
const char *http_path_param(struct http_request *req, const char *name);
const char *http_cookie(struct http_request *req, const char *name);
/* Parses the form body (application/x-www-form-urlencoded) once and caches it.
 * Returns NULL after answering 400 when the body is malformed or the content
 * type is wrong. */
const struct http_params *http_form(struct http_request *req);
/* Parses the JSON body with the server's depth limit. Returns a new reference,
 * or NULL after answering 400 ("invalid_request") itself. */
json_t *http_json_body(struct http_request *req);

/* -------------------------------------------------------------- response */

void http_add_header(struct http_request *req, const char *name, const char *value);
/* attrs e.g. "Path=/; HttpOnly; SameSite=Lax" ("Secure" is added under TLS). */
void http_set_cookie(struct http_request *req, const char *name, const char *value,
                     const char *attrs);
void http_respond(struct http_request *req, int status, const char *content_type,
                  const void *body, size_t len);
/* Steals the reference to j. */
void http_respond_json(struct http_request *req, int status, json_t *j);
/* {"error": code, "error_description": desc}; desc may be NULL. */
void http_respond_error(struct http_request *req, int status, const char *code,
                        const char *desc);
/* Completes a request whose handler returned HTTP_SUSPEND. Thread-safe; call once. */
void http_resume(struct http_request *req);

/* ---------------------------------------------------------------- server */

struct http_config {
    const char *listen;          /* "127.0.0.1:8080", "[::1]:8080", "0.0.0.0:443" */
    const char *tls_cert;        /* PEM files; both or neither */
    const char *tls_key;
    int threads;                 /* worker threads in libmicrohttpd's pool */
    size_t max_body_bytes;
    size_t max_header_bytes;     /* all request headers together: 431 beyond */
    size_t max_url_bytes;        /* 414 beyond */
    int max_json_depth;          /* 400 beyond */
    int connection_timeout_s;
    /* Comma-separated IP addresses of reverse proxies (the front door) whose
     * X-Forwarded-For is believed: for their requests remote_addr is the
     * rightmost X-Forwarded-For entry that is not itself a trusted proxy.
     * NULL: nobody is trusted and remote_addr is always the TCP peer. */
    const char *trusted_proxies;
};

/* Validates a trusted_proxies list: 0, or -EINVAL naming the bad entry in msg. */
int http_trusted_proxies_check(const char *list, char *msg, size_t msglen);

struct http_server;

/* Starts listening. Routes are copied. Returns NULL with err filled. */
struct http_server *http_server_start(const struct http_config *cfg, const struct http_route *routes,
                                      size_t nroutes, char *err, size_t errlen);
int http_server_port(struct http_server *s);       /* the bound port (for listen port 0) */
/* Stops accepting new connections; in-flight requests continue. */
void http_server_quiesce(struct http_server *s);
/* Waits up to timeout_ms for in-flight requests, then stops and frees. */
void http_server_stop(struct http_server *s, int timeout_ms);
int64_t http_server_inflight(struct http_server *s);

/* True if `s` is a valid tenant name: lowercase DNS label, 1-63 chars. */
bool http_tenant_name_valid(const char *s, size_t n);

#endif
