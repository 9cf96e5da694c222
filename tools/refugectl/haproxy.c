/*
 * haproxy — runtime API client (see haproxy.h).
 *
 * The CLI socket speaks lines: we send "CMD\n", HAProxy answers and closes
 * the connection (non-interactive mode). `show servers state` answers with a
 * version line ("1"), a "# field names" line and one line per server:
 *
 *   be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state
 *   srv_uweight srv_iweight srv_time_since_last_change srv_check_status
 *   srv_check_result srv_check_health srv_check_state srv_agent_state
 *   bk_f_forced_id srv_f_forced_id srv_fqdn srv_port ...
 *
 * The field positions are taken from the names line, not assumed.
 */
#include "haproxy.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/str.h"
#include "core/timeutil.h"

#define HAP_MAX_REPLY (1024 * 1024)

static int wait_fd(int fd, short ev, int64_t deadline)
{
    struct pollfd p = { .fd = fd, .events = ev };
    for (;;) {
        int64_t left = deadline - time_mono_us();
        if (left <= 0)
            return -ETIMEDOUT;
        int n = poll(&p, 1, (int)((left + 999) / 1000));
        if (n > 0)
            return 0;
        if (n == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

int ctl_haproxy_cmd(const char *sock, const char *cmd, struct buf *out, int timeout_ms)
{
    int64_t deadline = time_mono_us() + (int64_t)timeout_ms * 1000;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    char tmp[8192];
    size_t clen = strlen(cmd);
    int fd, rc = 0;

    buf_init(out, HAP_MAX_REPLY);
    if (strlen(sock) >= sizeof sa.sun_path)
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, sock);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        if (errno != EINPROGRESS && errno != EAGAIN) {
            rc = -errno;
            goto out;
        }
        if ((rc = wait_fd(fd, POLLOUT, deadline)) < 0)
            goto out;
    }
    /* the command and its newline */
    for (size_t off = 0; off <= clen;) {
        const char *p = off < clen ? cmd + off : "\n";
        size_t n = off < clen ? clen - off : 1;
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            off += (size_t)w;
        } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            if ((rc = wait_fd(fd, POLLOUT, deadline)) < 0)
                goto out;
        } else {
            rc = w < 0 ? -errno : -EPIPE;
            goto out;
        }
    }
    for (;;) {
        ssize_t r = recv(fd, tmp, sizeof tmp, 0);
        if (r > 0) {
            if (buf_append(out, tmp, (size_t)r) < 0) {
                rc = -E2BIG;
                goto out;
            }
        } else if (r == 0) {
            break;
        } else if (errno == EAGAIN || errno == EINTR) {
            if ((rc = wait_fd(fd, POLLIN, deadline)) < 0)
                goto out;
        } else {
            rc = -errno;
            goto out;
        }
    }
out:
    close(fd);
    return rc;
}

/* Splits a line on spaces into at most max fields. */
static size_t split_fields(struct str line, struct str *f, size_t max)
{
    size_t n = 0;
    struct str head;

    while (line.len && n < max) {
        while (line.len && line.p[0] == ' ') {
            line.p++;
            line.len--;
        }
        if (!line.len)
            break;
        if (!str_split(line, ' ', &head, &line)) {
            head = line;
            line = STR_NULL;
        }
        f[n++] = head;
    }
    return n;
}

static int field_index(const struct str *names, size_t n, const char *want)
{
    for (size_t i = 0; i < n; i++)
        if (str_eq_cstr(names[i], want))
            return (int)i;
    return -1;
}

static int field_int(const struct str *f, size_t n, int idx)
{
    int64_t v = 0;
    if (idx < 0 || (size_t)idx >= n || str_to_i64(f[idx], -1, 1 << 30, &v) < 0)
        return -1;
    return (int)v;
}

static void field_copy(const struct str *f, size_t n, int idx, char *out, size_t outlen)
{
    out[0] = '\0';
    if (idx >= 0 && (size_t)idx < n)
        snprintf(out, outlen, "%.*s", STR_FMT(f[idx]));
}

