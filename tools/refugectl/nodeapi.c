/*
 * nodeapi — tokens, status, promote and demote over the admin API (see
 * nodeapi.h). Status field names follow DESIGN.md §4; fields a node does not
 * send read as zero/false and the whole document stays available in
 * st->raw for `status --json` and for the fields newer nodes add.
 */
#include "nodeapi.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/base64.h"
#include "core/json.h"
#include "core/timeutil.h"
#include "core/xmalloc.h"
#include "http.h"

#define JSON_DEPTH 32

static json_t *parse_body(const struct ctl_http_resp *r)
{
    char e[128];
    if (!r->body.len)
        return NULL;
    return jsonx_parse(r->body.data, r->body.len, JSON_DEPTH, e, sizeof e);
}

void ctl_describe_answer(int status, const json_t *resp, char *out, size_t outlen)
{
    const char *e = resp ? jsonx_str(resp, "error", NULL) : NULL;
    const char *d = resp ? jsonx_str(resp, "error_description", NULL) : NULL;

    if (e && d)
        snprintf(out, outlen, "HTTP %d %s: %s", status, e, d);
    else if (e)
        snprintf(out, outlen, "HTTP %d %s", status, e);
    else
        snprintf(out, outlen, "HTTP %d", status);
}

int ctl_client_token(const struct ctl_url *u, const char *client_id, const char *secret, const char *scope,
                     int timeout_ms, char *out, size_t outlen, int64_t *expires_in_s, char *err, size_t errlen)
{
    struct ctl_http_resp r;
    struct buf form, cred;
    char *basic = NULL, *auth = NULL;
    json_t *j = NULL;
    int rc;

    buf_init(&form, 4096);
    buf_init(&cred, 4096);
    buf_puts(&form, "grant_type=client_credentials&scope=");
    ctl_form_escape(&form, scope);
    /* RFC 6749 §2.3.1: id and secret are form-encoded before base64 */
    ctl_form_escape(&cred, client_id);
    buf_putc(&cred, ':');
    ctl_form_escape(&cred, secret);
    basic = xmalloc(cred.len * 4 / 3 + 8);
    b64_encode(cred.data, cred.len, basic);
    auth = xasprintf("Basic %s", basic);

    struct ctl_http_req rq = { .method = "POST", .path = "/oauth2/token",
                               .content_type = "application/x-www-form-urlencoded", .authorization = auth,
                               .body = form.data, .body_len = form.len, .timeout_ms = timeout_ms };
    rc = ctl_http_do(u, &rq, &r);
    if (rc < 0) {
        snprintf(err, errlen, "token endpoint: %s", ctl_http_strerror(rc));
        goto out;
    }
    j = parse_body(&r);
    const char *at = j ? jsonx_str(j, "access_token", NULL) : NULL;
    if (r.status != 200 || !at) {
        char d[256];
        ctl_describe_answer(r.status, j, d, sizeof d);
        snprintf(err, errlen, "token endpoint: %s", d);
        rc = r.status == 401 || r.status == 400 ? -EACCES : -EPROTO;
        goto out;
    }
    if (strlen(at) >= outlen) {
        snprintf(err, errlen, "token endpoint: access token too long");
        rc = -E2BIG;
        goto out;
    }
    strcpy(out, at);
    if (expires_in_s)
        *expires_in_s = jsonx_int(j, "expires_in", 300);
    rc = 0;
out:
    json_decref(j);
    ctl_http_resp_free(&r);
    buf_free(&form);
    buf_free(&cred);
    free(basic);
    free(auth);
    return rc;
}

int ctl_node_token(struct ctl_cluster *c, struct ctl_node *n, int timeout_ms, char *err, size_t errlen)
{
    int64_t exp = 0;
    int rc;

    if (n->token[0] && time_mono_us() < n->token_expiry_mono_us)
        return 0;
    n->token[0] = '\0';
    rc = ctl_client_token(&n->url, c->client_id, c->client_secret, "refuge:admin", timeout_ms, n->token,
                          sizeof n->token, &exp, err, errlen);
    if (rc < 0) {
        n->token[0] = '\0';
        return rc;
    }
    /* renew 30 s before expiry, and never trust a lifetime below a minute */
    exp = exp > 90 ? exp - 30 : 60;
    n->token_expiry_mono_us = time_mono_us() + exp * 1000000;
    return 0;
}

