/*
 * drutil — the actions the DR controllers share (see dr.h): waiting for a
 * position or for the front door, flipping HAProxy servers, promote/demote,
 * and starting or finding a node's process.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/json.h"
#include "core/timeutil.h"
#include "core/xmalloc.h"
#include "dr.h"
#include "refugectl.h"

int ctl_wait_position(struct ctl_cluster *c, struct ctl_node *n, int64_t lsn, const char *want_role,
                      int timeout_ms, struct ctl_status *last)
{
    int64_t deadline = time_mono_us() + (int64_t)timeout_ms * 1000;

    memset(last, 0, sizeof *last);
    for (;;) {
        int left = (int)((deadline - time_mono_us()) / 1000);
        ctl_status_free(last);
        ctl_status_fetch(c, n, left > 50 ? (left < 1000 ? left : 1000) : 50, last);
        if (last->rc == 0 && last->lsn >= lsn && (!want_role || strcmp(last->role, want_role) == 0))
            return 0;
        if (time_mono_us() >= deadline)
            return -ETIMEDOUT;
        time_sleep_us(5000);
    }
}

int ctl_wait_drained(struct ctl_cluster *c, struct ctl_node *leader, struct ctl_node *follower, int timeout_ms,
                     int64_t *lsn)
{
    int64_t deadline = time_mono_us() + (int64_t)timeout_ms * 1000, prev = -1;
    struct ctl_status l, f;

    for (;;) {
        /* leader first: a follower at or past that position has all of it */
        ctl_status_fetch(c, leader, 1000, &l);
        ctl_status_fetch(c, follower, 1000, &f);
        bool caught = l.rc == 0 && f.rc == 0 && f.lsn >= l.lsn;
        int64_t cur = l.rc == 0 ? l.lsn : -1;
        ctl_status_free(&l);
        ctl_status_free(&f);
        if (caught && cur == prev) {
            *lsn = cur;
            return 0;
        }
        prev = caught ? cur : -1;
        if (time_mono_us() >= deadline)
            return -ETIMEDOUT;
        time_sleep_us(3000);
    }
}

int ctl_wait_front(struct ctl_cluster *c, const char *region, int timeout_ms)
{
    int64_t deadline = time_mono_us() + (int64_t)timeout_ms * 1000;
    int last = 0;

    for (;;) {
        json_t *j = NULL;
        last = ctl_probe(&c->front, "/health/ready", 500, &j);
        bool ok = last == 200 && (!region || strcmp(jsonx_str(j, "region", ""), region) == 0);
        json_decref(j);
        if (ok)
            return 0;
        if (time_mono_us() >= deadline)
            return last < 0 ? last : -ETIMEDOUT;
        time_sleep_us(5000);
    }
}

int ctl_route(struct ctl_cluster *c, struct ctl_node *n, enum ctl_route how, const struct ctl_hap_server *known,
              const char *state, char *err, size_t errlen)
{
    char cmd[512];
    const char *what;
    int64_t t0 = time_mono_us();
    int rc;

    switch (how) {
    case CTL_ROUTE_ON:
        what = "ready, health up (takes traffic)";
        if (known && ctl_haproxy_takes_traffic(known)) {
            ctl_step(state, "haproxy %s/%s already UP", c->haproxy_backend, n->haproxy_server);
            return 0;
        }
        ctl_haproxy_cmd_route(cmd, sizeof cmd, c->haproxy_backend, n->haproxy_server);
        break;
    case CTL_ROUTE_HOLD:
        what = "ready, health down (standby: in the pool, no traffic until its checks pass)";
        ctl_haproxy_cmd_hold(cmd, sizeof cmd, c->haproxy_backend, n->haproxy_server);
        break;
    default:
        what = "MAINT (fenced: no traffic whatever its health checks say)";
        if (known && (known->admin_state & HAP_ADMIN_MAINT)) {
            ctl_step(state, "haproxy %s/%s already MAINT", c->haproxy_backend, n->haproxy_server);
            return 0;
        }
        ctl_haproxy_cmd_fence(cmd, sizeof cmd, c->haproxy_backend, n->haproxy_server);
        break;
    }
    rc = ctl_haproxy_set(c->haproxy_socket, cmd, err, errlen, 2000);
    if (rc == 0)
        ctl_step(state, "haproxy %s/%s -> %s (%lld ms)", c->haproxy_backend, n->haproxy_server, what,
                 (long long)((time_mono_us() - t0) / 1000));
    return rc;
}

