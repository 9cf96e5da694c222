/*
 * cluster — loading cluster.conf (see cluster.h for the file).
 *
 * Two passes over the file: the first only collects [node.NAME] section
 * headers (and rejects bad node names with their line), the second is the
 * ordinary schema load of core/config.c with a schema made of the fixed
 * [cluster] / [haproxy] keys plus one copy of the node keys per section
 * found. Anything the schema does not know is then an error with file, line
 * and key, as in refuge.conf.
 */
#include "cluster.h"

#include <errno.h>
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/str.h"
#include "core/xmalloc.h"

#define CLUSTER_MAX_FILE (1024 * 1024)

#define C(field) offsetof(struct ctl_cluster, field)

static const struct cfg_key base_keys[] = {
    { "cluster", "name", CFG_STRING, C(name), NULL, 1, 128, NULL, true,
      "cluster name, shown by status" },
    { "cluster", "admin_credentials", CFG_PATH, C(admin_credentials), NULL, 0, 0, NULL, true,
      "JSON file {\"client_id\",\"client_secret\"} of an admin client (bootstrap-admin.json)" },
    { "cluster", "rto_target_ms", CFG_DURATION, C(rto_target_ms), "1000", 0, 86400000, NULL, false,
      "recovery time objective: first failed to first successful request" },
    { "cluster", "rpo_target_ms", CFG_DURATION, C(rpo_target_ms), "0", 0, 86400000, NULL, false,
      "recovery point objective: window of acknowledged writes that may be lost" },
    { "cluster", "request_timeout_ms", CFG_DURATION, C(request_timeout_ms), "2000", 50, 60000, NULL,
      false, "deadline of one admin API request" },
    { "cluster", "fence_timeout_ms", CFG_DURATION, C(fence_timeout_ms), "300", 20, 10000, NULL, false,
      "deadline of a request to a node being fenced (it may be dead or cut off)" },
    { "cluster", "catchup_timeout_ms", CFG_DURATION, C(catchup_timeout_ms), "5000", 10, 600000, NULL,
      false, "how long failover and switchover wait for the target to apply what it received" },
    { "cluster", "rejoin_timeout_ms", CFG_DURATION, C(rejoin_timeout_ms), "30000", 100, 3600000, NULL,
      false, "how long rejoin waits for the node to start, rewind and catch up" },
    { "cluster", "journal", CFG_PATH, C(journal), NULL, 0, 0, NULL, false,
      "append every step of failover/switchover/rejoin/drill here as JSON lines" },
    { "haproxy", "socket", CFG_PATH, C(haproxy_socket), NULL, 0, 0, NULL, true,
      "HAProxy runtime API socket (stats socket ... level admin)" },
    { "haproxy", "backend", CFG_STRING, C(haproxy_backend), "refuge", 1, 128, NULL, false,
      "the backend holding one server per node" },
    { "haproxy", "frontend_url", CFG_URL, C(frontend_url), NULL, 0, 0, NULL, true,
      "the front door as clients use it (http://)" },
};

#define N_BASE (sizeof base_keys / sizeof base_keys[0])
#define N_NODE_KEYS 7

static bool node_name_ok(struct str s)
{
    if (s.len == 0 || s.len > CTL_NODE_NAME_MAX)
        return false;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
              c == '_' || c == '.'))
            return false;
    }
    return true;
}

