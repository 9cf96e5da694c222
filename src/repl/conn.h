/*
 * conn — the replication transport: a byte stream with timeouts, over a plain
 * file descriptor or over mutually authenticated TLS 1.3 (tls.c).
 *
 * Like Redis' ConnectionType or PostgreSQL's libpqwalreceiver, the protocol
 * (frame.h) never learns which one carries its bytes. Production uses TLS;
 * plain fds are for tests (socketpair(2)) and for insecure_plaintext = true.
 *
 * Threads: a struct repl_conn is used by one thread at a time, except
 * repl_conn_shutdown(), which any thread may call to make a blocked read or
 * write on it return promptly (the owner then calls repl_conn_close()).
 *
 * Errors (negative): -ETIMEDOUT (deadline passed), -ECONNRESET (peer closed
 * in the middle of a write, or reset), -EPIPE (connection shut down),
 * -EPROTO (TLS failure), or another -errno from the socket. Functions that
 * can fail for a reason worth logging also fill `err` (may be NULL) with one
 * line naming the peer, e.g. "127.0.0.1:7401: peer certificate verify failed:
 * unable to get local issuer certificate".
 */
#ifndef REFUGE_REPL_CONN_H
#define REFUGE_REPL_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "repl/frame.h"

struct repl_conn;
struct repl_tls;            /* tls.h: SSL contexts built from CA, cert and key files */

/* The transport interface; one instance per implementation. */
struct repl_conn_ops {
    const char *name;       /* "plain" or "tls" */
    /* > 0 bytes read, 0 at orderly EOF, or negative. Waits at most timeout_ms
     * (< 0 = no limit) for the first byte. */
    ssize_t (*read)(struct repl_conn *c, void *buf, size_t n, int timeout_ms);
    /* Writes all n bytes within timeout_ms (< 0 = no limit): 0 or negative. */
    int (*write_all)(struct repl_conn *c, const void *buf, size_t n, int timeout_ms);
    /* Releases implementation state and closes the fd. */
    void (*close)(struct repl_conn *c);
};

struct repl_conn {
    const struct repl_conn_ops *ops;
    int fd;
    char peer_addr[64];     /* "10.0.0.2:7401", "[::1]:7401" or the given description */
    char peer_name[REPL_NODE_NAME_MAX + 1]; /* verified certificate CN; "" over plain */
    char desc[64 + REPL_NODE_NAME_MAX + 4]; /* "addr (name)" or "addr" */
    int shut;               /* set by repl_conn_shutdown (atomic builtins) */
    char last_err[192];     /* reason for the last failed read/write, "" if none */
    void *impl;             /* implementation state (SSL *) */
};

/* Wraps a connected fd (ownership passes to the conn, even on failure) as a
 * plain transport. peer_desc NULL = derived from getpeername() or "socketpair".
 * Never fails; caller frees with repl_conn_close(). */
struct repl_conn *repl_conn_plain(int fd, const char *peer_desc);

/* TLS over a connected fd (ownership passes to the function: closed on
 * failure): runs the handshake within timeout_ms, verifying the peer against
 * the cluster CA. The client side also checks the server certificate's
 * subjectAltName against `verify_host` when it is non-NULL (an IP literal or
 * DNS name). 0 with *out set, or negative with err filled. */
int repl_conn_tls_client(int fd, struct repl_tls *tls, const char *verify_host,
                         const char *peer_desc, int timeout_ms, struct repl_conn **out,
                         char *err, size_t errlen);
int repl_conn_tls_server(int fd, struct repl_tls *tls, const char *peer_desc, int timeout_ms,
                         struct repl_conn **out, char *err, size_t errlen);

ssize_t repl_conn_read(struct repl_conn *c, void *buf, size_t n, int timeout_ms);
int repl_conn_write_all(struct repl_conn *c, const void *buf, size_t n, int timeout_ms);
/* Wakes blocked I/O on c from any thread (shutdown(2) on the socket); later
 * reads return 0 or an error, writes -EPIPE. Idempotent. */
void repl_conn_shutdown(struct repl_conn *c);
/* Closes and frees; c may be NULL. (TLS: sends close_notify, best effort.) */
void repl_conn_close(struct repl_conn *c);

