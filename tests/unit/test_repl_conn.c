/*
 * test_repl_conn — the replication transport. Plain: reads, writes, timeouts,
 * EOF, frames across a socketpair (including a partial frame that times out
 * and then completes), and repl_conn_shutdown() waking a blocked reader.
 * TLS: certificates are made on the fly with certgen (two unrelated CAs),
 * then over loopback and over a socketpair: mutual TLS 1.3 works and names
 * both peers; a client certificate from another CA, a server certificate
 * from another CA, no client certificate, a TLS 1.2-only client and a
 * server certificate without the dialled IP are each refused with a clear
 * reason.
 */
#include <errno.h>
#include <dirent.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core/buf.h"
#include "core/timeutil.h"
#include "core/xmalloc.h"
#include "repl/certgen.h"
#include "repl/conn.h"
#include "repl/frame.h"
#include "repl/tls.h"

static char tmp[512];
static char dir_a[600], dir_b[600];

/* ---- Helpers ---------------------------------------------------------------- */

static void rm_rf(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    char p[1200];

    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        if (unlink(p) < 0)
            rm_rf(p);
    }
    if (d)
        closedir(d);
    rmdir(path);
}

static int setup_certs(void **state)
{
    const char *base = getenv("REFUGE_TEST_TMP");
    struct repl_cert_opts ip = { .n_ips = 1, .ips = { "127.0.0.1" } };
    char err[512];

    if (!base || !*base)
        base = "/tmp";
    mkdir(base, 0700);
    snprintf(tmp, sizeof tmp, "%s/test_repl_conn.XXXXXX", base);
    if (!mkdtemp(tmp))
        return -1;
    snprintf(dir_a, sizeof dir_a, "%s/ca-a", tmp);
    snprintf(dir_b, sizeof dir_b, "%s/ca-b", tmp);
    if (repl_cert_init(dir_a, err, sizeof err) < 0 || repl_cert_init(dir_b, err, sizeof err) < 0 ||
        repl_cert_issue(dir_a, "node-a", &ip, err, sizeof err) < 0 ||
        repl_cert_issue(dir_a, "node-b", &ip, err, sizeof err) < 0 ||
        repl_cert_issue(dir_a, "node-noip", NULL, err, sizeof err) < 0 ||
        repl_cert_issue(dir_b, "node-x", &ip, err, sizeof err) < 0) {
        fprintf(stderr, "certgen: %s\n", err);
        return -1;
    }
    return 0;
}

static int teardown_certs(void **state)
{
    rm_rf(tmp);
    return 0;
}

/* TLS context trusting CA `ca_dir`, with NAME's cert/key from `cert_dir`. */
static struct repl_tls *tls_for(const char *ca_dir, const char *cert_dir, const char *name)
{
    char ca[700], crt[700], key[700], err[512];
    struct repl_tls *t = NULL;

    snprintf(ca, sizeof ca, "%s/ca.crt", ca_dir);
    snprintf(crt, sizeof crt, "%s/%s.crt", cert_dir, name);
    snprintf(key, sizeof key, "%s/%s.key", cert_dir, name);
    if (repl_tls_new(ca, crt, key, &t, err, sizeof err) < 0)
        fail_msg("repl_tls_new: %s", err);
    return t;
}

static void pair(struct repl_conn **a, struct repl_conn **b)
{
    int sv[2];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    *a = repl_conn_plain(sv[0], NULL);
    *b = repl_conn_plain(sv[1], "peer-b");
}

/* ---- Plain transport ---------------------------------------------------------- */

static void test_plain_basics(void **state)
{
    struct repl_conn *a, *b;
    char buf[64];
    int64_t t0;

    pair(&a, &b);
    assert_false(repl_conn_is_tls(a));
    assert_null(repl_conn_peer_name(a));
    assert_string_equal(repl_conn_peer_addr(a), "socketpair");
    assert_string_equal(repl_conn_describe(b), "peer-b");
    assert_int_equal(repl_conn_write_all(a, "hello", 5, 1000), 0);
    assert_int_equal(repl_conn_read(b, buf, sizeof buf, 1000), 5);
    assert_memory_equal(buf, "hello", 5);

    t0 = time_mono_us();
    assert_int_equal(repl_conn_read(b, buf, sizeof buf, 50), -ETIMEDOUT);
    assert_true(time_mono_us() - t0 >= 45000);
    assert_string_equal(repl_conn_last_error(b), "timed out");

    repl_conn_close(a);
    assert_int_equal(repl_conn_read(b, buf, sizeof buf, 1000), 0);     /* EOF */
    assert_true(repl_conn_write_all(b, "x", 1, 1000) < 0);             /* no SIGPIPE */
    assert_string_not_equal(repl_conn_last_error(b), "");
    repl_conn_close(b);
    repl_conn_close(NULL);
}

