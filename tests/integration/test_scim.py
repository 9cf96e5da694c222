"""SCIM 2.0 (RFC 7643 / RFC 7644) against a real refuged: discovery documents,
Users and Groups through every operation (POST, GET, PUT, PATCH, DELETE,
lists and .search), meta and ETags (If-Match, If-None-Match), pagination
edges, uniqueness, the SCIM error schema with its scimType values, scopes and
RFC 6750 challenges, /Me, password policy and hashing, a password-grant login
with a user made here, the query cost bound (tooMany) and a standby's 503.

The filter grammar has its own table in test_scim_filters.py.
"""
import concurrent.futures
import json
import os
import sqlite3
import time
import uuid

import pytest

from refuge import Node

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCHOP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
SCIM_JSON = "application/scim+json"
GOOD_PW = "Correct-Horse-9-Battery"


class Env:
    def __init__(self, node):
        self.node = node
        self._admin = None

    @property
    def url(self):
        return self.node.url

    def admin(self):
        if self._admin is None:
            self._admin = self.node.admin_token()
        return self._admin

    def ah(self, tok=None):
        return {"Authorization": "Bearer " + (tok or self.admin()), "Content-Type": SCIM_JSON}

    @staticmethod
    def prefix(tenant):
        return "/t/%s" % tenant if tenant else ""

    def tenant(self, settings=None):
        name = "t" + uuid.uuid4().hex[:10]
        body = {"name": name, "display_name": name}
        if settings is not None:
            body["settings"] = settings
        r = self.node.post("/admin/v1/tenants", json=body, headers=self.ah())
        assert r.status_code == 201, r.text
        return name

    def client(self, tenant=None, **fields):
        body = {"name": "app", "type": "confidential", "grant_types": ["client_credentials"],
                "scopes": ["scim:read", "scim:write", "api:read"], "default_scopes": ["api:read"],
                "token_format": "jwt"}
        body.update(fields)
        r = self.node.post(self.prefix(tenant) + "/admin/v1/clients", json=body,
                           headers={"Authorization": "Bearer " + self.admin()})
        assert r.status_code == 201, r.text
        return r.json()

    def cc_token(self, tenant, client, scope):
        r = self.node.post(self.prefix(tenant) + "/oauth2/token",
                           data={"grant_type": "client_credentials", "scope": scope},
                           auth=(client["client_id"], client["client_secret"]))
        assert r.status_code == 200, r.text
        return r.json()["access_token"]

    def password_grant(self, tenant, client, username, password, scope=None):
        data = {"grant_type": "password", "username": username, "password": password}
        if scope:
            data["scope"] = scope
        return self.node.post(self.prefix(tenant) + "/oauth2/token", data=data,
                              auth=(client["client_id"], client["client_secret"]))

    # --- SCIM calls
    def req(self, method, path, tenant=None, body=None, tok=None, headers=None, raw=None):
        h = self.ah(tok)
        h.update(headers or {})
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        return self.node.request(method, self.prefix(tenant) + "/scim2" + path, data=data, headers=h)

    def create_user(self, tenant=None, user_name=None, **attrs):
        body = {"schemas": [CORE], "userName": user_name or "u-" + uuid.uuid4().hex[:10]}
        body.update(attrs)
        r = self.req("POST", "/Users", tenant, body)
        assert r.status_code == 201, r.text
        return r.json()

    def create_group(self, tenant=None, name=None, members=()):
        body = {"schemas": [GROUP], "displayName": name or "g-" + uuid.uuid4().hex[:10],
                "members": [{"value": m} for m in members]}
        r = self.req("POST", "/Groups", tenant, body)
        assert r.status_code == 201, r.text
        return r.json()

    def patch(self, path, ops, tenant=None, **kw):
        return self.req("PATCH", path, tenant, {"schemas": [PATCHOP], "Operations": ops}, **kw)

    def get(self, path, tenant=None, **kw):
        return self.req("GET", path, tenant, **kw)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    node = Node(str(tmp_path_factory.mktemp("scim")))
    node.start()
    yield Env(node)
    assert node.stop() == 0, node.tail()


def assert_scim_error(r, status, scim_type=None, detail=None):
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith(SCIM_JSON), r.headers
    e = r.json()
    assert e["schemas"] == [ERROR]
    assert e["status"] == str(status)
    if scim_type:
        assert e.get("scimType") == scim_type, e
    else:
        assert "scimType" not in e or status != 400, e
    if detail:
        assert detail.lower() in e.get("detail", "").lower(), e
    return e


# ---------------------------------------------------------------- discovery

def test_service_provider_config(env):
    r = env.node.get("/scim2/ServiceProviderConfig")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith(SCIM_JSON)
    c = r.json()
    assert c["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"]
    assert c["patch"]["supported"] is True and c["bulk"]["supported"] is False
    assert c["filter"] == {"supported": True, "maxResults": 1000}
    assert c["sort"]["supported"] and c["etag"]["supported"] and c["changePassword"]["supported"]
    assert c["authenticationSchemes"][0]["type"] == "oauthbearertoken"
    assert c["meta"]["location"] == env.url + "/scim2/ServiceProviderConfig"


