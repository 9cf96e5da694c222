/* Unit tests for ldap/registry.c with a real store and real slapd servers:
 * definitions read from the `artifacts` table (with ${region.KEY}), the
 * synchronous and asynchronous API, tenancy, reconfiguration, metrics and
 * status, and isolation: a hung directory fails its own requests at the
 * deadline, then fast while marked down, and never delays another store. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../ldap/slapd.h"

#include "artifacts/artifacts.h"
#include "core/json.h"
#include "core/metrics.h"
#include "core/timeutil.h"
#include "core/xmalloc.h"
#include "ldap/userstore.h"
#include "store/db.h"
#include "store/store.h"

static struct tslapd dir_a, dir_b;
static struct refuge_conf conf;
static struct node node;
static char tmp[512];

struct row {
    const char *path;
    const char *text;
};

static int put_artifact(struct db *db, void *arg)
{
    struct row *r = arg;
    char sha[ARTIFACT_SHA_HEX];
    struct db_stmt *st;
    int rc;

    if (!r->text)
        return db_execp(db, "DELETE FROM artifacts WHERE path = $1", r->path, NULL) < 0 ? -EIO : 0;
    artifact_sha256_hex(r->text, strlen(r->text), sha);
    st = db_prepare(db, "INSERT INTO artifacts (path, content, sha256, version, updated_at)"
                        " VALUES ($1, $2, $3, 1, 0) ON CONFLICT (path) DO UPDATE SET content = excluded.content,"
                        " sha256 = excluded.sha256, version = version + 1");
    if (!st)
        return -EIO;
    db_bind_text(st, 1, r->path, -1);
    db_bind_blob(st, 2, r->text, strlen(r->text));
    db_bind_text(st, 3, sha, -1);
    rc = db_step(st);
    db_done(st);
    return rc < 0 ? -EIO : 0;
}

static void artifact(const char *path, const char *text)
{
    struct row r = { path, text };
    assert_int_equal(store_write(node.store, put_artifact, &r), 0);
}

static char *store_conf(const char *url, const char *timeout, const char *extra)
{
    return xasprintf("[userstore]\ntype = ldap\nurl = %s\nbind_dn = " TSLAPD_SERVICE_DN "\n"
                     "bind_password = " TSLAPD_SERVICE_PW "\nuser_base = ou=people," TSLAPD_SUFFIX "\n"
                     "timeout = %s\npool_size = 2\n%s",
                     url, timeout, extra ? extra : "");
}

static json_t *status(void)
{
    json_t *o = json_object();
    ldap_status_fill(&node, o);
    return o;
}

static json_t *store_status(json_t *st, const char *name)
{
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(json_object_get(st, "ldap"), "stores"), i, s)
        if (strcmp(json_string_value(json_object_get(s, "name")), name) == 0)
            return s;
    return NULL;
}

/* Waits until the registry lists `name` with `sha` (NULL: any). */
static bool wait_store(const char *name, bool present)
{
    for (int i = 0; i < 300; i++) {
        json_t *st = status();
        bool there = store_status(st, name) != NULL;
        json_decref(st);
        if (there == present)
            return true;
        time_sleep_us(10000);
    }
    return false;
}

static int setup(void **state)
{
    char err[256], *dbpath;
    struct store_opts so = { 0 };

    signal(SIGPIPE, SIG_IGN);     /* as refuged does: a directory that went away is no crash */
    snprintf(tmp, sizeof(tmp), "%s", tslapd_tmpdir("test_ldap_registry"));
    if (tslapd_init(&dir_a, tmp, "a") < 0 || tslapd_start(&dir_a) < 0 || tslapd_init(&dir_b, tmp, "b") < 0 ||
        tslapd_start(&dir_b) < 0) {
        fprintf(stderr, "cannot start slapd in %s\n", tmp);
        return -1;
    }
    dbpath = xasprintf("%s/refuge.db", tmp);
    so.path = dbpath;
    if (store_open(&so, &node.store, err, sizeof(err)) != 0) {
        fprintf(stderr, "store_open: %s\n", err);
        return -1;
    }
    free(dbpath);
    /* [region] ldap_url: the region-local URL that userstores/corp.conf references */
    conf.region.n = 1;
    conf.region.items = xcalloc(1, sizeof(struct cfg_kv));
    conf.region.items[0].key = xstrdup("ldap_url");
    conf.region.items[0].value = xstrdup(dir_a.url);
    node.conf = &conf;
    memset(node.master_key, 5, sizeof(node.master_key));
    return 0;
}

