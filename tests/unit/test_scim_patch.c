/*
 * Unit tests for the SCIM PATCH engine (scim/patch.c) and the resource
 * normalizer / renderer it relies on (scim/resource.c).
 *
 * The PATCH table gives, for each case, a resource before, the Operations,
 * and either the exact resource after (compared with json_equal: object
 * member order is free, array order is not) or the scimType the patch must
 * fail with. JSON is written with ' for " (jdoc()).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "core/xmalloc.h"
#include "scim/patch.h"
#include "scim/resource.h"
#include "scim/schema_attrs.h"

#define ENT "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

static json_t *jdoc(const char *text)
{
    char *t = xstrdup(text), *p;
    json_error_t je;
    json_t *j;

    for (p = t; *p; p++)
        if (*p == '\'')
            *p = '"';
    j = json_loads(t, 0, &je);
    if (!j)
        fail_msg("bad fixture JSON: %s at %d: %s", je.text, je.position, t);
    free(t);
    return j;
}

/* ------------------------------------------------------------ the table */

struct pcase {
    const char *name;
    const struct scim_resource_type *rt;
    const char *before;
    const char *ops;          /* the Operations array */
    const char *after;        /* expected resource, or NULL when err is set */
    const char *err;          /* expected scimType */
};

#define U (&scim_rt_user)
#define G (&scim_rt_group)
#define BASE "{'id': 'u1', 'userName': 'bjensen', 'active': true, 'meta': {'version': 'W/\\'1\\''}"
#define EMAILS "'emails': [{'value': 'a@x.com', 'type': 'work', 'primary': true}, {'value': 'b@y.org', 'type': 'home'}]"

