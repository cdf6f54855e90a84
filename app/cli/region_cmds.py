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

from app.cli.common import add_trust_argument
from geometry.errors import DatasetError, SplineAtlasError
from geometry.safe_io import atomic_open, atomic_save, write_npz, write_text


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="checkpoint file, run.json or run folder")
    p.add_argument("--epoch", type=int, default=None, help="epoch of the run (default: the last checkpoint)")
    p.add_argument("--split", choices=["train", "test"], default="train", help="dataset split the point indices refer to")
    p.add_argument("--device", default=None, help="cpu | cuda (default: cpu)")
    add_trust_argument(p)


def _box_arg(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--box",
        type=float,
        nargs="+",
        metavar="X",
        help=f"{what}: LO HI (same for every coordinate) or LO_1 HI_1 ... LO_D HI_D "
        "(default: the value range of the training data and the points analysed, with a 10%% margin)",
    )


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
    e.add_argument(
        "--method",
        choices=("auto", "qhull", "lp"),
        default="auto",
        help="how each region's facets are found: qhull (Qhull halfspace intersection, batched; 2-4 inputs), "
        "lp (a Chebyshev LP and redundancy LPs per region; any dimension), auto (qhull up to 4 inputs)",
    )
    e.add_argument("--json", metavar="OUT.json")
    e.set_defaults(func=cmd_enumerate)

    s = sub.add_parser("region-stats", help="Chebyshev radii and active-bit counts for train/test/adversarial points (CSV + plots)")
    _common(s)
    s.add_argument("--sets", default="train,test,adversarial", help="comma list of train, test, adversarial (DeepFool on test)")
    s.add_argument(
        "--n", type=int, default=20, help="points per set (random sample, fixed seed); a 64-D CNN region takes seconds (its active bits: hundreds of LPs)"
    )
    s.add_argument("--radius-only", action="store_true", help="skip the active bits (Chebyshev radii only: one LP per point)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--overshoot", type=float, default=0.02, help="DeepFool overshoot for the adversarial set")
    _box_arg(s, "bounding box for the Chebyshev LP")
    s.add_argument("--out", required=True, metavar="DIR", help="output folder (points.csv, summary.csv, PNG plots)")
    s.set_defaults(func=cmd_region_stats)

    d = sub.add_parser(
        "dual", help="dual space of a 2D net's region maps (W_ω, b_ω) over a run's epochs: npz, PNG, animation; --compare: linear map to a second net"
    )
    d.add_argument("path", help="run.json or run folder (a 2D-input network)")
    d.add_argument("--out", required=True, metavar="DIR", help="folder for dual.npz, dual_last.png, dual.mp4|gif")
    d.add_argument("--epochs", default="all", help="all, or a comma list of checkpoint epochs (default all)")
    d.add_argument("--fps", type=float, default=4.0, help="animation frames per second (default 4)")
    d.add_argument("--format", choices=["mp4", "gif"], default="mp4", help="animation format (default mp4)")
    d.add_argument("--size", type=int, nargs=2, metavar=("W", "H"), default=[960, 540], help="animation and PNG size in pixels (default 960 540)")
    d.add_argument("--resolution", type=int, default=101, help="grid points per axis (their Fig. 4: 101)")
    _box_arg(d, "the square sampled by the grid (default: the data range with a 10%% margin, else -1 1)")
    d.add_argument(
        "--compare",
        metavar="PATH2",
        help="second run/checkpoint trained on the same problem: fit the least-squares maps M_j between the two nets' region functions (Sattelberg eq. 8)",
    )
    d.add_argument(
        "--fit", choices=["train", "grid"], default="train", help="points the maps are fitted on: the training set (their Table 2) or the grid (their Fig. 6)"
    )
    d.add_argument("--device", default=None, help="cpu | cuda (default: cpu)")
    add_trust_argument(d)
    d.set_defaults(func=cmd_dual)


