/*
 * internal — the replication manager's state, shared by repl.c (manager,
 * hooks, roles, housekeeping), sender.c (the active side of a connection),
 * receiver.c (the standby side), status.c and routes.c. Not for use outside
 * src/repl.
 *
 * Locking: r->mu guards every field marked (mu); r->role_mu serializes role
 * changes (promote, demote, fencing) so two never interleave. Never take
 * role_mu while holding mu. Held write completions are finished outside mu
 * (their done callbacks may do anything).
 */
#ifndef REFUGE_REPL_INTERNAL_H
#define REFUGE_REPL_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/metrics.h"
#include "node/node.h"
#include "repl/capture.h"
#include "repl/conn.h"
#include "repl/frame.h"
#include "repl/log.h"
#include "repl/repl.h"

#define REPL_HEARTBEAT_MS 100         /* active -> standby when idle */
#define REPL_DEAD_MS 5000             /* nothing received for this long: the link is dead */
#define REPL_DRAIN_STALL_MS 1000      /* demotion: stop waiting for a standby that sent no ACK this long */
#define REPL_HELLO_TIMEOUT_MS 5000
#define REPL_IO_TIMEOUT_MS 10000
#define REPL_BACKOFF_MIN_MS 100
#define REPL_BACKOFF_MAX_MS 5000
#define REPL_PROBE_MS 2000            /* active: look for a peer with a higher epoch */
#define REPL_BATCH_RECORDS 1000       /* records read per RECORDS frame, at most */
#define REPL_RING 8192                /* recent records' commit times, by lsn */
#define REPL_MAX_SESSIONS 4           /* accepted connections at once */
#define REPL_PRUNE_BATCH 2000

/* A standby's progress towards the active (receiver.c sets it). */
enum repl_sync {
    REPL_SYNC_DISCONNECTED = 0,       /* no session with the active */
    REPL_SYNC_SNAPSHOT,               /* receiving and installing a snapshot */
    REPL_SYNC_REWINDING,              /* holds records after the common position: not yet rewound */
    REPL_SYNC_CATCHING_UP,            /* applying; not yet at the active's position of the session start */
    REPL_SYNC_STREAMING,              /* reached it: following live */
};

const char *repl_sync_name(enum repl_sync s);

struct repl_waiter {
    uint64_t lsn;                     /* the batch's record */
    int64_t deadline_us;              /* monotonic */
    struct store_completion *c;
    struct repl_waiter *next;
};

/* An accepted connection (sender.c), one thread each. */
struct repl_session {
    struct repl *r;
    struct repl_conn *conn;
    pthread_t thr;
    atomic_bool done;                 /* the thread finished: join it */
    struct repl_session *next;        /* (mu) */
};

struct repl {
    struct node *n;
    struct refuge_conf *conf;
    struct repl_capture *cap;
    struct repl_tls *tls;             /* NULL: plaintext (insecure_plaintext) */
    struct repl_listener *lis;
    char *db_path;
    char *data_dir;
    bool has_peer;                    /* [replication] peer set */
    int wake_fd;                      /* eventfd: a record was captured, or a role changed */
    int64_t retain_ms, retain_bytes;
    int corrupt_frame, corrupt_record; /* test hooks (REFUGE_TEST_CORRUPT_*) */
    int apply_delay_ms;               /* test hook: REFUGE_TEST_APPLY_DELAY_MS, per apply on a standby */

    atomic_bool stopping;
    atomic_bool armed;
    atomic_bool demoting;             /* a demotion is under way: tx_admit refuses */
    pthread_mutex_t role_mu;
    pthread_mutex_t mu;
    pthread_cond_t cv;                /* (mu) lag, connection, ack, receiver changes */

    pthread_t listen_thr, house_thr, recv_thr;
    bool listen_started, house_started;
    bool recv_started;                /* (role_mu) */
    atomic_bool recv_stop;
    struct repl_conn *recv_conn;      /* (mu) the receiver's live connection */
    struct repl_session *sessions;    /* (mu) */

    /* the log (mu) */
    uint64_t tip_lsn, tip_epoch;
    int64_t tip_commit_us;
    int64_t log_bytes;                /* changeset bytes in repl_log (kept exactly) */
    struct {
        uint64_t lsn;
        int64_t us;
    } ring[REPL_RING];

