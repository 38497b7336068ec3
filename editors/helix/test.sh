#!/usr/bin/env bash
# Helix config check, run by tests/run.sh (the completion items Helix shows are covered by
# tests/helix_completion.rs, run by `cargo test`):
#   - the README's install one-liner, as written there, works on an empty HOME, twice (the
#     second run changes nothing), and next to an existing languages.toml;
#   - languages.toml parses, every [[language]] lists slm-ls, the server entry is complete;
#   - the real server accepts [language-server.slm-ls.config] as initializationOptions and
#     as workspace/didChangeConfiguration without an "invalid slm-ls settings" message;
#   - if `hx` is installed, `hx --health <lang>` with this file lists slm-ls.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${SLM_LS_BIN:-$root/target/release/slm-ls}"
if [ ! -x "$bin" ]; then
  echo "==> building slm-ls (release)"
  (cd "$root" && cargo build --release --locked)
fi

echo "==> helix: the README's install one-liner on an empty HOME, twice"
# The line under the `install-one-liner` marker, exactly as users copy it.
oneliner="$(awk '/install-one-liner/ { found = 1; next } found && /^```sh/ { getline; print; exit }' "$here/README.md")"
[ -n "$oneliner" ] || { echo "FAIL: no install one-liner found in editors/helix/README.md" >&2; exit 1; }
fresh="$(mktemp -d)"
trap 'rm -rf "$fresh"' EXIT
# A checkout at ~/slm-ls, as the README assumes: this repository's snippet and binary.
mkdir -p "$fresh/home/slm-ls/editors/helix" "$fresh/home/slm-ls/target/release"
cp "$here/languages.toml" "$fresh/home/slm-ls/editors/helix/"
ln -s "$bin" "$fresh/home/slm-ls/target/release/slm-ls"
for run in 1 2; do
  HOME="$fresh/home" bash -euo pipefail -c "$oneliner" || { echo "FAIL: the one-liner failed (run $run) on a fresh HOME" >&2; exit 1; }
done
# And where the user already has a languages.toml (no newline at its end).
mkdir -p "$fresh/home2/.config/helix"
cp -r "$fresh/home/slm-ls" "$fresh/home2/slm-ls"
printf '[[language]]\nname = "nix"\nauto-format = true' > "$fresh/home2/.config/helix/languages.toml"
HOME="$fresh/home2" bash -euo pipefail -c "$oneliner" || { echo "FAIL: the one-liner failed next to an existing languages.toml" >&2; exit 1; }
timeout 60 python3 - "$fresh" <<'PY'
import os, subprocess, sys, tomllib
fresh = sys.argv[1]
for home, extra in (("home", None), ("home2", "nix")):
    path = os.path.join(fresh, home, ".config/helix/languages.toml")
    text = open(path).read()
    assert text.count("[language-server.slm-ls]") == 1, f"FAIL: {home}: the snippet was appended {text.count('[language-server.slm-ls]')} times"
    cfg = tomllib.loads(text)  # a table defined twice ("duplicate key") raises here
    assert cfg["language-server"]["slm-ls"]["command"] == "slm-ls", cfg
    names = [l["name"] for l in cfg["language"]]
    assert "python" in names, names
    if extra:
        assert extra in names, f"FAIL: {home}: the user's own entries are kept: {names}"
    link = os.path.join(fresh, home, ".local/bin/slm-ls")
    out = subprocess.run([link, "--version"], capture_output=True, text=True, timeout=20)
    assert out.returncode == 0 and out.stdout.startswith("slm-ls "), out
print("install one-liner ok: fresh HOME twice, existing languages.toml kept")
PY

echo "==> helix: languages.toml against the real server"
timeout 60 python3 - "$here/languages.toml" "$bin" <<'PY'
import json, subprocess, sys, tomllib

toml_path, binary = sys.argv[1], sys.argv[2]
cfg = tomllib.load(open(toml_path, "rb"))
server = cfg["language-server"]["slm-ls"]
assert server["command"] == "slm-ls", server
langs = cfg["language"]
assert len(langs) >= 8, "snippet covers the common languages"
for lang in langs:
    ls = lang["language-servers"]
    assert "slm-ls" in ls and len(ls) >= 2, f"{lang['name']}: slm-ls next to the usual servers: {ls}"
settings = server["config"]

p = subprocess.Popen([binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                     env={"RUST_LOG": "warn", "PATH": "/usr/bin:/bin"})
def send(msg):
    body = json.dumps(msg).encode()
    p.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    p.stdin.flush()
def recv():
    n = None
    while True:
        line = p.stdout.readline()
        if not line:
            raise SystemExit("FAIL: the server closed its output")
        line = line.strip()
        if not line:
            break
        if line.lower().startswith(b"content-length:"):
            n = int(line.split(b":")[1])
    return json.loads(p.stdout.read(n))
def until(pred):
    while True:
        m = recv()
        if "method" in m:
            seen.append(m)
        if pred(m):
            return m
seen = []
send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "processId": None, "rootUri": None, "initializationOptions": settings,
    "capabilities": {"general": {"positionEncodings": ["utf-8", "utf-32", "utf-16"]}}}})
r = until(lambda m: m.get("id") == 1)
assert r["result"]["capabilities"]["positionEncoding"] == "utf-8", r
send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
send({"jsonrpc": "2.0", "method": "workspace/didChangeConfiguration", "params": {"settings": settings}})
send({"jsonrpc": "2.0", "id": 2, "method": "shutdown", "params": None})
until(lambda m: m.get("id") == 2)
send({"jsonrpc": "2.0", "method": "exit", "params": None})
p.wait(timeout=20)
log = p.stderr.read().decode()
msgs = [m["params"]["message"] for m in seen if m.get("method") in ("window/showMessage", "window/logMessage")]
bad = [m for m in msgs + log.splitlines() if "invalid slm-ls settings" in m]
assert not bad, f"FAIL: the server rejected the languages.toml config: {bad}"
print(f"helix config ok: {len(langs)} languages, settings accepted: {json.dumps(settings)}")
PY

if command -v hx >/dev/null 2>&1; then
  echo "==> helix: hx --health with this languages.toml"
  cfg="$(mktemp -d)"
  mkdir -p "$cfg/helix"
  cp "$here/languages.toml" "$cfg/helix/languages.toml"
  PATH="$(dirname "$bin"):$PATH" XDG_CONFIG_HOME="$cfg" hx --health python | tee "$cfg/health.txt"
  grep -q "slm-ls" "$cfg/health.txt" || { echo "FAIL: hx --health python does not list slm-ls" >&2; exit 1; }
  rm -rf "$cfg"
else
  echo "==> helix: hx not installed; skipping the hx --health check"
fi
echo "==> helix: all passed"
