"""An independent, slow reference 3D tessellation for tests (plain Python polyhedron clipping).

``reference_tessellations(net, box)`` handles any Linear/ReLU MLP with 3 inputs: per cell it keeps the
affine map of the current layer, cuts the cell by each neuron's plane, fixes the pattern at the cell's
centroid, and at the end cuts each cell into its exact argmax pieces to get the decision boundary.

``reference_tessellation(net, box)`` cuts the box by the hidden neurons of a ONE-hidden-layer ReLU MLP
(each neuron is one plane of the input space), one plane at a time, cell by cell, and returns a
:class:`geometry.tessellation.Tessellation3D` built from scratch (welded per-cell vertices, outward face
loops, patterns from interior points, classes, slope norms, and the decision boundary of a two-logit net as
the cap polygons of each cell cut by the plane ``f_1 = f_0``). It shares no code with the engine.
"""

from __future__ import annotations

import numpy as np
import torch

from geometry.slices import Slice
from geometry.tessellation.types import LayerSummary, Tessellation3D, pack_pattern


def _order_cap(points: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """Points on a plane -> convex loop counter-clockwise around ``normal``."""
    c = points.mean(0)
    a = np.cross(normal, [1.0, 0, 0])
    if np.linalg.norm(a) < 1e-6:
        a = np.cross(normal, [0, 1.0, 0])
    a /= np.linalg.norm(a)
    b = np.cross(normal, a)
    ang = np.arctan2((points - c) @ b, (points - c) @ a)
    return points[np.argsort(ang)]


def _dedupe(points: np.ndarray, tol: float) -> np.ndarray:
    out = []
    for p in points:
        if not any(np.linalg.norm(p - q) < tol for q in out):
            out.append(p)
    return np.array(out)


def clip_cell(faces: list, labels: list, w: np.ndarray, b: float, layer: int, tol: float = 1e-9):
    """Cut the convex cell (faces: list of (n, 3) CCW-from-outside loops) by ``w.x + b = 0``.

    Returns (positive side, negative side), each (faces, labels) or None when empty; the cap gets ``layer``.
    """
    sides = []
    for sign in (1.0, -1.0):
        new_faces, new_labels, cap = [], [], []
        for f, lab in zip(faces, labels):
            h = sign * (f @ w + b)
            out = []
            for i in range(len(f)):
                p, q, hp, hq = f[i], f[(i + 1) % len(f)], h[i], h[(i + 1) % len(f)]
                if hp >= -tol:
                    out.append(p)
                    if abs(hp) <= tol:
                        cap.append(p)
                if (hp > tol and hq < -tol) or (hp < -tol and hq > tol):
                    x = p + hp / (hp - hq) * (q - p)
                    out.append(x)
                    cap.append(x)
            out = _dedupe(np.array(out), 1e-12) if out else np.zeros((0, 3))
            if (
                len(out) >= 3
                and np.linalg.norm(np.cross(out[1] - out[0], out[2] - out[0])) + np.linalg.norm(np.cross(out[-1] - out[0], out[1] - out[0])) > 1e-14
            ):
                new_faces.append(out)
                new_labels.append(lab)
        if len(new_faces) < 3:
            sides.append(None)
            continue
        cap = _dedupe(np.array(cap), 1e-10) if cap else np.zeros((0, 3))
        if len(cap) >= 3:
            n_out = -sign * w / np.linalg.norm(w)
            new_faces.append(_order_cap(cap, n_out))
            new_labels.append(layer)
        sides.append((new_faces, new_labels))
    return sides[0], sides[1]


def _box_faces(box):
    u0, u1, v0, v1, w0, w1 = box
    P = np.array([[u0, v0, w0], [u1, v0, w0], [u1, v1, w0], [u0, v1, w0], [u0, v0, w1], [u1, v0, w1], [u1, v1, w1], [u0, v1, w1]], dtype=np.float64)
    loops = [[0, 3, 2, 1], [4, 5, 6, 7], [0, 1, 5, 4], [2, 3, 7, 6], [1, 2, 6, 5], [0, 4, 7, 3]]
    return [P[l] for l in loops], [-1] * 6


def _volume(faces) -> float:
    v = 0.0
    for f in faces:
        for i in range(1, len(f) - 1):
            v += np.dot(f[0], np.cross(f[i], f[i + 1])) / 6
    return v


def reference_tessellation(net, box, min_volume: float = 1e-12) -> Tessellation3D:
    """Reference Tessellation3D of the input space of a 3-K-C one-hidden-layer ReLU MLP on ``box`` (6,)."""
    lin1, lin2 = net.layers[0], net.layers[2]
    W = lin1.weight.detach().double().numpy()
    bias = lin1.bias.detach().double().numpy()
    cells = [_box_faces(box)]
    for k in range(W.shape[0]):
        nxt = []
        for faces, labels in cells:
            pos, neg = clip_cell(faces, labels, W[k], bias[k], 0)
            for side in (pos, neg):
                if side is not None and _volume(side[0]) > min_volume:
                    nxt.append(side)
        cells = nxt
    verts, voff, fidx, foff, cfoff, flayer = [], [0], [], [0], [0], []
    cents = []
    for faces, labels in cells:
        pts = _dedupe(np.concatenate(faces), 1e-10)
        base = sum(len(v) for v in verts)
        for f, lab in zip(faces, labels):
            for p in f:
                fidx.append(base + int(np.argmin(np.linalg.norm(pts - p, axis=1))))
            foff.append(len(fidx))
            flayer.append(lab)
        verts.append(pts)
        voff.append(base + len(pts))
        cfoff.append(len(flayer))
        cents.append(pts.mean(0))
    C = np.array(cents)
    X = torch.as_tensor(C, dtype=torch.float64)
    netd = net.to_dtype_device(torch.float64, "cpu")
    tr = netd.trace(X)
    pattern = tr.patterns[0].numpy()
    # per-cell affine logits: f = W2 diag(p) (W x + b) + b2
    W2 = lin2.weight.detach().double().numpy()
    b2 = lin2.bias.detach().double().numpy()
    A = np.einsum("ck,rk,kd->rcd", W2, pattern.astype(np.float64), W)
    a0 = np.einsum("ck,rk,k->rc", W2, pattern.astype(np.float64), bias) + b2
    logits = np.einsum("rcd,rd->rc", A, C) + a0
    classes = logits.argmax(1)
    slope = np.linalg.norm(A, ord=2, axis=(1, 2))
    bverts, boff, bcls, breg = [], [0], [], []
    mixed = np.zeros(len(cells), dtype=bool)
    if A.shape[1] == 2:
        for r, (faces, labels) in enumerate(cells):
            g = A[r, 1] - A[r, 0]
            c0 = a0[r, 1] - a0[r, 0]
            if np.linalg.norm(g) < 1e-14:
                continue
            pos, neg = clip_cell(faces, labels, g, c0, 99)
            if pos is not None and neg is not None and _volume(pos[0]) > min_volume and _volume(neg[0]) > min_volume:
                cap = pos[0][-1]
                bverts.append(cap)
                boff.append(boff[-1] + len(cap))
                bcls.append([0, 1])
                breg.append(r)
                mixed[r] = True
    V = np.concatenate(verts)
    return Tessellation3D(
        slice=Slice.input_plane(3),
        domain=np.asarray(box, dtype=np.float64),
        depth=1,
        layers=(LayerSummary(0, "relu", W.shape[0]),),
        vertices=V,
        vertex_offsets=np.array(voff, np.int64),
        face_indices=np.array(fidx, np.int64),
        face_offsets=np.array(foff, np.int64),
        cell_face_offsets=np.array(cfoff, np.int64),
        face_layer=np.array(flayer, np.int16),
        codes=(pack_pattern(pattern, "relu"),),
        parent=np.zeros(len(cells), np.int64),
        classes=classes,
        class_mixed=mixed,
        slope_norm=slope,
        out_linear=A,
        out_offset=a0,
        boundary_vertices=np.concatenate(bverts) if bverts else np.zeros((0, 3)),
        boundary_offsets=np.array(boff, np.int64),
        boundary_classes=np.array(bcls, np.int64).reshape(-1, 2),
        boundary_region=np.array(breg, np.int64),
        num_classes=A.shape[1],
        tolerance=1e-9,
    )


def _build(cells, layer_codes, parents, depth, L, widths, box, out=None, boundary=None, slope=None, classes=None, mixed=None, nc=0):
    verts, voff, fidx, foff, cfoff, flayer = [], [0], [], [0], [0], []
    for faces, labels in cells:
        pts = np.unique(np.round(np.concatenate(faces), 11), axis=0)
        base = voff[-1]
        for f, lab in zip(faces, labels):
            for p in np.round(f, 11):
                fidx.append(base + int(np.argmin(np.abs(pts - p).sum(1))))
            foff.append(len(fidx))
            flayer.append(lab)
        verts.append(pts)
        voff.append(base + len(pts))
        cfoff.append(len(flayer))
    R = len(cells)
    kw = {}
    if boundary is not None:
        bverts, boff, bcls, breg = boundary
        kw = dict(
            out_linear=out[0],
            out_offset=out[1],
            boundary_vertices=np.concatenate(bverts) if bverts else np.zeros((0, 3)),
            boundary_offsets=np.array(boff, np.int64),
            boundary_classes=np.array(bcls, np.int64).reshape(-1, 2),
            boundary_region=np.array(breg, np.int64),
        )
    return Tessellation3D(
        slice=Slice.input_plane(3),
        domain=np.asarray(box, dtype=np.float64),
        depth=depth,
        layers=tuple(LayerSummary(j, "relu", w) for j, w in enumerate(widths)),
        vertices=np.concatenate(verts),
        vertex_offsets=np.array(voff, np.int64),
        face_indices=np.array(fidx, np.int64),
        face_offsets=np.array(foff, np.int64),
        cell_face_offsets=np.array(cfoff, np.int64),
        face_layer=np.array(flayer, np.int16),
        codes=tuple(pack_pattern(c, "relu") for c in layer_codes),
        parent=np.asarray(parents, np.int64),
        classes=classes if classes is not None else np.full(R, -1, np.int64),
        class_mixed=mixed if mixed is not None else np.zeros(R, bool),
        slope_norm=slope if slope is not None else np.full(R, np.nan),
        num_classes=nc,
        tolerance=1e-9,
        **kw,
    )


def reference_tessellations(net, box, min_volume: float = 1e-12) -> list:
    """Reference Tessellation3D at every depth 1..L of a 3-input Linear/ReLU MLP on ``box`` (6,)."""
    import torch.nn as nn

    mods = list(net.layers)
    cells = [_box_faces(box)]
    maps = [(np.eye(3), np.zeros(3))]  # per cell: current z = A x + c
    cell_codes = [[]]
    records = []
    widths = [m.out_features for i, m in enumerate(mods) if isinstance(m, nn.Linear) and i + 1 < len(mods) and isinstance(mods[i + 1], nn.ReLU)]
    L = len(widths)
    j = 0
    for m in mods:
        if isinstance(m, nn.Linear):
            W = m.weight.detach().double().numpy()
            b = m.bias.detach().double().numpy()
            maps = [(W @ A, W @ c + b) for A, c in maps]
            continue
        if not isinstance(m, nn.ReLU):
            raise ValueError(f"reference tessellation handles Linear/ReLU only, not {type(m).__name__}")
        new_cells, new_maps, new_codes, parent = [], [], [], []
        for r, ((faces, labels), (A, c)) in enumerate(zip(cells, maps)):
            pieces = [(faces, labels)]
            for k in range(A.shape[0]):
                nxt = []
                for pf, pl in pieces:
                    h = np.concatenate(pf) @ A[k] + c[k]
                    if h.min() >= -1e-12 or h.max() <= 1e-12:
                        nxt.append((pf, pl))
                        continue
                    pos, neg = clip_cell(pf, pl, A[k], c[k], j)
                    for side in (pos, neg):
                        if side is not None and _volume(side[0]) > min_volume:
                            nxt.append(side)
                pieces = nxt
            for pf, pl in pieces:
                cen = np.unique(np.round(np.concatenate(pf), 11), axis=0).mean(0)
                pat = (A @ cen + c) > 0
                new_cells.append((pf, pl))
                new_maps.append((A * pat[:, None], c * pat))
                new_codes.append(cell_codes[r] + [pat])
                parent.append(r)
        cells, maps, cell_codes = new_cells, new_maps, new_codes
        records.append((list(cells), [np.array([cc[q] for cc in cell_codes]) for q in range(j + 1)], parent))
        j += 1
    # output: logits affine per cell; argmax pieces and boundary polygons
    C = maps[0][0].shape[0]
    out_lin = np.array([A for A, _ in maps])
    out_off = np.array([c for _, c in maps])
    slope = np.linalg.norm(out_lin, ord=2, axis=(1, 2))
    classes, mixed = [], []
    bverts, boff, bcls, breg = [], [0], [], []
    for r, ((faces, labels), (A, c)) in enumerate(zip(cells, maps)):
        cen = np.unique(np.round(np.concatenate(faces), 11), axis=0).mean(0)
        classes.append(int(np.argmax(A @ cen + c)))
        present = []
        for i in range(C):
            piece = (faces, labels)
            for q in range(C):
                if q == i or piece is None:
                    continue
                g, g0 = A[i] - A[q], c[i] - c[q]
                h = np.concatenate(piece[0]) @ g + g0
                if h.min() >= -1e-12:
                    continue
                if h.max() <= 1e-12:
                    piece = None
                    break
                piece, _ = clip_cell(piece[0], piece[1], g, g0, 100 + q)
                if piece is not None and _volume(piece[0]) <= min_volume:
                    piece = None
            if piece is None:
                continue
            present.append(i)
            for f, lab in zip(*piece):
                if lab >= 100 and i < lab - 100:
                    bverts.append(f)
                    boff.append(boff[-1] + len(f))
                    bcls.append([i, lab - 100])
                    breg.append(r)
        mixed.append(len(present) > 1)
    out = []
    for d, (cs, cc, par) in enumerate(records, start=1):
        if d < L:
            out.append(_build(cs, cc, par, d, L, widths, box, nc=C))
        else:
            out.append(
                _build(
                    cs, cc, par, d, L, widths, box, (out_lin, out_off), (bverts, boff, bcls, breg), slope, np.array(classes, np.int64), np.array(mixed, bool), C
                )
            )
    return out
