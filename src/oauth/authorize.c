/*
 * authorize — the browser half of the authorization code flow:
 * GET/POST /oauth2/authorize (RFC 6749 §4.1, OIDC Core §3.1.2, RFC 7636,
 * RFC 9207) and POST /oauth2/login, the login form's target.
 *
 *   browser -> /oauth2/authorize?client_id&redirect_uri&code_challenge...
 *     request checked (pure parser below, then client, redirect_uri,
 *     grant, scope, PKCE against the store);
 *     signed-in (SSO cookie, session row valid, user active) and neither
 *       prompt=login nor an exceeded max_age?
 *         yes -> write job: auth_codes row (+ last_seen) -> 302 ?code&state&iss
 *         no, prompt=none -> 302 ?error=login_required
 *         no -> 200 login page (the request travels in hidden fields)
 *   browser -> POST /oauth2/login (request + username + password + CSRF)
 *     request checked again (the form is untrusted input too), CSRF token,
 *     rate limit (per client IP and tenant) -> worker pool: argon2id
 *     -> write job: new session row (the old one, if any, deleted: no
 *        session fixation), lockout bookkeeping, auth_codes row
 *     -> 302 ?code&state&iss with Set-Cookie, or the form again with a
 *        message.
 *     A user name DOMAIN/username whose DOMAIN is one of the tenant's LDAP
 *     userstores (ldap/userstore.h) goes to that store's pool instead of
 *     argon2id (search, then bind as the user; bounded by the store's
 *     timeout); the session and the code then carry the directory user's
 *     id ("ldap:STORE:..."), and the code grant reads the user from the
 *     directory again. A directory that cannot answer gets the form again
 *     with a 503, never a hung worker.
 *
 * Errors: a request whose client or redirect_uri cannot be trusted gets an
 * HTML page (400) and is never redirected; every other error is redirected
 * to the registered redirect_uri with error, error_description, state and
 * iss (RFC 9207).
 *
 * Messages on the login form never say whether a user name exists. A locked
 * or disabled account is named as such only when the right password was
 * given (user_auth is asked without lockout so that it reports the password
 * check, and the lock is judged here); otherwise every refusal reads "the
 * user name or password is incorrect". Every path costs one argon2id.
 *
 * Codes: 256 random bits; only their SHA-256 is stored (auth_codes, class
 * `tokens`), bound to tenant, client, redirect_uri, PKCE challenge, nonce,
 * user, auth_time and the session's sid; valid for the tenant's code_ttl.
 */
#include "oauth/authorize.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "core/base64.h"
#include "core/log.h"
#include "core/str.h"
#include "core/timeutil.h"
#include "identity/client.h"
#include "identity/user_auth.h"
#include "ldap/userstore.h"
#include "oauth/login.h"
#include "oauth/oauth_internal.h"
#include "oauth/ratelimit.h"
#include "oauth/session.h"

/* Login POSTs per (client IP, tenant): 10 a minute, bursts of 5. Only
 * POSTs that would run argon2id count (after the CSRF check). The key is
 * the TCP peer address: behind a front door that is the proxy's, until the
 * HTTP layer learns to trust X-Forwarded-For from configured proxies. */
#define LOGIN_RATE_PER_S (10.0 / 60.0)
#define LOGIN_RATE_BURST 5.0
#define LOGIN_RATE_SLOTS 4096

#define STANDBY_MSG "this node is a standby; sign-in happens in the active region"

/* =============================================================== parser */

static int page_err(struct oauth_authz_error *err, const char *desc)
{
    err->redirect = false;
    err->error = "invalid_request";
    err->description = desc;
    return -EINVAL;
}

static int redir_err(struct oauth_authz_error *err, const char *code, const char *desc)
{
    err->redirect = true;
    err->error = code;
    err->description = desc;
    return -EINVAL;
}

struct param_rule {
    const char *name;
    size_t max;
};

/* The parameters this endpoint defines: each may appear once. */
static const struct param_rule rules[] = {
    { "response_type", 64 },
    { "scope", OAUTH_MAX_SCOPE },
    { "state", OAUTH_MAX_STATE },
    { "nonce", OAUTH_MAX_NONCE },
    { "code_challenge", OAUTH_MAX_AUTHZ_PARAM },
    { "code_challenge_method", 64 },
    { "prompt", 256 },
    { "max_age", 32 },
    { "login_hint", OAUTH_MAX_LOGIN_HINT },
    { "response_mode", 64 },
    { "request", OAUTH_MAX_AUTHZ_PARAM },
    { "request_uri", OAUTH_MAX_AUTHZ_PARAM },
    { "id_token_hint", OAUTH_MAX_AUTHZ_PARAM },
    { "display", 64 },
    { "ui_locales", 256 },
    { "claims_locales", 256 },
    { "acr_values", 1024 },
    { "claims", OAUTH_MAX_AUTHZ_PARAM },
};

