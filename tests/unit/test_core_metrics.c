/*
 * Tests for core/metrics: the rendered text compared byte for byte with the
 * Prometheus 0.0.4 format, cumulative histogram buckets, escaping, exact
 * totals under concurrent updates, and the per-family cardinality cap.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/metrics.h"

static int setup(void **state)
{
    (void)state;
    metrics_reset_all();
    return 0;
}

/* Renders the registry and compares it with `expected`. */
static void expect_render(const char *expected)
{
    struct buf b;

    buf_init(&b, 16 << 20);
    assert_int_equal(metrics_render(&b), 0);
    assert_string_equal(buf_cstr(&b), expected);
    buf_free(&b);
}

static size_t count_lines_with(const char *text, const char *needle)
{
    size_t n = 0;
    const char *p = text;

    while ((p = strstr(p, needle)) != NULL) {
        n++;
        p += strlen(needle);
    }
    return n;
}

static void test_counter_unlabelled(void **state)
{
    struct metric *m;

    (void)state;
    m = metric_counter("t_requests_total", "Requests served", NULL);
    metric_inc(m, NULL, 1);
    metric_inc(m, NULL, 2.5);
    metric_inc(m, NULL, -7);        /* counters only go up */
    metric_inc(m, NULL, NAN);
    assert_true(metric_value(m, NULL) == 3.5);
    expect_render("# HELP t_requests_total Requests served\n"
                  "# TYPE t_requests_total counter\n"
                  "t_requests_total 3.5\n");
    /* same name: same family */
    assert_ptr_equal(metric_counter("t_requests_total", "ignored", NULL), m);
}

static void test_labels_and_gauges(void **state)
{
    struct metric *req, *g, *empty;

    (void)state;
    req = metric_counter("t_http_requests_total", "HTTP requests", "route, status");
    g = metric_gauge("t_lag_ms", "", "peer");
    empty = metric_gauge("t_unused", "never set", "x");
    metric_inc(req, (const char *[]){ "token", "200" }, 1);
    metric_inc(req, (const char *[]){ "authorize", "302" }, 1);
    metric_inc(req, (const char *[]){ "token", "200" }, 1);
    metric_inc(req, (const char *[]){ "token", "400" }, 1);
    metric_set(g, (const char *[]){ "eu-2" }, 120);
    metric_inc(g, (const char *[]){ "eu-2" }, -20.5);
    metric_set(g, (const char *[]){ "us-1" }, 1234567);
    assert_true(metric_value(req, (const char *[]){ "token", "200" }) == 2);
    assert_true(metric_value(req, (const char *[]){ "token", "500" }) == 0);
    assert_true(metric_value(empty, (const char *[]){ "a" }) == 0);
    expect_render("# HELP t_http_requests_total HTTP requests\n"
                  "# TYPE t_http_requests_total counter\n"
                  "t_http_requests_total{route=\"token\",status=\"200\"} 2\n"
                  "t_http_requests_total{route=\"authorize\",status=\"302\"} 1\n"
                  "t_http_requests_total{route=\"token\",status=\"400\"} 1\n"
                  "# TYPE t_lag_ms gauge\n"
                  "t_lag_ms{peer=\"eu-2\"} 99.5\n"
                  "t_lag_ms{peer=\"us-1\"} 1234567\n");
}

static void test_histogram(void **state)
{
    static const double bounds[] = { 0.25, 0.5, 1 };
    struct metric *h, *plain;

    (void)state;
    h = metric_histogram("t_latency_seconds", "Latency", "route", bounds, 3);
    plain = metric_histogram("t_size_bytes", "Sizes", NULL, (const double[]){ 100, INFINITY }, 2);
    metric_observe(h, (const char *[]){ "token" }, 0.125);
    metric_observe(h, (const char *[]){ "token" }, 0.25);      /* le is inclusive */
    metric_observe(h, (const char *[]){ "token" }, 0.375);
    metric_observe(h, (const char *[]){ "token" }, 3);
    metric_observe(h, (const char *[]){ "token" }, 0.75);
    metric_observe(h, (const char *[]){ "token" }, NAN);       /* ignored */
    metric_observe(h, (const char *[]){ "jwks" }, 0.5);
    metric_observe(plain, NULL, 1000);
    assert_true(metric_value(h, (const char *[]){ "token" }) == 5);
    assert_true(metric_value(plain, NULL) == 1);
    expect_render("# HELP t_latency_seconds Latency\n"
                  "# TYPE t_latency_seconds histogram\n"
                  "t_latency_seconds_bucket{route=\"token\",le=\"0.25\"} 2\n"
                  "t_latency_seconds_bucket{route=\"token\",le=\"0.5\"} 3\n"
                  "t_latency_seconds_bucket{route=\"token\",le=\"1\"} 4\n"
                  "t_latency_seconds_bucket{route=\"token\",le=\"+Inf\"} 5\n"
                  "t_latency_seconds_sum{route=\"token\"} 4.5\n"
                  "t_latency_seconds_count{route=\"token\"} 5\n"
                  "t_latency_seconds_bucket{route=\"jwks\",le=\"0.25\"} 0\n"
                  "t_latency_seconds_bucket{route=\"jwks\",le=\"0.5\"} 1\n"
                  "t_latency_seconds_bucket{route=\"jwks\",le=\"1\"} 1\n"
                  "t_latency_seconds_bucket{route=\"jwks\",le=\"+Inf\"} 1\n"
                  "t_latency_seconds_sum{route=\"jwks\"} 0.5\n"
                  "t_latency_seconds_count{route=\"jwks\"} 1\n"
                  "# HELP t_size_bytes Sizes\n"
                  "# TYPE t_size_bytes histogram\n"
                  "t_size_bytes_bucket{le=\"100\"} 0\n"
                  "t_size_bytes_bucket{le=\"+Inf\"} 1\n"
                  "t_size_bytes_sum 1000\n"
                  "t_size_bytes_count 1\n");
}

