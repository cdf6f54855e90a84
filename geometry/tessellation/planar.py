"""Batched convex-polygon subdivision by lines (the 2D hot path), padded torch tensors.

Pieces are held padded: ``V (Q, P, 2)`` vertices (counter-clockwise), ``cnt (Q,)`` vertex counts,
``E (Q, P) int16`` label of the edge leaving each vertex. A layer's hyperplanes come per region as rows
``H (R, k+1, n)`` (value ``H[r, 0, j] + H[r, 1:, j] . u``). Every region is cut by all of them:
1. one vectorised pass over all (region, line) pairs finds the lines crossing each region (bounding-ball
   pruning, then the exact vertex test) and stores them, normalised to signed distances, in a padded
   table (R, J, k+1) -- J is the most lines crossing one region, usually far below the layer width;
2. every piece then walks its region's list with a pointer: per step it looks at its next ``window``
   lines and is split by the first one that really crosses it (lines that miss it cost no step of their
   own). All pieces of all regions advance together, so a layer costs a few dozen steps of ~40 tensor
   ops each, whatever the number of regions, and no Python loop runs over regions or neurons.

Tolerance ``eps`` (distance): a vertex within eps of a line counts as on it, and a piece is cut only if
it has vertices farther than eps on both sides. So a line through a vertex, coincident lines and lines
grazing a piece never create empty or degenerate pieces, and no area is ever dropped.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch

from geometry.errors import BudgetExceededError, CancelledError

CHECK_BYTES = 16 * 2**20  # the crossing tests gather vertices in slices of about this size


def _next_index(cnt: torch.Tensor, P: int) -> torch.Tensor:
    ar = torch.arange(P, device=cnt.device)
    return torch.where(ar[None, :] + 1 < cnt[:, None], ar[None, :] + 1, 0)


def clip(V: torch.Tensor, E: torch.Tensor, cnt: torch.Tensor, s: torch.Tensor, eps: float, label: int, drop_empty: bool = True):
    """Keep the part ``s >= -eps`` of each piece, where ``s (N, P)`` are a line's signed values at its vertices.

    Returns ``(V (N, P', k), E (N, P'), cnt (N,))``; new edges along the line get ``label``; pieces with
    less than 3 vertices left (entirely on the other side, or touching the line only) get ``cnt == 0``
    when ``drop_empty``. Vertices within eps of the line are kept on both sides, and a crossing point is
    made only on an edge whose ends are beyond eps on opposite sides, so pieces are never degenerate.
    """
    N, P = s.shape
    dev = s.device
    k = V.shape[-1]
    ar = torch.arange(P, device=dev)
    valid = ar[None, :] < cnt[:, None]
    nxt = torch.where(ar[None, :] + 1 < cnt[:, None], ar[None, :] + 1, 0)
    s_n = s.gather(1, nxt)
    pos = s > eps
    neg = (s < -eps) & valid
    pos_n = pos.gather(1, nxt)
    neg_n = neg.gather(1, nxt)
    cross = valid & ((pos & neg_n) | (neg & pos_n))
    t = s / torch.where(cross, s - s_n, torch.ones_like(s))
    V_n = V.gather(1, nxt.unsqueeze(-1).expand(N, P, k))
    X = torch.addcmul(V, t.unsqueeze(-1), V_n - V)
    keep = valid & ~neg
    lab = torch.tensor(label, dtype=E.dtype, device=dev)
    mask = torch.stack([keep, cross], dim=2).reshape(N, 2 * P)
    labs = torch.stack([torch.where(neg_n & ~cross, lab, E), torch.where(pos_n, E, lab)], dim=2).reshape(N, 2 * P)
    c = mask.sum(1)
    if drop_empty:
        c = torch.where(c >= 3, c, 0)
        mask = mask & (c[:, None] > 0)
    Pn = max(int(c.max()) if N else 1, 1)
    slot = mask.cumsum(1) - 1
    # scatter every candidate to its slot; dropped ones all go to one spare row past the end
    flat = torch.where(mask, torch.arange(N, device=dev)[:, None] * Pn + slot, N * Pn).reshape(-1)
    Vo = torch.zeros(N * Pn + 1, k, dtype=V.dtype, device=dev)
    Eo = torch.full((N * Pn + 1,), -1, dtype=E.dtype, device=dev)
    Vo.index_copy_(0, flat, torch.stack([V, X], dim=2).reshape(N * 2 * P, k))
    Eo.index_copy_(0, flat, labs.reshape(-1))
    return Vo[: N * Pn].view(N, Pn, k), Eo[: N * Pn].view(N, Pn), c


def split(V: torch.Tensor, E: torch.Tensor, cnt: torch.Tensor, s: torch.Tensor, eps: float, label: int):
    """Both halves of pieces cut by a line (values ``s (N, P)``): ``(V (2N, P', k), E, cnt)``, the
    positive parts first. Each piece must have vertices beyond eps on both sides."""
    return clip(torch.cat([V, V]), torch.cat([E, E]), torch.cat([cnt, cnt]), torch.cat([s, -s]), eps, label, drop_empty=False)


def _pad_to(V: torch.Tensor, E: torch.Tensor, P: int):
    if V.shape[1] == P:
        return V, E
    N, P0 = V.shape[:2]
    V2 = torch.zeros(N, P, V.shape[-1], dtype=V.dtype, device=V.device)
    E2 = torch.full((N, P), -1, dtype=E.dtype, device=E.device)
    V2[:, :P0] = V
    E2[:, :P0] = E
    return V2, E2


def _pad_with_first(V: torch.Tensor, cnt: torch.Tensor) -> torch.Tensor:
    """``V`` with every padding slot (past ``cnt``) set to the piece's vertex 0."""
    pad = torch.arange(V.shape[1], device=V.device)[None, :] >= cnt[:, None]
    return torch.where(pad.unsqueeze(-1), V[:, :1], V)


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


class Crossings(NamedTuple):
    """The lines crossing each region (:func:`crossing_table`) and, when asked for, what the children's
    patterns need: ``side (R, n)`` bool, each line's value > 0 at its region's vertex mean, and the
    ``near_r``, ``near_n`` (K,) pairs (region, line) where that sign may not hold all over the region
    (the line comes within the region's bounding ball, widened by eps). Everywhere else the line keeps
    that sign, beyond eps, on the whole region and so on every piece cut from it."""

    table: torch.Tensor
    ncross: torch.Tensor
    side: torch.Tensor | None = None
    near_r: torch.Tensor | None = None
    near_n: torch.Tensor | None = None


def crossing_table(V: torch.Tensor, cnt: torch.Tensor | None, H: torch.Tensor, eps: float, valid: torch.Tensor | None = None, sides: bool = False) -> Crossings:
    """The lines crossing each region, as a padded table.

    Regions ``V (R, P, k)`` (``cnt`` vertices each); raw lines ``H (R, k+1, n)``: line j of region r has
    value ``H[r, 0, j] + sum_i H[r, 1+i, j] u_i`` (rows, so every pass below reads contiguous memory).
    A bounding-ball test (|value at the vertex mean| <= radius * |a|) prunes the (region, line) pairs
    first, then the vertex values decide. Returns :class:`Crossings`: region r's crossing lines
    ``(a_1..a_k, b)`` normalised to |a| = 1, in ``table[r, :ncross[r]]`` (and with ``sides`` the signs at
    the centres and the pairs the ball test kept). (3D: pass all face vertices as ``V (R, M, 3)`` with
    a ``valid (R, M)`` mask instead of ``cnt``.)
    """
    R, P, k = V.shape
    dev = V.device
    if valid is None:
        valid = torch.arange(P, device=dev)[None, :] < cnt[:, None]
    vf = valid.unsqueeze(-1).to(V.dtype)
    center = (V * vf).sum(1) / vf.sum(1).clamp_min(1)
    d = V - center[:, None, :]
    rad = ((d * d).sum(2) * valid).amax(1).sqrt()
    # a few passes over the (R, n) values: this test reads every line of every region (memory bound)
    b = H[:, 0]
    hc = torch.addcmul(b, H[:, 1], center[:, 0:1])
    for i in range(1, k):
        hc.addcmul_(H[:, 1 + i], center[:, i : i + 1])
    an = torch.hypot(H[:, 1], H[:, 2]) if k == 2 else H[:, 1:].square().sum(1).sqrt_()
    b_min, b_max = torch.aminmax(b, dim=1)
    scale = an.amax(1) + torch.maximum(-b_min, b_max) + 1e-300
    side = hc > 0 if sides else None
    near = hc.abs_() <= an * (rad + eps)[:, None]
    near_r = near_n = None
    if sides:
        near_r, near_n = near.nonzero(as_tuple=True)
    cand = near.logical_and_(an > (1e-13 * scale)[:, None])  # not a (numerically) constant function
    del hc, an
    ri, ni = cand.nonzero(as_tuple=True)
    if ri.numel() == 0:
        empty = torch.zeros(R, 0, k + 1, dtype=V.dtype, device=dev)
        return Crossings(empty, torch.zeros(R, dtype=torch.int64, device=dev), side, near_r, near_n)
    raw = H[ri, :, ni]  # (K, k+1): b, a
    norm = torch.zeros(raw.shape[0], dtype=raw.dtype, device=dev)
    for i in range(k):
        norm.addcmul_(raw[:, 1 + i], raw[:, 1 + i])
    lines = torch.cat([raw[:, 1:], raw[:, :1]], 1) * (1.0 / norm.sqrt_())[:, None]  # (K, k+1): a, b
    # the exact vertex test, in slices of the candidates so that the gathered vertices stay small
    crosses = torch.empty(ri.shape[0], dtype=torch.bool, device=dev)
    step = max(1, CHECK_BYTES // (P * (k + 2) * V.element_size()))
    for lo in range(0, ri.shape[0], step):
        r, ln = ri[lo : lo + step], lines[lo : lo + step]
        s = torch.baddbmm(ln[:, k:, None], ln[:, None, :k], V[r].transpose(1, 2)).squeeze(1)
        vr = valid[r]
        crosses[lo : lo + step] = ((s > eps) & vr).any(1) & ((s < -eps) & vr).any(1)
    ri, lines = ri[crosses], lines[crosses]
    ncross = torch.bincount(ri, minlength=R)
    J = int(ncross.max()) if ri.numel() else 0
    start = torch.cumsum(ncross, 0) - ncross
    slot = torch.arange(ri.numel(), device=dev) - start[ri]
    table = torch.zeros(R, J, k + 1, dtype=V.dtype, device=dev)
    table[ri, slot] = lines
    return Crossings(table, ncross, side, near_r, near_n)


def subdivide(
    V: torch.Tensor,
    E: torch.Tensor,
    cnt: torch.Tensor,
    H: torch.Tensor,
    eps: float,
    label: int,
    max_regions: int | None = None,
    layer_name: str = "",
    cancel: Callable[[], bool] | None = None,
    window: int = 8,
    crossings: Crossings | None = None,
):
    """Cut every region ``r`` of ``(V, E, cnt)`` (R of them) by all its lines ``H[r] (3, n)`` (see crossing_table).

    Returns ``(V', E', cnt', owner)``: the pieces (padded) and the index of the region each came from.
    Each piece walks its region's crossing lines with a pointer; per step it looks at the next ``window``
    of them and is cut by the first that really crosses it, so lines that cross the region but miss the
    piece cost no step of their own. ``crossings``: :func:`crossing_table` of these regions and lines,
    when the caller has it already.
    """
    R = V.shape[0]
    dev = V.device
    chosen, ncross = (crossings if crossings is not None else crossing_table(V, cnt, H, eps))[:2]
    J = chosen.shape[1]
    owner = torch.arange(R, device=dev)
    done = []
    if J == 0:
        return V, E, cnt, owner
    # regions crossed by nothing are final already
    still = ncross > 0
    done.append((V[~still], E[~still], cnt[~still], owner[~still]))
    V, E, cnt, owner = V[still], E[still], cnt[still], owner[still]
    total = R
    V = _pad_with_first(V, cnt)  # padding repeats vertex 0: it never decides a cut, no mask per step
    ptr = torch.zeros(V.shape[0], dtype=torch.int64, device=dev)  # next candidate line of each piece
    nc = ncross[owner]  # number of candidate lines of each piece
    W = min(window, J)
    win = torch.arange(W, device=dev)
    flat_lines = chosen.reshape(R * J, 3)
    while V.shape[0]:
        if cancel is not None and cancel():
            raise CancelledError("tessellation cancelled.")
        # the next W candidate lines of each piece; cut by the first one that really crosses it
        Wt = max(1, min(W, int((nc - ptr).max())))  # no wider than the longest remainder
        jj = ptr[:, None] + win[None, :Wt]  # (Q, Wt)
        inwin = jj < nc[:, None]
        ln = flat_lines.index_select(0, (owner[:, None] * J + jj.clamp_max(J - 1)).reshape(-1)).view(-1, Wt, 3)
        Q, P = V.shape[:2]
        s = torch.addcmul(ln[..., 2:], ln[..., :1], V[:, None, :, 0])  # (Q, Wt, P): b + a_0 x (+ a_1 y below)
        s.addcmul_(ln[..., 1:2], V[:, None, :, 1])
        crosses = (s.amax(2) > eps) & (s.amin(2) < -eps) & inwin
        has = crosses.any(1)
        first = crosses.to(torch.int8).argmax(1)
        ptr = torch.where(has, ptr + first + 1, ptr + Wt)
        idx = has.nonzero().squeeze(1)
        n_cut = idx.numel()
        if n_cut:
            fi = first.index_select(0, idx)
            sc = s.index_select(0, idx)[torch.arange(n_cut, device=dev), fi]
            V2, E2, c2 = split(V.index_select(0, idx), E.index_select(0, idx), cnt.index_select(0, idx), sc, eps, label)
            Pn = max(P, V2.shape[1])
            if Pn > P:
                V, E = _pad_to(V, E, Pn)
                V = _pad_with_first(V, cnt)
            V2, E2 = _pad_to(V2, E2, Pn)
            V2 = _pad_with_first(V2, c2)
            V.index_copy_(0, idx, V2[:n_cut])
            E.index_copy_(0, idx, E2[:n_cut])
            cnt.index_copy_(0, idx, c2[:n_cut])
            V, E, cnt = torch.cat([V, V2[n_cut:]]), torch.cat([E, E2[n_cut:]]), torch.cat([cnt, c2[n_cut:]])
            owner = torch.cat([owner, owner.index_select(0, idx)])
            ptr = torch.cat([ptr, ptr.index_select(0, idx)])
            nc = torch.cat([nc, nc.index_select(0, idx)])
            total += n_cut
            if max_regions is not None and total > max_regions:
                raise BudgetExceededError(
                    f"the tessellation reached {total} regions at {layer_name} (over max_regions={max_regions}); "
                    f"lower the depth, shrink the domain or raise max_regions."
                )
        fin = ptr >= nc
        nfin = int(fin.sum())
        if nfin == V.shape[0] or nfin * 4 > V.shape[0]:
            done.append((V[fin], E[fin], cnt[fin], owner[fin]))
            keep = ~fin
            V, E, cnt, owner, ptr, nc = V[keep], E[keep], cnt[keep], owner[keep], ptr[keep], nc[keep]
    return cat_pieces(done)
