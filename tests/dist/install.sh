#!/usr/bin/env bash
# The artifacts of `make dist`, installed and run the way users do — with no Rust toolchain on
# PATH: the wheel in a fresh venv, the npm tarballs in a fresh folder, the release binary as the
# registry the other two find each other through. Then the two source paths, where cargo is
# there: the sdist in a fresh venv, and the npm package's fallback where no prebuilt addon is
# installed (and its message where cargo is missing).
#
#   tests/dist/install.sh [DIST_DIR]        (default: dist/)
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
dist=$(cd "${1:-$root/dist}" && pwd)
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -1)
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
# wait_for FILE REGEX SECONDS: until a line of FILE matches (bounded), then prints that line.
wait_for() {
  for _ in $(seq 1 $(($3 * 10))); do
    if grep -E -m1 "$2" "$1" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "--- $1:" >&2; cat "$1" >&2 || true
  fail "no line matching '$2' in $1 within $3 s"
}

# readme_block HEADING LANG OUT: the first LANG code block of README's section HEADING, into OUT.
readme_block() {
  python3 - "$root/README.md" "$1" "$2" "$3" <<'EOF'
import re, sys
readme, heading, lang, out = sys.argv[1:]
section = open(readme).read().split("## " + heading, 1)[1]
open(out, "w").write(re.findall(r"```" + lang + r"\n(.*?)```", section, flags=re.S)[0])
EOF
}

# PATH without any directory that holds cargo or rustc.
bare_path=""
IFS=: read -ra dirs <<<"$PATH"
for d in "${dirs[@]}"; do
  if [ -x "$d/cargo" ] || [ -x "$d/rustc" ]; then continue; fi
  bare_path="${bare_path:+$bare_path:}$d"
done
bare_env=(env PATH="$bare_path" CARGO_HOME=/nonexistent RUSTUP_HOME=/nonexistent)
no_rust() { "${bare_env[@]}" "$@"; }
# Background processes start as plain commands (not through the function, whose subshell would
# be what `$!` names), so that the pid recorded is the process itself and cleanup stops it.
no_rust sh -c 'command -v cargo || command -v rustc' && fail "cargo or rustc is still on the bare PATH"

step "the artifacts of version $version"
wheel=$(ls "$dist"/netget-"$version"-cp39-abi3-manylinux_*_x86_64.whl)
sdist="$dist/netget-$version.tar.gz"
npm_main="$dist/netget-$version.tgz"
npm_platform="$dist/netget-linux-x64-gnu-$version.tgz"
archive="$dist/netget-$version-x86_64-unknown-linux-gnu.tar.gz"
for f in "$wheel" "$sdist" "$npm_main" "$npm_platform" "$archive" "$archive.sha256"; do
  [ -f "$f" ] || fail "missing $f"
  ls -l "$f"
done
(cd "$dist" && sha256sum -c "$(basename "$archive").sha256")
# lists ARCHIVE: its file names (read whole: `grep -q` on a pipe would cut it short under pipefail)
lists() { case "$1" in *.whl) python3 -m zipfile -l "$1" ;; *) tar tzf "$1" ;; esac; }
has() { grep -q -- "$2" <<<"$(lists "$1")"; }
has "$wheel" 'licenses/LICENSE' || fail "the wheel carries no LICENSE"
has "$sdist" "^netget-$version/LICENSE$" || fail "the sdist carries no LICENSE"
has "$npm_main" '^package/LICENSE$' || fail "the npm package carries no LICENSE"
has "$npm_platform" '^package/LICENSE$' || fail "the platform package carries no LICENSE"
has "$archive" "/LICENSE$" || fail "the release archive carries no LICENSE"
has "$npm_main" '\.node$' && fail "the main npm package carries an addon (it belongs in the platform package)"
grep -q '"scripts"' <<<"$(tar xzf "$npm_main" -O package/package.json)" && fail "the published npm package has scripts"

