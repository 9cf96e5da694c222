"""Interop with Authlib (Debian's python3-authlib): its OAuth2Session speaks to
our token, introspection and revocation endpoints, and authlib.jose verifies
our JWT access and ID tokens against our JWKS, for ES256, RS256 and EdDSA
tenants. Nothing here builds a request by hand: what Authlib sends is what
any Python client of Refuge will send."""
import os
import time

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from authlib.jose import JsonWebKey, JsonWebToken
from authlib.jose.errors import JoseError

# Authlib refuses plain-http token endpoints other than http://localhost:
# the node listens on 127.0.0.1 for the test.
os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"


def discover(issuer):
    r = requests.get(issuer + "/.well-known/openid-configuration", timeout=10)
    assert r.status_code == 200, r.text
    meta = r.json()
    assert meta["issuer"] == issuer
    return meta


def jwks_of(meta):
    r = requests.get(meta["jwks_uri"], timeout=10)
    assert r.status_code == 200, r.text
    return JsonWebKey.import_key_set(r.json())


def verify(token, meta, alg, audience, typ=None):
    """Decodes and validates with authlib.jose, only `alg` allowed."""
    claims = JsonWebToken([alg]).decode(
        token, jwks_of(meta),
        claims_options={"iss": {"essential": True, "value": meta["issuer"]},
                        "aud": {"essential": True, "value": audience},
                        "exp": {"essential": True}, "iat": {"essential": True}})
    claims.validate(leeway=5)
    assert claims.header["alg"] == alg
    assert claims.header.get("kid")
    if typ:
        assert claims.header.get("typ") == typ
    return claims


def session(client, method, scope=None):
    return OAuth2Session(client["client_id"], client["client_secret"], token_endpoint_auth_method=method,
                         scope=scope)


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_client_credentials(interop, make_client, method):
    meta = discover(interop["url"])
    assert method in meta["token_endpoint_auth_methods_supported"]
    assert "client_credentials" in meta["grant_types_supported"]
    client = make_client()
    s = session(client, method, scope="api:read api:write")
    tok = s.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
    assert tok["token_type"].lower() == "bearer"
    assert 0 < tok["expires_in"] <= 3600
    assert "refresh_token" not in tok
    assert set(tok["scope"].split()) == {"api:read", "api:write"}
    claims = verify(tok["access_token"], meta, "ES256", meta["issuer"], typ="at+jwt")
    assert claims["sub"] == client["client_id"]
    assert claims["client_id"] == client["client_id"]
    assert set(claims["scope"].split()) == {"api:read", "api:write"}
    assert len(claims["jti"]) == 36
    assert claims["exp"] - claims["iat"] == tok["expires_in"]


def test_client_credentials_default_scopes(interop, make_client):
    meta = discover(interop["url"])
    client = make_client()
    tok = session(client, "client_secret_basic").fetch_token(meta["token_endpoint"],
                                                             grant_type="client_credentials")
    assert tok["scope"] == "api:read"


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_wrong_secret_is_oauth_error(interop, make_client, method):
    meta = discover(interop["url"])
    client = dict(make_client(), client_secret="not-the-secret")
    with pytest.raises(OAuthError) as e:
        session(client, method).fetch_token(meta["token_endpoint"], grant_type="client_credentials")
    assert e.value.error == "invalid_client"


def test_scope_outside_client_is_invalid_scope(interop, make_client):
    meta = discover(interop["url"])
    client = make_client()
    with pytest.raises(OAuthError) as e:
        session(client, "client_secret_basic", scope="api:admin").fetch_token(
            meta["token_endpoint"], grant_type="client_credentials")
    assert e.value.error == "invalid_scope"


@pytest.mark.parametrize("tenant", ["default", "interop-rs", "interop-ed"])
def test_password_grant_and_id_token(interop, make_client, tenant):
    t = interop["tenants"][tenant]
    meta = discover(t["issuer"])
    assert "password" in meta["grant_types_supported"]
    assert t["alg"] in meta["id_token_signing_alg_values_supported"]
    client = make_client(tenant, grant_types=["password", "refresh_token"],
                         scopes=["openid", "profile", "email", "api:read"], default_scopes=["api:read"])
    s = session(client, "client_secret_post", scope="openid profile email api:read")
    tok = s.fetch_token(meta["token_endpoint"], username=t["user"]["username"], password=t["user"]["password"])
    assert tok["refresh_token"] and tok["id_token"]

    at = verify(tok["access_token"], meta, t["alg"], meta["issuer"], typ="at+jwt")
    assert at["sub"] == t["user"]["id"]
    assert at["client_id"] == client["client_id"]
    assert abs(at["auth_time"] - time.time()) < 60

    idt = verify(tok["id_token"], meta, t["alg"], client["client_id"])
    assert idt["sub"] == t["user"]["id"]
    assert idt["preferred_username"] == t["user"]["username"]
    assert idt["email"] == "%s@example.test" % t["user"]["username"]
    assert idt["given_name"] == "Interop"

    # the session now carries the bearer token: userinfo answers for the user
    r = s.get(meta["userinfo_endpoint"], timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["sub"] == t["user"]["id"]

    # refresh through Authlib: rotation hands back a new refresh token
    new = s.refresh_token(meta["token_endpoint"], refresh_token=tok["refresh_token"])
    assert new["refresh_token"] != tok["refresh_token"]
    verify(new["access_token"], meta, t["alg"], meta["issuer"], typ="at+jwt")


def test_password_grant_wrong_password(interop, make_client):
    t = interop["tenants"]["default"]
    meta = discover(t["issuer"])
    client = make_client(grant_types=["password"], scopes=["api:read"])
    with pytest.raises(OAuthError) as e:
        session(client, "client_secret_basic").fetch_token(meta["token_endpoint"], username=t["user"]["username"],
                                                           password="wrong-password")
    assert e.value.error == "invalid_grant"


def test_introspect_and_revoke_opaque(interop, make_client):
    meta = discover(interop["url"])
    client = make_client(token_format="opaque")
    s = session(client, "client_secret_basic")
    tok = s.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
    assert len(tok["access_token"]) == 43 and tok["access_token"].count(".") == 0

    info = s.introspect_token(meta["introspection_endpoint"], token=tok["access_token"]).json()
    assert info["active"] is True
    assert info["client_id"] == client["client_id"]
    assert info["scope"] == "api:read"

    r = s.revoke_token(meta["revocation_endpoint"], token=tok["access_token"], token_type_hint="access_token")
    assert r.status_code == 200
    info = s.introspect_token(meta["introspection_endpoint"], token=tok["access_token"]).json()
    assert info == {"active": False}


def test_introspect_jwt_and_tampered(interop, make_client):
    meta = discover(interop["url"])
    client = make_client()
    s = session(client, "client_secret_post")
    tok = s.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
    info = s.introspect_token(meta["introspection_endpoint"], token=tok["access_token"]).json()
    assert info["active"] is True and info["sub"] == client["client_id"]
    h, p, sig = tok["access_token"].split(".")
    forged = ".".join([h, p, sig[:-4] + ("AAAA" if sig[-4:] != "AAAA" else "BBBB")])
    assert s.introspect_token(meta["introspection_endpoint"], token=forged).json() == {"active": False}
    with pytest.raises(JoseError):
        verify(forged, meta, "ES256", meta["issuer"])
