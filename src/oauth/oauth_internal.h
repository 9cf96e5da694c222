/*
 * oauth_internal — what the files of src/oauth share and nobody else needs:
 * error rendering, client authentication, token minting (JWT access tokens,
 * ID tokens, opaque and refresh tokens), token lookup and verification for
 * introspection, revocation and authz, the CPU worker pool, and the handlers
 * oauth.c wires into routes.
 */
#ifndef REFUGE_OAUTH_INTERNAL_H
#define REFUGE_OAUTH_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "crypto/secret.h"
#include "http/http.h"
#include "identity/client.h"
#include "identity/tenant.h"
#include "node/node.h"
#include "oauth/request.h"
#include "store/db.h"

#define OAUTH_IAT_LEEWAY 30            /* seconds a token's iat may lie in the future */
#define OAUTH_RESP_LIMIT (256 * 1024)  /* token / introspection response bodies */

/* ------------------------------------------------------------ responses */

/* Answers *err in RFC 6749 §5.2 form (adds WWW-Authenticate: Basic for 401). */
void oauth_respond_error(struct http_request *req, const struct oauth_error *err);
void oauth_respond_err(struct http_request *req, int status, const char *code, const char *desc);
/* The answer for a write that failed with rc (-EROFS on a standby: 503). */
void oauth_respond_write_error(struct http_request *req, int rc);
/* Cache-Control: no-store (added by the HTTP layer for JSON) and Pragma: no-cache. */
void oauth_no_cache(struct http_request *req);
/* Loads the request's tenant; answers 404 and returns -ENOENT when unknown. */
int oauth_load_tenant(struct node *n, struct http_request *req, struct db *db, struct tenant *t);

/* A read transaction on the calling thread's reader (cached BEGIN / COMMIT). 0 or DB error. */
int oauth_read_begin(struct db *db);
void oauth_read_end(struct db *db);

/* -------------------------------------------------- client authentication */

/* Loads auth->client_id of `tenant` and checks its credentials: confidential
 * clients must present their secret (basic or post), public clients must
 * present none. require_confidential refuses public clients (introspection).
 * 0, or -EACCES with *err set (invalid_client, 401). */
int oauth_client_authenticate(struct db *db, const char *tenant, const struct oauth_client_auth *auth,
                              bool require_confidential, struct arena *a, struct client *c,
                              struct oauth_error *err);

/* ------------------------------------------------------------- minting */

/* A small JSON writer into a struct buf: fields are appended as "k":v with
 * commas handled; strings are escaped. */
struct jw {
    struct buf *b;
    bool first;
};
void jw_begin(struct jw *w, struct buf *b);
void jw_str(struct jw *w, const char *key, const char *v);
/* For values that need no escaping by construction (base64url tokens, JWS
 * compact serializations, UUIDs, literals): copied as they are. */
void jw_str_safe(struct jw *w, const char *key, const char *v);
void jw_int(struct jw *w, const char *key, int64_t v);
void jw_bool(struct jw *w, const char *key, bool v);
void jw_raw(struct jw *w, const char *key, const char *json);  /* v is already JSON */
void jw_end(struct jw *w);

struct at_claims {
    const char *iss;
    const char *sub;
    const char *aud;
    const char *client_id;
    const char *scope;
    int64_t iat, exp;
    int64_t auth_time;       /* 0: a client token (no auth_time claim) */
    const char *groups_json; /* with scope groups: this JSON array (a directory user's), else the groups table */
    char jti[40];
};

/* Signs an RFC 9068 access token with the tenant's current key. *out is
 * xmalloc'd (caller frees). 0, -ENOENT (no signing key) or -EIO. */
int oauth_jwt_access_token(struct node *n, struct db *db, const char *tenant, struct at_claims *c,
                           char **out);

struct id_claims {
    const char *iss;
    const char *sub;
    const char *aud;            /* client_id */
    int64_t iat, exp, auth_time;
    const char *nonce;          /* NULL: none */
    const char *sid;            /* the SSO session's public id, NULL: none */
    const char *access_token;   /* issued alongside: at_hash (OIDC Core §3.1.3.6), NULL: none */
    const struct oauth_scopes *scope;
    const char *user_data;      /* users.data JSON (SCIM resource) */
    const char *user_name;
    int64_t updated_at;
    const char *groups_json;    /* as in at_claims */
};
int oauth_id_token(struct node *n, struct db *db, const char *tenant, const struct id_claims *c,
                   char **out);
