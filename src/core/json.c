/*
 * json — jansson with the limits network input needs. jansson's own nesting
 * limit (2048) is far above what any Refuge document needs, and deep nesting
 * costs recursion; so jsonx_parse measures the depth first, with a scan that
 * only counts brackets outside strings, and refuses before jansson parses.
 * Duplicate object keys are rejected: in security-relevant JSON two values
 * for one key let two readers disagree about what was sent.
 */
#include "core/json.h"

#include <assert.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/xmalloc.h"

/*
 * Scans p[0..n) counting [ and { outside strings. Stops early and returns
 * stop_at as soon as the depth reaches it (stop_at <= 0: never stops).
 * Inside a string a backslash escapes the next byte, so "\"" and "\\" are
 * handled; unbalanced input is jansson's business, not the scanner's.
 */
static int scan_depth(const char *p, size_t n, int stop_at)
{
    int depth = 0, max = 0;
    bool in_str = false;
    size_t i;

    for (i = 0; i < n; i++) {
        char c = p[i];

        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
            continue;
        }
        switch (c) {
        case '"':
            in_str = true;
            break;
        case '[':
        case '{':
            if (depth < INT_MAX)
                depth++;
            if (depth > max) {
                max = depth;
                if (stop_at > 0 && max >= stop_at)
                    return max;
            }
            break;
        case ']':
        case '}':
            if (depth > 0)
                depth--;
            break;
        default:
            break;
        }
    }
    return max;
}

int jsonx_depth(const char *p, size_t n)
{
    return scan_depth(p, n, 0);
}

json_t *jsonx_parse(const char *p, size_t n, int max_depth, char *errmsg, size_t errlen)
{
    json_error_t err;
    json_t *j = NULL;

    if (errmsg && errlen)
        errmsg[0] = '\0';
    if (max_depth > 0 && scan_depth(p, n, max_depth + 1) > max_depth) {
        if (errmsg && errlen)
            snprintf(errmsg, errlen, "nested deeper than %d levels", max_depth);
        goto out;
    }
    j = json_loadb(p, n, JSON_REJECT_DUPLICATES, &err);
    if (!j && errmsg && errlen)
        snprintf(errmsg, errlen, "invalid JSON at line %d column %d: %s",
                 err.line, err.column, err.text);
out:
    return j;
}

char *jsonx_dump(const json_t *j)
{
    char *s, *copy;

    assert(j != NULL);
    s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    if (!s)
        xoom(0);        /* jansson fails here only when out of memory */
    /* Hand back xmalloc'd memory so callers free() without knowing jansson's
     * allocator. */
    copy = xstrdup(s);
    free(s);
    return copy;
}

const char *jsonx_str(const json_t *obj, const char *key, const char *fallback)
{
    json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;

    return json_is_string(v) ? json_string_value(v) : fallback;
}

int64_t jsonx_int(const json_t *obj, const char *key, int64_t fallback)
{
    json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;

    return json_is_integer(v) ? (int64_t)json_integer_value(v) : fallback;
}

bool jsonx_bool(const json_t *obj, const char *key, bool fallback)
{
    json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;

    return json_is_boolean(v) ? json_is_true(v) : fallback;
}
