"""The shared vertex table of a tessellation: every vertex once, polygons and polyhedra as index lists.

The engine gives each region its own copy of every vertex it touches (a vertex of the 2D arrangement is
held by ~4 regions, a 3D vertex by ~8 cells), because regions are cut independently and batched. Views
and exports want the other form: each point once, loops of indices into it, and the graph structure
that then falls out -- each edge once with the layer that made it and the two regions it separates,
each 3D face with the cell across it, the region adjacency graph.

Copies of a vertex are the same point up to rounding (two regions compute a shared crossing from the
same edge, possibly from opposite ends), so :func:`weld` merges points closer than the tessellation's
own tolerance, transitively (a k-d tree's pairs, then connected components), and keeps the first copy
of each as its coordinates: every table point is a vertex the engine computed, bit for bit.

A convex piecewise-linear arrangement has no T-junctions (a bent hyperplane that crosses a shared edge
cuts both regions there), so every interior edge is shared by exactly two regions and every interior
face by exactly two cells; ``open_edges`` / ``open_faces`` count the ones that are not (only degenerate,
zero-measure configurations make them), so a caller can tell a clean table from a degenerate one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from geometry.tessellation.loops import next_in_loop


WELD_FRACTION = 1e-2


def weld_radius(tolerance: float) -> float:
    """How close two vertex copies must be to count as one point: a hundredth of the tessellation's
    tolerance. Copies differ by rounding only (on 2-256x6-1 all but 4 of 650k copies by < 1e-12, the
    farthest by 7e-10 at a tolerance of 2.8e-9), while a full tolerance would weld the corners of genuine
    regions smaller than it (that net has a 4e-9 triangle)."""
    return max(float(tolerance) * WELD_FRACTION, 1e-15)


def weld(points: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Merge points closer than ``radius`` (transitively): ``(unique (P, k), index (n,))`` with
    ``points ~ unique[index]``. Unique points are numbered in order of first appearance and are each one's
    first copy, unchanged.

    Most copies are bitwise equal (two thirds on the digits CNN's slice), so equal points are grouped by
    one sort first and only the distinct ones go through the k-d tree."""
    points = np.asarray(points, dtype=np.float64)
    n = points.shape[0]
    if n == 0:
        return points.reshape(0, points.shape[1] if points.ndim == 2 else 0), np.zeros(0, np.int64)
    order = np.lexsort(points.T[::-1])  # stable: each run of equal points starts with its first copy
    s = points[order]
    new = np.ones(n, dtype=bool)
    new[1:] = np.any(s[1:] != s[:-1], axis=1)
    first = order[new]  # (G,) first copy of each exactly equal group
    exact = np.empty(n, dtype=np.int64)
    exact[order] = np.cumsum(new) - 1
    G = first.shape[0]
    pairs = cKDTree(points[first], balanced_tree=False, compact_nodes=False).query_pairs(float(radius), output_type="ndarray")
    if pairs.shape[0]:
        graph = coo_matrix((np.ones(pairs.shape[0], np.int8), (pairs[:, 0], pairs[:, 1])), shape=(G, G))
        count, label = connected_components(graph, directed=False)
    else:
        count, label = G, np.arange(G, dtype=np.int64)
    head = np.full(count, n, dtype=np.int64)
    np.minimum.at(head, label, first)  # each welded point's first copy
    rank = np.empty(count, dtype=np.int64)
    rank[np.argsort(head, kind="stable")] = np.arange(count)
    return points[np.sort(head)], rank[label][exact]


def _sorted_unique(x: np.ndarray) -> np.ndarray:
    """The distinct values of int64 ``x``, sorted (numpy's hash-based ``unique`` is several times slower here)."""
    x = np.sort(x)
    keep = np.ones(x.shape[0], dtype=bool)
    keep[1:] = x[1:] != x[:-1]
    return x[keep]


