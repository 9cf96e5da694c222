/*
 * test_artifacts_schema — artifact file names and paths, ${region.KEY}
 * resolution, and the tenant and userstore schemas: what is accepted, what
 * the tenant settings document becomes, and that every rejection names
 * file:line:key.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "artifacts/artifacts.h"
#include "core/xmalloc.h"
#include "identity/tenant.h"

/* ------------------------------------------------------------ helpers */

static struct cfg_kv region_items[] = {
    { "ldap_url", "ldaps://ldap-a.example:636", 3 },
    { "display", "Acme (region A)", 4 },
    { "ttl", "15m", 5 },
    { "empty", "", 6 },
};
static const struct cfg_kvlist region = { region_items, sizeof(region_items) / sizeof(region_items[0]) };

static int tenant_parse(const char *text, struct artifact_tenant *t, struct cfg_error *err)
{
    return artifact_tenant_parse("tenants/acme.conf", text, strlen(text), &region, t, err);
}

/* The tenant file must be rejected with an error at `line` on `key`
 * ("" for none) whose message contains `needle`. */
static void expect_tenant_error(const char *text, int line, const char *key, const char *needle)
{
    struct artifact_tenant t;
    struct cfg_error err;
    char msg[1024];

    if (tenant_parse(text, &t, &err) == 0)
        fail_msg("accepted: %s", text);
    artifact_tenant_free(&t);
    cfg_error_format(&err, msg, sizeof(msg));
    assert_string_equal(err.file, "tenants/acme.conf");
    if (err.line != line || strcmp(err.key, key) != 0 || !strstr(err.msg, needle))
        fail_msg("text:\n%s\nerror \"%s\": want line %d key \"%s\" containing \"%s\"", text, msg,
                 line, key, needle);
}

static void expect_userstore_error(const char *text, int line, const char *key, const char *needle)
{
    struct artifact_userstore u;
    struct cfg_error err;
    char msg[1024];

    if (artifact_userstore_parse("userstores/corp.conf", text, strlen(text), &region, &u, &err) == 0)
        fail_msg("accepted: %s", text);
    artifact_userstore_free(&u);
    cfg_error_format(&err, msg, sizeof(msg));
    if (err.line != line || strcmp(err.key, key) != 0 || !strstr(err.msg, needle))
        fail_msg("text:\n%s\nerror \"%s\": want line %d key \"%s\" containing \"%s\"", text, msg,
                 line, key, needle);
}

static void assert_json_text(const json_t *j, const char *want)
{
    json_t *w = json_loads(want, 0, NULL);
    char *got;

    assert_non_null(w);
    if (!json_equal(j, w)) {
        got = json_dumps(j, JSON_SORT_KEYS);
        fail_msg("got %s, want %s", got, want);
    }
    json_decref(w);
}

/* -------------------------------------------------------------- names */

static void test_fname_class(void **state)
{
    char name[ARTIFACT_NAME_MAX + 1];
    char long_name[80];

    (void)state;
    assert_int_equal(artifact_fname_class("acme.conf", name), 1);
    assert_string_equal(name, "acme");
    assert_int_equal(artifact_fname_class("a-1.conf", name), 1);
    /* ignored: not ours */
    assert_int_equal(artifact_fname_class("acme.conf~", name), 0);
    assert_int_equal(artifact_fname_class(".acme.conf.swp", name), 0);
    assert_int_equal(artifact_fname_class(".#acme.conf", name), 0);
    assert_int_equal(artifact_fname_class("#acme.conf#", name), 0);
    assert_int_equal(artifact_fname_class("4913", name), 0);
    assert_int_equal(artifact_fname_class("README", name), 0);
    assert_int_equal(artifact_fname_class("acme.conf.bak", name), 0);
    assert_int_equal(artifact_fname_class(".acme.conf.refuge-tmp.AbC123", name), 0);
    assert_int_equal(artifact_fname_class("", name), 0);
    /* looks like ours, bad name */
    assert_int_equal(artifact_fname_class("Acme.conf", name), -1);
    assert_int_equal(artifact_fname_class("a_b.conf", name), -1);
    assert_int_equal(artifact_fname_class("-a.conf", name), -1);
    assert_int_equal(artifact_fname_class("a-.conf", name), -1);
    assert_int_equal(artifact_fname_class("a b.conf", name), -1);
    memset(long_name, 'a', 64);
    strcpy(long_name + 64, ".conf");
    assert_int_equal(artifact_fname_class(long_name, name), -1);
    memset(long_name, 'a', 63);
    strcpy(long_name + 63, ".conf");
    assert_int_equal(artifact_fname_class(long_name, name), 1);
}

