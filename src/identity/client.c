/*
 * client — OAuth clients of a tenant: the validation rules of the admin
 * API, the rows in `clients`, and client authentication.
 *
 * Why this file exists: what a client may do (grants, scopes, redirect URIs)
 * is decided once, when an admin writes it, so the token and authorize
 * endpoints can trust what client_load hands them and only compare. The
 * rules follow RFC 6749 (scope tokens §3.3, redirect URIs §3.1.2: absolute,
 * no fragment, exact match) and OAuth 2.1 (a public client has no secret,
 * hence no client_credentials grant).
 *
 * Row layout: list fields are JSON arrays in TEXT columns; the lifetime
 * overrides and the post-logout redirect URIs live in the `settings` JSON
 * object ({"access_token_ttl": N, ..., "post_logout_redirect_uris": [...]},
 * only the ones set). The secret is never stored, only crypto_secret_hash().
 */
#include "identity/client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/rand.h"
#include "core/base64.h"
#include "core/timeutil.h"
#include "core/xmalloc.h"
#include "crypto/secret.h"
#include "identity/tenant.h"

/* ------------------------------------------------------------- rules */

bool client_id_valid(const char *s, size_t n)
{
    if (n == 0 || n > CLIENT_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '~' || ch == '-'))
            return false;
    }
    return true;
}

bool client_scope_token_valid(const char *s, size_t n)
{
    if (n == 0 || n > CLIENT_SCOPE_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x21 || ch > 0x7e || ch == '"' || ch == '\\')
            return false;
    }
    return true;
}

static bool is_hex(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

/* RFC 3986 unreserved, reserved (minus '#') and '%'. */
static bool uri_char(unsigned char ch)
{
    if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9'))
        return true;
    return ch && strchr("-._~:/?[]@!$&'()*+,;=%", ch) != NULL;
}

bool client_redirect_uri_valid(const char *s, size_t n)
{
    size_t i, auth_start, auth_end;

    if (n > CLIENT_URI_MAX)
        return false;
    if (n > 8 && memcmp(s, "https://", 8) == 0)
        auth_start = 8;
    else if (n > 7 && memcmp(s, "http://", 7) == 0)
        auth_start = 7;
    else
        return false;
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!uri_char(ch))
            return false;   /* '#', spaces, controls, non-ASCII, <>"{}|\^` */
        if (ch == '%' && (i + 2 >= n || !is_hex((unsigned char)s[i + 1]) ||
                          !is_hex((unsigned char)s[i + 2])))
            return false;
    }
    for (auth_end = auth_start; auth_end < n; auth_end++)
        if (s[auth_end] == '/' || s[auth_end] == '?')
            break;
    if (auth_end == auth_start || s[auth_start] == ':')
        return false;       /* no host */
    if (memchr(s + auth_start, '@', auth_end - auth_start))
        return false;       /* userinfo: credentials in a redirect URI */
    return true;
}

/* ----------------------------------------------------------- parsing */

typedef bool (*item_ok_fn)(const char *s, size_t n);

/* A JSON array of distinct strings accepted by ok(), at most CLIENT_MAX_LIST. */
static int parse_list(const json_t *v, const char *field, item_ok_fn ok, const char *rule,
                      struct arena *a, const char ***out, size_t *nout, char *msg, size_t msglen)
{
    size_t n, i;
    const char **items;

    if (!json_is_array(v)) {
        snprintf(msg, msglen, "%s: must be an array", field);
        return -EINVAL;
    }
    n = json_array_size(v);
    if (n > CLIENT_MAX_LIST) {
        snprintf(msg, msglen, "%s: at most %d entries", field, CLIENT_MAX_LIST);
        return -EINVAL;
    }
    items = arena_alloc(a, (n ? n : 1) * sizeof(*items));
    for (i = 0; i < n; i++) {
        const json_t *e = json_array_get(v, i);
        const char *s = json_string_value(e);
        size_t len = json_string_length(e);
        if (!json_is_string(e) || !ok(s, len) || strlen(s) != len) {
            snprintf(msg, msglen, "%s[%zu]: %s", field, i, rule);
            return -EINVAL;
        }
        for (size_t k = 0; k < i; k++) {
            if (strcmp(items[k], s) == 0) {
                snprintf(msg, msglen, "%s[%zu]: duplicate", field, i);
                return -EINVAL;
            }
        }
        items[i] = arena_strndup(a, s, len);
    }
    *out = items;
    *nout = n;
    return 0;
}

