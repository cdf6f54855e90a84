"""Classes, argmax cells, the exact decision boundary and slope norms of the final regions.

On a final region the logits are affine, ``f(u) = A u + c``; the set where class c wins is the convex
polygon ``region ∩ {f_c >= f_j for all j}``. We clip each (mixed) region by those C-1 half-planes per
class: the resulting *argmax cells* are exact, and the cell edges created by the constraint ``f_c = f_j``
are exactly the places where c and j tie AND are the top two -- the true argmax decision boundary, not
every pairwise tie line (SplineCam's over-approximation). A binary single-logit net is treated as the
two logits ``(0, f)``, whose boundary is the zero level set of f.
"""

from __future__ import annotations

import numpy as np
import torch

from geometry.errors import CancelledError
from geometry.tessellation import planar
from geometry.tessellation.affine import activate, walk
from geometry.tessellation.types import unpack_code


def _vertex_mask(cnt: torch.Tensor, P: int) -> torch.Tensor:
    return torch.arange(P, device=cnt.device)[None, :] < cnt[:, None]


def _next_index(cnt: torch.Tensor, P: int) -> torch.Tensor:
    ar = torch.arange(P, device=cnt.device)
    return torch.where(ar[None, :] + 1 < cnt[:, None], ar[None, :] + 1, 0)


def two_class(out_linear: torch.Tensor, out_offset: torch.Tensor):
    """Single-logit outputs ``(R, 1, k), (R, 1)`` -> the equivalent two-class logits ``(0, f)``."""
    if out_linear.shape[1] != 1:
        return out_linear, out_offset
    return (torch.cat([torch.zeros_like(out_linear), out_linear], 1), torch.cat([torch.zeros_like(out_offset), out_offset], 1))


