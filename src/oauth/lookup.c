/*
 * lookup — finding out what a presented token is: a JWT access token we
 * signed (verified against the keyring, then its claims and the jti
 * deny-list), an opaque access token, or a refresh token (both by the
 * SHA-256 of their value). Shared by introspection, revocation, userinfo and
 * authz, so that all four agree on what "valid" means.
 */
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <string.h>
#include <strings.h>

#include "core/json.h"
#include "crypto/jws.h"
#include "identity/keyring.h"
#include "oauth/oauth_internal.h"

bool oauth_looks_like_jwt(const char *tok, size_t n)
{
    size_t dots = 0;
    for (size_t i = 0; i < n; i++)
        dots += tok[i] == '.';
    return dots == 2;
}

/* ------------------------------------------------------------------ JWT */

struct kid_lookup {
    struct node *n;
    struct db *db;
    const char *tenants[2];
    size_t ntenants;
    const struct crypto_key *key;     /* held until verification ends */
    const char *tenant;               /* whose key it was */
};

static const struct crypto_key *find_key(void *arg, const char *kid, size_t kidlen)
{
    struct kid_lookup *l = arg;
    (void)kidlen;
    for (size_t i = 0; i < l->ntenants; i++) {
        const struct crypto_key *k = NULL;
        if (keyring_find(l->n->keyring, l->db, l->tenants[i], kid, &k) == 0) {
            l->key = k;
            l->tenant = l->tenants[i];
            return k;
        }
    }
    return NULL;
}

