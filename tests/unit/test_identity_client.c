/*
 * test_identity_client — client JSON validation (every rule names its
 * field), rendering, secrets (hash stored, never the secret; constant-time
 * check), and the clients rows against a temporary SQLite store.
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
#include "crypto/secret.h"
#include "identity/client.h"
#include "identity/tenant.h"
#include "store/db.h"
#include "store/store.h"

/* ------------------------------------------------------------ fixture */

struct fixture {
    char dir[512];
    char path[600];
    struct db *db;
    struct arena a;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    const char *base = getenv("REFUGE_TEST_TMP");
    char err[256];

    if (!base || !*base)
        base = "/tmp";
    mkdir(base, 0700);
    snprintf(f->dir, sizeof(f->dir), "%s/identity-client-XXXXXX", base);
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/c.db", f->dir);
    assert_int_equal(db_open(f->path, 0, &f->db, err, sizeof(err)), 0);
    assert_int_equal(store_schema_migrate(f->db, err, sizeof(err)), 0);
    assert_int_equal(tenant_insert(f->db, "acme", NULL, NULL), 0);
    arena_init(&f->a);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    DIR *d;
    struct dirent *e;
    char p[1200];

    arena_free(&f->a);
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

/* Parses a create (partial = false) body from text. */
static int parse(struct arena *a, const char *text, bool partial, struct client *c, char *msg, size_t msglen)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    int rc;

    if (!j)
        fail_msg("test JSON does not parse: %s", e.text);
    msg[0] = '\0';
    rc = client_from_json(j, partial, a, c, msg, msglen);
    json_decref(j);
    return rc;
}

static void expect_bad(const char *text, const char *needle)
{
    struct arena a;
    struct client c = { .tenant = "acme" };
    char msg[256];

    arena_init(&a);
    if (parse(&a, text, false, &c, msg, sizeof(msg)) != -EINVAL)
        fail_msg("accepted: %s", text);
    if (!strstr(msg, needle))
        fail_msg("%s: message \"%s\" does not contain \"%s\"", text, msg, needle);
    arena_free(&a);
}

static void expect_ok(const char *text)
{
    struct arena a;
    struct client c = { .tenant = "acme" };
    char msg[256];

    arena_init(&a);
    if (parse(&a, text, false, &c, msg, sizeof(msg)) != 0)
        fail_msg("rejected: %s: %s", text, msg);
    arena_free(&a);
}

/* -------------------------------------------------------- validation */

static void test_create_defaults(void **state)
{
    struct arena a;
    struct client c = { .tenant = "acme" }, c2 = { .tenant = "acme" };
    char msg[256];

    (void)state;
    arena_init(&a);
    assert_int_equal(parse(&a, "{}", false, &c, msg, sizeof(msg)), 0);
    assert_string_equal(c.tenant, "acme");
    assert_int_equal(strlen(c.client_id), 22);               /* generated: 16 random bytes */
    assert_true(client_id_valid(c.client_id, 22));
    assert_true(c.confidential);
    assert_int_equal(c.grant_types, GRANT_CLIENT_CREDENTIALS);
    assert_false(c.opaque_tokens);
    assert_int_equal(c.nscopes, 0);
    assert_int_equal(c.access_token_ttl, 0);
    assert_string_equal(c.name, "");
    assert_int_equal(parse(&a, "{}", false, &c2, msg, sizeof(msg)), 0);
    assert_string_not_equal(c.client_id, c2.client_id);      /* random */
    arena_free(&a);
}

static void test_create_full(void **state)
{
    struct arena a;
    struct client c = { .tenant = "acme" };
    char msg[256];

    (void)state;
    arena_init(&a);
    assert_int_equal(parse(&a,
                           "{\"client_id\": \"web-app_1.x~\", \"name\": \"Web\", \"type\": \"public\","
                           " \"redirect_uris\": [\"https://app.example/cb\", \"http://localhost:8080/cb?x=1\"],"
                           " \"grant_types\": [\"authorization_code\", \"refresh_token\"],"
                           " \"scopes\": [\"openid\", \"profile\", \"api:read\"],"
                           " \"default_scopes\": [\"openid\"], \"token_format\": \"opaque\","
                           " \"access_token_ttl\": 300, \"refresh_token_ttl\": 86400, \"id_token_ttl\": null}",
                           false, &c, msg, sizeof(msg)),
                     0);
    assert_string_equal(c.client_id, "web-app_1.x~");
    assert_string_equal(c.name, "Web");
    assert_false(c.confidential);
    assert_int_equal(c.nredirect_uris, 2);
    assert_true(client_has_redirect_uri(&c, "https://app.example/cb"));
    assert_false(client_has_redirect_uri(&c, "https://app.example/cb/"));   /* exact match */
    assert_false(client_has_redirect_uri(&c, "https://APP.example/cb"));
    assert_true(client_allows_grant(&c, GRANT_AUTHORIZATION_CODE));
    assert_true(client_allows_grant(&c, GRANT_REFRESH_TOKEN));
    assert_false(client_allows_grant(&c, GRANT_PASSWORD));
    assert_false(client_allows_grant(&c, 0));
    assert_true(client_has_scope(&c, "api:read"));
    assert_false(client_has_scope(&c, "api"));
    assert_int_equal(c.ndefault_scopes, 1);
    assert_true(c.opaque_tokens);
    assert_int_equal(c.access_token_ttl, 300);
    assert_int_equal(c.refresh_token_ttl, 86400);
    assert_int_equal(c.id_token_ttl, 0);
    arena_free(&a);
}

