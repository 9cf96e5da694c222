"""DR tests: two real refuged nodes (region A active, region B standby, TLS
replication), a real HAProxy in front (deploy/haproxy/refuge.cfg), and
refugectl driving them, all on loopback in a temporary directory.

Everything a test starts is stopped at teardown by pid file, whatever
happened (scripts/refuge_deploy.py: Deployment.stop). Nothing is mocked.
"""
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

import pytest

SRC = os.environ.get("REFUGE_SRC", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BUILD = os.environ.get("REFUGE_BUILD", os.path.join(SRC, "build"))
sys.path.insert(0, os.path.join(SRC, "scripts"))
import refuge_deploy  # noqa: E402
from refuge_deploy import Deployment, http, HTTPError  # noqa: E402,F401

REFUGECTL = os.path.join(BUILD, "refugectl")
DRILL_LINE = re.compile(r"^DRILL mode=(\w+) rto_ms=(\d+) rpo_lost_writes=(\d+) rpo_window_ms=(\d+) "
                        r"objectives=(met|missed)$")


def ctl(dep, *args, timeout=60):
    """Runs refugectl against the deployment's cluster.conf."""
    r = subprocess.run([REFUGECTL] + list(args) + ["-c", dep.cluster_conf], capture_output=True, text=True,
                       timeout=timeout, cwd=dep.root)
    return r


class Relay:
    """A TCP relay standing for the network between the regions: cut() drops
    every connection and refuses new ones (a partition), restore() heals it."""

    def __init__(self, target_port):
        self.target = ("127.0.0.1", target_port)
        self.port = refuge_deploy.free_port()
        self.conns = []
        self.lock = threading.Lock()
        self.lsock = None
        self.restore()

    def restore(self):
        if self.lsock:
            return
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(16)
        self.lsock = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def _accept(self, lsock):
        while True:
            try:
                c, _ = lsock.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(self.target, timeout=2)
            except OSError:
                c.close()
                continue
            with self.lock:
                self.conns += [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        if self.lsock:
            try:
                self.lsock.shutdown(socket.SHUT_RDWR)    # wakes the accept() blocked on it
            except OSError:
                pass
            self.lsock.close()
            self.lsock = None
        with self.lock:
            for s in self.conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()
                except OSError:
                    pass
            self.conns = []


@pytest.fixture
def make_deployment(tmp_path):
    """make_deployment(mode=..., relay=False) -> Deployment (started), and
    its Relay on B's path to A when relay=True (dep.relay)."""
    made = []

    def make(mode="remote_apply", relay=False, extra=None):
        root = str(tmp_path / ("dep%d" % len(made)))
        ports = {k: refuge_deploy.free_port() for k in ("front", "http_a", "http_b", "repl_a", "repl_b")}
        os.makedirs(root, exist_ok=True)
        with open(os.path.join(root, "ports.json"), "w") as f:
            json.dump(ports, f)
        r = Relay(ports["repl_a"]) if relay else None
        dep = Deployment(root, build=BUILD, mode=mode, extra=extra,
                         peers={"b": "127.0.0.1:%d" % r.port} if r else None)
        dep.relay = r
        made.append(dep)
        dep.start()
        return dep

    yield make
    for dep in made:
        dep.stop()
        if dep.relay:
            dep.relay.cut()


def wait_until(pred, timeout=10.0, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
            if last:
                return last
        except (HTTPError, RuntimeError, KeyError) as e:
            last = e
        time.sleep(interval)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


def opaque_client(dep, base=None):
    """A confidential client issuing opaque tokens (each issuance is a replicated write)."""
    st, j = dep.admin("POST", "/admin/v1/clients", {"name": "dr-test", "type": "confidential",
                                                      "grant_types": ["client_credentials"], "scopes": ["t"],
                                                      "token_format": "opaque"}, base=base)
    assert st == 201, j
    return j["client_id"], j["client_secret"]


def issue(dep, client, base=None, timeout=2.0):
    """(status, token or None) for one client_credentials issuance."""
    try:
        st, j = http("POST", (base or dep.front_url) + "/oauth2/token", form={"grant_type": "client_credentials"},
                     auth=client, timeout=timeout)
    except HTTPError:
        return -1, None
    return st, (j.get("access_token") if st == 200 and isinstance(j, dict) else None)


def introspect(dep, client, token, base):
    st, j = http("POST", base + "/oauth2/introspect", form={"token": token}, auth=client, timeout=5)
    assert st == 200, (st, j)
    return j.get("active") is True


class Load:
    """A client of its own through the front door: issues opaque tokens as
    fast as `interval` allows and records (sent, answered, status, token)."""

    def __init__(self, dep, client, interval=0.01, timeout=2.0):
        self.dep, self.client, self.interval, self.timeout = dep, client, interval, timeout
        self.events = []
        self.stop_ev = threading.Event()
        self.th = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.th.start()
        return self

    def _run(self):
        while not self.stop_ev.is_set():
            t0 = time.monotonic()
            st, tok = issue(self.dep, self.client, timeout=self.timeout)
            self.events.append((t0, time.monotonic(), st, tok))
            left = self.interval - (time.monotonic() - t0)
            if left > 0:
                time.sleep(left)

    def stop(self):
        self.stop_ev.set()
        self.th.join(10)
        return self

    def acked(self):
        return [e for e in self.events if e[2] == 200 and e[3]]

    def outage_ms(self, after=0.0):
        """First failure (answer time) after `after` -> first success after it, in ms; 0 if none failed."""
        evs = sorted(self.events, key=lambda e: e[1])
        t_fail = None
        for e in evs:
            if e[1] < after:
                continue
            if t_fail is None:
                if e[2] != 200:
                    t_fail = e[1]
            elif e[2] == 200:
                return (e[1] - t_fail) * 1000.0
        return 0.0 if t_fail is None else None

    def longest_gap_ms(self, start, end):
        ok = sorted(e[1] for e in self.events if e[2] == 200 and start <= e[1] <= end)
        pts = [start] + ok + [end]
        return max(b - a for a, b in zip(pts, pts[1:])) * 1000.0
