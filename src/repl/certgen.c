/*
 * certgen — a small private CA for the replication link, with the OpenSSL 3
 * API. The replication TLS contexts (tls.c) trust exactly this CA, so these
 * two functions are the whole PKI a cluster needs: `refugectl cert init` once,
 * `refugectl cert issue NAME` per node. Keys are written with O_EXCL and mode
 * 0600 from the start (never created readable and chmod'ed afterwards), and
 * a failure half-way removes whatever this call created.
 */
#include "repl/certgen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "core/buf.h"
#include "core/rand.h"
#include "core/xmalloc.h"

#define ERRF(...) ((err && errlen) ? (void)snprintf(err, errlen, __VA_ARGS__) : (void)0)

#define SKEW_SECONDS 3600L

bool repl_cert_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;

    if (n < 1 || n > 64 || name[0] == '.' || name[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* A DNS name for a SAN: 1..253 of [A-Za-z0-9.-], optionally "*." first. */
static bool dns_valid(const char *s)
{
    size_t n = strlen(s), i = 0;

    if (n < 1 || n > 253)
        return false;
    if (n > 2 && s[0] == '*' && s[1] == '.')
        i = 2;
    for (; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-'))
            return false;
    }
    return true;
}

static bool ip_valid(const char *s)
{
    unsigned char b[16];

    return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

static const char *ossl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;

    return r ? r : "unknown OpenSSL error";
}

/* ---- Building blocks ---------------------------------------------------------- */

static EVP_PKEY *p256_key(void)
{
    return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

/* 128 random bits, top bit clear so the DER integer stays positive and short. */
static int set_random_serial(X509 *x)
{
    unsigned char raw[16];
    BIGNUM *bn;
    int ok;

    rand_bytes(raw, sizeof raw);
    raw[0] &= 0x7f;
    raw[0] |= 0x01 << 6;    /* never a short serial */
    bn = BN_bin2bn(raw, sizeof raw, NULL);
    ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
    BN_free(bn);
    return ok ? 0 : -EPROTO;
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    int ok;

    if (!ext)
        return -EPROTO;
    ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : -EPROTO;
}

/* A new certificate for key, valid `days`, with subject CN=cn, O=Refuge. */
static X509 *cert_new(EVP_PKEY *key, const char *cn, int days)
{
    X509 *x = X509_new();
    X509_NAME *name;

    if (!x || !X509_set_version(x, X509_VERSION_3) || set_random_serial(x) < 0 ||
        !X509_gmtime_adj(X509_getm_notBefore(x), -SKEW_SECONDS) ||
        !X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400L) ||
        !X509_set_pubkey(x, key) || !(name = X509_get_subject_name(x)) ||
        !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"Refuge",
                                    -1, -1, 0) ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1,
                                    -1, 0)) {
        X509_free(x);
        return NULL;
    }
    return x;
}

/* Opens path for a new file with mode (fails with -EEXIST if present). */
static int create_excl(const char *path, mode_t mode, FILE **out)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);

    if (fd < 0)
        return -errno;
    if (fchmod(fd, mode) < 0 || !(*out = fdopen(fd, "w"))) {
        int rc = -errno;
        close(fd);
        unlink(path);
        return rc;
    }
    return 0;
}

