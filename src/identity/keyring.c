/*
 * keyring — each tenant's signing keys, parsed once and kept in memory for
 * the token hot path; persisted sealed in signing_keys.
 *
 * Why this file exists: signing a token must not touch the database or parse
 * a key (DESIGN.md goal: 18,000 client_credentials grants/s on two cores).
 * keyring_signing_key() is a read lock, a hash lookup and a reference count
 * increment when the cache is fresh.
 *
 * Cache life cycle:
 *   - one entry per tenant: the active key (unsealed private JWK, can sign)
 *     and the retired keys not yet past retire_after (public JWK only, they
 *     only verify);
 *   - an entry is fresh while no keyring_invalidate() happened since its load
 *     began (generation counter) and it is younger than 5 s. An invalidated
 *     entry is reloaded synchronously by the next lookup; an entry that only
 *     aged is reloaded by one thread while the others keep using it;
 *   - keys are reference-counted: a lookup returns its own reference, so a
 *     reload may swap and free an entry while a token is being signed with
 *     one of its keys (keyring_release drops the reference);
 *   - only tenants that have keys are cached, and at most KR_MAX_ENTRIES, so
 *     arbitrary tenant names from URLs cannot grow the cache.
 *
 * At rest: private_enc = crypto_seal(master_key, aad = "TENANT/KID",
 * private JWK JSON). The AAD pins a sealed key to its row.
 */
#include "identity/keyring.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/timeutil.h"
#include "core/xmalloc.h"
#include "crypto/seal.h"
#include "crypto/secret.h"
#include "identity/tenant.h"

#define KR_BUCKETS 256                  /* power of two */
#define KR_MAX_ENTRIES 4096
#define KR_MAX_AGE_US 5000000           /* reload after 5 s */
#define KR_RELOAD_RETRY_US 1000000      /* one reloader per entry per second */

struct kr_key {
    struct crypto_key *key;             /* one reference, owned by the entry */
    int64_t retire_after;               /* unix seconds; 0 for the active key */
};

struct kr_entry {
    struct kr_entry *next;              /* hash chain */
    char *tenant;
    uint32_t hash;
    uint64_t gen;                       /* kr->gen when the load began */
    int64_t loaded_us;                  /* monotonic */
    _Atomic int64_t reload_us;          /* when a thread last started an age reload */
    int sign_rc;                        /* why there is no signing key: -ENOENT or -EIO */
    struct crypto_key *signing;         /* borrowed from keys[], NULL when none */
    struct kr_key *keys;                /* newest first */
    size_t nkeys;
};

struct keyring {
    unsigned char master_key[32];
    pthread_rwlock_t lock;
    _Atomic uint64_t gen;
    struct kr_entry *buckets[KR_BUCKETS];
    size_t nentries;
};

/* ------------------------------------------------------------ entries */

static uint32_t name_hash(const char *s)
{
    uint32_t h = 2166136261u;     /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static void entry_free(struct kr_entry *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->nkeys; i++)
        crypto_key_free(e->keys[i].key);
    free(e->keys);
    free(e->tenant);
    free(e);
}

static struct kr_entry *entry_find(struct keyring *kr, const char *tenant, uint32_t h)
{
    for (struct kr_entry *e = kr->buckets[h & (KR_BUCKETS - 1)]; e; e = e->next)
        if (e->hash == h && strcmp(e->tenant, tenant) == 0)
            return e;
    return NULL;
}

static bool entry_current(struct keyring *kr, const struct kr_entry *e)
{
    return e->gen == atomic_load_explicit(&kr->gen, memory_order_acquire);
}

static bool entry_young(const struct kr_entry *e, int64_t now_us)
{
    return now_us - e->loaded_us < KR_MAX_AGE_US;
}

static bool key_published(const struct kr_key *k, int64_t now_s)
{
    return k->retire_after == 0 || k->retire_after > now_s;
}

/* Unseals the private JWK of tenant/kid and parses it. */
static int unseal_key(struct keyring *kr, const char *tenant, const char *kid, const void *sealed,
                      size_t n, struct crypto_key **out)
{
    char aad[256];
    uint8_t *plain = NULL;
    size_t plen = 0;
    int rc, aadlen = snprintf(aad, sizeof(aad), "%s/%s", tenant, kid);

    if (aadlen < 0 || (size_t)aadlen >= sizeof(aad))
        return -EINVAL;
    rc = crypto_open(kr->master_key, aad, (size_t)aadlen, sealed, n, &plain, &plen);
    if (rc < 0)
        return rc;
    rc = crypto_key_from_jwk((const char *)plain, plen, out);
    crypto_wipe_free(plain, plen);
    return rc;
}

