/*
 * rejoin — bring a recovered old primary back as a standby of the current
 * active node: `refugectl rejoin NODE`.
 *
 *   OBSERVE ──> HOLD_FRONT ──> START ──> DEMOTE ──> SYNC ──> DIVERGENT ──> RELEASE ──> DONE
 *      │                         │                    │
 *      REFUSED (no active)       FAILED (no start)    FAILED (diverged / timeout)
 *
 *   OBSERVE     there must be exactly one active node other than NODE. NODE
 *               already a connected, current standby: only DIVERGENT and
 *               RELEASE are re-done.
 *   HOLD_FRONT  NODE's HAProxy server to MAINT: an old primary comes back
 *               believing it is active (its persisted role) until it meets
 *               the higher epoch; no client may reach it meanwhile.
 *   START       if NODE does not answer: run its start_command (detached,
 *               pid in pid_file) and wait for /health/live.
 *   DEMOTE      if NODE still reports active (a lower epoch): demote it. The
 *               replication engine then finds the last common position by
 *               chained hash, exports the divergent transactions to
 *               DATA_DIR/divergent/EPOCH-FROM-TO.json, rewinds and streams.
 *   SYNC        wait (rejoin_timeout) until NODE is a standby at the active
 *               node's epoch, connected, not diverged, and caught up with the
 *               position the active had when SYNC began.
 *   DIVERGENT   show the newest divergent-transactions file, if any.
 *   RELEASE     NODE's server leaves MAINT with health down: it is back in
 *               the pool for a later switchover, no traffic while standby.
 */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/timeutil.h"
#include "dr.h"
#include "refugectl.h"

enum rj_state { RJ_OBSERVE, RJ_HOLD_FRONT, RJ_START, RJ_DEMOTE, RJ_SYNC, RJ_DIVERGENT, RJ_RELEASE, RJ_DONE,
                RJ_REFUSED, RJ_FAILED };

static const char *const state_names[] = {
    [RJ_OBSERVE] = "observe", [RJ_HOLD_FRONT] = "hold-front", [RJ_START] = "start", [RJ_DEMOTE] = "demote",
    [RJ_SYNC] = "sync", [RJ_DIVERGENT] = "divergent", [RJ_RELEASE] = "release", [RJ_DONE] = "done",
    [RJ_REFUSED] = "refused", [RJ_FAILED] = "failed",
};

struct rj {
    struct ctl_cluster *c;
    struct ctl_rejoin_result *r;
    struct ctl_node *node, *active;
    struct ctl_view v;
    struct ctl_status now;   /* the node's latest status */
    int64_t deadline;
};

static enum rj_state fail(struct rj *j, enum rj_state s, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static enum rj_state fail(struct rj *j, enum rj_state s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->r->reason, sizeof j->r->reason, fmt, ap);
    va_end(ap);
    return s;
}

static enum rj_state observe(struct rj *j)
{
    struct ctl_cluster *c = j->c;
    size_t ni = ctl_node_index(c, j->node);
    int timeouts[CTL_MAX_NODES];

    for (size_t i = 0; i < c->n_nodes; i++)
        timeouts[i] = (int)(i == ni ? c->fence_timeout_ms : c->request_timeout_ms);
    ctl_view_free(&j->v);
    ctl_view_observe(&j->v, c, timeouts, CTL_VIEW_NO_FRONT);
    for (size_t i = 0; i < c->n_nodes; i++) {
        if (i != ni && ctl_status_is_active(&j->v.st[i])) {
            if (j->active)
                return fail(j, RJ_REFUSED, "both %s and %s report active: settle that first (failover)",
                            j->active->name, c->nodes[i].name);
            j->active = &c->nodes[i];
        }
    }
    if (!j->active)
        return fail(j, RJ_REFUSED, "no other node is active: there is nothing to rejoin (use failover first)");
    const struct ctl_status *a = &j->v.st[ctl_node_index(c, j->active)];
    const struct ctl_status *s = &j->v.st[ni];
    ctl_step("observe", "active %s: epoch %lld, lsn %lld; %s: %s", j->active->name, (long long)a->epoch,
             (long long)a->lsn, j->node->name,
             s->rc < 0 ? s->error : ctl_status_is_active(s) ? "active (stale)" : s->role);
    if (ctl_status_is_standby(s) && s->epoch == a->epoch && s->peer_connected && !s->diverged) {
        ctl_step("observe", "%s already follows %s at epoch %lld", j->node->name, j->active->name,
                 (long long)a->epoch);
        return RJ_DIVERGENT;
    }
    return RJ_HOLD_FRONT;
}

