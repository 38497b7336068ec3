#!/usr/bin/env bash
# Installs what the VS Code end-to-end test needs, idempotently, at pinned versions:
#   - Node 24 (npm package `node`, e2e/node/package-lock.json): code-server requires it;
#   - code-server (VS Code in a browser) and playwright-core (e2e/package-lock.json);
#   - code-server's own VS Code dependencies (lib/vscode/npm-shrinkwrap.json, shipped in the
#     code-server package), installed the way its postinstall.sh does but without install
#     scripts: their native modules (terminal, file watcher, kerberos, ...) need system
#     headers and are not used by the test; code-server serves without them;
#   - Chromium from the system's package manager (Debian: `apt-get install chromium`), since
#     playwright's own browser download needs hosts this environment cannot reach.
# Usage: install.sh DIR. Prints the lines `node=PATH`, `code_server=PATH`, `chromium=PATH`.
# A re-run with unchanged pins finds DIR/.installed and does nothing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dir="$1"
export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false

stamp="$(cat "$here/install.sh" "$here/package.json" "$here/package-lock.json" "$here/node/package.json" \
  "$here/node/package-lock.json" | sha256sum | cut -c1-16)"
node="$dir/node/node_modules/node/bin/node"
code_server="$dir/node_modules/code-server/out/node/entry.js"

if [ "$(cat "$dir/.installed" 2>/dev/null)" != "$stamp" ]; then
  echo "==> installing Node 24, code-server and playwright-core into $dir (first run: a few minutes)" >&2
  t0=$(date +%s)
  rm -rf "$dir"
  mkdir -p "$dir/node"
  log="$dir/install.log"
  run() { # dir, command...
    local d="$1"; shift
    if ! (cd "$d" && "$@") >>"$log" 2>&1; then
      tail -40 "$log" >&2
      echo "FAIL: $* (in $d; full log: $log)" >&2
      exit 1
    fi
  }
  cp "$here/node/package.json" "$here/node/package-lock.json" "$dir/node/"
  run "$dir/node" npm ci --no-audit --no-fund
  [ -x "$node" ] || { echo "FAIL: no Node binary at $node" >&2; exit 1; }
  # From here on npm runs on Node 24 (code-server checks the Node version npm runs on).
  export PATH="$(dirname "$node"):$PATH"
  cp "$here/package.json" "$here/package-lock.json" "$dir/"
  run "$dir" npm ci --ignore-scripts --no-audit --no-fund
  run "$dir/node_modules/code-server/lib/vscode" npm install --omit=dev --ignore-scripts --no-audit --no-fund
  run "$dir/node_modules/code-server/lib/vscode/extensions" npm install --omit=dev --ignore-scripts --no-audit --no-fund
  echo "$stamp" >"$dir/.installed"
  echo "==> installed in $(( $(date +%s) - t0 )) s" >&2
fi
[ -f "$code_server" ] || { echo "FAIL: no code-server at $code_server" >&2; exit 1; }

chromium="${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}"
if [ -z "$chromium" ]; then
  echo "==> installing Chromium (apt-get install chromium)" >&2
  sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo -n)
  if ! { "${sudo[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq chromium; } >"$dir/apt.log" 2>&1; then
    tail -20 "$dir/apt.log" >&2
    echo "FAIL: could not install Chromium; install it (Debian: apt-get install chromium) or set CHROMIUM=/path/to/chromium" >&2
    exit 1
  fi
  chromium="$(command -v chromium)"
fi

echo "node=$node"
echo "code_server=$code_server"
echo "chromium=$chromium"
