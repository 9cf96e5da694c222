/*
 * resource — normalizing SCIM input and rendering SCIM output. The rules
 * (what is dropped, what is refused, what is computed at render time) are
 * in resource.h; this file applies them with the attribute tables of
 * schema_attrs.c so that no attribute is special-cased by name here except
 * the two reference lists whose $ref is derived (members, groups).
 */
#include "scim/resource.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/xmalloc.h"
#include "scim/path.h"

int scim_fail(struct scim_err *err, const char *scim_type, const char *fmt, ...)
{
    va_list ap;

    if (err) {
        err->scim_type = scim_type;
        va_start(ap, fmt);
        vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

json_t *scim_json_get(const json_t *obj, const char *name)
{
    const char *key;
    json_t *v;

    if (!json_is_object(obj))
        return NULL;
    v = json_object_get(obj, name);
    if (v)
        return v;
    json_object_foreach((json_t *)obj, key, v)
        if (strcasecmp(key, name) == 0)
            return v;
    return NULL;
}

/* ---------------------------------------------------------------- input */

static int norm_simple(const struct scim_attr *a, const char *label, const json_t *v, json_t **out,
                       struct scim_err *err)
{
    int64_t ms;

    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    switch (a->type) {
    case SCIM_TYPE_STRING:
    case SCIM_TYPE_REFERENCE:
    case SCIM_TYPE_BINARY: {
        size_t len;
        if (!json_is_string(v))
            return scim_fail(err, SCIM_INVALID_VALUE, "%s: must be a string", label);
        len = json_string_length(v);
        if (len == 0)
            return 0;
        if (len > SCIM_STRING_MAX)
            return scim_fail(err, SCIM_INVALID_VALUE, "%s: longer than %d bytes", label, SCIM_STRING_MAX);
        if (memchr(json_string_value(v), '\0', len))
            return scim_fail(err, SCIM_INVALID_VALUE, "%s: contains U+0000", label);
        *out = json_incref((json_t *)v);
        return 0;
    }
    case SCIM_TYPE_BOOLEAN:
        if (json_is_boolean(v)) {
            *out = json_incref((json_t *)v);
            return 0;
        }
        if (json_is_string(v) && strcasecmp(json_string_value(v), "true") == 0) {
            *out = json_true();
            return 0;
        }
        if (json_is_string(v) && strcasecmp(json_string_value(v), "false") == 0) {
            *out = json_false();
            return 0;
        }
        return scim_fail(err, SCIM_INVALID_VALUE, "%s: must be a boolean", label);
    case SCIM_TYPE_DATETIME:
        if (!json_is_string(v) ||
            scim_datetime_parse((struct str){ json_string_value(v), json_string_length(v) }, &ms) < 0)
            return scim_fail(err, SCIM_INVALID_VALUE, "%s: must be an RFC 3339 date-time", label);
        *out = json_incref((json_t *)v);
        return 0;
    case SCIM_TYPE_INTEGER:
        if (!json_is_integer(v))
            return scim_fail(err, SCIM_INVALID_VALUE, "%s: must be an integer", label);
        *out = json_incref((json_t *)v);
        return 0;
    case SCIM_TYPE_DECIMAL:
        if (!json_is_number(v))
            return scim_fail(err, SCIM_INVALID_VALUE, "%s: must be a number", label);
        *out = json_incref((json_t *)v);
        return 0;
    case SCIM_TYPE_COMPLEX:
        break;
    }
    return scim_fail(err, SCIM_INVALID_VALUE, "%s: unexpected complex value", label);
}

/* One complex value (an object of sub-attributes). */
static int norm_complex(const struct scim_attr *a, const char *label, const json_t *v, json_t **out,
                        struct scim_err *err)
{
    const char *key;
    json_t *sv, *o;
    int rc = 0;

    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_object(v))
        return scim_fail(err, SCIM_INVALID_VALUE, "%s: must be an object", label);
    o = json_object();
    json_object_foreach((json_t *)v, key, sv) {
        const struct scim_attr *sub = scim_attr_find(a->subs, a->nsubs, str_from_cstr(key));
        char sublabel[160];
        json_t *nv;

        if (!sub) {
            rc = scim_fail(err, SCIM_INVALID_VALUE, "%s: unknown sub-attribute '%.64s'", label, key);
            goto out;
        }
        if (sub->mutability == SCIM_MUT_READ_ONLY)
            continue;                     /* computed by the server */
        if (json_object_get(o, sub->name)) {
            rc = scim_fail(err, SCIM_INVALID_VALUE, "%s: sub-attribute '%s' given twice", label, sub->name);
            goto out;
        }
        snprintf(sublabel, sizeof(sublabel), "%s.%s", label, sub->name);
        if ((rc = norm_simple(sub, sublabel, sv, &nv, err)) < 0)
            goto out;
        if (nv)
            json_object_set_new(o, sub->name, nv);
    }
    if (json_object_size(o) > 0) {
        *out = o;
        o = NULL;
    }
out:
    json_decref(o);
    return rc;
}

static int norm_single(const struct scim_attr *a, const char *label, const json_t *v, json_t **out,
                       struct scim_err *err)
{
    return a->type == SCIM_TYPE_COMPLEX ? norm_complex(a, label, v, out, err)
                                        : norm_simple(a, label, v, out, err);
}

int scim_value_normalize(const struct scim_attr *a, const char *label, const json_t *v, unsigned flags,
                         json_t **out, struct scim_err *err)
{
    size_t max = strcmp(a->name, "members") == 0 ? SCIM_MEMBERS_MAX : SCIM_MULTI_MAX;
    json_t *arr, *ev, *nv;
    size_t i;
    int rc;

    *out = NULL;
    if (!a->multi_valued || (flags & SCIM_NORM_ELEMENT))
        return norm_single(a, label, v, out, err);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_array(v)) {
        if (!(flags & SCIM_NORM_WRAP))
            return scim_fail(err, SCIM_INVALID_VALUE, "%s: must be an array", label);
        if ((rc = norm_single(a, label, v, &nv, err)) < 0 || !nv)
            return rc;
        arr = json_array();
        json_array_append_new(arr, nv);
        *out = arr;
        return 0;
    }
    if (json_array_size(v) > max)
        return scim_fail(err, SCIM_INVALID_VALUE, "%s: more than %zu values", label, max);
    arr = json_array();
    json_array_foreach(v, i, ev) {
        if ((rc = norm_single(a, label, ev, &nv, err)) < 0) {
            json_decref(arr);
            return rc;
        }
        if (nv)
            json_array_append_new(arr, nv);
    }
    if (json_array_size(arr) == 0) {
        json_decref(arr);
        return 0;
    }
    *out = arr;
    return 0;
}

