/*
 * test_repl_frame — the replication frame codec: every type round-trips with
 * its fields intact; the incremental decoder yields the same frames however
 * the bytes are split; and every kind of damage (flipped bits anywhere,
 * oversize lengths, unknown types, reserved flags, truncated or extra payload
 * bytes, out-of-range fields) is the specific error, sticky, without a crash
 * or an allocation beyond the declared frame.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/buf.h"
#include "core/crc32c.h"
#include "core/xmalloc.h"
#include "repl/frame.h"

#define BIG (32u * 1024 * 1024)

/* ---- Fixtures ------------------------------------------------------------- */

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed + i * 7);
}

static struct repl_hello *sample_hello(uint32_t n_history)
{
    struct repl_hello *h = xcalloc(1, sizeof *h);

    snprintf(h->cluster_id, sizeof h->cluster_id, "%s", "0f8a4c6e-2b1d-4e7f-9a3c-5d6e7f8a9b0c");
    snprintf(h->node_name, sizeof h->node_name, "%s", "node-b");
    h->schema_version = 7;
    h->role = REPL_ROLE_STANDBY;
    h->flags = REPL_HELLO_F_WANT_STREAM | 0x80000000u;
    h->last.epoch = 3;
    h->last.lsn = 0x0102030405060708ull;
    fill(h->last_hash, REPL_HASH_LEN, 0x11);
    h->n_history = n_history;
    for (uint32_t i = 0; i < n_history; i++) {
        h->history[i].epoch = i + 1;
        h->history[i].start_lsn = (uint64_t)i * 1000 + 1;
    }
    return h;
}

/* Builds a frame around an arbitrary payload with a correct CRC. */
static void raw_frame(struct buf *b, uint8_t magic, uint8_t type, uint16_t flags, const void *payload,
                      uint32_t len, uint32_t declared_len)
{
    uint8_t h[REPL_FRAME_HEADER_LEN];
    uint32_t crc;

    h[0] = magic;
    h[1] = type;
    h[2] = (uint8_t)(flags >> 8);
    h[3] = (uint8_t)flags;
    h[4] = (uint8_t)(declared_len >> 24);
    h[5] = (uint8_t)(declared_len >> 16);
    h[6] = (uint8_t)(declared_len >> 8);
    h[7] = (uint8_t)declared_len;
    crc = crc32c(0, h, 8);
    crc = crc32c(crc, payload, len);
    h[8] = (uint8_t)(crc >> 24);
    h[9] = (uint8_t)(crc >> 16);
    h[10] = (uint8_t)(crc >> 8);
    h[11] = (uint8_t)crc;
    assert_int_equal(buf_append(b, h, sizeof h), 0);
    assert_int_equal(buf_append(b, payload, len), 0);
}

/* Decodes a buffer that must hold exactly one frame, through the decoder. */
static int decode_one(const struct buf *b, struct repl_decoder *d, struct repl_frame *f)
{
    size_t used = 0;
    int rc = repl_decoder_feed(d, b->data, b->len, &used, f);

    if (rc == 1)
        assert_int_equal(used, b->len);
    return rc;
}

/* Encodes one frame of every type into b (in type order). */
static void encode_all(struct buf *b)
{
    struct repl_hello *h = sample_hello(3);
    uint8_t hash[32], cs1[100], chunk[5000];
    struct repl_record recs[3];
    struct repl_ack a = { { 3, 40 }, { 3, 39 }, { 0 } };
    struct repl_heartbeat hb = { { 3, 41 }, 123456789, 1790000000000000ull };
    struct repl_snapshot_begin sb = { { 2, 17 }, { 0 }, 1ull << 33, 7 };

    fill(hash, sizeof hash, 0x42);
    fill(cs1, sizeof cs1, 3);
    fill(chunk, sizeof chunk, 9);
    for (int i = 0; i < 3; i++) {
        recs[i].pos.epoch = 3;
        recs[i].pos.lsn = 100 + (uint64_t)i;
        recs[i].commit_us = 1000000 + (uint64_t)i;
        fill(recs[i].hash, 32, (uint8_t)i);
        recs[i].changeset.p = (const char *)cs1;
        recs[i].changeset.len = i == 1 ? 0 : sizeof cs1 - (size_t)i;
    }
    fill(a.applied_hash, 32, 0x77);
    fill(sb.hash, 32, 0x55);
    assert_int_equal(repl_frame_encode_hello(b, h), 0);
    assert_int_equal(repl_frame_encode_records(b, recs, 3), 0);
    assert_int_equal(repl_frame_encode_ack(b, &a), 0);
    assert_int_equal(repl_frame_encode_heartbeat(b, &hb), 0);
    assert_int_equal(repl_frame_encode_snapshot_begin(b, &sb), 0);
    assert_int_equal(repl_frame_encode_snapshot_chunk(b, 4096, chunk, sizeof chunk), 0);
    assert_int_equal(repl_frame_encode_snapshot_end(b, hash), 0);
    assert_int_equal(repl_frame_encode_error(b, REPL_ERR_SCHEMA_MISMATCH, "schema 7 != 8", 13), 0);
    free(h);
}

/* ---- Round trips ------------------------------------------------------------ */

