/*
 * artifacts — operator-edited configuration files (tenants/NAME.conf,
 * userstores/NAME.conf under [artifacts] dir) that travel inside the
 * replication stream, so the standby is at one point in time for data and
 * files alike (DESIGN.md §1, §4).
 *
 * Two modes, chosen by the node's role and switched at run time:
 *
 *   importer (active)      inotify + a full scan at start and every 10 s:
 *                          a file whose sha256 differs from its `artifacts`
 *                          row is validated, then ONE write job upserts the
 *                          row (version + 1) and applies its effect (the
 *                          tenant row). An invalid file is rejected (log
 *                          line file:line:key, metric, admin status); the
 *                          last good version stays in force.
 *   materializer (standby) after each replication apply (artifacts_applied)
 *                          and every second: every row is written to the
 *                          directory atomically (temp, fsync, rename, fsync
 *                          dir); files without a row are removed; local
 *                          edits are logged and counted as drift, and
 *                          overwritten.
 *
 * ${region.KEY} in an artifact is resolved from the node's own [region]
 * section: the stored, replicated bytes stay identical in both regions while
 * the effective values are each region's own.
 */
#ifndef REFUGE_ARTIFACTS_H
#define REFUGE_ARTIFACTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/config.h"
#include "http/http.h"
#include "node/node.h"

/* ------------------------------------------------------------- names */

enum artifact_kind {
    ARTIFACT_NONE = 0,          /* not an artifact: ignored */
    ARTIFACT_TENANT = 1,        /* tenants/NAME.conf */
    ARTIFACT_USERSTORE = 2,     /* userstores/NAME.conf */
};

#define ARTIFACT_MAX_BYTES (1024 * 1024)   /* the config loader's file limit */
#define ARTIFACT_NAME_MAX 63               /* tenant name rules */
#define ARTIFACT_PATH_MAX 96               /* "userstores/" + 63 + ".conf" + NUL fits */
#define ARTIFACT_SHA_HEX 65                /* 64 hex digits + NUL */

/* Classifies a file name inside tenants/ or userstores/:
 *   1  an artifact: NAME.conf with NAME a lowercase DNS label (copied to name);
 *   0  not ours, ignored: no .conf suffix, hidden or editor files (".x",
 *      ".#x", "x~", "x.swp", "4913"...);
 *  -1  looks like an artifact (ends in .conf) but NAME breaks the rules. */
int artifact_fname_class(const char *fname, char name[ARTIFACT_NAME_MAX + 1]);
/* "tenants/acme.conf" -> ARTIFACT_TENANT and "acme". ARTIFACT_NONE for
 * anything else (also paths with "..", extra slashes, bad names): this is
 * what makes replicated paths safe to write under the directory. */
enum artifact_kind artifact_path_parse(const char *path, char name[ARTIFACT_NAME_MAX + 1]);
const char *artifact_kind_dir(enum artifact_kind k);   /* "tenants", "userstores" */

/* SHA-256 of p[0..n) as 64 lowercase hex digits + NUL. */
void artifact_sha256_hex(const void *p, size_t n, char out[ARTIFACT_SHA_HEX]);

/* ----------------------------------------------------------- schemas */

/*
 * tenants/NAME.conf
 *   [tenant]   display_name (required)
 *   [tokens]   access_token_ttl, refresh_token_ttl, id_token_ttl, code_ttl,
 *              session_ttl (durations with a unit, whole seconds: "1h",
 *              "900s"), grant_types (comma list of client_credentials,
 *              password, refresh_token, authorization_code)
 *   [password] min_length, require_upper, require_lower, require_digit, require_symbol
 *   [lockout]  max_failures, duration
 *   [branding] title, primary_color (#rrggbb), logo_url, footer_text
 */
struct artifact_tenant {
    char *display_name;
    /* The tenant settings the file sets, in the tenants.settings JSON form
     * (identity/tenant.h), only keys present in the file. New reference. */
    json_t *settings;
    /* [branding] (NULL when absent): not part of the tenant settings
     * document; kept here for the login page. */
    char *title, *primary_color, *logo_url, *footer_text;
    bool uses_region;           /* the file references ${region.KEY} */
};

