"""Interop suite set-up: one real refuged for the whole session, shared by the
authlib tests (test_authlib.py) and the Node clients (test_node_clients.py).

The session fixture `interop` starts the node and prepares what third-party
clients need but must not create themselves:
  - tenants `interop-rs` and `interop-ed`, whose signing keys are rotated to
    RS256 and EdDSA through the admin API (the default tenant signs ES256);
  - one user with a password in each of the three tenants, for the password
    grant. Users are created through SCIM (POST /scim2/Users) when the node
    has it; otherwise the row is inserted into the node's refuge.db directly
    with an argon2id PHC hash made by libsodium (ctypes), the same format
    crypto/password.c writes.
Clients are created by the tests themselves through the admin API.
"""
import ctypes
import ctypes.util
import json
import os
import sqlite3
import sys
import time
import uuid

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "pylib"))
from refuge import Node  # noqa: E402

USER_PASSWORD = "Interop-Passw0rd!"
TENANT_ALGS = {"default": "ES256", "interop-rs": "RS256", "interop-ed": "EdDSA"}


def argon2id_phc(password):
    """argon2id PHC string with the server's default parameters (m=19456 KiB, t=2)."""
    lib = ctypes.CDLL(ctypes.util.find_library("sodium") or "libsodium.so.23")
    if lib.sodium_init() < 0:
        raise RuntimeError("sodium_init failed")
    lib.crypto_pwhash_str.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulonglong,
                                      ctypes.c_ulonglong, ctypes.c_size_t]
    out = ctypes.create_string_buffer(128)
    pw = password.encode()
    if lib.crypto_pwhash_str(out, pw, len(pw), 2, 19456 * 1024) != 0:
        raise RuntimeError("crypto_pwhash_str failed")
    return out.value.decode()


def scim_resource(user_name):
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "displayName": "Interop User",
        "name": {"givenName": "Interop", "familyName": "User", "formatted": "Interop User"},
        "emails": [{"value": "%s@example.test" % user_name, "primary": True, "type": "work"}],
        "active": True,
    }


def insert_user_row(node, tenant, user_name, password):
    """Direct insert into refuge.db (the node is running; the store's writer
    and this connection serialize on SQLite's lock, busy timeout 10 s)."""
    uid = str(uuid.uuid4())
    now = int(time.time())
    res = scim_resource(user_name)
    res["id"] = uid
    res["meta"] = {"resourceType": "User", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
                   "lastModified": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))}
    db = sqlite3.connect(os.path.join(node.data_dir, "refuge.db"), timeout=10)
    try:
        with db:
            db.execute("INSERT INTO users (tenant, id, user_name, user_name_lc, active, password_hash, data,"
                       " created_at, updated_at) VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?)",
                       (tenant, uid, user_name, user_name.lower(), argon2id_phc(password),
                        json.dumps(res), now, now))
            db.execute("INSERT INTO user_emails (tenant, user_id, value_lc, type) VALUES (?, ?, ?, 'work')",
                       (tenant, uid, res["emails"][0]["value"].lower()))
    finally:
        db.close()
    return uid


def create_user(node, token, tenant, user_name, password):
    prefix = "" if tenant == "default" else "/t/%s" % tenant
    body = scim_resource(user_name)
    body["password"] = password
    r = node.post(prefix + "/scim2/Users", json=body, headers={"Authorization": "Bearer " + token,
                                                                "Content-Type": "application/scim+json"})
    if r.status_code == 201:
        return r.json()["id"], "scim"
    if r.status_code not in (401, 403, 404, 405):
        raise AssertionError("SCIM user create: %d %s" % (r.status_code, r.text))
    return insert_user_row(node, tenant, user_name, password), "sqlite"


def admin_call(node, token, method, path, body=None, expect=(200, 201)):
    r = node.request(method, path, json=body, headers={"Authorization": "Bearer " + token})
    assert r.status_code in expect, "%s %s -> %d %s" % (method, path, r.status_code, r.text)
    return r.json() if r.content else None


@pytest.fixture(scope="session")
def interop(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("interop"))
    node = Node(workdir).start()
    try:
        token = node.admin_token()
        tenants = {}
        for name, alg in TENANT_ALGS.items():
            if name != "default":
                admin_call(node, token, "POST", "/admin/v1/tenants",
                           {"name": name, "display_name": "Interop %s" % alg})
                admin_call(node, token, "POST", "/t/%s/admin/v1/keys/rotate" % name, {"alg": alg})
            user_name = "alice-%s" % name
            uid, how = create_user(node, token, name, user_name, USER_PASSWORD)
            issuer = node.url if name == "default" else "%s/t/%s" % (node.url, name)
            tenants[name] = {"issuer": issuer, "alg": alg,
                             "user": {"id": uid, "username": user_name, "password": USER_PASSWORD,
                                      "created_by": how}}
        yield {"node": node, "url": node.url, "admin": node.bootstrap_admin(), "tenants": tenants}
    finally:
        node.kill()


@pytest.fixture
def node(interop):
    return interop["node"]


@pytest.fixture
def admin_token(interop):
    return interop["node"].admin_token()


@pytest.fixture
def make_client(interop):
    """make_client(tenant, **fields) -> the admin API's create response (with client_secret)."""
    node = interop["node"]

    def make(tenant="default", **fields):
        token = node.admin_token()
        prefix = "" if tenant == "default" else "/t/%s" % tenant
        body = {"name": "interop-%s" % uuid.uuid4().hex[:8], "type": "confidential",
                "grant_types": ["client_credentials"], "scopes": ["api:read", "api:write"],
                "default_scopes": ["api:read"], "token_format": "jwt"}
        body.update(fields)
        return admin_call(node, token, "POST", prefix + "/admin/v1/clients", body, expect=(201,))

    return make
