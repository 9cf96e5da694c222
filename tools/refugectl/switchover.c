/*
 * switchover — planned, zero loss: `refugectl switchover --to NODE`.
 *
 *   OBSERVE ─> PRE_SYNC ─> DRAIN ─> STOP_WRITES ─> CATCH_UP ─> PROMOTE ─> ROUTE ─> FOLLOW ─> VERIFY ─> DONE
 *      │           │          │          │              │           │
 *      REFUSED     REFUSED    └──────────┴──────────────┴───────────┴─> ROLLBACK (the old active takes
 *                                                                       writes again) ─> FAILED
 *
 *   OBSERVE      exactly one active node (the source), NODE a connected,
 *                undiverged standby. NODE already active and the source a
 *                standby means an earlier run got past PROMOTE: only ROUTE,
 *                FOLLOW and VERIFY are re-done.
 *   PRE_SYNC     before anything stops, wait (catchup_timeout) until the
 *                standby is close (lag ≤ 200 records and ≤ 200 ms): the write
 *                pause then covers only the last few transactions.
 *   DRAIN        the source's HAProxy server is held (health down): no new
 *                client request reaches it (clients see a fast 503 and
 *                retry). Requests already inside finish, and we wait until
 *                NODE applied the source's position and the position stands
 *                still: the stream is drained while the sender still runs.
 *   STOP_WRITES  demote the source: it stops accepting writes at once (also
 *                its own background jobs) and reports its final position.
 *   CATCH_UP     wait until NODE applied exactly that final position (after
 *                DRAIN, normally already true). If it does not within
 *                catchup_timeout, ROLLBACK promotes the source again (if it
 *                was demoted) and routes back to it: nothing is lost.
 *   PROMOTE      NODE becomes active (epoch + 1) starting right after the
 *                source's final position: zero loss by construction.
 *   ROUTE        NODE's HAProxy server ready + health up.
 *   FOLLOW       the old active, now a standby, connects to NODE (waited
 *                for, warned about if slow: it does not affect writes).
 *   VERIFY       the front door answers ready from NODE's region.
 *
 * The write pause reported is DRAIN to ROUTE as refugectl saw it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/timeutil.h"
#include "dr.h"
#include "refugectl.h"

#define PRE_SYNC_MAX_RECORDS 200
#define PRE_SYNC_MAX_MS 200

enum so_state { SO_OBSERVE, SO_PRE_SYNC, SO_DRAIN, SO_STOP_WRITES, SO_CATCH_UP, SO_PROMOTE, SO_ROUTE, SO_FOLLOW,
                SO_VERIFY, SO_ROLLBACK, SO_DONE, SO_REFUSED, SO_FAILED };

static const char *const state_names[] = {
    [SO_OBSERVE] = "observe", [SO_PRE_SYNC] = "pre-sync", [SO_DRAIN] = "drain", [SO_STOP_WRITES] = "stop-writes",
    [SO_CATCH_UP] = "catch-up", [SO_PROMOTE] = "promote", [SO_ROUTE] = "route", [SO_FOLLOW] = "follow",
    [SO_VERIFY] = "verify", [SO_ROLLBACK] = "rollback", [SO_DONE] = "done", [SO_REFUSED] = "refused",
    [SO_FAILED] = "failed",
};

struct so {
    struct ctl_cluster *c;
    struct ctl_switchover_result *r;
    struct ctl_node *target, *source;
    struct ctl_view v;
    bool demoted;            /* the source accepted demote: a rollback must promote it again */
};

static enum so_state fail(struct so *s, enum so_state st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static enum so_state fail(struct so *s, enum so_state st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->r->reason, sizeof s->r->reason, fmt, ap);
    va_end(ap);
    return st;
}

static enum so_state observe(struct so *s)
{
    struct ctl_cluster *c = s->c;
    size_t ti = ctl_node_index(c, s->target), first = 0;
    const struct ctl_status *t;

