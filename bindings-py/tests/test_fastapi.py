"""A real FastAPI app served by uvicorn on port 0 registers itself, is discovered by another
process, answers on its health route, and disappears when it shuts down."""

from __future__ import annotations

import asyncio
import signal
import sys
import textwrap
import urllib.request
from typing import Any

from netget import Netget

from .conftest import wait_until

APP = textwrap.dedent(
    """
    import sys
    import uvicorn
    from fastapi import FastAPI
    from netget.fastapi import lifespan

    app = FastAPI(lifespan=lifespan("fastapi-orders", registry_nodes=[sys.argv[1]],
                                    metadata={"tags": ["py"]}, data_dir=None))

    @app.get("/orders")
    async def orders():
        return [{"id": 1}]

    print("starting", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=0, log_level="warning")
    """
)


def _get_status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status


async def _instances(c: Netget) -> list[dict[str, Any]]:
    return await c.discover_service_nodes("fastapi-orders", cached=False)


async def test_a_fastapi_app_registers_with_its_real_port_and_leaves_on_shutdown(
    registry_process: Any, spawn: Any
) -> None:
    reg = registry_process("--session-timeout", "60s")
    app = spawn([sys.executable, "-c", APP, reg.url])
    assert app.first_line == "starting"
    async with Netget("client", registry_nodes=[reg.url]) as c:
        assert await wait_until(lambda: _has_one(c), timeout=15), "the app never registered"
        inst = (await _instances(c))[0]
        assert inst["tags"] == ["py"]
        address = inst["address"]
        assert address.startswith("http://127.0.0.1:") and not address.endswith(":0")
        for path in ("/health", "/orders"):
            status = await asyncio.to_thread(_get_status, f"{address}{path}")
            assert status == 200, path
        app.kill(signal.SIGINT)
        # The session timeout is 60 s: vanishing now proves the graceful deregistration.
        assert await wait_until(lambda: _has_none(c), timeout=10), "the app did not deregister"
        app.popen.wait(15)


async def _has_one(c: Netget) -> bool:
    return len(await _instances(c)) == 1


async def _has_none(c: Netget) -> bool:
    return await _instances(c) == []
