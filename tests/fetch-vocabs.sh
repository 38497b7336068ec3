#!/usr/bin/env bash
# Real tokenizer vocabularies (vocab-only GGUFs) for the FIM prompt tests.
# They ship in the llama-cpp-python sdist on PyPI (vendor/llama.cpp/models/);
# we extract only the few small files the tests use into target/vocabs/.
#
# The sdist (77 MB) is downloaded as a file, sha256-pinned, through PyPI's
# simple index: `pip download --no-binary :all:` would prepare the package's
# metadata, which builds its build dependencies (ninja, cmake) from source
# and cost ~3 minutes. Honours PIP_INDEX_URL. Takes ~10 s here.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=target/vocabs
want=(starcoder refact deepseek-coder qwen2 llama-spm gpt-2)
have=1
for v in "${want[@]}"; do [ -f "$dest/ggml-vocab-$v.gguf" ] || have=0; done
[ "$have" = 1 ] && exit 0
mkdir -p "$dest"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
echo "==> fetching tokenizer vocabularies (llama-cpp-python 0.3.36 sdist from PyPI, 77 MB)"
python3 - "$tmp/sdist.tar.gz" <<'PY'
import hashlib, json, os, sys, urllib.request
name, version = "llama-cpp-python", "0.3.36"
want_file = f"llama_cpp_python-{version}.tar.gz"
want_sha = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
req = urllib.request.Request(f"{index}/{name}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
files = json.load(urllib.request.urlopen(req, timeout=60))["files"]
url = next((f["url"] for f in files if f["filename"] == want_file), None)
if url is None:
    sys.exit(f"{want_file} is not on {index}")
h = hashlib.sha256()
with urllib.request.urlopen(url, timeout=120) as r, open(sys.argv[1], "wb") as out:
    while chunk := r.read(1 << 20):
        h.update(chunk)
        out.write(chunk)
if h.hexdigest() != want_sha:
    sys.exit(f"sha256 mismatch for {want_file}: {h.hexdigest()}")
PY
pattern=()
for v in "${want[@]}"; do pattern+=("*/vendor/llama.cpp/models/ggml-vocab-$v.gguf"); done
tar xzf "$tmp/sdist.tar.gz" -C "$tmp" --wildcards "${pattern[@]}"
find "$tmp" -name 'ggml-vocab-*.gguf' -exec cp {} "$dest/" \;
ls -la "$dest"
echo "    (vocabularies: $(( $(date +%s) - start )) s)"
