/*
 * Unit tests for scim/filter: a table of filters evaluated against one
 * sample user (parse errors included), then a differential test that runs
 * every valid filter through the SQL compiler against an in-memory SQLite
 * database holding six users (and groups) and demands exactly the ids that
 * scim_filter_match selects, then the injection and plan checks.
 *
 * JSON documents are written with ' for " to keep them readable; jdoc()
 * swaps them back before parsing.
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
#include <sqlite3.h>

#include "core/str.h"
#include "core/xmalloc.h"
#include "scim/filter.h"
#include "scim/schema_attrs.h"

/* ------------------------------------------------------------- fixtures */

/* A test extension with the types the standard schemas lack. */
static const struct scim_attr test_attrs[] = {
    { .name = "loginCount", .type = SCIM_TYPE_INTEGER },
    { .name = "score", .type = SCIM_TYPE_DECIMAL },
    { .name = "lastLogin", .type = SCIM_TYPE_DATETIME },
    { .name = "verified", .type = SCIM_TYPE_BOOLEAN },
    { .name = "tags", .type = SCIM_TYPE_STRING, .multi_valued = true, .case_exact = true },
    { .name = "motto", .type = SCIM_TYPE_STRING },
    { .name = "code", .type = SCIM_TYPE_STRING, .case_exact = true },
};
static const struct scim_schema test_schema = {
    .id = "urn:refuge:test:2.0:User", .name = "Test", .attrs = test_attrs,
    .nattrs = sizeof(test_attrs) / sizeof(test_attrs[0]),
};
static const struct scim_schema *const test_exts[] = { &scim_schema_enterprise_user, &test_schema };
static const struct scim_resource_type rt_test = {
    .name = "User", .endpoint = "/Users", .core = &scim_schema_user,
    .extensions = test_exts, .nextensions = 2,
};

#define ENT "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
#define TST "urn:refuge:test:2.0:User"

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

static const char *const user_docs[] = {
    /* u1: the sample user of the table tests (RFC 7643 §8.3, extended) */
    "{'schemas': ['urn:ietf:params:scim:schemas:core:2.0:User', '" ENT "', '" TST "'],"
    " 'id': '2819c223-7f76-453a-919d-413861904646', 'externalId': 'bjensen',"
    " 'userName': 'Bjensen@Example.com',"
    " 'name': {'formatted': 'Ms. Barbara J Jensen III', 'familyName': 'Jensen',"
    "          'givenName': 'Barbara', 'middleName': ''},"
    " 'displayName': 'Babs \\'Quote\\' Jensen\\\\Back', 'nickName': 'Zo\xc3\xab \xf0\x9f\x98\x80',"
    " 'title': 'Tour Guide', 'userType': 'Employee', 'preferredLanguage': 'en-US',"
    " 'profileUrl': 'https://login.example.com/bjensen', 'active': true,"
    " 'emails': [{'value': 'bjensen@example.com', 'type': 'work', 'primary': true},"
    "            {'value': 'babs@jensen.org', 'type': 'home'}],"
    " 'phoneNumbers': [{'value': '555-555-5555', 'type': 'work'}],"
    " 'addresses': [], 'ims': [{'value': '', 'type': 'aim'}],"
    " 'x509Certificates': [{'value': 'MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQAw'}],"
    " 'groups': [{'value': 'g1', 'display': 'Tour Guides'}],"
    " 'meta': {'resourceType': 'User', 'created': '2010-01-23T04:56:22Z',"
    "          'lastModified': '2011-05-13T04:42:34Z', 'version': 'W/\\'3694e05e9dff590\\''},"
    " '" ENT "': {'employeeNumber': '701984', 'costCenter': '4130',"
    "   'organization': 'Universal Studios', 'division': 'Theme Park',"
    "   'department': 'Tour Operations',"
    "   'manager': {'value': '26118915-6090-4610-87e4-49d8ca9f808d', 'displayName': 'John Smith'}},"
    " '" TST "': {'loginCount': 42, 'score': 3.5, 'lastLogin': '2024-03-01T12:00:00+01:00',"
    "   'verified': false, 'tags': ['alpha', 'Beta', 'x*y?z[1]'], 'motto': '100% _Real_',"
    "   'code': 'AbC'}}",
    /* u2 */
    "{'id': 'u2', 'externalId': 'jsmith', 'userName': 'JSmith',"
    " 'name': {'givenName': 'John', 'familyName': 'Smith'}, 'title': 'Manager', 'active': false,"
    " 'emails': [{'value': 'John.Smith@Example.com', 'type': 'work', 'primary': true}],"
    " 'groups': [{'value': 'g1'}, {'value': 'g2'}],"
    " 'meta': {'created': '2012-06-01T00:00:00Z', 'lastModified': '2013-01-01T10:00:00Z'},"
    " '" ENT "': {'employeeNumber': '1001', 'department': 'Tour Operations',"
    "   'manager': {'value': 'boss', 'displayName': 'Big Boss'}},"
    " '" TST "': {'loginCount': 7, 'score': 9.25, 'tags': ['Beta', 'gamma'], 'verified': true,"
    "   'motto': '1 and 0', 'code': 'abc'}}",
    /* u3: almost nothing */
    "{'id': 'u3', 'userName': 'minimal', 'active': true,"
    " 'meta': {'created': '2015-03-03T03:03:03Z', 'lastModified': '2015-03-03T03:03:03Z'}}",
    /* u4: same family, emails where home is @example.com */
    "{'id': 'u4', 'userName': 'kjensen', 'title': 'tour guide', 'userType': 'Contractor',"
    " 'name': {'familyName': 'jensen'}, 'active': true,"
    " 'emails': [{'value': 'x@jensen.org'}, {'value': 'Y@Example.com', 'type': 'home', 'primary': true}],"
    " 'addresses': [{'type': 'work', 'locality': 'Hollywood'}],"
    " 'meta': {'created': '2010-01-23T04:56:21Z', 'lastModified': '2011-05-13T04:42:35Z'},"
    " '" TST "': {'loginCount': 42, 'score': 3, 'lastLogin': '2024-03-01T11:00:00Z',"
    "   'tags': [], 'motto': '', 'code': 'ABC'}}",
    /* u5: wildcard characters in values */
    "{'id': 'u5', 'userName': 'per%cent_user', 'title': 'Tour%Guide', 'displayName': 'a_b',"
    " 'nickName': '', 'active': true,"
    " 'emails': [{'value': 'percent%@example.com', 'type': 'Work'}],"
    " 'meta': {'created': '2020-02-29T12:00:00Z', 'lastModified': '2020-02-29T12:00:00Z'},"
    " '" TST "': {'loginCount': 41, 'score': 3.5, 'lastLogin': '2024-03-01T11:00:00.000Z',"
    "   'tags': ['*', 'x'], 'motto': '10% off_', 'verified': false}}",
    /* u6 */
    "{'id': 'u6', 'userName': 'zed@EXAMPLE.com', 'externalId': 'Z', 'active': true,"
    " 'ims': [{'value': 'zed', 'type': 'xmpp'}],"
    " 'meta': {'created': '2030-01-01T00:00:00Z', 'lastModified': '2030-01-01T00:00:01Z'},"
    " '" ENT "': {'employeeNumber': '', 'manager': {}}}",
};
#define NUSERS (sizeof(user_docs) / sizeof(user_docs[0]))

enum expect { NOMATCH = 0, MATCH = 1, ERR = 2 };

struct fcase {
    const char *filter;
    enum expect want;      /* against user u1 */
};

