/*
 * metrics — counters, gauges and histograms rendered in the Prometheus text
 * format. Lock-free updates (atomics); families are registered at start-up,
 * labelled series are created on first use under a mutex.
 *
 *   static struct metric *req = NULL;
 *   req = metric_counter("refuge_http_requests_total", "HTTP requests", "route,status");
 *   metric_inc(req, (const char *[]){"token", "200"}, 1);
 */
#ifndef REFUGE_CORE_METRICS_H
#define REFUGE_CORE_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include "core/buf.h"

struct metric;

/* labels: comma-separated label names, or NULL/"" for none. Registering the
 * same name twice returns the same family. */
struct metric *metric_counter(const char *name, const char *help, const char *labels);
struct metric *metric_gauge(const char *name, const char *help, const char *labels);
/* bounds: ascending upper bounds (seconds or units as named), n of them; +Inf is implied. */
struct metric *metric_histogram(const char *name, const char *help, const char *labels,
                                const double *bounds, size_t n);

/* values: one string per label name, or NULL when the family has no labels. */
void metric_inc(struct metric *m, const char *const *values, double by);
void metric_set(struct metric *m, const char *const *values, double v);
void metric_observe(struct metric *m, const char *const *values, double v);
double metric_value(struct metric *m, const char *const *values);  /* tests */

/* Gauges computed at scrape time. */
typedef double (*metric_fn)(void *arg);
void metric_gauge_fn(const char *name, const char *help, metric_fn fn, void *arg);

int metrics_render(struct buf *out);   /* the whole registry, text format 0.0.4 */
void metrics_reset_all(void);          /* tests only */

#endif
