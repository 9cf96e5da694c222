/* Unit tests for core/buf: the hard limit, all-or-nothing appends, JSON escaping. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/buf.h"

static void test_append_and_nul(void **state)
{
    struct buf b;

    buf_init(&b, 100);
    assert_null(b.data);
    assert_string_equal(buf_cstr(&b), "");
    assert_int_equal(buf_str(&b).len, 0);
    assert_int_equal(buf_append(&b, "abc", 3), 0);
    assert_int_equal(b.len, 3);
    assert_int_equal(b.data[3], '\0');
    assert_int_equal(buf_puts(&b, "def"), 0);
    assert_int_equal(buf_putc(&b, 'g'), 0);
    assert_string_equal(buf_cstr(&b), "abcdefg");
    assert_int_equal(buf_str(&b).len, 7);
    assert_memory_equal(buf_str(&b).p, "abcdefg", 7);
    /* embedded NUL bytes are kept and counted */
    assert_int_equal(buf_append(&b, "x\0y", 3), 0);
    assert_int_equal(b.len, 10);
    assert_memory_equal(b.data + 7, "x\0y", 4);
    buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.limit, 100);
}

static void test_limit_exact(void **state)
{
    struct buf b;
    char big[64];

    memset(big, 'z', sizeof big);
    buf_init(&b, 10);
    assert_int_equal(buf_append(&b, big, 10), 0);
    assert_int_equal(b.len, 10);
    assert_true(b.cap <= 11);
    assert_int_equal(buf_putc(&b, 'a'), -E2BIG);
    assert_int_equal(buf_append(&b, big, 1), -E2BIG);
    assert_int_equal(b.len, 10);
    assert_memory_equal(b.data, big, 10);
    assert_int_equal(b.data[10], '\0');
    /* zero-length appends always succeed */
    assert_int_equal(buf_append(&b, big, 0), 0);
    buf_free(&b);

    /* one over-long append fails without touching what was there */
    buf_init(&b, 10);
    assert_int_equal(buf_puts(&b, "hello"), 0);
    assert_int_equal(buf_append(&b, big, 6), -E2BIG);
    assert_string_equal(buf_cstr(&b), "hello");
    assert_int_equal(buf_append(&b, big, 5), 0);
    assert_int_equal(b.len, 10);
    buf_free(&b);

    /* limit 0: only empty appends */
    buf_init(&b, 0);
    assert_int_equal(buf_putc(&b, 'a'), -E2BIG);
    assert_int_equal(buf_append(&b, "", 0), 0);
    assert_non_null(b.data);
    assert_string_equal(buf_cstr(&b), "");
    assert_true(b.cap <= 1);
    buf_free(&b);
}

static void test_growth_capped(void **state)
{
    struct buf b;
    size_t i;

    buf_init(&b, 1000);
    for (i = 0; i < 1000; i++) {
        assert_int_equal(buf_putc(&b, (char)('a' + i % 26)), 0);
        assert_true(b.cap >= b.len + 1);
        assert_true(b.cap <= 1001);
        assert_int_equal(b.data[b.len], '\0');
    }
    assert_int_equal(b.cap, 1001);
    assert_int_equal(buf_putc(&b, 'x'), -E2BIG);
    assert_int_equal(b.len, 1000);
    buf_free(&b);

    /* growth is geometric: few reallocations for many appends */
    buf_init(&b, 1 << 20);
    {
        size_t caps = 0, last = 0;
        for (i = 0; i < (1 << 20); i++) {
            assert_int_equal(buf_putc(&b, 'q'), 0);
            if (b.cap != last) {
                caps++;
                last = b.cap;
            }
        }
        assert_true(caps < 32);
        assert_int_equal(b.cap, (1 << 20) + 1);
    }
    buf_free(&b);
}

