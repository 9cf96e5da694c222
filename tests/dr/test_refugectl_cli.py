"""refugectl's own surface without a deployment: cluster.conf validation
(errors name file:line:key like refuged's), usage and exit codes, and the
HAProxy runtime API client against a real HAProxy whose servers are down."""
import json
import os
import shutil
import subprocess
import time

import pytest

from conftest import REFUGECTL, SRC, refuge_deploy

GOOD = """[cluster]
name = t
admin_credentials = creds.json
rto_target_ms = 1000
rpo_target_ms = 0

[haproxy]
socket = {sock}
backend = refuge
frontend_url = http://127.0.0.1:{front}

[node.a]
admin_url = http://127.0.0.1:{pa}
region = region-a

[node.b]
admin_url = http://127.0.0.1:{pb}
region = region-b
"""


def run(*args, cwd=None, timeout=30):
    return subprocess.run([REFUGECTL] + list(args), capture_output=True, text=True, cwd=cwd, timeout=timeout)


@pytest.fixture
def cdir(tmp_path):
    with open(tmp_path / "creds.json", "w") as f:
        json.dump({"client_id": "refuge-admin", "client_secret": "s"}, f)
    return tmp_path


def write(cdir, text):
    p = cdir / "cluster.conf"
    p.write_text(text)
    return str(p)


def fmt(**kw):
    d = dict(sock="/nonexistent/haproxy.sock", front=1, pa=2, pb=3)
    d.update(kw)
    return GOOD.format(**d)


@pytest.mark.parametrize("mutate, where", [
    (lambda t: t.replace("region = region-b", "region = region-b\nbogus = 1"), ":19: node.b.bogus"),
    (lambda t: t.replace("[haproxy]", "[haproxi]"), ":7: haproxi"),
    (lambda t: t.replace("rto_target_ms = 1000", "rto_target_ms = soon"), ":4: cluster.rto_target_ms"),
    (lambda t: t.replace("[node.b]", "[node.b c]"), ":16: node.b c"),
    (lambda t: t.replace("admin_url = http://127.0.0.1:3", "admin_url = ftp://x"), ":17: node.b.admin_url"),
])
def test_config_errors_name_file_line_key(cdir, mutate, where):
    path = write(cdir, mutate(fmt()))
    r = run("status", "-c", path)
    assert r.returncode == 1, r
    assert (path + where) in r.stderr, r.stderr


def test_config_whole_file_errors(cdir):
    one_node = fmt().split("[node.b]")[0]
    r = run("status", "-c", write(cdir, one_node))
    assert r.returncode == 1 and "need at least two [node.NAME] sections" in r.stderr, r.stderr

    r = run("status", "-c", write(cdir, fmt().replace("http://127.0.0.1:2", "https://127.0.0.1:2")))
    assert r.returncode == 1 and "node.a.admin_url" in r.stderr and "https admin URLs are not supported" in r.stderr

    r = run("status", "-c", write(cdir, fmt().replace("region = region-b", "region = region-b\nhaproxy_server = a")))
    assert r.returncode == 1 and "node.b.haproxy_server" in r.stderr, r.stderr

    os.unlink(cdir / "creds.json")
    r = run("status", "-c", write(cdir, fmt()))
    assert r.returncode == 1 and "cluster.admin_credentials" in r.stderr and "creds.json" in r.stderr, r.stderr


def test_usage_exit_codes(cdir):
    path = write(cdir, fmt())
    assert run("failover", "-c", path).returncode == 2                      # no --to
    assert run("failover", "--to", "zz", "-c", path).returncode == 2        # no such node
    assert run("drill", "--mode", "sync", "-c", path).returncode == 2
    assert run("drill", "--duration", "0", "-c", path).returncode == 2
    assert run("switchover", "--to", "a", "--bogus", "-c", path).returncode == 2
    assert run("rejoin", "-c", path).returncode == 2
    h = run("help")
    assert h.returncode == 0
    for cmd in ("status", "failover", "switchover", "rejoin", "drill"):
        assert cmd in h.stdout
    assert "3 refused" in h.stdout


