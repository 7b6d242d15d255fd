"""The exceptions of netget. Every one carries ``.code``, a stable ``NETGET_*`` string.

The native module raises these, choosing the class by the error's code (see
``bindings-py/src/error.rs``); the message says what went wrong and what to do.
"""

from __future__ import annotations

import builtins

__all__ = [
    "NetgetError",
    "InvalidInputError",
    "UnauthorizedError",
    "ForbiddenError",
    "DeniedError",
    "NotFoundError",
    "UnreachableError",
    "TimeoutError",
    "RateLimitedError",
]


class NetgetError(Exception):
    """Base of every netget error. ``code`` is the stable ``NETGET_*`` code."""

    code: str = "NETGET_INTERNAL"

    def __init__(self, message: str = "", code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class InvalidInputError(NetgetError, ValueError):
    """A name, option or message was not acceptable (``NETGET_INVALID_INPUT`` and kin)."""

    code = "NETGET_INVALID_INPUT"


class UnauthorizedError(NetgetError):
    """Missing or wrong credentials, a bad signature, a replayed or expired challenge."""

    code = "NETGET_UNAUTHORIZED"


class ForbiddenError(UnauthorizedError):
    """Known caller, but not allowed (another node's instance, a name bound to another key)."""

    code = "NETGET_FORBIDDEN"


class DeniedError(UnauthorizedError):
    """The registry's conditional filter refused; the message carries its reason."""

    code = "NETGET_DENIED"


class NotFoundError(NetgetError, LookupError):
    """No such network, service or instance (``NETGET_NOT_FOUND``, ``NETGET_UNKNOWN_NETWORK``)."""

    code = "NETGET_NOT_FOUND"


class UnreachableError(NetgetError, ConnectionError):
    """No registry could be reached, or the node was stopped."""

    code = "NETGET_UNREACHABLE"


class TimeoutError(NetgetError, builtins.TimeoutError):  # noqa: A001 - the spec's name
    """A call to a registry did not complete in time."""

    code = "NETGET_TIMEOUT"


class RateLimitedError(NetgetError):
    """Too many requests; slow down."""

    code = "NETGET_RATE_LIMITED"
