/*
 * test_identity_tenant — tenant settings parsing, validation and rendering,
 * name rules, and the tenants rows (insert, load, update, delete with every
 * dependent row) against a temporary SQLite store.
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

#include "core/arena.h"
#include "identity/client.h"
#include "identity/tenant.h"
#include "store/db.h"
#include "store/store.h"

/* ------------------------------------------------------------ fixture */

struct fixture {
    char dir[512];
    char path[600];
    struct db *db;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    const char *base = getenv("REFUGE_TEST_TMP");
    char err[256];

    if (!base || !*base)
        base = "/tmp";
    mkdir(base, 0700);
    snprintf(f->dir, sizeof(f->dir), "%s/identity-tenant-XXXXXX", base);
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/t.db", f->dir);
    assert_int_equal(db_open(f->path, 0, &f->db, err, sizeof(err)), 0);
    assert_int_equal(store_schema_migrate(f->db, err, sizeof(err)), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    DIR *d;
    struct dirent *e;
    char p[1200];

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

static int64_t count(struct db *db, const char *sql, const char *arg)
{
    struct db_stmt *st = db_prepare(db, sql);
    int64_t n;

    assert_non_null(st);
    db_bind_text(st, 1, arg, -1);
    assert_int_equal(db_step(st), DB_ROW);
    n = db_col_int64(st, 0);
    db_done(st);
    return n;
}

static void assert_settings_equal(const struct tenant_settings *a, const struct tenant_settings *b)
{
    assert_int_equal(a->access_token_ttl, b->access_token_ttl);
    assert_int_equal(a->refresh_token_ttl, b->refresh_token_ttl);
    assert_int_equal(a->id_token_ttl, b->id_token_ttl);
    assert_int_equal(a->code_ttl, b->code_ttl);
    assert_int_equal(a->session_ttl, b->session_ttl);
    assert_int_equal(a->grant_types, b->grant_types);
    assert_int_equal(a->password.min_length, b->password.min_length);
    assert_int_equal(a->password.require_upper, b->password.require_upper);
    assert_int_equal(a->password.require_lower, b->password.require_lower);
    assert_int_equal(a->password.require_digit, b->password.require_digit);
    assert_int_equal(a->password.require_symbol, b->password.require_symbol);
    assert_int_equal(a->lockout_max_failures, b->lockout_max_failures);
    assert_int_equal(a->lockout_duration, b->lockout_duration);
    assert_int_equal(a->argon2_memory_kib, b->argon2_memory_kib);
    assert_int_equal(a->argon2_iterations, b->argon2_iterations);
}

/* Parses `text` as settings; returns rc and leaves the message in msg. */
static int parse_text(const char *text, struct tenant_settings *s, char *msg, size_t msglen)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    int rc;

    assert_non_null(j);
    msg[0] = '\0';
    rc = tenant_settings_parse(j, s, msg, msglen);
    json_decref(j);
    return rc;
}

static void expect_bad(const char *text, const char *needle)
{
    struct tenant_settings s;
    char msg[256];

    assert_int_equal(parse_text(text, &s, msg, sizeof(msg)), -EINVAL);
    if (!strstr(msg, needle))
        fail_msg("settings %s: message \"%s\" does not contain \"%s\"", text, msg, needle);
}

static void expect_ok(const char *text)
{
    struct tenant_settings s;
    char msg[256];

    if (parse_text(text, &s, msg, sizeof(msg)) != 0)
        fail_msg("settings %s rejected: %s", text, msg);
}

/* ----------------------------------------------------------- settings */

static void test_defaults(void **state)
{
    struct tenant_settings s, p;
    char msg[64];

    (void)state;
    tenant_settings_defaults(&s);
    assert_int_equal(s.access_token_ttl, 3600);
    assert_int_equal(s.refresh_token_ttl, 1209600);
    assert_int_equal(s.id_token_ttl, 3600);
    assert_int_equal(s.code_ttl, 60);
    assert_int_equal(s.session_ttl, 28800);
    assert_int_equal(s.grant_types, GRANT_CLIENT_CREDENTIALS | GRANT_PASSWORD | GRANT_REFRESH_TOKEN |
                                        GRANT_AUTHORIZATION_CODE);
    assert_int_equal(s.password.min_length, 8);
    assert_false(s.password.require_upper);
    assert_int_equal(s.lockout_max_failures, 5);
    assert_int_equal(s.lockout_duration, 900);
    assert_int_equal(s.argon2_memory_kib, 19456);
    assert_int_equal(s.argon2_iterations, 2);
    /* NULL and {} both mean the defaults */
    assert_int_equal(tenant_settings_parse(NULL, &p, msg, sizeof(msg)), 0);
    assert_settings_equal(&s, &p);
    assert_int_equal(parse_text("{}", &p, msg, sizeof(msg)), 0);
    assert_settings_equal(&s, &p);
}

static void test_parse_full(void **state)
{
    struct tenant_settings s;
    char msg[256];

    (void)state;
    assert_int_equal(parse_text("{\"access_token_ttl\": 600, \"refresh_token_ttl\": 86400,"
                                " \"id_token_ttl\": 300, \"code_ttl\": 30, \"session_ttl\": 7200,"
                                " \"grant_types\": [\"password\", \"refresh_token\"],"
                                " \"password_policy\": {\"min_length\": 12, \"require_upper\": true,"
                                "   \"require_digit\": true},"
                                " \"lockout\": {\"max_failures\": 0, \"duration\": 60},"
                                " \"argon2\": {\"memory_kib\": 65536, \"iterations\": 3}}",
                                &s, msg, sizeof(msg)),
                     0);
    assert_int_equal(s.access_token_ttl, 600);
    assert_int_equal(s.refresh_token_ttl, 86400);
    assert_int_equal(s.id_token_ttl, 300);
    assert_int_equal(s.code_ttl, 30);
    assert_int_equal(s.session_ttl, 7200);
    assert_int_equal(s.grant_types, GRANT_PASSWORD | GRANT_REFRESH_TOKEN);
    assert_int_equal(s.password.min_length, 12);
    assert_true(s.password.require_upper);
    assert_false(s.password.require_lower);
    assert_true(s.password.require_digit);
    assert_int_equal(s.lockout_max_failures, 0);
    assert_int_equal(s.lockout_duration, 60);
    assert_int_equal(s.argon2_memory_kib, 65536);
    assert_int_equal(s.argon2_iterations, 3);
}

static void test_parse_partial_keeps_defaults(void **state)
{
    struct tenant_settings s;
    char msg[128];

    (void)state;
    assert_int_equal(parse_text("{\"lockout\": {\"max_failures\": 3}}", &s, msg, sizeof(msg)), 0);
    assert_int_equal(s.lockout_max_failures, 3);
    assert_int_equal(s.lockout_duration, 900);
    assert_int_equal(s.access_token_ttl, 3600);
}

static void test_unknown_keys(void **state)
{
    (void)state;
    expect_bad("{\"acces_token_ttl\": 5}", "settings.acces_token_ttl: unknown setting");
    expect_bad("{\"lockout\": {\"max_failure\": 5}}", "settings.lockout.max_failure: unknown");
    expect_bad("{\"password_policy\": {\"min_len\": 5}}", "settings.password_policy.min_len");
    expect_bad("{\"argon2\": {\"parallelism\": 1}}", "settings.argon2.parallelism");
    expect_bad("[]", "settings: must be an object");
    expect_bad("{\"lockout\": 5}", "settings.lockout: must be an object");
}

static void test_bounds(void **state)
{
    (void)state;
    expect_ok("{\"access_token_ttl\": 1}");
    expect_ok("{\"access_token_ttl\": 31536000}");
    expect_bad("{\"access_token_ttl\": 0}", "settings.access_token_ttl: must be an integer 1..31536000");
    expect_bad("{\"access_token_ttl\": 31536001}", "settings.access_token_ttl");
    expect_bad("{\"refresh_token_ttl\": -5}", "settings.refresh_token_ttl");
    expect_bad("{\"id_token_ttl\": 31536001}", "settings.id_token_ttl");
    expect_bad("{\"session_ttl\": 0}", "settings.session_ttl");
    expect_ok("{\"code_ttl\": 600}");
    expect_bad("{\"code_ttl\": 601}", "settings.code_ttl: must be an integer 1..600");
    expect_bad("{\"code_ttl\": 0}", "settings.code_ttl");
    expect_ok("{\"lockout\": {\"max_failures\": 100}}");
    expect_bad("{\"lockout\": {\"max_failures\": 101}}", "settings.lockout.max_failures: must be an integer 0..100");
    expect_bad("{\"lockout\": {\"max_failures\": -1}}", "settings.lockout.max_failures");
    expect_bad("{\"lockout\": {\"duration\": 0}}", "settings.lockout.duration");
    expect_ok("{\"argon2\": {\"memory_kib\": 8}}");
    expect_ok("{\"argon2\": {\"memory_kib\": 4194304}}");
    expect_bad("{\"argon2\": {\"memory_kib\": 7}}", "settings.argon2.memory_kib: must be an integer 8..4194304");
    expect_bad("{\"argon2\": {\"memory_kib\": 4194305}}", "settings.argon2.memory_kib");
    expect_ok("{\"argon2\": {\"iterations\": 10}}");
    expect_bad("{\"argon2\": {\"iterations\": 11}}", "settings.argon2.iterations: must be an integer 1..10");
    expect_bad("{\"argon2\": {\"iterations\": 0}}", "settings.argon2.iterations");
    expect_ok("{\"password_policy\": {\"min_length\": 1024}}");
    expect_bad("{\"password_policy\": {\"min_length\": 0}}", "settings.password_policy.min_length");
    expect_bad("{\"password_policy\": {\"min_length\": 1025}}", "settings.password_policy.min_length");
}

static void test_types(void **state)
{
    (void)state;
    expect_bad("{\"access_token_ttl\": \"3600\"}", "settings.access_token_ttl: must be an integer");
    expect_bad("{\"access_token_ttl\": 3600.0}", "settings.access_token_ttl: must be an integer");
    expect_bad("{\"access_token_ttl\": null}", "settings.access_token_ttl");
    expect_bad("{\"password_policy\": {\"require_upper\": 1}}",
               "settings.password_policy.require_upper: must be true or false");
    expect_bad("{\"grant_types\": \"password\"}", "settings.grant_types: must be an array");
    expect_bad("{\"grant_types\": [\"password\", \"implicit\"]}", "settings.grant_types[1]: unknown grant type");
    expect_bad("{\"grant_types\": [\"password\", \"password\"]}", "settings.grant_types[1]: duplicate");
    expect_bad("{\"grant_types\": [1]}", "settings.grant_types[0]");
}

static void test_render_roundtrip(void **state)
{
    struct tenant_settings s, back;
    char msg[256];
    json_t *j;

    (void)state;
    assert_int_equal(parse_text("{\"access_token_ttl\": 77, \"grant_types\": [\"client_credentials\"],"
                                " \"password_policy\": {\"require_symbol\": true},"
                                " \"argon2\": {\"iterations\": 4}}",
                                &s, msg, sizeof(msg)),
                     0);
    j = tenant_settings_json(&s);
    assert_int_equal(json_integer_value(json_object_get(j, "access_token_ttl")), 77);
    assert_int_equal(json_integer_value(json_object_get(j, "code_ttl")), 60);
    assert_int_equal(json_array_size(json_object_get(j, "grant_types")), 1);
    assert_string_equal(json_string_value(json_array_get(json_object_get(j, "grant_types"), 0)),
                        "client_credentials");
    assert_true(json_is_true(json_object_get(json_object_get(j, "password_policy"), "require_symbol")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "lockout"), "duration")), 900);
    /* the rendering is itself valid input and means the same */
    assert_int_equal(tenant_settings_parse(j, &back, msg, sizeof(msg)), 0);
    assert_settings_equal(&s, &back);
    json_decref(j);
}

