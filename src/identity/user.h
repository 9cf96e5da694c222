/*
 * user — the user model (replication class `identity`): a SCIM User
 * resource kept as JSON in users.data, plus the columns and side rows that
 * make it searchable and that the password grant reads.
 *
 * What the store holds for a user, and who relies on it (scim/filter.h
 * compiles filters against exactly this):
 *   users.data          the resource with canonical attribute names: schemas,
 *                       id, the client's attributes, extension objects under
 *                       their URN, "active" (always present, default true),
 *                       "groups" (the user's direct groups, rendered from
 *                       group_members: [{value, display, type: "direct"}]),
 *                       and meta {resourceType, created, lastModified
 *                       (RFC 3339, whole seconds), version (W/"N")}.
 *                       Never the password. meta.location and $ref links are
 *                       added when rendering (scim/resource.h).
 *   users columns       user_name (as given), user_name_lc (ASCII
 *                       lower-case, as SQLite lower(): the case-insensitive
 *                       uniqueness key), external_id, active, version (the
 *                       ETag counter), created_at / updated_at (unix seconds,
 *                       equal to meta.created / lastModified), password_hash
 *                       (argon2id PHC string or NULL).
 *   user_emails         one row per emails element: value_lc (ASCII
 *                       lower-case of value) and type ('' when none). Every
 *                       element needs a value, and two elements may not have
 *                       the same value case-insensitively.
 * Any change to the stored representation bumps version and lastModified,
 * also when it comes from elsewhere (a group the user is in is renamed).
 *
 * All writer-side functions run inside a store write job; they return 0 or
 * a negative errno: -ENOENT (no such user), -EEXIST (userName taken; msg
 * says so), -EINVAL (the resource breaks a rule; msg names it, for a SCIM
 * invalidValue), -EIO / -EROFS / -ENOSPC from the store.
 */
#ifndef REFUGE_IDENTITY_USER_H
#define REFUGE_IDENTITY_USER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/uuid.h"
#include "crypto/password.h"
#include "identity/tenant.h"
#include "store/db.h"

#define USER_NAME_MAX 256            /* bytes of a userName (user_auth.h agrees) */

/* A stored resource (user or group) as loaded or written. */
struct identity_doc {
    char id[UUID_STRLEN + 1];
    json_t *data;                    /* owned reference: release with identity_doc_clear */
    int64_t version;
    int64_t created_at, updated_at;
};
void identity_doc_clear(struct identity_doc *d);
/* Loads a users or groups row with one of the two fixed SELECTs of data,
 * version, created_at, updated_at. 0, -ENOENT, -EIO or a DB errno. */
int identity_name_unique(struct db *db, const char *sql, const char *tenant, const char *name,
                         const char *self_id, char **lc_out);
int identity_doc_load(struct db *db, const char *sql, const char *tenant, const char *id,
                      struct identity_doc *out);

/* Writes meta {resourceType, created, lastModified, version} into data. */
void identity_meta_stamp(json_t *data, const char *resource_type, int64_t created_at, int64_t updated_at,
                         int64_t version);
/* ASCII lower-case copy (SQLite lower()); caller frees. */
char *identity_ascii_lower(const char *s);

enum user_pw_op { USER_PW_KEEP = 0, USER_PW_SET, USER_PW_CLEAR };

struct user_pw {
    enum user_pw_op op;
    const char *hash;                /* SET: argon2id PHC string */
    const char *plain;               /* SET: the clear password, to check it is not the userName; may be NULL */
    size_t plain_len;
};

/* Reads user `id` of `tenant` (any connection). 0, -ENOENT, -EIO. */
int user_load(struct db *db, const char *tenant, const char *id, struct identity_doc *out);

/*
 * Writer-side. res is a normalized resource (scim/resource.h) without
 * password; it is copied, not kept. create assigns a new id; replace keeps
 * id, created and the user's groups, and bumps the version. On success out
 * holds the stored document. A password set here also clears the lockout
 * state (failed_logins, locked_until).
 */
int user_create(struct db *db, const char *tenant, const json_t *res, const struct user_pw *pw, int64_t now,
                struct identity_doc *out, char *msg, size_t msglen);
int user_replace(struct db *db, const char *tenant, const char *id, const json_t *res,
                 const struct user_pw *pw, int64_t now, struct identity_doc *out, char *msg, size_t msglen);
/* Deletes the user, its emails, its group memberships (the groups' member
 * lists are updated) and its tokens, codes and sessions. */
int user_delete(struct db *db, const char *tenant, const char *id, int64_t now);

/* Rebuilds data.groups of one user from group_members (bumping the version
 * when it changed). Writer-side; -ENOENT when the user does not exist. */
int user_groups_refresh(struct db *db, const char *tenant, const char *user_id, int64_t now);

/*
 * The tenant's password policy on n bytes of pw: minimum length (counted in
 * characters), required character classes, at most CRYPTO_PASSWORD_MAX
 * bytes, and, when user_name is given, not equal to it (ignoring ASCII
 * case). 0 or -EINVAL with msg naming the rule ("password: must contain a
 * digit (policy require_digit)"). The password never appears in msg.
 */
int user_password_check(const struct password_policy *p, const char *user_name, const char *pw, size_t n,
                        char *msg, size_t msglen);
/* argon2id with the tenant's parameters. Slow (tens of ms): never on an HTTP worker. */
int user_password_hash(const struct tenant_settings *s, const char *pw, size_t n,
                       char out[CRYPTO_PWHASH_BUFSZ]);

#endif