def _groups(key: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Items grouped by equal rows of ``key`` (n, m): ``(order, begin, count)``; group g is
    ``order[begin[g]:begin[g] + count[g]]``."""
    if key.shape[0] == 0:
        z = np.zeros(0, np.int64)
        return z, z, z
    order = np.argsort(key[:, 0], kind="stable") if key.shape[1] == 1 else np.lexsort(key.T[::-1])
    k = key[order]
    start = np.ones(order.shape[0], dtype=bool)
    start[1:] = np.any(k[1:] != k[:-1], axis=1)
    begin = np.flatnonzero(start)
    return order, begin, np.diff(np.append(begin, order.shape[0]))


@dataclass(frozen=True, eq=False)
class PolygonMesh:
    """A 2D tessellation's regions on one vertex table.

    points: (P, 2) float64, each vertex once; loops: (V,) int64 into ``points`` laid out as the
    tessellation's ``vertices`` (region r is ``loops[offsets[r]:offsets[r+1]]``, counter-clockwise);
    edges: (E, 2) int64, each edge once, oriented as in ``edge_regions[:, 0]``'s loop; edge_layer: (E,)
    int16 0-based layer that made it (-1: the domain); edge_regions: (E, 2) int64 the region on its left and
    the one on its right (-1: outside the domain, or an open edge).
    """

    points: np.ndarray
    loops: np.ndarray
    offsets: np.ndarray
    edges: np.ndarray
    edge_layer: np.ndarray
    edge_regions: np.ndarray

    @property
    def segments(self) -> np.ndarray:
        """(E, 2, 2) every edge once as its two endpoints."""
        return self.points[self.edges]

    @property
    def adjacency(self) -> np.ndarray:
        """(A, 2) int64 pairs of regions sharing an edge (lower index first), each pair once."""
        both = self.edge_regions[(self.edge_regions >= 0).all(axis=1)]
        return np.unique(np.sort(both, axis=1), axis=0) if both.shape[0] else np.zeros((0, 2), np.int64)

    @property
    def open_edges(self) -> int:
        """Interior edges (made by a layer) with one region only: 0 for a clean arrangement."""
        return int(np.count_nonzero((self.edge_regions[:, 1] < 0) & (self.edge_layer >= 0)))


def polygon_mesh(vertices: np.ndarray, offsets: np.ndarray, edge_layer: np.ndarray, radius: float) -> PolygonMesh:
    """The shared table of ragged CCW polygons (``vertices (V, 2)``, ``offsets (R+1,)``, per-vertex
    ``edge_layer`` of the edge to the next vertex), copies closer than ``radius`` merged."""
    offsets = np.asarray(offsets, dtype=np.int64)
    points, loops = weld(vertices, radius)
    a, b = loops, loops[next_in_loop(offsets)]
    region = np.repeat(np.arange(offsets.shape[0] - 1, dtype=np.int64), np.diff(offsets))
    real = a != b  # an edge shorter than the tolerance collapsed into a point
    a, b, region, layer = a[real], b[real], region[real], np.asarray(edge_layer, dtype=np.int16)[real]
    order, begin, count = _groups((np.minimum(a, b) * max(points.shape[0], 1) + np.maximum(a, b))[:, None])
    first = order[begin]
    other = np.full(first.shape[0], -1, dtype=np.int64)
    two = count >= 2
    other[two] = region[order[begin[two] + 1]]
    edges = np.stack([a[first], b[first]], axis=1)
    return PolygonMesh(points, loops, offsets, edges, layer[first], np.stack([region[first], other], axis=1))


@dataclass(frozen=True, eq=False)
class CellMesh:
    """A 3D tessellation's cells on one vertex table.

    points: (P, 3) float64, each vertex once; index: (V,) int64 the point of each of the tessellation's
    vertex copies; face_loops: (I,) int64 the tessellation's face loops (``face_offsets``) into ``points``;
    face_cell: (F,) the cell owning each face; face_neighbour: (F,) the cell on the other side (-1: the
    domain box, or an open face); edges: (E, 2) int64 each edge once.
    """

    points: np.ndarray
    index: np.ndarray
    face_loops: np.ndarray
    face_offsets: np.ndarray
    face_cell: np.ndarray
    face_neighbour: np.ndarray
    face_layer: np.ndarray
    edges: np.ndarray

    @property
    def adjacency(self) -> np.ndarray:
        """(A, 2) int64 pairs of cells sharing a face (lower index first), each pair once."""
        ok = self.face_neighbour >= 0
        pairs = np.stack([self.face_cell[ok], self.face_neighbour[ok]], axis=1)
        return np.unique(np.sort(pairs, axis=1), axis=0) if pairs.shape[0] else np.zeros((0, 2), np.int64)

    @property
    def open_faces(self) -> int:
        """Interior faces (made by a layer) with no cell across: 0 for a clean arrangement."""
        return int(np.count_nonzero((self.face_neighbour < 0) & (self.face_layer >= 0)))


def cell_mesh(tess) -> CellMesh:
    """The shared table of a :class:`~geometry.tessellation.Tessellation3D`, copies closer than its tolerance merged.

    Two cells share a face when its number of distinct points, its three lowest point numbers and its
    highest agree: two faces on different planes share only points on the planes' common line, and a
    convex face has at most two vertices on a line unless it is degenerate (collinear vertices)."""
    points, index = weld(tess.vertices, weld_radius(tess.tolerance))
    fo = np.asarray(tess.face_offsets, dtype=np.int64)
    loops = index[np.asarray(tess.face_indices, dtype=np.int64)]
    F = fo.shape[0] - 1
    face_cell = np.repeat(np.arange(tess.num_regions, dtype=np.int64), np.diff(tess.cell_face_offsets))
    size = np.diff(fo)
    face_of = np.repeat(np.arange(F, dtype=np.int64), size)
    nxt = loops[next_in_loop(fo)]
    # edges: each undirected (lo, hi) once
    real = loops != nxt
    lo, hi = np.minimum(loops, nxt)[real], np.maximum(loops, nxt)[real]
    P = max(points.shape[0], 1)
    pair = _sorted_unique(lo * P + hi)  # one int64 per edge: a 1D sort, not np.unique(axis=0)'s row sort
    edges = np.stack([pair // P, pair % P], axis=1)
    # faces: the count, three lowest and the highest of each loop's distinct points
    item = _sorted_unique(face_of * P + loops)  # sorted by face, then point; repeated points once
    sf, sl = item // P, item % P
    distinct = np.bincount(sf, minlength=F)
    start = np.concatenate([[0], np.cumsum(distinct)[:-1]]).astype(np.int64)
    flat = distinct >= 3
    s0, top = start[flat], start[flat] + distinct[flat] - 1
    key = np.stack([distinct[flat], sl[s0], sl[s0 + 1], sl[s0 + 2], sl[top]], axis=1)
    if P < 2**31:  # two columns of point pairs sort faster than five
        key = np.stack([key[:, 1] * P + key[:, 2], key[:, 3] * P + key[:, 4], key[:, 0]], axis=1)
    faces = np.flatnonzero(flat)
    order, begin, count = _groups(key)
    two = begin[count == 2]
    f0, f1 = faces[order[two]], faces[order[two + 1]]
    neighbour = np.full(F, -1, dtype=np.int64)
    neighbour[f0], neighbour[f1] = face_cell[f1], face_cell[f0]
    layer = np.asarray(tess.face_layer, dtype=np.int16)
    return CellMesh(points, index, loops, fo, face_cell, neighbour, layer, edges)
