/*
 * failover — unplanned: the active region is gone (or sick), make NODE the
 * active one. `refugectl failover --to NODE [--force]`.
 *
 * The state machine. Every state observes before it acts, every action is
 * idempotent, and every transition is logged (ctl_step) and journaled, so an
 * interrupted failover is finished by running the same command again:
 *
 *   OBSERVE ─> DECIDE ─> FENCE_FRONT ─> DRAIN ─> FENCE_NODES ─> CATCH_UP ─> PROMOTE ─> ROUTE ─> VERIFY ─> DONE
 *      │          │          │                                   │            │
 *      │          REFUSED    REFUSED (no front-door control,     REFUSED      FAILED
 *      FAILED (target down)  without --force)                    (behind)
 *
 *   OBSERVE      status of every node (the target with the normal deadline,
 *                the others with the short fence deadline: they may be dead
 *                or cut off), HAProxy's servers, the front door. If the
 *                target already is the active node with the highest epoch,
 *                an earlier run promoted it: PROMOTE is skipped, fencing and
 *                routing are re-checked.
 *   DECIDE       the data-loss estimate: the target's position against the
 *                old active's (live if reachable, else the highest position
 *                any other node or the target's replication link knows). A
 *                target known to be behind an unreachable old active is
 *                refused without --force: that loss is the operator's call.
 *   FENCE_FRONT  every other node's HAProxy server to MAINT: whatever it
 *                believes, no client reaches it any more.
 *   DRAIN        a live old active that still streams to the target gets
 *                no new client writes now: wait until the target applied
 *                all it committed (bounded), before demotion stops it.
 *   FENCE_NODES  every other reachable active node is demoted (it stops
 *                writes at once and will follow the new epoch). One that does
 *                not answer within the fence deadline stays fenced at the
 *                front door and steps down when it meets the higher epoch.
 *   CATCH_UP     when the old active was demoted, wait (catchup_timeout)
 *                until the target applied its final position: then the
 *                failover loses nothing. Promotion itself applies everything
 *                the target already received.
 *   PROMOTE      POST /admin/v1/node/promote on the target (epoch + 1).
 *   ROUTE        the target's HAProxy server ready + health up.
 *   VERIFY       the front door answers /health/ready 200 from the target's
 *                region.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/timeutil.h"
#include "dr.h"
#include "refugectl.h"

enum fo_state {
    FO_OBSERVE,
    FO_DECIDE,
    FO_FENCE_FRONT,
    FO_DRAIN,
    FO_FENCE_NODES,
    FO_CATCH_UP,
    FO_PROMOTE,
    FO_ROUTE,
    FO_VERIFY,
    FO_DONE,
    FO_REFUSED,
    FO_FAILED,
};

static const char *const state_names[] = {
    [FO_OBSERVE] = "observe",         [FO_DECIDE] = "decide",   [FO_FENCE_FRONT] = "fence-front", [FO_DRAIN] = "drain",
    [FO_FENCE_NODES] = "fence-nodes", [FO_CATCH_UP] = "catch-up", [FO_PROMOTE] = "promote",
    [FO_ROUTE] = "route",             [FO_VERIFY] = "verify",   [FO_DONE] = "done",
    [FO_REFUSED] = "refused",         [FO_FAILED] = "failed",
};

struct fo {
    struct ctl_cluster *c;
    const struct ctl_failover_opts *o;
    struct ctl_failover_result *r;
    struct ctl_node *target;
    size_t ti;
    struct ctl_view v;
    bool must_demote[CTL_MAX_NODES];  /* reachable and active */
    bool demoted[CTL_MAX_NODES];
    int64_t demoted_lsn;              /* highest final position of a demoted node, -1 none */
    int64_t old_known_ms;             /* the window estimate, -1 unknown */
};

static enum fo_state fail(struct fo *f, enum fo_state s, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static enum fo_state fail(struct fo *f, enum fo_state s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->r->reason, sizeof f->r->reason, fmt, ap);
    va_end(ap);
    return s;
}

static enum fo_state observe(struct fo *f)
{
    struct ctl_cluster *c = f->c;
    int timeouts[CTL_MAX_NODES];
    const struct ctl_status *t;

