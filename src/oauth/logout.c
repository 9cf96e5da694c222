/*
 * logout — RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) at
 * GET/POST /oidc/logout: the browser's SSO session is deleted and its
 * cookie cleared, then the browser goes back to the client's
 * post_logout_redirect_uri (with state) or sees a "signed out" page.
 *
 *   id_token_hint             an ID token this tenant issued (signature and
 *                             issuer checked; an expired one is fine, §2);
 *                             names the client and the user.
 *   client_id                 names the client when there is no hint (must
 *                             match the hint's audience when both come).
 *   post_logout_redirect_uri  must equal one of the client's registered
 *                             post_logout_redirect_uris exactly; otherwise
 *                             (or without a client) an error page, never a
 *                             redirect: no open redirector.
 *   state                     echoed on the redirect.
 *
 * A GET that any page can trigger must not sign a user out on its own
 * (logout CSRF): without a valid hint for the signed-in user the OP asks
 * first (§2: "the OP SHOULD ask the End-User"), with a small form that
 * POSTs back with a CSRF token (login.h) and confirm=yes. Without a session
 * there is nothing to protect and the request completes at once.
 *
 * On a standby the session row cannot be deleted (read-only store); the
 * cookie is cleared anyway, so that browser is signed out.
 */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "core/json.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "crypto/jws.h"
#include "identity/client.h"
#include "identity/keyring.h"
#include "oauth/authorize.h"
#include "oauth/login.h"
#include "oauth/oauth_internal.h"
#include "oauth/session.h"

#define MAX_LOGOUT_PARAM 8192

struct logout {
    struct http_request *req;
    struct node *n;
    struct tenant t;
    struct branding brand;
    const char *redirect;       /* the checked post_logout_redirect_uri */
    const char *state;
    struct sso_session sess;
    bool have_session;
};

/* --------------------------------------------------------- id_token_hint */

struct hint {
    const char *sub;
    const char *aud;
    const char *sid;
};

struct kid_lookup {
    struct node *n;
    struct db *db;
    const char *tenant;
    const struct crypto_key *key;
};

static const struct crypto_key *find_key(void *arg, const char *kid, size_t kidlen)
{
    struct kid_lookup *l = arg;
    const struct crypto_key *k = NULL;
    (void)kidlen;
    if (keyring_find(l->n->keyring, l->db, l->tenant, kid, &k) != 0)
        return NULL;
    l->key = k;
    return k;
}

/* Verifies an ID token of tenant t (signature, typ, iss; not exp). 0 or -EACCES. */
static int hint_verify(struct node *n, struct db *db, const struct tenant *t, const char *tok, struct arena *a,
                       struct hint *out)
{
    struct kid_lookup l = { .n = n, .db = db, .tenant = t->name };
    json_t *payload = NULL, *header = NULL;
    int rc = crypto_jws_verify(tok, strlen(tok), find_key, &l, 0, &payload, &header);

    if (l.key)
        keyring_release(n->keyring, l.key);
    if (rc < 0) {
        rc = -EACCES;
        goto out;
    }
    rc = -EACCES;
    const char *typ = jsonx_str(header, "typ", "JWT");
    const char *iss = jsonx_str(payload, "iss", NULL);
    const char *sub = jsonx_str(payload, "sub", NULL);
    json_t *aud = json_object_get(payload, "aud");
    const char *aud1 = json_is_string(aud) ? json_string_value(aud)
                     : json_is_array(aud) && json_array_size(aud) == 1 ? json_string_value(json_array_get(aud, 0))
                                                                        : NULL;
    if (strcasecmp(typ, "JWT") != 0 || !iss || strcmp(iss, t->issuer) != 0 || !sub || !aud1)
        goto out;
    out->sub = arena_strdup(a, sub);
    out->aud = arena_strdup(a, aud1);
    const char *sid = jsonx_str(payload, "sid", NULL);
    out->sid = sid ? arena_strdup(a, sid) : NULL;
    rc = 0;
out:
    json_decref(payload);
    json_decref(header);
    return rc;
}

/* -------------------------------------------------------------- answers */

static void finish(struct logout *lo)
{
    struct http_request *req = lo->req;
    session_clear_cookie(req, lo->t.name, login_cookie_secure(lo->n, req));
    if (lo->redirect) {
        struct buf b;
        const char *kv[] = { "state", lo->state, NULL };
        buf_init(&b, 16 * 1024);
        oauth_redirect_build(&b, lo->redirect, kv);
        login_security_headers(req, NULL, NULL);
        http_add_header(req, "Location", buf_cstr(&b));
        http_respond(req, 302, NULL, NULL, 0);
        buf_free(&b);
    } else {
        login_respond_message(req, 200, &lo->brand, "Signed out", "You have been signed out.");
    }
}

static int delete_write(struct db *db, void *arg)
{
    struct logout *lo = arg;
    return session_delete(db, lo->sess.id_hash);
}

static void delete_done(void *arg, int rc)
{
    struct logout *lo = arg;
    if (rc != 0)
        log_warn("logout: session row not deleted (cookie cleared)", "tenant", lo->t.name, "rc", log_i64(rc), NULL);
    finish(lo);
    http_resume(lo->req);
}

static void bad_request(struct logout *lo, const char *msg)
{
    login_respond_message(lo->req, 400, &lo->brand, "Sign-out failed", msg);
}

/* ---------------------------------------------------------------- logout */

static const struct http_params *request_params(struct http_request *req)
{
    if (strcmp(req->method, "POST") != 0)
        return &req->query;
    struct http_params *ps = arena_alloc(&req->arena, sizeof(*ps));
    if (!req->content_type || strcmp(req->content_type, "application/x-www-form-urlencoded") != 0 ||
        http_urlencoded_parse(req->body.p ? req->body.p : "", req->body.len, &req->arena, HTTP_MAX_PARAMS, ps) < 0)
        return NULL;
    return ps;
}

