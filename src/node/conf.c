/*
 * conf — the schema of refuge.conf. Adding a key means adding one line to
 * the table below (and to docs/configuration.md); the loader, the error
 * messages and --check-config follow from it.
 */
#include "node/conf.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "http/http.h"
#include "core/xmalloc.h"

static const char *const role_values[] = { "active", "standby", NULL };
static const char *const mode_values[] = { "async", "remote_write", "remote_apply", NULL };
static const char *const level_values[] = { "debug", "info", "warn", "error", NULL };
static const char *const format_values[] = { "json", "text", NULL };

#define OFF(f) offsetof(struct refuge_conf, f)
#define K(sec, name, type, field, def, min, max, en, req, help) \
    { sec, name, type, OFF(field), def, min, max, en, req, help }

static const struct cfg_key keys[] = {
    K("node", "name", CFG_STRING, node_name, NULL, 1, 64, NULL, true, "node name, unique in the cluster"),
    K("node", "region", CFG_STRING, node_region, NULL, 1, 64, NULL, true, "region this node runs in"),
    K("node", "data_dir", CFG_PATH, data_dir, NULL, 0, 0, NULL, true, "directory for the store and node files"),
    K("node", "initial_role", CFG_ENUM, initial_role, "active", 0, 0, role_values, false,
      "role on the first start with an empty data dir"),
    K("node", "master_key_file", CFG_PATH, master_key_file, NULL, 0, 0, NULL, false,
      "32-byte key sealing private keys at rest (default DATA_DIR/master.key)"),

    K("http", "listen", CFG_LISTEN, http_listen, "127.0.0.1:8080", 0, 0, NULL, false, "HTTP listen address"),
    K("http", "public_url", CFG_URL, public_url, NULL, 0, 0, NULL, false,
      "external base URL; the default tenant's issuer (default http://LISTEN)"),
    K("http", "tls_cert", CFG_PATH, http_tls_cert, NULL, 0, 0, NULL, false, "PEM certificate (enables TLS)"),
    K("http", "tls_key", CFG_PATH, http_tls_key, NULL, 0, 0, NULL, false, "PEM private key"),
    K("http", "threads", CFG_INT, http_threads, "2", 1, 256, NULL, false, "HTTP worker threads"),
    K("http", "max_body_bytes", CFG_SIZE, max_body_bytes, "1M", 1024, 64 << 20, NULL, false,
      "largest request body"),
    K("http", "max_header_bytes", CFG_SIZE, max_header_bytes, "16k", 1024, 1 << 20, NULL, false,
      "largest request header block"),
    K("http", "max_url_bytes", CFG_SIZE, max_url_bytes, "8k", 256, 1 << 20, NULL, false, "longest request URL"),
    K("http", "max_json_depth", CFG_INT, max_json_depth, "32", 2, 512, NULL, false,
      "deepest JSON nesting accepted"),
    K("http", "trusted_proxies", CFG_STRING, trusted_proxies, NULL, 1, 4096, NULL, false,
      "comma-separated IPs of the front door, whose X-Forwarded-For names the client"),

    K("replication", "listen", CFG_LISTEN, repl_listen, NULL, 0, 0, NULL, false, "replication listen address"),
    K("replication", "peer", CFG_LISTEN, repl_peer, NULL, 0, 0, NULL, false, "the other region's replication address"),
    K("replication", "mode", CFG_ENUM, repl_mode, "async", 0, 0, mode_values, false,
      "when a write is acknowledged: async, remote_write, remote_apply"),
    K("replication", "max_lag_ms", CFG_DURATION, max_lag_ms, "5s", 1, 86400000, NULL, false,
      "async mode: writes wait, then fail, when the standby is further behind"),
    K("replication", "tls_ca", CFG_PATH, repl_tls_ca, NULL, 0, 0, NULL, false, "cluster CA certificate"),
    K("replication", "tls_cert", CFG_PATH, repl_tls_cert, NULL, 0, 0, NULL, false, "this node's certificate"),
    K("replication", "tls_key", CFG_PATH, repl_tls_key, NULL, 0, 0, NULL, false, "this node's private key"),
    K("replication", "insecure_plaintext", CFG_BOOL, insecure_plaintext, "false", 0, 0, NULL, false,
      "allow replication without TLS (tests only)"),
    K("replication", "replicate_sessions", CFG_BOOL, replicate_sessions, "true", 0, 0, NULL, false,
      "SSO sessions survive a failover"),
    K("replication", "replicate_tokens", CFG_BOOL, replicate_tokens, "true", 0, 0, NULL, false,
      "refresh/opaque tokens and revocations survive a failover"),

    K("replication", "retain_ms", CFG_DURATION, retain_ms, "15m", 0, 604800000, NULL, false,
      "keep acknowledged log records this long (rewind and catch-up window)"),
    K("replication", "retain_bytes", CFG_SIZE, retain_bytes, "256M", 0, (int64_t)1 << 40, NULL, false,
      "and at most this many bytes of them"),

    K("dr", "rpo_target_ms", CFG_DURATION, rpo_target_ms, "1s", 0, 86400000, NULL, false, "RPO objective"),
    K("dr", "rto_target_ms", CFG_DURATION, rto_target_ms, "30s", 0, 86400000, NULL, false, "RTO objective"),

    K("artifacts", "dir", CFG_PATH, artifacts_dir, NULL, 0, 0, NULL, false,
      "tenant and userstore files (default DATA_DIR/artifacts)"),

    K("log", "level", CFG_ENUM, log_level, "info", 0, 0, level_values, false, "debug, info, warn, error"),
    K("log", "format", CFG_ENUM, log_format, "json", 0, 0, format_values, false, "json lines or text"),
    K("log", "file", CFG_PATH, log_file, NULL, 0, 0, NULL, false, "log file (default stderr); reopened on SIGHUP"),

    K("store", "batch_max", CFG_INT, batch_max, "512", 1, 100000, NULL, false, "write jobs per group commit"),
    K("store", "queue_max", CFG_INT, queue_max, "20000", 16, 10000000, NULL, false, "pending write jobs"),
    K("store", "token_purge_interval_ms", CFG_DURATION, token_purge_interval_ms, "60s", 100, 86400000, NULL,
      false, "how often expired tokens are purged"),

    { "region", NULL, CFG_FREE, OFF(region), NULL, 0, 0, NULL, false,
      "free keys referenced by artifacts as ${region.KEY}" },
};