static void test_grant_names(void **state)
{
    (void)state;
    assert_int_equal(grant_bit("client_credentials"), GRANT_CLIENT_CREDENTIALS);
    assert_int_equal(grant_bit("authorization_code"), GRANT_AUTHORIZATION_CODE);
    assert_int_equal(grant_bit("implicit"), 0);
    assert_int_equal(grant_bit(NULL), 0);
    assert_string_equal(grant_name(GRANT_REFRESH_TOKEN), "refresh_token");
    assert_null(grant_name(GRANT_PASSWORD | GRANT_REFRESH_TOKEN));
}

/* -------------------------------------------------------------- names */

static void test_names(void **state)
{
    char long63[64], long64[65];

    (void)state;
    memset(long63, 'a', 63);
    long63[63] = '\0';
    memset(long64, 'a', 64);
    long64[64] = '\0';
    assert_true(tenant_name_valid("acme"));
    assert_true(tenant_name_valid("a"));
    assert_true(tenant_name_valid("acme-2"));
    assert_true(tenant_name_valid(long63));
    assert_false(tenant_name_valid(long64));
    assert_false(tenant_name_valid(""));
    assert_false(tenant_name_valid(NULL));
    assert_false(tenant_name_valid("Acme"));
    assert_false(tenant_name_valid("under_score"));
    assert_false(tenant_name_valid("-lead"));
    assert_false(tenant_name_valid("trail-"));
    assert_false(tenant_name_valid("a.b"));
    assert_false(tenant_name_valid("a/b"));
    assert_true(tenant_display_name_valid("Acme Corp."));
    assert_false(tenant_display_name_valid(""));
    assert_false(tenant_display_name_valid("line\nbreak"));
}

