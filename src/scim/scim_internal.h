/*
 * scim_internal — what the files of the SCIM HTTP API share: the request
 * prologue (bearer token, scopes, tenant), SCIM error and JSON responses,
 * request bodies, and the two resource kinds.
 *
 * Responses are application/scim+json; every error is a SCIM error
 * document (RFC 7644 §3.12), including the 401/403 of the bearer check,
 * whose WWW-Authenticate header (RFC 6750) is kept. A standby's 503 also
 * carries "error":"temporarily_unavailable" so that clients of the other
 * APIs' error shape understand it too.
 */
#ifndef REFUGE_SCIM_INTERNAL_H
#define REFUGE_SCIM_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>

#include "http/http.h"
#include "identity/group.h"
#include "identity/tenant.h"
#include "identity/user.h"
#include "node/node.h"
#include "oauth/authz.h"
#include "scim/filter.h"
#include "scim/patch.h"
#include "scim/resource.h"

#define SCIM_CONTENT_TYPE "application/scim+json"
#define SCIM_LIST_MAX 1000              /* ServiceProviderConfig filter.maxResults */
#define SCIM_LIST_DEFAULT 100           /* count when the client gives none */
#define SCIM_JSON_DEPTH 32
#define SCIM_STANDBY_MSG "this node is a standby; writes go to the active region"

/* A resource kind: Users or Groups. */
struct scim_kind {
    const struct scim_resource_type *rt;
    const char *table;                  /* "users", "groups" */
    const char *alias;                  /* "u", "g" */
    int (*load)(struct db *db, const char *tenant, const char *id, struct identity_doc *out);
};
extern const struct scim_kind scim_kind_user;
extern const struct scim_kind scim_kind_group;

enum scim_access {
    SCIM_PUBLIC = 0,     /* discovery: no token, the tenant must exist */
    SCIM_READ,           /* scim:read, scim:write or refuge:admin */
    SCIM_WRITE,          /* scim:write or refuge:admin */
    SCIM_ME,             /* any token of a user of this tenant */
};

struct scim_ctx {
    struct node *n;
    struct http_request *req;
    struct tenant tenant;
    const char *base;                   /* tenant issuer + "/scim2" (arena) */
    struct principal p;
};

/* Authenticates for `acc` and loads the tenant. 0, or -1 after answering. */
int scim_begin(struct node *n, struct http_request *req, enum scim_access acc, struct scim_ctx *c);

/* Responses. scim_respond steals body (NULL: no body). */
void scim_respond(struct http_request *req, int status, json_t *body);
void scim_respond_error(struct http_request *req, int status, const char *scim_type, const char *detail);
/* Maps a negative errno of the store or the model to a SCIM error:
 * -EINVAL 400 (err's scimType or invalidValue), -ENOENT 404, -EEXIST 409
 * uniqueness, -ESTALE 412, -EROFS 503 (standby), -EAGAIN / -EBUSY /
 * -ESHUTDOWN 503, -ENOSPC 507, else 500. detail may be NULL. */
void scim_respond_errno(struct http_request *req, int rc, const char *scim_type, const char *detail);

/* The request body as a JSON object (new reference), or NULL after
 * answering (415 for a non-JSON media type, 400 invalidSyntax otherwise). */
json_t *scim_body(struct http_request *req);

/* Parses attributes / excludedAttributes from the query. 0 or -1 after answering. */
int scim_query_sel(struct http_request *req, const struct scim_resource_type *rt, struct scim_attr_sel *sel);

/* directory.c: users of the tenant's LDAP userstores, read-only (see there
 * for what is routed to a directory). */
/* GET /Users/{id} for a directory id: HTTP_SUSPEND (answered from the
 * userstore's pool) or HTTP_DONE after answering. */
enum http_result scim_directory_get(struct scim_ctx *c, const char *id, const struct scim_attr_sel *sel);
/* A Users query: false when it is not for a directory (nothing done, the
 * caller lists internal users). true: *out says whether the request was
 * answered (HTTP_DONE) or suspended; a suspended one took *filter (set to
 * NULL), otherwise it stays the caller's. */
bool scim_directory_list(struct scim_ctx *c, struct scim_filter **filter, const struct scim_attr_sel *sel,
                         bool sort_by_user_name, bool descending, int64_t start, int64_t count,
                         enum http_result *out);
bool scim_directory_user_id(const char *id);                            /* "ldap:..." */
bool scim_directory_user_name(struct scim_ctx *c, const char *user_name);   /* DOMAIN/name of a userstore */
/* 400 mutability: directory users are read-only. HTTP_DONE. */
enum http_result scim_directory_read_only(struct http_request *req);

/* Route tables of the parts. */
size_t scim_resource_routes(struct node *n, struct http_route *out, size_t max);
size_t scim_list_routes(struct node *n, struct http_route *out, size_t max);
size_t scim_discovery_routes(struct node *n, struct http_route *out, size_t max);

#endif
