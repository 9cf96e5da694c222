/*
 * metrics — counters, gauges and histograms for /metrics (metrics.h).
 *
 * Updates happen on every request and every replicated record, so they must
 * not take a lock: an existing series is found through an open-addressing
 * table whose slots are published with release stores and read with acquire
 * loads, and its value is an atomic (doubles are stored as their uint64 bits
 * and updated with a compare-and-swap loop). Only creating a new labelled
 * series, registering a family and rendering take the registry mutex.
 *
 * Label values come from the outside world (routes, clients, status codes),
 * so cardinality is capped: a family holds at most MAX_SERIES label
 * combinations; later combinations all land in one overflow series whose
 * label values are "other". Each value counts for its first MAX_VALUE bytes
 * only, so memory per family is bounded too. Series are never removed.
 *
 * Output is the Prometheus text format 0.0.4: families in registration
 * order, series in creation order; `# HELP` (backslash and newline escaped),
 * `# TYPE`, label values with backslash, double quote and newline escaped and
 * invalid UTF-8 replaced by U+FFFD; histograms as cumulative `_bucket{le=..}`
 * lines ending with le="+Inf", then `_sum` and `_count` (equal to the +Inf
 * bucket). A labelled family with no series yet is not rendered.
 *
 * Semantics worth knowing: metric_inc on a counter ignores negative and NaN
 * increments (counters only go up); metric_observe ignores NaN; metric_value
 * returns a histogram's observation count and never creates a series.
 * metrics_reset_all (tests) forgets every family; pointers obtained before
 * stay valid (the memory is kept) but are no longer rendered.
 * Gauge callbacks run under the registry mutex and must not call back here.
 */
#include "core/metrics.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xmalloc.h"

#define MAX_SERIES 1000     /* label combinations per family, before "other" */
#define MAX_SLOTS 2048      /* hash table size: power of two, > 2 * (MAX_SERIES + 1) */
#define MAX_VALUE 128       /* bytes of a label value that count */
#define MAX_LABELS 16

enum mtype { M_COUNTER, M_GAUGE, M_HISTOGRAM };

struct series {
    struct series *next;            /* creation order; written under reg_lock */
    uint64_t hash;
    char **values;                  /* nlabels raw values, cut at MAX_VALUE */
    size_t *lens;
    char *labels;                   /* rendered `a="x",b="y"`, "" without labels */
    _Atomic uint64_t bits;          /* counter/gauge value (double bits) */
    _Atomic uint64_t sum_bits;      /* histogram sum (double bits) */
    _Atomic uint64_t *buckets;      /* histogram: nbounds + 1 non-cumulative counts */
};

