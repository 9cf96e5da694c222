"""Replication with two real refuged processes on loopback (issue 5).

Node a starts active, node b standby; both name each other as peer and share
the master key file and public_url (as two regions behind one front door
do), so the admin token minted by a is valid on b. Writes go through the
admin API. Tables are compared row by row by opening both SQLite files
read-only while the nodes run.

Covered: streaming + snapshot of an empty standby, row-by-row equality,
standby writes answered 503, standby kill -9 under load (exactly-once),
active kill -9 under load in remote_apply then promote (no acknowledged
write lost), a corrupted frame and a corrupted record (refused, diverged,
nothing partial), certificates (mTLS works; wrong CA and wrong name are
refused), promote / demote / rejoin with divergent writes (exported file,
rewind, equal data), max_lag_ms and remote_apply without a standby (503),
and a standby behind the retained log (snapshot).
"""
import json
import os
import random
import sqlite3
import subprocess
import threading
import time

import pytest
import requests

from refuge import REFUGECTL, Node, free_port

LOCAL_TABLES = {"node_state", "repl_state"}


# ---------------------------------------------------------------- helpers

def make_pair(workdir, mode="async", max_lag="5s", env_a=None, env_b=None, tls=None, extra=None):
    pa, pb = free_port(), free_port()
    key = os.path.join(workdir, "master.key")

    def conf(listen, peer, name):
        repl = {"listen": "127.0.0.1:%d" % listen, "peer": "127.0.0.1:%d" % peer, "mode": mode,
                "max_lag_ms": max_lag}
        if tls:
            repl.update(tls[name])
        else:
            repl["insecure_plaintext"] = True
        c = {"node": {"master_key_file": key}, "http": {"public_url": "https://idp.test"}, "replication": repl}
        for sec, kv in (extra or {}).items():
            c.setdefault(sec, {}).update(kv)
        return c

    a = Node(workdir, "a", "region-a", "active", extra=conf(pa, pb, "a"), env=env_a)
    b = Node(workdir, "b", "region-b", "standby", extra=conf(pb, pa, "b"), env=env_b)
    return a, b


@pytest.fixture
def nodes():
    started = []
    yield started
    for n in started:
        n.kill()


def auth(tok):
    return {"Authorization": "Bearer " + tok}


def status(node, tok):
    r = node.get("/admin/v1/node/replication", headers=auth(tok), timeout=5)
    assert r.status_code == 200, r.text
    return r.json()


def wait_for(cond, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = cond()
            if last:
                return last
        except (requests.RequestException, AssertionError) as e:
            last = e
        time.sleep(0.05)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


def wait_caught_up(a, b, tok, timeout=30.0):
    def ok():
        sa, sb = status(a, tok), status(b, tok)
        return sa["lsn"] > 0 and sa["lsn"] == sb["lsn"] and sa["peer"]["acked_lsn"] == sa["lsn"] and (sa, sb)
    return wait_for(ok, timeout, "standby to catch up")


def db_path(node):
    return os.path.join(node.data_dir, "refuge.db")


def dump(node, tables=None):
    """Every table's rows, sorted, from the node's SQLite file (read-only)."""
    con = sqlite3.connect("file:%s?mode=ro" % db_path(node), uri=True, timeout=10)
    try:
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                           "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        out = {}
        for t in names:
            if t in LOCAL_TABLES or (tables and t not in tables):
                continue
            ncol = len(con.execute("PRAGMA table_info(%s)" % t).fetchall())
            order = ", ".join(str(i + 1) for i in range(ncol))
            out[t] = con.execute("SELECT * FROM %s ORDER BY %s" % (t, order)).fetchall()
        return out
    finally:
        con.close()


def assert_same_tables(a, b):
    da, db = dump(a), dump(b)
    assert da.keys() == db.keys()
    for t in da:
        assert da[t] == db[t], "table %s differs: %d rows on a, %d on b" % (t, len(da[t]), len(db[t]))
    assert len(da["tenants"]) > 0 and len(da["repl_log"]) > 0


def repl_log(node):
    con = sqlite3.connect("file:%s?mode=ro" % db_path(node), uri=True, timeout=10)
    try:
        return con.execute("SELECT epoch, lsn, commit_us, hash, changeset FROM repl_log ORDER BY lsn").fetchall()
    finally:
        con.close()


def tenant_names(node):
    return {r[0] for r in dump(node, {"tenants"})["tenants"]}


def create_tenant(node, tok, name, timeout=10):
    return node.post("/admin/v1/tenants", json={"name": name, "display_name": name.upper()},
                     headers=auth(tok), timeout=timeout)


def start_pair(nodes, workdir, **kw):
    a, b = make_pair(workdir, **kw)
    nodes.extend([a, b])
    a.start()
    tok = a.admin_token()
    b.start()
    return a, b, tok


class Load:
    """Threads creating tenants on a node; records every acknowledged name."""

    def __init__(self, node, tok, prefix, threads=2):
        self.node, self.tok, self.prefix = node, tok, prefix
        self.acked, self.failed = [], 0
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(threads)]

    def run(self, i):
        s = requests.Session()
        k = 0
        while not self.stop.is_set():
            name = "%s-%d-%d" % (self.prefix, i, k)
            k += 1
            try:
                r = s.post(self.node.url + "/admin/v1/tenants", json={"name": name, "display_name": name},
                           headers=auth(self.tok), timeout=10)
                with self.lock:
                    if r.status_code == 201:
                        self.acked.append(name)
                    else:
                        self.failed += 1
            except requests.RequestException:
                with self.lock:
                    self.failed += 1
                time.sleep(0.01)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(15)


