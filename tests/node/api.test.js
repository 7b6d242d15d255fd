'use strict';
// Every public method of `Netget`, end to end against a registry started in this process.

const assert = require('node:assert/strict');
const { after, describe, it } = require('node:test');

const netget = require('netget');
const { Netget, ErrorCode, isNetgetError } = netget;
const { cleanup, client, expectCode, node, service, startRegistry, tempDir, waitFor } = require('./helpers.js');

after(cleanup);

const INSTANCE_KEYS = [
  'address', 'id', 'metadata', 'name', 'network', 'registeredAt', 'registry', 'status', 'tags', 'weight',
];

describe('Netget', { timeout: 60_000 }, () => {
  it('a registry starts on port 0 and tells its URL and key', async () => {
    const registry = new Netget({ nodeType: 'registry', listen: '127.0.0.1:0', dataDir: tempDir() });
    try {
      assert.equal(registry.nodeType, 'registry');
      assert.equal(registry.url, null);
      const url = await registry.start();
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.notEqual(url, 'http://127.0.0.1:0');
      assert.equal(registry.url, url);
      assert.equal(await registry.start(), url, 'start() again resolves with the same URL');
      assert.match(registry.publicKey, /^[A-Za-z0-9+/]{43}=$/);
    } finally {
      await registry.stop();
    }
    await registry.stop(); // idempotent
    assert.equal(registry.url, null);
  });

  it('registers, discovers (cached and not), lists, deregisters and stops', async () => {
    const registry = await startRegistry();
    const db = service('DatabaseService', 'http://127.0.0.1:5432', [registry.url], {
      metadata: { description: 'Provides database functionalities', tags: ['v1'], version: '1.2.0', zone: 'a' },
    });
    assert.equal(db.nodeType, 'service');
    const instance = await db.registerWithNetwork();
    for (const key of INSTANCE_KEYS) assert.ok(key in instance, `instance has ${key}`);
    assert.equal(instance.name, 'DatabaseService');
    assert.equal(instance.network, 'development');
    assert.equal(instance.address, 'http://127.0.0.1:5432');
    assert.deepEqual(instance.tags, ['v1']);
    assert.equal(instance.version, '1.2.0');
    assert.equal(instance.weight, 1);
    assert.equal(instance.status, 'passing');
    assert.equal(instance.metadata.zone, 'a');
    assert.equal(typeof instance.registeredAt, 'number');
    assert.equal(instance.publicKey, db.publicKey);
    assert.match(db.url, /^ws:\/\/127\.0\.0\.1:\d+\/v1\/ws$/);

    const app = client([registry.url]);
    assert.equal(app.nodeType, 'client');
    const first = await app.discoverServiceNode('DatabaseService');
    assert.equal(first.id, instance.id);
    const cached = await app.discoverServiceNode('DatabaseService');
    assert.deepEqual(cached, first);
    const asked = await app.discoverServiceNode('DatabaseService', { cached: false });
    assert.equal(asked.id, instance.id);
    for (const strategy of ['random', 'round-robin', 'weighted']) {
      assert.equal((await app.discoverServiceNode('DatabaseService', { strategy })).id, instance.id);
    }
    assert.equal(await app.discoverServiceNode('NoSuchService'), null);
    assert.equal(await app.discoverServiceNode('NoSuchService', { cached: false }), null);

    const all = await app.discoverServiceNodes('DatabaseService', { tags: ['v1'], healthyOnly: true });
    assert.deepEqual(all.map((i) => i.id), [instance.id]);
    assert.deepEqual(await app.discoverServiceNodes('DatabaseService', { tags: ['v2'] }), []);
    assert.equal((await app.discoverServiceNodes('DatabaseService', { cached: false })).length, 1);

    const services = await app.services();
    const summary = services.find((s) => s.name === 'DatabaseService');
    assert.equal(summary.instances, 1);
    assert.equal(summary.healthy, 1);

    await db.deregister();
    await waitFor(async () => (await app.discoverServiceNode('DatabaseService')) === null, {
      what: 'the deregistered instance to vanish',
    });
    assert.equal(await app.discoverServiceNode('DatabaseService', { cached: false }), null);

    await db.registerWithNetwork();
    await waitFor(async () => (await app.discoverServiceNode('DatabaseService')) !== null, {
      what: 'the registered-again instance',
    });
    await db.stop();
    await waitFor(async () => (await app.discoverServiceNode('DatabaseService', { cached: false })) === null, {
      what: 'the stopped service to vanish',
    });
    await db.stop(); // idempotent
  });

  it('picks among several instances and honours weights and tags', async () => {
    const registry = await startRegistry();
    const ids = new Set();
    for (let i = 0; i < 3; i++) {
      const s = service('web', `http://127.0.0.1:${8000 + i}`, [registry.url], {
        metadata: { tags: [i === 0 ? 'canary' : 'stable'], weight: i === 2 ? 0 : 1 },
      });
      ids.add((await s.registerWithNetwork()).id);
    }
    assert.equal(ids.size, 3);
    const app = client([registry.url]);
    await waitFor(async () => (await app.discoverServiceNodes('web')).length === 3, { what: '3 instances' });
    const seen = new Set();
    for (let i = 0; i < 12; i++) {
      seen.add((await app.discoverServiceNode('web', { strategy: 'round-robin' })).address);
    }
    assert.equal(seen.size, 3, 'round-robin visits every instance');
    const canary = await app.discoverServiceNodes('web', { tags: ['canary'] });
    assert.deepEqual(canary.map((i) => i.address), ['http://127.0.0.1:8000']);
    for (let i = 0; i < 20; i++) {
      const picked = await app.discoverServiceNode('web', { strategy: 'weighted' });
      assert.notEqual(picked.address, 'http://127.0.0.1:8002', 'weight 0 is never picked while others weigh more');
    }
  });

  it('watch() reports up and down, and the returned function stops it', async () => {
    const registry = await startRegistry();
    const app = client([registry.url]);
    const events = [];
    const unwatch = app.watch('orders', (event) => events.push(event));
    assert.equal(typeof unwatch, 'function');
    const orders = service('orders', 'http://127.0.0.1:8100', [registry.url]);
    const instance = await orders.registerWithNetwork();
    await waitFor(() => events.some((e) => e.type === 'up' && e.instance.id === instance.id), { what: 'up' });
    await orders.stop();
    await waitFor(() => events.some((e) => e.type === 'down' && e.instance.id === instance.id), { what: 'down' });

    unwatch();
    unwatch(); // idempotent
    const count = events.length;
    const again = service('orders', 'http://127.0.0.1:8101', [registry.url]);
    await again.registerWithNetwork();
    await waitFor(async () => (await app.discoverServiceNodes('orders', { cached: false })).length === 1, {
      what: 'the new instance',
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(events.length, count, 'no event after unwatch');
  });

  it('a watch started after registration first sees the current instances', async () => {
    const registry = await startRegistry();
    const s = service('cache', 'http://127.0.0.1:6379', [registry.url]);
    const instance = await s.registerWithNetwork();
    const app = client([registry.url]);
    const events = [];
    const unwatch = app.watch('cache', (event) => events.push(event));
    try {
      await waitFor(() => events.some((e) => e.type === 'up' && e.instance.id === instance.id), {
        what: 'the initial up',
      });
    } finally {
      unwatch();
    }
  });

  it('subscribe() and publish() carry JSON between nodes of a network', async () => {
    const registry = await startRegistry();
    const a = client([registry.url]);
    const b = service('chatter', 'http://127.0.0.1:8200', [registry.url]);
    await b.start();
    const messages = [];
    const unsubscribe = a.subscribe('chat', (message) => messages.push(message));
    // The subscription reaches the registry asynchronously: publish until it is delivered.
    await waitFor(async () => (await b.publish('chat', { text: 'hi', n: [1, 2] })) >= 1, {
      what: 'a subscriber on the registry',
    });
    await waitFor(() => messages.length >= 1, { what: 'the message' });
    assert.equal(messages[0].channel, 'chat');
    assert.deepEqual(messages[0].data, { text: 'hi', n: [1, 2] });
    assert.equal(messages[0].from, b.publicKey);
    assert.equal(await b.publish('chat'), 1, 'data is optional (null)');
    await waitFor(() => messages.length >= 2, { what: 'the second message' });
    assert.equal(messages[1].data, null);

    unsubscribe();
    await waitFor(async () => (await b.publish('chat', 'anyone?')) === 0, { what: 'the unsubscription' });
    const count = messages.length;
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(messages.length, count, 'no message after unsubscribe');
  });

  it('a registry node discovers, watches and publishes like any node', async () => {
    const registry = await startRegistry();
    const s = service('inventory', 'http://127.0.0.1:8300', [registry.url]);
    const instance = await s.registerWithNetwork();
    assert.equal((await registry.discoverServiceNode('inventory')).id, instance.id);
    assert.equal((await registry.discoverServiceNodes('inventory')).length, 1);
    assert.ok((await registry.services()).some((x) => x.name === 'inventory'));
    const got = [];
    const unsubscribe = s.subscribe('ops', (m) => got.push(m));
    try {
      await waitFor(async () => (await registry.publish('ops', { cmd: 'flush' })) >= 1, { what: 'delivery' });
      await waitFor(() => got.length >= 1, { what: 'the message' });
    } finally {
      unsubscribe();
    }
  });

  it('addRegistryNode / removeRegistryNode edit the failover list', async () => {
    const registry = await startRegistry();
    const app = client([registry.url]);
    assert.deepEqual(app.registryNodes, [registry.url]);
    app.addRegistryNode('http://127.0.0.1:7701');
    app.addRegistryNode('http://127.0.0.1:7701'); // no duplicate
    assert.deepEqual(app.registryNodes, [registry.url, 'http://127.0.0.1:7701']);
    app.removeRegistryNode('http://127.0.0.1:7701');
    assert.deepEqual(app.registryNodes, [registry.url]);
    await expectCode(() => app.removeRegistryNode('http://127.0.0.1:7701'), 'NETGET_NOT_FOUND');
    await expectCode(() => app.addRegistryNode('ftp://nope'), 'NETGET_INVALID_INPUT');
  });

  it('start() on a peer resolves with the registry it is in session with', async () => {
    const registry = await startRegistry();
    const app = client([registry.url]);
    const url = await app.start();
    assert.match(url, /^ws:\/\/127\.0\.0\.1:\d+\/v1\/ws$/);
    assert.equal(app.url, url);
    assert.equal(typeof app.publicKey, 'string');
  });

  it('the same node key in a data dir keeps the instance id across restarts', async () => {
    const registry = await startRegistry();
    const dataDir = tempDir();
    const options = {
      metadata: { name: 'stable', address: 'http://127.0.0.1:8400' },
      registryNodes: [registry.url],
      dataDir,
    };
    const first = node(options);
    const id = (await first.registerWithNetwork()).id;
    await first.stop();
    const second = node(options);
    assert.equal((await second.registerWithNetwork()).id, id);
    assert.equal(second.publicKey, first.publicKey);
  });

  it('exports error codes and recognises netget errors', async () => {
    assert.equal(ErrorCode.UNAUTHORIZED, 'NETGET_UNAUTHORIZED');
    assert.ok(Object.isFrozen(ErrorCode));
    const err = await expectCode(() => new Netget({ nodeType: 'router' }), ErrorCode.INVALID_INPUT);
    assert.ok(isNetgetError(err));
    assert.ok(!isNetgetError(new Error('x')));
  });

  it('the ESM entry point exports the same API', async () => {
    const esm = await import('netget');
    assert.equal(esm.Netget, Netget);
    assert.equal(esm.ErrorCode, ErrorCode);
    assert.equal(esm.isNetgetError, isNetgetError);
    assert.equal(require('netget/package.json').name, 'netget');
  });
});

describe('declarations', () => {
  it('index.d.ts declares exactly the runtime API', () => {
    const fs = require('node:fs');
    const path = require('node:path');
    const dts = fs.readFileSync(path.join(__dirname, '..', '..', 'bindings-node', 'index.d.ts'), 'utf8');
    const declaredValues = [...dts.matchAll(/^export declare (?:const|function|class) (\w+)/gm)].map((m) => m[1]);
    assert.deepEqual(declaredValues.sort(), Object.keys(netget).sort());
    const body = dts.slice(dts.indexOf('export declare class Netget'));
    const members = [...body.matchAll(/^ {2}(?:readonly )?(\w+)[(:]/gm)].map((m) => m[1]).filter((n) => n !== 'constructor');
    const runtime = Object.getOwnPropertyNames(Netget.prototype).filter((n) => n !== 'constructor');
    assert.deepEqual(members.sort(), runtime.sort());
    assert.deepEqual(Object.keys(ErrorCode).sort(), [...dts.matchAll(/readonly (\w+): 'NETGET_/g)].map((m) => m[1]).sort());
    const express = require('netget/express');
    const expressDts = fs.readFileSync(path.join(__dirname, '..', '..', 'bindings-node', 'express.d.ts'), 'utf8');
    assert.deepEqual(
      [...expressDts.matchAll(/^export declare function (\w+)/gm)].map((m) => m[1]),
      Object.keys(express),
    );
  });
});
