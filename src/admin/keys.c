/*
 * keys — /admin/v1/keys of a tenant (also under /t/T/...): the signing keys'
 * metadata and rotation. Private key material never leaves the keyring.
 *
 *   GET  /admin/v1/keys          -> {"keys":[{"kid","alg","status","created_at","retire_after"}]}
 *   POST /admin/v1/keys/rotate   {"alg"?} -> 201 {"kid","alg"}: the new key signs from
 *                                now on; the previous one stays published until
 *                                the longest-lived token it may have signed expires
 *
 * Without "alg" a rotation keeps the algorithm of the current key (ES256
 * when the tenant has none).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "admin/admin_internal.h"
#include "crypto/keys.h"
#include "identity/keyring.h"
#include "identity/tenant.h"

static int prologue(struct node *n, struct http_request *req)
{
    struct principal p;

    if (admin_auth(n, req, false, &p) < 0 || admin_tenant_exists(n, req) < 0)
        return -1;
    return 0;
}

static enum http_result key_list(struct http_request *req)
{
    struct node *n = req->route_data;
    json_t *list;

    if (prologue(n, req) < 0)
        return HTTP_DONE;
    list = keyring_list_json(store_reader(n->store), req->tenant);
    if (!list) {
        admin_respond_errno(req, -EIO, NULL, NULL);
        return HTTP_DONE;
    }
    http_respond_json(req, 200, json_pack("{s:o}", "keys", list));
    return HTTP_DONE;
}

/* The alg of the tenant's active key, ES256 when none (on the writer's connection). */
static const char *current_alg(struct db *db, const char *tenant)
{
    json_t *list = keyring_list_json(db, tenant), *k;
    const char *alg = "ES256";
    enum crypto_alg a;
    size_t i;

    json_array_foreach(list, i, k) {
        const char *s = json_string_value(json_object_get(k, "alg"));
        if (strcmp(json_string_value(json_object_get(k, "status")), "active") == 0 && s &&
            crypto_alg_parse(s, strlen(s), &a) == 0) {
            alg = crypto_alg_name(a);          /* static string */
            break;
        }
    }
    json_decref(list);
    return alg;
}

static int rotate_run(struct db *db, struct admin_job *j)
{
    const char *alg = j->data ? (const char *)j->data : current_alg(db, j->tenant);
    char kid[64];
    int64_t ttl;
    int rc = tenant_max_token_ttl(db, j->tenant, &ttl);

    if (rc < 0)
        return rc;
    rc = keyring_rotate(db, j->n->master_key, j->tenant, alg, ttl, kid);
    if (rc == 0)
        j->resp = json_pack("{s:s, s:s}", "kid", kid, "alg", alg);
    return rc;
}

static enum http_result key_rotate(struct http_request *req)
{
    static const char *const known[] = { "alg", NULL };
    struct node *n = req->route_data;
    struct admin_job *j;
    enum crypto_alg a;
    json_t *body, *v;

    if (prologue(n, req) < 0 || !(body = admin_body(req, true)))
        return HTTP_DONE;
    if (admin_known_fields(req, body, known) < 0)
        goto out;
    j = admin_job_new(n, req, rotate_run);
    if ((v = json_object_get(body, "alg"))) {
        if (!json_is_string(v) || crypto_alg_parse(json_string_value(v), json_string_length(v), &a) < 0) {
            http_respond_error(req, 400, "invalid_request", "alg: must be \"ES256\", \"RS256\" or \"EdDSA\"");
            goto out;
        }
        j->data = (void *)crypto_alg_name(a);
    }
    json_decref(body);
    j->status = 201;
    j->not_found = "no such tenant";
    j->invalidate_keyring = true;
    return admin_submit(j);
out:
    json_decref(body);
    return HTTP_DONE;
}

size_t admin_key_routes(struct node *n, struct http_route *out, size_t max)
{
    const struct http_route routes[] = {
        { "GET", "/admin/v1/keys", key_list, HTTP_ROUTE_TENANT, "admin_keys", n },
        { "POST", "/admin/v1/keys/rotate", key_rotate, HTTP_ROUTE_TENANT, "admin_keys_rotate", n },
    };
    return admin_copy_routes(routes, sizeof(routes) / sizeof(routes[0]), out, max);
}
