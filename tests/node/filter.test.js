'use strict';
// The registry's conditional filter as a JS function: sync or async, allowing or denying, and
// throwing (which denies with the error's message and leaves the registry working).

const assert = require('node:assert/strict');
const { after, describe, it } = require('node:test');

const { cleanup, client, expectCode, service, startRegistry } = require('./helpers.js');

after(cleanup);

/** Starts a registry with `filter` and tries to register service `name` with it. */
async function tryRegister(filter, name = 'guarded', metadata = {}) {
  const registry = await startRegistry({ filter });
  const svc = service(name, 'http://127.0.0.1:8700', [registry.url], { metadata });
  return { registry, svc, result: svc.registerWithNetwork() };
}

describe('filter', { timeout: 60_000 }, () => {
  it('a sync filter returning true allows, and sees the request', async () => {
    const seen = [];
    const { svc, result } = await tryRegister((request) => {
      seen.push(request);
      return true;
    }, 'guarded', { zone: 'eu' });
    const instance = await result;
    assert.equal(instance.name, 'guarded');
    const handshake = seen.find((r) => r.kind === 'handshake' && r.publicKey === svc.publicKey);
    assert.ok(handshake, 'the filter saw the service handshake');
    assert.equal(handshake.network, 'development');
    assert.equal(handshake.nodeType, 'service');
    assert.match(handshake.remoteAddr, /^127\.0\.0\.1:\d+$/);
    const register = seen.find((r) => r.kind === 'register');
    assert.equal(register.service, 'guarded');
    assert.equal(register.instanceId, instance.id);
    assert.equal(register.address, 'http://127.0.0.1:8700');
    assert.equal(register.metadata.zone, 'eu');
  });

  it('an async filter resolving { allow: true } allows', async () => {
    const { result } = await tryRegister(async () => {
      await new Promise((resolve) => setTimeout(resolve, 10));
      return { allow: true };
    });
    assert.equal((await result).name, 'guarded');
  });

  it('a sync filter returning false denies', async () => {
    const { result } = await tryRegister((request) => request.kind !== 'register');
    await expectCode(result, 'NETGET_DENIED');
  });

  it('an async filter resolving { allow: false, reason } denies with the reason', async () => {
    const { result } = await tryRegister(async (request) =>
      request.kind === 'register' && request.service === 'forbidden-svc'
        ? { allow: false, reason: 'forbidden-svc may not register here' }
        : { allow: true },
    'forbidden-svc');
    const err = await expectCode(result, 'NETGET_DENIED');
    assert.match(err.message, /forbidden-svc may not register here/);
  });

  it('a filter that throws denies with the message, and the registry keeps working', async () => {
    let calls = 0;
    const { registry, result } = await tryRegister((request) => {
      if (request.kind === 'register' && request.service === 'guarded') {
        calls += 1;
        throw new Error('the policy store is down');
      }
      return true;
    });
    const err = await expectCode(result, 'NETGET_DENIED');
    assert.match(err.message, /the policy store is down/);
    assert.ok(calls >= 1, 'the filter was asked');
    // The same registry still serves: another service registers and is discovered.
    const other = service('other', 'http://127.0.0.1:8701', [registry.url]);
    const instance = await other.registerWithNetwork();
    const app = client([registry.url]);
    assert.equal((await app.discoverServiceNode('other')).id, instance.id);
  });

  it('an async filter that rejects denies with the message', async () => {
    const { result } = await tryRegister(async (request) => {
      if (request.kind === 'register') throw new TypeError('no such tenant');
      return true;
    });
    const err = await expectCode(result, 'NETGET_DENIED');
    assert.match(err.message, /no such tenant/);
  });

  it('an answer that is neither a boolean nor { allow } denies', async () => {
    const { result } = await tryRegister((request) => (request.kind === 'register' ? 'sure' : true));
    const err = await expectCode(result, 'NETGET_DENIED');
    assert.match(err.message, /neither true, false nor/);
  });

  it('the filter also decides handshakes and publications', async () => {
    const registry = await startRegistry({
      filter: (request) => {
        if (request.kind === 'handshake' && request.nodeType === 'client' && request.publicKey !== null) {
          // Only the registry's own session and services may connect as clients here... but allow
          // every client except the one with a marker token.
          return request.token !== 'banned';
        }
        if (request.kind === 'publish') return request.channel !== 'secret';
        return true;
      },
    });
    const banned = client([registry.url], { token: 'banned' });
    await expectCode(banned.start(), 'NETGET_DENIED');
    const app = client([registry.url]);
    assert.equal(await app.publish('public', 1), 0);
    await expectCode(app.publish('secret', 1), 'NETGET_DENIED');
  });
});
