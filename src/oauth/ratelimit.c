/*
 * ratelimit — fixed-memory token buckets (see ratelimit.h for the model).
 *
 * Slot layout: the table is nsets sets of RATELIMIT_WAYS slots; the set of
 * a key is hash % nsets, and within the set the key is recognised by its
 * full 64-bit SipHash (keys themselves are not stored: a collision merely
 * shares a bucket, with probability 2^-64 per pair). An empty slot has
 * used_us == 0.
 */
#include "oauth/ratelimit.h"

#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <string.h>

#include "core/rand.h"
#include "core/xmalloc.h"

struct slot {
    uint64_t key;
    double tokens;
    int64_t used_us;        /* last refill / use; 0 = empty */
};

struct set {
    pthread_mutex_t lock;
    struct slot slots[RATELIMIT_WAYS];
};

struct ratelimit {
    size_t nsets;
    double rate, burst;
    unsigned char seed[crypto_shorthash_KEYBYTES];
    struct set *sets;
};

struct ratelimit *ratelimit_new(size_t slots, double rate, double burst)
{
    struct ratelimit *rl = xcalloc(1, sizeof(*rl));
    rl->nsets = (slots + RATELIMIT_WAYS - 1) / RATELIMIT_WAYS;
    if (rl->nsets == 0)
        rl->nsets = 1;
    rl->rate = rate > 0 ? rate : 1.0;
    rl->burst = burst >= 1 ? burst : 1.0;
    rand_bytes(rl->seed, sizeof(rl->seed));
    rl->sets = xcalloc(rl->nsets, sizeof(*rl->sets));
    for (size_t i = 0; i < rl->nsets; i++)
        pthread_mutex_init(&rl->sets[i].lock, NULL);
    return rl;
}

void ratelimit_free(struct ratelimit *rl)
{
    if (!rl)
        return;
    for (size_t i = 0; i < rl->nsets; i++)
        pthread_mutex_destroy(&rl->sets[i].lock);
    free(rl->sets);
    free(rl);
}

size_t ratelimit_capacity(const struct ratelimit *rl)
{
    return rl->nsets * RATELIMIT_WAYS;
}

static uint64_t key_hash(const struct ratelimit *rl, const char *key, size_t n)
{
    unsigned char out[crypto_shorthash_BYTES];
    uint64_t h;
    crypto_shorthash(out, (const unsigned char *)key, n, rl->seed);
    memcpy(&h, out, sizeof(h));
    return h;
}

/* The key's slot in set s (found, empty, or the least recently used one,
 * reset), refilled up to now. Called with s->lock held. */
static struct slot *find_slot(const struct ratelimit *rl, struct set *s, uint64_t h, int64_t now_us)
{
    struct slot *victim = &s->slots[0];
    for (size_t i = 0; i < RATELIMIT_WAYS; i++) {
        struct slot *sl = &s->slots[i];
        if (sl->used_us != 0 && sl->key == h) {
            if (now_us > sl->used_us) {
                sl->tokens += (double)(now_us - sl->used_us) / 1e6 * rl->rate;
                if (sl->tokens > rl->burst)
                    sl->tokens = rl->burst;
                sl->used_us = now_us;
            }
            return sl;
        }
        if (victim->used_us != 0 && (sl->used_us == 0 || sl->used_us < victim->used_us))
            victim = sl;
    }
    victim->key = h;
    victim->tokens = rl->burst;
    victim->used_us = now_us > 0 ? now_us : 1;
    return victim;
}

bool ratelimit_take(struct ratelimit *rl, const char *key, size_t n, int64_t now_us,
                    int64_t *retry_after_s)
{
    uint64_t h = key_hash(rl, key, n);
    struct set *s = &rl->sets[h % rl->nsets];
    bool ok;

    pthread_mutex_lock(&s->lock);
    struct slot *sl = find_slot(rl, s, h, now_us);
    ok = sl->tokens >= 1.0;
    if (ok) {
        sl->tokens -= 1.0;
    } else if (retry_after_s) {
        double wait = (1.0 - sl->tokens) / rl->rate;
        int64_t secs = (int64_t)ceil(wait);
        *retry_after_s = secs < 1 ? 1 : secs;
    }
    pthread_mutex_unlock(&s->lock);
    return ok;
}

double ratelimit_peek(struct ratelimit *rl, const char *key, size_t n, int64_t now_us)
{
    uint64_t h = key_hash(rl, key, n);
    struct set *s = &rl->sets[h % rl->nsets];
    double tokens = rl->burst;

    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < RATELIMIT_WAYS; i++) {
        const struct slot *sl = &s->slots[i];
        if (sl->used_us != 0 && sl->key == h) {
            tokens = sl->tokens;
            if (now_us > sl->used_us)
                tokens += (double)(now_us - sl->used_us) / 1e6 * rl->rate;
            if (tokens > rl->burst)
                tokens = rl->burst;
            break;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return tokens;
}
