/*
 * importer — the active node's half: the artifact directory is the
 * operator's source of truth and the `artifacts` table follows it.
 *
 * One pass (artifacts_import_scan) looks at the directory as it is now:
 *
 *   1. read (path, sha256) of every row;
 *   2. for each NAME.conf in tenants/ and userstores/: digest it (stat cache);
 *      equal to its row -> ok; equal to a digest already rejected -> still
 *      rejected (not logged again); else validate with this node's [region]
 *      values: invalid -> rejected (log line file:line:key, metric, admin
 *      status), the row and its effect stay as they were; valid -> a change;
 *   3. a row whose file is gone -> a delete, but only when its directory
 *      could be listed (a missing or unreadable tenants/ is an accident, not
 *      an instruction to forget every tenant);
 *   4. all changes go to the writer as ONE job, each change under its own
 *      savepoint: the row upsert (version + 1) and its effect commit
 *      together or not at all, and a rename (one delete + one create) lands
 *      in one transaction, hence in one replication record.
 *
 * Effect of a tenant artifact (same savepoint as its row):
 *   - no such tenant: tenant_insert + its first signing key (like
 *     POST /admin/v1/tenants), so the tenant can issue tokens at once;
 *   - else tenant_update: display_name from the file; in the settings
 *     document the file owns the keys its schema covers (token lifetimes,
 *     grant_types, password_policy, lockout): those are replaced by what the
 *     file sets (absent = default), other keys (argon2) stay as the admin
 *     API left them. An admin change to an owned key lasts until the file
 *     next changes.
 *   - file deleted: the artifact row goes, the tenant STAYS. Deleting a
 *     tenant deletes its users, clients and keys; a stray `rm` or a botched
 *     rename must not do that. The log says so; the admin API
 *     (DELETE /admin/v1/tenants/NAME) is the way to delete it.
 * Userstore artifacts have no effect here: the LDAP userstore reads them.
 *
 * Region references: the row keeps the raw bytes (identical in both
 * regions); effects use this node's values. When a node becomes active it
 * re-resolves tenant artifacts that use ${region.KEY} (reapply) and updates
 * the tenant where this region's values differ.
 */
#include "artifacts/artifacts_internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/arena.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/xmalloc.h"
#include "identity/keyring.h"
#include "identity/tenant.h"

/* Keys of the tenant settings document that a tenant artifact owns. */
static const char *const owned_keys[] = {
    "access_token_ttl", "refresh_token_ttl", "id_token_ttl", "code_ttl", "session_ttl",
    "grant_types", "password_policy", "lockout", NULL,
};

enum change_op { CH_UPSERT, CH_DELETE, CH_REAPPLY };

struct change {
    char path[ARTIFACT_PATH_MAX];
    char name[ARTIFACT_NAME_MAX + 1];
    enum artifact_kind kind;
    enum change_op op;
    char *content;               /* CH_UPSERT: the file's bytes (owned) */
    size_t len;
    char sha[ARTIFACT_SHA_HEX];
    char *display_name;          /* tenant effect (owned) */
    json_t *settings;            /* owned keys the file sets (owned reference) */
    /* results, written on the writer thread */
    int rc;
    int64_t version;
    bool tenant_created, tenant_updated;
    char msg[256];
};

/*
 * One write job. Shared by the importer thread and the writer: the last of
 * the two to let go frees it, so a thread that stops waiting (shutdown)
 * leaves nothing dangling. The job refers to the node, never to struct
 * artifacts (which may be gone by the time an abandoned job runs).
 */
struct import_job {
    struct node *n;
    struct change *ch;
    size_t nch, cap;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool finished;
    int rc;
    int refs;
};

/* ------------------------------------------------------------------------ */
/* The job                                                                  */
/* ------------------------------------------------------------------------ */

static struct import_job *job_new(struct node *n)
{
    struct import_job *j = xcalloc(1, sizeof(*j));

    j->n = n;
    j->refs = 1;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    return j;
}

