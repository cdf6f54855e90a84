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

import dataclasses
import time
import weakref
from typing import Callable

import numpy as np
import torch

from geometry.errors import BudgetExceededError, SplineAtlasError
from geometry.networks.network import Network
from geometry.slices import Slice
from geometry.heap import release_free_memory, release_if_large
from geometry.tessellation import planar
from geometry.tessellation.affine import PL_MODULES, SMOOTH_MODULES, Activated, StopWalk, activate, walk
from geometry.tessellation.chunks import chunk_count, concat_chunks
from geometry.tessellation.boundary import class_cells_2d, propagate_classes, slope_norms
from geometry.tessellation.glue import merge_equal_patterns
from geometry.tessellation.prepare import ELEMENTWISE, children_pattern, domain_polygon, layer_lines, layer_pattern, layer_summaries, num_lines, prepare
from geometry.tessellation.solid import tessellate_all_depths_3d
from geometry.tessellation.types import LayerCodes, Tessellation2D, Tessellation3D, pack_pattern

DEFAULT_MAX_REGIONS = 1_000_000
MEMORY_FRACTION = 0.3  # default memory budget: this share of the memory free when a tessellation starts
# (the estimate counts the affine maps and cut lines; the cutting's own work arrays come on top)
MAX_SPLIT_LEVELS = 6  # sub-windows of sub-windows ... at most this deep
_MEMORY_BUDGET: list[int | None] = [None]  # set_memory_budget: a process-wide override (the CLI's --memory-budget)


def default_max_regions(network: Network, k: int) -> int:
    """The default region cap, 1M in 2D and 3D: memory is bounded separately (:func:`default_memory_budget`),
    so the cap no longer depends on the network's width."""
    return DEFAULT_MAX_REGIONS


def set_memory_budget(nbytes: int | None) -> None:
    """Make ``nbytes`` every later tessellation's default memory budget (None: back to
    :func:`default_memory_budget`)."""
    if nbytes is not None and nbytes <= 0:
        raise SplineAtlasError(f"the memory budget must be positive; got {nbytes} bytes.")
    _MEMORY_BUDGET[0] = None if nbytes is None else int(nbytes)


def default_memory_budget(device=None) -> int:
    """Bytes the per-region affine maps and cut lines of one layer may take: the process-wide setting, else
    :data:`MEMORY_FRACTION` of the memory free now (the GPU's when ``device`` is CUDA)."""
    if _MEMORY_BUDGET[0] is not None:
        return _MEMORY_BUDGET[0]
    dev = torch.device(device) if device is not None else None
    if dev is not None and dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        return int(MEMORY_FRACTION * free)
    import psutil

    return int(MEMORY_FRACTION * psutil.virtual_memory().available)


