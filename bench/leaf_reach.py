"""Study: do horizontal paths (Grementieri & Fioresi, Algorithm 1) between two test digits reach?

For random same-class and different-class test pairs of a run's dataset, traces the paths batched
and prints, per checkpoint / step size / integrator: reach rate, median and range of the final
distance ratio ||d − x_T|| / ||d − s||, how the stalled paths stopped (LeafPaths.stall_kind), the
median ||P_row(J)(d − x_T)|| / ||d − x_T|| at the end point, the share of paths whose last step left
its linear region, median steps and seconds. Not a timing benchmark: a reproducible measurement
behind the note in geometry/foliation/leaf_paths.py.

    .venv/bin/python bench/leaf_reach.py assets/runs/digits --epochs 5,60 --alphas 0.1,0.02 \\
        --integrators euler,rk4 --pairs 20 --steps 5000 [--fixed-steps] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from geometry.foliation.leaf_paths import horizontal_paths
from geometry.networks.runs import open_run


def random_pairs(y: np.ndarray, n: int, same: bool, seed: int) -> np.ndarray:
    """(n, 2) index pairs i ≠ j with y[i] == y[j] (same) or != (different), seeded."""
    rng = np.random.default_rng(seed)
    out: list[tuple[int, int]] = []
    while len(out) < n:
        i, j = rng.choice(len(y), 2, replace=False)
        if (y[i] == y[j]) == same:
            out.append((int(i), int(j)))
    return np.asarray(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="run folder / run.json / checkpoint with a dataset (e.g. assets/runs/digits)")
    ap.add_argument("--epochs", default="last", help="comma-separated epochs, or 'last'")
    ap.add_argument("--alphas", default="0.1,0.02")
    ap.add_argument("--integrators", default="euler")
    ap.add_argument("--pairs", type=int, default=20, help="pairs per kind (same class / different class)")
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--fixed-steps", action="store_true", help="the paper's fixed α steps to the budget (clip_steps=False, no stagnation stop)")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    run = open_run(args.run)
    if run.dataset is None:
        raise SystemExit(f"run {run.name!r} names no dataset")
    X, y = run.dataset.X_test.astype(np.float64), np.asarray(run.dataset.y_test)
    epochs = [run.epochs[-1]] if args.epochs == "last" else [int(e) for e in args.epochs.split(",")]
    print(
        f"run {run.name}: {args.pairs} same-class + {args.pairs} different-class test pairs, budget {args.steps}"
        + (", fixed α steps (paper)" if args.fixed_steps else "")
    )
    print(
        f"{'epoch':>5} {'acc':>5} {'pairs':>5} {'integr':>6} {'alpha':>6} {'reached':>7} {'ratio med':>9} "
        f"{'min':>5} {'max':>5} {'stalls (min/chat/slow/budget)':>29} {'|P(d-x)|/|d-x|':>14} "
        f"{'last step left':>14} {'steps':>6} {'s':>6}"
    )
    for e in epochs:
        net = run.network(run.index_of_epoch(e))
        with torch.no_grad():
            acc = float((net(torch.as_tensor(run.dataset.X_test, dtype=torch.float32)).argmax(1).numpy() == y).mean())
        for same in (True, False):
            P = random_pairs(y, args.pairs, same, 0 if same else 1)
            for integ in args.integrators.split(","):
                for alpha in (float(a) for a in args.alphas.split(",")):
                    t0 = time.perf_counter()
                    lp = horizontal_paths(
                        net,
                        X[P[:, 0]],
                        X[P[:, 1]],
                        step_size=alpha,
                        max_steps=args.steps,
                        integrator=integ,
                        clip_steps=not args.fixed_steps,
                        stop_on_stagnation=not args.fixed_steps,
                        stagnation_window=max(100, int(2 / alpha)),
                    )
                    secs = time.perf_counter() - t0
                    idx = np.arange(len(lp))
                    ratio = lp.distance[idx, lp.num_steps] / lp.distance[:, 0]
                    kinds = [lp.stall_kind(i) for i in idx]
                    left = [bool(lp.num_steps[i]) and lp.pattern_changes[i, lp.num_steps[i] - 1].sum() > 0 for i in idx]
                    stalls = (
                        f"{kinds.count('local minimum')}/{kinds.count('chattering')}/{kinds.count('slow')}/{sum(lp.status_name(i) == 'budget' for i in idx)}"
                    )
                    print(
                        f"{e:>5} {acc:>5.3f} {'same' if same else 'diff':>5} {integ:>6} {alpha:>6g} "
                        f"{int(lp.reached.sum()):>3}/{len(lp):<3} {np.median(ratio):>9.3f} {ratio.min():>5.2f} "
                        f"{ratio.max():>5.2f} {stalls:>29} {np.median(lp.end_tangent_fraction):>14.1e} "
                        f"{np.mean(left):>14.2f} {np.median(lp.num_steps):>6.0f} {secs:>6.1f}",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
