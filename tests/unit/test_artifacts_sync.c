/*
 * test_artifacts_sync — the importer and the materializer against a real
 * store, driven pass by pass without the watcher thread: a file becomes a
 * row and a tenant in one job, invalid files are rejected and the last good
 * version kept, deletes keep the tenant, region references resolve per node;
 * the table becomes files byte for byte, local edits are drift and are
 * overwritten, rows never write outside the directory.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "artifacts/artifacts_internal.h"
#include "core/arena.h"
#include "core/xmalloc.h"
#include "identity/keyring.h"
#include "identity/tenant.h"
#include "store/db.h"
#include "store/store.h"

/* ------------------------------------------------------------ fixture */

struct fixture {
    char dir[512];
    char art[600];               /* the active node's artifact dir */
    char art2[600];              /* a standby's artifact dir (same store) */
    struct refuge_conf conf, conf2;
    struct cfg_kv region[2];
    struct node n, n2;
    struct store *s;
    struct artifacts *a, *b;
};

static void rm_rf(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    char p[1200];
    struct stat st;

    if (d) {
        while ((e = readdir(d))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
            if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
                rm_rf(p);
            else
                unlink(p);
        }
        closedir(d);
    }
    rmdir(path);
}

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    const char *base = getenv("REFUGE_TEST_TMP");
    char err[256], dbpath[700];
    struct store_opts o = { 0 };
    int rc;

    if (!base || !*base)
        base = "/tmp";
    mkdir(base, 0700);
    snprintf(f->dir, sizeof(f->dir), "%s/artifacts-sync-XXXXXX", base);
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->art, sizeof(f->art), "%s/art", f->dir);
    snprintf(f->art2, sizeof(f->art2), "%s/art2", f->dir);
    snprintf(dbpath, sizeof(dbpath), "%s/refuge.db", f->dir);
    o.path = dbpath;
    if (store_open(&o, &f->s, err, sizeof(err)) != 0)
        fail_msg("store_open: %s", err);

    f->region[0].key = xstrdup("display");
    f->region[0].value = xstrdup("Acme in region A");
    f->region[1].key = xstrdup("ttl");
    f->region[1].value = xstrdup("20m");
    f->conf.public_url = "http://127.0.0.1:1";
    f->conf.artifacts_dir = f->art;
    f->conf.region.items = f->region;
    f->conf.region.n = 2;
    f->conf2 = f->conf;
    f->conf2.artifacts_dir = f->art2;

    f->n.conf = &f->conf;
    f->n.store = f->s;
    memset(f->n.master_key, 7, sizeof(f->n.master_key));
    f->n.keyring = keyring_new(f->n.master_key);
    atomic_store(&f->n.role, NODE_ACTIVE);
    f->n2 = f->n;       /* same store: stands for a standby that applied it all */
    f->n2.conf = &f->conf2;
    f->n2.keyring = NULL;
    atomic_store(&f->n2.role, NODE_STANDBY);

    f->a = artifacts_new(&f->n, &rc);
    assert_non_null(f->a);
    f->b = artifacts_new(&f->n2, &rc);
    assert_non_null(f->b);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    artifacts_free(f->a);
    artifacts_free(f->b);
    store_close(f->s);
    keyring_free(f->n.keyring);
    for (size_t i = 0; i < 2; i++) {
        free(f->region[i].key);
        free(f->region[i].value);
    }
    rm_rf(f->dir);
    free(f);
    return 0;
}

/* ------------------------------------------------------------ helpers */

