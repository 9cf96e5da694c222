/* Unit tests for ldap/conn.c and ldap/users.c against a real slapd
 * (tests/ldap/slapd.h): authentication by search-then-bind, the refusal of
 * empty passwords, LDAP injection through the user name, attribute and
 * group mapping, lookups by id, SCIM lists, contextCSN, and the failure
 * paths that must stay bounded: a hung directory (SIGSTOP) times out at the
 * deadline, a dead one fails at once, a restarted one is reconnected. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../ldap/slapd.h"

#include "core/timeutil.h"
#include "core/xmalloc.h"
#include "ldap/userstore_internal.h"

static struct tslapd srv;
static struct ustore st;

static int setup(void **state)
{
    const char *dir = tslapd_tmpdir("test_ldap_directory");
    char conf[1024];
    struct cfg_error err;
    int n;

    signal(SIGPIPE, SIG_IGN);     /* as refuged does: a directory that went away is no crash */
    if (tslapd_init(&srv, dir, "a") < 0 || tslapd_start(&srv) < 0) {
        fprintf(stderr, "cannot start slapd in %s\n", dir);
        return -1;
    }
    n = snprintf(conf, sizeof(conf),
                 "[userstore]\ntype = ldap\nurl = %s\nbind_dn = " TSLAPD_SERVICE_DN "\n"
                 "bind_password = " TSLAPD_SERVICE_PW "\nuser_base = ou=people," TSLAPD_SUFFIX "\n"
                 "timeout = 1s\npool_size = 1\n",
                 srv.url);
    memset(&st, 0, sizeof(st));
    if (artifact_userstore_parse("userstores/corp.conf", conf, (size_t)n, NULL, &st.cfg, &err) < 0) {
        fprintf(stderr, "%s: %s\n", err.key, err.msg);
        return -1;
    }
    snprintf(st.name, sizeof(st.name), "corp");
    snprintf(st.tenant, sizeof(st.tenant), "default");
    st.bind_password = xstrdup(st.cfg.bind_password);
    st.target = (struct ldap_target){ .url = st.cfg.url, .bind_dn = st.cfg.bind_dn,
                                      .bind_password = st.bind_password, .timeout_ms = st.cfg.timeout_ms };
    pthread_mutex_init(&st.mu, NULL);
    return 0;
}

static int teardown(void **state)
{
    char cmd[700];

    tslapd_stop(&srv);
    snprintf(cmd, sizeof(cmd), "rm -rf '%.*s'", (int)(strrchr(srv.dir, '/') - srv.dir), srv.dir);
    if (system(cmd) != 0)
        return -1;
    artifact_userstore_free(&st.cfg);
    free(st.bind_password);
    pthread_mutex_destroy(&st.mu);
    return 0;
}

/* Runs one job on conn with a deadline of timeout_ms from now. */
static int run(struct ldapconn *c, enum ujob_kind kind, const char *user, const char *pw, int64_t timeout_ms,
               struct userstore_reply *r, bool *reached)
{
    struct ujob j = { .kind = kind, .user = (char *)user, .password = (char *)pw, .plen = pw ? strlen(pw) : 0,
                      .start = 1, .count = 100 };
    bool dummy;

    j.submitted_us = time_mono_us();
    j.deadline_us = j.submitted_us + timeout_ms * 1000;
    memset(r, 0, sizeof(*r));
    users_run(&st, c, &j, r, reached ? reached : &dummy);
    return r->rc;
}

static void done(struct userstore_reply *r)
{
    userstore_user_free(&r->user);
    json_decref(r->list);
    r->list = NULL;
}

