/*
 * fuzz_core_codec — base64/base64url decoders must round-trip exactly what
 * they accept; buf_json_escape must always produce valid JSON; jsonx_parse
 * must never let through a document deeper than its limit.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "core/base64.h"
#include "core/buf.h"
#include "core/json.h"
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    unsigned char *out = malloc(B64_DECLEN(n));
    char *enc = malloc(B64URL_ENCLEN(n) + 8);
    size_t on;
    if (b64url_decode((const char *)d, n, out, &on) == 0) {
        size_t e = b64url_encode(out, on, enc);
        if (e != n || memcmp(enc, d, n)) abort();
    }
    if (b64_decode((const char *)d, n, out, &on) == 0) {
        size_t e = b64_encode(out, on, enc);
        if (e != n || memcmp(enc, d, n)) abort();
    }
    free(out); free(enc);
    {
        struct buf b; json_error_t err; json_t *j;
        buf_init(&b, 1 << 20);
        buf_putc(&b, '[');  buf_putc(&b, '"');
        if (buf_json_escape(&b, (const char *)d, n) != 0) abort();
        buf_putc(&b, '"'); buf_putc(&b, ']');
        j = json_loadb(b.data, b.len, JSON_ALLOW_NUL, &err);
        if (!j) abort();
        json_decref(j);
        buf_free(&b);
    }
    {
        char em[128];
        int dep = jsonx_depth((const char *)d, n);
        json_t *j = jsonx_parse((const char *)d, n, 4, em, sizeof em);
        if (dep > 4 && j) abort();
        if (!j && !em[0]) abort();
        json_decref(j);
    }
    return 0;
}