/*
 * userstores/NAME.conf (consumed by the LDAP userstore; validated here)
 *   [userstore] type = ldap (required), url (ldap:// or ldaps://, required),
 *               bind_dn, bind_password | bind_password_file, user_base
 *               (required), user_filter, attr_username, attr_email,
 *               attr_name, attr_groups, tls (none|ldaps|starttls; default
 *               from the url scheme), ca_file, timeout, pool_size, read_only,
 *               tenant (the tenant whose users sign in through it; a tenant
 *               name, default "default")
 */
enum artifact_ldap_tls { ARTIFACT_TLS_NONE = 0, ARTIFACT_TLS_LDAPS = 1, ARTIFACT_TLS_STARTTLS = 2 };

struct artifact_userstore {
    int type;                   /* 0: ldap */
    char *url;
    char *bind_dn;
    char *bind_password;
    char *bind_password_file;
    char *user_base;
    char *user_filter;
    char *attr_username, *attr_email, *attr_name, *attr_groups;
    int tls;                    /* enum artifact_ldap_tls (effective) */
    char *ca_file;
    int64_t timeout_ms;
    int64_t pool_size;
    bool read_only;
    char *tenant;               /* a valid tenant name */
    bool uses_region;
};

/* Parse and validate one artifact (path is its relative path, used in
 * errors: "tenants/acme.conf:7: tokens.code_ttl: ..."). region: the node's
 * [region] keys (may be NULL: every reference is then unresolved).
 * 0, or -1 with err filled. Release the output either way. */
int artifact_tenant_parse(const char *path, const char *text, size_t len,
                          const struct cfg_kvlist *region, struct artifact_tenant *out,
                          struct cfg_error *err);
void artifact_tenant_free(struct artifact_tenant *t);
int artifact_userstore_parse(const char *path, const char *text, size_t len,
                             const struct cfg_kvlist *region, struct artifact_userstore *out,
                             struct cfg_error *err);
void artifact_userstore_free(struct artifact_userstore *u);
/* Validates by the path's kind. 0 or -1 with err (also for a bad path). */
int artifact_validate(const char *path, const char *text, size_t len,
                      const struct cfg_kvlist *region, struct cfg_error *err);

/* Replaces every ${region.KEY} in text with the value of KEY in region.
 * Comment lines are copied untouched. Any other "${" in a value, an unknown
 * KEY or a result over ARTIFACT_MAX_BYTES is an error naming the line and the
 * section.key it is on. On success *out is xmalloc'd (NUL-terminated, *outlen
 * bytes) and *used tells whether any reference was replaced. 0 or -1. */
int artifact_region_resolve(const char *path, const char *text, size_t len,
                            const struct cfg_kvlist *region, char **out, size_t *outlen,
                            bool *used, struct cfg_error *err);

/* --------------------------------------------------------- the service */

/* Starts the watcher thread for n (role decides the mode, re-read at least
 * once a second and on artifacts_role_changed). Creates [artifacts] dir,
 * tenants/ and userstores/ when missing. Call after the store and node state
 * are ready, before HTTP; the first scan runs on the thread. 0 or -errno. */
int artifacts_start(struct node *n);
/* Stops and joins the thread; safe when not started. Call before the store closes. */
void artifacts_stop(struct node *n);
/* The role changed (promote/demote): switch mode now. Any thread. */
void artifacts_role_changed(struct node *n);
/* A replication apply committed (standby): materialize now. Any thread, cheap. */
void artifacts_applied(struct node *n);

/* GET /admin/v1/artifacts (root; operator token with refuge:admin):
 * {"artifacts":[{"path","kind","sha256","version","status":"ok"|"rejected",
 *   "last_error","updated_at", "file_sha256"?}], "mode","drift_total","errors_total"} */
size_t artifacts_routes(struct node *n, struct http_route *out, size_t max);
/* Adds "artifacts": {"mode","count","rejected","drift_total","errors_total",
 * "imported_total","materialized_total"} to a node status object. */
void artifacts_status_fill(struct node *n, json_t *obj);

#endif
