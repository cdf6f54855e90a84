"""``splineatlas compare``: two epochs of a run (or one epoch of two runs of one architecture) on one slice,
the regions whose activation pattern differs highlighted -- the Compare tab, headless.

The slice, window and region budget default as in the window; the comparison is :func:`app.jobs.compare.compare_epochs`
and the figure :func:`app.render.compare_figure.render_comparison`, the code the Compare tab runs.
"""

from __future__ import annotations

import argparse
import json
import sys

from geometry.errors import SplineAtlasError
from geometry.safe_io import write_text

from ..jobs.slicing import slice_from_text
from .common import add_slice_argument, add_trust_argument


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="two epochs (or two runs) side by side on one slice, changed activation patterns highlighted")
    p.add_argument("path", help="checkpoint file, run.json or run folder (the left network)")
    p.add_argument("--epoch", type=int, default=None, help="epoch of the left network (default: the last checkpoint)")
    p.add_argument("--with-epoch", type=int, default=None, help="epoch of the right network (default: the first checkpoint of its run)")
    p.add_argument("--with-run", default=None, metavar="PATH", help="the right network's run, of the same architecture (default: the same run)")
    add_slice_argument(p)
    p.add_argument("--window", type=float, nargs=4, metavar=("UMIN", "UMAX", "VMIN", "VMAX"), help="the window (default: the slice's home window)")
    p.add_argument("--max-regions", type=int, default=None, help="region budget per network (default: the window's)")
    p.add_argument("--size", type=int, nargs=2, default=(2000, 1000), metavar=("W", "H"), help="figure size in pixels (default 2000 1000)")
    p.add_argument("--dpi", type=int, default=None, help="dots per inch (default: fit the size)")
    p.add_argument("--out", required=True, help="the figure (.png, .svg or .pdf)")
    p.add_argument("--json", metavar="OUT.json", help="write the counts: regions, changed regions and Hamming distances per side")
    add_trust_argument(p)
    p.set_defaults(func=cmd_compare)


def cmd_compare(args) -> int:
    from app import jobs
    from app.jobs.compare import compare_epochs
    from app.jobs.slicing import format_slice_choice
    from app.model.state import Settings
    from app.render.compare_figure import render_comparison
    from app.render.slice_figure import FigureOptions, save_figure
    from app.render.style import fit_dpi

    a = jobs.open_run_bundle(args.path, trust_code=args.trust_code)
    b = a if args.with_run is None else jobs.open_run_bundle(args.with_run, trust_code=args.trust_code)
    ea = a.run.exact_index(args.epoch)
    eb = 0 if args.with_epoch is None else b.run.exact_index(args.with_epoch)
    if b is a and ea == eb:
        raise SplineAtlasError(f"--epoch and --with-epoch name the same checkpoint (epoch {a.epochs[ea]}); give two epochs or --with-run.")
    sl, home, choice = slice_from_text(args.slice, a, ea)
    window = tuple(args.window) if args.window else home
    budget = Settings().max_regions if args.max_regions is None else args.max_regions
    cmp = compare_epochs(a, ea, b, eb, sl, window, budget)
    w, h = args.size
    dpi = args.dpi or fit_dpi(w, h)
    save_figure(render_comparison(cmp, FigureOptions(width=w, height=h, dpi=dpi)), args.out, dpi)
    print(cmp.text())
    if args.json:
        write_text(args.json, json.dumps({"slice_choice": format_slice_choice(choice), **cmp.summary()}, indent=1))
        print(f"wrote {args.json}", file=sys.stderr)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0