class MemoryBudgetExceeded(BudgetExceededError):
    """A layer's affine maps would need ``need`` bytes, over the ``budget``: the caller splits the window."""

    def __init__(self, need: int, budget: int, regions: int, layer: str):
        self.need, self.budget, self.regions, self.layer = int(need), int(budget), int(regions), layer
        super().__init__(f"{layer}: the affine maps of {regions:,} regions would need {need / 2**30:.2f} GiB (memory budget {budget / 2**30:.2f} GiB)")


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
    memory_budget: int | None = None,
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
    Raises BudgetExceededError beyond ``max_regions`` regions (default :func:`default_max_regions`: 1M),
    CancelledError when ``cancel()`` is true, NotPiecewiseAffineError naming the first smooth layer.
    ``memory_budget`` (bytes; default :func:`default_memory_budget`): in 2D, when a layer's per-region affine
    maps would exceed it, that layer's regions (or pieces) go through the rest of the network in chunks,
    depth first, and the chunks' regions are concatenated (:mod:`geometry.tessellation.chunks`; the
    result's ``chunks`` says how many); a layer inside a residual block or a concatenation instead has the
    window tessellated as a grid of sub-windows, depth first, and their tiles glued
    (:mod:`geometry.tessellation.glue`; exact; ``pieces`` says how many). In 3D that
    layer's cells go on through the rest of the network in chunks, depth first, and the chunks' cells are
    concatenated (cells never straddle chunks; see :func:`geometry.tessellation.solid.tessellate_all_depths_3d`).
    """
    if max_regions is None:
        max_regions = default_max_regions(network, slice_.dim)
    budget = int(memory_budget) if memory_budget is not None else default_memory_budget(device)
    if budget <= 0:
        raise SplineAtlasError(f"the memory budget must be positive; got {budget} bytes.")
    if slice_.dim == 3:
        return tessellate_all_depths_3d(network, slice_, domain, depth, device, max_regions, tol, progress, cancel, boundary, slope_norm, budget)
    L = network.depth
    if L == 0:
        raise SplineAtlasError("this network has no nonlinearity: it is affine, so the whole slice is one region.")
    target = L if depth is None else int(depth)
    if not 1 <= target <= L:
        raise SplineAtlasError(f"depth must be between 1 and {L} (the network's number of nonlinearities); got {depth}.")
    poly = domain_polygon(slice_, domain)
    eps = tol * float(np.linalg.norm(poly.max(0) - poly.min(0)))
    run = dict(target=target, device=device, max_regions=max_regions, eps=eps, cancel=cancel, boundary=boundary, slope_norm=slope_norm, budget=budget)
    t0 = time.perf_counter()
    out = _bounded(network, slice_, poly, run, progress, t0, 0)
    if progress is not None:
        glued = f" (glued from {out[-1].pieces} sub-windows)" if out[-1].pieces > 1 else ""
        progress(1.0, f"{out[-1].num_regions} regions in {time.perf_counter() - t0:.2f} s{glued}")
    return out


def _bounded(network: Network, slice_: Slice, poly: np.ndarray, run: dict, progress: Progress, t0: float, level: int) -> list:
    """The tessellations of ``poly``, as sub-windows glued together whenever a layer does not fit the budget."""
    from geometry.tessellation.glue import glue, grid_pieces

    try:
        return _tessellate_2d(network, slice_, poly, run, progress, t0)
    except MemoryBudgetExceeded as exc:
        m = max(2, int(np.ceil(np.sqrt(1.5 * exc.need / exc.budget))))
        if level >= MAX_SPLIT_LEVELS or m > 64:
            raise BudgetExceededError(
                f"{exc}, even in sub-windows {level} times smaller; raise --memory-budget, shrink the window or lower the depth."
            ) from None
    pieces = grid_pieces(poly, m)
    done = []
    for i, piece in enumerate(pieces):
        sub = None
        if progress is not None:
            sub = lambda f, msg, i=i: progress((i + f) / len(pieces), f"sub-window {i + 1}/{len(pieces)} (level {level + 1}): {msg}")  # noqa: E731
        done.append(_bounded(network, slice_, piece, run, sub, t0, level + 1))
    glued = glue(done, poly, run["eps"], time.perf_counter() - t0)
    if glued[-1].num_regions > run["max_regions"]:
        raise BudgetExceededError(
            f"the tessellation reached {glued[-1].num_regions} regions (over max_regions={run['max_regions']}); "
            "lower the depth, shrink the domain or raise max_regions."
        )
    return glued


def _tessellate_2d(network: Network, slice_: Slice, poly: np.ndarray, run: dict, progress: Progress, t0: float) -> list:
    """The 2D engine over the polygon ``poly`` (see :func:`tessellate_all_depths`): one pass, or, where a
    top-level layer does not fit ``run["budget"]``, chunks of that layer's regions one after the other
    (:func:`_chunked`); raises MemoryBudgetExceeded where that cannot be done (a layer inside a residual
    block or a concatenation: the caller then splits the window)."""
    net, dev, X = prepare(network, slice_, run["device"])
    layers = layer_summaries(network)
    V = torch.as_tensor(poly, dtype=X.dtype, device=dev).unsqueeze(0)
    E = torch.full((1, poly.shape[0]), -1, dtype=torch.int16, device=dev)
    cnt = torch.tensor([poly.shape[0]], dtype=torch.int64, device=dev)
    ctx = dict(run, net=net, slice=slice_, dev=dev, layers=layers, L=network.depth, t0=t0, passes=[0])
    ctx["modules"], ctx["positions"] = _top_level(net.layers)
    with torch.no_grad():
        records, full = _chunked(ctx, _Start(0, 0, X, V, E, cnt, LayerCodes(())), run["budget"], progress, 0)
    if run["target"] == network.depth and not full:
        raise SplineAtlasError("internal: the walk stopped before the output layer.")  # pragma: no cover
    R_full = records[-1]["offsets"].shape[0] - 1
    if R_full > run["max_regions"]:  # the chunks together
        raise BudgetExceededError(
            f"the tessellation reached {R_full} regions (over max_regions={run['max_regions']}); lower the depth, shrink the domain or raise max_regions."
        )
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
            tolerance=run["eps"],
            seconds=rec["seconds"],
            device=device_name,
            chunks=ctx["passes"][0],
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
    return out


def _top_level(seq) -> tuple[list, dict]:
    """The network's modules and ``{layer index: position}`` of the nonlinearities among them (not inside a
    residual block or a concatenation's branch): from such a layer the walk can go on with any subset of
    the regions, since no branch input is pending there."""
    from geometry.networks.spec import Concat, Residual

    def inside(m) -> int:  # the nonlinearities the walk meets inside m, in its order
        if isinstance(m, Residual):
            return sum(inside(c) for c in m.body.children())
        if isinstance(m, Concat):
            return sum(inside(c) for branch in m.branches for c in branch.children())
        return int(isinstance(m, PL_MODULES + SMOOTH_MODULES))

    modules, positions, j = list(seq.children()), {}, 0
    for p, m in enumerate(modules):
        if isinstance(m, PL_MODULES + SMOOTH_MODULES):
            positions[j] = p
        j += inside(m)
    return modules, positions


@dataclasses.dataclass
class _Start:
    """Where a pass begins: module ``position`` of the network (``layer``: the index of the next
    nonlinearity) with the maps ``X`` (a tensor or an :class:`Activated`) of the regions ``(V, E, cnt)``
    and their codes so far."""

    position: int
    layer: int
    X: object
    V: torch.Tensor
    E: torch.Tensor
    cnt: torch.Tensor
    codes: LayerCodes


class _Split(Exception):
    """A layer does not fit the budget: the pass stops, and its ``n`` regions (or pieces) at module
    ``position`` go on in ``chunks`` groups, one after the other; ``chunk_input(a, b)`` gives the maps of
    ``a:b``; ``held`` bytes stay allocated for them meanwhile (the maps they are read from)."""

    def __init__(self, position, layer, chunk_input, V, E, cnt, codes, records, chunks, held):
        super().__init__(f"layer {layer + 1}: {V.shape[0]} regions in {chunks} chunks")
        self.position, self.layer, self.chunk_input, self.V, self.E, self.cnt = position, layer, chunk_input, V, E, cnt
        self.codes, self.records, self.chunks, self.held = codes, records, chunks, held


def _chunked(ctx: dict, start: _Start, budget: int, progress: Progress, level: int) -> tuple[list, dict]:
    """The records of the depths after ``start`` and the full-depth outputs: one pass, or, when a layer
    does not fit ``budget``, that layer's regions in chunks, depth first (regions never straddle chunks,
    so the chunks' results are concatenated: no gluing)."""
    try:
        done = _pass(ctx, start, budget, progress)
        ctx["passes"][0] += 1
        return done
    except _Split as sp:  # without its traceback: the failed pass's frames (and their work arrays) go now
        split = sp.with_traceback(None)
    left, n = budget - split.held, split.V.shape[0]
    m = min(split.chunks, n)
    pieces = split.position not in ctx["positions"].values()  # a layer's pieces, from the module after it
    layer_no = split.layer if pieces else split.layer + 1  # 1-based: the layer whose regions or pieces these are
    if level >= MAX_SPLIT_LEVELS or left <= 0 or m < 2:  # the window is split instead
        raise MemoryBudgetExceeded(budget + max(0, -left), budget, n, f"layer {layer_no} of {ctx['L']}")
    what = f"layer {layer_no}'s {n:,} {'pieces' if pieces else 'regions'}"
    bounds = np.linspace(0, n, m + 1).round().astype(np.int64)
    parts = []
    base = split.layer / ctx["target"]  # the chunks share the rest of the progress bar, one after the other
    for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        sub = None
        if progress is not None:

            def sub(f, msg, i=i):
                inner = min(max((f - base) / (1 - base), 0.0), 1.0) if base < 1 else 1.0
                progress(base + (1 - base) * (i + inner) / m, f"chunk {i + 1}/{m} of {what} (level {level + 1}): {msg}")

        part = _Start(split.position, split.layer, split.chunk_input(a, b), split.V[a:b], split.E[a:b], split.cnt[a:b], _restrict(split.codes, a, b))
        parts.append(_chunked(ctx, part, left, sub, level + 1))
        del part
        release_free_memory()  # the chunk's work arrays: the next chunk gets the same room
    records, full = concat_chunks(parts, bounds, len(split.codes))
    return split.records + records, full


