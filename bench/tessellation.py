"""Benchmark: exact 2D tessellation (regions, seconds, regions/s) vs a naive per-region Python loop.

Usage::

    .venv/bin/python bench/tessellation.py              # full table (CPU, and CUDA when present)
    .venv/bin/python bench/tessellation.py --quick      # a few rows
    .venv/bin/python bench/tessellation.py --threads 2 --repeats 3 --max-seconds 60
    .venv/bin/python bench/tessellation.py --trained    # + trained grid nets (2-64x3, 2-64x4, 2-128x4, 2-256x4)
    .venv/bin/python bench/tessellation.py --trained-only --repeats 1   # just those rows

Rows: random default-initialised MLPs ``2-w^d-1`` (domain [-1, 1]^2) for widths 32..256 and depths 2..6,
the bundled trained spirals MLP, with ``--trained`` the same grid shapes trained here deterministically
(fixed seed, a short full-batch Adam run on 3-arm spirals scaled into [-1, 1]^2), and slices through 64-D input nets (the bundled digits CNN and a random
64-128x3-10 MLP, plane through three training images). Every row is the full computation: all depths
1..L in one pass, patterns, logits maps, slope norms, classes, argmax cells and the decision boundary.
The naive baseline (same run, smaller nets only) cuts each region by each neuron in a Python loop with
numpy polygon clipping: what a straightforward implementation of the same algorithm costs.
For reference, the issue quotes the fastest published exact method (edge subdivision, ICML 2023, edge
skeleton only): ~0.5 s for 2-64x4-1 (~7.9k regions), ~5 s for 2-128x4-1 (~30k) on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geometry.networks.datasets import builtin_dataset  # noqa: E402
from geometry.errors import BudgetExceededError  # noqa: E402
from geometry.networks.network import Network  # noqa: E402
from geometry.slices import Slice  # noqa: E402
from geometry.networks.spec import mlp_spec  # noqa: E402
from geometry.tessellation import tessellate_all_depths  # noqa: E402


# -- the naive baseline ---------------------------------------------------------------------------
def _clip_np(poly: np.ndarray, a: np.ndarray, b: float, sign: float, eps: float) -> np.ndarray:
    """Sutherland-Hodgman: keep sign * (a.u + b) >= 0 of one convex polygon (n, 2)."""
    s = sign * (poly @ a + b)
    out = []
    n = len(poly)
    for i in range(n):
        p, q, sp, sq = poly[i], poly[(i + 1) % n], s[i], s[(i + 1) % n]
        if sp >= -eps:
            out.append(p)
        if (sp > eps and sq < -eps) or (sp < -eps and sq > eps):
            out.append(p + sp / (sp - sq) * (q - p))
    return np.array(out)


def naive_tessellation(net: Network, domain=(-1, 1, -1, 1), eps: float = 1e-9, max_seconds: float = 60.0) -> int:
    """Layer-wise subdivision with a Python loop over regions and neurons (numpy per polygon)."""
    t0 = time.perf_counter()
    u0, u1, v0, v1 = domain
    regions = [(np.array([[u0, v0], [u1, v0], [u1, v1], [u0, v1]], dtype=np.float64), np.eye(2), np.zeros(2))]
    mods = list(net.layers.children())
    i = 0
    while i < len(mods):
        lin = mods[i]
        W, c = lin.weight.detach().double().numpy(), lin.bias.detach().double().numpy()
        if i + 1 >= len(mods):
            break
        new = []
        for poly, M, m in regions:  # z(u) = M u + m on this region (M: (w, 2))
            A, B = W @ M, W @ m + c  # pre-activations h(u) = A u + B
            pieces = [poly]
            for k in range(A.shape[0]):
                nxt = []
                for p in pieces:
                    s = p @ A[k] + B[k]
                    if s.max() > eps and s.min() < -eps:
                        nxt.append(_clip_np(p, A[k], B[k], 1.0, eps))
                        nxt.append(_clip_np(p, A[k], B[k], -1.0, eps))
                    else:
                        nxt.append(p)
                pieces = nxt
                if time.perf_counter() - t0 > max_seconds:
                    raise TimeoutError
            for p in pieces:
                h = A @ p.mean(0) + B
                on = (h > 0).astype(np.float64)
                new.append((p, on[:, None] * A, on * B))
        regions = new
        i += 2
    return len(regions)


# -- trained grid nets -----------------------------------------------------------------------------
TRAINED_GRID = [(64, 3), (64, 4), (128, 4), (256, 4)]


def trained_mlp(width: int, depth: int, steps: int = 300, seed: int = 0) -> Network:
    """A ``2-width^depth-3`` MLP trained deterministically: fixed seed, full-batch Adam (lr 1e-2, ``steps``
    steps) with cross-entropy on 3-arm spirals (1000 points, seed 0) scaled into [-1, 1]^2, the bench domain."""
    ds = builtin_dataset("spirals", n=1000, seed=0)
    X = ds.X_train / np.abs(ds.X_train).max()
    torch.manual_seed(seed)
    net = Network(mlp_spec([2] + [width] * depth + [3]))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    Xt, yt = torch.tensor(X, dtype=torch.float32), torch.as_tensor(ds.y_train)
    net.train()
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(Xt), yt)
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        acc = float((net(Xt).argmax(1) == yt).float().mean())
    net.train_accuracy = acc
    return net


# -- rows -------------------------------------------------------------------------------------------
def _timed(net, sl, domain, device, repeats: int, max_regions: int):
    tessellate_all_depths(net, sl, domain, device=device, max_regions=max_regions)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        res = tessellate_all_depths(net, sl, domain, device=device, max_regions=max_regions)
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return res[-1].num_regions, best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a few rows only")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (the target machine has 2 cores)")
    ap.add_argument("--repeats", type=int, default=3, help="best of N timed runs (after one warm-up)")
    ap.add_argument("--max-regions", type=int, default=600_000, help="skip rows beyond this many regions")
    ap.add_argument("--max-seconds", type=float, default=60.0, help="give up the naive baseline beyond this")
    ap.add_argument("--naive-max-width", type=int, default=64, help="run the naive baseline up to this width")
    ap.add_argument("--widths", type=int, nargs="+", default=[32, 64, 128, 256], help="MLP widths of the grid")
    ap.add_argument("--depths", type=int, nargs="+", default=[2, 3, 4, 5, 6], help="MLP depths of the grid")
    ap.add_argument("--no-grid", action="store_true", help="only the trained / 64-D rows")
    ap.add_argument("--trained", action="store_true", help="add MLPs trained here on spirals (deterministic): 2-64x3, 2-64x4, 2-128x4, 2-256x4")
    ap.add_argument("--trained-only", action="store_true", help="only the --trained rows")
    ap.add_argument("--trained-steps", type=int, default=300, help="full-batch Adam steps for --trained (default 300)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if args.quick:
        grid = [(64, 3), (64, 4), (128, 4)]
    else:
        grid = [] if args.no_grid else [(w, d) for w in args.widths for d in args.depths]
    cases = []
    box = [-1.0, 1.0, -1.0, 1.0]
    if args.trained_only:
        grid = []
    for w, d in grid:
        torch.manual_seed(0)
        net = Network(mlp_spec([2] + [w] * d + [1]))
        cases.append((f"2-{w}x{d}-1 random", net, Slice.input_plane(2), box, w <= args.naive_max_width))
    if args.trained or args.trained_only:
        for w, d in TRAINED_GRID:
            t0 = time.perf_counter()
            net = trained_mlp(w, d, steps=args.trained_steps)
            print(
                f"(trained 2-{w}x{d}-3: {args.trained_steps} Adam steps, train accuracy {net.train_accuracy:.0%}, {time.perf_counter() - t0:.1f} s)",
                file=sys.stderr,
            )
            cases.append((f"2-{w}x{d}-3 trained (spirals, {args.trained_steps} steps)", net, Slice.input_plane(2), box, w <= args.naive_max_width))
    if args.trained_only:
        return _run_cases(cases, devices, args)
    torch.manual_seed(0)
    cases.append(("2-64x3-3 random (3 classes)", Network(mlp_spec([2, 64, 64, 64, 3])), Slice.input_plane(2), box, True))
    runs = ROOT / "assets" / "runs"
    try:
        from geometry.networks.runs import open_run

        sp = open_run(runs / "spirals")
        cases.append((f"spirals trained 2-64x3-3 (epoch {sp.epochs[-1]})", sp.network(len(sp) - 1), Slice.input_plane(2), box, True))
        dg = open_run(runs / "digits")
        X = dg.dataset.X_train
        sl = Slice.through_points(X[[0, 1, 2]])
        cases.append(("digits CNN trained, plane through 3 images (D=64)", dg.network(len(dg) - 1), sl, None, False))
    except Exception as exc:  # the bundled runs are optional for the benchmark
        print(f"(bundled runs unavailable: {exc})", file=sys.stderr)
    ds = builtin_dataset("digits")
    sl = Slice.through_points(ds.X_train[[0, 1, 2]])
    torch.manual_seed(0)
    cases.append(("64-128x3-10 random MLP, plane through 3 images", Network(mlp_spec([64, 128, 128, 128, 10])), sl, None, False))

    torch.manual_seed(0)
    cases.append(("3-32x3-3 random, 3D box [-1,1]^3 (polyhedra)", Network(mlp_spec([3, 32, 32, 32, 3])), Slice.input_plane(3), [-1.0, 1.0] * 3, False))
    return _run_cases(cases, devices, args)


def _run_cases(cases, devices, args) -> int:
    rows = []
    head = f"{'network':<52} {'device':<6} {'regions':>8} {'seconds':>8} {'regions/s':>10} {'naive s':>9} {'speedup':>8}"
    print(
        f"torch {torch.__version__}, {args.threads} CPU threads, best of {args.repeats}; full pipeline (all depths, "
        f"patterns, slope norms, classes, decision boundary)"
    )
    print(head)
    print("-" * len(head))
    for name, net, sl, dom, naive_ok in cases:
        for dev in devices:
            try:
                n, sec = _timed(net, sl, dom, dev, args.repeats, args.max_regions)
            except BudgetExceededError as exc:
                print(f"{name:<52} {dev:<6} {'>' + str(args.max_regions):>8}  (skipped: {str(exc)[:40]}...)")
                continue
            naive = ""
            speed = ""
            if dev == "cpu" and naive_ok and sl.ambient_dim == 2:
                try:
                    t0 = time.perf_counter()
                    nn_ = naive_tessellation(net, tuple(dom), max_seconds=args.max_seconds)
                    tn = time.perf_counter() - t0
                    if nn_ != n:
                        naive = f"{tn:.2f}({nn_})"
                    else:
                        naive = f"{tn:.2f}"
                    speed = f"{tn / sec:.0f}x"
                except TimeoutError:
                    naive, speed = f">{args.max_seconds:.0f}", f">{args.max_seconds / sec:.0f}x"
            print(f"{name:<52} {dev:<6} {n:>8} {sec:>8.3f} {n / sec:>10.0f} {naive:>9} {speed:>8}", flush=True)
            rows.append((name, dev, n, sec))
    return 0


if __name__ == "__main__":
    sys.exit(main())
