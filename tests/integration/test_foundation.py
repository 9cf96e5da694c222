"""Foundation: a real refuged on loopback — health, readiness, metrics,
limits, configuration errors, bootstrap and graceful shutdown."""
import json
import os
import signal
import socket
import stat
import threading
import time

import pytest
import requests

from refuge import Node, run_refuged, write_conf


def test_live_and_ready_on_active(node):
    r = node.get("/health/live")
    assert r.status_code == 200
    assert r.json() == {"status": "live"}
    r = node.get("/health/ready")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ready" and body["role"] == "active" and body["writable"] is True


def test_ready_is_503_on_standby(workdir):
    n = Node(workdir, name="b", region="region-b", role="standby").start()
    try:
        r = n.get("/health/ready")
        assert r.status_code == 503
        assert r.json()["role"] == "standby"
        assert r.json()["status"] == "not_ready"
        # a standby does not bootstrap: its data comes from the active region
        assert not os.path.exists(os.path.join(n.data_dir, "bootstrap-admin.json"))
    finally:
        n.kill()


def test_request_id_echoed_and_generated(node):
    r = node.get("/health/live", headers={"X-Request-Id": "abc-123"})
    assert r.headers["X-Request-Id"] == "abc-123"
    r = node.get("/health/live")
    assert len(r.headers["X-Request-Id"]) >= 16
    # a hostile id is replaced, not echoed
    r = node.get("/health/live", headers={"X-Request-Id": "x" * 300})
    assert r.headers["X-Request-Id"] != "x" * 300


def test_metrics_prometheus_text(node):
    for _ in range(3):
        node.get("/health/live")
    r = node.get("/metrics")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    text = r.text
    for name in ("refuge_http_requests_total", "refuge_http_request_duration_seconds_bucket",
                 "refuge_process_resident_memory_bytes", "refuge_uptime_seconds", "refuge_node_active",
                 "refuge_node_epoch", "refuge_store_commit_batch_size", "refuge_store_commit_seconds"):
        assert name in text, name
    line = [l for l in text.splitlines()
            if l.startswith("refuge_http_requests_total{") and 'route="health_live"' in l and 'status="200"' in l]
    assert line and float(line[0].rsplit(" ", 1)[1]) >= 3
    assert "refuge_node_active 1" in text


def test_unknown_route_is_json_404(node):
    r = node.get("/nope")
    assert r.status_code == 404
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json()["error"]


def test_wrong_method_is_405(node):
    r = node.post("/health/live", data="x")
    assert r.status_code == 405
    assert "GET" in r.headers.get("Allow", "")


def test_oversized_body_is_413(node):
    r = node.post("/health/live", data=b"x" * (2 << 20))
    assert r.status_code == 413
    assert r.json()["error"]


def test_long_url_is_414(node):
    r = node.get("/health/live?" + "a" * 20000)
    assert r.status_code == 414


def test_huge_headers_are_431(node):
    r = node.get("/health/live", headers={"X-Big": "y" * 40000})
    assert r.status_code == 431


def test_access_log_line_per_request(node):
    node.get("/health/live", headers={"X-Request-Id": "logcheck-1"})
    time.sleep(0.1)
    lines = [l for l in node.log_lines() if l.get("msg") == "request" and l.get("request_id") == "logcheck-1"]
    assert len(lines) == 1
    l = lines[0]
    assert l["method"] == "GET" and l["path"] == "/health/live" and l["status"] == "200"
    assert int(l["us"]) >= 0 and l["level"] == "info" and l["time"].endswith("Z")


def test_bad_config_exits_2_naming_file_line_key(workdir):
    path = os.path.join(workdir, "bad.conf")
    with open(path, "w") as f:
        f.write("[node]\nname = a\nregion = r\ndata_dir = %s\n\n[http]\nthreads = lots\n" % workdir)
    r = run_refuged(["-c", path])
    assert r.returncode == 2
    assert "%s:7: http.threads:" % path in r.stderr
    r = run_refuged(["--check-config", path])
    assert r.returncode == 2 and "%s:7: http.threads:" % path in r.stderr


def test_unknown_key_and_section_exit_2(workdir):
    path = os.path.join(workdir, "bad.conf")
    with open(path, "w") as f:
        f.write("[node]\nname = a\nregion = r\ndata_dir = %s\ncolour = blue\n" % workdir)
    r = run_refuged(["--check-config", path])
    assert r.returncode == 2 and "%s:5: node.colour:" % path in r.stderr
    with open(path, "w") as f:
        f.write("[node]\nname = a\nregion = r\ndata_dir = %s\n[nodes]\nx = 1\n" % workdir)
    r = run_refuged(["--check-config", path])
    assert r.returncode == 2 and "%s:5: nodes" % path in r.stderr


def test_missing_required_key_exits_2(workdir):
    path = write_conf(os.path.join(workdir, "m.conf"), {"node": {"name": "a", "region": "r"}})
    r = run_refuged(["--check-config", path])
    assert r.returncode == 2 and "node.data_dir" in r.stderr


def test_check_config_ok(workdir):
    path = write_conf(os.path.join(workdir, "ok.conf"),
                      {"node": {"name": "a", "region": "r", "data_dir": workdir}, "region": {"ldap_url": "ldap://x"}})
    r = run_refuged(["--check-config", path])
    assert r.returncode == 0, r.stderr
    assert "OK" in r.stdout


