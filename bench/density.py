"""Benchmark: hyperplane density maps on the bundled spirals run (its home window, every layer), against
straightforward baselines timed in the same run, interleaved (the machine is shared):

* ``edge_density`` (all segments split at the grid lines at once) vs a per-segment Python loop that
  walks each segment across the grid;
* ``neurons_crossing_discs`` (pieces binned by cell, one vectorised pass per neighbouring offset) vs a
  per-grid-point loop over every piece.

    .venv/bin/python bench/density.py [--grid 64] [--radius 0.05] [--repeat 3] [--threads 2]
Prints, per layer: method, wall and CPU seconds (best of --repeat), speed-up, and whether the results
are equal.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from app import jobs
from app.jobs.slicing import slice_from_text
from app.jobs.tessellate import tessellate_all
from geometry.tessellation.density import _grid, _piece_units, _pieces, edge_density, neurons_crossing_discs

ROOT = Path(__file__).resolve().parents[1]


def density_loop(tess, layer: int, grid: int) -> np.ndarray:
    """The baseline: each segment walked across the grid on its own, cell by cell."""
    ue, ve = _grid(tess, grid)
    out = np.zeros((grid, grid))
    for a, b in tess.edges(layer):
        ts = [0.0, 1.0]
        for edges, k in ((ue, 0), (ve, 1)):
            if b[k] != a[k]:
                t = (edges - a[k]) / (b[k] - a[k])
                ts.extend(t[(t > 0) & (t < 1)])
        ts = np.sort(ts)
        for t0, t1 in zip(ts[:-1], ts[1:]):
            m = a + (t0 + t1) / 2 * (b - a)
            i = min(max(int(np.searchsorted(ue, m[0], side="right")) - 1, 0), grid - 1)
            j = min(max(int(np.searchsorted(ve, m[1], side="right")) - 1, 0), grid - 1)
            out[i, j] += 0.5 * (t1 - t0) * float(np.linalg.norm(b - a))
    return out / ((ue[1] - ue[0]) * (ve[1] - ve[0]))


def discs_loop(net, tess, layer: int, radius: float, grid: int) -> np.ndarray:
    """The baseline: for every grid point, the distance to every piece."""
    ue, ve = _grid(tess, grid)
    start, end, _, _ = _pieces(tess, layer, ue, ve)
    units = _piece_units(net, tess.slice, layer, start, end)
    d = end - start
    dd = np.maximum((d * d).sum(1), 1e-300)
    out = np.zeros((grid, grid), dtype=np.int64)
    for i, u in enumerate((ue[:-1] + ue[1:]) / 2):
        for j, v in enumerate((ve[:-1] + ve[1:]) / 2):
            p = np.array([u, v])
            t = np.clip(((p - start) * d).sum(1) / dd, 0, 1)
            near = np.linalg.norm(start + t[:, None] * d - p, axis=1) <= radius
            out[i, j] = len(np.unique(units[near]))
    return out


def _timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w, time.process_time() - c, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--grid", type=int, default=64)
    ap.add_argument("--radius", type=float, default=0.05)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    bundle = jobs.open_run_bundle(ROOT / "assets" / "runs" / "spirals")
    index = len(bundle.run) - 1
    sl, home, _ = slice_from_text(None, bundle, index)
    tess = tessellate_all(bundle, index, sl, home, 1_000_000)
    net = bundle.network(index)
    print(f"spirals, epoch {bundle.epochs[index]}, home window {tuple(round(v, 3) for v in home)}, grid {args.grid}, torch threads {torch.get_num_threads()}")
    print(f"{'layer':>5} {'edges':>7} {'method':<34} {'wall s':>8} {'CPU s':>8} {'speed-up':>9} {'equal':>6}")
    for layer in range(len(tess)):
        t = tess[layer]
        cases = (
            ("edge_density (vectorised)", lambda: edge_density(t, layer, args.grid).density, "per-segment loop", lambda: density_loop(t, layer, args.grid)),
            (
                f"neurons_crossing_discs r={args.radius:g}",
                lambda: neurons_crossing_discs(net, t, layer, args.radius, args.grid).counts,
                "per-grid-point loop",
                lambda: discs_loop(net, t, layer, args.radius, args.grid),
            ),
        )
        for fast_name, fast, slow_name, slow in cases:
            best = {"fast": (np.inf, np.inf), "slow": (np.inf, np.inf)}
            outs = {}
            for _ in range(args.repeat):  # interleaved: both see the same machine load
                for key, fn in (("fast", fast), ("slow", slow)):
                    w, c, outs[key] = _timed(fn)
                    best[key] = (min(best[key][0], w), min(best[key][1], c))
            equal = bool(np.allclose(outs["fast"], outs["slow"], rtol=1e-12, atol=1e-9))
            n = len(t.edges(layer))
            print(f"{layer + 1:>5} {n:>7} {slow_name:<34} {best['slow'][0]:>8.3f} {best['slow'][1]:>8.3f} {1.0:>9.1f} {'':>6}")
            ratio = best["slow"][0] / best["fast"][0]
            print(f"{layer + 1:>5} {n:>7} {fast_name:<34} {best['fast'][0]:>8.3f} {best['fast'][1]:>8.3f} {ratio:>9.1f} {str(equal):>6}")


if __name__ == "__main__":
    main()
