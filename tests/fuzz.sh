#!/usr/bin/env bash
# cargo-fuzz (libFuzzer + AddressSanitizer) over the stdin framing decoder
# and document edit application (fuzz/). Works on stable rustc through
# RUSTC_BOOTSTRAP=1 (the sanitizer runtime ships with stable's rust-std).
#
#   tests/fuzz.sh            # 60 s per target (the CI-sized run)
#   tests/fuzz.sh 3600       # the longer run: an hour per target
#
# Crashes are saved under fuzz/artifacts/<target>/ and fail the script;
# replay one with: RUSTC_BOOTSTRAP=1 cargo fuzz run --features libfuzzer -O <target> <file>
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-60}"
export RUSTC_BOOTSTRAP=1
if ! command -v cargo-fuzz >/dev/null; then
  echo "==> installing cargo-fuzz"
  cargo install cargo-fuzz --locked --quiet
fi
echo "==> cargo fuzz build (the first build compiles llama.cpp: a few minutes)"
cargo fuzz build --features libfuzzer -O
for target in framing edits; do
  echo "==> cargo fuzz run $target (${secs}s)"
  mkdir -p "corpus/$target"
  cargo fuzz run --features libfuzzer -O "$target" "corpus/$target" -- \
    -max_total_time="$secs" -max_len=4096 -print_final_stats=1 2>&1 |
    grep -E "^(Done|stat::number_of_executed_units|==[0-9]+==ERROR|SUMMARY|thread .* panicked|artifact_prefix|Test unit written)" || true
  # cargo fuzz exits non-zero on a crash, but the pipe hides it: check.
  if ls "artifacts/$target"/crash-* "artifacts/$target"/oom-* "artifacts/$target"/timeout-* >/dev/null 2>&1; then
    echo "fuzz target $target found a crash: see fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
echo "==> fuzzing found no crash"
