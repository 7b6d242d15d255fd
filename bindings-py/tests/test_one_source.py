"""What the core keeps once and every package must agree with: error codes and the version."""

from __future__ import annotations

import importlib.metadata
import pathlib
import re

import netget
from netget import _native, errors

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_every_code_of_the_core_raises_a_class_of_netget_errors() -> None:
    for code, name in _native.error_codes():
        cls = getattr(errors, name, None)
        assert cls is not None, f"{code} maps to {name}, which netget.errors lacks"
        assert name in errors.__all__, f"{name} ({code}) is not exported"
        assert issubclass(cls, errors.NetgetError), f"{name} ({code})"


def test_every_class_of_netget_errors_is_raised_for_some_code() -> None:
    by_class: dict[str, set[str]] = {}
    for code, name in _native.error_codes():
        by_class.setdefault(name, set()).add(code)
    assert set(errors.__all__) == set(by_class), "classes no code maps to, or codes to no class"
    for name, codes in by_class.items():
        # A class's default `code` is one of the codes that raise it.
        assert getattr(errors, name).code in codes, f"{name}.code is not one of {sorted(codes)}"


def test_the_codes_are_the_cores() -> None:
    codes = [code for code, _ in _native.error_codes()]
    assert len(codes) == len(set(codes))
    assert all(c.startswith("NETGET_") for c in codes)
    assert {"NETGET_INVALID_INPUT", "NETGET_INTERNAL", "NETGET_DENIED"} <= set(codes)


def workspace_version() -> str:
    text = (ROOT / "Cargo.toml").read_text()
    section = text.split("[workspace.package]", 1)[1].split("\n[", 1)[0]
    match = re.search(r'^version\s*=\s*"([^"]+)"', section, re.MULTILINE)
    assert match, "Cargo.toml: [workspace.package] has no version"
    return match.group(1)


def test_the_package_version_is_the_workspace_version() -> None:
    version = workspace_version()
    assert netget.__version__ == version
    assert importlib.metadata.version("netget") == version
