"""``splineatlas render3d``: the 3D slice view rendered headlessly to a PNG (the 3D tab's CLI twin).

Same engine calls and the same scene arrays as the tab (:mod:`app.jobs.scene3d`; a generator's manifold:
:mod:`app.jobs.manifold3d`); vispy and Qt are imported only inside the handler, and OpenGL is needed (a
display, or ``xvfb-run -a splineatlas render3d ...``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from geometry.errors import SplineAtlasError
from geometry.safe_io import atomic_save

from ..model.view3d import MANIFOLD_SAMPLERS, View3DSettings
from ..render.faces import FACE_COLOR_MODES
from ..jobs.slicing import slice_from_text
from .common import add_box_scale_argument, add_slice_argument, box_scale_of


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "render3d",
        help="render the exact 3D slice view (cells, decision boundary) to a PNG",
        description="Tessellate a 3D slice exactly and render it like the app's 3D tab. Needs OpenGL: run with a display or under `xvfb-run -a`.",
    )
    p.add_argument("path", help="run.json, run folder or checkpoint")
    p.add_argument("--epoch", type=int, default=None, help="epoch to show (default: the last)")
    p.add_argument("--layer", type=int, default=None, help="depth: cells after layers 1..L (default: all)")
    p.add_argument("--out", required=True, help="output PNG")
    p.add_argument("--size", type=int, nargs=2, default=(1000, 800), metavar=("W", "H"))
    add_slice_argument(p, dim=3)
    p.add_argument(
        "--color",
        choices=FACE_COLOR_MODES,
        default="class",
        help="face colours: cell class, cell ||A_w||, cell log volume change (generators), layer that made the face, pattern hash",
    )
    p.add_argument("--only-layer", type=int, default=0, help="show only the faces made by this layer (1-based)")
    p.add_argument(
        "--near-boundary", type=float, default=None, metavar="FRACTION", help="show only faces near the decision boundary (within FRACTION of the box diagonal)"
    )
    p.add_argument("--explode", type=float, default=0.0, help="exploded view: push cells out by this factor")
    p.add_argument("--opacity", type=float, default=0.12, help="alpha of the region faces")
    p.add_argument(
        "--clip",
        nargs=2,
        metavar=("AXIS", "POS"),
        default=None,
        help="clip at u|v|w = POS (slice coordinate), keeping the lower side (the camera looks down on the cut, drawn as the plane's exact cross-section)",
    )
    p.add_argument("--no-faces", action="store_true")
    p.add_argument("--no-edges", action="store_true")
    p.add_argument("--no-boundary", action="store_true")
    p.add_argument("--no-points", action="store_true")
    p.add_argument("--azimuth", type=float, default=-55.0)
    p.add_argument("--elevation", type=float, default=22.0)
    p.add_argument("--max-cells", type=int, default=View3DSettings.max_cells, help="cell budget of the 3D tessellation (default: as the 3D tab)")
    add_box_scale_argument(p)
    g = p.add_argument_group("a generator (2 latent inputs into R³): its manifold, as the 3D tab draws it")
    g.add_argument(
        "--window", type=float, nargs=4, default=None, metavar=("ZMIN1", "ZMAX1", "ZMIN2", "ZMAX2"), help="latent window (default: the 2D view's home window)"
    )
    g.add_argument("--sampler", default=View3DSettings.sampler, choices=MANIFOLD_SAMPLERS, help="samples drawn on the manifold (default %(default)s)")
    g.add_argument("--rho", type=float, default=View3DSettings.rho, help="polarity exponent ρ (default %(default)s)")
    g.add_argument("--n", type=int, default=View3DSettings.samples, help="number of samples (default %(default)s)")
    g.add_argument("--sample-seed", type=int, default=0)
    g.add_argument("--max-regions", type=int, default=None, help="region budget of the latent tessellation (default: the window's)")
    p.set_defaults(func=cmd_render3d)


def cmd_render3d(args) -> int:
    from .. import jobs
    from ..jobs import open_run_bundle
    from ..jobs import scene3d as jobs3d
    from ..jobs import manifold3d
    from ..model.view3d import ClipPlane, scale_box

    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY") and sys.platform.startswith("linux"):
        raise SplineAtlasError("render3d needs OpenGL and there is no display; run it under a virtual X server: xvfb-run -a splineatlas render3d ...")
    t0 = time.perf_counter()
    bundle = open_run_bundle(args.path)
    run = bundle.run
    idx = run.exact_index(args.epoch)
    if manifold3d.is_manifold_run(bundle):
        return _render_manifold(args, bundle, idx, t0)
    sl, home, _ = slice_from_text(args.slice3, bundle, idx, dim=3)
    box = scale_box(home, box_scale_of(args))
    t_by = jobs.tessellate_all(bundle, idx, sl, box, args.max_cells)
    t_tess = time.perf_counter() - t0
    depth = bundle.depth if args.layer is None else args.layer
    if not 1 <= depth <= bundle.depth:
        raise SplineAtlasError(f"--layer must be between 1 and {bundle.depth}; got {args.layer}.")
    settings = View3DSettings(
        show_faces=not args.no_faces,
        show_edges=not args.no_edges,
        show_boundary=not args.no_boundary,
        show_points=not args.no_points,
        only_layer=max(args.only_layer, 0),
        near_boundary=args.near_boundary is not None,
        near_distance=args.near_boundary or 0.0,
        explode=max(args.explode, 0.0),
        opacity=min(max(args.opacity, 0.0), 1.0),
        max_cells=args.max_cells,
        box_scale=args.box_scale,
    )
    scene = jobs3d.scene_arrays(t_by, depth, args.color, settings, box)

    clip = None
    if args.clip:
        axis = "uvw".index(args.clip[0]) if args.clip[0] in "uvw" else int(args.clip[0])
        clip = ClipPlane(True, axis, float(args.clip[1]))
    points = jobs3d.points_in_box(bundle, sl, box) if settings.show_points else None
    drawing = jobs3d.Drawing3D(
        box=np.asarray(box, dtype=np.float64), scene=scene, points=points, clip=clip, cap=jobs3d.cap_arrays(t_by, depth, args.color, clip)
    )
    _write_frame(args, drawing)
    print(
        f"{args.out}: {args.size[0]}x{args.size[1]}; {scene.summary()}; epoch {run.epochs[idx]}, {sl.description}; "
        f"tessellation {t_tess:.2f} s, total {time.perf_counter() - t0:.2f} s"
    )
    return 0


def _render_manifold(args, bundle, idx: int, t0: float) -> int:
    """A generator's manifold over the latent window: the 3D tab's frame (same tiles, colours, samples)."""
    from .. import jobs
    from ..jobs import manifold3d
    from ..model.state import Settings

    sl, home, _ = slice_from_text(None, bundle, idx, dim=2)
    window = tuple(args.window) if args.window else home
    if not (window[0] < window[1] and window[2] < window[3]):
        raise SplineAtlasError(f"--window {list(window)}: give ZMIN1 < ZMAX1 and ZMIN2 < ZMAX2.")
    budget = args.max_regions or Settings().max_regions
    tess = jobs.tessellate_all(bundle, idx, sl, window, budget)[-1]
    settings = View3DSettings(
        show_faces=not args.no_faces,
        show_edges=not args.no_edges,
        show_points=not args.no_points,
        opacity=min(max(args.opacity, 0.0), 1.0),
        sampler=args.sampler,
        rho=args.rho,
        samples=max(args.n, 0),
        sample_seed=args.sample_seed,
    )
    drawing = manifold3d.manifold_drawing(tess, manifold3d.data_outputs(bundle), settings)
    _write_frame(args, drawing)
    print(
        f"{args.out}: {args.size[0]}x{args.size[1]}; {drawing.scene.summary()}; epoch {bundle.run.epochs[idx]}, latent window {list(window)}; "
        f"total {time.perf_counter() - t0:.2f} s"
    )
    return 0


def _write_frame(args, drawing) -> None:
    from ..qt.turntable import scene_frames

    _, frame = scene_frames(drawing, tuple(args.size), 1, azimuth0=args.azimuth, elevation=args.elevation, turn=0.0)
    img = frame(0)
    import imageio.v3 as iio

    atomic_save(args.out, lambda p: iio.imwrite(p, img))
