/*
 * test_oauth_request — the token-endpoint request parser: form defects,
 * client authentication (basic, post, id-only, both, neither, malformed),
 * grant parameters and scope syntax, each with the RFC 6749 §5.2 error it
 * must earn.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "core/base64.h"
#include "identity/tenant.h"
#include "oauth/request.h"

static struct arena A;

static int setup(void **state)
{
    (void)state;
    arena_init(&A);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    arena_free(&A);
    return 0;
}

static struct oauth_token_request R;
static struct oauth_error E;

static int parse(const char *body, const char *authz)
{
    memset(&E, 0, sizeof(E));
    return oauth_token_request_parse(body, strlen(body), authz, &A, &R, &E);
}

static const char *basic(const char *raw)
{
    char *out = arena_alloc(&A, strlen(raw) * 2 + 16);
    strcpy(out, "Basic ");
    b64_encode(raw, strlen(raw), out + 6);
    return out;
}

static void expect_error(int status, const char *code)
{
    assert_int_equal(E.status, status);
    assert_string_equal(E.error, code);
    assert_non_null(E.description);
}

/* -------------------------------------------------------------- grants */

static void test_client_credentials_post(void **state)
{
    (void)state;
    assert_int_equal(parse("grant_type=client_credentials&client_id=app&client_secret=s3cr%2Bt&scope=a+b+a",
                           NULL), 0);
    assert_int_equal(R.grant, GRANT_CLIENT_CREDENTIALS);
    assert_int_equal(R.auth.method, OAUTH_AUTH_POST);
    assert_string_equal(R.auth.client_id, "app");
    assert_string_equal(R.auth.secret, "s3cr+t");
    assert_int_equal(R.auth.secret_len, 6);
    assert_true(R.has_scope);
    assert_int_equal(R.scope.n, 2);          /* duplicate "a" dropped */
    assert_string_equal(R.scope.items[0], "a");
    assert_string_equal(R.scope.items[1], "b");
    assert_string_equal(oauth_scopes_join(&R.scope, &A), "a b");
}

static void test_client_credentials_basic(void **state)
{
    (void)state;
    /* RFC 6749 §2.3.1: id and secret are form-urlencoded inside Basic */
    assert_int_equal(parse("grant_type=client_credentials", basic("my%3Aapp:p%40ss+word")), 0);
    assert_int_equal(R.auth.method, OAUTH_AUTH_BASIC);
    assert_string_equal(R.auth.client_id, "my:app");
    assert_string_equal(R.auth.secret, "p@ss word");
    assert_false(R.has_scope);
    assert_int_equal(R.scope.n, 0);
    /* scheme is case-insensitive; a matching client_id in the body is fine */
    const char *h = basic("app:x");
    char *lower = arena_strdup(&A, h);
    memcpy(lower, "bAsIc", 5);
    assert_int_equal(parse("grant_type=client_credentials&client_id=app", lower), 0);
    assert_string_equal(R.auth.client_id, "app");
    /* a secret may be empty (it will simply not verify) */
    assert_int_equal(parse("grant_type=client_credentials", basic("app:")), 0);
    assert_int_equal(R.auth.secret_len, 0);
}

static void test_password_grant(void **state)
{
    (void)state;
    assert_int_equal(parse("grant_type=password&username=Alice&password=p%26w&client_id=pub", NULL), 0);
    assert_int_equal(R.grant, GRANT_PASSWORD);
    assert_int_equal(R.auth.method, OAUTH_AUTH_NONE);
    assert_null(R.auth.secret);
    assert_string_equal(R.username, "Alice");
    assert_string_equal(R.password, "p&w");
    assert_int_equal(R.password_len, 3);
    assert_int_equal(parse("grant_type=password&password=x&client_id=pub", NULL), -EINVAL);
    expect_error(400, "invalid_request");
    assert_int_equal(parse("grant_type=password&username=&password=x&client_id=pub", NULL), -EINVAL);
    expect_error(400, "invalid_request");
    assert_int_equal(parse("grant_type=password&username=a&client_id=pub", NULL), -EINVAL);
    expect_error(400, "invalid_request");
}

