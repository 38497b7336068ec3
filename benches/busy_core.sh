#!/usr/bin/env bash
# Keep one core busy (a stand-in for a compiler running while the user
# types), run the given command, then stop the busy loop, also on failure.
#   benches/busy_core.sh cargo bench --bench replay
set -euo pipefail
( while :; do :; done ) &
busy=$!
trap 'kill $busy 2>/dev/null || true' EXIT
"$@"
