"""Fixtures: registries in-process and as child processes, always stopped, and bounded waits."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from typing import Any, Callable

import pytest

from netget import Netget


@pytest.fixture
async def registry(tmp_path: Any) -> AsyncIterator[Netget]:
    """A registry node in this process on 127.0.0.1:0 (networks development and production)."""
    node = Netget(
        "registry",
        listen="127.0.0.1:0",
        data_dir=str(tmp_path / "registry"),
        networks=["development", "production"],
    )
    await node.start()
    try:
        yield node
    finally:
        await asyncio.wait_for(node.stop(), 20)


class Proc:
    """A child process, SIGKILLed and reaped when the test ends, whatever happened."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.popen = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=None,
            text=True,
            env={**os.environ, "NETGET_LOG": "warn", **(env or {})},
        )
        self.first_line = ""

    def read_line(self, timeout: float = 20.0) -> str:
        import threading

        out: list[str] = []
        reader = threading.Thread(target=lambda: out.append(self.popen.stdout.readline()))  # type: ignore[union-attr]
        reader.daemon = True
        reader.start()
        reader.join(timeout)
        if not out:
            raise TimeoutError(f"{self.popen.args} printed nothing within {timeout}s")
        return out[0].strip()

    @property
    def url(self) -> str:
        return next(w for w in self.first_line.split() if w.startswith(("http://", "https://")))

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.popen.poll() is None:
            os.kill(self.popen.pid, sig)

    def stop(self) -> None:
        self.kill()
        try:
            self.popen.wait(10)
        finally:
            if self.popen.stdout:
                self.popen.stdout.close()


@pytest.fixture
def spawn() -> Iterator[Callable[..., Proc]]:
    """Starts child processes; each is killed at the end of the test."""
    procs: list[Proc] = []

    def start(args: list[str], env: dict[str, str] | None = None, wait_line: bool = True) -> Proc:
        p = Proc(args, env)
        procs.append(p)
        if wait_line:
            p.first_line = p.read_line()
        return p

    try:
        yield start
    finally:
        for p in procs:
            p.stop()


@pytest.fixture
def registry_process(spawn: Callable[..., Proc]) -> Callable[..., Proc]:
    """Starts `python -m netget registry` on 127.0.0.1:0 with a temp data dir."""

    def start(*extra: str) -> Proc:
        data = tempfile.mkdtemp(prefix="netget-py-test-")
        return spawn(
            [
                sys.executable,
                "-m",
                "netget",
                "registry",
                "--listen",
                "127.0.0.1:0",
                "--data",
                data,
                *extra,
            ]
        )

    return start


async def wait_until(
    predicate: Callable[[], Any], timeout: float = 10.0, every: float = 0.05
) -> bool:
    """Polls ``predicate`` (sync or async) until it is true or ``timeout`` passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return True
        await asyncio.sleep(every)
    return False
