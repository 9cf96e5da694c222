/* Unit tests for core/str: views, parsing, constant-time comparison. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/str.h"
#include "core/xmalloc.h"

static void test_from_cstr_eq(void **state)
{
    struct str s = str_from_cstr("hello");
    struct str n = str_from_cstr(NULL);

    assert_int_equal(s.len, 5);
    assert_null(n.p);
    assert_int_equal(n.len, 0);
    assert_true(str_eq(s, STR_LIT("hello")));
    assert_false(str_eq(s, STR_LIT("hell")));
    assert_false(str_eq(s, STR_LIT("hellO")));
    assert_true(str_eq(STR_NULL, STR_LIT("")));
    assert_true(str_eq_cstr(STR_LIT("abc"), "abc"));
    assert_false(str_eq_cstr(STR_LIT("abc"), "abcd"));
    /* a view into a longer buffer compares only its length */
    assert_true(str_eq_cstr((struct str){ "abcdef", 3 }, "abc"));
    assert_true(str_case_eq(STR_LIT("Content-Type"), STR_LIT("content-TYPE")));
    assert_false(str_case_eq(STR_LIT("Content-Type"), STR_LIT("content-typ")));
    assert_false(str_case_eq(STR_LIT("a["), STR_LIT("A{")));   /* not a bit-5 fold */
    assert_true(str_case_eq_cstr(STR_LIT("BEARER"), "bearer"));
    assert_false(str_case_eq_cstr(STR_LIT("\xc3\x89"), "\xc3\xa9"));  /* ASCII only */
}

static void test_prefix_trim(void **state)
{
    struct str t;

    assert_true(str_has_prefix(STR_LIT("Bearer abc"), "Bearer "));
    assert_true(str_has_prefix(STR_LIT("abc"), ""));
    assert_false(str_has_prefix(STR_LIT("Bear"), "Bearer"));
    assert_false(str_has_prefix(STR_LIT("bearer x"), "Bearer"));

    t = str_trim(STR_LIT(" \t\r\n x y \v\f"));
    assert_true(str_eq_cstr(t, "x y"));
    t = str_trim(STR_LIT("   "));
    assert_int_equal(t.len, 0);
    t = str_trim(STR_NULL);
    assert_int_equal(t.len, 0);
    t = str_trim(STR_LIT("noop"));
    assert_true(str_eq_cstr(t, "noop"));
}

static void test_split(void **state)
{
    struct str h, t;

    assert_true(str_split(STR_LIT("user:pa:ss"), ':', &h, &t));
    assert_true(str_eq_cstr(h, "user"));
    assert_true(str_eq_cstr(t, "pa:ss"));
    assert_true(str_split(STR_LIT(":x"), ':', &h, &t));
    assert_int_equal(h.len, 0);
    assert_true(str_eq_cstr(t, "x"));
    assert_true(str_split(STR_LIT("x:"), ':', &h, &t));
    assert_true(str_eq_cstr(h, "x"));
    assert_int_equal(t.len, 0);
    assert_non_null(t.p);
    assert_false(str_split(STR_LIT("nosep"), ':', &h, &t));
    assert_true(str_eq_cstr(h, "nosep"));
    assert_null(t.p);
    assert_int_equal(t.len, 0);
    /* the separator past the view's length is not seen */
    assert_false(str_split((struct str){ "ab:c", 2 }, ':', &h, &t));
    assert_false(str_split(STR_NULL, ':', &h, &t));
}

