"""Linear programs on one region: active bits (Liu et al. eq. 6), Chebyshev centre (their LP 8), neighbours.

Solver: HiGHS (open source), through ``highspy`` for the warm-started LPs and
``scipy.optimize.linprog(method="highs"/"highs-ipm")`` for one-off LPs.

Active bits (non-redundant inequalities) are found EXACTLY with far fewer and much smaller LPs than
the article's one-LP-per-row eq. 6 over all other rows (rows are normalised, ||a_k|| = 1, so
tolerances are input-space distances; a unit constant on the region is never a facet):

1. Ray shooting (vectorised, no LP). From a strictly interior point x0 the ray x0 + t d leaves the
   polyhedron through the hyperplane with the smallest positive ``slack_k / (a_k . d)``; when that
   minimum is unique the exit point is in the relative interior of a facet, so that row is certified
   non-redundant. We shoot along every row's own normal and along random directions.
2. Bulk certificates from vertices (a few warm-started LPs over all rows): at a non-degenerate optimal
   vertex every one of the D tight rows is a facet (see :func:`_vertex_certificates`).
   In 2D/3D boxes instead: Qhull enumerates the vertices of the polytope of the known facets, and a
   row whose maximum over them is <= c_k is redundant — no LP at all (:func:`_vertex_filter`).
3. Clarkson's redundancy test for the rest. Keep S = certified facets (+ the box). For an undecided
   row i solve ``max a_i.y  s.t.  A_S y <= c_S`` (only |S| rows; warm-started in one HiGHS model that
   grows as facets are found). If the optimum is <= c_i (+tol), row i is redundant even for S, hence
   for all rows. Otherwise the optimum y* violates row i; the ray from x0 to y* exits P through a new
   facet k (first hit), which joins S, and the LP is repeated. Every LP settles a row or finds a facet.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import linprog

from geometry.errors import CancelledError, SplineAtlasError
from geometry.regions.affine import HRep, hreps_from_patterns, patterns_of

Box = tuple[np.ndarray, np.ndarray]


def as_box(box, dim: int) -> Box | None:
    """None, (lo, hi) scalars or (D,) arrays, or [lo, hi] -> (lo (D,), hi (D,)) float64."""
    if box is None:
        return None
    lo, hi = box
    lo = np.broadcast_to(np.asarray(lo, np.float64), (dim,)).copy()
    hi = np.broadcast_to(np.asarray(hi, np.float64), (dim,)).copy()
    if np.any(hi <= lo):
        raise SplineAtlasError("the bounding box needs lo < hi in every coordinate.")
    return lo, hi


def _normalised(h: HRep) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(An, cn, valid): unit-norm rows; valid marks rows with a non-zero gradient."""
    n = h.norms
    valid = n > 1e-12 * max(1.0, float(n.max(initial=0.0)))
    An = np.zeros_like(h.A)
    cn = np.zeros_like(h.c)
    An[valid] = h.A[valid] / n[valid, None]
    cn[valid] = h.c[valid] / n[valid]
    return An, cn, valid


@dataclass(frozen=True)
class Chebyshev:
    """Largest ball inside the region (∩ box): centre (D,) float64, radius (>0: non-empty interior)."""

    centre: np.ndarray
    radius: float
    status: str = "optimal"


def chebyshev(h: HRep, box=None, rows: np.ndarray | None = None) -> Chebyshev:
    """Chebyshev centre and radius of ``{A x <= c} ∩ box`` (Liu et al. LP 8), by HiGHS (IPM + crossover).

    ``max r  s.t.  a_k.x + r ||a_k|| <= c_k`` (+ the box walls ``x_i + r <= hi_i``, ``-x_i + r <= -lo_i``).
    rows: optional subset of bits (e.g. the active ones: same optimum, smaller LP). A negative radius
    means the pattern's region is empty. Without a box an unbounded region raises.
    """
    An, cn, valid = _normalised(h)
    sel = valid if rows is None else (valid & np.isin(np.arange(h.n_bits), rows))
    A_ub = [np.hstack([An[sel], np.ones((sel.sum(), 1))])]
    b_ub = [cn[sel]]
    D = h.dim
    bx = as_box(box, D)
    if bx is not None:
        lo, hi = bx
        I = np.eye(D)
        A_ub += [np.hstack([I, np.ones((D, 1))]), np.hstack([-I, np.ones((D, 1))])]
        b_ub += [hi, -lo]
    # constant rows (zero gradient) with negative right-hand side make the region empty
    if np.any(~valid & (h.c < -1e-12)):
        return Chebyshev(np.full(D, np.nan), -np.inf, "empty")
    obj = np.zeros(D + 1)
    obj[-1] = 1.0
    # HiGHS interior point + crossover (~1.4x faster than simplex on these dense LPs), called directly
    status, z = _highs_max(obj, np.vstack(A_ub), np.concatenate(b_ub), solver="ipm")
    if status == "unbounded":
        raise SplineAtlasError("this region is unbounded: give a bounding box (e.g. --box) for its Chebyshev centre.")
    if status != "optimal":
        return Chebyshev(np.full(D, np.nan), -np.inf, status)
    return Chebyshev(z[:D].copy(), float(z[-1]))


