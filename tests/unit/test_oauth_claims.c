/*
 * test_oauth_claims — the pure pieces of token minting: the SCIM -> OIDC
 * standard-claim mapping per scope (primary values, fallbacks, malformed
 * user documents), the small JSON writer used for token payloads and
 * responses (escaping, well-formedness), and JWT shape detection.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "oauth/oauth_internal.h"

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

static json_t *claims(const char *scope, const char *data, const char *user_name, int64_t updated_at)
{
    struct oauth_scopes s;
    assert_int_equal(oauth_scope_parse(scope, strlen(scope), &A, &s), 0);
    json_t *o = json_object();
    oauth_user_claims(o, &s, data, user_name, updated_at);
    return o;
}

static const char *str(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static const char *ada =
    "{\"userName\":\"ada\",\"displayName\":\"Countess\","
    "\"name\":{\"formatted\":\"Ada Lovelace\",\"givenName\":\"Ada\",\"familyName\":\"Lovelace\","
    "\"middleName\":\"King\"},\"nickName\":\"A\",\"profileUrl\":\"https://ex.org/ada\","
    "\"photos\":[{\"value\":\"https://ex.org/1.png\"},{\"value\":\"https://ex.org/2.png\",\"primary\":true}],"
    "\"locale\":\"en-GB\",\"timezone\":\"Europe/London\","
    "\"emails\":[{\"value\":\"a@work\"},{\"value\":\"a@home\",\"primary\":true}],"
    "\"phoneNumbers\":[{\"value\":\"+44 1\"}],"
    "\"addresses\":[{\"streetAddress\":\"1 St\",\"locality\":\"London\",\"postalCode\":\"N1\","
    "\"country\":\"GB\",\"type\":\"home\"}]}";

static void test_profile_scope(void **state)
{
    (void)state;
    json_t *o = claims("openid profile", ada, "Ada", 1234);
    assert_string_equal(str(o, "name"), "Ada Lovelace");
    assert_string_equal(str(o, "given_name"), "Ada");
    assert_string_equal(str(o, "family_name"), "Lovelace");
    assert_string_equal(str(o, "middle_name"), "King");
    assert_string_equal(str(o, "nickname"), "A");
    assert_string_equal(str(o, "preferred_username"), "Ada");   /* the users row wins */
    assert_string_equal(str(o, "profile"), "https://ex.org/ada");
    assert_string_equal(str(o, "picture"), "https://ex.org/2.png");   /* primary */
    assert_string_equal(str(o, "locale"), "en-GB");
    assert_string_equal(str(o, "zoneinfo"), "Europe/London");
    assert_int_equal(json_integer_value(json_object_get(o, "updated_at")), 1234);
    /* nothing from scopes not granted */
    assert_null(json_object_get(o, "email"));
    assert_null(json_object_get(o, "phone_number"));
    assert_null(json_object_get(o, "address"));
    json_decref(o);
}

static void test_email_phone_address(void **state)
{
    (void)state;
    json_t *o = claims("email phone address", ada, "ada", 0);
    assert_string_equal(str(o, "email"), "a@home");
    assert_string_equal(str(o, "phone_number"), "+44 1");
    json_t *addr = json_object_get(o, "address");
    assert_true(json_is_object(addr));
    assert_string_equal(str(addr, "street_address"), "1 St");
    assert_string_equal(str(addr, "locality"), "London");
    assert_string_equal(str(addr, "postal_code"), "N1");
    assert_string_equal(str(addr, "country"), "GB");
    assert_null(json_object_get(addr, "type"));
    assert_null(json_object_get(o, "name"));
    assert_null(json_object_get(o, "updated_at"));
    assert_int_equal(json_object_size(o), 3);
    json_decref(o);
}