def _load(args):
    """(run, checkpoint index, network) for PATH and --epoch, refusing a network the region tools cannot take."""
    from app.cli.tessellate_cmd import load_checkpoint_network
    from geometry.regions import check_supported

    run, i, net = load_checkpoint_network(args)
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
    from geometry.regions import data_box

    return data_box(ds.X_train, extra or [])


def _write_json(path, obj) -> None:
    write_text(path, json.dumps(obj, indent=1))
    print(f"wrote {path}", file=sys.stderr)


def cmd_region(args) -> int:
    from geometry.regions import describe_region

    run, i, net = _load(args)
    X, y = _split(run, args.split)
    x = _point(X, args.point, args.split)
    box = _box(args, run, net.input_dim, extra=[x])
    t0 = time.perf_counter()
    rep = describe_region(
        net, x, box=box, active_box=args.active_in_box, check_neighbours=args.check_neighbours, perturbation=not args.no_qp, device=args.device
    )
    secs = time.perf_counter() - t0
    js = rep.to_json()
    js.update(
        {
            "run": str(run.source),
            "epoch": run.epochs[i],
            "split": args.split,
            "point": args.point,
            "label": int(y[args.point]),
            "seconds": secs,
            "box": [np.asarray(box[0]).tolist(), np.asarray(box[1]).tolist()],
            "lp_solver": "HiGHS via highspy (Chebyshev LP: interior point + crossover; facet LPs warm-started), "
            'scipy.optimize.linprog(method="highs") for one-off redundancy LPs',
            "qp_solver": "CLARABEL (working-set QPs, clarabel directly; cvxpy fallback)",
        }
    )
    print(f"{run.name} epoch {run.epochs[i]}, {args.split} point {args.point} (label {int(y[args.point])}, predicted {rep.predicted})")
    print(
        f"  units {rep.hrep.n_bits}, on {int(rep.hrep.pattern.sum())}; active bits {rep.active.count} "
        f"per layer {js['active_per_layer']} ({rep.active.n_lps} LPs)"
    )
    print(f"  neighbours verified {int(rep.neighbours.verified.sum())}/{len(rep.neighbours.bits)}")
    if rep.chebyshev is not None:
        print(f"  Chebyshev radius {rep.chebyshev.radius:.6g} (region ∩ box)")
    print(f"  distance to region boundary {rep.boundary_distance:.6g} (bit {rep.nearest_bit})")
    if rep.perturbation is not None:
        p = rep.perturbation
        print(
            "  smallest in-region decision change: "
            + (f"{p.distance:.6g} to class {p.target}" if p.exists else "none (the decision boundary does not cross this region)")
        )
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
    print(
        f"  regions crossed {w.n_regions}; Hamming(A, B) = {js['endpoint_hamming']}; "
        f"crossings with Hamming > 1: {int(np.sum(w.hamming > 1))}; time {secs:.3f} s"
    )
    if args.bisection:
        t0 = time.perf_counter()
        bi = bisection_walk(net, a, b, device=args.device)
        bsecs = time.perf_counter() - t0
        js["bisection"] = {
            "delta": bi.delta.tolist(),
            "regions": len(bi.patterns),
            "forward_passes": bi.forward_passes,
            "unresolved": bi.unresolved,
            "seconds": bsecs,
        }
        print(f"  bisection (Algorithm 2): {len(bi.patterns)} regions, {bi.forward_passes} forward passes, {bi.unresolved} unresolved steps, {bsecs:.3f} s")
    if args.json:
        _write_json(args.json, js)
    return 0


