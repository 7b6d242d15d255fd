'use strict';
// Each error code a Node user meets, reached from JS: a real `Error` with the core's `code` and
// message, thrown by sync methods and rejecting the Promises of async ones.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { after, describe, it } = require('node:test');

const { Netget } = require('netget');
const { cleanup, client, expectCode, node, service, startRegistry, tempDir } = require('./helpers.js');

after(cleanup);

/** A port nothing listens on (bound, then released). */
async function closedPort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A registry configured from a netget.toml with a `production` network that needs a token. */
async function tokenRegistry() {
  const dir = tempDir();
  const config = path.join(dir, 'netget.toml');
  fs.writeFileSync(
    config,
    [
      '[[network]]',
      'name = "development"',
      'policy = "open"',
      '',
      '[[network]]',
      'name = "production"',
      'policy = "token"',
      'tokens = ["s3cret-join-token"]',
      '',
    ].join('\n'),
  );
  return startRegistry({ config, network: undefined });
}

describe('errors', { timeout: 60_000 }, () => {
  it('NETGET_INVALID_INPUT: bad options, names, arguments and discovery options', async () => {
    await expectCode(() => new Netget({ registryNode: ['http://127.0.0.1:7700'] }), 'NETGET_INVALID_INPUT');
    await expectCode(() => new Netget({ nodeType: 'router' }), 'NETGET_INVALID_INPUT');
    await expectCode(() => new Netget('not options'), 'NETGET_INVALID_INPUT');
    await expectCode(() => new Netget({ registryNodes: 'http://127.0.0.1:7700' }), 'NETGET_INVALID_INPUT');
    await expectCode(() => new Netget({ registryNodes: ['ftp://x'] }), 'NETGET_INVALID_INPUT');
    await expectCode(() => new Netget({ metadata: { name: 'x', handler() {} } }), 'NETGET_INVALID_INPUT');
    await expectCode(() => new Netget({ nodeType: 'registry', filter: 'yes' }), 'NETGET_INVALID_INPUT');
    await expectCode(() => new Netget({ nodeType: 'client', filter: () => true }), 'NETGET_INVALID_INPUT');
    await expectCode(() => new Netget({ nodeType: 'registry', listen: 'nowhere' }), 'NETGET_INVALID_INPUT');

    const registry = await startRegistry();
    const app = client([registry.url]);
    await expectCode(app.discoverServiceNode('not a name!'), 'NETGET_INVALID_INPUT');
    await expectCode(app.discoverServiceNode(42), 'NETGET_INVALID_INPUT');
    await expectCode(app.discoverServiceNode('web', { strategy: 'fastest' }), 'NETGET_INVALID_INPUT');
    await expectCode(app.discoverServiceNodes('web', { tag: ['v1'] }), 'NETGET_INVALID_INPUT');
    await expectCode(() => app.watch('web', 'not a function'), 'NETGET_INVALID_INPUT');
    await expectCode(() => app.watch('bad name!', () => {}), 'NETGET_INVALID_INPUT');
    await expectCode(() => app.subscribe('', () => {}), 'NETGET_INVALID_INPUT');
    await expectCode(app.publish('chat', { f: Symbol('x') }), 'NETGET_INVALID_INPUT');
    await expectCode(app.registerWithNetwork(), 'NETGET_INVALID_INPUT'); // a client does not register
    const nameless = node({ nodeType: 'service', metadata: { address: 'http://x:1' }, registryNodes: [registry.url] });
    await expectCode(nameless.registerWithNetwork(), 'NETGET_INVALID_INPUT');
  });

  it('NETGET_UNAUTHORIZED: a token network (from a config file) without the right token', async () => {
    const registry = await tokenRegistry();
    const anonymous = client([registry.url], { network: 'production' });
    const err = await expectCode(anonymous.discoverServiceNode('web'), 'NETGET_UNAUTHORIZED');
    assert.doesNotMatch(err.message, /s3cret/, 'the message never shows a token');
    const wrong = client([registry.url], { network: 'production', token: 'guess' });
    await expectCode(wrong.start(), 'NETGET_UNAUTHORIZED');

    // With the token, the same network works.
    const svc = service('billing', 'http://127.0.0.1:8500', [registry.url], {
      network: 'production',
      token: 's3cret-join-token',
    });
    const instance = await svc.registerWithNetwork();
    assert.equal(instance.network, 'production');
    const ok = client([registry.url], { network: 'production', token: 's3cret-join-token' });
    assert.equal((await ok.discoverServiceNode('billing')).id, instance.id);
  });

  it('NETGET_UNREACHABLE: no registry answers', async () => {
    const port = await closedPort();
    const app = client([`http://127.0.0.1:${port}`], { requestTimeout: '2s' });
    await expectCode(app.discoverServiceNode('web'), 'NETGET_UNREACHABLE');
    await expectCode(app.start(), 'NETGET_UNREACHABLE');
  });

  it('NETGET_UNKNOWN_NETWORK: a network the registry does not serve', async () => {
    const registry = await startRegistry();
    const app = client([registry.url], { network: 'staging' });
    const err = await expectCode(app.discoverServiceNode('web'), 'NETGET_UNKNOWN_NETWORK');
    assert.match(err.message, /staging/);
  });

  it('NETGET_DENIED: the registry filter refuses', async () => {
    const registry = await startRegistry({
      filter: (req) => (req.kind === 'register' ? { allow: false, reason: 'registrations are closed' } : true),
    });
    const svc = service('blocked', 'http://127.0.0.1:8600', [registry.url]);
    const err = await expectCode(svc.registerWithNetwork(), 'NETGET_DENIED');
    assert.match(err.message, /registrations are closed/);
  });

  it('NETGET_CLOSED: using a registry node before start()', async () => {
    const registry = node({ nodeType: 'registry', listen: '127.0.0.1:0', dataDir: tempDir() });
    await expectCode(registry.discoverServiceNode('web'), 'NETGET_CLOSED');
    await expectCode(() => registry.publicKey, 'NETGET_CLOSED');
  });
});
