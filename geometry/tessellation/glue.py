"""Bounded memory for 2D tessellations: a window is tessellated as sub-windows and their tiles glued.

The engine keeps every region's affine map of the current layer, ``(R, k+1, width)`` numbers; for a wide
convolution and many regions that is more memory than the machine has. When a layer would need more than
the memory budget, the window is split into a grid of sub-windows, each is tessellated (splitting again,
depth first, while it does not fit) and the pieces are glued here. This is exact: the points of the slice
with one activation pattern of layers 1..l form one convex region (an intersection of half-planes), so a
region cut by the seams is the union of its pieces, the convex hull of their vertices, and its edges are
the pieces' edges on that hull (with their layers). The argmax cells of a region are convex too and are
glued the same way; decision-boundary segments are kept as the pieces' (split at the seams).
"""

from __future__ import annotations

import numpy as np

from geometry.tessellation.boundary import propagate_classes
from geometry.tessellation.types import LayerCodes, Tessellation2D, ragged_ranges


def clip_polygon(poly: np.ndarray, normal: np.ndarray, offset: float) -> np.ndarray:
    """The part ``normal · u <= offset`` of a convex CCW polygon (Sutherland–Hodgman, one plane)."""
    out = []
    n = len(poly)
    s = poly @ normal - offset
    for i in range(n):
        a, b, sa, sb = poly[i], poly[(i + 1) % n], s[i], s[(i + 1) % n]
        if sa <= 0:
            out.append(a)
        if (sa < 0 < sb) or (sb < 0 < sa):
            out.append(a + sa / (sa - sb) * (b - a))
    return np.asarray(out, dtype=np.float64).reshape(-1, 2)


# seams sit at these fractions of a side, not at round numbers (a zero-bias network's lines pass through
# round points such as the origin, and a seam on a line would lose that line's label)
SEAM_JITTER = 0.0137


def grid_pieces(poly: np.ndarray, m: int) -> list[np.ndarray]:
    """A convex polygon cut into an m x m grid of convex pieces (the empty ones left out)."""
    lo, hi = poly.min(0), poly.max(0)
    cuts = [lo[d] + (hi[d] - lo[d]) * (np.arange(1, m) / m + SEAM_JITTER / m) for d in (0, 1)]
    pieces = []
    for i in range(m):
        for j in range(m):
            p = poly
            for d, idx, sign in ((0, i, 1), (1, j, 1)):
                e = np.eye(2)[d]
                if idx > 0:
                    p = clip_polygon(p, -e, -cuts[d][idx - 1])
                if idx < m - 1 and len(p):
                    p = clip_polygon(p, e, cuts[d][idx])
            if len(p) >= 3:
                pieces.append(p)
    return pieces


def _keys(t: Tessellation2D, depth: int) -> np.ndarray:
    """(R,) one opaque key per tile: its patterns of layers 1..depth as bytes."""
    rows = t.codes.rows_bytes(depth)
    return rows.view(np.dtype((np.void, rows.shape[1]))).ravel()


def _hull(P: np.ndarray, eps: float) -> np.ndarray:
    """Counter-clockwise convex hull of points P (n, 2) without points within ``eps`` of a hull edge
    (monotone chain; the seam points of a glued region lie on its edges)."""
    P = np.unique(P, axis=0)  # sorted by x, then y

    def chain(points):
        out: list[np.ndarray] = []
        for p in points:
            while len(out) >= 2:
                a, b = out[-2], out[-1]
                cross = (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])
                if cross <= eps * np.hypot(*(p - a)):
                    out.pop()
                else:
                    break
            out.append(p)
        return out

    lower, upper = chain(P), chain(P[::-1])
    return np.asarray(lower[:-1] + upper[:-1])


def _edge_labels(H: np.ndarray, segments: np.ndarray, labels: np.ndarray, eps: float) -> np.ndarray:
    """(h,) the layer of each edge of hull H (h, 2): the label of the pieces' edges lying on it."""
    out = np.full(len(H), -1, dtype=np.int16)
    for i in range(len(H)):
        a, b = H[i], H[(i + 1) % len(H)]
        d = b - a
        length = float(np.hypot(*d))
        if length == 0:
            continue
        n = np.array([-d[1], d[0]]) / length
        on = (np.abs((segments[:, 0] - a) @ n) <= 4 * eps) & (np.abs((segments[:, 1] - a) @ n) <= 4 * eps)
        t = ((segments[:, 0] + segments[:, 1]) / 2 - a) @ d / length**2
        on &= (t > 0) & (t < 1)
        if on.any():
            vals, cnt = np.unique(labels[on], return_counts=True)
            out[i] = vals[np.argmax(cnt)]
    return out


