"""Render meshes from an exact 3D tessellation (:class:`~geometry.tessellation.Tessellation3D`), Qt-free.

A 3D view draws three things, all built here as plain numpy arrays so they can be tested and
benchmarked without a screen (the vispy view only uploads them):

* the cells' faces, fan-triangulated (every face of a convex cell is a convex polygon) (coloured by
  the viewer, per face or cell), optionally
  filtered to the faces of one layer or to faces near the decision boundary, and optionally
  *exploded* (each cell translated away from the domain centre so the cells separate);
* the exact decision boundary: the per-cell convex polygons welded into one triangle mesh, oriented
  so that normals point from the lower class index ``c0`` to ``c1`` (towards ``f_c1 > f_c0``), with
  area-weighted vertex normals;
* topology checks: per cell Euler characteristic ``V - E + F`` (2 for a convex polyhedron) and
  closed, consistently oriented surfaces (every directed edge's reverse appears exactly once).

Face loops index the tessellation's GLOBAL vertex array; every vertex is owned by one cell
(``vertex_offsets``), so per-cell topology needs no welding. Between cells, the tessellation's shared
vertex table (:mod:`geometry.tessellation.vertex_table`) says which copies are one point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geometry.tessellation.loops import next_in_loop
from geometry.tessellation.types import ragged_ranges
from geometry.tessellation.vertex_table import weld, weld_radius


# -- topology ----------------------------------------------------------------------------------------
def face_cells(tess) -> np.ndarray:
    """(F,) int64 the cell that owns each face."""
    return np.repeat(np.arange(tess.num_regions, dtype=np.int64), np.diff(tess.cell_face_offsets))


def vertex_cells(tess) -> np.ndarray:
    """(V,) int64 the cell that owns each vertex."""
    return np.repeat(np.arange(tess.num_regions, dtype=np.int64), np.diff(tess.vertex_offsets))


def _face_edges(face_indices: np.ndarray, face_offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Directed edges of every face loop: (a (I,), b (I,), face (I,)) with b the next vertex after a."""
    nf = np.diff(face_offsets)
    return face_indices, face_indices[next_in_loop(face_offsets)], np.repeat(np.arange(nf.shape[0]), nf)


