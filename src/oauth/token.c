/*
 * token — POST /oauth2/token: client authentication, the grants
 * (client_credentials, password, refresh_token, authorization_code) and
 * the token response.
 *
 * Where each grant does its work:
 *
 *   client_credentials, JWT   HTTP worker only: parse, two primary-key reads
 *                             (tenant, client), secret hash compare, sign,
 *                             answer. No write at all.
 *   client_credentials, opaque  HTTP worker mints; one INSERT through the
 *                             store writer (group commit) with the connection
 *                             suspended until it is committed.
 *   password                  HTTP worker checks the client; argon2id runs on
 *                             the oauth worker pool, which mints and then
 *                             either answers or queues the write (refresh
 *                             token, opaque token, lockout counter).
 *   password, DOMAIN/user     a name whose DOMAIN is one of the tenant's LDAP
 *                             userstores (ldap/userstore.h) goes to that
 *                             store's own pool instead: search and bind there
 *                             (bounded by the store's timeout), then mint and
 *                             answer or write on the pool thread. A directory
 *                             that is down or slow answers 503
 *                             temporarily_unavailable and never holds up the
 *                             oauth workers that verify internal passwords.
 *                             With scope `groups`, a directory user's tokens
 *                             carry the directory's groups, not the tenant's.
 *   refresh_token             HTTP worker reads the token row and mints; the
 *                             writer re-checks the row and rotates it in the
 *                             same transaction as the new rows, so two racing
 *                             uses of one token cannot both win. A token that
 *                             is no longer active (already rotated, or
 *                             revoked) revokes its whole family (RFC 9700
 *                             §4.14.2) and earns invalid_grant. A directory
 *                             user is read again from the directory (on the
 *                             store's pool) before minting: a user who is gone
 *                             there gets no new tokens, and groups are fresh.
 *   authorization_code        HTTP worker reads the code row and checks
 *                             client, expiry, redirect_uri and the PKCE
 *                             verifier, then mints; the writer marks the code
 *                             used (only if it still is unused) in the same
 *                             transaction as the new rows. A code presented
 *                             again (or raced) revokes what it issued
 *                             (RFC 6749 §4.1.2, RFC 9700 §4.2.4): the token
 *                             ids are derived from the code's hash, so no
 *                             extra bookkeeping is needed to find them — the
 *                             refresh family is H("family", code_hash) and
 *                             the access token's jti H("jti", code_hash)
 *                             (UUID-shaped, version 8). A used code is kept
 *                             for the access token's lifetime so that a
 *                             replay within it still finds it. A code of a
 *                             directory user (signed in as DOMAIN/username)
 *                             reads the user from the directory first, like
 *                             a refresh does.
 *
 * Every answer carries Cache-Control: no-store and Pragma: no-cache
 * (RFC 6749 §5.1).
 */
#include <errno.h>
#include <string.h>

#include <sodium.h>
#include <stdio.h>

#include "core/log.h"
#include "core/timeutil.h"
#include "core/uuid.h"
#include "core/json.h"
#include "crypto/jws.h"
#include "identity/keyring.h"
#include "identity/user_auth.h"
#include "ldap/userstore.h"
#include "oauth/authorize.h"
#include "oauth/oauth_internal.h"

struct grant {
    struct http_request *req;
    struct node *n;
    struct tenant t;
    struct client c;
    struct oauth_token_request tr;
    struct oauth_scopes scope;         /* granted */
    const char *scope_str;
    int64_t now;
    int64_t at_ttl, rt_ttl, id_ttl;

    /* the user, for password and refresh grants */
    const char *user_id;
    const char *user_name;
    const char *user_data;
    int64_t user_updated_at;
    int64_t auth_time;
    struct user_auth ua;
    const char *groups_json;           /* a directory user's groups (JSON array), else NULL */
    bool directory_reread;             /* a stored directory user id is read again */
    bool directory_refresh;            /* ... and a refresh token is minted too */

    /* authorization_code */
    char code_hash[CRYPTO_TOKEN_HASH_BUFSZ];
    char code_family[UUID_STRLEN + 1];
    char code_jti[UUID_STRLEN + 1];
    char rt_jti[UUID_STRLEN + 1];
    const char *jti;                   /* preset access-token jti, NULL: random */
    const char *nonce;
    const char *sid;
    int64_t code_keep_until;           /* a used code's new expires_at */

    /* minted */
    const char *access_token;
    char at_hash[CRYPTO_TOKEN_HASH_BUFSZ];
    char refresh_token[OAUTH_TOKEN_BUFSZ];
    char rt_hash[CRYPTO_TOKEN_HASH_BUFSZ];
    const char *id_token;
    const char *family_id;
    struct oauth_token_info old;       /* refresh grant: the presented token */

