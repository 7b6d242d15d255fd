// Channel messages between a page (netget.js) and services in Python and Node (the language
// packages of this repository), both ways.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
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

// Each peer subscribes to `to-services` (printing every message as a JSON line), then publishes
// `{from: LANG}` on `to-page` until a subscriber gets it, and exits when its stdin closes.
const PYTHON_PEER = `
import asyncio, json, sys
from netget import Netget

async def main():
    async with Netget("client", registry_nodes=[sys.argv[1]]) as node:
        sub = node.subscribe("to-services")

        async def read():
            async for m in sub:
                print(json.dumps({"got": m["data"], "from": m.get("from")}), flush=True)

        reader = asyncio.get_running_loop().create_task(read())
        delivered = 0
        for _ in range(200):
            delivered = await node.publish("to-page", {"from": "python"})
            if delivered:
                break
            await asyncio.sleep(0.05)
        print(json.dumps({"published": delivered}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        reader.cancel()

asyncio.run(main())
`;

const NODE_PEER = `
const { Netget } = require(process.env.NETGET_NODE_PACKAGE);
(async () => {
  const node = new Netget({ nodeType: 'client', registryNodes: [process.env.NETGET_URL] });
  await node.start();
  node.subscribe('to-services', (m) => console.log(JSON.stringify({ got: m.data, from: m.from })));
  let delivered = 0;
  for (let i = 0; i < 200 && !delivered; i++) {
    delivered = await node.publish('to-page', { from: 'node' });
    if (!delivered) await new Promise((r) => setTimeout(r, 50));
  }
  console.log(JSON.stringify({ published: delivered }));
  process.stdin.resume();
  process.stdin.on('end', () => node.stop().then(() => process.exit(0)));
})().catch((e) => { console.error(e); process.exit(1); });
`;

function pythonPeer() {
  const py = path.join(h.ROOT, '.venv', 'bin', 'python');
  const python = fs.existsSync(py) ? py : 'python3';
  const probe = spawnSync(python, ['-c', 'import netget, netget._native'], { encoding: 'utf8' });
  if (probe.status !== 0) {
    throw new Error(`the Python package netget is not built/installed for ${python} (run \`make python\` at the repository root): ${probe.stderr || probe.error}`);
  }
  return [python, ['-c', PYTHON_PEER, registry.url], {}];
}

function nodePeer() {
  const pkg = path.join(h.ROOT, 'bindings-node', 'index.js');
  const dir = path.dirname(pkg);
  const addon = fs.existsSync(dir) && fs.readdirSync(dir).find((f) => /^netget\..*\.node$/.test(f));
  if (!fs.existsSync(pkg) || !addon) {
    throw new Error(`the Node package is not built: no native addon in ${dir} (run \`npm install\` at the repository root)`);
  }
  return [process.execPath, ['-e', NODE_PEER], { env: { ...process.env, NETGET_URL: registry.url, NETGET_NODE_PACKAGE: pkg } }];
}

test('channel messages between the page and Python and Node services', { timeout: 90000 }, async (t) => {
  const { page } = browser;
  pages.routes['/c.html'] = h.embedPage(registry.url);
  await page.goto(`${pages.origin}/c.html`);
  const pageKey = await page.evaluate(async () => {
    await netget.ready;
    window.got = [];
    await netget.subscribe('to-page', (m) => window.got.push(m)).ready;
    return netget.publicKey;
  });

  const peers = {};
  for (const [lang, make] of [['python', pythonPeer], ['node', nodePeer]]) {
    await t.test(`${lang} peer`, { timeout: 60000 }, async () => {
      const [cmd, args, opts] = make();
      const { child } = await h.spawnUntil(cmd, args, /"published": ?[1-9]/, { timeout: 45000, ...opts });
      peers[lang] = child;
      // The page got the peer's message.
      const m = await h.waitFor(() => page.evaluate((l) => window.got.find((m) => m.data && m.data.from === l), lang), 10000, `the ${lang} message in the page`);
      assert.equal(m.channel, 'to-page');
      assert.match(m.from, /^[A-Za-z0-9+/]{43}=$/);
    });
  }

  await t.test('page publishes to both', { timeout: 30000 }, async () => {
    const missing = ['python', 'node'].filter((l) => !peers[l]);
    assert.deepEqual(missing, [], `peers that did not start: ${missing.join(', ')}`);
    // Publish until both subscriptions are live on the registry (delivered counts them).
    const delivered = await page.evaluate(async () => {
      for (let i = 0; i < 100; i++) {
        const n = await netget.publish('to-services', { text: 'hello from the page', i });
        if (n >= 2) return n;
        await new Promise((r) => setTimeout(r, 50));
      }
      return 0;
    });
    assert.equal(delivered, 2);
    for (const lang of ['python', 'node']) {
      const child = peers[lang];
      const line = await h.waitFor(
        () => child.lines.map((l) => { try { return JSON.parse(l); } catch { return null; } }).find((j) => j && j.got && j.got.text === 'hello from the page'),
        5000,
        `the page's message in the ${lang} process`,
      );
      assert.equal(line.from, pageKey, `${lang} sees the page's public key as the sender`);
    }
  });

  for (const child of Object.values(peers)) child.stdin.end();
  await Promise.all(Object.values(peers).map((c) => h.waitFor(() => c.exitCode !== null || c.signalCode !== null, 10000, 'a peer to exit').catch(() => h.kill(c))));
});