def class_cells_2d(V: torch.Tensor, cnt: torch.Tensor, out_linear: torch.Tensor, out_offset: torch.Tensor, eps: float, compute_cells: bool = True) -> dict:
    """Argmax cells and decision-boundary segments of regions ``V (R, P, 2)`` with logits maps.

    Returns numpy arrays: classes (R,) (argmax at an interior point), class_mixed (R,), classes_const
    (R,) (-1 where mixed), cell_vertices/cell_offsets/cell_class/cell_region (the argmax cells; an
    unmixed region is its own cell), segments (S, 2, 2), segment_classes (S, 2), segment_region (S,).
    """
    lin, off = two_class(out_linear, out_offset)
    R, P = V.shape[:2]
    C = lin.shape[1]
    dev = V.device
    valid = _vertex_mask(cnt, P)
    interior = (V * valid.unsqueeze(-1)).sum(1) / cnt.unsqueeze(-1).to(V.dtype)
    cls = (torch.einsum("rck,rk->rc", lin, interior) + off).argmax(1)
    fv = torch.einsum("rck,rpk->rpc", lin, V) + off[:, None, :]
    top = fv.amax(2, keepdim=True)
    # a region is mixed if some vertex prefers another class by more than eps (in distance units)
    gnorm = lin.norm(dim=2).amax(1).clamp_min(1e-300)
    own = fv.gather(2, cls.view(R, 1, 1).expand(R, P, 1))
    mixed = (((top - own).squeeze(2) > eps * 2 * gnorm[:, None]) & valid).any(1)
    res = dict(classes=cls.cpu().numpy().astype(np.int64))
    midx = mixed.nonzero().squeeze(1)
    seg = np.zeros((0, 2, 2))
    seg_cls = np.zeros((0, 2), dtype=np.int64)
    seg_reg = np.zeros((0,), dtype=np.int64)
    cells_V, cells_E, cells_c, cells_class, cells_region = None, None, None, None, None
    if compute_cells and midx.numel():
        Rm = midx.numel()
        pV = V[midx].repeat_interleave(C, 0)
        pcnt = cnt[midx].repeat_interleave(C, 0)
        pE = torch.full(pV.shape[:2], -1, dtype=torch.int16, device=dev)
        pclass = torch.arange(C, device=dev).repeat(Rm)
        preg = midx.repeat_interleave(C, 0)
        for j in range(C):
            a = lin[preg, pclass] - lin[preg, j]  # (Q, k)
            b = off[preg, pclass] - off[preg, j]
            n = a.norm(dim=1)
            flat = n <= 1e-13 * (n + b.abs() + 1e-300)
            a = torch.where(flat.unsqueeze(1), 0.0, a / torch.where(flat, 1.0, n).unsqueeze(1))
            b = torch.where(flat, torch.where(b >= 0, 1.0, -1.0).to(b.dtype), b / torch.where(flat, 1.0, n))
            b = torch.where(pclass == j, torch.ones_like(b), b)
            a = torch.where((pclass == j).unsqueeze(1), 0.0, a)
            s = planar.vertex_values(pV, pcnt, torch.cat([a, b.unsqueeze(1)], 1))
            pV, pE, pcnt = planar.clip(pV, pE, pcnt, s, eps, j)
            keep = pcnt > 0
            pV, pE, pcnt, pclass, preg = pV[keep], pE[keep], pcnt[keep], pclass[keep], preg[keep]
        # mixed really means: at least two non-empty cells
        ncell = torch.bincount(preg, minlength=R)
        really = ncell > 1
        mixed = mixed & really
        cells_V, cells_E, cells_c, cells_class, cells_region = pV, pE, pcnt, pclass, preg
        # boundary segments: edges created by constraint j on the cell of class c < j
        Q, Pq = pV.shape[:2]
        vm = _vertex_mask(pcnt, Pq)
        nxt = _next_index(pcnt, Pq)
        Vn = pV.gather(1, nxt.unsqueeze(-1).expand(Q, Pq, 2))
        is_b = vm & (pE >= 0) & (pE.long() > pclass[:, None]) & really[preg][:, None]
        length = (Vn - pV).norm(dim=2)
        is_b = is_b & (length > eps)
        seg = torch.stack([pV[is_b], Vn[is_b]], 1).cpu().numpy()
        seg_cls = torch.stack([pclass[:, None].expand(Q, Pq)[is_b], pE.long()[is_b]], 1).cpu().numpy()
        seg_reg = preg[:, None].expand(Q, Pq)[is_b].cpu().numpy()
    res["class_mixed"] = mixed.cpu().numpy()
    const = res["classes"].copy()
    const[res["class_mixed"]] = -1
    res["classes_const"] = const
    res.update(segments=seg, segment_classes=seg_cls.astype(np.int64), segment_region=seg_reg.astype(np.int64))
    # argmax cells: unmixed regions are their own cell
    whole = (~mixed).nonzero().squeeze(1)
    if cells_V is not None:
        keep = mixed[cells_region]
        parts = [
            (V[whole], torch.zeros(V[whole].shape[:2], dtype=torch.int16, device=dev), cnt[whole], whole),
            (cells_V[keep], cells_E[keep], cells_c[keep], cells_region[keep]),
        ]
        cV, _, cc, creg = planar.cat_pieces(parts)
        ccls = torch.cat([cls[whole], cells_class[keep]])
    else:
        cV, cc, creg, ccls = V[whole], cnt[whole], whole, cls[whole]
    vm = _vertex_mask(cc, cV.shape[1])
    offsets = np.zeros(cc.shape[0] + 1, dtype=np.int64)
    np.cumsum(cc.cpu().numpy(), out=offsets[1:])
    res.update(
        cell_vertices=cV[vm].cpu().numpy(),
        cell_offsets=offsets,
        cell_class=ccls.cpu().numpy().astype(np.int64),
        cell_region=creg.cpu().numpy().astype(np.int64),
    )
    return res


def propagate_classes(parents: list[np.ndarray], classes_const: np.ndarray | None, n_full: int) -> list[np.ndarray]:
    """Constant-class labels at every depth from the full-depth ones (-1 = not constant).

    parents[l]: (R_{l+1},) index of each depth-(l+1) region's depth-l region (parents[0] all zero).
    """
    L = len(parents)
    out: list[np.ndarray] = [None] * L  # type: ignore[list-item]
    out[L - 1] = classes_const if classes_const is not None else np.full(n_full, -1, dtype=np.int64)
    for l in range(L - 2, -1, -1):
        child = out[l + 1]
        par = parents[l + 1]
        n = int(par.max()) + 1 if par.size else 0
        n = max(n, parents[l].shape[0])
        mn = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
        mx = np.full(n, -2, dtype=np.int64)
        np.minimum.at(mn, par, child)
        np.maximum.at(mx, par, child)
        out[l] = np.where((mn == mx) & (mn >= 0), mn, -1)
    return out


