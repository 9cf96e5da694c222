/*
 * drill — a full, measured DR test of a running deployment:
 *
 *   refugectl drill [--mode M] [--duration S] [--report DIR] [--threads N] [--rate R]
 *
 * The phases, in order (each logged; the timeline goes into the report):
 *
 *   check       exactly one active node, a connected standby in step with
 *               it, the mode the drill was asked for, a pid for the active
 *               node (to kill it) and a start_command (to bring it back).
 *   setup       the drill's own client (opaque tokens) and user, through
 *               the front door; wait until the standby has them.
 *   baseline    client load through the front door (S/3 seconds).
 *   kill        kill -9 the active node's process: region A is gone.
 *   failover    `failover --to STANDBY --force` in-process (a disaster does
 *               not wait for an operator to accept the loss: the drill
 *               measures it instead).
 *   degraded    load on the new active (S/3 seconds).
 *   rejoin      `rejoin OLD`: restart it, it rewinds and follows.
 *   switchover  `switchover --to OLD`: back to the original region.
 *   final       load (S/3 seconds), then the load stops.
 *   verify      the standby catches up; every acknowledged write is looked
 *               up on the active node; both nodes' data are digested and
 *               compared.
 *
 * What is measured, as the client saw it:
 *   RTO   first failed request after the kill -> first successful request
 *         after that, through the front door (0 when no request failed).
 *   RPO   acknowledged writes missing on the active node at the end (they
 *         would have been on it had they survived the failover), and the
 *         window they span: from the oldest lost write's acknowledgement to
 *         the disruption that lost it.
 * The last line on stdout is exactly:
 *   DRILL mode=<mode> rto_ms=<n> rpo_lost_writes=<n> rpo_window_ms=<n> objectives=<met|missed>
 * Objectives are met when rto_ms <= rto_target_ms, rpo_window_ms <=
 * rpo_target_ms, no acknowledged write was lost in remote_write or
 * remote_apply mode, and both nodes hold the same data.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/log.h"
#include "core/timeutil.h"
#include "core/xmalloc.h"
#include "drill.h"
#include "refugectl.h"

#define DRILL_DEFAULT_DURATION 9
#define DRILL_DEFAULT_THREADS 4
#define DRILL_DEFAULT_RATE 200

void ctl_drill_usage(FILE *f)
{
    fprintf(f, "refugectl drill [--mode async|remote_write|remote_apply] [--duration S] [--report DIR]\n"
               "                [--threads N] [--rate R] [-c CLUSTER.CONF]\n"
               "    a measured DR test of a running deployment: client load through the front door\n"
               "    recording every acknowledged write; kill -9 the active node; failover; rejoin it;\n"
               "    switchover back; verify. S seconds of load in three parts (default %d), N client\n"
               "    threads (default %d) at R requests/s in total (default %d). --mode refuses to run\n"
               "    unless the nodes run that replication mode. Writes DIR/drill.json and\n"
               "    DIR/drill.html (default ./drill-report). Last line:\n"
               "    DRILL mode=M rto_ms=N rpo_lost_writes=N rpo_window_ms=N objectives=met|missed\n",
               DRILL_DEFAULT_DURATION, DRILL_DEFAULT_THREADS, DRILL_DEFAULT_RATE);
}

/* ------------------------------------------------------------ phases */

static void phase_begin(struct drill *d, const char *name)
{
    if (d->n_ph == DRILL_MAX_PHASES)
        return;
    struct drill_phase *p = &d->ph[d->n_ph++];
    snprintf(p->name, sizeof p->name, "%s", name);
    p->t0 = drill_now(d);
    p->t1 = -1;
    printf("%s== %s%s\n", ctl_col(CTL_BOLD), name, ctl_col(CTL_RESET));
    fflush(stdout);
}

static void phase_end(struct drill *d)
{
    if (d->n_ph && d->ph[d->n_ph - 1].t1 < 0)
        d->ph[d->n_ph - 1].t1 = drill_now(d);
}