    /* what the write job does */
    bool write_opaque, write_refresh, rotate, revoke_family, login_failure, login_reset;
    bool redeem_code, code_reuse;

    /* an error decided inside the write job */
    bool failed;
    struct oauth_error err;
};

static int64_t now_s(void)
{
    return time_wall_us() / 1000000;
}

static void set_err(struct grant *g, int status, const char *code, const char *desc)
{
    g->failed = true;
    g->err = (struct oauth_error){ status, code, desc, status == 401 };
}

/* ------------------------------------------------------------- response */

static void respond_tokens(struct grant *g)
{
    struct http_request *req = g->req;
    struct buf b;
    struct jw w;

    buf_init(&b, OAUTH_RESP_LIMIT);
    jw_begin(&w, &b);
    jw_str_safe(&w, "access_token", g->access_token);
    jw_str_safe(&w, "token_type", "Bearer");
    jw_int(&w, "expires_in", g->at_ttl);
    jw_str(&w, "scope", g->scope_str);
    if (g->write_refresh)
        jw_str_safe(&w, "refresh_token", g->refresh_token);
    if (g->id_token)
        jw_str_safe(&w, "id_token", g->id_token);
    jw_end(&w);
    oauth_no_cache(req);
    http_respond(req, 200, "application/json", b.data, b.len);
    buf_free(&b);
}

static void respond_final(struct grant *g, int rc)
{
    if (rc != 0)
        oauth_respond_write_error(g->req, rc);
    else if (g->failed)
        oauth_respond_error(g->req, &g->err);
    else
        respond_tokens(g);
}

/* ---------------------------------------------------------------- write */

static int insert_refresh(struct db *db, struct grant *g)
{
    struct db_stmt *st = db_prepare(db, "INSERT INTO refresh_tokens (token_hash, tenant, client_id, user_id,"
                                        " family_id, scope, parent_hash, status, issued_at, expires_at,"
                                        " auth_time) VALUES ($1, $2, $3, $4, $5, $6, $7, 'active', $8, $9, $10)");
    if (!st)
        return DB_ERR;
    db_bind_text(st, 1, g->rt_hash, -1);
    db_bind_text(st, 2, g->t.name, -1);
    db_bind_text(st, 3, g->c.client_id, -1);
    db_bind_text(st, 4, g->user_id, -1);
    db_bind_text(st, 5, g->family_id, -1);
    db_bind_text(st, 6, g->scope_str, -1);
    db_bind_text(st, 7, g->rotate ? g->old.hash : NULL, -1);
    db_bind_int64(st, 8, g->now);
    db_bind_int64(st, 9, g->now + g->rt_ttl);
    db_bind_int64(st, 10, g->auth_time);
    int rc = db_step(st);
    db_done(st);
    return rc < 0 ? rc : 0;
}

static int insert_opaque(struct db *db, struct grant *g)
{
    struct db_stmt *st = db_prepare(db, "INSERT INTO opaque_tokens (token_hash, tenant, client_id, user_id,"
                                        " scope, issued_at, expires_at, family_id)"
                                        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)");
    if (!st)
        return DB_ERR;
    db_bind_text(st, 1, g->at_hash, -1);
    db_bind_text(st, 2, g->t.name, -1);
    db_bind_text(st, 3, g->c.client_id, -1);
    db_bind_text(st, 4, g->user_id, -1);
    db_bind_text(st, 5, g->scope_str, -1);
    db_bind_int64(st, 6, g->now);
    db_bind_int64(st, 7, g->now + g->at_ttl);
    db_bind_text(st, 8, g->family_id, -1);    /* NULL unless a refresh family or a code issued it */
    int rc = db_step(st);
    db_done(st);
    return rc < 0 ? rc : 0;
}

/* Re-reads the presented refresh token inside the write transaction. */
static int rotate_old(struct db *db, struct grant *g)
{
    struct db_stmt *st = db_prepare(db, "SELECT status, expires_at FROM refresh_tokens WHERE token_hash = $1");
    if (!st)
        return DB_ERR;
    db_bind_text(st, 1, g->old.hash, -1);
    int rc = db_step(st);
    bool found = rc == DB_ROW;
    bool active = found && strcmp(db_col_text(st, 0), "active") == 0;
    int64_t exp = found ? db_col_int64(st, 1) : 0;
    db_done(st);
    if (rc < 0)
        return rc;
    if (!found) {
        set_err(g, 400, "invalid_grant", "refresh token is invalid");
        return 1;
    }
    if (!active) {
        log_warn("refresh token reused: revoking its family", "tenant", g->t.name, "client_id",
                 g->c.client_id, "family_id", g->old.family_id, NULL);
        rc = oauth_family_revoke(db, g->old.family_id);
        set_err(g, 400, "invalid_grant", "refresh token is invalid");
        return rc < 0 ? rc : 1;
    }
    if (exp <= g->now) {
        set_err(g, 400, "invalid_grant", "refresh token expired");
        return 1;
    }
    rc = db_execp(db, "UPDATE refresh_tokens SET status = 'rotated' WHERE token_hash = $1", g->old.hash, NULL);
    return rc < 0 ? rc : 0;
}