static void test_authenticate(void **state)
{
    struct ldapconn c = { 0 };
    struct userstore_reply r;
    bool reached = false;

    assert_int_equal(run(&c, UJOB_AUTH, "alice", "alice-pw", 1000, &r, &reached), 0);
    assert_true(reached);
    assert_true(strncmp(r.user.id, "ldap:corp:", 10) == 0);
    assert_int_equal(strlen(r.user.id), 10 + 36);          /* an entryUUID */
    assert_string_equal(r.user.user_name, "corp/alice");
    assert_string_equal(r.user.dn, "uid=alice,ou=people," TSLAPD_SUFFIX);
    assert_string_equal(r.user.name, "Alice Liddell");
    assert_string_equal(r.user.email, "alice@example.org");
    assert_int_equal(json_array_size(r.user.groups), 2);
    assert_string_equal(json_string_value(json_array_get(r.user.groups, 0)), "admins");
    assert_string_equal(json_string_value(json_array_get(r.user.groups, 1)), "staff");
    /* the SCIM resource */
    assert_string_equal(json_string_value(json_object_get(r.user.scim, "userName")), "corp/alice");
    assert_string_equal(json_string_value(json_object_get(r.user.scim, "id")), r.user.id);
    json_t *emails = json_object_get(r.user.scim, "emails");
    assert_string_equal(json_string_value(json_object_get(json_array_get(emails, 0), "value")), "alice@example.org");
    assert_string_equal(json_string_value(json_object_get(json_object_get(r.user.scim, "name"), "formatted")),
                        "Alice Liddell");
    assert_int_equal(json_array_size(json_object_get(r.user.scim, "groups")), 2);
    char *id = xstrdup(r.user.id);
    done(&r);

    /* the same connection serves the next request (bound as the user now: rebinds as the service) */
    assert_int_equal(run(&c, UJOB_AUTH, "bob", "bob-pw", 1000, &r, NULL), 0);
    assert_string_equal(r.user.user_name, "corp/bob");
    assert_int_equal(json_array_size(r.user.groups), 1);
    done(&r);
    /* no groups, no mail */
    assert_int_equal(run(&c, UJOB_AUTH, "carol", "carol-pw", 1000, &r, NULL), 0);
    assert_null(r.user.email);
    assert_int_equal(json_array_size(r.user.groups), 0);
    assert_null(json_object_get(r.user.scim, "emails"));
    done(&r);
    /* user names compare as the directory does (case-insensitive uid) */
    assert_int_equal(run(&c, UJOB_AUTH, "ALICE", "alice-pw", 1000, &r, NULL), 0);
    assert_string_equal(r.user.user_name, "corp/alice");
    assert_string_equal(r.user.id, id);
    done(&r);
    free(id);
    ldapconn_close(&c);
}

static void test_refusals(void **state)
{
    struct ldapconn c = { 0 };
    struct userstore_reply r;

    assert_int_equal(run(&c, UJOB_AUTH, "alice", "wrong", 1000, &r, NULL), -EACCES);
    assert_null(r.user.id);
    done(&r);
    assert_int_equal(run(&c, UJOB_AUTH, "nobody", "alice-pw", 1000, &r, NULL), -EACCES);
    done(&r);
    /* an empty password never reaches the directory as a bind */
    assert_int_equal(run(&c, UJOB_AUTH, "alice", "", 1000, &r, NULL), -EACCES);
    assert_non_null(strstr(r.detail, "empty password"));
    done(&r);
    ldapconn_close(&c);

    /* ...which matters: the directory itself accepts an empty-password
     * simple bind as an anonymous (unauthenticated) bind */
    LDAP *ld = NULL;
    struct berval empty = { 0, "" };
    int v3 = LDAP_VERSION3;
    assert_int_equal(ldap_initialize(&ld, srv.url), LDAP_SUCCESS);
    ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3);
    assert_int_equal(ldap_sasl_bind_s(ld, "uid=alice,ou=people," TSLAPD_SUFFIX, LDAP_SASL_SIMPLE, &empty, NULL,
                                      NULL, NULL),
                     LDAP_SUCCESS);
    ldap_unbind_ext_s(ld, NULL, NULL);
    /* and our bind refuses it whatever the caller checked */
    assert_int_equal(ldapconn_open(&c, &st.target, time_mono_us() + 1000000, r.detail, sizeof(r.detail)), 0);
    assert_int_equal(ldapconn_bind(&c, "uid=alice,ou=people," TSLAPD_SUFFIX, "", 0, time_mono_us() + 1000000,
                                   r.detail, sizeof(r.detail)),
                     -EACCES);
    ldapconn_close(&c);
}

