/*
 * fuzz_repl_frame — arbitrary bytes as a replication stream. The input is fed
 * to the incremental decoder three ways: in one piece, in pseudo-random chunk
 * sizes (seeded from the input's CRC, so a crash reproduces), and through the
 * zero-copy want/wrote path in other chunk sizes. All three must yield the
 * same frames and stop with the same error at the same byte. Every frame
 * that decodes must re-encode from its struct to exactly the bytes it came
 * from (the encoding is canonical) and decode again with repl_frame_decode().
 * Each input is also run a second time with every frame's CRC recomputed,
 * so that mutations reach the payload parsers rather than the checksum.
 * Nothing may crash, leak, read past the input or allocate past one frame.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/crc32c.h"
#include "core/xmalloc.h"
#include "repl/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define MAX_FRAMES 512

struct result {
    size_t n;
    size_t end[MAX_FRAMES];         /* stream offset just past each frame */
    size_t last_end;                /* past the last frame (also beyond MAX_FRAMES) */
    int err;                        /* final error, 0 if none */
    size_t err_at;                  /* bytes consumed when it stopped */
};

/* xorshift32: chunk sizes 1..max. */
static uint32_t next_rand(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* Re-encodes f and checks it equals the frame bytes [p, p + n). */
static void check_reencode(const struct repl_frame *f, const uint8_t *p, size_t n)
{
    struct repl_frame *again = xcalloc(1, sizeof *again);
    struct repl_records_writer w;
    struct repl_records_iter it;
    struct repl_record rec;
    struct buf b;
    int rc = -1;

    buf_init(&b, REPL_FRAME_MAX);
    switch (f->type) {
    case REPL_FRAME_HELLO:
        rc = repl_frame_encode_hello(&b, &f->u.hello);
        break;
    case REPL_FRAME_RECORDS:
        rc = repl_records_begin(&w, &b);
        it = repl_records_iter(&f->u.records);
        while (rc == 0 && repl_records_next(&it, &rec))
            rc = repl_records_add(&w, &rec);
        if (rc == 0)
            rc = repl_records_end(&w);
        break;
    case REPL_FRAME_ACK:
        rc = repl_frame_encode_ack(&b, &f->u.ack);
        break;
    case REPL_FRAME_HEARTBEAT:
        rc = repl_frame_encode_heartbeat(&b, &f->u.heartbeat);
        break;
    case REPL_FRAME_SNAPSHOT_BEGIN:
        rc = repl_frame_encode_snapshot_begin(&b, &f->u.snap_begin);
        break;
    case REPL_FRAME_SNAPSHOT_CHUNK:
        rc = repl_frame_encode_snapshot_chunk(&b, f->u.snap_chunk.offset, f->u.snap_chunk.data.p,
                                              f->u.snap_chunk.data.len);
        break;
    case REPL_FRAME_SNAPSHOT_END:
        rc = repl_frame_encode_snapshot_end(&b, f->u.snap_end.sha256);
        break;
    case REPL_FRAME_ERROR:
        rc = repl_frame_encode_error(&b, f->u.error.code, f->u.error.message.p,
                                     f->u.error.message.len);
        break;
    }
    if (rc != 0 || b.len != n || memcmp(b.data, p, n) != 0) {
        fprintf(stderr, "re-encode of %s differs (rc %d, %zu vs %zu bytes)\n",
                repl_frame_type_name(f->type), rc, b.len, n);
        abort();
    }
    if (repl_frame_decode(b.data, b.len, again) != 0 || again->type != f->type)
        abort();
    buf_free(&b);
    free(again);
}

/* Feeds data in chunks of 1..max bytes (max 0 = all at once). */
static void run_feed(const uint8_t *data, size_t size, uint32_t seed, size_t max, bool check,
                     struct result *r)
{
    struct repl_frame *f = xcalloc(1, sizeof *f);
    struct repl_decoder d;
    size_t off = 0, k, used;
    int rc = 0;

    memset(r, 0, sizeof *r);
    repl_decoder_init(&d);
    while (off < size && rc >= 0) {
        k = max ? 1 + next_rand(&seed) % max : size - off;
        if (k > size - off)
            k = size - off;
        while (k > 0) {
            rc = repl_decoder_feed(&d, data + off, k, &used, f);
            if (used > k)
                abort();
            off += used;
            k -= used;
            if (rc < 0)
                break;
            if (rc == 1) {
                size_t start = r->last_end;
                if (f->payload.len + REPL_FRAME_HEADER_LEN != off - start)
                    abort();
                if (check)
                    check_reencode(f, data + start, off - start);
                if (r->n < MAX_FRAMES)
                    r->end[r->n++] = off;
                r->last_end = off;
            } else if (k != 0) {
                abort();        /* "need more" must have consumed everything */
            }
        }
        if (d.cap > REPL_FRAME_MAX)
            abort();
    }
    r->err = rc < 0 ? rc : 0;
    r->err_at = off;
    repl_decoder_free(&d);
    free(f);
}

static void run_want(const uint8_t *data, size_t size, uint32_t seed, struct result *r)
{
    struct repl_frame *f = xcalloc(1, sizeof *f);
    struct repl_decoder d;
    size_t off = 0, want, k;
    void *dst;
    int rc = 0;

    memset(r, 0, sizeof *r);
    repl_decoder_init(&d);
    while (off < size) {
        want = repl_decoder_want(&d, &dst);
        if (want == 0)
            abort();            /* only after an error, and we stop at errors */
        k = 1 + next_rand(&seed) % 64;
        if (k > want)
            k = want;
        if (k > size - off)
            k = size - off;
        memcpy(dst, data + off, k);
        off += k;
        rc = repl_decoder_wrote(&d, k, f);
        if (rc < 0)
            break;
        if (rc == 1 && r->n < MAX_FRAMES)
            r->end[r->n++] = off;
        if (rc == 1)
            r->last_end = off;
    }
    r->err = rc < 0 ? rc : 0;
    r->err_at = off;
    if (rc < 0 && repl_decoder_want(&d, &dst) != 0)
        abort();                /* errors are sticky */
    repl_decoder_free(&d);
    free(f);
}

static void same(const struct result *a, const struct result *b)
{
    if (a->n != b->n || a->err != b->err || a->err_at != b->err_at || a->last_end != b->last_end ||
        memcmp(a->end, b->end, a->n * sizeof a->end[0]) != 0) {
        fprintf(stderr, "decoders disagree: %zu/%zu frames, err %d/%d at %zu/%zu\n", a->n, b->n,
                a->err, b->err, a->err_at, b->err_at);
        abort();
    }
}

/* ---- Seed corpus -------------------------------------------------------------
 * FUZZ_REPL_FRAME_WRITE_CORPUS=DIR ./fuzz_repl_frame -runs=0 writes one valid
 * frame of each type (and a two-frame stream) to DIR; that is how
 * tests/fuzz/corpus/fuzz_repl_frame/ was made. */

static void write_seed(const char *dir, const char *name, const struct buf *b)
{
    char path[1024];
    FILE *f;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (!(f = fopen(path, "wb")) || fwrite(b->data, 1, b->len, f) != b->len || fclose(f) != 0)
        abort();
}

static void write_corpus(const char *dir)
{
    static struct repl_hello h;
    struct repl_record recs[2] = {
        { { 2, 41 }, 1790000000000001ull, { 1, 2, 3 }, { "changeset-one", 13 } },
        { { 2, 42 }, 1790000000000002ull, { 4, 5, 6 }, { "", 0 } },
    };
    struct repl_ack a = { { 2, 42 }, { 2, 41 }, { 9, 9, 9 } };
    struct repl_heartbeat hb = { { 2, 42 }, 123456789, 1790000000000003ull };
    struct repl_snapshot_begin sb = { { 2, 42 }, { 7 }, 65536, 3 };
    uint8_t sha[32] = { 0xaa, 0xbb };
    struct buf b;

    buf_init(&b, 1 << 20);
    snprintf(h.cluster_id, sizeof h.cluster_id, "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b");
    snprintf(h.node_name, sizeof h.node_name, "node-a");
    h.schema_version = 3;
    h.role = REPL_ROLE_STANDBY;
    h.flags = REPL_HELLO_F_WANT_STREAM;
    h.last = (struct repl_pos){ 2, 40 };
    h.n_history = 2;
    h.history[0] = (struct repl_epoch_start){ 1, 1 };
    h.history[1] = (struct repl_epoch_start){ 2, 30 };
#define SEED(name, call)                \
    do {                                \
        buf_reset(&b);                  \
        if ((call) != 0)                \
            abort();                    \
        write_seed(dir, name, &b);      \
    } while (0)
    SEED("01_hello", repl_frame_encode_hello(&b, &h));
    SEED("02_records", repl_frame_encode_records(&b, recs, 2));
    SEED("03_ack", repl_frame_encode_ack(&b, &a));
    SEED("04_heartbeat", repl_frame_encode_heartbeat(&b, &hb));
    SEED("05_snapshot_begin", repl_frame_encode_snapshot_begin(&b, &sb));
    SEED("06_snapshot_chunk", repl_frame_encode_snapshot_chunk(&b, 0, "SQLite format 3", 16));
    SEED("07_snapshot_end", repl_frame_encode_snapshot_end(&b, sha));
    SEED("08_error", repl_frame_encode_error(&b, REPL_ERR_SCHEMA_MISMATCH, "schema 3 != 4", 13));
    SEED("09_stream", repl_frame_encode_heartbeat(&b, &hb) || repl_frame_encode_ack(&b, &a));
#undef SEED
    buf_free(&b);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *dir = getenv("FUZZ_REPL_FRAME_WRITE_CORPUS");

    if (dir && *dir)
        write_corpus(dir);
    return 0;
}

/* Rewrites the CRC of every complete frame in place, so mutations reach the
 * payload parsers instead of stopping at the checksum. */
static void fix_crcs(uint8_t *p, size_t n)
{
    size_t off = 0, plen;
    uint32_t crc;

    while (n - off >= REPL_FRAME_HEADER_LEN) {
        uint8_t *h = p + off;

        plen = ((size_t)h[4] << 24) | ((size_t)h[5] << 16) | ((size_t)h[6] << 8) | h[7];
        if (plen > n - off - REPL_FRAME_HEADER_LEN)
            break;
        crc = crc32c(crc32c(0, h, 8), h + REPL_FRAME_HEADER_LEN, plen);
        h[8] = (uint8_t)(crc >> 24);
        h[9] = (uint8_t)(crc >> 16);
        h[10] = (uint8_t)(crc >> 8);
        h[11] = (uint8_t)crc;
        off += REPL_FRAME_HEADER_LEN + plen;
    }
}

static void check_stream(const uint8_t *data, size_t size)
{
    static struct result whole, chunks, bytes, zc;
    uint32_t seed = crc32c(0, data, size) | 1;

    run_feed(data, size, seed, 0, true, &whole);
    run_feed(data, size, seed, 97, false, &chunks);
    same(&whole, &chunks);
    if (size <= 4096) {
        run_feed(data, size, seed, 1, false, &bytes);
        same(&whole, &bytes);
    }
    run_want(data, size, seed ^ 0x5bd1e995u, &zc);
    same(&whole, &zc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *fixed = xmemdup(data, size ? size : 1);

    check_stream(data, size);
    fix_crcs(fixed, size);
    check_stream(fixed, size);
    free(fixed);
    return 0;
}
