"""Browser sign-in against a real refuged, driven by a cookie-keeping HTTP
client (requests.Session): /oauth2/authorize with PKCE, the login page and
its form, SSO sessions, the authorization_code grant, ID token claims
(nonce, auth_time, at_hash, sid), RP-initiated logout, the admin API over a
user's sessions, and the failures: PKCE mismatch, plain PKCE, unregistered
redirect_uri, reused and expired codes, a missing CSRF token, prompt=none
without a session, max_age, wrong password / locked / disabled accounts,
and the login rate limit.

Each test that needs isolation (rate limit, lockout, cookies) makes its own
tenant: the login rate limit is kept per client IP and tenant, and every
test here comes from 127.0.0.1.
"""
import base64
import hashlib
import html.parser
import json
import os
import re
import secrets
import shutil
import sqlite3
import subprocess
import time
import urllib.parse
import uuid

import pytest
import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from refuge import REFUGED, Node, free_port

PASSWORD = "correct horse battery staple"
RP = "https://rp.example/cb"


# ---------------------------------------------------------------- helpers

def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64e(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwt_parts(tok):
    h, p, s = tok.split(".")
    return json.loads(b64d(h)), json.loads(b64d(p)), b64d(s)


def verify_es256(tok, jwks):
    """Checks an ES256 JWS against the JWKS with `cryptography` (not our code)."""
    header, _, sig = jwt_parts(tok)
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    pub = ec.EllipticCurvePublicNumbers(int.from_bytes(b64d(key["x"]), "big"),
                                        int.from_bytes(b64d(key["y"]), "big"), ec.SECP256R1()).public_key()
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    pub.verify(der, tok.rsplit(".", 1)[0].encode(), ec.ECDSA(hashes.SHA256()))


def pkce():
    verifier = b64e(secrets.token_bytes(48))
    challenge = b64e(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge


class Form(html.parser.HTMLParser):
    """The first form of a page: action, method and every input's value."""

    def __init__(self, text):
        super().__init__()
        self.action = None
        self.method = None
        self.fields = {}
        self.inputs = []
        self.labels = {}
        self._label_for = None
        self.html_lang = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "html":
            self.html_lang = a.get("lang")
        if tag == "form" and self.action is None:
            self.action, self.method = a.get("action"), a.get("method")
        if tag == "input":
            self.inputs.append(a)
            if a.get("name"):
                self.fields[a["name"]] = a.get("value", "")
        if tag == "label":
            self._label_for = a.get("for")

    def handle_data(self, data):
        if self._label_for and data.strip():
            self.labels[self._label_for] = data.strip()

    def handle_endtag(self, tag):
        if tag == "label":
            self._label_for = None


def location(r):
    assert r.status_code == 302, (r.status_code, r.text[:500])
    loc = r.headers["Location"]
    u = urllib.parse.urlsplit(loc)
    return loc, dict(urllib.parse.parse_qsl(u.query))


def hash_password(pw):
    r = subprocess.run([REFUGED, "--hash-password"], input=pw, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


class Env:
    def __init__(self, node):
        self.node = node
        self._admin = None
        self._hash = None

    @property
    def url(self):
        return self.node.url

    def admin(self):
        if self._admin is None:
            self._admin = self.node.admin_token()
        return self._admin

    def ah(self):
        return {"Authorization": "Bearer " + self.admin()}

    def tenant(self, settings=None):
        name = "t" + uuid.uuid4().hex[:10]
        body = {"name": name, "display_name": "Tenant " + name}
        if settings is not None:
            body["settings"] = settings
        r = requests.post(self.url + "/admin/v1/tenants", json=body, headers=self.ah(), timeout=10)
        assert r.status_code == 201, r.text
        return name

    @staticmethod
    def prefix(tenant):
        return "/t/%s" % tenant if tenant and tenant != "default" else ""

    def issuer(self, tenant):
        return self.url + self.prefix(tenant)

    def client(self, tenant, **fields):
        body = {"name": "Web App", "type": "public", "redirect_uris": [RP],
                "post_logout_redirect_uris": ["https://rp.example/bye"],
                "grant_types": ["authorization_code", "refresh_token"],
                "scopes": ["openid", "profile", "email", "api:read"], "default_scopes": ["openid"]}
        body.update(fields)
        r = requests.post(self.url + self.prefix(tenant) + "/admin/v1/clients", json=body, headers=self.ah(),
                          timeout=10)
        assert r.status_code == 201, r.text
        return r.json()

    def db(self):
        c = sqlite3.connect(os.path.join(self.node.data_dir, "refuge.db"), timeout=10)
        c.execute("PRAGMA busy_timeout = 10000")
        return c

    def user(self, tenant, username=None, active=True, data=None):
        """A user with PASSWORD: through SCIM when it answers, else straight into the store."""
        username = username or "user-" + uuid.uuid4().hex[:8]
        doc = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": username,
               "active": active, "password": PASSWORD}
        doc.update(data or {})
        r = requests.post(self.url + self.prefix(tenant) + "/scim2/Users", json=doc,
                          headers=dict(self.ah(), **{"Content-Type": "application/scim+json"}), timeout=30)
        if r.status_code == 201:
            return r.json()["id"], username
        assert r.status_code in (404, 405), r.text     # SCIM not in this build yet
        if self._hash is None:
            self._hash = hash_password(PASSWORD)
        uid = str(uuid.uuid4())
        now = int(time.time())
        doc.pop("password")
        doc["id"] = uid
        with self.db() as c:
            c.execute("INSERT INTO users (tenant, id, user_name, user_name_lc, active, password_hash, data,"
                      " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      (tenant, uid, username, username.lower(), 1 if active else 0, self._hash,
                       json.dumps(doc), now, now))
        return uid, username

    def jwks(self, tenant):
        return requests.get(self.issuer(tenant) + "/oauth2/jwks", timeout=10).json()


class Browser:
    """A cookie-keeping client for one tenant and one client."""

    def __init__(self, env, tenant, client):
        self.env = env
        self.tenant = tenant
        self.client = client
        self.s = requests.Session()
        self.use(env.url)

    def use(self, root):
        """Talks to the node at root (the same browser, cookies and all)."""
        self.root = root
        self.base = root + Env.prefix(self.tenant)

    def authorize(self, pkce_pair=None, method="GET", **extra):
        params = {"response_type": "code", "client_id": self.client["client_id"], "redirect_uri": RP,
                  "scope": "openid profile", "state": "st-" + secrets.token_hex(4),
                  "nonce": "n-" + secrets.token_hex(4)}
        if pkce_pair:
            params.update(code_challenge=pkce_pair[1], code_challenge_method="S256")
        params.update(extra)
        params = {k: v for k, v in params.items() if v is not None}
        if method == "GET":
            r = self.s.get(self.base + "/oauth2/authorize", params=params, allow_redirects=False, timeout=10)
        else:
            r = self.s.post(self.base + "/oauth2/authorize", data=params, allow_redirects=False, timeout=10)
        return r, params

    def login(self, page, username, password=PASSWORD, drop=(), override=None):
        f = Form(page.text)
        assert f.action and f.method == "post", page.text[:300]
        data = dict(f.fields)
        data["username"] = username
        data["password"] = password
        for k in drop:
            data.pop(k, None)
        data.update(override or {})
        return self.s.post(self.root + f.action, data=data, allow_redirects=False, timeout=30)

    def sign_in(self, username, pkce_pair=None, **extra):
        pkce_pair = pkce_pair or pkce()
        r, params = self.authorize(pkce_pair, **extra)
        assert r.status_code == 200, r.text
        r = self.login(r, username)
        _, q = location(r)
        assert q["state"] == params["state"]
        return q["code"], pkce_pair[0], params

    def token(self, code, verifier=None, redirect_uri=RP, client=None, **extra):
        client = client or self.client
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        if verifier is not None:
            data["code_verifier"] = verifier
        data.update(extra)
        auth = None
        if client.get("client_secret"):
            auth = (client["client_id"], client["client_secret"])
        else:
            data["client_id"] = client["client_id"]
        return requests.post(self.base + "/oauth2/token", data=data, auth=auth, timeout=10)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    node = Node(str(tmp_path_factory.mktemp("authz")))
    node.start()
    yield Env(node)
    assert node.stop() == 0, node.tail()


@pytest.fixture
def setup(env):
    t = env.tenant()
    c = env.client(t)
    uid, username = env.user(t)
    return t, c, uid, username


# ------------------------------------------------------------------ tests

def test_discovery(env):
    m = requests.get(env.url + "/.well-known/openid-configuration", timeout=10).json()
    assert m["authorization_endpoint"] == env.url + "/oauth2/authorize"
    assert m["end_session_endpoint"] == env.url + "/oidc/logout"
    assert m["response_types_supported"] == ["code"]
    assert m["code_challenge_methods_supported"] == ["S256"]
    assert "authorization_code" in m["grant_types_supported"]
    assert "none" in m["token_endpoint_auth_methods_supported"]
    assert m["authorization_response_iss_parameter_supported"] is True
    # a tenant without the code grant advertises no authorization endpoint
    t = env.tenant({"grant_types": ["client_credentials"]})
    m = requests.get(env.issuer(t) + "/.well-known/openid-configuration", timeout=10).json()
    assert "authorization_endpoint" not in m and m["response_types_supported"] == []


def test_full_flow(env, setup):
    t, c, uid, username = setup
    b = Browser(env, t, c)
    pair = pkce()
    r, params = b.authorize(pair)
    # the login page: accessible, branded, no script, locked down
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/html")
    csp = r.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "script-src" not in csp
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["Referrer-Policy"] == "no-referrer"
    assert "no-store" in r.headers["Cache-Control"]
    assert "<script" not in r.text.lower()
    nonce = re.search(r"<style nonce=\"([^\"]+)\"", r.text).group(1)
    assert "'nonce-%s'" % nonce in csp
    f = Form(r.text)
    assert f.html_lang == "en"
    assert f.labels == {"username": "Username", "password": "Password"}
    auto = {i.get("id"): i.get("autocomplete") for i in f.inputs if i.get("id")}
    assert auto == {"username": "username", "password": "current-password"}
    assert f.fields["client_id"] == c["client_id"] and f.fields["state"] == params["state"]
    assert "csrf_token" in f.fields and "password" not in [k for k, v in f.fields.items() if v]
    assert "Web App" in r.text
    # the CSRF cookie
    assert any(ck.name == "refuge_csrf_" + t for ck in b.s.cookies)

    r = b.login(r, username)
    loc, q = location(r)
    assert loc.startswith(RP + "?")
    assert q["state"] == params["state"] and q["iss"] == env.issuer(t)
    code = q["code"]
    assert len(code) == 43
    setc = r.headers["Set-Cookie"]
    assert "refuge_sid_%s=" % t in setc and "HttpOnly" in setc and "SameSite=Lax" in setc
    assert "Path=/t/%s" % t in setc and "Secure" not in setc        # plain http here
    assert "Location" in r.headers and "no-store" in r.headers["Cache-Control"]

    r = b.token(code, pair[0])
    assert r.status_code == 200, r.text
    tok = r.json()
    assert tok["token_type"] == "Bearer" and tok["scope"] == "openid profile"
    assert "refresh_token" in tok
    jwks = env.jwks(t)
    verify_es256(tok["id_token"], jwks)
    verify_es256(tok["access_token"], jwks)
    _, idt, _ = jwt_parts(tok["id_token"])
    assert idt["iss"] == env.issuer(t) and idt["aud"] == c["client_id"] and idt["sub"] == uid
    assert idt["nonce"] == params["nonce"]
    assert abs(idt["auth_time"] - time.time()) < 60
    digest = hashlib.sha256(tok["access_token"].encode()).digest()
    assert idt["at_hash"] == b64e(digest[:16])
    assert idt["preferred_username"] == username
    sid = idt["sid"]
    _, at, _ = jwt_parts(tok["access_token"])
    assert at["sub"] == uid and at["client_id"] == c["client_id"] and at["auth_time"] == idt["auth_time"]
    r = requests.get(env.issuer(t) + "/oauth2/userinfo", headers={"Authorization": "Bearer " + tok["access_token"]},
                     timeout=10)
    assert r.status_code == 200 and r.json()["sub"] == uid

    # SSO: the cookie signs in again without a form, same session and auth_time
    pair2 = pkce()
    r, params2 = b.authorize(pair2, nonce="second")
    _, q = location(r)
    assert q["state"] == params2["state"]
    r = b.token(q["code"], pair2[0])
    assert r.status_code == 200, r.text
    _, idt2, _ = jwt_parts(r.json()["id_token"])
    assert idt2["sid"] == sid and idt2["auth_time"] == idt["auth_time"] and idt2["nonce"] == "second"

    # the refresh token works and keeps the user
    r = requests.post(env.issuer(t) + "/oauth2/token", data={"grant_type": "refresh_token", "client_id": c["client_id"],
                                                             "refresh_token": tok["refresh_token"]}, timeout=10)
    assert r.status_code == 200, r.text

    # the stored rows hold hashes, not the secrets
    with env.db() as db:
        assert db.execute("SELECT count(*) FROM auth_codes WHERE code_hash = ?", (code,)).fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM auth_codes WHERE code_hash = ?",
                          (hashlib.sha256(code.encode()).hexdigest(),)).fetchone()[0] == 1
        cookie = next(ck.value for ck in b.s.cookies if ck.name == "refuge_sid_" + t)
        assert db.execute("SELECT count(*) FROM sso_sessions WHERE id_hash = ?",
                          (hashlib.sha256(cookie.encode()).hexdigest(),)).fetchone()[0] == 1