/* Normalizes one member of a resource object into dst (the top object or
 * an extension object). */
static int norm_member(const struct scim_attr *a, const json_t *v, unsigned flags, json_t *dst,
                       struct scim_err *err)
{
    json_t *nv;
    int rc;

    if (a->mutability == SCIM_MUT_READ_ONLY) {
        if (flags & SCIM_NORM_PATCH)
            return scim_fail(err, SCIM_MUTABILITY, "%s is readOnly", a->name);
        return 0;
    }
    if (json_object_get(dst, a->name))
        return scim_fail(err, SCIM_INVALID_VALUE, "attribute '%s' given twice", a->name);
    if ((rc = scim_value_normalize(a, a->name, v, flags & SCIM_NORM_WRAP, &nv, err)) < 0)
        return rc;
    if (nv)
        json_object_set_new(dst, a->name, nv);
    return 0;
}

static int norm_extension(const struct scim_schema *ext, const json_t *v, unsigned flags, json_t *out,
                          struct scim_err *err)
{
    json_t *eo, *sv;
    const char *key;
    int rc = 0;

    if (json_is_null(v))
        return 0;
    if (!json_is_object(v))
        return scim_fail(err, SCIM_INVALID_VALUE, "%s: must be an object", ext->id);
    eo = json_object_get(out, ext->id);
    if (!eo) {
        eo = json_object();
        json_object_set_new(out, ext->id, eo);
    }
    json_object_foreach((json_t *)v, key, sv) {
        const struct scim_attr *a = scim_attr_find(ext->attrs, ext->nattrs, str_from_cstr(key));
        if (!a)
            return scim_fail(err, SCIM_INVALID_VALUE, "unknown attribute '%.64s' of %s", key, ext->name);
        if ((rc = norm_member(a, sv, flags, eo, err)) < 0)
            return rc;
    }
    if (json_object_size(eo) == 0)
        json_object_del(out, ext->id);
    return 0;
}

