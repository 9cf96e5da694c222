"""LDAP secondary userstores (issue 10) against real OpenLDAP servers.

Region A's directory is a slapd provider, region B's a slapd consumer
replicating it with syncrepl refreshAndPersist (tests/ldap/slapd.py: own
configs, loopback ports, no system service). refuged reads
userstores/corp.conf from its artifacts directory; the URL in it is
${region.ldap_url}, so each region's node talks to its own directory.

What is checked: the password grant with DOMAIN/username (claims, groups,
refresh, userinfo), refusals that look alike, LDAP injection through the user
name, tenants and internal users unaffected, a userstore of another tenant
(the file's `tenant` key), the browser sign-in (login form, SSO session, code
grant) as DOMAIN/username, SCIM's read-only view of directory users (lists
routed by a userName filter, reads by id, writes refused), a bind_password
sealed by `refugectl seal-secret`, TLS (ldaps and StartTLS with a CA file), a
directory that hangs or dies (a fast 503 while internal users and other
directories keep working; metrics and node status tell), and DR: contextCSN
equal in both regions after sync, and after a failover region B's promoted
node signs users in through region B's directory.
"""
import base64
import hashlib
import html.parser
import json
import os
import secrets
import sqlite3
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid

import pytest
import requests

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "ldap"))
from refuge import REFUGECTL, REFUGED, Node, free_port  # noqa: E402
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

    def refresh(self, rt, client=None, tenant=None):
        c = client or self.client
        return self.node.post(prefix(tenant) + "/oauth2/token",
                              data={"grant_type": "refresh_token", "refresh_token": rt},
                              auth=(c["client_id"], c["client_secret"]))

    def tenant(self, name):
        """Tenant `name`, created unless it exists."""
        r = self.node.post("/admin/v1/tenants", json={"name": name, "display_name": name.title()},
                           headers=auth(self.tok))
        assert r.status_code in (201, 409), r.text
        return name

    def artifact(self, path):
        r = self.node.get("/admin/v1/artifacts", headers=auth(self.tok))
        assert r.status_code == 200, r.text
        return next((a for a in r.json()["artifacts"] if a["path"] == path), None)

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
    assert idt["groups"] == ["admins", "staff"]      # the directory's groups, as in the access token
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
    env.tenant("acme")
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


# ---------------------------------------------------------------- tenants

def test_userstore_of_another_tenant(env, dirs):
    a = dirs[0]
    env.tenant("acme")
    write_artifact(env.node, "userstores/acme.conf", userstore_conf(tenant="acme"))
    try:
        s = env.wait_store("acme", tenant="acme")
        assert s["url"] == a.url
        c = env.make_client(tenant="acme")
        r = env.password("acme/alice", "alice-pw", client=c, tenant="acme")
        assert r.status_code == 200, r.text
        at = claims(r.json()["access_token"])
        assert at["iss"] == env.node.url + "/t/acme"
        assert at["sub"] == "ldap:acme:" + a.entry_uuid("alice")
        assert at["groups"] == ["admins", "staff"]
        assert claims(r.json()["id_token"])["preferred_username"] == "acme/alice"
        rr = env.refresh(r.json()["refresh_token"], client=c, tenant="acme")
        assert rr.status_code == 200, rr.text
        assert claims(rr.json()["access_token"])["sub"] == at["sub"]
        u = env.node.get("/t/acme/oauth2/userinfo", headers=auth(r.json()["access_token"]))
        assert u.status_code == 200 and u.json()["email"] == "alice@example.org", u.text

        # in tenant default, "acme/alice" is no directory user: an internal
        # name nobody has, refused like any unknown user
        unknown = assert_error(env.password("acme/alice", "alice-pw"), 400, "invalid_grant")
        assert unknown["error_description"] == "invalid username or password"
        assert metric(env.node, "refuge_ldap_requests_total", store="acme", result="ok") >= 2

        # the tenant must be a tenant name: the file is rejected, the last good one stays
        write_artifact(env.node, "userstores/acme.conf", userstore_conf(tenant="Acme Corp"))
        bad = wait_for(lambda: (lambda x: x if x and x["status"] == "rejected" else None)(
            env.artifact("userstores/acme.conf")), what="acme.conf rejected")
        assert "userstore.tenant" in bad["last_error"] and "tenant name" in bad["last_error"], bad
        assert env.password("acme/bob", "bob-pw", client=c, tenant="acme").status_code == 200
    finally:
        os.unlink(os.path.join(art_dir(env.node), "userstores/acme.conf"))
    wait_for(lambda: env.store("acme") is None, what="acme removed")


