/*
 * group — the group model: groups.data, group_members, and the mirror of
 * memberships in users.data.groups (group.h). Every function that changes
 * a membership also rewrites the member users it concerns, in the same
 * transaction, so that a filter on groups.value (side table) and one on
 * groups.display (JSON) can never disagree.
 */
#include "identity/group.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/json.h"
#include "core/xmalloc.h"
#include "scim/schema_attrs.h"

#define GROUP_NAME_MAX 256

static void set_msg(char *msg, size_t msglen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_msg(char *msg, size_t msglen, const char *fmt, ...)
{
    va_list ap;

    if (!msg || !msglen)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, msglen, fmt, ap);
    va_end(ap);
}

static int step_done(struct db_stmt *st)
{
    int rc = db_step(st);

    db_done(st);
    return rc < 0 ? identity_db_errno(rc) : 0;
}

/* ---------------------------------------------------------------- reads */

int group_load(struct db *db, const char *tenant, const char *id, struct identity_doc *out)
{
    return identity_doc_load(db, "SELECT data, version, created_at, updated_at FROM groups WHERE tenant = $1 AND id = $2",
                             tenant, id, out);
}

json_t *user_groups_json(struct db *db, const char *tenant, const char *user_id)
{
    json_t *arr = json_array();
    struct db_stmt *st = db_prepare(db, "SELECT g.display_name FROM group_members m JOIN groups g"
                                        " ON g.tenant = m.tenant AND g.id = m.group_id"
                                        " WHERE m.tenant = $1 AND m.member_id = $2"
                                        " ORDER BY g.display_name LIMIT 256");

    if (!st)
        return arr;
    db_bind_text(st, 1, tenant, -1);
    db_bind_text(st, 2, user_id, -1);
    while (db_step(st) == DB_ROW)
        json_array_append_new(arr, json_string(db_col_text(st, 0)));
    db_done(st);
    return arr;
}

/* The values of one text column for (tenant, id), as a JSON array. */
static int collect(struct db *db, const char *sql, const char *tenant, const char *id, json_t **out)
{
    struct db_stmt *st = db_prepare(db, sql);
    int rc;

    *out = json_array();
    if (!st)
        return -EIO;
    db_bind_text(st, 1, tenant, -1);
    db_bind_text(st, 2, id, -1);
    while ((rc = db_step(st)) == DB_ROW)
        json_array_append_new(*out, json_string(db_col_text(st, 0)));
    db_done(st);
    return rc < 0 ? identity_db_errno(rc) : 0;
}

/* --------------------------------------------------------------- writes */

/* Stores d.data of an existing group as its next version. */
static int save(struct db *db, const char *tenant, struct identity_doc *d, int64_t now)
{
    struct db_stmt *st;
    char *text;
    int rc;

    d->version++;
    d->updated_at = now;
    identity_meta_stamp(d->data, "Group", d->created_at, now, d->version);
    text = jsonx_dump(d->data);
    st = db_prepare(db, "UPDATE groups SET data = $3, version = $4, updated_at = $5 WHERE tenant = $1 AND id = $2");
    if (!st) {
        free(text);
        return -EIO;
    }
    db_bind_text(st, 1, tenant, -1);
    db_bind_text(st, 2, d->id, -1);
    db_bind_text(st, 3, text, -1);
    db_bind_int64(st, 4, d->version);
    db_bind_int64(st, 5, now);
    rc = step_done(st);
    free(text);
    return rc;
}

/* Looks up one member: *type "User" or "Group" and its display name. */
static int member_lookup(struct db *db, const char *tenant, const char *id, const char **type, char **display)
{
    struct db_stmt *st;
    int rc;

    *display = NULL;
    st = db_prepare(db, "SELECT user_name, json_extract(data, '$.displayName') FROM users"
                        " WHERE tenant = $1 AND id = $2");
    if (!st)
        return -EIO;
    db_bind_text(st, 1, tenant, -1);
    db_bind_text(st, 2, id, -1);
    rc = db_step(st);
    if (rc == DB_ROW) {
        *type = "User";
        *display = xstrdup(db_col_is_null(st, 1) ? db_col_text(st, 0) : db_col_text(st, 1));
    }
    db_done(st);
    if (rc < 0)
        return identity_db_errno(rc);
    if (*display)
        return 0;
    st = db_prepare(db, "SELECT display_name FROM groups WHERE tenant = $1 AND id = $2");
    if (!st)
        return -EIO;
    db_bind_text(st, 1, tenant, -1);
    db_bind_text(st, 2, id, -1);
    rc = db_step(st);
    if (rc == DB_ROW) {
        *type = "Group";
        *display = xstrdup(db_col_text(st, 0));
    }
    db_done(st);
    if (rc < 0)
        return identity_db_errno(rc);
    return *display ? 0 : -ENOENT;
}

