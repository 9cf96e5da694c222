/* Unit tests for ldap/filter.c: DOMAIN/username parsing, RFC 4515 escaping
 * and the user filter (the LDAP-injection defence), directory user ids,
 * contextCSN parsing and comparison, sealed bind passwords. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/buf.h"
#include "crypto/secret.h"
#include "ldap/userstore.h"

/* Undoes RFC 4515 escaping; -1 on a malformed escape or a raw metacharacter. */
static int unescape(const char *s, size_t n, char *out, size_t *outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '(' || c == ')' || c == '*' || c == '\0' || (unsigned char)c < 0x20 || (unsigned char)c >= 0x7f)
            return -1;
        if (c == '\\') {
            unsigned v = 0;
            for (int k = 1; k <= 2; k++) {
                char h = i + k < n ? s[i + k] : 0;
                v <<= 4;
                if (h >= '0' && h <= '9')
                    v |= (unsigned)(h - '0');
                else if (h >= 'a' && h <= 'f')
                    v |= (unsigned)(h - 'a' + 10);
                else
                    return -1;
            }
            out[o++] = (char)v;
            i += 2;
        } else {
            out[o++] = c;
        }
    }
    *outlen = o;
    return 0;
}

static const char *escape(struct buf *b, const char *v, size_t n)
{
    buf_reset(b);
    assert_int_equal(userstore_filter_escape(b, v, n), 0);
    return buf_cstr(b);
}

static void test_split(void **state)
{
    char domain[USERSTORE_NAME_MAX + 1];
    struct str user;

    assert_int_equal(userstore_split("corp/alice", 10, domain, &user), 1);
    assert_string_equal(domain, "corp");
    assert_int_equal(user.len, 5);
    assert_memory_equal(user.p, "alice", 5);
    /* the domain is case-insensitive (WSO2 writes it in capitals) */
    assert_int_equal(userstore_split("CORP/Alice", 10, domain, &user), 1);
    assert_string_equal(domain, "corp");
    assert_memory_equal(user.p, "Alice", 5);
    /* only the first '/' splits */
    assert_int_equal(userstore_split("corp/a/b", 8, domain, &user), 1);
    assert_int_equal(user.len, 3);
    /* not qualified: internal user names */
    assert_int_equal(userstore_split("alice", 5, domain, &user), 0);
    assert_int_equal(userstore_split("/alice", 6, domain, &user), 0);
    assert_int_equal(userstore_split("-corp/alice", 11, domain, &user), 0);     /* not a label */
    assert_int_equal(userstore_split("co rp/alice", 11, domain, &user), 0);
    assert_int_equal(userstore_split("co\0rp/alice", 11, domain, &user), 0);
    char longd[80];
    memset(longd, 'a', 64);
    memcpy(longd + 64, "/x", 3);
    assert_int_equal(userstore_split(longd, 66, domain, &user), 0);
    /* qualified but unusable */
    assert_int_equal(userstore_split("corp/", 5, domain, &user), -EINVAL);
    assert_int_equal(userstore_split("corp/al\nice", 11, domain, &user), -EINVAL);
    assert_int_equal(userstore_split("corp/al\0ice", 11, domain, &user), -EINVAL);
    char longu[300] = "corp/";
    memset(longu + 5, 'u', 257);
    assert_int_equal(userstore_split(longu, 5 + 257, domain, &user), -EINVAL);
    assert_int_equal(userstore_split(longu, 5 + 256, domain, &user), 1);
}

static void test_escape(void **state)
{
    struct buf b;
    char back[64];
    size_t n;

    buf_init(&b, 4096);
    assert_string_equal(escape(&b, "alice", 5), "alice");
    assert_string_equal(escape(&b, "*", 1), "\\2a");
    assert_string_equal(escape(&b, "a(b)c\\d", 7), "a\\28b\\29c\\5cd");
    assert_string_equal(escape(&b, "x\0y", 3), "x\\00y");
    /* the classic injection becomes one literal value */
    const char *inj = "*)(uid=*))(|(uid=*";
    const char *e = escape(&b, inj, strlen(inj));
    assert_string_equal(e, "\\2a\\29\\28uid=\\2a\\29\\29\\28|\\28uid=\\2a");
    assert_int_equal(unescape(e, strlen(e), back, &n), 0);
    assert_int_equal(n, strlen(inj));
    assert_memory_equal(back, inj, n);
    /* UTF-8 and control bytes are escaped octet by octet */
    assert_string_equal(escape(&b, "J\xc3\xb6rg", 5), "J\\c3\\b6rg");
    assert_string_equal(escape(&b, "\x7f\x01", 2), "\\7f\\01");
    /* the limit holds */
    struct buf small;
    buf_init(&small, 8);
    assert_int_equal(userstore_filter_escape(&small, "****", 4), -E2BIG);
    buf_free(&small);
    buf_free(&b);
}

