/*
 * test_repl_history — the chained hash against an independent SHA-256 of the
 * documented byte layout, and the comparison of two nodes' epoch histories
 * that finds their last common position (rejoin and rewind, DESIGN.md §5.5).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "repl/log.h"

/* ---------------------------------------------------------------- hash */

/* SHA-256 over h(n-1) || u64be(epoch) || u64be(lsn) || u64be(commit_us) || cs,
 * assembled byte by byte here rather than through repl_hash_next. */
static void reference_hash(const uint8_t prev[32], uint64_t epoch, uint64_t lsn, uint64_t us,
                           const char *cs, size_t len, uint8_t out[32])
{
    uint8_t buf[32 + 24 + 256];
    size_t k = 0;
    unsigned int n = 0;
    uint64_t f[3] = { epoch, lsn, us };

    assert_true(len <= 256);
    memcpy(buf, prev, 32);
    k = 32;
    for (int i = 0; i < 3; i++)
        for (int b = 7; b >= 0; b--)
            buf[k++] = (uint8_t)(f[i] >> (8 * b));
    memcpy(buf + k, cs, len);
    k += len;
    assert_int_equal(EVP_Digest(buf, k, out, &n, EVP_sha256(), NULL), 1);
    assert_int_equal(n, 32);
}

static void test_hash_matches_layout(void **state)
{
    uint8_t zero[32] = { 0 }, h1[32], r1[32], h2[32], r2[32];

    repl_hash_next(zero, 1, 1, 1700000000000000ull, "abc", 3, h1);
    reference_hash(zero, 1, 1, 1700000000000000ull, "abc", 3, r1);
    assert_memory_equal(h1, r1, 32);

    repl_hash_next(h1, 2, 2, 42, "", 0, h2);
    reference_hash(r1, 2, 2, 42, "", 0, r2);
    assert_memory_equal(h2, r2, 32);
    /* the chain really chains: a different predecessor changes the result */
    repl_hash_next(zero, 2, 2, 42, "", 0, r2);
    assert_memory_not_equal(h2, r2, 32);
}

static void test_hash_every_field_counts(void **state)
{
    uint8_t zero[32] = { 0 }, base[32], h[32];

    repl_hash_next(zero, 3, 10, 1000, "changes", 7, base);
    repl_hash_next(zero, 4, 10, 1000, "changes", 7, h);
    assert_memory_not_equal(base, h, 32);
    repl_hash_next(zero, 3, 11, 1000, "changes", 7, h);
    assert_memory_not_equal(base, h, 32);
    repl_hash_next(zero, 3, 10, 1001, "changes", 7, h);
    assert_memory_not_equal(base, h, 32);
    repl_hash_next(zero, 3, 10, 1000, "chang3s", 7, h);
    assert_memory_not_equal(base, h, 32);
    repl_hash_next(zero, 3, 10, 1000, "change", 6, h);
    assert_memory_not_equal(base, h, 32);
    /* epoch and lsn are not interchangeable */
    repl_hash_next(zero, 10, 3, 1000, "changes", 7, h);
    assert_memory_not_equal(base, h, 32);
    repl_hash_next(zero, 3, 10, 1000, "changes", 7, h);
    assert_memory_equal(base, h, 32);
}

static void test_hash_hex(void **state)
{
    uint8_t h[32];
    char hex[65];

    for (int i = 0; i < 32; i++)
        h[i] = (uint8_t)(i * 17);
    repl_hash_hex(h, hex);
    assert_int_equal(strlen(hex), 64);
    assert_memory_equal(hex, "0011223344556677", 16);
    assert_string_equal(hex + 60, "fe0f");   /* 30*17 = 0x1fe, 31*17 = 0x20f */
}

/* ------------------------------------------------------------- history */

#define H(...) ((const struct repl_epoch_start[]){ __VA_ARGS__ })

static void test_common_same_history(void **state)
{
    /* a standby behind its active in the same epoch: common = the standby's tip */
    assert_int_equal(repl_history_common(H({ 1, 1 }), 1, 50, H({ 1, 1 }), 1, 80), 50);
    assert_int_equal(repl_history_common(H({ 1, 1 }), 1, 80, H({ 1, 1 }), 1, 50), 50);
    /* identical */
    assert_int_equal(repl_history_common(H({ 1, 1 }, { 2, 40 }), 2, 90, H({ 1, 1 }, { 2, 40 }), 2, 90), 90);
}

static void test_common_after_failover(void **state)
{
    /* old primary a wrote 150..180 in epoch 2 after b was promoted at 150 */
    uint64_t l = repl_history_common(H({ 1, 1 }, { 2, 100 }), 2, 180, H({ 1, 1 }, { 2, 100 }, { 3, 150 }), 3, 200);
    assert_int_equal(l, 149);
    /* symmetric */
    l = repl_history_common(H({ 1, 1 }, { 2, 100 }, { 3, 150 }), 3, 200, H({ 1, 1 }, { 2, 100 }), 2, 180);
    assert_int_equal(l, 149);
    /* async loss: a kept writing in epoch 1, b promoted to epoch 2 at 81 */
    assert_int_equal(repl_history_common(H({ 1, 1 }), 1, 90, H({ 1, 1 }, { 2, 81 }), 2, 95), 80);
    /* nothing divergent: a stopped exactly where b took over */
    assert_int_equal(repl_history_common(H({ 1, 1 }), 1, 80, H({ 1, 1 }, { 2, 81 }), 2, 95), 80);
}