def cmd_enumerate(args) -> int:
    from geometry.regions import enumerate_regions

    run, i, net = _load(args)
    if net.input_dim > 3 and not args.box:
        raise SplineAtlasError(
            f"enumeration is meant for 2D/3D inputs; this network has {net.input_dim}: pass an explicit small --box if you really want it (may be huge)."
        )
    box = _box(args, run, net.input_dim) if (args.box or run.dataset is not None) else (-1.0, 1.0)
    t0 = time.perf_counter()
    last = [0.0]
    print(f"  enumerating the regions of a {net.input_dim}-D box (budget {args.max_regions} regions) ...", file=sys.stderr, flush=True)

    def progress(frac: float, msg: str) -> None:  # at most ~4 lines a second: a large box can take hours
        now = time.perf_counter()
        if now - last[0] > 0.25:
            last[0] = now
            print(f"\r  {msg} ({now - t0:.0f} s; Ctrl+C stops)   ", end="", file=sys.stderr, flush=True)

    e = enumerate_regions(net, box, max_regions=args.max_regions, device=args.device, progress=progress, method=args.method)
    print("", file=sys.stderr)
    secs = time.perf_counter() - t0
    print(f"{run.name} epoch {run.epochs[i]}: {e.n_regions} regions in the box, {len(e.adjacency)} facet adjacencies, {e.lps} solver LPs, {secs:.2f} s")
    if args.json:
        js = e.to_json()
        js.update({"run": str(run.source), "epoch": run.epochs[i], "seconds": secs})
        _write_json(args.json, js)
    return 0


def cmd_region_stats(args) -> int:
    from geometry.regions import hamming_at_distance, region_stats, sample_region_sets

    run, i, net = _load(args)
    ds = run.dataset
    if ds is None:
        raise DatasetError("region-stats needs the run's dataset.")
    names = [s.strip() for s in args.sets.split(",") if s.strip()]
    sets = sample_region_sets(net, ds, names, args.n, seed=args.seed, overshoot=args.overshoot)
    Xtest = sample_region_sets(net, ds, ["test"], args.n, seed=args.seed)["test"] if "adversarial" in sets else None
    box = _box(args, run, net.input_dim, extra=list(sets.values()))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    st = region_stats(
        net, sets, box, device=args.device, active=not args.radius_only, progress=lambda f, m: print(f"\r  {m} ({100 * f:.0f}%)   ", end="", file=sys.stderr)
    )
    print("", file=sys.stderr)
    secs = time.perf_counter() - t0
    st.write_csv(out / "points.csv")
    st.write_summary_csv(out / "summary.csv")
    radius = float(0.1 * (np.max(ds.X_train) - np.min(ds.X_train)))
    ham = {s: hamming_at_distance(net, X, radius, samples=5, seed=args.seed).mean(axis=1) for s, X in sets.items()}
    with atomic_open(out / "hamming_at_distance.csv", "w") as fh:
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
    with atomic_open(out / "pairs.csv", "w") as fh:
        fh.write("set,index,euclidean,hamming,regions_crossed,max_hamming_step\n")
        for s_name, pd in pairs.items():
            for k in range(len(pd.euclidean)):
                fh.write(f"{s_name},{k},{pd.euclidean[k]:.6g},{pd.hamming[k]},{pd.regions[k]},{pd.max_step[k]}\n")
    nn_acc = {}
    rng = np.random.default_rng(args.seed)  # the <= 500-point subsample of the 1-NN agreement
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
        print(
            f"  {s:<12} {fmt(r['mean'], '>12.4g')} {fmt(r['sd'], '>10.3g')} {fmt(r['max'], '>10.4g')} "
            f"{fmt(r['min'], '>10.4g')} {fmt(a['mean'], '>12.1f')} {float(np.mean(ham[s])):>10.1f}"
        )
    print(f"  {'pairs':<12} {'Euclidean':>10} {'Hamming':>9} {'regions crossed':>16}   (means)")
    for s_name, pd in pairs.items():
        print(f"  {s_name:<12} {pd.euclidean.mean():>10.4g} {pd.hamming.mean():>9.1f} {pd.regions.mean():>16.1f}")
    for s_name, acc in nn_acc.items():
        print(f"  1-NN label agreement ({s_name}, <=500 points): Euclidean {acc['euclidean']:.3f}, Hamming {acc['hamming']:.3f}")
    write_text(out / "nearest_neighbour.json", json.dumps(nn_acc, indent=1))
    print(
        f"wrote {out}/points.csv, summary.csv, pairs.csv, hamming_at_distance.csv, nearest_neighbour.json, radii.png, active_bits.png, hamming_at_distance.png",
        file=sys.stderr,
    )
    return 0