static void test_fallbacks_and_garbage(void **state)
{
    (void)state;
    /* displayName when there is no formatted name; userName from the document */
    json_t *o = claims("profile", "{\"displayName\":\"Bob\",\"userName\":\"bob\",\"name\":\"not an object\"}", NULL,
                       0);
    assert_string_equal(str(o, "name"), "Bob");
    assert_string_equal(str(o, "preferred_username"), "bob");
    assert_null(json_object_get(o, "given_name"));
    json_decref(o);
    /* malformed or odd documents add nothing and do not crash */
    const char *bad[] = { "", "not json", "[]", "{\"emails\":\"x\"}", "{\"emails\":[1,2]}",
                          "{\"emails\":[{\"value\":7}]}", "{\"emails\":[{\"value\":\"\"}]}",
                          "{\"addresses\":[{\"type\":\"work\"}]}", NULL };
    for (size_t i = 0; bad[i]; i++) {
        o = claims("email address phone", bad[i], NULL, 0);
        assert_int_equal(json_object_size(o), 0);
        json_decref(o);
    }
    o = claims("openid email", NULL, NULL, 0);
    assert_int_equal(json_object_size(o), 0);
    json_decref(o);
}

static void test_json_writer(void **state)
{
    (void)state;
    struct buf b;
    struct jw w;
    buf_init(&b, 4096);
    jw_begin(&w, &b);
    jw_str(&w, "s", "quote\" back\\ nl\n ctl\x01 é");
    jw_int(&w, "i", -42);
    jw_int(&w, "big", INT64_MAX);
    jw_bool(&w, "t", true);
    jw_bool(&w, "f", false);
    jw_raw(&w, "arr", "[1,2]");
    jw_str_safe(&w, "tok", "abc.def-_");
    jw_end(&w);
    json_error_t e;
    json_t *j = json_loads(b.data, 0, &e);
    assert_non_null(j);
    assert_string_equal(str(j, "s"), "quote\" back\\ nl\n ctl\x01 é");
    assert_int_equal(json_integer_value(json_object_get(j, "i")), -42);
    assert_true(json_integer_value(json_object_get(j, "big")) == INT64_MAX);
    assert_true(json_is_true(json_object_get(j, "t")));
    assert_true(json_is_false(json_object_get(j, "f")));
    assert_int_equal(json_array_size(json_object_get(j, "arr")), 2);
    assert_string_equal(str(j, "tok"), "abc.def-_");
    json_decref(j);
    buf_free(&b);
    /* an empty object */
    buf_init(&b, 64);
    jw_begin(&w, &b);
    jw_end(&w);
    assert_string_equal(b.data, "{}");
    buf_free(&b);
}

static void test_looks_like_jwt(void **state)
{
    (void)state;
    assert_true(oauth_looks_like_jwt("a.b.c", 5));
    assert_true(oauth_looks_like_jwt("..", 2));
    assert_false(oauth_looks_like_jwt("abc", 3));
    assert_false(oauth_looks_like_jwt("a.b", 3));
    assert_false(oauth_looks_like_jwt("a.b.c.d", 7));   /* JWE has five parts, never ours */
}

static void test_random_token(void **state)
{
    (void)state;
    char t1[OAUTH_TOKEN_BUFSZ], t2[OAUTH_TOKEN_BUFSZ];
    char h1[CRYPTO_TOKEN_HASH_BUFSZ], h2[CRYPTO_TOKEN_HASH_BUFSZ], check[CRYPTO_TOKEN_HASH_BUFSZ];
    oauth_random_token(t1, h1);
    oauth_random_token(t2, h2);
    assert_int_equal(strlen(t1), OAUTH_TOKEN_LEN);
    assert_int_equal(strspn(t1, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                     OAUTH_TOKEN_LEN);
    assert_string_not_equal(t1, t2);
    crypto_token_hash(t1, strlen(t1), check);
    assert_string_equal(h1, check);
    assert_string_not_equal(h1, h2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_profile_scope, setup, teardown),
        cmocka_unit_test_setup_teardown(test_email_phone_address, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fallbacks_and_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_writer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_looks_like_jwt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_token, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
