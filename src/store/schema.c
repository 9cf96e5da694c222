/*
 * schema — the tables of a Refuge node, created by versioned migrations.
 *
 * Why this file exists: every node builds its schema from its own binary
 * (DDL never travels in changesets, DESIGN.md §5.8), so the schema must be a
 * pure function of the binary's version. PRAGMA user_version records how many
 * migrations a database has seen; migrations[i] takes it from i to i + 1 in
 * one transaction. A database newer than the binary is refused rather than
 * guessed at. Migrations are append-only: never edit a released one.
 *
 * Conventions for every table:
 *   - an explicit PRIMARY KEY whose columns are all NOT NULL: the session
 *     extension ignores tables without one, and SQLite would otherwise allow
 *     NULL in a non-INTEGER primary key;
 *   - an entry in the registry below with its replication class;
 *   - times: INTEGER unix *seconds* (created_at, updated_at, issued_at,
 *     expires_at, auth_time, last_seen, locked_until, retire_after; 0 = unset),
 *     except repl_log.commit_us, which is unix *microseconds*;
 *   - JSON documents are TEXT (settings, data, redirect_uris, ...);
 *   - no FOREIGN KEY clauses: changesets are applied and rewound row by row,
 *     and cascades would replay twice on the standby; the identity layer
 *     deletes dependent rows explicitly in the same transaction;
 *   - case-insensitive uniqueness uses a *_lc column kept by the writer.
 */
#include <errno.h>
#include <stdio.h>

#include "store/db.h"
#include "store/store.h"

/* ------------------------------------------------------------- registry */

static const struct store_table tables[] = {
    { "node_state", REPL_LOCAL },
    { "tenants", REPL_CONFIG },
    { "clients", REPL_CONFIG },
    { "signing_keys", REPL_CONFIG },
    { "artifacts", REPL_CONFIG },
    { "users", REPL_IDENTITY },
    { "user_emails", REPL_IDENTITY },
    { "groups", REPL_IDENTITY },
    { "group_members", REPL_IDENTITY },
    { "refresh_tokens", REPL_TOKENS },
    { "opaque_tokens", REPL_TOKENS },
    { "revoked_jtis", REPL_TOKENS },
    { "auth_codes", REPL_TOKENS },
    { "sso_sessions", REPL_SESSIONS },
    { "repl_log", REPL_LOCAL },
    { "repl_state", REPL_LOCAL },
    { "epoch_history", REPL_LOCAL },
};

const struct store_table *store_tables(size_t *n)
{
    *n = sizeof(tables) / sizeof(tables[0]);
    return tables;
}

const char *repl_class_name(enum repl_class c)
{
    switch (c) {
    case REPL_LOCAL:
        return "local";
    case REPL_CONFIG:
        return "config";
    case REPL_IDENTITY:
        return "identity";
    case REPL_TOKENS:
        return "tokens";
    case REPL_SESSIONS:
        return "sessions";
    }
    return "unknown";
}

/* ----------------------------------------------------------- migrations */

