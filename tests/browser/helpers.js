// Shared helpers of the browser tests: registries and CLI commands as child processes of the
// Rust binary, a tiny page server on another origin, and Debian's Chromium through playwright-core.
'use strict';

const { spawn, execFile } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { chromium } = require('playwright-core');

const ROOT = path.resolve(__dirname, '..', '..');
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

/** The netget binary: $NETGET_BIN, else the newer of target/release/netget and target/debug/netget. */
function netgetBin() {
  if (process.env.NETGET_BIN) return process.env.NETGET_BIN;
  const found = ['release', 'debug']
    .map((p) => path.join(ROOT, 'target', p, 'netget'))
    .filter((p) => fs.existsSync(p))
    .sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs);
  if (!found.length) throw new Error('no netget binary: run `cargo build` at the repository root, or set NETGET_BIN');
  return found[0];
}

const children = new Set();
const tmpdirs = new Set();

function tmpdir(prefix = 'netget-browser-') {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tmpdirs.add(d);
  return d;
}

/** Kills every child process still running and removes the temporary directories. */
async function cleanup() {
  await Promise.all([...children].map((c) => kill(c)));
  for (const d of tmpdirs) fs.rmSync(d, { recursive: true, force: true });
  tmpdirs.clear();
}

/** SIGTERM (or `signal`), then SIGKILL after 3 s; resolves once the process has exited. */
function kill(child, signal = 'SIGTERM') {
  if (child.exitCode !== null || child.signalCode !== null) {
    children.delete(child);
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    const t = setTimeout(() => child.kill('SIGKILL'), 3000);
    child.once('exit', () => {
      clearTimeout(t);
      children.delete(child);
      resolve();
    });
    child.kill(signal);
  });
}

/** Spawns a process and resolves once a stdout line matches `pattern` (with the match). */
function spawnUntil(cmd, args, pattern, { timeout = 15000, ...options } = {}) {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], ...options });
  children.add(child);
  child.on('exit', () => children.delete(child));
  child.output = '';
  child.errors = '';
  child.lines = [];
  child.stderr.on('data', (d) => (child.errors += d));
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => done(new Error(`${path.basename(cmd)} ${args.join(' ')}: no line matching ${pattern} in ${timeout} ms\nstdout: ${child.output}\nstderr: ${child.errors}`)), timeout);
    let buf = '';
    let settled = false;
    const done = (err, m) => {
      if (settled) return;
      settled = true;
      clearTimeout(t);
      if (err) {
        kill(child);
        reject(err);
      } else resolve({ child, match: m });
    };
    child.stdout.on('data', (d) => {
      child.output += d;
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        child.lines.push(line);
        const m = pattern.exec(line);
        if (m) done(null, m);
      }
    });
    child.on('error', (e) => done(e));
    child.on('exit', (code, sig) => done(new Error(`${path.basename(cmd)} ${args.join(' ')} exited (${code ?? sig}) before printing ${pattern}\nstdout: ${child.output}\nstderr: ${child.errors}`)));
  });
}

/** A registry on `listen` (127.0.0.1:0) with a fresh data dir; `cors` origins, `config` file, extra `args`. */
async function startRegistry({ cors = [], config, args = [], listen = '127.0.0.1:0' } = {}) {
  const data = tmpdir('netget-registry-');
  const argv = ['registry', '--listen', listen, '--data', data, ...args];
  for (const o of [].concat(cors)) argv.push('--cors-origin', o);
  if (config) {
    const file = path.join(data, 'netget.toml');
    fs.writeFileSync(file, config);
    argv.push('--config', file);
  }
  const { child, match } = await spawnUntil(netgetBin(), argv, /listening on (https?:\/\/[^\s]+)/, { cwd: data });
  return { url: match[1], child, data, stop: () => kill(child) };
}

/** Runs a netget CLI command to completion; resolves with stdout, rejects on a non-zero exit. */
function cli(args, { timeout = 15000, cwd } = {}) {
  return new Promise((resolve, reject) => {
    execFile(netgetBin(), args, { timeout, cwd: cwd || tmpdir('netget-cli-') }, (err, stdout, stderr) => {
      if (err) reject(new Error(`netget ${args.join(' ')} failed: ${err.message}\n${stdout}${stderr}`));
      else resolve(stdout);
    });
  });
}

/** `netget register NAME --address ADDR --hold` (its key in a fresh ./netget-data): resolves once registered. */
async function holdRegistration(registry, name, address, extra = []) {
  const cwd = tmpdir('netget-hold-');
  const { child } = await spawnUntil(
    netgetBin(),
    ['register', name, '--address', address, '--registry', registry, '--hold', ...extra],
    /^registered /,
    { cwd },
  );
  return child;
}

/** A tiny HTTP server on 127.0.0.1:0: `routes` maps a path to HTML (or a handler). */
async function startPageServer(routes = {}) {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const route = routes[url.pathname];
    if (typeof route === 'function') return route(req, res);
    if (route === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      return res.end('not found');
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(route);
  });
  server.keepAliveTimeout = 500;
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const origin = `http://127.0.0.1:${server.address().port}`;
  return {
    origin,
    routes,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections?.();
        server.close(() => r());
      }),
  };
}

/** Debian's Chromium, headless, with a fresh profile (never a downloaded browser). */
async function launchBrowser() {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)`);
  }
  const profile = tmpdir('netget-chromium-');
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    timeout: 30000,
  });
  context.setDefaultTimeout(15000);
  const page = context.pages()[0] || (await context.newPage());
  page.consoleLines = [];
  page.on('console', (m) => page.consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => page.consoleLines.push(`pageerror: ${e.message}`));
  return { context, page, close: () => context.close().catch(() => {}) };
}

/** Polls `fn` (sync or async) until it returns a truthy value; rejects after `timeout` ms. */
async function waitFor(fn, timeout, what = 'condition') {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() >= end) throw new Error(`timed out after ${timeout} ms waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A page that loads the registry's netget.js as a classic script. */
function embedPage(registry, attrs = 'data-network="development"', body = '') {
  return `<!doctype html><html><head><meta charset="utf-8"><title>embed</title>
<script src="${registry}/netget.js" ${attrs}></script></head><body>${body}</body></html>`;
}

/** A JSON HTTP request (used for REST registrations and heartbeats). */
function httpJSON(method, url, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(url, { method, headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => {
        let json = null;
        try {
          json = text ? JSON.parse(text) : null;
        } catch (e) {
          // not JSON
        }
        resolve({ status: res.statusCode, headers: res.headers, json, text });
      });
    });
    req.on('error', reject);
    req.setTimeout(10000, () => req.destroy(new Error(`${method} ${url} timed out`)));
    req.end(data);
  });
}

module.exports = {
  ROOT,
  netgetBin,
  tmpdir,
  cleanup,
  kill,
  spawnUntil,
  startRegistry,
  cli,
  holdRegistration,
  startPageServer,
  launchBrowser,
  waitFor,
  embedPage,
  httpJSON,
};
