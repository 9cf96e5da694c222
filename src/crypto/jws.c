/*
 * jws — compact JWS serialization over the raw signatures of keys.c.
 *
 *   BASE64URL(header) '.' BASE64URL(payload) '.' BASE64URL(signature)
 *   \______________ signing input ________/
 *
 * Signing builds the whole token in one allocation: the header JSON is
 * formatted directly (alg, kid and typ are restricted to characters that
 * need no JSON escaping), both parts are encoded in place, the signature is
 * computed over the prefix and appended. Verification order is in jws.h.
 */
#include "crypto/jws.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64.h"
#include "core/json.h"
#include "core/xmalloc.h"
#include "crypto/key_internal.h"

#define HEADER_MAX 256          /* {"alg":..,"typ":..,"kid":..} with the limits above */
#define HEADER_MAX_DEPTH 2
#define PAYLOAD_MAX_DEPTH 16

static bool typ_valid(const char *typ)
{
    size_t n = strlen(typ);
    if (n == 0 || n > CRYPTO_JWS_TYP_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = typ[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '.' || c == '/' || c == '-'))
            return false;
    }
    return true;
}

/* ---- signing ------------------------------------------------------------ */

int crypto_jws_sign(const struct crypto_key *k, const char *typ,
                    const char *payload, size_t n, char **out_compact)
{
    char header[HEADER_MAX];
    uint8_t sig[CRYPTO_SIG_MAX];
    size_t hlen, pos, siglen;
    char *tok;
    int len, rc;

    *out_compact = NULL;
    if (!crypto_key_has_private(k) || (typ && !typ_valid(typ)))
        return -EINVAL;
    if (typ)
        len = snprintf(header, sizeof header, "{\"alg\":\"%s\",\"typ\":\"%s\",\"kid\":\"%s\"}",
                       crypto_alg_name(crypto_key_alg(k)), typ, crypto_key_kid(k));
    else
        len = snprintf(header, sizeof header, "{\"alg\":\"%s\",\"kid\":\"%s\"}",
                       crypto_alg_name(crypto_key_alg(k)), crypto_key_kid(k));
    if (len < 0 || (size_t)len >= sizeof header)
        return -EINVAL;
    hlen = (size_t)len;

    tok = xmalloc(B64URL_ENCLEN(hlen) + B64URL_ENCLEN(n) + B64URL_ENCLEN(CRYPTO_SIG_MAX) + 2);
    pos = b64url_encode(header, hlen, tok);
    tok[pos++] = '.';
    pos += b64url_encode(payload, n, tok + pos);

    rc = crypto_key_sign_raw(k, tok, pos, sig, &siglen);
    if (rc < 0) {
        free(tok);
        return rc;
    }
    tok[pos++] = '.';
    b64url_encode(sig, siglen, tok + pos);
    *out_compact = tok;
    return 0;
}

/* ---- verification ------------------------------------------------------- */

const struct crypto_key *crypto_keyset_find(void *keyset, const char *kid, size_t kidlen)
{
    const struct crypto_keyset *set = keyset;
    for (size_t i = 0; i < set->n; i++) {
        const struct crypto_key *k = set->keys[i];
        if (k && strlen(crypto_key_kid(k)) == kidlen && memcmp(crypto_key_kid(k), kid, kidlen) == 0)
            return k;
    }
    return NULL;
}

/* Strict base64url part -> xmalloc'd bytes (+ NUL, not counted). NULL when malformed. */
static char *decode_part(const char *p, size_t n, size_t *outlen)
{
    char *out = xmalloc(B64_DECLEN(n) + 1);
    if (b64url_decode(p, n, out, outlen) < 0) {
        free(out);
        return NULL;
    }
    out[*outlen] = '\0';
    return out;
}

/* Parses a JSON object without duplicate members, within a nesting limit. */
static json_t *parse_object(const char *p, size_t n, int max_depth)
{
    json_t *j = jsonx_parse(p, n, max_depth, NULL, 0);

    if (j && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

int crypto_jws_verify(const char *compact, size_t n, crypto_key_lookup_fn lookup, void *arg,
                      size_t max_len, json_t **payload_out, json_t **header_out)
{
    const char *dot1, *dot2, *sig_b64;
    char *hdr_raw = NULL, *payload_raw = NULL, *sig = NULL;
    size_t hdr_len, payload_len, sig_len;
    json_t *header = NULL, *payload = NULL;
    const json_t *alg_v, *kid_v;
    const struct crypto_key *k;
    enum crypto_alg alg;
    int rc;

    *payload_out = NULL;
    if (header_out)
        *header_out = NULL;
    if (max_len == 0)
        max_len = CRYPTO_JWS_MAX_LEN;
    if (n > max_len)
        return -E2BIG;

    /* Exactly three parts. */
    rc = -EINVAL;
    dot1 = memchr(compact, '.', n);
    if (!dot1)
        goto out;
    dot2 = memchr(dot1 + 1, '.', n - (size_t)(dot1 + 1 - compact));
    if (!dot2)
        goto out;
    sig_b64 = dot2 + 1;
    if (memchr(sig_b64, '.', n - (size_t)(sig_b64 - compact)))
        goto out;

    /* Header: a JSON object with a supported alg and a kid. */
    hdr_raw = decode_part(compact, (size_t)(dot1 - compact), &hdr_len);
    if (!hdr_raw)
        goto out;
    header = parse_object(hdr_raw, hdr_len, HEADER_MAX_DEPTH);
    if (!header || json_object_get(header, "crit"))
        goto out;
    rc = -EKEYREJECTED;
    alg_v = json_object_get(header, "alg");
    if (!json_is_string(alg_v) ||
        crypto_alg_parse(json_string_value(alg_v), json_string_length(alg_v), &alg) < 0)
        goto out;
    rc = -ENOKEY;
    kid_v = json_object_get(header, "kid");
    if (!json_is_string(kid_v) || json_string_length(kid_v) == 0)
        goto out;

    /* Signature part must be well-formed before any key is consulted. */
    rc = -EINVAL;
    sig = decode_part(sig_b64, n - (size_t)(sig_b64 - compact), &sig_len);
    if (!sig)
        goto out;
    payload_raw = decode_part(dot1 + 1, (size_t)(dot2 - dot1 - 1), &payload_len);
    if (!payload_raw)
        goto out;

    rc = -ENOKEY;
    k = lookup(arg, json_string_value(kid_v), json_string_length(kid_v));
    if (!k)
        goto out;
    rc = -EKEYREJECTED;
    if (crypto_key_alg(k) != alg)
        goto out;
    rc = crypto_key_verify_raw(k, compact, (size_t)(dot2 - compact), (const uint8_t *)sig, sig_len);
    if (rc < 0)
        goto out;

    rc = -EINVAL;
    payload = parse_object(payload_raw, payload_len, PAYLOAD_MAX_DEPTH);
    if (!payload)
        goto out;

    *payload_out = payload;
    payload = NULL;
    if (header_out) {
        *header_out = header;
        header = NULL;
    }
    rc = 0;
out:
    json_decref(payload);
    json_decref(header);
    free(hdr_raw);
    free(payload_raw);
    free(sig);
    return rc;
}
