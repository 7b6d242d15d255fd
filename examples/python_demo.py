"""Two Python services find each other through a netget registry (run by `make demo`).

A registry starts in this process; an `orders` service and a `payments` service register; each
discovers the other; a watcher sees `payments` leave when it stops.
"""

from __future__ import annotations

import asyncio
import tempfile

from netget import Netget


async def main() -> None:
    async with Netget("registry", listen="127.0.0.1:0", data_dir=tempfile.mkdtemp()) as registry:
        print(f"▶ [python] registry listening on {registry.url}")
        orders = Netget(
            "service",
            metadata={"name": "orders", "address": "http://127.0.0.1:8001", "version": "1.0.0"},
            registry_nodes=[registry.url],
        )
        payments = Netget(
            "service",
            metadata={"name": "payments", "address": "http://127.0.0.1:8002", "tags": ["v2"]},
            registry_nodes=[registry.url],
        )
        for node in (orders, payments):
            inst = await node.register_with_network()
            print(f"▶ [python] {inst['name']} registered at {inst['address']}")
        found = await orders.discover_service_node("payments")
        print(f"▶ [python] orders discovered payments at {found['address']} (tags {found['tags']})")
        found = await payments.discover_service_node("orders")
        print(f"▶ [python] payments discovered orders at {found['address']}")
        watch = orders.watch("payments")
        await asyncio.wait_for(watch.__anext__(), 5)  # the initial `up`
        await payments.stop()
        event = await asyncio.wait_for(watch.__anext__(), 5)
        print(f"▶ [python] orders saw payments go {event['type']}")
        watch.close()
        await orders.stop()
    print("▶ [python] done")


if __name__ == "__main__":
    asyncio.run(main())
