/*
 * user — the user model: one SCIM User resource per row of `users`, its
 * emails in `user_emails`, its groups mirrored into its JSON. What is
 * stored where, and why filters depend on it, is in user.h; this file keeps
 * those promises on every write, and holds the password policy.
 */
#include "identity/user.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/json.h"
#include "core/timeutil.h"
#include "core/xmalloc.h"
#include "identity/group.h"
#include "scim/schema_attrs.h"

/* ------------------------------------------------------------ helpers */

void identity_doc_clear(struct identity_doc *d)
{
    if (!d)
        return;
    json_decref(d->data);
    memset(d, 0, sizeof(*d));
}

char *identity_ascii_lower(const char *s)
{
    char *out = xstrdup(s);

    for (char *c = out; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
    return out;
}

void identity_meta_stamp(json_t *data, const char *resource_type, int64_t created_at, int64_t updated_at,
                         int64_t version)
{
    char created[40], modified[40], ver[32];

    time_rfc3339(created_at * 1000000, created, sizeof(created), 0);
    time_rfc3339(updated_at * 1000000, modified, sizeof(modified), 0);
    snprintf(ver, sizeof(ver), "W/\"%lld\"", (long long)version);
    json_object_set_new(data, "meta", json_pack("{s:s, s:s, s:s, s:s}", "resourceType", resource_type,
                                                "created", created, "lastModified", modified, "version", ver));
}

static void set_msg(char *msg, size_t msglen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_msg(char *msg, size_t msglen, const char *fmt, ...)
{
    va_list ap;

    if (!msg || !msglen)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, msglen, fmt, ap);
    va_end(ap);
}

static int step_done(struct db_stmt *st)
{
    int rc = db_step(st);

    db_done(st);
    return rc < 0 ? identity_db_errno(rc) : 0;
}

/* The name a group's member list shows for a user. */
static const char *user_display(const json_t *data)
{
    const char *d = json_string_value(json_object_get(data, "displayName"));

    return d ? d : json_string_value(json_object_get(data, "userName"));
}

/* Case-insensitive uniqueness of a name within a tenant (userName,
 * displayName): `sql` selects the id holding the lowercased name. -EEXIST
 * when another resource than self_id holds it; otherwise 0 with the
 * lowercased name in *lc_out (xmalloc'd, the caller's). */
int identity_name_unique(struct db *db, const char *sql, const char *tenant, const char *name, const char *self_id,
                         char **lc_out)
{
    char *lc = identity_ascii_lower(name);
    struct db_stmt *st = db_prepare(db, sql);
    int rc;

    *lc_out = NULL;
    if (!st) {
        free(lc);
        return -EIO;
    }
    db_bind_text(st, 1, tenant, -1);
    db_bind_text(st, 2, lc, -1);
    rc = db_step(st);
    if (rc == DB_ROW && (!self_id || strcmp(db_col_text(st, 0), self_id) != 0))
        rc = -EEXIST;
    else
        rc = rc < 0 ? identity_db_errno(rc) : 0;
    db_done(st);
    if (rc < 0)
        free(lc);
    else
        *lc_out = lc;
    return rc;
}

/* Loads a resource row (users or groups: data, version, created_at,
 * updated_at) by tenant and id. `sql` is one of the two fixed SELECTs. */
int identity_doc_load(struct db *db, const char *sql, const char *tenant, const char *id, struct identity_doc *out)
{
    struct db_stmt *st;
    int rc;

    memset(out, 0, sizeof(*out));
    st = db_prepare(db, sql);
    if (!st)
        return -EIO;
    db_bind_text(st, 1, tenant, -1);
    db_bind_text(st, 2, id, -1);
    rc = db_step(st);
    if (rc == DB_ROW) {
        const char *text = db_col_text(st, 0);
        out->data = json_loadb(text, strlen(text), 0, NULL);
        out->version = db_col_int64(st, 1);
        out->created_at = db_col_int64(st, 2);
        out->updated_at = db_col_int64(st, 3);
        snprintf(out->id, sizeof(out->id), "%s", id);
        rc = json_is_object(out->data) ? 0 : -EIO;
    } else {
        rc = rc == DB_DONE ? -ENOENT : identity_db_errno(rc);
    }
    db_done(st);
    if (rc < 0)
        identity_doc_clear(out);
    return rc;
}

/* Loads users.data and its bookkeeping. */
static int load_row(struct db *db, const char *tenant, const char *id, struct identity_doc *out)
{
    return identity_doc_load(db, "SELECT data, version, created_at, updated_at FROM users WHERE tenant = $1 AND id = $2",
                             tenant, id, out);
}

int user_load(struct db *db, const char *tenant, const char *id, struct identity_doc *out)
{
    return load_row(db, tenant, id, out);
}

/* ------------------------------------------------------------- emails */

/* Checks the emails of data: each has a value, no two alike ignoring case. */
static int emails_check(const json_t *data, char *msg, size_t msglen)
{
    json_t *emails = json_object_get(data, "emails"), *e, *f;
    size_t i, k;

    json_array_foreach(emails, i, e) {
        const char *v = json_string_value(json_object_get(e, "value"));
        if (!v) {
            set_msg(msg, msglen, "emails: every email needs a value");
            return -EINVAL;
        }
        for (k = 0; k < i; k++) {
            f = json_array_get(emails, k);
            const char *w = json_string_value(json_object_get(f, "value"));
            char *a = identity_ascii_lower(v), *b = identity_ascii_lower(w);
            bool same = strcmp(a, b) == 0;
            free(a);
            free(b);
            if (same) {
                set_msg(msg, msglen, "emails: the value '%.64s' appears twice", v);
                return -EINVAL;
            }
        }
    }
    return 0;
}

/* Rewrites the user_emails rows of a user when the emails changed. */
static int emails_sync(struct db *db, const char *tenant, const char *id, const json_t *old_emails,
                       const json_t *new_emails, bool fresh)
{
    struct db_stmt *st;
    json_t *e;
    size_t i;
    int rc;

    if (!fresh) {
        if ((old_emails == NULL && new_emails == NULL) ||
            (old_emails && new_emails && json_equal((json_t *)old_emails, (json_t *)new_emails)))
            return 0;
        rc = db_execp(db, "DELETE FROM user_emails WHERE tenant = $1 AND user_id = $2", tenant, id, NULL);
        if (rc < 0)
            return identity_db_errno(rc);
    }
    json_array_foreach(new_emails, i, e) {
        const char *type = json_string_value(json_object_get(e, "type"));
        char *lc = identity_ascii_lower(json_string_value(json_object_get(e, "value")));
        st = db_prepare(db, "INSERT INTO user_emails (tenant, user_id, value_lc, type) VALUES ($1, $2, $3, $4)");
        if (!st) {
            free(lc);
            return -EIO;
        }
        db_bind_text(st, 1, tenant, -1);
        db_bind_text(st, 2, id, -1);
        db_bind_text(st, 3, lc, -1);
        db_bind_text(st, 4, type ? type : "", -1);
        rc = step_done(st);
        free(lc);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ------------------------------------------------------------- writes */

/* The stored document built from a normalized resource. */
static json_t *build_data(const json_t *res, const char *id)
{
    json_t *data = json_deep_copy(res), *schemas = json_array();

    json_object_del(data, "password");
    json_object_del(data, "meta");
    json_object_del(data, "groups");
    json_object_del(data, "schemas");
    json_object_set_new(data, "id", json_string(id));
    if (!json_is_boolean(json_object_get(data, "active")))
        json_object_set_new(data, "active", json_true());
    json_array_append_new(schemas, json_string(SCIM_URN_USER));
    if (json_is_object(json_object_get(data, SCIM_URN_ENTERPRISE_USER)))
        json_array_append_new(schemas, json_string(SCIM_URN_ENTERPRISE_USER));
    json_object_set_new(data, "schemas", schemas);
    return data;
}

static int check_user_name(struct db *db, const char *tenant, const char *id, const char *user_name,
                           const struct user_pw *pw, char **lc_out, char *msg, size_t msglen)
{
    int rc;

    *lc_out = NULL;
    if (!user_name || !*user_name) {
        set_msg(msg, msglen, "userName is required");
        return -EINVAL;
    }
    if (strlen(user_name) > USER_NAME_MAX) {
        set_msg(msg, msglen, "userName: longer than %d bytes", USER_NAME_MAX);
        return -EINVAL;
    }
    if (pw && pw->op == USER_PW_SET && pw->plain &&
        user_password_check(&(struct password_policy){ 0 }, user_name, pw->plain, pw->plain_len, msg, msglen) < 0)
        return -EINVAL;
    rc = identity_name_unique(db, "SELECT id FROM users WHERE tenant = $1 AND user_name_lc = $2", tenant,
                              user_name, id, lc_out);
    if (rc == -EEXIST)
        set_msg(msg, msglen, "userName '%.64s' is already taken", user_name);
    return rc;
}

int user_create(struct db *db, const char *tenant, const json_t *res, const struct user_pw *pw, int64_t now,
                struct identity_doc *out, char *msg, size_t msglen)
{
    const char *user_name = json_string_value(json_object_get(res, "userName"));
    struct db_stmt *st;
    json_t *data = NULL;
    char *lc = NULL, *text = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = check_user_name(db, tenant, NULL, user_name, pw, &lc, msg, msglen)) < 0)
        goto out;
    if ((rc = emails_check(res, msg, msglen)) < 0)
        goto out;
    uuid_v4(out->id);
    data = build_data(res, out->id);
    identity_meta_stamp(data, "User", now, now, 1);
    text = jsonx_dump(data);
    st = db_prepare(db, "INSERT INTO users (tenant, id, user_name, user_name_lc, external_id, active,"
                        " password_hash, data, version, created_at, updated_at)"
                        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, $9)");
    if (!st) {
        rc = -EIO;
        goto out;
    }
    db_bind_text(st, 1, tenant, -1);
    db_bind_text(st, 2, out->id, -1);
    db_bind_text(st, 3, user_name, -1);
    db_bind_text(st, 4, lc, -1);
    db_bind_text(st, 5, json_string_value(json_object_get(data, "externalId")), -1);
    db_bind_int64(st, 6, json_is_true(json_object_get(data, "active")));
    db_bind_text(st, 7, pw && pw->op == USER_PW_SET ? pw->hash : NULL, -1);
    db_bind_text(st, 8, text, -1);
    db_bind_int64(st, 9, now);
    if ((rc = step_done(st)) < 0) {
        if (rc == -EEXIST)
            set_msg(msg, msglen, "userName '%.64s' is already taken", user_name);
        goto out;
    }
    if ((rc = emails_sync(db, tenant, out->id, NULL, json_object_get(data, "emails"), true)) < 0)
        goto out;
    out->data = data;
    data = NULL;
    out->version = 1;
    out->created_at = out->updated_at = now;
out:
    json_decref(data);
    free(text);
    free(lc);
    return rc;
}

int user_replace(struct db *db, const char *tenant, const char *id, const json_t *res,
                 const struct user_pw *pw, int64_t now, struct identity_doc *out, char *msg, size_t msglen)
{
    const char *user_name = json_string_value(json_object_get(res, "userName"));
    struct identity_doc old;
    struct db_stmt *st;
    json_t *data = NULL, *groups;
    char *lc = NULL, *text = NULL, *old_display = NULL;
    const char *sql;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = load_row(db, tenant, id, &old)) < 0)
        return rc;
    if ((rc = check_user_name(db, tenant, id, user_name, pw, &lc, msg, msglen)) < 0)
        goto out;
    if ((rc = emails_check(res, msg, msglen)) < 0)
        goto out;
    data = build_data(res, id);
    groups = json_object_get(old.data, "groups");
    if (groups)
        json_object_set(data, "groups", groups);
    identity_meta_stamp(data, "User", old.created_at, now, old.version + 1);
    text = jsonx_dump(data);
    if (!pw || pw->op == USER_PW_KEEP)
        sql = "UPDATE users SET user_name = $3, user_name_lc = $4, external_id = $5, active = $6, data = $7,"
              " version = $8, updated_at = $9 WHERE tenant = $1 AND id = $2";
    else
        sql = "UPDATE users SET user_name = $3, user_name_lc = $4, external_id = $5, active = $6, data = $7,"
              " version = $8, updated_at = $9, password_hash = $10, failed_logins = 0, locked_until = 0"
              " WHERE tenant = $1 AND id = $2";
    st = db_prepare(db, sql);
    if (!st) {
        rc = -EIO;
        goto out;
    }
    db_bind_text(st, 1, tenant, -1);
    db_bind_text(st, 2, id, -1);
    db_bind_text(st, 3, user_name, -1);
    db_bind_text(st, 4, lc, -1);
    db_bind_text(st, 5, json_string_value(json_object_get(data, "externalId")), -1);
    db_bind_int64(st, 6, json_is_true(json_object_get(data, "active")));
    db_bind_text(st, 7, text, -1);
    db_bind_int64(st, 8, old.version + 1);
    db_bind_int64(st, 9, now);
    if (pw && pw->op != USER_PW_KEEP)
        db_bind_text(st, 10, pw->op == USER_PW_SET ? pw->hash : NULL, -1);
    if ((rc = step_done(st)) < 0) {
        if (rc == -EEXIST)
            set_msg(msg, msglen, "userName '%.64s' is already taken", user_name);
        goto out;
    }
    if ((rc = emails_sync(db, tenant, id, json_object_get(old.data, "emails"), json_object_get(data, "emails"),
                          false)) < 0)
        goto out;
    old_display = xstrdup(user_display(old.data) ? user_display(old.data) : "");
    if (strcmp(old_display, user_display(data)) != 0 &&
        (rc = group_member_display_refresh(db, tenant, id, user_display(data), now)) < 0)
        goto out;
    snprintf(out->id, sizeof(out->id), "%s", id);
    out->data = data;
    data = NULL;
    out->version = old.version + 1;
    out->created_at = old.created_at;
    out->updated_at = now;
