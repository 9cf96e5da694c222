"""LDAP secondary userstores (issue 10) against real OpenLDAP servers.

Region A's directory is a slapd provider, region B's a slapd consumer
replicating it with syncrepl refreshAndPersist (tests/ldap/slapd.py: own
configs, loopback ports, no system service). refuged reads
userstores/corp.conf from its artifacts directory; the URL in it is
${region.ldap_url}, so each region's node talks to its own directory.

What is checked: the password grant with DOMAIN/username (claims, groups,
refresh, userinfo), refusals that look alike, LDAP injection through the user
name, tenants and internal users unaffected, TLS (ldaps and StartTLS with a
CA file), a directory that hangs or dies (a fast 503 while internal users
and other directories keep working; metrics and node status tell), and DR:
contextCSN equal in both regions after sync, and after a failover region B's
promoted node signs users in through region B's directory.
"""
import base64
import json
import os
import sqlite3
import shutil
import subprocess
import sys
import threading
import time
import uuid

import pytest
import requests

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "ldap"))
from refuge import REFUGED, Node, free_port  # noqa: E402
from slapd import SERVICE_DN, SERVICE_PW, SUFFIX, USERS_LDIF, Slapd, make_ca  # noqa: E402

PASSWORD = "internal user pw 1"
SCOPES = ["openid", "profile", "email", "groups", "api"]


# ---------------------------------------------------------------- helpers

def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def claims(tok):
    return json.loads(b64d(tok.split(".")[1]))


def auth(tok):
    return {"Authorization": "Bearer " + tok}


def wait_for(fn, timeout=10.0, interval=0.05, what="condition"):
    start = time.monotonic()
    last = None
    while True:
        try:
            last = fn()
        except (requests.RequestException, OSError, ValueError, KeyError, TypeError) as e:
            last = e
        else:
            if last:
                return last
        if time.monotonic() - start > timeout:
            raise AssertionError("%s not reached within %.1f s (last: %r)" % (what, timeout, last))
        time.sleep(interval)


def userstore_conf(url="${region.ldap_url}", timeout="2s", **extra):
    lines = ["[userstore]", "type = ldap", "url = %s" % url, "bind_dn = %s" % SERVICE_DN,
             "bind_password = %s" % SERVICE_PW, "user_base = ou=people,%s" % SUFFIX,
             "user_filter = (&(objectClass=inetOrgPerson)(uid=%s))", "timeout = %s" % timeout, "pool_size = 2"]
    lines += ["%s = %s" % kv for kv in extra.items()]
    return "\n".join(lines) + "\n"


def art_dir(node):
    return node.conf.get("artifacts", {}).get("dir") or os.path.join(node.data_dir, "artifacts")