/* Revokes what a code issued: its refresh family (and opaque access
 * tokens) and its JWT access token's jti. */
static int revoke_code_tokens(struct db *db, struct grant *g)
{
    log_warn("authorization code reused: revoking the tokens it issued", "tenant", g->t.name, "client_id",
             g->c.client_id, "family_id", g->code_family, NULL);
    int rc = oauth_family_revoke(db, g->code_family);
    if (rc < 0)
        return rc;
    struct db_stmt *st = db_prepare(db, "INSERT INTO revoked_jtis (jti, tenant, expires_at) VALUES ($1, $2, $3)"
                                        " ON CONFLICT DO NOTHING");
    if (!st)
        return DB_ERR;
    db_bind_text(st, 1, g->code_jti, -1);
    db_bind_text(st, 2, g->t.name, -1);
    db_bind_int64(st, 3, g->now + g->at_ttl + OAUTH_IAT_LEEWAY);
    rc = db_step(st);
    db_done(st);
    return rc < 0 ? rc : 0;
}

/* Marks the code used, unless another request did first. 0, 1 (lost the
 * race: the code's tokens are revoked, g->err set) or a DB error. */
static int redeem_code(struct db *db, struct grant *g)
{
    struct db_stmt *st = db_prepare(db, "UPDATE auth_codes SET used = $2, expires_at = $3"
                                        " WHERE code_hash = $1 AND used = 0");
    if (!st)
        return DB_ERR;
    db_bind_text(st, 1, g->code_hash, -1);
    db_bind_int64(st, 2, g->now);
    db_bind_int64(st, 3, g->code_keep_until);
    int rc = db_step(st);
    db_done(st);
    if (rc < 0)
        return rc;
    if (db_changes(db) == 1)
        return 0;
    rc = revoke_code_tokens(db, g);
    set_err(g, 400, "invalid_grant", "authorization code was already used");
    return rc < 0 ? rc : 1;
}

static int grant_write(struct db *db, void *arg)
{
    struct grant *g = arg;
    int rc;

    if (g->code_reuse) {
        rc = revoke_code_tokens(db, g);
        set_err(g, 400, "invalid_grant", "authorization code was already used");
        return rc < 0 ? rc : 0;
    }
    if (g->redeem_code) {
        rc = redeem_code(db, g);
        if (rc != 0)
            return rc < 0 ? rc : 0;   /* 1: refused, the revocation commits */
    }

    if (g->revoke_family) {
        log_warn("refresh token reused: revoking its family", "tenant", g->t.name, "client_id",
                 g->c.client_id, "family_id", g->old.family_id, NULL);
        rc = oauth_family_revoke(db, g->old.family_id);
        set_err(g, 400, "invalid_grant", "refresh token is invalid");
        return rc < 0 ? rc : 0;
    }
    if (g->login_failure) {
        rc = user_auth_record_failure(db, g->t.name, g->ua.user_id, &g->t.s, g->now);
        set_err(g, 400, "invalid_grant", "invalid username or password");
        return rc < 0 ? rc : 0;
    }
    if (g->rotate) {
        rc = rotate_old(db, g);
        if (rc != 0)
            return rc < 0 ? rc : 0;   /* 1: refused, but what it wrote (a family revocation) commits */
    }
    if (g->login_reset && (rc = user_auth_record_success(db, g->t.name, g->user_id)) < 0)
        return rc;
    if (g->write_refresh && (rc = insert_refresh(db, g)) < 0)
        return rc;
    if (g->write_opaque && (rc = insert_opaque(db, g)) < 0)
        return rc;
    return 0;
}

static void grant_done(void *arg, int rc)
{
    struct grant *g = arg;
    if (rc != 0)
        log_error("token: write failed", "tenant", g->t.name, "client_id", g->c.client_id, "rc", log_i64(rc),
                  NULL);
    respond_final(g, rc);
    http_resume(g->req);
}

static bool needs_write(const struct grant *g)
{
    return g->write_opaque || g->write_refresh || g->rotate || g->revoke_family || g->login_failure ||
           g->login_reset || g->redeem_code || g->code_reuse;
}

/* From a handler on the HTTP worker: answer now or suspend for the writer. */
static enum http_result finish(struct grant *g)
{
    if (!needs_write(g)) {
        respond_final(g, 0);
        return HTTP_DONE;
    }
    int rc = store_submit(g->n->store, grant_write, grant_done, g);
    if (rc != 0) {
        respond_final(g, rc);
        return HTTP_DONE;
    }
    return HTTP_SUSPEND;
}

