"""``splineatlas tessellate``: the exact linear regions of a 2D/3D slice, as JSON and/or a summary."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from geometry.errors import DatasetError, InputFileError, SplineAtlasError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tessellate", help="exact linear regions, activation codes and decision boundary of a slice")
    p.add_argument("path", help="checkpoint file, run.json or run folder")
    p.add_argument("--epoch", type=int, default=None, help="epoch of the run (default: the last checkpoint)")
    p.add_argument("--depth", type=int, default=None, help="use layers 1..L only (default: all)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--plane", choices=["input"], help="the input space itself (2D/3D-input networks)")
    g.add_argument("--through", metavar="I,J,K[,L]",
                   help="plane through these training points of the run's dataset (4 indices: a 3D slice)")
    g.add_argument("--origin-and-directions", metavar="FILE.npz",
                   help="npz with 'origin' (D,) and 'directions' (k, D), k = 2 or 3")
    g.add_argument("--pca", type=int, choices=[2, 3], metavar="K", help="PCA plane (K = 2 or 3) of the run's dataset")
    p.add_argument("--domain", type=float, nargs="+", metavar="X",
                   help="XMIN XMAX YMIN YMAX [ZMIN ZMAX] in slice coordinates (default: [-1,1]^k, or the anchors' box)")
    p.add_argument("--device", default=None, help="cpu | cuda (default: CUDA when present)")
    p.add_argument("--max-regions", type=int, default=None, help="stop with an error beyond this many regions (default: 1M, less for wide nets: ~4 GiB)")
    p.add_argument("--no-slope-norm", action="store_true",
                   help="skip ||A_w|| per region (null in the JSON); the slow part for high-dimensional inputs")
    p.add_argument("--json", metavar="OUT.json", help="write regions, patterns, classes, slope norms and boundary")
    p.add_argument("--summary", action="store_true", help="print region counts per depth and the time taken")
    p.add_argument("--trust-pickle", action="store_true", help="allow full pickles (can execute code: trusted files only)")
    p.set_defaults(func=cmd_tessellate)


def _parse_indices(text: str) -> list[int]:
    try:
        idx = [int(t) for t in text.split(",")]
    except ValueError:
        raise SplineAtlasError(f"--through expects comma-separated integers like 0,10,20; got {text!r}.") from None
    if len(idx) not in (3, 4) or len(set(idx)) != len(idx):
        raise SplineAtlasError("--through needs 3 (plane) or 4 (3D slice) distinct indices.")
    return idx


def build_slice(args, net, run):
    """The slice the arguments ask for (default: input space for 2D/3D inputs, else through points 0,1,2)."""
    from geometry.slices import Slice

    D = net.input_dim
    if args.origin_and_directions:
        path = Path(args.origin_and_directions)
        if not path.exists():
            raise InputFileError(f"{path} does not exist; write an npz with 'origin' (D,) and 'directions' (k, D).")
        try:
            data = np.load(path)
            origin, dirs = np.asarray(data["origin"], dtype=np.float64), np.asarray(data["directions"], dtype=np.float64)
        except (KeyError, ValueError, OSError) as exc:
            raise InputFileError(f"{path} must be an npz with 'origin' (D,) and 'directions' (k, D): {exc}.") from None
        if origin.shape != (D,) or dirs.ndim != 2 or dirs.shape[1] != D or dirs.shape[0] not in (2, 3):
            raise InputFileError(f"{path}: origin must be ({D},) and directions (2|3, {D}); got {origin.shape} and {dirs.shape}.")
        return Slice.from_directions(origin, dirs, description=f"origin and directions from {path.name}")
    if args.plane == "input" or (args.through is None and args.pca is None and D in (2, 3)):
        return Slice.input_plane(D)
    ds = run.dataset
    if ds is None:
        raise DatasetError(f"this network has {D} inputs and the run names no dataset; give --origin-and-directions FILE.npz.")
    if args.pca:
        return Slice.pca(ds.X_train, k=args.pca)
    idx = _parse_indices(args.through) if args.through else [0, 1, 2]
    n = len(ds.X_train)
    bad = [i for i in idx if not 0 <= i < n]
    if bad:
        raise DatasetError(f"--through index {bad[0]} is out of range: the training set has {n} points (0..{n - 1}).")
    return Slice.through_points(ds.X_train[idx], description=f"plane through training points {idx}")


def cmd_tessellate(args) -> int:
    from geometry.runs import open_run
    from geometry.tessellation import tessellate_all_depths

    run = open_run(args.path, trust_pickle=args.trust_pickle)
    i = len(run) - 1 if args.epoch is None else run.index_of_epoch(args.epoch)
    net = run.network(i)
    sl = build_slice(args, net, run)
    if args.domain is not None and len(args.domain) != 2 * sl.dim:
        raise SplineAtlasError(f"--domain needs {2 * sl.dim} numbers for a {sl.dim}D slice; got {len(args.domain)}.")
    t0 = time.perf_counter()
    results = tessellate_all_depths(net, sl, args.domain, depth=args.depth, device=args.device,
                                    max_regions=args.max_regions, slope_norm=not args.no_slope_norm)
    seconds = time.perf_counter() - t0
    final = results[-1]
    if args.json:
        out = final.to_json()
        out["run"] = str(run.source)
        out["epoch"] = run.epochs[i]
        out["region_counts"] = [t.num_regions for t in results]
        Path(args.json).write_text(json.dumps(out))
    if args.summary or not args.json:
        print(f"{run.name} epoch {run.epochs[i]}: {sl.description or 'slice'} (D = {net.input_dim}, k = {sl.dim}), "
              f"device {final.device}")
        for t in results:
            print(f"  depth {t.depth}: {t.num_regions:>8} regions  ({t.seconds:.3f} s)")
        if final.full_depth:
            nb = final.boundary_segments.shape[0] if sl.dim == 2 else final.boundary_classes.shape[0]
            print(f"  decision boundary: {nb} {'segments' if sl.dim == 2 else 'polygons'}; "
                  f"classes present: {sorted(set(np.unique(final.classes).tolist()))}")
        print(f"time: {seconds:.3f} s")
    if args.json:
        print(f"wrote {args.json} ({final.num_regions} regions)", file=sys.stderr)
    return 0
