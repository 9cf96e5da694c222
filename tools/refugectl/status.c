/*
 * status — one screen an on-call engineer can read at 3 a.m.: who is active,
 * at which position, how far behind the standby is against the RPO
 * objective, whether replication is connected, artifact drift, and where the
 * front door sends traffic. Problems are listed last, worst first, each with
 * what to look at. `--json` gives the same observation for scripts.
 *
 *   refugectl status [-c cluster.conf] [--json]
 *
 * Exit status: 0 when the deployment is healthy, 1 when a problem is listed
 * (or nothing could be observed), 2 usage.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "core/json.h"
#include "core/timeutil.h"
#include "directory.h"
#include "refugectl.h"
#include "view.h"

void ctl_status_usage(FILE *f)
{
    fprintf(f, "refugectl status [-c CLUSTER.CONF] [--json]\n"
               "    every node's role, epoch, position, lag and RPO exposure against the objective,\n"
               "    replication link, artifact drift, and the front door's state. Exit 0 when\n"
               "    healthy, 1 when a problem is listed. CLUSTER.CONF defaults to $REFUGE_CLUSTER,\n"
               "    then ./cluster.conf.\n");
}

/* ------------------------------------------------------------ problems */

enum severity { SEV_WARN = 1, SEV_CRIT = 2 };

struct problem {
    enum severity sev;
    char text[320];
};

struct problems {
    struct problem p[32];
    size_t n;
};

static void __attribute__((format(printf, 3, 4))) add(struct problems *ps, enum severity sev, const char *fmt, ...)
{
    va_list ap;
    if (ps->n == sizeof ps->p / sizeof ps->p[0])
        return;
    ps->p[ps->n].sev = sev;
    va_start(ap, fmt);
    vsnprintf(ps->p[ps->n].text, sizeof ps->p[ps->n].text, fmt, ap);
    va_end(ap);
    ps->n++;
}

/* Artifact drift as the node reports it (issue 6): "artifacts": {"drift": N
 * or [...]} or "artifact_drift": N or [...]. -1 when the node does not say. */
static int64_t artifact_drift(const json_t *raw)
{
    const json_t *a = json_object_get(raw, "artifacts"), *d = NULL;

    if (json_is_object(a) && !(d = json_object_get(a, "drift")))
        d = json_object_get(a, "drift_total");
    if (!d)
        d = json_object_get(raw, "artifact_drift");
    if (json_is_integer(d))
        return json_integer_value(d);
    if (json_is_array(d))
        return (int64_t)json_array_size(d);
    if (json_is_object(d))
        return jsonx_int(d, "count", (int64_t)json_object_size(d));
    return -1;
}