static void test_path_parse(void **state)
{
    char name[ARTIFACT_NAME_MAX + 1];

    (void)state;
    assert_int_equal(artifact_path_parse("tenants/acme.conf", name), ARTIFACT_TENANT);
    assert_string_equal(name, "acme");
    assert_int_equal(artifact_path_parse("userstores/corp.conf", name), ARTIFACT_USERSTORE);
    assert_string_equal(name, "corp");
    /* nothing that could leave the directory or name another file */
    assert_int_equal(artifact_path_parse("tenants/../x.conf", name), ARTIFACT_NONE);
    assert_int_equal(artifact_path_parse("tenants/a/b.conf", name), ARTIFACT_NONE);
    assert_int_equal(artifact_path_parse("tenants//b.conf", name), ARTIFACT_NONE);
    assert_int_equal(artifact_path_parse("/tenants/b.conf", name), ARTIFACT_NONE);
    assert_int_equal(artifact_path_parse("tenantsx/b.conf", name), ARTIFACT_NONE);
    assert_int_equal(artifact_path_parse("tenants", name), ARTIFACT_NONE);
    assert_int_equal(artifact_path_parse("tenants/", name), ARTIFACT_NONE);
    assert_int_equal(artifact_path_parse("tenants/.x.conf", name), ARTIFACT_NONE);
    assert_int_equal(artifact_path_parse("tenants/X.conf", name), ARTIFACT_NONE);
    assert_int_equal(artifact_path_parse("other/x.conf", name), ARTIFACT_NONE);
    assert_string_equal(artifact_kind_dir(ARTIFACT_TENANT), "tenants");
    assert_string_equal(artifact_kind_dir(ARTIFACT_USERSTORE), "userstores");
    assert_null(artifact_kind_dir(ARTIFACT_NONE));
}

