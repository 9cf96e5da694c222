/*
 * login — HTML pages of the browser sign-in (login form, logout
 * confirmation, messages), tenant branding, security headers and CSRF
 * tokens. The rules (what is escaped, which headers, how CSRF works) are in
 * login.h; this file is the templates and the plumbing.
 */
#include "oauth/login.h"

#include <errno.h>
#include <sodium.h>
#include <string.h>

#include "artifacts/artifacts.h"
#include "core/base64.h"
#include "core/log.h"
#include "core/rand.h"
#include "core/str.h"
#include "crypto/secret.h"
#include "identity/client.h"

#define DEFAULT_COLOR "#1f6feb"
#define CSRF_VALUE_LEN 43

/* ------------------------------------------------------------- escaping */

int login_html_escape(struct buf *b, const char *s, size_t n)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        const char *rep = NULL;
        switch (s[i]) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        case '\0': rep = "&#xFFFD;"; break;
        default: break;
        }
        if (!rep)
            continue;
        if (i > run && buf_append(b, s + run, i - run) < 0)
            return -E2BIG;
        if (buf_puts(b, rep) < 0)
            return -E2BIG;
        run = i + 1;
    }
    if (n > run)
        return buf_append(b, s + run, n - run);
    return 0;
}

static void esc(struct buf *b, const char *s)
{
    if (s)
        login_html_escape(b, s, strlen(s));
}

/* ------------------------------------------------------------- branding */

static bool color_valid(const char *s)
{
    size_t n = strlen(s);
    if (s[0] != '#' || (n != 4 && n != 7))
        return false;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return false;
    }
    return true;
}

static bool text_valid(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

/* scheme://authority of an absolute http(s) URL, when the authority is
 * plain enough to be written into a CSP source list; NULL otherwise. */
static const char *url_origin(const char *url, struct arena *a)
{
    size_t start;
    if (strncmp(url, "https://", 8) == 0)
        start = 8;
    else if (strncmp(url, "http://", 7) == 0)
        start = 7;
    else
        return NULL;
    size_t end = start;
    while (url[end] && url[end] != '/' && url[end] != '?')
        end++;
    if (end == start)
        return NULL;
    for (size_t i = start; i < end; i++) {
        char c = url[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '-' || c == ':' || c == '[' || c == ']'))
            return NULL;
    }
    return arena_strndup(a, url, end);
}

/* Takes the artifact's [branding] values that pass our own checks too (the
 * colour goes into CSS and the logo's origin into the CSP). */
static void brand_apply(const struct artifact_tenant *at, struct arena *a, struct branding *out)
{
    if (at->title && text_valid(at->title, LOGIN_BRAND_TITLE_MAX))
        out->title = arena_strdup(a, at->title);
    if (at->primary_color && color_valid(at->primary_color))
        out->primary_color = arena_strdup(a, at->primary_color);
    if (at->logo_url && client_redirect_uri_valid(at->logo_url, strlen(at->logo_url)) &&
        url_origin(at->logo_url, a))
        out->logo_url = arena_strdup(a, at->logo_url);
    if (at->footer_text && text_valid(at->footer_text, LOGIN_BRAND_FOOTER_MAX))
        out->footer_text = arena_strdup(a, at->footer_text);
}

void login_branding_parse(const char *text, size_t n, const struct cfg_kvlist *region, struct arena *a,
                          struct branding *out)
{
    struct artifact_tenant at;
    struct cfg_error err;

    /* the artifacts module's own parser: same schema, same ${region.KEY}
     * resolution as the importer; an artifact it refuses brands nothing */
    if (artifact_tenant_parse("tenants/branding.conf", text, n, region, &at, &err) == 0)
        brand_apply(&at, a, out);
    else
        log_warn("login: tenant artifact unreadable, default branding", "error", err.msg, NULL);
    artifact_tenant_free(&at);
}

void login_branding_load(struct node *n, struct db *db, const struct tenant *t, struct arena *a,
                         struct branding *out)
{
    out->title = t->display_name && *t->display_name ? t->display_name : t->name;
    out->primary_color = DEFAULT_COLOR;
    out->logo_url = NULL;
    out->footer_text = NULL;

