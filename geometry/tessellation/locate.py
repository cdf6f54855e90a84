"""Point location in a ragged set of convex polygons (grid bucketing of bounding boxes + half-plane tests)."""
from __future__ import annotations

import numpy as np


def locate_points(vertices: np.ndarray, offsets: np.ndarray, u: np.ndarray, tol: float = 1e-9,
                  chunk: int = 1 << 21) -> np.ndarray:
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
    pad = vertices[idx]                                   # (R, P, 2), padding repeats vertex 0
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
    edge = nxt - pad                                      # (R, P, 2)
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
        d = u[pts, None, :] - pad[cand]                   # (m, P, 2)
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