def _highs_max(c: np.ndarray, A: np.ndarray, b: np.ndarray, solver: str = "choose") -> tuple[str, np.ndarray | None]:
    """``max c.z  s.t.  A z <= b`` (free variables) with highspy. Returns (status, z): status is
    "optimal", "unbounded", "infeasible" or HiGHS's own word."""
    import highspy

    h = _new_highs()
    h.setOptionValue("solver", solver)
    h.setOptionValue("presolve", "on")
    n, k = A.shape
    inf = highspy.kHighsInf
    h.addVars(k, np.full(k, -inf), np.full(k, inf))
    A = np.ascontiguousarray(A, np.float64)
    h.addRows(
        n, np.full(n, -inf), np.asarray(b, np.float64), n * k, np.arange(0, n * k, k, dtype=np.int32), np.tile(np.arange(k, dtype=np.int32), n), A.ravel()
    )
    h.changeObjectiveSense(highspy.ObjSense.kMaximize)
    h.changeColsCost(k, np.arange(k, dtype=np.int32), np.asarray(c, np.float64))
    h.run()
    st = h.getModelStatus()
    if st == highspy.HighsModelStatus.kOptimal:
        return "optimal", np.array(h.getSolution().col_value)
    if st in (highspy.HighsModelStatus.kUnbounded, highspy.HighsModelStatus.kUnboundedOrInfeasible):
        return "unbounded", None
    if st == highspy.HighsModelStatus.kInfeasible:
        return "infeasible", None
    return h.modelStatusToString(st), None


@dataclass(frozen=True)
class ActiveBits:
    """Non-redundant inequalities of a region (∩ box).

    bits: (q,) int64 sorted bit indices (the facets; box walls are not bits).
    witness: (q, D) float64, a point in the relative interior of each facet (used to step into neighbours).
    box_facets: box walls seen to be facets (by rays / eq. 6 LPs; a lower bound: the fast path keeps the box
    as variable bounds). n_lps: LPs solved. n_ray_certified: facets found by
    rays alone. interior: (D,) the strictly interior point used.
    """

    bits: np.ndarray
    witness: np.ndarray
    box_facets: int
    n_lps: int
    n_ray_certified: int
    interior: np.ndarray
    stats: dict = field(default_factory=dict)

    @property
    def count(self) -> int:
        return int(self.bits.shape[0])


def _first_hits(M: np.ndarray, m: np.ndarray, x0: np.ndarray, dirs: np.ndarray, rel_tie: float = 1e-9):
    """First hyperplane hit by rays x0 + t d. M: (n, D) unit rows, m: (n,), dirs: (k, D).

    Returns (row (k,) int64 with -1 for a miss or an ambiguous tie, t (k,) float64)."""
    s = m - M @ x0
    Mt = torch.as_tensor(M)
    rates = (torch.as_tensor(dirs) @ Mt.T).numpy()  # (k, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(rates > 1e-14, s[None, :] / rates, np.inf)
    if t.shape[1] == 0:
        return np.full(len(dirs), -1), np.full(len(dirs), np.inf)
    k2 = min(2, t.shape[1])
    part = np.partition(t, k2 - 1, axis=1)[:, :k2]
    tmin = part.min(axis=1)
    row = np.argmin(t, axis=1)
    if k2 == 2:
        second = part.max(axis=1)
        tie = second <= tmin * (1 + rel_tie) + 1e-15
        row = np.where(tie, -1, row)
    row = np.where(np.isfinite(tmin), row, -1)
    return row.astype(np.int64), tmin


