/*
 * drill_load — the drill's client: load through the front door that records
 * every acknowledged write, and the checks afterwards (is each acknowledged
 * write on the node that is active now?) plus a digest of the data each
 * node serves.
 *
 * What the load writes (each an acknowledged write when it gets a 2xx):
 *   token    client_credentials for the drill's own client, opaque format:
 *            one opaque_tokens row, checked by introspection.
 *   user     SCIM user create (when /scim2/Users answers): checked by GET.
 *   chain    password grant for the drill user: a new refresh-token family.
 *   refresh  refresh rotation: the old token rotated, a new one issued.
 * A refresh family is checked through its last token: if introspection
 * finds it active, every rotation before it is there too (each rotation's
 * transaction rotates its predecessor). When a rotation fails, the client
 * does not know whether it happened: it asks (introspection, a read) until
 * it gets an answer. Still active: nothing happened, the family goes on.
 * Inactive: the rotation happened unacknowledged, or the token was lost; a
 * client cannot tell which, so the family is abandoned and its writes are
 * counted as unverifiable, never as lost.
 *
 * Requests go through refugectl's own HTTP client on a fresh connection each
 * (what a client sees during a failover: refused connections and 503s, not
 * a stuck keep-alive connection), paced to the requested rate.
 */
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/base64.h"
#include "core/json.h"
#include "core/rand.h"
#include "core/timeutil.h"
#include "core/xmalloc.h"
#include "drill.h"
#include "http.h"
#include "nodeapi.h"

#define LOAD_TIMEOUT_MS 2000
#define VERIFY_THREADS 4

const char *drill_kind_name(int kind)
{
    static const char *const names[] = { "token", "user", "chain", "refresh" };
    return kind >= 0 && kind < DK_N ? names[kind] : "?";
}

int64_t drill_now(const struct drill *d)
{
    return time_mono_us() - d->start_mono;
}

/* ------------------------------------------------------------ requests */

struct answer {
    int status;              /* HTTP status or negative transport code */
    json_t *j;
};

static char *basic_auth(const char *id, const char *secret)
{
    struct buf cred;
    char *b64, *out;

    buf_init(&cred, 1024);
    ctl_form_escape(&cred, id);
    buf_putc(&cred, ':');
    ctl_form_escape(&cred, secret);
    b64 = xmalloc(cred.len * 4 / 3 + 8);
    b64_encode(cred.data, cred.len, b64);
    out = xasprintf("Basic %s", b64);
    free(b64);
    buf_free(&cred);
    return out;
}

static void call(const struct ctl_url *u, const char *method, const char *path, const char *ctype,
                 const char *auth, const char *body, int timeout_ms, struct answer *a)
{
    struct ctl_http_req rq = { .method = method, .path = path, .content_type = ctype, .authorization = auth,
                               .body = body, .body_len = body ? strlen(body) : 0, .timeout_ms = timeout_ms };
    struct ctl_http_resp r;
    char e[64];
    int rc = ctl_http_do(u, &rq, &r);

    a->j = NULL;
    a->status = rc < 0 ? rc : r.status;
    if (rc == 0 && r.body.len)
        a->j = jsonx_parse(r.body.data, r.body.len, 32, e, sizeof e);
    ctl_http_resp_free(&r);
}

static void bearer_of(struct drill *d, char *out, size_t outlen)
{
    pthread_mutex_lock(&d->token_mu);
    snprintf(out, outlen, "Bearer %s", d->admin_token);
    pthread_mutex_unlock(&d->token_mu);
}

/* A fresh admin token through the front door (the old one may have expired). */
static int renew_admin_token(struct drill *d, const struct ctl_url *u)
{
    char tok[CTL_TOKEN_MAX], err[256];
    int rc = ctl_client_token(u, d->c->client_id, d->c->client_secret, "refuge:admin", LOAD_TIMEOUT_MS, tok,
                              sizeof tok, NULL, err, sizeof err);
    if (rc == 0) {
        pthread_mutex_lock(&d->token_mu);
        snprintf(d->admin_token, sizeof d->admin_token, "%s", tok);
        pthread_mutex_unlock(&d->token_mu);
    }
    return rc;
}

/* -------------------------------------------------------------- setup */

