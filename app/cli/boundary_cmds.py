"""``splineatlas centroids | deepfool | curvature | detect | angles``: power-diagram centroids and
decision-boundary analysis of a run's checkpoint at chosen data points or on a tessellated slice (CLI twins
of geometry.power_diagram, geometry.boundary.deepfool, geometry.boundary.curvature, geometry.boundary.detection and
geometry.boundary.boundary_angles)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from app.cli.tessellate_cmd import load_checkpoint_network
from app.cli.common import add_trust_argument
from geometry.errors import DatasetError, InputFileError, SplineAtlasError
from geometry.safe_io import atomic_open, atomic_save, write_npz, write_text


def _common(p: argparse.ArgumentParser, out_kind: str = "json") -> None:
    p.add_argument("path", help="checkpoint file, run.json or run folder")
    p.add_argument("--epoch", type=int, default=None, help="epoch of the run (default: the last checkpoint)")
    p.add_argument("--points", metavar="I,J,...", default=None, help="indices into the run's dataset (default: 0..7)")
    p.add_argument("--split", choices=["train", "test"], default="train", help="which split --points indexes")
    p.add_argument("--points-file", metavar="FILE.npz", default=None, help="use the rows of 'X' in this npz instead of dataset indices")
    p.add_argument("--device", default=None, help="cpu | cuda (default: CUDA when present)")
    add_trust_argument(p)
    if out_kind == "json":
        p.add_argument("--json", metavar="OUT.json", default=None, help="write the results as JSON")


def register(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("centroids", help="power-diagram centroids and radii of the cells holding data points, per layer")
    _common(c, out_kind="dir")
    c.add_argument("--layer", default="all", help="layer 1..L, comma-separated layers, or 'all' (default)")
    c.add_argument("--out", required=True, metavar="DIR", help="folder for centroids.npz (+ one PNG per centroid for images)")
    c.set_defaults(func=cmd_centroids)

    d = sub.add_parser("deepfool", help="DeepFool minimal perturbations r(x) (untargeted or targeted)")
    _common(d)
    d.add_argument("--target", type=int, default=None, help="target class (default: untargeted)")
    d.add_argument("--overshoot", type=float, default=0.02)
    d.add_argument("--max-iter", type=int, default=50)
    d.set_defaults(func=cmd_deepfool)

    k = sub.add_parser("curvature", help="principal curvatures of the decision boundary near data points (Fawzi eq. 1)")
    _common(k)
    k.add_argument(
        "--mode",
        choices=["auto", "exact", "secant"],
        default="auto",
        help="Hessian-vector products: exact (smooth nets) or secant (piecewise-linear nets; auto picks)",
    )
    k.add_argument("--fd-scale", type=float, default=None, help="secant scale in input units (default: the median DeepFool distance of the points)")
    k.add_argument("--num", type=int, default=None, help="number of curvatures (Lanczos steps; default D-1 = all)")
    k.set_defaults(func=cmd_curvature)

    t = sub.add_parser("detect", help="curvature-sign detector of perturbed samples (Fawzi Algorithm 2)")
    _common(t)
    t.add_argument("--threshold", type=float, default=None, help="detection threshold on rho (default: calibrated on --calibrate training points)")
    t.add_argument("--calibrate", type=int, default=100, metavar="N", help="calibrate the threshold on the first N training points and their DeepFool versions")
    t.add_argument(
        "--perturbed-when",
        choices=["below", "above"],
        default="below",
        help="below: rho < t means perturbed (the paper's Table II sign, default); above: Algorithm 2 as printed",
    )
    t.add_argument("--mode", choices=["auto", "exact", "secant"], default="auto")
    t.add_argument("--fd-scale", type=float, default=None, help="secant scale (default: median DeepFool distance of the calibration points)")
    t.add_argument("--samples", type=int, default=20, help="random directions per class (T)")
    t.add_argument("--with-perturbed", action="store_true", help="also run on the DeepFool-perturbed points and report detection rates")
    t.set_defaults(func=cmd_detect)

    ds_ = sub.add_parser(
        "distances", help="distance of data points to the nearest region boundary, per layer and epoch (power-diagram paper Fig. 5): npz, CSV and a figure"
    )
    ds_.add_argument("path", help="run.json or run folder (or one checkpoint)")
    ds_.add_argument("--epochs", default="all", help="'all' (default) or comma-separated epochs of the run")
    ds_.add_argument("--layer", default="all", help="layer 1..L, comma-separated layers, or 'all' (default)")
    ds_.add_argument("--points", metavar="I,J,...", default=None, help="dataset indices (default: --n random points)")
    ds_.add_argument("--n", type=int, default=256, help="random points of the split when --points is not given")
    ds_.add_argument("--seed", type=int, default=0, help="seed of the random points")
    ds_.add_argument("--split", choices=["train", "test"], default="train")
    ds_.add_argument("--bins", type=int, default=40, help="histogram bins of log10 distance")
    ds_.add_argument("--out", required=True, metavar="DIR", help="folder for distances.npz, distances.csv, distances.png")
    ds_.add_argument("--device", default=None, help="cpu | cuda (default: CUDA when present)")
    add_trust_argument(ds_)
    ds_.set_defaults(func=cmd_distances)

    from app.cli.tessellate_cmd import add_slice_arguments

    a = sub.add_parser(
        "angles", help="dihedral angles between adjacent decision-boundary pieces of a 2D slice (power-diagram paper, Theorem 8), with a histogram"
    )
    add_slice_arguments(a)
    a.add_argument("--json", metavar="OUT.json", required=True, help="write every boundary vertex with its angle, and the histogram")
    a.add_argument("--png", metavar="HIST.png", default=None, help="also draw the histogram of the angles (degrees)")
    a.add_argument("--bins", type=int, default=18, help="histogram bins over [0, 90] degrees (default 18: 5 degrees each)")
    a.add_argument("--tol", type=float, default=None, help="slice distance under which two boundary endpoints are one vertex (default: from the tessellation)")
    a.set_defaults(func=cmd_angles)


# -- shared helpers ------------------------------------------------------------------------------
def _points(args, run, net) -> tuple[np.ndarray, list[int] | None, np.ndarray | None]:
    """(X (N, D), indices or None, labels or None) for --points / --points-file."""
    if args.points_file:
        from geometry.safe_io import MAX_DATASET_BYTES, read_npz

        path = Path(args.points_file)
        arrays = read_npz(path, "--points-file", ("X",), MAX_DATASET_BYTES)
        if "X" not in arrays or arrays["X"].ndim < 2 or len(arrays["X"]) == 0:
            raise InputFileError(f"{path} must be an npz with 'X' (N, D), N > 0.")
        X = np.asarray(arrays["X"], dtype=np.float64)
        X = X.reshape(X.shape[0], -1)
        if not np.isfinite(X).all():
            raise InputFileError(f"{path}: 'X' holds NaN/Inf values.")
        if X.shape[1] != net.input_dim:
            raise InputFileError(f"{path}: 'X' has {X.shape[1]} features but the network takes {net.input_dim}.")
        return X, None, None
    ds = run.dataset
    if ds is None:
        raise DatasetError("the run names no dataset: give --points-file FILE.npz with 'X' (N, D).")
    Xs, ys = (ds.X_train, ds.y_train) if args.split == "train" else (ds.X_test, ds.y_test)
    try:
        idx = list(range(min(8, len(Xs)))) if args.points is None else [int(t) for t in args.points.split(",")]
    except ValueError:
        raise SplineAtlasError(f"--points expects comma-separated integers like 0,5,9; got {args.points!r}.") from None
    bad = [j for j in idx if not 0 <= j < len(Xs)]
    if bad:
        raise DatasetError(f"--points index {bad[0]} is out of range: the {args.split} split has {len(Xs)} points.")
    return np.asarray(Xs[idx], dtype=np.float64).reshape(len(idx), -1), idx, np.asarray(ys)[idx]


def _write_json(path: str | None, payload: dict) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps(payload))
        print(f"wrote {path}", file=sys.stderr)


def _header(run, i, net) -> dict:
    return {"run": str(run.source), "epoch": run.epochs[i], "checkpoint": run.checkpoint_hash(i)}


# -- centroids -------------------------------------------------------------------------------------
def _parse_layers(text: str, depth: int) -> list[int]:
    if text == "all":
        return list(range(depth))
    try:
        layers = [int(t) - 1 for t in text.split(",")]
    except ValueError:
        raise SplineAtlasError(f"--layer expects 'all' or layers like 1,3; got {text!r}.") from None
    return layers


def cmd_centroids(args) -> int:
    from geometry.power_diagram import boundary_distances, centroids

    run, i, net = load_checkpoint_network(args)
    X, idx, labels = _points(args, run, net)
    layers = _parse_layers(args.layer, net.depth)
    res = centroids(net, X, layers, device=args.device)
    dist = boundary_distances(net, X, layers, device=args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = [str(j) for j in idx] if idx is not None else [str(j) for j in range(len(X))]
    write_npz(
        out / "centroids.npz",
        centroids=res.centroids,
        radii=res.radii,
        boundary_distance=dist,
        layers=np.array(res.layers) + 1,
        points=X,
        indices=np.array(idx if idx is not None else []),
        input_shape=np.array(res.input_shape),
        epoch=run.epochs[i],
    )
    pngs = 0
    shape = res.input_shape
    is_image = len(shape) == 3 or (len(shape) == 2 and min(shape) > 1)
    if is_image:
        for n, name in enumerate(names):
            _save_image(out / f"point{name}_input.png", X[n].reshape(shape), signed=False)
            for j, layer in enumerate(res.layers):
                _save_image(out / f"point{name}_layer{layer + 1}_centroid.png", res.centroids[j, n].reshape(shape), signed=True)
                pngs += 1
    print(f"{run.name} epoch {run.epochs[i]}: {len(X)} points x {len(res.layers)} layers")
    for j, layer in enumerate(res.layers):
        print(
            f"  layer {layer + 1}: |centroid| median {np.median(np.linalg.norm(res.centroids[j], axis=1)):.4g}, "
            f"radius median {np.median(res.radii[j]):.4g}, distance to nearest cut median {np.median(dist[j]):.4g}"
        )
    print(f"wrote {out / 'centroids.npz'}" + (f" and {pngs} centroid PNGs" if pngs else ""), file=sys.stderr)
    return 0


def cmd_distances(args) -> int:
    from geometry.power_diagram import distance_distributions
    from geometry.networks.runs import open_run

    run = open_run(args.path, trust_code=args.trust_code)
    epochs = [run.epochs[i] for i in run.epoch_indices(args.epochs)]
    net = run.network(-1)
    if args.points is None:
        if run.dataset is None:
            raise DatasetError("the run names no dataset to take points from.")
        Xs = run.dataset.X_train if args.split == "train" else run.dataset.X_test
        if args.n < 1:
            raise SplineAtlasError(f"--n must be at least 1; got {args.n}.")
        idx = np.sort(np.random.default_rng(args.seed).choice(len(Xs), size=min(args.n, len(Xs)), replace=False))
        args.points = ",".join(map(str, idx))
    args.points_file = None
    X, idx, _ = _points(args, run, net)
    layers = _parse_layers(args.layer, net.depth)
    dd = distance_distributions(
        run, X, layers, epochs, device=args.device, progress=lambda f, m: print(f"\r  {m} ({100 * f:.0f}%)   ", end="", file=sys.stderr)
    )
    print("", file=sys.stderr)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    counts, edges = dd.log_histograms(bins=args.bins)
    write_npz(
        out / "distances.npz",
        epochs=dd.epochs,
        layers=np.array(dd.layers) + 1,
        distances=dd.distances,
        indices=np.array(idx),
        split=args.split,
        log10_histograms=counts,
        log10_edges=edges,
    )
    with atomic_open(out / "distances.csv", "w") as fh:
        fh.write("epoch,layer,points,median,mean,q10,q90,no_cut\n")
        for e, epoch in enumerate(dd.epochs):
            for j, layer in enumerate(dd.layers):
                d = dd.distances[e, j]
                f = d[np.isfinite(d)]
                q = (np.median(f), f.mean(), *np.quantile(f, [0.1, 0.9])) if len(f) else (np.nan,) * 4
                fh.write(f"{epoch},{layer + 1},{len(d)},{q[0]:.6g},{q[1]:.6g},{q[2]:.6g},{q[3]:.6g},{len(d) - len(f)}\n")
    _distance_figure(dd, counts, edges, out / "distances.png", f"{run.name}: {len(X)} {args.split} points")
    print(f"{run.name}: {len(X)} {args.split} points x {len(dd.layers)} layers x {len(dd.epochs)} epochs")
    for j, layer in enumerate(dd.layers):
        med = [float(np.median(dd.distances[e, j][np.isfinite(dd.distances[e, j])])) for e in (0, -1)]
        print(f"  layer {layer + 1}: median distance to the nearest cut {med[0]:.4g} (epoch {dd.epochs[0]}) -> {med[1]:.4g} (epoch {dd.epochs[-1]})")
    print(f"wrote {out}/distances.npz, distances.csv, distances.png", file=sys.stderr)
    return 0


def _distance_figure(dd, counts, edges, path: Path, title: str) -> None:
    """One panel per layer: the distribution of log10 distance, one line per epoch coloured by epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm, Normalize

    L = len(dd.layers)
    fig, axes = plt.subplots(1, L, figsize=(3.6 * L + 1.2, 3.6), squeeze=False, sharey=True, layout="constrained")
    ep = dd.epochs.astype(float)
    norm = LogNorm(max(ep.min(), 1.0), max(ep.max(), 2.0)) if ep.max() > 10 * max(ep.min(), 1) else Normalize(ep.min(), ep.max() or 1)
    cmap = plt.get_cmap("viridis")
    centres = 0.5 * (edges[1:] + edges[:-1])
    for j, ax in enumerate(axes[0]):
        for e in range(len(ep)):
            total = max(counts[e, j].sum(), 1)
            ax.plot(10**centres, counts[e, j] / total, color=cmap(norm(max(ep[e], norm.vmin))), lw=1.2)
        ax.set_xscale("log")
        ax.set_title(f"layer {dd.layers[j] + 1}")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("fraction of points")
    sm = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
    fig.colorbar(sm, ax=axes[0].tolist(), label="epoch (epoch 0 drawn as 1)" if isinstance(norm, LogNorm) else "epoch")
    fig.supxlabel("distance from a point to the nearest cut of the layer on its region (input units, log scale)")
    fig.suptitle(title)
    atomic_save(path, lambda p: fig.savefig(p, dpi=150))
    plt.close(fig)