/* at_hash / c_hash of `token` for a JWS alg (OIDC Core §3.1.3.6): base64url
 * of the left half of SHA-256 (ES256, RS256) or SHA-512 (EdDSA/Ed25519).
 * out must hold 44 bytes. 0 or -EINVAL (unknown alg). */
int oauth_token_half_hash(int alg, const char *token, char out[44]);
/* A UUID-shaped id (version 8) derived from a token hash and a label: an
 * access token minted with a refresh token gets jti = oauth_derive_id("jti",
 * hash of that refresh token), so revoking the family revokes it too. */
void oauth_derive_id(const char *label, const char *hash, char out[37]);
/* Adds the OIDC standard claims for the granted scopes from a SCIM user
 * resource (profile, email, phone, address) to obj. */
void oauth_user_claims(json_t *obj, const struct oauth_scopes *scope, const char *user_data,
                       const char *user_name, int64_t updated_at);

/* 256 random bits, base64url (43 chars), and its storage hash. */
#define OAUTH_TOKEN_LEN 43
#define OAUTH_TOKEN_BUFSZ 48      /* >= B64URL_ENCLEN(32) */
void oauth_random_token(char out[OAUTH_TOKEN_BUFSZ], char hash[CRYPTO_TOKEN_HASH_BUFSZ]);
/* The tenant's groups the user is a direct member of (display names). New reference. */

/* ------------------------------------------------------------- lookups */

enum oauth_token_kind { OAUTH_TOKEN_NONE = 0, OAUTH_TOKEN_JWT, OAUTH_TOKEN_OPAQUE, OAUTH_TOKEN_REFRESH };

struct oauth_token_info {
    enum oauth_token_kind kind;
    const char *tenant;
    const char *iss;
    const char *client_id;
    const char *sub;
    const char *user_id;        /* NULL for client tokens */
    const char *scope;
    const char *jti;            /* JWT only */
    const char *aud;
    const char *family_id;      /* refresh tokens (and opaque tokens minted from one) */
    const char *status;         /* refresh tokens: active / rotated / revoked */
    int64_t iat, exp, auth_time;
    char hash[CRYPTO_TOKEN_HASH_BUFSZ];   /* opaque and refresh tokens */
};

bool oauth_looks_like_jwt(const char *tok, size_t n);
/* Verifies a JWT access token of `tenant` (or of the default tenant too when
 * allow_default): signature by kid through the keyring, typ at+jwt, iss,
 * aud, exp > now, iat <= now + leeway, jti not revoked. Without check_revoked
 * the deny-list is not consulted. 0, -EACCES (not a valid token), or a DB error. */
int oauth_jwt_verify(struct node *n, struct db *db, const char *tenant, bool allow_default,
                     const char *tok, size_t len, int64_t now, struct arena *a,
                     struct oauth_token_info *out);
/* Looks up an opaque access token (unexpired) by value. 0, -ENOENT or a DB error. */
int oauth_opaque_lookup(struct node *n, struct db *db, const char *tok, size_t len, int64_t now,
                        struct arena *a, struct oauth_token_info *out);
/* Looks up a refresh token by value, whatever its status and expiry. 0, -ENOENT or DB error. */
int oauth_refresh_lookup(struct db *db, const char *tok, size_t len, struct arena *a,
                         struct oauth_token_info *out);

/* Writer-side: revokes a refresh-token family and the opaque access tokens minted from it. */
int oauth_family_revoke(struct db *db, const char *family_id);

/* ----------------------------------------------------------- worker pool */

/* CPU-heavy work (argon2id) runs here, never on an HTTP worker. The pool
 * (2 threads) starts on first use. 0, -EAGAIN (queue full) or -ESHUTDOWN. */
int oauth_workers_submit(void (*fn)(void *arg), void *arg);
/* Runs what is queued, then joins the threads; later submits fail until rearmed. */
void oauth_workers_stop(void);
void oauth_workers_rearm(void);

/* -------------------------------------------------------------- handlers */

enum http_result oauth_token_handler(struct http_request *req);
enum http_result oauth_introspect_handler(struct http_request *req);
enum http_result oauth_revoke_handler(struct http_request *req);
enum http_result oauth_userinfo_handler(struct http_request *req);
/* browser sign-in: authorize.c, logout.c, session_admin.c */
enum http_result oauth_authorize_handler(struct http_request *req);
enum http_result oauth_login_handler(struct http_request *req);
enum http_result oauth_logout_handler(struct http_request *req);
size_t oauth_session_admin_routes(struct node *n, struct http_route *out, size_t max);

#endif
