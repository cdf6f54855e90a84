"""Benchmark (#17): what the window computes when the epoch slider moves to an uncached checkpoint of a run:
its default slice's exact tessellation at every depth in the home window (``app.jobs.tessellate_all``,
the window's own call and defaults), per checkpoint, wall and CPU time, with the regions it found.

    .venv/bin/python bench/epoch_change.py [RUN] [--epochs 4] [--threads 2]

Two calls per checkpoint, interleaved: the window in its default class colouring (``slopes=False``: no
||A_w||_2) and the slope colouring, which also computes every tile's ||A_w||_2 (what every epoch change
cost before the slope norms were made lazy: the baseline). RUN defaults to the bundled digits demo (a CNN
on 8x8 digits: the slice through three training images of different classes, D = 64). No cache is used,
so every checkpoint is a first visit. The first checkpoint visited is timed too but reported apart (it
pays for opening the run and warming torch).
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
        row = [int(bundle.run.epochs[i])]
        for slopes in (False, True):
            w, c = time.perf_counter(), time.process_time()
            t = tessellate_all(bundle, int(i), sl, home, max_regions, slopes=slopes)
            row += [t[-1].num_regions, time.perf_counter() - w, time.process_time() - c]
        rows.append(row)
    first, rest = rows[0], rows[1:]
    print(f"{bundle.run.name}: slice {sl.description}, home window {tuple(round(v, 3) for v in home)}, {args.threads} threads")
    print(f"  first visit (epoch {first[0]}, warms up): {first[1]} regions, {first[2]:.2f} s wall, {first[3]:.2f} s CPU (with slopes {first[5]:.2f} s)")
    print(f"  {'epoch':>6} {'regions':>7} | {'class colouring':^21} | {'slope colouring':^21} | ratio")
    for e, r, wall, cpu, _, wall_s, cpu_s in rest:
        print(f"  {e:6d} {r:7d} | {wall:6.2f} s / {cpu:5.2f} s CPU | {wall_s:6.2f} s / {cpu_s:5.2f} s CPU | {wall_s / wall:5.2f}x")
    if rest:
        walls, slow = [r[2] for r in rest], [r[5] for r in rest]
        print(f"  epoch change, class colouring: {min(walls):.2f}-{max(walls):.2f} s wall (median {float(np.median(walls)):.2f} s)")
        print(f"  epoch change, slope colouring: {min(slow):.2f}-{max(slow):.2f} s wall (median {float(np.median(slow)):.2f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