def _glue_polygons(polys: list[tuple[np.ndarray, np.ndarray]], eps: float) -> tuple[np.ndarray, np.ndarray]:
    """One convex polygon (vertices, edge labels) from the pieces [(vertices, labels), ...] of a region."""
    if len(polys) == 1:
        return polys[0]
    P = np.concatenate([v for v, _ in polys])
    segs = np.concatenate([np.stack([v, np.roll(v, -1, axis=0)], axis=1) for v, _ in polys])
    labs = np.concatenate([lab for _, lab in polys])
    H = _hull(P, eps)
    return H, _edge_labels(H, segs, labs, eps)


def merge_equal_patterns(V, E, cnt, owner, pattern, eps: float):
    """Glue the pieces of a region that one layer split without changing its pattern (torch, padded).

    A max-pool layer is cut by every pairwise difference of its windows' members, so two pieces of a
    region can keep the same argmax everywhere (only non-maximal members swapped order): they are one
    linear region. Pieces with the same parent region (``owner``) and the same ``pattern`` row are glued
    (convex hull, edge layers kept); returns ``(V, E, cnt, owner, pattern, keep)`` with ``keep`` the
    index of each glued region's first piece."""
    import torch

    own = owner.cpu().numpy()
    pat = pattern.cpu().numpy().reshape(len(own), -1)
    key = np.concatenate([own[:, None], pat], axis=1)
    _, first, inverse, counts = np.unique(key, axis=0, return_index=True, return_inverse=True, return_counts=True)
    if (counts == 1).all():
        return V, E, cnt, owner, pattern, torch.arange(len(own), device=V.device)
    order = np.argsort(first, kind="stable")  # glued regions in the order their first piece comes
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    g = rank[inverse.reshape(-1)]
    keep = first[order]
    members = np.argsort(g, kind="stable")
    bounds = np.searchsorted(g[members], np.arange(len(order) + 1))
    Vn, En, cn = V.cpu().numpy(), E.cpu().numpy(), cnt.cpu().numpy()
    glued = {}
    for k in np.flatnonzero(counts[order] > 1):
        idx = members[bounds[k] : bounds[k + 1]]
        glued[int(k)] = _glue_polygons([(Vn[i, : cn[i]], En[i, : cn[i]]) for i in idx], eps)
    P = max(V.shape[1], max(len(v) for v, _ in glued.values()))
    keep_t = torch.as_tensor(keep, device=V.device)
    newV, newE, newcnt = V.index_select(0, keep_t), E.index_select(0, keep_t), cnt.index_select(0, keep_t).clone()
    if P > V.shape[1]:
        newV = torch.cat([newV, newV[:, :1].expand(-1, P - V.shape[1], -1)], dim=1)
        newE = torch.cat([newE, torch.full((newE.shape[0], P - V.shape[1]), -1, dtype=E.dtype, device=E.device)], dim=1)
    for k, (v, lab) in glued.items():
        n = len(v)
        newV[k, :n] = torch.as_tensor(v, dtype=V.dtype, device=V.device)
        newV[k, n:] = newV[k, 0]
        newE[k, :n] = torch.as_tensor(lab, dtype=E.dtype, device=E.device)
        newE[k, n:] = -1
        newcnt[k] = n
    return newV, newE, newcnt, owner.index_select(0, keep_t), pattern.index_select(0, keep_t), keep_t


