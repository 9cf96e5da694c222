/*
 * frame — the replication wire protocol: frame encoder and incremental decoder.
 *
 * Everything two nodes say to each other travels as frames. This module only
 * turns structs into bytes and bytes into checked structs; it knows nothing
 * about sockets, TLS or the store (STYLE.md §13: transport apart from
 * protocol). docs/replication.md "Wire protocol" has the same tables plus the
 * handshake sequence.
 *
 * Frame header (12 bytes, all integers big-endian):
 *
 *   offset size field
 *   ------ ---- ---------------------------------------------------------
 *      0     1  magic/version: 0xF1 (high nibble 0xF = magic, low = version 1)
 *      1     1  type (enum repl_frame_type)
 *      2     2  flags: no flag is defined yet; must be 0
 *      4     4  payload length in bytes (<= repl_frame_max_payload(type))
 *      8     4  CRC-32C over header bytes 0..7 followed by the payload
 *     12     n  payload
 *
 * Payloads (offsets relative to the payload start):
 *
 *   HELLO (1), <= 64 KiB
 *      0    36  cluster id, canonical lowercase UUID text
 *     36     1  node name length N (1..64)
 *     37     N  node name, printable ASCII 0x21..0x7e
 *    +0      4  schema version
 *    +4      1  role: 0 active, 1 standby (enum repl_role_wire)
 *    +5      4  flags (REPL_HELLO_F_*; unknown bits are ignored)
 *    +9      8  last position epoch
 *   +17      8  last position lsn
 *   +25     32  chained hash at the last position
 *   +57      2  history count H (0..1024)
 *   +59  16*H   H x (epoch u64, start_lsn u64); epochs strictly increasing,
 *               start_lsn non-decreasing
 *
 *   RECORDS (2), <= 8 MiB
 *      0     4  record count C (>= 1)
 *      4     .  C records, each:
 *                 0  8  epoch
 *                 8  8  lsn
 *                16  8  commit time, wall clock us (of the writing node)
 *                24 32  chained hash h(lsn)
 *                56  4  changeset length L
 *                60  L  changeset (SQLite session changeset)
 *
 *   ACK (3), 64 bytes: written (epoch u64, lsn u64), applied (epoch u64,
 *     lsn u64), receiver's chained hash at applied (32).
 *
 *   HEARTBEAT (4), 32 bytes: sender's current (epoch u64, lsn u64), sender's
 *     monotonic clock us (u64), sender's wall clock us (u64, information only;
 *     lag is only ever computed on one node's clock, DESIGN §5.9).
 *
 *   SNAPSHOT_BEGIN (5), 60 bytes: position (epoch u64, lsn u64), chained hash
 *     at that position (32), total file bytes (u64), schema version (u32).
 *
 *   SNAPSHOT_CHUNK (6), 8 + n bytes, n <= 1 MiB: file offset (u64), bytes.
 *
 *   SNAPSHOT_END (7), 32 bytes: SHA-256 of the whole snapshot file.
 *
 *   ERROR (8), 4 + m bytes, m <= 1024: code (u32, enum repl_error_code), message.
 *
 * A payload must be consumed exactly by its fields: trailing bytes are an error.
 */
#ifndef REFUGE_REPL_FRAME_H
#define REFUGE_REPL_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/buf.h"
#include "core/str.h"
#include "core/uuid.h"

#define REPL_FRAME_MAGIC 0xF1u          /* magic nibble 0xF, protocol version 1 */
#define REPL_FRAME_HEADER_LEN 12
#define REPL_HASH_LEN 32

#define REPL_NODE_NAME_MAX 64
#define REPL_HELLO_MAX_HISTORY 1024
#define REPL_ERROR_MSG_MAX 1024
#define REPL_RECORD_HEADER_LEN 60       /* per-record bytes before the changeset */

