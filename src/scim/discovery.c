/*
 * discovery — the documents that describe what this SCIM service supports
 * (RFC 7644 §4, RFC 7643 §5-§7): ServiceProviderConfig, Schemas and
 * ResourceTypes. They are generated from the same attribute tables
 * (schema_attrs.c) that the parser, the PATCH engine and the renderer use,
 * so they cannot drift from the behaviour; the ServiceProviderConfig
 * numbers are the constants the handlers enforce.
 *
 * They need no token (they describe the API, not its data), but the tenant
 * must exist. As RFC 7644 §4 asks, a filter on them answers 403.
 */
#include <stdlib.h>
#include <string.h>

#include "core/xmalloc.h"
#include "scim/scim_internal.h"

static const char *mutability_name(enum scim_mutability m)
{
    switch (m) {
    case SCIM_MUT_READ_WRITE: return "readWrite";
    case SCIM_MUT_READ_ONLY: return "readOnly";
    case SCIM_MUT_IMMUTABLE: return "immutable";
    case SCIM_MUT_WRITE_ONLY: return "writeOnly";
    }
    return "readWrite";
}

static const char *returned_name(enum scim_returned r)
{
    switch (r) {
    case SCIM_RET_DEFAULT: return "default";
    case SCIM_RET_ALWAYS: return "always";
    case SCIM_RET_NEVER: return "never";
    case SCIM_RET_REQUEST: return "request";
    }
    return "default";
}

static const char *uniqueness_name(enum scim_uniqueness u)
{
    switch (u) {
    case SCIM_UNIQ_NONE: return "none";
    case SCIM_UNIQ_SERVER: return "server";
    case SCIM_UNIQ_GLOBAL: return "global";
    }
    return "none";
}

/* referenceTypes of a reference attribute (RFC 7643 §7). */
static json_t *reference_types(const struct scim_attr *parent, const struct scim_attr *a)
{
    const char *p = parent ? parent->name : "";

    if (strcmp(p, "members") == 0)
        return json_pack("[s, s]", "User", "Group");
    if (strcmp(p, "groups") == 0)
        return json_pack("[s]", "Group");
    if (strcmp(p, "manager") == 0)
        return json_pack("[s]", "User");
    if (strcmp(a->name, "schemas") == 0)
        return json_pack("[s]", "uri");
    return json_pack("[s]", "external");
}

static json_t *attr_json(const struct scim_attr *parent, const struct scim_attr *a)
{
    json_t *j = json_pack("{s:s, s:s, s:b, s:b, s:b, s:s, s:s, s:s}", "name", a->name, "type",
                          scim_type_name(a->type), "multiValued", a->multi_valued, "required", a->required,
                          "caseExact", a->case_exact, "mutability", mutability_name(a->mutability), "returned",
                          returned_name(a->returned), "uniqueness", uniqueness_name(a->uniqueness));
    size_t i;

    if (a->type == SCIM_TYPE_REFERENCE)
        json_object_set_new(j, "referenceTypes", reference_types(parent, a));
    if (strcmp(a->name, "type") == 0 && parent && strcmp(parent->name, "members") == 0)
        json_object_set_new(j, "canonicalValues", json_pack("[s, s]", "User", "Group"));
    if (a->type == SCIM_TYPE_COMPLEX) {
        json_t *subs = json_array();
        for (i = 0; i < a->nsubs; i++)
            json_array_append_new(subs, attr_json(a, &a->subs[i]));
        json_object_set_new(j, "subAttributes", subs);
    }
    return j;
}

static json_t *schema_json(const struct scim_schema *s, const char *base)
{
    json_t *attrs = json_array();
    char *loc = NULL;
    size_t i;
    json_t *j;

    for (i = 0; i < s->nattrs; i++)
        json_array_append_new(attrs, attr_json(NULL, &s->attrs[i]));
    j = json_pack("{s:[s], s:s, s:s, s:o}", "schemas", SCIM_URN_SCHEMA, "id", s->id, "name", s->name, "attributes",
                  attrs);
    if (base) {
        loc = xasprintf("%s/Schemas/%s", base, s->id);
        json_object_set_new(j, "meta", json_pack("{s:s, s:s}", "resourceType", "Schema", "location", loc));
        free(loc);
    }
    return j;
}

static json_t *resource_type_json(const struct scim_resource_type *rt, const char *base)
{
    json_t *exts = json_array(), *j;
    char *loc;
    size_t i;

    for (i = 0; i < rt->nextensions; i++)
        json_array_append_new(exts, json_pack("{s:s, s:b}", "schema", rt->extensions[i]->id, "required", 0));
    j = json_pack("{s:[s], s:s, s:s, s:s, s:s, s:s}", "schemas", SCIM_URN_RESOURCE_TYPE, "id", rt->name, "name",
                  rt->name, "endpoint", rt->endpoint, "description",
                  rt == &scim_rt_user ? "User Account" : "Group", "schema", rt->core->id);
    if (json_array_size(exts) > 0)
        json_object_set_new(j, "schemaExtensions", exts);
    else
        json_decref(exts);
    loc = xasprintf("%s/ResourceTypes/%s", base, rt->name);
    json_object_set_new(j, "meta", json_pack("{s:s, s:s}", "resourceType", "ResourceType", "location", loc));
    free(loc);
    return j;
}