/* First pass: [node.NAME] headers. Fills c->nodes[].name/section. */
static int collect_nodes(const char *file, const char *text, size_t len, struct ctl_cluster *c, char *err,
                         size_t errlen)
{
    struct str rest = { text, len }, line, name;
    int lineno = 0;

    while (rest.len) {
        if (!str_split(rest, '\n', &line, &rest)) {
            line = rest;
            rest = STR_NULL;
        }
        lineno++;
        line = str_trim(line);
        if (line.len < 2 || line.p[0] != '[')
            continue;
        const char *close = memchr(line.p, ']', line.len);
        if (!close)
            continue;           /* the schema load reports it */
        struct str sec = str_trim((struct str){ line.p + 1, (size_t)(close - line.p - 1) });
        if (!str_has_prefix(sec, "node.") && !str_eq_cstr(sec, "node"))
            continue;
        name = sec.len > 5 ? (struct str){ sec.p + 5, sec.len - 5 } : STR_NULL;
        if (!node_name_ok(name)) {
            snprintf(err, errlen, "%s:%d: %.*s: a node section is [node.NAME], NAME 1-%d of A-Z a-z 0-9 . _ -",
                     file, lineno, STR_FMT(sec), CTL_NODE_NAME_MAX);
            return -1;
        }
        bool dup = false;
        for (size_t i = 0; i < c->n_nodes; i++)
            dup |= str_eq_cstr(name, c->nodes[i].name);
        if (dup)
            continue;           /* the schema load reports the duplicate key */
        if (c->n_nodes == CTL_MAX_NODES) {
            snprintf(err, errlen, "%s:%d: %.*s: at most %d nodes", file, lineno, STR_FMT(sec), CTL_MAX_NODES);
            return -1;
        }
        c->nodes[c->n_nodes].name = str_dup(name);
        c->nodes[c->n_nodes].section = str_dup(sec);
        c->n_nodes++;
    }
    if (c->n_nodes < 2) {
        snprintf(err, errlen, "%s: need at least two [node.NAME] sections, found %zu", file, c->n_nodes);
        return -1;
    }
    return 0;
}

static void node_keys(struct ctl_cluster *c, size_t i, struct cfg_key *k)
{
    size_t base = offsetof(struct ctl_cluster, nodes) + i * sizeof(struct ctl_node);
    const char *s = c->nodes[i].section;

#define N(field) (base + offsetof(struct ctl_node, field))
    k[0] = (struct cfg_key){ s, "admin_url", CFG_URL, N(admin_url), NULL, 0, 0, NULL, true,
                             "the node's HTTP base URL (admin API, token endpoint)" };
    k[1] = (struct cfg_key){ s, "region", CFG_STRING, N(region), NULL, 1, 128, NULL, true, "region name" };
    k[2] = (struct cfg_key){ s, "haproxy_server", CFG_STRING, N(haproxy_server), NULL, 1, 128, NULL, false,
                             "server name in the HAProxy backend (default: node name)" };
    k[3] = (struct cfg_key){ s, "data_dir", CFG_PATH, N(data_dir), NULL, 0, 0, NULL, false,
                             "the node's data directory, when local (rejoin shows divergent files)" };
    k[4] = (struct cfg_key){ s, "start_command", CFG_STRING, N(start_command), NULL, 1, 4000, NULL, false,
                             "starts the node in the foreground (drill, rejoin)" };
    k[5] = (struct cfg_key){ s, "pid_file", CFG_PATH, N(pid_file), NULL, 0, 0, NULL, false,
                             "pid of the node's process (written by refugectl when it starts it)" };
    k[6] = (struct cfg_key){ s, "log_file", CFG_PATH, N(log_file), NULL, 0, 0, NULL, false,
                             "stdout/stderr of start_command (default: /dev/null)" };
#undef N
}

/* Relative paths are taken from cluster.conf's directory. */
static void resolve(const struct ctl_cluster *c, char **p)
{
    if (!*p || (*p)[0] == '/' || strcmp(c->dir, ".") == 0)
        return;
    char *abs = xasprintf("%s/%s", c->dir, *p);
    free(*p);
    *p = abs;
}

static int load_credentials(struct ctl_cluster *c, char *err, size_t errlen)
{
    json_error_t je;
    json_t *j = json_load_file(c->admin_credentials, 0, &je);
    int rc = -1;

    if (!j) {
        snprintf(err, errlen, "%s: cluster.admin_credentials: cannot read %s: %s", c->path, c->admin_credentials,
                 je.text);
        return -1;
    }
    const char *id = json_string_value(json_object_get(j, "client_id"));
    const char *secret = json_string_value(json_object_get(j, "client_secret"));
    if (!id || !secret || !*id || !*secret) {
        snprintf(err, errlen, "%s: cluster.admin_credentials: %s has no client_id/client_secret strings", c->path,
                 c->admin_credentials);
        goto out;
    }
    c->client_id = xstrdup(id);
    c->client_secret = xstrdup(secret);
    rc = 0;
out:
    json_decref(j);
    return rc;
}