/* The stored members list for requested members `in` of group gid:
 * existing ids only, type checked, display filled, duplicates merged. */
static int resolve_members(struct db *db, const char *tenant, const char *gid, const json_t *in, json_t **out,
                           char *msg, size_t msglen)
{
    json_t *seen = json_object(), *e;
    size_t i;
    int rc = 0;

    *out = json_array();
    json_array_foreach(in, i, e) {
        const char *value = json_string_value(json_object_get(e, "value"));
        const char *want = json_string_value(json_object_get(e, "type"));
        const char *type;
        char *display;

        if (!value) {
            set_msg(msg, msglen, "members: every member needs a value (the member's id)");
            rc = -EINVAL;
            goto out;
        }
        if (strcmp(value, gid) == 0) {
            set_msg(msg, msglen, "members: a group cannot be a member of itself");
            rc = -EINVAL;
            goto out;
        }
        if (json_object_get(seen, value))
            continue;
        rc = member_lookup(db, tenant, value, &type, &display);
        if (rc == -ENOENT) {
            set_msg(msg, msglen, "members: no user or group with id '%.64s'", value);
            rc = -EINVAL;
            goto out;
        }
        if (rc < 0)
            goto out;
        if (want && strcasecmp(want, type) != 0) {
            set_msg(msg, msglen, "members: '%.64s' is a %s, not a %.16s", value, type, want);
            free(display);
            rc = -EINVAL;
            goto out;
        }
        json_object_set_new(seen, value, json_true());
        json_array_append_new(*out, json_pack("{s:s, s:s, s:s}", "value", value, "type", type, "display", display));
        free(display);
    }
out:
    json_decref(seen);
    if (rc < 0) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}

static int check_name(struct db *db, const char *tenant, const char *id, const char *name, char **lc_out,
                      char *msg, size_t msglen)
{
    int rc;

    *lc_out = NULL;
    if (!name || !*name) {
        set_msg(msg, msglen, "displayName is required");
        return -EINVAL;
    }
    if (strlen(name) > GROUP_NAME_MAX) {
        set_msg(msg, msglen, "displayName: longer than %d bytes", GROUP_NAME_MAX);
        return -EINVAL;
    }
    rc = identity_name_unique(db, "SELECT id FROM groups WHERE tenant = $1 AND display_name_lc = $2", tenant, name,
                              id, lc_out);
    if (rc == -EEXIST)
        set_msg(msg, msglen, "a group named '%.64s' already exists", name);
    return rc;
}

static json_t *build_data(const json_t *res, const char *id, json_t *members)
{
    json_t *data = json_deep_copy(res);

    json_object_del(data, "meta");
    json_object_del(data, "schemas");
    json_object_del(data, "members");
    json_object_set_new(data, "id", json_string(id));
    json_object_set_new(data, "schemas", json_pack("[s]", SCIM_URN_GROUP));
    if (json_array_size(members) > 0)
        json_object_set(data, "members", members);
    return data;
}

/* Inserts (type != NULL) or deletes one group_members row. */
static int member_row(struct db *db, const char *tenant, const char *gid, const char *member_id, const char *type)
{
    struct db_stmt *st = db_prepare(db, type ? "INSERT INTO group_members (tenant, group_id, member_id, member_type)"
                                               " VALUES ($1, $2, $3, $4)"
                                             : "DELETE FROM group_members"
                                               " WHERE tenant = $1 AND group_id = $2 AND member_id = $3");

    if (!st)
        return -EIO;
    db_bind_text(st, 1, tenant, -1);
    db_bind_text(st, 2, gid, -1);
    db_bind_text(st, 3, member_id, -1);
    if (type)
        db_bind_text(st, 4, type, -1);
    return step_done(st);
}

static const char *mval(const json_t *m)
{
    return json_string_value(json_object_get(m, "value"));
}

static const char *mtype(const json_t *m)
{
    return json_string_value(json_object_get(m, "type"));
}

/* Refreshes data.groups of every user id that is a key of set. */
static int refresh_users(struct db *db, const char *tenant, const json_t *set, int64_t now)
{
    const char *uid;
    json_t *v;
    int rc;

    json_object_foreach((json_t *)set, uid, v) {
        rc = user_groups_refresh(db, tenant, uid, now);
        if (rc < 0 && rc != -ENOENT)
            return rc;
    }
    return 0;
}

