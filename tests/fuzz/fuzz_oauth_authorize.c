/*
 * fuzz_oauth_authorize — arbitrary bytes as the query string (or form
 * body) of an authorization request, through the urlencoded parser and
 * oauth_authorize_parse, then the error/success redirect builder. Whatever
 * the input: no crash, no out-of-bounds read, no leak; an accepted request
 * holds what the endpoint relies on (response_type code, a valid client_id,
 * S256 whenever PKCE is present, prompt none alone, bounded lengths); a
 * refused one carries an error, and a page error (never redirected) is only
 * ever about client_id or redirect_uri.
 */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/arena.h"
#include "core/buf.h"
#include "identity/client.h"
#include "oauth/authorize.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct arena a;
    struct http_params ps;
    struct oauth_authz_request r;
    struct oauth_authz_error err;

    arena_init(&a);
    /* an exact-size copy so that ASan sees overreads */
    char *exact = arena_alloc(&a, size ? size : 1);
    memcpy(exact, data, size);
    if (http_urlencoded_parse(exact, size, &a, HTTP_MAX_PARAMS, &ps) < 0)
        goto out;

    int rc = oauth_authorize_parse(&ps, &a, &r, &err);
    if (rc == 0) {
        assert(r.client_id && client_id_valid(r.client_id, strlen(r.client_id)));
        assert(r.response_type && strcmp(r.response_type, "code") == 0);
        if (r.redirect_uri)
            assert(client_redirect_uri_valid(r.redirect_uri, strlen(r.redirect_uri)));
        if (r.code_challenge) {
            assert(strlen(r.code_challenge) == OAUTH_PKCE_CHALLENGE_LEN);
            assert(r.code_challenge_method && strcmp(r.code_challenge_method, "S256") == 0);
        } else {
            assert(!r.code_challenge_method);
        }
        assert(!(r.prompt & OAUTH_PROMPT_NONE) || r.prompt == OAUTH_PROMPT_NONE);
        assert(r.max_age >= -1 && r.max_age <= OAUTH_MAX_AGE_MAX);
        assert(!r.state || (strlen(r.state) > 0 && strlen(r.state) <= OAUTH_MAX_STATE));
        assert(!r.nonce || strlen(r.nonce) <= OAUTH_MAX_NONCE);
        assert(!r.login_hint || strlen(r.login_hint) <= OAUTH_MAX_LOGIN_HINT);
        assert(r.has_scope == (r.scope.n > 0));
    } else {
        assert(rc == -EINVAL);
        assert(err.error && err.description);
        if (!err.redirect)
            assert(strstr(err.description, "client_id") || strstr(err.description, "redirect_uri"));
        else
            assert(r.client_id);     /* a redirectable error always knows its client */
    }

    /* the redirect the endpoint would send */
    if (r.redirect_uri) {
        struct buf b;
        const char *kv[] = { "error", err.error ? err.error : "x", "error_description", err.description,
                             "state", r.state, "iss", "https://issuer.example/t/a", NULL };
        buf_init(&b, 64 * 1024);
        if (oauth_redirect_build(&b, r.redirect_uri, kv) == 0) {
            const char *u = buf_cstr(&b);
            assert(strncmp(u, r.redirect_uri, strlen(r.redirect_uri)) == 0);
            for (const char *p = u + strlen(r.redirect_uri); *p; p++)
                assert(*p > 0x20 && *p < 0x7f && *p != '#');   /* nothing raw after the base */
        }
        buf_free(&b);
    }

    /* PKCE on the raw bytes */
    if (oauth_pkce_verifier_valid(exact, size))
        (void)oauth_pkce_s256_matches(exact, size, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
out:
    arena_free(&a);
    return 0;
}
