"""refugectl failover against two real nodes and a real HAProxy:
the old active dead, the old active alive (fenced: never two nodes taking
writes), the target behind (refused without --force), re-runs (idempotent)."""
import json
import os
import threading
import time

from conftest import ctl, http, introspect, issue, opaque_client, wait_until


def ready(url):
    try:
        return http("GET", url + "/health/ready", timeout=1)[0] == 200
    except Exception:
        return False


def hap_states(dep):
    j = json.loads(ctl(dep, "status", "--json").stdout)
    return {s["name"]: s["state"] for s in j["front_door"]["servers"]}


def journal_states(dep, command):
    with open(os.path.join(dep.run, "refugectl.journal")) as f:
        lines = [json.loads(l) for l in f if l.strip()]
    return [l["state"] for l in lines if l["command"] == command]


def test_failover_old_active_dead(make_deployment):
    dep = make_deployment(mode="async")
    # a drill asked for another mode than the nodes run is refused, touching nothing
    r = ctl(dep, "drill", "--mode", "remote_apply")
    assert r.returncode == 3 and "the nodes run mode async" in r.stdout, r.stdout
    assert dep.running("a")
    client = opaque_client(dep)
    tokens = [issue(dep, client)[1] for _ in range(20)]
    assert all(tokens)
    wait_until(lambda: dep.status("b")["lsn"] == dep.status("a")["lsn"], what="b in step")

    dep.kill("a")
    r = ctl(dep, "failover", "--to", "b")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "failover to b complete" in r.stdout
    assert "data-loss window: 0 transaction(s)" in r.stdout, r.stdout
    # the front door now answers from region B, and B takes writes
    st, j = http("GET", dep.front_url + "/health/ready")
    assert st == 200 and j["region"] == "region-b"
    assert issue(dep, client)[0] == 200
    assert hap_states(dep)["a"] == "MAINT"
    sb = dep.status("b")
    assert sb["role"] == "active" and sb["epoch"] == 2
    # every token issued before the failover is valid on B
    assert all(introspect(dep, client, t, dep.url("b")) for t in tokens)

    # every step is journaled, in the state machine's order
    states = journal_states(dep, "failover")
    order = ["observe", "decide", "fence-front", "catch-up", "promote", "route", "verify"]
    seen = [s for s in states if s in order]
    assert [s for i, s in enumerate(seen) if i == 0 or seen[i - 1] != s] == order, states

    # re-running is safe: nothing is promoted twice
    r2 = ctl(dep, "failover", "--to", "b")
    assert r2.returncode == 0, r2.stdout
    assert "already" in r2.stdout
    assert dep.status("b")["epoch"] == 2


def test_failover_interrupted_after_promote_is_finished_by_a_rerun(make_deployment):
    """The state a failover interrupted between PROMOTE and ROUTE leaves: the
    old active dead and not fenced, the target promoted. Running the command
    again fences, routes and verifies, and promotes nothing twice."""
    dep = make_deployment(mode="async")
    dep.kill("a")
    st, j = dep.admin("POST", "/admin/v1/node/promote", base=dep.url("b"))
    assert st == 200, j
    assert hap_states(dep)["a"] != "MAINT"
    r = ctl(dep, "failover", "--to", "b")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "already the active node with the highest epoch" in r.stdout, r.stdout
    assert "promote " not in r.stdout.replace("promotion", "")
    assert dep.status("b")["epoch"] == 2
    assert hap_states(dep)["a"] == "MAINT"
    assert http("GET", dep.front_url + "/health/ready")[1]["region"] == "region-b"


def test_failover_old_active_alive_is_fenced(make_deployment):
    """A live old active is demoted before the target is promoted: sampled all
    along, the two nodes never both answer ready, and afterwards a write on the
    old active is refused while the new one takes it."""
    dep = make_deployment(mode="remote_apply")
    client = opaque_client(dep)
    both_ready = []
    samples = [0]
    stop = threading.Event()

    def sampler():
        while not stop.is_set():
            a, b = ready(dep.url("a")), ready(dep.url("b"))
            a2 = ready(dep.url("a"))            # a again: a ready on both sides of b's probe is a real overlap
            samples[0] += 1
            if a and b and a2:
                both_ready.append(time.monotonic())

    th = threading.Thread(target=sampler, daemon=True)
    th.start()
    time.sleep(0.2)
    r = ctl(dep, "failover", "--to", "b")
    time.sleep(0.3)
    stop.set()
    th.join(5)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "a demoted" in r.stdout, r.stdout
    assert samples[0] > 10
    assert not both_ready, "both nodes ready at once"
    assert not ready(dep.url("a")) and ready(dep.url("b"))

    # writes: the old active refuses (standby 503), the new one accepts
    st_a, _ = issue(dep, client, base=dep.url("a"))
    st_b, tok = issue(dep, client, base=dep.url("b"))
    assert st_a == 503 and st_b == 200
    assert hap_states(dep)["a"] == "MAINT"
    # the old active follows the new epoch and has the new write
    wait_until(lambda: dep.status("a")["epoch"] == 2 and dep.status("a")["peer"]["connected"],
               what="a follows b")
    wait_until(lambda: introspect(dep, client, tok, dep.url("a")), what="write replicated to a")
    # rejoin brings it back into the pool (MAINT lifted, health down: a standby takes no traffic)
    r = ctl(dep, "rejoin", "a")
    assert r.returncode == 0, r.stdout
    assert hap_states(dep)["a"] == "DOWN"


def test_failover_refused_when_target_is_behind(make_deployment):
    """B cut off from A while A keeps taking writes (async): B is behind and
    cannot catch up, so failover refuses (exit 3) and changes nothing; with
    --force it goes ahead and reports the loss."""
    dep = make_deployment(mode="async", relay=True)
    client = opaque_client(dep)
    wait_until(lambda: dep.status("b")["lsn"] == dep.status("a")["lsn"], what="b in step")
    dep.relay.cut()
    wait_until(lambda: not dep.status("b")["peer"]["connected"], what="b disconnected")
    for _ in range(5):
        assert issue(dep, client)[0] == 200
    la, lb = dep.status("a")["lsn"], dep.status("b")["lsn"]
    assert la - lb >= 5

    r = ctl(dep, "failover", "--to", "b")
    assert r.returncode == 3, r.stdout + r.stderr
    assert "refused" in r.stdout and "records behind" in r.stdout, r.stdout
    # nothing changed: A still active and routed, B still standby
    assert dep.status("a")["role"] == "active" and dep.status("b")["role"] == "standby"
    assert http("GET", dep.front_url + "/health/ready")[1]["region"] == "region-a"
    assert hap_states(dep)["a"] == "UP"

    r = ctl(dep, "failover", "--to", "b", "--force")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "data-loss window: %d transaction(s)" % (la - lb) in r.stdout, r.stdout
    assert dep.status("b")["role"] == "active"
    assert dep.status("a")["role"] == "standby"       # reachable, so demoted: never two writers
    assert http("GET", dep.front_url + "/health/ready")[1]["region"] == "region-b"
