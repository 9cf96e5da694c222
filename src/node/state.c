/*
 * state — the node's persisted role, epoch and cluster id (node_state table,
 * replication class `local`: each node keeps its own).
 *
 * On the very first start the role comes from [node] initial_role and the
 * epoch is 1. Afterwards the stored values win over the configuration: a node
 * that was promoted stays active across restarts, whatever the file says.
 */
#include "node/node.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/uuid.h"
#include "core/xmalloc.h"

const char *node_role_name(int role)
{
    return role == NODE_ACTIVE ? "active" : "standby";
}

int node_state_get(struct store *s, const char *key, char *out, size_t outlen)
{
    struct db *db = store_reader(s);
    struct db_stmt *st = db_prepare(db, "SELECT value FROM node_state WHERE key = $1");
    if (!st)
        return DB_ERR;
    db_bind_text(st, 1, key, -1);
    int rc = db_step(st);
    if (rc == DB_ROW) {
        snprintf(out, outlen, "%s", db_col_text(st, 0));
        rc = 0;
    } else if (rc == DB_DONE) {
        rc = -ENOENT;
    }
    db_done(st);
    return rc;
}

struct kv_job {
    const char *keys[4];
    const char *values[4];
    size_t n;
};

static int kv_write(struct db *db, void *arg)
{
    struct kv_job *j = arg;
    for (size_t i = 0; i < j->n; i++) {
        int rc = db_execp(db,
                          "INSERT INTO node_state(key, value) VALUES ($1, $2) "
                          "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                          j->keys[i], j->values[i], NULL);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int node_state_set(struct store *s, const char *key, const char *value)
{
    struct kv_job j = { .keys = { key }, .values = { value }, .n = 1 };
    return store_write(s, kv_write, &j);
}

int node_state_save(struct node *n, int role, int64_t epoch)
{
    char ebuf[32];
    snprintf(ebuf, sizeof(ebuf), "%lld", (long long)epoch);
    struct kv_job j = { .keys = { "role", "epoch" }, .values = { node_role_name(role), ebuf }, .n = 2 };
    int rc = store_write_flags(n->store, kv_write, &j, STORE_JOB_SYSTEM);
    if (rc == 0) {
        atomic_store(&n->epoch, epoch);
        atomic_store(&n->role, role);
    }
    return rc;
}

int node_state_load(struct node *n, char *err, size_t errlen)
{
    char role[32], epoch[32];
    int rc_role = node_state_get(n->store, "role", role, sizeof(role));
    int rc_epoch = node_state_get(n->store, "epoch", epoch, sizeof(epoch));
    int rc_cid = node_state_get(n->store, "cluster_id", n->cluster_id, sizeof(n->cluster_id));

    if (rc_role == -ENOENT) {
        int r = n->conf->initial_role == CONF_ROLE_ACTIVE ? NODE_ACTIVE : NODE_STANDBY;
        char cid[UUID_STRLEN + 1];
        uuid_v4(cid);
        struct kv_job j = { .keys = { "role", "epoch", "cluster_id" },
                            .values = { node_role_name(r), "1", cid },
                            .n = rc_cid == -ENOENT ? 3 : 2 };
        int rc = store_write(n->store, kv_write, &j);
        if (rc < 0) {
            snprintf(err, errlen, "cannot initialise node state: %d", rc);
            return rc;
        }
        if (rc_cid == -ENOENT)
            snprintf(n->cluster_id, sizeof(n->cluster_id), "%s", cid);
        atomic_store(&n->role, r);
        atomic_store(&n->epoch, 1);
        log_info("node state initialised", "role", node_role_name(r), "epoch", "1", NULL);
        return 0;
    }
    if (rc_role < 0 || rc_epoch < 0 || rc_cid < 0) {
        snprintf(err, errlen, "cannot read node state (role %d, epoch %d, cluster id %d)", rc_role, rc_epoch,
                 rc_cid);
        return rc_role < 0 ? rc_role : rc_epoch < 0 ? rc_epoch : rc_cid;
    }
    atomic_store(&n->role, strcmp(role, "active") == 0 ? NODE_ACTIVE : NODE_STANDBY);
    atomic_store(&n->epoch, strtoll(epoch, NULL, 10));
    return 0;
}