static void test_refresh_grant(void **state)
{
    (void)state;
    assert_int_equal(parse("grant_type=refresh_token&refresh_token=abc&client_id=pub&scope=openid", NULL), 0);
    assert_int_equal(R.grant, GRANT_REFRESH_TOKEN);
    assert_string_equal(R.refresh_token, "abc");
    assert_int_equal(R.refresh_token_len, 3);
    assert_int_equal(R.scope.n, 1);
    assert_int_equal(parse("grant_type=refresh_token&client_id=pub", NULL), -EINVAL);
    expect_error(400, "invalid_request");
}

static void test_grant_type_errors(void **state)
{
    (void)state;
    assert_int_equal(parse("client_id=a&client_secret=b", NULL), -EINVAL);
    expect_error(400, "invalid_request");
    assert_int_equal(parse("grant_type=&client_id=a&client_secret=b", NULL), -EINVAL);
    expect_error(400, "invalid_request");
    assert_int_equal(parse("grant_type=implicit&client_id=a&client_secret=b", NULL), -EINVAL);
    expect_error(400, "unsupported_grant_type");
    /* not implemented: must not be half-accepted (authorization_code: test_oauth_authorize.c) */
    assert_int_equal(parse("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&device_code=x"
                           "&client_id=a&client_secret=b", NULL), -EINVAL);
    expect_error(400, "unsupported_grant_type");
    assert_int_equal(R.grant, 0);
}

/* ------------------------------------------------------------ client auth */

static void test_auth_both_methods(void **state)
{
    (void)state;
    assert_int_equal(parse("grant_type=client_credentials&client_id=a&client_secret=b", basic("a:b")), -EINVAL);
    expect_error(400, "invalid_request");
    assert_false(E.basic_challenge);
    /* Basic plus a different body client_id */
    assert_int_equal(parse("grant_type=client_credentials&client_id=other", basic("a:b")), -EINVAL);
    expect_error(400, "invalid_request");
}

static void test_auth_missing(void **state)
{
    (void)state;
    assert_int_equal(parse("grant_type=client_credentials", NULL), -EINVAL);
    expect_error(401, "invalid_client");
    assert_true(E.basic_challenge);
    assert_int_equal(parse("grant_type=client_credentials&client_id=", NULL), -EINVAL);
    expect_error(401, "invalid_client");
    assert_int_equal(parse("grant_type=client_credentials&client_secret=x", NULL), -EINVAL);
    expect_error(400, "invalid_request");
    /* empty Authorization header counts as absent */
    assert_int_equal(parse("grant_type=client_credentials", ""), -EINVAL);
    expect_error(401, "invalid_client");
}

static void test_auth_malformed_basic(void **state)
{
    (void)state;
    const char *bad[] = {
        "Bearer abc",                /* other scheme */
        "Basic",                     /* no credentials */
        "Basic ",
        "Basic !!!!",                /* not base64 */
        "Basicabc",
        NULL,
    };
    for (size_t i = 0; bad[i]; i++) {
        assert_int_equal(parse("grant_type=client_credentials", bad[i]), -EINVAL);
        expect_error(401, "invalid_client");
        assert_true(E.basic_challenge);
    }
    assert_int_equal(parse("grant_type=client_credentials", basic("nocolon")), -EINVAL);
    expect_error(401, "invalid_client");
    assert_int_equal(parse("grant_type=client_credentials", basic(":secret")), -EINVAL);   /* empty id */
    expect_error(401, "invalid_client");
    assert_int_equal(parse("grant_type=client_credentials", basic("a%zz:b")), -EINVAL);    /* bad escape */
    expect_error(401, "invalid_client");
    assert_int_equal(parse("grant_type=client_credentials", basic("a%00:b")), -EINVAL);    /* NUL */
    expect_error(401, "invalid_client");
    assert_int_equal(parse("grant_type=client_credentials", basic("a:b%0")), -EINVAL);     /* short escape */
    expect_error(401, "invalid_client");
}

/* ------------------------------------------------------------------- form */