    ctl_view_free(&s->v);
    ctl_view_observe(&s->v, c, NULL, CTL_VIEW_NO_FRONT);
    t = &s->v.st[ti];
    if (t->rc < 0)
        return fail(s, SO_REFUSED, "target %s is unreachable: %s", s->target->name, t->error);
    size_t actives = ctl_view_actives(&s->v, &first);
    if (actives == 0)
        return fail(s, SO_REFUSED, "no node is active: a switchover needs a live active node (use failover)");
    if (actives > 1)
        return fail(s, SO_REFUSED, "%zu nodes report active: resolve with `refugectl failover --to NODE`", actives);
    if (first == ti) {
        /* target active: done by an earlier run, unless nothing follows it */
        s->r->already_done = true;
        s->r->epoch = t->epoch;
        s->r->final_lsn = t->lsn;
        for (size_t i = 0; i < c->n_nodes; i++)
            if (i != ti && ctl_status_is_standby(&s->v.st[i]) && !s->source) {
                s->source = &c->nodes[i];
                snprintf(s->r->old_active, sizeof s->r->old_active, "%s", c->nodes[i].name);
            }
        ctl_step("observe", "%s is already active (epoch %lld): re-checking routing", s->target->name,
                 (long long)t->epoch);
        return SO_ROUTE;
    }
    s->source = &c->nodes[first];
    snprintf(s->r->old_active, sizeof s->r->old_active, "%s", s->source->name);
    const struct ctl_status *src = &s->v.st[first];
    ctl_step("observe", "active %s: epoch %lld, lsn %lld; target %s: %s, lsn %lld, replication %s", s->source->name,
             (long long)src->epoch, (long long)src->lsn, s->target->name, t->role, (long long)t->lsn,
             t->peer_connected ? "connected" : "down");
    if (!ctl_status_is_standby(t))
        return fail(s, SO_REFUSED, "target %s is not a standby (role %s)", s->target->name, t->role);
    if (t->diverged)
        return fail(s, SO_REFUSED, "target %s reports diverged replication: `refugectl rejoin %s` first",
                    s->target->name, s->target->name);
    if (!t->peer_connected || !src->peer_connected)
        return fail(s, SO_REFUSED, "replication between %s and %s is not connected: a switchover would wait for "
                    "it; check `refugectl status`", s->source->name, s->target->name);
    if (t->epoch != src->epoch)
        return fail(s, SO_REFUSED, "target %s is at epoch %lld, the active at %lld: it is not following the active "
                    "node's history (`refugectl rejoin %s`)", s->target->name, (long long)t->epoch,
                    (long long)src->epoch, s->target->name);
    return SO_PRE_SYNC;
}

static enum so_state pre_sync(struct so *s)
{
    struct ctl_cluster *c = s->c;
    int64_t deadline = time_mono_us() + c->catchup_timeout_ms * 1000;
    struct ctl_status src;

    for (;;) {
        ctl_status_fetch(c, s->source, (int)c->request_timeout_ms, &src);
        if (src.rc < 0) {
            ctl_status_free(&src);
            return fail(s, SO_REFUSED, "active %s stopped answering: %s", s->source->name, src.error);
        }
        bool close = src.peer_connected && src.lag_records <= PRE_SYNC_MAX_RECORDS && src.lag_ms <= PRE_SYNC_MAX_MS;
        int64_t rec = src.lag_records, ms = src.lag_ms;
        ctl_status_free(&src);
        if (close) {
            ctl_step("pre-sync", "%s is %lld records / %lld ms behind: close enough to stop writes",
                     s->target->name, (long long)rec, (long long)ms);
            return SO_DRAIN;
        }
        if (time_mono_us() >= deadline)
            return fail(s, SO_REFUSED, "%s stays %lld records / %lld ms behind after %lld ms: not switching (the "
                        "write pause would be long); nothing was changed", s->target->name, (long long)rec,
                        (long long)ms, (long long)c->catchup_timeout_ms);
        time_sleep_us(20000);
    }
}

