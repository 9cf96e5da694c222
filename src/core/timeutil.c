/*
 * timeutil — the two clocks Refuge uses. The monotonic clock measures
 * durations (timeouts, replication lag, RTO); the wall clock stamps things
 * people and tokens see. Never mix them: the wall clock can jump.
 */
#include "core/timeutil.h"

#include <errno.h>
#include <stdio.h>
#include <time.h>

static int64_t clock_us(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t time_mono_us(void)
{
    return clock_us(CLOCK_MONOTONIC);
}

int64_t time_wall_us(void)
{
    return clock_us(CLOCK_REALTIME);
}

char *time_rfc3339(int64_t wall_us, char *out, size_t outlen, int micro)
{
    /* floor division so times before 1970 render correctly too */
    int64_t secs = wall_us / 1000000;
    int64_t usec = wall_us % 1000000;
    time_t t;
    struct tm tm;

    if (usec < 0) {
        usec += 1000000;
        secs -= 1;
    }
    t = (time_t)secs;
    if (!gmtime_r(&t, &tm)) {
        snprintf(out, outlen, "%s", "0000-00-00T00:00:00Z");
        return out;
    }
    if (micro)
        snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                 tm.tm_hour, tm.tm_min, tm.tm_sec, (int)usec);
    else
        snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02dZ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                 tm.tm_hour, tm.tm_min, tm.tm_sec);
    return out;
}

void time_sleep_us(int64_t us)
{
    struct timespec req, rem;

    if (us <= 0)
        return;
    req.tv_sec = (time_t)(us / 1000000);
    req.tv_nsec = (long)(us % 1000000) * 1000;
    while (nanosleep(&req, &rem) != 0 && errno == EINTR)
        req = rem;
}
