"""Benchmark (#17): region enumeration in a box (``geometry.regions.enumerate_regions``) against two naive
breadth-first searches on the same random MLPs in the same run, interleaved; wall and CPU time, regions
and LPs, and the region sets checked to be equal.

Ours (``method="auto"``, 2-4 inputs): a batch of queued regions per forward pass, each region's facets
from Qhull's halfspace intersection about its witness point, the steps across all facets of a batch
checked in one forward pass per round, Chebyshev centres as the best vertex of each facet LP. Also
timed: ``method="lp"``, the per-region LP traversal (a Chebyshev LP and ``active_bits`` per region; the
only path before this one, and still the one for more than 4 inputs).

One LP + Qhull per region (the strong naive baseline): per popped region one scipy Chebyshev LP (HiGHS)
for an interior point, its facets from Qhull's halfspace intersection, its facets' flips queued.
One LP per flipped pattern (the straightforward traversal): pop a pattern, build its H-representation
(one forward pass), solve one ``scipy.optimize.linprog`` for the Chebyshev ball of region ∩ box; a
positive radius makes it a region, and every single-bit flip of its pattern never seen is queued (the
regions across its facets are among them; the other flips are empty).

    .venv/bin/python bench/enumerate.py [--nets 2-16-16-1,2-16-16-16-1,3-12-12-1] [--box 1] [--repeat 2] [--skip-flip-bfs]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy.optimize import linprog

from geometry.networks.network import Network
from geometry.networks.spec import mlp_spec
from geometry.regions import enumerate_regions, hreps_from_patterns, patterns_of

NETS = "2-16-16-1,2-16-16-16-1,2-32-32-1,3-12-12-1"


def naive_bfs(net: Network, lo: np.ndarray, hi: np.ndarray, facets_only: bool, tol: float = 1e-9) -> tuple[set[bytes], int]:
    """The regions meeting the box's interior (their packed patterns) and the LPs solved, by a BFS that
    solves one scipy Chebyshev LP per popped pattern; ``facets_only``: queue the flips of its facets
    (Qhull's halfspace intersection about the LP's centre), else every single-bit flip."""
    from scipy.spatial import HalfspaceIntersection

    D = net.input_dim
    p0 = patterns_of(net, (0.5 * (lo + hi))[None, :])[0]
    key = lambda p: np.packbits(p).tobytes()  # noqa: E731
    queue, seen, regions, lps, head = [p0], {key(p0)}, set(), 0, 0
    walls = np.vstack([np.eye(D), -np.eye(D)])
    while head < len(queue):
        p = queue[head]
        head += 1
        h = hreps_from_patterns(net, p)[0]
        A = np.vstack([h.A, walls])
        c = np.concatenate([h.c, hi, -lo])
        n = np.linalg.norm(A, axis=1)
        ok = n > 0
        if np.any(~ok & (c < 0)):
            continue
        res = linprog(np.r_[np.zeros(D), -1.0], A_ub=np.hstack([A[ok], n[ok, None]]), b_ub=c[ok], bounds=[(None, None)] * D + [(None, 1e3)], method="highs")
        lps += 1
        if res.status != 0 or -res.fun <= tol:
            continue
        regions.add(key(p))
        if facets_only:
            rows = np.flatnonzero(ok)
            flips = [k for k in rows[HalfspaceIntersection(np.hstack([A[rows], -c[rows, None]]), res.x[:D]).dual_vertices] if k < p.shape[0]]
        else:
            flips = range(p.shape[0])
        for k in flips:
            q = p.copy()
            q[k] = not q[k]
            if key(q) not in seen:
                seen.add(key(q))
                queue.append(q)
    return regions, lps


def _timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nets", default=NETS, help="comma-separated widths, input first (random weights, seed 0)")
    ap.add_argument("--box", type=float, default=1.0, help="half-width of the box [-b, b]^D")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-flip-bfs", action="store_true", help="leave out the slowest baseline (one LP per flipped pattern)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for arch in args.nets.split(","):
        widths = [int(w) for w in arch.split("-")]
        torch.manual_seed(0)
        net = Network(mlp_spec(widths)).eval()
        lo, hi = np.full(widths[0], -args.box), np.full(widths[0], args.box)
        ours, lp, qhull, naive = [], [], [], []
        for rep in range(args.repeat):  # interleaved, the order alternating
            runs = [
                ("ours", lambda: enumerate_regions(net, (lo, hi))),
                ("lp", lambda: enumerate_regions(net, (lo, hi), method="lp")),
                ("qhull", lambda: naive_bfs(net, lo, hi, facets_only=True)),
            ]
            if not args.skip_flip_bfs:
                runs.append(("naive", lambda: naive_bfs(net, lo, hi, facets_only=False)))
            for name, fn in runs if rep % 2 == 0 else runs[::-1]:
                {"ours": ours, "lp": lp, "qhull": qhull, "naive": naive}[name].append(_timed(fn))
        e = ours[0][0]
        mine = {np.packbits(p).tobytes() for p in e.patterns}
        ow, oc = min(r[1] for r in ours), min(r[2] for r in ours)
        line = f"{arch:14s} {e.n_regions:7d} | ours {ow:6.2f}s wall {oc:6.2f}s CPU {e.lps:6d} LPs"
        lw = min(r[1] for r in lp)
        same = "same regions" if {np.packbits(p).tobytes() for p in lp[0][0].patterns} == mine else "DIFFERENT"
        line += f" | method lp (per-region LPs): {lw:6.2f}s wall, ours {lw / ow:4.1f}x faster, {same}"
        for label, rows in (("one LP + Qhull per region", qhull), ("one LP per flipped pattern", naive)):
            if rows:
                found, lps = rows[0][0]
                nw, nc = min(r[1] for r in rows), min(r[2] for r in rows)
                same = "same regions" if found == mine else f"DIFFERENT ({len(found ^ mine)})"
                line += f" | {label}: {nw:6.2f}s wall {nc:6.2f}s CPU {lps:6d} LPs, ours {nw / ow:4.1f}x faster ({oc and nc / oc:4.1f}x CPU), {same}"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
