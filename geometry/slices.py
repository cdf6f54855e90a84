"""Slices of input space: ``x(u) = origin + basis @ u`` with an orthonormal basis (D x k, k = 2 or 3).

A slice also carries its domain in slice coordinates: an axis-aligned box by default
(``[umin, umax, vmin, vmax(, wmin, wmax)]``) or, in 2D, any convex polygon (CCW vertices).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from geometry.errors import SplineAtlasError


@dataclass(frozen=True)
class Slice:
    """An affine k-plane of R^D. origin: (D,) float64; basis: (D, k) float64, orthonormal columns.

    ``anchors``: (m, k) slice coordinates of the points that defined the slice (for marking them).
    """

    origin: np.ndarray
    basis: np.ndarray
    anchors: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    description: str = ""

    def __post_init__(self):
        o = np.asarray(self.origin, dtype=np.float64).reshape(-1)
        b = np.asarray(self.basis, dtype=np.float64)
        if b.ndim != 2 or b.shape[0] != o.shape[0] or b.shape[1] not in (2, 3):
            raise SplineAtlasError(f"a slice needs origin (D,) and basis (D, 2|3); got {o.shape} and {b.shape}.")
        if not np.allclose(b.T @ b, np.eye(b.shape[1]), atol=1e-8):
            raise SplineAtlasError("the slice basis must have orthonormal columns (use Slice.from_directions).")
        object.__setattr__(self, "origin", o)
        object.__setattr__(self, "basis", b)
        object.__setattr__(self, "anchors", np.asarray(self.anchors, dtype=np.float64).reshape(-1, b.shape[1]))

    @property
    def dim(self) -> int:
        """k: 2 or 3."""
        return self.basis.shape[1]

    @property
    def ambient_dim(self) -> int:
        return self.basis.shape[0]

    def to_input(self, u: np.ndarray) -> np.ndarray:
        """(n, k) slice coordinates -> (n, D) input points."""
        return self.origin + np.asarray(u, dtype=np.float64) @ self.basis.T

    def project(self, x: np.ndarray) -> np.ndarray:
        """(n, D) input points -> (n, k) slice coordinates of their orthogonal projections."""
        return (np.asarray(x, dtype=np.float64) - self.origin) @ self.basis

    def distance_to_plane(self, x: np.ndarray) -> np.ndarray:
        """(n,) Euclidean distance of input points from the slice's affine plane."""
        x = np.asarray(x, dtype=np.float64)
        return np.linalg.norm(x - self.to_input(self.project(x)), axis=1)

    def to_json(self) -> dict:
        return {"origin": self.origin.tolist(), "basis": self.basis.tolist(), "anchors": self.anchors.tolist(), "description": self.description}

    @classmethod
    def from_json(cls, data: dict) -> "Slice":
        k = len(data["basis"][0])
        return cls(np.array(data["origin"]), np.array(data["basis"]), np.array(data.get("anchors", [])).reshape(-1, k), data.get("description", ""))

    # -- constructors ------------------------------------------------------------------------
    @classmethod
    def input_plane(cls, dim: int) -> "Slice":
        """The input space itself, for networks with 2- or 3-dimensional inputs."""
        if dim not in (2, 3):
            raise SplineAtlasError(f"the input plane is a slice only for 2D/3D inputs; this network has {dim} inputs.")
        return cls(np.zeros(dim), np.eye(dim), description=f"input space (R^{dim})")

    @classmethod
    def from_directions(cls, origin: np.ndarray, directions: np.ndarray, anchors=None, description: str = "") -> "Slice":
        """Slice through ``origin`` spanned by the rows of ``directions`` (k x D), orthonormalised (Gram-Schmidt)."""
        d = np.asarray(directions, dtype=np.float64)
        if d.ndim != 2 or d.shape[0] > d.shape[1]:
            # QR of a tall (D < k) system would quietly return a D-dimensional basis: a 3D request on a
            # 2D-input net became a 2D slice
            raise SplineAtlasError(f"{d.shape[0]} slice directions need at least {d.shape[0]} input dimensions; this space has {d.shape[-1]}.")
        q, r = np.linalg.qr(d.T)
        if np.min(np.abs(np.diag(r))) < 1e-10 * max(1.0, np.abs(r).max()):
            raise SplineAtlasError("the slice directions are (nearly) linearly dependent; pick other points or directions.")
        q = q * np.sign(np.diag(r))  # keep each axis pointing along its direction
        origin = np.asarray(origin, dtype=np.float64)
        sl = cls(origin, q, description=description)
        if anchors is not None:
            sl = cls(origin, q, sl.project(np.asarray(anchors)), description)
        return sl

    @classmethod
    def through_points(cls, points: np.ndarray, description: str = "") -> "Slice":
        """The plane (k = len(points) - 1) through 3 (or 4) points, SplineCam-style.

        The origin is the points' centroid; the first axis points from p0 to p1.
        """
        p = np.asarray(points, dtype=np.float64)
        if p.shape[0] not in (3, 4):
            raise SplineAtlasError("a slice through points needs 3 points (plane) or 4 points (3D slice).")
        c = p.mean(axis=0)
        return cls.from_directions(c, p[1:] - p[0], anchors=p, description=description or "plane through data points")

    @classmethod
    def pca(cls, X: np.ndarray, k: int = 2, description: str = "") -> "Slice":
        """The plane through the data mean spanned by the top-k principal directions."""
        X = np.asarray(X, dtype=np.float64)
        mu = X.mean(axis=0)
        _, _, vt = np.linalg.svd(X - mu, full_matrices=False)
        return cls(mu, vt[:k].T, description=description or f"PCA plane (top {k} components)")


def box_domain(slice_: Slice, X: np.ndarray | None = None, margin: float = 0.1) -> np.ndarray:
    """A default box ``[umin, umax, vmin, vmax(, wmin, wmax)]``: the data's projection plus a margin, else [-1, 1]^k."""
    k = slice_.dim
    if X is None or len(X) == 0:
        return np.tile([-1.0, 1.0], k)
    u = slice_.project(X)
    if slice_.anchors.shape[0]:
        u = slice_.anchors if slice_.ambient_dim > k else u
    lo, hi = u.min(axis=0), u.max(axis=0)
    span = np.maximum(hi - lo, 1e-6)
    lo, hi = lo - margin * span, hi + margin * span
    return np.stack([lo, hi], axis=1).reshape(-1)
