#!/usr/bin/env node
'use strict';
// Discovery through Node: calls per second and mean latency of `discoverServiceNode`, answered
// from the node's cache (the default) and by the registry (`{ cached: false }`), against a
// registry in this process with 10 instances of one service.
//
//   node bindings-node/bench.js [--cached N] [--uncached N] [--concurrency C]
//
// Every call is awaited (sequentially, as an application would) unless stated; the concurrent
// line keeps C uncached calls in flight.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { parseArgs } = require('node:util');

const { Netget } = require('./index.js');

const { values } = parseArgs({
  options: {
    cached: { type: 'string', default: '1000000' },
    uncached: { type: 'string', default: '20000' },
    concurrency: { type: 'string', default: '32' },
  },
});
const CACHED = Number(values.cached);
const UNCACHED = Number(values.uncached);
const CONCURRENCY = Number(values.concurrency);
const INSTANCES = 10;

function report(label, calls, nanos) {
  const seconds = Number(nanos) / 1e9;
  const perSecond = Math.round(calls / seconds);
  const meanMicros = Number(nanos) / 1e3 / calls;
  console.log(
    `${label.padEnd(48)} ${String(perSecond.toLocaleString('en-US')).padStart(12)} calls/s   mean ${meanMicros.toFixed(3).padStart(9)} µs   (${calls} calls)`,
  );
}

async function timed(calls, fn) {
  const start = process.hrtime.bigint();
  await fn(calls);
  return process.hrtime.bigint() - start;
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'netget-bench-'));
  const nodes = [];
  // The default rate limits (per session and per address) would throttle the uncached loop.
  const config = path.join(dir, 'netget.toml');
  fs.writeFileSync(
    config,
    '[limits]\nrequests_per_second_per_session = 10000000\nburst_per_session = 10000000\n' +
      'requests_per_second_per_ip = 10000000\nburst_per_ip = 10000000\n',
  );
  const registry = new Netget({ nodeType: 'registry', listen: '127.0.0.1:0', dataDir: dir, config });
  nodes.push(registry);
  try {
    const url = await registry.start();
    for (let i = 0; i < INSTANCES; i++) {
      const svc = new Netget({
        metadata: { name: 'bench-service', address: `http://127.0.0.1:${9000 + i}`, tags: ['v1'], version: '1.0.0' },
        registryNodes: [url],
        dataDir: path.join(dir, `svc-${i}`),
      });
      nodes.push(svc);
      await svc.registerWithNetwork();
    }
    const client = new Netget({ nodeType: 'client', registryNodes: [url] });
    nodes.push(client);
    const all = await client.discoverServiceNodes('bench-service', { cached: false });
    if (all.length !== INSTANCES) throw new Error(`expected ${INSTANCES} instances, found ${all.length}`);

    console.log(`netget ${require('../package.json').version}, Node ${process.version}, ${os.cpus().length} CPUs`);
    console.log(`registry in this process, ${INSTANCES} instances of one service\n`);

    // Warm up: the first call fills the cache (watch + snapshot); then JIT.
    for (let i = 0; i < 20_000; i++) await client.discoverServiceNode('bench-service');
    for (let i = 0; i < 200; i++) await client.discoverServiceNode('bench-service', { cached: false });

    const cached = await timed(CACHED, async (n) => {
      for (let i = 0; i < n; i++) await client.discoverServiceNode('bench-service');
    });
    report('discoverServiceNode (cached)', CACHED, cached);

    const roundRobin = { strategy: 'round-robin' };
    const cachedRr = await timed(CACHED, async (n) => {
      for (let i = 0; i < n; i++) await client.discoverServiceNode('bench-service', roundRobin);
    });
    report('discoverServiceNode (cached, round-robin)', CACHED, cachedRr);

    const uncachedOptions = { cached: false };
    const uncached = await timed(UNCACHED, async (n) => {
      for (let i = 0; i < n; i++) await client.discoverServiceNode('bench-service', uncachedOptions);
    });
    report('discoverServiceNode ({ cached: false })', UNCACHED, uncached);

    const concurrent = await timed(UNCACHED, async (n) => {
      let next = 0;
      const worker = async () => {
        while (next < n) {
          next += 1;
          await client.discoverServiceNode('bench-service', uncachedOptions);
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    });
    report(`discoverServiceNode ({ cached: false }), ${CONCURRENCY} in flight`, UNCACHED, concurrent);
  } finally {
    for (const n of nodes.reverse()) await n.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
