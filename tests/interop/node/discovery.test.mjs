// openid-client discovery of our issuers: the default tenant at the root and
// a tenant under /t/NAME (OIDC Discovery path form), plus the RFC 8414
// well-known form for a path issuer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as client from 'openid-client';
import { env } from './lib.mjs';

for (const [name, t] of Object.entries(env.tenants)) {
  test(`discovery of tenant ${name} (${t.issuer})`, async () => {
    const config = await client.discovery(new URL(t.issuer), 'discovery-probe', undefined, client.None(),
      { execute: [client.allowInsecureRequests] });
    const m = config.serverMetadata();
    assert.equal(m.issuer, t.issuer);
    assert.equal(m.token_endpoint, `${t.issuer}/oauth2/token`);
    assert.equal(m.jwks_uri, `${t.issuer}/oauth2/jwks`);
    assert.equal(m.introspection_endpoint, `${t.issuer}/oauth2/introspect`);
    assert.equal(m.revocation_endpoint, `${t.issuer}/oauth2/revoke`);
    assert.equal(m.userinfo_endpoint, `${t.issuer}/oauth2/userinfo`);
    for (const g of ['client_credentials', 'password', 'refresh_token']) {
      assert.ok(m.grant_types_supported.includes(g), g);
    }
    assert.deepEqual([...m.token_endpoint_auth_methods_supported].sort(),
      ['client_secret_basic', 'client_secret_post', 'none']);   // none: public clients with PKCE
    assert.ok(m.id_token_signing_alg_values_supported.includes(t.alg));
    assert.ok(m.scopes_supported.includes('openid'));
    // nothing advertised that is not implemented: no symmetric or "none" signing
    assert.ok(!m.id_token_signing_alg_values_supported.some((a) => a === 'none' || a.startsWith('HS')));
  });
}

test('RFC 8414 discovery (oauth-authorization-server) of a path issuer', async () => {
  const t = env.tenants['interop-rs'];
  const config = await client.discovery(new URL(t.issuer), 'discovery-probe', undefined, client.None(),
    { execute: [client.allowInsecureRequests], algorithm: 'oauth2' });
  assert.equal(config.serverMetadata().issuer, t.issuer);
});

test('discovery of an unknown tenant fails', async () => {
  await assert.rejects(client.discovery(new URL(`${env.url}/t/no-such-tenant`), 'x', undefined, client.None(),
    { execute: [client.allowInsecureRequests] }));
});
