/*
 * server — Refuge's HTTP server on libmicrohttpd (MHD): daemon set-up, the
 * router, request limits, the request/response API handlers use, suspension
 * of requests that wait for another thread, access logging, metrics and
 * graceful shutdown. The contract is http/http.h; the parsers live in parse.c.
 *
 * How one request travels through MHD's callbacks (all on one MHD worker
 * thread unless noted):
 *
 *   on_uri        MHD has read the request line. We allocate the request
 *                 (struct http_conn_priv, which embeds struct http_request and
 *                 its arena) and keep the raw URI: MHD hands the access
 *                 handler a decoded path without the query, and we want to
 *                 route on the raw path and parse the query ourselves.
 *   on_access #1  Headers are in. begin(): count the request in flight,
 *                 snapshot the headers into the arena (so handlers on other
 *                 threads never call into MHD), apply the limits (414, 431,
 *                 413 on Content-Length), route (404/405), parse the query
 *                 (400). Any failure queues a JSON error at once.
 *   on_access #2..n  Body bytes, appended to a struct buf bounded by
 *                 max_body_bytes. A chunked body that grows past it is
 *                 discarded (MHD cannot answer in the middle of an upload)
 *                 and answered 413 at the end; a client that keeps sending
 *                 far beyond the limit gets its connection closed.
 *   on_access last  The handler runs. HTTP_DONE queues req's response;
 *                 HTTP_SUSPEND suspends the connection unless http_resume()
 *                 already happened (see "Suspension" below).
 *   on_access again  (after http_resume -> MHD_resume_connection) queues the
 *                 response the other thread prepared.
 *   on_completed  One access-log line, metrics, in-flight bookkeeping, and
 *                 the request is freed (or later, by http_resume, if the
 *                 other thread still holds it).
 *
 * Suspension. Three flags under the request's mutex make the order of
 * events irrelevant: `suspend_returned` (the handler returned HTTP_SUSPEND),
 * `resumed` (http_resume was called) and `mhd_resume_called` (someone called
 * MHD_resume_connection). MHD_suspend_connection is only called when the
 * request was not resumed yet, MHD_resume_connection only on a connection we
 * suspended, exactly once. The request is freed when MHD has completed it
 * and no other thread can still touch it (!suspend_returned || resumed).
 *
 * Shutdown. http_server_quiesce closes the listening socket. http_server_stop
 * waits for the in-flight count to reach zero; when the timeout expires it
 * marks every remaining request abandoned: suspended ones are resumed and
 * answered 503 without reading what the other thread may still be writing,
 * and a handler that returns HTTP_SUSPEND from then on is answered 503 at
 * once. MHD_stop_daemon must never see a suspended connection (it panics).
 *
 * Limits and what MHD does itself: the request line and headers must fit in
 * MHD's per-connection memory pool, which we size to max_url_bytes +
 * max_header_bytes + 32 KiB so that our own checks answer JSON 414/431 for
 * anything up to the pool. Beyond the pool MHD answers by itself (libmicro-
 * httpd 0.9.75: 414 for an overlong request line, 431 for overlong headers,
 * with an HTML body) and closes the connection; test_http_server checks that
 * this is a clean status and not a crash.
 */
#include "http/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/json.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/timeutil.h"
#include "core/uuid.h"
#include "core/xmalloc.h"

#define DEFAULT_THREADS 4
#define DEFAULT_MAX_BODY (1024 * 1024)
#define DEFAULT_MAX_HEADER (16 * 1024)
#define DEFAULT_MAX_URL (8 * 1024)
#define DEFAULT_JSON_DEPTH 32
#define DEFAULT_TIMEOUT_S 30
#define POOL_SLACK (32 * 1024)          /* MHD pool beyond URL + headers */
#define RESP_BODY_LIMIT ((size_t)64 << 20)
#define TLS_FILE_LIMIT (1024 * 1024)
#define DISCARD_ALLOWANCE (1024 * 1024) /* body bytes dropped after 413 before closing */
#define MAX_COOKIES 64
#define REQUEST_ID_MAX 128
#define MAX_SEGMENTS 32
#define ERR_BODY_LIMIT 4096
#define ABANDON_GRACE_MS 200L          /* for resumed, abandoned requests to answer 503 */

/* ------------------------------------------------------------------ types */

struct route_seg {
    const char *text;        /* literal bytes, or the parameter name */
    size_t len;
    bool param;
};

struct route {
    struct http_route r;     /* strings owned (xstrdup'd) */
    struct route_seg segs[MAX_SEGMENTS];
    size_t nsegs;
    size_t nliterals;        /* specificity: more literal segments win */
};

struct hdr {
    struct hdr *next;
    const char *name;
    const char *value;
};

enum req_state { ST_NEW, ST_BODY, ST_SUSPENDED, ST_DONE };

struct http_conn_priv {
    struct http_request req;
    struct http_server *srv;
    struct MHD_Connection *conn;
    const char *raw_uri;
    size_t raw_uri_len;
    enum req_state state;
    const struct route *route;

    struct hdr *hdrs, **hdrs_tail;          /* request headers, arena copies */
    struct hdr *resp_hdrs, **resp_hdrs_tail; /* headers added by the handler */
    struct buf body;
    bool body_too_big;
    size_t discarded;
    struct http_params cookies;
    bool cookies_parsed;
    struct http_params form;
    int form_state;                          /* 0 not parsed, 1 ok, -1 failed */

    /* in-flight list of the server, under srv->lock */
    bool counted;
    struct http_conn_priv *prev, *next;

    /* suspension, under lock */
    pthread_mutex_t lock;
    bool suspend_returned, suspended, resumed, mhd_resume_called, abandoned, mhd_done;

    /* outcome, touched only by the MHD side */
    bool queued;
    int final_status;
    size_t final_bytes;
};

struct http_server {
    struct MHD_Daemon *d;
    struct route *routes;
    size_t nroutes;
    size_t max_body, max_header, max_url;
    int max_json_depth;
    bool tls;
    char *cert_pem, *key_pem;
    int port;
    char **trusted;                          /* canonical IP texts; NULL-terminated or NULL */