static bool has_nul(const struct http_param *p)
{
    return memchr(p->value, '\0', p->value_len) != NULL;
}

/* The single value of `name`, or NULL when absent. */
static const struct http_param *param(const struct http_params *ps, const char *name)
{
    for (size_t i = 0; i < ps->n; i++)
        if (strcmp(ps->items[i].name, name) == 0)
            return &ps->items[i];
    return NULL;
}

static bool b64url_chars(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
              c == '_'))
            return false;
    }
    return true;
}

static int parse_prompt(const char *s, unsigned *out)
{
    unsigned bits = 0;
    struct str rest = str_from_cstr(s), word;

    size_t n = strlen(s);
    if (n == 0 || s[n - 1] == ' ')
        return -EINVAL;
    while (rest.len > 0) {
        str_split(rest, ' ', &word, &rest);
        unsigned b;
        if (str_eq_cstr(word, "none"))
            b = OAUTH_PROMPT_NONE;
        else if (str_eq_cstr(word, "login"))
            b = OAUTH_PROMPT_LOGIN;
        else if (str_eq_cstr(word, "consent"))
            b = OAUTH_PROMPT_CONSENT;
        else if (str_eq_cstr(word, "select_account"))
            b = OAUTH_PROMPT_SELECT_ACCOUNT;
        else
            return -EINVAL;        /* also an empty word: "a  b", " a" */
        bits |= b;
    }
    if ((bits & OAUTH_PROMPT_NONE) && bits != OAUTH_PROMPT_NONE)
        return -EINVAL;            /* OIDC Core §3.1.2.1: none stands alone */
    *out = bits;
    return 0;
}

int oauth_authorize_parse(const struct http_params *ps, struct arena *a, struct oauth_authz_request *out,
                          struct oauth_authz_error *err)
{
    const struct http_param *p;

    memset(out, 0, sizeof(*out));
    memset(err, 0, sizeof(*err));
    out->max_age = -1;

    /* 1-2. client_id and redirect_uri: defects here are shown, never redirected */
    if (http_params_count(ps, "client_id") > 1)
        return page_err(err, "client_id: repeated");
    if (http_params_count(ps, "redirect_uri") > 1)
        return page_err(err, "redirect_uri: repeated");
    p = param(ps, "client_id");
    if (!p || p->value_len == 0)
        return page_err(err, "client_id is required");
    if (has_nul(p) || !client_id_valid(p->value, p->value_len))
        return page_err(err, "client_id is invalid");
    out->client_id = p->value;
    p = param(ps, "redirect_uri");
    if (p) {
        if (p->value_len > OAUTH_MAX_REDIRECT_URI || has_nul(p) ||
            !client_redirect_uri_valid(p->value, p->value_len))
            return page_err(err, "redirect_uri is invalid");
        out->redirect_uri = p->value;
    }

    /* state first of the rest: every later error should be able to echo it */
    p = param(ps, "state");
    if (p && http_params_count(ps, "state") == 1 && p->value_len <= OAUTH_MAX_STATE && !has_nul(p) &&
        p->value_len > 0)
        out->state = p->value;

