/*
 * schema_attrs — constant attribute tables for the schemas Refuge serves,
 * transcribed from RFC 7643 §3.1 (common), §4.1 (User), §4.2 (Group),
 * §4.3 (enterprise User) and the schema representations of §8.7.1.
 * See schema_attrs.h for the two deliberate deviations.
 */
#include "scim/schema_attrs.h"

#include <string.h>

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* A simple attribute: name, type, caseExact, mutability. */
#define ATTR(n, t, ce, mut) { .name = (n), .type = (t), .case_exact = (ce), .mutability = (mut) }
#define STRING(n) ATTR(n, SCIM_TYPE_STRING, false, SCIM_MUT_READ_WRITE)
#define BOOLEAN(n) ATTR(n, SCIM_TYPE_BOOLEAN, false, SCIM_MUT_READ_WRITE)
#define REFERENCE(n) ATTR(n, SCIM_TYPE_REFERENCE, false, SCIM_MUT_READ_WRITE)
#define MULTI_COMPLEX(n, s) \
    { .name = (n), .type = SCIM_TYPE_COMPLEX, .multi_valued = true, .subs = (s), .nsubs = NELEM(s) }

/* ------------------------------------------------------ common attributes */

static const struct scim_attr meta_subs[] = {
    ATTR("resourceType", SCIM_TYPE_STRING, true, SCIM_MUT_READ_ONLY),
    ATTR("created", SCIM_TYPE_DATETIME, false, SCIM_MUT_READ_ONLY),
    ATTR("lastModified", SCIM_TYPE_DATETIME, false, SCIM_MUT_READ_ONLY),
    ATTR("location", SCIM_TYPE_REFERENCE, true, SCIM_MUT_READ_ONLY),
    ATTR("version", SCIM_TYPE_STRING, true, SCIM_MUT_READ_ONLY),
};

static const struct scim_attr common_attrs[] = {
    { .name = "id", .type = SCIM_TYPE_STRING, .case_exact = true, .mutability = SCIM_MUT_READ_ONLY,
      .returned = SCIM_RET_ALWAYS, .uniqueness = SCIM_UNIQ_SERVER },
    { .name = "externalId", .type = SCIM_TYPE_STRING, .case_exact = true },
    { .name = "meta", .type = SCIM_TYPE_COMPLEX, .mutability = SCIM_MUT_READ_ONLY,
      .subs = meta_subs, .nsubs = NELEM(meta_subs) },
    { .name = "schemas", .type = SCIM_TYPE_REFERENCE, .multi_valued = true, .required = true,
      .returned = SCIM_RET_ALWAYS },
};

const struct scim_schema scim_schema_common = {
    .id = "", .name = "Common", .attrs = common_attrs, .nattrs = NELEM(common_attrs),
};

/* ------------------------------------------------------------ User (core) */

static const struct scim_attr name_subs[] = {
    STRING("formatted"), STRING("familyName"), STRING("givenName"),
    STRING("middleName"), STRING("honorificPrefix"), STRING("honorificSuffix"),
};

/* emails, phoneNumbers, ims, entitlements, roles */
static const struct scim_attr plural_subs[] = {
    STRING("value"), STRING("display"), STRING("type"), BOOLEAN("primary"),
};

static const struct scim_attr photo_subs[] = {
    REFERENCE("value"), STRING("display"), STRING("type"), BOOLEAN("primary"),
};

static const struct scim_attr address_subs[] = {
    STRING("formatted"), STRING("streetAddress"), STRING("locality"), STRING("region"),
    STRING("postalCode"), STRING("country"), STRING("type"), BOOLEAN("primary"),
};

static const struct scim_attr user_group_subs[] = {
    ATTR("value", SCIM_TYPE_STRING, true, SCIM_MUT_READ_ONLY),
    ATTR("$ref", SCIM_TYPE_REFERENCE, false, SCIM_MUT_READ_ONLY),
    ATTR("display", SCIM_TYPE_STRING, false, SCIM_MUT_READ_ONLY),
    ATTR("type", SCIM_TYPE_STRING, false, SCIM_MUT_READ_ONLY),
};

static const struct scim_attr x509_subs[] = {
    ATTR("value", SCIM_TYPE_BINARY, true, SCIM_MUT_READ_WRITE),
    STRING("display"), STRING("type"), BOOLEAN("primary"),
};

static const struct scim_attr user_attrs[] = {
    { .name = "userName", .type = SCIM_TYPE_STRING, .required = true, .uniqueness = SCIM_UNIQ_SERVER },
    { .name = "name", .type = SCIM_TYPE_COMPLEX, .subs = name_subs, .nsubs = NELEM(name_subs) },
    STRING("displayName"),
    STRING("nickName"),
    REFERENCE("profileUrl"),
    STRING("title"),
    STRING("userType"),
    STRING("preferredLanguage"),
    STRING("locale"),
    STRING("timezone"),
    BOOLEAN("active"),
    { .name = "password", .type = SCIM_TYPE_STRING, .mutability = SCIM_MUT_WRITE_ONLY,
      .returned = SCIM_RET_NEVER },
    MULTI_COMPLEX("emails", plural_subs),
    MULTI_COMPLEX("phoneNumbers", plural_subs),
    MULTI_COMPLEX("ims", plural_subs),
    MULTI_COMPLEX("photos", photo_subs),
    MULTI_COMPLEX("addresses", address_subs),
    { .name = "groups", .type = SCIM_TYPE_COMPLEX, .multi_valued = true,
      .mutability = SCIM_MUT_READ_ONLY, .subs = user_group_subs, .nsubs = NELEM(user_group_subs) },
    MULTI_COMPLEX("entitlements", plural_subs),
    MULTI_COMPLEX("roles", plural_subs),
    MULTI_COMPLEX("x509Certificates", x509_subs),
};

