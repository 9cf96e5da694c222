/* crc32c — CRC-32C (Castagnoli), as used by iSCSI and ext4; frames use it as a checksum. */
#ifndef REFUGE_CORE_CRC32C_H
#define REFUGE_CORE_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Start with crc = 0; pass the previous result to continue over more bytes. */
uint32_t crc32c(uint32_t crc, const void *data, size_t n);

/* The two implementations crc32c() picks between, exposed so tests can check
 * they agree: portable slicing-by-8, and SSE4.2 (falls back to software when
 * the CPU lacks it; crc32c_hw_available() says which). */
uint32_t crc32c_sw(uint32_t crc, const void *data, size_t n);
uint32_t crc32c_hw(uint32_t crc, const void *data, size_t n);
bool crc32c_hw_available(void);

#endif
