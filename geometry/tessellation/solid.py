"""Exact tessellation of a 3D slice: batched convex-polyhedron subdivision by planes.

The cutting kernel holds cells compactly (:class:`Cells`): each cell's distinct vertices once (padded
per cell) and its faces as loops of local vertex indices in flat arrays, with no padding of faces. A cut
computes one signed distance per vertex, one new vertex per cut edge (found by both faces along it),
clips the face loops as index lists and closes each part with a cap face: the on-plane and new
vertices, ordered by angle. As in 2D, points within eps of the plane count as on it, and a cell is cut
only with vertices beyond eps on both sides, so nothing degenerate is created and no volume is lost.
Faces share vertex indices, so each cell is a closed surface by construction.

The decision boundary (:func:`class_cells_3d`) clips a copy of each cell it crosses once per class with
the same kernel (:func:`clip_cells`: a clip may also keep a cell whole or empty it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from geometry.errors import BudgetExceededError, CancelledError, SplineAtlasError
from geometry.heap import release_free_memory
from geometry.tessellation import planar
from geometry.tessellation.affine import StopWalk, activate, walk
from geometry.tessellation.chunks import cat_offsets, chunk_count, starts
from geometry.tessellation.boundary import propagate_classes, slope_norms, two_class
from geometry.tessellation.prepare import domain_box3, layer_lines, layer_pattern, layer_summaries, num_lines, prepare
from geometry.tessellation.types import LayerCodes, Tessellation3D, pack_pattern


@dataclass(frozen=True)
class Cells:
    """Convex cells, compact: each cell's distinct vertices once, padded, and its faces as loops of local
    vertex indices, flat (no padding).

    ``V (N, M, 3)`` vertices (rows past ``nv`` are zero); ``nv (N,)``; ``loop (K,)`` local vertex indices,
    each face's corners contiguous and the faces in array order; ``face_size (F,)``; ``face_cell (F,)``;
    ``face_layer (F,) int16`` (the layer that made the face's plane, -1: the domain box). A cell's faces
    need not be contiguous. Two faces of a cell share an edge by sharing its two vertex indices, so
    adjacency is exact (no coordinate welding).
    """

    V: torch.Tensor
    nv: torch.Tensor
    loop: torch.Tensor
    face_size: torch.Tensor
    face_cell: torch.Tensor
    face_layer: torch.Tensor

    @property
    def n(self) -> int:
        return int(self.V.shape[0])

    def vertex_mask(self) -> torch.Tensor:
        return torch.arange(self.V.shape[1], device=self.V.device)[None, :] < self.nv[:, None]

    def take(self, mask: torch.Tensor) -> "Cells":
        """The cells where ``mask (N,)`` is true, in order."""
        fmask = mask[self.face_cell]
        return self._subset(mask, fmask, fmask.repeat_interleave(self.face_size), mask.cumsum(0) - 1)

    def partition(self, mask: torch.Tensor) -> tuple["Cells", "Cells"]:
        """``(take(mask), take(~mask))``, sharing the per-corner work."""
        fmask = mask[self.face_cell]
        cmask = fmask.repeat_interleave(self.face_size)
        new_id = torch.where(mask, mask.cumsum(0), (~mask).cumsum(0)) - 1  # each cell's index in its side
        return self._subset(mask, fmask, cmask, new_id), self._subset(~mask, ~fmask, ~cmask, new_id)

    def _subset(self, cells: torch.Tensor, faces: torch.Tensor, corners: torch.Tensor, new_id: torch.Tensor) -> "Cells":
        """The cells, faces and corners selected by the three masks; ``new_id``: each kept cell's new index."""
        nv = self.nv[cells]
        M = max(int(nv.max()) if nv.numel() else 1, 1)
        return Cells(self.V[cells][:, :M], nv, self.loop[corners], self.face_size[faces], new_id[self.face_cell[faces]], self.face_layer[faces])

    def reorder(self, perm: torch.Tensor) -> "Cells":
        """The cells in the order ``perm`` (a permutation): cell i of the result is cell ``perm[i]``."""
        inv = torch.empty_like(perm)
        inv[perm] = torch.arange(perm.shape[0], device=perm.device)
        return Cells(self.V[perm], self.nv[perm], self.loop, self.face_size, inv[self.face_cell], self.face_layer)

    @staticmethod
    def cat(parts: list["Cells"]) -> "Cells":
        parts = [p for p in parts if p.n] or parts[:1]
        M = max(p.V.shape[1] for p in parts)
        shift = 0
        cells = []
        for p in parts:
            cells.append(p.face_cell + shift)
            shift += p.n
        return Cells(
            torch.cat([torch.nn.functional.pad(p.V, (0, 0, 0, M - p.V.shape[1])) for p in parts]),
            torch.cat([p.nv for p in parts]),
            torch.cat([p.loop for p in parts]),
            torch.cat([p.face_size for p in parts]),
            torch.cat(cells),
            torch.cat([p.face_layer for p in parts]),
        )


def box_cells(box: np.ndarray, dtype, device) -> Cells:
    """The box ``[x0, x1, y0, y1, z0, z1]`` as one cell: 8 vertices, 6 outward-oriented faces."""
    x0, x1, y0, y1, z0, z1 = box
    corners = np.array([[x, y, z] for z in (z0, z1) for y in (y0, y1) for x in (x0, x1)])  # index = x + 2y + 4z
    loops = [[0, 2, 3, 1], [4, 5, 7, 6], [0, 1, 5, 4], [2, 6, 7, 3], [0, 4, 6, 2], [1, 3, 7, 5]]
    return Cells(
        torch.as_tensor(corners, dtype=dtype, device=device).unsqueeze(0),
        torch.tensor([8], device=device),
        torch.tensor(loops, device=device).reshape(-1),
        torch.full((6,), 4, dtype=torch.int64, device=device),
        torch.zeros(6, dtype=torch.int64, device=device),
        torch.full((6,), -1, dtype=torch.int16, device=device),
    )


def clip_cells(c: Cells, plane: torch.Tensor, eps: float, label: int) -> tuple[Cells, torch.Tensor]:
    """The part ``a.x + b >= 0`` of each cell (``plane (N, 4)``, |a| = 1) and ``kept (N,) bool``, the cells
    not left empty (those come back in order, dropped ones are gone). A cell with no vertex beyond -eps is
    kept whole; one with none beyond +eps is dropped; the others are cut (:func:`split_cells`)."""
    s = torch.baddbmm(plane[:, 3:].unsqueeze(2), c.V, plane[:, :3].unsqueeze(2)).squeeze(2)
    vm = c.vertex_mask()
    has_neg = ((s < -eps) & vm).any(1)
    cut = has_neg & ((s > eps) & vm).any(1)
    whole = ~has_neg
    if not bool(cut.any()):
        return c.take(whole), whole
    part, _ = split_cells(c.take(cut), plane[cut], eps, label)
    kept = whole | cut
    # back into the original order: the whole cells and the cut ones interleaved as they were
    merged = Cells.cat([c.take(whole), part])
    rank = torch.cat([whole.nonzero().squeeze(1), cut.nonzero().squeeze(1)]).argsort()
    return merged.reorder(rank), kept


def split_cells(c: Cells, plane: torch.Tensor, eps: float, label: int) -> tuple[Cells, Cells]:
    """Both parts of cells cut by planes ``plane (N, 4)`` (``a.x + b``, |a| = 1): the part ``>= 0`` first.

    Every cell must have vertices beyond eps on both sides. Vertices within eps count as on the plane and
    belong to both parts; every edge whose ends are beyond eps on opposite sides gets one new vertex,
    found by both faces sharing the edge; each part is closed by a cap face labelled ``label``: the
    on-plane and new vertices, ordered by angle (counter-clockwise seen from outside that part).
    """
    N, M, _ = c.V.shape
    dev, dtype = c.V.device, c.V.dtype
    NM = N * M
    a, b = plane[:, :3], plane[:, 3]
    Vf = c.V.reshape(NM, 3)
    s = torch.baddbmm(b.view(N, 1, 1), c.V, a.view(N, 3, 1)).view(NM)
    vm = c.vertex_mask().view(NM)
    pos, neg = s > eps, s < -eps
    # corners as global vertex ids (cell * M + local) and each one's successor in its face loop
    F = c.face_size.shape[0]
    corner_face = torch.arange(F, device=dev).repeat_interleave(c.face_size)
    g = c.face_cell[corner_face] * M + c.loop
    K = g.shape[0]
    fstart = torch.cumsum(c.face_size, 0) - c.face_size
    ar = torch.arange(K, device=dev)
    nxt = torch.where(ar + 1 < (fstart + c.face_size)[corner_face], ar + 1, fstart[corner_face])
    gn = g[nxt]
    cross = (pos[g] & neg[gn]) | (neg[g] & pos[gn])
    # one new vertex per cut edge: its two directed corners (one in each face along it) find the same one
    ck = cross.nonzero().squeeze(1)
    lo, hi = torch.minimum(g[ck], gn[ck]), torch.maximum(g[ck], gn[ck])
    edges, e_of = torch.unique(lo * NM + hi, return_inverse=True)
    elo, ehi = edges // NM, edges % NM
    t = s[elo] / (s[elo] - s[ehi])
    X = torch.addcmul(Vf[elo], t.unsqueeze(1), Vf[ehi] - Vf[elo])
    E = edges.shape[0]
    ecell = elo // M
    n_new = torch.bincount(ecell, minlength=N)
    erank = torch.arange(E, device=dev) - (torch.cumsum(n_new, 0) - n_new)[ecell]
    corner_edge = torch.full((K,), E, dtype=torch.int64, device=dev)  # E: no new vertex (a pad entry)
    corner_edge[ck] = e_of
    # the cap's points (on-plane vertices, then new ones) ordered by angle about the plane normal
    on_idx = (vm & ~pos & ~neg).nonzero().squeeze(1)
    cap_cell = torch.cat([on_idx // M, ecell])
    cap_xyz = torch.cat([Vf[on_idx], X])
    ncap = torch.bincount(cap_cell, minlength=N)
    center = torch.zeros(N, 3, dtype=dtype, device=dev).index_add_(0, cap_cell, cap_xyz) / ncap.clamp_min(1).unsqueeze(1)
    helper = torch.where(a[:, :1].abs() < 0.9, torch.tensor([1.0, 0, 0], dtype=dtype, device=dev), torch.tensor([0, 1.0, 0], dtype=dtype, device=dev))
    e1 = torch.linalg.cross(a, helper)
    e1 = e1 / e1.norm(dim=1, keepdim=True)
    e2 = torch.linalg.cross(a, e1)
    d = cap_xyz - center[cap_cell]
    ang = -torch.atan2((d * e2[cap_cell]).sum(1), (d * e1[cap_cell]).sum(1))  # counter-clockwise about -a
    order = torch.argsort(ang, stable=True)
    order = order[torch.argsort(cap_cell[order], stable=True)]
    cap_start = torch.cumsum(ncap, 0) - ncap
    sc = cap_cell[order]
    within = torch.arange(order.shape[0], device=dev) - cap_start[sc]
    reverse = order[cap_start[sc] + ncap[sc] - 1 - within]  # each cell's cap loop reversed: the other part's outside
    cells = torch.arange(N, device=dev)

    def part(drop: torch.Tensor, cap_order: torch.Tensor) -> Cells:
        keep = vm & ~drop
        local = keep.view(N, M).cumsum(1).view(NM) - 1
        nk = keep.view(N, M).sum(1)
        new_local = torch.cat([nk[ecell] + erank, torch.zeros(1, dtype=torch.int64, device=dev)])
        nv = nk + n_new
        Mp = int(nv.max())
        Vp = torch.zeros(N * Mp, 3, dtype=dtype, device=dev)
        kidx = keep.nonzero().squeeze(1)
        Vp[(kidx // M) * Mp + local[kidx]] = Vf[kidx]
        Vp[ecell * Mp + new_local[:E]] = X
        # each face loop clipped: a kept corner, then the new vertex on the edge to its successor
        emit = torch.stack([~drop[g], cross], 1)
        size = torch.zeros(F, dtype=torch.int64, device=dev).index_add_(0, corner_face, emit.sum(1))
        fkeep = size >= 3
        emit &= fkeep[corner_face].unsqueeze(1)
        loop = torch.stack([local[g], new_local[corner_edge]], 1)[emit]
        cap_loop = torch.cat([local[on_idx], new_local[:E]])[cap_order]
        return Cells(
            Vp.view(N, Mp, 3),
            nv,
            torch.cat([loop, cap_loop]),
            torch.cat([size[fkeep], ncap]),
            torch.cat([c.face_cell[fkeep], cells]),
            torch.cat([c.face_layer[fkeep], torch.full((N,), label, dtype=c.face_layer.dtype, device=dev)]),
        )

    return part(neg, order), part(pos, reverse)


def _crossings(c: Cells, ln: torch.Tensor, eps: float) -> torch.Tensor:
    """(Q, W) bool: plane ``ln[q, w]`` has vertices of cell q beyond eps on both sides (in slices of cells,
    so the (Q, W, M) values never take much more than ``planar.CHECK_BYTES``)."""
    Q, W, _ = ln.shape
    M = c.V.shape[1]
    out = torch.empty(Q, W, dtype=torch.bool, device=ln.device)
    step = max(1, planar.CHECK_BYTES // (W * M * c.V.element_size()))
    pad = ~c.vertex_mask()
    for lo in range(0, Q, step):
        s = torch.baddbmm(ln[lo : lo + step, :, 3:], ln[lo : lo + step, :, :3], c.V[lo : lo + step].transpose(1, 2))  # (q, W, M)
        s.masked_fill_(pad[lo : lo + step].unsqueeze(1), 0.0)  # padding: on every plane, so it never decides a cut
        out[lo : lo + step] = (s.amax(2) > eps) & (s.amin(2) < -eps)
    return out


def subdivide_cells(
    c: Cells,
    H,
    eps: float,
    label: int,
    max_regions=None,
    layer_name: str = "",
    cancel: Callable[[], bool] | None = None,
    window: int = 8,
    crossings: planar.Crossings | None = None,
) -> tuple[Cells, torch.Tensor]:
    """Cut every cell by all its planes ``H[r] (4, n)`` (see planar.crossing_table and planar.subdivide).

    Returns ``(cells, owner)``: the pieces and the index of the cell each came from. ``crossings``: the
    crossing table of these cells and planes, when the caller has it already.
    """
    R = c.n
    dev = c.V.device
    chosen, ncross = (crossings if crossings is not None else planar.crossing_table(c.V, None, H, eps, valid=c.vertex_mask()))[:2]
    J = chosen.shape[1]
    owner = torch.arange(R, device=dev)
    if J == 0:
        return c, owner
    still = ncross > 0
    c, finished = c.partition(still)
    done = [(finished, owner[~still])]
    owner = owner[still]
    ptr = torch.zeros(c.n, dtype=torch.int64, device=dev)
    W = min(window, J)
    win = torch.arange(W, device=dev)
    total = R
    while c.n:
        if cancel is not None and cancel():
            raise CancelledError("tessellation cancelled.")
        nco = ncross[owner]
        Wt = max(1, min(W, int((nco - ptr).max())))
        jj = ptr[:, None] + win[None, :Wt]
        inwin = jj < nco[:, None]
        ln = chosen[owner[:, None], jj.clamp_max(J - 1)]  # (Q, Wt, 4)
        crosses = _crossings(c, ln, eps) & inwin
        has = crosses.any(1)
        first = crosses.to(torch.int8).argmax(1)
        ptr = torch.where(has, ptr + first + 1, ptr + Wt)
        idx = has.nonzero().squeeze(1)
        if idx.numel():
            cut, rest = c.partition(has)
            cut_pos, cut_neg = split_cells(cut, ln[idx, first[idx]], eps, label)
            keep = ~has
            c = Cells.cat([rest, cut_pos, cut_neg])
            owner = torch.cat([owner[keep], owner[idx], owner[idx]])
            ptr = torch.cat([ptr[keep], ptr[idx], ptr[idx]])
            total += int(idx.numel())
            if max_regions is not None and total > max_regions:
                raise BudgetExceededError(
                    f"the tessellation reached {total} regions at {layer_name} (over max_regions={max_regions}); "
                    f"lower the depth, shrink the domain or raise max_regions."
                )
        fin = ptr >= ncross[owner]
        nfin = int(fin.sum())
        if nfin == c.n or nfin * 4 > c.n:
            finished, c = c.partition(fin)
            done.append((finished, owner[fin]))
            owner, ptr = owner[~fin], ptr[~fin]
    return Cells.cat([d[0] for d in done]), torch.cat([d[1] for d in done])


def cell_interiors(c: Cells) -> torch.Tensor:
    """(N, 3) a strictly interior point of each cell (the mean of its vertices)."""
    return c.V.sum(1) / c.nv.clamp_min(1).unsqueeze(1).to(c.V.dtype)  # the padding rows are zero


def _faces_by_cell(c: Cells):
    """Faces reordered so that each cell's are contiguous: (order (F,), the corner positions of the reordered loops)."""
    order = torch.argsort(c.face_cell, stable=True)
    size = c.face_size[order]
    fstart = torch.cumsum(c.face_size, 0) - c.face_size
    pos = torch.cumsum(size, 0) - size
    corners = fstart[order].repeat_interleave(size) + torch.arange(int(size.sum()), device=size.device) - pos.repeat_interleave(size)
    return order, corners


def ragged_cells(c: Cells):
    """-> (vertices, vertex_offsets, face_indices, face_offsets, cell_face_offsets, face_layer) as numpy,
    face loops indexing the global vertex array (each cell owns its vertices)."""
    vm = c.vertex_mask()
    vertices = c.V[vm].cpu().numpy()
    nv = c.nv.cpu().numpy()
    vertex_offsets = np.zeros(c.n + 1, dtype=np.int64)
    np.cumsum(nv, out=vertex_offsets[1:])
    order, corners = _faces_by_cell(c)
    size = c.face_size[order]
    cell = c.face_cell[order]
    face_indices = (torch.as_tensor(vertex_offsets[:-1], device=c.V.device)[cell.repeat_interleave(size)] + c.loop[corners]).cpu().numpy()
    face_offsets = np.zeros(size.shape[0] + 1, dtype=np.int64)
    np.cumsum(size.cpu().numpy(), out=face_offsets[1:])
    cell_face_offsets = np.zeros(c.n + 1, dtype=np.int64)
    np.cumsum(torch.bincount(c.face_cell, minlength=c.n).cpu().numpy(), out=cell_face_offsets[1:])
    return vertices, vertex_offsets, face_indices.astype(np.int64), face_offsets, cell_face_offsets, c.face_layer[order].cpu().numpy().astype(np.int16)


MAX_SPLIT_LEVELS = 6  # chunks of chunks ... at most this deep


def _memory_stop(need: int, budget: int, cells: int, layer: str) -> BudgetExceededError:
    return BudgetExceededError(
        f"{layer}: the affine maps of {cells:,} cells would need {need / 2**30:.2f} GiB (memory budget {budget / 2**30:.2f} GiB), "
        "even in chunks of cells: raise --memory-budget, shrink the box or lower the depth."
    )


class _Split(Exception):
    """A layer's maps would exceed the memory budget: the pass stops, and its cells before that layer's
    cut go on through the rest of the network in ``chunks`` groups, one after the other."""

    def __init__(self, layer: int, cells: Cells, codes: LayerCodes, records: list, chunks: int, need: int):
        super().__init__(f"layer {layer + 1}: split into {chunks} chunks")
        self.layer, self.cells, self.codes, self.records, self.chunks, self.need = layer, cells, codes, records, chunks, need


def tessellate_all_depths_3d(
    network, slice_, domain, depth, device, max_regions, tol, progress, cancel, boundary, slope_norm: bool = True, memory_budget: int | None = None
):
    """3D counterpart of :func:`geometry.tessellation.engine.tessellate_all_depths` (same arguments).

    Bounded memory: when a layer's affine maps (and cut planes, and its children's maps) would exceed
    ``memory_budget`` bytes (None: no limit), its cells are cut and carried through the remaining layers in
    chunks, depth first (:func:`_bounded`); cells never straddle chunks, so the chunks' results are simply
    concatenated (no gluing). The result's cells are then grouped by chunk.
    """
    t0 = time.perf_counter()
    L = network.depth
    if L == 0:
        raise SplineAtlasError("this network has no nonlinearity: it is affine, so the whole slice is one region.")
    target = L if depth is None else int(depth)
    if not 1 <= target <= L:
        raise SplineAtlasError(f"depth must be between 1 and {L} (the network's number of nonlinearities); got {depth}.")
    box = domain_box3(slice_, domain)
    net, dev, X = prepare(network, slice_, device)
    diam = float(np.linalg.norm(box[1::2] - box[0::2]))
    eps = tol * diam
    layers = layer_summaries(network)
    run = dict(
        net=net, slice=slice_, X=X, L=L, target=target, layers=layers, eps=eps, max_regions=max_regions, cancel=cancel, progress=progress,
        boundary=boundary, slope_norm=slope_norm, budget=memory_budget, dev=dev, t0=t0, passes=[0],
    )  # fmt: skip
    with torch.no_grad():
        records, full = _bounded(run, box_cells(box, X.dtype, dev), 0, 0)
    if max_regions is not None and records[-1]["parent"].shape[0] > max_regions:  # the chunks together
        raise BudgetExceededError(
            f"the tessellation reached {records[-1]['parent'].shape[0]} regions (over max_regions={max_regions}); "
            "lower the depth, shrink the domain or raise max_regions."
        )
    R_full = records[-1]["parent"].shape[0]
    chain = (
        propagate_classes([r["parent"] for r in records], full.get("classes_const"), R_full)
        if full
        else [np.full(r["parent"].shape[0], -1, dtype=np.int64) for r in records]
    )
    out = []
    for l, rec in enumerate(records):
        R = rec["parent"].shape[0]
        is_full = bool(full) and l == len(records) - 1
        verts, voff, fidx, foff, cfoff, flayer = rec["geom"]
        common = dict(
            slice=slice_,
            domain=box,
            depth=l + 1,
            layers=layers,
            vertices=verts,
            vertex_offsets=voff,
            face_indices=fidx,
            face_offsets=foff,
            cell_face_offsets=cfoff,
            face_layer=flayer,
            codes=rec["codes"],
            parent=rec["parent"],
            classes=full["classes"] if is_full else chain[l],
            class_mixed=full["class_mixed"] if is_full else np.zeros(R, dtype=bool),
            slope_norm=full["slope_norm"] if is_full else np.full(R, np.nan),
            num_classes=network.num_classes,
            tolerance=eps,
            seconds=rec["seconds"],
            device=str(dev),
            chunks=run["passes"][0],
        )
        if full:
            common.update(
                boundary_vertices=full["bverts"], boundary_offsets=full["boffsets"], boundary_classes=full["bclasses"], boundary_region=full["bregion"]
            )
        if is_full:
            common.update(out_linear=full["out_linear"], out_offset=full["out_offset"], seconds=time.perf_counter() - t0)
        out.append(Tessellation3D(**common))
    if progress is not None:
        chunks = f" (in {run['passes'][0]} chunks)" if run["passes"][0] > 1 else ""
        progress(1.0, f"{out[-1].num_regions} cells in {time.perf_counter() - t0:.2f} s{chunks}")
    return out


def _bounded(run: dict, cells: Cells, start: int, level: int) -> tuple[list, dict]:
    """The records of depths ``start + 1 .. target`` of ``cells`` (cells of depth ``start``) and the
    full-depth outputs; a layer over the memory budget continues in chunks of its cells."""
    try:
        done = _pass(run, cells, start)
        run["passes"][0] += 1
        return done
    except _Split as sp:
        layer, pre, codes, records, m, need = sp.layer, sp.cells, sp.codes, sp.records, sp.chunks, sp.need
    # out of the handler: the failed pass's frames (and their maps) are gone now
    name = f"layer {min(layer + 1, run['L'])} of {run['L']}"
    if pre.n < 2 or level >= MAX_SPLIT_LEVELS:
        raise _memory_stop(need, run["budget"], pre.n, name)
    parts, ids = [], np.array_split(np.arange(pre.n), m)
    for i, chunk in enumerate(ids):
        mask = torch.zeros(pre.n, dtype=torch.bool, device=pre.V.device)
        mask[torch.as_tensor(chunk, device=pre.V.device)] = True
        if run["progress"] is not None:
            run["progress"](layer / run["target"], f"{name}: chunk {i + 1}/{m} of {pre.n:,} cells")
        parts.append(_bounded(run, pre.take(mask), layer, level + 1))
    del pre
    merged, full = _concat_chunks(parts, ids, codes, layer)
    return records + merged, full


def _pass(run: dict, cells: Cells, start: int) -> tuple[list, dict]:
    """One walk through the network from ``cells`` (of depth ``start``: every layer before ``start`` is
    constant on each, so those layers only fix patterns and maps): the records of depths ``start + 1 ..``
    and the full-depth outputs. Raises :class:`_Split` before a layer would exceed the budget."""
    net, L, target, layers, eps, budget, t0 = run["net"], run["L"], run["target"], run["layers"], run["eps"], run["budget"], run["t0"]
    progress, cancel = run["progress"], run["cancel"]
    X = run["X"].expand(cells.n, *run["X"].shape[1:])
    state = {"cells": cells, "codes": LayerCodes(())}
    records: list[dict] = []

    def on_nonlinearity(module, j, X):
        if j < start:  # cells lie inside one region of this layer: its pattern at an interior point
            c = state["cells"]
            pattern = layer_pattern(module, X, cell_interiors(c))
            state["codes"] = state["codes"].refine(np.arange(c.n), pack_pattern(pattern.cpu().numpy(), layers[j].kind))
            return activate(module, X, pattern), None
        if progress is not None:
            progress(j / target, f"layer {j + 1}/{target}: cutting {state['cells'].n} cells")
        name = f"layer {j + 1} of {L}"
        R, row = X.shape[0], X[0].numel() * X.element_size()
        lines = R * X.shape[1] * num_lines(module, X) * X.element_size()
        if budget is not None and R * row + 2 * lines > budget:  # this layer's maps and planes
            raise _Split(j, state["cells"], state["codes"], records, chunk_count(R * row + 2 * lines, budget), R * row + 2 * lines)
        H = layer_lines(module, X)
        before = state["cells"]
        crossings = planar.crossing_table(before.V, None, H, eps, valid=before.vertex_mask())
        last = j + 1 == target and target < L  # the walk ends here: no maps for a next layer
        if budget is not None and not last and before.n >= 2:  # every crossing plane adds a cell at least: split before cutting
            fewest = R * row + 2 * (R + int(crossings.ncross.sum())) * row
            if fewest > budget:
                raise _Split(j, before, state["codes"], records, chunk_count(fewest, budget), fewest)
        cells, owner = subdivide_cells(before, H, eps, j, max_regions=run["max_regions"], layer_name=name, cancel=cancel, crossings=crossings)
        del H, crossings
        release_free_memory()  # the holes the cutting left in the heap, before the next layer's work (3D keeps its peak low)
        need = R * row + (0 if last else 2 * cells.n * row)  # the children's maps, then the next layer's
        over = budget is not None and need > budget
        if over and before.n >= 2:
            raise _Split(j, before, state["codes"], records, chunk_count(need, budget), need)
        del before
        # over the budget with one cell (the box) cut into too many children to carry at once: they are
        # recorded here and go on in chunks from the next layer (each lies inside one region of this layer
        # and every earlier one); so, as when the walk ends here, only their patterns are needed
        if last or over:
            pattern = _pattern_in_slices(module, X, owner, cells, budget)
            Xo = None
        else:  # one parent (the box): every child reads its map through a view until it is activated
            Xo = X.expand(owner.shape[0], *X.shape[1:]) if R == 1 else X[owner]
            pattern = layer_pattern(module, Xo, cell_interiors(cells))
        own_np = owner.cpu().numpy()
        codes = state["codes"].refine(own_np, pack_pattern(pattern.cpu().numpy(), layers[j].kind))
        state.update(cells=cells, codes=codes)
        records.append(dict(geom=ragged_cells(cells), codes=codes, parent=own_np, seconds=time.perf_counter() - t0))
        if over:
            raise _Split(j + 1, cells, codes, records, chunk_count(need, budget), need)
        if last:
            raise StopWalk
        return activate(module, Xo, pattern, inplace=R != 1), owner  # Xo is our own copy unless it is the view

    logits = None
    try:
        logits = walk(net.layers, X, on_nonlinearity)
    except StopWalk:
        pass
    full = {}
    if logits is not None:
        Xl = logits.reshape(logits.shape[0], logits.shape[1], -1)
        out_offset = Xl[:, 0, :]
        out_linear = Xl[:, 1:, :].transpose(1, 2).contiguous()
        full = class_cells_3d(state["cells"], out_linear, out_offset, eps, run["boundary"])
        full.update(
            out_linear=out_linear.cpu().numpy(),
            out_offset=out_offset.cpu().numpy(),
            slope_norm=slope_norms(net, run["slice"], out_linear, state["codes"], run["dev"]) if run["slope_norm"] else np.full(out_linear.shape[0], np.nan),
        )
    return records, full


PATTERN_SLICE_BYTES = 64 << 20  # children's maps gathered at a time to read their patterns


def _pattern_in_slices(module, X: torch.Tensor, owner: torch.Tensor, cells: Cells, budget: int | None) -> torch.Tensor:
    """The children's patterns of this layer (as :func:`layer_pattern` on ``X[owner]``) without holding all
    their maps: slices of children, each slice's maps at most ``PATTERN_SLICE_BYTES`` (or a quarter of the
    budget)."""
    row = X[0].numel() * X.element_size()
    cap = PATTERN_SLICE_BYTES if budget is None else min(PATTERN_SLICE_BYTES, max(budget // 4, 1))
    step = max(1, cap // max(row, 1))
    interior = cell_interiors(cells)
    parts = [layer_pattern(module, X[owner[a : a + step]], interior[a : a + step]) for a in range(0, owner.shape[0], step)]
    return torch.cat(parts) if parts else layer_pattern(module, X[owner], interior)


def _concat_chunks(parts: list, ids: list, codes: LayerCodes, start: int) -> tuple[list, dict]:
    """The records of depths ``start + 1 ..`` and full outputs of the cells ``ids[i]`` of depth ``start``,
    from each chunk's own (``parts[i]``). ``codes``: the depth-``start`` codes of all those cells; a chunk
    recomputed layers ``0 .. start - 1`` on its own cells, so those layers point into ``codes`` again."""
    n_depths = len(parts[0][0])
    # where each chunk's cells start in each concatenated record (record k: depth start + 1 + k)
    begin = [starts([p[0][k]["parent"].shape[0] for p in parts]) for k in range(n_depths)]
    records = []
    for k in range(n_depths):
        recs = [p[0][k] for p in parts]
        parent = np.concatenate(
            [ids[i][r["parent"]] if k == 0 else r["parent"] + begin[k - 1][i] for i, r in enumerate(recs)]
        ).astype(np.int64)  # fmt: skip
        own, rows = [], []
        for l in range(start + k + 1):
            if l < start:  # this layer's codes live in ``codes``: each cell's row there, through its chunk's cell
                base = codes.rows[l]
                anc = np.concatenate([ids[i][np.asarray(r["codes"].rows[l])] for i, r in enumerate(recs)])
                own.append(codes.own[l])
                rows.append((anc if base is None else np.asarray(base)[anc]).astype(np.int32))
            else:
                own.append(np.concatenate([r["codes"].own[l] for r in recs]))
                if recs[0]["codes"].rows[l] is None:  # layer l was cut at this depth: the rows are the cells
                    rows.append(None)
                else:  # layer l's codes live on depth l + 1: record l - start of each chunk
                    rows.append(np.concatenate([np.asarray(r["codes"].rows[l]) + begin[l - start][i] for i, r in enumerate(recs)]).astype(np.int32))
        merged = LayerCodes(tuple(own), tuple(rows), n=int(begin[k][-1]))
        records.append(dict(geom=_concat_geometry([r["geom"] for r in recs]), codes=merged, parent=parent, seconds=max(r["seconds"] for r in recs)))
    full = {}
    if parts[0][1]:
        fulls = [p[1] for p in parts]
        for key in ("out_linear", "out_offset", "slope_norm", "classes", "class_mixed", "classes_const", "bverts", "bclasses"):
            full[key] = np.concatenate([f[key] for f in fulls])
        cell_starts = begin[-1] if begin else starts([len(i) for i in ids])  # no cut in the chunks: their cells are the full-depth ones
        full["bregion"] = np.concatenate([f["bregion"] + cell_starts[i] for i, f in enumerate(fulls)]).astype(np.int64)
        full["boffsets"] = cat_offsets([f["boffsets"] for f in fulls], starts([f["bverts"].shape[0] for f in fulls]))
    return records, full


def _concat_geometry(geoms: list) -> tuple:
    """Ragged cells (see :func:`ragged_cells`) one after the other."""
    verts, voff, fidx, foff, cfoff, flayer = zip(*geoms)
    nv = starts([v.shape[0] for v in verts])
    return (
        np.concatenate(verts),
        cat_offsets(voff, nv),
        np.concatenate([f + nv[i] for i, f in enumerate(fidx)]).astype(np.int64),
        cat_offsets(foff, starts([f.shape[0] for f in fidx])),
        cat_offsets(cfoff, starts([f.shape[0] - 1 for f in foff])),
        np.concatenate(flayer),
    )


def class_cells_3d(cells: Cells, out_linear, out_offset, eps: float, boundary: bool = True) -> dict:
    """Classes per cell and the exact argmax decision boundary polygons (see boundary.class_cells_2d)."""

    lin, off = two_class(out_linear, out_offset)
    N = cells.n
    C = lin.shape[1]
    dev = cells.V.device
    interior = cell_interiors(cells)
    cls = (torch.einsum("rck,rk->rc", lin, interior) + off).argmax(1)
    pts = cells.V
    vm = cells.vertex_mask()
    fv = torch.einsum("rck,rpk->rpc", lin, pts) + off[:, None, :]
    own = fv.gather(2, cls.view(N, 1, 1).expand(N, pts.shape[1], 1)).squeeze(2)
    gnorm = lin.norm(dim=2).amax(1).clamp_min(1e-300)
    mixed = (((fv.amax(2) - own) > 2 * eps * gnorm[:, None]) & vm).any(1)
    res = dict(classes=cls.cpu().numpy().astype(np.int64))
    bverts = np.zeros((0, 3))
    boffsets = np.zeros(1, dtype=np.int64)
    bclasses = np.zeros((0, 2), dtype=np.int64)
    bregion = np.zeros(0, dtype=np.int64)
    midx = mixed.nonzero().squeeze(1)
    if boundary and midx.numel():
        Rm = midx.numel()
        pieces = Cells.cat([cells.take(mixed)] * C)  # one copy of each mixed cell per class
        pieces = Cells(pieces.V, pieces.nv, pieces.loop, pieces.face_size, pieces.face_cell, torch.full_like(pieces.face_layer, -1))
        pclass = torch.arange(C, device=dev).repeat_interleave(Rm)
        preg = midx.repeat(C)
        for j in range(C):
            a = lin[preg, pclass] - lin[preg, j]
            b = off[preg, pclass] - off[preg, j]
            n = a.norm(dim=1)
            flat = (n <= 1e-13 * (n + b.abs() + 1e-300)) | (pclass == j)
            a = torch.where(flat.unsqueeze(1), 0.0, a / torch.where(flat, 1.0, n).unsqueeze(1))
            b = torch.where(flat, torch.where((b >= 0) | (pclass == j), 1.0, -1.0).to(b.dtype), b / torch.where(flat, 1.0, n))
            pieces, kept = clip_cells(pieces, torch.cat([a, b.unsqueeze(1)], 1), eps, j)
            pclass, preg = pclass[kept], preg[kept]
        ncell = torch.bincount(preg, minlength=N)
        mixed = mixed & (ncell > 1)
        # boundary polygons: faces of the piece of class c made by the constraint f_c = f_j, c < j
        order, corners = _faces_by_cell(pieces)
        fcell = pieces.face_cell[order]
        layer = pieces.face_layer[order].long()
        isb = (layer > pclass[fcell]) & (ncell[preg[fcell]] > 1)
        size = pieces.face_size[order]
        on_b = isb.repeat_interleave(size)
        ccell = fcell.repeat_interleave(size)[on_b]
        bverts = pieces.V.reshape(-1, 3)[ccell * pieces.V.shape[1] + pieces.loop[corners][on_b]].cpu().numpy()
        boffsets = np.zeros(int(isb.sum()) + 1, dtype=np.int64)
        np.cumsum(size[isb].cpu().numpy(), out=boffsets[1:])
        bclasses = torch.stack([pclass[fcell[isb]], layer[isb]], 1).cpu().numpy()
        bregion = preg[fcell[isb]].cpu().numpy()
    res["class_mixed"] = mixed.cpu().numpy()
    const = res["classes"].copy()
    const[res["class_mixed"]] = -1
    res.update(classes_const=const, bverts=bverts, boffsets=boffsets, bclasses=bclasses.astype(np.int64), bregion=bregion.astype(np.int64))
    return res
