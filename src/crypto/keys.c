/*
 * keys — JWS signing keys on OpenSSL 3 EVP: generation, JWK import/export,
 * RFC 7638 thumbprints, JWKS, and the raw sign/verify primitives jws.c uses.
 *
 * Hot path: each key carries a signing and a verifying EVP_MD_CTX prepared
 * once (DigestSignInit/DigestVerifyInit). A signature copies the prepared
 * context (EVP_MD_CTX_copy_ex) instead of initialising one, which skips
 * OpenSSL 3's per-init provider lookups (~15% faster for ES256). The
 * templates are only read after creation, so concurrent use is safe.
 *
 * JWK members handled (RFC 7517/7518/8037):
 *
 *   kty  crv      public    private
 *   EC   P-256    x, y      d           (32 bytes each, big-endian)
 *   RSA  -        n, e      d, p, q, dp, dq, qi
 *   OKP  Ed25519  x         d           (32 bytes each, raw)
 *
 * plus kid, alg (must fit kty/crv), use (must be "sig"); others are ignored.
 */
#include "crypto/keys.h"

#include <errno.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/sha.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64.h"
#include "core/json.h"
#include "core/xmalloc.h"
#include "crypto/key_internal.h"
#include "crypto/secret.h"

struct crypto_key {
    atomic_int refs;
    enum crypto_alg alg;
    bool has_private;
    EVP_PKEY *pkey;
    EVP_MD_CTX *sign_tpl;       /* NULL without a private half */
    EVP_MD_CTX *verify_tpl;
    char kid[CRYPTO_KID_MAX + 1];
};

#define PART_MAX 512                                /* bytes: RSA-4096 modulus */
#define PART_B64_MAX (((PART_MAX + 2) / 3) * 4)     /* 684 characters */
#define PART_BUF B64_DECLEN(PART_B64_MAX)           /* decode buffer */
#define RSA_MIN_BITS 2048
#define RSA_MAX_BITS 4096
#define JWK_MAX_DEPTH 4

/* ---- algorithms --------------------------------------------------------- */

const char *crypto_alg_name(enum crypto_alg alg)
{
    switch (alg) {
    case CRYPTO_ALG_ES256: return "ES256";
    case CRYPTO_ALG_RS256: return "RS256";
    case CRYPTO_ALG_EDDSA: return "EdDSA";
    default: return "none";
    }
}

int crypto_alg_parse(const char *name, size_t n, enum crypto_alg *out)
{
    static const enum crypto_alg all[] = { CRYPTO_ALG_ES256, CRYPTO_ALG_RS256, CRYPTO_ALG_EDDSA };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        const char *s = crypto_alg_name(all[i]);
        if (strlen(s) == n && memcmp(s, name, n) == 0) {
            *out = all[i];
            return 0;
        }
    }
    *out = CRYPTO_ALG_NONE;
    return -EINVAL;
}

static bool kid_valid(const char *s, size_t n)
{
    if (n == 0 || n > CRYPTO_KID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              strchr("._~:+/=-", c)) || c == '\0')
            return false;
    }
    return true;
}

/* ---- public/private members as base64url -------------------------------- */

/* The members of one key, base64url-encoded; see the table at the top. */
struct jwk_parts {
    const char *kty, *crv;          /* crv NULL for RSA */
    char pub[2][B64URL_ENCLEN(PART_MAX)];   /* EC x,y; RSA n,e; OKP x */
    int npub;
    char priv[6][B64URL_ENCLEN(PART_MAX)];  /* EC d; RSA d,p,q,dp,dq,qi; OKP d */
    int npriv;
};