static int norm_members(const struct scim_resource_type *rt, const json_t *in, unsigned flags, bool nested,
                        json_t *out, struct scim_err *err)
{
    const char *key;
    json_t *v;
    int rc;

    json_object_foreach((json_t *)in, key, v) {
        struct str k = str_from_cstr(key);
        const struct scim_schema *s, *owner;
        const struct scim_attr *a;

        if (strcasecmp(key, "schemas") == 0)
            continue;
        s = scim_rt_schema(rt, k);
        if (s && scim_schema_is_extension(rt, s)) {
            if ((rc = norm_extension(s, v, flags, out, err)) < 0)
                return rc;
            continue;
        }
        if (s && !nested) {               /* core attributes grouped under the core URN */
            if (json_is_null(v))
                continue;
            if (!json_is_object(v))
                return scim_fail(err, SCIM_INVALID_VALUE, "%s: must be an object", s->id);
            if ((rc = norm_members(rt, v, flags, true, out, err)) < 0)
                return rc;
            continue;
        }
        a = scim_rt_attr(rt, STR_NULL, k, &owner);
        if (!a || (owner == &scim_schema_common && strcmp(a->name, "schemas") == 0))
            return scim_fail(err, SCIM_INVALID_VALUE, "unknown attribute '%.64s'", key);
        if ((rc = norm_member(a, v, flags, out, err)) < 0)
            return rc;
    }
    return 0;
}

int scim_resource_normalize(const struct scim_resource_type *rt, const json_t *in, unsigned flags,
                            json_t **out, struct scim_err *err)
{
    json_t *o = NULL, *schemas, *sv;
    size_t i, k;
    int rc = 0;

    *out = NULL;
    if (!json_is_object(in))
        return scim_fail(err, SCIM_INVALID_SYNTAX, "the body must be a JSON object");
    if (!(flags & SCIM_NORM_PATCH)) {
        bool core = false;
        schemas = scim_json_get(in, "schemas");
        if (!json_is_array(schemas) || json_array_size(schemas) == 0)
            return scim_fail(err, SCIM_INVALID_SYNTAX, "\"schemas\" must list %s", rt->core->id);
        json_array_foreach(schemas, i, sv) {
            const struct scim_schema *s;
            if (!json_is_string(sv))
                return scim_fail(err, SCIM_INVALID_SYNTAX, "\"schemas\" must be an array of strings");
            s = scim_rt_schema(rt, (struct str){ json_string_value(sv), json_string_length(sv) });
            if (!s)
                return scim_fail(err, SCIM_INVALID_VALUE, "schemas: unknown schema '%.100s' for a %s",
                                 json_string_value(sv), rt->name);
            if (s == rt->core)
                core = true;
        }
        if (!core)
            return scim_fail(err, SCIM_INVALID_SYNTAX, "\"schemas\" must list %s", rt->core->id);
    }
    o = json_object();
    if ((rc = norm_members(rt, in, flags, false, o, err)) < 0)
        goto out;
    if (!(flags & SCIM_NORM_PATCH)) {
        for (k = 0; k < rt->core->nattrs; k++) {
            const struct scim_attr *a = &rt->core->attrs[k];
            if (a->required && !json_object_get(o, a->name)) {
                rc = scim_fail(err, SCIM_INVALID_VALUE, "%s is required", a->name);
                goto out;
            }
        }
    }
    *out = o;
    o = NULL;
out:
    json_decref(o);
    return rc;
}

