/*
 * client — OAuth clients of a tenant (replication class `config`).
 *
 * Secrets are generated here (256 random bits, base64url), returned to the
 * admin once, and stored only as a hash (crypto/secret.h); client
 * authentication compares hashes in constant time.
 *
 * JSON shape (admin API, DESIGN.md §4):
 *   {"client_id", "name", "type": "confidential"|"public", "redirect_uris": [],
 *    "post_logout_redirect_uris": [], "grant_types": [], "scopes": [], "default_scopes": [],
 *    "token_format": "jwt"|"opaque",
 *    "access_token_ttl": N?, "refresh_token_ttl": N?, "id_token_ttl": N?}
 * post_logout_redirect_uris (OIDC RP-Initiated Logout §3.1) follow the
 * redirect_uris rules and are matched exactly at /oidc/logout.
 */
#ifndef REFUGE_IDENTITY_CLIENT_H
#define REFUGE_IDENTITY_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include "core/arena.h"
#include "store/db.h"

#define CLIENT_MAX_LIST 64           /* redirect URIs, scopes, grant types per client */

struct client {
    const char *tenant;
    const char *client_id;
    const char *name;
    bool confidential;
    const char *secret_hash;         /* NULL for public clients */
    const char **redirect_uris;  size_t nredirect_uris;
    const char **post_logout_redirect_uris; size_t npost_logout_redirect_uris;
    const char **scopes;         size_t nscopes;
    const char **default_scopes; size_t ndefault_scopes;
    unsigned grant_types;            /* enum grant_bits */
    bool opaque_tokens;              /* token_format = opaque */
    int64_t access_token_ttl;        /* 0 = tenant default */
    int64_t refresh_token_ttl;
    int64_t id_token_ttl;
    int64_t created_at, updated_at;
};

#define CLIENT_ID_MAX 128            /* given client ids: 1..128 of [A-Za-z0-9._~-] */
#define CLIENT_ID_GEN_BYTES 16       /* generated ids: 16 random bytes, 22 base64url characters */
#define CLIENT_NAME_MAX 256
#define CLIENT_URI_MAX 2048
#define CLIENT_SCOPE_MAX 256         /* one scope token */
#define CLIENT_TTL_MAX 31536000

bool client_id_valid(const char *s, size_t n);
/* One scope token per RFC 6749 §3.3: 1..CLIENT_SCOPE_MAX NQCHARs (%x21 / %x23-5B / %x5D-7E). */
bool client_scope_token_valid(const char *s, size_t n);
/* Absolute http(s) URL, no fragment, no userinfo, only URI characters, valid %-escapes. */
bool client_redirect_uri_valid(const char *s, size_t n);

/* Loads a client (arena-allocated). 0, -ENOENT or -EIO. */
int client_load(struct db *db, const char *tenant, const char *client_id, struct arena *a, struct client *c);
/* Parses and validates the admin JSON body for create (partial = false) or
 * update (partial = true: absent fields keep c's values). Errors name the
 * field: "redirect_uris[1]: must be an absolute https or http URL without fragment".
 *   create: *c is reset except c->tenant; client_id is generated when absent;
 *           defaults: type confidential, grant_types [client_credentials]
 *           (public: [authorization_code, refresh_token]), token_format jwt.
 *   update: client_id and type, when present, must equal c's; a null TTL
 *           clears the override. Arrays given replace the old ones.
 * Cross-field rules are checked on the result: public clients cannot use
 * client_credentials, authorization_code needs a redirect URI,
 * default_scopes must be a subset of scopes. Unknown members are errors
 * (created_at and updated_at are ignored so a GET result can be sent back).
 * Strings are arena-allocated. 0 or -EINVAL with msg. */
int client_from_json(const json_t *j, bool partial, struct arena *a, struct client *c, char *msg, size_t msglen);
/* Public JSON (never the secret hash). New reference. */
json_t *client_to_json(const struct client *c);

bool client_has_scope(const struct client *c, const char *scope);
bool client_has_redirect_uri(const struct client *c, const char *uri);   /* exact match */
bool client_has_post_logout_redirect_uri(const struct client *c, const char *uri);   /* exact match */
bool client_allows_grant(const struct client *c, unsigned grant_bit);
/* Constant-time check of a presented secret against the stored hash; false
 * for public clients. */
bool client_secret_ok(const struct client *c, const char *secret, size_t len);

/* Writer-side. client_insert stores the hash of `secret` (required for
 * confidential clients, must be NULL for public ones). Errors: -EINVAL,
 * -ENOENT (no such tenant, or client for update/set_secret/delete),
 * -EEXIST (client_id taken), -EIO / -EROFS from the store. */
int client_insert(struct db *db, const struct client *c, const char *secret);
int client_update(struct db *db, const struct client *c);
/* -EINVAL for a public client. */
int client_set_secret(struct db *db, const char *tenant, const char *client_id, const char *secret);
/* Also deletes the client's refresh tokens, opaque tokens and authorization codes. */
int client_delete(struct db *db, const char *tenant, const char *client_id);
/* Lists clients of a tenant (by client_id) as a JSON array (new reference), or NULL on a DB error. */
json_t *client_list_json(struct db *db, const char *tenant);

#endif
