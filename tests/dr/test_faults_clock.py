"""Fault injection (issue 9, scenario f): the wall clock of one node jumps.

Both nodes run under libfaketime with an offset file read on every call
(CLOCK_REALTIME moves, CLOCK_MONOTONIC does not — an NTP step, a VM
restored from a snapshot, an operator with `date -s`). DESIGN.md §5.9: lag
is measured on the active node's clock only, and fencing is by epoch, never
by time. So:

- the standby's clock jumping ten minutes either way changes nothing: no
  write refused, no role or epoch change, the active's lag stays small;
- the active's clock jumping either way while the standby is connected
  changes nothing either (the lag is the age of the oldest unacknowledged
  write, and the standby keeps acknowledging);
- the active's clock jumping back while the standby is cut off must not
  stretch the RPO bound: writes stop being acknowledged once the oldest
  unacknowledged one is max_lag_ms old, as measured by a clock that does
  not jump.

The load here is token issuance and refresh rotation (client secrets): an
admin JWT minted before a jump would be judged by the jumped clock, which
is the token layer's business, not replication's.
"""
import time

import pytest

from fault_fixtures import fault_results, make_cluster, topo  # noqa: F401
from faults import Clock, MixedLoad, assert_identical, faketime_lib, missing, new_session, wait_for

MAX_LAG_MS = 500
JUMP_S = 600


@pytest.fixture
def clocks(tmp_path):
    if not faketime_lib():
        pytest.skip("libfaketime is not installed (Debian package libfaketime, in scripts/install-deps)")
    return {n: Clock(str(tmp_path), n) for n in ("a", "b")}


def health(node):
    s = new_session()
    j = s.get(node.url + "/health/ready", timeout=2).json()
    return j["role"], j["epoch"]


def metric(node, name):
    return node.metric(name)


def test_clock_jumps_change_no_decision(clocks, make_cluster, fault_results):
    c = make_cluster(mode="async", max_lag_ms=MAX_LAG_MS, delay_ms=5,
                     env={n: clocks[n].env() for n in ("a", "b")})
    roles = {n.name: health(n) for n in (c.a, c.b)}
    assert roles == {"a": ("active", 1), "b": ("standby", 1)}
    phases = [("b", JUMP_S), ("b", -JUMP_S), ("b", 0), ("a", JUMP_S), ("a", -JUMP_S), ("a", 0)]
    worst = 0.0
    with MixedLoad(c, kinds=("token", "refresh")) as load:
        load.wait_acked(20)
        for host, offset in phases:
            clocks[host].set(offset)
            t0 = time.monotonic()
            load.wait_acked(20, timeout=20)
            time.sleep(0.3)
            # settled: the active's view of the lag, sampled for a second
            samples = []
            while time.monotonic() - t0 < 1.3:
                samples.append(metric(c.a, "refuge_repl_lag_ms"))
                time.sleep(0.05)
            worst = max(worst, max(samples))
            assert max(samples) < MAX_LAG_MS, "node %s at %+d s: the active reports %.0f ms of lag" % (
                host, offset, max(samples))
            refused = [e for e in load.snapshot() if not e[3] and e[1] >= t0]
            assert not refused, "node %s at %+d s: writes refused: %r" % (host, offset, refused[:3])
            assert {n.name: health(n) for n in (c.a, c.b)} == roles, "a role or epoch changed"
            assert metric(c.b, "refuge_repl_diverged") == 0
    assert_identical(c.a, c.b)
    assert not missing(load.acked(), c.b)
    fault_results.record("(f) wall-clock jumps of +/-%d s" % JUMP_S, len(phases), load.count_acked(), 0, None, worst,
                         "no write refused, no role or epoch change")


def test_clock_jump_back_on_active_keeps_rpo_bound(clocks, make_cluster, fault_results):
    c = make_cluster(mode="async", max_lag_ms=MAX_LAG_MS, env={"a": clocks["a"].env()})
    load = MixedLoad(c, url=c.a.url, kinds=("token",)).start()
    try:
        load.wait_acked(20)
        t_cut = time.monotonic()
        c.wan.partition()
        time.sleep(0.1)                 # a few writes nobody acknowledges, at the real time
        clocks["a"].set(-JUMP_S)
        time.sleep(MAX_LAG_MS / 1000.0 + 1.5)
        exposure = metric(c.a, "refuge_repl_rpo_exposure_ms")
        late = [e for e in load.acked() if e[1] > t_cut + (MAX_LAG_MS + 400) / 1000.0]
    finally:
        load.stop()
        clocks["a"].set(0)
        c.wan.heal()
    fault_results.record("(f) active clock steps back, link cut", 1, load.count_acked(), 0, None, exposure,
                         "%d writes acknowledged past max_lag_ms" % len(late))
    assert exposure >= MAX_LAG_MS, "the active reports %.0f ms of RPO exposure after %.1f s cut off" % (
        exposure, time.monotonic() - t_cut)
    assert not late, "%d writes acknowledged more than max_lag_ms after the link was cut (clock stepped back)" % (
        len(late))
    wait_for(lambda: c.caught_up(c.a, c.b), 30, "the standby to catch up after the heal")
