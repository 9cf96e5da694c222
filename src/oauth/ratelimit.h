/*
 * ratelimit — token buckets keyed by a string (a client IP and tenant), in
 * a fixed amount of memory.
 *
 * Each key earns `rate` tokens per second up to `burst`; an action takes
 * one token or is refused with the number of seconds until a token is due
 * (the Retry-After of a 429). The table is set-associative: a key's 64-bit
 * hash (keyed with a random seed per table, so nobody can aim collisions at
 * a victim's slot) picks a set of RATELIMIT_WAYS slots; a key not in its set
 * takes the empty slot or evicts the least recently used one. Memory is
 * therefore fixed at creation whatever the number of clients; an evicted
 * key merely starts again with a full bucket.
 *
 * Thread-safe: one mutex per set.
 */
#ifndef REFUGE_OAUTH_RATELIMIT_H
#define REFUGE_OAUTH_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RATELIMIT_WAYS 8

struct ratelimit;

/* slots is rounded up to a multiple of RATELIMIT_WAYS (at least one set).
 * rate: tokens per second (> 0); burst: bucket size (>= 1). */
struct ratelimit *ratelimit_new(size_t slots, double rate, double burst);
void ratelimit_free(struct ratelimit *rl);

/* Takes one token for key[0..n) at now_us (a monotonic clock). true when
 * allowed; false with *retry_after_s (>= 1) when the bucket is empty. */
bool ratelimit_take(struct ratelimit *rl, const char *key, size_t n, int64_t now_us,
                    int64_t *retry_after_s);

/* Tokens left for key at now_us (burst for an unknown key); for tests. */
double ratelimit_peek(struct ratelimit *rl, const char *key, size_t n, int64_t now_us);
/* Number of slots (fixed for the table's life). */
size_t ratelimit_capacity(const struct ratelimit *rl);

#endif
