/*
 * test_http_parse — the HTTP layer's byte parsers: urlencoded lists (query
 * strings and form bodies), Cookie headers and tenant names. These take raw
 * network bytes, so the edge cases matter more than the happy path.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "http/http.h"

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

static int parse(const char *s, size_t max, struct http_params *out)
{
    return http_urlencoded_parse(s, strlen(s), &A, max, out);
}

/* ------------------------------------------------------------ urlencoded */

static void test_form_empty(void **state)
{
    struct http_params ps = { (void *)1, 99 };

    (void)state;
    assert_int_equal(parse("", 8, &ps), 0);
    assert_int_equal(ps.n, 0);
    assert_null(http_params_get(&ps, "a"));
    /* only separators: still nothing */
    assert_int_equal(parse("&&&", 8, &ps), 0);
    assert_int_equal(ps.n, 0);
    /* NULL pointer with zero length is fine */
    assert_int_equal(http_urlencoded_parse(NULL, 0, &A, 8, &ps), 0);
    assert_int_equal(ps.n, 0);
}

static void test_form_shapes(void **state)
{
    struct http_params ps;

    (void)state;
    assert_int_equal(parse("a", 8, &ps), 0);
    assert_int_equal(ps.n, 1);
    assert_string_equal(ps.items[0].name, "a");
    assert_string_equal(ps.items[0].value, "");
    assert_int_equal(ps.items[0].value_len, 0);

    assert_int_equal(parse("a=", 8, &ps), 0);
    assert_int_equal(ps.n, 1);
    assert_string_equal(http_params_get(&ps, "a"), "");

    assert_int_equal(parse("=b", 8, &ps), 0);
    assert_int_equal(ps.n, 1);
    assert_string_equal(ps.items[0].name, "");
    assert_string_equal(ps.items[0].value, "b");

    assert_int_equal(parse("a=1&&b=2&", 8, &ps), 0);
    assert_int_equal(ps.n, 2);
    assert_string_equal(http_params_get(&ps, "a"), "1");
    assert_string_equal(http_params_get(&ps, "b"), "2");

    /* only the first '=' splits */
    assert_int_equal(parse("k=v=w", 8, &ps), 0);
    assert_string_equal(http_params_get(&ps, "k"), "v=w");
}

static void test_form_duplicates(void **state)
{
    struct http_params ps;

    (void)state;
    assert_int_equal(parse("a=1&a=2&b=3", 8, &ps), 0);
    assert_int_equal(ps.n, 3);
    assert_string_equal(http_params_get(&ps, "a"), "1");     /* first wins */
    assert_int_equal(http_params_count(&ps, "a"), 2);
    assert_int_equal(http_params_count(&ps, "b"), 1);
    assert_int_equal(http_params_count(&ps, "c"), 0);
    assert_int_equal(http_params_count(NULL, "a"), 0);
    assert_null(http_params_get(NULL, "a"));
}

static void test_form_decoding(void **state)
{
    struct http_params ps;

    (void)state;
    assert_int_equal(parse("redirect_uri=https%3A%2F%2Fa.example%2Fcb%3Fx%3D1&s=a+b%20c", 8, &ps),
                     0);
    assert_string_equal(http_params_get(&ps, "redirect_uri"), "https://a.example/cb?x=1");
    assert_string_equal(http_params_get(&ps, "s"), "a b c");
    /* '+' in names too, lower- and upper-case hex */
    assert_int_equal(parse("a+b=%e2%82%AC", 8, &ps), 0);
    assert_string_equal(http_params_get(&ps, "a b"), "\xe2\x82\xac");
    assert_int_equal(ps.items[0].value_len, 3);
    /* a literal %2B stays a plus */
    assert_int_equal(parse("p=%2B", 8, &ps), 0);
    assert_string_equal(http_params_get(&ps, "p"), "+");
}

