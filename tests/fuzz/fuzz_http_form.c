/*
 * fuzz_http_form — http_urlencoded_parse on form bodies (POST
 * application/x-www-form-urlencoded, e.g. the token endpoint).
 *
 * Oracles beyond the sanitizers: the output respects max_params, names never
 * contain NUL, every value is NUL-terminated at value_len, and re-encoding
 * the parsed list and parsing it again yields the same list (the parser
 * neither loses nor invents bytes).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "http/http.h"

static void encode(struct buf *b, const char *p, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t i;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            buf_putc(b, (char)c);
        } else {
            buf_putc(b, '%');
            buf_putc(b, hex[c >> 4]);
            buf_putc(b, hex[c & 15]);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct http_params ps, again;
    struct arena a;
    struct buf b;
    size_t i;
    int rc;

    arena_init(&a);
    rc = http_urlencoded_parse((const char *)data, size, &a, HTTP_MAX_PARAMS, &ps);
    if (rc != 0 && rc != -EINVAL && rc != -E2BIG)
        abort();
    if (rc != 0) {
        if (ps.n != 0)
            abort();
        goto out;
    }
    if (ps.n > HTTP_MAX_PARAMS)
        abort();

    buf_init(&b, size * 4 + 64);
    for (i = 0; i < ps.n; i++) {
        const struct http_param *p = &ps.items[i];

        if (p->value[p->value_len] != '\0')
            abort();
        if (http_params_count(&ps, p->name) == 0 || !http_params_get(&ps, p->name))
            abort();
        if (i)
            buf_putc(&b, '&');
        encode(&b, p->name, strlen(p->name));
        buf_putc(&b, '=');
        encode(&b, p->value, p->value_len);
    }
    rc = http_urlencoded_parse(b.data ? b.data : "", b.len, &a, HTTP_MAX_PARAMS, &again);
    if (rc != 0 || again.n != ps.n)
        abort();
    for (i = 0; i < ps.n; i++)
        if (strcmp(again.items[i].name, ps.items[i].name) != 0 ||
            again.items[i].value_len != ps.items[i].value_len ||
            memcmp(again.items[i].value, ps.items[i].value, ps.items[i].value_len) != 0)
            abort();
    buf_free(&b);
out:
    arena_free(&a);
    return 0;
}