static const struct pcase cases[] = {
    /* single-valued simple attributes */
    { "replace simple", U, BASE "}", "[{'op': 'replace', 'path': 'userName', 'value': 'babs'}]",
      "{'id': 'u1', 'userName': 'babs', 'active': true, 'meta': {'version': 'W/\\'1\\''}}", NULL },
    { "op and path ignore case", U, BASE "}", "[{'op': 'Replace', 'path': 'USERNAME', 'value': 'babs'}]",
      "{'id': 'u1', 'userName': 'babs', 'active': true, 'meta': {'version': 'W/\\'1\\''}}", NULL },
    { "add absent attribute", U, BASE "}", "[{'op': 'add', 'path': 'displayName', 'value': 'Babs'}]",
      BASE ", 'displayName': 'Babs'}", NULL },
    { "boolean from a string (Azure AD)", U, BASE "}", "[{'op': 'replace', 'path': 'active', 'value': 'False'}]",
      "{'id': 'u1', 'userName': 'bjensen', 'active': false, 'meta': {'version': 'W/\\'1\\''}}", NULL },
    { "replace with null removes", U, BASE ", 'title': 'x'}", "[{'op': 'replace', 'path': 'title', 'value': null}]",
      BASE "}", NULL },
    { "add with empty string is a no-op", U, BASE ", 'title': 'x'}", "[{'op': 'add', 'path': 'title', 'value': ''}]",
      BASE ", 'title': 'x'}", NULL },
    { "remove simple", U, BASE ", 'title': 'x'}", "[{'op': 'remove', 'path': 'title'}]", BASE "}", NULL },
    { "remove absent is a no-op", U, BASE "}", "[{'op': 'remove', 'path': 'nickName'}]", BASE "}", NULL },

    /* single-valued complex */
    { "sub-attribute creates the object", U, BASE "}", "[{'op': 'replace', 'path': 'name.givenName', 'value': 'B'}]",
      BASE ", 'name': {'givenName': 'B'}}", NULL },
    { "complex replace merges", U, BASE ", 'name': {'givenName': 'B', 'familyName': 'J'}}",
      "[{'op': 'replace', 'path': 'name', 'value': {'givenName': 'C'}}]",
      BASE ", 'name': {'givenName': 'C', 'familyName': 'J'}}", NULL },
    { "remove sub-attribute", U, BASE ", 'name': {'givenName': 'B', 'familyName': 'J'}}",
      "[{'op': 'remove', 'path': 'name.familyName'}]", BASE ", 'name': {'givenName': 'B'}}", NULL },
    { "removing the last sub-attribute removes the object", U, BASE ", 'name': {'givenName': 'B'}}",
      "[{'op': 'remove', 'path': 'name.givenName'}]", BASE "}", NULL },
    { "filter on a single complex attribute", U, BASE ", 'name': {'givenName': 'B'}}",
      "[{'op': 'replace', 'path': 'name[givenName eq \\'b\\'].familyName', 'value': 'J'}]",
      BASE ", 'name': {'givenName': 'B', 'familyName': 'J'}}", NULL },

    /* multi-valued */
    { "add appends", U, BASE ", 'emails': [{'value': 'a@x.com'}]}",
      "[{'op': 'add', 'path': 'emails', 'value': [{'value': 'b@y.org', 'type': 'home'}]}]",
      BASE ", 'emails': [{'value': 'a@x.com'}, {'value': 'b@y.org', 'type': 'home'}]}", NULL },
    { "add a single object to a multi-valued attribute", U, BASE "}",
      "[{'op': 'add', 'path': 'emails', 'value': {'value': 'a@x.com'}}]", BASE ", 'emails': [{'value': 'a@x.com'}]}",
      NULL },
    { "add an element already present changes nothing", U, BASE ", 'emails': [{'value': 'a@x.com'}]}",
      "[{'op': 'add', 'path': 'emails', 'value': [{'value': 'a@x.com'}]}]", BASE ", 'emails': [{'value': 'a@x.com'}]}",
      NULL },
    { "replace replaces the list", U, BASE ", " EMAILS "}",
      "[{'op': 'replace', 'path': 'emails', 'value': [{'value': 'c@z.net'}]}]", BASE ", 'emails': [{'value': 'c@z.net'}]}",
      NULL },
    { "value filter with sub-attribute", U, BASE ", " EMAILS "}",
      "[{'op': 'replace', 'path': 'emails[type eq \\'work\\'].value', 'value': 'new@x.com'}]",
      BASE ", 'emails': [{'value': 'new@x.com', 'type': 'work', 'primary': true}, {'value': 'b@y.org', 'type': 'home'}]}",
      NULL },
    { "value filter merges an object", U, BASE ", " EMAILS "}",
      "[{'op': 'replace', 'path': 'emails[value ew \\'.org\\']', 'value': {'display': 'Home'}}]",
      BASE ", 'emails': [{'value': 'a@x.com', 'type': 'work', 'primary': true},"
      " {'value': 'b@y.org', 'type': 'home', 'display': 'Home'}]}", NULL },
    { "add through an unmatched eq filter creates the element", U, BASE ", 'emails': [{'value': 'b@y.org', 'type': 'home'}]}",
      "[{'op': 'add', 'path': 'emails[type eq \\'work\\'].value', 'value': 'w@x.com'}]",
      BASE ", 'emails': [{'value': 'b@y.org', 'type': 'home'}, {'type': 'work', 'value': 'w@x.com'}]}", NULL },
    { "add through an and of eqs", U, BASE "}",
      "[{'op': 'add', 'path': 'addresses[type eq \\'work\\' and primary eq true].locality', 'value': 'Paris'}]",
      BASE ", 'addresses': [{'type': 'work', 'primary': true, 'locality': 'Paris'}]}", NULL },
    { "replace through an unmatched filter", U, BASE ", " EMAILS "}",
      "[{'op': 'replace', 'path': 'emails[type eq \\'other\\'].value', 'value': 'o@x.com'}]", NULL, "noTarget" },
    { "add through a non-eq filter without match", U, BASE "}",
      "[{'op': 'add', 'path': 'emails[value co \\'x\\'].type', 'value': 'work'}]", NULL, "noTarget" },
    { "remove by filter", U, BASE ", " EMAILS "}", "[{'op': 'remove', 'path': 'emails[type eq \\'work\\']'}]",
      BASE ", 'emails': [{'value': 'b@y.org', 'type': 'home'}]}", NULL },
    { "remove by filter, the last element", U, BASE ", 'emails': [{'value': 'a@x.com', 'type': 'work'}]}",
      "[{'op': 'remove', 'path': 'emails[type eq \\'work\\']'}]", BASE "}", NULL },
    { "remove by filter without match", U, BASE ", " EMAILS "}",
      "[{'op': 'remove', 'path': 'emails[type eq \\'other\\']'}]", NULL, "noTarget" },
    { "remove a sub-attribute of matching elements", U, BASE ", " EMAILS "}",
      "[{'op': 'remove', 'path': 'emails[type eq \\'work\\'].primary'}]",
      BASE ", 'emails': [{'value': 'a@x.com', 'type': 'work'}, {'value': 'b@y.org', 'type': 'home'}]}", NULL },
    { "remove the whole list", U, BASE ", " EMAILS "}", "[{'op': 'remove', 'path': 'emails'}]", BASE "}", NULL },
    { "sub-attribute of every element", U, BASE ", " EMAILS "}",
      "[{'op': 'replace', 'path': 'emails.display', 'value': 'E'}]",
      BASE ", 'emails': [{'value': 'a@x.com', 'type': 'work', 'primary': true, 'display': 'E'},"
      " {'value': 'b@y.org', 'type': 'home', 'display': 'E'}]}", NULL },
    { "sub-attribute of an empty list", U, BASE "}", "[{'op': 'replace', 'path': 'emails.type', 'value': 'work'}]",
      NULL, "noTarget" },
    { "a new primary demotes the old one", U, BASE ", " EMAILS "}",
      "[{'op': 'add', 'path': 'emails', 'value': [{'value': 'c@z.net', 'primary': true}]}]",
      BASE ", 'emails': [{'value': 'a@x.com', 'type': 'work', 'primary': false}, {'value': 'b@y.org', 'type': 'home'},"
      " {'value': 'c@z.net', 'primary': true}]}", NULL },
    { "primary through a filter demotes the others", U, BASE ", " EMAILS "}",
      "[{'op': 'replace', 'path': 'emails[type eq \\'home\\'].primary', 'value': true}]",
      BASE ", 'emails': [{'value': 'a@x.com', 'type': 'work', 'primary': false},"
      " {'value': 'b@y.org', 'type': 'home', 'primary': true}]}", NULL },
    { "filter with an escaped quote", U, BASE ", 'emails': [{'value': 'q\\'x', 'type': 'work'}, {'value': 'qx'}]}",
      "[{'op': 'remove', 'path': 'emails[value eq \\'q\\\\\\'x\\']'}]", BASE ", 'emails': [{'value': 'qx'}]}", NULL },

    /* no path */
    { "no path: add merges attributes", U, BASE ", 'emails': [{'value': 'a@x.com'}]}",
      "[{'op': 'add', 'value': {'displayName': 'B', 'emails': [{'value': 'b@y.org'}]}}]",
      BASE ", 'displayName': 'B', 'emails': [{'value': 'a@x.com'}, {'value': 'b@y.org'}]}", NULL },
    { "no path: replace merges complex, replaces lists", U, BASE ", 'name': {'givenName': 'B', 'familyName': 'J'}, " EMAILS "}",
      "[{'op': 'replace', 'value': {'name': {'familyName': 'K'}, 'emails': [{'value': 'c@z.net'}], 'ACTIVE': false}}]",
      "{'id': 'u1', 'userName': 'bjensen', 'active': false, 'meta': {'version': 'W/\\'1\\''},"
      " 'name': {'givenName': 'B', 'familyName': 'K'}, 'emails': [{'value': 'c@z.net'}]}", NULL },
    { "no path: extension object", U, BASE "}",
      "[{'op': 'add', 'value': {'" ENT "': {'department': 'Ops', 'manager': {'value': 'm1'}}}}]",
      BASE ", '" ENT "': {'department': 'Ops', 'manager': {'value': 'm1'}}}", NULL },
    { "no path: remove", U, BASE "}", "[{'op': 'remove'}]", NULL, "noTarget" },
    { "no path: readOnly attribute", U, BASE "}", "[{'op': 'replace', 'value': {'id': 'other'}}]", NULL,
      "mutability" },
    { "no path: unknown attribute", U, BASE "}", "[{'op': 'replace', 'value': {'shoeSize': 42}}]", NULL,
      "invalidValue" },
    { "no path: value not an object", U, BASE "}", "[{'op': 'add', 'value': 'x'}]", NULL, "invalidValue" },

    /* the enterprise extension */
    { "extension attribute by URN path", U, BASE "}",
      "[{'op': 'replace', 'path': '" ENT ":employeeNumber', 'value': '701984'}]",
      BASE ", '" ENT "': {'employeeNumber': '701984'}}", NULL },
    { "extension complex sub-attribute", U, BASE ", '" ENT "': {'department': 'Ops'}}",
      "[{'op': 'add', 'path': '" ENT ":manager.value', 'value': 'boss'}]",
      BASE ", '" ENT "': {'department': 'Ops', 'manager': {'value': 'boss'}}}", NULL },
    { "extension readOnly sub-attribute", U, BASE "}",
      "[{'op': 'add', 'path': '" ENT ":manager.displayName', 'value': 'Boss'}]", NULL, "mutability" },
    { "removing the last extension attribute removes the object", U, BASE ", '" ENT "': {'costCenter': '41'}}",
      "[{'op': 'remove', 'path': '" ENT ":costCenter'}]", BASE "}", NULL },
    { "whole extension: add merges", U, BASE ", '" ENT "': {'costCenter': '41'}}",
      "[{'op': 'add', 'path': '" ENT "', 'value': {'division': 'Parks'}}]",
      BASE ", '" ENT "': {'costCenter': '41', 'division': 'Parks'}}", NULL },
    { "whole extension: remove", U, BASE ", '" ENT "': {'costCenter': '41'}}",
      "[{'op': 'remove', 'path': '" ENT "'}]", BASE "}", NULL },
    { "extension attribute needs its URN", U, BASE "}",
      "[{'op': 'replace', 'path': 'employeeNumber', 'value': '1'}]", NULL, "invalidPath" },

    /* mutability and errors */
    { "id is readOnly", U, BASE "}", "[{'op': 'replace', 'path': 'id', 'value': 'x'}]", NULL, "mutability" },
    { "meta is readOnly", U, BASE "}", "[{'op': 'replace', 'path': 'meta.created', 'value': '2020-01-01T00:00:00Z'}]",
      NULL, "mutability" },
    { "groups is readOnly", U, BASE "}", "[{'op': 'add', 'path': 'groups', 'value': [{'value': 'g1'}]}]", NULL,
      "mutability" },
    { "schemas is the server's", U, BASE "}", "[{'op': 'add', 'path': 'schemas', 'value': ['urn:x']}]", NULL,
      "mutability" },
    { "unknown attribute", U, BASE "}", "[{'op': 'replace', 'path': 'shoeSize', 'value': 1}]", NULL, "invalidPath" },
    { "bad filter", U, BASE "}", "[{'op': 'replace', 'path': 'emails[type eq]', 'value': 1}]", NULL,
      "invalidFilter" },
    { "wrong type", U, BASE "}", "[{'op': 'replace', 'path': 'userName', 'value': 5}]", NULL, "invalidValue" },
    { "bad boolean", U, BASE "}", "[{'op': 'replace', 'path': 'active', 'value': 'maybe'}]", NULL, "invalidValue" },
    { "unknown sub-attribute in a value", U, BASE "}",
      "[{'op': 'add', 'path': 'emails', 'value': [{'value': 'a@b', 'colour': 'red'}]}]", NULL, "invalidValue" },
    { "unknown op", U, BASE "}", "[{'op': 'move', 'path': 'userName', 'value': 'x'}]", NULL, "invalidSyntax" },
    { "add without value", U, BASE "}", "[{'op': 'add', 'path': 'userName'}]", NULL, "invalidValue" },
    { "operation not an object", U, BASE "}", "['add']", NULL, "invalidSyntax" },
    { "no operations", U, BASE "}", "[]", NULL, "invalidSyntax" },
    { "ops apply in order", U, BASE "}",
      "[{'op': 'add', 'path': 'title', 'value': 'a'}, {'op': 'replace', 'path': 'title', 'value': 'b'},"
      " {'op': 'add', 'path': 'nickName', 'value': 'n'}, {'op': 'remove', 'path': 'nickName'}]",
      BASE ", 'title': 'b'}", NULL },
    { "a later failure fails the whole patch", U, BASE "}",
      "[{'op': 'add', 'path': 'title', 'value': 'a'}, {'op': 'remove', 'path': 'emails[type eq \\'x\\']'}]",
      NULL, "noTarget" },

    /* groups */
    { "add members", G, "{'id': 'g1', 'displayName': 'G', 'members': [{'value': 'u1', 'type': 'User', 'display': 'A'}]}",
      "[{'op': 'add', 'path': 'members', 'value': [{'value': 'u2'}, {'value': 'u1', 'display': 'ignored'}]}]",
      "{'id': 'g1', 'displayName': 'G', 'members': [{'value': 'u1', 'type': 'User', 'display': 'A'}, {'value': 'u2'}]}",
      NULL },
    { "remove a member by filter", G, "{'id': 'g1', 'displayName': 'G', 'members': [{'value': 'u1'}, {'value': 'u2'}]}",
      "[{'op': 'remove', 'path': 'members[value eq \\'u1\\']'}]",
      "{'id': 'g1', 'displayName': 'G', 'members': [{'value': 'u2'}]}", NULL },
    { "remove members by value (Azure AD)", G,
      "{'id': 'g1', 'displayName': 'G', 'members': [{'value': 'u1'}, {'value': 'u2'}, {'value': 'u3'}]}",
      "[{'op': 'Remove', 'path': 'members', 'value': [{'value': 'u1'}, {'value': 'u3'}]}]",
      "{'id': 'g1', 'displayName': 'G', 'members': [{'value': 'u2'}]}", NULL },
    { "replace members", G, "{'id': 'g1', 'displayName': 'G', 'members': [{'value': 'u1'}]}",
      "[{'op': 'replace', 'path': 'members', 'value': [{'value': 'u9', 'type': 'User'}]}]",
      "{'id': 'g1', 'displayName': 'G', 'members': [{'value': 'u9', 'type': 'User'}]}", NULL },
    { "member value is immutable", G, "{'id': 'g1', 'displayName': 'G', 'members': [{'value': 'u1'}]}",
      "[{'op': 'replace', 'path': 'members[value eq \\'u1\\'].value', 'value': 'u2'}]", NULL, "mutability" },
    { "member display is readOnly", G, "{'id': 'g1', 'displayName': 'G', 'members': [{'value': 'u1'}]}",
      "[{'op': 'replace', 'path': 'members[value eq \\'u1\\'].display', 'value': 'x'}]", NULL, "mutability" },
    { "rename a group", G, "{'id': 'g1', 'displayName': 'G'}",
      "[{'op': 'replace', 'value': {'displayName': 'H', 'externalId': 'e'}}]",
      "{'id': 'g1', 'displayName': 'H', 'externalId': 'e'}", NULL },
    { "user attributes are not group attributes", G, "{'id': 'g1', 'displayName': 'G'}",
      "[{'op': 'replace', 'path': 'userName', 'value': 'x'}]", NULL, "invalidPath" },
};