    for (size_t i = 0; i < c->n_nodes; i++)
        timeouts[i] = (int)(i == f->ti ? c->request_timeout_ms : c->fence_timeout_ms);
    ctl_view_free(&f->v);
    ctl_view_observe(&f->v, c, timeouts, CTL_VIEW_NO_FRONT);
    t = &f->v.st[f->ti];
    if (t->rc < 0)
        return fail(f, FO_FAILED, "target %s is unreachable: %s", f->target->name, t->error);
    ctl_step("observe", "target %s: %s, epoch %lld, lsn %lld%s%s", f->target->name, t->role, (long long)t->epoch,
             (long long)t->lsn, t->peer_connected ? ", replication connected" : ", replication down",
             t->diverged ? ", DIVERGED" : "");

    bool higher_elsewhere = false;
    for (size_t i = 0; i < c->n_nodes; i++) {
        const struct ctl_status *s = &f->v.st[i];
        f->must_demote[i] = false;
        if (i == f->ti)
            continue;
        if (s->rc < 0) {
            ctl_step("observe", "%s: unreachable within %d ms (%s)", c->nodes[i].name, timeouts[i], s->error);
            continue;
        }
        ctl_step("observe", "%s: %s, epoch %lld, lsn %lld", c->nodes[i].name, s->role, (long long)s->epoch,
                 (long long)s->lsn);
        if (ctl_status_is_active(s)) {
            f->must_demote[i] = true;
            if (!f->r->old_active[0])
                snprintf(f->r->old_active, sizeof f->r->old_active, "%s", c->nodes[i].name);
            if (s->epoch >= t->epoch)
                higher_elsewhere = true;
        }
    }
    if (ctl_status_is_active(t) && !higher_elsewhere) {
        f->r->already_done = true;
        f->r->epoch = t->epoch;
        f->r->target_lsn = t->lsn;
        ctl_step("observe", "%s is already the active node with the highest epoch (%lld): promotion done by an "
                 "earlier run; re-checking fencing and routing", f->target->name, (long long)t->epoch);
    } else if (ctl_status_is_active(t)) {
        return fail(f, FO_FAILED, "%s and another node are both active with no higher epoch on %s: split brain, "
                    "resolve by hand (demote one, then rejoin it)", f->target->name, f->target->name);
    }
    if (t->diverged && !f->r->already_done && !f->o->force)
        return fail(f, FO_REFUSED, "target %s reports diverged replication (apply halted at lsn %lld); promoting "
                    "it loses what it did not apply: use --force to accept", f->target->name, (long long)t->lsn);
    return FO_DECIDE;
}

static enum fo_state decide(struct fo *f)
{
    struct ctl_cluster *c = f->c;
    const struct ctl_status *t = &f->v.st[f->ti];
    int64_t known = ctl_known_primary_lsn(t), from_nodes = -1;
    bool live_old_connected = false, live_old = false;