def metric(node, name):
    text = node.get("/metrics").text
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.split()[-1])
    return None


# ------------------------------------------------------------------ tests

def test_stream_snapshot_and_equal_tables(workdir, nodes):
    a, b, tok = start_pair(nodes, workdir)
    for i in range(20):
        assert create_tenant(a, tok, "acme%02d" % i).status_code == 201
    r = a.post("/t/acme00/admin/v1/clients", headers=auth(tok),
               json={"name": "web", "type": "confidential", "redirect_uris": ["https://app.test/cb"],
                     "grant_types": ["authorization_code"], "scopes": ["openid"]})
    assert r.status_code == 201, r.text
    sa, sb = wait_caught_up(a, b, tok)
    assert_same_tables(a, b)
    assert repl_log(a) == repl_log(b)
    # the empty standby adopted the active's cluster id with its snapshot
    assert sa["cluster_id"] == sb["cluster_id"]
    assert sb["role"] == "standby" and sa["role"] == "active"
    assert sa["peer"]["connected"] and sa["peer"]["name"] == "b"
    assert sa["rpo_exposure_ms"] == 0 and sa["peer"]["lag_records"] == 0
    assert sb["active_node"] == "a"
    # the standby refuses API writes with 503 and says where writes go
    r = create_tenant(b, tok, "nope")
    assert r.status_code == 503
    assert r.json()["error"] == "temporarily_unavailable"
    # DESIGN §5.7: the error names the active region (learned from the active's HELLO)
    assert "active region %s" % a.conf["node"]["region"] in r.json()["error_description"], r.text
    # ... and serves reads of the replicated data (keys replicated too: the token verifies)
    assert b.get("/admin/v1/tenants/acme07", headers=auth(tok)).status_code == 200
    assert metric(a, "refuge_repl_connected") == 1
    assert metric(b, "refuge_repl_diverged") == 0
    assert metric(b, "refuge_repl_applied_total") >= 21


def test_standby_kill9_exactly_once(workdir, nodes):
    a, b, tok = start_pair(nodes, workdir)
    wait_caught_up(a, b, tok)
    with Load(a, tok, "k9") as load:
        for _ in range(20):
            time.sleep(random.uniform(0.05, 0.25))
            b.kill()
            b.start()
        time.sleep(0.3)
    assert load.failed == 0
    assert len(load.acked) > 50
    wait_caught_up(a, b, tok)
    # exactly once: the same log, record for record, and the same rows
    la, lb = repl_log(a), repl_log(b)
    assert [r[1] for r in lb] == list(range(lb[0][1], lb[-1][1] + 1))
    assert la == lb
    assert_same_tables(a, b)
    assert set(load.acked) <= tenant_names(b)
    assert status(b, tok)["replication"]["reconnects"] >= 0