def test_post_authorization_request(env, setup):
    t, c, uid, username = setup
    b = Browser(env, t, c)
    pair = pkce()
    r, _ = b.authorize(pair, method="POST")
    assert r.status_code == 200 and "csrf_token" in r.text
    r = b.login(r, username)
    _, q = location(r)
    assert b.token(q["code"], pair[0]).status_code == 200


def test_confidential_client(env, setup):
    t, _, uid, username = setup
    c = env.client(t, type="confidential", grant_types=["authorization_code"])
    b = Browser(env, t, c)
    # no PKCE: allowed for a confidential client, which authenticates
    r, _ = b.authorize(None)
    assert r.status_code == 200
    _, q = location(b.login(r, username))
    r = b.token(q["code"])
    assert r.status_code == 200, r.text
    assert "refresh_token" not in r.json()          # the client may not refresh
    # ... but a verifier without a challenge is a downgrade attempt
    _, q = location(b.authorize(None)[0])
    r = b.token(q["code"], pkce()[0])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    # PKCE is honoured when sent
    pair = pkce()
    _, q = location(b.authorize(pair)[0])
    assert b.token(q["code"], pkce()[0]).json()["error"] == "invalid_grant"
    # the secret is checked
    _, q = location(b.authorize(None)[0])
    r = b.token(q["code"], client=dict(c, client_secret="wrong"))
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_pkce_mismatch_and_missing(env, setup):
    t, c, uid, username = setup
    b = Browser(env, t, c)
    code, verifier, _ = b.sign_in(username)
    r = b.token(code, pkce()[0])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    _, q = location(b.authorize(pkce())[0])
    r = b.token(q["code"], None)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    r = b.token(q["code"], "short")
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


