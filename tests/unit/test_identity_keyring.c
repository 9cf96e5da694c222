/*
 * test_identity_keyring — signing keys: rotation (seal, insert, retire),
 * lookups through the in-memory cache (signing key, by kid, JWKS), what
 * invalidation and retire_after change, sealing bound to master key and
 * row, and references that outlive a cache swap while other threads rotate.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/rand.h"
#include "core/timeutil.h"
#include "crypto/jws.h"
#include "identity/keyring.h"
#include "identity/tenant.h"
#include "store/db.h"
#include "store/store.h"

/* ------------------------------------------------------------ fixture */

struct fixture {
    char dir[512];
    char path[600];
    struct db *db;
    unsigned char mk[32];
    struct keyring *kr;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    const char *base = getenv("REFUGE_TEST_TMP");
    char err[256];

    if (!base || !*base)
        base = "/tmp";
    mkdir(base, 0700);
    snprintf(f->dir, sizeof(f->dir), "%s/identity-keyring-XXXXXX", base);
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/k.db", f->dir);
    assert_int_equal(db_open(f->path, 0, &f->db, err, sizeof(err)), 0);
    assert_int_equal(db_exec(f->db, "PRAGMA journal_mode=WAL"), 0);
    assert_int_equal(store_schema_migrate(f->db, err, sizeof(err)), 0);
    assert_int_equal(tenant_insert(f->db, "acme", NULL, NULL), 0);
    assert_int_equal(tenant_insert(f->db, "other", NULL, NULL), 0);
    rand_bytes(f->mk, sizeof(f->mk));
    f->kr = keyring_new(f->mk);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    DIR *d;
    struct dirent *e;
    char p[1200];