static void test_plain_write_timeout(void **state)
{
    struct repl_conn *a, *b;
    size_t n = 16u << 20;
    char *big = xcalloc(1, n);
    int64_t t0 = time_mono_us();

    pair(&a, &b);
    /* Nobody reads b: the socket buffers fill and the deadline fires. */
    assert_int_equal(repl_conn_write_all(a, big, n, 100), -ETIMEDOUT);
    assert_true(time_mono_us() - t0 < 5000000);
    repl_conn_close(a);
    repl_conn_close(b);
    free(big);
}

struct writer_arg {
    struct repl_conn *c;
    struct buf *b;
    int rc;
    int delay_ms;
};

static void *writer_thread(void *p)
{
    struct writer_arg *w = p;

    if (w->delay_ms)
        time_sleep_us((int64_t)w->delay_ms * 1000);
    w->rc = repl_conn_write_buf(w->c, w->b, 10000);
    return NULL;
}

static void test_plain_frames(void **state)
{
    struct repl_frame *f = xcalloc(1, sizeof *f);
    struct repl_conn *a, *b;
    struct repl_decoder d;
    struct repl_record r = { { 2, 10 }, 77, { 0 }, { NULL, 0 } };
    struct repl_ack ack = { { 2, 10 }, { 2, 9 }, { 0 } };
    struct writer_arg w;
    pthread_t th;
    struct buf out;
    char *cs = xcalloc(1, 8u << 20);

    buf_init(&out, 20u << 20);
    repl_decoder_init(&d);
    pair(&a, &b);

    /* A 7 MiB RECORDS frame and an ACK, written by another thread. */
    r.changeset.p = cs;
    r.changeset.len = 7u << 20;
    cs[12345] = 'z';
    assert_int_equal(repl_frame_encode_records(&out, &r, 1), 0);
    assert_int_equal(repl_frame_encode_ack(&out, &ack), 0);
    w = (struct writer_arg){ a, &out, -1, 0 };
    assert_int_equal(pthread_create(&th, NULL, writer_thread, &w), 0);
    assert_int_equal(repl_conn_read_frame(b, &d, f, 10000), 1);
    assert_int_equal(f->type, REPL_FRAME_RECORDS);
    {
        struct repl_records_iter it = repl_records_iter(&f->u.records);
        struct repl_record got;
        assert_true(repl_records_next(&it, &got));
        assert_int_equal(got.changeset.len, 7u << 20);
        assert_int_equal(got.changeset.p[12345], 'z');
        assert_true(got.pos.lsn == 10 && got.commit_us == 77);
    }
    assert_int_equal(repl_conn_read_frame(b, &d, f, 10000), 1);
    assert_int_equal(f->type, REPL_FRAME_ACK);
    assert_true(f->u.ack.applied.lsn == 9);
    pthread_join(th, NULL);
    assert_int_equal(w.rc, 0);

    /* Half a frame, then a timeout; the rest later completes it. */
    buf_reset(&out);
    assert_int_equal(repl_frame_encode_ack(&out, &ack), 0);
    assert_int_equal(repl_conn_write_all(a, out.data, 20, 1000), 0);
    assert_int_equal(repl_conn_read_frame(b, &d, f, 50), -ETIMEDOUT);
    assert_int_equal(repl_conn_write_all(a, out.data + 20, out.len - 20, 1000), 0);
    assert_int_equal(repl_conn_read_frame(b, &d, f, 1000), 1);
    assert_int_equal(f->type, REPL_FRAME_ACK);

    /* Garbage: a protocol error, and the reason is kept. */
    assert_int_equal(repl_conn_write_all(a, "GET / HTTP/1.1\r\n\r\n", 18, 1000), 0);
    assert_int_equal(repl_conn_read_frame(b, &d, f, 1000), REPL_FRAME_EBADMAGIC);
    assert_string_equal(repl_conn_last_error(b), "bad frame magic");
    assert_int_equal(repl_conn_read_frame(b, &d, f, 1000), REPL_FRAME_EBADMAGIC);  /* sticky */
    repl_decoder_free(&d);
    repl_decoder_init(&d);
    repl_conn_close(a);
    repl_conn_close(b);
    pair(&a, &b);

    /* EOF between frames is 0; inside a frame it is -ECONNRESET. */
    assert_int_equal(repl_conn_write_all(a, out.data, 30, 1000), 0);
    repl_conn_close(a);
    assert_int_equal(repl_conn_read_frame(b, &d, f, 1000), -ECONNRESET);
    repl_conn_close(b);
    repl_decoder_free(&d);
    repl_decoder_init(&d);
    pair(&a, &b);
    repl_conn_close(a);
    assert_int_equal(repl_conn_read_frame(b, &d, f, 1000), 0);
    repl_conn_close(b);

    repl_decoder_free(&d);
    buf_free(&out);
    free(cs);
    free(f);
}

