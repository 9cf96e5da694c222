/*
 * test_oauth_authorize — the pure parts of the authorization code flow:
 * the authorization request parser (which defects are shown as a page and
 * which are redirected, in which order), PKCE S256 (RFC 7636 appendix B),
 * the redirect builder (encoding, existing queries), the token request of
 * the authorization_code grant, and at_hash.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "core/buf.h"
#include "crypto/keys.h"
#include "identity/tenant.h"
#include "oauth/authorize.h"
#include "oauth/oauth_internal.h"
#include "oauth/request.h"

static struct arena A;
static struct oauth_authz_request R;
static struct oauth_authz_error E;

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

#define CHALLENGE "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
#define VERIFIER "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
#define OK_BASE "client_id=app&redirect_uri=https%3A%2F%2Frp.example%2Fcb&response_type=code&state=xyz"

static int parse(const char *query)
{
    struct http_params ps;
    assert_int_equal(http_urlencoded_parse(query, strlen(query), &A, HTTP_MAX_PARAMS, &ps), 0);
    return oauth_authorize_parse(&ps, &A, &R, &E);
}

static void expect_page(const char *query, const char *desc_part)
{
    assert_int_equal(parse(query), -EINVAL);
    assert_false(E.redirect);
    assert_string_equal(E.error, "invalid_request");
    assert_non_null(strstr(E.description, desc_part));
}

static void expect_redirect(const char *query, const char *code)
{
    assert_int_equal(parse(query), -EINVAL);
    assert_true(E.redirect);
    assert_string_equal(E.error, code);
    assert_non_null(E.description);
    /* what a redirect needs survived the defect */
    assert_string_equal(R.client_id, "app");
    assert_string_equal(R.redirect_uri, "https://rp.example/cb");
}

/* ---------------------------------------------------------------- parser */

static void test_parse_ok(void **state)
{
    (void)state;
    assert_int_equal(parse(OK_BASE "&scope=openid%20profile&nonce=n1&code_challenge=" CHALLENGE
                                   "&code_challenge_method=S256&prompt=login%20consent&max_age=300"
                                   "&login_hint=alice&username=ignored&csrf_token=x"), 0);
    assert_string_equal(R.client_id, "app");
    assert_string_equal(R.redirect_uri, "https://rp.example/cb");
    assert_string_equal(R.response_type, "code");
    assert_string_equal(R.state, "xyz");
    assert_string_equal(R.nonce, "n1");
    assert_true(R.has_scope);
    assert_int_equal(R.scope.n, 2);
    assert_string_equal(R.scope.items[1], "profile");
    assert_string_equal(R.code_challenge, CHALLENGE);
    assert_string_equal(R.code_challenge_method, "S256");
    assert_int_equal(R.prompt, OAUTH_PROMPT_LOGIN | OAUTH_PROMPT_CONSENT);
    assert_int_equal(R.max_age, 300);
    assert_string_equal(R.login_hint, "alice");

    /* the minimum: no redirect_uri, no PKCE, no scope, no state */
    assert_int_equal(parse("client_id=app&response_type=code"), 0);
    assert_null(R.redirect_uri);
    assert_null(R.code_challenge);
    assert_null(R.state);
    assert_false(R.has_scope);
    assert_int_equal(R.max_age, -1);
    assert_int_equal(R.prompt, 0);
}

static void test_parse_page_errors(void **state)
{
    (void)state;
    expect_page("response_type=code", "client_id is required");
    expect_page("client_id=&response_type=code", "client_id is required");
    expect_page("client_id=a%20b&response_type=code", "client_id is invalid");
    expect_page("client_id=a%00b", "client_id is invalid");
    expect_page("client_id=a&client_id=a&response_type=code", "client_id: repeated");
    expect_page("client_id=app&redirect_uri=https%3A%2F%2Fa&redirect_uri=https%3A%2F%2Fa", "redirect_uri: repeated");
    expect_page("client_id=app&redirect_uri=https%3A%2F%2Frp.example%2Fcb%23frag", "redirect_uri is invalid");
    expect_page("client_id=app&redirect_uri=javascript%3Aalert(1)", "redirect_uri is invalid");
    expect_page("client_id=app&redirect_uri=", "redirect_uri is invalid");
    /* a page error wins over a later redirectable defect */
    expect_page("client_id=app&redirect_uri=ftp%3A%2F%2Fx&response_type=token", "redirect_uri is invalid");
}

