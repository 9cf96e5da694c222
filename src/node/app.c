/*
 * app — start-up and shut-down order of a node.
 *
 *   master key -> store (migrations) -> node state -> replication (capture,
 *   fencing probe, threads) -> bootstrap -> replication armed (ack modes)
 *   -> metrics -> routes -> HTTP
 *
 * Shut-down runs the other way: HTTP stops accepting, replication stops
 * (writes held for the standby's acknowledgement fail), in-flight requests
 * (including ones suspended while the writer commits them) finish, then the
 * store drains its queue and closes.
 */
#include "node/app.h"

#include <stdio.h>
#include <string.h>

#include "artifacts/artifacts.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/xmalloc.h"
#include "crypto/master.h"
#include "crypto/secret.h"
#include "identity/keyring.h"
#include "ldap/userstore.h"
#include "node/routes.h"
#include "oauth/oauth.h"
#include "repl/repl.h"

#define MAX_ROUTES 256

int app_start(struct app *a, struct refuge_conf *conf, char *err, size_t errlen)
{
    struct node *n = &a->node;
    memset(a, 0, sizeof(*a));
    n->conf = conf;
    n->start_mono_us = time_mono_us();
    n->start_wall_us = time_wall_us();

    bool created = false;
    int rc = crypto_master_load_or_create(conf->master_key_file, n->master_key, &created, err, errlen);
    if (rc != 0)
        return rc;
    if (created)
        log_warn("created a new master key: deploy the same file to every region", "path",
                 conf->master_key_file, NULL);
    n->keyring = keyring_new(n->master_key);

    char *dbpath = xasprintf("%s/refuge.db", conf->data_dir);
    struct store_opts so = {
        .path = dbpath,
        .queue_max = (size_t)conf->queue_max,
        .batch_max = (size_t)conf->batch_max,
    };
    rc = store_open(&so, &n->store, err, errlen);
    free(dbpath);
    if (rc != 0)
        return rc;

    if ((rc = node_state_load(n, err, errlen)) != 0)
        goto fail;
    store_set_readonly(n->store, atomic_load(&n->role) != NODE_ACTIVE);
    /* replication: capture before the first write (bootstrap's too), and
     * fencing before this node takes writes in its role */
    if ((rc = repl_start(n, err, errlen)) != 0)
        goto fail;
    if ((rc = node_bootstrap(n, err, errlen)) != 0)
        goto fail;
    repl_arm(n);
    node_metrics_init(n);
    if ((rc = artifacts_start(n)) != 0)
        goto fail;
    userstore_start(n);

    struct http_route *routes = xcalloc(MAX_ROUTES, sizeof(*routes));
    size_t nr = routes_collect(n, routes, MAX_ROUTES);
    struct http_config hc = {
        .listen = conf->http_listen,
        .tls_cert = conf->http_tls_cert,
        .tls_key = conf->http_tls_key,
        .threads = (int)conf->http_threads,
        .max_body_bytes = (size_t)conf->max_body_bytes,
        .max_header_bytes = (size_t)conf->max_header_bytes,
        .max_url_bytes = (size_t)conf->max_url_bytes,
        .max_json_depth = (int)conf->max_json_depth,
        .connection_timeout_s = 30,
        .trusted_proxies = conf->trusted_proxies,
    };
    n->http = http_server_start(&hc, routes, nr, err, errlen);
    free(routes);
    if (!n->http) {
        rc = -1;
        goto fail;
    }
    if ((rc = oauth_purge_start(n)) != 0)
        log_warn("token purge job did not start", "rc", log_i64(rc), NULL);
    return 0;
fail:
    userstore_stop(n);
    artifacts_stop(n);
    repl_stop(n);
    store_close(n->store);
    n->store = NULL;
    keyring_free(n->keyring);
    n->keyring = NULL;
    return rc;
}

void app_stop(struct app *a)
{
    struct node *n = &a->node;
    oauth_purge_stop(n);
    if (n->http)
        http_server_quiesce(n->http);
    userstore_stop(n);     /* queued directory requests still answer their connections */
    repl_stop(n);          /* writes held for the standby's ack fail now */
    if (n->http) {
        http_server_stop(n->http, 10000);
        n->http = NULL;
    }
    artifacts_stop(n);
    if (n->store) {
        store_close(n->store);
        n->store = NULL;
    }
    keyring_free(n->keyring);
    n->keyring = NULL;
    crypto_wipe(n->master_key, sizeof(n->master_key));
}
