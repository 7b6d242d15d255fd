#!/usr/bin/env bash
# `make dist`: the artifacts that would be uploaded, into dist/, built with the `dist` profile
# (the release build without debug info or symbols):
#   netget-VERSION-cp39-abi3-manylinux_*.whl   the Python wheel (abi3: one wheel for CPython 3.9+)
#   netget-VERSION.tar.gz                      the Python sdist (builds from source where no wheel fits)
#   netget-linux-x64-gnu-VERSION.tgz           the npm platform package (the prebuilt addon)
#   netget-VERSION.tgz                         the npm package `netget` (no install script)
#   netget-VERSION-HOST.tar.gz (+ .sha256)     the `netget` binary, LICENSE and README
# Needs maturin and auditwheel on PATH (`make dist` puts them in .venv), cargo, node and npm.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
host=$(rustc -vV | sed -n 's/^host: //p')
[ "$host" = x86_64-unknown-linux-gnu ] || { echo "dist: only x86_64-unknown-linux-gnu is packaged (this is $host)" >&2; exit 1; }
rm -rf dist && mkdir dist

echo "dist: the Python wheel and sdist"
# `--compatibility pypi` refuses a tag no index accepts; maturin picks the lowest manylinux policy
# the library's symbol versions allow and its auditwheel check verifies it (and that no library
# outside the policy is linked).
maturin build --locked --profile dist --compatibility pypi --auditwheel check --out dist
maturin sdist --out dist
wheel=$(ls dist/netget-*.whl)
auditwheel show "$wheel"

echo "dist: the npm packages and the release binary"
cargo build --locked --profile dist -p netget-node -p netget-core --lib --bin netget
node packaging/npm-pack.js target/dist/libnetget_node.so dist
# The checkout loads the same addon (its own install step then has nothing to build).
cp target/dist/libnetget_node.so bindings-node/netget.linux-x64-gnu.node.tmp
mv bindings-node/netget.linux-x64-gnu.node.tmp bindings-node/netget.linux-x64-gnu.node

name="netget-$version-$host"
mkdir "dist/$name"
cp target/dist/netget LICENSE README.md "dist/$name/"
tar czf "dist/$name.tar.gz" -C dist "$name"
rm -rf "dist/$name" dist/npm
(cd dist && sha256sum "$name.tar.gz" >"$name.tar.gz.sha256")

echo "dist: built"
ls -l dist
