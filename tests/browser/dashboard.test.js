// The registry's dashboard at `/`: live by watchNetwork events (a registration shows at once),
// status changes, network selection, 10,000 instances with only the visible rows in the DOM,
// and a screenshot, written to target/screenshots/dashboard.png (untracked, so a test run leaves
// the checkout clean; the README shows docs/dashboard.png, a copy of it refreshed by hand).
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const h = require('./helpers');

let browser;

before(async () => {
  browser = await h.launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  await h.cleanup();
});

const row = (service, id) => `#inst-window [data-service="${service}"]${id ? `[data-id="${id}"]` : ''}`;
const digits = (s) => Number(String(s).replace(/\D/g, ''));

async function openDashboard(page, url) {
  await page.goto(url);
  await h.waitFor(() => page.evaluate(() => document.getElementById('conn').dataset.state === 'open'), 10000, 'the dashboard to connect');
  await h.waitFor(() => page.evaluate(() => !/Loading/.test(document.getElementById('inst-window').textContent)), 10000, 'the first snapshot');
}

test('a CLI registration shows at once, then its status changes live', { timeout: 60000 }, async () => {
  const registry = await h.startRegistry();
  const { page } = browser;
  try {
    await openDashboard(page, `${registry.url}/`);
    assert.match(await page.textContent('#inst-window'), /No instances in network development/);
    const polls = await page.evaluate(() => performance.getEntriesByType('resource').length);
    // Every state the checkout row is drawn in, recorded as it is drawn. A 2 s TTL makes
    // `passing` last only 2 s: reading the live DOM afterwards raced it on a slow runner, so the
    // assertions read this history instead.
    await page.evaluate(() => {
      window.drawn = [];
      const text = (id) => document.getElementById(id).textContent;
      const record = () => {
        const r = document.querySelector('#inst-window [data-service="checkout"]');
        const state = r && {
          id: r.dataset.id,
          status: r.dataset.status,
          text: r.textContent,
          check: r.querySelector('.check').textContent.trim(),
          instances: text('n-instances'),
          passing: text('n-passing'),
          critical: text('n-critical'),
        };
        const last = window.drawn[window.drawn.length - 1];
        if (state && (!last || last.status !== state.status)) window.drawn.push(state);
      };
      new MutationObserver(record).observe(document.getElementById('inst-window'), { childList: true, subtree: true, attributes: true });
    });
    const drawn = () => page.evaluate(() => window.drawn);

    const out = await h.cli(['register', 'checkout', '--address', 'http://127.0.0.1:9200', '--ttl', '2s', '--tag', 'v1', '--service-version', '1.2.0', '--registry', registry.url]);
    const acknowledged = Date.now();
    const id = /^registered checkout (\S+)/.exec(out)[1];
    // Bounded, not a latency assertion: the time it took is printed below.
    await h.waitFor(async () => (await drawn()).length >= 1, 10000, 'the registration on the dashboard');
    const shownAfter = Date.now() - acknowledged;
    const [first] = await drawn();
    assert.equal(first.status, 'passing');
    assert.match(first.text, /http:\/\/127\.0\.0\.1:9200[\s\S]*passing[\s\S]*v1[\s\S]*1\.2\.0/);
    assert.equal(digits(first.instances), 1);
    assert.equal(digits(first.passing), 1);
    assert.equal(first.id, id);

    // No heartbeat within the 2 s TTL: critical, with the check's output. The heartbeat goes
    // out as soon as that is drawn (the registry removes the instance one more TTL later).
    await h.waitFor(async () => (await drawn()).some((d) => d.status === 'critical'), 10000, 'the status critical');
    const hb = await h.httpJSON('PUT', `${registry.url}/v1/networks/development/services/checkout/instances/${id}/heartbeat`);
    assert.equal(hb.status, 200);
    const critical = (await drawn()).find((d) => d.status === 'critical');
    assert.match(critical.text, /critical/);
    assert.ok(critical.check.length > 1, 'last check shown');
    assert.equal(digits(critical.critical), 1);

    // The heartbeat: passing again (drawn after the critical state, however briefly).
    await h.waitFor(async () => (await drawn()).findIndex((d, n) => n > 0 && d.status === 'passing') > 0, 10000, 'the status passing after the heartbeat');

    // Deregistered: gone.
    await h.cli(['deregister', 'checkout', id, '--registry', registry.url]);
    await h.waitFor(async () => !(await page.$(row('checkout', id))), 10000, 'the row to go');
    // Live by events: the page fetched nothing since it loaded.
    assert.equal(await page.evaluate(() => performance.getEntriesByType('resource').length), polls);
    console.log(`dashboard showed the registration ${shownAfter} ms after the CLI's acknowledgement`);
  } finally {
    await registry.stop();
  }
});

