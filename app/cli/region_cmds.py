"""``splineatlas region | walk | enumerate | region-stats``: region geometry in the full input space.

Liu et al. "Integrating geometries of ReLU feedforward neural networks": a point's region (pattern,
H-representation, active bits, neighbours, Chebyshev ball, exact boundary distance, smallest in-region
decision change), exact line walks between two points, traversal enumeration inside a box, and the
distributions of Chebyshev radii / active-bit counts for train, test and DeepFool-adversarial points.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from geometry.errors import DatasetError, SplineAtlasError


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="checkpoint file, run.json or run folder")
    p.add_argument("--epoch", type=int, default=None, help="epoch of the run (default: the last checkpoint)")
    p.add_argument("--split", choices=["train", "test"], default="train", help="dataset split the point indices refer to")
    p.add_argument("--device", default=None, help="cpu | cuda (default: cpu)")
    p.add_argument("--trust-pickle", action="store_true", help="allow full pickles (can execute code: trusted files only)")


def _box_arg(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--box", type=float, nargs="+", metavar="X",
                   help=f"{what}: LO HI (same for every coordinate) or LO_1 HI_1 ... LO_D HI_D "
                        "(default: the value range of the training data and the points analysed, with a 10%% margin)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("region", help="a point's region: pattern, active bits, neighbours, Chebyshev ball, distances")
    _common(p)
    p.add_argument("--point", type=int, required=True, metavar="I", help="index of the point in the split")
    _box_arg(p, "bounding box for the Chebyshev LP and the QP")
    p.add_argument("--active-in-box", action="store_true", help="active bits of region ∩ box (default: in all of R^D)")
    p.add_argument("--check-neighbours", action="store_true", help="also solve each neighbour's Chebyshev LP")
    p.add_argument("--no-qp", action="store_true", help="skip the smallest in-region decision-changing perturbation")
    p.add_argument("--json", metavar="OUT.json", help="write the full report")
    p.set_defaults(func=cmd_region)

    w = sub.add_parser("walk", help="exact line walk: every region crossed from point I to point J")
    _common(w)
    w.add_argument("--from", dest="src", type=int, required=True, metavar="I")
    w.add_argument("--to", dest="dst", type=int, required=True, metavar="J")
    w.add_argument("--bisection", action="store_true", help="also run Liu et al.'s bisection (Algorithm 2) and compare")
    w.add_argument("--json", metavar="OUT.json")
    w.set_defaults(func=cmd_walk)

    e = sub.add_parser("enumerate", help="every region inside a box (traversal and pruning; 2D/3D inputs)")
    _common(e)
    _box_arg(e, "the box to enumerate")
    e.add_argument("--max-regions", type=int, default=20000)
    e.add_argument("--json", metavar="OUT.json")
    e.set_defaults(func=cmd_enumerate)

    s = sub.add_parser("region-stats", help="Chebyshev radii and active-bit counts for train/test/adversarial points (CSV + plots)")
    _common(s)
    s.add_argument("--sets", default="train,test,adversarial", help="comma list of train, test, adversarial (DeepFool on test)")
    s.add_argument("--n", type=int, default=20, help="points per set (random sample, fixed seed); a 64-D CNN region "
                   "takes seconds (its active bits: hundreds of LPs)")
    s.add_argument("--radius-only", action="store_true", help="skip the active bits (Chebyshev radii only: one LP per point)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--overshoot", type=float, default=0.02, help="DeepFool overshoot for the adversarial set")
    _box_arg(s, "bounding box for the Chebyshev LP")
    s.add_argument("--out", required=True, metavar="DIR", help="output folder (points.csv, summary.csv, PNG plots)")
    s.set_defaults(func=cmd_region_stats)


def _load(args):
    from geometry.regions import check_supported
    from geometry.runs import open_run

    run = open_run(args.path, trust_pickle=args.trust_pickle)
    i = len(run) - 1 if args.epoch is None else run.index_of_epoch(args.epoch)
    net = run.network(i)
    check_supported(net)
    return run, i, net


def _split(run, split: str):
    ds = run.dataset
    if ds is None:
        raise DatasetError("the run names no dataset, so point indices mean nothing; open a run with a dataset.")
    return (ds.X_train, ds.y_train) if split == "train" else (ds.X_test, ds.y_test)


def _point(X, i: int, split: str) -> np.ndarray:
    if not 0 <= i < len(X):
        raise DatasetError(f"point index {i} is out of range: the {split} split has {len(X)} points (0..{len(X) - 1}).")
    return np.asarray(X[i], np.float64)


def _box(args, run, D: int, extra: list | None = None):
    if args.box:
        b = np.asarray(args.box, np.float64)
        if len(b) == 2:
            return float(b[0]), float(b[1])
        if len(b) == 2 * D:
            return b[0::2], b[1::2]
        raise SplineAtlasError(f"--box needs 2 or {2 * D} numbers; got {len(b)}.")
    ds = run.dataset
    if ds is None:
        raise DatasetError("no dataset to derive a box from; pass --box LO HI.")
    pts = [np.asarray(ds.X_train, np.float64)] + [np.asarray(e, np.float64).reshape(-1, D) for e in (extra or [])]
    lo, hi = min(float(p.min()) for p in pts), max(float(p.max()) for p in pts)
    pad = 0.1 * (hi - lo if hi > lo else 1.0)
    return lo - pad, hi + pad


def _write_json(path, obj) -> None:
    Path(path).write_text(json.dumps(obj, indent=1))
    print(f"wrote {path}", file=sys.stderr)


def cmd_region(args) -> int:
    from geometry.regions import describe_region

    run, i, net = _load(args)
    X, y = _split(run, args.split)
    x = _point(X, args.point, args.split)
    box = _box(args, run, net.input_dim, extra=[x])
    t0 = time.perf_counter()
    rep = describe_region(net, x, box=box, active_box=args.active_in_box, check_neighbours=args.check_neighbours,
                          perturbation=not args.no_qp, device=args.device)
    secs = time.perf_counter() - t0
    js = rep.to_json()
    js.update({"run": str(run.source), "epoch": run.epochs[i], "split": args.split, "point": args.point,
               "label": int(y[args.point]), "seconds": secs, "box": [np.asarray(box[0]).tolist(), np.asarray(box[1]).tolist()], "lp_solver": "HiGHS (scipy.optimize.linprog)",
               "qp_solver": "CLARABEL (working-set QPs, clarabel directly; cvxpy fallback)"})
    print(f"{run.name} epoch {run.epochs[i]}, {args.split} point {args.point} (label {int(y[args.point])}, "
          f"predicted {rep.predicted})")
    print(f"  units {rep.hrep.n_bits}, on {int(rep.hrep.pattern.sum())}; active bits {rep.active.count} "
          f"per layer {js['active_per_layer']} ({rep.active.n_lps} LPs)")
    print(f"  neighbours verified {int(rep.neighbours.verified.sum())}/{len(rep.neighbours.bits)}")
    if rep.chebyshev is not None:
        print(f"  Chebyshev radius {rep.chebyshev.radius:.6g} (region ∩ box)")
    print(f"  distance to region boundary {rep.boundary_distance:.6g} (bit {rep.nearest_bit})")
    if rep.perturbation is not None:
        p = rep.perturbation
        print(f"  smallest in-region decision change: " + (f"{p.distance:.6g} to class {p.target}" if p.exists
                                                          else "none (the decision boundary does not cross this region)"))
    print(f"  time {secs:.2f} s")
    if args.json:
        _write_json(args.json, js)
    return 0


def cmd_walk(args) -> int:
    from geometry.regions import bisection_walk, line_walk

    run, i, net = _load(args)
    X, _ = _split(run, args.split)
    a, b = _point(X, args.src, args.split), _point(X, args.dst, args.split)
    t0 = time.perf_counter()
    w = line_walk(net, a, b, device=args.device)
    secs = time.perf_counter() - t0
    js = w.to_json()
    js.update({"run": str(run.source), "epoch": run.epochs[i], "from": args.src, "to": args.dst, "seconds": secs})
    print(f"{run.name} epoch {run.epochs[i]}: {args.split} {args.src} -> {args.dst}, |B - A| = {w.euclidean:.4g}")
    print(f"  regions crossed {w.n_regions}; Hamming(A, B) = {js['endpoint_hamming']}; "
          f"crossings with Hamming > 1: {int(np.sum(w.hamming > 1))}; time {secs:.3f} s")
    if args.bisection:
        t0 = time.perf_counter()
        bi = bisection_walk(net, a, b, device=args.device)
        bsecs = time.perf_counter() - t0
        js["bisection"] = {"delta": bi.delta.tolist(), "regions": len(bi.patterns), "forward_passes": bi.forward_passes,
                           "unresolved": bi.unresolved, "seconds": bsecs}
        print(f"  bisection (Algorithm 2): {len(bi.patterns)} regions, {bi.forward_passes} forward passes, "
              f"{bi.unresolved} unresolved steps, {bsecs:.3f} s")
    if args.json:
        _write_json(args.json, js)
    return 0


def cmd_enumerate(args) -> int:
    from geometry.regions import enumerate_regions

    run, i, net = _load(args)
    if net.input_dim > 3 and not args.box:
        raise SplineAtlasError(f"enumeration is meant for 2D/3D inputs; this network has {net.input_dim}: "
                               f"pass an explicit small --box if you really want it (may be huge).")
    box = _box(args, run, net.input_dim) if (args.box or run.dataset is not None) else (-1.0, 1.0)
    t0 = time.perf_counter()
    e = enumerate_regions(net, box, max_regions=args.max_regions, device=args.device)
    secs = time.perf_counter() - t0
    print(f"{run.name} epoch {run.epochs[i]}: {e.n_regions} regions in the box, {len(e.adjacency)} facet adjacencies, "
          f"{e.lps} LPs, {secs:.2f} s")
    if args.json:
        js = e.to_json()
        js.update({"run": str(run.source), "epoch": run.epochs[i], "seconds": secs})
        _write_json(args.json, js)
    return 0


def cmd_region_stats(args) -> int:
    from geometry.regions import hamming_at_distance, region_stats

    run, i, net = _load(args)
    ds = run.dataset
    if ds is None:
        raise DatasetError("region-stats needs the run's dataset.")
    names = [s.strip() for s in args.sets.split(",") if s.strip()]
    bad = [s for s in names if s not in ("train", "test", "adversarial")]
    if bad:
        raise SplineAtlasError(f"unknown set {bad[0]!r}; use train, test, adversarial.")
    rng = np.random.default_rng(args.seed)
    pick = lambda X: np.asarray(X, np.float64)[np.sort(rng.choice(len(X), size=min(args.n, len(X)), replace=False))]  # noqa: E731
    sets = {}
    Xtest = pick(ds.X_test)
    for s in names:
        if s == "train":
            sets[s] = pick(ds.X_train)
        elif s == "test":
            sets[s] = Xtest
        else:
            from geometry.deepfool import deepfool

            sets[s] = deepfool(net, Xtest, overshoot=args.overshoot).perturbed
    box = _box(args, run, net.input_dim, extra=list(sets.values()))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    st = region_stats(net, sets, box, device=args.device, active=not args.radius_only,
                      progress=lambda f, m: print(f"\r  {m} ({100 * f:.0f}%)   ", end="", file=sys.stderr))
    print("", file=sys.stderr)
    secs = time.perf_counter() - t0
    st.write_csv(out / "points.csv")
    st.write_summary_csv(out / "summary.csv")
    radius = float(0.1 * (np.max(ds.X_train) - np.min(ds.X_train)))
    ham = {s: hamming_at_distance(net, X, radius, samples=5, seed=args.seed).mean(axis=1) for s, X in sets.items()}
    with open(out / "hamming_at_distance.csv", "w") as fh:
        fh.write(f"set,index,mean_hamming_at_euclidean_{radius:.4g}\n")
        for s, v in ham.items():
            for k, val in enumerate(v):
                fh.write(f"{s},{k},{val:.6g}\n")
    # pairs: each train/test point with its Euclidean nearest neighbour in the same set; adversarial:
    # each test point with its DeepFool point (Liu et al. Tables 4-5: Euclidean vs Hamming vs regions)
    from geometry.regions import nearest_neighbour_agreement, pair_distances

    pairs = {}
    for s_name, Xs in sets.items():
        if s_name == "adversarial":
            pairs[s_name] = pair_distances(net, Xtest, Xs, device=args.device)
        elif len(Xs) > 1:
            d2 = ((Xs[:, None, :] - Xs[None, :, :]) ** 2).sum(-1)
            np.fill_diagonal(d2, np.inf)
            pairs[s_name] = pair_distances(net, Xs, Xs[np.argmin(d2, axis=1)], device=args.device)
    with open(out / "pairs.csv", "w") as fh:
        fh.write("set,index,euclidean,hamming,regions_crossed,max_hamming_step\n")
        for s_name, pd in pairs.items():
            for k in range(len(pd.euclidean)):
                fh.write(f"{s_name},{k},{pd.euclidean[k]:.6g},{pd.hamming[k]},{pd.regions[k]},{pd.max_step[k]}\n")
    nn_acc = {}
    for s_name, (Xs, ys) in (("train", (ds.X_train, ds.y_train)), ("test", (ds.X_test, ds.y_test))):
        if s_name in sets:
            sub = np.sort(rng.choice(len(Xs), size=min(len(Xs), 500), replace=False))
            nn_acc[s_name] = nearest_neighbour_agreement(net, np.asarray(Xs, np.float64)[sub], np.asarray(ys)[sub])
    _plots(st, ham, radius, out)
    print(f"{run.name} epoch {run.epochs[i]}: {sum(len(v) for v in sets.values())} points in {secs:.1f} s")
    print(f"  {'set':<12} {'radius mean':>12} {'sd':>10} {'max':>10} {'min':>10} {'active mean':>12} {'Hamming@r':>10}")
    summ = st.summary()
    for s in sets:
        r, a = summ[s]["radius"], summ[s]["active"]
        fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
        print(f"  {s:<12} {fmt(r['mean'], '>12.4g')} {fmt(r['sd'], '>10.3g')} {fmt(r['max'], '>10.4g')} "
              f"{fmt(r['min'], '>10.4g')} {fmt(a['mean'], '>12.1f')} {float(np.mean(ham[s])):>10.1f}")
    print(f"  {'pairs':<12} {'Euclidean':>10} {'Hamming':>9} {'regions crossed':>16}   (means)")
    for s_name, pd in pairs.items():
        print(f"  {s_name:<12} {pd.euclidean.mean():>10.4g} {pd.hamming.mean():>9.1f} {pd.regions.mean():>16.1f}")
    for s_name, acc in nn_acc.items():
        print(f"  1-NN label agreement ({s_name}, <=500 points): Euclidean {acc['euclidean']:.3f}, "
              f"Hamming {acc['hamming']:.3f}")
    (out / "nearest_neighbour.json").write_text(json.dumps(nn_acc, indent=1))
    print(f"wrote {out}/points.csv, summary.csv, pairs.csv, hamming_at_distance.csv, nearest_neighbour.json, "
          f"radii.png, active_bits.png, hamming_at_distance.png", file=sys.stderr)
    return 0


def _plots(st, ham, radius, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(dict.fromkeys(st.set_names.tolist()))
    for fname, values, xlabel in (("radii.png", st.radius, "Chebyshev radius of the region (∩ box)"),
                                  ("active_bits.png", np.where(st.active >= 0, st.active, np.nan),
                                   "active bits (facets) of the region")):
        fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
        finite = values[np.isfinite(values)]
        bins = np.histogram_bin_edges(finite, bins=20) if len(finite) else 10
        for s in sets:
            v = values[(st.set_names == s) & np.isfinite(values)]
            ax.hist(v, bins=bins, alpha=0.5, label=f"{s} (n={len(v)})")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("number of points")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / fname)
        plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    ax.boxplot([ham[s] for s in sets], tick_labels=sets)
    ax.set_ylabel(f"Hamming distance at Euclidean distance {radius:.3g}")
    ax.set_xlabel("set")
    fig.tight_layout()
    fig.savefig(out / "hamming_at_distance.png")
    plt.close(fig)
