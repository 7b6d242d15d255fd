"""The type stubs of the native module name exactly what the module has."""

from __future__ import annotations

import ast
import pathlib

import netget
from netget import _native

STUBS = pathlib.Path(netget.__file__).with_name("_native.pyi")


def _stub_names() -> dict[str, set[str]]:
    tree = ast.parse(STUBS.read_text())
    names: dict[str, set[str]] = {"": set()}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names[""].add(node.name)
        elif isinstance(node, ast.ClassDef):
            names[""].add(node.name)
            names[node.name] = {
                n.name for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            }
    return names


def test_the_stubs_match_the_native_module() -> None:
    stubs = _stub_names()
    runtime = {n for n in dir(_native) if not n.startswith("_")}
    assert stubs[""] == runtime
    for cls, methods in stubs.items():
        if not cls:
            continue
        have = {n for n in dir(getattr(_native, cls)) if not n.startswith("_") or n in methods}
        public = {n for n in have if not n.startswith("_")}
        assert methods - {"__init__"} <= have, f"{cls}: stubbed but missing {methods - have}"
        assert public <= methods, f"{cls}: not stubbed {public - methods}"
