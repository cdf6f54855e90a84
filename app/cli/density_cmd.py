"""``splineatlas density PATH --layer L --grid N --out density.npz|png``: the exact density of layer L's
bent hyperplanes in the window's slice (edge length per unit area on an N x N grid; the survey's Fig. 8),
from the window's own tessellation (same slice, window and region budget by default)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from geometry.errors import SplineAtlasError

from ..jobs.slicing import slice_from_text
from .common import add_slice_argument, add_trust_argument


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("density", help="exact density of a layer's bent hyperplanes in a 2D slice (edge length per unit area on a grid)")
    p.add_argument("path", help="run.json, run folder or checkpoint")
    p.add_argument("--layer", type=int, required=True, metavar="L", help="layer 1..depth whose hyperplanes are measured")
    p.add_argument("--grid", type=int, default=64, metavar="N", help="cells per side of the grid (default 64)")
    p.add_argument("--epoch", type=int, default=None, help="epoch (default: the last checkpoint)")
    add_slice_argument(p)
    p.add_argument("--window", type=float, nargs=4, metavar=("UMIN", "UMAX", "VMIN", "VMAX"), help="the tessellated window (default: the slice's home window)")
    p.add_argument("--max-regions", type=int, default=None, help="region budget (default: the window's)")
    p.add_argument("--out", required=True, metavar="OUT.npz|OUT.png", help="the map as arrays (.npz) or a figure (.png, .svg, .pdf)")
    add_trust_argument(p)
    p.set_defaults(func=cmd_density)


def cmd_density(args) -> int:
    from app import jobs
    from app.jobs.tessellate import tessellate_all
    from app.model.state import Settings
    from geometry.safe_io import atomic_output
    from geometry.tessellation.density import edge_density

    bundle = jobs.open_run_bundle(args.path, trust_code=args.trust_code)
    index = bundle.run.exact_index(args.epoch) if args.epoch is not None else len(bundle.run) - 1
    sl, home, _ = slice_from_text(args.slice, bundle, index)
    if sl.dim != 2:
        raise SplineAtlasError("density maps are for 2D slices; give a 2D --slice.")
    if not 1 <= args.layer <= bundle.depth:
        raise SplineAtlasError(f"--layer {args.layer}: give a layer between 1 and {bundle.depth}.")
    window = tuple(args.window) if args.window else home
    budget = Settings().max_regions if args.max_regions is None else args.max_regions
    tess = tessellate_all(bundle, index, sl, window, budget)[-1]
    ed = edge_density(tess, args.layer - 1, args.grid)
    out = Path(args.out)
    epoch = bundle.epochs[index]
    if out.suffix.lower() == ".npz":
        with atomic_output(out) as tmp, open(tmp, "wb") as f:  # a file object: np.savez would append .npz to the name
            np.savez(f, **ed.to_npz_dict(), epoch=np.int64(epoch))
    else:
        from app.render.density_figure import render_density_figure
        from app.render.slice_figure import save_figure

        save_figure(render_density_figure(ed, f"{bundle.name}, epoch {epoch}, {sl.description}"), out)
    print(
        f"layer {args.layer}: {ed.total_length:.6g} slice units of bent hyperplane in {tess.num_regions} regions; "
        f"density max {ed.density.max():.4g}, mean {ed.density.mean():.4g} per unit area; wrote {out}"
    )
    return 0