static void run_case(const struct pcase *c)
{
    json_t *res = jdoc(c->before), *ops = jdoc(c->ops), *body, *want;
    struct scim_patch p;
    struct scim_err err;
    int rc;

    body = json_pack("{s:[s], s:o}", "schemas", SCIM_URN_PATCHOP, "Operations", ops);
    memset(&err, 0, sizeof(err));
    rc = scim_patch_parse(c->rt, body, &p, &err);
    if (rc == 0) {
        rc = scim_patch_apply(&p, res, &err);
        scim_patch_free(&p);
    }
    if (c->err) {
        if (rc == 0)
            fail_msg("%s: expected %s, got %s", c->name, c->err, json_dumps(res, JSON_SORT_KEYS));
        if (!err.scim_type || strcmp(err.scim_type, c->err) != 0)
            fail_msg("%s: expected %s, got %s (%s)", c->name, c->err, err.scim_type ? err.scim_type : "none",
                     err.detail);
        assert_true(err.detail[0] != '\0');
        if (strcmp(c->ops, "[]") != 0 && !strstr(err.detail, "Operations["))
            fail_msg("%s: the detail does not name the operation: %s", c->name, err.detail);
    } else {
        if (rc != 0)
            fail_msg("%s: failed with %s: %s", c->name, err.scim_type, err.detail);
        want = jdoc(c->after);
        if (!json_equal(res, want)) {
            char *got = json_dumps(res, JSON_SORT_KEYS), *exp = json_dumps(want, JSON_SORT_KEYS);
            fail_msg("%s:\n got  %s\n want %s", c->name, got, exp);
        }
        json_decref(want);
    }
    json_decref(res);
    json_decref(body);
}

