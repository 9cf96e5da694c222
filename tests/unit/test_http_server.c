/*
 * test_http_server — a real libmicrohttpd server in-process on 127.0.0.1
 * port 0, driven over plain sockets: routing (404/405, tenant prefix, path
 * parameters), every request limit (413/414/431, JSON depth), query, form
 * and cookie parsing, request ids, the access log and metrics, suspension
 * under concurrency (including resume-before-suspend), graceful shutdown
 * with a suspended request in flight, a shutdown that has to abandon one,
 * IPv6 listening, TLS via the curl and openssl command-line tools, and
 * start-up errors.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/log.h"
#include "core/metrics.h"
#include "core/timeutil.h"
#include "core/uuid.h"
#include "http/http.h"

#define MAX_BODY 1024
#define MAX_HEADER 2048
#define MAX_URL 512
#define JSON_DEPTH 4

static struct http_server *g_srv;
static int g_port;
static char g_tmpdir[512];
static char g_logpath[600];

/* ------------------------------------------------------------ the client */

struct resp {
    int status;              /* 0: no status line received */
    char *raw;               /* whole response, NUL-terminated */
    size_t len;
    const char *body;
    size_t body_len;
};

static void resp_free(struct resp *r)
{
    free(r->raw);
    memset(r, 0, sizeof *r);
}

static int connect_to(int family, int port)
{
    struct timeval tv = { 10, 0 };
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (family == AF_INET6) {
        struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port),
                                  .sin6_addr = IN6ADDR_LOOPBACK_INIT };

        if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0)
            return fd;
    } else {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

        if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0)
            return fd;
    }
    close(fd);
    return -1;
}

/* Sends `req` (which should carry Connection: close) and reads until EOF.
 * Returns 0, or -1 when the connection could not be made. A reset after
 * some bytes arrived still counts as a response. */
static int exchange_fam(int family, int port, const char *req, size_t reqlen, struct resp *r)
{
    size_t cap = 1 << 16, off = 0;
    int fd;

    memset(r, 0, sizeof *r);
    fd = connect_to(family, port);
    if (fd < 0)
        return -1;
    while (off < reqlen) {
        ssize_t n = send(fd, req + off, reqlen - off, MSG_NOSIGNAL);

        if (n <= 0)
            break;               /* the server may close early (413, 431) */
        off += (size_t)n;
    }
    r->raw = malloc(cap + 1);
    if (!r->raw)
        abort();                /* also runs on client threads: no cmocka asserts */
    for (;;) {
        ssize_t n;

        if (r->len == cap) {
            cap *= 2;
            r->raw = realloc(r->raw, cap + 1);
            if (!r->raw)
                abort();
        }
        n = recv(fd, r->raw + r->len, cap - r->len, 0);
        if (n <= 0)
            break;
        r->len += (size_t)n;
    }
    close(fd);
    r->raw[r->len] = '\0';
    if (r->len > 12 && strncmp(r->raw, "HTTP/1.", 7) == 0)
        r->status = atoi(r->raw + 9);
    r->body = strstr(r->raw, "\r\n\r\n");
    if (r->body) {
        r->body += 4;
        r->body_len = r->len - (size_t)(r->body - r->raw);
    } else {
        r->body = "";
    }
    return 0;
}

static int exchange(const char *req, struct resp *r)
{
    return exchange_fam(AF_INET, g_port, req, strlen(req), r);
}

/* GET with extra header lines (each ending in \r\n). */
static void get(const char *target, const char *extra, struct resp *r)
{
    size_t cap = strlen(target) + (extra ? strlen(extra) : 0) + 128;
    char *req = malloc(cap);

    assert_non_null(req);
    snprintf(req, cap, "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n%s\r\n", target,
             extra ? extra : "");
    assert_int_equal(exchange(req, r), 0);
    free(req);
}

static void post(const char *target, const char *ctype, const char *body, struct resp *r)
{
    char req[16384];

    snprintf(req, sizeof req,
             "POST %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: %s\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             target, ctype, strlen(body), body);
    assert_int_equal(exchange(req, r), 0);
}

/* Value of a response header (copied into out), or NULL. */
static const char *header(const struct resp *r, const char *name, char *out, size_t outlen)
{
    const char *p = strstr(r->raw, "\r\n");
    size_t nl = strlen(name);

    while (p && p < r->body - 2) {
        const char *line = p + 2, *end = strstr(line, "\r\n");

        if (!end)
            break;
        if ((size_t)(end - line) > nl && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;

            while (*v == ' ')
                v++;
            snprintf(out, outlen, "%.*s", (int)(end - v), v);
            return out;
        }
        p = end;
    }
    return NULL;
}

static int count_headers(const struct resp *r, const char *name)
{
    const char *p = r->raw;
    size_t nl = strlen(name);
    int n = 0;

    while ((p = strstr(p, "\r\n")) != NULL && p < r->body - 2) {
        p += 2;
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':')
            n++;
    }
    return n;
}

