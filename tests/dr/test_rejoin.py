"""refugectl rejoin after divergence: the old primary took writes that never
reached the standby (link cut, async), died, the standby was promoted and
took writes of its own. Rejoin restarts the old primary as a standby; the
replication engine rewinds the divergent writes and exports them to
DATA_DIR/divergent/, which rejoin shows; afterwards both nodes hold the same
data."""
import json
import os

from conftest import ctl, opaque_client, wait_until


def clients_of(dep, name):
    st, j = dep.admin("GET", "/admin/v1/clients", base=dep.url(name))
    assert st == 200, j
    return sorted(c["client_id"] for c in j["clients"])


def test_rejoin_after_divergence(make_deployment):
    dep = make_deployment(mode="async", relay=True)
    wait_until(lambda: dep.status("b")["lsn"] == dep.status("a")["lsn"], what="b in step")
    dep.relay.cut()
    wait_until(lambda: not dep.status("b")["peer"]["connected"], what="b disconnected")
    # writes only region A ever sees
    divergent = []
    for i in range(3):
        st, j = dep.admin("POST", "/admin/v1/clients", {"name": "only-on-a-%d" % i, "type": "confidential"},
                          base=dep.url("a"))
        assert st == 201, j
        divergent.append(j["client_id"])
    dep.kill("a")
    r = ctl(dep, "failover", "--to", "b", "--force")
    assert r.returncode == 0, r.stdout + r.stderr
    # region B moves on
    st, j = dep.admin("POST", "/admin/v1/clients", {"name": "after-failover", "type": "confidential"})
    assert st == 201, j
    after = j["client_id"]
    dep.relay.restore()

    r = ctl(dep, "rejoin", "a", timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "started a" in r.stdout
    assert "divergent transactions (3) exported to" in r.stdout, r.stdout

    ddir = os.path.join(dep.data_dir("a"), "divergent")
    files = sorted(os.listdir(ddir))
    assert files, "no divergent file"
    with open(os.path.join(ddir, files[-1])) as f:
        doc = json.load(f)
    exported = [ch["primary_key"]["client_id"] for tx in doc["transactions"] for ch in tx["changes"]
                if ch["table"] == "clients" and ch["op"] == "INSERT"]
    assert sorted(exported) == sorted(divergent)

    # the same data on both nodes: the divergent clients are gone, B's write is there
    wait_until(lambda: dep.status("a")["lsn"] == dep.status("b")["lsn"], what="a caught up")
    ca, cb = clients_of(dep, "a"), clients_of(dep, "b")
    assert ca == cb
    assert after in ca and not set(divergent) & set(ca)
    sa = dep.status("a")
    assert sa["role"] == "standby" and not sa["diverged"] and sa["peer"]["connected"]

    # re-run: already following, shows the file again, changes nothing
    r = ctl(dep, "rejoin", "a")
    assert r.returncode == 0 and "already follows b" in r.stdout, r.stdout


def test_rejoin_refused_without_an_active_node(make_deployment):
    dep = make_deployment(mode="async")
    r = ctl(dep, "failover", "--to", "b")        # a demoted, b active
    assert r.returncode == 0, r.stdout
    dep.kill("b")
    r = ctl(dep, "rejoin", "a")
    assert r.returncode == 3, r.stdout
    assert "no other node is active" in r.stdout