static void diagnose(const struct ctl_view *v, struct problems *ps)
{
    const struct ctl_cluster *c = v->c;
    size_t first = 0, actives = ctl_view_actives(v, &first);
    const char *front_region = ctl_view_front_region(v);

    if (actives == 0)
        add(ps, SEV_CRIT, "no reachable node is active: writes are down (refugectl failover --to NODE)");
    if (actives > 1)
        add(ps, SEV_CRIT, "%zu nodes report role active: fence all but one (refugectl failover --to NODE)",
            actives);
    for (size_t i = 0; i < c->n_nodes; i++) {
        const struct ctl_status *s = &v->st[i];
        const struct ctl_node *n = &c->nodes[i];
        const struct ctl_hap_server *h = ctl_view_hap(v, n);
        if (v->hap_rc == 0 && !h)
            add(ps, SEV_WARN, "%s: no server '%s' in HAProxy backend %s", n->name, n->haproxy_server,
                c->haproxy_backend);
        if (s->rc < 0) {
            add(ps, actives == 0 ? SEV_CRIT : SEV_WARN, "%s: unreachable: %s", n->name, s->error);
            continue;
        }
        if (s->diverged)
            add(ps, SEV_CRIT, "%s: replication diverged, apply halted (refugectl rejoin %s)", n->name, n->name);
        if (strcmp(s->name, n->name) != 0)
            add(ps, SEV_WARN, "%s: answers as node '%s': check admin_url in cluster.conf", n->name, s->name);
        if (ctl_status_is_standby(s) && !s->peer_connected)
            add(ps, SEV_WARN, "%s: standby not connected to its peer: it is falling behind", n->name);
        if (ctl_status_is_active(s)) {
            if (!s->peer_connected)
                add(ps, SEV_WARN, "%s: active without a connected standby: nothing is replicated", n->name);
            int64_t target = c->rpo_target_ms;
            if (s->rpo_exposure_ms > target)
                add(ps, SEV_WARN, "%s: RPO exposure %lld ms is over the objective (%lld ms)", n->name,
                    (long long)s->rpo_exposure_ms, (long long)target);
            if (h && !ctl_haproxy_takes_traffic(h))
                add(ps, SEV_CRIT, "%s: active but HAProxy has its server %s %s", n->name, n->haproxy_server,
                    ctl_haproxy_state_name(h));
            if (actives == 1 && v->front_status == 200 && front_region[0] && strcmp(front_region, s->region) != 0)
                add(ps, SEV_CRIT, "front door answers from region %s, the active node is in %s", front_region,
                    s->region);
        }
        if (ctl_status_is_standby(s) && h && ctl_haproxy_takes_traffic(h) && v->n_hap)
            add(ps, SEV_WARN, "%s: standby but HAProxy routes to it (health check pending?)", n->name);
        int64_t d = artifact_drift(s->raw);
        if (d > 0)
            add(ps, SEV_WARN, "%s: %lld artifact file(s) drifted from the replicated copy", n->name, (long long)d);
        if (actives == 1 && i != first && v->st[first].rc == 0 && ctl_status_is_standby(s)) {
            struct ctl_dir_state ds[16];
            size_t nd = ctl_directories_compare(v->st[first].raw, s->raw, ds, 16);
            for (size_t k = 0; k < nd; k++) {
                if (ds[k].rc < 0)
                    add(ps, SEV_WARN, "%s: directory %s: replication state unknown (%s)", n->name, ds[k].name,
                        ds[k].why);
                else if (ds[k].rc == 1 && ds[k].lag_ms > c->rpo_target_ms)
                    add(ps, SEV_WARN, "%s: directory %s is %lld ms behind the active region's (RPO objective %lld ms)",
                        n->name, ds[k].name, (long long)ds[k].lag_ms, (long long)c->rpo_target_ms);
            }
        }
    }
    if (v->hap_rc < 0)
        add(ps, SEV_WARN, "front door control unavailable: %s", v->hap_err);
    if (v->front_status != 200)
        add(ps, SEV_CRIT, "front door %s/health/ready: %s", c->frontend_url,
            v->front_status < 0 ? ctl_http_strerror(v->front_status) : "not ready (no active server)");
    /* worst first */
    for (size_t i = 1; i < ps->n; i++)
        for (size_t j = i; j > 0 && ps->p[j].sev > ps->p[j - 1].sev; j--) {
            struct problem t = ps->p[j];
            ps->p[j] = ps->p[j - 1];
            ps->p[j - 1] = t;
        }
}

/* --------------------------------------------------------------- text */

static void fmt_bytes(int64_t n, char *out, size_t outlen)
{
    if (n < 10 * 1024)
        snprintf(out, outlen, "%lld B", (long long)n);
    else if (n < 10 * 1024 * 1024)
        snprintf(out, outlen, "%lld KiB", (long long)(n / 1024));
    else
        snprintf(out, outlen, "%lld MiB", (long long)(n / (1024 * 1024)));
}

