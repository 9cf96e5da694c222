/* Unit tests for core/timeutil. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "core/timeutil.h"

static void test_rfc3339(void **state)
{
    char out[32];

    assert_string_equal(time_rfc3339(0, out, sizeof out, 1), "1970-01-01T00:00:00.000000Z");
    assert_string_equal(time_rfc3339(0, out, sizeof out, 0), "1970-01-01T00:00:00Z");
    assert_string_equal(time_rfc3339(INT64_C(1795634401123456), out, sizeof out, 1),
                        "2026-11-25T19:20:01.123456Z");
    assert_string_equal(time_rfc3339(INT64_C(1795634401123456), out, sizeof out, 0),
                        "2026-11-25T19:20:01Z");
    /* leap day, last microsecond */
    assert_string_equal(time_rfc3339(INT64_C(951868799999999), out, sizeof out, 1),
                        "2000-02-29T23:59:59.999999Z");
    /* before the epoch: floor, not truncation toward zero */
    assert_string_equal(time_rfc3339(-1, out, sizeof out, 1), "1969-12-31T23:59:59.999999Z");
    assert_string_equal(time_rfc3339(-1000000, out, sizeof out, 1), "1969-12-31T23:59:59.000000Z");
    assert_string_equal(time_rfc3339(-1, out, sizeof out, 0), "1969-12-31T23:59:59Z");
    assert_ptr_equal(time_rfc3339(5, out, sizeof out, 1), out);
    /* a short buffer is truncated, never overrun */
    {
        char small[11];
        memset(small, 'x', sizeof small);
        time_rfc3339(0, small, sizeof small, 1);
        assert_string_equal(small, "1970-01-01");
    }
}

static void test_clocks(void **state)
{
    int64_t m0 = time_mono_us(), m1, w = time_wall_us();
    int64_t now = (int64_t)time(NULL);

    assert_true(m0 > 0);
    assert_true(w / 1000000 >= now - 2 && w / 1000000 <= now + 2);
    time_sleep_us(20000);
    m1 = time_mono_us();
    assert_true(m1 - m0 >= 20000);
    assert_true(m1 - m0 < 5000000);
    time_sleep_us(0);
    time_sleep_us(-5);
    assert_true(time_mono_us() >= m1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc3339),
        cmocka_unit_test(test_clocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
