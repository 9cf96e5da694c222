/*
 * session — SSO session rows and their cookie (the model is in session.h).
 *
 * Reads happen on the HTTP worker's read connection; every write is a
 * helper called from a store write job of authorize.c, logout.c or
 * session_admin.c, so sessions change only through the writer and reach the
 * standby with the rest of the `sessions` class.
 */
#include "oauth/session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/rand.h"
#include "core/xmalloc.h"
#include "identity/tenant.h"
#include "ldap/userstore.h"

#define TOUCH_EVERY 60       /* seconds between last_seen updates of one session */

/* --------------------------------------------------------------- cookie */

const char *session_cookie_name(const char *tenant, struct arena *a)
{
    if (strcmp(tenant, TENANT_DEFAULT) == 0)
        return SESSION_COOKIE;
    return arena_sprintf(a, SESSION_COOKIE "_%s", tenant);
}

const char *session_cookie_path(const char *tenant, struct arena *a)
{
    if (strcmp(tenant, TENANT_DEFAULT) == 0)
        return "/";
    return arena_sprintf(a, "/t/%s", tenant);
}

static const char *attrs(struct http_request *req, const char *tenant, bool secure, const char *extra)
{
    return arena_sprintf(&req->arena, "Path=%s; HttpOnly; SameSite=Lax%s%s",
                         session_cookie_path(tenant, &req->arena), secure && !req->tls ? "; Secure" : "",
                         extra);
}

void session_set_cookie(struct http_request *req, const char *tenant, const char *value, bool secure)
{
    http_set_cookie(req, session_cookie_name(tenant, &req->arena), value, attrs(req, tenant, secure, ""));
}

void session_clear_cookie(struct http_request *req, const char *tenant, bool secure)
{
    http_set_cookie(req, session_cookie_name(tenant, &req->arena), "",
                    attrs(req, tenant, secure, "; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"));
}

static bool cookie_value_ok(const char *v)
{
    if (!v || strlen(v) != SESSION_VALUE_LEN)
        return false;
    for (size_t i = 0; i < SESSION_VALUE_LEN; i++) {
        char c = v[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
              c == '_'))
            return false;
    }
    return true;
}

/* ---------------------------------------------------------------- reads */

int session_from_request(struct http_request *req, struct db *db, const char *tenant, int64_t now,
                         struct sso_session *out)
{
    struct arena *a = &req->arena;
    const char *v = http_cookie(req, session_cookie_name(tenant, a));
    int rc;

    memset(out, 0, sizeof(*out));
    if (!cookie_value_ok(v))
        return -ENOENT;
    crypto_token_hash(v, SESSION_VALUE_LEN, out->id_hash);
    /* one statement: the session and whether its user may still sign in */
    struct db_stmt *st = db_prepare(db, "SELECT s.tenant, s.user_id, s.auth_time, s.created_at, s.expires_at,"
                                        " s.last_seen, s.data, u.active FROM sso_sessions s"
                                        " LEFT JOIN users u ON u.tenant = s.tenant AND u.id = s.user_id"
                                        " WHERE s.id_hash = $1");
    if (!st)
        return -EIO;
    db_bind_text(st, 1, out->id_hash, -1);
    rc = db_step(st);
    if (rc == DB_ROW) {
        /* a directory user has no users row: the code grant (and every
         * refresh) reads it from its directory instead */
        bool user_ok = db_col_is_null(st, 7) ? userstore_is_user_id(db_col_text(st, 1)) : db_col_int64(st, 7) != 0;
        bool ok = strcmp(db_col_text(st, 0), tenant) == 0 && db_col_int64(st, 4) > now && user_ok;
        if (ok) {
            out->tenant = arena_strdup(a, db_col_text(st, 0));
            out->user_id = arena_strdup(a, db_col_text(st, 1));
            out->auth_time = db_col_int64(st, 2);
            out->created_at = db_col_int64(st, 3);
            out->expires_at = db_col_int64(st, 4);
            out->last_seen = db_col_int64(st, 5);
            json_t *d = json_loads(db_col_text(st, 6), 0, NULL);
            const char *sid = jsonx_str(d, "sid", NULL);
            out->sid = sid ? arena_strdup(a, sid) : NULL;
            json_decref(d);
        }
        rc = ok ? 0 : -ENOENT;
    } else {
        rc = rc == DB_DONE ? -ENOENT : -EIO;
    }
    db_done(st);
    return rc;
}

