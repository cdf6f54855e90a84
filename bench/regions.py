"""Benchmark: active bits and Chebyshev centres per second on digits networks (64-D input).

Ours: active bits by ray shooting + Clarkson's redundancy LPs warm-started in one HiGHS model
(geometry.regions.active_bits); Chebyshev centre by one HiGHS LP (scipy.optimize.linprog).
Naive (Liu et al.'s toolbox): active bits by one fresh cvxpy problem per inequality (their eq. 6 over
all other rows), Chebyshev centre by one fresh cvxpy problem per region (their LP 8); cvxpy's default
LP solver (CLARABEL here). Both on the same regions; the active sets are checked to be identical.

In-region QP (geometry.regions.qp.min_region_perturbation, the smallest decision-changing perturbation
that stays in the region, C-1 QPs per region): ours = exact constraint generation ("working-set":
closed-form hyperplane projection, then CLARABEL called directly on the rows violated so far) against
"full" = what it did before: one fresh cvxpy problem per region on all rows (CLARABEL), its class row a
cvxpy Parameter re-solved per class. Same regions, box BOX; |dd| = the largest difference of the
per-class distances.

Networks: MLPs 64-w-w-10 trained briefly on sklearn digits for widths w (the article's Fig. 3 varies
width), plus the bundled digits CNN run when present.

    .venv/bin/python bench/regions.py [--widths 16 32 64 128] [--regions 6] [--naive-regions 1] [--qp-regions 4]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cvxpy as cp
import numpy as np
import torch

from geometry.networks.datasets import builtin_dataset
from geometry.networks.network import Network
from geometry.regions import active_bits, chebyshev, hreps_from_patterns, min_region_perturbation, patterns_of
from geometry.regions.lp import _normalised
from geometry.networks.spec import mlp_spec

BOX = (-0.1, 1.1)


def train_mlp(width: int, ds, epochs: int = 30, seed: int = 0) -> Network:
    torch.manual_seed(seed)
    net = Network(mlp_spec([64, width, width, 10]))
    X = torch.as_tensor(ds.X_train)
    y = torch.as_tensor(ds.y_train)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    net.train()
    for _ in range(epochs):
        perm = torch.randperm(len(X))
        for s in range(0, len(X), 128):
            idx = perm[s : s + 128]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(X[idx]), y[idx]).backward()
            opt.step()
    net.eval()
    return net


def naive_active(h) -> np.ndarray:
    """Liu et al.'s eq. 6: for every row, a fresh cvxpy problem maximising a_i.x over all other rows."""
    An, cn, valid = _normalised(h)
    idx = np.flatnonzero(valid)
    act = []
    for k in idx:
        others = idx[idx != k]
        x = cp.Variable(h.dim)
        prob = cp.Problem(cp.Maximize(An[k] @ x), [An[others] @ x <= cn[others], An[k] @ x <= cn[k] + 1.0])
        prob.solve(solver=cp.CLARABEL)
        if prob.value > cn[k] + 1e-7:
            act.append(k)
    return np.array(act, np.int64)


def naive_chebyshev(h, box) -> float:
    An, cn, valid = _normalised(h)
    x = cp.Variable(h.dim)
    r = cp.Variable()
    cons = [An[valid] @ x + r <= cn[valid], x + r <= box[1], -x + r <= -box[0]]
    cp.Problem(cp.Maximize(r), cons).solve(solver=cp.CLARABEL)
    return float(r.value)


def bench_qp(net: Network, X: np.ndarray, n_regions: int) -> dict:
    """CPU seconds per region of min_region_perturbation, working set vs one full cvxpy QP per region."""
    P = patterns_of(net, X[:n_regions])
    hs = hreps_from_patterns(net, P)
    out = {}
    for method in ("working-set", "full"):
        t0 = time.process_time()
        out[method] = [min_region_perturbation(h, x, box=BOX, method=method) for h, x in zip(hs, X)]
        out["t_" + method] = (time.process_time() - t0) / len(hs)
    a, b = out["working-set"], out["full"]
    fin = lambda v: np.where(np.isfinite(v), v, 0.0)  # noqa: E731
    err = max(float(np.nanmax(np.abs(fin(p.per_class) - fin(q.per_class)))) for p, q in zip(a, b))
    same = all(np.array_equal(np.isfinite(p.per_class), np.isfinite(q.per_class)) and p.target == q.target for p, q in zip(a, b))
    return {
        "t_ws": out["t_working-set"],
        "t_full": out["t_full"],
        "err": err,
        "same": same,
        "fallback": sum(p.method != "working-set" for p in a),
        "n": len(hs),
    }