    if (f->r->already_done)
        return FO_FENCE_FRONT;
    f->old_known_ms = -1;
    for (size_t i = 0; i < c->n_nodes; i++) {
        const struct ctl_status *s = &f->v.st[i];
        if (i == f->ti || s->rc < 0)
            continue;
        if (s->lsn > from_nodes)
            from_nodes = s->lsn;
        if (f->must_demote[i]) {
            live_old = true;
            live_old_connected |= s->peer_connected;
            if (s->rpo_exposure_ms > f->old_known_ms)
                f->old_known_ms = s->rpo_exposure_ms;
        }
    }
    f->r->old_lsn = from_nodes > known ? from_nodes : known;
    if (!live_old && t->lag_ms > 0)
        f->old_known_ms = t->lag_ms;
    f->r->target_lsn = t->lsn;
    if (f->r->old_lsn < 0) {
        ctl_step("decide", "no other node reachable and %s's status names no primary position: the loss is "
                 "unknown (bounded by the replication mode: none in remote_write/remote_apply)", f->target->name);
        return FO_FENCE_FRONT;
    }
    int64_t behind = f->r->old_lsn - t->lsn;
    if (behind <= 0) {
        ctl_step("decide", "%s holds lsn %lld, the highest known position is %lld: nothing to lose",
                 f->target->name, (long long)t->lsn, (long long)f->r->old_lsn);
        return FO_FENCE_FRONT;
    }
    if (live_old && (live_old_connected || t->peer_connected)) {
        ctl_step("decide", "%s is %lld records behind the live old active, which is connected: it will catch up "
                 "after fencing", f->target->name, (long long)behind);
        return FO_FENCE_FRONT;
    }
    if (!f->o->force)
        return fail(f, FO_REFUSED, "%s is %lld records behind the last known position %lld (%s) and cannot catch "
                    "up: promoting it loses them. Re-run with --force to accept the loss, or bring the old active "
                    "back and use switchover", f->target->name, (long long)behind, (long long)f->r->old_lsn,
                    live_old ? "old active, replication down" : "old active unreachable");
    ctl_step("decide", "--force: accepting the loss of %lld records (target lsn %lld, known %lld)", (long long)behind,
             (long long)t->lsn, (long long)f->r->old_lsn);
    return FO_FENCE_FRONT;
}

static enum fo_state fence_front(struct fo *f)
{
    struct ctl_cluster *c = f->c;
    char err[512];

    if (f->v.hap_rc < 0) {
        if (!f->o->force)
            return fail(f, FO_REFUSED, "cannot control the front door (%s): without it a live old active could "
                        "keep taking writes. Fix the HAProxy socket, or re-run with --force", f->v.hap_err);
        ctl_warn("--force: front door control unavailable (%s); fencing relies on demotion and epochs",
                 f->v.hap_err);
        return FO_DRAIN;
    }
    for (size_t i = 0; i < c->n_nodes; i++) {
        if (i == f->ti)
            continue;
        if (ctl_route(c, &c->nodes[i], CTL_ROUTE_FENCE, ctl_view_hap(&f->v, &c->nodes[i]), "fence-front", err,
                      sizeof err) < 0) {
            if (!f->o->force)
                return fail(f, FO_FAILED, "fencing %s at the front door: %s", c->nodes[i].name, err);
            ctl_warn("--force: fencing %s at the front door failed: %s", c->nodes[i].name, err);
        }
    }
    return FO_DRAIN;
}

/* A live old active still streams to the target: let the target drain the
 * stream (no new client writes arrive: the front door fences it) before the
 * demotion stops its sender. */
static enum fo_state drain(struct fo *f)
{
    struct ctl_cluster *c = f->c;
    const struct ctl_status *t = &f->v.st[f->ti];

    for (size_t i = 0; i < c->n_nodes; i++) {
        const struct ctl_status *s = &f->v.st[i];
        int64_t lsn = 0, t0 = time_mono_us();
        if (i == f->ti || !f->must_demote[i] || f->r->already_done)
            continue;
        if (!s->peer_connected && !t->peer_connected) {
            ctl_step("drain", "%s is not streaming to %s: nothing to drain", c->nodes[i].name, f->target->name);
            continue;
        }
        if (ctl_wait_drained(c, &c->nodes[i], f->target, (int)c->catchup_timeout_ms, &lsn) == 0)
            ctl_step("drain", "%s applied everything %s committed, lsn %lld (%lld ms)", f->target->name,
                     c->nodes[i].name, (long long)lsn, (long long)((time_mono_us() - t0) / 1000));
        else
            ctl_warn("%s did not drain %s's stream within %lld ms: the catch-up check decides", f->target->name,
                     c->nodes[i].name, (long long)c->catchup_timeout_ms);
    }
    return FO_FENCE_NODES;
}

static enum fo_state fence_nodes(struct fo *f)
{
    struct ctl_cluster *c = f->c;
    char err[512];

