/*
 * login — the HTML side of the browser sign-in: the login page, the logout
 * confirmation, message and error pages, the tenant's branding, the
 * security headers every page carries, and the CSRF tokens of its forms.
 *
 * Pages are rendered on the server with every interpolated value
 * HTML-escaped (login_html_escape) and work without JavaScript; there is no
 * script at all, and the Content-Security-Policy says so:
 *
 *   default-src 'none'; style-src 'nonce-N'; img-src 'self' [logo origin];
 *   frame-ancestors 'none'; base-uri 'none'
 *
 * (the one <style> element carries a fresh nonce per response; form-action
 * is left out on purpose: browsers apply it to the redirect that follows a
 * successful sign-in, which goes to the client's redirect_uri). Also
 * X-Frame-Options: DENY, Referrer-Policy: no-referrer, Cache-Control:
 * no-store, X-Content-Type-Options: nosniff.
 *
 * CSRF: signed double submit. A per-browser random cookie (`refuge_csrf`,
 * per tenant like the session cookie, HttpOnly, SameSite=Lax) and, in each
 * form, HMAC-SHA256(K, purpose "|" tenant "|" cookie) where K is derived
 * from the node's master key. A cross-site page can neither read the cookie
 * nor compute the token, and a cookie planted by a sibling domain is useless
 * without K. Because the master key is the same in every region, a form
 * rendered before a failover still submits after it.
 *
 * Branding: from the tenant's artifact (the `artifacts` row
 * "tenants/NAME.conf", replication class `config`, parsed by the artifacts
 * module), section [branding]: title, primary_color (#rrggbb), logo_url
 * (absolute http(s) URL), footer_text. Missing or invalid values fall back
 * to defaults (the title to the tenant's display name, a blue colour, no
 * logo, no footer).
 */
#ifndef REFUGE_OAUTH_LOGIN_H
#define REFUGE_OAUTH_LOGIN_H

#include <stdbool.h>
#include <stddef.h>
#include "core/arena.h"
#include "core/buf.h"
#include "core/config.h"
#include "http/http.h"
#include "identity/tenant.h"
#include "node/node.h"
#include "store/db.h"

#define LOGIN_PAGE_LIMIT (128 * 1024)
#define LOGIN_CSRF_COOKIE "refuge_csrf"
#define LOGIN_CSRF_FIELD "csrf_token"
#define LOGIN_BRAND_TITLE_MAX 256
#define LOGIN_BRAND_FOOTER_MAX 1024

struct branding {
    const char *title;
    const char *primary_color;   /* "#rrggbb" or "#rgb" */
    const char *logo_url;        /* NULL: none */
    const char *footer_text;     /* NULL: none */
};

/* Branding of tenant t (defaults where the artifact says nothing valid);
 * ${region.KEY} references resolve against the node's [region]. */
void login_branding_load(struct node *n, struct db *db, const struct tenant *t, struct arena *a,
                         struct branding *out);
/* Parses a tenant artifact's text (artifacts/artifacts.h) and takes its
 * [branding] values over *out; an invalid artifact changes nothing. */
void login_branding_parse(const char *text, size_t n, const struct cfg_kvlist *region, struct arena *a,
                          struct branding *out);

/* Appends s[0..n) with & < > " ' escaped. 0 or -E2BIG. */
int login_html_escape(struct buf *b, const char *s, size_t n);

struct login_page {
    const struct branding *brand;
    const char *action;          /* form action (a path) */
    const char *client_name;     /* "to continue to ..." (may be NULL) */
    const struct http_params *carry;   /* hidden fields: the authorization request */
    const char *csrf;            /* the form's CSRF token */
    const char *username;        /* prefilled (login_hint or what was typed), may be NULL */
    const char *error;           /* message shown above the form, or NULL */
};

/* The login page, complete HTML, with the <style> nonce given. */
int login_render(struct buf *b, const struct login_page *p, const char *nonce);

/* Answers with a rendered page and the security headers. */
void login_respond_page(struct http_request *req, int status, const struct login_page *p);
/* A page with a heading and a message (errors, "signed out", 429). */
void login_respond_message(struct http_request *req, int status, const struct branding *brand,
                           const char *heading, const char *message);
/* The logout confirmation: a form that POSTs `carry` + CSRF to action. */
void login_respond_logout_confirm(struct http_request *req, const struct branding *brand, const char *action,
                                  const struct http_params *carry, const char *csrf);
/* Security headers alone (for redirects too). */
void login_security_headers(struct http_request *req, const char *nonce, const char *img_origin);

/* The path prefix of the request's tenant: "" or "/t/NAME" (arena). */
const char *login_tenant_prefix(struct http_request *req);
/* True when cookies must be Secure: TLS, or an https public_url. */
bool login_cookie_secure(struct node *n, struct http_request *req);

/* The browser's CSRF cookie value for the tenant, set on the response when
 * the request had none (or a malformed one). Arena string. */
const char *login_csrf_cookie(struct node *n, struct http_request *req, const char *tenant);
/* The form token for (purpose, tenant, cookie): base64url, 43 characters. */
const char *login_csrf_token(struct node *n, const char *purpose, const char *tenant, const char *cookie,
                             struct arena *a);
/* True when the request carries the CSRF cookie and a matching form token. */
bool login_csrf_check(struct node *n, struct http_request *req, const char *purpose, const char *tenant,
                      const char *presented);

#endif