static int teardown(void **state)
{
    char cmd[600];

    userstore_stop(&node);
    store_close(node.store);
    tslapd_stop(&dir_a);
    tslapd_stop(&dir_b);
    free(conf.region.items[0].key);
    free(conf.region.items[0].value);
    free(conf.region.items);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_not_started(void **state)
{
    struct userstore_user u;
    json_t *st;

    assert_false(userstore_routes(&node, "default", "corp/alice"));
    assert_int_equal(userstore_authenticate(&node, "default", "corp/alice", "alice-pw", &u), -ESHUTDOWN);
    st = status();
    assert_int_equal(json_array_size(json_object_get(json_object_get(st, "ldap"), "stores")), 0);
    json_decref(st);
}

static void test_authenticate_through_registry(void **state)
{
    struct userstore_user u;
    char *text = store_conf("${region.ldap_url}", "1s", NULL);
    json_t *st, *s;

    artifact("userstores/corp.conf", text);
    free(text);
    assert_int_equal(userstore_start(&node), 0);
    assert_int_equal(userstore_start(&node), 0);       /* idempotent */
    assert_true(wait_store("corp", true));

    assert_true(userstore_routes(&node, "default", "corp/alice"));
    assert_true(userstore_routes(&node, "default", "CORP/whoever"));
    assert_false(userstore_routes(&node, "default", "alice"));
    assert_false(userstore_routes(&node, "default", "other/alice"));
    assert_false(userstore_routes(&node, "acme", "corp/alice"));     /* not acme's store */

    assert_int_equal(userstore_authenticate(&node, "default", "corp/alice", "alice-pw", &u), 0);
    assert_string_equal(u.user_name, "corp/alice");
    assert_int_equal(json_array_size(u.groups), 2);
    char *id = xstrdup(u.id);
    userstore_user_free(&u);
    assert_int_equal(userstore_authenticate(&node, "default", "corp/alice", "bad", &u), -EACCES);
    assert_null(u.id);
    assert_int_equal(userstore_authenticate(&node, "default", "corp/*", "alice-pw", &u), -EACCES);
    assert_int_equal(userstore_authenticate(&node, "default", "corp/alice", "", &u), -EACCES);
    assert_int_equal(userstore_authenticate(&node, "acme", "corp/alice", "alice-pw", &u), -ENOENT);
    assert_int_equal(userstore_authenticate(&node, "default", "corp/", "x", &u), -EINVAL);

    /* re-read by id; SCIM */
    /* (refusals made before any directory traffic did not mark the store down) */
    assert_int_equal(userstore_lookup(&node, "default", id, &u), 0);
    assert_string_equal(u.user_name, "corp/alice");
    userstore_user_free(&u);
    json_t *res = NULL;
    assert_int_equal(userstore_scim_get(&node, "default", id, &res), 0);
    assert_string_equal(json_string_value(json_object_get(res, "userName")), "corp/alice");
    json_decref(res);
    assert_int_equal(userstore_scim_get(&node, "default", "ldap:corp:u:nobody", &res), -ENOENT);
    assert_int_equal(userstore_scim_get(&node, "default", "ldap:gone:u:alice", &res), -ENOENT);
    assert_int_equal(userstore_scim_list(&node, "default", "corp", NULL, 1, 2, &res), 0);
    assert_int_equal(json_integer_value(json_object_get(res, "totalResults")), 4);
    assert_int_equal(json_array_size(json_object_get(res, "Resources")), 2);
    json_decref(res);
    assert_int_equal(userstore_scim_list(&node, "default", "corp", "bob", 1, 10, &res), 0);
    assert_int_equal(json_integer_value(json_object_get(res, "totalResults")), 1);
    json_decref(res);
    free(id);

    /* metrics and status */
    assert_true(metric_value(metric_counter("refuge_ldap_requests_total", "", "store,result"),
                             (const char *[]){ "corp", "ok" }) >= 5);
    assert_true(metric_value(metric_counter("refuge_ldap_requests_total", "", "store,result"),
                             (const char *[]){ "corp", "invalid_credentials" }) >= 3);
    assert_true(metric_value(metric_gauge("refuge_ldap_up", "", "store"), (const char *[]){ "corp" }) == 1);
    st = status();
    s = store_status(st, "corp");
    assert_non_null(s);
    assert_string_equal(json_string_value(json_object_get(s, "url")), dir_a.url);   /* ${region.ldap_url} */
    assert_string_equal(json_string_value(json_object_get(s, "tenant")), "default");
    assert_true(json_is_true(json_object_get(s, "up")));
    assert_true(json_integer_value(json_object_get(s, "requests_total")) >= 8);
    char *dump = jsonx_dump(st);
    assert_null(strstr(dump, TSLAPD_SERVICE_PW));     /* no secret in the status */
    free(dump);
    json_decref(st);
    /* the probe reads the directory's contextCSN */
    for (int i = 0; i < 400; i++) {
        st = status();
        s = store_status(st, "corp");
        bool have = json_array_size(json_object_get(s, "context_csn")) == 1;
        if (have) {
            int64_t t;
            int sid;
            const char *csn = json_string_value(json_array_get(json_object_get(s, "context_csn"), 0));
            assert_int_equal(ldap_csn_parse(csn, strlen(csn), &t, &sid), 0);
            assert_string_equal(json_string_value(json_object_get(s, "csn_base")), TSLAPD_SUFFIX);
            json_decref(st);
            break;
        }
        json_decref(st);
        assert_true(i < 399);
        time_sleep_us(10000);
    }
}

/* ------------------------------------------------------------- async */

struct outcome {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int pending;
    int rc[8];
    int64_t at_us[8];
    int n;
};

struct call {
    struct outcome *o;
    int slot;
};

static void on_done(void *arg, struct userstore_reply *r)
{
    struct call *c = arg;
    struct outcome *o = c->o;

    pthread_mutex_lock(&o->mu);
    o->rc[c->slot] = r->rc;
    o->at_us[c->slot] = time_mono_us();
    o->pending--;
    pthread_cond_broadcast(&o->cv);
    pthread_mutex_unlock(&o->mu);
}

static void wait_all(struct outcome *o)
{
    pthread_mutex_lock(&o->mu);
    while (o->pending > 0)
        pthread_cond_wait(&o->cv, &o->mu);
    pthread_mutex_unlock(&o->mu);
}

static double metric_of(const char *store, const char *result)
{
    return metric_value(metric_counter("refuge_ldap_requests_total", "", "store,result"),
                        (const char *[]){ store, result });
}

static void test_hung_directory_is_isolated(void **state)
{
    char *text = store_conf(dir_b.url, "1s", NULL);
    struct outcome o = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };
    struct call calls[4];
    struct userstore_user u;
    double timeouts = metric_of("corp", "timeout"), unavailable = metric_of("corp", "unavailable");
    int64_t t0;
    int i;

    artifact("userstores/fast.conf", text);
    free(text);
    assert_true(wait_store("fast", true));
    assert_int_equal(userstore_authenticate(&node, "default", "fast/bob", "bob-pw", &u), 0);
    userstore_user_free(&u);

    /* corp's directory hangs: three requests on its pool of two, one on fast's */
    tslapd_pause(&dir_a);
    o.pending = 4;
    t0 = time_mono_us();
    for (i = 0; i < 3; i++) {
        calls[i] = (struct call){ &o, i };
        assert_int_equal(userstore_authenticate_async(&node, "default", "corp/alice", "alice-pw", 8, on_done,
                                                      &calls[i]),
                         0);
    }
    calls[3] = (struct call){ &o, 3 };
    assert_int_equal(userstore_authenticate_async(&node, "default", "fast/bob", "bob-pw", 6, on_done, &calls[3]), 0);
    wait_all(&o);
    /* the other store answered at once */
    assert_int_equal(o.rc[3], 0);
    assert_true(o.at_us[3] - t0 < 500 * 1000);
    /* corp's requests ended by their deadline (1 s), the queued one too: a
     * timeout, or "unavailable" when another request (or the health probe,
     * which shares the pool) had just timed out and marked the store down */
    for (i = 0; i < 3; i++) {
        assert_true(o.rc[i] == -ETIMEDOUT || o.rc[i] == -ENETDOWN);
        assert_true(o.at_us[i] - t0 < 1600 * 1000);
    }
    assert_true(o.rc[0] == -ETIMEDOUT || o.rc[1] == -ETIMEDOUT || o.rc[2] == -ETIMEDOUT);
    assert_true(metric_of("corp", "timeout") + metric_of("corp", "unavailable") >= timeouts + unavailable + 3);
    unavailable = metric_of("corp", "unavailable");

    /* now marked down: refused at once, without queueing behind the dead server */
    t0 = time_mono_us();
    assert_int_equal(userstore_authenticate(&node, "default", "corp/alice", "alice-pw", &u), -ENETDOWN);
    assert_true(time_mono_us() - t0 < 100 * 1000);
    assert_true(metric_of("corp", "unavailable") >= unavailable + 1);
    assert_true(metric_value(metric_gauge("refuge_ldap_up", "", "store"), (const char *[]){ "corp" }) == 0);
    json_t *st = status(), *s = store_status(st, "corp");
    assert_true(json_is_false(json_object_get(s, "up")));
    assert_non_null(strstr(json_string_value(json_object_get(s, "last_error")), "no answer"));
    json_decref(st);
    /* fast is still fine meanwhile */
    assert_int_equal(userstore_authenticate(&node, "default", "fast/alice", "alice-pw", &u), 0);
    userstore_user_free(&u);

    /* the directory comes back: after the hold it is used again */
    tslapd_resume(&dir_a);
    int rc = -1;
    for (i = 0; i < 40 && rc != 0; i++) {
        rc = userstore_authenticate(&node, "default", "corp/alice", "alice-pw", &u);
        userstore_user_free(&u);
        if (rc != 0)
            time_sleep_us(100000);
    }
    assert_int_equal(rc, 0);
}

