"""The window's engine calls, Qt-free: open a run, choose slices, tessellate, inspect a point, trace paths.

Each function is a thin, testable wrapper over ``geometry`` that the window runs in a worker thread
(see :mod:`app.qt.workers`) with ``progress(fraction, message)`` and ``cancel() -> bool`` callables.
Results are small frozen dataclasses; nothing here draws. Heavy results are cached in a
:class:`geometry.cache.ResultCache` keyed by (checkpoint content hash, slice, window, settings).
"""
from __future__ import annotations

import dataclasses
import importlib
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from geometry.cache import ResultCache, cache_key
from geometry.datasets import Dataset
from geometry.errors import CancelledError, SplineAtlasError
from geometry.slices import Slice, box_domain

from .state import SliceChoice

Progress = Callable[[float, str], None] | None
Cancel = Callable[[], bool] | None

TESSELLATION_VERSION = 1  # bump when what is cached under a tessellation key changes
_RUN_LOCK = threading.RLock()  # Run.network/checkpoint_hash keep small caches that are not thread-safe


def engine_available(module: str, name: str) -> bool:
    """Whether ``geometry.<module>`` exists and defines ``name`` (engines land while the app is built)."""
    try:
        return hasattr(importlib.import_module(f"geometry.{module}"), name)
    except ImportError:
        return False


def _engine(module: str, name: str):
    return getattr(importlib.import_module(f"geometry.{module}"), name)


