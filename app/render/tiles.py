"""The one tile colouring of a 2D tessellation, shared by the window's 2D tab and exported figures/videos.

``tile_colours(tess, depth, mode, num_classes)`` says which polygons are drawn in which colour for the
tessellation after layers 1..depth:

* class: each tile in its predicted class; a tile that holds several classes (the decision boundary
  crosses it, or a partial-depth tile whose full-depth descendants disagree) is drawn as its exact
  class cells instead, so every point shows the class the network predicts there;
* slope: ‖A_ω‖ of the full-depth regions (only the full network has one affine map per tile);
* hash: a colour per activation pattern of layers 1..depth (:func:`pattern_hashes`);
* layer: the deepest layer that cut the tile's ancestor (:func:`layer_of_origin`);
* volume: log sqrt(det(A_ωᵀA_ω)) of each full-depth tile's output map on the slice (a generator's
  area stretch from latent tile to manifold piece, :func:`geometry.generative.volume_change`);
* density: the exact length of the deepest shown layer's bent hyperplanes per unit area, on a
  ``DENSITY_GRID`` x ``DENSITY_GRID`` grid over the tessellated window (the survey's Fig. 8; drawn as the
  grid's squares, :func:`geometry.tessellation.density.edge_density`).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from geometry.errors import SplineAtlasError

from geometry.tessellation.density import DEFAULT_GRID
from geometry.tessellation.types import LayerCodes

from ..model.state import COLOR_MODES
from . import palette

DENSITY_GRID = DEFAULT_GRID  # the density command's default too


def pattern_hashes(codes, n: int) -> np.ndarray:
    """(n,) uint32 CRC32 of every region's activation codes (a tuple of per-layer (n, k) arrays, bytes in
    layer order): the colour index of 'hash' mode in 2D and 3D and, formatted as 8 hex digits, the
    inspector's pattern hash."""
    joined = LayerCodes.of(codes).rows_bytes() if len(codes) else np.zeros((n, 1), np.uint8)
    return np.array([zlib.crc32(row.tobytes()) for row in joined], dtype=np.uint32)


def ancestor(tess, depth: int, idx) -> np.ndarray:
    """Index at ``depth`` (1-based) of the ancestors of full-depth regions ``idx``."""
    idx = np.asarray(idx, dtype=np.int64)
    for j in range(len(tess), depth, -1):
        idx = tess[j - 1].parent[idx]
    return idx


def layer_of_origin(tess, depth: int) -> np.ndarray:
    """(R,) int: for each region at ``depth``, the deepest layer (1-based) at which its ancestor was cut
    into several pieces (0 when the region is the whole domain, never cut)."""
    R = tess[depth - 1].num_regions
    origin = np.zeros(R, dtype=np.int64)
    idx = np.arange(R)
    todo = np.ones(R, dtype=bool)
    for j in range(depth, 0, -1):
        t = tess[j - 1]
        if j == 1:
            split = np.full(t.num_regions, t.num_regions > 1)
        else:
            counts = np.bincount(t.parent, minlength=tess[j - 2].num_regions)
            split = counts[t.parent] > 1
        hit = todo & split[idx]
        origin[hit] = j
        todo &= ~hit
        if j > 1:
            idx = t.parent[idx]
    return origin