static void test_escaping(void **state)
{
    struct metric *m;

    (void)state;
    m = metric_counter("t_esc_total", "Help with \\ and\nnewline \"quoted\"", "v");
    metric_inc(m, (const char *[]){ "a\\b\"c\nd" }, 1);
    metric_inc(m, (const char *[]){ "caf\xC3\xA9 \xFF!" }, 1);
    metric_inc(m, (const char *[]){ "" }, 1);
    expect_render("# HELP t_esc_total Help with \\\\ and\\nnewline \"quoted\"\n"
                  "# TYPE t_esc_total counter\n"
                  "t_esc_total{v=\"a\\\\b\\\"c\\nd\"} 1\n"
                  "t_esc_total{v=\"caf\xC3\xA9 \xEF\xBF\xBD!\"} 1\n"
                  "t_esc_total{v=\"\"} 1\n");
}

static void test_number_formats(void **state)
{
    struct metric *g;

    (void)state;
    g = metric_gauge("t_num", NULL, "k");
    metric_set(g, (const char *[]){ "a" }, 0.1);
    metric_set(g, (const char *[]){ "b" }, 1e21);
    metric_set(g, (const char *[]){ "c" }, NAN);
    metric_set(g, (const char *[]){ "d" }, -INFINITY);
    metric_set(g, (const char *[]){ "e" }, 1.0 / 3);
    metric_set(g, (const char *[]){ "f" }, -0.5);
    expect_render("# TYPE t_num gauge\n"
                  "t_num{k=\"a\"} 0.1\n"
                  "t_num{k=\"b\"} 1e+21\n"
                  "t_num{k=\"c\"} NaN\n"
                  "t_num{k=\"d\"} -Inf\n"
                  "t_num{k=\"e\"} 0.33333333333333331\n"
                  "t_num{k=\"f\"} -0.5\n");
}

static double fn_value(void *arg)
{
    return *(double *)arg;
}

static void test_gauge_fn(void **state)
{
    static double v = 42;

    (void)state;
    metric_gauge_fn("t_fn", "Computed at scrape time", fn_value, &v);
    expect_render("# HELP t_fn Computed at scrape time\n# TYPE t_fn gauge\nt_fn 42\n");
    v = 7.25;
    expect_render("# HELP t_fn Computed at scrape time\n# TYPE t_fn gauge\nt_fn 7.25\n");
}

static void test_render_limit(void **state)
{
    struct metric *m;
    struct buf b;

    (void)state;
    m = metric_counter("t_limit_total", "Limit", NULL);
    metric_inc(m, NULL, 1);
    buf_init(&b, 20);
    assert_int_equal(buf_puts(&b, "keep"), 0);
    assert_int_equal(metrics_render(&b), -E2BIG);
    assert_string_equal(buf_cstr(&b), "keep");
    buf_free(&b);
}

static void test_reset_keeps_old_pointers_valid(void **state)
{
    struct metric *old, *fresh;

    (void)state;
    old = metric_counter("t_reset_total", "r", "a");
    metric_inc(old, (const char *[]){ "x" }, 1);
    metrics_reset_all();
    expect_render("");
    metric_inc(old, (const char *[]){ "x" }, 1);    /* still safe, no longer rendered */
    expect_render("");
    fresh = metric_counter("t_reset_total", "r", "a");
    assert_ptr_not_equal(fresh, old);
    assert_true(metric_value(fresh, (const char *[]){ "x" }) == 0);
}

/* ---- concurrency ---- */

#define THREADS 4
#define ITERS 100000

struct worker {
    struct metric *shared, *plain, *hist;
    char id[8];
};