static void test_common_disagreeing_epochs(void **state)
{
    /* both promoted to epoch 2 from different points (a bug or a manual
     * mistake): only epoch 1 up to the earlier switch is common */
    assert_int_equal(repl_history_common(H({ 1, 1 }, { 2, 60 }), 2, 70, H({ 1, 1 }, { 2, 50 }), 2, 90), 49);
    /* different first epochs: nothing in common */
    assert_int_equal(repl_history_common(H({ 1, 1 }), 1, 10, H({ 2, 1 }), 1, 10), 0);
    assert_int_equal(repl_history_common(H({ 1, 1 }), 1, 10, H({ 1, 5 }), 1, 10), 0);
}

static void test_common_empty(void **state)
{
    /* an empty standby shares nothing */
    assert_int_equal(repl_history_common(NULL, 0, 0, H({ 1, 1 }), 1, 10), 0);
    assert_int_equal(repl_history_common(H({ 1, 1 }), 1, 10, NULL, 0, 0), 0);
    /* a promoted node whose new epoch holds no record yet */
    assert_int_equal(repl_history_common(H({ 1, 1 }), 1, 30, H({ 1, 1 }, { 2, 31 }), 2, 30), 30);
    /* an epoch that started and ended without a record (start_lsn repeats) */
    assert_int_equal(repl_history_common(H({ 1, 1 }, { 2, 31 }, { 3, 31 }), 3, 40,
                                         H({ 1, 1 }, { 2, 31 }, { 3, 31 }), 3, 35), 35);
    assert_int_equal(repl_history_common(H({ 1, 1 }, { 2, 31 }), 2, 40,
                                         H({ 1, 1 }, { 2, 31 }, { 3, 31 }), 3, 35), 30);
}

static void test_common_skips_epochs_without_records(void **state)
{
    /* b was promoted at tip 1 and demoted before writing (its epoch 2 is
     * empty); a was then promoted to epoch 3 and wrote 2..392, which b
     * applied (learning epoch 3 from the records). Both hold the same 392
     * records: nothing is divergent (this used to answer 1, and b exported
     * and rewound 391 transactions it already had). */
    assert_int_equal(repl_history_common(H({ 1, 1 }, { 2, 2 }, { 3, 2 }), 3, 392, H({ 1, 1 }, { 3, 2 }), 2, 392), 392);
    assert_int_equal(repl_history_common(H({ 1, 1 }, { 3, 2 }), 2, 392, H({ 1, 1 }, { 2, 2 }, { 3, 2 }), 3, 392), 392);
    /* the standby behind: its own tip */
    assert_int_equal(repl_history_common(H({ 1, 1 }, { 2, 2 }, { 3, 2 }), 3, 300, H({ 1, 1 }, { 3, 2 }), 2, 392), 300);
    /* several empty epochs in a row, on both sides, different ones */
    assert_int_equal(repl_history_common(H({ 1, 1 }, { 2, 10 }, { 3, 10 }, { 5, 10 }), 4, 60,
                                         H({ 1, 1 }, { 4, 10 }, { 5, 10 }), 3, 50), 50);
    /* an empty epoch does not hide a real divergence after it: a wrote
     * 10..20 in epoch 4, b 10..30 in epoch 5 */
    assert_int_equal(repl_history_common(H({ 1, 1 }, { 2, 10 }, { 4, 10 }), 3, 20,
                                         H({ 1, 1 }, { 5, 10 }), 2, 30), 9);
    /* a trailing empty epoch (promoted, nothing written yet) on both sides */
    assert_int_equal(repl_history_common(H({ 1, 1 }, { 2, 41 }), 2, 40, H({ 1, 1 }, { 3, 41 }), 2, 40), 40);
    /* nothing written at all yet: nothing in common */
    assert_int_equal(repl_history_common(H({ 1, 1 }), 1, 0, H({ 1, 1 }), 1, 10), 0);
}

static void test_top_epoch(void **state)
{
    assert_int_equal(repl_history_top_epoch(NULL, 0, 0), 0);
    assert_int_equal(repl_history_top_epoch(H({ 1, 1 }, { 4, 9 }), 2, 3), 4);
    assert_int_equal(repl_history_top_epoch(H({ 1, 1 }), 1, 5), 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_matches_layout),
        cmocka_unit_test(test_hash_every_field_counts),
        cmocka_unit_test(test_hash_hex),
        cmocka_unit_test(test_common_same_history),
        cmocka_unit_test(test_common_after_failover),
        cmocka_unit_test(test_common_disagreeing_epochs),
        cmocka_unit_test(test_common_empty),
        cmocka_unit_test(test_common_skips_epochs_without_records),
        cmocka_unit_test(test_top_epoch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
