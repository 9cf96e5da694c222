/*
 * tls — OpenSSL 3 contexts for the replication link: TLS 1.3 only, mutual
 * certificate verification against the cluster CA and nothing else (the
 * system trust store is never loaded). A node both listens and connects, so
 * one struct repl_tls holds a server and a client SSL_CTX built from the
 * same CA, certificate and key files ([replication] tls_ca/tls_cert/tls_key).
 *
 * The TLS transport itself (struct repl_conn over an SSL *) is in tls.c too;
 * its entry points are declared in conn.h.
 */
#ifndef REFUGE_REPL_TLS_H
#define REFUGE_REPL_TLS_H

#include <stddef.h>

struct repl_tls;

/* Loads the CA bundle, certificate chain and private key (PEM) and checks the
 * key matches the certificate. 0 with *out set, or negative (-ENOENT for a
 * missing file, -EINVAL for a bad file / mismatched key, -EPROTO otherwise)
 * with err naming the file and OpenSSL's reason. Free with repl_tls_free(). */
int repl_tls_new(const char *ca_file, const char *cert_file, const char *key_file,
                 struct repl_tls **out, char *err, size_t errlen);
void repl_tls_free(struct repl_tls *t);                 /* t may be NULL */

/* The CN of this node's own certificate ("" if it has none). */
const char *repl_tls_own_name(const struct repl_tls *t);

#endif
