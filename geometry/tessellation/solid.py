"""Exact tessellation of a 3D slice: batched convex-polyhedron subdivision by planes.

A cell is held padded as its faces: ``V (N, F, P, 3)`` vertex loops (counter-clockwise seen from outside),
``fc (N, F)`` vertex counts (0 = no face in that slot), ``FL (N, F) int16`` the layer that made each face
(-1: the domain box). Cutting by a plane clips every face polygon (the 2D clip works on 3D points), and
closes each half with a *cap* face: the on-plane points, ordered by angle around their mean. As in 2D,
points within eps of the plane count as on it, and a cell is cut only with vertices beyond eps on both
sides, so nothing degenerate is created and no volume is lost.
"""

from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np
import torch

from geometry.errors import BudgetExceededError, CancelledError, SplineAtlasError
from geometry.tessellation import planar
from geometry.tessellation.affine import StopWalk, activate, walk
from geometry.tessellation.boundary import propagate_classes, slope_norms, two_class
from geometry.tessellation.prepare import domain_box3, layer_lines, layer_pattern, layer_summaries, prepare
from geometry.tessellation.types import LayerCodes, Tessellation3D, pack_pattern


def _box_faces(box: np.ndarray, dtype, device):
    """The 6 outward-oriented faces of a box ``[x0, x1, y0, y1, z0, z1]`` as ``(1, 6, 4, 3)``."""
    x0, x1, y0, y1, z0, z1 = box
    c = np.array([[x, y, z] for z in (z0, z1) for y in (y0, y1) for x in (x0, x1)])  # index = x + 2y + 4z
    loops = [[0, 2, 3, 1], [4, 5, 7, 6], [0, 1, 5, 4], [2, 6, 7, 3], [0, 4, 6, 2], [1, 3, 7, 5]]
    V = torch.as_tensor(c[np.array(loops)], dtype=dtype, device=device).unsqueeze(0)
    fc = torch.full((1, 6), 4, dtype=torch.int64, device=device)
    FL = torch.full((1, 6), -1, dtype=torch.int16, device=device)
    return V, fc, FL


def _valid(fc: torch.Tensor, P: int) -> torch.Tensor:
    return torch.arange(P, device=fc.device).view(1, 1, P) < fc.unsqueeze(-1)


def _compact(V: torch.Tensor, fc: torch.Tensor, FL: torch.Tensor, extra: int = 0):
    """Move the non-empty faces of each cell to the front and trim the padding (+ ``extra`` free slots)."""
    N, F, P, _ = V.shape
    order = torch.sort((fc > 0).to(torch.int8), dim=1, descending=True, stable=True).indices
    nf = int((fc > 0).sum(1).max()) if N else 0
    order = order[:, :nf]
    V = V.gather(1, order.view(N, nf, 1, 1).expand(N, nf, P, 3))
    fc = fc.gather(1, order)
    FL = FL.gather(1, order)
    Pm = int(fc.max()) if N and nf else 1
    V = V[:, :, :Pm]
    if extra:
        V = torch.cat([V, V.new_zeros(N, extra, Pm, 3)], 1)
        fc = torch.cat([fc, fc.new_zeros(N, extra)], 1)
        FL = torch.cat([FL, FL.new_full((N, extra), -1)], 1)
    return V, fc, FL