static void test_issuer(void **state)
{
    struct arena a;

    (void)state;
    arena_init(&a);
    assert_string_equal(tenant_issuer("https://id.example", "default", &a), "https://id.example");
    assert_string_equal(tenant_issuer("https://id.example", "acme", &a), "https://id.example/t/acme");
    arena_free(&a);
}

/* ----------------------------------------------------------------- DB */

static void test_insert_load(void **state)
{
    struct fixture *f = *state;
    struct arena a;
    struct tenant t;
    json_t *settings = json_pack("{s:I, s:{s:i}}", "access_token_ttl", (json_int_t)120, "lockout",
                                 "max_failures", 9);

    arena_init(&a);
    assert_int_equal(tenant_insert(f->db, "acme", "Acme Corp", settings), 0);
    assert_int_equal(tenant_insert(f->db, "acme", "Again", NULL), -EEXIST);
    assert_int_equal(tenant_insert(f->db, "Bad", NULL, NULL), -EINVAL);
    assert_int_equal(tenant_insert(f->db, "bad-display", "x\x01y", NULL), -EINVAL);
    json_t *bad = json_pack("{s:i}", "nope", 1);
    assert_int_equal(tenant_insert(f->db, "bad-settings", NULL, bad), -EINVAL);
    json_decref(bad);
    assert_int_equal(tenant_insert(f->db, "plain", NULL, NULL), 0);

    assert_int_equal(tenant_load(f->db, "acme", "http://h:1", &a, &t), 0);
    assert_string_equal(t.name, "acme");
    assert_string_equal(t.display_name, "Acme Corp");
    assert_string_equal(t.issuer, "http://h:1/t/acme");
    assert_int_equal(t.s.access_token_ttl, 120);
    assert_int_equal(t.s.lockout_max_failures, 9);
    assert_int_equal(t.s.refresh_token_ttl, 1209600);
    assert_true(t.created_at > 1600000000);
    /* stored as given: explicit keys only */
    assert_non_null(strstr(t.settings_text, "\"access_token_ttl\":120"));
    assert_null(strstr(t.settings_text, "refresh_token_ttl"));

    assert_int_equal(tenant_load(f->db, "plain", "http://h:1", &a, &t), 0);
    assert_string_equal(t.display_name, "plain");      /* defaults to the name */
    assert_string_equal(t.settings_text, "{}");
    assert_int_equal(tenant_load(f->db, "missing", "http://h:1", &a, &t), -ENOENT);

    json_t *list = tenant_list_json(f->db, "http://h:1");
    assert_int_equal(json_array_size(list), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "name")), "acme");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(json_array_get(list, 0),
                                                                        "settings"),
                                                        "access_token_ttl")),
                     120);
    json_decref(list);
    json_decref(settings);
    arena_free(&a);
}