    pthread_mutex_t lock;
    pthread_cond_t idle;
    struct http_conn_priv *inflight;         /* list head */
    int64_t ninflight;
    atomic_bool quiesced;
    atomic_bool stopping;
    bool starting;
    char start_err[256];
};

/* ---------------------------------------------------------------- metrics */

static struct metric *m_requests;
static struct metric *m_duration;
static atomic_int_fast64_t g_inflight;
static pthread_once_t metrics_once = PTHREAD_ONCE_INIT;

static double inflight_value(void *arg)
{
    (void)arg;
    return (double)atomic_load(&g_inflight);
}

static void metrics_register(void)
{
    static const double bounds[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                     0.1, 0.25, 0.5, 1, 2.5, 5 };

    m_requests = metric_counter("refuge_http_requests_total", "HTTP requests by route and status",
                                "route,status");
    m_duration = metric_histogram("refuge_http_request_duration_seconds",
                                  "HTTP request duration", "route", bounds,
                                  sizeof bounds / sizeof bounds[0]);
    metric_gauge_fn("refuge_http_inflight", "HTTP requests in flight", inflight_value, NULL);
}

/* ------------------------------------------------------------------ utils */

static bool request_id_sane(const char *s)
{
    size_t i;

    if (!s || !*s)
        return false;
    for (i = 0; s[i]; i++) {
        char c = s[i];

        if (i >= REQUEST_ID_MAX)
            return false;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static bool is_json_type(const char *type)
{
    size_t n;

    if (!type)
        return false;
    n = strcspn(type, ";");
    while (n > 0 && (type[n - 1] == ' ' || type[n - 1] == '\t'))
        n--;
    if (n == 16 && strncasecmp(type, "application/json", 16) == 0)
        return true;
    return n > 5 && strncasecmp(type + n - 5, "+json", 5) == 0;
}

static bool has_crlf(const char *s)
{
    return strpbrk(s, "\r\n") != NULL;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes one path segment ('+' stays '+'). 0 or -EINVAL on a bad
 * escape or a decoded NUL. */
static int path_decode(const char *p, size_t n, struct arena *a, const char **out)
{
    char *d = arena_alloc(a, n + 1);
    size_t i, j = 0;

    for (i = 0; i < n; i++) {
        if (p[i] == '%') {
            int hi, lo;

            if (n - i < 3)
                return -EINVAL;
            hi = hexval((unsigned char)p[i + 1]);
            lo = hexval((unsigned char)p[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -EINVAL;
            d[j++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            d[j++] = p[i];
        }
    }
    d[j] = '\0';
    *out = d;
    return 0;
}

/* Splits "/a/b" into segments {"a","b"}; "/" is one empty segment.
 * Returns the count, or -1 when there are more than MAX_SEGMENTS. */
static int split_path(const char *p, size_t n, struct str segs[MAX_SEGMENTS])
{
    size_t i, start = 1;
    int k = 0;

    for (i = 1; i <= n; i++) {
        if (i == n || p[i] == '/') {
            if (k == MAX_SEGMENTS)
                return -1;
            segs[k].p = p + start;
            segs[k].len = i - start;
            k++;
            start = i + 1;
        }
    }
    return k;
}

/* ----------------------------------------------------------------- router */

static int route_compile(struct route *rt, const struct http_route *src, char *err, size_t errlen)
{
    struct str segs[MAX_SEGMENTS];
    size_t i, nparams = 0;
    int n;

    memset(rt, 0, sizeof *rt);
    if (!src->method || !src->pattern || !src->fn || src->pattern[0] != '/') {
        snprintf(err, errlen, "route %s: needs a method, a handler and a pattern starting with '/'",
                 src->pattern ? src->pattern : "(null)");
        return -EINVAL;
    }
    rt->r.method = xstrdup(src->method);
    rt->r.pattern = xstrdup(src->pattern);
    rt->r.name = xstrdup(src->name ? src->name : src->pattern);
    rt->r.fn = src->fn;
    rt->r.flags = src->flags;
    rt->r.data = src->data;

    n = split_path(rt->r.pattern, strlen(rt->r.pattern), segs);
    if (n < 0) {
        snprintf(err, errlen, "route %s: too many segments", src->pattern);
        return -EINVAL;
    }
    for (i = 0; i < (size_t)n; i++) {
        struct route_seg *s = &rt->segs[i];
        const char *brace = memchr(segs[i].p, '{', segs[i].len);

        if (brace) {
            if (brace != segs[i].p || segs[i].len < 3 || segs[i].p[segs[i].len - 1] != '}' ||
                memchr(segs[i].p + 1, '{', segs[i].len - 2) ||
                memchr(segs[i].p + 1, '}', segs[i].len - 2)) {
                snprintf(err, errlen, "route %s: a parameter must be a whole {segment}",
                         src->pattern);
                return -EINVAL;
            }
            if (++nparams > HTTP_MAX_PATH_PARAMS) {
                snprintf(err, errlen, "route %s: more than %d parameters", src->pattern,
                         HTTP_MAX_PATH_PARAMS);
                return -EINVAL;
            }
            s->param = true;
            s->text = segs[i].p + 1;
            s->len = segs[i].len - 2;
        } else {
            s->text = segs[i].p;
            s->len = segs[i].len;
            rt->nliterals++;
        }
    }
    rt->nsegs = (size_t)n;
    return 0;
}

static void route_release(struct route *rt)
{
    free((char *)rt->r.method);
    free((char *)rt->r.pattern);
    free((char *)rt->r.name);
}

static bool route_path_matches(const struct route *rt, const struct str *segs, size_t nsegs)
{
    size_t i;

    if (rt->nsegs != nsegs)
        return false;
    for (i = 0; i < nsegs; i++)
        if (!rt->segs[i].param &&
            (rt->segs[i].len != segs[i].len || memcmp(rt->segs[i].text, segs[i].p, segs[i].len)))
            return false;
        else if (rt->segs[i].param && segs[i].len == 0)
            return false;
    return true;
}

static bool route_method_matches(const struct route *rt, const char *method)
{
    if (strcmp(rt->r.method, "*") == 0 || strcmp(rt->r.method, method) == 0)
        return true;
    return strcmp(method, "HEAD") == 0 && strcmp(rt->r.method, "GET") == 0;
}

/* Finds the most specific route for (method, segments). On a path match
 * with no method match, fills `allow` with the methods that would match. */
static const struct route *route_find(const struct http_server *s, const char *method,
                                      const struct str *segs, size_t nsegs, bool tenant_only,
                                      struct buf *allow)
{
    const struct route *best = NULL;
    size_t i;

    for (i = 0; i < s->nroutes; i++) {
        const struct route *rt = &s->routes[i];

        if (tenant_only && !(rt->r.flags & HTTP_ROUTE_TENANT))
            continue;
        if (!route_path_matches(rt, segs, nsegs))
            continue;
        if (route_method_matches(rt, method)) {
            if (!best || rt->nliterals > best->nliterals)
                best = rt;
            continue;
        }
        /* Collect a distinct Allow entry. */
        {
            const char *have = buf_cstr(allow);
            size_t ml = strlen(rt->r.method);
            const char *q = have;
            bool dup = false;

            while ((q = strstr(q, rt->r.method)) != NULL) {
                if ((q == have || q[-1] == ' ') && (q[ml] == ',' || q[ml] == '\0')) {
                    dup = true;
                    break;
                }
                q += ml;
            }
            if (!dup) {
                if (allow->len)
                    buf_puts(allow, ", ");
                buf_puts(allow, rt->r.method);
            }
        }
    }
    return best;
}

/* ---------------------------------------------------------- request state */

static struct http_conn_priv *priv_new(struct http_server *s, struct MHD_Connection *conn)
{
    struct http_conn_priv *c = xcalloc(1, sizeof *c);

    arena_init(&c->req.arena);
    c->req.priv = c;
    c->req.route = "-";
    c->req.tenant = "default";
    c->req.start_us = time_mono_us();
    c->req.tls = s->tls;
    buf_init(&c->req.resp_body, RESP_BODY_LIMIT);
    buf_init(&c->body, s->max_body);
    c->srv = s;
    c->conn = conn;
    c->hdrs_tail = &c->hdrs;
    c->resp_hdrs_tail = &c->resp_hdrs;
    pthread_mutex_init(&c->lock, NULL);
    return c;
}

static void priv_destroy(struct http_conn_priv *c)
{
    buf_free(&c->body);
    buf_free(&c->req.resp_body);
    arena_free(&c->req.arena);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

/* ------------------------------------------------------ request accessors */

const char *http_header(struct http_request *req, const char *name)
{
    struct hdr *h;

    for (h = req->priv->hdrs; h; h = h->next)
        if (strcasecmp(h->name, name) == 0)
            return h->value;
    return NULL;
}

const char *http_query(struct http_request *req, const char *name)
{
    return http_params_get(&req->query, name);
}

const char *http_path_param(struct http_request *req, const char *name)
{
    size_t i;

    for (i = 0; i < req->npath_params; i++)
        if (strcmp(req->path_param_names[i], name) == 0)
            return req->path_params[i];
    return NULL;
}

const char *http_cookie(struct http_request *req, const char *name)
{
    struct http_conn_priv *c = req->priv;

    if (!c->cookies_parsed) {
        const char *h = http_header(req, "Cookie");

        c->cookies_parsed = true;
        if (h && http_cookie_parse(h, strlen(h), &req->arena, MAX_COOKIES, &c->cookies) < 0) {
            c->cookies.items = NULL;
            c->cookies.n = 0;
        }
    }
    return http_params_get(&c->cookies, name);
}

const struct http_params *http_form(struct http_request *req)
{
    struct http_conn_priv *c = req->priv;
    int rc;

    if (c->form_state == 1)
        return &c->form;
    if (c->form_state == -1)
        return NULL;
    c->form_state = -1;
    if (!req->content_type || strcmp(req->content_type, "application/x-www-form-urlencoded")) {
        http_respond_error(req, 400, "invalid_request",
                           "expected application/x-www-form-urlencoded");
        return NULL;
    }
    rc = http_urlencoded_parse(req->body.p, req->body.len, &req->arena, HTTP_MAX_PARAMS,
                               &c->form);
    if (rc == -E2BIG) {
        http_respond_error(req, 400, "invalid_request", "too many form parameters");
        return NULL;
    }
    if (rc < 0) {
        http_respond_error(req, 400, "invalid_request", "malformed form body");
        return NULL;
    }
    c->form_state = 1;
    return &c->form;
}

json_t *http_json_body(struct http_request *req)
{
    char errmsg[160];
    json_t *j;

    errmsg[0] = '\0';
    j = jsonx_parse(req->body.p ? req->body.p : "", req->body.len, req->priv->srv->max_json_depth,
                    errmsg, sizeof errmsg);
    if (!j)
        http_respond_error(req, 400, "invalid_request", errmsg[0] ? errmsg : "invalid JSON body");
    return j;
}

/* --------------------------------------------------------------- response */

void http_add_header(struct http_request *req, const char *name, const char *value)
{
    struct http_conn_priv *c = req->priv;
    struct hdr *h;

    if (!name || !value || has_crlf(name) || has_crlf(value)) {
        log_warn("http: refusing a response header with CR/LF", "name", name, NULL);
        return;
    }
    h = arena_alloc(&req->arena, sizeof *h);
    h->name = arena_strdup(&req->arena, name);
    h->value = arena_strdup(&req->arena, value);
    *c->resp_hdrs_tail = h;
    c->resp_hdrs_tail = &h->next;
}

void http_set_cookie(struct http_request *req, const char *name, const char *value,
                     const char *attrs)
{
    bool secure = req->tls && !(attrs && strcasestr(attrs, "secure"));
    const char *v;

    v = arena_sprintf(&req->arena, "%s=%s%s%s%s", name, value ? value : "",
                      attrs && *attrs ? "; " : "", attrs ? attrs : "", secure ? "; Secure" : "");
    http_add_header(req, "Set-Cookie", v);
}

void http_respond(struct http_request *req, int status, const char *content_type,
                  const void *body, size_t len)
{
    req->status = status;
    req->resp_type = content_type ? arena_strdup(&req->arena, content_type) : NULL;
    buf_reset(&req->resp_body);
    if (len && buf_append(&req->resp_body, body, len) < 0) {
        static const char tb[] = "{\"error\":\"server_error\","
                                 "\"error_description\":\"response too large\"}";

        log_error("http: response body over the limit", "bytes", log_i64((int64_t)len), NULL);
        req->status = 500;
        req->resp_type = "application/json";
        buf_reset(&req->resp_body);
        buf_append(&req->resp_body, tb, sizeof tb - 1);
    }
}

void http_respond_json(struct http_request *req, int status, json_t *j)
{
    char *s;

    if (!j) {
        http_respond_error(req, 500, "server_error", "no response body");
        return;
    }
    s = jsonx_dump(j);
    http_respond(req, status, "application/json", s, strlen(s));
    free(s);
    json_decref(j);
}

void http_respond_error(struct http_request *req, int status, const char *code, const char *desc)
{
    struct buf b;

    buf_init(&b, ERR_BODY_LIMIT);
    buf_puts(&b, "{\"error\":\"");
    buf_json_escape(&b, code, strlen(code));
    if (desc) {
        size_t n = strlen(desc);

        if (n > ERR_BODY_LIMIT / 2)
            n = ERR_BODY_LIMIT / 2;
        buf_puts(&b, "\",\"error_description\":\"");
        buf_json_escape(&b, desc, n);
    }
    buf_puts(&b, "\"}");
    http_respond(req, status, "application/json", b.data, b.len);
    buf_free(&b);
}

/* Builds and queues an MHD response. With from_req, the handler's status,
 * body and headers are used; otherwise the given ones (abandoned requests,
 * whose req fields another thread may still be writing). */
static enum MHD_Result queue(struct http_conn_priv *c, bool from_req, int status,
                             const char *type, const char *body, size_t len)
{
    struct http_request *req = &c->req;
    struct MHD_Response *resp;
    enum MHD_Result rc;
    struct hdr *h;

    if (from_req) {
        if (req->status < 100 || req->status > 599) {
            log_error("http: handler left no valid status", "route", req->route,
                      "status", log_i64(req->status), NULL);
            http_respond_error(req, 500, "server_error", "handler produced no response");
        }
        status = req->status;
        type = req->resp_type;
        body = req->resp_body.data ? req->resp_body.data : "";
        len = req->resp_body.len;
    }
    resp = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        xoom(len);
    if (from_req)
        for (h = c->resp_hdrs; h; h = h->next)
            if (MHD_add_response_header(resp, h->name, h->value) != MHD_YES)
                log_warn("http: response header refused", "name", h->name, NULL);
    if (type)
        MHD_add_response_header(resp, "Content-Type", type);
    if (is_json_type(type))
        MHD_add_response_header(resp, "Cache-Control", "no-store");
    if (req->request_id)
        MHD_add_response_header(resp, "X-Request-Id", req->request_id);
    rc = MHD_queue_response(c->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    c->state = ST_DONE;
    if (rc == MHD_YES) {
        c->queued = true;
        c->final_status = status;
        c->final_bytes = len;
    } else {
        log_error("http: MHD_queue_response failed", "status", log_i64(status), NULL);
    }
    return rc;
}

static enum MHD_Result queue_error(struct http_conn_priv *c, int status, const char *code,
                                   const char *desc)
{
    http_respond_error(&c->req, status, code, desc);
    return queue(c, true, 0, NULL, NULL, 0);
}

static enum MHD_Result queue_abandoned(struct http_conn_priv *c)
{
    static const char body[] = "{\"error\":\"temporarily_unavailable\","
                               "\"error_description\":\"server shutting down\"}";

    return queue(c, false, 503, "application/json", body, sizeof body - 1);
}

/* ------------------------------------------------------------- suspension */

void http_resume(struct http_request *req)
{
    struct http_conn_priv *c = req->priv;
    struct MHD_Connection *conn = c->conn;
    bool do_resume = false, free_now;

    pthread_mutex_lock(&c->lock);
    if (c->resumed) {
        pthread_mutex_unlock(&c->lock);
        log_error("http: http_resume called twice", "route", req->route, NULL);
        return;
    }
    c->resumed = true;
    if (c->suspended && !c->mhd_resume_called) {
        c->mhd_resume_called = true;
        do_resume = true;
    }
    free_now = c->mhd_done;         /* only after an abandoned shutdown */
    pthread_mutex_unlock(&c->lock);
    /* c may be completed and freed by MHD as soon as the connection is
     * resumed: touch only the local copies from here on. */
    if (do_resume)
        MHD_resume_connection(conn);
    if (free_now)
        priv_destroy(c);
}

/* Runs the handler and queues or suspends. */
static enum MHD_Result run_handler(struct http_conn_priv *c)
{
    struct http_request *req = &c->req;
    enum http_result r;
    enum MHD_Result rc = MHD_YES;

    log_set_request_id(req->request_id);
    r = c->route->r.fn(req);
    log_set_request_id(NULL);
    if (r != HTTP_SUSPEND)
        return queue(c, true, 0, NULL, NULL, 0);

    pthread_mutex_lock(&c->lock);
    c->suspend_returned = true;
    if (c->resumed) {
        rc = queue(c, true, 0, NULL, NULL, 0);
    } else if (c->abandoned || atomic_load(&c->srv->stopping)) {
        c->abandoned = true;
        rc = queue_abandoned(c);
    } else {
        c->suspended = true;
        c->state = ST_SUSPENDED;
        MHD_suspend_connection(c->conn);
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}

/* Called again by MHD after MHD_resume_connection. */
static enum MHD_Result finish_suspended(struct http_conn_priv *c)
{
    bool real;

    pthread_mutex_lock(&c->lock);
    real = c->resumed;              /* otherwise resumed by shutdown */
    pthread_mutex_unlock(&c->lock);
    return real ? queue(c, true, 0, NULL, NULL, 0) : queue_abandoned(c);
}

/* ---------------------------------------------------------- request start */

struct hdr_collect {
    struct http_conn_priv *c;
    size_t bytes;
    size_t limit;
    bool too_big;
};

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      size_t key_size, const char *value, size_t value_size)
{
    struct hdr_collect *hc = cls;
    struct hdr *h;

    (void)kind;
    hc->bytes += key_size + value_size + 4;        /* "k: v\r\n" */
    if (hc->bytes > hc->limit) {
        hc->too_big = true;
        return MHD_NO;
    }
    h = arena_alloc(&hc->c->req.arena, sizeof *h);
    h->name = arena_strndup(&hc->c->req.arena, key, key_size);
    h->value = arena_strndup(&hc->c->req.arena, value ? value : "", value ? value_size : 0);
    *hc->c->hdrs_tail = h;
    hc->c->hdrs_tail = &h->next;
    return MHD_YES;
}

static void set_remote_addr(struct http_conn_priv *c)
{
    const union MHD_ConnectionInfo *ci;
    char ip[INET6_ADDRSTRLEN] = "-";

    ci = MHD_get_connection_info(c->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;

        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, ip,
                      sizeof ip);
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, ip,
                      sizeof ip);
    }
    c->req.remote_addr = arena_strdup(&c->req.arena, ip);
    c->req.peer_addr = c->req.remote_addr;
}

/* ------------------------------------------------------- trusted proxies */

/* Canonical text of an IP address (so "::ffff:1" and spellings compare), or -1. */
static int canon_ip(const char *in, size_t n, char out[INET6_ADDRSTRLEN])
{
    char tmp[INET6_ADDRSTRLEN + 1];
    unsigned char bin[sizeof(struct in6_addr)];

    while (n && (*in == ' ' || *in == '\t'))
        in++, n--;
    while (n && (in[n - 1] == ' ' || in[n - 1] == '\t'))
        n--;
    if (n == 0 || n >= sizeof tmp)
        return -1;
    memcpy(tmp, in, n);
    tmp[n] = '\0';
    if (inet_pton(AF_INET, tmp, bin) == 1)
        return inet_ntop(AF_INET, bin, out, INET6_ADDRSTRLEN) ? 0 : -1;
    if (inet_pton(AF_INET6, tmp, bin) == 1)
        return inet_ntop(AF_INET6, bin, out, INET6_ADDRSTRLEN) ? 0 : -1;
    return -1;
}

int http_trusted_proxies_check(const char *list, char *msg, size_t msglen)
{
    char ip[INET6_ADDRSTRLEN];
    const char *p = list;

    while (p && *p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (canon_ip(p, n, ip) < 0) {
            snprintf(msg, msglen, "not an IP address: \"%.*s\"", (int)(n > 64 ? 64 : n), p);
            return -EINVAL;
        }
        p = e ? e + 1 : NULL;
    }
    return 0;
}

static char **trusted_parse(const char *list)
{
    size_t n = 1, k = 0;
    char ip[INET6_ADDRSTRLEN];

    if (!list || !*list)
        return NULL;
    for (const char *q = list; *q; q++)
        n += *q == ',';
    char **out = xcalloc(n + 1, sizeof(char *));
    for (const char *p = list; p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (canon_ip(p, len, ip) == 0)
            out[k++] = xstrdup(ip);
        p = e ? e + 1 : NULL;
    }
    return out;
}

static bool trusted_has(char *const *t, const char *ip)
{
    for (; t && *t; t++)
        if (strcmp(*t, ip) == 0)
            return true;
    return false;
}

/* remote_addr for a request that came through a trusted proxy: walk
 * X-Forwarded-For from the right (each proxy appends the address it saw)
 * past trusted proxies; the first other entry is the client. A malformed
 * entry stops the walk at the last trusted hop, never at what a client wrote. */
static void apply_forwarded_for(struct http_server *s, struct http_request *req)
{
    const char *xff = http_header(req, "X-Forwarded-For");
    char ip[INET6_ADDRSTRLEN];
    const char *end;

    if (!s->trusted || !xff || !trusted_has(s->trusted, req->peer_addr))
        return;
    end = xff + strlen(xff);
    while (end > xff) {
        const char *start = end;
        while (start > xff && start[-1] != ',')
            start--;
        if (canon_ip(start, (size_t)(end - start), ip) < 0)
            return;
        req->remote_addr = arena_strdup(&req->arena, ip);
        if (!trusted_has(s->trusted, ip))
            return;
        end = start > xff ? start - 1 : start;
    }
}

static void set_content_type(struct http_conn_priv *c)
{
    const char *ct = http_header(&c->req, "Content-Type");
    size_t n, i;
    char *t;

    if (!ct)
        return;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    n = strcspn(ct, ";");
    while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        n--;
    t = arena_strndup(&c->req.arena, ct, n);
    for (i = 0; i < n; i++)
        if (t[i] >= 'A' && t[i] <= 'Z')
            t[i] = (char)(t[i] - 'A' + 'a');
    c->req.content_type = t;
}

/* Routes the raw path; fills req->url/path/tenant/route/path params.
 * Queues 404/405/400 itself and returns false when there is no route. */
static bool route_request(struct http_conn_priv *c, enum MHD_Result *rc)
{
    struct http_server *s = c->srv;
    struct http_request *req = &c->req;
    struct str segs[MAX_SEGMENTS];
    const struct str *rsegs = segs;
    struct str slash = STR_LIT("");
    size_t plen = strlen(req->url);
    const struct route *rt;
    bool tenant_only = false;
    struct buf allow;
    size_t i, k = 0;
    int nsegs;

    nsegs = req->url[0] == '/' ? split_path(req->url, plen, segs) : -1;
    if (nsegs < 0) {
        *rc = queue_error(c, 404, "not_found", "no such resource");
        return false;
    }
    if (nsegs >= 2 && str_eq_cstr(segs[0], "t")) {
        if (!http_tenant_name_valid(segs[1].p, segs[1].len)) {
            *rc = queue_error(c, 404, "not_found", "no such tenant");
            return false;
        }
        req->tenant = arena_strndup(&req->arena, segs[1].p, segs[1].len);
        req->tenant_explicit = true;
        tenant_only = true;
        if (nsegs == 2) {
            req->path = "/";
            rsegs = &slash;
            nsegs = 1;
        } else {
            req->path = segs[2].p - 1;
            rsegs = segs + 2;
            nsegs -= 2;
        }
    }

    buf_init(&allow, 256);
    rt = route_find(s, req->method, rsegs, (size_t)nsegs, tenant_only, &allow);
    if (!rt) {
        if (allow.len) {
            http_add_header(req, "Allow", buf_cstr(&allow));
            *rc = queue_error(c, 405, "method_not_allowed",
                              arena_sprintf(&req->arena, "allowed: %s", buf_cstr(&allow)));
        } else {
            *rc = queue_error(c, 404, "not_found", "no such resource");
        }
        buf_free(&allow);
        return false;
    }
    buf_free(&allow);

    c->route = rt;
    req->route = arena_strdup(&req->arena, rt->r.name);  /* outlives the server if abandoned */
    req->route_data = rt->r.data;
    for (i = 0; i < rt->nsegs; i++) {
        if (!rt->segs[i].param)
            continue;
        if (path_decode(rsegs[i].p, rsegs[i].len, &req->arena, &req->path_params[k]) < 0) {
            *rc = queue_error(c, 400, "invalid_request", "malformed percent-escape in path");
            return false;
        }
        req->path_param_names[k] = arena_strndup(&req->arena, rt->segs[i].text, rt->segs[i].len);
        k++;
    }
    req->npath_params = k;
    return true;
}

/* First call for a request: limits, routing, query. Returns MHD_YES to go
 * on reading the body, or the result of queueing an error. */
static enum MHD_Result begin(struct http_conn_priv *c, const char *method)
{
    struct http_server *s = c->srv;
    struct http_request *req = &c->req;
    struct hdr_collect hc = { .c = c, .limit = s->max_header };
    enum MHD_Result rc = MHD_YES;
    const char *rid, *cl, *q;
    int err;

    c->state = ST_BODY;
    req->method = arena_strdup(&req->arena, method);
    if (!c->raw_uri) {              /* no URI callback ran: cannot happen with MHD 0.9.75 */
        c->raw_uri = "/";
        c->raw_uri_len = 1;
    }
    req->url = arena_strndup(&req->arena, c->raw_uri, strcspn(c->raw_uri, "?"));
    req->path = req->url;

    pthread_mutex_lock(&s->lock);
    c->counted = true;
    c->next = s->inflight;
    if (s->inflight)
        s->inflight->prev = c;
    s->inflight = c;
    s->ninflight++;
    pthread_mutex_unlock(&s->lock);
    atomic_fetch_add(&g_inflight, 1);

    MHD_get_connection_values_n(c->conn, MHD_HEADER_KIND, collect_header, &hc);
    rid = http_header(req, "X-Request-Id");
    if (request_id_sane(rid)) {
        req->request_id = rid;
    } else {
        char id[UUID_STRLEN + 1];

        uuid_v4(id);
        req->request_id = arena_strdup(&req->arena, id);
    }
    set_remote_addr(c);
    apply_forwarded_for(s, req);
    set_content_type(c);

    if (c->raw_uri_len > s->max_url)
        return queue_error(c, 414, "invalid_request",
                           arena_sprintf(&req->arena, "URL longer than %zu bytes", s->max_url));
    if (hc.too_big)
        return queue_error(c, 431, "invalid_request",
                           arena_sprintf(&req->arena, "request headers larger than %zu bytes",
                                         s->max_header));
    cl = http_header(req, "Content-Length");
    if (cl) {
        int64_t n;

        if (str_to_i64(str_trim(str_from_cstr(cl)), 0, INT64_MAX, &n) == 0 &&
            (uint64_t)n > s->max_body)
            return queue_error(c, 413, "invalid_request",
                               arena_sprintf(&req->arena, "body larger than %zu bytes",
                                             s->max_body));
    }
    if (!route_request(c, &rc))
        return rc;

    q = memchr(c->raw_uri, '?', c->raw_uri_len);
    if (q) {
        q++;
        err = http_urlencoded_parse(q, c->raw_uri_len - (size_t)(q - c->raw_uri), &req->arena,
                                    HTTP_MAX_PARAMS, &req->query);
        if (err == -E2BIG)
            return queue_error(c, 400, "invalid_request", "too many query parameters");
        if (err < 0)
            return queue_error(c, 400, "invalid_request", "malformed query string");
    }
    return MHD_YES;
}

/* ----------------------------------------------------------- MHD callbacks */

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct http_server *s = cls;
    struct http_conn_priv *c = priv_new(s, conn);

    c->raw_uri_len = strlen(uri);
    c->raw_uri = arena_strndup(&c->req.arena, uri, c->raw_uri_len);
    return c;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version,
                                 const char *upload_data, size_t *upload_data_size,
                                 void **con_cls)
{
    struct http_server *s = cls;
    struct http_conn_priv *c = *con_cls;

    (void)url;
    (void)version;
    if (!c) {
        c = priv_new(s, conn);
        *con_cls = c;
    }
    switch (c->state) {
    case ST_NEW:
        return begin(c, method);
    case ST_BODY:
        if (*upload_data_size) {
            if (!c->body_too_big && buf_append(&c->body, upload_data, *upload_data_size) < 0) {
                c->body_too_big = true;
                buf_free(&c->body);
            }
            if (c->body_too_big) {
                c->discarded += *upload_data_size;
                if (c->discarded > DISCARD_ALLOWANCE + s->max_body) {
                    log_warn("http: closing a connection streaming past the body limit",
                             "route", c->req.route, NULL);
                    return MHD_NO;
                }
            }
            *upload_data_size = 0;
            return MHD_YES;
        }
        if (c->body_too_big)
            return queue_error(c, 413, "invalid_request",
                               arena_sprintf(&c->req.arena, "body larger than %zu bytes",
                                             s->max_body));
        c->req.body.p = buf_cstr(&c->body);
        c->req.body.len = c->body.len;
        return run_handler(c);
    case ST_SUSPENDED:
        return finish_suspended(c);
    case ST_DONE:
        break;
    }
    return MHD_NO;
}

static const char *toe_name(enum MHD_RequestTerminationCode toe)
{
    switch (toe) {
    case MHD_REQUEST_TERMINATED_COMPLETED_OK: return "ok";
    case MHD_REQUEST_TERMINATED_WITH_ERROR: return "error";
    case MHD_REQUEST_TERMINATED_TIMEOUT_REACHED: return "timeout";
    case MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN: return "shutdown";
    case MHD_REQUEST_TERMINATED_READ_ERROR: return "read_error";
    case MHD_REQUEST_TERMINATED_CLIENT_ABORT: return "client_abort";
    }
    return "unknown";
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_server *s = cls;
    struct http_conn_priv *c = *con_cls;
    struct http_request *req;
    int64_t us;
    const char *status;
    bool free_now;

    (void)conn;
    if (!c)
        return;
    *con_cls = NULL;
    req = &c->req;
    us = time_mono_us() - req->start_us;
    status = log_i64(c->queued ? c->final_status : 0);

    log_set_request_id(req->request_id);
    log_info("request", "method", req->method ? req->method : "-",
             "path", req->url ? req->url : "-", "status", status, "us", log_i64(us),
             "bytes", log_i64((int64_t)c->final_bytes), "route", req->route,
             "remote", req->remote_addr ? req->remote_addr : "-",
             toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? NULL : "end", toe_name(toe), NULL);
    log_set_request_id(NULL);
    metric_inc(m_requests, (const char *const[]){ req->route, status }, 1);
    metric_observe(m_duration, (const char *const[]){ req->route }, (double)us / 1e6);

    if (c->counted) {
        pthread_mutex_lock(&s->lock);
        if (c->prev)
            c->prev->next = c->next;
        else
            s->inflight = c->next;
        if (c->next)
            c->next->prev = c->prev;
        if (--s->ninflight == 0)
            pthread_cond_broadcast(&s->idle);
        pthread_mutex_unlock(&s->lock);
        atomic_fetch_sub(&g_inflight, 1);
    }

    pthread_mutex_lock(&c->lock);
    c->mhd_done = true;
    free_now = !c->suspend_returned || c->resumed;
    pthread_mutex_unlock(&c->lock);
    if (free_now)
        priv_destroy(c);
}

__attribute__((format(printf, 2, 0)))
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct http_server *s = cls;
    char msg[512];
    size_t n;

    vsnprintf(msg, sizeof msg, fmt, ap);
    n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    pthread_mutex_lock(&s->lock);
    if (s->starting)
        snprintf(s->start_err, sizeof s->start_err, "%.200s", msg);
    pthread_mutex_unlock(&s->lock);
    log_warn("libmicrohttpd", "detail", msg, NULL);
}

/* ----------------------------------------------------------------- server */

/* "host:port", "[v6]:port", ":port" / "*:port" (all IPv4), "localhost:port". */
static int parse_listen(const char *spec, struct sockaddr_storage *ss, bool *v6)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *port, *colon;
    size_t hlen;
    int64_t pn;

    memset(ss, 0, sizeof *ss);
    *v6 = false;
    if (!spec)
        return -EINVAL;
    if (spec[0] == '[') {
        const char *close = strchr(spec, ']');

        if (!close || close[1] != ':')
            return -EINVAL;
        hlen = (size_t)(close - spec - 1);
        if (hlen == 0 || hlen >= sizeof host)
            return -EINVAL;
        memcpy(host, spec + 1, hlen);
        host[hlen] = '\0';
        port = close + 2;
        *v6 = true;
    } else {
        colon = strrchr(spec, ':');
        if (!colon || memchr(spec, ':', (size_t)(colon - spec)))
            return -EINVAL;
        hlen = (size_t)(colon - spec);
        if (hlen >= sizeof host)
            return -EINVAL;
        memcpy(host, spec, hlen);
        host[hlen] = '\0';
        port = colon + 1;
    }
    if (str_to_i64(str_from_cstr(port), 0, 65535, &pn) < 0)
        return -EINVAL;

    if (*v6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)pn);
        if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
            return -EINVAL;
    } else {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;

        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)pn);
        if (host[0] == '\0' || strcmp(host, "*") == 0)
            sin->sin_addr.s_addr = htonl(INADDR_ANY);
        else if (strcmp(host, "localhost") == 0)
            sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        else if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
            return -EINVAL;
    }
    return 0;
}

