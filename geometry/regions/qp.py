"""Exact smallest perturbation that changes the decision without leaving the region (a QP).

Inside a region the logits are affine, ``f(x) = W x + b``. Let i be the predicted class at x. The points
of the (closed) region where the decision is no longer i form ``∪_{j≠i} P ∩ {f_j >= f_i}``, a union of
convex polyhedra, so the closest such point is the best of C-1 projections

    min ||δ||²  s.t.  A (x + δ) <= c,  (w_i - w_j)·(x + δ) + (b_i - b_j) <= 0   [, x + δ in box]

each a convex QP. The optimum lies on the decision boundary f_i = f_j (x has f_i > f_j). When every
QP is infeasible the decision boundary does not pass through this region: the smallest decision-
changing perturbation leaves the region, and the result says so. This is the exact local counterpart
of DeepFool's linearised step (which ignores the region's walls).

Solvers (``method``):

- "working-set" (default, CLARABEL called directly; clarabel is installed with cvxpy): constraint
  generation. Start from the closed-form projection onto the hyperplane f_i = f_j (the QP with no
  region rows); while the current solution violates some of the region's rows, add every violated row
  and re-solve the QP on the rows added so far. Each QP is a relaxation of the full one, so an
  infeasible relaxation proves the full QP infeasible, and a relaxation optimum that satisfies every
  row is the full optimum: the result is exact (to the solver's tolerance), on QPs of a few dozen to a
  few hundred rows instead of all of them (bundled digits CNN: 800 rows, 2-5 rounds per class).
  Anything else (solver trouble, a solution outside the rows it was given) falls back to "full".
- "full": cvxpy with ``solver`` (CLARABEL or OSQP) on all rows; one problem per region whose class row
  is a cvxpy Parameter, re-solved per competing class. Making the rows Parameters too (one compiled
  problem for every region) was measured 2.5× slower per region than this (cvxpy's DPP mapping of an
  800×64 parameter matrix), so it is not offered.
"""

from __future__ import annotations

from dataclasses import dataclass

import cvxpy as cp
import numpy as np

from geometry.errors import SplineAtlasError
from geometry.regions.affine import HRep
from geometry.regions.lp import _normalised, as_box


@dataclass(frozen=True)
class RegionPerturbation:
    """exists: the decision boundary meets the region (∩ box). delta: (D,) float64 smallest perturbation
    (NaN if none); distance: ||delta|| (inf if none); target: the class reached (-1 if none); source: the
    class at x; per_class: (C,) distance to each class's boundary within the region (inf: infeasible,
    NaN for the source class); solver: the QP solver used; method: "working-set", "full" (see module doc)
    or "working-set+full" (some class fell back to the full QP)."""

    exists: bool
    delta: np.ndarray
    distance: float
    target: int
    source: int
    per_class: np.ndarray
    solver: str
    method: str = "full"

    def to_json(self) -> dict:
        return {
            "exists": self.exists,
            "distance": self.distance if self.exists else None,
            "target": self.target,
            "source": self.source,
            "per_class": [None if not np.isfinite(v) else float(v) for v in self.per_class],
            "delta": self.delta.tolist() if self.exists else None,
            "solver": self.solver,
            "method": self.method,
        }


QP_METHODS = ("working-set", "full")