# ------------------------------------------------------- browser sign-in

RP = "https://rp.example/cb"


class Form(html.parser.HTMLParser):
    """The first form of a page: its action and every input's value; and
    the page's error message (class "error")."""

    def __init__(self, text):
        super().__init__()
        self.action, self.fields, self.error, self._in_error = None, {}, "", False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and self.action is None:
            self.action = a.get("action")
        if tag == "input" and a.get("name"):
            self.fields[a["name"]] = a.get("value", "")
        if "error" in (a.get("class") or "").split():
            self._in_error = True

    def handle_data(self, data):
        if self._in_error:
            self.error += data

    def handle_endtag(self, tag):
        self._in_error = False


def b64e(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class Browser:
    """A cookie-keeping client signing in to `client` of `tenant` with PKCE."""

    def __init__(self, node, client, tenant=None):
        self.node, self.client, self.prefix = node, client, prefix(tenant)
        self.s = requests.Session()

    def authorize(self):
        self.verifier = b64e(secrets.token_bytes(48))
        self.nonce = secrets.token_urlsafe(12)
        q = {"client_id": self.client["client_id"], "redirect_uri": RP, "response_type": "code",
             "scope": "openid profile email groups", "state": "st-1", "nonce": self.nonce,
             "code_challenge": b64e(hashlib.sha256(self.verifier.encode()).digest()),
             "code_challenge_method": "S256"}
        return self.s.get(self.node.url + self.prefix + "/oauth2/authorize", params=q, allow_redirects=False,
                          timeout=10)

    def login(self, page, username, password):
        f = Form(page.text)
        assert f.action and "csrf_token" in f.fields, page.text[:500]
        data = dict(f.fields, username=username, password=password)
        return self.s.post(self.node.url + f.action, data=data, allow_redirects=False, timeout=15)

    def code(self, r):
        assert r.status_code == 302, (r.status_code, r.text[:500])
        q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(r.headers["Location"]).query))
        assert q.get("state") == "st-1" and "code" in q, q
        return q["code"]

    def token(self, code):
        return requests.post(self.node.url + self.prefix + "/oauth2/token", timeout=15, data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": RP,
            "client_id": self.client["client_id"], "code_verifier": self.verifier})


def web_client(env, tenant=None):
    return env.make_client(tenant=tenant, type="public", redirect_uris=[RP],
                           grant_types=["authorization_code", "refresh_token"])


