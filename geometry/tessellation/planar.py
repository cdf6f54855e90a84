"""Batched convex-polygon subdivision by lines (the 2D hot path), padded torch tensors.

Pieces are held padded: ``V (Q, P, 2)`` vertices (counter-clockwise), ``cnt (Q,)`` vertex counts,
``E (Q, P) int16`` label of the edge leaving each vertex. A layer's lines are given per region
(``lines (R, n, 3)`` holding ``a0, a1, b`` of ``a.u + b``, normalised so |a| = 1, i.e. values are signed
distances). Every region is cut by every line of its own list; the lines that cross a region are found
once per layer for all (region, line) pairs, and the pieces are then cut "one crossing line per region per
step" -- the number of steps is the largest number of lines crossing one region, not the layer width, and
each step is a handful of tensor ops over all pieces that are still being cut.

Tolerance ``eps`` (distance): a vertex within eps of a line counts as on it, and a piece is cut only if
it has vertices farther than eps on both sides. So a line through a vertex, coincident lines and lines
grazing a piece never create empty or degenerate pieces, and no area is ever dropped.
"""
from __future__ import annotations

from typing import Callable

import torch

from ..errors import BudgetExceededError, CancelledError


def _next_index(cnt: torch.Tensor, P: int) -> torch.Tensor:
    ar = torch.arange(P, device=cnt.device)
    return torch.where(ar[None, :] + 1 < cnt[:, None], ar[None, :] + 1, 0)


def clip(V: torch.Tensor, E: torch.Tensor, cnt: torch.Tensor, s: torch.Tensor, eps: float, label: int,
         sides: tuple[bool, bool] = (True, True)):
    """Clip pieces by the lines whose signed values at the vertices are ``s (N, P)``.

    Returns, for each requested side (positive ``s >= -eps``, negative ``s <= eps``), a tuple
    ``(V (N, P', 2), E (N, P'), cnt (N,))``. New edges along the line get ``label``. Every piece must
    actually be cut (vertices beyond eps on both sides) for both halves to be non-degenerate; with one
    side requested, pieces entirely on the other side come back with ``cnt == 0``.
    """
    N, P = s.shape
    dev = s.device
    ar = torch.arange(P, device=dev)
    valid = ar[None, :] < cnt[:, None]
    nxt = _next_index(cnt, P)
    s_n = s.gather(1, nxt)
    V_n = V.gather(1, nxt.unsqueeze(-1).expand(N, P, V.shape[-1]))
    pos = (s > eps) & valid
    neg = (s < -eps) & valid
    pos_n = pos.gather(1, nxt)
    neg_n = neg.gather(1, nxt)
    cross = (pos & neg_n) | (neg & pos_n)
    denom = torch.where(cross, s - s_n, torch.ones_like(s))
    t = torch.where(cross, s / denom, torch.zeros_like(s))
    X = V + t.unsqueeze(-1) * (V_n - V)
    pts = torch.stack([V, X], dim=2).reshape(N, 2 * P, V.shape[-1])
    out = []
    lab = torch.tensor(label, dtype=E.dtype, device=dev)
    one_sided = not (sides[0] and sides[1])
    for want, bad, other_n, same_n in ((sides[0], neg, neg_n, pos_n), (sides[1], pos, pos_n, neg_n)):
        if not want:
            out.append(None)
            continue
        keep = valid & ~bad
        lab_v = torch.where(other_n & ~cross, lab, E)
        lab_x = torch.where(same_n, E, lab)
        mask = torch.stack([keep, cross], dim=2).reshape(N, 2 * P)
        labs = torch.stack([lab_v, lab_x], dim=2).reshape(N, 2 * P)
        c = mask.sum(1)
        if one_sided:  # pieces (almost) entirely on the other side vanish
            c = torch.where(c >= 3, c, torch.zeros_like(c))
            mask = mask & (c[:, None] > 0)
        Pn = int(c.max()) if N else 0
        Pn = max(Pn, 1)
        slot = mask.cumsum(1) - 1
        row = torch.arange(N, device=dev)[:, None].expand(N, 2 * P)
        flat = (row * Pn + slot)[mask]
        Vo = torch.zeros(N * Pn, V.shape[-1], dtype=V.dtype, device=dev)
        Eo = torch.full((N * Pn,), -1, dtype=E.dtype, device=dev)
        Vo[flat] = pts[mask]
        Eo[flat] = labs[mask]
        out.append((Vo.view(N, Pn, V.shape[-1]), Eo.view(N, Pn), c))
    return tuple(out)


def _pad_to(V: torch.Tensor, E: torch.Tensor, P: int):
    if V.shape[1] == P:
        return V, E
    N, P0 = V.shape[:2]
    V2 = torch.zeros(N, P, V.shape[-1], dtype=V.dtype, device=V.device)
    E2 = torch.full((N, P), -1, dtype=E.dtype, device=E.device)
    V2[:, :P0] = V
    E2[:, :P0] = E
    return V2, E2


