"""Generative networks' spline manifolds: a ReLU generator G: R^2 -> R^D maps each latent tile ω affinely,
G(z) = A_ω z + b_ω, onto one flat piece of its output manifold, stretching areas by the tile's volume
change ``sqrt(det(A_ωᵀ A_ω))`` (the survey's section on deep generative networks).

From the exact latent tessellation this gives, per tile, the volume change and the tile's image (its
polygon mapped by its own affine map: exact, not sampled), and three samplers of the latent box:

* ``prior``: uniform on the box (the latent distribution the tiles are drawn from here);
* ``magnet``: uniform on the learned manifold (MaGNET, Humayun et al. 2022): a tile is chosen with
  probability ∝ its output area (latent area × volume change), then a point uniformly inside it;
* ``polarity``: latent density ∝ volume change^ρ (polarity sampling, Humayun et al. 2022): tile
  probability ∝ latent area × volume change^ρ (ρ = 1 is MaGNET, ρ = 0 the prior, ρ < 0 favours the
  manifold's low-volume, high-density parts).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geometry.errors import SplineAtlasError
from geometry.tessellation.loops import next_in_loop

SAMPLERS = ("prior", "magnet", "polarity")


@dataclass(frozen=True)
class ManifoldTiles:
    """The latent tiles of a generator and their images.

    tess: the Tessellation2D of the latent box; A: (R, D, 2) and b: (R, D) the affine map of each tile;
    volume: (R,) sqrt(det(AᵀA)), the area stretch of each tile (0 where the map is degenerate);
    latent_area: (R,) the tiles' areas in latent units².
    """

    tess: object
    A: np.ndarray
    b: np.ndarray
    volume: np.ndarray
    latent_area: np.ndarray

    @property
    def output_area(self) -> np.ndarray:
        """(R,) area of each tile's image on the manifold (output units²)."""
        return self.latent_area * self.volume

    def image_vertices(self) -> np.ndarray:
        """(V, D) every tile's polygon mapped by its own affine map (offsets: ``tess.offsets``)."""
        owner = np.repeat(np.arange(self.tess.num_regions), np.diff(self.tess.offsets))
        return np.einsum("vdk,vk->vd", self.A[owner], self.tess.vertices) + self.b[owner]


def volume_change(A: np.ndarray) -> np.ndarray:
    """(R,) sqrt(det(AᵀA)) of (R, D, k) Jacobians: the k-dimensional volume stretch (the product of A's
    singular values)."""
    s = np.linalg.svd(A, compute_uv=False)
    return np.prod(s, axis=1)


def manifold_tiles(net, box=(-1.0, 1.0, -1.0, 1.0), max_regions: int | None = None, cancel=None) -> ManifoldTiles:
    """The exact latent tessellation of ``box`` of a generator ``net`` with 2 latent inputs and its tiles' maps."""
    from geometry.slices import Slice
    from geometry.tessellation import tessellate

    if net.input_dim != 2:
        raise SplineAtlasError(f"the generator tools take a 2D latent space; this network has {net.input_dim} inputs.")
    if net.output_dim < 2:
        raise SplineAtlasError(f"a generator maps its latent plane into R^D with D >= 2; this network has {net.output_dim} output.")
    return tiles_of(tessellate(net, Slice.input_plane(2), np.asarray(box, dtype=np.float64), max_regions=max_regions, cancel=cancel))


def tiles_of(tess) -> ManifoldTiles:
    """The manifold tiles of a full-depth Tessellation2D of a latent slice (maps w.r.t. slice coordinates:
    the volume change is the input space's when the slice's basis is orthonormal)."""
    A = np.asarray(tess.out_linear, dtype=np.float64)
    return ManifoldTiles(tess, A, np.asarray(tess.out_offset, dtype=np.float64), volume_change(A), tess.areas())