def test_active_kill9_remote_apply_loses_nothing(workdir, nodes):
    a, b, tok = start_pair(nodes, workdir, mode="remote_apply")
    wait_caught_up(a, b, tok)
    with Load(a, tok, "ra", threads=4) as load:
        time.sleep(1.5)
        a.kill()
        time.sleep(0.2)
    acked = list(load.acked)
    assert len(acked) > 20
    r = b.post("/admin/v1/node/promote", headers=auth(tok))
    assert r.status_code == 200, r.text
    st = r.json()
    assert st["role"] == "active" and st["epoch"] == 2
    names = tenant_names(b)
    missing = [n for n in acked if n not in names]
    assert not missing, "acknowledged writes lost: %r" % missing[:10]
    # a promotion without allow_standalone is strict: not standalone ...
    assert st["standalone"] is False and st["effective_mode"] == "remote_apply"
    assert metric(b, "refuge_repl_standalone") == 0
    # ... and remote_apply with no standby: the new active refuses to
    # acknowledge what nobody else holds (after waiting max_lag_ms)
    t0 = time.monotonic()
    assert create_tenant(b, tok, "no-standby").status_code == 503
    assert time.monotonic() - t0 >= 4.0
    # ... until the old primary rejoins: fenced, rewound (its unacknowledged
    # tail), streaming
    a.start()
    wait_for(lambda: status(b, tok)["peer"]["connected"], 20, "old primary to rejoin")
    assert create_tenant(b, tok, "after-promote").status_code == 201
    assert "after-promote" in tenant_names(a)
    assert set(acked) <= tenant_names(a)
    log = repl_log(b)
    assert log[-1][0] == 2
    con = sqlite3.connect("file:%s?mode=ro" % db_path(b), uri=True)
    hist = con.execute("SELECT epoch, start_lsn FROM epoch_history ORDER BY epoch").fetchall()
    con.close()
    assert hist[-1] == (2, log[-1][1])


def test_failover_standalone_then_back_to_remote_apply(workdir, nodes):
    """An operator's failover after losing the active's region: promote with
    allow_standalone acknowledges writes at once with no standby; once the
    old primary rejoins and catches up, writes wait for it again."""
    a, b, tok = start_pair(nodes, workdir, mode="remote_apply", max_lag="2s")
    for i in range(5):
        assert create_tenant(a, tok, "pre%d" % i).status_code == 201
    wait_caught_up(a, b, tok)
    a.kill()
    r = b.post("/admin/v1/node/promote", headers=auth(tok), json={"reason": "failover", "allow_standalone": True})
    assert r.status_code == 200, r.text
    st = r.json()
    assert st["role"] == "active" and st["epoch"] == 2
    assert st["standalone"] is True and st["effective_mode"] == "async" and st["mode"] == "remote_apply"
    assert "allow_standalone" in st["standalone_reason"] and "failover" in st["standalone_reason"]
    assert metric(b, "refuge_repl_standalone") == 1
    # writes are acknowledged at local commit: no waiting for max_lag_ms
    for i in range(5):
        t0 = time.monotonic()
        assert create_tenant(b, tok, "alone%d" % i).status_code == 201
        assert time.monotonic() - t0 < 1.0
    assert status(b, tok)["rpo_exposure_ms"] > 0          # and the exposure is shown, growing
    assert "STANDALONE" in open(b.log_path).read()
    # a restart in the same epoch stays standalone (the operator's decision holds)
    b.kill()
    b.start()
    sb = status(b, tok)
    assert sb["role"] == "active" and sb["standalone"] is True
    t0 = time.monotonic()
    assert create_tenant(b, tok, "alone-restarted").status_code == 201
    assert time.monotonic() - t0 < 1.0
    # the old primary returns: fenced, follows b, catches up -> back to remote_apply
    a.start()
    wait_for(lambda: status(b, tok)["standalone"] is False, 30, "standalone to end")
    sb = status(b, tok)
    assert sb["effective_mode"] == "remote_apply" and sb["peer"]["connected"]
    assert metric(b, "refuge_repl_standalone") == 0
    assert "standalone ended" in open(b.log_path).read()
    assert create_tenant(b, tok, "synced").status_code == 201
    assert {"synced", "alone4", "alone-restarted", "pre4"} <= tenant_names(a)    # applied before the 201
    # strict again: without the standby a write waits max_lag_ms and fails
    a.kill()
    t0 = time.monotonic()
    assert create_tenant(b, tok, "waits").status_code == 503
    assert time.monotonic() - t0 >= 1.5
    assert status(b, tok)["standalone"] is False