int drill_setup_load(struct drill *d, char *err, size_t errlen)
{
    const struct ctl_url *u = &d->c->front;
    struct answer a = { 0 };
    char auth[CTL_TOKEN_MAX + 16], *body = NULL, *basic = NULL;
    unsigned char rnd[12];
    int rc = -1;

    pthread_mutex_init(&d->token_mu, NULL);
    if (renew_admin_token(d, u) < 0) {
        snprintf(err, errlen, "no admin token from the front door %s", d->c->frontend_url);
        return -1;
    }
    bearer_of(d, auth, sizeof auth);
    call(u, "GET", "/scim2/Users?count=0", NULL, auth, NULL, LOAD_TIMEOUT_MS, &a);
    d->scim = a.status == 200;
    json_decref(a.j);

    /* the drill's own client */
    rand_bytes(rnd, sizeof rnd);
    body = xasprintf("{\"name\":\"refuge-drill-%02x%02x%02x%02x\",\"type\":\"confidential\",\"grant_types\":"
                     "[\"client_credentials\"%s],\"scopes\":[\"drill\"],\"token_format\":\"opaque\"}",
                     rnd[0], rnd[1], rnd[2], rnd[3], d->scim ? ",\"password\",\"refresh_token\"" : "");
    call(u, "POST", "/admin/v1/clients", "application/json", auth, body, 5000, &a);
    const char *id = jsonx_str(a.j, "client_id", NULL), *secret = jsonx_str(a.j, "client_secret", NULL);
    if (a.status != 201 && a.status != 200) {
        ctl_describe_answer(a.status, a.j, err, errlen);
        goto out;
    }
    if (!id || !secret) {
        snprintf(err, errlen, "client create answered without client_id/client_secret");
        goto out;
    }
    snprintf(d->client_id, sizeof d->client_id, "%s", id);
    snprintf(d->client_secret, sizeof d->client_secret, "%s", secret);
    json_decref(a.j);
    a.j = NULL;

    /* a user for refresh-token chains, when SCIM and the password grant work */
    if (d->scim) {
        snprintf(d->user_name, sizeof d->user_name, "drill-%02x%02x%02x%02x", rnd[4], rnd[5], rnd[6], rnd[7]);
        snprintf(d->user_password, sizeof d->user_password, "Dr1ll-%02x%02x%02x%02x-pass", rnd[8], rnd[9], rnd[10],
                 rnd[11]);
        free(body);
        body = xasprintf("{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:User\"],\"userName\":\"%s\","
                         "\"password\":\"%s\"}", d->user_name, d->user_password);
        call(u, "POST", "/scim2/Users", "application/scim+json", auth, body, 5000, &a);
        bool made = a.status == 201;
        if (!made)
            ctl_describe_answer(a.status, a.j, d->refresh_why, sizeof d->refresh_why);
        json_decref(a.j);
        a.j = NULL;
        if (made) {
            struct buf f;
            buf_init(&f, 1024);
            buf_puts(&f, "grant_type=password&username=");
            ctl_form_escape(&f, d->user_name);
            buf_puts(&f, "&password=");
            ctl_form_escape(&f, d->user_password);
            basic = basic_auth(d->client_id, d->client_secret);
            call(u, "POST", "/oauth2/token", "application/x-www-form-urlencoded", basic, f.data, 5000, &a);
            d->refresh = a.status == 200 && jsonx_str(a.j, "refresh_token", NULL) != NULL;
            if (!d->refresh)
                ctl_describe_answer(a.status, a.j, d->refresh_why, sizeof d->refresh_why);
            buf_free(&f);
        }
    }
    rc = 0;
out:
    json_decref(a.j);
    free(body);
    free(basic);
    return rc;
}

/* ------------------------------------------------------------- workers */

static struct drill_ev *push(struct drill_worker *w)
{
    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 1024;
        w->ev = xrealloc(w->ev, w->cap * sizeof *w->ev);
    }
    struct drill_ev *e = &w->ev[w->n++];
    memset(e, 0, sizeof *e);
    return e;
}

static void do_token(struct drill_worker *w, const char *basic)
{
    struct drill *d = w->d;
    struct answer a;
    struct drill_ev *e = push(w);

    e->kind = DK_TOKEN;
    e->t0 = drill_now(d);
    call(&d->c->front, "POST", "/oauth2/token", "application/x-www-form-urlencoded", basic,
         "grant_type=client_credentials&scope=drill", LOAD_TIMEOUT_MS, &a);
    e->t1 = drill_now(d);
    e->status = a.status;
    const char *t = jsonx_str(a.j, "access_token", NULL);
    if (a.status == 200 && t)
        snprintf(e->id, sizeof e->id, "%s", t);
    else if (a.status == 200)
        e->status = -EPROTO;
    json_decref(a.j);
}

