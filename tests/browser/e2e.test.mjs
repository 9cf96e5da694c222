// e2e.test.mjs — one end-to-end browser sign-in, run by
// tests/integration/test_browser_e2e.py (which starts two refuged regions,
// HAProxy as the front door, and prepares tenant, client and user).
//
// Headless Chromium (Debian's /usr/bin/chromium, driven by npm
// playwright-core, fresh profile) uses a web application built on npm
// openid-client (rp.mjs): sign in through Refuge's login page (a wrong
// password first), region A is lost and region B promoted, and the browser
// is still signed in (SSO session replicated: no login page, same sid and
// auth_time); then RP-initiated logout, after which the login page is back.
// Every step leaves a screenshot in REFUGE_E2E.shots.
//
// REFUGE_E2E (JSON): {front, issuer, clientId, rpPort, username, password,
//   nodeA: {url, pid}, nodeB: {url}, admin, shots}
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startRP } from './rp.mjs';

const env = JSON.parse(process.env.REFUGE_E2E ?? 'null');
assert.ok(env, 'REFUGE_E2E is not set: run through tests/integration/test_browser_e2e.py');
fs.mkdirSync(env.shots, { recursive: true });

const CHROMIUM_FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

async function waitFor(fn, what, timeoutMs = 20000) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what} (last: ${last})`);
}

test('browser sign-in survives a region failover', { timeout: 120000 }, async (t) => {
  const rp = await startRP({ issuer: env.issuer, clientId: env.clientId, port: env.rpPort });
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'refuge-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_FLAGS,
    viewport: { width: 900, height: 700 },
  });
  const page = context.pages()[0] ?? await context.newPage();
  const shot = (name) => page.screenshot({ path: path.join(env.shots, `${name}.png`), fullPage: true });
  // every URL the browser requests, to prove what it did not see
  const seen = [];
  page.on('request', (r) => seen.push(r.url()));
  let first;

  try {
    await t.test('the web app, not signed in', async () => {
      await page.goto(`${rp.base}/`);
      assert.equal(await page.textContent('#status'), 'Not signed in');
      await shot('01-rp-home');
    });

    await t.test('the login page of the identity server', async () => {
      await page.click('#signin');
      await page.waitForURL((u) => u.href.startsWith(`${env.issuer}/oauth2/authorize`));
      assert.match(await page.textContent('h1'), /^Sign in to /);
      assert.match(await page.textContent('.sub'), /to continue to E2E web app/);
      assert.equal(await page.getAttribute('html', 'lang'), 'en');
      await shot('02-login-page');
    });

    await t.test('a wrong password is refused with a clear message', async () => {
      await page.getByLabel('Username').fill(env.username);
      await page.getByLabel('Password').fill('not-the-password');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.waitForSelector('[role=alert]');
      assert.equal((await page.textContent('[role=alert]')).trim(), 'The username or password is incorrect.');
      assert.equal(await page.inputValue('#username'), env.username);
      await shot('03-login-error');
    });

    await t.test('signing in returns to the web app', async () => {
      await page.getByLabel('Password').fill(env.password);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.waitForURL(`${rp.base}/`);
      assert.equal(await page.textContent('#status'), `Signed in as ${env.username}`);
      first = { sid: await page.textContent('#sid'), authTime: await page.textContent('#auth_time') };
      assert.match(first.sid, /^[0-9a-f-]{36}$/);
      const cookies = await context.cookies(`${env.issuer}/oauth2/authorize`);
      const sid = cookies.find((c) => c.name.startsWith('refuge_sid'));
      assert.ok(sid && sid.httpOnly && sid.sameSite === 'Lax', JSON.stringify(cookies));
      await shot('04-rp-signed-in');
    });

    await t.test('region A is lost and region B is promoted', async () => {
      // Asynchronous replication: let B catch up with A's last commit (the
      // session row) first. What an unplanned failover may lose is RPO's
      // business (tests/dr), not this test's.
      const headers = { authorization: `Bearer ${env.admin}` };
      const status = async (url) => (await fetch(`${url}/admin/v1/node`, { headers })).json();
      const a = await status(env.nodeA.url);
      await waitFor(async () => (await status(env.nodeB.url)).lsn >= a.lsn, 'B to apply A\'s last commit');
      process.kill(env.nodeA.pid, 'SIGKILL');
      const r = await fetch(`${env.nodeB.url}/admin/v1/node/promote`, {
        method: 'POST', headers: { authorization: `Bearer ${env.admin}` },
      });
      assert.equal(r.status, 200, await r.text());
      // the front door's health checks now send everything to B
      await waitFor(async () => (await fetch(`${env.front}/health/ready`)).status === 200, 'the front door on B');
      const node = await (await fetch(`${env.front}/admin/v1/node`, {
        headers: { authorization: `Bearer ${env.admin}` },
      })).json();
      assert.equal(node.name, 'b');
      assert.equal(node.role, 'active');
    });

    await t.test('after the failover the browser is still signed in', async () => {
      const before = seen.length;
      await page.click('#signin');
      await page.waitForURL(`${rp.base}/`);
      const trip = seen.slice(before);
      assert.ok(trip.some((u) => u.startsWith(`${env.issuer}/oauth2/authorize`)), trip.join('\n'));
      assert.ok(!trip.some((u) => u.includes('/oauth2/login')), 'no password asked');
      assert.equal(await page.textContent('#status'), `Signed in as ${env.username}`);
      assert.equal(await page.textContent('#logins'), '2');
      assert.equal(await page.textContent('#sid'), first.sid);
      assert.equal(await page.textContent('#auth_time'), first.authTime);
      await shot('05-after-failover-still-signed-in');
    });

    await t.test('RP-initiated logout at region B', async () => {
      await page.click('#logout');
      await page.waitForURL((u) => u.href.startsWith(`${rp.base}/bye`));
      assert.equal(await page.textContent('#status'), 'Signed out');
      const cookies = await context.cookies(`${env.issuer}/oauth2/authorize`);
      assert.ok(!cookies.some((c) => c.name.startsWith('refuge_sid')), JSON.stringify(cookies));
      await shot('06-signed-out');
    });

    await t.test('after logout the login page is back', async () => {
      await page.click('#signin');
      await page.waitForURL((u) => u.href.startsWith(`${env.issuer}/oauth2/authorize`));
      assert.equal(await page.getByLabel('Username').count(), 1);
      await shot('07-login-after-logout');
    });

    assert.deepEqual(rp.log.map((e) => e.step),
      ['authorize', 'callback', 'authorize', 'callback', 'logout', 'bye', 'authorize']);
  } finally {
    await context.close();
    await rp.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
});
