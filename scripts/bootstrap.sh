#!/usr/bin/env bash
# Idempotent set-up used by the two README commands: a virtual environment in .venv with torch
# and the project (editable, with test extras). Re-runs are quick: each step is skipped when done.
#
# torch: on a machine with an NVIDIA GPU (nvidia-smi present) pip's default torch wheel (CUDA) is
# installed; otherwise torch==2.13.0, which this kind of machine has as a local CPU wheel
# (pip's find-links), so nothing large is downloaded. Override with SPLINEATLAS_TORCH, e.g.
#   SPLINEATLAS_TORCH="torch --index-url https://download.pytorch.org/whl/cu128" bash scripts/open-demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.splineatlas-installed

if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating $VENV" >&2
    "$PY" -m venv "$VENV"
fi
pip_install() { "$VENV/bin/python" -m pip install --disable-pip-version-check -q "$@"; }

if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    if [ -n "${SPLINEATLAS_TORCH:-}" ]; then
        torch_req=($SPLINEATLAS_TORCH)
    elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        torch_req=(torch)   # PyPI's default Linux wheel is the CUDA build
    else
        torch_req=("torch==2.13.0")
    fi
    echo "[setup] installing ${torch_req[*]}" >&2
    pip_install "${torch_req[@]}"
fi

want=$(cat pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
    echo "[setup] installing Spline Atlas and its dependencies" >&2
    pip_install -e ".[dev]"
    echo "$want" > "$STAMP"
fi
