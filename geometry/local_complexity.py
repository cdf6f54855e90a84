"""Local complexity (LC) of a piecewise-affine network, and exact region counts in small slice squares.

Local complexity (Humayun, Balestriero & Baraniuk 2024, summarised in the geometry-of-deep-learning
survey): the number of neuron "hyperplanes" that cross a small neighbourhood V of a point x, per layer
and in total — a proxy for the number of tiles in V (Zaslavsky's bound, valid while V is small enough
that the hyperplanes are not folded inside it). As in the paper, V is the convex hull of an
*orthoplex frame* of radius r centred at x: the 2P vertices ``x ± r v_i`` for P orthonormal directions
``v_i`` (one random frame, shared by all points so that LC is comparable across points and epochs).
Neuron k of layer l crosses V when its pre-activation ``h_{l,k}`` takes both signs on the frame's
vertices (h is affine in the layer's input, so this is exactly "the layer-l hyperplane in the embedded
frame's space cuts the embedded hull", the paper's construction). Max-pool layers count the pooling
windows whose argmax changes over the frame.

:func:`local_complexity` is batched: all N·2P frame vertices go through the network in chunks, on any
device. :func:`local_complexity_loop` is the plain per-point reference (used by tests and the bench).

The exact count (2D slices only): :func:`square_region_counts` counts, for squares of half-width h
around points of a 2D slice, the linear regions of depth 1..L that meet each square with positive
area, from the exact tessellation (:mod:`geometry.tessellation`) — the quantity LC only estimates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from geometry.networks.device import resolve_device
from geometry.errors import CancelledError, DatasetError, SplineAtlasError
from geometry.networks.network import Network
from geometry.slices import Slice
from geometry.tessellation.loops import next_in_loop

Progress = Callable[[float, str], None] | None
Cancel = Callable[[], bool] | None


@dataclass(frozen=True)
class LocalComplexity:
    """LC of N points.

    per_layer: (L, N) int64 number of units of layer l (0-based) whose pre-activation changes sign on
      the orthoplex frame around each point (max-pool: windows whose argmax changes).
    total: (N,) int64 = per_layer.sum(0).
    radius: the frame radius r; dims: P, the number of orthonormal frame directions (2P vertices).
    """

    per_layer: np.ndarray
    total: np.ndarray
    radius: float
    dims: int

    @property
    def mean_per_layer(self) -> np.ndarray:
        """(L,) float64 mean LC of each layer over the points."""
        return self.per_layer.mean(axis=1) if self.per_layer.shape[1] else np.full(self.per_layer.shape[0], np.nan)

    @property
    def mean_total(self) -> float:
        return float(self.total.mean()) if self.total.size else float("nan")


def orthoplex_directions(dim: int, dims: int | None = None, seed: int = 0) -> np.ndarray:
    """(P, dim) float64 orthonormal rows: the frame directions (P = min(dims, dim); identity when P == dim
    and dim <= 3, so 2D frames are the axis-aligned diamond)."""
    p = dim if dims is None else int(dims)
    if p < 1:
        raise SplineAtlasError(f"the orthoplex frame needs at least one direction; got dims={dims}.")
    p = min(p, dim)
    if p == dim and dim <= 3:
        return np.eye(dim)
    g = np.random.default_rng(seed).standard_normal((dim, p))
    q, r = np.linalg.qr(g)
    return (q * np.sign(np.diag(r))).T.copy()


def frame_vertices(X: np.ndarray, directions: np.ndarray, radius: float) -> np.ndarray:
    """(N, 2P, D) the orthoplex vertices ``x + r v_i`` then ``x - r v_i`` around every row of X (N, D)."""
    X = np.asarray(X, dtype=np.float64)
    offs = radius * np.concatenate([directions, -directions], axis=0)
    return X[:, None, :] + offs[None, :, :]


def _check(net: Network, X, radius: float) -> np.ndarray:
    net.require_piecewise_affine("local complexity")
    if not np.isfinite(radius) or radius <= 0:
        raise SplineAtlasError(f"the local-complexity radius must be a positive number; got {radius}.")
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != net.input_dim:
        raise DatasetError(f"local complexity needs points of shape (N, {net.input_dim}); got {X.shape}.")
    return X


def local_complexity(
    net: Network,
    X,
    radius: float = 0.02,
    dims: int | None = 16,
    seed: int = 0,
    directions: np.ndarray | None = None,
    device=None,
    dtype: torch.dtype = torch.float64,
    max_vertices_per_batch: int = 65536,
    progress: Progress = None,
    cancel: Cancel = None,
) -> LocalComplexity:
    """Local complexity of every row of ``X (N, D)`` (see the module docstring), batched.

    radius: frame radius r in input units; dims: P frame directions (min(P, D); default 16, the
    identity frame for D <= 3); directions: an explicit (P, D) orthonormal frame instead; device/dtype
    of the computation (float64 by default so sign tests near zero are not float32 noise).
    """
    X = _check(net, X, radius)
    n, d = X.shape
    V = orthoplex_directions(d, dims, seed) if directions is None else np.asarray(directions, dtype=np.float64)
    if V.ndim != 2 or V.shape[1] != d:
        raise SplineAtlasError(f"frame directions must have shape (P, {d}); got {V.shape}.")
    p2 = 2 * V.shape[0]
    dev = resolve_device(device)
    model = net.to_dtype_device(dtype, dev)
    offs = torch.as_tensor(radius * np.concatenate([V, -V]), dtype=dtype, device=dev)  # (2P, D)
    Xt = torch.as_tensor(X, dtype=dtype, device=dev)
    L = net.depth
    out = np.zeros((L, n), dtype=np.int64)
    step = max(1, int(max_vertices_per_batch) // p2)
    with torch.no_grad():
        for s in range(0, n, step):
            if cancel is not None and cancel():
                raise CancelledError("local complexity was cancelled.")
            xb = Xt[s : s + step]
            m = xb.shape[0]
            verts = (xb[:, None, :] + offs[None]).reshape(m * p2, d)
            tr = model.trace(verts)
            for l, info in enumerate(net.layer_infos):
                pat = tr.patterns[l].reshape(m, p2, -1)
                if info.kind == "maxpool2d":
                    changed = (pat != pat[:, :1]).any(dim=1)
                else:
                    pre = tr.preactivations[l].reshape(m, p2, -1)
                    changed = (pre > 0).any(dim=1) & (pre <= 0).any(dim=1)
                out[l, s : s + m] = changed.sum(dim=1).cpu().numpy()
            if progress is not None:
                progress(min(n, s + step) / n, f"local complexity {min(n, s + step)}/{n} points")
    return LocalComplexity(out, out.sum(axis=0), float(radius), int(V.shape[0]))


def local_complexity_loop(net: Network, X, radius: float = 0.02, dims: int | None = 16, seed: int = 0, directions: np.ndarray | None = None) -> LocalComplexity:
    """Reference implementation: one point at a time, one frame vertex at a time (slow; for tests and
    the benchmark's baseline). Same definition as :func:`local_complexity`."""
    X = _check(net, X, radius)
    n, d = X.shape
    V = orthoplex_directions(d, dims, seed) if directions is None else np.asarray(directions, dtype=np.float64)
    model = net.to_dtype_device(torch.float64, "cpu")
    L = net.depth
    out = np.zeros((L, n), dtype=np.int64)
    with torch.no_grad():
        for i in range(n):
            signs: list[list[np.ndarray]] = [[] for _ in range(L)]
            for sgn in (1.0, -1.0):
                for v in V:
                    x = torch.as_tensor(X[i] + sgn * radius * v)[None]
                    tr = model.trace(x)
                    for l, info in enumerate(net.layer_infos):
                        if info.kind == "maxpool2d":
                            signs[l].append(tr.patterns[l][0].numpy())
                        else:
                            signs[l].append((tr.preactivations[l][0] > 0).numpy())
            for l in range(L):
                S = np.stack(signs[l])
                out[l, i] = int(np.sum(np.any(S != S[0], axis=0)))
    return LocalComplexity(out, out.sum(axis=0), float(radius), int(V.shape[0]))


# -- exact region counts in small squares of a 2D slice --------------------------------------------
@dataclass(frozen=True)
class SquareRegionCounts:
    """Exact number of linear regions meeting each square ``[u-h, u+h] x [v-h, v+h]`` of a 2D slice.

    counts: (depth, N) int64; counts[l-1] counts the regions of layers 1..l (the full network at l = L).
    centers: (N, 2) float64 square centres in slice coordinates; half_width: h.
    """

    counts: np.ndarray
    centers: np.ndarray
    half_width: float

    @property
    def density(self) -> np.ndarray:
        """(depth, N) regions per unit area of slice."""
        return self.counts / (2.0 * self.half_width) ** 2


def _polygon_bboxes(vertices: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(R, 4) [umin, umax, vmin, vmax] of every ragged polygon."""
    st = offsets[:-1]
    return np.stack(
        [
            np.minimum.reduceat(vertices[:, 0], st),
            np.maximum.reduceat(vertices[:, 0], st),
            np.minimum.reduceat(vertices[:, 1], st),
            np.maximum.reduceat(vertices[:, 1], st),
        ],
        axis=1,
    )


def count_polygons_in_squares(
    vertices: np.ndarray, offsets: np.ndarray, centers: np.ndarray, half_width: float, tol: float = 1e-12, chunk: int = 256
) -> np.ndarray:
    """(N,) int64 number of convex CCW polygons (ragged ``vertices (V, 2)``, ``offsets (R+1,)``) whose
    interior meets the open square of half-width h around each centre (N, 2).

    Separating-axis test: a convex polygon and a square have disjoint interiors iff an axis of the square
    (bounding boxes) or an edge line of the polygon separates them (touching counts as disjoint).
    """
    centers = np.asarray(centers, dtype=np.float64).reshape(-1, 2)
    n = centers.shape[0]
    out = np.zeros(n, dtype=np.int64)
    if offsets.shape[0] < 2 or n == 0:
        return out
    bb = _polygon_bboxes(vertices, offsets)
    h = float(half_width)
    eps = tol * max(1.0, h)
    nxt = next_in_loop(offsets)
    edge = vertices[nxt] - vertices  # (V, 2)
    corners = np.array([[-h, -h], [h, -h], [h, h], [-h, h]])
    cnt = np.diff(offsets)
    for s in range(0, n, chunk):
        c = centers[s : s + chunk]
        ov = (
            (bb[None, :, 0] < c[:, None, 0] + h - eps)
            & (bb[None, :, 1] > c[:, None, 0] - h + eps)
            & (bb[None, :, 2] < c[:, None, 1] + h - eps)
            & (bb[None, :, 3] > c[:, None, 1] - h + eps)
        )
        qi, ri = np.nonzero(ov)
        if qi.size == 0:
            continue
        k = cnt[ri]
        pair = np.repeat(np.arange(qi.size), k)
        vid = np.repeat(offsets[ri], k) + (np.arange(k.sum()) - np.repeat(np.cumsum(k) - k, k))
        a = vertices[vid]
        e = edge[vid]
        q = c[qi][pair][:, None, :] + corners[None]  # (P*, 4, 2)
        cross = e[:, None, 0] * (q[..., 1] - a[:, None, 1]) - e[:, None, 1] * (q[..., 0] - a[:, None, 0])
        scale = np.hypot(e[:, 0], e[:, 1])[:, None]
        separated = np.all(cross <= eps * scale, axis=1)  # all corners right of (outside) the edge
        sep_pair = np.zeros(qi.size, dtype=bool)
        np.logical_or.at(sep_pair, pair, separated)
        np.add.at(out, s + qi[~sep_pair], 1)
    return out


def square_region_counts(
    net: Network,
    slice_: Slice,
    centers,
    half_width: float,
    depth: int | None = None,
    tessellations: list | None = None,
    device=None,
    max_regions: int | None = None,
    progress: Progress = None,
    cancel: Cancel = None,
) -> SquareRegionCounts:
    """Exact region counts of depth 1..``depth`` inside squares of half-width h around ``centers (N, 2)``
    (slice coordinates) of a 2D slice.

    Tessellates the bounding box of all squares once (every depth in one pass) unless ``tessellations``
    (a list of Tessellation2D of depths 1..depth covering the squares, e.g. from
    ``tessellate_all_depths``) is given, then counts the convex regions meeting each square.
    """
    from geometry.tessellation import DEFAULT_MAX_REGIONS, tessellate_all_depths

    if slice_.dim != 2:
        raise SplineAtlasError("exact square region counts need a 2D slice.")
    h = float(half_width)
    if not np.isfinite(h) or h <= 0:
        raise SplineAtlasError(f"the square half-width must be positive; got {half_width}.")
    C = np.asarray(centers, dtype=np.float64).reshape(-1, 2)
    if tessellations is None:
        if C.shape[0] == 0:
            raise SplineAtlasError("no square centres given.")
        box = [C[:, 0].min() - h, C[:, 0].max() + h, C[:, 1].min() - h, C[:, 1].max() + h]
        tessellations = tessellate_all_depths(
            net, slice_, box, depth=depth, device=device, max_regions=max_regions or DEFAULT_MAX_REGIONS, progress=progress, cancel=cancel
        )
    elif depth is not None:
        tessellations = tessellations[:depth]
    counts = (
        np.stack([count_polygons_in_squares(t.vertices, t.offsets, C, h, tol=t.tolerance) for t in tessellations])
        if len(tessellations)
        else np.zeros((0, C.shape[0]), np.int64)
    )
    return SquareRegionCounts(counts, C, h)


def sample_boundary_points(segments: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """(n, 2) points drawn uniformly by length on decision-boundary segments ``(S, 2, 2)`` (empty if S = 0)."""
    seg = np.asarray(segments, dtype=np.float64).reshape(-1, 2, 2)
    if seg.shape[0] == 0 or n <= 0:
        return np.zeros((0, 2))
    length = np.linalg.norm(seg[:, 1] - seg[:, 0], axis=1)
    if length.sum() <= 0:
        return np.zeros((0, 2))
    rng = np.random.default_rng(seed)
    idx = rng.choice(seg.shape[0], size=n, p=length / length.sum())
    t = rng.random(n)[:, None]
    return seg[idx, 0] * (1 - t) + seg[idx, 1] * t


__all__ = [
    "LocalComplexity",
    "SquareRegionCounts",
    "count_polygons_in_squares",
    "frame_vertices",
    "local_complexity",
    "local_complexity_loop",
    "orthoplex_directions",
    "sample_boundary_points",
    "square_region_counts",
]
