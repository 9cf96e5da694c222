/*
 * patch — the SCIM PATCH engine. What each operation means is tabled in
 * patch.h; this file has three parts: parsing (every check that depends
 * only on the request, so a bad request fails before the store is
 * touched), applying (the operations on a JSON resource), and the final
 * tidy-up (empty values vanish, limits hold).
 */
#include "scim/patch.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/xmalloc.h"
#include "scim/resource.h"

/* Prefixes err's detail with the operation's index. */
static int op_fail(struct scim_err *err, size_t i, int rc)
{
    char tmp[sizeof(err->detail)];

    if (err) {
        snprintf(tmp, sizeof(tmp), "Operations[%zu]: %s", i, err->detail);
        memcpy(err->detail, tmp, sizeof(tmp));
    }
    return rc;
}

static bool is_members(const struct scim_attr *a)
{
    return a && strcmp(a->name, "members") == 0;
}

/* --------------------------------------------------------------- parse */

static int parse_opcode(const json_t *v, enum scim_patch_opcode *out, struct scim_err *err)
{
    const char *s = json_string_value(v);

    if (!s)
        return scim_fail(err, SCIM_INVALID_SYNTAX, "\"op\" must be a string");
    if (strcasecmp(s, "add") == 0)
        *out = SCIM_PATCH_ADD;
    else if (strcasecmp(s, "replace") == 0)
        *out = SCIM_PATCH_REPLACE;
    else if (strcasecmp(s, "remove") == 0)
        *out = SCIM_PATCH_REMOVE;
    else
        return scim_fail(err, SCIM_INVALID_SYNTAX, "unknown op '%.32s' (add, replace or remove)", s);
    return 0;
}

/* Mutability of the place a path names (independent of the resource). */
static int check_mutability(const struct scim_patch_op *o, struct scim_err *err)
{
    const struct scim_attr *a = o->path.attr, *sub = o->path.sub;

    if (!a)
        return 0;
    if (strcmp(a->name, "schemas") == 0 && o->path.schema == &scim_schema_common)
        return scim_fail(err, SCIM_MUTABILITY, "schemas is maintained by the server");
    if (a->mutability == SCIM_MUT_READ_ONLY)
        return scim_fail(err, SCIM_MUTABILITY, "%s is readOnly", a->name);
    if (sub && sub->mutability == SCIM_MUT_READ_ONLY)
        return scim_fail(err, SCIM_MUTABILITY, "%s.%s is readOnly", a->name, sub->name);
    if (sub && sub->mutability == SCIM_MUT_IMMUTABLE)
        return scim_fail(err, SCIM_MUTABILITY, "%s.%s is immutable: remove the element and add another",
                         a->name, sub->name);
    return 0;
}

/* Normalizes o->value (raw) for the target of o's path. */
static int parse_value(const struct scim_resource_type *rt, struct scim_patch_op *o, const json_t *raw,
                       struct scim_err *err)
{
    const struct scim_path *p = &o->path;
    char label[160];
    json_t *wrap, *norm;
    int rc;

    o->value = NULL;
    if (!o->has_path) {
        if (!json_is_object(raw))
            return scim_fail(err, SCIM_INVALID_VALUE, "without a path, the value must be an object of attributes");
        return scim_resource_normalize(rt, raw, SCIM_NORM_PATCH | SCIM_NORM_WRAP, &o->value, err);
    }
    if (!p->attr) {                        /* a whole extension object */
        if (!json_is_object(raw) && !json_is_null(raw))
            return scim_fail(err, SCIM_INVALID_VALUE, "%s: the value must be an object", p->schema->id);
        wrap = json_object();
        json_object_set(wrap, p->schema->id, (json_t *)raw);
        rc = scim_resource_normalize(rt, wrap, SCIM_NORM_PATCH, &norm, err);
        json_decref(wrap);
        if (rc < 0)
            return rc;
        o->value = json_incref(json_object_get(norm, p->schema->id));
        json_decref(norm);
        return 0;
    }
    if (p->sub) {
        snprintf(label, sizeof(label), "%s.%s", p->attr->name, p->sub->name);
        return scim_value_normalize(p->sub, label, raw, 0, &o->value, err);
    }
    if (p->filter && p->attr->multi_valued)
        return scim_value_normalize(p->attr, p->attr->name, raw, SCIM_NORM_ELEMENT, &o->value, err);
    return scim_value_normalize(p->attr, p->attr->name, raw, SCIM_NORM_WRAP, &o->value, err);
}

