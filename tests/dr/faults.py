"""Faults and the instruments that judge them, for the fault-injection suite
(tests/dr/test_faults_*.py).

- FNode: one refuged on a topology host (topology.py), its config, kill -9,
  restart, status, RSS and open descriptors from /proc.
- Cluster: region A (active) and region B (standby) joined by the WAN link,
  HAProxy in front, the admin token, and the fixtures the load needs (an
  opaque-token client, users with passwords).
- MixedLoad: client threads on the client host issuing opaque tokens,
  creating SCIM users and rotating refresh tokens; every acknowledged write
  is recorded with its key (what it wrote: a token hash, a user id) and the
  times it was sent and answered.
- Checks: which acknowledged writes a node lacks (read-only SQLite on its
  data dir), what its divergent-transactions export holds, and whether two
  nodes hold the same rows in every replicated table.
- Faults beyond the network: a wall clock moved under a running node
  (libfaketime, FAKETIME_TIMESTAMP_FILE re-read on every call, monotonic
  clocks untouched) and a small tmpfs as a data dir that can be filled.

REFUGE_SOAK=1 selects the long versions (soak()); short ones otherwise.
"""
import glob
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid

import requests

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
from refuge import REFUGED, write_conf  # noqa: E402

import topology  # noqa: E402

SOAK = os.environ.get("REFUGE_SOAK") == "1"
CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
PASSWORD = "Correct-Horse-9-Battery"
LOCAL_TABLES = {"node_state", "repl_state", "repl_log"}
FAKETIME_LIBS = ["/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
                 "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
                 "/usr/lib/faketime/libfaketimeMT.so.1"]


def soak(short, long):
    """The short value for `make check`, the long one under REFUGE_SOAK=1."""
    return long if SOAK else short


def sha256_hex(s):
    return hashlib.sha256(s.encode()).hexdigest()


def new_session():
    s = requests.Session()
    s.trust_env = False          # never a proxy from the environment: our hosts only
    return s


def wait_for(cond, timeout=20.0, what="condition", interval=0.05):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = cond()
            if last:
                return last
        except (requests.RequestException, AssertionError, KeyError, ValueError, sqlite3.Error) as e:
            last = e
        time.sleep(interval)
    raise AssertionError("timed out after %.0f s waiting for %s (last: %r)" % (timeout, what, last))


_asan = []


def asan_build():
    """True when refuged is built with AddressSanitizer (its allocator changes RSS figures)."""
    if not _asan:
        try:
            with open(REFUGED, "rb") as f:
                _asan.append(b"__asan_init" in f.read())
        except OSError:
            _asan.append(False)
    return _asan[0]


# ------------------------------------------------------------------ nodes

