/* Unit tests for core/crc32c: published vectors, incremental use, hw == sw. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/crc32c.h"

typedef uint32_t (*crc_fn)(uint32_t, const void *, size_t);

static void check_vectors(crc_fn f)
{
    unsigned char buf[32];
    int i;

    assert_int_equal(f(0, "", 0), 0);
    assert_int_equal(f(0, "123456789", 9), 0xE3069283u);
    /* RFC 3720 (iSCSI) B.4 */
    memset(buf, 0, sizeof buf);
    assert_int_equal(f(0, buf, sizeof buf), 0x8A9136AAu);
    memset(buf, 0xff, sizeof buf);
    assert_int_equal(f(0, buf, sizeof buf), 0x62A8AB43u);
    for (i = 0; i < 32; i++)
        buf[i] = (unsigned char)i;
    assert_int_equal(f(0, buf, sizeof buf), 0x46DD794Eu);
    for (i = 0; i < 32; i++)
        buf[i] = (unsigned char)(31 - i);
    assert_int_equal(f(0, buf, sizeof buf), 0x113FDB5Cu);
}

static void test_vectors_dispatch(void **state)
{
    check_vectors(crc32c);
}

static void test_vectors_software(void **state)
{
    check_vectors(crc32c_sw);
}

static void test_vectors_hardware(void **state)
{
    check_vectors(crc32c_hw);
}

static void test_incremental(void **state)
{
    unsigned char data[300];
    size_t i, split, split2;
    uint32_t whole;

    for (i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(i * 131 + 7);
    whole = crc32c(0, data, sizeof data);
    for (split = 0; split <= sizeof data; split++) {
        uint32_t c = crc32c(0, data, split);
        assert_int_equal(crc32c(c, data + split, sizeof data - split), whole);
        c = crc32c_sw(0, data, split);
        assert_int_equal(crc32c_sw(c, data + split, sizeof data - split), whole);
    }
    /* three pieces, mixing implementations */
    for (split = 0; split < 40; split++) {
        for (split2 = split; split2 < 80; split2 += 3) {
            uint32_t c = crc32c_sw(0, data, split);
            c = crc32c_hw(c, data + split, split2 - split);
            c = crc32c(c, data + split2, sizeof data - split2);
            assert_int_equal(c, whole);
        }
    }
    /* byte at a time */
    {
        uint32_t c = 0;
        for (i = 0; i < sizeof data; i++)
            c = crc32c(c, data + i, 1);
        assert_int_equal(c, whole);
    }
}

static void test_hw_equals_sw(void **state)
{
    unsigned char *data = malloc(4096 + 16);
    uint32_t seed = 12345;
    size_t i, off, len;

    for (i = 0; i < 4096 + 16; i++) {
        seed = seed * 1103515245u + 12345u;
        data[i] = (unsigned char)(seed >> 16);
    }
    /* every alignment and many lengths, so all head/body/tail paths run */
    for (off = 0; off < 16; off++) {
        for (len = 0; len < 300; len++) {
            assert_int_equal(crc32c_hw(0, data + off, len), crc32c_sw(0, data + off, len));
            assert_int_equal(crc32c_hw(0xdeadbeef, data + off, len),
                             crc32c_sw(0xdeadbeef, data + off, len));
        }
        assert_int_equal(crc32c_hw(0, data + off, 4096), crc32c_sw(0, data + off, 4096));
        assert_int_equal(crc32c(0, data + off, 4096), crc32c_sw(0, data + off, 4096));
    }
    /* a single changed bit changes the checksum */
    {
        uint32_t c = crc32c(0, data, 4096);
        data[1000] ^= 0x10;
        assert_int_not_equal(crc32c(0, data, 4096), c);
    }
    if (!crc32c_hw_available())
        print_message("note: no SSE4.2 here; hardware path fell back to software\n");
    free(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors_dispatch),
        cmocka_unit_test(test_vectors_software),
        cmocka_unit_test(test_vectors_hardware),
        cmocka_unit_test(test_incremental),
        cmocka_unit_test(test_hw_equals_sw),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
