#!/usr/bin/env node
// Builds the native addon from the Rust sources, with plain cargo.
//
// Users never need this: the npm package `netget` depends (optionally) on a platform package such
// as `netget-linux-x64-gnu` that holds the prebuilt addon, and npm installs the one that matches.
// It runs in two places:
// - a checkout of the repository: `npm install` runs it (the project's own install script; the
//   published package has none), and it builds only when the addon is missing or older than the
//   Rust sources;
// - the source fallback of `load.js`, where no prebuilt addon matches the platform: the package
//   ships the Rust sources (the addon is a member of the Cargo workspace at the package's root, so
//   the root Cargo.toml, Cargo.lock and the other members' manifests and sources ship too).
//
// The addon is `bindings-node/netget.<platform>.node`, next to `native.js` (the loader that
// `napi build` generated), which looks there first. Where cargo builds: $CARGO_TARGET_DIR if set;
// in a checkout, `target/node`; inside node_modules, a temporary directory removed afterwards.
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const here = path.resolve(__dirname, '..');
const root = path.resolve(here, '..');

/** The platform part of the addon's file name, as `napi build --platform` names it. */
function platformSuffix() {
  const arch = process.arch;
  if (process.platform === 'linux') {
    const musl = !process.report?.getReport?.()?.header?.glibcVersionRuntime;
    return `linux-${arch}-${musl ? 'musl' : 'gnu'}`;
  }
  if (process.platform === 'win32') return `win32-${arch}-msvc`;
  return `${process.platform}-${arch}`;
}

const addon = path.join(here, `netget.${platformSuffix()}.node`);

function libraryName() {
  if (process.platform === 'win32') return 'netget_node.dll';
  if (process.platform === 'darwin') return 'libnetget_node.dylib';
  return 'libnetget_node.so';
}

/** Whether a Rust source or manifest of the addon or the core is newer than `file`. */
function olderThanSources(file) {
  const built = fs.statSync(file).mtimeMs;
  const newer = (p) => {
    const st = fs.statSync(p, { throwIfNoEntry: false });
    if (!st) return false;
    if (st.isDirectory()) return fs.readdirSync(p).some((name) => newer(path.join(p, name)));
    return st.mtimeMs > built;
  };
  return ['bindings-node/src', 'bindings-node/Cargo.toml', 'Cargo.toml', 'Cargo.lock', 'core/src', 'core/Cargo.toml']
    .map((p) => path.join(root, p))
    .some(newer);
}

function hasCargo() {
  return spawnSync('cargo', ['--version'], { stdio: 'ignore' }).status === 0;
}

/**
 * Builds the addon into place, with cargo's progress on stderr, saying first `why` when given.
 * Returns `null` when it is built, or what went wrong, for a person to act on.
 */
function build(why) {
  if (!hasCargo()) {
    return (
      'cargo is not installed to build it from the Rust sources in this package: install Rust ' +
      '(https://rustup.rs) and try again (the first build takes about 5 minutes on 2 cores)'
    );
  }
  const insideNodeModules = root.split(path.sep).includes('node_modules');
  const targetDir =
    process.env.CARGO_TARGET_DIR ||
    (insideNodeModules
      ? fs.mkdtempSync(path.join(os.tmpdir(), 'netget-build-'))
      : path.join(root, 'target', 'node'));
  if (why) console.error(`netget: ${why}.`);
  console.error(
    `netget: building the native addon from source with cargo, into ${targetDir}; a first ` +
      'build takes about 5 minutes on 2 cores (later ones seconds)...',
  );
  // stdout too goes to stderr: a program loading netget keeps its own stdout clean.
  const built = spawnSync(
    'cargo',
    // The profile the published addon is built with (the release build, no debug info).
    ['build', '--profile', 'dist', '--locked', '--manifest-path', path.join(here, 'Cargo.toml')],
    { stdio: ['ignore', 2, 2], env: { ...process.env, CARGO_TARGET_DIR: targetDir } },
  );
  try {
    if (built.status !== 0) return 'cargo build failed; its output is above';
    // Copy then rename: a process that has the old addon loaded keeps its (unlinked) copy.
    fs.copyFileSync(path.join(targetDir, 'dist', libraryName()), `${addon}.tmp`);
    fs.renameSync(`${addon}.tmp`, addon);
    console.error(`netget: built ${path.relative(root, addon)}`);
    return null;
  } catch (err) {
    return `the built addon could not be put in place: ${err.message}`;
  } finally {
    if (insideNodeModules && !process.env.CARGO_TARGET_DIR) {
      fs.rmSync(targetDir, { recursive: true, force: true });
    }
  }
}

/** The checkout's install step: builds when the addon is missing or out of date (or --force). */
function main() {
  const force = process.argv.includes('--force') || Boolean(process.env.NETGET_FORCE_BUILD);
  if (!force && fs.existsSync(addon) && !olderThanSources(addon)) return 0;
  const failed = build();
  if (failed) {
    console.error(`netget: the native addon is not built: ${failed}.`);
    return 1;
  }
  return 0;
}

module.exports = { build, platformSuffix };

if (require.main === module) process.exitCode = main();