def bench_net(name: str, net: Network, X: np.ndarray, n_regions: int, n_naive: int) -> dict:
    P = patterns_of(net, X[:n_regions])
    hs = hreps_from_patterns(net, P)
    t0 = time.process_time()
    acts = [active_bits(h, interior=x) for h, x in zip(hs, X)]
    t_act = (time.process_time() - t0) / len(hs)
    t0 = time.process_time()
    cheb = [chebyshev(h, box=BOX) for h in hs]
    t_cheb = (time.process_time() - t0) / len(hs)
    t0 = time.process_time()
    cheb_act = [chebyshev(h, box=BOX, rows=a.bits) for h, a in zip(hs, acts)]
    t_cheb_act = (time.process_time() - t0) / len(hs)
    t0 = time.process_time()
    nacts = [naive_active(h) for h in hs[:n_naive]]
    t_nact = (time.process_time() - t0) / max(1, n_naive)
    t0 = time.process_time()
    ncheb = [naive_chebyshev(h, BOX) for h in hs[:n_naive]]
    t_ncheb = (time.process_time() - t0) / max(1, n_naive)
    same = all(np.array_equal(a.bits, b) for a, b in zip(acts, nacts))
    rad_err = max([abs(c.radius - r) for c, r in zip(cheb, ncheb)] + [abs(c.radius - d.radius) for c, d in zip(cheb, cheb_act)])
    return {
        "name": name,
        "rows": hs[0].n_bits,
        "facets": float(np.mean([a.count for a in acts])),
        "lps": float(np.mean([a.n_lps for a in acts])),
        "t_act": t_act,
        "t_nact": t_nact,
        "t_cheb": t_cheb,
        "t_ncheb": t_ncheb,
        "t_cheb_act": t_cheb_act,
        "same": same,
        "rad_err": rad_err,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", type=int, nargs="+", default=[16, 32, 64, 128])
    ap.add_argument("--regions", type=int, default=6, help="regions (test points) per network for our method")
    ap.add_argument("--naive-regions", type=int, default=1, help="regions per network for the naive cvxpy method")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-cnn", action="store_true")
    ap.add_argument("--qp-regions", type=int, default=4, help="regions per network for the in-region QP rows (0: skip)")
    ap.add_argument("--no-lp", action="store_true", help="skip the active-bit / Chebyshev table (QP rows only)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ds = builtin_dataset("digits", seed=0)
    X = np.asarray(ds.X_test, np.float64)
    nets = [(f"MLP 64-{w}-{w}-10", train_mlp(w, ds)) for w in args.widths]
    run_path = Path(__file__).resolve().parents[1] / "assets" / "runs" / "digits"
    if not args.no_cnn and run_path.exists():
        from geometry.networks.runs import open_run

        run = open_run(run_path)
        nets.append(("digits CNN (assets)", run.network(len(run) - 1)))
    if not args.no_lp:
        lp_table(nets, X, args)
    if args.qp_regions > 0:
        print(
            f"\n{'network':<22} {'regions':>7} | {'in-region QP: working set s':>27} {'full cvxpy s':>12} {'x':>6} {'regions/s':>9} | same  |dd|     fallbacks"
        )
        for name, net in nets:
            q = bench_qp(net, X, args.qp_regions)
            print(
                f"{name:<22} {q['n']:>7} | {q['t_ws']:>27.4f} {q['t_full']:>12.4f} {q['t_full'] / q['t_ws']:>6.1f} "
                f"{1 / q['t_ws']:>9.2f} | {str(q['same']):<5} {q['err']:.1e}  {q['fallback']}",
                flush=True,
            )
        print(
            f"in-region QP: CPU seconds per region (C-1 QPs each, box {BOX}); solver CLARABEL in both (working set: "
            "clarabel directly; full: through cvxpy); x = full / working set"
        )


def lp_table(nets, X, args) -> None:
    print(
        f"{'network':<22} {'rows':>5} {'facets':>7} {'LPs':>6} | {'active: ours s':>14} {'naive s':>9} {'x':>6} "
        f"{'regions/s':>9} | {'Chebyshev: ours s':>17} {'on facets s':>11} {'naive s':>8} {'x':>6} {'regions/s':>9} | same  |dr|"
    )
    for name, net in nets:
        r = bench_net(name, net, X, args.regions, args.naive_regions)
        print(
            f"{r['name']:<22} {r['rows']:>5} {r['facets']:>7.1f} {r['lps']:>6.0f} | {r['t_act']:>14.3f} "
            f"{r['t_nact']:>9.3f} {r['t_nact'] / r['t_act']:>6.1f} {1 / r['t_act']:>9.2f} | {r['t_cheb']:>17.4f} "
            f"{r['t_cheb_act']:>11.4f} {r['t_ncheb']:>8.4f} {r['t_ncheb'] / r['t_cheb']:>6.1f} {1 / r['t_cheb']:>9.1f} | "
            f"{str(r['same']):<5} "
            f"{r['rad_err']:.1e}",
            flush=True,
        )
    print(
        "CPU seconds (process time; the machine is shared) per region; 'on facets' = LP 8 on the active rows only (same optimum); "
        "x = naive / ours; LP solvers: ours HiGHS (highspy warm start + scipy), "
        "naive cvxpy default (CLARABEL)"
    )


if __name__ == "__main__":
    main()
