/*
 * fuzz_scim_path — arbitrary bytes as a PATCH path (User, or Group when the
 * first byte is '#'). A path that parses must be coherent: its attribute
 * belongs to its schema, its sub-attribute to its attribute, a filter only
 * on a complex attribute and relative to it; the filter must evaluate on an
 * element without trouble. A failure must carry invalidPath or
 * invalidFilter and a detail.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "core/str.h"
#include "scim/filter.h"
#include "scim/path.h"
#include "scim/schema_attrs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static json_t *element;

static bool belongs(const struct scim_attr *a, const struct scim_attr *list, size_t n)
{
    return a >= list && a < list + n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bool is_group = size > 0 && data[0] == '#';
    const struct scim_resource_type *rt = is_group ? &scim_rt_group : &scim_rt_user;
    struct str text = { (const char *)data + is_group, size - is_group };
    struct scim_path p;
    struct scim_err err;

    if (!element)
        element = json_loads("{\"value\": \"a@b.c\", \"type\": \"work\", \"primary\": true,"
                             " \"display\": \"x\", \"$ref\": \"https://x/Users/1\"}", 0, NULL);
    if (scim_path_parse(rt, text, &p, &err) != 0) {
        if (!err.scim_type || !err.detail[0] ||
            (strcmp(err.scim_type, "invalidPath") != 0 && strcmp(err.scim_type, "invalidFilter") != 0))
            abort();
        if (p.attr || p.sub || p.filter || p.schema)
            abort();
        return 0;
    }
    if (!p.schema)
        abort();
    if (!p.attr) {
        if (!scim_schema_is_extension(rt, p.schema) || p.sub || p.filter)
            abort();
    } else {
        if (!belongs(p.attr, p.schema->attrs, p.schema->nattrs))
            abort();
        if (p.sub && !belongs(p.sub, p.attr->subs, p.attr->nsubs))
            abort();
        if (p.filter) {
            if (p.attr->type != SCIM_TYPE_COMPLEX || p.filter->element.attr != p.attr)
                abort();
            (void)scim_filter_match(p.filter, element);
        }
    }
    scim_path_free(&p);
    return 0;
}