static int parse_op(const struct scim_resource_type *rt, const json_t *j, struct scim_patch_op *o,
                    struct scim_err *err)
{
    json_t *path, *value;
    int rc;

    if (!json_is_object(j))
        return scim_fail(err, SCIM_INVALID_SYNTAX, "an operation must be an object");
    if ((rc = parse_opcode(scim_json_get(j, "op"), &o->op, err)) < 0)
        return rc;
    path = scim_json_get(j, "path");
    value = scim_json_get(j, "value");
    if (path && !json_is_null(path)) {
        if (!json_is_string(path))
            return scim_fail(err, SCIM_INVALID_PATH, "\"path\" must be a string");
        if ((rc = scim_path_parse(rt, (struct str){ json_string_value(path), json_string_length(path) },
                                  &o->path, err)) < 0)
            return rc;
        o->has_path = true;
        if ((rc = check_mutability(o, err)) < 0)
            return rc;
    }
    if (o->op == SCIM_PATCH_REMOVE) {
        if (!o->has_path)
            return scim_fail(err, SCIM_NO_TARGET, "remove needs a path");
        /* a value only means something for "remove these elements" */
        if (value && !json_is_null(value) && o->path.attr && o->path.attr->multi_valued && !o->path.filter &&
            !o->path.sub)
            return scim_value_normalize(o->path.attr, o->path.attr->name, value, SCIM_NORM_WRAP, &o->value,
                                        err);
        return 0;
    }
    if (!value)
        return scim_fail(err, SCIM_INVALID_VALUE, "%s needs a value", o->op == SCIM_PATCH_ADD ? "add" : "replace");
    return parse_value(rt, o, value, err);
}

void scim_patch_free(struct scim_patch *p)
{
    size_t i;

    if (!p)
        return;
    for (i = 0; i < p->nops; i++) {
        scim_path_free(&p->ops[i].path);
        json_decref(p->ops[i].value);
    }
    free(p->ops);
    memset(p, 0, sizeof(*p));
}

int scim_patch_parse(const struct scim_resource_type *rt, const json_t *body, struct scim_patch *out,
                     struct scim_err *err)
{
    json_t *schemas, *ops, *v;
    bool found = false;
    size_t i;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    out->rt = rt;
    if (!json_is_object(body))
        return scim_fail(err, SCIM_INVALID_SYNTAX, "the body must be a JSON object");
    schemas = scim_json_get(body, "schemas");
    if (json_is_array(schemas))
        json_array_foreach(schemas, i, v)
            if (json_is_string(v) && strcasecmp(json_string_value(v), SCIM_URN_PATCHOP) == 0)
                found = true;
    if (!found)
        return scim_fail(err, SCIM_INVALID_SYNTAX, "\"schemas\" must list " SCIM_URN_PATCHOP);
    ops = scim_json_get(body, "Operations");
    if (!json_is_array(ops) || json_array_size(ops) == 0)
        return scim_fail(err, SCIM_INVALID_SYNTAX, "\"Operations\" must be a non-empty array");
    if (json_array_size(ops) > SCIM_PATCH_MAX_OPS)
        return scim_fail(err, SCIM_INVALID_VALUE, "more than %d operations", SCIM_PATCH_MAX_OPS);
    out->ops = xcalloc(json_array_size(ops), sizeof(*out->ops));
    json_array_foreach(ops, i, v) {
        out->nops = i + 1;
        if ((rc = parse_op(rt, v, &out->ops[i], err)) < 0) {
            op_fail(err, i, rc);
            scim_patch_free(out);
            out->rt = rt;
            return rc;
        }
    }
    return 0;
}