static void test_field_errors(void **state)
{
    char long_id[140], long_uri[2100], body[2300];

    (void)state;
    expect_bad("[]", "body: must be a JSON object");
    expect_bad("{\"secret\": \"x\"}", "secret: unknown field");
    /* client_id */
    expect_bad("{\"client_id\": \"\"}", "client_id:");
    expect_bad("{\"client_id\": \"has space\"}", "client_id:");
    expect_bad("{\"client_id\": \"slash/no\"}", "client_id:");
    expect_bad("{\"client_id\": 5}", "client_id:");
    memset(long_id, 'a', 129);
    long_id[129] = '\0';
    snprintf(body, sizeof(body), "{\"client_id\": \"%s\"}", long_id);
    expect_bad(body, "client_id: must be 1..128");
    long_id[128] = '\0';
    snprintf(body, sizeof(body), "{\"client_id\": \"%s\"}", long_id);
    expect_ok(body);
    /* type */
    expect_bad("{\"type\": \"secret\"}", "type: must be \"confidential\" or \"public\"");
    /* name */
    expect_bad("{\"name\": 5}", "name:");
    expect_bad("{\"name\": \"a\\nb\"}", "name:");
    /* redirect URIs */
    expect_bad("{\"redirect_uris\": \"https://a/cb\"}", "redirect_uris: must be an array");
    expect_bad("{\"redirect_uris\": [\"https://a/cb\", \"https://a/cb#frag\"]}",
               "redirect_uris[1]: must be an absolute https or http URL without fragment");
    expect_bad("{\"redirect_uris\": [\"/relative\"]}", "redirect_uris[0]");
    expect_bad("{\"redirect_uris\": [\"ftp://a/cb\"]}", "redirect_uris[0]");
    expect_bad("{\"redirect_uris\": [\"https:///nohost\"]}", "redirect_uris[0]");
    expect_bad("{\"redirect_uris\": [\"https://\"]}", "redirect_uris[0]");
    expect_bad("{\"redirect_uris\": [\"https://user:pw@a/cb\"]}", "redirect_uris[0]");
    expect_bad("{\"redirect_uris\": [\"https://a/c b\"]}", "redirect_uris[0]");
    expect_bad("{\"redirect_uris\": [\"https://a/%zz\"]}", "redirect_uris[0]");
    expect_bad("{\"redirect_uris\": [\"https://a/cb\", \"https://a/cb\"]}", "redirect_uris[1]: duplicate");
    expect_bad("{\"redirect_uris\": [7]}", "redirect_uris[0]");
    memset(long_uri, 'a', sizeof(long_uri) - 1);
    memcpy(long_uri, "https://a/", 10);
    long_uri[2049] = '\0';
    snprintf(body, sizeof(body), "{\"redirect_uris\": [\"%s\"]}", long_uri);
    expect_bad(body, "redirect_uris[0]");
    /* grant types */
    expect_bad("{\"grant_types\": [\"implicit\"]}", "grant_types[0]: must be one of");
    expect_bad("{\"grant_types\": [\"password\", \"password\"]}", "grant_types[1]: duplicate");
    expect_bad("{\"type\": \"public\", \"grant_types\": [\"client_credentials\"]}",
               "grant_types: client_credentials needs a confidential client");
    expect_bad("{\"grant_types\": [\"authorization_code\"]}", "redirect_uris: at least one is required");
    expect_bad("{\"type\": \"public\"}", "redirect_uris:");   /* public default grants need one */
    /* scopes */
    expect_bad("{\"scopes\": [\"a b\"]}", "scopes[0]: must be a scope token");
    expect_bad("{\"scopes\": [\"ok\", \"\"]}", "scopes[1]");
    expect_bad("{\"scopes\": [\"quo\\\"te\"]}", "scopes[0]");
    expect_bad("{\"scopes\": [\"back\\\\slash\"]}", "scopes[0]");
    expect_bad("{\"scopes\": [\"caf\\u00e9\"]}", "scopes[0]");
    expect_bad("{\"scopes\": [\"a\"], \"default_scopes\": [\"a\", \"b\"]}", "default_scopes[1]: not in scopes");
    expect_bad("{\"default_scopes\": [\"a\"]}", "default_scopes[0]: not in scopes");
    expect_ok("{\"scopes\": [\"!#$%&'()*+,-./:;<=>?@[]^_`{|}~\"]}");
    /* token format, TTLs */
    expect_bad("{\"token_format\": \"JWT\"}", "token_format: must be \"jwt\" or \"opaque\"");
    expect_bad("{\"access_token_ttl\": 0}", "access_token_ttl: must be an integer 1..31536000");
    expect_bad("{\"refresh_token_ttl\": 31536001}", "refresh_token_ttl:");
    expect_bad("{\"id_token_ttl\": \"60\"}", "id_token_ttl:");
    expect_ok("{\"access_token_ttl\": 31536000}");
}

