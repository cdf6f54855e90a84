"""``splineatlas follow PATH --point U,V``: the exact tile holding one slice point at every checkpoint
(polygon, area, ‖A_ω‖₂, class, Hamming distance to the previous checkpoint's tile) — the Training tab's
*Follow point*, headless, with the window's slice, window and budget by default."""

from __future__ import annotations

import argparse

import numpy as np

from geometry.errors import SplineAtlasError

from ..jobs.slicing import slice_from_text
from .common import add_slice_argument, add_trust_argument


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("follow", help="the tile holding a slice point, followed over every checkpoint (area, ||A||, class, pattern changes)")
    p.add_argument("path", help="run.json or run folder")
    p.add_argument("--point", required=True, metavar="U,V", help="slice coordinates of the point (a negative U: --point=-0.5,0.2)")
    add_slice_argument(p)
    p.add_argument("--window", type=float, nargs=4, metavar=("UMIN", "UMAX", "VMIN", "VMAX"), help="the tessellated window (default: the slice's home window)")
    p.add_argument("--max-regions", type=int, default=None, help="region budget (default: the window's)")
    p.add_argument("--csv", metavar="OUT.csv", help="write the track: a row per checkpoint")
    add_trust_argument(p)
    p.set_defaults(func=cmd_follow)


def cmd_follow(args) -> int:
    from app import jobs
    from app.export.tables import track_table, write_csv
    from app.jobs.follow import follow_region
    from app.model.state import Settings

    bundle = jobs.open_run_bundle(args.path, trust_code=args.trust_code)
    sl, home, _ = slice_from_text(args.slice, bundle, len(bundle.run) - 1)
    window = tuple(args.window) if args.window else home
    try:
        u = tuple(float(t) for t in args.point.split(","))
    except ValueError:
        raise SplineAtlasError(f"--point {args.point!r}: give two numbers U,V.") from None
    if len(u) != 2 or not np.isfinite(u).all():
        raise SplineAtlasError(f"--point {args.point!r}: give two finite numbers U,V.")
    budget = Settings().max_regions if args.max_regions is None else args.max_regions
    track = follow_region(bundle, sl, window, u, budget)
    names = list(bundle.class_names)
    print(f"{bundle.name}: the tile holding u = {u} in {sl.description}, {len(track.epochs)} checkpoints")
    print(f"{'epoch':>7} {'tile':>7} {'area':>11} {'||A||':>10} {'class':<14} {'Hamming':>7}")
    for i, e in enumerate(track.epochs):
        c = track.classes[i]
        label = (names[c] if 0 <= c < len(names) else str(c)) + (" *" if track.class_changed[i] else "")
        ham = "" if not np.isfinite(track.hamming[i]) else str(int(track.hamming[i]))
        print(f"{e:>7} {track.region[i]:>7} {track.area[i]:>11.4g} {track.slope_norm[i]:>10.4g} {label:<14} {ham:>7}")
    print("(* the class changed since the previous checkpoint; Hamming: pattern bits that differ from the previous checkpoint's tile)")
    if args.csv:
        write_csv(args.csv, *track_table(track))
        print(f"wrote {args.csv}")
    return 0