enum scim_patch_pw scim_patch_password(const struct scim_patch *p, const char **pw, size_t *len)
{
    enum scim_patch_pw r = SCIM_PATCH_PW_NONE;
    size_t i;

    *pw = NULL;
    *len = 0;
    for (i = 0; i < p->nops; i++) {
        const struct scim_patch_op *o = &p->ops[i];
        json_t *v = NULL;

        if (o->has_path) {
            if (!o->path.attr || strcmp(o->path.attr->name, "password") != 0)
                continue;
            if (o->op == SCIM_PATCH_REMOVE || !o->value) {
                if (o->op != SCIM_PATCH_ADD) {
                    r = SCIM_PATCH_PW_REMOVE;
                    *pw = NULL;
                    *len = 0;
                }
                continue;
            }
            v = o->value;
        } else {
            v = json_object_get(o->value, "password");
            if (!v)
                continue;
        }
        r = SCIM_PATCH_PW_SET;
        *pw = json_string_value(v);
        *len = json_string_length(v);
    }
    return r;
}

/* --------------------------------------------------------------- apply */

/* The object holding schema s's attributes (an extension object, created
 * when `create`), or NULL. */
static json_t *container(const struct scim_resource_type *rt, json_t *res, const struct scim_schema *s,
                         bool create)
{
    json_t *o;

    if (!scim_schema_is_extension(rt, s))
        return res;
    o = json_object_get(res, s->id);
    if (!json_is_object(o)) {
        if (!create)
            return NULL;
        o = json_object();
        json_object_set_new(res, s->id, o);
    }
    return o;
}

static bool same_element(const struct scim_attr *a, const json_t *x, const json_t *y)
{
    if (is_members(a)) {
        const char *vx = json_string_value(json_object_get(x, "value"));
        const char *vy = json_string_value(json_object_get(y, "value"));
        return vx && vy && strcmp(vx, vy) == 0;
    }
    return json_equal((json_t *)x, (json_t *)y);
}

/* Elements matched by "remove" with a value: same "value" sub-attribute,
 * or equal as a whole when they have none. */
static bool remove_matches(const json_t *elem, const json_t *given)
{
    json_t *vx = json_object_get(elem, "value"), *vy = json_object_get(given, "value");

    if (json_is_object(elem) && json_is_object(given) && vx && vy)
        return json_equal(vx, vy);
    return json_equal((json_t *)elem, (json_t *)given);
}

static bool is_primary(const json_t *e)
{
    return json_is_true(json_object_get(e, "primary"));
}

/* After elements `touched` of array arr became (or stayed) primary, no
 * other element may be. */
static void fix_primary(json_t *arr, json_t *const *touched, size_t ntouched)
{
    json_t *e;
    size_t i, k;
    bool any = false;

    for (k = 0; k < ntouched; k++)
        if (is_primary(touched[k]))
            any = true;
    if (!any)
        return;
    json_array_foreach(arr, i, e) {
        bool mine = false;
        for (k = 0; k < ntouched; k++)
            if (touched[k] == e)
                mine = true;
        if (!mine && is_primary(e))
            json_object_set_new(e, "primary", json_false());
    }
}

/* Merges the members of object src into object dst. */
static void merge_into(json_t *dst, const json_t *src)
{
    const char *k;
    json_t *v;

    json_object_foreach((json_t *)src, k, v)
        json_object_set(dst, k, v);
}

