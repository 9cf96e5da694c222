/* timeutil — monotonic and wall clocks in microseconds, and RFC 3339 rendering. */
#ifndef REFUGE_CORE_TIMEUTIL_H
#define REFUGE_CORE_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

int64_t time_mono_us(void);     /* CLOCK_MONOTONIC: durations, timeouts, lag */
int64_t time_wall_us(void);     /* CLOCK_REALTIME: timestamps shown to people and in tokens */
/* "2026-11-25T19:20:01.123456Z" (micro = true) or "2026-11-25T19:20:01Z"; out >= 32 bytes. */
char *time_rfc3339(int64_t wall_us, char *out, size_t outlen, int micro);
void time_sleep_us(int64_t us);

#endif
