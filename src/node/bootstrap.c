/*
 * bootstrap — the first start of an active node on an empty store
 * (DESIGN.md §4): tenant `default`, its ES256 signing key, and the admin
 * client `refuge-admin`, all in one write transaction, so a crash halfway
 * leaves nothing half-made and the next start simply tries again.
 *
 * The admin secret is REFUGE_BOOTSTRAP_ADMIN_SECRET when set, else 256
 * random bits; it is stored only hashed, and written in clear once to
 * DATA_DIR/bootstrap-admin.json (mode 0600, written to a temp file, fsynced
 * and renamed) for the operator. A standby never bootstraps: its tenants,
 * keys and clients arrive by replication, so both regions share the same
 * admin credentials and keys.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "crypto/secret.h"
#include "identity/client.h"
#include "identity/keyring.h"
#include "identity/tenant.h"
#include "node/node.h"

#define ADMIN_CLIENT "refuge-admin"
#define ADMIN_MIN_SECRET 16

struct boot_job {
    struct node *n;
    const char *secret;
    char kid[64];
};

static int boot_write(struct db *db, void *arg)
{
    struct boot_job *j = arg;
    int rc = tenant_insert(db, TENANT_DEFAULT, "Default tenant", NULL);
    if (rc < 0)
        return rc;
    struct tenant_settings ts;
    tenant_settings_defaults(&ts);
    rc = keyring_rotate(db, j->n->master_key, TENANT_DEFAULT, "ES256",
                        ts.access_token_ttl > ts.id_token_ttl ? ts.access_token_ttl : ts.id_token_ttl, j->kid);
    if (rc < 0)
        return rc;
    static const char *const scopes[] = { "refuge:admin", "scim:read", "scim:write", "openid", "profile",
                                          "email", "groups" };
    struct client c = {
        .tenant = TENANT_DEFAULT,
        .client_id = ADMIN_CLIENT,
        .name = "Refuge administrator",
        .confidential = true,
        .scopes = (const char **)scopes,
        .nscopes = sizeof(scopes) / sizeof(scopes[0]),
        .default_scopes = (const char **)scopes,
        .ndefault_scopes = 1,
        .grant_types = GRANT_CLIENT_CREDENTIALS,
    };
    rc = client_insert(db, &c, j->secret);
    if (rc < 0)
        return rc;
    return db_execp(db, "INSERT INTO node_state(key, value) VALUES ('bootstrapped', '1')", NULL);
}

static int write_creds_file(const char *dir, const char *secret, char *err, size_t errlen)
{
    char *path = xasprintf("%s/bootstrap-admin.json", dir);
    char *tmp = xasprintf("%s.tmp", path);
    char *text = xasprintf("{\"client_id\":\"%s\",\"client_secret\":\"%s\"}\n", ADMIN_CLIENT, secret);
    int rc = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || fchmod(fd, 0600) != 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) ||
        fsync(fd) != 0) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        if (fd >= 0)
            close(fd);
        unlink(tmp);
        goto out;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
    }
out:
    crypto_wipe_free_str(text);
    free(tmp);
    free(path);
    return rc;
}

int node_bootstrap(struct node *n, char *err, size_t errlen)
{
    char flag[8];
    if (atomic_load(&n->role) != NODE_ACTIVE)
        return 0;
    if (node_state_get(n->store, "bootstrapped", flag, sizeof(flag)) == 0)
        return 0;

    char generated[CRYPTO_SECRET_BUFSZ];
    const char *secret = getenv("REFUGE_BOOTSTRAP_ADMIN_SECRET");
    if (secret && *secret) {
        if (strlen(secret) < ADMIN_MIN_SECRET) {
            snprintf(err, errlen, "REFUGE_BOOTSTRAP_ADMIN_SECRET must be at least %d characters",
                     ADMIN_MIN_SECRET);
            return -EINVAL;
        }
    } else {
        crypto_secret_generate(generated);
        secret = generated;
    }

    struct boot_job j = { .n = n, .secret = secret };
    int rc = store_write(n->store, boot_write, &j);
    if (rc < 0) {
        snprintf(err, errlen, "bootstrap failed: %d", rc);
        goto out;
    }
    keyring_invalidate(n->keyring);
    rc = write_creds_file(n->conf->data_dir, secret, err, errlen);
    if (rc == 0)
        log_info("bootstrapped", "tenant", TENANT_DEFAULT, "admin_client", ADMIN_CLIENT, "kid", j.kid,
                 "credentials", log_fmt("%s/bootstrap-admin.json", n->conf->data_dir), NULL);
out:
    crypto_wipe(generated, sizeof(generated));
    return rc;
}