static void put(const char *dir, const char *rel, const char *text)
{
    char p[1200], tmp[1300];
    FILE *fp;

    /* like an editor that saves by rename */
    snprintf(p, sizeof(p), "%s/%s", dir, rel);
    snprintf(tmp, sizeof(tmp), "%s.tmp~", p);
    fp = fopen(tmp, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    assert_int_equal(rename(tmp, p), 0);
}

static void del(const char *dir, const char *rel)
{
    char p[1200];

    snprintf(p, sizeof(p), "%s/%s", dir, rel);
    assert_int_equal(unlink(p), 0);
}

/* File contents (malloc'd) or NULL when missing. */
static char *slurp(const char *dir, const char *rel)
{
    char p[1200];
    FILE *fp;
    char *buf = xcalloc(1, 65536);
    size_t n;

    snprintf(p, sizeof(p), "%s/%s", dir, rel);
    fp = fopen(p, "r");
    if (!fp) {
        free(buf);
        return NULL;
    }
    n = fread(buf, 1, 65535, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

static bool exists(const char *dir, const char *rel)
{
    char p[1200];

    snprintf(p, sizeof(p), "%s/%s", dir, rel);
    return access(p, F_OK) == 0;
}

/* version of the row, 0 when there is none */
static int64_t row_version(struct fixture *f, const char *path)
{
    struct db_stmt *st = db_prepare(store_reader(f->s), "SELECT version FROM artifacts WHERE path = $1");
    int64_t v = 0;

    assert_non_null(st);
    db_bind_text(st, 1, path, -1);
    if (db_step(st) == DB_ROW)
        v = db_col_int64(st, 0);
    db_done(st);
    return v;
}

static int64_t count_sql(struct fixture *f, const char *sql, const char *arg)
{
    struct db_stmt *st = db_prepare(store_reader(f->s), sql);
    int64_t v;

    assert_non_null(st);
    if (arg)
        db_bind_text(st, 1, arg, -1);
    assert_int_equal(db_step(st), DB_ROW);
    v = db_col_int64(st, 0);
    db_done(st);
    return v;
}

struct tload {
    struct arena ar;
    struct tenant t;
    int rc;
};

static void tload(struct fixture *f, const char *name, struct tload *out)
{
    arena_init(&out->ar);
    out->rc = tenant_load(store_reader(f->s), name, f->conf.public_url, &out->ar, &out->t);
}

static const char *file_status(struct artifacts *a, const char *path, char *err, size_t errlen)
{
    struct art_file *fl;
    const char *s = "none";

    pthread_mutex_lock(&a->mu);
    fl = artifacts_file(a, path, false);
    if (fl) {
        s = fl->status == ART_REJECTED ? "rejected" : "ok";
        snprintf(err, errlen, "%s", fl->last_error);
    }
    pthread_mutex_unlock(&a->mu);
    return s;
}

struct sql_arg {
    const char *sql;
    const char *a1, *a2;
};

static int run_sql(struct db *db, void *arg)
{
    struct sql_arg *s = arg;

    return db_execp(db, s->sql, s->a1, s->a2, NULL);
}

static void write_sql(struct fixture *f, const char *sql, const char *a1, const char *a2)
{
    struct sql_arg s = { sql, a1, a2 };

    assert_int_equal(store_write(f->s, run_sql, &s), 0);
}

/* Every row's content equals the standby file, and nothing else is there. */
static void assert_materialized(struct fixture *f)
{
    struct db_stmt *st = db_prepare(store_reader(f->s), "SELECT path, content FROM artifacts");
    int rows = 0, files = 0;
    const char *subs[] = { "tenants", "userstores" };

    assert_non_null(st);
    while (db_step(st) == DB_ROW) {
        char *disk = slurp(f->art2, db_col_text(st, 0));
        if (!disk)
            fail_msg("%s not materialized", db_col_text(st, 0));
        assert_int_equal(strlen(disk), db_col_bytes(st, 1));
        assert_memory_equal(disk, db_col_blob(st, 1), db_col_bytes(st, 1));
        free(disk);
        rows++;
    }
    db_done(st);
    for (size_t i = 0; i < 2; i++) {
        char p[700];
        DIR *d;
        struct dirent *e;
        char name[ARTIFACT_NAME_MAX + 1];

        snprintf(p, sizeof(p), "%s/%s", f->art2, subs[i]);
        d = opendir(p);
        assert_non_null(d);
        while ((e = readdir(d)))
            files += artifact_fname_class(e->d_name, name) == 1;
        closedir(d);
    }
    assert_int_equal(rows, files);
}

/* ------------------------------------------------------------ importer */

static void test_import_lifecycle(void **state)
{
    struct fixture *f = *state;
    struct tload t;
    char err[ART_ERROR_MAX];

    /* create: row v1, tenant, its first signing key */
    put(f->art, "tenants/acme.conf",
        "[tenant]\ndisplay_name = Acme\n[tokens]\naccess_token_ttl = 10m\n");
    assert_int_equal(artifacts_import_scan(f->a, false), 0);
    assert_int_equal(row_version(f, "tenants/acme.conf"), 1);
    tload(f, "acme", &t);
    assert_int_equal(t.rc, 0);
    assert_string_equal(t.t.display_name, "Acme");
    assert_int_equal(t.t.s.access_token_ttl, 600);
    arena_free(&t.ar);
    assert_int_equal(count_sql(f, "SELECT count(*) FROM signing_keys WHERE tenant = $1", "acme"), 1);
    assert_int_equal(atomic_load(&f->a->imported_total), 1);

    /* nothing changed: no write at all */
    assert_int_equal(artifacts_import_scan(f->a, false), 0);
    assert_int_equal(row_version(f, "tenants/acme.conf"), 1);
    assert_int_equal(atomic_load(&f->a->imported_total), 1);

    /* modify: v2, tenant follows, still one key */
    put(f->art, "tenants/acme.conf",
        "[tenant]\ndisplay_name = Acme Corp\n[tokens]\naccess_token_ttl = 5m\n");
    assert_int_equal(artifacts_import_scan(f->a, false), 0);
    assert_int_equal(row_version(f, "tenants/acme.conf"), 2);
    tload(f, "acme", &t);
    assert_string_equal(t.t.display_name, "Acme Corp");
    assert_int_equal(t.t.s.access_token_ttl, 300);
    arena_free(&t.ar);
    assert_int_equal(count_sql(f, "SELECT count(*) FROM signing_keys WHERE tenant = $1", "acme"), 1);

    /* invalid: rejected once, v2 and its effect stay */
    put(f->art, "tenants/acme.conf",
        "[tenant]\ndisplay_name = Broken\n[tokens]\naccess_token_ttl = forever\n");
    assert_int_equal(artifacts_import_scan(f->a, false), 0);
    assert_string_equal(file_status(f->a, "tenants/acme.conf", err, sizeof(err)), "rejected");
    assert_non_null(strstr(err, "tenants/acme.conf:4: tokens.access_token_ttl:"));
    assert_int_equal(row_version(f, "tenants/acme.conf"), 2);
    tload(f, "acme", &t);
    assert_string_equal(t.t.display_name, "Acme Corp");
    arena_free(&t.ar);
    assert_int_equal(atomic_load(&f->a->errors_total), 1);
    assert_int_equal(artifacts_import_scan(f->a, false), 0);      /* not counted twice */
    assert_int_equal(atomic_load(&f->a->errors_total), 1);

    /* fixed: v3, status ok */
    put(f->art, "tenants/acme.conf", "[tenant]\ndisplay_name = Acme Fixed\n");
    assert_int_equal(artifacts_import_scan(f->a, false), 0);
    assert_int_equal(row_version(f, "tenants/acme.conf"), 3);
    assert_string_equal(file_status(f->a, "tenants/acme.conf", err, sizeof(err)), "ok");
    assert_string_equal(err, "");
    tload(f, "acme", &t);
    assert_string_equal(t.t.display_name, "Acme Fixed");
    assert_int_equal(t.t.s.access_token_ttl, 3600);   /* no longer set: the default */
    arena_free(&t.ar);

    /* delete: the row goes, the tenant and its key stay */
    del(f->art, "tenants/acme.conf");
    assert_int_equal(artifacts_import_scan(f->a, false), 0);
    assert_int_equal(row_version(f, "tenants/acme.conf"), 0);
    tload(f, "acme", &t);
    assert_int_equal(t.rc, 0);
    arena_free(&t.ar);
    assert_int_equal(count_sql(f, "SELECT count(*) FROM signing_keys WHERE tenant = $1", "acme"), 1);
}

static void test_import_rename_and_ignored(void **state)
{
    struct fixture *f = *state;
    char p1[700], p2[700], err[ART_ERROR_MAX];
    struct tload t;

    put(f->art, "tenants/one.conf", "[tenant]\ndisplay_name = One\n");
    put(f->art, "userstores/corp.conf",
        "[userstore]\ntype = ldap\nurl = ldap://ldap.example\nuser_base = dc=example\n");
    put(f->art, "tenants/notes.txt", "not an artifact");
    put(f->art, "tenants/.one.conf.swp", "vim swap");
    put(f->art, "tenants/Bad_Name.conf", "[tenant]\ndisplay_name = x\n");
    assert_int_equal(artifacts_import_scan(f->a, false), 0);
    assert_int_equal(row_version(f, "tenants/one.conf"), 1);
    assert_int_equal(row_version(f, "userstores/corp.conf"), 1);
    assert_int_equal(count_sql(f, "SELECT count(*) FROM artifacts", NULL), 2);
    assert_int_equal(count_sql(f, "SELECT count(*) FROM tenants WHERE name = $1", "corp"), 0);
    assert_string_equal(file_status(f->a, "tenants/Bad_Name.conf", err, sizeof(err)), "rejected");
    assert_non_null(strstr(err, "lowercase DNS label"));

    /* rename one -> two: one transaction deletes the old row and makes the new */
    snprintf(p1, sizeof(p1), "%s/tenants/one.conf", f->art);
    snprintf(p2, sizeof(p2), "%s/tenants/two.conf", f->art);
    assert_int_equal(rename(p1, p2), 0);
    assert_int_equal(artifacts_import_scan(f->a, false), 0);
    assert_int_equal(row_version(f, "tenants/one.conf"), 0);
    assert_int_equal(row_version(f, "tenants/two.conf"), 1);
    tload(f, "two", &t);
    assert_int_equal(t.rc, 0);
    assert_string_equal(t.t.display_name, "One");
    arena_free(&t.ar);
    tload(f, "one", &t);
    assert_int_equal(t.rc, 0);        /* stays: tenants are deleted through the admin API */
    arena_free(&t.ar);

    /* a rejected file that disappears leaves no status behind */
    del(f->art, "tenants/Bad_Name.conf");
    assert_int_equal(artifacts_import_scan(f->a, false), 0);
    assert_string_equal(file_status(f->a, "tenants/Bad_Name.conf", err, sizeof(err)), "none");
}

static void test_import_missing_dir_keeps_rows(void **state)
{
    struct fixture *f = *state;
    char p[700];

    put(f->art, "userstores/corp.conf",
        "[userstore]\ntype = ldap\nurl = ldap://ldap.example\nuser_base = dc=example\n");
    assert_int_equal(artifacts_import_scan(f->a, false), 0);
    assert_int_equal(row_version(f, "userstores/corp.conf"), 1);
    /* the whole directory vanishes (an unmounted volume): rows are kept */
    del(f->art, "userstores/corp.conf");
    snprintf(p, sizeof(p), "%s/userstores", f->art);
    assert_int_equal(rmdir(p), 0);
    assert_int_equal(artifacts_import_scan(f->a, false), 0);
    assert_int_equal(row_version(f, "userstores/corp.conf"), 1);
    /* an empty directory is an instruction */
    assert_int_equal(mkdir(p, 0700), 0);
    assert_int_equal(artifacts_import_scan(f->a, false), 0);
    assert_int_equal(row_version(f, "userstores/corp.conf"), 0);
}

static void test_import_owned_keys(void **state)
{
    struct fixture *f = *state;
    struct tload t;

    put(f->art, "tenants/own.conf", "[tenant]\ndisplay_name = Own\n[tokens]\ncode_ttl = 90s\n");
    assert_int_equal(artifacts_import_scan(f->a, false), 0);
    /* the admin API sets keys meanwhile */
    write_sql(f, "UPDATE tenants SET settings = $1 WHERE name = $2",
              "{\"argon2\":{\"iterations\":3},\"access_token_ttl\":42,\"code_ttl\":30}", "own");
    /* the next change of the file: owned keys follow the file, argon2 stays */
    put(f->art, "tenants/own.conf", "[tenant]\ndisplay_name = Own\n[tokens]\ncode_ttl = 2m\n");
    assert_int_equal(artifacts_import_scan(f->a, false), 0);
    tload(f, "own", &t);
    assert_int_equal(t.rc, 0);
    assert_int_equal(t.t.s.code_ttl, 120);
    assert_int_equal(t.t.s.access_token_ttl, 3600);   /* owned, absent from the file: default */
    assert_int_equal(t.t.s.argon2_iterations, 3);     /* not owned: kept */
    arena_free(&t.ar);
}

static void test_import_region_and_reapply(void **state)
{
    struct fixture *f = *state;
    struct tload t;
    char *raw;

    put(f->art, "tenants/reg.conf",
        "[tenant]\ndisplay_name = ${region.display}\n[tokens]\naccess_token_ttl = ${region.ttl}\n");
    assert_int_equal(artifacts_import_scan(f->a, false), 0);
    tload(f, "reg", &t);
    assert_string_equal(t.t.display_name, "Acme in region A");
    assert_int_equal(t.t.s.access_token_ttl, 1200);
    arena_free(&t.ar);
    /* the row keeps the raw bytes */
    raw = slurp(f->art, "tenants/reg.conf");
    assert_int_equal(count_sql(f, "SELECT count(*) FROM artifacts WHERE content = CAST($1 AS BLOB)", raw), 1);
    free(raw);

    /* this node's region values change (another region, or refuge.conf edited):
     * a node becoming active re-resolves; the row does not change */
    free(f->region[0].value);
    f->region[0].value = xstrdup("Acme in region B");
    assert_int_equal(artifacts_import_scan(f->a, false), 0);
    tload(f, "reg", &t);
    assert_string_equal(t.t.display_name, "Acme in region A");     /* plain scan: no */
    arena_free(&t.ar);
    assert_int_equal(artifacts_import_scan(f->a, true), 0);
    tload(f, "reg", &t);
    assert_string_equal(t.t.display_name, "Acme in region B");
    arena_free(&t.ar);
    assert_int_equal(row_version(f, "tenants/reg.conf"), 1);

    /* an unresolved reference is a rejection naming file:line:key */
    put(f->art, "tenants/unres.conf", "[tenant]\ndisplay_name = x\n[branding]\ntitle = ${region.nope}\n");
    assert_int_equal(artifacts_import_scan(f->a, false), 0);
    {
        char err[ART_ERROR_MAX];
        assert_string_equal(file_status(f->a, "tenants/unres.conf", err, sizeof(err)), "rejected");
        assert_non_null(strstr(err, "tenants/unres.conf:4: branding.title: unresolved reference "
                                    "${region.nope}"));
    }
    assert_int_equal(row_version(f, "tenants/unres.conf"), 0);
    assert_int_equal(count_sql(f, "SELECT count(*) FROM tenants WHERE name = $1", "unres"), 0);
}

static void test_import_not_on_standby(void **state)
{
    struct fixture *f = *state;

    put(f->art, "tenants/sb.conf", "[tenant]\ndisplay_name = Sb\n");
    atomic_store(&f->n.role, NODE_STANDBY);
    assert_int_equal(artifacts_import_scan(f->a, false), -EROFS);
    assert_int_equal(row_version(f, "tenants/sb.conf"), 0);
    /* a read-only store (fenced) fails the job: retried later, not rejected */
    atomic_store(&f->n.role, NODE_ACTIVE);
    store_set_readonly(f->s, true);
    assert_int_equal(artifacts_import_scan(f->a, false), -EROFS);
    {
        char err[ART_ERROR_MAX];
        assert_string_equal(file_status(f->a, "tenants/sb.conf", err, sizeof(err)), "ok");
        assert_non_null(strstr(err, "not imported yet"));
    }
    store_set_readonly(f->s, false);
    assert_int_equal(artifacts_import_scan(f->a, false), 0);
    assert_int_equal(row_version(f, "tenants/sb.conf"), 1);
}

/* -------------------------------------------------------- materializer */

static void test_materialize(void **state)
{
    struct fixture *f = *state;
    char *c;

    put(f->art, "tenants/m1.conf", "[tenant]\ndisplay_name = M1\n");
    put(f->art, "userstores/u1.conf",
        "[userstore]\ntype = ldap\nurl = ldap://ldap.example\nuser_base = dc=example\n");
    assert_int_equal(artifacts_import_scan(f->a, false), 0);
    /* first pass on a fresh standby: files appear, nothing is drift */
    assert_int_equal(artifacts_materialize(f->b), 0);
    assert_materialized(f);
    assert_int_equal(atomic_load(&f->b->drift_total), 0);
    assert_int_equal(atomic_load(&f->b->materialized_total), 2);
    /* idempotent */
    assert_int_equal(artifacts_materialize(f->b), 0);
    assert_int_equal(atomic_load(&f->b->materialized_total), 2);

    /* an update on the active: normal, not drift */
    put(f->art, "tenants/m1.conf", "[tenant]\ndisplay_name = M1 v2\n");
    assert_int_equal(artifacts_import_scan(f->a, false), 0);
    assert_int_equal(artifacts_materialize(f->b), 0);
    assert_materialized(f);
    assert_int_equal(atomic_load(&f->b->drift_total), 0);

    /* a local edit on the standby: drift, overwritten */
    put(f->art2, "tenants/m1.conf", "[tenant]\ndisplay_name = edited on the standby\n");
    assert_int_equal(artifacts_materialize(f->b), 0);
    assert_int_equal(atomic_load(&f->b->drift_total), 1);
    c = slurp(f->art2, "tenants/m1.conf");
    assert_string_equal(c, "[tenant]\ndisplay_name = M1 v2\n");
    free(c);

    /* an extra file: drift, removed; notes and editor files are left alone */
    put(f->art2, "tenants/extra.conf", "[tenant]\ndisplay_name = extra\n");
    put(f->art2, "tenants/README", "notes");
    assert_int_equal(artifacts_materialize(f->b), 0);
    assert_int_equal(atomic_load(&f->b->drift_total), 2);
    assert_false(exists(f->art2, "tenants/extra.conf"));
    assert_true(exists(f->art2, "tenants/README"));

    /* a file this node wrote and someone removed: drift, written again */
    del(f->art2, "userstores/u1.conf");
    assert_int_equal(artifacts_materialize(f->b), 0);
    assert_int_equal(atomic_load(&f->b->drift_total), 3);
    assert_true(exists(f->art2, "userstores/u1.conf"));

    /* a delete on the active: the file goes, not drift */
    del(f->art, "userstores/u1.conf");
    assert_int_equal(artifacts_import_scan(f->a, false), 0);
    assert_int_equal(artifacts_materialize(f->b), 0);
    assert_false(exists(f->art2, "userstores/u1.conf"));
    assert_int_equal(atomic_load(&f->b->drift_total), 3);
    assert_materialized(f);

    /* a stale temp file of an interrupted write is cleaned up */
    put(f->art2, "tenants/.m1.conf.refuge-tmp.AbC123", "partial");
    assert_int_equal(artifacts_materialize(f->b), 0);
    assert_false(exists(f->art2, "tenants/.m1.conf.refuge-tmp.AbC123"));
}

static void test_materialize_after_restart_counts_drift(void **state)
{
    struct fixture *f = *state;
    struct artifacts *fresh;
    int rc;

    put(f->art, "tenants/r.conf", "[tenant]\ndisplay_name = R\n");
    assert_int_equal(artifacts_import_scan(f->a, false), 0);
    assert_int_equal(artifacts_materialize(f->b), 0);
    /* edited while the standby was down: a new instance knows nothing it wrote */
    put(f->art2, "tenants/r.conf", "[tenant]\ndisplay_name = edited while stopped\n");
    fresh = artifacts_new(&f->n2, &rc);
    assert_non_null(fresh);
    assert_int_equal(artifacts_materialize(fresh), 0);
    assert_int_equal(atomic_load(&fresh->drift_total), 1);
    assert_materialized(f);
    artifacts_free(fresh);
}

static void test_materialize_refuses_bad_paths(void **state)
{
    struct fixture *f = *state;
    char p[700];

    write_sql(f, "INSERT INTO artifacts(path, content, sha256, version, updated_at) "
                 "VALUES ($1, CAST($2 AS BLOB), 'x', 1, 0)",
              "tenants/../../evil.conf", "[tenant]\ndisplay_name = evil\n");
    write_sql(f, "INSERT INTO artifacts(path, content, sha256, version, updated_at) "
                 "VALUES ($1, CAST($2 AS BLOB), 'x', 1, 0)",
              "/tmp/evil.conf", "x");
    write_sql(f, "INSERT INTO artifacts(path, content, sha256, version, updated_at) "
                 "VALUES ($1, CAST($2 AS BLOB), 'x', 1, 0)",
              "tenants/ok.conf", "[tenant]\ndisplay_name = ok\n");
    assert_int_equal(artifacts_materialize(f->b), 0);
    snprintf(p, sizeof(p), "%s/evil.conf", f->dir);
    assert_int_equal(access(p, F_OK), -1);
    assert_false(exists(f->art2, "../evil.conf"));
    /* the good row is written even though its sha256 column is wrong: the bytes decide */
    assert_true(exists(f->art2, "tenants/ok.conf"));
    assert_int_equal(artifacts_materialize(f->b), 0);
    assert_int_equal(atomic_load(&f->b->drift_total), 0);
}

/* promotion: the standby's directory already equals the table, so the
 * importer that takes over finds nothing to import */
static void test_promotion_imports_nothing(void **state)
{
    struct fixture *f = *state;
    struct artifacts *promoted;
    int rc;

    put(f->art, "tenants/p.conf", "[tenant]\ndisplay_name = P\n");
    assert_int_equal(artifacts_import_scan(f->a, false), 0);
    assert_int_equal(artifacts_materialize(f->b), 0);
    atomic_store(&f->n2.role, NODE_ACTIVE);
    promoted = artifacts_new(&f->n2, &rc);
    assert_non_null(promoted);
    assert_int_equal(artifacts_materialize(promoted), 0);
    assert_int_equal(artifacts_import_scan(promoted, true), 0);
    assert_int_equal(atomic_load(&promoted->imported_total), 0);
    assert_int_equal(row_version(f, "tenants/p.conf"), 1);
    /* and an edit there is imported */
    put(f->art2, "tenants/p.conf", "[tenant]\ndisplay_name = P on the new active\n");
    assert_int_equal(artifacts_import_scan(promoted, false), 0);
    assert_int_equal(row_version(f, "tenants/p.conf"), 2);
    artifacts_free(promoted);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_import_lifecycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_import_rename_and_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_import_missing_dir_keeps_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_import_owned_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_import_region_and_reapply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_import_not_on_standby, setup, teardown),
        cmocka_unit_test_setup_teardown(test_materialize, setup, teardown),
        cmocka_unit_test_setup_teardown(test_materialize_after_restart_counts_drift, setup, teardown),
        cmocka_unit_test_setup_teardown(test_materialize_refuses_bad_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_promotion_imports_nothing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