static void print_text(const struct ctl_view *v, const struct problems *ps)
{
    const struct ctl_cluster *c = v->c;
    char ts[40], pad[64];
    size_t first = 0, actives = ctl_view_actives(v, &first);
    int64_t active_lsn = actives ? v->st[first].lsn : -1;

    time_rfc3339(time_wall_us(), ts, sizeof ts, 0);
    printf("%scluster %s%s   objectives: RTO %lld ms, RPO %lld ms   %s\n", ctl_col(CTL_BOLD), c->name,
           ctl_col(CTL_RESET), (long long)c->rto_target_ms, (long long)c->rpo_target_ms, ts);
    if (v->front_status == 200)
        printf("front door  %s -> %s%s%s (region %s)\n", c->frontend_url, ctl_col(CTL_GREEN),
               jsonx_str(v->front_ready, "role", "?"), ctl_col(CTL_RESET), ctl_view_front_region(v));
    else
        printf("front door  %s -> %s%s%s\n", c->frontend_url, ctl_col(CTL_RED),
               v->front_status < 0 ? ctl_http_strerror(v->front_status) : "NOT READY", ctl_col(CTL_RESET));
    printf("\n%s%-10s %-12s %-8s %6s %10s  %-13s %-10s %-26s %-16s %s%s\n", ctl_col(CTL_BOLD), "NODE", "REGION",
           "ROLE", "EPOCH", "LSN", "MODE", "REPL", "LAG (rec / bytes / ms)", "RPO EXPOSURE", "HAPROXY",
           ctl_col(CTL_RESET));
    for (size_t i = 0; i < c->n_nodes; i++) {
        const struct ctl_status *s = &v->st[i];
        const struct ctl_node *n = &c->nodes[i];
        const struct ctl_hap_server *h = ctl_view_hap(v, n);
        const char *hs = h ? ctl_haproxy_state_name(h) : (v->hap_rc < 0 ? "?" : "absent");
        const char *hcol = h && ctl_haproxy_takes_traffic(h) ? ctl_col(CTL_GREEN)
                           : h && (h->admin_state & HAP_ADMIN_MAINT) ? ctl_col(CTL_YELLOW) : "";
        if (s->rc < 0) {
            printf("%-10s %-12s %s%-8s%s %6s %10s  %-13s %-10s %-26s %-16s %s%s%s\n", n->name, n->region,
                   ctl_col(CTL_RED), s->rc == -EACCES || s->rc == -EPROTO ? "ERROR" : "DOWN", ctl_col(CTL_RESET), "-", "-", "-", "-", "-", "-", hcol, hs,
                   ctl_col(CTL_RESET));
            printf("%-10s   %s%s%s\n", "", ctl_col(CTL_DIM), s->error, ctl_col(CTL_RESET));
            continue;
        }
        bool act = ctl_status_is_active(s);
        char repl[32], lag[64], rpo[48], b[24];
        snprintf(repl, sizeof repl, "%s", s->diverged ? "DIVERGED" : s->peer_connected ? "connected" : "down");
        if (act) {
            fmt_bytes(s->lag_bytes, b, sizeof b);
            snprintf(lag, sizeof lag, "%lld / %s / %lld", (long long)s->lag_records, b, (long long)s->lag_ms);
            snprintf(rpo, sizeof rpo, "%lld ms %s", (long long)s->rpo_exposure_ms,
                     s->rpo_exposure_ms <= c->rpo_target_ms ? "ok" : "OVER");
        } else {
            if (active_lsn >= 0)
                snprintf(lag, sizeof lag, "behind by %lld",
                         (long long)(active_lsn > s->lsn ? active_lsn - s->lsn : 0));
            else
                snprintf(lag, sizeof lag, "-");
            snprintf(rpo, sizeof rpo, "-");
        }
        const char *rcol = act ? ctl_col(CTL_GREEN) : "";
        const char *pcol = s->diverged ? ctl_col(CTL_RED) : s->peer_connected ? "" : ctl_col(CTL_YELLOW);
        const char *ocol = act && s->rpo_exposure_ms > c->rpo_target_ms ? ctl_col(CTL_YELLOW) : "";
        printf("%-10s %-12s %s%-8s%s %6lld %10lld  %-13s %s%-10s%s %-26s %s%-16s%s %s%s%s\n", n->name,
               s->region[0] ? s->region : n->region, rcol, s->role, ctl_col(CTL_RESET), (long long)s->epoch,
               (long long)s->lsn, s->mode, pcol, repl, ctl_col(CTL_RESET), lag, ocol, rpo, ctl_col(CTL_RESET),
               hcol, hs, ctl_col(CTL_RESET));
        int64_t d = artifact_drift(s->raw);
        if (d >= 0) {
            snprintf(pad, sizeof pad, "artifact drift: %lld", (long long)d);
            printf("%-10s   %s%s%s\n", "", d ? ctl_col(CTL_YELLOW) : ctl_col(CTL_DIM), pad, ctl_col(CTL_RESET));
        }
        /* The whole RPO picture: each directory's syncrepl state next to the store's lag. */
        const json_t *mine = ctl_directory_stores(s->raw);
        if (mine && (act || actives != 1 || v->st[first].rc != 0)) {
            size_t k;
            const json_t *e;
            json_array_foreach(mine, k, e) {
                bool up = json_is_true(json_object_get(e, "up"));
                printf("%-10s   %sdirectory %s: %s%s\n", "", up ? ctl_col(CTL_DIM) : ctl_col(CTL_YELLOW),
                       jsonx_str(e, "name", "?"), up ? "up" : "DOWN", ctl_col(CTL_RESET));
            }
        } else if (mine) {
            struct ctl_dir_state ds[16];
            size_t nd = ctl_directories_compare(v->st[first].raw, s->raw, ds, 16);
            for (size_t k = 0; k < nd; k++) {
                char state[160];
                if (ds[k].rc == 0)
                    snprintf(state, sizeof state, "in sync with %s's directory", c->nodes[first].name);
                else if (ds[k].rc == 1)
                    snprintf(state, sizeof state, "behind %s's directory by %lld ms", c->nodes[first].name,
                             (long long)ds[k].lag_ms);
                else
                    snprintf(state, sizeof state, "unknown (%s)", ds[k].why);
                printf("%-10s   %sdirectory %s: %s%s\n", "", ds[k].rc == 0 ? ctl_col(CTL_DIM) : ctl_col(CTL_YELLOW),
                       ds[k].name, state, ctl_col(CTL_RESET));
            }
        }
    }
    printf("\n");
    if (ps->n == 0) {
        printf("%sOK%s: one active node (%s), every standby connected, RPO exposure within objective\n",
               ctl_col(CTL_GREEN), ctl_col(CTL_RESET), c->nodes[first].name);
        return;
    }
    for (size_t i = 0; i < ps->n; i++)
        printf("%s%s%s %s\n", ps->p[i].sev == SEV_CRIT ? ctl_col(CTL_RED) : ctl_col(CTL_YELLOW),
               ps->p[i].sev == SEV_CRIT ? "CRITICAL" : "WARNING ", ctl_col(CTL_RESET), ps->p[i].text);
}