static char *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *data = NULL;

    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    data = xmalloc(CLUSTER_MAX_FILE + 1);
    *len = fread(data, 1, CLUSTER_MAX_FILE + 1, f);
    if (ferror(f) || *len > CLUSTER_MAX_FILE) {
        snprintf(err, errlen, "%s: %s", path, ferror(f) ? "read error" : "larger than 1 MiB");
        free(data);
        data = NULL;
    } else {
        data[*len] = '\0';
    }
    fclose(f);
    return data;
}

int ctl_cluster_load(const char *path, struct ctl_cluster *c, char *err, size_t errlen)
{
    struct cfg_key *keys = NULL;
    struct cfg_schema schema;
    struct cfg_error cerr;
    char *text = NULL, uerr[600];
    size_t len = 0, nk = N_BASE;
    int rc = -1;

    memset(c, 0, sizeof *c);
    if (!path)
        path = getenv("REFUGE_CLUSTER");
    if (!path || !*path)
        path = "cluster.conf";
    c->path = xstrdup(path);
    const char *slash = strrchr(path, '/');
    c->dir = slash ? xstrndup(path, slash == path ? 1 : (size_t)(slash - path)) : xstrdup(".");

    if (!(text = read_file(path, &len, err, errlen)))
        goto out;
    if (collect_nodes(path, text, len, c, err, errlen) < 0)
        goto out;

    keys = xcalloc(N_BASE + c->n_nodes * N_NODE_KEYS, sizeof *keys);
    memcpy(keys, base_keys, sizeof base_keys);
    for (size_t i = 0; i < c->n_nodes; i++) {
        node_keys(c, i, keys + nk);
        nk += N_NODE_KEYS;
    }
    schema = (struct cfg_schema){ keys, nk };

    /* the loaded strings are plain xmalloc'd fields of *c: ctl_cluster_free
     * releases them, on success and failure alike */
    if (cfg_load_string(&schema, path, text, len, c, &cerr) < 0) {
        cfg_error_format(&cerr, err, errlen);
        goto out;
    }

    if (ctl_url_parse(c->frontend_url, &c->front, uerr, sizeof uerr) < 0) {
        snprintf(err, errlen, "%s: haproxy.frontend_url: %s", path, uerr);
        goto out;
    }
    resolve(c, &c->admin_credentials);
    resolve(c, &c->haproxy_socket);
    resolve(c, &c->journal);
    for (size_t i = 0; i < c->n_nodes; i++) {
        struct ctl_node *n = &c->nodes[i];
        if (ctl_url_parse(n->admin_url, &n->url, uerr, sizeof uerr) < 0) {
            snprintf(err, errlen, "%s: %s.admin_url: %s", path, n->section, uerr);
            goto out;
        }
        if (!n->haproxy_server)
            n->haproxy_server = xstrdup(n->name);
        for (size_t j = 0; j < i; j++) {
            if (strcmp(c->nodes[j].haproxy_server, n->haproxy_server) == 0) {
                snprintf(err, errlen, "%s: %s.haproxy_server: '%s' is also node %s's server", path, n->section,
                         n->haproxy_server, c->nodes[j].name);
                goto out;
            }
        }
        resolve(c, &n->data_dir);
        resolve(c, &n->pid_file);
        resolve(c, &n->log_file);
    }
    if (load_credentials(c, err, errlen) < 0)
        goto out;
    rc = 0;
out:
    free(keys);
    free(text);
    return rc;
}

void ctl_cluster_free(struct ctl_cluster *c)
{
    free(c->path);
    free(c->dir);
    free(c->name);
    free(c->admin_credentials);
    free(c->journal);
    free(c->haproxy_socket);
    free(c->haproxy_backend);
    free(c->frontend_url);
    free(c->client_id);
    free(c->client_secret);
    for (size_t i = 0; i < c->n_nodes; i++) {
        struct ctl_node *n = &c->nodes[i];
        free(n->name);
        free(n->section);
        free(n->admin_url);
        free(n->region);
        free(n->haproxy_server);
        free(n->data_dir);
        free(n->start_command);
        free(n->pid_file);
        free(n->log_file);
    }
    memset(c, 0, sizeof *c);
}

struct ctl_node *ctl_cluster_node(struct ctl_cluster *c, const char *name)
{
    for (size_t i = 0; i < c->n_nodes; i++)
        if (strcmp(c->nodes[i].name, name) == 0)
            return &c->nodes[i];
    return NULL;
}