static void job_unref(struct import_job *j)
{
    bool last;
    size_t i;

    pthread_mutex_lock(&j->mu);
    last = --j->refs == 0;
    pthread_mutex_unlock(&j->mu);
    if (!last)
        return;
    for (i = 0; i < j->nch; i++) {
        free(j->ch[i].content);
        free(j->ch[i].display_name);
        json_decref(j->ch[i].settings);
    }
    free(j->ch);
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

static struct change *job_add(struct import_job *j, const char *path, enum change_op op)
{
    struct change *ch;

    if (j->nch == j->cap) {
        j->cap = j->cap ? j->cap * 2 : 8;
        j->ch = xrealloc(j->ch, j->cap * sizeof(*j->ch));
    }
    ch = &j->ch[j->nch++];
    memset(ch, 0, sizeof(*ch));
    snprintf(ch->path, sizeof(ch->path), "%s", path);
    ch->kind = artifact_path_parse(path, ch->name);
    ch->op = op;
    return ch;
}

/* Stored settings with the owned keys replaced by the file's. New reference. */
static json_t *merge_owned(const json_t *stored, const json_t *file)
{
    json_t *out = json_is_object(stored) ? json_deep_copy(stored) : json_object();
    size_t i;

    for (i = 0; owned_keys[i]; i++)
        json_object_del(out, owned_keys[i]);
    if (file)
        json_object_update(out, (json_t *)file);
    return out;
}

/* The tenant row of a tenant artifact, on the writer thread. */
static int tenant_effect(struct db *db, struct import_job *j, struct change *ch)
{
    const struct refuge_conf *c = j->n->conf;
    struct arena ar;
    struct tenant t;
    json_t *stored = NULL, *merged = NULL;
    int64_t ttl;
    int rc;

    arena_init(&ar);
    rc = tenant_load(db, ch->name, c->public_url, &ar, &t);
    if (rc == -ENOENT) {
        if (ch->op == CH_REAPPLY) {     /* deleted through the admin API meanwhile: leave it */
            rc = 0;
            goto out;
        }
        rc = tenant_insert(db, ch->name, ch->display_name, ch->settings);
        if (rc == 0)
            rc = tenant_max_token_ttl(db, ch->name, &ttl);
        if (rc == 0)
            rc = keyring_rotate(db, j->n->master_key, ch->name, "ES256", ttl, NULL);
        if (rc < 0)
            snprintf(ch->msg, sizeof(ch->msg), "creating tenant %s failed: %s", ch->name,
                     strerror(-rc));
        ch->tenant_created = rc == 0;
        goto out;
    }
    if (rc < 0) {
        snprintf(ch->msg, sizeof(ch->msg), "reading tenant %s failed: %s", ch->name, strerror(-rc));
        goto out;
    }
    stored = t.settings_text ? json_loads(t.settings_text, 0, NULL) : NULL;
    if (!json_is_object(stored)) {
        json_decref(stored);
        stored = json_object();
    }
    merged = merge_owned(stored, ch->settings);
    if (json_equal(merged, stored) && strcmp(t.display_name, ch->display_name) == 0)
        goto out;               /* nothing to change: no write, nothing to replicate */
    rc = tenant_update(db, ch->name, ch->display_name, merged);
    if (rc < 0)
        snprintf(ch->msg, sizeof(ch->msg), "updating tenant %s failed: %s", ch->name, strerror(-rc));
    ch->tenant_updated = rc == 0;
out:
    json_decref(stored);
    json_decref(merged);
    arena_free(&ar);
    return rc;
}

static int upsert_row(struct db *db, struct change *ch)
{
    struct db_stmt *st;
    int rc;

    st = db_prepare(db, "INSERT INTO artifacts(path, content, sha256, version, updated_at) "
                        "VALUES ($1, $2, $3, 1, $4) "
                        "ON CONFLICT(path) DO UPDATE SET content = excluded.content, "
                        "sha256 = excluded.sha256, version = artifacts.version + 1, "
                        "updated_at = excluded.updated_at "
                        "WHERE artifacts.sha256 <> excluded.sha256");
    if (!st)
        return -EIO;
    db_bind_text(st, 1, ch->path, -1);
    db_bind_blob(st, 2, ch->content ? ch->content : "", ch->len);
    db_bind_text(st, 3, ch->sha, -1);
    db_bind_int64(st, 4, time_wall_us() / 1000000);
    rc = db_step(st);
    db_done(st);
    if (rc < 0)
        return identity_db_errno(rc);
    st = db_prepare(db, "SELECT version FROM artifacts WHERE path = $1");
    if (!st)
        return -EIO;
    db_bind_text(st, 1, ch->path, -1);
    rc = db_step(st);
    if (rc == DB_ROW)
        ch->version = db_col_int64(st, 0);
    db_done(st);
    return rc == DB_ROW ? 0 : rc < 0 ? identity_db_errno(rc) : -EIO;
}

static int apply_change(struct db *db, struct import_job *j, struct change *ch)
{
    int rc;

    switch (ch->op) {
    case CH_DELETE:
        return identity_db_errno(db_execp(db, "DELETE FROM artifacts WHERE path = $1", ch->path, NULL));
    case CH_UPSERT:
        rc = upsert_row(db, ch);
        if (rc < 0)
            return rc;
        return ch->kind == ARTIFACT_TENANT ? tenant_effect(db, j, ch) : 0;
    case CH_REAPPLY:
        return tenant_effect(db, j, ch);
    }
    return -EINVAL;
}

/* Writer thread: every change under its own savepoint. */
static int job_run(struct db *db, void *arg)
{
    struct import_job *j = arg;
    size_t i;
    int rc;

    for (i = 0; i < j->nch; i++) {
        struct change *ch = &j->ch[i];

        if ((rc = db_exec(db, "SAVEPOINT artifact")) < 0)
            return identity_db_errno(rc);
        ch->rc = apply_change(db, j, ch);
        if (ch->rc < 0 && (rc = db_exec(db, "ROLLBACK TO artifact")) < 0)
            return identity_db_errno(rc);
        if ((rc = db_exec(db, "RELEASE artifact")) < 0)
            return identity_db_errno(rc);
    }
    return 0;
}

static void job_done(void *arg, int rc)
{
    struct import_job *j = arg;

    pthread_mutex_lock(&j->mu);
    j->rc = rc;
    j->finished = true;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
    job_unref(j);
}

/* Submits and waits for the commit (or for stop). The job's result, a
 * store_submit error, or -ESHUTDOWN when the thread is asked to stop. */
static int submit_wait(struct artifacts *a, struct import_job *j)
{
    int rc;

    pthread_mutex_lock(&j->mu);
    j->refs++;
    pthread_mutex_unlock(&j->mu);
    rc = store_submit(a->n->store, job_run, job_done, j);
    if (rc < 0) {
        pthread_mutex_lock(&j->mu);
        j->refs--;
        pthread_mutex_unlock(&j->mu);
        return rc;
    }
    pthread_mutex_lock(&j->mu);
    while (!j->finished && !atomic_load(&a->stop)) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&j->cv, &j->mu, &ts);
    }
    rc = j->finished ? j->rc : -ESHUTDOWN;
    pthread_mutex_unlock(&j->mu);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* The pass                                                                 */