static void test_form_duplicates(void **state)
{
    (void)state;
    assert_int_equal(parse("grant_type=client_credentials&grant_type=client_credentials&client_id=a", NULL),
                     -EINVAL);
    expect_error(400, "invalid_request");
    assert_non_null(strstr(E.description, "grant_type"));
    assert_int_equal(parse("grant_type=client_credentials&client_id=a&scope=x&scope=y", NULL), -EINVAL);
    expect_error(400, "invalid_request");
    /* duplicates are found before client authentication is looked at */
    assert_int_equal(parse("client_id=a&client_id=a", basic("a:b")), -EINVAL);
    expect_error(400, "invalid_request");
}

static void test_form_defects(void **state)
{
    (void)state;
    assert_int_equal(parse("grant_type=client_credentials&client_id=a%zz", NULL), -EINVAL);
    expect_error(400, "invalid_request");
    assert_int_equal(parse("grant_type=client_credentials&client_id=a&client_secret=b%00c", NULL), -EINVAL);
    expect_error(400, "invalid_request");
    /* too long */
    char *big = arena_alloc(&A, 3000);
    strcpy(big, "grant_type=password&client_id=a&password=x&username=");
    memset(big + strlen(big), 'u', OAUTH_MAX_USERNAME + 1);
    assert_int_equal(parse(big, NULL), -EINVAL);
    expect_error(400, "invalid_request");
    /* too many parameters */
    char *many = arena_alloc(&A, 2000);
    many[0] = '\0';
    for (int i = 0; i < HTTP_MAX_PARAMS + 1; i++)
        sprintf(many + strlen(many), "p%d=1&", i);
    assert_int_equal(parse(many, NULL), -EINVAL);
    expect_error(400, "invalid_request");
}

/* ------------------------------------------------------------------ scope */

static void test_scope_syntax(void **state)
{
    struct oauth_scopes s;
    (void)state;
    assert_int_equal(oauth_scope_parse("openid profile", 14, &A, &s), 0);
    assert_int_equal(s.n, 2);
    assert_true(oauth_scopes_has(&s, "profile"));
    assert_false(oauth_scopes_has(&s, "email"));
    assert_int_equal(oauth_scope_parse("refuge:admin scim:read", 22, &A, &s), 0);
    assert_int_equal(s.n, 2);
    assert_int_equal(oauth_scope_parse("", 0, &A, &s), 0);
    assert_int_equal(s.n, 0);
    assert_int_equal(oauth_scope_parse("a  b", 4, &A, &s), -EINVAL);     /* empty token */
    assert_int_equal(oauth_scope_parse(" a", 2, &A, &s), -EINVAL);
    assert_int_equal(oauth_scope_parse("a ", 2, &A, &s), -EINVAL);
    assert_int_equal(oauth_scope_parse("a\"b", 3, &A, &s), -EINVAL);     /* %x22 excluded */
    assert_int_equal(oauth_scope_parse("a\\b", 3, &A, &s), -EINVAL);     /* %x5C excluded */
    assert_int_equal(oauth_scope_parse("a\tb", 3, &A, &s), -EINVAL);
    assert_int_equal(oauth_scope_parse("caf\xc3\xa9", 5, &A, &s), -EINVAL);
    char many[OAUTH_MAX_SCOPES * 4 + 8];
    size_t k = 0;
    for (int i = 0; i <= OAUTH_MAX_SCOPES; i++)
        k += (size_t)sprintf(many + k, i ? " s%d" : "s%d", i);
    assert_int_equal(oauth_scope_parse(many, k, &A, &s), -EINVAL);
    /* through the request: a malformed scope is invalid_scope */
    assert_int_equal(parse("grant_type=client_credentials&client_id=a&client_secret=b&scope=a%22b", NULL),
                     -EINVAL);
    expect_error(400, "invalid_scope");
    /* an empty scope parameter is no scope */
    assert_int_equal(parse("grant_type=client_credentials&client_id=a&client_secret=b&scope=", NULL), 0);
    assert_false(R.has_scope);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_client_credentials_post, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_credentials_basic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_password_grant, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refresh_grant, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grant_type_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_both_methods, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_malformed_basic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_form_duplicates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_form_defects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scope_syntax, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
