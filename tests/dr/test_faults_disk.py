"""Fault injection (issue 9, scenario e): the standby's disk fills up.

Region B's data dir is a 64 MiB tmpfs (its log file lives elsewhere, so the
alert can be read). Once the standby is in step, the tmpfs is filled to the
last byte and region A keeps taking writes (async, with a max_lag_ms far
above the test's length, so A goes on acknowledging). The standby's apply
must halt without damage and say so — its node status names the storage
error, its log has it, the active reports the lag — and once space returns
it must resume by itself and end with exactly the active's rows: nothing
acknowledged is lost. Short: one fill; soak: three.
"""
import json
import os
import time

import pytest

from fault_fixtures import fault_results, make_cluster, topo  # noqa: F401
from faults import CORE, LagSampler, MixedLoad, Tmpfs, assert_identical, auth, missing, soak, wait_for


def write_big_users(c, n, tag):
    big = os.urandom(4000).hex()
    for i in range(n):
        body = {"schemas": [CORE], "userName": "%s-%03d" % (tag, i), "displayName": big, "title": big[::-1]}
        r = c.a.post("/scim2/Users", data=json.dumps(body), timeout=15,
                     headers=dict(auth(c.token), **{"Content-Type": "application/scim+json"}))
        assert r.status_code == 201, r.text


@pytest.fixture
def tmpfs_b(tmp_path):
    """Set up before make_cluster, so torn down after its processes are gone."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CAP_SYS_ADMIN)")
    fs = Tmpfs(str(tmp_path / "b-tmpfs"), size_mb=64)
    yield fs
    fs.free()
    fs.umount()


def test_standby_disk_full(tmpfs_b, make_cluster, fault_results):
    fs = tmpfs_b
    c = make_cluster(mode="async", max_lag_ms=600000, data_dirs={"b": fs.path})
    rounds = soak(1, 3)
    worst_alert = worst_resume = 0.0
    filled = 0
    with LagSampler(c) as lag, MixedLoad(c, pace=0.01) as load:
        for r in range(rounds):
            load.wait_acked(20, timeout=20)
            lsn_full = c.b.status()["lsn"]
            filled = fs.fill()
            assert fs.free_bytes() < 64 << 10, "tmpfs not full: %d bytes free" % fs.free_bytes()
            t_full = time.monotonic()
            batch = [0]

            def alert():
                # records that cannot fit: the standby's apply must fail, visibly
                write_big_users(c, 10, "disk%d-%d" % (r, batch[0]))
                batch[0] += 1
                s = c.b.status()
                return "storage" in (s["replication"].get("last_error") or "") and s

            sb = wait_for(alert, 60, "the standby to report its storage error", interval=0.01)
            worst_alert = max(worst_alert, (time.monotonic() - t_full) * 1000)
            assert c.b.alive(), "the standby died of a full disk:\n" + c.b.tail()
            assert sb["role"] == "standby" and not sb["diverged"]
            assert "apply failed" in c.b.log_text()
            sa = c.a.status()
            assert sa["peer"]["lag_records"] > 0 and sa["lsn"] > sb["lsn"] >= lsn_full
            time.sleep(1.0)             # it stays halted, and keeps trying
            assert c.b.alive() and c.b.status()["lsn"] < c.a.status()["lsn"]
            t_free = time.monotonic()
            fs.free()
            wait_for(lambda: c.b.status()["lsn"] >= sa["lsn"], 30, "the standby to resume after space returned")
            worst_resume = max(worst_resume, (time.monotonic() - t_free) * 1000)
        load.wait_acked(10, timeout=20)
    assert_identical(c.a, c.b)
    gone = missing(load.acked(), c.b)
    assert not gone, "%d acknowledged writes missing on the standby" % len(gone)
    assert c.b.status()["replication"].get("last_error") in (None, "")
    fault_results.record("(e) standby disk full (64 MiB tmpfs)", rounds, load.count_acked(), len(gone), None,
                         lag.worst(), "%d MiB filler; alert %.0f ms after the disk filled; resumed %.0f ms after "
                         "space returned" % (filled >> 20, worst_alert, worst_resume))