static void test_printf(void **state)
{
    struct buf b;

    buf_init(&b, 20);
    assert_int_equal(buf_printf(&b, "%d-%s", 42, "x"), 0);
    assert_string_equal(buf_cstr(&b), "42-x");
    assert_int_equal(buf_printf(&b, "%s", "0123456789"), 0);
    assert_string_equal(buf_cstr(&b), "42-x0123456789");
    /* 14 + 7 = 21 > 20: refused, unchanged (including the NUL position) */
    assert_int_equal(buf_printf(&b, "%s", "abcdefg"), -E2BIG);
    assert_int_equal(b.len, 14);
    assert_string_equal(buf_cstr(&b), "42-x0123456789");
    assert_int_equal(buf_printf(&b, "%s", "abcdef"), 0);
    assert_int_equal(b.len, 20);
    assert_string_equal(buf_cstr(&b), "42-x0123456789abcdef");
    assert_int_equal(buf_printf(&b, "%s", ""), 0);
    assert_int_equal(buf_printf(&b, "x"), -E2BIG);
    buf_free(&b);

    /* printf that needs the buffer to grow several times */
    buf_init(&b, 10000);
    assert_int_equal(buf_printf(&b, "%5000d|", 7), 0);
    assert_int_equal(b.len, 5001);
    assert_int_equal(b.data[4999], '7');
    assert_int_equal(b.data[5000], '|');
    buf_free(&b);

    /* printf into an empty buffer whose first try would exceed the limit */
    buf_init(&b, 3);
    assert_int_equal(buf_printf(&b, "%s", "abcd"), -E2BIG);
    assert_int_equal(b.len, 0);
    assert_string_equal(buf_cstr(&b), "");
    buf_free(&b);
}

static void test_json_escape(void **state)
{
    struct buf b;
    const char in[] = "a\"b\\c\n\r\t\b\f\x01\x1f/\x7f";

    buf_init(&b, 1000);
    assert_int_equal(buf_json_escape(&b, in, sizeof in - 1), 0);
    assert_string_equal(buf_cstr(&b), "a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\\u001f/\x7f");
    buf_reset(&b);

    /* NUL in the middle is escaped, not a terminator */
    assert_int_equal(buf_json_escape(&b, "x\0y", 3), 0);
    assert_string_equal(buf_cstr(&b), "x\\u0000y");
    buf_reset(&b);

    /* valid UTF-8 passes through untouched: é, €, 😀 */
    assert_int_equal(buf_json_escape(&b, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9), 0);
    assert_string_equal(buf_cstr(&b), "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    buf_reset(&b);

    /* invalid UTF-8 (lone continuation, overlong, surrogate, truncated) -> U+FFFD */
    assert_int_equal(buf_json_escape(&b, "a\x80" "b", 3), 0);
    assert_string_equal(buf_cstr(&b), "a\\ufffdb");
    buf_reset(&b);
    assert_int_equal(buf_json_escape(&b, "\xc0\xaf", 2), 0);
    assert_string_equal(buf_cstr(&b), "\\ufffd\\ufffd");
    buf_reset(&b);
    assert_int_equal(buf_json_escape(&b, "\xed\xa0\x80", 3), 0);
    assert_string_equal(buf_cstr(&b), "\\ufffd\\ufffd\\ufffd");
    buf_reset(&b);
    assert_int_equal(buf_json_escape(&b, "\xe2\x82", 2), 0);
    assert_string_equal(buf_cstr(&b), "\\ufffd\\ufffd");
    buf_free(&b);

    /* escaping that does not fit leaves the buffer as it was */
    buf_init(&b, 7);
    assert_int_equal(buf_puts(&b, "ab"), 0);
    assert_int_equal(buf_json_escape(&b, "c\"d\"", 4), -E2BIG);  /* needs 2 + 6 */
    assert_string_equal(buf_cstr(&b), "ab");
    assert_int_equal(b.len, 2);
    assert_int_equal(buf_json_escape(&b, "c\"d", 3), 0);          /* needs 2 + 4 */
    assert_string_equal(buf_cstr(&b), "abc\\\"d");
    buf_free(&b);
}

static void test_reset_steal(void **state)
{
    struct buf b;
    char *s;
    size_t cap;

    buf_init(&b, 50);
    assert_int_equal(buf_puts(&b, "hello"), 0);
    cap = b.cap;
    buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, cap);
    assert_string_equal(buf_cstr(&b), "");
    assert_int_equal(buf_puts(&b, "world"), 0);
    s = buf_steal(&b);
    assert_string_equal(s, "world");
    free(s);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.limit, 50);
    /* stealing an empty buffer yields an empty string the caller frees */
    s = buf_steal(&b);
    assert_non_null(s);
    assert_string_equal(s, "");
    free(s);
    /* the buffer is usable again after steal */
    assert_int_equal(buf_puts(&b, "again"), 0);
    assert_string_equal(buf_cstr(&b), "again");
    buf_free(&b);
    buf_free(&b);   /* double free of an emptied buffer is harmless */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_and_nul),
        cmocka_unit_test(test_limit_exact),
        cmocka_unit_test(test_growth_capped),
        cmocka_unit_test(test_printf),
        cmocka_unit_test(test_json_escape),
        cmocka_unit_test(test_reset_steal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
