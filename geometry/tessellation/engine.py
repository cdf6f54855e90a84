"""Exact tessellation of a 2D slice, layer by layer.

On every region of layers ``0..l-1`` the pre-activations of layer l are affine in the slice
coordinates u, so layer l's neurons are lines per region; every region is cut by all of them at once
(:func:`geometry.tessellation.planar.subdivide`), each piece gets its layer-l pattern from an interior
point, and the per-region affine maps are pushed through the activation with that fixed pattern and
then through the next affine modules (:mod:`geometry.tessellation.affine`). One pass gives every depth
1..L. The logits are affine per final region, so the argmax cells and the decision boundary are exact
(:mod:`geometry.tessellation.boundary`).

Public entry points: :func:`tessellate` (one depth) and :func:`tessellate_all_depths` (all of them).
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch

from geometry.errors import SplineAtlasError
from geometry.networks.network import Network
from geometry.slices import Slice
from geometry.tessellation import planar
from geometry.tessellation.affine import StopWalk, activate, walk
from geometry.tessellation.boundary import class_cells_2d, propagate_classes, slope_norms
from geometry.tessellation.prepare import domain_polygon, layer_lines, layer_pattern, layer_summaries, prepare
from geometry.tessellation.solid import tessellate_all_depths_3d
from geometry.tessellation.types import Tessellation2D, Tessellation3D, pack_pattern

DEFAULT_MAX_REGIONS = 1_000_000
MEMORY_BUDGET_BYTES = 4 * 2**30


def default_max_regions(network: Network, k: int) -> int:
    """The default region budget: at most 1M, and few enough that the per-region affine maps
    (``(k+1) x width`` float64 per region, about three live copies) stay within ~4 GiB."""
    widest = max([network.input_dim] + [li.width for li in network.layer_infos])
    return int(min(DEFAULT_MAX_REGIONS, MEMORY_BUDGET_BYTES // (8 * (k + 1) * widest * 3)))


DEFAULT_TOL = 1e-9

Progress = Callable[[float, str], None] | None
Cancel = Callable[[], bool] | None


def _interior_points(V: torch.Tensor, cnt: torch.Tensor) -> torch.Tensor:
    P = V.shape[1]
    valid = (torch.arange(P, device=V.device)[None, :] < cnt[:, None]).to(V.dtype)
    return (V * valid.unsqueeze(-1)).sum(1) / cnt.unsqueeze(-1).to(V.dtype)


def _ragged(V: torch.Tensor, E: torch.Tensor, cnt: torch.Tensor):
    P = V.shape[1]
    valid = torch.arange(P, device=V.device)[None, :] < cnt[:, None]
    verts = V[valid].cpu().numpy()
    labels = E[valid].cpu().numpy().astype(np.int16)
    offsets = np.zeros(cnt.shape[0] + 1, dtype=np.int64)
    np.cumsum(cnt.cpu().numpy(), out=offsets[1:])
    return verts, offsets, labels


def tessellate_all_depths(
    network: Network,
    slice_: Slice,
    domain=None,
    depth: int | None = None,
    device=None,
    max_regions: int | None = None,
    tol: float = DEFAULT_TOL,
    progress: Progress = None,
    cancel: Cancel = None,
    boundary: bool = True,
    slope_norm: bool = True,
):
    """Tessellations of the slice after layers 1, 1..2, ..., 1..depth (default: all L), in ONE pass.

    Returns a list of ``depth`` :class:`Tessellation2D` (2D slices) or :class:`Tessellation3D` (3D slices),
    element ``l-1`` for depth l. Only a full-depth pass (``depth`` = L) yields logits maps, slope norms,
    classes and the decision boundary (the partial depths then get their constant-class labels too).
    ``domain``: 2D box / convex polygon, 3D box (see :func:`domain_polygon`, :func:`domain_box3`).
    ``tol``: relative tolerance (times the domain diameter) below which a point counts as on a line.
    ``boundary=False`` skips the argmax cells and boundary; ``slope_norm=False`` skips ||A_w|| (NaN), which
    for a slice of a high-dimensional input costs C backward passes over all regions (the dominant cost
    for the digits CNN) -- for interactive previews.
    Raises BudgetExceededError beyond ``max_regions`` regions (default :func:`default_max_regions`: 1M, less
    for wide networks so memory stays within ~4 GiB), CancelledError when ``cancel()`` is true,
    NotPiecewiseAffineError naming the first smooth layer.
    """
    if max_regions is None:
        max_regions = default_max_regions(network, slice_.dim)
    if slice_.dim == 3:
        return tessellate_all_depths_3d(network, slice_, domain, depth, device, max_regions, tol, progress, cancel, boundary, slope_norm)
    t0 = time.perf_counter()
    L = network.depth
    if L == 0:
        raise SplineAtlasError("this network has no nonlinearity: it is affine, so the whole slice is one region.")
    target = L if depth is None else int(depth)
    if not 1 <= target <= L:
        raise SplineAtlasError(f"depth must be between 1 and {L} (the network's number of nonlinearities); got {depth}.")
    poly = domain_polygon(slice_, domain)
    net, dev, X = prepare(network, slice_, device)
    dtype = X.dtype
    eps = tol * float(np.linalg.norm(poly.max(0) - poly.min(0)))
    layers = layer_summaries(network)
    V = torch.as_tensor(poly, dtype=dtype, device=dev).unsqueeze(0)
    E = torch.full((1, poly.shape[0]), -1, dtype=torch.int16, device=dev)
    cnt = torch.tensor([poly.shape[0]], dtype=torch.int64, device=dev)
    state = {"V": V, "E": E, "cnt": cnt, "codes": []}
    records: list[dict] = []

    def on_nonlinearity(module, j, X):
        if progress is not None:
            progress(j / target, f"layer {j + 1}/{target}: cutting {state['V'].shape[0]} regions")
        H = layer_lines(module, X)
        name = f"layer {j + 1} of {L}"
        V, E, cnt, owner = planar.subdivide(state["V"], state["E"], state["cnt"], H, eps, j, max_regions, name, cancel)
        interior = _interior_points(V, cnt)
        Xo = X.index_select(0, owner)
        pattern = layer_pattern(module, Xo, interior)
        own_np = owner.cpu().numpy()
        codes = [c[own_np] for c in state["codes"]] + [pack_pattern(pattern.cpu().numpy(), layers[j].kind)]
        state.update(V=V, E=E, cnt=cnt, codes=codes)
        verts, offsets, labels = _ragged(V, E, cnt)
        records.append(dict(vertices=verts, offsets=offsets, edge_layer=labels, codes=tuple(codes), parent=own_np, seconds=time.perf_counter() - t0))
        if j + 1 == target and target < L:
            raise StopWalk
        return activate(module, Xo, pattern, inplace=True), owner

    logits = None
    with torch.no_grad():
        try:
            logits = walk(net.layers, X, on_nonlinearity)
        except StopWalk:
            pass
        if target == L and logits is None:
            raise SplineAtlasError("internal: the walk stopped before the output layer.")  # pragma: no cover
        full = {}
        if logits is not None:
            if progress is not None:
                progress(0.97, "logits, classes and decision boundary")
            full = _full_depth_outputs(net, slice_, state, logits, eps, boundary, dev, slope_norm)
    R_full = records[-1]["offsets"].shape[0] - 1
    out = []
    classes_chain = (
        propagate_classes([r["parent"] for r in records], full.get("classes_const"), R_full)
        if full
        else [np.full(r["offsets"].shape[0] - 1, -1, dtype=np.int64) for r in records]
    )
    device_name = str(dev)
    nc = network.num_classes
    for l, rec in enumerate(records):
        R = rec["offsets"].shape[0] - 1
        is_full = bool(full) and l == len(records) - 1
        common = dict(
            slice=slice_,
            domain=poly,
            depth=l + 1,
            layers=layers,
            vertices=rec["vertices"],
            offsets=rec["offsets"],
            edge_layer=rec["edge_layer"],
            codes=rec["codes"],
            parent=rec["parent"],
            classes=full["classes"] if is_full else classes_chain[l],
            class_mixed=full["class_mixed"] if is_full else np.zeros(R, dtype=bool),
            slope_norm=full["slope_norm"] if is_full else np.full(R, np.nan),
            num_classes=nc,
            tolerance=eps,
            seconds=rec["seconds"],
            device=device_name,
        )
        if full:
            common.update(boundary_segments=full["segments"], boundary_classes=full["segment_classes"], boundary_region=full["segment_region"])
        if is_full:
            common.update(
                out_linear=full["out_linear"],
                out_offset=full["out_offset"],
                class_cell_vertices=full["cell_vertices"],
                class_cell_offsets=full["cell_offsets"],
                class_cell_class=full["cell_class"],
                class_cell_region=full["cell_region"],
                seconds=time.perf_counter() - t0,
            )
        out.append(Tessellation2D(**common))
    if progress is not None:
        progress(1.0, f"{out[-1].num_regions} regions in {time.perf_counter() - t0:.2f} s")
    return out


def _full_depth_outputs(net: Network, slice_: Slice, state: dict, logits: torch.Tensor, eps: float, boundary: bool, dev, slope_norm: bool = True) -> dict:
    """Logit maps, classes, slope norms, argmax cells and decision boundary of the final regions."""
    X = logits.reshape(logits.shape[0], logits.shape[1], -1)  # (R, k+1, C)
    out_offset = X[:, 0, :]
    out_linear = X[:, 1:, :].transpose(1, 2).contiguous()  # (R, C, k)
    V, cnt = state["V"], state["cnt"]
    cells = class_cells_2d(V, cnt, out_linear, out_offset, eps, compute_cells=boundary)
    codes = state["codes"]
    sn = slope_norms(net, slice_, out_linear, codes, dev) if slope_norm else np.full(out_linear.shape[0], np.nan)
    return dict(out_linear=out_linear.cpu().numpy(), out_offset=out_offset.cpu().numpy(), slope_norm=sn, **cells)


def tessellate(
    network: Network,
    slice_: Slice,
    domain=None,
    depth: int | None = None,
    device=None,
    max_regions: int | None = None,
    tol: float = DEFAULT_TOL,
    progress: Progress = None,
    cancel: Cancel = None,
    boundary: bool = True,
    slope_norm: bool = True,
) -> Tessellation2D | Tessellation3D:
    """The exact tessellation of ``slice_`` (2D or 3D) after ``depth`` layers (default: all).

    Equivalent to ``tessellate_all_depths(...)[-1]``; see there for the arguments. With ``depth < L``
    the logits are not computed, so classes are -1, slope norms NaN and the decision boundary empty.
    """
    return tessellate_all_depths(network, slice_, domain, depth, device, max_regions, tol, progress, cancel, boundary, slope_norm)[-1]