    struct db_stmt *st = db_prepare(db, "SELECT content FROM artifacts WHERE path = $1");
    if (!st)
        return;
    db_bind_text(st, 1, arena_sprintf(a, "tenants/%s.conf", t->name), -1);
    if (db_step(st) == DB_ROW) {
        size_t len = db_col_bytes(st, 0);
        const void *p = db_col_blob(st, 0);
        if (p && len > 0 && len <= 256 * 1024)
            login_branding_parse(p, len, n ? &n->conf->region : NULL, a, out);
    }
    db_done(st);
}

/* ---------------------------------------------------------------- pages */

static const char css[] =
    "*{box-sizing:border-box}"
    "body{margin:0;font:16px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;background:#f4f5f7;"
    "color:#1b1f24;display:flex;flex-direction:column;min-height:100vh}"
    "main{flex:1;display:flex;align-items:center;justify-content:center;padding:2rem 1rem}"
    ".card{background:#fff;width:100%;max-width:24rem;padding:2rem;border-radius:.5rem;"
    "box-shadow:0 1px 3px rgba(0,0,0,.2);border-top:4px solid var(--brand)}"
    ".logo{display:block;max-height:3rem;max-width:100%;margin:0 auto 1rem}"
    "h1{font-size:1.4rem;margin:0 0 .25rem;text-align:center}"
    ".sub{margin:0 0 1.5rem;text-align:center;color:#57606a}"
    "label{display:block;font-weight:600;margin:1rem 0 .25rem}"
    "input[type=text],input[type=password]{width:100%;padding:.6rem .75rem;font:inherit;"
    "border:1px solid #8c959f;border-radius:.375rem}"
    "input[aria-invalid=true]{border-color:#cf222e}"
    "input:focus,button:focus{outline:3px solid var(--brand);outline-offset:2px}"
    "button{margin-top:1.5rem;width:100%;padding:.7rem;font:inherit;font-weight:600;color:#fff;"
    "background:var(--brand);border:0;border-radius:.375rem;cursor:pointer}"
    ".error{margin:0 0 1rem;padding:.75rem 1rem;border-radius:.375rem;background:#ffebe9;"
    "border:1px solid #cf222e;color:#82071e}"
    "footer{text-align:center;padding:1rem;color:#57606a;font-size:.875rem}";

static void page_head(struct buf *b, const struct branding *brand, const char *title, const char *nonce)
{
    buf_puts(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                "<meta name=\"referrer\" content=\"no-referrer\">\n<title>");
    esc(b, title);
    buf_puts(b, " \xc2\xb7 ");
    esc(b, brand->title);
    buf_puts(b, "</title>\n<style nonce=\"");
    buf_puts(b, nonce);
    buf_puts(b, "\">:root{--brand:");
    buf_puts(b, brand->primary_color);   /* validated: # and hex digits */
    buf_puts(b, "}");
    buf_puts(b, css);
    buf_puts(b, "</style>\n</head>\n<body>\n<main>\n<div class=\"card\">\n");
    if (brand->logo_url) {
        buf_puts(b, "<img class=\"logo\" src=\"");
        esc(b, brand->logo_url);
        buf_puts(b, "\" alt=\"");
        esc(b, brand->title);
        buf_puts(b, "\">\n");
    }
}

static void page_foot(struct buf *b, const struct branding *brand)
{
    buf_puts(b, "</div>\n</main>\n");
    if (brand->footer_text) {
        buf_puts(b, "<footer>");
        esc(b, brand->footer_text);
        buf_puts(b, "</footer>\n");
    }
    buf_puts(b, "</body>\n</html>\n");
}

static void hidden(struct buf *b, const char *name, const char *value)
{
    buf_puts(b, "<input type=\"hidden\" name=\"");
    esc(b, name);
    buf_puts(b, "\" value=\"");
    esc(b, value);
    buf_puts(b, "\">\n");
}

