"""Benchmark: principal curvatures (DeepFool + boundary projection + Lanczos, all D-1 curvatures or the
top 10) and the Algorithm-2 detector, batched vs one point at a time, on the bundled demo runs.

    .venv/bin/python bench/curvature.py [--device cpu|cuda] [--n 200] [--loop 10]
Prints: model, task, method, points, seconds, points/s, speed-up.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from power_diagram import models  # noqa: E402

from geometry.boundary.curvature import principal_curvatures  # noqa: E402
from geometry.boundary.detection import detect_perturbed  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--loop", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"device {args.device}, torch threads {torch.get_num_threads()}; secant HVPs at scale 0.2")
    print(f"{'model':<34} {'task':<28} {'method':<16} {'points':>7} {'seconds':>9} {'points/s':>9} {'speed-up':>9}")
    for name, net, X in models():
        Xn = np.resize(X, (args.n, X.shape[1]))
        tasks = [
            ("curvatures (top 10)", lambda x: principal_curvatures(net, x, num=10, fd_scale=0.2, device=args.device)),
            ("detector (T=20, all classes)", lambda x: detect_perturbed(net, x, fd_scale=0.2, device=args.device)),
        ]
        if net.input_dim > 2:
            tasks.insert(1, ("curvatures (all D-1)", lambda x: principal_curvatures(net, x, fd_scale=0.2, device=args.device)))
        for task, fn in tasks:
            fn(Xn[:2])
            t = time.perf_counter()
            for i in range(args.loop):
                fn(Xn[i : i + 1])
            t_loop = time.perf_counter() - t
            t = time.perf_counter()
            fn(Xn)
            t_batch = time.perf_counter() - t
            r_loop, r_batch = args.loop / t_loop, args.n / t_batch
            print(f"{name:<34} {task:<28} {'loop (1 point)':<16} {args.loop:>7} {t_loop:>9.3f} {r_loop:>9.1f} {1.0:>9.1f}")
            print(f"{name:<34} {task:<28} {'batched':<16} {args.n:>7} {t_batch:>9.3f} {r_batch:>9.1f} {r_batch / r_loop:>9.1f}")


if __name__ == "__main__":
    main()