/*
 * Reads tenant's keys from the store into a new, unpublished entry.
 * 0 or -EIO (the statement failed). A key that does not unseal or parse is
 * logged and left out; an active key that does so leaves sign_rc = -EIO.
 */
static int entry_load(struct keyring *kr, struct db *db, const char *tenant, uint32_t h,
                      struct kr_entry **out)
{
    struct kr_entry *e = xcalloc(1, sizeof(*e));
    int64_t now_s = time_wall_us() / 1000000;
    size_t cap = 0;
    struct db_stmt *st;
    int rc;

    e->tenant = xstrdup(tenant);
    e->hash = h;
    e->gen = atomic_load_explicit(&kr->gen, memory_order_acquire);   /* before reading */
    e->loaded_us = time_mono_us();
    atomic_init(&e->reload_us, 0);
    e->sign_rc = -ENOENT;
    st = db_prepare(db, "SELECT kid, public_jwk, private_enc, status, retire_after FROM signing_keys "
                        "WHERE tenant = $1 ORDER BY CASE status WHEN 'active' THEN 0 ELSE 1 END, created_at DESC, kid");
    if (!st) {
        rc = -EIO;
        goto out;
    }
    db_bind_text(st, 1, tenant, -1);
    while ((rc = db_step(st)) == DB_ROW) {
        const char *kid = db_col_text(st, 0);
        bool active = strcmp(db_col_text(st, 3), "active") == 0;
        int64_t retire_after = db_col_int64(st, 4);
        struct crypto_key *k = NULL;
        int krc;

        if (!active && retire_after <= now_s)
            continue;                       /* expired; the purge job deletes it */
        if (active && !e->signing) {
            krc = unseal_key(kr, tenant, kid, db_col_blob(st, 2), db_col_bytes(st, 2), &k);
            if (krc < 0) {
                log_error("keyring: cannot unseal the active signing key (wrong master key?)",
                          "tenant", tenant, "kid", kid, "error", log_i64(krc), NULL);
                e->sign_rc = -EIO;
            }
        } else {
            /* a retired key, or a second active one (replication race): verify only */
            const char *pub = db_col_text(st, 1);
            krc = crypto_key_from_jwk(pub, strlen(pub), &k);
            if (krc < 0)
                log_error("keyring: cannot parse a public key", "tenant", tenant, "kid", kid,
                          "error", log_i64(krc), NULL);
        }
        if (krc < 0)
            continue;
        if (strcmp(crypto_key_kid(k), kid) != 0) {
            log_error("keyring: key id does not match its row", "tenant", tenant, "kid", kid, NULL);
            crypto_key_free(k);
            if (active && !e->signing)
                e->sign_rc = -EIO;
            continue;
        }
        if (e->nkeys == cap) {
            cap = cap ? cap * 2 : 4;
            e->keys = xrealloc(e->keys, cap * sizeof(*e->keys));
        }
        e->keys[e->nkeys++] = (struct kr_key){ k, active ? 0 : retire_after };
        if (active && !e->signing && crypto_key_has_private(k)) {
            e->signing = k;
            e->sign_rc = 0;
        }
    }
    db_done(st);
    rc = rc == DB_DONE ? 0 : -EIO;
out:
    if (rc < 0) {
        entry_free(e);
        e = NULL;
    }
    *out = e;
    return rc;
}

/* Drops entries that are no longer fresh (caller holds the write lock). */
static void evict_stale(struct keyring *kr, int64_t now_us)
{
    for (size_t b = 0; b < KR_BUCKETS; b++) {
        struct kr_entry **pp = &kr->buckets[b];
        while (*pp) {
            struct kr_entry *e = *pp;
            if (!entry_current(kr, e) || !entry_young(e, now_us)) {
                *pp = e->next;
                entry_free(e);
                kr->nentries--;
            } else {
                pp = &e->next;
            }
        }
    }
}

/* Puts a freshly loaded entry into the cache unless a newer one is there.
 * Takes ownership of e. */
static void entry_publish(struct keyring *kr, struct kr_entry *e)
{
    struct kr_entry *drop = NULL;

    pthread_rwlock_wrlock(&kr->lock);
    struct kr_entry **pp = &kr->buckets[e->hash & (KR_BUCKETS - 1)];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->hash == e->hash && strcmp((*pp)->tenant, e->tenant) == 0)
            break;
    if (*pp) {
        struct kr_entry *old = *pp;
        if (old->gen > e->gen || (old->gen == e->gen && old->loaded_us > e->loaded_us)) {
            drop = e;             /* someone published a newer load */
        } else if (e->nkeys == 0) {
            *pp = old->next;      /* the tenant has no keys any more: forget it */
            kr->nentries--;
            entry_free(e);
            drop = old;
        } else {
            e->next = old->next;
            *pp = e;
            drop = old;
        }
    } else if (e->nkeys == 0) {
        drop = e;                 /* not cached: see the life cycle above */
    } else {
        if (kr->nentries >= KR_MAX_ENTRIES)
            evict_stale(kr, time_mono_us());
        if (kr->nentries >= KR_MAX_ENTRIES) {
            drop = e;
        } else {
            struct kr_entry **head = &kr->buckets[e->hash & (KR_BUCKETS - 1)];
            e->next = *head;
            *head = e;
            kr->nentries++;
        }
    }
    pthread_rwlock_unlock(&kr->lock);
    entry_free(drop);              /* keys handed out keep their own references */
}