test('in a cluster: the peers show, and an instance held for a killed registry is marked', { timeout: 60000 }, async () => {
  // A keeps a lost peer's instances for 10 s: long enough to see them marked.
  const a = await h.startRegistry({ args: ['--gossip-listen', '127.0.0.1:0'], config: '[cluster]\ngrace = "10s"\n' });
  const b = await h.startRegistry({ args: ['--join', a.url] });
  const { page } = browser;
  const hold = await h.holdRegistration(b.url, 'on-b', 'http://127.0.0.1:9300');
  try {
    await openDashboard(page, `${a.url}/`);
    const peerState = () => page.evaluate(() => Object.fromEntries([...document.querySelectorAll('#peers [data-peer]')].map((p) => [p.dataset.peer, p.dataset.state])));
    const states = await h.waitFor(async () => {
      const s = await peerState();
      return Object.keys(s).length === 2 && Object.values(s).every((v) => v === 'live') && s;
    }, 20000, 'both registries live and linked on the dashboard');
    assert.equal(Object.keys(states).length, 2);
    // B's instance shows on A's dashboard, not marked.
    await page.waitForSelector(row('on-b'), { timeout: 10000 });
    assert.equal(await page.$(`${row('on-b')} .held`), null);
    b.child.kill('SIGKILL');
    // Within the grace period: still listed, marked as held for the lost registry.
    await page.waitForSelector(`${row('on-b')} .held`, { timeout: 10000 });
    const after = await peerState();
    assert.ok(Object.values(after).some((v) => v === 'dead' || v === 'unlinked'), JSON.stringify(after));
  } finally {
    await h.kill(hold);
  }
});