def clip_cells(V: torch.Tensor, fc: torch.Tensor, FL: torch.Tensor, plane: torch.Tensor, eps: float, label: int):
    """Keep the part ``a.x + b >= -eps`` of each cell (``plane (N, 4)``, |a| = 1), closed by a cap face
    labelled ``label``. Cells left without volume come back with no faces (``fc`` all 0)."""
    N, F, P, _ = V.shape
    dev = V.device
    a, b = plane[:, :3], plane[:, 3]
    s = torch.baddbmm(b.view(N, 1, 1), V.view(N, F * P, 3), a.view(N, 3, 1)).view(N, F, P)
    s = torch.where(_valid(fc, P), s, torch.zeros_like(s))
    dummy = torch.zeros(N * F, P, dtype=torch.int16, device=dev)
    Vc, _, cc = planar.clip(V.reshape(N * F, P, 3), dummy, fc.reshape(N * F), s.reshape(N * F, P), eps, 0)
    P2 = Vc.shape[1]
    Vc = Vc.view(N, F, P2, 3)
    cc = cc.view(N, F)
    # cap: the on-plane points of the clipped faces, ordered around their mean (CCW about -a: outward)
    sv = torch.baddbmm(b.view(N, 1, 1), Vc.reshape(N, F * P2, 3), a.view(N, 3, 1)).view(N, F, P2)
    on = _valid(cc, P2) & (sv.abs() <= 2 * eps)
    pts = Vc.reshape(N, F * P2, 3)
    on = on.reshape(N, F * P2)
    non = on.sum(1)
    center = (pts * on.unsqueeze(-1)).sum(1) / non.clamp_min(1).unsqueeze(-1)
    helper = torch.where((a[:, :1].abs() < 0.9), torch.tensor([1.0, 0, 0], dtype=V.dtype, device=dev), torch.tensor([0, 1.0, 0], dtype=V.dtype, device=dev))
    e1 = torch.linalg.cross(a, helper)
    e1 = e1 / e1.norm(dim=1, keepdim=True)
    e2 = torch.linalg.cross(a, e1)
    d = pts - center.unsqueeze(1)
    ang = -torch.atan2((d * e2.unsqueeze(1)).sum(2), (d * e1.unsqueeze(1)).sum(2))
    ang = torch.where(on, ang, torch.full_like(ang, float("inf")))
    order = ang.argsort(1)
    ps = pts.gather(1, order.unsqueeze(-1).expand(-1, -1, 3))
    ok = on.gather(1, order)
    prev = torch.roll(ps, 1, 1)
    # the predecessor of the first valid point is the last valid one
    last = (non - 1).clamp_min(0)
    prev[:, 0] = ps[torch.arange(N, device=dev), last]
    dup = (ps - prev).norm(dim=2) <= 2 * eps
    dup[:, 0] = dup[:, 0] & (non > 1)
    keep = ok & ~dup
    ncap = keep.sum(1)
    has_cap = ncap >= 3
    keep = keep & has_cap.unsqueeze(1)
    Pc = max(int(ncap.max()) if N else 0, P2, 1)
    slot = keep.cumsum(1) - 1
    flat = (torch.arange(N, device=dev)[:, None] * Pc + slot)[keep]
    cap = torch.zeros(N * Pc, 3, dtype=V.dtype, device=dev)
    cap[flat] = ps[keep]
    cap = cap.view(N, 1, Pc, 3)
    if Pc > P2:
        Vc = torch.cat([Vc, Vc.new_zeros(N, F, Pc - P2, 3)], 2)
    Vo = torch.cat([Vc, cap], 1)
    fco = torch.cat([cc, torch.where(has_cap, ncap, 0).unsqueeze(1)], 1)
    FLo = torch.cat([FL, torch.full((N, 1), label, dtype=FL.dtype, device=dev)], 1)
    # a cell whose kept part has no volume: drop all its faces
    alive = (fco > 0).sum(1) >= 4
    fco = fco * alive.unsqueeze(1)
    return _compact(Vo, fco, FLo)


def _cat_cells(parts):
    parts = [p for p in parts if p[0].shape[0]]
    F = max(p[0].shape[1] for p in parts)
    P = max(p[0].shape[2] for p in parts)
    out = []
    for V, fc, FL, *rest in parts:
        N, f, p, _ = V.shape
        if f < F or p < P:
            V = torch.nn.functional.pad(V, (0, 0, 0, P - p, 0, F - f))
            fc = torch.nn.functional.pad(fc, (0, F - f))
            FL = torch.nn.functional.pad(FL, (0, F - f), value=-1)
        out.append((V, fc, FL, *rest))
    return tuple(torch.cat([o[i] for o in out]) for i in range(len(out[0])))


