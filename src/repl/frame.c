/*
 * frame — encoder and incremental decoder for the replication wire protocol.
 *
 * The byte tables are in frame.h (and docs/replication.md). The decoder is
 * the only code that reads bytes a peer sent before they are trusted, so it
 * checks in this order and allocates only after the cheap checks passed:
 * magic and version, type, flags, the type's size limit (header only), then
 * the CRC over header + payload, then every payload field, and finally that
 * nothing is left over. Parsing goes through a cursor that turns any read
 * past the end into a sticky "malformed" flag, so no field read can overrun.
 */
#include "repl/frame.h"

#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/crc32c.h"
#include "core/xmalloc.h"

/* ---- Names ------------------------------------------------------------- */

const char *repl_frame_type_name(uint32_t type)
{
    switch (type) {
    case REPL_FRAME_HELLO: return "HELLO";
    case REPL_FRAME_RECORDS: return "RECORDS";
    case REPL_FRAME_ACK: return "ACK";
    case REPL_FRAME_HEARTBEAT: return "HEARTBEAT";
    case REPL_FRAME_SNAPSHOT_BEGIN: return "SNAPSHOT_BEGIN";
    case REPL_FRAME_SNAPSHOT_CHUNK: return "SNAPSHOT_CHUNK";
    case REPL_FRAME_SNAPSHOT_END: return "SNAPSHOT_END";
    case REPL_FRAME_ERROR: return "ERROR";
    default: return "UNKNOWN";
    }
}

const char *repl_error_code_name(uint32_t code)
{
    switch (code) {
    case REPL_ERR_PROTOCOL: return "protocol";
    case REPL_ERR_CLUSTER_MISMATCH: return "cluster_mismatch";
    case REPL_ERR_SCHEMA_MISMATCH: return "schema_mismatch";
    case REPL_ERR_STALE_EPOCH: return "stale_epoch";
    case REPL_ERR_ROLE_CONFLICT: return "role_conflict";
    case REPL_ERR_DIVERGED: return "diverged";
    case REPL_ERR_UNTRUSTED_PEER: return "untrusted_peer";
    case REPL_ERR_APPLY_FAILED: return "apply_failed";
    case REPL_ERR_SNAPSHOT_FAILED: return "snapshot_failed";
    case REPL_ERR_BUSY: return "busy";
    case REPL_ERR_SHUTDOWN: return "shutdown";
    case REPL_ERR_INTERNAL: return "internal";
    default: return "unknown";
    }
}

const char *repl_frame_strerror(int err)
{
    switch (err) {
    case REPL_FRAME_EBADMAGIC: return "bad frame magic";
    case REPL_FRAME_EVERSION: return "unsupported protocol version";
    case REPL_FRAME_ETYPE: return "unknown frame type";
    case REPL_FRAME_EFLAGS: return "reserved frame flags set";
    case REPL_FRAME_ETOOBIG: return "frame larger than its type allows";
    case REPL_FRAME_ECHECKSUM: return "frame checksum mismatch";
    case REPL_FRAME_EMALFORMED: return "malformed frame payload";
    case REPL_FRAME_ETRAILING: return "trailing bytes in frame payload";
    default: return "unknown error";
    }
}

uint32_t repl_frame_max_payload(uint32_t type)
{
    switch (type) {
    case REPL_FRAME_RECORDS: return REPL_MAX_PAYLOAD_RECORDS;
    case REPL_FRAME_SNAPSHOT_CHUNK: return REPL_MAX_PAYLOAD_SNAPSHOT_CHUNK;
    case REPL_FRAME_HELLO:
    case REPL_FRAME_ACK:
    case REPL_FRAME_HEARTBEAT:
    case REPL_FRAME_SNAPSHOT_BEGIN:
    case REPL_FRAME_SNAPSHOT_END:
    case REPL_FRAME_ERROR:
        return REPL_MAX_PAYLOAD_DEFAULT;
    default:
        return 0;
    }
}