def min_region_perturbation(
    h: HRep, x, box=None, solver: str = "CLARABEL", rows: np.ndarray | None = None, feas_tol: float = 1e-7, method: str = "working-set"
) -> RegionPerturbation:
    """Smallest δ with x + δ in the region of ``h`` (∩ box) and the predicted class changed (see module doc).

    x: (D,) a point of the region. rows: optional subset of bits to use (e.g. the active bits: same
    feasible set, smaller QP). solver: "CLARABEL" (default) or "OSQP" (OSQP: always ``method="full"``).
    method: "working-set" (default, exact constraint generation) or "full" (every row in one cvxpy QP).
    """
    if method not in QP_METHODS:
        raise SplineAtlasError(f"unknown QP method {method!r}; use 'working-set' or 'full'.")
    if solver not in ("CLARABEL", "OSQP"):
        raise SplineAtlasError(f"unknown QP solver {solver!r}; use 'CLARABEL' or 'OSQP'.")
    x = np.asarray(x, np.float64).reshape(-1)
    D = h.dim
    An, cn, valid = _normalised(h)
    sel = valid if rows is None else valid & np.isin(np.arange(h.n_bits), rows)
    f = h.logits(x)
    C = f.shape[0]
    if C < 2:
        raise SplineAtlasError("the decision boundary needs at least two output classes.")
    i = int(np.argmax(f))
    # every constraint as R δ <= s: the region's rows, then the box
    R, s = An[sel], cn[sel] - An[sel] @ x
    bx = as_box(box, D)
    if bx is not None:
        eye = np.eye(D)
        R, s = np.vstack([R, eye, -eye]), np.concatenate([s, bx[1] - x, x - bx[0]])
    tol = feas_tol * max(1.0, float(np.abs(x).max()))
    per = np.full(C, np.inf)
    per[i] = np.nan
    deltas: dict[int, np.ndarray] = {}
    full = None
    direct = method == "working-set" and solver == "CLARABEL"
    fell_back = False
    for j in range(C):
        if j == i:
            continue
        wd = h.W[i] - h.W[j]
        nrm = float(np.linalg.norm(wd))
        if nrm < 1e-15:
            continue  # f_i - f_j is constant (> 0) on the region: never reached here
        g, r = wd / nrm, -(float(f[i] - f[j])) / nrm
        res = _working_set(R, s, g, r, tol) if direct else None
        if res is None:  # asked for, or the working set could not settle it
            fell_back = fell_back or direct
            if full is None:
                full = _FullQP(R, s, D, solver)
            res = full.solve(g, r, tol)
        if res is not False:
            deltas[j] = res
            per[j] = float(np.linalg.norm(res))
    name = "working-set" if direct and not fell_back else ("working-set+full" if direct else "full")
    if not deltas:
        return RegionPerturbation(False, np.full(D, np.nan), float("inf"), -1, i, per, solver, name)
    best_j = min(deltas, key=lambda k: per[k])
    best = deltas[best_j]
    return RegionPerturbation(True, best, float(np.linalg.norm(best)), best_j, i, per, solver, name)


class _FullQP:
    """One cvxpy problem on all rows, the class row (g, r) a Parameter (re-solved per class)."""

    def __init__(self, R: np.ndarray, s: np.ndarray, D: int, solver: str):
        self.R, self.s, self.solver = R, s, solver
        self.delta = cp.Variable(D)
        self.g = cp.Parameter(D)
        self.r = cp.Parameter()
        cons = [self.g @ self.delta <= self.r]
        if len(R):
            cons.append(R @ self.delta <= s)
        self.prob = cp.Problem(cp.Minimize(cp.sum_squares(self.delta)), cons)

    def solve(self, g: np.ndarray, r: float, tol: float):
        """δ (D,) at the optimum, or False when infeasible (or not feasible to ``tol``)."""
        self.g.value, self.r.value = g, r
        try:
            self.prob.solve(solver=self.solver)
        except cp.error.SolverError as exc:
            raise SplineAtlasError(f"the QP solver {self.solver} failed ({exc}); try solver='OSQP'.") from None
        if self.prob.status not in ("optimal", "optimal_inaccurate") or self.delta.value is None:
            return False
        dv = np.asarray(self.delta.value, np.float64)
        # accept only if feasible to tolerance (interior point solutions are slightly inexact)
        viol = max(float(np.max(self.R @ dv - self.s, initial=-np.inf)), float(g @ dv - r))
        return dv if viol <= tol else False


def _working_set(R: np.ndarray, s: np.ndarray, g: np.ndarray, r: float, tol: float, max_rounds: int = 50):
    """Constraint generation for min ||δ||² s.t. g·δ <= r, R δ <= s (g unit, r < 0): δ (D,) at the optimum,
    False when infeasible, None when it cannot decide (the caller then solves the full QP)."""
    try:
        import clarabel
        import scipy.sparse as sp
    except ImportError:  # pragma: no cover - clarabel ships with cvxpy
        return None
    D = len(g)
    d = r * g  # the projection onto the hyperplane g·δ = r
    S = np.zeros(len(R), bool)
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    P = sp.identity(D, format="csc") * 2.0
    q = np.zeros(D)
    ok = (clarabel.SolverStatus.Solved, clarabel.SolverStatus.AlmostSolved)
    infeasible = (clarabel.SolverStatus.PrimalInfeasible, clarabel.SolverStatus.AlmostPrimalInfeasible)
    for _ in range(max_rounds):
        v = R @ d - s
        bad = v > tol
        if not bad.any():
            return d if float(g @ d - r) <= tol else None
        new = bad & ~S
        if not new.any():
            return None  # a row it was given is violated: solver inexactness
        S |= new
        A = sp.csc_matrix(np.vstack([g[None], R[S]]))
        b = np.concatenate([[r], s[S]])
        sol = clarabel.DefaultSolver(P, q, A, b, [clarabel.NonnegativeConeT(len(b))], settings).solve()
        if sol.status in infeasible:
            return False
        if sol.status not in ok:
            return None
        d = np.asarray(sol.x, np.float64)
    return None