out:
    identity_doc_clear(&old);
    json_decref(data);
    free(text);
    free(lc);
    free(old_display);
    return rc;
}

int user_delete(struct db *db, const char *tenant, const char *id, int64_t now)
{
    static const char *const deps[] = {
        "DELETE FROM user_emails WHERE tenant = $1 AND user_id = $2",
        "DELETE FROM refresh_tokens WHERE tenant = $1 AND user_id = $2",
        "DELETE FROM opaque_tokens WHERE tenant = $1 AND user_id = $2",
        "DELETE FROM auth_codes WHERE tenant = $1 AND user_id = $2",
        "DELETE FROM sso_sessions WHERE tenant = $1 AND user_id = $2",
        "DELETE FROM users WHERE tenant = $1 AND id = $2",
    };
    struct db_stmt *st;
    size_t i;
    int rc;

    st = db_prepare(db, "SELECT 1 FROM users WHERE tenant = $1 AND id = $2");
    if (!st)
        return -EIO;
    db_bind_text(st, 1, tenant, -1);
    db_bind_text(st, 2, id, -1);
    rc = db_step(st);
    db_done(st);
    if (rc != DB_ROW)
        return rc == DB_DONE ? -ENOENT : identity_db_errno(rc);
    if ((rc = group_member_forget(db, tenant, id, now)) < 0)
        return rc;
    for (i = 0; i < sizeof(deps) / sizeof(deps[0]); i++)
        if ((rc = db_execp(db, deps[i], tenant, id, NULL)) < 0)
            return identity_db_errno(rc);
    return 0;
}