/* From a worker-pool job (the request is already suspended). */
static void finish_async(struct grant *g)
{
    if (needs_write(g)) {
        int rc = store_submit(g->n->store, grant_write, grant_done, g);
        if (rc == 0)
            return;
        respond_final(g, rc);
    } else {
        respond_final(g, 0);
    }
    http_resume(g->req);
}

/* ---------------------------------------------------------------- mint */

/* Mints the access token (and ID and refresh tokens when due) for g's
 * client, user and scope. 0, or an error already recorded in g->err. */
static int mint(struct grant *g, struct db *db, bool with_refresh)
{
    struct arena *a = &g->req->arena;
    char *s = NULL;
    int rc;

    if (with_refresh)
        oauth_random_token(g->refresh_token, g->rt_hash);
    if (g->c.opaque_tokens) {
        char tok[OAUTH_TOKEN_BUFSZ];
        oauth_random_token(tok, g->at_hash);
        g->access_token = arena_strdup(a, tok);
        g->write_opaque = true;
    } else {
        struct at_claims ac = {
            .iss = g->t.issuer,
            .sub = g->user_id ? g->user_id : g->c.client_id,
            .aud = g->t.issuer,
            .client_id = g->c.client_id,
            .scope = g->scope_str,
            .iat = g->now,
            .exp = g->now + g->at_ttl,
            .auth_time = g->user_id ? g->auth_time : 0,
            .groups_json = g->groups_json,
        };
        if (g->jti)
            snprintf(ac.jti, sizeof(ac.jti), "%s", g->jti);
        else if (with_refresh) {
            /* minted with a refresh token: its jti derives from that token's
             * hash, so revoking the family can deny-list it (oauth_family_revoke) */
            oauth_derive_id("jti", g->rt_hash, g->rt_jti);
            snprintf(ac.jti, sizeof(ac.jti), "%s", g->rt_jti);
        }
        rc = oauth_jwt_access_token(g->n, db, g->t.name, &ac, &s);
        if (rc < 0)
            goto fail;
        g->access_token = arena_strdup(a, s);
        free(s);
        s = NULL;
    }
    if (with_refresh) {
        g->write_refresh = true;
        if (!g->family_id) {
            char *fam = arena_alloc(a, UUID_STRLEN + 1);
            uuid_v4(fam);
            g->family_id = fam;
        }
    }
    if (g->user_id && oauth_scopes_has(&g->scope, "openid")) {
        struct id_claims ic = {
            .iss = g->t.issuer,
            .sub = g->user_id,
            .aud = g->c.client_id,
            .iat = g->now,
            .exp = g->now + g->id_ttl,
            .auth_time = g->auth_time,
            .nonce = g->nonce,
            .sid = g->sid,
            .access_token = g->access_token,
            .scope = &g->scope,
            .user_data = g->user_data,
            .user_name = g->user_name,
            .updated_at = g->user_updated_at,
            .groups_json = g->groups_json,
        };
        rc = oauth_id_token(g->n, db, g->t.name, &ic, &s);
        if (rc < 0)
            goto fail;
        g->id_token = arena_strdup(a, s);
        free(s);
    }
    return 0;
fail:
    log_error("token: cannot sign", "tenant", g->t.name, "rc", log_i64(rc), NULL);
    set_err(g, 500, "server_error", rc == -ENOENT ? "tenant has no signing key" : "signing failed");
    return rc;
}

static bool refresh_allowed(const struct grant *g)
{
    return (g->t.s.grant_types & GRANT_REFRESH_TOKEN) && client_allows_grant(&g->c, GRANT_REFRESH_TOKEN);
}

/* ------------------------------------------------------ directory users */

/* Answers a directory request that failed (on the pool thread, or on the
 * HTTP worker when nothing could be queued). */
static void directory_refused(struct grant *g, int rc, const char *detail)
{
    struct arena *a = &g->req->arena;
    char domain[USERSTORE_NAME_MAX + 1] = "";
    struct str user;

    if (g->user_id && g->user_id[0]) {
        userstore_id_parse(g->user_id, domain, &user);
    } else if (g->tr.username) {
        userstore_split(g->tr.username, strlen(g->tr.username), domain, &user);
    }
    log_info("password grant refused", "tenant", g->t.name, "client_id", g->c.client_id, "store", domain,
             "reason", rc == -EACCES ? "invalid_credentials" : log_i64(rc), "detail", detail ? detail : "",
             NULL);
    switch (rc) {
    case -EACCES:
    case -EINVAL:
    case -ENOENT:
        set_err(g, 400, "invalid_grant",
                g->directory_reread ? "the user is no longer active" : "invalid username or password");
        break;
    case -ETIMEDOUT:
        set_err(g, 503, "temporarily_unavailable",
                arena_sprintf(a, "the user directory %s did not answer in time", domain));
        break;
    case -ENETDOWN:
        set_err(g, 503, "temporarily_unavailable", arena_sprintf(a, "the user directory %s is unavailable", domain));
        break;
    case -EAGAIN:
        set_err(g, 503, "temporarily_unavailable", arena_sprintf(a, "the user directory %s is busy; retry", domain));
        break;
    case -ESHUTDOWN:
        set_err(g, 503, "temporarily_unavailable", "server shutting down");
        break;
    default:
        set_err(g, 500, "server_error", arena_sprintf(a, "the user directory %s failed", domain));
        break;
    }
}