static void test_hello_roundtrip(void **state)
{
    struct repl_hello *h = sample_hello(REPL_HELLO_MAX_HISTORY);
    struct repl_frame *f = xcalloc(1, sizeof *f);
    struct repl_decoder d;
    struct buf b;

    buf_init(&b, BIG);
    repl_decoder_init(&d);
    assert_int_equal(repl_frame_encode_hello(&b, h), 0);
    assert_int_equal(b.len, REPL_FRAME_HEADER_LEN + 36 + 1 + 6 + 59 + 16 * 1024);
    assert_int_equal((uint8_t)b.data[0], REPL_FRAME_MAGIC);
    assert_int_equal(b.data[1], REPL_FRAME_HELLO);
    assert_int_equal(decode_one(&b, &d, f), 1);
    assert_int_equal(f->type, REPL_FRAME_HELLO);
    assert_string_equal(f->u.hello.cluster_id, h->cluster_id);
    assert_string_equal(f->u.hello.node_name, "node-b");
    assert_int_equal(f->u.hello.schema_version, 7);
    assert_int_equal(f->u.hello.role, REPL_ROLE_STANDBY);
    assert_int_equal(f->u.hello.flags, h->flags);
    assert_int_equal(f->u.hello.last.epoch, 3);
    assert_true(f->u.hello.last.lsn == 0x0102030405060708ull);
    assert_memory_equal(f->u.hello.last_hash, h->last_hash, 32);
    assert_int_equal(f->u.hello.n_history, REPL_HELLO_MAX_HISTORY);
    assert_memory_equal(f->u.hello.history, h->history, sizeof h->history);
    /* Big-endian on the wire: last lsn bytes appear in order. */
    assert_non_null(memmem(b.data, b.len, "\x01\x02\x03\x04\x05\x06\x07\x08", 8));

    /* Also via the whole-frame decoder. */
    memset(f, 0, sizeof *f);
    assert_int_equal(repl_frame_decode(b.data, b.len, f), 0);
    assert_int_equal(f->u.hello.n_history, REPL_HELLO_MAX_HISTORY);
    assert_int_equal(repl_frame_decode(b.data, b.len - 1, f), REPL_FRAME_EMALFORMED);

    /* Empty history is fine. */
    buf_reset(&b);
    h->n_history = 0;
    assert_int_equal(repl_frame_encode_hello(&b, h), 0);
    assert_int_equal(repl_frame_decode(b.data, b.len, f), 0);
    assert_int_equal(f->u.hello.n_history, 0);

    repl_decoder_free(&d);
    buf_free(&b);
    free(h);
    free(f);
}

static void test_hello_encode_refusals(void **state)
{
    struct repl_hello *h = sample_hello(4);
    struct buf b;

    buf_init(&b, BIG);
    assert_int_equal(buf_puts(&b, "keep"), 0);
    h->n_history = REPL_HELLO_MAX_HISTORY + 1;
    assert_int_equal(repl_frame_encode_hello(&b, h), -EINVAL);
    h->n_history = 4;
    h->history[2].epoch = h->history[1].epoch;          /* not increasing */
    assert_int_equal(repl_frame_encode_hello(&b, h), -EINVAL);
    h->history[2].epoch = 3;
    h->history[2].start_lsn = 0;                        /* lsn going back */
    assert_int_equal(repl_frame_encode_hello(&b, h), -EINVAL);
    h->history[2].start_lsn = 2001;
    h->role = 2;
    assert_int_equal(repl_frame_encode_hello(&b, h), -EINVAL);
    h->role = REPL_ROLE_ACTIVE;
    h->cluster_id[3] = 'X';
    assert_int_equal(repl_frame_encode_hello(&b, h), -EINVAL);
    h->cluster_id[3] = 'a';
    h->node_name[0] = '\0';
    assert_int_equal(repl_frame_encode_hello(&b, h), -EINVAL);
    snprintf(h->node_name, sizeof h->node_name, "has space");
    assert_int_equal(repl_frame_encode_hello(&b, h), -EINVAL);
    memset(h->node_name, 'n', REPL_NODE_NAME_MAX);      /* 64 chars: longest allowed */
    h->node_name[REPL_NODE_NAME_MAX] = '\0';
    assert_int_equal(b.len, 4);
    assert_string_equal(buf_cstr(&b), "keep");
    assert_int_equal(repl_frame_encode_hello(&b, h), 0);
    buf_free(&b);
    free(h);
}

