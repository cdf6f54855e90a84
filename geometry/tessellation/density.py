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
DEFAULT_GRID = 64  # cells per side: the window's density colour mode and the density command


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


def _check(tess, layer: int, grid: int) -> None:
    L = len(tess.codes)
    if not 0 <= int(layer) < L:
        raise SplineAtlasError(f"layer must be between 1 and {L} (this tessellation's depth); got {int(layer) + 1}.")
    if not 1 <= int(grid) <= MAX_GRID:
        raise SplineAtlasError(f"grid must be between 1 and {MAX_GRID} cells per side; got {grid}.")


def _grid(tess, grid: int) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = tess.domain.min(0), tess.domain.max(0)
    return np.linspace(lo[0], hi[0], grid + 1), np.linspace(lo[1], hi[1], grid + 1)


def _pieces(tess, layer: int, ue: np.ndarray, ve: np.ndarray):
    """Layer ``layer``'s edges cut at the grid lines: ``(start (P, 2), end (P, 2), iu (P,), iv (P,))``, each
    piece inside the cell ``(iu, iv)`` (every interior edge is listed once per adjacent region)."""
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
    start, end = a[s] + t0[:, None] * d[s], a[s] + t1[:, None] * d[s]
    mid = (start + end) / 2
    n = len(ue) - 1
    iu = np.clip(np.searchsorted(ue, mid[:, 0], side="right") - 1, 0, n - 1)
    iv = np.clip(np.searchsorted(ve, mid[:, 1], side="right") - 1, 0, n - 1)
    return start, end, iu, iv


def edge_density(tess, layer: int, grid: int = DEFAULT_GRID) -> EdgeDensity:
    """The exact density of layer ``layer``'s edges (0-based) on a ``grid x grid`` lattice over the domain's box."""
    _check(tess, layer, grid)
    ue, ve = _grid(tess, grid)
    start, end, iu, iv = _pieces(tess, layer, ue, ve)
    total = np.zeros((grid, grid))
    np.add.at(total, (iu, iv), 0.5 * np.linalg.norm(end - start, axis=1))  # every interior edge is listed by both of its regions
    area = (ue[1] - ue[0]) * (ve[1] - ve[0])
    return EdgeDensity(int(layer), total / area, ue, ve, float(total.sum()))


@dataclass(frozen=True)
class CrossingCounts:
    """How many of layer ``layer``'s neurons have a zero set crossing the disc of radius ``radius`` (slice
    units) around each grid point: ``counts (grid, grid)`` int64 at the points ``u_centres`` x ``v_centres``
    (the cell centres of :func:`edge_density`'s grid)."""

    layer: int
    radius: float
    counts: np.ndarray
    u_centres: np.ndarray
    v_centres: np.ndarray


def _piece_units(net, slice_, layer: int, start: np.ndarray, end: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """The neuron of layer ``layer`` whose zero set each piece lies on: the pre-activation nearest zero at
    the piece's midpoint (there it is zero; the others are generically not)."""
    import torch

    model = net.to_dtype_device(torch.float64)
    mid = slice_.to_input((start + end) / 2)
    out = np.empty(len(mid), dtype=np.int64)
    with torch.no_grad():
        for s in range(0, len(mid), chunk):
            z = model.trace(torch.as_tensor(mid[s : s + chunk], dtype=torch.float64)).preactivations[layer]
            out[s : s + chunk] = z.abs().argmin(1).numpy()
    return out


def neurons_crossing_discs(net, tess, layer: int, radius: float, grid: int = DEFAULT_GRID) -> CrossingCounts:
    """For each grid point, the number of layer ``layer``'s neurons (0-based; ReLU, leaky ReLU or abs) whose
    zero set meets the closed disc of ``radius`` around it (its part inside the domain): exact, from the layer edges
    (which are those zero sets inside the domain) and point-to-segment distances."""
    _check(tess, layer, grid)
    kind = tess.layers[layer].kind
    if kind not in ("relu", "leaky_relu", "abs"):
        raise SplineAtlasError(f"layer {layer + 1} is {kind}: crossing neurons are counted for ReLU, leaky ReLU and abs layers.")
    if not np.isfinite(radius) or radius <= 0:
        raise SplineAtlasError(f"the disc radius must be a positive number of slice units; got {radius}.")
    ue, ve = _grid(tess, grid)
    cu, cv = (ue[:-1] + ue[1:]) / 2, (ve[:-1] + ve[1:]) / 2
    start, end, iu, iv = _pieces(tess, layer, ue, ve)
    units = _piece_units(net, tess.slice, layer, start, end)
    width = int(tess.layers[layer].width)
    d = end - start
    dd = np.maximum((d * d).sum(1), 1e-300)
    reach = int(np.ceil(radius / min(ue[1] - ue[0], ve[1] - ve[0])))  # cells a disc can reach beyond its own
    keys = []
    for di in range(-reach, reach + 1):
        for dj in range(-reach, reach + 1):
            gi, gj = iu + di, iv + dj  # the grid point whose disc may meet the piece
            ok = (gi >= 0) & (gi < grid) & (gj >= 0) & (gj < grid)
            p = np.stack([cu[gi[ok]], cv[gj[ok]]], 1)
            t = np.clip(((p - start[ok]) * d[ok]).sum(1) / dd[ok], 0.0, 1.0)
            near = np.linalg.norm(start[ok] + t[:, None] * d[ok] - p, axis=1) <= radius
            keys.append(((gi[ok] * grid + gj[ok]) * width + units[ok])[near])
    pairs = np.unique(np.concatenate(keys)) if keys else np.zeros(0, np.int64)
    counts = np.bincount(pairs // width, minlength=grid * grid).reshape(grid, grid)
    return CrossingCounts(int(layer), float(radius), counts.astype(np.int64), cu, cv)


__all__ = ["DEFAULT_GRID", "CrossingCounts", "EdgeDensity", "edge_density", "neurons_crossing_discs"]
