/* Unit tests for core/rand and core/uuid. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/base64.h"
#include "core/rand.h"
#include "core/uuid.h"

static void test_rand_bytes(void **state)
{
    unsigned char a[64], b[64], zero[64] = { 0 };

    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    rand_bytes(a, sizeof a);
    rand_bytes(b, sizeof b);
    /* 2^-512 chance of a false failure */
    assert_memory_not_equal(a, zero, sizeof a);
    assert_memory_not_equal(a, b, sizeof a);
    rand_bytes(a, 0);
    assert_true(rand_u64() != rand_u64() || rand_u64() != rand_u64());

    /* a large request (getrandom returns at most 32 MiB - 1 per call) */
    {
        size_t n = 1 << 20, i, zeros = 0;
        unsigned char *big = calloc(1, n);
        rand_bytes(big, n);
        for (i = 0; i < n; i++)
            zeros += big[i] == 0;
        /* expected n/256 = 4096 */
        assert_true(zeros > 3500 && zeros < 4700);
        free(big);
    }
}

static void test_rand_range(void **state)
{
    unsigned counts[6] = { 0 };
    int i;

    for (i = 0; i < 1000; i++)
        assert_int_equal(rand_range(1), 0);
    for (i = 0; i < 60000; i++) {
        uint64_t r = rand_range(6);
        assert_true(r < 6);
        counts[r]++;
    }
    /* each bucket expects 10000, sd ~91; 600 is > 6 sd */
    for (i = 0; i < 6; i++)
        assert_true(counts[i] > 9400 && counts[i] < 10600);
    for (i = 0; i < 1000; i++) {
        assert_true(rand_range(UINT64_MAX) < UINT64_MAX);
        assert_true(rand_range((UINT64_C(1) << 63) + 1) <= (UINT64_C(1) << 63));
        assert_true(rand_range(2) < 2);
    }
    /* with n = 2^63 + 1 almost half the draws are rejected; values above
     * 2^62 must still appear, showing the range is not folded */
    {
        int high = 0;
        for (i = 0; i < 200; i++)
            high += rand_range((UINT64_C(1) << 63) + 1) > (UINT64_C(1) << 62);
        assert_true(high > 50);
    }
}

static void test_rand_token(void **state)
{
    char tok[B64URL_ENCLEN(100)];
    char tok2[B64URL_ENCLEN(32)];
    size_t nbytes, i;

    for (nbytes = 0; nbytes <= 100; nbytes += 7) {
        unsigned char dec[B64_DECLEN(B64URL_ENCLEN(100))];
        size_t n;

        memset(tok, '#', sizeof tok);
        rand_token(tok, nbytes);
        assert_int_equal(strlen(tok), (nbytes * 4 + 2) / 3);
        for (i = 0; tok[i]; i++)
            assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
                                   tok[i]));
        assert_int_equal(b64url_decode(tok, strlen(tok), dec, &n), 0);
        assert_int_equal(n, nbytes);
    }
    rand_token(tok, 32);
    rand_token(tok2, 32);
    assert_string_not_equal(tok, tok2);
}

static int cmp_uuid(const void *a, const void *b)
{
    return memcmp(a, b, UUID_STRLEN + 1);
}

static void test_uuid_format(void **state)
{
    enum { N = 10000 };
    char (*ids)[UUID_STRLEN + 1] = calloc(N, sizeof *ids);
    size_t i, j;

    for (i = 0; i < N; i++) {
        char *u = ids[i];

        uuid_v4(u);
        assert_int_equal(strlen(u), UUID_STRLEN);
        assert_true(uuid_valid(u, strlen(u)));
        for (j = 0; j < UUID_STRLEN; j++) {
            if (j == 8 || j == 13 || j == 18 || j == 23)
                assert_int_equal(u[j], '-');
            else
                assert_non_null(strchr("0123456789abcdef", u[j]));  /* lowercase */
        }
        assert_int_equal(u[14], '4');                        /* version */
        assert_non_null(strchr("89ab", u[19]));              /* variant 10xx */
    }
    qsort(ids, N, sizeof *ids, cmp_uuid);
    for (i = 1; i < N; i++)
        assert_string_not_equal(ids[i - 1], ids[i]);
    free(ids);
}

static void test_uuid_valid(void **state)
{
    static const char *good[] = {
        "123e4567-e89b-12d3-a456-426614174000",
        "00000000-0000-0000-0000-000000000000",
        "A987FBC9-4BED-4078-8F07-9141BA07C9F3",
    };
    static const char *bad[] = {
        "123e4567e89b12d3a456426614174000",
        "123e4567-e89b-12d3-a456-42661417400",
        "123e4567-e89b-12d3-a456-4266141740000",
        "123e4567-e89b-12d3-a456_426614174000",
        "123e4567-e89b-12d3-a4560426614174000",
        "g23e4567-e89b-12d3-a456-426614174000",
        "{23e4567-e89b-12d3-a456-42661417400}",
        "123e4567 e89b-12d3-a456-426614174000",
        "",
    };
    size_t i;

    for (i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_true(uuid_valid(good[i], strlen(good[i])));
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(uuid_valid(bad[i], strlen(bad[i])));
    /* length is the view's, not strlen */
    assert_false(uuid_valid(good[0], 35));
    assert_true(uuid_valid("123e4567-e89b-12d3-a456-426614174000trailing", 36));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rand_bytes),
        cmocka_unit_test(test_rand_range),
        cmocka_unit_test(test_rand_token),
        cmocka_unit_test(test_uuid_format),
        cmocka_unit_test(test_uuid_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