/* Asserts a JSON error body with the given code and returns its description. */
static void assert_json_error(const struct resp *r, int status, const char *code)
{
    char v[256];
    json_t *j;

    assert_int_equal(r->status, status);
    assert_non_null(header(r, "Content-Type", v, sizeof v));
    assert_string_equal(v, "application/json");
    assert_non_null(header(r, "Cache-Control", v, sizeof v));
    assert_string_equal(v, "no-store");
    j = json_loadb(r->body, r->body_len, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "error")), code);
    assert_true(json_is_string(json_object_get(j, "error_description")));
    json_decref(j);
}

static bool wait_for(bool (*cond)(void *), void *arg, int ms)
{
    int64_t end = time_mono_us() + (int64_t)ms * 1000;

    while (!cond(arg)) {
        if (time_mono_us() > end)
            return false;
        time_sleep_us(2000);
    }
    return true;
}

/* --------------------------------------------------------------- handlers */

static enum http_result h_hello(struct http_request *req)
{
    const char *name = http_query(req, "name");
    char body[256];
    int n = snprintf(body, sizeof body, "hello%s%s", name ? " " : "", name ? name : "");

    http_add_header(req, "X-Extra", "1");
    http_respond(req, 200, "text/plain", body, (size_t)n);
    return HTTP_DONE;
}

static enum http_result h_where(struct http_request *req)
{
    json_t *j = json_pack("{s:s, s:s, s:s, s:b, s:s, s:s?}", "tenant", req->tenant, "path",
                          req->path, "url", req->url, "explicit", req->tenant_explicit, "route",
                          req->route, "id", http_path_param(req, "id"));

    http_respond_json(req, 200, j);
    return HTTP_DONE;
}

static enum http_result h_json(struct http_request *req)
{
    json_t *j = http_json_body(req);

    if (!j)
        return HTTP_DONE;
    http_respond_json(req, 200, j);
    return HTTP_DONE;
}

static enum http_result h_form(struct http_request *req)
{
    const struct http_params *f = http_form(req);
    const char *a;

    if (!f)
        return HTTP_DONE;
    a = http_params_get(f, "a");
    /* a second call returns the cached result (no cmocka asserts off the
     * test thread: a wrong answer shows up in the response instead) */
    if (http_form(req) != f)
        a = "not cached";
    http_respond(req, 200, "text/plain", a ? a : "-", a ? strlen(a) : 1);
    return HTTP_DONE;
}

static enum http_result h_body(struct http_request *req)
{
    char out[64];
    int n = snprintf(out, sizeof out, "%zu:%c", req->body.len,
                     req->body.len ? req->body.p[req->body.len - 1] : '-');

    if (req->body.p[req->body.len] != '\0')
        n = snprintf(out, sizeof out, "not NUL-terminated");
    http_respond(req, 200, "text/plain", out, (size_t)n);
    return HTTP_DONE;
}

static enum http_result h_rid(struct http_request *req)
{
    const char *logged = log_request_id();
    char out[512];
    int n = snprintf(out, sizeof out, "%s|%s", req->request_id, logged ? logged : "(none)");

    http_respond(req, 200, "text/plain", out, (size_t)n);
    return HTTP_DONE;
}

static enum http_result h_cookie(struct http_request *req)
{
    const char *sid = http_cookie(req, "sid");

    http_set_cookie(req, "sid", "new", "Path=/; HttpOnly");
    http_set_cookie(req, "other", "2", NULL);
    http_respond(req, 200, "text/plain", sid ? sid : "-", sid ? strlen(sid) : 1);
    return HTTP_DONE;
}

/* Suspension: the request goes to a thread that sleeps, answers and resumes. */
static atomic_int g_pending, g_max_pending;

struct job {
    struct http_request *req;
    int sleep_ms;
};

static void *resumer(void *arg)
{
    struct job *jb = arg;
    struct http_request *req = jb->req;
    const char *i = http_query(req, "i");
    char body[64];
    int n;

    time_sleep_us((int64_t)jb->sleep_ms * 1000);
    n = snprintf(body, sizeof body, "slow %s", i ? i : "-");
    http_respond(req, 200, "text/plain", body, (size_t)n);
    atomic_fetch_sub(&g_pending, 1);
    free(jb);
    http_resume(req);
    return NULL;
}

static enum http_result h_slow(struct http_request *req)
{
    struct job *jb = malloc(sizeof *jb);
    pthread_attr_t attr;
    pthread_t t;
    int now = atomic_fetch_add(&g_pending, 1) + 1;
    int max = atomic_load(&g_max_pending);

    while (now > max && !atomic_compare_exchange_weak(&g_max_pending, &max, now))
        ;
    if (!jb)
        abort();
    jb->req = req;
    jb->sleep_ms = (int)(intptr_t)req->route_data;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, resumer, jb) != 0)
        abort();
    pthread_attr_destroy(&attr);
    return HTTP_SUSPEND;
}

/* Resumes before returning HTTP_SUSPEND: the resume-first ordering. */
static enum http_result h_instant(struct http_request *req)
{
    http_respond(req, 200, "text/plain", "instant", 7);
    http_resume(req);
    return HTTP_SUSPEND;
}

/* Suspends and never resumes by itself: the test does it after stop. */
static struct http_request *_Atomic g_hung;

static enum http_result h_hang(struct http_request *req)
{
    atomic_store(&g_hung, req);
    return HTTP_SUSPEND;
}