/* ---- Big-endian helpers -------------------------------------------------- */

static void be16_put(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void be32_put(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void be64_put(uint8_t *p, uint64_t v)
{
    be32_put(p, (uint32_t)(v >> 32));
    be32_put(p + 4, (uint32_t)v);
}

static uint16_t be16_get(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t be32_get(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint64_t be64_get(const uint8_t *p)
{
    return ((uint64_t)be32_get(p) << 32) | be32_get(p + 4);
}

/* ---- Encoder ------------------------------------------------------------- */

static int put_u8(struct buf *b, uint8_t v)
{
    return buf_append(b, &v, 1);
}

static int put_u16(struct buf *b, uint16_t v)
{
    uint8_t t[2];

    be16_put(t, v);
    return buf_append(b, t, sizeof t);
}

static int put_u32(struct buf *b, uint32_t v)
{
    uint8_t t[4];

    be32_put(t, v);
    return buf_append(b, t, sizeof t);
}

static int put_u64(struct buf *b, uint64_t v)
{
    uint8_t t[8];

    be64_put(t, v);
    return buf_append(b, t, sizeof t);
}

static int put_pos(struct buf *b, const struct repl_pos *p)
{
    int rc = put_u64(b, p->epoch);

    return rc < 0 ? rc : put_u64(b, p->lsn);
}

/* Restores b to `len` bytes (a failed encode leaves no trace). */
static void truncate_to(struct buf *b, size_t len)
{
    b->len = len;
    if (b->data)
        b->data[len] = '\0';
}

/* Appends a header with length and CRC still zero; *start gets its offset. */
static int frame_open(struct buf *b, uint8_t type, size_t *start)
{
    uint8_t hdr[REPL_FRAME_HEADER_LEN] = { 0 };

    *start = b->len;
    hdr[0] = REPL_FRAME_MAGIC;
    hdr[1] = type;
    return buf_append(b, hdr, sizeof hdr);
}

/* Fills in length and CRC of the frame that starts at `start`. */
static int frame_close(struct buf *b, size_t start)
{
    uint8_t *hdr = (uint8_t *)b->data + start;
    size_t plen = b->len - start - REPL_FRAME_HEADER_LEN;
    uint32_t crc;

    if (plen > repl_frame_max_payload(hdr[1]))
        return -E2BIG;
    be32_put(hdr + 4, (uint32_t)plen);
    crc = crc32c(0, hdr, 8);
    crc = crc32c(crc, hdr + REPL_FRAME_HEADER_LEN, plen);
    be32_put(hdr + 8, crc);
    return 0;
}

static bool node_name_ok(const char *s, size_t n)
{
    if (n < 1 || n > REPL_NODE_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return false;
    return true;
}

static bool history_ok(const struct repl_epoch_start *h, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (h[i].epoch <= h[i - 1].epoch || h[i].start_lsn < h[i - 1].start_lsn)
            return false;
    return true;
}

int repl_frame_encode_hello(struct buf *out, const struct repl_hello *h)
{
    size_t start = out->len, name_len = strnlen(h->node_name, sizeof h->node_name), region_len;
    int rc;

    if (!uuid_valid(h->cluster_id, strnlen(h->cluster_id, sizeof h->cluster_id)) ||
        !node_name_ok(h->node_name, name_len) ||
        (h->role != REPL_ROLE_ACTIVE && h->role != REPL_ROLE_STANDBY) ||
        h->n_history > REPL_HELLO_MAX_HISTORY ||
        !history_ok(h->history, h->n_history))
        return -EINVAL;
    if ((rc = frame_open(out, REPL_FRAME_HELLO, &start)) < 0 ||
        (rc = buf_append(out, h->cluster_id, UUID_STRLEN)) < 0 ||
        (rc = put_u8(out, (uint8_t)name_len)) < 0 ||
        (rc = buf_append(out, h->node_name, name_len)) < 0 ||
        (rc = put_u32(out, h->schema_version)) < 0 || (rc = put_u8(out, h->role)) < 0 ||
        (rc = put_u32(out, h->flags)) < 0 || (rc = put_pos(out, &h->last)) < 0 ||
        (rc = buf_append(out, h->last_hash, REPL_HASH_LEN)) < 0 ||
        (rc = put_u16(out, (uint16_t)h->n_history)) < 0)
        goto out;
    for (uint32_t i = 0; i < h->n_history; i++) {
        if ((rc = put_u64(out, h->history[i].epoch)) < 0 ||
            (rc = put_u64(out, h->history[i].start_lsn)) < 0)
            goto out;
    }
    region_len = strnlen(h->region, sizeof h->region);
    if (region_len && !node_name_ok(h->region, region_len)) {
        rc = -EINVAL;
        goto out;
    }
    if (region_len && ((rc = put_u8(out, (uint8_t)region_len)) < 0 ||
                       (rc = buf_append(out, h->region, region_len)) < 0))
        goto out;
    rc = frame_close(out, start);
out:
    if (rc < 0)
        truncate_to(out, start);
    return rc;
}

int repl_records_begin(struct repl_records_writer *w, struct buf *out)
{
    int rc;

    w->out = out;
    w->count = 0;
    if ((rc = frame_open(out, REPL_FRAME_RECORDS, &w->start)) < 0 ||
        (rc = put_u32(out, 0)) < 0)
        truncate_to(out, w->start);
    return rc;
}

int repl_records_add(struct repl_records_writer *w, const struct repl_record *r)
{
    struct buf *out = w->out;
    size_t before = out->len;
    size_t plen = out->len - w->start - REPL_FRAME_HEADER_LEN;
    size_t rlen;
    int rc;

    if (r->changeset.len > REPL_MAX_PAYLOAD_RECORDS - 4 - REPL_RECORD_HEADER_LEN)
        return -EMSGSIZE;
    rlen = REPL_RECORD_HEADER_LEN + r->changeset.len;
    if (rlen > REPL_MAX_PAYLOAD_RECORDS - plen || w->count == UINT32_MAX)
        return -E2BIG;
    if ((rc = put_pos(out, &r->pos)) < 0 || (rc = put_u64(out, r->commit_us)) < 0 ||
        (rc = buf_append(out, r->hash, REPL_HASH_LEN)) < 0 ||
        (rc = put_u32(out, (uint32_t)r->changeset.len)) < 0 ||
        (rc = buf_append(out, r->changeset.p, r->changeset.len)) < 0) {
        truncate_to(out, before);
        return rc;
    }
    w->count++;
    return 0;
}

int repl_records_end(struct repl_records_writer *w)
{
    int rc;

    if (w->count == 0) {
        repl_records_abort(w);
        return -EINVAL;
    }
    be32_put((uint8_t *)w->out->data + w->start + REPL_FRAME_HEADER_LEN, w->count);
    rc = frame_close(w->out, w->start);
    if (rc < 0)
        repl_records_abort(w);
    return rc;
}

void repl_records_abort(struct repl_records_writer *w)
{
    truncate_to(w->out, w->start);
    w->count = 0;
}

int repl_frame_encode_records(struct buf *out, const struct repl_record *recs, size_t n)
{
    struct repl_records_writer w;
    int rc;

    if (n == 0)
        return -EINVAL;
    if ((rc = repl_records_begin(&w, out)) < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if ((rc = repl_records_add(&w, &recs[i])) < 0) {
            repl_records_abort(&w);
            return rc == -EMSGSIZE ? -E2BIG : rc;
        }
    }
    return repl_records_end(&w);
}

int repl_frame_encode_ack(struct buf *out, const struct repl_ack *a)
{
    size_t start = out->len;
    int rc;

    if ((rc = frame_open(out, REPL_FRAME_ACK, &start)) < 0 ||
        (rc = put_pos(out, &a->written)) < 0 || (rc = put_pos(out, &a->applied)) < 0 ||
        (rc = buf_append(out, a->applied_hash, REPL_HASH_LEN)) < 0)
        goto out;
    rc = frame_close(out, start);
out:
    if (rc < 0)
        truncate_to(out, start);
    return rc;
}

int repl_frame_encode_heartbeat(struct buf *out, const struct repl_heartbeat *hb)
{
    size_t start = out->len;
    int rc;

    if ((rc = frame_open(out, REPL_FRAME_HEARTBEAT, &start)) < 0 ||
        (rc = put_pos(out, &hb->pos)) < 0 || (rc = put_u64(out, hb->mono_us)) < 0 ||
        (rc = put_u64(out, hb->wall_us)) < 0)
        goto out;
    rc = frame_close(out, start);
out:
    if (rc < 0)
        truncate_to(out, start);
    return rc;
}

int repl_frame_encode_snapshot_begin(struct buf *out, const struct repl_snapshot_begin *sb)
{
    size_t start = out->len;
    int rc;

    if ((rc = frame_open(out, REPL_FRAME_SNAPSHOT_BEGIN, &start)) < 0 ||
        (rc = put_pos(out, &sb->pos)) < 0 ||
        (rc = buf_append(out, sb->hash, REPL_HASH_LEN)) < 0 ||
        (rc = put_u64(out, sb->total_bytes)) < 0 || (rc = put_u32(out, sb->schema_version)) < 0)
        goto out;
    rc = frame_close(out, start);
out:
    if (rc < 0)
        truncate_to(out, start);
    return rc;
}

int repl_frame_encode_snapshot_chunk(struct buf *out, uint64_t offset, const void *data, size_t n)
{
    size_t start = out->len;
    int rc;

    if (n > REPL_SNAPSHOT_CHUNK_MAX)
        return -E2BIG;
    if ((rc = frame_open(out, REPL_FRAME_SNAPSHOT_CHUNK, &start)) < 0 ||
        (rc = put_u64(out, offset)) < 0 || (rc = buf_append(out, data, n)) < 0)
        goto out;
    rc = frame_close(out, start);
out:
    if (rc < 0)
        truncate_to(out, start);
    return rc;
}

int repl_frame_encode_snapshot_end(struct buf *out, const uint8_t sha256[32])
{
    size_t start = out->len;
    int rc;

    if ((rc = frame_open(out, REPL_FRAME_SNAPSHOT_END, &start)) < 0 ||
        (rc = buf_append(out, sha256, 32)) < 0)
        goto out;
    rc = frame_close(out, start);
out:
    if (rc < 0)
        truncate_to(out, start);
    return rc;
}

int repl_frame_encode_error(struct buf *out, uint32_t code, const char *msg, size_t len)
{
    size_t start = out->len;
    int rc;

    if (len > REPL_ERROR_MSG_MAX)
        len = REPL_ERROR_MSG_MAX;
    if ((rc = frame_open(out, REPL_FRAME_ERROR, &start)) < 0 || (rc = put_u32(out, code)) < 0 ||
        (rc = buf_append(out, msg, len)) < 0)
        goto out;
    rc = frame_close(out, start);
out:
    if (rc < 0)
        truncate_to(out, start);
    return rc;
}

/* ---- Payload parsing ------------------------------------------------------ */

/* A read cursor: any read past the end sets bad and yields zeros. */
struct cur {
    const uint8_t *p;
    size_t n;
    bool bad;
};

static const uint8_t *take(struct cur *c, size_t k)
{
    const uint8_t *p;

    if (c->bad || k > c->n) {
        c->bad = true;
        return NULL;
    }
    p = c->p;
    c->p += k;
    c->n -= k;
    return p;
}

static uint8_t get_u8(struct cur *c)
{
    const uint8_t *p = take(c, 1);

    return p ? p[0] : 0;
}

static uint16_t get_u16(struct cur *c)
{
    const uint8_t *p = take(c, 2);

    return p ? be16_get(p) : 0;
}

static uint32_t get_u32(struct cur *c)
{
    const uint8_t *p = take(c, 4);

    return p ? be32_get(p) : 0;
}

static uint64_t get_u64(struct cur *c)
{
    const uint8_t *p = take(c, 8);

    return p ? be64_get(p) : 0;
}

static void get_bytes(struct cur *c, void *dst, size_t k)
{
    const uint8_t *p = take(c, k);

    if (p)
        memcpy(dst, p, k);
    else
        memset(dst, 0, k);
}

static void get_pos(struct cur *c, struct repl_pos *p)
{
    p->epoch = get_u64(c);
    p->lsn = get_u64(c);
}

static int parse_hello(struct cur *c, struct repl_hello *h)
{
    const uint8_t *p;
    uint8_t name_len;

    memset(h, 0, offsetof(struct repl_hello, history));
    if (!(p = take(c, UUID_STRLEN)) || !uuid_valid((const char *)p, UUID_STRLEN))
        return REPL_FRAME_EMALFORMED;
    memcpy(h->cluster_id, p, UUID_STRLEN);
    name_len = get_u8(c);
    if (!(p = take(c, name_len)) || !node_name_ok((const char *)p, name_len))
        return REPL_FRAME_EMALFORMED;
    memcpy(h->node_name, p, name_len);
    h->schema_version = get_u32(c);
    h->role = get_u8(c);
    h->flags = get_u32(c);
    get_pos(c, &h->last);
    get_bytes(c, h->last_hash, REPL_HASH_LEN);
    h->n_history = get_u16(c);
    if (c->bad || h->n_history > REPL_HELLO_MAX_HISTORY || c->n < (size_t)h->n_history * 16)
        return REPL_FRAME_EMALFORMED;
    if (h->role != REPL_ROLE_ACTIVE && h->role != REPL_ROLE_STANDBY)
        return REPL_FRAME_EMALFORMED;
    for (uint32_t i = 0; i < h->n_history; i++) {
        h->history[i].epoch = get_u64(c);
        h->history[i].start_lsn = get_u64(c);
    }
    if (!history_ok(h->history, h->n_history))
        return REPL_FRAME_EMALFORMED;
    /* region: an optional trailing field (absent from version-1 peers before it existed) */
    h->region[0] = '\0';
    if (c->n > 0) {
        uint8_t region_len = get_u8(c);
        /* present means 1..64 bytes: one encoding per HELLO */
        if (region_len == 0 || region_len > REPL_NODE_NAME_MAX || !(p = take(c, region_len)) ||
            !node_name_ok((const char *)p, region_len))
            return REPL_FRAME_EMALFORMED;
        memcpy(h->region, p, region_len);
        h->region[region_len] = '\0';
    }
    return 0;
}

/* Reads one record; false when the bytes do not hold a whole one. */
static bool record_read(struct cur *c, struct repl_record *r)
{
    uint32_t len;
    const uint8_t *p;

    get_pos(c, &r->pos);
    r->commit_us = get_u64(c);
    get_bytes(c, r->hash, REPL_HASH_LEN);
    len = get_u32(c);
    p = take(c, len);
    r->changeset.p = (const char *)p;
    r->changeset.len = p ? len : 0;
    return !c->bad;
}

static int parse_records(struct cur *c, struct repl_records *r)
{
    struct repl_record rec;
    const uint8_t *area;

    r->count = get_u32(c);
    if (c->bad || r->count == 0 || r->count > c->n / REPL_RECORD_HEADER_LEN)
        return REPL_FRAME_EMALFORMED;
    area = c->p;
    for (uint32_t i = 0; i < r->count; i++)
        if (!record_read(c, &rec))
            return REPL_FRAME_EMALFORMED;
    r->raw.p = (const char *)area;
    r->raw.len = (size_t)(c->p - area);
    return 0;
}

static int parse_payload(uint8_t type, struct cur *c, struct repl_frame *f)
{
    int rc = 0;

    switch (type) {
    case REPL_FRAME_HELLO:
        rc = parse_hello(c, &f->u.hello);
        break;
    case REPL_FRAME_RECORDS:
        rc = parse_records(c, &f->u.records);
        break;
    case REPL_FRAME_ACK:
        get_pos(c, &f->u.ack.written);
        get_pos(c, &f->u.ack.applied);
        get_bytes(c, f->u.ack.applied_hash, REPL_HASH_LEN);
        break;
    case REPL_FRAME_HEARTBEAT:
        get_pos(c, &f->u.heartbeat.pos);
        f->u.heartbeat.mono_us = get_u64(c);
        f->u.heartbeat.wall_us = get_u64(c);
        break;
    case REPL_FRAME_SNAPSHOT_BEGIN:
        get_pos(c, &f->u.snap_begin.pos);
        get_bytes(c, f->u.snap_begin.hash, REPL_HASH_LEN);
        f->u.snap_begin.total_bytes = get_u64(c);
        f->u.snap_begin.schema_version = get_u32(c);
        break;
    case REPL_FRAME_SNAPSHOT_CHUNK:
        f->u.snap_chunk.offset = get_u64(c);
        if (c->n > REPL_SNAPSHOT_CHUNK_MAX)
            return REPL_FRAME_EMALFORMED;
        f->u.snap_chunk.data.p = (const char *)c->p;
        f->u.snap_chunk.data.len = c->n;
        take(c, c->n);
        break;
    case REPL_FRAME_SNAPSHOT_END:
        get_bytes(c, f->u.snap_end.sha256, 32);
        break;
    case REPL_FRAME_ERROR:
        f->u.error.code = get_u32(c);
        if (c->n > REPL_ERROR_MSG_MAX)
            return REPL_FRAME_EMALFORMED;
        f->u.error.message.p = (const char *)c->p;
        f->u.error.message.len = c->n;
        take(c, c->n);
        break;
    default:
        return REPL_FRAME_ETYPE;
    }
    if (rc < 0)
        return rc;
    if (c->bad)
        return REPL_FRAME_EMALFORMED;
    if (c->n != 0)
        return REPL_FRAME_ETRAILING;
    return 0;
}

struct repl_records_iter repl_records_iter(const struct repl_records *r)
{
    struct repl_records_iter it = { r->raw, r->count };

    return it;
}

bool repl_records_next(struct repl_records_iter *it, struct repl_record *out)
{
    struct cur c;

    if (it->left == 0)
        return false;
    c = (struct cur){ (const uint8_t *)it->rest.p, it->rest.len, false };
    if (!record_read(&c, out)) {
        /* Cannot happen for a decoder-verified frame. */
        it->left = 0;
        return false;
    }
    it->rest.p = (const char *)c.p;
    it->rest.len = c.n;
    it->left--;
    return true;
}

/* ---- Decoder ------------------------------------------------------------- */

/* Checks a complete header; on success *plen gets the payload length. */
static int header_check(const uint8_t *h, uint32_t *plen)
{
    uint32_t max;

    if ((h[0] & 0xF0) != (REPL_FRAME_MAGIC & 0xF0))
        return REPL_FRAME_EBADMAGIC;
    if (h[0] != REPL_FRAME_MAGIC)
        return REPL_FRAME_EVERSION;
    max = repl_frame_max_payload(h[1]);
    if (max == 0)
        return REPL_FRAME_ETYPE;
    if (be16_get(h + 2) != 0)
        return REPL_FRAME_EFLAGS;
    *plen = be32_get(h + 4);
    if (*plen > max)
        return REPL_FRAME_ETOOBIG;
    return 0;
}

/* Verifies the CRC of a whole frame at f and parses its payload. */
static int frame_finish(const uint8_t *f, uint32_t plen, struct repl_frame *out)
{
    uint32_t crc = crc32c(0, f, 8);
    struct cur c = { f + REPL_FRAME_HEADER_LEN, plen, false };

    crc = crc32c(crc, f + REPL_FRAME_HEADER_LEN, plen);
    if (crc != be32_get(f + 8))
        return REPL_FRAME_ECHECKSUM;
    out->type = (enum repl_frame_type)f[1];
    out->flags = be16_get(f + 2);
    out->payload.p = (const char *)f + REPL_FRAME_HEADER_LEN;
    out->payload.len = plen;
    return parse_payload(f[1], &c, out);
}

int repl_frame_decode(const void *data, size_t n, struct repl_frame *out)
{
    const uint8_t *f = data;
    uint32_t plen;
    int rc;

    if (n < REPL_FRAME_HEADER_LEN)
        return REPL_FRAME_EMALFORMED;
    if ((rc = header_check(f, &plen)) < 0)
        return rc;
    if (n != REPL_FRAME_HEADER_LEN + (size_t)plen)
        return REPL_FRAME_EMALFORMED;
    return frame_finish(f, plen, out);
}

void repl_decoder_init(struct repl_decoder *d)
{
    memset(d, 0, sizeof *d);
    d->need = REPL_FRAME_HEADER_LEN;
}

void repl_decoder_free(struct repl_decoder *d)
{
    free(d->buf);
    repl_decoder_init(d);
}

/* Ensures the buffer holds `n` bytes; n <= REPL_FRAME_MAX by construction. */
static void reserve(struct repl_decoder *d, size_t n)
{
    size_t cap;

    assert(n <= REPL_FRAME_MAX);
    if (n <= d->cap)
        return;
    /* Exactly what was asked for (at least one page): never more than the
     * declared frame, which header_check() already bounded. */
    cap = n < 4096 ? 4096 : n;
    d->buf = xrealloc(d->buf, cap);
    d->cap = cap;
}

/* Starts the next frame when the previous one was handed out. */
static void next_frame(struct repl_decoder *d)
{
    if (d->ready) {
        d->ready = false;
        d->have = 0;
        d->need = REPL_FRAME_HEADER_LEN;
    }
}

size_t repl_decoder_want(struct repl_decoder *d, void **dst)
{
    size_t target, step;

    if (d->err)
        return 0;
    next_frame(d);
    /* Grow with the bytes that actually arrive (64 KiB, then doubling), so a
     * header that declares 8 MiB costs 8 MiB only once 8 MiB came. */
    target = d->need;
    step = d->have < 65536 ? 65536 : d->have;
    if (target - d->have > step)
        target = d->have + step;
    reserve(d, target);
    *dst = d->buf + d->have;
    return (d->cap < d->need ? d->cap : d->need) - d->have;
}

int repl_decoder_wrote(struct repl_decoder *d, size_t k, struct repl_frame *out)
{
    uint32_t plen;
    int rc;

    if (d->err)
        return d->err;
    assert(!d->ready && k <= d->need - d->have);
    d->have += k;
    if (d->have < d->need)
        return 0;
    if (d->need == REPL_FRAME_HEADER_LEN) {
        if ((rc = header_check(d->buf, &plen)) < 0)
            return d->err = rc;
        d->need += plen;
        if (plen > 0)
            return 0;
    }
    plen = (uint32_t)(d->need - REPL_FRAME_HEADER_LEN);
    if ((rc = frame_finish(d->buf, plen, out)) < 0)
        return d->err = rc;
    d->ready = true;
    return 1;
}

int repl_decoder_feed(struct repl_decoder *d, const void *data, size_t n, size_t *used,
                      struct repl_frame *out)
{
    const uint8_t *p = data;
    size_t want, k;
    void *dst;
    int rc = 0;

    *used = 0;
    if (d->err)
        return d->err;
    while (*used < n) {
        want = repl_decoder_want(d, &dst);
        k = n - *used < want ? n - *used : want;
        memcpy(dst, p + *used, k);
        *used += k;
        rc = repl_decoder_wrote(d, k, out);
        if (rc != 0)
            break;
    }
    return rc;
}
