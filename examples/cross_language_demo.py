"""An Express service (Node) and a FastAPI service (Python) find each other through netget.

Run by `make demo` after both packages are built:

1. a registry starts (Python, in this process);
2. a FastAPI app is served by uvicorn on a free port and registers as `py-orders`;
3. an Express app (a Node child process) listens on a free port and registers as `node-catalog`;
4. each discovers the other and calls it over HTTP;
5. the Express app is stopped with SIGTERM and disappears from discovery.

Prints one `▶` line per step; exits non-zero if any step fails (the cross-language test runs it).
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import signal
import sys
import tempfile
import urllib.request

import uvicorn
from fastapi import FastAPI

from netget import Netget
from netget.fastapi import lifespan

ROOT = pathlib.Path(__file__).resolve().parents[1]

EXPRESS_APP = """
const express = require('express');
const { attach } = require(process.env.NETGET_ROOT + '/bindings-node/express.js');
const { Netget } = require(process.env.NETGET_ROOT + '/bindings-node/index.js');
const registry = process.env.REGISTRY;
const app = express();
app.get('/catalog', (_req, res) => res.json({ from: 'express', items: ['book', 'pen'] }));
const registration = attach(app, {
  name: 'node-catalog', registryNodes: [registry], dataDir: null,
});
registration.listen(0, '127.0.0.1');
registration.ready.then(async (inst) => {
  console.log(JSON.stringify({ registered: inst.address }));
  const client = new Netget({ nodeType: 'client', registryNodes: [registry] });
  for (let i = 0; i < 200; i++) {
    const found = await client.discoverServiceNode('py-orders');
    if (found) {
      const res = await fetch(found.address + '/orders');
      console.log(JSON.stringify({ found: found.address, answer: await res.json() }));
      await client.stop();
      return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  console.log(JSON.stringify({ error: 'py-orders not found' }));
}, (e) => { console.log(JSON.stringify({ error: String(e) })); });
"""


def _get(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


async def _line(proc: asyncio.subprocess.Process, timeout: float = 20.0) -> dict:
    assert proc.stdout is not None
    raw = await asyncio.wait_for(proc.stdout.readline(), timeout)
    if not raw:
        raise RuntimeError("the Express app exited early")
    return json.loads(raw)


async def main() -> None:
    data = tempfile.mkdtemp(prefix="netget-cross-")
    async with Netget("registry", listen="127.0.0.1:0", data_dir=data) as registry:
        print(f"▶ registry listening on {registry.url}")
        api = FastAPI(lifespan=lifespan("py-orders", registry_nodes=[registry.url], data_dir=None))

        @api.get("/orders")
        async def orders() -> dict:
            return {"from": "fastapi", "orders": [1, 2]}

        server = uvicorn.Server(uvicorn.Config(api, host="127.0.0.1", port=0, log_level="warning"))
        serving = asyncio.create_task(server.serve())
        node = await asyncio.create_subprocess_exec(
            "node",
            "-e",
            EXPRESS_APP,
            cwd=ROOT,
            env={**os.environ, "NETGET_ROOT": str(ROOT), "REGISTRY": registry.url},
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            registered = await _line(node)
            if "error" in registered:
                raise RuntimeError(registered["error"])
            print(f"▶ Express app registered as node-catalog at {registered['registered']}")
            async with Netget("client", registry_nodes=[registry.url]) as client:
                catalog = None
                for _ in range(200):
                    catalog = await client.discover_service_node("node-catalog")
                    if catalog:
                        break
                    await asyncio.sleep(0.05)
                if not catalog:
                    raise RuntimeError("Python did not discover node-catalog")
                answer = await asyncio.to_thread(_get, catalog["address"] + "/catalog")
                print(f"▶ Python discovered node-catalog at {catalog['address']}: {answer}")
                found = await _line(node)
                if "error" in found:
                    raise RuntimeError(found["error"])
                print(f"▶ Node discovered py-orders at {found['found']}: {found['answer']}")
                node.send_signal(signal.SIGTERM)
                await asyncio.wait_for(node.wait(), 15)
                gone = False
                for _ in range(100):
                    if not await client.discover_service_nodes("node-catalog", cached=False):
                        gone = True
                        break
                    await asyncio.sleep(0.05)
                if not gone:
                    raise RuntimeError("node-catalog did not deregister on SIGTERM")
                print("▶ Express app stopped (SIGTERM) and left the registry")
        finally:
            if node.returncode is None:
                node.kill()
                await node.wait()
            server.should_exit = True
            await asyncio.wait_for(serving, 15)
    print("▶ done")


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception as e:  # noqa: BLE001 - a demo says what failed and exits non-zero
        print(f"✗ {e}", file=sys.stderr)
        sys.exit(1)
