"""What every CLI command shares: the trust flag, and the budgets its numeric arguments must keep.

Budgets are checked once, in ``main``, before a command runs: an argument that would make the engine
allocate or loop without bound (``--points 10**10``, ``--size 100000 100000``) is refused in one line
naming the value and the limit, instead of exhausting memory or time.
"""

from __future__ import annotations

import argparse
import math

from geometry.errors import BudgetExceededError, SplineAtlasError

# argument (dest) -> (smallest, largest) allowed value; checked for every command that has the argument.
ARGUMENT_BUDGETS: dict[str, tuple[float, float]] = {
    "memory_budget": (0, 1 << 20),
    "points": (1, 100_000),
    "steps": (1, 100_000),
    "depth": (1, 10_000),
    "n": (1, 1_000_000),
    "samples": (1, 10_000_000),
    "frames": (1, 10_000),
    "resolution": (2, 4096),
    "size": (16, 8192),
    "dpi": (10, 1200),
    "fps": (0.1, 240),
    "bins": (1, 10_000),
    "max_iter": (1, 100_000),
    "calibrate": (1, 100_000),
    "num": (1, 1_000_000),
    "frame_dims": (1, 10_000),
    "slices": (1, 1_000),
    "data_squares": (1, 10_000),
    "max_regions": (1, 100_000_000),
    "max_cells": (1, 10_000_000),
    "batch_size": (1, 10_000_000),
    "save_every": (1, 10_000_000),
    "log_checkpoints": (1, 100_000),
    "arms": (1, 1_000),
    "font_scale": (0.1, 10),
    "opacity": (0, 1),
    "explode": (0, 100),
    "seed": (0, 2**32 - 1),
    "epoch": (0, 10**15),
    "only_layer": (0, 10_000),
    "layer": (0, 10_000),
    "extent": (1e-9, 1e9),
    "overshoot": (0, 10),
    "lr": (0, 1e3),
    "weight_decay": (0, 1e3),
    "noise": (0, 1e3),
    "tol": (0, 1e6),
    "step_size": (0, 1e6),
    "margin": (0, 1e6),
    "radius": (0, 1e9),
    "threshold": (-1e12, 1e12),
    "level": (-1e12, 1e12),
    "fd_scale": (0, 1e6),
    "near_boundary": (0, 1),
    "max_checkpoint_mb": (1, 1 << 30),
    "point": (0, 10**9),
    "target": (0, 10**6),
    "second": (0, 10**9),
    "deepfool": (0, 10**9),
    "src": (0, 10**15),
    "dst": (0, 10**15),
    "threads": (1, 4096),
    "workers": (1, 4096),
    "data_seed": (0, 2**32 - 1),
}
TRAIN_EPOCH_LIMIT = 1_000_000


def add_trust_argument(parser: argparse.ArgumentParser) -> None:
    """``--trust-code`` (alias ``--trust-pickle``): allow files whose loading runs code stored in them."""
    parser.add_argument(
        "--trust-code",
        "--trust-pickle",
        dest="trust_code",
        action="store_true",
        help="allow full pickles and TorchScript archives, which run code stored in the file when loaded: only for files you trust",
    )


def _values(value):
    return value if isinstance(value, (list, tuple)) else [value]


def check_argument_budgets(args: argparse.Namespace) -> None:
    """Refuse non-finite numbers and values outside :data:`ARGUMENT_BUDGETS`, naming the flag and the limit."""
    for dest, value in vars(args).items():
        if callable(value) or value is None or isinstance(value, (bool, str)):
            continue
        flag = "--" + dest.replace("_", "-")
        for v in _values(value):
            if isinstance(v, float) and not math.isfinite(v):
                raise SplineAtlasError(f"{flag} {v}: give a finite number.")
            if not isinstance(v, (int, float)) or isinstance(v, bool) or dest not in ARGUMENT_BUDGETS:
                continue
            lo, hi = ARGUMENT_BUDGETS[dest]
            if v < lo:
                raise SplineAtlasError(f"{flag} {v} is below the smallest allowed value {lo:g}.")
            if v > hi:
                raise BudgetExceededError(f"{flag} {v:,} is over the limit of {hi:,}; use a smaller value.")
    if getattr(args, "command", None) == "train" and isinstance(getattr(args, "epochs", None), int):
        if not 1 <= args.epochs <= TRAIN_EPOCH_LIMIT:
            raise BudgetExceededError(f"--epochs {args.epochs:,} must be between 1 and {TRAIN_EPOCH_LIMIT:,}.")


def add_slice_argument(parser: argparse.ArgumentParser, dim: int = 2, flag: str = "--slice") -> None:
    """``--slice KIND[:I,J,...][@SEED]``: the one slice vocabulary (``app.jobs.slicing``), default as the window."""
    from app.jobs.slicing import SPELLING

    parser.add_argument(
        flag,
        dest="slice" if dim == 2 else "slice3",
        default=None,
        metavar="KIND",
        help=f"{dim}D slice: {SPELLING} (default: the window's: the input space of {dim}-input nets, "
        + ("else the plane through three training points of different classes" if dim == 2 else "else the PCA space")
        + ", else PCA, else random)",
    )


def add_cluster_arguments(p: argparse.ArgumentParser) -> None:
    """``--workers`` and ``--scheduler``: where Dask tasks run (shared by sweep, dynamics, precompute)."""
    p.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="a Dask scheduler (tcp://HOST:8786); 'serial' runs in this process; default: a local cluster of --workers processes",
    )
    p.add_argument("--workers", type=int, default=None, help="workers of the local cluster (default: the free cores)")


def add_box_scale_argument(p: argparse.ArgumentParser) -> None:
    """``--box-scale``: the 3D box tessellated, as the 3D tab's 'box size' (same default and range)."""
    from app.model.view3d import BOX_SCALE_RANGE, View3DSettings

    lo, hi = BOX_SCALE_RANGE
    p.add_argument(
        "--box-scale",
        type=float,
        default=View3DSettings.box_scale,
        help=f"3D: the box tessellated, as a fraction of the slice's box about its centre (the 3D tab's 'box size'; {lo}-{hi})",
    )


def box_scale_of(args) -> float:
    """The checked ``--box-scale`` (one line naming the flag and its range when it is out of range)."""
    from app.model.view3d import BOX_SCALE_RANGE

    lo, hi = BOX_SCALE_RANGE
    if not lo <= args.box_scale <= hi:
        raise SplineAtlasError(f"--box-scale must be between {lo} and {hi}; got {args.box_scale}.")
    return float(args.box_scale)