static const char *const pub_names[][2] = {
    [CRYPTO_ALG_ES256] = { "x", "y" }, [CRYPTO_ALG_RS256] = { "n", "e" },
    [CRYPTO_ALG_EDDSA] = { "x", NULL },
};
static const char *const rsa_priv_names[] = { "d", "p", "q", "dp", "dq", "qi" };
static const char *const rsa_priv_params[] = {
    OSSL_PKEY_PARAM_RSA_D, OSSL_PKEY_PARAM_RSA_FACTOR1, OSSL_PKEY_PARAM_RSA_FACTOR2,
    OSSL_PKEY_PARAM_RSA_EXPONENT1, OSSL_PKEY_PARAM_RSA_EXPONENT2,
    OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
};

/* BIGNUM parameter -> base64url; pad > 0 left-pads to that many bytes. */
static int bn_b64(const EVP_PKEY *pk, const char *param, int pad, char *out)
{
    uint8_t bytes[PART_MAX];
    BIGNUM *bn = NULL;
    int len, rc = -EIO;

    if (EVP_PKEY_get_bn_param(pk, param, &bn) != 1)
        goto out;
    len = pad > 0 ? pad : BN_num_bytes(bn);
    if (len == 0)
        len = 1;                                    /* zero encodes as one byte */
    if (len > PART_MAX || BN_bn2binpad(bn, bytes, len) != len)
        goto out;
    b64url_encode(bytes, (size_t)len, out);
    rc = 0;
out:
    crypto_wipe(bytes, sizeof bytes);
    BN_clear_free(bn);
    return rc;
}

static int raw_b64(const EVP_PKEY *pk, bool private, char *out)
{
    uint8_t bytes[64];
    size_t len = sizeof bytes;
    int ok = private ? EVP_PKEY_get_raw_private_key(pk, bytes, &len)
                     : EVP_PKEY_get_raw_public_key(pk, bytes, &len);
    if (ok == 1 && len == 32)
        b64url_encode(bytes, len, out);
    crypto_wipe(bytes, sizeof bytes);
    return ok == 1 && len == 32 ? 0 : -EIO;
}

static int get_parts(const struct crypto_key *k, bool with_private, struct jwk_parts *p)
{
    int rc = -EIO;

    memset(p, 0, sizeof *p);
    switch (k->alg) {
    case CRYPTO_ALG_ES256:
        p->kty = "EC";
        p->crv = "P-256";
        p->npub = 2;
        if (bn_b64(k->pkey, OSSL_PKEY_PARAM_EC_PUB_X, 32, p->pub[0]) < 0 ||
            bn_b64(k->pkey, OSSL_PKEY_PARAM_EC_PUB_Y, 32, p->pub[1]) < 0)
            goto out;
        if (with_private) {
            p->npriv = 1;
            if (bn_b64(k->pkey, OSSL_PKEY_PARAM_PRIV_KEY, 32, p->priv[0]) < 0)
                goto out;
        }
        break;
    case CRYPTO_ALG_RS256:
        p->kty = "RSA";
        p->npub = 2;
        if (bn_b64(k->pkey, OSSL_PKEY_PARAM_RSA_N, 0, p->pub[0]) < 0 ||
            bn_b64(k->pkey, OSSL_PKEY_PARAM_RSA_E, 0, p->pub[1]) < 0)
            goto out;
        if (with_private) {
            p->npriv = 6;
            for (int i = 0; i < 6; i++)
                if (bn_b64(k->pkey, rsa_priv_params[i], 0, p->priv[i]) < 0)
                    goto out;
        }
        break;
    case CRYPTO_ALG_EDDSA:
        p->kty = "OKP";
        p->crv = "Ed25519";
        p->npub = 1;
        if (raw_b64(k->pkey, false, p->pub[0]) < 0)
            goto out;
        if (with_private) {
            p->npriv = 1;
            if (raw_b64(k->pkey, true, p->priv[0]) < 0)
                goto out;
        }
        break;
    default:
        goto out;
    }
    rc = 0;
out:
    if (rc < 0) {
        crypto_wipe(p, sizeof *p);
        ERR_clear_error();
    }
    return rc;
}

