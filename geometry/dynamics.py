"""Training dynamics: geometric curves over the checkpoints of a run ("Local complexity
and training dynamics").

Per checkpoint (:func:`checkpoint_dynamics`), on fixed seeded point sets shared by all epochs:
  * train / test accuracy;
  * mean local complexity per layer (:mod:`geometry.local_complexity`) at train, test and random points
    (uniform in the data's bounding box);
  * exact region density (full depth): mean number of linear regions meeting a square of half-width h
    of a 2D slice centred on data points, on points of the exact decision boundary, and on random points
    of the slice window — "tiles migrating from the data to the decision boundary" (delayed robustness,
    Humayun et al. 2024) shows as the boundary/data ratio growing long after train accuracy saturates;
    plus the slice's total region count. 2D-input nets use the input plane over the data box; higher-D
    nets use ``slices`` planes through three training points each for the boundary and random squares,
    and for the data squares ``data_squares`` training points x, each in its own plane through x and two
    other random training points (a SplineCam plane), so the data density is a mean over many points;
  * mean Tr G(x) over test points (Grementieri & Fioresi Fig. 2; :mod:`geometry.foliation.local_data_matrix`);
  * mean distance of training points to the nearest region boundary of each layer (power-diagram
    paper Fig. 5; :func:`geometry.power_diagram.boundary_distances`).
Each checkpoint's numbers are cached on disk as a small JSON file keyed by (checkpoint content hash,
dataset reference, settings), so re-running or re-opening the Training tab is instant.
:func:`run_dynamics` computes a whole run with progress/cancel; :class:`DynamicsCurves` writes CSV.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from geometry.errors import CancelledError, DatasetError, SplineAtlasError
from geometry.local_complexity import local_complexity, sample_boundary_points, square_region_counts
from geometry.slices import Slice
from geometry.networks.training import accuracy
from geometry.safe_io import atomic_open

Progress = Callable[[float, str], None] | None
Cancel = Callable[[], bool] | None

DYNAMICS_VERSION = 2  # 2: per-point data squares for inputs above 2D


@dataclass(frozen=True)
class DynamicsSettings:
    """What is measured and how (all seeded: the same points at every epoch).

    max_points: train/test points used (seeded subsets); random_points: random points for LC;
    lc_radius: orthoplex radius r (None: 0.05 x the data's RMS distance to its mean); lc_dims: frame
    directions P; square_half_width: h of the exact-count squares (None: = the LC radius);
    boundary_points: squares on the decision boundary; slices: planes used when the input is not 2D;
    data_squares: training points with their own square when the input is not 2D;
    max_regions: tessellation budget per slice; with_trace_g / with_boundary_distance: optional columns.
    """

    max_points: int = 256
    random_points: int = 256
    lc_radius: float | None = None
    lc_dims: int = 16
    square_half_width: float | None = None
    boundary_points: int = 256
    slices: int = 2
    data_squares: int = 32
    max_regions: int = 400_000
    with_trace_g: bool = True
    with_boundary_distance: bool = True
    seed: int = 0


@dataclass(frozen=True)
class CheckpointDynamics:
    """Numbers of one checkpoint (L = the network's number of nonlinearities; NaN = not measurable).

    lc_train, lc_test, lc_random: (L,) mean LC per layer; boundary_distance: (L,) mean distance of the
    train points to layer l's nearest region boundary; density_*: mean exact full-depth regions per
    square (see the module docstring); regions_slice: full-depth regions of the slice window(s).
    """

    epoch: int
    train_accuracy: float
    test_accuracy: float
    lc_train: tuple[float, ...]
    lc_test: tuple[float, ...]
    lc_random: tuple[float, ...]
    density_data: float
    density_boundary: float
    density_random: float
    regions_slice: int
    mean_trace_g: float
    boundary_distance: tuple[float, ...]
    lc_radius: float
    square_half_width: float


@dataclass(frozen=True)
class DynamicsCurves:
    """A run's curves: one :class:`CheckpointDynamics` per checkpoint, plus arrays by column."""

    run_name: str
    points: tuple[CheckpointDynamics, ...]
    settings: DynamicsSettings = field(default_factory=DynamicsSettings)

    @property
    def epochs(self) -> np.ndarray:
        return np.array([p.epoch for p in self.points], dtype=np.int64)

    @property
    def depth(self) -> int:
        return len(self.points[0].lc_train) if self.points else 0

    def column(self, name: str) -> np.ndarray:
        """(E,) float64 scalar column, or (E, L) for the per-layer ones (lc_*, boundary_distance);
        ``lc_train_total`` etc. sum the layers."""
        if name.endswith("_total"):
            return self.column(name[: -len("_total")]).sum(axis=1)
        return np.array([getattr(p, name) for p in self.points], dtype=np.float64)

    def table(self) -> tuple[list[str], np.ndarray]:
        """(header, rows (E, K)) of every column, per-layer ones expanded as ``lc_train_l1``..."""
        L = self.depth
        header = ["epoch", "train_accuracy", "test_accuracy"]
        cols = [self.epochs.astype(np.float64), self.column("train_accuracy"), self.column("test_accuracy")]
        for name in ("lc_train", "lc_test", "lc_random"):
            m = self.column(name).reshape(len(self.points), L)
            header += [f"{name}_total"] + [f"{name}_l{l + 1}" for l in range(L)]
            cols += [m.sum(axis=1)] + [m[:, l] for l in range(L)]
        for name in ("density_data", "density_boundary", "density_random", "regions_slice", "mean_trace_g"):
            header.append(name)
            cols.append(self.column(name))
        bd = self.column("boundary_distance").reshape(len(self.points), L)
        header += [f"boundary_distance_l{l + 1}" for l in range(L)]
        cols += [bd[:, l] for l in range(L)]
        return header, np.stack(cols, axis=1) if cols else np.zeros((0, 0))

    def to_csv(self, path: str | Path) -> Path:
        """Write the table as CSV (written to a temporary file, then renamed)."""
        header, rows = self.table()
        path = Path(path)
        with atomic_open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            for r in rows:
                w.writerow(
                    [int(v) if h in ("epoch", "regions_slice") and np.isfinite(v) else (f"{v:.6g}" if np.isfinite(v) else "nan") for h, v in zip(header, r)]
                )
        return path


# -- fixed point sets --------------------------------------------------------------------------
@dataclass(frozen=True)
class _Points:
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    X_random: np.ndarray
    radius: float
    half_width: float
    slices: tuple[tuple[Slice, np.ndarray, np.ndarray], ...]  # (slice, box domain (4,), data centres (n, 2))
    data_planes: tuple[tuple[Slice, np.ndarray], ...] = ()  # D > 2: (plane through x_k, its centre u_k (2,))
    regress: bool = False  # float targets: no accuracy (its MSE is the run's recorded metric)


def _subset(X, y, n, rng):
    if len(X) <= n:
        return np.asarray(X, dtype=np.float64), np.asarray(y)
    idx = np.sort(rng.choice(len(X), n, replace=False))
    return np.asarray(X, dtype=np.float64)[idx], np.asarray(y)[idx]


def default_radius(X) -> float:
    """The default LC frame radius and square half-width: 0.05 x the data's RMS distance to its mean."""
    X = np.asarray(X, dtype=np.float64)
    return 0.05 * float(np.sqrt(((X - X.mean(axis=0)) ** 2).sum(axis=1).mean()))


def _points(dataset, settings: DynamicsSettings) -> _Points:
    rng = np.random.default_rng(settings.seed)
    Xtr, ytr = _subset(dataset.X_train, dataset.y_train, settings.max_points, rng)
    Xte, yte = _subset(dataset.X_test, dataset.y_test, settings.max_points, rng) if len(dataset.X_test) else (Xtr, ytr)
    Xall = np.asarray(dataset.X_train, dtype=np.float64)
    lo, hi = Xall.min(axis=0), Xall.max(axis=0)
    Xr = lo + (hi - lo) * rng.random((settings.random_points, Xall.shape[1]))
    radius = settings.lc_radius if settings.lc_radius is not None else default_radius(Xall)
    h = settings.square_half_width if settings.square_half_width is not None else radius
    D = Xall.shape[1]
    slices, data_planes = [], []
    if D == 2:
        sl = Slice.input_plane(2)
        span = hi - lo
        box = np.array([lo[0] - 0.05 * span[0], hi[0] + 0.05 * span[0], lo[1] - 0.05 * span[1], hi[1] + 0.05 * span[1]])
        slices.append((sl, box, Xtr))
    else:
        ytr_all = np.asarray(dataset.y_train)
        for _ in range(max(1, settings.slices)):
            classes = rng.choice(np.unique(ytr_all), size=3, replace=len(np.unique(ytr_all)) < 3)
            idx = [int(rng.choice(np.flatnonzero(ytr_all == c))) for c in classes]
            P = Xall[idx]
            sl = Slice.through_points(P, description=f"plane through training points {idx}")
            u = sl.project(P)
            box = _box(u, 0.3)
            slices.append((sl, box, np.zeros((0, 2))))
        for k in range(min(settings.data_squares, len(Xtr))):
            for _ in range(10):  # two partners off the point (duplicates make no plane)
                pair = Xall[rng.choice(len(Xall), 2, replace=False)]
                try:
                    sl = Slice.through_points(np.concatenate([Xtr[k : k + 1], pair]))
                except SplineAtlasError:
                    continue
                data_planes.append((sl, sl.project(Xtr[k : k + 1])[0]))
                break
    return _Points(Xtr, ytr, Xte, yte, Xr, float(radius), float(h), tuple(slices), tuple(data_planes), getattr(dataset, "task", "classify") == "regress")


def _box(u: np.ndarray, margin: float) -> np.ndarray:
    lo, hi = u.min(axis=0), u.max(axis=0)
    span = np.maximum(hi - lo, 1e-6)
    return np.array([lo[0] - margin * span[0], hi[0] + margin * span[0], lo[1] - margin * span[1], hi[1] + margin * span[1]])


def checkpoint_dynamics(
    net, epoch: int, pts: _Points, settings: DynamicsSettings, device=None, progress: Progress = None, cancel: Cancel = None
) -> CheckpointDynamics:
    """All numbers of one checkpoint (``pts`` from the run's dataset; see :func:`run_dynamics`)."""
    from geometry.tessellation import tessellate

    def tick(f, msg):
        if cancel is not None and cancel():
            raise CancelledError("training-dynamics computation was cancelled.")
        if progress is not None:
            progress(f, msg)

    tick(0.0, "accuracy")
    L = net.depth
    if pts.regress:
        acc_tr = acc_te = float("nan")
    else:
        acc_tr, acc_te = accuracy(net, pts.X_train, pts.y_train), accuracy(net, pts.X_test, pts.y_test)
    lcs = []
    for k, X in enumerate((pts.X_train, pts.X_test, pts.X_random)):
        tick(0.05 + 0.05 * k, "local complexity")
        lcs.append(tuple(float(v) for v in local_complexity(net, X, pts.radius, settings.lc_dims, settings.seed, device=device, cancel=cancel).mean_per_layer))
    dens = {"data": [], "boundary": [], "random": []}
    regions = 0
    rng = np.random.default_rng(settings.seed + 1)
    h = pts.half_width
    for j, (sl, box, centres) in enumerate(pts.slices):
        tick(0.2 + 0.5 * j / len(pts.slices), f"exact tessellation of slice {j + 1}/{len(pts.slices)}")
        t = tessellate(net, sl, box, device=device, max_regions=settings.max_regions, cancel=cancel)
        regions += t.num_regions
        inner = box + np.array([h, -h, h, -h])  # keep squares inside the tessellated window
        bpts = sample_boundary_points(t.boundary_segments, settings.boundary_points, settings.seed + j)
        bpts = bpts[(bpts[:, 0] > inner[0]) & (bpts[:, 0] < inner[1]) & (bpts[:, 1] > inner[2]) & (bpts[:, 1] < inner[3])]
        rpts = np.stack([rng.uniform(inner[0], inner[1], settings.random_points), rng.uniform(inner[2], inner[3], settings.random_points)], axis=1)
        for name, C in (("data", centres), ("boundary", bpts), ("random", rpts)):
            if len(C):
                dens[name].append(square_region_counts(net, sl, C, h, tessellations=[t]).counts[-1])
    for j, (sl, u) in enumerate(pts.data_planes):  # D > 2: each data point's own square
        tick(0.7 + 0.05 * j / len(pts.data_planes), f"exact regions around data point {j + 1}/{len(pts.data_planes)}")
        square = np.array([u[0] - h, u[0] + h, u[1] - h, u[1] + h])
        dens["data"].append(np.array([tessellate(net, sl, square, device=device, max_regions=settings.max_regions, cancel=cancel).num_regions]))
    dmean = {k: float(np.concatenate(v).mean()) if v and sum(len(a) for a in v) else float("nan") for k, v in dens.items()}
    trg = float("nan")
    if settings.with_trace_g:
        tick(0.75, "trace of the local data matrix")
        from geometry.foliation.local_data_matrix import local_data_matrix

        trg = float(local_data_matrix(net, pts.X_test, device=device, cancel=cancel).trace.mean())
    bd = (float("nan"),) * L
    if settings.with_boundary_distance:
        tick(0.9, "distance to region boundaries")
        from geometry.power_diagram import boundary_distances

        d = boundary_distances(net, pts.X_train, device=device, cancel=cancel)
        bd = tuple(float(np.mean(r[np.isfinite(r)])) if np.isfinite(r).any() else float("nan") for r in d)
    tick(1.0, "done")
    return CheckpointDynamics(
        int(epoch), acc_tr, acc_te, lcs[0], lcs[1], lcs[2], dmean["data"], dmean["boundary"], dmean["random"], int(regions), trg, bd, pts.radius, h
    )


def default_dynamics_cache() -> Path:
    from geometry.cache import default_cache_dir

    return default_cache_dir() / "dynamics"


def _key(checkpoint_hash: str, dataset_ref, settings: DynamicsSettings, device) -> str:
    """The cache key of one checkpoint's numbers: its checkpoint, data and settings (not the device: the
    numbers are exact on any), shared by the window, the CLI and a precompute."""
    blob = json.dumps({"v": DYNAMICS_VERSION, "ckpt": checkpoint_hash, "data": dataset_ref, "settings": asdict(settings)}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _load(path: Path) -> CheckpointDynamics | None:
    try:
        d = json.loads(path.read_text())
        for k in ("lc_train", "lc_test", "lc_random", "boundary_distance"):
            d[k] = tuple(float(v) for v in d[k])
        return CheckpointDynamics(**d)
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _store(path: Path, value: CheckpointDynamics) -> None:
    with atomic_open(path, "w") as f:
        json.dump(asdict(value), f, allow_nan=True)


def run_dynamics(
    run,
    settings: DynamicsSettings | None = None,
    indices: list[int] | None = None,
    cache_dir: str | Path | None = "default",
    device=None,
    dataset=None,
    progress: Progress = None,
    cancel: Cancel = None,
    on_checkpoint: Callable[[int, CheckpointDynamics], None] | None = None,
) -> DynamicsCurves:
    """Curves over the checkpoints of ``run`` (geometry.networks.runs.Run), one cached entry per checkpoint.

    indices: checkpoint indices (default all); cache_dir: folder of per-checkpoint JSON files
    ("default": :func:`default_dynamics_cache`; None: no disk cache); dataset: overrides the run's;
    on_checkpoint(i, result): called as each checkpoint finishes (the GUI plots curves as they grow).
    """
    settings = settings or DynamicsSettings()
    ds = dataset if dataset is not None else run.dataset
    if ds is None:
        raise DatasetError(f"run {run.name!r} names no dataset; training dynamics need its data points.")
    if len(run) == 0:
        raise SplineAtlasError("the run has no checkpoints.")
    folder = default_dynamics_cache() if cache_dir == "default" else (None if cache_dir is None else Path(cache_dir))
    idx = list(range(len(run))) if indices is None else [i % len(run) for i in indices]
    pts = None
    out: list[CheckpointDynamics] = []
    for n, i in enumerate(idx):
        if cancel is not None and cancel():
            raise CancelledError("training-dynamics computation was cancelled.")
        key = _key(run.checkpoint_hash(i), getattr(ds, "reference", None) or ds.name, settings, device)
        path = None if folder is None else folder / f"{key}.json"
        res = _load(path) if path is not None and path.exists() else None
        if res is None:
            if pts is None:
                pts = _points(ds, settings)
            sub = None if progress is None else (lambda f, m, n=n, e=run.epochs[i]: progress((n + f) / len(idx), f"epoch {e}: {m}"))
            res = checkpoint_dynamics(run.network(i), run.epochs[i], pts, settings, device, sub, cancel)
            if path is not None:
                _store(path, res)
        out.append(res)
        if on_checkpoint is not None:
            on_checkpoint(i, res)
        if progress is not None:
            progress((n + 1) / len(idx), f"checkpoint {n + 1}/{len(idx)} (epoch {run.epochs[i]})")
    return DynamicsCurves(run.name, tuple(out), settings)


__all__ = ["CheckpointDynamics", "DynamicsCurves", "DynamicsSettings", "checkpoint_dynamics", "default_dynamics_cache", "run_dynamics"]