class FNode:
    """One refuged on topology host `host` ("a" or "b")."""

    def __init__(self, cluster, host, role, data_dir=None, env=None):
        self.c = cluster
        self.topo = cluster.topo
        self.name = host
        self.data_dir = data_dir or os.path.join(cluster.workdir, host)
        os.makedirs(self.data_dir, exist_ok=True)
        os.makedirs(os.path.join(cluster.workdir, "logs"), exist_ok=True)
        self.log_path = os.path.join(cluster.workdir, "logs", "%s.log" % host)
        self.out_path = os.path.join(cluster.workdir, "logs", "%s.out" % host)
        self.url = self.topo.url(host, "http")
        listen = "%s:%d" % self.topo.endpoint(host, "http")
        repl = "%s:%d" % self.topo.endpoint(host, "repl")
        self.conf = {
            "node": {"name": host, "region": "region-" + host, "data_dir": self.data_dir, "initial_role": role,
                     "master_key_file": os.path.join(cluster.workdir, "master.key")},
            "http": {"listen": listen, "public_url": "https://idp.test", "threads": 4},
            "replication": {"listen": repl, "peer": cluster.wan.endpoint(host), "mode": cluster.mode,
                            "max_lag_ms": "%dms" % cluster.max_lag_ms, "insecure_plaintext": True},
            "log": {"level": "info", "format": "json", "file": self.log_path},
        }
        self.conf_path = os.path.join(cluster.workdir, "%s.conf" % host)
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.proc = None
        self.session = new_session()
        self.starts = 0

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, wait=True, timeout=20.0):
        write_conf(self.conf_path, self.conf)
        with open(self.out_path, "ab") as out:
            self.proc = self.topo.spawn(self.name, [REFUGED, "-c", self.conf_path], stdout=out, stderr=out,
                                        env=self.env)
        self.starts += 1
        if wait:
            self.wait_live(timeout)
        return self

    def wait_live(self, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("refuged %s exited with %s:\n%s" % (self.name, self.proc.returncode, self.tail()))
            try:
                if self.session.get(self.url + "/health/live", timeout=0.5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.02)
        raise RuntimeError("refuged %s did not become live:\n%s" % (self.name, self.tail()))

    def kill(self):
        """kill -9, and reap it."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout=15.0):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def tail(self, n=25):
        out = []
        for p in (self.log_path, self.out_path):
            try:
                with open(p, "rb") as f:
                    out.append(b"".join(f.readlines()[-n:]).decode(errors="replace"))
            except OSError:
                pass
        return "\n".join(out)

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    # --- HTTP
    def get(self, path, **kw):
        kw.setdefault("timeout", 5)
        return self.session.get(self.url + path, **kw)

    def post(self, path, **kw):
        kw.setdefault("timeout", 5)
        return self.session.post(self.url + path, **kw)

    def status(self, tok=None):
        r = self.get("/admin/v1/node/replication", headers=auth(tok or self.c.token), timeout=5)
        assert r.status_code == 200, "%s: %s %s" % (self.name, r.status_code, r.text)
        return r.json()

    def ready(self):
        try:
            return self.get("/health/ready", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def metric(self, name):
        for line in self.get("/metrics", timeout=2).text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        return None

    def promote(self, tok=None):
        r = self.post("/admin/v1/node/promote", headers=auth(tok or self.c.token), timeout=10)
        assert r.status_code == 200, "promote %s: %s %s" % (self.name, r.status_code, r.text)
        return r.json()

    def demote(self, tok=None):
        r = self.post("/admin/v1/node/demote", headers=auth(tok or self.c.token), timeout=10)
        assert r.status_code == 200, "demote %s: %s %s" % (self.name, r.status_code, r.text)
        return r.json()

    # --- the process from /proc
    def rss_kb(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def nfds(self):
        return len(os.listdir("/proc/%d/fd" % self.pid))

    def fd_census(self):
        """(descriptors other than HTTP client connections, HTTP client connections, sockets
        in CLOSE_WAIT). Client connections come and go with the front door's health checks
        and its pool of idle server connections; a socket its peer closed that we never
        close (CLOSE_WAIT) is a leak wherever it is."""
        http_port = self.c.topo.endpoint(self.name, "http")[1]
        states = {}
        for path in ("/proc/%d/net/tcp" % self.pid, "/proc/%d/net/tcp6" % self.pid):
            try:
                with open(path) as f:
                    next(f)
                    for line in f:
                        p = line.split()
                        states[p[9]] = (int(p[1].split(":")[1], 16), int(p[3], 16))
            except OSError:
                pass
        other = http = close_wait = 0
        for fd in os.listdir("/proc/%d/fd" % self.pid):
            try:
                tgt = os.readlink("/proc/%d/fd/%s" % (self.pid, fd))
            except OSError:
                continue
            ino = tgt[8:-1] if tgt.startswith("socket:[") else None
            port, st = states.get(ino, (None, None))
            if st == 0x08:
                close_wait += 1
            if port == http_port and st != 0x0A:       # not the listening socket
                http += 1
            else:
                other += 1
        return other, http, close_wait

    def steady_census(self, samples=15, interval=0.1):
        return steady_census([self], samples, interval)[self.name]

    # --- the data dir, read-only
    def db(self):
        return sqlite3.connect("file:%s?mode=ro" % os.path.join(self.data_dir, "refuge.db"), uri=True, timeout=10)

    def divergent_files(self):
        return sorted(glob.glob(os.path.join(self.data_dir, "divergent", "*.json")))


def steady_census(nodes, samples=15, interval=0.1):
    """{name: fd_census()} without what is only passing through (the replication housekeeping
    reaps finished sessions once a second): each figure's smallest over 1.5 s."""
    got = {n.name: [] for n in nodes}
    for _ in range(samples):
        for n in nodes:
            got[n.name].append(n.fd_census())
        time.sleep(interval)
    return {k: tuple(min(g[i] for g in v) for i in range(3)) for k, v in got.items()}


def auth(tok):
    return {"Authorization": "Bearer " + tok}


# ---------------------------------------------------------------- cluster

class Cluster:
    """Region A (first active) and region B (first standby) over the WAN link, HAProxy in front."""

    def __init__(self, topo, workdir, mode="remote_apply", max_lag_ms=1000, delay_ms=0, rate=0, front=True,
                 env=None, data_dirs=None):
        self.topo = topo
        self.workdir = workdir
        self.mode = mode
        self.max_lag_ms = max_lag_ms
        self.wan = topo.wan(delay_ms, rate)
        env = env or {}
        data_dirs = data_dirs or {}
        self.nodes = {"a": FNode(self, "a", "active", data_dirs.get("a"), env.get("a")),
                      "b": FNode(self, "b", "standby", data_dirs.get("b"), env.get("b"))}
        self.front = topology.FrontDoor(topo, workdir) if front else None
        self.token = None
        self.client = None
        self.users = []

    @property
    def a(self):
        return self.nodes["a"]

    @property
    def b(self):
        return self.nodes["b"]

    def other(self, node):
        return self.b if node is self.a else self.a

    def start(self, standby=True, seed=True):
        self.a.start()
        with open(os.path.join(self.a.data_dir, "bootstrap-admin.json")) as f:
            creds = json.load(f)
        self.admin_creds = (creds["client_id"], creds["client_secret"])
        self.token = self.mint_token(self.a)
        if standby:
            self.b.start()
        if self.front:
            self.front.start()
        if seed:
            self.seed()
        if standby:
            self.wait_caught_up(self.a, self.b)
        return self

    def mint_token(self, node):
        r = node.post("/oauth2/token", data={"grant_type": "client_credentials", "scope": "refuge:admin"},
                      auth=self.admin_creds, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()["access_token"]

    def seed(self, users=4):
        """An opaque-token client allowed every grant the load uses, and users with passwords."""
        a = self.a
        r = a.post("/admin/v1/clients", headers=auth(self.token), timeout=15,
                   json={"name": "fault-load", "type": "confidential",
                         "grant_types": ["client_credentials", "password", "refresh_token"],
                         "scopes": ["api:read"], "default_scopes": ["api:read"], "token_format": "opaque"})
        assert r.status_code == 201, r.text
        self.client = (r.json()["client_id"], r.json()["client_secret"])
        for i in range(users):
            name = "load-user-%d" % i
            r = a.post("/scim2/Users", timeout=15, headers=dict(auth(self.token), **{"Content-Type":
                                                                                      "application/scim+json"}),
                       data=json.dumps({"schemas": [CORE], "userName": name, "password": PASSWORD}))
            assert r.status_code == 201, r.text
            self.users.append(name)

    def caught_up(self, active, standby):
        sa, sb = active.status(), standby.status()
        return (sa["role"] == "active" and sb["role"] == "standby" and sa["lsn"] > 0
                and sa["lsn"] == sb["lsn"] and sa["peer"]["acked_lsn"] == sa["lsn"] and (sa, sb))

    def wait_caught_up(self, active, standby, timeout=30.0):
        return wait_for(lambda: self.caught_up(active, standby), timeout,
                        "%s to catch up with %s" % (standby.name, active.name))

    def stop(self):
        for n in self.nodes.values():
            n.kill()
        if self.front:
            self.front.stop()
        self.wan.close()


# ------------------------------------------------------------------- load

class MixedLoad:
    """Client threads on the client host: opaque tokens (client_credentials),
    SCIM user creates, refresh-token rotations. Every answer is an event
    (kind, sent, answered, ok, key); key names what an acknowledged write
    wrote: ("opaque_tokens", sha256 hex), ("users", id), ("refresh_tokens",
    sha256 hex)."""

    KINDS = ("token", "scim", "refresh")

    def __init__(self, cluster, url=None, kinds=KINDS, threads=1, timeout=6.0, pace=0.0):
        self.c = cluster
        self.url = url or cluster.front.url
        self.kinds = kinds
        self.timeout = timeout
        self.pace = pace
        self.events = []
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.threads = []
        for k in kinds:
            for i in range(threads):
                self.threads.append(threading.Thread(target=self._run, args=(k, i), daemon=True,
                                                     name="load-%s-%d" % (k, i)))

    def _record(self, kind, t0, ok, key, status):
        with self.lock:
            self.events.append((kind, t0, time.monotonic(), ok, key, status))

    def _run(self, kind, i):
        self.c.topo.enter_client()
        s = new_session()
        rt = None
        user = self.c.users[i % len(self.c.users)] if self.c.users else None
        while not self.stop_ev.is_set():
            t0 = time.monotonic()
            try:
                if kind == "token":
                    r = s.post(self.url + "/oauth2/token", data={"grant_type": "client_credentials"},
                               auth=self.c.client, timeout=self.timeout)
                    ok = r.status_code == 200
                    self._record(kind, t0, ok, ("opaque_tokens", sha256_hex(r.json()["access_token"])) if ok
                                 else None, r.status_code)
                elif kind == "scim":
                    body = {"schemas": [CORE], "userName": "fl-" + uuid.uuid4().hex[:16]}
                    r = s.post(self.url + "/scim2/Users", data=json.dumps(body), timeout=self.timeout,
                               headers={"Authorization": "Bearer " + self.c.token,
                                        "Content-Type": "application/scim+json"})
                    ok = r.status_code == 201
                    self._record(kind, t0, ok, ("users", r.json()["id"]) if ok else None, r.status_code)
                else:
                    if rt is None:
                        r = s.post(self.url + "/oauth2/token", auth=self.c.client, timeout=self.timeout,
                                   data={"grant_type": "password", "username": user, "password": PASSWORD})
                    else:
                        r = s.post(self.url + "/oauth2/token", auth=self.c.client, timeout=self.timeout,
                                   data={"grant_type": "refresh_token", "refresh_token": rt})
                    ok = r.status_code == 200
                    if ok:
                        rt = r.json()["refresh_token"]
                    elif r.status_code == 400:
                        rt = None        # reuse detected (a rotation whose answer was lost): a new chain
                    self._record(kind, t0, ok, ("refresh_tokens", sha256_hex(rt)) if ok else None, r.status_code)
            except (requests.RequestException, ValueError, KeyError):
                self._record(kind, t0, False, None, -1)
                time.sleep(0.02)
                continue
            if not ok:
                time.sleep(0.02)
            elif self.pace:
                time.sleep(self.pace)

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(self.timeout + 10)
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def snapshot(self):
        with self.lock:
            return list(self.events)

    def acked(self, since=None, until=None):
        return [e for e in self.snapshot() if e[3] and (since is None or e[2] >= since)
                and (until is None or e[1] <= until)]

    def count_acked(self):
        return sum(1 for e in self.snapshot() if e[3])

    def outage_ms(self, after):
        """As the client saw it: first failed answer at or after `after` -> first success
        after that, in ms (0 when nothing failed; None when it never recovered)."""
        evs = sorted((e for e in self.snapshot() if e[2] >= after), key=lambda e: e[2])
        t_fail = None
        for e in evs:
            if t_fail is None:
                if not e[3]:
                    t_fail = e[2]
            elif e[3]:
                return (e[2] - t_fail) * 1000.0
        return 0.0 if t_fail is None else None

    def wait_acked(self, n, timeout=20.0, after=None):
        """Waits for n more acknowledged writes answered after `after` (default now)."""
        after = time.monotonic() if after is None else after
        return wait_for(lambda: len(self.acked(since=after)) >= n, timeout, "%d acknowledged writes" % n)


class LagSampler:
    """Samples refuge_repl_lag_ms on both nodes (the active's clock) every 100 ms; worst() in ms."""

    def __init__(self, cluster, interval=0.1):
        self.c = cluster
        self.interval = interval
        self.max = 0.0
        self.stop_ev = threading.Event()
        self.th = threading.Thread(target=self._run, daemon=True, name="lag-sampler")

    def _run(self):
        self.c.topo.enter_client()
        s = new_session()
        while not self.stop_ev.is_set():
            for n in self.c.nodes.values():
                try:
                    for line in s.get(n.url + "/metrics", timeout=1).text.splitlines():
                        if line.startswith("refuge_repl_lag_ms "):
                            self.max = max(self.max, float(line.split()[-1]))
                except (requests.RequestException, ValueError):
                    pass
            self.stop_ev.wait(self.interval)

    def __enter__(self):
        self.th.start()
        return self

    def __exit__(self, *exc):
        self.stop_ev.set()
        self.th.join(5)

    def worst(self):
        return self.max


# ----------------------------------------------------------------- checks

def held_keys(node):
    """What node's data holds of the keys MixedLoad records."""
    con = node.db()
    try:
        return {
            "opaque_tokens": {r[0] for r in con.execute("SELECT token_hash FROM opaque_tokens")},
            "refresh_tokens": {r[0] for r in con.execute("SELECT token_hash FROM refresh_tokens")},
            "users": {r[0] for r in con.execute("SELECT id FROM users WHERE tenant = 'default'")},
        }
    finally:
        con.close()


def missing(events, node):
    """The acknowledged events whose write node lacks."""
    held = held_keys(node)
    return [e for e in events if e[3] and e[4][1] not in held[e[4][0]]]


PK_COLUMN = {"opaque_tokens": "token_hash", "refresh_tokens": "token_hash", "users": "id"}


def divergent_inserts(node):
    """{(table, key): (epoch, commit_us)} of every INSERT in node's divergent-transactions exports."""
    out = {}
    for p in node.divergent_files():
        with open(p) as f:
            doc = json.load(f)
        for tx in doc["transactions"]:
            for ch in tx.get("changes", []):
                col = PK_COLUMN.get(ch.get("table"))
                if col and ch.get("op") == "INSERT":
                    out[(ch["table"], ch["primary_key"][col])] = (tx["epoch"], tx["commit_us"])
    return out


def dump(node):
    """Every replicated table's rows, sorted; the log's tip; the log's lsn -> (epoch, hash)."""
    con = node.db()
    try:
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                           "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        rows = {}
        for t in names:
            if t in LOCAL_TABLES:
                continue
            ncol = len(con.execute("PRAGMA table_info(%s)" % t).fetchall())
            rows[t] = con.execute("SELECT * FROM %s ORDER BY %s" % (t, ", ".join(str(i + 1) for i in range(ncol)))
                                  ).fetchall()
        log = {r[0]: (r[1], r[2]) for r in con.execute("SELECT lsn, epoch, hash FROM repl_log")}
        return rows, log
    finally:
        con.close()


def assert_identical(active, standby, timeout=30.0):
    """Quiesced (the caller stopped writing): waits until standby applied active's tip, then
    compares every replicated table row by row and the logs where both still hold records."""
    deadline = time.monotonic() + timeout
    while True:
        sa, sb = active.c.wait_caught_up(active, standby, max(1.0, deadline - time.monotonic()))
        (ra, la), (rb, lb) = dump(active), dump(standby)
        if active.status()["lsn"] == sa["lsn"] or time.monotonic() > deadline:
            break
    assert ra.keys() == rb.keys()
    for t in ra:
        assert ra[t] == rb[t], "table %s differs: %d rows on %s, %d on %s (%s)" % (
            t, len(ra[t]), active.name, len(rb[t]), standby.name, _row_diff(ra[t], rb[t]))
    common = set(la) & set(lb)
    assert common, "the logs share no record"
    bad = sorted(l for l in common if la[l] != lb[l])
    assert not bad, "log records differ at lsn %s" % bad[:5]
    assert max(la) == max(lb) == sa["lsn"]
    return sum(len(v) for v in ra.values())


def _row_diff(x, y):
    sx, sy = set(x), set(y)
    return "only first: %r; only second: %r" % (sorted(sx - sy)[:2], sorted(sy - sx)[:2])


def epochs_after(node, lsn):
    """The epochs of node's log records after lsn."""
    con = node.db()
    try:
        return {r[0] for r in con.execute("SELECT DISTINCT epoch FROM repl_log WHERE lsn > ?", (lsn,))}
    finally:
        con.close()


# ------------------------------------------------------------ clock, disk

def faketime_lib():
    for p in FAKETIME_LIBS:
        if os.path.exists(p):
            return p
    return None


class Clock:
    """A wall clock that can jump under a running refuged: libfaketime with an
    offset file read on every call; CLOCK_MONOTONIC stays real."""

    def __init__(self, workdir, name):
        self.path = os.path.join(workdir, "faketime-%s" % name)
        self.set(0)

    def env(self):
        env = {"LD_PRELOAD": faketime_lib(), "FAKETIME_TIMESTAMP_FILE": self.path, "FAKETIME_NO_CACHE": "1",
               "FAKETIME_DONT_FAKE_MONOTONIC": "1", "DONT_FAKE_MONOTONIC": "1"}
        if asan_build():
            # libfaketime comes before the ASan runtime in the library list
            env["ASAN_OPTIONS"] = (os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0").lstrip(":")
        return env

    def set(self, offset_s):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write("%+d\n" % offset_s)
        os.rename(tmp, self.path)


class Tmpfs:
    """A small tmpfs (root only) that fill() fills to the last byte and free() frees."""

    def __init__(self, path, size_mb=64):
        self.path = path
        os.makedirs(path, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm,mode=0700" % size_mb, "tmpfs", path], check=True,
                       capture_output=True, timeout=20)
        self.filler = os.path.join(path, "filler")

    def fill(self):
        """Writes the filler until ENOSPC (1 MiB, then 4 KiB chunks). Bytes written."""
        n = 0
        with open(self.filler, "ab", buffering=0) as f:
            for chunk in (1 << 20, 1 << 12):
                block = b"\0" * chunk
                while True:
                    try:
                        n += f.write(block)
                    except OSError:
                        break
        return n

    def free_bytes(self):
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def free(self):
        try:
            os.unlink(self.filler)
        except FileNotFoundError:
            pass

    def umount(self):
        subprocess.run(["umount", "-l", self.path], capture_output=True, timeout=20)
