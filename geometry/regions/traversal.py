"""Traversal-and-pruning enumeration of every region inside a box (Liu et al. Algorithm 1).

Breadth-first over patterns: a region's neighbours inside the box are the flips of its active bits
(facets of region ∩ box; box walls are not bits). Each newly found region comes with a point strictly
inside it (a step across the shared facet, checked by a forward pass), so no region is ever added on
faith: a pattern enters the result only with a witness point whose forward pattern equals it.
Completeness: the facet-adjacency graph of the regions meeting the box's interior is connected (the box
is convex), and every facet of region ∩ box that is not a box wall leads to a neighbour meeting the
box's interior, so BFS from the seed reaches them all.

Two ways to find a region's facets: for inputs of 2..4 dimensions, Qhull's halfspace intersection about
the witness point, a batch of queued regions per forward pass, and Chebyshev centres at the end as the
best vertex of each region's small facet LP (no solver call); in any dimension, a Chebyshev LP and
:func:`active_bits` (rays and warm-started HiGHS LPs) per region. ``bench/enumerate.py`` measures both
against naive breadth-first searches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geometry.errors import BudgetExceededError, CancelledError, SplineAtlasError
from geometry.regions.affine import check_supported, hreps_from_patterns, patterns_of
from geometry.regions.lp import _new_highs, _step_across, active_bits, as_box, chebyshev


@dataclass(frozen=True)
class Enumeration:
    """All regions meeting the interior of a box.

    patterns: (R, n_bits) bool; points: (R, D) a point inside each region; centres: (R, D) Chebyshev
    centres of region ∩ box and radii: (R,); active_counts: (R,) facets that are bits; adjacency: (E, 2)
    int64 pairs of region indices sharing a facet (each once); lps: LPs solved in total (solver calls;
    the low-dimensional path solves its Chebyshev LPs as vertex systems and counts only the calls).
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


LOW_DIM = 4  # up to this input dimension facets come from Qhull's halfspace intersection, frontier-batched
BATCH = 256  # regions per batch of the low-dimensional path (one forward pass for their maps, one per step round)


def enumerate_regions(
    net, box, seed_point=None, max_regions: int = 100_000, device=None, tol: float = 1e-9, progress=None, cancel=None, method: str = "auto"
) -> Enumeration:
    """Every region of ``net`` meeting the interior of ``box`` = (lo, hi) (scalars or (D,) arrays).

    seed_point: (D,) start (default: the box centre). Meant for low-dimensional inputs (2D/3D); raises
    BudgetExceededError beyond ``max_regions``. method: "auto" (Qhull facets for D <= LOW_DIM, else LPs),
    "qhull" or "lp" (per region: a Chebyshev LP and :func:`active_bits`; any dimension).
    """
    check_supported(net)
    D = net.input_dim
    lo, hi = as_box(box, D)
    x = (0.5 * (lo + hi) if seed_point is None else np.asarray(seed_point, np.float64).reshape(-1)).copy()
    if np.any(x <= lo) or np.any(x >= hi):
        raise SplineAtlasError("the seed point must lie strictly inside the box.")
    if method not in ("auto", "qhull", "lp"):
        raise SplineAtlasError(f"unknown enumeration method {method!r}; use 'auto', 'qhull' or 'lp'.")
    if method == "qhull" and D < 2:
        raise SplineAtlasError("the qhull method needs an input of 2 or more dimensions; use 'lp'.")
    if method == "qhull" or (method == "auto" and 2 <= D <= LOW_DIM):
        return _enumerate_qhull(net, lo, hi, x, max_regions, device, progress, cancel)
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


def _key(p: np.ndarray) -> bytes:
    return np.packbits(p).tobytes()