static void test_injection(void **state)
{
    static const char *const attacks[] = {
        "*", "al*", "*)(uid=*))(|(uid=*", "alice)(|(uid=*", "*)(|(objectClass=*", "a\\2a", "alice\\29",
        "*)(&", "x)(userPassword=*",
    };
    struct ldapconn c = { 0 };
    struct userstore_reply r;

    for (size_t i = 0; i < sizeof(attacks) / sizeof(attacks[0]); i++) {
        /* alice's password with a name that would match alice if it reached the filter raw */
        assert_int_equal(run(&c, UJOB_AUTH, attacks[i], "alice-pw", 1000, &r, NULL), -EACCES);
        assert_null(r.user.id);
        done(&r);
    }
    /* a real user name made of metacharacters is found, as a literal */
    assert_int_equal(run(&c, UJOB_AUTH, "odd*name (x)", "odd-pw", 1000, &r, NULL), 0);
    assert_string_equal(r.user.user_name, "corp/odd*name (x)");
    done(&r);
    assert_int_equal(run(&c, UJOB_AUTH, "odd*", "odd-pw", 1000, &r, NULL), -EACCES);
    done(&r);
    ldapconn_close(&c);
}

static void test_lookup_and_list(void **state)
{
    struct ldapconn c = { 0 };
    struct userstore_reply r;
    char key[80];

    assert_int_equal(run(&c, UJOB_AUTH, "bob", "bob-pw", 1000, &r, NULL), 0);
    snprintf(key, sizeof(key), "%s", strrchr(r.user.id, ':') + 1);
    done(&r);
    assert_int_equal(run(&c, UJOB_LOOKUP, key, NULL, 1000, &r, NULL), 0);
    assert_string_equal(r.user.user_name, "corp/bob");
    done(&r);
    assert_int_equal(run(&c, UJOB_LOOKUP, "u:bob", NULL, 1000, &r, NULL), 0);
    assert_string_equal(r.user.user_name, "corp/bob");
    done(&r);
    assert_int_equal(run(&c, UJOB_LOOKUP, "00000000-0000-0000-0000-000000000000", NULL, 1000, &r, NULL), -ENOENT);
    done(&r);
    assert_int_equal(run(&c, UJOB_LOOKUP, "u:*", NULL, 1000, &r, NULL), -ENOENT);
    done(&r);
    assert_int_equal(run(&c, UJOB_LOOKUP, "not a key", NULL, 1000, &r, NULL), -ENOENT);
    done(&r);

    /* every user, sorted by userName; then a page */
    assert_int_equal(run(&c, UJOB_LIST, NULL, NULL, 1000, &r, NULL), 0);
    assert_int_equal(json_integer_value(json_object_get(r.list, "totalResults")), 4);
    json_t *res = json_object_get(r.list, "Resources");
    assert_int_equal(json_array_size(res), 4);
    assert_string_equal(json_string_value(json_object_get(json_array_get(res, 0), "userName")), "corp/alice");
    assert_string_equal(json_string_value(json_object_get(json_array_get(res, 3), "userName")),
                        "corp/odd*name (x)");
    done(&r);
    struct ujob j = { .kind = UJOB_LIST, .start = 2, .count = 2 };
    bool reached;
    j.deadline_us = time_mono_us() + 1000000;
    memset(&r, 0, sizeof(r));
    users_run(&st, &c, &j, &r, &reached);
    assert_int_equal(r.rc, 0);
    res = json_object_get(r.list, "Resources");
    assert_int_equal(json_array_size(res), 2);
    assert_int_equal(json_integer_value(json_object_get(r.list, "startIndex")), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(res, 0), "userName")), "corp/bob");
    done(&r);
    /* one user by name (escaped like any other) */
    assert_int_equal(run(&c, UJOB_LIST, "carol", NULL, 1000, &r, NULL), 0);
    assert_int_equal(json_integer_value(json_object_get(r.list, "totalResults")), 1);
    done(&r);
    assert_int_equal(run(&c, UJOB_LIST, "*", NULL, 1000, &r, NULL), 0);
    assert_int_equal(json_integer_value(json_object_get(r.list, "totalResults")), 0);
    done(&r);
    ldapconn_close(&c);
}

