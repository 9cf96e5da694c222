/*
 * filter — SCIM 2.0 filter parser, evaluator and SQL compiler.
 *
 * Why this file exists: a SCIM filter arrives from the network and ends up
 * in two places, a SQL query over the store and a match over JSON resources
 * (PATCH value filters, directory-backed users). Both must give the same
 * answer for every filter and neither may ever be driven outside its limits
 * by the text. So there is one parser producing one resolved tree (every
 * attribute a pointer into schema_attrs, every value typed and checked),
 * and two back ends that walk the same tree: eval_* and the sql_* section.
 * The semantics both implement are listed in filter.h.
 *
 * Sections: errors, lexer, values (strings, numbers, dates), parser,
 * evaluator, SQL compiler.
 *
 * The parser is recursive descent, one function per precedence level:
 *   parse_or    := parse_and ("or" parse_and)*
 *   parse_and   := parse_unary ("and" parse_unary)*
 *   parse_unary := "not" "(" parse_or ")" | "(" parse_or ")" | attr_expr
 *   attr_expr   := attrPath "[" parse_or "]" | attrPath "pr" | attrPath op value
 * Recursion is bounded by the depth limit (each level is "(" or "[") and
 * the tree size by the node limit; chains of and/or are built in loops.
 */
#include "scim/filter.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/xmalloc.h"

#define NUMBER_MAX_LEN 64
#define EXCERPT_MAX 32
#define EXCERPT_BUF (EXCERPT_MAX + 8)

static const char INVALID_FILTER[] = "invalidFilter";

