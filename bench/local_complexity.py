"""Benchmark: local complexity (orthoplex frame, per layer) on the bundled digits CNN and spirals MLP,
batched (:func:`geometry.local_complexity.local_complexity`) vs the per-point loop, CPU and CUDA.

    .venv/bin/python bench/local_complexity.py [--n 2048] [--loop 64] [--dims 16] [--threads 2]
Prints: model, device, dtype, frame vertices per point, points, seconds, points/s, speed-up vs the loop
(the loop is timed on the first ``--loop`` points and checked for equal results).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from geometry.local_complexity import local_complexity, local_complexity_loop
from geometry.networks.runs import open_run

ROOT = Path(__file__).resolve().parents[1]


def _time(fn, repeat: int = 2) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2048, help="points for the batched version")
    ap.add_argument("--loop", type=int, default=64, help="points for the per-point loop")
    ap.add_argument("--dims", type=int, default=16, help="orthoplex directions P (2P vertices per point)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"torch threads {torch.get_num_threads()}, devices {devices}")
    print(f"{'model':<26} {'method':<22} {'device':<6} {'dtype':<8} {'verts/pt':>8} {'points':>7} {'seconds':>9} {'points/s':>10} {'speed-up':>9}")
    for name, radius in (("digits", 0.5), ("spirals", 0.03)):
        run = open_run(ROOT / "assets" / "runs" / name)
        net = run.network(len(run) - 1)
        X = np.resize(run.dataset.X_train.astype(np.float64), (args.n, net.input_dim))
        P = min(args.dims, net.input_dim)
        t_loop, ref = _time(lambda: local_complexity_loop(net, X[: args.loop], radius, args.dims), repeat=1)
        loop_rate = args.loop / t_loop
        label = f"{name} ({net.depth} layers, D={net.input_dim})"
        print(f"{label:<26} {'per-point loop':<22} {'cpu':<6} {'float64':<8} {2 * P:>8} {args.loop:>7} {t_loop:>9.3f} {loop_rate:>10.1f} {1.0:>9.1f}")
        for dev in devices:
            for dtype in (torch.float64, torch.float32):
                if dev == "cuda":
                    local_complexity(net, X[:64], radius, args.dims, device=dev, dtype=dtype)  # warm-up
                t, res = _time(lambda: local_complexity(net, X, radius, args.dims, device=dev, dtype=dtype))
                same = np.array_equal(res.per_layer[:, : args.loop], ref.per_layer)
                rate = args.n / t
                tag = "" if same else "  (differs from loop: float32 sign ties)" if dtype == torch.float32 else "  MISMATCH"
                print(f"{label:<26} {'batched':<22} {dev:<6} {str(dtype)[6:]:<8} {2 * P:>8} {args.n:>7} {t:>9.3f} {rate:>10.1f} {rate / loop_rate:>9.1f}{tag}")


if __name__ == "__main__":
    main()
