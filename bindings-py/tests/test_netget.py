"""The Python API end to end against real registries (in-process and child processes)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from typing import Any

import pytest

import netget
from netget import Netget

from .conftest import wait_until


def service(url: str | list[str], name: str = "orders", port: int = 8000, **options: Any) -> Netget:
    urls = url if isinstance(url, list) else [url]
    return Netget(
        "service",
        metadata={
            "name": name,
            "address": f"http://127.0.0.1:{port}",
            **options.pop("metadata", {}),
        },
        registry_nodes=urls,
        data_dir=options.pop("data_dir", None),
        **options,
    )


def client(url: str | list[str], **options: Any) -> Netget:
    urls = url if isinstance(url, list) else [url]
    return Netget("client", registry_nodes=urls, **options)


async def test_register_discover_watch_deregister_round_trip(registry: Netget) -> None:
    async with client(registry.url) as watcher:
        events = watcher.watch("orders")
        async with service(
            registry.url, metadata={"tags": ["v1"], "version": "1.2.0", "zone": "a"}
        ) as node:
            inst = await node.register_with_network()
            assert inst["name"] == "orders" and inst["network"] == "development"
            assert inst["metadata"] == {"zone": "a"} and inst["tags"] == ["v1"]
            assert inst["status"] == "passing" and isinstance(inst["registeredAt"], int)
            up = await asyncio.wait_for(events.__anext__(), 5)
            assert up["type"] == "up" and up["instance"]["id"] == inst["id"]

            one = await watcher.discover_service_node("orders")
            assert one is not None and one["address"] == "http://127.0.0.1:8000"
            assert await watcher.discover_service_nodes("orders", tags=["v2"]) == []
            assert len(await watcher.discover_service_nodes("orders", cached=False)) == 1
            assert (await watcher.discover_service_node("orders", strategy="round-robin"))[
                "id"
            ] == inst["id"]
            services = await watcher.services()
            assert {
                "name": "orders",
                "instances": 1,
                "healthy": 1,
                "passing": 1,
                "warning": 0,
                "critical": 0,
            } in services

            await node.deregister()
            down = await asyncio.wait_for(events.__anext__(), 5)
            assert down["type"] == "down"
            assert await watcher.discover_service_node("orders") is None
        events.close()
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(events.__anext__(), 5)


async def test_a_stopped_service_vanishes_at_once(registry: Netget) -> None:
    node = service(registry.url)
    await node.start()
    await node.register_with_network()
    async with client(registry.url) as c:
        assert len(await c.discover_service_nodes("orders", cached=False)) == 1
        await node.stop()
        assert await c.discover_service_nodes("orders", cached=False) == []
        await node.stop()  # idempotent


async def test_a_registry_node_can_discover_and_publish_like_any_node(registry: Netget) -> None:
    async with service(registry.url) as node:
        await node.register_with_network()
        assert (await registry.discover_service_node("orders"))["name"] == "orders"
        assert registry.node_type == "registry" and registry.url.startswith("http://127.0.0.1:")


async def test_channels_deliver_to_subscribers_by_iterator_and_callback(registry: Netget) -> None:
    async with client(registry.url) as a, client(registry.url) as b, client(registry.url) as talker:
        sub = a.subscribe("chat")
        got: list[Any] = []

        async def on_message(message: dict[str, Any]) -> None:
            got.append(message["data"])

        unsubscribe = b.subscribe("chat", on_message)
        assert await wait_until(lambda: _count(talker), timeout=5)
        delivered = await talker.publish("chat", {"text": "hi"})
        assert delivered == 2
        while True:
            m = await asyncio.wait_for(sub.__anext__(), 5)
            if m["data"] == {"text": "hi"}:
                assert m["from"] == talker.public_key
                break
        assert await wait_until(lambda: {"text": "hi"} in got)
        unsubscribe()
        sub.close()


async def _count(talker: Netget) -> bool:
    return await talker.publish("chat", "probe") == 2


async def test_networks_are_isolated(registry: Netget) -> None:
    async with service(registry.url) as dev:
        await dev.register_with_network()
        async with client(registry.url, network="production") as prod:
            assert await prod.discover_service_node("orders") is None
            assert (
                await prod.discover_service_nodes("orders", cached=False, healthy_only=False) == []
            )
            watch = prod.watch("orders")
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(watch.__anext__(), 0.3)
            watch.close()


async def test_each_exception_type_is_raised_by_its_situation(
    registry: Netget, tmp_path: Any
) -> None:
    # InvalidInputError: a bad name, and bad options.
    async with client(registry.url) as c:
        with pytest.raises(netget.InvalidInputError) as e:
            await c.discover_service_node("bad name")
        assert e.value.code == "NETGET_INVALID_INPUT"
    with pytest.raises(netget.InvalidInputError, match="registryNode"):
        Netget("client", registryNode=["x"])
    # NotFoundError: a network the registry does not serve.
    c = client(registry.url, network="staging", request_timeout="3s")
    with pytest.raises(netget.NotFoundError) as nf:
        await c.start()
    assert nf.value.code == "NETGET_UNKNOWN_NETWORK"
    with pytest.raises(netget.NotFoundError):
        await c.discover_service_node("x")
    await c.stop()
    # UnreachableError: nothing listening.
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    node = client(f"http://127.0.0.1:{port}", request_timeout="3s")
    with pytest.raises(netget.UnreachableError) as ur:
        await node.discover_service_node("x")
    assert ur.value.code == "NETGET_UNREACHABLE"
    await node.stop()
    # UnauthorizedError: a token network without the token.
    config = tmp_path / "netget.toml"
    config.write_text(
        '[[network]]\nname = "development"\n\n'
        '[[network]]\nname = "secret"\npolicy = "token"\ntokens = ["py-secret-token"]\n'
    )
    async with Netget(
        "registry", listen="127.0.0.1:0", config=str(config), data_dir=str(tmp_path / "r2")
    ) as locked:
        c = client(locked.url, network="secret", request_timeout="3s")
        with pytest.raises(netget.UnauthorizedError) as ua:
            await c.discover_service_node("x")
        assert ua.value.code == "NETGET_UNAUTHORIZED"
        await c.stop()
        async with client(locked.url, network="secret", token="py-secret-token") as ok:
            assert await ok.discover_service_node("x") is None
    # TimeoutError: a registry that accepts TCP but never answers the handshake.
    server = await asyncio.start_server(lambda r, w: asyncio.sleep(30), "127.0.0.1", 0)
    silent = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    node = client(silent, request_timeout="1s")
    with pytest.raises((netget.TimeoutError, netget.UnreachableError)) as to:
        await node.discover_service_node("x")
    assert to.value.code in ("NETGET_TIMEOUT", "NETGET_UNREACHABLE")
    await node.stop()
    server.close()
    # Every one is a NetgetError.
    assert issubclass(netget.DeniedError, netget.NetgetError)


async def test_python_filters_allow_and_deny_with_a_reason(tmp_path: Any) -> None:
    seen: list[str] = []

    async def decide(request: dict[str, Any]) -> Any:
        seen.append(request["kind"])
        if request["kind"] == "register" and request["service"] == "blocked":
            return {"allow": False, "reason": "blocked services are not welcome"}
        if request["kind"] == "register" and request["service"] == "boom":
            raise RuntimeError("filter bug")
        return True

    async with Netget(
        "registry", listen="127.0.0.1:0", data_dir=str(tmp_path), filter=decide
    ) as reg:
        async with service(reg.url, name="fine") as ok:
            await ok.register_with_network()
        async with service(reg.url, name="blocked") as bad:
            with pytest.raises(netget.DeniedError, match="blocked services are not welcome") as e:
                await bad.register_with_network()
            assert e.value.code == "NETGET_DENIED"
        async with service(reg.url, name="boom") as boom:
            with pytest.raises(netget.DeniedError, match="filter bug"):
                await boom.register_with_network()
        # The registry keeps working after a failing filter.
        async with service(reg.url, name="after") as after:
            await after.register_with_network()
    assert "handshake" in seen and "register" in seen

    def sync_deny(request: dict[str, Any]) -> bool:
        return request["kind"] != "register"

    async with Netget(
        "registry", listen="127.0.0.1:0", data_dir=str(tmp_path / "b"), filter=sync_deny
    ) as reg:
        async with service(reg.url, name="any") as node:
            with pytest.raises(netget.DeniedError):
                await node.register_with_network()


async def test_a_killed_python_service_process_vanishes_at_once_not_at_the_session_timeout(
    registry_process: Any, spawn: Any
) -> None:
    # The registry acts on the closed socket, not on silence: a minute's session timeout.
    reg = registry_process("--session-timeout", "60s")
    code = textwrap.dedent(
        f"""
        import asyncio, netget
        async def main():
            node = netget.Netget("service", metadata={{"name": "victim", "address": "http://127.0.0.1:9"}},
                                 registry_nodes=["{reg.url}"], data_dir=None)
            await node.register_with_network()
            print("registered", flush=True)
            await asyncio.sleep(600)
        asyncio.run(main())
        """
    )
    child = spawn([sys.executable, "-c", code])
    assert child.first_line == "registered"
    async with client(reg.url) as c:
        assert len(await c.discover_service_nodes("victim", cached=False)) == 1
        child.kill()
        assert await wait_until(lambda: _gone(c, "victim"), timeout=5), (
            "a SIGKILLed node must vanish when its socket closes, long before the session timeout"
        )


async def _gone(c: Netget, name: str) -> bool:
    return await c.discover_service_nodes(name, cached=False) == []


async def test_failover_between_two_registries(registry_process: Any) -> None:
    first, second = registry_process(), registry_process()
    # In order: two registries that are not a cluster, the session on the first.
    async with (
        service([first.url, second.url], in_order=True) as node,
        client(second.url) as on_second,
    ):
        inst = await node.register_with_network()
        assert await on_second.discover_service_nodes("orders", cached=False) == []
        first.kill()
        assert await wait_until(lambda: _present(on_second, "orders"), timeout=10)
        again = await on_second.discover_service_nodes("orders", cached=False)
        assert again[0]["id"] == inst["id"], "same identity, same id after failover"


async def _present(c: Netget, name: str) -> bool:
    return len(await c.discover_service_nodes(name, cached=False)) == 1


def test_the_cli_runs_as_python_dash_m_netget(registry_process: Any) -> None:
    reg = registry_process()
    run = lambda *a: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "netget", *a], capture_output=True, text=True, timeout=30
    )
    assert run("--help").returncode == 0
    r = run(
        "register", "cli-svc", "--address", "http://127.0.0.1:1", "--registry", reg.url, "--json"
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["name"] == "cli-svc"
    r = run("discover", "cli-svc", "--json", "--registry", reg.url)
    assert len(json.loads(r.stdout)["instances"]) == 1
    r = run("discover", "x", "--network", "staging", "--registry", reg.url)
    assert r.returncode == 1 and "NETGET_UNKNOWN_NETWORK" in r.stderr


def test_processes_exit_cleanly_after_using_registries_and_clients(tmp_path: Any) -> None:
    # Without the exit hook, a runtime thread still waking the event loop when the interpreter
    # finalized crashed about one run in five (SIGSEGV or abort).
    script = textwrap.dedent(
        """
        import asyncio, sys
        from netget import Netget
        async def main():
            async with Netget("registry", listen="127.0.0.1:0", data_dir=sys.argv[1]) as r:
                async with Netget("client", registry_nodes=[r.url]) as c:
                    await c.discover_service_node("x")
        asyncio.run(main())
        """
    )
    for i in range(12):
        r = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / f"d{i}")],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert r.returncode == 0, f"run {i} exited with {r.returncode}: {r.stderr}"
