"""OAuth 2.0 / OpenID Connect endpoints of a real refuged: discovery, JWKS,
the token endpoint (client_credentials, password, refresh_token) and its
RFC 6749 errors, JWT and opaque access tokens, ID tokens, userinfo,
introspection (RFC 7662), revocation (RFC 7009), forged and expired tokens,
key rotation and the purge job.

Clients and tenants are made through the admin API. Users for the password
grant are written straight into the node's SQLite file (SCIM comes later),
with password hashes made by the node's own `refuged --hash-password`.
"""
import base64
import hashlib
import hmac
import json
import os
import sqlite3
import subprocess
import time
import uuid

import pytest
import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from refuge import REFUGED, Node

PASSWORD = "correct horse battery staple"


# --------------------------------------------------------------- helpers

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
    assert key["kty"] == "EC" and key["crv"] == "P-256"
    pub = ec.EllipticCurvePublicNumbers(int.from_bytes(b64d(key["x"]), "big"),
                                        int.from_bytes(b64d(key["y"]), "big"), ec.SECP256R1()).public_key()
    assert len(sig) == 64
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    signing_input = tok.rsplit(".", 1)[0].encode()
    pub.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))


def hash_password(pw):
    r = subprocess.run([REFUGED, "--hash-password"], input=pw, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    out = r.stdout.strip()
    assert out.startswith("$argon2id$")
    return out


class Env:
    """A running node plus helpers bound to it."""

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
        r = self.node.post("/admin/v1/tenants", json=body, headers=self.ah())
        assert r.status_code == 201, r.text
        return name

    def client(self, tenant=None, **fields):
        body = {"name": "app", "type": "confidential", "grant_types": ["client_credentials"],
                "scopes": ["api:read", "api:write"], "default_scopes": ["api:read"], "token_format": "jwt"}
        body.update(fields)
        r = self.node.post(self.prefix(tenant) + "/admin/v1/clients", json=body, headers=self.ah())
        assert r.status_code == 201, r.text
        return r.json()

    @staticmethod
    def prefix(tenant):
        return "/t/%s" % tenant if tenant else ""

    def issuer(self, tenant=None):
        return self.url + self.prefix(tenant)

    def token(self, tenant=None, client=None, data=None, basic=True, **kw):
        data = dict(data or {})
        auth = None
        if client is not None:
            if basic and client.get("client_secret"):
                auth = (client["client_id"], client["client_secret"])
            else:
                data.setdefault("client_id", client["client_id"])
                if client.get("client_secret"):
                    data.setdefault("client_secret", client["client_secret"])
        return self.node.post(self.prefix(tenant) + "/oauth2/token", data=data, auth=auth, **kw)

    def cc(self, tenant=None, client=None, scope=None):
        data = {"grant_type": "client_credentials"}
        if scope is not None:
            data["scope"] = scope
        r = self.token(tenant, client, data)
        assert r.status_code == 200, r.text
        return r.json()

    def introspect(self, tok, tenant=None, client=None, hint=None):
        data = {"token": tok}
        if hint:
            data["token_type_hint"] = hint
        return self.node.post(self.prefix(tenant) + "/oauth2/introspect", data=data,
                              auth=(client["client_id"], client["client_secret"]))

    def active(self, tok, tenant=None, client=None, hint=None):
        r = self.introspect(tok, tenant, client, hint)
        assert r.status_code == 200, r.text
        return r.json()["active"]

    def revoke(self, tok, tenant=None, client=None, hint=None):
        data = {"token": tok}
        if hint:
            data["token_type_hint"] = hint
        if client.get("client_secret"):
            return self.node.post(self.prefix(tenant) + "/oauth2/revoke", data=data,
                                  auth=(client["client_id"], client["client_secret"]))
        data["client_id"] = client["client_id"]
        return self.node.post(self.prefix(tenant) + "/oauth2/revoke", data=data)

    def userinfo(self, tok, tenant=None, method="GET"):
        return self.node.request(method, self.prefix(tenant) + "/oauth2/userinfo",
                                 headers={"Authorization": "Bearer " + tok})

    def jwks(self, tenant=None):
        r = self.node.get(self.prefix(tenant) + "/oauth2/jwks")
        assert r.status_code == 200
        return r.json()

    def db(self):
        c = sqlite3.connect(os.path.join(self.node.data_dir, "refuge.db"), timeout=10)
        c.execute("PRAGMA busy_timeout = 10000")
        return c

    def user(self, tenant="default", username=None, data=None, active=True):
        if self._hash is None:
            self._hash = hash_password(PASSWORD)
        username = username or "user-" + uuid.uuid4().hex[:8]
        uid = str(uuid.uuid4())
        now = int(time.time())
        doc = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": uid, "userName": username}
        doc.update(data or {})
        with self.db() as c:
            c.execute("INSERT INTO users (tenant, id, user_name, user_name_lc, active, password_hash, data,"
                      " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      (tenant, uid, username, username.lower(), 1 if active else 0, self._hash, json.dumps(doc),
                       now, now))
        return uid, username

    def password(self, tenant=None, client=None, username=None, password=PASSWORD, scope=None, basic=True):
        data = {"grant_type": "password", "username": username, "password": password}
        if scope is not None:
            data["scope"] = scope
        return self.token(tenant, client, data, basic=basic)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    node = Node(str(tmp_path_factory.mktemp("oauth")), extra={"store": {"token_purge_interval_ms": "300ms"}})
    node.start()
    yield Env(node)
    # a clean shutdown: purge thread and password workers stop, nothing leaks (under ASan)
    assert node.stop() == 0, node.tail()


def assert_oauth_error(r, status, code):
    assert r.status_code == status, r.text
    assert r.json()["error"] == code, r.text
    assert r.headers["Cache-Control"] == "no-store"
    assert r.headers["Pragma"] == "no-cache"


# -------------------------------------------------------------- discovery