/* add (replace = false) or replace of attribute a with normalized value nv in dst. */
static void put_attr(json_t *dst, const struct scim_attr *a, const json_t *nv, bool replace)
{
    json_t *cur = json_object_get(dst, a->name), *e, **touched;
    size_t i, n = 0;

    if (!a->multi_valued) {
        if (a->type == SCIM_TYPE_COMPLEX && json_is_object(cur) && json_is_object(nv))
            merge_into(cur, nv);
        else
            json_object_set_new(dst, a->name, json_deep_copy(nv));
        return;
    }
    if (replace || !json_is_array(cur)) {
        cur = json_array();
        json_object_set_new(dst, a->name, cur);
    }
    touched = xcalloc(json_array_size(nv) + 1, sizeof(*touched));
    json_array_foreach(nv, i, e) {
        json_t *have = NULL, *x;
        size_t k;
        json_array_foreach(cur, k, x)
            if (same_element(a, x, e))
                have = x;
        if (have) {
            if (is_members(a) && json_is_object(have) && json_is_object(e))
                merge_into(have, e);
            touched[n++] = have;
            continue;
        }
        x = json_deep_copy(e);
        json_array_append_new(cur, x);
        touched[n++] = x;
    }
    fix_primary(cur, touched, n);
    free(touched);
}

/* Applies a no-path (or extension-object) value: each attribute of obj as
 * its own add / replace into the attributes of schema s. */
static void put_object(const struct scim_resource_type *rt, json_t *res, const struct scim_schema *s,
                       const json_t *obj, bool replace)
{
    const char *key;
    json_t *v;

    json_object_foreach((json_t *)obj, key, v) {
        const struct scim_schema *owner = s;
        const struct scim_attr *a;
        json_t *dst;

        if (s == rt->core) {
            const struct scim_schema *ext = scim_rt_schema(rt, str_from_cstr(key));
            if (ext && scim_schema_is_extension(rt, ext)) {
                put_object(rt, res, ext, v, replace);
                continue;
            }
            a = scim_rt_attr(rt, STR_NULL, str_from_cstr(key), &owner);
        } else {
            a = scim_attr_find(s->attrs, s->nattrs, str_from_cstr(key));
        }
        if (!a)
            continue;                      /* cannot happen: the value was normalized */
        dst = container(rt, res, owner, true);
        put_attr(dst, a, v, replace);
    }
}

/* The elements (or the single object) of attribute a in dst matched by f;
 * returns how many, and fills out[] (capacity cap) with them. */
static size_t matches(json_t *dst, const struct scim_attr *a, const struct scim_filter *f, json_t **out,
                      size_t cap)
{
    json_t *cur = dst ? json_object_get(dst, a->name) : NULL, *e;
    size_t i, n = 0;

    if (!a->multi_valued) {
        if (json_is_object(cur) && scim_filter_match(f, cur) && cap > 0)
            out[n++] = cur;
        return n;
    }
    if (!json_is_array(cur))
        return 0;
    json_array_foreach(cur, i, e)
        if (json_is_object(e) && (!f || scim_filter_match(f, e)) && n < cap)
            out[n++] = e;
    return n;
}

/* Fills elem with the element described by filter f when f is an "eq" or
 * an "and" of "eq"s on sub-attributes; false otherwise. */
static bool eq_terms(const struct scim_filter *f, int idx, json_t *elem)
{
    const struct scim_filter_node *nd = &f->nodes[idx];
    const struct scim_value *v = &nd->value;
    json_t *jv;

    if (nd->op == SCIM_FOP_AND)
        return eq_terms(f, nd->left, elem) && eq_terms(f, nd->right, elem);
    if (nd->op != SCIM_FOP_EQ || !nd->ref.sub)
        return false;
    switch (v->kind) {
    case SCIM_VAL_STR: jv = json_stringn(v->s, v->len); break;
    case SCIM_VAL_BOOL: jv = json_boolean(v->b); break;
    case SCIM_VAL_INT: jv = json_integer(v->i); break;
    case SCIM_VAL_DEC: jv = json_real(v->d); break;
    default: return false;
    }
    if (!jv)
        return false;
    json_object_set_new(elem, nd->ref.sub->name, jv);
    return true;
}

