// The benchmark peer for bench/token.sh: npm oidc-provider configured like
// Refuge's JWT benchmark client, so the same client_credentials load can be
// put on both in the same run.
//
// Equivalence with refuged's set-up in bench/token.sh:
//   - one confidential client, client_secret_basic, grant client_credentials,
//     allowed scopes "api:read api:write";
//   - access tokens are RFC 9068 JWTs (typ at+jwt) signed ES256 with a P-256
//     key, one hour lifetime, audience = the issuer. oidc-provider issues JWT
//     access tokens only for a resource server, so resource indicators are
//     enabled with a default resource (the issuer) whose accessTokenFormat is
//     'jwt'; the client sends no `resource` parameter, as with refuged.
//     JWT access tokens are not stored (no adapter write), as with refuged;
//   - production mode (NODE_ENV=production), no dev interactions, no
//     request logging; the in-memory adapter (nothing to store for JWTs);
//   - WORKERS processes (node:cluster, default 2) sharing the port and the
//     signing key, since refuged runs 2 HTTP threads on the 2-core machine
//     and a single Node process would use one core only.
//
// Environment: PORT (required), CLIENT_ID, CLIENT_SECRET (default
// bench-peer / bench-peer-secret), WORKERS. Prints "listening ISSUER" once
// every worker is listening.
import cluster from 'node:cluster';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import process from 'node:process';

process.env.NODE_ENV = 'production';
const port = Number(process.env.PORT);
if (!Number.isInteger(port) || port <= 0) {
  console.error('server.mjs: set PORT');
  process.exit(2);
}
const workers = Number(process.env.WORKERS ?? 2);
const issuer = `http://127.0.0.1:${port}`;

if (cluster.isPrimary && workers > 0) {
  // One signing key and cookie secret for every worker.
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  process.env.PEER_JWK = JSON.stringify({ ...privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'ES256', kid: 'bench-es256' });
  process.env.PEER_COOKIE_KEY = randomBytes(32).toString('base64url');
  let up = 0;
  for (let i = 0; i < workers; i++) {
    cluster.fork().on('message', (m) => {
      if (m === 'listening' && ++up === workers) console.log(`listening ${issuer}`);
    });
  }
  let shuttingDown = false;
  cluster.on('exit', (w, code, signal) => {
    if (!shuttingDown) {
      console.error(`server.mjs: worker ${w.process.pid} exited (${code ?? signal})`);
      process.exit(1);
    }
  });
  const stop = () => {
    shuttingDown = true;
    for (const w of Object.values(cluster.workers)) w.process.kill('SIGTERM');
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else {
  const { default: Provider } = await import('oidc-provider');
  const jwk = process.env.PEER_JWK
    ? JSON.parse(process.env.PEER_JWK)
    : { ...generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'ES256', kid: 'bench-es256' };
  const SCOPES = 'api:read api:write';
  const provider = new Provider(issuer, {
    clients: [{
      client_id: process.env.CLIENT_ID ?? 'bench-peer',
      client_secret: process.env.CLIENT_SECRET ?? 'bench-peer-secret',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      scope: SCOPES,
    }],
    jwks: { keys: [jwk] },
    scopes: SCOPES.split(' '),
    cookies: { keys: [process.env.PEER_COOKIE_KEY ?? randomBytes(32).toString('base64url')] },
    clientDefaults: { id_token_signed_response_alg: 'ES256' },
    enabledJWA: { idTokenSigningAlgValues: ['ES256'] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => issuer,
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({
          scope: SCOPES,
          audience: issuer,
          accessTokenTTL: 3600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        }),
      },
    },
  });
  provider.on('server_error', (ctx, err) => console.error('server_error', err));
  const server = provider.listen(port, '127.0.0.1', () => {
    if (process.send) process.send('listening');
    else console.log(`listening ${issuer}`);
  });
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}