def _enumerate_qhull(net, lo: np.ndarray, hi: np.ndarray, seed: np.ndarray, max_regions: int, device, progress, cancel) -> Enumeration:
    """The BFS of :func:`enumerate_regions` for low input dimensions, a batch of queued regions at a time.

    Per batch: one forward pass gives every region's H-representation. Per region: its facets are the
    non-redundant halfspaces of Qhull's halfspace intersection of region ∩ box about a strictly interior
    point (no LP), its Chebyshev centre one small HiGHS LP over those facets only (the same optimum as
    over all rows). Per batch again: a point just across every facet (from the facet's centroid, half
    way to the nearest other hyperplane, halved until it holds) is checked by one forward pass to have
    exactly the region's pattern with that bit flipped, and becomes the neighbour's witness. A region
    whose interior point is too close to a cut for Qhull gets its Chebyshev centre over all rows first.
    """
    from scipy.spatial import HalfspaceIntersection, QhullError

    D = seed.shape[0]
    walls = np.vstack([np.eye(D), -np.eye(D)])
    wall_c = np.concatenate([hi, -lo])
    diam = float(np.linalg.norm(hi - lo))
    p0 = patterns_of(net, seed[None, :], device=device)[0]
    n_bits = p0.shape[0]
    index = {_key(p0): 0}
    pats, pts, came = [p0], [seed], [None]  # came: the outward normal of the facet crossed into the region
    facet_rows, counts, edges = [], [], []
    lps = 0
    head = 0
    while head < len(pats):
        if cancel is not None and cancel():
            raise CancelledError("region enumeration was cancelled.")
        batch = range(head, min(len(pats), head + BATCH))
        hreps = hreps_from_patterns(net, np.array([pats[i] for i in batch]), device=device)
        steps = []  # (region, bit, start point, unit outward normal, step length)
        for i, h in zip(batch, hreps):
            norms = np.linalg.norm(h.A, axis=1)
            ok = norms > 0
            M = np.vstack([h.A[ok] / norms[ok, None], walls])
            m = np.concatenate([h.c[ok] / norms[ok], wall_c])
            rows = np.concatenate([np.flatnonzero(ok), -1 - np.arange(2 * D)])  # bit index, or -1.. for a wall
            x = _pulled_in(M, m, pts[i], came[i])
            try:
                if np.min(m - M @ x) <= 1e-9 * diam:
                    raise QhullError("interior point too close to a cut")
                hs = HalfspaceIntersection(np.hstack([M, -m[:, None]]), x)
            except QhullError:
                cb = chebyshev(h, box=(lo, hi))
                lps += 1
                thin = SplineAtlasError("a region's interior is too thin for its facets (degenerate geometry); try another box or seed, or --method lp.")
                if not cb.radius > 0:
                    raise thin from None
                try:
                    hs = HalfspaceIntersection(np.hstack([M, -m[:, None]]), cb.centre)
                except QhullError:
                    raise thin from None
            facets = np.sort(hs.dual_vertices)
            facet_rows.append((M[facets], m[facets]))
            bits = rows[facets]
            counts.append(int((bits >= 0).sum()))
            cut = facets[bits >= 0]  # the facets that are bits (the others are box walls)
            if len(cut):
                verts = hs.intersections
                on = np.abs(verts @ M[cut].T - m[cut]) <= 1e-9 * (1.0 + diam)  # (vertices, facets)
                mids = (on.T @ verts) / np.maximum(on.sum(0), 1)[:, None]  # each facet's vertex centroid, inside it
                slack = m[None, :] - mids @ M.T
                slack[np.arange(len(cut)), cut] = np.inf  # the facet itself; the step stays clear of every other cut
                length = 0.5 * np.maximum(slack.min(1), 1e-12 * diam)
                steps += [(i, int(k), mid, M[f], float(t)) for k, f, mid, t in zip(rows[cut], cut, mids, length)]
        new = _step_into_neighbours(net, steps, pats, device)
        for (i, k, _, normal, _), (q, pq) in zip(steps, new):
            kq = _key(pq)
            j = index.get(kq)
            if j is None:
                j = index[kq] = len(pats)
                pats.append(pq)
                pts.append(q)
                came.append(normal)
                if len(pats) > max_regions:
                    raise BudgetExceededError(f"more than {max_regions} regions in this box; shrink the box or raise max_regions.")
            edges.append((min(i, j), max(i, j)))
        head = batch.stop
        if progress is not None:
            progress(head / len(pats), f"{head} regions done, {len(pats) - head} queued")
    centres, radii, lps_cheb = _chebyshev_of_facets(facet_rows, D)
    lps += lps_cheb
    adjacency = np.unique(np.array(edges, np.int64).reshape(-1, 2), axis=0)
    patterns = np.array(pats).reshape(-1, n_bits)
    return Enumeration(patterns, np.array(pts), np.array(centres), np.array(radii), np.array(counts, np.int64), adjacency, (lo, hi), lps)


def _pulled_in(M: np.ndarray, m: np.ndarray, q: np.ndarray, normal: np.ndarray | None) -> np.ndarray:
    """``q`` moved along the crossed facet's outward normal half way to the next cut: a witness found
    just across a facet is then as far from it as from the region's far side in that direction."""
    if normal is None:
        return q
    rate = M @ normal
    ahead = rate > 1e-15
    if not ahead.any():
        return q
    t = float(np.min((m[ahead] - M[ahead] @ q) / rate[ahead]))
    return q + 0.5 * t * normal if t > 0 else q


MAX_VERTEX_SYSTEMS = 1024  # above this many (D+1)-subsets of a region's facets its Chebyshev LP goes to HiGHS


