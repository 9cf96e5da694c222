/*
 * test_oauth_user_auth — password verification for the password grant on a
 * real store: right and wrong passwords, unknown users, inactive users,
 * case-insensitive user names, and the lockout cycle (failures counted by
 * the writer, lock at max_failures, the right password refused while
 * locked, lock expiry, reset on success, lockout disabled).
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "testutil.h"

#include "crypto/password.h"
#include "identity/tenant.h"
#include "identity/user_auth.h"
#include "store/store.h"

struct fixture {
    char dir[512];
    char path[600];
    struct store *s;
    struct arena a;
    struct tenant_settings ts;
};

struct user_row {
    const char *id, *name, *hash;
    int active;
};

static int insert_user(struct db *db, void *arg)
{
    struct user_row *u = arg;
    struct db_stmt *st = db_prepare(db, "INSERT INTO users (tenant, id, user_name, user_name_lc, active,"
                                        " password_hash, data, created_at, updated_at)"
                                        " VALUES ('t1', $1, $2, lower($2), $3, $4, '{}', 1, 7)");
    db_bind_text(st, 1, u->id, -1);
    db_bind_text(st, 2, u->name, -1);
    db_bind_int64(st, 3, u->active);
    db_bind_text(st, 4, u->hash, -1);
    int rc = db_step(st);
    db_done(st);
    return rc < 0 ? rc : 0;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    const char *base = getenv("REFUGE_TEST_TMP");
    if (!base || !*base)
        base = "/tmp";
    mkdir(base, 0700);
    snprintf(f->dir, sizeof(f->dir), "%s/user-auth-XXXXXX", base);
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/refuge.db", f->dir);
    struct store_opts o = { .path = f->path };
    char err[256] = "";
    if (store_open(&o, &f->s, err, sizeof(err)) != 0)
        fail_msg("store_open: %s", err);
    arena_init(&f->a);
    tenant_settings_defaults(&f->ts);
    f->ts.lockout_max_failures = 3;
    f->ts.lockout_duration = 100;

    /* cheap argon2 parameters: this tests the logic, not the cost */
    struct crypto_pwhash_params p = { CRYPTO_PWHASH_MIN_M_KIB, 1 };
    static char h1[CRYPTO_PWHASH_BUFSZ], h2[CRYPTO_PWHASH_BUFSZ];
    assert_int_equal(crypto_password_hash("correct horse", 13, &p, h1), 0);
    assert_int_equal(crypto_password_hash("inactive pw", 11, &p, h2), 0);
    struct user_row users[] = {
        { "u-alice", "Alice", h1, 1 },
        { "u-bob", "bob", h2, 0 },
        { "u-nopw", "nopw", NULL, 1 },
    };
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(store_write(f->s, insert_user, &users[i]), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    store_close(f->s);
    arena_free(&f->a);
    test_rmtree(f->dir);
    free(f);
    return 0;
}

static struct user_auth check(struct fixture *f, const char *user, const char *pw, int64_t now)
{
    struct user_auth ua;
    assert_int_equal(user_auth_verify(store_reader(f->s), "t1", user, pw, strlen(pw), &f->ts, now, &f->a, &ua),
                     0);
    return ua;
}

struct rec {
    struct fixture *f;
    const char *user_id;
    int64_t now;
    bool success;
};

static int record(struct db *db, void *arg)
{
    struct rec *r = arg;
    if (r->success)
        return user_auth_record_success(db, "t1", r->user_id);
    return user_auth_record_failure(db, "t1", r->user_id, &r->f->ts, r->now);
}

static void apply(struct fixture *f, const struct user_auth *ua, int64_t now)
{
    struct rec r = { f, ua->user_id, now, ua->write == USER_AUTH_WRITE_RESET };
    if (ua->write != USER_AUTH_WRITE_NONE)
        assert_int_equal(store_write(f->s, record, &r), 0);
}

static void test_ok_and_wrong(void **state)
{
    struct fixture *f = *state;
    struct user_auth ua = check(f, "alice", "correct horse", 1000);   /* user names are case-insensitive */
    assert_int_equal(ua.result, USER_AUTH_OK);
    assert_string_equal(ua.user_id, "u-alice");
    assert_string_equal(ua.user_name, "Alice");
    assert_string_equal(ua.data, "{}");
    assert_int_equal(ua.updated_at, 7);
    assert_int_equal(ua.write, USER_AUTH_WRITE_NONE);         /* nothing to reset */
    ua = check(f, "ALICE", "correct horse", 1000);
    assert_int_equal(ua.result, USER_AUTH_OK);

    ua = check(f, "alice", "wrong", 1000);
    assert_int_equal(ua.result, USER_AUTH_BAD_PASSWORD);
    assert_int_equal(ua.write, USER_AUTH_WRITE_FAILURE);
}