test('the network selector switches the watched network', { timeout: 30000 }, async () => {
  const registry = await h.startRegistry({ args: ['--network', 'alpha', '--network', 'beta'] });
  const { page } = browser;
  try {
    await h.cli(['register', 'only-in-beta', '--address', 'http://127.0.0.1:9300', '--network', 'beta', '--registry', registry.url]);
    await openDashboard(page, `${registry.url}/#network=alpha`);
    assert.deepEqual(await page.$$eval('#network option', (o) => o.map((x) => x.value)), ['alpha', 'beta']);
    assert.equal(await page.$(row('only-in-beta')), null);
    await page.selectOption('#network', 'beta');
    await h.waitFor(() => page.$(row('only-in-beta')), 10000, 'the instance of network beta');
    assert.match(page.url(), /#network=beta$/);
    assert.equal((await page.evaluate(() => netget.session)).network, 'beta');
  } finally {
    await registry.stop();
  }
});

test('10,000 instances: only visible rows are in the DOM; search filters; events still arrive', { timeout: 120000 }, async () => {
  const registry = await h.startRegistry();
  const { page } = browser;
  try {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
    const jobs = [];
    for (let s = 0; s < 100; s++) for (let i = 0; i < 100; i++) jobs.push([s, i]);
    const started = Date.now();
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        for (let job; (job = jobs.pop()); ) {
          const [s, i] = job;
          const name = `svc-${String(s).padStart(3, '0')}`;
          const id = `i-${String(i).padStart(3, '0')}`;
          const res = await new Promise((resolve, reject) => {
            const req = http.request(`${registry.url}/v1/networks/development/services/${name}/instances/${id}`, { method: 'PUT', agent, headers: { 'content-type': 'application/json' } }, (r) => {
              r.resume();
              r.on('end', () => resolve(r.statusCode));
            });
            req.on('error', reject);
            req.end(JSON.stringify({ address: `http://10.1.${s}.${i}:8080`, tags: [i % 2 ? 'zone-b' : 'zone-a'], version: '1.0.0', ttl: '10m' }));
          });
          assert.equal(res, 201);
        }
      }),
    );
    agent.destroy();
    console.log(`registered 10,000 instances over REST in ${Date.now() - started} ms`);

    const t0 = Date.now();
    await openDashboard(page, `${registry.url}/`);
    await h.waitFor(async () => digits(await page.textContent('#n-instances')) === 10000, 15000, '10,000 instances on the dashboard');
    console.log(`dashboard loaded 10,000 instances in ${Date.now() - t0} ms`);
    const rendered = await page.$$eval('#inst-window .row', (r) => r.length);
    // The first rows are where the scroller shows them.
    const box = await page.$eval('#instances', (el) => {
      const a = el.getBoundingClientRect();
      const b = el.querySelector('.row').getBoundingClientRect();
      return { top: b.top - a.top, inside: b.bottom <= a.bottom };
    });
    assert.deepEqual(box, { top: 0, inside: true });
    assert.ok(rendered > 5 && rendered < 80, `only the visible rows are rendered (${rendered})`);
    assert.equal(digits(await page.textContent('#n-services')), 100);

    // Scrolled to the end: the last instance (sorted by service, then id) is drawn.
    await page.$eval('#instances', (el) => (el.scrollTop = el.scrollHeight));
    await h.waitFor(() => page.$(row('svc-099', 'i-099')), 10000, 'the last row after scrolling');
    const last = await page.$eval('#instances', (el) => {
      const a = el.getBoundingClientRect();
      const b = el.querySelector('[data-service="svc-099"][data-id="i-099"]').getBoundingClientRect();
      return Math.round(a.bottom - b.bottom);
    });
    assert.ok(last >= 0 && last <= 2, `the last row sits at the bottom of the scroller (${last} px off)`);

    // The search box filters by service name, address or tag.
    await page.fill('#search', 'svc-042');
    await h.waitFor(async () => /^100 of 10,?000$/.test(await page.textContent('#inst-count')), 10000, 'the filtered count');
    await page.fill('#search', '10.1.7.3:');
    await h.waitFor(async () => (await page.textContent('#inst-count')) === '1 of 10,000', 10000, 'the address filter');
    assert.ok(await page.$(row('svc-007', 'i-003')));
    await page.fill('#search', 'svc-042 zone-b');
    await h.waitFor(async () => /^50 of/.test(await page.textContent('#inst-count')), 10000, 'the service and tag filter');

    // A new registration among 10,000 reaches the filtered view.
    await h.cli(['register', 'svc-042', '--id', 'late', '--address', 'http://10.9.9.9:1', '--tag', 'zone-b', '--registry', registry.url]);
    await h.waitFor(async () => /^51 of 10,?001$/.test(await page.textContent('#inst-count')), 10000, 'the new instance in the filtered view');
    await page.fill('#search', '10.9.9.9');
    await h.waitFor(() => page.$(row('svc-042', 'late')), 10000, 'the new row');
  } finally {
    await registry.stop();
  }
});