static void test_records_roundtrip(void **state)
{
    struct repl_record recs[4], got;
    struct repl_frame f;
    struct repl_records_iter it;
    uint8_t cs[300];
    struct buf b;
    uint32_t n = 0;

    fill(cs, sizeof cs, 1);
    for (int i = 0; i < 4; i++) {
        recs[i].pos.epoch = 5;
        recs[i].pos.lsn = 9000 + (uint64_t)i;
        recs[i].commit_us = 1700000000000000ull + (uint64_t)i;
        fill(recs[i].hash, 32, (uint8_t)(0xa0 + i));
        recs[i].changeset.p = (const char *)cs + i;
        recs[i].changeset.len = (size_t)(i * 97);     /* 0, 97, 194, 291 */
    }
    buf_init(&b, BIG);
    assert_int_equal(repl_frame_encode_records(&b, recs, 4), 0);
    assert_int_equal(repl_frame_decode(b.data, b.len, &f), 0);
    assert_int_equal(f.type, REPL_FRAME_RECORDS);
    assert_int_equal(f.u.records.count, 4);
    it = repl_records_iter(&f.u.records);
    while (repl_records_next(&it, &got)) {
        assert_true(got.pos.epoch == 5 && got.pos.lsn == 9000 + n);
        assert_true(got.commit_us == recs[n].commit_us);
        assert_memory_equal(got.hash, recs[n].hash, 32);
        assert_int_equal(got.changeset.len, recs[n].changeset.len);
        if (got.changeset.len)
            assert_memory_equal(got.changeset.p, recs[n].changeset.p, got.changeset.len);
        n++;
    }
    assert_int_equal(n, 4);
    assert_int_equal(repl_frame_encode_records(&b, recs, 0), -EINVAL);
    buf_free(&b);
}

static void test_records_writer_limits(void **state)
{
    struct repl_records_writer w;
    struct repl_record r = { { 1, 1 }, 5, { 0 }, { NULL, 0 } };
    struct repl_frame *f = xcalloc(1, sizeof *f);
    size_t big = 3u * 1024 * 1024, before;
    char *cs = xcalloc(1, REPL_MAX_PAYLOAD_RECORDS);
    struct buf b, small;

    buf_init(&b, BIG);
    r.changeset.p = cs;
    r.changeset.len = big;
    assert_int_equal(repl_records_begin(&w, &b), 0);
    assert_int_equal(repl_records_add(&w, &r), 0);
    r.pos.lsn = 2;
    assert_int_equal(repl_records_add(&w, &r), 0);
    before = b.len;
    r.pos.lsn = 3;
    assert_int_equal(repl_records_add(&w, &r), -E2BIG);     /* batch full */
    assert_int_equal(b.len, before);
    /* A small record still fits in what is left. */
    r.changeset.len = 1000;
    assert_int_equal(repl_records_add(&w, &r), 0);
    assert_int_equal(repl_records_end(&w), 0);
    assert_true(b.len <= REPL_FRAME_MAX);
    assert_int_equal(repl_frame_decode(b.data, b.len, f), 0);
    assert_int_equal(f->u.records.count, 3);

    /* Exactly at the payload limit is accepted, one more byte is not. */
    buf_reset(&b);
    r.changeset.len = REPL_MAX_PAYLOAD_RECORDS - 4 - REPL_RECORD_HEADER_LEN;
    assert_int_equal(repl_frame_encode_records(&b, &r, 1), 0);
    assert_int_equal(b.len, REPL_FRAME_MAX);
    assert_int_equal(repl_frame_decode(b.data, b.len, f), 0);
    buf_reset(&b);
    r.changeset.len++;
    assert_int_equal(repl_records_begin(&w, &b), 0);
    assert_int_equal(repl_records_add(&w, &r), -EMSGSIZE);
    repl_records_abort(&w);
    assert_int_equal(b.len, 0);
    assert_int_equal(repl_frame_encode_records(&b, &r, 1), -E2BIG);
    assert_int_equal(b.len, 0);

    /* Empty batch: -EINVAL, buffer restored. */
    assert_int_equal(buf_puts(&b, "x"), 0);
    assert_int_equal(repl_records_begin(&w, &b), 0);
    assert_int_equal(repl_records_end(&w), -EINVAL);
    assert_int_equal(b.len, 1);

    /* The output buffer's own limit. */
    buf_init(&small, 200);
    assert_int_equal(buf_puts(&small, "abc"), 0);
    r.changeset.len = 100;
    assert_int_equal(repl_records_begin(&w, &small), 0);
    assert_int_equal(repl_records_add(&w, &r), 0);
    assert_int_equal(repl_records_add(&w, &r), -E2BIG);
    assert_int_equal(repl_records_end(&w), 0);
    assert_int_equal(repl_frame_decode(small.data + 3, small.len - 3, f), 0);
    assert_int_equal(f->u.records.count, 1);
    buf_free(&small);
    buf_free(&b);
    free(cs);
    free(f);
}

