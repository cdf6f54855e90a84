"""Regenerate the bundled demo runs in assets/runs/ bit-for-bit (deterministic seeds, 1 thread).

.venv/bin/python scripts/make_demo_runs.py          # writes assets/runs/{spirals,digits}
.venv/bin/python scripts/make_demo_runs.py --check  # regenerate into a temp dir and compare hashes
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geometry.networks.datasets import builtin_dataset  # noqa: E402
from geometry.networks.spec import digits_cnn_spec, mlp_spec  # noqa: E402
from geometry.networks.training import save_schedule, train_run  # noqa: E402


def spirals_schedule(epochs: int) -> list[int]:
    """Dense early (memorisation) and regular late (long after accuracy saturates)."""
    return sorted(set(save_schedule(epochs, log_points=30)) | set(range(0, epochs + 1, 100)))


RUNS = ("spirals", "digits")  # assets/runs/rings3d comes from scripts/make_rings3d_run.py


def make(out: Path) -> None:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    spirals = builtin_dataset("spirals", n=1000, seed=0, arms=3)
    train_run(
        spirals,
        mlp_spec([2, 64, 64, 64, 3]),
        out / "spirals",
        epochs=3000,
        save_epochs=spirals_schedule(3000),
        lr=2e-3,
        batch_size=64,
        seed=0,
        name="spirals (2-64-64-64-3)",
    )
    digits = builtin_dataset("digits", seed=0)
    train_run(
        digits,
        digits_cnn_spec(),
        out / "digits",
        epochs=60,
        save_epochs=save_schedule(60, log_points=20),
        lr=3e-3,
        batch_size=64,
        seed=0,
        name="digits (small CNN)",
    )


def tree_hash(folder: Path) -> dict[str, str]:
    """sha256 of every file of the runs this script makes (other runs beside them are not its own)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for name in RUNS for p in sorted((folder / name).rglob("*")) if p.is_file()}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true", help="regenerate in a temp dir and compare with assets/runs")
    args = ap.parse_args()
    target = ROOT / "assets" / "runs"
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            make(Path(tmp))
            same = tree_hash(Path(tmp)) == tree_hash(target)
        print("identical" if same else "DIFFERENT")
        return 0 if same else 1
    for name in RUNS:
        if (target / name).exists():
            shutil.rmtree(target / name)
    make(target)
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
