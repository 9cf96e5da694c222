/*
 * tls — mutual TLS 1.3 for the replication link (OpenSSL 3), and the TLS
 * implementation of struct repl_conn_ops.
 *
 * Trust is the cluster CA and nothing else: the contexts load only
 * [replication] tls_ca (never the system store), both sides demand and verify
 * a certificate (SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT), and the
 * client also checks the server's subjectAltName against the host it dialled.
 * The verified peer's CN is its node name; the engine compares it with the
 * name in HELLO.
 *
 * I/O is non-blocking underneath: SSL_ERROR_WANT_READ / WANT_WRITE turn into
 * a poll(2) bounded by the caller's deadline, as in conn.c. Note TLS 1.3
 * ordering: the client finishes its handshake before the server has checked
 * the client certificate, so a refused client learns it from the alert on its
 * first read (repl_conn_last_error() then names the alert).
 */
#include "repl/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/xmalloc.h"
#include "repl/conn.h"

#define ERRF(...) ((err && errlen) ? (void)snprintf(err, errlen, __VA_ARGS__) : (void)0)

struct repl_tls {
    SSL_CTX *server;
    SSL_CTX *client;
    char own_name[REPL_NODE_NAME_MAX + 1];
};

/* The most useful line OpenSSL's error queue holds right now (and clears it). */
static const char *ssl_reason(char *out, size_t outlen)
{
    unsigned long e, last = 0;
    const char *r;

    while ((e = ERR_get_error()) != 0)
        if (!last || ERR_GET_LIB(e) == ERR_LIB_SSL)
            last = e;
    if (!last) {
        snprintf(out, outlen, "unknown TLS error");
        return out;
    }
    r = ERR_reason_error_string(last);
    if (!r)
        snprintf(out, outlen, "unknown TLS error");
    else if (strstr(r, " alert "))     /* the peer refused: say so */
        snprintf(out, outlen, "peer sent TLS alert (%s)", r);
    else
        snprintf(out, outlen, "%s", r);
    return out;
}

/* Copies the subject CN of x into out ("" when absent or not printable ASCII). */
static void cert_cn(X509 *x, char *out, size_t outlen)
{
    X509_NAME *name = x ? X509_get_subject_name(x) : NULL;
    const ASN1_STRING *s;
    const unsigned char *d;
    int idx, len;

    out[0] = '\0';
    if (!name || (idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1)) < 0)
        return;
    s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
    d = ASN1_STRING_get0_data(s);
    len = ASN1_STRING_length(s);
    if (len <= 0 || (size_t)len >= outlen)
        return;
    for (int i = 0; i < len; i++)
        if (d[i] < 0x21 || d[i] > 0x7e)
            return;
    memcpy(out, d, (size_t)len);
    out[len] = '\0';
}

/* ---- Contexts ---------------------------------------------------------------- */

static int ctx_new(bool server, const char *ca, const char *cert, const char *key, SSL_CTX **out,
                   char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    STACK_OF(X509_NAME) *names;
    char why[160];
    int rc = -EPROTO;

    if (!ctx) {
        ERRF("cannot create TLS context: %s", ssl_reason(why, sizeof why));
        goto out;
    }
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION)) {
        ERRF("cannot require TLS 1.3: %s", ssl_reason(why, sizeof why));
        goto out;
    }
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_TICKET);
    SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (access(ca, R_OK) != 0 || access(cert, R_OK) != 0 || access(key, R_OK) != 0) {
        const char *f = access(ca, R_OK) ? ca : access(cert, R_OK) ? cert : key;
        rc = errno == ENOENT ? -ENOENT : -EACCES;
        ERRF("%s: %s", f, strerror(-rc));
        goto out;
    }
    rc = -EINVAL;
    if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
        ERRF("%s: cannot load CA certificates: %s", ca, ssl_reason(why, sizeof why));
        goto out;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        ERRF("%s: cannot load certificate: %s", cert, ssl_reason(why, sizeof why));
        goto out;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
            ERRF("%s: private key does not match certificate %s", key, cert);
            ERR_clear_error();
        } else {
            ERRF("%s: cannot load private key: %s", key, ssl_reason(why, sizeof why));
        }
        goto out;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ERRF("%s: private key does not match certificate %s", key, cert);
        ERR_clear_error();
        goto out;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    SSL_CTX_set_verify_depth(ctx, 4);
    if (server) {
        if (!(names = SSL_load_client_CA_file(ca))) {
            ERRF("%s: cannot read CA names: %s", ca, ssl_reason(why, sizeof why));
            goto out;
        }
        SSL_CTX_set_client_CA_list(ctx, names);
    }
    *out = ctx;
    ctx = NULL;
    rc = 0;
out:
    SSL_CTX_free(ctx);
    return rc;
}

int repl_tls_new(const char *ca_file, const char *cert_file, const char *key_file,
                 struct repl_tls **out, char *err, size_t errlen)
{
    struct repl_tls *t = xcalloc(1, sizeof *t);
    int rc;

