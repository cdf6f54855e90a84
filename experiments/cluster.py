"""Run independent tasks as Dask tasks: on an embedded ``LocalCluster`` (processes, one single-threaded
worker per free core) by default, on any Dask scheduler with ``scheduler="tcp://HOST:8786"``, or in
this process with ``scheduler="serial"`` (no Dask: the baseline the bench compares against).

Every task's result is written by the worker itself into the :class:`~experiments.store.ResultStore`
(atomically, under the task's key) before the task reports back, so a crash of the client, the
scheduler or a worker loses no finished work; tasks already in the store are not submitted again. A
worker that dies mid-task is replaced by its nanny and its tasks run elsewhere (Dask retries a task
up to ``distributed.scheduler.allowed-failures`` times, 3 by default).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

from geometry.errors import CancelledError, InputFileError, SplineAtlasError

from experiments.store import ResultStore

SERIAL = "serial"
Progress = Callable[[int, int, str], None] | None  # (finished, total, message)


@dataclass
class Outcome:
    """What a run of tasks did: ``computed`` now, ``skipped`` (already in the store), ``failed`` (key ->
    one-line reason; not stored, so the next run retries them), wall ``seconds``, the Dask dashboard."""

    total: int
    computed: int = 0
    skipped: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    dashboard: str | None = None
    workers: int = 0


def execute(fn: Callable[[dict], dict], key: str, payload: dict, store_location: str) -> tuple[str, str | None]:
    """Worker side of one task: ``fn(payload)``, its result stored under ``key``; returns (key, None), or
    (key, the reason) for a one-line SplineAtlasError (bad input: retrying elsewhere cannot help)."""
    import torch

    torch.set_num_threads(1)  # one task per core: a worker's own threads would fight its neighbours
    try:
        result = fn(payload)
    except SplineAtlasError as exc:
        return key, str(exc)
    ResultStore(store_location).write(key, result)
    return key, None


def _dashboard_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("bokeh") is not None


def _connect(scheduler, workers: int | None):
    """(client, cluster or None) for a scheduler address, an existing Client, or None (a LocalCluster)."""
    from dask.distributed import Client, LocalCluster

    if scheduler is not None and not isinstance(scheduler, str):
        return scheduler, None  # a Client the caller made (tests, notebooks)
    if scheduler:
        try:
            return Client(scheduler, timeout="10s"), None
        except (OSError, TimeoutError) as exc:
            raise InputFileError(
                f"--scheduler {scheduler}: no Dask scheduler answers there ({type(exc).__name__}); start one with `dask scheduler` (see README, 'Sweeps')."
            ) from None
    from geometry.networks.device import free_cores

    n = max(1, int(workers or free_cores()))
    cluster = LocalCluster(
        n_workers=n,
        threads_per_worker=1,
        processes=True,
        silence_logs=logging.ERROR,
        dashboard_address=":0" if _dashboard_available() else None,
    )
    return Client(cluster), cluster


def run_tasks(
    fn: Callable[[dict], dict],
    tasks: dict[str, dict],
    store: ResultStore,
    scheduler=None,
    workers: int | None = None,
    progress: Progress = None,
    cancel: Callable[[], bool] | None = None,
    on_start: Callable[[Outcome], None] | None = None,
) -> Outcome:
    """Run ``fn`` on every payload of ``tasks`` (key -> payload) whose key is not in ``store`` yet.

    ``fn`` must be importable by the workers (a module-level function). ``on_start(outcome)`` is called
    once the cluster is up (its dashboard link and worker count are set), before any task runs."""
    t0 = time.perf_counter()
    todo = {k: p for k, p in tasks.items() if not store.has(k)}
    out = Outcome(total=len(tasks), skipped=len(tasks) - len(todo))
    if not todo:
        return out
    done = 0

    def finished(key: str, error: str | None) -> None:
        nonlocal done
        done += 1
        if error is None:
            out.computed += 1
        else:
            out.failed[key] = error
        if progress is not None:
            progress(done, len(todo), key)

    if scheduler == SERIAL:
        out.workers = 1
        if on_start is not None:
            on_start(out)
        for key, payload in todo.items():
            if cancel is not None and cancel():
                raise CancelledError(f"cancelled after {done} of {len(todo)} tasks; finished ones are kept in {store.location}.")
            finished(*execute(fn, key, payload, store.location))
        out.seconds = time.perf_counter() - t0
        return out

    from dask.distributed import as_completed

    client, cluster = _connect(scheduler, workers)
    own_client = scheduler is None or isinstance(scheduler, str)
    try:
        out.dashboard = client.dashboard_link if _dashboard_available() else None
        out.workers = len(client.scheduler_info(n_workers=-1).get("workers", {}))
        if on_start is not None:
            on_start(out)
        futures = [client.submit(execute, fn, k, p, store.location, key=f"{fn.__name__}-{k}", pure=False) for k, p in todo.items()]
        by_future = dict(zip(futures, todo))
        for fut in as_completed(futures):
            if cancel is not None and cancel():
                client.cancel(futures)
                raise CancelledError(f"cancelled after {done} of {len(todo)} tasks; finished ones are kept in {store.location}.")
            if fut.status == "error":
                exc = fut.exception()
                finished(by_future[fut], f"{type(exc).__name__}: {exc}")
            else:
                finished(*fut.result())
    finally:
        if own_client:
            client.close()
        if cluster is not None:
            cluster.close()
    out.seconds = time.perf_counter() - t0
    return out