static enum so_state drain(struct so *s)
{
    struct ctl_cluster *c = s->c;
    int64_t lsn = 0, t0 = time_mono_us();
    char err[512];

    s->r->write_stop_ms = ctl_elapsed_ms();
    if (s->v.hap_rc == 0 && ctl_route(c, s->source, CTL_ROUTE_HOLD, NULL, "drain", err, sizeof err) < 0)
        return fail(s, SO_ROLLBACK, "holding %s at the front door: %s", s->source->name, err);
    if (ctl_wait_drained(c, s->source, s->target, (int)c->catchup_timeout_ms, &lsn) < 0)
        return fail(s, SO_ROLLBACK, "%s did not catch up with %s while the front door held it (%lld ms)",
                    s->target->name, s->source->name, (long long)c->catchup_timeout_ms);
    ctl_step("drain", "no new requests reach %s; %s applied everything it committed, lsn %lld (%lld ms)",
             s->source->name, s->target->name, (long long)lsn, (long long)((time_mono_us() - t0) / 1000));
    return SO_STOP_WRITES;
}

static enum so_state stop_writes(struct so *s)
{
    struct ctl_cluster *c = s->c;
    struct ctl_status src;
    char err[512];

    int rc = ctl_node_role(c, s->source, "demote", NULL, (int)c->request_timeout_ms, err, sizeof err);
    if (rc < 0 && rc != -EALREADY)
        return fail(s, SO_ROLLBACK, "demote %s: %s", s->source->name, err);
    s->demoted = true;
    ctl_status_fetch(c, s->source, (int)c->request_timeout_ms, &src);
    if (src.rc < 0 || !ctl_status_is_standby(&src)) {
        ctl_status_free(&src);
        return fail(s, SO_ROLLBACK, "%s accepted demote but its status is %s", s->source->name,
                    src.rc < 0 ? src.error : src.role);
    }
    s->r->final_lsn = src.lsn;
    ctl_status_free(&src);
    ctl_step("stop-writes", "%s demoted: writes stopped at lsn %lld", s->source->name, (long long)s->r->final_lsn);
    return SO_CATCH_UP;
}

static enum so_state catch_up(struct so *s)
{
    struct ctl_cluster *c = s->c;
    struct ctl_status t;
    int64_t t0 = time_mono_us();

    int rc = ctl_wait_position(c, s->target, s->r->final_lsn, "standby", (int)c->catchup_timeout_ms, &t);
    int64_t got = t.rc == 0 ? t.lsn : -1;
    ctl_status_free(&t);
    if (rc < 0)
        return fail(s, SO_ROLLBACK, "%s did not apply lsn %lld within %lld ms (at %lld)", s->target->name,
                    (long long)s->r->final_lsn, (long long)c->catchup_timeout_ms, (long long)got);
    ctl_step("catch-up", "%s applied lsn %lld, the final position (%lld ms)", s->target->name, (long long)got,
             (long long)((time_mono_us() - t0) / 1000));
    return SO_PROMOTE;
}

static enum so_state promote(struct so *s)
{
    struct ctl_cluster *c = s->c;
    struct ctl_status t;
    char err[512];
    int64_t t0 = time_mono_us();

    int rc = ctl_node_role(c, s->target, "promote", NULL, (int)(c->request_timeout_ms + c->catchup_timeout_ms), err,
                           sizeof err);
    if (rc < 0 && rc != -EALREADY)
        return fail(s, SO_ROLLBACK, "promote %s: %s", s->target->name, err);
    ctl_status_fetch(c, s->target, (int)c->request_timeout_ms, &t);
    bool ok = ctl_status_is_active(&t);
    s->r->epoch = t.epoch;
    if (ok)
        ctl_step("promote", "%s is active: epoch %lld, lsn %lld (%lld ms)", s->target->name, (long long)t.epoch,
                 (long long)t.lsn, (long long)((time_mono_us() - t0) / 1000));
    ctl_status_free(&t);
    if (!ok)
        return fail(s, SO_FAILED, "%s accepted promote but does not report active: re-run the switchover",
                    s->target->name);
    return SO_ROUTE;
}

