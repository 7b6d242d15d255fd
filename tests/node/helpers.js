'use strict';
// Shared by the Node tests: registries in this process or in child processes, service child
// processes, temporary directories, bounded polling. Everything started here is registered with
// a cleanup list that `cleanup()` (called from each file's `after` hook) empties, on success and
// on failure alike.

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');

const { Netget } = require('../../bindings-node/index.js');

const ROOT = path.resolve(__dirname, '..', '..');
const CLI = path.join(ROOT, 'bindings-node', 'bin', 'netget.js');

/** Things to undo, newest first. */
const cleanups = [];

/** Runs every cleanup (each bounded, each failure ignored so the others still run). */
async function cleanup() {
  while (cleanups.length > 0) {
    const undo = cleanups.pop();
    try {
      await withTimeout(Promise.resolve().then(undo), 20_000, 'cleanup');
    } catch {
      // keep going: the rest must be cleaned up too
    }
  }
}

/** Registers `undo` to run at cleanup. */
function defer(undo) {
  cleanups.push(undo);
}

/** A fresh temporary directory, removed at cleanup. */
function tempDir() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'netget-node-test-'));
  defer(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A Netget node stopped at cleanup. */
function node(options) {
  const n = new Netget(options);
  defer(() => n.stop());
  return n;
}

/** A started registry in this process (port 0, its own data dir). */
async function startRegistry(options = {}) {
  const registry = node({
    nodeType: 'registry',
    listen: '127.0.0.1:0',
    dataDir: tempDir(),
    ...options,
  });
  await registry.start();
  return registry;
}

/** A service node with its own key (its own data dir). */
function service(name, address, registryNodes, { metadata, ...options } = {}) {
  return node({
    nodeType: 'service',
    metadata: { name, address, ...metadata },
    registryNodes,
    dataDir: tempDir(),
    requestTimeout: '5s',
    ...options,
  });
}

/** A discover-only client. */
function client(registryNodes, options = {}) {
  return node({ nodeType: 'client', registryNodes, requestTimeout: '5s', ...options });
}

/** A child process killed (SIGKILL) at cleanup, with its stdout lines readable. */
function child(args, options = {}) {
  const proc = spawn(process.execPath, args, {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    ...options,
  });
  const stderr = [];
  proc.stderr.on('data', (chunk) => stderr.push(chunk));
  proc.stderrText = () => Buffer.concat(stderr).toString();
  const lines = readline.createInterface({ input: proc.stdout });
  const queue = [];
  const waiters = [];
  lines.on('line', (line) => {
    const waiter = waiters.shift();
    if (waiter) waiter.resolve(line);
    else queue.push(line);
  });
  proc.once('exit', () => {
    for (const waiter of waiters.splice(0)) {
      waiter.reject(new Error(`process exited before printing a line; stderr: ${proc.stderrText()}`));
    }
  });
  /** The next line of stdout (bounded). */
  proc.nextLine = (timeoutMs = 20_000) => {
    if (queue.length > 0) return Promise.resolve(queue.shift());
    if (proc.exitCode !== null || proc.signalCode !== null) {
      return Promise.reject(new Error(`process has exited; stderr: ${proc.stderrText()}`));
    }
    return withTimeout(
      new Promise((resolve, reject) => waiters.push({ resolve, reject })),
      timeoutMs,
      `a line from ${args.join(' ')} (stderr: ${proc.stderrText()})`,
    );
  };
  /** Resolves with the exit code (or signal) once the process has exited. */
  proc.exited = new Promise((resolve) => {
    proc.once('exit', (code, signal) => resolve(code ?? signal));
  });
  proc.kill9 = async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    await proc.exited;
  };
  defer(() => proc.kill9());
  return proc;
}

/** A registry child process (the package's CLI); resolves once listening, with its URL. */
async function spawnRegistry(extraArgs = []) {
  const proc = child([
    CLI,
    'registry',
    '--listen',
    '127.0.0.1:0',
    '--data',
    tempDir(),
    ...extraArgs,
  ]);
  const first = await proc.nextLine();
  const match = first.match(/https?:\/\/[^\s,)]+/);
  if (!match) throw new Error(`no URL in the registry's first line: ${first}`);
  return { proc, url: match[0] };
}

/** A service child process (fixtures/service.js); resolves once registered, with its instance. */
async function spawnService(name, registryNodes, extra = {}) {
  const proc = child([
    path.join(__dirname, 'fixtures', 'service.js'),
    JSON.stringify({
      nodeType: 'service',
      metadata: { name, address: 'http://127.0.0.1:9', ...extra.metadata },
      registryNodes,
      dataDir: tempDir(),
      ...extra.options,
    }),
  ]);
  const line = await proc.nextLine();
  return { proc, instance: JSON.parse(line) };
}

/** Rejects with a clear message if `promise` has not settled within `ms`. */
function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Polls `check` until it returns a truthy value (returned) or `timeoutMs` passes (throws).
 * Errors thrown by `check` count as "not yet"; the last one is reported on timeout.
 */
async function waitFor(check, { timeoutMs = 15_000, intervalMs = 100, what = 'a condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** Asserts that `promise` rejects (or `fn` throws) a netget error with `code`; returns it. */
async function expectCode(promiseOrFn, code) {
  let err;
  try {
    await (typeof promiseOrFn === 'function' ? promiseOrFn() : promiseOrFn);
  } catch (e) {
    err = e;
  }
  if (!err) throw new Error(`expected an error with code ${code}, got none`);
  if (!(err instanceof Error)) throw new Error(`expected an Error, got ${String(err)}`);
  if (err.code !== code) {
    throw new Error(`expected code ${code}, got ${err.code}: ${err.message}`);
  }
  if (!err.message) throw new Error(`error ${code} has no message`);
  return err;
}

module.exports = {
  CLI,
  ROOT,
  Netget,
  child,
  cleanup,
  client,
  defer,
  expectCode,
  node,
  service,
  spawnRegistry,
  spawnService,
  startRegistry,
  tempDir,
  waitFor,
  withTimeout,
};
