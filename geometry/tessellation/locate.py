"""Point location in a ragged set of convex polygons (grid bucketing of bounding boxes + half-plane tests)."""

from __future__ import annotations

import numpy as np


def locate_points(vertices: np.ndarray, offsets: np.ndarray, u: np.ndarray, tol: float = 1e-9, chunk: int = 1 << 21) -> np.ndarray:
    """(n,) int64 index of the convex CCW polygon containing each point ``u (n, 2)`` (-1: none).

    Polygons: ``vertices (V, 2)``, ``offsets (R+1,)``. A point within ``tol`` of a polygon counts as
    inside it; among several candidates the one it is deepest inside wins.
    """
    u = np.asarray(u, dtype=np.float64).reshape(-1, 2)
    R = offsets.shape[0] - 1
    n = u.shape[0]
    if R == 0 or n == 0:
        return np.full(n, -1, dtype=np.int64)
    cnt = np.diff(offsets)
    P = int(cnt.max())
    ar = np.arange(P)
    idx = offsets[:-1, None] + np.where(ar[None, :] < cnt[:, None], ar[None, :], 0)
    pad = vertices[idx]  # (R, P, 2), padding repeats vertex 0
    nxt = np.roll(pad, -1, axis=1)
    last = offsets[:-1] + cnt - 1
    # the closing edge of a padded polygon: from its last real vertex back to vertex 0
    lo = np.minimum.reduceat(vertices, offsets[:-1], axis=0)
    hi = np.maximum.reduceat(vertices, offsets[:-1], axis=0)
    del last
    glo, ghi = lo.min(0), hi.max(0)
    G = int(np.clip(np.sqrt(R), 1, 512))
    span = np.maximum(ghi - glo, 1e-300)
    cell = lambda p: np.clip(((p - glo) / span * G).astype(np.int64), 0, G - 1)  # noqa: E731
    c0, c1 = cell(lo - tol), cell(hi + tol)
    nx = c1[:, 0] - c0[:, 0] + 1
    ny = c1[:, 1] - c0[:, 1] + 1
    tot = nx * ny
    poly = np.repeat(np.arange(R), tot)
    k = np.arange(tot.sum()) - np.repeat(np.cumsum(tot) - tot, tot)
    cx = c0[poly, 0] + k % nx[poly]
    cy = c0[poly, 1] + k // nx[poly]
    key = cy * G + cx
    order = np.argsort(key, kind="stable")
    key, poly = key[order], poly[order]
    start = np.searchsorted(key, np.arange(G * G))
    stop = np.searchsorted(key, np.arange(G * G), side="right")
    inside = np.all((u >= glo - tol) & (u <= ghi + tol), axis=1)
    pc = cell(u)
    pkey = pc[:, 1] * G + pc[:, 0]
    ncand = np.where(inside, stop[pkey] - start[pkey], 0)
    result = np.full(n, -1, dtype=np.int64)
    best = np.full(n, -np.inf)
    edge = nxt - pad  # (R, P, 2)
    elen = np.linalg.norm(edge, axis=2)
    total = np.cumsum(ncand)
    a = 0
    while a < n:
        b = int(np.searchsorted(total, (total[a - 1] if a else 0) + max(1, chunk // P), side="right"))
        b = max(b, a + 1)
        nc = ncand[a:b]
        pts = np.repeat(np.arange(a, b), nc)
        kk = np.arange(nc.sum()) - np.repeat(np.cumsum(nc) - nc, nc)
        cand = poly[start[pkey[pts]] + kk]
        d = u[pts, None, :] - pad[cand]  # (m, P, 2)
        e = edge[cand]
        cr = e[..., 0] * d[..., 1] - e[..., 1] * d[..., 0]
        score = np.min(np.where(elen[cand] > 0, cr / np.where(elen[cand] > 0, elen[cand], 1.0), np.inf), axis=1)
        order2 = np.lexsort((-score, pts))
        first = np.ones(order2.shape[0], dtype=bool)
        first[1:] = pts[order2][1:] != pts[order2][:-1]
        sel = order2[first]
        ok = score[sel] >= -tol
        result[pts[sel][ok]] = cand[sel][ok]
        best[pts[sel]] = score[sel]
        a = b
    return result


def cell_planes(vertices: np.ndarray, face_indices: np.ndarray, face_offsets: np.ndarray, cell_face_offsets: np.ndarray) -> np.ndarray:
    """(R, Fmax, 4) outward unit normals and offsets ``(n, d)`` (inside: n.x + d <= 0) of each cell's faces;
    padding rows are (0, 0, 0, -1) (always satisfied)."""
    nf = np.diff(face_offsets)
    face_of = np.repeat(np.arange(nf.shape[0]), nf)
    pos = np.arange(face_indices.shape[0])
    start = np.repeat(face_offsets[:-1], nf)
    nxt = np.where(pos + 1 < np.repeat(face_offsets[1:], nf), pos + 1, start)
    p, q = vertices[face_indices], vertices[face_indices[nxt]]
    newell = np.stack([(p[:, 1] - q[:, 1]) * (p[:, 2] + q[:, 2]), (p[:, 2] - q[:, 2]) * (p[:, 0] + q[:, 0]), (p[:, 0] - q[:, 0]) * (p[:, 1] + q[:, 1])], 1)
    n = np.zeros((nf.shape[0], 3))
    np.add.at(n, face_of, newell)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-300)
    c = np.zeros((nf.shape[0], 3))
    np.add.at(c, face_of, p)
    c /= np.maximum(nf, 1)[:, None]
    d = -(n * c).sum(1)
    R = cell_face_offsets.shape[0] - 1
    cnt = np.diff(cell_face_offsets)
    F = int(cnt.max()) if R else 0
    out = np.zeros((R, F, 4))
    out[..., 3] = -1.0
    cell = np.repeat(np.arange(R), cnt)
    slot = np.arange(nf.shape[0]) - np.repeat(cell_face_offsets[:-1], cnt)
    out[cell, slot, :3] = n
    out[cell, slot, 3] = d
    return out


def locate_points_3d(t, u: np.ndarray, tol: float = 1e-9, chunk: int = 256) -> np.ndarray:
    """(n,) index of the cell of a Tessellation3D containing each point ``u (n, 3)`` (-1: none)."""
    u = np.asarray(u, dtype=np.float64).reshape(-1, 3)
    planes = cell_planes(t.vertices, t.face_indices, t.face_offsets, t.cell_face_offsets)
    lo = np.minimum.reduceat(t.vertices, t.vertex_offsets[:-1], axis=0)
    hi = np.maximum.reduceat(t.vertices, t.vertex_offsets[:-1], axis=0)
    res = np.full(u.shape[0], -1, dtype=np.int64)
    for a in range(0, u.shape[0], chunk):
        p = u[a : a + chunk]
        cand = np.all((p[:, None, :] >= lo[None] - tol) & (p[:, None, :] <= hi[None] + tol), axis=2)
        pi, ci = np.nonzero(cand)
        if pi.size == 0:
            continue
        val = np.einsum("mfk,mk->mf", planes[ci, :, :3], p[pi]) + planes[ci, :, 3]
        score = -val.max(1)
        order = np.lexsort((-score, pi))
        first = np.ones(order.shape[0], dtype=bool)
        first[1:] = pi[order][1:] != pi[order][:-1]
        sel = order[first]
        ok = score[sel] >= -tol
        res[a + pi[sel][ok]] = ci[sel][ok]
    return res
