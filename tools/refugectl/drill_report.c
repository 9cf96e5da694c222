/*
 * drill_report — the drill's report: DIR/drill.json (every figure, the
 * phases, the lost writes, the request timeline) and DIR/drill.html, one
 * self-contained page (inline CSS and SVG, no script, no external
 * resources) that shows the timeline of request outcomes against the
 * phases, so the RTO can be seen and not only read.
 *
 * Token values are secrets: the report names a lost token by the first 8
 * characters only.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/buf.h"
#include "core/timeutil.h"
#include "core/xmalloc.h"
#include "drill.h"
#include "refugectl.h"

#define SVG_W 1000
#define SVG_PLOT_X 60
#define SVG_PLOT_W (SVG_W - SVG_PLOT_X - 20)
#define MAX_POINTS 12000

static bool ok(const struct drill_ev *e)
{
    return e->status >= 200 && e->status < 300;
}

static const char *phase_colour(const char *name)
{
    static const struct { const char *n, *c; } map[] = {
        { "check", "#eeeeee" },  { "setup", "#e8eef7" },   { "baseline", "#e3f4e3" }, { "kill", "#f8d0d0" },
        { "failover", "#fde2c4" }, { "degraded", "#fff4c2" }, { "rejoin", "#e6dcf5" },
        { "switchover", "#cfe6f7" }, { "final", "#e3f4e3" },  { "verify", "#eeeeee" },
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(map[i].n, name) == 0)
            return map[i].c;
    return "#f0f0f0";
}

static void short_id(const struct drill_ev *e, char *out, size_t outlen)
{
    if (e->kind == DK_USER)
        snprintf(out, outlen, "%s", e->id);
    else
        snprintf(out, outlen, "%.8s...", e->id);
}

/* ------------------------------------------------------------------ JSON */

