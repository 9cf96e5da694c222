// rp.mjs — a small relying party (a web application) built on npm
// openid-client, for the end-to-end browser test (e2e.mjs). It knows the
// identity server only by its issuer URL (OIDC discovery through the front
// door) and behaves like any web app: authorization code + PKCE S256 with
// state and nonce, the code exchanged on its back channel, its own session
// cookie, RP-initiated logout with id_token_hint.
//
//   GET /            home: "Signed in as ..." with the ID token's sub, sid,
//                    auth_time, or "Not signed in"
//   GET /login       -> 302 to /oauth2/authorize (?prompt=none passes through)
//   GET /cb          the redirect_uri: code -> tokens (openid-client checks
//                    state, iss, nonce, the ID token signature and claims)
//   GET /logout      -> 302 to the end_session_endpoint
//   GET /bye         post_logout_redirect_uri: checks state, ends the RP session
import http from 'node:http';
import crypto from 'node:crypto';
import * as client from 'openid-client';

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

function page(res, status, title, body, cookie) {
  const headers = { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' };
  if (cookie) headers['set-cookie'] = cookie;
  res.writeHead(status, headers);
  res.end(`<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>body{font:16px system-ui,sans-serif;margin:2rem auto;max-width:40rem;color:#1b1f24}
h1{font-size:1.5rem}dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem}
dt{font-weight:600}a.button{display:inline-block;margin-right:1rem;padding:.5rem 1rem;background:#333;color:#fff;
text-decoration:none;border-radius:.3rem}.error{color:#b00020}</style></head>
<body><header><strong>Demo web app</strong> (relying party, openid-client)</header><main>${body}</main></body></html>`);
}

function redirect(res, url, cookie) {
  const headers = { location: String(url), 'cache-control': 'no-store' };
  if (cookie) headers['set-cookie'] = cookie;
  res.writeHead(302, headers);
  res.end();
}

/** Starts the RP on 127.0.0.1:port for `issuer` and public client `clientId`. */
export async function startRP({ issuer, clientId, port }) {
  const base = `http://127.0.0.1:${port}`;
  const redirectUri = `${base}/cb`;
  const config = await client.discovery(new URL(issuer), clientId, undefined, client.None(),
    { execute: [client.allowInsecureRequests] });
  const sessions = new Map();      // rp_session cookie -> {pending, tokens, claims, logoutState}
  const log = [];                  // what happened, for the test

  const sessionOf = (req) => {
    const m = /(?:^|;\s*)rp_session=([A-Za-z0-9_-]+)/.exec(req.headers.cookie ?? '');
    if (m && sessions.has(m[1])) return { id: m[1], s: sessions.get(m[1]), cookie: null };
    const id = crypto.randomBytes(16).toString('base64url');
    sessions.set(id, {});
    return { id, s: sessions.get(id), cookie: `rp_session=${id}; Path=/; HttpOnly; SameSite=Lax` };
  };

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, base);
    const { s, cookie } = sessionOf(req);
    try {
      if (url.pathname === '/') {
        if (s.claims) {
          const c = s.claims;
          page(res, 200, 'Signed in', `<h1 id="status">Signed in as ${esc(c.preferred_username ?? c.sub)}</h1>
<dl><dt>sub</dt><dd id="sub">${esc(c.sub)}</dd><dt>sid</dt><dd id="sid">${esc(c.sid)}</dd>
<dt>auth_time</dt><dd id="auth_time">${esc(c.auth_time)}</dd><dt>issuer</dt><dd>${esc(c.iss)}</dd>
<dt>tokens received</dt><dd id="logins">${s.logins}</dd></dl>
<p><a class="button" id="signin" href="/login">Sign in again</a><a class="button" id="logout" href="/logout">Sign out</a></p>`, cookie);
        } else {
          page(res, 200, 'Home', `<h1 id="status">Not signed in</h1>${s.error ? `<p class="error" id="error">${esc(s.error)}</p>` : ''}
<p><a class="button" id="signin" href="/login">Sign in</a></p>`, cookie);
        }
        return;
      }
      if (url.pathname === '/login') {
        const verifier = client.randomPKCECodeVerifier();
        const pending = { verifier, state: client.randomState(), nonce: client.randomNonce() };
        s.pending = pending;
        const params = {
          redirect_uri: redirectUri, scope: 'openid profile', state: pending.state, nonce: pending.nonce,
          code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
        };
        if (url.searchParams.get('prompt')) params.prompt = url.searchParams.get('prompt');
        log.push({ step: 'authorize', prompt: params.prompt ?? null });
        return redirect(res, client.buildAuthorizationUrl(config, params), cookie);
      }
      if (url.pathname === '/cb') {
        const pending = s.pending;
        s.pending = null;
        if (!pending) return page(res, 400, 'Error', '<h1 class="error">No sign-in in progress</h1>');
        if (url.searchParams.get('error')) {
          s.error = `Sign-in failed: ${url.searchParams.get('error')}`;
          log.push({ step: 'callback', error: url.searchParams.get('error') });
          return redirect(res, '/', cookie);
        }
        const tokens = await client.authorizationCodeGrant(config, url, {
          pkceCodeVerifier: pending.verifier, expectedState: pending.state, expectedNonce: pending.nonce,
          idTokenExpected: true,
        });
        s.tokens = tokens;
        s.claims = tokens.claims();
        s.logins = (s.logins ?? 0) + 1;
        s.error = null;
        log.push({ step: 'callback', sub: s.claims.sub, sid: s.claims.sid, auth_time: s.claims.auth_time });
        return redirect(res, '/', cookie);
      }
      if (url.pathname === '/logout') {
        if (!s.tokens) return redirect(res, '/', cookie);
        s.logoutState = client.randomState();
        const end = client.buildEndSessionUrl(config, {
          id_token_hint: s.tokens.id_token, post_logout_redirect_uri: `${base}/bye`, state: s.logoutState,
        });
        log.push({ step: 'logout' });
        return redirect(res, end, cookie);
      }
      if (url.pathname === '/bye') {
        const ok = s.logoutState && url.searchParams.get('state') === s.logoutState;
        s.tokens = s.claims = s.logoutState = null;
        log.push({ step: 'bye', stateOk: ok });
        return page(res, ok ? 200 : 400, 'Signed out', ok ? '<h1 id="status">Signed out</h1><p><a class="button" id="signin" href="/login">Sign in</a></p>'
          : '<h1 class="error" id="status">Logout state mismatch</h1>');
      }
      page(res, 404, 'Not found', '<h1>Not found</h1>');
    } catch (e) {
      log.push({ step: 'error', error: String(e) });
      page(res, 500, 'Error', `<h1 class="error" id="status">RP error</h1><pre>${esc(e?.stack ?? e)}</pre>`);
    }
  });
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { base, server, log, close: () => new Promise((r) => server.close(r)) };
}