static void test_reconfigure(void **state)
{
    struct userstore_user u;
    json_t *st, *errors;
    char *text;

    /* corp moves to directory b (a changed file: a new store, the old one retired) */
    text = store_conf(dir_b.url, "2s", NULL);
    artifact("userstores/corp.conf", text);
    free(text);
    for (int i = 0; i < 300; i++) {
        st = status();
        json_t *s = store_status(st, "corp");
        bool moved = s && strcmp(json_string_value(json_object_get(s, "url")), dir_b.url) == 0;
        json_decref(st);
        if (moved)
            break;
        assert_true(i < 299);
        time_sleep_us(10000);
    }
    tslapd_stop(&dir_a);                    /* a is gone for good: corp does not care */
    assert_int_equal(userstore_authenticate(&node, "default", "corp/carol", "carol-pw", &u), 0);
    userstore_user_free(&u);

    /* a definition this node cannot use is reported, and nothing else changes */
    artifact("userstores/bad.conf", "[userstore]\ntype = ldap\nurl = ${region.nokey}\nuser_base = o=x\n");
    for (int i = 0; i < 300; i++) {
        st = status();
        errors = json_object_get(json_object_get(st, "ldap"), "errors");
        bool seen = json_array_size(errors) == 1;
        if (seen) {
            json_t *e = json_array_get(errors, 0);
            assert_string_equal(json_string_value(json_object_get(e, "path")), "userstores/bad.conf");
            assert_non_null(strstr(json_string_value(json_object_get(e, "error")), "region.nokey"));
            assert_null(store_status(st, "bad"));
            json_decref(st);
            break;
        }
        json_decref(st);
        assert_true(i < 299);
        time_sleep_us(10000);
    }
    assert_false(userstore_routes(&node, "default", "bad/alice"));
    /* a sealed bind password opens with the node's master key */
    char *sealed = NULL;
    assert_int_equal(userstore_seal_password(node.master_key, TSLAPD_SERVICE_PW, strlen(TSLAPD_SERVICE_PW), &sealed), 0);
    text = xasprintf("[userstore]\ntype = ldap\nurl = %s\nbind_dn = " TSLAPD_SERVICE_DN "\nbind_password = %s\n"
                     "user_base = ou=people," TSLAPD_SUFFIX "\n",
                     dir_b.url, sealed);
    artifact("userstores/sealed.conf", text);
    free(text);
    free(sealed);
    assert_true(wait_store("sealed", true));
    assert_int_equal(userstore_authenticate(&node, "default", "sealed/bob", "bob-pw", &u), 0);
    userstore_user_free(&u);

    /* a deleted file takes its store away */
    artifact("userstores/corp.conf", NULL);
    assert_true(wait_store("corp", false));
    assert_false(userstore_routes(&node, "default", "corp/alice"));
    assert_int_equal(userstore_authenticate(&node, "default", "corp/alice", "alice-pw", &u), -ENOENT);
}

static void test_stop(void **state)
{
    struct userstore_user u;

    userstore_stop(&node);
    userstore_stop(&node);
    assert_int_equal(userstore_authenticate(&node, "default", "fast/bob", "bob-pw", &u), -ESHUTDOWN);
    assert_false(userstore_routes(&node, "default", "fast/bob"));
    /* and it starts again */
    assert_int_equal(userstore_start(&node), 0);
    assert_int_equal(userstore_authenticate(&node, "default", "fast/bob", "bob-pw", &u), 0);
    userstore_user_free(&u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_not_started),
        cmocka_unit_test(test_authenticate_through_registry),
        cmocka_unit_test(test_hung_directory_is_isolated),
        cmocka_unit_test(test_reconfigure),
        cmocka_unit_test(test_stop),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
