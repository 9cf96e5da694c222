/*
 * mint — making tokens: RFC 9068 JWT access tokens, OIDC ID tokens (with
 * the standard claims mapped from the user's SCIM resource), and the random
 * values behind opaque access tokens and refresh tokens.
 *
 * The access-token payload is written with a tiny JSON writer straight into
 * one buffer rather than through jansson: on the client_credentials hot path
 * building and serializing a jansson object costs a measurable share of the
 * request next to the ES256 signature itself. ID tokens are rarer and carry
 * user data of arbitrary shape, so they use jansson.
 *
 * SCIM -> OIDC claim mapping (OIDC Core §5.1, RFC 7643 §4.1):
 *   profile  name <- name.formatted | displayName, given_name <- name.givenName,
 *            family_name <- name.familyName, middle_name <- name.middleName,
 *            nickname <- nickName, preferred_username <- userName,
 *            profile <- profileUrl, picture <- photos (primary or first),
 *            locale <- locale, zoneinfo <- timezone, updated_at <- users.updated_at
 *   email    email <- emails (primary or first)
 *   phone    phone_number <- phoneNumbers (primary or first)
 *   address  address <- addresses (primary or first): formatted, street_address,
 *            locality, region, postal_code, country
 *   groups   groups <- display names of the groups the user is a direct member of
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "core/base64.h"
#include "core/json.h"
#include "core/rand.h"
#include "core/uuid.h"
#include "crypto/jws.h"
#include "identity/keyring.h"
#include "identity/group.h"
#include "oauth/oauth_internal.h"

/* ----------------------------------------------------------- JSON writer */

void jw_begin(struct jw *w, struct buf *b)
{
    w->b = b;
    w->first = true;
    buf_putc(b, '{');
}

static void key(struct jw *w, const char *k)
{
    if (!w->first)
        buf_putc(w->b, ',');
    w->first = false;
    buf_putc(w->b, '"');
    buf_json_escape(w->b, k, strlen(k));
    buf_puts(w->b, "\":");
}

void jw_str(struct jw *w, const char *k, const char *v)
{
    key(w, k);
    buf_putc(w->b, '"');
    buf_json_escape(w->b, v, strlen(v));
    buf_putc(w->b, '"');
}

void jw_str_safe(struct jw *w, const char *k, const char *v)
{
    key(w, k);
    buf_putc(w->b, '"');
    buf_puts(w->b, v);
    buf_putc(w->b, '"');
}

void jw_int(struct jw *w, const char *k, int64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof(num), "%lld", (long long)v);
    key(w, k);
    buf_append(w->b, num, (size_t)n);
}

void jw_bool(struct jw *w, const char *k, bool v)
{
    key(w, k);
    buf_puts(w->b, v ? "true" : "false");
}

void jw_raw(struct jw *w, const char *k, const char *json)
{
    key(w, k);
    buf_puts(w->b, json);
}

void jw_end(struct jw *w)
{
    buf_putc(w->b, '}');
}

/* ---------------------------------------------------------------- tokens */

void oauth_random_token(char out[OAUTH_TOKEN_BUFSZ], char hash[CRYPTO_TOKEN_HASH_BUFSZ])
{
    rand_token(out, 32);
    crypto_token_hash(out, strlen(out), hash);
}

static int sign(struct node *n, struct db *db, const char *tenant, const char *typ, const char *payload,
                size_t len, char **out)
{
    const struct crypto_key *k = NULL;
    int rc = keyring_signing_key(n->keyring, db, tenant, &k);
    if (rc < 0)
        return rc;
    rc = crypto_jws_sign(k, typ, payload, len, out);
    keyring_release(n->keyring, k);
    return rc;
}

/* True when the space-separated scope string holds `want` as a whole token. */
static bool scope_has(const char *scope, const char *want)
{
    size_t n = strlen(want);
    for (const char *p = scope; p && *p;) {
        const char *e = strchr(p, ' ');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && memcmp(p, want, n) == 0)
            return true;
        p = e ? e + 1 : NULL;
    }
    return false;
}

int oauth_jwt_access_token(struct node *n, struct db *db, const char *tenant, struct at_claims *c,
                           char **out)
{
    struct buf b;
    struct jw w;
    int rc;

    *out = NULL;
    if (!c->jti[0])
        uuid_v4(c->jti);
    buf_init(&b, OAUTH_RESP_LIMIT);
    jw_begin(&w, &b);
    jw_str(&w, "iss", c->iss);
    jw_str(&w, "sub", c->sub);
    jw_str(&w, "aud", c->aud);
    jw_int(&w, "exp", c->exp);
    jw_int(&w, "iat", c->iat);
    jw_str_safe(&w, "jti", c->jti);
    jw_str(&w, "client_id", c->client_id);
    jw_str(&w, "scope", c->scope);
    if (c->auth_time)
        jw_int(&w, "auth_time", c->auth_time);
    if (c->auth_time && scope_has(c->scope, "groups") && c->groups_json) {
        jw_raw(&w, "groups", c->groups_json);
    } else if (c->auth_time && scope_has(c->scope, "groups")) {
        /* RFC 9068 §2.2.3.1: a user's groups for the resource server. */
        json_t *g = user_groups_json(db, tenant, c->sub);
        char *gs = jsonx_dump(g);
        jw_raw(&w, "groups", gs);
        free(gs);
        json_decref(g);
    }
    jw_end(&w);
    if (b.len >= b.limit) {
        rc = -E2BIG;
        goto out;
    }
    rc = sign(n, db, tenant, "at+jwt", b.data, b.len, out);
out:
    buf_free(&b);
    return rc;
}