static void run_load_for(struct drill *d, const char *name, int64_t ms)
{
    phase_begin(d, name);
    time_sleep_us(ms * 1000);
    ctl_step(name, "%lld ms of load", (long long)ms);
    phase_end(d);
}

/* ------------------------------------------------------------ measure */

struct flat {
    struct drill_ev **e;
    size_t n;
};

static int by_end(const void *a, const void *b)
{
    const struct drill_ev *x = *(struct drill_ev *const *)a, *y = *(struct drill_ev *const *)b;
    return x->t1 < y->t1 ? -1 : x->t1 > y->t1;
}

static void flatten(struct drill *d, struct flat *f)
{
    size_t n = 0;
    for (int i = 0; i < d->threads; i++)
        n += d->w[i].n;
    f->e = xcalloc(n ? n : 1, sizeof *f->e);
    f->n = 0;
    for (int i = 0; i < d->threads; i++)
        for (size_t k = 0; k < d->w[i].n; k++)
            f->e[f->n++] = &d->w[i].ev[k];
    qsort(f->e, f->n, sizeof *f->e, by_end);
}

static bool ok(const struct drill_ev *e)
{
    return e->status >= 200 && e->status < 300;
}

/* First failure in [from, to) and the first success after it, in ms (0
 * when nothing failed). When nothing succeeded afterwards, *t_ok is -1 and
 * the outage lasted at least until `to`. */
static int64_t outage(const struct flat *f, int64_t from, int64_t to, int64_t *t_fail, int64_t *t_ok)
{
    *t_fail = *t_ok = -1;
    for (size_t i = 0; i < f->n; i++) {
        const struct drill_ev *e = f->e[i];
        if (e->t1 < from)
            continue;
        if (*t_fail < 0) {
            if (e->t1 >= to)
                break;
            if (!ok(e))
                *t_fail = e->t1;
            continue;
        }
        if (ok(e)) {
            *t_ok = e->t1;
            break;
        }
    }
    if (*t_fail < 0)
        return 0;
    return ((*t_ok >= 0 ? *t_ok : to) - *t_fail + 999) / 1000;
}

/* Longest time without a successful write completing, in [from, to). */
static int64_t longest_gap(const struct flat *f, int64_t from, int64_t to)
{
    int64_t last = from, gap = 0;
    for (size_t i = 0; i < f->n; i++) {
        const struct drill_ev *e = f->e[i];
        if (e->t1 < from || !ok(e))
            continue;
        if (e->t1 >= to)
            break;
        if (e->t1 - last > gap)
            gap = e->t1 - last;
        last = e->t1;
    }
    if (to - last > gap)
        gap = to - last;
    return gap / 1000;
}

static void measure(struct drill *d)
{
    struct flat f;
    int64_t rejoin_t0 = d->t_routed >= 0 ? d->t_routed + 1 : d->t_kill;
    int64_t so_from = -1, so_to = -1, tf, to;

    flatten(d, &f);
    for (size_t i = 0; i < d->n_ph; i++) {
        if (strcmp(d->ph[i].name, "rejoin") == 0)
            rejoin_t0 = d->ph[i].t0;
        if (strcmp(d->ph[i].name, "switchover") == 0) {
            so_from = d->ph[i].t0;
            so_to = d->ph[i].t1 >= 0 ? d->ph[i].t1 : drill_now(d);
        }
    }
    d->rto_ms = outage(&f, d->t_kill, rejoin_t0, &d->t_first_fail, &d->t_first_ok);
    if (so_from >= 0) {
        d->switch_fail_ms = outage(&f, so_from, so_to, &tf, &to);
        d->switch_pause_ms = longest_gap(&f, so_from, so_to);
    }
    /* RPO: acknowledged writes missing; each one's window runs to the next
     * disruption after its acknowledgement (the kill, or the switchover's
     * write stop) */
    d->lost = 0;
    d->rpo_window_ms = 0;
    for (size_t i = 0; i < f.n; i++) {
        const struct drill_ev *e = f.e[i];
        d->requests++;
        if (!ok(e)) {
            d->failures++;
            continue;
        }
        if (!e->id[0])
            continue;
        d->acked[e->kind]++;
        if (e->check == CHK_UNVERIFIABLE)
            d->unverifiable[e->kind]++;
        if (e->check != CHK_MISSING)
            continue;
        d->missing[e->kind]++;
        d->lost++;
        int64_t event = e->t1 <= d->t_kill ? d->t_kill : d->t_switch_stop >= 0 ? d->t_switch_stop : e->t1;
        int64_t w = (event - e->t1) / 1000;
        if (event < e->t1)
            w = 0;
        if (w > d->rpo_window_ms)
            d->rpo_window_ms = w;
    }
    free(f.e);
}

