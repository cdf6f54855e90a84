"""Benchmark: power-diagram centroids/radii (all layers) and per-layer boundary distances, batched vs a
one-point-at-a-time loop, on the bundled demo runs (or small random nets if they are absent).

    .venv/bin/python bench/power_diagram.py [--device cpu|cuda] [--n 2000] [--loop 100]
Prints: model, task, method, points, seconds, points/s, speed-up over the loop.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from geometry.power_diagram import boundary_distances, centroids

ROOT = Path(__file__).resolve().parents[1]


def models():
    from geometry.networks.network import Network
    from geometry.networks.spec import digits_cnn_spec, mlp_spec

    out = []
    for name, spec, D in [("spirals", mlp_spec([2, 64, 64, 64, 3]), 2), ("digits", digits_cnn_spec(), 64)]:
        run_dir = ROOT / "assets" / "runs" / name
        if run_dir.exists():
            from geometry.networks.runs import open_run

            run = open_run(run_dir)
            net = run.network(len(run) - 1)
            X = np.asarray(run.dataset.X_train, dtype=np.float64).reshape(-1, net.input_dim) if run.dataset else None
        else:
            torch.manual_seed(0)
            net, X = Network(spec), None
        if X is None:
            X = np.random.default_rng(0).normal(size=(4000, D))
        out.append((f"{name} ({net.summary().count(chr(10)) + 1} layers, D={net.input_dim})", net, X))
    return out


def timed(fn, reps=1):
    fn()  # warm-up (torch.func / autograd initialisation)
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t) / reps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--loop", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"device {args.device}, torch threads {torch.get_num_threads()}")
    print(f"{'model':<34} {'task':<20} {'method':<16} {'points':>7} {'seconds':>9} {'points/s':>10} {'speed-up':>9}")
    for name, net, X in models():
        Xn = np.resize(X, (args.n, X.shape[1]))
        for task, fn in [
            ("centroids+radii", lambda x: centroids(net, x, device=args.device)),
            ("boundary distance", lambda x: boundary_distances(net, x, device=args.device)),
        ]:
            loop_n = args.loop
            t_loop = timed(lambda: [fn(Xn[i : i + 1]) for i in range(loop_n)])
            t_batch = timed(lambda: fn(Xn))
            r_loop, r_batch = loop_n / t_loop, args.n / t_batch
            print(f"{name:<34} {task:<20} {'loop (1 point)':<16} {loop_n:>7} {t_loop:>9.3f} {r_loop:>10.0f} {1.0:>9.1f}")
            print(f"{name:<34} {task:<20} {'batched':<16} {args.n:>7} {t_batch:>9.3f} {r_batch:>10.0f} {r_batch / r_loop:>9.1f}")


if __name__ == "__main__":
    main()
