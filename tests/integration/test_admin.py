"""Admin API: tenants, clients, signing keys and node status, against a real refuged.

Covers every endpoint's happy path, the validation rules (tenant names,
settings, client fields), authorization (no token, wrong scope, a tenant's
admin confined to its tenant), secrets shown once and never stored in clear,
key rotation as seen through JWKS and introspection, request-body limits, and
tenant deletion taking its clients and tokens along.
"""
import base64
import glob
import json
import os

import pytest


# ---------------------------------------------------------------- helpers

def auth(tok):
    return {"Authorization": "Bearer " + tok}


def prefix(tenant):
    return "" if tenant in (None, "default") else "/t/%s" % tenant


@pytest.fixture
def root(node):
    """The operator's (super-admin) token."""
    return node.admin_token()


def mk_tenant(node, tok, name, **body):
    body["name"] = name
    r = node.post("/admin/v1/tenants", json=body, headers=auth(tok))
    assert r.status_code == 201, r.text
    return r.json()


def mk_client(node, tok, tenant, body):
    r = node.post(prefix(tenant) + "/admin/v1/clients", json=body, headers=auth(tok))
    assert r.status_code == 201, r.text
    return r.json()


def cc_token(node, tenant, cid, secret, scope=None):
    data = {"grant_type": "client_credentials"}
    if scope:
        data["scope"] = scope
    return node.post(prefix(tenant) + "/oauth2/token", data=data, auth=(cid, secret))


def jwt_header(tok):
    h = tok.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(h + "=" * (-len(h) % 4)))


def jwks_kids(node, tenant):
    r = node.get(prefix(tenant) + "/oauth2/jwks")
    assert r.status_code == 200, r.text
    return {k["kid"] for k in r.json()["keys"]}


def introspect(node, tenant, cid, secret, token):
    r = node.post(prefix(tenant) + "/oauth2/introspect", data={"token": token}, auth=(cid, secret))
    assert r.status_code == 200, r.text
    return r.json()


def assert_error(r, status, code=None, desc_contains=None):
    assert r.status_code == status, r.text
    body = r.json()
    assert "error" in body and "error_description" in body, body
    if code:
        assert body["error"] == code, body
    if desc_contains:
        assert desc_contains in body["error_description"], body


def service_client(node, tok, tenant, scopes=("api",), **extra):
    body = {"name": "svc", "grant_types": ["client_credentials"], "scopes": list(scopes)}
    body.update(extra)
    return mk_client(node, tok, tenant, body)


# ---------------------------------------------------------------- tenants

def test_tenant_crud(node, root):
    t = mk_tenant(node, root, "acme", display_name="Acme Corp",
                  settings={"access_token_ttl": 600, "lockout": {"max_failures": 3}})
    assert t["name"] == "acme"
    assert t["display_name"] == "Acme Corp"
    assert t["issuer"] == node.url + "/t/acme"
    assert t["settings"]["access_token_ttl"] == 600
    assert t["settings"]["lockout"] == {"max_failures": 3, "duration": 900}   # defaults filled in
    assert t["settings"]["code_ttl"] == 60

    r = node.get("/admin/v1/tenants/acme", headers=auth(root))
    assert r.status_code == 200
    assert r.json()["settings"]["access_token_ttl"] == 600

    r = node.get("/admin/v1/tenants", headers=auth(root))
    assert r.status_code == 200
    names = [x["name"] for x in r.json()["tenants"]]
    assert "acme" in names and "default" in names

    # PATCH merges settings (RFC 7396): null restores a default, other keys stay
    r = node.request("PATCH", "/admin/v1/tenants/acme", headers=auth(root),
                     json={"settings": {"access_token_ttl": None, "code_ttl": 120}})
    assert r.status_code == 200, r.text
    s = r.json()["settings"]
    assert s["access_token_ttl"] == 3600 and s["code_ttl"] == 120
    assert s["lockout"]["max_failures"] == 3
    assert r.json()["display_name"] == "Acme Corp"

    # PUT replaces the settings given
    r = node.request("PUT", "/admin/v1/tenants/acme", headers=auth(root),
                     json={"display_name": "ACME", "settings": {"session_ttl": 60}})
    assert r.status_code == 200, r.text
    assert r.json()["display_name"] == "ACME"
    s = r.json()["settings"]
    assert s["session_ttl"] == 60 and s["code_ttl"] == 60 and s["lockout"]["max_failures"] == 5

    # a GET result can be PUT back as it is
    got = node.get("/admin/v1/tenants/acme", headers=auth(root)).json()
    r = node.request("PUT", "/admin/v1/tenants/acme", headers=auth(root), json=got)
    assert r.status_code == 200, r.text
    assert r.json()["settings"] == got["settings"]

    r = node.request("PATCH", "/admin/v1/tenants/acme", headers=auth(root), json={"name": "other"})
    assert_error(r, 400, "invalid_request", "name")

    r = node.request("DELETE", "/admin/v1/tenants/acme", headers=auth(root))
    assert r.status_code == 204
    assert_error(node.get("/admin/v1/tenants/acme", headers=auth(root)), 404, "not_found")
    assert_error(node.request("DELETE", "/admin/v1/tenants/acme", headers=auth(root)), 404)
    assert_error(node.request("PATCH", "/admin/v1/tenants/acme", headers=auth(root),
                              json={"display_name": "x"}), 404)