def _take_input(start: _Start):
    """``start.X``, no longer held by ``start``: the walk alone holds it, so it is freed as soon as the walk
    is done with it (a chunk's own copy of its regions' maps, for one)."""
    X, start.X = start.X, None
    return X


def _restrict(codes: LayerCodes, a: int, b: int) -> LayerCodes:
    """``codes`` of regions ``a:b`` only, sharing every layer's own array."""
    rows = tuple(np.arange(a, b, dtype=np.int32) if r is None else np.asarray(r)[a:b] for r in codes.rows)
    return LayerCodes(codes.own, rows, n=b - a)


def _next_linear_width(modules: list, position: int) -> int | None:
    """The output width of the Linear that the nonlinearity at ``position`` feeds (through Flatten,
    Identity or Dropout), None if another module comes first."""
    for m in modules[position + 1 :]:
        if isinstance(m, torch.nn.Linear):
            return m.out_features
        if not isinstance(m, (torch.nn.Flatten, torch.nn.Identity, torch.nn.Dropout)):
            return None
    return None


def _pass(ctx: dict, start: _Start, budget: int, progress: Progress) -> tuple[list, dict]:
    """One walk of the network from ``start``: the records of the depths after it and the full-depth
    outputs. Raises :class:`_Split` (at a top-level nonlinearity, see :func:`_top_level`) or
    MemoryBudgetExceeded (elsewhere: the window must be split) before a layer would exceed ``budget``."""
    target, max_regions, eps, cancel = ctx["target"], ctx["max_regions"], ctx["eps"], ctx["cancel"]
    L, layers, modules, t0 = ctx["L"], ctx["layers"], ctx["modules"], ctx["t0"]
    net, dev = ctx["net"], ctx["dev"]
    state = {"V": start.V, "E": start.E, "cnt": start.cnt, "codes": start.codes}
    records: list[dict] = []
    positions = ctx["positions"]
    pending: list[torch.Tensor] = []  # the walk's saved branch inputs (residual shortcuts): re-indexed with the regions

    def split(position, layer, chunk_input, need, held, V, E, cnt, codes):
        raise _Split(position, layer, chunk_input, V, E, cnt, codes, records, chunk_count(need, max(budget - held, 1)), held)

    first = weakref.ref(start.X) if isinstance(start.X, torch.Tensor) else None

    def held(X, nbytes):  # the chunks read X: new memory, unless it is this pass's own input (the caller counted it)
        return 0 if first is not None and first() is X else nbytes

    def on_nonlinearity(module, j, X):
        if progress is not None:
            progress(j / target, f"layer {j + 1}/{target}: cutting {state['V'].shape[0]} regions")
        name = f"layer {j + 1} of {L}"
        R, row = X.shape[0], X[0].numel() * X.element_size() if X.shape[0] else 0
        lines = R * X.shape[1] * num_lines(module, X) * X.element_size()
        if R * row + 2 * lines > budget:  # this layer's maps and its lines (and the crossing table)
            if j in positions and R >= 2:  # these regions in chunks, each cut at this layer
                split(positions[j], j, lambda a, b: X[a:b], R * row + 2 * lines, held(X, R * row), state["V"], state["E"], state["cnt"], state["codes"])
            raise MemoryBudgetExceeded(R * row + 2 * lines, budget, R, name)
        H = layer_lines(module, X)
        elementwise = isinstance(module, ELEMENTWISE) and R > 1  # (one region: its pattern is one product below)
        crossings = planar.crossing_table(state["V"], state["cnt"], H, eps, sides=elementwise)
        V, E, cnt, owner = planar.subdivide(state["V"], state["E"], state["cnt"], H, eps, j, max_regions, name, cancel, crossings=crossings)
        del H
        release_if_large(R * row + lines, budget)  # a layer big for the budget leaves big holes: give them back
        last = j + 1 == target and target < L  # the walk ends here: no maps for a next layer
        saved = sum(p[0].numel() * p.element_size() for p in pending if p.shape[0])  # per region, re-indexed too
        width = _next_linear_width(modules, positions[j]) if j in positions and elementwise else None
        # this layer's maps, then their children's and the next layer's (a Linear next: only its output)
        child_row = 2 * row if width is None else 2 * X.shape[1] * width * X.element_size()
        no_children = last and (elementwise or R == 1)  # the pieces' patterns alone, read without their maps
        need = R * (row + saved) + (0 if no_children else V.shape[0] * (child_row + saved))
        over = need > budget
        chunk_pieces = over and j in positions and (elementwise or R == 1)
        if over and not chunk_pieces:
            if j in positions:  # (a max-pool's pieces): these regions in chunks, each cut again
                split(positions[j], j, lambda a, b: X[a:b], need, held(X, R * row), state["V"], state["E"], state["cnt"], state["codes"])
            raise MemoryBudgetExceeded(need, budget, V.shape[0], name)
        interior = _interior_points(V, cnt)
        if elementwise:  # the pieces' maps are gathered only if a later module needs them (Activated)
            child = children_pattern(X, owner, interior, crossings)
            pattern = child.pattern
        else:  # one parent map (the first layer of a slice): every piece reads it through a view, no copy per piece
            Xo = X.expand(owner.shape[0], *X.shape[1:]) if R == 1 else X.index_select(0, owner)
            pattern = layer_pattern(module, Xo, interior)
        if layers[j].kind == "maxpool2d":  # pieces whose argmax did not change are one region
            V, E, cnt, owner, pattern, keep = merge_equal_patterns(V, E, cnt, owner, pattern, eps)
            if keep.shape[0] < Xo.shape[0]:
                Xo = Xo.index_select(0, keep)
        own_np = owner.cpu().numpy()
        codes = state["codes"].refine(own_np, pack_pattern(pattern.cpu().numpy(), layers[j].kind))
        state.update(V=V, E=E, cnt=cnt, codes=codes)
        verts, offsets, labels = _ragged(V, E, cnt)
        records.append(dict(vertices=verts, offsets=offsets, edge_layer=labels, codes=codes, parent=own_np, seconds=time.perf_counter() - t0))
        if last:
            raise StopWalk
        if elementwise:
            shared = any(p.untyped_storage().data_ptr() == X.untyped_storage().data_ptr() for p in pending)  # a residual's input
            out = Activated(module, X, owner, pattern, crossings.side, child.changed_piece, child.changed_unit, inplace=not shared)
            if chunk_pieces:  # these pieces in chunks, from the module after this layer
                split(positions[j] + 1, j + 1, out.pieces, need, held(X, R * row), V, E, cnt, codes)
            return out, owner
        if chunk_pieces:  # the pieces of the one region, in chunks
            split(positions[j] + 1, j + 1, lambda a, b: activate(module, Xo[a:b], pattern[a:b]), need, held(X, R * row), V, E, cnt, codes)
        return activate(module, Xo, pattern, inplace=R != 1), owner

    seq = net.layers if start.position == 0 else torch.nn.Sequential(*modules[start.position :])
    logits = None
    try:
        logits = walk(seq, _take_input(start), on_nonlinearity, counter=[start.layer], pending=pending)
    except StopWalk:
        pass
    full = {}
    if logits is not None:
        if progress is not None:
            progress(0.97, "logits, classes and decision boundary")
        full = _full_depth_outputs(net, ctx["slice"], state, logits, eps, ctx["boundary"], dev, ctx["slope_norm"])
    return records, full


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


