/*
 * userstore — secondary user stores in LDAP directories (OpenLDAP, Active
 * Directory): users of a directory sign in as DOMAIN/username, where DOMAIN
 * is the userstore's name (userstores/DOMAIN.conf, an artifact: see
 * artifacts/artifacts.h for its keys and ${region.KEY}).
 *
 * Which tenant uses a userstore: every userstore belongs to exactly one
 * tenant, the file's `tenant` key (default `default`,
 * USERSTORE_TENANT_DEFAULT below). A name "corp/alice" is routed to the
 * directory only when the tenant has a userstore named "corp"; otherwise
 * it is an ordinary internal user name. The tenant need not exist when the
 * file is loaded: the store simply serves nobody until it does.
 *
 * Where the definitions come from: the `artifacts` table (the last good,
 * replicated version of each file), re-read at least once a second and
 * whenever a name asks for an unknown domain. Each region resolves
 * ${region.KEY} against its own [region] section, so after a failover the
 * promoted node talks to its own region's directory replica.
 *
 * Threads and failure: every userstore has its own pool of pool_size
 * threads, each owning one connection. Requests are queued to the pool
 * (bounded) and answered through a callback on the pool thread; nothing
 * talks to a directory on an HTTP worker, on the oauth worker pool (which
 * verifies internal passwords) or under a global lock, so a directory that
 * is down or slow only ever delays its own users. Every request has a
 * deadline of `timeout` from its submission: a queued request that reaches
 * it fails without being sent, and every network step (connect, TLS,
 * StartTLS, bind, search) gets only the time that is left. After a timeout
 * or an unreachable directory the store is marked down for a second, during
 * which requests fail at once ("unavailable") instead of queueing behind a
 * dead server; a probe (every USERSTORE_PROBE_MS) brings it back up.
 *
 * Authentication: search user_base with user_filter (the user name RFC 4515
 * escaped, never raw) as bind_dn; exactly one entry must match; then a
 * simple bind as that entry's DN with the password. Empty passwords are
 * refused before anything is sent (an LDAP simple bind with an empty
 * password is an unauthenticated bind that "succeeds").
 *
 * Writes: every LDAP userstore is read-only here (read_only = false is
 * accepted and logged as having no effect); SCIM answers writes to directory
 * users with USERSTORE_READ_ONLY_DETAIL.
 *
 * Identity: a directory user's id (the token `sub`) is
 * "ldap:STORE:" + entryUUID, or "ldap:STORE:u:" + the lowercased user name
 * when the directory has no entryUUID. Its user name is "STORE/username".
 *
 * Metrics: refuge_ldap_requests_total{store,result} (result: ok,
 * invalid_credentials, timeout, unavailable, busy, error),
 * refuge_ldap_request_seconds{store}, refuge_ldap_up{store}.
 */
#ifndef REFUGE_LDAP_USERSTORE_H
#define REFUGE_LDAP_USERSTORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/str.h"
#include "node/node.h"

#define USERSTORE_NAME_MAX 63            /* a userstore name is a lowercase DNS label */
#define USERSTORE_USERNAME_MAX 256       /* the part after DOMAIN/ */
#define USERSTORE_PASSWORD_MAX 1024
#define USERSTORE_ID_PREFIX "ldap:"
#define USERSTORE_TENANT_DEFAULT "default"
#define USERSTORE_LIST_MAX 1000          /* entries a SCIM list reads at most */
#define USERSTORE_VALUE_MAX 1024         /* bytes kept of one attribute value */
#define USERSTORE_GROUPS_MAX 256         /* groups kept per user */
#define USERSTORE_PROBE_MS 2000          /* health probe and contextCSN read interval */
#define USERSTORE_CSN_MAX 64             /* one contextCSN value */
#define USERSTORE_CSN_VALUES 8           /* contextCSN values kept (one per server id) */

/* ------------------------------------------------------- names and filters */

/*
 * Splits "DOMAIN/username" (n bytes, need not be NUL-terminated).
 *   1  qualified: domain (lowercased, NUL-terminated) and *user (pointing
 *      into s) are set; user is 1..USERSTORE_USERNAME_MAX bytes without
 *      control characters;
 *   0  not qualified (no '/', or the part before it is not a store name):
 *      an internal user name;
 *  -EINVAL  a store-shaped prefix with an empty, overlong or
 *      control-character user part.
 */
int userstore_split(const char *s, size_t n, char domain[USERSTORE_NAME_MAX + 1], struct str *user);