/* ---- thumbprints (RFC 7638) --------------------------------------------- */

/* SHA-256 over the canonical JSON (required members, sorted, no spaces). */
static void thumbprint(const char *kty, const char *crv, const char *a, const char *b,
                       char out[CRYPTO_THUMBPRINT_LEN + 1])
{
    char canon[64 + 2 * B64URL_ENCLEN(PART_MAX)];
    unsigned char d[32];
    int len;

    if (strcmp(kty, "RSA") == 0)            /* a = n, b = e */
        len = snprintf(canon, sizeof canon, "{\"e\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\"}", b, a);
    else if (b)                             /* EC: a = x, b = y */
        len = snprintf(canon, sizeof canon,
                       "{\"crv\":\"%s\",\"kty\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"}", crv, kty, a, b);
    else                                    /* OKP: a = x */
        len = snprintf(canon, sizeof canon, "{\"crv\":\"%s\",\"kty\":\"%s\",\"x\":\"%s\"}",
                       crv, kty, a);
    SHA256((const unsigned char *)canon, (size_t)len, d);
    b64url_encode(d, sizeof d, out);
}

static json_t *parse_jwk(const char *json, size_t n, int *rc)
{
    json_t *o;

    *rc = -E2BIG;
    if (n > CRYPTO_JWK_MAX_LEN)
        return NULL;
    *rc = -EINVAL;
    o = jsonx_parse(json, n, JWK_MAX_DEPTH, NULL, 0);
    if (!o)
        return NULL;
    if (!json_is_object(o)) {
        json_decref(o);
        return NULL;
    }
    *rc = 0;
    return o;
}

/* A string member that is strict base64url of 1..PART_MAX bytes; NULL otherwise. */
static const char *b64_member(const json_t *o, const char *name)
{
    const json_t *v = json_object_get(o, name);
    uint8_t tmp[PART_BUF];
    size_t len;
    const char *s;
    int rc;

    if (!json_is_string(v))
        return NULL;
    s = json_string_value(v);
    if (json_string_length(v) == 0 || json_string_length(v) > PART_B64_MAX)
        return NULL;
    rc = b64url_decode(s, json_string_length(v), tmp, &len);
    crypto_wipe(tmp, sizeof tmp);
    return rc == 0 && len > 0 ? s : NULL;
}

int crypto_jwk_thumbprint(const char *json, size_t n, char out[CRYPTO_THUMBPRINT_LEN + 1])
{
    const char *kty, *crv, *a, *b = NULL;
    json_t *o;
    int rc;

    out[0] = '\0';
    o = parse_jwk(json, n, &rc);
    if (!o)
        return rc;
    rc = -EINVAL;
    kty = jsonx_str(o, "kty", "");
    crv = jsonx_str(o, "crv", "");
    if (strcmp(kty, "RSA") == 0) {
        a = b64_member(o, "n");
        b = b64_member(o, "e");
        if (!a || !b)
            goto out;
    } else if (strcmp(kty, "EC") == 0 && strcmp(crv, "P-256") == 0) {
        a = b64_member(o, "x");
        b = b64_member(o, "y");
        if (!a || !b)
            goto out;
    } else if (strcmp(kty, "OKP") == 0 && strcmp(crv, "Ed25519") == 0) {
        a = b64_member(o, "x");
        if (!a)
            goto out;
    } else {
        goto out;
    }
    thumbprint(kty, crv, a, b, out);
    rc = 0;
out:
    json_decref(o);
    return rc;
}

/* ---- key objects -------------------------------------------------------- */

/* Prepares the templates and the kid (thumbprint unless already set). Takes pkey. */
static int key_finish(EVP_PKEY *pkey, enum crypto_alg alg, bool has_private, const char *kid,
                      struct crypto_key **out)
{
    struct crypto_key *k = xcalloc(1, sizeof *k);
    const EVP_MD *md = alg == CRYPTO_ALG_EDDSA ? NULL : EVP_sha256();
    struct jwk_parts parts;
    int rc = -EIO;