def _chebyshev_of_facets(facet_rows: list, dim: int, chunk: int = 512) -> tuple[np.ndarray, np.ndarray, int]:
    """Chebyshev centres (R, D) and radii (R,) of regions given by their facets ``(M, m)`` (unit rows,
    walls included), and the HiGHS LPs solved.

    The LP ``max r  s.t.  M x + r <= m`` is bounded and its feasible set pointed (the walls span R^D), so
    its optimum is a vertex: D + 1 tight rows. With few facets (low D), every (D+1)-subset's linear system
    is solved at once for all regions with the same number of facets, and the best feasible vertex is
    the optimum; regions with many facets (or a numerically empty candidate set) get one HiGHS LP each.
    """
    from itertools import combinations

    R = len(facet_rows)
    centres, radii = np.zeros((R, dim)), np.zeros(R)
    by_count: dict[int, list[int]] = {}
    for r, (M, _) in enumerate(facet_rows):
        by_count.setdefault(M.shape[0], []).append(r)
    exact = []
    for n, members in by_count.items():
        subsets = np.array(list(combinations(range(n), dim + 1)), dtype=np.int64).reshape(-1, dim + 1)
        if len(subsets) > MAX_VERTEX_SYSTEMS or len(subsets) == 0:
            exact += members
            continue
        for a in range(0, len(members), chunk):
            idx = members[a : a + chunk]
            M = np.stack([facet_rows[r][0] for r in idx])  # (B, n, D)
            m = np.stack([facet_rows[r][1] for r in idx])  # (B, n)
            A = np.concatenate([M, np.ones((len(idx), n, 1))], axis=2)  # rows of [M, 1]
            S = A[:, subsets]  # (B, S, D+1, D+1)
            rhs = m[:, subsets]  # (B, S, D+1)
            det = np.linalg.det(S)
            regular = np.abs(det) > 1e-12
            S = np.where(regular[..., None, None], S, np.eye(dim + 1))
            z = np.linalg.solve(S, rhs[..., None])[..., 0]  # (B, S, D+1)
            slack = m[:, None, :] - np.einsum("bnk,bsk->bsn", A, z)
            ok = regular & (slack.min(axis=2) >= -1e-9 * (1.0 + np.abs(m).max(axis=1))[:, None])
            r_val = np.where(ok, z[..., -1], -np.inf)
            best = r_val.argmax(axis=1)
            found = np.isfinite(r_val[np.arange(len(idx)), best])
            pick = z[np.arange(len(idx)), best]
            for t, r in enumerate(idx):
                if found[t]:
                    centres[r], radii[r] = pick[t, :-1], pick[t, -1]
                else:
                    exact.append(r)
    if exact:
        cheb = _FacetChebyshev(dim)
        for r in exact:
            centres[r], radii[r] = cheb.solve(*facet_rows[r])
    return centres, radii, len(exact)


class _FacetChebyshev:
    """Chebyshev centre and radius of ``{M x <= m}`` (unit rows: a region's facets, walls included) by one
    reused HiGHS instance: a fresh model per region, without the set-up of a new solver each time."""

    def __init__(self, dim: int):
        import highspy

        self.h = _new_highs()
        self.h.setOptionValue("solver", "simplex")
        self.k = dim + 1
        self.inf = highspy.kHighsInf
        self.sense = highspy.ObjSense.kMaximize
        self.ok = highspy.HighsModelStatus.kOptimal
        self.cols = np.arange(self.k, dtype=np.int32)
        self.cost = np.r_[np.zeros(dim), 1.0]

    def solve(self, M: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, float]:
        h, k, n = self.h, self.k, M.shape[0]
        h.clearModel()
        h.addVars(k, np.full(k, -self.inf), np.full(k, self.inf))
        A = np.ascontiguousarray(np.hstack([M, np.ones((n, 1))]))
        starts = np.arange(0, n * k, k, dtype=np.int32)
        h.addRows(n, np.full(n, -self.inf), np.ascontiguousarray(m, np.float64), n * k, starts, np.tile(self.cols, n), A.ravel())
        h.changeObjectiveSense(self.sense)
        h.changeColsCost(k, self.cols, self.cost)
        h.run()
        if h.getModelStatus() != self.ok:
            raise SplineAtlasError(f"HiGHS failed on a Chebyshev LP over a region's facets ({h.modelStatusToString(h.getModelStatus())}).")
        z = np.array(h.getSolution().col_value)
        return z[:-1], float(z[-1])


def _step_into_neighbours(net, steps: list, pats: list, device, max_halvings: int = 40) -> list:
    """For each (region, bit, start, normal, length): a point across the facet whose forward pattern is the
    region's with exactly that bit flipped, and that pattern; all facets of a batch in one forward pass
    per halving round."""
    if not steps:
        return []
    start = np.array([s[2] for s in steps])
    normal = np.array([s[3] for s in steps])
    length = np.array([s[4] for s in steps])
    target = np.array([pats[s[0]] for s in steps])
    target[np.arange(len(steps)), [s[1] for s in steps]] ^= True
    found = np.zeros_like(start)
    todo = np.arange(len(steps))
    for _ in range(max_halvings):
        cand = start[todo] + length[todo, None] * normal[todo]
        good = np.all(patterns_of(net, cand, device=device) == target[todo], axis=1)
        found[todo[good]] = cand[good]
        todo = todo[~good]
        if len(todo) == 0:
            return list(zip(found, target))
        length[todo] *= 0.5
    bad = sorted({steps[t][1] for t in todo})
    raise SplineAtlasError(f"could not step across facet(s) {bad[:5]} of a region (degenerate geometry); try another box or seed.")
