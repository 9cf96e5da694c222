/*
 * tenant — tenants and their settings: name rules, the settings document
 * (parse, validate, render), and the rows in `tenants`.
 *
 * Why this file exists: every request of a tenant reads its settings (token
 * lifetimes, allowed grants, password and lockout policy), and the admin API
 * writes them. Validation lives here, once, so a setting can never be stored
 * in a form the token endpoint would have to second-guess. The settings are
 * stored as the admin gave them (explicit keys only), so a default changed
 * in a later release applies to every tenant that did not set it.
 *
 * Deleting a tenant deletes every row that belongs to it in one transaction:
 * the schema has no foreign keys (changesets are applied row by row), so the
 * list of dependent tables below must follow the schema.
 */
#include "identity/tenant.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/xmalloc.h"
#include "http/http.h"

/* ------------------------------------------------------------ grants */

static const char *const grant_names[] = {
    "client_credentials", "password", "refresh_token", "authorization_code",
};
#define NGRANTS (sizeof(grant_names) / sizeof(grant_names[0]))

unsigned grant_bit(const char *name)
{
    for (size_t i = 0; name && i < NGRANTS; i++)
        if (strcmp(name, grant_names[i]) == 0)
            return 1u << i;
    return 0;
}

const char *grant_name(unsigned bit)
{
    for (size_t i = 0; i < NGRANTS; i++)
        if (bit == 1u << i)
            return grant_names[i];
    return NULL;
}

/* ----------------------------------------------------------- errors */

int identity_db_errno(int rc)
{
    switch (rc) {
    case DB_ECONSTRAINT:
        return -EEXIST;
    case DB_EREADONLY:
        return -EROFS;
    case DB_EBUSY:
        return -EBUSY;
    case DB_EFULL:
        return -ENOSPC;
    default:
        if (rc >= 0)
            return 0;
        return rc <= DB_ERR && rc > DB_ERR - 100 ? -EIO : rc;
    }
}

/* --------------------------------------------------------- settings */

void tenant_settings_defaults(struct tenant_settings *s)
{
    memset(s, 0, sizeof(*s));
    s->access_token_ttl = 3600;
    s->refresh_token_ttl = 1209600;
    s->id_token_ttl = 3600;
    s->code_ttl = 60;
    s->session_ttl = 28800;
    s->grant_types = GRANT_CLIENT_CREDENTIALS | GRANT_PASSWORD | GRANT_REFRESH_TOKEN |
                     GRANT_AUTHORIZATION_CODE;
    s->password.min_length = 8;
    s->lockout_max_failures = 5;
    s->lockout_duration = 900;
    s->argon2_memory_kib = 19456;
    s->argon2_iterations = 2;
}

/*
 * The settings schema as a table: each field names its JSON key, its kind,
 * its bounds and where it lands in struct tenant_settings. Objects list their
 * members in `sub` (terminated by a NULL key). The same table drives
 * parsing, error messages and rendering, so they cannot drift apart.
 */
enum kind { K_I64, K_INT, K_BOOL, K_GRANTS, K_OBJ };

struct field {
    const char *key;
    enum kind kind;
    int64_t min, max;
    size_t off;
    const struct field *sub;
};

#define OFF(m) offsetof(struct tenant_settings, m)

static const struct field password_fields[] = {
    { "min_length", K_INT, 1, 1024, OFF(password.min_length), NULL },
    { "require_upper", K_BOOL, 0, 0, OFF(password.require_upper), NULL },
    { "require_lower", K_BOOL, 0, 0, OFF(password.require_lower), NULL },
    { "require_digit", K_BOOL, 0, 0, OFF(password.require_digit), NULL },
    { "require_symbol", K_BOOL, 0, 0, OFF(password.require_symbol), NULL },
    { NULL, 0, 0, 0, 0, NULL },
};

static const struct field lockout_fields[] = {
    { "max_failures", K_INT, 0, 100, OFF(lockout_max_failures), NULL },
    { "duration", K_I64, 1, TENANT_TTL_MAX, OFF(lockout_duration), NULL },
    { NULL, 0, 0, 0, 0, NULL },
};

static const struct field argon2_fields[] = {
    { "memory_kib", K_I64, 8, 4194304, OFF(argon2_memory_kib), NULL },
    { "iterations", K_I64, 1, 10, OFF(argon2_iterations), NULL },
    { NULL, 0, 0, 0, 0, NULL },
};

