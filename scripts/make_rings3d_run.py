"""Regenerate the bundled 3D demo run assets/runs/rings3d deterministically (a 3-input net for the 3D view).

Data: two interlocking rings (tori of radius 1, tube noise 0.12) in R^3 — ring 0 in the xy-plane centred at
(-0.5, 0, 0), ring 1 in the xz-plane centred at (0.5, 0, 0) — plus class 2, a Gaussian blob (sd 0.25) at
(0, 0, 1.3) off both rings; 400 points per class, seed 0. Net: 3-16-16-3 ReLU MLP trained with
``splineatlas train`` (300 epochs, 12 log-spaced checkpoints, 1 thread).

    .venv/bin/python scripts/make_rings3d_run.py
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "assets" / "runs" / "rings3d"
sys.path.insert(0, str(ROOT))


def rings3d(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(3n, 3) float32 points and (3n,) int64 labels: two interlocking noisy rings and a blob."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 2 * np.pi, size=(2, n))
    ring0 = np.stack([np.cos(t[0]) - 0.5, np.sin(t[0]), np.zeros(n)], 1)
    ring1 = np.stack([np.cos(t[1]) + 0.5, np.zeros(n), np.sin(t[1])], 1)
    blob = rng.normal(scale=0.25, size=(n, 3)) + np.array([0.0, 0.0, 1.3])
    X = np.concatenate([ring0 + rng.normal(scale=0.12, size=(n, 3)), ring1 + rng.normal(scale=0.12, size=(n, 3)), blob])
    y = np.repeat(np.arange(3), n)
    return X.astype(np.float32), y.astype(np.int64)


def main() -> int:
    import torch

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    X, y = rings3d()
    np.savez(OUT / "rings3d.npz", X=X, y=y, class_names=np.array(["ring A", "ring B", "blob"]))
    from app.cli.main import main as cli

    cwd = os.getcwd()
    os.chdir(OUT)  # the run refers to its data file by a path relative to the run folder
    try:
        return cli(
            [
                "train",
                "--dataset",
                "rings3d.npz",
                "--arch",
                "3-16-16-3",
                "--epochs",
                "300",
                "--log-checkpoints",
                "12",
                "--lr",
                "3e-3",
                "--seed",
                "0",
                "--out",
                ".",
            ]
        )
    finally:
        os.chdir(cwd)


if __name__ == "__main__":
    sys.exit(main())