static int parse_grants(const json_t *v, unsigned *out, char *msg, size_t msglen)
{
    unsigned bits = 0;
    size_t i;
    json_t *e;

    if (!json_is_array(v)) {
        snprintf(msg, msglen, "grant_types: must be an array");
        return -EINVAL;
    }
    json_array_foreach(v, i, e) {
        unsigned b = json_is_string(e) ? grant_bit(json_string_value(e)) : 0;
        if (!b) {
            snprintf(msg, msglen,
                     "grant_types[%zu]: must be one of client_credentials, password, "
                     "refresh_token, authorization_code",
                     i);
            return -EINVAL;
        }
        if (bits & b) {
            snprintf(msg, msglen, "grant_types[%zu]: duplicate", i);
            return -EINVAL;
        }
        bits |= b;
    }
    *out = bits;
    return 0;
}

static int parse_ttl(const json_t *v, const char *field, int64_t *out, char *msg, size_t msglen)
{
    if (json_is_null(v)) {
        *out = 0;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > CLIENT_TTL_MAX) {
        snprintf(msg, msglen, "%s: must be an integer 1..%d or null", field, CLIENT_TTL_MAX);
        return -EINVAL;
    }
    *out = json_integer_value(v);
    return 0;
}

static const char *const known_fields[] = {
    "client_id", "name", "type", "redirect_uris", "post_logout_redirect_uris", "grant_types", "scopes",
    "default_scopes",
    "token_format", "access_token_ttl", "refresh_token_ttl", "id_token_ttl",
    "created_at", "updated_at",
};

static bool bad_name(const char *s, size_t n)
{
    if (n > CLIENT_NAME_MAX || strlen(s) != n)
        return true;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return true;
    return false;
}