static const struct field settings_fields[] = {
    { "access_token_ttl", K_I64, 1, TENANT_TTL_MAX, OFF(access_token_ttl), NULL },
    { "refresh_token_ttl", K_I64, 1, TENANT_TTL_MAX, OFF(refresh_token_ttl), NULL },
    { "id_token_ttl", K_I64, 1, TENANT_TTL_MAX, OFF(id_token_ttl), NULL },
    { "code_ttl", K_I64, 1, 600, OFF(code_ttl), NULL },
    { "session_ttl", K_I64, 1, TENANT_TTL_MAX, OFF(session_ttl), NULL },
    { "grant_types", K_GRANTS, 0, 0, OFF(grant_types), NULL },
    { "password_policy", K_OBJ, 0, 0, 0, password_fields },
    { "lockout", K_OBJ, 0, 0, 0, lockout_fields },
    { "argon2", K_OBJ, 0, 0, 0, argon2_fields },
    { NULL, 0, 0, 0, 0, NULL },
};

static const struct field *field_find(const struct field *fs, const char *key)
{
    for (; fs->key; fs++)
        if (strcmp(fs->key, key) == 0)
            return fs;
    return NULL;
}

static int parse_grants(const json_t *v, const char *path, unsigned *out, char *msg, size_t msglen)
{
    unsigned bits = 0;
    size_t i;
    json_t *e;

    if (!json_is_array(v)) {
        snprintf(msg, msglen, "%s: must be an array of grant type names", path);
        return -EINVAL;
    }
    json_array_foreach(v, i, e) {
        unsigned b = json_is_string(e) ? grant_bit(json_string_value(e)) : 0;
        if (!b) {
            snprintf(msg, msglen,
                     "%s[%zu]: unknown grant type (client_credentials, password, refresh_token, "
                     "authorization_code)",
                     path, i);
            return -EINVAL;
        }
        if (bits & b) {
            snprintf(msg, msglen, "%s[%zu]: duplicate grant type", path, i);
            return -EINVAL;
        }
        bits |= b;
    }
    *out = bits;
    return 0;
}

static int parse_object(const json_t *j, const struct field *fs, const char *path,
                        struct tenant_settings *s, char *msg, size_t msglen)
{
    const char *key;
    json_t *v;

    if (!json_is_object(j)) {
        snprintf(msg, msglen, "%s: must be an object", path);
        return -EINVAL;
    }
    json_object_foreach((json_t *)j, key, v) {
        const struct field *f = field_find(fs, key);
        char sub[128];
        int rc;

        snprintf(sub, sizeof(sub), "%s.%.64s", path, key);
        if (!f) {
            snprintf(msg, msglen, "%s: unknown setting", sub);
            return -EINVAL;
        }
        char *dst = (char *)s + f->off;
        switch (f->kind) {
        case K_I64:
        case K_INT:
            if (!json_is_integer(v) || json_integer_value(v) < f->min ||
                json_integer_value(v) > f->max) {
                snprintf(msg, msglen, "%s: must be an integer %lld..%lld", sub, (long long)f->min,
                         (long long)f->max);
                return -EINVAL;
            }
            if (f->kind == K_I64)
                *(int64_t *)(void *)dst = json_integer_value(v);
            else
                *(int *)(void *)dst = (int)json_integer_value(v);
            break;
        case K_BOOL:
            if (!json_is_boolean(v)) {
                snprintf(msg, msglen, "%s: must be true or false", sub);
                return -EINVAL;
            }
            *(bool *)(void *)dst = json_is_true(v);
            break;
        case K_GRANTS:
            rc = parse_grants(v, sub, (unsigned *)(void *)dst, msg, msglen);
            if (rc < 0)
                return rc;
            break;
        case K_OBJ:
            rc = parse_object(v, f->sub, sub, s, msg, msglen);
            if (rc < 0)
                return rc;
            break;
        }
    }
    return 0;
}

int tenant_settings_parse(const json_t *j, struct tenant_settings *out, char *msg, size_t msglen)
{
    struct tenant_settings s;
    int rc;

    tenant_settings_defaults(&s);
    if (j && !json_is_null(j)) {
        rc = parse_object(j, settings_fields, "settings", &s, msg, msglen);
        if (rc < 0)
            return rc;
    }
    *out = s;
    return 0;
}