static void test_small_types_roundtrip(void **state)
{
    struct repl_frame f;
    struct repl_ack a = { { 9, 1000 }, { 8, 999 }, { 0 } };
    struct repl_heartbeat hb = { { 9, 1001 }, 5555, 1790000000123456ull };
    struct repl_snapshot_begin sb = { { 9, 77 }, { 0 }, 123456789012ull, 42 };
    uint8_t sha[32], data[REPL_SNAPSHOT_CHUNK_MAX];
    char msg[2000];
    struct buf b;

    fill(a.applied_hash, 32, 1);
    fill(sb.hash, 32, 2);
    fill(sha, 32, 3);
    fill(data, sizeof data, 4);
    memset(msg, 'm', sizeof msg);
    buf_init(&b, BIG);

    assert_int_equal(repl_frame_encode_ack(&b, &a), 0);
    assert_int_equal(b.len, REPL_FRAME_HEADER_LEN + 64);
    assert_int_equal(repl_frame_decode(b.data, b.len, &f), 0);
    assert_int_equal(f.type, REPL_FRAME_ACK);
    assert_true(f.u.ack.written.epoch == 9 && f.u.ack.written.lsn == 1000);
    assert_true(f.u.ack.applied.epoch == 8 && f.u.ack.applied.lsn == 999);
    assert_memory_equal(f.u.ack.applied_hash, a.applied_hash, 32);

    buf_reset(&b);
    assert_int_equal(repl_frame_encode_heartbeat(&b, &hb), 0);
    assert_int_equal(b.len, REPL_FRAME_HEADER_LEN + 32);
    assert_int_equal(repl_frame_decode(b.data, b.len, &f), 0);
    assert_int_equal(f.type, REPL_FRAME_HEARTBEAT);
    assert_true(f.u.heartbeat.pos.lsn == 1001 && f.u.heartbeat.mono_us == 5555);
    assert_true(f.u.heartbeat.wall_us == hb.wall_us);

    buf_reset(&b);
    assert_int_equal(repl_frame_encode_snapshot_begin(&b, &sb), 0);
    assert_int_equal(b.len, REPL_FRAME_HEADER_LEN + 60);
    assert_int_equal(repl_frame_decode(b.data, b.len, &f), 0);
    assert_true(f.u.snap_begin.pos.epoch == 9 && f.u.snap_begin.pos.lsn == 77);
    assert_true(f.u.snap_begin.total_bytes == 123456789012ull);
    assert_int_equal(f.u.snap_begin.schema_version, 42);
    assert_memory_equal(f.u.snap_begin.hash, sb.hash, 32);

    buf_reset(&b);
    assert_int_equal(repl_frame_encode_snapshot_chunk(&b, 1ull << 40, data, sizeof data), 0);
    assert_int_equal(repl_frame_decode(b.data, b.len, &f), 0);
    assert_true(f.u.snap_chunk.offset == 1ull << 40);
    assert_int_equal(f.u.snap_chunk.data.len, sizeof data);
    assert_memory_equal(f.u.snap_chunk.data.p, data, sizeof data);
    buf_reset(&b);
    assert_int_equal(repl_frame_encode_snapshot_chunk(&b, 0, data, sizeof data + 1 - 1), 0);
    buf_reset(&b);
    assert_int_equal(repl_frame_encode_snapshot_chunk(&b, 0, NULL, REPL_SNAPSHOT_CHUNK_MAX + 1),
                     -E2BIG);
    assert_int_equal(b.len, 0);
    assert_int_equal(repl_frame_encode_snapshot_chunk(&b, 7, NULL, 0), 0);
    assert_int_equal(repl_frame_decode(b.data, b.len, &f), 0);
    assert_int_equal(f.u.snap_chunk.data.len, 0);

    buf_reset(&b);
    assert_int_equal(repl_frame_encode_snapshot_end(&b, sha), 0);
    assert_int_equal(repl_frame_decode(b.data, b.len, &f), 0);
    assert_memory_equal(f.u.snap_end.sha256, sha, 32);

    buf_reset(&b);
    assert_int_equal(repl_frame_encode_error(&b, REPL_ERR_CLUSTER_MISMATCH, msg, sizeof msg), 0);
    assert_int_equal(repl_frame_decode(b.data, b.len, &f), 0);
    assert_int_equal(f.u.error.code, REPL_ERR_CLUSTER_MISMATCH);
    assert_int_equal(f.u.error.message.len, REPL_ERROR_MSG_MAX);     /* cut */
    buf_reset(&b);
    assert_int_equal(repl_frame_encode_error(&b, 999, NULL, 0), 0);
    assert_int_equal(repl_frame_decode(b.data, b.len, &f), 0);
    assert_int_equal(f.u.error.code, 999);
    assert_int_equal(f.u.error.message.len, 0);
    assert_string_equal(repl_error_code_name(REPL_ERR_CLUSTER_MISMATCH), "cluster_mismatch");
    assert_string_equal(repl_error_code_name(999), "unknown");
    assert_string_equal(repl_frame_type_name(REPL_FRAME_SNAPSHOT_END), "SNAPSHOT_END");
    buf_free(&b);
}

static void test_encode_respects_buf_limit(void **state)
{
    struct repl_ack a = { { 1, 1 }, { 1, 1 }, { 0 } };
    struct buf b;

    buf_init(&b, REPL_FRAME_HEADER_LEN + 64 + 10);
    assert_int_equal(buf_puts(&b, "0123456789"), 0);
    assert_int_equal(repl_frame_encode_ack(&b, &a), 0);
    assert_int_equal(repl_frame_encode_ack(&b, &a), -E2BIG);
    assert_int_equal(b.len, REPL_FRAME_HEADER_LEN + 64 + 10);
    assert_int_equal(repl_frame_encode_error(&b, 1, "x", 1), -E2BIG);
    assert_int_equal(b.len, REPL_FRAME_HEADER_LEN + 64 + 10);
    assert_memory_equal(b.data, "0123456789", 10);
    buf_free(&b);
}