int client_from_json(const json_t *j, bool partial, struct arena *a, struct client *c, char *msg, size_t msglen)
{
    struct client r;      /* the result; copied to *c only when valid */
    const char *key;
    json_t *v;
    int rc = -EINVAL;

    if (!json_is_object(j)) {
        snprintf(msg, msglen, "body: must be a JSON object");
        return -EINVAL;
    }
    json_object_foreach((json_t *)j, key, v) {
        size_t i;
        for (i = 0; i < sizeof(known_fields) / sizeof(known_fields[0]); i++)
            if (strcmp(key, known_fields[i]) == 0)
                break;
        if (i == sizeof(known_fields) / sizeof(known_fields[0])) {
            snprintf(msg, msglen, "%.64s: unknown field", key);
            return -EINVAL;
        }
    }

    if (partial) {
        r = *c;
    } else {
        memset(&r, 0, sizeof(r));
        r.tenant = c->tenant;
        r.name = "";
        r.confidential = true;
    }

    /* client_id */
    if ((v = json_object_get(j, "client_id"))) {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        if (!json_is_string(v) || !client_id_valid(s, n)) {
            snprintf(msg, msglen, "client_id: must be 1..%d characters of A-Z a-z 0-9 . _ ~ -",
                     CLIENT_ID_MAX);
            goto out;
        }
        if (partial && strcmp(s, r.client_id) != 0) {
            snprintf(msg, msglen, "client_id: cannot be changed");
            goto out;
        }
        r.client_id = arena_strndup(a, s, n);
    } else if (!partial) {
        char id[B64URL_ENCLEN(CLIENT_ID_GEN_BYTES)];
        rand_token(id, CLIENT_ID_GEN_BYTES);
        r.client_id = arena_strdup(a, id);
    }

    /* type */
    if ((v = json_object_get(j, "type"))) {
        const char *s = json_string_value(v);
        bool conf;
        if (s && strcmp(s, "confidential") == 0)
            conf = true;
        else if (s && strcmp(s, "public") == 0)
            conf = false;
        else {
            snprintf(msg, msglen, "type: must be \"confidential\" or \"public\"");
            goto out;
        }
        if (partial && conf != r.confidential) {
            snprintf(msg, msglen, "type: cannot be changed (create a new client)");
            goto out;
        }
        r.confidential = conf;
    }

    /* name */
    if ((v = json_object_get(j, "name"))) {
        if (!json_is_string(v) || bad_name(json_string_value(v), json_string_length(v))) {
            snprintf(msg, msglen, "name: must be a string of at most %d characters without control "
                     "characters", CLIENT_NAME_MAX);
            goto out;
        }
        r.name = arena_strdup(a, json_string_value(v));
    }

    if ((v = json_object_get(j, "redirect_uris")) &&
        parse_list(v, "redirect_uris", client_redirect_uri_valid,
                   "must be an absolute https or http URL without fragment", a, &r.redirect_uris,
                   &r.nredirect_uris, msg, msglen) < 0)
        goto out;

    if ((v = json_object_get(j, "post_logout_redirect_uris")) &&
        parse_list(v, "post_logout_redirect_uris", client_redirect_uri_valid,
                   "must be an absolute https or http URL without fragment", a, &r.post_logout_redirect_uris,
                   &r.npost_logout_redirect_uris, msg, msglen) < 0)
        goto out;

    if ((v = json_object_get(j, "grant_types"))) {
        if (parse_grants(v, &r.grant_types, msg, msglen) < 0)
            goto out;
    } else if (!partial) {
        r.grant_types = r.confidential ? GRANT_CLIENT_CREDENTIALS
                                       : GRANT_AUTHORIZATION_CODE | GRANT_REFRESH_TOKEN;
    }

    if ((v = json_object_get(j, "scopes")) &&
        parse_list(v, "scopes", client_scope_token_valid,
                   "must be a scope token (printable ASCII without space, \" or \\)", a, &r.scopes,
                   &r.nscopes, msg, msglen) < 0)
        goto out;
    if ((v = json_object_get(j, "default_scopes")) &&
        parse_list(v, "default_scopes", client_scope_token_valid,
                   "must be a scope token (printable ASCII without space, \" or \\)", a,
                   &r.default_scopes, &r.ndefault_scopes, msg, msglen) < 0)
        goto out;

    if ((v = json_object_get(j, "token_format"))) {
        const char *s = json_string_value(v);
        if (s && strcmp(s, "jwt") == 0)
            r.opaque_tokens = false;
        else if (s && strcmp(s, "opaque") == 0)
            r.opaque_tokens = true;
        else {
            snprintf(msg, msglen, "token_format: must be \"jwt\" or \"opaque\"");
            goto out;
        }
    }

    if ((v = json_object_get(j, "access_token_ttl")) &&
        parse_ttl(v, "access_token_ttl", &r.access_token_ttl, msg, msglen) < 0)
        goto out;
    if ((v = json_object_get(j, "refresh_token_ttl")) &&
        parse_ttl(v, "refresh_token_ttl", &r.refresh_token_ttl, msg, msglen) < 0)
        goto out;
    if ((v = json_object_get(j, "id_token_ttl")) &&
        parse_ttl(v, "id_token_ttl", &r.id_token_ttl, msg, msglen) < 0)
        goto out;

    /* rules across fields, on the result */
    if (!r.confidential && (r.grant_types & GRANT_CLIENT_CREDENTIALS)) {
        snprintf(msg, msglen, "grant_types: client_credentials needs a confidential client");
        goto out;
    }
    if ((r.grant_types & GRANT_AUTHORIZATION_CODE) && r.nredirect_uris == 0) {
        snprintf(msg, msglen, "redirect_uris: at least one is required for the authorization_code grant");
        goto out;
    }
    for (size_t i = 0; i < r.ndefault_scopes; i++) {
        if (!client_has_scope(&r, r.default_scopes[i])) {
            snprintf(msg, msglen, "default_scopes[%zu]: not in scopes", i);
            goto out;
        }
    }
    *c = r;
    rc = 0;
out:
    return rc;
}