def active_bits(
    h: HRep,
    interior: np.ndarray | None = None,
    box=None,
    tol: float = 1e-9,
    n_random: int | None = None,
    seed: int = 0,
    method: str = "clarkson",
    ray_rounds: int = 0,
    origins_per_round: int = 16,
    vertex_lps: int | None = None,
    cancel=None,
) -> ActiveBits:
    """Active bits of a region, exactly (see module docstring).

    interior: a point strictly inside the region (∩ box); default: the Chebyshev centre (needs a box
    for unbounded regions). box: None (redundancy in all of R^D, as the article) or (lo, hi): facets of
    the region ∩ box (for traversal inside a box). tol: a row is redundant when max a_k.y over the
    rest is <= c_k + tol (unit-norm rows, so tol is an input-space distance). method: "clarkson"
    (rays + small LPs) or "lp" (the article's eq. 6: one LP per row over all other rows; slow, for
    comparison). n_random: random rays (default 2 D + 64). ray_rounds / origins_per_round: extra ray
    rounds from interior points halfway between x0 and known facets (cheap, certify more facets).
    vertex_lps: at most this many whole-polyhedron LPs whose non-degenerate optimal vertices certify
    up to D facets each (default: 2 * rows / D + 2; 0 disables); stops early when they stop paying off.
    """
    D = h.dim
    An, cn, valid = _normalised(h)
    bx = as_box(box, D)
    if bx is not None:
        lo, hi = bx
        I = np.eye(D)
        M = np.vstack([An, I, -I])
        m = np.concatenate([cn, hi, -lo])
        is_box = np.r_[np.zeros(h.n_bits, bool), np.ones(2 * D, bool)]
        rvalid = np.r_[valid, np.ones(2 * D, bool)]
    else:
        M, m, is_box, rvalid = An, cn, np.zeros(h.n_bits, bool), valid.copy()
    n_rows = M.shape[0]
    if interior is None:
        cb = chebyshev(h, box=bx)
        if not cb.radius > 0:
            raise SplineAtlasError("this pattern's region has an empty interior; it has no active bits.")
        interior = cb.centre
    x0 = np.asarray(interior, np.float64)
    s0 = m - M @ x0
    if np.any(s0[rvalid] <= 0):
        raise SplineAtlasError("the interior point given to active_bits is not strictly inside the region.")
    state = np.zeros(n_rows, np.int8)  # 0 undecided, 1 facet, -1 redundant
    state[~rvalid] = -1
    if bx is not None and method == "clarkson":  # interval bound: hyperplanes that miss the box are redundant
        top = np.maximum(An * bx[0], An * bx[1]).sum(axis=1)
        state[: h.n_bits][valid & (top <= cn + tol)] = -1
    witness = np.full((n_rows, D), np.nan)
    lps = 0
    vidx = np.flatnonzero(rvalid)
    Mv, mv = M[vidx], m[vidx]

    def hit_from(z, dirs):
        rows, t = _first_hits(Mv, mv, z, dirs)
        for r, tt, d in zip(rows, t, dirs):
            if r >= 0:
                k = vidx[r]
                if state[k] != 1:
                    state[k] = 1
                    witness[k] = z + tt * d
        return rows

    def hit(dirs):
        return hit_from(x0, dirs)

    def row_lp(i: int, rows: np.ndarray):
        """max a_i.y s.t. rows, a_i.y <= c_i + 1 (always bounded and feasible: x0 satisfies it)."""
        nonlocal lps
        A_ub = np.vstack([M[rows], M[i][None, :]])
        b_ub = np.concatenate([m[rows], [m[i] + 1.0]])
        res = linprog(-M[i], A_ub=A_ub, b_ub=b_ub, bounds=[(None, None)] * D, method="highs")
        lps += 1
        if res.status != 0:
            raise SplineAtlasError(f"HiGHS failed on a redundancy LP ({res.message}).")
        return -res.fun, res.x

    if method not in ("clarkson", "lp"):
        raise SplineAtlasError(f"unknown active-bit method {method!r}; use 'clarkson' or 'lp'.")
    if method == "lp":
        n_ray = 0
        for k in vidx:
            if cancel is not None and cancel():
                raise CancelledError("active-bit computation was cancelled.")
            others = rvalid.copy()
            others[k] = False
            val, y = row_lp(k, others)
            if val > m[k] + tol:
                state[k] = 1
                witness[k] = x0 + _first_hits(M[k : k + 1], m[k : k + 1], x0, (y - x0)[None, :])[1][0] * (y - x0)
            else:
                state[k] = -1
    else:
        warm = _WarmLP(M, m, bx, x0)
        if vertex_lps is None:
            vertex_lps = 2 * int(rvalid.sum()) // D + 2
        rng = np.random.default_rng(seed)
        k_rand = 2 * D + 64 if n_random is None else int(n_random)
        hit(np.vstack([Mv, rng.standard_normal((k_rand, D))]))
        n_ray = int((state == 1).sum())
        for _ in range(ray_rounds):  # more origins: interior points between x0 and known facets
            und = np.flatnonzero(state == 0)
            known = np.flatnonzero((state == 1) & np.all(np.isfinite(witness), axis=1))
            if len(und) == 0 or len(known) == 0:
                break
            pick = rng.choice(known, size=min(len(known), origins_per_round), replace=False)
            before = int((state == 1).sum())
            for k in pick:
                hit_from(0.5 * (x0 + witness[k]), np.vstack([M[und], rng.standard_normal((16, D))]))
            if int((state == 1).sum()) == before:
                break
        n_ray = int((state == 1).sum())
        low_dim = bx is not None and D <= 4
        if low_dim:  # Qhull vertex enumeration settles the redundant rows without LPs
            _vertex_filter(M, m, state, x0, tol, is_box)
        elif vertex_lps:
            lps += _vertex_certificates(M, m, rvalid, state, witness, tol, rng, max_lps=vertex_lps, cancel=cancel)
        for i in _similar_order(M, np.flatnonzero(state == 0)):  # similar objectives back to back: warm starts pay
            if state[i] != 0:
                continue
            if low_dim and _vertex_filter(M, m, state, x0, tol, is_box) and state[i] != 0:
                continue
            if cancel is not None and cancel():
                raise CancelledError("active-bit computation was cancelled.")
            while state[i] == 0:
                val, y = warm.solve(M[i], [k for k in np.flatnonzero(state == 1) if not is_box[k]])
                lps += 1
                if val is None or (val <= m[i] + tol and warm.bound_active):
                    val, y = row_lp(i, state == 1)  # exact fallback (a big-box bound touched the optimum)
                if val <= m[i] + tol:
                    state[i] = -1
                    break
                rows = hit((y - x0)[None, :])  # marks the first facet hit (a new one, or row i itself)
                if rows[0] < 0:  # ambiguous tie on that ray: settle row i by the full eq. 6 LP
                    others = rvalid.copy()
                    others[i] = False
                    val, y = row_lp(i, others)
                    state[i] = 1 if val > m[i] + tol else -1
                    if state[i] == 1:
                        witness[i] = x0 + _first_hits(M[i : i + 1], m[i : i + 1], x0, (y - x0)[None, :])[1][0] * (y - x0)
    facets = np.flatnonzero((state == 1) & ~is_box)
    return ActiveBits(
        bits=facets.astype(np.int64),
        witness=witness[facets],
        box_facets=int(((state == 1) & is_box).sum()),
        n_lps=lps,
        n_ray_certified=n_ray,
        interior=x0,
        stats={"rows": int(rvalid.sum())},
    )


