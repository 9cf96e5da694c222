/*
 * health — the routes a load balancer and a monitoring system use, none of
 * which needs a token: /health/live, /health/ready and /metrics.
 *
 * /health/ready is the front door's switch (DESIGN.md §1): 200 only while
 * this node is active and its store accepts writes, so HAProxy sends traffic
 * to the active region by itself.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/metrics.h"
#include "core/timeutil.h"
#include "node/node.h"

static enum http_result live(struct http_request *req)
{
    http_respond_json(req, 200, json_pack("{s:s}", "status", "live"));
    return HTTP_DONE;
}

static enum http_result ready(struct http_request *req)
{
    struct node *n = req->route_data;
    int role = atomic_load(&n->role);
    bool writable = store_writable(n->store);
    bool ok = role == NODE_ACTIVE && writable;
    json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:b}", "status", ok ? "ready" : "not_ready", "role",
                          node_role_name(role), "region", n->conf->node_region, "epoch",
                          (json_int_t)atomic_load(&n->epoch), "writable", writable);
    http_respond_json(req, ok ? 200 : 503, j);
    return HTTP_DONE;
}

static enum http_result metrics(struct http_request *req)
{
    struct buf b;
    buf_init(&b, 16 << 20);
    metrics_render(&b);
    http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", b.data ? b.data : "", b.len);
    buf_free(&b);
    return HTTP_DONE;
}

size_t node_routes(struct node *n, struct http_route *out, size_t max)
{
    const struct http_route routes[] = {
        { "GET", "/health/live", live, 0, "health_live", n },
        { "GET", "/health/ready", ready, 0, "health_ready", n },
        { "GET", "/metrics", metrics, 0, "metrics", n },
    };
    size_t k = sizeof(routes) / sizeof(routes[0]);
    if (k > max)
        k = max;
    memcpy(out, routes, k * sizeof(routes[0]));
    return k;
}

int64_t node_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return -1;
    long size = 0, resident = 0;
    int ok = fscanf(f, "%ld %ld", &size, &resident) == 2;
    fclose(f);
    return ok ? (int64_t)resident * sysconf(_SC_PAGESIZE) : -1;
}

static double g_rss(void *arg) { (void)arg; return (double)node_rss_bytes(); }
static double g_uptime(void *arg)
{
    struct node *n = arg;
    return (double)(time_mono_us() - n->start_mono_us) / 1e6;
}
static double g_role(void *arg) { return atomic_load(&((struct node *)arg)->role) == NODE_ACTIVE ? 1 : 0; }
static double g_epoch(void *arg) { return (double)atomic_load(&((struct node *)arg)->epoch); }
static double g_queue(void *arg)
{
    struct store_stats st;
    store_stats(((struct node *)arg)->store, &st);
    return (double)st.queue_len;
}
static double g_wal(void *arg)
{
    struct store_stats st;
    store_stats(((struct node *)arg)->store, &st);
    return (double)st.wal_bytes;
}

void node_metrics_init(struct node *n)
{
    metric_gauge_fn("refuge_process_resident_memory_bytes", "Resident set size", g_rss, NULL);
    metric_gauge_fn("refuge_uptime_seconds", "Seconds since start", g_uptime, n);
    metric_gauge_fn("refuge_node_active", "1 when this node is active, 0 when standby", g_role, n);
    metric_gauge_fn("refuge_node_epoch", "Current replication epoch", g_epoch, n);
    metric_gauge_fn("refuge_store_queue_length", "Write jobs waiting for the writer", g_queue, n);
    metric_gauge_fn("refuge_store_wal_bytes", "Size of the SQLite WAL file", g_wal, n);
}
