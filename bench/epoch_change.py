"""Benchmark (#17): what the window computes when the epoch slider moves to an uncached checkpoint of a run:
its default slice's exact tessellation at every depth in the home window (``app.jobs.tessellate_all``,
the window's own call and defaults), per checkpoint, wall and CPU time, with the regions it found.

    .venv/bin/python bench/epoch_change.py [RUN] [--epochs 4] [--threads 2]

RUN defaults to the bundled digits demo (a CNN on 8x8 digits: the slice through three training images
of different classes, D = 64). No cache is used, so every checkpoint is a first visit. The first
checkpoint visited is timed too but reported apart (it pays for opening the run and warming torch).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    import numpy as np
    import torch

    from app.jobs.bundle import open_run_bundle
    from app.jobs.slicing import default_slice_choice, make_slice
    from app.jobs.tessellate import tessellate_all
    from app.model.state import Settings

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", nargs="?", default=str(ROOT / "assets" / "runs" / "digits"))
    ap.add_argument("--epochs", type=int, default=4, help="checkpoints to visit, spread over the run")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    bundle = open_run_bundle(args.run)
    sl, home = make_slice(bundle, default_slice_choice(bundle))
    max_regions = Settings().max_regions
    picks = np.unique(np.linspace(0, len(bundle.run) - 1, args.epochs + 1).round().astype(int))
    rows = []
    for i in picks:
        w, c = time.perf_counter(), time.process_time()
        t = tessellate_all(bundle, int(i), sl, home, max_regions)
        rows.append((int(bundle.run.epochs[i]), t[-1].num_regions, time.perf_counter() - w, time.process_time() - c))
    first, rest = rows[0], rows[1:]
    print(f"{bundle.run.name}: slice {sl.description}, home window {tuple(round(v, 3) for v in home)}, {args.threads} threads")
    print(f"  first visit (epoch {first[0]}, warms up): {first[1]} regions, {first[2]:.2f} s wall, {first[3]:.2f} s CPU")
    for e, r, wall, cpu in rest:
        print(f"  epoch {e:6d}: {r:6d} regions, {wall:5.2f} s wall, {cpu:5.2f} s CPU")
    if rest:
        walls = [r[2] for r in rest]
        print(f"  epoch change: {min(walls):.2f}-{max(walls):.2f} s wall (median {float(np.median(walls)):.2f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
