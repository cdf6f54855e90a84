"""Precompute a run: the exact tessellation of a slice window at every checkpoint (and, optionally, the
training-dynamics numbers of every checkpoint) as Dask tasks, written into the caches the window reads,
so scrubbing epochs afterwards is a cache hit.

Each task opens the run itself (workers are separate processes), tessellates one checkpoint with the
window's own function (:func:`app.jobs.tessellate_all`, so the cache key is the window's) and stores
it in the on-disk :class:`geometry.cache.ResultCache`; a dynamics task computes one checkpoint with
:func:`geometry.dynamics.checkpoint_dynamics` and its row lands in the dynamics cache, keyed as
:func:`geometry.dynamics.run_dynamics` keys it. Checkpoints already cached are not submitted.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from geometry.cache import ResultCache
from geometry.slices import Slice

from .bundle import Cancel, Progress, RunBundle
from .tessellate import tessellate_all, tessellation_key


@dataclass(frozen=True)
class PrecomputePlan:
    """What a precompute will do: ``tessellations`` and ``dynamics`` (key -> task payload) not cached yet,
    out of ``checkpoints``; the caches they go to."""

    tessellations: dict
    dynamics: dict
    checkpoints: int
    cache_folder: str
    dynamics_folder: str | None


def _run_reference(bundle: RunBundle) -> dict:
    run = bundle.run
    if getattr(run, "model", None) is not None:
        from geometry.errors import SplineAtlasError

        raise SplineAtlasError("precompute opens the run in worker processes; a --model class run is precomputed in the window only (Tessellate every epoch).")
    return {"path": str(run.source), "trust_code": bool(run.trust_code), "level": float(run.level)}


def _open(ref: dict) -> RunBundle:
    from geometry.networks.runs import open_run, using_level

    from .bundle import bundle_from_run

    with using_level(ref["level"] if ref["level"] else None):
        return bundle_from_run(open_run(ref["path"], trust_code=ref["trust_code"]), ref["path"])


def tessellation_task(payload: dict) -> dict:
    """Worker: tessellate one checkpoint into the on-disk cache; returns its epoch and region count."""
    bundle = _open(payload["run"])
    cache = ResultCache(payload["cache"], max_bytes=64 * 2**20)
    i = int(payload["index"])
    result = tessellate_all(bundle, i, Slice.from_json(payload["slice"]), payload["window"], int(payload["max_regions"]), cache)
    return {"epoch": bundle.epochs[i], "regions": result[-1].num_regions}


def dynamics_task(payload: dict) -> dict:
    """Worker: one checkpoint's training-dynamics numbers, as the dynamics cache stores them."""
    from geometry.dynamics import DynamicsSettings, _points, checkpoint_dynamics

    bundle = _open(payload["run"])
    settings = DynamicsSettings(**payload["settings"])
    i = int(payload["index"])
    return asdict(checkpoint_dynamics(bundle.network(i), bundle.epochs[i], _points(bundle.dataset, settings), settings))


def plan_precompute(
    bundle: RunBundle,
    slice_: Slice | None,
    window,
    max_regions: int,
    cache_folder: str | Path,
    dynamics_settings=None,
    dynamics_folder: str | Path | None = None,
    indices: list[int] | None = None,
) -> PrecomputePlan:
    """The tasks still to do for each checkpoint of ``bundle`` (``indices``, default all): its tessellation
    of ``window`` (unless in the cache at ``cache_folder``; ``slice_`` None: none) and, with
    ``dynamics_settings``, its dynamics row (unless cached)."""
    ref = _run_reference(bundle)
    cache = ResultCache(cache_folder)
    which = list(range(len(bundle.run))) if indices is None else [i % len(bundle.run) for i in indices]
    tess = {}
    for i in which if slice_ is not None else []:
        key = tessellation_key(bundle, i, slice_, window, max_regions)
        if key not in cache:
            tess[key] = {
                "run": ref,
                "index": i,
                "slice": slice_.to_json(),
                "window": [float(w) for w in window],
                "max_regions": int(max_regions),
                "cache": str(cache_folder),
            }
    dyn = {}
    if dynamics_settings is not None:
        from geometry.dynamics import _key, default_dynamics_cache

        folder = Path(dynamics_folder) if dynamics_folder is not None else default_dynamics_cache()
        ds = bundle.dataset
        if ds is None:
            from geometry.errors import DatasetError

            raise DatasetError(f"run {bundle.name!r} names no dataset; its training dynamics need the data points.")
        for i in which:
            key = _key(bundle.checkpoint_hash(i), getattr(ds, "reference", None) or ds.name, dynamics_settings, None)
            if not (folder / f"{key}.json").exists():
                dyn[key] = {"run": ref, "index": i, "settings": asdict(dynamics_settings)}
        dynamics_folder = str(folder)
    return PrecomputePlan(tess, dyn, len(which), str(cache_folder), None if dynamics_folder is None else str(dynamics_folder))


def run_precompute(plan: PrecomputePlan, scheduler=None, workers: int | None = None, progress: Progress = None, cancel: Cancel = None, on_start=None):
    """Run a plan's tasks on Dask (:func:`experiments.cluster.run_tasks`); ``progress(fraction, message)``
    as the window's workers report it. Returns the two outcomes (tessellations, dynamics)."""
    from experiments.cluster import run_tasks
    from experiments.store import ResultStore

    total = len(plan.tessellations) + len(plan.dynamics)
    done_before = [0]

    def tick(done, n, key, what):
        if progress is not None and total:
            progress((done_before[0] + done) / total, f"{what} {done}/{n}")

    journal = Path(tempfile.mkdtemp(prefix=".precompute-", dir=plan.cache_folder if Path(plan.cache_folder).exists() else None))
    try:  # the tessellations' own results are in the cache; the task rows only say they finished
        tess = run_tasks(
            tessellation_task,
            plan.tessellations,
            ResultStore(journal),
            scheduler,
            workers,
            lambda d, n, k: tick(d, n, k, "tessellated"),
            cancel,
            on_start,
        )
    finally:
        shutil.rmtree(journal, ignore_errors=True)
    done_before[0] = len(plan.tessellations)
    dyn = None
    if plan.dynamics:
        dyn = run_tasks(dynamics_task, plan.dynamics, ResultStore(plan.dynamics_folder), scheduler, workers, lambda d, n, k: tick(d, n, k, "dynamics"), cancel)
    return tess, dyn
