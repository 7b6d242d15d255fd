"""netget: service registry and discovery.

Start a registry, register services, discover and watch them — every network call is a
coroutine on asyncio::

    from netget import Netget

    async with Netget(node_type="service", network="development",
                      metadata={"name": "orders", "address": "http://127.0.0.1:8000"},
                      registry_nodes=["http://127.0.0.1:7700"]) as node:
        await node.register_with_network()
        db = await node.discover_service_node("DatabaseService")

All behaviour lives in the Rust core (``netget._native``); this module only shapes the API.
"""

from __future__ import annotations

import asyncio
import atexit
import inspect
import os
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from typing import Any, Callable, Optional, Union

from . import _native
from .errors import (
    DeniedError,
    ForbiddenError,
    InvalidInputError,
    NetgetError,
    NotFoundError,
    RateLimitedError,
    TimeoutError,
    UnauthorizedError,
    UnreachableError,
)

__all__ = [
    "Netget",
    "NetgetError",
    "InvalidInputError",
    "UnauthorizedError",
    "ForbiddenError",
    "DeniedError",
    "NotFoundError",
    "UnreachableError",
    "TimeoutError",
    "RateLimitedError",
    "Instance",
    "__version__",
]

__version__: str = _native.version()

# Before the interpreter finalizes, give the native runtime's threads a moment to finish waking
# the event loop (see `quiesce` in bindings-py/src/lib.rs); without it a process can crash at exit.
atexit.register(_native.quiesce, 0.1)

#: An instance, as every surface returns it: ``id``, ``name``, ``network``, ``address``,
#: ``metadata``, ``tags``, ``version``, ``weight``, ``status``, ``registeredAt``, ``registry``.
Instance = dict[str, Any]

#: A filter answer: ``True``/``{"allow": True}`` allows; ``False``/``{"allow": False,
#: "reason": "..."}`` denies; raising denies with the exception as the reason.
FilterResult = Union[bool, Mapping[str, Any]]
Filter = Callable[[dict[str, Any]], Union[FilterResult, Awaitable[FilterResult]]]

PathLike = Union[str, "os.PathLike[str]"]


def _discover_options(
    tags: Optional[Sequence[str]],
    healthy_only: Optional[bool],
    strategy: Optional[str],
    cached: Optional[bool],
) -> Optional[dict[str, Any]]:
    opts: dict[str, Any] = {}
    if tags is not None:
        opts["tags"] = list(tags)
    if healthy_only is not None:
        opts["healthyOnly"] = healthy_only
    if strategy is not None:
        opts["strategy"] = strategy
    if cached is not None:
        opts["cached"] = cached
    return opts or None


