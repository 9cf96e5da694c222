/*
 * session — SSO sessions of the browser sign-in: a cookie naming a
 * server-side row in sso_sessions (replication class `sessions`).
 *
 * The cookie value is 256 random bits (base64url, 43 characters); only its
 * SHA-256 is stored (id_hash), so a copy of the database cannot be turned
 * into signed-in browsers. Each session also has a public id, `sid` (a
 * UUID kept in the row's data), which ID tokens carry (OIDC Front-Channel
 * Logout's sid claim) and the admin API uses to name a session; it cannot
 * be turned into a cookie either.
 *
 * Cookie, per tenant: `refuge_sid` with Path=/ for the default tenant,
 * `refuge_sid_T` with Path=/t/T for tenant T (a tenant's cookie is never
 * sent to another tenant, and the default tenant's root path cannot shadow
 * it). Attributes: HttpOnly; SameSite=Lax (the RP's top-level redirect to
 * /oauth2/authorize carries it, third-party subrequests do not); Secure
 * when the request came over TLS or public_url is https. No Max-Age: the
 * browser forgets it when it closes, the server forgets the row at
 * expires_at (login time + the tenant's session_ttl, not sliding).
 *
 * Row data: {"sid", "remote_addr", "user_agent"} (the last two for the
 * admin listing; the user agent is cut to SESSION_UA_MAX bytes).
 */
#ifndef REFUGE_OAUTH_SESSION_H
#define REFUGE_OAUTH_SESSION_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include "core/arena.h"
#include "core/uuid.h"
#include "crypto/secret.h"
#include "http/http.h"
#include "store/db.h"

#define SESSION_COOKIE "refuge_sid"
#define SESSION_VALUE_LEN 43
#define SESSION_UA_MAX 256

struct sso_session {
    char id_hash[CRYPTO_TOKEN_HASH_BUFSZ];
    const char *sid;
    const char *tenant;
    const char *user_id;
    int64_t auth_time, created_at, expires_at, last_seen;
};

/* A freshly generated session: the cookie value, its hash and the public id. */
struct session_new {
    char cookie[48];
    char id_hash[CRYPTO_TOKEN_HASH_BUFSZ];
    char sid[UUID_STRLEN + 1];
};

/* The cookie name and path of a tenant's session (arena strings). */
const char *session_cookie_name(const char *tenant, struct arena *a);
const char *session_cookie_path(const char *tenant, struct arena *a);

/* The request's SSO session for `tenant`: the cookie, a row with that hash,
 * of this tenant, unexpired at `now`, whose user exists and is active (a
 * directory user, "ldap:...", is checked by the code grant instead).
 * 0, -ENOENT (none of that) or -EIO. Strings live in the request arena. */
int session_from_request(struct http_request *req, struct db *db, const char *tenant, int64_t now,
                         struct sso_session *out);

void session_generate(struct session_new *s);

/* Set-Cookie for a new session / one that clears it. secure adds Secure
 * also without TLS (public_url is https behind a TLS-terminating proxy). */
void session_set_cookie(struct http_request *req, const char *tenant, const char *value, bool secure);
void session_clear_cookie(struct http_request *req, const char *tenant, bool secure);

/* Writer-side. 0 or a DB error (negative). */
int session_insert(struct db *db, const struct session_new *s, const char *tenant, const char *user_id,
                   int64_t auth_time, int64_t now, int64_t ttl, const char *remote_addr,
                   const char *user_agent);
int session_delete(struct db *db, const char *id_hash);
/* Moves last_seen to now when it is older than a minute (bounded write traffic). */
int session_touch(struct db *db, const char *id_hash, int64_t now);
/* Deletes a user's sessions (sid NULL: all of them). *deleted: how many. 0 or DB error. */
int session_delete_user(struct db *db, const char *tenant, const char *user_id, const char *sid,
                        int64_t *deleted);

/* The user's unexpired sessions, newest first:
 * [{"sid","user_id","auth_time","created_at","expires_at","last_seen","remote_addr","user_agent"}].
 * New reference, or NULL on a DB error. */
json_t *session_list_json(struct db *db, const char *tenant, const char *user_id, int64_t now);

#endif
