"""/metrics parses with prometheus_client's OpenMetrics parser, and its series count."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from typing import Any

from prometheus_client.openmetrics.parser import text_string_to_metric_families

from netget import Netget


def _scrape(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as r:
        assert r.headers["content-type"].startswith("application/openmetrics-text")
        text = r.read().decode()
    samples: dict[str, Any] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def _get_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def _value(samples: dict[str, Any], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_are_valid_openmetrics_and_count(registry: Netget) -> None:
    before = await asyncio.to_thread(_scrape, registry.url)
    async with (
        Netget(
            "service",
            metadata={"name": "m", "address": "http://127.0.0.1:1"},
            registry_nodes=[registry.url],
        ) as node,
        Netget("client", registry_nodes=[registry.url]) as c,
    ):
        await node.register_with_network()
        watch = c.watch("m")
        await asyncio.wait_for(watch.__anext__(), 5)
        await c.discover_service_nodes("m", cached=False)
        await c.discover_service_nodes("m", cached=False)
        await asyncio.to_thread(_get_status, f"{registry.url}/v1/networks/staging/services")
        after = await asyncio.to_thread(_scrape, registry.url)
        watch.close()
    reg = lambda s: _value(s, "netget_registrations_total", transport="websocket")  # noqa: E731
    assert reg(after) == reg(before) + 1
    disc = lambda s: _value(s, "netget_discovery_requests_total", transport="websocket")  # noqa: E731
    assert disc(after) >= disc(before) + 2
    assert _value(after, "netget_instances", network="development", status="passing") >= 1
    assert _value(after, "netget_sessions") >= 2
    assert _value(after, "netget_watch_subscribers") >= 1
    assert any(name == "netget_watch_push_latency_seconds_count" for name, _ in after)
    refused = lambda s: _value(  # noqa: E731
        s, "netget_rejected_requests_total", code="NETGET_UNKNOWN_NETWORK"
    )
    assert refused(after) == refused(before) + 1