static void test_form_bad_escapes(void **state)
{
    struct http_params ps;

    (void)state;
    assert_int_equal(parse("a=%zz", 8, &ps), -EINVAL);
    assert_int_equal(ps.n, 0);
    assert_int_equal(parse("a=%2", 8, &ps), -EINVAL);
    assert_int_equal(parse("a=%", 8, &ps), -EINVAL);
    assert_int_equal(parse("%g1=b", 8, &ps), -EINVAL);
    assert_int_equal(parse("a=1&b=%2&c=3", 8, &ps), -EINVAL);
    /* an escape cut by the end of the given length, even if bytes follow */
    assert_int_equal(http_urlencoded_parse("a=%41", 4, &A, 8, &ps), -EINVAL);
    assert_int_equal(http_urlencoded_parse("a=%41", 5, &A, 8, &ps), 0);
    assert_string_equal(http_params_get(&ps, "a"), "A");
}

static void test_form_nul(void **state)
{
    struct http_params ps;

    (void)state;
    /* %00 in a value is kept, and value_len tells the real length */
    assert_int_equal(parse("a=x%00y", 8, &ps), 0);
    assert_int_equal(ps.items[0].value_len, 3);
    assert_memory_equal(ps.items[0].value, "x\0y", 4);
    /* ... but never in a name, where it would truncate comparisons */
    assert_int_equal(parse("client_id%00x=1", 8, &ps), -EINVAL);
    /* raw NUL bytes inside the given length are data too */
    assert_int_equal(http_urlencoded_parse("a=\0b", 4, &A, 8, &ps), 0);
    assert_int_equal(ps.items[0].value_len, 2);
}

static void test_form_too_many(void **state)
{
    struct http_params ps;
    char big[HTTP_MAX_PARAMS * 4 + 16];
    size_t i, n = 0;

    (void)state;
    assert_int_equal(parse("a=1&b=2&c=3", 3, &ps), 0);
    assert_int_equal(ps.n, 3);
    assert_int_equal(parse("a=1&b=2&c=3&d=4", 3, &ps), -E2BIG);
    assert_int_equal(ps.n, 0);
    /* empty pairs do not count */
    assert_int_equal(parse("a=1&&&&b=2&&&c=3", 3, &ps), 0);
    assert_int_equal(parse("x", 0, &ps), -E2BIG);

    for (i = 0; i <= HTTP_MAX_PARAMS; i++)
        n += (size_t)snprintf(big + n, sizeof big - n, "%s%c", i ? "&" : "", 'a' + (int)(i % 26));
    assert_int_equal(http_urlencoded_parse(big, n, &A, HTTP_MAX_PARAMS, &ps), -E2BIG);
    assert_int_equal(http_urlencoded_parse(big, n - 2, &A, HTTP_MAX_PARAMS, &ps), 0);
    assert_int_equal(ps.n, HTTP_MAX_PARAMS);
}

/* --------------------------------------------------------------- cookies */

static int cparse(const char *s, size_t max, struct http_params *out)
{
    return http_cookie_parse(s, strlen(s), &A, max, out);
}

static void test_cookie_basic(void **state)
{
    struct http_params ps;

    (void)state;
    assert_int_equal(cparse("a=b; c=d", 8, &ps), 0);
    assert_int_equal(ps.n, 2);
    assert_string_equal(http_params_get(&ps, "a"), "b");
    assert_string_equal(http_params_get(&ps, "c"), "d");

    assert_int_equal(cparse("", 8, &ps), 0);
    assert_int_equal(ps.n, 0);

    /* whitespace everywhere, empty pairs, trailing ';' */
    assert_int_equal(cparse("  sid = abc ;;\tx=1 ; ", 8, &ps), 0);
    assert_int_equal(ps.n, 2);
    assert_string_equal(http_params_get(&ps, "sid"), "abc");
    assert_string_equal(http_params_get(&ps, "x"), "1");
    assert_int_equal(ps.items[0].value_len, 3);

    /* values are not decoded and may contain '=' and quotes */
    assert_int_equal(cparse("t=a%20b==; q=\"v\"; e=", 8, &ps), 0);
    assert_string_equal(http_params_get(&ps, "t"), "a%20b==");
    assert_string_equal(http_params_get(&ps, "q"), "\"v\"");
    assert_string_equal(http_params_get(&ps, "e"), "");
}