static enum rj_state hold_front(struct rj *j)
{
    char err[512];

    if (j->v.hap_rc < 0) {
        ctl_warn("front door control unavailable (%s): make sure no traffic reaches %s", j->v.hap_err,
                 j->node->name);
        return RJ_START;
    }
    if (ctl_route(j->c, j->node, CTL_ROUTE_FENCE, ctl_view_hap(&j->v, j->node), "hold-front", err, sizeof err) < 0)
        return fail(j, RJ_FAILED, "fencing %s at the front door: %s", j->node->name, err);
    return RJ_START;
}

static enum rj_state start(struct rj *j)
{
    struct ctl_cluster *c = j->c;
    char err[512];
    int64_t t0 = time_mono_us();

    if (j->v.st[ctl_node_index(c, j->node)].rc == 0)
        return RJ_DEMOTE;
    if (ctl_wait_live(j->node, 200) == 0) {
        ctl_step("start", "%s answers now", j->node->name);
        return RJ_DEMOTE;
    }
    pid_t pid = ctl_node_pid(j->node);
    if (pid > 0) {
        ctl_step("start", "%s's process %d is running but not answering yet: waiting", j->node->name, (int)pid);
    } else {
        if (ctl_node_start(c, j->node, err, sizeof err) < 0)
            return fail(j, RJ_FAILED, "%s is down and cannot be started: %s. Start it yourself (it comes back as "
                        "a standby through this command), then re-run `refugectl rejoin %s`", j->node->name, err,
                        j->node->name);
        j->r->started = true;
        ctl_step("start", "started %s: %s (pid %d)", j->node->name, j->node->start_command,
                 (int)ctl_node_pid(j->node));
    }
    int left = (int)((j->deadline - time_mono_us()) / 1000);
    if (ctl_wait_live(j->node, left > 0 ? left : 1) < 0)
        return fail(j, RJ_FAILED, "%s did not come up within %lld ms (see %s)", j->node->name,
                    (long long)c->rejoin_timeout_ms, j->node->log_file ? j->node->log_file : "its log");
    ctl_step("start", "%s is live (%lld ms)", j->node->name, (long long)((time_mono_us() - t0) / 1000));
    return RJ_DEMOTE;
}

static enum rj_state demote(struct rj *j)
{
    struct ctl_cluster *c = j->c;
    char err[512];

    ctl_status_free(&j->now);
    ctl_status_fetch(c, j->node, (int)c->request_timeout_ms, &j->now);
    if (j->now.rc < 0)
        return fail(j, RJ_FAILED, "%s is live but its admin API fails: %s", j->node->name, j->now.error);
    if (!ctl_status_is_active(&j->now)) {
        ctl_step("demote", "%s is %s at epoch %lld: no demote needed", j->node->name, j->now.role,
                 (long long)j->now.epoch);
        return RJ_SYNC;
    }
    int rc = ctl_node_role(c, j->node, "demote", NULL, (int)c->request_timeout_ms, err, sizeof err);
    if (rc < 0 && rc != -EALREADY)
        return fail(j, RJ_FAILED, "demote %s: %s", j->node->name, err);
    j->r->demoted = true;
    ctl_step("demote", "%s demoted from stale epoch %lld: it rewinds to the common position and follows %s",
             j->node->name, (long long)j->now.epoch, j->active->name);
    return RJ_SYNC;
}

/* A standby is on the active node's history only if its tip is a position
 * the active has. A node that adopted the new epoch but has not rewound yet
 * still holds its old tip: beyond the active's, or written in an epoch the
 * active has moved past. Two nodes never write in the same epoch, so a tip
 * in the active's tip epoch (or its current one) is a position it holds. */
static bool same_history(struct rj *j, const struct ctl_status *s)
{
    struct ctl_status a;
    bool ok;

    ctl_status_fetch(j->c, j->active, (int)j->c->request_timeout_ms, &a);
    ok = a.rc == 0 && s->lsn <= a.lsn &&
         (s->lsn_epoch < 0 || a.lsn_epoch < 0 || s->lsn_epoch == a.lsn_epoch || s->lsn_epoch == a.epoch);
    ctl_status_free(&a);
    return ok;
}

static enum rj_state sync_wait(struct rj *j)
{
    struct ctl_cluster *c = j->c;
    struct ctl_status a;
    int64_t t0 = time_mono_us();

