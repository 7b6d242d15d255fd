// netget.js embedded by a page of another (allowed) origin: handshake, discovery, watch events
// from real service processes, reconnection, errors, module use and the bundled @noble signer.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const h = require('./helpers');

let registry;
let pages;
let browser;

before(async () => {
  pages = await h.startPageServer();
  registry = await h.startRegistry({ cors: [pages.origin] });
  browser = await h.launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (pages) await pages.close();
  await h.cleanup();
});

test('a page of an allowed origin embeds netget.js, discovers and watches services', { timeout: 60000 }, async () => {
  const { page } = browser;
  pages.routes['/a.html'] = h.embedPage(registry.url);
  // A REST registration (the CLI without --hold) before the page loads.
  const out = await h.cli(['register', 'web', '--address', 'http://127.0.0.1:9001', '--tag', 'v1', '--registry', registry.url]);
  assert.match(out, /^registered web /);

  await page.goto(`${pages.origin}/a.html`);
  const welcome = await page.evaluate(() => netget.ready);
  assert.equal(welcome.network, 'development');
  assert.equal(welcome.policy, 'open');
  const info = await page.evaluate(() => ({ state: netget.state, key: netget.publicKey, endpoint: netget.endpoint }));
  assert.equal(info.state, 'open');
  assert.match(info.key, /^[A-Za-z0-9+/]{43}=$/, 'raw Ed25519 public key in standard base64 with padding');
  assert.equal(info.endpoint, registry.url.replace('http://', 'ws://') + '/v1/ws');

  const found = await page.evaluate(() => netget.discover('web'));
  assert.equal(found.length, 1);
  assert.equal(found[0].address, 'http://127.0.0.1:9001');
  assert.deepEqual(found[0].tags, ['v1']);
  assert.deepEqual(await page.evaluate(() => netget.discover('nobody')), []);
  const services = await page.evaluate(() => netget.services());
  assert.deepEqual(services.map((s) => [s.name, s.instances]), [['web', 1]]);

  // Watch a service no one provides yet; a session-held registration comes and is killed.
  const initial = await page.evaluate(() => {
    window.events = [];
    window.unwatch = netget.watch('api', (e) => window.events.push({ type: e.type, address: e.instance.address }));
    return window.unwatch.ready;
  });
  assert.deepEqual(initial, []);
  const holder = await h.holdRegistration(registry.url, 'api', 'http://127.0.0.1:9002');
  await h.waitFor(() => page.evaluate(() => window.events.some((e) => e.type === 'up')), 10000, 'the watch event up');
  assert.deepEqual(await page.evaluate(() => window.events), [{ type: 'up', address: 'http://127.0.0.1:9002' }]);
  const discovered = await page.evaluate(() => netget.discover('api'));
  assert.equal(discovered[0].address, 'http://127.0.0.1:9002');

  await h.kill(holder, 'SIGKILL');
  await h.waitFor(() => page.evaluate(() => window.events.some((e) => e.type === 'down')), 10000, 'the watch event down');
  assert.deepEqual(await page.evaluate(() => window.events.map((e) => e.type)), ['up', 'down']);
  assert.deepEqual(await page.evaluate(() => netget.discover('api')), []);

  // Unwatching stops the events.
  await page.evaluate(() => window.unwatch());
  const again = await h.holdRegistration(registry.url, 'api', 'http://127.0.0.1:9003');
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(await page.evaluate(() => window.events.length), 2);
  await h.kill(again);
});

test('requests fail with an Error carrying the NETGET code', { timeout: 30000 }, async () => {
  const { page } = browser;
  pages.routes['/a.html'] = h.embedPage(registry.url);
  await page.goto(`${pages.origin}/a.html`);
  await page.evaluate(() => netget.ready);
  const e = await page.evaluate(() => netget.discover('not a name!').then(() => null, (e) => ({ code: e.code, message: e.message, isError: e instanceof Error })));
  assert.equal(e.code, 'NETGET_INVALID_INPUT');
  assert.equal(e.isError, true);
  const w = await page.evaluate(() => netget.watch('bad name', () => {}).ready.then(() => null, (e) => e.code));
  assert.equal(w, 'NETGET_INVALID_INPUT');
  assert.equal(await page.evaluate(() => netget.ping().then(() => 'pong')), 'pong');
  // An unknown network: the handshake is refused with its code.
  const refused = await page.evaluate(() => netget.connect({ network: 'nowhere' }).then(() => null, (e) => e.code));
  assert.equal(refused, 'NETGET_UNKNOWN_NETWORK');
  const back = await page.evaluate(() => netget.connect({ network: 'development' }));
  assert.equal(back.network, 'development');
});