static json_t *render_object(const struct field *fs, const struct tenant_settings *s)
{
    json_t *o = json_object();

    for (; fs->key; fs++) {
        const char *src = (const char *)s + fs->off;
        json_t *v = NULL;
        switch (fs->kind) {
        case K_I64:
            v = json_integer(*(const int64_t *)(const void *)src);
            break;
        case K_INT:
            v = json_integer(*(const int *)(const void *)src);
            break;
        case K_BOOL:
            v = json_boolean(*(const bool *)(const void *)src);
            break;
        case K_GRANTS:
            v = json_array();
            for (size_t i = 0; i < NGRANTS; i++)
                if (*(const unsigned *)(const void *)src & (1u << i))
                    json_array_append_new(v, json_string(grant_names[i]));
            break;
        case K_OBJ:
            v = render_object(fs->sub, s);
            break;
        }
        json_object_set_new(o, fs->key, v);
    }
    return o;
}

json_t *tenant_settings_json(const struct tenant_settings *s)
{
    return render_object(settings_fields, s);
}

/* ------------------------------------------------------------- names */

bool tenant_name_valid(const char *name)
{
    return name && http_tenant_name_valid(name, strlen(name));
}

bool tenant_display_name_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n > TENANT_DISPLAY_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

const char *tenant_issuer(const char *public_url, const char *name, struct arena *a)
{
    if (strcmp(name, TENANT_DEFAULT) == 0)
        return arena_strdup(a, public_url);
    return arena_sprintf(a, "%s/t/%s", public_url, name);
}

/* ----------------------------------------------------------- reading */

#define TENANT_COLS "name, display_name, settings, created_at, updated_at"

/* Fills *t from a row of TENANT_COLS. */
static int tenant_from_row(struct db_stmt *st, const char *public_url, struct arena *a,
                           struct tenant *t)
{
    const char *settings = db_col_text(st, 2);
    char msg[160];
    int rc = 0;

    memset(t, 0, sizeof(*t));
    t->name = arena_strdup(a, db_col_text(st, 0));
    t->display_name = arena_strdup(a, db_col_text(st, 1));
    t->settings_text = arena_strdup(a, settings);
    t->created_at = db_col_int64(st, 3);
    t->updated_at = db_col_int64(st, 4);
    t->issuer = tenant_issuer(public_url, t->name, a);
    tenant_settings_defaults(&t->s);
    if (strcmp(settings, "{}") != 0 && settings[0] != '\0') {
        json_t *j = json_loads(settings, JSON_REJECT_DUPLICATES, NULL);
        msg[0] = '\0';
        rc = j ? tenant_settings_parse(j, &t->s, msg, sizeof(msg)) : -EINVAL;
        json_decref(j);
        if (rc < 0)
            log_error("tenant: stored settings are invalid", "tenant", t->name, "error",
                      msg[0] ? msg : "not JSON", NULL);
    }
    return rc;
}

int tenant_load(struct db *db, const char *name, const char *public_url, struct arena *a, struct tenant *t)
{
    struct db_stmt *st = db_prepare(db, "SELECT " TENANT_COLS " FROM tenants WHERE name = $1");
    int rc;

    if (!st)
        return -EIO;
    db_bind_text(st, 1, name, -1);
    rc = db_step(st);
    if (rc == DB_ROW)
        rc = tenant_from_row(st, public_url, a, t);
    else
        rc = rc == DB_DONE ? -ENOENT : identity_db_errno(rc);
    db_done(st);
    return rc;
}

json_t *tenant_to_json(const struct tenant *t)
{
    return json_pack("{s:s, s:s, s:s, s:o, s:I, s:I}", "name", t->name, "display_name",
                     t->display_name, "issuer", t->issuer, "settings", tenant_settings_json(&t->s),
                     "created_at", (json_int_t)t->created_at, "updated_at", (json_int_t)t->updated_at);
}

json_t *tenant_list_json(struct db *db, const char *public_url)
{
    struct db_stmt *st = db_prepare(db, "SELECT " TENANT_COLS " FROM tenants ORDER BY name");
    json_t *arr = NULL;
    struct arena a;
    int rc;

    if (!st)
        return NULL;
    arena_init(&a);
    arr = json_array();
    while ((rc = db_step(st)) == DB_ROW) {
        struct tenant t;
        tenant_from_row(st, public_url, &a, &t);   /* invalid settings: logged, defaults shown */
        json_array_append_new(arr, tenant_to_json(&t));
    }
    db_done(st);
    arena_free(&a);
    if (rc != DB_DONE) {
        json_decref(arr);
        arr = NULL;
    }
    return arr;
}