static int apply_remove(const struct scim_resource_type *rt, const struct scim_patch_op *o, json_t *res,
                        struct scim_err *err)
{
    const struct scim_path *p = &o->path;
    json_t *dst, *cur, *e;
    size_t i;

    if (!p->attr) {
        json_object_del(res, p->schema->id);
        return 0;
    }
    dst = container(rt, res, p->schema, false);
    if (!dst)
        return p->filter ? scim_fail(err, SCIM_NO_TARGET, "no %s value matches the filter", p->attr->name) : 0;
    cur = json_object_get(dst, p->attr->name);
    if (!p->filter) {
        if (!p->sub) {
            if (o->value && json_is_array(cur)) {           /* remove the given elements */
                json_t *keep = json_array(), *g;
                json_array_foreach(cur, i, e) {
                    bool hit = false;
                    size_t k;
                    json_array_foreach(o->value, k, g)
                        if (remove_matches(e, g))
                            hit = true;
                    if (!hit)
                        json_array_append(keep, e);
                }
                json_object_set_new(dst, p->attr->name, keep);
            } else {
                json_object_del(dst, p->attr->name);
            }
            return 0;
        }
        if (json_is_object(cur))
            json_object_del(cur, p->sub->name);
        else if (json_is_array(cur))
            json_array_foreach(cur, i, e)
                if (json_is_object(e))
                    json_object_del(e, p->sub->name);
        return 0;
    }
    if (!p->attr->multi_valued) {
        if (!json_is_object(cur) || !scim_filter_match(p->filter, cur))
            return scim_fail(err, SCIM_NO_TARGET, "no %s value matches the filter", p->attr->name);
        if (p->sub)
            json_object_del(cur, p->sub->name);
        else
            json_object_del(dst, p->attr->name);
        return 0;
    }
    {
        json_t *keep = json_array();
        size_t hits = 0;
        if (json_is_array(cur))
            json_array_foreach(cur, i, e) {
                if (json_is_object(e) && scim_filter_match(p->filter, e)) {
                    hits++;
                    if (!p->sub)
                        continue;
                    json_object_del(e, p->sub->name);
                }
                json_array_append(keep, e);
            }
        if (hits == 0) {
            json_decref(keep);
            return scim_fail(err, SCIM_NO_TARGET, "no %s value matches the filter", p->attr->name);
        }
        json_object_set_new(dst, p->attr->name, keep);
    }
    return 0;
}

static int apply_put(const struct scim_resource_type *rt, const struct scim_patch_op *o, json_t *res,
                     struct scim_err *err)
{
    const struct scim_path *p = &o->path;
    bool replace = o->op == SCIM_PATCH_REPLACE;
    json_t *dst, *cur, *e, **hit;
    size_t n, cap, i;
    int rc = 0;

