/*
 * request — the token-endpoint request parser (see request.h for the order
 * of checks). Pure: it allocates from the caller's arena and touches
 * nothing else, which is what lets the fuzzer hammer it.
 */
#include "oauth/request.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include "core/base64.h"
#include "identity/tenant.h"

#define BASIC_MAX 4096             /* longest Authorization: Basic value we decode */

static int fail(struct oauth_error *err, int status, const char *code, const char *desc)
{
    err->status = status;
    err->error = code;
    err->description = desc;
    err->basic_challenge = status == 401;
    return -EINVAL;
}

static int invalid_request(struct oauth_error *err, const char *desc)
{
    return fail(err, 400, "invalid_request", desc);
}

/* ------------------------------------------------------------------ form */

struct limit {
    const char *name;
    size_t max;
};

static const struct limit limits[] = {
    { "client_id", OAUTH_MAX_CLIENT_ID },
    { "client_secret", OAUTH_MAX_SECRET },
    { "username", OAUTH_MAX_USERNAME },
    { "password", OAUTH_MAX_PASSWORD },
    { "refresh_token", OAUTH_MAX_TOKEN },
    { "token", OAUTH_MAX_TOKEN },
    { "scope", OAUTH_MAX_SCOPE },
    { "code", OAUTH_MAX_CODE },
    { "redirect_uri", OAUTH_MAX_REDIRECT },
    { "code_verifier", 128 },
};

#define OTHER_PARAM_MAX 4096

int oauth_form_parse(const char *body, size_t n, struct arena *a, struct http_params *out,
                     struct oauth_error *err)
{
    int rc = http_urlencoded_parse(body ? body : "", body ? n : 0, a, HTTP_MAX_PARAMS, out);
    if (rc == -E2BIG)
        return invalid_request(err, "too many parameters");
    if (rc < 0)
        return invalid_request(err, "malformed form body");
    for (size_t i = 0; i < out->n; i++) {
        const struct http_param *p = &out->items[i];
        for (size_t j = 0; j < i; j++)
            if (strcmp(out->items[j].name, p->name) == 0)
                return invalid_request(err, arena_sprintf(a, "parameter %.64s: repeated", p->name));
        size_t max = OTHER_PARAM_MAX;
        for (size_t k = 0; k < sizeof(limits) / sizeof(limits[0]); k++)
            if (strcmp(limits[k].name, p->name) == 0)
                max = limits[k].max;
        if (p->value_len > max)
            return invalid_request(err, arena_sprintf(a, "parameter %.64s: too long", p->name));
        if (memchr(p->value, '\0', p->value_len))
            return invalid_request(err, arena_sprintf(a, "parameter %.64s: contains NUL", p->name));
    }
    return 0;
}

/* ---------------------------------------------------------- client auth */

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* application/x-www-form-urlencoded decoding of one Basic credential part
 * (RFC 6749 §2.3.1). NUL bytes are refused. 0 or -EINVAL. */
static int form_unescape(const char *p, size_t n, struct arena *a, char **out, size_t *outlen)
{
    char *d = arena_alloc(a, n + 1);
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '+') {
            d[j++] = ' ';
        } else if (c == '%') {
            if (n - i < 3)
                return -EINVAL;
            int hi = hexval((unsigned char)p[i + 1]), lo = hexval((unsigned char)p[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -EINVAL;
            d[j++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            d[j++] = (char)c;
        }
    }
    d[j] = '\0';
    *out = d;
    *outlen = j;
    return 0;
}

static int parse_basic(const char *authorization, struct arena *a, struct oauth_client_auth *out,
                       struct oauth_error *err)
{
    const char *p = authorization;
    while (*p == ' ' || *p == '\t')
        p++;
    if (strncasecmp(p, "Basic", 5) != 0 || (p[5] != ' ' && p[5] != '\t'))
        return fail(err, 401, "invalid_client", "unsupported authentication scheme; use Basic");
    p += 6;
    while (*p == ' ' || *p == '\t')
        p++;
    size_t n = strlen(p);
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    if (n == 0 || n > BASIC_MAX)
        return fail(err, 401, "invalid_client", "malformed Basic credentials");
    unsigned char *raw = arena_alloc(a, B64_DECLEN(n) + 1);
    size_t rawlen = 0;
    if (b64_decode(p, n, raw, &rawlen) < 0)
        return fail(err, 401, "invalid_client", "malformed Basic credentials");
    const char *colon = memchr(raw, ':', rawlen);
    if (!colon)
        return fail(err, 401, "invalid_client", "malformed Basic credentials");
    size_t idlen = (size_t)(colon - (const char *)raw);
    char *id, *secret;
    size_t id_dec, secret_dec;
    if (form_unescape((const char *)raw, idlen, a, &id, &id_dec) < 0 ||
        form_unescape(colon + 1, rawlen - idlen - 1, a, &secret, &secret_dec) < 0 ||
        memchr(id, '\0', id_dec) || memchr(secret, '\0', secret_dec))
        return fail(err, 401, "invalid_client", "malformed Basic credentials");
    if (id_dec == 0 || id_dec > OAUTH_MAX_CLIENT_ID || secret_dec > OAUTH_MAX_SECRET)
        return fail(err, 401, "invalid_client", "malformed Basic credentials");
    out->method = OAUTH_AUTH_BASIC;
    out->client_id = id;
    out->secret = secret;
    out->secret_len = secret_dec;
    return 0;
}

int oauth_client_auth_parse(const char *authorization, const struct http_params *form,
                            struct arena *a, struct oauth_client_auth *out, struct oauth_error *err)
{
    const char *body_id = http_params_get(form, "client_id");
    const char *body_secret = http_params_get(form, "client_secret");

    memset(out, 0, sizeof(*out));
    if (authorization && *authorization) {
        if (body_secret)
            return invalid_request(err, "client authenticated with both client_secret_basic and "
                                        "client_secret_post");
        int rc = parse_basic(authorization, a, out, err);
        if (rc < 0)
            return rc;
        if (body_id && strcmp(body_id, out->client_id) != 0)
            return invalid_request(err, "client_id differs from the Basic credentials");
        return 0;
    }
    if (body_secret && !body_id)
        return invalid_request(err, "client_secret without client_id");
    if (!body_id || !*body_id)
        return fail(err, 401, "invalid_client", "client authentication required");
    out->client_id = body_id;
    if (body_secret) {
        out->method = OAUTH_AUTH_POST;
        out->secret = body_secret;
        out->secret_len = strlen(body_secret);
    } else {
        out->method = OAUTH_AUTH_NONE;
    }
    return 0;
}

/* ----------------------------------------------------------------- scope */

static bool scope_char(unsigned char c)
{
    return c == 0x21 || (c >= 0x23 && c <= 0x5B) || (c >= 0x5D && c <= 0x7E);
}

int oauth_scope_parse(const char *s, size_t n, struct arena *a, struct oauth_scopes *out)
{
    out->items = NULL;
    out->n = 0;
    if (n == 0)
        return 0;
    if (n > OAUTH_MAX_SCOPE)
        return -EINVAL;
    const char **items = arena_alloc(a, OAUTH_MAX_SCOPES * sizeof(*items));
    size_t count = 0, start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != ' ') {
            if (!scope_char((unsigned char)s[i]))
                return -EINVAL;
            continue;
        }
        size_t len = i - start;
        if (len == 0 || len > OAUTH_MAX_SCOPE_TOKEN)
            return -EINVAL;
        bool dup = false;
        for (size_t k = 0; k < count && !dup; k++)
            dup = strlen(items[k]) == len && memcmp(items[k], s + start, len) == 0;
        if (!dup) {
            if (count == OAUTH_MAX_SCOPES)
                return -EINVAL;
            items[count++] = arena_strndup(a, s + start, len);
        }
        start = i + 1;
    }
    out->items = items;
    out->n = count;
    return 0;
}