struct reader_arg {
    struct repl_conn *c;
    ssize_t rc;
    int64_t took_us;
};

static void *reader_thread(void *p)
{
    struct reader_arg *r = p;
    char buf[16];
    int64_t t0 = time_mono_us();

    r->rc = repl_conn_read(r->c, buf, sizeof buf, 20000);
    r->took_us = time_mono_us() - t0;
    return NULL;
}

static void test_shutdown_wakes_reader(void **state)
{
    struct repl_conn *a, *b;
    struct reader_arg r;
    pthread_t th;

    pair(&a, &b);
    r = (struct reader_arg){ b, -1, 0 };
    assert_int_equal(pthread_create(&th, NULL, reader_thread, &r), 0);
    time_sleep_us(50000);
    repl_conn_shutdown(b);
    pthread_join(th, NULL);
    assert_true(r.rc <= 0);
    assert_true(r.took_us < 5000000);
    assert_int_equal(repl_conn_write_all(b, "x", 1, 100), -EPIPE);
    repl_conn_shutdown(b);      /* idempotent */
    repl_conn_close(b);
    repl_conn_close(a);
}

static void test_listener_plain(void **state)
{
    struct repl_listener *l = NULL;
    struct repl_conn *s = NULL, *c = NULL;
    char err[256], addr[64], buf[8];

    assert_int_equal(repl_listener_open("127.0.0.1:0", NULL, &l, err, sizeof err), 0);
    assert_true(repl_listener_port(l) > 0);
    assert_int_equal(repl_listener_accept(l, 30, &s, err, sizeof err), -ETIMEDOUT);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", repl_listener_port(l));
    assert_int_equal(repl_conn_connect(addr, 1000, NULL, &c, err, sizeof err), 0);
    assert_string_equal(repl_conn_peer_addr(c), addr);
    assert_int_equal(repl_listener_accept(l, 1000, &s, err, sizeof err), 0);
    assert_true(strncmp(repl_conn_peer_addr(s), "127.0.0.1:", 10) == 0);
    assert_int_equal(repl_conn_write_all(c, "ping", 4, 1000), 0);
    assert_int_equal(repl_conn_read(s, buf, sizeof buf, 1000), 4);
    repl_conn_close(c);
    repl_conn_close(s);

    /* Bad addresses and a refused connection give clear errors. */
    assert_int_equal(repl_conn_connect("no-port", 1000, NULL, &c, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "bad address"));
    assert_int_equal(repl_conn_connect("::1:80", 1000, NULL, &c, err, sizeof err), -EINVAL);
    assert_int_equal(repl_conn_connect("127.0.0.1:99999", 1000, NULL, &c, err, sizeof err),
                     -EINVAL);
    repl_listener_close(l);
    assert_true(repl_conn_connect(addr, 1000, NULL, &c, err, sizeof err) < 0);
    assert_non_null(strstr(err, "connect failed"));
    assert_null(c);
    assert_int_equal(repl_listener_open("[::1]:0", NULL, &l, err, sizeof err), 0);
    repl_listener_close(l);
    repl_listener_close(NULL);
}

