#!/usr/bin/env node
// Packs the npm packages the way napi-rs projects publish them, into a dist folder:
// - `netget-<platform>` holds the prebuilt addon, with `os`/`cpu`/`libc` set so that npm installs
//   it only where it fits;
// - `netget` is the package users install: the JavaScript layer, the types, the CLI, and the Rust
//   sources (for the source fallback, see bindings-node/load.js), with the platform packages as
//   optional dependencies of exactly its own version. It has no install script, so nothing is
//   blocked or asks to be approved under npm 11.
//
//   node packaging/npm-pack.js ADDON.node DIST_DIR
'use strict';

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');

/** What a Rust target means to npm: the addon's file suffix and the platform package's fields. */
const PLATFORMS = {
  'x86_64-unknown-linux-gnu': { suffix: 'linux-x64-gnu', os: 'linux', cpu: 'x64', libc: 'glibc' },
};

function npmPack(dir, dest) {
  const out = execFileSync('npm', ['pack', '--json', '--pack-destination', dest], {
    cwd: dir,
    encoding: 'utf8',
  });
  return path.join(dest, JSON.parse(out)[0].filename);
}

/** The files `npm pack` takes from the checkout (its `files` list, README, LICENSE). */
function packedFiles() {
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: root,
    encoding: 'utf8',
  });
  return JSON.parse(out)[0].files.map((f) => f.path);
}

function copyInto(dir, rel) {
  const to = path.join(dir, rel);
  fs.mkdirSync(path.dirname(to), { recursive: true });
  fs.copyFileSync(path.join(root, rel), to);
}

function main([addon, distArg]) {
  if (!addon || !distArg) throw new Error('usage: npm-pack.js ADDON.node DIST_DIR');
  const dist = path.resolve(distArg);
  const manifest = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  const stage = path.join(dist, 'npm');
  fs.rmSync(stage, { recursive: true, force: true });
  const optional = {};
  for (const target of manifest.napi.targets) {
    const p = PLATFORMS[target];
    if (!p) throw new Error(`no npm platform known for the Rust target ${target}`);
    const name = `${manifest.name}-${p.suffix}`;
    const dir = path.join(stage, name);
    const file = `${manifest.napi.binaryName}.${p.suffix}.node`;
    fs.mkdirSync(dir, { recursive: true });
    fs.copyFileSync(addon, path.join(dir, file));
    copyInto(dir, 'LICENSE');
    fs.writeFileSync(
      path.join(dir, 'README.md'),
      `# ${name}\n\nThe prebuilt native addon of [netget](https://www.npmjs.com/package/netget) ` +
        `for ${target}. Install \`netget\`, not this package: npm picks this one where it fits.\n`,
    );
    const platformManifest = {
      name,
      version: manifest.version,
      description: `The ${target} addon of netget`,
      license: manifest.license,
      repository: manifest.repository,
      main: file,
      files: [file, 'LICENSE'],
      os: [p.os],
      cpu: [p.cpu],
      ...(p.libc ? { libc: [p.libc] } : {}),
      engines: manifest.engines,
    };
    fs.writeFileSync(path.join(dir, 'package.json'), `${JSON.stringify(platformManifest, null, 2)}\n`);
    console.log(npmPack(dir, dist));
    optional[name] = manifest.version;
  }

  const main = path.join(stage, manifest.name);
  for (const rel of packedFiles()) copyInto(main, rel);
  const published = { ...manifest, optionalDependencies: optional };
  // The checkout's scripts (its install step builds the addon) and tools stay in the checkout.
  delete published.scripts;
  delete published.devDependencies;
  fs.writeFileSync(path.join(main, 'package.json'), `${JSON.stringify(published, null, 2)}\n`);
  console.log(npmPack(main, dist));
}

main(process.argv.slice(2));
