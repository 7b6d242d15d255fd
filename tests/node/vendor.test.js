'use strict';
// netget.js's fallback signer (for pages whose WebCrypto lacks Ed25519) is the pinned
// @noble/ed25519 + @noble/hashes, bundled by core/web/vendor.js: the block in netget.js is what
// those versions give, and its signatures verify with Node's own Ed25519.

const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { test } = require('node:test');

const root = path.join(__dirname, '..', '..');
const source = fs.readFileSync(path.join(root, 'core', 'web', 'netget.js'), 'utf8');

test('the vendored signer in netget.js is exactly what the pinned @noble packages bundle to', () => {
  const out = execFileSync(process.execPath, [path.join(root, 'core', 'web', 'vendor.js'), '--check'], { encoding: 'utf8' });
  assert.match(out, /vendored signer up to date/);
  for (const name of ['@noble/ed25519', '@noble/hashes']) {
    const manifest = path.join(root, 'node_modules', name, 'package.json');
    const { version } = JSON.parse(fs.readFileSync(manifest, 'utf8'));
    assert.ok(source.includes(`${name} ${version}:`), `${name} ${version} and its license are in netget.js`);
  }
  assert.ok(!source.includes('BigInt;'), 'the hand-written BigInt signer is gone');
});

test('signatures of the vendored signer verify with Node crypto, and a changed message does not', () => {
  // The signer exactly as netget.js holds it: the `ed` expression, evaluated on its own.
  const from = source.indexOf('const ed = (() => {') + 'const ed = '.length;
  const to = source.indexOf('})();', source.indexOf('return noble;')) + '})()'.length;
  const ed = new Function(`return ${source.slice(from, to)};`)();
  for (let i = 0; i < 20; i++) {
    const seed = crypto.randomBytes(32);
    const message = crypto.randomBytes(1 + i * 13);
    const pub = Buffer.from(ed.getPublicKey(seed));
    const signature = Buffer.from(ed.sign(message, seed));
    const key = crypto.createPublicKey({
      key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), pub]),
      format: 'der',
      type: 'spki',
    });
    assert.ok(crypto.verify(null, message, key, signature), `signature ${i} verifies`);
    message[0] ^= 1;
    assert.ok(!crypto.verify(null, message, key, signature), `signature ${i} fails for another message`);
    // And the same key as Node derives it from the seed.
    const der = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]);
    const nodePub = crypto.createPublicKey(crypto.createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }));
    assert.deepEqual(nodePub.export({ format: 'der', type: 'spki' }).subarray(12), pub);
  }
});
