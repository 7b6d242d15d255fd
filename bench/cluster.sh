#!/usr/bin/env bash
# A cluster of three netget registries against a 3-member etcd cluster, side by side on this
# machine: installs etcd if needed, builds release, runs `netget-vs-etcd cluster` (a few
# minutes on 2 cores) and prints one table. A benchmark run by hand, not part of CI. Extra
# arguments go to it, e.g.  bench/cluster.sh --join-instances 50000
set -euo pipefail
cd "$(dirname "$0")/.."

. bench/deps.sh

cargo build --release -p netget-core -p netget-bench

# 100k sessions' worth of instances over a few connections, and 1,000 failing-over nodes.
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge 20000 ] || ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

./target/release/netget-vs-etcd cluster --out target/bench/cluster.json "$@"