static void test_sha256(void **state)
{
    char hex[ARTIFACT_SHA_HEX];

    (void)state;
    artifact_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    artifact_sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

/* ------------------------------------------------------------- region */

static void test_region_resolve(void **state)
{
    const char *text = "; ${region.nope} in a comment stays\n"
                       "[userstore]\n"
                       "url = ${region.ldap_url}\n"
                       "bind_dn = cn=${region.display},dc=x ; ${region.nope} after ' ;' is a comment\n"
                       "cost = $5 and ${region.empty}end\n";
    char *out = NULL;
    size_t n = 0;
    bool used = false;
    struct cfg_error err;

    (void)state;
    assert_int_equal(artifact_region_resolve("userstores/x.conf", text, strlen(text), &region, &out,
                                             &n, &used, &err),
                     0);
    assert_true(used);
    assert_int_equal(n, strlen(out));
    assert_string_equal(out, "; ${region.nope} in a comment stays\n"
                             "[userstore]\n"
                             "url = ldaps://ldap-a.example:636\n"
                             "bind_dn = cn=Acme (region A),dc=x ; ${region.nope} after ' ;' is a comment\n"
                             "cost = $5 and end\n");
    free(out);

    /* nothing to resolve: the bytes come back as they were */
    text = "[tenant]\r\ndisplay_name = x\r\n";
    assert_int_equal(artifact_region_resolve("t", text, strlen(text), NULL, &out, &n, &used, &err), 0);
    assert_false(used);
    assert_int_equal(n, strlen(text));
    assert_memory_equal(out, text, n);
    free(out);
}

static void test_region_errors(void **state)
{
    (void)state;
    expect_tenant_error("[tenant]\ndisplay_name = ${region.nope}\n", 2, "tenant.display_name",
                        "unresolved reference ${region.nope}");
    expect_tenant_error("[tenant]\ndisplay_name = x\n\n[branding]\ntitle = ${env.HOME}\n", 5,
                        "branding.title", "only ${region.KEY}");
    expect_tenant_error("[tenant]\ndisplay_name = ${region.}\n", 2, "tenant.display_name",
                        "malformed reference");
    expect_tenant_error("[tenant]\ndisplay_name = ${region.display\n", 2, "tenant.display_name",
                        "malformed reference");
    expect_tenant_error("[tenant]\ndisplay_name = ${region.a/b}\n", 2, "tenant.display_name",
                        "malformed reference");
    /* unresolved when the node has no [region] at all */
    {
        const char *t = "[tenant]\ndisplay_name = ${region.display}\n";
        struct artifact_tenant at;
        struct cfg_error err;
        assert_int_equal(artifact_tenant_parse("tenants/a.conf", t, strlen(t), NULL, &at, &err), -1);
        assert_int_equal(err.line, 2);
        artifact_tenant_free(&at);
    }
}

static void test_region_growth_limit(void **state)
{
    struct cfg_kv big = { "big", NULL, 1 };
    struct cfg_kvlist r = { &big, 1 };
    struct buf b;
    struct cfg_error err;
    char *out = NULL;
    size_t n, i;
    bool used;

    (void)state;
    big.value = xmalloc(4001);
    memset(big.value, 'x', 4000);
    big.value[4000] = '\0';
    buf_init(&b, 4 * 1024 * 1024);
    buf_puts(&b, "[s]\n");
    for (i = 0; i < 300; i++)
        buf_printf(&b, "k%zu = ${region.big}\n", i);
    assert_int_equal(artifact_region_resolve("t", b.data, b.len, &r, &out, &n, &used, &err), -1);
    assert_non_null(strstr(err.msg, "after ${region.KEY} substitution"));
    assert_null(out);
    free(big.value);
    buf_free(&b);
}

/* ------------------------------------------------------------- tenant */

static void test_tenant_full(void **state)
{
    const char *text = "[tenant]\n"
                       "display_name = Acme Corp\n"
                       "[tokens]\n"
                       "access_token_ttl = 10m\n"
                       "refresh_token_ttl = 7d\n"
                       "id_token_ttl = 3600s\n"
                       "code_ttl = 2m\n"
                       "session_ttl = 8h\n"
                       "grant_types = client_credentials , refresh_token,password\n"
                       "[password]\n"
                       "min_length = 12\n"
                       "require_upper = true\n"
                       "require_lower = yes\n"
                       "require_digit = off\n"
                       "require_symbol = 1\n"
                       "[lockout]\n"
                       "max_failures = 3\n"
                       "duration = 30m\n"
                       "[branding]\n"
                       "title = Acme Login\n"
                       "primary_color = #1a2B3c\n"
                       "logo_url = https://cdn.example/acme.png\n"
                       "footer_text = (c) Acme; all rights reserved\n";
    struct artifact_tenant t;
    struct tenant_settings ts;
    struct cfg_error err;
    char msg[256];

    (void)state;
    if (tenant_parse(text, &t, &err) != 0) {
        cfg_error_format(&err, msg, sizeof(msg));
        fail_msg("%s", msg);
    }
    assert_string_equal(t.display_name, "Acme Corp");
    assert_false(t.uses_region);
    assert_json_text(t.settings,
                     "{\"access_token_ttl\":600,\"refresh_token_ttl\":604800,\"id_token_ttl\":3600,"
                     "\"code_ttl\":120,\"session_ttl\":28800,"
                     "\"grant_types\":[\"client_credentials\",\"refresh_token\",\"password\"],"
                     "\"password_policy\":{\"min_length\":12,\"require_upper\":true,"
                     "\"require_lower\":true,\"require_digit\":false,\"require_symbol\":true},"
                     "\"lockout\":{\"max_failures\":3,\"duration\":1800}}");
    /* what the tenant module makes of it */
    assert_int_equal(tenant_settings_parse(t.settings, &ts, msg, sizeof(msg)), 0);
    assert_int_equal(ts.access_token_ttl, 600);
    assert_int_equal(ts.grant_types, GRANT_CLIENT_CREDENTIALS | GRANT_REFRESH_TOKEN | GRANT_PASSWORD);
    assert_string_equal(t.title, "Acme Login");
    assert_string_equal(t.primary_color, "#1a2B3c");
    assert_string_equal(t.logo_url, "https://cdn.example/acme.png");
    assert_string_equal(t.footer_text, "(c) Acme; all rights reserved");
    artifact_tenant_free(&t);
}

static void test_tenant_minimal(void **state)
{
    struct artifact_tenant t;
    struct cfg_error err;

    (void)state;
    assert_int_equal(tenant_parse("[tenant]\ndisplay_name = A\n", &t, &err), 0);
    assert_string_equal(t.display_name, "A");
    assert_int_equal(json_object_size(t.settings), 0);   /* only explicit keys */
    assert_null(t.title);
    artifact_tenant_free(&t);
    /* partial objects carry only what the file sets */
    assert_int_equal(tenant_parse("[tenant]\ndisplay_name = A\n[lockout]\nmax_failures = 0\n"
                                  "[password]\nrequire_digit = true\n[tokens]\ngrant_types =\n",
                                  &t, &err),
                     0);
    assert_json_text(t.settings, "{\"lockout\":{\"max_failures\":0},"
                                 "\"password_policy\":{\"require_digit\":true},\"grant_types\":[]}");
    artifact_tenant_free(&t);
}

static void test_tenant_region(void **state)
{
    struct artifact_tenant t;
    struct cfg_error err;

    (void)state;
    assert_int_equal(tenant_parse("[tenant]\ndisplay_name = ${region.display}\n"
                                  "[tokens]\naccess_token_ttl = ${region.ttl}\n",
                                  &t, &err),
                     0);
    assert_true(t.uses_region);
    assert_string_equal(t.display_name, "Acme (region A)");
    assert_json_text(t.settings, "{\"access_token_ttl\":900}");
    artifact_tenant_free(&t);
}

static void test_tenant_errors(void **state)
{
    (void)state;
    expect_tenant_error("[tokens]\naccess_token_ttl = 1h\n", 0, "tenant.display_name", "required");
    expect_tenant_error("[tenant]\ndisplay_name = A\ncolour = red\n", 3, "tenant.colour", "unknown key");
    expect_tenant_error("[tenant]\ndisplay_name = A\n[extra]\n", 3, "extra", "unknown section");
    expect_tenant_error("[tenant]\ndisplay_name = A\ndisplay_name = B\n", 3, "tenant.display_name",
                        "duplicate");
    expect_tenant_error("[tenant]\ndisplay_name = A\n[tokens]\naccess_token_ttl = 3600\n", 4,
                        "tokens.access_token_ttl", "needs a unit");
    expect_tenant_error("[tenant]\ndisplay_name = A\n[tokens]\nid_token_ttl = 1500ms\n", 4,
                        "tokens.id_token_ttl", "whole number of seconds");
    expect_tenant_error("[tenant]\ndisplay_name = A\n[tokens]\ncode_ttl = 11m\n", 4, "tokens.code_ttl",
                        "10m");
    expect_tenant_error("[tenant]\ndisplay_name = A\n[tokens]\nsession_ttl = 400d\n", 4,
                        "tokens.session_ttl", "365d");
    expect_tenant_error("[tenant]\ndisplay_name = A\n[tokens]\nrefresh_token_ttl = soon\n", 4,
                        "tokens.refresh_token_ttl", "");
    expect_tenant_error("[tenant]\ndisplay_name = A\n[tokens]\ngrant_types = implicit\n", 4,
                        "tokens.grant_types", "unknown grant type \"implicit\"");
    expect_tenant_error("[tenant]\ndisplay_name = A\n[tokens]\ngrant_types = password,password\n", 4,
                        "tokens.grant_types", "twice");
    expect_tenant_error("[tenant]\ndisplay_name = A\n[tokens]\ngrant_types = password,,refresh_token\n",
                        4, "tokens.grant_types", "empty entry");
    expect_tenant_error("[tenant]\ndisplay_name = A\n[password]\nmin_length = 0\n", 4,
                        "password.min_length", "1 to 1024");
    expect_tenant_error("[tenant]\ndisplay_name = A\n[password]\nrequire_upper = maybe\n", 4,
                        "password.require_upper", "");
    expect_tenant_error("[tenant]\ndisplay_name = A\n[lockout]\nmax_failures = 101\n", 4,
                        "lockout.max_failures", "");
    expect_tenant_error("[tenant]\ndisplay_name = A\n[lockout]\nduration = 90\n", 4, "lockout.duration",
                        "needs a unit");
    expect_tenant_error("[tenant]\ndisplay_name = A\n[branding]\nprimary_color = #12345g\n", 4,
                        "branding.primary_color", "#rrggbb");
    expect_tenant_error("[tenant]\ndisplay_name = A\n[branding]\nprimary_color = red\n", 4,
                        "branding.primary_color", "");
    expect_tenant_error("[tenant]\ndisplay_name = A\n[branding]\nlogo_url = javascript:alert(1)\n", 4,
                        "branding.logo_url", "");
    expect_tenant_error("[tenant]\ndisplay_name = A\x01\n", 2, "tenant.display_name",
                        "control characters");
    expect_tenant_error("[tenant]\ndisplay_name = A\n[branding]\ntitle = x\x1b[31m\n", 4,
                        "branding.title", "control characters");
    expect_tenant_error("[tenant]\ndisplay_name = A\nno equals sign here\n", 3, "", "key = value");
}

static void test_tenant_too_big(void **state)
{
    size_t n = ARTIFACT_MAX_BYTES + 10;
    char *text = xmalloc(n);
    struct artifact_tenant t;
    struct cfg_error err;

    (void)state;
    memset(text, '\n', n);
    memcpy(text, "[tenant]\ndisplay_name = A\n", 26);
    assert_int_equal(artifact_tenant_parse("tenants/a.conf", text, n, NULL, &t, &err), -1);
    assert_non_null(strstr(err.msg, "larger than"));
    artifact_tenant_free(&t);
    free(text);
}

/* ---------------------------------------------------------- userstore */

static void test_userstore_ok(void **state)
{
    const char *text = "[userstore]\n"
                       "type = ldap\n"
                       "url = ${region.ldap_url}\n"
                       "bind_dn = cn=refuge,ou=svc,dc=example,dc=com\n"
                       "bind_password_file = /etc/refuge/ldap.pw\n"
                       "user_base = ou=people,dc=example,dc=com\n"
                       "user_filter = (&(objectClass=person)(!(nsAccountLock=true)))\n"
                       "attr_groups = isMemberOf\n"
                       "ca_file = /etc/ssl/corp-ca.pem\n"
                       "timeout = 2s\n"
                       "pool_size = 8\n"
                       "read_only = false\n";
    struct artifact_userstore u;
    struct cfg_error err;
    char msg[512];

    (void)state;
    if (artifact_userstore_parse("userstores/corp.conf", text, strlen(text), &region, &u, &err) != 0) {
        cfg_error_format(&err, msg, sizeof(msg));
        fail_msg("%s", msg);
    }
    assert_string_equal(u.url, "ldaps://ldap-a.example:636");
    assert_int_equal(u.tls, ARTIFACT_TLS_LDAPS);      /* from the scheme */
    assert_true(u.uses_region);
    assert_string_equal(u.attr_username, "uid");      /* defaults */
    assert_string_equal(u.attr_email, "mail");
    assert_string_equal(u.attr_groups, "isMemberOf");
    assert_int_equal(u.timeout_ms, 2000);
    assert_int_equal(u.pool_size, 8);
    assert_false(u.read_only);
    assert_string_equal(u.tenant, "default");        /* no tenant key */
    artifact_userstore_free(&u);

    text = "[userstore]\ntype = ldap\nurl = ldap://a.example ldap://[::1]:3389/\ntls = starttls\n"
           "user_base = dc=example\ntenant = acme-2\n";
    assert_int_equal(artifact_userstore_parse("userstores/x.conf", text, strlen(text), NULL, &u, &err), 0);
    assert_int_equal(u.tls, ARTIFACT_TLS_STARTTLS);
    assert_string_equal(u.tenant, "acme-2");
    assert_true(u.read_only);
    assert_string_equal(u.user_filter, "(objectClass=inetOrgPerson)");
    assert_false(u.uses_region);
    artifact_userstore_free(&u);
    assert_int_equal(artifact_validate("userstores/x.conf", text, strlen(text), NULL, &err), 0);
    assert_int_equal(artifact_validate("userstores/X.conf", text, strlen(text), NULL, &err), -1);
}

static void test_userstore_errors(void **state)
{
    (void)state;
    expect_userstore_error("[userstore]\nurl = ldap://a\nuser_base = dc=x\n", 0, "userstore.type",
                           "required");
    expect_userstore_error("[userstore]\ntype = ad\nurl = ldap://a\nuser_base = dc=x\n", 2,
                           "userstore.type", "");
    expect_userstore_error("[userstore]\ntype = ldap\nurl = http://a\nuser_base = dc=x\n", 3,
                           "userstore.url", "ldap://");
    expect_userstore_error("[userstore]\ntype = ldap\nurl = ldap://a:99999\nuser_base = dc=x\n", 3,
                           "userstore.url", "");
    expect_userstore_error("[userstore]\ntype = ldap\nurl = ldap://a ldaps://b\nuser_base = dc=x\n", 3,
                           "userstore.url", "same scheme");
    expect_userstore_error("[userstore]\ntype = ldap\nurl = ldap://a\ntls = ldaps\nuser_base = dc=x\n", 4,
                           "userstore.tls", "ldaps://");
    expect_userstore_error("[userstore]\ntype = ldap\nurl = ldaps://a\ntls = starttls\nuser_base = dc=x\n",
                           4, "userstore.tls", "");
    expect_userstore_error("[userstore]\ntype = ldap\nurl = ldap://a\nuser_base = dc=x\nca_file = /ca\n",
                           5, "userstore.ca_file", "tls");
    expect_userstore_error("[userstore]\ntype = ldap\nurl = ldap://a\nuser_base = dc=x\nbind_dn = cn=a\n"
                           "bind_password = s\nbind_password_file = /pw\n",
                           7, "userstore.bind_password_file", "mutually exclusive");
    expect_userstore_error("[userstore]\ntype = ldap\nurl = ldap://a\nuser_base = dc=x\nbind_password = s\n",
                           5, "userstore.bind_password", "needs bind_dn");
    expect_userstore_error("[userstore]\ntype = ldap\nurl = ldap://a\nuser_base = people\n", 4,
                           "userstore.user_base", "DN");
    expect_userstore_error("[userstore]\ntype = ldap\nurl = ldap://a\nuser_base = dc=x\n"
                           "user_filter = (a=b))(\n",
                           5, "userstore.user_filter", "");
    expect_userstore_error("[userstore]\ntype = ldap\nurl = ldap://a\nuser_base = dc=x\n"
                           "attr_email = mail address\n",
                           5, "userstore.attr_email", "attribute");
    expect_userstore_error("[userstore]\ntype = ldap\nurl = ldap://a\nuser_base = dc=x\npool_size = 0\n", 5,
                           "userstore.pool_size", "");
    expect_userstore_error("[userstore]\ntype = ldap\nurl = ldap://a\nuser_base = dc=x\ntenant = Acme\n", 5,
                           "userstore.tenant", "tenant name");
    expect_userstore_error("[userstore]\ntype = ldap\nurl = ldap://a\nuser_base = dc=x\ntenant = -acme\n", 5,
                           "userstore.tenant", "tenant name");
    expect_userstore_error("[userstore]\ntype = ldap\nurl = ${region.ldap}\nuser_base = dc=x\n", 3,
                           "userstore.url", "unresolved reference ${region.ldap}");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fname_class),
        cmocka_unit_test(test_path_parse),
        cmocka_unit_test(test_sha256),
        cmocka_unit_test(test_region_resolve),
        cmocka_unit_test(test_region_errors),
        cmocka_unit_test(test_region_growth_limit),
        cmocka_unit_test(test_tenant_full),
        cmocka_unit_test(test_tenant_minimal),
        cmocka_unit_test(test_tenant_region),
        cmocka_unit_test(test_tenant_errors),
        cmocka_unit_test(test_tenant_too_big),
        cmocka_unit_test(test_userstore_ok),
        cmocka_unit_test(test_userstore_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
