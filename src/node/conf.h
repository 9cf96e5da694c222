/*
 * conf — refuge.conf: the node's configuration file and its schema
 * (DESIGN.md §4). Every key is declared once in conf.c's table; the loader in
 * core/config.c does the parsing and produces file:line:key errors.
 */
#ifndef REFUGE_NODE_CONF_H
#define REFUGE_NODE_CONF_H

#include <stdbool.h>
#include <stdint.h>
#include "core/config.h"

enum conf_role { CONF_ROLE_ACTIVE = 0, CONF_ROLE_STANDBY = 1 };
enum conf_repl_mode { CONF_MODE_ASYNC = 0, CONF_MODE_REMOTE_WRITE = 1, CONF_MODE_REMOTE_APPLY = 2 };
enum conf_log_format { CONF_LOG_JSON = 0, CONF_LOG_TEXT = 1 };

struct refuge_conf {
    /* [node] */
    char *node_name;
    char *node_region;
    char *data_dir;
    int initial_role;            /* enum conf_role */
    char *master_key_file;       /* default: DATA_DIR/master.key */
    /* [http] */
    char *http_listen;
    char *public_url;
    char *http_tls_cert;
    char *http_tls_key;
    int64_t http_threads;
    int64_t max_body_bytes;
    int64_t max_header_bytes;
    int64_t max_url_bytes;
    int64_t max_json_depth;
    char *trusted_proxies;
    /* [replication] */
    char *repl_listen;
    char *repl_peer;
    int repl_mode;               /* enum conf_repl_mode */
    int64_t max_lag_ms;
    char *repl_tls_ca;
    char *repl_tls_cert;
    char *repl_tls_key;
    bool insecure_plaintext;
    bool replicate_sessions;
    bool replicate_tokens;
    int64_t retain_ms;
    int64_t retain_bytes;
    /* [dr] */
    int64_t rpo_target_ms;
    int64_t rto_target_ms;
    /* [artifacts] */
    char *artifacts_dir;
    /* [log] */
    int log_level;               /* enum log_level */
    int log_format;              /* enum conf_log_format */
    char *log_file;
    /* [store] */
    int64_t batch_max;
    int64_t queue_max;
    int64_t token_purge_interval_ms;
    /* [region] */
    struct cfg_kvlist region;
};

extern const struct cfg_schema conf_schema;

/* Loads and validates; derived defaults (master key path, artifacts dir)
 * are filled in. 0 or -1 with err. Release with conf_free. */
int conf_load(const char *path, struct refuge_conf *c, struct cfg_error *err);
void conf_free(struct refuge_conf *c);
const char *conf_mode_name(int mode);

#endif