def test_tenant_served_under_prefix(node, root):
    mk_tenant(node, root, "acme")
    r = node.get("/t/acme/.well-known/openid-configuration")
    assert r.status_code == 200, r.text
    assert r.json()["issuer"] == node.url + "/t/acme"


@pytest.mark.parametrize("name", ["Upper", "under_score", "a" * 64, "-lead", "trail-", "", "a.b", "caf\u00e9"])
def test_tenant_name_rules(node, root, name):
    r = node.post("/admin/v1/tenants", json={"name": name}, headers=auth(root))
    assert_error(r, 400, "invalid_request", "name")


def test_tenant_name_limits_accepted(node, root):
    assert mk_tenant(node, root, "a" * 63)["name"] == "a" * 63
    assert mk_tenant(node, root, "x")["name"] == "x"
    assert mk_tenant(node, root, "a-1")["name"] == "a-1"


def test_tenant_missing_name_and_bad_display_name(node, root):
    assert_error(node.post("/admin/v1/tenants", json={"display_name": "x"}, headers=auth(root)),
                 400, "invalid_request", "name")
    assert_error(node.post("/admin/v1/tenants", json={"name": "ok", "display_name": ""}, headers=auth(root)),
                 400, "invalid_request", "display_name")
    assert_error(node.post("/admin/v1/tenants", json={"name": "ok", "color": "red"}, headers=auth(root)),
                 400, "invalid_request", "color")


def test_duplicate_tenant_409(node, root):
    mk_tenant(node, root, "acme")
    r = node.post("/admin/v1/tenants", json={"name": "acme"}, headers=auth(root))
    assert_error(r, 409, "conflict", "acme")
    r = node.post("/admin/v1/tenants", json={"name": "default"}, headers=auth(root))
    assert_error(r, 409, "conflict")


