/*
 * filter — SCIM 2.0 filters (RFC 7644 §3.4.2.2): parser, in-memory
 * evaluator, and compiler to a parameterized SQLite WHERE fragment.
 *
 *   struct scim_filter *f;
 *   struct scim_err err;
 *   if (scim_filter_parse(&scim_rt_user, text, NULL, &f, &err) < 0)
 *       return scim_error(400, err.scim_type, err.detail);     // "invalidFilter"
 *   struct scim_sql sql;
 *   struct scim_sql_opts o = { .table = "u", .first_param = 2 };
 *   if (scim_filter_to_sql(f, &o, &sql, &err) < 0) ...
 *   q = xasprintf("SELECT u.data FROM users u WHERE u.tenant = $1 AND %s", sql.where);
 *   st = db_prepare(db, q); db_bind_text(st, 1, tenant, -1);
 *   for (k = 0; k < sql.nparams; k++) bind sql.params[k] to $(o.first_param + k);
 *   ...; scim_sql_free(&sql); scim_filter_free(f);
 *
 * Grammar (RFC 7644 Figure 1), with precedence not > and > or:
 *   FILTER    = attrExp / logExp / valuePath / "not" "(" FILTER ")" / "(" FILTER ")"
 *   valuePath = attrPath "[" valFilter "]"      ; valFilter: no nested valuePath
 *   attrPath  = [URI ":"] ATTRNAME ["." ATTRNAME]
 *   attrExp   = attrPath "pr" / attrPath compareOp compValue
 *   compareOp = eq ne co sw ew gt ge lt le
 *   compValue = false / null / true / number / string   ; JSON
 * Keywords, operators and attribute names are ASCII-case-insensitive; the
 * literals true/false/null are lowercase, as in JSON. Whitespace between
 * tokens may be any run of SP, HTAB, CR, LF. JSON strings accept every JSON
 * escape incl. surrogate pairs, must be valid UTF-8 and must not contain
 * U+0000.
 *
 * Semantics (the evaluator and the SQL agree on every one of these):
 *   - Attributes resolve against the resource type's schemas
 *     (schema_attrs.h). An unknown attribute or schema URN is an error with
 *     scimType "invalidFilter": RFC 7644 Table 9 defines invalidFilter as
 *     "... or the specified attribute and filter comparison combination is
 *     not supported", and a PATCH path's unknown attribute is invalidPath
 *     (path.h).
 *   - Attributes that are never returned (password) cannot be filtered on:
 *     a filter would be an oracle for their value.
 *   - Every comparison is existential: it matches when ANY value of the
 *     attribute satisfies it (RFC 7644: "only one has to match"), ne
 *     included, so an absent attribute matches neither eq nor ne. Use
 *     `not (x eq v)` for the complement.
 *   - `x eq null` is `not (x pr)`, `x ne null` is `x pr` (RFC 7644: null and
 *     unassigned are the same state); other operators reject null.
 *   - pr: the attribute has a value that is not null, "", [] or {}; for a
 *     multi-valued attribute, at least one such element. The empty string
 *     is the unassigned state for comparisons too: it matches no eq, ne,
 *     co, ... (so the store's NOT NULL DEFAULT '' columns read as absent).
 *   - A comparison on a complex attribute without a sub-attribute uses its
 *     "value" sub-attribute (emails co "@x" == emails.value co "@x");
 *     complex attributes without "value" only accept pr.
 *   - valuePath a[f] matches when one element of multi-valued complex `a`
 *     (or the single object of a single-valued complex `a`) satisfies f,
 *     all of f's terms evaluated on that same element.
 *   - Strings of caseExact=false attributes compare after ASCII
 *     lower-casing (what SQLite's lower() and LIKE do); caseExact ones
 *     byte-wise. gt/ge/lt/le on strings are byte-wise lexicographic (UTF-8
 *     order == code point order).
 *   - dateTime values compare chronologically at millisecond precision; a
 *     filter value that is not an RFC 3339 date-time is an error.
 *   - Types are checked: string/reference/binary/dateTime need a JSON
 *     string, boolean true/false, integer/decimal a number. gt/ge/lt/le on
 *     boolean or binary, and co/sw/ew on anything but string and reference,
 *     are invalidFilter.
 *
 * Limits (STYLE.md §6): text length, nesting depth (each "(", "not (" and
 * "[" is one level) and node count; exceeding one is invalidFilter.
 */