bool oauth_scopes_has(const struct oauth_scopes *s, const char *scope)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->items[i], scope) == 0)
            return true;
    return false;
}

const char *oauth_scopes_join(const struct oauth_scopes *s, struct arena *a)
{
    size_t len = 0;
    for (size_t i = 0; i < s->n; i++)
        len += strlen(s->items[i]) + 1;
    char *out = arena_alloc(a, len + 1), *p = out;
    for (size_t i = 0; i < s->n; i++) {
        size_t k = strlen(s->items[i]);
        if (i)
            *p++ = ' ';
        memcpy(p, s->items[i], k);
        p += k;
    }
    *p = '\0';
    return out;
}

/* --------------------------------------------------------- token request */

/* RFC 7636 §4.1: code-verifier = 43*128unreserved */
static bool verifier_valid(const char *s, size_t n)
{
    if (n < 43 || n > 128)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
              c == '.' || c == '_' || c == '~'))
            return false;
    }
    return true;
}

static const char *required(const struct http_params *form, const char *name)
{
    const char *v = http_params_get(form, name);
    return v && *v ? v : NULL;
}

int oauth_token_request_parse(const char *body, size_t n, const char *authorization,
                              struct arena *a, struct oauth_token_request *out,
                              struct oauth_error *err)
{
    memset(out, 0, sizeof(*out));
    int rc = oauth_form_parse(body, n, a, &out->params, err);
    if (rc < 0)
        return rc;
    rc = oauth_client_auth_parse(authorization, &out->params, a, &out->auth, err);
    if (rc < 0)
        return rc;

    const struct http_params *f = &out->params;
    out->grant_type = required(f, "grant_type");
    if (!out->grant_type)
        return invalid_request(err, "grant_type is required");
    out->grant = grant_bit(out->grant_type);
    switch (out->grant) {
    case GRANT_CLIENT_CREDENTIALS:
        break;
    case GRANT_PASSWORD:
        out->username = required(f, "username");
        out->password = http_params_get(f, "password");
        if (!out->username)
            return invalid_request(err, "username is required");
        if (!out->password)
            return invalid_request(err, "password is required");
        out->password_len = strlen(out->password);
        break;
    case GRANT_REFRESH_TOKEN:
        out->refresh_token = required(f, "refresh_token");
        if (!out->refresh_token)
            return invalid_request(err, "refresh_token is required");
        out->refresh_token_len = strlen(out->refresh_token);
        break;
    case GRANT_AUTHORIZATION_CODE:
        out->code = required(f, "code");
        if (!out->code)
            return invalid_request(err, "code is required");
        out->code_len = strlen(out->code);
        out->redirect_uri = required(f, "redirect_uri");
        out->code_verifier = http_params_get(f, "code_verifier");
        if (out->code_verifier) {
            out->code_verifier_len = strlen(out->code_verifier);
            if (!verifier_valid(out->code_verifier, out->code_verifier_len))
                return invalid_request(err, "code_verifier must be 43-128 characters of A-Z a-z 0-9 - . _ ~");
        }
        break;
    default:
        out->grant = 0;
        return fail(err, 400, "unsupported_grant_type",
                     arena_sprintf(a, "grant_type %.64s is not supported", out->grant_type));
    }

    const char *scope = http_params_get(f, "scope");
    if (scope && *scope) {       /* an empty scope is no scope: the defaults apply */
        out->has_scope = true;
        if (oauth_scope_parse(scope, strlen(scope), a, &out->scope) < 0)
            return fail(err, 400, "invalid_scope", "malformed scope");
    }
    return 0;
}