def latent_of(tiles: ManifoldTiles, x, tol: float = 1e-6) -> tuple[np.ndarray, int] | None:
    """The latent point (2,) and tile of a point ``x`` (D,) on the manifold: the tile whose image holds it
    (its map's least-squares preimage lies in the tile and maps back onto x); None when none does."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    pinv = np.linalg.pinv(tiles.A)  # (R, 2, D)
    Z = np.einsum("rkd,rd->rk", pinv, x[None] - tiles.b)
    residual = np.linalg.norm(np.einsum("rdk,rk->rd", tiles.A, Z) + tiles.b - x[None], axis=1)
    t = tiles.tess
    inside = np.ones(t.num_regions, dtype=bool)
    owner = np.repeat(np.arange(t.num_regions), np.diff(t.offsets))
    V = t.vertices
    nxt = next_in_loop(t.offsets)
    e = V[nxt] - V
    w = Z[owner] - V
    cross = e[:, 0] * w[:, 1] - e[:, 1] * w[:, 0]  # counter-clockwise loops: >= 0 inside
    span = max(float(np.ptp(V, axis=0).max()), 1e-300)
    np.logical_and.at(inside, owner, cross >= -tol * span * np.linalg.norm(e, axis=1))
    scale = max(1.0, float(np.abs(x).max()))
    ok = inside & (residual <= tol * scale * 10)
    if not ok.any():
        return None
    r = int(np.flatnonzero(ok)[np.argmin(residual[ok])])
    return Z[r], r


def _points_in_tiles(tiles: ManifoldTiles, which: np.ndarray, rng) -> np.ndarray:
    """One point uniformly inside each tile of ``which``: a fan triangle chosen by area, then a uniform
    point in it (the tiles are convex)."""
    t = tiles.tess
    V, off = t.vertices, t.offsets
    out = np.empty((len(which), 2))
    for r in np.unique(which):
        idx = np.nonzero(which == r)[0]
        P = V[off[r] : off[r + 1]]
        a, b, c = P[0], P[1:-1], P[2:]
        cross = (b[:, 0] - a[0]) * (c[:, 1] - a[1]) - (b[:, 1] - a[1]) * (c[:, 0] - a[0])
        w = np.abs(cross) / np.abs(cross).sum()
        tri = rng.choice(len(w), size=len(idx), p=w)
        s, q = rng.random(len(idx)), rng.random(len(idx))
        flip = s + q > 1
        s[flip], q[flip] = 1 - s[flip], 1 - q[flip]
        out[idx] = a + s[:, None] * (b[tri] - a) + q[:, None] * (c[tri] - a)
    return out


def sample_latent(tiles: ManifoldTiles, n: int, sampler: str = "magnet", rho: float = 1.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` latent points ``(n, 2)`` and their tiles ``(n,)`` drawn by ``sampler`` (see the module docstring)."""
    if sampler not in SAMPLERS:
        raise SplineAtlasError(f"sampler must be one of {', '.join(SAMPLERS)}; got {sampler!r}.")
    if not 1 <= int(n) <= 10_000_000:
        raise SplineAtlasError(f"the number of samples must be between 1 and 10,000,000; got {n}.")
    if not np.isfinite(rho):
        raise SplineAtlasError(f"rho must be a finite number; got {rho}.")
    rng = np.random.default_rng(seed)
    w = _tile_weights(tiles, sampler, rho)
    if not np.isfinite(w).all() or w.sum() <= 0:
        raise SplineAtlasError("no tile has a positive weight for this sampler (a degenerate generator, or rho too large).")
    which = rng.choice(len(w), size=int(n), p=w / w.sum())
    return _points_in_tiles(tiles, which, rng), which


def _tile_weights(tiles: ManifoldTiles, sampler: str, rho: float) -> np.ndarray:
    """(R,) each tile's unnormalised probability under ``sampler``: its latent area (prior), times its
    volume change (MaGNET: its output area) or the volume change to the power ρ (polarity)."""
    if sampler == "prior":
        return tiles.latent_area
    power = 1.0 if sampler == "magnet" else float(rho)
    with np.errstate(divide="ignore"):
        return tiles.latent_area * np.where(tiles.volume > 0, tiles.volume**power, 0.0)


def generate(tiles: ManifoldTiles, Z: np.ndarray, which: np.ndarray) -> np.ndarray:
    """Outputs ``(n, D)`` of latent points ``Z`` inside tiles ``which``: each through its tile's exact affine map."""
    return np.einsum("ndk,nk->nd", tiles.A[which], Z) + tiles.b[which]


def latent_grid(window, rows: int, cols: int) -> np.ndarray:
    """(rows, cols, 2) cell centres of a rows x cols grid over the latent ``window`` (z1min, z1max, z2min,
    z2max): z1 grows along a row, z2 from the bottom row up (row 0 is the top, as a picture is read)."""
    if not (1 <= int(rows) <= 64 and 1 <= int(cols) <= 64):
        raise SplineAtlasError(f"an image grid has 1 to 64 rows and columns; got {rows} x {cols}.")
    z0, z1, w0, w1 = (float(v) for v in window)
    u = z0 + (np.arange(cols) + 0.5) / cols * (z1 - z0)
    v = w1 - (np.arange(rows) + 0.5) / rows * (w1 - w0)
    return np.stack(np.meshgrid(u, v, indexing="xy"), axis=-1)


def generate_grid(net, window, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """The generator's outputs on :func:`latent_grid`: latent points (rows, cols, 2) and outputs
    (rows, cols, D), by the network's own forward pass (float64)."""
    import torch

    Z = latent_grid(window, rows, cols)
    p = next(net.parameters(), None)
    dtype = p.dtype if p is not None else torch.float32
    with torch.no_grad():
        X = net(torch.as_tensor(Z.reshape(-1, 2), dtype=dtype)).double().numpy()
    return Z, X.reshape(rows, cols, -1)


def output_density(tiles: ManifoldTiles, which: np.ndarray, sampler: str, rho: float = 1.0) -> np.ndarray:
    """(n,) the density on the manifold (per output unit²) of the distribution ``sampler`` draws from, at
    samples in tiles ``which``: latent density / volume change (exact per tile)."""
    w = _tile_weights(tiles, sampler, rho)
    with np.errstate(divide="ignore", invalid="ignore"):
        latent = np.where(tiles.latent_area > 0, w / w.sum() / tiles.latent_area, 0.0)  # per latent unit²
        return (latent / tiles.volume)[which]


__all__ = [
    "SAMPLERS",
    "ManifoldTiles",
    "generate",
    "generate_grid",
    "latent_grid",
    "latent_of",
    "manifold_tiles",
    "output_density",
    "sample_latent",
    "tiles_of",
    "volume_change",
]
