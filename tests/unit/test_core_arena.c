/* Unit tests for core/arena: alignment, zeroing, large blocks, string helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/arena.h"

static void check_zero_and_fill(unsigned char *p, size_t n, unsigned char fill)
{
    size_t i;

    for (i = 0; i < n; i++)
        assert_int_equal(p[i], 0);
    memset(p, fill, n);     /* ASan catches a block that is too small */
}

static void test_alignment_zeroed(void **state)
{
    struct arena a;
    size_t sizes[] = { 0, 1, 3, 15, 16, 17, 31, 100, 1000, 1023, 1025, 3000, 5000, 70000 };
    unsigned char *ptrs[200];
    size_t i, k = 0, want_total = 0;

    arena_init(&a);
    assert_int_equal(a.total, 0);
    for (i = 0; i < 200; i++) {
        size_t n = sizes[i % (sizeof sizes / sizeof sizes[0])];
        unsigned char *p = arena_alloc(&a, n);

        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 16, 0);
        check_zero_and_fill(p, n, (unsigned char)(i + 1));
        ptrs[k++] = p;
        want_total += n;
    }
    assert_int_equal(a.total, want_total);
    /* every allocation kept its own contents: none overlap */
    for (i = 0; i < k; i++) {
        size_t n = sizes[i % (sizeof sizes / sizeof sizes[0])];
        size_t j;
        for (j = 0; j < n; j++)
            assert_int_equal(ptrs[i][j], (unsigned char)(i + 1));
    }
    /* zero-size allocations are still distinct pointers */
    assert_ptr_not_equal(arena_alloc(&a, 0), arena_alloc(&a, 0));
    arena_free(&a);
    assert_null(a.head);
    assert_int_equal(a.total, 0);
}

static void test_large_keeps_small_block(void **state)
{
    struct arena a;
    char *s1, *big, *s2;

    arena_init(&a);
    s1 = arena_alloc(&a, 32);
    big = arena_alloc(&a, 100000);
    s2 = arena_alloc(&a, 32);
    /* the small allocations still share the first block: s2 follows s1 */
    assert_ptr_equal(s2, s1 + 32);
    memset(big, 0xab, 100000);
    assert_int_equal((unsigned char)big[99999], 0xab);
    assert_int_equal(s2[0], 0);
    arena_free(&a);

    /* a big allocation into an empty arena, then many small ones */
    arena_init(&a);
    big = arena_alloc(&a, 1 << 20);
    memset(big, 1, 1 << 20);
    for (int i = 0; i < 10000; i++) {
        char *p = arena_alloc(&a, 24);
        assert_int_equal((uintptr_t)p % 16, 0);
        check_zero_and_fill((unsigned char *)p, 24, 7);
    }
    arena_free(&a);
    arena_free(&a);     /* freeing an empty arena is harmless */
}

static void test_strings(void **state)
{
    struct arena a;
    char *s;

    arena_init(&a);
    s = arena_strdup(&a, "hello");
    assert_string_equal(s, "hello");
    s = arena_strndup(&a, "abcdef", 3);
    assert_string_equal(s, "abc");
    s = arena_strndup(&a, "ab", 10);
    assert_string_equal(s, "ab");
    s = arena_sprintf(&a, "%s-%d-%05.1f", "x", -3, 2.25);
    assert_string_equal(s, "x--3-002.2");
    s = arena_str(&a, (struct str){ "viewXYZ", 4 });
    assert_string_equal(s, "view");
    s = arena_str(&a, STR_NULL);
    assert_string_equal(s, "");
    s = arena_sprintf(&a, "%8000d", 1);
    assert_int_equal(strlen(s), 8000);
    assert_int_equal(s[7999], '1');
    arena_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alignment_zeroed),
        cmocka_unit_test(test_large_keeps_small_block),
        cmocka_unit_test(test_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
