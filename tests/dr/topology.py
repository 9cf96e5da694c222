#!/usr/bin/python3
"""Where the fault-injection suite runs: region A, region B, the front door
and a client as separate hosts, and the WAN between the regions.

Two backends with one interface (Topology):

  netns     as root: five network namespaces per topology, PREFIX-wan (the
            router) and PREFIX-a, -b, -fd, -cl, each leaf joined to the
            router by a veth pair, addresses in 10.99.N.0/24 inside our own
            namespaces only (the root namespace is never touched):

                 cl 10.99.4.2        fd 10.99.3.2  (HAProxy)
                        \\              /
                         wan (router, ip_forward, the WAN relays)
                        /              \\
                 a 10.99.1.2          b 10.99.2.2
                 (refuged)            (refuged)

            refuged and HAProxy run inside their namespace (`ip netns exec`);
            the test's own threads enter the client namespace with setns(2)
            before they open a socket.
  loopback  anything else (not root, no CAP_NET_ADMIN, no iproute2): every
            host is 127.0.0.1 with its own ports; the suite says so.

The inter-region link. Replication between the regions goes through the WAN
relay (WanLink), one TCP relay per direction: each node's [replication]
peer is the relay that leads to the other region. The relay adds the
one-way delay, an optional bandwidth limit, and cuts the link on demand
(partition: nothing is forwarded, nothing is closed; in netns mode the
router also blackholes the replication ports, so packets vanish as in a real
partition, no RST, no FIN). `tc netem` is used for the delay when the kernel
has it (CONFIG_NET_SCH_NETEM), on the router's links to both regions (so a
client's path to a region crosses the WAN delay too); where it does not
(this project's CI kernel), the relay delays instead, and the topology's
`notes` say so.

Names: every namespace starts with PREFIX = rfgf<pid>-<n>-, so parallel and
earlier runs never collide; namespaces of a prefix whose pid is gone are
removed (with the processes in them, which only this suite starts) by
clean_stale(). Teardown always runs (context manager / pytest fixture).

CLI (tests/dr/topology): `topology up [NAME]` builds the namespaces and
prints how to run a process in them, `topology down [NAME]` removes them,
`topology status` lists what exists, `topology clean` removes stale ones.
"""
import collections
import ctypes
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

PREFIX = "rfgf"
CLI_PREFIX = "rfgfcli-"
CLONE_NEWNET = 0x40000000
LEAVES = {"a": 1, "b": 2, "fd": 3, "cl": 4}          # host -> subnet 10.99.N.0/24
HTTP_PORT, REPL_PORT, FRONT_PORT = 8080, 7000, 8000
RELAY_PORT = {"a": 7101, "b": 7102}                   # relay leading TO region X
SRC = os.environ.get("REFUGE_SRC", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
HAPROXY_CFG = os.path.join(SRC, "deploy", "haproxy", "refuge.cfg")

_libc = ctypes.CDLL(None, use_errno=True)
_counter = [0]


# ------------------------------------------------------------ namespaces

def _ip(*args, check=True, ns=None):
    cmd = ["ip"] + (["-n", ns] if ns else []) + [str(a) for a in args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    if check and r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(cmd), r.stderr.strip()))
    return r


def _netns_list():
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=20)
    return [l.split()[0] for l in r.stdout.splitlines() if l.strip()]


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _remove_ns(name):
    """Kills the processes in namespace name (ours: the prefix says so), then deletes it."""
    r = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True, timeout=20)
    for p in r.stdout.split():
        try:
            os.kill(int(p), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20)


def clean_stale():
    """Removes namespaces of earlier runs whose creating process is gone. 0+ removed."""
    n = 0
    for name in _netns_list():
        m = re.match(r"^%s(\d+)-" % PREFIX, name)
        if m and not _pid_alive(int(m.group(1))):
            _remove_ns(name)
            n += 1
    return n


_support = None


def netns_support():
    """(True, "") when network namespaces with veth links can be made here, else (False, why)."""
    global _support
    if _support is not None:
        return _support
    if os.geteuid() != 0:
        _support = (False, "not root: network namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN")
    elif not shutil.which("ip"):
        _support = (False, "iproute2 (ip) is not installed")
    else:
        probe = "%s%d-probe" % (PREFIX, os.getpid())
        try:
            _ip("netns", "add", probe)
            _ip("link", "add", "p0", "type", "veth", "peer", "name", "p1", ns=probe)
            _support = (True, "")
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            _support = (False, "cannot create a network namespace with a veth link: %s" % e)
        finally:
            subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=20)
    return _support


