"""``python -m netget ...`` and the ``netget`` console script: the same CLI as the Rust binary."""

from __future__ import annotations

import sys

from . import _native


def main(argv: list[str] | None = None) -> int:
    """Runs the CLI with ``argv`` (default: ``sys.argv[1:]``) and returns its exit code."""
    return _native.run_cli(list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