#ifndef REFUGE_SCIM_FILTER_H
#define REFUGE_SCIM_FILTER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/str.h"
#include "scim/schema_attrs.h"

/* A SCIM error for the response body: {"scimType": scim_type, "detail": detail}. */
struct scim_err {
    const char *scim_type;   /* static: "invalidFilter", "invalidPath", "tooMany" ...; NULL if none */
    char detail[256];        /* one sentence, may quote a short excerpt of the input */
};

#define SCIM_FILTER_MAX_LEN 4096
#define SCIM_FILTER_MAX_DEPTH 32
#define SCIM_FILTER_MAX_NODES 256

struct scim_filter_limits {
    size_t max_len;          /* bytes of filter text; 0 = SCIM_FILTER_MAX_LEN */
    int max_depth;           /* 0 = SCIM_FILTER_MAX_DEPTH */
    size_t max_nodes;        /* 0 = SCIM_FILTER_MAX_NODES */
};

/* ------------------------------------------------------------- the tree */

enum scim_filter_op {
    SCIM_FOP_AND = 0,        /* left and right */
    SCIM_FOP_OR,             /* left or right */
    SCIM_FOP_NOT,            /* not left */
    SCIM_FOP_VALUE_PATH,     /* ref.attr [ left ]; left's refs are relative to one element */
    SCIM_FOP_PR,
    SCIM_FOP_EQ, SCIM_FOP_NE, SCIM_FOP_CO, SCIM_FOP_SW, SCIM_FOP_EW,
    SCIM_FOP_GT, SCIM_FOP_GE, SCIM_FOP_LT, SCIM_FOP_LE,
};

/*
 * A resolved attribute reference. attr is the top-level attribute, sub a
 * sub-attribute or NULL. Inside a value filter (under a VALUE_PATH node, or
 * in a filter made by scim_filter_parse_element) attr is the enclosing
 * attribute and sub is always set: the reference is relative to an element.
 */
struct scim_attr_ref {
    const struct scim_schema *schema;    /* schema attr belongs to (scim_schema_common for id/meta) */
    const struct scim_attr *attr;
    const struct scim_attr *sub;
};

enum scim_value_kind {
    SCIM_VAL_NULL = 0,       /* only while parsing: eq/ne null become PR trees */
    SCIM_VAL_BOOL,
    SCIM_VAL_INT,
    SCIM_VAL_DEC,
    SCIM_VAL_STR,
};

struct scim_value {
    enum scim_value_kind kind;
    bool b;
    int64_t i;
    double d;
    char *s;                 /* STR: decoded UTF-8, NUL-terminated, owned by the filter */
    char *s_fold;            /* STR: s ASCII-lower-cased (same length), owned by the filter */
    size_t len;
    int64_t ms;              /* STR compared with a dateTime attribute: ms since the epoch */
};

struct scim_filter_node {
    enum scim_filter_op op;
    int left, right;                  /* indexes into nodes[], -1 when unused */
    struct scim_attr_ref ref;         /* comparisons, PR, VALUE_PATH */
    struct scim_value value;          /* comparisons */
};

/* Read-only for callers; build one only with the parse functions. */
struct scim_filter {
    const struct scim_resource_type *rt;
    struct scim_attr_ref element;     /* element filters: the enclosing attribute; else all NULL */
    struct scim_filter_node *nodes;
    size_t nnodes;
    int root;
};

/* ------------------------------------------------------------------ API */

/*
 * Parses a filter over resources of type rt. text need not be
 * NUL-terminated. lim may be NULL (defaults). On success *out is a new
 * filter (free with scim_filter_free) and 0 is returned; on error -EINVAL
 * with err filled (scimType "invalidFilter"), and *out is NULL.
 */
int scim_filter_parse(const struct scim_resource_type *rt, struct str text,
                      const struct scim_filter_limits *lim, struct scim_filter **out,
                      struct scim_err *err);