class Netget:
    """A netget node: a ``registry``, a ``service`` that registers itself, or a ``client``.

    Options mirror the JavaScript ``new Netget({...})`` in snake_case; unknown options are
    refused with :class:`InvalidInputError`. Use ``async with`` (or ``start()``/``stop()``).

    Registry options: ``listen`` (``"127.0.0.1:0"`` picks a free port), ``data_dir``,
    ``networks``, ``session_timeout``, ``config`` (a ``netget.toml``), ``cors``, ``tls_cert``,
    ``tls_key``, ``registry_nodes`` (peer registries whose cluster it joins) and ``filter`` (a
    function or ``async def`` seeing every handshake and registration). Options of members
    (services and clients): ``metadata`` (``name``, ``address``, ``tags``, ``version``, ``id``,
    ``weight`` and any other keys), ``network``,
    ``registry_nodes`` (a random one first; ``in_order=True`` takes them in the order given, for
    registries that are not one cluster), ``health``, ``token``, ``tls`` (``{"ca": "ca.pem"}``),
    ``verify``, ``trusted_keys``, ``key`` / ``key_file``, ``data_dir`` (where the node's key is
    kept; default the user's data dir, ``$XDG_DATA_HOME/netget`` or ``~/.local/share/netget``),
    ``request_timeout``.
    """

    def __init__(
        self,
        node_type: Optional[str] = None,
        *,
        network: Optional[str] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        registry_nodes: Optional[Sequence[str]] = None,
        filter: Optional[Filter] = None,  # noqa: A002 - the spec's name
        **options: Any,
    ) -> None:
        spec: dict[str, Any] = dict(options)
        if node_type is not None:
            spec["node_type"] = node_type
        if network is not None:
            spec["network"] = network
        if metadata is not None:
            spec["metadata"] = dict(metadata)
        if registry_nodes is not None:
            spec["registry_nodes"] = list(registry_nodes)
        self._node = _native.Node(spec, filter)
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def node_type(self) -> str:
        """``registry``, ``service`` or ``client``."""
        return self._node.node_type

    @property
    def url(self) -> Optional[str]:
        """The registry's URL once started, or the registry a member is connected to."""
        return self._node.url

    @property
    def public_key(self) -> str:
        """The node's Ed25519 public key (standard base64)."""
        return self._node.public_key

    @property
    def registry_nodes(self) -> list[str]:
        """The registry nodes a member fails over between."""
        return self._node.registry_nodes

    async def start(self) -> str:
        """Registries: start listening; returns the URL. Members: wait until connected."""
        return await self._node.start()

    async def __aenter__(self) -> Netget:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def register_with_network(self) -> Instance:
        """Register this service (from ``metadata``); returns the stored instance. The node
        stays registered across reconnections and failover until ``stop()``."""
        return await self._node.register_with_network()

    async def deregister(self) -> None:
        """Remove this node's registration (it stays connected)."""
        await self._node.deregister()

    async def discover_service_node(
        self,
        name: str,
        *,
        tags: Optional[Sequence[str]] = None,
        healthy_only: Optional[bool] = None,
        strategy: Optional[str] = None,
        cached: Optional[bool] = None,
    ) -> Optional[Instance]:
        """One healthy instance of ``name`` (weighted random unless ``strategy`` is
        ``"round-robin"`` or ``"random"``), or ``None``. Served from a cache kept current by
        pushed events after the first call."""
        opts = _discover_options(tags, healthy_only, strategy, cached)
        # The core answers from its cache when it can (and never when cached=False).
        hit, value = self._node.discover_cached(name, opts)
        if hit:
            return value
        return await self._node.discover_service_node(name, opts)

    async def discover_service_nodes(
        self,
        name: str,
        *,
        tags: Optional[Sequence[str]] = None,
        healthy_only: Optional[bool] = None,
        cached: Optional[bool] = None,
    ) -> list[Instance]:
        """Every matching instance of ``name``."""
        opts = _discover_options(tags, healthy_only, None, cached)
        return await self._node.discover_service_nodes(name, opts)

    async def services(self) -> list[dict[str, Any]]:
        """Service names of the network with instance counts."""
        return await self._node.services()

    def watch(self, name: str) -> AsyncIterator[dict[str, Any]]:
        """``async for event in node.watch("web")``: ``{"type": "up"|"down"|"changed",
        "instance": {...}}``, starting with ``up`` for every current instance. Call
        ``.close()`` on the iterator to stop early."""
        return self._node.watch(name)

    def subscribe(
        self,
        channel: str,
        callback: Optional[Callable[[dict[str, Any]], Any]] = None,
    ) -> Any:
        """Receive messages published on ``channel`` (``{"channel", "data", "from"}``). Without a
        callback, returns an async iterator; with one (plain or ``async def``), runs it for each
        message on the current event loop and returns a function that unsubscribes."""
        sub = self._node.subscribe(channel)
        if callback is None:
            return sub

        async def pump() -> None:
            async for message in sub:
                result = callback(message)
                if inspect.isawaitable(result):
                    await result

        task = asyncio.get_running_loop().create_task(pump())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

        def unsubscribe() -> None:
            sub.close()
            task.cancel()

        return unsubscribe

    async def publish(self, channel: str, data: Any) -> int:
        """Publish ``data`` (any JSON value) on ``channel``; returns how many subscribers it
        reached on the connected registry. Delivery is at most once."""
        return await self._node.publish(channel, data)

    def add_registry_node(self, url: str) -> None:
        """Add a registry node to fail over to."""
        self._node.add_registry_node(url)

    def remove_registry_node(self, url: str) -> None:
        """Remove a registry node; a session with it moves to another."""
        self._node.remove_registry_node(url)

    async def stop(self) -> None:
        """Deregister, close sessions and end every watch and subscription. Idempotent."""
        for task in list(self._tasks):
            task.cancel()
        await self._node.stop()
