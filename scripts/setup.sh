#!/usr/bin/env bash
# Set up vla_stack on a fresh Debian/Ubuntu machine with Python 3.11+: system libraries for
# headless rendering (EGL) and Open3D, a virtual environment in .venv with the pinned ROS 2
# wheels from PyPI and every other dependency, and the package itself (editable).
# Idempotent and quick when nothing changed. No ROS install or sourcing needed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-python3}
VENV=${VLA_STACK_VENV:-$ROOT/.venv}

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# --- system packages (EGL for MuJoCo offscreen rendering, libusb for Open3D) ---------------
SYS_PKGS="libegl1 libgl1 libegl-mesa0 libgl1-mesa-dri libgles2 libusb-1.0-0"
missing=""
for p in $SYS_PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else SUDO="none"; fi
  if [ "$SUDO" = none ]; then
    say "missing system packages:$missing (install them with apt as root; continuing)"
  else
    say "installing system packages:$missing"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
  fi
fi

# --- Python environment --------------------------------------------------------------------
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || {
  echo "Python 3.11+ is needed (found $("$PY" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2; exit 1; }
if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtual environment $VENV"
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.vla_stack_requirements.sha256"
want=$(cat requirements.txt requirements-ml.txt requirements-dev.txt requirements-nodeps.txt requirements-lock.txt setup.py | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  say "installing Python dependencies (first time: ~3 min, ~4 GB)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -c requirements-lock.txt \
      -r requirements.txt -r requirements-ml.txt -r requirements-dev.txt
  # openpi-client pins numpy<2 but works with numpy 2: without its dependency list (see the file)
  "$VENV/bin/python" -m pip install -q --no-deps -r requirements-nodeps.txt
  "$VENV/bin/python" -m pip install -q --no-deps -e .
  echo "$want" > "$stamp"
else
  say "dependencies up to date ($VENV)"
fi
"$VENV/bin/python" -c "import rclpy, mujoco, pinocchio, ruckig, cv2, vla_stack" \
  || { echo "setup finished but an import fails: see above" >&2; exit 1; }
say "ready: $VENV/bin/vla-stack --help"