@pytest.mark.parametrize("settings,needle", [
    ({"acces_token_ttl": 60}, "settings.acces_token_ttl"),
    ({"lockout": {"max_failure": 3}}, "settings.lockout.max_failure"),
    ({"argon2": {"parallelism": 2}}, "settings.argon2.parallelism"),
    ({"code_ttl": 601}, "settings.code_ttl"),
    ({"access_token_ttl": 0}, "settings.access_token_ttl"),
    ({"refresh_token_ttl": 31536001}, "settings.refresh_token_ttl"),
    ({"lockout": {"max_failures": 101}}, "settings.lockout.max_failures"),
    ({"argon2": {"memory_kib": 7}}, "settings.argon2.memory_kib"),
    ({"argon2": {"iterations": 11}}, "settings.argon2.iterations"),
    ({"password_policy": {"min_length": 0}}, "settings.password_policy.min_length"),
    ({"grant_types": ["implicit"]}, "settings.grant_types[0]"),
    ({"access_token_ttl": "60"}, "settings.access_token_ttl"),
])
def test_tenant_settings_rejected(node, root, settings, needle):
    r = node.post("/admin/v1/tenants", json={"name": "acme", "settings": settings}, headers=auth(root))
    assert_error(r, 400, "invalid_request", needle)
    # nothing was created
    assert_error(node.get("/admin/v1/tenants/acme", headers=auth(root)), 404)
    # the same rules on update, PUT and PATCH
    mk_tenant(node, root, "acme")
    for method in ("PUT", "PATCH"):
        r = node.request(method, "/admin/v1/tenants/acme", json={"settings": settings}, headers=auth(root))
        assert_error(r, 400, "invalid_request", needle)


def test_default_tenant_cannot_be_deleted(node, root):
    r = node.request("DELETE", "/admin/v1/tenants/default", headers=auth(root))
    assert_error(r, 400, "invalid_request", "default")
    assert node.get("/admin/v1/tenants/default", headers=auth(root)).status_code == 200


def test_tenant_signing_alg(node, root):
    mk_tenant(node, root, "rsa", signing_alg="RS256")
    keys = node.get("/t/rsa/admin/v1/keys", headers=auth(root)).json()["keys"]
    assert [k["alg"] for k in keys] == ["RS256"]
    r = node.post("/admin/v1/tenants", json={"name": "bad", "signing_alg": "HS256"}, headers=auth(root))
    assert_error(r, 400, "invalid_request", "signing_alg")
    # a new tenant gets an ES256 key by default, and it signs its tokens
    mk_tenant(node, root, "acme")
    keys = node.get("/t/acme/admin/v1/keys", headers=auth(root)).json()["keys"]
    assert len(keys) == 1 and keys[0]["alg"] == "ES256" and keys[0]["status"] == "active"
    c = service_client(node, root, "acme")
    r = cc_token(node, "acme", c["client_id"], c["client_secret"])
    assert r.status_code == 200, r.text
    assert jwt_header(r.json()["access_token"])["kid"] == keys[0]["kid"]


# ---------------------------------------------------------------- clients

def test_client_crud(node, root):
    mk_tenant(node, root, "acme")
    c = mk_client(node, root, "acme", {
        "name": "Web", "type": "confidential",
        "redirect_uris": ["https://app.example/cb"],
        "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
        "scopes": ["openid", "api:read"], "default_scopes": ["api:read"],
        "token_format": "opaque", "access_token_ttl": 300})
    cid = c["client_id"]
    assert len(cid) == 22
    assert len(c["client_secret"]) == 43
    assert c["type"] == "confidential" and c["token_format"] == "opaque"
    assert c["access_token_ttl"] == 300
    assert c["grant_types"] == ["client_credentials", "refresh_token", "authorization_code"]

    r = node.get("/t/acme/admin/v1/clients/" + cid, headers=auth(root))
    assert r.status_code == 200
    got = r.json()
    assert "client_secret" not in got and "secret_hash" not in got
    assert got["redirect_uris"] == ["https://app.example/cb"]
    assert got["scopes"] == ["openid", "api:read"]

    r = node.get("/t/acme/admin/v1/clients", headers=auth(root))
    assert r.status_code == 200
    assert [x["client_id"] for x in r.json()["clients"]] == [cid]
    assert "client_secret" not in r.text

    r = node.request("PATCH", "/t/acme/admin/v1/clients/" + cid, headers=auth(root),
                     json={"name": "Web 2", "access_token_ttl": None, "scopes": ["api:read", "api:write"]})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Web 2"
    assert "access_token_ttl" not in r.json()
    assert r.json()["scopes"] == ["api:read", "api:write"]
    assert r.json()["redirect_uris"] == ["https://app.example/cb"]    # untouched

    got = node.get("/t/acme/admin/v1/clients/" + cid, headers=auth(root)).json()
    got["token_format"] = "jwt"
    r = node.request("PUT", "/t/acme/admin/v1/clients/" + cid, headers=auth(root), json=got)
    assert r.status_code == 200, r.text
    assert r.json()["token_format"] == "jwt"

    # the change is validated against the whole client
    r = node.request("PATCH", "/t/acme/admin/v1/clients/" + cid, headers=auth(root), json={"scopes": ["x"]})
    assert_error(r, 400, "invalid_request", "default_scopes[0]")
    r = node.request("PATCH", "/t/acme/admin/v1/clients/" + cid, headers=auth(root), json={"type": "public"})
    assert_error(r, 400, "invalid_request", "type")

    r = node.request("DELETE", "/t/acme/admin/v1/clients/" + cid, headers=auth(root))
    assert r.status_code == 204
    assert_error(node.get("/t/acme/admin/v1/clients/" + cid, headers=auth(root)), 404, "not_found")
    assert_error(node.request("DELETE", "/t/acme/admin/v1/clients/" + cid, headers=auth(root)), 404)
    assert_error(node.request("PATCH", "/t/acme/admin/v1/clients/" + cid, headers=auth(root),
                              json={"name": "x"}), 404)