def cat_pieces(parts):
    """Concatenate padded piece batches ``[(V, E, cnt, owner), ...]`` to a common padding."""
    parts = [p for p in parts if p[0].shape[0]]
    if not parts:
        raise ValueError("no pieces")
    P = max(p[0].shape[1] for p in parts)
    Vs, Es = zip(*(_pad_to(p[0], p[1], P) for p in parts))
    return torch.cat(Vs), torch.cat(Es), torch.cat([p[2] for p in parts]), torch.cat([p[3] for p in parts])


def vertex_values(V: torch.Tensor, cnt: torch.Tensor, lines: torch.Tensor) -> torch.Tensor:
    """Signed values ``(Q, P)`` of per-piece lines ``(Q, 3)`` at the pieces' vertices (padding repeats vertex 0)."""
    return V[..., 0] * lines[:, None, 0] + V[..., 1] * lines[:, None, 1] + lines[:, None, 2]


def crossing_lists(V: torch.Tensor, cnt: torch.Tensor, lines: torch.Tensor, eps: float, chunk_elems: int = 1 << 24):
    """For regions ``V (R, P, 2)`` and their lines ``(R, n, 3)``: ``(order (R, J) int64, ncross (R,))``,
    the indices of the lines crossing each region (first ``ncross[r]`` entries of ``order[r]``)."""
    R, P = V.shape[:2]
    n = lines.shape[1]
    ar = torch.arange(P, device=V.device)
    invalid = (ar[None, :] >= cnt[:, None])
    Vp = torch.where(invalid.unsqueeze(-1), V[:, :1], V)  # padding repeats vertex 0: neutral for min/max
    step = max(1, chunk_elems // max(1, P * n))
    crosses = []
    for a in range(0, R, step):
        v = Vp[a:a + step]
        L = lines[a:a + step]
        s = torch.baddbmm(L[:, None, :, 2], v, L[:, :, :2].transpose(1, 2))  # (r, P, n)
        crosses.append((s.amax(1) > eps) & (s.amin(1) < -eps))
    cross = torch.cat(crosses) if crosses else torch.zeros(0, n, dtype=torch.bool, device=V.device)
    ncross = cross.sum(1)
    J = int(ncross.max()) if R else 0
    if J == 0:
        return torch.zeros(R, 0, dtype=torch.int64, device=V.device), ncross
    order = torch.sort(cross.to(torch.int8), dim=1, descending=True, stable=True).indices[:, :J]
    return order, ncross


def subdivide(V: torch.Tensor, E: torch.Tensor, cnt: torch.Tensor, lines: torch.Tensor, eps: float, label: int,
              max_regions: int | None = None, layer_name: str = "", cancel: Callable[[], bool] | None = None):
    """Cut every region ``r`` of ``(V, E, cnt)`` (R of them) by all its lines ``lines[r] (n, 3)`` (|a| = 1).

    Returns ``(V', E', cnt', owner)``: the pieces (padded) and the index of the region each came from.
    """
    R = V.shape[0]
    dev = V.device
    order, ncross = crossing_lists(V, cnt, lines, eps)
    J = order.shape[1]
    owner = torch.arange(R, device=dev)
    done = []
    if J == 0:
        return V, E, cnt, owner
    # regions crossed by nothing are final already
    still = ncross > 0
    done.append((V[~still], E[~still], cnt[~still], owner[~still]))
    V, E, cnt, owner = V[still], E[still], cnt[still], owner[still]
    total = R
    chosen = lines.gather(1, order.unsqueeze(-1).expand(R, J, 3))  # (R, J, 3) crossing lines in order
    for t in range(J):
        if cancel is not None and cancel():
            raise CancelledError("tessellation cancelled.")
        ln = chosen[owner, t]
        s = vertex_values(V, cnt, ln)
        P = V.shape[1]
        valid = torch.arange(P, device=dev)[None, :] < cnt[:, None]
        cut = ((s > eps) & valid).any(1) & ((s < -eps) & valid).any(1)
        idx = cut.nonzero().squeeze(1)
        if idx.numel():
            (Vp, Ep, cp), (Vn, En, cn) = clip(V[idx], E[idx], cnt[idx], s[idx], eps, label)
            keep = ~cut
            V, E, cnt, owner = cat_pieces([(V[keep], E[keep], cnt[keep], owner[keep]),
                                           (Vp, Ep, cp, owner[idx]), (Vn, En, cn, owner[idx])])
            total += int(idx.numel())
            if max_regions is not None and total > max_regions:
                raise BudgetExceededError(
                    f"the tessellation reached {total} regions at {layer_name} (over max_regions={max_regions}); "
                    f"lower the depth, shrink the domain or raise max_regions.")
        fin = ncross[owner] <= t + 1
        if bool(fin.any()):
            done.append((V[fin], E[fin], cnt[fin], owner[fin]))
            keep = ~fin
            V, E, cnt, owner = V[keep], E[keep], cnt[keep], owner[keep]
        if V.shape[0] == 0:
            break
    if V.shape[0]:
        done.append((V, E, cnt, owner))
    return cat_pieces(done)