static enum http_result logout(struct http_request *req, struct db *db)
{
    static const char *const names[] = { "id_token_hint", "post_logout_redirect_uri", "state", "client_id",
                                         "confirm", LOGIN_CSRF_FIELD, "logout_hint", "ui_locales" };
    struct logout *lo = arena_alloc(&req->arena, sizeof(*lo));
    int64_t now = time_wall_us() / 1000000;
    struct hint hint = { 0 };
    bool have_hint = false;

    lo->req = req;
    lo->n = req->route_data;
    int rc = tenant_load(db, req->tenant, lo->n->conf->public_url, &req->arena, &lo->t);
    if (rc < 0) {
        login_respond_message(req, rc == -ENOENT ? 404 : 500, NULL, "Sign-out failed",
                              rc == -ENOENT ? "There is no such tenant." : "A storage error occurred; try again.");
        return HTTP_DONE;
    }
    login_branding_load(lo->n, db, &lo->t, &req->arena, &lo->brand);

    const struct http_params *ps = request_params(req);
    if (!ps) {
        bad_request(lo, "The sign-out form could not be read.");
        return HTTP_DONE;
    }
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (http_params_count(ps, names[i]) > 1) {
            bad_request(lo, arena_sprintf(&req->arena, "The parameter %s is repeated.", names[i]));
            return HTTP_DONE;
        }
    }
    for (size_t i = 0; i < ps->n; i++) {
        if (ps->items[i].value_len > MAX_LOGOUT_PARAM || memchr(ps->items[i].value, '\0', ps->items[i].value_len)) {
            bad_request(lo, "A parameter is too long or malformed.");
            return HTTP_DONE;
        }
    }
    const char *id_token_hint = http_params_get(ps, "id_token_hint");
    const char *redirect = http_params_get(ps, "post_logout_redirect_uri");
    const char *client_id = http_params_get(ps, "client_id");
    const char *state = http_params_get(ps, "state");
    lo->state = state && *state ? state : NULL;

    if (id_token_hint && *id_token_hint) {
        if (hint_verify(lo->n, db, &lo->t, id_token_hint, &req->arena, &hint) < 0) {
            bad_request(lo, "The id_token_hint is not a valid ID token of this issuer.");
            return HTTP_DONE;
        }
        have_hint = true;
        if (client_id && *client_id && strcmp(client_id, hint.aud) != 0) {
            bad_request(lo, "client_id does not match the id_token_hint.");
            return HTTP_DONE;
        }
        client_id = hint.aud;
    }
    if (redirect && *redirect) {
        struct client c;
        if (!client_id || !*client_id) {
            bad_request(lo, "post_logout_redirect_uri needs an id_token_hint or a client_id.");
            return HTTP_DONE;
        }
        rc = client_load(db, lo->t.name, client_id, &req->arena, &c);
        if (rc < 0 || !client_has_post_logout_redirect_uri(&c, redirect)) {
            bad_request(lo, rc == -EIO ? "A storage error occurred; try again."
                                       : "The post_logout_redirect_uri is not registered for this application.");
            return HTTP_DONE;
        }
        lo->redirect = redirect;
    }

    rc = session_from_request(req, db, lo->t.name, now, &lo->sess);
    if (rc == -EIO) {
        login_respond_message(req, 500, &lo->brand, "Sign-out failed", "A storage error occurred; try again.");
        return HTTP_DONE;
    }
    lo->have_session = rc == 0;

    if (lo->have_session) {
        bool hinted = have_hint && strcmp(hint.sub, lo->sess.user_id) == 0;
        const char *confirm = http_params_get(ps, "confirm");
        bool confirmed = strcmp(req->method, "POST") == 0 && confirm && strcmp(confirm, "yes") == 0 &&
                         login_csrf_check(lo->n, req, "logout", lo->t.name, http_params_get(ps, LOGIN_CSRF_FIELD));
        if (!hinted && !confirmed) {
            static const char *const carried[] = { "id_token_hint", "post_logout_redirect_uri", "state",
                                                   "client_id" };
            struct http_params carry = { arena_alloc(&req->arena, 4 * sizeof(struct http_param)), 0 };
            for (size_t i = 0; i < 4; i++) {
                for (size_t k = 0; k < ps->n; k++)
                    if (strcmp(ps->items[k].name, carried[i]) == 0)
                        carry.items[carry.n++] = ps->items[k];
            }
            const char *cookie = login_csrf_cookie(lo->n, req, lo->t.name);
            login_respond_logout_confirm(req, &lo->brand,
                                         arena_sprintf(&req->arena, "%s/oidc/logout", login_tenant_prefix(req)),
                                         &carry, login_csrf_token(lo->n, "logout", lo->t.name, cookie, &req->arena));
            return HTTP_DONE;
        }
        log_info("logout", "tenant", lo->t.name, "user_id", lo->sess.user_id, "sid", lo->sess.sid, NULL);
        rc = store_submit(lo->n->store, delete_write, delete_done, lo);
        if (rc == 0)
            return HTTP_SUSPEND;
        log_warn("logout: session row not deleted (cookie cleared)", "tenant", lo->t.name, "rc", log_i64(rc), NULL);
    }
    finish(lo);
    return HTTP_DONE;
}

enum http_result oauth_logout_handler(struct http_request *req)
{
    struct node *n = req->route_data;
    struct db *db = store_reader(n->store);
    bool txn = oauth_read_begin(db) == 0;
    enum http_result r = logout(req, db);
    if (txn)
        oauth_read_end(db);
    return r;
}
