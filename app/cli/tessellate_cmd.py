"""``splineatlas tessellate``: the exact linear regions of a 2D/3D slice, as JSON and/or a summary."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from app.cli.common import add_trust_argument
from geometry.errors import DatasetError, InputFileError, SplineAtlasError
from geometry.safe_io import write_text


def add_slice_arguments(p: argparse.ArgumentParser) -> None:
    """PATH, --epoch, the slice choice and its options, --domain, --device, --max-regions, --trust-code:
    shared by ``tessellate`` and ``angles`` (app/cli/boundary_cmds.py)."""
    p.add_argument("path", help="checkpoint file, run.json or run folder")
    p.add_argument("--epoch", type=int, default=None,
                   help="epoch of the run (default: the last checkpoint); must be one of the run's checkpoints")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--plane", choices=["input"], help="the input space itself (2D/3D-input networks)")
    g.add_argument("--through", metavar="I,J,K[,L]",
                   help="plane through these training points of the run's dataset (4 indices: a 3D slice)")
    g.add_argument("--origin-and-directions", metavar="FILE.npz",
                   help="npz with 'origin' (D,) and 'directions' (k, D), k = 2 or 3")
    g.add_argument("--pca", type=int, choices=[2, 3], metavar="K", help="PCA plane (K = 2 or 3) of the run's dataset")
    g.add_argument("--deepfool", type=int, metavar="I",
                   help="Fawzi cross-section through training point I: spanned by its DeepFool perturbation r(x) "
                        "and a random direction (--seed) or x_J - x_I (--second J); default domain "
                        "[-E, E]^2 x ||r|| (--extent E)")
    p.add_argument("--second", type=int, metavar="J", default=None,
                   help="with --deepfool: the second axis points to training point J")
    p.add_argument("--seed", type=int, default=None, metavar="S",
                   help="with --deepfool: seed of the random second direction (default 0)")
    p.add_argument("--extent", type=float, default=3.0, metavar="E",
                   help="with --deepfool: default box half-width in units of ||r(x)|| (default 3)")
    p.add_argument("--domain", type=float, nargs="+", metavar="X",
                   help="XMIN XMAX YMIN YMAX [ZMIN ZMAX] in slice coordinates (default: [-1,1]^k, or the anchors' box)")
    p.add_argument("--device", default=None, help="cpu | cuda (default: CUDA when present)")
    p.add_argument("--max-regions", type=int, default=None, help="stop with an error beyond this many regions (default: 1M, less for wide nets: ~4 GiB)")
    add_trust_argument(p)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tessellate", help="exact linear regions, activation codes and decision boundary of a slice")
    add_slice_arguments(p)
    p.add_argument("--depth", type=int, default=None, help="use layers 1..L only (default: all)")
    p.add_argument("--no-slope-norm", action="store_true",
                   help="skip ||A_w|| per region (null in the JSON); the slow part for high-dimensional inputs")
    p.add_argument("--json", metavar="OUT.json", help="write regions, patterns, classes, slope norms and boundary")
    p.add_argument("--summary", action="store_true", help="print region counts per depth and the time taken")
    p.set_defaults(func=cmd_tessellate)


def load_checkpoint_network(args):
    """(run, checkpoint index, network) for PATH and --epoch."""
    from geometry.runs import open_run

    run = open_run(args.path, trust_code=args.trust_code)
    i = run.exact_index(args.epoch)
    return run, i, run.network(i)


def _parse_indices(text: str) -> list[int]:
    try:
        idx = [int(t) for t in text.split(",")]
    except ValueError:
        raise SplineAtlasError(f"--through expects comma-separated integers like 0,10,20; got {text!r}.") from None
    if len(idx) not in (3, 4) or len(set(idx)) != len(idx):
        raise SplineAtlasError("--through needs 3 (plane) or 4 (3D slice) distinct indices.")
    return idx


def _dataset_index(ds, i: int, flag: str) -> int:
    n = len(ds.X_train)
    if not 0 <= i < n:
        raise DatasetError(f"{flag} index {i} is out of range: the training set has {n} points (0..{n - 1}).")
    return i


def build_slice(args, net, run):
    """The slice the arguments ask for (default: input space for 2D/3D inputs, else through points 0,1,2)."""
    return resolve_slice(args, net, run)[0]


def resolve_slice(args, net, run):
    """(slice, domain, info): the slice the arguments ask for, the domain to tessellate (--domain, else the
    slice's own default: None, or ||r||-scaled for a cross-section) and a JSON-ready dict describing how the
    slice was made (empty except for --deepfool)."""
    from geometry.slices import Slice

    D = net.input_dim
    deepfool_point = getattr(args, "deepfool", None)
    if deepfool_point is None and (getattr(args, "second", None) is not None or getattr(args, "seed", None) is not None):
        raise SplineAtlasError("--second and --seed only apply to a --deepfool cross-section.")
    sl, domain, info = None, None, {}
    if args.origin_and_directions:
        from geometry.safe_io import MAX_DATASET_BYTES, name, read_npz

        path = Path(args.origin_and_directions)
        data = read_npz(path, "--origin-and-directions file", ("origin", "directions"), MAX_DATASET_BYTES)
        if "origin" not in data or "directions" not in data:
            raise InputFileError(f"{name(path)} must be an npz with 'origin' (D,) and 'directions' (k, D).")
        origin, dirs = np.asarray(data["origin"], dtype=np.float64), np.asarray(data["directions"], dtype=np.float64)
        if origin.shape != (D,) or dirs.ndim != 2 or dirs.shape[1] != D or dirs.shape[0] not in (2, 3):
            raise InputFileError(f"{name(path)}: origin must be ({D},) and directions (2|3, {D}); got {origin.shape} and {dirs.shape}.")
        if not (np.isfinite(origin).all() and np.isfinite(dirs).all()):
            raise InputFileError(f"{name(path)}: origin and directions must be finite numbers.")
        sl = Slice.from_directions(origin, dirs, description=f"origin and directions from {path.name}")
    elif args.plane == "input" or (args.through is None and args.pca is None and deepfool_point is None
                                   and D in (2, 3)):
        sl = Slice.input_plane(D)
    else:
        ds = run.dataset
        if ds is None:
            raise DatasetError(f"this network has {D} inputs and the run names no dataset; "
                               "give --origin-and-directions FILE.npz.")
        if args.pca:
            sl = Slice.pca(ds.X_train, k=args.pca)
        elif deepfool_point is not None:
            sl, domain, info = _cross_section(args, net, ds)
        else:
            idx = _parse_indices(args.through) if args.through else [0, 1, 2]
            for i in idx:
                _dataset_index(ds, i, "--through")
            sl = Slice.through_points(ds.X_train[idx], description=f"plane through training points {idx}")
    if args.domain is not None:
        if len(args.domain) != 2 * sl.dim:
            raise SplineAtlasError(f"--domain needs {2 * sl.dim} numbers for a {sl.dim}D slice; got {len(args.domain)}.")
        domain = list(args.domain)
    return sl, domain, info


def _cross_section(args, net, ds):
    """Fawzi cross-section through training point --deepfool I (geometry.cross_sections)."""
    from geometry.cross_sections import cross_sections
    from geometry.slices import Slice

    i = _dataset_index(ds, args.deepfool, "--deepfool")
    X = np.asarray(ds.X_train, dtype=np.float64).reshape(len(ds.X_train), -1)
    if args.second is not None and args.seed is not None:
        raise SplineAtlasError("give --second J or --seed S for the second axis, not both.")
    second = None
    if args.second is not None:
        j = _dataset_index(ds, args.second, "--second")
        if j == i:
            raise SplineAtlasError("--second must name a training point other than --deepfool's.")
        second = X[j][None]
    seed = 0 if args.seed is None else args.seed
    if not args.extent > 0:
        raise SplineAtlasError(f"--extent must be positive; got {args.extent}.")
    cs = cross_sections(net, X[i][None], second, extent=args.extent, seed=seed, device=args.device)[0]
    how = f"x_{args.second} - x_{i}" if second is not None else f"a random direction (seed {seed})"
    sl = Slice(cs.slice.origin, cs.slice.basis, cs.slice.anchors,
              f"cross-section through training point {i}: r(x) and {how}")
    info = {"cross_section": {"point": i, "second": args.second, "seed": None if second is not None else seed,
                              "kind": cs.kind, "perturbation_norm": float(np.linalg.norm(cs.perturbation)),
                              "original_label": cs.original_label, "adversarial_label": cs.adversarial_label,
                              "extent": args.extent}}
    return sl, cs.domain.tolist(), info


def cmd_tessellate(args) -> int:
    from geometry.tessellation import tessellate_all_depths

    run, i, net = load_checkpoint_network(args)
    sl, domain, info = resolve_slice(args, net, run)
    t0 = time.perf_counter()
    results = tessellate_all_depths(net, sl, domain, depth=args.depth, device=args.device,
                                    max_regions=args.max_regions, slope_norm=not args.no_slope_norm)
    seconds = time.perf_counter() - t0
    final = results[-1]
    if args.json:
        out = final.to_json()
        out["run"] = str(run.source)
        out["epoch"] = run.epochs[i]
        out["region_counts"] = [t.num_regions for t in results]
        out.update(info)
        write_text(args.json, json.dumps(out))
    if args.summary or not args.json:
        print(f"{run.name} epoch {run.epochs[i]}: {sl.description or 'slice'} (D = {net.input_dim}, k = {sl.dim}), "
              f"device {final.device}")
        if info.get("cross_section"):
            c = info["cross_section"]
            print(f"  DeepFool: class {c['original_label']} -> {c['adversarial_label']}, "
                  f"||r|| = {c['perturbation_norm']:.4g}")
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