def test_promote_body_is_checked(workdir, nodes):
    a, b, tok = start_pair(nodes, workdir)
    wait_caught_up(a, b, tok)
    r = b.post("/admin/v1/node/promote", headers=auth(tok), json={"allow_standalone": "yes"})
    assert r.status_code == 400 and "allow_standalone" in r.json()["error_description"]
    r = b.post("/admin/v1/node/promote", headers=auth(tok), data="{not json")
    assert r.status_code == 400
    assert status(b, tok)["role"] == "standby"


def _check_refused_prefix(a, b, tok, names):
    """b halted: diverged, and its data is exactly a's first records."""
    sb = wait_for(lambda: (lambda s: s["diverged"] and s)(status(b, tok)), 15, "standby to report diverged")
    assert metric(b, "refuge_repl_diverged") == 1
    la, lb = repl_log(a), repl_log(b)
    assert len(lb) < len(la)
    assert lb == la[:len(lb)]                 # nothing after the refused record
    assert sb["lsn"] == lb[-1][1]
    # every tenant b holds came with a record it applied, and no other one
    applied = b"".join(r[4] for r in lb)
    have = tenant_names(b) - {"default"}
    for n in names:
        in_log = bytes([3, len(n)]) + n.encode() in applied
        assert (n in have) == in_log, n
    # it stays halted: nothing more is applied
    time.sleep(0.5)
    assert status(b, tok)["lsn"] == sb["lsn"]
    return sb


@pytest.mark.parametrize("hook", ["REFUGE_TEST_CORRUPT_FRAME", "REFUGE_TEST_CORRUPT_RECORD"])
def test_corruption_refused_and_diverged(workdir, nodes, hook):
    a, b, tok = start_pair(nodes, workdir, env_a={hook: "4"})
    wait_caught_up(a, b, tok)
    names = []
    for i in range(12):
        names.append("cx%02d" % i)
        assert create_tenant(a, tok, names[-1]).status_code == 201
        time.sleep(0.03)
    sb = _check_refused_prefix(a, b, tok, names)
    assert "hash" in sb["diverged_reason"] or "frame" in sb["diverged_reason"] or "checksum" in sb["diverged_reason"]
    assert any(n in tenant_names(a) for n in names)