def subdivide_cells(V, fc, FL, H, eps: float, label: int, max_regions=None, layer_name: str = "", cancel: Callable[[], bool] | None = None, window: int = 8):
    """Cut every cell by all its planes ``H[r] (4, n)`` (see planar.crossing_table and planar.subdivide).

    Returns ``(V, fc, FL, owner)``.
    """
    R, F, P, _ = V.shape
    dev = V.device
    valid = _valid(fc, P).reshape(R, F * P)
    chosen, ncross = planar.crossing_table(V.reshape(R, F * P, 3), None, H, eps, valid=valid)
    J = chosen.shape[1]
    owner = torch.arange(R, device=dev)
    if J == 0:
        return V, fc, FL, owner
    done = []
    still = ncross > 0
    done.append((V[~still], fc[~still], FL[~still], owner[~still]))
    V, fc, FL, owner = V[still], fc[still], FL[still], owner[still]
    ptr = torch.zeros(V.shape[0], dtype=torch.int64, device=dev)
    W = min(window, J)
    win = torch.arange(W, device=dev)
    total = R
    while V.shape[0]:
        if cancel is not None and cancel():
            raise CancelledError("tessellation cancelled.")
        Q, F, P, _ = V.shape
        nco = ncross[owner]
        Wt = max(1, min(W, int((nco - ptr).max())))
        jj = ptr[:, None] + win[None, :Wt]
        inwin = jj < nco[:, None]
        ln = chosen[owner[:, None], jj.clamp_max(J - 1)]  # (Q, Wt, 4)
        s = torch.baddbmm(ln[..., 3:], ln[..., :3], V.reshape(Q, F * P, 3).transpose(1, 2))  # (Q, Wt, F*P)
        invalid = ~_valid(fc, P).reshape(Q, 1, F * P)
        crosses = (s.masked_fill(invalid, -math.inf).amax(2) > eps) & (s.masked_fill(invalid, math.inf).amin(2) < -eps) & inwin
        has = crosses.any(1)
        first = crosses.to(torch.int8).argmax(1)
        ptr = torch.where(has, ptr + first + 1, ptr + Wt)
        idx = has.nonzero().squeeze(1)
        if idx.numel():
            pl = ln[idx, first[idx]]
            Vi, fci, FLi = V[idx], fc[idx], FL[idx]
            Vp, fp, Lp = clip_cells(Vi, fci, FLi, pl, eps, label)
            Vn, fn, Ln = clip_cells(Vi, fci, FLi, -pl, eps, label)
            keep = ~has
            V, fc, FL, owner, ptr = _cat_cells(
                [(V[keep], fc[keep], FL[keep], owner[keep], ptr[keep]), (Vp, fp, Lp, owner[idx], ptr[idx]), (Vn, fn, Ln, owner[idx], ptr[idx])]
            )
            total += int(idx.numel())
            if max_regions is not None and total > max_regions:
                raise BudgetExceededError(
                    f"the tessellation reached {total} regions at {layer_name} (over max_regions={max_regions}); "
                    f"lower the depth, shrink the domain or raise max_regions."
                )
        fin = ptr >= ncross[owner]
        nfin = int(fin.sum())
        if nfin == V.shape[0] or nfin * 4 > V.shape[0]:
            done.append((V[fin], fc[fin], FL[fin], owner[fin]))
            keep = ~fin
            V, fc, FL, owner, ptr = V[keep], fc[keep], FL[keep], owner[keep], ptr[keep]
    return _cat_cells(done)


def cell_interiors(V: torch.Tensor, fc: torch.Tensor) -> torch.Tensor:
    """(N, 3) a strictly interior point of each cell (mean of its face vertices)."""
    P = V.shape[2]
    m = _valid(fc, P).unsqueeze(-1).to(V.dtype)
    return (V * m).sum((1, 2)) / m.sum((1, 2)).clamp_min(1)


