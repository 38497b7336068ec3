#!/usr/bin/env bash
# The whole test suite: Rust unit + end-to-end tests (real binary, real
# default model, LSP over stdio) and the editor clients' tests.
# Run ./setup.sh once first (system packages, build, model).
# Each step prints how long it took; one-time installs (vocabularies, editors,
# code-server) are reused by later runs.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

t_all=$(date +%s)
t=$t_all
step_done() { local now; now=$(date +%s); echo "    ($1: $((now - t)) s)"; t=$now; }

tests/fetch-vocabs.sh
step_done "vocabularies"

# The tests expect the manifest's default model, whatever this machine would
# choose (a larger model fetched and measured here becomes the server's
# default: server/src/machine.rs). SLM_LS_MODEL set by the caller wins.
cargo build --release --locked --quiet
SLM_LS_MODEL="${SLM_LS_MODEL:-$(target/release/slm-ls models path --default)}"
export SLM_LS_MODEL

# Release profile: the same llama.cpp build as ./setup.sh (it is built once).
echo "==> cargo test (release)"
# Test binaries run two tests at a time, each with its own server: one
# llama.cpp thread per server keeps them from spinning against each other
# on a 2-core machine (CPU contention made time budgets run out and
# answers come back empty). Those servers need not take turns (that is for
# editor windows sharing all cores; here it left one core idle):
# tests/two_servers.rs turns it back on for its own servers.
SLM_LS_THREADS=1 SLM_LS_TAKE_TURNS=0 cargo test --release --locked --workspace
step_done "cargo test"

for t_sh in editors/*/test.sh; do
  [ -x "$t_sh" ] || continue
  echo "==> $t_sh"
  "$t_sh"
  step_done "$t_sh"
done
echo "==> all tests passed in $(( $(date +%s) - t_all )) s"