/* ------------------------------------------------------------- lookup */

/* Reads what the caller wants from an entry; takes references for what it returns. */
typedef int (*pick_fn)(const struct kr_entry *e, const void *arg, void *out);

static int lookup(struct keyring *kr, struct db *db, const char *tenant, pick_fn pick, const void *arg,
                  void *out)
{
    uint32_t h = name_hash(tenant);
    struct kr_entry *e, *ne;
    int rc;

    pthread_rwlock_rdlock(&kr->lock);
    e = entry_find(kr, tenant, h);
    if (e && entry_current(kr, e)) {
        int64_t now = time_mono_us();
        bool serve = entry_young(e, now);
        if (!serve) {
            /* aged only: one thread reloads, the others keep using this entry */
            int64_t last = atomic_load(&e->reload_us);
            serve = now - last < KR_RELOAD_RETRY_US ||
                    !atomic_compare_exchange_strong(&e->reload_us, &last, now);
        }
        if (serve) {
            rc = pick(e, arg, out);
            pthread_rwlock_unlock(&kr->lock);
            return rc;
        }
    }
    pthread_rwlock_unlock(&kr->lock);

    rc = entry_load(kr, db, tenant, h, &ne);
    if (rc < 0)
        return rc;
    rc = pick(ne, arg, out);
    entry_publish(kr, ne);
    return rc;
}

static int pick_signing(const struct kr_entry *e, const void *arg, void *out)
{
    (void)arg;
    if (!e->signing)
        return e->sign_rc;
    *(const struct crypto_key **)out = crypto_key_ref(e->signing);
    return 0;
}

static int pick_kid(const struct kr_entry *e, const void *arg, void *out)
{
    const char *kid = arg;
    int64_t now_s = time_wall_us() / 1000000;

    for (size_t i = 0; i < e->nkeys; i++) {
        if (strcmp(crypto_key_kid(e->keys[i].key), kid) == 0) {
            if (!key_published(&e->keys[i], now_s))
                return -ENOENT;
            *(const struct crypto_key **)out = crypto_key_ref(e->keys[i].key);
            return 0;
        }
    }
    return -ENOENT;
}

static int pick_jwks(const struct kr_entry *e, const void *arg, void *out)
{
    int64_t now_s = time_wall_us() / 1000000;
    json_t *keys = json_array();

    (void)arg;
    for (size_t i = 0; i < e->nkeys; i++)
        if (key_published(&e->keys[i], now_s))
            json_array_append_new(keys, crypto_key_public_jwk_json(e->keys[i].key));
    *(json_t **)out = json_pack("{s:o}", "keys", keys);
    return 0;
}

/* ------------------------------------------------------------- public */

struct keyring *keyring_new(const unsigned char master_key[32])
{
    struct keyring *kr = xcalloc(1, sizeof(*kr));
    pthread_rwlockattr_t attr;

    memcpy(kr->master_key, master_key, sizeof(kr->master_key));
    /* The hot path is all readers; prefer a waiting writer so a reload
     * (rare) is not starved by a continuous stream of lookups. */
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&kr->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    atomic_init(&kr->gen, 1);
    return kr;
}

void keyring_free(struct keyring *kr)
{
    if (!kr)
        return;
    for (size_t b = 0; b < KR_BUCKETS; b++) {
        struct kr_entry *e = kr->buckets[b];
        while (e) {
            struct kr_entry *next = e->next;
            entry_free(e);
            e = next;
        }
    }
    pthread_rwlock_destroy(&kr->lock);
    crypto_wipe(kr->master_key, sizeof(kr->master_key));
    free(kr);
}

void keyring_invalidate(struct keyring *kr)
{
    atomic_fetch_add_explicit(&kr->gen, 1, memory_order_acq_rel);
}

uint64_t keyring_generation(struct keyring *kr)
{
    return atomic_load_explicit(&kr->gen, memory_order_acquire);
}

int keyring_signing_key(struct keyring *kr, struct db *db, const char *tenant,
                        const struct crypto_key **out)
{
    *out = NULL;
    return lookup(kr, db, tenant, pick_signing, NULL, out);
}

