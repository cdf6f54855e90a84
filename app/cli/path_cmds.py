"""``splineatlas path``, ``convex`` and ``trace-g``: leaf paths, region paths, convex combinations and
Tr G over training (CLI twins of geometry.foliation.leaf_paths, geometry.boundary.region_paths, geometry.foliation.local_data_matrix)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from app.cli.common import add_trust_argument
from app.model.state import LEAF_DTYPE
from geometry.errors import DatasetError, SplineAtlasError
from geometry.safe_io import atomic_save, write_npz, write_text


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("path", help="trace horizontal/normal leaf paths or a same-class region path between data points")
    p.add_argument("path", help="checkpoint file, run.json or run folder")
    p.add_argument("--kind", choices=["horizontal", "normal", "region"], required=True)
    p.add_argument("--from", dest="src", required=True, metavar="I[,I2,...]", help="dataset index of the source (comma-separated for several paths at once)")
    p.add_argument(
        "--to", dest="dst", default=None, metavar="J[,J2,...]", help="dataset index of the destination (horizontal, region); one per source or one for all"
    )
    p.add_argument("--split", choices=["train", "test"], default="test", help="which split the indices refer to")
    p.add_argument("--epoch", type=int, default=None, help="epoch of the run (default: the last checkpoint)")
    p.add_argument("--steps", type=int, default=None, help="step budget of a leaf path (default 200, as the window), depth budget (region, default 10)")
    p.add_argument(
        "--step-size",
        type=float,
        default=None,
        help="step length α in input units (default, as the window: 2%% of each path's source-destination distance, or of max(||source||, 1) for normal paths)",
    )
    p.add_argument("--tol", type=float, default=None, help="reached when ||d − x|| ≤ tol (default 1e-3·||d − s||)")
    p.add_argument("--integrator", choices=["euler", "rk4"], default="euler")
    p.add_argument(
        "--projection",
        choices=["svd", "gram"],
        default="svd",
        help="how the row space of J is formed: svd (default; orthonormal at any conditioning) or "
        "gram (eigh of J Jᵀ + a re-orthonormalisation pass; cheaper, singular values only "
        "resolved to ~1e-8·σ_max)",
    )
    p.add_argument("--no-stagnation-stop", action="store_true", help="follow stalled paths to the step budget")
    p.add_argument("--seed", type=int, default=0, help="seed of the normal paths' random directions")
    p.add_argument("--margin", type=float, default=0.25, help="region paths: extra push of projected midpoints (× segment length); 0 = the paper")
    p.add_argument("--frames", type=int, default=12, help="images per path in the PNG strip")
    p.add_argument(
        "--dtype",
        choices=["float32", "float64"],
        default=None,
        help=f"the net's precision (default, as the window: {LEAF_DTYPE} for leaf paths, float64 for region paths)",
    )
    p.add_argument(
        "--diagnostics",
        choices=["full", "lean"],
        default="full",
        help="full: every per-step quantity in path.npz (G's spectrum, step angles, pattern changes); lean: what the window draws",
    )
    p.add_argument("--device", default=None, help="cpu | cuda (default: CUDA when present)")
    add_trust_argument(p)
    p.add_argument("--out", required=True, metavar="DIR", help="folder for path.npz, summary.json and strip.png")
    p.set_defaults(func=cmd_path)

    c = sub.add_parser("convex", help="probability that convex combinations of k same-class points keep the class (Fawzi Fig. 3)")
    c.add_argument("path", help="run.json, run folder or checkpoint")
    c.add_argument("--epoch", type=int, default=None, help="epoch of the run (default: the last checkpoint)")
    c.add_argument("--split", choices=["train", "test"], default="test")
    c.add_argument("--ks", default="2,3,4,5,7,10", help="numbers of points combined, comma-separated")
    c.add_argument("--samples", type=int, default=1000, help="combinations drawn per k")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--device", default=None)
    add_trust_argument(c)
    c.add_argument("--json", metavar="OUT.json", default=None, help="write the result as JSON")
    c.set_defaults(func=cmd_convex)

    t = sub.add_parser("trace-g", help="mean trace of the local data matrix G over a fixed point set, per checkpoint")
    t.add_argument("path", help="run.json, run folder or checkpoint")
    t.add_argument("--split", choices=["train", "test"], default="test")
    t.add_argument("--points", type=int, default=256, help="number of points (a seeded subset of the split)")
    t.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    t.add_argument("--device", default=None)
    add_trust_argument(t)
    t.add_argument("--json", metavar="OUT.json", default=None, help="write the curve as JSON")
    t.set_defaults(func=cmd_trace_g)


def _indices(text: str | None, n: int, split: str, what: str) -> list[int]:
    if text is None:
        return []
    try:
        idx = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise SplineAtlasError(f"{what} expects dataset indices like 3 or 3,17,42; got {text!r}.") from None
    bad = [i for i in idx if not 0 <= i < n]
    if bad:
        raise DatasetError(f"{what} index {bad[0]} is out of range: the {split} split has {n} points.")
    return idx


def _dtype(name: str):
    import torch

    return torch.float64 if name == "float64" else torch.float32


def _image_shape(run, net) -> tuple[int, ...] | None:
    ds = run.dataset
    shape = tuple(ds.image_shape) if ds is not None and ds.image_shape else tuple(net.input_shape)
    if len(shape) == 3 and shape[1] > 1 and shape[2] > 1:
        return shape
    if len(shape) == 2 and min(shape) > 1:
        return (1, *shape)
    return None


def write_strip(path: Path, rows: list[np.ndarray], shape: tuple[int, ...], scale: int | None = None) -> None:
    """PNG of image rows: rows[i] is (F, D) frames of one path, shape (C, H, W); one grey value range
    for the whole strip (so growing noise stays visible); nearest-neighbour upscaling of small images."""
    import imageio.v3 as iio

    c, h, w = shape
    allv = np.concatenate([r.reshape(-1) for r in rows])
    lo, hi = float(np.min(allv)), float(np.max(allv))
    scale = scale or max(1, 64 // max(h, w))
    gap = 2
    F = max(len(r) for r in rows)
    H = len(rows) * (h * scale + gap) - gap
    W = F * (w * scale + gap) - gap
    canvas = np.full((H, W, 3), 255, dtype=np.uint8)
    for i, r in enumerate(rows):
        for j, frame in enumerate(r):
            img = frame.reshape(c, h, w)
            img = np.clip((img - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
            img = np.repeat(np.repeat(img, scale, 1), scale, 2)
            rgb = np.repeat(img, 3, 0) if c == 1 else img[:3]
            y0, x0 = i * (h * scale + gap), j * (w * scale + gap)
            canvas[y0 : y0 + h * scale, x0 : x0 + w * scale] = (rgb.transpose(1, 2, 0) * 255).astype(np.uint8)
    atomic_save(path, lambda p: iio.imwrite(p, canvas))


def _frames_of_leaf_path(lp, i: int, frames: int) -> np.ndarray:
    n = int(lp.num_steps[i])
    steps = lp.point_steps
    last = int(np.searchsorted(steps, n, side="right"))
    pts = lp.points[i, :last]
    sel = np.unique(np.linspace(0, len(pts) - 1, min(frames, len(pts))).round().astype(int))
    out = [pts[k] for k in sel]
    if lp.destinations is not None:
        out.append(lp.destinations[i])
    return np.stack(out)


def cmd_path(args) -> int:

    from geometry.networks.runs import open_run

    run = open_run(args.path, trust_code=args.trust_code)
    ei = run.exact_index(args.epoch)
    net = run.network(ei)
    ds = run.dataset
    if ds is None:
        raise DatasetError("the run names no dataset, so --from/--to indices mean nothing; attach one to run.json.")
    Xs = ds.X_test if args.split == "test" else ds.X_train
    src = _indices(args.src, len(Xs), args.split, "--from")
    dst = _indices(args.dst, len(Xs), args.split, "--to")
    if not src:
        raise SplineAtlasError("--from needs at least one dataset index.")
    if args.kind in ("horizontal", "region"):
        if not dst:
            raise SplineAtlasError(f"--kind {args.kind} needs --to (the destination index).")
        if len(dst) == 1:
            dst = dst * len(src)
        if len(src) == 1 and len(dst) > 1:
            src = src * len(dst)
        if len(src) != len(dst):
            raise SplineAtlasError(f"--from has {len(src)} indices but --to has {len(dst)}; give one each, or one for all.")
    S = np.asarray(Xs[src], dtype=np.float64).reshape(len(src), -1)
    D = np.asarray(Xs[dst], dtype=np.float64).reshape(len(dst), -1) if dst else None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    header = {
        "run": str(run.source),
        "epoch": run.epochs[ei],
        "checkpoint": run.checkpoint_hash(ei),
        "kind": args.kind,
        "split": args.split,
        "from": src,
        "to": dst or None,
    }
    shape = _image_shape(run, net)
    names = run.class_names
    dtype = _dtype(args.dtype or ("float64" if args.kind == "region" else LEAF_DTYPE))

    def progress(frac: float, msg: str) -> None:
        print(f"\r{msg} ({frac:.0%})", end="", file=sys.stderr, flush=True)

    if args.kind == "region":
        from geometry.boundary.region_paths import find_region_path

        from app.jobs.paths import REGION_DEPTH

        results = []
        rows = []
        for k in range(len(src)):
            rp = find_region_path(
                net, S[k], D[k], max_depth=REGION_DEPTH if args.steps is None else args.steps, margin=args.margin, dtype=dtype, device=args.device
            )
            results.append(rp)
            L = np.concatenate([[0], np.cumsum(np.linalg.norm(np.diff(rp.anchors, axis=0), axis=1))])
            s = np.linspace(0, L[-1], max(2, args.frames))
            seg = np.clip(np.searchsorted(L, s, side="right") - 1, 0, len(L) - 2)
            w = ((s - L[seg]) / np.maximum(L[seg + 1] - L[seg], 1e-300))[:, None]
            rows.append(rp.anchors[seg] * (1 - w) + rp.anchors[seg + 1] * w)
        write_npz(
            out / "path.npz",
            **{f"anchors_{k}": r.anchors for k, r in enumerate(results)},
            labels=np.array([r.label for r in results]),
            success=np.array([r.success for r in results]),
            sources=S,
            destinations=D,
            epoch=run.epochs[ei],
        )
        summary = dict(header, paths=[dict(r.to_json(), class_name=names[r.label] if r.label < len(names) else str(r.label)) for r in results])
        ok = all(r.success for r in results)
        for k, r in enumerate(results):
            print(
                f"path {src[k]} -> {dst[k]}: {'found' if r.success else 'NOT found'}, {len(r.anchors)} anchors, "
                f"depth {r.depth}, {r.projections} projections ({r.message})"
            )
    else:
        from geometry.foliation.leaf_paths import horizontal_paths, normal_paths

        from app.jobs.paths import DEFAULT_STEPS, leaf_step_sizes

        if args.step_size is not None:
            alpha = args.step_size
        else:  # the window's step rule (app.jobs.paths), per path
            alpha = leaf_step_sizes(args.kind, S, D)
        steps = DEFAULT_STEPS if args.steps is None else args.steps
        if args.kind == "horizontal":
            lp = horizontal_paths(
                net,
                S,
                D,
                step_size=alpha,
                max_steps=steps,
                tol=args.tol,
                integrator=args.integrator,
                stop_on_stagnation=not args.no_stagnation_stop,
                dtype=dtype,
                device=args.device,
                projection=args.projection,
                diagnostics=args.diagnostics,
                progress=progress,
            )
        else:
            lp = normal_paths(
                net,
                S,
                seed=args.seed,
                step_size=alpha,
                steps=steps,
                integrator=args.integrator,
                dtype=dtype,
                device=args.device,
                projection=args.projection,
                diagnostics=args.diagnostics,
                progress=progress,
            )
        print(file=sys.stderr)
        write_npz(out / "path.npz", **lp.to_npz_dict(), epoch=run.epochs[ei], from_indices=np.array(src), to_indices=np.array(dst))
        paths = []
        for k in range(len(lp)):
            s = lp.summary(k)
            s["class_sequence"] = [dict(c, name=names[c["class"]] if c["class"] < len(names) else str(c["class"])) for c in s["class_sequence"]]
            paths.append(dict(s, source=src[k], destination=dst[k] if dst else None))
            seq = " -> ".join(c["name"] for c in s["class_sequence"])
            stall = f" ({s['stall']})" if s.get("stall") else ""
            print(
                f"path {src[k]}{' -> ' + str(dst[k]) if dst else ''}: {s['status']}{stall} after {s['steps']} steps, "
                f"distance {s['initial_distance']:.4g} -> {s['final_distance']:.4g}, classes {seq}"
            )
        summary = dict(header, settings=lp.settings, paths=paths)
        rows = [_frames_of_leaf_path(lp, k, args.frames) for k in range(len(lp))]
        ok = True
    if shape is not None:
        write_strip(out / "strip.png", rows, shape)
    write_text(out / "summary.json", json.dumps(summary, indent=1, default=float))
    print(f"wrote {out / 'path.npz'}, {out / 'summary.json'}" + (f", {out / 'strip.png'}" if shape else ""), file=sys.stderr)
    return 0 if ok else 1


def cmd_trace_g(args) -> int:
    from geometry.foliation.local_data_matrix import trace_over_run
    from geometry.networks.runs import open_run

    run = open_run(args.path, trust_code=args.trust_code)

    def progress(frac: float, msg: str) -> None:
        print(f"\r{msg}", end="", file=sys.stderr, flush=True)

    curve = trace_over_run(run, max_points=args.points, split=args.split, dtype=_dtype(args.dtype), device=args.device, progress=progress)
    print(file=sys.stderr)
    print(f"{'epoch':>7}  {'mean Tr G':>10}  {'median':>10}  {'rank G':>7}  {'accuracy':>8}")
    for e, m, md, r, a in zip(curve.epochs, curve.mean_trace, curve.median_trace, curve.mean_rank, curve.accuracy):
        print(f"{e:>7}  {m:>10.4g}  {md:>10.4g}  {r:>7.2f}  {a:>8.4f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        write_text(args.json, json.dumps(dict(curve.to_json(), run=str(run.source))))
    return 0


def cmd_convex(args) -> int:
    from geometry.boundary.region_paths import convex_combination_probability
    from geometry.networks.runs import open_run

    run = open_run(args.path, trust_code=args.trust_code)
    ei = run.exact_index(args.epoch)
    ds = run.dataset
    if ds is None:
        raise DatasetError("the run names no dataset; attach one to run.json.")
    X = ds.X_test if args.split == "test" else ds.X_train
    try:
        ks = [int(k) for k in args.ks.split(",") if k.strip()]
    except ValueError:
        raise SplineAtlasError(f"--ks expects integers like 2,3,5; got {args.ks!r}.") from None
    if not ks or min(ks) < 1 or args.samples < 1:
        raise SplineAtlasError("--ks must be positive integers and --samples at least 1.")
    res = convex_combination_probability(run.network(ei), X, ks, samples=args.samples, seed=args.seed, device=args.device)
    print(f"{'k':>4}  {'P(class kept)':>13}  {'± s.e.':>7}")
    for k, p, e in zip(res.ks, res.probability, res.stderr):
        print(f"{k:>4}  {p:>13.4f}  {e:>7.4f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        write_text(args.json, json.dumps(dict(res.to_json(), run=str(run.source), epoch=run.epochs[ei])))
    return 0