/* ---- TLS ---------------------------------------------------------------------- */

struct client_arg {
    char addr[64];
    struct repl_tls *tls;
    struct repl_conn *c;
    int rc;
    char err[512];
    /* after connecting: read one message (to learn the server's verdict) */
    ssize_t read_rc;
    char read_err[192];
    char got[16];
};

static void *client_thread(void *p)
{
    struct client_arg *a = p;

    a->rc = repl_conn_connect(a->addr, 5000, a->tls, &a->c, a->err, sizeof a->err);
    if (a->rc == 0) {
        a->read_rc = repl_conn_read(a->c, a->got, sizeof a->got - 1, 5000);
        snprintf(a->read_err, sizeof a->read_err, "%s", repl_conn_last_error(a->c));
        if (a->read_rc > 0)
            (void)repl_conn_write_all(a->c, "pong", 4, 5000);
    }
    return NULL;
}

/* Listens with server_tls, connects with client_tls; returns accept's rc. */
static int tls_attempt(struct repl_tls *server_tls, struct repl_tls *client_tls, const char *host,
                       struct client_arg *ca, char *serr, size_t serrlen,
                       struct repl_conn **server_conn)
{
    struct repl_listener *l = NULL;
    pthread_t th;
    char err[256];
    int rc;

    *server_conn = NULL;
    assert_int_equal(repl_listener_open("127.0.0.1:0", server_tls, &l, err, sizeof err), 0);
    memset(ca, 0, sizeof *ca);
    snprintf(ca->addr, sizeof ca->addr, "%s:%d", host, repl_listener_port(l));
    ca->tls = client_tls;
    assert_int_equal(pthread_create(&th, NULL, client_thread, ca), 0);
    rc = repl_listener_accept(l, 5000, server_conn, serr, serrlen);
    if (rc == 0)
        assert_int_equal(repl_conn_write_all(*server_conn, "ping", 4, 5000), 0);
    pthread_join(th, NULL);
    repl_listener_close(l);
    return rc;
}

static void test_tls_mutual_ok(void **state)
{
    struct repl_tls *ta = tls_for(dir_a, dir_a, "node-a"), *tb = tls_for(dir_a, dir_a, "node-b");
    struct client_arg ca;
    struct repl_conn *s;
    char serr[512] = "", buf[8];

    assert_string_equal(repl_tls_own_name(ta), "node-a");
    assert_int_equal(tls_attempt(ta, tb, "127.0.0.1", &ca, serr, sizeof serr, &s), 0);
    assert_int_equal(ca.rc, 0);
    assert_true(repl_conn_is_tls(s) && repl_conn_is_tls(ca.c));
    assert_string_equal(repl_conn_peer_name(s), "node-b");
    assert_string_equal(repl_conn_peer_name(ca.c), "node-a");
    assert_non_null(strstr(repl_conn_describe(s), "(node-b)"));
    assert_int_equal(ca.read_rc, 4);
    assert_string_equal(ca.got, "ping");
    assert_int_equal(repl_conn_read(s, buf, sizeof buf, 5000), 4);
    assert_memory_equal(buf, "pong", 4);
    {
        SSL *ssl = s->impl;
        assert_int_equal(SSL_version(ssl), TLS1_3_VERSION);
    }
    repl_conn_close(ca.c);
    /* Orderly close: the server now reads EOF. */
    assert_int_equal(repl_conn_read(s, buf, sizeof buf, 5000), 0);
    repl_conn_close(s);

    /* "localhost" resolves to 127.0.0.1 but the certs name no DNS:localhost. */
    assert_true(tls_attempt(ta, tb, "localhost", &ca, serr, sizeof serr, &s) < 0 || ca.rc < 0);
    assert_true(ca.rc < 0);
    assert_non_null(strstr(ca.err, "peer certificate verify failed"));
    repl_conn_close(s);
    repl_tls_free(ta);
    repl_tls_free(tb);
}