def test_discovery_fields(env):
    for path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
        r = env.node.get(path)
        assert r.status_code == 200
        m = r.json()
        iss = env.url
        assert m["issuer"] == iss
        assert m["token_endpoint"] == iss + "/oauth2/token"
        assert m["jwks_uri"] == iss + "/oauth2/jwks"
        assert m["introspection_endpoint"] == iss + "/oauth2/introspect"
        assert m["revocation_endpoint"] == iss + "/oauth2/revoke"
        assert m["userinfo_endpoint"] == iss + "/oauth2/userinfo"
        assert m["grant_types_supported"] == ["authorization_code", "client_credentials", "password",
                                              "refresh_token"]
        assert m["token_endpoint_auth_methods_supported"] == ["client_secret_basic", "client_secret_post", "none"]
        assert m["introspection_endpoint_auth_methods_supported"] == ["client_secret_basic",
                                                                      "client_secret_post"]
        assert m["revocation_endpoint_auth_methods_supported"] == ["client_secret_basic", "client_secret_post"]
        assert m["subject_types_supported"] == ["public"]
        assert m["id_token_signing_alg_values_supported"] == ["ES256"]
        assert {"openid", "profile", "email"} <= set(m["scopes_supported"])
        assert {"sub", "iss", "email", "name"} <= set(m["claims_supported"])
        # nothing advertised that is not implemented
        assert m["authorization_endpoint"] == iss + "/oauth2/authorize"
        assert m["end_session_endpoint"] == iss + "/oidc/logout"
        assert m["response_types_supported"] == ["code"]
        assert "registration_endpoint" not in m
        assert "implicit" not in m["grant_types_supported"]


def test_discovery_per_tenant(env):
    t = env.tenant({"grant_types": ["client_credentials"]})
    m = env.node.get("/t/%s/.well-known/openid-configuration" % t).json()
    assert m["issuer"] == env.url + "/t/" + t
    assert m["token_endpoint"] == env.url + "/t/" + t + "/oauth2/token"
    # only what the tenant allows
    assert m["grant_types_supported"] == ["client_credentials"]
    # RFC 8414 §3 path insertion form, and the suffix form, say the same
    a = env.node.get("/.well-known/oauth-authorization-server/t/%s" % t).json()
    b = env.node.get("/t/%s/.well-known/oauth-authorization-server" % t).json()
    assert a == b == m
    assert env.node.get("/t/nosuchtenant/.well-known/openid-configuration").status_code == 404
    assert env.node.get("/.well-known/oauth-authorization-server/t/nosuchtenant").status_code == 404


def test_jwks(env):
    jwks = env.jwks()
    assert len(jwks["keys"]) >= 1
    for k in jwks["keys"]:
        assert k["kty"] == "EC" and k["alg"] == "ES256" and k["use"] == "sig" and k["kid"]
        assert "d" not in k
    t = env.tenant()
    tk = env.jwks(t)
    assert {k["kid"] for k in tk["keys"]}.isdisjoint({k["kid"] for k in jwks["keys"]})


# ------------------------------------------------------ client_credentials

def test_client_credentials_jwt(env):
    c = env.client()
    r = env.token(None, c, {"grant_type": "client_credentials", "scope": "api:write"})
    assert r.status_code == 200, r.text
    assert r.headers["Cache-Control"] == "no-store"
    assert r.headers["Pragma"] == "no-cache"
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "api:write"
    assert body["expires_in"] == 3600
    assert "refresh_token" not in body and "id_token" not in body
    header, claims, _ = jwt_parts(body["access_token"])
    assert header["typ"] == "at+jwt" and header["alg"] == "ES256"
    assert header["kid"] in {k["kid"] for k in env.jwks()["keys"]}
    verify_es256(body["access_token"], env.jwks())
    assert claims["iss"] == env.url and claims["aud"] == env.url
    assert claims["sub"] == c["client_id"] and claims["client_id"] == c["client_id"]
    assert claims["scope"] == "api:write"
    assert claims["exp"] - claims["iat"] == 3600
    assert abs(claims["iat"] - time.time()) < 60
    uuid.UUID(claims["jti"])
    assert "auth_time" not in claims
    # two tokens never share a jti
    assert jwt_parts(env.cc(None, c)["access_token"])[1]["jti"] != claims["jti"]


def test_client_secret_post_and_default_scopes(env):
    c = env.client()
    r = env.token(None, c, {"grant_type": "client_credentials"}, basic=False)
    assert r.status_code == 200, r.text
    assert r.json()["scope"] == "api:read"             # default_scopes
    assert jwt_parts(r.json()["access_token"])[1]["scope"] == "api:read"
    r = env.token(None, c, {"grant_type": "client_credentials", "scope": "api:read api:write"}, basic=False)
    assert r.json()["scope"] == "api:read api:write"


def test_client_credentials_in_tenant(env):
    t = env.tenant({"access_token_ttl": 120})
    c = env.client(t)
    body = env.cc(t, c)
    assert body["expires_in"] == 120
    claims = jwt_parts(body["access_token"])[1]
    assert claims["iss"] == env.url + "/t/" + t and claims["aud"] == claims["iss"]
    verify_es256(body["access_token"], env.jwks(t))
    # the client belongs to t: unknown at the root
    assert_oauth_error(env.token(None, c, {"grant_type": "client_credentials"}), 401, "invalid_client")
    # client lifetime override wins over the tenant's
    c2 = env.client(t, access_token_ttl=60)
    assert env.cc(t, c2)["expires_in"] == 60


