#!/usr/bin/python3
"""A two-region Refuge deployment on loopback: the one `make demo`, `make up`
and the DR tests (tests/dr) run.

    scripts/refuge_deploy.py up DIR [--base-port 18000] [--mode remote_apply]
    scripts/refuge_deploy.py seed DIR
    scripts/refuge_deploy.py down DIR

`up` generates everything under DIR (cluster CA and node certificates made by
`refugectl cert`, a shared master key, refuge.conf for region A (active) and
region B (standby) with mutually authenticated TLS replication, the HAProxy
configuration from deploy/haproxy/refuge.cfg, and cluster.conf for
refugectl), then starts node a, node b and HAProxy as detached processes with
pid files in DIR/run. `down` stops exactly the processes named by those pid
files (after checking that each pid still runs the program we started).

Standard library only: this runs on a fresh machine before anything else is
installed for Python.
"""
import argparse
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

SRC = os.environ.get("REFUGE_SRC", os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))
BUILD = os.environ.get("REFUGE_BUILD", os.path.join(SRC, "build"))
HAPROXY_TEMPLATE = os.path.join(SRC, "deploy", "haproxy", "refuge.cfg")
NODES = ("a", "b")
REGIONS = {"a": "region-a", "b": "region-b"}


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HTTPError(Exception):
    pass


def http(method, url, body=None, headers=None, timeout=5.0, form=None, auth=None):
    """(status, parsed JSON or text). Raises HTTPError only on transport errors."""
    headers = dict(headers or {})
    data = None
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if auth:
        cred = "%s:%s" % (urllib.parse.quote_plus(auth[0]), urllib.parse.quote_plus(auth[1]))
        headers["Authorization"] = "Basic " + base64.b64encode(cred.encode()).decode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    except (urllib.error.URLError, OSError) as e:
        raise HTTPError(str(e))
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def _pid_alive(pid, needle):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    try:
        with open("/proc/%d/stat" % pid) as f:
            if f.read().split(")")[-1].split()[0] == "Z":
                return False
    except OSError:
        return False
    return needle in cmd


