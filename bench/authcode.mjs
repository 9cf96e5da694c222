// bench/authcode.mjs — the driver of bench/authcode.sh: authorization-code
// round trips on the SSO path. It signs in once through the login page
// (GET /oauth2/authorize -> form -> POST /oauth2/login, which sets the SSO
// cookie), then CONNS loops each repeat, for SECS seconds:
//   GET /oauth2/authorize?...&code_challenge (with the cookie) -> 302 ?code=
//   POST /oauth2/token grant_type=authorization_code + code_verifier -> 200
// over keep-alive connections (one agent socket per loop). No password is
// hashed in the loop: the session cookie signs every request in. A round
// trip counts when both answers are right (302 with a code and our state,
// 200 with an access token and an ID token); anything else is an error.
// Prints one line: AUTHCODE_RESULT rt_s=... p50_ms=... p99_ms=... errors=... rts=... all=...
// (all: round trips including the warm-up)
import http from 'node:http';
import crypto from 'node:crypto';

const base = new URL(process.env.BASE);            // the tenant's issuer URL
const clientId = process.env.CLIENT_ID;
const redirectUri = process.env.REDIRECT_URI;
const username = process.env.USERNAME;
const password = process.env.PASSWORD;
const conns = Number(process.env.CONNS ?? 32);
const secs = Number(process.env.SECS ?? 10);
const warmup = Number(process.env.WARMUP ?? 2);

const agent = new http.Agent({ keepAlive: true, maxSockets: conns, maxFreeSockets: conns });
const verifier = crypto.randomBytes(32).toString('base64url');
const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');

function request(method, path, { headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: base.hostname, port: base.port, method, path, agent, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    if (body) req.end(body); else req.end();
  });
}

const prefix = base.pathname.replace(/\/$/, '');
let cookies = {};
const cookieHeader = () => Object.entries(cookies).map(([k, v]) => `${k}=${v}`).join('; ');
function keepCookies(res) {
  for (const c of [].concat(res.headers['set-cookie'] ?? [])) {
    const [kv] = c.split(';');
    const i = kv.indexOf('=');
    cookies[kv.slice(0, i)] = kv.slice(i + 1);
  }
}

function authorizePath(state) {
  const q = new URLSearchParams({
    response_type: 'code', client_id: clientId, redirect_uri: redirectUri, scope: 'openid',
    state, code_challenge: challenge, code_challenge_method: 'S256',
  });
  return `${prefix}/oauth2/authorize?${q}`;
}

// ------------------------------------------------------------- sign in once
{
  const page = await request('GET', authorizePath('signin'));
  if (page.status !== 200) throw new Error(`login page: ${page.status} ${page.body.slice(0, 200)}`);
  keepCookies(page);
  const action = /<form method="post" action="([^"]+)"/.exec(page.body)[1];
  const form = new URLSearchParams();
  for (const m of page.body.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) {
    form.set(m[1], m[2].replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&'));
  }
  form.set('username', username);
  form.set('password', password);
  const r = await request('POST', action, {
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: cookieHeader() }, body: form.toString(),
  });
  if (r.status !== 302) throw new Error(`sign-in: ${r.status} ${r.body.slice(0, 300)}`);
  keepCookies(r);
  if (!Object.keys(cookies).some((k) => k.startsWith('refuge_sid'))) throw new Error('no session cookie');
}
const cookie = cookieHeader();

// -------------------------------------------------------------- round trips
async function roundTrip(state) {
  const a = await request('GET', authorizePath(state), { headers: { cookie } });
  if (a.status !== 302) throw new Error(`authorize ${a.status}`);
  const loc = new URL(a.headers.location);
  const code = loc.searchParams.get('code');
  if (!code || loc.searchParams.get('state') !== state) throw new Error('bad redirect');
  const body = new URLSearchParams({
    grant_type: 'authorization_code', code, redirect_uri: redirectUri, client_id: clientId, code_verifier: verifier,
  }).toString();
  const t = await request('POST', `${prefix}/oauth2/token`, {
    headers: { 'content-type': 'application/x-www-form-urlencoded' }, body,
  });
  if (t.status !== 200) throw new Error(`token ${t.status} ${t.body}`);
  const j = JSON.parse(t.body);
  if (!j.access_token || !j.id_token) throw new Error('no tokens');
}

let total = 0;      // round trips of the warm-up and the measured run (for CPU per round trip)
async function run(seconds, record) {
  const end = performance.now() + seconds * 1000;
  const lat = [];
  let errors = 0;
  let n = 0;
  const loop = async (id) => {
    while (performance.now() < end) {
      const t0 = performance.now();
      try {
        await roundTrip(`s${id}-${n++}`);
        total++;
        if (record) lat.push(performance.now() - t0);
      } catch (e) {
        errors++;
        if (errors <= 3) console.error(String(e));
      }
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: conns }, (_, i) => loop(i)));
  return { lat, errors, elapsed: (performance.now() - t0) / 1000 };
}

await run(warmup, false);
const { lat, errors, elapsed } = await run(secs, true);
lat.sort((x, y) => x - y);
const pct = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))] : 0);
console.log(`AUTHCODE_RESULT rt_s=${(lat.length / elapsed).toFixed(1)} p50_ms=${pct(50).toFixed(2)} ` +
  `p99_ms=${pct(99).toFixed(2)} errors=${errors} rts=${lat.length} all=${total}`);
agent.destroy();
