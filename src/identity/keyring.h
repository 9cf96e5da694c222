/*
 * keyring — each tenant's signing keys, kept parsed in memory for the token
 * hot path and persisted sealed (AES-256-GCM under the master key) in
 * signing_keys (replication class `config`).
 *
 * The current key of a tenant signs; retired keys stay published in the
 * JWKS and usable for verification until retire_after (the expiry of the
 * last token they could have signed), then the purge job deletes them.
 *
 * The in-memory cache is keyed by tenant and reloaded from the store when
 * keyring_invalidate() was called since it was loaded (local key writes, and
 * replication apply of config tables) or after 5 s, whichever comes first,
 * so a node never signs with a key the store no longer holds for long.
 * Thread-safe; lookups take a read lock only.
 */
#ifndef REFUGE_IDENTITY_KEYRING_H
#define REFUGE_IDENTITY_KEYRING_H

#include <jansson.h>
#include <stdint.h>
#include "crypto/keys.h"
#include "store/db.h"

struct keyring;

struct keyring *keyring_new(const unsigned char master_key[32]);
void keyring_free(struct keyring *kr);
void keyring_invalidate(struct keyring *kr);
/* Changes whenever keyring_invalidate() is called: caches of anything
 * verified with these keys (oauth's verified-token cache) compare it. */
uint64_t keyring_generation(struct keyring *kr);

/* The tenant's current signing key. The returned key stays valid until
 * keyring_release(). -ENOENT when the tenant has no active key. */
int keyring_signing_key(struct keyring *kr, struct db *db, const char *tenant,
                        const struct crypto_key **out);
/* A verification key by kid (active or retired, not past retire_after). */
int keyring_find(struct keyring *kr, struct db *db, const char *tenant, const char *kid,
                 const struct crypto_key **out);
void keyring_release(struct keyring *kr, const struct crypto_key *k);
/* {"keys":[...]} of the tenant's published public keys (active, and retired
 * ones not past retire_after). New reference; NULL on a DB error. */
json_t *keyring_jwks(struct keyring *kr, struct db *db, const char *tenant);

/* Writer-side: generates a key of `alg` ("ES256", "RS256", "EdDSA"), seals
 * it, inserts it as the active key and retires the previous active key with
 * retire_after = now + max_token_ttl (tenant_max_token_ttl). Writes the new
 * kid to kid_out (64 bytes; may be NULL). 0, -EINVAL (alg), -ENOENT (no such
 * tenant), -EIO or a store error. The caller invalidates the keyring after
 * the commit. */
int keyring_rotate(struct db *db, const unsigned char master_key[32], const char *tenant, const char *alg,
                   int64_t max_token_ttl, char *kid_out);
/* Admin listing, newest first: [{"kid","alg","status","created_at","retire_after"}]
 * (no key material). New reference; NULL on a DB error. */
json_t *keyring_list_json(struct db *db, const char *tenant);

#endif
