"""refugectl drill against a real two-region deployment, with this test's
own client running through the front door the whole time: the RTO and RPO
the drill reports must agree with what this independent client saw, the
last line must be the DRILL line, and the report must be written."""
import json
import os
import subprocess
import time

from conftest import DRILL_LINE, REFUGECTL, Load, introspect, opaque_client


def test_drill_agrees_with_an_independent_client(make_deployment):
    dep = make_deployment(mode="remote_apply")
    client = opaque_client(dep)
    load = Load(dep, client, interval=0.01, timeout=2.0).start()
    time.sleep(0.3)
    report = os.path.join(dep.root, "report")
    t_start = time.monotonic()
    r = subprocess.run([REFUGECTL, "drill", "--mode", "remote_apply", "--duration", "4", "--report", report,
                        "-c", dep.cluster_conf], capture_output=True, text=True, timeout=55)
    time.sleep(0.3)
    load.stop()
    out = r.stdout.rstrip("\n").split("\n")
    m = DRILL_LINE.match(out[-1])
    assert m, "last line is not the DRILL line: %r\n%s\n%s" % (out[-1], r.stdout, r.stderr)
    mode, rto, lost, window, objectives = m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4)), m.group(5)
    assert mode == "remote_apply"
    assert r.returncode == (0 if objectives == "met" else 1), r.stdout
    assert "failover to" not in r.stderr

    with open(os.path.join(report, "drill.json")) as f:
        rep = json.load(f)
    res = rep["result"]
    assert (res["rto_ms"], res["rpo_lost_writes"], res["rpo_window_ms"]) == (rto, lost, window)
    assert rep["failover"]["rc"] == 0 and rep["rejoin"]["rc"] == 0 and rep["switchover"]["rc"] == 0, rep
    assert res["data_equal"] is True, res["data_detail"]
    assert [p["name"] for p in rep["phases"]] == ["check", "setup", "baseline", "kill", "failover", "degraded",
                                                  "rejoin", "switchover", "final", "verify"]
    assert rep["writes"]["token"]["acknowledged"] > 50
    with open(os.path.join(report, "drill.html")) as f:
        html = f.read()
    assert "<svg" in html and out[-1] in html

    # RTO: this client's own outage, from its first failure after the drill began
    own = load.outage_ms(after=t_start)
    assert own is not None, "this client never recovered"
    assert res["first_failure_ms"] >= 0 and own > 0, "both clients must see the kill"
    tolerance = 300 + 0.25 * rto
    assert abs(own - rto) <= tolerance, "drill says %d ms, this client saw %.0f ms" % (rto, own)

    # RPO: every write this client saw acknowledged is on the final active node (A)
    acked = load.acked()
    assert len(acked) > 50
    missing = [tok for _, _, _, tok in acked if not introspect(dep, client, tok, dep.url("a"))]
    assert len(missing) == lost == 0, "drill lost %d, this client lost %d" % (lost, len(missing))
    assert window == 0