static void test_list_limit(void **state)
{
    char body[4096];
    size_t o;

    (void)state;
    o = (size_t)snprintf(body, sizeof(body), "{\"scopes\": [");
    for (int i = 0; i < 65; i++)
        o += (size_t)snprintf(body + o, sizeof(body) - o, "%s\"s%d\"", i ? "," : "", i);
    snprintf(body + o, sizeof(body) - o, "]}");
    expect_bad(body, "scopes: at most 64 entries");
}

static void test_partial_update(void **state)
{
    struct arena a;
    struct client c = { .tenant = "acme" };
    char msg[256];

    (void)state;
    arena_init(&a);
    assert_int_equal(parse(&a, "{\"client_id\": \"svc\", \"scopes\": [\"a\", \"b\"], \"default_scopes\": [\"b\"],"
                               " \"access_token_ttl\": 60}",
                           false, &c, msg, sizeof(msg)),
                     0);
    /* absent fields keep their values */
    assert_int_equal(parse(&a, "{\"name\": \"Service\"}", true, &c, msg, sizeof(msg)), 0);
    assert_string_equal(c.name, "Service");
    assert_string_equal(c.client_id, "svc");
    assert_int_equal(c.nscopes, 2);
    assert_int_equal(c.access_token_ttl, 60);
    /* null clears a TTL override */
    assert_int_equal(parse(&a, "{\"access_token_ttl\": null}", true, &c, msg, sizeof(msg)), 0);
    assert_int_equal(c.access_token_ttl, 0);
    /* dropping a scope that is a default is caught on the result */
    assert_int_equal(parse(&a, "{\"scopes\": [\"a\"]}", true, &c, msg, sizeof(msg)), -EINVAL);
    assert_non_null(strstr(msg, "default_scopes[0]: not in scopes"));
    assert_int_equal(c.nscopes, 2);     /* unchanged on error */
    assert_int_equal(parse(&a, "{\"client_id\": \"other\"}", true, &c, msg, sizeof(msg)), -EINVAL);
    assert_non_null(strstr(msg, "client_id: cannot be changed"));
    assert_int_equal(parse(&a, "{\"client_id\": \"svc\", \"type\": \"confidential\"}", true, &c, msg,
                           sizeof(msg)),
                     0);
    assert_int_equal(parse(&a, "{\"type\": \"public\"}", true, &c, msg, sizeof(msg)), -EINVAL);
    assert_non_null(strstr(msg, "type: cannot be changed"));
    /* a GET result can be sent back */
    json_t *j = client_to_json(&c);
    assert_int_equal(client_from_json(j, true, &a, &c, msg, sizeof(msg)), 0);
    json_decref(j);
    arena_free(&a);
}