static void test_tls_client_cert_other_ca(void **state)
{
    struct repl_tls *ta = tls_for(dir_a, dir_a, "node-a");
    struct repl_tls *tx = tls_for(dir_a, dir_b, "node-x");    /* trusts A, cert from B */
    struct client_arg ca;
    struct repl_conn *s;
    char serr[512] = "";

    assert_int_equal(tls_attempt(ta, tx, "127.0.0.1", &ca, serr, sizeof serr, &s), -ECONNABORTED);
    assert_null(s);
    assert_non_null(strstr(serr, "127.0.0.1:"));
    assert_non_null(strstr(serr, "peer certificate verify failed: unable to get local issuer certificate"));
    /* TLS 1.3: the client hears of it as an alert on its first read. */
    if (ca.rc == 0) {
        assert_true(ca.read_rc < 0);
        assert_non_null(strstr(ca.read_err, "alert"));
        repl_conn_close(ca.c);
    }
    repl_tls_free(ta);
    repl_tls_free(tx);
}

static void test_tls_server_cert_other_ca(void **state)
{
    struct repl_tls *tx = tls_for(dir_a, dir_b, "node-x");    /* server cert from B */
    struct repl_tls *tb = tls_for(dir_a, dir_a, "node-b");
    struct client_arg ca;
    struct repl_conn *s;
    char serr[512] = "";

    assert_int_equal(tls_attempt(tx, tb, "127.0.0.1", &ca, serr, sizeof serr, &s), -ECONNABORTED);
    assert_int_equal(ca.rc, -EPROTO);
    assert_null(ca.c);
    assert_non_null(strstr(ca.err, "127.0.0.1:"));
    assert_non_null(strstr(ca.err, "peer certificate verify failed: unable to get local issuer certificate"));
    assert_non_null(strstr(serr, "alert"));
    repl_tls_free(tx);
    repl_tls_free(tb);
}

static void test_tls_server_cert_without_ip(void **state)
{
    struct repl_tls *tn = tls_for(dir_a, dir_a, "node-noip");
    struct repl_tls *tb = tls_for(dir_a, dir_a, "node-b");
    struct client_arg ca;
    struct repl_conn *s;
    char serr[512] = "";

    assert_true(tls_attempt(tn, tb, "127.0.0.1", &ca, serr, sizeof serr, &s) < 0);
    assert_int_equal(ca.rc, -EPROTO);
    assert_non_null(strstr(ca.err, "IP address mismatch"));
    repl_tls_free(tn);
    repl_tls_free(tb);
}

/* A hand-made OpenSSL client: no certificate, or TLS 1.2 at most. */
struct raw_arg {
    int port;
    bool with_cert;
    int max_version;
    int ok;
};