def test_rejoin_rewinds_divergent_writes(workdir, nodes):
    a, b, tok = start_pair(nodes, workdir)
    for i in range(5):
        assert create_tenant(a, tok, "base%d" % i).status_code == 201
    wait_caught_up(a, b, tok)
    # the link goes: a keeps writing alone, then dies
    b.kill()
    divergent = ["lost%d" % i for i in range(3)]
    for n in divergent:
        assert create_tenant(a, tok, n).status_code == 201
    a.kill()
    # b is promoted and writes
    b.start()
    r = b.post("/admin/v1/node/promote", headers=auth(tok))
    assert r.status_code == 200, r.text
    assert r.json()["epoch"] == 2
    for i in range(4):
        assert create_tenant(b, tok, "new%d" % i).status_code == 201
    # a comes back: fenced by b's higher epoch, rewinds, follows b
    a.start()
    sa = wait_for(lambda: (lambda s: s["role"] == "standby" and s)(status(a, tok)), 15, "old primary fenced")
    assert sa["epoch"] >= 2
    wait_caught_up(b, a, tok)
    assert_same_tables(b, a)
    names = tenant_names(a)
    assert not (set(divergent) & names)
    assert {"new0", "new3", "base4"} <= names
    # the exported file lists exactly the divergent writes
    ddir = os.path.join(a.data_dir, "divergent")
    files = sorted(os.listdir(ddir))
    assert len(files) == 1 and files[0].startswith("1-") and files[0].endswith(".json")
    doc = json.load(open(os.path.join(ddir, files[0])))
    assert doc["epoch"] == 1 and doc["node"] == "a"
    inserted = [ch["primary_key"]["name"] for tx in doc["transactions"] for ch in tx["changes"]
                if ch["table"] == "tenants" and ch["op"] == "INSERT"]
    assert inserted == divergent
    assert doc["from_lsn"] == doc["common_lsn"] + 1
    assert all(tx["commit_time"].endswith("Z") for tx in doc["transactions"])
    # switchover back: demote b, promote a, a writes, b follows
    r = b.post("/admin/v1/node/demote", headers=auth(tok))
    assert r.status_code == 200 and r.json()["role"] == "standby"
    assert create_tenant(b, tok, "refused").status_code == 503
    assert b.post("/admin/v1/node/demote", headers=auth(tok)).status_code == 409
    r = a.post("/admin/v1/node/promote", headers=auth(tok))
    assert r.status_code == 200, r.text
    assert r.json()["epoch"] == 3
    assert create_tenant(a, tok, "back-home").status_code == 201
    wait_caught_up(a, b, tok)
    assert_same_tables(a, b)


def test_demote_serves_the_standby_to_the_final_lsn(workdir, nodes):
    """Writes acknowledged just before a demotion reach the standby: the
    demoted node streams until the standby acknowledged its final lsn, so
    an immediate promotion of the standby has them (switchover)."""
    a, b, tok = start_pair(nodes, workdir, env_b={"REFUGE_TEST_APPLY_DELAY_MS": "300"})
    wait_caught_up(a, b, tok)
    names = ["last%d" % i for i in range(6)]
    for n in names:
        assert create_tenant(a, tok, n).status_code == 201
    tip = status(a, tok)["lsn"]
    assert status(b, tok)["lsn"] < tip               # the slow standby is behind
    r = a.post("/admin/v1/node/demote", headers=auth(tok))
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["role"] == "standby" and d["writable"] is False
    assert d["demote"] == {"final_lsn": tip, "standby_acked_lsn": tip, "drained": True}
    assert status(b, tok)["lsn"] == tip
    r = b.post("/admin/v1/node/promote", headers=auth(tok))
    assert r.status_code == 200, r.text
    assert set(names) <= tenant_names(b)
    # the old active follows the new one
    assert create_tenant(b, tok, "after").status_code == 201
    wait_caught_up(b, a, tok)
    assert_same_tables(b, a)
    # a demotion with no standby attached does not wait
    t0 = time.monotonic()
    b.kill()
    r = a.post("/admin/v1/node/promote", headers=auth(tok))
    assert r.status_code == 200
    assert create_tenant(a, tok, "alone").status_code == 201
    r = a.post("/admin/v1/node/demote", headers=auth(tok))
    assert r.status_code == 200 and r.json()["demote"]["drained"] is False
    assert time.monotonic() - t0 < 4


