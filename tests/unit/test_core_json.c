/* Unit tests for core/json: depth scanning, limits before parsing, strictness. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/json.h"

static int depth(const char *s)
{
    return jsonx_depth(s, strlen(s));
}

static void test_depth(void **state)
{
    assert_int_equal(depth(""), 0);
    assert_int_equal(depth("1"), 0);
    assert_int_equal(depth("\"x\""), 0);
    assert_int_equal(depth("{}"), 1);
    assert_int_equal(depth("[[[]]]"), 3);
    assert_int_equal(depth("[[],[[]],[]]"), 3);
    assert_int_equal(depth("{\"a\":[1,{\"b\":[]}],\"c\":{}}"), 4);
    /* brackets inside strings do not count */
    assert_int_equal(depth("[\"[[[{{{\"]"), 1);
    assert_int_equal(depth("{\"[[\":\"]]]]}}}\",\"x\":[[1]]}"), 3);
    /* an escaped quote does not end the string */
    assert_int_equal(depth("[\"\\\"[[[\"]"), 1);
    assert_int_equal(depth("[\"a\\\"\\\"[[[\\\"\"]"), 1);
    /* an escaped backslash does: the brackets after it count */
    assert_int_equal(depth("[\"\\\\\",[[]]]"), 3);
    assert_int_equal(depth("[\"\\\\\\\"[\",[[]]]"), 3);
    /* \u escapes are plain characters */
    assert_int_equal(depth("[\"\\u005b\\u0022[\"]"), 1);
    /* only the given length is scanned */
    assert_int_equal(jsonx_depth("[[[[", 2), 2);
    /* an unterminated string hides what follows */
    assert_int_equal(depth("[\"[[[["), 1);
}

static char *nested(int levels, const char *inner)
{
    size_t n = strlen(inner);
    char *s = malloc((size_t)levels * 2 + n + 1);
    int i;

    for (i = 0; i < levels; i++)
        s[i] = '[';
    memcpy(s + levels, inner, n);
    for (i = 0; i < levels; i++)
        s[levels + (int)n + i] = ']';
    s[levels * 2 + n] = '\0';
    return s;
}

static void test_parse_depth_limit(void **state)
{
    char err[128];
    char *s;
    json_t *j;

    s = nested(32, "1");
    j = jsonx_parse(s, strlen(s), 32, err, sizeof err);
    assert_non_null(j);
    assert_string_equal(err, "");
    json_decref(j);
    free(s);

    s = nested(33, "1");
    j = jsonx_parse(s, strlen(s), 32, err, sizeof err);
    assert_null(j);
    assert_string_equal(err, "nested deeper than 32 levels");
    free(s);

    /* Far beyond jansson's own limit: must be refused by our scan (an
     * "invalid JSON" message would mean jansson saw it). */
    s = nested(100000, "");
    j = jsonx_parse(s, strlen(s), 8, err, sizeof err);
    assert_null(j);
    assert_string_equal(err, "nested deeper than 8 levels");
    free(s);

    /* brackets in strings (with escaped quotes) do not count towards the limit */
    {
        const char *t = "{\"a\":\"\\\"[[[[[[[[[[[[[[[[[[[[[[\",\"b\":[\"]]]\\\\\"]}";
        j = jsonx_parse(t, strlen(t), 2, err, sizeof err);
        assert_non_null(j);
        assert_string_equal(jsonx_str(j, "a", NULL), "\"[[[[[[[[[[[[[[[[[[[[[[");
        json_decref(j);
    }
    /* max_depth <= 0 disables our scan */
    s = nested(100, "");
    j = jsonx_parse(s, strlen(s), 0, err, sizeof err);
    assert_non_null(j);
    json_decref(j);
    free(s);
}

static void test_parse_errors(void **state)
{
    char err[160];
    json_t *j;
    const char *dup = "{\"sub\":\"alice\",\"sub\":\"admin\"}";

    j = jsonx_parse(dup, strlen(dup), 32, err, sizeof err);
    assert_null(j);
    assert_non_null(strstr(err, "invalid JSON at line 1 column"));
    assert_non_null(strstr(err, "duplicate"));

    /* nested duplicates too */
    dup = "{\"a\":{\"x\":1,\"x\":2}}";
    assert_null(jsonx_parse(dup, strlen(dup), 32, err, sizeof err));

    j = jsonx_parse("{\n  \"a\": tru }", 14, 32, err, sizeof err);
    assert_null(j);
    assert_non_null(strstr(err, "invalid JSON at line 2 column"));

    assert_null(jsonx_parse("{\"a\":1} x", 9, 32, err, sizeof err));
    assert_non_null(strstr(err, "invalid JSON at line 1 column"));
    assert_null(jsonx_parse("", 0, 32, err, sizeof err));
    assert_null(jsonx_parse("{\"a\":\"\\u0000\"}", 14, 32, err, sizeof err));
    /* the length is honoured: a valid prefix of a longer buffer parses */
    j = jsonx_parse("{\"a\":1}garbage", 7, 32, err, sizeof err);
    assert_non_null(j);
    assert_int_equal(jsonx_int(j, "a", -1), 1);
    json_decref(j);
    /* errmsg may be NULL or tiny */
    assert_null(jsonx_parse("[", 1, 32, NULL, 0));
    assert_null(jsonx_parse("[", 1, 32, err, 5));
    assert_int_equal(strlen(err), 4);
}

static void test_dump_and_getters(void **state)
{
    const char *in = "{ \"z\": 1, \"a\": [true, null], \"s\": \"x\\\"y\", \"b\": false, "
                     "\"big\": 9007199254740993, \"f\": 1.5 }";
    json_t *j = jsonx_parse(in, strlen(in), 32, NULL, 0);
    char *out;

    assert_non_null(j);
    out = jsonx_dump(j);
    assert_string_equal(out, "{\"z\":1,\"a\":[true,null],\"s\":\"x\\\"y\",\"b\":false,"
                             "\"big\":9007199254740993,\"f\":1.5}");
    free(out);

    assert_string_equal(jsonx_str(j, "s", "fb"), "x\"y");
    assert_string_equal(jsonx_str(j, "z", "fb"), "fb");          /* wrong type */
    assert_string_equal(jsonx_str(j, "missing", "fb"), "fb");
    assert_null(jsonx_str(j, "missing", NULL));
    assert_int_equal(jsonx_int(j, "z", -1), 1);
    assert_true(jsonx_int(j, "big", -1) == INT64_C(9007199254740993));
    assert_int_equal(jsonx_int(j, "f", -1), -1);                 /* real, not integer */
    assert_int_equal(jsonx_int(j, "s", -1), -1);
    assert_false(jsonx_bool(j, "b", true));
    assert_true(jsonx_bool(j, "missing", true));
    assert_true(jsonx_bool(j, "z", true));                       /* 1 is not a bool */
    /* getters on a non-object return the fallback */
    assert_string_equal(jsonx_str(json_object_get(j, "a"), "s", "fb"), "fb");
    assert_int_equal(jsonx_int(NULL, "z", 5), 5);
    json_decref(j);

    j = json_string("scalar");
    out = jsonx_dump(j);
    assert_string_equal(out, "\"scalar\"");
    free(out);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_parse_depth_limit),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_dump_and_getters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
