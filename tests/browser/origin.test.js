// A page of an origin the registry does not allow is refused: its upgrade gets 403, `ready`
// rejects and an 'error' event fires; the registry's own origin and allowed ones get in.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const h = require('./helpers');

let registry;
let allowed;
let other;
let browser;

before(async () => {
  allowed = await h.startPageServer();
  other = await h.startPageServer();
  registry = await h.startRegistry({ cors: [allowed.origin] });
  browser = await h.launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (allowed) await allowed.close();
  if (other) await other.close();
  await h.cleanup();
});

/** A raw WebSocket upgrade request with an Origin header; resolves with the HTTP status. */
function upgrade(url, origin) {
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}/v1/ws`, {
      headers: {
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
        origin,
      },
    });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode });
    });
    req.on('response', (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(body) }));
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error('upgrade timed out')));
    req.end();
  });
}

async function forbiddenCount() {
  const r = await h.httpJSON('GET', `${registry.url}/metrics`);
  const m = /netget_rejected_requests_total\{code="NETGET_FORBIDDEN"\} (\d+)/.exec(r.text);
  return m ? Number(m[1]) : 0;
}

test('a page of a disallowed origin is refused', { timeout: 30000 }, async () => {
  const { page } = browser;
  other.routes['/x.html'] = h.embedPage(registry.url, 'data-network="development"', `<script>
    window.errors = [];
    netget.on('error', (e) => window.errors.push(e.code));
    window.outcome = netget.ready.then(() => 'open', (e) => 'rejected ' + e.code);
  </script>`);
  const before = await forbiddenCount();
  await page.goto(`${other.origin}/x.html`);
  const outcome = await page.evaluate(() => window.outcome);
  assert.equal(outcome, 'rejected NETGET_UNREACHABLE');
  assert.ok((await page.evaluate(() => window.errors)).includes('NETGET_UNREACHABLE'));
  assert.notEqual(await page.evaluate(() => netget.state), 'open');
  // The browser's upgrade was refused by the origin check (403 NETGET_FORBIDDEN)...
  assert.ok((await forbiddenCount()) > before, 'the registry counted a NETGET_FORBIDDEN refusal');
  // ... as is the same upgrade made by hand, while the allowed origin is let through.
  const refused = await upgrade(registry.url, other.origin);
  assert.equal(refused.status, 403);
  assert.equal(refused.body.error.code, 'NETGET_FORBIDDEN');
  assert.equal((await upgrade(registry.url, allowed.origin)).status, 101);
});

test('the same page from the allowed origin connects', { timeout: 30000 }, async () => {
  const { page } = browser;
  allowed.routes['/x.html'] = h.embedPage(registry.url);
  await page.goto(`${allowed.origin}/x.html`);
  assert.equal((await page.evaluate(() => netget.ready)).network, 'development');
});

test('the registry\'s own origin is always allowed (its dashboard)', { timeout: 30000 }, async () => {
  const { page } = browser;
  await page.goto(`${registry.url}/`);
  await h.waitFor(() => page.evaluate(() => netget.state === 'open'), 10000, 'the dashboard session');
});

test('a token network: data-token goes in the hello; a wrong one is refused with its code', { timeout: 30000 }, async () => {
  const reg = await h.startRegistry({
    cors: [allowed.origin],
    config: `[[network]]\nname = "production"\npolicy = "token"\ntokens = ["s3cret-token"]\n`,
  });
  try {
    const { page } = browser;
    allowed.routes['/t.html'] = h.embedPage(reg.url, 'data-network="production" data-token="s3cret-token"');
    await page.goto(`${allowed.origin}/t.html`);
    assert.equal((await page.evaluate(() => netget.ready)).policy, 'token');
    allowed.routes['/t.html'] = h.embedPage(reg.url, 'data-network="production" data-token="wrong-token"');
    await page.goto(`${allowed.origin}/t.html`);
    assert.equal(await page.evaluate(() => netget.ready.then(() => 'open', (e) => e.code)), 'NETGET_UNAUTHORIZED');
  } finally {
    await reg.stop();
  }
});
