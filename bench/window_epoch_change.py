"""Benchmark (#17): the real window's epoch change on the digits demo, from moving the epoch slider to an
uncached checkpoint until that checkpoint's exact tiles are drawn, wall and CPU time (all threads).

    .venv/bin/python bench/window_epoch_change.py [RUN] [--epochs 4] [--threads 2]
    .venv/bin/python bench/window_epoch_change.py --indices 13,14,15 --repeat 2   # the largest, class colouring

The window is Spline Atlas's MainWindow (offscreen), the run's default slice in its home window, an
in-memory cache emptied before every change. Per checkpoint two changes, interleaved: in the default class
colouring (no ||A_w||_2: computed only when shown) and in the slope colouring (the tiles and every tile's
||A_w||_2: what every change computed before the slope norms were lazy, the baseline). Done means: the
tiles of that epoch are the model's, no tessellation, slope or drawing job is running, and in the slope
colouring the colour bar is up. The window's other work on a change (the class preview, region counts)
runs alongside, as it does for a user. The process keeps freed memory for reuse, as the app does at
start-up (``geometry.heap.reuse_freed_memory``; ``--default-allocator``: glibc's defaults instead).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    default_allocator = "--default-allocator" in sys.argv
    if not default_allocator:
        try:
            from geometry.heap import reuse_freed_memory
        except ImportError:  # a checkout from before it (run as a baseline)
            pass
        else:
            reuse_freed_memory()
    import numpy as np
    import torch
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from app.qt.main_window import MainWindow
    from geometry.cache import ResultCache
    from geometry.tessellation import has_slope_norms

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", nargs="?", default=str(ROOT / "assets" / "runs" / "digits"))
    ap.add_argument("--epochs", type=int, default=4, help="checkpoints to visit, spread over the run")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--default-allocator", action="store_true", help="glibc's defaults, not the app's reuse of freed memory")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for one change")
    ap.add_argument("--indices", help="checkpoint indices (comma-separated) to visit instead, class colouring only")
    ap.add_argument("--repeat", type=int, default=1, help="with --indices: visits of each, round-robin")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    app = QApplication.instance() or QApplication([sys.argv[0]])
    cache = ResultCache(None)
    settings = QSettings(str(Path(os.environ.get("TMPDIR", "/tmp")) / "splineatlas-bench-settings.ini"), QSettings.Format.IniFormat)
    win = MainWindow(cache=cache, settings=settings)
    win.resize(1366, 768)
    win.show()
    win.open_path(args.run)

    def wait(done, what: str) -> None:
        end = time.perf_counter() + args.timeout
        while not done():
            app.processEvents()
            time.sleep(0.002)
            if time.perf_counter() > end:
                raise SystemExit(f"timed out waiting for {what}")

    st, work = win.state, win.work
    wait(lambda: win.results.tiles is not None and not work.busy(), "the run to open")
    n = st.n_epochs
    picks = [int(i) for i in np.unique(np.linspace(0, n - 1, args.epochs + 1).round().astype(int)) if i != st.epoch_index]

    def change(i: int, mode: str) -> tuple[int, float, float]:
        st.set_color_mode(mode)
        wait(lambda: not work.busy(), "the colour mode")
        st.set_epoch_index(n - 1 if i != n - 1 else 0)  # somewhere else first
        wait(lambda: not work.busy() and not win.controller.tess_timer.isActive(), "the previous epoch")
        cache.clear_memory()
        w, c = time.perf_counter(), time.process_time()
        st.set_epoch_index(i)

        def drawn() -> bool:
            t = win.results.tiles
            if t is None or t.epoch_index != i or work.busy("tessellation") or work.busy("slopes") or work.busy("draw"):
                return False
            return mode != "slope" or (has_slope_norms(t.by_depth[-1]) and win.view2d.colorbar.isVisible())

        wait(drawn, f"epoch index {i}")
        return win.results.tiles.by_depth[-1].num_regions, time.perf_counter() - w, time.process_time() - c

    if args.indices:
        picks = [int(v) for v in args.indices.split(",")] * args.repeat
        done = [(int(win.bundle.epochs[i]), *change(i, "class")) for i in picks]
        print(f"{win.bundle.run.name}: window's epoch change, class colouring, {args.threads} threads, 1366x768 offscreen")
        for e, r, wall, cpu in done:
            print(f"  epoch {e:4d}: {r:6d} tiles, {wall:5.2f} s wall / {cpu:5.2f} s CPU")
        walls = [d[2] for d in done]
        print(f"  {min(walls):.2f}-{max(walls):.2f} s wall (median {float(np.median(walls)):.2f} s)")
        work.shutdown()
        return 0
    rows = []
    for i in picks:
        a, b = change(i, "class"), change(i, "slope")
        rows.append((int(win.bundle.epochs[i]), *a, *b[1:]))
    print(f"{win.bundle.run.name}: window's epoch change, default slice, home window, {args.threads} threads, 1366x768 offscreen")
    print(f"  {'epoch':>6} {'regions':>7} | {'class colouring':^22} | {'slope colouring':^22} | ratio")
    for e, r, wall, cpu, wall_s, cpu_s in rows:
        print(f"  {e:6d} {r:7d} | {wall:6.2f} s / {cpu:6.2f} s CPU | {wall_s:6.2f} s / {cpu_s:6.2f} s CPU | {wall_s / wall:5.2f}x")
    walls, slow = [r[2] for r in rows], [r[4] for r in rows]
    print(f"  class colouring: {min(walls):.2f}-{max(walls):.2f} s wall (median {float(np.median(walls)):.2f} s)")
    print(f"  slope colouring: {min(slow):.2f}-{max(slow):.2f} s wall (median {float(np.median(slow)):.2f} s)")
    work.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