def test_browser_login_as_directory_user(env, dirs):
    a = dirs[0]
    c = web_client(env)
    b = Browser(env.node, c)
    page = b.authorize()
    assert page.status_code == 200 and "csrf_token" in page.text, page.text[:300]
    r = b.login(page, "corp/alice", "alice-pw")
    tok = b.token(b.code(r))
    assert tok.status_code == 200, tok.text
    body = tok.json()
    idt, at = claims(body["id_token"]), claims(body["access_token"])
    sub = "ldap:corp:" + a.entry_uuid("alice")
    assert idt["sub"] == at["sub"] == sub
    assert idt["nonce"] == b.nonce and idt["aud"] == c["client_id"]
    assert idt["preferred_username"] == "corp/alice"
    assert idt["name"] == "Alice Liddell" and idt["email"] == "alice@example.org"
    assert at["groups"] == ["admins", "staff"]
    # the session row names the directory user
    db = sqlite3.connect(os.path.join(env.node.data_dir, "refuge.db"), timeout=10)
    try:
        rows = db.execute("SELECT user_id FROM sso_sessions WHERE user_id = ?", (sub,)).fetchall()
    finally:
        db.close()
    assert len(rows) == 1
    # a refresh reads the directory again
    rr = requests.post(env.node.url + "/oauth2/token", timeout=15, data={
        "grant_type": "refresh_token", "refresh_token": body["refresh_token"], "client_id": c["client_id"]})
    assert rr.status_code == 200 and claims(rr.json()["access_token"])["sub"] == sub, rr.text

    # SSO: the next authorization request gets a code without the form
    r2 = b.authorize()
    tok2 = b.token(b.code(r2))
    assert tok2.status_code == 200, tok2.text
    idt2 = claims(tok2.json()["id_token"])
    assert idt2["sub"] == sub and idt2["auth_time"] == idt["auth_time"] and idt2["sid"] == idt["sid"]

    # refusals read like an internal user's: a wrong directory password and
    # an unknown internal user get the same form and message
    other = Browser(env.node, c)
    wrong = other.login(other.authorize(), "corp/alice", "wrong")
    unknown = other.login(other.authorize(), "nobody-here", "wrong")
    assert wrong.status_code == unknown.status_code == 401
    assert Form(wrong.text).error.strip() == Form(unknown.text).error.strip() != ""
    assert "csrf_token" in Form(wrong.text).fields

    # a user who leaves the directory between sign-in and code redemption gets no tokens
    a.add_user("gina", "gina-pw", mail="gina@example.org")
    g = Browser(env.node, c)
    code = g.code(g.login(g.authorize(), "corp/gina", "gina-pw"))
    a.modify("dn: uid=gina,ou=people,%s\nchangetype: delete\n" % SUFFIX)
    assert_error(g.token(code), 400, "invalid_grant")


def test_browser_login_directory_down(env):
    """Directories that refuse connections or accept and never answer: the
    form comes back with a 503 within the store's timeout, the HTTP workers
    (two on this node) keep serving meanwhile, and the tenant's internal
    users still sign in."""
    env.tenant("bravo")
    dead = "ldap://127.0.0.1:%d" % free_port()          # nothing listens there
    hung = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    hung.bind(("127.0.0.1", 0))
    hung.listen(16)                                      # the kernel accepts; nobody answers
    write_artifact(env.node, "userstores/dead.conf", userstore_conf(url=dead, tenant="bravo"))
    write_artifact(env.node, "userstores/hung.conf", userstore_conf(
        url="ldap://127.0.0.1:%d" % hung.getsockname()[1], tenant="bravo", timeout="1s"))
    try:
        env.wait_store("dead", tenant="bravo")
        env.wait_store("hung", tenant="bravo")
        c = web_client(env, tenant="bravo")
        b = Browser(env.node, c, tenant="bravo")
        t0 = time.monotonic()
        r = b.login(b.authorize(), "dead/alice", "alice-pw")
        assert r.status_code == 503, r.text[:300]
        assert time.monotonic() - t0 < 1.5
        assert "directory" in Form(r.text).error and "csrf_token" in Form(r.text).fields
        assert r.headers.get("Retry-After")

        # two sign-ins wait for the hung directory, as many as the node has HTTP workers
        pages = []
        for _ in range(2):
            hb = Browser(env.node, c, tenant="bravo")
            pages.append((hb, hb.authorize()))
        results = []

        def sign_in(hb, page):
            t = time.monotonic()
            results.append((hb.login(page, "hung/alice", "alice-pw"), time.monotonic() - t))

        threads = [threading.Thread(target=sign_in, args=p) for p in pages]
        for th in threads:
            th.start()
        time.sleep(0.3)
        # meanwhile the node serves other requests at once, internal sign-in included
        env.internal_user("ivan", tenant="bravo")
        t0 = time.monotonic()
        assert env.node.get("/health/live", timeout=2).status_code == 200
        ok = Browser(env.node, c, tenant="bravo")
        tok = ok.token(ok.code(ok.login(ok.authorize(), "ivan", PASSWORD)))
        assert tok.status_code == 200, tok.text
        assert time.monotonic() - t0 < 0.9
        for th in threads:
            th.join(10)
        assert len(results) == 2
        for r, took in results:
            assert r.status_code == 503 and "directory" in Form(r.text).error, r.text[:300]
            assert took < 2.5
        assert metric(env.node, "refuge_ldap_requests_total", store="hung", result="timeout") >= 1

        # SCIM on a dead directory: 503 with Retry-After, not a hang
        t0 = time.monotonic()
        r = env.node.get("/t/bravo/scim2/Users", params={"filter": 'userName sw "dead/"'}, headers=auth(env.tok))
        assert r.status_code == 503 and r.headers.get("Retry-After"), r.text
        assert "dead" in r.json()["detail"] and time.monotonic() - t0 < 1.5
    finally:
        for name in ("dead", "hung"):
            os.unlink(os.path.join(art_dir(env.node), "userstores/%s.conf" % name))
        hung.close()


