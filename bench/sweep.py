"""Benchmark: one sweep (train + measure each run of a grid) in this process, on a Dask LocalCluster of
1 worker and of 2 workers, interleaved, each repeat into a fresh results folder.

    .venv/bin/python bench/sweep.py [--repeats 3] [--seeds 8] [--epochs 30]

Prints, per setting, the median wall seconds of the tasks (cluster start-up apart, workers warmed up
first), the CPU seconds they used (this process for the loop; the workers' own for Dask), the speed-up
of 2 workers over 1, and the Dask path's overhead per task against calling the same task function in
a loop (1 worker vs the loop: the same work on one core).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _worker_cpu() -> float:
    return time.process_time()


def _warm() -> None:
    import experiments.sweep  # noqa: F401  (torch, the engine)
    import geometry.tessellation  # noqa: F401


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=30)
    args = ap.parse_args()

    import torch
    from dask.distributed import Client, LocalCluster

    from experiments.cluster import SERIAL, run_tasks
    from experiments.grid import SweepGrid
    from experiments.store import ResultStore
    from experiments.sweep import RUNS_KEY, sweep_task
    from geometry.networks.datasets import builtin_dataset

    torch.set_num_threads(1)
    grid = SweepGrid(
        builtin_dataset("moons", n=600).reference, ("2-16-16-1",), tuple(range(args.seeds)), args.epochs, {"lr": 1e-3}, measures=("scores", "regions_box")
    )
    tmp = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    tasks = {k: {**p, RUNS_KEY: str(tmp / "runs")} for k, p in grid.tasks().items()}
    clusters = {}
    for n in (1, 2):
        t0 = time.perf_counter()
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=logging.ERROR)
        client = Client(cluster)
        client.run(_warm)
        clusters[n] = (cluster, client, time.perf_counter() - t0)
    _warm()
    results: dict[str, list[tuple[float, float]]] = {"loop": [], "dask-1": [], "dask-2": []}
    try:
        for r in range(args.repeats):
            for name in results:
                store = ResultStore(tmp / f"results-{name}-{r}")
                if name == "loop":
                    w, c = time.perf_counter(), time.process_time()
                    out = run_tasks(sweep_task, tasks, store, scheduler=SERIAL)
                    wall, cpu = time.perf_counter() - w, time.process_time() - c
                else:
                    client = clusters[int(name[-1])][1]
                    before = client.run(_worker_cpu)
                    w = time.perf_counter()
                    out = run_tasks(sweep_task, tasks, store, scheduler=client)
                    wall = time.perf_counter() - w
                    after = client.run(_worker_cpu)
                    cpu = sum(after[k] - before.get(k, 0.0) for k in after)
                assert out.computed == len(tasks) and not out.failed, out.failed
                results[name].append((wall, cpu))
    finally:
        for cluster, client, _ in clusters.values():
            client.close()
            cluster.close()
    med = {k: (float(np.median([w for w, _ in v])), float(np.median([c for _, c in v]))) for k, v in results.items()}
    n = len(tasks)
    print(f"sweep of {n} runs (moons 600 points, 2-16-16-1, {args.epochs} epochs, regions in [-1, 1]^2), {args.repeats} repeats interleaved")
    print(f"{'setting':<10} {'wall s':>8} {'CPU s':>8} {'per run s':>10}")
    for k, (w, c) in med.items():
        print(f"{k:<10} {w:>8.2f} {c:>8.2f} {w / n:>10.3f}")
    print(f"cluster start-up (once, with worker warm-up): 1 worker {clusters[1][2]:.1f} s, 2 workers {clusters[2][2]:.1f} s")
    print(f"2 workers vs 1: {med['dask-1'][0] / med['dask-2'][0]:.2f}x faster (wall)")
    print(f"Dask overhead per task (1 worker vs the loop): {(med['dask-1'][0] - med['loop'][0]) / n * 1000:+.0f} ms wall")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
