"""Runs the Node interop tests (tests/interop/node/*.test.mjs: npm openid-client
and jose against our node) from pytest, so `make check` covers them.

node_modules is installed with `npm ci` only when it is missing or
package-lock.json changed since the last install (a stamp file in
node_modules holds the lockfile's hash), so repeated runs cost nothing.
The node's URL, the bootstrap admin credentials and the prepared tenants and
users reach the Node side as JSON in REFUGE_INTEROP.
"""
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
STAMP = os.path.join(HERE, "node_modules", ".refuge-lockfile-sha256")


def lock_hash():
    with open(os.path.join(HERE, "package-lock.json"), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def ensure_node_modules():
    want = lock_hash()
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


def test_node_openid_client_and_jose(interop):
    ensure_node_modules()
    files = sorted(glob.glob(os.path.join(HERE, "node", "*.test.mjs")))
    assert len(files) >= 3, files
    env = dict(os.environ)
    env["REFUGE_INTEROP"] = json.dumps({
        "url": interop["url"],
        "admin": interop["admin"],
        "tenants": {name: {"issuer": t["issuer"], "alg": t["alg"],
                           "user": {k: t["user"][k] for k in ("id", "username", "password")}}
                    for name, t in interop["tenants"].items()},
    })
    env.pop("NODE_OPTIONS", None)
    r = subprocess.run(["node", "--test", "--test-reporter=spec", "--test-timeout=60000"] + files,
                       cwd=HERE, env=env, capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 0, "node --test failed:\n%s\n--- refuged log tail ---\n%s" % (
        out, interop["node"].tail(40))
    # the spec reporter's summary: tests ran, none failed, was cancelled or skipped
    counts = dict((m.group(1), int(m.group(2))) for m in re.finditer(r"^\u2139 (\w+) (\d+)$", out, re.M))
    assert counts.get("pass", 0) >= 20 and counts.get("fail") == 0, out
    assert counts.get("cancelled") == 0 and counts.get("skipped") == 0 and counts.get("todo") == 0, out