static void test_unknown_inactive_nopassword(void **state)
{
    struct fixture *f = *state;
    struct user_auth ua = check(f, "nobody", "whatever", 1000);
    assert_int_equal(ua.result, USER_AUTH_UNKNOWN);
    assert_null(ua.user_id);
    assert_int_equal(ua.write, USER_AUTH_WRITE_NONE);
    ua = check(f, "nopw", "", 1000);
    assert_int_equal(ua.result, USER_AUTH_UNKNOWN);
    ua = check(f, "bob", "inactive pw", 1000);
    assert_int_equal(ua.result, USER_AUTH_INACTIVE);
    ua = check(f, "bob", "bad", 1000);
    assert_int_equal(ua.result, USER_AUTH_BAD_PASSWORD);
    char longname[USER_AUTH_MAX_USERNAME + 2];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    ua = check(f, longname, "x", 1000);
    assert_int_equal(ua.result, USER_AUTH_UNKNOWN);
}

static void test_lockout_cycle(void **state)
{
    struct fixture *f = *state;
    int64_t now = 5000;
    struct user_auth ua;

    for (int i = 0; i < 2; i++) {
        ua = check(f, "alice", "wrong", now);
        assert_int_equal(ua.result, USER_AUTH_BAD_PASSWORD);
        apply(f, &ua, now);
    }
    ua = check(f, "alice", "correct horse", now);
    assert_int_equal(ua.failed_logins, 2);
    assert_int_equal(ua.result, USER_AUTH_OK);
    assert_int_equal(ua.write, USER_AUTH_WRITE_RESET);
    apply(f, &ua, now);
    ua = check(f, "alice", "correct horse", now);
    assert_int_equal(ua.failed_logins, 0);
    assert_int_equal(ua.write, USER_AUTH_WRITE_NONE);

    /* three failures in a row lock the account */
    for (int i = 0; i < 3; i++) {
        ua = check(f, "alice", "wrong", now);
        assert_int_equal(ua.result, USER_AUTH_BAD_PASSWORD);
        apply(f, &ua, now);
    }
    ua = check(f, "alice", "correct horse", now + 1);
    assert_int_equal(ua.result, USER_AUTH_LOCKED);
    assert_int_equal(ua.locked_until, now + 100);
    assert_int_equal(ua.failed_logins, 0);
    assert_int_equal(ua.write, USER_AUTH_WRITE_NONE);   /* nothing counted while locked */
    ua = check(f, "alice", "wrong", now + 99);
    assert_int_equal(ua.result, USER_AUTH_LOCKED);

    /* after the lock expires the right password works and clears it */
    ua = check(f, "alice", "correct horse", now + 100);
    assert_int_equal(ua.result, USER_AUTH_OK);
    assert_int_equal(ua.write, USER_AUTH_WRITE_RESET);
    apply(f, &ua, now + 100);
    ua = check(f, "alice", "correct horse", now + 100);
    assert_int_equal(ua.locked_until, 0);
}

static void test_lockout_disabled(void **state)
{
    struct fixture *f = *state;
    f->ts.lockout_max_failures = 0;
    for (int i = 0; i < 5; i++) {
        struct user_auth ua = check(f, "alice", "wrong", 100);
        assert_int_equal(ua.result, USER_AUTH_BAD_PASSWORD);
        assert_int_equal(ua.write, USER_AUTH_WRITE_NONE);
    }
    struct user_auth ua = check(f, "alice", "correct horse", 100);
    assert_int_equal(ua.result, USER_AUTH_OK);
    /* record_failure is a no-op too */
    struct rec r = { f, "u-alice", 100, false };
    assert_int_equal(store_write(f->s, record, &r), 0);
    ua = check(f, "alice", "correct horse", 100);
    assert_int_equal(ua.failed_logins, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ok_and_wrong, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_inactive_nopassword, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lockout_cycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lockout_disabled, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