    if (!o->value) {                       /* assigning "unassigned" */
        if (!replace || !o->has_path)
            return 0;
        return apply_remove(rt, o, res, err);
    }
    if (!o->has_path) {
        put_object(rt, res, rt->core, o->value, replace);
        return 0;
    }
    if (!p->attr) {
        put_object(rt, res, p->schema, o->value, replace);
        return 0;
    }
    dst = container(rt, res, p->schema, true);
    cur = json_object_get(dst, p->attr->name);
    if (!p->filter && !p->sub) {
        put_attr(dst, p->attr, o->value, replace);
        return 0;
    }
    if (!p->filter) {                      /* attr.sub */
        if (!p->attr->multi_valued) {
            if (!json_is_object(cur)) {
                cur = json_object();
                json_object_set_new(dst, p->attr->name, cur);
            }
            json_object_set(cur, p->sub->name, o->value);
            return 0;
        }
        if (!json_is_array(cur) || json_array_size(cur) == 0)
            return scim_fail(err, SCIM_NO_TARGET, "%s has no values", p->attr->name);
        json_array_foreach(cur, i, e)
            if (json_is_object(e))
                json_object_set(e, p->sub->name, o->value);
        if (strcmp(p->sub->name, "primary") == 0 && json_is_true(o->value) && json_array_size(cur) > 1)
            return scim_fail(err, SCIM_INVALID_VALUE, "only one %s value may be primary", p->attr->name);
        return 0;
    }
    cap = p->attr->multi_valued && json_is_array(cur) ? json_array_size(cur) : 1;
    hit = xcalloc(cap + 1, sizeof(*hit));
    n = matches(dst, p->attr, p->filter, hit, cap);
    if (n == 0) {
        json_t *elem;
        if (!p->sub || replace || !p->attr->multi_valued) {
            rc = scim_fail(err, SCIM_NO_TARGET, "no %s value matches the filter", p->attr->name);
            goto out;
        }
        elem = json_object();
        if (!eq_terms(p->filter, p->filter->root, elem)) {
            json_decref(elem);
            rc = scim_fail(err, SCIM_NO_TARGET, "no %s value matches the filter", p->attr->name);
            goto out;
        }
        json_object_set(elem, p->sub->name, o->value);
        {
            json_t *norm;
            rc = scim_value_normalize(p->attr, p->attr->name, elem, SCIM_NORM_ELEMENT, &norm, err);
            json_decref(elem);
            if (rc < 0 || !norm)
                goto out;
            if (!json_is_array(cur)) {
                cur = json_array();
                json_object_set_new(dst, p->attr->name, cur);
            }
            json_array_append_new(cur, norm);
            hit[0] = norm;
            fix_primary(cur, hit, 1);
        }
        goto out;
    }
    for (i = 0; i < n; i++) {
        if (p->sub)
            json_object_set(hit[i], p->sub->name, o->value);
        else
            merge_into(hit[i], o->value);
    }
    if (p->attr->multi_valued)
        fix_primary(cur, hit, n);
out:
    free(hit);
    return rc;
}

/* Removes empty objects, empty elements and empty arrays under obj. */
static void tidy(json_t *obj)
{
    const char *key;
    json_t *v, *e;
    void *tmp;
    size_t i;

    json_object_foreach_safe(obj, tmp, key, v) {
        if (json_is_array(v)) {
            for (i = json_array_size(v); i > 0; i--) {
                e = json_array_get(v, i - 1);
                if (json_is_null(e) || (json_is_object(e) && json_object_size(e) == 0))
                    json_array_remove(v, i - 1);
            }
            if (json_array_size(v) == 0)
                json_object_del(obj, key);
        } else if (json_is_object(v)) {
            if (strncmp(key, "urn:", 4) == 0)
                tidy(v);
            if (json_object_size(v) == 0)
                json_object_del(obj, key);
        } else if (json_is_null(v)) {
            json_object_del(obj, key);
        }
    }
}

/* Multi-valued attributes may not outgrow their limits through PATCH. */
static int check_limits(const struct scim_resource_type *rt, const json_t *res, struct scim_err *err)
{
    const char *key;
    json_t *v;

    json_object_foreach((json_t *)res, key, v) {
        size_t max = strcmp(key, "members") == 0 ? SCIM_MEMBERS_MAX : SCIM_MULTI_MAX;
        if (json_is_array(v) && json_array_size(v) > max)
            return scim_fail(err, SCIM_INVALID_VALUE, "%s: more than %zu values", key, max);
        if (json_is_object(v) && strncmp(key, "urn:", 4) == 0 && check_limits(rt, v, err) < 0)
            return -EINVAL;
    }
    return 0;
}

int scim_patch_apply(const struct scim_patch *p, json_t *res, struct scim_err *err)
{
    size_t i;
    int rc;

    for (i = 0; i < p->nops; i++) {
        const struct scim_patch_op *o = &p->ops[i];
        rc = o->op == SCIM_PATCH_REMOVE ? apply_remove(p->rt, o, res, err) : apply_put(p->rt, o, res, err);
        if (rc < 0)
            return op_fail(err, i, rc);
        tidy(res);
    }
    return check_limits(p->rt, res, err);
}