/* ---- Streaming ---------------------------------------------------------------- */

struct seen {
    int type[64];
    size_t len[64];
    uint32_t crc[64];       /* of the payload */
    int n;
};

static void note(struct seen *s, const struct repl_frame *f)
{
    assert_true(s->n < 64);
    s->type[s->n] = f->type;
    s->len[s->n] = f->payload.len;
    s->crc[s->n] = crc32c(0, f->payload.p, f->payload.len);
    s->n++;
}

/* Feeds the stream in pieces chosen by `split` (0 = byte by byte, else random
 * sizes 1..split from seed). */
static void feed_stream(const struct buf *b, size_t split, unsigned seed, struct seen *s)
{
    struct repl_frame *f = xcalloc(1, sizeof *f);
    struct repl_decoder d;
    size_t off = 0, k, used;
    int rc;

    srand(seed);
    repl_decoder_init(&d);
    memset(s, 0, sizeof *s);
    while (off < b->len) {
        k = split ? 1 + (size_t)rand() % split : 1;
        if (k > b->len - off)
            k = b->len - off;
        while (k > 0) {
            rc = repl_decoder_feed(&d, b->data + off, k, &used, f);
            assert_true(rc == 0 || rc == 1);
            assert_true(used <= k);
            off += used;
            k -= used;
            if (rc == 1)
                note(s, f);
            else
                assert_int_equal(k, 0);
        }
    }
    assert_int_equal(d.have, d.ready ? d.need : 0);
    repl_decoder_free(&d);
    free(f);
}

static void test_stream_splits(void **state)
{
    struct seen whole, pieces;
    struct buf b;

    buf_init(&b, BIG);
    encode_all(&b);
    encode_all(&b);
    feed_stream(&b, b.len, 1, &whole);         /* usually large pieces */
    assert_int_equal(whole.n, 16);
    for (int i = 0; i < 16; i++)
        assert_int_equal(whole.type[i], i % 8 + 1);
    feed_stream(&b, 0, 0, &pieces);            /* byte by byte */
    assert_memory_equal(&whole, &pieces, sizeof whole);
    for (unsigned seed = 1; seed < 40; seed++) {
        feed_stream(&b, seed * 37, seed, &pieces);
        assert_memory_equal(&whole, &pieces, sizeof whole);
    }
    buf_free(&b);
}

static void test_want_wrote(void **state)
{
    struct repl_frame *f = xcalloc(1, sizeof *f);
    struct repl_decoder d;
    struct buf b;
    size_t off = 0, want;
    void *dst;
    int frames = 0, rc;

    buf_init(&b, BIG);
    encode_all(&b);
    repl_decoder_init(&d);
    while (off < b.len) {
        want = repl_decoder_want(&d, &dst);
        assert_true(want >= 1 && want <= b.len - off);
        /* Hand over at most 3 bytes at a time, into the spot it gave. */
        want = want > 3 ? 3 : want;
        memcpy(dst, b.data + off, want);
        off += want;
        rc = repl_decoder_wrote(&d, want, f);
        assert_true(rc == 0 || rc == 1);
        if (rc == 1)
            assert_int_equal(f->type, ++frames);
    }
    assert_int_equal(frames, 8);
    repl_decoder_free(&d);
    buf_free(&b);
    free(f);
}

/* ---- Damage --------------------------------------------------------------------- */

static void test_every_bit_flip_is_caught(void **state)
{
    struct repl_frame *f = xcalloc(1, sizeof *f);
    struct repl_decoder d;
    struct buf b;
    size_t used;
    int rc;

    buf_init(&b, BIG);
    encode_all(&b);
    /* The HELLO is the first frame; take ACK + HEARTBEAT + SNAPSHOT_END and
     * the ERROR frame too: flip every bit of each, alone. */
    for (size_t start = 0, fi = 0; start < b.len; fi++) {
        uint32_t plen = ((uint32_t)(uint8_t)b.data[start + 4] << 24) |
                        ((uint32_t)(uint8_t)b.data[start + 5] << 16) |
                        ((uint32_t)(uint8_t)b.data[start + 6] << 8) | (uint8_t)b.data[start + 7];
        size_t flen = REPL_FRAME_HEADER_LEN + plen;
        bool small = flen <= 2048;

        for (size_t bit = 0; small && bit < flen * 8; bit++) {
            char *p = b.data + start + bit / 8;
            const uint8_t *m = (const uint8_t *)b.data + start;
            size_t declared;

            *p ^= (char)(1 << (bit % 8));
            declared = ((size_t)m[4] << 24) | ((size_t)m[5] << 16) | ((size_t)m[6] << 8) | m[7];
            repl_decoder_init(&d);
            rc = repl_decoder_feed(&d, b.data + start, flen, &used, f);
            *p ^= (char)(1 << (bit % 8));
            assert_int_not_equal(rc, 1);
            if (bit < 8)
                assert_true(rc == REPL_FRAME_EBADMAGIC || rc == REPL_FRAME_EVERSION);
            else if (bit >= 16 && bit < 32)
                assert_int_equal(rc, REPL_FRAME_EFLAGS);
            else if (bit >= 64)
                assert_int_equal(rc, REPL_FRAME_ECHECKSUM);    /* CRC or payload */
            else if (bit >= 32)
                /* length: too big, shorter (CRC), or waiting for more bytes */
                assert_true(rc == REPL_FRAME_ETOOBIG || rc == REPL_FRAME_ECHECKSUM || rc == 0);
            else
                assert_true(rc == REPL_FRAME_ETYPE || rc == REPL_FRAME_ECHECKSUM);
            /* A rejected decoder never allocated past the declared frame. */
            assert_true(d.cap <= 4096 || d.cap <= REPL_FRAME_HEADER_LEN + declared);
            repl_decoder_free(&d);
        }
        (void)fi;
        start += flen;
    }
    buf_free(&b);
    free(f);
}