static void test_parse_redirect_errors(void **state)
{
    (void)state;
    expect_redirect(OK_BASE "&response_type=code", "invalid_request");       /* repeated */
    expect_redirect("client_id=app&redirect_uri=https%3A%2F%2Frp.example%2Fcb", "invalid_request");
    expect_redirect("client_id=app&redirect_uri=https%3A%2F%2Frp.example%2Fcb&response_type=token",
                    "unsupported_response_type");
    expect_redirect("client_id=app&redirect_uri=https%3A%2F%2Frp.example%2Fcb&response_type=code%20id_token",
                    "unsupported_response_type");
    expect_redirect(OK_BASE "&response_mode=form_post", "invalid_request");
    expect_redirect(OK_BASE "&request=eyJ", "request_not_supported");
    expect_redirect(OK_BASE "&request_uri=urn%3Ax", "request_uri_not_supported");
    expect_redirect(OK_BASE "&scope=a%20%20b", "invalid_scope");
    expect_redirect(OK_BASE "&scope=a%22b", "invalid_scope");
    expect_redirect(OK_BASE "&code_challenge=" CHALLENGE, "invalid_request");                  /* means plain */
    expect_redirect(OK_BASE "&code_challenge=" CHALLENGE "&code_challenge_method=plain", "invalid_request");
    assert_non_null(strstr(E.description, "plain"));
    expect_redirect(OK_BASE "&code_challenge=" CHALLENGE "&code_challenge_method=s256", "invalid_request");
    expect_redirect(OK_BASE "&code_challenge_method=S256", "invalid_request");
    expect_redirect(OK_BASE "&code_challenge=short&code_challenge_method=S256", "invalid_request");
    expect_redirect(OK_BASE "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw%2BcM&code_challenge_method=S256",
                    "invalid_request");
    expect_redirect(OK_BASE "&prompt=none%20login", "invalid_request");
    expect_redirect(OK_BASE "&prompt=", "invalid_request");
    expect_redirect(OK_BASE "&prompt=login%20", "invalid_request");
    expect_redirect(OK_BASE "&prompt=bogus", "invalid_request");
    expect_redirect(OK_BASE "&max_age=-1", "invalid_request");
    expect_redirect(OK_BASE "&max_age=%2B5", "invalid_request");
    expect_redirect(OK_BASE "&max_age=1e3", "invalid_request");
    expect_redirect(OK_BASE "&max_age=99999999999", "invalid_request");
    expect_redirect(OK_BASE "&nonce=a%00b", "invalid_request");
    /* the state is kept for the error redirect, unless it is itself the defect */
    assert_int_equal(parse(OK_BASE "&response_mode=fragment"), -EINVAL);
    assert_string_equal(R.state, "xyz");
    assert_int_equal(parse(OK_BASE "&state=again"), -EINVAL);
    assert_null(R.state);
}

static void test_parse_limits(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 64 * 1024);
    buf_puts(&b, OK_BASE "&nonce=");
    for (int i = 0; i < OAUTH_MAX_NONCE; i++)
        buf_putc(&b, 'n');
    assert_int_equal(parse(buf_cstr(&b)), 0);
    buf_putc(&b, 'n');
    expect_redirect(buf_cstr(&b), "invalid_request");
    assert_non_null(strstr(E.description, "nonce: too long"));

    buf_reset(&b);
    buf_puts(&b, "client_id=app&response_type=code&state=");
    for (int i = 0; i <= OAUTH_MAX_STATE; i++)
        buf_putc(&b, 's');
    assert_int_equal(parse(buf_cstr(&b)), -EINVAL);
    assert_true(E.redirect);
    assert_null(R.state);                 /* never echoed */
    buf_free(&b);
}

static void test_prompt_none_alone(void **state)
{
    (void)state;
    assert_int_equal(parse(OK_BASE "&prompt=none"), 0);
    assert_int_equal(R.prompt, OAUTH_PROMPT_NONE);
    assert_int_equal(parse(OK_BASE "&prompt=select_account"), 0);
    assert_int_equal(R.prompt, OAUTH_PROMPT_SELECT_ACCOUNT);
    assert_int_equal(parse(OK_BASE "&max_age=0"), 0);
    assert_int_equal(R.max_age, 0);
}

/* ------------------------------------------------------------------ PKCE */

