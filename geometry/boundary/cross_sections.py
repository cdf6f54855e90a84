"""Cross-sections of the decision boundary through a point, as in Fawzi et al. ("Classification regions of
deep neural networks", Figs. 1-2): the plane through x spanned by its DeepFool perturbation r(x) and
either a random direction or the direction to a second point x2 (or a region-path segment p_i − p_{i+1}).

The results are ordinary :class:`geometry.slices.Slice` objects (origin x, first axis along r(x)), so
they plug straight into the exact tessellation; ``domain`` is a box scaled to ||r(x)|| for them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn

from geometry.boundary.deepfool import DeepFoolResult, deepfool
from geometry.errors import SplineAtlasError
from geometry.slices import Slice


DEFAULT_EXTENT = 3.0
"""Half-width of a cross-section's box, in units of ||r(x)|| (the boundary crossing at 1 sits inside)."""


@dataclass(frozen=True)
class CrossSection:
    """One cross-section. slice: origin x, basis (D, 2) = orthonormalised (r(x), second direction);
    anchors: x at u = (0, 0), x + r(x) at (||r||, 0) and, for a two-point section, x2.
    domain: (4,) box [umin, umax, vmin, vmax] in slice coordinates (``extent`` × ||r|| around x).
    perturbation: (D,) r(x) (with DeepFool's overshoot). original_label / adversarial_label: classes of x
    and x + r. kind: "random" | "point" | "direction"."""

    slice: Slice
    domain: np.ndarray
    perturbation: np.ndarray
    original_label: int
    adversarial_label: int
    kind: str


def cross_sections(
    net: nn.Module, x, second=None, *, extent: float = DEFAULT_EXTENT, seed: int = 0, deepfool_result: DeepFoolResult | None = None, **deepfool_kwargs
) -> list[CrossSection]:
    """Fawzi cross-sections through each point of ``x (N, D)``.

    second: None (a Gaussian random direction per point, seeded), an (N, D)/(D,) array of second
    POINTS x2 (direction x2 − x; x2 becomes an anchor), or a dict ``{"directions": (N, D)}`` of raw
    directions (e.g. path segments). extent: the box half-width in units of ||r(x)|| (at least large
    enough to show x2). deepfool_result: reuse a DeepFool run on the same points; else one is computed
    (batched) with ``deepfool_kwargs``. Raises SplineAtlasError for a point whose DeepFool did not
    converge (no boundary found) or whose second direction is parallel to r(x).
    """
    X = np.atleast_2d(np.asarray(x, dtype=np.float64))
    n, D = X.shape
    res = deepfool_result if deepfool_result is not None else deepfool(net, X, **deepfool_kwargs)
    if res.perturbation.shape != X.shape:
        raise SplineAtlasError("the DeepFool result does not match the points given.")
    kind, anchors2 = "random", None
    if second is None:
        dirs = np.random.default_rng(seed).normal(size=(n, D))
    elif isinstance(second, dict):
        kind = "direction"
        dirs = np.broadcast_to(np.asarray(second["directions"], dtype=np.float64), (n, D))
    else:
        kind = "point"
        anchors2 = np.broadcast_to(np.asarray(second, dtype=np.float64), (n, D))
        dirs = anchors2 - X
    out = []
    for i in range(n):
        r = res.perturbation[i]
        nr = float(np.linalg.norm(r))
        if not res.converged[i] or nr == 0.0:
            raise SplineAtlasError(f"point {i}: DeepFool found no decision boundary (raise max_iter, or pick another point).")
        anchors = [X[i], X[i] + r] + ([anchors2[i]] if anchors2 is not None else [])
        try:
            sl = Slice.from_directions(
                X[i],
                np.stack([r, dirs[i]]),
                anchors=np.stack(anchors),
                description=f"cross-section through point {i}: r(x) and "
                f"{'a random direction' if kind == 'random' else 'x2 - x' if kind == 'point' else 'a given direction'}",
            )
        except SplineAtlasError:
            raise SplineAtlasError(f"point {i}: the second direction is parallel to r(x); pick another.") from None
        half = extent * nr
        if anchors2 is not None:
            half = max(half, 1.1 * float(np.abs(sl.anchors[2]).max()))
        out.append(CrossSection(sl, np.array([-half, half, -half, half]), r.copy(), int(res.original_labels[i]), int(res.labels[i]), kind))
    return out
