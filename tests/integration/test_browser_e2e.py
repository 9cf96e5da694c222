"""End-to-end browser sign-in across a region failover (issue 8): runs
tests/browser/e2e.test.mjs (headless Chromium driven by npm playwright-core,
and a relying party built on npm openid-client) against two real refuged
regions behind HAProxy, the front door of deploy/haproxy/refuge.cfg.

Set-up here: region A (active) and region B (standby) replicating over
plaintext loopback with replicate_sessions = true, both with the front
door's URL as public_url (one issuer); HAProxy sends traffic to whichever
node answers /health/ready; a tenant, a public client registered for the
RP's redirect and post-logout URIs, and a user (through SCIM). The Node side
signs in, kills A, promotes B and checks the browser is still signed in.
Screenshots of every step land in $REFUGE_BUILD/test-artifacts/browser/.

Needs Debian's chromium (/usr/bin/chromium) and haproxy; node_modules is
installed with `npm ci` only when missing or when package-lock.json changed.
"""
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid

import requests

from refuge import BUILD, SRC, Node, free_port

HERE = os.path.join(SRC, "tests", "browser")
STAMP = os.path.join(HERE, "node_modules", ".refuge-lockfile-sha256")
CHROMIUM = "/usr/bin/chromium"


def ensure_node_modules():
    with open(os.path.join(HERE, "package-lock.json"), "rb") as f:
        want = hashlib.sha256(f.read()).hexdigest()
    try:
        with open(STAMP) as f:
            if f.read().strip() == want:
                return
    except OSError:
        pass
    npm = shutil.which("npm")
    assert npm, "npm not found (scripts/install-deps installs nodejs and npm)"
    r = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=HERE,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, "npm ci failed:\n%s\n%s" % (r.stdout, r.stderr)
    with open(STAMP, "w") as f:
        f.write(want + "\n")


