#!/usr/bin/env bash
# One command: set everything up, then run the whole test suite (unit + real ROS 2 processes).
# Long benchmarks/training are marked `slow` and excluded; run them with: scripts/test.sh -m slow
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HOME="${HOME:-$(pwd)}"
exec .venv/bin/python -m pytest -ra --durations=15 "$@"