def test_client_in_default_tenant_at_root(node, root):
    c = mk_client(node, root, None, {"client_id": "root-svc", "scopes": ["a"]})
    assert c["client_id"] == "root-svc"
    r = node.get("/admin/v1/clients", headers=auth(root))
    ids = [x["client_id"] for x in r.json()["clients"]]
    assert "root-svc" in ids and "refuge-admin" in ids
    assert node.get("/t/default/admin/v1/clients/root-svc", headers=auth(root)).status_code == 200
    assert cc_token(node, None, "root-svc", c["client_secret"]).status_code == 200


def test_client_given_id_and_duplicate(node, root):
    mk_tenant(node, root, "acme")
    c = mk_client(node, root, "acme", {"client_id": "my.app~1_x-y"})
    assert c["client_id"] == "my.app~1_x-y"
    r = node.post("/t/acme/admin/v1/clients", json={"client_id": "my.app~1_x-y"}, headers=auth(root))
    assert_error(r, 409, "conflict", "my.app~1_x-y")
    # the same id in another tenant is another client
    mk_tenant(node, root, "beta")
    mk_client(node, root, "beta", {"client_id": "my.app~1_x-y"})
    for bad in ["", "has space", "a/b", "x" * 129]:
        r = node.post("/t/acme/admin/v1/clients", json={"client_id": bad}, headers=auth(root))
        assert_error(r, 400, "invalid_request", "client_id")


@pytest.mark.parametrize("body,needle", [
    ({"type": "public", "grant_types": ["client_credentials"]}, "client_credentials"),
    ({"redirect_uris": ["https://app.example/cb#frag"]}, "redirect_uris[0]"),
    ({"redirect_uris": ["https://ok.example/cb", "/relative"]}, "redirect_uris[1]"),
    ({"redirect_uris": ["javascript:alert(1)"]}, "redirect_uris[0]"),
    ({"grant_types": ["implicit"]}, "grant_types[0]"),
    ({"grant_types": ["authorization_code"]}, "redirect_uris"),
    ({"scopes": ["a b"]}, "scopes[0]"),
    ({"scopes": ["a"], "default_scopes": ["b"]}, "default_scopes[0]"),
    ({"type": "secret"}, "type"),
    ({"token_format": "paseto"}, "token_format"),
    ({"access_token_ttl": 0}, "access_token_ttl"),
    ({"id_token_ttl": 31536001}, "id_token_ttl"),
    ({"client_secret": "mine"}, "client_secret"),
    ({"redirect_uris": ["https://a.example/%d" % i for i in range(65)]}, "redirect_uris"),
])
def test_client_validation(node, root, body, needle):
    mk_tenant(node, root, "acme")
    r = node.post("/t/acme/admin/v1/clients", json=body, headers=auth(root))
    assert_error(r, 400, "invalid_request", needle)
    assert node.get("/t/acme/admin/v1/clients", headers=auth(root)).json()["clients"] == []