static void test_to_json(void **state)
{
    struct arena a;
    struct client c = { .tenant = "acme" };
    char msg[256];
    json_t *j;

    (void)state;
    arena_init(&a);
    assert_int_equal(parse(&a, "{\"client_id\": \"svc\", \"grant_types\": [\"refresh_token\", \"password\"],"
                               " \"scopes\": [\"x\"], \"refresh_token_ttl\": 99}",
                           false, &c, msg, sizeof(msg)),
                     0);
    c.secret_hash = "sha256$deadbeef";
    j = client_to_json(&c);
    assert_string_equal(json_string_value(json_object_get(j, "client_id")), "svc");
    assert_string_equal(json_string_value(json_object_get(j, "type")), "confidential");
    assert_string_equal(json_string_value(json_object_get(j, "token_format")), "jwt");
    /* canonical grant order */
    assert_string_equal(json_string_value(json_array_get(json_object_get(j, "grant_types"), 0)), "password");
    assert_string_equal(json_string_value(json_array_get(json_object_get(j, "grant_types"), 1)),
                        "refresh_token");
    assert_int_equal(json_integer_value(json_object_get(j, "refresh_token_ttl")), 99);
    assert_null(json_object_get(j, "access_token_ttl"));
    assert_null(json_object_get(j, "secret_hash"));
    assert_null(json_object_get(j, "client_secret"));
    char *text = json_dumps(j, 0);
    assert_null(strstr(text, "deadbeef"));
    free(text);
    json_decref(j);
    arena_free(&a);
}

/* ----------------------------------------------------------------- DB */

static void make_client(struct fixture *f, const char *body, struct client *c)
{
    char msg[256];
    c->tenant = "acme";
    if (parse(&f->a, body, false, c, msg, sizeof(msg)) != 0)
        fail_msg("%s: %s", body, msg);
}

static void test_insert_load_secret(void **state)
{
    struct fixture *f = *state;
    struct client c = { 0 }, l;
    char secret[CRYPTO_SECRET_BUFSZ], secret2[CRYPTO_SECRET_BUFSZ];

    make_client(f, "{\"client_id\": \"svc\", \"name\": \"Svc\", \"scopes\": [\"a\", \"b\"],"
                   " \"default_scopes\": [\"a\"], \"grant_types\": [\"client_credentials\", \"refresh_token\"],"
                   " \"token_format\": \"opaque\", \"access_token_ttl\": 120}",
                &c);
    crypto_secret_generate(secret);
    assert_int_equal(client_insert(f->db, &c, NULL), -EINVAL);     /* confidential needs one */
    assert_int_equal(client_insert(f->db, &c, secret), 0);
    assert_int_equal(client_insert(f->db, &c, secret), -EEXIST);
    c.tenant = "nobody";
    assert_int_equal(client_insert(f->db, &c, secret), -ENOENT);
    c.tenant = "acme";

    assert_int_equal(client_load(f->db, "acme", "svc", &f->a, &l), 0);
    assert_string_equal(l.tenant, "acme");
    assert_string_equal(l.name, "Svc");
    assert_true(l.confidential);
    assert_int_equal(l.nscopes, 2);
    assert_string_equal(l.scopes[1], "b");
    assert_int_equal(l.ndefault_scopes, 1);
    assert_int_equal(l.grant_types, GRANT_CLIENT_CREDENTIALS | GRANT_REFRESH_TOKEN);
    assert_true(l.opaque_tokens);
    assert_int_equal(l.access_token_ttl, 120);
    assert_int_equal(l.refresh_token_ttl, 0);
    assert_true(l.created_at > 1600000000);
    assert_non_null(l.secret_hash);
    assert_null(strstr(l.secret_hash, secret));                      /* only the hash is stored */
    assert_true(client_secret_ok(&l, secret, strlen(secret)));
    assert_false(client_secret_ok(&l, secret, strlen(secret) - 1));
    assert_false(client_secret_ok(&l, "wrong", 5));
    assert_int_equal(client_load(f->db, "acme", "nope", &f->a, &l), -ENOENT);
    assert_int_equal(client_load(f->db, "other", "svc", &f->a, &l), -ENOENT);

    /* regenerate: the old secret stops working */
    crypto_secret_generate(secret2);
    assert_int_equal(client_set_secret(f->db, "acme", "svc", secret2), 0);
    assert_int_equal(client_load(f->db, "acme", "svc", &f->a, &l), 0);
    assert_false(client_secret_ok(&l, secret, strlen(secret)));
    assert_true(client_secret_ok(&l, secret2, strlen(secret2)));
    assert_int_equal(client_set_secret(f->db, "acme", "ghost", secret2), -ENOENT);

    /* the secret appears nowhere in the table */
    struct db_stmt *st = db_prepare(f->db, "SELECT count(*) FROM clients WHERE secret_hash LIKE '%' || $1 || '%' "
                                           "OR settings LIKE '%' || $1 || '%'");
    db_bind_text(st, 1, secret2, -1);
    assert_int_equal(db_step(st), DB_ROW);
    assert_int_equal(db_col_int64(st, 0), 0);
    db_done(st);
}