int user_groups_refresh(struct db *db, const char *tenant, const char *user_id, int64_t now)
{
    struct identity_doc d;
    struct db_stmt *st;
    json_t *groups = json_array(), *old;
    char *text = NULL;
    int rc;

    if ((rc = load_row(db, tenant, user_id, &d)) < 0) {
        json_decref(groups);
        return rc;
    }
    st = db_prepare(db, "SELECT g.id, g.display_name FROM group_members m JOIN groups g"
                        " ON g.tenant = m.tenant AND g.id = m.group_id"
                        " WHERE m.tenant = $1 AND m.member_id = $2 ORDER BY g.display_name_lc, g.id");
    if (!st) {
        rc = -EIO;
        goto out;
    }
    db_bind_text(st, 1, tenant, -1);
    db_bind_text(st, 2, user_id, -1);
    while ((rc = db_step(st)) == DB_ROW)
        json_array_append_new(groups, json_pack("{s:s, s:s, s:s}", "value", db_col_text(st, 0), "display",
                                                db_col_text(st, 1), "type", "direct"));
    db_done(st);
    if (rc < 0) {
        rc = identity_db_errno(rc);
        goto out;
    }
    old = json_object_get(d.data, "groups");
    if ((!old && json_array_size(groups) == 0) || (old && json_equal(old, groups))) {
        rc = 0;
        goto out;
    }
    if (json_array_size(groups) > 0)
        json_object_set(d.data, "groups", groups);
    else
        json_object_del(d.data, "groups");
    identity_meta_stamp(d.data, "User", d.created_at, now, d.version + 1);
    text = jsonx_dump(d.data);
    st = db_prepare(db, "UPDATE users SET data = $3, version = version + 1, updated_at = $4"
                        " WHERE tenant = $1 AND id = $2");
    if (!st) {
        rc = -EIO;
        goto out;
    }
    db_bind_text(st, 1, tenant, -1);
    db_bind_text(st, 2, user_id, -1);
    db_bind_text(st, 3, text, -1);
    db_bind_int64(st, 4, now);
    rc = step_done(st);
out:
    free(text);
    json_decref(groups);
    identity_doc_clear(&d);
    return rc;
}