# ------------------------------------------------------------------ SCIM

READ_ONLY = "users of an LDAP userstore are read-only: change them in the directory"
SCIM_JSON = {"Content-Type": "application/scim+json"}


def directory_users(slapd):
    """{userName: entry} of region A's directory, read with ldapsearch (not our code)."""
    out = {}
    for dn, e in (slapd.search("ou=people," + SUFFIX, "one", "(objectClass=inetOrgPerson)",
                               ["uid", "mail", "entryUUID"]) or {}).items():
        out["corp/" + e["uid"][0]] = e
    return out


def scim_users(env, filt, **params):
    r = env.node.get("/scim2/Users", params=dict(params, filter=filt), headers=auth(env.tok))
    assert r.status_code == 200, r.text
    return r.json()


def test_scim_lists_and_reads_directory_users(env, dirs):
    a = dirs[0]
    want = directory_users(a)
    assert {"corp/alice", "corp/bob", "corp/carol"} <= set(want)

    # the whole store, ordered by userName
    lst = scim_users(env, 'userName sw "corp/"')
    names = [u["userName"] for u in lst["Resources"]]
    assert lst["totalResults"] == len(want) and names == sorted(want), (names, sorted(want))
    alice = next(u for u in lst["Resources"] if u["userName"] == "corp/alice")
    aid = "ldap:corp:" + a.entry_uuid("alice")
    assert alice["id"] == aid and alice["emails"][0]["value"] == "alice@example.org"
    assert sorted(g["display"] for g in alice["groups"]) == ["admins", "staff"]
    assert alice["meta"]["location"] == env.node.url + "/scim2/Users/" + aid
    assert alice["meta"]["userStore"] == "corp" and "password" not in alice

    # paging and order
    page = scim_users(env, 'userName sw "corp/"', startIndex=2, count=1)
    assert page["totalResults"] == len(want) and page["startIndex"] == 2 and page["itemsPerPage"] == 1
    assert page["Resources"][0]["userName"] == sorted(want)[1]
    desc = scim_users(env, 'userName sw "corp/"', sortBy="userName", sortOrder="descending")
    assert [u["userName"] for u in desc["Resources"]] == sorted(want, reverse=True)
    assert scim_users(env, 'userName sw "corp/"', count=0)["Resources"] == []

    # one user by name (case-insensitive, like userName), and the whole filter applies
    one = scim_users(env, 'userName eq "CORP/alice"')
    assert [u["id"] for u in one["Resources"]] == [aid]
    assert scim_users(env, 'userName eq "corp/alice" and active eq false')["totalResults"] == 0
    with_mail = scim_users(env, 'userName sw "corp/" and emails co "@example.org"')
    assert sorted(u["userName"] for u in with_mail["Resources"]) == sorted(n for n, e in want.items() if "mail" in e)
    prefix_al = scim_users(env, '(userName sw "corp/al")')
    assert [u["userName"] for u in prefix_al["Resources"]] == ["corp/alice"]
    assert scim_users(env, 'userName eq "corp/nobody"')["totalResults"] == 0
    # attribute selection
    sel = scim_users(env, 'userName eq "corp/alice"', attributes="userName")["Resources"][0]
    assert set(sel) == {"schemas", "id", "userName"}, sel
    # the same through POST /Users/.search
    r = env.node.post("/scim2/Users/.search", headers=dict(auth(env.tok), **SCIM_JSON), json={
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": 'userName sw "corp/b"'})
    assert r.status_code == 200 and [u["userName"] for u in r.json()["Resources"]] == ["corp/bob"], r.text
    # directory lists sort by userName only
    r = env.node.get("/scim2/Users", params={"filter": 'userName sw "corp/"', "sortBy": "emails"},
                     headers=auth(env.tok))
    assert r.status_code == 400 and r.json()["scimType"] == "invalidValue", r.text

    # not routed: no such store, no userName pin, an `or`; the internal list is unchanged
    assert scim_users(env, 'userName sw "nostore/"')["totalResults"] == 0
    assert scim_users(env, 'userName eq "corp/alice" or userName eq "nobody"')["totalResults"] == 0
    internal = env.node.get("/scim2/Users", headers=auth(env.tok)).json()
    assert internal["totalResults"] >= 1
    assert not any(u["id"].startswith("ldap:") for u in internal["Resources"])

    # one user by id
    r = env.node.get("/scim2/Users/" + aid, headers=auth(env.tok))
    assert r.status_code == 200, r.text
    assert r.json()["userName"] == "corp/alice" and r.json()["name"]["formatted"] == "Alice Liddell"
    assert "ETag" not in r.headers
    for missing in ("ldap:corp:" + str(uuid.uuid4()), "ldap:nostore:" + str(uuid.uuid4()), "ldap:corp:u:nobody"):
        r = env.node.get("/scim2/Users/" + missing, headers=auth(env.tok))
        assert r.status_code == 404, (missing, r.text)
    # a user-name id (a directory without entryUUID) reads the same way
    r = env.node.get("/scim2/Users/" + urllib.parse.quote("ldap:corp:u:bob"), headers=auth(env.tok))
    assert r.status_code == 200 and r.json()["userName"] == "corp/bob", r.text


def test_scim_refuses_writes_to_directory_users(env, dirs):
    aid = "ldap:corp:" + dirs[0].entry_uuid("alice")
    h = dict(auth(env.tok), **SCIM_JSON)
    user = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "corp/alice"}
    patch = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
             "Operations": [{"op": "replace", "path": "displayName", "value": "Mallory"}]}
    for method, kw in (("PUT", {"json": user}), ("PATCH", {"json": patch}), ("DELETE", {})):
        r = env.node.request(method, "/scim2/Users/" + aid, headers=h, **kw)
        assert r.status_code == 400, (method, r.text)
        assert r.json()["scimType"] == "mutability" and r.json()["detail"] == READ_ONLY, r.text
    # nothing changed in the directory
    assert env.node.get("/scim2/Users/" + aid, headers=auth(env.tok)).json()["displayName"] == "Alice Liddell"
    # a new user in the directory's domain is a write to the directory too
    r = env.node.post("/scim2/Users", headers=h, json=dict(user, userName="corp/newbie"))
    assert r.status_code == 400 and r.json()["detail"] == READ_ONLY, r.text
    r = env.node.post("/scim2/Users", headers=h, json=dict(user, userName="nostore/newbie"))
    assert r.status_code == 201, r.text

    # /Me of a directory user: reads from the directory, writes refused
    tok = env.password("corp/alice", "alice-pw", scope="openid").json()["access_token"]
    r = env.node.get("/scim2/Me", headers=auth(tok))
    assert r.status_code == 200 and r.json()["id"] == aid and r.json()["userName"] == "corp/alice", r.text
    r = env.node.request("PATCH", "/scim2/Me", headers=dict(auth(tok), **SCIM_JSON), json=patch)
    assert r.status_code == 400 and r.json()["scimType"] == "mutability", r.text