/* Reads a whole PEM file (at most TLS_FILE_LIMIT bytes) into a NUL-terminated
 * xmalloc'd string. 0 or -errno. */
static int read_pem(const char *path, char **out)
{
    char *data = NULL;
    size_t len = 0;
    int fd, rc = 0;

    *out = NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    data = xmalloc(TLS_FILE_LIMIT + 1);
    for (;;) {
        ssize_t r = read(fd, data + len, TLS_FILE_LIMIT + 1 - len);

        if (r < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            goto out;
        }
        if (r == 0)
            break;
        len += (size_t)r;
        if (len > TLS_FILE_LIMIT) {
            rc = -EFBIG;
            goto out;
        }
    }
    if (len == 0) {
        rc = -ENODATA;
        goto out;
    }
    data[len] = '\0';
    *out = data;
    data = NULL;
out:
    close(fd);
    if (data) {
        explicit_bzero(data, len);
        free(data);
    }
    return rc;
}

static void server_free(struct http_server *s)
{
    size_t i;

    for (i = 0; i < s->nroutes; i++)
        route_release(&s->routes[i]);
    free(s->routes);
    if (s->key_pem) {
        explicit_bzero(s->key_pem, strlen(s->key_pem));
        free(s->key_pem);
    }
    free(s->cert_pem);
    for (char **t = s->trusted; t && *t; t++)
        free(*t);
    free(s->trusted);
    pthread_cond_destroy(&s->idle);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

struct http_server *http_server_start(const struct http_config *cfg, const struct http_route *routes,
                                      size_t nroutes, char *err, size_t errlen)
{
    struct http_server *s = xcalloc(1, sizeof *s);
    struct sockaddr_storage ss;
    struct MHD_OptionItem opts[16];
    pthread_condattr_t ca;
    unsigned flags;
    size_t i, k = 0, pool;
    bool v6;
    int rc, threads, timeout;
    const union MHD_DaemonInfo *di;

    pthread_once(&metrics_once, metrics_register);
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->idle, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&s->stopping, false);
    atomic_init(&s->quiesced, false);

    s->max_body = cfg->max_body_bytes ? cfg->max_body_bytes : DEFAULT_MAX_BODY;
    s->max_header = cfg->max_header_bytes ? cfg->max_header_bytes : DEFAULT_MAX_HEADER;
    s->max_url = cfg->max_url_bytes ? cfg->max_url_bytes : DEFAULT_MAX_URL;
    s->max_json_depth = cfg->max_json_depth > 0 ? cfg->max_json_depth : DEFAULT_JSON_DEPTH;
    s->trusted = trusted_parse(cfg->trusted_proxies);
    threads = cfg->threads > 0 ? cfg->threads : DEFAULT_THREADS;
    timeout = cfg->connection_timeout_s > 0 ? cfg->connection_timeout_s : DEFAULT_TIMEOUT_S;

    if (parse_listen(cfg->listen, &ss, &v6) < 0) {
        snprintf(err, errlen, "invalid listen address \"%s\" (want host:port or [v6]:port)",
                 cfg->listen ? cfg->listen : "");
        goto fail;
    }

    s->routes = xcalloc(nroutes ? nroutes : 1, sizeof *s->routes);
    for (i = 0; i < nroutes; i++) {
        if (route_compile(&s->routes[i], &routes[i], err, errlen) < 0) {
            s->nroutes = i + 1;
            goto fail;
        }
    }
    s->nroutes = nroutes;

    if (!!cfg->tls_cert != !!cfg->tls_key) {
        snprintf(err, errlen, "tls_cert and tls_key must be given together");
        goto fail;
    }
    if (cfg->tls_cert) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            snprintf(err, errlen, "libmicrohttpd was built without TLS support");
            goto fail;
        }
        rc = read_pem(cfg->tls_cert, &s->cert_pem);
        if (rc < 0) {
            snprintf(err, errlen, "cannot read tls_cert %s: %s", cfg->tls_cert,
                     rc == -ENODATA ? "empty file" : strerror(-rc));
            goto fail;
        }
        rc = read_pem(cfg->tls_key, &s->key_pem);
        if (rc < 0) {
            snprintf(err, errlen, "cannot read tls_key %s: %s", cfg->tls_key,
                     rc == -ENODATA ? "empty file" : strerror(-rc));
            goto fail;
        }
        s->tls = true;
    }

    flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    flags |= MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES ? MHD_USE_EPOLL : MHD_USE_AUTO;
    if (v6)
        flags |= MHD_USE_IPv6;
    if (s->tls)
        flags |= MHD_USE_TLS;

    pool = s->max_url + s->max_header + POOL_SLACK;
    opts[k++] = (struct MHD_OptionItem){ MHD_OPTION_SOCK_ADDR, 0, &ss };
    opts[k++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)pool, NULL };
    opts[k++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_TIMEOUT, timeout, NULL };
    opts[k++] = (struct MHD_OptionItem){ MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)on_uri, s };
    opts[k++] = (struct MHD_OptionItem){ MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, s };
    if (threads > 1)
        opts[k++] = (struct MHD_OptionItem){ MHD_OPTION_THREAD_POOL_SIZE, threads, NULL };
    if (s->tls) {
        opts[k++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_CERT, 0, s->cert_pem };
        opts[k++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_KEY, 0, s->key_pem };
    }
    opts[k++] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };

    s->starting = true;
    s->d = MHD_start_daemon(flags, 0, NULL, NULL, on_access, s,
                            MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
                            MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    pthread_mutex_lock(&s->lock);
    s->starting = false;
    pthread_mutex_unlock(&s->lock);
    if (!s->d) {
        snprintf(err, errlen, "cannot listen on %s: %s", cfg->listen,
                 s->start_err[0] ? s->start_err : "libmicrohttpd refused to start");
        goto fail;
    }
    di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : 0;
    log_info("http listening", "listen", cfg->listen, "port", log_i64(s->port),
             "threads", log_i64(threads), "tls", s->tls ? "on" : "off", NULL);
    return s;

fail:
    server_free(s);
    return NULL;
}