static void *work(void *arg)
{
    struct worker *w = arg;
    int i;

    for (i = 0; i < ITERS; i++) {
        metric_inc(w->shared, (const char *[]){ "same" }, 1);
        metric_inc(w->shared, (const char *[]){ w->id }, 1);   /* created concurrently */
        metric_inc(w->plain, NULL, 1);
        if (i % 10 == 0)
            metric_observe(w->hist, NULL, (double)(i % 3));
    }
    return NULL;
}

static void test_concurrent_increments(void **state)
{
    pthread_t t[THREADS];
    struct worker w[THREADS];
    struct metric *shared, *plain, *hist;
    struct buf b;
    int i;

    (void)state;
    shared = metric_counter("t_conc_total", "c", "who");
    plain = metric_counter("t_conc_plain_total", "c", NULL);
    hist = metric_histogram("t_conc_hist", "h", NULL, (const double[]){ 0.5, 1.5 }, 2);
    for (i = 0; i < THREADS; i++) {
        w[i].shared = shared;
        w[i].plain = plain;
        w[i].hist = hist;
        snprintf(w[i].id, sizeof w[i].id, "t%d", i);
        assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
    }
    for (i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    assert_true(metric_value(shared, (const char *[]){ "same" }) == THREADS * ITERS);
    assert_true(metric_value(plain, NULL) == THREADS * ITERS);
    for (i = 0; i < THREADS; i++)
        assert_true(metric_value(shared, (const char *[]){ w[i].id }) == ITERS);
    assert_true(metric_value(hist, NULL) == THREADS * ITERS / 10);
    buf_init(&b, 1 << 20);
    assert_int_equal(metrics_render(&b), 0);
    assert_non_null(strstr(buf_cstr(&b), "t_conc_total{who=\"same\"} 400000\n"));
    assert_int_equal(count_lines_with(buf_cstr(&b), "t_conc_total{"), 1 + THREADS);
    assert_non_null(strstr(buf_cstr(&b), "t_conc_hist_count 40000\n"));
    buf_free(&b);
}

/* ---- cardinality ---- */

static void test_cardinality_cap(void **state)
{
    struct metric *m;
    struct buf b;
    char v[32];
    int i;

    (void)state;
    m = metric_counter("t_card_total", "c", "client,x");
    for (i = 0; i < 1000; i++) {
        snprintf(v, sizeof v, "c%d", i);
        metric_inc(m, (const char *[]){ v, "1" }, 1);
    }
    for (i = 1000; i < 1005; i++) {
        snprintf(v, sizeof v, "c%d", i);
        metric_inc(m, (const char *[]){ v, "1" }, 2);
    }
    /* existing series still update themselves */
    metric_inc(m, (const char *[]){ "c7", "1" }, 1);
    assert_true(metric_value(m, (const char *[]){ "c7", "1" }) == 2);
    assert_true(metric_value(m, (const char *[]){ "c1003", "1" }) == 0);
    assert_true(metric_value(m, (const char *[]){ "other", "other" }) == 10);
    buf_init(&b, 1 << 20);
    assert_int_equal(metrics_render(&b), 0);
    assert_int_equal(count_lines_with(buf_cstr(&b), "t_card_total{"), 1001);
    assert_non_null(strstr(buf_cstr(&b), "t_card_total{client=\"other\",x=\"other\"} 10\n"));
    assert_null(strstr(buf_cstr(&b), "c1000"));
    buf_free(&b);
}

static void test_long_label_values_bounded(void **state)
{
    struct metric *m;
    char a[300], c[300];
    struct buf b;

    (void)state;
    m = metric_counter("t_long_total", "l", "v");
    memset(a, 'a', sizeof a - 1);
    a[sizeof a - 1] = '\0';
    memcpy(c, a, sizeof c);
    c[200] = 'c';                   /* differs only after the first 128 bytes */
    metric_inc(m, (const char *[]){ a }, 1);
    metric_inc(m, (const char *[]){ c }, 1);
    assert_true(metric_value(m, (const char *[]){ a }) == 2);
    buf_init(&b, 1 << 20);
    assert_int_equal(metrics_render(&b), 0);
    assert_int_equal(count_lines_with(buf_cstr(&b), "t_long_total{"), 1);
    assert_non_null(strstr(buf_cstr(&b), "aaaa\"} 2\n"));
    assert_true(strlen(buf_cstr(&b)) < 128 + 100);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_counter_unlabelled, setup),
        cmocka_unit_test_setup(test_labels_and_gauges, setup),
        cmocka_unit_test_setup(test_histogram, setup),
        cmocka_unit_test_setup(test_escaping, setup),
        cmocka_unit_test_setup(test_number_formats, setup),
        cmocka_unit_test_setup(test_gauge_fn, setup),
        cmocka_unit_test_setup(test_render_limit, setup),
        cmocka_unit_test_setup(test_reset_keeps_old_pointers_valid, setup),
        cmocka_unit_test_setup(test_concurrent_increments, setup),
        cmocka_unit_test_setup(test_cardinality_cap, setup),
        cmocka_unit_test_setup(test_long_label_values_bounded, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