def region_slope_norms(network: Network, tess: Tessellation2D | Tessellation3D, regions=None, device=None, cancel: Cancel = None) -> np.ndarray:
    """||A_w||_2 of the full-depth regions ``regions`` (default all) of ``tess``, computed afterwards.

    The same numbers as ``tessellate(..., slope_norm=True)``: each region's Jacobian w.r.t. the full input
    with its activation pattern (``tess.codes``) fixed, in float64. A view that does not show slopes
    tessellates with ``slope_norm=False`` and asks here for the regions it shows (all of them for a slope
    colouring, one for the inspector); for the digits CNN this is most of the tessellation's time.
    """
    if not tess.full_depth or tess.out_linear is None:
        raise SplineAtlasError(f"slope norms need the full-depth tessellation; this one stops after layer {tess.depth} of {len(tess.layers)}.")
    net, dev, X = prepare(network, tess.slice, device)
    out_linear = torch.as_tensor(np.asarray(tess.out_linear), dtype=X.dtype, device=dev)
    return slope_norms(net, tess.slice, out_linear, tess.codes, dev, regions, cancel)


def with_slope_norms(network: Network, tess: Tessellation2D | Tessellation3D, device=None, cancel: Cancel = None) -> Tessellation2D | Tessellation3D:
    """``tess`` (full depth) with every region's ||A_w||_2 filled in (a copy; ``tess`` itself is unchanged).
    The copy keeps ``tess``'s shared vertex table if it was built (the geometry is the same)."""
    out = dataclasses.replace(tess, slope_norm=region_slope_norms(network, tess, None, device, cancel))
    if "vertex_table" in tess.__dict__:  # a built functools.cached_property lives in the instance dict
        out.__dict__["vertex_table"] = tess.__dict__["vertex_table"]
    return out


def has_slope_norms(tess: Tessellation2D | Tessellation3D) -> bool:
    """True when ``tess`` is at full depth and every region's ||A_w||_2 is known (not NaN)."""
    return bool(tess.full_depth) and not np.isnan(np.asarray(tess.slope_norm, dtype=np.float64)).any()


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
    memory_budget: int | None = None,
) -> Tessellation2D | Tessellation3D:
    """The exact tessellation of ``slice_`` (2D or 3D) after ``depth`` layers (default: all).

    Equivalent to ``tessellate_all_depths(...)[-1]``; see there for the arguments. With ``depth < L``
    the logits are not computed, so classes are -1, slope norms NaN and the decision boundary empty.
    """
    return tessellate_all_depths(network, slice_, domain, depth, device, max_regions, tol, progress, cancel, boundary, slope_norm, memory_budget)[-1]
