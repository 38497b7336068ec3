#!/usr/bin/env bash
# The whole test suite: Rust unit + end-to-end tests (real binary, real
# default model, LSP over stdio) and the editor clients' tests.
# Run ./setup.sh once first (system packages, build, model).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

tests/fetch-vocabs.sh

# Release profile: the same llama.cpp build as ./setup.sh (it is built once).
echo "==> cargo test (release)"
cargo test --release --locked --workspace

for t in editors/*/test.sh; do
  [ -x "$t" ] || continue
  echo "==> $t"
  "$t"
done
echo "==> all tests passed"
