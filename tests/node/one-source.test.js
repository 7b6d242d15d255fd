'use strict';
// What the core keeps once and the npm package must agree with: the error codes (index.js builds
// `ErrorCode` from the native list; index.d.ts spells the codes out by hand) and the version.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { describe, it } = require('node:test');

const native = require('../../bindings-node/native.js');
const { ErrorCode } = require('../../bindings-node/index.js');

const ROOT = path.resolve(__dirname, '..', '..');
const read = (file) => fs.readFileSync(path.join(ROOT, file), 'utf8');

/** `{ KEY: 'NETGET_KEY', ... }` as index.d.ts declares `ErrorCode`, in its order. */
function declaredErrorCode() {
  const dts = read('bindings-node/index.d.ts');
  const block = /export declare const ErrorCode: \{([^}]*)\};/.exec(dts);
  assert.ok(block, 'index.d.ts declares no `ErrorCode` object');
  const entries = [...block[1].matchAll(/readonly (\w+): '([^']+)';/g)].map((m) => [m[1], m[2]]);
  return Object.fromEntries(entries);
}

describe('one source', () => {
  it('ErrorCode holds exactly the core\'s codes, in its order', () => {
    const codes = native.errorCodes();
    assert.ok(codes.length > 0);
    assert.deepEqual(Object.values(ErrorCode), codes);
    for (const [key, code] of Object.entries(ErrorCode)) assert.equal(`NETGET_${key}`, code);
    assert.ok(Object.isFrozen(ErrorCode));
  });

  it('index.d.ts declares the same ErrorCode as index.js', () => {
    assert.deepEqual(Object.entries(declaredErrorCode()), Object.entries(ErrorCode));
  });

  it('package.json has the version of the Cargo workspace', () => {
    const cargo = read('Cargo.toml');
    const section = cargo.split('[workspace.package]')[1]?.split(/\n\[/)[0] ?? '';
    const version = /^version\s*=\s*"([^"]+)"/m.exec(section)?.[1];
    assert.ok(version, 'Cargo.toml: [workspace.package] has no version');
    assert.equal(JSON.parse(read('package.json')).version, version);
  });
});