def test_pkce_rules_at_authorize(env, setup):
    t, c, uid, username = setup
    b = Browser(env, t, c)
    # a public client must use PKCE
    r, p = b.authorize(None)
    _, q = location(r)
    assert q["error"] == "invalid_request" and "PKCE" in q["error_description"]
    assert q["state"] == p["state"] and q["iss"] == env.issuer(t)
    # plain is refused, and so is a challenge without method (which means plain)
    v = b64e(secrets.token_bytes(32))
    _, q = location(b.authorize(None, code_challenge=v, code_challenge_method="plain")[0])
    assert q["error"] == "invalid_request" and "plain" in q["error_description"]
    _, q = location(b.authorize(None, code_challenge=v)[0])
    assert q["error"] == "invalid_request"
    _, q = location(b.authorize(None, code_challenge="tooshort", code_challenge_method="S256")[0])
    assert q["error"] == "invalid_request"


def test_unregistered_redirect_is_never_followed(env, setup):
    t, c, uid, username = setup
    b = Browser(env, t, c)
    for bad in ("https://evil.example/cb", RP + "/x", RP + "?a=1", "http://rp.example/cb"):
        r, _ = b.authorize(pkce(), redirect_uri=bad)
        assert r.status_code == 400 and "Location" not in r.headers
        assert r.headers["Content-Type"].startswith("text/html")
        assert "redirect_uri" in r.text and "evil" not in r.headers.get("Location", "")
    # unknown client, missing client_id, repeated redirect_uri: a page, no redirect
    r, _ = b.authorize(pkce(), client_id="nosuchclient")
    assert r.status_code == 400 and "Location" not in r.headers
    r, _ = b.authorize(pkce(), client_id=None)
    assert r.status_code == 400 and "client_id" in r.text
    r = b.s.get(env.issuer(t) + "/oauth2/authorize?client_id=%s&redirect_uri=%s&redirect_uri=%s&response_type=code"
                % (c["client_id"], urllib.parse.quote(RP), urllib.parse.quote(RP)), allow_redirects=False)
    assert r.status_code == 400 and "Location" not in r.headers
    # a client with one registered URI may leave redirect_uri out
    r, _ = b.authorize(pkce(), redirect_uri=None)
    assert r.status_code == 200
    # a client with two may not
    c2 = env.client(t, redirect_uris=[RP, "https://rp.example/other"])
    r, _ = Browser(env, t, c2).authorize(pkce(), redirect_uri=None)
    assert r.status_code == 400 and "Location" not in r.headers
    # the login POST checks the redirect_uri again: a tampered form gets a page
    r, _ = b.authorize(pkce())
    r = b.login(r, username, override={"redirect_uri": "https://evil.example/cb"})
    assert r.status_code == 400 and "Location" not in r.headers


