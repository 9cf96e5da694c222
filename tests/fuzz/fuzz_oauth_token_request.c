/*
 * fuzz_oauth_token_request — arbitrary bytes through the token-endpoint
 * request parser (form body, client authentication, grant parameters,
 * scope syntax). Input layout: everything up to the first '\n' is the
 * Authorization header (absent when the line is empty), the rest is the
 * form body. Whatever the input, the parser must not crash, read out of
 * bounds or leak; an accepted request must hold what the endpoint relies on,
 * and a refused one must carry an RFC 6749 error.
 */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/arena.h"
#include "identity/tenant.h"
#include "oauth/request.h"

static void check_scopes(const struct oauth_scopes *s, struct arena *a)
{
    assert(s->n <= OAUTH_MAX_SCOPES);
    for (size_t i = 0; i < s->n; i++) {
        assert(s->items[i][0] != '\0');
        assert(strchr(s->items[i], ' ') == NULL);
        for (size_t j = 0; j < i; j++)
            assert(strcmp(s->items[i], s->items[j]) != 0);
    }
    /* join and re-parse: the same list */
    const char *joined = oauth_scopes_join(s, a);
    struct oauth_scopes again;
    assert(oauth_scope_parse(joined, strlen(joined), a, &again) == 0);
    assert(again.n == s->n);
    for (size_t i = 0; i < s->n; i++)
        assert(strcmp(again.items[i], s->items[i]) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct arena a;
    struct oauth_token_request r;
    struct oauth_error err;
    const char *nl = memchr(data, '\n', size);
    const char *authz = NULL;
    const char *body = (const char *)data;
    size_t n = size;

    arena_init(&a);
    if (nl) {
        size_t hlen = (size_t)(nl - (const char *)data);
        if (hlen > 0)
            authz = arena_strndup(&a, (const char *)data, hlen);   /* headers are C strings */
        body = nl + 1;
        n = size - hlen - 1;
    }
    /* the body is not NUL-terminated: copy it to an exact-size buffer so ASan sees overreads */
    char *exact = arena_alloc(&a, n ? n : 1);
    memcpy(exact, body, n);

    memset(&err, 0, sizeof(err));
    int rc = oauth_token_request_parse(exact, n, authz, &a, &r, &err);
    if (rc == 0) {
        assert(r.grant == GRANT_CLIENT_CREDENTIALS || r.grant == GRANT_PASSWORD || r.grant == GRANT_REFRESH_TOKEN ||
               r.grant == GRANT_AUTHORIZATION_CODE);
        assert(r.auth.client_id && r.auth.client_id[0] && strlen(r.auth.client_id) <= OAUTH_MAX_CLIENT_ID);
        assert((r.auth.method == OAUTH_AUTH_NONE) == (r.auth.secret == NULL));
        if (r.auth.secret)
            assert(strlen(r.auth.secret) == r.auth.secret_len && r.auth.secret_len <= OAUTH_MAX_SECRET);
        if (r.grant == GRANT_PASSWORD)
            assert(r.username && r.username[0] && r.password && strlen(r.password) == r.password_len);
        if (r.grant == GRANT_REFRESH_TOKEN)
            assert(r.refresh_token && strlen(r.refresh_token) == r.refresh_token_len);
        if (r.grant == GRANT_AUTHORIZATION_CODE) {
            assert(r.code && r.code[0] && strlen(r.code) == r.code_len);
            if (r.code_verifier)
                assert(r.code_verifier_len >= 43 && r.code_verifier_len <= 128 &&
                       strlen(r.code_verifier) == r.code_verifier_len);
        }
        assert(r.has_scope == (r.scope.n > 0));
        check_scopes(&r.scope, &a);
        for (size_t i = 0; i < r.params.n; i++)
            for (size_t j = 0; j < i; j++)
                assert(strcmp(r.params.items[i].name, r.params.items[j].name) != 0);
    } else {
        assert(rc == -EINVAL);
        assert(err.status == 400 || err.status == 401);
        assert(err.error && err.description);
        assert((err.status == 401) == (strcmp(err.error, "invalid_client") == 0));
    }

    /* the scope parser alone, on the raw bytes */
    struct oauth_scopes s;
    if (oauth_scope_parse(exact, n, &a, &s) == 0)
        check_scopes(&s, &a);
    arena_free(&a);
    return 0;
}