/* Pool-thread callback: the user as the directory has it -> mint and answer. */
static void directory_done(void *arg, struct userstore_reply *r)
{
    struct grant *g = arg;
    struct arena *a = &g->req->arena;
    bool with_refresh = g->directory_refresh;

    if (r->rc != 0) {
        directory_refused(g, r->rc, r->detail);
        respond_final(g, 0);
        http_resume(g->req);
        return;
    }
    char *data = jsonx_dump(r->user.scim), *groups = jsonx_dump(r->user.groups);
    g->user_id = arena_strdup(a, r->user.id);
    g->user_name = arena_strdup(a, r->user.user_name);
    g->user_data = arena_strdup(a, data);
    g->groups_json = arena_strdup(a, groups);
    g->user_updated_at = 0;
    free(data);
    free(groups);
    if (!g->directory_reread) {          /* a password grant: a fresh authentication */
        g->auth_time = g->now;
        with_refresh = refresh_allowed(g);
    }
    if (mint(g, store_reader(g->n->store), with_refresh) < 0) {
        respond_final(g, 0);
        http_resume(g->req);
        return;
    }
    finish_async(g);
}

static enum http_result directory_submitted(struct grant *g, int rc)
{
    if (rc == 0)
        return HTTP_SUSPEND;
    directory_refused(g, rc, "not queued");
    respond_final(g, 0);
    return HTTP_DONE;
}

/* Password grant for DOMAIN/username: search and bind in the directory. */
static enum http_result grant_password_directory(struct grant *g)
{
    return directory_submitted(g, userstore_authenticate_async(g->n, g->t.name, g->tr.username, g->tr.password,
                                                               g->tr.password_len, directory_done, g));
}

/* Reads directory user g->user_id again, then mints (refresh token too
 * when with_refresh). For grants that start from a stored user id. */
static enum http_result directory_reload(struct grant *g, bool with_refresh)
{
    g->directory_reread = true;
    g->directory_refresh = with_refresh;
    return directory_submitted(g, userstore_lookup_async(g->n, g->t.name, g->user_id, directory_done, g));
}

/* --------------------------------------------------------------- grants */

static enum http_result grant_client_credentials(struct grant *g, struct db *db)
{
    if (!g->c.confidential) {
        oauth_respond_err(g->req, 400, "unauthorized_client", "public clients cannot use client_credentials");
        return HTTP_DONE;
    }
    if (mint(g, db, false) < 0) {
        oauth_respond_error(g->req, &g->err);
        return HTTP_DONE;
    }
    return finish(g);
}

/* Runs on the worker pool: argon2id, then mint and answer. */
static void password_job(void *arg)
{
    struct grant *g = arg;
    struct db *db = store_reader(g->n->store);
    int rc = user_auth_verify(db, g->t.name, g->tr.username, g->tr.password, g->tr.password_len, &g->t.s,
                              g->now, &g->req->arena, &g->ua);
    if (rc < 0) {
        set_err(g, 500, "server_error", "storage error");
        goto answer;
    }
    if (g->ua.result != USER_AUTH_OK) {
        log_info("password grant refused", "tenant", g->t.name, "client_id", g->c.client_id, "reason",
                 user_auth_result_name(g->ua.result), NULL);
        if (g->ua.write == USER_AUTH_WRITE_FAILURE)
            g->login_failure = true;
        else
            set_err(g, 400, "invalid_grant", "invalid username or password");
        goto answer;
    }
    g->user_id = g->ua.user_id;
    g->user_name = g->ua.user_name;
    g->user_data = g->ua.data;
    g->user_updated_at = g->ua.updated_at;
    g->auth_time = g->now;
    g->login_reset = g->ua.write == USER_AUTH_WRITE_RESET;
    mint(g, db, refresh_allowed(g));
answer:
    if (g->failed) {
        respond_final(g, 0);
        http_resume(g->req);
        return;
    }
    finish_async(g);
}

static enum http_result grant_password(struct grant *g)
{
    if (userstore_routes(g->n, g->t.name, g->tr.username))
        return grant_password_directory(g);
    int rc = oauth_workers_submit(password_job, g);
    if (rc < 0) {
        oauth_respond_write_error(g->req, rc);
        return HTTP_DONE;
    }
    return HTTP_SUSPEND;
}

