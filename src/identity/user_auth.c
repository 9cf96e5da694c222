/*
 * user_auth — password verification with lockout for the password grant.
 * The rules (and why every refusal looks alike) are in user_auth.h.
 */
#include "identity/user_auth.h"

#include <errno.h>
#include <string.h>

#include "core/log.h"
#include "crypto/password.h"

const char *user_auth_result_name(enum user_auth_result r)
{
    switch (r) {
    case USER_AUTH_OK:
        return "ok";
    case USER_AUTH_UNKNOWN:
        return "unknown_user";
    case USER_AUTH_BAD_PASSWORD:
        return "bad_password";
    case USER_AUTH_INACTIVE:
        return "inactive";
    case USER_AUTH_LOCKED:
        return "locked";
    }
    return "unknown";
}

/* The users.user_name_lc form of a user name: ASCII lowercase. */
static char *lowercase(struct arena *a, const char *s, size_t n)
{
    char *out = arena_strndup(a, s, n);
    for (size_t i = 0; i < n; i++)
        if (out[i] >= 'A' && out[i] <= 'Z')
            out[i] = (char)(out[i] - 'A' + 'a');
    return out;
}

int user_auth_verify(struct db *db, const char *tenant, const char *username, const char *password,
                     size_t n, const struct tenant_settings *s, int64_t now, struct arena *a,
                     struct user_auth *out)
{
    size_t ulen = strlen(username);
    const char *hash = NULL;
    bool active = false;
    int rc;

    memset(out, 0, sizeof(*out));
    if (ulen == 0 || ulen > USER_AUTH_MAX_USERNAME) {
        crypto_password_verify_dummy(password, n);
        out->result = USER_AUTH_UNKNOWN;
        return 0;
    }
    struct db_stmt *st = db_prepare(db, "SELECT id, user_name, active, password_hash, data, updated_at,"
                                        " failed_logins, locked_until"
                                        " FROM users WHERE tenant = $1 AND user_name_lc = $2");
    if (!st)
        return -EIO;
    db_bind_text(st, 1, tenant, -1);
    db_bind_text(st, 2, lowercase(a, username, ulen), -1);
    rc = db_step(st);
    if (rc == DB_ROW) {
        out->user_id = arena_strdup(a, db_col_text(st, 0));
        out->user_name = arena_strdup(a, db_col_text(st, 1));
        active = db_col_int64(st, 2) != 0;
        hash = db_col_is_null(st, 3) ? NULL : arena_strdup(a, db_col_text(st, 3));
        out->data = arena_strdup(a, db_col_text(st, 4));
        out->updated_at = db_col_int64(st, 5);
        out->failed_logins = db_col_int64(st, 6);
        out->locked_until = db_col_int64(st, 7);
        rc = 0;
    } else {
        rc = rc == DB_DONE ? -ENOENT : -EIO;
    }
    db_done(st);
    if (rc == -EIO)
        return rc;

    if (rc == -ENOENT || !hash || !*hash) {
        crypto_password_verify_dummy(password, n);
        out->result = USER_AUTH_UNKNOWN;
        return 0;
    }
    /* Always pay for one verification, whatever the account's state. */
    int v = crypto_password_verify(hash, password, n);
    if (v == -EINVAL)
        log_warn("user_auth: stored password hash is not an argon2 PHC string", "tenant", tenant,
                 "user_id", out->user_id, NULL);
    bool locked = s->lockout_max_failures > 0 && out->locked_until > now;
    if (locked) {
        out->result = USER_AUTH_LOCKED;
    } else if (v != 0) {
        out->result = USER_AUTH_BAD_PASSWORD;
        if (s->lockout_max_failures > 0)
            out->write = USER_AUTH_WRITE_FAILURE;
    } else if (!active) {
        out->result = USER_AUTH_INACTIVE;
    } else {
        out->result = USER_AUTH_OK;
        if (out->failed_logins != 0 || out->locked_until != 0)
            out->write = USER_AUTH_WRITE_RESET;
    }
    return 0;
}

int user_auth_record_failure(struct db *db, const char *tenant, const char *user_id,
                             const struct tenant_settings *s, int64_t now)
{
    if (s->lockout_max_failures <= 0)
        return 0;
    /* All right-hand sides see the old row: one atomic step, however many
     * failures race in the same group commit. */
    struct db_stmt *st = db_prepare(db, "UPDATE users SET"
                                        " locked_until = CASE WHEN failed_logins + 1 >= $3 THEN $4"
                                        "   ELSE locked_until END,"
                                        " failed_logins = CASE WHEN failed_logins + 1 >= $3 THEN 0"
                                        "   ELSE failed_logins + 1 END"
                                        " WHERE tenant = $1 AND id = $2");
    if (!st)
        return DB_ERR;
    db_bind_text(st, 1, tenant, -1);
    db_bind_text(st, 2, user_id, -1);
    db_bind_int64(st, 3, s->lockout_max_failures);
    db_bind_int64(st, 4, now + s->lockout_duration);
    int rc = db_step(st);
    db_done(st);
    return rc < 0 ? rc : 0;
}

int user_auth_record_success(struct db *db, const char *tenant, const char *user_id)
{
    int rc = db_execp(db, "UPDATE users SET failed_logins = 0, locked_until = 0"
                          " WHERE tenant = $1 AND id = $2", tenant, user_id, NULL);
    return rc < 0 ? rc : 0;
}