static void test_patch_table(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        run_case(&cases[i]);
}

/* --------------------------------------------------------- body shape */

static void test_patch_body(void **state)
{
    struct scim_patch p;
    struct scim_err err;
    json_t *b;
    size_t i;

    (void)state;
    b = jdoc("{'Operations': [{'op': 'add', 'path': 'title', 'value': 'x'}]}");
    assert_int_equal(scim_patch_parse(U, b, &p, &err), -EINVAL);
    assert_string_equal(err.scim_type, "invalidSyntax");
    json_decref(b);

    b = jdoc("{'schemas': ['urn:ietf:params:scim:api:messages:2.0:PatchOp'], 'Operations': {}}");
    assert_int_equal(scim_patch_parse(U, b, &p, &err), -EINVAL);
    assert_string_equal(err.scim_type, "invalidSyntax");
    json_decref(b);

    b = json_string("x");
    assert_int_equal(scim_patch_parse(U, b, &p, &err), -EINVAL);
    json_decref(b);

    /* too many operations */
    b = jdoc("{'schemas': ['urn:ietf:params:scim:api:messages:2.0:PatchOp'], 'Operations': []}");
    for (i = 0; i <= SCIM_PATCH_MAX_OPS; i++)
        json_array_append_new(json_object_get(b, "Operations"),
                              json_pack("{s:s, s:s, s:s}", "op", "add", "path", "title", "value", "x"));
    assert_int_equal(scim_patch_parse(U, b, &p, &err), -EINVAL);
    assert_string_equal(err.scim_type, "invalidValue");
    json_array_remove(json_object_get(b, "Operations"), 0);
    assert_int_equal(scim_patch_parse(U, b, &p, &err), 0);
    assert_int_equal(p.nops, SCIM_PATCH_MAX_OPS);
    scim_patch_free(&p);
    json_decref(b);
}