static const struct fcase cases[] = {
    /* every comparison operator, caseExact=false strings */
    { "userName eq \"bjensen@example.com\"", MATCH },
    { "userName eq \"nobody\"", NOMATCH },
    { "userName ne \"nobody\"", MATCH },
    { "userName ne \"BJENSEN@example.com\"", NOMATCH },
    { "title co \"Guide\"", MATCH },
    { "title co \"guide\"", MATCH },
    { "title co \"xyz\"", NOMATCH },
    { "title sw \"tour\"", MATCH },
    { "title sw \"Guide\"", NOMATCH },
    { "title ew \"GUIDE\"", MATCH },
    { "title ew \"Tour\"", NOMATCH },
    { "title gt \"Tour\"", MATCH },
    { "title ge \"tour guide\"", MATCH },
    { "title lt \"Tour\"", NOMATCH },
    { "title le \"TOUR GUIDE\"", MATCH },
    { "title lt \"tour guidf\"", MATCH },
    { "title pr", MATCH },
    { "timezone pr", NOMATCH },
    { "name.middleName pr", NOMATCH },                       /* "" is not a value */
    { "name.middleName eq \"\"", NOMATCH },
    { "name.middleName lt \"a\"", NOMATCH },
    { "title co \"\"", MATCH },
    { "nickName sw \"\"", MATCH },
    /* caseExact attributes */
    { "id eq \"2819c223-7f76-453a-919d-413861904646\"", MATCH },
    { "id eq \"2819C223-7F76-453A-919D-413861904646\"", NOMATCH },
    { "externalId eq \"BJENSEN\"", NOMATCH },
    { "externalId sw \"bjen\"", MATCH },
    { "urn:refuge:test:2.0:User:code eq \"AbC\"", MATCH },
    { "urn:refuge:test:2.0:User:code eq \"abc\"", NOMATCH },
    { "urn:refuge:test:2.0:User:code co \"bC\"", MATCH },
    { "urn:refuge:test:2.0:User:code gt \"AbB\"", MATCH },
    /* precedence: not > and > or, and parentheses */
    { "title pr or userName eq \"x\" and active eq false", MATCH },
    { "not (userName pr) and timezone pr", NOMATCH },
    { "not (timezone pr) and userName pr", MATCH },
    { "(title pr or userName eq \"x\") and active eq false", NOMATCH },
    { "active eq false or not (title pr) and timezone pr", NOMATCH },
    { "userName eq \"x\" or userName eq \"y\" or title pr", MATCH },
    { "userName eq \"x\" or (userName eq \"y\" or (title pr and (active eq true)))", MATCH },
    { "not(title pr)", NOMATCH },
    { "not (not (title pr))", MATCH },
    { "  ( ( title pr ) )\t", MATCH },
    { "title pr and not (title co \"Guide\" and userType eq \"Employee\")", NOMATCH },
    /* JSON string escapes */
    { "displayName eq \"Babs \\\"Quote\\\" Jensen\\\\Back\"", MATCH },
    { "profileUrl co \"\\/bjensen\"", MATCH },
    { "nickName eq \"Zo\\u00EB \\uD83D\\uDE00\"", MATCH },
    { "nickName eq \"Zo\xc3\xab \xf0\x9f\x98\x80\"", MATCH },
    { "nickName eq \"zo\\u00cb \\ud83d\\ude00\"", NOMATCH },  /* case folding is ASCII only */
    { "title eq \"\\u0054our Guide\"", MATCH },
    { "title eq \"Tour\\tGuide\"", NOMATCH },
    { "title ne \"\\b\\f\\n\\r\"", MATCH },
    /* case-insensitive keywords and attribute names */
    { "USERNAME EQ \"bjensen@example.com\"", MATCH },
    { "Title Co \"GUIDE\" AnD ACTIVE eQ true", MATCH },
    { "NOT (title pr) OR Name.FamilyName PR", MATCH },
    { "EMAILS[TYPE EQ \"work\"]", MATCH },
    /* schema URN prefixes */
    { "urn:ietf:params:scim:schemas:core:2.0:User:userName sw \"bjensen\"", MATCH },
    { "urn:ietf:params:scim:schemas:core:2.0:User:name.givenName eq \"Barbara\"", MATCH },
    { "urn:ietf:params:scim:schemas:core:2.0:User:id pr", MATCH },
    { ENT ":employeeNumber eq \"701984\"", MATCH },
    { ENT ":manager.displayName co \"smith\"", MATCH },
    { ENT ":manager eq \"26118915-6090-4610-87e4-49d8ca9f808d\"", MATCH },
    { "URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:department ew \"operations\"", MATCH },
    { ENT ":manager[displayName sw \"John\"]", MATCH },
    { ENT ":costCenter eq \"4131\"", NOMATCH },
    /* complex attribute value filters: one element satisfies all terms */
    { "emails[type eq \"work\" and value co \"@example.com\"]", MATCH },
    { "emails[type eq \"home\" and value co \"@example.com\"]", NOMATCH },
    { "emails[type eq \"work\"] and emails[value ew \".org\"]", MATCH },
    { "emails[not (type eq \"work\")]", MATCH },
    { "emails[primary eq true]", MATCH },
    { "emails[type eq \"home\" and primary eq true]", NOMATCH },
    { "emails[type eq \"home\" or primary eq true] and not (emails[type eq \"other\"])", MATCH },
    { "emails co \"JENSEN.org\"", MATCH },
    { "emails.type eq \"HOME\"", MATCH },
    { "emails[type ne \"work\"]", MATCH },
    { "emails.type lt \"a\"", NOMATCH },
    { "emails[type eq \"\"]", NOMATCH },
    { "emails.value eq \"bjensen@example.com\"", MATCH },
    { "emails.value ne \"bjensen@example.com\"", MATCH },    /* the home address differs */
    { "phoneNumbers[type eq \"work\" and value sw \"555\"]", MATCH },
    { "name[givenName sw \"barb\" and familyName eq \"jensen\"]", MATCH },
    { "name[givenName sw \"john\"]", NOMATCH },
    { "meta[created lt \"2011-01-01T00:00:00Z\" and lastModified gt \"2011-01-01T00:00:00Z\"]", MATCH },
    { "groups.value eq \"g1\"", MATCH },
    { "groups[value eq \"g1\"]", MATCH },
    { "groups.value eq \"G1\"", NOMATCH },                    /* ids are caseExact */
    /* pr on complex and multi-valued attributes */
    { "emails pr", MATCH },
    { "addresses pr", NOMATCH },                               /* [] */
    { "photos pr", NOMATCH },                                  /* absent */
    { "name pr", MATCH },
    { "ims pr", MATCH },
    { "ims.value pr", NOMATCH },                               /* only "" */
    { "ims.type pr", MATCH },
    { ENT ":manager pr", MATCH },
    { ENT ":manager.$ref pr", NOMATCH },
    { "emails.primary pr", MATCH },
    { "urn:refuge:test:2.0:User:tags pr", MATCH },
    /* null is the unassigned state */
    { "timezone eq null", MATCH },
    { "title eq null", NOMATCH },
    { "title ne null", MATCH },
    { "photos eq null", MATCH },
    { "name eq null", NOMATCH },
    { "name ne null", MATCH },
    { "x509Certificates.value eq \"MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQAw\"", MATCH },
    /* dates compare as dates */
    { "meta.created gt \"2010-01-01T00:00:00Z\"", MATCH },
    { "meta.created eq \"2010-01-23T05:56:22+01:00\"", MATCH },
    { "meta.created eq \"2010-01-23T04:56:22.000Z\"", MATCH },
    { "meta.created eq \"2010-01-23T04:56:22.4Z\"", NOMATCH },
    { "meta.lastModified lt \"2011-05-13T04:42:34.001Z\"", MATCH },
    { "meta.lastModified gt \"2011-05-13T04:42:34Z\"", NOMATCH },
    { "meta.lastModified ge \"2011-05-13T04:42:34Z\"", MATCH },
    { "meta.lastModified gt \"2011-05-13T06:00:00+02:00\"", MATCH },   /* as strings: false */
    { "meta.created le \"2010-01-22T23:56:22-05:00\"", MATCH },
    { TST ":lastLogin eq \"2024-03-01T11:00:00Z\"", MATCH },
    { TST ":lastLogin lt \"2024-03-01T11:00:00.001z\"", MATCH },
    /* numbers and booleans */
    { TST ":loginCount gt 41", MATCH },
    { TST ":loginCount eq 42.0", MATCH },
    { TST ":loginCount le 4.2e1", MATCH },
    { TST ":loginCount lt -1", NOMATCH },
    { TST ":score ge 3.5", MATCH },
    { TST ":score lt 3.5E0", NOMATCH },
    { TST ":score gt -0.5", MATCH },
    { TST ":score ne 3", MATCH },
    { "active eq true", MATCH },
    { "active ne true", NOMATCH },
    { TST ":verified eq false", MATCH },
    { TST ":verified ne false", NOMATCH },
    /* multi-valued simple, wildcard characters taken literally */
    { TST ":tags eq \"beta\"", NOMATCH },
    { TST ":tags eq \"Beta\"", MATCH },
    { TST ":tags co \"*y?z[\"", MATCH },
    { TST ":tags co \"y*z\"", NOMATCH },
    { TST ":tags sw \"x*\"", MATCH },
    { TST ":motto co \"0% _r\"", MATCH },
    { TST ":motto co \"1%0\"", NOMATCH },
    { TST ":motto ew \"l_\"", MATCH },
    { TST ":motto sw \"_\"", NOMATCH },
    /* invalid filters */
    { "", ERR },
    { "   ", ERR },
    { "userName eq \"x\" )", ERR },
    { "(userName eq \"x\"", ERR },
    { "((title pr)", ERR },
    { "userName eq", ERR },
    { "userName eq )", ERR },
    { "userName", ERR },
    { "userName xx \"a\"", ERR },
    { "userName equals \"a\"", ERR },
    { "userName eq \"a\" extra", ERR },
    { "userName eq \"a\" and", ERR },
    { "and userName pr", ERR },
    { "not userName pr", ERR },
    { "userName eq \"a\\q\"", ERR },
    { "userName eq \"a\\u12\"", ERR },
    { "userName eq \"\\ud800\"", ERR },
    { "userName eq \"\\uDE00\\uD83D\"", ERR },
    { "userName eq \"\\ud83dx\"", ERR },
    { "userName eq \"\\u0000\"", ERR },
    { "userName eq \"abc", ERR },
    { "userName eq \"a\tb\"", ERR },                          /* raw control character */
    { "userName eq \"\xc3\x28\"", ERR },                      /* invalid UTF-8 */
    { "userName eq \"\xed\xa0\x80\"", ERR },                  /* UTF-8 surrogate */
    { "userName eq 'abc'", ERR },
    { "userName eq abc", ERR },
    { "userName eq 5", ERR },                                  /* type mismatch */
    { "title eq True", ERR },
    { TST ":loginCount eq 01", ERR },
    { TST ":loginCount eq 1.", ERR },
    { TST ":loginCount eq 1e999", ERR },
    { TST ":loginCount eq \"42\"", ERR },
    { TST ":score co 3", ERR },
    { "active gt true", ERR },
    { "active eq \"true\"", ERR },
    { "active co \"t\"", ERR },
    { "x509Certificates.value gt \"A\"", ERR },                /* ordering on binary */
    { "meta.created gt \"yesterday\"", ERR },
    { "meta.created gt \"2010-02-30T00:00:00Z\"", ERR },
    { "meta.created eq \"2010-01-23T24:00:00Z\"", ERR },
    { "meta.created sw \"2010\"", ERR },
    { "title gt null", ERR },
    { "unknownAttr eq \"x\"", ERR },
    { "password pr", ERR },                                    /* returned: never */
    { "password eq \"secret\"", ERR },
    { "name.unknown eq \"x\"", ERR },
    { "userName.x eq \"a\"", ERR },
    { "name.givenName.x eq \"a\"", ERR },
    { "employeeNumber eq \"701984\"", ERR },                  /* extension needs its URN */
    { "urn:bogus:schema:userName eq \"x\"", ERR },
    { "name eq \"x\"", ERR },                                  /* complex without value */
    { "emails[type eq \"work\"", ERR },
    { "emails[type eq \"work\"]]", ERR },
    { "emails[emails[type eq \"work\"]]", ERR },
    { "emails[value.x eq \"a\"]", ERR },
    { "emails[unknown eq \"a\"]", ERR },
    { "emails[type eq \"work\"].value eq \"a\"", ERR },
    { "title[value eq \"a\"]", ERR },
    { "name.givenName[value eq \"a\"]", ERR },
    { "title eq \"a\" or ()", ERR },
    { "()", ERR },
    { "title pr pr", ERR },
    { "5 eq 5", ERR },
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

/* ------------------------------------------------------ table of filters */

static void test_filter_table(void **state)
{
    json_t *u1 = jdoc(user_docs[0]);
    size_t i, nmatch = 0, nnomatch = 0, nerr = 0;

    assert_true(NCASES >= 50);
    for (i = 0; i < NCASES; i++) {
        const struct fcase *tc = &cases[i];
        struct scim_filter *f = (void *)1;
        struct scim_err err;
        int rc = scim_filter_parse(&rt_test, str_from_cstr(tc->filter), NULL, &f, &err);

        if (tc->want == ERR) {
            if (rc == 0)
                fail_msg("case %zu: expected an error for <%s>", i, tc->filter);
            assert_int_equal(rc, -EINVAL);
            assert_null(f);
            assert_string_equal(err.scim_type, "invalidFilter");
            assert_true(strlen(err.detail) > 0);
            nerr++;
            continue;
        }
        if (rc != 0)
            fail_msg("case %zu: <%s> failed: %s", i, tc->filter, err.detail);
        if (scim_filter_match(f, u1) != (tc->want == MATCH))
            fail_msg("case %zu: <%s> should %smatch", i, tc->filter, tc->want == MATCH ? "" : "not ");
        tc->want == MATCH ? nmatch++ : nnomatch++;
        scim_filter_free(f);
    }
    assert_true(nmatch >= 20 && nnomatch >= 20 && nerr >= 20);
    json_decref(u1);
}

static void test_error_details(void **state)
{
    struct scim_filter *f;
    struct scim_err err;

    assert_int_equal(scim_filter_parse(&scim_rt_user, STR_LIT("nosuch eq \"x\""), NULL, &f, &err), -EINVAL);
    assert_non_null(strstr(err.detail, "unknown attribute 'nosuch'"));
    assert_int_equal(scim_filter_parse(&scim_rt_user, STR_LIT("userName zz \"x\""), NULL, &f, &err), -EINVAL);
    assert_non_null(strstr(err.detail, "unknown operator 'zz'"));
    assert_non_null(strstr(err.detail, "offset 9"));
    assert_int_equal(scim_filter_parse(&scim_rt_user, STR_LIT("active gt true"), NULL, &f, &err), -EINVAL);
    assert_non_null(strstr(err.detail, "boolean"));
    /* a detail never carries raw input bytes that are not printable ASCII */
    assert_int_equal(scim_filter_parse(&scim_rt_user, STR_LIT("n\xff\x01sch eq \"x\""), NULL, &f, &err),
                     -EINVAL);
    for (const char *p = err.detail; *p; p++)
        assert_true(*p >= 0x20 && *p < 0x7f);
    /* the Group resource type knows members, not emails */
    assert_int_equal(scim_filter_parse(&scim_rt_group, STR_LIT("emails pr"), NULL, &f, &err), -EINVAL);
    assert_int_equal(scim_filter_parse(&scim_rt_group, STR_LIT("members[value eq \"a\"]"), NULL, &f, &err), 0);
    scim_filter_free(f);
    /* the text is a view: bytes after len are not read */
    assert_int_equal(scim_filter_parse(&scim_rt_user, (struct str){ "title prXXXX", 8 }, NULL, &f, &err), 0);
    scim_filter_free(f);
    /* an embedded NUL is refused */
    assert_int_equal(scim_filter_parse(&scim_rt_user, (struct str){ "title pr\0", 9 }, NULL, &f, &err), -EINVAL);
}

static void test_limits(void **state)
{
    char *s = xmalloc(SCIM_FILTER_MAX_LEN + 64);
    struct scim_filter *f;
    struct scim_err err;
    json_t *u1 = jdoc(user_docs[0]);
    size_t i, n;

    /* 32 levels of parentheses are fine, 33 are not */
    for (n = 32; n <= 33; n++) {
        size_t k = 0;
        for (i = 0; i < n; i++)
            s[k++] = '(';
        memcpy(s + k, "title pr", 8);
        k += 8;
        for (i = 0; i < n; i++)
            s[k++] = ')';
        if (n == 32) {
            assert_int_equal(scim_filter_parse(&scim_rt_user, (struct str){ s, k }, NULL, &f, &err), 0);
            assert_true(scim_filter_match(f, u1));
            scim_filter_free(f);
        } else {
            assert_int_equal(scim_filter_parse(&scim_rt_user, (struct str){ s, k }, NULL, &f, &err), -EINVAL);
            assert_non_null(strstr(err.detail, "deeper"));
        }
    }
    /* not ( counts like ( and [ counts too */
    {
        size_t k = 0;
        for (i = 0; i < 31; i++)
            k += (size_t)sprintf(s + k, "not (");
        k += (size_t)sprintf(s + k, "emails[type pr]");
        for (i = 0; i < 31; i++)
            s[k++] = ')';
        assert_int_equal(scim_filter_parse(&scim_rt_user, (struct str){ s, k }, NULL, &f, &err), 0);
        assert_false(scim_filter_match(f, u1));       /* 31 nots */
        scim_filter_free(f);
        k = 0;
        for (i = 0; i < 32; i++)
            k += (size_t)sprintf(s + k, "not (");
        k += (size_t)sprintf(s + k, "emails[type pr]");
        for (i = 0; i < 32; i++)
            s[k++] = ')';
        assert_int_equal(scim_filter_parse(&scim_rt_user, (struct str){ s, k }, NULL, &f, &err), -EINVAL);
    }
    /* length: exactly the limit parses, one more byte does not */
    memset(s, ' ', SCIM_FILTER_MAX_LEN + 1);
    memcpy(s, "title pr", 8);
    assert_int_equal(scim_filter_parse(&scim_rt_user, (struct str){ s, SCIM_FILTER_MAX_LEN }, NULL, &f, &err), 0);
    scim_filter_free(f);
    assert_int_equal(scim_filter_parse(&scim_rt_user, (struct str){ s, SCIM_FILTER_MAX_LEN + 1 }, NULL, &f, &err),
                     -EINVAL);
    assert_non_null(strstr(err.detail, "longer"));
    /* nodes: 128 "title pr" joined by or = 255 nodes; 129 = 257 */
    for (n = 128; n <= 129; n++) {
        size_t k = 0;
        for (i = 0; i < n; i++)
            k += (size_t)sprintf(s + k, i ? " or title pr" : "title pr");
        assert_int_equal(scim_filter_parse(&scim_rt_user, (struct str){ s, k }, NULL, &f, &err),
                         n == 128 ? 0 : -EINVAL);
        if (n == 128) {
            assert_int_equal(f->nnodes, 255);
            scim_filter_free(f);
        } else {
            assert_non_null(strstr(err.detail, "terms"));
        }
    }
    /* caller-chosen limits */
    {
        struct scim_filter_limits lim = { .max_len = 24, .max_depth = 1, .max_nodes = 3 };
        assert_int_equal(scim_filter_parse(&scim_rt_user, STR_LIT("(title pr)"), &lim, &f, &err), 0);
        scim_filter_free(f);
        assert_int_equal(scim_filter_parse(&scim_rt_user, STR_LIT("((title pr))"), &lim, &f, &err), -EINVAL);
        assert_int_equal(scim_filter_parse(&scim_rt_user, STR_LIT("title pr or id pr"), &lim, &f, &err), 0);
        scim_filter_free(f);
        assert_int_equal(scim_filter_parse(&scim_rt_user, STR_LIT("id pr or id pr or id pr"), &lim, &f, &err),
                         -EINVAL);
        assert_non_null(strstr(err.detail, "more than 3 terms"));
        assert_int_equal(scim_filter_parse(&scim_rt_user, STR_LIT("title pr or  id pr        "), &lim, &f, &err),
                         -EINVAL);
        assert_non_null(strstr(err.detail, "longer than 24"));
    }
    json_decref(u1);
    free(s);
}

static void test_tree_shape(void **state)
{
    struct scim_filter *f;
    struct scim_err err;
    const struct scim_filter_node *n;

    /* a or b and c  ==  a or (b and c) */
    assert_int_equal(scim_filter_parse(&scim_rt_user, STR_LIT("title pr or id pr and active eq true"),
                                       NULL, &f, &err), 0);
    n = &f->nodes[f->root];
    assert_int_equal(n->op, SCIM_FOP_OR);
    assert_int_equal(f->nodes[n->left].op, SCIM_FOP_PR);
    assert_string_equal(f->nodes[n->left].ref.attr->name, "title");
    assert_int_equal(f->nodes[n->right].op, SCIM_FOP_AND);
    assert_int_equal(f->nodes[f->nodes[n->right].right].op, SCIM_FOP_EQ);
    assert_true(f->nodes[f->nodes[n->right].right].value.b);
    scim_filter_free(f);
    /* eq null becomes not pr */
    assert_int_equal(scim_filter_parse(&scim_rt_user, STR_LIT("title eq null"), NULL, &f, &err), 0);
    n = &f->nodes[f->root];
    assert_int_equal(n->op, SCIM_FOP_NOT);
    assert_int_equal(f->nodes[n->left].op, SCIM_FOP_PR);
    scim_filter_free(f);
    /* names resolve to the canonical attributes; complex compares go to .value */
    assert_int_equal(scim_filter_parse(&scim_rt_user, STR_LIT("EMAILS co \"x\""), NULL, &f, &err), 0);
    n = &f->nodes[f->root];
    assert_string_equal(n->ref.attr->name, "emails");
    assert_string_equal(n->ref.sub->name, "value");
    assert_string_equal(n->value.s, "x");
    scim_filter_free(f);
    assert_int_equal(scim_filter_parse(&scim_rt_user, STR_LIT(ENT ":MANAGER.value pr"), NULL, &f, &err), 0);
    n = &f->nodes[f->root];
    assert_ptr_equal(n->ref.schema, &scim_schema_enterprise_user);
    assert_string_equal(n->ref.attr->name, "manager");
    scim_filter_free(f);
    assert_int_equal(scim_filter_parse(&scim_rt_user, STR_LIT("id pr"), NULL, &f, &err), 0);
    assert_ptr_equal(f->nodes[f->root].ref.schema, &scim_schema_common);
    scim_filter_free(f);
}

static void test_element_filter(void **state)
{
    struct scim_attr_ref ref = { &scim_schema_user, NULL, NULL };
    json_t *work = jdoc("{'value': 'a@example.com', 'type': 'work', 'primary': true}");
    json_t *home = jdoc("{'value': 'b@example.org', 'type': 'Home'}");
    struct scim_filter *f;
    struct scim_err err;
    struct scim_sql sql;
    struct scim_sql_opts o = { .first_param = 1 };

    ref.attr = scim_attr_find(scim_schema_user.attrs, scim_schema_user.nattrs, STR_LIT("emails"));
    assert_non_null(ref.attr);
    assert_int_equal(scim_filter_parse_element(&scim_rt_user, &ref, STR_LIT("type eq \"home\" or primary eq true"),
                                               NULL, &f, &err), 0);
    assert_true(scim_filter_match(f, work));
    assert_true(scim_filter_match(f, home));
    assert_int_equal(scim_filter_to_sql(f, &o, &sql, &err), -EINVAL);
    scim_filter_free(f);
    assert_int_equal(scim_filter_parse_element(&scim_rt_user, &ref, STR_LIT("value ew \".org\" and not (type eq \"work\")"),
                                               NULL, &f, &err), 0);
    assert_false(scim_filter_match(f, work));
    assert_true(scim_filter_match(f, home));
    scim_filter_free(f);
    /* names are sub-attributes only */
    assert_int_equal(scim_filter_parse_element(&scim_rt_user, &ref, STR_LIT("emails.type eq \"x\""), NULL, &f, &err),
                     -EINVAL);
    assert_int_equal(scim_filter_parse_element(&scim_rt_user, &ref, STR_LIT("userName eq \"x\""), NULL, &f, &err),
                     -EINVAL);
    /* the parent must be complex */
    ref.attr = scim_attr_find(scim_schema_user.attrs, scim_schema_user.nattrs, STR_LIT("title"));
    assert_int_equal(scim_filter_parse_element(&scim_rt_user, &ref, STR_LIT("value pr"), NULL, &f, &err), -EINVAL);
    json_decref(work);
    json_decref(home);
}

static void test_datetime_parse(void **state)
{
    int64_t ms;

    assert_int_equal(scim_datetime_parse(STR_LIT("1970-01-01T00:00:00Z"), &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(scim_datetime_parse(STR_LIT("2011-05-13T04:42:34Z"), &ms), 0);
    assert_int_equal(ms, 1305261754000LL);
    assert_int_equal(scim_datetime_parse(STR_LIT("2011-05-13T06:42:34.25+02:00"), &ms), 0);
    assert_int_equal(ms, 1305261754250LL);
    assert_int_equal(scim_datetime_parse(STR_LIT("1969-12-31T23:59:59.9996-00:00"), &ms), 0);
    assert_int_equal(ms, 0);                            /* rounded to the millisecond */
    assert_int_equal(scim_datetime_parse(STR_LIT("2000-02-29T00:00:00"), &ms), 0);   /* no offset: UTC */
    assert_int_equal(ms, 951782400000LL);
    assert_int_equal(scim_datetime_parse(STR_LIT("1900-02-29T00:00:00Z"), &ms), -EINVAL);
    assert_int_equal(scim_datetime_parse(STR_LIT("2011-13-01T00:00:00Z"), &ms), -EINVAL);
    assert_int_equal(scim_datetime_parse(STR_LIT("2011-05-13 04:42:34Z"), &ms), -EINVAL);
    assert_int_equal(scim_datetime_parse(STR_LIT("2011-05-13T04:42:34.Z"), &ms), -EINVAL);
    assert_int_equal(scim_datetime_parse(STR_LIT("2011-05-13T04:42:34+0200"), &ms), -EINVAL);
    assert_int_equal(scim_datetime_parse(STR_LIT("2011-05-13T04:42:34Zjunk"), &ms), -EINVAL);
    assert_int_equal(scim_datetime_parse(STR_LIT("2011-05-13"), &ms), -EINVAL);
    assert_int_equal(scim_datetime_parse(STR_LIT("2011-05-13T04:42:60Z"), &ms), -EINVAL);
}

/* --------------------------------------------------------------- the SQL */

/* The store's tables, as in store/schema.c. */
static const char ddl[] =
    "CREATE TABLE users (tenant TEXT NOT NULL, id TEXT NOT NULL, user_name TEXT NOT NULL,"
    " user_name_lc TEXT NOT NULL, external_id TEXT, active INTEGER NOT NULL DEFAULT 1,"
    " password_hash TEXT, data TEXT NOT NULL DEFAULT '{}', version INTEGER NOT NULL DEFAULT 1,"
    " created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
    " PRIMARY KEY (tenant, id), UNIQUE (tenant, user_name_lc));"
    "CREATE INDEX users_external_id ON users (tenant, external_id);"
    "CREATE TABLE user_emails (tenant TEXT NOT NULL, user_id TEXT NOT NULL, value_lc TEXT NOT NULL,"
    " type TEXT NOT NULL DEFAULT '', PRIMARY KEY (tenant, user_id, value_lc));"
    "CREATE INDEX user_emails_value ON user_emails (tenant, value_lc);"
    "CREATE TABLE groups (tenant TEXT NOT NULL, id TEXT NOT NULL, display_name TEXT NOT NULL,"
    " display_name_lc TEXT NOT NULL, external_id TEXT, data TEXT NOT NULL DEFAULT '{}',"
    " version INTEGER NOT NULL DEFAULT 1, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
    " PRIMARY KEY (tenant, id), UNIQUE (tenant, display_name_lc));"
    "CREATE TABLE group_members (tenant TEXT NOT NULL, group_id TEXT NOT NULL, member_id TEXT NOT NULL,"
    " member_type TEXT NOT NULL DEFAULT 'User', PRIMARY KEY (tenant, group_id, member_id));"
    "CREATE INDEX group_members_member ON group_members (tenant, member_id);";

static const char *const group_docs[] = {
    "{'id': 'g1', 'displayName': 'Tour Guides', 'externalId': 'TG',"
    " 'members': [{'value': '2819c223-7f76-453a-919d-413861904646', 'type': 'User', 'display': 'Babs'},"
    "             {'value': 'u2', 'type': 'User'}, {'value': 'g2', 'type': 'Group', 'display': 'Managers'}],"
    " 'meta': {'created': '2019-01-01T00:00:00Z', 'lastModified': '2019-01-02T00:00:00Z'}}",
    "{'id': 'g2', 'displayName': 'Managers',"
    " 'members': [{'value': 'u2', 'type': 'User', 'display': 'John'}],"
    " 'meta': {'created': '2020-01-01T00:00:00Z', 'lastModified': '2021-01-02T00:00:00Z'}}",
    ("{'id': 'g3', 'displayName': 'Empty', 'members': [],"
     " 'meta': {'created': '2021-01-01T00:00:00Z', 'lastModified': '2021-01-01T00:00:00Z'}}"),
};
#define NGROUPS (sizeof(group_docs) / sizeof(group_docs[0]))

struct db_fixture {
    sqlite3 *db;
    json_t *users[NUSERS];
    json_t *groups[NGROUPS];
};

static char *ascii_lower(const char *s)
{
    char *d = xstrdup(s ? s : "");
    for (char *p = d; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p + 32);
    return d;
}

static int64_t meta_seconds(const json_t *doc, const char *key)
{
    const char *v = json_string_value(json_object_get(json_object_get(doc, "meta"), key));
    int64_t ms;

    assert_non_null(v);
    assert_int_equal(scim_datetime_parse(str_from_cstr(v), &ms), 0);
    return ms / 1000;
}

static void exec(sqlite3 *db, const char *sql, const char *const *texts, size_t ntexts, const int64_t *ints,
                 size_t nints)
{
    sqlite3_stmt *st;
    size_t i;

    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("prepare %s: %s", sql, sqlite3_errmsg(db));
    for (i = 0; i < ntexts; i++)
        sqlite3_bind_text(st, (int)i + 1, texts[i], -1, SQLITE_TRANSIENT);
    for (i = 0; i < nints; i++)
        sqlite3_bind_int64(st, (int)(ntexts + i) + 1, ints[i]);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
}

/* Inserts one user row (and its email rows) for tenant, the way the store keeps them. */
static void insert_user(sqlite3 *db, const char *tenant, const json_t *doc)
{
    const char *id = json_string_value(json_object_get(doc, "id"));
    const char *un = json_string_value(json_object_get(doc, "userName"));
    json_t *ext = json_object_get(doc, "externalId");
    char *lc = ascii_lower(un), *data = json_dumps(doc, JSON_COMPACT);
    const char *texts[] = { tenant, id, un, lc, ext ? json_string_value(ext) : NULL, data };
    int64_t ints[] = { json_is_true(json_object_get(doc, "active")), meta_seconds(doc, "created"),
                       meta_seconds(doc, "lastModified") };
    json_t *emails = json_object_get(doc, "emails"), *e;
    size_t i;

    exec(db, "INSERT INTO users (tenant, id, user_name, user_name_lc, external_id, data, active,"
             " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", texts, 6, ints, 3);
    json_array_foreach(emails, i, e) {
        char *vlc = ascii_lower(json_string_value(json_object_get(e, "value")));
        const char *type = json_string_value(json_object_get(e, "type"));
        const char *et[] = { tenant, id, vlc, type ? type : "" };
        exec(db, "INSERT INTO user_emails (tenant, user_id, value_lc, type) VALUES (?, ?, ?, ?)", et, 4, NULL, 0);
        free(vlc);
    }
    free(lc);
    free(data);
}

static void insert_group(sqlite3 *db, const char *tenant, const json_t *doc)
{
    const char *id = json_string_value(json_object_get(doc, "id"));
    const char *dn = json_string_value(json_object_get(doc, "displayName"));
    json_t *ext = json_object_get(doc, "externalId"), *m;
    char *lc = ascii_lower(dn), *data = json_dumps(doc, JSON_COMPACT);
    const char *texts[] = { tenant, id, dn, lc, ext ? json_string_value(ext) : NULL, data };
    int64_t ints[] = { meta_seconds(doc, "created"), meta_seconds(doc, "lastModified") };
    size_t i;

    exec(db, "INSERT INTO groups (tenant, id, display_name, display_name_lc, external_id, data,"
             " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", texts, 6, ints, 2);
    json_array_foreach(json_object_get(doc, "members"), i, m) {
        const char *mt[] = { tenant, id, json_string_value(json_object_get(m, "value")),
                             json_string_value(json_object_get(m, "type")) };
        exec(db, "INSERT INTO group_members (tenant, group_id, member_id, member_type) VALUES (?, ?, ?, ?)",
             mt, 4, NULL, 0);
    }
    free(lc);
    free(data);
}

static int db_setup(void **state)
{
    struct db_fixture *fx = xcalloc(1, sizeof(*fx));
    size_t i;

    assert_int_equal(sqlite3_open(":memory:", &fx->db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(fx->db, ddl, NULL, NULL, NULL), SQLITE_OK);
    for (i = 0; i < NUSERS; i++) {
        fx->users[i] = jdoc(user_docs[i]);
        insert_user(fx->db, "acme", fx->users[i]);
    }
    for (i = 0; i < NGROUPS; i++) {
        fx->groups[i] = jdoc(group_docs[i]);
        insert_group(fx->db, "acme", fx->groups[i]);
    }
    /* Another tenant reuses ids with other data: nothing of it may leak
     * into tenant acme's results through the side tables. */
    {
        json_t *ghost = jdoc("{'id': 'u3', 'userName': 'ghost', 'active': true,"
                             " 'emails': [{'value': 'ghost@example.net', 'type': 'work'}],"
                             " 'meta': {'created': '2015-03-03T03:03:03Z', 'lastModified': '2015-03-03T03:03:03Z'}}");
        json_t *gg = jdoc("{'id': 'g3', 'displayName': 'Ghosts', 'members': [{'value': 'u3', 'type': 'User'}],"
                          " 'meta': {'created': '2021-01-01T00:00:00Z', 'lastModified': '2021-01-01T00:00:00Z'}}");
        insert_user(fx->db, "other", ghost);
        insert_group(fx->db, "other", gg);
        json_decref(ghost);
        json_decref(gg);
    }
    *state = fx;
    return 0;
}

static int db_teardown(void **state)
{
    struct db_fixture *fx = *state;
    size_t i;

    for (i = 0; i < NUSERS; i++)
        json_decref(fx->users[i]);
    for (i = 0; i < NGROUPS; i++)
        json_decref(fx->groups[i]);
    sqlite3_close(fx->db);
    free(fx);
    return 0;
}

static void bind_params(sqlite3_stmt *st, const struct scim_sql *sql, int first)
{
    size_t k;

    for (k = 0; k < sql->nparams; k++) {
        const struct scim_sql_param *p = &sql->params[k];
        char name[16];
        int idx;

        snprintf(name, sizeof(name), "$%d", first + (int)k);
        idx = sqlite3_bind_parameter_index(st, name);
        if (idx == 0)
            fail_msg("parameter %s not in the SQL", name);
        switch (p->type) {
        case SCIM_SQL_TEXT: sqlite3_bind_text(st, idx, p->text, (int)p->len, SQLITE_TRANSIENT); break;
        case SCIM_SQL_INT: sqlite3_bind_int64(st, idx, p->i); break;
        case SCIM_SQL_DOUBLE: sqlite3_bind_double(st, idx, p->d); break;
        case SCIM_SQL_NULL: sqlite3_bind_null(st, idx); break;
        }
    }
}

/* The ids the SQL selects for tenant acme, sorted, joined by ','. */
static char *sql_ids(sqlite3 *db, const struct scim_filter *f, const char *table, const char *alias)
{
    struct scim_sql sql;
    struct scim_err err;
    struct scim_sql_opts o = { .table = alias, .first_param = 2 };
    char *q, *out = xstrdup("");
    sqlite3_stmt *st;

    if (scim_filter_to_sql(f, &o, &sql, &err) != 0)
        fail_msg("compile: %s", err.detail);
    q = xasprintf("SELECT %s.id FROM %s %s WHERE %s.tenant = $1 AND %s ORDER BY %s.id",
                  alias, table, alias, alias, sql.where, alias);
    if (sqlite3_prepare_v2(db, q, -1, &st, NULL) != SQLITE_OK)
        fail_msg("prepare: %s\n%s", sqlite3_errmsg(db), q);
    /* every parameter appears in the text, and only those */
    assert_int_equal(sqlite3_bind_parameter_count(st), (int)sql.nparams + 1);
    sqlite3_bind_text(st, sqlite3_bind_parameter_index(st, "$1"), "acme", -1, SQLITE_STATIC);
    bind_params(st, &sql, 2);
    for (;;) {
        int rc = sqlite3_step(st);
        char *n;
        if (rc == SQLITE_DONE)
            break;
        if (rc != SQLITE_ROW)
            fail_msg("step: %s\n%s", sqlite3_errmsg(db), q);
        n = xasprintf("%s%s%s", out, *out ? "," : "", (const char *)sqlite3_column_text(st, 0));
        free(out);
        out = n;
    }
    sqlite3_finalize(st);
    free(q);
    scim_sql_free(&sql);
    return out;
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The ids scim_filter_match selects among docs, in the same format. */
static char *match_ids(const struct scim_filter *f, json_t *const *docs, size_t n)
{
    const char *ids[16];
    size_t k = 0, i;
    char *out = xstrdup("");

    for (i = 0; i < n; i++)
        if (scim_filter_match(f, docs[i]))
            ids[k++] = json_string_value(json_object_get(docs[i], "id"));
    qsort(ids, k, sizeof(ids[0]), cmp_id);
    for (i = 0; i < k; i++) {
        char *x = xasprintf("%s%s%s", out, i ? "," : "", ids[i]);
        free(out);
        out = x;
    }
    return out;
}

/* Compiles and runs text; checks SQL == match; returns the ids (caller frees). */
static char *differential(struct db_fixture *fx, const struct scim_resource_type *rt, const char *text)
{
    bool users = rt != &scim_rt_group;
    struct scim_filter *f;
    struct scim_err err;
    char *a, *b;

    if (scim_filter_parse(rt, str_from_cstr(text), NULL, &f, &err) != 0)
        fail_msg("parse <%s>: %s", text, err.detail);
    a = sql_ids(fx->db, f, users ? "users" : "groups", users ? "u" : "g");
    b = users ? match_ids(f, fx->users, NUSERS) : match_ids(f, fx->groups, NGROUPS);
    if (strcmp(a, b) != 0)
        fail_msg("<%s>: SQL selects [%s], scim_filter_match [%s]", text, a, b);
    scim_filter_free(f);
    free(b);
    return a;
}

static const struct {
    const char *filter;
    const char *ids;          /* expected, sorted */
} sql_cases[] = {
    { "userName eq \"JSMITH\"", "u2" },
    { "userName co \"%\"", "u5" },
    { "userName co \"_\"", "u5" },
    { "userName sw \"per%c\"", "u5" },
    { "title co \"%\"", "u5" },
    { "title eq \"TOUR GUIDE\"", "2819c223-7f76-453a-919d-413861904646,u4" },
    { "emails.value eq \"y@example.com\"", "u4" },
    { "emails.value eq \"ghost@example.net\"", "" },              /* other tenant */
    { "emails[type eq \"home\" and value co \"@example.com\"]", "u4" },
    { "emails[type eq \"work\" and value co \"@EXAMPLE.com\"]", "2819c223-7f76-453a-919d-413861904646,u2,u5" },
    { "emails[not (type pr)]", "u4" },
    { "emails[type eq \"work\" and primary eq true]", "2819c223-7f76-453a-919d-413861904646,u2" },
    { "emails.value co \"%@\"", "u5" },
    { "not (emails pr)", "u3,u6" },
    { "emails.type eq \"work\"", "2819c223-7f76-453a-919d-413861904646,u2,u5" },
    { "groups.value eq \"g2\"", "u2" },
    { "groups.value eq \"g3\"", "" },                              /* other tenant */
    { "active eq false", "u2" },
    { "externalId pr", "2819c223-7f76-453a-919d-413861904646,u2,u6" },
    { "externalId eq \"z\"", "" },
    { "meta.created lt \"2010-01-23T04:56:22Z\"", "u4" },
    { "meta.created ge \"2010-01-23T04:56:21.5Z\"", "2819c223-7f76-453a-919d-413861904646,u2,u3,u5,u6" },
    { "meta.lastModified gt \"2020-01-01T00:00:00Z\" and meta.lastModified lt \"2030-01-01T00:00:01Z\"", "u5" },
    { "name.familyName eq \"JENSEN\"", "2819c223-7f76-453a-919d-413861904646,u4" },
    { "name.familyName ne \"jensen\"", "u2" },
    { "not (name.familyName eq \"jensen\")", "u2,u3,u5,u6" },
    { TST ":loginCount ge 41 and " TST ":score le 3.5", "2819c223-7f76-453a-919d-413861904646,u4,u5" },
    { TST ":score eq 3", "u4" },
    { TST ":lastLogin eq \"2024-03-01T11:00:00Z\"", "2819c223-7f76-453a-919d-413861904646,u4,u5" },
    { TST ":tags co \"*\"", "2819c223-7f76-453a-919d-413861904646,u5" },
    { TST ":tags eq \"*\"", "u5" },
    { TST ":tags pr", "2819c223-7f76-453a-919d-413861904646,u2,u5" },
    { TST ":motto co \"%\"", "2819c223-7f76-453a-919d-413861904646,u5" },
    { TST ":motto ew \"_\"", "2819c223-7f76-453a-919d-413861904646,u5" },
    { TST ":code eq \"abc\"", "u2" },
    { TST ":code gt \"ABC\"", "2819c223-7f76-453a-919d-413861904646,u2" },
    { TST ":verified eq false", "2819c223-7f76-453a-919d-413861904646,u5" },
    { TST ":verified pr", "2819c223-7f76-453a-919d-413861904646,u2,u5" },
    { ENT ":manager pr", "2819c223-7f76-453a-919d-413861904646,u2" },
    { ENT ":employeeNumber pr", "2819c223-7f76-453a-919d-413861904646,u2" },
    { ENT ":department eq \"tour operations\" and not (" ENT ":manager.value eq \"boss\")",
      "2819c223-7f76-453a-919d-413861904646" },
    { "ims[type eq \"xmpp\" and value pr] or addresses[locality co \"wood\"]", "u4,u6" },
    { "nickName pr", "2819c223-7f76-453a-919d-413861904646" },
    { "displayName eq \"A_B\"", "u5" },
    { "displayName co \"\\\"quote\\\"\"", "2819c223-7f76-453a-919d-413861904646" },
};

static void test_sql_matches_evaluator(void **state)
{
    struct db_fixture *fx = *state;
    size_t i, nonempty = 0;

    /* every valid filter of the table, over all six users */
    for (i = 0; i < NCASES; i++) {
        char *ids;
        if (cases[i].want == ERR)
            continue;
        ids = differential(fx, &rt_test, cases[i].filter);
        if (*ids)
            nonempty++;
        free(ids);
    }
    assert_true(nonempty > 40);
    /* and filters chosen for the SQL, with the ids they must select */
    for (i = 0; i < sizeof(sql_cases) / sizeof(sql_cases[0]); i++) {
        char *ids = differential(fx, &rt_test, sql_cases[i].filter);
        if (strcmp(ids, sql_cases[i].ids) != 0)
            fail_msg("<%s>: got [%s], want [%s]", sql_cases[i].filter, ids, sql_cases[i].ids);
        free(ids);
    }
}

static void test_sql_groups(void **state)
{
    static const struct {
        const char *filter, *ids;
    } gc[] = {
        { "displayName eq \"tour guides\"", "g1" },
        { "displayName sw \"M\" or displayName ew \"TY\"", "g2,g3" },
        { "members.value eq \"u2\"", "g1,g2" },
        { "members.value eq \"u3\"", "" },                      /* only in the other tenant */
        { "members[type eq \"group\"]", "g1" },
        { "members[value eq \"u2\" and type eq \"User\"]", "g1,g2" },
        { "members[display co \"john\" and value eq \"u2\"]", "g2" },   /* display: JSON, not the side table */
        { "members pr", "g1,g2" },
        { "not (members pr)", "g3" },
        { "externalId eq \"TG\"", "g1" },
        { "meta.created gt \"2019-06-01T00:00:00Z\"", "g2,g3" },
        { "urn:ietf:params:scim:schemas:core:2.0:Group:displayName co \"S\"", "g1,g2" },
    };
    struct db_fixture *fx = *state;
    size_t i;

    for (i = 0; i < sizeof(gc) / sizeof(gc[0]); i++) {
        char *ids = differential(fx, &scim_rt_group, gc[i].filter);
        if (strcmp(ids, gc[i].ids) != 0)
            fail_msg("<%s>: got [%s], want [%s]", gc[i].filter, ids, gc[i].ids);
        free(ids);
    }
}

/* Hostile values reach SQLite only as bound parameters. */
static void test_sql_injection(void **state)
{
    static const struct {
        const char *filter, *needle;      /* needle: a piece of the value, as bound */
    } hostile[] = {
        { "userName eq \"x' OR 1=1 --\"", "x' or 1=1 --" },
        { "title co \"%' OR '1'='1\"", "' or '1'='1" },
        { "emails[value eq \"a'); DROP TABLE users; --\"]", "'); drop table users; --" },
        { ENT ":employeeNumber eq \"\\\") OR 1=1 --\"", "\") or 1=1 --" },
        { TST ":tags sw \"*' OR 1=1 --\"", "' OR 1=1 --" },
        { "name.familyName ew \"\\u0027 OR 1=1 --\"", "' or 1=1 --" },
    };
    struct db_fixture *fx = *state;
    size_t i, k;

    for (i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
        struct scim_filter *f;
        struct scim_err err;
        struct scim_sql sql;
        struct scim_sql_opts o = { .table = "u", .first_param = 2 };
        bool seen = false;
        char *ids;

        assert_int_equal(scim_filter_parse(&rt_test, str_from_cstr(hostile[i].filter), NULL, &f, &err), 0);
        assert_int_equal(scim_filter_to_sql(f, &o, &sql, &err), 0);
        assert_null(strcasestr(sql.where, hostile[i].needle));
        assert_null(strstr(sql.where, "1=1"));
        assert_null(strcasestr(sql.where, "DROP"));
        assert_null(strstr(sql.where, "--"));
        for (k = 0; k < sql.nparams; k++)
            if (sql.params[k].type == SCIM_SQL_TEXT && strstr(sql.params[k].text, hostile[i].needle))
                seen = true;
        if (!seen)
            fail_msg("<%s>: value not among the parameters of %s", hostile[i].filter, sql.where);
        scim_filter_free(f);
        scim_sql_free(&sql);
        /* and it runs, selecting nothing */
        ids = differential(fx, &rt_test, hostile[i].filter);
        assert_string_equal(ids, "");
        free(ids);
    }
    /* attribute names in the SQL are the table's, never the filter's spelling */
    {
        struct scim_filter *f;
        struct scim_err err;
        struct scim_sql sql;
        struct scim_sql_opts o = { .first_param = 7 };

        assert_int_equal(scim_filter_parse(&rt_test, STR_LIT("USERNAME eq \"A\" and URN:IETF:PARAMS:SCIM:SCHEMAS:"
                                                              "EXTENSION:ENTERPRISE:2.0:USER:DEPARTMENT pr"),
                                           NULL, &f, &err), 0);
        assert_int_equal(scim_filter_to_sql(f, &o, &sql, &err), 0);
        assert_null(strstr(sql.where, "USERNAME"));
        assert_null(strstr(sql.where, "DEPARTMENT"));
        assert_non_null(strstr(sql.where, "users.user_name_lc"));
        assert_non_null(strstr(sql.where, "\"" ENT "\".\"department\""));
        assert_non_null(strstr(sql.where, "$7"));
        assert_int_equal(sql.nparams, 1);
        assert_int_equal(sql.params[0].type, SCIM_SQL_TEXT);
        assert_string_equal(sql.params[0].text, "a");          /* lower-cased for user_name_lc */
        scim_sql_free(&sql);
        /* options are checked */
        o.table = "u; DROP TABLE users";
        assert_int_equal(scim_filter_to_sql(f, &o, &sql, &err), -EINVAL);
        o.table = "u";
        o.first_param = 0;
        assert_int_equal(scim_filter_to_sql(f, &o, &sql, &err), -EINVAL);
        scim_filter_free(f);
    }
}

/* The largest and deepest filters the limits allow still make SQL that
 * SQLite accepts and that agrees with the evaluator; a caller's SQL length
 * limit is enforced. */
static void test_sql_extremes(void **state)
{
    struct db_fixture *fx = *state;
    char *s = xmalloc(SCIM_FILTER_MAX_LEN + 1), *ids;
    struct scim_filter *f;
    struct scim_err err;
    struct scim_sql sql;
    struct scim_sql_opts o = { .table = "u", .first_param = 2 };
    size_t k = 0, i;

    /* 51 value paths of 4 nodes each, joined by or: 254 nodes */
    for (i = 0; i < 50; i++)
        k += (size_t)sprintf(s + k, "%semails[type eq \"t%zu\" and value co \"%%\"]", i ? " or " : "", i);
    k += (size_t)sprintf(s + k, " or emails[type eq \"work\" and value co \"%%\"]");
    ids = differential(fx, &rt_test, s);
    assert_string_equal(ids, "u5");
    free(ids);
    /* 30 levels of not ( ... ) around a value path holding one more: depth 32 */
    k = 0;
    for (i = 0; i < 30; i++)
        k += (size_t)sprintf(s + k, "not (");
    k += (size_t)sprintf(s + k, "emails[type eq \"work\" or not (primary pr)]");
    for (i = 0; i < 30; i++)
        s[k++] = ')';
    s[k] = '\0';
    ids = differential(fx, &rt_test, s);
    assert_string_equal(ids, "2819c223-7f76-453a-919d-413861904646,u2,u4,u5");
    free(ids);
    /* the longest text: one long string value */
    k = (size_t)sprintf(s, "title eq \"");
    memset(s + k, 'a', SCIM_FILTER_MAX_LEN - k - 1);
    s[SCIM_FILTER_MAX_LEN - 1] = '"';
    s[SCIM_FILTER_MAX_LEN] = '\0';
    ids = differential(fx, &rt_test, s);
    assert_string_equal(ids, "");
    free(ids);
    /* the caller's limit on the SQL text */
    assert_int_equal(scim_filter_parse(&rt_test, STR_LIT("title pr or emails[type eq \"work\"]"), NULL, &f, &err), 0);
    o.max_sql_len = 64;
    assert_int_equal(scim_filter_to_sql(f, &o, &sql, &err), -E2BIG);
    assert_null(sql.where);
    assert_int_equal(sql.nparams, 0);
    assert_string_equal(err.scim_type, "invalidFilter");
    o.max_sql_len = 0;
    assert_int_equal(scim_filter_to_sql(f, &o, &sql, &err), 0);
    assert_true(strlen(sql.where) > 64);
    scim_sql_free(&sql);
    scim_filter_free(f);
    free(s);
}

/* Indexed columns keep a shape SQLite can use an index for. */
static void test_sql_plan(void **state)
{
    static const struct {
        const char *filter, *index;
    } pc[] = {
        { "userName eq \"bjensen@example.com\"", "sqlite_autoindex_users_2" },
        { "externalId eq \"bjensen\"", "users_external_id" },
        { "emails.value eq \"x@example.com\"", "sqlite_autoindex_user_emails_1" },
    };
    struct db_fixture *fx = *state;
    size_t i;

    for (i = 0; i < sizeof(pc) / sizeof(pc[0]); i++) {
        struct scim_filter *f;
        struct scim_err err;
        struct scim_sql sql;
        struct scim_sql_opts o = { .table = "u", .first_param = 2 };
        sqlite3_stmt *st;
        char *q, *plan = xstrdup("");

        assert_int_equal(scim_filter_parse(&scim_rt_user, str_from_cstr(pc[i].filter), NULL, &f, &err), 0);
        assert_int_equal(scim_filter_to_sql(f, &o, &sql, &err), 0);
        q = xasprintf("EXPLAIN QUERY PLAN SELECT u.id FROM users u WHERE u.tenant = $1 AND %s", sql.where);
        assert_int_equal(sqlite3_prepare_v2(fx->db, q, -1, &st, NULL), SQLITE_OK);
        while (sqlite3_step(st) == SQLITE_ROW) {
            char *n = xasprintf("%s%s; ", plan, (const char *)sqlite3_column_text(st, 3));
            free(plan);
            plan = n;
        }
        if (!strstr(plan, pc[i].index))
            fail_msg("<%s> does not use %s: %s", pc[i].filter, pc[i].index, plan);
        sqlite3_finalize(st);
        free(q);
        free(plan);
        scim_sql_free(&sql);
        scim_filter_free(f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filter_table),
        cmocka_unit_test(test_error_details),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_tree_shape),
        cmocka_unit_test(test_element_filter),
        cmocka_unit_test(test_datetime_parse),
        cmocka_unit_test_setup_teardown(test_sql_matches_evaluator, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_sql_groups, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_sql_injection, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_sql_extremes, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_sql_plan, db_setup, db_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
