/* uuid — RFC 9562 version 4 (random) UUIDs in canonical lowercase text. */
#ifndef REFUGE_CORE_UUID_H
#define REFUGE_CORE_UUID_H

#include <stdbool.h>
#include <stddef.h>

#define UUID_STRLEN 36
void uuid_v4(char out[UUID_STRLEN + 1]);
bool uuid_valid(const char *s, size_t n);      /* canonical 8-4-4-4-12 hex form */

#endif