int group_create(struct db *db, const char *tenant, const json_t *res, int64_t now, struct identity_doc *out,
                 char *msg, size_t msglen)
{
    const char *name = json_string_value(json_object_get(res, "displayName"));
    json_t *members = NULL, *data = NULL, *users = json_object(), *m;
    struct db_stmt *st;
    char *lc = NULL, *text = NULL;
    size_t i;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = check_name(db, tenant, NULL, name, &lc, msg, msglen)) < 0)
        goto out;
    uuid_v4(out->id);
    if ((rc = resolve_members(db, tenant, out->id, json_object_get(res, "members"), &members, msg, msglen)) < 0)
        goto out;
    data = build_data(res, out->id, members);
    identity_meta_stamp(data, "Group", now, now, 1);
    text = jsonx_dump(data);
    st = db_prepare(db, "INSERT INTO groups (tenant, id, display_name, display_name_lc, external_id, data,"
                        " version, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $7)");
    if (!st) {
        rc = -EIO;
        goto out;
    }
    db_bind_text(st, 1, tenant, -1);
    db_bind_text(st, 2, out->id, -1);
    db_bind_text(st, 3, name, -1);
    db_bind_text(st, 4, lc, -1);
    db_bind_text(st, 5, json_string_value(json_object_get(data, "externalId")), -1);
    db_bind_text(st, 6, text, -1);
    db_bind_int64(st, 7, now);
    if ((rc = step_done(st)) < 0) {
        if (rc == -EEXIST)
            set_msg(msg, msglen, "a group named '%.64s' already exists", name);
        goto out;
    }
    json_array_foreach(members, i, m) {
        if ((rc = member_row(db, tenant, out->id, mval(m), mtype(m))) < 0)
            goto out;
        if (strcmp(mtype(m), "User") == 0)
            json_object_set_new(users, mval(m), json_true());
    }
    if ((rc = refresh_users(db, tenant, users, now)) < 0)
        goto out;
    out->data = data;
    data = NULL;
    out->version = 1;
    out->created_at = out->updated_at = now;
out:
    json_decref(members);
    json_decref(data);
    json_decref(users);
    free(text);
    free(lc);
    return rc;
}

int group_replace(struct db *db, const char *tenant, const char *id, const json_t *res, int64_t now,
                  struct identity_doc *out, char *msg, size_t msglen)
{
    const char *name = json_string_value(json_object_get(res, "displayName"));
    json_t *members = NULL, *data = NULL, *users = json_object(), *old_ids = NULL, *now_ids = json_object(), *m;
    struct identity_doc old;
    struct db_stmt *st;
    char *lc = NULL, *text = NULL;
    bool renamed;
    size_t i;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = group_load(db, tenant, id, &old)) < 0)
        goto out;
    if ((rc = check_name(db, tenant, id, name, &lc, msg, msglen)) < 0)
        goto out;
    if ((rc = resolve_members(db, tenant, id, json_object_get(res, "members"), &members, msg, msglen)) < 0)
        goto out;
    {
        const char *old_name = json_string_value(json_object_get(old.data, "displayName"));
        renamed = !old_name || strcmp(old_name, name) != 0;
    }
    data = build_data(res, id, members);
    identity_meta_stamp(data, "Group", old.created_at, now, old.version + 1);
    text = jsonx_dump(data);
    st = db_prepare(db, "UPDATE groups SET display_name = $3, display_name_lc = $4, external_id = $5, data = $6,"
                        " version = $7, updated_at = $8 WHERE tenant = $1 AND id = $2");
    if (!st) {
        rc = -EIO;
        goto out;
    }
    db_bind_text(st, 1, tenant, -1);
    db_bind_text(st, 2, id, -1);
    db_bind_text(st, 3, name, -1);
    db_bind_text(st, 4, lc, -1);
    db_bind_text(st, 5, json_string_value(json_object_get(data, "externalId")), -1);
    db_bind_text(st, 6, text, -1);
    db_bind_int64(st, 7, old.version + 1);
    db_bind_int64(st, 8, now);
    if ((rc = step_done(st)) < 0) {
        if (rc == -EEXIST)
            set_msg(msg, msglen, "a group named '%.64s' already exists", name);
        goto out;
    }

    /* membership rows: the difference only */
    if ((rc = collect(db, "SELECT member_id FROM group_members WHERE tenant = $1 AND group_id = $2", tenant, id,
                      &old_ids)) < 0)
        goto out;
    json_array_foreach(members, i, m)
        json_object_set(now_ids, mval(m), m);
    json_array_foreach(old_ids, i, m) {
        const char *mid = json_string_value(m);
        if (json_object_get(now_ids, mid))
            continue;
        if ((rc = member_row(db, tenant, id, mid, NULL)) < 0)
            goto out;
        json_object_set_new(users, mid, json_true());   /* a group id here is skipped by refresh */
    }
    {
        json_t *had = json_object();
        json_array_foreach(old_ids, i, m)
            json_object_set_new(had, json_string_value(m), json_true());
        json_array_foreach(members, i, m) {
            const char *mid = mval(m);
            bool is_user = strcmp(mtype(m), "User") == 0;
            if (!json_object_get(had, mid)) {
                if ((rc = member_row(db, tenant, id, mid, mtype(m))) < 0) {
                    json_decref(had);
                    goto out;
                }
                if (is_user)
                    json_object_set_new(users, mid, json_true());
            } else if (renamed && is_user) {
                json_object_set_new(users, mid, json_true());
            }
        }
        json_decref(had);
    }
    if ((rc = refresh_users(db, tenant, users, now)) < 0)
        goto out;
    if (renamed && (rc = group_member_display_refresh(db, tenant, id, name, now)) < 0)
        goto out;
    snprintf(out->id, sizeof(out->id), "%s", id);
    out->data = data;
    data = NULL;
    out->version = old.version + 1;
    out->created_at = old.created_at;
    out->updated_at = now;