@dataclass(frozen=True)
class TileColours:
    """Polygons (vertices (V, 2), offsets (R+1,)) with float RGBA (R, 4); ``overlay``: the exact class cells
    (vertices, offsets, rgba) drawn over tiles that hold several classes (their own fill is transparent);
    ``levels``: the (lo, hi) of the colour bar (slope, density) and ``colorbar_label`` what it measures."""

    vertices: np.ndarray
    offsets: np.ndarray
    rgba: np.ndarray
    overlay: tuple | None = None
    levels: tuple[float, float] | None = None
    colorbar_label: str | None = None
    colorbar_short: str | None = None  # the window's label above its bar (HTML, a few characters wide)

    def polygons(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every visible polygon as one (vertices, offsets, rgba): transparent tiles dropped, class cells added."""
        keep = self.rgba[:, 3] > 0
        cnt = np.diff(self.offsets)
        V = [self.vertices[np.repeat(keep, cnt)]]
        C = [cnt[keep]]
        rgba = [self.rgba[keep]]
        if self.overlay is not None:
            V.append(self.overlay[0])
            C.append(np.diff(self.overlay[1]))
            rgba.append(self.overlay[2])
        counts = np.concatenate(C)
        return np.concatenate(V), np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), np.concatenate(rgba)


def tile_colours(tess, depth: int, mode: str, num_classes: int, alpha: float = palette.TILE_ALPHA) -> TileColours:
    """The tiling of ``tess`` (a list of tessellations at depths 1..L) at ``depth`` drawn in ``mode``."""
    depth = min(max(int(depth), 1), len(tess))
    t, full = tess[depth - 1], tess[-1]
    if mode == "class":
        C = max(int(num_classes), int(np.max(full.classes, initial=0)) + 1, 1)
        cols = palette.class_rgba(C, alpha)
        cls = np.asarray(t.classes)
        mixed = cls < 0
        if t is full:
            mixed = mixed | np.asarray(full.class_mixed, dtype=bool)
        rgba = np.where(mixed[:, None], np.zeros((1, 4)), cols[np.clip(cls, 0, None)])
        overlay = None
        if mixed.any() and full.class_cell_vertices is not None:
            owner = ancestor(tess, depth, full.class_cell_region)
            keep = mixed[owner]
            cnt = np.diff(full.class_cell_offsets)
            overlay = (
                full.class_cell_vertices[np.repeat(keep, cnt)],
                np.concatenate([[0], np.cumsum(cnt[keep])]).astype(np.int64),
                cols[full.class_cell_class[keep]],
            )
        elif mixed.any():
            rgba[mixed] = palette.UNKNOWN
        return TileColours(t.vertices, t.offsets, rgba, overlay)
    if mode == "slope":
        return _measured(full, np.asarray(full.slope_norm, dtype=np.float64), alpha, "‖A_ω‖₂ (spectral norm of the tile's slope)", "‖A_ω‖₂")
    if mode == "density":
        return _density_squares(t, depth, alpha)
    if mode == "volume":
        from geometry.generative import volume_change

        v = np.log(np.maximum(volume_change(np.asarray(full.out_linear, dtype=np.float64)), 1e-300))
        return _measured(full, v, alpha, "log sqrt(det(AᵀA)) of the tile's map (log volume change)", "log vol")
    if mode == "hash":
        pal = palette.hash_palette()
        rgba = pal[pattern_hashes(t.codes, t.num_regions) % len(pal)].copy()
        rgba[:, 3] = min(1.0, alpha + 0.15)
        return TileColours(t.vertices, t.offsets, rgba)
    if mode == "layer":
        rgba = palette.layer_rgba(len(full.layers))[layer_of_origin(tess, depth)].copy()
        rgba[:, 3] = min(1.0, alpha + 0.15)
        return TileColours(t.vertices, t.offsets, rgba)
    raise SplineAtlasError(f"colour mode must be one of {', '.join(COLOR_MODES)}; got {mode!r}.")


def _measured(full, values: np.ndarray, alpha: float, label: str, short: str) -> TileColours:
    """The full-depth tiles coloured by a measured value on the colour map of the bar, over the finite
    values' range (tiles without a value: the unknown colour)."""
    fin = np.isfinite(values)
    if not fin.any():  # not computed (yet): no colour bar, nothing that reads as a measurement
        rgba = np.tile(np.asarray(palette.UNKNOWN, dtype=np.float64), (len(values), 1))
        return TileColours(full.vertices, full.offsets, rgba, None, None, f"{label}: not computed", short)
    lo, hi = float(values[fin].min()), float(values[fin].max())
    hi = hi if hi > lo else lo + 1e-9
    rgba = palette.colormap(palette.SLOPE_CMAP, (values - lo) / (hi - lo))
    rgba[:, 3] = min(1.0, alpha + 0.3)
    rgba[~fin] = palette.UNKNOWN
    return TileColours(full.vertices, full.offsets, rgba, None, (lo, hi), label, short)


def _density_squares(t, depth: int, alpha: float) -> TileColours:
    """Layer ``depth``'s hyperplane density as the grid's squares, coloured on the slope colour map."""
    from geometry.tessellation.density import edge_density

    ed = edge_density(t, depth - 1, DENSITY_GRID)
    u0, u1, v0, v1 = ed.u_edges[:-1], ed.u_edges[1:], ed.v_edges[:-1], ed.v_edges[1:]
    iu, iv = np.meshgrid(np.arange(DENSITY_GRID), np.arange(DENSITY_GRID), indexing="ij")
    iu, iv = iu.ravel(), iv.ravel()
    corners = np.stack([np.c_[u0[iu], v0[iv]], np.c_[u1[iu], v0[iv]], np.c_[u1[iu], v1[iv]], np.c_[u0[iu], v1[iv]]], axis=1)  # CCW squares
    values = ed.density[iu, iv]
    hi = float(values.max()) if values.max() > 0 else 1.0
    rgba = palette.colormap(palette.SLOPE_CMAP, values / hi)
    rgba[:, 3] = min(1.0, alpha + 0.3)
    offsets = np.arange(0, 4 * len(values) + 1, 4, dtype=np.int64)
    label = f"layer {depth} hyperplane length per unit area (1 / slice unit)"
    return TileColours(corners.reshape(-1, 2), offsets, rgba, None, (0.0, hi), label, f"layer {depth}<br>length/area")


__all__ = ["DENSITY_GRID", "TileColours", "ancestor", "layer_of_origin", "pattern_hashes", "tile_colours"]
