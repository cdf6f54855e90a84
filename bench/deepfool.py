"""Benchmark: DeepFool (untargeted, overshoot 0.02) batched vs one point at a time (the reference
implementation's way), on the bundled demo runs (or random nets if absent).

    .venv/bin/python bench/deepfool.py [--device cpu|cuda] [--n 1000] [--loop 50]
Prints: model, method, points, seconds, points/s, speed-up, median ||r||, median iterations.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from power_diagram import models  # noqa: E402  (same demo models)

from geometry.boundary.deepfool import deepfool  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--loop", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"device {args.device}, torch threads {torch.get_num_threads()}")
    print(f"{'model':<34} {'method':<16} {'points':>7} {'seconds':>9} {'points/s':>10} {'speed-up':>9} {'med |r|':>9} {'med it':>7}")
    for name, net, X in models():
        Xn = np.resize(X, (args.n, X.shape[1]))
        deepfool(net, Xn[:2], device=args.device)  # warm-up
        t = time.perf_counter()
        loop = [deepfool(net, Xn[i : i + 1], device=args.device) for i in range(args.loop)]
        t_loop = time.perf_counter() - t
        t = time.perf_counter()
        res = deepfool(net, Xn, device=args.device)
        t_batch = time.perf_counter() - t
        r_loop, r_batch = args.loop / t_loop, args.n / t_batch
        same = np.allclose(np.concatenate([r.perturbation for r in loop]), res.perturbation[: args.loop], atol=1e-8)
        print(
            f"{name:<34} {'loop (1 point)':<16} {args.loop:>7} {t_loop:>9.3f} {r_loop:>10.0f} {1.0:>9.1f} "
            f"{np.median([r.norms[0] for r in loop]):>9.4f} {np.median([r.iterations[0] for r in loop]):>7.0f}"
        )
        print(
            f"{name:<34} {'batched':<16} {args.n:>7} {t_batch:>9.3f} {r_batch:>10.0f} {r_batch / r_loop:>9.1f} "
            f"{np.median(res.norms):>9.4f} {np.median(res.iterations):>7.0f}   (same r as the loop: {same})"
        )


if __name__ == "__main__":
    main()
