#!/usr/bin/env bash
# VS Code extension tests, run by tests/run.sh after `cargo test`:
#   npm ci (from package-lock.json) -> type-check + strict-compiler lint -> settings in sync with
#   package.json and with the server's settings structs -> unit tests -> integration test against
#   the real slm-ls binary and default model (from Node) -> `vsce package` to a .vsix, whose
#   contents are checked (entry point and runtime deps load) -> end to end in VS Code: the .vsix
#   with the server bundled, installed into code-server and driven through Chromium
#   (e2e/e2e.mjs; e2e/install.sh installs Node 24, code-server, playwright-core and Chromium on
#   the first run, a few minutes; later runs reuse them).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$here"
export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false

echo "==> npm ci"
if ! npm ci --no-audit --no-fund --loglevel=error >npm-ci.log 2>&1; then
  cat npm-ci.log >&2
  echo "FAIL: npm ci" >&2
  exit 1
fi
rm -f npm-ci.log

echo "==> type-check and lint (tsc --strict, noUnused*, noImplicitReturns, noUncheckedIndexedAccess, ...)"
rm -rf out
node_modules/.bin/tsc -p .
node scripts/gen-config.js --check

echo "==> unit tests"
node --test out/test/unit/

bin="${SLM_LS_BIN:-$root/target/release/slm-ls}"
if [ ! -x "$bin" ]; then
  echo "==> building slm-ls (release)"
  (cd "$root" && cargo build --release --locked)
fi
model="$("$bin" models path)"
[ -f "$model" ] || { echo "FAIL: the default model is missing at $model; run ./setup.sh" >&2; exit 1; }

echo "==> integration test (real slm-ls, default model)"
SLM_LS_BIN="$bin" timeout 300 node --test --test-timeout=240000 out/test/integration/

echo "==> vsce package"
rm -f slm-ls.vsix
node_modules/.bin/vsce package --skip-license -o slm-ls.vsix 2>&1 | grep -Ev 'Unknown user config|bundle your extension' || true
[ -s slm-ls.vsix ] || { echo "FAIL: no .vsix produced" >&2; exit 1; }

echo "==> checking the .vsix"
tmp="$(mktemp -d)"
pidfile="$tmp/e2e.pids"
cleanup() {
  # Process groups the end-to-end test started (code-server, Chromium, the fake OpenAI server),
  # in case it was killed before it could stop them itself.
  if [ -f "$pidfile" ]; then
    while read -r pgid; do kill -TERM -- "-$pgid" 2>/dev/null || true; done <"$pidfile"
    sleep 1
    while read -r pgid; do kill -KILL -- "-$pgid" 2>/dev/null || true; done <"$pidfile"
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
python3 - "$here/slm-ls.vsix" "$tmp" <<'PY'
import json, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
names = set(z.namelist())
pkg = json.loads(z.read("extension/package.json"))
main = "extension/" + pkg["main"].lstrip("./")
assert main in names, f"entry point {main} missing from the vsix"
for dep in ("vscode-languageclient", "vscode-languageserver-protocol", "vscode-jsonrpc"):
    assert any(n.startswith(f"extension/node_modules/{dep}/") for n in names), f"{dep} missing"
for bad in ("extension/src/", "extension/test/", "extension/out/test/", "extension/node_modules/typescript/"):
    assert not any(n.startswith(bad) for n in names), f"{bad} should not be packaged"
props = pkg["contributes"]["configuration"]["properties"]
assert len(props) >= 30, len(props)
z.extractall(sys.argv[2])
print(f"vsix ok: {len(names)} files, {len(props)} settings")
PY
# The packaged entry point loads with only what the .vsix carries (a stub stands in for the
# `vscode` module, which only VS Code provides).
mkdir -p "$tmp/stub/node_modules/vscode"
cat > "$tmp/stub/node_modules/vscode/index.js" <<'JS'
const handler = { get: (t, k) => (k === '__esModule' ? true : k in t ? t[k] : new Proxy(function () {}, handler)) };
module.exports = new Proxy(function () {}, handler);
JS
NODE_PATH="$tmp/stub/node_modules" node -e "
const ext = require('$tmp/extension/out/src/extension.js');
if (typeof ext.activate !== 'function' || typeof ext.deactivate !== 'function') { console.error('FAIL: activate/deactivate not exported'); process.exit(1); }
console.log('packaged extension loads: activate/deactivate exported');
"
echo "==> vsce package with the server bundled (bin/<platform>-<arch>/slm-ls)"
SLM_LS_BIN="$bin" node scripts/bundle-binary.js
node_modules/.bin/vsce package --skip-license -o "$tmp/bundled.vsix" >/dev/null 2>&1 || { echo "FAIL: bundled vsce package" >&2; exit 1; }
rm -rf bin
mkdir -p "$tmp/bundled"
(cd "$tmp/bundled" && python3 -c "import zipfile,sys; zipfile.ZipFile(sys.argv[1]).extractall('.')" "$tmp/bundled.vsix")
node -e "
const { fixBundledPermissions, resolveServer } = require('$here/out/src/serverPath.js');
fixBundledPermissions('$tmp/bundled/extension', process.platform, process.arch);
const cp = require('child_process');
const r = resolveServer({ configured: '', extensionPath: '$tmp/bundled/extension', platform: process.platform, arch: process.arch, envPath: '', home: '/' });
if (r.source !== 'bundled') { console.error('FAIL: bundled binary not found', r); process.exit(1); }
const v = cp.execFileSync(r.command, ['--version']).toString().trim();
console.log('bundled server found and runs: ' + r.command.replace('$tmp/', '') + ' -> ' + v);
"

echo "==> end to end in VS Code (code-server + Chromium): the bundled .vsix, real slm-ls, default model"
e2e_dir="${SLM_EDITOR_CACHE:-$root/.ci/cache}/vscode"
tools="$("$here/e2e/install.sh" "$e2e_dir")"
node24="$(sed -n 's/^node=//p' <<<"$tools")"
artifacts="$here/test-results"
rm -rf "$artifacts"
if ! E2E_DIR="$e2e_dir" CHROMIUM="$(sed -n 's/^chromium=//p' <<<"$tools")" SLM_LS_VSIX="$tmp/bundled.vsix" \
    SLM_LS_MODEL_PATH="$model" FAKE_OPENAI="$root/editors/tests/fake_openai.py" ARTIFACTS="$artifacts" \
    E2E_PIDFILE="$pidfile" timeout -k 15 480 "$node24" "$here/e2e/e2e.mjs"; then
  echo "FAIL: VS Code end-to-end test (screenshots in $artifacts)" >&2
  exit 1
fi
echo "==> vscode: all passed"