static void test_oversize_and_unknown(void **state)
{
    static const uint8_t types[] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    struct repl_frame f;
    struct repl_decoder d;
    uint8_t payload[64] = { 0 };
    struct buf b;
    size_t used;

    buf_init(&b, 4096);
    for (size_t i = 0; i < sizeof types; i++) {
        uint32_t max = repl_frame_max_payload(types[i]);

        assert_true(max >= 64);
        buf_reset(&b);
        raw_frame(&b, REPL_FRAME_MAGIC, types[i], 0, payload, 0, max + 1);
        repl_decoder_init(&d);
        assert_int_equal(repl_decoder_feed(&d, b.data, b.len, &used, &f), REPL_FRAME_ETOOBIG);
        assert_true(d.cap <= 4096);        /* nothing allocated for the payload */
        repl_decoder_free(&d);
        /* At the limit: accepted, but memory follows the bytes that came. */
        buf_reset(&b);
        raw_frame(&b, REPL_FRAME_MAGIC, types[i], 0, payload, 0, max);
        assert_int_equal(repl_decoder_feed(&d, b.data, b.len, &used, &f), 0);
        assert_true(d.cap <= 65536 + REPL_FRAME_HEADER_LEN);
        assert_int_equal(repl_decoder_feed(&d, payload, sizeof payload, &used, &f), 0);
        assert_true(d.cap <= 65536 + REPL_FRAME_HEADER_LEN);
        repl_decoder_free(&d);
        buf_reset(&b);
        raw_frame(&b, REPL_FRAME_MAGIC, types[i], 0, payload, 0, max + 1);
        assert_int_equal(repl_decoder_feed(&d, b.data, b.len, &used, &f), REPL_FRAME_ETOOBIG);
        /* Sticky: even a good frame afterwards gets the same error. */
        buf_reset(&b);
        raw_frame(&b, REPL_FRAME_MAGIC, REPL_FRAME_SNAPSHOT_END, 0, payload, 32, 32);
        assert_int_equal(repl_decoder_feed(&d, b.data, b.len, &used, &f), REPL_FRAME_ETOOBIG);
        assert_int_equal(repl_decoder_want(&d, &(void *){ NULL }), 0);
        repl_decoder_free(&d);
    }
    buf_reset(&b);
    raw_frame(&b, REPL_FRAME_MAGIC, REPL_FRAME_HEARTBEAT, 0, payload, 0, 0xffffffffu);
    assert_int_equal(repl_frame_decode(b.data, b.len, &f), REPL_FRAME_ETOOBIG);
    assert_int_equal(repl_frame_max_payload(REPL_FRAME_RECORDS), 8u << 20);
    assert_int_equal(repl_frame_max_payload(REPL_FRAME_SNAPSHOT_CHUNK), (1u << 20) + 8);
    assert_int_equal(repl_frame_max_payload(REPL_FRAME_ACK), 64u << 10);

    for (unsigned t = 0; t < 256; t++) {
        if (t >= 1 && t <= 8)
            continue;
        buf_reset(&b);
        raw_frame(&b, REPL_FRAME_MAGIC, (uint8_t)t, 0, payload, 32, 32);
        assert_int_equal(repl_frame_decode(b.data, b.len, &f), REPL_FRAME_ETYPE);
    }
    buf_reset(&b);
    raw_frame(&b, 0xF2, REPL_FRAME_ACK, 0, payload, 64, 64);
    assert_int_equal(repl_frame_decode(b.data, b.len, &f), REPL_FRAME_EVERSION);
    buf_reset(&b);
    raw_frame(&b, 0x16, REPL_FRAME_ACK, 0, payload, 64, 64);    /* a TLS record, say */
    assert_int_equal(repl_frame_decode(b.data, b.len, &f), REPL_FRAME_EBADMAGIC);
    buf_reset(&b);
    raw_frame(&b, REPL_FRAME_MAGIC, REPL_FRAME_ACK, 0x0100, payload, 64, 64);
    assert_int_equal(repl_frame_decode(b.data, b.len, &f), REPL_FRAME_EFLAGS);
    buf_reset(&b);
    raw_frame(&b, REPL_FRAME_MAGIC, REPL_FRAME_ACK, 0, payload, 64, 64);
    assert_int_equal(repl_frame_decode(b.data, b.len, &f), 0);
    assert_int_equal(repl_frame_decode(b.data, 5, &f), REPL_FRAME_EMALFORMED);
    assert_string_equal(repl_frame_strerror(REPL_FRAME_ECHECKSUM), "frame checksum mismatch");
    buf_free(&b);
}