/* ----------------------------------------------------------- selection */

static int sel_add(const struct scim_resource_type *rt, struct str name, bool lenient,
                   struct scim_attr_sel *out, struct scim_err *err)
{
    struct scim_path p;
    struct scim_err perr;

    name = str_trim(name);
    if (name.len == 0)
        return 0;
    if (scim_path_parse(rt, name, &p, &perr) < 0) {
        if (lenient)
            return 0;
        return scim_fail(err, SCIM_INVALID_VALUE, "attribute list: %s", perr.detail);
    }
    if (p.filter) {
        scim_path_free(&p);
        return scim_fail(err, SCIM_INVALID_VALUE, "attribute list: filters are not allowed here");
    }
    if (out->n >= SCIM_SELECT_MAX) {
        scim_path_free(&p);
        return scim_fail(err, SCIM_INVALID_VALUE, "attribute list: more than %d names", SCIM_SELECT_MAX);
    }
    out->refs[out->n++] = scim_path_ref(&p);
    scim_path_free(&p);
    return 0;
}

int scim_attr_sel_parse(const struct scim_resource_type *rt, const char *attributes, const char *excluded,
                        bool lenient, struct scim_attr_sel *out, struct scim_err *err)
{
    const char *list = attributes ? attributes : excluded;
    struct str rest, head, tail;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!list)
        return 0;
    out->exclude = attributes == NULL;
    if (strlen(list) > SCIM_PATH_MAX_LEN)
        return scim_fail(err, SCIM_INVALID_VALUE, "attribute list longer than %d bytes", SCIM_PATH_MAX_LEN);
    rest = str_from_cstr(list);
    for (;;) {
        bool more = str_split(rest, ',', &head, &tail);
        if ((rc = sel_add(rt, head, lenient, out, err)) < 0)
            return rc;
        if (!more)
            break;
        rest = tail;
    }
    return 0;
}

int scim_attr_sel_parse_json(const struct scim_resource_type *rt, const json_t *attributes,
                             const json_t *excluded, bool lenient, struct scim_attr_sel *out,
                             struct scim_err *err)
{
    const json_t *list = attributes ? attributes : excluded;
    json_t *v;
    size_t i;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!list)
        return 0;
    out->exclude = attributes == NULL;
    if (json_is_string(list))
        return scim_attr_sel_parse(rt, attributes ? json_string_value(list) : NULL,
                                   attributes ? NULL : json_string_value(list), lenient, out, err);
    if (!json_is_array(list))
        return scim_fail(err, SCIM_INVALID_VALUE, "attribute list: must be an array of strings");
    json_array_foreach(list, i, v) {
        if (!json_is_string(v))
            return scim_fail(err, SCIM_INVALID_VALUE, "attribute list: must be an array of strings");
        if ((rc = sel_add(rt, (struct str){ json_string_value(v), json_string_length(v) }, lenient, out,
                          err)) < 0)
            return rc;
    }
    return 0;
}

enum keep { KEEP_NONE = 0, KEEP_SOME, KEEP_ALL };

