#!/usr/bin/env bash
# One command: set everything up, then run the simulated demo headless (summary + video).
# Extra arguments go to `vla-stack demo` (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/vla-stack demo "$@"
