/*
 * test_oauth_authorize_pages — what the login page is made of: HTML
 * escaping, branding from an artifact's [branding] section (and what is
 * refused), the rendered form (labels, autocomplete, hidden fields, the
 * error alert, no script), CSRF tokens (bound to purpose, tenant and
 * cookie, keyed by the master key), and the login rate limiter (burst,
 * refill, Retry-After, fixed memory under many keys).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "core/buf.h"
#include "node/node.h"
#include "oauth/login.h"
#include "oauth/ratelimit.h"

static struct arena A;

static int setup(void **state)
{
    (void)state;
    arena_init(&A);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    arena_free(&A);
    return 0;
}

static const char *escape(const char *s, size_t n)
{
    static struct buf b;
    buf_free(&b);
    buf_init(&b, 4096);
    assert_int_equal(login_html_escape(&b, s, n), 0);
    return arena_strdup(&A, buf_cstr(&b));
}

static void test_escape(void **state)
{
    (void)state;
    assert_string_equal(escape("plain", 5), "plain");
    assert_string_equal(escape("<a href=\"x\" onclick='y'>&</a>", 29),
                        "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;");
    assert_string_equal(escape("a\0b", 3), "a&#xFFFD;b");
    assert_string_equal(escape("", 0), "");
    assert_string_equal(escape("caf\xc3\xa9", 5), "caf\xc3\xa9");    /* UTF-8 passes */

    struct buf small;
    buf_init(&small, 8);
    assert_int_equal(login_html_escape(&small, "<<<<", 4), -E2BIG);
    buf_free(&small);
}

static void test_branding(void **state)
{
    (void)state;
    struct branding b = { "Default", "#1f6feb", NULL, NULL };
    const char *ini = "[tenant]\ndisplay_name = X\n\n"
                      "[branding]\ntitle = Acme <Cloud>\nprimary_color = #A3f0c1\n"
                      "logo_url = https://cdn.acme.example:8443/l.png?v=1\nfooter_text = (c) Acme\n";
    login_branding_parse(ini, strlen(ini), NULL, &A, &b);
    assert_string_equal(b.title, "Acme <Cloud>");      /* escaped when rendered, not here */
    assert_string_equal(b.primary_color, "#A3f0c1");
    assert_string_equal(b.logo_url, "https://cdn.acme.example:8443/l.png?v=1");
    assert_string_equal(b.footer_text, "(c) Acme");

    /* ${region.KEY} resolves against the node's [region] */
    struct cfg_kv kv[] = { { "cdn", "https://cdn.eu.example", 1 } };
    struct cfg_kvlist region = { kv, 1 };
    const char *reg = "[tenant]\ndisplay_name = X\n[branding]\nlogo_url = ${region.cdn}/logo.svg\n";
    login_branding_parse(reg, strlen(reg), &region, &A, &b);
    assert_string_equal(b.logo_url, "https://cdn.eu.example/logo.svg");

    /* an artifact the artifacts module refuses brands nothing */
    const char *bads[] = {
        "[tenant]\ndisplay_name = X\n[branding]\nprimary_color = red;}a\n",
        "[tenant]\ndisplay_name = X\n[branding]\nlogo_url = javascript:alert(1)\n",
        "[branding]\ntitle = no tenant section\n",
        "[tenant]\ndisplay_name = X\n[branding]\nlogo_url = ${region.missing}/x.png\n",
    };
    for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
        struct branding d = { "Default", "#1f6feb", NULL, NULL };
        login_branding_parse(bads[i], strlen(bads[i]), NULL, &A, &d);
        assert_string_equal(d.title, "Default");
        assert_string_equal(d.primary_color, "#1f6feb");
        assert_null(d.logo_url);
        assert_null(d.footer_text);
    }
    /* values the artifact accepts but the page cannot use safely stay default */
    struct branding d = { "Default", "#1f6feb", NULL, NULL };
    const char *odd = "[tenant]\ndisplay_name = X\n[branding]\nprimary_color = #12345g\n"
                      "logo_url = https://a;b.example/x.png\nfooter_text = a\x01b\n";
    login_branding_parse(odd, strlen(odd), NULL, &A, &d);
    assert_string_equal(d.primary_color, "#1f6feb");
    assert_null(d.logo_url);
    assert_null(d.footer_text);
    /* not NUL-terminated input */
    const char raw[] = "[tenant]\ndisplay_name = X\n[branding]\ntitle = Raw";
    login_branding_parse(raw, sizeof(raw) - 1, NULL, &A, &d);
    assert_string_equal(d.title, "Raw");
}