def test_public_client(node, root):
    mk_tenant(node, root, "acme")
    c = mk_client(node, root, "acme", {"type": "public", "redirect_uris": ["http://localhost:8080/cb"]})
    assert "client_secret" not in c
    assert c["grant_types"] == ["refresh_token", "authorization_code"]
    r = node.post("/t/acme/admin/v1/clients/%s/secret" % c["client_id"], headers=auth(root))
    assert_error(r, 400, "invalid_request", "public")


def test_client_secret_shown_once_never_stored(node, root):
    mk_tenant(node, root, "acme")
    c = service_client(node, root, "acme")
    secret = c["client_secret"]
    cid = c["client_id"]
    for path in ("/t/acme/admin/v1/clients/" + cid, "/t/acme/admin/v1/clients"):
        r = node.get(path, headers=auth(root))
        assert r.status_code == 200
        assert secret not in r.text and "client_secret" not in r.text
    r = node.post("/t/acme/admin/v1/clients/%s/secret" % cid, headers=auth(root))
    assert r.status_code == 200
    secret2 = r.json()["client_secret"]
    # the store (database, WAL) holds neither secret in clear
    files = glob.glob(os.path.join(node.data_dir, "refuge.db*"))
    assert files
    for f in files:
        with open(f, "rb") as fh:
            data = fh.read()
        assert secret.encode() not in data, f
        assert secret2.encode() not in data, f


def test_regenerate_secret(node, root):
    mk_tenant(node, root, "acme")
    c = service_client(node, root, "acme")
    cid, old = c["client_id"], c["client_secret"]
    assert cc_token(node, "acme", cid, old).status_code == 200
    r = node.post("/t/acme/admin/v1/clients/%s/secret" % cid, headers=auth(root))
    assert r.status_code == 200, r.text
    assert r.json()["client_id"] == cid
    new = r.json()["client_secret"]
    assert new != old and len(new) == 43
    r = cc_token(node, "acme", cid, old)
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "invalid_client"
    assert cc_token(node, "acme", cid, new).status_code == 200
    assert_error(node.post("/t/acme/admin/v1/clients/nobody/secret", headers=auth(root)), 404)


def test_deleted_client_cannot_get_tokens(node, root):
    mk_tenant(node, root, "acme")
    c = service_client(node, root, "acme", token_format="opaque")
    r = cc_token(node, "acme", c["client_id"], c["client_secret"])
    assert r.status_code == 200
    opaque = r.json()["access_token"]
    helper = service_client(node, root, "acme")
    assert introspect(node, "acme", helper["client_id"], helper["client_secret"], opaque)["active"] is True
    assert node.request("DELETE", "/t/acme/admin/v1/clients/" + c["client_id"], headers=auth(root)).status_code == 204
    assert cc_token(node, "acme", c["client_id"], c["client_secret"]).status_code == 401
    assert introspect(node, "acme", helper["client_id"], helper["client_secret"], opaque)["active"] is False


# ---------------------------------------------------------------- authorization

ROUTES = [
    ("GET", "/admin/v1/tenants"),
    ("POST", "/admin/v1/tenants"),
    ("GET", "/admin/v1/tenants/default"),
    ("DELETE", "/admin/v1/tenants/acme"),
    ("GET", "/admin/v1/clients"),
    ("POST", "/admin/v1/clients"),
    ("GET", "/t/acme/admin/v1/clients"),
    ("GET", "/t/acme/admin/v1/keys"),
    ("POST", "/t/acme/admin/v1/keys/rotate"),
    ("GET", "/admin/v1/node"),
]


