#!/usr/bin/env bash
# Set up (first run only) and run the whole test suite. GUI tests run on a virtual X server
# (pytest-xvfb) when one can be installed, otherwise on Qt's offscreen platform.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-packages.sh || echo "[setup] could not install system packages; OpenGL tests will skip" >&2
bash scripts/bootstrap.sh
exec .venv/bin/python -m pytest "$@"