/* Writes key (mode 0600) and cert (0644) as PEM; both or neither. */
static int write_pair(const char *key_path, EVP_PKEY *key, const char *crt_path, X509 *x,
                      char *err, size_t errlen)
{
    FILE *kf = NULL, *cf = NULL;
    bool key_made = false, crt_made = false;
    int rc;

    if ((rc = create_excl(key_path, 0600, &kf)) < 0) {
        ERRF("%s: %s", key_path, strerror(-rc));
        goto out;
    }
    key_made = true;
    if ((rc = create_excl(crt_path, 0644, &cf)) < 0) {
        ERRF("%s: %s", crt_path, strerror(-rc));
        goto out;
    }
    crt_made = true;
    if (!PEM_write_PrivateKey(kf, key, NULL, NULL, 0, NULL, NULL) || !PEM_write_X509(cf, x)) {
        ERRF("cannot write PEM: %s", ossl_reason());
        rc = -EIO;
        goto out;
    }
    if (fflush(kf) != 0 || fsync(fileno(kf)) != 0 || fflush(cf) != 0 || fsync(fileno(cf)) != 0) {
        rc = -errno;
        ERRF("cannot write %s / %s: %s", key_path, crt_path, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (kf && fclose(kf) != 0 && rc == 0)
        rc = -EIO;
    if (cf && fclose(cf) != 0 && rc == 0)
        rc = -EIO;
    if (rc < 0) {
        if (key_made)
            unlink(key_path);
        if (crt_made)
            unlink(crt_path);
    }
    return rc;
}

static bool exists(const char *path)
{
    struct stat st;

    return lstat(path, &st) == 0;
}

/* ---- cert init ------------------------------------------------------------------ */

int repl_cert_init(const char *dir, char *err, size_t errlen)
{
    char *key_path = xasprintf("%s/ca.key", dir), *crt_path = xasprintf("%s/ca.crt", dir);
    EVP_PKEY *key = NULL;
    X509 *x = NULL;
    X509V3_CTX ctx;
    int rc;

    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        rc = -errno;
        ERRF("%s: cannot create directory: %s", dir, strerror(errno));
        goto out;
    }
    if (exists(key_path) || exists(crt_path)) {
        rc = -EEXIST;
        ERRF("%s: a CA already exists here (ca.key / ca.crt); refusing to overwrite it", dir);
        goto out;
    }
    rc = -EPROTO;
    if (!(key = p256_key()) || !(x = cert_new(key, "Refuge cluster CA", REPL_CERT_CA_DAYS)) ||
        !X509_set_issuer_name(x, X509_get_subject_name(x))) {
        ERRF("cannot create CA: %s", ossl_reason());
        goto out;
    }
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    if (add_ext(x, &ctx, NID_basic_constraints, "critical,CA:TRUE") < 0 ||
        add_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign") < 0 ||
        add_ext(x, &ctx, NID_subject_key_identifier, "hash") < 0 ||
        add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always") < 0 ||
        !X509_sign(x, key, EVP_sha256())) {
        ERRF("cannot build CA certificate: %s", ossl_reason());
        goto out;
    }
    rc = write_pair(key_path, key, crt_path, x, err, errlen);
out:
    ERR_clear_error();
    X509_free(x);
    EVP_PKEY_free(key);
    free(key_path);
    free(crt_path);
    return rc;
}

/* ---- cert issue ------------------------------------------------------------------ */

static int load_ca(const char *dir, EVP_PKEY **key, X509 **crt, char *err, size_t errlen)
{
    char *key_path = xasprintf("%s/ca.key", dir), *crt_path = xasprintf("%s/ca.crt", dir);
    FILE *f = NULL;
    int rc = -ENOENT;

    *key = NULL;
    *crt = NULL;
    if (!(f = fopen(key_path, "re"))) {
        rc = -errno;
        ERRF("%s: %s (run `refugectl cert init %s` first)", key_path, strerror(errno), dir);
        goto out;
    }
    *key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (!(f = fopen(crt_path, "re"))) {
        rc = -errno;
        ERRF("%s: %s", crt_path, strerror(errno));
        goto out;
    }
    *crt = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (!*key || !*crt) {
        rc = -EINVAL;
        ERRF("%s: cannot read CA key or certificate: %s", dir, ossl_reason());
        goto out;
    }
    if (X509_check_private_key(*crt, *key) != 1) {
        rc = -EINVAL;
        ERRF("%s: ca.key does not match ca.crt", dir);
        goto out;
    }
    rc = 0;
out:
    if (rc < 0) {
        EVP_PKEY_free(*key);
        X509_free(*crt);
        *key = NULL;
        *crt = NULL;
    }
    ERR_clear_error();
    free(key_path);
    free(crt_path);
    return rc;
}

int repl_cert_issue(const char *dir, const char *name, const struct repl_cert_opts *opts,
                    char *err, size_t errlen)
{
    static const struct repl_cert_opts none = { 0 };
    char *key_path = NULL, *crt_path = NULL;
    EVP_PKEY *ca_key = NULL, *key = NULL;
    X509 *ca = NULL, *x = NULL;
    struct buf san;
    X509V3_CTX ctx;
    int days, rc = -EINVAL;

    buf_init(&san, 16384);
    if (!opts)
        opts = &none;
    days = opts->days ? opts->days : REPL_CERT_DEFAULT_DAYS;
    if (!repl_cert_name_valid(name)) {
        ERRF("bad node name '%s' (1-64 of A-Z a-z 0-9 . _ -)", name ? name : "");
        goto out;
    }
    if (days < 1 || days > 36500 || opts->n_ips > REPL_CERT_MAX_SAN ||
        opts->n_dns > REPL_CERT_MAX_SAN) {
        ERRF("bad validity or too many names (days 1..36500, at most %d --ip and --dns)",
             REPL_CERT_MAX_SAN);
        goto out;
    }
    buf_printf(&san, "DNS:%s", name);
    for (size_t i = 0; i < opts->n_ips; i++) {
        if (!ip_valid(opts->ips[i])) {
            ERRF("bad IP address '%s'", opts->ips[i]);
            goto out;
        }
        buf_printf(&san, ",IP:%s", opts->ips[i]);
    }
    for (size_t i = 0; i < opts->n_dns; i++) {
        if (!dns_valid(opts->dns[i])) {
            ERRF("bad DNS name '%s'", opts->dns[i]);
            goto out;
        }
        buf_printf(&san, ",DNS:%s", opts->dns[i]);
    }
    key_path = xasprintf("%s/%s.key", dir, name);
    crt_path = xasprintf("%s/%s.crt", dir, name);
    if (strcmp(name, "ca") == 0 || exists(key_path) || exists(crt_path)) {
        rc = -EEXIST;
        ERRF("%s: %s.key or %s.crt already exists; refusing to overwrite", dir, name, name);
        goto out;
    }
    if ((rc = load_ca(dir, &ca_key, &ca, err, errlen)) < 0)
        goto out;
    rc = -EPROTO;
    if (!(key = p256_key()) || !(x = cert_new(key, name, days)) ||
        !X509_set_issuer_name(x, X509_get_subject_name(ca))) {
        ERRF("cannot create certificate: %s", ossl_reason());
        goto out;
    }
    X509V3_set_ctx(&ctx, ca, x, NULL, NULL, 0);
    if (add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
        add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature") < 0 ||
        add_ext(x, &ctx, NID_ext_key_usage, "serverAuth,clientAuth") < 0 ||
        add_ext(x, &ctx, NID_subject_alt_name, buf_cstr(&san)) < 0 ||
        add_ext(x, &ctx, NID_subject_key_identifier, "hash") < 0 ||
        add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always") < 0 ||
        !X509_sign(x, ca_key, EVP_sha256())) {
        ERRF("cannot build certificate: %s", ossl_reason());
        goto out;
    }
    rc = write_pair(key_path, key, crt_path, x, err, errlen);
out:
    ERR_clear_error();
    buf_free(&san);
    X509_free(x);
    X509_free(ca);
    EVP_PKEY_free(key);
    EVP_PKEY_free(ca_key);
    free(key_path);
    free(crt_path);
    return rc;
}