static const char *const migrations[] = {
    /* 1: the foundation */
    /* node-local facts: role, epoch, cluster id, node id */
    "CREATE TABLE node_state ("
    "  key TEXT PRIMARY KEY NOT NULL,"
    "  value TEXT NOT NULL"
    ");"
    "CREATE TABLE tenants ("
    "  name TEXT PRIMARY KEY NOT NULL,"
    "  display_name TEXT NOT NULL,"
    "  settings TEXT NOT NULL DEFAULT '{}',"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL"
    ");"
    "CREATE TABLE clients ("
    "  tenant TEXT NOT NULL,"
    "  client_id TEXT NOT NULL,"
    "  name TEXT NOT NULL DEFAULT '',"
    "  type TEXT NOT NULL CHECK (type IN ('confidential', 'public')),"
    "  secret_hash TEXT,"
    "  redirect_uris TEXT NOT NULL DEFAULT '[]',"
    "  grant_types TEXT NOT NULL DEFAULT '[]',"
    "  scopes TEXT NOT NULL DEFAULT '[]',"
    "  default_scopes TEXT NOT NULL DEFAULT '[]',"
    "  token_format TEXT NOT NULL DEFAULT 'jwt' CHECK (token_format IN ('jwt', 'opaque')),"
    "  settings TEXT NOT NULL DEFAULT '{}',"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  PRIMARY KEY (tenant, client_id)"
    ");"
    /* private_enc: the private JWK sealed with AES-GCM under the master key */
    "CREATE TABLE signing_keys ("
    "  tenant TEXT NOT NULL,"
    "  kid TEXT NOT NULL,"
    "  alg TEXT NOT NULL,"
    "  public_jwk TEXT NOT NULL,"
    "  private_enc BLOB NOT NULL,"
    "  status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'retired')),"
    "  created_at INTEGER NOT NULL,"
    "  retire_after INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (tenant, kid)"
    ");"
    "CREATE TABLE artifacts ("
    "  path TEXT PRIMARY KEY NOT NULL,"
    "  content BLOB NOT NULL,"
    "  sha256 TEXT NOT NULL,"
    "  version INTEGER NOT NULL DEFAULT 1,"
    "  updated_at INTEGER NOT NULL"
    ");"
    /* data: the SCIM resource as JSON; version: the ETag counter */
    "CREATE TABLE users ("
    "  tenant TEXT NOT NULL,"
    "  id TEXT NOT NULL,"
    "  user_name TEXT NOT NULL,"
    "  user_name_lc TEXT NOT NULL,"
    "  external_id TEXT,"
    "  active INTEGER NOT NULL DEFAULT 1,"
    "  password_hash TEXT,"
    "  data TEXT NOT NULL DEFAULT '{}',"
    "  version INTEGER NOT NULL DEFAULT 1,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  failed_logins INTEGER NOT NULL DEFAULT 0,"
    "  locked_until INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (tenant, id),"
    "  UNIQUE (tenant, user_name_lc)"
    ");"
    "CREATE INDEX users_external_id ON users (tenant, external_id);"
    "CREATE TABLE user_emails ("
    "  tenant TEXT NOT NULL,"
    "  user_id TEXT NOT NULL,"
    "  value_lc TEXT NOT NULL,"
    "  type TEXT NOT NULL DEFAULT '',"
    "  PRIMARY KEY (tenant, user_id, value_lc)"
    ");"
    "CREATE INDEX user_emails_value ON user_emails (tenant, value_lc);"
    "CREATE TABLE groups ("
    "  tenant TEXT NOT NULL,"
    "  id TEXT NOT NULL,"
    "  display_name TEXT NOT NULL,"
    "  display_name_lc TEXT NOT NULL,"
    "  external_id TEXT,"
    "  data TEXT NOT NULL DEFAULT '{}',"
    "  version INTEGER NOT NULL DEFAULT 1,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  PRIMARY KEY (tenant, id),"
    "  UNIQUE (tenant, display_name_lc)"
    ");"
    "CREATE INDEX groups_external_id ON groups (tenant, external_id);"
    /* member_type: the SCIM member type, 'User' or 'Group' */
    "CREATE TABLE group_members ("
    "  tenant TEXT NOT NULL,"
    "  group_id TEXT NOT NULL,"
    "  member_id TEXT NOT NULL,"
    "  member_type TEXT NOT NULL DEFAULT 'User',"
    "  PRIMARY KEY (tenant, group_id, member_id)"
    ");"
    "CREATE INDEX group_members_member ON group_members (tenant, member_id);"
    /* token tables store a SHA-256 hex of the secret, never the secret */
    "CREATE TABLE refresh_tokens ("
    "  token_hash TEXT PRIMARY KEY NOT NULL,"
    "  tenant TEXT NOT NULL,"
    "  client_id TEXT NOT NULL,"
    "  user_id TEXT,"
    "  family_id TEXT NOT NULL,"
    "  scope TEXT NOT NULL DEFAULT '',"
    "  parent_hash TEXT,"
    "  status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'rotated', 'revoked')),"
    "  issued_at INTEGER NOT NULL,"
    "  expires_at INTEGER NOT NULL,"
    "  auth_time INTEGER NOT NULL DEFAULT 0"
    ");"
    "CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);"
    "CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_at);"
    "CREATE INDEX refresh_tokens_user ON refresh_tokens (tenant, user_id);"
    "CREATE TABLE opaque_tokens ("
    "  token_hash TEXT PRIMARY KEY NOT NULL,"
    "  tenant TEXT NOT NULL,"
    "  client_id TEXT NOT NULL,"
    "  user_id TEXT,"
    "  scope TEXT NOT NULL DEFAULT '',"
    "  issued_at INTEGER NOT NULL,"
    "  expires_at INTEGER NOT NULL,"
    "  family_id TEXT"
    ");"
    "CREATE INDEX opaque_tokens_expires ON opaque_tokens (expires_at);"
    "CREATE INDEX opaque_tokens_family ON opaque_tokens (family_id);"
    "CREATE TABLE revoked_jtis ("
    "  jti TEXT PRIMARY KEY NOT NULL,"
    "  tenant TEXT NOT NULL,"
    "  expires_at INTEGER NOT NULL"
    ");"
    "CREATE INDEX revoked_jtis_expires ON revoked_jtis (expires_at);"
    "CREATE TABLE auth_codes ("
    "  code_hash TEXT PRIMARY KEY NOT NULL,"
    "  tenant TEXT NOT NULL,"
    "  client_id TEXT NOT NULL,"
    "  user_id TEXT NOT NULL,"
    "  redirect_uri TEXT NOT NULL,"
    "  scope TEXT NOT NULL DEFAULT '',"
    "  nonce TEXT,"
    "  code_challenge TEXT,"
    "  code_challenge_method TEXT,"
    "  auth_time INTEGER NOT NULL,"
    "  session_id TEXT,"
    "  expires_at INTEGER NOT NULL,"
    "  used INTEGER NOT NULL DEFAULT 0"
    ");"
    "CREATE INDEX auth_codes_expires ON auth_codes (expires_at);"
    "CREATE TABLE sso_sessions ("
    "  id_hash TEXT PRIMARY KEY NOT NULL,"
    "  tenant TEXT NOT NULL,"
    "  user_id TEXT NOT NULL,"
    "  auth_time INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  expires_at INTEGER NOT NULL,"
    "  last_seen INTEGER NOT NULL,"
    "  data TEXT NOT NULL DEFAULT '{}'"
    ");"
    "CREATE INDEX sso_sessions_user ON sso_sessions (tenant, user_id);"
    "CREATE INDEX sso_sessions_expires ON sso_sessions (expires_at);"
    /* replication bookkeeping: node-local, written by src/repl */
    "CREATE TABLE repl_log ("
    "  epoch INTEGER NOT NULL,"
    "  lsn INTEGER PRIMARY KEY NOT NULL,"
    "  commit_us INTEGER NOT NULL,"
    "  hash BLOB NOT NULL,"
    "  changeset BLOB NOT NULL"
    ");"
    "CREATE TABLE repl_state ("
    "  key TEXT PRIMARY KEY NOT NULL,"
    "  value TEXT NOT NULL"
    ");"
    "CREATE TABLE epoch_history ("
    "  epoch INTEGER PRIMARY KEY NOT NULL,"
    "  start_lsn INTEGER NOT NULL"
    ");",
};