int login_render(struct buf *b, const struct login_page *p, const char *nonce)
{
    const char *invalid = p->error ? " aria-invalid=\"true\" aria-describedby=\"login-error\"" : "";

    page_head(b, p->brand, "Sign in", nonce);
    buf_puts(b, "<h1>Sign in to ");
    esc(b, p->brand->title);
    buf_puts(b, "</h1>\n");
    if (p->client_name && *p->client_name) {
        buf_puts(b, "<p class=\"sub\">to continue to ");
        esc(b, p->client_name);
        buf_puts(b, "</p>\n");
    } else {
        buf_puts(b, "<p class=\"sub\">Enter your username and password.</p>\n");
    }
    if (p->error) {
        buf_puts(b, "<div class=\"error\" role=\"alert\" id=\"login-error\">");
        esc(b, p->error);
        buf_puts(b, "</div>\n");
    }
    buf_puts(b, "<form method=\"post\" action=\"");
    esc(b, p->action);
    buf_puts(b, "\">\n");
    for (size_t i = 0; p->carry && i < p->carry->n; i++)
        hidden(b, p->carry->items[i].name, p->carry->items[i].value);
    hidden(b, LOGIN_CSRF_FIELD, p->csrf);
    buf_puts(b, "<label for=\"username\">Username</label>\n"
                "<input id=\"username\" name=\"username\" type=\"text\" autocomplete=\"username\" "
                "autocapitalize=\"none\" spellcheck=\"false\" required autofocus maxlength=\"256\" value=\"");
    esc(b, p->username);
    buf_puts(b, "\"");
    buf_puts(b, invalid);
    buf_puts(b, ">\n<label for=\"password\">Password</label>\n"
                "<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" "
                "required maxlength=\"1024\"");
    buf_puts(b, invalid);
    buf_puts(b, ">\n<button type=\"submit\">Sign in</button>\n</form>\n");
    page_foot(b, p->brand);
    return b->len >= b->limit ? -E2BIG : 0;
}

static const char *new_nonce(struct arena *a)
{
    char *n = arena_alloc(a, B64URL_ENCLEN(16));
    rand_token(n, 16);
    return n;
}

void login_security_headers(struct http_request *req, const char *nonce, const char *img_origin)
{
    const char *csp = arena_sprintf(&req->arena,
                                    "default-src 'none'; style-src%s%s%s; img-src 'self'%s%s; "
                                    "frame-ancestors 'none'; base-uri 'none'",
                                    nonce ? " 'nonce-" : " 'none'", nonce ? nonce : "", nonce ? "'" : "",
                                    img_origin ? " " : "", img_origin ? img_origin : "");
    http_add_header(req, "Content-Security-Policy", csp);
    http_add_header(req, "X-Frame-Options", "DENY");
    http_add_header(req, "Referrer-Policy", "no-referrer");
    http_add_header(req, "X-Content-Type-Options", "nosniff");
    http_add_header(req, "Cache-Control", "no-store");
    http_add_header(req, "Pragma", "no-cache");
}

static void respond_html(struct http_request *req, int status, struct buf *b, const char *nonce,
                         const struct branding *brand)
{
    const char *origin = brand && brand->logo_url ? url_origin(brand->logo_url, &req->arena) : NULL;
    login_security_headers(req, nonce, origin);
    if (b->len >= b->limit) {
        log_error("login: page over its size limit", NULL);
        http_respond(req, 500, "text/plain; charset=utf-8", "page too large\n", 15);
        return;
    }
    http_respond(req, status, "text/html; charset=utf-8", b->data, b->len);
}

void login_respond_page(struct http_request *req, int status, const struct login_page *p)
{
    struct buf b;
    const char *nonce = new_nonce(&req->arena);
    buf_init(&b, LOGIN_PAGE_LIMIT);
    login_render(&b, p, nonce);
    respond_html(req, status, &b, nonce, p->brand);
    buf_free(&b);
}

void login_respond_message(struct http_request *req, int status, const struct branding *brand,
                           const char *heading, const char *message)
{
    struct branding fallback = { "Refuge", DEFAULT_COLOR, NULL, NULL };
    struct buf b;
    const char *nonce = new_nonce(&req->arena);

    if (!brand)
        brand = &fallback;
    buf_init(&b, LOGIN_PAGE_LIMIT);
    page_head(&b, brand, heading, nonce);
    buf_puts(&b, "<h1>");
    esc(&b, heading);
    buf_puts(&b, "</h1>\n<p class=\"sub\"");
    if (status >= 400)
        buf_puts(&b, " role=\"alert\"");
    buf_puts(&b, ">");
    esc(&b, message);
    buf_puts(&b, "</p>\n");
    page_foot(&b, brand);
    respond_html(req, status, &b, nonce, brand);
    buf_free(&b);
}