    atomic_init(&k->refs, 1);
    k->alg = alg;
    k->has_private = has_private;
    k->pkey = pkey;
    k->verify_tpl = EVP_MD_CTX_new();
    if (!k->verify_tpl || EVP_DigestVerifyInit(k->verify_tpl, NULL, md, NULL, pkey) != 1)
        goto out;
    if (has_private) {
        k->sign_tpl = EVP_MD_CTX_new();
        if (!k->sign_tpl || EVP_DigestSignInit(k->sign_tpl, NULL, md, NULL, pkey) != 1)
            goto out;
    }
    if (kid) {
        snprintf(k->kid, sizeof k->kid, "%s", kid);
    } else {
        if (get_parts(k, false, &parts) < 0)
            goto out;
        thumbprint(parts.kty, parts.crv, parts.pub[0], parts.npub > 1 ? parts.pub[1] : NULL,
                   k->kid);
    }
    *out = k;
    k = NULL;
    rc = 0;
out:
    if (k) {
        ERR_clear_error();
        crypto_key_free(k);
        *out = NULL;
    }
    return rc;
}

int crypto_key_generate(enum crypto_alg alg, struct crypto_key **out)
{
    EVP_PKEY *pk = NULL;

    *out = NULL;
    switch (alg) {
    case CRYPTO_ALG_ES256:
        pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        break;
    case CRYPTO_ALG_RS256:
        pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)RSA_MIN_BITS);
        break;
    case CRYPTO_ALG_EDDSA:
        pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
        break;
    default:
        return -EINVAL;
    }
    if (!pk) {
        ERR_clear_error();
        return -EIO;
    }
    return key_finish(pk, alg, true, NULL, out);
}

struct crypto_key *crypto_key_ref(struct crypto_key *k)
{
    atomic_fetch_add_explicit(&k->refs, 1, memory_order_relaxed);
    return k;
}

void crypto_key_free(struct crypto_key *k)
{
    if (!k || atomic_fetch_sub_explicit(&k->refs, 1, memory_order_acq_rel) != 1)
        return;
    EVP_MD_CTX_free(k->sign_tpl);
    EVP_MD_CTX_free(k->verify_tpl);
    EVP_PKEY_free(k->pkey);         /* OpenSSL clears private key material */
    free(k);
}

enum crypto_alg crypto_key_alg(const struct crypto_key *k)
{
    return k->alg;
}

const char *crypto_key_kid(const struct crypto_key *k)
{
    return k->kid;
}

bool crypto_key_has_private(const struct crypto_key *k)
{
    return k->has_private;
}

/* ---- import ------------------------------------------------------------- */

/* Decodes member `name` (strict base64url) into out (capacity PART_BUF).
 * -ENOENT when absent; -EINVAL when malformed or longer than max bytes. */
static int decode_member(const json_t *o, const char *name, uint8_t out[PART_BUF], size_t max,
                         size_t *len)
{
    const json_t *v = json_object_get(o, name);
    size_t slen;

    *len = 0;
    if (!v)
        return -ENOENT;
    if (!json_is_string(v))
        return -EINVAL;
    slen = json_string_length(v);
    if (slen == 0 || slen > PART_B64_MAX ||
        b64url_decode(json_string_value(v), slen, out, len) < 0 || *len == 0 || *len > max) {
        crypto_wipe(out, PART_BUF);
        return -EINVAL;
    }
    return 0;
}

/* Builds an EVP_PKEY of `type` from params; selection EVP_PKEY_KEYPAIR or EVP_PKEY_PUBLIC_KEY. */
static EVP_PKEY *from_params(const char *type, OSSL_PARAM_BLD *bld, int selection)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY *pk = NULL;

    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pk, selection, params) != 1)
        pk = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);        /* BLD-made params: private BIGNUM copies are cleared */
    return pk;
}

