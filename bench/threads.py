"""Benchmark: the engine beside a competing process, with torch's default threads (every core) and with
``--threads``' default (the cores other work leaves free: ``geometry.networks.device.free_cores``).

    .venv/bin/python bench/threads.py [--repeats 3] [--busy 1]

Starts ``--busy`` processes that spin on one core each, then tessellates the bundled runs' default slices
(spirals: 2 inputs; digits: a plane through the 64-input CNN) alternating the two settings, and prints wall
and CPU seconds per setting (median over the repeats) and the ratio. Without competing work both settings
are the same on an idle machine; with it, every-core threads wait on the core that is taken.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _spin(stop):
    while not stop.is_set():
        sum(range(10_000))


def _timed(fn):
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--busy", type=int, default=1, help="competing processes, one core each")
    args = ap.parse_args()
    from app import jobs
    from geometry.networks.device import free_cores

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cases = []
    for name in ("spirals", "digits"):
        b = jobs.open_run_bundle(ROOT / "assets" / "runs" / name)
        sl, win = jobs.make_slice(b, jobs.default_slice_choice(b))
        cases.append((name, b, sl, win))
    stop = mp.Event()
    procs = [mp.Process(target=_spin, args=(stop,), daemon=True) for _ in range(args.busy)]
    for p in procs:
        p.start()
    time.sleep(2.0)  # let the load average see them
    try:
        free = free_cores()
        print(f"{cores} cores, {args.busy} competing process(es); torch default {cores} threads, --threads default {free}")
        print(f"{'run':<8} {'threads':>8} {'wall s':>8} {'cpu s':>8} {'regions':>8}")
        for name, b, sl, win in cases:
            times = {cores: [], free: []}
            regions = 0
            for _ in range(args.repeats):
                for n in (cores, free):  # interleaved: the machine's noise hits both alike
                    torch.set_num_threads(n)
                    out = []
                    times[n].append(_timed(lambda: out.append(jobs.tessellate_all(b, -1, sl, win, 200_000))))
                    regions = out[0][-1].num_regions
            med = {n: np.median(np.array(t), axis=0) for n, t in times.items()}
            for n in (cores, free):
                print(f"{name:<8} {n:>8} {med[n][0]:>8.2f} {med[n][1]:>8.2f} {regions:>8}")
            print(f"{name:<8} {'ratio':>8} {med[cores][0] / med[free][0]:>8.2f}x wall (default / free cores)")
    finally:
        stop.set()
        for p in procs:
            p.join(2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