static int load_user(struct grant *g, struct db *db)
{
    struct db_stmt *st = db_prepare(db, "SELECT active, user_name, data, updated_at FROM users"
                                        " WHERE tenant = $1 AND id = $2");
    if (!st)
        return -EIO;
    db_bind_text(st, 1, g->t.name, -1);
    db_bind_text(st, 2, g->user_id, -1);
    int rc = db_step(st);
    if (rc == DB_ROW) {
        struct arena *a = &g->req->arena;
        rc = db_col_int64(st, 0) ? 0 : -EACCES;
        g->user_name = arena_strdup(a, db_col_text(st, 1));
        g->user_data = arena_strdup(a, db_col_text(st, 2));
        g->user_updated_at = db_col_int64(st, 3);
    } else {
        rc = rc == DB_DONE ? -ENOENT : -EIO;
    }
    db_done(st);
    return rc;
}

static enum http_result grant_refresh(struct grant *g, struct db *db)
{
    struct http_request *req = g->req;
    struct arena *a = &req->arena;
    struct oauth_token_info *old = &g->old;
    int rc = oauth_refresh_lookup(db, g->tr.refresh_token, g->tr.refresh_token_len, a, old);

    if (rc == -EIO) {
        oauth_respond_err(req, 500, "server_error", "storage error");
        return HTTP_DONE;
    }
    if (rc < 0 || strcmp(old->tenant, g->t.name) != 0 || strcmp(old->client_id, g->c.client_id) != 0) {
        oauth_respond_err(req, 400, "invalid_grant", "refresh token is invalid");
        return HTTP_DONE;
    }
    if (strcmp(old->status, "active") != 0) {
        g->revoke_family = true;     /* replay of a rotated or revoked token */
        return finish(g);
    }
    if (old->exp <= g->now) {
        oauth_respond_err(req, 400, "invalid_grant", "refresh token expired");
        return HTTP_DONE;
    }

    /* Scope: narrowing allowed, never widening; scopes the client has lost since are dropped. */
    struct oauth_scopes granted;
    oauth_scope_parse(old->scope, strlen(old->scope), a, &granted);
    const struct oauth_scopes *want = g->tr.has_scope ? &g->tr.scope : &granted;
    g->scope.items = arena_alloc(a, (want->n + 1) * sizeof(char *));
    g->scope.n = 0;
    for (size_t i = 0; i < want->n; i++) {
        if (!oauth_scopes_has(&granted, want->items[i])) {
            oauth_respond_err(req, 400, "invalid_scope", "scope exceeds the scope originally granted");
            return HTTP_DONE;
        }
        if (client_has_scope(&g->c, want->items[i]))
            g->scope.items[g->scope.n++] = want->items[i];
    }
    g->scope_str = oauth_scopes_join(&g->scope, a);

    if (old->user_id && userstore_is_user_id(old->user_id)) {
        g->user_id = old->user_id;
        g->auth_time = old->auth_time;
        g->family_id = old->family_id;
        g->rotate = true;
        return directory_reload(g, true);
    }
    if (old->user_id) {
        g->user_id = old->user_id;
        rc = load_user(g, db);
        if (rc == -EIO) {
            oauth_respond_err(req, 500, "server_error", "storage error");
            return HTTP_DONE;
        }
        if (rc < 0) {
            oauth_respond_err(req, 400, "invalid_grant", "the user is no longer active");
            return HTTP_DONE;
        }
    }
    g->auth_time = old->auth_time;
    g->family_id = old->family_id;
    g->rotate = true;
    if (mint(g, db, true) < 0) {
        oauth_respond_error(req, &g->err);
        return HTTP_DONE;
    }
    return finish(g);
}

/* A UUID-shaped id (version 8, RFC 9562 §5.8) derived from a token's hash. */
void oauth_derive_id(const char *label, const char *code_hash, char out[UUID_STRLEN + 1])
{
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_state st;

    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const unsigned char *)label, strlen(label));
    crypto_hash_sha256_update(&st, (const unsigned char *)"|", 1);
    crypto_hash_sha256_update(&st, (const unsigned char *)code_hash, strlen(code_hash));
    crypto_hash_sha256_final(&st, h);
    h[6] = (unsigned char)((h[6] & 0x0f) | 0x80);
    h[8] = (unsigned char)((h[8] & 0x3f) | 0x80);
    snprintf(out, UUID_STRLEN + 1, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", h[0],
             h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]);
}

struct code_row {
    const char *tenant, *client_id, *user_id, *redirect_uri, *scope, *nonce, *challenge, *sid;
    int64_t auth_time, expires_at, used;
};

