/*
 * schema_attrs — the SCIM attribute definitions Refuge serves (RFC 7643):
 * the User core schema (§4.1), the enterprise User extension (§4.3), the
 * Group schema (§4.2) and the common attributes every resource has (§3.1).
 *
 * Why this file exists: the filter parser, the PATCH path parser, the PATCH
 * engine and the /Schemas endpoint all need the same facts about an
 * attribute (type, multiValued, caseExact, sub-attributes, mutability...).
 * They live here once, as constant tables, and everything else points into
 * them: a resolved attribute is a `const struct scim_attr *`, never a name.
 *
 * Attribute names are matched ASCII-case-insensitively (RFC 7643 §2.1); the
 * spelling in these tables is the canonical one, used in stored JSON and in
 * responses.
 *
 * Deviations from RFC 7643 §8.7.1, on purpose: members.value (Group) and
 * groups.value (User) are caseExact here, because they hold resource ids and
 * `id` is caseExact (§3.1); comparing ids case-insensitively would defeat
 * the store's indexes for no benefit.
 */
#ifndef REFUGE_SCIM_SCHEMA_ATTRS_H
#define REFUGE_SCIM_SCHEMA_ATTRS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/str.h"

enum scim_type {
    SCIM_TYPE_STRING = 0,
    SCIM_TYPE_BOOLEAN,
    SCIM_TYPE_DECIMAL,
    SCIM_TYPE_INTEGER,
    SCIM_TYPE_DATETIME,
    SCIM_TYPE_BINARY,
    SCIM_TYPE_REFERENCE,
    SCIM_TYPE_COMPLEX,
};

enum scim_mutability {
    SCIM_MUT_READ_WRITE = 0,
    SCIM_MUT_READ_ONLY,
    SCIM_MUT_IMMUTABLE,
    SCIM_MUT_WRITE_ONLY,
};

enum scim_returned {
    SCIM_RET_DEFAULT = 0,
    SCIM_RET_ALWAYS,
    SCIM_RET_NEVER,
    SCIM_RET_REQUEST,
};

enum scim_uniqueness {
    SCIM_UNIQ_NONE = 0,
    SCIM_UNIQ_SERVER,
    SCIM_UNIQ_GLOBAL,
};

struct scim_attr {
    const char *name;                 /* canonical spelling */
    enum scim_type type;
    bool multi_valued;
    bool case_exact;
    bool required;
    enum scim_mutability mutability;
    enum scim_returned returned;
    enum scim_uniqueness uniqueness;
    const struct scim_attr *subs;     /* complex: its sub-attributes (all simple) */
    size_t nsubs;
};

struct scim_schema {
    const char *id;                   /* the schema URN */
    const char *name;                 /* "User", "EnterpriseUser", "Group" */
    const struct scim_attr *attrs;
    size_t nattrs;
};

/*
 * A resource type: its core schema, its extensions, and the common
 * attributes (id, externalId, meta, schemas) that belong to no schema but
 * may be addressed with or without the core schema URN.
 */
struct scim_resource_type {
    const char *name;                 /* "User", "Group" */
    const char *endpoint;             /* "/Users" */
    const struct scim_schema *core;
    const struct scim_schema *const *extensions;
    size_t nextensions;
};

extern const struct scim_schema scim_schema_common;          /* no URN of its own (id == "") */
extern const struct scim_schema scim_schema_user;            /* urn:ietf:params:scim:schemas:core:2.0:User */
extern const struct scim_schema scim_schema_enterprise_user; /* urn:...:extension:enterprise:2.0:User */
extern const struct scim_schema scim_schema_group;           /* urn:ietf:params:scim:schemas:core:2.0:Group */
extern const struct scim_resource_type scim_rt_user;
extern const struct scim_resource_type scim_rt_group;

#define SCIM_URN_USER "urn:ietf:params:scim:schemas:core:2.0:User"
#define SCIM_URN_ENTERPRISE_USER "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
#define SCIM_URN_GROUP "urn:ietf:params:scim:schemas:core:2.0:Group"

/* The attribute (or sub-attribute) named `name` in attrs[0..n), compared
 * ASCII-case-insensitively, or NULL. */
const struct scim_attr *scim_attr_find(const struct scim_attr *attrs, size_t n, struct str name);
/* The sub-attribute `name` of a complex attribute, or NULL. */
const struct scim_attr *scim_attr_sub(const struct scim_attr *complex, struct str name);

/* The schema of rt whose URN equals `urn` (case-insensitive): the core
 * schema or one of the extensions. NULL when rt has no such schema. */
const struct scim_schema *scim_rt_schema(const struct scim_resource_type *rt, struct str urn);
/*
 * Resolves a top-level attribute name of rt. With an empty urn the name is
 * looked up among the common attributes and then the core schema (extension
 * attributes must be URN-qualified, RFC 7644 §3.10); with the core URN, the
 * same; with an extension URN, in that extension only. On success *schema is
 * the schema the attribute belongs to (scim_schema_common for id, meta ...).
 * NULL when not found (including an unknown URN).
 */
const struct scim_attr *scim_rt_attr(const struct scim_resource_type *rt, struct str urn,
                                     struct str name, const struct scim_schema **schema);

/* Whether schema is an extension of its resource type, i.e. its attributes
 * live in the resource JSON under a member named by the schema URN. */
bool scim_schema_is_extension(const struct scim_resource_type *rt, const struct scim_schema *schema);

const char *scim_type_name(enum scim_type t);   /* "string", "dateTime", ... (RFC 7643 §2.3) */

#endif