/* --------------------------------------------------------------- json */

static void print_json(const struct ctl_view *v, const struct problems *ps)
{
    const struct ctl_cluster *c = v->c;
    json_t *root = json_object(), *nodes = json_array(), *probs = json_array(), *servers = json_array();

    json_object_set_new(root, "cluster", json_string(c->name));
    json_object_set_new(root, "objectives", json_pack("{s:I, s:I}", "rto_target_ms", (json_int_t)c->rto_target_ms,
                                                      "rpo_target_ms", (json_int_t)c->rpo_target_ms));
    for (size_t i = 0; i < v->n_hap; i++)
        json_array_append_new(servers, json_pack("{s:s, s:s, s:i, s:i}", "name", v->hap[i].name, "state",
                                                 ctl_haproxy_state_name(&v->hap[i]), "op_state", v->hap[i].op_state,
                                                 "admin_state", v->hap[i].admin_state));
    json_t *fd = json_pack("{s:s, s:i, s:o}", "url", c->frontend_url, "ready_status", v->front_status,
                           "servers", servers);
    if (v->front_ready)
        json_object_set(fd, "ready", v->front_ready);
    if (v->hap_rc < 0)
        json_object_set_new(fd, "haproxy_error", json_string(v->hap_err));
    json_object_set_new(root, "front_door", fd);
    for (size_t i = 0; i < c->n_nodes; i++) {
        const struct ctl_node *n = &c->nodes[i];
        const struct ctl_hap_server *h = ctl_view_hap(v, n);
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:b}", "name", n->name, "region", n->region, "admin_url",
                              n->admin_url, "haproxy_server", n->haproxy_server, "reachable", v->st[i].rc == 0);
        json_object_set_new(o, "haproxy_state", h ? json_string(ctl_haproxy_state_name(h)) : json_null());
        if (v->st[i].rc == 0)
            json_object_set(o, "status", v->st[i].raw);
        else
            json_object_set_new(o, "error", json_string(v->st[i].error));
        json_array_append_new(nodes, o);
    }
    json_object_set_new(root, "nodes", nodes);
    for (size_t i = 0; i < ps->n; i++)
        json_array_append_new(probs, json_pack("{s:s, s:s}", "severity", ps->p[i].sev == SEV_CRIT ? "critical"
                                                                                                  : "warning",
                                               "text", ps->p[i].text));
    json_object_set_new(root, "problems", probs);
    json_object_set_new(root, "healthy", json_boolean(ps->n == 0));
    char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    printf("%s\n", s);
    free(s);
    json_decref(root);
}

int ctl_status_run(int argc, char **argv)
{
    const char *path = NULL, *v;
    struct ctl_cluster c;
    struct ctl_view view;
    struct problems ps = { .n = 0 };
    bool json = false;
    int missing = 0, rc;
    int timeouts[CTL_MAX_NODES];
    char err[1024];

    for (int i = 1; i < argc; i++) {
        if ((v = ctl_opt_value(argc, argv, &i, "-c", &missing)) ||
            (v = ctl_opt_value(argc, argv, &i, "--cluster", &missing)))
            path = v;
        else if (strcmp(argv[i], "--json") == 0)
            json = true;
        else {
            fprintf(stderr, missing ? "refugectl: %s needs a value\n" : "refugectl: status: unexpected '%s'\n",
                    argv[i]);
            ctl_status_usage(stderr);
            return CTL_USAGE;
        }
    }
    rc = ctl_cluster_load(path, &c, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "refugectl: %s\n", err);
        ctl_cluster_free(&c);
        return CTL_FAIL;
    }
    ctl_out_begin("status", NULL);
    for (size_t i = 0; i < c.n_nodes; i++)
        timeouts[i] = (int)(c.request_timeout_ms < 1500 ? c.request_timeout_ms : 1500);
    ctl_view_observe(&view, &c, timeouts, 0);
    diagnose(&view, &ps);
    if (json)
        print_json(&view, &ps);
    else
        print_text(&view, &ps);
    rc = ps.n == 0 ? CTL_OK : CTL_FAIL;
    ctl_view_free(&view);
    ctl_cluster_free(&c);
    ctl_out_end();
    return rc;
}