static json_t *report_json(const struct drill *d)
{
    const struct ctl_cluster *c = d->c;
    json_t *root = json_object(), *phases = json_array(), *lost = json_array(), *writes = json_object(),
           *timeline = json_array();
    char ts[40];
    size_t total = 0;

    time_rfc3339(time_wall_us() - drill_now(d), ts, sizeof ts, 0);
    json_object_set_new(root, "cluster", json_string(c->name));
    json_object_set_new(root, "mode", json_string(d->mode));
    json_object_set_new(root, "started_at", json_string(ts));
    json_object_set_new(root, "load", json_pack("{s:i, s:i, s:i, s:b, s:b}", "duration_s", d->duration_s,
                                                "threads", d->threads, "rate_per_s", d->rate, "scim", d->scim,
                                                "refresh_families", d->refresh));
    json_object_set_new(root, "objectives",
                        json_pack("{s:I, s:I, s:b, s:s}", "rto_target_ms", (json_int_t)c->rto_target_ms,
                                  "rpo_target_ms", (json_int_t)c->rpo_target_ms, "met", d->objectives_met,
                                  "verdict", d->verdict));
    json_object_set_new(
        root, "result",
        json_pack("{s:I, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:s, s:s, s:s}", "rto_ms", (json_int_t)d->rto_ms,
                  "recovered", !(d->t_first_fail >= 0 && d->t_first_ok < 0), "first_failure_ms",
                  (json_int_t)(d->t_first_fail < 0 ? -1 : d->t_first_fail / 1000), "first_success_after_ms",
                  (json_int_t)(d->t_first_ok < 0 ? -1 : d->t_first_ok / 1000), "rpo_lost_writes",
                  (json_int_t)d->lost, "rpo_window_ms", (json_int_t)d->rpo_window_ms, "switchover_pause_ms",
                  (json_int_t)d->switch_pause_ms, "switchover_write_stop_to_route_ms", (json_int_t)d->so.pause_ms,
                  "switchover_first_failure_to_success_ms", (json_int_t)d->switch_fail_ms, "data_equal",
                  d->data_equal, "data_detail", d->data_detail, "lost_region", d->first_active,
                  "failover_target", d->second_active));
    json_object_set_new(root, "events_ms",
                        json_pack("{s:I, s:I, s:I, s:I, s:I}", "kill", (json_int_t)(d->t_kill / 1000), "promoted",
                                  (json_int_t)(d->t_promoted / 1000), "routed", (json_int_t)(d->t_routed / 1000),
                                  "switchover_write_stop", (json_int_t)(d->t_switch_stop / 1000),
                                  "switchover_routed", (json_int_t)(d->t_switch_routed / 1000)));
    json_object_set_new(root, "failover",
                        json_pack("{s:i, s:s, s:I, s:I, s:I, s:I, s:I}", "rc", d->fo.rc, "reason", d->fo.reason,
                                  "epoch", (json_int_t)d->fo.epoch, "target_lsn", (json_int_t)d->fo.target_lsn,
                                  "old_active_lsn", (json_int_t)d->fo.old_lsn, "lost_records",
                                  (json_int_t)d->fo.lost_records, "total_ms", (json_int_t)d->fo.total_ms));
    json_object_set_new(root, "rejoin",
                        json_pack("{s:i, s:s, s:b, s:s, s:I}", "rc", d->rj.rc, "reason", d->rj.reason, "started",
                                  d->rj.started, "divergent_file", d->rj.divergent_file, "divergent_transactions",
                                  (json_int_t)d->rj.divergent_count));
    json_object_set_new(root, "switchover",
                        json_pack("{s:i, s:s, s:I, s:I, s:I}", "rc", d->so.rc, "reason", d->so.reason, "final_lsn",
                                  (json_int_t)d->so.final_lsn, "epoch", (json_int_t)d->so.epoch, "pause_ms",
                                  (json_int_t)d->so.pause_ms));
    for (size_t i = 0; i < d->n_ph; i++)
        json_array_append_new(phases, json_pack("{s:s, s:I, s:I}", "name", d->ph[i].name, "start_ms",
                                                (json_int_t)(d->ph[i].t0 / 1000), "end_ms",
                                                (json_int_t)(d->ph[i].t1 < 0 ? -1 : d->ph[i].t1 / 1000)));
    json_object_set_new(root, "phases", phases);
    for (int k = 0; k < DK_N; k++)
        json_object_set_new(writes, drill_kind_name(k),
                            json_pack("{s:I, s:I, s:I}", "acknowledged", (json_int_t)d->acked[k], "missing",
                                      (json_int_t)d->missing[k], "unverifiable", (json_int_t)d->unverifiable[k]));
    json_object_set_new(root, "writes", writes);
    json_object_set_new(root, "requests", json_pack("{s:I, s:I}", "total", (json_int_t)d->requests, "failed",
                                                    (json_int_t)d->failures));
    for (int i = 0; i < d->threads; i++)
        total += d->w[i].n;
    for (int i = 0; i < d->threads; i++) {
        for (size_t k = 0; k < d->w[i].n; k++) {
            const struct drill_ev *e = &d->w[i].ev[k];
            char id[DRILL_ID_MAX + 4];
            if (ok(e) && e->check == CHK_MISSING) {
                short_id(e, id, sizeof id);
                json_array_append_new(lost, json_pack("{s:s, s:s, s:f}", "kind", drill_kind_name(e->kind), "id", id,
                                                      "acknowledged_ms", (double)e->t1 / 1000.0));
            }
            if (total <= 200000)
                json_array_append_new(timeline, json_pack("[f, f, i, s]", (double)e->t0 / 1000.0,
                                                          (double)e->t1 / 1000.0, (int)e->status,
                                                          drill_kind_name(e->kind)));
        }
    }
    json_object_set_new(root, "lost_writes", lost);
    json_object_set_new(root, "timeline_fields", json_pack("[s, s, s, s]", "sent_ms", "answered_ms", "status",
                                                           "kind"));
    json_object_set_new(root, "timeline", timeline);
    return root;
}

