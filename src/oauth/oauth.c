/*
 * oauth — the route table of the OAuth 2.0 / OpenID Connect endpoints, the
 * two metadata documents (OIDC Discovery and RFC 8414), the JWKS, and the
 * pieces every endpoint shares: RFC 6749 error rendering and client
 * authentication.
 *
 * Metadata is truthful: it lists only what this build implements and the
 * tenant allows. A tenant whose settings leave out authorization_code has
 * no authorization_endpoint and an empty response_types_supported (the
 * member stays because OIDC Discovery and RFC 8414 require it; an empty
 * list says "none"). Public clients authenticate at the token endpoint with
 * their client_id alone ("none") and must use PKCE S256.
 */
#include "oauth/oauth.h"

#include <errno.h>
#include <string.h>

#include "core/json.h"
#include "core/log.h"
#include "identity/keyring.h"
#include "oauth/oauth_internal.h"
#include "repl/repl.h"

/* ------------------------------------------------------------ responses */

void oauth_no_cache(struct http_request *req)
{
    http_add_header(req, "Pragma", "no-cache");
}

void oauth_respond_error(struct http_request *req, const struct oauth_error *err)
{
    oauth_no_cache(req);
    if (err->status == 401 || err->basic_challenge)
        http_add_header(req, "WWW-Authenticate",
                        arena_sprintf(&req->arena, "Basic realm=\"%s\", charset=\"UTF-8\"", req->tenant));
    http_respond_error(req, err->status, err->error, err->description);
}

void oauth_respond_err(struct http_request *req, int status, const char *code, const char *desc)
{
    struct oauth_error e = { status, code, desc, status == 401 };
    oauth_respond_error(req, &e);
}

void oauth_respond_write_error(struct http_request *req, int rc)
{
    char why[256];
    const char *text = (rc == -EROFS || rc == -EBUSY) ? repl_write_error(req->route_data, rc, why, sizeof(why))
                                                      : NULL;
    if (text)
        oauth_respond_err(req, 503, "temporarily_unavailable", arena_strdup(&req->arena, text));
    else if (rc == -EROFS)
        oauth_respond_err(req, 503, "temporarily_unavailable",
                          "this node is a standby; writes go to the active region");
    else if (rc == -EAGAIN)
        oauth_respond_err(req, 503, "temporarily_unavailable", "write queue full; retry");
    else if (rc == -ESHUTDOWN)
        oauth_respond_err(req, 503, "temporarily_unavailable", "server shutting down");
    else
        oauth_respond_err(req, 500, "server_error", "storage error");
}

int oauth_load_tenant(struct node *n, struct http_request *req, struct db *db, struct tenant *t)
{
    int rc = tenant_load(db, req->tenant, n->conf->public_url, &req->arena, t);
    if (rc == -ENOENT)
        http_respond_error(req, 404, "not_found", "no such tenant");
    else if (rc < 0)
        http_respond_error(req, 500, "server_error", "storage error");
    return rc;
}

static int step_once(struct db *db, const char *sql)
{
    struct db_stmt *st = db_prepare(db, sql);
    if (!st)
        return DB_ERR;
    int rc = db_step(st);
    db_done(st);
    return rc < 0 ? rc : 0;
}

int oauth_read_begin(struct db *db)
{
    return step_once(db, "BEGIN");
}

void oauth_read_end(struct db *db)
{
    if (step_once(db, "COMMIT") < 0)
        step_once(db, "ROLLBACK");
}

/* -------------------------------------------------- client authentication */

int oauth_client_authenticate(struct db *db, const char *tenant, const struct oauth_client_auth *auth,
                              bool require_confidential, struct arena *a, struct client *c,
                              struct oauth_error *err)
{
    static const char *const bad = "client authentication failed";
    int rc = client_load(db, tenant, auth->client_id, a, c);
    bool ok;