out:
    identity_doc_clear(&old);
    json_decref(members);
    json_decref(data);
    json_decref(users);
    json_decref(old_ids);
    json_decref(now_ids);
    free(text);
    free(lc);
    return rc;
}

int group_delete(struct db *db, const char *tenant, const char *id, int64_t now)
{
    json_t *member_ids = NULL, *users = json_object(), *m;
    struct db_stmt *st;
    size_t i;
    int rc;

    st = db_prepare(db, "SELECT 1 FROM groups WHERE tenant = $1 AND id = $2");
    if (!st) {
        rc = -EIO;
        goto out;
    }
    db_bind_text(st, 1, tenant, -1);
    db_bind_text(st, 2, id, -1);
    rc = db_step(st);
    db_done(st);
    if (rc != DB_ROW) {
        rc = rc == DB_DONE ? -ENOENT : identity_db_errno(rc);
        goto out;
    }
    if ((rc = collect(db, "SELECT member_id FROM group_members WHERE tenant = $1 AND group_id = $2"
                          " AND member_type = 'User'", tenant, id, &member_ids)) < 0)
        goto out;
    json_array_foreach(member_ids, i, m)
        json_object_set_new(users, json_string_value(m), json_true());
    if ((rc = db_execp(db, "DELETE FROM group_members WHERE tenant = $1 AND group_id = $2", tenant, id, NULL)) < 0 ||
        (rc = db_execp(db, "DELETE FROM groups WHERE tenant = $1 AND id = $2", tenant, id, NULL)) < 0) {
        rc = identity_db_errno(rc);
        goto out;
    }
    if ((rc = group_member_forget(db, tenant, id, now)) < 0)
        goto out;
    rc = refresh_users(db, tenant, users, now);
out:
    json_decref(member_ids);
    json_decref(users);
    return rc;
}

/* ------------------------------------------------- upkeep for members */

/* For every group listing member_id: sets the display of its elements with
 * that value, or with drop removes them (and the rows); a group whose
 * members changed is saved as a new version. */
static int each_group_of(struct db *db, const char *tenant, const char *member_id, const char *display, bool drop,
                         int64_t now)
{
    json_t *gids = NULL, *g;
    size_t i;
    int rc;

    if ((rc = collect(db, "SELECT group_id FROM group_members WHERE tenant = $1 AND member_id = $2", tenant,
                      member_id, &gids)) < 0)
        goto out;
    if (drop && (rc = db_execp(db, "DELETE FROM group_members WHERE tenant = $1 AND member_id = $2", tenant,
                               member_id, NULL)) < 0) {
        rc = identity_db_errno(rc);
        goto out;
    }
    json_array_foreach(gids, i, g) {
        struct identity_doc d;
        json_t *members, *e;
        bool changed = false;
        size_t k;

        rc = group_load(db, tenant, json_string_value(g), &d);
        if (rc == -ENOENT)
            continue;
        if (rc < 0)
            goto out;
        members = json_object_get(d.data, "members");
        for (k = json_array_size(members); k > 0; k--) {
            e = json_array_get(members, k - 1);
            const char *v = json_string_value(json_object_get(e, "value"));
            if (!v || strcmp(v, member_id) != 0)
                continue;
            if (drop) {
                json_array_remove(members, k - 1);
                changed = true;
            } else if (!json_string_value(json_object_get(e, "display")) ||
                       strcmp(json_string_value(json_object_get(e, "display")), display) != 0) {
                json_object_set_new(e, "display", json_string(display));
                changed = true;
            }
        }
        if (members && json_array_size(members) == 0)
            json_object_del(d.data, "members");
        rc = changed ? save(db, tenant, &d, now) : 0;
        identity_doc_clear(&d);
        if (rc < 0)
            goto out;
    }
    rc = 0;
out:
    json_decref(gids);
    return rc;
}

int group_member_display_refresh(struct db *db, const char *tenant, const char *member_id, const char *display,
                                 int64_t now)
{
    return each_group_of(db, tenant, member_id, display, false, now);
}

int group_member_forget(struct db *db, const char *tenant, const char *member_id, int64_t now)
{
    return each_group_of(db, tenant, member_id, NULL, true, now);
}