static int load_code(struct db *db, const char *hash, struct arena *a, struct code_row *r)
{
    struct db_stmt *st = db_prepare(db, "SELECT tenant, client_id, user_id, redirect_uri, scope, nonce,"
                                        " code_challenge, session_id, auth_time, expires_at, used"
                                        " FROM auth_codes WHERE code_hash = $1");
    if (!st)
        return -EIO;
    db_bind_text(st, 1, hash, -1);
    int rc = db_step(st);
    if (rc == DB_ROW) {
        r->tenant = arena_strdup(a, db_col_text(st, 0));
        r->client_id = arena_strdup(a, db_col_text(st, 1));
        r->user_id = arena_strdup(a, db_col_text(st, 2));
        r->redirect_uri = arena_strdup(a, db_col_text(st, 3));
        r->scope = arena_strdup(a, db_col_text(st, 4));
        r->nonce = db_col_is_null(st, 5) ? NULL : arena_strdup(a, db_col_text(st, 5));
        r->challenge = db_col_is_null(st, 6) ? NULL : arena_strdup(a, db_col_text(st, 6));
        r->sid = db_col_is_null(st, 7) ? NULL : arena_strdup(a, db_col_text(st, 7));
        r->auth_time = db_col_int64(st, 8);
        r->expires_at = db_col_int64(st, 9);
        r->used = db_col_int64(st, 10);
        rc = 0;
    } else {
        rc = rc == DB_DONE ? -ENOENT : -EIO;
    }
    db_done(st);
    return rc;
}

static enum http_result grant_code(struct grant *g, struct db *db)
{
    struct http_request *req = g->req;
    struct arena *a = &req->arena;
    struct code_row r;

    crypto_token_hash(g->tr.code, g->tr.code_len, g->code_hash);
    int rc = load_code(db, g->code_hash, a, &r);
    if (rc == -EIO) {
        oauth_respond_err(req, 500, "server_error", "storage error");
        return HTTP_DONE;
    }
    if (rc < 0 || strcmp(r.tenant, g->t.name) != 0 || strcmp(r.client_id, g->c.client_id) != 0) {
        oauth_respond_err(req, 400, "invalid_grant", "authorization code is invalid");
        return HTTP_DONE;
    }
    oauth_derive_id("family", g->code_hash, g->code_family);
    oauth_derive_id("jti", g->code_hash, g->code_jti);
    if (r.used != 0) {
        g->code_reuse = true;       /* a replay: revoke what the first use issued */
        return finish(g);
    }
    if (r.expires_at <= g->now) {
        oauth_respond_err(req, 400, "invalid_grant", "authorization code expired");
        return HTTP_DONE;
    }
    /* RFC 6749 §4.1.3: the same redirect_uri; it may be left out only where
     * the authorization request could leave it out (one registered URI) */
    bool redirect_ok = g->tr.redirect_uri ? strcmp(g->tr.redirect_uri, r.redirect_uri) == 0
                                          : g->c.nredirect_uris == 1 && strcmp(g->c.redirect_uris[0], r.redirect_uri) == 0;
    if (!redirect_ok) {
        oauth_respond_err(req, 400, "invalid_grant", "redirect_uri does not match the authorization request");
        return HTTP_DONE;
    }
    if (r.challenge) {
        if (!g->tr.code_verifier) {
            oauth_respond_err(req, 400, "invalid_grant", "code_verifier is required (PKCE)");
            return HTTP_DONE;
        }
        if (!oauth_pkce_s256_matches(g->tr.code_verifier, g->tr.code_verifier_len, r.challenge)) {
            oauth_respond_err(req, 400, "invalid_grant", "code_verifier does not match the code_challenge");
            return HTTP_DONE;
        }
    } else if (g->tr.code_verifier) {
        /* RFC 9700 §4.8.2: no PKCE downgrade */
        oauth_respond_err(req, 400, "invalid_grant", "no code_challenge was sent with the authorization request");
        return HTTP_DONE;
    }

    /* the scope of the code, less what the client has lost since */
    struct oauth_scopes granted;
    oauth_scope_parse(r.scope, strlen(r.scope), a, &granted);
    g->scope.items = arena_alloc(a, (granted.n + 1) * sizeof(char *));
    g->scope.n = 0;
    for (size_t i = 0; i < granted.n; i++)
        if (client_has_scope(&g->c, granted.items[i]))
            g->scope.items[g->scope.n++] = granted.items[i];
    g->scope_str = oauth_scopes_join(&g->scope, a);

