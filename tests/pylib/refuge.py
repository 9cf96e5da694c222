"""Test harness: start real refuged processes on loopback and talk to them.

Used by tests/integration, tests/dr and tests/interop. Every node gets its own
temporary data directory and free ports; processes are killed at teardown
whatever happens. Nothing here mocks the server: tests speak HTTP to the real
binary built by CMake (REFUGE_BUILD, default ../../build).
"""
import json
import os
import signal
import socket
import subprocess
import tempfile
import time

import requests

SRC = os.environ.get("REFUGE_SRC", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BUILD = os.environ.get("REFUGE_BUILD", os.path.join(SRC, "build"))
REFUGED = os.path.join(BUILD, "refuged")
REFUGECTL = os.path.join(BUILD, "refugectl")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_conf(path, sections):
    """sections: dict of section -> dict of key -> value (or raw text)."""
    if isinstance(sections, str):
        text = sections
    else:
        lines = []
        for sec, kv in sections.items():
            lines.append("[%s]" % sec)
            for k, v in kv.items():
                if isinstance(v, bool):
                    v = "true" if v else "false"
                lines.append("%s = %s" % (k, v))
            lines.append("")
        text = "\n".join(lines)
    with open(path, "w") as f:
        f.write(text)
    return path


class Node:
    """One refuged process."""

    def __init__(self, workdir, name="a", region="region-a", role="active", extra=None, env=None):
        self.workdir = workdir
        self.name = name
        self.data_dir = os.path.join(workdir, name)
        os.makedirs(self.data_dir, exist_ok=True)
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.conf = {
            "node": {"name": name, "region": region, "data_dir": self.data_dir, "initial_role": role},
            "http": {"listen": "127.0.0.1:%d" % self.port, "threads": 2},
            "log": {"level": "info", "format": "json", "file": os.path.join(self.data_dir, "refuged.log")},
        }
        for sec, kv in (extra or {}).items():
            self.conf.setdefault(sec, {}).update(kv)
        self.conf_path = os.path.join(workdir, "%s.conf" % name)
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.proc = None
        self.session = requests.Session()

    @property
    def log_path(self):
        return self.conf["log"]["file"]

    def start(self, wait=True, timeout=10.0):
        write_conf(self.conf_path, self.conf)
        self.stderr = open(os.path.join(self.data_dir, "stderr.txt"), "ab")
        self.proc = subprocess.Popen([REFUGED, "-c", self.conf_path], stdout=self.stderr,
                                     stderr=self.stderr, env=self.env)
        if wait:
            self.wait_live(timeout)
        return self

    def wait_live(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("refuged exited with %s: %s" % (self.proc.returncode, self.tail()))
            try:
                if requests.get(self.url + "/health/live", timeout=0.5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.02)
        raise RuntimeError("refuged did not become live: " + self.tail())

    def tail(self, n=30):
        out = []
        for p in (self.log_path, os.path.join(self.data_dir, "stderr.txt")):
            try:
                with open(p, "rb") as f:
                    out.append(b"".join(f.readlines()[-n:]).decode(errors="replace"))
            except OSError:
                pass
        return "\n".join(out)

    def log_lines(self):
        with open(self.log_path) as f:
            return [json.loads(l) for l in f if l.strip()]

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def kill(self):
        return self.stop(signal.SIGKILL)

    # --- HTTP helpers -------------------------------------------------
    def get(self, path, **kw):
        kw.setdefault("timeout", 10)
        return self.session.get(self.url + path, **kw)

    def post(self, path, **kw):
        kw.setdefault("timeout", 10)
        return self.session.post(self.url + path, **kw)

    def request(self, method, path, **kw):
        kw.setdefault("timeout", 10)
        return self.session.request(method, self.url + path, **kw)

    def bootstrap_admin(self):
        with open(os.path.join(self.data_dir, "bootstrap-admin.json")) as f:
            return json.load(f)

    def admin_token(self, scope="refuge:admin", tenant=None):
        creds = self.bootstrap_admin()
        prefix = "/t/%s" % tenant if tenant else ""
        r = self.post(prefix + "/oauth2/token", data={"grant_type": "client_credentials", "scope": scope},
                      auth=(creds["client_id"], creds["client_secret"]))
        assert r.status_code == 200, r.text
        return r.json()["access_token"]


def run_refuged(args, timeout=10):
    return subprocess.run([REFUGED] + args, capture_output=True, text=True, timeout=timeout)