    if (rc < 0 && rc != -ENOENT) {
        *err = (struct oauth_error){ 500, "server_error", "storage error", false };
        return rc;
    }
    if (rc == -ENOENT) {
        /* Same work as a real check so timing does not reveal client ids. */
        char h[CRYPTO_SECRET_HASH_BUFSZ];
        crypto_secret_hash(auth->secret ? auth->secret : "", auth->secret_len, h);
        ok = false;
    } else if (c->confidential) {
        ok = auth->method != OAUTH_AUTH_NONE && client_secret_ok(c, auth->secret, auth->secret_len);
    } else {
        ok = auth->method == OAUTH_AUTH_NONE && !require_confidential;
    }
    if (!ok) {
        *err = (struct oauth_error){ 401, "invalid_client", bad, true };
        return -EACCES;
    }
    return 0;
}

/* ------------------------------------------------------------ discovery */

static json_t *str_array(const char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}
#define STR_ARRAY(v) str_array(v, sizeof(v) / sizeof(v[0]))

static const char *const grants_supported[] = { "authorization_code", "client_credentials", "password",
                                                "refresh_token" };
static const char *const client_auth_methods[] = { "client_secret_basic", "client_secret_post" };
static const char *const token_auth_methods[] = { "client_secret_basic", "client_secret_post", "none" };
static const char *const prompt_values[] = { "none", "login", "consent", "select_account" };
static const char *const scopes_supported[] = { "openid", "profile", "email", "phone", "address",
                                                "groups", "refuge:admin", "scim:read", "scim:write" };
static const char *const claims_supported[] = {
    "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "sid", "azp", "jti", "client_id",
    "scope", "name", "given_name",
    "family_name", "middle_name", "nickname", "preferred_username", "profile", "picture", "locale",
    "zoneinfo", "updated_at", "email", "phone_number", "address", "groups"
};

static json_t *metadata(struct node *n, struct db *db, const struct tenant *t)
{
    const char *iss = t->issuer;
    json_t *m = json_object();
    bool code = (t->s.grant_types & GRANT_AUTHORIZATION_CODE) != 0;
    json_object_set_new(m, "issuer", json_string(iss));
    if (code)
        json_object_set_new(m, "authorization_endpoint", json_sprintf("%s/oauth2/authorize", iss));
    json_object_set_new(m, "token_endpoint", json_sprintf("%s/oauth2/token", iss));
    json_object_set_new(m, "jwks_uri", json_sprintf("%s/oauth2/jwks", iss));
    json_object_set_new(m, "userinfo_endpoint", json_sprintf("%s/oauth2/userinfo", iss));
    json_object_set_new(m, "introspection_endpoint", json_sprintf("%s/oauth2/introspect", iss));
    json_object_set_new(m, "revocation_endpoint", json_sprintf("%s/oauth2/revoke", iss));
    json_object_set_new(m, "end_session_endpoint", json_sprintf("%s/oidc/logout", iss));

    /* grants: what both this build and the tenant's settings allow */
    json_t *g = json_array();
    for (size_t i = 0; i < sizeof(grants_supported) / sizeof(grants_supported[0]); i++)
        if (t->s.grant_types & grant_bit(grants_supported[i]))
            json_array_append_new(g, json_string(grants_supported[i]));
    json_object_set_new(m, "grant_types_supported", g);
    json_object_set_new(m, "response_types_supported", code ? json_pack("[s]", "code") : json_array());
    if (code) {
        json_object_set_new(m, "response_modes_supported", json_pack("[s]", "query"));
        json_object_set_new(m, "code_challenge_methods_supported", json_pack("[s]", "S256"));
        json_object_set_new(m, "authorization_response_iss_parameter_supported", json_true());
        json_object_set_new(m, "prompt_values_supported", STR_ARRAY(prompt_values));
    }
    json_object_set_new(m, "token_endpoint_auth_methods_supported", STR_ARRAY(token_auth_methods));
    json_object_set_new(m, "introspection_endpoint_auth_methods_supported", STR_ARRAY(client_auth_methods));
    json_object_set_new(m, "revocation_endpoint_auth_methods_supported", STR_ARRAY(client_auth_methods));
    json_object_set_new(m, "scopes_supported", STR_ARRAY(scopes_supported));
    json_object_set_new(m, "claims_supported", STR_ARRAY(claims_supported));
    json_object_set_new(m, "subject_types_supported", json_pack("[s]", "public"));

    /* ID tokens are signed with the tenant's current key: its alg is the one */
    json_t *algs = json_array();
    const struct crypto_key *k = NULL;
    if (keyring_signing_key(n->keyring, db, t->name, &k) == 0) {
        json_array_append_new(algs, json_string(crypto_alg_name(crypto_key_alg(k))));
        keyring_release(n->keyring, k);
    }
    json_object_set_new(m, "id_token_signing_alg_values_supported", algs);
    json_object_set_new(m, "claims_parameter_supported", json_false());
    json_object_set_new(m, "request_parameter_supported", json_false());
    json_object_set_new(m, "request_uri_parameter_supported", json_false());
    return m;
}