/* Whether to render attribute a of schema s (sub-attributes decided by keep_sub). */
static enum keep keep_attr(const struct scim_attr_sel *sel, const struct scim_schema *s,
                           const struct scim_attr *a)
{
    bool some = false;
    size_t i;

    if (a->returned == SCIM_RET_NEVER)
        return KEEP_NONE;
    if (a->returned == SCIM_RET_ALWAYS)
        return KEEP_ALL;
    if (!sel || sel->n == 0)
        return a->returned == SCIM_RET_REQUEST ? KEEP_NONE : KEEP_ALL;
    for (i = 0; i < sel->n; i++) {
        const struct scim_attr_ref *r = &sel->refs[i];
        if (!r->attr && r->schema == s)  /* a whole extension */
            return sel->exclude ? KEEP_NONE : KEEP_ALL;
        if (r->attr != a)
            continue;
        if (!r->sub)
            return sel->exclude ? KEEP_NONE : KEEP_ALL;
        some = true;
    }
    if (sel->exclude)
        return some ? KEEP_SOME : (a->returned == SCIM_RET_REQUEST ? KEEP_NONE : KEEP_ALL);
    return some ? KEEP_SOME : KEEP_NONE;
}

static bool keep_sub(const struct scim_attr_sel *sel, const struct scim_attr *a, const struct scim_attr *sub)
{
    size_t i;

    if (sub->returned == SCIM_RET_NEVER)
        return false;
    for (i = 0; i < sel->n; i++)
        if (sel->refs[i].attr == a && sel->refs[i].sub == sub)
            return !sel->exclude;
    return sel->exclude;
}

/* A copy of one complex value with only the selected sub-attributes (in table order). */
static json_t *pick_subs(const struct scim_attr_sel *sel, const struct scim_attr *a, const json_t *v,
                         enum keep k)
{
    json_t *o = json_object(), *sv;
    size_t i;

    for (i = 0; i < a->nsubs; i++) {
        const struct scim_attr *sub = &a->subs[i];
        sv = json_object_get(v, sub->name);
        if (!sv || (k == KEEP_SOME && !keep_sub(sel, a, sub)) || sub->returned == SCIM_RET_NEVER)
            continue;
        json_object_set(o, sub->name, sv);
    }
    return o;
}

/* Adds $ref to the elements of members (Group) and groups (User). */
static void add_ref(json_t *elem, const struct scim_attr *a, const char *base)
{
    const char *value = json_string_value(json_object_get(elem, "value"));
    const char *type = json_string_value(json_object_get(elem, "type"));
    const char *ep;
    char *ref;

    if (!value || !base || scim_attr_sub(a, STR_LIT("$ref")) == NULL)
        return;
    if (strcmp(a->name, "members") == 0)
        ep = type && strcmp(type, "Group") == 0 ? "Groups" : "Users";
    else if (strcmp(a->name, "groups") == 0)
        ep = "Groups";
    else
        return;
    ref = xasprintf("%s/%s/%s", base, ep, value);
    json_object_set_new(elem, "$ref", json_string(ref));
    free(ref);
}

static json_t *render_value(const struct scim_attr_sel *sel, const struct scim_attr *a, const json_t *v,
                            enum keep k, const char *base)
{
    bool refs = strcmp(a->name, "members") == 0 || strcmp(a->name, "groups") == 0;
    json_t *out, *ev, *ne;
    size_t i;

    if (a->type != SCIM_TYPE_COMPLEX)
        return json_incref((json_t *)v);
    if (!a->multi_valued) {
        if (!json_is_object(v))
            return NULL;
        out = pick_subs(sel, a, v, k);
        if (json_object_size(out) == 0) {
            json_decref(out);
            return NULL;
        }
        return out;
    }
    if (!json_is_array(v))
        return NULL;
    out = json_array();
    json_array_foreach(v, i, ev) {
        if (!json_is_object(ev))
            continue;
        if (refs) {
            json_t *tmp = json_copy(ev);
            add_ref(tmp, a, base);
            ne = pick_subs(sel, a, tmp, k);
            json_decref(tmp);
        } else {
            ne = pick_subs(sel, a, ev, k);
        }
        if (json_object_size(ne) > 0)
            json_array_append_new(out, ne);
        else
            json_decref(ne);
    }
    if (json_array_size(out) == 0) {
        json_decref(out);
        return NULL;
    }
    return out;
}