int store_schema_version_latest(void)
{
    return (int)(sizeof(migrations) / sizeof(migrations[0]));
}

static int read_version(struct db *db, int *out)
{
    struct db_stmt *st = db_prepare(db, "PRAGMA user_version");
    int rc;

    if (!st)
        return DB_ERR;
    rc = db_step(st);
    if (rc == DB_ROW) {
        *out = (int)db_col_int64(st, 0);
        rc = 0;
    } else if (rc == DB_DONE) {
        rc = DB_ERR;
    }
    db_done(st);
    return rc;
}

static int db_errno(int rc)
{
    switch (rc) {
    case DB_EBUSY:
        return -EBUSY;
    case DB_EFULL:
        return -ENOSPC;
    case DB_EREADONLY:
        return -EROFS;
    default:
        return -EIO;
    }
}

/*
 * Brings the database on `db` to the latest schema version. Each migration
 * runs in its own BEGIN IMMEDIATE transaction that re-reads user_version, so
 * two processes opening the same file cannot both apply a step. Returns 0,
 * -EPROTO (database newer than this binary) or another negative errno with a
 * message in err.
 */
int store_schema_migrate(struct db *db, char *err, size_t errlen)
{
    int latest = store_schema_version_latest();
    int version = 0;
    int rc;

    for (;;) {
        char sql[64];

        rc = db_exec(db, "BEGIN IMMEDIATE");
        if (rc != 0) {
            snprintf(err, errlen, "schema migration: %s", db_errmsg(db));
            return db_errno(rc);
        }
        rc = read_version(db, &version);
        if (rc != 0) {
            snprintf(err, errlen, "schema migration: reading user_version: %s", db_errmsg(db));
            rc = db_errno(rc);
            goto rollback;
        }
        if (version > latest) {
            snprintf(err, errlen,
                     "database schema version %d is newer than this refuged supports (%d)",
                     version, latest);
            rc = -EPROTO;
            goto rollback;
        }
        if (version < 0) {
            snprintf(err, errlen, "database schema version %d is invalid", version);
            rc = -EPROTO;
            goto rollback;
        }
        if (version == latest)
            break;
        rc = db_exec(db, migrations[version]);
        if (rc == 0) {
            snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", version + 1);
            rc = db_exec(db, sql);
        }
        if (rc != 0) {
            snprintf(err, errlen, "schema migration %d: %s", version + 1, db_errmsg(db));
            rc = db_errno(rc);
            goto rollback;
        }
        rc = db_exec(db, "COMMIT");
        if (rc != 0) {
            snprintf(err, errlen, "schema migration %d: commit: %s", version + 1, db_errmsg(db));
            rc = db_errno(rc);
            goto rollback;
        }
    }
    rc = db_exec(db, "COMMIT");   /* ends the read-only check transaction */
    if (rc == 0)
        return 0;
    snprintf(err, errlen, "schema check: commit: %s", db_errmsg(db));
    rc = db_errno(rc);
rollback:
    db_exec(db, "ROLLBACK");
    return rc;
}
