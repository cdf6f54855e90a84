"""Regions of a whole 2D input space or slice (all of R², not a box): bounded and unbounded, exactly.

Far from the origin a piecewise-linear network looks like its *recession network* (every bias and
batch-norm shift set to zero, the slice through the origin): at x = r·d with r large the pattern in
direction d is the recession network's, which is positively homogeneous, so its regions are cones. Its
cones, read off by walking the square around the origin exactly (:func:`geometry.regions.line_walk`),
are the unbounded regions, in cyclic order; two arcs never share a pattern (a region is convex).

A box B contains every vertex of the tessellation when the walk around ∂B crosses the same bent
hyperplanes in the same cyclic order as the cones (every crossing of ∂B is then a ray of the far field,
and no two bent hyperplanes meet beyond it; for a line arrangement this is exact: two lines meeting
outside B cross ∂B in the other order). The box is doubled until that holds, twice in a row with the
same region count; then the whole-plane count is the engine's exact count in B, of which the cones are
the unbounded regions and the rest bounded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from geometry.errors import BudgetExceededError, CancelledError, SplineAtlasError
from geometry.networks.network import Network
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


def crossing_cycle(net: Network, origin: np.ndarray, basis: np.ndarray, centre: np.ndarray, s: float, cancel=None) -> list[frozenset]:
    """The bits that flip at each crossing met walking once around the square of half-width ``s`` about
    ``centre`` (slice coordinates; x = origin + basis·u), in order, exactly."""
    corners = _square(centre, s)
    cycle: list[frozenset] = []
    for i in range(4):
        a, b = origin + basis @ corners[i], origin + basis @ corners[(i + 1) % 4]
        walk = line_walk(net, a, b, cancel=cancel)
        cycle += [frozenset(f.tolist()) for f in walk.flipped]  # a corner is no crossing: sides share its region
    return cycle


def _same_cycle(a: list[frozenset], b: list[frozenset]) -> bool:
    """Whether ``b`` is ``a`` read from another starting point (cyclic sequences)."""
    if len(a) != len(b):
        return False
    if not a:
        return True
    doubled = b + b
    first = a[0]
    return any(doubled[i] == first and doubled[i : i + len(a)] == a for i in range(len(b)))


def region_keys(tess) -> set[bytes]:
    """One key per region of a full-depth tessellation: its whole activation pattern (a region is convex,
    so a pattern names exactly one region of the plane)."""
    R = tess.num_regions
    rows = np.concatenate([np.ascontiguousarray(c).view(np.uint8).reshape(R, -1) for c in tess.codes], axis=1)
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
    rec = recession_network(net)
    far = crossing_cycle(rec, np.zeros_like(origin), basis, np.zeros(2), 1.0, cancel)
    unbounded = max(len(far), 1)  # no crossing at all: the plane is one unbounded region
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
        far_order = _same_cycle(far, crossing_cycle(net, origin, basis, c, s, cancel))
        if far_order and far_order_before and len(seen) == before:
            n = len(seen)
            return PlaneCount(n, n - unbounded, unbounded, s / 2, (float(c[0]), float(c[1])), boxes)
        far_order_before = far_order
        s *= 2.0
    raise BudgetExceededError(
        f"no square up to half-width {MAX_HALF_WIDTH:.0e} holds every vertex of this network's tessellation "
        "(exactly or nearly parallel bent hyperplanes meet at infinity or too far away for float64); count regions in a box instead."
    )
