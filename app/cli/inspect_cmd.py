"""``splineatlas inspect``: the inspector's report of one point of a slice (the window's click, headless).

The slice, window, tessellation, report and region geometry come from the same :mod:`app.jobs` calls the
window makes, with its defaults, and the rows are the inspector's own text (:mod:`app.render.report`); with
``--sites`` the power-diagram sites of the slice's tiles at the chosen depth are written too.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from geometry.errors import DatasetError, SplineAtlasError
from geometry.safe_io import write_text

from ..jobs.slicing import slice_from_text
from .common import add_slice_argument, add_trust_argument


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="the inspector's report of a point of a slice (the window's click, headless)")
    p.add_argument("path", help="checkpoint file, run.json or run folder")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--point", metavar="U,V", help="slice coordinates of the point (a negative U: --point=-0.5,0.2)")
    where.add_argument("--index", type=int, metavar="I", help="training point I, projected into the slice (the slice point nearest to it)")
    add_slice_argument(p)
    p.add_argument("--epoch", type=int, default=None, help="epoch of the run (default: the last checkpoint)")
    p.add_argument("--layer", type=int, default=None, help="layer depth 1..L of the report (default: all layers)")
    p.add_argument(
        "--window",
        type=float,
        nargs=4,
        metavar=("UMIN", "UMAX", "VMIN", "VMAX"),
        help="the tessellated window (default: the slice's home window, as the window opens it)",
    )
    p.add_argument("--max-regions", type=int, default=None, help="region budget (default: the window's)")
    p.add_argument("--no-region", action="store_true", help="skip the region's LPs and QP (the slow rows)")
    p.add_argument("--sites", metavar="OUT.csv", help="write the power-diagram sites of the tiles at this depth")
    p.add_argument("--json", metavar="OUT.json", help="write the report (every row and the raw numbers)")
    add_trust_argument(p)
    p.set_defaults(func=cmd_inspect)


def _point(args, sl, bundle) -> np.ndarray:
    if args.point is not None:
        try:
            u = np.array([float(t) for t in args.point.split(",")], dtype=np.float64)
        except ValueError:
            raise SplineAtlasError(f"--point {args.point!r}: give two numbers U,V.") from None
        if u.shape != (2,) or not np.isfinite(u).all():
            raise SplineAtlasError(f"--point {args.point!r}: give two finite numbers U,V.")
        return u
    X, _ = bundle.points()
    if not 0 <= args.index < len(X):
        raise DatasetError(f"--index {args.index} is out of range: the training set has {len(X)} points.")
    return sl.project(X[args.index][None])[0]


def inspect_report(bundle, epoch_index: int, sl, window, u, depth: int, max_regions: int, region: bool = True, sites: bool = False) -> dict:
    """Everything the window's inspector shows for slice point ``u``, computed as the window computes it:
    ``document`` (the inspector's rows and raw numbers, :func:`app.render.report.report_document`) and the
    power-diagram ``sites`` of the tiles at ``depth`` when asked."""
    from app import jobs
    from app.render.report import report_document

    tess = jobs.tessellate_all(bundle, epoch_index, sl, window, max_regions) if bundle.piecewise_affine else None
    rep = jobs.inspect_point(bundle, epoch_index, sl, u, depth, tess)
    info = jobs.region_geometry(bundle, epoch_index, rep.x) if region and bundle.piecewise_affine else None
    out = {"document": report_document(rep, bundle.class_names, info), "sites": None}
    if sites and tess is not None:
        from geometry.power_diagram import slice_power_diagram

        out["sites"] = slice_power_diagram(bundle.network(epoch_index), tess[depth - 1], [depth - 1]).sites[0]
    return out


def cmd_inspect(args) -> int:
    from app import jobs
    from app.model.state import Settings
    from app.render.report import INSPECTOR_ROWS

    bundle = jobs.open_run_bundle(args.path, trust_code=args.trust_code)
    ei = bundle.run.exact_index(args.epoch)
    sl, home, choice = slice_from_text(args.slice, bundle, ei)
    window = tuple(args.window) if args.window else home
    depth = bundle.depth if args.layer is None else args.layer
    if not 1 <= depth <= bundle.depth:
        raise SplineAtlasError(f"--layer must be between 1 and {bundle.depth}; got {depth}.")
    budget = Settings().max_regions if args.max_regions is None else args.max_regions
    u = _point(args, sl, bundle)
    res = inspect_report(bundle, ei, sl, window, u, depth, budget, region=not args.no_region, sites=bool(args.sites))
    print(f"{bundle.name} epoch {bundle.epochs[ei]}, {sl.description}, layers 1-{depth}")
    rows = res["document"]["rows"]
    width = max(len(label) for _, label, _ in INSPECTOR_ROWS)
    for key, label, _ in INSPECTOR_ROWS:
        if key in rows:
            print(f"  {label:>{width}}: {rows[key]}")
    if args.sites and res["sites"] is not None:
        s = np.asarray(res["sites"], dtype=np.float64)
        write_text(args.sites, "u,v\n" + "".join(f"{a:.17g},{b:.17g}\n" for a, b in s))
        print(f"wrote {args.sites} ({len(s)} sites of layer {depth})", file=sys.stderr)
    if args.json:
        from app.jobs.slicing import format_slice_choice
        from app.render.report import finite

        head = {"run": str(bundle.run.source), "epoch": int(bundle.epochs[ei]), "slice": format_slice_choice(choice), "window": list(window), "depth": depth}
        write_text(args.json, json.dumps(finite({**head, **res["document"]}), indent=1))
        print(f"wrote {args.json}", file=sys.stderr)
    return 0