int tenant_max_token_ttl(struct db *db, const char *name, int64_t *out)
{
    static const char *const keys[] = { "access_token_ttl", "id_token_ttl" };
    struct arena a;
    struct tenant t;
    struct db_stmt *st;
    int64_t max;
    int rc;

    arena_init(&a);
    rc = tenant_load(db, name, "", &a, &t);
    if (rc < 0)
        goto out;
    max = t.s.access_token_ttl > t.s.id_token_ttl ? t.s.access_token_ttl : t.s.id_token_ttl;
    st = db_prepare(db, "SELECT settings FROM clients WHERE tenant = $1 AND settings <> '{}'");
    if (!st) {
        rc = -EIO;
        goto out;
    }
    db_bind_text(st, 1, name, -1);
    while ((rc = db_step(st)) == DB_ROW) {
        json_t *j = json_loads(db_col_text(st, 0), 0, NULL);
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
            int64_t v = jsonx_int(j, keys[i], 0);
            if (v > max)
                max = v;
        }
        json_decref(j);
    }
    db_done(st);
    rc = rc == DB_DONE ? 0 : identity_db_errno(rc);
    if (rc == 0)
        *out = max;
out:
    arena_free(&a);
    return rc;
}

/* ----------------------------------------------------------- writing */

/* Validates settings and renders the stored text (xmalloc'd). */
static int settings_text(const json_t *settings, char **out)
{
    struct tenant_settings s;
    char msg[160];

    if (!settings || json_is_null(settings)) {
        *out = xstrdup("{}");
        return 0;
    }
    if (tenant_settings_parse(settings, &s, msg, sizeof(msg)) < 0)
        return -EINVAL;
    *out = jsonx_dump(settings);
    return 0;
}

int tenant_insert(struct db *db, const char *name, const char *display_name, const json_t *settings)
{
    struct db_stmt *st;
    char *text = NULL;
    int64_t now = time_wall_us() / 1000000;
    int rc;

    if (!display_name)
        display_name = name;
    if (!tenant_name_valid(name) || !tenant_display_name_valid(display_name))
        return -EINVAL;
    rc = settings_text(settings, &text);
    if (rc < 0)
        goto out;
    st = db_prepare(db, "INSERT INTO tenants(name, display_name, settings, created_at, updated_at) "
                        "VALUES ($1, $2, $3, $4, $4)");
    if (!st) {
        rc = -EIO;
        goto out;
    }
    db_bind_text(st, 1, name, -1);
    db_bind_text(st, 2, display_name, -1);
    db_bind_text(st, 3, text, -1);
    db_bind_int64(st, 4, now);
    rc = db_step(st);
    db_done(st);
    rc = identity_db_errno(rc);
out:
    free(text);
    return rc;
}

int tenant_update(struct db *db, const char *name, const char *display_name, const json_t *settings)
{
    struct db_stmt *st;
    char *text = NULL;
    int rc;

    if (display_name && !tenant_display_name_valid(display_name))
        return -EINVAL;
    if (settings) {
        rc = settings_text(settings, &text);
        if (rc < 0)
            goto out;
    }
    /* COALESCE keeps what the caller left NULL. */
    st = db_prepare(db, "UPDATE tenants SET display_name = COALESCE($2, display_name), "
                        "settings = COALESCE($3, settings), updated_at = $4 WHERE name = $1");
    if (!st) {
        rc = -EIO;
        goto out;
    }
    db_bind_text(st, 1, name, -1);
    db_bind_text(st, 2, display_name, -1);
    db_bind_text(st, 3, text, -1);
    db_bind_int64(st, 4, time_wall_us() / 1000000);
    rc = db_step(st);
    db_done(st);
    rc = identity_db_errno(rc);
    if (rc == 0 && db_changes(db) == 0)
        rc = -ENOENT;
out:
    free(text);
    return rc;
}

/* Every table holding rows of a tenant, by its tenant column. Keep in step
 * with store/schema.c. */
static const char *const tenant_tables[] = {
    "clients", "signing_keys", "users", "user_emails", "groups", "group_members",
    "refresh_tokens", "opaque_tokens", "revoked_jtis", "auth_codes", "sso_sessions",
};

int tenant_delete(struct db *db, const char *name)
{
    int rc;

    if (strcmp(name, TENANT_DEFAULT) == 0)
        return -EPERM;
    rc = identity_db_errno(db_execp(db, "DELETE FROM tenants WHERE name = $1", name, NULL));
    if (rc < 0)
        return rc;
    if (db_changes(db) == 0)
        return -ENOENT;
    for (size_t i = 0; i < sizeof(tenant_tables) / sizeof(tenant_tables[0]); i++) {
        char sql[96];
        snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE tenant = $1", tenant_tables[i]);
        rc = identity_db_errno(db_execp(db, sql, name, NULL));
        if (rc < 0)
            return rc;
    }
    return 0;
}
