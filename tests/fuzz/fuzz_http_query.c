/*
 * fuzz_http_query — http_urlencoded_parse as the router uses it on raw query
 * strings, with a max_params chosen by the first input byte (0..69) so the
 * -E2BIG path and its boundary are explored as much as the decoding.
 *
 * Oracles: -E2BIG exactly when the count of non-empty '&'-separated pieces
 * exceeds max_params (and the escapes before that point do not matter: the
 * count is checked first); on success n equals that count; the per-name
 * counts add up to n; http_params_get returns the first occurrence.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct http_params ps;
    struct arena a;
    size_t max, pieces = 0, i, start, total = 0;
    const char *q;
    int rc;

    if (size < 1)
        return 0;
    max = data[0] % 70;
    q = (const char *)data + 1;
    size--;

    for (start = 0, i = 0; i <= size; i++)
        if (i == size || q[i] == '&') {
            if (i > start)
                pieces++;
            start = i + 1;
        }

    arena_init(&a);
    rc = http_urlencoded_parse(q, size, &a, max, &ps);
    if ((pieces > max) != (rc == -E2BIG))
        abort();
    if (rc == 0) {
        if (ps.n != pieces)
            abort();
        for (i = 0; i < ps.n; i++) {
            size_t j, first = ps.n;

            for (j = 0; j < ps.n; j++)
                if (strcmp(ps.items[j].name, ps.items[i].name) == 0) {
                    first = j;
                    break;
                }
            if (http_params_get(&ps, ps.items[i].name) != ps.items[first].value)
                abort();
            if (first == i)
                total += http_params_count(&ps, ps.items[i].name);
        }
        if (total != ps.n)
            abort();
    } else if (rc != -EINVAL && rc != -E2BIG) {
        abort();
    }
    arena_free(&a);
    return 0;
}
