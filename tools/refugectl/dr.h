/*
 * dr — the disaster-recovery controllers of refugectl and the small actions
 * they share. Each controller is an explicit state machine (failover.c,
 * switchover.c, rejoin.c) that observes (view.h), then acts; every action
 * is idempotent, so a run interrupted at any point can simply be run again.
 * The drill (drill.c) calls the same machines in-process.
 */
#ifndef REFUGE_TOOLS_REFUGECTL_DR_H
#define REFUGE_TOOLS_REFUGECTL_DR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cluster.h"
#include "view.h"

/* ------------------------------------------------------------ failover */
struct ctl_failover_opts {
    const char *target;
    bool force;                /* accept a known data loss / missing front-door control */
};

struct ctl_failover_result {
    int rc;                    /* CTL_OK, CTL_REFUSED, CTL_FAIL */
    char reason[512];          /* why not CTL_OK */
    char old_active[CTL_NODE_NAME_MAX + 1];   /* "" when none was identified */
    bool already_done;         /* the target was already the promoted active */
    int64_t target_lsn;        /* target's applied position when promoted */
    int64_t old_lsn;           /* last known position of the old active (-1 unknown) */
    int64_t lost_records;      /* old_lsn - target_lsn when both known, else -1 */
    int64_t lost_window_ms;    /* age span of those records when known, else -1 */
    int64_t epoch;             /* the target's epoch after promotion */
    int64_t promoted_ms;       /* since ctl_out_begin (the command's or the drill's start) */
    int64_t routed_ms;
    int64_t total_ms;          /* this failover's own duration */
};

int ctl_failover(struct ctl_cluster *c, const struct ctl_failover_opts *o, struct ctl_failover_result *r);

/* ---------------------------------------------------------- switchover */
struct ctl_switchover_result {
    int rc;
    char reason[512];
    char old_active[CTL_NODE_NAME_MAX + 1];
    bool already_done;
    int64_t final_lsn;         /* the old active's last position = the target's first */
    int64_t epoch;
    int64_t write_stop_ms;     /* front door held the old active (client writes stop) */
    int64_t routed_ms;         /* front door switched */
    int64_t pause_ms;          /* routed_ms - write_stop_ms: the write unavailability we caused */
    int64_t total_ms;
};

int ctl_switchover(struct ctl_cluster *c, const char *target, struct ctl_switchover_result *r);

/* -------------------------------------------------------------- rejoin */
struct ctl_rejoin_result {
    int rc;
    char reason[512];
    bool started;              /* rejoin ran start_command */
    bool demoted;              /* rejoin demoted a stale active */
    char divergent_file[1024]; /* newest DATA_DIR/divergent/ file, "" when none */
    int64_t divergent_count;   /* transactions listed in it, -1 unknown */
    int64_t total_ms;
};

int ctl_rejoin(struct ctl_cluster *c, const char *name, struct ctl_rejoin_result *r);

/* ------------------------------------------------------ shared actions */

/* Polls n's status until its lsn >= lsn (and, if want_role, that role), or
 * the timeout. 0, -ETIMEDOUT (last holds the last status read), or negative. */
int ctl_wait_position(struct ctl_cluster *c, struct ctl_node *n, int64_t lsn, const char *want_role,
                      int timeout_ms, struct ctl_status *last);

/* Waits until `follower` applied what `leader` committed and the leader's
 * position stood still between two reads (nothing more in flight). *lsn gets
 * that position. 0, -ETIMEDOUT, or negative. */
int ctl_wait_drained(struct ctl_cluster *c, struct ctl_node *leader, struct ctl_node *follower, int timeout_ms,
                     int64_t *lsn);

/* Polls the front door's /health/ready until it answers 200 from `region`. */
int ctl_wait_front(struct ctl_cluster *c, const char *region, int timeout_ms);

enum ctl_route { CTL_ROUTE_ON, CTL_ROUTE_HOLD, CTL_ROUTE_FENCE };
/* Puts n's HAProxy server into the given state; logs the step under `state`.
 * `known` (may be NULL) is the server's current record: an action already in
 * effect is logged as such and not repeated. */
int ctl_route(struct ctl_cluster *c, struct ctl_node *n, enum ctl_route how, const struct ctl_hap_server *known,
              const char *state, char *err, size_t errlen);

/* POST /admin/v1/node/{promote,demote} with an optional JSON body (borrowed).
 * 0 on 2xx; -EALREADY when the node says it is already in that role;
 * negative with err otherwise. */
int ctl_node_role(struct ctl_cluster *c, struct ctl_node *n, const char *action, json_t *body, int timeout_ms,
                  char *err, size_t errlen);

/* The pid in n's pid_file, if that process is alive; else 0. */
pid_t ctl_node_pid(const struct ctl_node *n);
/* Runs n's start_command detached (own session, output to log_file) and
 * records its pid in pid_file. 0 or negative with err. */
int ctl_node_start(struct ctl_cluster *c, struct ctl_node *n, char *err, size_t errlen);
/* Waits for n's /health/live. */
int ctl_wait_live(struct ctl_node *n, int timeout_ms);

/* The old active's last position as a standby target heard of it from
 * replication (HELLO, HEARTBEAT), -1 when it never heard of one. */
int64_t ctl_known_primary_lsn(const struct ctl_status *target);

#endif