def test_schemas_and_resource_types(env):
    r = env.node.get("/scim2/Schemas")
    assert r.status_code == 200
    lst = r.json()
    assert lst["schemas"] == [LIST] and lst["totalResults"] == 3
    ids = {s["id"] for s in lst["Resources"]}
    assert ids == {CORE, ENT, GROUP}
    user = env.node.get("/scim2/Schemas/" + CORE).json()
    attrs = {a["name"]: a for a in user["attributes"]}
    assert attrs["userName"]["uniqueness"] == "server" and attrs["userName"]["required"] is True
    assert attrs["password"]["returned"] == "never" and attrs["password"]["mutability"] == "writeOnly"
    assert attrs["groups"]["mutability"] == "readOnly"
    emails = {s["name"]: s for s in attrs["emails"]["subAttributes"]}
    assert set(emails) == {"value", "display", "type", "primary"}
    assert env.node.get("/scim2/Schemas/urn:nope").status_code == 404
    rts = env.node.get("/scim2/ResourceTypes").json()
    assert {t["id"] for t in rts["Resources"]} == {"User", "Group"}
    u = env.node.get("/scim2/ResourceTypes/User").json()
    assert u["endpoint"] == "/Users" and u["schema"] == CORE
    assert u["schemaExtensions"] == [{"schema": ENT, "required": False}]
    assert_scim_error(env.node.get("/scim2/Schemas?filter=id%20pr"), 403)
    assert_scim_error(env.node.get("/t/nosuchtenant/scim2/ServiceProviderConfig"), 404)


# ------------------------------------------------------------------- users

