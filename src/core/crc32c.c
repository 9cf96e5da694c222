/*
 * crc32c — CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the
 * checksum on replication frames and snapshot chunks.
 *
 * Two implementations that must agree bit for bit (the unit test checks):
 * a portable slicing-by-8 table version, and on x86-64 the SSE4.2 CRC32
 * instruction, picked once at run time with cpuid. The public value is the
 * usual one: pre- and post-inverted, so crc32c(0, "123456789", 9) is
 * 0xE3069283, and feeding a result back in continues the same checksum.
 */
#include "core/crc32c.h"

#include <pthread.h>
#include <string.h>

#define POLY 0x82F63B78u

static uint32_t table[8][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_init(void)
{
    uint32_t i, j, c;

    for (i = 0; i < 256; i++) {
        c = i;
        for (j = 0; j < 8; j++)
            c = (c >> 1) ^ (POLY & (0u - (c & 1)));
        table[0][i] = c;
    }
    for (i = 0; i < 256; i++) {
        c = table[0][i];
        for (j = 1; j < 8; j++) {
            c = table[0][c & 0xff] ^ (c >> 8);
            table[j][i] = c;
        }
    }
}

/* ------------------------------------------------------------ software */

uint32_t crc32c_sw(uint32_t crc, const void *data, size_t n)
{
    const unsigned char *p = data;

    pthread_once(&table_once, table_init);
    crc = ~crc;
    while (n > 0 && ((uintptr_t)p & 7) != 0) {
        crc = table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
        n--;
    }
    while (n >= 8) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + 4, 4);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        lo = __builtin_bswap32(lo);
        hi = __builtin_bswap32(hi);
#endif
        lo ^= crc;
        crc = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^
              table[5][(lo >> 16) & 0xff] ^ table[4][lo >> 24] ^
              table[3][hi & 0xff] ^ table[2][(hi >> 8) & 0xff] ^
              table[1][(hi >> 16) & 0xff] ^ table[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n > 0) {
        crc = table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
        n--;
    }
    return ~crc;
}

/* ------------------------------------------------------------ hardware */

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_HW_CRC 1

__attribute__((target("sse4.2")))
static uint32_t crc32c_sse42(uint32_t crc, const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t c = ~crc;

    while (n > 0 && ((uintptr_t)p & 7) != 0) {
        c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
        n--;
    }
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = __builtin_ia32_crc32di(c, w);
        p += 8;
        n -= 8;
    }
    while (n > 0) {
        c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
        n--;
    }
    return ~(uint32_t)c;
}
#else
#define HAVE_HW_CRC 0
#endif

bool crc32c_hw_available(void)
{
#if HAVE_HW_CRC
    return __builtin_cpu_supports("sse4.2");
#else
    return false;
#endif
}

uint32_t crc32c_hw(uint32_t crc, const void *data, size_t n)
{
#if HAVE_HW_CRC
    if (__builtin_cpu_supports("sse4.2"))
        return crc32c_sse42(crc, data, n);
#endif
    return crc32c_sw(crc, data, n);
}

/* ------------------------------------------------------------ dispatch */

static uint32_t (*impl)(uint32_t, const void *, size_t);
static pthread_once_t impl_once = PTHREAD_ONCE_INIT;

static void impl_init(void)
{
#if HAVE_HW_CRC
    impl = crc32c_hw_available() ? crc32c_sse42 : crc32c_sw;
#else
    impl = crc32c_sw;
#endif
}

uint32_t crc32c(uint32_t crc, const void *data, size_t n)
{
    pthread_once(&impl_once, impl_init);
    return impl(crc, data, n);
}