static void test_cookie_rejects(void **state)
{
    struct http_params ps;

    (void)state;
    /* names with separators, empty names and pairs without '=' are dropped */
    assert_int_equal(cparse("a b=1; (x)=2; =3; noeq; c@d=4; ok=5; e,f=6; g/h=7", 16, &ps), 0);
    assert_int_equal(ps.n, 1);
    assert_string_equal(ps.items[0].name, "ok");
    assert_string_equal(ps.items[0].value, "5");
    /* a control byte in the value drops the pair */
    assert_int_equal(cparse("a=x\x01y; b=2", 8, &ps), 0);
    assert_int_equal(ps.n, 1);
    assert_string_equal(ps.items[0].name, "b");
    /* token characters are fine in names */
    assert_int_equal(cparse("__Host-s.i_d!#$%&'*+^`|~=v", 8, &ps), 0);
    assert_int_equal(ps.n, 1);
    assert_string_equal(http_params_get(&ps, "__Host-s.i_d!#$%&'*+^`|~"), "v");
    /* duplicates are kept in order */
    assert_int_equal(cparse("d=1; d=2", 8, &ps), 0);
    assert_int_equal(ps.n, 2);
    assert_string_equal(http_params_get(&ps, "d"), "1");
}

static void test_cookie_limit(void **state)
{
    struct http_params ps;

    (void)state;
    assert_int_equal(cparse("a=1; b=2; c=3", 3, &ps), 0);
    assert_int_equal(ps.n, 3);
    assert_int_equal(cparse("a=1; b=2; c=3; d=4", 3, &ps), -E2BIG);
    assert_int_equal(ps.n, 0);
    /* dropped pairs do not count against the limit */
    assert_int_equal(cparse("a=1; x y=0; b=2; c=3", 3, &ps), 0);
    assert_int_equal(ps.n, 3);
    /* more than the initial capacity: the array grows correctly */
    assert_int_equal(cparse("a=1;b=2;c=3;d=4;e=5;f=6;g=7;h=8;i=9;j=10;k=11", 20, &ps), 0);
    assert_int_equal(ps.n, 11);
    assert_string_equal(http_params_get(&ps, "a"), "1");
    assert_string_equal(http_params_get(&ps, "k"), "11");
    /* length-bounded: bytes after n are not read */
    assert_int_equal(http_cookie_parse("a=1; b=2", 3, &A, 8, &ps), 0);
    assert_int_equal(ps.n, 1);
    assert_string_equal(ps.items[0].value, "1");
}

/* ---------------------------------------------------------------- tenant */

static void test_tenant_names(void **state)
{
    char n63[64], n64[65];

    (void)state;
    assert_true(http_tenant_name_valid("acme", 4));
    assert_true(http_tenant_name_valid("a", 1));
    assert_true(http_tenant_name_valid("0", 1));
    assert_true(http_tenant_name_valid("a-b-9", 5));
    assert_true(http_tenant_name_valid("default", 7));
    assert_false(http_tenant_name_valid("", 0));
    assert_false(http_tenant_name_valid(NULL, 0));
    assert_false(http_tenant_name_valid("-a", 2));
    assert_false(http_tenant_name_valid("a-", 2));
    assert_false(http_tenant_name_valid("-", 1));
    assert_false(http_tenant_name_valid("Acme", 4));
    assert_false(http_tenant_name_valid("Bad_Name", 8));
    assert_false(http_tenant_name_valid("a.b", 3));
    assert_false(http_tenant_name_valid("a b", 3));
    assert_false(http_tenant_name_valid("a%2f", 4));
    assert_false(http_tenant_name_valid("a\0b", 3));
    /* length-bounded: "acme-" cut to "acme" is valid */
    assert_true(http_tenant_name_valid("acme-", 4));

    memset(n63, 'a', 63);
    n63[63] = '\0';
    memset(n64, 'b', 64);
    n64[64] = '\0';
    assert_true(http_tenant_name_valid(n63, 63));
    assert_false(http_tenant_name_valid(n64, 64));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_form_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_form_shapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_form_duplicates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_form_decoding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_form_bad_escapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_form_nul, setup, teardown),
        cmocka_unit_test_setup_teardown(test_form_too_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cookie_basic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cookie_rejects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cookie_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tenant_names, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