static void do_user(struct drill_worker *w, uint64_t seq)
{
    struct drill *d = w->d;
    char auth[CTL_TOKEN_MAX + 16], body[256];
    struct answer a;
    struct drill_ev *e = push(w);

    e->kind = DK_USER;
    snprintf(body, sizeof body,
             "{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:User\"],\"userName\":\"%s-w%d-%llu\"}",
             d->user_name, w->idx, (unsigned long long)seq);
    bearer_of(d, auth, sizeof auth);
    e->t0 = drill_now(d);
    call(&d->c->front, "POST", "/scim2/Users", "application/scim+json", auth, body, LOAD_TIMEOUT_MS, &a);
    e->t1 = drill_now(d);
    e->status = a.status;
    const char *id = jsonx_str(a.j, "id", NULL);
    if (a.status == 201 && id)
        snprintf(e->id, sizeof e->id, "%s", id);
    else if (a.status == 201)
        e->status = -EPROTO;
    json_decref(a.j);
    if (a.status == 401)
        renew_admin_token(d, &d->c->front);
}

static void do_refresh(struct drill_worker *w, const char *basic)
{
    struct drill *d = w->d;
    struct answer a;
    struct buf f;
    bool start = !w->rt[0];
    struct drill_ev *e = push(w);

    buf_init(&f, 1024);
    if (start) {
        w->chain++;
        buf_puts(&f, "grant_type=password&username=");
        ctl_form_escape(&f, d->user_name);
        buf_puts(&f, "&password=");
        ctl_form_escape(&f, d->user_password);
    } else {
        buf_puts(&f, "grant_type=refresh_token&refresh_token=");
        ctl_form_escape(&f, w->rt);
    }
    e->kind = start ? DK_CHAIN : DK_REFRESH;
    e->chain = ((uint32_t)w->idx << 20) | (w->chain & 0xfffff);
    e->t0 = drill_now(d);
    call(&d->c->front, "POST", "/oauth2/token", "application/x-www-form-urlencoded", basic, f.data,
         LOAD_TIMEOUT_MS, &a);
    e->t1 = drill_now(d);
    e->status = a.status;
    const char *rt = jsonx_str(a.j, "refresh_token", NULL);
    if (a.status == 200 && rt) {
        snprintf(e->id, sizeof e->id, "%s", rt);
        snprintf(w->rt, sizeof w->rt, "%s", rt);
        w->rt_ev = w->n - 1;
    } else {
        if (a.status == 200)
            e->status = -EPROTO;
        if (start)
            w->rt[0] = '\0';
        else
            w->rt_unsure = true;      /* resolved by check_tip() before the next rotation */
    }
    json_decref(a.j);
    buf_free(&f);
}

/* After a failed rotation: is w->rt still its family's active tip? Asks
 * through the front door; an answer that is not a definite yes or no leaves
 * the question open for the next turn. */
static void check_tip(struct drill_worker *w, const char *basic)
{
    struct drill *d = w->d;
    struct answer a;
    struct buf f;

    buf_init(&f, 512);
    buf_puts(&f, "token_type_hint=refresh_token&token=");
    ctl_form_escape(&f, w->rt);
    call(&d->c->front, "POST", "/oauth2/introspect", "application/x-www-form-urlencoded", basic, f.data,
         LOAD_TIMEOUT_MS, &a);
    if (a.status == 200) {
        w->rt_unsure = false;
        if (!jsonx_bool(a.j, "active", false))
            w->rt[0] = '\0';           /* abandon: its last writes are unverifiable */
    }
    json_decref(a.j);
    buf_free(&f);
}

static void *worker_main(void *arg)
{
    struct drill_worker *w = arg;
    struct drill *d = w->d;
    char *basic = basic_auth(d->client_id, d->client_secret);
    int64_t interval = (int64_t)d->threads * 1000000 / (d->rate > 0 ? d->rate : 1);
    int64_t next = time_mono_us() + (interval * w->idx) / d->threads;
    uint64_t seq = 0;

    while (!atomic_load(&d->stop)) {
        int64_t now = time_mono_us();
        if (next > now)
            time_sleep_us(next - now);
        next += interval;
        if (next < time_mono_us() - interval)
            next = time_mono_us();          /* slow answers: do not burst afterwards */
        if (atomic_load(&d->stop))
            break;
        if (w->refresh_role && w->rt_unsure)
            check_tip(w, basic);
        else if (w->refresh_role)
            do_refresh(w, basic);
        else if (d->scim && seq % 3 == 2)
            do_user(w, seq);
        else
            do_token(w, basic);
        seq++;
    }
    if (w->refresh_role && w->rt[0] && !w->rt_unsure && w->rt_ev < w->n)
        w->ev[w->rt_ev].chain_end = 1;      /* held cleanly to the end: checkable */
    free(basic);
    return NULL;
}