def test_no_token_401(node, root):
    mk_tenant(node, root, "acme")
    for method, path in ROUTES:
        r = node.request(method, path, json={})
        assert r.status_code == 401, (method, path, r.text)
        assert r.headers.get("WWW-Authenticate", "").startswith("Bearer"), (method, path)
    r = node.get("/admin/v1/tenants", headers=auth("not-a-token"))
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers.get("WWW-Authenticate", "")
    # a tampered token
    parts = root.split(".")
    forged = parts[0] + "." + parts[1][:-2] + ("AA" if parts[1][-2:] != "AA" else "BB") + "." + parts[2]
    assert node.get("/admin/v1/tenants", headers=auth(forged)).status_code == 401


def test_token_without_admin_scope_403(node, root):
    mk_tenant(node, root, "acme")
    tok = node.admin_token(scope="scim:read")
    for method, path in ROUTES:
        r = node.request(method, path, json={}, headers=auth(tok))
        assert r.status_code in (401, 403), (method, path, r.text)
        if not path.startswith("/t/"):
            assert r.status_code == 403, (method, path, r.text)
            assert r.json()["error"] == "insufficient_scope"
            assert "insufficient_scope" in r.headers.get("WWW-Authenticate", "")


def test_tenant_admin_is_confined(node, root):
    mk_tenant(node, root, "t1")
    mk_tenant(node, root, "t2")
    adm = service_client(node, root, "t1", scopes=["refuge:admin"])
    r = cc_token(node, "t1", adm["client_id"], adm["client_secret"], scope="refuge:admin")
    assert r.status_code == 200, r.text
    tok = r.json()["access_token"]

    # its own tenant: clients and keys
    assert node.get("/t/t1/admin/v1/clients", headers=auth(tok)).status_code == 200
    c = mk_client(node, tok, "t1", {"scopes": ["x"]})
    assert node.request("PATCH", "/t/t1/admin/v1/clients/" + c["client_id"], json={"name": "n"},
                        headers=auth(tok)).status_code == 200
    assert node.get("/t/t1/admin/v1/keys", headers=auth(tok)).status_code == 200
    assert node.post("/t/t1/admin/v1/keys/rotate", headers=auth(tok)).status_code == 201

    # nothing of another tenant, of the default tenant, or of tenants themselves
    denied = [
        ("GET", "/t/t2/admin/v1/clients", None),
        ("POST", "/t/t2/admin/v1/clients", {"scopes": ["x"]}),
        ("POST", "/t/t2/admin/v1/keys/rotate", None),
        ("GET", "/admin/v1/clients", None),
        ("POST", "/admin/v1/tenants", {"name": "t3"}),
        ("GET", "/admin/v1/tenants", None),
        ("GET", "/admin/v1/tenants/t1", None),
        ("PATCH", "/admin/v1/tenants/t1", {"display_name": "mine"}),
        ("DELETE", "/admin/v1/tenants/t2", None),
        ("GET", "/admin/v1/node", None),
    ]
    for method, path, body in denied:
        r = node.request(method, path, json=body, headers=auth(tok))
        assert r.status_code in (401, 403), (method, path, r.status_code, r.text)
    assert node.get("/admin/v1/tenants/t2", headers=auth(root)).status_code == 200
    assert_error(node.get("/admin/v1/tenants/t3", headers=auth(root)), 404)
    assert node.get("/t/t2/admin/v1/clients", headers=auth(root)).json()["clients"] == []
    assert len(node.get("/t/t2/admin/v1/keys", headers=auth(root)).json()["keys"]) == 1


def test_unknown_tenant_404(node, root):
    for method, path in [("GET", "/t/nope/admin/v1/clients"), ("POST", "/t/nope/admin/v1/clients"),
                         ("GET", "/t/nope/admin/v1/keys"), ("POST", "/t/nope/admin/v1/keys/rotate"),
                         ("GET", "/t/nope/admin/v1/clients/x")]:
        r = node.request(method, path, json={}, headers=auth(root))
        assert r.status_code == 404, (method, path, r.text)
    # tenant routes are not served under a tenant prefix
    assert node.get("/t/default/admin/v1/tenants", headers=auth(root)).status_code == 404


# ---------------------------------------------------------------- keys