/* ------------------------------------------------------------------------ */

struct row {
    char path[ARTIFACT_PATH_MAX];
    char sha[ARTIFACT_SHA_HEX];
    bool present;                /* its file exists (valid or not) */
};

struct rows {
    struct row *items;
    size_t n, cap;
};

static int read_rows(struct artifacts *a, struct rows *out)
{
    struct db *db = store_reader(a->n->store);
    struct db_stmt *st;
    int rc;

    if (!db || !(st = db_prepare(db, "SELECT path, sha256 FROM artifacts ORDER BY path")))
        return -EIO;
    while ((rc = db_step(st)) == DB_ROW) {
        const char *p = db_col_text(st, 0), *s = db_col_text(st, 1);
        struct row *r;

        if (strlen(p) >= ARTIFACT_PATH_MAX)
            continue;           /* not a path this node could have written */
        if (out->n == out->cap) {
            out->cap = out->cap ? out->cap * 2 : 16;
            out->items = xrealloc(out->items, out->cap * sizeof(*out->items));
        }
        r = &out->items[out->n++];
        memset(r, 0, sizeof(*r));
        snprintf(r->path, sizeof(r->path), "%s", p);
        snprintf(r->sha, sizeof(r->sha), "%s", s);
    }
    db_done(st);
    return rc == DB_DONE ? 0 : -EIO;
}

static struct row *find_row(struct rows *rs, const char *path)
{
    size_t i;

    for (i = 0; i < rs->n; i++)
        if (strcmp(rs->items[i].path, path) == 0)
            return &rs->items[i];
    return NULL;
}

/* Marks path rejected for digest sha (may be ""): logged and counted once per
 * distinct (digest, error). */
