/*
 * userstore_internal — what registry.c (definitions, pools, status) and
 * users.c (the directory operations and the mapping of entries to users)
 * share.
 *
 * Life of a struct ustore: made from one `artifacts` row (path, sha256) by
 * a registry scan, with pool_size worker threads started at once. The
 * registry's array holds one reference, each worker thread one, each queued
 * job one, and anybody reading it briefly one more. When its row changes or
 * goes away the scan retires it: out of the array, `stopping` set; its
 * workers finish the queued jobs (each bounded by its deadline) and exit;
 * the last reference frees it. Nothing is ever waited for under the
 * registry lock.
 */
#ifndef REFUGE_LDAP_USERSTORE_INTERNAL_H
#define REFUGE_LDAP_USERSTORE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "artifacts/artifacts.h"
#include "ldap/conn.h"
#include "ldap/userstore.h"

#define USTORE_DOWN_HOLD_US 1000000      /* fail fast this long after a directory failure */
#define USTORE_QUEUE_PER_THREAD 16       /* queued requests per pool thread before -EAGAIN */
#define USTORE_ERROR_MAX 256

struct registry;

struct ustore {
    atomic_int refs;
    struct registry *reg;
    char name[USERSTORE_NAME_MAX + 1];
    char path[ARTIFACT_PATH_MAX];
    char sha[ARTIFACT_SHA_HEX];
    char tenant[USERSTORE_NAME_MAX + 1];
    struct artifact_userstore cfg;       /* after ${region.KEY} */
    char *bind_password;                 /* opened; NULL when anonymous; wiped on free */
    struct ldap_target target;           /* points into cfg */

    /* the pool: jobs and the workers' life (mu) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct ujob *head, **tail;
    size_t queued, queue_max;
    int nthreads;
    bool stopping;
    bool probe_pending;

    /* health, under mu */
    bool up;                             /* the last attempt reached the directory */
    bool checked;                        /* there was an attempt at all */
    int64_t down_until_us;               /* monotonic; requests fail fast before it */
    char last_error[USTORE_ERROR_MAX];
    int64_t last_ok_wall_us;
    char csn[USERSTORE_CSN_VALUES * USERSTORE_CSN_MAX];
    char csn_base[256];
    int64_t csn_read_wall_us;
    uint64_t requests_total, errors_total;
};

enum ujob_kind { UJOB_AUTH, UJOB_LOOKUP, UJOB_LIST, UJOB_PROBE };

struct ujob {
    struct ujob *next;
    enum ujob_kind kind;
    struct ustore *st;                   /* a reference */
    int64_t submitted_us, deadline_us;   /* monotonic */
    char *user;                          /* AUTH: name in the store; LOOKUP: id key; LIST: name or NULL */
    char *password;                      /* AUTH only; wiped on free */
    size_t plen;
    int64_t start, count;                /* LIST */
    userstore_done_fn done;
    void *arg;
};

void ustore_ref(struct ustore *st);
void ustore_release(struct ustore *st);

/* users.c: runs one job on a worker's connection and fills r (rc, user or
 * list, detail). *reached tells whether the directory answered at all. */
void users_run(struct ustore *st, struct ldapconn *c, struct ujob *j, struct userstore_reply *r,
               bool *reached);

/* users.c: maps one search entry; 0, or -EINVAL when it cannot be a user
 * (no user name, unusable values). */
int users_map_entry(const struct ustore *st, LDAP *ld, LDAPMessage *e, struct userstore_user *u);

#endif