/* RSA public key sanity, deterministic: odd n of 2048..4096 bits, odd e >= 3.
 * (OpenSSL's RSA public check runs Miller-Rabin with random bases, so on a
 * garbage modulus it answers differently from one call to the next.) */
static bool rsa_public_ok(const EVP_PKEY *pk)
{
    BIGNUM *n = NULL, *e = NULL;
    bool ok = EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_N, &n) == 1 &&
              EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_E, &e) == 1 &&
              BN_is_odd(n) && BN_num_bits(n) >= RSA_MIN_BITS && BN_num_bits(n) <= RSA_MAX_BITS &&
              BN_is_odd(e) && !BN_is_one(e) && BN_cmp(e, n) < 0;
    BN_free(n);
    BN_free(e);
    return ok;
}

/* Checks an imported key: public part valid, and private matching public. */
static int check_pkey(EVP_PKEY *pk, enum crypto_alg alg, bool has_private)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
    bool ok = ctx != NULL;

    if (ok && alg == CRYPTO_ALG_RS256)
        ok = rsa_public_ok(pk);
    else if (ok)
        ok = EVP_PKEY_public_check(ctx) == 1;       /* EC: on the curve, not infinity */
    if (ok && has_private)
        ok = EVP_PKEY_pairwise_check(ctx) == 1;     /* private half matches the public one */
    EVP_PKEY_CTX_free(ctx);
    return ok ? 0 : -EINVAL;
}

static EVP_PKEY *import_ec(const json_t *o, bool *has_private)
{
    uint8_t x[PART_BUF], y[PART_BUF], d[PART_BUF], point[65];
    size_t xl, yl, dl;
    OSSL_PARAM_BLD *bld = NULL;
    BIGNUM *dbn = NULL;
    EVP_PKEY *pk = NULL;
    int rc;

    if (strcmp(jsonx_str(o, "crv", ""), "P-256") != 0 ||
        decode_member(o, "x", x, 32, &xl) < 0 || xl != 32 ||
        decode_member(o, "y", y, 32, &yl) < 0 || yl != 32)
        return NULL;
    rc = decode_member(o, "d", d, 32, &dl);
    if (rc == -EINVAL || (rc == 0 && dl != 32))
        goto out;
    *has_private = rc == 0;
    point[0] = POINT_CONVERSION_UNCOMPRESSED;
    memcpy(point + 1, x, 32);
    memcpy(point + 33, y, 32);

    bld = OSSL_PARAM_BLD_new();
    if (!bld ||
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "P-256", 0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point) != 1)
        goto out;
    if (*has_private) {
        dbn = BN_secure_new();
        if (!dbn || !BN_bin2bn(d, 32, dbn) ||
            OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, dbn) != 1)
            goto out;
    }
    pk = from_params("EC", bld, *has_private ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY);
out:
    crypto_wipe(d, sizeof d);
    BN_clear_free(dbn);
    OSSL_PARAM_BLD_free(bld);
    return pk;
}

