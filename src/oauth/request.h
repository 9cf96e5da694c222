/*
 * request — pure parsers for what clients send to the token, introspection
 * and revocation endpoints: the form body, client authentication
 * (client_secret_basic / client_secret_post / client_id only) and the
 * grant-specific parameters, with the RFC 6749 §5.2 error each defect earns.
 *
 * No I/O, no database, no clock: (bytes in) -> (struct out | error), so the
 * whole thing is unit-tested and fuzzed (tests/fuzz/fuzz_oauth_token_request.c).
 * Output strings are NUL-terminated and live in the caller's arena.
 *
 * Checks, in the order they are made (the first defect found is answered):
 *   1. the body parses as application/x-www-form-urlencoded with at most
 *      HTTP_MAX_PARAMS pairs, no parameter appears twice (RFC 6749 §3.2),
 *      no value holds a NUL byte or exceeds its length limit -> invalid_request;
 *   2. client authentication: an Authorization header must be
 *      "Basic base64(urlencode(id) ':' urlencode(secret))" (RFC 6749 §2.3.1)
 *      -> invalid_client (401) otherwise; Basic together with client_secret
 *      in the body, or a body client_id that differs from the Basic one
 *      -> invalid_request; client_secret without client_id -> invalid_request;
 *      no client identification at all -> invalid_client (401);
 *   3. token endpoint only: grant_type missing -> invalid_request, not one we
 *      implement -> unsupported_grant_type; the grant's own parameters
 *      missing or empty (authorization_code: code; a code_verifier outside
 *      RFC 7636 §4.1 syntax) -> invalid_request; a malformed scope -> invalid_scope.
 */
#ifndef REFUGE_OAUTH_REQUEST_H
#define REFUGE_OAUTH_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include "core/arena.h"
#include "http/http.h"

/* Length limits on what clients send (longer is invalid_request). */
#define OAUTH_MAX_CLIENT_ID 256
#define OAUTH_MAX_SECRET 1024
#define OAUTH_MAX_USERNAME 256
#define OAUTH_MAX_PASSWORD 1024
#define OAUTH_MAX_TOKEN 16384         /* a token presented for refresh, introspection, revocation */
#define OAUTH_MAX_SCOPE 2048          /* the whole scope string */
#define OAUTH_MAX_SCOPES 64           /* tokens in one scope string */
#define OAUTH_MAX_SCOPE_TOKEN 128
#define OAUTH_MAX_CODE 1024           /* an authorization code (ours are 43 characters) */
#define OAUTH_MAX_REDIRECT 2048       /* redirect_uri at the token endpoint */

/* An RFC 6749 §5.2 error: HTTP status, error code, description. */
struct oauth_error {
    int status;                 /* 400, or 401 for invalid_client */
    const char *error;          /* static string: "invalid_request", ... */
    const char *description;    /* static string or arena */
    bool basic_challenge;       /* answer with WWW-Authenticate: Basic */
};

enum oauth_auth_method {
    OAUTH_AUTH_NONE = 0,        /* client_id only (public clients) */
    OAUTH_AUTH_BASIC,           /* client_secret_basic */
    OAUTH_AUTH_POST,            /* client_secret_post */
};

struct oauth_client_auth {
    enum oauth_auth_method method;
    const char *client_id;
    const char *secret;         /* NULL for OAUTH_AUTH_NONE */
    size_t secret_len;
};

/* A space-separated list of RFC 6749 §3.3 scope tokens, de-duplicated. */
struct oauth_scopes {
    const char **items;
    size_t n;
};

struct oauth_token_request {
    struct http_params params;  /* every parameter, as parsed */
    struct oauth_client_auth auth;
    unsigned grant;             /* one GRANT_* bit (identity/tenant.h) */
    const char *grant_type;
    bool has_scope;             /* a scope parameter was sent */
    struct oauth_scopes scope;  /* as requested (empty when absent) */
    const char *username;       /* password grant */
    const char *password;
    size_t password_len;
    const char *refresh_token;  /* refresh_token grant */
    size_t refresh_token_len;
    const char *code;           /* authorization_code grant */
    size_t code_len;
    const char *redirect_uri;   /* NULL when absent */
    const char *code_verifier;  /* NULL when absent; else RFC 7636 §4.1 syntax */
    size_t code_verifier_len;
};

/* Parses n bytes of form body into *out (0) or fills *err (-EINVAL). */
int oauth_form_parse(const char *body, size_t n, struct arena *a, struct http_params *out,
                     struct oauth_error *err);

/* Client authentication from the Authorization header (may be NULL) and the
 * parsed form. 0 or -EINVAL with *err. */
int oauth_client_auth_parse(const char *authorization, const struct http_params *form,
                            struct arena *a, struct oauth_client_auth *out, struct oauth_error *err);

/* Parses and validates a scope string ("a b c"). Duplicates are dropped.
 * 0, or -EINVAL when malformed (empty token, double space, a character
 * outside %x21 / %x23-5B / %x5D-7E, too many or too long). */
int oauth_scope_parse(const char *s, size_t n, struct arena *a, struct oauth_scopes *out);
bool oauth_scopes_has(const struct oauth_scopes *s, const char *scope);
/* Space-joined, arena-allocated ("" for none). */
const char *oauth_scopes_join(const struct oauth_scopes *s, struct arena *a);

/* The whole token request: form + client auth + grant parameters. */
int oauth_token_request_parse(const char *body, size_t n, const char *authorization,
                              struct arena *a, struct oauth_token_request *out,
                              struct oauth_error *err);

#endif