/* ------------------------------------------------------------ password */

static enum scim_patch_pw pw_of(const char *ops, char *out, size_t outlen)
{
    json_t *b = json_pack("{s:[s], s:o}", "schemas", SCIM_URN_PATCHOP, "Operations", jdoc(ops));
    struct scim_patch p;
    struct scim_err err;
    enum scim_patch_pw r;
    const char *pw;
    size_t n;

    assert_int_equal(scim_patch_parse(U, b, &p, &err), 0);
    r = scim_patch_password(&p, &pw, &n);
    out[0] = '\0';
    if (pw)
        snprintf(out, outlen, "%.*s", (int)n, pw);
    scim_patch_free(&p);
    json_decref(b);
    return r;
}

static void test_patch_password(void **state)
{
    char pw[64];
    json_t *res = jdoc(BASE "}"), *b;
    struct scim_patch p;
    struct scim_err err;

    (void)state;
    assert_int_equal(pw_of("[{'op': 'replace', 'path': 'title', 'value': 'x'}]", pw, sizeof(pw)), SCIM_PATCH_PW_NONE);
    assert_int_equal(pw_of("[{'op': 'replace', 'path': 'password', 'value': 'S3cret!'}]", pw, sizeof(pw)),
                     SCIM_PATCH_PW_SET);
    assert_string_equal(pw, "S3cret!");
    assert_int_equal(pw_of("[{'op': 'add', 'value': {'Password': 'Other1'}}]", pw, sizeof(pw)), SCIM_PATCH_PW_SET);
    assert_string_equal(pw, "Other1");
    assert_int_equal(pw_of("[{'op': 'remove', 'path': 'password'}]", pw, sizeof(pw)), SCIM_PATCH_PW_REMOVE);
    assert_int_equal(pw_of("[{'op': 'replace', 'path': 'password', 'value': 'a'},"
                           " {'op': 'remove', 'path': 'password'}]", pw, sizeof(pw)),
                     SCIM_PATCH_PW_REMOVE);
    assert_int_equal(pw_of("[{'op': 'remove', 'path': 'password'},"
                           " {'op': 'replace', 'path': 'password', 'value': 'last'}]", pw, sizeof(pw)),
                     SCIM_PATCH_PW_SET);
    assert_string_equal(pw, "last");
    /* applying puts it where the caller takes it from */
    b = json_pack("{s:[s], s:o}", "schemas", SCIM_URN_PATCHOP, "Operations",
                  jdoc("[{'op': 'replace', 'path': 'password', 'value': 'pw1'}]"));
    assert_int_equal(scim_patch_parse(U, b, &p, &err), 0);
    assert_int_equal(scim_patch_apply(&p, res, &err), 0);
    assert_string_equal(json_string_value(json_object_get(res, "password")), "pw1");
    scim_patch_free(&p);
    json_decref(b);
    json_decref(res);
}