    /* active side (mu) */
    struct repl_session *sender;      /* the session streaming to a standby */
    bool peer_connected;
    char peer_name[REPL_NODE_NAME_MAX + 1];
    uint64_t acked_written, acked_applied;
    uint64_t acked_persisted;
    int64_t oldest_unacked_us;        /* commit time of acked_written + 1, monotonic domain; 0: none */
    int64_t last_ack_latency_us;
    struct repl_waiter *w_head, *w_tail;
    size_t nwaiters;
    char pause_reason[200];
    /* demotion drain (mu): > 0 while the demoted node's sender keeps
     * streaming until the standby acknowledged this, its final lsn */
    uint64_t drain_lsn;
    int64_t last_ack_mono;            /* monotonic: the standby's last ACK (or attach) */

    /* standalone (active side): promoted by a failover that allowed it, no
     * standby has caught up since; writes are acknowledged at local commit
     * whatever the mode (repl.c, "Standalone"). The flag is read without mu
     * on the writer thread; the rest is (mu). */
    atomic_bool standalone;
    uint64_t standalone_target;       /* > 0: leave once the standby acknowledged this lsn */
    int64_t standalone_since_us;      /* wall clock */
    int64_t standalone_warned_us;     /* monotonic: the last reminder in the log */
    bool standalone_persisted;        /* repl_state standalone_epoch is set (house thread clears it) */
    char standalone_reason[240];

    /* standby side (mu) */
    enum repl_sync sync;              /* where the receiver is (status sync_state) */
    uint64_t common_lsn;              /* the last common position of this session */
    char active_name[REPL_NODE_NAME_MAX + 1];
    char active_region[REPL_NODE_NAME_MAX + 1];  /* from its HELLO, for the standby's 503 */
    uint64_t active_lsn;              /* the active's tip, from HELLO and HEARTBEAT */
    int64_t last_heartbeat_mono;
    bool diverged;
    char diverged_reason[300];
    char last_error[300];
    uint64_t reconnects;
    uint64_t applied_total;           /* records applied since start */
    uint64_t rate_prev;
    int64_t rate_at;
    double apply_rate;                /* records/s over the last second */

    struct metric *m_reconnects, *m_applied, *m_ack_latency;
};

/* repl.c */
struct repl *repl_of(struct node *n);
/* Fills a HELLO for this node from db (this thread's reader). */
int repl_hello_build(struct repl *r, struct db *db, uint32_t flags, struct repl_hello *h);
/* This node's cluster id (copy, under mu). */
void repl_cluster_id(struct repl *r, char out[UUID_STRLEN + 1]);
void repl_set_cluster_id(struct repl *r, const char *id);
/* The peer (standby) acknowledged: releases held writes, updates lag. */
void repl_on_ack(struct repl *r, struct db *db, const struct repl_ack *ack);
/* A standby attached / detached (sender.c). */
void repl_sender_attached(struct repl *r, struct repl_session *s, const char *name, uint64_t pos);
void repl_sender_detached(struct repl *r, struct repl_session *s);
/* The sender has sent everything up to sent, the tip when it looked
 * (standalone: the standby's acknowledgement of it ends standalone). */
void repl_sender_caught_up(struct repl *r, struct repl_session *s, uint64_t sent);
/* Fencing: a peer runs a higher epoch. Demotes this node if it is active. */
void repl_fence(struct repl *r, uint64_t peer_epoch, const char *peer);
/* The standby saw a higher epoch: remember it (persisted). */
void repl_adopt_epoch(struct repl *r, uint64_t epoch);
void repl_set_diverged(struct repl *r, const char *why);
/* After the log changed under capture (apply, rewind, snapshot): reload
 * the cached tip and log size from db. */
void repl_reload_tip(struct repl *r, struct db *db);
/* Receiver: the session's sync state; CATCHING_UP becomes STREAMING by
 * itself once the tip reaches active_lsn (repl_sync_progress). */
void repl_set_sync(struct repl *r, enum repl_sync s, uint64_t common);
void repl_sync_progress(struct repl *r);
/* Counts applied records (receiver). */
void repl_count_applied(struct repl *r, uint64_t n, int64_t bytes, const struct repl_tip *tip);
/* True while this node should keep its current loop running. */
bool repl_running(struct repl *r);

/* sender.c: serves one accepted connection (thread body). */
void *repl_session_main(void *arg);
/* Asks the peer at [replication] peer for its HELLO (fencing probe). */
void repl_probe_peer(struct repl *r, int timeout_ms);

/* receiver.c: the standby's thread body. */
void *repl_receiver_main(void *arg);

/* Connection helpers shared by both sides. */
int repl_send_hello(struct repl_conn *c, const struct repl_hello *h);
int repl_send_error(struct repl_conn *c, uint32_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