/* ---------------------------------------------------------- rendering */

static json_t *list_json(const char *const *v, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_string(v[i]));
    return arr;
}

static json_t *grants_json(unsigned bits)
{
    json_t *arr = json_array();
    for (unsigned b = 1; b <= GRANT_AUTHORIZATION_CODE; b <<= 1)
        if (bits & b)
            json_array_append_new(arr, json_string(grant_name(b)));
    return arr;
}

static void put_ttl(json_t *o, const char *key, int64_t v)
{
    if (v > 0)
        json_object_set_new(o, key, json_integer(v));
}

json_t *client_to_json(const struct client *c)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:s}", "client_id", c->client_id,
                          "name", c->name ? c->name : "", "type",
                          c->confidential ? "confidential" : "public", "redirect_uris",
                          list_json(c->redirect_uris, c->nredirect_uris), "grant_types",
                          grants_json(c->grant_types), "scopes", list_json(c->scopes, c->nscopes),
                          "default_scopes", list_json(c->default_scopes, c->ndefault_scopes),
                          "token_format", c->opaque_tokens ? "opaque" : "jwt");
    json_object_set_new(o, "post_logout_redirect_uris",
                        list_json(c->post_logout_redirect_uris, c->npost_logout_redirect_uris));
    put_ttl(o, "access_token_ttl", c->access_token_ttl);
    put_ttl(o, "refresh_token_ttl", c->refresh_token_ttl);
    put_ttl(o, "id_token_ttl", c->id_token_ttl);
    json_object_set_new(o, "created_at", json_integer(c->created_at));
    json_object_set_new(o, "updated_at", json_integer(c->updated_at));
    return o;
}

/* ---------------------------------------------------------- queries */

bool client_has_scope(const struct client *c, const char *scope)
{
    for (size_t i = 0; i < c->nscopes; i++)
        if (strcmp(c->scopes[i], scope) == 0)
            return true;
    return false;
}

bool client_has_redirect_uri(const struct client *c, const char *uri)
{
    for (size_t i = 0; i < c->nredirect_uris; i++)
        if (strcmp(c->redirect_uris[i], uri) == 0)
            return true;
    return false;
}

bool client_has_post_logout_redirect_uri(const struct client *c, const char *uri)
{
    for (size_t i = 0; i < c->npost_logout_redirect_uris; i++)
        if (strcmp(c->post_logout_redirect_uris[i], uri) == 0)
            return true;
    return false;
}

bool client_allows_grant(const struct client *c, unsigned bit)
{
    return bit != 0 && (c->grant_types & bit) == bit;
}

bool client_secret_ok(const struct client *c, const char *secret, size_t len)
{
    if (!c->confidential || !c->secret_hash || !secret)
        return false;
    return crypto_secret_verify(secret, len, c->secret_hash);
}

/* ----------------------------------------------------------- reading */

#define CLIENT_COLS                                                                           \
    "tenant, client_id, name, type, secret_hash, redirect_uris, grant_types, scopes, "        \
    "default_scopes, token_format, settings, created_at, updated_at"