static void reject(struct artifacts *a, const char *path, const char *sha, const char *why)
{
    struct art_file *f;
    bool fresh;

    pthread_mutex_lock(&a->mu);
    f = artifacts_file(a, path, true);
    if (!f) {
        pthread_mutex_unlock(&a->mu);
        return;
    }
    fresh = f->status != ART_REJECTED || strcmp(f->rejected_sha, sha) != 0 ||
            strcmp(f->last_error, why) != 0;
    f->status = ART_REJECTED;
    f->retry = false;
    f->present = true;
    snprintf(f->rejected_sha, sizeof(f->rejected_sha), "%s", sha);
    snprintf(f->last_error, sizeof(f->last_error), "%s", why);
    pthread_mutex_unlock(&a->mu);
    if (fresh) {
        log_warn("artifact rejected; the last good version stays in force", "file", path, "error",
                 why, "dir", a->dir, NULL);
        artifacts_count_error(a);
    }
}

static void mark_ok(struct artifacts *a, const char *path, const char *sha)
{
    struct art_file *f;

    pthread_mutex_lock(&a->mu);
    f = artifacts_file(a, path, true);
    if (f) {
        f->status = ART_OK;
        f->retry = false;
        f->present = true;
        f->rejected_sha[0] = '\0';
        f->last_error[0] = '\0';
        snprintf(f->local_sha, sizeof(f->local_sha), "%s", sha);
    }
    pthread_mutex_unlock(&a->mu);
}

static void mark_present(struct artifacts *a, const char *path)
{
    struct art_file *f;

    pthread_mutex_lock(&a->mu);
    if ((f = artifacts_file(a, path, true)))
        f->present = true;
    pthread_mutex_unlock(&a->mu);
}

/* What a valid file does, as validation found it. */
struct effect {
    char *display_name;          /* tenants: owned */
    json_t *settings;            /* tenants: owned keys the file sets; owned reference */
    bool uses_region;
};

static void effect_free(struct effect *e)
{
    free(e->display_name);
    json_decref(e->settings);
    memset(e, 0, sizeof(*e));
}

/* Validates content with this node's [region] values. 0 with *e filled, or
 * -1 with the formatted error (file:line: key: message) in why. */
static int validate(struct artifacts *a, const char *path, const char *content, size_t len,
                    struct effect *e, char *why, size_t whylen)
{
    const struct cfg_kvlist *region = &a->n->conf->region;
    char name[ARTIFACT_NAME_MAX + 1];
    struct cfg_error err;
    int rc = -1;

    memset(e, 0, sizeof(*e));
    memset(&err, 0, sizeof(err));
    switch (artifact_path_parse(path, name)) {
    case ARTIFACT_TENANT: {
        struct artifact_tenant t;
        rc = artifact_tenant_parse(path, content, len, region, &t, &err);
        if (rc == 0) {
            e->display_name = t.display_name;
            t.display_name = NULL;
            e->settings = t.settings;
            t.settings = NULL;
            e->uses_region = t.uses_region;
        }
        artifact_tenant_free(&t);
        break;
    }
    case ARTIFACT_USERSTORE: {
        struct artifact_userstore u;
        rc = artifact_userstore_parse(path, content, len, region, &u, &err);
        e->uses_region = u.uses_region;
        artifact_userstore_free(&u);
        break;
    }
    case ARTIFACT_NONE:
        snprintf(err.file, sizeof(err.file), "%s", path);
        snprintf(err.msg, sizeof(err.msg), "not an artifact path");
        break;
    }
    if (rc < 0)
        cfg_error_format(&err, why, whylen);
    return rc;
}

static void add_change(struct import_job *j, const char *path, enum change_op op, const char *sha,
                       struct effect *e, char *content, size_t len)
{
    struct change *ch = job_add(j, path, op);

    snprintf(ch->sha, sizeof(ch->sha), "%s", sha);
    ch->display_name = e->display_name;
    ch->settings = e->settings;
    e->display_name = NULL;
    e->settings = NULL;
    ch->content = content;
    ch->len = len;
}