def triangulate_faces(face_indices: np.ndarray, face_offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fan-triangulate convex face loops (vectorised).

    face_indices: (I,) vertex indices; face_offsets: (F + 1,). Returns ``triangles (T, 3) int64`` with
    ``T = sum(max(n_f - 2, 0))`` (same orientation as the loops) and ``tri_face (T,) int64``.
    """
    fo = np.asarray(face_offsets, dtype=np.int64)
    fi = np.asarray(face_indices, dtype=np.int64)
    ntri = np.maximum(np.diff(fo) - 2, 0)
    tri_face = np.repeat(np.arange(ntri.shape[0], dtype=np.int64), ntri)
    k = np.arange(tri_face.shape[0]) - np.repeat(np.cumsum(ntri) - ntri, ntri)
    base = fo[:-1][tri_face]
    tris = np.stack([fi[base], fi[base + k + 1], fi[base + k + 2]], axis=1)
    return tris, tri_face


def cell_euler_characteristic(tess) -> np.ndarray:
    """(R,) int64 ``V - E + F`` of every cell's face complex (2 for each convex polyhedron).

    V: distinct vertex indices the cell's faces use; E: distinct undirected edges; F: faces.
    """
    R = tess.num_regions
    a, b, _ = _face_edges(tess.face_indices, tess.face_offsets)
    vcell = vertex_cells(tess)
    used = np.unique(tess.face_indices)
    V = np.bincount(vcell[used], minlength=R)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    n = max(int(tess.vertices.shape[0]), 1)
    und = np.unique(lo * n + hi)
    E = np.bincount(vcell[und // n], minlength=R)
    F = np.diff(tess.cell_face_offsets)
    return (V - E + F).astype(np.int64)


def cell_watertight(tess) -> np.ndarray:
    """(R,) bool: the cell's faces form a closed, consistently oriented surface.

    Every directed edge (a, b) occurs exactly once and its reverse (b, a) occurs exactly once, and no
    face has fewer than 3 vertices or uses a vertex owned by another cell.
    """
    R = tess.num_regions
    a, b, face = _face_edges(tess.face_indices, tess.face_offsets)
    fcell = face_cells(tess)
    vcell = vertex_cells(tess)
    n = max(int(tess.vertices.shape[0]), 1)
    ok = np.ones(R, dtype=bool)
    ecell = fcell[face]
    # foreign vertices and degenerate faces
    bad = (vcell[a] != ecell) | (a == b)
    ok[ecell[bad]] = False
    small = np.diff(tess.face_offsets) < 3
    ok[fcell[small]] = False
    key = a * n + b
    uniq, counts = np.unique(key, return_counts=True)
    dup = uniq[counts > 1]
    ok[vcell[dup // n]] = False
    rev = b * n + a
    missing = ~np.isin(rev, uniq)
    ok[ecell[missing]] = False
    return ok


def triangle_mesh_euler(tess) -> np.ndarray:
    """(R,) int64 ``V - E + F`` of each cell's fan-triangulated surface (the mesh actually rendered)."""
    R = tess.num_regions
    tris, tri_face = triangulate_faces(tess.face_indices, tess.face_offsets)
    vcell = vertex_cells(tess)
    n = max(int(tess.vertices.shape[0]), 1)
    used = np.unique(tris)
    V = np.bincount(vcell[used], minlength=R)
    e = np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]])
    und = np.unique(e.min(1) * n + e.max(1))
    E = np.bincount(vcell[und // n], minlength=R)
    F = np.bincount(vcell[tris[:, 0]], minlength=R)
    return (V - E + F).astype(np.int64)


# -- filters -----------------------------------------------------------------------------------------
def layer_face_mask(tess, layer: int | None, include_domain: bool = False) -> np.ndarray:
    """(F,) bool: faces created by ``layer`` (0-based; None = all faces), plus the domain box's faces if asked."""
    fl = np.asarray(tess.face_layer)
    if layer is None:
        return np.ones(fl.shape[0], dtype=bool) if include_domain else fl >= 0
    return (fl == int(layer)) | ((fl == -1) & include_domain)


def face_centroids(tess) -> np.ndarray:
    """(F, 3) vertex means of the face loops."""
    fo = tess.face_offsets
    nf = np.diff(fo)
    s = np.add.reduceat(tess.vertices[tess.face_indices], fo[:-1], axis=0) if nf.shape[0] else np.zeros((0, 3))
    return s / np.maximum(nf, 1)[:, None]


def points_to_triangles_distance(P: np.ndarray, T: np.ndarray) -> np.ndarray:
    """(n,) exact Euclidean distance from points ``P (n, 3)`` to triangles ``T (n, 3, 3)`` (pairwise rows).

    Ericson's closest-point-on-triangle regions, vectorised (degenerate triangles handled as segments).
    """
    a, b, c = T[:, 0], T[:, 1], T[:, 2]
    ab, ac, ap = b - a, c - a, P - a

    def dot(x, y):
        return np.einsum("ij,ij->i", x, y)

    d1, d2 = dot(ab, ap), dot(ac, ap)
    bp = P - b
    d3, d4 = dot(ab, bp), dot(ac, bp)
    cp = P - c
    d5, d6 = dot(ab, cp), dot(ac, cp)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    denom = va + vb + vc
    with np.errstate(divide="ignore", invalid="ignore"):
        v = vb / denom
        w = vc / denom
    q = a + v[:, None] * ab + w[:, None] * ac  # interior projection

    # edge and vertex regions (later assignments take precedence in Ericson's order)
    def seg(p0, p1):
        d = p1 - p0
        t = np.clip(dot(P - p0, d) / np.maximum(dot(d, d), 1e-300), 0.0, 1.0)
        return p0 + t[:, None] * d

    inside = (va >= 0) & (vb >= 0) & (vc >= 0) & (denom > 0)
    best = np.where(inside[:, None], q, np.nan)
    dist_in = np.linalg.norm(P - best, axis=1)
    cand = [seg(a, b), seg(b, c), seg(c, a)]
    dist_edges = np.min(np.stack([np.linalg.norm(P - x, axis=1) for x in cand]), axis=0)
    return np.where(inside, np.minimum(dist_in, dist_edges), dist_edges)


def boundary_triangles(tess) -> tuple[np.ndarray, np.ndarray]:
    """Fan triangles of the decision-boundary polygons: ``(B_T, 3, 3)`` float64 and their polygon index (B_T,)."""
    tris, poly = triangulate_faces(np.arange(tess.boundary_vertices.shape[0]), tess.boundary_offsets)
    return tess.boundary_vertices[tris], poly


def sample_triangles(T: np.ndarray, h: float) -> tuple[np.ndarray, np.ndarray]:
    """Points on triangles ``T (n, 3, 3)`` such that every point of every triangle lies within ``h`` of one.

    A barycentric grid with ``k = ceil(longest edge / h)`` steps per triangle. Returns (points (m, 3), owner (m,)).
    """
    e = np.stack([T[:, 1] - T[:, 0], T[:, 2] - T[:, 1], T[:, 0] - T[:, 2]], axis=1)
    k = np.maximum(np.ceil(np.linalg.norm(e, axis=2).max(1) / max(h, 1e-300)), 1).astype(np.int64)
    pts, own = [], []
    for kk in np.unique(k):
        idx = np.flatnonzero(k == kk)
        i, j = np.meshgrid(np.arange(kk + 1), np.arange(kk + 1), indexing="ij")
        keep = (i + j) <= kk
        a, b = i[keep] / kk, j[keep] / kk  # (q,)
        P = T[idx, 0][:, None] + a[None, :, None] * (T[idx, 1] - T[idx, 0])[:, None] + b[None, :, None] * (T[idx, 2] - T[idx, 0])[:, None]
        pts.append(P.reshape(-1, 3))
        own.append(np.repeat(idx, a.shape[0]))
    return np.concatenate(pts), np.concatenate(own)


def near_boundary_face_mask(tess, distance: float, crossed_cells: np.ndarray | None = None) -> np.ndarray:
    """(F,) bool: faces near the exact decision boundary.

    A face is near when its cell is crossed by the boundary (``crossed_cells``: (R,) bool; default at
    full depth: the cells listed in ``boundary_region``) or when its centroid lies within ``distance``
    (slice units) of the boundary surface (exact point-to-triangle distance; KD-tree candidates).
    No boundary: no face is near.
    """
    F = tess.face_offsets.shape[0] - 1
    mask = np.zeros(F, dtype=bool)
    if tess.boundary_vertices.shape[0] == 0:
        return mask
    fc = face_cells(tess)
    if crossed_cells is None and tess.full_depth and len(tess.boundary_region):
        crossed_cells = np.zeros(tess.num_regions, dtype=bool)
        crossed_cells[np.asarray(tess.boundary_region, dtype=np.int64)] = True
    if crossed_cells is not None:
        mask |= np.asarray(crossed_cells, dtype=bool)[fc]
    if distance > 0 and F:
        from scipy.spatial import cKDTree

        T, _ = boundary_triangles(tess)
        if T.shape[0] == 0:
            return mask
        todo = np.flatnonzero(~mask)
        C = face_centroids(tess)[todo]
        # samples of the surface, every surface point within h of one: exact <= sampled <= exact + h
        span = float(np.linalg.norm(np.ptp(T.reshape(-1, 3), axis=0))) + 1e-300
        h = max(float(distance) / 2, span / 400)
        S, owner = sample_triangles(T, h)
        tree = cKDTree(S)
        approx, _ = tree.query(C)
        near = approx <= distance
        unsure = np.flatnonzero(~near & (approx <= distance + h))
        if unsure.size:  # exact distances to the triangles sampled nearby
            lists = tree.query_ball_point(C[unsure], r=float(distance) + 2 * h)
            sizes = np.array([len(x) for x in lists], dtype=np.int64)
            if sizes.sum():
                fi = np.repeat(np.arange(unsure.size), sizes)
                tri = owner[np.concatenate([np.asarray(x, dtype=np.int64) for x in lists if len(x)])]
                pair = np.unique(fi * T.shape[0] + tri)
                fi, tri = pair // T.shape[0], pair % T.shape[0]
                d = points_to_triangles_distance(C[unsure[fi]], T[tri])
                hit = np.zeros(unsure.size, dtype=bool)
                hit[fi[d <= distance]] = True
                near[unsure[hit]] = True
        mask[todo[near]] = True
    return mask


# -- region faces mesh --------------------------------------------------------------------------------
def explode_offsets(tess, factor: float) -> np.ndarray:
    """(R, 3) translation of each cell in the exploded view: ``factor * (cell centroid - domain centre)``."""
    d = np.asarray(tess.domain, dtype=np.float64)
    centre = np.array([(d[0] + d[1]) / 2, (d[2] + d[3]) / 2, (d[4] + d[5]) / 2])
    return float(factor) * (tess.centroids() - centre)


@dataclass(frozen=True, eq=False)
class FaceMesh:
    """Triangles of a selection of cell faces, ready to upload.

    positions: (P, 3) float32 vertex positions (exploded when asked); triangles: (T, 3) uint32 into
    positions; tri_face: (T,) int64 source face index (into the tessellation's faces); faces: (F_s,)
    int64 the selected faces; face_cell: (F_s,) cell of each selected face; vertex_cell: (P,) int64;
    edges: (E, 2) uint32 outline segments into positions (deduplicated, see :func:`face_mesh`);
    edge_face: (E,) int64 a source face of each segment (the newest layer's where several); offsets: (R, 3) the explode translation of each cell.
    """

    positions: np.ndarray
    triangles: np.ndarray
    tri_face: np.ndarray
    faces: np.ndarray
    face_cell: np.ndarray
    vertex_cell: np.ndarray
    edges: np.ndarray
    edge_face: np.ndarray
    offsets: np.ndarray

    @property
    def num_faces(self) -> int:
        return int(self.faces.shape[0])


def face_mesh(tess, mask: np.ndarray | None = None, explode: float = 0.0, edge_mode: str = "auto") -> FaceMesh:
    """Fan-triangulated mesh of the faces selected by ``mask`` ((F,) bool; None = all), exploded by ``explode``.

    Outlines (``edges``) are deduplicated by ``edge_mode`` (see :func:`_dedupe_edges`; "auto": coincident
    segments once, or once per cell in the exploded view) -- fewer lines to draw, same picture."""
    F = tess.face_offsets.shape[0] - 1
    sel = np.arange(F, dtype=np.int64) if mask is None else np.flatnonzero(np.asarray(mask, dtype=bool))
    fo = tess.face_offsets
    nf = np.diff(fo)[sel]
    # sub-ragged array of the selected loops
    starts = fo[:-1][sel]
    loops = tess.face_indices[ragged_ranges(starts, nf)]
    sub_off = np.concatenate([[0], np.cumsum(nf)]).astype(np.int64)
    used, local = np.unique(loops, return_inverse=True)
    vcell = vertex_cells(tess)[used]
    offsets = explode_offsets(tess, explode) if explode else np.zeros((tess.num_regions, 3))
    pos = tess.vertices[used] + offsets[vcell]
    tris, tri_local = triangulate_faces(local, sub_off)
    a, b, ef = _face_edges(local, sub_off)
    edges, edge_face = _dedupe_edges(a, b, sel[ef], tess, pos, used, edge_mode, explode)
    return FaceMesh(
        pos.astype(np.float32), tris.astype(np.uint32), sel[tri_local], sel, face_cells(tess)[sel], vcell, edges.astype(np.uint32), edge_face, offsets
    )


def _dedupe_edges(a, b, face, tess, pos, used, mode: str, explode: float):
    """Outline segments (E, 2) into ``pos`` and their face; duplicates keep the face of the newest layer.

    mode "face": every face loop's edges (each edge of a cell twice, once per adjacent face);
    "cell": each edge once per cell; "geometric": coincident segments of neighbouring cells once
    (endpoints that are one point of the shared vertex table); "auto": geometric unless exploded.
    ``used``: the tessellation vertex behind each row of ``pos``.
    """
    if mode == "auto":
        mode = "cell" if explode else "geometric"
    if mode == "face" or a.shape[0] == 0:
        return np.stack([a, b], axis=1), face
    if mode == "geometric":  # the shared vertex table's points; exploded positions are welded afresh
        gid = tess.vertex_table.index[used] if not explode else weld(pos, weld_radius(tess.tolerance))[1]
    elif mode == "cell":
        gid = np.arange(pos.shape[0])
    else:
        raise ValueError(f"edge mode must be face, cell, geometric or auto; got {mode!r}")
    ga, gb = gid[a], gid[b]
    lo, hi = np.minimum(ga, gb), np.maximum(ga, gb)
    layer = np.asarray(tess.face_layer, dtype=np.int64)[face]
    order = np.lexsort((-layer, hi, lo))  # per segment, the newest layer's face first
    key = np.stack([lo[order], hi[order]], axis=1)
    first = np.ones(order.shape[0], dtype=bool)
    first[1:] = np.any(key[1:] != key[:-1], axis=1)
    keep = order[first]
    return np.stack([a[keep], b[keep]], axis=1), face[keep]


# -- decision boundary mesh ---------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class BoundaryMesh:
    """The exact decision boundary as one welded triangle mesh.

    positions: (P, 3) float64; triangles: (T, 3) int64 (oriented: normal from class c0 towards c1);
    normals: (P, 3) float64 unit area-weighted vertex normals; face_normals: (T, 3) unit;
    tri_polygon: (T,) int64 source boundary polygon; classes: (T, 2) the two classes of each triangle.
    """

    positions: np.ndarray
    triangles: np.ndarray
    normals: np.ndarray
    face_normals: np.ndarray
    tri_polygon: np.ndarray
    classes: np.ndarray

    @property
    def area(self) -> float:
        p = self.positions[self.triangles]
        return float(0.5 * np.linalg.norm(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), axis=1).sum())


def polygon_normals(vertices: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(B, 3) Newell normals (length = twice the area) of ragged polygon loops."""
    a, b, face = _face_edges(np.arange(vertices.shape[0]), offsets)
    p, q = vertices[a], vertices[b]
    n = np.stack([(p[:, 1] - q[:, 1]) * (p[:, 2] + q[:, 2]), (p[:, 2] - q[:, 2]) * (p[:, 0] + q[:, 0]), (p[:, 0] - q[:, 0]) * (p[:, 1] + q[:, 1])], axis=1)
    out = np.zeros((offsets.shape[0] - 1, 3))
    np.add.at(out, face, n)
    return out


def boundary_mesh(tess, out_linear: np.ndarray | None = None, weld_tol: float | None = None) -> BoundaryMesh:
    """Merge the boundary's convex polygons into one oriented, welded mesh with vertex normals.

    out_linear: (R_full, C, 3) logit slopes of the full-depth cells (default ``tess.out_linear``); used to
    orient each polygon along ``grad(f_c1 - f_c0)`` (single-logit nets: ``grad f``); without it polygons
    keep their loop order. weld_tol: vertices closer than this merge (default ``tess.tolerance * 10``).
    """
    V = np.asarray(tess.boundary_vertices, dtype=np.float64)
    off = np.asarray(tess.boundary_offsets, dtype=np.int64)
    B = off.shape[0] - 1
    if B <= 0 or V.shape[0] == 0:
        z = np.zeros((0, 3))
        return BoundaryMesh(z, np.zeros((0, 3), np.int64), z, z, np.zeros(0, np.int64), np.zeros((0, 2), np.int64))
    loop = np.arange(V.shape[0], dtype=np.int64)
    n = polygon_normals(V, off)
    lin = tess.out_linear if out_linear is None else out_linear
    cls = np.asarray(tess.boundary_classes, dtype=np.int64).reshape(B, 2)
    if lin is not None and len(tess.boundary_region) == B:
        lin = np.asarray(lin)
        reg = np.asarray(tess.boundary_region, dtype=np.int64)
        if lin.shape[1] == 1:
            g = lin[reg, 0, :]
        else:
            g = lin[reg, cls[:, 1], :] - lin[reg, cls[:, 0], :]
        flip = np.einsum("ij,ij->i", n, g) < 0
        if flip.any():
            nb = np.diff(off)
            fl = np.repeat(flip, nb)
            start = np.repeat(off[:-1], nb)
            end = np.repeat(off[1:], nb)
            # reversed loop keeps the first vertex: start, end-1, end-2, ..., start+1
            within = loop - start
            rev = np.where(within == 0, start, end - within)
            loop = np.where(fl, rev, loop)
    tol = float(weld_tol) if weld_tol is not None else max(float(tess.tolerance) * 10, 1e-12)
    pos, inv = weld(V, tol)
    tris, tri_poly = triangulate_faces(inv[loop], off)
    p = pos[tris]
    fn = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])  # length = 2 * area
    keep = np.linalg.norm(fn, axis=1) > 0
    tris, tri_poly, fn = tris[keep], tri_poly[keep], fn[keep]
    vn = np.zeros_like(pos)
    for k in range(3):
        np.add.at(vn, tris[:, k], fn)
    vn /= np.maximum(np.linalg.norm(vn, axis=1, keepdims=True), 1e-300)
    fn /= np.maximum(np.linalg.norm(fn, axis=1, keepdims=True), 1e-300)
    return BoundaryMesh(pos, tris, vn, fn, tri_poly, cls[tri_poly])


# -- picking -----------------------------------------------------------------------------------------
def ray_triangles(origin: np.ndarray, direction: np.ndarray, tris: np.ndarray) -> tuple[int, float]:
    """First hit of the ray ``origin + t * direction`` (t > 0) with triangles ``(T, 3, 3)``.

    Möller–Trumbore, vectorised, two-sided. Returns (triangle index, t), or (-1, inf) on a miss.
    """
    o = np.asarray(origin, dtype=np.float64)
    d = np.asarray(direction, dtype=np.float64)
    tris = np.asarray(tris, dtype=np.float64)
    if tris.shape[0] == 0:
        return -1, float("inf")
    e1 = tris[:, 1] - tris[:, 0]
    e2 = tris[:, 2] - tris[:, 0]
    pvec = np.cross(d[None], e2)
    det = np.einsum("ij,ij->i", e1, pvec)
    ok = np.abs(det) > 1e-18
    inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    tvec = o[None] - tris[:, 0]
    u = np.einsum("ij,ij->i", tvec, pvec) * inv
    qvec = np.cross(tvec, e1)
    v = np.einsum("j,ij->i", d, qvec) * inv
    t = np.einsum("ij,ij->i", e2, qvec) * inv
    hit = ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0)
    if not hit.any():
        return -1, float("inf")
    t = np.where(hit, t, np.inf)
    i = int(np.argmin(t))
    return i, float(t[i])


# -- partial depths ----------------------------------------------------------------------------------
def ancestors(tess_by_depth: list, depth: int) -> np.ndarray:
    """(R_full,) int64: for every full-depth cell, the index of the cell containing it at ``depth`` (1-based)."""
    idx = np.arange(tess_by_depth[-1].num_regions, dtype=np.int64)
    for j in range(len(tess_by_depth), depth, -1):
        idx = np.asarray(tess_by_depth[j - 1].parent, dtype=np.int64)[idx]
    return idx


def descendant_values(tess_by_depth: list, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """Per cell at ``depth``: the volume-weighted majority class and mean ||A_w|| of its full-depth cells.

    Colours a partial-depth view by what the full network does inside each coarser cell (the depth-l
    cells have no class or slope of their own). Returns ``classes (R_d,) int64`` and ``slopes (R_d,) float64``.
    """
    t, full = tess_by_depth[depth - 1], tess_by_depth[-1]
    R = t.num_regions
    if depth == len(tess_by_depth):
        return np.asarray(full.classes, dtype=np.int64), np.asarray(full.slope_norm, dtype=np.float64)
    anc = ancestors(tess_by_depth, depth)
    vol = np.abs(full.volumes())
    cls = np.asarray(full.classes, dtype=np.int64)
    C = max(int(cls.max()) + 1 if cls.size else 1, 1)
    votes = np.zeros((R, C))
    ok = cls >= 0
    np.add.at(votes, (anc[ok], cls[ok]), vol[ok])
    classes = np.where(votes.sum(1) > 0, votes.argmax(1), -1)
    return classes.astype(np.int64), descendant_mean(tess_by_depth, depth, full.slope_norm)


def descendant_mean(tess_by_depth: list, depth: int, values) -> np.ndarray:
    """(R_d,) per cell at ``depth``: the volume-weighted mean of a full-depth per-cell value over its
    full-depth cells (NaN values left out; NaN where none is finite). At full depth: the values."""
    full = tess_by_depth[-1]
    v = np.asarray(values, dtype=np.float64)
    if depth == len(tess_by_depth):
        return v
    R = tess_by_depth[depth - 1].num_regions
    anc = ancestors(tess_by_depth, depth)
    vol = np.abs(full.volumes())
    fin = np.isfinite(v)
    num = np.bincount(anc[fin], weights=(v * vol)[fin], minlength=R)
    den = np.bincount(anc[fin], weights=vol[fin], minlength=R)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


# -- cross-section by an axis-aligned plane ------------------------------------------------------------
def plane_section(tess, axis: int, position: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact cross-section of the cells by the plane ``u[axis] = position``.

    Each convex cell the plane cuts gives one convex polygon: the points where the cell's edges cross the
    plane, ordered by angle around their mean. Returns ``vertices (n, 3)``, ``offsets (P + 1,)`` and
    ``cells (P,)`` (the cell of each polygon). Cells merely touching the plane (no interior crossing) are skipped.
    """
    a, b, _ = _face_edges(tess.face_indices, tess.face_offsets)
    keep = a < b  # each edge of a closed cell once
    a, b = a[keep], b[keep]
    V = tess.vertices
    d = V[:, axis] - float(position)
    da, db = d[a], d[b]
    cross = ((da < 0) & (db > 0)) | ((da > 0) & (db < 0))
    on = d == 0
    a, b, da, db = a[cross], b[cross], da[cross], db[cross]
    t = da / (da - db)
    P = V[a] + t[:, None] * (V[b] - V[a])
    cell = vertex_cells(tess)[a]
    # vertices lying exactly on the plane belong to the polygon too (once per cell)
    von = np.flatnonzero(on)
    P = np.concatenate([P, V[von]])
    cell = np.concatenate([cell, vertex_cells(tess)[von]])
    P[:, axis] = position
    cut = np.zeros(tess.num_regions, dtype=bool)
    cut[vertex_cells(tess)[a]] = True  # a real crossing: the plane enters the interior
    sel = cut[cell]
    P, cell = P[sel], cell[sel]
    if P.shape[0] == 0:
        return np.zeros((0, 3)), np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int64)
    others = [k for k in range(3) if k != axis]
    R = tess.num_regions
    cnt = np.bincount(cell, minlength=R)
    mean = np.zeros((R, 2))
    np.add.at(mean, cell, P[:, others])
    mean /= np.maximum(cnt, 1)[:, None]
    rel = P[:, others] - mean[cell]
    ang = np.arctan2(rel[:, 1], rel[:, 0])
    order = np.lexsort((ang, cell))
    P, cell = P[order], cell[order]
    cells, counts = np.unique(cell, return_counts=True)
    ok = counts >= 3
    keep_pts = np.repeat(ok, counts)
    P, counts, cells = P[keep_pts], counts[ok], cells[ok]
    return P, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), cells.astype(np.int64)
