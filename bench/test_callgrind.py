#!/usr/bin/env python3
"""The comparison of bench/callgrind.py, without valgrind: `python3 bench/test_callgrind.py`
(run by `make callgrind` before the measurement, so a guard that cannot fail fails here)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "callgrind.py"
BASE = {"directory/discover": 1000.0, "protocol/encode-event": 2000.0, "client/pick-cached": 300.0}


def compare(now: dict[str, float]) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for name, counts in (("base.json", BASE), ("now.json", now)):
            file = Path(tmp) / name
            file.write_text(json.dumps({"ir_per_op": counts}))
            files.append(str(file))
        return subprocess.run(
            [sys.executable, str(SCRIPT), "--compare", *files], capture_output=True, text=True
        )


class Compare(unittest.TestCase):
    def test_unchanged_passes(self) -> None:
        run = compare(dict(BASE))
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        self.assertIn("+0.00%", run.stdout)

    def test_growth_within_the_margin_passes(self) -> None:
        run = compare({**BASE, "directory/discover": 1049.0})
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        self.assertNotIn("REGRESSION", run.stdout)

    def test_growth_beyond_the_margin_fails_naming_every_path(self) -> None:
        run = compare({**BASE, "directory/discover": 1051.0, "client/pick-cached": 600.0})
        self.assertEqual(run.returncode, 1, run.stdout + run.stderr)
        self.assertIn("directory/discover, client/pick-cached", run.stderr)
        self.assertNotIn("protocol/encode-event", run.stderr)
        self.assertIn("+100.00%  REGRESSION", run.stdout)

    def test_cheaper_is_reported_not_failed(self) -> None:
        run = compare({**BASE, "protocol/encode-event": 1000.0})
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        self.assertIn("cheaper by more than the margin: protocol/encode-event", run.stdout)
        self.assertIn("--update", run.stdout)

    def test_new_and_missing_paths_are_reported_not_failed(self) -> None:
        now = {p: v for p, v in BASE.items() if p != "client/pick-cached"}
        run = compare({**now, "protocol/new-path": 5.0})
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        self.assertIn("client/pick-cached, protocol/new-path", run.stdout)


if __name__ == "__main__":
    unittest.main()