def _vertex_certificates(M, m, rvalid, state, witness, tol, rng, max_lps: int, cancel=None, min_gain: int = 2) -> int:
    """Certify facets in bulk: ``max a_i.y`` over the whole polyhedron for random undecided rows i.

    At a non-degenerate optimal vertex v (exactly D tight rows, linearly independent) EVERY tight row k
    is a facet: the direction u_k with a_k.u = 0 and a_j.u = -1 for the other tight rows leads from v into
    the relative interior of facet k (its witness). If instead the optimum stays below c_i - tol, row i
    misses the polyhedron and is redundant. One warm-started LP can settle up to D rows; the stage stops
    after ``max_lps`` LPs or when an LP certifies fewer than ``min_gain`` new facets. Returns LPs solved.
    """
    import highspy

    D = M.shape[1]
    vidx = np.flatnonzero(rvalid)
    Mv, mv = M[vidx], m[vidx]
    h = _new_highs()
    inf = highspy.kHighsInf
    h.addVars(D, np.full(D, -inf), np.full(D, inf))
    n = len(vidx)
    h.addRows(n, np.full(n, -inf), mv, n * D, np.arange(0, n * D, D, dtype=np.int32), np.tile(np.arange(D, dtype=np.int32), n), Mv.ravel())
    h.changeObjectiveSense(highspy.ObjSense.kMaximize)
    cols = np.arange(D, dtype=np.int32)
    lps = 0
    while lps < max_lps:
        und = np.flatnonzero(state == 0)
        if len(und) == 0:
            break
        if cancel is not None and cancel():
            raise CancelledError("active-bit computation was cancelled.")
        i = int(rng.choice(und))
        h.changeColsCost(D, cols, M[i])
        h.run()
        lps += 1
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            break
        v = np.array(h.getSolution().col_value)
        sl = mv - Mv @ v
        if m[i] - M[i] @ v > tol:
            state[i] = -1
            continue
        tight = np.flatnonzero(sl <= 1e-9 * max(1.0, float(np.abs(v).max())))
        gain = 0
        if len(tight) == D:
            try:
                U = np.linalg.solve(Mv[tight], np.eye(D) - 1.0)  # column k: a_k.u = 0, a_j.u = -1 (j != k)
            except np.linalg.LinAlgError:
                U = None
            if U is not None and np.all(np.isfinite(U)):
                rest = np.setdiff1d(np.arange(n), tight)
                rates = Mv[rest] @ U
                with np.errstate(divide="ignore", invalid="ignore"):
                    steps = np.where(rates > 1e-14, sl[rest, None] / rates, np.inf)
                eps = np.minimum(0.5 * steps.min(axis=0, initial=np.inf), 1.0 / np.maximum(np.linalg.norm(U, axis=0), 1e-300))
                for j, k in enumerate(vidx[tight]):
                    w = v + eps[j] * U[:, j]
                    if state[k] != 1 and np.all(mv - Mv @ w >= -1e-12):
                        state[k] = 1
                        witness[k] = w
                        gain += 1
        if gain < min_gain:
            break
    return lps