static enum http_result h_nothing(struct http_request *req)
{
    (void)req;
    return HTTP_DONE;        /* forgot to respond: the layer answers 500 */
}

static const struct http_route g_routes[] = {
    { "GET", "/hello", h_hello, 0, "hello", NULL },
    { "GET", "/x", h_where, HTTP_ROUTE_TENANT, "where", NULL },
    { "GET", "/", h_where, HTTP_ROUTE_TENANT, "root", NULL },
    { "GET", "/items/{id}", h_where, HTTP_ROUTE_TENANT, "item", NULL },
    { "DELETE", "/items/{id}", h_where, HTTP_ROUTE_TENANT, "item", NULL },
    { "GET", "/items/special", h_where, HTTP_ROUTE_TENANT, "special", NULL },
    { "POST", "/json", h_json, 0, "json", NULL },
    { "POST", "/form", h_form, 0, "form", NULL },
    { "*", "/body", h_body, 0, "body", NULL },
    { "GET", "/rid", h_rid, 0, "rid", NULL },
    { "GET", "/cookie", h_cookie, 0, "cookie", NULL },
    { "GET", "/slow", h_slow, 0, "slow", (void *)(intptr_t)50 },
    { "GET", "/slow300", h_slow, 0, "slow300", (void *)(intptr_t)300 },
    { "GET", "/instant", h_instant, 0, "instant", NULL },
    { "GET", "/hang", h_hang, 0, "hang", NULL },
    { "GET", "/nothing", h_nothing, 0, "nothing", NULL },
};
#define NROUTES (sizeof g_routes / sizeof g_routes[0])

static struct http_config test_config(const char *listen)
{
    struct http_config c = {
        .listen = listen, .threads = 2, .max_body_bytes = MAX_BODY,
        .max_header_bytes = MAX_HEADER, .max_url_bytes = MAX_URL, .max_json_depth = JSON_DEPTH,
        .connection_timeout_s = 10,
    };
    return c;
}

/* ------------------------------------------------------------------ tests */

