"""Regions of a whole 2D input space or slice (all of R², not a box): bounded and unbounded, exactly.

Far from the origin a piecewise-linear network looks like its *recession network* (every bias and
batch-norm shift set to zero, the slice through the origin): at x = o + r·d with r large a unit's
pre-activation is r·a(d) + c, a the recession network's, so the far pattern is the sign of a, or of c
where a is exactly zero (units cut off by dead ones: common in trained nets). These patterns form cones;
read off by walking the square around the origin exactly (:func:`far_crossing_cycle`), they are the
unbounded regions, in cyclic order; two arcs never share a pattern (a region is convex).

A box B contains every vertex of the tessellation when the walk around ∂B crosses the same bent
hyperplanes in the same cyclic order as the cones (every crossing of ∂B is then a ray of the far field,
and no two bent hyperplanes meet beyond it; for a line arrangement this is exact: two lines meeting
outside B cross ∂B in the other order). Units that flip together far out (parallel rays: strips, whose
recession direction is a single ray) are crossed one by one; :func:`matches_far_field` allows that. The box is doubled until that holds, twice in a row with the
same region count; then the whole-plane count is the engine's exact count in B, of which the cones are
the unbounded regions and the rest bounded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from geometry.errors import BudgetExceededError, CancelledError, SplineAtlasError
from geometry.networks.network import Network
from geometry.regions.affine import _as_net64, run_layers
from geometry.regions.linewalk import line_walk
from geometry.slices import Slice

MAX_HALF_WIDTH = 1e12  # beyond this, float64 cannot place far vertices reliably


@dataclass(frozen=True)
class PlaneCount:
    """Regions of the whole slice plane: ``regions`` = ``bounded`` + ``unbounded``; ``half_width``: the
    half-width of the square (centred at ``centre``, slice coordinates) that holds every vertex;
    ``boxes``: how many squares were tessellated to certify it."""

    regions: int
    bounded: int
    unbounded: int
    half_width: float
    centre: tuple[float, float]
    boxes: int

    def to_json(self) -> dict:
        return {
            "regions": self.regions,
            "bounded": self.bounded,
            "unbounded": self.unbounded,
            "half_width": self.half_width,
            "centre": list(self.centre),
            "boxes": self.boxes,
        }


def recession_network(net: Network) -> Network:
    """The network with every constant removed (biases, batch-norm means and shifts): its value at r·x is
    r times its value at x, and it equals the network's behaviour far from the origin."""
    state = {k: v.detach().clone() for k, v in net.layers.state_dict().items()}
    for k, v in state.items():
        if k.endswith(".bias") or k.endswith(".running_mean"):
            v.zero_()
    rec = Network(net.spec)
    rec.layers.load_state_dict(state)
    return rec.to_dtype_device(torch.float64)


def _square(centre: np.ndarray, s: float) -> np.ndarray:
    return centre + s * np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])


def crossing_cycle(net: Network, origin: np.ndarray, basis: np.ndarray, centre: np.ndarray, s: float, cancel=None) -> tuple[list[frozenset], int]:
    """Walking once around the square of half-width ``s`` about ``centre`` (slice coordinates; x = origin +
    basis·u), exactly: the bits that flip at each crossing, in order, and how many distinct regions the
    walk passes through (a strip meets the square twice: it counts once)."""
    corners = _square(centre, s)
    cycle: list[frozenset] = []
    patterns: set[bytes] = set()
    for i in range(4):
        a, b = origin + basis @ corners[i], origin + basis @ corners[(i + 1) % 4]
        walk = line_walk(net, a, b, cancel=cancel)
        cycle += [frozenset(f.tolist()) for f in walk.flipped]  # a corner is no crossing: sides share its region
        patterns |= {np.packbits(p).tobytes() for p in walk.patterns}
    return cycle, len(patterns)


