/*
 * users — what a userstore request does in the directory, on one pool
 * thread's connection: authenticate (search as the service DN, then bind as
 * the user), look a user up by id, list users for SCIM, probe (health and
 * contextCSN); and how a directory entry becomes a user: id, user name,
 * name, e-mail, groups and the SCIM resource.
 *
 * Everything read from the directory is bounded (USERSTORE_VALUE_MAX bytes
 * per value, USERSTORE_GROUPS_MAX groups, USERSTORE_LIST_MAX entries, the
 * connection's LDAPCONN_MAX_INCOMING per message) and must be UTF-8 to be
 * used: a value jansson would refuse is dropped, an entry without a usable
 * user name is no user.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/xmalloc.h"
#include "crypto/secret.h"
#include "ldap/userstore_internal.h"

#define FILTER_MAX 4096

/* ------------------------------------------------------------------------ */
/* Entry -> user                                                            */
/* ------------------------------------------------------------------------ */

/* The first usable value of attr: UTF-8, no control characters, bounded. xmalloc'd or NULL. */
static char *first_value(LDAP *ld, LDAPMessage *e, const char *attr)
{
    struct berval **vals = ldap_get_values_len(ld, e, attr);
    char *out = NULL;

    for (size_t i = 0; vals && vals[i] && !out; i++) {
        struct berval *v = vals[i];
        json_t *j;
        bool ok = v->bv_len > 0 && v->bv_len <= USERSTORE_VALUE_MAX;

        for (size_t k = 0; ok && k < v->bv_len; k++)
            if ((unsigned char)v->bv_val[k] < 0x20 || v->bv_val[k] == 0x7f)
                ok = false;
        if (!ok || !(j = json_stringn(v->bv_val, v->bv_len)))
            continue;
        json_decref(j);
        out = xstrndup(v->bv_val, v->bv_len);
    }
    ldap_value_free_len(vals);
    return out;
}

/* A group value: the first RDN's value when it is a DN ("cn=admins,ou=groups,..." -> "admins"), else the value. */
static json_t *group_name(const struct berval *v)
{
    LDAPDN dn = NULL;
    json_t *out = NULL;

    if (v->bv_len == 0 || v->bv_len > USERSTORE_VALUE_MAX)
        return NULL;
    if (memchr(v->bv_val, '=', v->bv_len) &&
        ldap_bv2dn((struct berval *)v, &dn, LDAP_DN_FORMAT_LDAPV3) == LDAP_SUCCESS && dn && dn[0] &&
        dn[0][0] && dn[0][0]->la_value.bv_len > 0)
        out = json_stringn(dn[0][0]->la_value.bv_val, dn[0][0]->la_value.bv_len);
    else if (!memchr(v->bv_val, '=', v->bv_len))
        out = json_stringn(v->bv_val, v->bv_len);
    if (dn)
        ldap_dnfree(dn);
    return out;
}

static int cmp_json_str(const void *a, const void *b)
{
    return strcmp(json_string_value(*(json_t *const *)a), json_string_value(*(json_t *const *)b));
}

static json_t *groups_of(LDAP *ld, LDAPMessage *e, const char *attr)
{
    struct berval **vals = ldap_get_values_len(ld, e, attr);
    json_t *items[USERSTORE_GROUPS_MAX];
    json_t *arr = json_array();
    size_t n = 0;

    for (size_t i = 0; vals && vals[i] && n < USERSTORE_GROUPS_MAX; i++) {
        json_t *g = group_name(vals[i]);
        if (g)
            items[n++] = g;
    }
    ldap_value_free_len(vals);
    qsort(items, n, sizeof(items[0]), cmp_json_str);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(json_string_value(items[i]), json_string_value(items[i - 1])) == 0)
            json_decref(items[i]);
        else
            json_array_append_new(arr, items[i]);
    }
    return arr;
}

static bool uuid_shaped(const char *s)
{
    size_t n = strlen(s);

    if (n < 8 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') || (s[i] >= 'A' && s[i] <= 'F') ||
              s[i] == '-'))
            return false;
    return true;
}

static void lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}

static json_t *scim_resource(const struct userstore_user *u)
{
    json_t *r = json_object(), *groups = json_array();
    size_t i;
    json_t *g;

    json_object_set_new(r, "schemas", json_pack("[s]", "urn:ietf:params:scim:schemas:core:2.0:User"));
    json_object_set_new(r, "id", json_string(u->id));
    json_object_set_new(r, "externalId", json_string(u->dn));
    json_object_set_new(r, "userName", json_string(u->user_name));
    if (u->name) {
        json_object_set_new(r, "name", json_pack("{s:s}", "formatted", u->name));
        json_object_set_new(r, "displayName", json_string(u->name));
    }
    if (u->email)
        json_object_set_new(r, "emails", json_pack("[{s:s, s:b}]", "value", u->email, "primary", 1));
    json_array_foreach(u->groups, i, g)
        json_array_append_new(groups, json_pack("{s:O}", "display", g));
    json_object_set_new(r, "groups", groups);
    json_object_set_new(r, "active", json_true());
    json_object_set_new(r, "meta", json_pack("{s:s, s:s}", "resourceType", "User", "userStore", u->store));
    return r;
}

