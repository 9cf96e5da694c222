/* Unit tests for core/base64: RFC 4648 §10 vectors and strict rejection. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/base64.h"

struct vec {
    const char *raw;
    const char *std;
    const char *url;
};

/* RFC 4648 §10; the url forms are the same without padding. */
static const struct vec rfc4648[] = {
    { "", "", "" },
    { "f", "Zg==", "Zg" },
    { "fo", "Zm8=", "Zm8" },
    { "foo", "Zm9v", "Zm9v" },
    { "foob", "Zm9vYg==", "Zm9vYg" },
    { "fooba", "Zm9vYmE=", "Zm9vYmE" },
    { "foobar", "Zm9vYmFy", "Zm9vYmFy" },
};

static void test_rfc4648_vectors(void **state)
{
    char enc[64];
    unsigned char dec[64];
    size_t i, n;

    for (i = 0; i < sizeof rfc4648 / sizeof rfc4648[0]; i++) {
        const struct vec *v = &rfc4648[i];
        size_t rawlen = strlen(v->raw);

        assert_int_equal(b64_encode(v->raw, rawlen, enc), strlen(v->std));
        assert_string_equal(enc, v->std);
        assert_int_equal(b64url_encode(v->raw, rawlen, enc), strlen(v->url));
        assert_string_equal(enc, v->url);

        n = 999;
        assert_int_equal(b64_decode(v->std, strlen(v->std), dec, &n), 0);
        assert_int_equal(n, rawlen);
        assert_memory_equal(dec, v->raw, rawlen);
        n = 999;
        assert_int_equal(b64url_decode(v->url, strlen(v->url), dec, &n), 0);
        assert_int_equal(n, rawlen);
        assert_memory_equal(dec, v->raw, rawlen);
    }
}

static void test_alphabets(void **state)
{
    /* 0xfb 0xff 0xbf uses the two alphabet-specific characters */
    const unsigned char raw[] = { 0xfb, 0xff, 0xbf, 0xfb, 0xf0 };
    char enc[16];
    unsigned char dec[16];
    size_t n;

    b64_encode(raw, sizeof raw, enc);
    assert_string_equal(enc, "+/+/+/A=");
    b64url_encode(raw, sizeof raw, enc);
    assert_string_equal(enc, "-_-_-_A");
    assert_int_equal(b64_decode("+/+/+/A=", 8, dec, &n), 0);
    assert_int_equal(n, 5);
    assert_memory_equal(dec, raw, 5);
    assert_int_equal(b64url_decode("-_-_-_A", 7, dec, &n), 0);
    assert_int_equal(n, 5);
    assert_memory_equal(dec, raw, 5);
    /* each decoder refuses the other alphabet */
    assert_int_equal(b64_decode("-_-_-_A=", 8, dec, &n), -EINVAL);
    assert_int_equal(b64url_decode("+/+/+/A", 7, dec, &n), -EINVAL);
}

static void test_reject_invalid(void **state)
{
    static const char *bad_std[] = {
        "Zg",           /* padding missing */
        "Zg=",          /* short padding */
        "Zm8",          /* padding missing */
        "Z===",         /* impossible: one char of data */
        "====",
        "Zh==",         /* non-zero trailing bits (4 bits) */
        "Zm9=",         /* non-zero trailing bits (2 bits) */
        "Zg==Zg==",     /* padding in the middle */
        "Zm=v",         /* padding before data */
        "Z=g=",
        "Zm9v\n",
        "Zm9v ",
        " Zm9v",
        "Zm9vYg===",
        "Zm9v====",
        "Zm9\x80",
        "Zm9*",
        "Zm9vY",
    };
    static const char *bad_url[] = {
        "Z",            /* 1 mod 4 */
        "Zm9vY",        /* 1 mod 4 */
        "Zg==",         /* url form has no padding */
        "Zm8=",
        "Zh",           /* non-zero trailing bits */
        "Zm9",          /* non-zero trailing bits */
        "Zm9v.",
        "Zm 9",
        "Zm9v\0",
    };
    unsigned char dec[32];
    size_t i, n;

    for (i = 0; i < sizeof bad_std / sizeof bad_std[0]; i++) {
        n = 12345;
        assert_int_equal(b64_decode(bad_std[i], strlen(bad_std[i]), dec, &n), -EINVAL);
        assert_int_equal(n, 12345);
    }
    for (i = 0; i < sizeof bad_url / sizeof bad_url[0]; i++) {
        size_t len = strlen(bad_url[i]);
        if (i == sizeof bad_url / sizeof bad_url[0] - 1)
            len = 5;    /* embedded NUL */
        assert_int_equal(b64url_decode(bad_url[i], len, dec, &n), -EINVAL);
    }
    /* the length given is honoured, not the NUL terminator */
    assert_int_equal(b64url_decode("Zm9vXXXX", 4, dec, &n), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(dec, "foo", 3);
}

static void test_roundtrip_all_lengths(void **state)
{
    unsigned char raw[200], dec[B64_DECLEN(300)];
    char enc[B64URL_ENCLEN(200) + 4];
    size_t len, i, n, e;

    for (i = 0; i < sizeof raw; i++)
        raw[i] = (unsigned char)(i * 37 + 11);
    for (len = 0; len <= sizeof raw; len++) {
        e = b64url_encode(raw, len, enc);
        assert_true(e + 1 <= B64URL_ENCLEN(len));
        assert_int_equal(e, (len * 4 + 2) / 3);
        assert_int_equal(enc[e], '\0');
        assert_true(B64_DECLEN(e) >= len);
        assert_int_equal(b64url_decode(enc, e, dec, &n), 0);
        assert_int_equal(n, len);
        assert_memory_equal(dec, raw, len);

        e = b64_encode(raw, len, enc);
        assert_int_equal(e, (len + 2) / 3 * 4);
        assert_true(e + 1 <= B64URL_ENCLEN(len));
        assert_int_equal(b64_decode(enc, e, dec, &n), 0);
        assert_int_equal(n, len);
        assert_memory_equal(dec, raw, len);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc4648_vectors),
        cmocka_unit_test(test_alphabets),
        cmocka_unit_test(test_reject_invalid),
        cmocka_unit_test(test_roundtrip_all_lengths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
