/*
 * fuzz_scim_patch — the SCIM PATCH engine (scim/patch.c) on arbitrary
 * operations, applied to a rich User (or Group) resource.
 *
 * Input: one flags byte, then PATH '\n' VALUE.
 *   flags & 3     op: 0 add, 1 replace, 2 remove, 3 the rest of the input
 *                 is a whole PatchOp body (raw JSON) instead
 *   flags & 4     Group instead of User
 *   flags & 8     no "path" member
 *   VALUE         parsed as JSON; when it is not JSON, used as a string
 * Invariants: a refused patch names a known scimType and says why; an
 * applied patch leaves an object whose id and meta are untouched (they are
 * readOnly), with no empty array or object left behind, that survives a
 * second application of the same patch (add/replace/remove are idempotent
 * here, except for noTarget after a remove).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "scim/patch.h"
#include "scim/resource.h"
#include "scim/schema_attrs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char USER[] =
    "{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:User\"],\"id\":\"u1\",\"userName\":\"bjensen\","
    "\"name\":{\"givenName\":\"B\",\"familyName\":\"J\"},\"active\":true,\"title\":\"t\","
    "\"emails\":[{\"value\":\"a@x.com\",\"type\":\"work\",\"primary\":true},{\"value\":\"b@y.org\",\"type\":\"home\"}],"
    "\"phoneNumbers\":[{\"value\":\"555\",\"type\":\"work\"}],"
    "\"addresses\":[{\"type\":\"work\",\"locality\":\"L\",\"primary\":false}],"
    "\"groups\":[{\"value\":\"g1\",\"display\":\"G\",\"type\":\"direct\"}],"
    "\"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User\":{\"employeeNumber\":\"7\","
    "\"manager\":{\"value\":\"m\"}},"
    "\"meta\":{\"resourceType\":\"User\",\"created\":\"2020-01-01T00:00:00Z\",\"version\":\"W/\\\"1\\\"\"}}";
static const char GROUP[] =
    "{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:Group\"],\"id\":\"g1\",\"displayName\":\"G\","
    "\"members\":[{\"value\":\"u1\",\"type\":\"User\",\"display\":\"B\"},{\"value\":\"g2\",\"type\":\"Group\"}],"
    "\"meta\":{\"resourceType\":\"Group\",\"version\":\"W/\\\"1\\\"\"}}";

static const char *const known_types[] = {
    "invalidSyntax", "invalidPath", "invalidFilter", "invalidValue", "mutability", "noTarget", NULL,
};

static void check_err(const struct scim_err *err)
{
    size_t i;

    if (!err->scim_type || !err->detail[0])
        abort();
    for (i = 0; known_types[i]; i++)
        if (strcmp(err->scim_type, known_types[i]) == 0)
            return;
    abort();
}

/* No empty arrays or objects (and no nulls) at the top or in extensions. */
static void check_tidy(const json_t *o, int depth)
{
    const char *k;
    json_t *v;

    json_object_foreach((json_t *)o, k, v) {
        if (json_is_null(v) || (json_is_array(v) && json_array_size(v) == 0) ||
            (json_is_object(v) && json_object_size(v) == 0))
            abort();
        if (json_is_object(v) && depth == 0 && strncmp(k, "urn:", 4) == 0)
            check_tidy(v, 1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct scim_resource_type *rt;
    json_t *res = NULL, *body = NULL, *orig = NULL, *value = NULL, *op;
    struct scim_patch p;
    struct scim_err err;
    const char *nl, *rest;
    size_t rest_len;
    unsigned flags;
    static const char *const ops[] = { "add", "replace", "remove" };

    if (size < 1)
        return 0;
    flags = data[0];
    rest = (const char *)data + 1;
    rest_len = size - 1;
    rt = (flags & 4) ? &scim_rt_group : &scim_rt_user;
    res = json_loads(rt == &scim_rt_user ? USER : GROUP, 0, NULL);
    orig = json_deep_copy(res);
    if ((flags & 3) == 3) {
        body = json_loadb(rest, rest_len, JSON_DECODE_ANY, NULL);
        if (!body)
            goto out;
    } else {
        nl = memchr(rest, '\n', rest_len);
        size_t plen = nl ? (size_t)(nl - rest) : rest_len;
        const char *v = nl ? nl + 1 : "";
        size_t vlen = nl ? rest_len - plen - 1 : 0;
        op = json_pack("{s:s}", "op", ops[flags & 3]);
        if (!(flags & 8)) {
            json_t *path = json_stringn(rest, plen);
            if (!path) {                   /* not UTF-8 */
                json_decref(op);
                goto out;
            }
            json_object_set_new(op, "path", path);
        }
        if (vlen > 0) {
            value = json_loadb(v, vlen, JSON_DECODE_ANY, NULL);
            if (!value)
                value = json_stringn(v, vlen);
            if (value)
                json_object_set_new(op, "value", value);
        }
        body = json_pack("{s:[s], s:[o]}", "schemas", "urn:ietf:params:scim:api:messages:2.0:PatchOp",
                         "Operations", op);
    }
    memset(&err, 0, sizeof(err));
    if (scim_patch_parse(rt, body, &p, &err) != 0) {
        check_err(&err);
        if (p.ops || p.nops)
            abort();
        goto out;
    }
    if (scim_patch_apply(&p, res, &err) != 0) {
        check_err(&err);
    } else {
        if (!json_is_object(res))
            abort();
        if (!json_equal(json_object_get(res, "id"), json_object_get(orig, "id")) ||
            !json_equal(json_object_get(res, "meta"), json_object_get(orig, "meta")))
            abort();
        check_tidy(res, 0);
        {
            json_t *again = json_deep_copy(res);
            char *s;
            if (scim_patch_apply(&p, again, &err) == 0) {
                check_tidy(again, 0);
                s = json_dumps(again, 0);
                if (!s)
                    abort();
                free(s);
            } else {
                check_err(&err);
            }
            json_decref(again);
        }
    }
    scim_patch_free(&p);
out:
    json_decref(body);
    json_decref(res);
    json_decref(orig);
    return 0;
}