static enum so_state route(struct so *s)
{
    char err[512];

    if (s->v.hap_rc < 0)
        ctl_warn("front door control unavailable (%s): HAProxy's health checks will route", s->v.hap_err);
    else if (ctl_route(s->c, s->target, CTL_ROUTE_ON, NULL, "route", err, sizeof err) < 0)
        ctl_warn("routing to %s through HAProxy's API: %s (health checks will)", s->target->name, err);
    s->r->routed_ms = ctl_elapsed_ms();
    if (!s->r->already_done)
        s->r->pause_ms = s->r->routed_ms - s->r->write_stop_ms;
    return SO_FOLLOW;
}

static enum so_state follow(struct so *s)
{
    struct ctl_cluster *c = s->c;
    int64_t deadline = time_mono_us() + 5000000;
    struct ctl_status src;

    if (!s->source)
        return SO_VERIFY;
    for (;;) {
        ctl_status_fetch(c, s->source, (int)c->request_timeout_ms, &src);
        bool ok = ctl_status_is_standby(&src) && src.peer_connected && src.epoch == s->r->epoch;
        ctl_status_free(&src);
        if (ok) {
            ctl_step("follow", "%s is a standby following %s at epoch %lld", s->source->name, s->target->name,
                     (long long)s->r->epoch);
            return SO_VERIFY;
        }
        if (time_mono_us() >= deadline) {
            ctl_warn("%s is not following %s yet (check `refugectl status`); writes are unaffected", s->source->name,
                     s->target->name);
            return SO_VERIFY;
        }
        time_sleep_us(20000);
    }
}

static enum so_state verify(struct so *s)
{
    int rc = ctl_wait_front(s->c, s->target->region, 3000);

    if (rc < 0)
        return fail(s, SO_FAILED, "the front door does not answer ready from %s: check HAProxy", s->target->region);
    ctl_step("verify", "front door answers 200 from %s", s->target->region);
    return SO_DONE;
}

static enum so_state rollback(struct so *s)
{
    struct ctl_cluster *c = s->c;
    char err[512];

    ctl_warn("rolling back: %s", s->r->reason);
    if (s->demoted && ctl_node_role(c, s->source, "promote", NULL, (int)(c->request_timeout_ms + c->catchup_timeout_ms),
                                    err, sizeof err) < 0) {
        snprintf(s->r->reason + strlen(s->r->reason), sizeof s->r->reason - strlen(s->r->reason),
                 "; rollback promote of %s failed too (%s): run `refugectl failover --to %s`", s->source->name, err,
                 s->source->name);
        return SO_FAILED;
    }
    if (s->v.hap_rc == 0 && ctl_route(c, s->source, CTL_ROUTE_ON, NULL, "rollback", err, sizeof err) < 0)
        ctl_warn("routing back to %s: %s", s->source->name, err);
    ctl_step("rollback", "%s is active again; nothing was lost", s->source->name);
    return SO_FAILED;
}

