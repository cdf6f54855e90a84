"""What the window shows about the point under the cursor, Qt-free: the preview class map, the inspector's
report and the region's full-input-space geometry. ``splineatlas inspect`` prints exactly these.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from geometry.boundary.deepfool import deepfool
from geometry.foliation.local_data_matrix import local_data_matrix
from geometry.power_diagram import centroids
from geometry.slices import Slice
from geometry.tessellation import pack_pattern

from ..render.tiles import pattern_hashes

from .bundle import Cancel, Progress, RunBundle, check_cancel
from .tessellate import slope_norm_of


def pattern_hash(codes) -> str:
    """8 hex digits naming one point's activation pattern from its per-layer codes (1, k), stored as the
    tessellation stores them (``pack_pattern``): the hash whose value colours the point's tile in
    "activation-pattern hash" mode (:func:`app.render.tiles.pattern_hashes`)."""
    return f"{int(pattern_hashes(codes, 1)[0]):08x}"


def region_box(bundle: RunBundle, extra=()) -> tuple:
    """The box of every region LP and QP (Chebyshev ball, in-region decision change): the training data and
    ``extra`` points with a 10% margin of their value range (``geometry.regions.data_box``, the same for every
    coordinate), or [-1, 1] grown to hold ``extra`` when the run has no dataset. The inspector, ``splineatlas
    inspect``, ``splineatlas region`` and the Regions tab all use it."""
    from geometry.regions import data_box

    X, _ = bundle.points()
    extra = [np.asarray(e, np.float64).reshape(-1, bundle.input_dim) for e in extra]
    if len(X):
        return data_box(X, extra)
    pts = np.concatenate(extra) if extra else np.zeros((0, 1))
    return (min(-1.0, float(pts.min(initial=0.0))), max(1.0, float(pts.max(initial=0.0))))


@dataclass(frozen=True)
class ClassMap:
    """Predicted class on an n x n grid of the window (a quick preview while the exact tiles compute).

    classes: (n, n) int64 indexed [iu, iv]; confidence: (n, n) float64 max probability; window: (4,).
    """

    classes: np.ndarray
    confidence: np.ndarray
    window: tuple[float, float, float, float]
    epoch_index: int = -1  # the checkpoint it predicts for (the window compares it with the tiles')


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
    value: float | None = None  # a regression run's output f(x) (its level set's side is ``predicted``)
    level: float | None = None  # and its level L
    output: np.ndarray | None = None  # a generator's output G(z) (D,) (it has no classes)
    volume: float | None = None  # and its tile's volume change sqrt(det(AᵀA)) (NaN without tiles)


def inspect_point(
    bundle: RunBundle, epoch_index: int, slice_: Slice, u, depth: int, tess_by_depth: list | None = None, progress: Progress = None, cancel: Cancel = None
) -> PointReport:
    """Everything the inspector shows for the point ``u`` (2,) of the slice, at the given epoch and depth."""
    u = np.asarray(u, dtype=np.float64).reshape(2)
    x = slice_.to_input(u[None])[0]
    net = bundle.network(epoch_index)
    with torch.no_grad():
        tr = net.trace(torch.as_tensor(x[None], dtype=torch.float32))
    probs = _probs(tr.logits)[0]
    # per nonlinearity (active units, width); -1: a max-pool (an argmax, no on/off), -2: smooth (no pattern)
    active = tuple(
        (-2 if not info.piecewise_linear else int(p.sum()) if p.dtype == torch.bool else -1, int(p.shape[1])) for p, info in zip(tr.patterns, net.layer_infos)
    )
    phash = pattern_hash([pack_pattern(p.numpy(), info.kind) for p, info in zip(tr.patterns[:depth], net.layer_infos)]) if bundle.piecewise_affine else "—"
    region, count, slope, bdist, rf = -1, 0, float("nan"), float("nan"), -1
    if tess_by_depth:
        t = tess_by_depth[depth - 1]
        count = t.num_regions
        region = int(t.region_of(u[None])[0])
        full = tess_by_depth[-1]
        rf = int(full.region_of(u[None])[0])
        slope = slope_norm_of(bundle, epoch_index, full, rf) if full.full_depth else float("nan")
        seg = full.boundary_segments
        if len(seg):
            bdist = float(_point_segment_distance(u, seg).min())
    if progress:
        progress(0.3, "local data matrix")
    trace_g = float(local_data_matrix(net, x[None], cancel=cancel).trace[0])
    if progress:
        progress(0.5, "DeepFool")
    res = deepfool(net, x[None], cancel=cancel)
    df = float(res.norms[0]) if bool(res.converged[0]) else float("nan")
    centroid, clayer = None, depth
    if bundle.piecewise_affine:
        c = centroids(net, x[None], [depth - 1], cancel=cancel)
        centroid = np.asarray(c.centroids[0, 0])
    value = level = None
    if bundle.is_regression and tr.logits.shape[1] == 1:  # the network is f - L: report f itself
        level = float(bundle.run.level)
        value = float(tr.logits[0, 0]) + level
    output = volume = None
    if bundle.run.task == "generate":
        from geometry.generative import volume_change

        output = tr.logits[0].double().numpy()
        volume = float(volume_change(np.asarray(tess_by_depth[-1].out_linear[rf : rf + 1], dtype=np.float64))[0]) if rf >= 0 else float("nan")
    return PointReport(
        (float(u[0]), float(u[1])),
        x,
        probs,
        int(probs.argmax()),
        active,
        region,
        count,
        phash,
        slope,
        bdist,
        df,
        trace_g,
        centroid,
        clayer,
        value,
        level,
        output,
        volume,
    )


def _point_segment_distance(p: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """(S,) distances from point p (2,) to segments seg (S, 2, 2)."""
    a, b = seg[:, 0], seg[:, 1]
    ab = b - a
    t = np.clip(np.einsum("ij,ij->i", p - a, ab) / np.maximum(np.einsum("ij,ij->i", ab, ab), 1e-300), 0, 1)
    return np.linalg.norm(a + t[:, None] * ab - p, axis=1)


def region_geometry(bundle: RunBundle, epoch_index: int, x: np.ndarray, progress: Progress = None, cancel: Cancel = None) -> dict:
    """Full-input-space facts about the region of x (D,): active bits (non-redundant inequalities, by LP),
    facet neighbours, Chebyshev radius of region ∩ data box, exact distance to the region's boundary, and
    the exact smallest perturbation that changes the decision without leaving the region (∩ box; a QP,
    ``geometry.regions.min_region_perturbation``): ``qp_exists`` (False: the decision boundary does not
    cross the region; None: not defined for single-output nets), ``qp_distance``, ``qp_target`` (class reached).

    The box is :func:`region_box` (with x)."""
    from geometry.regions import describe_region, min_region_perturbation

    x = np.asarray(x, np.float64)
    box = region_box(bundle, [x])
    net = bundle.network(epoch_index)
    if progress:
        progress(0.0, "active bits, neighbours, Chebyshev ball (LPs)")
    rep = describe_region(net, x, box=box, perturbation=False)
    check_cancel(cancel, "region geometry")
    qp_exists, qp_distance, qp_target = None, None, None
    if rep.hrep.W.shape[0] >= 2:
        if progress:
            progress(0.9, "smallest in-region decision change (QP)")
        # the active bits describe the same region with fewer rows (the box is passed to the QP as well)
        pert = min_region_perturbation(rep.hrep, x, box=box, rows=rep.active.bits)
        qp_exists = bool(pert.exists)
        qp_distance = float(pert.distance) if pert.exists else None
        qp_target = int(pert.target) if pert.exists else None
    return {
        "active_bits": int(rep.active.count),
        "n_bits": int(rep.hrep.n_bits),
        "neighbours": int(len(rep.neighbours.bits)),
        "chebyshev_radius": None if rep.chebyshev is None else float(rep.chebyshev.radius),
        "boundary_distance": float(rep.boundary_distance),
        "qp_exists": qp_exists,
        "qp_distance": qp_distance,
        "qp_target": qp_target,
    }