/* ----------------------------------------------------------- passwords */

/* Characters in n bytes of UTF-8 (continuation bytes not counted). */
static size_t utf8_chars(const char *s, size_t n)
{
    size_t i, c = 0;

    for (i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            c++;
    return c;
}

static bool ascii_case_eq(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t i;

    if (alen != blen)
        return false;
    for (i = 0; i < alen; i++) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z')
            x = (char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z')
            y = (char)(y - 'A' + 'a');
        if (x != y)
            return false;
    }
    return true;
}

int user_password_check(const struct password_policy *p, const char *user_name, const char *pw, size_t n,
                        char *msg, size_t msglen)
{
    bool upper = false, lower = false, digit = false, symbol = false;
    size_t i;

    if (n == 0) {
        set_msg(msg, msglen, "password: must not be empty");
        return -EINVAL;
    }
    if (n > CRYPTO_PASSWORD_MAX) {
        set_msg(msg, msglen, "password: at most %d bytes", CRYPTO_PASSWORD_MAX);
        return -EINVAL;
    }
    if (p->min_length > 0 && utf8_chars(pw, n) < (size_t)p->min_length) {
        set_msg(msg, msglen, "password: must be at least %d characters long (policy min_length)", p->min_length);
        return -EINVAL;
    }
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)pw[i];
        if (c >= 'A' && c <= 'Z')
            upper = true;
        else if (c >= 'a' && c <= 'z')
            lower = true;
        else if (c >= '0' && c <= '9')
            digit = true;
        else if ((c & 0xC0) != 0x80)
            symbol = true;            /* anything else, counted per character */
    }
    if (p->require_upper && !upper) {
        set_msg(msg, msglen, "password: must contain an uppercase letter A-Z (policy require_upper)");
        return -EINVAL;
    }
    if (p->require_lower && !lower) {
        set_msg(msg, msglen, "password: must contain a lowercase letter a-z (policy require_lower)");
        return -EINVAL;
    }
    if (p->require_digit && !digit) {
        set_msg(msg, msglen, "password: must contain a digit 0-9 (policy require_digit)");
        return -EINVAL;
    }
    if (p->require_symbol && !symbol) {
        set_msg(msg, msglen, "password: must contain a character other than a letter or digit (policy require_symbol)");
        return -EINVAL;
    }
    if (user_name && ascii_case_eq(pw, n, user_name, strlen(user_name))) {
        set_msg(msg, msglen, "password: must not be the same as the userName");
        return -EINVAL;
    }
    return 0;
}

int user_password_hash(const struct tenant_settings *s, const char *pw, size_t n,
                       char out[CRYPTO_PWHASH_BUFSZ])
{
    struct crypto_pwhash_params params = {
        .m_kib = (uint32_t)s->argon2_memory_kib,
        .t = (uint32_t)s->argon2_iterations,
    };

    return crypto_password_hash(pw, n, &params, out);
}