static void test_ok(void **state)
{
    struct resp r;
    char v[128];

    (void)state;
    get("/hello", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "hello");
    assert_non_null(header(&r, "Content-Type", v, sizeof v));
    assert_string_equal(v, "text/plain");
    assert_non_null(header(&r, "X-Extra", v, sizeof v));
    assert_null(header(&r, "Cache-Control", v, sizeof v));   /* not JSON */
    assert_non_null(header(&r, "X-Request-Id", v, sizeof v));
    assert_true(uuid_valid(v, strlen(v)));
    resp_free(&r);

    /* HEAD is served by the GET route, without a body */
    assert_int_equal(exchange("HEAD /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", &r),
                     0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
    resp_free(&r);

    /* keep-alive: two requests on one connection */
    {
        const char *two = "GET /hello?name=a HTTP/1.1\r\nHost: t\r\n\r\n"
                          "GET /hello?name=b HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";

        assert_int_equal(exchange(two, &r), 0);
        assert_int_equal(r.status, 200);
        assert_non_null(strstr(r.raw, "hello a"));
        assert_non_null(strstr(r.raw, "hello b"));
        resp_free(&r);
    }
}

static void test_not_found(void **state)
{
    struct resp r;

    (void)state;
    get("/nope", NULL, &r);
    assert_json_error(&r, 404, "not_found");
    resp_free(&r);
    get("/hello/", NULL, &r);             /* no trailing-slash fuzziness */
    assert_int_equal(r.status, 404);
    resp_free(&r);
    get("/items/", NULL, &r);             /* a parameter never matches empty */
    assert_int_equal(r.status, 404);
    resp_free(&r);
    get("*", NULL, &r);
    assert_true(r.status == 404 || r.status == 400);
    resp_free(&r);
}

static void test_method_not_allowed(void **state)
{
    struct resp r;
    char v[128];

    (void)state;
    post("/hello", "text/plain", "x", &r);
    assert_json_error(&r, 405, "method_not_allowed");
    assert_non_null(header(&r, "Allow", v, sizeof v));
    assert_string_equal(v, "GET");
    resp_free(&r);

    assert_int_equal(exchange("PUT /items/7 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                              "Content-Length: 0\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 405);
    assert_non_null(header(&r, "Allow", v, sizeof v));
    assert_string_equal(v, "GET, DELETE");
    resp_free(&r);

    /* DELETE on the same pattern is a different route that matches */
    assert_int_equal(exchange("DELETE /items/7 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                              &r), 0);
    assert_int_equal(r.status, 200);
    resp_free(&r);

    /* "*" accepts any method */
    assert_int_equal(exchange("PATCH /body HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                              "Content-Length: 2\r\n\r\nab", &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "2:b");
    resp_free(&r);
}

static void test_body_limits(void **state)
{
    struct resp r;
    char req[8192], chunk[801];
    int n;

    (void)state;
    /* Content-Length over the limit: 413 before any body byte is sent */
    assert_int_equal(exchange("POST /body HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                              "Content-Length: 100000\r\n\r\n", &r), 0);
    assert_json_error(&r, 413, "invalid_request");
    resp_free(&r);

    /* exactly at the limit is fine */
    memset(req, 0, sizeof req);
    n = snprintf(req, sizeof req, "POST /body HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                                  "Content-Length: %d\r\n\r\n", MAX_BODY);
    memset(req + n, 'z', MAX_BODY);
    assert_int_equal(exchange_fam(AF_INET, g_port, req, (size_t)n + MAX_BODY, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "1024:z");
    resp_free(&r);

    /* a chunked body that grows past the limit */
    memset(chunk, 'c', 800);
    chunk[800] = '\0';
    n = snprintf(req, sizeof req, "POST /body HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                                  "Transfer-Encoding: chunked\r\n\r\n"
                                  "320\r\n%s\r\n320\r\n%s\r\n320\r\n%s\r\n0\r\n\r\n",
                 chunk, chunk, chunk);
    assert_int_equal(exchange_fam(AF_INET, g_port, req, (size_t)n, &r), 0);
    assert_json_error(&r, 413, "invalid_request");
    resp_free(&r);

    /* a small chunked body is assembled */
    assert_int_equal(exchange("POST /body HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                              "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
                              &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "5:e");
    resp_free(&r);
}

static void test_url_limit(void **state)
{
    struct resp r;
    char target[MAX_URL + 64];

    (void)state;
    memset(target, 'a', sizeof target);
    memcpy(target, "/hello?q=", 9);
    target[MAX_URL] = '\0';                 /* exactly MAX_URL bytes: fine */
    get(target, NULL, &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    target[MAX_URL] = 'a';
    target[MAX_URL + 1] = '\0';             /* one more: 414 */
    get(target, NULL, &r);
    assert_json_error(&r, 414, "invalid_request");
    resp_free(&r);

    /* far beyond MHD's memory pool: MHD itself answers 414 (HTML body) */
    {
        char *huge = malloc(100001);

        assert_non_null(huge);
        memset(huge, 'u', 100000);
        huge[0] = '/';
        huge[100000] = '\0';
        get(huge, NULL, &r);
        free(huge);
        assert_int_equal(r.status, 414);
        resp_free(&r);
    }
    get("/hello", NULL, &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
}

static void test_header_limit(void **state)
{
    struct resp r;
    char *extra = malloc(300000);
    size_t n;

    (void)state;
    assert_non_null(extra);
    /* over max_header_bytes but within MHD's pool: our JSON 431 */
    n = (size_t)snprintf(extra, 300000, "X-Big: ");
    memset(extra + n, 'b', MAX_HEADER);
    memcpy(extra + n + MAX_HEADER, "\r\n", 3);
    get("/hello", extra, &r);
    assert_json_error(&r, 431, "invalid_request");
    resp_free(&r);

    /* many small headers add up too */
    extra[0] = '\0';
    for (n = 0; n < 150; n++)
        sprintf(extra + strlen(extra), "X-H%zu: 0123456789\r\n", n);
    get("/hello", extra, &r);
    assert_int_equal(r.status, 431);
    resp_free(&r);

    /* far beyond MHD's per-connection memory pool: MHD answers by itself
     * (libmicrohttpd 0.9.75: 431 with an HTML body) and closes the
     * connection. No crash, and the server keeps serving. */
    n = (size_t)snprintf(extra, 300000, "X-Huge: ");
    memset(extra + n, 'h', 100000);
    memcpy(extra + n + 100000, "\r\n", 3);
    get("/hello", extra, &r);
    assert_int_equal(r.status, 431);
    assert_null(strstr(r.raw, "hello"));
    resp_free(&r);
    free(extra);

    get("/hello", NULL, &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
}

static void test_json(void **state)
{
    struct resp r;

    (void)state;
    post("/json", "application/json", "{\"a\":[[1]]}", &r);     /* depth 3 */
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"a\":[[1]]}");
    resp_free(&r);

    post("/json", "application/json", "[[[[[[1]]]]]]", &r);    /* depth 6 > 4 */
    assert_json_error(&r, 400, "invalid_request");
    resp_free(&r);

    post("/json", "application/json", "{\"a\":", &r);
    assert_json_error(&r, 400, "invalid_request");
    resp_free(&r);

    post("/json", "application/json", "", &r);
    assert_json_error(&r, 400, "invalid_request");
    resp_free(&r);
}

static void test_tenants(void **state)
{
    struct resp r;
    json_t *j;

    (void)state;
    get("/t/acme/x", NULL, &r);
    assert_int_equal(r.status, 200);
    j = json_loadb(r.body, r.body_len, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "tenant")), "acme");
    assert_string_equal(json_string_value(json_object_get(j, "path")), "/x");
    assert_string_equal(json_string_value(json_object_get(j, "url")), "/t/acme/x");
    assert_true(json_is_true(json_object_get(j, "explicit")));
    json_decref(j);
    resp_free(&r);

    get("/x", NULL, &r);
    assert_int_equal(r.status, 200);
    j = json_loadb(r.body, r.body_len, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "tenant")), "default");
    assert_string_equal(json_string_value(json_object_get(j, "path")), "/x");
    assert_true(json_is_false(json_object_get(j, "explicit")));
    json_decref(j);
    resp_free(&r);

    get("/t/acme", NULL, &r);                 /* tenant root is "/" */
    assert_int_equal(r.status, 200);
    j = json_loadb(r.body, r.body_len, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "route")), "root");
    assert_string_equal(json_string_value(json_object_get(j, "path")), "/");
    json_decref(j);
    resp_free(&r);

    get("/t/acme/items/a%20b", NULL, &r);     /* path params are decoded */
    assert_int_equal(r.status, 200);
    j = json_loadb(r.body, r.body_len, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "id")), "a b");
    assert_string_equal(json_string_value(json_object_get(j, "route")), "item");
    json_decref(j);
    resp_free(&r);

    get("/items/special", NULL, &r);          /* the literal beats {id} */
    j = json_loadb(r.body, r.body_len, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "route")), "special");
    json_decref(j);
    resp_free(&r);

    get("/items/a%zz", NULL, &r);
    assert_json_error(&r, 400, "invalid_request");
    resp_free(&r);

    get("/t/Bad_Name/x", NULL, &r);
    assert_json_error(&r, 404, "not_found");
    resp_free(&r);
    get("/t/-acme/x", NULL, &r);
    assert_int_equal(r.status, 404);
    resp_free(&r);
    get("/t/acme/hello", NULL, &r);           /* not a tenant route */
    assert_int_equal(r.status, 404);
    resp_free(&r);
}

static void test_request_id(void **state)
{
    struct resp r;
    char v[256], exp[600], longid[140];

    (void)state;
    get("/rid", "X-Request-Id: abc-123.X_y\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(header(&r, "X-Request-Id", v, sizeof v));
    assert_string_equal(v, "abc-123.X_y");
    /* the handler saw it both in req and in the log's thread-local id */
    assert_string_equal(r.body, "abc-123.X_y|abc-123.X_y");
    resp_free(&r);

    get("/rid", "X-Request-Id: bad id!\r\n", &r);
    assert_non_null(header(&r, "X-Request-Id", v, sizeof v));
    assert_true(uuid_valid(v, strlen(v)));
    snprintf(exp, sizeof exp, "%s|%s", v, v);
    assert_string_equal(r.body, exp);
    resp_free(&r);

    memset(longid, 'a', 129);
    longid[129] = '\0';
    snprintf(exp, sizeof exp, "X-Request-Id: %s\r\n", longid);
    get("/rid", exp, &r);
    assert_non_null(header(&r, "X-Request-Id", v, sizeof v));
    assert_true(uuid_valid(v, strlen(v)));
    resp_free(&r);
    longid[128] = '\0';                        /* 128 is still fine */
    snprintf(exp, sizeof exp, "X-Request-Id: %s\r\n", longid);
    get("/rid", exp, &r);
    assert_non_null(header(&r, "X-Request-Id", v, sizeof v));
    assert_string_equal(v, longid);
    resp_free(&r);

    /* error responses carry it too */
    get("/nope", "X-Request-Id: err-1\r\n", &r);
    assert_non_null(header(&r, "X-Request-Id", v, sizeof v));
    assert_string_equal(v, "err-1");
    resp_free(&r);
}

static void test_query(void **state)
{
    struct resp r;

    (void)state;
    get("/hello?name=J%C3%B6rg+X&name=ignored", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "hello J\xc3\xb6rg X");
    resp_free(&r);

    get("/hello?name=%zz", NULL, &r);
    assert_json_error(&r, 400, "invalid_request");
    resp_free(&r);

    {
        char target[MAX_URL];
        size_t n = (size_t)snprintf(target, sizeof target, "/hello?");
        int i;

        for (i = 0; i <= HTTP_MAX_PARAMS; i++)
            n += (size_t)snprintf(target + n, sizeof target - n, "%sp", i ? "&" : "");
        get(target, NULL, &r);
        assert_json_error(&r, 400, "invalid_request");
        assert_non_null(strstr(r.body, "too many"));
        resp_free(&r);
    }
}

static void test_form(void **state)
{
    struct resp r;

    (void)state;
    post("/form", "Application/X-WWW-Form-Urlencoded; charset=UTF-8", "b=2&a=x+y%21", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "x y!");
    resp_free(&r);

    post("/form", "application/json", "{}", &r);
    assert_json_error(&r, 400, "invalid_request");
    assert_non_null(strstr(r.body, "expected application/x-www-form-urlencoded"));
    resp_free(&r);

    post("/form", "application/x-www-form-urlencoded", "a=%4", &r);
    assert_json_error(&r, 400, "invalid_request");
    resp_free(&r);
}

static void test_cookies(void **state)
{
    struct resp r;
    char v[256];

    (void)state;
    get("/cookie", "Cookie: x=1;  sid=abc ; y=2\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "abc");
    assert_int_equal(count_headers(&r, "Set-Cookie"), 2);
    assert_non_null(header(&r, "Set-Cookie", v, sizeof v));
    assert_string_equal(v, "sid=new; Path=/; HttpOnly");    /* no Secure without TLS */
    assert_non_null(strstr(r.raw, "Set-Cookie: other=2\r\n"));
    resp_free(&r);

    get("/cookie", NULL, &r);
    assert_string_equal(r.body, "-");
    resp_free(&r);
}

static void test_no_response(void **state)
{
    struct resp r;

    (void)state;
    get("/nothing", NULL, &r);
    assert_json_error(&r, 500, "server_error");
    resp_free(&r);
}

/* 50 concurrent requests whose handlers suspend and are resumed 50 ms later
 * by other threads. With a pool of 2 MHD threads, more than 2 of them being
 * pending at once proves the workers were not blocked. */
struct client {
    pthread_t t;
    int i;
    int status;
    char body[64];
};

static void *client_slow(void *arg)
{
    struct client *c = arg;
    char req[256];
    struct resp r;

    snprintf(req, sizeof req, "GET /slow?i=%d HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
             c->i);
    if (exchange_fam(AF_INET, g_port, req, strlen(req), &r) == 0) {
        c->status = r.status;
        snprintf(c->body, sizeof c->body, "%s", r.body);
        resp_free(&r);
    }
    return NULL;
}

static void *client_instant(void *arg)
{
    struct client *c = arg;
    struct resp r;
    const char *req = "GET /instant HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";

    if (exchange_fam(AF_INET, g_port, req, strlen(req), &r) == 0) {
        c->status = r.status;
        snprintf(c->body, sizeof c->body, "%s", r.body);
        resp_free(&r);
    }
    return NULL;
}

static void test_suspend_concurrent(void **state)
{
    struct client cl[50];
    char exp[64];
    int i;

    (void)state;
    atomic_store(&g_max_pending, 0);
    for (i = 0; i < 50; i++) {
        memset(&cl[i], 0, sizeof cl[i]);
        cl[i].i = i;
        assert_int_equal(pthread_create(&cl[i].t, NULL, client_slow, &cl[i]), 0);
    }
    for (i = 0; i < 50; i++) {
        pthread_join(cl[i].t, NULL);
        assert_int_equal(cl[i].status, 200);
        snprintf(exp, sizeof exp, "slow %d", i);
        assert_string_equal(cl[i].body, exp);
    }
    assert_true(atomic_load(&g_max_pending) > 2);
    assert_int_equal(atomic_load(&g_pending), 0);

    /* resume before the handler even returned HTTP_SUSPEND */
    for (i = 0; i < 50; i++) {
        memset(&cl[i], 0, sizeof cl[i]);
        assert_int_equal(pthread_create(&cl[i].t, NULL, client_instant, &cl[i]), 0);
    }
    for (i = 0; i < 50; i++) {
        pthread_join(cl[i].t, NULL);
        assert_int_equal(cl[i].status, 200);
        assert_string_equal(cl[i].body, "instant");
    }
}

/* The access log and metrics are written in MHD's completion callback,
 * which may run just after the client has its response: poll. */
static bool log_has(void *arg)
{
    const char *const *needles = arg;
    char line[8192];
    bool found = false;
    FILE *f = fopen(g_logpath, "r");

    if (!f)
        return false;
    while (!found && fgets(line, sizeof line, f)) {
        size_t i;

        found = true;
        for (i = 0; needles[i]; i++)
            if (!strstr(line, needles[i]))
                found = false;
    }
    fclose(f);
    return found;
}

struct metric_wait {
    struct metric *m;
    const char *const *labels;
    double want;
};

static bool metric_reached(void *arg)
{
    struct metric_wait *w = arg;

    return metric_value(w->m, w->labels) >= w->want;
}

static void test_access_log_and_metrics(void **state)
{
    struct metric *reqs = metric_counter("refuge_http_requests_total", "", "route,status");
    const char *const hello200[] = { "hello", "200" };
    const char *const none404[] = { "-", "404" };
    double before = metric_value(reqs, hello200), before404 = metric_value(reqs, none404);
    struct metric_wait w = { reqs, hello200, before + 2 };
    struct metric_wait w404 = { reqs, none404, before404 + 1 };
    const char *const line_ok[] = { "\"msg\":\"request\"", "\"request_id\":\"log-check-1\"",
                                    "\"method\":\"GET\"", "\"path\":\"/hello\"",
                                    "\"status\":\"200\"", "\"route\":\"hello\"", "\"us\":",
                                    "\"bytes\":\"10\"", NULL };
    const char *const line_404[] = { "\"request_id\":\"log-check-2\"", "\"status\":\"404\"",
                                     "\"route\":\"-\"", NULL };
    struct resp r;
    struct buf text;

    (void)state;
    get("/hello?name=x", "X-Request-Id: log-check-1\r\n", &r);   /* "hello x" is 7 bytes */
    resp_free(&r);
    get("/hello?name=xyz", "X-Request-Id: log-check-1\r\n", &r); /* 9 */
    resp_free(&r);
    get("/hello?name=wxyz", "X-Request-Id: log-check-1\r\n", &r); /* 10 */
    resp_free(&r);
    get("/missing", "X-Request-Id: log-check-2\r\n", &r);
    resp_free(&r);
    assert_true(wait_for(metric_reached, &w, 5000));
    assert_true(wait_for(metric_reached, &w404, 5000));
    assert_true(wait_for(log_has, (void *)line_ok, 5000));
    assert_true(wait_for(log_has, (void *)line_404, 5000));

    buf_init(&text, 1 << 20);
    assert_int_equal(metrics_render(&text), 0);
    assert_non_null(strstr(buf_cstr(&text), "refuge_http_request_duration_seconds_bucket"));
    assert_non_null(strstr(buf_cstr(&text), "le=\"0.0005\""));
    assert_non_null(strstr(buf_cstr(&text), "refuge_http_inflight"));
    buf_free(&text);
}

static void test_ipv6_and_start_errors(void **state)
{
    struct http_config cfg = test_config("[::1]:0");
    struct http_server *s;
    struct resp r;
    char err[256], path[700];
    FILE *f;

    (void)state;
    s = http_server_start(&cfg, g_routes, NROUTES, err, sizeof err);
    assert_non_null(s);
    assert_true(http_server_port(s) > 0);
    {
        const char *q = "GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";

        assert_int_equal(exchange_fam(AF_INET6, http_server_port(s), q, strlen(q), &r), 0);
    }
    assert_int_equal(r.status, 200);
    resp_free(&r);
    http_server_stop(s, 1000);

    cfg.listen = "127.0.0.1";
    assert_null(http_server_start(&cfg, g_routes, NROUTES, err, sizeof err));
    assert_non_null(strstr(err, "invalid listen address"));
    cfg.listen = "[::1:80";
    assert_null(http_server_start(&cfg, g_routes, NROUTES, err, sizeof err));
    cfg.listen = "127.0.0.1:70000";
    assert_null(http_server_start(&cfg, g_routes, NROUTES, err, sizeof err));
    cfg.listen = "::1:80";
    assert_null(http_server_start(&cfg, g_routes, NROUTES, err, sizeof err));

    /* the port is taken */
    snprintf(path, sizeof path, "127.0.0.1:%d", g_port);
    cfg.listen = path;
    assert_null(http_server_start(&cfg, g_routes, NROUTES, err, sizeof err));
    assert_non_null(strstr(err, "cannot listen on"));

    /* TLS files: both or neither, readable */
    cfg.listen = "127.0.0.1:0";
    cfg.tls_cert = "/nonexistent/cert.pem";
    assert_null(http_server_start(&cfg, g_routes, NROUTES, err, sizeof err));
    assert_non_null(strstr(err, "tls_cert and tls_key"));
    cfg.tls_key = "/nonexistent/key.pem";
    assert_null(http_server_start(&cfg, g_routes, NROUTES, err, sizeof err));
    assert_non_null(strstr(err, "cannot read tls_cert /nonexistent/cert.pem"));
    snprintf(path, sizeof path, "%s/empty.pem", g_tmpdir);
    f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    cfg.tls_cert = path;
    assert_null(http_server_start(&cfg, g_routes, NROUTES, err, sizeof err));
    assert_non_null(strstr(err, "empty file"));

    /* bad route patterns */
    {
        const struct http_route bad[] = { { "GET", "/a/{x", h_hello, 0, "bad", NULL } };
        const struct http_route many[] = {
            { "GET", "/{a}/{b}/{c}/{d}/{e}", h_hello, 0, "many", NULL } };

        cfg = test_config("127.0.0.1:0");
        assert_null(http_server_start(&cfg, bad, 1, err, sizeof err));
        assert_non_null(strstr(err, "/a/{x"));
        assert_null(http_server_start(&cfg, many, 1, err, sizeof err));
    }
}

static void test_tls(void **state)
{
    char cert[700], key[700], cmd[2400], err[256], line[1024];
    struct http_config cfg = test_config("127.0.0.1:0");
    struct http_server *s;
    bool secure = false, status200 = false, body = false;
    FILE *p;

    (void)state;
    snprintf(cert, sizeof cert, "%s/cert.pem", g_tmpdir);
    snprintf(key, sizeof key, "%s/key.pem", g_tmpdir);
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout '%s' -out '%s' -days 1 -subj /CN=localhost >/dev/null 2>&1", key, cert);
    assert_int_equal(system(cmd), 0);
    cfg.tls_cert = cert;
    cfg.tls_key = key;
    s = http_server_start(&cfg, g_routes, NROUTES, err, sizeof err);
    if (!s)
        fail_msg("TLS start failed: %s", err);

    snprintf(cmd, sizeof cmd, "curl -sk -i --max-time 10 -H 'Cookie: sid=tls' "
                              "https://127.0.0.1:%d/cookie 2>&1", http_server_port(s));
    p = popen(cmd, "r");
    assert_non_null(p);
    while (fgets(line, sizeof line, p)) {
        if (strcasecmp(line, "set-cookie: sid=new; Path=/; HttpOnly; Secure\r\n") == 0)
            secure = true;
        if (strncmp(line, "HTTP/", 5) == 0 && strstr(line, " 200"))
            status200 = true;
        if (strcmp(line, "tls") == 0)
            body = true;
    }
    pclose(p);
    http_server_stop(s, 1000);
    assert_true(status200);
    assert_true(secure);
    assert_true(body);
}

/* Graceful stop: a suspended request in flight finishes before the daemon
 * goes away; new connections are refused after quiesce. */
static struct http_server *g_s2;
static int g_s2_port;

static void *client_slow300(void *arg)
{
    struct client *c = arg;
    struct resp r;
    const char *req = "GET /slow300?i=q HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";

    if (exchange_fam(AF_INET, g_s2_port, req, strlen(req), &r) == 0) {
        c->status = r.status;
        snprintf(c->body, sizeof c->body, "%s", r.body);
        resp_free(&r);
    }
    return NULL;
}

static bool one_inflight(void *arg)
{
    return http_server_inflight(arg) == 1;
}

static void test_quiesce_stop(void **state)
{
    struct http_config cfg = test_config("127.0.0.1:0");
    struct client c;
    char err[256];
    int fd;

    (void)state;
    memset(&c, 0, sizeof c);
    g_s2 = http_server_start(&cfg, g_routes, NROUTES, err, sizeof err);
    assert_non_null(g_s2);
    g_s2_port = http_server_port(g_s2);
    assert_int_equal(http_server_inflight(g_s2), 0);
    assert_int_equal(pthread_create(&c.t, NULL, client_slow300, &c), 0);
    assert_true(wait_for(one_inflight, g_s2, 5000));

    http_server_quiesce(g_s2);
    fd = connect_to(AF_INET, g_s2_port);
    assert_int_equal(fd, -1);                 /* listening socket is closed */
    assert_int_equal(http_server_inflight(g_s2), 1);

    http_server_stop(g_s2, 10000);            /* returns once the request completed */
    pthread_join(c.t, NULL);
    assert_int_equal(c.status, 200);
    assert_string_equal(c.body, "slow q");
}

/* Stop with a request that stays suspended past the timeout: the client is
 * answered 503 (or the connection closed), the daemon stops without a
 * libmicrohttpd panic, and the late http_resume from the "other thread"
 * after the server is gone is harmless (ASan checks the memory side). */
static struct http_server *g_s3;
static int g_s3_port;

static void *client_hang(void *arg)
{
    struct client *c = arg;
    struct resp r;
    const char *req = "GET /hang HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";

    c->status = -1;
    if (exchange_fam(AF_INET, g_s3_port, req, strlen(req), &r) == 0) {
        c->status = r.status;
        snprintf(c->body, sizeof c->body, "%.60s", r.body);
        resp_free(&r);
    }
    return NULL;
}

static void test_stop_abandons(void **state)
{
    struct http_config cfg = test_config("127.0.0.1:0");
    struct http_request *req;
    struct client c;
    char err[256];

    (void)state;
    memset(&c, 0, sizeof c);
    atomic_store(&g_hung, NULL);
    g_s3 = http_server_start(&cfg, g_routes, NROUTES, err, sizeof err);
    assert_non_null(g_s3);
    g_s3_port = http_server_port(g_s3);
    assert_int_equal(pthread_create(&c.t, NULL, client_hang, &c), 0);
    assert_true(wait_for(one_inflight, g_s3, 5000));
    while (!atomic_load(&g_hung))
        time_sleep_us(1000);

    http_server_stop(g_s3, 100);
    pthread_join(c.t, NULL);
    print_message("abandoned request: status %d (0 = connection closed)\n", c.status);
    assert_true(c.status == 503 || c.status == 0);
    if (c.status == 503)
        assert_non_null(strstr(c.body, "temporarily_unavailable"));

    /* the other thread finishes late: still safe */
    req = atomic_load(&g_hung);
    http_respond(req, 200, "text/plain", "late", 4);
    assert_non_null(http_header(req, "Host"));
    http_resume(req);
}

/* ------------------------------------------------------------------ setup */

static int group_setup(void **state)
{
    struct http_config cfg = test_config("127.0.0.1:0");
    const char *base = getenv("REFUGE_TEST_TMP");
    char err[256];

    (void)state;
    snprintf(g_tmpdir, sizeof g_tmpdir, "%s/test_http_server.%d", base ? base : "/tmp",
             (int)getpid());
    if (base)
        mkdir(base, 0700);
    if (mkdir(g_tmpdir, 0700) < 0 && errno != EEXIST)
        return -1;
    snprintf(g_logpath, sizeof g_logpath, "%s/log.jsonl", g_tmpdir);
    unlink(g_logpath);
    if (log_init(LOG_LVL_INFO, true, g_logpath) < 0)
        return -1;

    g_srv = http_server_start(&cfg, g_routes, NROUTES, err, sizeof err);
    if (!g_srv) {
        fprintf(stderr, "start: %s\n", err);
        return -1;
    }
    g_port = http_server_port(g_srv);
    return g_port > 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    char cmd[700];

    (void)state;
    http_server_stop(g_srv, 2000);
    log_close();
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ok),
        cmocka_unit_test(test_not_found),
        cmocka_unit_test(test_method_not_allowed),
        cmocka_unit_test(test_body_limits),
        cmocka_unit_test(test_url_limit),
        cmocka_unit_test(test_header_limit),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_tenants),
        cmocka_unit_test(test_request_id),
        cmocka_unit_test(test_query),
        cmocka_unit_test(test_form),
        cmocka_unit_test(test_cookies),
        cmocka_unit_test(test_no_response),
        cmocka_unit_test(test_suspend_concurrent),
        cmocka_unit_test(test_access_log_and_metrics),
        cmocka_unit_test(test_ipv6_and_start_errors),
        cmocka_unit_test(test_tls),
        cmocka_unit_test(test_quiesce_stop),
        cmocka_unit_test(test_stop_abandons),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