const struct scim_schema scim_schema_user = {
    .id = SCIM_URN_USER, .name = "User", .attrs = user_attrs, .nattrs = NELEM(user_attrs),
};

/* ------------------------------------------------- enterprise User extension */

static const struct scim_attr manager_subs[] = {
    STRING("value"),
    REFERENCE("$ref"),
    ATTR("displayName", SCIM_TYPE_STRING, false, SCIM_MUT_READ_ONLY),
};

static const struct scim_attr enterprise_attrs[] = {
    STRING("employeeNumber"),
    STRING("costCenter"),
    STRING("organization"),
    STRING("division"),
    STRING("department"),
    { .name = "manager", .type = SCIM_TYPE_COMPLEX, .subs = manager_subs, .nsubs = NELEM(manager_subs) },
};

const struct scim_schema scim_schema_enterprise_user = {
    .id = SCIM_URN_ENTERPRISE_USER, .name = "EnterpriseUser",
    .attrs = enterprise_attrs, .nattrs = NELEM(enterprise_attrs),
};

/* ------------------------------------------------------------------ Group */

static const struct scim_attr member_subs[] = {
    ATTR("value", SCIM_TYPE_STRING, true, SCIM_MUT_IMMUTABLE),
    ATTR("$ref", SCIM_TYPE_REFERENCE, false, SCIM_MUT_IMMUTABLE),
    ATTR("type", SCIM_TYPE_STRING, false, SCIM_MUT_IMMUTABLE),
    ATTR("display", SCIM_TYPE_STRING, false, SCIM_MUT_READ_ONLY),
};

static const struct scim_attr group_attrs[] = {
    { .name = "displayName", .type = SCIM_TYPE_STRING, .required = true },
    MULTI_COMPLEX("members", member_subs),
};

const struct scim_schema scim_schema_group = {
    .id = SCIM_URN_GROUP, .name = "Group", .attrs = group_attrs, .nattrs = NELEM(group_attrs),
};

/* --------------------------------------------------------- resource types */

static const struct scim_schema *const user_extensions[] = { &scim_schema_enterprise_user };

const struct scim_resource_type scim_rt_user = {
    .name = "User", .endpoint = "/Users", .core = &scim_schema_user,
    .extensions = user_extensions, .nextensions = NELEM(user_extensions),
};

const struct scim_resource_type scim_rt_group = {
    .name = "Group", .endpoint = "/Groups", .core = &scim_schema_group,
    .extensions = NULL, .nextensions = 0,
};

/* ----------------------------------------------------------------- lookup */

const struct scim_attr *scim_attr_find(const struct scim_attr *attrs, size_t n, struct str name)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (str_case_eq_cstr(name, attrs[i].name))
            return &attrs[i];
    return NULL;
}

const struct scim_attr *scim_attr_sub(const struct scim_attr *complex, struct str name)
{
    if (!complex || complex->type != SCIM_TYPE_COMPLEX)
        return NULL;
    return scim_attr_find(complex->subs, complex->nsubs, name);
}

const struct scim_schema *scim_rt_schema(const struct scim_resource_type *rt, struct str urn)
{
    size_t i;

    if (str_case_eq_cstr(urn, rt->core->id))
        return rt->core;
    for (i = 0; i < rt->nextensions; i++)
        if (str_case_eq_cstr(urn, rt->extensions[i]->id))
            return rt->extensions[i];
    return NULL;
}

const struct scim_attr *scim_rt_attr(const struct scim_resource_type *rt, struct str urn,
                                     struct str name, const struct scim_schema **schema)
{
    const struct scim_schema *s = rt->core;
    const struct scim_attr *a;

    if (urn.len > 0) {
        s = scim_rt_schema(rt, urn);
        if (!s)
            return NULL;
    }
    if (s == rt->core) {
        a = scim_attr_find(scim_schema_common.attrs, scim_schema_common.nattrs, name);
        if (a) {
            *schema = &scim_schema_common;
            return a;
        }
    }
    a = scim_attr_find(s->attrs, s->nattrs, name);
    if (a)
        *schema = s;
    return a;
}

bool scim_schema_is_extension(const struct scim_resource_type *rt, const struct scim_schema *schema)
{
    size_t i;

    for (i = 0; i < rt->nextensions; i++)
        if (rt->extensions[i] == schema)
            return true;
    return false;
}

const char *scim_type_name(enum scim_type t)
{
    switch (t) {
    case SCIM_TYPE_STRING: return "string";
    case SCIM_TYPE_BOOLEAN: return "boolean";
    case SCIM_TYPE_DECIMAL: return "decimal";
    case SCIM_TYPE_INTEGER: return "integer";
    case SCIM_TYPE_DATETIME: return "dateTime";
    case SCIM_TYPE_BINARY: return "binary";
    case SCIM_TYPE_REFERENCE: return "reference";
    case SCIM_TYPE_COMPLEX: return "complex";
    }
    return "unknown";
}
