"""Fault injection (issue 9, scenario d): kill -9 of a fresh standby in the
middle of its snapshot transfer.

Region A holds a few megabytes (SCIM users with large attributes); the WAN
link is throttled so the snapshot takes over a second to cross. A new,
empty standby starts, asks for a snapshot, and is killed while
snapshot-in.db is being written (short: once; soak: three times in a row).
The active must not notice beyond a dropped session; the restarted standby
discards the partial file, takes a new snapshot, streams what was written
meanwhile and ends with exactly the active's rows.
"""
import json
import os
import random
import time

from fault_fixtures import fault_results, make_cluster, topo  # noqa: F401
from faults import CORE, MixedLoad, assert_identical, auth, missing, soak, wait_for


def seed_bulk(c, users=70):
    """SCIM users of ~36 KB each. Returns the active's database size in bytes."""
    big = os.urandom(6000).hex()
    for i in range(users):
        body = {"schemas": [CORE], "userName": "bulk-%03d" % i, "displayName": big, "nickName": big[::-1],
                "title": big[1000:] + big[:1000]}
        r = c.a.post("/scim2/Users", data=json.dumps(body), timeout=15,
                     headers=dict(auth(c.token), **{"Content-Type": "application/scim+json"}))
        assert r.status_code == 201, r.text
    db = os.path.join(c.a.data_dir, "refuge.db")
    return sum(os.path.getsize(p) for p in (db, db + "-wal") if os.path.exists(p))


def test_kill_standby_during_snapshot(make_cluster, fault_results):
    c = make_cluster(mode="async", max_lag_ms=120000, start=False)
    c.start(standby=False)
    size = seed_bulk(c)
    assert size > 2 << 20, "only %d bytes to snapshot" % size
    rate = size / 1.5                       # the transfer takes ~1.5 s
    c.wan.set_rate(rate)
    kills = soak(1, 3)
    # The snapshot holds at least the seeded users' bytes (70 × ~36 KB); the
    # files' size above also counts WAL history, which a snapshot does not
    # copy. Aim the kill inside the lower bound, so it always comes mid-transfer.
    floor = 70 * 36000
    part = os.path.join(c.b.data_dir, "snapshot-in.db")
    killed_at = []
    with MixedLoad(c, pace=0.02) as load:
        for k in range(kills):
            at = random.uniform(0.1, 0.7)       # somewhere in the middle of the transfer
            c.b.start(wait=False)
            wait_for(lambda: os.path.exists(part) and os.path.getsize(part) > floor * at, 30,
                     "the snapshot transfer to be under way", interval=0.005)
            killed_at.append(os.path.getsize(part))
            c.b.kill()
            # the active lost a session, nothing else
            assert c.a.alive() and c.a.status()["role"] == "active"
            load.wait_acked(5, timeout=10)
        c.wan.set_rate(0)
        t0 = time.monotonic()
        c.b.start()
        wait_for(lambda: c.b.status()["peer"]["connected"], 30, "the standby to stream")
        load.wait_acked(10, timeout=10)
    recover_ms = (time.monotonic() - t0) * 1000
    assert_identical(c.a, c.b)
    assert not missing(load.acked(), c.b)
    assert not os.path.exists(part), "the partial snapshot was left behind"
    text = c.b.log_text()
    assert text.count("snapshot installed") == 1, "one snapshot installed, the interrupted ones never"
    fault_results.record("(d) kill -9 standby during snapshot", kills, load.count_acked(), 0, None, None,
                         "killed with %s MiB of ~%.0f received; streaming %.0f ms after restart" % (
                             ", ".join("%.0f" % (b / 1048576.0) for b in killed_at), size / 1048576.0, recover_ms))