    /* the parameter list */
    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
        size_t k = http_params_count(ps, rules[i].name);
        if (k == 0)
            continue;
        if (k > 1)
            return redir_err(err, "invalid_request", arena_sprintf(a, "%s: repeated", rules[i].name));
        p = param(ps, rules[i].name);
        if (has_nul(p))
            return redir_err(err, "invalid_request", arena_sprintf(a, "%s: contains NUL", rules[i].name));
        if (p->value_len > rules[i].max)
            return redir_err(err, "invalid_request", arena_sprintf(a, "%s: too long", rules[i].name));
    }

    /* 3. what is asked for */
    if (param(ps, "request"))
        return redir_err(err, "request_not_supported", "request objects are not supported");
    if (param(ps, "request_uri"))
        return redir_err(err, "request_uri_not_supported", "request_uri is not supported");
    p = param(ps, "response_type");
    if (!p || p->value_len == 0)
        return redir_err(err, "invalid_request", "response_type is required");
    if (strcmp(p->value, "code") != 0)
        return redir_err(err, "unsupported_response_type", "only response_type=code is supported");
    out->response_type = p->value;
    p = param(ps, "response_mode");
    if (p && strcmp(p->value, "query") != 0)
        return redir_err(err, "invalid_request", "only response_mode=query is supported");

    /* 4. the details */
    p = param(ps, "scope");
    if (p && p->value_len > 0) {
        out->has_scope = true;
        if (oauth_scope_parse(p->value, p->value_len, a, &out->scope) < 0)
            return redir_err(err, "invalid_scope", "malformed scope");
    }

    const struct http_param *cc = param(ps, "code_challenge");
    const struct http_param *ccm = param(ps, "code_challenge_method");
    if (ccm && !cc)
        return redir_err(err, "invalid_request", "code_challenge_method without code_challenge");
    if (cc) {
        if (!ccm)
            return redir_err(err, "invalid_request",
                             "code_challenge_method is required and must be S256 (plain is not allowed)");
        if (strcmp(ccm->value, "S256") != 0)
            return redir_err(err, "invalid_request",
                             strcmp(ccm->value, "plain") == 0
                                 ? "code_challenge_method plain is not allowed; use S256"
                                 : "code_challenge_method must be S256");
        if (cc->value_len != OAUTH_PKCE_CHALLENGE_LEN || !b64url_chars(cc->value, cc->value_len))
            return redir_err(err, "invalid_request", "code_challenge must be 43 base64url characters");
        out->code_challenge = cc->value;
        out->code_challenge_method = "S256";
    }

    p = param(ps, "prompt");
    if (p && parse_prompt(p->value, &out->prompt) < 0)
        return redir_err(err, "invalid_request",
                         "prompt must be none, or any of login, consent, select_account");

    p = param(ps, "max_age");
    if (p) {
        int64_t v;
        if (str_to_i64((struct str){ p->value, p->value_len }, 0, OAUTH_MAX_AGE_MAX, &v) < 0 ||
            p->value[0] == '+' || p->value[0] == '-')
            return redir_err(err, "invalid_request", "max_age must be a non-negative integer");
        out->max_age = v;
    }

    p = param(ps, "nonce");
    if (p && p->value_len > 0)
        out->nonce = p->value;
    p = param(ps, "state");
    if (p && p->value_len == 0)
        out->state = NULL;
    p = param(ps, "login_hint");
    if (p && p->value_len > 0)
        out->login_hint = p->value;
    return 0;
}

/* ================================================================= PKCE */

bool oauth_pkce_verifier_valid(const char *s, size_t n)
{
    if (n < OAUTH_PKCE_VERIFIER_MIN || n > OAUTH_PKCE_VERIFIER_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
              c == '.' || c == '_' || c == '~'))
            return false;
    }
    return true;
}

bool oauth_pkce_s256_matches(const char *verifier, size_t n, const char *challenge)
{
    unsigned char h[crypto_hash_sha256_BYTES];
    char enc[B64URL_ENCLEN(crypto_hash_sha256_BYTES)];

    if (!challenge)
        return false;
    crypto_hash_sha256(h, (const unsigned char *)verifier, n);
    size_t len = b64url_encode(h, sizeof(h), enc);
    return str_ct_eq(enc, len, challenge, strlen(challenge));
}

/* ============================================================= redirect */