static void test_update(void **state)
{
    struct fixture *f = *state;
    struct arena a;
    struct tenant t;
    json_t *s1 = json_pack("{s:i}", "code_ttl", 30);
    json_t *bad = json_pack("{s:i}", "code_ttl", 3000);

    arena_init(&a);
    assert_int_equal(tenant_insert(f->db, "acme", "Acme", NULL), 0);
    assert_int_equal(tenant_update(f->db, "acme", NULL, s1), 0);
    assert_int_equal(tenant_load(f->db, "acme", "http://h", &a, &t), 0);
    assert_string_equal(t.display_name, "Acme");       /* NULL keeps */
    assert_int_equal(t.s.code_ttl, 30);
    assert_int_equal(tenant_update(f->db, "acme", "Acme 2", NULL), 0);
    assert_int_equal(tenant_load(f->db, "acme", "http://h", &a, &t), 0);
    assert_string_equal(t.display_name, "Acme 2");
    assert_int_equal(t.s.code_ttl, 30);                 /* NULL keeps */
    assert_int_equal(tenant_update(f->db, "acme", NULL, bad), -EINVAL);
    assert_int_equal(tenant_update(f->db, "nobody", "X", NULL), -ENOENT);
    json_decref(s1);
    json_decref(bad);
    arena_free(&a);
}

