"""Exact smallest perturbation that changes the decision without leaving the region (a QP).

Inside a region the logits are affine, ``f(x) = W x + b``. Let i be the predicted class at x. The points
of the (closed) region where the decision is no longer i form ``∪_{j≠i} P ∩ {f_j >= f_i}``, a union of
convex polyhedra, so the closest such point is the best of C-1 projections

    min ||δ||²  s.t.  A (x + δ) <= c,  (w_i - w_j)·(x + δ) + (b_i - b_j) <= 0   [, x + δ in box]

each a convex QP. The optimum lies on the decision boundary f_i = f_j (x has f_i > f_j). When every
QP is infeasible the decision boundary does not pass through this region: the smallest decision-
changing perturbation leaves the region, and the result says so. This is the exact local counterpart
of DeepFool's linearised step (which ignores the region's walls).

Solver: cvxpy with CLARABEL (interior point, open source, installed with cvxpy); one problem per region
whose class row is a cvxpy Parameter, re-solved per competing class.
"""
from __future__ import annotations

from dataclasses import dataclass

import cvxpy as cp
import numpy as np

from ..errors import SplineAtlasError
from .affine import HRep
from .lp import _normalised, as_box


@dataclass(frozen=True)
class RegionPerturbation:
    """exists: the decision boundary meets the region (∩ box). delta: (D,) float64 smallest perturbation
    (NaN if none); distance: ||delta|| (inf if none); target: the class reached (-1 if none); source: the
    class at x; per_class: (C,) distance to each class's boundary within the region (inf: infeasible,
    NaN for the source class); solver: the cvxpy solver used."""

    exists: bool
    delta: np.ndarray
    distance: float
    target: int
    source: int
    per_class: np.ndarray
    solver: str

    def to_json(self) -> dict:
        return {"exists": self.exists, "distance": self.distance if self.exists else None, "target": self.target,
                "source": self.source, "per_class": [None if not np.isfinite(v) else float(v) for v in self.per_class],
                "delta": self.delta.tolist() if self.exists else None, "solver": self.solver}


def min_region_perturbation(h: HRep, x, box=None, solver: str = "CLARABEL", rows: np.ndarray | None = None,
                            feas_tol: float = 1e-7) -> RegionPerturbation:
    """Smallest δ with x + δ in the region of ``h`` (∩ box) and the predicted class changed (see module doc).

    x: (D,) a point of the region. rows: optional subset of bits to use (e.g. the active bits: same
    feasible set, smaller QP). solver: "CLARABEL" (default) or "OSQP".
    """
    x = np.asarray(x, np.float64).reshape(-1)
    D = h.dim
    An, cn, valid = _normalised(h)
    sel = valid if rows is None else valid & np.isin(np.arange(h.n_bits), rows)
    f = h.logits(x)
    C = f.shape[0]
    if C < 2:
        raise SplineAtlasError("the decision boundary needs at least two output classes.")
    i = int(np.argmax(f))
    delta = cp.Variable(D)
    g = cp.Parameter(D)
    r = cp.Parameter()
    cons = [g @ delta <= r]
    if sel.any():
        cons.append(An[sel] @ delta <= cn[sel] - An[sel] @ x)
    bx = as_box(box, D)
    if bx is not None:
        cons += [delta <= bx[1] - x, delta >= bx[0] - x]
    prob = cp.Problem(cp.Minimize(cp.sum_squares(delta)), cons)
    per = np.full(C, np.inf)
    per[i] = np.nan
    best, best_j = None, -1
    for j in range(C):
        if j == i:
            continue
        wd = h.W[i] - h.W[j]
        nrm = float(np.linalg.norm(wd))
        if nrm < 1e-15:
            continue  # f_i - f_j is constant (> 0) on the region: never reached here
        g.value = wd / nrm
        r.value = -(float(f[i] - f[j])) / nrm
        try:
            prob.solve(solver=solver)
        except cp.error.SolverError as exc:
            raise SplineAtlasError(f"the QP solver {solver} failed ({exc}); try solver='OSQP'.") from None
        if prob.status in ("optimal", "optimal_inaccurate") and delta.value is not None:
            dv = np.asarray(delta.value, np.float64)
            # accept only if feasible to tolerance (interior point solutions are slightly inexact)
            viol = max(float(np.max(An[sel] @ (x + dv) - cn[sel], initial=-np.inf)), float(g.value @ dv - r.value))
            if viol <= feas_tol * max(1.0, float(np.abs(x).max())):
                per[j] = float(np.linalg.norm(dv))
                if best is None or per[j] < np.linalg.norm(best):
                    best, best_j = dv, j
    if best is None:
        return RegionPerturbation(False, np.full(D, np.nan), float("inf"), -1, i, per, solver)
    return RegionPerturbation(True, best, float(np.linalg.norm(best)), best_j, i, per, solver)