static unsigned char fold(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

/* ------------------------------------------------------------------ errors */

struct parser {
    const struct scim_resource_type *rt;
    const char *p;
    size_t n, pos;
    int depth, max_depth;
    size_t max_nodes;
    struct scim_filter *f;
    size_t cap;
    const struct scim_attr_ref *elem;   /* inside "[...]": names are sub-attributes of elem->attr */
    struct scim_err *err;
};

/* Copies at most EXCERPT_MAX bytes of s into out as printable ASCII, so
 * that a detail string is always valid UTF-8 and short. */
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

static void set_err(struct scim_err *err, const char *type, const char *fmt, va_list ap)
{
    if (!err)
        return;
    err->scim_type = type;
    vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
}

/* Fills the error (invalidFilter) with the message and the offset. -EINVAL. */
static int fail(struct parser *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct parser *ps, const char *fmt, ...)
{
    char msg[160];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (ps->err) {
        ps->err->scim_type = INVALID_FILTER;
        snprintf(ps->err->detail, sizeof(ps->err->detail), "%s (at offset %zu)", msg, ps->pos);
    }
    return -EINVAL;
}

static int sql_fail(struct scim_err *err, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int sql_fail(struct scim_err *err, int rc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    set_err(err, INVALID_FILTER, fmt, ap);
    va_end(ap);
    return rc;
}

/* ------------------------------------------------------------------- lexer */

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Word bytes: anything visible except the punctuation of the grammar. */
static bool is_word(char c)
{
    unsigned char u = (unsigned char)c;
    return u > 0x20 && u != 0x7f && c != '(' && c != ')' && c != '[' && c != ']' && c != '"';
}

static void skip_ws(struct parser *ps)
{
    while (ps->pos < ps->n && is_ws(ps->p[ps->pos]))
        ps->pos++;
}

static int peek(const struct parser *ps)
{
    return ps->pos < ps->n ? (unsigned char)ps->p[ps->pos] : -1;
}

/* The word at pos (possibly empty); does not consume it. */
static struct str word_at(const struct parser *ps)
{
    size_t e = ps->pos;

    while (e < ps->n && is_word(ps->p[e]))
        e++;
    return (struct str){ ps->p + ps->pos, e - ps->pos };
}

/* Consumes the keyword kw (case-insensitive) when it is the next word. */
static bool take_keyword(struct parser *ps, const char *kw)
{
    struct str w = word_at(ps);

    if (!str_case_eq_cstr(w, kw))
        return false;
    ps->pos += w.len;
    return true;
}

/* ------------------------------------------------------------------ values */

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    int i;

    for (i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static void put_utf8(struct buf *b, unsigned cp)
{
    char u[4];
    size_t n;

    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        u[0] = (char)(0xf0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    /* the buffer's limit is the filter length, and decoding never grows
     * a string: an escape of k bytes yields at most k bytes of UTF-8 */
    if (buf_append(b, u, n) < 0)
        abort();
}

/* Length of the valid UTF-8 sequence at p[0..n), or 0 when invalid
 * (overlong forms, surrogates and code points above U+10FFFF refused). */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned cp;
    size_t len, i;

    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        len = 2;
        cp = p[0] & 0x1f;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        len = 3;
        cp = p[0] & 0x0f;
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        len = 4;
        cp = p[0] & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* Decodes the JSON string starting at the opening quote into v. */
static int parse_string(struct parser *ps, struct scim_value *v)
{
    struct buf b;
    size_t start = ps->pos;
    int rc = 0;

    buf_init(&b, ps->n);
    ps->pos++;                                   /* opening quote */
    for (;;) {
        unsigned char c;
        if (ps->pos >= ps->n) {
            ps->pos = start;
            rc = fail(ps, "unterminated string");
            goto out;
        }
        c = (unsigned char)ps->p[ps->pos];
        if (c == '"') {
            ps->pos++;
            break;
        }
        if (c < 0x20) {
            rc = fail(ps, "control character in string");
            goto out;
        }
        if (c == '\\') {
            unsigned cp, lo;
            if (ps->pos + 1 >= ps->n) {
                rc = fail(ps, "unterminated escape in string");
                goto out;
            }
            c = (unsigned char)ps->p[ps->pos + 1];
            ps->pos += 2;
            switch (c) {
            case '"': put_utf8(&b, '"'); continue;
            case '\\': put_utf8(&b, '\\'); continue;
            case '/': put_utf8(&b, '/'); continue;
            case 'b': put_utf8(&b, '\b'); continue;
            case 'f': put_utf8(&b, '\f'); continue;
            case 'n': put_utf8(&b, '\n'); continue;
            case 'r': put_utf8(&b, '\r'); continue;
            case 't': put_utf8(&b, '\t'); continue;
            case 'u': break;
            default:
                ps->pos -= 2;
                rc = fail(ps, "invalid escape '\\%c' in string", c >= 0x20 && c < 0x7f ? c : '?');
                goto out;
            }
            if (ps->n - ps->pos < 4 || hex4(ps->p + ps->pos, &cp) < 0) {
                ps->pos -= 2;
                rc = fail(ps, "invalid \\u escape in string");
                goto out;
            }
            ps->pos += 4;
            if (cp >= 0xdc00 && cp <= 0xdfff) {
                ps->pos -= 6;
                rc = fail(ps, "unpaired low surrogate in string");
                goto out;
            }
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (ps->n - ps->pos < 6 || ps->p[ps->pos] != '\\' || ps->p[ps->pos + 1] != 'u' ||
                    hex4(ps->p + ps->pos + 2, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff) {
                    ps->pos -= 6;
                    rc = fail(ps, "unpaired high surrogate in string");
                    goto out;
                }
                ps->pos += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            if (cp == 0) {
                ps->pos -= 6;
                rc = fail(ps, "\\u0000 is not allowed in a filter string");
                goto out;
            }
            put_utf8(&b, cp);
            continue;
        }
        {
            size_t len = utf8_seq((const unsigned char *)ps->p + ps->pos, ps->n - ps->pos);
            if (len == 0) {
                rc = fail(ps, "invalid UTF-8 in string");
                goto out;
            }
            if (buf_append(&b, ps->p + ps->pos, len) < 0)
                abort();   /* cannot happen: limit is the input length */
            ps->pos += len;
        }
    }
    v->kind = SCIM_VAL_STR;
    v->len = b.len;
    v->s = b.len ? buf_steal(&b) : xstrdup("");
out:
    buf_free(&b);
    return rc;
}

/* JSON number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool json_number_syntax(struct str w, bool *integral)
{
    size_t i = 0;

    *integral = true;
    if (i < w.len && w.p[i] == '-')
        i++;
    if (i >= w.len || w.p[i] < '0' || w.p[i] > '9')
        return false;
    if (w.p[i] == '0')
        i++;
    else
        while (i < w.len && w.p[i] >= '0' && w.p[i] <= '9')
            i++;
    if (i < w.len && w.p[i] == '.') {
        *integral = false;
        i++;
        if (i >= w.len || w.p[i] < '0' || w.p[i] > '9')
            return false;
        while (i < w.len && w.p[i] >= '0' && w.p[i] <= '9')
            i++;
    }
    if (i < w.len && (w.p[i] == 'e' || w.p[i] == 'E')) {
        *integral = false;
        i++;
        if (i < w.len && (w.p[i] == '+' || w.p[i] == '-'))
            i++;
        if (i >= w.len || w.p[i] < '0' || w.p[i] > '9')
            return false;
        while (i < w.len && w.p[i] >= '0' && w.p[i] <= '9')
            i++;
    }
    return i == w.len;
}

static int parse_number(struct parser *ps, struct str w, struct scim_value *v)
{
    char tmp[NUMBER_MAX_LEN + 1], ex[EXCERPT_BUF];
    bool integral;

    if (!json_number_syntax(w, &integral))
        return fail(ps, "invalid value '%s'", excerpt(w, ex, sizeof(ex)));
    if (integral && str_to_i64(w, INT64_MIN, INT64_MAX, &v->i) == 0) {
        v->kind = SCIM_VAL_INT;
        return 0;
    }
    if (w.len > NUMBER_MAX_LEN)
        return fail(ps, "number longer than %d characters", NUMBER_MAX_LEN);
    memcpy(tmp, w.p, w.len);
    tmp[w.len] = '\0';
    v->d = strtod(tmp, NULL);
    if (!isfinite(v->d))
        return fail(ps, "number '%s' out of range", tmp);
    v->kind = SCIM_VAL_DEC;
    return 0;
}

/* compValue: string, number, true, false or null. */
static int parse_value(struct parser *ps, struct scim_value *v)
{
    struct str w;

    if (peek(ps) == '"')
        return parse_string(ps, v);
    w = word_at(ps);
    if (w.len == 0)
        return fail(ps, "expected a value");
    if (str_eq_cstr(w, "true") || str_eq_cstr(w, "false")) {
        v->kind = SCIM_VAL_BOOL;
        v->b = w.p[0] == 't';
    } else if (str_eq_cstr(w, "null")) {
        v->kind = SCIM_VAL_NULL;
    } else {
        int rc = parse_number(ps, w, v);
        if (rc < 0)
            return rc;
    }
    ps->pos += w.len;
    return 0;
}

/* ---- dates: RFC 3339 date-time to milliseconds since the epoch ---- */

static int digits(const char *p, size_t n, int *out)
{
    int v = 0;
    size_t i;

    for (i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static bool leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int scim_datetime_parse(struct str s, int64_t *ms)
{
    static const int mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    const char *p = s.p;
    size_t n = s.len, i;
    int y, mo, d, h, mi, sec, frac = 0, oh = 0, om = 0, sign = 0;
    int64_t v;

    if (n < 19 || p[4] != '-' || p[7] != '-' || (p[10] != 'T' && p[10] != 't') ||
        p[13] != ':' || p[16] != ':')
        return -EINVAL;
    if (digits(p, 4, &y) || digits(p + 5, 2, &mo) || digits(p + 8, 2, &d) ||
        digits(p + 11, 2, &h) || digits(p + 14, 2, &mi) || digits(p + 17, 2, &sec))
        return -EINVAL;
    if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59)
        return -EINVAL;
    if (d > mdays[mo - 1] + (mo == 2 && leap(y)))
        return -EINVAL;
    i = 19;
    if (i < n && p[i] == '.') {
        int k = 0, round_digit = 0;
        i++;
        if (i >= n || p[i] < '0' || p[i] > '9')
            return -EINVAL;
        for (; i < n && p[i] >= '0' && p[i] <= '9'; i++, k++) {
            if (k < 3)
                frac = frac * 10 + (p[i] - '0');
            else if (k == 3)
                round_digit = p[i] - '0';
        }
        for (; k < 3; k++)
            frac *= 10;
        if (round_digit >= 5)
            frac++;
    }
    if (i < n && (p[i] == 'Z' || p[i] == 'z')) {
        i++;
    } else if (i < n && (p[i] == '+' || p[i] == '-')) {
        sign = p[i] == '+' ? 1 : -1;
        if (n - i < 6 || p[i + 3] != ':' || digits(p + i + 1, 2, &oh) || digits(p + i + 4, 2, &om) ||
            oh > 23 || om > 59)
            return -EINVAL;
        i += 6;
    }
    if (i != n)
        return -EINVAL;
    v = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
    v -= sign * (oh * 3600 + om * 60);
    *ms = v * 1000 + frac;
    return 0;
}

/* ------------------------------------------------------------------ parser */

static const struct {
    const char *name;
    enum scim_filter_op op;
} compare_ops[] = {
    { "eq", SCIM_FOP_EQ }, { "ne", SCIM_FOP_NE }, { "co", SCIM_FOP_CO },
    { "sw", SCIM_FOP_SW }, { "ew", SCIM_FOP_EW }, { "gt", SCIM_FOP_GT },
    { "ge", SCIM_FOP_GE }, { "lt", SCIM_FOP_LT }, { "le", SCIM_FOP_LE },
    { "pr", SCIM_FOP_PR },
};

const char *scim_filter_op_name(enum scim_filter_op op)
{
    size_t i;

    switch (op) {
    case SCIM_FOP_AND: return "and";
    case SCIM_FOP_OR: return "or";
    case SCIM_FOP_NOT: return "not";
    case SCIM_FOP_VALUE_PATH: return "[]";
    default: break;
    }
    for (i = 0; i < sizeof(compare_ops) / sizeof(compare_ops[0]); i++)
        if (compare_ops[i].op == op)
            return compare_ops[i].name;
    return "?";
}

static bool is_ordering(enum scim_filter_op op)
{
    return op == SCIM_FOP_GT || op == SCIM_FOP_GE || op == SCIM_FOP_LT || op == SCIM_FOP_LE;
}

static bool is_substring(enum scim_filter_op op)
{
    return op == SCIM_FOP_CO || op == SCIM_FOP_SW || op == SCIM_FOP_EW;
}

static int new_node(struct parser *ps, enum scim_filter_op op, int left, int right)
{
    struct scim_filter *f = ps->f;
    struct scim_filter_node *nd;

    if (f->nnodes >= ps->max_nodes)
        return fail(ps, "filter has more than %zu terms", ps->max_nodes);
    if (f->nnodes == ps->cap) {
        ps->cap = ps->cap ? ps->cap * 2 : 16;
        if (ps->cap > ps->max_nodes)
            ps->cap = ps->max_nodes;
        f->nodes = xrealloc(f->nodes, ps->cap * sizeof(*f->nodes));
    }
    nd = &f->nodes[f->nnodes];
    memset(nd, 0, sizeof(*nd));
    nd->op = op;
    nd->left = left;
    nd->right = right;
    return (int)f->nnodes++;
}

static int enter(struct parser *ps)
{
    if (++ps->depth > ps->max_depth)
        return fail(ps, "filter nested deeper than %d levels", ps->max_depth);
    return 0;
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

/* Resolves the attrPath word w into ref. */
static int resolve_path(struct parser *ps, struct str w, struct scim_attr_ref *ref)
{
    char ex[EXCERPT_BUF], ex2[EXCERPT_BUF];
    struct str urn = STR_NULL, rest = w, name, sub = STR_NULL;
    size_t i;

    if (ps->elem) {
        if (!valid_attrname(w))
            return fail(ps, "expected a sub-attribute name of '%s', got '%s'", ps->elem->attr->name,
                        excerpt(w, ex, sizeof(ex)));
        ref->schema = ps->elem->schema;
        ref->attr = ps->elem->attr;
        ref->sub = scim_attr_sub(ps->elem->attr, w);
        if (!ref->sub)
            return fail(ps, "unknown sub-attribute '%s' of '%s'", excerpt(w, ex, sizeof(ex)),
                        ps->elem->attr->name);
        return 0;
    }
    for (i = w.len; i > 0; i--) {
        if (w.p[i - 1] == ':') {
            urn = (struct str){ w.p, i - 1 };
            rest = (struct str){ w.p + i, w.len - i };
            break;
        }
    }
    if (!str_split(rest, '.', &name, &sub))
        sub = STR_NULL;
    if (!valid_attrname(name) || (sub.p && !valid_attrname(sub)))
        return fail(ps, "invalid attribute path '%s'", excerpt(w, ex, sizeof(ex)));
    if (urn.p && !scim_rt_schema(ps->rt, urn))
        return fail(ps, "unknown schema '%s'", excerpt(urn, ex, sizeof(ex)));
    ref->attr = scim_rt_attr(ps->rt, urn, name, &ref->schema);
    if (!ref->attr)
        return fail(ps, "unknown attribute '%s'", excerpt(name, ex, sizeof(ex)));
    ref->sub = NULL;
    if (sub.p) {
        if (ref->attr->type != SCIM_TYPE_COMPLEX)
            return fail(ps, "attribute '%s' has no sub-attributes", ref->attr->name);
        ref->sub = scim_attr_sub(ref->attr, sub);
        if (!ref->sub)
            return fail(ps, "unknown sub-attribute '%s' of '%s'", excerpt(sub, ex2, sizeof(ex2)),
                        ref->attr->name);
    }
    /* a filter must not become an oracle for what is never returned */
    if (ref->attr->returned == SCIM_RET_NEVER || (ref->sub && ref->sub->returned == SCIM_RET_NEVER))
        return fail(ps, "attribute '%s' cannot be used in a filter", ref->attr->name);
    return 0;
}

/* Checks value v against the attribute and operator; fills v->ms / s_fold. */
static int check_value(struct parser *ps, const struct scim_attr *a, enum scim_filter_op op,
                       struct scim_value *v)
{
    const char *tn = scim_type_name(a->type);
    const char *on = scim_filter_op_name(op);
    size_t i;

    if (is_ordering(op) && (a->type == SCIM_TYPE_BOOLEAN || a->type == SCIM_TYPE_BINARY))
        return fail(ps, "operator '%s' cannot be used with %s attribute '%s'", on, tn, a->name);
    if (is_substring(op) && a->type != SCIM_TYPE_STRING && a->type != SCIM_TYPE_REFERENCE)
        return fail(ps, "operator '%s' cannot be used with %s attribute '%s'", on, tn, a->name);
    switch (a->type) {
    case SCIM_TYPE_STRING:
    case SCIM_TYPE_REFERENCE:
    case SCIM_TYPE_BINARY:
        if (v->kind != SCIM_VAL_STR)
            return fail(ps, "attribute '%s' is a %s: compare it with a JSON string", a->name, tn);
        break;
    case SCIM_TYPE_DATETIME:
        if (v->kind != SCIM_VAL_STR || scim_datetime_parse((struct str){ v->s, v->len }, &v->ms) < 0)
            return fail(ps, "attribute '%s' is a dateTime: compare it with an RFC 3339 date-time string",
                        a->name);
        break;
    case SCIM_TYPE_BOOLEAN:
        if (v->kind != SCIM_VAL_BOOL)
            return fail(ps, "attribute '%s' is a boolean: compare it with true or false", a->name);
        break;
    case SCIM_TYPE_INTEGER:
    case SCIM_TYPE_DECIMAL:
        if (v->kind != SCIM_VAL_INT && v->kind != SCIM_VAL_DEC)
            return fail(ps, "attribute '%s' is a%s %s: compare it with a number", a->name,
                        a->type == SCIM_TYPE_INTEGER ? "n" : "", tn);
        break;
    case SCIM_TYPE_COMPLEX:
        return fail(ps, "attribute '%s' is complex: compare one of its sub-attributes", a->name);
    }
    if (v->kind == SCIM_VAL_STR) {
        v->s_fold = xmemdup(v->s, v->len + 1);
        for (i = 0; i < v->len; i++)
            v->s_fold[i] = (char)fold((unsigned char)v->s[i]);
    }
    return 0;
}

static void value_free(struct scim_value *v)
{
    free(v->s);
    free(v->s_fold);
    v->s = v->s_fold = NULL;
}

static int parse_or(struct parser *ps);

/* attrPath "[" valFilter "]" — the attrPath word is already consumed. */
static int parse_value_path(struct parser *ps, const struct scim_attr_ref *ref)
{
    int inner, nd;

    if (ps->elem)
        return fail(ps, "value filters cannot be nested");
    if (ref->sub || ref->attr->type != SCIM_TYPE_COMPLEX)
        return fail(ps, "'[' must follow a complex attribute");
    if (enter(ps) < 0)
        return -EINVAL;
    ps->pos++;
    ps->elem = ref;
    inner = parse_or(ps);
    ps->elem = NULL;
    if (inner < 0)
        return inner;
    skip_ws(ps);
    if (peek(ps) != ']')
        return fail(ps, "missing ']'");
    ps->pos++;
    ps->depth--;
    nd = new_node(ps, SCIM_FOP_VALUE_PATH, inner, -1);
    if (nd >= 0)
        ps->f->nodes[nd].ref = *ref;
    return nd;
}

static int parse_attr_expr(struct parser *ps)
{
    char ex[EXCERPT_BUF];
    struct scim_attr_ref ref;
    struct scim_value v = { .kind = SCIM_VAL_NULL };
    enum scim_filter_op op = SCIM_FOP_PR;
    const struct scim_attr *a;
    struct str w, ow;
    size_t i;
    int rc, nd = -1;

    w = word_at(ps);
    if ((rc = resolve_path(ps, w, &ref)) < 0)
        return rc;
    ps->pos += w.len;
    if (peek(ps) == '[')
        return parse_value_path(ps, &ref);
    if (peek(ps) == '.')
        return fail(ps, "unexpected '.'");
    skip_ws(ps);
    ow = word_at(ps);
    if (ow.len == 0)
        return fail(ps, "expected an operator after '%s'", excerpt(w, ex, sizeof(ex)));
    for (i = 0; i < sizeof(compare_ops) / sizeof(compare_ops[0]); i++)
        if (str_case_eq_cstr(ow, compare_ops[i].name))
            break;
    if (i == sizeof(compare_ops) / sizeof(compare_ops[0]))
        return fail(ps, "unknown operator '%s'", excerpt(ow, ex, sizeof(ex)));
    op = compare_ops[i].op;
    ps->pos += ow.len;
    if (op == SCIM_FOP_PR) {
        nd = new_node(ps, SCIM_FOP_PR, -1, -1);
        if (nd >= 0)
            ps->f->nodes[nd].ref = ref;
        return nd;
    }
    skip_ws(ps);
    if ((rc = parse_value(ps, &v)) < 0)
        goto out;
    if (v.kind == SCIM_VAL_NULL) {
        /* null and unassigned are one state: eq null = not pr, ne null = pr */
        int pr;
        if (op != SCIM_FOP_EQ && op != SCIM_FOP_NE) {
            rc = fail(ps, "operator '%s' cannot be used with null", scim_filter_op_name(op));
            goto out;
        }
        pr = new_node(ps, SCIM_FOP_PR, -1, -1);
        if (pr < 0) {
            rc = pr;
            goto out;
        }
        ps->f->nodes[pr].ref = ref;
        nd = op == SCIM_FOP_NE ? pr : new_node(ps, SCIM_FOP_NOT, pr, -1);
        rc = nd < 0 ? nd : 0;
        goto out;
    }
    /* a comparison on a complex attribute means its "value" sub-attribute */
    if (!ref.sub && ref.attr->type == SCIM_TYPE_COMPLEX && !ps->elem) {
        ref.sub = scim_attr_sub(ref.attr, STR_LIT("value"));
        if (!ref.sub) {
            rc = fail(ps, "attribute '%s' is complex: compare one of its sub-attributes", ref.attr->name);
            goto out;
        }
    }
    a = ref.sub ? ref.sub : ref.attr;
    if ((rc = check_value(ps, a, op, &v)) < 0)
        goto out;
    nd = new_node(ps, op, -1, -1);
    if (nd < 0) {
        rc = nd;
        goto out;
    }
    ps->f->nodes[nd].ref = ref;
    ps->f->nodes[nd].value = v;
    v.s = v.s_fold = NULL;          /* now owned by the node */
out:
    value_free(&v);
    return rc < 0 ? rc : nd;
}

static int parse_group(struct parser *ps)
{
    int inner;

    if (enter(ps) < 0)
        return -EINVAL;
    ps->pos++;                                   /* '(' */
    inner = parse_or(ps);
    if (inner < 0)
        return inner;
    skip_ws(ps);
    if (peek(ps) != ')')
        return fail(ps, "missing ')'");
    ps->pos++;
    ps->depth--;
    return inner;
}

static int parse_unary(struct parser *ps)
{
    char ex[EXCERPT_BUF];
    struct str w;
    int c, inner;

    skip_ws(ps);
    c = peek(ps);
    if (c < 0)
        return fail(ps, "expected a filter expression");
    if (c == '(')
        return parse_group(ps);
    w = word_at(ps);
    if (w.len == 0)
        return fail(ps, "unexpected '%c'", (c >= 0x20 && c < 0x7f) ? c : '?');
    if (str_case_eq_cstr(w, "not")) {
        ps->pos += w.len;
        skip_ws(ps);
        if (peek(ps) != '(')
            return fail(ps, "expected '(' after 'not'");
        inner = parse_group(ps);
        if (inner < 0)
            return inner;
        return new_node(ps, SCIM_FOP_NOT, inner, -1);
    }
    if (w.p[0] == '-' || (w.p[0] >= '0' && w.p[0] <= '9'))
        return fail(ps, "expected an attribute name, got '%s'", excerpt(w, ex, sizeof(ex)));
    return parse_attr_expr(ps);
}

static int parse_and(struct parser *ps)
{
    int l = parse_unary(ps), r;

    while (l >= 0) {
        skip_ws(ps);
        if (!take_keyword(ps, "and"))
            break;
        r = parse_unary(ps);
        if (r < 0)
            return r;
        l = new_node(ps, SCIM_FOP_AND, l, r);
    }
    return l;
}

static int parse_or(struct parser *ps)
{
    int l = parse_and(ps), r;

    while (l >= 0) {
        skip_ws(ps);
        if (!take_keyword(ps, "or"))
            break;
        r = parse_and(ps);
        if (r < 0)
            return r;
        l = new_node(ps, SCIM_FOP_OR, l, r);
    }
    return l;
}

static int parse_common(const struct scim_resource_type *rt, const struct scim_attr_ref *elem,
                        struct str text, const struct scim_filter_limits *lim,
                        struct scim_filter **out, struct scim_err *err)
{
    struct parser ps = { .rt = rt, .p = text.p, .n = text.len, .err = err };
    size_t max_len = (lim && lim->max_len) ? lim->max_len : SCIM_FILTER_MAX_LEN;
    int root, rc = 0;

    *out = NULL;
    if (err) {
        err->scim_type = NULL;
        err->detail[0] = '\0';
    }
    ps.max_depth = (lim && lim->max_depth > 0) ? lim->max_depth : SCIM_FILTER_MAX_DEPTH;
    ps.max_nodes = (lim && lim->max_nodes) ? lim->max_nodes : SCIM_FILTER_MAX_NODES;
    if (text.len > max_len)
        return fail(&ps, "filter longer than %zu bytes", max_len);
    if (text.len && memchr(text.p, '\0', text.len)) {
        ps.pos = (size_t)((const char *)memchr(text.p, '\0', text.len) - text.p);
        return fail(&ps, "NUL byte in filter");
    }
    ps.f = xcalloc(1, sizeof(*ps.f));
    ps.f->rt = rt;
    if (elem)
        ps.f->element = *elem;
    ps.elem = elem;
    root = parse_or(&ps);
    if (root < 0) {
        rc = root;
        goto out;
    }
    skip_ws(&ps);
    if (ps.pos < ps.n) {
        char ex[EXCERPT_BUF];
        struct str rest = { ps.p + ps.pos, ps.n - ps.pos };
        rc = fail(&ps, "unexpected '%s' after a complete filter", excerpt(rest, ex, sizeof(ex)));
        goto out;
    }
    ps.f->root = root;
    *out = ps.f;
    ps.f = NULL;
out:
    scim_filter_free(ps.f);
    return rc;
}

int scim_filter_parse(const struct scim_resource_type *rt, struct str text,
                      const struct scim_filter_limits *lim, struct scim_filter **out,
                      struct scim_err *err)
{
    return parse_common(rt, NULL, text, lim, out, err);
}

int scim_filter_parse_element(const struct scim_resource_type *rt, const struct scim_attr_ref *ref,
                              struct str text, const struct scim_filter_limits *lim,
                              struct scim_filter **out, struct scim_err *err)
{
    if (!ref || !ref->attr || ref->sub || ref->attr->type != SCIM_TYPE_COMPLEX) {
        *out = NULL;
        if (err) {
            err->scim_type = INVALID_FILTER;
            snprintf(err->detail, sizeof(err->detail), "a value filter needs a complex attribute");
        }
        return -EINVAL;
    }
    return parse_common(rt, ref, text, lim, out, err);
}

void scim_filter_free(struct scim_filter *f)
{
    size_t i;

    if (!f)
        return;
    for (i = 0; i < f->nnodes; i++)
        value_free(&f->nodes[i].value);
    free(f->nodes);
    free(f);
}

/* --------------------------------------------------------------- evaluator */

/* Member `name` of obj: the canonical spelling first, then any case. */
static const json_t *member(const json_t *obj, const char *name)
{
    const char *key;
    json_t *v;

    if (!json_is_object(obj))
        return NULL;
    v = json_object_get(obj, name);
    if (v)
        return v;
    json_object_foreach((json_t *)obj, key, v) {
        if (strcasecmp(key, name) == 0)
            return v;
    }
    return NULL;
}

/* Not null, "", [] or {} (filter.h, pr). */
static bool present(const json_t *v)
{
    if (!v || json_is_null(v))
        return false;
    if (json_is_string(v))
        return json_string_length(v) > 0;
    if (json_is_array(v))
        return json_array_size(v) > 0;
    if (json_is_object(v))
        return json_object_size(v) > 0;
    return true;
}

static int cmp_bytes(const char *a, size_t alen, const char *b, size_t blen, bool fold_a)
{
    size_t i, n = alen < blen ? alen : blen;

    for (i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (fold_a)
            x = fold(x);
        if (x != y)
            return x < y ? -1 : 1;
    }
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

static bool ordered(enum scim_filter_op op, int c)
{
    switch (op) {
    case SCIM_FOP_EQ: return c == 0;
    case SCIM_FOP_NE: return c != 0;
    case SCIM_FOP_GT: return c > 0;
    case SCIM_FOP_GE: return c >= 0;
    case SCIM_FOP_LT: return c < 0;
    case SCIM_FOP_LE: return c <= 0;
    default: return false;
    }
}

static bool match_string(const char *x, size_t xlen, const struct scim_filter_node *nd, bool fold_x)
{
    const struct scim_value *v = &nd->value;
    const char *want = fold_x ? v->s_fold : v->s;
    char stackbuf[256], *hay = NULL;
    bool r = false;
    size_t i;

    if (xlen == 0)                 /* "" is the unassigned state */
        return false;
    if (!is_substring(nd->op))
        return ordered(nd->op, cmp_bytes(x, xlen, want, v->len, fold_x));
    if (v->len > xlen)
        return false;
    switch (nd->op) {
    case SCIM_FOP_SW:
        return cmp_bytes(x, v->len, want, v->len, fold_x) == 0;
    case SCIM_FOP_EW:
        return cmp_bytes(x + xlen - v->len, v->len, want, v->len, fold_x) == 0;
    default:
        break;
    }
    /* co: fold a copy of the haystack, then a linear-time memmem */
    if (fold_x) {
        hay = xlen <= sizeof(stackbuf) ? stackbuf : xmalloc(xlen);
        for (i = 0; i < xlen; i++)
            hay[i] = (char)fold((unsigned char)x[i]);
        r = v->len == 0 || memmem(hay, xlen, want, v->len) != NULL;
        if (hay != stackbuf)
            free(hay);
        return r;
    }
    return v->len == 0 || memmem(x, xlen, want, v->len) != NULL;
}

/* Does the single JSON value x satisfy leaf node nd? */
static bool test_value(const json_t *x, const struct scim_filter_node *nd)
{
    const struct scim_attr *a = nd->ref.sub ? nd->ref.sub : nd->ref.attr;
    const struct scim_value *v = &nd->value;

    if (nd->op == SCIM_FOP_PR)
        return present(x);
    if (!x)
        return false;
    switch (a->type) {
    case SCIM_TYPE_STRING:
    case SCIM_TYPE_REFERENCE:
    case SCIM_TYPE_BINARY:
        if (!json_is_string(x))
            return false;
        return match_string(json_string_value(x), json_string_length(x), nd, !a->case_exact);
    case SCIM_TYPE_DATETIME: {
        int64_t ms;
        if (!json_is_string(x) || json_string_length(x) == 0 ||
            scim_datetime_parse((struct str){ json_string_value(x), json_string_length(x) }, &ms) < 0)
            return false;
        return ordered(nd->op, ms < v->ms ? -1 : ms > v->ms ? 1 : 0);
    }
    case SCIM_TYPE_BOOLEAN:
        if (!json_is_boolean(x))
            return false;
        return ordered(nd->op, json_is_true(x) == v->b ? 0 : 1);
    case SCIM_TYPE_INTEGER:
    case SCIM_TYPE_DECIMAL:
        if (!json_is_number(x))
            return false;
        if (json_is_integer(x) && v->kind == SCIM_VAL_INT) {
            json_int_t xi = json_integer_value(x);
            return ordered(nd->op, xi < v->i ? -1 : xi > v->i ? 1 : 0);
        } else {
            double xd = json_number_value(x);
            double vd = v->kind == SCIM_VAL_INT ? (double)v->i : v->d;
            return ordered(nd->op, xd < vd ? -1 : xd > vd ? 1 : 0);
        }
    case SCIM_TYPE_COMPLEX:
        break;
    }
    return false;
}

/* The object holding ref's top-level attribute: the resource, or for an
 * extension attribute the member named by the schema URN. */
static const json_t *container(const struct scim_filter *f, const struct scim_attr_ref *ref,
                               const json_t *resource)
{
    if (scim_schema_is_extension(f->rt, ref->schema))
        return member(resource, ref->schema->id);
    return resource;
}

static bool eval_leaf(const struct scim_filter *f, const struct scim_filter_node *nd,
                      const json_t *json, bool element)
{
    const struct scim_attr_ref *ref = &nd->ref;
    const json_t *v, *el;
    size_t i;

    if (element)                               /* json is one element of ref->attr */
        return test_value(member(json, ref->sub->name), nd);
    v = member(container(f, ref, json), ref->attr->name);
    if (ref->attr->multi_valued) {
        if (!json_is_array(v))
            return false;
        json_array_foreach(v, i, el) {
            const json_t *x = el;
            if (ref->sub)
                x = json_is_object(el) ? member(el, ref->sub->name) : NULL;
            if (test_value(x, nd))
                return true;
        }
        return false;
    }
    if (ref->sub)
        v = json_is_object(v) ? member(v, ref->sub->name) : NULL;
    return test_value(v, nd);
}

static bool eval_node(const struct scim_filter *f, int idx, const json_t *json, bool element)
{
    const struct scim_filter_node *nd = &f->nodes[idx];
    const json_t *v, *el;
    size_t i;

    switch (nd->op) {
    case SCIM_FOP_AND:
        return eval_node(f, nd->left, json, element) && eval_node(f, nd->right, json, element);
    case SCIM_FOP_OR:
        return eval_node(f, nd->left, json, element) || eval_node(f, nd->right, json, element);
    case SCIM_FOP_NOT:
        return !eval_node(f, nd->left, json, element);
    case SCIM_FOP_VALUE_PATH:
        assert(!element);
        v = member(container(f, &nd->ref, json), nd->ref.attr->name);
        if (!nd->ref.attr->multi_valued)
            return json_is_object(v) && eval_node(f, nd->left, v, true);
        if (!json_is_array(v))
            return false;
        json_array_foreach(v, i, el) {
            if (json_is_object(el) && eval_node(f, nd->left, el, true))
                return true;
        }
        return false;
    default:
        return eval_leaf(f, nd, json, element);
    }
}

bool scim_filter_match(const struct scim_filter *f, const json_t *json)
{
    bool element = f->element.attr != NULL;

    if (!json_is_object(json))
        return false;
    return eval_node(f, f->root, json, element);
}

/* ------------------------------------------------------------ SQL compiler */

/*
 * Storage map. A column holds one single-valued attribute of the resource
 * table; a side table holds one row per element of a multi-valued complex
 * attribute, keyed (tenant, fk) = (T.tenant, T.id), with some of its
 * sub-attributes as columns. Anything not listed is read from T.data.
 */
enum col_kind {
    COL_TEXT,        /* the value as is */
    COL_TEXT_LC,     /* ASCII lower(value), written by the store */
    COL_BOOL,        /* 0 / 1 */
    COL_SECONDS,     /* dateTime as unix seconds */
};

struct col_map {
    const char *attr, *sub, *column;
    enum col_kind kind;
};

struct side_col {
    const char *sub, *column;
    enum col_kind kind;
};

struct side_map {
    const char *attr, *table, *fk;
    const struct side_col *cols;
    size_t ncols;
};

struct sql_table {
    const char *rt_name, *table;
    const struct col_map *cols;
    size_t ncols;
    const struct side_map *sides;
    size_t nsides;
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const struct col_map user_cols[] = {
    { "id", NULL, "id", COL_TEXT },
    { "externalId", NULL, "external_id", COL_TEXT },
    { "userName", NULL, "user_name_lc", COL_TEXT_LC },
    { "active", NULL, "active", COL_BOOL },
    { "meta", "created", "created_at", COL_SECONDS },
    { "meta", "lastModified", "updated_at", COL_SECONDS },
};
static const struct side_col email_cols[] = {
    { "value", "value_lc", COL_TEXT_LC },
    { "type", "type", COL_TEXT },
};
static const struct side_col user_group_cols[] = {
    { "value", "group_id", COL_TEXT },
};
static const struct side_map user_sides[] = {
    { "emails", "user_emails", "user_id", email_cols, NELEM(email_cols) },
    { "groups", "group_members", "member_id", user_group_cols, NELEM(user_group_cols) },
};

static const struct col_map group_cols[] = {
    { "id", NULL, "id", COL_TEXT },
    { "externalId", NULL, "external_id", COL_TEXT },
    { "displayName", NULL, "display_name_lc", COL_TEXT_LC },
    { "meta", "created", "created_at", COL_SECONDS },
    { "meta", "lastModified", "updated_at", COL_SECONDS },
};
static const struct side_col member_cols[] = {
    { "value", "member_id", COL_TEXT },
    { "type", "member_type", COL_TEXT },
};
static const struct side_map group_sides[] = {
    { "members", "group_members", "group_id", member_cols, NELEM(member_cols) },
};

static const struct sql_table sql_tables[] = {
    { "User", "users", user_cols, NELEM(user_cols), user_sides, NELEM(user_sides) },
    { "Group", "groups", group_cols, NELEM(group_cols), group_sides, NELEM(group_sides) },
};

/*
 * How one attribute value is read in the current context:
 *   val  — SQL expression of the value (column, json_extract(...), j.value)
 *   type — for JSON values, an expression giving json_type() of it
 *          (NULL when missing); NULL for columns
 *   kind — for columns, what the column holds
 */
struct access {
    char val[512];
    char type[512];
    bool column;
    enum col_kind kind;
};

struct sqlc {
    const struct scim_filter *f;
    const struct sql_table *tbl;
    const char *t;                     /* outer table name or alias */
    struct buf b;
    struct scim_sql_param *params;
    size_t np, cap;
    int first;
    int seq;                           /* subquery alias counter */
    bool overflow;                     /* an append hit the length limit */
};

/* Inside a value path: how an element's sub-attributes are read. */
enum elem_ctx { ELEM_NONE = 0, ELEM_SIDE, ELEM_JSON };
struct elem {
    enum elem_ctx ctx;
    const struct side_map *side;
    int alias;
};

static void put(struct sqlc *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct sqlc *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    if (buf_vprintf(&c->b, fmt, ap) < 0)
        c->overflow = true;              /* checked once, at the end */
    va_end(ap);
}

/* Appends a parameter and returns its placeholder number. */
static int param(struct sqlc *c, enum scim_sql_type type)
{
    struct scim_sql_param *p;

    if (c->np == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 8;
        c->params = xrealloc(c->params, c->cap * sizeof(*c->params));
    }
    p = &c->params[c->np];
    memset(p, 0, sizeof(*p));
    p->type = type;
    return c->first + (int)c->np++;
}

static int param_text(struct sqlc *c, char *owned, size_t len)
{
    int n = param(c, SCIM_SQL_TEXT);
    c->params[c->np - 1].text = owned;
    c->params[c->np - 1].len = len;
    return n;
}

static int param_int(struct sqlc *c, int64_t i)
{
    int n = param(c, SCIM_SQL_INT);
    c->params[c->np - 1].i = i;
    return n;
}

static int param_double(struct sqlc *c, double d)
{
    int n = param(c, SCIM_SQL_DOUBLE);
    c->params[c->np - 1].d = d;
    return n;
}

/* snprintf into a fixed buffer that is sized for the longest name in the
 * attribute tables; truncation would yield broken SQL, so it is a bug. */
static void fmt(char *out, size_t outlen, const char *f, ...) __attribute__((format(printf, 3, 4)));
static void fmt(char *out, size_t outlen, const char *f, ...)
{
    va_list ap;
    int n;

    va_start(ap, f);
    n = vsnprintf(out, outlen, f, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= outlen)
        abort();
}

/* Names in SQL text come from the constant tables only; a quote in one
 * would be a bug in a table, never input. */
static __attribute__((unused)) bool sql_safe_name(const char *s)
{
    return strchr(s, '\'') == NULL && strchr(s, '"') == NULL;
}

/* JSON path of ref (without sub when with_sub is false) for json_extract:
 * $."urn..."."attr"."sub" — every label quoted. */
static void json_path(const struct sqlc *c, const struct scim_attr_ref *ref, bool with_sub,
                      char *out, size_t outlen)
{
    const char *ext = scim_schema_is_extension(c->f->rt, ref->schema) ? ref->schema->id : NULL;
    const char *sub = with_sub && ref->sub ? ref->sub->name : NULL;

    assert(sql_safe_name(ref->attr->name) && (!sub || sql_safe_name(sub)) && (!ext || sql_safe_name(ext)));
    fmt(out, outlen, "$%s%s%s.\"%s\"%s%s%s", ext ? ".\"" : "", ext ? ext : "", ext ? "\"" : "",
        ref->attr->name, sub ? ".\"" : "", sub ? sub : "", sub ? "\"" : "");
}

static const struct col_map *find_col(const struct sqlc *c, const struct scim_attr_ref *ref)
{
    size_t i;

    if (scim_schema_is_extension(c->f->rt, ref->schema))
        return NULL;
    for (i = 0; i < c->tbl->ncols; i++) {
        const struct col_map *m = &c->tbl->cols[i];
        if (strcmp(m->attr, ref->attr->name) == 0 &&
            ((!m->sub && !ref->sub) || (m->sub && ref->sub && strcmp(m->sub, ref->sub->name) == 0)))
            return m;
    }
    return NULL;
}

static const struct side_map *find_side(const struct sqlc *c, const struct scim_attr_ref *ref)
{
    size_t i;

    if (scim_schema_is_extension(c->f->rt, ref->schema) || !ref->attr->multi_valued)
        return NULL;
    for (i = 0; i < c->tbl->nsides; i++)
        if (strcmp(c->tbl->sides[i].attr, ref->attr->name) == 0)
            return &c->tbl->sides[i];
    return NULL;
}

static const struct side_col *find_side_col(const struct side_map *s, const struct scim_attr *sub)
{
    size_t i;

    if (!s || !sub)
        return NULL;
    for (i = 0; i < s->ncols; i++)
        if (strcmp(s->cols[i].sub, sub->name) == 0)
            return &s->cols[i];
    return NULL;
}

static void bind_string(struct sqlc *c, const struct scim_filter_node *nd, bool folded, int *pn)
{
    const struct scim_value *v = &nd->value;
    const char *s = folded ? v->s_fold : v->s;
    struct buf p;
    size_t i;

    if (!is_substring(nd->op)) {
        *pn = param_text(c, xmemdup(s, v->len + 1), v->len);
        return;
    }
    /* LIKE (case-insensitive) escapes \ % _ with '\'; GLOB (case-exact)
     * brackets * ? [ — the value can never act as a wildcard */
    buf_init(&p, v->len * 3 + 2);
    if (nd->op != SCIM_FOP_SW)
        buf_putc(&p, folded ? '%' : '*');
    for (i = 0; i < v->len; i++) {
        char ch = s[i];
        if (folded && (ch == '\\' || ch == '%' || ch == '_')) {
            buf_putc(&p, '\\');
            buf_putc(&p, ch);
        } else if (!folded && (ch == '*' || ch == '?' || ch == '[')) {
            buf_putc(&p, '[');
            buf_putc(&p, ch);
            buf_putc(&p, ']');
        } else {
            buf_putc(&p, ch);
        }
    }
    if (nd->op != SCIM_FOP_EW)
        buf_putc(&p, folded ? '%' : '*');
    {
        size_t len = p.len;
        *pn = param_text(c, buf_steal(&p), len);
    }
    buf_free(&p);
}

static const char *sql_op(enum scim_filter_op op)
{
    switch (op) {
    case SCIM_FOP_EQ: return "=";
    case SCIM_FOP_NE: return "<>";
    case SCIM_FOP_GT: return ">";
    case SCIM_FOP_GE: return ">=";
    case SCIM_FOP_LT: return "<";
    case SCIM_FOP_LE: return "<=";
    default: return NULL;
    }
}

/* A pr test of one value: never NULL. */
static void emit_present(struct sqlc *c, const struct access *ac)
{
    if (ac->column) {
        if (ac->kind == COL_TEXT || ac->kind == COL_TEXT_LC)
            put(c, "(%s IS NOT NULL AND %s <> '')", ac->val, ac->val);
        else
            put(c, "(%s IS NOT NULL)", ac->val);
        return;
    }
    put(c, "(CASE %s WHEN 'null' THEN 0 WHEN 'text' THEN %s <> '' "
           "WHEN 'array' THEN json_array_length(%s) > 0 WHEN 'object' THEN %s <> '{}' "
           "ELSE %s IS NOT NULL END)",
        ac->type, ac->val, ac->val, ac->val, ac->type);
}

/* A comparison of one value: never NULL. Columns keep the plain
 * "col op $n" shape so that SQLite can use their indexes. */
static void emit_compare(struct sqlc *c, const struct scim_filter_node *nd, const struct access *ac)
{
    const struct scim_attr *a = nd->ref.sub ? nd->ref.sub : nd->ref.attr;
    const struct scim_value *v = &nd->value;
    const char *op = sql_op(nd->op);
    int pn;

    switch (a->type) {
    case SCIM_TYPE_STRING:
    case SCIM_TYPE_REFERENCE:
    case SCIM_TYPE_BINARY: {
        bool folded = !a->case_exact;
        char lhs[600];
        if (folded && !(ac->column && ac->kind == COL_TEXT_LC))
            fmt(lhs, sizeof(lhs), "lower(%s)", ac->val);
        else
            fmt(lhs, sizeof(lhs), "%s", ac->val);
        bind_string(c, nd, folded, &pn);
        if (ac->column)
            put(c, "(%s IS NOT NULL AND %s <> '' AND ", ac->val, ac->val);
        else
            put(c, "coalesce(%s = 'text' AND %s <> '' AND ", ac->type, ac->val);
        if (op)
            put(c, "%s %s $%d", lhs, op, pn);
        else if (folded)
            put(c, "%s LIKE $%d ESCAPE '\\'", lhs, pn);
        else
            put(c, "%s GLOB $%d", lhs, pn);
        put(c, ac->column ? ")" : ", 0)");
        return;
    }
    case SCIM_TYPE_DATETIME:
        if (ac->column) {
            assert(ac->kind == COL_SECONDS);
            pn = v->ms % 1000 == 0 ? param_int(c, v->ms / 1000) : param_double(c, (double)v->ms / 1000.0);
            put(c, "(%s IS NOT NULL AND %s %s $%d)", ac->val, ac->val, op, pn);
        } else {
            pn = param_int(c, v->ms);
            put(c, "coalesce(%s = 'text' AND %s <> '' AND "
                   "CAST(round((julianday(%s) - 2440587.5) * 86400000.0) AS INTEGER) %s $%d, 0)",
                ac->type, ac->val, ac->val, op, pn);
        }
        return;
    case SCIM_TYPE_BOOLEAN:
        if (ac->column) {
            pn = param_int(c, v->b ? 1 : 0);
            put(c, "(%s IS NOT NULL AND %s %s $%d)", ac->val, ac->val, op, pn);
        } else {
            pn = param_text(c, xstrdup(v->b ? "true" : "false"), v->b ? 4 : 5);
            put(c, "coalesce(%s IN ('true', 'false') AND %s %s $%d, 0)", ac->type, ac->type, op, pn);
        }
        return;
    case SCIM_TYPE_INTEGER:
    case SCIM_TYPE_DECIMAL:
        pn = v->kind == SCIM_VAL_INT ? param_int(c, v->i) : param_double(c, v->d);
        if (ac->column)
            put(c, "(%s IS NOT NULL AND %s %s $%d)", ac->val, ac->val, op, pn);
        else
            put(c, "coalesce(%s IN ('integer', 'real') AND %s %s $%d, 0)", ac->type, ac->val, op, pn);
        return;
    case SCIM_TYPE_COMPLEX:
        break;
    }
    assert(!"comparison on a complex attribute");
}

static void emit_test(struct sqlc *c, const struct scim_filter_node *nd, const struct access *ac)
{
    if (nd->op == SCIM_FOP_PR)
        emit_present(c, ac);
    else
        emit_compare(c, nd, ac);
}

/* Sub-attribute `sub` of the json_each row scim_jN, as value and type. */
static void json_elem_access(struct access *ac, int alias, const struct scim_attr *sub)
{
    assert(sql_safe_name(sub->name));
    memset(ac, 0, sizeof(*ac));
    fmt(ac->val, sizeof(ac->val),
             "CASE WHEN scim_j%d.type = 'object' THEN json_extract(scim_j%d.value, '$.\"%s\"') END",
             alias, alias, sub->name);
    fmt(ac->type, sizeof(ac->type),
             "CASE WHEN scim_j%d.type = 'object' THEN json_type(scim_j%d.value, '$.\"%s\"') END",
             alias, alias, sub->name);
}

static void emit_leaf(struct sqlc *c, const struct scim_filter_node *nd, const struct elem *el)
{
    const struct scim_attr_ref *ref = &nd->ref;
    const struct col_map *col;
    const struct side_map *side;
    const struct side_col *sc;
    struct access ac;
    char path[400];
    int alias;

    memset(&ac, 0, sizeof(ac));
    if (el->ctx == ELEM_SIDE) {
        sc = find_side_col(el->side, ref->sub);
        assert(sc);
        fmt(ac.val, sizeof(ac.val), "scim_s%d.%s", el->alias, sc->column);
        ac.column = true;
        ac.kind = sc->kind;
        emit_test(c, nd, &ac);
        return;
    }
    if (el->ctx == ELEM_JSON) {
        json_elem_access(&ac, el->alias, ref->sub);
        emit_test(c, nd, &ac);
        return;
    }
    if ((col = find_col(c, ref))) {
        fmt(ac.val, sizeof(ac.val), "%s.%s", c->t, col->column);
        ac.column = true;
        ac.kind = col->kind;
        emit_test(c, nd, &ac);
        return;
    }
    side = find_side(c, ref);
    if ((sc = find_side_col(side, ref->sub))) {
        alias = ++c->seq;
        put(c, "EXISTS (SELECT 1 FROM %s scim_s%d WHERE scim_s%d.tenant = %s.tenant AND scim_s%d.%s = %s.id AND ",
            side->table, alias, alias, c->t, alias, side->fk, c->t);
        fmt(ac.val, sizeof(ac.val), "scim_s%d.%s", alias, sc->column);
        ac.column = true;
        ac.kind = sc->kind;
        emit_test(c, nd, &ac);
        put(c, ")");
        return;
    }
    if (ref->attr->multi_valued) {
        alias = ++c->seq;
        json_path(c, ref, false, path, sizeof(path));
        put(c, "EXISTS (SELECT 1 FROM json_each(%s.data, '%s') scim_j%d WHERE ", c->t, path, alias);
        if (ref->sub) {
            json_elem_access(&ac, alias, ref->sub);
        } else {
            fmt(ac.val, sizeof(ac.val), "scim_j%d.value", alias);
            fmt(ac.type, sizeof(ac.type), "scim_j%d.type", alias);
        }
        emit_test(c, nd, &ac);
        put(c, ")");
        return;
    }
    json_path(c, ref, true, path, sizeof(path));
    fmt(ac.val, sizeof(ac.val), "json_extract(%s.data, '%s')", c->t, path);
    fmt(ac.type, sizeof(ac.type), "json_type(%s.data, '%s')", c->t, path);
    emit_test(c, nd, &ac);
}

/* Whether every leaf under idx reads a sub-attribute the side table has. */
static bool side_covers(const struct sqlc *c, const struct side_map *side, int idx)
{
    const struct scim_filter_node *nd = &c->f->nodes[idx];

    switch (nd->op) {
    case SCIM_FOP_AND:
    case SCIM_FOP_OR:
        return side_covers(c, side, nd->left) && side_covers(c, side, nd->right);
    case SCIM_FOP_NOT:
        return side_covers(c, side, nd->left);
    case SCIM_FOP_VALUE_PATH:
        return false;
    default:
        return find_side_col(side, nd->ref.sub) != NULL;
    }
}

static void emit_node(struct sqlc *c, int idx, const struct elem *el);

/* Emits a chain of one associative operator flat — "(a AND b AND c)" —
 * so that SQL nesting follows the filter's parentheses, not its length. */
static void emit_chain(struct sqlc *c, int idx, enum scim_filter_op op, const struct elem *el)
{
    const struct scim_filter_node *nd = &c->f->nodes[idx];

    if (nd->op != op) {
        emit_node(c, idx, el);
        return;
    }
    emit_chain(c, nd->left, op, el);
    put(c, op == SCIM_FOP_AND ? " AND " : " OR ");
    emit_chain(c, nd->right, op, el);
}

static void emit_value_path(struct sqlc *c, const struct scim_filter_node *nd)
{
    const struct side_map *side = find_side(c, &nd->ref);
    struct elem el = { ELEM_NONE, NULL, 0 };
    char path[400];

    json_path(c, &nd->ref, false, path, sizeof(path));
    if (!nd->ref.attr->multi_valued) {
        /* a single complex value: its sub-attributes are ordinary leaves */
        put(c, "(coalesce(json_type(%s.data, '%s') = 'object', 0) AND ", c->t, path);
        emit_node(c, nd->left, &el);
        put(c, ")");
        return;
    }
    el.alias = ++c->seq;
    if (side && side_covers(c, side, nd->left)) {
        el.ctx = ELEM_SIDE;
        el.side = side;
        put(c, "EXISTS (SELECT 1 FROM %s scim_s%d WHERE scim_s%d.tenant = %s.tenant AND scim_s%d.%s = %s.id AND ",
            side->table, el.alias, el.alias, c->t, el.alias, side->fk, c->t);
    } else {
        el.ctx = ELEM_JSON;
        put(c, "EXISTS (SELECT 1 FROM json_each(%s.data, '%s') scim_j%d WHERE scim_j%d.type = 'object' AND ",
            c->t, path, el.alias, el.alias);
    }
    emit_node(c, nd->left, &el);
    put(c, ")");
}

static void emit_node(struct sqlc *c, int idx, const struct elem *el)
{
    const struct scim_filter_node *nd = &c->f->nodes[idx];

    switch (nd->op) {
    case SCIM_FOP_AND:
    case SCIM_FOP_OR:
        put(c, "(");
        emit_chain(c, idx, nd->op, el);
        put(c, ")");
        return;
    case SCIM_FOP_NOT:
        put(c, "NOT ");
        emit_node(c, nd->left, el);
        return;
    case SCIM_FOP_VALUE_PATH:
        emit_value_path(c, nd);
        return;
    default:
        emit_leaf(c, nd, el);
        return;
    }
}

static bool sql_identifier(const char *s)
{
    size_t i;

    if (!s || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_'))
        return false;
    for (i = 1; s[i]; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return i <= 64;
}

void scim_sql_free(struct scim_sql *s)
{
    size_t i;

    if (!s)
        return;
    for (i = 0; i < s->nparams; i++)
        free(s->params[i].text);
    free(s->params);
    free(s->where);
    memset(s, 0, sizeof(*s));
}

int scim_filter_to_sql(const struct scim_filter *f, const struct scim_sql_opts *opts,
                       struct scim_sql *out, struct scim_err *err)
{
    struct sqlc c = { .f = f };
    struct elem el = { ELEM_NONE, NULL, 0 };
    size_t i;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    if (f->element.attr)
        return sql_fail(err, -EINVAL, "an element filter cannot be compiled to SQL");
    if (!opts || opts->first_param < 1 || (opts->table && !sql_identifier(opts->table)))
        return sql_fail(err, -EINVAL, "invalid SQL options");
    for (i = 0; i < NELEM(sql_tables); i++)
        if (strcmp(sql_tables[i].rt_name, f->rt->name) == 0)
            c.tbl = &sql_tables[i];
    if (!c.tbl)
        return sql_fail(err, -ENOTSUP, "resource type %s cannot be filtered in the store", f->rt->name);
    c.t = opts->table ? opts->table : c.tbl->table;
    c.first = opts->first_param;
    buf_init(&c.b, opts->max_sql_len ? opts->max_sql_len : SCIM_SQL_MAX_LEN);
    put(&c, "(");
    emit_node(&c, f->root, &el);
    put(&c, ")");
    if (c.overflow) {
        rc = sql_fail(err, -E2BIG, "filter too complex");
        goto out;
    }
    out->where = buf_steal(&c.b);
    out->params = c.params;
    out->nparams = c.np;
    c.params = NULL;
    c.np = 0;
out:
    buf_free(&c.b);
    for (i = 0; i < c.np; i++)
        free(c.params[i].text);
    free(c.params);
    return rc;
}