def _ragged(polys: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    counts = np.array([len(p) for p in polys], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return (np.concatenate(polys) if polys else np.zeros((0, 2))), offsets


class _Members:
    """For each glued tile, its (piece, tile) members: ``owner[bounds[k]:bounds[k+1]]`` and ``local[...]``.
    Three flat arrays instead of two small arrays per tile (a list of those took ~300 bytes a tile,
    ~180 MB over the six depths of 2-256x6-1). ``first_owner``, ``first_local``: each tile's first member."""

    def __init__(self, owner: np.ndarray, local: np.ndarray, bounds: np.ndarray):
        self.owner, self.local, self.bounds = owner, local, bounds
        self.sizes = np.diff(bounds)
        self.first_owner, self.first_local = owner[bounds[:-1]], local[bounds[:-1]]

    def __len__(self) -> int:
        return len(self.sizes)

    def of(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Tile k's members: (pieces, their tiles)."""
        a, b = self.bounds[k], self.bounds[k + 1]
        return self.owner[a:b], self.local[a:b]


def _glued_polygons(pieces, l: int, m: _Members, eps: float):
    """Depth ``l``'s glued polygons ``(vertices, offsets, edge_layer)``: a tile inside one piece keeps that
    piece's polygon (copied in blocks, per piece); only tiles cut by the pieces' seams are glued one by one."""
    n = len(m)
    p0, r0 = m.first_owner, m.first_local
    single = m.sizes == 1
    counts = np.zeros(n, dtype=np.int64)
    glued = {}
    for k in np.flatnonzero(~single):
        parts = []
        for p, r in zip(*m.of(k)):
            t = pieces[p][l]
            a, b = t.offsets[r], t.offsets[r + 1]
            parts.append((t.vertices[a:b], t.edge_layer[a:b]))
        glued[k] = _glue_polygons(parts, eps)
        counts[k] = len(glued[k][0])
    whole = [np.flatnonzero(single & (p0 == i)) for i in range(len(pieces))]
    for i, sel in enumerate(whole):
        counts[sel] = np.diff(pieces[i][l].offsets)[r0[sel]]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    vertices = np.zeros((int(offsets[-1]), 2))
    edge_layer = np.full(int(offsets[-1]), -1, dtype=np.int16)
    for i, sel in enumerate(whole):
        t = pieces[i][l]
        dst, src = ragged_ranges(offsets[sel], counts[sel]), ragged_ranges(t.offsets[r0[sel]], counts[sel])
        vertices[dst] = t.vertices[src]
        edge_layer[dst] = t.edge_layer[src]
    for k, (v, lab) in glued.items():
        vertices[offsets[k] : offsets[k + 1]] = v
        edge_layer[offsets[k] : offsets[k + 1]] = lab
    return vertices, offsets, edge_layer


def glue(pieces: list[list[Tessellation2D]], domain: np.ndarray, eps: float, seconds: float) -> list[Tessellation2D]:
    """The tessellation of ``domain`` from those of its pieces (each a list over depths 1..d, as
    :func:`geometry.tessellation.tessellate_all_depths` returns; all of the same network, slice and depth)."""
    d = len(pieces[0])
    first = pieces[0][-1]
    members, index_of = [], []  # per depth: for each glued tile its (piece, tile) members; (piece, tile) -> glued
    for l in range(d):
        keys = np.concatenate([_keys(p[l], l + 1) for p in pieces])
        owner = np.concatenate([np.full(p[l].num_regions, i) for i, p in enumerate(pieces)])
        local = np.concatenate([np.arange(p[l].num_regions) for p in pieces])
        _, first_at, inverse = np.unique(keys, return_index=True, return_inverse=True)
        order = np.argsort(first_at, kind="stable")  # glued tiles in the order they first appear
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        g = rank[inverse]
        groups = np.argsort(g, kind="stable")
        bounds = np.searchsorted(g[groups], np.arange(len(order) + 1))
        members.append(_Members(owner[groups], local[groups], bounds))
        starts = np.concatenate([[0], np.cumsum([p[l].num_regions for p in pieces])])
        index_of.append((starts, g))
    out = []
    full = first.full_depth
    merged_full = {}
    for l in range(d):
        m = members[l]
        vertices, offsets, edge_layer = _glued_polygons(pieces, l, m, eps)
        p0, r0 = m.first_owner, m.first_local
        own, parent = None, np.zeros(len(m), dtype=np.int64)
        for i, p in enumerate(pieces):
            sel = np.flatnonzero(p0 == i)
            t = p[l]
            c_own, c_rows = t.codes.own[l], t.codes.rows[l]  # layer l's codes live at depth l + 1: no copy of the earlier layers
            c = c_own[r0[sel]] if c_rows is None else c_own[c_rows[r0[sel]]]
            if own is None:
                own = np.zeros((len(m),) + c.shape[1:], dtype=c.dtype)
            own[sel] = c
            if l:
                ps, pg = index_of[l - 1]
                parent[sel] = pg[ps[i] + t.parent[r0[sel]]]
        R = len(m)
        codes = (out[-1]["codes"] if l else LayerCodes(())).refine(parent, own if own is not None else np.zeros((0, 0), np.uint8))
        common = dict(
            slice=first.slice,
            domain=domain,
            depth=l + 1,
            layers=first.layers,
            vertices=vertices,
            offsets=offsets,
            edge_layer=edge_layer,
            codes=codes,
            parent=parent,
            classes=np.full(R, -1, dtype=np.int64),
            class_mixed=np.zeros(R, dtype=bool),
            slope_norm=np.full(R, np.nan),
            num_classes=first.num_classes,
            tolerance=eps,
            seconds=seconds,
            device=first.device,
            pieces=sum(p[-1].pieces for p in pieces),
        )
        out.append(common)
    if full:
        merged_full = _glue_outputs(pieces, members[-1], index_of[-1], eps, out[-1]["vertices"], out[-1]["offsets"])
        out[-1].update(merged_full["tile"])
        chain = propagate_classes([c["parent"] for c in out], merged_full["classes_const"], len(out[-1]["parent"]))
        for l, c in enumerate(out):
            if l < d - 1:
                c["classes"] = chain[l]
            c.update(merged_full["boundary"])
    return [Tessellation2D(**c) for c in out]


def _glue_outputs(pieces, members, index_of, eps: float, vertices: np.ndarray, offsets: np.ndarray) -> dict:
    """Full-depth fields of the glued tiles (polygons ``vertices``, ``offsets``): logits maps, slope norms,
    classes, argmax cells, boundary."""
    starts, g = index_of
    n = len(members)
    p0, r0 = members.first_owner, members.first_local
    t_first = pieces[0][-1]
    lin = np.zeros((n,) + t_first.out_linear.shape[1:])
    off = np.zeros((n,) + t_first.out_offset.shape[1:])
    slope = np.zeros(n)
    for i, p in enumerate(pieces):  # each glued tile's maps and slope norm: those of its first member
        sel = np.flatnonzero(p0 == i)
        t = p[-1]
        lin[sel], off[sel], slope[sel] = t.out_linear[r0[sel]], t.out_offset[r0[sel]], t.slope_norm[r0[sel]]
    # every member's class and mixed flag; a tile is mixed when a member is or its members' classes differ
    member_cls = np.zeros(len(members.owner), dtype=np.int64)
    member_mixed = np.zeros(len(members.owner), dtype=bool)
    for i, p in enumerate(pieces):
        sel = np.flatnonzero(members.owner == i)
        member_cls[sel] = p[-1].classes[members.local[sel]]
        member_mixed[sel] = p[-1].class_mixed[members.local[sel]]
    head = members.bounds[:-1]
    classes = member_cls[head] if n else np.zeros(0, dtype=np.int64)
    class_mixed = (
        np.logical_or.reduceat(member_mixed, head) | (np.minimum.reduceat(member_cls, head) != np.maximum.reduceat(member_cls, head))
        if n
        else np.zeros(0, dtype=bool)
    )
    glued = np.flatnonzero(members.sizes > 1)
    if len(glued):  # the engine's class of a tile: the argmax at the mean of its polygon's vertices
        import torch

        from geometry.tessellation.boundary import two_class

        counts = np.diff(offsets)
        owner = np.repeat(np.arange(len(counts)), counts)
        mean = np.zeros((len(counts), 2))
        np.add.at(mean, owner, vertices)
        mean /= counts[:, None]
        A, b = two_class(torch.as_tensor(lin[glued]), torch.as_tensor(off[glued]))
        classes[glued] = (torch.einsum("rck,rk->rc", A, torch.as_tensor(mean[glued])) + b).argmax(1).numpy()
    tile = dict(
        out_linear=lin,
        out_offset=off,
        slope_norm=slope,
        classes=classes,
        class_mixed=class_mixed,
    )
    # argmax cells: one per (glued tile, class), glued from the pieces' cells
    cell_parts: dict[tuple[int, int], list] = {}
    for i, p in enumerate(pieces):
        t = p[-1]
        if t.class_cell_vertices is None:
            continue
        for q in range(len(t.class_cell_class)):
            a, b = t.class_cell_offsets[q], t.class_cell_offsets[q + 1]
            key = (int(g[starts[i] + t.class_cell_region[q]]), int(t.class_cell_class[q]))
            cell_parts.setdefault(key, []).append((t.class_cell_vertices[a:b], np.full(b - a, -1, np.int16)))
    if cell_parts:
        keys = sorted(cell_parts)
        cv, co = _ragged([_glue_polygons(cell_parts[k], eps)[0] for k in keys])
        tile.update(
            class_cell_vertices=cv, class_cell_offsets=co, class_cell_class=np.array([k[1] for k in keys]), class_cell_region=np.array([k[0] for k in keys])
        )
    seg = [p[-1].boundary_segments for p in pieces]
    boundary = dict(
        boundary_segments=np.concatenate(seg) if seg else np.zeros((0, 2, 2)),
        boundary_classes=np.concatenate([p[-1].boundary_classes for p in pieces]),
        boundary_region=np.concatenate([g[starts[i] + p[-1].boundary_region] for i, p in enumerate(pieces)]).astype(np.int64),
    )
    return dict(tile=tile, boundary=boundary, classes_const=np.where(class_mixed, -1, classes))


__all__ = ["clip_polygon", "glue", "grid_pieces", "merge_equal_patterns"]