int users_map_entry(const struct ustore *st, LDAP *ld, LDAPMessage *e, struct userstore_user *u)
{
    char *dn = ldap_get_dn(ld, e), *uname = NULL, *uuid = NULL;
    int rc = -EINVAL;

    memset(u, 0, sizeof(*u));
    if (!dn)
        goto out;
    uname = first_value(ld, e, st->cfg.attr_username);
    if (!uname || strlen(uname) > USERSTORE_USERNAME_MAX)
        goto out;
    uuid = first_value(ld, e, "entryUUID");
    if (uuid && uuid_shaped(uuid)) {
        lower(uuid);
        u->id = xasprintf(USERSTORE_ID_PREFIX "%s:%s", st->name, uuid);
    } else {
        char *lc = xstrdup(uname);
        lower(lc);
        u->id = xasprintf(USERSTORE_ID_PREFIX "%s:u:%s", st->name, lc);
        free(lc);
    }
    u->user_name = xasprintf("%s/%s", st->name, uname);
    u->store = xstrdup(st->name);
    u->dn = xstrdup(dn);
    u->name = first_value(ld, e, st->cfg.attr_name);
    u->email = first_value(ld, e, st->cfg.attr_email);
    u->groups = groups_of(ld, e, st->cfg.attr_groups);
    u->scim = scim_resource(u);
    rc = 0;
out:
    ldap_memfree(dn);
    free(uname);
    free(uuid);
    if (rc < 0)
        userstore_user_free(u);
    return rc;
}

void userstore_user_free(struct userstore_user *u)
{
    if (!u)
        return;
    free(u->id);
    free(u->user_name);
    free(u->store);
    free(u->dn);
    free(u->name);
    free(u->email);
    json_decref(u->groups);
    json_decref(u->scim);
    memset(u, 0, sizeof(*u));
}

/* ------------------------------------------------------------------------ */
/* Operations                                                               */
/* ------------------------------------------------------------------------ */

/* Connected and bound as the service DN (or anonymous without bind_dn). */
static int ensure_service(struct ustore *st, struct ldapconn *c, int64_t deadline, bool *reached,
                          char *err, size_t errlen)
{
    int rc;

    if (c->ld && c->bound_service)
        return 0;
    if (!c->ld && (rc = ldapconn_open(c, &st->target, deadline, err, errlen)) < 0)
        return rc;
    if (st->cfg.bind_dn)
        rc = ldapconn_bind(c, st->cfg.bind_dn, st->bind_password,
                           st->bind_password ? strlen(st->bind_password) : 0, deadline, err, errlen);
    else
        rc = ldapconn_bind(c, NULL, NULL, 0, deadline, err, errlen);
    if (rc == 0 || rc == -EACCES)
        *reached = true;
    if (rc == -EACCES) {
        /* The service account was refused: the operator's problem, not the user's. */
        char msg[USTORE_ERROR_MAX];
        snprintf(msg, sizeof(msg), "service bind as %s refused: %s", st->cfg.bind_dn ? st->cfg.bind_dn : "anonymous",
                 err);
        snprintf(err, errlen, "%s", msg);
        return -EIO;
    }
    if (rc == 0)
        c->bound_service = true;
    return rc;
}

static const char *const *user_attrs(const struct ustore *st, const char *out[6])
{
    out[0] = st->cfg.attr_username;
    out[1] = st->cfg.attr_email;
    out[2] = st->cfg.attr_name;
    out[3] = st->cfg.attr_groups;
    out[4] = "entryUUID";
    out[5] = NULL;
    return out;
}

/* Searches users with filter; sizelimit as given. */
static int search_users(struct ustore *st, struct ldapconn *c, const char *filter, int sizelimit,
                        int64_t deadline, LDAPMessage **res, bool *truncated, bool *reached, char *err,
                        size_t errlen)
{
    const char *attrs[6];
    int rc = ensure_service(st, c, deadline, reached, err, errlen);

    if (rc < 0)
        return rc;
    rc = ldapconn_search(c, st->cfg.user_base, LDAP_SCOPE_SUBTREE, filter, user_attrs(st, attrs), sizelimit,
                         deadline, res, truncated, err, errlen);
    if (rc == 0 || rc == -EACCES || rc == -ENOENT)
        *reached = true;
    if (rc == -ENOENT) {                 /* noSuchObject: the base is wrong */
        snprintf(err, errlen, "user_base %s does not exist in the directory", st->cfg.user_base);
        rc = -EIO;
    }
    return rc;
}