/* ---------------------------------------------------------- normalize */

static void expect_norm(const struct scim_resource_type *rt, const char *in, const char *want, const char *err_type)
{
    json_t *j = jdoc(in), *out = NULL;
    struct scim_err err;
    int rc = scim_resource_normalize(rt, j, 0, &out, &err);

    if (err_type) {
        if (rc == 0)
            fail_msg("normalize %s: expected %s", in, err_type);
        assert_string_equal(err.scim_type, err_type);
    } else {
        json_t *w = jdoc(want);
        if (rc != 0)
            fail_msg("normalize %s: %s", in, err.detail);
        if (!json_equal(out, w))
            fail_msg("normalize %s:\n got  %s", in, json_dumps(out, JSON_SORT_KEYS));
        json_decref(w);
    }
    json_decref(out);
    json_decref(j);
}

#define SCH "'schemas': ['urn:ietf:params:scim:schemas:core:2.0:User']"

static void test_normalize(void **state)
{
    (void)state;
    expect_norm(U, "{" SCH ", 'USERNAME': 'a', 'Name': {'GIVENNAME': 'b', 'familyName': null}, 'title': '',"
                   " 'emails': [{'Value': 'x@y', 'TYPE': 'work'}, null], 'phoneNumbers': []}",
                "{'userName': 'a', 'name': {'givenName': 'b'}, 'emails': [{'value': 'x@y', 'type': 'work'}]}", NULL);
    /* readOnly attributes of a whole resource are ignored */
    expect_norm(U, "{" SCH ", 'userName': 'a', 'id': 'x', 'meta': {'created': 'x'}, 'groups': [{'value': 'g'}]}",
                "{'userName': 'a'}", NULL);
    /* the extension under its URN, core attributes under the core URN */
    expect_norm(U, "{'schemas': ['urn:ietf:params:scim:schemas:core:2.0:User', '" ENT "'], 'userName': 'a',"
                   " '" ENT "': {'EmployeeNumber': '7', 'manager': {'value': 'm', 'displayName': 'ro'}}}",
                "{'userName': 'a', '" ENT "': {'employeeNumber': '7', 'manager': {'value': 'm'}}}", NULL);
    expect_norm(U, "{" SCH ", 'urn:ietf:params:scim:schemas:core:2.0:User': {'userName': 'a'}}", "{'userName': 'a'}",
                NULL);
    expect_norm(U, "{" SCH ", 'userName': 'a', 'password': 'p'}", "{'userName': 'a', 'password': 'p'}", NULL);
    expect_norm(U, "{'userName': 'a'}", NULL, "invalidSyntax");
    expect_norm(U, "{'schemas': ['urn:ietf:params:scim:schemas:core:2.0:Group'], 'userName': 'a'}", NULL,
                "invalidValue");
    expect_norm(U, "{" SCH ", 'userName': 'a', 'shoeSize': 1}", NULL, "invalidValue");
    expect_norm(U, "{" SCH ", 'displayName': 'a'}", NULL, "invalidValue");       /* userName required */
    expect_norm(U, "{" SCH ", 'userName': ''}", NULL, "invalidValue");
    expect_norm(U, "{" SCH ", 'userName': 'a', 'username': 'b'}", NULL, "invalidValue");
    expect_norm(U, "{" SCH ", 'userName': 'a', 'emails': {'value': 'x'}}", NULL, "invalidValue");
    expect_norm(U, "{" SCH ", 'userName': 'a', 'active': 1}", NULL, "invalidValue");
    expect_norm(G, "{'schemas': ['urn:ietf:params:scim:schemas:core:2.0:Group'], 'displayName': 'g',"
                   " 'members': [{'value': 'u1', '$ref': 'x', 'display': 'y', 'type': 'User'}]}",
                "{'displayName': 'g', 'members': [{'value': 'u1', '$ref': 'x', 'type': 'User'}]}", NULL);
}