# -- runs ------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class RunBundle:
    """An opened run plus the facts the window shows without touching the engine again.

    run: geometry.runs.Run; dataset: Dataset | None; input_dim D; depth L (number of nonlinearities);
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
        """(N, D) float64 training inputs and (N,) labels (empty when the run has no dataset)."""
        if self.dataset is None:
            return np.zeros((0, self.input_dim)), np.zeros(0, dtype=np.int64)
        return self.dataset.X_train.astype(np.float64), self.dataset.y_train


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


def open_run_bundle(path: str | Path, progress: Progress = None, cancel: Cancel = None,
                    trust_code: bool = False) -> RunBundle:
    """Open a run, checkpoint or run folder, load its last network and dataset. Raises SplineAtlasError.
    ``trust_code``: the user explicitly trusts this file to run code (full pickles, TorchScript)."""
    from geometry.runs import open_run

    if progress:
        progress(0.1, f"reading {Path(path).name}")
    run = open_run(path, trust_code=trust_code)
    if len(run) == 0:
        raise SplineAtlasError(f"{path} holds no checkpoints.")
    if progress:
        progress(0.5, "loading the last checkpoint")
    net = run.network(len(run) - 1)
    ds = run.dataset          # a broken dataset is refused in one line, as in the CLI
    img = tuple(ds.image_shape) if ds is not None and ds.image_shape else (
        tuple(net.input_shape) if len(net.input_shape) == 3 else None)
    names = tuple(f"{i + 1}: {li.kind} ({li.width})" for i, li in enumerate(net.layer_infos))
    return RunBundle(str(path), run, ds, net.input_dim, net.depth, net.num_classes if net.num_classes > 1 else 2,
                     tuple(run.class_names), img, names, net.is_piecewise_affine)


# -- slices ----------------------------------------------------------------------------------------
def square_window(window, pad: float = 0.0) -> tuple[float, float, float, float]:
    """Grow the shorter side of (umin, umax, vmin, vmax) so both sides are equal (plus ``pad`` of the side)."""
    u0, u1, v0, v1 = (float(x) for x in window)
    cu, cv = (u0 + u1) / 2, (v0 + v1) / 2
    half = max(u1 - u0, v1 - v0, 1e-6) / 2 * (1 + pad)
    return (cu - half, cu + half, cv - half, cv + half)


def default_slice_choice(bundle: RunBundle) -> SliceChoice:
    """The input plane for 2D-input nets; else the plane through three training points of different classes."""
    if bundle.input_dim == 2:
        return SliceChoice("input")
    X, y = bundle.points()
    if len(X) >= 3:
        idx: list[int] = []
        for c in np.unique(y):
            idx.append(int(np.flatnonzero(y == c)[0]))
            if len(idx) == 3:
                break
        for i in range(len(X)):  # fewer than 3 classes: fill with other points
            if len(idx) == 3:
                break
            if i not in idx:
                idx.append(i)
        return SliceChoice("points", tuple(idx))
    return SliceChoice("pca" if len(X) else "random")


def make_slice(bundle: RunBundle, choice: SliceChoice, epoch_index: int = -1,
               progress: Progress = None, cancel: Cancel = None) -> tuple[Slice, tuple[float, float, float, float]]:
    """Build the slice for ``choice`` and its home window (a square around the defining points / data).

    kinds: "input" (2D-input nets), "points" (3 dataset indices), "deepfool" (index i: the plane through
    x_i spanned by its DeepFool direction r(x_i) and a random direction with ``choice.seed``), "pca".
    """
    X, y = bundle.points()
    kind = choice.kind
    if kind == "input":
        if bundle.input_dim != 2:
            raise SplineAtlasError(f"the input plane is a 2D slice only for 2-input networks; this one has "
                                   f"{bundle.input_dim} inputs. Pick three points, a DeepFool plane or PCA.")
        sl = Slice.input_plane(2)
        win = box_domain(sl, X if len(X) else None, margin=0.08)
    elif kind == "points":
        if len(choice.indices) != 3 or len(X) == 0:
            raise SplineAtlasError("a slice through points needs three dataset points; pick them in the data browser.")
        pts = X[list(choice.indices)]
        sl = Slice.through_points(pts, description=f"plane through points {', '.join(map(str, choice.indices))}")
        a = sl.anchors
        lo, hi = a.min(0), a.max(0)
        span = max(float((hi - lo).max()), 1e-3)
        win = (lo[0] - 0.35 * span, hi[0] + 0.35 * span, lo[1] - 0.35 * span, hi[1] + 0.35 * span)
    elif kind == "deepfool":
        if len(choice.indices) != 1 or len(X) == 0:
            raise SplineAtlasError("a DeepFool slice needs one dataset point; pick it in the data browser.")
        cross_sections = _engine("cross_sections", "cross_sections")
        cs = cross_sections(bundle.network(epoch_index), X[choice.indices[0]][None], seed=choice.seed,
                            extent=2.5, cancel=cancel)[0]
        sl = dataclasses.replace(cs.slice, description=f"point {choice.indices[0]} + DeepFool direction + random direction")
        win = tuple(float(v) for v in cs.domain)
    elif kind == "pca":
        if len(X) < 3:
            raise SplineAtlasError("a PCA slice needs the run's dataset; this run has none.")
        sl = Slice.pca(X)
        win = box_domain(sl, X, margin=0.05)
    else:
        raise SplineAtlasError(f"unknown slice kind {kind!r}.")
    return sl, square_window(win)


# -- tessellation ----------------------------------------------------------------------------------
def tessellation_key(bundle: RunBundle, epoch_index: int, slice_: Slice, window, max_regions: int) -> str:
    return cache_key("tessellation-2d", TESSELLATION_VERSION, bundle.checkpoint_hash(epoch_index),
                     slice_.origin, slice_.basis, np.asarray(window, dtype=np.float64), int(max_regions))


def tessellate_all(bundle: RunBundle, epoch_index: int, slice_: Slice, window, max_regions: int,
                   cache: ResultCache | None = None, progress: Progress = None, cancel: Cancel = None) -> list:
    """Exact tessellation of ``window`` of the slice at every depth 1..L (list of Tessellation2D), cached."""
    key = tessellation_key(bundle, epoch_index, slice_, window, max_regions)
    if cache is not None:
        hit = cache.get(key)
        if hit is not None:
            return hit
    tessellate_all_depths = _engine("tessellation", "tessellate_all_depths")
    net = bundle.network(epoch_index)
    u0, u1, v0, v1 = (float(w) for w in window)
    result = tessellate_all_depths(net, slice_, np.array([u0, u1, v0, v1]), max_regions=max_regions,
                                   progress=progress, cancel=cancel)
    result = list(result)
    if cache is not None:
        cache.put(key, result)
    return result


def tile_values(tess_by_depth: list, depth: int, mode: str) -> np.ndarray:
    """(R,) per-region values used for colouring at ``depth`` (1-based) in colour ``mode``.

    class: int class (-1 unknown); slope: ||A_w|| (NaN at partial depth); hash: uint32 hash of the
    activation codes of layers 1..depth; layer: 1-based layer that last split the region's ancestor (0: never).
    """
    t = tess_by_depth[depth - 1]
    if mode == "class":
        return np.asarray(t.classes)
    if mode == "slope":
        return np.asarray(t.slope_norm, dtype=np.float64)
    if mode == "hash":
        codes = [np.ascontiguousarray(c).view(np.uint8).reshape(t.num_regions, -1) for c in t.codes]
        joined = np.concatenate(codes, axis=1) if codes else np.zeros((t.num_regions, 1), np.uint8)
        return np.array([zlib.crc32(row.tobytes()) for row in joined], dtype=np.uint32)
    if mode == "layer":
        return layer_of_origin(tess_by_depth, depth)
    raise ValueError(mode)


def layer_of_origin(tess_by_depth: list, depth: int) -> np.ndarray:
    """(R,) int: for each region at ``depth``, the deepest layer (1-based) at which its ancestor was cut
    into several pieces (0 when the region is the whole domain, never cut)."""
    R = tess_by_depth[depth - 1].num_regions
    origin = np.zeros(R, dtype=np.int64)
    idx = np.arange(R)
    todo = np.ones(R, dtype=bool)
    for j in range(depth, 0, -1):
        t = tess_by_depth[j - 1]
        if j == 1:
            split = np.full(t.num_regions, t.num_regions > 1)
        else:
            counts = np.bincount(t.parent, minlength=tess_by_depth[j - 2].num_regions)
            split = counts[t.parent] > 1
        hit = todo & split[idx]
        origin[hit] = j
        todo &= ~hit
        if j > 1:
            idx = t.parent[idx]
    return origin


# -- forward-pass views ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ClassMap:
    """Predicted class on an n x n grid of the window (a quick preview while the exact tiles compute).

    classes: (n, n) int64 indexed [iu, iv]; confidence: (n, n) float64 max probability; window: (4,).
    """

    classes: np.ndarray
    confidence: np.ndarray
    window: tuple[float, float, float, float]
    epoch_index: int = -1          # the checkpoint it predicts for (the window compares it with the tiles')


def class_map(bundle: RunBundle, epoch_index: int, slice_: Slice, window, n: int = 160) -> ClassMap:
    u0, u1, v0, v1 = window
    uu, vv = np.meshgrid(np.linspace(u0, u1, n), np.linspace(v0, v1, n), indexing="ij")
    U = np.stack([uu.ravel(), vv.ravel()], 1)
    net = bundle.network(epoch_index)
    with torch.no_grad():
        logits = net(torch.as_tensor(slice_.to_input(U), dtype=torch.float32))
        p = _probs(logits)
    return ClassMap(p.argmax(1).reshape(n, n), p.max(1).reshape(n, n), tuple(window), int(epoch_index))


def _probs(logits: torch.Tensor) -> np.ndarray:
    """(N, C) probabilities; a single-logit net gives (N, 2) = (1 - s, s)."""
    logits = logits.double()
    if logits.shape[1] == 1:
        s = torch.sigmoid(logits[:, 0])
        return torch.stack([1 - s, s], 1).numpy()
    return torch.softmax(logits, 1).numpy()


# -- inspecting a point ----------------------------------------------------------------------------
@dataclass(frozen=True)
class PointReport:
    """What the inspector shows for one point of the slice.

    u: (2,) slice coordinates; x: (D,) input point; probs: (C,); predicted: int.
    active: per layer (number of active units, width; -1 for a max-pool, -2 for a smooth layer). region:
    index of the tile at the current depth (-1 if no tessellation); region_count: number of tiles;
    pattern_hash: 8 hex digits of the pattern ("—" for a network with smooth layers).
    slope_norm: ||A_w|| of the full-depth region (NaN if unknown); boundary_distance_slice: distance in u
    to the nearest exact decision-boundary segment of the slice (NaN if none); deepfool_distance:
    ||r(x)|| of DeepFool in the full input space (NaN if unavailable); trace_g: Tr G(x) (NaN if unavailable);
    centroid: (D,) power-diagram centroid of layer ``centroid_layer`` (None if unavailable);
    """

    u: tuple[float, float]
    x: np.ndarray
    probs: np.ndarray
    predicted: int
    active: tuple[tuple[int, int], ...]
    region: int
    region_count: int
    pattern_hash: str
    slope_norm: float
    boundary_distance_slice: float
    deepfool_distance: float
    trace_g: float
    centroid: np.ndarray | None
    centroid_layer: int


def inspect_point(bundle: RunBundle, epoch_index: int, slice_: Slice, u, depth: int,
                  tess_by_depth: list | None = None, progress: Progress = None, cancel: Cancel = None) -> PointReport:
    """Everything the inspector shows for the point ``u`` (2,) of the slice, at the given epoch and depth."""
    u = np.asarray(u, dtype=np.float64).reshape(2)
    x = slice_.to_input(u[None])[0]
    net = bundle.network(epoch_index)
    with torch.no_grad():
        tr = net.trace(torch.as_tensor(x[None], dtype=torch.float32))
    probs = _probs(tr.logits)[0]
    # per nonlinearity (active units, width); -1: a max-pool (an argmax, no on/off), -2: smooth (no pattern)
    active = tuple((-2 if not info.piecewise_linear else int(p.sum()) if p.dtype == torch.bool else -1,
                    int(p.shape[1])) for p, info in zip(tr.patterns, net.layer_infos))
    pats = [p[0].numpy().astype(np.uint8).tobytes() for p in tr.patterns[:depth]]
    phash = f"{zlib.crc32(b''.join(pats)):08x}" if bundle.piecewise_affine else "—"
    region, count, slope, bdist = -1, 0, float("nan"), float("nan")
    if tess_by_depth:
        t = tess_by_depth[depth - 1]
        count = t.num_regions
        region = int(t.region_of(u[None])[0])
        full = tess_by_depth[-1]
        rf = int(full.region_of(u[None])[0])
        if rf >= 0:
            slope = float(full.slope_norm[rf])
        seg = full.boundary_segments
        if len(seg):
            bdist = float(_point_segment_distance(u, seg).min())
    if progress:
        progress(0.3, "local data matrix")
    trace_g = float("nan")
    if engine_available("local_data_matrix", "local_data_matrix"):
        ldm = _engine("local_data_matrix", "local_data_matrix")(net, x[None], cancel=cancel)
        trace_g = float(ldm.trace[0])
    if progress:
        progress(0.5, "DeepFool")
    df = float("nan")
    if engine_available("deepfool", "deepfool"):
        res = _engine("deepfool", "deepfool")(net, x[None], cancel=cancel)
        if bool(res.converged[0]):
            df = float(res.norms[0])
    centroid, clayer = None, depth
    if engine_available("power_diagram", "centroids") and bundle.piecewise_affine:
        c = _engine("power_diagram", "centroids")(net, x[None], [depth - 1], cancel=cancel)
        centroid = np.asarray(c.centroids[0, 0])
    return PointReport((float(u[0]), float(u[1])), x, probs, int(probs.argmax()), active, region, count, phash,
                       slope, bdist, df, trace_g, centroid, clayer)


def _point_segment_distance(p: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """(S,) distances from point p (2,) to segments seg (S, 2, 2)."""
    a, b = seg[:, 0], seg[:, 1]
    ab = b - a
    t = np.clip(np.einsum("ij,ij->i", p - a, ab) / np.maximum(np.einsum("ij,ij->i", ab, ab), 1e-300), 0, 1)
    return np.linalg.norm(a + t[:, None] * ab - p, axis=1)


def check_cancel(cancel: Cancel, what: str) -> None:
    if cancel is not None and cancel():
        raise CancelledError(f"{what} was cancelled.")


def region_geometry_available() -> bool:
    return engine_available("regions.stats", "describe_region")


def region_geometry(bundle: RunBundle, epoch_index: int, x: np.ndarray, progress: Progress = None,
                    cancel: Cancel = None) -> dict:
    """Full-input-space facts about the region of x (D,): active bits (non-redundant inequalities, by LP),
    facet neighbours, Chebyshev radius of region ∩ data box, exact distance to the region's boundary, and
    the exact smallest perturbation that changes the decision without leaving the region (∩ box; a QP,
    ``geometry.regions.min_region_perturbation``): ``qp_exists`` (False: the decision boundary does not
    cross the region; None: not defined for single-output nets), ``qp_distance``, ``qp_target`` (class reached).

    The box is the dataset's bounding box grown by half its size (or [-1, 1]^D without data)."""
    describe_region = _engine("regions.stats", "describe_region")
    X, _ = bundle.points()
    if len(X):
        lo, hi = X.min(0), X.max(0)
        pad = 0.5 * np.maximum(hi - lo, 1e-3)
        box = (lo - pad, hi + pad)
    else:
        box = (-np.ones(bundle.input_dim), np.ones(bundle.input_dim))
    net = bundle.network(epoch_index)
    x = np.asarray(x, np.float64)
    if progress:
        progress(0.0, "active bits, neighbours, Chebyshev ball (LPs)")
    rep = describe_region(net, x, box=box, perturbation=False)
    check_cancel(cancel, "region geometry")
    qp_exists, qp_distance, qp_target = None, None, None
    if rep.hrep.W.shape[0] >= 2:
        if progress:
            progress(0.9, "smallest in-region decision change (QP)")
        # the active bits describe the same region with fewer rows (the box is passed to the QP as well)
        pert = _engine("regions.qp", "min_region_perturbation")(rep.hrep, x, box=box, rows=rep.active.bits)
        qp_exists = bool(pert.exists)
        qp_distance = float(pert.distance) if pert.exists else None
        qp_target = int(pert.target) if pert.exists else None
    return {"active_bits": int(rep.active.count), "n_bits": int(rep.hrep.n_bits),
            "neighbours": int(len(rep.neighbours.bits)),
            "chebyshev_radius": None if rep.chebyshev is None else float(rep.chebyshev.radius),
            "boundary_distance": float(rep.boundary_distance),
            "qp_exists": qp_exists, "qp_distance": qp_distance, "qp_target": qp_target}