    keyring_free(f->kr);
    db_close(f->db);
    if ((d = opendir(f->dir))) {
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.')
                continue;
            snprintf(p, sizeof(p), "%s/%s", f->dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static bool jwks_has(json_t *jwks, const char *kid)
{
    json_t *keys = json_object_get(jwks, "keys"), *k;
    size_t i;

    json_array_foreach(keys, i, k) {
        if (strcmp(json_string_value(json_object_get(k, "kid")), kid) == 0)
            return true;
    }
    return false;
}

/* Signs with k and verifies with v; 0 when it verifies. */
static int sign_verify(const struct crypto_key *k, const struct crypto_key *v)
{
    static const char payload[] = "{\"sub\":\"x\"}";
    const struct crypto_key *set[1] = { v };
    struct crypto_keyset ks = { set, 1 };
    json_t *claims = NULL;
    char *jws = NULL;
    int rc = crypto_jws_sign(k, "at+jwt", payload, sizeof(payload) - 1, &jws);

    if (rc == 0)
        rc = crypto_jws_verify(jws, strlen(jws), crypto_keyset_find, &ks, 0, &claims, NULL);
    json_decref(claims);
    free(jws);
    return rc;
}

/* ------------------------------------------------------------- tests */

static void test_rotate_and_lookup(void **state)
{
    struct fixture *f = *state;
    const struct crypto_key *k = NULL, *v = NULL;
    char kid[64];

    assert_int_equal(keyring_signing_key(f->kr, f->db, "acme", &k), -ENOENT);   /* no key yet */
    assert_null(k);
    assert_int_equal(keyring_rotate(f->db, f->mk, "acme", "ES256", 3600, kid), 0);
    assert_int_equal(strlen(kid), 43);                                          /* thumbprint */
    assert_int_equal(keyring_signing_key(f->kr, f->db, "acme", &k), 0);
    assert_string_equal(crypto_key_kid(k), kid);
    assert_int_equal(crypto_key_alg(k), CRYPTO_ALG_ES256);
    assert_true(crypto_key_has_private(k));
    assert_int_equal(keyring_find(f->kr, f->db, "acme", kid, &v), 0);
    assert_int_equal(sign_verify(k, v), 0);
    keyring_release(f->kr, v);
    assert_int_equal(keyring_find(f->kr, f->db, "acme", "no-such-kid", &v), -ENOENT);
    assert_int_equal(keyring_find(f->kr, f->db, "other", kid, &v), -ENOENT);   /* per tenant */
    assert_int_equal(keyring_signing_key(f->kr, f->db, "other", &v), -ENOENT);
    keyring_release(f->kr, k);

    /* the store holds the private key sealed only */
    struct db_stmt *st = db_prepare(f->db, "SELECT public_jwk, private_enc, status FROM signing_keys");
    assert_int_equal(db_step(st), DB_ROW);
    assert_null(strstr(db_col_text(st, 0), "\"d\""));
    assert_null(memmem(db_col_blob(st, 1), db_col_bytes(st, 1), "\"d\"", 3));
    assert_string_equal(db_col_text(st, 2), "active");
    assert_int_equal(db_step(st), DB_DONE);
    db_done(st);
}

static void test_rotation_keeps_old_key(void **state)
{
    struct fixture *f = *state;
    const struct crypto_key *k1 = NULL, *k2 = NULL, *v = NULL;
    char kid1[64], kid2[64];
    int64_t now = time_wall_us() / 1000000;

    assert_int_equal(keyring_rotate(f->db, f->mk, "acme", "ES256", 3600, kid1), 0);
    assert_int_equal(keyring_signing_key(f->kr, f->db, "acme", &k1), 0);
    assert_int_equal(keyring_rotate(f->db, f->mk, "acme", "RS256", 3600, kid2), 0);
    assert_string_not_equal(kid1, kid2);

    /* fresh cache: no DB read, the old key still signs until invalidated */
    assert_int_equal(keyring_signing_key(f->kr, f->db, "acme", &k2), 0);
    assert_string_equal(crypto_key_kid(k2), kid1);
    keyring_release(f->kr, k2);
    keyring_invalidate(f->kr);
    assert_int_equal(keyring_signing_key(f->kr, f->db, "acme", &k2), 0);
    assert_string_equal(crypto_key_kid(k2), kid2);
    assert_int_equal(crypto_key_alg(k2), CRYPTO_ALG_RS256);

    /* the reference to the old key survived the swap; it still signs, and
     * the retired key still verifies through the keyring */
    assert_int_equal(keyring_find(f->kr, f->db, "acme", kid1, &v), 0);
    assert_false(crypto_key_has_private(v));      /* retired: public half only */
    assert_int_equal(sign_verify(k1, v), 0);
    keyring_release(f->kr, v);
    assert_int_equal(keyring_find(f->kr, f->db, "acme", kid2, &v), 0);
    assert_int_equal(sign_verify(k2, v), 0);
    assert_int_equal(sign_verify(k1, v), -ENOKEY);         /* token of the old kid, new key */
    keyring_release(f->kr, v);
    keyring_release(f->kr, k1);
    keyring_release(f->kr, k2);

    json_t *jwks = keyring_jwks(f->kr, f->db, "acme");
    assert_int_equal(json_array_size(json_object_get(jwks, "keys")), 2);
    assert_true(jwks_has(jwks, kid1));
    assert_true(jwks_has(jwks, kid2));
    char *text = json_dumps(jwks, 0);
    assert_null(strstr(text, "\"d\""));
    assert_null(strstr(text, "\"p\""));
    free(text);
    json_decref(jwks);

    json_t *list = keyring_list_json(f->db, "acme");
    assert_int_equal(json_array_size(list), 2);
    json_t *a = json_array_get(list, 0), *b = json_array_get(list, 1);
    if (strcmp(json_string_value(json_object_get(a, "kid")), kid2) != 0) {
        json_t *t = a;      /* same created_at second: order by kid */
        a = b;
        b = t;
    }
    assert_string_equal(json_string_value(json_object_get(a, "status")), "active");
    assert_string_equal(json_string_value(json_object_get(a, "alg")), "RS256");
    assert_int_equal(json_integer_value(json_object_get(a, "retire_after")), 0);
    assert_string_equal(json_string_value(json_object_get(b, "status")), "retired");
    int64_t ra = json_integer_value(json_object_get(b, "retire_after"));
    assert_true(ra >= now + 3600 && ra <= now + 3602);
    assert_null(json_object_get(b, "private_enc"));
    json_decref(list);
}

static void test_retire_after_passed(void **state)
{
    struct fixture *f = *state;
    const struct crypto_key *v = NULL;
    char kid1[64], kid2[64];

    assert_int_equal(keyring_rotate(f->db, f->mk, "acme", "EdDSA", 3600, kid1), 0);
    assert_int_equal(keyring_find(f->kr, f->db, "acme", kid1, &v), 0);
    keyring_release(f->kr, v);
    /* no token can outlive the rotation: the old key is unpublished at once */
    assert_int_equal(keyring_rotate(f->db, f->mk, "acme", "ES256", 0, kid2), 0);
    keyring_invalidate(f->kr);
    assert_int_equal(keyring_find(f->kr, f->db, "acme", kid1, &v), -ENOENT);
    json_t *jwks = keyring_jwks(f->kr, f->db, "acme");
    assert_false(jwks_has(jwks, kid1));
    assert_true(jwks_has(jwks, kid2));
    json_decref(jwks);
    /* a cached retired key disappears when its retire_after passes, without a reload */
    int64_t soon = time_wall_us() / 1000000 + 1;
    char soon_text[32];
    snprintf(soon_text, sizeof(soon_text), "%lld", (long long)soon);
    assert_int_equal(db_execp(f->db, "UPDATE signing_keys SET retire_after = CAST($2 AS INTEGER) WHERE kid = $1",
                              kid1, soon_text, NULL), 0);
    keyring_invalidate(f->kr);
    assert_int_equal(keyring_find(f->kr, f->db, "acme", kid1, &v), 0);
    keyring_release(f->kr, v);
    while (time_wall_us() / 1000000 <= soon)
        time_sleep_us(50000);
    assert_int_equal(keyring_find(f->kr, f->db, "acme", kid1, &v), -ENOENT);
    jwks = keyring_jwks(f->kr, f->db, "acme");
    assert_false(jwks_has(jwks, kid1));
    json_decref(jwks);
}

static void test_rotate_errors(void **state)
{
    struct fixture *f = *state;
    char kid[64];

    assert_int_equal(keyring_rotate(f->db, f->mk, "acme", "HS256", 60, kid), -EINVAL);
    assert_int_equal(keyring_rotate(f->db, f->mk, "acme", "none", 60, kid), -EINVAL);
    assert_int_equal(keyring_rotate(f->db, f->mk, "acme", NULL, 60, kid), -EINVAL);
    assert_int_equal(keyring_rotate(f->db, f->mk, "nobody", "ES256", 60, kid), -ENOENT);
    json_t *list = keyring_list_json(f->db, "acme");
    assert_int_equal(json_array_size(list), 0);
    json_decref(list);
}

static void test_sealing_bound(void **state)
{
    struct fixture *f = *state;
    const struct crypto_key *k = NULL;
    unsigned char other_mk[32];
    char kid[64];

    assert_int_equal(keyring_rotate(f->db, f->mk, "acme", "ES256", 60, kid), 0);
    /* another master key cannot unseal it */
    memcpy(other_mk, f->mk, sizeof(other_mk));
    other_mk[0] ^= 1;
    struct keyring *wrong = keyring_new(other_mk);
    assert_int_equal(keyring_signing_key(wrong, f->db, "acme", &k), -EIO);
    assert_null(k);
    keyring_free(wrong);
    /* a sealed key copied into another tenant's row does not open there (AAD) */
    assert_int_equal(db_execp(f->db, "INSERT INTO signing_keys(tenant, kid, alg, public_jwk, private_enc, "
                                     "status, created_at) SELECT 'other', kid, alg, public_jwk, private_enc, "
                                     "'active', created_at FROM signing_keys WHERE tenant = 'acme'", NULL), 0);
    assert_int_equal(keyring_signing_key(f->kr, f->db, "other", &k), -EIO);
    assert_int_equal(keyring_signing_key(f->kr, f->db, "acme", &k), 0);
    keyring_release(f->kr, k);
}

static void test_tenant_delete_empties(void **state)
{
    struct fixture *f = *state;
    const struct crypto_key *k = NULL;
    char kid[64];

    assert_int_equal(keyring_rotate(f->db, f->mk, "other", "ES256", 60, kid), 0);
    assert_int_equal(keyring_signing_key(f->kr, f->db, "other", &k), 0);
    keyring_release(f->kr, k);
    assert_int_equal(tenant_delete(f->db, "other"), 0);
    keyring_invalidate(f->kr);
    assert_int_equal(keyring_signing_key(f->kr, f->db, "other", &k), -ENOENT);
    assert_int_equal(keyring_find(f->kr, f->db, "other", kid, &k), -ENOENT);
    json_t *jwks = keyring_jwks(f->kr, f->db, "other");
    assert_int_equal(json_array_size(json_object_get(jwks, "keys")), 0);
    json_decref(jwks);
}

/* ------------------------------------------------------- concurrency */

struct worker {
    struct fixture *f;
    atomic_bool *stop;
    int failures;
    long iterations;
    char first_kid[64];
    bool saw_other_kid;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct db *db;
    char err[256];

    if (db_open(w->f->path, DB_OPEN_READONLY, &db, err, sizeof(err)) != 0) {
        w->failures++;
        return NULL;
    }
    while (!atomic_load(w->stop)) {
        const struct crypto_key *k = NULL, *v = NULL;
        if (keyring_signing_key(w->f->kr, db, "acme", &k) != 0) {
            w->failures++;
            continue;
        }
        if (!w->first_kid[0])
            snprintf(w->first_kid, sizeof(w->first_kid), "%s", crypto_key_kid(k));
        else if (strcmp(w->first_kid, crypto_key_kid(k)) != 0)
            w->saw_other_kid = true;
        /* the kid just used must verify, even if a rotation swapped the cache meanwhile
         * (rotations here keep the old key published for an hour) */
        if (keyring_find(w->f->kr, db, "acme", crypto_key_kid(k), &v) != 0 || sign_verify(k, v) != 0)
            w->failures++;
        keyring_release(w->f->kr, v);
        keyring_release(w->f->kr, k);
        w->iterations++;
    }
    db_close(db);
    return NULL;
}

static void test_concurrent_rotation(void **state)
{
    struct fixture *f = *state;
    atomic_bool stop = false;
    struct worker w[2];
    pthread_t th[2];
    char kid[64];

    assert_int_equal(keyring_rotate(f->db, f->mk, "acme", "ES256", 3600, kid), 0);
    for (int i = 0; i < 2; i++) {
        memset(&w[i], 0, sizeof(w[i]));
        w[i].f = f;
        w[i].stop = &stop;
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (int r = 0; r < 10; r++) {
        time_sleep_us(20000);
        assert_int_equal(keyring_rotate(f->db, f->mk, "acme", "ES256", 3600, kid), 0);
        keyring_invalidate(f->kr);
    }
    time_sleep_us(50000);
    atomic_store(&stop, true);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].failures, 0);
        assert_true(w[i].iterations > 10);
        assert_true(w[i].saw_other_kid);       /* rotations became visible to every thread */
    }
    const struct crypto_key *k = NULL;
    assert_int_equal(keyring_signing_key(f->kr, f->db, "acme", &k), 0);
    assert_string_equal(crypto_key_kid(k), kid);
    keyring_release(f->kr, k);
    json_t *jwks = keyring_jwks(f->kr, f->db, "acme");
    assert_int_equal(json_array_size(json_object_get(jwks, "keys")), 11);
    json_decref(jwks);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rotate_and_lookup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation_keeps_old_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retire_after_passed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotate_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sealing_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tenant_delete_empties, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_rotation, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