static EVP_PKEY *import_rsa(const json_t *o, bool *has_private)
{
    static const char *const pub_params[] = { OSSL_PKEY_PARAM_RSA_N, OSSL_PKEY_PARAM_RSA_E };
    uint8_t buf[PART_BUF];
    size_t len;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    BIGNUM *bns[8] = { 0 };
    EVP_PKEY *pk = NULL;
    int rc, nbn = 0;

    if (!bld || json_object_get(o, "oth"))      /* multi-prime keys: not supported */
        goto out;
    for (int i = 0; i < 2; i++) {
        if (decode_member(o, pub_names[CRYPTO_ALG_RS256][i], buf, PART_MAX, &len) < 0)
            goto out;
        bns[nbn] = BN_bin2bn(buf, (int)len, NULL);
        if (!bns[nbn] || OSSL_PARAM_BLD_push_BN(bld, pub_params[i], bns[nbn]) != 1)
            goto out;
        nbn++;
    }
    *has_private = json_object_get(o, "d") != NULL;
    for (int i = 0; *has_private && i < 6; i++) {
        rc = decode_member(o, rsa_priv_names[i], buf, PART_MAX, &len);
        if (rc < 0)                             /* all of d, p, q, dp, dq, qi or none */
            goto out;
        bns[nbn] = BN_secure_new();
        if (!bns[nbn] || !BN_bin2bn(buf, (int)len, bns[nbn]) ||
            OSSL_PARAM_BLD_push_BN(bld, rsa_priv_params[i], bns[nbn]) != 1) {
            nbn++;
            goto out;
        }
        nbn++;
    }
    pk = from_params("RSA", bld, *has_private ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY);
out:
    crypto_wipe(buf, sizeof buf);
    for (int i = 0; i < nbn; i++)
        BN_clear_free(bns[i]);
    OSSL_PARAM_BLD_free(bld);
    return pk;
}

static EVP_PKEY *import_okp(const json_t *o, bool *has_private)
{
    uint8_t x[PART_BUF], d[PART_BUF], derived[32];
    size_t xl, dl, derived_len = sizeof derived;
    EVP_PKEY *pk = NULL;
    int rc;

    if (strcmp(jsonx_str(o, "crv", ""), "Ed25519") != 0 ||
        decode_member(o, "x", x, 32, &xl) < 0 || xl != 32)
        return NULL;
    rc = decode_member(o, "d", d, 32, &dl);
    if (rc == -EINVAL || (rc == 0 && dl != 32))
        goto out;
    *has_private = rc == 0;
    if (!*has_private) {
        pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, 32);
        goto out;
    }
    /* The public key is derived from d; it must equal the x given. */
    pk = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, d, 32);
    if (pk && (EVP_PKEY_get_raw_public_key(pk, derived, &derived_len) != 1 ||
               derived_len != 32 || memcmp(derived, x, 32) != 0)) {
        EVP_PKEY_free(pk);
        pk = NULL;
    }
out:
    crypto_wipe(d, sizeof d);
    return pk;
}

/* Wipes the private members of a parsed JWK before it is released. jansson
 * offers no wiping free, but the strings are ours and writable underneath. */
static void wipe_private_members(json_t *o)
{
    static const char *const names[] = { "d", "p", "q", "dp", "dq", "qi" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        json_t *v = json_object_get(o, names[i]);
        if (json_is_string(v))
            crypto_wipe((char *)json_string_value(v), json_string_length(v));
    }
}

int crypto_key_from_jwk(const char *json, size_t n, struct crypto_key **out)
{
    enum crypto_alg alg = CRYPTO_ALG_NONE, want;
    const char *kty, *alg_s, *use, *kid = NULL;
    const json_t *kid_v;
    bool has_private = false;
    EVP_PKEY *pk = NULL;
    json_t *o;
    int rc;

    *out = NULL;
    o = parse_jwk(json, n, &rc);
    if (!o)
        return rc;
    rc = -EINVAL;
    kty = jsonx_str(o, "kty", "");
    if (strcmp(kty, "EC") == 0)
        want = CRYPTO_ALG_ES256;
    else if (strcmp(kty, "RSA") == 0)
        want = CRYPTO_ALG_RS256;
    else if (strcmp(kty, "OKP") == 0)
        want = CRYPTO_ALG_EDDSA;
    else
        goto out;

    alg_s = jsonx_str(o, "alg", NULL);
    if (json_object_get(o, "alg") && (!alg_s || crypto_alg_parse(alg_s, strlen(alg_s), &alg) < 0 ||
                                      alg != want))
        goto out;
    use = jsonx_str(o, "use", NULL);
    if (json_object_get(o, "use") && (!use || strcmp(use, "sig") != 0))
        goto out;
    kid_v = json_object_get(o, "kid");
    if (kid_v) {
        if (!json_is_string(kid_v) ||
            !kid_valid(json_string_value(kid_v), json_string_length(kid_v)))
            goto out;
        kid = json_string_value(kid_v);
    }

    switch (want) {
    case CRYPTO_ALG_ES256: pk = import_ec(o, &has_private); break;
    case CRYPTO_ALG_RS256: pk = import_rsa(o, &has_private); break;
    default: pk = import_okp(o, &has_private); break;
    }
    if (!pk || check_pkey(pk, want, has_private) < 0)
        goto out;
    rc = key_finish(pk, want, has_private, kid, out);
    pk = NULL;                      /* key_finish took it, even on failure */
out:
    if (rc < 0)
        ERR_clear_error();
    EVP_PKEY_free(pk);
    wipe_private_members(o);
    json_decref(o);
    return rc;
}