def tessellate_every_epoch(bundle: RunBundle, slice_: Slice, window, max_regions: int, cache: ResultCache,
                           progress: Progress = None, cancel: Cancel = None) -> np.ndarray:
    """Tessellate the window at every checkpoint into the cache (newest checkpoint first); returns the
    (E,) full-depth region counts (NaN where the budget was exceeded)."""
    E = len(bundle.run)
    counts = np.full(E, np.nan)
    for n, i in enumerate(range(E - 1, -1, -1)):
        check_cancel(cancel, "tessellating every epoch")
        if progress:
            progress(n / E, f"epoch {bundle.epochs[i]} ({n + 1}/{E})")
        try:
            counts[i] = tessellate_all(bundle, i, slice_, window, max_regions, cache, cancel=cancel)[-1].num_regions
        except CancelledError:
            raise
        except SplineAtlasError:
            pass
    return counts


def cached_region_counts(bundle: RunBundle, slice_: Slice, window, max_regions: int, cache: ResultCache) -> np.ndarray:
    """(E,) full-depth region counts of the window for the epochs whose tessellation is in memory (NaN elsewhere)."""
    out = np.full(len(bundle.run), np.nan)
    for i in range(len(out)):
        hit = cache.peek(tessellation_key(bundle, i, slice_, window, max_regions))
        if hit is not None:
            out[i] = hit[-1].num_regions
    return out