static void test_render(void **state)
{
    (void)state;
    struct branding brand = { "Acme \"Cloud\"", "#aa3300", "https://cdn.example/l.png", "Footer & co" };
    struct http_param items[] = {
        { "client_id", "app", 3 },
        { "state", "\"><script>x</script>", 20 },
    };
    struct http_params carry = { items, 2 };
    struct login_page p = {
        .brand = &brand,
        .action = "/t/acme/oauth2/login",
        .client_name = "<b>App</b>",
        .carry = &carry,
        .csrf = "TOKEN123",
        .username = "al\"ice",
        .error = NULL,
    };
    struct buf b;
    buf_init(&b, LOGIN_PAGE_LIMIT);
    assert_int_equal(login_render(&b, &p, "NONCE"), 0);
    const char *h = buf_cstr(&b);
    assert_non_null(strstr(h, "<!DOCTYPE html>"));
    assert_non_null(strstr(h, "<html lang=\"en\">"));
    assert_non_null(strstr(h, "<style nonce=\"NONCE\">:root{--brand:#aa3300}"));
    assert_null(strstr(h, "<script"));
    assert_non_null(strstr(h, "&quot;&gt;&lt;script&gt;x&lt;/script&gt;"));
    assert_non_null(strstr(h, "to continue to &lt;b&gt;App&lt;/b&gt;"));
    assert_non_null(strstr(h, "Sign in to Acme &quot;Cloud&quot;"));
    assert_non_null(strstr(h, "<form method=\"post\" action=\"/t/acme/oauth2/login\">"));
    assert_non_null(strstr(h, "<input type=\"hidden\" name=\"csrf_token\" value=\"TOKEN123\">"));
    assert_non_null(strstr(h, "<label for=\"username\">Username</label>"));
    assert_non_null(strstr(h, "<label for=\"password\">Password</label>"));
    assert_non_null(strstr(h, "autocomplete=\"username\""));
    assert_non_null(strstr(h, "autocomplete=\"current-password\""));
    assert_non_null(strstr(h, "value=\"al&quot;ice\""));
    assert_non_null(strstr(h, "<img class=\"logo\" src=\"https://cdn.example/l.png\" alt=\"Acme &quot;Cloud&quot;\">"));
    assert_non_null(strstr(h, "<footer>Footer &amp; co</footer>"));
    assert_null(strstr(h, "role=\"alert\""));
    assert_null(strstr(h, "aria-invalid=\"true\""));

    buf_reset(&b);
    p.error = "Wrong <password>";
    assert_int_equal(login_render(&b, &p, "N2"), 0);
    h = buf_cstr(&b);
    assert_non_null(strstr(h, "<div class=\"error\" role=\"alert\" id=\"login-error\">Wrong &lt;password&gt;</div>"));
    assert_non_null(strstr(h, "aria-invalid=\"true\" aria-describedby=\"login-error\""));
    buf_free(&b);

    buf_init(&b, 512);      /* too small: refused, not truncated silently */
    assert_int_equal(login_render(&b, &p, "N3"), -E2BIG);
    buf_free(&b);
}

