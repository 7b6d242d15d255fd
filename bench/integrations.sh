#!/usr/bin/env bash
# The integrations' figures (BENCHMARKS.md, "DNS and Consul blocking queries"): DNS queries per
# second and latency percentiles, driven by dnsperf (Debian's, the DNS load generator people use)
# against `--dns-listen`; and the wake-up latency of Consul blocking queries (a registration ->
# a client waiting on /v1/health/service woken with it), with a real Consul client library
# (py-consul). A benchmark run by hand, not part of CI; a few tens of seconds on 2 cores.
#
#   bench/integrations.sh            SECONDS_EACH=30 bench/integrations.sh
#   NETGET=target/dist/netget bench/integrations.sh      (a binary already built)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
seconds=${SECONDS_EACH:-10}

command -v dnsperf >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dnsperf; }
netget=${NETGET:-target/release/netget}
[ -n "${NETGET:-}" ] || cargo build --release -p netget-core --bin netget
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -c 'import consul' 2>/dev/null || .venv/bin/pip install -q 'py-consul>=1.8,<2'

work=$(mktemp -d)
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The load tool's limits (no per-address rate limit: one address drives everything here).
printf '[limits]\nrequests_per_second_per_ip = 0\n[dns]\nttl = "5s"\n' >"$work/netget.toml"
"$netget" registry --listen 127.0.0.1:0 --dns-listen 127.0.0.1:0 \
  --data "$work/data" --config "$work/netget.toml" >"$work/out.log" 2>"$work/err.log" &
pid=$!
for _ in $(seq 1 100); do
  grep -q "DNS answering" "$work/out.log" 2>/dev/null && break
  sleep 0.1
done
url=$(grep -o -m1 'http://127\.0\.0\.1:[0-9]*' "$work/out.log")
dns_port=$(grep -o -m1 'answering on 127\.0\.0\.1:[0-9]*' "$work/out.log" | sed 's/.*://')
[ -n "$url" ] && [ -n "$dns_port" ] || { cat "$work/out.log" "$work/err.log"; exit 1; }

# Ten instances of `web`, tagged, over REST.
for i in $(seq 1 10); do
  curl -sf -X PUT "$url/v1/networks/development/services/web/instances/w$i" \
    -d "{\"address\":\"http://10.0.0.$i:8080\",\"tags\":[\"v1\"],\"ttl\":\"10m\"}" >/dev/null
done
printf 'web.development.netget A\n_web._tcp.development.netget SRV\nv1.web.development.netget A\n' >"$work/queries"

echo "== DNS, throughput: dnsperf, 100 queries outstanding, ${seconds}s (A, SRV, tagged A in turn)"
dnsperf -s 127.0.0.1 -p "$dns_port" -d "$work/queries" -l "$seconds" -q 100 -c 4 \
  | grep -E 'Queries sent|Queries completed|Queries lost|Queries per second|Average Latency|Latency StdDev'

echo "== DNS, latency at 10,000 queries/s: dnsperf -v, ${seconds}s"
dnsperf -s 127.0.0.1 -p "$dns_port" -d "$work/queries" -l "$seconds" -Q 10000 -v \
  | awk '$1 == ">" && $2 == "NOERROR" { print $NF }' | sort -g >"$work/lat"
n=$(wc -l <"$work/lat")
pct() { awk -v n="$n" -v p="$1" 'NR == int(n * p) + 1 { printf "%.3f ms", $1 * 1000; exit }' "$work/lat"; }
echo "  answers: $n   p50: $(pct 0.50)   p99: $(pct 0.99)   p99.9: $(pct 0.999)"

echo "== Consul blocking query wake-up: py-consul waiting on /v1/health/service/api, woken by a REST registration"
URL="$url" .venv/bin/python - <<'PYEOF'
import os, statistics, threading, time, urllib.request
import consul

url = os.environ["URL"]
host, port = url.removeprefix("http://").rsplit(":", 1)
c = consul.Consul(host=host, port=int(port))
lat = []
for i in range(200):
    index, _ = c.health.service("api")
    done = threading.Event()
    woke = {}

    def wait() -> None:
        c.health.service("api", index=index, wait="30s")
        woke["at"] = time.perf_counter()
        done.set()

    t = threading.Thread(target=wait)
    t.start()
    # Wait until the query is in (the registry's gauge says so), then change the network.
    for _ in range(1000):
        m = urllib.request.urlopen(f"{url}/metrics").read().decode()
        if "netget_consul_blocking_queries 1" in m:
            break
        time.sleep(0.001)
    req = urllib.request.Request(
        f"{url}/v1/networks/development/services/api/instances/a{i}",
        data=b'{"address":"http://10.1.0.1:80","ttl":"10m"}',
        method="PUT",
    )
    sent = time.perf_counter()
    urllib.request.urlopen(req).read()
    done.wait(30)
    t.join()
    lat.append((woke["at"] - sent) * 1000)
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(len(lat) * p))]
print(f"  rounds: {len(lat)}   p50: {q(0.5):.2f} ms   p99: {q(0.99):.2f} ms   max: {lat[-1]:.2f} ms"
      "   (from sending the PUT to the waiting client having its answer)")
PYEOF