def _plots(st, ham, radius, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(dict.fromkeys(st.set_names.tolist()))
    for fname, values, xlabel in (
        ("radii.png", st.radius, "Chebyshev radius of the region (∩ box)"),
        ("active_bits.png", np.where(st.active >= 0, st.active, np.nan), "active bits (facets) of the region"),
    ):
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
        atomic_save(out / fname, fig.savefig)
        plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    ax.boxplot([ham[s] for s in sets], tick_labels=sets)
    ax.set_ylabel(f"Hamming distance at Euclidean distance {radius:.3g}")
    ax.set_xlabel("set")
    fig.tight_layout()
    atomic_save(out / "hamming_at_distance.png", fig.savefig)
    plt.close(fig)


def cmd_dual(args) -> int:
    """Sattelberg et al.: region affine maps as points of R^{D+1}, per epoch, and the two-network map."""
    from app.export.video import check_video_size, write_video
    from geometry.regions import check_supported
    from geometry.regions.dual import dual_points, grid_dual_over_epochs
    from geometry.networks.runs import open_run

    run = open_run(args.path, trust_code=args.trust_code)
    net = run.network(len(run) - 1)
    check_supported(net)
    if net.input_dim != 2:
        raise SplineAtlasError(f"the dual-space view is for 2D-input networks; this one has {net.input_dim} inputs.")
    if not 3 <= args.resolution <= 1001:
        raise SplineAtlasError(f"--resolution must be 3..1001; got {args.resolution}.")
    suffix = "." + args.format
    W, H = args.size
    check_video_size(W, H, suffix)
    if not 0.1 <= args.fps <= 120:
        raise SplineAtlasError(f"--fps {args.fps:g} is out of range (0.1..120).")
    idx = run.epoch_indices(args.epochs)
    box = _grid_box(args, run)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    grids = grid_dual_over_epochs(
        run, idx, box, args.resolution, device=args.device, progress=lambda f, m: print(f"\r  dual points: {m} ({100 * f:.0f}%)   ", end="", file=sys.stderr)
    )
    print("", file=sys.stderr)
    epochs = [run.epochs[i] for i in idx]
    # the regions holding training points (red in their Fig. 4), at most 2000 points
    data = None
    if run.dataset is not None:
        Xd = np.asarray(run.dataset.X_train, np.float64)
        Xd = Xd[np.random.default_rng(0).choice(len(Xd), size=min(len(Xd), 2000), replace=False)]
        data = []
        for i in idx:
            C = dual_points(run.network(i), Xd, device=args.device)
            _, first = np.unique(C.reshape(len(C), -1), axis=0, return_index=True)
            data.append(C[np.sort(first)])
    offsets = np.concatenate([[0], np.cumsum([len(g.duals) for g in grids])]).astype(np.int64)
    arrays = {
        "epochs": np.asarray(epochs, np.int64),
        "offsets": offsets,
        "duals": np.concatenate([g.duals for g in grids]),
        "points": np.concatenate([g.points for g in grids]),
        "counts": np.concatenate([g.counts for g in grids]),
        "labels": np.concatenate([g.labels for g in grids]),
        "n_regions": np.diff(offsets),
        "box_lo": np.broadcast_to(np.asarray(box[0], np.float64), (2,)).copy(),
        "box_hi": np.broadcast_to(np.asarray(box[1], np.float64), (2,)).copy(),
        "resolution": np.int64(args.resolution),
    }
    if data is not None:
        arrays["data_offsets"] = np.concatenate([[0], np.cumsum([len(c) for c in data])]).astype(np.int64)
        arrays["data_duals"] = np.concatenate(data)
    write_npz(out / "dual.npz", **arrays)
    names = list(run.class_names or []) or [str(j) for j in range(grids[0].duals.shape[1])]
    fig, frame = _dual_frames(grids, data, epochs, names, W, H, run.name)
    from app.render.slice_figure import save_figure

    frame(len(grids) - 1)
    save_figure(fig, out / "dual_last.png")
    video = out / f"dual{suffix}"
    write_video(video, len(grids), frame, fps=args.fps, progress=lambda f, m: print(f"\r  animation: {m}   ", end="", file=sys.stderr))
    print("", file=sys.stderr)
    import matplotlib.pyplot as plt

    plt.close(fig)
    secs = time.perf_counter() - t0
    print(
        f"{run.name}: {len(grids)} epochs ({epochs[0]}..{epochs[-1]}), {args.resolution}x{args.resolution} grid; "
        f"regions met per epoch {int(arrays['n_regions'].min())}..{int(arrays['n_regions'].max())} "
        f"(last {int(arrays['n_regions'][-1])}); {secs:.1f} s"
    )
    print(f"wrote {out}/dual.npz, dual_last.png, {video.name} ({len(grids)} frames, {W}x{H}, {args.fps:g} fps)", file=sys.stderr)
    if args.compare:
        _dual_compare(args, run, net, grids[-1], out)
    return 0


def _dual_compare(args, run, net, grid, out: Path) -> None:
    from geometry.regions import check_supported
    from geometry.regions.dual import map_between
    from geometry.networks.runs import open_run

    run2 = open_run(args.compare, trust_code=args.trust_code)
    net2 = run2.network(len(run2) - 1)
    check_supported(net2)
    if net2.input_dim != net.input_dim:
        raise SplineAtlasError(f"--compare: the second net takes {net2.input_dim} inputs, the first {net.input_dim}.")
    if net2.output_dim != net.output_dim:
        raise SplineAtlasError(f"--compare: the second net has {net2.output_dim} outputs, the first {net.output_dim}.")
    ds = run.dataset
    if ds is None:
        raise DatasetError("--compare needs labelled test points: the first run names no dataset.")
    Xfit = np.asarray(ds.X_train, np.float64) if args.fit == "train" else _grid_points(_grid_box(args, run), args.resolution)
    Xev, yev = np.asarray(ds.X_test, np.float64), np.asarray(ds.y_test)
    res = {}
    for key, (a, b) in (("net1_to_net2", (net, net2)), ("net2_to_net1", (net2, net))):
        m = map_between(a, b, Xfit, Xev, yev, device=args.device)
        res[key] = {"acc_source": m.acc_net1, "acc_target": m.acc_net2, "acc_mapped": m.acc_mapped, "residual": m.residual, "M": m.M.tolist()}
    js = {
        "net1": str(run.source),
        "epoch1": run.epochs[-1],
        "net2": str(run2.source),
        "epoch2": run2.epochs[-1],
        "fit": args.fit,
        "n_fit": len(Xfit),
        "n_eval": len(Xev),
        "eval": "test split of the first run's dataset",
        **res,
    }
    _write_json(out / "compare.json", js)
    f, r = res["net1_to_net2"], res["net2_to_net1"]
    print(f"compare (maps fitted on {len(Xfit)} {args.fit} points, accuracy on {len(Xev)} test points):")
    print(f"  net1 {f['acc_source']:.4f}  net2 {f['acc_target']:.4f}")
    print(f"  net1 mapped to net2: {f['acc_mapped']:.4f} (relative residual {f['residual']:.3g})")
    print(f"  net2 mapped to net1: {r['acc_mapped']:.4f} (relative residual {r['residual']:.3g})")


def _grid_box(args, run):
    return _box(args, run, 2) if (args.box or run.dataset is not None) else (-1.0, 1.0)


def _grid_points(box, resolution: int) -> np.ndarray:
    """The grid of :func:`geometry.regions.dual.grid_dual` (same order)."""
    lo, hi = (np.broadcast_to(np.asarray(b, np.float64), (2,)) for b in box)
    gx, gy = np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution)
    return np.stack(np.meshgrid(gx, gy), -1).reshape(-1, 2)