def far_crossing_cycle(net: Network, slice_: Slice, cancel=None) -> list[frozenset]:
    """The far field's crossings, in order around the directions of the slice plane.

    Along a ray x = o + r·d the pre-activations are r·a(d) + c once the pattern has settled, where a is
    the recession network's and c the network's own value at o under the same pattern. A unit is on far
    out where a > 0, or where a is exactly 0 (it is cut off from the input by units that are off: a
    structural zero) and c > 0. The crossings are where some a changes sign (a walk of the recession
    network); the patterns between them follow that rule, layer by layer."""
    rec = recession_network(net)
    net64 = _as_net64(net)
    basis = slice_.basis
    origin = torch.as_tensor(slice_.origin[None, :])
    corners = _square(np.zeros(2), 1.0)
    widths = [li.width for li in net.layer_infos]
    cycle: list[frozenset] = []
    with torch.no_grad():
        for i in range(4):
            walk = line_walk(rec, basis @ corners[i], basis @ corners[(i + 1) % 4], cancel=cancel)
            mids = torch.as_tensor(0.5 * (walk.points[:-1] + walk.points[1:]))
            a, _ = run_layers(rec, mids)
            masks: list[torch.Tensor] = []
            for l, w in enumerate(widths):
                imposed = masks + [torch.zeros(len(mids), v, dtype=torch.bool) for v in widths[l:]]
                c, _ = run_layers(net64, origin.expand(len(mids), -1), imposed)
                masks.append((a[l] > 0) | ((a[l] == 0) & (c[l] > 0)))
            pattern = torch.cat(masks, dim=1).numpy()
            for j in range(len(pattern) - 1):
                flipped = frozenset(np.flatnonzero(pattern[j] != pattern[j + 1]).tolist())
                if flipped:
                    cycle.append(flipped)
    return cycle


def matches_far_field(far: list[frozenset], box: list[frozenset]) -> bool:
    """Whether the walk around a square (``box``) crosses the far field's rays in their cyclic order.

    Several units can flip at one far direction (a unit whose inputs were all off comes on with the unit
    that feeds it): their bent hyperplanes are parallel far out, so the square crosses them one by one.
    ``box`` matches when, read from some start, it splits into consecutive groups whose flips are
    disjoint and together are the far field's flips at each direction, in order."""
    if not far:
        return not box
    n = len(box)
    for start in range(n):
        i, ok = start, True
        for want in far:
            left = set(want)
            while left and ok:
                got = box[i % n]
                if i - start >= n or not got <= left:
                    ok = False
                    break
                left -= got
                i += 1
            if not ok:
                break
        if ok and i - start == n:
            return True
    return False


def region_keys(tess) -> set[bytes]:
    """One key per region of a full-depth tessellation: its whole activation pattern (a region is convex,
    so a pattern names exactly one region of the plane)."""
    rows = tess.codes.rows_bytes()
    return {r.tobytes() for r in rows}


def count_plane_regions(
    net: Network,
    slice_: Slice,
    start: float | None = None,
    centre=(0.0, 0.0),
    max_regions: int | None = None,
    cancel=None,
) -> PlaneCount:
    """Exact bounded/unbounded region counts of ``net`` on the whole plane of a 2D ``slice_``.

    Squares about ``centre`` (slice coordinates) of half-width ``start`` (default 2), doubling, are
    tessellated; the regions are the union of their patterns, so a square's precision (the engine's
    tolerance is relative to its size) never loses a region a smaller square resolved. It stops when the
    walk around two successive squares crosses the far field's rays in their order and the second adds
    no region. Raises a one-line error when no square up to 10¹² certifies (vertices too far for
    float64) or a square exceeds ``max_regions``."""
    from geometry.tessellation import tessellate

    if slice_.dim != 2:
        raise SplineAtlasError("whole-plane counts are for 2D slices (a 3D slice's space has cells, not regions).")
    net.require_piecewise_affine("whole-plane region counts")
    c = np.asarray(centre, dtype=np.float64).reshape(2)
    origin, basis = slice_.origin, slice_.basis
    far = far_crossing_cycle(net, slice_, cancel)
    s = float(start) if start else 2.0
    seen: set[bytes] = set()
    boxes = 0
    far_order_before = False
    while s <= MAX_HALF_WIDTH:
        if cancel is not None and cancel():
            raise CancelledError("whole-plane count was cancelled.")
        box = [c[0] - s, c[0] + s, c[1] - s, c[1] + s]
        tess = tessellate(net, slice_, box, max_regions=max_regions, boundary=False, slope_norm=False, cancel=cancel)
        boxes += 1
        before = len(seen)
        seen |= region_keys(tess)
        around, unbounded = crossing_cycle(net, origin, basis, c, s, cancel)
        far_order = matches_far_field(far, around)
        if far_order and far_order_before and len(seen) == before:
            n = len(seen)  # every vertex is inside: the regions the square's edge meets are the unbounded ones
            return PlaneCount(n, n - unbounded, unbounded, s / 2, (float(c[0]), float(c[1])), boxes)
        far_order_before = far_order
        s *= 2.0
    raise BudgetExceededError(
        f"no square up to half-width {MAX_HALF_WIDTH:.0e} holds every vertex of this network's tessellation "
        "(exactly or nearly parallel bent hyperplanes meet at infinity or too far away for float64); count regions in a box instead."
    )
