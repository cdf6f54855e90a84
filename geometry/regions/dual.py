"""The "dual space" of region affine maps (Sattelberg et al., "Locally linear attributes of ReLU networks").

On each region the logits are ``f_j(x) = w_j·x + b_j``; the row ``[w_j, b_j]`` is a point of R^{D+1}
(their eq. 4). Sampling points x gives their matrices ``C_j`` (eq. 7, one row per sample). This module
returns those points (per sample, per grid region, per epoch of a run), the least-squares affine maps
``M_j`` between two networks' ``C_j`` (their eq. 8, Section 2.4.2) with the accuracy the mapped functions
keep (their Table 2), and k-means clustering of the maps (their Section 2.4.1, Table 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geometry.errors import CancelledError, SplineAtlasError
from geometry.networks.network import predicted_classes
from geometry.regions.affine import patterns_of, region_maps
from geometry.regions.lp import as_box


def dual_points(net, X, device=None) -> np.ndarray:
    """Region affine maps at points: X (N, D) -> (N, C, D+1) float64 rows ``[w_j, b_j]`` (their C_j rows)."""
    X = np.asarray(X, np.float64).reshape(-1, net.input_dim)
    P = patterns_of(net, X, device=device)
    _, first, inv = np.unique(np.packbits(P, axis=1), axis=0, return_index=True, return_inverse=True)
    maps = region_maps(net, P[first], device=device)
    duals = np.concatenate([maps.W, maps.b[:, :, None]], axis=2)
    return duals[inv.reshape(-1)]


@dataclass(frozen=True)
class GridDual:
    """Dual points of the regions met by a uniform grid on a box (their Fig. 4: 101x101 on [-1, 1]^2).

    duals: (R, C, D+1) one row per region and output; patterns: (R, n_bits) bool; counts: (R,) grid
    points per region; labels: (R,) predicted class at the region's first grid point; points: (R, 2)
    that first grid point (``dual_points(net, points) == duals``)."""

    duals: np.ndarray
    patterns: np.ndarray
    counts: np.ndarray
    labels: np.ndarray
    points: np.ndarray | None = None


def grid_dual(net, box=(-1.0, 1.0), resolution: int = 101, device=None) -> GridDual:
    """Unique region affine maps on a ``resolution``^2 grid over a 2D box (2D-input networks)."""
    if net.input_dim != 2:
        raise SplineAtlasError(f"the grid dual view is for 2D-input networks; this one has {net.input_dim} inputs (use dual_points on data samples instead).")
    lo, hi = as_box(box, 2)
    gx = np.linspace(lo[0], hi[0], resolution)
    gy = np.linspace(lo[1], hi[1], resolution)
    X = np.stack(np.meshgrid(gx, gy), -1).reshape(-1, 2)
    P = patterns_of(net, X, device=device)
    uniq, first, inv, counts = np.unique(np.packbits(P, axis=1), axis=0, return_index=True, return_inverse=True, return_counts=True)
    maps = region_maps(net, P[first], device=device)
    duals = np.concatenate([maps.W, maps.b[:, :, None]], axis=2)
    labels = predicted_classes(np.einsum("rcd,rd->rc", maps.W, X[first]) + maps.b)
    return GridDual(duals, P[first], counts.astype(np.int64), labels.astype(np.int64), X[first].copy())


def grid_dual_over_epochs(run, indices=None, box=(-1.0, 1.0), resolution: int = 101, device=None, progress=None, cancel=None) -> list[GridDual]:
    """:func:`grid_dual` at the checkpoints ``indices`` of ``run`` (default: all), for the training
    animation of the dual space (Sattelberg Section 3.1): the regions met by the grid at each epoch."""
    idx = list(range(len(run.epochs))) if indices is None else list(indices)
    out = []
    for k, i in enumerate(idx):
        if cancel is not None and cancel():
            raise CancelledError("dual-space sweep was cancelled.")
        out.append(grid_dual(run.network(i), box, resolution, device=device))
        if progress is not None:
            progress((k + 1) / len(idx), f"epoch {run.epochs[i]}")
    return out


@dataclass(frozen=True)
class DualMotion:
    """Dual points of fixed sample points over a run's epochs (for the training animation).

    epochs: (E,) int; duals: (E, N, C, D+1) float64 (sample n's region map at epoch e); n_regions: (E,)
    distinct regions among the samples per epoch."""

    epochs: np.ndarray
    duals: np.ndarray
    n_regions: np.ndarray


def dual_over_epochs(run, X, device=None, progress=None, cancel=None) -> DualMotion:
    """Dual points of samples X (N, D) at every checkpoint of ``run`` (an object with ``epochs`` and
    ``network(i)``, e.g. :func:`geometry.networks.runs.open_run`'s Run)."""
    X = np.asarray(X, np.float64)
    out, nreg = [], []
    E = len(run.epochs)
    for i in range(E):
        if cancel is not None and cancel():
            raise CancelledError("dual-space sweep was cancelled.")
        net = run.network(i)
        out.append(dual_points(net, X, device=device))
        nreg.append(len(np.unique(np.packbits(patterns_of(net, X, device=device), axis=1), axis=0)))
        if progress is not None:
            progress((i + 1) / E, f"epoch {run.epochs[i]}")
    return DualMotion(np.asarray(run.epochs), np.stack(out), np.asarray(nreg, np.int64))


def _predict_with_rows(rows: np.ndarray, X: np.ndarray) -> np.ndarray:
    """rows (N, C, D+1) affine maps applied to their own points X (N, D) -> (N,) predicted class."""
    Xh = np.hstack([X, np.ones((len(X), 1))])
    return predicted_classes(np.einsum("ncd,nd->nc", rows, Xh))


@dataclass(frozen=True)
class DualMapping:
    """Least-squares maps ``M_j`` ((C, D+1, D+1)) with C1_j M_j ≈ C2_j (Sattelberg eq. 8), fitted on one
    sample set and evaluated on another: accuracy of net1, net2 and of net1's maps sent through M
    (net1 -> net2), and the relative fit residual ``||C1 M - C2|| / ||C2||`` on the evaluation set."""

    M: np.ndarray
    acc_net1: float
    acc_net2: float
    acc_mapped: float
    residual: float


def map_between(net1, net2, X_fit, X_eval, y_eval, device=None) -> DualMapping:
    """Affine map between two networks' region functions (their Section 2.4.2, Table 2)."""
    if net1.input_dim != net2.input_dim:
        raise SplineAtlasError("both networks must take the same inputs.")
    C1 = dual_points(net1, X_fit, device)
    C2 = dual_points(net2, X_fit, device)
    if C1.shape[1] != C2.shape[1]:
        raise SplineAtlasError("both networks must have the same number of outputs.")
    M = np.stack([np.linalg.lstsq(C1[:, j], C2[:, j], rcond=None)[0] for j in range(C1.shape[1])])
    E1 = dual_points(net1, X_eval, device)
    E2 = dual_points(net2, X_eval, device)
    mapped = np.einsum("ncd,cde->nce", E1, M)
    Xe = np.asarray(X_eval, np.float64)
    y = np.asarray(y_eval)
    acc = lambda rows: float(np.mean(_predict_with_rows(rows, Xe) == y))  # noqa: E731
    res = float(np.linalg.norm(mapped - E2) / max(np.linalg.norm(E2), 1e-300))
    return DualMapping(M, acc(E1), acc(E2), acc(mapped), res)


def cluster_accuracy(net, X_fit, X_eval, y_eval, k: int, seed: int = 0, device=None) -> float:
    """Accuracy when every output's region maps are replaced by their nearest of k k-means centres
    (Sattelberg Section 2.4.1, Table 1; each output clustered separately)."""
    from sklearn.cluster import KMeans

    C = dual_points(net, X_fit, device)
    E = dual_points(net, X_eval, device)
    rows = np.empty_like(E)
    for j in range(C.shape[1]):
        km = KMeans(n_clusters=min(k, len(C)), n_init=3, random_state=seed).fit(C[:, j])
        rows[:, j] = km.cluster_centers_[km.predict(E[:, j])]
    return float(np.mean(_predict_with_rows(rows, np.asarray(X_eval, np.float64)) == np.asarray(y_eval)))