test('reconnects after the registry restarts and restores watches and subscriptions', { timeout: 60000 }, async () => {
  const own = await h.startRegistry({ cors: [pages.origin] });
  const port = new URL(own.url).port;
  const { page } = browser;
  pages.routes['/r.html'] = h.embedPage(own.url);
  await page.goto(`${pages.origin}/r.html`);
  await page.evaluate(async () => {
    await netget.ready;
    window.log = [];
    window.opens = 0;
    window.closes = [];
    netget.on('open', () => window.opens++);
    netget.on('close', (c) => window.closes.push(c.code));
    await netget.watch('svc', (e) => window.log.push(`${e.type} ${e.instance.address}`)).ready;
    await netget.subscribe('news', (m) => window.log.push(`msg ${m.data}`)).ready;
  });
  await own.stop();
  await h.waitFor(() => page.evaluate(() => window.closes.length === 1 && netget.state !== 'open'), 10000, 'the close event');
  // Calls made while disconnected wait for the next session.
  const pendingDiscover = page.evaluate(() => netget.discover('svc'));
  await new Promise((r) => setTimeout(r, 400));
  const restarted = await h.startRegistry({ cors: [pages.origin], listen: `127.0.0.1:${port}` });
  try {
    assert.equal(new URL(restarted.url).port, port);
    await h.waitFor(() => page.evaluate(() => window.opens === 1), 15000, 'the reconnection');
    assert.deepEqual(await pendingDiscover, []);
    const holder = await h.holdRegistration(restarted.url, 'svc', 'http://127.0.0.1:9100');
    await h.waitFor(() => page.evaluate(() => window.log.includes('up http://127.0.0.1:9100')), 10000, 'a watch event after the reconnection');
    const delivered = await page.evaluate(() => netget.publish('news', 'after restart'));
    assert.equal(delivered, 1);
    await h.waitFor(() => page.evaluate(() => window.log.includes('msg after restart')), 10000, 'the channel message after the reconnection');
    await h.kill(holder);
  } finally {
    await restarted.stop();
  }
});

test('an ES module import installs globalThis.netget; connect() defaults to the same registry', { timeout: 30000 }, async () => {
  const { page } = browser;
  pages.routes['/m.html'] = `<!doctype html><meta charset="utf-8"><script type="module">
    import '${registry.url}/netget.js';
    const { netget } = globalThis;
    window.result = netget.connect({ network: 'development' }).then((w) => ({ network: w.network, endpoint: netget.endpoint }));
  </script>`;
  await page.goto(`${pages.origin}/m.html`);
  await h.waitFor(() => page.evaluate(() => !!window.result), 10000, 'the module to run');
  const r = await page.evaluate(() => window.result);
  assert.deepEqual(r, { network: 'development', endpoint: registry.url.replace('http://', 'ws://') + '/v1/ws' });

  // A module <script> tag with data-network connects by itself, to data-endpoint when given.
  pages.routes['/m2.html'] = `<!doctype html><meta charset="utf-8">
    <script type="module" src="${registry.url}/netget.js" data-network="development" data-endpoint="${registry.url}"></script>`;
  await page.goto(`${pages.origin}/m2.html`);
  await h.waitFor(() => page.evaluate(() => !!globalThis.netget), 10000, 'the module to load');
  assert.equal((await page.evaluate(() => netget.ready)).network, 'development');
});

test('without WebCrypto Ed25519 the bundled @noble signer completes the handshake', { timeout: 30000 }, async () => {
  const { page } = browser;
  pages.routes['/f.html'] = `<!doctype html><meta charset="utf-8">
    <script>Object.defineProperty(crypto, 'subtle', { value: undefined });</script>
    <script src="${registry.url}/netget.js" data-network="development"></script>`;
  await page.goto(`${pages.origin}/f.html`);
  const w = await page.evaluate(() => netget.ready.then((w) => ({ network: w.network, subtle: typeof crypto.subtle })));
  assert.deepEqual(w, { network: 'development', subtle: 'undefined' });
  assert.match(await page.evaluate(() => netget.publicKey), /^[A-Za-z0-9+/]{43}=$/);
  assert.equal(await page.evaluate(() => netget.discover('web').then((l) => l.length)), 1);
});

