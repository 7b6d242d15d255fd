#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60; `make fuzz` runs 600), from the committed
# corpus. New inputs go to target/fuzz-corpus/<target> and findings to
# target/fuzz-artifacts/<target>, so the checkout stays as it was; see fuzz/README.md for what to
# do with either. Exits non-zero on the first target that finds something.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
# netget's own code is safe Rust, so the short run goes without a sanitizer (a build of a few
# minutes, and more executions per second); SANITIZER=address (what `make fuzz` uses) also
# catches memory errors in the dependencies' unsafe code.
sanitizer="${SANITIZER:-none}"
targets=(ws_frame handshake registration config store_record replica)
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --version 0.13.2
# libFuzzer's instrumentation needs nightly flags: the nightly toolchain where there is one,
# else the stable one told to accept them.
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  fuzz=(cargo +nightly fuzz)
else
  export RUSTC_BOOTSTRAP=1
  fuzz=(cargo fuzz)
fi
"${fuzz[@]}" build -O -s "$sanitizer"
# A new finding fails the run only with STRICT=1 (`make fuzz`): in `make test` each run explores
# afresh, so a finding there is reported loudly and kept, while what gates the tests is the replay
# of the corpus and of every committed regression (core/tests/fuzz_corpus.rs).
found=0
for t in "${targets[@]}"; do
  scratch="../target/fuzz-corpus/$t"
  artifacts="../target/fuzz-artifacts/$t/"
  mkdir -p "$scratch" "$artifacts"
  echo "fuzz: $t for ${seconds}s"
  # -max_len: a frame or body is at most 64 KiB by the protocol; 16 KiB keeps the search deep.
  # timeout: twice the run, so a hang is a failure rather than a stuck CI.
  if ! timeout --kill-after=10 "$((seconds * 2 + 60))" "${fuzz[@]}" run -O -s "$sanitizer" "$t" "$scratch" "corpus/$t" -- \
      -max_total_time="$seconds" -max_len=16384 -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="$artifacts" -print_final_stats=1 > "../target/fuzz-$t.log" 2>&1; then
    tail -n 60 "../target/fuzz-$t.log" >&2
    echo "fuzz: $t FOUND SOMETHING: the input is in $artifacts (see fuzz/README.md)" >&2
    found=$((found + 1))
  fi
  grep -E '^stat::number_of_executed_units|^stat::new_units_added' "../target/fuzz-$t.log" | tr '\n' ' '
  echo
done
if [ "$found" -gt 0 ]; then
  echo "fuzz: $found target(s) found something; see above" >&2
  if [ "${STRICT:-0}" = 1 ]; then
    exit 1
  fi
fi
