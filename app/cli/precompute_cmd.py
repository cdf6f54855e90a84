"""``splineatlas precompute PATH``: tessellate every checkpoint of a run (and with ``--dynamics`` compute
its training-dynamics numbers) as Dask tasks, into the caches the window reads, so that scrubbing the
epoch slider afterwards never waits. The slice and window are the window's defaults unless given."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    from app.cli.common import add_cluster_arguments
    from app.cli.tessellate_cmd import add_slice_arguments

    p = sub.add_parser("precompute", help="tessellate every checkpoint (and its dynamics) into the window's cache, as Dask tasks")
    add_slice_arguments(p)
    p.add_argument("--dynamics", action="store_true", help="also compute the Dynamics tab's numbers of every checkpoint (its default settings)")
    p.add_argument("--cache-dir", default=None, help="the cache folder (default: the window's, under $SPLINEATLAS_CACHE or ~/.cache/splineatlas)")
    add_cluster_arguments(p)
    p.set_defaults(func=cmd_precompute)


def cmd_precompute(args) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from app.cli.tessellate_cmd import load_checkpoint_network, resolve_slice
    from app.jobs.bundle import bundle_from_run
    from app.jobs.precompute import plan_precompute, run_precompute
    from app.model.state import Settings
    from app.model.view3d import View3DSettings
    from geometry.cache import default_cache_dir
    from geometry.dynamics import DynamicsSettings, default_dynamics_cache

    from app.model.state import home_cover

    run, _, net = load_checkpoint_network(args)
    sl, window, _ = resolve_slice(args, net, run)
    if args.domain is None and sl.dim == 2:  # what the window shows of its home view at any size: the cover
        window = home_cover(window, window)
    budget = args.max_regions or (Settings().max_regions if sl.dim == 2 else View3DSettings().max_cells)
    bundle = bundle_from_run(run, args.path)
    cache_folder = Path(args.cache_dir) / "results" if args.cache_dir else default_cache_dir() / "results"
    dyn_folder = Path(args.cache_dir) / "dynamics" if args.cache_dir else default_dynamics_cache()
    plan = plan_precompute(bundle, sl, window, budget, cache_folder, DynamicsSettings() if args.dynamics else None, dyn_folder)
    todo = len(plan.tessellations) + len(plan.dynamics)
    print(
        f"precompute {run.name}: {plan.checkpoints} checkpoints, {sl.description or 'slice'}, window {[round(w, 4) for w in window]}; "
        f"{len(plan.tessellations)} tessellation(s)" + (f" and {len(plan.dynamics)} dynamics row(s)" if args.dynamics else "") + " to compute"
    )
    if not todo:
        print("nothing to compute: every checkpoint is in the cache already")
        return 0
    bar = tqdm(total=todo, unit="task", file=sys.stderr, disable=None)

    def progress(fraction, message):
        bar.n = round(fraction * todo)
        bar.set_postfix_str(message)
        bar.refresh()

    def started(outcome):
        print(
            f"running on {args.scheduler or 'a local Dask cluster'} with {outcome.workers} worker(s)"
            + (f"; dashboard: {outcome.dashboard}" if outcome.dashboard else ""),
            file=sys.stderr,
        )

    try:
        tess, dyn = run_precompute(plan, args.scheduler, args.workers, progress, on_start=started)
    finally:
        bar.close()
    failed = dict(tess.failed) | (dyn.failed if dyn else {})
    print(
        f"done in {tess.seconds + (dyn.seconds if dyn else 0):.1f} s: {tess.computed} tessellation(s)"
        + (f", {dyn.computed} dynamics row(s)" if dyn else "")
        + f" into {cache_folder.parent}"
    )
    for why in list(failed.values())[:5]:
        print(f"failed: {why}", file=sys.stderr)
    return 2 if failed else 0
