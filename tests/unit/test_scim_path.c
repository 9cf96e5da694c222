/*
 * Unit tests for scim/path: a table of PATCH paths (RFC 7644 §3.5.2) with
 * the schema, attribute, sub-attribute and value filter each must resolve
 * to, or the scimType each must fail with. Value filters are checked by
 * matching them against an element that must and one that must not match.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "core/xmalloc.h"
#include "scim/filter.h"
#include "scim/path.h"
#include "scim/schema_attrs.h"

#define ENT "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
#define CORE "urn:ietf:params:scim:schemas:core:2.0:User"

struct pcase {
    const struct scim_resource_type *rt;
    const char *path;
    const char *err;          /* expected scimType, or NULL for success */
    const char *schema;       /* schema id ("" for common attributes) */
    const char *attr, *sub;   /* canonical names, NULL when absent */
    const char *yes, *no;     /* for a value filter: an element it matches, one it does not */
};

#define U (&scim_rt_user)
#define G (&scim_rt_group)
#define BAD(r, p, e) { .rt = (r), .path = (p), .err = (e) }

static const struct pcase cases[] = {
    { U, "userName", NULL, CORE, "userName", NULL, NULL, NULL },
    { U, "USERNAME", NULL, CORE, "userName", NULL, NULL, NULL },
    { U, "name.familyName", NULL, CORE, "name", "familyName", NULL, NULL },
    { U, "Name.FAMILYNAME", NULL, CORE, "name", "familyName", NULL, NULL },
    { U, "emails", NULL, CORE, "emails", NULL, NULL, NULL },
    { U, "emails.value", NULL, CORE, "emails", "value", NULL, NULL },
    { U, "emails[type eq \"work\"]", NULL, CORE, "emails", NULL,
      "{\"type\": \"Work\", \"value\": \"a@b\"}", "{\"type\": \"home\", \"value\": \"a@b\"}" },
    { U, "emails[type eq \"work\"].value", NULL, CORE, "emails", "value",
      "{\"type\": \"work\"}", "{\"value\": \"work\"}" },
    { U, "emails[type eq \"work\" and value ew \".com\"].display", NULL, CORE, "emails", "display",
      "{\"type\": \"work\", \"value\": \"x@y.COM\"}", "{\"type\": \"work\", \"value\": \"x@y.org\"}" },
    { U, "emails[not (type eq \"work\")]", NULL, CORE, "emails", NULL,
      "{\"type\": \"home\"}", "{\"type\": \"work\"}" },
    { U, "emails[value eq \"a]b\"].type", NULL, CORE, "emails", "type",
      "{\"value\": \"A]B\"}", "{\"value\": \"a\"}" },
    { U, "emails[value eq \"q\\\"]\"]", NULL, CORE, "emails", NULL,
      "{\"value\": \"q\\\"]\"}", "{\"value\": \"q\"}" },
    { U, "addresses[type eq \"work\" and primary eq true].streetAddress", NULL, CORE, "addresses",
      "streetAddress", "{\"type\": \"work\", \"primary\": true}", "{\"type\": \"work\", \"primary\": false}" },
    { U, "EMAILS[TYPE EQ \"work\"].VALUE", NULL, CORE, "emails", "value", "{\"type\": \"work\"}", "{}" },
    { G, "members[value eq \"2819c223-7f76-453a-919d-413861904646\"]", NULL, "urn:ietf:params:scim:schemas:core:2.0:Group",
      "members", NULL, "{\"value\": \"2819c223-7f76-453a-919d-413861904646\", \"type\": \"User\"}",
      "{\"value\": \"2819C223-7F76-453A-919D-413861904646\"}" },
    { G, "members[type eq \"Group\"].display", NULL, "urn:ietf:params:scim:schemas:core:2.0:Group",
      "members", "display", "{\"type\": \"group\"}", "{\"type\": \"User\"}" },
    { G, "displayName", NULL, "urn:ietf:params:scim:schemas:core:2.0:Group", "displayName", NULL, NULL, NULL },
    { G, "urn:ietf:params:scim:schemas:core:2.0:Group:displayName", NULL,
      "urn:ietf:params:scim:schemas:core:2.0:Group", "displayName", NULL, NULL, NULL },
    { U, ENT ":manager.value", NULL, ENT, "manager", "value", NULL, NULL },
    { U, ENT ":employeeNumber", NULL, ENT, "employeeNumber", NULL, NULL, NULL },
    { U, "urn:ietf:params:scim:schemas:extension:ENTERPRISE:2.0:User:Manager", NULL, ENT, "manager", NULL, NULL, NULL },
    { U, ENT, NULL, ENT, NULL, NULL, NULL, NULL },
    { U, ENT ":manager[value sw \"2611\"]", NULL, ENT, "manager", NULL, "{\"value\": \"26118915\"}", "{\"value\": \"1\"}" },
    { U, CORE ":name.givenName", NULL, CORE, "name", "givenName", NULL, NULL },
    { U, "id", NULL, "", "id", NULL, NULL, NULL },
    { U, "meta.lastModified", NULL, "", "meta", "lastModified", NULL, NULL },
    { U, "groups[value eq \"g1\"].display", NULL, CORE, "groups", "display", "{\"value\": \"g1\"}", "{\"value\": \"G1\"}" },
    /* invalid paths */
    BAD(U, "", "invalidPath"),
    BAD(U, "unknown", "invalidPath"),
    BAD(U, "name.unknown", "invalidPath"),
    BAD(U, "userName.x", "invalidPath"),
    BAD(U, "name.givenName.x", "invalidPath"),
    BAD(U, "name.", "invalidPath"),
    BAD(U, ".name", "invalidPath"),
    BAD(U, " userName", "invalidPath"),
    BAD(U, "userName ", "invalidPath"),
    BAD(U, "user Name", "invalidPath"),
    BAD(U, "employeeNumber", "invalidPath"),
    BAD(U, "urn:bogus:schema:userName", "invalidPath"),
    BAD(U, CORE, "invalidPath"),
    BAD(U, ENT ":", "invalidPath"),
    BAD(U, "members[value eq \"x\"]", "invalidPath"),
    BAD(G, "emails", "invalidPath"),
    BAD(U, "emails[type eq \"work\"", "invalidPath"),
    BAD(U, "emails[type eq \"work]", "invalidPath"),
    BAD(U, "emails]", "invalidPath"),
    BAD(U, "emails[type eq \"work\"]x", "invalidPath"),
    BAD(U, "emails[type eq \"work\"]]", "invalidPath"),
    BAD(U, "emails[type eq \"work\"].bogus", "invalidPath"),
    BAD(U, "emails[type eq \"work\"].value.x", "invalidPath"),
    BAD(U, "emails[type eq \"work\"].", "invalidPath"),
    BAD(U, "emails[type eq \"work\"][value pr]", "invalidPath"),
    BAD(U, "title[value eq \"x\"]", "invalidPath"),
    BAD(U, "name.givenName[value eq \"x\"]", "invalidPath"),
    BAD(U, ENT "[value pr]", "invalidPath"),
    /* a bad filter inside valid brackets */
    BAD(U, "emails[]", "invalidFilter"),
    BAD(U, "emails[type eq]", "invalidFilter"),
    BAD(U, "emails[bogus eq \"x\"]", "invalidFilter"),
    BAD(U, "emails[emails.type eq \"x\"]", "invalidFilter"),
    BAD(U, "emails[type eq \"x\" and]", "invalidFilter"),
    BAD(U, "emails[primary eq \"yes\"]", "invalidFilter"),
    BAD(U, "emails[type eq \"\\ud800\"]", "invalidFilter"),
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

static void test_path_table(void **state)
{
    size_t i, nok = 0, nerr = 0;

    assert_true(NCASES >= 20);
    for (i = 0; i < NCASES; i++) {
        const struct pcase *tc = &cases[i];
        struct scim_path p;
        struct scim_err err;
        int rc = scim_path_parse(tc->rt, str_from_cstr(tc->path), &p, &err);

        if (tc->err) {
            if (rc == 0)
                fail_msg("case %zu: <%s> should fail with %s", i, tc->path, tc->err);
            assert_int_equal(rc, -EINVAL);
            if (strcmp(err.scim_type, tc->err) != 0)
                fail_msg("case %zu: <%s> failed with %s (%s), want %s", i, tc->path, err.scim_type,
                         err.detail, tc->err);
            assert_true(strlen(err.detail) > 0);
            assert_null(p.filter);
            assert_null(p.attr);
            nerr++;
            continue;
        }
        if (rc != 0)
            fail_msg("case %zu: <%s> failed: %s", i, tc->path, err.detail);
        assert_non_null(p.schema);
        assert_string_equal(p.schema->id, tc->schema);
        if (tc->attr)
            assert_string_equal(p.attr->name, tc->attr);
        else
            assert_null(p.attr);
        if (tc->sub)
            assert_string_equal(p.sub->name, tc->sub);
        else
            assert_null(p.sub);
        if (tc->yes) {
            json_t *yes = json_loads(tc->yes, 0, NULL), *no = json_loads(tc->no, 0, NULL);
            assert_non_null(yes);
            assert_non_null(no);
            assert_non_null(p.filter);
            assert_ptr_equal(p.filter->element.attr, p.attr);
            if (!scim_filter_match(p.filter, yes) || scim_filter_match(p.filter, no))
                fail_msg("case %zu: <%s> filter selects the wrong element", i, tc->path);
            json_decref(yes);
            json_decref(no);
        } else {
            assert_null(p.filter);
        }
        {
            struct scim_attr_ref r = scim_path_ref(&p);
            assert_ptr_equal(r.attr, p.attr);
            assert_ptr_equal(r.sub, p.sub);
            assert_ptr_equal(r.schema, p.schema);
        }
        scim_path_free(&p);
        assert_null(p.filter);
        nok++;
    }
    assert_true(nok >= 20 && nerr >= 20);
}

static void test_path_limits_and_views(void **state)
{
    char *s = xmalloc(SCIM_PATH_MAX_LEN + 2);
    struct scim_path p;
    struct scim_err err;

    /* a view: bytes past len are not part of the path */
    assert_int_equal(scim_path_parse(&scim_rt_user, (struct str){ "userName.junk", 8 }, &p, &err), 0);
    assert_string_equal(p.attr->name, "userName");
    assert_null(p.sub);
    scim_path_free(&p);
    /* an embedded NUL is not a character of an attribute name */
    assert_int_equal(scim_path_parse(&scim_rt_user, (struct str){ "userName\0", 9 }, &p, &err), -EINVAL);
    /* the length limit */
    memset(s, 'a', SCIM_PATH_MAX_LEN + 1);
    assert_int_equal(scim_path_parse(&scim_rt_user, (struct str){ s, SCIM_PATH_MAX_LEN + 1 }, &p, &err), -EINVAL);
    assert_string_equal(err.scim_type, "invalidPath");
    assert_non_null(strstr(err.detail, "longer"));
    /* a long but legal value filter */
    {
        size_t k = (size_t)sprintf(s, "emails[value eq \"");
        memset(s + k, 'x', 3000);
        k += 3000;
        k += (size_t)sprintf(s + k, "\"].type");
        assert_int_equal(scim_path_parse(&scim_rt_user, (struct str){ s, k }, &p, &err), 0);
        assert_int_equal(p.filter->nodes[p.filter->root].value.len, 3000);
        scim_path_free(&p);
    }
    /* error details name the problem */
    assert_int_equal(scim_path_parse(&scim_rt_user, STR_LIT("name.nickname"), &p, &err), -EINVAL);
    assert_non_null(strstr(err.detail, "unknown sub-attribute 'nickname' of 'name'"));
    assert_int_equal(scim_path_parse(&scim_rt_user, STR_LIT("emails[type eq \"w\"].nope"), &p, &err), -EINVAL);
    assert_non_null(strstr(err.detail, "nope"));
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_table),
        cmocka_unit_test(test_path_limits_and_views),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