static int build_filter(const struct ustore *st, const char *value, size_t n, struct buf *f, char *err,
                        size_t errlen)
{
    int rc = userstore_filter_build(f, st->cfg.user_filter, st->cfg.attr_username, value, n);
    if (rc < 0)
        snprintf(err, errlen, "cannot build the user filter (%s)", rc == -E2BIG ? "too long" : "bad template");
    return rc;
}

/* Exactly one user entry for filter: 0 with *u, -ENOENT (none), -EMLINK (several). */
static int find_one(struct ustore *st, struct ldapconn *c, const char *filter, int64_t deadline,
                    struct userstore_user *u, bool *reached, char *err, size_t errlen)
{
    LDAPMessage *res = NULL, *e;
    int rc = search_users(st, c, filter, 2, deadline, &res, NULL, reached, err, errlen);
    int count;

    if (rc < 0)
        return rc;
    count = ldap_count_entries(c->ld, res);
    if (count == 0) {
        rc = -ENOENT;
        snprintf(err, errlen, "no such user");
    } else if (count > 1) {
        rc = -EMLINK;
        snprintf(err, errlen, "the user name matches several entries");
    } else {
        e = ldap_first_entry(c->ld, res);
        rc = users_map_entry(st, c->ld, e, u);
        if (rc < 0)
            snprintf(err, errlen, "the entry has no usable %s", st->cfg.attr_username);
    }
    ldap_msgfree(res);
    return rc;
}

static int run_auth(struct ustore *st, struct ldapconn *c, struct ujob *j, struct userstore_reply *r,
                    bool *reached)
{
    struct buf f;
    int rc;

    buf_init(&f, FILTER_MAX);
    if (j->plen == 0) {
        snprintf(r->detail, sizeof(r->detail), "empty password refused");
        rc = -EACCES;
        goto out;
    }
    rc = build_filter(st, j->user, strlen(j->user), &f, r->detail, sizeof(r->detail));
    if (rc < 0) {
        rc = rc == -E2BIG ? -EACCES : -EIO;
        goto out;
    }
    rc = find_one(st, c, buf_cstr(&f), j->deadline_us, &r->user, reached, r->detail, sizeof(r->detail));
    if (rc == -ENOENT || rc == -EMLINK || rc == -EINVAL) {
        rc = -EACCES;                     /* one answer for every refusal */
        goto out;
    }
    if (rc < 0)
        goto out;
    rc = ldapconn_bind(c, r->user.dn, j->password, j->plen, j->deadline_us, r->detail, sizeof(r->detail));
    if (rc == 0 || rc == -EACCES)
        *reached = true;
out:
    if (rc != 0)
        userstore_user_free(&r->user);
    buf_free(&f);
    return rc;
}

static int run_lookup(struct ustore *st, struct ldapconn *c, struct ujob *j, struct userstore_reply *r,
                      bool *reached)
{
    struct buf f;
    const char *key = j->user;
    int rc;

    buf_init(&f, FILTER_MAX);
    if (strncmp(key, "u:", 2) == 0) {
        rc = build_filter(st, key + 2, strlen(key + 2), &f, r->detail, sizeof(r->detail));
    } else if (uuid_shaped(key)) {
        rc = build_filter(st, NULL, 0, &f, r->detail, sizeof(r->detail));
        if (rc == 0) {
            /* (&<every user>(entryUUID=<key>)) */
            struct buf g;
            buf_init(&g, FILTER_MAX);
            if (buf_puts(&g, "(&") < 0 || buf_puts(&g, buf_cstr(&f)) < 0 || buf_puts(&g, "(entryUUID=") < 0 ||
                userstore_filter_escape(&g, key, strlen(key)) < 0 || buf_puts(&g, "))") < 0)
                rc = -E2BIG;
            buf_free(&f);
            f = g;
        }
    } else {
        rc = -ENOENT;
    }
    if (rc < 0) {
        rc = -ENOENT;
        snprintf(r->detail, sizeof(r->detail), "not an id of this userstore");
        goto out;
    }
    rc = find_one(st, c, buf_cstr(&f), j->deadline_us, &r->user, reached, r->detail, sizeof(r->detail));
    if (rc == -EMLINK || rc == -EINVAL)
        rc = -ENOENT;
    /* a user-name id must still name that user (the filter may match other attributes too) */
    if (rc == 0 && strncmp(key, "u:", 2) == 0 && strcasecmp(strchr(r->user.user_name, '/') + 1, key + 2) != 0) {
        userstore_user_free(&r->user);
        rc = -ENOENT;
    }
out:
    buf_free(&f);
    return rc;
}