# -- region statistics (the Regions tab) -------------------------------------------------------------
REGION_SETS = ("train", "test", "adversarial")  # geometry.regions.REGION_SETS; importing it here would load cvxpy


@dataclass(frozen=True)
class RegionStatsResult:
    """What the Regions tab shows: ``stats`` (geometry.regions.RegionStats) for the points of ``sets`` at
    checkpoint ``epoch_index`` (epoch ``epoch``); ``n`` points per set; ``box`` the Chebyshev LP's box;
    ``active``: whether active bits were computed (else their count is -1)."""

    stats: object
    epoch_index: int
    epoch: int
    sets: tuple[str, ...]
    n: int
    box: tuple
    active: bool
    seed: int


def region_stat_sets(bundle: RunBundle, epoch_index: int, n: int, sets=REGION_SETS, seed: int = 0,
                     overshoot: float = 0.02, cancel: Cancel = None) -> tuple[dict[str, np.ndarray], tuple]:
    """The point sets and box of ``splineatlas region-stats`` (same sampling and box, so the numbers agree):
    ``n`` random train and test points (fixed ``seed``; test drawn first), DeepFool(test) with ``overshoot``
    for "adversarial"; box = value range of the training data and all set points, 10% margin."""
    ds = bundle.dataset
    if ds is None:
        raise SplineAtlasError("region statistics need the run's dataset; this run names none.")
    from geometry.regions import data_box, sample_region_sets

    out = sample_region_sets(bundle.network(epoch_index), ds, sets, n, seed=seed, overshoot=overshoot, cancel=cancel)
    return out, data_box(ds.X_train, list(out.values()))