# --------------------------------------------------------- sealed secrets

def seal(secret, key_path):
    r = subprocess.run([REFUGECTL, "seal-secret", "--master-key", key_path], input=secret + "\n",
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    out = r.stdout.strip()
    assert out.startswith("sealed:") and secret not in out
    return out


def test_sealed_bind_password(env, tmp_path):
    master = os.path.join(env.node.data_dir, "master.key")
    sealed = seal(SERVICE_PW, master)
    assert seal(SERVICE_PW, master) != sealed                    # a fresh nonce every time
    write_artifact(env.node, "userstores/sealed.conf",
                   userstore_conf().replace("bind_password = %s" % SERVICE_PW, "bind_password = %s" % sealed))
    # sealed with a key no node has: the store is refused, with a clear error
    other = str(tmp_path / "other.key")
    with open(other, "wb") as f:
        f.write(os.urandom(32))
    os.chmod(other, 0o600)
    write_artifact(env.node, "userstores/sealedbad.conf",
                   userstore_conf().replace("bind_password = %s" % SERVICE_PW,
                                            "bind_password = %s" % seal(SERVICE_PW, other)))
    try:
        env.wait_store("sealed")
        r = env.password("sealed/bob", "bob-pw")
        assert r.status_code == 200, r.text
        assert claims(r.json()["access_token"])["sub"].startswith("ldap:sealed:")
        errs = wait_for(lambda: [e for e in env.status()["ldap"]["errors"]
                                 if e["path"] == "userstores/sealedbad.conf"], what="sealedbad rejected")
        assert "master key" in errs[0]["error"], errs
        assert env.store("sealedbad") is None
        assert SERVICE_PW not in json.dumps(env.status())
        # the tool never makes a master key up, and reads the secret from stdin only
        r = subprocess.run([REFUGECTL, "seal-secret", "--master-key", str(tmp_path / "none.key")], input="x\n",
                           capture_output=True, text=True, timeout=10)
        assert r.returncode == 1 and not os.path.exists(str(tmp_path / "none.key")), r.stderr
        r = subprocess.run([REFUGECTL, "seal-secret", "--master-key", master], input="", capture_output=True,
                           text=True, timeout=10)
        assert r.returncode == 2, r.stderr
    finally:
        for name in ("sealed", "sealedbad"):
            os.unlink(os.path.join(art_dir(env.node), "userstores/%s.conf" % name))


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

        # refugectl status puts each region's directory state next to the store's lag
        cluster = os.path.join(base, "cluster.conf")
        with open(cluster, "w") as f:
            f.write("[cluster]\nname = t\nadmin_credentials = %s\n"
                    "[haproxy]\nsocket = %s/no-haproxy.sock\nfrontend_url = %s\n"
                    "[node.%s]\nadmin_url = %s\nregion = region-a\nhaproxy_server = a\n"
                    "[node.%s]\nadmin_url = %s\nregion = region-b\nhaproxy_server = b\n"
                    % (os.path.join(a.data_dir, "bootstrap-admin.json"), base, a.url, a.name, a.url, b.name, b.url))
        out = subprocess.run([REFUGECTL, "status", "-c", cluster], capture_output=True, text=True, timeout=30)
        assert "directory corp: in sync with %s's directory" % a.name in out.stdout, out.stdout + out.stderr
        js = json.loads(subprocess.run([REFUGECTL, "status", "-c", cluster, "--json"], capture_output=True,
                                       text=True, timeout=30).stdout)
        assert not [p for p in js["problems"] if "directory corp" in p["text"]], js["problems"]

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