#define REPL_MAX_PAYLOAD_DEFAULT (64u * 1024)        /* HELLO, ACK, HEARTBEAT, ... */
#define REPL_MAX_PAYLOAD_RECORDS (8u * 1024 * 1024)
#define REPL_SNAPSHOT_CHUNK_MAX (1024u * 1024)       /* data bytes in one chunk */
#define REPL_MAX_PAYLOAD_SNAPSHOT_CHUNK (8u + REPL_SNAPSHOT_CHUNK_MAX)
/* The largest frame of any type, header included. */
#define REPL_FRAME_MAX (REPL_FRAME_HEADER_LEN + REPL_MAX_PAYLOAD_RECORDS)

enum repl_frame_type {
    REPL_FRAME_HELLO = 1,
    REPL_FRAME_RECORDS = 2,
    REPL_FRAME_ACK = 3,
    REPL_FRAME_HEARTBEAT = 4,
    REPL_FRAME_SNAPSHOT_BEGIN = 5,
    REPL_FRAME_SNAPSHOT_CHUNK = 6,
    REPL_FRAME_SNAPSHOT_END = 7,
    REPL_FRAME_ERROR = 8,
};

/* Roles as they appear on the wire (same values as enum node_role). */
enum repl_role_wire { REPL_ROLE_ACTIVE = 0, REPL_ROLE_STANDBY = 1 };

/* HELLO flags. Unknown bits are carried through to the caller unchanged. */
#define REPL_HELLO_F_WANT_STREAM   0x1u  /* standby asks to be streamed from `last` */
#define REPL_HELLO_F_NEED_SNAPSHOT 0x2u  /* standby has no usable state (empty store) */

/* Codes carried by an ERROR frame: why a peer refused or stopped. */
enum repl_error_code {
    REPL_ERR_PROTOCOL = 1,          /* malformed or unexpected frame */
    REPL_ERR_CLUSTER_MISMATCH = 2,  /* different cluster id */
    REPL_ERR_SCHEMA_MISMATCH = 3,   /* different schema version (DESIGN §5.8) */
    REPL_ERR_STALE_EPOCH = 4,       /* peer's epoch is lower than ours (fenced) */
    REPL_ERR_ROLE_CONFLICT = 5,     /* both active (or both standby) in one epoch */
    REPL_ERR_DIVERGED = 6,          /* chained hash / history mismatch */
    REPL_ERR_UNTRUSTED_PEER = 7,    /* certificate name does not match HELLO */
    REPL_ERR_APPLY_FAILED = 8,      /* standby could not apply a record */
    REPL_ERR_SNAPSHOT_FAILED = 9,
    REPL_ERR_BUSY = 10,             /* another standby is already attached */
    REPL_ERR_SHUTDOWN = 11,         /* peer is going away */
    REPL_ERR_INTERNAL = 12,
};
/* Stable lowercase name ("cluster_mismatch"), or "unknown". */
const char *repl_error_code_name(uint32_t code);

/* Decoder errors: negative, below -1000 so they never collide with -errno. */
enum repl_frame_err {
    REPL_FRAME_EBADMAGIC = -1001,   /* first byte is not 0xF? */
    REPL_FRAME_EVERSION = -1002,    /* magic ok, unsupported version nibble */
    REPL_FRAME_ETYPE = -1003,       /* unknown frame type */
    REPL_FRAME_EFLAGS = -1004,      /* reserved header flags set */
    REPL_FRAME_ETOOBIG = -1005,     /* length above the type's limit */
    REPL_FRAME_ECHECKSUM = -1006,   /* CRC-32C mismatch */
    REPL_FRAME_EMALFORMED = -1007,  /* a field is truncated or out of range */
    REPL_FRAME_ETRAILING = -1008,   /* bytes left after the last field */
};
/* Human text for a repl_frame_err (or "unknown error" for anything else). */
const char *repl_frame_strerror(int err);

struct repl_pos {
    uint64_t epoch;
    uint64_t lsn;
};

struct repl_epoch_start {
    uint64_t epoch;
    uint64_t start_lsn;
};