def test_wrong_secret(env):
    c = env.client()
    r = env.node.post("/oauth2/token", data={"grant_type": "client_credentials"},
                      auth=(c["client_id"], c["client_secret"] + "x"))
    assert_oauth_error(r, 401, "invalid_client")
    assert r.headers["WWW-Authenticate"].startswith("Basic realm=")
    r = env.node.post("/oauth2/token", data={"grant_type": "client_credentials", "client_id": c["client_id"],
                                             "client_secret": "nope"})
    assert_oauth_error(r, 401, "invalid_client")
    # unknown client: the same answer
    r = env.node.post("/oauth2/token", data={"grant_type": "client_credentials"}, auth=("no-such-client", "x"))
    assert_oauth_error(r, 401, "invalid_client")
    assert "WWW-Authenticate" in r.headers


def test_missing_client_auth(env):
    r = env.node.post("/oauth2/token", data={"grant_type": "client_credentials"})
    assert_oauth_error(r, 401, "invalid_client")
    # a confidential client that presents only its id is not authenticated
    c = env.client()
    r = env.node.post("/oauth2/token", data={"grant_type": "client_credentials", "client_id": c["client_id"]})
    assert_oauth_error(r, 401, "invalid_client")
    # a secret without an id
    r = env.node.post("/oauth2/token", data={"grant_type": "client_credentials", "client_secret": "x"})
    assert_oauth_error(r, 400, "invalid_request")


def test_malformed_basic(env):
    for h in ("Basic !!!", "Basic " + base64.b64encode(b"nocolon").decode(), "Digest abc"):
        r = env.node.post("/oauth2/token", data={"grant_type": "client_credentials"}, headers={"Authorization": h})
        assert_oauth_error(r, 401, "invalid_client")
        assert r.headers["WWW-Authenticate"].startswith("Basic")


def test_basic_credentials_are_form_encoded(env):
    # RFC 6749 §2.3.1: id and secret are application/x-www-form-urlencoded inside Basic;
    # our secrets are base64url (no reserved characters) but an encoded one must decode the same.
    c = env.client()
    enc = "".join("%%%02X" % b for b in c["client_secret"].encode())
    cred = base64.b64encode(("%s:%s" % (c["client_id"], enc)).encode()).decode()
    r = env.node.post("/oauth2/token", data={"grant_type": "client_credentials"},
                      headers={"Authorization": "Basic " + cred})
    assert r.status_code == 200, r.text


def test_both_auth_methods(env):
    c = env.client()
    r = env.node.post("/oauth2/token", data={"grant_type": "client_credentials",
                                             "client_secret": c["client_secret"]},
                      auth=(c["client_id"], c["client_secret"]))
    assert_oauth_error(r, 400, "invalid_request")


def test_unsupported_grant(env):
    c = env.client()
    for g in ("implicit", "urn:ietf:params:oauth:grant-type:device_code", "foo"):
        r = env.token(None, c, {"grant_type": g, "code": "x"})
        assert_oauth_error(r, 400, "unsupported_grant_type")
    # implemented, but not for this client (test_authorize.py covers the grant)
    r = env.token(None, c, {"grant_type": "authorization_code", "code": "x"})
    assert_oauth_error(r, 400, "unauthorized_client")
    r = env.token(None, c, {"scope": "api:read"})
    assert_oauth_error(r, 400, "invalid_request")


def test_invalid_scope(env):
    c = env.client()
    r = env.token(None, c, {"grant_type": "client_credentials", "scope": "api:read admin"})
    assert_oauth_error(r, 400, "invalid_scope")
    r = env.token(None, c, {"grant_type": "client_credentials", "scope": 'bad"scope'})
    assert_oauth_error(r, 400, "invalid_scope")
    r = env.token(None, c, {"grant_type": "client_credentials", "scope": "a  b"})
    assert_oauth_error(r, 400, "invalid_scope")


