"""An opened run and the facts every face shows about it (the window, the CLI twins, exports).

``open_run_bundle`` is the one way a run is opened for viewing: the window's File > Open, every CLI
command that draws or inspects a slice, and the export dialog all call it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from geometry.networks.datasets import Dataset
from geometry.errors import CancelledError, SplineAtlasError
from geometry.networks.runs import open_run

Progress = Callable[[float, str], None] | None
Cancel = Callable[[], bool] | None

_RUN_LOCK = threading.RLock()  # Run.network/checkpoint_hash keep small caches that are not thread-safe


def check_cancel(cancel: Cancel, what: str) -> None:
    """Raise CancelledError when ``cancel()`` says so (between engine calls of a job)."""
    if cancel is not None and cancel():
        raise CancelledError(f"{what} was cancelled.")


@dataclass(frozen=True, eq=False)
class RunBundle:
    """An opened run plus the facts the window shows without touching the engine again.

    run: geometry.networks.runs.Run; dataset: Dataset | None; input_dim D; depth L (number of nonlinearities);
    num_classes C; class_names (C,); image_shape: e.g. (1, 8, 8) when inputs are images, else None.
    piecewise_affine: whether exact tessellation applies.
    """

    path: str
    run: object
    dataset: Dataset | None
    input_dim: int
    depth: int
    num_classes: int
    class_names: tuple[str, ...]
    image_shape: tuple[int, ...] | None
    layer_names: tuple[str, ...]
    piecewise_affine: bool

    @property
    def name(self) -> str:
        return self.run.name

    @property
    def boundary_name(self) -> str:
        """'decision boundary', or for a regression run 'level set f = L': what every view and export calls it."""
        return self.run.boundary_name

    @property
    def preprocessing(self):
        """The dataset's Preprocessing (images are shown de-normalised), or None."""
        return self.dataset.preprocessing if self.dataset is not None else None

    @property
    def is_regression(self) -> bool:
        return self.run.task == "regress"

    @property
    def epochs(self) -> list[int]:
        return self.run.epochs

    def network(self, i: int):
        """Checkpoint i as a Network (thread-safe: workers share the run's small LRU of loaded checkpoints)."""
        with _RUN_LOCK:
            return self.run.network(i)

    def checkpoint_hash(self, i: int) -> str:
        with _RUN_LOCK:
            return self.run.checkpoint_hash(i)

    def locked_run(self) -> "_LockedRun":
        """The run behind a lock, for engine functions that take a whole run (e.g. trace_over_run)."""
        return _LockedRun(self.run)

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        """(N, D) float64 training inputs and (N,) labels (empty when the run has no dataset). A regression
        run's points are labelled by the side of the level set their target lies on (0: f < L, 1: f > L),
        the colours its tiles have."""
        if self.dataset is None:
            return np.zeros((0, self.input_dim)), np.zeros(0, dtype=np.int64)
        y = self.dataset.y_train
        if self.run.task == "generate":  # a generator's codes have outputs, not classes: one colour
            return self.dataset.X_train.astype(np.float64), np.zeros(len(y), dtype=np.int64)
        if self.is_regression:
            y = (y.reshape(len(y), -1)[:, 0] > self.run.level).astype(np.int64)
        return self.dataset.X_train.astype(np.float64), y


class _LockedRun:
    """Proxy of a Run whose checkpoint loading is serialised with the app's other workers."""

    def __init__(self, run):
        self._run = run

    def __len__(self) -> int:
        return len(self._run)

    def network(self, i: int):
        with _RUN_LOCK:
            return self._run.network(i)

    def checkpoint_hash(self, i: int) -> str:
        with _RUN_LOCK:
            return self._run.checkpoint_hash(i)

    def __getattr__(self, name):
        return getattr(self._run, name)


def open_run_bundle(path: str | Path, progress: Progress = None, cancel: Cancel = None, trust_code: bool = False) -> RunBundle:
    """Open a run, checkpoint or run folder, load its last network and dataset. Raises SplineAtlasError.
    ``trust_code``: the user explicitly trusts this file to run code (full pickles, TorchScript)."""
    if progress:
        progress(0.1, f"reading {Path(path).name}")
    run = open_run(path, trust_code=trust_code)
    if progress:
        progress(0.5, "loading the last checkpoint")
    return bundle_from_run(run, path)


def bundle_from_run(run, path: str | Path) -> RunBundle:
    """The facts of an already opened run (for CLI commands that open the run themselves)."""
    if len(run) == 0:
        raise SplineAtlasError(f"{path} holds no checkpoints.")
    net = run.network(len(run) - 1)
    ds = run.dataset  # a broken dataset is refused in one line, as in the CLI
    img = tuple(ds.image_shape) if ds is not None and ds.image_shape else (tuple(net.input_shape) if len(net.input_shape) == 3 else None)
    names = tuple(f"{i + 1}: {li.kind} ({li.width})" for i, li in enumerate(net.layer_infos))
    return RunBundle(
        str(path), run, ds, net.input_dim, net.depth, net.num_classes if net.num_classes > 1 else 2, tuple(run.class_names), img, names, net.is_piecewise_affine
    )