static enum http_result discovery_handler(struct http_request *req)
{
    struct node *n = req->route_data;
    struct db *db = store_reader(n->store);
    struct tenant t;
    const char *tenant = http_path_param(req, "tenant");

    if (tenant) {   /* RFC 8414 §3: /.well-known/oauth-authorization-server/t/NAME */
        if (!http_tenant_name_valid(tenant, strlen(tenant))) {
            http_respond_error(req, 404, "not_found", "no such tenant");
            return HTTP_DONE;
        }
        req->tenant = tenant;
    }
    if (oauth_load_tenant(n, req, db, &t) < 0)
        return HTTP_DONE;
    http_respond_json(req, 200, metadata(n, db, &t));
    return HTTP_DONE;
}

static enum http_result jwks_handler(struct http_request *req)
{
    struct node *n = req->route_data;
    struct db *db = store_reader(n->store);
    struct tenant t;

    if (oauth_load_tenant(n, req, db, &t) < 0)
        return HTTP_DONE;
    json_t *j = keyring_jwks(n->keyring, db, t.name);
    if (!j) {
        http_respond_error(req, 500, "server_error", "cannot read keys");
        return HTTP_DONE;
    }
    char *s = jsonx_dump(j);
    json_decref(j);
    http_respond(req, 200, "application/jwk-set+json", s, strlen(s));
    free(s);
    return HTTP_DONE;
}

/* ---------------------------------------------------------------- routes */

size_t oauth_routes(struct node *n, struct http_route *out, size_t max)
{
    const struct http_route routes[] = {
        { "GET", "/.well-known/openid-configuration", discovery_handler, HTTP_ROUTE_TENANT, "discovery", n },
        { "GET", "/.well-known/oauth-authorization-server", discovery_handler, HTTP_ROUTE_TENANT,
          "discovery", n },
        { "GET", "/.well-known/oauth-authorization-server/t/{tenant}", discovery_handler, 0, "discovery", n },
        { "GET", "/oauth2/jwks", jwks_handler, HTTP_ROUTE_TENANT, "jwks", n },
        { "POST", "/oauth2/token", oauth_token_handler, HTTP_ROUTE_TENANT, "token", n },
        { "POST", "/oauth2/introspect", oauth_introspect_handler, HTTP_ROUTE_TENANT, "introspect", n },
        { "POST", "/oauth2/revoke", oauth_revoke_handler, HTTP_ROUTE_TENANT, "revoke", n },
        { "GET", "/oauth2/userinfo", oauth_userinfo_handler, HTTP_ROUTE_TENANT, "userinfo", n },
        { "POST", "/oauth2/userinfo", oauth_userinfo_handler, HTTP_ROUTE_TENANT, "userinfo", n },
        { "GET", "/oauth2/authorize", oauth_authorize_handler, HTTP_ROUTE_TENANT, "authorize", n },
        { "POST", "/oauth2/authorize", oauth_authorize_handler, HTTP_ROUTE_TENANT, "authorize", n },
        { "POST", "/oauth2/login", oauth_login_handler, HTTP_ROUTE_TENANT, "login", n },
        { "GET", "/oidc/logout", oauth_logout_handler, HTTP_ROUTE_TENANT, "logout", n },
        { "POST", "/oidc/logout", oauth_logout_handler, HTTP_ROUTE_TENANT, "logout", n },
    };
    size_t k = sizeof(routes) / sizeof(routes[0]);
    if (k > max)
        k = max;
    memcpy(out, routes, k * sizeof(routes[0]));
    return k + oauth_session_admin_routes(n, out + k, max - k);
}