/* ------------------------------------------------------------------ HTML */

static double xpos(int64_t t_us, int64_t span_us)
{
    return SVG_PLOT_X + (double)SVG_PLOT_W * (double)t_us / (double)(span_us > 0 ? span_us : 1);
}

/* latency axis: log10 from 1 ms (bottom) to 3 s (top) of a band [y0, y0+h] */
static double ypos_latency(int64_t lat_us, double y0, double h)
{
    double ms = (double)lat_us / 1000.0;
    if (ms < 1)
        ms = 1;
    if (ms > 3000)
        ms = 3000;
    return y0 + h - h * log10(ms) / log10(3000.0);
}

static void svg_timeline(struct buf *b, const struct drill *d)
{
    int64_t span = 0;
    const double band_y = 20, band_h = 22, lat_y = 60, lat_h = 220, bar_y = 310, bar_h = 70;
    const int64_t bucket = 100000; /* 100 ms */
    size_t total = 0, nb;
    unsigned stride = 1;

    for (size_t i = 0; i < d->n_ph; i++)
        if (d->ph[i].t1 > span)
            span = d->ph[i].t1;
    for (int i = 0; i < d->threads; i++) {
        total += d->w[i].n;
        if (d->w[i].n && d->w[i].ev[d->w[i].n - 1].t1 > span)
            span = d->w[i].ev[d->w[i].n - 1].t1;
    }
    if (total > MAX_POINTS)
        stride = (unsigned)(total / MAX_POINTS + 1);
    nb = (size_t)(span / bucket + 1);
    int *okc = xcalloc(nb, sizeof *okc), *failc = xcalloc(nb, sizeof *failc), maxc = 1;

    buf_printf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"420\" viewBox=\"0 0 %d 420\" "
                  "font-family=\"sans-serif\" font-size=\"11\">\n", SVG_W, SVG_W);
    /* phases */
    for (size_t i = 0; i < d->n_ph; i++) {
        const struct drill_phase *p = &d->ph[i];
        int64_t t1 = p->t1 < 0 ? span : p->t1;
        double x0 = xpos(p->t0, span), x1 = xpos(t1, span);
        buf_printf(b, "<rect x=\"%.1f\" y=\"%.0f\" width=\"%.1f\" height=\"%.0f\" fill=\"%s\"><title>%s %.0f-%.0f ms"
                      "</title></rect>\n", x0, band_y, x1 - x0 > 0.5 ? x1 - x0 : 0.5, band_h, phase_colour(p->name),
                   p->name, p->t0 / 1000.0, t1 / 1000.0);
        buf_printf(b, "<rect x=\"%.1f\" y=\"%.0f\" width=\"%.1f\" height=\"%.0f\" fill=\"%s\" opacity=\"0.35\"/>\n",
                   x0, lat_y, x1 - x0 > 0.5 ? x1 - x0 : 0.5, bar_y + bar_h - lat_y, phase_colour(p->name));
        if (x1 - x0 > 40)
            buf_printf(b, "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%s</text>\n", (x0 + x1) / 2,
                       band_y + 15, p->name);
    }
    /* axes */
    buf_printf(b, "<text x=\"4\" y=\"%.0f\">phases</text>\n", band_y + 15);
    for (int ms = 1; ms <= 1000; ms *= 10) {
        double y = ypos_latency((int64_t)ms * 1000, lat_y, lat_h);
        buf_printf(b, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ccc\"/><text x=\"4\" y=\"%.1f\">"
                      "%d ms</text>\n", SVG_PLOT_X, SVG_PLOT_X + SVG_PLOT_W, y, y, y + 4, ms);
    }
    buf_printf(b, "<text x=\"4\" y=\"%.0f\">latency</text>\n", lat_y - 4);
    for (int64_t s = 0; s <= span / 1000000; s++) {
        double x = xpos(s * 1000000, span);
        if (span / 1000000 > 40 && s % 5)
            continue;
        buf_printf(b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.0f\" y2=\"%.0f\" stroke=\"#ddd\"/><text x=\"%.1f\" "
                      "y=\"%.0f\" text-anchor=\"middle\">%llds</text>\n", x, x, lat_y, bar_y + bar_h, x,
                   bar_y + bar_h + 14, (long long)s);
    }
    /* requests: one dot each, at the time the client saw the answer */
    size_t seen = 0;
    for (int i = 0; i < d->threads; i++) {
        for (size_t k = 0; k < d->w[i].n; k++) {
            const struct drill_ev *e = &d->w[i].ev[k];
            size_t bi = (size_t)(e->t1 / bucket);
            if (bi < nb)
                (ok(e) ? okc : failc)[bi]++;
            if (ok(e) && stride > 1 && (seen++ % stride))
                continue;
            buf_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%s\" fill=\"%s\"/>\n", xpos(e->t1, span),
                       ypos_latency(e->t1 - e->t0, lat_y, lat_h), ok(e) ? "1.6" : "2.4",
                       ok(e) ? (e->check == CHK_MISSING ? "#7b1fa2" : "#2e7d32") : "#d32f2f");
        }
    }
    /* throughput per 100 ms */
    for (size_t i = 0; i < nb; i++)
        if (okc[i] + failc[i] > maxc)
            maxc = okc[i] + failc[i];
    for (size_t i = 0; i < nb; i++) {
        double x = xpos((int64_t)i * bucket, span), w = xpos(bucket, span) - SVG_PLOT_X;
        double ho = bar_h * okc[i] / maxc, hf = bar_h * failc[i] / maxc;
        if (okc[i])
            buf_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.2f\" height=\"%.1f\" fill=\"#66bb6a\"/>\n", x,
                       bar_y + bar_h - ho, w, ho);
        if (failc[i])
            buf_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.2f\" height=\"%.1f\" fill=\"#e53935\"/>\n", x,
                       bar_y + bar_h - ho - hf, w, hf);
    }
    buf_printf(b, "<text x=\"4\" y=\"%.0f\">per 100 ms</text>\n", bar_y + 10);
    /* events */
    struct { int64_t t; const char *label, *colour; } marks[] = {
        { d->t_kill, "kill -9", "#b71c1c" },
        { d->t_first_fail, "first failure", "#e53935" },
        { d->t_promoted, "promoted", "#1b5e20" },
        { d->t_first_ok, "first success", "#2e7d32" },
        { d->t_switch_stop, "switchover: writes stop", "#0d47a1" },
        { d->t_switch_routed, "switchover: routed", "#1565c0" },
    };
    for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++) {
        if (marks[i].t < 0)
            continue;
        double x = xpos(marks[i].t, span), ly = lat_y + 205 - (double)(i % 3) * 70;
        buf_printf(b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.0f\" y2=\"%.0f\" stroke=\"%s\" stroke-dasharray=\"4 3\"/>"
                      "<text x=\"%.1f\" y=\"%.0f\" fill=\"%s\" transform=\"rotate(-90 %.1f %.0f)\">%s</text>\n",
                   x, x, lat_y, bar_y + bar_h, marks[i].colour, x - 3, ly, marks[i].colour, x - 3, ly,
                   marks[i].label);
    }
    if (d->t_first_fail >= 0) {
        int64_t end = d->t_first_ok >= 0 ? d->t_first_ok : span;
        double x0 = xpos(d->t_first_fail, span), x1 = xpos(end, span);
        buf_printf(b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.0f\" y2=\"%.0f\" stroke=\"#d32f2f\" stroke-width=\"3\"/>"
                      "<text x=\"%.1f\" y=\"%.0f\" fill=\"#d32f2f\">RTO %lld ms</text>\n", x0, x1 > x0 + 2 ? x1 : x0 + 2,
                   lat_y + 6, lat_y + 6, x1 + 4, lat_y + 10, (long long)d->rto_ms);
    }
    buf_puts(b, "</svg>\n");
    free(okc);
    free(failc);
}

