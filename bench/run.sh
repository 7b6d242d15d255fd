#!/usr/bin/env bash
# netget vs etcd, side by side on this machine: installs what the comparison needs, builds
# release, runs it (about 5 minutes on 2 cores) and draws bench/results.png.
# A benchmark run by hand, not part of CI. Extra arguments go to netget-vs-etcd, e.g.
#   bench/run.sh --killed 2000
set -euo pipefail
cd "$(dirname "$0")/.."

. bench/deps.sh

VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c 'import matplotlib' 2>/dev/null || "$VENV/bin/pip" install -q matplotlib

cargo build --release -p netget-core -p netget-bench

# 10k sessions held by one process, and as many accepted by the registry.
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge 20000 ] || ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

./target/release/netget-vs-etcd --out target/bench/results.json "$@"
"$VENV/bin/python" bench/plot.py target/bench/results.json bench/results.png