    f->demoted_lsn = -1;
    for (size_t i = 0; i < c->n_nodes; i++) {
        struct ctl_node *n = &c->nodes[i];
        if (i == f->ti || !f->must_demote[i])
            continue;
        int64_t t0 = time_mono_us();
        int rc = ctl_node_role(c, n, "demote", NULL, (int)c->fence_timeout_ms, err, sizeof err);
        if (rc < 0 && rc != -EALREADY) {
            ctl_warn("%s did not accept demote within %lld ms (%s): it stays fenced at the front door and steps "
                     "down when it sees epoch %lld", n->name, (long long)c->fence_timeout_ms, err,
                     (long long)f->v.st[f->ti].epoch + 1);
            continue;
        }
        f->demoted[i] = true;
        struct ctl_status s;
        ctl_status_fetch(c, n, (int)c->fence_timeout_ms, &s);
        if (s.rc == 0 && s.lsn > f->demoted_lsn)
            f->demoted_lsn = s.lsn;
        ctl_step("fence-nodes", "%s demoted (%lld ms)%s: writes stopped at lsn %lld", n->name,
                 (long long)((time_mono_us() - t0) / 1000), rc == -EALREADY ? " already" : "",
                 (long long)(s.rc == 0 ? s.lsn : -1));
        ctl_status_free(&s);
    }
    if (f->demoted_lsn > f->r->old_lsn)
        f->r->old_lsn = f->demoted_lsn;
    return FO_CATCH_UP;
}

static enum fo_state catch_up(struct fo *f)
{
    struct ctl_cluster *c = f->c;
    struct ctl_status s;

    if (f->r->already_done)
        return FO_ROUTE;
    if (f->demoted_lsn < 0) {
        ctl_step("catch-up", "no old active to wait for: promotion applies everything %s received",
                 f->target->name);
        return FO_PROMOTE;
    }
    int64_t t0 = time_mono_us();
    int rc = ctl_wait_position(c, f->target, f->demoted_lsn, NULL, (int)c->catchup_timeout_ms, &s);
    if (s.rc == 0)
        f->r->target_lsn = s.lsn;
    if (rc == 0) {
        ctl_step("catch-up", "%s applied lsn %lld, the old active's final position (%lld ms)", f->target->name,
                 (long long)s.lsn, (long long)((time_mono_us() - t0) / 1000));
        ctl_status_free(&s);
        return FO_PROMOTE;
    }
    int64_t behind = f->demoted_lsn - (s.rc == 0 ? s.lsn : 0);
    ctl_status_free(&s);
    if (!f->o->force)
        return fail(f, FO_REFUSED, "%s did not reach the old active's final lsn %lld within %lld ms (%lld records "
                    "behind). The old active is demoted and fenced, nothing accepts writes: re-run with --force "
                    "to promote %s anyway, or `refugectl failover --to OLD` to go back", f->target->name,
                    (long long)f->demoted_lsn, (long long)c->catchup_timeout_ms, (long long)behind,
                    f->target->name);
    ctl_warn("--force: promoting %s %lld records behind", f->target->name, (long long)behind);
    return FO_PROMOTE;
}

static enum fo_state promote(struct fo *f)
{
    struct ctl_cluster *c = f->c;
    struct ctl_status s;
    char err[512];
    int64_t t0 = time_mono_us();

    /* No old active was demoted: it is dead or cut off and will not stream
     * from the target soon. In remote_write / remote_apply the target may
     * acknowledge writes without a standby until one connects (the engine
     * reports the degraded state); otherwise writes would wait for the old
     * region to come back. A node that does not know the flag ignores it. */
    json_t *body = json_pack("{s:s, s:b}", "reason", "failover", "allow_standalone", f->demoted_lsn < 0);
    int rc = ctl_node_role(c, f->target, "promote", body, (int)(c->request_timeout_ms + c->catchup_timeout_ms),
                           err, sizeof err);
    json_decref(body);
    if (rc < 0 && rc != -EALREADY)
        return fail(f, FO_FAILED, "promote %s: %s. Other nodes stay fenced; re-run the same command", f->target->name,
                    err);
    ctl_status_fetch(c, f->target, (int)c->request_timeout_ms, &s);
    if (!ctl_status_is_active(&s)) {
        ctl_status_free(&s);
        return fail(f, FO_FAILED, "%s accepted promote but reports role %s", f->target->name, s.role);
    }
    f->r->epoch = s.epoch;
    f->r->target_lsn = f->r->target_lsn > 0 && s.lsn >= f->r->target_lsn ? f->r->target_lsn : s.lsn;
    f->r->promoted_ms = ctl_elapsed_ms();
    ctl_step("promote", "%s is active: epoch %lld, lsn %lld (%lld ms)", f->target->name, (long long)s.epoch,
             (long long)s.lsn, (long long)((time_mono_us() - t0) / 1000));
    ctl_status_free(&s);
    return FO_ROUTE;
}