/* A stored JSON array of strings into an arena array (non-strings skipped). */
static void load_list(const char *text, struct arena *a, const char ***out, size_t *nout)
{
    json_t *arr;
    size_t n = 0;

    *out = NULL;
    *nout = 0;
    if (strcmp(text, "[]") == 0 || !(arr = json_loads(text, 0, NULL)))
        return;
    if (json_is_array(arr) && json_array_size(arr) > 0) {
        const char **v = arena_alloc(a, json_array_size(arr) * sizeof(*v));
        for (size_t i = 0; i < json_array_size(arr); i++) {
            const json_t *e = json_array_get(arr, i);
            if (json_is_string(e))
                v[n++] = arena_strdup(a, json_string_value(e));
        }
        *out = v;
        *nout = n;
    }
    json_decref(arr);
}

static void client_from_row(struct db_stmt *st, struct arena *a, struct client *c)
{
    const char **grants;
    size_t ngrants;
    const char *settings;

    memset(c, 0, sizeof(*c));
    c->tenant = arena_strdup(a, db_col_text(st, 0));
    c->client_id = arena_strdup(a, db_col_text(st, 1));
    c->name = arena_strdup(a, db_col_text(st, 2));
    c->confidential = strcmp(db_col_text(st, 3), "confidential") == 0;
    if (!db_col_is_null(st, 4))
        c->secret_hash = arena_strdup(a, db_col_text(st, 4));
    load_list(db_col_text(st, 5), a, &c->redirect_uris, &c->nredirect_uris);
    load_list(db_col_text(st, 6), a, &grants, &ngrants);
    for (size_t i = 0; i < ngrants; i++)
        c->grant_types |= grant_bit(grants[i]);   /* unknown names grant nothing */
    load_list(db_col_text(st, 7), a, &c->scopes, &c->nscopes);
    load_list(db_col_text(st, 8), a, &c->default_scopes, &c->ndefault_scopes);
    c->opaque_tokens = strcmp(db_col_text(st, 9), "opaque") == 0;
    settings = db_col_text(st, 10);
    if (strcmp(settings, "{}") != 0) {
        json_t *s = json_loads(settings, 0, NULL);
        c->access_token_ttl = jsonx_int(s, "access_token_ttl", 0);
        c->refresh_token_ttl = jsonx_int(s, "refresh_token_ttl", 0);
        c->id_token_ttl = jsonx_int(s, "id_token_ttl", 0);
        json_t *pl = json_object_get(s, "post_logout_redirect_uris");
        if (json_is_array(pl) && json_array_size(pl) > 0) {
            size_t n = 0;
            const char **v = arena_alloc(a, json_array_size(pl) * sizeof(*v));
            for (size_t i = 0; i < json_array_size(pl); i++)
                if (json_is_string(json_array_get(pl, i)))
                    v[n++] = arena_strdup(a, json_string_value(json_array_get(pl, i)));
            c->post_logout_redirect_uris = v;
            c->npost_logout_redirect_uris = n;
        }
        json_decref(s);
    }
    c->created_at = db_col_int64(st, 11);
    c->updated_at = db_col_int64(st, 12);
}

int client_load(struct db *db, const char *tenant, const char *client_id, struct arena *a, struct client *c)
{
    struct db_stmt *st = db_prepare(db, "SELECT " CLIENT_COLS " FROM clients "
                                        "WHERE tenant = $1 AND client_id = $2");
    int rc;

    if (!st)
        return -EIO;
    db_bind_text(st, 1, tenant, -1);
    db_bind_text(st, 2, client_id, -1);
    rc = db_step(st);
    if (rc == DB_ROW) {
        client_from_row(st, a, c);
        rc = 0;
    } else {
        rc = rc == DB_DONE ? -ENOENT : identity_db_errno(rc);
    }
    db_done(st);
    return rc;
}

json_t *client_list_json(struct db *db, const char *tenant)
{
    struct db_stmt *st = db_prepare(db, "SELECT " CLIENT_COLS " FROM clients "
                                        "WHERE tenant = $1 ORDER BY client_id");
    struct arena a;
    json_t *arr;
    int rc;

    if (!st)
        return NULL;
    arena_init(&a);
    arr = json_array();
    db_bind_text(st, 1, tenant, -1);
    while ((rc = db_step(st)) == DB_ROW) {
        struct client c;
        client_from_row(st, &a, &c);
        json_array_append_new(arr, client_to_json(&c));
    }
    db_done(st);
    arena_free(&a);
    if (rc != DB_DONE) {
        json_decref(arr);
        arr = NULL;
    }
    return arr;
}

