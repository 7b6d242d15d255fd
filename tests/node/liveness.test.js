'use strict';
// Liveness, failover and isolation with real processes: a killed service vanishes, a service
// whose registry is killed moves to another one by itself, and networks never see each other.

const assert = require('node:assert/strict');
const { after, describe, it } = require('node:test');

const { cleanup, client, service, spawnRegistry, spawnService, startRegistry, waitFor } = require('./helpers.js');

after(cleanup);

describe('liveness', { timeout: 90_000 }, () => {
  it('a service process killed with SIGKILL vanishes at once, not at the session timeout', async () => {
    // The registry acts on the closed socket, not on silence: a minute's session timeout.
    const registry = await startRegistry({ sessionTimeout: '60s' });
    const { proc, instance } = await spawnService('worker', [registry.url]);
    const app = client([registry.url]);
    const events = [];
    const unwatch = app.watch('worker', (event) => events.push(event));
    try {
      const found = await app.discoverServiceNode('worker', { cached: false });
      assert.equal(found.id, instance.id);

      await proc.kill9();
      await waitFor(async () => (await app.discoverServiceNode('worker', { cached: false })) === null, {
        timeoutMs: 5_000,
        what: 'the killed service to vanish from the registry (its socket closed; the timeout is 60 s)',
      });
      await waitFor(() => events.some((e) => e.type === 'down' && e.instance.id === instance.id), {
        what: 'the watcher to see it go down',
      });
      assert.equal(await app.discoverServiceNode('worker'), null, 'the cache agrees');
    } finally {
      unwatch();
    }
  });

  it('a frozen service process (SIGSTOP, its socket still open) vanishes after the session timeout', async () => {
    const registry = await startRegistry({ sessionTimeout: '2s' });
    const { proc, instance } = await spawnService('frozen', [registry.url]);
    const app = client([registry.url]);
    assert.equal((await app.discoverServiceNode('frozen', { cached: false })).id, instance.id);
    proc.kill('SIGSTOP'); // silent but connected: only the session timeout can tell
    await waitFor(async () => (await app.discoverServiceNode('frozen', { cached: false })) === null, {
      timeoutMs: 20_000,
      what: 'the frozen service to time out',
    });
    await proc.kill9();
  });

  it('removeRegistryNode() of the current registry moves the session to the next one', async () => {
    const first = await startRegistry();
    const second = await startRegistry();
    // In order: two registries that are not a cluster, the session on the first.
    const svc = service('mover', 'http://127.0.0.1:8850', [first.url, second.url], { inOrder: true });
    const instance = await svc.registerWithNetwork();
    const onFirst = client([first.url]);
    const onSecond = client([second.url]);
    assert.equal((await onFirst.discoverServiceNode('mover', { cached: false })).id, instance.id);
    svc.removeRegistryNode(first.url);
    assert.deepEqual(svc.registryNodes, [second.url]);
    const moved = await waitFor(async () => onSecond.discoverServiceNode('mover', { cached: false }), {
      what: 'the service on the second registry',
    });
    assert.equal(moved.id, instance.id);
    await waitFor(async () => (await onFirst.discoverServiceNode('mover', { cached: false })) === null, {
      what: 'the service to leave the first registry',
    });
  });

  it('when its registry is killed, a service fails over to the next one by itself', async () => {
    const first = await spawnRegistry(['--session-timeout', '2s']);
    const second = await spawnRegistry(['--session-timeout', '2s']);
    const { instance } = await spawnService('payments', [first.url, second.url], { options: { inOrder: true } });
    const onFirst = client([first.url]);
    assert.equal((await onFirst.discoverServiceNode('payments', { cached: false })).id, instance.id);

    const onSecond = client([second.url]);
    assert.equal(await onSecond.discoverServiceNode('payments', { cached: false }), null, 'registries are separate');

    await first.proc.kill9();
    // The service (in its own process, doing nothing) reconnects to the second registry and
    // registers again with the same id.
    const moved = await waitFor(async () => onSecond.discoverServiceNode('payments', { cached: false }), {
      timeoutMs: 30_000,
      what: 'the service to re-register on the second registry',
    });
    assert.equal(moved.id, instance.id);

    // A client that listed both registries follows too.
    const both = client([first.url, second.url]);
    const seen = await waitFor(async () => both.discoverServiceNode('payments'), {
      timeoutMs: 30_000,
      what: 'a two-registry client to find it',
    });
    assert.equal(seen.id, instance.id);
  });

  it('networks are isolated: discovery, listing and channels', async () => {
    const registry = await startRegistry({ network: 'development', networks: ['production'] });
    const prodSvc = service('ledger', 'http://127.0.0.1:8800', [registry.url], { network: 'production' });
    const prodInstance = await prodSvc.registerWithNetwork();
    assert.equal(prodInstance.network, 'production');

    const dev = client([registry.url], { network: 'development' });
    const prod = client([registry.url], { network: 'production' });
    assert.equal(await dev.discoverServiceNode('ledger'), null);
    assert.equal(await dev.discoverServiceNode('ledger', { cached: false }), null);
    assert.deepEqual(await dev.discoverServiceNodes('ledger', { healthyOnly: false }), []);
    assert.ok(!(await dev.services()).some((s) => s.name === 'ledger'));
    assert.equal((await prod.discoverServiceNode('ledger')).id, prodInstance.id);
    assert.ok((await prod.services()).some((s) => s.name === 'ledger'));

    // The same service name in both networks: each sees its own.
    const devSvc = service('ledger', 'http://127.0.0.1:8801', [registry.url], { network: 'development' });
    const devInstance = await devSvc.registerWithNetwork();
    await waitFor(async () => (await dev.discoverServiceNodes('ledger')).length === 1, { what: 'the dev ledger' });
    assert.deepEqual((await dev.discoverServiceNodes('ledger')).map((i) => i.id), [devInstance.id]);
    assert.deepEqual((await prod.discoverServiceNodes('ledger')).map((i) => i.id), [prodInstance.id]);

    // Channels: a production subscriber never gets a development message.
    const prodMessages = [];
    const unsubscribe = prod.subscribe('events', (m) => prodMessages.push(m));
    try {
      await waitFor(async () => (await prodSvc.publish('events', 'prod-ping')) >= 1, { what: 'the subscription' });
      await waitFor(() => prodMessages.length >= 1, { what: 'the production message' });
      assert.equal(await devSvc.publish('events', 'dev-ping'), 0, 'no development subscriber');
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.ok(prodMessages.every((m) => m.data === 'prod-ping'));
    } finally {
      unsubscribe();
    }
  });
});