static int cmp_user_name(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    return strcmp(json_string_value(json_object_get(x, "userName")),
                  json_string_value(json_object_get(y, "userName")));
}

static int run_list(struct ustore *st, struct ldapconn *c, struct ujob *j, struct userstore_reply *r,
                    bool *reached)
{
    struct buf f;
    LDAPMessage *res = NULL, *e;
    json_t **items = NULL, *resources;
    size_t n = 0, i;
    bool truncated = false;
    int64_t start = j->start < 1 ? 1 : j->start, count = j->count < 0 ? 0 : j->count;
    int rc;

    buf_init(&f, FILTER_MAX);
    rc = build_filter(st, j->user, j->user ? strlen(j->user) : 0, &f, r->detail, sizeof(r->detail));
    if (rc < 0) {
        rc = -EINVAL;
        goto out;
    }
    rc = search_users(st, c, buf_cstr(&f), USERSTORE_LIST_MAX, j->deadline_us, &res, &truncated, reached,
                      r->detail, sizeof(r->detail));
    if (rc < 0)
        goto out;
    items = xcalloc((size_t)ldap_count_entries(c->ld, res) + 1, sizeof(*items));
    for (e = ldap_first_entry(c->ld, res); e; e = ldap_next_entry(c->ld, e)) {
        struct userstore_user u;
        if (users_map_entry(st, c->ld, e, &u) < 0)
            continue;
        items[n++] = json_incref(u.scim);
        userstore_user_free(&u);
    }
    qsort(items, n, sizeof(*items), cmp_user_name);
    resources = json_array();
    for (i = 0; i < n; i++) {
        if ((int64_t)i >= start - 1 && (int64_t)json_array_size(resources) < count)
            json_array_append(resources, items[i]);
        json_decref(items[i]);
    }
    r->list = json_pack("{s:[s], s:I, s:I, s:I, s:o}", "schemas",
                        "urn:ietf:params:scim:api:messages:2.0:ListResponse", "totalResults", (json_int_t)n,
                        "startIndex", (json_int_t)start, "itemsPerPage",
                        (json_int_t)json_array_size(resources), "Resources", resources);
    r->truncated = truncated;
    if (truncated)
        snprintf(r->detail, sizeof(r->detail), "more than %d users: the list is truncated", USERSTORE_LIST_MAX);
out:
    free(items);
    ldap_msgfree(res);
    buf_free(&f);
    return rc;
}

static int run_probe(struct ustore *st, struct ldapconn *c, struct ujob *j, struct userstore_reply *r,
                     bool *reached)
{
    char csn[sizeof(st->csn)], base[sizeof(st->csn_base)];
    int rc = ensure_service(st, c, j->deadline_us, reached, r->detail, sizeof(r->detail));

    if (rc < 0)
        return rc;
    rc = ldapconn_context_csn(c, st->cfg.user_base, j->deadline_us, csn, sizeof(csn), base, sizeof(base),
                              r->detail, sizeof(r->detail));
    if (rc == 0 || rc == -ENOENT)
        *reached = true;
    if (rc == 0 || rc == -ENOENT) {
        pthread_mutex_lock(&st->mu);
        snprintf(st->csn, sizeof(st->csn), "%s", rc == 0 ? csn : "");
        snprintf(st->csn_base, sizeof(st->csn_base), "%s", rc == 0 ? base : "");
        st->csn_read_wall_us = time_wall_us();
        pthread_mutex_unlock(&st->mu);
        rc = 0;
    }
    return rc;
}

void users_run(struct ustore *st, struct ldapconn *c, struct ujob *j, struct userstore_reply *r, bool *reached)
{
    int attempt;

    for (attempt = 0; attempt < 2; attempt++) {
        bool reused = c->ld && c->used;

        *reached = false;
        r->detail[0] = '\0';
        switch (j->kind) {
        case UJOB_AUTH:
            r->rc = run_auth(st, c, j, r, reached);
            break;
        case UJOB_LOOKUP:
            r->rc = run_lookup(st, c, j, r, reached);
            break;
        case UJOB_LIST:
            r->rc = run_list(st, c, j, r, reached);
            break;
        case UJOB_PROBE:
            r->rc = run_probe(st, c, j, r, reached);
            break;
        }
        /* A pooled connection the server has dropped since (restart, idle
         * timeout) fails once: try again on a fresh one while time is left. */
        if (r->rc != -ENETDOWN || !reused || !ldapconn_left_us(j->deadline_us))
            break;
        ldapconn_close(c);
    }
}
