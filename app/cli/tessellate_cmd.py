"""``splineatlas tessellate``: the exact linear regions of a 2D/3D slice, as JSON and/or a summary."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from app.cli.common import add_trust_argument
from app.jobs.slicing import SPELLING
from app.jobs.tessellate import budget_note
from app.model.state import SliceChoice
from geometry.boundary.cross_sections import DEFAULT_EXTENT
from geometry.errors import DatasetError, InputFileError, SplineAtlasError
from geometry.safe_io import write_text


def add_slice_arguments(p: argparse.ArgumentParser) -> None:
    """PATH, --epoch, the slice choice and its options, --domain, --device, --max-regions, --trust-code:
    shared by ``tessellate`` and ``angles`` (app/cli/boundary_cmds.py)."""
    p.add_argument("path", help="checkpoint file, run.json or run folder")
    p.add_argument("--epoch", type=int, default=None, help="epoch of the run (default: the last checkpoint); must be one of the run's checkpoints")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--slice", metavar="KIND", default=None, help=f"2D slice in the window's vocabulary: {SPELLING}")
    g.add_argument("--plane", choices=["input"], help="the input space itself (2D/3D-input networks)")
    g.add_argument("--through", metavar="I,J,K[,L]", help="plane through these training points of the run's dataset (4 indices: a 3D slice)")
    g.add_argument("--origin-and-directions", metavar="FILE.npz", help="npz with 'origin' (D,) and 'directions' (k, D), k = 2 or 3")
    g.add_argument("--pca", type=int, choices=[2, 3], metavar="K", help="PCA plane (K = 2 or 3) of the run's dataset")
    g.add_argument(
        "--deepfool",
        type=int,
        metavar="I",
        help="Fawzi cross-section through training point I: spanned by its DeepFool perturbation r(x) "
        "and a random direction (--seed) or x_J - x_I (--second J); default domain "
        "[-E, E]^2 x ||r|| (--extent E)",
    )
    p.add_argument("--second", type=int, metavar="J", default=None, help="with --deepfool: the second axis points to training point J")
    p.add_argument("--seed", type=int, default=None, metavar="S", help="with --deepfool: seed of the random second direction (default 0)")
    p.add_argument(
        "--extent",
        type=float,
        default=DEFAULT_EXTENT,
        metavar="E",
        help=f"with --deepfool: default box half-width in units of ||r(x)|| (default {DEFAULT_EXTENT:g})",
    )
    p.add_argument(
        "--domain",
        type=float,
        nargs="+",
        metavar="X",
        help="XMIN XMAX YMIN YMAX [ZMIN ZMAX] in slice coordinates (default: the slice's home window, as "
        "the window opens it: the data or defining points plus a margin, square)",
    )
    p.add_argument("--device", default=None, help="cpu | cuda (default: CUDA when present)")
    p.add_argument("--max-regions", type=int, default=None, help="stop with an error beyond this many regions (default: 1M, less for wide nets: ~4 GiB)")
    add_trust_argument(p)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tessellate", help="exact linear regions, activation codes and decision boundary of a slice")
    add_slice_arguments(p)
    p.add_argument("--depth", type=int, default=None, help="use layers 1..L only (default: all)")
    p.add_argument("--no-slope-norm", action="store_true", help="skip ||A_w|| per region (null in the JSON); the slow part for high-dimensional inputs")
    p.add_argument("--json", metavar="OUT.json", help="write regions, patterns, classes, slope norms and boundary")
    p.add_argument("--summary", action="store_true", help="print region counts per depth and the time taken")
    p.add_argument(
        "--whole-plane",
        action="store_true",
        help="also count the regions of the whole 2D slice plane (not only the domain), bounded and unbounded, exactly",
    )
    p.set_defaults(func=cmd_tessellate)


def load_checkpoint_network(args):
    """(run, checkpoint index, network) for PATH and --epoch."""
    from geometry.networks.runs import open_run

    run = open_run(args.path, trust_code=args.trust_code)
    i = run.exact_index(args.epoch)
    return run, i, run.network(i)


def _parse_indices(text: str) -> tuple[int, ...]:
    try:
        idx = tuple(int(t) for t in text.split(","))
    except ValueError:
        raise SplineAtlasError(f"--through expects comma-separated integers like 0,10,20; got {text!r}.") from None
    if len(idx) not in (3, 4) or len(set(idx)) != len(idx):
        raise SplineAtlasError("--through needs 3 (plane) or 4 (3D slice) distinct indices.")
    return idx


def build_slice(args, net, run):
    """The slice the arguments ask for (default: the window's, see :func:`resolve_slice`)."""
    return resolve_slice(args, net, run)[0]


def slice_choice_from_arguments(args, bundle) -> tuple[SliceChoice, int]:
    """(choice, dim) in the one slice vocabulary for --slice/--plane/--through/--pca/--deepfool; with none of
    them, the window's default (in 3D for 3-input networks, which the input space shows whole)."""
    from app.jobs.slicing import default_slice_choice, parse_slice_choice

    deepfool_point = getattr(args, "deepfool", None)
    if deepfool_point is None and (getattr(args, "second", None) is not None or getattr(args, "seed", None) is not None):
        raise SplineAtlasError("--second and --seed only apply to a --deepfool cross-section.")
    if getattr(args, "slice", None) is not None:
        return parse_slice_choice(args.slice), 2
    if args.plane == "input":
        return SliceChoice("input"), max(2, min(bundle.input_dim, 3))
    if args.through:
        idx = _parse_indices(args.through)
        return SliceChoice("points", idx), len(idx) - 1
    if args.pca:
        return SliceChoice("pca"), args.pca
    if deepfool_point is not None:
        if args.second is not None and args.seed is not None:
            raise SplineAtlasError("give --second J or --seed S for the second axis, not both.")
        idx = (deepfool_point,) if args.second is None else (deepfool_point, args.second)
        return SliceChoice("deepfool", idx, 0 if args.seed is None else args.seed), 2
    dim = 3 if bundle.input_dim == 3 else 2
    return default_slice_choice(bundle, dim), dim


def resolve_slice(args, net, run):
    """(slice, domain, info): the slice the arguments ask for, built by ``app.jobs.slicing.make_slice`` as the
    window builds it; the domain (--domain, else the slice's home window, as the window opens it); and a
    JSON-ready dict of how it was made (``slice``: its spelling, plus ``cross_section`` for DeepFool)."""
    from app.jobs.bundle import bundle_from_run
    from app.jobs.slicing import format_slice_choice, make_slice

    D = net.input_dim
    if args.origin_and_directions:
        sl = _slice_from_file(Path(args.origin_and_directions), D)
        domain, info = None, {}
    else:
        bundle = bundle_from_run(run, args.path)
        choice, dim = slice_choice_from_arguments(args, bundle)
        if choice.kind != "input" and bundle.dataset is None:
            raise DatasetError(f"this network has {D} inputs and the run names no dataset; give --origin-and-directions FILE.npz or --slice random@SEED.")
        i = run.exact_index(args.epoch)
        sl, home = make_slice(bundle, choice, i, dim=dim, extent=args.extent)
        domain, info = list(home), {"slice_choice": format_slice_choice(choice)}
        if choice.kind == "deepfool":
            info["cross_section"] = _deepfool_facts(net, bundle, choice, args.extent)
    if args.domain is not None:
        if len(args.domain) != 2 * sl.dim:
            raise SplineAtlasError(f"--domain needs {2 * sl.dim} numbers for a {sl.dim}D slice; got {len(args.domain)}.")
        domain = list(args.domain)
    return sl, domain, info


def _slice_from_file(path: Path, D: int):
    from geometry.safe_io import MAX_DATASET_BYTES, name, read_npz
    from geometry.slices import Slice

    data = read_npz(path, "--origin-and-directions file", ("origin", "directions"), MAX_DATASET_BYTES)
    if "origin" not in data or "directions" not in data:
        raise InputFileError(f"{name(path)} must be an npz with 'origin' (D,) and 'directions' (k, D).")
    origin, dirs = np.asarray(data["origin"], dtype=np.float64), np.asarray(data["directions"], dtype=np.float64)
    if origin.shape != (D,) or dirs.ndim != 2 or dirs.shape[1] != D or dirs.shape[0] not in (2, 3):
        raise InputFileError(f"{name(path)}: origin must be ({D},) and directions (2|3, {D}); got {origin.shape} and {dirs.shape}.")
    if not (np.isfinite(origin).all() and np.isfinite(dirs).all()):
        raise InputFileError(f"{name(path)}: origin and directions must be finite numbers.")
    return Slice.from_directions(origin, dirs, description=f"origin and directions from {path.name}")


def _deepfool_facts(net, bundle, choice: SliceChoice, extent: float) -> dict:
    """What the JSON says about a cross-section: DeepFool's classes and ||r|| at the slice's point."""
    from geometry.boundary.deepfool import deepfool

    X, _ = bundle.points()
    res = deepfool(net, X[choice.indices[0]][None])
    second = choice.indices[1] if len(choice.indices) > 1 else None
    return {
        "point": choice.indices[0],
        "second": second,
        "seed": None if second is not None else choice.seed,
        "kind": "point" if second is not None else "random",
        "perturbation_norm": float(res.norms[0]),
        "original_label": int(res.original_labels[0]),
        "adversarial_label": int(res.labels[0]),
        "extent": extent,
    }


def cmd_tessellate(args) -> int:
    from geometry.tessellation import tessellate_all_depths

    run, i, net = load_checkpoint_network(args)
    sl, domain, info = resolve_slice(args, net, run)
    t0 = time.perf_counter()
    results = tessellate_all_depths(net, sl, domain, depth=args.depth, device=args.device, max_regions=args.max_regions, slope_norm=not args.no_slope_norm)
    seconds = time.perf_counter() - t0
    final = results[-1]
    plane = None
    if args.whole_plane:
        from geometry.regions.plane import count_plane_regions

        if args.depth is not None:
            raise SplineAtlasError("--whole-plane counts the full network's regions; drop --depth.")
        lo, hi = np.min(final.domain, axis=0), np.max(final.domain, axis=0)
        plane = count_plane_regions(net, sl, start=float(np.max(hi - lo)), centre=(lo + hi) / 2, max_regions=args.max_regions)
        info["whole_plane"] = plane.to_json()
    if args.json:
        out = final.to_json()
        out["run"] = str(run.source)
        out["epoch"] = run.epochs[i]
        out["region_counts"] = [t.num_regions for t in results]
        out.update(info)
        write_text(args.json, json.dumps(out))
    if args.summary or not args.json:
        print(f"{run.name} epoch {run.epochs[i]}: {sl.description or 'slice'} (D = {net.input_dim}, k = {sl.dim}), device {final.device}")
        if info.get("cross_section"):
            c = info["cross_section"]
            print(f"  DeepFool: class {c['original_label']} -> {c['adversarial_label']}, ||r|| = {c['perturbation_norm']:.4g}")
        for t in results:
            print(f"  depth {t.depth}: {t.num_regions:>8} regions  ({t.seconds:.3f} s)")
        note = budget_note(final)
        if note:
            print(f"  within the memory budget (--memory-budget): {note}")
        if final.full_depth:
            nb = final.boundary_segments.shape[0] if sl.dim == 2 else final.boundary_classes.shape[0]
            sides = "sides present" if run.task == "regress" else "classes present"
            print(f"  {run.boundary_name}: {nb} {'segments' if sl.dim == 2 else 'polygons'}; {sides}: {sorted(set(np.unique(final.classes).tolist()))}")
        if plane is not None:
            print(
                f"  whole plane: {plane.regions} regions ({plane.bounded} bounded, {plane.unbounded} unbounded); "
                f"every vertex lies in the square of half-width {plane.half_width:g} about the domain's centre"
            )
        print(f"time: {seconds:.3f} s")
    if args.json:
        print(f"wrote {args.json} ({final.num_regions} regions)", file=sys.stderr)
    return 0