test('two callbacks share one watch; each stops on its own', { timeout: 30000 }, async () => {
  const { page } = browser;
  pages.routes['/a.html'] = h.embedPage(registry.url);
  await page.goto(`${pages.origin}/a.html`);
  const first = await h.holdRegistration(registry.url, 'shared', 'http://127.0.0.1:9400');
  await page.evaluate(async () => {
    window.a = [];
    window.b = [];
    window.offA = netget.watch('shared', (e) => window.a.push(`${e.type} ${e.instance.address}`));
    await window.offA.ready;
    window.offB = netget.watch('shared', (e) => window.b.push(`${e.type} ${e.instance.address}`));
    await window.offB.ready;
  });
  // The second callback is told about what the first already knew.
  await h.waitFor(() => page.evaluate(() => window.b.length === 1), 10000, 'the greeting of the second callback');
  assert.deepEqual(await page.evaluate(() => [window.a, window.b]), [['up http://127.0.0.1:9400'], ['up http://127.0.0.1:9400']]);
  await page.evaluate(() => window.offA());
  await h.kill(first);
  await h.waitFor(() => page.evaluate(() => window.b.length === 2), 10000, 'the down event for the remaining callback');
  assert.deepEqual(await page.evaluate(() => [window.a, window.b]), [['up http://127.0.0.1:9400'], ['up http://127.0.0.1:9400', 'down http://127.0.0.1:9400']]);
});

test('a session the registry closes as idle (4001) comes back when the page calls again', { timeout: 30000 }, async () => {
  const own = await h.startRegistry({ cors: [pages.origin], config: '[limits]\nidle_timeout = "1s"\n' });
  try {
    const { page } = browser;
    // The listener is added by the page itself, before its session opens: added after `ready`,
    // it raced the idle close (about one ping interval after the welcome) on a slow runner.
    pages.routes['/i.html'] = h.embedPage(own.url, 'data-network="development"', `<script>
      window.closes = [];
      netget.on('close', (c) => window.closes.push(c));
    </script>`);
    await page.goto(`${pages.origin}/i.html`);
    await page.evaluate(() => netget.ready);
    await h.waitFor(() => page.evaluate(() => window.closes.length === 1), 10000, 'the idle close');
    // The registry closes with 4001; Chromium reports 1006 when the registry drops the TCP
    // connection right after its close frame. Either way the page does not reconnect by itself.
    const c = await page.evaluate(() => window.closes[0]);
    assert.ok([4001, 1006].includes(c.code), `close code ${c.code}`);
    assert.deepEqual(await page.evaluate(() => [window.closes[0].retrying, netget.state]), [false, 'idle']);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(await page.evaluate(() => netget.state), 'idle', 'no reconnection while nothing is needed');
    assert.deepEqual(await page.evaluate(() => netget.discover('web')), []);
    assert.equal(await page.evaluate(() => netget.state), 'open');
  } finally {
    await own.stop();
  }
});

test('a page whose renderer is killed leaves the registry at once, long before its session timeout', { timeout: 60000 }, async () => {
  // A 60 s session timeout: were the registry to wait for silence, the page would linger a minute.
  const own = await h.startRegistry({ cors: [pages.origin], args: ['--session-timeout', '60s'] });
  const page = await browser.context.newPage();
  try {
    const sessions = async () => (await h.httpJSON('GET', `${own.url}/health`)).json.sessions;
    pages.routes['/k.html'] = h.embedPage(own.url);
    await page.goto(`${pages.origin}/k.html`);
    await page.evaluate(() => netget.ready.then(() => netget.watch('web', () => {}).ready));
    await h.waitFor(async () => (await sessions()) === 1, 10000, 'the page\'s session');
    // The renderer dies as in a crash: no unload, no close frame from the page's code.
    const cdp = await browser.context.newCDPSession(page);
    // Not awaited: the call settles only once the page is closed.
    cdp.send('Page.crash').catch(() => {});
    // Bounded well below the session timeout: the closed connection is what removes it.
    await h.waitFor(async () => (await sessions()) === 0, 10000, 'the session to go');
  } finally {
    await page.close().catch(() => {});
    await own.stop();
  }
});