def ragged_cells(V: torch.Tensor, fc: torch.Tensor, FL: torch.Tensor, quantum: float):
    """Padded cells -> (vertices, vertex_offsets, face_indices, face_offsets, cell_face_offsets, face_layer)
    with each cell's vertices de-duplicated (coordinates equal up to ``quantum``)."""
    N, F, P, _ = V.shape
    vm = _valid(fc, P)
    pts = V[vm].cpu().numpy()  # rows in (cell, face, vertex) order
    cell = torch.arange(N, device=V.device).view(N, 1, 1).expand(N, F, P)[vm].cpu().numpy()
    q = np.round(pts / quantum).astype(np.int64)
    order = np.lexsort((q[:, 2], q[:, 1], q[:, 0], cell))
    ks = np.concatenate([cell[order, None], q[order]], 1)
    new = np.ones(order.shape[0], dtype=bool)
    new[1:] = np.any(ks[1:] != ks[:-1], axis=1)
    inv = np.empty(order.shape[0], dtype=np.int64)
    inv[order] = np.cumsum(new) - 1
    first = order[new]
    vertices = pts[first]
    vcount = np.bincount(cell[first], minlength=N)
    vertex_offsets = np.zeros(N + 1, dtype=np.int64)
    np.cumsum(vcount, out=vertex_offsets[1:])
    fcn = fc.cpu().numpy()
    fmask = fcn > 0
    face_sizes = fcn[fmask]
    face_offsets = np.zeros(face_sizes.shape[0] + 1, dtype=np.int64)
    np.cumsum(face_sizes, out=face_offsets[1:])
    cell_face_offsets = np.zeros(N + 1, dtype=np.int64)
    np.cumsum(fmask.sum(1), out=cell_face_offsets[1:])
    face_layer = FL.cpu().numpy()[fmask].astype(np.int16)
    return vertices, vertex_offsets, inv.reshape(-1).astype(np.int64), face_offsets, cell_face_offsets, face_layer


def tessellate_all_depths_3d(network, slice_, domain, depth, device, max_regions, tol, progress, cancel, boundary, slope_norm: bool = True):
    """3D counterpart of :func:`geometry.tessellation.engine.tessellate_all_depths` (same arguments)."""

    t0 = time.perf_counter()
    L = network.depth
    if L == 0:
        raise SplineAtlasError("this network has no nonlinearity: it is affine, so the whole slice is one region.")
    target = L if depth is None else int(depth)
    if not 1 <= target <= L:
        raise SplineAtlasError(f"depth must be between 1 and {L} (the network's number of nonlinearities); got {depth}.")
    box = domain_box3(slice_, domain)
    net, dev, X = prepare(network, slice_, device)
    dtype = X.dtype
    diam = float(np.linalg.norm(box[1::2] - box[0::2]))
    eps = tol * diam
    layers = layer_summaries(network)
    V, fc, FL = _box_faces(box, dtype, dev)
    state = {"V": V, "fc": fc, "FL": FL, "codes": LayerCodes(())}
    records: list[dict] = []

    def on_nonlinearity(module, j, X):
        if progress is not None:
            progress(j / target, f"layer {j + 1}/{target}: cutting {state['V'].shape[0]} cells")
        H = layer_lines(module, X)
        V, fc, FL, owner = subdivide_cells(state["V"], state["fc"], state["FL"], H, eps, j, max_regions, f"layer {j + 1} of {L}", cancel)
        Xo = X[owner]
        pattern = layer_pattern(module, Xo, cell_interiors(V, fc))
        own_np = owner.cpu().numpy()
        codes = state["codes"].refine(own_np, pack_pattern(pattern.cpu().numpy(), layers[j].kind))
        state.update(V=V, fc=fc, FL=FL, codes=codes)
        rag = ragged_cells(V, fc, FL, max(eps, 1e-12 * diam))
        records.append(dict(geom=rag, codes=codes, parent=own_np, seconds=time.perf_counter() - t0))
        if j + 1 == target and target < L:
            raise StopWalk
        return activate(module, Xo, pattern), owner

    logits = None
    with torch.no_grad():
        try:
            logits = walk(net.layers, X, on_nonlinearity)
        except StopWalk:
            pass
        full = {}
        if logits is not None:
            Xl = logits.reshape(logits.shape[0], logits.shape[1], -1)
            out_offset = Xl[:, 0, :]
            out_linear = Xl[:, 1:, :].transpose(1, 2).contiguous()
            full = class_cells_3d(state["V"], state["fc"], state["FL"], out_linear, out_offset, eps, boundary)
            full.update(
                out_linear=out_linear.cpu().numpy(),
                out_offset=out_offset.cpu().numpy(),
                slope_norm=slope_norms(net, slice_, out_linear, state["codes"], dev) if slope_norm else np.full(out_linear.shape[0], np.nan),
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
        )
        if full:
            common.update(
                boundary_vertices=full["bverts"], boundary_offsets=full["boffsets"], boundary_classes=full["bclasses"], boundary_region=full["bregion"]
            )
        if is_full:
            common.update(out_linear=full["out_linear"], out_offset=full["out_offset"], seconds=time.perf_counter() - t0)
        out.append(Tessellation3D(**common))
    if progress is not None:
        progress(1.0, f"{out[-1].num_regions} cells in {time.perf_counter() - t0:.2f} s")
    return out