def test_errors_redirected(env, setup):
    t, c, uid, username = setup
    b = Browser(env, t, c)
    cases = [({"response_type": "token"}, "unsupported_response_type"),
             ({"response_type": None}, "invalid_request"),
             ({"scope": "openid admin"}, "invalid_scope"),
             ({"scope": "openid\"x"}, "invalid_scope"),
             ({"prompt": "none login"}, "invalid_request"),
             ({"prompt": "bogus"}, "invalid_request"),
             ({"max_age": "-1"}, "invalid_request"),
             ({"response_mode": "fragment"}, "invalid_request"),
             ({"request": "eyJ"}, "request_not_supported"),
             ({"request_uri": "https://x"}, "request_uri_not_supported")]
    for extra, err in cases:
        r, p = b.authorize(pkce(), **extra)
        loc, q = location(r)
        assert loc.startswith(RP + "?"), extra
        assert q["error"] == err, (extra, q)
        assert q["state"] == p["state"] and q["iss"] == env.issuer(t)
    # a client not allowed the code grant
    c2 = env.client(t, type="confidential", grant_types=["client_credentials"])
    r, _ = Browser(env, t, c2).authorize(pkce())
    assert location(r)[1]["error"] == "unauthorized_client"


def test_reused_code_revokes_its_tokens(env, setup):
    t, _, uid, username = setup
    for fmt in ("jwt", "opaque"):
        c = env.client(t, type="confidential", token_format=fmt,
                       grant_types=["authorization_code", "refresh_token"])
        b = Browser(env, t, c)
        pair = pkce()
        r, _ = b.authorize(pair)
        if r.status_code == 200:
            r = b.login(r, username)
        _, q = location(r)
        first = b.token(q["code"], pair[0])
        assert first.status_code == 200, first.text
        tok = first.json()
        introspect = lambda tk: requests.post(env.issuer(t) + "/oauth2/introspect", data={"token": tk},
                                              auth=(c["client_id"], c["client_secret"]), timeout=10).json()
        assert introspect(tok["access_token"])["active"] is True
        assert introspect(tok["refresh_token"])["active"] is True
        again = b.token(q["code"], pair[0])
        assert again.status_code == 400 and again.json()["error"] == "invalid_grant", again.text
        assert introspect(tok["access_token"])["active"] is False, fmt
        assert introspect(tok["refresh_token"])["active"] is False, fmt
        r = requests.post(env.issuer(t) + "/oauth2/token", data={"grant_type": "refresh_token",
                                                                 "refresh_token": tok["refresh_token"]},
                          auth=(c["client_id"], c["client_secret"]), timeout=10)
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_code_bound_to_client_and_redirect(env, setup):
    t, c, uid, username = setup
    b = Browser(env, t, c)
    code, verifier, _ = b.sign_in(username)
    other = env.client(t)
    r = b.token(code, verifier, client=other)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    r = b.token(code, verifier, redirect_uri="https://rp.example/elsewhere")
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    r = b.token("x" * 43, verifier)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    # the failures above did not burn the code
    assert b.token(code, verifier).status_code == 200