static void test_to_i64(void **state)
{
    int64_t v = 12345;

    assert_int_equal(str_to_i64(STR_LIT("0"), 0, 10, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(str_to_i64(STR_LIT("-42"), -100, 100, &v), 0);
    assert_int_equal(v, -42);
    assert_int_equal(str_to_i64(STR_LIT("9223372036854775807"), INT64_MIN, INT64_MAX, &v), 0);
    assert_true(v == INT64_MAX);
    assert_int_equal(str_to_i64(STR_LIT("-9223372036854775808"), INT64_MIN, INT64_MAX, &v), 0);
    assert_true(v == INT64_MIN);
    assert_int_equal(str_to_i64(STR_LIT("9223372036854775808"), INT64_MIN, INT64_MAX, &v), -ERANGE);
    assert_int_equal(str_to_i64(STR_LIT("-9223372036854775809"), INT64_MIN, INT64_MAX, &v), -ERANGE);
    assert_int_equal(str_to_i64(STR_LIT("99999999999999999999999"), INT64_MIN, INT64_MAX, &v), -ERANGE);
    assert_int_equal(str_to_i64(STR_LIT("101"), 0, 100, &v), -ERANGE);
    assert_int_equal(str_to_i64(STR_LIT("-1"), 0, 100, &v), -ERANGE);
    v = 7;
    assert_int_equal(str_to_i64(STR_LIT(""), 0, 100, &v), -EINVAL);
    assert_int_equal(str_to_i64(STR_LIT("-"), -10, 100, &v), -EINVAL);
    assert_int_equal(str_to_i64(STR_LIT("+1"), 0, 100, &v), -EINVAL);
    assert_int_equal(str_to_i64(STR_LIT(" 1"), 0, 100, &v), -EINVAL);
    assert_int_equal(str_to_i64(STR_LIT("1 "), 0, 100, &v), -EINVAL);
    assert_int_equal(str_to_i64(STR_LIT("12a"), 0, 100, &v), -EINVAL);
    assert_int_equal(str_to_i64(STR_LIT("0x10"), 0, 100, &v), -EINVAL);
    assert_int_equal(v, 7);     /* untouched on failure */
    /* only the view's bytes count */
    assert_int_equal(str_to_i64((struct str){ "1234", 2 }, 0, 100, &v), 0);
    assert_int_equal(v, 12);
}

static void test_dup(void **state)
{
    char *d = str_dup((struct str){ "abcdef", 3 });

    assert_string_equal(d, "abc");
    free(d);
    d = str_dup(STR_NULL);
    assert_string_equal(d, "");
    free(d);
}

static void test_ct_eq(void **state)
{
    unsigned char a[64], b[64];
    size_t i;

    for (i = 0; i < sizeof a; i++)
        a[i] = b[i] = (unsigned char)(i * 7);
    assert_true(str_ct_eq(a, sizeof a, b, sizeof b));
    assert_true(str_ct_eq(a, 0, b, 0));
    assert_false(str_ct_eq(a, 10, b, 11));
    /* a difference in any single byte or bit is seen */
    for (i = 0; i < sizeof a; i++) {
        b[i] ^= 0x80;
        assert_false(str_ct_eq(a, sizeof a, b, sizeof b));
        b[i] ^= 0x81;
        assert_false(str_ct_eq(a, sizeof a, b, sizeof b));
        b[i] ^= 0x01;
        assert_true(str_ct_eq(a, sizeof a, b, sizeof b));
    }
}

static void test_xmalloc_helpers(void **state)
{
    char *s = xstrndup("abcdef", 3);
    char *t = xasprintf("%s=%d", "n", 5);
    char *u = xstrndup("ab", 10);
    int *z = xcalloc(16, sizeof *z);
    char *m = xmemdup("x\0y", 3);
    size_t i;

    assert_string_equal(s, "abc");
    assert_string_equal(t, "n=5");
    assert_string_equal(u, "ab");
    for (i = 0; i < 16; i++)
        assert_int_equal(z[i], 0);
    assert_memory_equal(m, "x\0y", 3);
    z = xrealloc(z, 1000 * sizeof *z);
    z[999] = 1;
    free(s);
    free(t);
    free(u);
    free(z);
    free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_from_cstr_eq),
        cmocka_unit_test(test_prefix_trim),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_to_i64),
        cmocka_unit_test(test_dup),
        cmocka_unit_test(test_ct_eq),
        cmocka_unit_test(test_xmalloc_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
