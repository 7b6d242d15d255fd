"""FastAPI integration: register the app once uvicorn is serving, with its real address.

Two lines::

    from netget.fastapi import lifespan
    app = FastAPI(lifespan=lifespan("orders", registry_nodes=["http://127.0.0.1:7700"]))

On startup the app gets a health route (``GET /health``, 200) and a background task waits until
the server is listening (port 0 works: the real port is read from the listening socket), then
registers ``http://HOST:PORT`` (or ``address=`` when given) over a WebSocket session. The node is
``app.state.netget`` for discovery in handlers. On shutdown it deregisters at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
from collections.abc import AsyncIterator, Sequence
from typing import Any, Callable, Optional

from . import Netget

__all__ = ["lifespan", "bound_address"]


def _listening_addresses(loop: asyncio.AbstractEventLoop) -> list[tuple[str, int]]:
    # uvicorn serves through loop.create_server(); its asyncio.Server objects (and their
    # listening sockets) are reachable from the garbage collector's view of live objects.
    found = []
    for obj in gc.get_objects():
        if isinstance(obj, asyncio.base_events.Server) and obj.is_serving():
            if getattr(obj, "_loop", None) is not loop:
                continue
            for sock in obj.sockets:
                if sock.family in (socket.AF_INET, socket.AF_INET6):
                    host, port = sock.getsockname()[:2]
                    found.append((host, port))
    return found


async def bound_address(timeout: float = 10.0, host: Optional[str] = None) -> str:
    """Waits (at most ``timeout`` seconds) until a server on the running event loop is listening
    and returns ``http://HOST:PORT``. A wildcard bind (0.0.0.0) is reported as ``host`` or
    127.0.0.1."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        addresses = _listening_addresses(loop)
        if addresses:
            bound_host, port = addresses[-1]
            if host is None:
                host = "127.0.0.1" if bound_host in ("0.0.0.0", "::") else bound_host
            if ":" in host:
                host = f"[{host}]"
            return f"http://{host}:{port}"
        await asyncio.sleep(0.02)
    raise TimeoutError(f"no listening server appeared on this event loop within {timeout}s")


def lifespan(
    name: str,
    registry_nodes: Sequence[str],
    *,
    network: Optional[str] = None,
    metadata: Optional[dict[str, Any]] = None,
    address: Optional[str] = None,
    host: Optional[str] = None,
    health_path: str = "/health",
    **options: Any,
) -> Callable[[Any], contextlib.AbstractAsyncContextManager[None]]:
    """A FastAPI ``lifespan`` that registers the app as service ``name``.

    ``metadata`` adds instance fields (``tags``, ``version``, ...); other keyword arguments are
    :class:`netget.Netget` options (``token``, ``health``, ``data_dir``, ...).
    """

    @contextlib.asynccontextmanager
    async def _lifespan(app: Any) -> AsyncIterator[None]:
        if not any(getattr(r, "path", None) == health_path for r in app.router.routes):

            async def health() -> dict[str, str]:
                return {"status": "passing", "service": name}

            app.add_api_route(health_path, health, methods=["GET"], include_in_schema=False)

        registered: asyncio.Future[Netget] = asyncio.get_running_loop().create_future()

        async def register() -> None:
            try:
                where = address or await bound_address(host=host)
                meta = {**(metadata or {}), "name": name, "address": where}
                node = Netget(
                    "service",
                    network=network,
                    metadata=meta,
                    registry_nodes=registry_nodes,
                    **options,
                )
                await node.register_with_network()
                app.state.netget = node
                registered.set_result(node)
            except BaseException as e:  # reported through the future, then re-raised
                if not registered.done():
                    registered.set_exception(e)
                raise

        task = asyncio.get_running_loop().create_task(register())
        app.state.netget_registered = registered
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            if registered.done() and not registered.cancelled() and registered.exception() is None:
                await registered.result().stop()

    return _lifespan