int ctl_switchover(struct ctl_cluster *c, const char *target, struct ctl_switchover_result *r)
{
    int64_t t_begin = ctl_elapsed_ms();
    struct so s = { .c = c, .r = r };
    enum so_state st = SO_OBSERVE, next;

    memset(r, 0, sizeof *r);
    r->pause_ms = -1;
    if (!(s.target = ctl_cluster_node(c, target))) {
        snprintf(r->reason, sizeof r->reason, "no node '%s' in %s", target, c->path);
        return r->rc = CTL_FAIL;
    }
    ctl_step("switchover", "to %s (region %s)", s.target->name, s.target->region);
    while (st != SO_DONE && st != SO_REFUSED && st != SO_FAILED) {
        switch (st) {
        case SO_OBSERVE: next = observe(&s); break;
        case SO_PRE_SYNC: next = pre_sync(&s); break;
        case SO_DRAIN: next = drain(&s); break;
        case SO_STOP_WRITES: next = stop_writes(&s); break;
        case SO_CATCH_UP: next = catch_up(&s); break;
        case SO_PROMOTE: next = promote(&s); break;
        case SO_ROUTE: next = route(&s); break;
        case SO_FOLLOW: next = follow(&s); break;
        case SO_VERIFY: next = verify(&s); break;
        case SO_ROLLBACK: next = rollback(&s); break;
        default: next = SO_FAILED; break;
        }
        if (next == SO_REFUSED || (next == SO_FAILED && st != SO_ROLLBACK))
            ctl_step(state_names[next], "in %s: %s", state_names[st], r->reason);
        st = next;
    }
    r->total_ms = ctl_elapsed_ms() - t_begin;
    ctl_view_free(&s.v);
    return r->rc = st == SO_DONE ? CTL_OK : st == SO_REFUSED ? CTL_REFUSED : CTL_FAIL;
}

void ctl_switchover_usage(FILE *f)
{
    fprintf(f, "refugectl switchover --to NODE [-c CLUSTER.CONF]\n"
               "    planned, zero loss: stop writes on the active node, wait until NODE applied its\n"
               "    exact last position, promote NODE, route the front door to it; the old active\n"
               "    follows NODE as a standby. Rolls back if NODE does not catch up. Refused (exit 3)\n"
               "    when NODE is not a connected, current standby.\n");
}

int ctl_switchover_run(int argc, char **argv)
{
    struct ctl_switchover_result r;
    struct ctl_cluster c;
    const char *path = NULL, *target = NULL, *v;
    char err[1024];
    int missing = 0;

    for (int i = 1; i < argc; i++) {
        if ((v = ctl_opt_value(argc, argv, &i, "-c", &missing)) ||
            (v = ctl_opt_value(argc, argv, &i, "--cluster", &missing)))
            path = v;
        else if ((v = ctl_opt_value(argc, argv, &i, "--to", &missing)))
            target = v;
        else {
            fprintf(stderr, missing ? "refugectl: %s needs a value\n" : "refugectl: switchover: unexpected '%s'\n",
                    argv[i]);
            ctl_switchover_usage(stderr);
            return CTL_USAGE;
        }
    }
    if (!target) {
        ctl_switchover_usage(stderr);
        return CTL_USAGE;
    }
    if (ctl_cluster_load(path, &c, err, sizeof err) < 0) {
        fprintf(stderr, "refugectl: %s\n", err);
        ctl_cluster_free(&c);
        return CTL_FAIL;
    }
    if (!ctl_cluster_node(&c, target)) {
        fprintf(stderr, "refugectl: no node '%s' in %s\n", target, c.path);
        ctl_cluster_free(&c);
        return CTL_USAGE;
    }
    ctl_out_begin("switchover", c.journal);
    ctl_switchover(&c, target, &r);
    printf("\n");
    if (r.rc == CTL_OK && r.already_done)
        printf("%sswitchover to %s: already done%s (epoch %lld); routing verified\n", ctl_col(CTL_GREEN), target,
               ctl_col(CTL_RESET), (long long)r.epoch);
    else if (r.rc == CTL_OK)
        printf("%sswitchover to %s complete%s in %lld ms: epoch %lld from lsn %lld, zero loss; write pause %lld ms "
               "(front door held %s until it switched)\n", ctl_col(CTL_GREEN), target, ctl_col(CTL_RESET),
               (long long)r.total_ms, (long long)r.epoch, (long long)r.final_lsn, (long long)r.pause_ms,
               r.old_active);
    else
        printf("%sswitchover %s%s: %s\n", ctl_col(CTL_RED), r.rc == CTL_REFUSED ? "refused" : "failed",
               ctl_col(CTL_RESET), r.reason);
    ctl_out_end();
    ctl_cluster_free(&c);
    return r.rc;
}