/* ---- export ------------------------------------------------------------- */

json_t *crypto_key_public_jwk_json(const struct crypto_key *k)
{
    struct jwk_parts p;
    json_t *o = json_object();

    if (get_parts(k, false, &p) < 0)
        abort();                    /* a loaded key always exports; only a bug gets here */
    json_object_set_new(o, "kty", json_string(p.kty));
    if (p.crv)
        json_object_set_new(o, "crv", json_string(p.crv));
    for (int i = 0; i < p.npub; i++)
        json_object_set_new(o, pub_names[k->alg][i], json_string(p.pub[i]));
    json_object_set_new(o, "kid", json_string(k->kid));
    json_object_set_new(o, "alg", json_string(crypto_alg_name(k->alg)));
    json_object_set_new(o, "use", json_string("sig"));
    return o;
}

char *crypto_key_public_jwk(const struct crypto_key *k)
{
    json_t *o = crypto_key_public_jwk_json(k);
    char *s = jsonx_dump(o);
    json_decref(o);
    return s;
}

/* Appends ,"name":"value" (or the first member without the comma). */
static void put_member(char *buf, size_t cap, size_t *len, const char *name, const char *value)
{
    int w = snprintf(buf + *len, cap - *len, "%s\"%s\":\"%s\"", *len > 1 ? "," : "", name, value);
    if (w < 0 || (size_t)w >= cap - *len)
        abort();                    /* buffer sized for RSA-4096 below; only a bug gets here */
    *len += (size_t)w;
}

char *crypto_key_private_jwk(const struct crypto_key *k)
{
    /* Built by hand rather than through jansson so that every copy of the
     * private members can be wiped. */
    char buf[256 + 8 * B64URL_ENCLEN(PART_MAX)];
    struct jwk_parts p;
    size_t len = 1;
    char *s;

    if (!k->has_private)
        return NULL;
    if (get_parts(k, true, &p) < 0)
        abort();
    buf[0] = '{';
    buf[1] = '\0';
    put_member(buf, sizeof buf, &len, "kty", p.kty);
    if (p.crv)
        put_member(buf, sizeof buf, &len, "crv", p.crv);
    for (int i = 0; i < p.npub; i++)
        put_member(buf, sizeof buf, &len, pub_names[k->alg][i], p.pub[i]);
    for (int i = 0; i < p.npriv; i++)
        put_member(buf, sizeof buf, &len, k->alg == CRYPTO_ALG_RS256 ? rsa_priv_names[i] : "d",
                   p.priv[i]);
    put_member(buf, sizeof buf, &len, "kid", k->kid);
    put_member(buf, sizeof buf, &len, "alg", crypto_alg_name(k->alg));
    put_member(buf, sizeof buf, &len, "use", "sig");
    if (len + 2 > sizeof buf)
        abort();
    buf[len++] = '}';
    buf[len] = '\0';
    s = xstrndup(buf, len);
    crypto_wipe(buf, sizeof buf);
    crypto_wipe(&p, sizeof p);
    return s;
}

