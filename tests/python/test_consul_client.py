"""A Consul client library from PyPI (py-consul) against netget's Consul-compatible API, as a
team that runs Consul would point it: register with a TTL check, pass it, discover passing
instances, block on a query until another instance registers, deregister; and what netget does
not serve is refused with a message naming it."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import consul
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def netget_binary() -> str:
    """`NETGET_BIN`, else the `netget` command of the installed package (the wheel), else the
    checkout's build."""
    found = os.environ.get("NETGET_BIN") or shutil.which(
        "netget", path=os.path.dirname(sys.executable)
    )
    return found or str(ROOT / "target" / "dist" / "netget")


@pytest.fixture
def registry() -> Iterator[tuple[str, int]]:
    """A registry process on 127.0.0.1:0: (host, port); killed when the test ends."""
    data = tempfile.mkdtemp(prefix="netget-consul-")
    proc = subprocess.Popen(
        [netget_binary(), "registry", "--listen", "127.0.0.1:0", "--data", data],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "NETGET_LOG": "warn"},
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        url = next(w for w in first.split() if w.startswith("http://"))
        host, port = url.removeprefix("http://").rsplit(":", 1)
        yield host, int(port)
    finally:
        proc.kill()
        proc.wait(10)
        shutil.rmtree(data, ignore_errors=True)


def blocking_queries(host: str, port: int) -> int:
    """Blocking queries waiting now, as the registry's /metrics says."""
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("netget_consul_blocking_queries "):
                return int(float(line.split()[1]))
    return -1


def wait_for(cond, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def test_py_consul_registers_passes_discovers_blocks_and_deregisters(registry) -> None:
    host, port = registry
    c = consul.Consul(host=host, port=port)

    assert c.agent.self()["Config"]["Datacenter"] == "development"

    assert c.agent.service.register(
        "web",
        service_id="web-1",
        address="127.0.0.1",
        port=8080,
        tags=["v1"],
        meta={"zone": "eu-1"},
        check=consul.Check.ttl("10s"),
    )
    assert c.agent.check.ttl_pass("service:web-1")

    index, nodes = c.health.service("web", passing=True)
    assert [n["Service"]["ID"] for n in nodes] == ["web-1"]
    svc = nodes[0]["Service"]
    assert (svc["Address"], svc["Port"], svc["Tags"], svc["Meta"]) == (
        "127.0.0.1",
        8080,
        ["v1"],
        {"zone": "eu-1"},
    )
    assert nodes[0]["Checks"][0]["CheckID"] == "service:web-1"
    assert nodes[0]["Checks"][0]["Status"] == "passing"
    assert nodes[0]["Checks"][0]["Type"] == "ttl"

    _, services = c.catalog.services()
    assert services == {"web": ["v1"]}
    _, entries = c.catalog.service("web", tag="v1")
    assert [(e["ServiceID"], e["ServicePort"]) for e in entries] == [("web-1", 8080)]

    # A blocking query on the index just read returns as soon as another instance registers,
    # long before its wait runs out.
    woken: dict[str, object] = {}

    def block() -> None:
        started = time.monotonic()
        woken["index"], woken["nodes"] = c.health.service("web", index=index, wait="60s")
        woken["after"] = time.monotonic() - started

    t = threading.Thread(target=block, daemon=True)
    t.start()
    assert wait_for(lambda: blocking_queries(host, port) == 1), "the query is not waiting"
    assert "after" not in woken, "the blocking query returned without a change"
    assert c.agent.service.register(
        "web",
        service_id="web-2",
        address="127.0.0.1",
        port=8081,
        check=consul.Check.http(f"http://{host}:{port}/health", interval="1s"),
    )
    t.join(30)
    assert not t.is_alive(), "the blocking query was not woken by the registration"
    assert woken["after"] < 30, woken  # woken by the change, not by the 60 s wait
    assert int(woken["index"]) > int(index)
    assert sorted(n["Service"]["ID"] for n in woken["nodes"]) == ["web-1", "web-2"]
    # web-2's HTTP check runs against the registry's /health: it passes.
    assert wait_for(
        lambda: (
            sorted(n["Service"]["ID"] for n in c.health.service("web", passing=True)[1])
            == ["web-1", "web-2"]
        )
    )
    checks = {n["Service"]["ID"]: n["Checks"][0]["Type"] for n in c.health.service("web")[1]}
    assert checks == {"web-1": "ttl", "web-2": "http"}

    assert c.agent.service.deregister("web-1")
    assert [n["Service"]["ID"] for n in c.health.service("web")[1]] == ["web-2"]


def test_what_netget_does_not_serve_is_refused_with_a_message_naming_it(registry) -> None:
    host, port = registry
    for method, path in [("GET", "/v1/kv/config"), ("PUT", "/v1/agent/check/fail/service:x")]:
        req = urllib.request.Request(f"http://{host}:{port}{path}", method=method, data=b"")
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=10)
        assert e.value.code == 404
        body = json.loads(e.value.read())
        assert body["error"]["code"] == "NETGET_NOT_FOUND"
        assert (
            f"{method} {path} is not part of netget's Consul-compatible API"
            in (body["error"]["message"])
        )
    c = consul.Consul(host=host, port=port)
    with pytest.raises(consul.ConsulException) as e:
        c.agent.service.register("x", script="/bin/true", interval="5s")
    assert "400" in str(e.value) and "NETGET_INVALID_INPUT" in str(e.value), e.value
