/*
 * tenant — tenants and their settings (replication class `config`).
 *
 * A tenant is read from the store per request (one primary-key lookup) so
 * that what the standby applied is what it serves after a promotion; nothing
 * about tenants is cached in memory.
 *
 * Settings JSON (all optional; defaults below):
 *   {"access_token_ttl": 3600, "refresh_token_ttl": 1209600, "id_token_ttl": 3600,
 *    "code_ttl": 60, "session_ttl": 28800,
 *    "grant_types": ["client_credentials","password","refresh_token","authorization_code"],
 *    "password_policy": {"min_length": 8, "require_upper": false, "require_lower": false,
 *                        "require_digit": false, "require_symbol": false},
 *    "lockout": {"max_failures": 5, "duration": 900},
 *    "argon2": {"memory_kib": 19456, "iterations": 2}}
 */
#ifndef REFUGE_IDENTITY_TENANT_H
#define REFUGE_IDENTITY_TENANT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include "core/arena.h"
#include "store/db.h"

#define TENANT_DEFAULT "default"

enum grant_bits {
    GRANT_CLIENT_CREDENTIALS = 1 << 0,
    GRANT_PASSWORD = 1 << 1,
    GRANT_REFRESH_TOKEN = 1 << 2,
    GRANT_AUTHORIZATION_CODE = 1 << 3,
};
/* "client_credentials" -> GRANT_CLIENT_CREDENTIALS; 0 when unknown. */
unsigned grant_bit(const char *name);
const char *grant_name(unsigned bit);

struct password_policy {
    int min_length;
    bool require_upper, require_lower, require_digit, require_symbol;
};

struct tenant_settings {
    int64_t access_token_ttl;    /* seconds */
    int64_t refresh_token_ttl;
    int64_t id_token_ttl;
    int64_t code_ttl;
    int64_t session_ttl;
    unsigned grant_types;        /* enum grant_bits */
    struct password_policy password;
    int lockout_max_failures;    /* 0 disables lockout */
    int64_t lockout_duration;    /* seconds */
    int64_t argon2_memory_kib;
    int64_t argon2_iterations;
};

struct tenant {
    const char *name;
    const char *display_name;
    const char *issuer;          /* public_url or public_url/t/NAME */
    struct tenant_settings s;
    const char *settings_text;   /* the stored settings JSON as given (explicit keys only; arena) */
    int64_t created_at, updated_at;
};

/* Tenant names, display names */
#define TENANT_NAME_MAX 63
#define TENANT_DISPLAY_NAME_MAX 256
#define TENANT_TTL_MAX 31536000      /* one year, the bound of every lifetime setting */

void tenant_settings_defaults(struct tenant_settings *s);
/* Validates a settings object (unknown keys and bad values are errors) and
 * fills *out over the defaults. 0 or -EINVAL with msg ("settings.lockout.max_failures: must be 0..100"). */
int tenant_settings_parse(const json_t *j, struct tenant_settings *out, char *msg, size_t msglen);
/* Renders the effective settings (defaults filled in) as JSON. New reference. */
json_t *tenant_settings_json(const struct tenant_settings *s);

/* True for a valid tenant name (lowercase DNS label, 1-63 characters). */
bool tenant_name_valid(const char *name);
/* Checks a display name (1..TENANT_DISPLAY_NAME_MAX bytes, no control characters). */
bool tenant_display_name_valid(const char *s);

/* Loads tenant `name` into *t (strings in the arena). 0, -ENOENT, -EINVAL
 * (stored settings unreadable) or -EIO. One primary-key lookup; the settings
 * are only parsed when they are not "{}".
 * public_url is the node's [http] public_url (issuer base). */
int tenant_load(struct db *db, const char *name, const char *public_url, struct arena *a, struct tenant *t);
/* Issuer for a tenant name. Arena-allocated. */
const char *tenant_issuer(const char *public_url, const char *name, struct arena *a);
/* Admin JSON {"name","display_name","issuer","settings" (effective),"created_at","updated_at"}.
 * New reference. */
json_t *tenant_to_json(const struct tenant *t);
/* All tenants as a JSON array of tenant_to_json objects, by name. New reference, or NULL on a DB error. */
json_t *tenant_list_json(struct db *db, const char *public_url);
/* The longest lifetime of a token a tenant's signing key may sign: the
 * maximum of the tenant's access and ID token TTLs and every client's
 * override. What keyring_rotate needs as max_token_ttl. 0 or negative error. */
int tenant_max_token_ttl(struct db *db, const char *name, int64_t *out);

/* Writer-side (call inside a store write job). Errors: -EINVAL (bad name,
 * display name or settings), -EEXIST (insert: name taken), -ENOENT
 * (update/delete: no such tenant), -EPERM (delete of `default`), -EIO or
 * -EROFS from the store. display_name NULL: the name (insert) or unchanged
 * (update); settings NULL: {} (insert) or unchanged (update). */
int tenant_insert(struct db *db, const char *name, const char *display_name, const json_t *settings);
int tenant_update(struct db *db, const char *name, const char *display_name, const json_t *settings);
/* Deletes the tenant and, in the same transaction, its clients, signing
 * keys, users, user emails, groups, group members, tokens, codes and sessions. */
int tenant_delete(struct db *db, const char *name);

/* Maps a DB_E* code to a negative errno (DB_ECONSTRAINT -> -EEXIST,
 * DB_EREADONLY -> -EROFS, DB_EBUSY -> -EBUSY, DB_EFULL -> -ENOSPC, else -EIO);
 * passes 0 and negative errnos through. */
int identity_db_errno(int rc);

#endif