int drill_start_load(struct drill *d)
{
    atomic_store(&d->stop, false);
    for (int i = 0; i < d->threads; i++) {
        struct drill_worker *w = &d->w[i];
        w->idx = i;
        w->d = d;
        w->refresh_role = d->refresh && i == d->threads - 1 && d->threads > 1;
        if (pthread_create(&w->th, NULL, worker_main, w) != 0) {
            atomic_store(&d->stop, true);
            for (int k = 0; k < i; k++)
                pthread_join(d->w[k].th, NULL);
            return -EAGAIN;
        }
    }
    return 0;
}

void drill_stop_load(struct drill *d)
{
    atomic_store(&d->stop, true);
    for (int i = 0; i < d->threads; i++)
        pthread_join(d->w[i].th, NULL);
}

/* -------------------------------------------------------------- verify */

struct verify_job {
    struct drill *d;
    struct ctl_node *n;
    atomic_size_t next;        /* global index over all workers' events */
    atomic_int errors;
};

static struct drill_ev *event_at(struct drill *d, size_t k)
{
    for (int i = 0; i < d->threads; i++) {
        if (k < d->w[i].n)
            return &d->w[i].ev[k];
        k -= d->w[i].n;
    }
    return NULL;
}

static bool acked(const struct drill_ev *e)
{
    return e->status >= 200 && e->status < 300 && e->id[0];
}

static int check_one(struct drill *d, struct ctl_node *n, struct drill_ev *e, const char *basic,
                     const char *bearer)
{
    struct answer a;
    char path[160];
    struct buf f;
    int st = CHK_NONE;

    for (int attempt = 0; attempt < 3 && st == CHK_NONE; attempt++) {
        if (e->kind == DK_USER) {
            snprintf(path, sizeof path, "/scim2/Users/%s?attributes=id", e->id);
            call(&n->url, "GET", path, NULL, bearer, NULL, 5000, &a);
            if (a.status == 200)
                st = CHK_PRESENT;
            else if (a.status == 404)
                st = CHK_MISSING;
        } else {
            buf_init(&f, 512);
            buf_puts(&f, "token=");
            ctl_form_escape(&f, e->id);
            buf_puts(&f, e->kind == DK_TOKEN ? "&token_type_hint=access_token" : "&token_type_hint=refresh_token");
            call(&n->url, "POST", "/oauth2/introspect", "application/x-www-form-urlencoded", basic, f.data, 5000,
                 &a);
            buf_free(&f);
            if (a.status == 200)
                st = jsonx_bool(a.j, "active", false) ? CHK_PRESENT : CHK_MISSING;
        }
        json_decref(a.j);
    }
    return st;
}

static void *verify_main(void *arg)
{
    struct verify_job *j = arg;
    struct drill *d = j->d;
    char *basic = basic_auth(d->client_id, d->client_secret);
    char bearer[CTL_TOKEN_MAX + 16];
    size_t k;

    snprintf(bearer, sizeof bearer, "Bearer %s", j->n->token);
    while ((k = atomic_fetch_add(&j->next, 1)), true) {
        struct drill_ev *e = event_at(d, k);
        if (!e)
            break;
        if (!acked(e))
            continue;
        if ((e->kind == DK_CHAIN || e->kind == DK_REFRESH) && !e->chain_end)
            continue;                   /* resolved through its family's last token below */
        int st = check_one(d, j->n, e, basic, bearer);
        if (st == CHK_NONE)
            atomic_fetch_add(&j->errors, 1);
        e->check = (uint8_t)(st == CHK_NONE ? CHK_UNVERIFIABLE : st);
    }
    free(basic);
    return NULL;
}