/* ----------------------------------------------------------- writing */

struct client_cols {
    char *redirect_uris, *grant_types, *scopes, *default_scopes, *settings;
};

static void cols_render(const struct client *c, struct client_cols *k)
{
    json_t *j;

    j = list_json(c->redirect_uris, c->nredirect_uris);
    k->redirect_uris = jsonx_dump(j);
    json_decref(j);
    j = grants_json(c->grant_types);
    k->grant_types = jsonx_dump(j);
    json_decref(j);
    j = list_json(c->scopes, c->nscopes);
    k->scopes = jsonx_dump(j);
    json_decref(j);
    j = list_json(c->default_scopes, c->ndefault_scopes);
    k->default_scopes = jsonx_dump(j);
    json_decref(j);
    j = json_object();
    put_ttl(j, "access_token_ttl", c->access_token_ttl);
    put_ttl(j, "refresh_token_ttl", c->refresh_token_ttl);
    put_ttl(j, "id_token_ttl", c->id_token_ttl);
    if (c->npost_logout_redirect_uris > 0)
        json_object_set_new(j, "post_logout_redirect_uris",
                            list_json(c->post_logout_redirect_uris, c->npost_logout_redirect_uris));
    k->settings = jsonx_dump(j);
    json_decref(j);
}

static void cols_free(struct client_cols *k)
{
    free(k->redirect_uris);
    free(k->grant_types);
    free(k->scopes);
    free(k->default_scopes);
    free(k->settings);
}

static int tenant_exists(struct db *db, const char *tenant)
{
    struct db_stmt *st = db_prepare(db, "SELECT 1 FROM tenants WHERE name = $1");
    int rc;

    if (!st)
        return -EIO;
    db_bind_text(st, 1, tenant, -1);
    rc = db_step(st);
    db_done(st);
    return rc == DB_ROW ? 0 : rc == DB_DONE ? -ENOENT : identity_db_errno(rc);
}

int client_insert(struct db *db, const struct client *c, const char *secret)
{
    char hash[CRYPTO_SECRET_HASH_BUFSZ];
    struct client_cols k;
    struct db_stmt *st;
    int rc;

    if (!c->tenant || !c->client_id || !client_id_valid(c->client_id, strlen(c->client_id)) ||
        c->confidential != (secret != NULL) || (secret && !*secret))
        return -EINVAL;
    rc = tenant_exists(db, c->tenant);
    if (rc < 0)
        return rc;
    if (secret)
        crypto_secret_hash(secret, strlen(secret), hash);
    cols_render(c, &k);
    st = db_prepare(db, "INSERT INTO clients(tenant, client_id, name, type, secret_hash, "
                        "redirect_uris, grant_types, scopes, default_scopes, token_format, settings, "
                        "created_at, updated_at) "
                        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)");
    if (!st) {
        rc = -EIO;
        goto out;
    }
    db_bind_text(st, 1, c->tenant, -1);
    db_bind_text(st, 2, c->client_id, -1);
    db_bind_text(st, 3, c->name ? c->name : "", -1);
    db_bind_text(st, 4, c->confidential ? "confidential" : "public", -1);
    db_bind_text(st, 5, secret ? hash : NULL, -1);
    db_bind_text(st, 6, k.redirect_uris, -1);
    db_bind_text(st, 7, k.grant_types, -1);
    db_bind_text(st, 8, k.scopes, -1);
    db_bind_text(st, 9, k.default_scopes, -1);
    db_bind_text(st, 10, c->opaque_tokens ? "opaque" : "jwt", -1);
    db_bind_text(st, 11, k.settings, -1);
    db_bind_int64(st, 12, time_wall_us() / 1000000);
    rc = identity_db_errno(db_step(st));
    db_done(st);
out:
    cols_free(&k);
    return rc;
}

