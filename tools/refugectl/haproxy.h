/*
 * haproxy — the front door's runtime API (the "stats socket ... level admin"
 * unix socket), used to see and flip server states without waiting for
 * health checks (DESIGN.md §1).
 *
 * Commands used:
 *   show servers state BACKEND           op/admin state, check result per server
 *   set server BACKEND/SERVER state ready|maint|drain
 *   set server BACKEND/SERVER health up|down
 * Several commands may go in one request separated by ';' (HAProxy runs them
 * in order within one CLI session), which is how a server leaves MAINT and is
 * marked down in one step without a window where it would take traffic.
 */
#ifndef REFUGE_TOOLS_REFUGECTL_HAPROXY_H
#define REFUGE_TOOLS_REFUGECTL_HAPROXY_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

#define CTL_HAP_MAX_SERVERS 32

/* srv_admin_state bits (HAProxy include/haproxy/server-t.h) */
#define HAP_ADMIN_FMAINT 0x01
#define HAP_ADMIN_IMAINT 0x02
#define HAP_ADMIN_CMAINT 0x04
#define HAP_ADMIN_FDRAIN 0x08
#define HAP_ADMIN_IDRAIN 0x10
#define HAP_ADMIN_RMAINT 0x20
#define HAP_ADMIN_HMAINT 0x40
#define HAP_ADMIN_MAINT (HAP_ADMIN_FMAINT | HAP_ADMIN_IMAINT | HAP_ADMIN_CMAINT | HAP_ADMIN_RMAINT | HAP_ADMIN_HMAINT)
#define HAP_ADMIN_DRAIN (HAP_ADMIN_FDRAIN | HAP_ADMIN_IDRAIN)

/* srv_op_state */
enum hap_op { HAP_OP_STOPPED = 0, HAP_OP_STARTING = 1, HAP_OP_RUNNING = 2, HAP_OP_STOPPING = 3 };

struct ctl_hap_server {
    char name[128];
    char addr[128];
    int port;
    int op_state;            /* enum hap_op */
    int admin_state;         /* HAP_ADMIN_* bits */
    int check_result;        /* 0 unknown, 1 neutral, 2 failed, 3 passed, 4 condpass */
    int since_change_s;
};

/* Sends one command line (no trailing newline needed) and reads the reply
 * until HAProxy closes (at most 1 MiB) into out, which the call initialises
 * and the caller frees (buf_free) whatever it returns. 0, or a negative errno. */
int ctl_haproxy_cmd(const char *sock, const char *cmd, struct buf *out, int timeout_ms);

/* `show servers state BACKEND`. 0, -ENOENT (no such backend), or negative. */
int ctl_haproxy_servers(const char *sock, const char *backend, struct ctl_hap_server *out, size_t max,
                        size_t *n, char *err, size_t errlen);
const struct ctl_hap_server *ctl_haproxy_find(const struct ctl_hap_server *s, size_t n, const char *name);

/* Runs one or more ';'-separated `set server` commands. Any reply text is
 * HAProxy complaining: returned as -EINVAL with the text in err. */
int ctl_haproxy_set(const char *sock, const char *cmds, char *err, size_t errlen, int timeout_ms);

/* "UP", "DOWN", "MAINT", "DRAIN", "STARTING", "STOPPING" */
const char *ctl_haproxy_state_name(const struct ctl_hap_server *s);
bool ctl_haproxy_takes_traffic(const struct ctl_hap_server *s);

/* The command lines refugectl uses (written to out, at most outlen bytes):
 * route: leave MAINT/DRAIN and force health up (a freshly promoted node);
 * hold:  leave MAINT/DRAIN and force health down (a standby: in the pool for
 *        later, but no traffic until its checks pass);
 * fence: MAINT (no traffic whatever its checks say). */
void ctl_haproxy_cmd_route(char *out, size_t outlen, const char *backend, const char *server);
void ctl_haproxy_cmd_hold(char *out, size_t outlen, const char *backend, const char *server);
void ctl_haproxy_cmd_fence(char *out, size_t outlen, const char *backend, const char *server);

#endif
