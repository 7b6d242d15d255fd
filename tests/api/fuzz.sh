#!/usr/bin/env bash
# The HTTP API fuzzed by a third-party tool, schemathesis, from the registry's own OpenAPI
# document (/v1/openapi.json), every check on: no 5xx, no answer outside the document, no
# schema-valid request refused, no schema-violating one accepted, no answer slower than 5 s. Then
# the registry must still be up and healthy. Bounded: a fixed number of examples per operation.
# (The WebSocket endpoint is left out: its protocol is not HTTP's, see PROTOCOL.md.)
#
#   tests/api/fuzz.sh            EXAMPLES=1000 tests/api/fuzz.sh   (a longer run)
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
netget=${NETGET:-$root/target/dist/netget}
schemathesis=${SCHEMATHESIS:-$root/.venv/bin/schemathesis}
work=$(mktemp -d)
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Blocking queries of the Consul-compatible API wait for a change up to their `wait`: capped at
# 1 s here, so that one the fuzzer happens to send on the current index stays within the 5 s.
printf '[limits]\nmax_blocking_wait = "1s"\n' >"$work/netget.toml"
"$netget" registry --listen 127.0.0.1:0 --data "$work/data" --config "$work/netget.toml" >"$work/registry.log" 2>&1 &
pid=$!
url=""
for _ in $(seq 1 100); do
  url=$(grep -o -m1 'http://127\.0\.0\.1:[0-9]*' "$work/registry.log" || true)
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { cat "$work/registry.log"; echo "FAIL: the registry did not start" >&2; exit 1; }

# From the scratch folder: schemathesis keeps its cache (.schemathesis/) in the current one.
cd "$work"
timeout 900 "$schemathesis" run "$url/v1/openapi.json" \
  --checks all \
  --max-examples "${EXAMPLES:-200}" \
  --request-timeout 5 \
  --max-response-time 5 \
  --exclude-path /v1/ws \
  --no-color

kill -0 "$pid" 2>/dev/null || { cat "$work/registry.log"; echo "FAIL: the registry died" >&2; exit 1; }
health=$(curl -sf "$url/health") || { echo "FAIL: /health does not answer after the fuzzing" >&2; exit 1; }
grep -q '"status":"passing"' <<<"$health" || { echo "FAIL: /health says $health" >&2; exit 1; }
echo "api fuzz: every check passed; the registry is up: $health"