static int put_encoded(struct buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        int rc;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
            c == '_' || c == '~') {
            rc = buf_putc(b, (char)c);
        } else {
            char e[3] = { '%', hex[c >> 4], hex[c & 15] };
            rc = buf_append(b, e, 3);
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

int oauth_redirect_build(struct buf *b, const char *base, const char *const *kv)
{
    bool query = strchr(base, '?') != NULL;
    int rc = buf_puts(b, base);

    for (size_t i = 0; rc == 0 && kv[i]; i += 2) {
        if (!kv[i + 1])
            continue;
        char sep = query ? '&' : '?';
        /* "https://app/cb?" already ends with the separator */
        if (!(sep == '&' && b->len > 0 && (b->data[b->len - 1] == '?' || b->data[b->len - 1] == '&')))
            rc = buf_putc(b, sep);
        query = true;
        if (rc == 0)
            rc = put_encoded(b, kv[i]);
        if (rc == 0)
            rc = buf_putc(b, '=');
        if (rc == 0)
            rc = put_encoded(b, kv[i + 1]);
    }
    return rc < 0 ? -E2BIG : 0;
}

/* ============================================================= requests */

struct authz {
    struct http_request *req;
    struct node *n;
    int64_t now;
    struct tenant t;
    bool have_tenant;
    struct branding brand;
    bool have_brand;                   /* loaded (pages only: not on the SSO path) */
    struct db *db;                     /* the HTTP worker's reader; NULL once handed to another thread */
    struct client c;
    struct oauth_authz_request ar;
    const char *redirect_uri;          /* checked against the client's list */
    struct oauth_scopes scope;         /* granted */
    const char *scope_str;
    struct http_params carry;          /* the request, for the login form's hidden fields */

    /* the signed-in session (authorize) */
    bool have_session;
    struct sso_session sess;

    /* login */
    const char *username;
    const char *password;
    size_t password_len;
    struct user_auth ua;

    /* what the write job does */
    const char *user_id;
    int64_t auth_time;
    const char *sid;
    bool new_session;
    struct session_new ns;
    const char *old_session_hash;      /* replaced on login */
    const char *touch_session_hash;    /* SSO: bump last_seen */
    bool login_reset, login_failure;
    bool issue;                        /* insert the code */
    char code[OAUTH_TOKEN_BUFSZ];
    char code_hash[CRYPTO_TOKEN_HASH_BUFSZ];
};

static int64_t now_s(void)
{
    return time_wall_us() / 1000000;
}

/* ----------------------------------------------------------- responses */

/* The tenant's branding, read before the first page is rendered. Pages
 * rendered off the HTTP worker (after argon2id or a write) rely on the
 * handler having loaded it: other threads have no reader to load it with. */
static void load_brand(struct authz *z)
{
    if (z->have_tenant && !z->have_brand && z->db) {
        login_branding_load(z->n, z->db, &z->t, &z->req->arena, &z->brand);
        z->have_brand = true;
    }
}

static void error_page(struct authz *z, int status, const char *heading, const char *msg)
{
    load_brand(z);
    login_respond_message(z->req, status, z->have_brand ? &z->brand : NULL, heading, msg);
}

static void redirect_to(struct http_request *req, const char *url)
{
    login_security_headers(req, NULL, NULL);
    http_add_header(req, "Location", url);
    http_respond(req, 302, NULL, NULL, 0);
}

/* RFC 6749 §4.1.2.1 + RFC 9207: error, error_description, state, iss. */
static void redirect_error(struct authz *z, const char *code, const char *desc)
{
    struct buf b;
    const char *kv[] = { "error", code, "error_description", desc, "state", z->ar.state, "iss", z->t.issuer,
                         NULL };
    buf_init(&b, 16 * 1024);
    if (oauth_redirect_build(&b, z->redirect_uri, kv) < 0) {
        error_page(z, 400, "Sign-in failed", "The sign-in request is too large.");
    } else {
        log_info("authorize: error redirected", "tenant", z->t.name, "client_id", z->c.client_id, "error", code,
                 NULL);
        redirect_to(z->req, buf_cstr(&b));
    }
    buf_free(&b);
}

static void redirect_code(struct authz *z)
{
    struct buf b;
    const char *kv[] = { "code", z->code, "state", z->ar.state, "iss", z->t.issuer, NULL };
    buf_init(&b, 16 * 1024);
    if (oauth_redirect_build(&b, z->redirect_uri, kv) < 0)
        error_page(z, 400, "Sign-in failed", "The sign-in request is too large.");
    else
        redirect_to(z->req, buf_cstr(&b));
    buf_free(&b);
}

/* The login form, with a fresh CSRF token bound to the browser's cookie. */
static void show_login(struct authz *z, int status, const char *error, const char *username)
{
    struct http_request *req = z->req;
    load_brand(z);
    const char *cookie = login_csrf_cookie(z->n, req, z->t.name);
    struct login_page p = {
        .brand = &z->brand,
        .action = arena_sprintf(&req->arena, "%s/oauth2/login", login_tenant_prefix(req)),
        .client_name = z->c.name && *z->c.name ? z->c.name : z->c.client_id,
        .carry = &z->carry,
        .csrf = login_csrf_token(z->n, "login", z->t.name, cookie, &req->arena),
        .username = username,
        .error = error,
    };
    login_respond_page(req, status, &p);
}

/* ------------------------------------------------------- request checks */

/* The authorization request's own parameters, for the login form. */
static void build_carry(struct authz *z, const struct http_params *ps)
{
    static const char *const carried[] = { "client_id", "redirect_uri", "response_type", "scope", "state",
                                           "nonce", "code_challenge", "code_challenge_method", "prompt",
                                           "max_age", "response_mode" };
    size_t n = sizeof(carried) / sizeof(carried[0]);
    z->carry.items = arena_alloc(&z->req->arena, n * sizeof(struct http_param));
    z->carry.n = 0;
    for (size_t i = 0; i < n; i++) {
        const struct http_param *p = param(ps, carried[i]);
        if (p)
            z->carry.items[z->carry.n++] = *p;
    }
}

/* Loads tenant and client and checks the request. 0: ready; -1: the
 * answer (page or error redirect) is set. Runs on the HTTP worker. */
static int prepare(struct authz *z, struct db *db, const struct http_params *ps)
{
    struct http_request *req = z->req;
    struct oauth_authz_error err;
    int rc;

    rc = tenant_load(db, req->tenant, z->n->conf->public_url, &req->arena, &z->t);
    if (rc < 0) {
        error_page(z, rc == -ENOENT ? 404 : 500, "Sign-in failed",
                   rc == -ENOENT ? "There is no such tenant." : "A storage error occurred; try again.");
        return -1;
    }
    z->have_tenant = true;

    rc = oauth_authorize_parse(ps, &req->arena, &z->ar, &err);
    if (rc < 0 && !err.redirect) {
        error_page(z, 400, "Invalid sign-in request",
                   arena_sprintf(&req->arena, "The application sent an invalid request: %s.", err.description));
        return -1;
    }
    rc = client_load(db, z->t.name, z->ar.client_id, &req->arena, &z->c);
    if (rc < 0) {
        if (rc == -ENOENT)
            error_page(z, 400, "Invalid sign-in request", "The application is not registered (unknown client_id).");
        else
            error_page(z, 500, "Sign-in failed", "A storage error occurred; try again.");
        return -1;
    }
    if (z->ar.redirect_uri) {
        if (!client_has_redirect_uri(&z->c, z->ar.redirect_uri)) {
            error_page(z, 400, "Invalid sign-in request",
                       "The redirect_uri is not registered for this application.");
            return -1;
        }
        z->redirect_uri = z->ar.redirect_uri;
    } else if (z->c.nredirect_uris == 1) {
        z->redirect_uri = z->c.redirect_uris[0];     /* RFC 6749 §3.1.2.3 */
    } else {
        error_page(z, 400, "Invalid sign-in request", "The request has no redirect_uri.");
        return -1;
    }

    /* from here on errors go back to the client */
    if (err.error) {
        redirect_error(z, err.error, err.description);
        return -1;
    }
    if (!(z->t.s.grant_types & GRANT_AUTHORIZATION_CODE) || !client_allows_grant(&z->c, GRANT_AUTHORIZATION_CODE)) {
        redirect_error(z, "unauthorized_client", "this client may not use the authorization code flow");
        return -1;
    }
    if (z->ar.has_scope) {
        for (size_t i = 0; i < z->ar.scope.n; i++) {
            if (!client_has_scope(&z->c, z->ar.scope.items[i])) {
                redirect_error(z, "invalid_scope", "requested scope is not allowed for this client");
                return -1;
            }
        }
        z->scope = z->ar.scope;
    } else {
        z->scope.items = (const char **)z->c.default_scopes;
        z->scope.n = z->c.ndefault_scopes;
    }
    z->scope_str = oauth_scopes_join(&z->scope, &req->arena);
    if (!z->c.confidential && !z->ar.code_challenge) {
        redirect_error(z, "invalid_request", "PKCE (code_challenge with S256) is required for public clients");
        return -1;
    }
    build_carry(z, ps);
    return 0;
}

/* ------------------------------------------------------------ write job */

static int insert_code(struct db *db, struct authz *z)
{
    struct db_stmt *st = db_prepare(db, "INSERT INTO auth_codes (code_hash, tenant, client_id, user_id,"
                                        " redirect_uri, scope, nonce, code_challenge, code_challenge_method,"
                                        " auth_time, session_id, expires_at, used)"
                                        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 0)");
    if (!st)
        return DB_ERR;
    db_bind_text(st, 1, z->code_hash, -1);
    db_bind_text(st, 2, z->t.name, -1);
    db_bind_text(st, 3, z->c.client_id, -1);
    db_bind_text(st, 4, z->user_id, -1);
    db_bind_text(st, 5, z->redirect_uri, -1);
    db_bind_text(st, 6, z->scope_str, -1);
    db_bind_text(st, 7, z->ar.nonce, -1);
    db_bind_text(st, 8, z->ar.code_challenge, -1);
    db_bind_text(st, 9, z->ar.code_challenge_method, -1);
    db_bind_int64(st, 10, z->auth_time);
    db_bind_text(st, 11, z->sid, -1);
    db_bind_int64(st, 12, z->now + z->t.s.code_ttl);
    int rc = db_step(st);
    db_done(st);
    return rc < 0 ? rc : 0;
}

static int authz_write(struct db *db, void *arg)
{
    struct authz *z = arg;
    int rc = 0;

    if (z->login_failure)
        return user_auth_record_failure(db, z->t.name, z->ua.user_id, &z->t.s, z->now);
    if (z->old_session_hash && (rc = session_delete(db, z->old_session_hash)) < 0)
        return rc;
    if (z->new_session &&
        (rc = session_insert(db, &z->ns, z->t.name, z->user_id, z->auth_time, z->now, z->t.s.session_ttl,
                             z->req->remote_addr, http_header(z->req, "User-Agent"))) < 0)
        return rc;
    if (z->touch_session_hash && (rc = session_touch(db, z->touch_session_hash, z->now)) < 0)
        return rc;
    if (z->login_reset && (rc = user_auth_record_success(db, z->t.name, z->user_id)) < 0)
        return rc;
    if (z->issue && (rc = insert_code(db, z)) < 0)
        return rc;
    return 0;
}

static const char *bad_credentials = "The username or password is incorrect.";

static void authz_done(void *arg, int rc)
{
    struct authz *z = arg;
    struct http_request *req = z->req;

    if (rc != 0) {
        log_error("authorize: write failed", "tenant", z->t.name, "client_id", z->c.client_id, "rc",
                  log_i64(rc), NULL);
        if (z->login_failure || z->new_session)
            error_page(z, 503, "Sign-in unavailable",
                       rc == -EROFS ? "This server is a standby; sign-in happens in the active region."
                                    : "The server could not complete the sign-in; try again.");
        else
            redirect_error(z, "temporarily_unavailable",
                           rc == -EROFS ? STANDBY_MSG : "the server could not store the authorization code");
    } else if (z->login_failure) {
        show_login(z, 401, bad_credentials, z->username);
    } else {
        if (z->new_session)
            session_set_cookie(req, z->t.name, z->ns.cookie, login_cookie_secure(z->n, req));
        redirect_code(z);
    }
    http_resume(req);
}

/* Queues the write job; answers and returns HTTP_DONE when that fails. */
static enum http_result submit(struct authz *z)
{
    struct db *db = z->db;
    z->db = NULL;                      /* authz_done may run on the writer thread at once */
    int rc = store_writable(z->n->store) ? store_submit(z->n->store, authz_write, authz_done, z) : -EROFS;
    if (rc == 0)
        return HTTP_SUSPEND;
    z->db = db;
    redirect_error(z, "temporarily_unavailable", rc == -EROFS ? STANDBY_MSG : "the server is busy; try again");
    return HTTP_DONE;
}

static void new_code(struct authz *z)
{
    oauth_random_token(z->code, z->code_hash);
    z->issue = true;
}

/* ========================================================== /authorize */

/* The params of a POSTed request, parsed by hand so that a bad body gets a
 * page rather than JSON. NULL after answering. */
static const struct http_params *form_params(struct authz *z)
{
    struct http_request *req = z->req;
    struct http_params *ps = arena_alloc(&req->arena, sizeof(*ps));
    if (!req->content_type || strcmp(req->content_type, "application/x-www-form-urlencoded") != 0) {
        error_page(z, 400, "Invalid sign-in request", "Expected a form (application/x-www-form-urlencoded).");
        return NULL;
    }
    if (http_urlencoded_parse(req->body.p ? req->body.p : "", req->body.len, &req->arena, HTTP_MAX_PARAMS, ps) <
        0) {
        error_page(z, 400, "Invalid sign-in request", "The form could not be read.");
        return NULL;
    }
    return ps;
}

static struct authz *authz_new(struct http_request *req)
{
    struct authz *z = arena_alloc(&req->arena, sizeof(*z));
    z->req = req;
    z->n = req->route_data;
    z->now = now_s();
    return z;
}

static enum http_result authorize(struct authz *z, struct db *db)
{
    struct http_request *req = z->req;
    const struct http_params *ps = &req->query;

    if (strcmp(req->method, "POST") == 0 && !(ps = form_params(z)))
        return HTTP_DONE;
    if (prepare(z, db, ps) < 0)
        return HTTP_DONE;

    int rc = session_from_request(req, db, z->t.name, z->now, &z->sess);
    if (rc == -EIO) {
        redirect_error(z, "server_error", "storage error");
        return HTTP_DONE;
    }
    z->have_session = rc == 0;
    bool force = (z->ar.prompt & (OAUTH_PROMPT_LOGIN | OAUTH_PROMPT_SELECT_ACCOUNT)) != 0;
    if (z->have_session && z->ar.max_age >= 0 && z->now - z->sess.auth_time > z->ar.max_age)
        force = true;

    if (z->have_session && !force) {      /* SSO: no password, a code at once */
        z->user_id = z->sess.user_id;
        z->auth_time = z->sess.auth_time;
        z->sid = z->sess.sid;
        z->touch_session_hash = z->sess.id_hash;
        new_code(z);
        return submit(z);
    }
    if (z->ar.prompt & OAUTH_PROMPT_NONE) {
        redirect_error(z, "login_required", z->have_session ? "the session is older than max_age"
                                                            : "the user is not signed in");
        return HTTP_DONE;
    }
    show_login(z, 200, NULL, z->ar.login_hint);
    return HTTP_DONE;
}

enum http_result oauth_authorize_handler(struct http_request *req)
{
    struct authz *z = authz_new(req);
    struct db *db = store_reader(z->n->store);
    bool txn = oauth_read_begin(db) == 0;
    z->db = db;
    enum http_result r = authorize(z, db);
    if (txn)
        oauth_read_end(db);
    return r;
}

/* ========================================================= /oauth2/login */

static struct ratelimit *login_limiter;
static pthread_once_t limiter_once = PTHREAD_ONCE_INIT;

static void limiter_init(void)
{
    login_limiter = ratelimit_new(LOGIN_RATE_SLOTS, LOGIN_RATE_PER_S, LOGIN_RATE_BURST);
}

/* Runs on the worker pool: argon2id, then the verdict. */
static void login_job(void *arg)
{
    struct authz *z = arg;
    struct db *db = store_reader(z->n->store);
    struct tenant_settings s = z->t.s;
    const char *msg = NULL;
    int status = 401;

    /* Without lockout, user_auth reports the password check itself (and
     * inactive only for the right password); the lock is judged below. */
    s.lockout_max_failures = 0;
    int rc = user_auth_verify(db, z->t.name, z->username, z->password, z->password_len, &s, z->now,
                              &z->req->arena, &z->ua);
    if (rc < 0) {
        error_page(z, 500, "Sign-in failed", "A storage error occurred; try again.");
        goto answer;
    }
    bool locked = z->t.s.lockout_max_failures > 0 && z->ua.user_id && z->ua.locked_until > z->now;
    bool right_password = z->ua.result == USER_AUTH_OK || z->ua.result == USER_AUTH_INACTIVE;

    if (locked) {
        /* while locked nothing is counted; only the right password learns why */
        msg = right_password ? "This account is temporarily locked after too many failed sign-in attempts. "
                               "Try again later."
                             : bad_credentials;
        status = right_password ? 403 : 401;
    } else if (z->ua.result == USER_AUTH_INACTIVE) {
        msg = "This account is disabled. Contact your administrator.";
        status = 403;
    } else if (z->ua.result != USER_AUTH_OK) {
        if (z->ua.result == USER_AUTH_BAD_PASSWORD && z->t.s.lockout_max_failures > 0) {
            z->login_failure = true;        /* counted by the writer, then the form again */
            log_info("login refused", "tenant", z->t.name, "client_id", z->c.client_id, "reason", "bad_password",
                     NULL);
            rc = store_submit(z->n->store, authz_write, authz_done, z);
            if (rc == 0)
                return;
            z->login_failure = false;
        }
        msg = bad_credentials;
    }
    if (msg) {
        log_info("login refused", "tenant", z->t.name, "client_id", z->c.client_id, "reason",
                 locked ? "locked" : user_auth_result_name(z->ua.result), NULL);
        show_login(z, status, msg, z->username);
        goto answer;
    }

    /* signed in: a new session (replacing the presented one), the code */
    z->user_id = z->ua.user_id;
    z->auth_time = now_s();
    z->login_reset = z->ua.write == USER_AUTH_WRITE_RESET || z->ua.failed_logins != 0 ||
                     z->ua.locked_until != 0;
    z->new_session = true;
    session_generate(&z->ns);
    z->sid = z->ns.sid;
    new_code(z);
    log_info("login", "tenant", z->t.name, "client_id", z->c.client_id, "user_id", z->user_id, NULL);
    rc = store_submit(z->n->store, authz_write, authz_done, z);
    if (rc == 0)
        return;
    error_page(z, 503, "Sign-in unavailable",
               rc == -EROFS ? "This server is a standby; sign-in happens in the active region."
                            : "The server is busy; try again.");
answer:
    http_resume(z->req);
}

/* A directory's verdict on DOMAIN/username (on the userstore's pool
 * thread): the same messages as for internal users, a 503 form when the
 * directory cannot answer. Lockout is the directory's business. */
static void login_directory_done(void *arg, struct userstore_reply *r)
{
    struct authz *z = arg;
    int rc;

    switch (r->rc) {
    case 0:
        break;
    case -EACCES:
    case -ENOENT:
    case -EINVAL:
        log_info("login refused", "tenant", z->t.name, "client_id", z->c.client_id, "store", r->store, "reason",
                 "invalid_credentials", NULL);
        show_login(z, 401, bad_credentials, z->username);
        goto answer;
    default:
        log_warn("login: user directory failed", "tenant", z->t.name, "store", r->store, "rc", log_i64(r->rc),
                 "detail", r->detail, NULL);
        http_add_header(z->req, "Retry-After", "5");
        show_login(z, 503, "The user directory for this account is not answering. Try again in a moment.",
                   z->username);
        goto answer;
    }
    /* signed in: a new session for the directory user's id, the code */
    z->user_id = arena_strdup(&z->req->arena, r->user.id);
    z->auth_time = now_s();
    z->new_session = true;
    session_generate(&z->ns);
    z->sid = z->ns.sid;
    new_code(z);
    log_info("login", "tenant", z->t.name, "client_id", z->c.client_id, "user_id", z->user_id, NULL);
    rc = store_submit(z->n->store, authz_write, authz_done, z);
    if (rc == 0)
        return;
    error_page(z, 503, "Sign-in unavailable",
               rc == -EROFS ? "This server is a standby; sign-in happens in the active region."
                            : "The server is busy; try again.");
answer:
    http_resume(z->req);
}

/* Hands DOMAIN/username to the userstore's pool. The caller has loaded the
 * branding and let go of the reader. */
static enum http_result login_directory(struct authz *z)
{
    int rc = userstore_authenticate_async(z->n, z->t.name, z->username, z->password, z->password_len,
                                          login_directory_done, z);

    switch (rc) {
    case 0:
        return HTTP_SUSPEND;
    case -ENOENT:                      /* the store went away since userstore_routes */
    case -EINVAL:
        show_login(z, 401, bad_credentials, z->username);
        return HTTP_DONE;
    default:                           /* marked down, queue full, stopping */
        http_add_header(z->req, "Retry-After", "5");
        show_login(z, 503, "The user directory for this account is not answering. Try again in a moment.",
                   z->username);
        return HTTP_DONE;
    }
}

static enum http_result login(struct authz *z, struct db *db)
{
    struct http_request *req = z->req;
    const struct http_params *ps = form_params(z);

    if (!ps || prepare(z, db, ps) < 0)
        return HTTP_DONE;

    const char *username = http_params_get(ps, "username");
    const struct http_param *pw = param(ps, "password");
    if (!login_csrf_check(z->n, req, "login", z->t.name, http_params_get(ps, LOGIN_CSRF_FIELD))) {
        log_info("login refused", "tenant", z->t.name, "reason", "csrf", NULL);
        show_login(z, 403, "Your sign-in form expired or came from elsewhere. Please sign in again.", username);
        return HTTP_DONE;
    }
    if (!username || !*username || !pw || pw->value_len == 0) {
        show_login(z, 400, "Enter your username and password.", username);
        return HTTP_DONE;
    }
    if (strlen(username) > OAUTH_MAX_USERNAME || pw->value_len > OAUTH_MAX_PASSWORD || has_nul(pw)) {
        show_login(z, 401, bad_credentials, NULL);
        return HTTP_DONE;
    }
    if (!store_writable(z->n->store)) {
        error_page(z, 503, "Sign-in unavailable", "This server is a standby; sign-in happens in the active region.");
        return HTTP_DONE;
    }

    pthread_once(&limiter_once, limiter_init);
    const char *key = arena_sprintf(&req->arena, "%s|%s", req->remote_addr ? req->remote_addr : "-", z->t.name);
    int64_t retry = 0;
    if (!ratelimit_take(login_limiter, key, strlen(key), time_mono_us(), &retry)) {
        log_warn("login rate limited", "tenant", z->t.name, "remote_addr", req->remote_addr, NULL);
        http_add_header(req, "Retry-After", arena_sprintf(&req->arena, "%lld", (long long)retry));
        error_page(z, 429, "Too many sign-in attempts",
                   arena_sprintf(&req->arena, "Too many sign-in attempts from your network. Try again in %lld "
                                              "seconds.", (long long)retry));
        return HTTP_DONE;
    }

    z->username = username;
    z->password = pw->value;
    z->password_len = pw->value_len;
    struct sso_session old;
    if (session_from_request(req, db, z->t.name, z->now, &old) == 0)
        z->old_session_hash = arena_strdup(&req->arena, old.id_hash);
    load_brand(z);                     /* the answer is rendered on another thread */
    z->db = NULL;
    if (userstore_routes(z->n, z->t.name, username))
        return login_directory(z);
    int rc = oauth_workers_submit(login_job, z);
    if (rc < 0) {
        z->db = db;
        http_add_header(req, "Retry-After", "1");
        error_page(z, 503, "Sign-in unavailable", "The server is busy; try again.");
        return HTTP_DONE;
    }
    return HTTP_SUSPEND;
}

enum http_result oauth_login_handler(struct http_request *req)
{
    struct authz *z = authz_new(req);
    struct db *db = store_reader(z->n->store);
    bool txn = oauth_read_begin(db) == 0;
    z->db = db;
    enum http_result r = login(z, db);
    if (txn)
        oauth_read_end(db);
    return r;
}
