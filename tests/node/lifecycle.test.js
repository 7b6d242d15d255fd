'use strict';
// What keeps a Node process alive, and exiting cleanly: a listening registry and open watches
// keep it alive; stop() and the functions returned by watch()/subscribe() release it; exiting
// with sessions open does not crash.

const assert = require('node:assert/strict');
const path = require('node:path');
const { after, describe, it } = require('node:test');

const { child, cleanup, client, withTimeout } = require('./helpers.js');

after(cleanup);

const FIXTURE = path.join(__dirname, 'fixtures', 'lifecycle.js');

/** Runs the fixture in `mode`; resolves with the process and the registry URL it printed. */
async function run(mode) {
  const proc = child([FIXTURE, mode]);
  const { url } = JSON.parse(await proc.nextLine());
  return { proc, url };
}

/** The exit code, once the process has exited by itself (bounded). */
function exitedBySelf(proc, what) {
  return withTimeout(proc.exited, 20_000, what);
}

describe('process lifecycle', { timeout: 90_000 }, () => {
  it('process.exit() with sessions, watches and a registry open exits cleanly', async () => {
    const { proc } = await run('exit');
    assert.equal(await exitedBySelf(proc, 'process.exit()'), 0, proc.stderrText());
  });

  it('after stop() of every node, the process ends by itself', async () => {
    const { proc } = await run('stop');
    assert.equal(await proc.nextLine(), 'done');
    assert.equal(await exitedBySelf(proc, 'the process to end after stop()'), 0, proc.stderrText());
  });

  it('closed watches and subscriptions do not keep the process alive; open peers do not either', async () => {
    const { proc } = await run('close');
    assert.equal(await proc.nextLine(), 'done');
    assert.equal(await exitedBySelf(proc, 'the process to end after close'), 0, proc.stderrText());
  });

  it('a started registry keeps the process alive until stopped', async () => {
    const { proc, url } = await run('keep');
    assert.equal(await proc.nextLine(), 'done');
    // The script has finished; the registry still answers, so the process is still there.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const probe = client([url]);
    assert.equal(await probe.discoverServiceNode('db', { cached: false }), null);
    assert.equal(proc.exitCode, null, 'still running');
  });

  it('a watch callback that throws surfaces as an uncaught exception', async () => {
    const { proc } = await run('throw');
    const code = await exitedBySelf(proc, 'the uncaught exception');
    assert.equal(code, 1);
    assert.match(proc.stderrText(), /listener failed/);
  });
});