/*
 * Parses a value filter (the inside of "emails[...]") whose attribute names
 * are sub-attributes of the complex attribute ref->attr (ref->sub must be
 * NULL). Used by the PATCH path parser; match it against one element with
 * scim_filter_match. Errors as scim_filter_parse.
 */
int scim_filter_parse_element(const struct scim_resource_type *rt, const struct scim_attr_ref *ref,
                              struct str text, const struct scim_filter_limits *lim,
                              struct scim_filter **out, struct scim_err *err);

void scim_filter_free(struct scim_filter *f);   /* NULL is fine */

/*
 * Evaluates f against a resource (a JSON object with canonical attribute
 * names, extension attributes under their schema URN) or, for a filter from
 * scim_filter_parse_element, against one element of the attribute. Members
 * are found by canonical name first, then case-insensitively.
 */
bool scim_filter_match(const struct scim_filter *f, const json_t *json);

/* ------------------------------------------------------------------- SQL */

enum scim_sql_type { SCIM_SQL_NULL = 0, SCIM_SQL_INT, SCIM_SQL_DOUBLE, SCIM_SQL_TEXT };

struct scim_sql_param {
    enum scim_sql_type type;
    int64_t i;
    double d;
    char *text;              /* TEXT: owned, NUL-terminated */
    size_t len;
};

struct scim_sql {
    char *where;             /* owned; a parenthesized boolean expression, never NULL-valued */
    struct scim_sql_param *params;   /* params[k] binds $(first_param + k) */
    size_t nparams;
};

struct scim_sql_opts {
    /* The caller's name for the resource table in its FROM clause ("u" in
     * "FROM users u"); an SQL identifier [A-Za-z_][A-Za-z0-9_]*. NULL: the
     * table's own name (users / groups). Subqueries use aliases scim_*,
     * which the caller must not use. */
    const char *table;
    int first_param;         /* number of the first placeholder; >= 1 */
    size_t max_sql_len;      /* limit on the WHERE text; 0 = SCIM_SQL_MAX_LEN */
};

/* Far above what SCIM_FILTER_MAX_NODES nodes can produce (about 100 KiB). */
#define SCIM_SQL_MAX_LEN (256 * 1024)

/*
 * Compiles a resource filter (not an element filter) of a User or Group
 * resource type to SQL for the store's tables (store/schema.c):
 *   users(tenant, id, user_name_lc, external_id, active, data, created_at,
 *         updated_at), user_emails(tenant, user_id, value_lc, type),
 *   groups(tenant, id, display_name_lc, external_id, data, created_at,
 *          updated_at), group_members(tenant, group_id, member_id, member_type).
 * id, externalId, userName / displayName, active, meta.created and
 * meta.lastModified use their columns; emails.value / emails.type,
 * members.value / members.type and User groups.value use the side tables
 * (bracket filters that need other sub-attributes use the JSON instead);
 * everything else is read from `data` with json_extract / json_each.
 * Expects: *_lc columns hold the ASCII lower-case (SQLite lower()) of the
 * value; created_at / updated_at are unix seconds; `data` holds the resource
 * with canonical attribute names and agrees with the columns.
 *
 * Only fixed column names and JSON paths from the attribute tables appear in
 * the SQL text; every value from the filter is a bound parameter.
 * 0 on success (free with scim_sql_free); -EINVAL (bad opts, element
 * filter), -ENOTSUP (resource type without tables) or -E2BIG (SQL text over
 * its limit), with err filled.
 */
int scim_filter_to_sql(const struct scim_filter *f, const struct scim_sql_opts *opts,
                       struct scim_sql *out, struct scim_err *err);
void scim_sql_free(struct scim_sql *s);

/* ------------------------------------------------------------- helpers */

/*
 * Parses an RFC 3339 date-time ("2011-05-13T04:42:34Z", fraction and
 * offset optional; no offset means UTC) to milliseconds since the epoch,
 * rounding the fraction to the millisecond. 0 or -EINVAL.
 */
int scim_datetime_parse(struct str s, int64_t *ms);

const char *scim_filter_op_name(enum scim_filter_op op);   /* "eq", "and", ... */

#endif