def test_user_lifecycle(env):
    body = {"schemas": [CORE, ENT], "userName": "bjensen-" + uuid.uuid4().hex[:6], "externalId": "ext-1",
            "name": {"givenName": "Barbara", "familyName": "Jensen"}, "displayName": "Babs",
            "emails": [{"value": "bjensen@example.com", "type": "work", "primary": True}],
            ENT: {"employeeNumber": "701984", "manager": {"value": "boss", "displayName": "ignored"}},
            "id": "client-chosen", "meta": {"created": "1999-01-01T00:00:00Z"}, "password": GOOD_PW}
    t0 = int(time.time())
    r = env.req("POST", "/Users", body=body)
    assert r.status_code == 201, r.text
    u = r.json()
    uid = u["id"]
    assert uid != "client-chosen" and len(uid) == 36           # readOnly input ignored
    assert r.headers["Location"] == env.url + "/scim2/Users/" + uid
    assert r.headers["ETag"] == 'W/"1"'
    assert "password" not in u
    assert u["schemas"] == [CORE, ENT]
    assert u["active"] is True
    assert u[ENT] == {"employeeNumber": "701984", "manager": {"value": "boss"}}
    m = u["meta"]
    assert m["resourceType"] == "User" and m["version"] == 'W/"1"' and m["created"] == m["lastModified"]
    assert m["location"] == r.headers["Location"]
    created = time.mktime(time.strptime(m["created"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert abs(created - t0) <= 2

    g = env.get("/Users/" + uid)
    assert g.status_code == 200 and g.json() == u and g.headers["ETag"] == 'W/"1"'

    # PUT replaces everything given; version 2
    put = {"schemas": [CORE], "userName": body["userName"], "name": {"givenName": "Barb"}, "active": False}
    r = env.req("PUT", "/Users/" + uid, body=put)
    assert r.status_code == 200, r.text
    u2 = r.json()
    assert u2["meta"]["version"] == 'W/"2"' and r.headers["ETag"] == 'W/"2"'
    assert u2["name"] == {"givenName": "Barb"} and u2["active"] is False
    assert "emails" not in u2 and ENT not in u2 and "displayName" not in u2
    assert u2["meta"]["created"] == m["created"]
    # PUT with another id in the body
    assert_scim_error(env.req("PUT", "/Users/" + uid, body=dict(put, id="other")), 400, "mutability")

    r = env.req("DELETE", "/Users/" + uid)
    assert r.status_code == 204 and r.text == ""
    assert_scim_error(env.get("/Users/" + uid), 404, detail="not found")
    assert_scim_error(env.req("DELETE", "/Users/" + uid), 404)
    assert_scim_error(env.req("PUT", "/Users/" + uid, body=put), 404)
    assert_scim_error(env.patch("/Users/" + uid, [{"op": "add", "path": "title", "value": "x"}]), 404)


def test_create_errors(env):
    bad = [
        ({"userName": "x"}, "invalidSyntax"),                                   # no schemas
        ({"schemas": [GROUP], "userName": "x"}, "invalidValue"),                 # wrong schema
        ({"schemas": [CORE]}, "invalidValue"),                                   # userName required
        ({"schemas": [CORE], "userName": ""}, "invalidValue"),
        ({"schemas": [CORE], "userName": 42}, "invalidValue"),
        ({"schemas": [CORE], "userName": "x", "shoeSize": 44}, "invalidValue"),
        ({"schemas": [CORE], "userName": "x", "emails": [{"value": "a@b", "colour": "red"}]}, "invalidValue"),
        ({"schemas": [CORE], "userName": "x", "active": "perhaps"}, "invalidValue"),
        ({"schemas": [CORE], "userName": "x", "emails": [{"type": "work"}]}, "invalidValue"),   # no value
        ({"schemas": [CORE], "userName": "x", "emails": [{"value": "A@b"}, {"value": "a@B"}]}, "invalidValue"),
        ({"schemas": [CORE], "userName": "x" * 300}, "invalidValue"),
    ]
    for body, scim_type in bad:
        assert_scim_error(env.req("POST", "/Users", body=body), 400, scim_type)
    assert_scim_error(env.req("POST", "/Users", raw="{not json"), 400, "invalidSyntax")
    assert_scim_error(env.req("POST", "/Users", raw="[1, 2]"), 400, "invalidSyntax")
    r = env.req("POST", "/Users", raw="userName=x", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_scim_error(r, 415)
    # plain application/json is accepted too
    r = env.req("POST", "/Users", body={"schemas": [CORE], "userName": "plainjson-" + uuid.uuid4().hex[:6]},
                headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.text


def test_user_name_unique_ignoring_case(env):
    name = "Unique-" + uuid.uuid4().hex[:6]
    u = env.create_user(user_name=name)
    e = assert_scim_error(env.req("POST", "/Users", body={"schemas": [CORE], "userName": name.upper()}), 409,
                          "uniqueness")
    assert name.upper().lower() in e["detail"].lower()
    other = env.create_user()
    put = {"schemas": [CORE], "userName": name.lower()}
    assert_scim_error(env.req("PUT", "/Users/" + other["id"], body=put), 409, "uniqueness")
    assert_scim_error(env.patch("/Users/" + other["id"], [{"op": "replace", "path": "userName", "value": name}]),
                      409, "uniqueness")
    # the same user may change the case of its own name
    r = env.patch("/Users/" + u["id"], [{"op": "replace", "path": "userName", "value": name.lower()}])
    assert r.status_code == 200 and r.json()["userName"] == name.lower()
    # the same name in another tenant is fine
    t = env.tenant()
    assert env.req("POST", "/Users", t, {"schemas": [CORE], "userName": name}).status_code == 201


# ------------------------------------------------------------------- PATCH

def test_patch_single_valued(env):
    u = env.create_user(name={"givenName": "A", "familyName": "B"}, title="t")
    p = "/Users/" + u["id"]
    r = env.patch(p, [{"op": "replace", "path": "name.givenName", "value": "Z"},
                      {"op": "add", "path": "nickName", "value": "nick"},
                      {"op": "remove", "path": "title"},
                      {"op": "replace", "path": "active", "value": "False"}])
    assert r.status_code == 200, r.text
    v = r.json()
    assert v["name"] == {"givenName": "Z", "familyName": "B"} and v["nickName"] == "nick"
    assert "title" not in v and v["active"] is False
    assert v["meta"]["version"] == 'W/"2"' and r.headers["ETag"] == 'W/"2"'
    # no path: merge
    r = env.patch(p, [{"op": "replace", "value": {"name": {"familyName": "C"}, "displayName": "D"}}])
    assert r.json()["name"] == {"givenName": "Z", "familyName": "C"} and r.json()["displayName"] == "D"
    # a patch that changes nothing keeps the version
    before = env.get(p).json()["meta"]["version"]
    r = env.patch(p, [{"op": "replace", "path": "displayName", "value": "D"}])
    assert r.status_code == 200 and r.json()["meta"]["version"] == before


def test_patch_multi_valued(env):
    u = env.create_user(emails=[{"value": "w@example.com", "type": "work", "primary": True},
                                {"value": "h@example.org", "type": "home"}])
    p = "/Users/" + u["id"]
    r = env.patch(p, [{"op": "replace", "path": 'emails[type eq "work"].value', "value": "w2@example.com"}])
    assert r.status_code == 200, r.text
    assert r.json()["emails"][0] == {"value": "w2@example.com", "type": "work", "primary": True}
    r = env.patch(p, [{"op": "add", "path": "emails", "value": [{"value": "o@x.net", "type": "other",
                                                                 "primary": True}]}])
    em = r.json()["emails"]
    assert len(em) == 3 and [e.get("primary") for e in em] == [False, None, True]
    r = env.patch(p, [{"op": "remove", "path": 'emails[type eq "home"]'}])
    assert [e["value"] for e in r.json()["emails"]] == ["w2@example.com", "o@x.net"]
    # Azure AD style: add through an unmatched eq filter creates the element
    r = env.patch(p, [{"op": "add", "path": 'phoneNumbers[type eq "mobile"].value', "value": "+33 6"}])
    assert r.json()["phoneNumbers"] == [{"type": "mobile", "value": "+33 6"}]
    assert_scim_error(env.patch(p, [{"op": "replace", "path": 'emails[type eq "fax"].value', "value": "x"}]),
                      400, "noTarget")
    assert_scim_error(env.patch(p, [{"op": "remove", "path": 'emails[type eq "fax"]'}]), 400, "noTarget")
    # the email side table follows: the new address is searchable, the old one is not
    found = env.get('/Users?filter=emails.value eq "O@X.NET"').json()
    assert [x["id"] for x in found["Resources"]] == [u["id"]]
    assert env.get('/Users?filter=emails.value eq "h@example.org"').json()["totalResults"] == 0
    # a duplicate address in one user is refused
    assert_scim_error(env.patch(p, [{"op": "add", "path": "emails", "value": [{"value": "O@x.net"}]}]),
                      400, "invalidValue")
    r = env.patch(p, [{"op": "replace", "path": "emails", "value": [{"value": "only@x.net"}]}])
    assert r.json()["emails"] == [{"value": "only@x.net"}]


def test_patch_extension(env):
    u = env.create_user()
    p = "/Users/" + u["id"]
    r = env.patch(p, [{"op": "add", "path": ENT + ":employeeNumber", "value": "42"},
                      {"op": "replace", "path": ENT + ":manager.value", "value": "boss-id"}])
    assert r.status_code == 200, r.text
    v = r.json()
    assert v[ENT] == {"employeeNumber": "42", "manager": {"value": "boss-id"}}
    assert v["schemas"] == [CORE, ENT]
    r = env.patch(p, [{"op": "add", "path": ENT, "value": {"department": "Ops"}}])
    assert r.json()[ENT]["department"] == "Ops"
    found = env.get("/Users?filter=%s:employeeNumber eq \"42\"" % ENT).json()
    assert [x["id"] for x in found["Resources"]] == [u["id"]]
    r = env.patch(p, [{"op": "remove", "path": ENT}])
    assert ENT not in r.json() and r.json()["schemas"] == [CORE]
    assert_scim_error(env.patch(p, [{"op": "add", "path": ENT + ":manager.displayName", "value": "x"}]),
                      400, "mutability")


def test_patch_errors(env):
    u = env.create_user()
    p = "/Users/" + u["id"]
    cases = [
        ([{"op": "replace", "path": "id", "value": "x"}], "mutability"),
        ([{"op": "replace", "path": "meta.lastModified", "value": "2020-01-01T00:00:00Z"}], "mutability"),
        ([{"op": "add", "path": "groups", "value": [{"value": "g"}]}], "mutability"),
        ([{"op": "replace", "value": {"meta": {}}}], "mutability"),
        ([{"op": "replace", "path": "shoeSize", "value": 1}], "invalidPath"),
        ([{"op": "replace", "path": "name..givenName", "value": 1}], "invalidPath"),
        ([{"op": "replace", "path": "emails[type eq]", "value": "x"}], "invalidFilter"),
        ([{"op": "replace", "path": "userName", "value": ["a"]}], "invalidValue"),
        ([{"op": "remove"}], "noTarget"),
        ([{"op": "copy", "path": "title", "value": "x"}], "invalidSyntax"),
        ([{"op": "remove", "path": "userName"}], "invalidValue"),              # required
    ]
    for ops, scim_type in cases:
        assert_scim_error(env.patch(p, ops), 400, scim_type)
    r = env.req("PATCH", p, body={"Operations": [{"op": "add", "path": "title", "value": "x"}]})
    assert_scim_error(r, 400, "invalidSyntax")
    # nothing of a failed patch sticks
    assert env.get(p).json()["meta"]["version"] == 'W/"1"'


# -------------------------------------------------------------------- ETags

def test_etags(env):
    u = env.create_user()
    p = "/Users/" + u["id"]
    op = [{"op": "replace", "path": "title", "value": "v2"}]
    assert_scim_error(env.patch(p, op, headers={"If-Match": 'W/"7"'}), 412)
    r = env.patch(p, op, headers={"If-Match": 'W/"1"'})
    assert r.status_code == 200 and r.headers["ETag"] == 'W/"2"'
    # a second writer holding the old version loses cleanly
    assert_scim_error(env.patch(p, [{"op": "replace", "path": "title", "value": "lost"}],
                                headers={"If-Match": 'W/"1"'}), 412)
    assert env.get(p).json()["title"] == "v2"
    put = {"schemas": [CORE], "userName": u["userName"], "title": "v3"}
    assert_scim_error(env.req("PUT", p, body=put, headers={"If-Match": '"1"'}), 412)
    assert env.req("PUT", p, body=put, headers={"If-Match": 'W/"1", W/"2"'}).status_code == 200
    assert env.patch(p, op, headers={"If-Match": "*"}).status_code == 200
    assert_scim_error(env.req("DELETE", p, headers={"If-Match": 'W/"1"'}), 412)
    # conditional GET
    cur = env.get(p).headers["ETag"]
    r = env.get(p, headers={"If-None-Match": cur})
    assert r.status_code == 304 and r.text == ""
    assert env.get(p, headers={"If-None-Match": 'W/"1"'}).status_code == 200
    assert env.req("DELETE", p, headers={"If-Match": cur}).status_code == 204


def test_concurrent_patches_do_not_lose_updates(env):
    g = env.create_group()
    users = [env.create_user()["id"] for _ in range(12)]

    def add(uid):
        return env.patch("/Groups/" + g["id"], [{"op": "add", "path": "members", "value": [{"value": uid}]}])

    with concurrent.futures.ThreadPoolExecutor(6) as ex:
        codes = [r.status_code for r in ex.map(add, users)]
    assert codes == [200] * len(users)
    got = env.get("/Groups/" + g["id"]).json()
    assert sorted(m["value"] for m in got["members"]) == sorted(users)
    assert got["meta"]["version"] == 'W/"%d"' % (1 + len(users))


# --------------------------------------------------------------- listing

@pytest.fixture(scope="module")
def listing(env):
    """A tenant with 7 users u0..u6 (titles, some without), for paging and sorting."""
    t = env.tenant()
    fams = ["d", "B", None, "a", "C", None, "e"]
    ids = []
    for i, fam in enumerate(fams):
        attrs = {"emails": [{"value": "u%d@x.com" % i}]}
        if fam:
            attrs["name"] = {"familyName": fam}
        ids.append(env.create_user(t, user_name="u%d" % i, **attrs)["id"])
    return t, ids


def names(r):
    assert r.status_code == 200, r.text
    return [x["userName"] for x in r.json()["Resources"]]


def test_pagination(env, listing):
    t, ids = listing
    r = env.get("/Users?count=0", t)
    assert r.status_code == 200
    j = r.json()
    assert j["schemas"] == [LIST] and j["totalResults"] == 7 and j["itemsPerPage"] == 0 and j["Resources"] == []
    j = env.get("/Users?startIndex=100", t).json()
    assert j["totalResults"] == 7 and j["Resources"] == [] and j["startIndex"] == 100
    j = env.get("/Users?sortBy=userName&startIndex=3&count=2", t).json()
    assert [x["userName"] for x in j["Resources"]] == ["u2", "u3"] and j["itemsPerPage"] == 2
    assert j["startIndex"] == 3 and j["totalResults"] == 7
    assert names(env.get("/Users?sortBy=userName&startIndex=0&count=1", t)) == ["u0"]   # < 1 means 1
    assert env.get("/Users?count=-5", t).json()["itemsPerPage"] == 0
    j = env.get("/Users?count=5000", t).json()
    assert j["itemsPerPage"] == 7
    # the default order is stable: by id
    assert [x["id"] for x in env.get("/Users", t).json()["Resources"]] == sorted(ids)
    assert_scim_error(env.get("/Users?count=ten", t), 400, "invalidValue")
    assert_scim_error(env.get("/Users?startIndex=1.5", t), 400, "invalidValue")


def test_count_is_clamped_to_max_results(env):
    t = env.tenant()
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda i: env.create_user(t, user_name="bulk%04d" % i), range(1003)))
    j = env.get("/Users?count=2000&attributes=userName", t).json()
    assert j["totalResults"] == 1003 and j["itemsPerPage"] == 1000 and len(j["Resources"]) == 1000
    j = env.get("/Users?count=2000&startIndex=1001&attributes=userName", t).json()
    assert j["itemsPerPage"] == 3


def test_sorting(env, listing):
    t, _ = listing
    assert names(env.get("/Users?sortBy=userName", t)) == ["u%d" % i for i in range(7)]
    assert names(env.get("/Users?sortBy=USERNAME&sortOrder=descending", t)) == ["u%d" % i for i in range(6, -1, -1)]
    # caseExact false: sorted ignoring case; unassigned last in both orders
    asc = names(env.get("/Users?sortBy=name.familyName", t))
    assert asc[:5] == ["u3", "u1", "u4", "u0", "u6"] and sorted(asc[5:]) == ["u2", "u5"]
    desc = names(env.get("/Users?sortBy=name.familyName&sortOrder=descending", t))
    assert desc[:5] == ["u6", "u0", "u4", "u1", "u3"] and desc[5:] == asc[5:]     # ties: by id
    assert names(env.get("/Users?sortBy=emails&count=2", t)) == ["u0", "u1"]
    assert names(env.get("/Users?sortBy=meta.created&count=1", t))[0] in ("u0", "u1", "u2", "u3", "u4", "u5", "u6")
    assert_scim_error(env.get("/Users?sortBy=password", t), 400, "invalidValue")
    assert_scim_error(env.get("/Users?sortBy=nosuch", t), 400, "invalidValue")
    assert_scim_error(env.get("/Users?sortBy=userName&sortOrder=up", t), 400, "invalidValue")


def test_attributes_selection(env, listing):
    t, ids = listing
    j = env.get("/Users?filter=userName eq \"u0\"&attributes=userName,name.familyName", t).json()
    assert j["Resources"] == [{"schemas": [CORE], "id": ids[0], "userName": "u0", "name": {"familyName": "d"}}]
    u = env.get("/Users/%s?excludedAttributes=emails,meta" % ids[0], t).json()
    assert "emails" not in u and "meta" not in u and u["userName"] == "u0" and u["id"] == ids[0]
    u = env.get("/Users/%s?attributes=meta.version" % ids[0], t).json()
    assert u == {"schemas": [CORE], "id": ids[0], "meta": {"version": 'W/"1"'}}
    assert_scim_error(env.get("/Users?attributes=userName&excludedAttributes=emails", t), 400, "invalidValue")
    assert_scim_error(env.get("/Users?attributes=nosuch", t), 400, "invalidValue")
    # attributes also shape write responses
    r = env.node.request("PATCH", "/t/%s/scim2/Users/%s?attributes=title" % (t, ids[0]), headers=env.ah(),
                         data=json.dumps({"schemas": [PATCHOP],
                                          "Operations": [{"op": "replace", "path": "title", "value": "x"}]}))
    assert r.json() == {"schemas": [CORE], "id": ids[0], "title": "x"}


def test_search_endpoints(env, listing):
    t, ids = listing
    g = env.create_group(t, "searchers", members=[ids[1]])
    body = {"schemas": [SEARCH], "filter": 'userName sw "u"', "sortBy": "userName", "sortOrder": "descending",
            "startIndex": 2, "count": 2, "attributes": ["userName"]}
    r = env.req("POST", "/Users/.search", t, body)
    assert r.status_code == 200, r.text
    assert [x["userName"] for x in r.json()["Resources"]] == ["u5", "u4"] and r.json()["totalResults"] == 7
    r = env.req("POST", "/Groups/.search", t, {"schemas": [SEARCH], "filter": 'displayName eq "SEARCHERS"'})
    assert [x["id"] for x in r.json()["Resources"]] == [g["id"]]
    # the root search covers both types; a filter valid for one type only selects from it
    r = env.req("POST", "/.search", t, {"schemas": [SEARCH], "filter": 'id pr', "count": 100})
    j = r.json()
    assert j["totalResults"] == 8 and len(j["Resources"]) == 8
    assert {x["schemas"][0] for x in j["Resources"]} == {CORE, GROUP}
    r = env.req("POST", "/.search", t, {"schemas": [SEARCH], "filter": 'displayName eq "searchers"'})
    assert [x["id"] for x in r.json()["Resources"]] == [g["id"]]
    r = env.req("POST", "/.search", t, {"schemas": [SEARCH], "startIndex": 7, "count": 2})
    j = r.json()
    assert j["totalResults"] == 8 and [x["schemas"][0] for x in j["Resources"]] == [CORE, GROUP]
    assert_scim_error(env.req("POST", "/.search", t, {"schemas": [SEARCH], "filter": "nosuch pr"}), 400,
                      "invalidFilter")
    assert_scim_error(env.req("POST", "/Users/.search", t, {"filter": "id pr"}), 400, "invalidSyntax")
    assert_scim_error(env.req("POST", "/Users/.search", t, {"schemas": [SEARCH], "count": "x"}), 400,
                      "invalidValue")


# ------------------------------------------------------------------ groups

def test_groups(env):
    t = env.tenant()
    alice = env.create_user(t, "alice", displayName="Alice A")
    bob = env.create_user(t, "bob")
    inner = env.create_group(t, "Inner", members=[bob["id"]])
    r = env.req("POST", "/Groups", t, {"schemas": [GROUP], "displayName": "Admins", "externalId": "adm",
                                       "members": [{"value": alice["id"], "type": "User"},
                                                   {"value": inner["id"]}, {"value": alice["id"]}]})
    assert r.status_code == 201, r.text
    g = r.json()
    base = env.url + "/t/%s/scim2" % t
    assert g["members"] == [
        {"value": alice["id"], "$ref": base + "/Users/" + alice["id"], "type": "User", "display": "Alice A"},
        {"value": inner["id"], "$ref": base + "/Groups/" + inner["id"], "type": "Group", "display": "Inner"}]
    assert r.headers["Location"] == base + "/Groups/" + g["id"]
    a = env.get("/Users/" + alice["id"], t).json()
    assert a["groups"] == [{"value": g["id"], "$ref": base + "/Groups/" + g["id"], "display": "Admins",
                            "type": "direct"}]
    assert a["meta"]["version"] == 'W/"2"'                 # the membership changed the user
    assert_scim_error(env.req("POST", "/Groups", t, {"schemas": [GROUP], "displayName": "ADMINS"}), 409,
                      "uniqueness")
    assert_scim_error(env.req("POST", "/Groups", t, {"schemas": [GROUP], "displayName": "x",
                                                     "members": [{"value": "nobody"}]}), 400, "invalidValue")
    assert_scim_error(env.req("POST", "/Groups", t, {"schemas": [GROUP], "displayName": "y",
                                                     "members": [{"value": bob["id"], "type": "Group"}]}),
                      400, "invalidValue")
    assert_scim_error(env.req("POST", "/Groups", t, {"schemas": [GROUP]}), 400, "invalidValue")

    # rename: members' groups follow; filters on both sides agree
    r = env.patch("/Groups/" + g["id"], [{"op": "replace", "path": "displayName", "value": "Operators"}], t)
    assert r.status_code == 200, r.text
    assert env.get("/Users/" + alice["id"], t).json()["groups"][0]["display"] == "Operators"
    assert names(env.get('/Users?filter=groups.display eq "operators"', t)) == ["alice"]
    assert names(env.get('/Users?filter=groups.value eq "%s"' % g["id"], t)) == ["alice"]
    r = env.get('/Groups?filter=members.value eq "%s"' % alice["id"], t)
    assert [x["id"] for x in r.json()["Resources"]] == [g["id"]]
    r = env.get('/Groups?filter=members[type eq "Group"]', t)
    assert [x["id"] for x in r.json()["Resources"]] == [g["id"]]

    # PATCH members: add bob, remove alice (filter), then Azure-style remove by value
    r = env.patch("/Groups/" + g["id"], [{"op": "add", "path": "members", "value": [{"value": bob["id"]}]},
                                         {"op": "remove", "path": 'members[value eq "%s"]' % alice["id"]}], t)
    assert [m["value"] for m in r.json()["members"]] == [inner["id"], bob["id"]]
    assert "groups" not in env.get("/Users/" + alice["id"], t).json()
    assert [x["display"] for x in env.get("/Users/" + bob["id"], t).json()["groups"]] == ["Inner", "Operators"]
    r = env.patch("/Groups/" + g["id"], [{"op": "Remove", "path": "members", "value": [{"value": bob["id"]}]}], t)
    assert [m["value"] for m in r.json()["members"]] == [inner["id"]]
    assert_scim_error(env.patch("/Groups/" + g["id"], [{"op": "add", "path": "members",
                                                        "value": [{"value": g["id"]}]}], t), 400, "invalidValue")
    # excludedAttributes=members (large groups)
    assert "members" not in env.get("/Groups/%s?excludedAttributes=members" % g["id"], t).json()

    # a renamed member shows its new name in the group
    env.patch("/Groups/" + inner["id"], [{"op": "replace", "path": "displayName", "value": "Inner2"}], t)
    assert env.get("/Groups/" + g["id"], t).json()["members"][0]["display"] == "Inner2"
    env.patch("/Users/" + bob["id"], [{"op": "add", "path": "displayName", "value": "Bobby"}], t)
    assert env.get("/Groups/" + inner["id"], t).json()["members"][0]["display"] == "Bobby"

    # deleting a member removes it from its groups; deleting a group from its members
    assert env.req("DELETE", "/Users/" + bob["id"], t).status_code == 204
    assert "members" not in env.get("/Groups/" + inner["id"], t).json()
    env.patch("/Groups/" + g["id"], [{"op": "add", "path": "members", "value": [{"value": alice["id"]}]}], t)
    assert env.req("DELETE", "/Groups/" + inner["id"], t).status_code == 204
    assert [m["value"] for m in env.get("/Groups/" + g["id"], t).json()["members"]] == [alice["id"]]
    assert env.req("DELETE", "/Groups/" + g["id"], t).status_code == 204
    assert "groups" not in env.get("/Users/" + alice["id"], t).json()
    assert_scim_error(env.get("/Groups/" + g["id"], t), 404)
    # PUT replaces members
    g2 = env.create_group(t, "g2", members=[alice["id"]])
    r = env.req("PUT", "/Groups/" + g2["id"], t, {"schemas": [GROUP], "displayName": "g2", "members": []})
    assert r.status_code == 200 and "members" not in r.json()
    assert "groups" not in env.get("/Users/" + alice["id"], t).json()


# ------------------------------------------------------------------- scopes

def test_scopes_and_challenges(env):
    t = env.tenant()
    c = env.client(t)
    read = env.cc_token(t, c, "scim:read")
    write = env.cc_token(t, c, "scim:write")
    other = env.cc_token(t, c, "api:read")
    u = env.create_user(t)

    r = env.node.get("/t/%s/scim2/Users" % t)
    e = assert_scim_error(r, 401)
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    r = env.node.get("/t/%s/scim2/Users" % t, headers={"Authorization": "Bearer nope.nope.nope"})
    assert_scim_error(r, 401)
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]

    assert env.get("/Users/" + u["id"], t, tok=read).status_code == 200
    assert env.get("/Users", t, tok=write).status_code == 200
    r = env.req("POST", "/Users", t, {"schemas": [CORE], "userName": "nope"}, tok=read)
    e = assert_scim_error(r, 403)
    assert 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
    assert "scim:write" in r.headers["WWW-Authenticate"]
    assert e["detail"]
    for method, path, body in [("PATCH", "/Users/" + u["id"], {"schemas": [PATCHOP], "Operations": []}),
                               ("PUT", "/Users/" + u["id"], {}), ("DELETE", "/Users/" + u["id"], None),
                               ("POST", "/Groups", {})]:
        assert_scim_error(env.req(method, path, t, body, tok=read), 403)
    assert_scim_error(env.get("/Users", t, tok=other), 403)
    assert env.req("POST", "/Users", t, {"schemas": [CORE], "userName": "w-" + uuid.uuid4().hex[:6]},
                   tok=write).status_code == 201
    # a token of another tenant is no good here; the operator's admin token is
    t2 = env.tenant()
    assert_scim_error(env.get("/Users", t2, tok=read), 401)
    assert env.get("/Users", t2).status_code == 200
    # the tenant's own admin token works too
    ca = env.client(t, scopes=["refuge:admin"], default_scopes=["refuge:admin"])
    assert env.get("/Users", t, tok=env.cc_token(t, ca, "refuge:admin")).status_code == 200
    # discovery needs no token
    assert env.node.get("/t/%s/scim2/ResourceTypes" % t).status_code == 200


# ----------------------------------------------------------- passwords, /Me

def test_password_policy(env):
    t = env.tenant({"password_policy": {"min_length": 12, "require_upper": True, "require_lower": True,
                                        "require_digit": True, "require_symbol": True},
                    "argon2": {"memory_kib": 1024, "iterations": 1}})
    cases = [
        ("Sh0rt!", "min_length"),
        ("nouppercase-12", "require_upper"),
        ("NOLOWERCASE-12", "require_lower"),
        ("No-Digits-Here!", "require_digit"),
        ("NoSymbols12345", "require_symbol"),
    ]
    for pw, rule in cases:
        r = env.req("POST", "/Users", t, {"schemas": [CORE], "userName": "p-" + uuid.uuid4().hex[:6],
                                          "password": pw})
        e = assert_scim_error(r, 400, "invalidValue")
        assert rule in e["detail"] and pw not in e["detail"]
    name = "Pw-User-Name1!"
    r = env.req("POST", "/Users", t, {"schemas": [CORE], "userName": name, "password": "pw-user-NAME1!"})
    assert_scim_error(r, 400, "invalidValue", "userName")
    r = env.req("POST", "/Users", t, {"schemas": [CORE], "userName": name, "password": "x" * 1025})
    assert_scim_error(r, 400, "invalidValue")
    u = env.create_user(t, name, password=GOOD_PW)
    # PATCH and PUT go through the same policy; the userName rule sees the patched resource
    p = "/Users/" + u["id"]
    assert_scim_error(env.patch(p, [{"op": "replace", "path": "password", "value": "weak"}], t), 400, "invalidValue")
    assert_scim_error(env.patch(p, [{"op": "replace", "path": "userName", "value": "Xx-Name-12345"},
                                    {"op": "replace", "path": "password", "value": "xx-NAME-12345"}], t),
                      400, "invalidValue", "userName")
    assert_scim_error(env.req("PUT", p, t, {"schemas": [CORE], "userName": name, "password": "weak"}), 400,
                      "invalidValue")
    # never returned, never searchable, never logged
    for r in (env.get(p, t), env.get(p + "?attributes=password", t), env.get("/Users", t)):
        assert "password" not in r.text.lower().replace("password_policy", ""), r.text
    assert_scim_error(env.get('/Users?filter=password eq "%s"' % GOOD_PW, t), 400, "invalidFilter")
    with open(env.node.log_path) as f:
        log = f.read()
    assert GOOD_PW not in log and "Sh0rt!" not in log
    # stored as an argon2id PHC string with the tenant's parameters
    db = sqlite3.connect(os.path.join(env.node.data_dir, "refuge.db"))
    (h,) = db.execute("SELECT password_hash FROM users WHERE id = ?", (u["id"],)).fetchone()
    db.close()
    assert h.startswith("$argon2id$v=19$m=1024,t=1,p=1$")


def test_password_login_and_me(env):
    t = env.tenant()
    c = env.client(t, grant_types=["password", "client_credentials"], scopes=["openid", "scim:read"],
                   default_scopes=["openid"])
    name = "login-" + uuid.uuid4().hex[:6]
    u = env.create_user(t, name, password=GOOD_PW, emails=[{"value": name + "@x.com"}])
    r = env.password_grant(t, c, name.upper(), GOOD_PW)
    assert r.status_code == 200, r.text
    tok = r.json()["access_token"]

    # /Me with the user's own token, whatever its scopes
    r = env.get("/Me", t, tok=tok)
    assert r.status_code == 200, r.text
    assert r.json()["id"] == u["id"] and r.json()["userName"] == name
    assert r.headers["Content-Location"].endswith("/scim2/Users/" + u["id"])
    r = env.patch("/Me", [{"op": "add", "path": "nickName", "value": "me"}], t, tok=tok)
    assert r.status_code == 200 and r.json()["nickName"] == "me"
    assert_scim_error(env.get("/Me", t, tok=env.cc_token(t, c, "scim:read")), 404)
    assert_scim_error(env.node.get("/t/%s/scim2/Me" % t), 401)
    assert env.req("DELETE", "/Me", t, tok=tok).status_code == 405

    # changing the password through SCIM: the old one stops working
    new_pw = "Another-Passw0rd-7"
    assert env.patch("/Users/" + u["id"], [{"op": "replace", "path": "password", "value": new_pw}],
                     t).status_code == 200
    assert env.password_grant(t, c, name, GOOD_PW).status_code == 400
    assert env.password_grant(t, c, name, new_pw).status_code == 200
    # active = false refuses the login
    assert env.patch("/Users/" + u["id"], [{"op": "replace", "path": "active", "value": False}],
                     t).status_code == 200
    assert env.password_grant(t, c, name, new_pw).status_code == 400
    env.patch("/Users/" + u["id"], [{"op": "replace", "path": "active", "value": True}], t)
    assert env.password_grant(t, c, name, new_pw).status_code == 200
    # removing the password
    assert env.patch("/Users/" + u["id"], [{"op": "remove", "path": "password"}], t).status_code == 200
    assert env.password_grant(t, c, name, new_pw).status_code == 400
    # deleting the user: its /Me is gone
    assert env.req("DELETE", "/Users/" + u["id"], t).status_code == 204
    assert_scim_error(env.get("/Me", t, tok=tok), 404)


def test_lockout_and_password_reset(env):
    t = env.tenant({"lockout": {"max_failures": 3, "duration": 600}})
    c = env.client(t, grant_types=["password"], scopes=["openid"], default_scopes=["openid"])
    name = "locked-" + uuid.uuid4().hex[:6]
    u = env.create_user(t, name, password=GOOD_PW)
    for _ in range(3):
        assert env.password_grant(t, c, name, "wrong-password").status_code == 400
    assert env.password_grant(t, c, name, GOOD_PW).status_code == 400          # locked now
    # an administrator setting a new password through SCIM also lifts the lock
    new_pw = "Reset-Passw0rd-99"
    r = env.req("PUT", "/Users/" + u["id"], t, {"schemas": [CORE], "userName": name, "password": new_pw})
    assert r.status_code == 200, r.text
    assert env.password_grant(t, c, name, new_pw).status_code == 200
    # a PUT without a password keeps the one stored
    r = env.req("PUT", "/Users/" + u["id"], t, {"schemas": [CORE], "userName": name, "title": "x"})
    assert r.status_code == 200
    assert env.password_grant(t, c, name, new_pw).status_code == 200


def test_tenant_prefix_and_default_root(env):
    t = env.tenant()
    u = env.create_user(t)
    assert u["meta"]["location"] == env.url + "/t/%s/scim2/Users/%s" % (t, u["id"])
    assert_scim_error(env.get("/Users/" + u["id"]), 404)          # not in the default tenant
    assert env.get("/Users/" + u["id"], t).status_code == 200
    assert_scim_error(env.get("/Users", "nosuchtenant0"), 404, detail="no such tenant")


# ------------------------------------------------------------ cost bound

def test_query_budget_too_many(tmp_path):
    node = Node(str(tmp_path), env={"REFUGE_SCIM_QUERY_BUDGET_MS": "0"}).start()
    try:
        e = Env(node)
        for i in range(60):
            e.create_user(user_name="busy%02d" % i, title="t%d" % i)
        # an indexed lookup stays under the bound; a scan of JSON over every user does not
        assert names(e.get('/Users?filter=userName eq "busy07"')) == ["busy07"]
        assert_scim_error(e.get('/Users?filter=title co "t" or nickName co "x"&sortBy=title'), 400, "tooMany")
    finally:
        assert node.stop() == 0, node.tail()


# ----------------------------------------------------------------- standby

def test_standby_answers_503(tmp_path):
    node = Node(str(tmp_path)).start()
    e = Env(node)
    u = e.create_user(user_name="before-standby")
    node.stop()
    db = sqlite3.connect(os.path.join(node.data_dir, "refuge.db"))
    with db:
        db.execute("UPDATE node_state SET value = 'standby' WHERE key = 'role'")
    db.close()
    node.start()
    try:
        e = Env(node)
        assert e.get("/Users/" + u["id"]).status_code == 200           # reads still work
        for method, path, body in [("POST", "/Users", {"schemas": [CORE], "userName": "x"}),
                                   ("POST", "/Users", {"schemas": [CORE], "userName": "y", "password": GOOD_PW}),
                                   ("PATCH", "/Users/" + u["id"], {"schemas": [PATCHOP], "Operations": [
                                       {"op": "add", "path": "title", "value": "t"}]}),
                                   ("DELETE", "/Users/" + u["id"], None)]:
            r = e.req(method, path, body=body)
            err = assert_scim_error(r, 503, detail="standby")
            assert err["error"] == "temporarily_unavailable"
    finally:
        assert node.stop() == 0, node.tail()


def _jwt_payload(tok):
    import base64
    part = tok.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def test_groups_claim_in_tokens_when_groups_scope(env):
    """Issue 4 item 6: the user's groups appear in the access token, the ID
    token and userinfo when the client asks for the `groups` scope — and
    not otherwise."""
    t = env.tenant()
    u = env.create_user(t, "gina", password=GOOD_PW)
    env.create_group(t, "Pilots", members=[u["id"]])
    env.create_group(t, "Crew", members=[u["id"]])
    c = env.client(t, grant_types=["password"], scopes=["openid", "groups", "profile"],
                   default_scopes=["openid"])
    r = env.password_grant(t, c, "gina", GOOD_PW, scope="openid groups")
    assert r.status_code == 200, r.text
    body = r.json()
    assert _jwt_payload(body["access_token"])["groups"] == ["Crew", "Pilots"]
    assert _jwt_payload(body["id_token"])["groups"] == ["Crew", "Pilots"]
    ui = env.node.get(env.prefix(t) + "/oauth2/userinfo",
                      headers={"Authorization": "Bearer " + body["access_token"]})
    assert ui.status_code == 200 and ui.json()["groups"] == ["Crew", "Pilots"]
    r = env.password_grant(t, c, "gina", GOOD_PW, scope="openid")
    assert r.status_code == 200, r.text
    assert "groups" not in _jwt_payload(r.json()["access_token"])
    assert "groups" not in _jwt_payload(r.json()["id_token"])