static void *raw_client_thread(void *p)
{
    struct raw_arg *a = p;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    struct sockaddr_in sin = { .sin_family = AF_INET };
    char path[700], path2[700], buf[8];
    SSL *ssl = NULL;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    a->ok = 0;
    sin.sin_port = htons((uint16_t)a->port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    snprintf(path, sizeof path, "%s/ca.crt", dir_a);
    SSL_CTX_load_verify_locations(ctx, path, NULL);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (a->max_version)
        SSL_CTX_set_max_proto_version(ctx, a->max_version);
    if (a->with_cert) {
        snprintf(path, sizeof path, "%s/node-b.crt", dir_a);
        snprintf(path2, sizeof path2, "%s/node-b.key", dir_a);
        SSL_CTX_use_certificate_file(ctx, path, SSL_FILETYPE_PEM);
        SSL_CTX_use_PrivateKey_file(ctx, path2, SSL_FILETYPE_PEM);
    }
    if (connect(fd, (struct sockaddr *)&sin, sizeof sin) == 0) {
        ssl = SSL_new(ctx);
        SSL_set_fd(ssl, fd);
        if (SSL_connect(ssl) == 1 && SSL_read(ssl, buf, sizeof buf) > 0)
            a->ok = 1;      /* the server talked to us: it should not have */
    }
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    ERR_clear_error();
    close(fd);
    return NULL;
}

static int raw_attempt(bool with_cert, int max_version, char *serr, size_t serrlen, int *client_ok)
{
    struct repl_tls *ta = tls_for(dir_a, dir_a, "node-a");
    struct repl_listener *l = NULL;
    struct repl_conn *s = NULL;
    struct raw_arg a = { 0, with_cert, max_version, -1 };
    pthread_t th;
    char err[256];
    int rc;

    assert_int_equal(repl_listener_open("127.0.0.1:0", ta, &l, err, sizeof err), 0);
    a.port = repl_listener_port(l);
    assert_int_equal(pthread_create(&th, NULL, raw_client_thread, &a), 0);
    rc = repl_listener_accept(l, 5000, &s, serr, serrlen);
    if (rc == 0)
        (void)repl_conn_write_all(s, "ping", 4, 1000);
    pthread_join(th, NULL);
    *client_ok = a.ok;
    repl_conn_close(s);
    repl_listener_close(l);
    repl_tls_free(ta);
    return rc;
}

static void test_tls_no_client_cert(void **state)
{
    char serr[512] = "";
    int ok;

    assert_int_equal(raw_attempt(false, 0, serr, sizeof serr, &ok), -ECONNABORTED);
    assert_int_equal(ok, 0);
    assert_non_null(strstr(serr, "peer did not return a certificate"));
    /* Control: the same raw client with a certificate gets through. */
    assert_int_equal(raw_attempt(true, 0, serr, sizeof serr, &ok), 0);
    assert_int_equal(ok, 1);
}

static void test_tls12_client_refused(void **state)
{
    char serr[512] = "";
    int ok;

    assert_int_equal(raw_attempt(true, TLS1_2_VERSION, serr, sizeof serr, &ok), -ECONNABORTED);
    assert_int_equal(ok, 0);
    assert_non_null(strstr(serr, "unsupported protocol"));
}

struct hs_arg {
    int fd;
    struct repl_tls *tls;
    struct repl_conn *c;
    int rc;
    char err[512];
};

static void *tls_server_thread(void *p)
{
    struct hs_arg *a = p;

    a->rc = repl_conn_tls_server(a->fd, a->tls, "sp-client", 5000, &a->c, a->err, sizeof a->err);
    return NULL;
}

static void test_tls_socketpair_frames(void **state)
{
    struct repl_tls *ta = tls_for(dir_a, dir_a, "node-a"), *tb = tls_for(dir_a, dir_a, "node-b");
    struct repl_frame *f = xcalloc(1, sizeof *f);
    struct repl_record r = { { 4, 1 }, 9, { 0 }, { NULL, 0 } };
    struct hs_arg srv;
    struct repl_conn *cli = NULL;
    struct repl_decoder d;
    struct writer_arg w;
    struct reader_arg rd;
    struct buf out;
    pthread_t th;
    char err[512], *cs = xcalloc(1, 5u << 20);
    int sv[2];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    srv = (struct hs_arg){ sv[0], ta, NULL, -1, "" };
    assert_int_equal(pthread_create(&th, NULL, tls_server_thread, &srv), 0);
    assert_int_equal(repl_conn_tls_client(sv[1], tb, NULL, NULL, 5000, &cli, err, sizeof err), 0);
    pthread_join(th, NULL);
    assert_int_equal(srv.rc, 0);
    assert_string_equal(repl_conn_peer_name(srv.c), "node-b");
    assert_string_equal(repl_conn_peer_name(cli), "node-a");
    assert_string_equal(repl_conn_describe(srv.c), "sp-client (node-b)");

    /* A 5 MiB frame through TLS (many records), written from another thread. */
    buf_init(&out, 8u << 20);
    r.changeset.p = cs;
    r.changeset.len = 5u << 20;
    cs[(5u << 20) - 1] = 'q';
    assert_int_equal(repl_frame_encode_records(&out, &r, 1), 0);
    w = (struct writer_arg){ srv.c, &out, -1, 20 };
    assert_int_equal(pthread_create(&th, NULL, writer_thread, &w), 0);
    repl_decoder_init(&d);
    assert_int_equal(repl_conn_read_frame(cli, &d, f, 10000), 1);
    pthread_join(th, NULL);
    assert_int_equal(w.rc, 0);
    {
        struct repl_records_iter it = repl_records_iter(&f->u.records);
        struct repl_record got;
        assert_true(repl_records_next(&it, &got));
        assert_int_equal(got.changeset.len, 5u << 20);
        assert_int_equal(got.changeset.p[(5u << 20) - 1], 'q');
    }
    /* Timeout with nothing to read, then shutdown wakes a blocked TLS reader. */
    assert_int_equal(repl_conn_read_frame(cli, &d, f, 30), -ETIMEDOUT);
    rd = (struct reader_arg){ cli, -1, 0 };
    assert_int_equal(pthread_create(&th, NULL, reader_thread, &rd), 0);
    time_sleep_us(50000);
    repl_conn_shutdown(cli);
    pthread_join(th, NULL);
    assert_true(rd.rc <= 0);
    assert_true(rd.took_us < 5000000);
    repl_conn_close(cli);
    repl_conn_close(srv.c);
    repl_decoder_free(&d);
    buf_free(&out);
    free(cs);
    free(f);
    repl_tls_free(ta);
    repl_tls_free(tb);
}

static void test_tls_config_errors(void **state)
{
    char ca[700], crt[700], key[700], other_key[700], err[512];
    struct repl_tls *t = NULL;

    snprintf(ca, sizeof ca, "%s/ca.crt", dir_a);
    snprintf(crt, sizeof crt, "%s/node-a.crt", dir_a);
    snprintf(key, sizeof key, "%s/node-a.key", dir_a);
    snprintf(other_key, sizeof other_key, "%s/node-b.key", dir_a);
    assert_int_equal(repl_tls_new(ca, crt, other_key, &t, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "does not match"));
    assert_null(t);
    assert_int_equal(repl_tls_new("/nonexistent/ca.crt", crt, key, &t, err, sizeof err), -ENOENT);
    assert_non_null(strstr(err, "/nonexistent/ca.crt"));
    assert_int_equal(repl_tls_new(key, crt, key, &t, err, sizeof err), -EINVAL);   /* key as CA */
    assert_int_equal(repl_tls_new(ca, crt, key, &t, err, sizeof err), 0);
    repl_tls_free(t);
    repl_tls_free(NULL);
}

static void test_certgen_refusals(void **state)
{
    struct repl_cert_opts bad_ip = { .n_ips = 1, .ips = { "300.1.1.1" } };
    struct repl_cert_opts bad_dns = { .n_dns = 1, .dns = { "a,IP:1.2.3.4" } };
    char err[512], empty[700];

    assert_int_equal(repl_cert_init(dir_a, err, sizeof err), -EEXIST);
    assert_non_null(strstr(err, "refusing to overwrite"));
    assert_int_equal(repl_cert_issue(dir_a, "node-a", NULL, err, sizeof err), -EEXIST);
    assert_int_equal(repl_cert_issue(dir_a, "ca", NULL, err, sizeof err), -EEXIST);
    assert_int_equal(repl_cert_issue(dir_a, "../evil", NULL, err, sizeof err), -EINVAL);
    assert_int_equal(repl_cert_issue(dir_a, "n2", &bad_ip, err, sizeof err), -EINVAL);
    assert_int_equal(repl_cert_issue(dir_a, "n2", &bad_dns, err, sizeof err), -EINVAL);
    assert_false(repl_cert_name_valid(""));
    assert_false(repl_cert_name_valid(".hidden"));
    assert_true(repl_cert_name_valid("node_1.dc-2"));
    snprintf(empty, sizeof empty, "%s/empty", tmp);
    mkdir(empty, 0700);
    assert_int_equal(repl_cert_issue(empty, "n2", NULL, err, sizeof err), -ENOENT);
    assert_non_null(strstr(err, "cert init"));
    /* Nothing half-made was left behind. */
    snprintf(empty, sizeof empty, "%s/empty/n2.key", tmp);
    assert_int_not_equal(access(empty, F_OK), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_basics),
        cmocka_unit_test(test_plain_write_timeout),
        cmocka_unit_test(test_plain_frames),
        cmocka_unit_test(test_shutdown_wakes_reader),
        cmocka_unit_test(test_listener_plain),
        cmocka_unit_test(test_tls_mutual_ok),
        cmocka_unit_test(test_tls_client_cert_other_ca),
        cmocka_unit_test(test_tls_server_cert_other_ca),
        cmocka_unit_test(test_tls_server_cert_without_ip),
        cmocka_unit_test(test_tls_no_client_cert),
        cmocka_unit_test(test_tls12_client_refused),
        cmocka_unit_test(test_tls_socketpair_frames),
        cmocka_unit_test(test_tls_config_errors),
        cmocka_unit_test(test_certgen_refusals),
    };
    return cmocka_run_group_tests(tests, setup_certs, teardown_certs);
}