def write_artifact(node, rel, text):
    path = os.path.join(art_dir(node), rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def hash_password(pw):
    r = subprocess.run([REFUGED, "--hash-password"], input=pw, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def metric(node, name, **labels):
    want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
    for line in node.get("/metrics").text.splitlines():
        if not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        if head == name and not labels:
            return float(value)
        if head.startswith(name + "{"):
            got = ",".join(sorted(head[len(name) + 1:-1].split(",")))
            if got == want:
                return float(value)
    return 0.0


class Env:
    """A node with helpers: admin token, a client, grants, internal users."""

    def __init__(self, node):
        self.node = node
        self.tok = node.admin_token()
        self._hash = None
        self.client = self.make_client()

    def status(self):
        r = self.node.get("/admin/v1/node", headers=auth(self.tok))
        assert r.status_code == 200, r.text
        return r.json()

    def store(self, name):
        for s in self.status().get("ldap", {}).get("stores", []):
            if s["name"] == name:
                return s
        return None

    def wait_store(self, name, timeout=10.0, **want):
        return wait_for(lambda: (lambda s: s if s and all(s.get(k) == v for k, v in want.items()) else None)(
            self.store(name)), timeout=timeout, what="userstore %s %r" % (name, want))

    def make_client(self, tenant=None, **fields):
        body = {"name": "app", "type": "confidential", "grant_types": ["password", "refresh_token"],
                "scopes": SCOPES, "default_scopes": ["openid"], "token_format": "jwt"}
        body.update(fields)
        r = self.node.post(prefix(tenant) + "/admin/v1/clients", json=body, headers=auth(self.tok))
        assert r.status_code == 201, r.text
        return r.json()

    def password(self, username, password, scope="openid profile email groups", client=None, tenant=None):
        c = client or self.client
        data = {"grant_type": "password", "username": username, "password": password}
        if scope:
            data["scope"] = scope
        return self.node.post(prefix(tenant) + "/oauth2/token", data=data, auth=(c["client_id"], c["client_secret"]))

    def refresh(self, rt, client=None):
        c = client or self.client
        return self.node.post("/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": rt},
                              auth=(c["client_id"], c["client_secret"]))

    def internal_user(self, username, tenant="default"):
        if self._hash is None:
            self._hash = hash_password(PASSWORD)
        uid, now = str(uuid.uuid4()), int(time.time())
        doc = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": uid, "userName": username}
        c = sqlite3.connect(os.path.join(self.node.data_dir, "refuge.db"), timeout=10)
        with c:
            c.execute("PRAGMA busy_timeout = 10000")
            c.execute("INSERT INTO users (tenant, id, user_name, user_name_lc, active, password_hash, data,"
                      " created_at, updated_at) VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?)",
                      (tenant, uid, username, username.lower(), self._hash, json.dumps(doc), now, now))
        c.close()
        return uid


def prefix(tenant):
    return "/t/%s" % tenant if tenant else ""


def assert_error(r, status, code):
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == code, body
    assert "access_token" not in body
    return body


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    """Region A's directory (provider) and region B's (syncrepl consumer)."""
    base = str(tmp_path_factory.mktemp("ldap"))
    a = Slapd(base, "a", ldif=USERS_LDIF).start()
    b = Slapd(base, "b", provider=a, tls=(a.ca, a.cert, a.key)).start()
    b.wait_synced_with(a)
    yield a, b
    b.stop()
    a.stop()


@pytest.fixture(scope="module")
def env(dirs, tmp_path_factory):
    a = dirs[0]
    node = Node(str(tmp_path_factory.mktemp("ldapnode")), extra={"region": {"ldap_url": a.url}})
    os.makedirs(os.path.join(art_dir(node), "userstores"), exist_ok=True)
    write_artifact(node, "userstores/corp.conf", userstore_conf())
    node.start()
    e = Env(node)
    e.wait_store("corp")
    yield e
    assert node.stop() == 0, node.tail()


# ------------------------------------------------------------------ login

def test_login_claims_refresh_userinfo(env, dirs):
    a = dirs[0]
    r = env.password("corp/alice", "alice-pw")
    assert r.status_code == 200, r.text
    body = r.json()
    at = claims(body["access_token"])
    # a stable subject: the store and the directory's entryUUID
    assert at["sub"] == "ldap:corp:" + a.entry_uuid("alice")
    assert at["groups"] == ["admins", "staff"]
    assert at["client_id"] == env.client["client_id"] and at["auth_time"] >= at["iat"] - 1
    idt = claims(body["id_token"])
    assert idt["sub"] == at["sub"]
    assert idt["name"] == "Alice Liddell"
    assert idt["email"] == "alice@example.org"
    assert idt["preferred_username"] == "corp/alice"

    # userinfo reads the directory again
    u = env.node.get("/oauth2/userinfo", headers=auth(body["access_token"]))
    assert u.status_code == 200, u.text
    ui = u.json()
    assert ui["sub"] == at["sub"] and ui["name"] == "Alice Liddell" and ui["email"] == "alice@example.org"
    assert ui["groups"] == ["admins", "staff"]

    # the domain is case-insensitive, the user name compares like the directory's uid
    for name in ("CORP/alice", "corp/ALICE"):
        r2 = env.password(name, "alice-pw")
        assert r2.status_code == 200, r2.text
        assert claims(r2.json()["access_token"])["sub"] == at["sub"]
    # groups travel with scope `groups` only, as for internal users
    r2 = env.password("corp/alice", "alice-pw", scope="openid profile")
    assert r2.status_code == 200, r2.text
    assert "groups" not in claims(r2.json()["access_token"])
    assert "groups" not in claims(r2.json()["id_token"])

    # the directory changes; a refresh re-reads it (groups are current, not copied)
    a.modify("dn: cn=staff,ou=groups,%s\nchangetype: modify\ndelete: member\n"
             "member: uid=alice,ou=people,%s\n" % (SUFFIX, SUFFIX))
    try:
        rr = env.refresh(body["refresh_token"])
        assert rr.status_code == 200, rr.text
        at2 = claims(rr.json()["access_token"])
        assert at2["sub"] == at["sub"] and at2["groups"] == ["admins"]
        assert at2["auth_time"] == at["auth_time"]      # a refresh is no new authentication
        # the rotated token is spent
        assert_error(env.refresh(body["refresh_token"]), 400, "invalid_grant")
    finally:
        a.modify("dn: cn=staff,ou=groups,%s\nchangetype: modify\nadd: member\n"
                 "member: uid=alice,ou=people,%s\n" % (SUFFIX, SUFFIX))

    # a user who left the directory gets no new tokens
    a.add_user("frank", "frank-pw", mail="frank@example.org")
    r3 = env.password("corp/frank", "frank-pw")
    assert r3.status_code == 200, r3.text
    a.modify("dn: uid=frank,ou=people,%s\nchangetype: delete\n" % SUFFIX)
    assert_error(env.refresh(r3.json()["refresh_token"]), 400, "invalid_grant")
    u = env.node.get("/oauth2/userinfo", headers=auth(r3.json()["access_token"]))
    assert u.status_code == 401


def test_refusals_look_alike(env, dirs):
    wrong = assert_error(env.password("corp/alice", "wrong"), 400, "invalid_grant")
    unknown = assert_error(env.password("corp/nobody", "alice-pw"), 400, "invalid_grant")
    assert wrong["error_description"] == unknown["error_description"]
    # an empty password: this directory would accept it as an unauthenticated bind...
    r = subprocess.run(["ldapwhoami", "-x", "-H", dirs[0].url, "-D", "uid=alice,ou=people," + SUFFIX, "-w", ""],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    # ...refuged does not
    empty = assert_error(env.password("corp/alice", ""), 400, "invalid_grant")
    assert empty["error_description"] == wrong["error_description"]
    assert metric(env.node, "refuge_ldap_requests_total", store="corp", result="invalid_credentials") >= 3


def test_ldap_injection_is_harmless(env):
    attacks = ["*", "al*", "*)(uid=*))(|(uid=*", "alice)(|(uid=*", "*)(|(objectClass=*", "alice)(cn=*",
               "x)(userPassword=*", "alice\\29", "*\x00"]
    for name in attacks:
        # alice's password with a name that would select alice if it reached the filter raw
        r = env.password("corp/" + name, "alice-pw")
        assert r.status_code == 400, (name, r.text)
        assert "access_token" not in r.json()
    # a real user name full of filter metacharacters works, taken literally
    r = env.password("corp/odd*name (x)", "odd-pw", scope="openid profile")
    assert r.status_code == 200, r.text
    assert claims(r.json()["id_token"])["preferred_username"] == "corp/odd*name (x)"
    assert_error(env.password("corp/odd*", "odd-pw"), 400, "invalid_grant")


def test_internal_users_and_tenants_unaffected(env):
    env.internal_user("alice")
    r = env.password("alice", PASSWORD, scope="openid")
    assert r.status_code == 200, r.text
    assert not claims(r.json()["access_token"])["sub"].startswith("ldap:")
    assert "groups" not in claims(r.json()["access_token"])
    # a name whose "domain" is no userstore is an internal user name
    env.internal_user("other/bob")
    assert env.password("other/bob", PASSWORD, scope="openid").status_code == 200
    # corp belongs to the default tenant, not to acme
    r = env.node.post("/admin/v1/tenants", json={"name": "acme", "display_name": "Acme"}, headers=auth(env.tok))
    assert r.status_code == 201, r.text
    c = env.make_client(tenant="acme", scopes=["openid"])
    assert_error(env.password("corp/alice", "alice-pw", scope="openid", client=c, tenant="acme"), 400,
                 "invalid_grant")


def test_metrics_and_node_status(env, dirs):
    a = dirs[0]
    assert env.password("corp/bob", "bob-pw").status_code == 200
    assert metric(env.node, "refuge_ldap_requests_total", store="corp", result="ok") >= 1
    assert metric(env.node, "refuge_ldap_up", store="corp") == 1
    s = env.store("corp")
    assert s["url"] == a.url                      # ${region.ldap_url} resolved on this node
    assert s["tenant"] == "default" and s["up"] is True and s["requests_total"] >= 1
    assert SERVICE_PW not in json.dumps(env.status())
    # this node reports its own directory's contextCSN
    env.wait_store("corp", context_csn=a.context_csn())


def test_tls_ldaps_and_starttls(env, dirs, tmp_path):
    a = dirs[0]
    write_artifact(env.node, "userstores/secure.conf", userstore_conf(url=a.ldaps_url, ca_file=a.ca))
    write_artifact(env.node, "userstores/stls.conf", userstore_conf(url=a.url, tls="starttls", ca_file=a.ca))
    other_ca = make_ca(str(tmp_path / "pki"), name="other")[0]
    write_artifact(env.node, "userstores/badca.conf", userstore_conf(url=a.ldaps_url, ca_file=other_ca))
    for name in ("secure", "stls", "badca"):
        env.wait_store(name)
    for name in ("secure", "stls"):
        r = env.password(name + "/bob", "bob-pw")
        assert r.status_code == 200, r.text
        assert claims(r.json()["access_token"])["sub"].startswith("ldap:%s:" % name)
    # a server certificate this CA did not sign: no connection, a clear 503
    r = env.password("badca/bob", "bob-pw")
    assert_error(r, 503, "temporarily_unavailable")
    assert "badca" in r.json()["error_description"]
    s = env.wait_store("badca", up=False)
    assert s["last_error"]
    for name in ("secure", "stls", "badca"):
        os.unlink(os.path.join(art_dir(env.node), "userstores/%s.conf" % name))
    wait_for(lambda: env.store("secure") is None, what="secure removed")


# ---------------------------------------------------------------- failure

def test_directory_down_is_fast_and_isolated(env, dirs, tmp_path):
    flaky = Slapd(str(tmp_path), "flaky", ldif=USERS_LDIF, tls=(dirs[0].ca, dirs[0].cert, dirs[0].key)).start()
    try:
        write_artifact(env.node, "userstores/flaky.conf", userstore_conf(url=flaky.url, timeout="1s"))
        env.wait_store("flaky")
        assert env.password("flaky/bob", "bob-pw").status_code == 200
        env.internal_user("irene")
        timeouts = metric(env.node, "refuge_ldap_requests_total", store="flaky", result="timeout")

        # the directory hangs: TCP still accepts, nothing answers
        flaky.pause()
        results = {}

        def hung():
            t0 = time.monotonic()
            results["flaky"] = (env.password("flaky/bob", "bob-pw"), time.monotonic() - t0)

        th = threading.Thread(target=hung)
        th.start()
        time.sleep(0.2)
        # meanwhile internal users and the other directory are served at once
        t0 = time.monotonic()
        assert env.password("irene", PASSWORD, scope="openid").status_code == 200
        assert env.password("corp/carol", "carol-pw").status_code == 200
        assert time.monotonic() - t0 < 0.9
        th.join(10)
        r, took = results["flaky"]
        assert_error(r, 503, "temporarily_unavailable")
        assert "flaky" in r.json()["error_description"]
        assert 0.8 <= took < 1.0 + 1.0                   # the 1 s timeout, plus a margin
        assert metric(env.node, "refuge_ldap_requests_total", store="flaky", result="timeout") >= timeouts + 1

        # known down: the next request does not wait at all
        t0 = time.monotonic()
        assert_error(env.password("flaky/bob", "bob-pw"), 503, "temporarily_unavailable")
        assert time.monotonic() - t0 < 0.5
        assert metric(env.node, "refuge_ldap_up", store="flaky") == 0
        s = env.store("flaky")
        assert s["up"] is False and "no answer" in s["last_error"]

        # it comes back
        flaky.resume()
        wait_for(lambda: env.password("flaky/bob", "bob-pw").status_code == 200, timeout=10,
                 what="flaky back")
        env.wait_store("flaky", up=True)

        # it dies: connection refused, answered at once
        flaky.kill()
        t0 = time.monotonic()
        assert_error(env.password("flaky/bob", "bob-pw"), 503, "temporarily_unavailable")
        assert time.monotonic() - t0 < 0.5
        assert env.password("corp/carol", "carol-pw").status_code == 200
    finally:
        flaky.stop()
        path = os.path.join(art_dir(env.node), "userstores/flaky.conf")
        if os.path.exists(path):
            os.unlink(path)


# --------------------------------------------------------------------- DR

def start_pair(workdir, dir_a, dir_b):
    pa, pb = free_port(), free_port()
    a = Node(workdir, name="a", region="region-a", extra={
        "replication": {"listen": "127.0.0.1:%d" % pa, "peer": "127.0.0.1:%d" % pb, "insecure_plaintext": True},
        "region": {"ldap_url": dir_a.url}})
    os.makedirs(os.path.join(art_dir(a), "userstores"), exist_ok=True)
    write_artifact(a, "userstores/corp.conf", userstore_conf())
    a.start()
    b = Node(workdir, name="b", region="region-b", role="standby", extra={
        "replication": {"listen": "127.0.0.1:%d" % pb, "peer": "127.0.0.1:%d" % pa, "insecure_plaintext": True},
        "region": {"ldap_url": dir_b.url}})
    shutil.copy(os.path.join(a.data_dir, "master.key"), os.path.join(b.data_dir, "master.key"))
    os.chmod(os.path.join(b.data_dir, "master.key"), 0o600)
    b.start()
    return a, b


def test_failover_uses_region_b_directory(tmp_path):
    base = str(tmp_path)
    dir_a = Slapd(base, "ra", ldif=USERS_LDIF).start()
    dir_b = Slapd(base, "rb", provider=dir_a, tls=(dir_a.ca, dir_a.cert, dir_a.key)).start()
    a = b = None
    try:
        dir_b.wait_synced_with(dir_a)
        a, b = start_pair(base, dir_a, dir_b)
        ea = Env(a)
        ea.wait_store("corp")
        assert ea.password("corp/alice", "alice-pw").status_code == 200
        # B's own operator token (each node is its own issuer: its own public_url)
        shutil.copy(os.path.join(a.data_dir, "bootstrap-admin.json"), os.path.join(b.data_dir, "bootstrap-admin.json"))
        def b_token():
            creds = b.bootstrap_admin()
            r = b.post("/oauth2/token", data={"grant_type": "client_credentials", "scope": "refuge:admin"},
                       auth=(creds["client_id"], creds["client_secret"]))
            return r.json()["access_token"] if r.status_code == 200 else None

        toks = {a: ea.tok, b: wait_for(b_token, timeout=20, what="B serves the replicated admin client")}

        def status(node):
            return node.get("/admin/v1/node", headers=auth(toks[node])).json()

        def corp(node):
            return next((s for s in status(node).get("ldap", {}).get("stores", []) if s["name"] == "corp"), None)

        # the definition replicated; each region resolves it to its own directory
        wait_for(lambda: corp(b), timeout=20, what="corp on the standby")
        assert corp(a)["url"] == dir_a.url and corp(b)["url"] == dir_b.url

        # a change in region A's directory reaches region B's by syncrepl: each
        # node reports its own directory's contextCSN, and they meet
        dir_a.add_user("erin", "erin-pw", cn="Erin Example", mail="erin@example.org", groups=["staff"])
        want = dir_b.wait_synced_with(dir_a)
        wait_for(lambda: corp(a)["context_csn"] == want and corp(b)["context_csn"] == want, timeout=10,
                 what="both regions report the same contextCSN")

        # region A is lost, node and directory
        a.kill()
        dir_a.kill()
        r = b.post("/admin/v1/node/promote", headers=auth(toks[b]))
        assert r.status_code == 200, r.text
        wait_for(lambda: status(b)["role"] == "active", timeout=10, what="B active")

        # B signs users in through region B's directory, the replicated ones too
        eb = Env(b)
        r = eb.password("corp/erin", "erin-pw")
        assert r.status_code == 200, r.text
        at = claims(r.json()["access_token"])
        assert at["sub"] == "ldap:corp:" + dir_b.entry_uuid("erin")
        assert at["groups"] == ["staff"]
        assert corp(b)["up"] is True and corp(b)["url"] == dir_b.url
    finally:
        for n in (b, a):
            if n:
                n.kill()
        dir_b.stop()
        dir_a.stop()