/* Every strict prefix of a valid payload (with a correct CRC) is malformed,
 * and one extra byte is trailing. */
static void check_truncations(uint8_t type, const uint8_t *payload, size_t len, bool tail_free)
{
    struct repl_frame *f = xcalloc(1, sizeof *f);
    struct buf b;
    uint8_t *longer = xmalloc(len + 1);

    buf_init(&b, BIG);
    for (size_t n = 0; n < len; n++) {
        buf_reset(&b);
        raw_frame(&b, REPL_FRAME_MAGIC, type, 0, payload, (uint32_t)n, (uint32_t)n);
        assert_int_equal(repl_frame_decode(b.data, b.len, f), REPL_FRAME_EMALFORMED);
    }
    buf_reset(&b);
    raw_frame(&b, REPL_FRAME_MAGIC, type, 0, payload, (uint32_t)len, (uint32_t)len);
    assert_int_equal(repl_frame_decode(b.data, b.len, f), 0);
    if (!tail_free) {
        memcpy(longer, payload, len);
        longer[len] = 0;
        buf_reset(&b);
        raw_frame(&b, REPL_FRAME_MAGIC, type, 0, longer, (uint32_t)len + 1, (uint32_t)len + 1);
        /* a HELLO's optional region field makes a stray byte a malformed region */
        assert_int_equal(repl_frame_decode(b.data, b.len, f),
                         type == REPL_FRAME_HELLO ? REPL_FRAME_EMALFORMED : REPL_FRAME_ETRAILING);
    }
    buf_free(&b);
    free(longer);
    free(f);
}

static void test_truncated_and_trailing(void **state)
{
    struct buf b;
    size_t off = 0;

    buf_init(&b, BIG);
    encode_all(&b);
    for (int i = 0; i < 8; i++) {
        const uint8_t *h = (const uint8_t *)b.data + off;
        uint32_t plen = ((uint32_t)h[4] << 24) | ((uint32_t)h[5] << 16) | ((uint32_t)h[6] << 8) | h[7];
        uint8_t type = h[1];

        if (type == REPL_FRAME_SNAPSHOT_CHUNK || type == REPL_FRAME_ERROR) {
            /* Open-ended payloads: only the fixed part can be cut short. */
            size_t fixed = type == REPL_FRAME_ERROR ? 4 : 8;
            check_truncations(type, h + REPL_FRAME_HEADER_LEN, fixed, true);
        } else {
            check_truncations(type, h + REPL_FRAME_HEADER_LEN, plen, false);
        }
        off += REPL_FRAME_HEADER_LEN + plen;
    }
    assert_int_equal(off, b.len);
    buf_free(&b);
}

static void test_hello_region(void **state)
{
    struct repl_hello *h = sample_hello(2);
    struct repl_frame *f = xcalloc(1, sizeof *f);
    struct buf b, plain;

    buf_init(&b, BIG);
    buf_init(&plain, BIG);
    assert_int_equal(repl_frame_encode_hello(&plain, h), 0);
    snprintf(h->region, sizeof h->region, "%s", "eu-west");
    assert_int_equal(repl_frame_encode_hello(&b, h), 0);
    assert_int_equal(b.len, plain.len + 1 + 7);
    assert_int_equal(repl_frame_decode(b.data, b.len, f), 0);
    assert_string_equal(f->u.hello.region, "eu-west");
    assert_int_equal(repl_frame_decode(plain.data, plain.len, f), 0);
    assert_string_equal(f->u.hello.region, "");
    /* a region the encoder cannot send is refused, the buffer unchanged */
    buf_reset(&b);
    snprintf(h->region, sizeof h->region, "%s", "bad region");
    assert_int_equal(repl_frame_encode_hello(&b, h), -EINVAL);
    assert_int_equal(b.len, 0);
    buf_free(&b);
    buf_free(&plain);
    free(f);
    free(h);
}