def test_expired_code(env):
    t = env.tenant({"code_ttl": 1})
    c = env.client(t)
    uid, username = env.user(t)
    b = Browser(env, t, c)
    code, verifier, _ = b.sign_in(username)
    time.sleep(2.2)
    r = b.token(code, verifier)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert "expired" in r.json()["error_description"]


def test_missing_or_bad_csrf_token(env, setup):
    t, c, uid, username = setup
    b = Browser(env, t, c)
    r, _ = b.authorize(pkce())
    page = r
    for kwargs in ({"drop": ("csrf_token",)}, {"override": {"csrf_token": "A" * 43}}):
        r = b.login(page, username, **kwargs)
        assert r.status_code == 403, r.text
        assert "Location" not in r.headers and "expired" in r.text
        assert not any(ck.name.startswith("refuge_sid") for ck in b.s.cookies)
        assert "csrf_token" in Form(r.text).fields        # the form comes back, ready to retry
    # a token without its cookie (another browser) is refused too
    other = requests.Session()
    f = Form(page.text)
    data = dict(f.fields, username=username, password=PASSWORD)
    r = other.post(env.url + f.action, data=data, allow_redirects=False, timeout=10)
    assert r.status_code == 403
    # the re-rendered form works
    r = b.login(b.login(page, username, drop=("csrf_token",)), username)
    assert r.status_code == 302 and "code" in location(r)[1]


def test_prompt_none(env, setup):
    t, c, uid, username = setup
    b = Browser(env, t, c)
    r, p = b.authorize(pkce(), prompt="none")
    _, q = location(r)
    assert q["error"] == "login_required" and q["state"] == p["state"]
    b.sign_in(username)
    pair = pkce()
    r, _ = b.authorize(pair, prompt="none")
    _, q = location(r)
    assert "code" in q
    assert b.token(q["code"], pair[0]).status_code == 200


def test_prompt_login_and_max_age(env, setup):
    t, c, uid, username = setup
    b = Browser(env, t, c)
    b.sign_in(username)
    r, _ = b.authorize(pkce(), prompt="login")
    assert r.status_code == 200 and "csrf_token" in r.text
    time.sleep(2.1)
    r, _ = b.authorize(pkce(), max_age="1")
    assert r.status_code == 200 and "csrf_token" in r.text          # the session is too old
    r, _ = b.authorize(pkce(), max_age="1", prompt="none")
    assert location(r)[1]["error"] == "login_required"
    r, _ = b.authorize(pkce(), max_age="3600")
    assert r.status_code == 302 and "code" in location(r)[1]
    # signing in again: a new session with a new auth_time
    pair = pkce()
    r, _ = b.authorize(pair, max_age="1")
    _, q = location(b.login(r, username))
    _, idt, _ = jwt_parts(b.token(q["code"], pair[0]).json()["id_token"])
    assert time.time() - idt["auth_time"] < 2


def test_login_messages_do_not_reveal_users(env):
    generic = "The username or password is incorrect."

    def attempt(b, user, pw):
        r, _ = b.authorize(pkce())
        return b.login(r, user, pw)

    t = env.tenant()
    c = env.client(t)
    uid, username = env.user(t)
    _, disabled = env.user(t, active=False)
    b = Browser(env, t, c)
    r = attempt(b, "nobody-" + uuid.uuid4().hex[:6], PASSWORD)
    assert r.status_code == 401 and generic in r.text
    assert 'role="alert"' in r.text and 'aria-invalid="true"' in r.text
    r = attempt(b, username, "wrong")
    assert r.status_code == 401 and generic in r.text
    assert Form(r.text).fields["username"] == username          # kept for the retry
    r = attempt(b, disabled, "wrong")
    assert r.status_code == 401 and generic in r.text          # disabled is only told with the right password
    r = attempt(b, disabled, PASSWORD)
    assert r.status_code == 403 and "disabled" in r.text

    # lockout (a tenant of its own: the rate limit is per tenant and client IP)
    t = env.tenant({"lockout": {"max_failures": 3, "duration": 600}})
    c = env.client(t)
    uid, username = env.user(t)
    b = Browser(env, t, c)
    for _ in range(2):
        assert attempt(b, username, "wrong").status_code == 401
    r = attempt(b, username, "wrong")                          # the third failure locks
    assert r.status_code == 401 and generic in r.text and "locked" not in r.text
    with env.db() as db:
        assert db.execute("SELECT locked_until > ? FROM users WHERE tenant = ? AND id = ?",
                          (int(time.time()), t, uid)).fetchone()[0] == 1
    r = attempt(b, username, "wrong-again")                    # locked: a wrong password learns nothing
    assert r.status_code == 401 and generic in r.text and "locked" not in r.text
    r = attempt(b, username, PASSWORD)                         # the right one is told why
    assert r.status_code == 403 and "locked" in r.text
    assert not any(ck.name.startswith("refuge_sid") for ck in b.s.cookies)


def test_login_rate_limit(env):
    t = env.tenant()
    c = env.client(t)
    _, username = env.user(t)
    b = Browser(env, t, c)
    r, _ = b.authorize(pkce())
    page = r
    codes = [b.login(page, username, "wrong").status_code for _ in range(5)]
    assert codes == [401] * 5
    r = b.login(page, username)
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) >= 1
    assert "Too many" in r.text
    # another tenant is not affected
    t2 = env.tenant()
    c2 = env.client(t2)
    _, u2 = env.user(t2)
    Browser(env, t2, c2).sign_in(u2)