static void test_context_csn(void **state)
{
    struct ldapconn c = { 0 };
    struct userstore_reply r;
    char out[512], err[256];
    int64_t t;
    int sid;

    assert_int_equal(run(&c, UJOB_PROBE, NULL, NULL, 1000, &r, NULL), 0);
    assert_int_equal(strlen(st.csn), 40);
    assert_int_equal(ldap_csn_parse(st.csn, strlen(st.csn), &t, &sid), 0);
    assert_string_equal(st.csn_base, TSLAPD_SUFFIX);   /* found above user_base */
    ldapconn_close(&c);

    /* the stand-alone reader (refugectl and the DR drill) agrees */
    assert_int_equal(ldap_context_csn(&st.target, "ou=people," TSLAPD_SUFFIX, out, sizeof(out), err, sizeof(err)), 0);
    assert_string_equal(out, st.csn);
    /* a wrong service password is refused */
    struct ldap_target bad = st.target;
    bad.bind_password = "nope";
    assert_int_equal(ldap_context_csn(&bad, TSLAPD_SUFFIX, out, sizeof(out), err, sizeof(err)), -EACCES);
}

/* A hung directory: the TCP port accepts, nothing answers. */
static void test_hung_directory_times_out(void **state)
{
    struct ldapconn c = { 0 };
    struct userstore_reply r;
    bool reached = true;

    assert_int_equal(run(&c, UJOB_AUTH, "alice", "alice-pw", 1000, &r, NULL), 0);   /* a pooled connection */
    done(&r);
    tslapd_pause(&srv);
    int64_t t0 = time_mono_us();
    assert_int_equal(run(&c, UJOB_AUTH, "alice", "alice-pw", 700, &r, &reached), -ETIMEDOUT);
    int64_t took = time_mono_us() - t0;
    assert_false(reached);
    assert_null(c.ld);                                  /* a half-answered connection is not kept */
    assert_true(took >= 650 * 1000 && took < 1200 * 1000);
    done(&r);
    /* a fresh connection to the hung server: the connect succeeds, the bind times out */
    t0 = time_mono_us();
    assert_int_equal(run(&c, UJOB_AUTH, "alice", "alice-pw", 500, &r, NULL), -ETIMEDOUT);
    took = time_mono_us() - t0;
    assert_true(took >= 450 * 1000 && took < 1000 * 1000);
    done(&r);
    tslapd_resume(&srv);
    assert_int_equal(run(&c, UJOB_AUTH, "alice", "alice-pw", 1000, &r, NULL), 0);
    done(&r);
    ldapconn_close(&c);
}

static void test_dead_and_restarted_directory(void **state)
{
    struct ldapconn c = { 0 };
    struct userstore_reply r;
    bool reached = true;

    assert_int_equal(run(&c, UJOB_AUTH, "alice", "alice-pw", 1000, &r, NULL), 0);
    done(&r);
    tslapd_stop(&srv);
    /* the pooled connection is dead and so is a new one: unavailable, at once */
    int64_t t0 = time_mono_us();
    assert_int_equal(run(&c, UJOB_AUTH, "alice", "alice-pw", 1000, &r, &reached), -ENETDOWN);
    assert_true(time_mono_us() - t0 < 300 * 1000);
    assert_false(reached);
    done(&r);
    /* back on the same port: the pooled connection from before the restart fails once and is replaced */
    assert_int_equal(tslapd_start(&srv), 0);
    assert_int_equal(run(&c, UJOB_AUTH, "alice", "alice-pw", 1000, &r, NULL), 0);
    done(&r);
    tslapd_stop(&srv);
    assert_int_equal(tslapd_start(&srv), 0);
    assert_non_null(c.ld);
    assert_int_equal(run(&c, UJOB_LOOKUP, "u:alice", NULL, 1000, &r, NULL), 0);
    assert_string_equal(r.user.user_name, "corp/alice");
    done(&r);
    ldapconn_close(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_authenticate),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_injection),
        cmocka_unit_test(test_lookup_and_list),
        cmocka_unit_test(test_context_csn),
        cmocka_unit_test(test_hung_directory_times_out),
        cmocka_unit_test(test_dead_and_restarted_directory),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