    *out = NULL;
    if (!ca_file || !cert_file || !key_file) {
        ERRF("tls_ca, tls_cert and tls_key are all required");
        rc = -EINVAL;
        goto out;
    }
    if ((rc = ctx_new(true, ca_file, cert_file, key_file, &t->server, err, errlen)) < 0 ||
        (rc = ctx_new(false, ca_file, cert_file, key_file, &t->client, err, errlen)) < 0)
        goto out;
    cert_cn(SSL_CTX_get0_certificate(t->server), t->own_name, sizeof t->own_name);
    *out = t;
    t = NULL;
out:
    repl_tls_free(t);
    return rc;
}

void repl_tls_free(struct repl_tls *t)
{
    if (!t)
        return;
    SSL_CTX_free(t->server);
    SSL_CTX_free(t->client);
    free(t);
}

const char *repl_tls_own_name(const struct repl_tls *t)
{
    return t->own_name;
}

/* ---- Transport ---------------------------------------------------------------- */

/* Turns an SSL_get_error() result into a wait (0) or a final error (< 0). */
static int ssl_wait(struct repl_conn *c, SSL *ssl, int ret, int64_t deadline)
{
    int e = SSL_get_error(ssl, ret);
    char why[160];

    switch (e) {
    case SSL_ERROR_WANT_READ:
        return repl_conn_poll(c->fd, POLLIN, deadline);
    case SSL_ERROR_WANT_WRITE:
        return repl_conn_poll(c->fd, POLLOUT, deadline);
    case SSL_ERROR_ZERO_RETURN:
        return -ECONNRESET;
    case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        if (errno == EINTR)
            return 0;
        snprintf(c->last_err, sizeof c->last_err, "%s",
                 errno ? strerror(errno) : "connection closed");
        return errno == EPIPE || errno == 0 ? -ECONNRESET : -errno;
    default:
        snprintf(c->last_err, sizeof c->last_err, "%s", ssl_reason(why, sizeof why));
        return -EPROTO;
    }
}

static ssize_t tls_read(struct repl_conn *c, void *buf, size_t n, int timeout_ms)
{
    int64_t deadline = repl_deadline(timeout_ms);
    SSL *ssl = c->impl;
    size_t got = 0;
    int ret, rc;

    for (;;) {
        ERR_clear_error();
        errno = 0;
        ret = SSL_read_ex(ssl, buf, n, &got);
        if (ret == 1)
            return (ssize_t)got;
        if (SSL_get_error(ssl, ret) == SSL_ERROR_ZERO_RETURN)
            return 0;
        if ((rc = ssl_wait(c, ssl, ret, deadline)) < 0)
            return rc;
    }
}

static int tls_write_all(struct repl_conn *c, const void *buf, size_t n, int timeout_ms)
{
    int64_t deadline = repl_deadline(timeout_ms);
    SSL *ssl = c->impl;
    const char *p = buf;
    size_t wrote;
    int ret, rc;

    while (n > 0) {
        ERR_clear_error();
        errno = 0;
        ret = SSL_write_ex(ssl, p, n, &wrote);
        if (ret == 1) {
            p += wrote;
            n -= wrote;
            continue;
        }
        if ((rc = ssl_wait(c, ssl, ret, deadline)) < 0)
            return rc;
    }
    return 0;
}

static void tls_close(struct repl_conn *c)
{
    SSL *ssl = c->impl;

    if (ssl) {
        if (!__atomic_load_n(&c->shut, __ATOMIC_ACQUIRE))
            (void)SSL_shutdown(ssl);    /* one non-blocking close_notify, best effort */
        ERR_clear_error();
        SSL_free(ssl);
    }
    c->impl = NULL;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

static const struct repl_conn_ops tls_ops = {
    .name = "tls",
    .read = tls_read,
    .write_all = tls_write_all,
    .close = tls_close,
};

/*
 * A socket BIO that sends with MSG_NOSIGNAL: OpenSSL's own socket BIO uses
 * write(2), which raises SIGPIPE when the peer has gone, and a library must
 * not depend on every program ignoring that signal.
 */
static int nosig_write(BIO *b, const char *data, int n)
{
    int fd = (int)(intptr_t)BIO_get_data(b);
    ssize_t w;

    BIO_clear_retry_flags(b);
    w = send(fd, data, (size_t)n, MSG_NOSIGNAL);
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        BIO_set_retry_write(b);
    return (int)w;
}

static int nosig_read(BIO *b, char *data, int n)
{
    int fd = (int)(intptr_t)BIO_get_data(b);
    ssize_t r;

    BIO_clear_retry_flags(b);
    r = recv(fd, data, (size_t)n, 0);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        BIO_set_retry_read(b);
    return (int)r;
}

static long nosig_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_C_GET_FD:
        if (ptr)
            *(int *)ptr = (int)(intptr_t)BIO_get_data(b);
        return (long)(intptr_t)BIO_get_data(b);
    default:
        return 0;
    }
}

static int nosig_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static BIO_METHOD *nosig_method;
static pthread_once_t nosig_once = PTHREAD_ONCE_INIT;

