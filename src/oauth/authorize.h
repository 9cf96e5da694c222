/*
 * authorize — the pure half of /oauth2/authorize: the parser of an
 * authorization request (RFC 6749 §4.1.1, RFC 7636 PKCE, OIDC Core
 * §3.1.2.1) and the builder of the redirect back to the client.
 *
 * No I/O, no database, no clock: (parameters in) -> (struct out | error),
 * so it is unit-tested and fuzzed (tests/fuzz/fuzz_oauth_authorize.c).
 * Output strings are NUL-terminated and live in the caller's arena.
 *
 * Where an error may be sent. RFC 6749 §4.1.2.1: a request whose client_id
 * or redirect_uri is missing, repeated or malformed must never be redirected
 * (an open redirector otherwise); the user sees an error page. Every other
 * defect is answered by redirecting to the (registered) redirect_uri. The
 * parser therefore extracts client_id and redirect_uri first and keeps
 * them even when a later check fails; `err.redirect` says which kind of
 * error it found. Checks, in order (the first defect is reported):
 *   1. the parameter list: a NUL byte or an over-long value, a repeated
 *      parameter -> invalid_request (a page when it is client_id or
 *      redirect_uri, a redirect otherwise);
 *   2. client_id present and a valid client id; redirect_uri, when present,
 *      a syntactically valid absolute URL (the caller checks registration);
 *   3. request / request_uri -> request_not_supported / request_uri_not_supported;
 *      response_type missing -> invalid_request, not "code" ->
 *      unsupported_response_type; response_mode other than "query";
 *   4. scope syntax -> invalid_scope; PKCE: code_challenge_method must be
 *      S256 (plain is refused, and so is a challenge without a method, since
 *      RFC 7636 defaults that to plain), the challenge is 43 base64url
 *      characters; prompt values (none, login, consent, select_account;
 *      none alone); max_age a non-negative integer; nonce, state and
 *      login_hint within their length limits.
 * Unknown parameters are ignored (RFC 6749 §3.1): the login form sends the
 * request back together with its own fields.
 */
#ifndef REFUGE_OAUTH_AUTHORIZE_H
#define REFUGE_OAUTH_AUTHORIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/arena.h"
#include "core/buf.h"
#include "http/http.h"
#include "oauth/request.h"

#define OAUTH_MAX_STATE 2048
#define OAUTH_MAX_NONCE 512
#define OAUTH_MAX_REDIRECT_URI 2048
#define OAUTH_MAX_LOGIN_HINT 256
#define OAUTH_MAX_AUTHZ_PARAM 4096       /* any other parameter */
#define OAUTH_PKCE_CHALLENGE_LEN 43      /* base64url(SHA-256) */
#define OAUTH_PKCE_VERIFIER_MIN 43       /* RFC 7636 §4.1 */
#define OAUTH_PKCE_VERIFIER_MAX 128
#define OAUTH_MAX_AGE_MAX 315360000      /* ten years: anything larger is nonsense */

enum oauth_prompt {
    OAUTH_PROMPT_NONE = 1 << 0,
    OAUTH_PROMPT_LOGIN = 1 << 1,
    OAUTH_PROMPT_CONSENT = 1 << 2,
    OAUTH_PROMPT_SELECT_ACCOUNT = 1 << 3,
};

struct oauth_authz_request {
    const char *client_id;           /* NULL when missing or invalid */
    const char *redirect_uri;        /* NULL when absent (the client's only one may apply) */
    const char *response_type;
    const char *state;               /* NULL when absent */
    const char *nonce;               /* NULL when absent */
    bool has_scope;
    struct oauth_scopes scope;
    const char *code_challenge;      /* NULL: no PKCE */
    const char *code_challenge_method;   /* "S256" when code_challenge is set */
    unsigned prompt;                 /* enum oauth_prompt bits */
    int64_t max_age;                 /* -1 when absent */
    const char *login_hint;          /* NULL when absent */
};

struct oauth_authz_error {
    bool redirect;                   /* may be sent to the redirect_uri (after it is checked) */
    const char *error;               /* static string: "invalid_request", ... */
    const char *description;         /* static or arena */
};

/* Parses the parameters of an authorization request (query or form).
 * 0, or -EINVAL with *err; *out holds what was parsed up to the defect
 * (client_id and redirect_uri whenever they are valid). */
int oauth_authorize_parse(const struct http_params *ps, struct arena *a, struct oauth_authz_request *out,
                          struct oauth_authz_error *err);

/* RFC 7636 §4.1: 43..128 characters of [A-Za-z0-9-._~]. */
bool oauth_pkce_verifier_valid(const char *s, size_t n);
/* BASE64URL(SHA-256(verifier)) == challenge, compared in constant time. */
bool oauth_pkce_s256_matches(const char *verifier, size_t n, const char *challenge);

/* Appends `base` and then each (name, value) pair of the NULL-terminated
 * list kv (name0, value0, name1, value1, ..., NULL) whose value is not NULL,
 * percent-encoded, after '?' (or '&' when base already has a query).
 * 0 or -E2BIG when b's limit is reached. */
int oauth_redirect_build(struct buf *b, const char *base, const char *const *kv);

#endif