def _spectral_norm(J: torch.Tensor) -> torch.Tensor:
    """(R, C, n) -> (R,) largest singular value (closed form for n <= 2, else eigvalsh of the Gram)."""
    if J.shape[2] == 1 or J.shape[1] == 1:
        return J.flatten(1).norm(dim=1)
    if J.shape[2] == 2:
        g = torch.einsum("rci,rcj->rij", J, J)
        p, q, r = g[:, 0, 0], g[:, 0, 1], g[:, 1, 1]
        return torch.sqrt(((p + r) / 2 + torch.sqrt(((p - r) / 2) ** 2 + q * q)).clamp_min(0))
    g = J.transpose(1, 2) @ J if J.shape[1] >= J.shape[2] else J @ J.transpose(1, 2)
    return torch.linalg.eigvalsh(g)[:, -1].clamp_min(0).sqrt()


def slope_norms(net, slice_, out_linear: torch.Tensor, codes, dev, regions: np.ndarray | None = None, cancel=None, chunk_elems: int = 1 << 23) -> np.ndarray:
    """(n,) ||A_w||_2: spectral norm of the logits' Jacobian w.r.t. the FULL input on the final regions
    ``regions`` (indices into ``codes``' regions; default all of them, in order).

    When the slice spans the whole input space (D == k) the slice Jacobian has the same singular values.
    Otherwise the Jacobian (C x D) is recomputed with each region's activation pattern fixed, chunked over
    regions to bound memory: in reverse mode (C backward passes) when C is small compared to D, else by
    pushing the D identity columns forward. ``cancel()`` is checked between chunks.
    """
    D, k = slice_.basis.shape
    idx = None if regions is None else np.asarray(regions, dtype=np.int64).reshape(-1)
    if D == k:
        return _spectral_norm(out_linear if idx is None else out_linear[torch.as_tensor(idx, device=out_linear.device)]).cpu().numpy()
    layers = net.layer_infos
    R, C = (out_linear.shape[0] if idx is None else idx.shape[0]), out_linear.shape[1]
    widest = max([D] + [li.width for li in layers]) * 4  # conv outputs may be wider than the activations
    reverse = 2 * C + 1 < D
    cols = 1 if reverse else D + 1
    step = max(1, chunk_elems // (cols * widest * (3 if reverse else 1)))
    dtype = out_linear.dtype
    res = [torch.zeros(0, dtype=dtype, device=dev)]
    origin = torch.as_tensor(slice_.origin, dtype=dtype, device=dev)
    for a in range(0, R, step):
        if cancel is not None and cancel():
            raise CancelledError("the slope norms were cancelled.")
        b = min(R, a + step)
        chunk = codes.take(slice(a, b) if idx is None else idx[a:b])
        pats = [torch.as_tensor(unpack_code(c, layers[j].width, layers[j].kind), device=dev) for j, c in enumerate(chunk)]
        fixed = lambda m, j, Z: (activate(m, Z, pats[j]), None)  # noqa: E731
        if reverse:
            with torch.enable_grad():
                X = origin.expand(b - a, 1, D).clone().requires_grad_(True)
                out = walk(net.layers, X.reshape(b - a, 1, *net.input_shape), fixed).reshape(b - a, -1)
                J = torch.stack(
                    [torch.autograd.grad(out[:, c].sum(), X, retain_graph=c + 1 < C)[0].reshape(b - a, D) for c in range(C)], 1
                )  # (r, C, D): C backward passes
        else:
            X = torch.empty(b - a, D + 1, D, dtype=dtype, device=dev)
            X[:, 0] = origin
            X[:, 1:] = torch.eye(D, dtype=dtype, device=dev)
            out = walk(net.layers, X.reshape(b - a, D + 1, *net.input_shape), fixed)
            J = out.reshape(b - a, D + 1, -1)[:, 1:, :].transpose(1, 2)  # (r, C, D)
        res.append(_spectral_norm(J.detach()))
    return torch.cat(res).cpu().numpy()
