"""Benchmark (#17): what the window computes when the epoch slider moves to an uncached checkpoint of a run:
its default slice's exact tessellation at every depth in the home window (``app.jobs.tessellate_all``,
the window's own call and defaults), per checkpoint, wall and CPU time, with the regions it found.

    .venv/bin/python bench/epoch_change.py [RUN] [--epochs 4] [--threads 2]
    .venv/bin/python bench/epoch_change.py --baseline /tmp/base [--repeat 3]   # against another checkout

With ``--baseline`` (a checkout of another commit: ``git worktree add /tmp/base <commit>``) each
checkpoint is timed in both engines instead, the class colouring only, in fresh processes interleaved
(this, baseline, baseline, this, ...), each warmed up on the run's first checkpoint, and the table gives
the ratio of the medians. A checkout that has ``geometry.heap.reuse_freed_memory`` calls it first, as
the app does at start-up, unless ``--default-allocator``.

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


CHILD = """
import json, sys, time
sys.path.insert(0, '.')
if {reuse}:
    try:
        from geometry.heap import reuse_freed_memory  # as the app does at start-up (a checkout that has it)
        reuse_freed_memory()
    except ImportError:
        pass
import torch
torch.set_num_threads({threads})
from app.jobs.bundle import open_run_bundle
from app.jobs.slicing import default_slice_choice, make_slice
from app.jobs.tessellate import tessellate_all
from app.model.state import Settings
bundle = open_run_bundle({run!r})
sl, home = make_slice(bundle, default_slice_choice(bundle))
tessellate_all(bundle, 0, sl, home, Settings().max_regions, slopes=False)  # warm up
w, c = time.perf_counter(), time.process_time()
t = tessellate_all(bundle, {index}, sl, home, Settings().max_regions, slopes=False)
print(json.dumps(dict(regions=t[-1].num_regions, wall=time.perf_counter() - w, cpu=time.process_time() - c)))
"""


def against_baseline(args) -> int:
    """Each checkpoint's uncached tessellation in this checkout and in ``args.baseline``, interleaved."""
    import json
    import subprocess

    import numpy as np

    sys.path.insert(0, str(ROOT))
    from app.jobs.bundle import open_run_bundle

    n = len(open_run_bundle(args.run).run)
    picks = np.unique(np.linspace(0, n - 1, args.epochs + 1).round().astype(int))[1:]
    engines = [("this", ROOT), ("baseline", args.baseline.resolve())]
    print(f"{args.run}: uncached tessellation (class colouring), {args.threads} threads, {args.repeat} runs each, interleaved")
    print(f"  {'index':>5} {'regions':>7} | {'this':^23} | {'baseline':^23} | speed-up")
    for i in picks:
        got = {label: [] for label, _ in engines}
        for rep in range(args.repeat):
            for label, root in engines if rep % 2 == 0 else engines[::-1]:
                code = CHILD.format(threads=args.threads, run=str(Path(args.run).resolve()), index=int(i), reuse=not args.default_allocator)
                out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
                got[label].append(json.loads(out.stdout.strip().splitlines()[-1]))
        med = {k: (float(np.median([r["wall"] for r in v])), float(np.median([r["cpu"] for r in v]))) for k, v in got.items()}
        regions = {r["regions"] for v in got.values() for r in v}
        (tw, tc), (bw, bc) = med["this"], med["baseline"]
        counts = "/".join(map(str, sorted(regions)))
        print(f"  {int(i):5d} {counts:>7} | {tw:6.2f} s / {tc:5.2f} s CPU | {bw:6.2f} s / {bc:5.2f} s CPU | {bw / tw:5.2f}x", flush=True)
    return 0


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
    ap.add_argument("--baseline", type=Path, help="a checkout of another commit to time against")
    ap.add_argument("--repeat", type=int, default=3, help="with --baseline: runs per engine and checkpoint")
    ap.add_argument("--default-allocator", action="store_true", help="with --baseline: glibc's defaults in both, not the app's reuse of freed memory")
    args = ap.parse_args()
    if args.baseline:
        return against_baseline(args)
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