static json_t *list_of(json_t *resources)
{
    return json_pack("{s:[s], s:I, s:I, s:I, s:o}", "schemas", SCIM_URN_LIST, "totalResults",
                     (json_int_t)json_array_size(resources), "itemsPerPage", (json_int_t)json_array_size(resources),
                     "startIndex", (json_int_t)1, "Resources", resources);
}

/* 0, or -1 after answering (no tenant; a filter). */
static int prologue(struct http_request *req, struct scim_ctx *c)
{
    if (scim_begin(req->route_data, req, SCIM_PUBLIC, c) < 0)
        return -1;
    if (http_query(req, "filter")) {
        scim_respond_error(req, 403, NULL, "filtering is not supported on this endpoint");
        return -1;
    }
    return 0;
}

static enum http_result h_spc(struct http_request *req)
{
    struct scim_ctx c;
    char *loc;
    json_t *j;

    if (prologue(req, &c) < 0)
        return HTTP_DONE;
    loc = xasprintf("%s/ServiceProviderConfig", c.base);
    j = json_pack("{s:[s], s:{s:b}, s:{s:b, s:i, s:i}, s:{s:b, s:i}, s:{s:b}, s:{s:b}, s:{s:b},"
                  " s:[{s:s, s:s, s:s, s:s, s:b}], s:{s:s, s:s}}",
                  "schemas", SCIM_URN_SPC,
                  "patch", "supported", 1,
                  "bulk", "supported", 0, "maxOperations", 0, "maxPayloadSize", 0,
                  "filter", "supported", 1, "maxResults", SCIM_LIST_MAX,
                  "changePassword", "supported", 1,
                  "sort", "supported", 1,
                  "etag", "supported", 1,
                  "authenticationSchemes", "type", "oauthbearertoken", "name", "OAuth Bearer Token",
                  "description", "An OAuth 2.0 bearer token (RFC 6750) from this tenant's token endpoint: "
                                 "scope scim:read to read, scim:write to write; any user token for /Me",
                  "specUri", "https://www.rfc-editor.org/info/rfc6750", "primary", 1,
                  "meta", "resourceType", "ServiceProviderConfig", "location", loc);
    free(loc);
    scim_respond(req, 200, j);
    return HTTP_DONE;
}

static const struct scim_schema *const all_schemas[] = {
    &scim_schema_user, &scim_schema_enterprise_user, &scim_schema_group,
};
static const struct scim_resource_type *const all_types[] = { &scim_rt_user, &scim_rt_group };

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static enum http_result h_schemas(struct http_request *req)
{
    const char *id = http_path_param(req, "id");
    struct scim_ctx c;
    json_t *list;
    size_t i;

    if (prologue(req, &c) < 0)
        return HTTP_DONE;
    if (id) {
        for (i = 0; i < NELEM(all_schemas); i++)
            if (strcmp(all_schemas[i]->id, id) == 0) {
                scim_respond(req, 200, schema_json(all_schemas[i], c.base));
                return HTTP_DONE;
            }
        scim_respond_error(req, 404, NULL, arena_sprintf(&req->arena, "no schema %.100s", id));
        return HTTP_DONE;
    }
    list = json_array();
    for (i = 0; i < NELEM(all_schemas); i++)
        json_array_append_new(list, schema_json(all_schemas[i], c.base));
    scim_respond(req, 200, list_of(list));
    return HTTP_DONE;
}

static enum http_result h_types(struct http_request *req)
{
    const char *id = http_path_param(req, "id");
    struct scim_ctx c;
    json_t *list;
    size_t i;

    if (prologue(req, &c) < 0)
        return HTTP_DONE;
    if (id) {
        for (i = 0; i < NELEM(all_types); i++)
            if (strcmp(all_types[i]->name, id) == 0) {
                scim_respond(req, 200, resource_type_json(all_types[i], c.base));
                return HTTP_DONE;
            }
        scim_respond_error(req, 404, NULL, arena_sprintf(&req->arena, "no resource type %.100s", id));
        return HTTP_DONE;
    }
    list = json_array();
    for (i = 0; i < NELEM(all_types); i++)
        json_array_append_new(list, resource_type_json(all_types[i], c.base));
    scim_respond(req, 200, list_of(list));
    return HTTP_DONE;
}

size_t scim_discovery_routes(struct node *n, struct http_route *out, size_t max)
{
    const struct http_route routes[] = {
        { "GET", "/scim2/ServiceProviderConfig", h_spc, HTTP_ROUTE_TENANT, "scim_discovery", n },
        { "GET", "/scim2/Schemas", h_schemas, HTTP_ROUTE_TENANT, "scim_discovery", n },
        { "GET", "/scim2/Schemas/{id}", h_schemas, HTTP_ROUTE_TENANT, "scim_discovery", n },
        { "GET", "/scim2/ResourceTypes", h_types, HTTP_ROUTE_TENANT, "scim_discovery", n },
        { "GET", "/scim2/ResourceTypes/{id}", h_types, HTTP_ROUTE_TENANT, "scim_discovery", n },
    };
    size_t k = NELEM(routes);

    if (k > max)
        k = max;
    memcpy(out, routes, k * sizeof(routes[0]));
    return k;
}