json_t *session_list_json(struct db *db, const char *tenant, const char *user_id, int64_t now)
{
    struct db_stmt *st = db_prepare(db, "SELECT auth_time, created_at, expires_at, last_seen, data"
                                        " FROM sso_sessions WHERE tenant = $1 AND user_id = $2 AND expires_at > $3"
                                        " ORDER BY created_at DESC, id_hash LIMIT 1000");
    json_t *arr;
    int rc;

    if (!st)
        return NULL;
    db_bind_text(st, 1, tenant, -1);
    db_bind_text(st, 2, user_id, -1);
    db_bind_int64(st, 3, now);
    arr = json_array();
    while ((rc = db_step(st)) == DB_ROW) {
        json_t *d = json_loads(db_col_text(st, 4), 0, NULL);
        json_t *o = json_object();
        json_object_set_new(o, "sid", json_string(jsonx_str(d, "sid", "")));
        json_object_set_new(o, "user_id", json_string(user_id));
        json_object_set_new(o, "auth_time", json_integer(db_col_int64(st, 0)));
        json_object_set_new(o, "created_at", json_integer(db_col_int64(st, 1)));
        json_object_set_new(o, "expires_at", json_integer(db_col_int64(st, 2)));
        json_object_set_new(o, "last_seen", json_integer(db_col_int64(st, 3)));
        json_object_set_new(o, "remote_addr", json_string(jsonx_str(d, "remote_addr", "")));
        json_object_set_new(o, "user_agent", json_string(jsonx_str(d, "user_agent", "")));
        json_array_append_new(arr, o);
        json_decref(d);
    }
    db_done(st);
    if (rc != DB_DONE) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

/* --------------------------------------------------------------- writes */

void session_generate(struct session_new *s)
{
    rand_token(s->cookie, 32);
    crypto_token_hash(s->cookie, strlen(s->cookie), s->id_hash);
    uuid_v4(s->sid);
}

/* The user agent as stored: at most SESSION_UA_MAX bytes, cut at a UTF-8
 * boundary, control characters dropped. xmalloc'd. */
static char *clean_ua(const char *ua)
{
    size_t n = ua ? strlen(ua) : 0, j = 0;
    char *out = xmalloc(SESSION_UA_MAX + 1);
    if (n > SESSION_UA_MAX) {
        n = SESSION_UA_MAX;
        while (n > 0 && ((unsigned char)ua[n] & 0xC0) == 0x80)
            n--;
    }
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)ua[i] >= 0x20 && ua[i] != 0x7f)
            out[j++] = ua[i];
    out[j] = '\0';
    return out;
}

int session_insert(struct db *db, const struct session_new *s, const char *tenant, const char *user_id,
                   int64_t auth_time, int64_t now, int64_t ttl, const char *remote_addr,
                   const char *user_agent)
{
    char *ua = clean_ua(user_agent);
    json_t *d = json_pack("{s:s, s:s, s:s}", "sid", s->sid, "remote_addr", remote_addr ? remote_addr : "",
                          "user_agent", ua);
    char *data = d ? jsonx_dump(d) : xstrdup("{}");   /* json_pack refuses invalid UTF-8 */
    json_decref(d);
    free(ua);

    int rc = DB_ERR;
    struct db_stmt *st = db_prepare(db, "INSERT INTO sso_sessions (id_hash, tenant, user_id, auth_time,"
                                        " created_at, expires_at, last_seen, data)"
                                        " VALUES ($1, $2, $3, $4, $5, $6, $5, $7)");
    if (st) {
        db_bind_text(st, 1, s->id_hash, -1);
        db_bind_text(st, 2, tenant, -1);
        db_bind_text(st, 3, user_id, -1);
        db_bind_int64(st, 4, auth_time);
        db_bind_int64(st, 5, now);
        db_bind_int64(st, 6, now + ttl);
        db_bind_text(st, 7, data, -1);
        rc = db_step(st);
        db_done(st);
    }
    free(data);
    return rc < 0 ? rc : 0;
}

int session_delete(struct db *db, const char *id_hash)
{
    int rc = db_execp(db, "DELETE FROM sso_sessions WHERE id_hash = $1", id_hash, NULL);
    return rc < 0 ? rc : 0;
}

int session_touch(struct db *db, const char *id_hash, int64_t now)
{
    struct db_stmt *st = db_prepare(db, "UPDATE sso_sessions SET last_seen = $2"
                                        " WHERE id_hash = $1 AND last_seen < $3");
    if (!st)
        return DB_ERR;
    db_bind_text(st, 1, id_hash, -1);
    db_bind_int64(st, 2, now);
    db_bind_int64(st, 3, now - TOUCH_EVERY);
    int rc = db_step(st);
    db_done(st);
    return rc < 0 ? rc : 0;
}

int session_delete_user(struct db *db, const char *tenant, const char *user_id, const char *sid,
                        int64_t *deleted)
{
    *deleted = 0;
    if (!sid) {
        int rc = db_execp(db, "DELETE FROM sso_sessions WHERE tenant = $1 AND user_id = $2", tenant, user_id,
                          NULL);
        if (rc < 0)
            return rc;
        *deleted = db_changes(db);
        return 0;
    }
    /* The sid lives in the JSON data: find it in C rather than with a
     * dialect-specific JSON operator (the SQL stays portable). */
    struct db_stmt *st = db_prepare(db, "SELECT id_hash, data FROM sso_sessions WHERE tenant = $1 AND user_id = $2");
    char victim[CRYPTO_TOKEN_HASH_BUFSZ] = "";
    int rc;
    if (!st)
        return DB_ERR;
    db_bind_text(st, 1, tenant, -1);
    db_bind_text(st, 2, user_id, -1);
    while ((rc = db_step(st)) == DB_ROW) {
        json_t *d = json_loads(db_col_text(st, 1), 0, NULL);
        const char *s = jsonx_str(d, "sid", NULL);
        bool match = s && strcmp(s, sid) == 0;
        json_decref(d);
        if (match) {
            snprintf(victim, sizeof(victim), "%s", db_col_text(st, 0));
            rc = DB_DONE;
            break;
        }
    }
    db_done(st);
    if (rc < 0)
        return rc;
    if (victim[0]) {
        rc = session_delete(db, victim);
        if (rc < 0)
            return rc;
        *deleted = 1;
    }
    return 0;
}