def test_key_rotation(node, root):
    mk_tenant(node, root, "acme")
    c = service_client(node, root, "acme")
    cid, secret = c["client_id"], c["client_secret"]
    keys = node.get("/t/acme/admin/v1/keys", headers=auth(root)).json()["keys"]
    kid1 = keys[0]["kid"]
    assert jwks_kids(node, "acme") == {kid1}
    for k in keys:
        assert set(k) == {"kid", "alg", "status", "created_at", "retire_after"}

    r = cc_token(node, "acme", cid, secret)
    assert r.status_code == 200
    old_token = r.json()["access_token"]
    assert jwt_header(old_token)["kid"] == kid1

    r = node.post("/t/acme/admin/v1/keys/rotate", headers=auth(root))
    assert r.status_code == 201, r.text
    kid2 = r.json()["kid"]
    assert r.json()["alg"] == "ES256"
    assert kid2 != kid1

    # both keys published; the old one retired until its last token expires
    assert jwks_kids(node, "acme") == {kid1, kid2}
    keys = {k["kid"]: k for k in node.get("/t/acme/admin/v1/keys", headers=auth(root)).json()["keys"]}
    assert keys[kid2]["status"] == "active" and keys[kid2]["retire_after"] == 0
    assert keys[kid1]["status"] == "retired"
    assert keys[kid1]["retire_after"] >= keys[kid2]["created_at"] + 3600
    assert "private" not in json.dumps(keys) and '"d"' not in json.dumps(keys)

    # new tokens use the new key; tokens issued before still verify
    r = cc_token(node, "acme", cid, secret)
    assert jwt_header(r.json()["access_token"])["kid"] == kid2
    assert introspect(node, "acme", cid, secret, old_token)["active"] is True
    assert introspect(node, "acme", cid, secret, r.json()["access_token"])["active"] is True

    # another algorithm on request; the next rotation keeps it
    r = node.post("/t/acme/admin/v1/keys/rotate", json={"alg": "EdDSA"}, headers=auth(root))
    assert r.status_code == 201 and r.json()["alg"] == "EdDSA"
    r = node.post("/t/acme/admin/v1/keys/rotate", headers=auth(root))
    assert r.status_code == 201 and r.json()["alg"] == "EdDSA"
    assert len(jwks_kids(node, "acme")) == 4
    assert introspect(node, "acme", cid, secret, old_token)["active"] is True

    assert_error(node.post("/t/acme/admin/v1/keys/rotate", json={"alg": "HS256"}, headers=auth(root)),
                 400, "invalid_request", "alg")
    assert_error(node.post("/t/acme/admin/v1/keys/rotate", json={"size": 4096}, headers=auth(root)),
                 400, "invalid_request", "size")


def test_key_rotation_default_tenant_keeps_admin_working(node, root):
    kid1 = jwks_kids(node, None)
    r = node.post("/admin/v1/keys/rotate", headers=auth(root))
    assert r.status_code == 201, r.text
    assert jwks_kids(node, None) == kid1 | {r.json()["kid"]}
    # the operator's token signed by the old key is still accepted
    assert node.get("/admin/v1/tenants", headers=auth(root)).status_code == 200
    assert jwt_header(node.admin_token())["kid"] == r.json()["kid"]


# ---------------------------------------------------------------- bodies

def test_json_limits(node, root):
    deep = "[" * 33 + "]" * 33
    r = node.post("/admin/v1/tenants", data='{"name": "acme", "settings": {"x": %s}}' % deep,
                  headers={**auth(root), "Content-Type": "application/json"})
    assert_error(r, 400, "invalid_request")
    for body in ['{"name": "acme"', "not json", '{"name": "acme",}', "\xff"]:
        r = node.post("/admin/v1/tenants", data=body, headers={**auth(root), "Content-Type": "application/json"})
        assert_error(r, 400, "invalid_request")
    for body in ["[]", '"acme"', "42", ""]:
        r = node.post("/admin/v1/tenants", data=body, headers={**auth(root), "Content-Type": "application/json"})
        assert_error(r, 400, "invalid_request")
    r = node.post("/admin/v1/clients", data="[", headers={**auth(root), "Content-Type": "application/json"})
    assert_error(r, 400, "invalid_request")
    assert_error(node.get("/admin/v1/tenants/acme", headers=auth(root)), 404)