struct repl_hello {
    char cluster_id[UUID_STRLEN + 1];           /* NUL-terminated */
    char node_name[REPL_NODE_NAME_MAX + 1];     /* NUL-terminated */
    uint32_t schema_version;
    uint8_t role;                               /* enum repl_role_wire */
    uint32_t flags;                             /* REPL_HELLO_F_* */
    struct repl_pos last;
    uint8_t last_hash[REPL_HASH_LEN];
    uint32_t n_history;
    struct repl_epoch_start history[REPL_HELLO_MAX_HISTORY];
    char region[REPL_NODE_NAME_MAX + 1];        /* NUL-terminated; "" when the peer sent none */
};

/* One replicated transaction. changeset points into memory owned elsewhere
 * (the decoder's buffer when decoded, the caller's when encoding). */
struct repl_record {
    struct repl_pos pos;
    uint64_t commit_us;
    uint8_t hash[REPL_HASH_LEN];
    struct str changeset;
};

/* A decoded RECORDS payload; iterate with repl_records_next(). */
struct repl_records {
    uint32_t count;
    struct str raw;         /* the records area (after the count), verified */
};

struct repl_ack {
    struct repl_pos written;
    struct repl_pos applied;
    uint8_t applied_hash[REPL_HASH_LEN];
};

struct repl_heartbeat {
    struct repl_pos pos;
    uint64_t mono_us;
    uint64_t wall_us;
};

struct repl_snapshot_begin {
    struct repl_pos pos;
    uint8_t hash[REPL_HASH_LEN];
    uint64_t total_bytes;
    uint32_t schema_version;
};

struct repl_snapshot_chunk {
    uint64_t offset;
    struct str data;        /* into the decoder's buffer */
};

struct repl_snapshot_end {
    uint8_t sha256[32];
};

struct repl_error {
    uint32_t code;          /* enum repl_error_code (unknown codes pass through) */
    struct str message;     /* into the decoder's buffer; may contain any bytes */
};

/*
 * A decoded frame. Views (struct str) point into the decoder's buffer and stay
 * valid until the next repl_decoder_* call on that decoder. The struct is
 * about 17 KiB because of the HELLO history: keep it on the heap or on a
 * thread stack, not in a tight recursion.
 */
struct repl_frame {
    enum repl_frame_type type;
    uint16_t flags;
    struct str payload;     /* the raw payload */
    union {
        struct repl_hello hello;
        struct repl_records records;
        struct repl_ack ack;
        struct repl_heartbeat heartbeat;
        struct repl_snapshot_begin snap_begin;
        struct repl_snapshot_chunk snap_chunk;
        struct repl_snapshot_end snap_end;
        struct repl_error error;
    } u;
};

/* Largest payload allowed for a type; 0 for an unknown type. */
uint32_t repl_frame_max_payload(uint32_t type);
/* "HELLO", "RECORDS", ...; "UNKNOWN" for anything else. */
const char *repl_frame_type_name(uint32_t type);

/* ---- Encoder ---------------------------------------------------------------
 * Each function appends one complete frame to `out`. Returns 0, -E2BIG when
 * the frame would pass the buffer's limit or the type's payload limit, or
 * -EINVAL for a field out of range (bad cluster id, node name, too much
 * history, ...). On failure `out` is left exactly as it was.
 */
int repl_frame_encode_hello(struct buf *out, const struct repl_hello *h);
int repl_frame_encode_records(struct buf *out, const struct repl_record *recs, size_t n);
int repl_frame_encode_ack(struct buf *out, const struct repl_ack *a);
int repl_frame_encode_heartbeat(struct buf *out, const struct repl_heartbeat *hb);
int repl_frame_encode_snapshot_begin(struct buf *out, const struct repl_snapshot_begin *sb);
/* data may be NULL when n == 0; n <= REPL_SNAPSHOT_CHUNK_MAX. */
int repl_frame_encode_snapshot_chunk(struct buf *out, uint64_t offset, const void *data, size_t n);
int repl_frame_encode_snapshot_end(struct buf *out, const uint8_t sha256[32]);
/* The message is cut to REPL_ERROR_MSG_MAX bytes; msg may be NULL when len == 0. */
int repl_frame_encode_error(struct buf *out, uint32_t code, const char *msg, size_t len);

