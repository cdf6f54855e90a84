"""Traversal-and-pruning enumeration of every region inside a box (Liu et al. Algorithm 1).

Breadth-first over patterns: a region's neighbours inside the box are the flips of its active bits
(facets of region ∩ box; box walls are not bits). Each newly found region comes with a point strictly
inside it (a step across the shared facet, checked by a forward pass), so no region is ever added on
faith: a pattern enters the result only with a witness point whose forward pattern equals it.
Completeness: the facet-adjacency graph of the regions meeting the box's interior is connected (the box
is convex), and every facet of region ∩ box that is not a box wall leads to a neighbour meeting the
box's interior, so BFS from the seed reaches them all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geometry.errors import BudgetExceededError, CancelledError, SplineAtlasError
from geometry.regions.affine import check_supported, hreps_from_patterns, patterns_of
from geometry.regions.lp import _step_across, active_bits, as_box, chebyshev


@dataclass(frozen=True)
class Enumeration:
    """All regions meeting the interior of a box.

    patterns: (R, n_bits) bool; points: (R, D) a point inside each region; centres: (R, D) Chebyshev
    centres of region ∩ box and radii: (R,); active_counts: (R,) facets that are bits; adjacency: (E, 2)
    int64 pairs of region indices sharing a facet (each once); lps: LPs solved in total.
    """

    patterns: np.ndarray
    points: np.ndarray
    centres: np.ndarray
    radii: np.ndarray
    active_counts: np.ndarray
    adjacency: np.ndarray
    box: tuple
    lps: int

    @property
    def n_regions(self) -> int:
        return int(self.patterns.shape[0])

    def to_json(self) -> dict:
        return {
            "n_regions": self.n_regions,
            "box": [self.box[0].tolist(), self.box[1].tolist()],
            "patterns": ["".join("1" if v else "0" for v in p) for p in self.patterns],
            "centres": self.centres.tolist(),
            "radii": self.radii.tolist(),
            "active_counts": self.active_counts.tolist(),
            "adjacency": self.adjacency.tolist(),
            "lps": self.lps,
        }


def enumerate_regions(net, box, seed_point=None, max_regions: int = 100_000, device=None, tol: float = 1e-9, progress=None, cancel=None) -> Enumeration:
    """Every region of ``net`` meeting the interior of ``box`` = (lo, hi) (scalars or (D,) arrays).

    seed_point: (D,) start (default: the box centre). Meant for low-dimensional inputs (2D/3D); raises
    BudgetExceededError beyond ``max_regions``.
    """
    check_supported(net)
    D = net.input_dim
    lo, hi = as_box(box, D)
    x = (0.5 * (lo + hi) if seed_point is None else np.asarray(seed_point, np.float64).reshape(-1)).copy()
    if np.any(x <= lo) or np.any(x >= hi):
        raise SplineAtlasError("the seed point must lie strictly inside the box.")
    key = lambda p: np.packbits(p).tobytes()  # noqa: E731
    p0 = patterns_of(net, x[None, :], device=device)[0]
    index = {key(p0): 0}
    pats, pts = [p0], [x]
    centres, radii, counts, edges = [], [], [], set()
    lps = 0
    head = 0
    while head < len(pats):
        if cancel is not None and cancel():
            raise CancelledError("region enumeration was cancelled.")
        h = hreps_from_patterns(net, pats[head], device=device)[0]
        cb = chebyshev(h, box=(lo, hi))
        lps += 1
        if not cb.radius > 0:  # only reachable through a degenerate step; keep the witness point instead
            interior = pts[head]
        else:
            interior = cb.centre
        centres.append(cb.centre)
        radii.append(cb.radius)
        act = active_bits(h, interior=interior, box=(lo, hi), tol=tol)
        lps += act.n_lps
        counts.append(act.count)
        q, ok, qp = _step_across(net, h, act.bits, act.witness, device=device, box=(lo, hi))
        if not ok.all():
            bad = act.bits[~ok]
            raise SplineAtlasError(f"could not step across facet(s) {bad[:5].tolist()} of a region (degenerate geometry); try another box or seed.")
        for j in range(len(act.bits)):
            k = key(qp[j])
            if k not in index:
                index[k] = len(pats)
                pats.append(qp[j])
                pts.append(q[j])
                if len(pats) > max_regions:
                    raise BudgetExceededError(f"more than {max_regions} regions in this box; shrink the box or raise max_regions.")
            a, b2 = sorted((head, index[k]))
            edges.add((a, b2))
        head += 1
        if progress is not None:
            progress(head / len(pats), f"{head} regions done, {len(pats) - head} queued")
    return Enumeration(
        np.array(pats),
        np.array(pts),
        np.array(centres),
        np.array(radii),
        np.array(counts, np.int64),
        np.array(sorted(edges), np.int64).reshape(-1, 2),
        (lo, hi),
        lps,
    )
