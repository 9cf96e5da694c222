/*
 * certgen — the cluster's private CA and node certificates, made with the
 * OpenSSL API (no shell-out). `refugectl cert init|issue` is a thin wrapper;
 * tests call the same functions to build CAs and certificates on the fly.
 *
 * Files (PEM): DIR/ca.key (0600, P-256) and DIR/ca.crt (self-signed,
 * basicConstraints CA:TRUE critical, keyUsage keyCertSign+cRLSign, 10 years);
 * DIR/NAME.key (0600, P-256) and DIR/NAME.crt (CN=NAME, SAN DNS:NAME plus the
 * extra IPs / DNS names, EKU serverAuth+clientAuth, default 825 days).
 * Serial numbers are 128 random bits. notBefore is backdated one hour to
 * tolerate clock skew between nodes. Existing files are never overwritten.
 */
#ifndef REFUGE_REPL_CERTGEN_H
#define REFUGE_REPL_CERTGEN_H

#include <stdbool.h>
#include <stddef.h>

#define REPL_CERT_DEFAULT_DAYS 825
#define REPL_CERT_CA_DAYS 3650
#define REPL_CERT_MAX_SAN 16        /* extra --ip / --dns entries, each */

struct repl_cert_opts {
    int days;                       /* validity; 0 = REPL_CERT_DEFAULT_DAYS */
    const char *ips[REPL_CERT_MAX_SAN];
    size_t n_ips;
    const char *dns[REPL_CERT_MAX_SAN];
    size_t n_dns;
};

/* True for a usable node name: 1..64 of [A-Za-z0-9._-], not starting with '.'
 * or '-' (it becomes a file name, a CN and a DNS SAN). */
bool repl_cert_name_valid(const char *name);

/* Creates dir (0700) if missing, then dir/ca.key and dir/ca.crt.
 * 0, -EEXIST when either file exists (nothing written), or negative with err. */
int repl_cert_init(const char *dir, char *err, size_t errlen);

/* Issues dir/NAME.key + dir/NAME.crt signed by dir/ca.key.
 * 0, -EINVAL (bad name, IP, DNS name or days), -ENOENT (no CA in dir),
 * -EEXIST (NAME.key or NAME.crt exists), or negative, with err filled. */
int repl_cert_issue(const char *dir, const char *name, const struct repl_cert_opts *opts,
                    char *err, size_t errlen);

#endif