def wait_for(fn, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except requests.RequestException as e:
            last = e
        time.sleep(0.05)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


class Haproxy:
    def __init__(self, workdir, front_port, a, b):
        self.sock = os.path.join(workdir, "haproxy.sock")
        self.env = dict(os.environ, REFUGE_FRONT_BIND="127.0.0.1:%d" % front_port,
                        REFUGE_NODE_A="127.0.0.1:%d" % a.port, REFUGE_NODE_B="127.0.0.1:%d" % b.port,
                        REFUGE_HAPROXY_SOCKET=self.sock, REFUGE_HAPROXY_PID=os.path.join(workdir, "haproxy.pid"))
        self.log = open(os.path.join(workdir, "haproxy.log"), "wb")
        haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
        self.proc = subprocess.Popen([haproxy, "-f", os.path.join(SRC, "deploy", "haproxy", "refuge.cfg"), "-db"],
                                     env=self.env, stdout=self.log, stderr=self.log)

    def server_states(self):
        """{server name: srv_op_state} from the runtime API (2 = up, 0 = down)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            s.connect(self.sock)
            s.sendall(b"show servers state refuge\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        states = {}
        for line in data.decode().splitlines():
            f = line.split()
            if len(f) > 5 and f[1] == "refuge":
                states[f[3]] = int(f[5])
        return states

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def test_browser_sign_in_survives_failover(tmp_path):
    assert os.path.exists(CHROMIUM), \
        "Debian's chromium is missing: scripts/install-deps must install the `chromium` package"
    ensure_node_modules()
    workdir = str(tmp_path)
    front_port, rp_port = free_port(), free_port()
    front = "http://127.0.0.1:%d" % front_port
    pa, pb = free_port(), free_port()
    repl = lambda me, peer: {"listen": "127.0.0.1:%d" % me, "peer": "127.0.0.1:%d" % peer,
                             "insecure_plaintext": True, "replicate_sessions": True}
    a = Node(workdir, name="a", region="region-a", extra={"http": {"public_url": front}, "replication": repl(pa, pb)})
    b = Node(workdir, name="b", region="region-b", role="standby",
             extra={"http": {"public_url": front}, "replication": repl(pb, pa)})
    hap = None
    try:
        a.start()
        shutil.copy(os.path.join(a.data_dir, "master.key"), os.path.join(b.data_dir, "master.key"))
        os.chmod(os.path.join(b.data_dir, "master.key"), 0o600)
        b.start()
        hap = Haproxy(workdir, front_port, a, b)
        # HAProxy starts with both servers up; wait for its checks to take the standby out
        wait_for(lambda: os.path.exists(hap.sock) and hap.server_states() == {"a": 2, "b": 0}, what="front door on A")

        admin = a.admin_token()
        ah = {"Authorization": "Bearer " + admin}
        tenant = "e2e" + uuid.uuid4().hex[:6]
        r = requests.post(front + "/admin/v1/tenants", json={"name": tenant, "display_name": "Example Corp"},
                          headers=ah, timeout=10)
        assert r.status_code == 201, r.text
        issuer = "%s/t/%s" % (front, tenant)
        rp = "http://127.0.0.1:%d" % rp_port
        r = requests.post(issuer + "/admin/v1/clients", headers=ah, timeout=10, json={
            "name": "E2E web app", "type": "public", "redirect_uris": [rp + "/cb"],
            "post_logout_redirect_uris": [rp + "/bye"], "grant_types": ["authorization_code"],
            "scopes": ["openid", "profile"], "default_scopes": ["openid"]})
        assert r.status_code == 201, r.text
        client_id = r.json()["client_id"]
        username, password = "alice", "Alice-Passw0rd!"
        r = requests.post(issuer + "/scim2/Users", headers=dict(ah, **{"Content-Type": "application/scim+json"}),
                          timeout=30, json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                            "userName": username, "password": password,
                                            "name": {"givenName": "Alice", "familyName": "Liddell"}})
        assert r.status_code == 201, r.text

        shots = os.path.join(BUILD, "test-artifacts", "browser")
        shutil.rmtree(shots, ignore_errors=True)
        env = dict(os.environ)
        env.pop("NODE_OPTIONS", None)
        env["REFUGE_E2E"] = json.dumps({
            "front": front, "issuer": issuer, "clientId": client_id, "rpPort": rp_port,
            "username": username, "password": password, "admin": admin,
            "nodeA": {"url": a.url, "pid": a.proc.pid}, "nodeB": {"url": b.url}, "shots": shots})
        r = subprocess.run(["node", "--test", "--test-reporter=spec", "--test-timeout=180000", "e2e.test.mjs"],
                           cwd=HERE, env=env, capture_output=True, text=True, timeout=300)
        out = r.stdout + r.stderr
        assert r.returncode == 0, "browser test failed:\n%s\n--- region A ---\n%s\n--- region B ---\n%s" % (
            out, a.tail(20), b.tail(20))
        counts = dict((m.group(1), int(m.group(2))) for m in re.finditer(r"^\u2139 (\w+) (\d+)$", out, re.M))
        assert counts.get("pass", 0) >= 8 and counts.get("fail") == 0, out
        assert counts.get("cancelled") == 0 and counts.get("skipped") == 0, out
        # the artifacts: one screenshot per step, real PNGs
        pngs = sorted(f for f in os.listdir(shots) if f.endswith(".png"))
        assert len(pngs) == 7, pngs
        for f in pngs:
            with open(os.path.join(shots, f), "rb") as fh:
                head = fh.read(8)
            assert head == b"\x89PNG\r\n\x1a\n" and os.path.getsize(os.path.join(shots, f)) > 2000, f
        # B is the active region now, and it was never asked for the password again
        lines = [json.loads(l) for l in open(b.log_path) if l.strip()]
        assert not [l for l in lines if l.get("msg") == "login"], "B ran a password login"
        assert [l for l in lines if l.get("msg") == "logout"], "B handled the logout"
    finally:
        if hap:
            hap.stop()
        b.kill()
        a.kill()
