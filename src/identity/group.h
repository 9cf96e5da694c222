/*
 * group — the group model (replication class `identity`): a SCIM Group
 * resource in groups.data and one group_members row per member.
 *
 * Stored form (what scim/filter.h compiles filters against):
 *   groups.data         schemas, id, externalId, displayName, members
 *                       [{value, type: "User"|"Group", display}], meta as
 *                       for users (identity/user.h). display is the member's
 *                       displayName (users: else userName), kept current by
 *                       the writer when a member is renamed.
 *   groups columns      display_name, display_name_lc (ASCII lower-case:
 *                       display names are unique per tenant ignoring case),
 *                       external_id, version, created_at, updated_at.
 *   group_members       (group_id, member_id, member_type), one row per
 *                       element of members.
 * Membership also shows on the member: a user's data.groups lists its
 * direct groups (user_groups_refresh), so every membership change rewrites
 * the users whose groups changed, in the same transaction.
 *
 * Members must exist in the tenant when added (a user or a group; "type",
 * when given, must say which), a group cannot contain itself, and
 * duplicates (same value) collapse into one. Errors as in user.h.
 */
#ifndef REFUGE_IDENTITY_GROUP_H
#define REFUGE_IDENTITY_GROUP_H

#include <jansson.h>
#include <stdint.h>

#include "identity/user.h"
#include "store/db.h"

int group_load(struct db *db, const char *tenant, const char *id, struct identity_doc *out);

/* Writer-side; res: a normalized Group resource (scim/resource.h). */
int group_create(struct db *db, const char *tenant, const json_t *res, int64_t now, struct identity_doc *out,
                 char *msg, size_t msglen);
int group_replace(struct db *db, const char *tenant, const char *id, const json_t *res, int64_t now,
                  struct identity_doc *out, char *msg, size_t msglen);
/* Deletes the group, its member rows and its memberships in other groups;
 * the former members' data.groups and the parents' members are updated. */
int group_delete(struct db *db, const char *tenant, const char *id, int64_t now);

/* Writer-side, for user.c: member `member_id` was renamed (display is its
 * new display) or is gone; every group listing it is updated. */
int group_member_display_refresh(struct db *db, const char *tenant, const char *member_id, const char *display,
                                 int64_t now);
int group_member_forget(struct db *db, const char *tenant, const char *member_id, int64_t now);

/*
 * The display names of the groups user_id is a direct member of, sorted,
 * as a JSON array of strings (the `groups` claim of tokens). At most 256.
 * New reference; an empty array when there are none or on a read error.
 */
json_t *user_groups_json(struct db *db, const char *tenant, const char *user_id);

#endif