def test_status_with_everything_down_is_unhealthy_and_uncoloured(cdir):
    """No node answers and no HAProxy: status still renders, says why, and exits 1;
    stdout is a pipe, so no escape codes."""
    path = write(cdir, fmt(pa=refuge_deploy.free_port(), pb=refuge_deploy.free_port(),
                           front=refuge_deploy.free_port()))
    r = run("status", "-c", path)
    assert r.returncode == 1
    assert "\x1b[" not in r.stdout
    assert "a: unreachable" in r.stdout and "b: unreachable" in r.stdout
    assert "no reachable node is active" in r.stdout
    assert "front door control unavailable" in r.stdout
    j = json.loads(run("status", "--json", "-c", path).stdout)
    assert j["healthy"] is False
    assert [n["reachable"] for n in j["nodes"]] == [False, False]
    assert any(p["severity"] == "critical" for p in j["problems"])


def test_haproxy_runtime_api_against_real_haproxy(cdir):
    """The servers' states as HAProxy reports them (from `show servers state`),
    an unknown server name reported, and a failover whose target does not
    answer fails (exit 1) without touching anything."""
    sock = str(cdir / "h.sock")
    ports = {k: refuge_deploy.free_port() for k in ("front", "a", "b")}
    env = dict(os.environ, REFUGE_FRONT_BIND="127.0.0.1:%d" % ports["front"],
               REFUGE_NODE_A="127.0.0.1:%d" % ports["a"], REFUGE_NODE_B="127.0.0.1:%d" % ports["b"],
               REFUGE_HAPROXY_SOCKET=sock, REFUGE_HAPROXY_PID=str(cdir / "h.pid"))
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    p = subprocess.Popen([haproxy, "-f", os.path.join(SRC, "deploy", "haproxy", "refuge.cfg"), "-db"], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(sock) and time.monotonic() < deadline:
            time.sleep(0.02)
        path = write(cdir, fmt(sock=sock, front=ports["front"], pa=ports["a"], pb=ports["b"]))
        time.sleep(0.3)                       # a few health checks (every 100 ms) fail
        j = json.loads(run("status", "--json", "-c", path).stdout)
        states = {s["name"]: s["state"] for s in j["front_door"]["servers"]}
        assert states == {"a": "DOWN", "b": "DOWN"}, states
        assert j["front_door"]["ready_status"] == 503
        assert "haproxy_error" not in j["front_door"]
        # a server name HAProxy does not know is reported, not ignored
        path2 = write(cdir, fmt(sock=sock, front=ports["front"], pa=ports["a"], pb=ports["b"]).replace(
            "region = region-b", "region = region-b\nhaproxy_server = c"))
        out = run("status", "-c", path2).stdout
        assert "no server 'c' in HAProxy backend refuge" in out, out
    finally:
        p.terminate()
        p.wait(10)
    r = run("failover", "--to", "b", "-c", path)
    assert r.returncode == 1 and "target b is unreachable" in r.stdout, r.stdout


def test_example_cluster_conf_is_valid(cdir):
    """deploy/examples/cluster.conf passes the schema (only its credentials path is local to a real host)."""
    with open(os.path.join(SRC, "deploy", "examples", "cluster.conf")) as f:
        text = f.read().replace("/etc/refuge/admin-credentials.json", str(cdir / "creds.json"))
    r = run("status", "--json", "-c", write(cdir, text), timeout=60)
    assert r.stderr == "", r.stderr
    j = json.loads(r.stdout)
    assert [n["name"] for n in j["nodes"]] == ["a", "b"]
    assert j["objectives"] == {"rto_target_ms": 1000, "rpo_target_ms": 0}


def test_colour_only_on_a_terminal(cdir):
    """The same status through a pseudo-terminal carries ANSI colours; NO_COLOR turns them off."""
    import pty
    path = write(cdir, fmt(pa=refuge_deploy.free_port(), pb=refuge_deploy.free_port(),
                           front=refuge_deploy.free_port()))

    def through_pty(env):
        master, slave = pty.openpty()
        p = subprocess.Popen([REFUGECTL, "status", "-c", path], stdout=slave, stderr=subprocess.DEVNULL, env=env)
        os.close(slave)
        out = b""
        while True:
            try:
                d = os.read(master, 65536)
            except OSError:
                break
            if not d:
                break
            out += d
        p.wait(30)
        os.close(master)
        return out.decode(errors="replace")

    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    assert "\x1b[31m" in through_pty(env)
    assert "\x1b[" not in through_pty(dict(env, NO_COLOR="1"))
