"""Regenerate the bundled generator demo run assets/runs/sheet deterministically (a ReLU decoder for the
generative-network tools: `splineatlas generate`, the volume colour mode).

Data: 3000 latent codes z in [-1, 1]², uniform in z₁ and with 60 % of them in a dense band around z₂ = 0
(sd 0.15), and their points on a curved sheet in R³, x(z) = (z₁, z₂ + 0.3 z₁², 0.5 sin(2.5 z₁) + 0.4 z₂²).
Net: a 2-32-32-3 ReLU decoder fitted to x(z) by mean squared error (``splineatlas train --task regress``,
60 epochs, 12 log-spaced checkpoints, seed 0, 1 thread), its run.json then marked ``"task": "generate"``
with ``"latent_dim": 2``.

    .venv/bin/python scripts/make_sheet_run.py            # writes assets/runs/sheet
    .venv/bin/python scripts/make_sheet_run.py --check    # rebuilds in a temp dir and compares every file
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


def make(out: Path) -> int:
    import torch

    from app.cli.main import main as cli

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    out.mkdir(parents=True, exist_ok=True)
    Z, X = sheet()
    np.savez(out / "sheet.npz", X=Z, y=X)
    cwd = os.getcwd()
    os.chdir(out)  # the run refers to its data file by a path relative to the run folder
    try:
        args = ["train", "--dataset", "sheet.npz", "--task", "regress", "--arch", "2-32-32-3", "--epochs", "60", "--log-checkpoints", "12"]
        code = cli([*args, "--lr", "1e-2", "--seed", "0", "--out", "."])
    finally:
        os.chdir(cwd)
    if code:
        return code
    (out / "sheet.npz").unlink()  # the run keeps its own copy, dataset.npz
    manifest = json.loads((out / "run.json").read_text())
    manifest.update(task="generate", latent_dim=2, name="sheet (2-32-32-3 decoder)")
    (out / "run.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return 0


def tree_hash(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true", help="rebuild in a temp dir and compare with assets/runs/sheet")
    args = ap.parse_args()
    target = ROOT / "assets" / "runs" / "sheet"
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            code = make(Path(tmp) / "sheet")
            same = code == 0 and tree_hash(Path(tmp) / "sheet") == tree_hash(target)
        print("identical" if same else "DIFFERENT")
        return 0 if same else 1
    if target.exists():
        shutil.rmtree(target)
    code = make(target)
    if code == 0:
        print(f"wrote {target}")
    return code


if __name__ == "__main__":
    sys.exit(main())