def test_sessions_are_per_tenant(env, setup):
    t, c, uid, username = setup
    b = Browser(env, t, c)
    b.sign_in(username)
    t2 = env.tenant()
    c2 = env.client(t2)
    b2 = Browser(env, t2, c2)
    b2.s = b.s                      # same browser, other tenant
    r, _ = b2.authorize(pkce(), prompt="none")
    assert location(r)[1]["error"] == "login_required"


def test_logout_with_hint(env, setup):
    t, c, uid, username = setup
    b = Browser(env, t, c)
    code, verifier, _ = b.sign_in(username)
    idt = b.token(code, verifier).json()["id_token"]
    r = b.s.get(env.issuer(t) + "/oidc/logout", params={"id_token_hint": idt, "state": "bye-1",
                                                        "post_logout_redirect_uri": "https://rp.example/bye"},
                allow_redirects=False, timeout=10)
    loc, q = location(r)
    assert loc.startswith("https://rp.example/bye?") and q == {"state": "bye-1"}
    assert "Max-Age=0" in r.headers["Set-Cookie"]
    assert not any(ck.name == "refuge_sid_" + t for ck in b.s.cookies)
    r, _ = b.authorize(pkce(), prompt="none")
    assert location(r)[1]["error"] == "login_required"
    with env.db() as db:
        assert db.execute("SELECT count(*) FROM sso_sessions WHERE tenant = ?", (t,)).fetchone()[0] == 0


def test_logout_rules(env, setup):
    t, c, uid, username = setup
    b = Browser(env, t, c)
    code, verifier, _ = b.sign_in(username)
    idt = b.token(code, verifier).json()["id_token"]
    url = env.issuer(t) + "/oidc/logout"
    # unregistered post_logout_redirect_uri: a page, no redirect, still signed in
    for bad in ({"id_token_hint": idt, "post_logout_redirect_uri": "https://evil.example/"},
                {"post_logout_redirect_uri": "https://rp.example/bye"},          # no client named
                {"id_token_hint": idt[:-4] + "AAAA"},                            # forged hint
                {"id_token_hint": idt, "client_id": "someone-else"}):
        r = b.s.get(url, params=bad, allow_redirects=False, timeout=10)
        assert r.status_code == 400 and "Location" not in r.headers, bad
    r, _ = b.authorize(pkce(), prompt="none")
    assert "code" in location(r)[1]
    # without a hint a GET only asks (no logout CSRF) ...
    r = b.s.get(url, params={"client_id": c["client_id"], "post_logout_redirect_uri": "https://rp.example/bye"},
                allow_redirects=False, timeout=10)
    assert r.status_code == 200 and "Sign out" in r.text
    r2, _ = b.authorize(pkce(), prompt="none")
    assert "code" in location(r2)[1]
    # ... a POST without the CSRF token asks again ...
    f = Form(r.text)
    data = dict(f.fields)
    data.pop("csrf_token")
    r3 = b.s.post(env.url + f.action, data=data, allow_redirects=False, timeout=10)
    assert r3.status_code == 200 and "Sign out" in r3.text
    # ... and the confirmed form signs out
    r = b.s.post(env.url + f.action, data=f.fields, allow_redirects=False, timeout=10)
    loc, q = location(r)
    assert loc == "https://rp.example/bye"
    r, _ = b.authorize(pkce(), prompt="none")
    assert location(r)[1]["error"] == "login_required"
    # signed out already: a plain GET just says so
    r = b.s.get(url, timeout=10)
    assert r.status_code == 200 and "signed out" in r.text


def test_post_logout_redirect_uris_admin(env):
    t = env.tenant()
    c = env.client(t, post_logout_redirect_uris=["https://rp.example/bye", "http://127.0.0.1:9/x?y=1"])
    assert c["post_logout_redirect_uris"] == ["https://rp.example/bye", "http://127.0.0.1:9/x?y=1"]
    url = env.issuer(t) + "/admin/v1/clients/" + c["client_id"]
    assert requests.get(url, headers=env.ah(), timeout=10).json()["post_logout_redirect_uris"] == \
        c["post_logout_redirect_uris"]
    for bad in (["javascript:alert(1)"], ["https://rp.example/bye#frag"], "https://x", ["https://a", "https://a"]):
        r = requests.post(env.issuer(t) + "/admin/v1/clients", headers=env.ah(), timeout=10,
                          json={"name": "x", "type": "public", "redirect_uris": [RP],
                                "grant_types": ["authorization_code"], "post_logout_redirect_uris": bad})
        assert r.status_code == 400 and "post_logout_redirect_uris" in r.json()["error_description"], (bad, r.text)
    # a client without any: every post_logout_redirect_uri is refused
    c2 = env.client(t, post_logout_redirect_uris=[])
    r = requests.get(env.issuer(t) + "/oidc/logout", params={"client_id": c2["client_id"],
                     "post_logout_redirect_uri": "https://rp.example/bye"}, allow_redirects=False, timeout=10)
    assert r.status_code == 400 and "Location" not in r.headers


