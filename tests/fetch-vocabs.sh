#!/usr/bin/env bash
# Real tokenizer vocabularies (vocab-only GGUFs) for the FIM prompt tests.
# They ship in the llama-cpp-python sdist on PyPI (vendor/llama.cpp/models/);
# we extract only the few small files the tests use into target/vocabs/.
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
echo "==> fetching tokenizer vocabularies (llama-cpp-python sdist from PyPI)"
python3 -m pip download --quiet --no-deps --no-binary :all: llama-cpp-python==0.3.36 -d "$tmp"
pattern=()
for v in "${want[@]}"; do pattern+=("*/vendor/llama.cpp/models/ggml-vocab-$v.gguf"); done
tar xzf "$tmp"/llama_cpp_python-*.tar.gz -C "$tmp" --wildcards "${pattern[@]}"
find "$tmp" -name 'ggml-vocab-*.gguf' -exec cp {} "$dest/" \;
ls -la "$dest"
