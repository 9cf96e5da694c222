/*
 * patch — the SCIM PATCH engine (RFC 7644 §3.5.2): parses a PatchOp body
 * into operations with resolved paths and normalized values, then applies
 * them to a resource held as normalized JSON (resource.h). It touches no
 * store: the caller loads the resource, applies, and writes the result back
 * in one transaction, so the engine can be unit-tested and fuzzed alone.
 *
 * Body: {"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
 *        "Operations":[{"op":"add"|"replace"|"remove", "path":..., "value":...}]}
 * ("op" is matched case-insensitively: Azure AD sends "Add", "Replace").
 *
 * What each operation does, by the shape of its path:
 *   (none)            add/replace: value is an object of attributes (and
 *                     extension objects), each added/replaced as if it had
 *                     its own path; remove: noTarget.
 *   URN               the whole extension object: add/replace merge into
 *                     it, remove deletes it.
 *   attr              single-valued: set (a complex value merges its
 *                     sub-attributes: RFC 7644 §3.5.2.3 "sub-attributes not
 *                     specified are left unchanged"). Multi-valued: add
 *                     appends the values not yet present (members: by
 *                     "value"), replace replaces the whole list, remove
 *                     deletes it, or with a value (as Azure AD sends for
 *                     members) only the elements whose "value" matches.
 *   attr.sub          a single complex attribute's sub-attribute; for a
 *                     multi-valued attribute, that sub-attribute of every
 *                     element (noTarget when there is none).
 *   attr[f]           the elements matching f: add/replace merge the value
 *                     object into each, remove deletes them.
 *   attr[f].sub       that sub-attribute of each matching element. With no
 *                     match, add creates an element when f is an "eq" or an
 *                     "and" of "eq"s (emails[type eq "work"].value: the
 *                     element {"type":"work","value":...}, how Azure AD
 *                     provisions), otherwise noTarget; replace and remove
 *                     answer noTarget (RFC 7644: a valuePath with no match).
 * A value that normalizes to unassigned (null, "") makes replace a remove
 * and add a no-op. Setting "primary": true on an element sets it false on
 * the others of the attribute. Elements and objects left empty vanish.
 *
 * Errors (scimType): invalidSyntax (body shape, unknown op), invalidPath /
 * invalidFilter (path.h), invalidValue (value type, limits), mutability
 * (readOnly attributes such as id, meta, groups, members.display; immutable
 * sub-attributes such as members.value; "schemas"), noTarget. The detail
 * names the operation: "Operations[2]: ...".
 */
#ifndef REFUGE_SCIM_PATCH_H
#define REFUGE_SCIM_PATCH_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "scim/filter.h"
#include "scim/path.h"
#include "scim/schema_attrs.h"

#define SCIM_PATCH_MAX_OPS 1000

enum scim_patch_opcode { SCIM_PATCH_ADD = 0, SCIM_PATCH_REPLACE, SCIM_PATCH_REMOVE };

struct scim_patch_op {
    enum scim_patch_opcode op;
    bool has_path;
    struct scim_path path;        /* owned */
    json_t *value;                /* owned, normalized for the target; NULL: none / unassigned */
};

struct scim_patch {
    const struct scim_resource_type *rt;
    struct scim_patch_op *ops;    /* owned */
    size_t nops;
};

/* Parses and checks body (paths, mutability, value types). 0, or -EINVAL
 * with err and *out empty. Free with scim_patch_free. */
int scim_patch_parse(const struct scim_resource_type *rt, const json_t *body, struct scim_patch *out,
                     struct scim_err *err);
void scim_patch_free(struct scim_patch *p);

/*
 * Applies every operation, in order, to res (a normalized resource; its
 * readOnly members such as id and meta are left alone). On error res may
 * be half-modified: apply to a copy. 0 or -EINVAL with err.
 */
int scim_patch_apply(const struct scim_patch *p, json_t *res, struct scim_err *err);

/* What the patch does to the (writeOnly) password, judging by its last
 * operation on it: nothing, sets it (*pw / *len point into p), removes it. */
enum scim_patch_pw { SCIM_PATCH_PW_NONE = 0, SCIM_PATCH_PW_SET, SCIM_PATCH_PW_REMOVE };
enum scim_patch_pw scim_patch_password(const struct scim_patch *p, const char **pw, size_t *len);

#endif