/*
 * Building a RECORDS frame one record at a time (the sender's batching loop):
 *
 *   struct repl_records_writer w;
 *   repl_records_begin(&w, out);
 *   while (more && repl_records_add(&w, &rec) == 0) ...;   // -E2BIG: batch full
 *   repl_records_end(&w);            // or repl_records_abort(&w)
 *
 * repl_records_add() fails with -E2BIG (and appends nothing) when the record
 * would take the payload past REPL_MAX_PAYLOAD_RECORDS or `out` past its limit;
 * send the batch and start another. A single record too large for any frame
 * is -EMSGSIZE. repl_records_end() returns -EINVAL for an empty batch (and
 * removes it). Do not touch `out` between begin and end.
 */
struct repl_records_writer {
    struct buf *out;
    size_t start;           /* offset of the frame header in out */
    uint32_t count;
};
int repl_records_begin(struct repl_records_writer *w, struct buf *out);
int repl_records_add(struct repl_records_writer *w, const struct repl_record *r);
int repl_records_end(struct repl_records_writer *w);
void repl_records_abort(struct repl_records_writer *w);

/* Iterates a decoded RECORDS frame (already fully verified by the decoder):
 *
 *   struct repl_records_iter it = repl_records_iter(&frame.u.records);
 *   struct repl_record rec;
 *   while (repl_records_next(&it, &rec)) ...
 */
struct repl_records_iter {
    struct str rest;
    uint32_t left;
};
struct repl_records_iter repl_records_iter(const struct repl_records *r);
bool repl_records_next(struct repl_records_iter *it, struct repl_record *out);

/* ---- Decoder ---------------------------------------------------------------
 * Feed it bytes as they arrive; it yields complete, checksum-verified,
 * fully parsed frames. Memory: one buffer that grows with the bytes received
 * toward header + the declared payload length, and only after the header
 * passed magic, type, flags and the type's size limit; so never more than
 * that frame, at most REPL_FRAME_MAX bytes. It is kept for the next frame
 * and released by repl_decoder_free(). Errors are sticky:
 * after one, every call returns the same error (the stream is unusable).
 */
struct repl_decoder {
    uint8_t *buf;           /* xmalloc'd; owned */
    size_t cap;
    size_t have;            /* bytes of the current frame received */
    size_t need;            /* bytes of the current frame expected (header first) */
    bool ready;             /* a frame was returned; reset on the next call */
    int err;                /* sticky error, 0 when fine */
};

void repl_decoder_init(struct repl_decoder *d);
void repl_decoder_free(struct repl_decoder *d);

/* Consumes up to n bytes, never past the end of one frame; *used says how
 * many. Returns 1 with *out filled when a frame is complete, 0 when it needs
 * more bytes (all n consumed), or a negative repl_frame_err. Loop:
 *
 *   while (n > 0) {
 *       rc = repl_decoder_feed(d, p, n, &used, &f); p += used; n -= used;
 *       if (rc < 0) fail; if (rc == 1) handle(&f);
 *   }
 */
int repl_decoder_feed(struct repl_decoder *d, const void *data, size_t n, size_t *used,
                      struct repl_frame *out);

/* Zero-copy variant for readers: *dst receives where the next bytes go and
 * the return value is how many bytes may be written there (>= 1; never more
 * than the current header or payload still needs, so a read of that size
 * cannot run into the next frame). Returns 0 after an error. After writing k (1..want) bytes
 * there, call repl_decoder_wrote(), which returns like repl_decoder_feed(). */
size_t repl_decoder_want(struct repl_decoder *d, void **dst);
int repl_decoder_wrote(struct repl_decoder *d, size_t k, struct repl_frame *out);

/* Decodes one complete frame held in [data, data + n) (must be exactly one
 * frame). Views point into data. Returns 0 or a negative repl_frame_err;
 * REPL_FRAME_EMALFORMED when n is not exactly one frame. */
int repl_frame_decode(const void *data, size_t n, struct repl_frame *out);

#endif
