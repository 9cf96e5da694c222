/*
 * drill — the measured DR test (drill.c runs it), its client load
 * (drill_load.c) and its report (drill_report.c). Private to refugectl.
 *
 * Times are microseconds since the drill started (monotonic clock), so the
 * client's view, the phases and the controllers' steps share one axis.
 */
#ifndef REFUGE_TOOLS_REFUGECTL_DRILL_H
#define REFUGE_TOOLS_REFUGECTL_DRILL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "cluster.h"
#include "directory.h"
#include "dr.h"

#define DRILL_MAX_THREADS 16
#define DRILL_MAX_PHASES 16
#define DRILL_ID_MAX 72

enum drill_kind {
    DK_TOKEN,        /* client_credentials, opaque token: one INSERT */
    DK_USER,         /* SCIM user create */
    DK_CHAIN,        /* password grant: a new refresh-token family */
    DK_REFRESH,      /* refresh rotation: UPDATE + INSERT */
    DK_N
};

/* Verification outcome of an acknowledged write. */
enum drill_check { CHK_NONE, CHK_PRESENT, CHK_MISSING, CHK_UNVERIFIABLE };

struct drill_ev {
    int64_t t0, t1;          /* request sent, answer seen (us since drill start) */
    int32_t status;          /* HTTP status, or a negative transport code */
    uint8_t kind;            /* enum drill_kind */
    uint8_t check;           /* enum drill_check (acknowledged writes only) */
    uint8_t chain_end;       /* DK_CHAIN/DK_REFRESH: last write of its family the client holds cleanly */
    uint32_t chain;          /* DK_CHAIN/DK_REFRESH: family number (worker * 2^20 + n) */
    char id[DRILL_ID_MAX];   /* token, refresh token or user id of an acknowledged write */
};

struct drill_worker {
    pthread_t th;
    int idx;
    struct drill *d;
    struct drill_ev *ev;
    size_t n, cap;
    bool refresh_role;       /* this worker drives refresh-token chains */
    char rt[DRILL_ID_MAX];   /* current refresh token, "" = start a chain */
    size_t rt_ev;            /* index of the event that acked rt */
    uint32_t chain;          /* current family number */
    bool rt_unsure;          /* a rotation of rt failed: is rt still the family's tip? */
};

struct drill_phase {
    char name[32];
    int64_t t0, t1;
};

struct drill {
    struct ctl_cluster *c;
    const char *mode_req;    /* --mode, NULL: whatever the nodes run */
    char mode[16];
    int duration_s;
    int threads;
    int rate;                /* requests per second, all workers together */
    int64_t start_mono;

    /* load setup */
    char client_id[128];
    char client_secret[128];
    char user_name[96];      /* the refresh-chain user */
    char user_password[64];
    bool scim;
    bool refresh;
    char refresh_why[256];   /* why there are no refresh families */
    pthread_mutex_t token_mu;
    char admin_token[CTL_TOKEN_MAX];
    atomic_bool stop;
    struct drill_worker w[DRILL_MAX_THREADS];

    /* what happened */
    struct drill_phase ph[DRILL_MAX_PHASES];
    size_t n_ph;
    char first_active[CTL_NODE_NAME_MAX + 1];
    char second_active[CTL_NODE_NAME_MAX + 1];
    int64_t t_kill, t_promoted, t_routed, t_switch_stop, t_switch_routed;
    struct ctl_failover_result fo;
    struct ctl_rejoin_result rj;
    struct ctl_switchover_result so;
    pid_t killed_pid;

    /* measurements */
    int64_t rto_ms;              /* -1: no outage seen */
    int64_t t_first_fail, t_first_ok;
    int64_t switch_pause_ms;     /* longest gap between successful writes around the switchover */
    int64_t switch_fail_ms;      /* first failure to first success in the switchover window, 0 none */
    int64_t acked[DK_N], missing[DK_N], unverifiable[DK_N], requests, failures;
    int64_t lost, rpo_window_ms;
    bool data_equal;
    char digest[2][80];
    char data_detail[512];
    int64_t final_lsn[2];
    struct ctl_dir_state dirs[8];   /* LDAP directories, standby region against the active one */
    size_t ndirs;
    bool objectives_met;
    char verdict[512];
    int rc;
};

/* drill_load.c */
int drill_setup_load(struct drill *d, char *err, size_t errlen);
int drill_start_load(struct drill *d);
void drill_stop_load(struct drill *d);
int64_t drill_now(const struct drill *d);
/* Checks every acknowledged write on node n; fills ev[].check. */
int drill_verify(struct drill *d, struct ctl_node *n, char *err, size_t errlen);
/* Digest of the identity data node n serves (tenants, clients, users), hex. */
int drill_digest(struct drill *d, struct ctl_node *n, char *hex, size_t hexlen, char *detail, size_t detlen);
const char *drill_kind_name(int kind);

/* drill_report.c */
int drill_write_report(const struct drill *d, const char *dir, char *err, size_t errlen);

#endif
