/*
 * path — the "path" of a SCIM PATCH operation (RFC 7644 §3.5.2):
 *
 *   PATH      = attrPath / valuePath [subAttr]
 *   attrPath  = [URI ":"] ATTRNAME [subAttr]
 *   valuePath = attrPath "[" valFilter "]"
 *   subAttr   = "." ATTRNAME
 *
 * Examples (User):
 *   userName                       attr=userName
 *   name.familyName                attr=name, sub=familyName
 *   emails[type eq "work"].value   attr=emails, filter, sub=value
 *   members[value eq "2819c223"]   (Group) attr=members, filter
 *   urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value
 *                                  schema=enterprise, attr=manager, sub=value
 *   urn:ietf:params:scim:schemas:extension:enterprise:2.0:User
 *                                  schema=enterprise, attr=NULL (the whole
 *                                  extension object; widely sent by clients,
 *                                  accepted as an extension of the ABNF)
 *
 * The parser resolves every name against the resource type's schemas
 * (schema_attrs.h), so the PATCH engine works with attribute pointers and
 * canonical names. It does not judge mutability or whether the target
 * exists: those depend on the operation and the resource (noTarget,
 * mutability) and belong to the PATCH engine.
 *
 * Errors: scimType "invalidPath" for a malformed path, an unknown schema or
 * attribute, "[...]" after a non-complex attribute or after a sub-attribute,
 * and a bad sub-attribute after "]"; "invalidFilter" for a bad filter
 * inside the brackets (its detail gives the offset inside the brackets).
 */
#ifndef REFUGE_SCIM_PATH_H
#define REFUGE_SCIM_PATH_H

#include "core/str.h"
#include "scim/filter.h"
#include "scim/schema_attrs.h"

#define SCIM_PATH_MAX_LEN 4096

struct scim_path {
    const struct scim_schema *schema;  /* scim_schema_common (id, meta...), the core schema or an extension */
    const struct scim_attr *attr;      /* top-level attribute; NULL when the path is an extension URN alone */
    const struct scim_attr *sub;       /* sub-attribute of attr, or NULL */
    struct scim_filter *filter;        /* owned: element filter over attr's values, or NULL */
};

/*
 * Parses text (not NUL-terminated; at most SCIM_PATH_MAX_LEN bytes) into
 * *out. 0, or -EINVAL with err filled and *out zeroed. On success release
 * with scim_path_free.
 */
int scim_path_parse(const struct scim_resource_type *rt, struct str text, struct scim_path *out,
                    struct scim_err *err);
void scim_path_free(struct scim_path *p);   /* frees the filter; p itself is the caller's */

/* The attribute reference of p: {schema, attr, sub}. */
struct scim_attr_ref scim_path_ref(const struct scim_path *p);

#endif
