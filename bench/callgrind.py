#!/usr/bin/env python3
"""The instruction-count regression guard of the hot paths (`make callgrind`, part of `make test`).

Wall-clock benchmarks on a shared 2-core CI machine vary by tens of percent; instruction counts
under valgrind's callgrind vary by well under one. For each hot path of `bench/hotpaths` this
runs the path at N and at 2N iterations under callgrind and takes (Ir(2N) - Ir(N)) / N, the
instructions of one operation (the setup, process start and exit are the same in both runs and
cancel out), then compares them with the committed baseline, bench/callgrind-baseline.json:

  bench/callgrind.py                      measure and check (exit 1 naming every path above
                                          baseline x (1 + margin); a path cheaper by more than the
                                          margin is reported, not failed: run --update)
  bench/callgrind.py --update             measure and write the baseline (after an intended change)
  bench/callgrind.py --compare BASE NOW   only the comparison, of two files in the baseline's
                                          format (what bench/test_callgrind.py exercises)
  bench/callgrind.py --out FILE           also write the measurement to FILE

The binary is built with the `dist` profile, the one `make dist` builds earlier in `make test`, so
in CI only the small hotpaths crate compiles; `--profile release` gives the same code with symbols
for `callgrind_annotate`. The callgrind files are kept in target/callgrind/.
Python 3.9+ standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "bench" / "callgrind-baseline.json"
OUT_DIR = ROOT / "target" / "callgrind"

# The allowed growth of a path's instructions per operation. The spread measured over repeated
# runs of the whole guard is in BENCHMARKS.md ("Instruction counts"); 5 % is many times it, so a
# failure is a change in the code, not noise.
MARGIN = 0.05

# N per path: enough operations that the setup's own variation (hash seeds, allocator state)
# divided by N stays far below the margin, few enough that the whole guard runs in ~2 minutes.
ITERATIONS = {
    "directory/discover": 100_000,
    "directory/discover-memoized": 300_000,
    "directory/register-update": 20_000,
    "directory/fanout-1000-watchers": 1_000,
    "protocol/parse-register": 20_000,
    "protocol/encode-event": 40_000,
    "protocol/decode-discovery": 1_500,
    "protocol/parse-result-frame": 1_500,
    "client/pick-cached": 200_000,
}


def build(profile: str) -> Path:
    """Builds the hotpaths binary and returns its path."""
    # Together with what packaging/dist.sh builds: cargo unifies the dependencies' features over
    # the packages of one build (the Node addon adds some of futures-util's), so built alone this
    # crate would rebuild half the tree (3 minutes); built with them, only it compiles (20 s).
    shipped = ["-p", "netget-node", "-p", "netget-core", "--lib", "--bin", "netget"]
    subprocess.run(
        ["cargo", "build", "--locked", "--profile", profile, *shipped]
        + ["-p", "netget-hotpaths", "--bin", "netget-hotpaths"],
        cwd=ROOT,
        check=True,
    )
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return target / ("debug" if profile == "dev" else profile) / "netget-hotpaths"


def instructions(binary: Path, path: str, n: int) -> int:
    """Ir of one run of `path` at `n` iterations, every thread counted."""
    out = OUT_DIR / f"{path.replace('/', '.')}.{n}.out"
    subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            str(binary),
            path,
            str(n),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    totals = re.search(r"^(?:totals|summary): (\d+)", out.read_text(), re.MULTILINE)
    if totals is None:
        raise SystemExit(f"callgrind: no totals in {out}")
    return int(totals.group(1))


def measure(binary: Path, jobs: int) -> dict[str, float]:
    """Instructions per operation of every path, runs spread over `jobs` processes."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    listed = subprocess.run([str(binary), "list"], check=True, capture_output=True, text=True)
    paths = listed.stdout.split()
    unknown = [p for p in paths if p not in ITERATIONS]
    if unknown:
        raise SystemExit(f"callgrind.py: no iteration count for {', '.join(unknown)}")
    # The 2N runs first, so that the pool does not end on a long run alone.
    runs = [(p, k * ITERATIONS[p]) for k in (2, 1) for p in paths]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        counts = dict(zip(runs, pool.map(lambda r: instructions(binary, *r), runs)))
    return {
        p: (counts[(p, 2 * ITERATIONS[p])] - counts[(p, ITERATIONS[p])]) / ITERATIONS[p]
        for p in paths
    }


