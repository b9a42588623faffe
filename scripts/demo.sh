#!/usr/bin/env bash
# One command: set everything up, then run "bring my cup to the tray" on the whole simulated stack
# headless (per-episode table, outputs/demo/demo.mp4, demo.mcap, summary.json; about 2 min per episode
# on a 2-core machine).
# Extra arguments go to `vla-stack demo` (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/vla-stack demo "$@"
