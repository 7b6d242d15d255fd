"""The README's Python quick start runs as written (so the front door never drifts)."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_python_quick_start_runs_and_writes_only_its_data_dir(
    tmp_path: pathlib.Path,
) -> None:
    text = README.read_text()
    section = text.split("## Quick start: Python", 1)[1]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    script = blocks[0]
    assert "register_with_network" in script
    r = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr
    assert "'name': 'orders'" in r.stdout and "up http://127.0.0.1:8000" in r.stdout
    # The service and client nodes keep their keys in the user's data dir, not the current folder.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["netget-py-demo"]
