// Shared helpers of the Node interop tests. The pytest side
// (tests/interop/test_node_clients.py) starts the node, prepares tenants and
// users, and passes everything in REFUGE_INTEROP (JSON):
//   {"url", "admin": {"client_id","client_secret"},
//    "tenants": {NAME: {"issuer","alg","user": {"id","username","password"}}}}
// Clients are created here through the admin API with plain fetch; all
// OAuth traffic goes through openid-client, all JWT checks through jose.
import assert from 'node:assert/strict';
import * as client from 'openid-client';

export const env = JSON.parse(process.env.REFUGE_INTEROP ?? 'null');
assert.ok(env, 'REFUGE_INTEROP is not set: run these tests through pytest tests/interop');

export const tenantPrefix = (tenant) => (tenant === 'default' ? '' : `/t/${tenant}`);

let adminToken;
export async function admin(method, path, body, expect = [200, 201]) {
  if (!adminToken) {
    const r = await fetch(`${env.url}/oauth2/token`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: 'Basic ' + Buffer.from(`${encodeURIComponent(env.admin.client_id)}:${encodeURIComponent(env.admin.client_secret)}`).toString('base64'),
      },
      body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'refuge:admin' }),
    });
    assert.equal(r.status, 200, await r.clone().text());
    adminToken = (await r.json()).access_token;
  }
  const r = await fetch(`${env.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${adminToken}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  assert.ok(expect.includes(r.status), `${method} ${path} -> ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

let seq = 0;
// Creates a confidential client in `tenant` (admin API) and returns the
// create response (client_id, client_secret once).
export async function makeClient(tenant = 'default', fields = {}) {
  const body = {
    name: `node-interop-${process.pid}-${++seq}`,
    type: 'confidential',
    grant_types: ['client_credentials'],
    scopes: ['api:read', 'api:write'],
    default_scopes: ['api:read'],
    token_format: 'jwt',
    ...fields,
  };
  const c = await admin('POST', `${tenantPrefix(tenant)}/admin/v1/clients`, body, [201]);
  assert.ok(c.client_id && c.client_secret, 'create response carries client_id and client_secret');
  return c;
}

// openid-client configuration by OIDC discovery of the tenant's issuer.
export async function configFor(issuer, c, auth = 'basic') {
  const method = auth === 'post' ? client.ClientSecretPost(c.client_secret) : client.ClientSecretBasic(c.client_secret);
  return client.discovery(new URL(issuer), c.client_id, c.client_secret, method,
    { execute: [client.allowInsecureRequests] });
}

// Asserts that `promise` rejects with the OAuth error response `code`. A
// 401 answer carries a WWW-Authenticate challenge (RFC 7235 §3.1 requires
// one on every 401), which openid-client surfaces as
// WWWAuthenticateChallengeError rather than ResponseBodyError: then the
// error code is read from the response body.
export async function rejectsWith(promise, code) {
  let err;
  try {
    await promise;
  } catch (e) {
    err = e;
  }
  assert.ok(err, `expected an OAuth error ${code}, the call succeeded`);
  if (err instanceof client.WWWAuthenticateChallengeError) {
    assert.equal(err.status, 401, String(err));
    assert.equal(code, 'invalid_client', `a challenge answered where ${code} was expected`);
    const body = await err.response.json();
    assert.equal(body.error, code);
    return;
  }
  assert.ok(err instanceof client.ResponseBodyError, `expected ResponseBodyError, got ${err}`);
  assert.equal(err.error, code);
  if (code === 'invalid_client') assert.equal(err.status, 401);
  else assert.equal(err.status, 400);
}
