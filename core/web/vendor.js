#!/usr/bin/env node
// Bundles the Ed25519 signer netget.js falls back to where WebCrypto lacks Ed25519 (plain-http
// pages not on localhost have no crypto.subtle at all): @noble/ed25519 with @noble/hashes'
// SHA-512, the pinned dev dependencies, audited and MIT-licensed. The bundle, with both
// licenses, goes between the VENDORED markers of core/web/netget.js, so the file stays one file
// that any page can load and that the registry serves as it is.
//
//   npm run vendor            rewrite the block from node_modules
//   node core/web/vendor.js --check   fail when the block is not what the pinned versions give
//                                     (a node test runs this)
'use strict';

const fs = require('fs');
const path = require('path');
const esbuild = require('esbuild');

const root = path.join(__dirname, '..', '..');
const target = path.join(__dirname, 'netget.js');
const BEGIN = '/* BEGIN VENDORED';
const END = '/* END VENDORED */';
const packages = ['@noble/ed25519', '@noble/hashes'];

const entry = `
import { getPublicKey, sign, hashes } from '@noble/ed25519';
import { sha512 } from '@noble/hashes/sha2.js';
hashes.sha512 = sha512;
export { getPublicKey, sign };
`;

function pkg(name) {
  const dir = path.join(root, 'node_modules', name);
  const { version } = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  const license = fs.readFileSync(path.join(dir, 'LICENSE'), 'utf8').trim();
  return { name, version, license };
}

async function block() {
  const out = await esbuild.build({
    stdin: { contents: entry, resolveDir: root, sourcefile: 'netget-signer.js' },
    bundle: true,
    write: false,
    minify: true,
    format: 'iife',
    globalName: 'noble',
    target: 'es2020',
    legalComments: 'none',
    logLevel: 'warning',
  });
  const code = out.outputFiles[0].text.trim();
  const libs = packages.map(pkg);
  const header = libs
    .map((l) => ` * ${l.name} ${l.version}:\n${l.license.split('\n').map((line) => ` *   ${line}`.trimEnd()).join('\n')}`)
    .join('\n *\n');
  return `${BEGIN} by core/web/vendor.js (npm run vendor); do not edit.\n${header}\n */\n${code}\n${END}`;
}

function replace(text, fresh) {
  const from = text.indexOf(BEGIN);
  const to = text.indexOf(END);
  if (from < 0 || to < from) throw new Error(`${target}: no VENDORED block`);
  return text.slice(0, from) + fresh + text.slice(to + END.length);
}

(async () => {
  const text = fs.readFileSync(target, 'utf8');
  const next = replace(text, await block());
  if (process.argv.includes('--check')) {
    if (next !== text) {
      console.error(`${target}: the vendored signer is not what the pinned @noble packages give; run \`npm run vendor\``);
      process.exit(1);
    }
    const bytes = Buffer.byteLength(text.slice(text.indexOf(BEGIN), text.indexOf(END) + END.length));
    console.log(`vendored signer up to date: ${bytes} bytes of ${Buffer.byteLength(text)}`);
    return;
  }
  fs.writeFileSync(target, next);
  console.log(`${target}: vendored signer written`);
})().catch((e) => {
  console.error(e.message);
  process.exit(1);
});