static void test_pkce(void **state)
{
    (void)state;
    assert_true(oauth_pkce_verifier_valid(VERIFIER, strlen(VERIFIER)));
    assert_true(oauth_pkce_s256_matches(VERIFIER, strlen(VERIFIER), CHALLENGE));
    assert_false(oauth_pkce_s256_matches(VERIFIER, strlen(VERIFIER) - 1, CHALLENGE));
    assert_false(oauth_pkce_s256_matches(VERIFIER, strlen(VERIFIER), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"));
    assert_false(oauth_pkce_s256_matches(VERIFIER, strlen(VERIFIER), NULL));
    /* plain would be verifier == challenge: never accepted */
    assert_false(oauth_pkce_s256_matches(VERIFIER, strlen(VERIFIER), VERIFIER));

    char v[200];
    memset(v, 'a', sizeof(v));
    assert_false(oauth_pkce_verifier_valid(v, 42));
    assert_true(oauth_pkce_verifier_valid(v, 43));
    assert_true(oauth_pkce_verifier_valid(v, 128));
    assert_false(oauth_pkce_verifier_valid(v, 129));
    assert_true(oauth_pkce_verifier_valid("abc-._~ABCxyz0123456789abcdefghijklmnopqrstu", 44));
    assert_false(oauth_pkce_verifier_valid("abc+/=ABCxyz0123456789abcdefghijklmnopqrstuv", 44));
}

/* -------------------------------------------------------------- redirect */

static void test_redirect_build(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 4096);
    const char *kv[] = { "code", "abc_-.~", "state", "a b&c=d/é", "skip", NULL, "iss", "https://x/t/a", NULL };
    assert_int_equal(oauth_redirect_build(&b, "https://rp.example/cb", kv), 0);
    assert_string_equal(buf_cstr(&b), "https://rp.example/cb?code=abc_-.~&state=a%20b%26c%3Dd%2F%C3%A9"
                                      "&iss=https%3A%2F%2Fx%2Ft%2Fa");
    buf_reset(&b);
    assert_int_equal(oauth_redirect_build(&b, "https://rp.example/cb?tenant=1", kv), 0);
    assert_non_null(strstr(buf_cstr(&b), "cb?tenant=1&code=abc"));
    buf_reset(&b);
    assert_int_equal(oauth_redirect_build(&b, "https://rp.example/cb?", kv), 0);
    assert_non_null(strstr(buf_cstr(&b), "cb?code=abc"));
    buf_reset(&b);
    const char *none[] = { "state", NULL, NULL };
    assert_int_equal(oauth_redirect_build(&b, "https://rp.example/bye", none), 0);
    assert_string_equal(buf_cstr(&b), "https://rp.example/bye");
    buf_free(&b);

    buf_init(&b, 30);
    assert_int_equal(oauth_redirect_build(&b, "https://rp.example/cb", kv), -E2BIG);
    buf_free(&b);
}

/* ----------------------------------------------------- token request (code) */

static struct oauth_token_request T;
static struct oauth_error TE;

static int tparse(const char *body)
{
    memset(&TE, 0, sizeof(TE));
    return oauth_token_request_parse(body, strlen(body), NULL, &A, &T, &TE);
}

static void test_code_token_request(void **state)
{
    (void)state;
    assert_int_equal(tparse("grant_type=authorization_code&code=abc&client_id=pub"
                            "&redirect_uri=https%3A%2F%2Frp.example%2Fcb&code_verifier=" VERIFIER), 0);
    assert_int_equal(T.grant, GRANT_AUTHORIZATION_CODE);
    assert_string_equal(T.code, "abc");
    assert_int_equal(T.code_len, 3);
    assert_string_equal(T.redirect_uri, "https://rp.example/cb");
    assert_string_equal(T.code_verifier, VERIFIER);
    assert_int_equal(T.code_verifier_len, 43);
    assert_int_equal(T.auth.method, OAUTH_AUTH_NONE);

    assert_int_equal(tparse("grant_type=authorization_code&code=abc&client_id=pub"), 0);
    assert_null(T.redirect_uri);
    assert_null(T.code_verifier);

    assert_int_equal(tparse("grant_type=authorization_code&client_id=pub"), -EINVAL);
    assert_string_equal(TE.error, "invalid_request");
    assert_int_equal(tparse("grant_type=authorization_code&code=&client_id=pub"), -EINVAL);
    assert_string_equal(TE.error, "invalid_request");
    assert_int_equal(tparse("grant_type=authorization_code&code=a&client_id=pub&code_verifier=short"), -EINVAL);
    assert_string_equal(TE.error, "invalid_request");
    assert_int_equal(tparse("grant_type=authorization_code&code=a&client_id=pub&code_verifier="
                            "dBjftJeZ4CVP+mB92K27uhbUJU1p1r_wW1gFWFOEjXk"), -EINVAL);
    assert_string_equal(TE.error, "invalid_request");
    assert_int_equal(tparse("grant_type=authorization_code&code=a&code=b&client_id=pub"), -EINVAL);
    assert_string_equal(TE.error, "invalid_request");
}

/* ---------------------------------------------------------------- at_hash */

static void test_at_hash(void **state)
{
    (void)state;
    char out[44];
    /* expected values computed with Python's hashlib (OIDC Core §3.1.3.6) */
    const char *tok = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.sig";
    assert_int_equal(oauth_token_half_hash(CRYPTO_ALG_ES256, tok, out), 0);
    assert_string_equal(out, "nSEnLteZ4WxPzJzlJEz2Cw");
    assert_int_equal(oauth_token_half_hash(CRYPTO_ALG_RS256, tok, out), 0);
    assert_string_equal(out, "nSEnLteZ4WxPzJzlJEz2Cw");
    assert_int_equal(oauth_token_half_hash(CRYPTO_ALG_EDDSA, tok, out), 0);
    assert_string_equal(out, "HiHaGCkgRejo5PhgRkPCrNklmivkpeekVBM_CV3UYFQ");
    assert_int_equal(oauth_token_half_hash(CRYPTO_ALG_NONE, tok, out), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_parse_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_page_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_redirect_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prompt_none_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pkce, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redirect_build, setup, teardown),
        cmocka_unit_test_setup_teardown(test_code_token_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_at_hash, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
