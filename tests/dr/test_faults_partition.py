"""Fault injection (issue 9, scenario c): the link between the regions is cut
while both nodes run.

Clients keep writing to region A (they still reach it; only the WAN between
the regions is cut). The old active must follow its mode's rules:
remote_apply acknowledges nothing sent after the cut; async acknowledges
only until the oldest unacknowledged write is max_lag_ms old, then refuses.
The operator promotes region B during the partition (epoch e+1), clients
write there too. When the link heals, A meets B's higher epoch and fences
itself; its writes of epoch e that B never saw are exported to its
divergent-transactions file, rewound, and A follows B until both hold the
same rows. No epoch has writes accepted by two nodes: every record of B
after its promotion is in epoch e+1, every record A exports is in epoch e.

Short: one partition per mode; REFUGE_SOAK=1: three in a row, alternating
the side that is active.
"""
import time

import pytest

from fault_fixtures import fault_results, make_cluster, topo  # noqa: F401
from faults import LagSampler, MixedLoad, assert_identical, divergent_inserts, epochs_after, missing, soak, wait_for

MAX_LAG_MS = 800
SLACK_S = 0.35          # a batch in flight at the bound, on a slow (sanitizer) build


@pytest.mark.parametrize("mode", ["remote_apply", "async"])
def test_partition_between_regions(make_cluster, fault_results, mode):
    c = make_cluster(mode=mode, max_lag_ms=MAX_LAG_MS, delay_ms=10)
    rounds = soak(1, 3)
    active, standby = c.a, c.b
    acked = lost = 0
    worst_rto = worst_fence = 0.0
    with LagSampler(c) as lag:
        for r in range(rounds):
            epoch = active.status()["epoch"]
            load_old = MixedLoad(c, url=active.url).start()
            load_new = None
            try:
                load_old.wait_acked(30, timeout=30)
                t_cut = time.monotonic()
                c.wan.partition()
                time.sleep(MAX_LAG_MS / 1000.0 + 1.2)
                # the old active, cut off, follows its mode's rules
                sent_after = [e for e in load_old.acked() if e[1] > t_cut]
                if mode == "remote_apply":
                    assert not sent_after, "remote_apply acknowledged %d write(s) sent after the cut" % len(sent_after)
                else:
                    late = [e for e in load_old.acked() if e[2] > t_cut + MAX_LAG_MS / 1000.0 + SLACK_S]
                    assert not late, "async kept acknowledging %.0f ms after the cut (max_lag_ms %d)" % (
                        (late[-1][2] - t_cut) * 1000, MAX_LAG_MS)
                    refused = [e for e in load_old.snapshot() if not e[3] and e[1] > t_cut]
                    assert refused, "no write was refused during the partition"
                sa = active.status()
                assert sa["role"] == "active" and sa["epoch"] == epoch      # it cannot know yet
                # the operator promotes the other region
                st = standby.promote()
                assert st["epoch"] == epoch + 1
                start_lsn = st["lsn"]
                load_new = MixedLoad(c, url=standby.url).start()
                time.sleep(1.0)
                load_old.stop()
                t_heal = time.monotonic()
                c.wan.reset()
                c.wan.heal()
                # A meets B's epoch: fenced at once, rewound, following
                wait_for(lambda: (lambda s: s["role"] == "standby" and s["epoch"] == epoch + 1 and s)(
                    active.status()), 20, "old active %s to be fenced" % active.name)
                worst_fence = max(worst_fence, (time.monotonic() - t_heal) * 1000)
                load_new.wait_acked(20, timeout=30, after=t_heal)
            finally:
                load_old.stop()
                if load_new:
                    load_new.stop()
            # writes resumed on the new active (remote_apply: once A follows as its standby)
            first_new = min(e[2] for e in load_new.acked())
            worst_rto = max(worst_rto, (first_new - t_cut) * 1000)
            assert_identical(standby, active)
            # nothing the new active acknowledged is missing
            assert not missing(load_new.acked(), standby)
            # A's acknowledged writes: on B, or exported by A in epoch e (never silently gone)
            gone = missing(load_old.acked(), standby)
            exported = divergent_inserts(active)
            assert all(e[4] in exported for e in gone), "lost writes not exported: %r" % [
                e for e in gone if e[4] not in exported][:3]
            if mode == "remote_apply":
                assert not gone, "remote_apply lost %d acknowledged write(s)" % len(gone)
            # one epoch, one writer
            assert {exported[e[4]][0] for e in gone} <= {epoch}
            assert epochs_after(standby, start_lsn) <= {epoch + 1}
            acked += load_old.count_acked() + load_new.count_acked()
            lost += len(gone)
            active, standby = standby, active
    fault_results.record("(c) partition, %s" % mode, rounds, acked, lost, worst_rto, lag.worst(),
                         "fenced %.0f ms after heal" % worst_fence)


def test_paused_writes_answer_503(make_cluster):
    """DESIGN.md §5.4: when the standby is max_lag_ms behind, writes wait, then fail with 503 —
    whatever the endpoint (token issuance, SCIM, password and refresh grants)."""
    c = make_cluster(mode="async", max_lag_ms=300, front=True)
    c.wan.partition()
    time.sleep(0.6)
    load = MixedLoad(c, url=c.a.url, timeout=5.0).start()
    try:
        wait_for(lambda: all(sum(1 for e in load.snapshot() if e[0] == k and not e[3]) >= 2 for k in load.kinds),
                 20, "each kind of write to be refused twice")
    finally:
        load.stop()
    codes = {}
    for e in load.snapshot():
        if not e[3]:
            codes.setdefault(e[0], set()).add(e[5])
    assert all(v == {503} for v in codes.values()), "refusal status codes by kind: %r" % codes
