/*
 * path — the PATCH path parser (RFC 7644 §3.5.2, grammar in path.h).
 *
 * Why this file exists: a PATCH path names a place in a resource, and the
 * PATCH engine must never guess which place. The text is split into its
 * parts here (schema URN, attribute, optional value filter, optional
 * sub-attribute), each part is resolved against the schema tables, and the
 * filter inside the brackets goes to the one filter parser (filter.c) as an
 * element filter, so that "emails[type eq \"work\"]" selects elements with
 * exactly the semantics of a search filter.
 *
 * Splitting: the attrPath before "[" never contains quotes, and a value
 * filter cannot contain a nested "[...]", so the closing bracket is the
 * first "]" outside a JSON string.
 */
#include "scim/path.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char INVALID_PATH[] = "invalidPath";

#define EXCERPT_MAX 32

static const char *excerpt(struct str s, char *out, size_t outlen)
{
    size_t i, k = 0;

    for (i = 0; i < s.len && i < EXCERPT_MAX && k + 1 < outlen; i++) {
        unsigned char c = (unsigned char)s.p[i];
        out[k++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (i < s.len && k + 4 < outlen) {
        memcpy(out + k, "...", 3);
        k += 3;
    }
    out[k] = '\0';
    return out;
}

static int fail(struct scim_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct scim_err *err, const char *fmt, ...)
{
    va_list ap;

    if (err) {
        err->scim_type = INVALID_PATH;
        va_start(ap, fmt);
        vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

static bool valid_attrname(struct str s)
{
    size_t i;

    if (str_eq_cstr(s, "$ref"))
        return true;
    if (s.len == 0 || !((s.p[0] >= 'a' && s.p[0] <= 'z') || (s.p[0] >= 'A' && s.p[0] <= 'Z')))
        return false;
    for (i = 1; i < s.len; i++) {
        char c = s.p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

/* Index of the "]" closing the value filter that starts at text[from], or
 * text.len when there is none. Skips JSON strings and their escapes. */
static size_t closing_bracket(struct str text, size_t from)
{
    bool in_str = false;
    size_t i;

    for (i = from; i < text.len; i++) {
        char c = text.p[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == ']') {
            return i;
        }
    }
    return text.len;
}

/* Resolves the attrPath head (no brackets) into p. */
static int resolve_head(const struct scim_resource_type *rt, struct str head, struct scim_path *p,
                        struct scim_err *err)
{
    char ex[EXCERPT_MAX + 8];
    struct str urn = STR_NULL, rest = head, name, sub = STR_NULL;
    const struct scim_schema *s;
    size_t i;

    /* a URN alone names a whole extension object */
    s = scim_rt_schema(rt, head);
    if (s && scim_schema_is_extension(rt, s)) {
        p->schema = s;
        return 0;
    }
    for (i = head.len; i > 0; i--) {
        if (head.p[i - 1] == ':') {
            urn = (struct str){ head.p, i - 1 };
            rest = (struct str){ head.p + i, head.len - i };
            break;
        }
    }
    if (!str_split(rest, '.', &name, &sub))
        sub = STR_NULL;
    if (!valid_attrname(name) || (sub.p && !valid_attrname(sub)))
        return fail(err, "invalid attribute path '%s'", excerpt(head, ex, sizeof(ex)));
    if (urn.p && !scim_rt_schema(rt, urn))
        return fail(err, "unknown schema '%s'", excerpt(urn, ex, sizeof(ex)));
    p->attr = scim_rt_attr(rt, urn, name, &p->schema);
    if (!p->attr)
        return fail(err, "unknown attribute '%s'", excerpt(name, ex, sizeof(ex)));
    if (sub.p) {
        if (p->attr->type != SCIM_TYPE_COMPLEX)
            return fail(err, "attribute '%s' has no sub-attributes", p->attr->name);
        p->sub = scim_attr_sub(p->attr, sub);
        if (!p->sub)
            return fail(err, "unknown sub-attribute '%s' of '%s'", excerpt(sub, ex, sizeof(ex)),
                        p->attr->name);
    }
    return 0;
}

int scim_path_parse(const struct scim_resource_type *rt, struct str text, struct scim_path *out,
                    struct scim_err *err)
{
    char ex[EXCERPT_MAX + 8];
    struct scim_attr_ref ref;
    struct str head, inner, tail;
    size_t lb, rb, i;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    if (err) {
        err->scim_type = NULL;
        err->detail[0] = '\0';
    }
    if (text.len == 0)
        return fail(err, "empty path");
    if (text.len > SCIM_PATH_MAX_LEN)
        return fail(err, "path longer than %d bytes", SCIM_PATH_MAX_LEN);
    for (lb = 0; lb < text.len && text.p[lb] != '['; lb++) {
        unsigned char c = (unsigned char)text.p[lb];
        if (c <= 0x20 || c >= 0x7f || c == ']' || c == '"' || c == '(' || c == ')')
            return fail(err, "unexpected character at offset %zu of the path", lb);
    }
    head = (struct str){ text.p, lb };
    if ((rc = resolve_head(rt, head, out, err)) < 0)
        goto out;
    if (lb == text.len)
        return 0;

    /* valuePath */
    if (!out->attr || out->sub || out->attr->type != SCIM_TYPE_COMPLEX) {
        rc = fail(err, "'[' must follow a complex attribute");
        goto out;
    }
    rb = closing_bracket(text, lb + 1);
    if (rb == text.len) {
        rc = fail(err, "missing ']' in path");
        goto out;
    }
    inner = (struct str){ text.p + lb + 1, rb - lb - 1 };
    ref = scim_path_ref(out);
    if ((rc = scim_filter_parse_element(rt, &ref, inner, NULL, &out->filter, err)) < 0)
        goto out;

    /* [subAttr] after the brackets */
    tail = (struct str){ text.p + rb + 1, text.len - rb - 1 };
    if (tail.len == 0)
        return 0;
    if (tail.p[0] != '.') {
        rc = fail(err, "unexpected '%s' after ']'", excerpt(tail, ex, sizeof(ex)));
        goto out;
    }
    tail.p++;
    tail.len--;
    for (i = 0; i < tail.len; i++)
        if (tail.p[i] == '.' || tail.p[i] == '[') {
            rc = fail(err, "a path has at most one sub-attribute after ']'");
            goto out;
        }
    if (!valid_attrname(tail)) {
        rc = fail(err, "invalid sub-attribute '%s' after ']'", excerpt(tail, ex, sizeof(ex)));
        goto out;
    }
    out->sub = scim_attr_sub(out->attr, tail);
    if (!out->sub)
        rc = fail(err, "unknown sub-attribute '%s' of '%s'", excerpt(tail, ex, sizeof(ex)),
                  out->attr->name);
out:
    if (rc < 0)
        scim_path_free(out);
    return rc;
}

void scim_path_free(struct scim_path *p)
{
    if (!p)
        return;
    scim_filter_free(p->filter);
    memset(p, 0, sizeof(*p));
}

struct scim_attr_ref scim_path_ref(const struct scim_path *p)
{
    return (struct scim_attr_ref){ p->schema, p->attr, p->sub };
}