static void test_csrf_token(void **state)
{
    (void)state;
    struct node n1, n2;
    memset(&n1, 0, sizeof(n1));
    memset(&n2, 0, sizeof(n2));
    memset(n2.master_key, 1, sizeof(n2.master_key));
    const char *cookie = "cccccccccccccccccccccccccccccccccccccccccc0";
    const char *t = login_csrf_token(&n1, "login", "acme", cookie, &A);
    assert_int_equal(strlen(t), 43);
    assert_string_equal(t, login_csrf_token(&n1, "login", "acme", cookie, &A));        /* deterministic */
    assert_string_not_equal(t, login_csrf_token(&n1, "logout", "acme", cookie, &A));   /* purpose */
    assert_string_not_equal(t, login_csrf_token(&n1, "login", "other", cookie, &A));   /* tenant */
    assert_string_not_equal(t, login_csrf_token(&n1, "login", "acme", "dddddddddddddddddddddddddddddddddddddddddd0",
                                                &A));                                 /* cookie */
    assert_string_not_equal(t, login_csrf_token(&n2, "login", "acme", cookie, &A));    /* key */
}

static void test_ratelimit_burst_refill(void **state)
{
    (void)state;
    struct ratelimit *rl = ratelimit_new(64, 10.0 / 60.0, 5);
    int64_t now = 1000000, retry = 0;
    const char *k = "127.0.0.1|acme";

    for (int i = 0; i < 5; i++)
        assert_true(ratelimit_take(rl, k, strlen(k), now, &retry));
    assert_false(ratelimit_take(rl, k, strlen(k), now, &retry));
    assert_int_equal(retry, 6);                      /* one token per 6 s */
    /* other keys are independent */
    assert_true(ratelimit_take(rl, "127.0.0.1|other", 15, now, &retry));
    assert_true(ratelimit_take(rl, "127.0.0.2|acme", 14, now, &retry));
    /* refill: after 3 s half a token, still refused with 3 s to go */
    assert_false(ratelimit_take(rl, k, strlen(k), now + 3000000, &retry));
    assert_int_equal(retry, 3);
    assert_true(ratelimit_take(rl, k, strlen(k), now + 6000000, &retry));
    assert_false(ratelimit_take(rl, k, strlen(k), now + 6000000, &retry));
    /* never more than the burst, however long the pause */
    double left = ratelimit_peek(rl, k, strlen(k), now + 3600 * 1000000LL);
    assert_true(left > 4.99 && left <= 5.0);
    assert_true(ratelimit_peek(rl, "unknown", 7, now) == 5.0);
    ratelimit_free(rl);
}

static void test_ratelimit_bounded(void **state)
{
    (void)state;
    struct ratelimit *rl = ratelimit_new(100, 1.0, 2);
    assert_int_equal(ratelimit_capacity(rl) % RATELIMIT_WAYS, 0);
    assert_true(ratelimit_capacity(rl) >= 100 && ratelimit_capacity(rl) < 100 + RATELIMIT_WAYS);
    int64_t now = 1;
    char key[32];
    /* an attacker's key is exhausted ... */
    assert_true(ratelimit_take(rl, "victim", 6, now, NULL));
    assert_true(ratelimit_take(rl, "victim", 6, now, NULL));
    assert_false(ratelimit_take(rl, "victim", 6, now, NULL));
    /* ... 100000 other keys fit in the same fixed table (evicting the oldest) */
    for (int i = 0; i < 100000; i++) {
        snprintf(key, sizeof(key), "10.0.%d.%d", i / 256, i % 256);
        assert_true(ratelimit_take(rl, key, strlen(key), now + 1 + i, NULL));
    }
    assert_int_equal(ratelimit_capacity(rl) % RATELIMIT_WAYS, 0);
    /* the most recent keys are still tracked */
    assert_true(ratelimit_peek(rl, key, strlen(key), now + 100000) < 2.0);
    ratelimit_free(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_escape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_branding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_render, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csrf_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ratelimit_burst_refill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ratelimit_bounded, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