static void test_field_ranges(void **state)
{
    struct repl_hello *h = sample_hello(2);
    struct repl_frame *f = xcalloc(1, sizeof *f);
    uint8_t p[4096];
    struct buf b, raw;
    size_t plen;

    buf_init(&b, BIG);
    buf_init(&raw, BIG);
    assert_int_equal(repl_frame_encode_hello(&b, h), 0);
    plen = b.len - REPL_FRAME_HEADER_LEN;
    memcpy(p, b.data + REPL_FRAME_HEADER_LEN, plen);

#define REDECODE(expect)                                                                  \
    do {                                                                                  \
        buf_reset(&raw);                                                                  \
        raw_frame(&raw, REPL_FRAME_MAGIC, REPL_FRAME_HELLO, 0, p, (uint32_t)plen,        \
                  (uint32_t)plen);                                                        \
        assert_int_equal(repl_frame_decode(raw.data, raw.len, f), (expect));              \
    } while (0)

    REDECODE(0);
    p[8] = '_';                          /* cluster id: not a uuid */
    REDECODE(REPL_FRAME_EMALFORMED);
    p[8] = '-';
    p[36] = 0;                           /* empty node name */
    REDECODE(REPL_FRAME_EMALFORMED);
    p[36] = 6;
    p[37] = ' ';                         /* non-printable name byte */
    REDECODE(REPL_FRAME_EMALFORMED);
    p[37] = 'n';
    p[36 + 1 + 6 + 4] = 2;               /* role 2 */
    REDECODE(REPL_FRAME_EMALFORMED);
    p[36 + 1 + 6 + 4] = REPL_ROLE_ACTIVE;
    REDECODE(0);
    assert_int_equal(f->u.hello.role, REPL_ROLE_ACTIVE);
    /* history count 2 -> 3 without the bytes: malformed. */
    p[36 + 1 + 6 + 57 + 1] = 3;
    REDECODE(REPL_FRAME_EMALFORMED);
    /* history count 1025 */
    p[36 + 1 + 6 + 57] = 0x04;
    p[36 + 1 + 6 + 57 + 1] = 0x01;
    REDECODE(REPL_FRAME_EMALFORMED);
    p[36 + 1 + 6 + 57] = 0;
    p[36 + 1 + 6 + 57 + 1] = 2;
    /* second history epoch equal to the first: not increasing. */
    p[36 + 1 + 6 + 59 + 16 + 7] = 1;
    REDECODE(REPL_FRAME_EMALFORMED);
    p[36 + 1 + 6 + 59 + 16 + 7] = 2;
    REDECODE(0);
#undef REDECODE

    /* RECORDS: count 0, count beyond the bytes, changeset length past the end. */
    {
        uint8_t r[4 + 60 + 3] = { 0 };

        buf_reset(&raw);
        raw_frame(&raw, REPL_FRAME_MAGIC, REPL_FRAME_RECORDS, 0, r, 4, 4);
        assert_int_equal(repl_frame_decode(raw.data, raw.len, f), REPL_FRAME_EMALFORMED);
        r[3] = 1;
        r[4 + 59] = 3;                   /* changeset length 3, present */
        buf_reset(&raw);
        raw_frame(&raw, REPL_FRAME_MAGIC, REPL_FRAME_RECORDS, 0, r, sizeof r, sizeof r);
        assert_int_equal(repl_frame_decode(raw.data, raw.len, f), 0);
        r[4 + 59] = 4;                   /* one byte more than present */
        buf_reset(&raw);
        raw_frame(&raw, REPL_FRAME_MAGIC, REPL_FRAME_RECORDS, 0, r, sizeof r, sizeof r);
        assert_int_equal(repl_frame_decode(raw.data, raw.len, f), REPL_FRAME_EMALFORMED);
        r[4 + 56] = 0xff;                /* length 0xff000004: far past */
        buf_reset(&raw);
        raw_frame(&raw, REPL_FRAME_MAGIC, REPL_FRAME_RECORDS, 0, r, sizeof r, sizeof r);
        assert_int_equal(repl_frame_decode(raw.data, raw.len, f), REPL_FRAME_EMALFORMED);
        r[4 + 56] = 0;
        r[4 + 59] = 2;                   /* one byte less: trailing */
        buf_reset(&raw);
        raw_frame(&raw, REPL_FRAME_MAGIC, REPL_FRAME_RECORDS, 0, r, sizeof r, sizeof r);
        assert_int_equal(repl_frame_decode(raw.data, raw.len, f), REPL_FRAME_ETRAILING);
        r[0] = 0x7f;                     /* huge count */
        buf_reset(&raw);
        raw_frame(&raw, REPL_FRAME_MAGIC, REPL_FRAME_RECORDS, 0, r, sizeof r, sizeof r);
        assert_int_equal(repl_frame_decode(raw.data, raw.len, f), REPL_FRAME_EMALFORMED);
    }
    /* ERROR message longer than 1024 bytes. */
    memset(p, 'e', sizeof p);
    buf_reset(&raw);
    raw_frame(&raw, REPL_FRAME_MAGIC, REPL_FRAME_ERROR, 0, p, 4 + 1024, 4 + 1024);
    assert_int_equal(repl_frame_decode(raw.data, raw.len, f), 0);
    buf_reset(&raw);
    raw_frame(&raw, REPL_FRAME_MAGIC, REPL_FRAME_ERROR, 0, p, 4 + 1025, 4 + 1025);
    assert_int_equal(repl_frame_decode(raw.data, raw.len, f), REPL_FRAME_EMALFORMED);
    buf_free(&raw);
    buf_free(&b);
    free(h);
    free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hello_roundtrip),
        cmocka_unit_test(test_hello_encode_refusals),
        cmocka_unit_test(test_records_roundtrip),
        cmocka_unit_test(test_records_writer_limits),
        cmocka_unit_test(test_small_types_roundtrip),
        cmocka_unit_test(test_encode_respects_buf_limit),
        cmocka_unit_test(test_stream_splits),
        cmocka_unit_test(test_want_wrote),
        cmocka_unit_test(test_every_bit_flip_is_caught),
        cmocka_unit_test(test_oversize_and_unknown),
        cmocka_unit_test(test_truncated_and_trailing),
        cmocka_unit_test(test_hello_region),
        cmocka_unit_test(test_field_ranges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
