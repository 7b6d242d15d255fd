"""What the core keeps once and every package must agree with: the error codes."""

from __future__ import annotations

from netget import _native, errors


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