def test_duplicate_params(env):
    c = env.client()
    body = "grant_type=client_credentials&scope=api:read&scope=api:write"
    r = env.node.post("/oauth2/token", data=body, auth=(c["client_id"], c["client_secret"]),
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_oauth_error(r, 400, "invalid_request")
    assert "scope" in r.json()["error_description"]
    body = "grant_type=client_credentials&grant_type=client_credentials"
    r = env.node.post("/oauth2/token", data=body, auth=(c["client_id"], c["client_secret"]),
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_oauth_error(r, 400, "invalid_request")


def test_wrong_content_type(env):
    c = env.client()
    r = env.node.post("/oauth2/token", json={"grant_type": "client_credentials"},
                      auth=(c["client_id"], c["client_secret"]))
    assert_oauth_error(r, 400, "invalid_request")
    r = env.node.get("/oauth2/token")
    assert r.status_code == 405


def test_unauthorized_client(env):
    # the client does not have the grant
    c = env.client(grant_types=["password"])
    r = env.token(None, c, {"grant_type": "client_credentials"})
    assert_oauth_error(r, 400, "unauthorized_client")
    # the tenant does not allow the grant
    t = env.tenant({"grant_types": ["password", "refresh_token"]})
    c = env.client(t)
    r = env.token(t, c, {"grant_type": "client_credentials"})
    assert_oauth_error(r, 400, "unauthorized_client")
    # public clients never use client_credentials (the admin API refuses to configure it)
    p = env.client(type="public", grant_types=["password"])
    r = env.token(None, p, {"grant_type": "client_credentials"}, basic=False)
    assert_oauth_error(r, 400, "unauthorized_client")


# --------------------------------------------------------------- opaque

def test_opaque_tokens(env):
    c = env.client(token_format="opaque")
    body = env.cc(None, c, "api:write")
    tok = body["access_token"]
    assert "." not in tok and len(tok) == 43
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    # stored hashed, never in clear
    with env.db() as db:
        rows = db.execute("SELECT token_hash, client_id, scope FROM opaque_tokens WHERE token_hash = ?",
                          (hashlib.sha256(tok.encode()).hexdigest(),)).fetchall()
        assert rows and rows[0][1] == c["client_id"] and rows[0][2] == "api:write"
        assert db.execute("SELECT count(*) FROM opaque_tokens WHERE token_hash = ?", (tok,)).fetchone()[0] == 0
    r = env.introspect(tok, client=c)
    info = r.json()
    assert info["active"] is True
    assert info["client_id"] == c["client_id"] and info["sub"] == c["client_id"]
    assert info["scope"] == "api:write" and info["token_type"] == "Bearer"
    assert info["iss"] == env.url and info["exp"] - info["iat"] == 3600
    # a JWT client of the same node still gets JWTs
    j = env.client()
    assert env.cc(None, j)["access_token"].count(".") == 2


# ---------------------------------------------------------- introspection

def test_introspection_jwt(env):
    c = env.client()
    rs = env.client(grant_types=["client_credentials"])          # a resource server
    tok = env.cc(None, c, "api:read")["access_token"]
    r = env.introspect(tok, client=rs)
    assert r.status_code == 200
    assert r.headers["Cache-Control"] == "no-store"
    info = r.json()
    claims = jwt_parts(tok)[1]
    assert info["active"] is True
    for k in ("scope", "client_id", "sub", "exp", "iat", "iss", "jti"):
        assert info[k] == claims[k], k
    assert info["aud"] == env.url and info["token_type"] == "Bearer"


def test_introspection_requires_client_auth(env):
    c = env.client()
    tok = env.cc(None, c)["access_token"]
    r = env.node.post("/oauth2/introspect", data={"token": tok})
    assert_oauth_error(r, 401, "invalid_client")
    r = env.node.post("/oauth2/introspect", data={"token": tok}, auth=(c["client_id"], "wrong"))
    assert_oauth_error(r, 401, "invalid_client")
    p = env.client(type="public", grant_types=["password"])
    r = env.node.post("/oauth2/introspect", data={"token": tok, "client_id": p["client_id"]})
    assert_oauth_error(r, 401, "invalid_client")
    r = env.node.post("/oauth2/introspect", data={}, auth=(c["client_id"], c["client_secret"]))
    assert_oauth_error(r, 400, "invalid_request")


def test_introspection_unknown_and_garbage(env):
    c = env.client()
    for tok in ("nope", "a.b.c", "x" * 43, "eyJhbGciOiJFUzI1NiJ9.e30.AAAA", "." * 2, "é"):
        assert env.active(tok, client=c) is False, tok


def test_introspection_other_tenant(env):
    t1, t2 = env.tenant(), env.tenant()
    c1, c2 = env.client(t1), env.client(t2)
    tok = env.cc(t1, c1)["access_token"]
    assert env.active(tok, t1, c1) is True
    assert env.active(tok, t2, c2) is False
    o1 = env.client(t1, token_format="opaque")
    otok = env.cc(t1, o1)["access_token"]
    assert env.active(otok, t1, c1) is True
    assert env.active(otok, t2, c2) is False


# ------------------------------------------------------- forged tokens

def forged_tokens(env, c):
    tok = env.cc(None, c, "api:read")["access_token"]
    h, p, s = tok.split(".")
    header, claims, _ = jwt_parts(tok)
    out = {}
    # alg none, with and without a signature part
    nh = b64e(json.dumps({"alg": "none", "typ": "at+jwt", "kid": header["kid"]}).encode())
    out["alg_none"] = "%s.%s." % (nh, p)
    out["alg_none_sig"] = "%s.%s.%s" % (nh, p, s)
    # HS256 "signed" with the public key (the classic key-confusion attack)
    jwk = next(k for k in env.jwks()["keys"] if k["kid"] == header["kid"])
    hh = b64e(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": header["kid"]}).encode())
    for name, secret in (("hs256_jwk", json.dumps(jwk).encode()),
                         ("hs256_x", b64d(jwk["x"]) + b64d(jwk["y"])),
                         ("hs256_jwk_sorted", json.dumps(jwk, sort_keys=True, separators=(",", ":")).encode())):
        sig = hmac.new(secret, ("%s.%s" % (hh, p)).encode(), hashlib.sha256).digest()
        out[name] = "%s.%s.%s" % (hh, p, b64e(sig))
    # tampered payload, original signature
    evil = dict(claims, scope="api:read api:write refuge:admin")
    out["tampered"] = "%s.%s.%s" % (h, b64e(json.dumps(evil).encode()), s)
    # tampered header (typ changed)
    out["tampered_header"] = "%s.%s.%s" % (b64e(json.dumps(dict(header, typ="JWT")).encode()), p, s)
    # flipped signature byte
    sb = bytearray(b64d(s))
    sb[5] ^= 1
    out["bad_sig"] = "%s.%s.%s" % (h, p, b64e(bytes(sb)))
    # unknown kid
    out["unknown_kid"] = "%s.%s.%s" % (b64e(json.dumps(dict(header, kid="nokid")).encode()), p, s)
    return tok, out


def test_forged_tokens_rejected(env):
    c = env.client()
    tok, forged = forged_tokens(env, c)
    assert env.active(tok, client=c) is True
    for name, f in forged.items():
        assert env.active(f, client=c) is False, name


def test_forged_tokens_rejected_by_userinfo(env):
    pc = env.client(grant_types=["password"], scopes=["openid", "profile"], default_scopes=["openid"])
    _, username = env.user()
    tok = env.password(None, pc, username).json()["access_token"]
    assert env.userinfo(tok).status_code == 200
    h, p, s = tok.split(".")
    header, claims, _ = jwt_parts(tok)
    nh = b64e(json.dumps({"alg": "none", "typ": "at+jwt", "kid": header["kid"]}).encode())
    jwk = next(k for k in env.jwks()["keys"] if k["kid"] == header["kid"])
    hh = b64e(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": header["kid"]}).encode())
    hs = hmac.new(json.dumps(jwk).encode(), ("%s.%s" % (hh, p)).encode(), hashlib.sha256).digest()
    evil = dict(claims, sub=str(uuid.uuid4()))
    for f in ("%s.%s." % (nh, p), "%s.%s.%s" % (hh, p, b64e(hs)),
              "%s.%s.%s" % (h, b64e(json.dumps(evil).encode()), s)):
        r = env.userinfo(f)
        assert r.status_code == 401
        assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]


def test_expired_tokens_rejected(env):
    t = env.tenant({"access_token_ttl": 1})
    c = env.client(t, scopes=["openid", "api:read"], default_scopes=["openid"],
                   grant_types=["client_credentials", "password"])
    o = env.client(t, token_format="opaque")
    uid, username = env.user(t)
    jwt_tok = env.cc(t, c)["access_token"]
    op_tok = env.cc(t, o)["access_token"]
    user_tok = env.password(t, c, username).json()["access_token"]
    assert env.active(jwt_tok, t, c) and env.active(op_tok, t, c)
    assert env.userinfo(user_tok, t).status_code == 200
    time.sleep(2.2)
    assert env.active(jwt_tok, t, c) is False
    assert env.active(op_tok, t, c) is False
    r = env.userinfo(user_tok, t)
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["WWW-Authenticate"]


# -------------------------------------------------------------- rotation

def test_key_rotation_keeps_old_tokens_verifiable(env):
    t = env.tenant()
    c = env.client(t)
    old = env.cc(t, c)["access_token"]
    old_kid = jwt_parts(old)[0]["kid"]
    r = env.node.post("/t/%s/admin/v1/keys/rotate" % t, json={}, headers=env.ah())
    assert r.status_code in (200, 201), r.text
    new = env.cc(t, c)["access_token"]
    new_kid = jwt_parts(new)[0]["kid"]
    assert new_kid != old_kid
    kids = {k["kid"] for k in env.jwks(t)["keys"]}
    assert {old_kid, new_kid} <= kids
    assert env.active(old, t, c) is True
    assert env.active(new, t, c) is True
    verify_es256(old, env.jwks(t))
    verify_es256(new, env.jwks(t))


# -------------------------------------------------------------- password

def pw_client(env, tenant=None, **kw):
    fields = dict(grant_types=["password", "refresh_token"],
                  scopes=["openid", "profile", "email", "phone", "address", "api:read", "api:write"],
                  default_scopes=["openid", "api:read"])
    fields.update(kw)
    return env.client(tenant, **fields)


def test_password_grant(env):
    c = pw_client(env)
    uid, username = env.user(data={"name": {"givenName": "Ada", "familyName": "Lovelace",
                                            "formatted": "Ada Lovelace"},
                                   "emails": [{"value": "other@example.com"},
                                              {"value": "ada@example.com", "primary": True}],
                                   "phoneNumbers": [{"value": "+44 1"}], "locale": "en-GB"})
    t0 = int(time.time())
    r = env.password(None, c, username.upper(), scope="openid profile email")   # user names ignore case
    assert r.status_code == 200, r.text
    assert r.headers["Cache-Control"] == "no-store" and r.headers["Pragma"] == "no-cache"
    body = r.json()
    assert body["scope"] == "openid profile email"
    assert len(body["refresh_token"]) == 43
    at = jwt_parts(body["access_token"])[1]
    assert at["sub"] == uid and at["client_id"] == c["client_id"] and abs(at["auth_time"] - t0) <= 2
    verify_es256(body["access_token"], env.jwks())
    ih, idt, _ = jwt_parts(body["id_token"])
    assert ih["typ"] == "JWT"
    verify_es256(body["id_token"], env.jwks())
    assert idt["iss"] == env.url and idt["sub"] == uid and idt["aud"] == c["client_id"]
    assert idt["exp"] - idt["iat"] == 3600 and abs(idt["auth_time"] - t0) <= 2
    assert idt["name"] == "Ada Lovelace" and idt["given_name"] == "Ada" and idt["family_name"] == "Lovelace"
    assert idt["preferred_username"] == username and idt["locale"] == "en-GB"
    assert idt["email"] == "ada@example.com"
    assert "phone_number" not in idt            # phone scope not granted
    # an ID token is not an access token (typ JWT, aud = client): refused as one
    assert env.userinfo(body["id_token"]).status_code == 401
    assert env.active(body["id_token"], client=c) is False
    assert env.userinfo(body["access_token"]).status_code == 200
    # without openid: no ID token
    r = env.password(None, c, username, scope="api:read")
    assert r.status_code == 200 and "id_token" not in r.json()
    # default scopes
    assert env.password(None, c, username).json()["scope"] == "openid api:read"


def test_password_grant_errors(env):
    c = pw_client(env)
    _, username = env.user()
    _, inactive = env.user(active=False)
    assert_oauth_error(env.password(None, c, username, password="wrong"), 400, "invalid_grant")
    assert_oauth_error(env.password(None, c, "nobody-" + uuid.uuid4().hex), 400, "invalid_grant")
    assert_oauth_error(env.password(None, c, inactive), 400, "invalid_grant")
    # the same description for all three: no user enumeration
    d = {env.password(None, c, u, password=p).json()["error_description"]
         for u, p in ((username, "wrong"), ("nobody", PASSWORD), (inactive, PASSWORD))}
    assert len(d) == 1
    assert_oauth_error(env.password(None, c, username, scope="api:read nope"), 400, "invalid_scope")
    r = env.token(None, c, {"grant_type": "password", "username": username})
    assert_oauth_error(r, 400, "invalid_request")
    # a user of another tenant is unknown here
    t = env.tenant()
    _, other = env.user(t)
    assert_oauth_error(env.password(None, c, other), 400, "invalid_grant")
    # no refresh token when the client may not refresh
    c2 = pw_client(env, grant_types=["password"])
    r = env.password(None, c2, username)
    assert r.status_code == 200 and "refresh_token" not in r.json()


def test_password_grant_tenant_disabled(env):
    t = env.tenant({"grant_types": ["client_credentials"]})
    c = pw_client(env, t)
    _, username = env.user(t)
    assert_oauth_error(env.password(t, c, username), 400, "unauthorized_client")


def test_password_public_client(env):
    p = pw_client(env, type="public")
    assert "client_secret" not in p or not p.get("client_secret")
    _, username = env.user()
    r = env.password(None, p, username, basic=False)
    assert r.status_code == 200, r.text
    assert r.json()["refresh_token"]
    # a public client presenting a secret is refused
    r = env.token(None, None, {"grant_type": "password", "username": username, "password": PASSWORD,
                               "client_id": p["client_id"], "client_secret": "x"})
    assert_oauth_error(r, 401, "invalid_client")


def test_lockout(env):
    t = env.tenant({"lockout": {"max_failures": 3, "duration": 2}})
    c = pw_client(env, t)
    uid, username = env.user(t)
    for _ in range(3):
        assert_oauth_error(env.password(t, c, username, password="wrong"), 400, "invalid_grant")
    with env.db() as db:
        failed, locked = db.execute("SELECT failed_logins, locked_until FROM users WHERE id = ?", (uid,)).fetchone()
    assert locked >= int(time.time()) and failed == 0
    # locked: the right password is refused too
    assert_oauth_error(env.password(t, c, username), 400, "invalid_grant")
    time.sleep(2.5)
    r = env.password(t, c, username)
    assert r.status_code == 200, r.text
    with env.db() as db:
        failed, locked = db.execute("SELECT failed_logins, locked_until FROM users WHERE id = ?", (uid,)).fetchone()
    assert failed == 0 and locked == 0
    # failures below the limit are reset by a success
    for _ in range(2):
        env.password(t, c, username, password="wrong")
    with env.db() as db:
        assert db.execute("SELECT failed_logins FROM users WHERE id = ?", (uid,)).fetchone()[0] == 2
    assert env.password(t, c, username).status_code == 200
    with env.db() as db:
        assert db.execute("SELECT failed_logins FROM users WHERE id = ?", (uid,)).fetchone()[0] == 0


# --------------------------------------------------------------- refresh

def refresh(env, c, rt, tenant=None, scope=None, basic=True):
    data = {"grant_type": "refresh_token", "refresh_token": rt}
    if scope is not None:
        data["scope"] = scope
    return env.token(tenant, c, data, basic=basic)


def test_refresh_rotation(env):
    c = pw_client(env)
    uid, username = env.user()
    first = env.password(None, c, username, scope="openid api:read api:write").json()
    r = refresh(env, c, first["refresh_token"])
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["scope"] == "openid api:read api:write"
    at = jwt_parts(second["access_token"])[1]
    assert at["sub"] == uid and at["auth_time"] == jwt_parts(first["access_token"])[1]["auth_time"]
    assert jwt_parts(second["id_token"])[1]["sub"] == uid
    # narrowing is allowed
    r = refresh(env, c, second["refresh_token"], scope="api:read")
    assert r.status_code == 200, r.text
    third = r.json()
    assert third["scope"] == "api:read" and "id_token" not in third
    # widening is not: the narrowed token cannot get api:write back
    r = refresh(env, c, third["refresh_token"], scope="api:read api:write")
    assert_oauth_error(r, 400, "invalid_scope")
    # the rows: one family, parent links, statuses
    with env.db() as db:
        rows = db.execute("SELECT status, family_id, parent_hash FROM refresh_tokens WHERE user_id = ?"
                          " ORDER BY issued_at, status", (uid,)).fetchall()
    assert len({r[1] for r in rows}) == 1
    assert sorted(r[0] for r in rows) == ["active", "rotated", "rotated"]


def test_refresh_reuse_revokes_family(env):
    c = pw_client(env, token_format="opaque")
    _, username = env.user()
    first = env.password(None, c, username).json()
    second = refresh(env, c, first["refresh_token"]).json()
    third = refresh(env, c, second["refresh_token"]).json()
    assert env.active(third["access_token"], client=c) is True
    # replay of an already rotated token
    assert_oauth_error(refresh(env, c, first["refresh_token"]), 400, "invalid_grant")
    # the whole family is gone, the newest refresh token included
    assert_oauth_error(refresh(env, c, third["refresh_token"]), 400, "invalid_grant")
    assert env.active(third["refresh_token"], client=c, hint="refresh_token") is False
    # and the opaque access tokens minted from it
    assert env.active(third["access_token"], client=c) is False


def test_refresh_reuse_revokes_family_jwt_access_tokens(env):
    """RFC 9700 §4.14: a replayed refresh token revokes the family — and the
    JWT access tokens minted with its members, through the jti deny-list."""
    c = pw_client(env)
    _, username = env.user()
    first = env.password(None, c, username).json()
    second = refresh(env, c, first["refresh_token"]).json()
    assert env.active(first["access_token"], client=c) is True
    assert env.active(second["access_token"], client=c) is True
    assert_oauth_error(refresh(env, c, first["refresh_token"]), 400, "invalid_grant")
    assert env.active(first["access_token"], client=c) is False
    assert env.active(second["access_token"], client=c) is False
    # and explicit revocation of a refresh token does the same
    third = env.password(None, c, username).json()
    assert env.active(third["access_token"], client=c) is True
    assert env.revoke(third["refresh_token"], client=c, hint="refresh_token").status_code == 200
    assert env.active(third["access_token"], client=c) is False


def test_refresh_errors(env):
    c = pw_client(env)
    other = pw_client(env)
    _, username = env.user()
    rt = env.password(None, c, username).json()["refresh_token"]
    assert_oauth_error(refresh(env, c, "x" * 43), 400, "invalid_grant")
    assert_oauth_error(refresh(env, c, "garbage"), 400, "invalid_grant")
    # another client's refresh token
    assert_oauth_error(refresh(env, other, rt), 400, "invalid_grant")
    # still usable by its owner (a foreign presentation does not revoke it)
    assert refresh(env, c, rt).status_code == 200
    # a client without the refresh grant
    nr = pw_client(env, grant_types=["password"])
    assert_oauth_error(refresh(env, nr, rt), 400, "unauthorized_client")


def test_refresh_public_client(env):
    p = pw_client(env, type="public")
    _, username = env.user()
    rt = env.password(None, p, username, basic=False).json()["refresh_token"]
    r = refresh(env, p, rt, basic=False)
    assert r.status_code == 200, r.text


def test_refresh_inactive_user(env):
    c = pw_client(env)
    uid, username = env.user()
    rt = env.password(None, c, username).json()["refresh_token"]
    with env.db() as db:
        db.execute("UPDATE users SET active = 0 WHERE id = ?", (uid,))
    assert_oauth_error(refresh(env, c, rt), 400, "invalid_grant")


# -------------------------------------------------------------- userinfo

def test_userinfo(env):
    c = pw_client(env)
    uid, username = env.user(data={"name": {"formatted": "Grace Hopper"}, "emails": [{"value": "g@x.org"}],
                                   "phoneNumbers": [{"value": "+1 555"}],
                                   "addresses": [{"locality": "Arlington", "country": "US"}]})
    tok = env.password(None, c, username, scope="openid profile").json()["access_token"]
    for method in ("GET", "POST"):
        r = env.userinfo(tok, method=method)
        assert r.status_code == 200, r.text
        u = r.json()
        assert u["sub"] == uid and u["name"] == "Grace Hopper" and u["preferred_username"] == username
        assert "email" not in u and "phone_number" not in u and "address" not in u
    tok = env.password(None, c, username, scope="openid email phone address").json()["access_token"]
    u = env.userinfo(tok).json()
    assert u["email"] == "g@x.org" and u["phone_number"] == "+1 555"
    assert u["address"] == {"locality": "Arlington", "country": "US"}
    assert "name" not in u
    # opaque user tokens work the same way
    oc = pw_client(env, token_format="opaque")
    otok = env.password(None, oc, username, scope="openid email").json()["access_token"]
    assert env.userinfo(otok).json() == {"sub": uid, "email": "g@x.org"}


def test_userinfo_errors(env):
    r = env.node.get("/oauth2/userinfo")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert "error=" not in r.headers["WWW-Authenticate"]        # RFC 6750 §3.1: no token, no error code
    r = env.userinfo("garbage")
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    # a client token has no user
    c = env.client(scopes=["openid"], default_scopes=["openid"])
    r = env.userinfo(env.cc(None, c)["access_token"])
    assert r.status_code == 401
    # a user token without openid
    pc = pw_client(env)
    _, username = env.user()
    tok = env.password(None, pc, username, scope="api:read").json()["access_token"]
    r = env.userinfo(tok)
    assert r.status_code == 403 and 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
    # a token of tenant t at the root
    t = env.tenant()
    tc = pw_client(env, t)
    _, tu = env.user(t)
    ttok = env.password(t, tc, tu).json()["access_token"]
    assert env.userinfo(ttok, t).status_code == 200
    assert env.userinfo(ttok).status_code == 401


# ------------------------------------------------------------ revocation

def test_revoke_jwt(env):
    c = pw_client(env)
    _, username = env.user()
    tok = env.password(None, c, username).json()["access_token"]
    assert env.userinfo(tok).status_code == 200
    r = env.revoke(tok, client=c, hint="access_token")
    assert r.status_code == 200
    assert env.active(tok, client=c) is False
    assert env.userinfo(tok).status_code == 401
    jti = jwt_parts(tok)[1]["jti"]
    with env.db() as db:
        (exp,) = db.execute("SELECT expires_at FROM revoked_jtis WHERE jti = ?", (jti,)).fetchone()
    assert exp == jwt_parts(tok)[1]["exp"]
    # revoking again is fine
    assert env.revoke(tok, client=c).status_code == 200


def test_revoke_opaque(env):
    c = env.client(token_format="opaque")
    tok = env.cc(None, c)["access_token"]
    assert env.active(tok, client=c)
    # a wrong hint is only a hint
    assert env.revoke(tok, client=c, hint="refresh_token").status_code == 200
    assert env.active(tok, client=c) is False


def test_revoke_refresh_revokes_family(env):
    c = pw_client(env)
    _, username = env.user()
    first = env.password(None, c, username).json()
    second = refresh(env, c, first["refresh_token"]).json()
    assert env.active(second["refresh_token"], client=c, hint="refresh_token") is True
    assert env.revoke(second["refresh_token"], client=c, hint="refresh_token").status_code == 200
    assert_oauth_error(refresh(env, c, second["refresh_token"]), 400, "invalid_grant")
    assert env.active(second["refresh_token"], client=c) is False


def test_revoke_rules(env):
    c = env.client(token_format="opaque")
    other = env.client()
    tok = env.cc(None, c)["access_token"]
    # another client's token: 200, and nothing happens
    assert env.revoke(tok, client=other).status_code == 200
    assert env.active(tok, client=c) is True
    jtok = env.cc(None, other)["access_token"]
    assert env.revoke(jtok, client=c).status_code == 200
    assert env.active(jtok, client=other) is True
    # unknown tokens: 200
    for t in ("unknown", "x" * 43, "a.b.c"):
        assert env.revoke(t, client=c).status_code == 200
    # client authentication is required, token is required
    r = env.node.post("/oauth2/revoke", data={"token": tok})
    assert_oauth_error(r, 401, "invalid_client")
    r = env.node.post("/oauth2/revoke", data={"token": tok}, auth=(c["client_id"], "bad"))
    assert_oauth_error(r, 401, "invalid_client")
    r = env.node.post("/oauth2/revoke", data={}, auth=(c["client_id"], c["client_secret"]))
    assert_oauth_error(r, 400, "invalid_request")
    assert env.active(tok, client=c) is True


def test_revoke_public_client(env):
    p = pw_client(env, type="public", token_format="opaque")
    _, username = env.user()
    body = env.password(None, p, username, basic=False).json()
    assert env.revoke(body["refresh_token"], client=p).status_code == 200
    assert_oauth_error(refresh(env, p, body["refresh_token"], basic=False), 400, "invalid_grant")


# ------------------------------------------------------------------ purge

def test_purge_job_deletes_expired_rows(env):
    t = env.tenant({"access_token_ttl": 1, "refresh_token_ttl": 1})
    c = pw_client(env, t, token_format="opaque")
    _, username = env.user(t)
    body = env.password(t, c, username).json()
    jc = env.client(t)
    jtok = env.cc(t, jc)["access_token"]
    assert env.revoke(jtok, t, jc).status_code == 200
    h_at = hashlib.sha256(body["access_token"].encode()).hexdigest()
    h_rt = hashlib.sha256(body["refresh_token"].encode()).hexdigest()
    jti = jwt_parts(jtok)[1]["jti"]

    def counts():
        with env.db() as db:
            return (db.execute("SELECT count(*) FROM opaque_tokens WHERE token_hash = ?", (h_at,)).fetchone()[0],
                    db.execute("SELECT count(*) FROM refresh_tokens WHERE token_hash = ?", (h_rt,)).fetchone()[0],
                    db.execute("SELECT count(*) FROM revoked_jtis WHERE jti = ?", (jti,)).fetchone()[0])

    assert counts() == (1, 1, 1)
    deadline = time.time() + 10
    while time.time() < deadline and counts() != (0, 0, 0):
        time.sleep(0.2)
    assert counts() == (0, 0, 0)
    r = env.node.get("/metrics")
    assert 'refuge_oauth_purged_rows_total{table="opaque_tokens"}' in r.text


def test_purge_batches(env):
    # more than one batch (1000 rows) of expired rows, inserted directly
    past = int(time.time()) - 10
    with env.db() as db:
        db.executemany("INSERT INTO opaque_tokens (token_hash, tenant, client_id, scope, issued_at, expires_at)"
                       " VALUES (?, 'default', 'bulk', '', ?, ?)",
                       [(hashlib.sha256(b"bulk%d" % i).hexdigest(), past - 5, past) for i in range(2500)])
        db.execute("INSERT INTO opaque_tokens (token_hash, tenant, client_id, scope, issued_at, expires_at)"
                   " VALUES ('keep', 'default', 'bulk', '', ?, ?)", (past, past + 3600))
    deadline = time.time() + 10
    while time.time() < deadline:
        with env.db() as db:
            n = db.execute("SELECT count(*) FROM opaque_tokens WHERE client_id = 'bulk'").fetchone()[0]
        if n == 1:
            break
        time.sleep(0.2)
    assert n == 1
    with env.db() as db:
        assert db.execute("SELECT count(*) FROM opaque_tokens WHERE token_hash = 'keep'").fetchone()[0] == 1
        db.execute("DELETE FROM opaque_tokens WHERE token_hash = 'keep'")


# ---------------------------------------------------------------- standby

def test_standby_serves_reads_refuses_writes(tmp_path):
    """On a standby, what needs no write still works (JWT client_credentials,
    introspection); what must write answers 503 temporarily_unavailable."""
    node = Node(str(tmp_path)).start()
    try:
        env = Env(node)
        jc = env.client()
        oc = env.client(token_format="opaque")
        pc = pw_client(env)
        nr = pw_client(env, grant_types=["password"])
        _, username = env.user()
        rt = env.password(None, pc, username).json()["refresh_token"]
        assert node.stop() == 0
        with env.db() as db:
            db.execute("UPDATE node_state SET value = 'standby' WHERE key = 'role'")
        node.start()
        assert node.get("/health/ready").status_code == 503
        tok = env.cc(None, jc)["access_token"]
        assert env.active(tok, client=jc) is True
        assert env.password(None, nr, username).status_code == 200      # JWT, no refresh token: no write
        for r in (env.token(None, oc, {"grant_type": "client_credentials"}),
                  env.password(None, pc, username),
                  refresh(env, pc, rt),
                  env.revoke(tok, client=jc)):
            assert_oauth_error(r, 503, "temporarily_unavailable")
            assert "standby" in r.json()["error_description"]
    finally:
        node.kill()


def test_verified_token_cache_never_outlives_what_it_proved(env):
    """JWT signatures are verified once and cached (src/oauth/lookup.c); a
    cached token must still be refused the moment it is revoked, outside its
    tenant, or after its tenant (and keys) are gone."""
    c = pw_client(env)
    _, username = env.user()
    tok = env.password(None, c, username, scope="openid").json()["access_token"]
    for _ in range(3):                                   # verified, then served from the cache
        assert env.userinfo(tok).status_code == 200
    assert env.revoke(tok, client=c).status_code == 200
    assert env.userinfo(tok).status_code == 401          # the jti deny-list is checked every time

    # a tenant's admin token, cached by use, is refused at another tenant and after its tenant is deleted
    t, u = env.tenant(), env.tenant()
    adm = env.client(t, scopes=["refuge:admin"], default_scopes=["refuge:admin"])
    ttok = env.cc(t, adm)["access_token"]
    h = {"Authorization": "Bearer " + ttok}
    assert env.node.get("/t/%s/admin/v1/clients" % t, headers=h).status_code == 200
    assert env.node.get("/t/%s/admin/v1/clients" % u, headers=h).status_code in (401, 403)
    r = env.node.request("DELETE", "/admin/v1/tenants/" + t, headers=env.ah())
    assert r.status_code == 204, r.text
    r = env.node.post("/admin/v1/tenants", json={"name": t, "display_name": "again"}, headers=env.ah())
    assert r.status_code == 201, r.text
    assert env.node.get("/t/%s/admin/v1/clients" % t, headers=h).status_code == 401
