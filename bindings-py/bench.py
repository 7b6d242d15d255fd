"""Discovery through the Python binding: calls/s and latency, cached and uncached.

Run: ``python bindings-py/bench.py`` (after ``pip install .``). Starts a registry in this process,
registers 10 instances, then times ``discover_service_node`` from a client: served from the
watch-backed cache (the common case), and with ``cached=False`` (a round trip to the registry).
"""

from __future__ import annotations

import asyncio
import tempfile
import time

from netget import Netget


async def timed(label: str, n: int, call) -> None:  # type: ignore[no-untyped-def]
    await call()
    start = time.perf_counter()
    for _ in range(n):
        await call()
    elapsed = time.perf_counter() - start
    print(f"  {label:<44} {n / elapsed:>12,.0f} calls/s {elapsed / n * 1e6:>10.2f} µs/call")


async def main() -> None:
    data = tempfile.mkdtemp(prefix="netget-pybench-")
    async with Netget("registry", listen="127.0.0.1:0", data_dir=data) as registry:
        services = []
        for i in range(10):
            node = Netget(
                "service",
                metadata={"name": "bench", "address": f"http://127.0.0.1:{9000 + i}"},
                registry_nodes=[registry.url],
            )
            await node.register_with_network()
            services.append(node)
        async with Netget("client", registry_nodes=[registry.url]) as client:
            print("netget Python binding — discover_service_node, 10 instances")
            await timed(
                "cached (watch-backed)", 200_000, lambda: client.discover_service_node("bench")
            )
            await timed(
                "uncached (cached=False, WebSocket round trip)",
                5_000,
                lambda: client.discover_service_node("bench", cached=False),
            )
        for node in services:
            await node.stop()


if __name__ == "__main__":
    asyncio.run(main())