def _vertex_filter(M, m, state, x0, tol, is_box) -> bool:
    """Low dimension (D <= 4, bounded by a box): enumerate the vertices of the polytope of the known facets
    (+ box walls) with Qhull; an undecided row whose maximum over those vertices is <= c + tol is redundant
    (a linear function peaks at a vertex). Decides most rows of a 2D/3D region with no LP. Returns
    whether anything was decided."""
    from scipy.spatial import HalfspaceIntersection
    from scipy.spatial import QhullError

    und = np.flatnonzero(state == 0)
    S = np.flatnonzero((state == 1) | is_box)  # all box walls: the polytope stays bounded
    if len(und) == 0 or len(S) <= M.shape[1]:
        return False
    try:
        V = HalfspaceIntersection(np.hstack([M[S], -m[S, None]]), x0).intersections
    except (QhullError, ValueError):
        return False
    if not np.all(np.isfinite(V)):
        return False
    red = (V @ M[und].T).max(axis=0) <= m[und] + tol
    state[und[red]] = -1
    return bool(red.any())


def _similar_order(M: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Greedy nearest-neighbour chain of the rows ``idx`` by cosine similarity of their normals."""
    if len(idx) <= 2:
        return idx
    S = M[idx] @ M[idx].T
    left = np.ones(len(idx), bool)
    order = [0]
    left[0] = False
    for _ in range(len(idx) - 1):
        sims = np.where(left, S[order[-1]], -np.inf)
        j = int(np.argmax(sims))
        order.append(j)
        left[j] = False
    return idx[np.array(order)]


_BANNER_DONE = False


def _new_highs():
    """A silent highspy.Highs (HiGHS prints a banner to fd 1 on the first construction: swallow it)."""
    import os
    import sys

    import highspy

    global _BANNER_DONE
    if _BANNER_DONE:
        h = highspy.Highs()
    else:
        sys.stdout.flush()
        saved = os.dup(1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 1)
            h = highspy.Highs()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            os.close(devnull)
        _BANNER_DONE = True
    h.setOptionValue("output_flag", False)
    h.setOptionValue("presolve", "off")  # presolve would discard the warm-start basis between re-solves
    return h


class _WarmLP:
    """``max a.y`` over the known facets S (∩ box), re-solved with HiGHS's warm start (highspy).

    Rows are added as facets are discovered; only the objective changes between solves, so the
    simplex restarts from the previous basis. Without a box the columns get a big box around x0; when
    a column bound is active at the optimum the caller re-solves exactly (``bound_active``).
    """

    def __init__(self, M: np.ndarray, m: np.ndarray, box, x0: np.ndarray):
        import highspy

        self.M, self.m = M, m
        D = M.shape[1]
        self.h = _new_highs()
        self.h.setOptionValue("output_flag", False)
        if box is not None:
            lo, hi = box
            self.exact_bounds = True
        else:
            R = 1e4 * (1.0 + float(np.abs(x0).max()))
            lo, hi = x0 - R, x0 + R
            self.exact_bounds = False
        self.lo, self.hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
        self.h.addVars(D, self.lo, self.hi)
        self.h.changeObjectiveSense(highspy.ObjSense.kMaximize)
        self.cols = np.arange(D, dtype=np.int32)
        self.rows: set[int] = set()
        self.bound_active = False
        self._ok = highspy.HighsModelStatus.kOptimal

    def solve(self, a: np.ndarray, facet_rows) -> tuple[float | None, np.ndarray | None]:
        for k in facet_rows:
            if k not in self.rows:
                self.rows.add(k)
                self.h.addRow(-np.inf, float(self.m[k]), len(self.cols), self.cols, self.M[k])
        self.h.changeColsCost(len(self.cols), self.cols, a)
        self.h.run()
        if self.h.getModelStatus() != self._ok:
            return None, None
        y = np.array(self.h.getSolution().col_value)
        scale = 1e-9 * max(1.0, float(np.abs(y).max()))
        self.bound_active = (not self.exact_bounds) and bool(np.any(y - self.lo <= scale) or np.any(self.hi - y <= scale))
        return float(a @ y), y


def _step_across(net, h: HRep, bits: np.ndarray, witness: np.ndarray, device=None, max_halvings: int = 30, box=None):
    """Points just across each facet (into the neighbour). Returns (points (q, D), ok (q,) bool, patterns).

    The step starts at half the distance from the witness to the nearest other hyperplane and is halved
    until the forward pattern equals the region's pattern with exactly that bit flipped.
    """
    q = len(bits)
    if q == 0:
        return np.zeros((0, h.dim)), np.zeros(0, bool), np.zeros((0, h.n_bits), bool)
    An, cn, valid = _normalised(h)
    target = np.repeat(h.pattern[None, :], q, axis=0)
    target[np.arange(q), bits] = ~target[np.arange(q), bits]
    s = cn[None, :] - witness @ An.T  # (q, n)
    s[:, ~valid] = np.inf
    s[np.arange(q), bits] = np.inf
    smin = s.min(axis=1)
    bx = as_box(box, h.dim)
    if bx is not None:  # stay inside the box too
        smin = np.minimum(smin, np.minimum(witness - bx[0], bx[1] - witness).min(axis=1))
    eps = np.clip(0.5 * smin, 1e-12, 1.0)
    eps = np.where(np.isfinite(eps), eps, 1.0)
    normal = An[bits]  # outward normal of facet k: a_k points out of the region (a.x <= c)
    ok = np.zeros(q, bool)
    pts = witness.copy()
    pats = np.zeros((q, h.n_bits), bool)
    todo = np.arange(q)
    for _ in range(max_halvings):
        if len(todo) == 0:
            break
        cand = witness[todo] + eps[todo, None] * normal[todo]
        p = patterns_of(net, cand, device=device)
        good = np.all(p == target[todo], axis=1)
        pts[todo[good]] = cand[good]
        pats[todo[good]] = p[good]
        ok[todo[good]] = True
        todo = todo[~good]
        eps[todo] *= 0.5
    return pts, ok, pats


@dataclass(frozen=True)
class Neighbours:
    """Facet-sharing neighbours: one per active bit.

    bits: (q,) flipped bit per neighbour; patterns: (q, n_bits) bool; points: (q, D) a point inside each
    neighbour (just across the facet); verified: (q,) bool, the forward pass at that point has exactly the
    flipped pattern (so the neighbour is non-empty); radius: (q,) Chebyshev radius of the neighbour
    (∩ box) when computed, else NaN.
    """

    bits: np.ndarray
    patterns: np.ndarray
    points: np.ndarray
    verified: np.ndarray
    radius: np.ndarray


def neighbours(net, h: HRep, act: ActiveBits, box=None, chebyshev_check: bool = False, device=None) -> Neighbours:
    """Flip each active bit; verify each neighbour is non-empty by a point inside it (forward pass) and,
    optionally, by its own Chebyshev LP (radius > 0)."""
    pts, ok, pats = _step_across(net, h, act.bits, act.witness, device=device, box=box)
    flipped = np.repeat(h.pattern[None, :], len(act.bits), axis=0)
    flipped[np.arange(len(act.bits)), act.bits] ^= True
    rad = np.full(len(act.bits), np.nan)
    if chebyshev_check and len(act.bits):
        for j, hn in enumerate(hreps_from_patterns(net, flipped, device=device)):
            rad[j] = chebyshev(hn, box=box).radius
    return Neighbours(act.bits.copy(), flipped, pts, ok, rad)