def region_stats(bundle: RunBundle, epoch_index: int, n: int, sets=REGION_SETS, active: bool = True, seed: int = 0,
                 overshoot: float = 0.02, progress: Progress = None, cancel: Cancel = None) -> RegionStatsResult:
    """Chebyshev radius, active-bit count and boundary distance of the regions of train / test /
    DeepFool-adversarial points at one checkpoint (``geometry.regions.region_stats``; see
    :func:`region_stat_sets`). Active bits cost hundreds of LPs per point on image inputs."""
    from geometry.regions import check_supported
    from geometry.regions import region_stats as engine_region_stats

    net = bundle.network(epoch_index)
    check_supported(net)
    if progress:
        progress(0.0, "sampling the points" + (" and running DeepFool" if "adversarial" in sets else ""))
    point_sets, box = region_stat_sets(bundle, epoch_index, n, sets, seed, overshoot, cancel)
    check_cancel(cancel, "region statistics")
    inner = None if progress is None else (lambda f, m: progress(0.05 + 0.95 * f, m))
    st = engine_region_stats(net, point_sets, box, active=active, progress=inner, cancel=cancel)
    i = epoch_index % len(bundle.run)
    return RegionStatsResult(st, i, int(bundle.epochs[i]), tuple(point_sets), int(n), box, bool(active), int(seed))
