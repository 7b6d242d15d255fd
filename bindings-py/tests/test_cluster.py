"""A registry node with ``registry_nodes`` joins the cluster of those registries, and what is
registered on one is discoverable on the other."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.request

from netget import Netget


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _register(url: str, name: str, instance_id: str) -> None:
    body = json.dumps({"address": "http://127.0.0.1:9", "ttl": "30s"}).encode()
    path = f"{url}/v1/networks/development/services/{name}/instances/{instance_id}"
    request = urllib.request.Request(path, data=body, method="PUT")
    request.add_header("content-type", "application/json")
    with urllib.request.urlopen(request, timeout=5) as r:
        assert r.status in (200, 201)


def _discover(url: str, name: str) -> list[dict]:
    path = f"{url}/v1/networks/development/services/{name}"
    with urllib.request.urlopen(path, timeout=5) as r:
        return list(json.loads(r.read())["instances"])


def _members(url: str) -> list[dict]:
    with urllib.request.urlopen(f"{url}/v1/cluster", timeout=5) as r:
        return list(json.loads(r.read())["members"])


async def test_registry_nodes_of_a_registry_are_the_peers_whose_cluster_it_joins(
    tmp_path,
) -> None:
    # Each names the other; the second listens on a port chosen before the first starts.
    port = _free_port()
    second_url = f"http://127.0.0.1:{port}"
    async with Netget(
        "registry", listen="127.0.0.1:0", data_dir=str(tmp_path / "a"), registry_nodes=[second_url]
    ) as first:
        async with Netget(
            "registry",
            listen=f"127.0.0.1:{port}",
            data_dir=str(tmp_path / "b"),
            registry_nodes=[first.url],
        ) as second:
            deadline = time.monotonic() + 15
            seen: list[dict] = []
            while time.monotonic() < deadline:
                seen = await asyncio.to_thread(_members, first.url)
                if len(seen) == 2 and all(m["live"] for m in seen):
                    break
                await asyncio.sleep(0.1)
            assert {m["url"] for m in seen} == {first.url, second.url}, seen
            assert all(m["live"] for m in seen), seen
            # Registered on the first, discoverable on the second, naming its owner.
            await asyncio.to_thread(_register, first.url, "orders", "o1")
            found: list[dict] = []
            while time.monotonic() < deadline + 15:
                found = await asyncio.to_thread(_discover, second.url, "orders")
                if found:
                    break
                await asyncio.sleep(0.1)
            first_id = next(m["id"] for m in seen if m["url"] == first.url)
            assert [(i["id"], i["registry"]) for i in found] == [("o1", first_id)], found
