#!/usr/bin/env bash
# Fetch a model from models/manifest.toml (default: the default model).
# Usage: models/fetch.sh [NAME]    (needs target/release/slm-ls built)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
exec "$root/target/release/slm-ls" models fetch "$@"
