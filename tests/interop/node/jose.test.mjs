// jose verifies our JWTs against our published JWKS: RFC 9068 access tokens
// (typ at+jwt, iss, aud = issuer) and OIDC ID tokens, for an ES256 (default),
// an RS256 and an EdDSA tenant; key rotation across algorithms keeps earlier
// tokens verifiable; keys and issuers do not cross tenants.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as client from 'openid-client';
import * as jose from 'jose';
import { env, admin, makeClient, configFor, tenantPrefix } from './lib.mjs';

const jwksOf = (issuer) => jose.createRemoteJWKSet(new URL(`${issuer}/oauth2/jwks`));

async function verifyAccessToken(token, issuer, alg, jwks = jwksOf(issuer)) {
  const { payload, protectedHeader } = await jose.jwtVerify(token, jwks, {
    issuer, audience: issuer, typ: 'at+jwt', algorithms: [alg], requiredClaims: ['exp', 'iat', 'jti', 'sub'],
  });
  assert.equal(protectedHeader.alg, alg);
  assert.ok(protectedHeader.kid);
  // RFC 9562 UUID: version 4 (random) for client tokens, version 8 when derived from the
  // refresh token minted with it (so revoking the family deny-lists the access token)
  assert.match(payload.jti, /^[0-9a-f]{8}-[0-9a-f]{4}-[48][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  return { payload, protectedHeader };
}

for (const [name, t] of Object.entries(env.tenants)) {
  test(`${t.alg} (tenant ${name}): access token and ID token verify with jose`, async () => {
    const c = await makeClient(name, {
      grant_types: ['client_credentials', 'password', 'refresh_token'],
      scopes: ['openid', 'profile', 'email', 'api:read'],
      default_scopes: ['api:read'],
    });
    const config = await configFor(t.issuer, c);
    const jwks = jwksOf(t.issuer);

    const cc = await client.clientCredentialsGrant(config);
    const { payload } = await verifyAccessToken(cc.access_token, t.issuer, t.alg, jwks);
    assert.equal(payload.sub, c.client_id);
    assert.equal(payload.client_id, c.client_id);
    assert.equal(payload.scope, 'api:read');
    assert.ok(payload.exp > payload.iat);

    const pw = await client.genericGrantRequest(config, 'password',
      { username: t.user.username, password: t.user.password, scope: 'openid profile email' });
    const at = await verifyAccessToken(pw.access_token, t.issuer, t.alg, jwks);
    assert.equal(at.payload.sub, t.user.id);
    assert.equal(typeof at.payload.auth_time, 'number');
    const id = await jose.jwtVerify(pw.id_token, jwks, {
      issuer: t.issuer, audience: c.client_id, algorithms: [t.alg], requiredClaims: ['exp', 'iat', 'sub'],
    });
    assert.equal(id.payload.sub, t.user.id);
    assert.equal(id.payload.email, `${t.user.username}@example.test`);
    assert.notEqual(id.protectedHeader.typ, 'at+jwt', 'an ID token must not pass as an access token');
    await assert.rejects(jose.jwtVerify(pw.id_token, jwks, { issuer: t.issuer, typ: 'at+jwt' }));

    // a flipped payload byte breaks the signature
    const [h, p, s] = cc.access_token.split('.');
    const bytes = Buffer.from(p, 'base64url');
    bytes[bytes.length - 2] ^= 1;
    await assert.rejects(jose.jwtVerify([h, bytes.toString('base64url'), s].join('.'), jwks),
      jose.errors.JWSSignatureVerificationFailed);
  });
}

test('tokens are bound to their tenant: other JWKS and other issuers refuse them', async () => {
  const rs = env.tenants['interop-rs'];
  const c = await makeClient('interop-rs');
  const tok = await client.clientCredentialsGrant(await configFor(rs.issuer, c));
  await assert.rejects(jose.jwtVerify(tok.access_token, jwksOf(env.tenants['interop-ed'].issuer)),
    jose.errors.JWKSNoMatchingKey);
  await assert.rejects(jose.jwtVerify(tok.access_token, jwksOf(rs.issuer), { issuer: env.tenants.default.issuer }),
    jose.errors.JWTClaimValidationFailed);
});

test('key rotation ES256 -> RS256 -> EdDSA keeps earlier tokens verifiable', async () => {
  const name = `rot-${process.pid}`;
  const issuer = `${env.url}/t/${name}`;
  await admin('POST', '/admin/v1/tenants', { name, display_name: 'rotation' }, [201]);
  try {
    const c = await makeClient(name);
    const config = await configFor(issuer, c);
    const tokens = [];
    for (const alg of ['ES256', 'RS256', 'EdDSA']) {
      if (alg !== 'ES256') {
        await admin('POST', `${tenantPrefix(name)}/admin/v1/keys/rotate`, { alg });
      }
      const cc = await client.clientCredentialsGrant(config);
      tokens.push([alg, cc.access_token]);
    }
    const jwks = await (await fetch(`${issuer}/oauth2/jwks`)).json();
    assert.equal(jwks.keys.length, 3);
    for (const k of jwks.keys) {
      assert.equal(k.d, undefined, 'no private key material in the JWKS');
      assert.equal(k.p, undefined);
    }
    assert.deepEqual(jwks.keys.map((k) => k.kty).sort(), ['EC', 'OKP', 'RSA']);
    const kids = [];
    const remote = jwksOf(issuer);
    for (const [alg, token] of tokens) {
      const { protectedHeader } = await verifyAccessToken(token, issuer, alg, remote);
      kids.push(protectedHeader.kid);
    }
    assert.equal(new Set(kids).size, 3);
    // the admin listing: the last key is the only active one, the others are retired but listed
    const listed = await admin('GET', `${tenantPrefix(name)}/admin/v1/keys`);
    const keys = Array.isArray(listed) ? listed : listed.keys;
    assert.deepEqual(keys.map((k) => k.kid).sort(), [...kids].sort());
    const active = keys.filter((k) => k.status === 'active');
    assert.equal(active.length, 1);
    assert.equal(active[0].kid, kids[2]);
    assert.equal(active[0].alg, 'EdDSA');
  } finally {
    await admin('DELETE', `/admin/v1/tenants/${name}`, undefined, [200, 204]);
  }
  assert.equal((await fetch(`${issuer}/oauth2/jwks`)).status, 404);
});