const struct cfg_schema conf_schema = { keys, sizeof(keys) / sizeof(keys[0]) };

const char *conf_mode_name(int mode)
{
    if (mode < 0 || mode > CONF_MODE_REMOTE_APPLY)
        return "?";
    return mode_values[mode];
}

static void set_error(struct cfg_error *err, const char *file, const char *key, const char *msg)
{
    memset(err, 0, sizeof(*err));
    snprintf(err->file, sizeof(err->file), "%s", file);
    snprintf(err->key, sizeof(err->key), "%s", key);
    snprintf(err->msg, sizeof(err->msg), "%s", msg);
}

int conf_load(const char *path, struct refuge_conf *c, struct cfg_error *err)
{
    memset(c, 0, sizeof(*c));
    if (cfg_load_file(&conf_schema, path, c, err) != 0)
        return -1;
    if (!!c->http_tls_cert != !!c->http_tls_key) {
        set_error(err, path, c->http_tls_cert ? "http.tls_key" : "http.tls_cert",
                  "tls_cert and tls_key must be given together");
        return -1;
    }
    if (c->trusted_proxies) {
        char msg[160];
        if (http_trusted_proxies_check(c->trusted_proxies, msg, sizeof(msg)) != 0) {
            set_error(err, path, "http.trusted_proxies", msg);
            return -1;
        }
    }
    if (c->repl_listen || c->repl_peer) {
        if (!c->insecure_plaintext && !(c->repl_tls_ca && c->repl_tls_cert && c->repl_tls_key)) {
            set_error(err, path, "replication.tls_ca",
                      "replication needs tls_ca, tls_cert and tls_key (or insecure_plaintext = true)");
            return -1;
        }
    }
    if (!c->master_key_file)
        c->master_key_file = xasprintf("%s/master.key", c->data_dir);
    if (!c->artifacts_dir)
        c->artifacts_dir = xasprintf("%s/artifacts", c->data_dir);
    if (!c->public_url)
        c->public_url = xasprintf("%s://%s", c->http_tls_cert ? "https" : "http", c->http_listen);
    /* The issuer must not end with '/': tenants append "/t/NAME". */
    size_t n = strlen(c->public_url);
    while (n > 0 && c->public_url[n - 1] == '/')
        c->public_url[--n] = '\0';
    return 0;
}

void conf_free(struct refuge_conf *c)
{
    cfg_free(&conf_schema, c);
    memset(c, 0, sizeof(*c));
}