def test_admin_sessions(env, setup):
    t, c, uid, username = setup
    b1, b2 = Browser(env, t, c), Browser(env, t, c)
    code, verifier, _ = b1.sign_in(username)
    sid1 = jwt_parts(b1.token(code, verifier).json()["id_token"])[1]["sid"]
    b2.sign_in(username)
    url = env.issuer(t) + "/admin/v1/users/%s/sessions" % uid
    assert requests.get(url, timeout=10).status_code == 401
    r = requests.get(url, headers=env.ah(), timeout=10)
    assert r.status_code == 200, r.text
    sessions = r.json()["sessions"]
    assert len(sessions) == 2 and sid1 in [s["sid"] for s in sessions]
    s = next(s for s in sessions if s["sid"] == sid1)
    assert s["user_id"] == uid and s["remote_addr"] == "127.0.0.1" and "python-requests" in s["user_agent"]
    assert s["expires_at"] - s["created_at"] == 28800
    # revoke one
    assert requests.delete(url + "/" + sid1, headers=env.ah(), timeout=10).status_code == 204
    assert requests.delete(url + "/" + sid1, headers=env.ah(), timeout=10).status_code == 404
    assert location(b1.authorize(pkce(), prompt="none")[0])[1]["error"] == "login_required"
    assert "code" in location(b2.authorize(pkce(), prompt="none")[0])[1]
    # revoke all
    assert requests.delete(url, headers=env.ah(), timeout=10).status_code == 204
    assert requests.get(url, headers=env.ah(), timeout=10).json()["sessions"] == []
    assert location(b2.authorize(pkce(), prompt="none")[0])[1]["error"] == "login_required"
    assert requests.get(env.issuer(t) + "/admin/v1/users/nobody/sessions", headers=env.ah(),
                        timeout=10).status_code == 404


def test_disabled_user_loses_sso(env, setup):
    t, c, uid, username = setup
    b = Browser(env, t, c)
    code, verifier, _ = b.sign_in(username)
    with env.db() as db:
        db.execute("UPDATE users SET active = 0 WHERE tenant = ? AND id = ?", (t, uid))
    assert b.token(code, verifier).json()["error"] == "invalid_grant"
    assert location(b.authorize(pkce(), prompt="none")[0])[1]["error"] == "login_required"


def write_artifact(env, tenant, text):
    """Saves tenants/NAME.conf in the node's artifact directory, as an operator would."""
    d = os.path.join(env.node.conf.get("artifacts", {}).get("dir") or os.path.join(env.node.data_dir, "artifacts"),
                     "tenants")
    os.makedirs(d, exist_ok=True)
    tmp = os.path.join(d, ".%s.tmp" % tenant)
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, os.path.join(d, "%s.conf" % tenant))