static void render_attrs(const struct scim_attr_sel *sel, const struct scim_schema *s, const json_t *src,
                         json_t *dst, const char *base)
{
    size_t i;

    for (i = 0; i < s->nattrs; i++) {
        const struct scim_attr *a = &s->attrs[i];
        json_t *v = json_object_get(src, a->name), *nv;
        enum keep k;

        if (!v || strcmp(a->name, "schemas") == 0 || strcmp(a->name, "meta") == 0)
            continue;
        k = keep_attr(sel, s, a);
        if (k == KEEP_NONE)
            continue;
        nv = render_value(sel, a, v, k, base);
        if (nv)
            json_object_set_new(dst, a->name, nv);
    }
}

json_t *scim_render(const struct scim_resource_type *rt, const json_t *data, const char *base,
                    const struct scim_attr_sel *sel)
{
    static const struct scim_attr_sel none;
    const struct scim_attr *meta_attr = NULL;
    json_t *out = json_object(), *schemas = json_array(), *v;
    size_t i;

    if (!sel)
        sel = &none;
    json_array_append_new(schemas, json_string(rt->core->id));
    for (i = 0; i < rt->nextensions; i++)
        if (json_is_object(json_object_get(data, rt->extensions[i]->id)))
            json_array_append_new(schemas, json_string(rt->extensions[i]->id));
    json_object_set_new(out, "schemas", schemas);
    render_attrs(sel, &scim_schema_common, data, out, base);
    render_attrs(sel, rt->core, data, out, base);
    for (i = 0; i < rt->nextensions; i++) {
        const struct scim_schema *ext = rt->extensions[i];
        json_t *src = json_object_get(data, ext->id), *eo;
        if (!json_is_object(src))
            continue;
        eo = json_object();
        render_attrs(sel, ext, src, eo, base);
        if (json_object_size(eo) > 0)
            json_object_set_new(out, ext->id, eo);
        else
            json_decref(eo);
    }
    for (i = 0; i < scim_schema_common.nattrs; i++)
        if (strcmp(scim_schema_common.attrs[i].name, "meta") == 0)
            meta_attr = &scim_schema_common.attrs[i];
    v = json_object_get(data, "meta");
    if (meta_attr && json_is_object(v)) {
        enum keep k = keep_attr(sel, &scim_schema_common, meta_attr);
        if (k != KEEP_NONE) {
            json_t *full = json_copy(v), *m;
            const char *id = json_string_value(json_object_get(data, "id"));
            if (base && id) {
                char *loc = xasprintf("%s%s/%s", base, rt->endpoint, id);
                json_object_set_new(full, "location", json_string(loc));
                free(loc);
            }
            m = pick_subs(sel, meta_attr, full, k);
            json_decref(full);
            if (json_object_size(m) > 0)
                json_object_set_new(out, "meta", m);
            else
                json_decref(m);
        }
    }
    return out;
}

json_t *scim_error_json(int status, const char *scim_type, const char *detail)
{
    char st[16];
    json_t *j;

    snprintf(st, sizeof(st), "%d", status);
    j = json_pack("{s:[s],s:s}", "schemas", SCIM_URN_ERROR, "status", st);
    if (scim_type)
        json_object_set_new(j, "scimType", json_string(scim_type));
    if (detail && *detail) {
        json_t *d = json_string(detail);
        if (!d) {                         /* an excerpt cut inside a UTF-8 sequence */
            char *copy = xstrdup(detail);
            for (char *c = copy; *c; c++)
                if ((unsigned char)*c >= 0x80)
                    *c = '?';
            d = json_string(copy);
            free(copy);
        }
        json_object_set_new(j, "detail", d);
    }
    return j;
}