def toolchain() -> dict[str, str]:
    """What the counts depend on besides the code: the compiler and valgrind."""
    version = [["rustc", "-V"], ["valgrind", "--version"]]
    return {c[0]: subprocess.run(c, capture_output=True, text=True).stdout.strip() for c in version}


def write(file: Path, per_op: dict[str, float]) -> None:
    document = {
        "what": "instructions (callgrind Ir) per operation of each hot path; bench/callgrind.py",
        "measured_with": toolchain(),
        "ir_per_op": {p: round(v, 1) for p, v in per_op.items()},
    }
    file.write_text(json.dumps(document, indent=2) + "\n")


def read(file: Path) -> dict[str, float]:
    return {p: float(v) for p, v in json.loads(file.read_text())["ir_per_op"].items()}


def same_toolchain(file: Path) -> None:
    """Says so when the baseline was measured with another compiler or valgrind: a new rustc
    moves counts by itself (inlining, std), which is a reason to --update, not a regression."""
    then = json.loads(file.read_text()).get("measured_with", {})
    now = toolchain()
    for tool in now:
        if then.get(tool) and then[tool] != now[tool]:
            print(f"note: the baseline was measured with {then[tool]}, this is {now[tool]}")


def compare(baseline: dict[str, float], now: dict[str, float], margin: float) -> int:
    """Prints the table; returns 1 when a path grew by more than `margin`, else 0."""
    print(f"{'path':<32} {'baseline':>12} {'now':>12} {'change':>8}")
    regressed, cheaper, unmatched = [], [], []
    for path in list(baseline) + [p for p in now if p not in baseline]:
        if path not in now or path not in baseline:
            unmatched.append(path)
            print(f"{path:<32} {baseline.get(path, '-'):>12} {now.get(path, '-'):>12} {'':>8}")
            continue
        base, cur = baseline[path], now[path]
        change = (cur - base) / base
        mark = ""
        if cur > base * (1 + margin):
            regressed.append(path)
            mark = "  REGRESSION"
        elif cur < base * (1 - margin):
            cheaper.append(path)
            mark = "  cheaper"
        print(f"{path:<32} {base:>12.1f} {cur:>12.1f} {change:>+8.2%}{mark}")
    print(f"margin: {margin:.0%} of the baseline")
    if unmatched:
        print(f"not in both baseline and measurement: {', '.join(unmatched)} (run --update)")
    if cheaper:
        print(
            f"cheaper by more than the margin: {', '.join(cheaper)}; if intended, run "
            "bench/callgrind.py --update and commit bench/callgrind-baseline.json"
        )
    if regressed:
        print(
            f"instruction-count regression (more than {margin:.0%}): {', '.join(regressed)}",
            file=sys.stderr,
        )
        return 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--update", action="store_true", help="write the baseline from this measurement"
    )
    parser.add_argument(
        "--compare",
        nargs=2,
        type=Path,
        metavar=("BASELINE", "CURRENT"),
        help="compare two files, measure nothing",
    )
    parser.add_argument("--out", type=Path, help="also write the measurement to this file")
    parser.add_argument("--baseline", type=Path, default=BASELINE)
    parser.add_argument("--margin", type=float, default=MARGIN)
    parser.add_argument(
        "--profile", default="dist", help="cargo profile (dist: what make dist built)"
    )
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    if args.compare:
        return compare(read(args.compare[0]), read(args.compare[1]), args.margin)

    started = time.monotonic()
    binary = build(args.profile)
    built = time.monotonic()
    per_op = measure(binary, args.jobs)
    print(
        f"callgrind: built in {built - started:.0f} s, measured in {time.monotonic() - built:.0f} s"
    )
    if args.out:
        write(args.out, per_op)
    if args.update:
        # The table against the old baseline says what the update changes.
        if args.baseline.exists():
            compare(read(args.baseline), per_op, args.margin)
        write(args.baseline, per_op)
        print(f"baseline written: {args.baseline}")
        return 0
    if not args.baseline.exists():
        print(f"no baseline at {args.baseline}: run bench/callgrind.py --update", file=sys.stderr)
        return 1
    same_toolchain(args.baseline)
    return compare(read(args.baseline), per_op, args.margin)


if __name__ == "__main__":
    sys.exit(main())