char *crypto_jwks_render(const struct crypto_key *const *keys, size_t n)
{
    json_t *doc = json_object(), *arr = json_array();
    char *s;

    for (size_t i = 0; i < n; i++)
        if (keys[i])
            json_array_append_new(arr, crypto_key_public_jwk_json(keys[i]));
    json_object_set_new(doc, "keys", arr);
    s = jsonx_dump(doc);
    json_decref(doc);
    return s;
}

/* ---- raw signatures (JOSE form) ----------------------------------------- */

/* DER ECDSA-Sig-Value -> 64-byte R || S (RFC 7518 §3.4). */
static int ecdsa_der_to_raw(const uint8_t *der, size_t n, uint8_t raw[64])
{
    const unsigned char *p = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)n);
    const BIGNUM *r, *s;
    int rc = -EIO;

    if (!sig)
        return -EIO;
    ECDSA_SIG_get0(sig, &r, &s);
    if (BN_bn2binpad(r, raw, 32) == 32 && BN_bn2binpad(s, raw + 32, 32) == 32)
        rc = 0;
    ECDSA_SIG_free(sig);
    return rc;
}

/* 64-byte R || S -> DER into der (capacity 80); returns its length or -1. */
static int ecdsa_raw_to_der(const uint8_t raw[64], uint8_t der[80])
{
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, 32, NULL), *s = BN_bin2bn(raw + 32, 32, NULL);
    unsigned char *p = der;
    int len = -1;

    if (sig && r && s && ECDSA_SIG_set0(sig, r, s) == 1) {
        r = s = NULL;               /* owned by sig now */
        if (i2d_ECDSA_SIG(sig, NULL) <= 80)
            len = i2d_ECDSA_SIG(sig, &p);
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    return len;
}

int crypto_key_sign_raw(const struct crypto_key *k, const void *data, size_t n,
                        uint8_t *sig, size_t *siglen)
{
    uint8_t der[CRYPTO_SIG_MAX];
    EVP_MD_CTX *c = NULL;
    size_t len = sizeof der;
    int rc = -EIO;

    *siglen = 0;
    if (!k->has_private)
        return -EINVAL;
    c = EVP_MD_CTX_new();
    if (!c || EVP_MD_CTX_copy_ex(c, k->sign_tpl) != 1 ||
        EVP_DigestSign(c, k->alg == CRYPTO_ALG_ES256 ? der : sig, &len, data, n) != 1)
        goto out;
    if (k->alg == CRYPTO_ALG_ES256) {
        if (ecdsa_der_to_raw(der, len, sig) < 0)
            goto out;
        len = 64;
    }
    *siglen = len;
    rc = 0;
out:
    if (rc < 0)
        ERR_clear_error();
    EVP_MD_CTX_free(c);
    return rc;
}

int crypto_key_verify_raw(const struct crypto_key *k, const void *data, size_t n,
                          const uint8_t *sig, size_t siglen)
{
    uint8_t der[80];
    size_t want = k->alg == CRYPTO_ALG_RS256 ? (size_t)EVP_PKEY_get_size(k->pkey) : 64;
    EVP_MD_CTX *c = NULL;
    int derlen, rc = -EBADMSG;

    if (siglen != want)
        return -EBADMSG;
    if (k->alg == CRYPTO_ALG_ES256) {
        derlen = ecdsa_raw_to_der(sig, der);
        if (derlen < 0) {
            rc = -EIO;
            goto out;
        }
        sig = der;
        siglen = (size_t)derlen;
    }
    c = EVP_MD_CTX_new();
    if (!c || EVP_MD_CTX_copy_ex(c, k->verify_tpl) != 1) {
        rc = -EIO;
        goto out;
    }
    if (EVP_DigestVerify(c, sig, siglen, data, n) == 1)
        rc = 0;
out:
    if (rc < 0)
        ERR_clear_error();
    EVP_MD_CTX_free(c);
    return rc;
}