/* ---------------------------------------------------------------- claims */

/* The "primary": true element of a multi-valued SCIM attribute, else the first. */
static json_t *primary(json_t *arr)
{
    size_t i;
    json_t *v;
    if (!json_is_array(arr) || json_array_size(arr) == 0)
        return NULL;
    json_array_foreach(arr, i, v)
        if (json_is_object(v) && json_is_true(json_object_get(v, "primary")))
            return v;
    v = json_array_get(arr, 0);
    return json_is_object(v) ? v : NULL;
}

static void copy_str(json_t *dst, const char *dk, json_t *src, const char *sk)
{
    json_t *v = src ? json_object_get(src, sk) : NULL;
    if (json_is_string(v) && json_string_length(v) > 0)
        json_object_set(dst, dk, v);
}

void oauth_user_claims(json_t *obj, const struct oauth_scopes *scope, const char *user_data,
                       const char *user_name, int64_t updated_at)
{
    json_t *u = user_data ? json_loads(user_data, 0, NULL) : NULL;
    if (!json_is_object(u)) {
        json_decref(u);
        u = json_object();
    }
    if (oauth_scopes_has(scope, "profile")) {
        json_t *name = json_object_get(u, "name");
        if (!json_is_object(name))
            name = NULL;
        copy_str(obj, "name", name, "formatted");
        if (!json_object_get(obj, "name"))
            copy_str(obj, "name", u, "displayName");
        copy_str(obj, "given_name", name, "givenName");
        copy_str(obj, "family_name", name, "familyName");
        copy_str(obj, "middle_name", name, "middleName");
        copy_str(obj, "nickname", u, "nickName");
        if (user_name && *user_name)
            json_object_set_new(obj, "preferred_username", json_string(user_name));
        else
            copy_str(obj, "preferred_username", u, "userName");
        copy_str(obj, "profile", u, "profileUrl");
        copy_str(obj, "picture", primary(json_object_get(u, "photos")), "value");
        copy_str(obj, "locale", u, "locale");
        copy_str(obj, "zoneinfo", u, "timezone");
        if (updated_at > 0)
            json_object_set_new(obj, "updated_at", json_integer(updated_at));
    }
    if (oauth_scopes_has(scope, "email"))
        copy_str(obj, "email", primary(json_object_get(u, "emails")), "value");
    if (oauth_scopes_has(scope, "phone"))
        copy_str(obj, "phone_number", primary(json_object_get(u, "phoneNumbers")), "value");
    if (oauth_scopes_has(scope, "address")) {
        json_t *a = primary(json_object_get(u, "addresses"));
        if (a) {
            json_t *addr = json_object();
            copy_str(addr, "formatted", a, "formatted");
            copy_str(addr, "street_address", a, "streetAddress");
            copy_str(addr, "locality", a, "locality");
            copy_str(addr, "region", a, "region");
            copy_str(addr, "postal_code", a, "postalCode");
            copy_str(addr, "country", a, "country");
            if (json_object_size(addr) > 0)
                json_object_set(obj, "address", addr);
            json_decref(addr);
        }
    }
    json_decref(u);
}

int oauth_token_half_hash(int alg, const char *token, char out[44])
{
    unsigned char h[crypto_hash_sha512_BYTES];
    size_t half;

    switch (alg) {
    case CRYPTO_ALG_ES256:
    case CRYPTO_ALG_RS256:
        crypto_hash_sha256(h, (const unsigned char *)token, strlen(token));
        half = crypto_hash_sha256_BYTES / 2;
        break;
    case CRYPTO_ALG_EDDSA:   /* Ed25519 signs with SHA-512 */
        crypto_hash_sha512(h, (const unsigned char *)token, strlen(token));
        half = crypto_hash_sha512_BYTES / 2;
        break;
    default:
        return -EINVAL;
    }
    b64url_encode(h, half, out);
    return 0;
}

int oauth_id_token(struct node *n, struct db *db, const char *tenant, const struct id_claims *c,
                   char **out)
{
    const struct crypto_key *k = NULL;
    char at_hash[44];
    int rc;

    *out = NULL;
    /* the key first: at_hash depends on its algorithm */
    rc = keyring_signing_key(n->keyring, db, tenant, &k);
    if (rc < 0)
        return rc;
    json_t *p = json_object();
    json_object_set_new(p, "iss", json_string(c->iss));
    json_object_set_new(p, "sub", json_string(c->sub));
    json_object_set_new(p, "aud", json_string(c->aud));
    json_object_set_new(p, "exp", json_integer(c->exp));
    json_object_set_new(p, "iat", json_integer(c->iat));
    json_object_set_new(p, "auth_time", json_integer(c->auth_time));
    if (c->nonce)
        json_object_set_new(p, "nonce", json_string(c->nonce));
    json_object_set_new(p, "azp", json_string(c->aud));
    if (c->sid)
        json_object_set_new(p, "sid", json_string(c->sid));
    if (c->access_token && oauth_token_half_hash(crypto_key_alg(k), c->access_token, at_hash) == 0)
        json_object_set_new(p, "at_hash", json_string(at_hash));
    oauth_user_claims(p, c->scope, c->user_data, c->user_name, c->updated_at);
    if (oauth_scopes_has(c->scope, "groups")) {
        json_t *g = c->groups_json ? json_loads(c->groups_json, 0, NULL) : NULL;
        json_object_set_new(p, "groups", g ? g : user_groups_json(db, tenant, c->sub));
    }
    char *s = jsonx_dump(p);
    json_decref(p);
    rc = crypto_jws_sign(k, "JWT", s, strlen(s), out);
    keyring_release(n->keyring, k);
    free(s);
    return rc;
}
