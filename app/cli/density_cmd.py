"""``splineatlas density PATH --layer L --grid N --out density.npz|png``: the exact density of layer L's
bent hyperplanes in the window's slice (edge length per unit area on an N x N grid; the survey's Fig. 8),
from the window's own tessellation (same slice, window and region budget by default)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from geometry.errors import SplineAtlasError
from geometry.tessellation.density import DEFAULT_GRID

from ..jobs.slicing import slice_from_text
from .common import add_slice_argument, add_trust_argument


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("density", help="exact density of a layer's bent hyperplanes in a 2D slice (edge length per unit area on a grid)")
    p.add_argument("path", help="run.json, run folder or checkpoint")
    p.add_argument("--layer", type=int, required=True, metavar="L", help="layer 1..depth whose hyperplanes are measured")
    p.add_argument(
        "--grid", type=int, default=DEFAULT_GRID, metavar="N", help=f"cells per side of the grid (default {DEFAULT_GRID}, as the window's colour mode)"
    )
    p.add_argument(
        "--radius",
        type=float,
        default=None,
        metavar="R",
        help="also count, per grid point, the layer's neurons whose zero set meets the disc of radius R (slice units)",
    )
    p.add_argument("--epoch", type=int, default=None, help="epoch (default: the last checkpoint)")
    add_slice_argument(p)
    p.add_argument("--window", type=float, nargs=4, metavar=("UMIN", "UMAX", "VMIN", "VMAX"), help="the tessellated window (default: the slice's home window)")
    p.add_argument("--max-regions", type=int, default=None, help="region budget (default: the window's)")
    p.add_argument("--out", required=True, metavar="OUT.npz|OUT.png", help="the map as arrays (.npz) or a figure (.png, .svg, .pdf)")
    add_trust_argument(p)
    p.set_defaults(func=cmd_density)

    e = sub.add_parser("density-experiment", help="the survey's Fig. 8: hyperplane density at initialisation with zero bias, random bias, batch norm")
    e.add_argument("--width", type=int, default=16, help="units per hidden layer (default 16)")
    e.add_argument("--depth", type=int, default=11, help="hidden layers (default 11, as the survey)")
    e.add_argument("--layers", default="3,7,11", help="layers to map, 1-based (default 3,7,11)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--grid", type=int, default=DEFAULT_GRID, metavar="N", help=f"cells per side (default {DEFAULT_GRID})")
    e.add_argument("--out", required=True, metavar="OUT.png|OUT.npz", help="the figure (.png, .svg, .pdf) or the maps (.npz)")
    e.set_defaults(func=cmd_density_experiment)


def cmd_density_experiment(args) -> int:
    from experiments.hyperplane_density import batchnorm_density_experiment
    from geometry.safe_io import write_npz

    try:
        layers = [int(v) for v in args.layers.split(",")]
    except ValueError:
        raise SplineAtlasError(f"--layers {args.layers!r}: give layer numbers like 3,7,11.") from None
    if not 1 <= args.depth <= 64 or not 1 <= args.width <= 1024 or not all(1 <= v <= args.depth for v in layers):
        raise SplineAtlasError(f"--depth 1..64, --width 1..1024 and --layers within 1..{args.depth}, please.")
    res = batchnorm_density_experiment(args.width, args.depth, args.seed, args.grid, layers)
    print(f"2-{res.width}x{res.depth}-2 at initialisation, star-shaped data; cells holding data: {100 * res.data_cells:.1f} % of the grid")
    print(
        f"{'configuration':<14} {'regions':>9}  "
        + "  ".join(f"{'layer ' + str(v):>9}" for v in res.layers)
        + "   (share of the layer's hyperplane length on data cells)"
    )
    for c, shares in res.concentration.items():
        print(f"{c:<14} {res.regions[c]:>9,}  " + "  ".join(f"{100 * v:>8.1f}%" for v in shares))
    out = Path(args.out)
    if out.suffix.lower() == ".npz":
        arrays = {f"{c.replace(' ', '_')}_layer{v}": m.density for c in res.densities for v, m in zip(res.layers, res.densities[c])}
        grid = res.densities["batch norm"][0]
        write_npz(out, **arrays, data=res.data, layers=np.array(res.layers), u_edges=grid.u_edges, v_edges=grid.v_edges)
    else:
        from app.render.density_figure import render_density_experiment
        from app.render.slice_figure import save_figure

        save_figure(render_density_experiment(res), out)
    print(f"wrote {out}")
    return 0


def cmd_density(args) -> int:
    from app import jobs
    from app.jobs.tessellate import tessellate_all
    from app.model.state import Settings
    from geometry.safe_io import write_npz
    from geometry.tessellation.density import edge_density, neurons_crossing_discs

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
    counts = neurons_crossing_discs(bundle.network(index), tess, args.layer - 1, args.radius, args.grid) if args.radius is not None else None
    out = Path(args.out)
    epoch = bundle.epochs[index]
    if out.suffix.lower() == ".npz":
        extra = {"crossing_counts": counts.counts, "radius": counts.radius} if counts is not None else {}
        write_npz(out, **ed.to_npz_dict(), **extra, epoch=np.int64(epoch))
    else:
        from app.render.density_figure import render_density_figure
        from app.render.slice_figure import save_figure

        save_figure(render_density_figure(ed, f"{bundle.name}, epoch {epoch}, {sl.description}", counts), out)
    if counts is not None:
        print(f"neurons of layer {args.layer} crossing a disc of radius {counts.radius:g}: max {counts.counts.max()}, mean {counts.counts.mean():.3g}")
    print(
        f"layer {args.layer}: {ed.total_length:.6g} slice units of bent hyperplane in {tess.num_regions} regions; "
        f"density max {ed.density.max():.4g}, mean {ed.density.mean():.4g} per unit area; wrote {out}"
    )
    return 0