static void html_escape(struct buf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': buf_puts(b, "&lt;"); break;
        case '>': buf_puts(b, "&gt;"); break;
        case '&': buf_puts(b, "&amp;"); break;
        case '"': buf_puts(b, "&quot;"); break;
        default: buf_putc(b, *s);
        }
    }
}

static void row(struct buf *b, const char *k, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void row(struct buf *b, const char *k, const char *fmt, ...)
{
    char v[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v, sizeof v, fmt, ap);
    va_end(ap);
    buf_puts(b, "<tr><th>");
    html_escape(b, k);
    buf_puts(b, "</th><td>");
    html_escape(b, v);
    buf_puts(b, "</td></tr>\n");
}

static void report_html(struct buf *b, const struct drill *d)
{
    const struct ctl_cluster *c = d->c;
    char ts[40];

    time_rfc3339(time_wall_us() - drill_now(d), ts, sizeof ts, 0);
    buf_puts(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Refuge DR drill</title>\n"
                "<style>body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}"
                "th,td{border:1px solid #ddd;padding:4px 10px;text-align:left;vertical-align:top}th{background:#f6f6f6}"
                ".met{color:#2e7d32;font-weight:bold}.missed{color:#c62828;font-weight:bold}"
                "code{background:#f3f3f3;padding:2px 4px}.legend span{display:inline-block;margin-right:1.5em}"
                "</style></head><body>\n");
    buf_puts(b, "<h1>Refuge DR drill: ");
    html_escape(b, c->name);
    buf_printf(b, "</h1>\n<p>Started %s, replication mode <b>%s</b>. Objectives: <span class=\"%s\">%s</span>",
               ts, d->mode, d->objectives_met ? "met" : "missed", d->objectives_met ? "met" : "missed");
    if (d->verdict[0]) {
        buf_puts(b, " (");
        html_escape(b, d->verdict);
        buf_puts(b, ")");
    }
    buf_printf(b, ".</p>\n<p><code>DRILL mode=%s rto_ms=%lld rpo_lost_writes=%lld rpo_window_ms=%lld objectives=%s"
                  "</code></p>\n", d->mode, (long long)d->rto_ms, (long long)d->lost, (long long)d->rpo_window_ms,
               d->objectives_met ? "met" : "missed");
    buf_puts(b, "<h2>Timeline</h2>\n<p class=\"legend\"><span style=\"color:#2e7d32\">&#9679; acknowledged</span>"
                "<span style=\"color:#d32f2f\">&#9679; failed</span><span style=\"color:#7b1fa2\">&#9679; "
                "acknowledged, then lost</span> (each request at the time its answer arrived; height = "
                "latency, log scale; bars = answers per 100 ms)</p>\n");
    svg_timeline(b, d);
    buf_puts(b, "<h2>Results</h2>\n<table>\n");
    if (d->t_first_fail < 0)
        row(b, "RTO", "0 ms: no request failed through the front door (objective %lld ms)",
            (long long)c->rto_target_ms);
    else
        row(b, "RTO", "%lld ms%s (objective %lld ms): first failed request at +%lld ms, first success after it at "
            "+%lld ms", (long long)d->rto_ms, d->t_first_ok < 0 ? " and not recovered" : "",
            (long long)c->rto_target_ms, (long long)(d->t_first_fail / 1000),
            (long long)(d->t_first_ok < 0 ? -1 : d->t_first_ok / 1000));
    row(b, "RPO", "%lld acknowledged write(s) lost, window %lld ms (objective %lld ms)", (long long)d->lost,
        (long long)d->rpo_window_ms, (long long)c->rpo_target_ms);
    row(b, "Region lost", "%s: kill -9 pid %d at +%lld ms", d->first_active, (int)d->killed_pid,
        (long long)(d->t_kill / 1000));
    row(b, "Failover", "to %s: promoted at +%lld ms (epoch %lld), front door switched at +%lld ms; failover "
        "estimate of the loss: %lld transaction(s)", d->second_active, (long long)(d->t_promoted / 1000),
        (long long)d->fo.epoch, (long long)(d->t_routed / 1000), (long long)d->fo.lost_records);
    row(b, "Rejoin", "%s (%lld ms)%s%s%s", d->rj.rc == CTL_OK ? "done" : d->rj.reason, (long long)d->rj.total_ms,
        d->rj.divergent_file[0] ? "; divergent transactions exported to " : "", d->rj.divergent_file,
        d->rj.divergent_file[0] ? "" : "; nothing to rewind");
    row(b, "Switchover", "%s: write pause %lld ms (demote to front-door switch), longest gap between successful "
        "writes %lld ms", d->so.rc == CTL_OK ? "done, zero loss by construction" : d->so.reason,
        (long long)d->so.pause_ms, (long long)d->switch_pause_ms);
    row(b, "Data", "%s: %s", d->data_equal ? "both nodes equal" : "NOT EQUAL", d->data_detail);
    row(b, "Load", "%d threads, %d requests/s, %lld requests, %lld failed", d->threads, d->rate,
        (long long)d->requests, (long long)d->failures);
    buf_puts(b, "</table>\n<h2>Acknowledged writes</h2>\n<table><tr><th>kind</th><th>acknowledged</th>"
                "<th>missing at the end</th><th>unverifiable</th></tr>\n");
    for (int k = 0; k < DK_N; k++)
        buf_printf(b, "<tr><td>%s</td><td>%lld</td><td>%lld</td><td>%lld</td></tr>\n", drill_kind_name(k),
                   (long long)d->acked[k], (long long)d->missing[k], (long long)d->unverifiable[k]);
    buf_puts(b, "</table>\n<p>A refresh-token family is checked through its last token (its presence proves every "
                "rotation before it); a family abandoned after a failed rotation cannot be checked by a client "
                "and is listed as unverifiable, never as lost.</p>\n<h2>Phases</h2>\n<table><tr><th>phase</th>"
                "<th>start</th><th>end</th></tr>\n");
    for (size_t i = 0; i < d->n_ph; i++)
        buf_printf(b, "<tr><td>%s</td><td>+%lld ms</td><td>+%lld ms</td></tr>\n", d->ph[i].name,
                   (long long)(d->ph[i].t0 / 1000), (long long)(d->ph[i].t1 / 1000));
    buf_puts(b, "</table>\n<p>Every step of failover, rejoin and switchover is in the refugectl journal");
    if (c->journal) {
        buf_puts(b, " (<code>");
        html_escape(b, c->journal);
        buf_puts(b, "</code>)");
    }
    buf_puts(b, "; the full request timeline is in drill.json.</p>\n</body></html>\n");
}

static int write_file(const char *dir, const char *name, const char *data, size_t len, char *err, size_t errlen)
{
    char path[1200], tmp[1210];
    FILE *f;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (!(f = fopen(tmp, "w"))) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        return -1;
    }
    size_t w = fwrite(data, 1, len, f);
    if (fclose(f) != 0 || w != len || rename(tmp, path) != 0) {
        snprintf(err, errlen, "%s: write failed", path);
        return -1;
    }
    return 0;
}

int drill_write_report(const struct drill *d, const char *dir, char *err, size_t errlen)
{
    struct buf html;
    json_t *j;
    char *text;
    int rc;

    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    j = report_json(d);
    text = json_dumps(j, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(j);
    rc = write_file(dir, "drill.json", text, strlen(text), err, errlen);
    free(text);
    if (rc < 0)
        return rc;
    buf_init(&html, 64 << 20);
    report_html(&html, d);
    rc = write_file(dir, "drill.html", buf_cstr(&html), html.len, err, errlen);
    buf_free(&html);
    return rc;
}