/* -------------------------------------------------------------- render */

static void test_render(void **state)
{
    json_t *data = jdoc("{'schemas': ['x'], 'id': 'u1', 'userName': 'a', 'password': 'never', 'title': 't',"
                        " 'name': {'givenName': 'g', 'familyName': 'f'},"
                        " 'groups': [{'value': 'g1', 'display': 'G', 'type': 'direct'}],"
                        " 'meta': {'resourceType': 'User', 'version': 'W/\\'2\\''},"
                        " '" ENT "': {'costCenter': '4'}}");
    struct scim_attr_sel sel;
    struct scim_err err;
    json_t *out, *want;

    (void)state;
    out = scim_render(U, data, "https://h/scim2", NULL);
    want = jdoc("{'schemas': ['urn:ietf:params:scim:schemas:core:2.0:User', '" ENT "'], 'id': 'u1', 'userName': 'a',"
                " 'title': 't', 'name': {'givenName': 'g', 'familyName': 'f'},"
                " 'groups': [{'value': 'g1', '$ref': 'https://h/scim2/Groups/g1', 'display': 'G', 'type': 'direct'}],"
                " '" ENT "': {'costCenter': '4'},"
                " 'meta': {'resourceType': 'User', 'location': 'https://h/scim2/Users/u1', 'version': 'W/\\'2\\''}}");
    if (!json_equal(out, want))
        fail_msg("render: %s", json_dumps(out, JSON_SORT_KEYS));
    json_decref(out);
    json_decref(want);

    assert_int_equal(scim_attr_sel_parse(U, "userName,name.familyName", NULL, false, &sel, &err), 0);
    out = scim_render(U, data, "https://h/scim2", &sel);
    want = jdoc("{'schemas': ['urn:ietf:params:scim:schemas:core:2.0:User', '" ENT "'], 'id': 'u1', 'userName': 'a',"
                " 'name': {'familyName': 'f'}}");
    if (!json_equal(out, want))
        fail_msg("attributes: %s", json_dumps(out, JSON_SORT_KEYS));
    json_decref(out);
    json_decref(want);

    assert_int_equal(scim_attr_sel_parse(U, NULL, "groups, meta, " ENT ", name.givenName, id", false, &sel, &err), 0);
    out = scim_render(U, data, "https://h/scim2", &sel);
    want = jdoc("{'schemas': ['urn:ietf:params:scim:schemas:core:2.0:User', '" ENT "'], 'id': 'u1', 'userName': 'a',"
                " 'title': 't', 'name': {'familyName': 'f'}}");
    if (!json_equal(out, want))
        fail_msg("excludedAttributes: %s", json_dumps(out, JSON_SORT_KEYS));
    json_decref(out);
    json_decref(want);

    assert_int_equal(scim_attr_sel_parse(U, ENT ":costCenter,meta.version", NULL, false, &sel, &err), 0);
    out = scim_render(U, data, "https://h/scim2", &sel);
    want = jdoc("{'schemas': ['urn:ietf:params:scim:schemas:core:2.0:User', '" ENT "'], 'id': 'u1',"
                " '" ENT "': {'costCenter': '4'}, 'meta': {'version': 'W/\\'2\\''}}");
    if (!json_equal(out, want))
        fail_msg("extension attributes: %s", json_dumps(out, JSON_SORT_KEYS));
    json_decref(out);
    json_decref(want);

    assert_int_equal(scim_attr_sel_parse(U, "nosuch", NULL, false, &sel, &err), -EINVAL);
    assert_string_equal(err.scim_type, "invalidValue");
    assert_int_equal(scim_attr_sel_parse(U, "nosuch,userName", NULL, true, &sel, &err), 0);
    assert_int_equal(sel.n, 1);
    assert_int_equal(scim_attr_sel_parse(U, "emails[type eq \"work\"]", NULL, false, &sel, &err), -EINVAL);
    json_decref(data);

    /* a Group's members get $ref by their type */
    data = jdoc("{'id': 'g1', 'displayName': 'G', 'members': [{'value': 'u1', 'type': 'User'},"
                " {'value': 'g2', 'type': 'Group'}]}");
    out = scim_render(G, data, "https://h/t/x/scim2", NULL);
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(out, "members"), 0), "$ref")),
                        "https://h/t/x/scim2/Users/u1");
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(out, "members"), 1), "$ref")),
                        "https://h/t/x/scim2/Groups/g2");
    json_decref(out);
    json_decref(data);
}

static void test_error_json(void **state)
{
    json_t *e;

    (void)state;
    e = scim_error_json(409, "uniqueness", "taken");
    assert_string_equal(json_string_value(json_array_get(json_object_get(e, "schemas"), 0)),
                        "urn:ietf:params:scim:api:messages:2.0:Error");
    assert_string_equal(json_string_value(json_object_get(e, "status")), "409");
    assert_string_equal(json_string_value(json_object_get(e, "scimType")), "uniqueness");
    assert_string_equal(json_string_value(json_object_get(e, "detail")), "taken");
    json_decref(e);
    /* a detail cut inside a UTF-8 sequence still yields a detail */
    e = scim_error_json(400, NULL, "bad \xc3");
    assert_non_null(json_object_get(e, "detail"));
    assert_null(json_object_get(e, "scimType"));
    json_decref(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_patch_table),
        cmocka_unit_test(test_patch_body),
        cmocka_unit_test(test_patch_password),
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_error_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