static void test_public_client(void **state)
{
    struct fixture *f = *state;
    struct client c = { 0 }, l;

    make_client(f, "{\"client_id\": \"spa\", \"type\": \"public\", \"redirect_uris\": [\"https://spa/cb\"]}", &c);
    assert_int_equal(client_insert(f->db, &c, "a-secret-for-a-public-client"), -EINVAL);
    assert_int_equal(client_insert(f->db, &c, NULL), 0);
    assert_int_equal(client_load(f->db, "acme", "spa", &f->a, &l), 0);
    assert_false(l.confidential);
    assert_null(l.secret_hash);
    assert_false(client_secret_ok(&l, "", 0));
    assert_int_equal(l.grant_types, GRANT_AUTHORIZATION_CODE | GRANT_REFRESH_TOKEN);
    assert_int_equal(client_set_secret(f->db, "acme", "spa", "x-secret"), -EINVAL);
}

static void test_update_delete_list(void **state)
{
    struct fixture *f = *state;
    struct client c = { 0 }, d = { 0 }, l;
    char msg[256];
    json_t *patch, *list;

    make_client(f, "{\"client_id\": \"b-svc\", \"scopes\": [\"a\"]}", &c);
    assert_int_equal(client_insert(f->db, &c, "secret-b-0123456789"), 0);
    make_client(f, "{\"client_id\": \"a-svc\"}", &d);
    assert_int_equal(client_insert(f->db, &d, "secret-a-0123456789"), 0);

    assert_int_equal(client_load(f->db, "acme", "b-svc", &f->a, &l), 0);
    patch = json_pack("{s:[s,s], s:s, s:I}", "scopes", "a", "z", "name", "Renamed", "id_token_ttl",
                      (json_int_t)42);
    assert_int_equal(client_from_json(patch, true, &f->a, &l, msg, sizeof(msg)), 0);
    json_decref(patch);
    assert_int_equal(client_update(f->db, &l), 0);
    assert_int_equal(client_load(f->db, "acme", "b-svc", &f->a, &l), 0);
    assert_string_equal(l.name, "Renamed");
    assert_int_equal(l.nscopes, 2);
    assert_int_equal(l.id_token_ttl, 42);
    assert_true(client_secret_ok(&l, "secret-b-0123456789", 19));   /* update keeps the secret */
    l.client_id = "ghost";
    assert_int_equal(client_update(f->db, &l), -ENOENT);

    list = client_list_json(f->db, "acme");
    assert_int_equal(json_array_size(list), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "client_id")), "a-svc");
    assert_null(json_object_get(json_array_get(list, 0), "secret_hash"));
    json_decref(list);
    list = client_list_json(f->db, "nobody");
    assert_int_equal(json_array_size(list), 0);
    json_decref(list);

    /* delete takes the client's tokens along, not other clients' */
    assert_int_equal(db_execp(f->db, "INSERT INTO refresh_tokens(token_hash, tenant, client_id, family_id, "
                                     "issued_at, expires_at) VALUES ('r1', 'acme', 'b-svc', 'f', 1, 2), "
                                     "('r2', 'acme', 'a-svc', 'f', 1, 2)", NULL), 0);
    assert_int_equal(db_execp(f->db, "INSERT INTO opaque_tokens(token_hash, tenant, client_id, issued_at, "
                                     "expires_at) VALUES ('o1', 'acme', 'b-svc', 1, 2)", NULL), 0);
    assert_int_equal(client_delete(f->db, "acme", "b-svc"), 0);
    assert_int_equal(client_load(f->db, "acme", "b-svc", &f->a, &l), -ENOENT);
    assert_int_equal(client_delete(f->db, "acme", "b-svc"), -ENOENT);
    struct db_stmt *st = db_prepare(f->db, "SELECT (SELECT count(*) FROM refresh_tokens), "
                                           "(SELECT count(*) FROM opaque_tokens)");
    assert_int_equal(db_step(st), DB_ROW);
    assert_int_equal(db_col_int64(st, 0), 1);
    assert_int_equal(db_col_int64(st, 1), 0);
    db_done(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_defaults),
        cmocka_unit_test(test_create_full),
        cmocka_unit_test(test_field_errors),
        cmocka_unit_test(test_list_limit),
        cmocka_unit_test(test_partial_update),
        cmocka_unit_test(test_to_json),
        cmocka_unit_test_setup_teardown(test_insert_load_secret, setup, teardown),
        cmocka_unit_test_setup_teardown(test_public_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_update_delete_list, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