static void test_delete_cascades(void **state)
{
    struct fixture *f = *state;
    static const char *const tables[] = {
        "clients", "signing_keys", "users", "user_emails", "groups", "group_members",
        "refresh_tokens", "opaque_tokens", "revoked_jtis", "auth_codes", "sso_sessions",
    };
    const char *tenants[] = { "acme", "other" };

    assert_int_equal(tenant_insert(f->db, "default", "Default", NULL), 0);
    for (size_t t = 0; t < 2; t++) {
        const char *n = tenants[t];
        assert_int_equal(tenant_insert(f->db, n, NULL, NULL), 0);
        assert_int_equal(db_execp(f->db, "INSERT INTO clients(tenant, client_id, type, created_at, updated_at) "
                                         "VALUES ($1, 'c1', 'public', 1, 1)", n, NULL), 0);
        assert_int_equal(db_execp(f->db, "INSERT INTO signing_keys(tenant, kid, alg, public_jwk, private_enc, "
                                         "created_at) VALUES ($1, 'k1', 'ES256', '{}', x'00', 1)", n, NULL), 0);
        assert_int_equal(db_execp(f->db, "INSERT INTO users(tenant, id, user_name, user_name_lc, created_at, "
                                         "updated_at) VALUES ($1, 'u1', 'U', 'u', 1, 1)", n, NULL), 0);
        assert_int_equal(db_execp(f->db, "INSERT INTO user_emails(tenant, user_id, value_lc) "
                                         "VALUES ($1, 'u1', 'u@x')", n, NULL), 0);
        assert_int_equal(db_execp(f->db, "INSERT INTO groups(tenant, id, display_name, display_name_lc, "
                                         "created_at, updated_at) VALUES ($1, 'g1', 'G', 'g', 1, 1)", n, NULL), 0);
        assert_int_equal(db_execp(f->db, "INSERT INTO group_members(tenant, group_id, member_id) "
                                         "VALUES ($1, 'g1', 'u1')", n, NULL), 0);
        assert_int_equal(db_execp(f->db, "INSERT INTO refresh_tokens(token_hash, tenant, client_id, family_id, "
                                         "issued_at, expires_at) VALUES ($1 || 'r', $1, 'c1', 'f', 1, 2)", n, NULL), 0);
        assert_int_equal(db_execp(f->db, "INSERT INTO opaque_tokens(token_hash, tenant, client_id, issued_at, "
                                         "expires_at) VALUES ($1 || 'o', $1, 'c1', 1, 2)", n, NULL), 0);
        assert_int_equal(db_execp(f->db, "INSERT INTO revoked_jtis(jti, tenant, expires_at) "
                                         "VALUES ($1 || 'j', $1, 2)", n, NULL), 0);
        assert_int_equal(db_execp(f->db, "INSERT INTO auth_codes(code_hash, tenant, client_id, user_id, "
                                         "redirect_uri, auth_time, expires_at) "
                                         "VALUES ($1 || 'a', $1, 'c1', 'u1', 'https://x', 1, 2)", n, NULL), 0);
        assert_int_equal(db_execp(f->db, "INSERT INTO sso_sessions(id_hash, tenant, user_id, auth_time, "
                                         "created_at, expires_at, last_seen) "
                                         "VALUES ($1 || 's', $1, 'u1', 1, 1, 2, 1)", n, NULL), 0);
    }
    assert_int_equal(tenant_delete(f->db, "acme"), 0);
    for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
        char sql[128];
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s WHERE tenant = $1", tables[i]);
        if (count(f->db, sql, "acme") != 0)
            fail_msg("%s still has rows of the deleted tenant", tables[i]);
        if (count(f->db, sql, "other") != 1)
            fail_msg("%s lost rows of another tenant", tables[i]);
    }
    assert_int_equal(count(f->db, "SELECT count(*) FROM tenants WHERE name = $1", "acme"), 0);
    assert_int_equal(tenant_delete(f->db, "acme"), -ENOENT);
    assert_int_equal(tenant_delete(f->db, "default"), -EPERM);
    assert_int_equal(count(f->db, "SELECT count(*) FROM tenants WHERE name = $1", "default"), 1);
}

