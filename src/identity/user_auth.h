/*
 * user_auth — checking a user's password for the password grant (and later
 * the login form): look the user up by user name within the tenant, refuse
 * inactive and locked accounts, verify the argon2id hash, and tell the
 * caller which lockout bookkeeping to write.
 *
 * Verification is slow on purpose (argon2id, tens of ms): call
 * user_auth_verify on a worker thread, never on an HTTP worker. An unknown
 * user name costs the same time (crypto_password_verify_dummy), and every
 * refusal looks the same to the client, so neither timing nor answers reveal
 * which user names exist or which accounts are locked.
 *
 * Lockout (tenant settings "lockout": {"max_failures", "duration"}): each
 * wrong password counts one failure; reaching max_failures sets
 * locked_until = now + duration and resets the counter; while locked, even
 * the right password is refused and nothing is counted. A successful login
 * resets the counter. max_failures 0 disables lockout (no writes on failure).
 * The counter updates are writes: run user_auth_record_* inside a store
 * write job (the update is a single atomic UPDATE, so concurrent failures
 * all count).
 */
#ifndef REFUGE_IDENTITY_USER_AUTH_H
#define REFUGE_IDENTITY_USER_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/arena.h"
#include "identity/tenant.h"
#include "store/db.h"

#define USER_AUTH_MAX_USERNAME 256

enum user_auth_result {
    USER_AUTH_OK = 0,
    USER_AUTH_UNKNOWN,       /* no such user, or no password set */
    USER_AUTH_BAD_PASSWORD,
    USER_AUTH_INACTIVE,      /* active = 0 (password checked anyway, for timing) */
    USER_AUTH_LOCKED,        /* locked_until > now */
};

/* What a successful or failed check needs the writer to record. */
enum user_auth_write {
    USER_AUTH_WRITE_NONE = 0,
    USER_AUTH_WRITE_RESET,   /* success after failures: failed_logins = 0 */
    USER_AUTH_WRITE_FAILURE, /* count one failure (and maybe lock) */
};

struct user_auth {
    enum user_auth_result result;
    enum user_auth_write write;
    /* Filled whenever the user exists (arena strings): */
    const char *user_id;
    const char *user_name;
    const char *data;            /* the SCIM resource JSON (users.data) */
    int64_t updated_at;
    int64_t failed_logins;
    int64_t locked_until;
};

const char *user_auth_result_name(enum user_auth_result r);

/*
 * Verifies `password` (n bytes) for user `username` of `tenant` as of `now`
 * (unix seconds) under the tenant's lockout policy. Reads through db (the
 * calling thread's read connection). Returns 0 with out->result set, or a
 * negative error (-EIO: database) without a result.
 */
int user_auth_verify(struct db *db, const char *tenant, const char *username, const char *password,
                     size_t n, const struct tenant_settings *s, int64_t now, struct arena *a,
                     struct user_auth *out);

/* Writer-side. user_auth_record_failure counts one failure and locks the
 * account until now + duration when max_failures is reached. 0 or DB error. */
int user_auth_record_failure(struct db *db, const char *tenant, const char *user_id,
                             const struct tenant_settings *s, int64_t now);
int user_auth_record_success(struct db *db, const char *tenant, const char *user_id);

#endif