# ---------------------------------------------------------------- delete

def test_delete_tenant_removes_clients_and_tokens(node, root):
    mk_tenant(node, root, "acme")
    c = service_client(node, root, "acme", scopes=["refuge:admin"])
    cid, secret = c["client_id"], c["client_secret"]
    r = cc_token(node, "acme", cid, secret, scope="refuge:admin")
    assert r.status_code == 200
    tok = r.json()["access_token"]
    assert node.get("/t/acme/admin/v1/clients", headers=auth(tok)).status_code == 200

    assert node.request("DELETE", "/admin/v1/tenants/acme", headers=auth(root)).status_code == 204
    assert cc_token(node, "acme", cid, secret).status_code in (401, 404)
    assert node.get("/t/acme/admin/v1/clients", headers=auth(tok)).status_code in (401, 404)

    # a new tenant of the same name inherits nothing: no clients, new keys, the old token is dead
    mk_tenant(node, root, "acme")
    assert node.get("/t/acme/admin/v1/clients", headers=auth(root)).json()["clients"] == []
    assert jwt_header(tok)["kid"] not in jwks_kids(node, "acme")
    assert cc_token(node, "acme", cid, secret).status_code == 401
    assert node.get("/t/acme/admin/v1/clients", headers=auth(tok)).status_code == 401


# ---------------------------------------------------------------- node

def test_node_status(node, root):
    r = node.get("/admin/v1/node", headers=auth(root))
    assert r.status_code == 200, r.text
    s = r.json()
    assert s["name"] == "a" and s["region"] == "region-a"
    assert s["role"] == "active"
    assert isinstance(s["epoch"], int) and s["epoch"] >= 1
    assert isinstance(s["lsn"], int)
    assert s["mode"] in ("async", "remote_write", "remote_apply")
    assert set(s["peer"]) >= {"connected", "acked_lsn", "lag_records", "lag_bytes", "lag_ms"}
    assert isinstance(s["rpo_target_ms"], int) and isinstance(s["rpo_exposure_ms"], int)
    assert isinstance(s["uptime_s"], int) and s["uptime_s"] >= 0
    assert s["version"]
    assert node.get("/t/default/admin/v1/node", headers=auth(root)).status_code == 404


# ---------------------------------------------------------------- standby

def test_standby_refuses_writes(node, root):
    import sqlite3
    mk_tenant(node, root, "acme")
    node.stop()
    db = sqlite3.connect(os.path.join(node.data_dir, "refuge.db"))
    with db:
        db.execute("UPDATE node_state SET value = 'standby' WHERE key = 'role'")
    db.close()
    node.start()
    tok = node.admin_token()               # a JWT: issuing it writes nothing
    assert node.get("/admin/v1/node", headers=auth(tok)).json()["role"] == "standby"
    assert node.get("/admin/v1/tenants/acme", headers=auth(tok)).status_code == 200
    assert node.get("/t/acme/admin/v1/keys", headers=auth(tok)).status_code == 200
    writes = [
        ("POST", "/admin/v1/tenants", {"name": "beta"}),
        ("PATCH", "/admin/v1/tenants/acme", {"display_name": "x"}),
        ("DELETE", "/admin/v1/tenants/acme", None),
        ("POST", "/t/acme/admin/v1/clients", {"scopes": ["a"]}),
        ("POST", "/t/acme/admin/v1/keys/rotate", None),
    ]
    for method, path, body in writes:
        r = node.request(method, path, json=body, headers=auth(tok))
        assert_error(r, 503, "temporarily_unavailable", "standby")
    assert node.get("/admin/v1/tenants/acme", headers=auth(tok)).json()["display_name"] == "acme"