step "the release binary runs a registry"
mkdir -p "$work/bin" && tar xzf "$archive" -C "$work/bin"
netget_bin=$(ls "$work"/bin/*/netget)
[ "$(no_rust "$netget_bin" --version)" = "netget $version" ] || fail "netget --version is not $version"
"${bare_env[@]}" "$netget_bin" registry --listen 127.0.0.1:0 --data "$work/registry-data" >"$work/registry.log" 2>&1 &
pids+=($!)
registry=$(wait_for "$work/registry.log" 'listening on http://' 30 | sed -E 's/.*listening on (http:[^ ]+).*/\1/')
echo "registry at $registry"

step "the wheel in a fresh venv (no cargo, no index: only the wheel itself)"
no_rust python3 -m venv "$work/venv"
no_rust "$work/venv/bin/pip" install -q --no-index "$wheel"
[ "$(no_rust "$work/venv/bin/python" -c 'import netget; print(netget.__version__)')" = "$version" ] \
  || fail "netget.__version__ is not $version"
grep -q 'registry' <<<"$(no_rust "$work/venv/bin/netget" --help)" || fail "netget --help from the wheel"
[ "$(no_rust "$work/venv/bin/netget" --version)" = "netget $version" ] || fail "the wheel's netget --version"
readme_block "Quick start: Python" python "$work/quickstart.py"
mkdir -p "$work/py" && (cd "$work/py" && no_rust timeout 60 "$work/venv/bin/python" "$work/quickstart.py") | tee "$work/py.out"
grep -q "up http://127.0.0.1:8000" "$work/py.out" || fail "the Python quick start"
[ "$(ls "$work/py")" = netget-py-demo ] || fail "the Python quick start wrote more than its data_dir: $(ls "$work/py")"

step "the npm packages in a fresh folder (no cargo; npm runs no install script)"
mkdir -p "$work/app" && cd "$work/app"
no_rust npm init -y >/dev/null
no_rust npm i --no-audit --no-fund "$npm_platform" "$npm_main" express@5 2>&1 | tee "$work/npm.out"
grep -qi 'install script' "$work/npm.out" && fail "npm reported install scripts"
[ "$(node -p "require('netget/package.json').version")" = "$version" ] || fail "the npm package's version"
grep -q 'registry' <<<"$(no_rust npx netget --help)" || fail "npx netget --help"
[ "$(no_rust npx netget --version)" = "netget $version" ] || fail "npx netget --version"
readme_block "Quick start: Node" js "$work/app/quickstart.js"
no_rust timeout 60 node quickstart.js | tee "$work/node.out"
grep -q "up http://127.0.0.1:5432" "$work/node.out" || fail "the Node quick start"
[ -e netget-data ] && fail "the Node quick start wrote ./netget-data"

step "Express, FastAPI-free Python and Node find each other through the release binary"
cat >express-app.js <<'EOF'
const express = require('express');
const { attach } = require('netget/express');
const app = express();
app.get('/hello', (req, res) => res.json({ from: 'express' }));
attach(app, { name: 'catalog', registryNodes: [process.env.REGISTRY] }).listen(0, () => {
  console.log('listening');
});
EOF
"${bare_env[@]}" REGISTRY="$registry" node express-app.js >"$work/express.log" 2>&1 &
pids+=($!)
cat >"$work/orders.py" <<'EOF'
import asyncio, json, os, sys, urllib.request
from netget import Netget

async def main():
    reg = [os.environ["REGISTRY"]]
    async with Netget("service", metadata={"name": "orders", "address": "http://127.0.0.1:9"},
                      registry_nodes=reg) as orders, Netget("client", registry_nodes=reg) as client:
        await orders.register_with_network()
        for _ in range(100):                       # the Express app registers once it listens
            catalog = await client.discover_service_node("catalog")
            if catalog:
                break
            await asyncio.sleep(0.1)
        with urllib.request.urlopen(catalog["address"] + "/hello", timeout=10) as r:
            print("python called catalog:", json.load(r))
        print("ready", flush=True)
        await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline), 60)

asyncio.run(main())
EOF
mkfifo "$work/orders.in"
"${bare_env[@]}" REGISTRY="$registry" "$work/venv/bin/python" "$work/orders.py" <"$work/orders.in" >"$work/orders.log" 2>&1 &
pids+=($!)
exec 3>"$work/orders.in"
wait_for "$work/orders.log" "^ready" 30 >/dev/null
grep -q "python called catalog: {'from': 'express'}" "$work/orders.log" || fail "Python did not reach the Express app"
REGISTRY="$registry" no_rust node -e "
const { Netget } = require('netget');
(async () => {
  const c = new Netget({ nodeType: 'client', registryNodes: [process.env.REGISTRY] });
  const orders = await c.discoverServiceNode('orders');
  console.log('node found orders at', orders && orders.address);
  await c.stop();
})();" | tee "$work/node-client.out"
grep -q "node found orders at http://127.0.0.1:9" "$work/node-client.out" || fail "Node did not find the Python service"
exec 3>&-
cd "$root"

step "the sdist builds from source in a fresh venv where cargo is"
python3 -m venv "$work/sdist-venv"
# The checkout's target dir is shared only as a cache of compiled dependencies (so with the
# profile `make dist` built them with); the sdist's own crates are compiled from its sources.
CARGO_TARGET_DIR="$root/target" MATURIN_PEP517_ARGS="--profile dist" \
  "$work/sdist-venv/bin/pip" install -q "$sdist"
[ "$("$work/sdist-venv/bin/python" -c 'import netget; print(netget.__version__)')" = "$version" ] \
  || fail "the sdist's netget.__version__"

step "npm without the platform package: a clear message without cargo, a build from source with it"
mkdir -p "$work/fallback" && cd "$work/fallback"
no_rust npm init -y >/dev/null
no_rust npm i --no-audit --no-fund --omit=optional "$npm_main" >/dev/null 2>&1
[ -e node_modules/netget-linux-x64-gnu ] && fail "--omit=optional still installed the platform package"
if no_rust node -e "require('netget')" 2>"$work/fallback.err"; then fail "netget loaded with no addon and no cargo"; fi
cat "$work/fallback.err"
grep -q "npm i netget-linux-x64-gnu@$version" "$work/fallback.err" || fail "the message does not name the platform package"
grep -q "cargo is not installed" "$work/fallback.err" || fail "the message does not say cargo is missing"
CARGO_TARGET_DIR="$root/target" node -e "require('netget'); console.log('loaded after a build from source')" | tee "$work/fallback.out"
grep -q "loaded after a build from source" "$work/fallback.out" || fail "the source fallback"
ls node_modules/netget/bindings-node/netget.linux-x64-gnu.node
cd "$root"

# Every background pid is the process itself, not a shell around it (which cleanup would kill,
# leaving the process running).
for p in "${pids[@]}"; do
  [ -e "/proc/$p" ] || continue
  case "$(readlink "/proc/$p/exe")" in
    */bash | */sh | */dash) fail "pid $p is a shell around a process this script started" ;;
  esac
done

echo
echo "dist: every artifact installs and runs (wheel, sdist, npm packages, release binary)"
