"""``splineatlas export-figure`` and ``splineatlas export-video``: headless twins of File > Export….

Both use the renderers of :mod:`app.render` (matplotlib Agg, no display, no Qt), so the pictures are
those the window's export dialog writes for the same run, checkpoint, slice, window, layer and colours.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from geometry.errors import DatasetError, SplineAtlasError

from ..model.state import COLOR_MODES, PATH_KINDS
from ..jobs.slicing import slice_from_text
from .common import add_box_scale_argument, add_slice_argument, box_scale_of


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="checkpoint file, run.json or run folder")
    add_slice_argument(p)
    p.add_argument(
        "--window", type=float, nargs=4, metavar=("UMIN", "UMAX", "VMIN", "VMAX"), help="visible window in slice coordinates (default: the slice's home window)"
    )
    p.add_argument("--layer", type=int, default=None, help="show the tessellation after layers 1..L (default: all)")
    p.add_argument(
        "--color", choices=COLOR_MODES, default="class", help="tile colouring: predicted class, ||A_w|| slope norm, activation-pattern hash, layer of origin"
    )
    p.add_argument("--size", type=int, nargs=2, metavar=("W", "H"), default=None, help="size in pixels")
    p.add_argument("--dpi", type=int, default=None, help="dots per inch: fonts scale with it (default: fit the size, min(W/6.4, H/4.8))")
    p.add_argument("--font-scale", type=float, default=1.0, help="multiply all font sizes")
    p.add_argument("--no-edges", action="store_true", help="do not draw the tiles' edges")
    p.add_argument("--no-boundary", action="store_true", help="do not draw the decision boundary")
    p.add_argument("--no-points", action="store_true", help="do not draw the data points")
    p.add_argument("--no-legend", action="store_true", help="no legend")
    p.add_argument("--no-title", action="store_true", help="no title")
    p.add_argument("--max-regions", type=int, default=200_000, help="tessellation budget (error beyond it)")
    p.add_argument("--out", required=True, help="output file")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export-figure", help="the 2D slice figure as PNG, SVG or PDF (vector tiles), headless")
    _add_common(p)
    p.add_argument("--epoch", type=int, default=None, help="epoch of the run (default: the last checkpoint)")
    p.add_argument(
        "--path",
        dest="trace",
        default=None,
        metavar="KIND:I,J",
        help="a path figure instead: segment|horizontal|normal|region path from training point I to J (normal: "
        "KIND:I), drawn over the slice with its class probabilities and, for images, an image strip",
    )
    p.set_defaults(func=cmd_export_figure)

    v = sub.add_parser(
        "export-video",
        help="epoch sweep, layer sweep, path animation or 3D turntable as MP4 (H.264) or GIF",
        description="Headless except --sweep turntable, which needs OpenGL (a display, or xvfb-run -a).",
    )
    _add_common(v)
    v.add_argument("--sweep", choices=["epochs", "layers", "path", "turntable"], required=True)
    v.add_argument("--epoch", type=int, default=None, help="layers/path sweeps: the checkpoint (default: last)")
    v.add_argument(
        "--epochs",
        type=str,
        default=None,
        metavar="A:B[:STEP]|E1,E2,...",
        help="epochs sweep: which epochs (default: every checkpoint). A:B every checkpoint from epoch "
        "A to B; A:B:STEP the checkpoints nearest to epochs A, A+STEP, ..., B; or a list of epochs",
    )
    v.add_argument("--fps", type=float, default=4.0, help="frames per second (default 4)")
    v.add_argument("--follow", metavar="U,V", default=None, help="epochs sweep: outline the tile holding this slice point in every frame (a region followed)")
    v.add_argument("--path-kind", choices=PATH_KINDS, default="horizontal", help="path sweep: the kind of path (default: horizontal leaf path)")
    v.add_argument("--from", dest="src", type=int, default=None, help="path sweep: start (training index)")
    v.add_argument("--to", dest="dst", type=int, default=None, help="path sweep: end (training index)")
    v.add_argument("--steps", type=int, default=None, help="path sweep: step budget of a leaf path (default: the window's)")
    v.add_argument("--frames", type=int, default=None, help="path sweep: number of frames (default: <= 90); turntable: frames per turn (default 72)")
    add_slice_argument(v, dim=3, flag="--slice3")
    add_box_scale_argument(v)
    v.set_defaults(func=cmd_export_video)


def _options(args):
    from app.render.slice_figure import FigureOptions

    from app.render.style import fit_dpi

    w, h = args.size if args.size else (1200, 1000)
    dpi = args.dpi if args.dpi is not None else fit_dpi(w, h)
    return FigureOptions(
        mode=args.color,
        width=w,
        height=h,
        dpi=dpi,
        show_edges=not args.no_edges,
        show_boundary=not args.no_boundary,
        show_points=not args.no_points,
        show_legend=not args.no_legend,
        show_title=not args.no_title,
        font_scale=args.font_scale,
    ).check()


def _setup(args):
    from app import jobs

    bundle = jobs.open_run_bundle(args.path)
    if not bundle.piecewise_affine:
        raise SplineAtlasError("this network is not piecewise affine, so it has no exact tiles to draw.")
    ei = bundle.run.exact_index(args.epoch)
    slice_, home, _ = slice_from_text(args.slice, bundle, ei)
    window = tuple(args.window) if args.window else home
    return bundle, ei, slice_, window


def _progress_printer(label: str):
    if not sys.stderr.isatty():
        return None
    return lambda f, msg: print(f"\r{label}: {100 * f:5.1f}%  {msg[:60]:<60}", end="", file=sys.stderr, flush=True)


def cmd_export_figure(args) -> int:
    from app.render.slice_figure import FIGURE_FORMATS, build_slice_scene, export_slice_figure

    out = Path(args.out)
    if out.suffix.lower() not in FIGURE_FORMATS:
        raise SplineAtlasError(f"--out {out}: use a .png, .svg or .pdf file name.")
    opt = _options(args)
    bundle, ei, slice_, window = _setup(args)
    scene = build_slice_scene(bundle, ei, slice_, window, args.layer, max_regions=args.max_regions, progress=_progress_printer("tessellating"))
    if args.trace:
        from app.export.sweeps import trace_path
        from app.render.path_figure import render_path_figure
        from app.render.slice_figure import save_figure

        kind, _, rest = args.trace.partition(":")
        try:
            idx = [int(t) for t in rest.split(",") if t.strip()]
        except ValueError:
            raise SplineAtlasError(f"--path {args.trace!r}: use KIND:I,J with training indices.") from None
        X, _ = bundle.points()
        if len(idx) != (1 if kind == "normal" else 2) or any(not 0 <= i < len(X) for i in idx):
            raise DatasetError(f"--path {args.trace!r}: give {'one index' if kind == 'normal' else 'two indices'} of the training set (0..{len(X) - 1}).")
        pd = trace_path(bundle, ei, kind, X[idx[0]], X[idx[1]] if len(idx) > 1 else None)
        names, shape, prep = bundle.class_names, bundle.image_shape, bundle.preprocessing
        fig = render_path_figure(scene, slice_, pd.points, pd.probs, pd.label, names, shape, options=opt, preprocessing=prep)
        save_figure(fig, out, opt.dpi)
        print(f"wrote {out} ({pd.label}, {len(pd.points)} points, epoch {bundle.epochs[ei]})")
        return 0
    export_slice_figure(scene, out, opt)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(f"wrote {out} ({scene.current.num_regions} regions, epoch {bundle.epochs[ei]}, layers 1-{scene.depth})")
    return 0


def nearest_to_targets(epochs: list[int], a: int, b: int, step: int) -> list[int]:
    """Indices j of the sorted ``epochs`` that are the nearest (the earlier on a tie) to at least one target
    a, a + step, ..., <= b. Computed per checkpoint from the interval of targets it wins, so the cost does
    not grow with the number of targets (``0:10**18:1`` is instant)."""
    chosen = []
    for j, e in enumerate(epochs):
        # epoch e wins targets t with 2t > e_prev + e (strictly: ties go to the earlier) and 2t <= e + e_next
        lo2 = epochs[j - 1] + e if j > 0 else 2 * a - 1
        hi2 = e + epochs[j + 1] if j + 1 < len(epochs) else 2 * b
        lo2, hi2 = max(lo2, 2 * a - 1), min(hi2, 2 * b)
        k = max(0, (lo2 - 2 * a) // (2 * step) + 1)  # the first k with 2(a + k step) > lo2
        if 2 * (a + k * step) <= hi2:
            chosen.append(j)
    return chosen


def _parse_epochs(text: str | None, run) -> list[int]:
    if text is None:
        return list(range(len(run)))
    try:
        if ":" in text:
            parts = [int(t) for t in text.split(":")]
            if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] < 1):
                raise ValueError
            a, b = parts[0], parts[1]
            inside = [i for i, e in enumerate(run.epochs) if a <= e <= b]
            if not inside:
                raise SplineAtlasError(f"--epochs {text}: the run has no checkpoint between epochs {a} and {b} (it has {run.epochs[0]}..{run.epochs[-1]}).")
            if len(parts) == 2:
                return inside
            # every STEP epochs: the checkpoint nearest to each of A, A + STEP, ..., B (runs are often log-spaced)
            eps = [run.epochs[i] for i in inside]
            return [inside[j] for j in nearest_to_targets(eps, a, b, parts[2])]
        return sorted({run.exact_index(int(t)) for t in text.split(",")})
    except ValueError:
        raise SplineAtlasError(f"--epochs {text!r}: use A:B[:STEP] (STEP >= 1) or E1,E2,... (integers).") from None


def cmd_export_video(args) -> int:
    from app.export import sweeps
    from app.export.video import VIDEO_FORMATS, check_video_size

    out = Path(args.out)
    if out.suffix.lower() not in VIDEO_FORMATS:
        raise SplineAtlasError(f"--out {out}: use a .mp4 or .gif file name.")
    if args.size is None:
        args.size = [960, 800]
    opt = _options(args)
    check_video_size(opt.width, opt.height, out.suffix.lower())
    if args.sweep == "turntable":
        return _turntable(args, opt, out)
    bundle, ei, slice_, window = _setup(args)
    if args.follow is not None and args.sweep != "epochs":
        raise SplineAtlasError("--follow goes with --sweep epochs (a tile followed over the checkpoints).")
    if args.sweep == "epochs":
        idx = _parse_epochs(args.epochs, bundle.run)
        if not idx:
            raise SplineAtlasError(f"--epochs {args.epochs!r} selects no checkpoint of this run.")
        over = None
        if args.follow is not None:
            try:
                u = np.array([float(t) for t in args.follow.split(",")], dtype=np.float64)
            except ValueError:
                raise SplineAtlasError(f"--follow {args.follow!r}: give two numbers U,V.") from None
            if u.shape != (2,) or not np.isfinite(u).all():
                raise SplineAtlasError(f"--follow {args.follow!r}: give two finite numbers U,V.")
            over = {"follow": u, "marker": u}
        frames = sweeps.epoch_sweep_frames(bundle, slice_, window, args.layer, idx, opt, max_regions=args.max_regions, overlays=over)
    elif args.sweep == "layers":
        frames = sweeps.layer_sweep_frames(bundle, ei, slice_, window, opt, max_regions=args.max_regions)
    else:
        X, _ = bundle.points()
        if args.src is None or (args.path_kind != "normal" and args.dst is None):
            raise SplineAtlasError("--sweep path needs --from I (and --to J unless --path-kind normal).")
        for i in (args.src, args.dst):
            if i is not None and not 0 <= i < len(X):
                raise DatasetError(f"path index {i} is out of range: the training set has {len(X)} points.")
        pd = sweeps.trace_path(bundle, ei, args.path_kind, X[args.src], None if args.dst is None else X[args.dst], steps=args.steps)
        frames = sweeps.path_animation_frames(bundle, ei, slice_, window, pd, args.frames, opt, max_regions=args.max_regions)
    sweeps.export_video(out, frames, fps=args.fps, progress=_progress_printer("rendering"))
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(f"wrote {out} ({frames[0]} frames at {args.fps:g} fps, {opt.width}x{opt.height})")
    return 0


def _turntable(args, opt, out: Path) -> int:
    from app import jobs
    from app.export.sweeps import export_video

    from app.qt.turntable import require_opengl_display, turntable_frames  # Qt/vispy only for this sweep
    from app.model.view3d import View3DSettings

    require_opengl_display()
    bundle = jobs.open_run_bundle(args.path)
    ei = bundle.run.exact_index(args.epoch)
    settings = View3DSettings(box_scale=box_scale_of(args))
    frames = turntable_frames(bundle, ei, args.layer, args.color, (opt.width, opt.height), args.frames or 72, slice_text=args.slice3, settings=settings)
    export_video(out, frames, fps=args.fps, progress=_progress_printer("rendering"))
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(f"wrote {out} ({frames[0]} frames at {args.fps:g} fps, {opt.width}x{opt.height}, 3D turntable)")
    return 0