    ctl_status_fetch(c, j->active, (int)c->request_timeout_ms, &a);
    if (a.rc < 0) {
        ctl_status_free(&a);
        return fail(j, RJ_FAILED, "active %s stopped answering: %s", j->active->name, a.error);
    }
    int64_t want_lsn = a.lsn, want_epoch = a.epoch;
    ctl_status_free(&a);
    for (;;) {
        ctl_status_free(&j->now);
        ctl_status_fetch(c, j->node, 1000, &j->now);
        const struct ctl_status *s = &j->now;
        if (s->rc == 0 && s->diverged)
            return fail(j, RJ_FAILED, "%s reports diverged replication at lsn %lld: it could not rewind. Inspect "
                        "its log and DATA_DIR/divergent/; a fresh data directory resyncs it from a snapshot",
                        j->node->name, (long long)s->lsn);
        if (ctl_status_is_standby(s) && s->epoch == want_epoch && s->peer_connected && s->lsn >= want_lsn &&
            same_history(j, s)) {
            ctl_step("sync", "%s follows %s: epoch %lld, lsn %lld (%lld ms)", j->node->name, j->active->name,
                     (long long)s->epoch, (long long)s->lsn, (long long)((time_mono_us() - t0) / 1000));
            return RJ_DIVERGENT;
        }
        if (time_mono_us() >= j->deadline)
            return fail(j, RJ_FAILED, "%s did not catch up within %lld ms (role %s, epoch %lld, lsn %lld of %lld, "
                        "replication %s)", j->node->name, (long long)c->rejoin_timeout_ms, s->role,
                        (long long)s->epoch, (long long)s->lsn, (long long)want_lsn,
                        s->peer_connected ? "connected" : "down");
        time_sleep_us(20000);
    }
}

/* Transactions listed in a divergent file: a JSON array, or an object with a
 * "transactions" (or "records") array; else from the name EPOCH-FROM-TO. */
static int64_t count_divergent(const char *path, const char *name)
{
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je), *arr = NULL;
    int64_t n = -1;
    long long e, from, to;

    if (json_is_array(j))
        arr = j;
    else if (json_is_object(j))
        arr = json_object_get(j, "transactions") ? json_object_get(j, "transactions")
                                                 : json_object_get(j, "records");
    if (json_is_array(arr))
        n = (int64_t)json_array_size(arr);
    json_decref(j);
    if (n < 0 && sscanf(name, "%lld-%lld-%lld", &e, &from, &to) == 3 && to >= from)
        n = to - from + 1;
    return n;
}

static enum rj_state divergent(struct rj *j)
{
    char dir[1024], best[1024] = "", name[256] = "";
    time_t best_mtime = 0;
    struct dirent *de;
    struct stat sb;
    DIR *d;

    if (!j->node->data_dir) {
        ctl_step("divergent", "no data_dir for %s in cluster.conf: look in its DATA_DIR/divergent/", j->node->name);
        return RJ_RELEASE;
    }
    snprintf(dir, sizeof dir, "%s/divergent", j->node->data_dir);
    if (!(d = opendir(dir))) {
        ctl_step("divergent", "none: %s does not exist (nothing had to be rewound)", dir);
        return RJ_RELEASE;
    }
    while ((de = readdir(d))) {
        char p[1400];
        size_t l = strlen(de->d_name);
        if (l < 6 || strcmp(de->d_name + l - 5, ".json") != 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        if (stat(p, &sb) == 0 && sb.st_mtime >= best_mtime) {
            best_mtime = sb.st_mtime;
            snprintf(best, sizeof best, "%s", p);
            snprintf(name, sizeof name, "%s", de->d_name);
        }
    }
    closedir(d);
    if (!best[0]) {
        ctl_step("divergent", "none in %s (nothing had to be rewound)", dir);
        return RJ_RELEASE;
    }
    snprintf(j->r->divergent_file, sizeof j->r->divergent_file, "%s", best);
    j->r->divergent_count = count_divergent(best, name);
    ctl_step("divergent", "%s: %lld transaction(s) that never reached %s were rewound and exported for "
             "reconciliation", best, (long long)j->r->divergent_count, j->active->name);
    return RJ_RELEASE;
}

static enum rj_state release(struct rj *j)
{
    char err[512];