def test_version_and_help():
    r = run_refuged(["--version"])
    assert r.returncode == 0 and r.stdout.startswith("refuged ")
    r = run_refuged(["--help"])
    assert r.returncode == 0 and "--check-config" in r.stdout


def test_bootstrap_file_mode_0600(node):
    path = os.path.join(node.data_dir, "bootstrap-admin.json")
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o600
    creds = node.bootstrap_admin()
    assert creds["client_id"] == "refuge-admin"
    assert len(creds["client_secret"]) >= 32
    # the secret is never stored in clear in the database
    with open(os.path.join(node.data_dir, "refuge.db"), "rb") as f:
        assert creds["client_secret"].encode() not in f.read()


def test_bootstrap_secret_from_environment(workdir):
    n = Node(workdir, env={"REFUGE_BOOTSTRAP_ADMIN_SECRET": "s3cret-from-env-0123456789abcdef"}).start()
    try:
        assert n.bootstrap_admin()["client_secret"] == "s3cret-from-env-0123456789abcdef"
    finally:
        n.kill()


def test_restart_keeps_state_and_does_not_rebootstrap(workdir):
    n = Node(workdir).start()
    first = n.bootstrap_admin()
    assert n.stop() == 0
    n.start()
    try:
        assert n.bootstrap_admin() == first
        assert n.get("/health/ready").status_code == 200
    finally:
        n.kill()


def test_sigterm_lets_inflight_request_finish(workdir):
    """A request whose body is still arriving when SIGTERM comes is answered,
    and refuged then exits 0."""
    n = Node(workdir).start()
    s = socket.create_connection(("127.0.0.1", n.port))
    body = b"grant_type=client_credentials"
    s.sendall(b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
              b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body[:5])
    time.sleep(0.3)
    n.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    assert n.proc.poll() is None, "exited with a request in flight"
    s.sendall(body[5:])
    data = b""
    s.settimeout(10)
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    assert data.startswith(b"HTTP/1.1 "), data[:100]
    assert n.proc.wait(15) == 0
    # and it no longer accepts connections
    with pytest.raises(requests.ConnectionError):
        requests.get(n.url + "/health/live", timeout=1)


def test_sighup_reopens_log(workdir):
    n = Node(workdir).start()
    try:
        os.rename(n.log_path, n.log_path + ".1")
        n.proc.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        n.get("/health/live", headers={"X-Request-Id": "after-hup"})
        time.sleep(0.2)
        assert any(l.get("request_id") == "after-hup" for l in n.log_lines())
    finally:
        n.kill()


def test_time_to_ready_is_recorded(node):
    started = [l for l in node.log_lines() if l.get("msg") == "refuged ready"]
    assert started and int(started[0]["startup_us"]) > 0


def test_configuration_doc_matches_schema():
    """docs/configuration.md is generated from the schema; regenerate it with
    `build/refuged --config-reference > docs/configuration.md` after adding a key."""
    from refuge import SRC
    r = run_refuged(["--config-reference"])
    assert r.returncode == 0
    with open(os.path.join(SRC, "docs", "configuration.md")) as f:
        assert f.read() == r.stdout, "docs/configuration.md is stale"


def _remote_of(node, rid):
    time.sleep(0.15)
    lines = [l for l in node.log_lines() if l.get("msg") == "request" and l.get("request_id") == rid]
    assert len(lines) == 1, lines
    return lines[0]["remote"]


def test_forwarded_for_only_from_trusted_proxies(workdir):
    """X-Forwarded-For names the client only when the TCP peer is a listed
    front door; the rightmost untrusted entry wins, so a client cannot
    choose its own address by sending the header itself."""
    n = Node(workdir, extra={"http": {"trusted_proxies": "127.0.0.1, 10.0.0.9"}}).start()
    try:
        n.get("/health/live", headers={"X-Request-Id": "xff-1", "X-Forwarded-For": "203.0.113.7"})
        assert _remote_of(n, "xff-1") == "203.0.113.7"
        # client-written entry on the left, the real client appended by the proxy chain on the right
        n.get("/health/live", headers={"X-Request-Id": "xff-2",
                                        "X-Forwarded-For": "198.51.100.1, 203.0.113.8, 10.0.0.9"})
        assert _remote_of(n, "xff-2") == "203.0.113.8"
        n.get("/health/live", headers={"X-Request-Id": "xff-3", "X-Forwarded-For": "not-an-ip"})
        assert _remote_of(n, "xff-3") == "127.0.0.1"
    finally:
        n.kill()
    m = Node(workdir, name="b").start()          # nobody trusted
    try:
        m.get("/health/live", headers={"X-Request-Id": "xff-4", "X-Forwarded-For": "203.0.113.7"})
        assert _remote_of(m, "xff-4") == "127.0.0.1"
    finally:
        m.kill()


def test_bad_trusted_proxies_exit_2(workdir):
    path = write_conf(os.path.join(workdir, "tp.conf"),
                      {"node": {"name": "a", "region": "r", "data_dir": workdir},
                       "http": {"trusted_proxies": "127.0.0.1, haproxy.local"}})
    r = run_refuged(["--check-config", path])
    assert r.returncode == 2 and "http.trusted_proxies" in r.stderr and "haproxy.local" in r.stderr
