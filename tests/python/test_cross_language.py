"""Cross-language: an Express app (Node package) and a FastAPI app (Python package) register
with one registry and discover and call each other; the Express app leaves on SIGTERM."""

from __future__ import annotations

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_express_and_fastapi_find_each_other() -> None:
    express = ROOT / "node_modules" / "express"
    assert express.exists(), "run `npm install` first (the Node package)"
    r = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "cross_language_demo.py")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "Python discovered node-catalog" in out and "'from': 'express'" in out
    assert "Node discovered py-orders" in out and "'from': 'fastapi'" in out
    assert "left the registry" in out