def _dual_frames(grids, data, epochs, names, W: int, H: int, title: str):
    """Figure and ``frame(i) -> (H, W, 3)`` uint8: one panel per output j, scatter of the grid regions'
    (w_j1, w_j2) coloured by b_j (size ∝ sqrt of grid points per region), training-data regions in red;
    axis and colour limits fixed over all frames."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    C = grids[0].duals.shape[1]
    everything = np.concatenate([g.duals for g in grids] + (list(data) if data else []))  # (M, C, 3)
    lims = []
    for j in range(C):
        lo, hi = everything[:, j, :2].min(0), everything[:, j, :2].max(0)
        pad = 0.06 * np.maximum(hi - lo, 1e-9)
        lims.append((lo - pad, hi + pad))
    blo, bhi = float(everything[:, :, 2].min()), float(everything[:, :, 2].max())
    if bhi <= blo:
        blo, bhi = blo - 1.0, bhi + 1.0
    dpi = 100
    fig = plt.figure(figsize=(W / dpi, H / dpi), dpi=dpi)
    ncol = min(C, 5)
    nrow = -(-C // ncol)
    fs = 9 if W >= 800 else 7
    fig.subplots_adjust(left=0.09, right=0.87, bottom=0.2, top=0.82, wspace=0.32, hspace=0.5)
    norm = matplotlib.colors.Normalize(blo, bhi)
    total = float(sum(grids[0].counts))
    scat, red = [], []
    for j in range(C):
        ax = fig.add_subplot(nrow, ncol, j + 1)
        ax.set_xlim(lims[j][0][0], lims[j][1][0])
        ax.set_ylim(lims[j][0][1], lims[j][1][1])
        ax.set_xlabel("$w_1$ (∂f/∂x₁)", fontsize=fs)
        ax.set_ylabel("$w_2$ (∂f/∂x₂)", fontsize=fs)
        ax.set_title(f"output {j}: {names[j]}" if C > 1 else "the single logit", fontsize=fs)
        ax.tick_params(labelsize=fs - 1)
        ax.grid(alpha=0.3)
        scat.append(ax.scatter([], [], c=[], cmap="viridis", norm=norm, s=[], edgecolors="none", alpha=0.85))
        red.append(ax.scatter([], [], s=10, facecolors="none", edgecolors="red", linewidths=0.8))
    cax = fig.add_axes([0.89, 0.2, 0.018, 0.62])  # after the panels: fig.axes[:C] are the panels
    cb = fig.colorbar(matplotlib.cm.ScalarMappable(norm, "viridis"), cax=cax)
    cb.set_label("$b$ (bias of the region's map)", fontsize=fs)
    cb.ax.tick_params(labelsize=fs - 1)
    sup = fig.text(0.5, 0.975, "", ha="center", va="top", fontsize=fs + 2)
    sub = fig.text(0.5, 0.915, "", ha="center", va="top", fontsize=fs)
    if data:
        from matplotlib.lines import Line2D

        fig.legend(
            handles=[
                Line2D([], [], ls="none", marker="o", mfc="none", mec="red", ms=5),
                Line2D([], [], ls="none", marker="o", color=matplotlib.colormaps["viridis"](0.5), ms=5),
            ],
            labels=["regions of training points", "regions met by the grid (size: area)"],
            loc="lower center",
            fontsize=fs - 1,
            frameon=False,
            ncols=2,
            bbox_to_anchor=(0.5, 0.0),
        )

    def frame(i: int) -> np.ndarray:
        g = grids[i]
        size = 6.0 + 400.0 * np.sqrt(g.counts / total)
        for j in range(C):
            scat[j].set_offsets(g.duals[:, j, :2])
            scat[j].set_array(g.duals[:, j, 2])
            scat[j].set_sizes(size)
            red[j].set_offsets(data[i][:, j, :2] if data else np.zeros((0, 2)))
        sup.set_text(f"{title}: epoch {epochs[i]}")
        sub.set_text(f"dual space of the region maps (W_ω, b_ω): {len(g.duals)} regions on the grid")
        fig.canvas.draw()
        img = np.asarray(fig.canvas.buffer_rgba())[..., :3]
        if img.shape[:2] != (H, W):
            raise SplineAtlasError(f"rendered {img.shape[1]}x{img.shape[0]} instead of {W}x{H}.")
        return img.copy()

    return fig, frame