test('screenshot of a registry with services in every state', { timeout: 60000 }, async () => {
  // Health endpoints the registry probes: passing (200), warning (429), critical (500).
  const target = await h.startPageServer({
    '/health': (req, res) => res.writeHead(200).end('ok'),
    '/busy': (req, res) => res.writeHead(429).end('busy'),
    '/broken': (req, res) => res.writeHead(500).end('broken'),
  });
  const registry = await h.startRegistry();
  const { page } = browser;
  try {
    const put = async (name, id, body) => {
      const r = await h.httpJSON('PUT', `${registry.url}/v1/networks/development/services/${name}/instances/${id}`, body);
      assert.equal(r.status, 201, JSON.stringify(r.json));
    };
    const check = (p) => ({ http: `${target.origin}${p}`, interval: '1s', failuresBeforeCritical: 1 });
    for (const [n, zone] of [[1, 'eu-west'], [2, 'eu-west'], [3, 'us-east']]) {
      await put('web', `web-${n}`, { address: `http://10.0.1.${n}:8080`, tags: ['http', zone], version: '2.4.1', health: check('/health') });
    }
    await put('api', 'api-1', { address: 'http://10.0.2.1:9000', tags: ['grpc', 'eu-west'], version: '1.8.0', health: check('/health') });
    await put('api', 'api-2', { address: 'http://10.0.2.2:9000', tags: ['grpc', 'us-east'], version: '1.8.0', health: check('/busy') });
    await put('payments', 'payments-1', { address: 'http://10.0.3.1:7000', tags: ['pci'], version: '0.9.3', health: check('/broken') });
    const port = new URL(target.origin).port;
    await put('DatabaseService', 'db-primary', { address: `postgres://10.0.4.1:5432`, tags: ['primary'], version: '16.4', health: { tcp: `127.0.0.1:${port}`, interval: '1s' } });
    await put('cache', 'cache-1', { address: 'redis://10.0.5.1:6379', tags: ['lru'], version: '7.2', ttl: '10m' });
    const orders = await h.holdRegistration(registry.url, 'orders', 'http://10.0.6.1:8000', ['--tag', 'v3', '--service-version', '3.1.0']);
    // Let every check run and settle first: the registry pushes a check's result only when the
    // status changes, so a dashboard shows the lastCheck of its snapshot and of status changes.
    const states = async () => {
      const out = [];
      for (const name of ['web', 'api', 'payments', 'DatabaseService']) {
        const r = await h.httpJSON('GET', `${registry.url}/v1/networks/development/services/${name}?healthy=false`);
        for (const i of r.json.instances) out.push(`${i.id}=${i.status}${i.lastCheck ? '+' : ''}`);
      }
      return out.join(' ');
    };
    await h.waitFor(async () => {
      const s = await states();
      return /api-2=warning\+/.test(s) && /payments-1=critical\+/.test(s) && (s.match(/=passing\+/g) || []).length === 5;
    }, 10000, 'the health checks to settle').catch(async (e) => {
      throw new Error(`${e.message}: ${await states()}`);
    });
    await openDashboard(page, `${registry.url}/`);
    const checks = () => page.$$eval('#inst-window .row', (rows) => rows.map((r) => `${r.dataset.id}=${r.dataset.status}: ${r.querySelector('.check').textContent}`));
    await h.waitFor(async () => (await checks()).filter((c) => /HTTP|TCP/.test(c)).length === 7, 10000, 'every last check').catch(async (e) => {
      throw new Error(`${e.message}: ${(await checks()).join('; ')}`);
    });
    assert.equal(digits(await page.textContent('#n-warning')), 1);
    assert.equal(digits(await page.textContent('#n-critical')), 1);
    assert.equal(digits(await page.textContent('#n-passing')), 7);
    await new Promise((r) => setTimeout(r, 1800));
    const file = path.join(__dirname, '..', '..', 'target', 'screenshots', 'dashboard.png');
    fs.mkdirSync(path.dirname(file), { recursive: true });
    await page.screenshot({ path: file });
    assert.ok(fs.statSync(file).size > 10000);
    await h.kill(orders);
  } finally {
    await registry.stop();
    await target.close();
  }
});