static void test_filter_build(void **state)
{
    struct buf b;

    buf_init(&b, 4096);
    assert_int_equal(userstore_filter_build(&b, "(&(objectClass=person)(uid=%s))", "uid", "alice", 5), 0);
    assert_string_equal(buf_cstr(&b), "(&(objectClass=person)(uid=alice))");
    buf_reset(&b);
    /* every %s is replaced */
    assert_int_equal(userstore_filter_build(&b, "(|(uid=%s)(mail=%s))", "uid", "a*", 2), 0);
    assert_string_equal(buf_cstr(&b), "(|(uid=a\\2a)(mail=a\\2a))");
    buf_reset(&b);
    /* no %s: AND-ed with attr=value */
    assert_int_equal(userstore_filter_build(&b, "(objectClass=inetOrgPerson)", "uid", "x)(y", 4), 0);
    assert_string_equal(buf_cstr(&b), "(&(objectClass=inetOrgPerson)(uid=x\\29\\28y))");
    buf_reset(&b);
    /* every user: a presence test */
    assert_int_equal(userstore_filter_build(&b, "(objectClass=inetOrgPerson)", "uid", NULL, 0), 0);
    assert_string_equal(buf_cstr(&b), "(&(objectClass=inetOrgPerson)(uid=*))");
    buf_reset(&b);
    assert_int_equal(userstore_filter_build(&b, "(&(a=b)(uid=%s))", "uid", NULL, 0), 0);
    assert_string_equal(buf_cstr(&b), "(&(a=b)(uid=*))");
    buf_reset(&b);
    /* bad templates */
    assert_int_equal(userstore_filter_build(&b, "uid=%s", "uid", "a", 1), -EINVAL);
    assert_int_equal(userstore_filter_build(&b, NULL, "uid", "a", 1), -EINVAL);
    assert_int_equal(userstore_filter_build(&b, "(a=%s)", "", "a", 1), -EINVAL);
    struct buf small;
    buf_init(&small, 16);
    assert_int_equal(userstore_filter_build(&small, "(uid=%s)", "uid", "aaaaaaaaaaaaaaaaaaaa", 20), -E2BIG);
    buf_free(&small);
    buf_free(&b);
}

static void test_ids(void **state)
{
    char store[USERSTORE_NAME_MAX + 1];
    struct str key;

    assert_true(userstore_is_user_id("ldap:corp:3abccb14-7d56-1041-838c-b579f2a5a3b9"));
    assert_false(userstore_is_user_id("3abccb14-7d56-1041-838c-b579f2a5a3b9"));
    assert_false(userstore_is_user_id(NULL));
    assert_int_equal(userstore_id_parse("ldap:corp:3abc-d", store, &key), 0);
    assert_string_equal(store, "corp");
    assert_true(str_eq_cstr(key, "3abc-d"));
    assert_int_equal(userstore_id_parse("ldap:corp:u:alice", store, &key), 0);
    assert_true(str_eq_cstr(key, "u:alice"));
    assert_int_equal(userstore_id_parse("ldap:corp:", store, &key), -EINVAL);
    assert_int_equal(userstore_id_parse("ldap::x", store, &key), -EINVAL);
    assert_int_equal(userstore_id_parse("ldap:Corp!:x", store, &key), -EINVAL);
    assert_int_equal(userstore_id_parse("ldap:corp", store, &key), -EINVAL);
    assert_int_equal(userstore_id_parse("user-1", store, &key), -EINVAL);
}

