'use strict';
// The package's `netget` bin (the core's CLI run through the addon): `npx netget ...`, and a
// registry run as a child process.

const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const { after, describe, it } = require('node:test');
const { promisify } = require('node:util');

const { ROOT, cleanup, service, spawnRegistry } = require('./helpers.js');

after(cleanup);

/** Runs `npx --no-install netget ...args` in the package (never downloads anything). */
async function npx(args) {
  try {
    const { stdout, stderr } = await promisify(execFile)('npx', ['--no-install', 'netget', ...args], {
      cwd: ROOT,
      timeout: 30_000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    if (typeof err.code !== 'number') throw err;
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

describe('netget CLI', { timeout: 90_000 }, () => {
  it('npx netget --help lists the commands', async () => {
    const { code, stdout } = await npx(['--help']);
    assert.equal(code, 0);
    for (const command of ['registry', 'register', 'discover', 'services', 'watch', 'keygen']) {
      assert.match(stdout, new RegExp(`\\b${command}\\b`));
    }
    const sub = await npx(['services', '--help']);
    assert.equal(sub.code, 0);
    assert.match(sub.stdout, /--registry/);
  });

  it('npx netget services / discover talk to a registry child process', async () => {
    const { proc, url } = await spawnRegistry();
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const svc = service('search', 'http://127.0.0.1:8900', [url], { metadata: { tags: ['v3'] } });
    const instance = await svc.registerWithNetwork();

    const listed = await npx(['services', '--registry', url]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /search\s+1 instance/);

    const json = await npx(['services', '--registry', url, '--json']);
    assert.equal(json.code, 0, json.stderr);
    const parsed = JSON.parse(json.stdout);
    assert.ok(parsed.services.some((s) => s.name === 'search' && s.instances === 1));

    const found = await npx(['discover', 'search', '--registry', url, '--json']);
    assert.equal(found.code, 0, found.stderr);
    assert.deepEqual(JSON.parse(found.stdout).instances.map((i) => i.id), [instance.id]);

    // SIGTERM stops the registry gracefully.
    proc.kill('SIGTERM');
    assert.equal(await proc.exited, 0);
  });

  it('reports errors with their code and a non-zero exit', async () => {
    const wrongNetwork = await spawnRegistry();
    const { code, stderr } = await npx(['services', '--registry', wrongNetwork.url, '--network', 'nope']);
    assert.notEqual(code, 0);
    assert.match(stderr, /NETGET_UNKNOWN_NETWORK/);
    const usage = await npx(['discover']);
    assert.equal(usage.code, 2, 'a usage error exits 2');
  });
});
