"""Dihedral angles between adjacent pieces of the exact decision boundary of a tessellated 2D slice.

Balestriero et al. 2019, Theorem 8 (eq. 27): on a linear region r the decision boundary between
classes i and j is the hyperplane {x : <α_r, x> + β_r = 0} with α_r = ∇_x(f_i − f_j) (full input
space, constant on r); where the boundary passes from region r into an adjacent region r' (Lemma 6)
it bends by the dihedral angle
    cos θ(r, r') = |<α_r, α_r'>| / (||α_r|| ||α_r'||),   θ ∈ [0°, 90°] (0 = no bend).
The slice shows each piece as a segment; a *boundary vertex* is a point where two segments of the
same class pair in different regions meet. The bias terms β do not enter (the angle is invariant to
them and to scaling the weights, as the paper notes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import nn

from geometry.networks.torch_utils import module_device, prepare_model
from geometry.errors import SplineAtlasError


@dataclass(frozen=True)
class BoundaryAngles:
    """Angles at the boundary vertices of one tessellated slice.

    vertices: (M, 2) float64 slice coordinates of each vertex where two pieces meet.
    segments: (M, 2) int64 the two boundary segments (indices into tess.boundary_segments).
    classes: (M, 2) int64 the class pair of the boundary there.
    angles: (M,) float64 dihedral angle θ in degrees from Theorem 8 (full input space).
    slice_angles: (M,) float64 the angle between the two segments' lines within the slice, in degrees
      (equals ``angles`` when the slice is the whole input plane; a lower bound is NOT implied otherwise).
    normals: (S, D) float64 α = ∇_x(f_c1 − f_c0) of every boundary segment (full input space).
    junctions: (J, 2) float64 vertices where pieces of DIFFERENT class pairs meet (three classes tie);
      no angle is defined there.
    """

    vertices: np.ndarray
    segments: np.ndarray
    classes: np.ndarray
    angles: np.ndarray
    slice_angles: np.ndarray
    normals: np.ndarray
    junctions: np.ndarray

    def histogram(self, bins: int | np.ndarray = 18, range_deg: tuple[float, float] = (0.0, 90.0)):
        """(counts (B,), edges (B+1,)) histogram of the dihedral angles in degrees."""
        return np.histogram(self.angles, bins=bins, range=range_deg)


def _segment_normals(model, tess) -> np.ndarray:
    """(S, D) ∇_x(f_c1 − f_c0) on each boundary segment's region, evaluated at the region's centroid."""
    S = tess.boundary_segments.shape[0]
    if S == 0:
        return np.zeros((0, tess.slice.ambient_dim))
    dev = module_device(model)
    dtype = next(model.parameters()).dtype
    u = tess.centroids()[tess.boundary_region]
    X = torch.as_tensor(tess.slice.to_input(u), dtype=dtype, device=dev).requires_grad_(True)
    logits = model(X)
    cls = torch.as_tensor(tess.boundary_classes, device=dev)
    if logits.shape[1] == 1:  # binary single-logit: logits (0, f), boundary f = 0
        diff = logits[:, 0]
    else:
        diff = logits.gather(1, cls[:, 1:2])[:, 0] - logits.gather(1, cls[:, 0:1])[:, 0]
    (g,) = torch.autograd.grad(diff.sum(), X)
    return g.to("cpu", torch.float64).numpy()


def boundary_angles(net: nn.Module, tess, *, tol: float | None = None, dtype: torch.dtype = torch.float64, device=None) -> BoundaryAngles:
    """Theorem-8 dihedral angles at every vertex of the decision boundary of a full-depth 2D tessellation.

    tess: a :class:`geometry.tessellation.Tessellation2D` at full depth (it holds the exact boundary).
    tol: distance in slice units under which two segment endpoints are the same vertex (default: 1e3 ×
    the tessellation's tolerance, scaled by the domain size).
    """
    if getattr(tess, "boundary_segments", None) is None or tess.domain.ndim != 2:
        raise SplineAtlasError("boundary angles need a 2D tessellation (Tessellation2D).")
    if not tess.full_depth:
        raise SplineAtlasError("boundary angles need the tessellation at full depth (the decision boundary).")
    model = prepare_model(net, dtype, device)
    seg = np.asarray(tess.boundary_segments, dtype=np.float64)
    S = seg.shape[0]
    normals = _segment_normals(model, tess)
    empty = BoundaryAngles(np.zeros((0, 2)), np.zeros((0, 2), np.int64), np.zeros((0, 2), np.int64), np.zeros(0), np.zeros(0), normals, np.zeros((0, 2)))
    if S < 2:
        return empty
    scale = float(np.ptp(tess.domain, axis=0).max())
    tol = (1e3 * tess.tolerance * max(scale, 1.0)) if tol is None else tol
    pts = seg.reshape(-1, 2)  # endpoint 2s, 2s+1 belong to segment s
    pairs = np.array(sorted(cKDTree(pts).query_pairs(tol)), dtype=np.int64).reshape(-1, 2)
    if pairs.shape[0] == 0:
        return empty
    sa, sb = pairs[:, 0] // 2, pairs[:, 1] // 2
    keep = (sa != sb) & (tess.boundary_region[sa] != tess.boundary_region[sb])
    sa, sb, pa = sa[keep], sb[keep], pairs[keep, 0]
    same = np.all(tess.boundary_classes[sa] == tess.boundary_classes[sb], axis=1)
    # one entry per unordered segment pair
    key = np.unique(np.stack([np.minimum(sa, sb), np.maximum(sa, sb), pa], 1)[same], axis=0)
    _, first = np.unique(key[:, :2], axis=0, return_index=True)
    key = key[first]
    a, b = normals[key[:, 0]], normals[key[:, 1]]
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    cos = np.clip(np.abs(np.einsum("md,md->m", a, b)) / np.maximum(na * nb, 1e-300), 0.0, 1.0)
    da = seg[key[:, 0], 1] - seg[key[:, 0], 0]
    db = seg[key[:, 1], 1] - seg[key[:, 1], 0]
    cs = np.abs(np.einsum("mk,mk->m", da, db)) / np.maximum(np.linalg.norm(da, axis=1) * np.linalg.norm(db, axis=1), 1e-300)
    junction_pts = pts[pairs[keep, 0][~same]] if (~same).any() else np.zeros((0, 2))
    if junction_pts.shape[0]:
        junction_pts = np.unique(np.round(junction_pts / tol) * tol, axis=0)
    return BoundaryAngles(
        pts[key[:, 2]],
        key[:, :2],
        tess.boundary_classes[key[:, 0]],
        np.degrees(np.arccos(cos)),
        np.degrees(np.arccos(np.clip(cs, 0, 1))),
        normals,
        junction_pts.reshape(-1, 2),
    )


def angle_histogram(angles_deg: np.ndarray, bins: int = 18) -> tuple[np.ndarray, np.ndarray]:
    """(counts (B,), edges (B+1,)) histogram over [0°, 90°] of dihedral angles pooled from many slices."""
    return np.histogram(np.asarray(angles_deg, dtype=np.float64), bins=bins, range=(0.0, 90.0))