void login_respond_logout_confirm(struct http_request *req, const struct branding *brand, const char *action,
                                  const struct http_params *carry, const char *csrf)
{
    struct buf b;
    const char *nonce = new_nonce(&req->arena);

    buf_init(&b, LOGIN_PAGE_LIMIT);
    page_head(&b, brand, "Sign out", nonce);
    buf_puts(&b, "<h1>Sign out of ");
    esc(&b, brand->title);
    buf_puts(&b, "?</h1>\n<p class=\"sub\">You will be signed out of every application that uses this "
                 "sign-in.</p>\n<form method=\"post\" action=\"");
    esc(&b, action);
    buf_puts(&b, "\">\n");
    for (size_t i = 0; carry && i < carry->n; i++)
        hidden(&b, carry->items[i].name, carry->items[i].value);
    hidden(&b, LOGIN_CSRF_FIELD, csrf);
    hidden(&b, "confirm", "yes");
    buf_puts(&b, "<button type=\"submit\">Sign out</button>\n</form>\n");
    page_foot(&b, brand);
    respond_html(req, 200, &b, nonce, brand);
    buf_free(&b);
}

/* ------------------------------------------------------------- requests */

const char *login_tenant_prefix(struct http_request *req)
{
    if (!req->tenant_explicit && strcmp(req->tenant, TENANT_DEFAULT) == 0)
        return "";
    return arena_sprintf(&req->arena, "/t/%s", req->tenant);
}

bool login_cookie_secure(struct node *n, struct http_request *req)
{
    return req->tls || (n->conf->public_url && strncmp(n->conf->public_url, "https://", 8) == 0);
}

/* ------------------------------------------------------------------ CSRF */

static const char *cookie_name(const char *tenant, struct arena *a)
{
    if (strcmp(tenant, TENANT_DEFAULT) == 0)
        return LOGIN_CSRF_COOKIE;
    return arena_sprintf(a, LOGIN_CSRF_COOKIE "_%s", tenant);
}

static const char *cookie_path(const char *tenant, struct arena *a)
{
    if (strcmp(tenant, TENANT_DEFAULT) == 0)
        return "/";
    return arena_sprintf(a, "/t/%s", tenant);
}

static bool b64url_token(const char *s, size_t want)
{
    if (!s || strlen(s) != want)
        return false;
    for (size_t i = 0; i < want; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
              c == '_'))
            return false;
    }
    return true;
}

const char *login_csrf_cookie(struct node *n, struct http_request *req, const char *tenant)
{
    const char *name = cookie_name(tenant, &req->arena);
    const char *v = http_cookie(req, name);
    if (b64url_token(v, CSRF_VALUE_LEN))
        return v;
    char *fresh = arena_alloc(&req->arena, B64URL_ENCLEN(32));
    rand_token(fresh, 32);
    const char *attrs = arena_sprintf(&req->arena, "Path=%s; HttpOnly; SameSite=Lax%s",
                                      cookie_path(tenant, &req->arena),
                                      login_cookie_secure(n, req) && !req->tls ? "; Secure" : "");
    http_set_cookie(req, name, fresh, attrs);
    return fresh;
}

const char *login_csrf_token(struct node *n, const char *purpose, const char *tenant, const char *cookie,
                             struct arena *a)
{
    static const char label[] = "refuge-csrf-v1";
    unsigned char key[crypto_auth_hmacsha256_BYTES];
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_state st;

    /* K = HMAC(master key, label): the master key itself never keys anything else here */
    crypto_auth_hmacsha256(key, (const unsigned char *)label, sizeof(label) - 1, n->master_key);
    crypto_auth_hmacsha256_init(&st, key, sizeof(key));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)purpose, strlen(purpose));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)"|", 1);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)tenant, strlen(tenant));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)"|", 1);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)cookie, strlen(cookie));
    crypto_auth_hmacsha256_final(&st, mac);
    char *out = arena_alloc(a, B64URL_ENCLEN(sizeof(mac)));
    b64url_encode(mac, sizeof(mac), out);
    crypto_wipe(key, sizeof(key));
    return out;
}

bool login_csrf_check(struct node *n, struct http_request *req, const char *purpose, const char *tenant,
                      const char *presented)
{
    const char *cookie = http_cookie(req, cookie_name(tenant, &req->arena));
    if (!b64url_token(cookie, CSRF_VALUE_LEN) || !presented)
        return false;
    const char *want = login_csrf_token(n, purpose, tenant, cookie, &req->arena);
    return str_ct_eq(want, strlen(want), presented, strlen(presented));
}