int drill_verify(struct drill *d, struct ctl_node *n, char *err, size_t errlen)
{
    struct verify_job j = { .d = d, .n = n };
    pthread_t th[VERIFY_THREADS];
    int started = 0;

    err[0] = '\0';
    if (ctl_node_token(d->c, n, (int)d->c->request_timeout_ms, err, errlen) < 0)
        return -1;
    atomic_init(&j.next, 0);
    atomic_init(&j.errors, 0);
    for (int i = 0; i < VERIFY_THREADS; i++)
        if (pthread_create(&th[i], NULL, verify_main, &j) == 0)
            started++;
    if (!started)
        verify_main(&j);
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);

    /* refresh families: every write takes its family's verdict when the
     * family ended cleanly; otherwise it cannot be checked from outside */
    for (int i = 0; i < d->threads; i++) {
        struct drill_worker *w = &d->w[i];
        for (size_t k = 0; k < w->n; k++) {
            struct drill_ev *e = &w->ev[k];
            if (!acked(e) || (e->kind != DK_CHAIN && e->kind != DK_REFRESH) || e->chain_end)
                continue;
            e->check = CHK_UNVERIFIABLE;
            for (size_t m = k + 1; m < w->n; m++) {
                if (w->ev[m].chain == e->chain && w->ev[m].chain_end) {
                    e->check = w->ev[m].check == CHK_PRESENT ? CHK_PRESENT : CHK_UNVERIFIABLE;
                    break;
                }
            }
        }
    }
    if (atomic_load(&j.errors)) {
        snprintf(err, errlen, "%d write(s) could not be checked on %s (no definite answer)", atomic_load(&j.errors),
                 n->name);
    }
    return 0;
}

/* -------------------------------------------------------------- digest */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

struct lines {
    char **v;
    size_t n, cap;
};

static void add_line(struct lines *l, char *s)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 256;
        l->v = xrealloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n++] = s;
}

int drill_digest(struct drill *d, struct ctl_node *n, char *hex, size_t hexlen, char *detail, size_t detlen)
{
    struct lines l = { 0 };
    json_t *resp = NULL;
    int status = 0, rc = -1;
    size_t tenants = 0, clients = 0, users = 0;
    char err[256], path[256];

    if (ctl_node_call(d->c, n, "GET", "/admin/v1/tenants", NULL, 5000, &status, &resp, err, sizeof err) < 0 ||
        status != 200) {
        snprintf(detail, detlen, "%s: tenant list: %s", n->name, status ? "HTTP error" : err);
        goto out;
    }
    json_t *arr = json_object_get(resp, "tenants"), *t;
    size_t i;
    json_array_foreach(arr, i, t) {
        const char *name = jsonx_str(t, "name", "");
        json_t *cr = NULL, *cl;
        size_t k;
        add_line(&l, xasprintf("tenant %s %s", name, jsonx_str(t, "display_name", "")));
        tenants++;
        snprintf(path, sizeof path, "%s%s/admin/v1/clients", strcmp(name, "default") ? "/t/" : "",
                 strcmp(name, "default") ? name : "");
        if (ctl_node_call(d->c, n, "GET", path, NULL, 5000, &status, &cr, err, sizeof err) == 0 && status == 200) {
            json_array_foreach(json_object_get(cr, "clients"), k, cl) {
                char *dump = jsonx_dump(cl);
                add_line(&l, xasprintf("client %s %s", name, dump));
                free(dump);
                clients++;
            }
        }
        json_decref(cr);
    }
    if (d->scim) {
        for (int64_t start = 1;;) {
            json_t *ur = NULL, *u;
            size_t k, got = 0;
            snprintf(path, sizeof path, "/scim2/Users?attributes=id,userName&count=1000&startIndex=%lld",
                     (long long)start);
            if (ctl_node_call(d->c, n, "GET", path, NULL, 10000, &status, &ur, err, sizeof err) < 0 ||
                status != 200) {
                json_decref(ur);
                snprintf(detail, detlen, "%s: user list failed", n->name);
                goto out;
            }
            json_array_foreach(json_object_get(ur, "Resources"), k, u) {
                add_line(&l, xasprintf("user %s %s", jsonx_str(u, "id", ""), jsonx_str(u, "userName", "")));
                got++;
            }
            int64_t total = jsonx_int(ur, "totalResults", 0);
            json_decref(ur);
            users += got;
            start += (int64_t)got;
            if (got == 0 || start > total)
                break;
        }
    }
    qsort(l.v, l.n, sizeof *l.v, cmp_str);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    for (i = 0; i < l.n; i++) {
        EVP_DigestUpdate(ctx, l.v[i], strlen(l.v[i]));
        EVP_DigestUpdate(ctx, "\n", 1);
    }
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    for (unsigned k = 0; k < mdlen && 2 * k + 2 < hexlen; k++)
        snprintf(hex + 2 * k, 3, "%02x", md[k]);
    snprintf(detail, detlen, "%zu tenants, %zu clients, %zu users", tenants, clients, users);
    rc = 0;
out:
    for (size_t k = 0; k < l.n; k++)
        free(l.v[k]);
    free(l.v);
    json_decref(resp);
    return rc;
}