static enum fo_state route(struct fo *f)
{
    char err[512];

    if (f->v.hap_rc < 0) {
        ctl_warn("front door control unavailable: HAProxy's health checks will route to %s", f->target->name);
        return FO_VERIFY;
    }
    if (ctl_route(f->c, f->target, CTL_ROUTE_ON, ctl_view_hap(&f->v, f->target), "route", err, sizeof err) < 0)
        ctl_warn("routing to %s through HAProxy's API failed (%s): waiting for its health checks", f->target->name,
                 err);
    f->r->routed_ms = ctl_elapsed_ms();
    return FO_VERIFY;
}

static enum fo_state verify(struct fo *f)
{
    int64_t t0 = time_mono_us();
    int rc = ctl_wait_front(f->c, f->target->region, 3000);

    if (rc < 0)
        return fail(f, FO_FAILED, "the front door does not answer ready from %s (%s): check HAProxy",
                    f->target->region, rc == -ETIMEDOUT ? "timed out" : ctl_http_strerror(rc));
    ctl_step("verify", "front door %s/health/ready answers 200 from %s (%lld ms)", f->c->frontend_url,
             f->target->region, (long long)((time_mono_us() - t0) / 1000));
    return FO_DONE;
}

int ctl_failover(struct ctl_cluster *c, const struct ctl_failover_opts *o, struct ctl_failover_result *r)
{
    int64_t t_begin = ctl_elapsed_ms();
    struct fo f = { .c = c, .o = o, .r = r, .demoted_lsn = -1, .old_known_ms = -1 };
    enum fo_state s = FO_OBSERVE, next;

    memset(r, 0, sizeof *r);
    r->old_lsn = r->lost_records = r->lost_window_ms = -1;
    f.target = ctl_cluster_node(c, o->target);
    if (!f.target) {
        snprintf(r->reason, sizeof r->reason, "no node '%s' in %s", o->target, c->path);
        r->rc = CTL_FAIL;
        return r->rc;
    }
    f.ti = ctl_node_index(c, f.target);
    ctl_step("failover", "to %s (region %s)%s", f.target->name, f.target->region, o->force ? ", --force" : "");
    while (s != FO_DONE && s != FO_REFUSED && s != FO_FAILED) {
        switch (s) {
        case FO_OBSERVE: next = observe(&f); break;
        case FO_DECIDE: next = decide(&f); break;
        case FO_FENCE_FRONT: next = fence_front(&f); break;
        case FO_DRAIN: next = drain(&f); break;
        case FO_FENCE_NODES: next = fence_nodes(&f); break;
        case FO_CATCH_UP: next = catch_up(&f); break;
        case FO_PROMOTE: next = promote(&f); break;
        case FO_ROUTE: next = route(&f); break;
        case FO_VERIFY: next = verify(&f); break;
        default: next = FO_FAILED; break;
        }
        if (next == FO_REFUSED || next == FO_FAILED)
            ctl_step(state_names[next], "in %s: %s", state_names[s], r->reason);
        s = next;
    }
    if (s == FO_DONE && r->old_lsn >= 0 && r->target_lsn >= 0) {
        r->lost_records = r->old_lsn > r->target_lsn ? r->old_lsn - r->target_lsn : 0;
        r->lost_window_ms = r->lost_records ? f.old_known_ms : 0;
    }
    r->total_ms = ctl_elapsed_ms() - t_begin;
    r->rc = s == FO_DONE ? CTL_OK : s == FO_REFUSED ? CTL_REFUSED : CTL_FAIL;
    ctl_view_free(&f.v);
    return r->rc;
}

