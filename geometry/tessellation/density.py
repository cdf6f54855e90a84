"""Hyperplane density maps (the survey's Fig. 8): how densely layer l's bent hyperplanes cover a 2D slice.

From an exact tessellation, the layer-l edges (the pieces of layer l's neurons' zero sets) are split at
the lines of a regular grid and every piece's length is added to the grid cell holding it, so the map
is the exact total length of layer-l edges per unit area in each cell, in slice units (1 / length).
Interior edges appear once in each of their two regions, so each piece counts half.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geometry.errors import SplineAtlasError

MAX_GRID = 4096


@dataclass(frozen=True)
class EdgeDensity:
    """Layer ``layer`` (0-based)'s edge length per unit area on a ``grid x grid`` lattice of the slice.

    density: (grid, grid) float64, ``density[i, j]`` for the cell ``u_edges[i]..u_edges[i+1]`` x
    ``v_edges[j]..v_edges[j+1]`` (length per unit area, 1 / slice units); u_edges, v_edges: (grid+1,);
    total_length: the layer's edge length inside the domain.
    """

    layer: int
    density: np.ndarray
    u_edges: np.ndarray
    v_edges: np.ndarray
    total_length: float

    @property
    def cell_area(self) -> float:
        return float((self.u_edges[1] - self.u_edges[0]) * (self.v_edges[1] - self.v_edges[0]))

    def to_npz_dict(self) -> dict:
        return {"layer": np.int64(self.layer), "density": self.density, "u_edges": self.u_edges, "v_edges": self.v_edges, "total_length": self.total_length}


def _grid_crossings(a: np.ndarray, d: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Parameters t in (0, 1) where segments ``a + t d`` (one coordinate) cross the grid lines ``edges``,
    as ``(segment index, t)`` flat arrays."""
    step = edges[1] - edges[0]
    lo = np.floor((np.minimum(a, a + d) - edges[0]) / step).astype(np.int64) + 1
    hi = np.ceil((np.maximum(a, a + d) - edges[0]) / step).astype(np.int64) - 1
    n = np.clip(hi - lo + 1, 0, None)
    seg = np.repeat(np.arange(len(a)), n)
    k = lo[seg] + (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (edges[0] + k * step - a[seg]) / d[seg]
    ok = (t > 0) & (t < 1)
    return seg[ok], t[ok]


def edge_density(tess, layer: int, grid: int = 64) -> EdgeDensity:
    """The exact density of layer ``layer``'s edges (0-based) on a ``grid x grid`` lattice over the domain's box."""
    L = len(tess.codes)
    if not 0 <= int(layer) < L:
        raise SplineAtlasError(f"layer must be between 1 and {L} (this tessellation's depth); got {int(layer) + 1}.")
    if not 1 <= int(grid) <= MAX_GRID:
        raise SplineAtlasError(f"grid must be between 1 and {MAX_GRID} cells per side; got {grid}.")
    lo, hi = tess.domain.min(0), tess.domain.max(0)
    ue, ve = np.linspace(lo[0], hi[0], grid + 1), np.linspace(lo[1], hi[1], grid + 1)
    seg = tess.edges(int(layer))
    a, d = seg[:, 0], seg[:, 1] - seg[:, 0]
    su, tu = _grid_crossings(a[:, 0], d[:, 0], ue)
    sv, tv = _grid_crossings(a[:, 1], d[:, 1], ve)
    E = len(seg)
    owner = np.concatenate([np.arange(E), np.arange(E), su, sv])
    t = np.concatenate([np.zeros(E), np.ones(E), tu, tv])
    order = np.lexsort((t, owner))
    owner, t = owner[order], t[order]
    same = owner[1:] == owner[:-1]  # consecutive cut points of one segment bound one piece
    s, t0, t1 = owner[:-1][same], t[:-1][same], t[1:][same]
    length = (t1 - t0) * np.linalg.norm(d[s], axis=1)
    mid = a[s] + ((t0 + t1) / 2)[:, None] * d[s]
    iu = np.clip(np.searchsorted(ue, mid[:, 0], side="right") - 1, 0, grid - 1)
    iv = np.clip(np.searchsorted(ve, mid[:, 1], side="right") - 1, 0, grid - 1)
    total = np.zeros((grid, grid))
    np.add.at(total, (iu, iv), 0.5 * length)  # every interior edge is listed by both of its regions
    area = (ue[1] - ue[0]) * (ve[1] - ve[0])
    return EdgeDensity(int(layer), total / area, ue, ve, float(total.sum()))


__all__ = ["EdgeDensity", "edge_density"]