/* One NAME.conf found in the directory. */
static void scan_file(struct artifacts *a, struct import_job *j, struct rows *rows, const char *rel,
                      bool reapply)
{
    char sha[ARTIFACT_SHA_HEX], why[ART_ERROR_MAX], name[ARTIFACT_NAME_MAX + 1];
    bool tenant = artifact_path_parse(rel, name) == ARTIFACT_TENANT;
    struct effect e = { 0 };
    char *content = NULL;
    size_t len = 0;
    struct row *row;
    bool unchanged, skip = false;
    int rc;

    rc = artifacts_file_digest(a, rel, sha, NULL, NULL);
    if (rc == -ENOENT)
        return;                 /* vanished, or not a regular file */
    row = find_row(rows, rel);
    if (row)
        row->present = true;    /* whatever happens below, the row is not deleted */
    mark_present(a, rel);
    if (rc == -EFBIG) {
        snprintf(why, sizeof(why), "%s: file is larger than %d bytes", rel, ARTIFACT_MAX_BYTES);
        reject(a, rel, "", why);
        return;
    }
    if (rc < 0) {
        log_warn("artifact cannot be read; will retry", "file", rel, "error", strerror(-rc), NULL);
        return;
    }
    unchanged = row && strcmp(row->sha, sha) == 0;
    if (unchanged) {
        mark_ok(a, rel, sha);
        if (!reapply || !tenant)
            return;
    } else {
        pthread_mutex_lock(&a->mu);
        {
            struct art_file *f = artifacts_file(a, rel, false);
            skip = f && f->status == ART_REJECTED && strcmp(f->rejected_sha, sha) == 0;
        }
        pthread_mutex_unlock(&a->mu);
        if (skip)
            return;             /* rejected already: not logged or counted again */
    }
    if (artifacts_file_digest(a, rel, sha, &content, &len) < 0)
        return;                 /* changed under us: the next event or scan sees it */
    unchanged = row && strcmp(row->sha, sha) == 0;
    if (validate(a, rel, content, len, &e, why, sizeof(why)) < 0) {
        if (!unchanged)
            reject(a, rel, sha, why);
        else
            log_warn("artifact in force does not validate with this node's [region]", "file", rel,
                     "error", why, NULL);
        free(content);
        return;
    }
    if (!unchanged) {
        add_change(j, rel, CH_UPSERT, sha, &e, content, len);
    } else {
        mark_ok(a, rel, sha);
        if (reapply && tenant && e.uses_region)
            add_change(j, rel, CH_REAPPLY, sha, &e, NULL, 0);
        free(content);
    }
    effect_free(&e);
}

/* Lists one kind's directory. false when it cannot be listed. */
static bool scan_dir(struct artifacts *a, struct import_job *j, struct rows *rows,
                     enum artifact_kind kind, bool reapply)
{
    const char *sub = artifact_kind_dir(kind);
    char *path = xasprintf("%s/%s", a->dir, sub);
    char name[ARTIFACT_NAME_MAX + 1], rel[ARTIFACT_PATH_MAX + 256], why[ART_ERROR_MAX];
    struct dirent *e;
    DIR *d = opendir(path);

    if (!d) {
        log_warn("artifacts: directory cannot be listed; its rows are kept", "dir", path, "error",
                 strerror(errno), NULL);
        free(path);
        return false;
    }
    while ((e = readdir(d))) {
        int cls = artifact_fname_class(e->d_name, name);

        if (cls == 0)
            continue;
        snprintf(rel, sizeof(rel), "%s/%s", sub, e->d_name);
        if (cls < 0 || strlen(rel) >= ARTIFACT_PATH_MAX) {
            snprintf(why, sizeof(why),
                     "%.*s: file name must be NAME.conf with NAME a lowercase DNS label (a-z, "
                     "0-9, '-', 1-63 characters)",
                     ARTIFACT_PATH_MAX + 64, rel);
            rel[ARTIFACT_PATH_MAX - 1] = '\0';
            reject(a, rel, "", why);
            continue;
        }
        scan_file(a, j, rows, rel, reapply);
    }
    closedir(d);
    free(path);
    return true;
}

static bool is_present(const struct art_file *f)
{
    return f->present;
}

static bool transient(int rc)
{
    return rc != -EINVAL && rc != -EEXIST && rc != -EPERM && rc != -ENOENT;
}

static const char *effect_name(const struct change *ch)
{
    if (ch->kind != ARTIFACT_TENANT)
        return "none (read by the userstore)";
    if (ch->tenant_created)
        return "tenant created";
    return ch->tenant_updated ? "tenant updated" : "tenant unchanged";
}

