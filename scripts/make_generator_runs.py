"""Regenerate the bundled generator demo runs deterministically (ReLU decoders for the generative-network
tools: `splineatlas generate`, the volume colour mode, the 3D tab's manifold and image grid).

* assets/runs/sheet: 3000 latent codes z in [-1, 1]², uniform in z₁ and with 60 % of them in a dense band
  around z₂ = 0 (sd 0.15), and their points on a curved sheet in R³, x(z) = (z₁, z₂ + 0.3 z₁²,
  0.5 sin(2.5 z₁) + 0.4 z₂²); a 2-32-32-3 decoder.
* assets/runs/blobs: 1500 latent codes z uniform in [-1, 1]² and 8×8 pictures of a bright spot centred at
  z (z₁ left to right, z₂ bottom to top; Gaussian, sd 1.1 pixels); a 2-32-32-64 decoder, run.json
  ``"output_shape": [1, 8, 8]``.

Each net is fitted by mean squared error (``splineatlas train --task regress``, 60 epochs, 12 log-spaced
checkpoints, seed 0, 1 thread), its run.json then marked ``"task": "generate"`` with ``"latent_dim": 2``.

    .venv/bin/python scripts/make_generator_runs.py            # writes both runs
    .venv/bin/python scripts/make_generator_runs.py --check    # rebuilds in a temp dir and compares every file
    .venv/bin/python scripts/make_generator_runs.py --run blobs

Training is bit-for-bit reproducible on one kind of CPU; another CPU's vector units round differently (the
MSEs agree to ~1e-6 relative), so ``--check`` compares against a build made on the same kind of machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def sheet(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, 2) latent codes with a dense band at z₂ = 0 and (n, 3) their points on the curved sheet."""
    rng = np.random.default_rng(seed)
    z1 = rng.uniform(-1, 1, n)
    z2 = np.clip(np.where(rng.random(n) < 0.6, 0.15 * rng.standard_normal(n), rng.uniform(-1, 1, n)), -1, 1)
    x = np.c_[z1, z2 + 0.3 * z1**2, 0.5 * np.sin(2.5 * z1) + 0.4 * z2**2]
    return np.c_[z1, z2].astype(np.float32), x.astype(np.float32)


def blobs(n: int = 1500, seed: int = 0, side: int = 8, sd: float = 1.1) -> tuple[np.ndarray, np.ndarray]:
    """(n, 2) latent codes and (n, side²) pictures (row-major, row 0 at the top) of a spot centred at z."""
    rng = np.random.default_rng(seed)
    z = rng.uniform(-1, 1, (n, 2))
    col = (z[:, 0] + 1) / 2 * (side - 1)
    row = (1 - z[:, 1]) / 2 * (side - 1)
    r, c = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
    img = np.exp(-((r[None] - row[:, None, None]) ** 2 + (c[None] - col[:, None, None]) ** 2) / (2 * sd**2))
    return z.astype(np.float32), img.reshape(n, -1).astype(np.float32)


RUNS = {
    "sheet": (sheet, "2-32-32-3", {"name": "sheet (2-32-32-3 decoder)"}),
    "blobs": (blobs, "2-32-32-64", {"name": "blobs (2-32-32-64 decoder of 8x8 pictures)", "output_shape": [1, 8, 8]}),
}


def make(out: Path, which: str) -> int:
    import torch

    from app.cli.main import main as cli

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    out.mkdir(parents=True, exist_ok=True)
    data, arch, fields = RUNS[which]
    Z, X = data()
    np.savez(out / f"{which}.npz", X=Z, y=X)
    cwd = os.getcwd()
    os.chdir(out)  # the run refers to its data file by a path relative to the run folder
    try:
        args = ["train", "--dataset", f"{which}.npz", "--task", "regress", "--arch", arch, "--epochs", "60", "--log-checkpoints", "12"]
        code = cli([*args, "--lr", "1e-2", "--seed", "0", "--out", "."])
    finally:
        os.chdir(cwd)
    if code:
        return code
    (out / f"{which}.npz").unlink()  # the run keeps its own copy, dataset.npz
    manifest = json.loads((out / "run.json").read_text())
    manifest.update(task="generate", latent_dim=2, **fields)
    (out / "run.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return 0


def tree_hash(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true", help="rebuild in a temp dir and compare with assets/runs/")
    ap.add_argument("--run", choices=tuple(RUNS), action="append", help="only this run (default: every one)")
    args = ap.parse_args()
    code = 0
    for which in args.run or RUNS:
        target = ROOT / "assets" / "runs" / which
        if args.check:
            with tempfile.TemporaryDirectory() as tmp:
                made = make(Path(tmp) / which, which)
                same = made == 0 and tree_hash(Path(tmp) / which) == tree_hash(target)
            print(f"{which}: {'identical' if same else 'DIFFERENT'}")
            code = code or (0 if same else 1)
            continue
        if target.exists():
            shutil.rmtree(target)
        made = make(target, which)
        if made == 0:
            print(f"wrote {target}")
        code = code or made
    return code


if __name__ == "__main__":
    sys.exit(main())
