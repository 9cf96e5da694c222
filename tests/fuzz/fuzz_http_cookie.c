/*
 * fuzz_http_cookie — http_cookie_parse on Cookie header values.
 *
 * Oracles: at most max_cookies results (else -E2BIG); every name is a
 * non-empty RFC 7230 token; values carry no control bytes and no leading or
 * trailing whitespace; value_len matches; and joining the result as
 * "name=value; ..." parses back to the same list.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "http/http.h"

#define MAX_COOKIES 16

static int is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct http_params ps, again;
    struct arena a;
    struct buf b;
    size_t i, j;
    int rc;

    arena_init(&a);
    rc = http_cookie_parse((const char *)data, size, &a, MAX_COOKIES, &ps);
    if (rc == -E2BIG) {
        if (ps.n != 0)
            abort();
        goto out;
    }
    if (rc != 0 || ps.n > MAX_COOKIES)
        abort();

    buf_init(&b, size * 2 + 64);
    for (i = 0; i < ps.n; i++) {
        const struct http_param *p = &ps.items[i];
        size_t nl = strlen(p->name);

        if (nl == 0 || strlen(p->value) != p->value_len)
            abort();
        for (j = 0; j < nl; j++)
            if (!is_tchar((unsigned char)p->name[j]))
                abort();
        for (j = 0; j < p->value_len; j++)
            if ((unsigned char)p->value[j] < 0x20 || p->value[j] == 0x7f || p->value[j] == ';')
                abort();
        if (p->value_len && (p->value[0] == ' ' || p->value[0] == '\t' ||
                             p->value[p->value_len - 1] == ' ' ||
                             p->value[p->value_len - 1] == '\t'))
            abort();
        if (i)
            buf_puts(&b, "; ");
        buf_puts(&b, p->name);
        buf_putc(&b, '=');
        buf_append(&b, p->value, p->value_len);
    }
    rc = http_cookie_parse(b.data ? b.data : "", b.len, &a, MAX_COOKIES, &again);
    if (rc != 0 || again.n != ps.n)
        abort();
    for (i = 0; i < ps.n; i++)
        if (strcmp(again.items[i].name, ps.items[i].name) != 0 ||
            strcmp(again.items[i].value, ps.items[i].value) != 0)
            abort();
    buf_free(&b);
out:
    arena_free(&a);
    return 0;
}