def page_when(fn, pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        r = fn()
        if pred(r) or time.monotonic() > deadline:
            return r
        time.sleep(0.1)


def test_branding_and_escaping(env):
    t = env.tenant()
    c = env.client(t, name="<script>alert(1)</script> & co")
    b = Browser(env, t, c)
    r, _ = b.authorize(pkce())
    assert "--brand:#1f6feb" in r.text and "Tenant " + t in r.text        # defaults, display name as title
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in r.text and "<script>" not in r.text
    write_artifact(env, t, "[tenant]\ndisplay_name = Acme\n\n[branding]\ntitle = Acme \"Cloud\" <b>\n"
                           "primary_color = #aa3300\nlogo_url = https://cdn.acme.example/logo.png\n"
                           "footer_text = Acme Corp. All rights reserved.\n")
    r = page_when(lambda: b.authorize(pkce())[0], lambda r: "#aa3300" in r.text)
    assert r.status_code == 200
    assert "<script>" not in r.text and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in r.text
    assert "Acme &quot;Cloud&quot; &lt;b&gt;" in r.text
    assert "--brand:#aa3300" in r.text
    assert 'src="https://cdn.acme.example/logo.png"' in r.text
    assert "Acme Corp. All rights reserved." in r.text
    assert "img-src 'self' https://cdn.acme.example" in r.headers["Content-Security-Policy"]
    # error pages carry the branding too
    r, _ = b.authorize(pkce(), redirect_uri="https://evil.example/")
    assert r.status_code == 400 and "--brand:#aa3300" in r.text


# ------------------------------------------------------------- failover

def wait_for(fn, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except (requests.RequestException, sqlite3.Error, KeyError, ValueError) as e:
            last = e
        time.sleep(0.05)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


def start_pair(workdir, replicate_sessions):
    """Active A and standby B replicating over plaintext loopback behind one
    public URL (as behind the front door): the issuer is the same on both."""
    pa, pb = free_port(), free_port()
    public = {"public_url": "http://refuge.test"}
    repl = lambda me, peer: {"listen": "127.0.0.1:%d" % me, "peer": "127.0.0.1:%d" % peer,
                             "insecure_plaintext": True, "replicate_sessions": replicate_sessions}
    a = Node(workdir, name="a", region="region-a", extra={"http": public, "replication": repl(pa, pb)})
    a.start()
    b = Node(workdir, name="b", region="region-b", role="standby",
             extra={"http": public, "replication": repl(pb, pa)})
    shutil.copy(os.path.join(a.data_dir, "master.key"), os.path.join(b.data_dir, "master.key"))
    os.chmod(os.path.join(b.data_dir, "master.key"), 0o600)
    b.start()
    return a, b


def standby_count(node, sql, args):
    con = sqlite3.connect("file:%s?mode=ro" % os.path.join(node.data_dir, "refuge.db"), uri=True, timeout=5)
    try:
        return con.execute(sql, args).fetchone()[0]
    finally:
        con.close()


def failover(a, b, admin):
    a.kill()                                           # region A is lost
    r = requests.post(b.url + "/admin/v1/node/promote", headers={"Authorization": "Bearer " + admin}, timeout=30)
    assert r.status_code == 200, r.text
    wait_for(lambda: requests.get(b.url + "/health/ready", timeout=2).status_code == 200, what="B active")


@pytest.mark.parametrize("replicate_sessions", [True, False])
def test_session_and_failover(tmp_path, replicate_sessions):
    a, b = start_pair(str(tmp_path), replicate_sessions)
    try:
        env = Env(a)
        t = env.tenant()
        c = env.client(t)
        uid, username = env.user(t)
        browser = Browser(env, t, c)
        code, verifier, _ = browser.sign_in(username)
        tok = browser.token(code, verifier)
        assert tok.status_code == 200, tok.text
        _, idt, _ = jwt_parts(tok.json()["id_token"])
        assert idt["iss"] == "http://refuge.test/t/" + t
        cookie = next(ck.value for ck in browser.s.cookies if ck.name == "refuge_sid_" + t)
        id_hash = hashlib.sha256(cookie.encode()).hexdigest()

        # a write after the sign-in: once B has it, B has everything before it
        marker = env.client(t, name="marker")
        wait_for(lambda: standby_count(b, "SELECT count(*) FROM clients WHERE client_id = ?",
                                       (marker["client_id"],)) == 1, what="replication caught up")
        assert standby_count(b, "SELECT count(*) FROM users WHERE id = ?", (uid,)) == 1
        on_b = standby_count(b, "SELECT count(*) FROM sso_sessions WHERE id_hash = ?", (id_hash,))
        assert on_b == (1 if replicate_sessions else 0)

        # the standby serves pages but cannot issue a code (read-only store)
        browser.use(b.url)
        r, _ = browser.authorize(pkce(), prompt="none")
        _, q = location(r)
        assert q["error"] == ("temporarily_unavailable" if replicate_sessions else "login_required"), q

        failover(a, b, env.admin())

        pair = pkce()
        r, p = browser.authorize(pair, prompt="none")
        _, q = location(r)
        if replicate_sessions:
            # still signed in: same session, same auth_time, no password asked
            assert "code" in q and q["state"] == p["state"], q
            tok = browser.token(q["code"], pair[0])
            assert tok.status_code == 200, tok.text
            _, idt2, _ = jwt_parts(tok.json()["id_token"])
            assert idt2["sid"] == idt["sid"] and idt2["auth_time"] == idt["auth_time"] and idt2["sub"] == uid
        else:
            # the session did not survive: sign in again, which works on B
            assert q["error"] == "login_required"
            code, verifier, _ = browser.sign_in(username)
            tok = browser.token(code, verifier)
            assert tok.status_code == 200, tok.text
            _, idt2, _ = jwt_parts(tok.json()["id_token"])
            assert idt2["sid"] != idt["sid"] and idt2["sub"] == uid
    except AssertionError as e:
        raise AssertionError("%s\n--- region A ---\n%s\n--- region B ---\n%s" % (e, a.tail(15), b.tail(15))) from e
    finally:
        b.kill()
        a.kill()


# ----------------------------------------------------------- Secure cookies

def test_cookies_secure_under_tls(tmp_path, monkeypatch):
    """Over TLS the session and CSRF cookies are Secure; so they are behind a
    TLS-terminating front door (https public_url), even on a plain listener."""
    crt, key = str(tmp_path / "http.crt"), str(tmp_path / "http.key")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", key, "-out", crt, "-days", "1", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", crt)       # requests (and Node.wait_live) trust it
    tls = Node(str(tmp_path), name="tls", extra={"http": {"tls_cert": crt, "tls_key": key}})
    tls.url = "https://127.0.0.1:%d" % tls.port
    proxied = Node(str(tmp_path), name="proxied", extra={"http": {"public_url": "https://idp.example"}})
    try:
        for node in (tls.start(), proxied.start()):
            env = Env(node)
            t = env.tenant()
            c = env.client(t)
            _, username = env.user(t)
            b = Browser(env, t, c)
            r, _ = b.authorize(pkce())
            assert r.status_code == 200
            csrf = r.headers["Set-Cookie"]
            assert csrf.startswith("refuge_csrf_%s=" % t) and "; Secure" in csrf, csrf
            if node is proxied:
                # a client keeps Secure cookies off plain http: here the TLS
                # hop is the proxy's, so send the cookie as it would
                f = Form(r.text)
                cookie = csrf.split(";")[0]
                r = requests.post(node.url + f.action, data=dict(f.fields, username=username, password=PASSWORD),
                                  headers={"Cookie": cookie}, allow_redirects=False, timeout=30)
            else:
                r = b.login(r, username)
            assert r.status_code == 302, r.text
            sid = r.headers["Set-Cookie"]
            assert sid.startswith("refuge_sid_%s=" % t) and "; Secure" in sid and "HttpOnly" in sid, sid
    finally:
        tls.kill()
        proxied.kill()