def class_cells_3d(V, fc, FL, out_linear, out_offset, eps: float, boundary: bool = True) -> dict:
    """Classes per cell and the exact argmax decision boundary polygons (see boundary.class_cells_2d)."""

    lin, off = two_class(out_linear, out_offset)
    N, F, P, _ = V.shape
    C = lin.shape[1]
    dev = V.device
    interior = cell_interiors(V, fc)
    cls = (torch.einsum("rck,rk->rc", lin, interior) + off).argmax(1)
    pts = V.reshape(N, F * P, 3)
    vm = _valid(fc, P).reshape(N, F * P)
    fv = torch.einsum("rck,rpk->rpc", lin, pts) + off[:, None, :]
    own = fv.gather(2, cls.view(N, 1, 1).expand(N, F * P, 1)).squeeze(2)
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
        pV = V[midx].repeat_interleave(C, 0)
        pfc = fc[midx].repeat_interleave(C, 0)
        pFL = torch.full(pfc.shape, -1, dtype=torch.int16, device=dev)
        pclass = torch.arange(C, device=dev).repeat(Rm)
        preg = midx.repeat_interleave(C, 0)
        for j in range(C):
            a = lin[preg, pclass] - lin[preg, j]
            b = off[preg, pclass] - off[preg, j]
            n = a.norm(dim=1)
            flat = (n <= 1e-13 * (n + b.abs() + 1e-300)) | (pclass == j)
            a = torch.where(flat.unsqueeze(1), 0.0, a / torch.where(flat, 1.0, n).unsqueeze(1))
            b = torch.where(flat, torch.where((b >= 0) | (pclass == j), 1.0, -1.0).to(b.dtype), b / torch.where(flat, 1.0, n))
            pV, pfc, pFL = clip_cells(pV, pfc, pFL, torch.cat([a, b.unsqueeze(1)], 1), eps, j)
            keep = (pfc > 0).any(1)
            pV, pfc, pFL, pclass, preg = pV[keep], pfc[keep], pFL[keep], pclass[keep], preg[keep]
        ncell = torch.bincount(preg, minlength=N)
        mixed = mixed & (ncell > 1)
        # boundary polygons: faces of the cell of class c made by the constraint f_c = f_j, c < j
        isb = (pfc > 0) & (pFL.long() > pclass[:, None]) & (ncell[preg] > 1)[:, None]
        Pp = pV.shape[2]
        faces = pV[isb]  # (B, Pp, 3)
        sizes = pfc[isb]
        m = torch.arange(Pp, device=dev)[None, :] < sizes[:, None]
        bverts = faces[m].cpu().numpy()
        boffsets = np.zeros(sizes.shape[0] + 1, dtype=np.int64)
        np.cumsum(sizes.cpu().numpy(), out=boffsets[1:])
        Q = pclass.shape[0]
        bclasses = torch.stack([pclass[:, None].expand(Q, pFL.shape[1])[isb], pFL.long()[isb]], 1).cpu().numpy()
        bregion = preg[:, None].expand(Q, pFL.shape[1])[isb].cpu().numpy()
    res["class_mixed"] = mixed.cpu().numpy()
    const = res["classes"].copy()
    const[res["class_mixed"]] = -1
    res.update(classes_const=const, bverts=bverts, boffsets=boffsets, bclasses=bclasses.astype(np.int64), bregion=bregion.astype(np.int64))
    return res
