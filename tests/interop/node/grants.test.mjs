// openid-client against our token, introspection, revocation and userinfo
// endpoints: client_credentials with both client authentication methods,
// password grant, refresh with rotation and family revocation on replay,
// introspection and revocation of opaque and JWT access tokens and of
// refresh tokens.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as client from 'openid-client';
import { env, makeClient, configFor, rejectsWith } from './lib.mjs';

const dflt = env.tenants.default;
const user = dflt.user;
const userClientFields = {
  grant_types: ['password', 'refresh_token'],
  scopes: ['openid', 'profile', 'email', 'api:read'],
  default_scopes: ['api:read'],
};

const passwordGrant = (config, scope = 'openid profile email api:read') =>
  client.genericGrantRequest(config, 'password', { username: user.username, password: user.password, scope });

for (const auth of ['basic', 'post']) {
  test(`client_credentials with client_secret_${auth}`, async () => {
    const c = await makeClient();
    const config = await configFor(dflt.issuer, c, auth);
    const tok = await client.clientCredentialsGrant(config, { scope: 'api:read api:write' });
    assert.equal(tok.token_type, 'bearer');
    assert.equal(typeof tok.access_token, 'string');
    assert.equal(tok.access_token.split('.').length, 3);
    assert.ok(tok.expiresIn() > 3500 && tok.expiresIn() <= 3600);
    assert.equal(tok.refresh_token, undefined);
    assert.deepEqual(tok.scope.split(' ').sort(), ['api:read', 'api:write']);
  });
}

test('client_credentials with a wrong secret: 401 challenge (basic), invalid_client (post)', async () => {
  const c = await makeClient();
  const bad = { ...c, client_secret: 'wrong' + c.client_secret };
  await assert.rejects(client.clientCredentialsGrant(await configFor(dflt.issuer, bad, 'basic')), (err) => {
    assert.ok(err instanceof client.WWWAuthenticateChallengeError, String(err));
    assert.equal(err.status, 401);
    assert.equal(err.cause[0].scheme, 'basic');
    return true;
  });
  await rejectsWith(client.clientCredentialsGrant(await configFor(dflt.issuer, bad, 'post')), 'invalid_client');
});

test('client_credentials: scope outside the client is invalid_scope; grant not allowed is unauthorized_client', async () => {
  const c = await makeClient();
  const config = await configFor(dflt.issuer, c);
  await rejectsWith(client.clientCredentialsGrant(config, { scope: 'refuge:admin' }), 'invalid_scope');
  await rejectsWith(passwordGrant(config, 'api:read'), 'unauthorized_client');
});

test('password grant, then refresh with rotation; replaying a rotated token revokes the family', async () => {
  const c = await makeClient('default', userClientFields);
  const config = await configFor(dflt.issuer, c, 'post');
  const t1 = await passwordGrant(config);
  assert.ok(t1.refresh_token && t1.id_token);
  const idc = t1.claims();   // validated by openid-client: iss, aud, exp, iat
  assert.equal(idc.sub, user.id);
  assert.equal(idc.iss, dflt.issuer);
  assert.equal(idc.aud, c.client_id);

  const info = await client.fetchUserInfo(config, t1.access_token, user.id);
  assert.equal(info.sub, user.id);
  assert.equal(info.preferred_username, user.username);

  const t2 = await client.refreshTokenGrant(config, t1.refresh_token);
  assert.ok(t2.refresh_token && t2.refresh_token !== t1.refresh_token);
  assert.notEqual(t2.access_token, t1.access_token);
  // the new refresh token works ...
  const t3 = await client.refreshTokenGrant(config, t2.refresh_token);
  assert.ok(t3.refresh_token);
  // ... the rotated one is refused, and presenting it revoked the whole family
  await rejectsWith(client.refreshTokenGrant(config, t1.refresh_token), 'invalid_grant');
  await rejectsWith(client.refreshTokenGrant(config, t3.refresh_token), 'invalid_grant');
});