/* --------------------------------------------------------------- CLI */

void ctl_failover_usage(FILE *f)
{
    fprintf(f, "refugectl failover --to NODE [--force] [-c CLUSTER.CONF]\n"
               "    unplanned failover: fence the old active (HAProxy MAINT; demote it if it answers),\n"
               "    let NODE apply what it received, promote it, route the front door to it, verify,\n"
               "    and print the data-loss window. Refused (exit 3) when NODE is known to be behind\n"
               "    and cannot catch up, unless --force. Safe to re-run after an interruption.\n");
}

int ctl_failover_run(int argc, char **argv)
{
    struct ctl_failover_opts o = { 0 };
    struct ctl_failover_result r;
    struct ctl_cluster c;
    const char *path = NULL, *v;
    char err[1024];
    int missing = 0;

    for (int i = 1; i < argc; i++) {
        if ((v = ctl_opt_value(argc, argv, &i, "-c", &missing)) ||
            (v = ctl_opt_value(argc, argv, &i, "--cluster", &missing)))
            path = v;
        else if ((v = ctl_opt_value(argc, argv, &i, "--to", &missing)))
            o.target = v;
        else if (strcmp(argv[i], "--force") == 0)
            o.force = true;
        else {
            fprintf(stderr, missing ? "refugectl: %s needs a value\n" : "refugectl: failover: unexpected '%s'\n",
                    argv[i]);
            ctl_failover_usage(stderr);
            return CTL_USAGE;
        }
    }
    if (!o.target) {
        ctl_failover_usage(stderr);
        return CTL_USAGE;
    }
    if (ctl_cluster_load(path, &c, err, sizeof err) < 0) {
        fprintf(stderr, "refugectl: %s\n", err);
        ctl_cluster_free(&c);
        return CTL_FAIL;
    }
    if (!ctl_cluster_node(&c, o.target)) {
        fprintf(stderr, "refugectl: no node '%s' in %s\n", o.target, c.path);
        ctl_cluster_free(&c);
        return CTL_USAGE;
    }
    ctl_out_begin("failover", c.journal);
    ctl_failover(&c, &o, &r);
    printf("\n");
    if (r.rc == CTL_OK) {
        printf("%sfailover to %s complete%s in %lld ms: epoch %lld, front door -> %s\n", ctl_col(CTL_GREEN), o.target,
               ctl_col(CTL_RESET), (long long)r.total_ms, (long long)r.epoch,
               ctl_cluster_node(&c, o.target)->region);
        if (r.already_done)
            printf("(%s was already promoted by an earlier run; fencing and routing re-checked)\n", o.target);
        if (r.lost_records < 0)
            printf("data-loss window: unknown (old active unreachable, no position reported by %s); %s had lsn "
                   "%lld\n", o.target, o.target, (long long)r.target_lsn);
        else if (r.lost_records == 0)
            printf("data-loss window: 0 transaction(s) (%s at lsn %lld, old active last known at lsn %lld)\n",
                   o.target, (long long)r.target_lsn, (long long)r.old_lsn);
        else if (r.lost_window_ms >= 0)
            printf("data-loss window: %lld transaction(s) spanning %lld ms (%s at lsn %lld, old active last known "
                   "at lsn %lld); rejoin exports them\n", (long long)r.lost_records, (long long)r.lost_window_ms,
                   o.target, (long long)r.target_lsn, (long long)r.old_lsn);
        else
            printf("data-loss window: %lld transaction(s), time span unknown (%s at lsn %lld, old active last known "
                   "at lsn %lld); rejoin exports them\n", (long long)r.lost_records, o.target,
                   (long long)r.target_lsn, (long long)r.old_lsn);
        if (r.old_active[0])
            printf("next: when %s is back, `refugectl rejoin %s`\n", r.old_active, r.old_active);
    } else {
        printf("%sfailover %s%s: %s\n", ctl_col(CTL_RED), r.rc == CTL_REFUSED ? "refused" : "failed",
               ctl_col(CTL_RESET), r.reason);
    }
    ctl_out_end();
    ctl_cluster_free(&c);
    return r.rc;
}
