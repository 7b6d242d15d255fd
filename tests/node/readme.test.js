'use strict';
// The README's Node quick start runs as written (so the front door never drifts).

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..', '..');

test('the README Node quick start runs and writes only the dataDir it names', () => {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const section = readme.split('## Quick start: Node')[1];
  const block = /```js\n([\s\S]*?)```/.exec(section)[1];
  assert.match(block, /registerWithNetwork/);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'netget-readme-'));
  try {
    // `require('netget')` is this repository's package.
    const script = block.replace("require('netget')", `require(${JSON.stringify(ROOT)})`);
    fs.writeFileSync(path.join(dir, 'quickstart.js'), script);
    const out = execFileSync(process.execPath, ['quickstart.js'], { cwd: dir, timeout: 60_000 }).toString();
    assert.match(out, /http:\/\/127\.0\.0\.1:5432/);
    assert.match(out, /up http:\/\/127\.0\.0\.1:5432/);
    // The service and client nodes keep their keys in the user's data dir, not the current folder.
    assert.deepEqual(fs.readdirSync(dir).sort(), ['netget-node-demo', 'quickstart.js']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