int ctl_node_role(struct ctl_cluster *c, struct ctl_node *n, const char *action, json_t *body, int timeout_ms,
                  char *err, size_t errlen)
{
    char path[64];
    json_t *resp = NULL;
    int status = 0, rc;

    snprintf(path, sizeof path, "/admin/v1/node/%s", action);
    rc = ctl_node_call(c, n, "POST", path, body, timeout_ms, &status, &resp, err, errlen);
    if (rc < 0)
        goto out;
    if (status >= 200 && status < 300) {
        rc = 0;
        goto out;
    }
    ctl_describe_answer(status, resp, err, errlen);
    rc = status == 409 ? -EALREADY : -EPROTO;
out:
    json_decref(resp);
    return rc;
}

pid_t ctl_node_pid(const struct ctl_node *n)
{
    char buf[32] = "";
    long pid;
    FILE *f;

    if (!n->pid_file || !(f = fopen(n->pid_file, "r")))
        return 0;
    if (!fgets(buf, sizeof buf, f))
        buf[0] = '\0';
    fclose(f);
    pid = strtol(buf, NULL, 10);
    if (pid <= 1 || kill((pid_t)pid, 0) < 0)
        return 0;
    /* a zombie or a recycled pid is not our node */
    char path[64], stat[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    if ((f = fopen(path, "r"))) {
        size_t k = fread(stat, 1, sizeof stat - 1, f);
        fclose(f);
        stat[k] = '\0';
        const char *rp = strrchr(stat, ')');
        if (rp && rp[1] == ' ' && rp[2] == 'Z')
            return 0;
    }
    return (pid_t)pid;
}

int ctl_node_start(struct ctl_cluster *c, struct ctl_node *n, char *err, size_t errlen)
{
    char *cmd;
    pid_t pid;
    int fd;

    if (!n->start_command) {
        snprintf(err, errlen, "node %s has no start_command in %s", n->name, c->path);
        return -ENOENT;
    }
    cmd = xasprintf("exec %s", n->start_command);   /* sh becomes the node: its pid is ours */
    pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        free(cmd);
        return -errno;
    }
    if (pid == 0) {
        setsid();
        fd = open(n->log_file ? n->log_file : "/dev/null", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
        }
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0)
            dup2(nul, STDIN_FILENO);
        if (chdir(c->dir) < 0)
            _exit(127);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    free(cmd);
    if (n->pid_file) {
        FILE *f = fopen(n->pid_file, "w");
        if (!f) {
            snprintf(err, errlen, "pid_file %s: %s (node started as pid %d)", n->pid_file, strerror(errno), (int)pid);
            return -errno;
        }
        fprintf(f, "%d\n", (int)pid);
        fclose(f);
    }
    return 0;
}

int ctl_wait_live(struct ctl_node *n, int timeout_ms)
{
    int64_t deadline = time_mono_us() + (int64_t)timeout_ms * 1000;
    int rc;

    for (;;) {
        rc = ctl_probe(&n->url, "/health/live", 500, NULL);
        if (rc == 200)
            return 0;
        if (time_mono_us() >= deadline)
            return rc < 0 ? rc : -ETIMEDOUT;
        time_sleep_us(20000);
    }
}

int64_t ctl_known_primary_lsn(const struct ctl_status *t)
{
    const json_t *peer, *hb;

    if (!t->raw || !ctl_status_is_standby(t))
        return -1;
    /* a standby's peer.lag_records is the active's tip (from HELLO and
     * HEARTBEAT) minus its own: lsn + lag is the last position it heard of */
    peer = json_object_get(t->raw, "peer");
    hb = json_is_object(peer) ? json_object_get(peer, "last_heartbeat_ms_ago") : NULL;
    if (!json_is_integer(hb) && t->lag_records == 0)
        return -1;          /* never heard from an active node */
    return t->lsn + (t->lag_records > 0 ? t->lag_records : 0);
}
