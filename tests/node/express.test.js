'use strict';
// netget/express with a real Express app on port 0: registered with its real port once
// listening, discovered and called by another client, gone when the server closes or the
// process gets SIGTERM.

const assert = require('node:assert/strict');
const path = require('node:path');
const { after, describe, it } = require('node:test');

const express = require('express');
const { attach } = require('netget/express');
const { child, cleanup, client, defer, startRegistry, tempDir, waitFor } = require('./helpers.js');

after(cleanup);

describe('netget/express', { timeout: 60_000 }, () => {
  it('registers the listening app, serves /health, deregisters on close', async () => {
    const registry = await startRegistry();
    const app = express();
    app.get('/hello', (_req, res) => res.json({ hello: 'world' }));
    const registration = attach(app, {
      name: 'greeter',
      registryNodes: [registry.url],
      tags: ['v1'],
      version: '2.0.0',
      metadata: { team: 'web' },
      dataDir: tempDir(),
      signals: false,
    });
    assert.equal(registration.node, null, 'no node before the server listens');
    const server = app.listen(0, '127.0.0.1');
    defer(() => new Promise((resolve) => server.close(() => resolve())));
    defer(() => registration.close());

    const instance = await registration.ready;
    const { port } = server.address();
    assert.equal(instance.name, 'greeter');
    assert.equal(instance.address, `http://127.0.0.1:${port}`);
    assert.deepEqual(instance.tags, ['v1']);
    assert.equal(instance.version, '2.0.0');
    assert.equal(instance.metadata.team, 'web');
    assert.equal(instance.health.http, `http://127.0.0.1:${port}/health`);
    assert.ok(registration.node, 'the node is there once listening');

    const health = await fetch(`http://127.0.0.1:${port}/health`);
    assert.equal(health.status, 200);
    assert.equal((await health.json()).status, 'passing');

    // Another client discovers it and calls it.
    const other = client([registry.url]);
    const found = await other.discoverServiceNode('greeter');
    assert.equal(found.id, instance.id);
    const reply = await fetch(`${found.address}/hello`);
    assert.deepEqual(await reply.json(), { hello: 'world' });

    await new Promise((resolve) => server.close(resolve));
    await waitFor(async () => (await other.discoverServiceNode('greeter', { cached: false })) === null, {
      what: 'the closed app to vanish',
    });
    await waitFor(async () => (await other.discoverServiceNode('greeter')) === null, {
      what: 'the cache to follow',
    });
  });

  it('honours a given address, a custom health path and health: false', async () => {
    const registry = await startRegistry();
    const app = express();
    const registration = attach(app, {
      name: 'edge',
      address: 'http://edge.internal:8080',
      healthPath: '/healthz',
      health: false,
      registryNodes: [registry.url],
      dataDir: tempDir(),
      signals: false,
    });
    const server = registration.listen(0, '127.0.0.1');
    defer(() => new Promise((resolve) => server.close(() => resolve())));
    defer(() => registration.close());
    const instance = await registration.ready;
    assert.equal(instance.address, 'http://edge.internal:8080');
    assert.equal(instance.health, undefined);
    const { port } = server.address();
    assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
    await registration.close();
    const other = client([registry.url]);
    await waitFor(async () => (await other.discoverServiceNode('edge', { cached: false })) === null, {
      what: 'close() to deregister',
    });
    assert.equal(server.listening, true, 'close() leaves the server running');
  });

  it('a registration failure rejects `ready` without crashing the app', async () => {
    const registry = await startRegistry();
    const app = express();
    const registration = attach(app, {
      registryNodes: [registry.url], // no name: the core refuses
      dataDir: tempDir(),
      signals: false,
    });
    const server = app.listen(0, '127.0.0.1');
    defer(() => new Promise((resolve) => server.close(() => resolve())));
    defer(() => registration.close());
    await assert.rejects(registration.ready, (err) => err.code === 'NETGET_INVALID_INPUT');
  });

  it('SIGTERM deregisters the app, then the process ends', async () => {
    const registry = await startRegistry();
    const proc = child([
      path.join(__dirname, 'fixtures', 'express-app.js'),
      JSON.stringify({ name: 'terminated', registryNodes: [registry.url], dataDir: tempDir() }),
    ]);
    const instance = JSON.parse(await proc.nextLine());
    const other = client([registry.url]);
    assert.equal((await other.discoverServiceNode('terminated', { cached: false })).id, instance.id);
    proc.kill('SIGTERM');
    const how = await proc.exited;
    assert.equal(how, 'SIGTERM', 'the process ends as SIGTERM would end it');
    assert.equal(await other.discoverServiceNode('terminated', { cached: false }), null);
  });
});