static const char *claim_str(json_t *p, const char *k)
{
    json_t *v = json_object_get(p, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static bool claim_int(json_t *p, const char *k, int64_t *out)
{
    json_t *v = json_object_get(p, k);
    if (!json_is_integer(v))
        return false;
    *out = json_integer_value(v);
    return true;
}

static bool aud_has(json_t *aud, const char *want)
{
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) == 0;
    if (json_is_array(aud)) {
        size_t i;
        json_t *v;
        json_array_foreach(aud, i, v)
            if (json_is_string(v) && strcmp(json_string_value(v), want) == 0)
                return true;
    }
    return false;
}

static int jti_revoked(struct db *db, const char *jti)
{
    struct db_stmt *st = db_prepare(db, "SELECT 1 FROM revoked_jtis WHERE jti = $1");
    if (!st)
        return -EIO;
    db_bind_text(st, 1, jti, -1);
    int rc = db_step(st);
    db_done(st);
    if (rc < 0)
        return -EIO;
    return rc == DB_ROW;
}

/* ------------------------------------------------- verified-token cache */

/*
 * The signature of a JWT access token is checked once, not on every request
 * that presents it: an ES256 verification is ~45 µs, and profiles of SCIM
 * creates and replicated writes showed it at 34-39 % of refuged's CPU, the
 * same bearer token being verified thousands of times.
 *
 * The cache holds only what the signature proves — which tenant's key signed
 * exactly these bytes, and their payload — keyed by SHA-256 of the token.
 * Everything that can change is still checked on every request: exp, iat,
 * iss, aud, typ and the jti deny-list (revocation takes effect at once). An
 * entry is ignored once the keyring's generation moved (a key rotated or
 * deleted, a tenant deleted, replication applied config changes), so a
 * signature is never trusted past the key that made it. Direct-mapped, fixed
 * size: memory is bounded and an attacker can only evict, never insert
 * something unverified.
 */
#define VCACHE_SLOTS 4096
#define VCACHE_STRIPES 64
#define VCACHE_MAX_PAYLOAD 2048

struct vcache_entry {
    unsigned char key[crypto_hash_sha256_BYTES];
    uint64_t gen;                /* keyring generation when verified; 0: empty */
    char tenant[64];
    char *payload;               /* xmalloc'd JSON text */
};

static struct vcache_entry vcache[VCACHE_SLOTS];
static pthread_mutex_t vcache_mu[VCACHE_STRIPES] = {
#define M PTHREAD_MUTEX_INITIALIZER
    M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
    M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
#undef M
};

static size_t vcache_slot(const unsigned char *key)
{
    size_t v;
    memcpy(&v, key, sizeof(v));
    return v % VCACHE_SLOTS;
}

/* Returns the payload (new reference) and the signing tenant on a hit. */
static json_t *vcache_get(const unsigned char *key, uint64_t gen, char tenant[64])
{
    size_t i = vcache_slot(key);
    json_t *payload = NULL;
    pthread_mutex_t *mu = &vcache_mu[i % VCACHE_STRIPES];

    pthread_mutex_lock(mu);
    struct vcache_entry *e = &vcache[i];
    if (e->gen == gen && e->payload && memcmp(e->key, key, sizeof(e->key)) == 0) {
        payload = json_loads(e->payload, JSON_REJECT_DUPLICATES, NULL);
        memcpy(tenant, e->tenant, 64);
    }
    pthread_mutex_unlock(mu);
    return json_is_object(payload) ? payload : (json_decref(payload), NULL);
}

static void vcache_put(const unsigned char *key, uint64_t gen, const char *tenant, const json_t *payload)
{
    char *text = jsonx_dump(payload);
    if (!text || strlen(text) > VCACHE_MAX_PAYLOAD || strlen(tenant) >= 64) {
        free(text);
        return;
    }
    size_t i = vcache_slot(key);
    pthread_mutex_t *mu = &vcache_mu[i % VCACHE_STRIPES];
    pthread_mutex_lock(mu);
    struct vcache_entry *e = &vcache[i];
    free(e->payload);
    memcpy(e->key, key, sizeof(e->key));
    e->gen = gen;
    snprintf(e->tenant, sizeof(e->tenant), "%s", tenant);
    e->payload = text;
    pthread_mutex_unlock(mu);
}

int oauth_jwt_verify(struct node *n, struct db *db, const char *tenant, bool allow_default,
                     const char *tok, size_t len, int64_t now, struct arena *a,
                     struct oauth_token_info *out)
{
    struct kid_lookup l = { .n = n, .db = db, .tenants = { tenant }, .ntenants = 1 };
    json_t *payload = NULL, *header = NULL;
    int rc;

    unsigned char key[crypto_hash_sha256_BYTES];
    char cached_tenant[64];
    uint64_t gen = keyring_generation(n->keyring);

    memset(out, 0, sizeof(*out));
    if (allow_default && strcmp(tenant, TENANT_DEFAULT) != 0)
        l.tenants[l.ntenants++] = TENANT_DEFAULT;
    crypto_hash_sha256(key, (const unsigned char *)tok, len);
    payload = vcache_get(key, gen, cached_tenant);
    if (payload) {
        /* verified before, by a key still in force: only the tenant rule remains */
        bool ok = strcmp(cached_tenant, tenant) == 0 || (allow_default && strcmp(cached_tenant, TENANT_DEFAULT) == 0);
        if (!ok) {
            rc = -EACCES;
            goto out;
        }
        l.tenant = arena_strdup(a, cached_tenant);
    } else {
        rc = crypto_jws_verify(tok, len, find_key, &l, 0, &payload, &header);
        if (l.key)
            keyring_release(n->keyring, l.key);
        if (rc < 0) {
            rc = rc == -EIO ? -EIO : -EACCES;
            goto out;
        }
        const char *typ = claim_str(header, "typ");
        if (!typ || (strcasecmp(typ, "at+jwt") != 0 && strcasecmp(typ, "application/at+jwt") != 0)) {
            rc = -EACCES;
            goto out;
        }
        vcache_put(key, gen, l.tenant, payload);
    }
    rc = -EACCES;
    const char *iss = tenant_issuer(n->conf->public_url, l.tenant, a);
    const char *tok_iss = claim_str(payload, "iss");
    const char *sub = claim_str(payload, "sub"), *jti = claim_str(payload, "jti");
    const char *client_id = claim_str(payload, "client_id"), *scope = claim_str(payload, "scope");
    int64_t exp, iat, auth_time = 0;
    if (!tok_iss || strcmp(tok_iss, iss) != 0 || !sub || !jti || !client_id)
        goto out;
    if (!claim_int(payload, "exp", &exp) || !claim_int(payload, "iat", &iat))
        goto out;
    if (exp <= now || iat > now + OAUTH_IAT_LEEWAY)
        goto out;
    if (!aud_has(json_object_get(payload, "aud"), iss))
        goto out;
    bool user = claim_int(payload, "auth_time", &auth_time);
    int r = jti_revoked(db, jti);
    if (r != 0) {
        rc = r < 0 ? r : -EACCES;
        goto out;
    }
    out->kind = OAUTH_TOKEN_JWT;
    out->tenant = arena_strdup(a, l.tenant);
    out->iss = iss;
    out->sub = arena_strdup(a, sub);
    out->user_id = user ? out->sub : NULL;
    out->client_id = arena_strdup(a, client_id);
    out->scope = arena_strdup(a, scope ? scope : "");
    out->jti = arena_strdup(a, jti);
    out->aud = iss;
    out->iat = iat;
    out->exp = exp;
    out->auth_time = auth_time;
    rc = 0;
out:
    json_decref(payload);
    json_decref(header);
    return rc;
}

/* --------------------------------------------------------- opaque, refresh */

int oauth_opaque_lookup(struct node *n, struct db *db, const char *tok, size_t len, int64_t now,
                        struct arena *a, struct oauth_token_info *out)
{
    memset(out, 0, sizeof(*out));
    if (len != OAUTH_TOKEN_LEN)
        return -ENOENT;
    crypto_token_hash(tok, len, out->hash);
    struct db_stmt *st = db_prepare(db, "SELECT tenant, client_id, user_id, scope, issued_at, expires_at,"
                                        " family_id FROM opaque_tokens WHERE token_hash = $1");
    if (!st)
        return -EIO;
    db_bind_text(st, 1, out->hash, -1);
    int rc = db_step(st);
    if (rc == DB_ROW && db_col_int64(st, 5) > now) {
        out->kind = OAUTH_TOKEN_OPAQUE;
        out->tenant = arena_strdup(a, db_col_text(st, 0));
        out->client_id = arena_strdup(a, db_col_text(st, 1));
        out->user_id = db_col_is_null(st, 2) ? NULL : arena_strdup(a, db_col_text(st, 2));
        out->sub = out->user_id ? out->user_id : out->client_id;
        out->scope = arena_strdup(a, db_col_text(st, 3));
        out->iat = db_col_int64(st, 4);
        out->exp = db_col_int64(st, 5);
        out->family_id = db_col_is_null(st, 6) ? NULL : arena_strdup(a, db_col_text(st, 6));
        out->iss = tenant_issuer(n->conf->public_url, out->tenant, a);
        out->aud = out->iss;
        rc = 0;
    } else {
        rc = rc < 0 ? -EIO : -ENOENT;
    }
    db_done(st);
    return rc;
}

int oauth_refresh_lookup(struct db *db, const char *tok, size_t len, struct arena *a,
                         struct oauth_token_info *out)
{
    memset(out, 0, sizeof(*out));
    if (len != OAUTH_TOKEN_LEN)
        return -ENOENT;
    crypto_token_hash(tok, len, out->hash);
    struct db_stmt *st = db_prepare(db, "SELECT tenant, client_id, user_id, family_id, scope, status,"
                                        " issued_at, expires_at, auth_time"
                                        " FROM refresh_tokens WHERE token_hash = $1");
    if (!st)
        return -EIO;
    db_bind_text(st, 1, out->hash, -1);
    int rc = db_step(st);
    if (rc == DB_ROW) {
        out->kind = OAUTH_TOKEN_REFRESH;
        out->tenant = arena_strdup(a, db_col_text(st, 0));
        out->client_id = arena_strdup(a, db_col_text(st, 1));
        out->user_id = db_col_is_null(st, 2) ? NULL : arena_strdup(a, db_col_text(st, 2));
        out->sub = out->user_id ? out->user_id : out->client_id;
        out->family_id = arena_strdup(a, db_col_text(st, 3));
        out->scope = arena_strdup(a, db_col_text(st, 4));
        out->status = arena_strdup(a, db_col_text(st, 5));
        out->iat = db_col_int64(st, 6);
        out->exp = db_col_int64(st, 7);
        out->auth_time = db_col_int64(st, 8);
        rc = 0;
    } else {
        rc = rc < 0 ? -EIO : -ENOENT;
    }
    db_done(st);
    return rc;
}

int oauth_family_revoke(struct db *db, const char *family_id)
{
    /* The JWT access tokens minted with the family's refresh tokens carry
     * jti = oauth_derive_id("jti", token_hash): deny-list them until the
     * refresh token's own expiry (longer than theirs; the purge job drops
     * the entries after it). */
    struct db_stmt *st = db_prepare(db, "SELECT token_hash, tenant, expires_at FROM refresh_tokens"
                                        " WHERE family_id = $1 AND status <> 'revoked'");
    if (!st)
        return -EIO;
    db_bind_text(st, 1, family_id, -1);
    int rc;
    while ((rc = db_step(st)) == DB_ROW) {
        char jti[37], exp[24];
        oauth_derive_id("jti", db_col_text(st, 0), jti);
        snprintf(exp, sizeof(exp), "%lld", (long long)db_col_int64(st, 2));
        int r = db_execp(db, "INSERT INTO revoked_jtis (jti, tenant, expires_at) VALUES ($1, $2, CAST($3 AS INTEGER))"
                             " ON CONFLICT (jti) DO NOTHING", jti, db_col_text(st, 1), exp, NULL);
        if (r < 0) {
            db_done(st);
            return r;
        }
    }
    db_done(st);
    if (rc < 0)
        return rc;
    rc = db_execp(db, "UPDATE refresh_tokens SET status = 'revoked'"
                          " WHERE family_id = $1 AND status <> 'revoked'", family_id, NULL);
    if (rc < 0)
        return rc;
    return db_execp(db, "DELETE FROM opaque_tokens WHERE family_id = $1", family_id, NULL);
}