    g->user_id = r.user_id;
    g->auth_time = r.auth_time;
    g->nonce = r.nonce;
    g->sid = r.sid;
    g->family_id = g->code_family;
    g->jti = g->code_jti;
    g->redeem_code = true;
    g->code_keep_until = g->now + g->at_ttl > r.expires_at ? g->now + g->at_ttl : r.expires_at;
    /* a directory user (login form with DOMAIN/username): read from the
     * directory as it is now, on the store's pool; the code is redeemed
     * only once that answered (a directory that is down leaves it unused) */
    if (userstore_is_user_id(g->user_id))
        return directory_reload(g, refresh_allowed(g));
    rc = load_user(g, db);
    if (rc == -EIO) {
        oauth_respond_err(req, 500, "server_error", "storage error");
        return HTTP_DONE;
    }
    if (rc < 0) {
        oauth_respond_err(req, 400, "invalid_grant", "the user is no longer active");
        return HTTP_DONE;
    }
    if (mint(g, db, refresh_allowed(g)) < 0) {
        oauth_respond_error(req, &g->err);
        return HTTP_DONE;
    }
    return finish(g);
}

/* ------------------------------------------------------------- endpoint */

/* Requested scopes must all be allowed for the client; none -> defaults. */
static int resolve_scope(struct grant *g)
{
    struct arena *a = &g->req->arena;
    if (g->tr.has_scope) {
        for (size_t i = 0; i < g->tr.scope.n; i++)
            if (!client_has_scope(&g->c, g->tr.scope.items[i]))
                return -EACCES;
        g->scope = g->tr.scope;
    } else {
        g->scope.items = arena_alloc(a, (g->c.ndefault_scopes + 1) * sizeof(char *));
        g->scope.n = 0;
        for (size_t i = 0; i < g->c.ndefault_scopes; i++)
            g->scope.items[g->scope.n++] = g->c.default_scopes[i];
    }
    g->scope_str = oauth_scopes_join(&g->scope, a);
    return 0;
}

static enum http_result token_request(struct http_request *req, struct db *db)
{
    struct node *n = req->route_data;
    struct grant *g = arena_alloc(&req->arena, sizeof(*g));
    struct oauth_error err;

    g->req = req;
    g->n = n;
    g->now = now_s();
    if (!req->content_type || strcmp(req->content_type, "application/x-www-form-urlencoded") != 0) {
        oauth_respond_err(req, 400, "invalid_request", "expected application/x-www-form-urlencoded");
        return HTTP_DONE;
    }
    if (oauth_token_request_parse(req->body.p, req->body.len, http_header(req, "Authorization"),
                                  &req->arena, &g->tr, &err) < 0) {
        oauth_respond_error(req, &err);
        return HTTP_DONE;
    }
    if (oauth_load_tenant(n, req, db, &g->t) < 0)
        return HTTP_DONE;
    if (oauth_client_authenticate(db, g->t.name, &g->tr.auth, false, &req->arena, &g->c, &err) < 0) {
        oauth_respond_error(req, &err);
        return HTTP_DONE;
    }
    if (!(g->t.s.grant_types & g->tr.grant)) {
        oauth_respond_err(req, 400, "unauthorized_client",
                          arena_sprintf(&req->arena, "grant %s is not enabled for this tenant",
                                        g->tr.grant_type));
        return HTTP_DONE;
    }
    if (!client_allows_grant(&g->c, g->tr.grant)) {
        oauth_respond_err(req, 400, "unauthorized_client",
                          arena_sprintf(&req->arena, "client may not use grant %s", g->tr.grant_type));
        return HTTP_DONE;
    }
    g->at_ttl = g->c.access_token_ttl > 0 ? g->c.access_token_ttl : g->t.s.access_token_ttl;
    g->rt_ttl = g->c.refresh_token_ttl > 0 ? g->c.refresh_token_ttl : g->t.s.refresh_token_ttl;
    g->id_ttl = g->c.id_token_ttl > 0 ? g->c.id_token_ttl : g->t.s.id_token_ttl;

    if (g->tr.grant == GRANT_REFRESH_TOKEN)
        return grant_refresh(g, db);
    if (g->tr.grant == GRANT_AUTHORIZATION_CODE)
        return grant_code(g, db);
    if (resolve_scope(g) < 0) {
        oauth_respond_err(req, 400, "invalid_scope", "requested scope is not allowed for this client");
        return HTTP_DONE;
    }
    if (g->tr.grant == GRANT_CLIENT_CREDENTIALS)
        return grant_client_credentials(g, db);
    return grant_password(g);
}

/* Every read of a token request (tenant, client, refresh token, user, key
 * cache refresh) happens in one read transaction: one consistent snapshot,
 * and one WAL read-lock round trip instead of one per statement, which is
 * measurable on the client_credentials hot path. */
enum http_result oauth_token_handler(struct http_request *req)
{
    struct node *n = req->route_data;
    struct db *db = store_reader(n->store);
    bool txn = oauth_read_begin(db) == 0;
    enum http_result r = token_request(req, db);
    if (txn)
        oauth_read_end(db);
    return r;
}