/* Appends v[0..n) as an RFC 4515 assertion value: '*', '(', ')', '\', NUL,
 * control bytes and every byte >= 0x7f become \XX. 0 or -E2BIG. */
int userstore_filter_escape(struct buf *out, const char *v, size_t n);

/*
 * The search filter for one user: every "%s" in tmpl is replaced by the
 * escaped value; a template without "%s" is combined as
 * "(&" tmpl "(" attr "=" value "))". With value == NULL the result selects
 * every user of the template ("%s" becomes "*", i.e. a presence test).
 * 0, -E2BIG (over out's limit) or -EINVAL (bad template).
 */
int userstore_filter_build(struct buf *out, const char *tmpl, const char *attr, const char *value,
                           size_t n);

/* True for ids of directory users ("ldap:..."). */
bool userstore_is_user_id(const char *id);
/* "ldap:STORE:KEY" -> store (NUL-terminated) and key (into id). 0 or -EINVAL. */
int userstore_id_parse(const char *id, char store[USERSTORE_NAME_MAX + 1], struct str *key);

/* ------------------------------------------------------------------ users */

/* A directory user, mapped. Strings are xmalloc'd; release with userstore_user_free. */
struct userstore_user {
    char *id;                 /* "ldap:corp:3abccb14-..." (the token sub) */
    char *user_name;          /* "corp/alice" */
    char *store;              /* "corp" */
    char *dn;
    char *name;               /* attr_name, or NULL */
    char *email;              /* attr_email, or NULL */
    json_t *groups;           /* array of group names (first RDN value of each DN) */
    json_t *scim;             /* the SCIM 2.0 User resource (RFC 7643 §4.1) */
};
void userstore_user_free(struct userstore_user *u);

/*
 * What a request ends with, handed to the callback on a pool thread. rc:
 *   0           success (user or list set)
 *   -EACCES     invalid credentials: no such user, ambiguous user name,
 *               wrong or empty password (one answer for all)
 *   -ENOENT     lookup/get: no such user (or no such store for the tenant)
 *   -ETIMEDOUT  the directory did not answer in time
 *   -ENETDOWN   the directory is unreachable (or marked down)
 *   -EAGAIN     the store's queue is full
 *   -ESHUTDOWN  the node is stopping or the store was reconfigured away
 *   -EIO        a protocol or server error
 * The callback may take ownership of user fields and of list (set them to
 * NULL); whatever is left is freed after it returns. detail is a short
 * text for logs and error descriptions (never names a password).
 */
struct userstore_reply {
    int rc;
    const char *store;
    struct userstore_user user;
    json_t *list;             /* SCIM ListResponse (list requests) */
    bool truncated;           /* list: the directory holds more than USERSTORE_LIST_MAX matches */
    char detail[200];
};
typedef void (*userstore_done_fn)(void *arg, struct userstore_reply *r);

/* ------------------------------------------------------------ the service */

/* Starts the registry of node n: reads the definitions and starts the
 * monitor thread (reload and probes). Call from app_start once the store is
 * open. Until then (and after userstore_stop) the entry points below answer
 * -ESHUTDOWN, userstore_routes says false and ldap_status_fill shows no
 * stores. Idempotent. 0. */
int userstore_start(struct node *n);
/* Stops the monitor and every pool and waits for their threads: queued
 * requests still run (each bounded by its store's timeout) and their
 * callbacks still resume HTTP requests, so call it before the HTTP server
 * stops and before the store closes. */
void userstore_stop(struct node *n);

/* Is "DOMAIN/user" addressed to a userstore of this tenant? No directory
 * traffic: the registry, and for an unknown DOMAIN at most one re-read of
 * the artifacts table per 200 ms. Cheap enough for an HTTP worker. */
bool userstore_routes(struct node *n, const char *tenant, const char *domain_user);

/*
 * Asynchronous requests: 0 when queued (done will be called exactly once,
 * on a pool thread), or a negative code when nothing was queued (done is
 * never called): -ENOENT (no such store for this tenant), -EINVAL (bad
 * name or id), -EAGAIN, -ENETDOWN (store marked down), -ESHUTDOWN.
 */
int userstore_authenticate_async(struct node *n, const char *tenant, const char *domain_user,
                                 const char *password, size_t plen, userstore_done_fn done,
                                 void *arg);
/* Re-reads a user by id (refresh grant, userinfo): -ENOENT when gone. */
int userstore_lookup_async(struct node *n, const char *tenant, const char *user_id,
                           userstore_done_fn done, void *arg);
