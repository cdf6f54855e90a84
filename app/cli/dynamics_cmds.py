"""``splineatlas dynamics PATH --out DIR``: training-dynamics curves of a run as CSV and figures.

Writes ``DIR/dynamics.csv`` (one row per checkpoint: accuracy, local complexity per layer for
train/test/random points, exact region density near data / boundary / random points, mean Tr G,
distance to the nearest region boundary per layer) and ``DIR/dynamics.png`` + ``.svg`` (all panels).
Per-checkpoint results are cached on disk, so a second run over the same checkpoints is instant.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from app.cli.common import add_cluster_arguments
from geometry.errors import SplineAtlasError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dynamics", help="curves over training (LC, region density, Tr G, ...) as CSV and figures")
    p.add_argument("path", help="run.json or run folder (its dataset is used)")
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--epochs", type=str, default=None, metavar="E1,E2,...", help="only these epochs (default: all)")
    p.add_argument("--points", type=int, default=256, help="train/test/random points per checkpoint (default 256)")
    p.add_argument("--radius", type=float, default=None, help="LC orthoplex radius r and square half-width (default: 0.05 x the data's RMS radius)")
    p.add_argument("--frame-dims", type=int, default=16, help="orthoplex directions P (default 16)")
    p.add_argument("--slices", type=int, default=2, help="planes for the boundary and random squares when the input is not 2D (default 2)")
    p.add_argument("--data-squares", type=int, default=32, help="training points with their own exact square (own plane) when the input is not 2D (default 32)")
    p.add_argument("--no-trace-g", action="store_true", help="skip mean Tr G")
    p.add_argument("--no-boundary-distance", action="store_true", help="skip distances to region boundaries")
    p.add_argument("--no-cache", action="store_true", help="recompute every checkpoint (no disk cache)")
    p.add_argument("--cache-dir", default=None, help="cache folder (default: the user cache folder)")
    p.add_argument("--device", default=None, help="cpu | cuda (default: CUDA when present)")
    p.add_argument("--dpi", type=int, default=150, help="figure dpi (default 150)")
    p.add_argument("--parallel", action="store_true", help="compute the checkpoints as Dask tasks (see --workers, --scheduler) before writing the curves")
    add_cluster_arguments(p)
    p.set_defaults(func=cmd_dynamics)


def _dynamics_on_dask(run, settings, indices, args) -> None:
    """Every checkpoint not cached yet as a Dask task, into the dynamics cache the serial pass then reads."""
    from pathlib import Path

    from app.jobs.bundle import bundle_from_run
    from app.jobs.precompute import plan_precompute, run_precompute
    from geometry.dynamics import default_dynamics_cache

    if args.no_cache:
        raise SplineAtlasError("--parallel writes every checkpoint into the cache; drop --no-cache.")
    folder = Path(args.cache_dir) if args.cache_dir else default_dynamics_cache()
    plan = plan_precompute(bundle_from_run(run, args.path), None, None, 0, folder, settings, folder, indices)
    outcome = run_precompute(plan, args.scheduler, args.workers)[1]
    if outcome is not None:
        print(f"computed {outcome.computed} checkpoint(s) on {outcome.workers} Dask worker(s) in {outcome.seconds:.1f} s", file=sys.stderr)
        if outcome.failed:
            raise SplineAtlasError(f"{len(outcome.failed)} checkpoint(s) failed on the cluster: {next(iter(outcome.failed.values()))}")


def cmd_dynamics(args) -> int:
    from geometry.networks.device import resolve_device
    from geometry.dynamics import DynamicsSettings, run_dynamics
    from geometry.networks.runs import open_run

    from app.render.curves import render_curves
    from app.render.slice_figure import save_figure

    run = open_run(args.path)
    if len(run) == 0:
        raise SplineAtlasError(f"{args.path} holds no checkpoints.")
    idx = None
    if args.epochs:
        idx = sorted(set(run.epoch_indices(args.epochs)))
    if args.points < 1:
        raise SplineAtlasError("--points must be at least 1.")
    settings = DynamicsSettings(
        max_points=args.points,
        random_points=args.points,
        lc_radius=args.radius,
        lc_dims=args.frame_dims,
        square_half_width=args.radius,
        boundary_points=args.points,
        slices=args.slices,
        data_squares=args.data_squares,
        with_trace_g=not args.no_trace_g,
        with_boundary_distance=not args.no_boundary_distance,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = None if args.no_cache else (args.cache_dir or "default")
    tty = sys.stderr.isatty()

    def progress(f, msg):
        if tty:
            print(f"\r{100 * f:5.1f}%  {msg[:70]:<70}", end="", file=sys.stderr, flush=True)

    if args.parallel or args.workers or args.scheduler:
        _dynamics_on_dask(run, settings, idx, args)
    curves = run_dynamics(run, settings, idx, cache_dir=cache, device=resolve_device(args.device), progress=progress)
    if tty:
        print(file=sys.stderr)
    csv_path = curves.to_csv(out / "dynamics.csv")
    fig = render_curves(curves, dpi=args.dpi, width=int(12 * args.dpi), height=int(7.3 * args.dpi))
    save_figure(fig, out / "dynamics.png", args.dpi)
    save_figure(fig, out / "dynamics.svg", args.dpi)
    e = curves.epochs
    ratio = curves.column("density_boundary") / curves.column("density_data")
    print(f"wrote {csv_path}, {out / 'dynamics.png'}, {out / 'dynamics.svg'} ({len(e)} checkpoints, epochs {e.min()}..{e.max()})")
    if np.isfinite(ratio).any():
        k = int(np.nanargmin(ratio))
        print(
            f"boundary/data region-density ratio: first {ratio[0]:.2f}, min {ratio[k]:.2f} (epoch {e[k]}), "
            f"last {ratio[-1]:.2f}" + (" (nan: no decision boundary in the slice yet)" if np.isnan(ratio).any() else "")
        )
    return 0