def test_rejoin_reports_rewinding_then_streaming(workdir, nodes):
    """A rejoining old primary says "rewinding" while it still holds its
    divergent tail, and "streaming" only once at the active's position."""
    a, b, tok = start_pair(nodes, workdir, env_a={"REFUGE_TEST_APPLY_DELAY_MS": "1500"})
    for i in range(3):
        assert create_tenant(a, tok, "base%d" % i).status_code == 201
    wait_caught_up(a, b, tok, timeout=40)
    b.kill()
    for i in range(3):
        assert create_tenant(a, tok, "lost%d" % i).status_code == 201
    a.kill()
    b.start()
    r = b.post("/admin/v1/node/promote", headers=auth(tok))
    assert r.status_code == 200, r.text
    for i in range(3):
        assert create_tenant(b, tok, "new%d" % i).status_code == 201
    target = status(b, tok)["lsn"]
    a.start()
    seen = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        s = status(a, tok)
        seen.append((s["sync_state"], s["lsn"], s["lsn_epoch"], s["peer"]["connected"], s["role"]))
        if s["sync_state"] == "streaming":
            break
        time.sleep(0.05)
    states = [x[0] for x in seen]
    assert states[-1] == "streaming", seen
    rewinding = [x for x in seen if x[0] == "rewinding"]
    assert rewinding, seen
    # while rewinding it is connected, a standby, and still holds its old epoch-1 tip
    assert all(x[3] and x[4] == "standby" and x[2] == 1 and x[1] > 0 for x in rewinding), rewinding
    # streaming only at the active's position, in its epoch
    assert seen[-1][1] == target and seen[-1][2] == 2, seen[-1]
    assert all(x[2] == 2 for x in seen if x[0] in ("catching_up", "streaming")), seen
    assert status(a, tok)["common_lsn"] < seen[-1][1]
    assert status(b, tok)["sync_state"] == "active"


def test_quick_promote_demote_is_not_divergence(workdir, nodes):
    """A standby promoted and demoted before it wrote anything keeps an epoch
    with no record in its history. After it followed the next active, its
    reconnection must not take that for divergence (it once exported and
    rewound every record after the switch: common_lsn 1, 391 transactions)."""
    a, b, tok = start_pair(nodes, workdir)
    for i in range(3):
        assert create_tenant(a, tok, "pre%d" % i).status_code == 201
    wait_caught_up(a, b, tok)
    assert a.post("/admin/v1/node/demote", headers=auth(tok)).status_code == 200
    r = b.post("/admin/v1/node/promote", headers=auth(tok))
    assert r.status_code == 200 and r.json()["epoch"] == 2
    wait_for(lambda: (lambda s: s["epoch"] == 2 and s["sync_state"] == "streaming")(status(a, tok)), 20,
             "a to follow b")
    # straight back, b wrote nothing in epoch 2
    assert b.post("/admin/v1/node/demote", headers=auth(tok)).status_code == 200
    r = a.post("/admin/v1/node/promote", headers=auth(tok))
    assert r.status_code == 200 and r.json()["epoch"] == 3
    for i in range(5):
        assert create_tenant(a, tok, "e3-%d" % i).status_code == 201
    wait_caught_up(a, b, tok)
    con = sqlite3.connect("file:%s?mode=ro" % db_path(b), uri=True)
    hist_b = con.execute("SELECT epoch, start_lsn FROM epoch_history ORDER BY epoch").fetchall()
    con.close()
    assert [e for e, _ in hist_b][-2:] == [2, 3] and hist_b[-1][1] == hist_b[-2][1]    # the empty epoch 2
    # b reconnects: nothing is divergent, nothing is rewound
    b.kill()
    b.start()
    assert create_tenant(a, tok, "after-restart").status_code == 201
    wait_caught_up(a, b, tok)
    sb = status(b, tok)
    assert sb["sync_state"] == "streaming"
    assert sb["common_lsn"] >= sb["lsn"] - 1
    assert not os.path.exists(os.path.join(b.data_dir, "divergent"))
    assert "holds transactions the active does not" not in open(b.log_path).read()
    assert repl_log(a) == repl_log(b)
    # the same data; epoch_history is each node's own (b keeps its empty epoch 2)
    da, db_ = dump(a), dump(b)
    assert da.pop("epoch_history") != db_.pop("epoch_history")
    assert da == db_ and "after-restart" in {r[0] for r in da["tenants"]}


def test_max_lag_and_remote_apply_without_standby(workdir, nodes):
    a, b = make_pair(workdir, mode="async", max_lag="400ms")
    nodes.extend([a, b])
    a.start()
    tok = a.admin_token()
    time.sleep(0.6)      # the bootstrap record is now older than max_lag_ms, nobody acknowledged it
    t0 = time.monotonic()
    r = create_tenant(a, tok, "paused")
    assert r.status_code == 503, r.text
    assert r.json()["error"] == "temporarily_unavailable"
    assert time.monotonic() - t0 >= 0.3        # it waited (bounded) before failing
    assert status(a, tok)["rpo_exposure_ms"] >= 400
    b.start()
    wait_caught_up(a, b, tok)
    assert create_tenant(a, tok, "resumed").status_code == 201