def netem_support(ns):
    """(True, "") when `tc netem` works in namespace ns, else (False, why)."""
    r = subprocess.run(["tc", "-n", ns, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],
                       capture_output=True, text=True, timeout=20)
    if r.returncode != 0:
        return False, "tc netem is unavailable (%s; the kernel lacks CONFIG_NET_SCH_NETEM)" % (
            r.stderr.strip().splitlines()[0] if r.stderr.strip() else "tc failed")
    subprocess.run(["tc", "-n", ns, "qdisc", "del", "dev", "lo", "root"], capture_output=True, timeout=20)
    return True, ""


class _InNetns:
    """Moves the calling thread into a network namespace (setns), back on exit.
    Sockets keep the namespace they were created in."""

    def __init__(self, path):
        self.path = path
        self.orig = None

    def __enter__(self):
        self.orig = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        _setns(self.path)
        return self

    def __exit__(self, *exc):
        if _libc.setns(self.orig, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            os.close(self.orig)
            raise OSError(e, "setns back: %s" % os.strerror(e))
        os.close(self.orig)


def _setns(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, "setns %s: %s" % (path, os.strerror(e)))
    finally:
        os.close(fd)


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -------------------------------------------------------------- WAN relay

class _Pipe:
    """One direction of one relayed connection: reads src, delivers to dst
    `delay` seconds later, at most `rate` bytes/s, nothing while cut."""

    def __init__(self, link, src, dst):
        self.link, self.src, self.dst = link, src, dst
        self.q = collections.deque()
        self.cv = threading.Condition()
        self.eof = False
        self.dead = False

    def reader(self):
        try:
            while not self.dead and not self.link.closed:
                if self.link.cut.is_set():
                    time.sleep(0.01)
                    continue
                r, _, _ = select.select([self.src], [], [], 0.05)
                if not r:
                    continue
                d = self.src.recv(65536)
                with self.cv:
                    if not d:
                        self.eof = True
                    else:
                        self.q.append((time.monotonic() + self.link.delay_s, d))
                    self.cv.notify()
                if not d:
                    return
        except (OSError, ValueError):       # reset() closed the socket under us
            with self.cv:
                self.eof = True
                self.cv.notify()

    def writer(self):
        try:
            while not self.link.closed and not self.dead:
                with self.cv:
                    while not self.q and not self.eof and not self.link.closed and not self.dead:
                        self.cv.wait(0.05)
                    if not self.q:
                        if self.eof or self.link.closed or self.dead:
                            break
                        continue
                    due, d = self.q[0]
                now = time.monotonic()
                if self.link.cut.is_set():
                    time.sleep(0.01)
                    continue
                if due > now:
                    time.sleep(min(due - now, 0.05))
                    continue
                with self.cv:
                    if not self.q or self.q[0][1] is not d:
                        continue        # reset() dropped it
                    self.q.popleft()
                rate = self.link.rate
                if rate:
                    # token bucket of one chunk: pace to `rate` bytes/s
                    for i in range(0, len(d), 16384):
                        part = d[i:i + 16384]
                        while self.link.cut.is_set() and not self.link.closed:
                            time.sleep(0.01)
                        self.dst.sendall(part)
                        time.sleep(len(part) / float(rate))
                else:
                    self.dst.sendall(d)
        except (OSError, ValueError):
            pass
        self.dead = True
        for s in (self.dst, self.src):
            try:
                s.shutdown(socket.SHUT_WR if s is self.dst else socket.SHUT_RD)
            except OSError:
                pass


class WanLink:
    """The link between region A and region B: one relay per direction.

    endpoint(x): where node x's [replication] peer points (the relay that
    leads to the other region). delay_ms is one-way; partition()/heal()
    cut and restore both directions at once."""

    def __init__(self, topo, delay_ms=0, rate=0):
        self.topo = topo
        self.delay_s = delay_ms / 1000.0
        self.rate = rate
        self.cut = threading.Event()
        self.closed = False
        self.lock = threading.Lock()
        self.socks = []
        self.pipes = []
        self.lsocks = {}
        self.netem = False
        self.partitions = 0
        for to in ("a", "b"):
            frm = "b" if to == "a" else "a"
            listen = topo.relay_listen(frm, to)
            target = topo.endpoint(to, "repl")
            ls = topo.wan_socket()
            ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            ls.bind(listen)
            ls.listen(16)
            self.lsocks[to] = (ls, listen, target)
            threading.Thread(target=self._accept, args=(ls, target), daemon=True,
                             name="wan-relay-%s" % to).start()
        self.set_delay(delay_ms)

    def endpoint(self, node):
        """host:port node `node` uses as its replication peer."""
        to = "b" if node == "a" else "a"
        return "%s:%d" % self.lsocks[to][1]

    def set_delay(self, ms):
        """One-way delay on the inter-region path, in both directions."""
        if self.topo.netem:
            for leaf in ("a", "b"):
                self.topo.wan_netem(leaf, ms)
            self.delay_s = 0.0
            self.netem = ms > 0
        else:
            self.delay_s = ms / 1000.0

    def set_rate(self, bytes_per_s):
        """Bandwidth of each direction (0: unlimited)."""
        self.rate = int(bytes_per_s)

    def partition(self):
        """Cuts the link: nothing crosses, nothing is closed or refused."""
        self.partitions += 1
        self.cut.set()
        self.topo.blackhole_repl(True)

    def heal(self):
        self.topo.blackhole_repl(False)
        self.cut.clear()

    def reset(self):
        """Drops every relayed connection and whatever it still held (a region whose
        network died: its packets in flight never arrive). Call it while cut."""
        with self.lock:
            socks, self.socks = self.socks, []
            pipes, self.pipes = self.pipes, []
        for p in pipes:
            p.dead = True
            with p.cv:
                p.q.clear()
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _accept(self, ls, target):
        while not self.closed:
            if self.cut.is_set():
                time.sleep(0.01)        # a partition: connections wait in the backlog, unanswered
                continue
            try:
                r, _, _ = select.select([ls], [], [], 0.05)
            except (OSError, ValueError):
                return                  # closed
            if not r or self.closed:
                continue
            try:
                c, _ = ls.accept()
            except OSError:
                return
            try:
                u = self.topo.wan_socket()
                u.settimeout(2)
                u.connect(target)
                u.settimeout(None)
            except OSError:
                c.close()
                continue
            pipes = (_Pipe(self, c, u), _Pipe(self, u, c))
            with self.lock:
                self.socks += [c, u]
                self.pipes += pipes
            for p in pipes:
                threading.Thread(target=p.reader, daemon=True).start()
                threading.Thread(target=p.writer, daemon=True).start()

    def close(self):
        self.closed = True
        self.cut.clear()
        try:
            self.topo.blackhole_repl(False)
        except RuntimeError:
            pass
        for ls, _, _ in self.lsocks.values():
            ls.close()
        with self.lock:
            for s in self.socks:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self.socks = []


# --------------------------------------------------------------- topology

class Topology:
    """Hosts a, b (regions), fd (front door), cl (client); see the module doc.

    addr(h): host h's address; endpoint(h, kind): (addr, port) of h's
    "http" / "repl" / "front" service; spawn(h, argv): a process on host h;
    client(): context manager putting the calling thread on host cl;
    enter_client(): the same for a thread that never leaves.
    """

    def __init__(self, name=None, force_loopback=False, keep=False):
        ok, why = (False, "loopback requested") if force_loopback else netns_support()
        self.netns = ok
        self.notes = []
        self.netem = False
        self.keep = keep
        self.rules = []
        if not ok:
            self.notes.append("network namespaces unavailable (%s): every host runs on loopback" % why)
            self.prefix = None
            self.ports = {h: {"http": _free_port(), "repl": _free_port(), "front": _free_port()} for h in LEAVES}
            self.relay_ports = {to: _free_port() for to in ("a", "b")}
            return
        clean_stale()
        if name is None:
            _counter[0] += 1
            name = "%s%d-%d-" % (PREFIX, os.getpid(), _counter[0])
        self.prefix = name
        try:
            self._build()
        except Exception:
            self.down()
            raise
        ok, why = netem_support(self.ns("wan"))
        self.netem = ok
        if not ok:
            self.notes.append(why + ": the WAN relay adds the inter-region delay")

    # --- construction
    def ns(self, host):
        return self.prefix + host

    def _build(self):
        wan = self.ns("wan")
        _ip("netns", "add", wan)
        _ip("link", "set", "lo", "up", ns=wan)
        subprocess.run(["ip", "netns", "exec", wan, "sysctl", "-qw", "net.ipv4.ip_forward=1"], check=True,
                       capture_output=True, timeout=20)
        for h, n in LEAVES.items():
            ns = self.ns(h)
            _ip("netns", "add", ns)
            _ip("link", "set", "lo", "up", ns=ns)
            # created inside the router namespace, peer end straight into the leaf
            _ip("link", "add", "w" + h, "type", "veth", "peer", "name", "eth0", "netns", ns, ns=wan)
            _ip("addr", "add", "10.99.%d.1/24" % n, "dev", "w" + h, ns=wan)
            _ip("link", "set", "w" + h, "up", ns=wan)
            _ip("addr", "add", "10.99.%d.2/24" % n, "dev", "eth0", ns=ns)
            _ip("link", "set", "eth0", "up", ns=ns)
            _ip("route", "add", "default", "via", "10.99.%d.1" % n, ns=ns)

    def down(self):
        """Removes everything this topology made (processes in it included)."""
        if not self.netns or self.keep:
            return
        for name in _netns_list():
            if name.startswith(self.prefix):
                _remove_ns(name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.down()

    # --- addressing
    def addr(self, host):
        return "10.99.%d.2" % LEAVES[host] if self.netns else "127.0.0.1"

    def endpoint(self, host, kind):
        if self.netns:
            return (self.addr(host), {"http": HTTP_PORT, "repl": REPL_PORT, "front": FRONT_PORT}[kind])
        return ("127.0.0.1", self.ports[host][kind])

    def url(self, host, kind="http"):
        return "http://%s:%d" % self.endpoint(host, kind)

    def relay_listen(self, frm, to):
        """The relay leading to region `to`, on the router's side facing region `frm`."""
        if self.netns:
            return ("10.99.%d.1" % LEAVES[frm], RELAY_PORT[to])
        return ("127.0.0.1", self.relay_ports[to])

    def wan_socket(self):
        """A TCP socket on the router (netns) or loopback."""
        if not self.netns:
            return socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        with _InNetns("/run/netns/" + self.ns("wan")):
            return socket.socket(socket.AF_INET, socket.SOCK_STREAM)

    # --- faults on the router
    def wan_netem(self, leaf, ms):
        if not self.netns:
            return
        op = "replace"
        if ms <= 0:
            subprocess.run(["tc", "-n", self.ns("wan"), "qdisc", "del", "dev", "w" + leaf, "root"],
                           capture_output=True, timeout=20)
            return
        subprocess.run(["tc", "-n", self.ns("wan"), "qdisc", op, "dev", "w" + leaf, "root", "netem", "delay",
                        "%dms" % ms], check=True, capture_output=True, timeout=20)

    def blackhole_repl(self, on):
        """netns: the router drops every replication packet between the regions (both relays'
        ports, both directions) — a partition as the kernel sees it. No-op on loopback."""
        if not self.netns:
            return
        wan = self.ns("wan")
        if on and not self.rules:
            for frm, to in (("a", "b"), ("b", "a")):
                self.rules.append(["iif", "w" + frm, "ipproto", "tcp", "dport", str(RELAY_PORT[to])])
                self.rules.append(["to", self.addr(to), "ipproto", "tcp", "dport", str(REPL_PORT)])
                self.rules.append(["iif", "w" + to, "ipproto", "tcp", "sport", str(REPL_PORT)])
            for i, r in enumerate(self.rules):
                _ip("rule", "add", "prio", 100 + i, *r, "blackhole", ns=wan)
        elif not on and self.rules:
            for i, r in enumerate(self.rules):
                _ip("rule", "del", "prio", 100 + i, *r, "blackhole", ns=wan, check=False)
            self.rules = []

    # --- processes and sockets
    def spawn(self, host, argv, **kw):
        """Popen of argv on host (inside its namespace: `ip netns exec` execs, so the pid is argv's)."""
        if self.netns:
            argv = ["ip", "netns", "exec", self.ns(host)] + list(argv)
        return subprocess.Popen(argv, **kw)

    def client(self):
        """with topo.client(): sockets the calling thread opens are on host cl."""
        if not self.netns:
            return _Nothing()
        return _InNetns("/run/netns/" + self.ns("cl"))

    def enter_client(self):
        """For a thread of its own: moves it to host cl for good."""
        if self.netns:
            _setns("/run/netns/" + self.ns("cl"))

    def wan(self, delay_ms=0, rate=0):
        return WanLink(self, delay_ms, rate)

    def describe(self):
        if not self.netns:
            return "loopback (%s)" % "; ".join(self.notes)
        s = "netns %s{wan,a,b,fd,cl}: a=%s b=%s fd=%s cl=%s" % (self.prefix, self.addr("a"), self.addr("b"),
                                                               self.addr("fd"), self.addr("cl"))
        return s + ("; " + "; ".join(self.notes) if self.notes else "")


class _Nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# ------------------------------------------------------------- front door

class FrontDoor:
    """HAProxy on host fd with the project's own deploy/haproxy/refuge.cfg:
    health checks on /health/ready send traffic to whichever node is active."""

    def __init__(self, topo, workdir):
        self.topo = topo
        self.dir = os.path.join(workdir, "haproxy")
        os.makedirs(self.dir, exist_ok=True)
        self.proc = None
        self.url = topo.url("fd", "front")

    def start(self, timeout=10.0):
        env = dict(os.environ)
        env.update({"REFUGE_FRONT_BIND": "%s:%d" % self.topo.endpoint("fd", "front"),
                    "REFUGE_NODE_A": "%s:%d" % self.topo.endpoint("a", "http"),
                    "REFUGE_NODE_B": "%s:%d" % self.topo.endpoint("b", "http"),
                    "REFUGE_HAPROXY_SOCKET": os.path.join(self.dir, "haproxy.sock"),
                    "REFUGE_HAPROXY_PID": os.path.join(self.dir, "haproxy.pid")})
        log = open(os.path.join(self.dir, "haproxy.log"), "ab")
        haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
        self.proc = self.topo.spawn("fd", [haproxy, "-f", HAPROXY_CFG, "-db"], env=env, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("haproxy exited: " + open(os.path.join(self.dir, "haproxy.log")).read()[-2000:])
            if os.path.exists(os.path.join(self.dir, "haproxy.sock")):
                return self
            time.sleep(0.02)
        raise RuntimeError("haproxy did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


# -------------------------------------------------------------------- CLI

def main(argv):
    import argparse
    ap = argparse.ArgumentParser(prog="tests/dr/topology", description=__doc__.split("\n\n")[0])
    ap.add_argument("cmd", choices=["up", "down", "status", "clean"])
    ap.add_argument("name", nargs="?", default="manual", help="topology name (namespaces %sNAME-*)" % CLI_PREFIX)
    a = ap.parse_args(argv)
    prefix = CLI_PREFIX + a.name + "-"
    if a.cmd in ("up", "down", "clean") and os.geteuid() != 0:
        print("topology: needs root (network namespaces)", file=sys.stderr)
        return 2
    if a.cmd == "up":
        if any(n.startswith(prefix) for n in _netns_list()):
            print("topology %s is already up (tests/dr/topology down %s first)" % (a.name, a.name), file=sys.stderr)
            return 1
        ok, why = netns_support()
        if not ok:
            print("topology: %s" % why, file=sys.stderr)
            return 1
        t = Topology(name=prefix, keep=True)
        print(t.describe())
        for h in LEAVES:
            print("  %-3s %-11s ip netns exec %s CMD" % (h, t.addr(h), t.ns(h)))
        print("  wan 10.99.{1..4}.1  ip netns exec %s CMD   (router)" % t.ns("wan"))
        return 0
    if a.cmd == "down":
        names = [n for n in _netns_list() if n.startswith(prefix)]
        for n in names:
            _remove_ns(n)
        print("removed %d namespace(s)" % len(names))
        return 0
    if a.cmd == "clean":
        print("removed %d stale namespace(s)" % clean_stale())
        return 0
    for n in _netns_list():
        if n.startswith(PREFIX):
            print(n)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
