"""``splineatlas sweep``: train a grid of (architecture × seed × option values) and measure every run,
as Dask tasks; writes the tidy table, the summary per cell and box plots.

Example (Liu et al.'s Table 1 set-up, fewer seeds)::

    splineatlas sweep --dataset paraboloid --samples 10000 --arch 2-5-5-1,2-5-5-5-5-1 --seeds 0-9 \\
        --epochs 300 --early-stopping 20 --val-fraction 0.2 --measures regions_box,regions_plane --out liu
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from app.cli.foundation_cmds import add_protocol_arguments, protocol_from_args
from app.cli.common import add_cluster_arguments
from geometry.errors import SplineAtlasError
from geometry.safe_io import write_text


def register(sub: argparse._SubParsersAction) -> None:
    from experiments.measures import MEASURES

    p = sub.add_parser("sweep", help="train and measure a grid of architectures x seeds x options (Dask), with summary tables and box plots")
    p.add_argument("--dataset", required=True, help="built-in dataset (moons, paraboloid, ...) or a dataset file, as for train")
    p.add_argument("--task", choices=["classify", "regress"], default=None, help="for a dataset file: classify (labels) or regress (float targets)")
    p.add_argument("--samples", type=int, default=1000, help="size of a built-in 2D toy dataset (default 1000)")
    p.add_argument("--noise", type=float, default=None, help="noise of a built-in 2D toy dataset")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the dataset and its split, the same for every run (default 0)")
    p.add_argument("--arch", required=True, help="comma-separated architectures, e.g. 2-5-5-1,2-10-10-1")
    p.add_argument("--seeds", default="0-4", help="initialisation seeds: a range 0-49 or a list 0,3,7 (default 0-4)")
    p.add_argument("--epochs", type=int, default=100, help="training epochs (0: measure at initialisation; with --early-stopping: the most)")
    p.add_argument(
        "--set", action="append", default=[], metavar="NAME=V1,V2", help="a grid axis over a training option (e.g. lr=0.01,0.001 or epochs=0,100); repeatable"
    )
    add_protocol_arguments(p)
    p.add_argument("--activation", default="relu", choices=["relu", "leaky_relu", "abs"])
    p.add_argument("--batchnorm", action="store_true", help="batch norm after each hidden linear layer")
    p.add_argument("--measures", default="regions_box", help=f"comma-separated: {', '.join(MEASURES)} (scores always; default regions_box)")
    p.add_argument("--box", type=float, default=1.0, help="half-width of the square/cube the region counts use (default 1: [-1, 1]^2)")
    p.add_argument("--points", type=int, default=256, help="data points for local complexity, densities and Chebyshev radii (default 256)")
    p.add_argument("--max-regions", type=int, default=1_000_000, help="region budget per tessellation (default 1M)")
    p.add_argument("--out", required=True, help="output folder: runs/, results/, table.*, summary.*, boxplots.png")
    p.add_argument("--results", default=None, metavar="URL", help="where each run's result is kept: a folder or fsspec URL (default OUT/results)")
    add_cluster_arguments(p)
    p.add_argument("--dpi", type=int, default=150, help="box-plot dpi (default 150)")
    p.set_defaults(func=cmd_sweep)


def _dataset_reference(args) -> dict:
    """What every task loads: a built-in dataset's reference or a file with its fingerprint (checked now,
    once, so a bad dataset is one line here and not an error in every worker)."""
    from app.cli.foundation_cmds import _dataset
    from experiments.grid import file_fingerprint
    from geometry.networks.datasets import BUILTIN

    ds = _dataset(args.dataset, args.samples, args.noise, args.data_seed, task=args.task)
    if args.dataset in BUILTIN:
        return ds.reference
    return {"file": str(Path(args.dataset).resolve()), "sha256": file_fingerprint(args.dataset), "task": ds.task, "seed": args.data_seed}


def build_grid(args):
    from experiments.grid import SweepGrid, parse_seeds, parse_setting
    from experiments.measures import check_measures

    archs = tuple(a.strip() for a in args.arch.split(",") if a.strip())
    if not archs:
        raise SplineAtlasError("--arch names no architecture.")
    if not 1e-9 <= args.box <= 1e9:
        raise SplineAtlasError(f"--box {args.box}: give a half-width between 1e-9 and 1e9.")
    if not 0 <= args.epochs <= 1_000_000:
        raise SplineAtlasError(f"--epochs {args.epochs} must be between 0 and 1,000,000.")
    axes = tuple(parse_setting(s) for s in args.set)
    if len({a for a, _ in axes}) != len(axes):
        raise SplineAtlasError("--set names the same option twice; give all its values in one --set.")
    protocol = protocol_from_args(args).record()
    settings = {"box": args.box, "points": args.points, "max_regions": args.max_regions}
    return SweepGrid(
        dataset=_dataset_reference(args),
        archs=archs,
        seeds=parse_seeds(args.seeds),
        epochs=args.epochs,
        protocol=protocol,
        axes=axes,
        measures=check_measures(args.measures.split(",")),
        settings=settings,
        activation=args.activation,
        batchnorm=args.batchnorm,
    )


def cmd_sweep(args) -> int:
    from tqdm import tqdm

    from experiments.cluster import SERIAL, run_tasks
    from experiments.store import ResultStore
    from experiments.summary import box_plots, format_summary, write_tables
    from experiments.sweep import RUNS_KEY, sweep_task

    grid = build_grid(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = ResultStore(args.results or out / "results")
    tasks = grid.tasks()
    payloads = {k: {**p, RUNS_KEY: str((out / "runs").resolve())} for k, p in tasks.items()}
    cells = grid.cells()
    plan = {"command": sys.argv[1:], "dataset": grid.dataset, "cells": cells, "seeds": list(grid.seeds), "epochs": grid.epochs}
    plan |= {"protocol": grid.protocol, "measures": list(grid.measures), "settings": grid.settings}
    write_text(out / "sweep.json", json.dumps(plan, indent=1))
    done_before = sum(store.has(k) for k in tasks)
    print(f"sweep: {len(tasks)} runs ({len(cells)} cells x {len(grid.seeds)} seeds); {done_before} already in {store.location}")
    bar = tqdm(total=len(tasks) - done_before, unit="run", file=sys.stderr, disable=None if done_before < len(tasks) else True)

    def started(outcome):
        where = "this process" if args.scheduler == SERIAL else (args.scheduler or "a local Dask cluster")
        print(f"running on {where} with {outcome.workers} worker(s)" + (f"; dashboard: {outcome.dashboard}" if outcome.dashboard else ""), file=sys.stderr)

    def progress(done, total, key):
        bar.update(done - bar.n)

    try:
        outcome = run_tasks(sweep_task, payloads, store, scheduler=args.scheduler, workers=args.workers, progress=progress, on_start=started)
    finally:
        bar.close()
    if outcome.skipped == len(tasks):
        print("nothing to compute: every run of this grid is in the results already")
    else:
        print(f"computed {outcome.computed} run(s) in {outcome.seconds:.1f} s; {outcome.skipped} reused from {store.location}")
    rows = [store.read(k) for k in tasks]
    rows = [r for r in rows if r is not None]
    noted = [r for r in rows if r.get("notes")]
    if noted:
        print(f"note: {len(noted)} run(s) lack a measure (NaN in the table, reason in its 'notes' column), e.g. {noted[0]['notes']}", file=sys.stderr)
    for key, why in outcome.failed.items():
        print(f"failed: {tasks[key]['arch']} seed {tasks[key]['seed']}: {why}", file=sys.stderr)
    if rows:
        written = write_tables(out, rows, cells)
        data = grid.dataset.get("builtin") or Path(args.dataset).name
        box_plots(out / "boxplots.png", rows, cells, f"{out.name}: {len(rows)} runs, {len(cells)} cells, dataset {data}", args.dpi)
        print(format_summary(rows, cells))
        print(f"wrote {', '.join(p.name for p in written)}, boxplots.png/.svg in {out}")
    if outcome.failed:
        raise SplineAtlasError(f"{len(outcome.failed)} of {len(tasks)} runs failed (listed above); rerun the same command to retry only those.")
    return 0