static void test_max_token_ttl(void **state)
{
    struct fixture *f = *state;
    json_t *s = json_pack("{s:i, s:i}", "access_token_ttl", 600, "id_token_ttl", 900);
    int64_t ttl = 0;

    assert_int_equal(tenant_insert(f->db, "acme", NULL, s), 0);
    assert_int_equal(tenant_max_token_ttl(f->db, "acme", &ttl), 0);
    assert_int_equal(ttl, 900);
    /* a client override beyond the tenant's lifetimes counts */
    assert_int_equal(db_execp(f->db, "INSERT INTO clients(tenant, client_id, type, settings, created_at, "
                                     "updated_at) VALUES ('acme', 'c1', 'public', "
                                     "'{\"access_token_ttl\":7200}', 1, 1)", NULL), 0);
    assert_int_equal(tenant_max_token_ttl(f->db, "acme", &ttl), 0);
    assert_int_equal(ttl, 7200);
    assert_int_equal(tenant_max_token_ttl(f->db, "nobody", &ttl), -ENOENT);
    json_decref(s);
}

static void test_db_errno(void **state)
{
    (void)state;
    assert_int_equal(identity_db_errno(DB_ECONSTRAINT), -EEXIST);
    assert_int_equal(identity_db_errno(DB_EREADONLY), -EROFS);
    assert_int_equal(identity_db_errno(DB_ERR), -EIO);
    assert_int_equal(identity_db_errno(DB_DONE), 0);
    assert_int_equal(identity_db_errno(-ENOENT), -ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_parse_full),
        cmocka_unit_test(test_parse_partial_keeps_defaults),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_render_roundtrip),
        cmocka_unit_test(test_grant_names),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_issuer),
        cmocka_unit_test(test_db_errno),
        cmocka_unit_test_setup_teardown(test_insert_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_update, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_cascades, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_token_ttl, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
