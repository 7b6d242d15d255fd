'use strict';
// A registry node with `registryNodes` joins the cluster of those registries, and what is
// registered on one is discoverable on the other.

const assert = require('node:assert/strict');
const net = require('node:net');
const { after, describe, it } = require('node:test');

const { cleanup, startRegistry, waitFor } = require('./helpers.js');

after(cleanup);

/** A TCP port free right now on 127.0.0.1. */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

describe('cluster', { timeout: 60_000 }, () => {
  it('registryNodes of a registry are the peers whose cluster it joins', async () => {
    // Each names the other; the second listens on a port chosen before the first starts.
    const port = await freePort();
    const secondUrl = `http://127.0.0.1:${port}`;
    const first = await startRegistry({ registryNodes: [secondUrl] });
    const second = await startRegistry({ listen: `127.0.0.1:${port}`, registryNodes: [first.url] });
    const members = await waitFor(
      async () => {
        const answer = await (await fetch(`${first.url}/v1/cluster`)).json();
        const live = answer.members.filter((m) => m.live);
        return live.length === 2 ? answer.members : null;
      },
      { what: 'both registries live in the first one\'s view' },
    );
    assert.deepEqual(new Set(members.map((m) => m.url)), new Set([first.url, second.url]));
    // Registered on the first, discoverable on the second, naming its owner.
    const put = await fetch(`${first.url}/v1/networks/development/services/orders/instances/o1`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ address: 'http://127.0.0.1:9', ttl: '30s' }),
    });
    assert.ok(put.ok, `register: ${put.status}`);
    const firstId = members.find((m) => m.url === first.url).id;
    const found = await waitFor(
      async () => {
        const answer = await (await fetch(`${second.url}/v1/networks/development/services/orders`)).json();
        return answer.instances.length > 0 ? answer.instances : null;
      },
      { what: 'the first registry\'s instance on the second' },
    );
    assert.deepEqual(found.map((i) => [i.id, i.registry]), [['o1', firstId]]);
  });
});
