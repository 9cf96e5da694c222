/*
 * view — observing the deployment (see view.h). Node statuses are fetched
 * by one thread per node so a node that does not answer costs its own
 * deadline, not the sum of everyone's.
 */
#include "view.h"

#include <pthread.h>
#include <string.h>

#include "core/json.h"

struct fetch {
    struct ctl_cluster *c;
    struct ctl_node *n;
    struct ctl_status *st;
    int timeout_ms;
};

static void *fetch_main(void *arg)
{
    struct fetch *f = arg;
    ctl_status_fetch(f->c, f->n, f->timeout_ms, f->st);
    return NULL;
}

void ctl_view_observe(struct ctl_view *v, struct ctl_cluster *c, const int *timeouts, int flags)
{
    struct fetch f[CTL_MAX_NODES];
    pthread_t th[CTL_MAX_NODES];
    bool started[CTL_MAX_NODES] = { false };

    memset(v, 0, sizeof *v);
    v->c = c;
    for (size_t i = 0; i < c->n_nodes; i++) {
        f[i] = (struct fetch){ c, &c->nodes[i], &v->st[i],
                               timeouts ? timeouts[i] : (int)c->request_timeout_ms };
        started[i] = pthread_create(&th[i], NULL, fetch_main, &f[i]) == 0;
        if (!started[i])
            fetch_main(&f[i]);
    }
    v->hap_rc = ctl_haproxy_servers(c->haproxy_socket, c->haproxy_backend, v->hap, CTL_HAP_MAX_SERVERS,
                                    &v->n_hap, v->hap_err, sizeof v->hap_err);
    v->front_status = flags & CTL_VIEW_NO_FRONT
                          ? 0
                          : ctl_probe(&c->front, "/health/ready", (int)c->request_timeout_ms, &v->front_ready);
    for (size_t i = 0; i < c->n_nodes; i++)
        if (started[i])
            pthread_join(th[i], NULL);
}

void ctl_view_free(struct ctl_view *v)
{
    for (size_t i = 0; i < CTL_MAX_NODES; i++)
        ctl_status_free(&v->st[i]);
    json_decref(v->front_ready);
    v->front_ready = NULL;
}

size_t ctl_node_index(const struct ctl_cluster *c, const struct ctl_node *n)
{
    return (size_t)(n - c->nodes);
}

const struct ctl_hap_server *ctl_view_hap(const struct ctl_view *v, const struct ctl_node *n)
{
    if (v->hap_rc < 0)
        return NULL;
    return ctl_haproxy_find(v->hap, v->n_hap, n->haproxy_server);
}

size_t ctl_view_actives(const struct ctl_view *v, size_t *first)
{
    size_t k = 0;
    for (size_t i = 0; i < v->c->n_nodes; i++) {
        if (ctl_status_is_active(&v->st[i])) {
            if (k == 0 && first)
                *first = i;
            k++;
        }
    }
    return k;
}

const char *ctl_view_front_region(const struct ctl_view *v)
{
    return v->front_ready ? jsonx_str(v->front_ready, "region", "") : "";
}