/* "10.0.0.2:7401" (the address alone). */
const char *repl_conn_peer_addr(const struct repl_conn *c);
/* "10.0.0.2:7401 (node-b)" when a certificate named the peer, else the address:
 * the string to put in log lines. */
const char *repl_conn_describe(const struct repl_conn *c);
/* Verified certificate CN, or NULL over a plain transport. */
const char *repl_conn_peer_name(const struct repl_conn *c);
bool repl_conn_is_tls(const struct repl_conn *c);
/* Why the last read or write on c failed ("tlsv13 alert certificate required",
 * "Connection reset by peer", "timed out"), "" when none did. Over TLS 1.3 a
 * server's refusal of the client certificate reaches the client only here,
 * on its first read after the handshake. */
const char *repl_conn_last_error(const struct repl_conn *c);

/* ---- Frames over a conn ------------------------------------------------
 * Glue for the engine: reads bytes into `d` until one frame is complete.
 * Returns 1 with *out set (views valid until the next call on d), 0 at EOF
 * between frames, -ECONNRESET at EOF inside a frame, -ETIMEDOUT when no
 * complete frame arrived within timeout_ms (< 0 = no limit; the partial frame
 * is kept and a later call continues it), a negative repl_frame_err for a bad
 * frame, or another negative transport error. */
int repl_conn_read_frame(struct repl_conn *c, struct repl_decoder *d, struct repl_frame *out,
                         int timeout_ms);
/* Writes the whole buffer (one or more encoded frames): 0 or negative. */
int repl_conn_write_buf(struct repl_conn *c, const struct buf *b, int timeout_ms);

/* ---- Connecting and listening --------------------------------------------
 * Addresses are "host:port", "[v6]:port" or ":port" / "*:port" (listen on all).
 * tls NULL = plain transport (insecure_plaintext only). */

/* Resolves host, connects within timeout_ms, and (tls != NULL) runs the TLS
 * handshake with the server certificate's subjectAltName checked against host.
 * 0 with *out set, or negative with err filled. */
int repl_conn_connect(const char *hostport, int timeout_ms, struct repl_tls *tls,
                      struct repl_conn **out, char *err, size_t errlen);

struct repl_listener;

/* Binds and listens (SO_REUSEADDR, close-on-exec). Port 0 picks a free port
 * (see repl_listener_port). 0 or negative with err filled. */
int repl_listener_open(const char *addr, struct repl_tls *tls, struct repl_listener **out,
                       char *err, size_t errlen);
/* Waits up to timeout_ms (< 0 = no limit) for a connection and, with TLS,
 * completes the handshake (bounded by timeout_ms but at least 1 s; 10 s when
 * timeout_ms < 0, so a silent peer cannot hold the accept loop).
 * 0 with *out set; -ETIMEDOUT when nobody connected; -ECONNABORTED when a
 * peer connected but was refused (bad certificate, ...; err says why, and
 * the listener stays usable); another negative on a listener failure. */
int repl_listener_accept(struct repl_listener *l, int timeout_ms, struct repl_conn **out,
                         char *err, size_t errlen);
int repl_listener_port(const struct repl_listener *l);
int repl_listener_fd(const struct repl_listener *l);
void repl_listener_close(struct repl_listener *l);      /* l may be NULL */

/* ---- For transport implementations (conn.c, tls.c) ---------------------- */

/* Monotonic deadline in us for a timeout in ms; -1 for no limit (< 0). */
int64_t repl_deadline(int timeout_ms);
/* Milliseconds left until deadline for poll(2): -1 unlimited, 0 when passed. */
int repl_deadline_left_ms(int64_t deadline);
/* Waits until fd is ready for events (POLLIN / POLLOUT) or the deadline
 * passes: 0, -ETIMEDOUT, or -errno. Retries on EINTR. */
int repl_conn_poll(int fd, short events, int64_t deadline);
/* Allocates a conn for fd (made non-blocking) with ops; peer_desc NULL =
 * the numeric peer address from getpeername(), or "socketpair". */
struct repl_conn *repl_conn_alloc(const struct repl_conn_ops *ops, int fd, const char *peer_desc);
/* Records the verified certificate name and refreshes c->desc. */
void repl_conn_set_peer_name(struct repl_conn *c, const char *name);

#endif