def test_remote_apply_without_standby_fails(workdir, nodes):
    a, b = make_pair(workdir, mode="remote_apply", max_lag="500ms")
    nodes.extend([a, b])
    a.start()
    tok = a.admin_token()
    r = create_tenant(a, tok, "unacked")
    assert r.status_code == 503, r.text
    b.start()
    wait_for(lambda: status(a, tok)["peer"]["connected"], 15, "standby attached")
    assert create_tenant(a, tok, "acked").status_code == 201
    # acknowledged means applied on the standby already
    assert "acked" in tenant_names(b)


def test_standby_behind_retained_log_gets_snapshot(workdir, nodes):
    env = {"REFUGE_REPL_RETAIN_MS": "0", "REFUGE_REPL_RETAIN_BYTES": "0"}
    a, b, tok = start_pair(nodes, workdir, env_a=env, env_b=env)
    wait_caught_up(a, b, tok)
    b.kill()
    for i in range(10):
        assert create_tenant(a, tok, "gap%d" % i).status_code == 201
    # without a standby acknowledging, nothing it lacks is pruned ...
    time.sleep(1.5)
    assert len(repl_log(a)) > 10
    b.start()
    wait_caught_up(a, b, tok)
    assert_same_tables(a, b)
    # ... and once it has everything, the log shrinks to the tip
    wait_for(lambda: len(repl_log(a)) <= 2, 10, "retention to prune")
    assert repl_log(a)[-1][1] == status(a, tok)["lsn"]


# ------------------------------------------------------------- certificates

def make_ca(path, names):
    subprocess.run([REFUGECTL, "cert", "init", path], check=True, capture_output=True)
    for n in names:
        subprocess.run([REFUGECTL, "cert", "issue", n, path, "--ip", "127.0.0.1"], check=True, capture_output=True)


def tls_conf(d, name, cert_name=None):
    cert_name = cert_name or name
    return {"tls_ca": os.path.join(d, "ca.crt"), "tls_cert": os.path.join(d, cert_name + ".crt"),
            "tls_key": os.path.join(d, cert_name + ".key")}


needs_refugectl = pytest.mark.skipif(not os.path.exists(REFUGECTL), reason="refugectl not built")


@needs_refugectl
def test_mutual_tls(workdir, nodes):
    ca = os.path.join(workdir, "ca1")
    make_ca(ca, ["a", "b"])
    a, b, tok = start_pair(nodes, workdir, tls={"a": tls_conf(ca, "a"), "b": tls_conf(ca, "b")})
    assert create_tenant(a, tok, "secure").status_code == 201
    wait_caught_up(a, b, tok)
    assert_same_tables(a, b)


@needs_refugectl
@pytest.mark.parametrize("case", ["other_ca", "wrong_name"])
def test_untrusted_certificate_refused(workdir, nodes, case):
    ca1, ca2 = os.path.join(workdir, "ca1"), os.path.join(workdir, "ca2")
    make_ca(ca1, ["a", "b", "c"])
    make_ca(ca2, ["b"])
    tb = tls_conf(ca2, "b") if case == "other_ca" else tls_conf(ca1, "b", cert_name="c")
    a, b, tok = start_pair(nodes, workdir, tls={"a": tls_conf(ca1, "a"), "b": tb})
    assert create_tenant(a, tok, "private").status_code == 201
    time.sleep(1.5)
    sa = status(a, tok)
    assert not sa["peer"]["connected"]
    # b holds nothing (not even the keys to check a token): ask its metrics
    assert metric(b, "refuge_repl_lsn") == 0
    assert metric(b, "refuge_repl_connected") == 0
    assert tenant_names(b) == set()
    text = open(a.log_path).read()
    if case == "other_ca":
        assert "refused a connection" in text
    else:
        assert "certificate names another node" in text