static void test_csn(void **state)
{
    int64_t t, lag;
    int sid;
    const char *a1 = "20261125195746.730766Z#000000#000#000000";
    const char *a2 = "20261125195748.730766Z#000000#000#000000";     /* 2 s later */
    const char *b1 = "20261125195700.000000Z#000000#002#000000";

    assert_int_equal(ldap_csn_parse(a1, strlen(a1), &t, &sid), 0);
    assert_int_equal(sid, 0);
    assert_true(t == (int64_t)1795636666 * 1000000 + 730766);
    assert_int_equal(ldap_csn_parse(b1, strlen(b1), &t, &sid), 0);
    assert_int_equal(sid, 2);
    assert_int_equal(ldap_csn_parse("2026112519574.730766Z#000000#000#000000", 39, &t, &sid), -EINVAL);
    assert_int_equal(ldap_csn_parse("20261325195746.730766Z#000000#000#000000", 40, &t, &sid), -EINVAL);
    assert_int_equal(ldap_csn_parse("20261125195746.730766Z#000000#0g0#000000", 40, &t, &sid), -EINVAL);

    /* equal: in sync */
    assert_int_equal(ldap_csn_lag_ms((const char *[]){ a1 }, 1, (const char *[]){ a1 }, 1, &lag), 0);
    assert_int_equal(lag, 0);
    /* the consumer is 2 s behind the provider */
    assert_int_equal(ldap_csn_lag_ms((const char *[]){ a2 }, 1, (const char *[]){ a1 }, 1, &lag), 1);
    assert_int_equal(lag, 2000);
    /* a consumer ahead (it was the provider after a failover) is in sync */
    assert_int_equal(ldap_csn_lag_ms((const char *[]){ a1 }, 1, (const char *[]){ a2 }, 1, &lag), 0);
    /* server ids are compared pairwise; a missing one is unknown */
    assert_int_equal(ldap_csn_lag_ms((const char *[]){ a1, b1 }, 2, (const char *[]){ b1, a1 }, 2, &lag), 0);
    assert_int_equal(ldap_csn_lag_ms((const char *[]){ a1, b1 }, 2, (const char *[]){ a1 }, 1, &lag), -ENOENT);
    assert_int_equal(ldap_csn_lag_ms((const char *[]){ "junk" }, 1, (const char *[]){ a1 }, 1, &lag), -EINVAL);
    assert_int_equal(ldap_csn_lag_ms((const char *[]){ a1 }, 1, (const char *[]){ "junk" }, 1, &lag), -EINVAL);
    /* an empty provider has nothing the consumer could miss */
    assert_int_equal(ldap_csn_lag_ms(NULL, 0, (const char *[]){ a1 }, 1, &lag), 0);
}

static void test_sealed_password(void **state)
{
    unsigned char key[32], other[32];
    char *sealed = NULL, *plain = NULL;

    memset(key, 7, sizeof(key));
    memset(other, 8, sizeof(other));
    assert_int_equal(userstore_seal_password(key, "s3cret pw", 9, &sealed), 0);
    assert_true(strncmp(sealed, USERSTORE_SEALED_PREFIX, strlen(USERSTORE_SEALED_PREFIX)) == 0);
    assert_null(strstr(sealed, "s3cret"));
    assert_int_equal(userstore_open_password(key, sealed, &plain), 0);
    assert_string_equal(plain, "s3cret pw");
    crypto_wipe_free_str(plain);
    /* another master key, or a flipped byte, does not open it */
    assert_int_equal(userstore_open_password(other, sealed, &plain), -EBADMSG);
    assert_null(plain);
    sealed[strlen(sealed) - 3] = sealed[strlen(sealed) - 3] == 'A' ? 'B' : 'A';
    assert_true(userstore_open_password(key, sealed, &plain) < 0);
    assert_null(plain);
    free(sealed);
    assert_int_equal(userstore_open_password(key, "sealed:!!!", &plain), -EINVAL);
    /* a plain value is taken as it is */
    assert_int_equal(userstore_open_password(key, "plain-pw", &plain), 0);
    assert_string_equal(plain, "plain-pw");
    free(plain);
    assert_int_equal(userstore_seal_password(key, "", 0, &sealed), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split),           cmocka_unit_test(test_escape),
        cmocka_unit_test(test_filter_build),    cmocka_unit_test(test_ids),
        cmocka_unit_test(test_csn),             cmocka_unit_test(test_sealed_password),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
