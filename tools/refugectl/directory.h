/*
 * directory — the LDAP side of the RPO picture (issue 10): each region's
 * directory replicates by OpenLDAP syncrepl, and each node reports its own
 * directory's contextCSN in GET /admin/v1/node ("ldap": {"stores": [...]}).
 * Comparing the active region's CSNs with a standby region's tells whether
 * the standby's directory has everything; both CSNs were stamped by the
 * provider, so the lag is measured on one clock.
 */
#ifndef REFUGECTL_DIRECTORY_H
#define REFUGECTL_DIRECTORY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct ctl_dir_state {
    char name[64];         /* the userstore's name */
    int rc;                /* 0 in sync, 1 behind (lag_ms), < 0 unknown (why) */
    int64_t lag_ms;
    char why[96];
};

/* Compares every store the active node reports with the standby's store of
 * the same name. Returns how many entries were written to out. */
size_t ctl_directories_compare(const json_t *active_status, const json_t *standby_status,
                               struct ctl_dir_state *out, size_t max);
/* The stores a node reports (array) or NULL. */
const json_t *ctl_directory_stores(const json_t *status);

#endif