def _save_image(path: Path, img: np.ndarray, signed: bool) -> None:
    """An (H, W) / (C, H, W) array as a PNG, upscaled ×16 (nearest); signed arrays use a diverging map."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a = np.asarray(img, dtype=np.float64)
    if a.ndim == 3:
        a = a[0] if a.shape[0] == 1 else np.moveaxis(a, 0, -1)
    up = max(1, 128 // max(a.shape[0], a.shape[1]))
    a = np.repeat(np.repeat(a, up, axis=0), up, axis=1)
    if a.ndim == 3:  # RGB: rescale to [0, 1]
        lo, hi = a.min(), a.max()
        plt.imsave(path, (a - lo) / (hi - lo if hi > lo else 1.0))
    elif signed:
        m = float(np.abs(a).max()) or 1.0
        plt.imsave(path, a, cmap="RdBu_r", vmin=-m, vmax=m)
    else:
        plt.imsave(path, a, cmap="gray_r")


# -- deepfool ----------------------------------------------------------------------------------------
def cmd_deepfool(args) -> int:
    from geometry.boundary.deepfool import deepfool

    run, i, net = load_checkpoint_network(args)
    X, idx, labels = _points(args, run, net)
    res = deepfool(net, X, target=args.target, overshoot=args.overshoot, max_iter=args.max_iter, device=args.device)
    names = run.class_names
    print(f"{run.name} epoch {run.epochs[i]}: DeepFool on {len(X)} points (overshoot {args.overshoot})")
    for n in range(len(X)):
        tag = idx[n] if idx is not None else n
        print(
            f"  point {tag}: {_cls(names, res.original_labels[n])} -> {_cls(names, res.labels[n])}  "
            f"||r|| = {res.norms[n]:.4g}  ({res.iterations[n]} steps{'' if res.converged[n] else ', NOT converged'})"
        )
    payload = _header(run, i, net) | {"indices": idx, "true_labels": None if labels is None else labels.tolist()} | res.to_json()
    _write_json(args.json, payload)
    return 0


def _cls(names, k) -> str:
    k = int(k)
    return f"{k} ({names[k]})" if names and 0 <= k < len(names) else str(k)


# -- curvature -----------------------------------------------------------------------------------------
def cmd_curvature(args) -> int:
    from geometry.boundary.curvature import needs_scale, principal_curvatures
    from geometry.boundary.deepfool import deepfool

    run, i, net = load_checkpoint_network(args)
    X, idx, labels = _points(args, run, net)
    scale = args.fd_scale
    if scale is None and needs_scale(net, args.mode):
        scale = float(np.median(deepfool(net, X, device=args.device).norms))
        if not scale > 0:
            raise SplineAtlasError("could not pick a secant scale from DeepFool distances; give --fd-scale.")
    res = principal_curvatures(net, X, num=args.num, mode=args.mode, fd_scale=scale, device=args.device)
    print(f"{run.name} epoch {run.epochs[i]}: principal curvatures ({res.label}), {res.curvatures.shape[1]} per point")
    for n in range(len(X)):
        tag = idx[n] if idx is not None else n
        kap = res.curvatures[n]
        mean = res.mean_curvature[n]
        print(
            f"  point {tag}: boundary {res.base[n]}|{res.other[n]}  max {kap[0]:+.4g}  min {kap[-1]:+.4g}" + ("" if np.isnan(mean) else f"  mean {mean:+.4g}")
        )
    _write_json(args.json, _header(run, i, net) | {"indices": idx} | res.to_json())
    return 0


# -- detect ----------------------------------------------------------------------------------------------
def cmd_detect(args) -> int:
    from geometry.boundary.curvature import needs_scale
    from geometry.boundary.deepfool import deepfool
    from geometry.boundary.detection import calibrate_threshold, detect_perturbed, detection_rates

    run, i, net = load_checkpoint_network(args)
    X, idx, labels = _points(args, run, net)
    kw = dict(mode=args.mode, num_samples=args.samples, perturbed_when=args.perturbed_when, device=args.device)
    cal = None
    if args.threshold is None or (args.fd_scale is None and needs_scale(net, args.mode)):
        ds = run.dataset
        if ds is None:
            raise DatasetError("the run names no dataset to calibrate on: give --threshold and --fd-scale.")
        cal = np.asarray(ds.X_train[: max(2, args.calibrate)], dtype=np.float64).reshape(-1, net.input_dim)
        dfc = deepfool(net, cal, device=args.device)
    scale = args.fd_scale
    if scale is None and needs_scale(net, args.mode):
        scale = float(np.median(dfc.norms[dfc.converged]))
    kw["fd_scale"] = scale
    threshold = args.threshold
    if threshold is None:
        ok = dfc.converged
        c0 = detect_perturbed(net, cal[ok], **kw)
        p0 = detect_perturbed(net, dfc.perturbed[ok], **kw)
        threshold = calibrate_threshold(c0.rho, p0.rho, args.perturbed_when)
    res = detect_perturbed(net, X, threshold=threshold, **kw)
    how = "calibrated" if args.threshold is None else "given"
    print(
        f"{run.name} epoch {run.epochs[i]}: curvature detector, threshold {threshold:.4g} ({how}), "
        f"perturbed when rho {'<' if args.perturbed_when == 'below' else '>='} t, "
        f"{'exact Hessian' if res.mode == 'exact' else f'secant Hessian at scale {res.scale:.4g}'}"
    )
    for n in range(len(X)):
        tag = idx[n] if idx is not None else n
        verdict = f"PERTURBED, recovered label {res.labels[n]}" if res.perturbed[n] else "clean"
        print(f"  point {tag}: predicted {res.predicted[n]}  rho {res.rho[n]:+.4g}  {verdict}")
    payload = _header(run, i, net) | {"indices": idx, "threshold_source": how} | res.to_json()
    if args.with_perturbed:
        df = deepfool(net, X, device=args.device)
        ok = df.converged
        pert = detect_perturbed(net, df.perturbed[ok], threshold=threshold, **kw)
        clean_ok = detect_perturbed(net, X[ok], threshold=threshold, **kw) if not ok.all() else res
        rates = detection_rates(clean_ok, pert, df.original_labels[ok])
        print(
            f"  on DeepFool-perturbed versions: detected {rates.perturbed_detection:.0%}, clean kept "
            f"{rates.clean_accuracy:.0%}, balanced accuracy {rates.balanced_accuracy:.0%}, AUC {rates.auc:.2f}, "
            f"label recovery {'-' if rates.label_recovery is None else f'{rates.label_recovery:.0%}'}"
        )
        payload["perturbed"] = pert.to_json()
        payload["rates"] = rates.__dict__
    _write_json(args.json, payload)
    return 0


# -- angles ------------------------------------------------------------------------------------------------
def cmd_angles(args) -> int:
    from app.cli.tessellate_cmd import resolve_slice
    from geometry.boundary.boundary_angles import boundary_angles
    from geometry.tessellation import tessellate

    if args.bins < 1:
        raise SplineAtlasError(f"--bins must be at least 1; got {args.bins}.")
    run, i, net = load_checkpoint_network(args)
    sl, domain, info = resolve_slice(args, net, run)
    if sl.dim != 2:
        raise SplineAtlasError("boundary angles are defined on 2D slices; give a plane (3 --through points, --pca 2, two directions, or --deepfool I).")
    tess = tessellate(net, sl, domain, device=args.device, max_regions=args.max_regions, slope_norm=False)
    res = boundary_angles(net, tess, tol=args.tol, device=args.device)
    counts, edges = res.histogram(bins=args.bins)
    payload = (
        _header(run, i, net)
        | info
        | {
            "slice": sl.to_json(),
            "domain": tess.domain.tolist(),
            "num_regions": tess.num_regions,
            "num_boundary_segments": int(tess.boundary_segments.shape[0]),
            "angle_units": "degrees",
            "vertices": res.vertices.tolist(),
            "segments": res.segments.tolist(),
            "classes": res.classes.tolist(),
            "angles": res.angles.tolist(),
            "slice_angles": res.slice_angles.tolist(),
            "junctions": res.junctions.tolist(),
            "histogram": {"edges": edges.tolist(), "counts": counts.tolist()},
        }
    )
    print(
        f"{run.name} epoch {run.epochs[i]}: {sl.description or 'slice'}: {tess.num_regions} regions, "
        f"{tess.boundary_segments.shape[0]} boundary segments, {len(res.angles)} boundary vertices, "
        f"{len(res.junctions)} three-class junctions"
    )
    if len(res.angles):
        print(
            f"  dihedral angle (Theorem 8, full input space): median {np.median(res.angles):.3g} deg, "
            f"mean {res.angles.mean():.3g} deg, max {res.angles.max():.3g} deg"
        )
    _write_json(args.json, payload)
    if args.png:
        _angle_histogram_png(Path(args.png), counts, edges, f"{run.name} epoch {run.epochs[i]}")
        print(f"wrote {args.png}", file=sys.stderr)
    return 0


def _angle_histogram_png(path: Path, counts: np.ndarray, edges: np.ndarray, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5, 3.4), dpi=120)
    ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="#4477aa", edgecolor="white")
    ax.set_xlim(edges[0], edges[-1])
    ax.set_xlabel("dihedral angle between adjacent boundary pieces θ (degrees)")
    ax.set_ylabel("boundary vertices (count)")
    ax.set_title(f"{title}: {int(counts.sum())} vertices", fontsize=9)
    fig.tight_layout()
    atomic_save(path, fig.savefig)
    plt.close(fig)
