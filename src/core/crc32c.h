/* crc32c — CRC-32C (Castagnoli), as used by iSCSI and ext4; frames use it as a checksum. */
#ifndef REFUGE_CORE_CRC32C_H
#define REFUGE_CORE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Start with crc = 0; pass the previous result to continue over more bytes. */
uint32_t crc32c(uint32_t crc, const void *data, size_t n);

#endif