int ctl_node_call(struct ctl_cluster *c, struct ctl_node *n, const char *method, const char *path, json_t *body,
                  int timeout_ms, int *status, json_t **resp, char *err, size_t errlen)
{
    int64_t deadline = time_mono_us() + (int64_t)timeout_ms * 1000;
    char *text = body ? jsonx_dump(body) : NULL;
    int rc = 0;

    *status = 0;
    *resp = NULL;
    for (int attempt = 0; attempt < 2; attempt++) {
        int left = (int)((deadline - time_mono_us()) / 1000);
        struct ctl_http_resp r;
        char *auth;

        if (left <= 0) {
            rc = -ETIMEDOUT;
            snprintf(err, errlen, "%s: timed out", n->name);
            goto out;
        }
        if ((rc = ctl_node_token(c, n, left, err, errlen)) < 0)
            goto out;
        left = (int)((deadline - time_mono_us()) / 1000);
        if (left <= 0)
            left = 1;
        auth = xasprintf("Bearer %s", n->token);
        struct ctl_http_req rq = { .method = method, .path = path, .authorization = auth,
                                   .content_type = text ? "application/json" : NULL, .body = text,
                                   .body_len = text ? strlen(text) : 0, .timeout_ms = left };
        rc = ctl_http_do(&n->url, &rq, &r);
        free(auth);
        if (rc < 0) {
            snprintf(err, errlen, "%s %s: %s", method, path, ctl_http_strerror(rc));
            ctl_http_resp_free(&r);
            goto out;
        }
        *status = r.status;
        json_decref(*resp);
        *resp = parse_body(&r);
        ctl_http_resp_free(&r);
        if (r.status != 401)
            break;
        n->token[0] = '\0';   /* stale token (node restored from elsewhere?): once more */
    }
    rc = 0;
out:
    free(text);
    return rc;
}

static void copy_str(const json_t *j, const char *key, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s", jsonx_str(j, key, ""));
}

void ctl_status_fetch(struct ctl_cluster *c, struct ctl_node *n, int timeout_ms, struct ctl_status *st)
{
    int64_t t0 = time_mono_us();
    json_t *j = NULL, *peer;
    int status = 0;

    memset(st, 0, sizeof *st);
    st->rc = ctl_node_call(c, n, "GET", "/admin/v1/node", NULL, timeout_ms, &status, &j, st->error,
                           sizeof st->error);
    st->rtt_ms = (time_mono_us() - t0) / 1000;
    st->http_status = status;
    if (st->rc < 0)
        goto fail;
    if (status != 200 || !json_is_object(j)) {
        ctl_describe_answer(status, j, st->error, sizeof st->error);
        st->rc = status == 401 || status == 403 ? -EACCES : -EPROTO;
        goto fail;
    }
    st->raw = j;
    copy_str(j, "name", st->name, sizeof st->name);
    copy_str(j, "region", st->region, sizeof st->region);
    copy_str(j, "role", st->role, sizeof st->role);
    copy_str(j, "mode", st->mode, sizeof st->mode);
    st->epoch = jsonx_int(j, "epoch", 0);
    st->lsn = jsonx_int(j, "lsn", 0);
    st->lsn_epoch = jsonx_int(j, "lsn_epoch", -1);
    st->rpo_target_ms = jsonx_int(j, "rpo_target_ms", 0);
    st->rpo_exposure_ms = jsonx_int(j, "rpo_exposure_ms", 0);
    json_t *dv = json_object_get(j, "diverged");
    st->diverged = json_is_true(dv) || (json_is_string(dv) && json_string_length(dv) > 0) ||
                   (json_is_object(dv) && json_object_size(dv) > 0);
    peer = json_object_get(j, "peer");
    if (json_is_object(peer)) {
        st->peer_connected = jsonx_bool(peer, "connected", false);
        st->acked_lsn = jsonx_int(peer, "acked_lsn", 0);
        st->lag_records = jsonx_int(peer, "lag_records", 0);
        st->lag_bytes = jsonx_int(peer, "lag_bytes", 0);
        st->lag_ms = jsonx_int(peer, "lag_ms", 0);
    }
    return;
fail:
    json_decref(j);
}

void ctl_status_free(struct ctl_status *st)
{
    json_decref(st->raw);
    st->raw = NULL;
}

bool ctl_status_is_active(const struct ctl_status *s)
{
    return s->rc == 0 && strcmp(s->role, "active") == 0;
}

bool ctl_status_is_standby(const struct ctl_status *s)
{
    return s->rc == 0 && strcmp(s->role, "standby") == 0;
}

int ctl_probe(const struct ctl_url *u, const char *path, int timeout_ms, json_t **resp)
{
    struct ctl_http_req rq = { .method = "GET", .path = path, .timeout_ms = timeout_ms };
    struct ctl_http_resp r;
    int rc = ctl_http_do(u, &rq, &r);

    if (resp)
        *resp = rc == 0 ? parse_body(&r) : NULL;
    if (rc == 0)
        rc = r.status;
    ctl_http_resp_free(&r);
    return rc;
}