static void nosig_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
                                 "refuge socket");

    if (!m || !BIO_meth_set_write(m, nosig_write) || !BIO_meth_set_read(m, nosig_read) ||
        !BIO_meth_set_ctrl(m, nosig_ctrl) || !BIO_meth_set_create(m, nosig_create))
        abort();    /* only allocation can fail here; the one OOM policy is to abort */
    nosig_method = m;
}

/* A BIO over fd (not owning it). NULL only if OpenSSL is out of memory. */
static BIO *nosig_bio(int fd)
{
    BIO *b;

    pthread_once(&nosig_once, nosig_init);
    if (!(b = BIO_new(nosig_method)))
        return NULL;
    BIO_set_data(b, (void *)(intptr_t)fd);
    return b;
}

/* Runs the handshake; on failure err gets "<peer>: TLS handshake failed: <why>". */
static int handshake(bool server, int fd, struct repl_tls *tls, const char *verify_host,
                     const char *peer_desc, int timeout_ms, struct repl_conn **out, char *err,
                     size_t errlen)
{
    int64_t deadline = repl_deadline(timeout_ms);
    struct repl_conn *c;
    unsigned char ipbuf[16];
    char why[192], name[REPL_NODE_NAME_MAX + 1];
    SSL *ssl;
    BIO *bio;
    long vr;
    int ret, rc;

    *out = NULL;
    c = repl_conn_alloc(&tls_ops, fd, peer_desc);
    ssl = SSL_new(server ? tls->server : tls->client);
    if (!ssl) {
        ERRF("%s: TLS setup failed: %s", c->peer_addr, ssl_reason(why, sizeof why));
        rc = -EPROTO;
        goto out;
    }
    c->impl = ssl;
    if (!(bio = nosig_bio(fd))) {
        ERRF("%s: TLS setup failed: %s", c->peer_addr, ssl_reason(why, sizeof why));
        rc = -EPROTO;
        goto out;
    }
    SSL_set_bio(ssl, bio, bio);
    if (!server && verify_host && verify_host[0]) {
        X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
        bool is_ip = inet_pton(AF_INET, verify_host, ipbuf) == 1 ||
                     inet_pton(AF_INET6, verify_host, ipbuf) == 1;

        if (is_ip) {
            ret = X509_VERIFY_PARAM_set1_ip_asc(param, verify_host);
        } else {
            X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            ret = X509_VERIFY_PARAM_set1_host(param, verify_host, 0) &&
                  SSL_set_tlsext_host_name(ssl, verify_host);
        }
        if (ret != 1) {
            ERRF("%s: bad host name for verification: %s", c->peer_addr, verify_host);
            rc = -EINVAL;
            goto out;
        }
    }
    for (;;) {
        ERR_clear_error();
        errno = 0;
        ret = server ? SSL_accept(ssl) : SSL_connect(ssl);
        if (ret == 1)
            break;
        rc = SSL_get_error(ssl, ret);
        if (rc == SSL_ERROR_WANT_READ || rc == SSL_ERROR_WANT_WRITE) {
            rc = repl_conn_poll(fd, rc == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline);
            if (rc == -ETIMEDOUT) {
                ERRF("%s: TLS handshake timed out", c->peer_addr);
                goto out;
            }
            if (rc < 0) {
                ERRF("%s: TLS handshake failed: %s", c->peer_addr, strerror(-rc));
                goto out;
            }
            continue;
        }
        vr = SSL_get_verify_result(ssl);
        if (vr != X509_V_OK) {
            ERRF("%s: TLS handshake failed: peer certificate verify failed: %s", c->peer_addr,
                 X509_verify_cert_error_string(vr));
            ERR_clear_error();
        } else if (rc == SSL_ERROR_SYSCALL) {
            ERRF("%s: TLS handshake failed: %s", c->peer_addr,
                 errno ? strerror(errno) : "connection closed by peer");
            ERR_clear_error();
        } else {
            ERRF("%s: TLS handshake failed: %s", c->peer_addr, ssl_reason(why, sizeof why));
        }
        rc = -EPROTO;
        goto out;
    }
    /* FAIL_IF_NO_PEER_CERT makes a verified peer certificate certain here. */
    cert_cn(SSL_get0_peer_certificate(ssl), name, sizeof name);
    if (!name[0]) {
        ERRF("%s: peer certificate has no usable CN (node name)", c->peer_addr);
        rc = -EPROTO;
        goto out;
    }
    repl_conn_set_peer_name(c, name);
    *out = c;
    c = NULL;
    rc = 0;
out:
    if (c) {
        __atomic_store_n(&c->shut, 1, __ATOMIC_RELEASE);   /* no close_notify on failure */
        repl_conn_close(c);
    }
    return rc;
}

int repl_conn_tls_client(int fd, struct repl_tls *tls, const char *verify_host,
                         const char *peer_desc, int timeout_ms, struct repl_conn **out,
                         char *err, size_t errlen)
{
    return handshake(false, fd, tls, verify_host, peer_desc, timeout_ms, out, err, errlen);
}

int repl_conn_tls_server(int fd, struct repl_tls *tls, const char *peer_desc, int timeout_ms,
                         struct repl_conn **out, char *err, size_t errlen)
{
    return handshake(true, fd, tls, NULL, peer_desc, timeout_ms, out, err, errlen);
}