/* Records the outcome of each change after the job. Returns the first
 * transient error (the pass is retried soon), else 0. */
static int settle(struct artifacts *a, struct import_job *j, int jrc)
{
    bool keys = false;
    int out = 0;
    size_t i;

    for (i = 0; i < j->nch; i++) {
        struct change *ch = &j->ch[i];
        int rc = jrc < 0 ? jrc : ch->rc;
        char why[ART_ERROR_MAX];

        if (rc == 0) {
            keys |= ch->tenant_created;
            switch (ch->op) {
            case CH_UPSERT:
                mark_ok(a, ch->path, ch->sha);
                artifacts_count_imported(a);
                log_info("artifact imported", "path", ch->path, "version", log_i64(ch->version),
                         "sha256", ch->sha, "effect", effect_name(ch), NULL);
                break;
            case CH_DELETE:
                artifacts_count_imported(a);
                log_info("artifact removed", "path", ch->path, NULL);
                if (ch->kind == ARTIFACT_TENANT)
                    log_warn("tenant artifact removed: the tenant stays; delete it through the "
                             "admin API (DELETE /admin/v1/tenants/NAME) if that is what you want",
                             "tenant", ch->name, "path", ch->path, NULL);
                break;
            case CH_REAPPLY:
                if (ch->tenant_updated)
                    log_info("artifact re-resolved with this region's values", "path", ch->path,
                             "effect", effect_name(ch), NULL);
                break;
            }
            continue;
        }
        if (!transient(rc)) {
            snprintf(why, sizeof(why), "%s: cannot apply: %s", ch->path,
                     ch->msg[0] ? ch->msg : strerror(-rc));
            reject(a, ch->path, ch->op == CH_DELETE ? "" : ch->sha, why);
            continue;
        }
        if (!out)
            out = rc;
        pthread_mutex_lock(&a->mu);
        {
            struct art_file *f = artifacts_file(a, ch->path, true);
            if (f) {
                bool fresh = !f->retry;
                f->retry = true;
                snprintf(f->last_error, sizeof(f->last_error), "not imported yet: %s",
                         rc == -EROFS ? "the store is read-only (not the active node)" : strerror(-rc));
                if (fresh)
                    log_warn("artifact not imported yet; will retry", "path", ch->path, "error",
                             f->last_error, NULL);
            }
        }
        pthread_mutex_unlock(&a->mu);
    }
    if (keys && a->n->keyring)
        keyring_invalidate(a->n->keyring);
    return out;
}

int artifacts_import_scan(struct artifacts *a, bool reapply)
{
    static const enum artifact_kind kinds[] = { ARTIFACT_TENANT, ARTIFACT_USERSTORE };
    struct rows rows = { 0 };
    struct import_job *j = NULL;
    bool listed[3] = { false, false, false };
    size_t i;
    int rc;

    if (atomic_load(&a->n->role) != NODE_ACTIVE)
        return -EROFS;
    rc = read_rows(a, &rows);
    if (rc < 0) {
        log_warn("artifacts: cannot read the artifacts table", "error", strerror(-rc), NULL);
        goto out;
    }
    pthread_mutex_lock(&a->mu);
    for (i = 0; i < a->nfiles; i++)
        a->files[i].present = false;
    pthread_mutex_unlock(&a->mu);

    j = job_new(a->n);
    for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        listed[kinds[i]] = scan_dir(a, j, &rows, kinds[i], reapply);
    for (i = 0; i < rows.n; i++) {
        char name[ARTIFACT_NAME_MAX + 1];
        enum artifact_kind k = artifact_path_parse(rows.items[i].path, name);

        if (!rows.items[i].present && k != ARTIFACT_NONE && listed[k])
            job_add(j, rows.items[i].path, CH_DELETE);
    }
    pthread_mutex_lock(&a->mu);
    artifacts_files_prune(a, is_present);
    pthread_mutex_unlock(&a->mu);
    if (j->nch == 0)
        goto out;
    if (atomic_load(&a->n->role) != NODE_ACTIVE) {
        rc = -EROFS;
        goto out;
    }
    rc = submit_wait(a, j);
    if (rc == -ESHUTDOWN && atomic_load(&a->stop))
        goto out;               /* abandoned: the job frees itself */
    rc = settle(a, j, rc);
out:
    if (j)
        job_unref(j);
    free(rows.items);
    return rc;
}