    if (j->v.hap_rc < 0)
        return RJ_DONE;
    if (ctl_route(j->c, j->node, CTL_ROUTE_HOLD, NULL, "release", err, sizeof err) < 0)
        ctl_warn("releasing %s at the front door: %s", j->node->name, err);
    return RJ_DONE;
}

int ctl_rejoin(struct ctl_cluster *c, const char *name, struct ctl_rejoin_result *r)
{
    int64_t t_begin = ctl_elapsed_ms();
    struct rj j = { .c = c, .r = r };
    enum rj_state st = RJ_OBSERVE, next;

    memset(r, 0, sizeof *r);
    r->divergent_count = -1;
    if (!(j.node = ctl_cluster_node(c, name))) {
        snprintf(r->reason, sizeof r->reason, "no node '%s' in %s", name, c->path);
        return r->rc = CTL_FAIL;
    }
    j.deadline = time_mono_us() + c->rejoin_timeout_ms * 1000;
    ctl_step("rejoin", "%s (region %s) as a standby", j.node->name, j.node->region);
    while (st != RJ_DONE && st != RJ_REFUSED && st != RJ_FAILED) {
        switch (st) {
        case RJ_OBSERVE: next = observe(&j); break;
        case RJ_HOLD_FRONT: next = hold_front(&j); break;
        case RJ_START: next = start(&j); break;
        case RJ_DEMOTE: next = demote(&j); break;
        case RJ_SYNC: next = sync_wait(&j); break;
        case RJ_DIVERGENT: next = divergent(&j); break;
        case RJ_RELEASE: next = release(&j); break;
        default: next = RJ_FAILED; break;
        }
        if (next == RJ_REFUSED || next == RJ_FAILED)
            ctl_step(state_names[next], "in %s: %s", state_names[st], r->reason);
        st = next;
    }
    r->total_ms = ctl_elapsed_ms() - t_begin;
    ctl_status_free(&j.now);
    ctl_view_free(&j.v);
    return r->rc = st == RJ_DONE ? CTL_OK : st == RJ_REFUSED ? CTL_REFUSED : CTL_FAIL;
}

static void show_divergent(const char *path)
{
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    char *s;

    if (!j)
        return;
    s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s) {
        size_t n = strlen(s);
        printf("%.*s%s\n", (int)(n > 4000 ? 4000 : n), s, n > 4000 ? "\n  ... (truncated; see the file)" : "");
        free(s);
    }
    json_decref(j);
}

void ctl_rejoin_usage(FILE *f)
{
    fprintf(f, "refugectl rejoin NODE [-c CLUSTER.CONF]\n"
               "    bring a recovered old primary back as a standby: keep it out of the front door,\n"
               "    start it (start_command) if it is down, demote it if it still believes it is active;\n"
               "    it rewinds what never replicated, exports it to DATA_DIR/divergent/, and follows the\n"
               "    active node. Shows the divergent-transactions file if there is one.\n");
}

int ctl_rejoin_run(int argc, char **argv)
{
    struct ctl_rejoin_result r;
    struct ctl_cluster c;
    const char *path = NULL, *name = NULL, *v;
    char err[1024];
    int missing = 0;

    for (int i = 1; i < argc; i++) {
        if ((v = ctl_opt_value(argc, argv, &i, "-c", &missing)) ||
            (v = ctl_opt_value(argc, argv, &i, "--cluster", &missing)))
            path = v;
        else if (argv[i][0] != '-' && !name)
            name = argv[i];
        else {
            fprintf(stderr, missing ? "refugectl: %s needs a value\n" : "refugectl: rejoin: unexpected '%s'\n",
                    argv[i]);
            ctl_rejoin_usage(stderr);
            return CTL_USAGE;
        }
    }
    if (!name) {
        ctl_rejoin_usage(stderr);
        return CTL_USAGE;
    }
    if (ctl_cluster_load(path, &c, err, sizeof err) < 0) {
        fprintf(stderr, "refugectl: %s\n", err);
        ctl_cluster_free(&c);
        return CTL_FAIL;
    }
    if (!ctl_cluster_node(&c, name)) {
        fprintf(stderr, "refugectl: no node '%s' in %s\n", name, c.path);
        ctl_cluster_free(&c);
        return CTL_USAGE;
    }
    ctl_out_begin("rejoin", c.journal);
    ctl_rejoin(&c, name, &r);
    printf("\n");
    if (r.rc == CTL_OK) {
        printf("%s%s rejoined%s as a standby in %lld ms\n", ctl_col(CTL_GREEN), name, ctl_col(CTL_RESET),
               (long long)r.total_ms);
        if (r.divergent_file[0]) {
            printf("divergent transactions (%lld) exported to %s:\n", (long long)r.divergent_count,
                   r.divergent_file);
            show_divergent(r.divergent_file);
        } else {
            printf("no divergent transactions: nothing was lost on %s\n", name);
        }
    } else {
        printf("%srejoin %s%s: %s\n", ctl_col(CTL_RED), r.rc == CTL_REFUSED ? "refused" : "failed",
               ctl_col(CTL_RESET), r.reason);
    }
    ctl_out_end();
    ctl_cluster_free(&c);
    return r.rc;
}