static void __attribute__((format(printf, 2, 3))) missed(struct drill *d, const char *fmt, ...)
{
    size_t len = strlen(d->verdict);
    va_list ap;

    d->objectives_met = false;
    if (len && len + 2 < sizeof d->verdict) {
        strcat(d->verdict, "; ");
        len += 2;
    }
    va_start(ap, fmt);
    vsnprintf(d->verdict + len, sizeof d->verdict - len, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------ the run */

static int check_preconditions(struct drill *d, struct ctl_node **active, struct ctl_node **standby, char *why,
                               size_t whylen)
{
    struct ctl_cluster *c = d->c;
    struct ctl_view v;
    size_t ai = 0;
    int rc = CTL_REFUSED;

    ctl_view_observe(&v, c, NULL, 0);
    if (ctl_view_actives(&v, &ai) != 1) {
        snprintf(why, whylen, "the drill needs exactly one active node (`refugectl status`)");
        goto out;
    }
    *active = &c->nodes[ai];
    *standby = NULL;
    for (size_t i = 0; i < c->n_nodes; i++)
        if (i != ai && ctl_status_is_standby(&v.st[i]) && v.st[i].peer_connected && !v.st[i].diverged)
            *standby = &c->nodes[i];
    if (!*standby) {
        snprintf(why, whylen, "no connected, undiverged standby to fail over to");
        goto out;
    }
    snprintf(d->mode, sizeof d->mode, "%s", v.st[ai].mode);
    if (d->mode_req && strcmp(d->mode_req, d->mode) != 0) {
        snprintf(why, whylen, "--mode %s, but the nodes run mode %s ([replication] mode in refuge.conf)",
                 d->mode_req, d->mode);
        goto out;
    }
    if (ctl_node_pid(*active) <= 0) {
        snprintf(why, whylen, "cannot find the process of %s: set pid_file in cluster.conf (the node must have "
                 "been started with its pid recorded there)", (*active)->name);
        goto out;
    }
    if (!(*active)->start_command) {
        snprintf(why, whylen, "%s has no start_command in cluster.conf: the drill could not bring it back",
                 (*active)->name);
        goto out;
    }
    if (v.hap_rc < 0) {
        snprintf(why, whylen, "front door control unavailable: %s", v.hap_err);
        goto out;
    }
    ctl_step("check", "active %s (%s, lsn %lld), standby %s connected, mode %s", (*active)->name,
             (*active)->region, (long long)v.st[ai].lsn, (*standby)->name, d->mode);
    rc = CTL_OK;
out:
    ctl_view_free(&v);
    return rc;
}

static int wait_in_step(struct drill *d, struct ctl_node *active, struct ctl_node *standby, int timeout_ms,
                        int64_t *lsn)
{
    struct ctl_status a, s;
    int rc;

    ctl_status_fetch(d->c, active, (int)d->c->request_timeout_ms, &a);
    if (a.rc < 0) {
        ctl_status_free(&a);
        return -EIO;
    }
    *lsn = a.lsn;
    rc = ctl_wait_position(d->c, standby, a.lsn, "standby", timeout_ms, &s);
    ctl_status_free(&a);
    ctl_status_free(&s);
    return rc;
}

static void print_summary(const struct drill *d)
{
    const struct ctl_cluster *c = d->c;
    int64_t acked = 0, unver = 0;

    for (int k = 0; k < DK_N; k++) {
        acked += d->acked[k];
        unver += d->unverifiable[k];
    }
    printf("\n%sDR drill summary%s (%s, mode %s)\n", ctl_col(CTL_BOLD), ctl_col(CTL_RESET), c->name, d->mode);
    printf("  region lost       %s (kill -9 pid %d at +%lld ms)\n", d->first_active, (int)d->killed_pid,
           (long long)(d->t_kill / 1000));
    printf("  failover          to %s: promoted at +%lld ms, front door switched at +%lld ms\n", d->second_active,
           (long long)(d->t_promoted / 1000), (long long)(d->t_routed / 1000));
    if (d->t_first_fail >= 0 && d->t_first_ok < 0)
        printf("  RTO               %snot recovered%s: no success after the first failure (+%lld ms)\n",
               ctl_col(CTL_RED), ctl_col(CTL_RESET), (long long)(d->t_first_fail / 1000));
    else if (d->t_first_fail < 0)
        printf("  RTO               %s0 ms%s: no request failed through the front door\n", ctl_col(CTL_GREEN),
               ctl_col(CTL_RESET));
    else
        printf("  RTO               %s%lld ms%s (objective %lld ms): first failed request +%lld ms, first success "
               "after it +%lld ms\n", d->rto_ms <= c->rto_target_ms ? ctl_col(CTL_GREEN) : ctl_col(CTL_RED),
               (long long)d->rto_ms, ctl_col(CTL_RESET), (long long)c->rto_target_ms,
               (long long)(d->t_first_fail / 1000), (long long)(d->t_first_ok / 1000));
    printf("  RPO               %s%lld acknowledged write(s) lost%s, window %lld ms (objective %lld ms)\n",
           d->lost ? ctl_col(CTL_RED) : ctl_col(CTL_GREEN), (long long)d->lost, ctl_col(CTL_RESET),
           (long long)d->rpo_window_ms, (long long)c->rpo_target_ms);
    printf("  writes            %lld acknowledged and checked on %s: %lld tokens, %lld users, %lld refresh "
           "families, %lld rotations%s\n", (long long)acked, d->first_active, (long long)d->acked[DK_TOKEN],
           (long long)d->acked[DK_USER], (long long)d->acked[DK_CHAIN], (long long)d->acked[DK_REFRESH],
           d->scim ? "" : " (no SCIM: token issuance only)");
    if (unver)
        printf("  unverifiable      %lld refresh write(s) in families abandoned after a failed rotation (a client "
               "cannot tell whether the rotation happened)\n", (long long)unver);
    printf("  requests          %lld through the front door, %lld failed\n", (long long)d->requests,
           (long long)d->failures);
    if (d->rj.rc == CTL_OK)
        printf("  rejoin            %s back as standby in %lld ms%s%s\n", d->first_active,
               (long long)(d->rj.total_ms), d->rj.divergent_file[0] ? ", divergent file " : "",
               d->rj.divergent_file);
    if (d->so.rc == CTL_OK)
        printf("  switchover        back to %s: write pause %lld ms as refugectl saw it, longest gap between "
               "successful writes %lld ms, %s\n", d->first_active, (long long)d->so.pause_ms,
               (long long)d->switch_pause_ms, d->switch_fail_ms > 0 ? "some requests failed" : "no request failed");
    printf("  data              %s: %s\n", d->data_equal ? "both nodes equal" : "NOT EQUAL", d->data_detail);
    for (size_t i = 0; i < d->ndirs; i++)
        printf("  directory         %s: %s%s%s\n", d->dirs[i].name,
               d->dirs[i].rc == 0 ? "in sync across the regions" : d->dirs[i].rc == 1 ? "standby region behind by "
                                                                                       : "unknown: ",
               d->dirs[i].rc == 1 ? log_i64(d->dirs[i].lag_ms) : d->dirs[i].rc < 0 ? d->dirs[i].why : "",
               d->dirs[i].rc == 1 ? " ms" : "");
    printf("  objectives        %s%s%s%s%s\n", d->objectives_met ? ctl_col(CTL_GREEN) : ctl_col(CTL_RED),
           d->objectives_met ? "met" : "missed", ctl_col(CTL_RESET), d->verdict[0] ? ": " : "", d->verdict);
}

static int run(struct drill *d, const char *report_dir)
{
    struct ctl_cluster *c = d->c;
    struct ctl_node *a = NULL, *b = NULL;
    char why[768] = "", err[512] = "";
    int64_t third = (int64_t)d->duration_s * 1000 / 3, lsn = 0;
    bool load = false;

    d->t_kill = d->t_promoted = d->t_routed = d->t_switch_stop = d->t_switch_routed = -1;
    d->rto_ms = 0;
    d->t_first_fail = d->t_first_ok = -1;
    d->rc = CTL_FAIL;
    phase_begin(d, "check");
    d->rc = check_preconditions(d, &a, &b, why, sizeof why);
    phase_end(d);
    if (d->rc != CTL_OK) {
        printf("%sdrill refused%s: %s\n", ctl_col(CTL_RED), ctl_col(CTL_RESET), why);
        return d->rc;
    }
    snprintf(d->first_active, sizeof d->first_active, "%s", a->name);
    snprintf(d->second_active, sizeof d->second_active, "%s", b->name);
    d->rc = CTL_FAIL;

    phase_begin(d, "setup");
    if (drill_setup_load(d, err, sizeof err) < 0) {
        printf("%sdrill failed%s: load setup: %s\n", ctl_col(CTL_RED), ctl_col(CTL_RESET), err);
        return CTL_FAIL;
    }
    ctl_step("setup", "client %s%s%s%s%s", d->client_id, d->scim ? ", SCIM user creates" : ", no SCIM",
             d->refresh ? ", refresh-token families" : "", !d->refresh && d->refresh_why[0] ? ", no refresh-token "
             "families: " : "", d->refresh ? "" : d->refresh_why);
    if (wait_in_step(d, a, b, 10000, &lsn) < 0) {
        printf("%sdrill failed%s: %s did not catch up with %s before the kill\n", ctl_col(CTL_RED),
               ctl_col(CTL_RESET), b->name, a->name);
        return CTL_FAIL;
    }
    ctl_step("setup", "%s in step with %s at lsn %lld", b->name, a->name, (long long)lsn);
    phase_end(d);

    if (drill_start_load(d) < 0) {
        printf("drill failed: cannot start load threads\n");
        return CTL_FAIL;
    }
    load = true;
    run_load_for(d, "baseline", third);

    phase_begin(d, "kill");
    d->killed_pid = ctl_node_pid(a);
    if (d->killed_pid <= 0 || kill(d->killed_pid, SIGKILL) < 0) {
        snprintf(d->verdict, sizeof d->verdict, "could not kill %s's process", a->name);
        goto stop;
    }
    d->t_kill = drill_now(d);
    ctl_step("kill", "kill -9 %d (%s, region %s)", (int)d->killed_pid, a->name, a->region);
    phase_end(d);

    phase_begin(d, "failover");
    struct ctl_failover_opts fo = { .target = b->name, .force = true };
    ctl_failover(c, &fo, &d->fo);
    phase_end(d);
    if (d->fo.rc != CTL_OK) {
        snprintf(d->verdict, sizeof d->verdict, "failover failed: %s", d->fo.reason);
        goto stop;
    }
    d->t_promoted = d->fo.promoted_ms * 1000;
    d->t_routed = d->fo.routed_ms * 1000;

    run_load_for(d, "degraded", third);

    phase_begin(d, "rejoin");
    ctl_rejoin(c, a->name, &d->rj);
    phase_end(d);
    if (d->rj.rc != CTL_OK) {
        snprintf(d->verdict, sizeof d->verdict, "rejoin failed: %s", d->rj.reason);
        goto stop;
    }

    phase_begin(d, "switchover");
    ctl_switchover(c, a->name, &d->so);
    phase_end(d);
    if (d->so.rc != CTL_OK) {
        snprintf(d->verdict, sizeof d->verdict, "switchover failed: %s", d->so.reason);
        goto stop;
    }
    d->t_switch_stop = d->so.write_stop_ms * 1000;
    d->t_switch_routed = d->so.routed_ms * 1000;

    run_load_for(d, "final", third);
    d->rc = CTL_OK;
stop:
    if (load)
        drill_stop_load(d);
    if (d->t_kill < 0)
        return CTL_FAIL;

    phase_begin(d, "verify");
    struct ctl_node *final_active = d->rc == CTL_OK ? a : b;
    struct ctl_node *other = final_active == a ? b : a;
    if (drill_verify(d, final_active, err, sizeof err) < 0)
        ctl_warn("verification on %s: %s", final_active->name, err);
    else if (err[0])
        ctl_warn("%s", err);
    /* Same data: the standby caught up with the active's position, then both
     * digests match. Other clients may still be writing (the drill is run on
     * live deployments): a digest taken while they do is retried. */
    char da[512] = "", db[512] = "";
    int ra = -1, rb = -1;
    bool in_step = false;
    for (int attempt = 0; attempt < 3 && !d->data_equal; attempt++) {
        in_step = wait_in_step(d, final_active, other, 15000, &lsn) == 0;
        d->final_lsn[0] = lsn;
        ra = drill_digest(d, final_active, d->digest[0], sizeof d->digest[0], da, sizeof da);
        rb = drill_digest(d, other, d->digest[1], sizeof d->digest[1], db, sizeof db);
        d->data_equal = in_step && ra == 0 && rb == 0 && strcmp(d->digest[0], d->digest[1]) == 0;
    }
    if (!in_step)
        ctl_warn("%s did not catch up with %s within 15 s", other->name, final_active->name);
    snprintf(d->data_detail, sizeof d->data_detail,
             "%s caught up with %s at lsn %lld%s; %s sha256:%.16s (%s); %s sha256:%.16s (%s)", other->name,
             final_active->name, (long long)d->final_lsn[0], in_step ? "" : " (NOT)", final_active->name,
             d->digest[0], ra == 0 ? da : "unavailable", other->name, d->digest[1], rb == 0 ? db : "unavailable");
    ctl_step("verify", "%s", d->data_detail);
    /* The user stores in LDAP: the standby region's directory has what the
     * active region's has (contextCSN; both stamped by the provider). */
    struct ctl_status sa = { 0 }, so = { 0 };
    ctl_status_fetch(c, final_active, (int)c->request_timeout_ms, &sa);
    ctl_status_fetch(c, other, (int)c->request_timeout_ms, &so);
    if (sa.rc == 0 && so.rc == 0)
        d->ndirs = ctl_directories_compare(sa.raw, so.raw, d->dirs, sizeof d->dirs / sizeof d->dirs[0]);
    for (size_t i = 0; i < d->ndirs; i++)
        ctl_step("verify", "directory %s: %s", d->dirs[i].name,
                 d->dirs[i].rc == 0 ? "in sync" : d->dirs[i].rc == 1 ? "behind" : d->dirs[i].why);
    ctl_status_free(&sa);
    ctl_status_free(&so);
    phase_end(d);

    measure(d);
    bool strict = strcmp(d->mode, "async") != 0;
    d->objectives_met = d->rc == CTL_OK;
    if (d->t_first_fail >= 0 && d->t_first_ok < 0)
        missed(d, "no successful request after the first failure (%lld ms and counting)", (long long)d->rto_ms);
    else if (d->rto_ms > c->rto_target_ms)
        missed(d, "RTO %lld ms over the objective %lld ms", (long long)d->rto_ms, (long long)c->rto_target_ms);
    if (d->rpo_window_ms > c->rpo_target_ms)
        missed(d, "RPO window %lld ms over the objective %lld ms", (long long)d->rpo_window_ms,
               (long long)c->rpo_target_ms);
    if (strict && d->lost > 0)
        missed(d, "%lld acknowledged write(s) lost in %s mode", (long long)d->lost, d->mode);
    if (!d->data_equal)
        missed(d, "the nodes' data differ");
    for (size_t i = 0; i < d->ndirs; i++) {
        if (d->dirs[i].rc < 0)
            missed(d, "directory %s: replication state unknown (%s)", d->dirs[i].name, d->dirs[i].why);
        else if (d->dirs[i].rc == 1 && d->dirs[i].lag_ms > c->rpo_target_ms)
            missed(d, "directory %s %lld ms behind (RPO objective %lld ms)", d->dirs[i].name,
                   (long long)d->dirs[i].lag_ms, (long long)c->rpo_target_ms);
    }
    if (drill_write_report(d, report_dir, err, sizeof err) < 0)
        ctl_warn("report: %s", err);
    else
        ctl_step("report", "%s/drill.json, %s/drill.html", report_dir, report_dir);
    print_summary(d);
    return d->rc == CTL_OK && d->objectives_met ? CTL_OK : CTL_FAIL;
}

int ctl_drill_run(int argc, char **argv)
{
    struct ctl_cluster c;
    struct drill *d;
    const char *path = NULL, *report = "drill-report", *v;
    char err[1024], *end;
    int missing = 0, rc;
    long n;

    d = xcalloc(1, sizeof *d);
    d->duration_s = DRILL_DEFAULT_DURATION;
    d->threads = DRILL_DEFAULT_THREADS;
    d->rate = DRILL_DEFAULT_RATE;
    for (int i = 1; i < argc; i++) {
        if ((v = ctl_opt_value(argc, argv, &i, "-c", &missing)) ||
            (v = ctl_opt_value(argc, argv, &i, "--cluster", &missing))) {
            path = v;
        } else if ((v = ctl_opt_value(argc, argv, &i, "--mode", &missing))) {
            if (strcmp(v, "async") && strcmp(v, "remote_write") && strcmp(v, "remote_apply")) {
                fprintf(stderr, "refugectl: --mode is async, remote_write or remote_apply\n");
                free(d);
                return CTL_USAGE;
            }
            d->mode_req = v;
        } else if ((v = ctl_opt_value(argc, argv, &i, "--report", &missing))) {
            report = v;
        } else if ((v = ctl_opt_value(argc, argv, &i, "--duration", &missing)) ||
                   (v = ctl_opt_value(argc, argv, &i, "--threads", &missing)) ||
                   (v = ctl_opt_value(argc, argv, &i, "--rate", &missing))) {
            n = strtol(v, &end, 10);
            const char *opt = argv[i - (strchr(argv[i], '=') ? 0 : 1)];
            bool dur = strncmp(opt, "--duration", 10) == 0, thr = strncmp(opt, "--threads", 9) == 0;
            long lo = 1, hi = dur ? 3600 : thr ? DRILL_MAX_THREADS : 5000;
            if (*end || end == v || n < lo || n > hi) {
                fprintf(stderr, "refugectl: %.*s wants %ld..%ld, got '%s'\n", (int)strcspn(opt, "="), opt, lo, hi, v);
                free(d);
                return CTL_USAGE;
            }
            if (dur)
                d->duration_s = (int)n;
            else if (thr)
                d->threads = (int)n;
            else
                d->rate = (int)n;
        } else {
            fprintf(stderr, missing ? "refugectl: %s needs a value\n" : "refugectl: drill: unexpected '%s'\n",
                    argv[i]);
            ctl_drill_usage(stderr);
            free(d);
            return CTL_USAGE;
        }
    }
    if (ctl_cluster_load(path, &c, err, sizeof err) < 0) {
        fprintf(stderr, "refugectl: %s\n", err);
        ctl_cluster_free(&c);
        free(d);
        return CTL_FAIL;
    }
    d->c = &c;
    ctl_out_begin("drill", c.journal);
    d->start_mono = time_mono_us() - ctl_elapsed_ms() * 1000;
    rc = run(d, report);
    if (d->t_kill >= 0)
        printf("DRILL mode=%s rto_ms=%lld rpo_lost_writes=%lld rpo_window_ms=%lld objectives=%s\n", d->mode,
               (long long)d->rto_ms, (long long)d->lost,
               (long long)d->rpo_window_ms, d->objectives_met ? "met" : "missed");
    fflush(stdout);
    for (int i = 0; i < DRILL_MAX_THREADS; i++)
        free(d->w[i].ev);
    ctl_out_end();
    ctl_cluster_free(&c);
    free(d);
    return rc;
}