int client_update(struct db *db, const struct client *c)
{
    struct client_cols k;
    struct db_stmt *st;
    int rc;

    cols_render(c, &k);
    st = db_prepare(db, "UPDATE clients SET name = $3, redirect_uris = $4, grant_types = $5, "
                        "scopes = $6, default_scopes = $7, token_format = $8, settings = $9, "
                        "updated_at = $10 WHERE tenant = $1 AND client_id = $2");
    if (!st) {
        rc = -EIO;
        goto out;
    }
    db_bind_text(st, 1, c->tenant, -1);
    db_bind_text(st, 2, c->client_id, -1);
    db_bind_text(st, 3, c->name ? c->name : "", -1);
    db_bind_text(st, 4, k.redirect_uris, -1);
    db_bind_text(st, 5, k.grant_types, -1);
    db_bind_text(st, 6, k.scopes, -1);
    db_bind_text(st, 7, k.default_scopes, -1);
    db_bind_text(st, 8, c->opaque_tokens ? "opaque" : "jwt", -1);
    db_bind_text(st, 9, k.settings, -1);
    db_bind_int64(st, 10, time_wall_us() / 1000000);
    rc = identity_db_errno(db_step(st));
    db_done(st);
    if (rc == 0 && db_changes(db) == 0)
        rc = -ENOENT;
out:
    cols_free(&k);
    return rc;
}

int client_set_secret(struct db *db, const char *tenant, const char *client_id, const char *secret)
{
    char hash[CRYPTO_SECRET_HASH_BUFSZ];
    struct db_stmt *st;
    int rc;

    if (!secret || !*secret)
        return -EINVAL;
    st = db_prepare(db, "SELECT type FROM clients WHERE tenant = $1 AND client_id = $2");
    if (!st)
        return -EIO;
    db_bind_text(st, 1, tenant, -1);
    db_bind_text(st, 2, client_id, -1);
    rc = db_step(st);
    if (rc == DB_ROW)
        rc = strcmp(db_col_text(st, 0), "confidential") == 0 ? 0 : -EINVAL;
    else
        rc = rc == DB_DONE ? -ENOENT : identity_db_errno(rc);
    db_done(st);
    if (rc < 0)
        return rc;
    crypto_secret_hash(secret, strlen(secret), hash);
    st = db_prepare(db, "UPDATE clients SET secret_hash = $3, updated_at = $4 "
                        "WHERE tenant = $1 AND client_id = $2");
    if (!st)
        return -EIO;
    db_bind_text(st, 1, tenant, -1);
    db_bind_text(st, 2, client_id, -1);
    db_bind_text(st, 3, hash, -1);
    db_bind_int64(st, 4, time_wall_us() / 1000000);
    rc = identity_db_errno(db_step(st));
    db_done(st);
    return rc;
}

int client_delete(struct db *db, const char *tenant, const char *client_id)
{
    static const char *const deps[] = {
        "DELETE FROM refresh_tokens WHERE tenant = $1 AND client_id = $2",
        "DELETE FROM opaque_tokens WHERE tenant = $1 AND client_id = $2",
        "DELETE FROM auth_codes WHERE tenant = $1 AND client_id = $2",
    };
    int rc = identity_db_errno(
        db_execp(db, "DELETE FROM clients WHERE tenant = $1 AND client_id = $2", tenant, client_id, NULL));

    if (rc < 0)
        return rc;
    if (db_changes(db) == 0)
        return -ENOENT;
    for (size_t i = 0; i < sizeof(deps) / sizeof(deps[0]); i++) {
        rc = identity_db_errno(db_execp(db, deps[i], tenant, client_id, NULL));
        if (rc < 0)
            return rc;
    }
    return 0;
}
