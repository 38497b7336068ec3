#!/usr/bin/env bash
# Update the vendored gitleaks rule catalog (gitleaks.toml + LICENSE-gitleaks)
# and report the rules Rust's `regex` cannot compile.
#
#   update.sh REF [SHA256]                  fetch config/gitleaks.toml and LICENSE
#                                           at REF (a tag or commit) from GitHub
#   update.sh --from-file TOML REF [SHA256] use a file fetched by other means
#
# With SHA256 the catalog must hash to it (pin it in PROVENANCE.md and in
# review). Then the tests that count loaded/skipped rules run once and print
# the loader's report; fix the expectations there if the new catalog is
# accepted.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../../.." && pwd)
upstream=https://raw.githubusercontent.com/gitleaks/gitleaks

die() { echo "update.sh: $*" >&2; exit 2; }

from_file=""
if [ "${1:-}" = "--from-file" ]; then
    from_file=${2:?--from-file needs a path}
    shift 2
fi
ref=${1:?usage: update.sh [--from-file TOML] REF [SHA256]}
want=${2:-}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ -n "$from_file" ]; then
    cp "$from_file" "$tmp/gitleaks.toml"
else
    for f in config/gitleaks.toml LICENSE; do
        if ! curl -fsSL --max-time 30 "$upstream/$ref/$f" -o "$tmp/$(basename "$f")"; then
            die "cannot download $f at $ref from GitHub ($upstream).
This machine may reach only package registries. Fetch config/gitleaks.toml at
$ref elsewhere, check its sha256, and run:
  $0 --from-file PATH/TO/gitleaks.toml $ref SHA256"
        fi
    done
fi

sha=$(sha256sum "$tmp/gitleaks.toml" | cut -d' ' -f1)
echo "gitleaks.toml at $ref: sha256 $sha, $(grep -c '^\[\[rules\]\]' "$tmp/gitleaks.toml") rules"
if [ -n "$want" ] && [ "$sha" != "$want" ]; then
    die "sha256 mismatch: expected $want, got $sha; nothing changed"
fi

cp "$tmp/gitleaks.toml" "$here/gitleaks.toml"
if [ -f "$tmp/LICENSE" ]; then
    cp "$tmp/LICENSE" "$here/LICENSE-gitleaks"
fi
sed -i -e "s/^- upstream commit: .*/- upstream commit: $ref/" \
       -e "s/^- sha256: .*/- sha256: $sha/" \
       -e "s/^- vendored: .*/- vendored: $(date -u +%Y-%m-%d)/" "$here/PROVENANCE.md"

echo "compiling the catalog for Rust's regex (rules it cannot compile are listed as skipped):"
cd "$root"
if ! cargo test --release -p slm-ls --lib remote::secrets::tests::the_vendored_catalog_loads -- --nocapture; then
    echo "update.sh: the catalog loads differently than the tests expect (see the report above:" >&2
    echo "skipped rules are left out at run time, never a panic). Review, then update" >&2
    echo "EXPECTED_SKIPPED in server/src/remote/secrets/mod.rs and run tests/remote_secrets.rs." >&2
    exit 1
fi
echo "done: run cargo test --release -p slm-ls --test remote_secrets next"
