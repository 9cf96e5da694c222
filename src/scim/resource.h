/*
 * resource — SCIM resources as JSON, in and out (RFC 7643).
 *
 * In: what a client sends (a POST/PUT body, a PATCH value) is checked
 * against the attribute tables (schema_attrs.h) and rewritten into the
 * *normalized* form the store keeps and the PATCH engine works on:
 *   - attribute and sub-attribute names in their canonical spelling
 *     (matched ASCII-case-insensitively on input, RFC 7643 §2.1);
 *   - extension attributes inside an object named by the extension URN;
 *   - values type-checked (a boolean may arrive as "true"/"True", as
 *     Azure AD sends it); null, "" , [] and {} mean unassigned and are
 *     dropped, so an attribute is present exactly when it has a value;
 *   - readOnly attributes dropped from whole resources (RFC 7644 §3.3,
 *     §3.5.1: "SHALL be ignored") but refused in PATCH values (mutability);
 *     readOnly sub-attributes (members.display, manager.displayName) are
 *     always dropped: the server computes them;
 *   - "schemas" is not kept: the model writes it from what is present.
 * The writeOnly "password" survives normalization so that the caller can
 * take it out (it is never stored in the resource JSON).
 *
 * Out: scim_render() turns stored JSON into a response representation:
 * attributes in schema order, `returned: never` attributes left out,
 * meta.location and the $ref of members/groups made absolute from the
 * tenant's SCIM base URL (they are not stored, so a region with another
 * public URL serves correct links), and the client's attributes /
 * excludedAttributes selection applied (RFC 7644 §3.9).
 */
#ifndef REFUGE_SCIM_RESOURCE_H
#define REFUGE_SCIM_RESOURCE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "scim/filter.h"
#include "scim/schema_attrs.h"

#define SCIM_URN_ERROR "urn:ietf:params:scim:api:messages:2.0:Error"
#define SCIM_URN_LIST "urn:ietf:params:scim:api:messages:2.0:ListResponse"
#define SCIM_URN_PATCHOP "urn:ietf:params:scim:api:messages:2.0:PatchOp"
#define SCIM_URN_SEARCH "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
#define SCIM_URN_SPC "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
#define SCIM_URN_RESOURCE_TYPE "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
#define SCIM_URN_SCHEMA "urn:ietf:params:scim:schemas:core:2.0:Schema"

/* scimType values (RFC 7644 Table 9) */
#define SCIM_INVALID_FILTER "invalidFilter"
#define SCIM_TOO_MANY "tooMany"
#define SCIM_UNIQUENESS "uniqueness"
#define SCIM_MUTABILITY "mutability"
#define SCIM_INVALID_SYNTAX "invalidSyntax"
#define SCIM_INVALID_PATH "invalidPath"
#define SCIM_NO_TARGET "noTarget"
#define SCIM_INVALID_VALUE "invalidValue"

/* Limits on what one resource may hold (STYLE.md §6). */
#define SCIM_STRING_MAX 16384          /* bytes of one string value */
#define SCIM_MULTI_MAX 1000            /* elements of a multi-valued attribute (except members) */
#define SCIM_MEMBERS_MAX 100000        /* members of one group */
#define SCIM_SELECT_MAX 64             /* names in attributes / excludedAttributes */

/* Fills err and returns -EINVAL. */
int scim_fail(struct scim_err *err, const char *scim_type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---------------------------------------------------------------- input */

/* Normalization flags */
#define SCIM_NORM_PATCH 0x1    /* a PATCH value: readOnly attributes are a mutability error, no "schemas" needed */
#define SCIM_NORM_WRAP 0x2     /* a single value for a multi-valued attribute counts as a one-element array */
#define SCIM_NORM_ELEMENT 0x4  /* v is one element of multi-valued a, not the whole array */

/*
 * Normalizes value v of attribute a (a top-level attribute, or a
 * sub-attribute when a is simple). label names it in error details
 * ("emails", "name.givenName"). *out is a new reference, or NULL when v
 * means "unassigned". 0 or -EINVAL with err (invalidValue).
 */
int scim_value_normalize(const struct scim_attr *a, const char *label, const json_t *v, unsigned flags,
                         json_t **out, struct scim_err *err);

/*
 * Normalizes a whole resource (flags 0: POST / PUT body; "schemas" must
 * list the core schema, required attributes must be present) or a PATCH
 * value without path (SCIM_NORM_PATCH: any subset of attributes). Unknown
 * attributes and schemas are invalidValue, a body that is not an object or
 * lacks "schemas" invalidSyntax. *out: new object. 0 or -EINVAL with err.
 */
int scim_resource_normalize(const struct scim_resource_type *rt, const json_t *in, unsigned flags,
                            json_t **out, struct scim_err *err);

/* ----------------------------------------------------------- selection */

/* attributes / excludedAttributes (RFC 7644 §3.9), parsed. */
struct scim_attr_sel {
    bool exclude;                      /* excludedAttributes; else attributes (when n > 0) */
    size_t n;                          /* 0: the default representation */
    struct scim_attr_ref refs[SCIM_SELECT_MAX];   /* attr NULL: a whole extension */
};

/*
 * Parses a comma-separated list of attribute paths (with or without schema
 * URN, with a sub-attribute, without value filters). Give at most one of
 * attributes / excluded (the caller rejects both). lenient: names unknown
 * to rt are skipped instead of refused (root-level /.search over several
 * resource types). 0 or -EINVAL with err (invalidValue).
 */
int scim_attr_sel_parse(const struct scim_resource_type *rt, const char *attributes, const char *excluded,
                        bool lenient, struct scim_attr_sel *out, struct scim_err *err);
/* The same from JSON arrays of strings (a SearchRequest body); NULL = absent. */
int scim_attr_sel_parse_json(const struct scim_resource_type *rt, const json_t *attributes,
                             const json_t *excluded, bool lenient, struct scim_attr_sel *out,
                             struct scim_err *err);

/* -------------------------------------------------------------- output */

/*
 * The response representation of stored resource `data`. base is the
 * tenant's SCIM base URL ("https://id.example.com/t/acme/scim2"); sel may
 * be NULL. New reference.
 */
json_t *scim_render(const struct scim_resource_type *rt, const json_t *data, const char *base,
                    const struct scim_attr_sel *sel);

/* The SCIM error document {"schemas":[Error],"status":"400","scimType":..,"detail":..}. New reference. */
json_t *scim_error_json(int status, const char *scim_type, const char *detail);

/* The member of obj named `name`, by exact name first, then ASCII-case-insensitively. */
json_t *scim_json_get(const json_t *obj, const char *name);

#endif