int keyring_find(struct keyring *kr, struct db *db, const char *tenant, const char *kid,
                 const struct crypto_key **out)
{
    *out = NULL;
    return lookup(kr, db, tenant, pick_kid, kid, out);
}

void keyring_release(struct keyring *kr, const struct crypto_key *k)
{
    (void)kr;
    crypto_key_free((struct crypto_key *)k);
}

json_t *keyring_jwks(struct keyring *kr, struct db *db, const char *tenant)
{
    json_t *j = NULL;

    if (lookup(kr, db, tenant, pick_jwks, NULL, &j) < 0)
        return NULL;
    return j;
}

/* -------------------------------------------------------------- writer */

int keyring_rotate(struct db *db, const unsigned char master_key[32], const char *tenant, const char *alg,
                   int64_t max_token_ttl, char *kid_out)
{
    enum crypto_alg a;
    struct crypto_key *k = NULL;
    char *priv = NULL, *pub = NULL;
    uint8_t *sealed = NULL;
    size_t sealedlen = 0;
    char aad[256];
    int64_t now = time_wall_us() / 1000000;
    struct db_stmt *st;
    const char *kid;
    int rc, aadlen;

    if (!alg || crypto_alg_parse(alg, strlen(alg), &a) < 0)
        return -EINVAL;
    st = db_prepare(db, "SELECT 1 FROM tenants WHERE name = $1");
    if (!st)
        return -EIO;
    db_bind_text(st, 1, tenant, -1);
    rc = db_step(st);
    db_done(st);
    if (rc != DB_ROW)
        return rc == DB_DONE ? -ENOENT : identity_db_errno(rc);

    rc = crypto_key_generate(a, &k);
    if (rc < 0)
        goto out;
    kid = crypto_key_kid(k);
    priv = crypto_key_private_jwk(k);
    pub = crypto_key_public_jwk(k);
    aadlen = snprintf(aad, sizeof(aad), "%s/%s", tenant, kid);
    if (!priv || !pub || aadlen < 0 || (size_t)aadlen >= sizeof(aad)) {
        rc = -EIO;
        goto out;
    }
    rc = crypto_seal(master_key, aad, (size_t)aadlen, priv, strlen(priv), &sealed, &sealedlen);
    if (rc < 0)
        goto out;

    st = db_prepare(db, "UPDATE signing_keys SET status = 'retired', retire_after = $2 "
                        "WHERE tenant = $1 AND status = 'active'");
    if (!st) {
        rc = -EIO;
        goto out;
    }
    db_bind_text(st, 1, tenant, -1);
    db_bind_int64(st, 2, now + (max_token_ttl > 0 ? max_token_ttl : 0));
    rc = identity_db_errno(db_step(st));
    db_done(st);
    if (rc < 0)
        goto out;

    st = db_prepare(db, "INSERT INTO signing_keys(tenant, kid, alg, public_jwk, private_enc, status, "
                        "created_at, retire_after) VALUES ($1, $2, $3, $4, $5, 'active', $6, 0)");
    if (!st) {
        rc = -EIO;
        goto out;
    }
    db_bind_text(st, 1, tenant, -1);
    db_bind_text(st, 2, kid, -1);
    db_bind_text(st, 3, crypto_alg_name(a), -1);
    db_bind_text(st, 4, pub, -1);
    db_bind_blob(st, 5, sealed, sealedlen);
    db_bind_int64(st, 6, now);
    rc = identity_db_errno(db_step(st));
    db_done(st);
    if (rc == 0 && kid_out)
        snprintf(kid_out, 64, "%s", kid);
out:
    crypto_wipe_free_str(priv);
    free(pub);
    free(sealed);
    crypto_key_free(k);
    return rc;
}

json_t *keyring_list_json(struct db *db, const char *tenant)
{
    struct db_stmt *st = db_prepare(db, "SELECT kid, alg, status, created_at, retire_after "
                                        "FROM signing_keys WHERE tenant = $1 "
                                        "ORDER BY CASE status WHEN 'active' THEN 0 ELSE 1 END, created_at DESC, kid");
    json_t *arr;
    int rc;

    if (!st)
        return NULL;
    arr = json_array();
    db_bind_text(st, 1, tenant, -1);
    while ((rc = db_step(st)) == DB_ROW)
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:I, s:I}", "kid", db_col_text(st, 0),
                                             "alg", db_col_text(st, 1), "status", db_col_text(st, 2),
                                             "created_at", (json_int_t)db_col_int64(st, 3),
                                             "retire_after", (json_int_t)db_col_int64(st, 4)));
    db_done(st);
    if (rc != DB_DONE) {
        json_decref(arr);
        arr = NULL;
    }
    return arr;
}
