#!/usr/bin/env node
// `npm install` hook: makes sure the native addon exists, building it when it is missing (or, in
// a checkout, older than the Rust sources).
//
// The addon is `bindings-node/netget.<platform>.node`, next to `native.js` (the loader that
// `napi build` generated). A package packed after a build ships it, and then this does nothing.
// Otherwise it is built from the Rust sources shipped with the package, with plain cargo (the
// package's devDependencies, such as @napi-rs/cli, are not installed for its users). Needs
// cargo on the PATH (https://rustup.rs); a first build takes a few minutes. The addon is a member
// of the Cargo workspace at the package's root, so the package ships the root Cargo.toml and
// Cargo.lock and the manifests (and sources, which cargo looks for) of the other members.
//
// Where cargo builds: $CARGO_TARGET_DIR if set; inside a checkout, `target/node` (shared with
// `npm run build`); inside node_modules, a temporary directory removed afterwards.
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const here = path.resolve(__dirname, '..');
const root = path.resolve(here, '..');
const addon = path.join(here, `netget.${platformSuffix()}.node`);

function platformSuffix() {
  // The names `napi build --platform` gives (see native.js).
  const arch = process.arch;
  if (process.platform === 'linux') {
    const musl = !process.report?.getReport?.()?.header?.glibcVersionRuntime;
    return `linux-${arch}-${musl ? 'musl' : 'gnu'}`;
  }
  if (process.platform === 'win32') return `win32-${arch}-msvc`;
  return `${process.platform}-${arch}`;
}

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

function main() {
  const insideNodeModules = root.split(path.sep).includes('node_modules');
  const upToDate = fs.existsSync(addon) && (insideNodeModules || !olderThanSources(addon));
  if (upToDate && !process.env.NETGET_FORCE_BUILD) return 0;
  if (spawnSync('cargo', ['--version'], { stdio: 'ignore' }).status !== 0) {
    console.error(
      `netget: the native addon ${path.relative(root, addon)} is missing and cargo is not ` +
        'installed to build it. Install Rust (https://rustup.rs) and run `npm rebuild netget`.',
    );
    return 1;
  }
  const targetDir =
    process.env.CARGO_TARGET_DIR ||
    (insideNodeModules
      ? fs.mkdtempSync(path.join(os.tmpdir(), 'netget-build-'))
      : path.join(root, 'target', 'node'));
  // Built for the host triple named explicitly, as `napi build --platform` does, so both
  // share one set of artifacts in target/node.
  const host = /^host: (\S+)$/m.exec(spawnSync('rustc', ['-vV'], { encoding: 'utf8' }).stdout || '');
  const targetArgs = host ? ['--target', host[1]] : [];
  const outDir = host ? path.join(targetDir, host[1], 'release') : path.join(targetDir, 'release');
  console.error(`netget: building the native addon with cargo (into ${targetDir})...`);
  const built = spawnSync(
    'cargo',
    ['build', '--release', '--locked', ...targetArgs, '--manifest-path', path.join(here, 'Cargo.toml')],
    { stdio: 'inherit', env: { ...process.env, CARGO_TARGET_DIR: targetDir } },
  );
  try {
    if (built.status !== 0) {
      console.error('netget: cargo build failed; see the output above.');
      return built.status || 1;
    }
    // Copy then rename: a process that has the old addon loaded keeps its (unlinked) copy.
    fs.copyFileSync(path.join(outDir, libraryName()), `${addon}.tmp`);
    fs.renameSync(`${addon}.tmp`, addon);
    console.error(`netget: built ${path.relative(root, addon)}`);
    return 0;
  } finally {
    if (insideNodeModules && !process.env.CARGO_TARGET_DIR) {
      fs.rmSync(targetDir, { recursive: true, force: true });
    }
  }
}

process.exitCode = main();