/* SCIM: users of store `store` (a name), 1-based start, at most count;
 * user_name (a plain name in the store, or NULL) narrows to one user. The
 * reply's list is a ListResponse with totalResults, startIndex,
 * itemsPerPage and Resources. */
int userstore_scim_list_async(struct node *n, const char *tenant, const char *store,
                              const char *user_name, int64_t start, int64_t count,
                              userstore_done_fn done, void *arg);

/*
 * Synchronous forms for callers on their own worker threads: they block
 * the calling thread until the reply, at most the store's timeout plus a
 * second. Never call them on an HTTP worker. Return the reply's rc.
 */
int userstore_authenticate(struct node *n, const char *tenant, const char *domain_user,
                           const char *password, struct userstore_user *out);
int userstore_lookup(struct node *n, const char *tenant, const char *user_id,
                     struct userstore_user *out);
/* *out: the SCIM resource of user_id (new reference). */
int userstore_scim_get(struct node *n, const char *tenant, const char *user_id, json_t **out);
/* *out: the ListResponse (new reference). */
int userstore_scim_list(struct node *n, const char *tenant, const char *store,
                        const char *user_name, int64_t start, int64_t count, json_t **out);

/* The SCIM error for a write aimed at a directory user or store:
 * every LDAP userstore is read-only here. */
#define USERSTORE_READ_ONLY_DETAIL "users of an LDAP userstore are read-only: change them in the directory"

/* ------------------------------------------------------- status and DR */

/*
 * Adds "ldap" to a node status object:
 *   "ldap": {"stores": [{"name", "tenant", "url", "up", "last_error",
 *            "last_ok_at", "requests_total", "errors_total", "pool_size",
 *            "timeout_ms", "context_csn": [..], "csn_base", "csn_read_at"}],
 *            "errors": [{"path", "sha256", "error"}]}
 * url is the effective one (after ${region.KEY}); no secret is shown.
 * context_csn is this node's own directory's contextCSN (one value per
 * server id), read by the probe; compare it with the peer region's to see
 * the directory's replication state (ldap_csn_lag_ms).
 */
void ldap_status_fill(struct node *n, json_t *obj);

struct ldap_target {
    const char *url;           /* ldap:// or ldaps:// (space-separated list allowed) */
    int tls;                   /* enum artifact_ldap_tls: 0 none, 1 ldaps, 2 starttls */
    const char *ca_file;       /* NULL: system trust */
    const char *bind_dn;       /* NULL: anonymous */
    const char *bind_password;
    int64_t timeout_ms;
};

/*
 * Reads the contextCSN of the naming context that holds `base` (the base
 * entry itself or the nearest ancestor that has one) from the directory at
 * t. out receives the values, space-separated and sorted; 0, or
 * -ETIMEDOUT / -ENETDOWN / -EACCES / -ENOENT (no contextCSN: not a syncrepl
 * database) / -EIO with err filled.
 */
int ldap_context_csn(const struct ldap_target *t, const char *base, char *out, size_t outlen,
                     char *err, size_t errlen);

/*
 * Compares a provider's contextCSN values with a consumer's (each an array
 * of CSN strings "YYYYmmddHHMMSS.uuuuuuZ#cnt#sid#mod"). 0: in sync (the
 * consumer has every server id's CSN at least as new); 1: behind, with
 * *lag_ms the largest age difference over server ids (both times were
 * stamped by the provider's clocks, never by the consumer's); -ENOENT: the
 * consumer has no CSN for one of the provider's server ids; -EINVAL: a
 * malformed CSN.
 */
int ldap_csn_lag_ms(const char *const *provider, size_t np, const char *const *consumer, size_t nc,
                    int64_t *lag_ms);
/* One CSN's time (unix microseconds) and server id. 0 or -EINVAL. */
int ldap_csn_parse(const char *csn, size_t n, int64_t *time_us, int *sid);

/* ---------------------------------------------------- bind password sealing */

/* "sealed:" + base64url(crypto_seal(master key, aad "refuge userstore bind_password", pw)):
 * a bind_password value that is safe to keep in a replicated artifact. */
#define USERSTORE_SEALED_PREFIX "sealed:"
int userstore_seal_password(const unsigned char key[32], const char *pw, size_t n, char **out);
/* Opens a value made by userstore_seal_password; plain values are copied.
 * *out is xmalloc'd (wipe it). 0, -EINVAL or -EBADMSG. */
int userstore_open_password(const unsigned char key[32], const char *value, char **out);

#endif
