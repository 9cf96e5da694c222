/*
 * fuzz_scim_filter — arbitrary bytes as a SCIM filter (User resources, or
 * Group when the first byte is '#'). Whatever parses must compile to SQL
 * that SQLite accepts, and that SQL must select the fixed resource exactly
 * when scim_filter_match does: a differential check of the two back ends.
 * The same bytes are also parsed as an emails[...] element filter and
 * matched against one element. Nothing may crash, leak or read past the
 * input (which is not NUL-terminated).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <sqlite3.h>

#include "core/str.h"
#include "core/xmalloc.h"
#include "scim/filter.h"
#include "scim/schema_attrs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char user_json[] =
    "{\"schemas\": [\"urn:ietf:params:scim:schemas:core:2.0:User\"],"
    " \"id\": \"2819c223\", \"externalId\": \"bjensen\", \"userName\": \"bjensen@example.com\","
    " \"name\": {\"familyName\": \"Jensen\", \"givenName\": \"Barbara\", \"middleName\": \"\"},"
    " \"displayName\": \"Babs \\\"J\\\" 50%_off\", \"title\": \"Tour Guide\", \"active\": true,"
    " \"nickName\": \"Zo\\u00eb\","
    " \"emails\": [{\"value\": \"bjensen@example.com\", \"type\": \"work\", \"primary\": true},"
    "            {\"value\": \"babs@jensen.org\", \"type\": \"home\"}, {\"value\": \"x@y.z\"}],"
    " \"phoneNumbers\": [{\"value\": \"555-555-5555\", \"type\": \"work\"}], \"addresses\": [],"
    " \"ims\": [{\"value\": \"\", \"type\": \"aim\"}, \"bogus\"],"
    " \"groups\": [{\"value\": \"g1\", \"display\": \"Tour Guides\"}],"
    " \"meta\": {\"resourceType\": \"User\", \"created\": \"2010-01-23T04:56:22Z\","
    "          \"lastModified\": \"2011-05-13T04:42:34Z\", \"version\": \"W/\\\"a\\\"\"},"
    " \"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User\": {\"employeeNumber\": \"701984\","
    "   \"department\": \"Tour Operations\", \"manager\": {\"value\": \"26118915\", \"displayName\": \"John\"}}}";

static const char group_json[] =
    "{\"id\": \"g1\", \"displayName\": \"Tour Guides\", \"externalId\": \"TG\","
    " \"members\": [{\"value\": \"2819c223\", \"type\": \"User\", \"display\": \"Babs\"},"
    "               {\"value\": \"g2\", \"type\": \"Group\"}],"
    " \"meta\": {\"created\": \"2019-01-01T00:00:00Z\", \"lastModified\": \"2019-01-02T00:00:00Z\"}}";

static const char setup_sql[] =
    "CREATE TABLE users (tenant TEXT NOT NULL, id TEXT NOT NULL, user_name TEXT NOT NULL,"
    " user_name_lc TEXT NOT NULL, external_id TEXT, active INTEGER NOT NULL DEFAULT 1,"
    " data TEXT NOT NULL DEFAULT '{}', created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
    " PRIMARY KEY (tenant, id), UNIQUE (tenant, user_name_lc));"
    "CREATE TABLE user_emails (tenant TEXT NOT NULL, user_id TEXT NOT NULL, value_lc TEXT NOT NULL,"
    " type TEXT NOT NULL DEFAULT '', PRIMARY KEY (tenant, user_id, value_lc));"
    "CREATE TABLE groups (tenant TEXT NOT NULL, id TEXT NOT NULL, display_name TEXT NOT NULL,"
    " display_name_lc TEXT NOT NULL, external_id TEXT, data TEXT NOT NULL DEFAULT '{}',"
    " created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, PRIMARY KEY (tenant, id));"
    "CREATE TABLE group_members (tenant TEXT NOT NULL, group_id TEXT NOT NULL, member_id TEXT NOT NULL,"
    " member_type TEXT NOT NULL DEFAULT 'User', PRIMARY KEY (tenant, group_id, member_id));"
    "INSERT INTO user_emails VALUES ('t', '2819c223', 'bjensen@example.com', 'work'),"
    " ('t', '2819c223', 'babs@jensen.org', 'home'), ('t', '2819c223', 'x@y.z', ''),"
    " ('o', '2819c223', 'other@tenant', 'work');"
    "INSERT INTO group_members VALUES ('t', 'g1', '2819c223', 'User'), ('t', 'g1', 'g2', 'Group');";

static sqlite3 *db;
static json_t *user, *group, *email;

static void init(void)
{
    sqlite3_stmt *st;

    if (db)
        return;
    user = json_loads(user_json, 0, NULL);
    group = json_loads(group_json, 0, NULL);
    email = json_loads("{\"value\": \"Babs@Jensen.org\", \"type\": \"home\", \"primary\": false}", 0, NULL);
    if (!user || !group || !email || sqlite3_open(":memory:", &db) != SQLITE_OK ||
        sqlite3_exec(db, setup_sql, NULL, NULL, NULL) != SQLITE_OK)
        abort();
    if (sqlite3_prepare_v2(db, "INSERT INTO users VALUES ('t', '2819c223', 'bjensen@example.com',"
                               " 'bjensen@example.com', 'bjensen', 1, ?, 1264222582, 1305261754)",
                           -1, &st, NULL) != SQLITE_OK)
        abort();
    sqlite3_bind_text(st, 1, user_json, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        abort();
    sqlite3_finalize(st);
    if (sqlite3_prepare_v2(db, "INSERT INTO groups VALUES ('t', 'g1', 'Tour Guides', 'tour guides', 'TG', ?,"
                               " 1546300800, 1546387200)", -1, &st, NULL) != SQLITE_OK)
        abort();
    sqlite3_bind_text(st, 1, group_json, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        abort();
    sqlite3_finalize(st);
}

/* Runs the compiled filter; returns whether the one row of tenant t matched. */
static bool sql_match(const struct scim_filter *f, bool is_group)
{
    struct scim_sql_opts o = { .table = "r", .first_param = 2 };
    struct scim_sql sql;
    struct scim_err err;
    sqlite3_stmt *st;
    char *q;
    bool hit;
    size_t k;
    int rc;

    if (scim_filter_to_sql(f, &o, &sql, &err) != 0)
        abort();
    q = xasprintf("SELECT 1 FROM %s r WHERE r.tenant = $1 AND %s", is_group ? "groups" : "users", sql.where);
    if (sqlite3_prepare_v2(db, q, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "SQL rejected: %s\n%s\n", sqlite3_errmsg(db), q);
        abort();
    }
    if ((size_t)sqlite3_bind_parameter_count(st) != sql.nparams + 1)
        abort();
    sqlite3_bind_text(st, sqlite3_bind_parameter_index(st, "$1"), "t", -1, SQLITE_STATIC);
    for (k = 0; k < sql.nparams; k++) {
        const struct scim_sql_param *p = &sql.params[k];
        char name[16];
        int idx;
        snprintf(name, sizeof(name), "$%zu", k + 2);
        idx = sqlite3_bind_parameter_index(st, name);
        if (idx == 0)
            abort();
        if (p->type == SCIM_SQL_TEXT)
            sqlite3_bind_text(st, idx, p->text, (int)p->len, SQLITE_STATIC);
        else if (p->type == SCIM_SQL_INT)
            sqlite3_bind_int64(st, idx, p->i);
        else if (p->type == SCIM_SQL_DOUBLE)
            sqlite3_bind_double(st, idx, p->d);
    }
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        fprintf(stderr, "SQL failed: %s\n%s\n", sqlite3_errmsg(db), q);
        abort();
    }
    hit = rc == SQLITE_ROW;
    sqlite3_finalize(st);
    free(q);
    scim_sql_free(&sql);
    return hit;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bool is_group = size > 0 && data[0] == '#';
    const struct scim_resource_type *rt = is_group ? &scim_rt_group : &scim_rt_user;
    struct str text = { (const char *)data + is_group, size - is_group };
    struct scim_filter *f;
    struct scim_err err;

    init();
    if (scim_filter_parse(rt, text, NULL, &f, &err) == 0) {
        bool m = scim_filter_match(f, is_group ? group : user);
        if (m != sql_match(f, is_group)) {
            fprintf(stderr, "evaluator says %d, SQL disagrees: %.*s\n", m, (int)text.len, text.p);
            abort();
        }
        scim_filter_free(f);
    } else if (!err.scim_type || strcmp(err.scim_type, "invalidFilter") != 0 || !err.detail[0]) {
        abort();
    }
    if (!is_group) {
        struct scim_attr_ref ref = { &scim_schema_user, NULL, NULL };
        ref.attr = scim_attr_find(scim_schema_user.attrs, scim_schema_user.nattrs, STR_LIT("emails"));
        if (scim_filter_parse_element(rt, &ref, text, NULL, &f, &err) == 0) {
            (void)scim_filter_match(f, email);
            scim_filter_free(f);
        }
    }
    return 0;
}