struct metric {
    struct metric *next;            /* registration order */
    char *name;
    char *help;
    enum mtype type;
    size_t nlabels;
    char **label_names;
    double *bounds;
    size_t nbounds;
    metric_fn fn;                   /* scrape-time gauge, or NULL */
    void *fn_arg;
    _Atomic(struct series *) *slots; /* MAX_SLOTS when nlabels > 0 */
    struct series *single;          /* the series when nlabels == 0 */
    struct series *first, *last;
    size_t nseries;                 /* under reg_lock; the overflow series not counted */
    _Atomic(struct series *) overflow;
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct metric *families, *families_tail;
static struct metric *retired;      /* after metrics_reset_all: kept so old pointers stay valid */

/* ------------------------------------------------------------------------ */
/* Atomic doubles                                                           */
/* ------------------------------------------------------------------------ */

static uint64_t d2u(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static double u2d(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static void atomic_add_double(_Atomic uint64_t *p, double by)
{
    uint64_t old = atomic_load_explicit(p, memory_order_relaxed);

    while (!atomic_compare_exchange_weak_explicit(p, &old, d2u(u2d(old) + by),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

/* ------------------------------------------------------------------------ */
/* Series lookup and creation                                               */
/* ------------------------------------------------------------------------ */

static const char *value_at(const char *const *values, size_t i)
{
    return values && values[i] ? values[i] : "";
}

static uint64_t hash_values(const struct metric *m, const char *const *values)
{
    uint64_t h = 1469598103934665603ull;   /* FNV-1a */
    size_t i, j, n;

    for (i = 0; i < m->nlabels; i++) {
        const char *v = value_at(values, i);
        n = strnlen(v, MAX_VALUE);
        for (j = 0; j < n; j++) {
            h ^= (unsigned char)v[j];
            h *= 1099511628211ull;
        }
        h ^= n + 0x100;                 /* value boundary, so "ab","c" != "a","bc" */
        h *= 1099511628211ull;
    }
    return h;
}

static bool same_values(const struct metric *m, const struct series *s, const char *const *values)
{
    size_t i;

    for (i = 0; i < m->nlabels; i++) {
        const char *v = value_at(values, i);
        size_t n = strnlen(v, MAX_VALUE);
        if (n != s->lens[i] || memcmp(v, s->values[i], n) != 0)
            return false;
    }
    return true;
}

/* Lock-free: the series for these values, or NULL. */
static struct series *lookup(const struct metric *m, const char *const *values, uint64_t h)
{
    size_t i = (size_t)h & (MAX_SLOTS - 1), probe;

    for (probe = 0; probe < MAX_SLOTS; probe++) {
        struct series *s = atomic_load_explicit(&m->slots[i], memory_order_acquire);
        if (!s)
            return NULL;
        if (s->hash == h && same_values(m, s, values))
            return s;
        i = (i + 1) & (MAX_SLOTS - 1);
    }
    return NULL;
}

/* Length of the well-formed UTF-8 sequence at p (n bytes left), 0 if none. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0], lo = 0x80, hi = 0xBF;
    size_t len, i;

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if (len > n || p[1] < lo || p[1] > hi)
        return 0;
    for (i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    return len;
}

/* Label value escaping of the text format, plus U+FFFD for invalid UTF-8. */
static void escape_label_value(struct buf *b, const char *v, size_t n)
{
    const unsigned char *p = (const unsigned char *)v;
    size_t i = 0, seq;

    while (i < n) {
        if (p[i] == '\\')
            buf_append(b, "\\\\", 2);
        else if (p[i] == '"')
            buf_append(b, "\\\"", 2);
        else if (p[i] == '\n')
            buf_append(b, "\\n", 2);
        else if ((seq = utf8_len(p + i, n - i)) > 0) {
            buf_append(b, p + i, seq);
            i += seq;
            continue;
        } else
            buf_append(b, "\xEF\xBF\xBD", 3);
        i++;
    }
}

/* Under reg_lock. */
static struct series *new_series(struct metric *m, const char *const *values, uint64_t h)
{
    struct series *s = xcalloc(1, sizeof *s);
    struct buf b;
    size_t i;

    s->hash = h;
    buf_init(&b, SIZE_MAX - 1);
    if (m->nlabels) {
        s->values = xcalloc(m->nlabels, sizeof *s->values);
        s->lens = xcalloc(m->nlabels, sizeof *s->lens);
    }
    for (i = 0; i < m->nlabels; i++) {
        const char *v = value_at(values, i);
        s->lens[i] = strnlen(v, MAX_VALUE);
        s->values[i] = xstrndup(v, s->lens[i]);
        buf_printf(&b, "%s%s=\"", i ? "," : "", m->label_names[i]);
        escape_label_value(&b, s->values[i], s->lens[i]);
        buf_putc(&b, '"');
    }
    s->labels = buf_steal(&b);
    atomic_init(&s->bits, d2u(0.0));
    atomic_init(&s->sum_bits, d2u(0.0));
    if (m->type == M_HISTOGRAM) {
        s->buckets = xcalloc(m->nbounds + 1, sizeof *s->buckets);
        for (i = 0; i <= m->nbounds; i++)
            atomic_init(&s->buckets[i], 0);
    }
    if (m->last)
        m->last->next = s;
    else
        m->first = s;
    m->last = s;
    if (m->slots) {
        i = (size_t)h & (MAX_SLOTS - 1);
        while (atomic_load_explicit(&m->slots[i], memory_order_relaxed))
            i = (i + 1) & (MAX_SLOTS - 1);
        atomic_store_explicit(&m->slots[i], s, memory_order_release);
    }
    return s;
}

/* The series to update for these values; creates it (or falls back to the
 * overflow series) under the lock only when it does not exist yet. */
static struct series *get_series(struct metric *m, const char *const *values)
{
    static const char *const other[MAX_LABELS] = {
        "other", "other", "other", "other", "other", "other", "other", "other",
        "other", "other", "other", "other", "other", "other", "other", "other",
    };
    struct series *s;
    uint64_t h;

    if (m->nlabels == 0)
        return m->single;
    assert(values);
    h = hash_values(m, values);
    s = lookup(m, values, h);
    if (s)
        return s;
    s = atomic_load_explicit(&m->overflow, memory_order_acquire);
    if (s)
        return s;

    pthread_mutex_lock(&reg_lock);
    s = lookup(m, values, h);
    if (!s && m->nseries < MAX_SERIES) {
        s = new_series(m, values, h);
        m->nseries++;
    } else if (!s) {
        h = hash_values(m, other);
        s = lookup(m, other, h);
        if (!s)
            s = new_series(m, other, h);
        atomic_store_explicit(&m->overflow, s, memory_order_release);
    }
    pthread_mutex_unlock(&reg_lock);
    return s;
}

/* ------------------------------------------------------------------------ */
/* Registration                                                             */
/* ------------------------------------------------------------------------ */

static bool __attribute__((unused)) valid_name(const char *s, bool colon_ok)
{
    size_t i;

    if (!s || !*s)
        return false;
    for (i = 0; s[i]; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (colon_ok && c == ':') || (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

static void parse_labels(struct metric *m, const char *labels)
{
    const char *p = labels, *end;
    size_t n = 0, len;

    if (!labels || !*labels)
        return;
    m->label_names = xcalloc(MAX_LABELS, sizeof *m->label_names);
    for (;;) {
        while (*p == ' ')
            p++;
        end = p + strcspn(p, ",");
        len = (size_t)(end - p);
        while (len > 0 && p[len - 1] == ' ')
            len--;
        assert(n < MAX_LABELS);
        if (n == MAX_LABELS)
            break;
        m->label_names[n] = xstrndup(p, len);
        assert(valid_name(m->label_names[n], false) && strncmp(m->label_names[n], "__", 2) != 0);
        assert(m->type != M_HISTOGRAM || strcmp(m->label_names[n], "le") != 0);
        n++;
        if (!*end)
            break;
        p = end + 1;
    }
    m->nlabels = n;
}

static struct metric *find_family(const char *name)
{
    struct metric *m;

    for (m = families; m; m = m->next)
        if (strcmp(m->name, name) == 0)
            return m;
    return NULL;
}

static struct metric *reg(const char *name, const char *help, const char *labels, enum mtype type,
                          const double *bounds, size_t nbounds, metric_fn fn, void *arg)
{
    struct metric *m;
    size_t i;

    assert(valid_name(name, true));
    pthread_mutex_lock(&reg_lock);
    m = find_family(name);
    if (m) {
        assert(m->type == type);
        if (fn) {
            m->fn = fn;
            m->fn_arg = arg;
        }
        goto out;
    }
    m = xcalloc(1, sizeof *m);
    m->name = xstrdup(name);
    m->help = xstrdup(help ? help : "");
    m->type = type;
    m->fn = fn;
    m->fn_arg = arg;
    parse_labels(m, labels);
    if (type == M_HISTOGRAM) {
        m->bounds = xcalloc(nbounds ? nbounds : 1, sizeof *m->bounds);
        for (i = 0; i < nbounds; i++) {
            if (isinf(bounds[i]) && bounds[i] > 0)
                break;                  /* +Inf is implied */
            assert(!isnan(bounds[i]) && (i == 0 || bounds[i] > bounds[i - 1]));
            m->bounds[i] = bounds[i];
        }
        m->nbounds = i;
    }
    atomic_init(&m->overflow, NULL);
    if (m->nlabels) {
        m->slots = xcalloc(MAX_SLOTS, sizeof *m->slots);
        for (i = 0; i < MAX_SLOTS; i++)
            atomic_init(&m->slots[i], NULL);
    } else if (!fn) {
        m->single = new_series(m, NULL, 0);
    }
    if (families_tail)
        families_tail->next = m;
    else
        families = m;
    families_tail = m;
out:
    pthread_mutex_unlock(&reg_lock);
    return m;
}

struct metric *metric_counter(const char *name, const char *help, const char *labels)
{
    return reg(name, help, labels, M_COUNTER, NULL, 0, NULL, NULL);
}

struct metric *metric_gauge(const char *name, const char *help, const char *labels)
{
    return reg(name, help, labels, M_GAUGE, NULL, 0, NULL, NULL);
}

struct metric *metric_histogram(const char *name, const char *help, const char *labels,
                                const double *bounds, size_t n)
{
    return reg(name, help, labels, M_HISTOGRAM, bounds, n, NULL, NULL);
}

void metric_gauge_fn(const char *name, const char *help, metric_fn fn, void *arg)
{
    assert(fn);
    reg(name, help, NULL, M_GAUGE, NULL, 0, fn, arg);
}

void metrics_reset_all(void)
{
    pthread_mutex_lock(&reg_lock);
    if (families) {
        families_tail->next = retired;
        retired = families;
    }
    families = families_tail = NULL;
    pthread_mutex_unlock(&reg_lock);
}

/* ------------------------------------------------------------------------ */
/* Updates                                                                  */
/* ------------------------------------------------------------------------ */

void metric_inc(struct metric *m, const char *const *values, double by)
{
    struct series *s;

    assert(m->type != M_HISTOGRAM);
    if (m->type == M_HISTOGRAM || m->fn || isnan(by) || (m->type == M_COUNTER && by < 0))
        return;
    s = get_series(m, values);
    atomic_add_double(&s->bits, by);
}

void metric_set(struct metric *m, const char *const *values, double v)
{
    struct series *s;

    assert(m->type != M_HISTOGRAM);
    if (m->type == M_HISTOGRAM || m->fn)
        return;
    s = get_series(m, values);
    atomic_store_explicit(&s->bits, d2u(v), memory_order_relaxed);
}

void metric_observe(struct metric *m, const char *const *values, double v)
{
    struct series *s;
    size_t lo = 0, hi;

    assert(m->type == M_HISTOGRAM);
    if (m->type != M_HISTOGRAM || isnan(v))
        return;
    s = get_series(m, values);
    /* first bucket whose upper bound is >= v; nbounds is +Inf */
    hi = m->nbounds;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v <= m->bounds[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    atomic_fetch_add_explicit(&s->buckets[lo], 1, memory_order_relaxed);
    atomic_add_double(&s->sum_bits, v);
}

double metric_value(struct metric *m, const char *const *values)
{
    struct series *s;
    double total = 0;
    size_t i;

    if (m->fn)
        return m->fn(m->fn_arg);
    s = m->nlabels ? lookup(m, values, hash_values(m, values)) : m->single;
    if (!s)
        return 0;
    if (m->type != M_HISTOGRAM)
        return u2d(atomic_load_explicit(&s->bits, memory_order_relaxed));
    for (i = 0; i <= m->nbounds; i++)
        total += (double)atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
    return total;
}

/* ------------------------------------------------------------------------ */
/* Rendering                                                                */
/* ------------------------------------------------------------------------ */

/* Shortest of %.15g / %.17g that reads back exactly; +Inf, -Inf, NaN. */
static const char *fmt_double(double v, char *out, size_t outlen)
{
    if (isnan(v))
        snprintf(out, outlen, "NaN");
    else if (isinf(v))
        snprintf(out, outlen, "%s", v > 0 ? "+Inf" : "-Inf");
    else if (snprintf(out, outlen, "%.15g", v) > 0 && strtod(out, NULL) != v)
        snprintf(out, outlen, "%.17g", v);
    return out;
}

static void render_header(struct buf *b, const struct metric *m)
{
    static const char *const types[] = { "counter", "gauge", "histogram" };
    const char *p;

    if (m->help[0]) {
        buf_printf(b, "# HELP %s ", m->name);
        for (p = m->help; *p; p++) {
            if (*p == '\\')
                buf_append(b, "\\\\", 2);
            else if (*p == '\n')
                buf_append(b, "\\n", 2);
            else
                buf_putc(b, *p);
        }
        buf_putc(b, '\n');
    }
    buf_printf(b, "# TYPE %s %s\n", m->name, types[m->type]);
}

static void render_histogram(struct buf *b, const struct metric *m, const struct series *s)
{
    char num[40];
    const char *sep = s->labels[0] ? "," : "";
    uint64_t cum = 0;
    size_t i;

    for (i = 0; i <= m->nbounds; i++) {
        cum += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
        buf_printf(b, "%s_bucket{%s%sle=\"%s\"} %" PRIu64 "\n", m->name, s->labels, sep,
                   i < m->nbounds ? fmt_double(m->bounds[i], num, sizeof num) : "+Inf", cum);
    }
    if (s->labels[0]) {
        buf_printf(b, "%s_sum{%s} %s\n", m->name, s->labels,
                   fmt_double(u2d(atomic_load_explicit(&s->sum_bits, memory_order_relaxed)),
                              num, sizeof num));
        buf_printf(b, "%s_count{%s} %" PRIu64 "\n", m->name, s->labels, cum);
    } else {
        buf_printf(b, "%s_sum %s\n", m->name,
                   fmt_double(u2d(atomic_load_explicit(&s->sum_bits, memory_order_relaxed)),
                              num, sizeof num));
        buf_printf(b, "%s_count %" PRIu64 "\n", m->name, cum);
    }
}

int metrics_render(struct buf *out)
{
    char num[40];
    struct buf b;
    struct metric *m;
    struct series *s;
    int rc = 0;

    /* Rendered into a private unlimited buffer, then appended in one go, so
     * a full `out` fails with -E2BIG and stays as it was. */
    buf_init(&b, SIZE_MAX - 1);
    pthread_mutex_lock(&reg_lock);
    for (m = families; m; m = m->next) {
        if (m->fn) {
            render_header(&b, m);
            buf_printf(&b, "%s %s\n", m->name, fmt_double(m->fn(m->fn_arg), num, sizeof num));
            continue;
        }
        if (!m->first)
            continue;
        render_header(&b, m);
        for (s = m->first; s; s = s->next) {
            if (m->type == M_HISTOGRAM) {
                render_histogram(&b, m, s);
                continue;
            }
            fmt_double(u2d(atomic_load_explicit(&s->bits, memory_order_relaxed)), num, sizeof num);
            if (s->labels[0])
                buf_printf(&b, "%s{%s} %s\n", m->name, s->labels, num);
            else
                buf_printf(&b, "%s %s\n", m->name, num);
        }
    }
    pthread_mutex_unlock(&reg_lock);
    if (b.len)
        rc = buf_append(out, b.data, b.len);
    buf_free(&b);
    return rc;
}