test('a refresh token is bound to its client', async () => {
  const a = await makeClient('default', userClientFields);
  const b = await makeClient('default', userClientFields);
  const t = await passwordGrant(await configFor(dflt.issuer, a));
  await rejectsWith(client.refreshTokenGrant(await configFor(dflt.issuer, b), t.refresh_token), 'invalid_grant');
});

test('wrong password is invalid_grant', async () => {
  const c = await makeClient('default', userClientFields);
  const config = await configFor(dflt.issuer, c);
  await rejectsWith(client.genericGrantRequest(config, 'password',
    { username: user.username, password: 'not-' + user.password }), 'invalid_grant');
});

test('introspection of JWT and opaque access tokens', async () => {
  const jc = await makeClient();
  const jconf = await configFor(dflt.issuer, jc);
  const jt = await client.clientCredentialsGrant(jconf);
  const ji = await client.tokenIntrospection(jconf, jt.access_token);
  assert.equal(ji.active, true);
  assert.equal(ji.client_id, jc.client_id);
  assert.equal(ji.sub, jc.client_id);
  assert.equal(ji.scope, 'api:read');
  assert.equal(ji.iss, dflt.issuer);
  assert.ok(ji.exp > Date.now() / 1000);

  const oc = await makeClient('default', { token_format: 'opaque' });
  const oconf = await configFor(dflt.issuer, oc, 'post');
  const ot = await client.clientCredentialsGrant(oconf);
  assert.match(ot.access_token, /^[A-Za-z0-9_-]{43}$/);
  const oi = await client.tokenIntrospection(oconf, ot.access_token, { token_type_hint: 'access_token' });
  assert.equal(oi.active, true);
  assert.equal(oi.client_id, oc.client_id);
  assert.equal(oi.scope, 'api:read');

  assert.deepEqual(await client.tokenIntrospection(oconf, 'x'.repeat(43)), { active: false });
  const [h, p, s] = jt.access_token.split('.');
  const forged = [h, Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p, 'base64url')), scope: 'api:write' })).toString('base64url'), s].join('.');
  assert.deepEqual(await client.tokenIntrospection(jconf, forged), { active: false });
});

test('introspection needs client authentication', async () => {
  const c = await makeClient();
  const config = await configFor(dflt.issuer, c);
  const tok = await client.clientCredentialsGrant(config);
  const bad = await configFor(dflt.issuer, { ...c, client_secret: 'nope' }, 'post');
  await rejectsWith(client.tokenIntrospection(bad, tok.access_token), 'invalid_client');
});

test('revocation: opaque access token, JWT access token (jti deny-list), refresh token', async () => {
  const oc = await makeClient('default', { token_format: 'opaque' });
  const oconf = await configFor(dflt.issuer, oc);
  const ot = await client.clientCredentialsGrant(oconf);
  await client.tokenRevocation(oconf, ot.access_token, { token_type_hint: 'access_token' });
  assert.deepEqual(await client.tokenIntrospection(oconf, ot.access_token), { active: false });

  const uc = await makeClient('default', userClientFields);
  const uconf = await configFor(dflt.issuer, uc);
  const ut = await passwordGrant(uconf);
  assert.equal((await client.tokenIntrospection(uconf, ut.access_token)).active, true);
  await client.tokenRevocation(uconf, ut.access_token);
  assert.deepEqual(await client.tokenIntrospection(uconf, ut.access_token), { active: false });
  await assert.rejects(client.fetchUserInfo(uconf, ut.access_token, user.id));

  await client.tokenRevocation(uconf, ut.refresh_token, { token_type_hint: 'refresh_token' });
  await rejectsWith(client.refreshTokenGrant(uconf, ut.refresh_token), 'invalid_grant');
  // RFC 7009 §2.2: an unknown token is not an error
  await client.tokenRevocation(uconf, 'y'.repeat(43));
});