class Deployment:
    def __init__(self, root, build=BUILD, base_port=None, mode="remote_apply", replicate_tokens=True,
                 extra=None, peers=None):
        self.root = os.path.abspath(root)
        self.build = build
        self.refuged = os.path.join(build, "refuged")
        self.refugectl = os.path.join(build, "refugectl")
        self.mode = mode
        self.replicate_tokens = replicate_tokens
        self.extra = extra or {}
        self.peers = peers or {}      # node -> "host:port" its replication peer is reached at (a relay)
        self.run = os.path.join(self.root, "run")
        self.pki = os.path.join(self.root, "pki")
        ports_file = os.path.join(self.root, "ports.json")
        if os.path.exists(ports_file):
            with open(ports_file) as f:
                self.ports = json.load(f)
        elif base_port:
            b = int(base_port)
            self.ports = {"front": b, "http_a": b + 81, "http_b": b + 82, "repl_a": b + 91, "repl_b": b + 92}
        else:
            self.ports = {k: free_port() for k in ("front", "http_a", "http_b", "repl_a", "repl_b")}
        self.front_url = "http://127.0.0.1:%d" % self.ports["front"]
        self._procs = {}

    # ------------------------------------------------------------ paths
    def url(self, name):
        return "http://127.0.0.1:%d" % self.ports["http_" + name]

    def conf_path(self, name):
        return os.path.join(self.root, "%s.conf" % name)

    def data_dir(self, name):
        return os.path.join(self.root, name)

    def pid_file(self, name):
        return os.path.join(self.run, "%s.pid" % name)

    def log_file(self, name):
        return os.path.join(self.run, "%s.out" % name)

    @property
    def cluster_conf(self):
        return os.path.join(self.root, "cluster.conf")

    @property
    def credentials(self):
        return os.path.join(self.root, "admin-credentials.json")

    @property
    def haproxy_socket(self):
        return os.path.join(self.run, "haproxy.sock")

    def start_command(self, name):
        return "%s -c %s" % (self.refuged, self.conf_path(name))

    # --------------------------------------------------------- generate
    def generate(self):
        os.makedirs(self.run, exist_ok=True)
        with open(os.path.join(self.root, "ports.json"), "w") as f:
            json.dump(self.ports, f)
        if not os.path.exists(os.path.join(self.pki, "ca.crt")):
            self._ctl("cert", "init", self.pki)
            for n in NODES:
                self._ctl("cert", "issue", n, self.pki, "--ip", "127.0.0.1", "--dns", "localhost")
        key = os.path.join(self.root, "master.key")
        if not os.path.exists(key):
            fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, os.urandom(32))
            os.close(fd)
        for n in NODES:
            os.makedirs(self.data_dir(n), exist_ok=True)
            self._write_node_conf(n, key)
        self._write_cluster_conf()

    def _ctl(self, *args):
        r = subprocess.run([self.refugectl] + list(args), capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError("refugectl %s: %s%s" % (" ".join(args), r.stdout, r.stderr))
        return r.stdout

    def _write_node_conf(self, n, master_key):
        other = "b" if n == "a" else "a"
        sections = {
            "node": {"name": n, "region": REGIONS[n], "data_dir": self.data_dir(n),
                     "initial_role": "active" if n == "a" else "standby", "master_key_file": master_key},
            "http": {"listen": "127.0.0.1:%d" % self.ports["http_" + n], "public_url": self.front_url,
                     "threads": 4, "trusted_proxies": "127.0.0.1"},
            "replication": {"listen": "127.0.0.1:%d" % self.ports["repl_" + n],
                            "peer": self.peers.get(n, "127.0.0.1:%d" % self.ports["repl_" + other]),
                            "mode": self.mode,
                            "tls_ca": os.path.join(self.pki, "ca.crt"),
                            "tls_cert": os.path.join(self.pki, "%s.crt" % n),
                            "tls_key": os.path.join(self.pki, "%s.key" % n),
                            "replicate_tokens": "true" if self.replicate_tokens else "false",
                            "replicate_sessions": "true"},
            "dr": {"rpo_target_ms": 0 if self.mode != "async" else 1000, "rto_target_ms": 1000},
            "log": {"level": "info", "format": "json", "file": os.path.join(self.data_dir(n), "refuged.log")},
        }
        for sec, kv in self.extra.items():
            sections.setdefault(sec, {}).update(kv)
        lines = []
        for sec, kv in sections.items():
            lines.append("[%s]" % sec)
            lines += ["%s = %s" % (k, v) for k, v in kv.items()]
            lines.append("")
        with open(self.conf_path(n), "w") as f:
            f.write("\n".join(lines))

    def _write_cluster_conf(self):
        rpo = 0 if self.mode != "async" else 1000
        text = """# refugectl's view of this deployment (generated by scripts/refuge_deploy.py)
[cluster]
name = refuge-demo
admin_credentials = {cred}
rto_target_ms = 1000
rpo_target_ms = {rpo}
journal = {run}/refugectl.journal

[haproxy]
socket = {sock}
backend = refuge
frontend_url = {front}
""".format(cred=self.credentials, rpo=rpo, run=self.run, sock=self.haproxy_socket, front=self.front_url)
        for n in NODES:
            text += """
[node.{n}]
admin_url = {url}
region = {region}
haproxy_server = {n}
data_dir = {data}
start_command = {cmd}
pid_file = {pid}
log_file = {log}
""".format(n=n, url=self.url(n), region=REGIONS[n], data=self.data_dir(n), cmd=self.start_command(n),
           pid=self.pid_file(n), log=self.log_file(n))
        with open(self.cluster_conf, "w") as f:
            f.write(text)

    # ------------------------------------------------------- processes
    def _spawn(self, name, argv, env=None):
        out = open(self.log_file(name), "ab")
        p = subprocess.Popen(argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL, env=env,
                             start_new_session=True, cwd=self.root)
        out.close()
        self._procs[name] = p
        with open(self.pid_file(name), "w") as f:
            f.write("%d\n" % p.pid)
        return p

    def pid(self, name):
        try:
            with open(self.pid_file(name)) as f:
                return int(f.read().strip() or 0)
        except (OSError, ValueError):
            return 0

    def running(self, name):
        pid = self.pid(name)
        p = self._procs.get(name)
        if p is not None and p.pid == pid:
            return p.poll() is None       # our child (maybe not exec'd yet)
        return pid > 0 and _pid_alive(pid, "haproxy" if name == "haproxy" else "refuged")

    def start_node(self, name, wait=True, timeout=15.0):
        self._spawn(name, [self.refuged, "-c", self.conf_path(name)])
        if wait:
            self.wait_live(name, timeout)

    def wait_live(self, name, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running(name):
                raise RuntimeError("node %s exited:\n%s" % (name, self.tail(name)))
            try:
                if http("GET", self.url(name) + "/health/live", timeout=0.5)[0] == 200:
                    return
            except HTTPError:
                pass
            time.sleep(0.02)
        raise RuntimeError("node %s not live after %.0f s:\n%s" % (name, timeout, self.tail(name)))

    def tail(self, name, n=25):
        out = []
        for p in (os.path.join(self.data_dir(name), "refuged.log"), self.log_file(name)):
            try:
                with open(p, "rb") as f:
                    out.append(b"".join(f.readlines()[-n:]).decode(errors="replace"))
            except OSError:
                pass
        return "\n".join(out)

    def start_haproxy(self, timeout=10.0):
        env = dict(os.environ)
        env.update({"REFUGE_FRONT_BIND": "127.0.0.1:%d" % self.ports["front"],
                    "REFUGE_NODE_A": "127.0.0.1:%d" % self.ports["http_a"],
                    "REFUGE_NODE_B": "127.0.0.1:%d" % self.ports["http_b"],
                    "REFUGE_HAPROXY_SOCKET": self.haproxy_socket,
                    "REFUGE_HAPROXY_PID": self.pid_file("haproxy")})
        haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
        self._spawn("haproxy", [haproxy, "-f", HAPROXY_TEMPLATE, "-db"], env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running("haproxy"):
                raise RuntimeError("haproxy exited:\n" + self.tail("haproxy"))
            if os.path.exists(self.haproxy_socket):
                return
            time.sleep(0.02)
        raise RuntimeError("haproxy did not open its socket")

    def start(self, timeout=30.0):
        self.generate()
        self.start_node("a")
        boot = os.path.join(self.data_dir("a"), "bootstrap-admin.json")
        deadline = time.monotonic() + timeout
        while not os.path.exists(boot):
            if time.monotonic() > deadline:
                raise RuntimeError("node a wrote no bootstrap-admin.json:\n" + self.tail("a"))
            time.sleep(0.02)
        if not os.path.exists(self.credentials):
            shutil.copyfile(boot, self.credentials)
            os.chmod(self.credentials, 0o600)
        self.start_node("b")
        self.start_haproxy()
        self.wait_ready(deadline - time.monotonic())
        return self

    def haproxy(self, cmd):
        """One runtime API command; the reply text."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(2)
        try:
            s.connect(self.haproxy_socket)
            s.sendall(cmd.encode() + b"\n")
            out = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                out += d
        finally:
            s.close()
        return out.decode(errors="replace")

    def haproxy_states(self):
        """{server: (op_state, admin_state)} of backend refuge."""
        lines = self.haproxy("show servers state refuge").splitlines()
        names = next(l for l in lines if l.startswith("#"))[1:].split()
        out = {}
        for l in lines:
            f = l.split()
            if len(f) == len(names) and not l.startswith("#"):
                row = dict(zip(names, f))
                out[row["srv_name"]] = (int(row["srv_op_state"]), int(row["srv_admin_state"]))
        return out

    def wait_ready(self, timeout=20.0):
        """Front door answers from the active node and the standby is connected and caught up."""
        deadline = time.monotonic() + max(timeout, 1.0)
        last = None
        while time.monotonic() < deadline:
            try:
                ready = http("GET", self.front_url + "/health/ready", timeout=1)[0] == 200
                sa, sb = self.status("a"), self.status("b")
                last = (sa, sb)
                roles = {sa.get("role"), sb.get("role")}
                act, sby = (sa, sb) if sa.get("role") == "active" else (sb, sa)
                if ready and roles == {"active", "standby"} and sby.get("peer", {}).get("connected") \
                        and sby.get("lsn") == act.get("lsn"):
                    # HAProxy counts a server UP until its first check fails:
                    # wait until only the active one takes traffic
                    standby = "a" if sby is sa else "b"
                    if self.haproxy_states().get(standby, (2, 0))[0] != 0:
                        self.haproxy("set server refuge/%s health down" % standby)
                        continue
                    return
            except (HTTPError, RuntimeError, KeyError) as e:
                last = e
            time.sleep(0.05)
        raise RuntimeError("deployment not ready: %r\n--- a\n%s\n--- b\n%s" % (last, self.tail("a"), self.tail("b")))

    def stop(self, timeout=10.0):
        """Stops every process named by a pid file in run/ (TERM, then KILL)."""
        names = [f[:-4] for f in os.listdir(self.run) if f.endswith(".pid")] if os.path.isdir(self.run) else []
        live = {}
        for name in names:
            pid = self.pid(name)
            if pid > 0 and _pid_alive(pid, "haproxy" if name == "haproxy" else "refuged"):
                try:
                    os.kill(pid, signal.SIGTERM)
                    live[name] = pid
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout
        for name, pid in live.items():
            while time.monotonic() < deadline and _pid_alive(pid, "haproxy" if name == "haproxy" else "refuged"):
                time.sleep(0.02)
            if _pid_alive(pid, "haproxy" if name == "haproxy" else "refuged"):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for name in names:
            try:
                os.unlink(self.pid_file(name))
            except OSError:
                pass
        for p in self._procs.values():
            try:
                p.wait(1)
            except subprocess.TimeoutExpired:
                pass
        self._procs.clear()
        return sorted(live)

    def kill(self, name, sig=signal.SIGKILL):
        pid = self.pid(name)
        if pid > 0 and self.running(name):
            os.kill(pid, sig)
            deadline = time.monotonic() + 10
            while self.running(name) and time.monotonic() < deadline:
                time.sleep(0.01)
            p = self._procs.pop(name, None)
            if p is not None:
                p.wait(1)

    # ------------------------------------------------------------- API
    def creds(self):
        with open(self.credentials) as f:
            c = json.load(f)
        return c["client_id"], c["client_secret"]

    def token(self, base=None, scope="refuge:admin"):
        st, j = http("POST", (base or self.front_url) + "/oauth2/token",
                     form={"grant_type": "client_credentials", "scope": scope}, auth=self.creds())
        if st != 200:
            raise RuntimeError("admin token: %s %s" % (st, j))
        return j["access_token"]

    def admin(self, method, path, body=None, base=None, timeout=5.0):
        base = base or self.front_url
        return http(method, base + path, body=body, timeout=timeout,
                    headers={"Authorization": "Bearer " + self.token(base)})

    def status(self, name):
        st, j = self.admin("GET", "/admin/v1/node", base=self.url(name), timeout=2)
        if st != 200:
            raise RuntimeError("status %s: %s %s" % (name, st, j))
        return j

    def seed(self, users=5):
        """A tenant, a client and some users, through the front door. Returns what was made."""
        made = {"tenant": None, "client": None, "users": []}
        st, j = self.admin("POST", "/admin/v1/tenants", {"name": "acme", "display_name": "Acme Corp"})
        if st in (200, 201):
            made["tenant"] = "acme"
        elif st == 409:
            made["tenant"] = "acme (existed)"
        st, j = self.admin("POST", "/t/acme/admin/v1/clients" if made["tenant"] else "/admin/v1/clients",
                           {"name": "acme-portal", "type": "confidential",
                            "grant_types": ["client_credentials"], "scopes": ["openid"], "token_format": "opaque"})
        if st in (200, 201):
            made["client"] = {"client_id": j.get("client_id"), "client_secret": j.get("client_secret")}
        st, _ = self.admin("GET", "/scim2/Users?count=1")
        if st == 200:
            for i in range(users):
                st, j = self.admin("POST", "/scim2/Users", {
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": "user%d-%d" % (i, int(time.time() * 1000) % 1000000),
                    "password": "Demo-password-%d!" % i,
                    "emails": [{"value": "user%d@example.org" % i, "primary": True}]})
                if st == 201:
                    made["users"].append(j.get("id"))
        return made


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=["up", "down", "seed", "generate"])
    ap.add_argument("dir")
    ap.add_argument("--base-port", type=int, default=None)
    ap.add_argument("--mode", default="remote_apply", choices=["async", "remote_write", "remote_apply"])
    ap.add_argument("--build", default=BUILD)
    a = ap.parse_args()
    d = Deployment(a.dir, build=a.build, base_port=a.base_port, mode=a.mode)
    if a.action == "down":
        stopped = d.stop()
        print("stopped: %s" % (", ".join(stopped) if stopped else "nothing was running"))
        return 0
    if a.action == "generate":
        d.generate()
        return 0
    if a.action == "seed":
        print(json.dumps(d.seed(), indent=2))
        return 0
    try:
        d.start()
    except Exception as e:
        print("refuge_deploy: %s" % e, file=sys.stderr)
        d.stop()
        return 1
    print(json.dumps({"front_door": d.front_url, "a": d.url("a"), "b": d.url("b"),
                      "cluster_conf": d.cluster_conf, "credentials": d.credentials}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
