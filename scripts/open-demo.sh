#!/usr/bin/env bash
# Set up (first run only) and open Spline Atlas on the bundled demo run. Extra arguments go to
# `splineatlas` (e.g. a run folder to open instead of the demo).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/splineatlas "$@"
