/*
 * directory — compares two regions' directories by contextCSN; used by
 * `status` (next to the store's lag) and by `drill` (after its verify step).
 */
#include "directory.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/json.h"
#include "ldap/userstore.h"

#define CSN_MAX 16

const json_t *ctl_directory_stores(const json_t *status)
{
    const json_t *l = json_object_get(status, "ldap");
    const json_t *st = json_is_object(l) ? json_object_get(l, "stores") : NULL;
    return json_is_array(st) && json_array_size(st) ? st : NULL;
}

static const json_t *store_named(const json_t *stores, const char *name)
{
    size_t i;
    const json_t *e;
    json_array_foreach(stores, i, e) {
        if (strcmp(jsonx_str(e, "name", ""), name) == 0)
            return e;
    }
    return NULL;
}

static size_t csn_list(const json_t *store, const char **out)
{
    const json_t *a = json_object_get(store, "context_csn");
    size_t i, n = 0;
    const json_t *e;
    if (!json_is_array(a))
        return 0;
    json_array_foreach(a, i, e) {
        if (json_is_string(e) && n < CSN_MAX)
            out[n++] = json_string_value(e);
    }
    return n;
}

static int compare_one(const json_t *active_store, const json_t *standby_store, struct ctl_dir_state *o)
{
    const char *p[CSN_MAX], *c[CSN_MAX];
    if (!standby_store) {
        snprintf(o->why, sizeof o->why, "not defined on the standby");
        return -ENOENT;
    }
    if (!json_is_true(json_object_get(standby_store, "up"))) {
        snprintf(o->why, sizeof o->why, "standby's directory down");
        return -EIO;
    }
    size_t np = csn_list(active_store, p), nc = csn_list(standby_store, c);
    if (np == 0 || nc == 0) {
        snprintf(o->why, sizeof o->why, "no contextCSN read yet");
        return -EAGAIN;
    }
    int rc = ldap_csn_lag_ms(p, np, c, nc, &o->lag_ms);
    if (rc == -ENOENT)
        snprintf(o->why, sizeof o->why, "consumer lacks a provider server id");
    else if (rc < 0)
        snprintf(o->why, sizeof o->why, "malformed contextCSN");
    return rc;
}

size_t ctl_directories_compare(const json_t *active_status, const json_t *standby_status,
                               struct ctl_dir_state *out, size_t max)
{
    const json_t *theirs = ctl_directory_stores(active_status), *mine = ctl_directory_stores(standby_status);
    size_t i, n = 0;
    const json_t *e;
    if (!theirs)
        return 0;
    json_array_foreach(theirs, i, e) {
        if (n == max)
            break;
        struct ctl_dir_state *o = &out[n++];
        memset(o, 0, sizeof *o);
        snprintf(o->name, sizeof o->name, "%s", jsonx_str(e, "name", "?"));
        o->rc = compare_one(e, mine ? store_named(mine, o->name) : NULL, o);
    }
    return n;
}