int http_server_port(struct http_server *s)
{
    return s->port;
}

int64_t http_server_inflight(struct http_server *s)
{
    int64_t n;

    pthread_mutex_lock(&s->lock);
    n = s->ninflight;
    pthread_mutex_unlock(&s->lock);
    return n;
}

void http_server_quiesce(struct http_server *s)
{
    MHD_socket fd;

    /* No lock held across the MHD call: its threads call back into us. */
    if (atomic_exchange(&s->quiesced, true))
        return;
    fd = MHD_quiesce_daemon(s->d);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    log_info("http quiesced", "port", log_i64(s->port), NULL);
}

void http_server_stop(struct http_server *s, int timeout_ms)
{
    struct MHD_Connection **resume = NULL;
    struct http_conn_priv *c;
    struct timespec deadline;
    size_t nresume = 0;
    int64_t left;

    if (!s)
        return;
    http_server_quiesce(s);

    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }

    pthread_mutex_lock(&s->lock);
    while (s->ninflight > 0 && timeout_ms > 0)
        if (pthread_cond_timedwait(&s->idle, &s->lock, &deadline) == ETIMEDOUT)
            break;
    left = s->ninflight;
    if (left > 0) {
        /* From here on no handler may suspend; suspended requests are
         * resumed and answered 503 (MHD_stop_daemon panics on them). */
        atomic_store(&s->stopping, true);
        resume = xcalloc((size_t)left, sizeof *resume);
        for (c = s->inflight; c; c = c->next) {
            pthread_mutex_lock(&c->lock);
            c->abandoned = true;
            if (c->suspended && !c->mhd_resume_called) {
                c->mhd_resume_called = true;
                resume[nresume++] = c->conn;
            }
            pthread_mutex_unlock(&c->lock);
        }
    }
    pthread_mutex_unlock(&s->lock);

    if (left > 0)
        log_warn("http stop: timeout with requests in flight", "inflight", log_i64(left),
                 "suspended", log_i64((int64_t)nresume), NULL);
    for (size_t i = 0; i < nresume; i++)
        MHD_resume_connection(resume[i]);
    free(resume);
    if (nresume > 0) {
        /* A short grace so the resumed requests can send their 503 before
         * MHD_stop_daemon closes every connection. */
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_nsec += ABANDON_GRACE_MS * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&s->lock);
        while (s->ninflight > 0)
            if (pthread_cond_timedwait(&s->idle, &s->lock, &deadline) == ETIMEDOUT)
                break;
        pthread_mutex_unlock(&s->lock);
    }
    MHD_stop_daemon(s->d);
    log_info("http stopped", "port", log_i64(s->port), NULL);
    server_free(s);
}