int ctl_haproxy_servers(const char *sock, const char *backend, struct ctl_hap_server *out, size_t max,
                        size_t *n, char *err, size_t errlen)
{
    struct str names[64], f[64], rest, line;
    size_t nn = 0, nf;
    struct buf reply;
    char cmd[256];
    int rc, i_be, i_name, i_addr, i_op, i_admin, i_res, i_port, i_since;

    *n = 0;
    snprintf(cmd, sizeof cmd, "show servers state %s", backend);
    rc = ctl_haproxy_cmd(sock, cmd, &reply, 2000);
    if (rc < 0) {
        snprintf(err, errlen, "haproxy socket %s: %s", sock, strerror(-rc));
        goto out;
    }
    rest = buf_str(&reply);
    while (rest.len) {
        if (!str_split(rest, '\n', &line, &rest)) {
            line = rest;
            rest = STR_NULL;
        }
        line = str_trim(line);
        if (!line.len || str_eq_cstr(line, "1"))
            continue;
        if (line.p[0] == '#') {
            line.p++;
            line.len--;
            nn = split_fields(line, names, 64);
            continue;
        }
        if (!nn) {
            /* HAProxy explains itself: "Can't find backend." */
            snprintf(err, errlen, "haproxy: %.*s (backend %s)", STR_FMT(line), backend);
            rc = -ENOENT;
            goto out;
        }
        nf = split_fields(line, f, 64);
        i_be = field_index(names, nn, "be_name");
        i_name = field_index(names, nn, "srv_name");
        i_addr = field_index(names, nn, "srv_addr");
        i_op = field_index(names, nn, "srv_op_state");
        i_admin = field_index(names, nn, "srv_admin_state");
        i_res = field_index(names, nn, "srv_check_result");
        i_port = field_index(names, nn, "srv_port");
        i_since = field_index(names, nn, "srv_time_since_last_change");
        if (i_be < 0 || i_name < 0 || i_op < 0 || i_admin < 0 || (size_t)i_admin >= nf) {
            snprintf(err, errlen, "haproxy: unexpected 'show servers state' format");
            rc = -EPROTO;
            goto out;
        }
        if (!str_eq_cstr(f[i_be], backend) || *n == max)
            continue;
        struct ctl_hap_server *s = &out[(*n)++];
        memset(s, 0, sizeof *s);
        field_copy(f, nf, i_name, s->name, sizeof s->name);
        field_copy(f, nf, i_addr, s->addr, sizeof s->addr);
        s->op_state = field_int(f, nf, i_op);
        s->admin_state = field_int(f, nf, i_admin);
        s->check_result = field_int(f, nf, i_res);
        s->port = field_int(f, nf, i_port);
        s->since_change_s = field_int(f, nf, i_since);
    }
    if (!nn) {
        snprintf(err, errlen, "haproxy: empty answer to 'show servers state %s'", backend);
        rc = -EPROTO;
        goto out;
    }
    rc = 0;
out:
    buf_free(&reply);
    return rc;
}

const struct ctl_hap_server *ctl_haproxy_find(const struct ctl_hap_server *s, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s[i].name, name) == 0)
            return &s[i];
    return NULL;
}

int ctl_haproxy_set(const char *sock, const char *cmds, char *err, size_t errlen, int timeout_ms)
{
    struct buf reply;
    int rc = ctl_haproxy_cmd(sock, cmds, &reply, timeout_ms);

    if (rc < 0) {
        snprintf(err, errlen, "haproxy socket %s: %s", sock, strerror(-rc));
        goto out;
    }
    struct str t = str_trim(buf_str(&reply));
    if (t.len) {
        /* success is an empty line per command; anything else is a complaint */
        snprintf(err, errlen, "haproxy: %.*s", (int)(t.len > 300 ? 300 : t.len), t.p);
        for (char *p = err; *p; p++)
            if (*p == '\n')
                *p = ' ';
        rc = -EINVAL;
    }
out:
    buf_free(&reply);
    return rc;
}

const char *ctl_haproxy_state_name(const struct ctl_hap_server *s)
{
    if (s->admin_state & HAP_ADMIN_MAINT)
        return "MAINT";
    if (s->admin_state & HAP_ADMIN_DRAIN)
        return "DRAIN";
    switch (s->op_state) {
    case HAP_OP_RUNNING:
        return "UP";
    case HAP_OP_STARTING:
        return "STARTING";
    case HAP_OP_STOPPING:
        return "STOPPING";
    default:
        return "DOWN";
    }
}

bool ctl_haproxy_takes_traffic(const struct ctl_hap_server *s)
{
    return !(s->admin_state & (HAP_ADMIN_MAINT | HAP_ADMIN_DRAIN)) && s->op_state == HAP_OP_RUNNING;
}

void ctl_haproxy_cmd_route(char *out, size_t outlen, const char *backend, const char *server)
{
    snprintf(out, outlen, "set server %s/%s state ready; set server %s/%s health up", backend, server, backend,
             server);
}

void ctl_haproxy_cmd_hold(char *out, size_t outlen, const char *backend, const char *server)
{
    snprintf(out, outlen, "set server %s/%s state ready; set server %s/%s health down", backend, server, backend,
             server);
}

void ctl_haproxy_cmd_fence(char *out, size_t outlen, const char *backend, const char *server)
{
    snprintf(out, outlen, "set server %s/%s state maint", backend, server);
}
