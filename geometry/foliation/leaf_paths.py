"""Horizontal and normal paths of the local-data-matrix foliation (Grementieri & Fioresi §4.2-4.3).

The leaf through x has tangent space D_x = (ker G(x))^⊥ = row(J(x)), J = Jac_x log p(y|x) (C×D).

Horizontal path s -> d (their Algorithm 1, a Riemannian gradient descent on ||d − x||² without
retraction):  r = d − x_t,  v = P_row(J(x_t)) r,  x_{t+1} = x_t + h v/||v||  with h = α (the paper)
while ||v|| > α; closer in, h = ||v||, the exact minimiser of ||d − x||² along v (the paper's fixed
α would orbit the destination at distance ~α). Optional RK4 on the unit field v/||v|| (the field has no
sign ambiguity — it is defined from d − x, not from an eigenvector — so orientation is consistent).

Normal path (their §4.2, Fig. 3): a fixed random direction w, v = w − P_row(J(x_t)) w,
x_{t+1} = x_t + α v/||v||: images get noisier while p(y|x) stays (their eq. 8).

Many paths run at once: the batch stays dense (N paths × D) and finished paths are masked; one host
sync every ``check_every`` steps. On piecewise-affine nets a path's logit Jacobian is reused, exactly,
while its step stays inside its linear region (one forward pass detects a pattern change); on the
28×28 MNIST CNN at α = 0.1 every step changes the pattern, so this only pays on stalled paths that
keep stepping (fixed α, no stagnation stop) and at small step sizes. Each path stops on its own: reached (||d − x|| ≤ tol), stagnated
(the distance has not dropped by ``min_progress`` of the attainable progress over the last
``stagnation_window`` steps, or the destination is orthogonal to the leaf — a noisy start cannot
reach the data leaf, their Fig. 6; or P(d − x) = 0: a local minimum of the distance on the leaf),
the step budget, or "degenerate" (J = 0: no tangent space at all).

Note: for a piecewise-affine net row(J) = span{∇(s_i − s_j)} is constant on each linear region, so
each leaf is piecewise flat ((C−1)-planes glued across region boundaries) and the greedy descent
ends at a local minimum short of the destination whenever the closest point to d of the current
flat piece x + row(J) lies inside the region. Measured (issue 8 follow-up; 20 same-class and 20
different-class sklearn-digits test pairs per net) on the bundled digits CNN (epochs 5 and 60), a
64-256-256-10 MLP (Adam, epochs 1 and 60) and the digits CNN trained as in the paper (SGD lr 0.01,
batch 60, 95 % test accuracy): 0 of 40 pairs reached on every net, for α = 0.1 and 0.02 (and 0.005
on the bundled run), Euler and RK4, budgets up to 5000 steps. The final distance is 65-88 % of the
initial one (median per net and pair type; the median moves by ≤ 0.015 between step sizes and
integrators; reproduce with bench/leaf_reach.py).
Every stall is a true local minimum, neither chattering nor a step-size artefact: P_row(J)(d − x) = 0
to rounding (≤ 1e-14 relative with Euler, ≤ 1e-9 with RK4) at a point inside a linear region (on the
CNNs the last step never leaves the region). The exception, 15-30 % of the trained MLP's Euler paths,
chatter across a region boundary; they end at the same distance (to 0.01) for α from 0.1 down to
0.001, i.e. Euler's discretisation of the Filippov sliding mode along the boundary (a convex
combination of the two regions' projected fields, inside the union of their row spaces) stalls too,
so a boundary-union variant of Algorithm 1 would not reach either and is not offered. The paper's fixed-α steps (clip_steps=False, no
stagnation stop, 5000 steps) do not escape either: the path oscillates inside that one region (no
region change over the last 50 steps). Around such a point, every region within radius 0.2 carries
at most 6-31 % of d − x in its row space, while the union of their row spaces spans 50-64 of the 64
dimensions: a horizontal curve could bend toward d only by zig-zagging across regions, which a
greedy descent never does (alternating descents from both ends, s toward d's end and back, shrink
the gap to a median 45 % (same class) / 29 % (different class) of ||d − s|| after 30 rounds, still
decreasing slowly). ``LeafPaths.stall_kind`` and ``end_tangent_fraction`` report this per path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from geometry.errors import CancelledError, DatasetError, SplineAtlasError
from geometry.foliation.local_data_matrix import IncrementalJacobian, default_rtol, g_spectrum, g_trace, log_prob_jacobian, row_space

PROJECTIONS = ("svd", "gram")
DIAGNOSTICS = ("full", "lean")
STATUS_NAMES = ("running", "reached", "stagnated", "budget", "degenerate")
RUNNING, REACHED, STAGNATED, BUDGET, DEGENERATE = range(5)


@dataclass(frozen=True)
class LeafPaths:
    """N paths of one kind, recorded step by step (numpy). T = the longest path's step count.

    kind: "horizontal" | "normal". sources, final_points: (N, D). destinations: (N, D) or None.
    directions: (N, D) the fixed w of normal paths, else None.
    points: (N, K, D) positions at steps ``point_steps`` (K,) (every ``record_every``-th step and the
    last); a finished path repeats its final point.
    probs: (N, T+1, C) p(y|x_t); predicted: (N, T+1) int64; trace: (N, T+1) Tr G(x_t);
    spectrum: (N, T+1, C) eigenvalues of G(x_t), descending; tangent_rank: (N, T+1) rank of J(x_t).
    distance: (N, T+1) ||d − x_t|| (horizontal) or ||x_t − s|| (normal).
    step_angle: (N, T) degrees between the step and row(J(x_t)) (0: tangent, 90: normal).
    step_length: (N, T) ||x_{t+1} − x_t||.
    pattern_changes: (N, T, L) activation-pattern Hamming distance per nonlinearity between x_t and x_{t+1}.
    num_steps: (N,) steps taken; status: (N,) int8 index into STATUS_NAMES; stop_step: (N,) step at
    which the path stopped (== num_steps).
    end_tangent_fraction: (N,) ||P_row(J)(d − x)|| / ||d − x|| at the final point (horizontal paths;
    NaN for normal paths or x = d): ≈ 0 means the path ended at the closest point to d of its flat
    leaf piece — a local minimum of the distance on the leaf, which no horizontal descent can leave.
    Entries after a path's num_steps repeat its last values.
    """

    kind: str
    sources: np.ndarray
    destinations: np.ndarray | None
    directions: np.ndarray | None
    final_points: np.ndarray
    points: np.ndarray
    point_steps: np.ndarray
    probs: np.ndarray
    predicted: np.ndarray
    trace: np.ndarray
    spectrum: np.ndarray
    tangent_rank: np.ndarray
    distance: np.ndarray
    step_angle: np.ndarray
    step_length: np.ndarray
    pattern_changes: np.ndarray
    num_steps: np.ndarray
    status: np.ndarray
    settings: dict = field(default_factory=dict)
    end_tangent_fraction: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.sources.shape[0])

    @property
    def reached(self) -> np.ndarray:
        return self.status == REACHED

    @property
    def stagnated(self) -> np.ndarray:
        return self.status == STAGNATED

    def status_name(self, i: int) -> str:
        return STATUS_NAMES[int(self.status[i])]

    def stall_kind(self, i: int, local_min_tol: float = 1e-6) -> str | None:
        """Why a stagnated path stopped (None if it did not stagnate):
        "local minimum" — P_row(J)(d − x) ≈ 0 (``end_tangent_fraction`` ≤ ``local_min_tol``): x is the
        closest point to d on its flat leaf piece; "chattering" — the distance barely drops while the
        path crosses region boundaries on at least half of its last ``stagnation_window`` steps (the
        projected fields of adjacent regions point against each other); "slow" — neither."""
        if self.status[i] != STAGNATED:
            return None
        if self.end_tangent_fraction is not None and self.end_tangent_fraction[i] <= local_min_tol:
            return "local minimum"
        n = int(self.num_steps[i])
        w = min(n, int(self.settings.get("stagnation_window", n) or n))
        if w and self.pattern_changes.shape[-1] and (self.pattern_changes[i, n - w : n].sum(-1) > 0).mean() >= 0.5:
            return "chattering"
        return "slow"

    def class_sequence(self, i: int) -> list[tuple[int, int]]:
        """Run-length encoding [(class, first step), ...] of path i's predicted class."""
        pred = self.predicted[i, : int(self.num_steps[i]) + 1]
        out = [(int(pred[0]), 0)]
        for t in range(1, len(pred)):
            if pred[t] != pred[t - 1]:
                out.append((int(pred[t]), t))
        return out

    def summary(self, i: int) -> dict:
        """JSON-ready summary of path i (reached?, final distance, steps, class sequence ...); the step
        angles and region changes are None for paths traced with ``diagnostics="lean"``."""
        n = int(self.num_steps[i])
        lean = self.settings.get("diagnostics") == "lean"
        return {
            "kind": self.kind,
            "status": self.status_name(i),
            "reached": bool(self.status[i] == REACHED),
            "stagnated": bool(self.status[i] == STAGNATED),
            "steps": n,
            "initial_distance": float(self.distance[i, 0]),
            "final_distance": float(self.distance[i, n]),
            "path_length": float(self.step_length[i, :n].sum()),
            "class_sequence": [{"class": c, "from_step": s} for c, s in self.class_sequence(i)],
            "initial_confidence": float(self.probs[i, 0].max()),
            "final_confidence": float(self.probs[i, n].max()),
            "mean_trace": float(self.trace[i, : n + 1].mean()),
            "max_step_angle_deg": None if lean else float(self.step_angle[i, :n].max()) if n else 0.0,
            "min_step_angle_deg": None if lean else float(self.step_angle[i, :n].min()) if n else 0.0,
            "region_changes": None if lean else int((self.pattern_changes[i, :n].sum(-1) > 0).sum()),
            "stall": self.stall_kind(i),
            "end_tangent_fraction": (
                None if self.end_tangent_fraction is None or not np.isfinite(self.end_tangent_fraction[i]) else float(self.end_tangent_fraction[i])
            ),
        }

    def to_npz_dict(self) -> dict[str, np.ndarray]:
        d = {
            k: getattr(self, k)
            for k in (
                "sources",
                "final_points",
                "points",
                "point_steps",
                "probs",
                "predicted",
                "trace",
                "spectrum",
                "tangent_rank",
                "distance",
                "step_angle",
                "step_length",
                "pattern_changes",
                "num_steps",
                "status",
            )
        }
        if self.destinations is not None:
            d["destinations"] = self.destinations
        if self.directions is not None:
            d["directions"] = self.directions
        if self.end_tangent_fraction is not None:
            d["end_tangent_fraction"] = self.end_tangent_fraction
        d["status_names"] = np.array(STATUS_NAMES)
        d["kind"] = np.array(self.kind)
        return d


def _check(name: str, cond: bool, msg: str) -> None:
    if not cond:
        raise SplineAtlasError(f"{name}: {msg}")


def _as_points(x, dtype, dev, dim: int, what: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    if t.ndim == 1:
        t = t[None]
    if t.ndim != 2 or t.shape[1] != dim:
        raise DatasetError(f"{what} must be flat points of shape (N, {dim}); got {tuple(t.shape)}.")
    if not torch.isfinite(t).all():
        raise DatasetError(f"{what} contain NaN/Inf values.")
    return t.detach().to(dev, dtype)


class _Field:
    """Evaluates J, p and the row-space basis at a batch of points (with optional patterns).

    With ``reuse`` (piecewise-affine nets), the path positions (``cached=True`` calls, always the same
    N paths in the same chunks) go through one :class:`IncrementalJacobian` per chunk, so a path whose
    step stayed inside its linear region skips the backward sweep (same J, exactly)."""

    def __init__(self, model, rtol, method, chunk, reuse: bool, projection: str = "svd"):
        self.model, self.rtol, self.method, self.chunk = model, rtol, method, chunk
        self.projection = projection
        self.incr: dict[int, IncrementalJacobian] | None = {} if reuse else None

    @property
    def reuse_counts(self) -> tuple[int, int]:
        """(points whose logit Jacobian was computed, points served) over the cached calls."""
        if not self.incr:
            return 0, 0
        return (sum(f.recomputed for f in self.incr.values()), sum(f.calls_points for f in self.incr.values()))

    def __call__(self, x: torch.Tensor, with_patterns: bool, cached: bool = False):
        outs = []
        for s in range(0, x.shape[0], self.chunk):
            if cached and self.incr is not None:
                f = self.incr.setdefault(s, IncrementalJacobian(self.model))
                outs.append(f(x[s : s + self.chunk]))
            else:
                outs.append(log_prob_jacobian(self.model, x[s : s + self.chunk], self.method, with_patterns))
        probs = torch.cat([o.probs for o in outs])
        jac = torch.cat([o.jacobian for o in outs])
        pats = None
        if with_patterns and outs[0].patterns is not None:
            pats = [torch.cat([o.patterns[l] for o in outs]) for l in range(len(outs[0].patterns))]
        rs = row_space(jac, self.rtol, method=self.projection)
        return probs, jac, rs, pats


def _integrate(
    model,
    kind: str,
    x0: torch.Tensor,
    target: torch.Tensor,
    *,
    step_size: torch.Tensor,
    max_steps: int,
    tol: torch.Tensor | None,
    integrator: str,
    rtol: float | None,
    stop_on_stagnation: bool,
    stagnation_window: int,
    min_progress: float,
    clip_steps: bool,
    record_every: int | None,
    method: str,
    chunk_size: int,
    check_every: int,
    point_budget_bytes: int,
    progress,
    cancel,
    reuse_jacobian: bool | None = None,
    projection: str = "svd",
    diagnostics: str = "full",
) -> dict:
    n, d = x0.shape
    lean = diagnostics == "lean"
    dev, dt = x0.device, x0.dtype
    if chunk_size is None:  # CPU: (C·chunk, widest layer) cotangents of ~8 MB (cache); GPU: ~512 MB
        widths = [li.width for li in getattr(model, "layer_infos", [])] + [d]
        c_out = max(2, int(getattr(model, "output_dim", 10)))
        budget = 128_000_000 if dev.type == "cuda" else 2_000_000
        chunk_size = int(min(max(n, 1), max(1, budget // (c_out * max(widths)))))
    if reuse_jacobian is None:
        reuse_jacobian = method in ("auto", "backprop") and IncrementalJacobian.supported(model)
    elif reuse_jacobian and not IncrementalJacobian.supported(model):
        raise SplineAtlasError("reuse_jacobian=True needs a spec-built piecewise-affine net (no smooth activations); leave it at None (auto) or False.")
    fld = _Field(model, rtol, method, chunk_size, bool(reuse_jacobian), projection)
    T = max_steps
    if record_every is None:
        per = n * d * x0.element_size()
        record_every = max(1, math.ceil(per * (T + 1) / point_budget_bytes))
    point_steps = list(range(0, T + 1, record_every))
    if point_steps[-1] != T:
        point_steps.append(T)
    slot = {s: k for k, s in enumerate(point_steps)}

    probs0, jac0, rs0, pats0 = fld(x0, not lean, cached=True)
    C = probs0.shape[1]
    L = len(pats0) if pats0 is not None else 0  # lean: no patterns, so no pattern-change record
    f64 = torch.float64
    rec = {
        "probs": torch.zeros(n, T + 1, C, dtype=torch.float32, device=dev),
        "trace": torch.zeros(n, T + 1, dtype=f64, device=dev),
        "spectrum": torch.full((n, T + 1, C), float("nan") if lean else 0.0, dtype=f64, device=dev),
        "tangent_rank": torch.zeros(n, T + 1, dtype=torch.int16, device=dev),
        "distance": torch.zeros(n, T + 1, dtype=f64, device=dev),
        "step_angle": torch.full((n, T), float("nan") if lean else 0.0, dtype=torch.float32, device=dev),
        "step_length": torch.zeros(n, T, dtype=f64, device=dev),
        "pattern_changes": torch.zeros(n, T, L, dtype=torch.int32, device=dev),
        "points": torch.zeros(n, len(point_steps), d, dtype=dt, device=dev),
        "predicted": torch.zeros(n, T + 1, dtype=torch.int64, device=dev),
    }
    status = torch.full((n,), RUNNING, dtype=torch.int8, device=dev)
    num_steps = torch.zeros(n, dtype=torch.int64, device=dev)
    x = x0.clone()
    x64 = x0.to(f64)
    src64 = x64.clone()
    tgt64 = target.to(f64)

    def record(t, probs, jac, rs):
        active = status == RUNNING
        rec["probs"][:, t] = probs.float()
        rec["predicted"][:, t] = probs.argmax(1)
        rec["trace"][:, t] = g_trace(probs, jac)
        if not lean:
            rec["spectrum"][:, t] = g_spectrum(probs, jac)
        rec["tangent_rank"][:, t] = rs.rank.to(torch.int16)
        dist = (tgt64 - x64).norm(dim=1) if kind == "horizontal" else (x64 - src64).norm(dim=1)
        rec["distance"][:, t] = dist
        if t in slot:
            rec["points"][:, slot[t]] = x
        return active, dist

    def direction(xe64: torch.Tensor, rs) -> tuple[torch.Tensor, torch.Tensor]:
        """Unit field (N, D) and ||v|| (N,) at points xe64 with row-space rs."""
        if kind == "horizontal":
            v = rs.project(tgt64 - xe64)
        else:
            v = rs.residual(tgt64)
        vn = v.norm(dim=1)
        unit = v / vn.clamp_min(torch.finfo(f64).tiny)[:, None]
        return unit, vn

    # below this share of ||d − x|| the projected direction is rounding: 1e-9 in float64, D·eps in float32,
    # where a path at a local minimum of the distance measured P(d − x) ≈ 1e-7·||d − x|| and, without
    # this floor, crept on in steps of ~1e-7 until the stagnation window stopped it (100 steps later)
    orthogonal_tol = max(1e-9, d * torch.finfo(dt).eps)
    probs, jac, rs, pats = probs0, jac0, rs0, pats0
    if kind == "horizontal":  # a source already within tol of its destination is reached at step 0
        status = torch.where((tgt64 - x64).norm(dim=1) <= tol, torch.full_like(status, REACHED), status)
    t = 0
    for t in range(T):
        if cancel is not None and cancel():
            raise CancelledError("path tracing was cancelled.")
        active, dist = record(t, probs, jac, rs)
        unit, vn = direction(x64, rs)
        # degenerate: the wanted direction is (numerically) orthogonal to the leaf, or J == 0
        scale = dist if kind == "horizontal" else torch.ones_like(dist)
        degenerate = active & (vn <= orthogonal_tol * scale.clamp_min(1e-300))
        if kind == "horizontal" and clip_steps:
            h = torch.minimum(step_size, vn)
        else:
            h = step_size.clone()
        if integrator == "rk4":
            k1 = unit
            k2, _ = direction(x64 + 0.5 * h[:, None] * k1, fld((x64 + 0.5 * h[:, None] * k1).to(dt), False)[2])
            k3, _ = direction(x64 + 0.5 * h[:, None] * k2, fld((x64 + 0.5 * h[:, None] * k2).to(dt), False)[2])
            k4, _ = direction(x64 + h[:, None] * k3, fld((x64 + h[:, None] * k3).to(dt), False)[2])
            comb = (k1 + 2 * k2 + 2 * k3 + k4) / 6.0
            step = h[:, None] * comb / comb.norm(dim=1).clamp_min(torch.finfo(f64).tiny)[:, None]
        else:
            step = h[:, None] * unit
        moving = active & ~degenerate
        step = torch.where(moving[:, None], step, torch.zeros_like(step))
        sn = step.norm(dim=1)
        if not lean:
            cosang = (rs.project(step).norm(dim=1) / sn.clamp_min(torch.finfo(f64).tiny)).clamp(0.0, 1.0)
            rec["step_angle"][:, t] = torch.where(moving, torch.rad2deg(torch.arccos(cosang)), torch.zeros_like(sn)).float()
        rec["step_length"][:, t] = sn
        x64 = x64 + step
        x = x64.to(dt)
        num_steps += moving.to(torch.int64)
        # ||P(d − x)|| = 0 with rank J > 0: x minimises ||d − x|| on its (locally flat) leaf piece — stuck
        status = torch.where(degenerate, torch.where(rs.rank > 0, torch.full_like(status, STAGNATED), torch.full_like(status, DEGENERATE)), status)
        probs, jac, rs, new_pats = fld(x, not lean, cached=True)
        if L:
            rec["pattern_changes"][:, t] = torch.stack([(a != b).reshape(n, -1).sum(1) for a, b in zip(pats, new_pats)], 1).to(torch.int32) * moving[
                :, None
            ].to(torch.int32)
        pats = new_pats
        if kind == "horizontal":
            new_dist = (tgt64 - x64).norm(dim=1)
            status = torch.where(moving & (new_dist <= tol), torch.full_like(status, REACHED), status)
            if stop_on_stagnation and t + 1 >= stagnation_window:
                old = rec["distance"][:, t + 1 - stagnation_window]
                attainable = torch.minimum(old, stagnation_window * step_size.to(old.dtype))
                stuck = (status == RUNNING) & (old - new_dist < min_progress * attainable)
                status = torch.where(stuck, torch.full_like(status, STAGNATED), status)
        if progress is not None and (t % 16 == 0):
            progress((t + 1) / T, f"{kind} paths: step {t + 1}/{T}")
        if (t + 1) % check_every == 0 and not bool((status == RUNNING).any()):
            t += 1
            break
    else:
        t = T
    # final state (x at step t); paths still running ran out of budget
    record(t, probs, jac, rs)
    status = torch.where(status == RUNNING, torch.full_like(status, BUDGET), status)
    last = t
    # fill the tail of every array beyond ``last`` with the final values (truncate to last)
    out = {k: v[:, : last + 1] if k not in ("step_angle", "step_length", "pattern_changes", "points") else v for k, v in rec.items()}
    out["step_angle"] = rec["step_angle"][:, :last]
    out["step_length"] = rec["step_length"][:, :last]
    out["pattern_changes"] = rec["pattern_changes"][:, :last]
    kept = [k for k, s in enumerate(point_steps) if s <= last]
    pts = rec["points"][:, kept]
    psteps = [point_steps[k] for k in kept]
    if psteps[-1] != last:
        pts = torch.cat([pts, x[:, None]], 1)
        psteps.append(last)
    out["points"] = pts
    out["point_steps"] = np.asarray(psteps, dtype=np.int64)
    # paths stop individually: after a path's last step, its per-step values are frozen
    idx = torch.arange(last + 1, device=dev)[None, :]
    stopped_after = idx > num_steps[:, None]
    for k in ("probs", "predicted", "trace", "spectrum", "tangent_rank", "distance"):
        v = out[k]
        fin = v.gather(1, num_steps.view(n, 1, *([1] * (v.ndim - 2))).expand(n, 1, *v.shape[2:]))
        out[k] = torch.where(stopped_after.view(n, last + 1, *([1] * (v.ndim - 2))), fin, v)
    out["num_steps"] = num_steps
    out["status"] = status
    out["final_points"] = x
    out["jacobian_counts"] = fld.reuse_counts
    if kind == "horizontal":
        r = tgt64 - x64
        rn = r.norm(dim=1)
        out["end_tangent_fraction"] = torch.where(rn > 0, rs.project(r).norm(dim=1) / rn.clamp_min(torch.finfo(f64).tiny), torch.full_like(rn, float("nan")))
    else:
        out["end_tangent_fraction"] = torch.full((n,), float("nan"), dtype=f64, device=dev)
    return out


def _run(
    net,
    kind,
    sources,
    target,
    *,
    step_size,
    max_steps,
    tol,
    integrator,
    rtol,
    stop_on_stagnation,
    stagnation_window,
    min_progress,
    clip_steps,
    record_every,
    dtype,
    device,
    jacobian_method,
    chunk_size,
    check_every,
    point_budget_bytes,
    progress,
    cancel,
    settings,
    reuse_jacobian=None,
    projection="svd",
    diagnostics="full",
) -> LeafPaths:
    from geometry.networks.torch_utils import prepare_model

    alpha = np.asarray(step_size, dtype=np.float64).reshape(-1)
    _check("step_size", alpha.size > 0 and bool(np.all(np.isfinite(alpha) & (alpha > 0))), f"must be a positive number (or one per path); got {step_size}.")
    _check("steps", int(max_steps) >= 0, f"must be >= 0; got {max_steps}.")
    _check("integrator", integrator in ("euler", "rk4"), f"use 'euler' or 'rk4'; got {integrator!r}.")
    _check("projection", projection in PROJECTIONS, f"use 'svd' or 'gram'; got {projection!r}.")
    _check("diagnostics", diagnostics in DIAGNOSTICS, f"use 'full' or 'lean'; got {diagnostics!r}.")
    model = prepare_model(net, dtype, device)
    dev = next(model.parameters()).device
    dim = int(getattr(model, "input_dim", sources.shape[-1]))
    S = _as_points(sources, dtype, dev, dim, "sources")
    Tg = _as_points(target, dtype, dev, dim, "destinations" if kind == "horizontal" else "directions")
    if Tg.shape[0] == 1 and S.shape[0] > 1:
        Tg = Tg.expand(S.shape[0], -1)
    if S.shape[0] == 1 and Tg.shape[0] > 1:
        S = S.expand(Tg.shape[0], -1)
    if S.shape[0] != Tg.shape[0]:
        what = "destinations" if kind == "horizontal" else "directions"
        raise DatasetError(f"{S.shape[0]} sources but {Tg.shape[0]} {what}; give one each (or one to broadcast).")
    if S.shape[0] == 0:
        raise DatasetError("no paths requested (0 sources).")
    if alpha.size not in (1, S.shape[0]):
        raise DatasetError(f"{alpha.size} step sizes for {S.shape[0]} paths; give one, or one per path.")
    alpha_t = torch.as_tensor(np.broadcast_to(alpha, (S.shape[0],)).copy(), dtype=torch.float64, device=dev)
    tol_t = None
    if kind == "horizontal":
        d0 = (Tg.double() - S.double()).norm(dim=1)
        tol_t = 1e-3 * d0 if tol is None else torch.full_like(d0, float(tol))
    out = _integrate(
        model,
        kind,
        S,
        Tg,
        step_size=alpha_t,
        max_steps=int(max_steps),
        tol=tol_t,
        integrator=integrator,
        rtol=rtol,
        stop_on_stagnation=stop_on_stagnation,
        stagnation_window=int(stagnation_window),
        min_progress=float(min_progress),
        clip_steps=clip_steps,
        record_every=record_every,
        method=jacobian_method,
        chunk_size=None if chunk_size is None else int(chunk_size),
        check_every=int(check_every),
        point_budget_bytes=int(point_budget_bytes),
        progress=progress,
        cancel=cancel,
        reuse_jacobian=reuse_jacobian,
        projection=projection,
        diagnostics=diagnostics,
    )
    computed, served = out.pop("jacobian_counts")
    npy = {k: (v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else v) for k, v in out.items()}
    settings = dict(
        settings,
        step_size=float(alpha[0]) if alpha.size == 1 else alpha.tolist(),
        max_steps=int(max_steps),
        integrator=integrator,
        dtype=str(dtype).replace("torch.", ""),
        device=str(dev),
        projection=projection,
        diagnostics=diagnostics,
        rtol=float(default_rtol(dtype, dim) if rtol is None else rtol),
        jacobian_reuse=bool(served),
        jacobian_sweeps=int(computed),
        jacobian_evaluations=int(served),
    )
    if tol_t is not None:
        settings["tol"] = tol_t.cpu().numpy().tolist() if tol is None else float(tol)
    return LeafPaths(
        kind=kind,
        sources=S.cpu().double().numpy(),
        destinations=Tg.cpu().double().numpy() if kind == "horizontal" else None,
        directions=Tg.cpu().double().numpy() if kind == "normal" else None,
        final_points=npy["final_points"],
        points=npy["points"],
        point_steps=npy["point_steps"],
        probs=npy["probs"],
        predicted=npy["predicted"],
        trace=npy["trace"],
        spectrum=npy["spectrum"],
        tangent_rank=npy["tangent_rank"].astype(np.int64),
        distance=npy["distance"],
        step_angle=npy["step_angle"],
        step_length=npy["step_length"],
        pattern_changes=npy["pattern_changes"],
        num_steps=npy["num_steps"],
        status=npy["status"],
        settings=settings,
        end_tangent_fraction=npy["end_tangent_fraction"],
    )


def horizontal_paths(
    net: nn.Module,
    sources,
    destinations,
    *,
    step_size: float = 0.1,
    max_steps: int = 1000,
    tol: float | None = None,
    integrator: str = "euler",
    rtol: float | None = None,
    stop_on_stagnation: bool = True,
    stagnation_window: int = 100,
    min_progress: float = 0.01,
    clip_steps: bool = True,
    record_every: int | None = None,
    dtype: torch.dtype = torch.float64,
    device=None,
    jacobian_method: str = "auto",
    chunk_size: int | None = None,
    check_every: int = 8,
    point_budget_bytes: int = 256 << 20,
    reuse_jacobian: bool | None = None,
    projection: str = "svd",
    diagnostics: str = "full",
    progress: Callable[[float, str], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> LeafPaths:
    """Horizontal paths from sources (N, D) to destinations (N, D) (either may be a single point).

    step_size: α, the step length away from the destination (one, or (N,) one per path); max_steps: step
    budget; tol: reached when ||d − x|| ≤ tol (default 1e-3·||d − s|| per path); integrator: "euler"
    (their Algorithm 1) or "rk4";
    rtol: relative singular-value tolerance of row(J); stagnation: stop a path when over the last
    ``stagnation_window`` steps its distance dropped by less than ``min_progress`` × min(window·α,
    distance) (set ``stop_on_stagnation=False`` to follow it to the budget, as in their Fig. 6).
    record_every: keep every k-th point (default: as often as ``point_budget_bytes`` allows).
    The net is run as a ``dtype`` copy on ``device``; Jacobians in chunks of ``chunk_size`` points
    (default: sized so one chunk's cotangents take about 8 MB).
    reuse_jacobian: keep each path's logit Jacobian while its activation pattern is unchanged (exact
    for piecewise-affine nets, see :class:`~geometry.foliation.local_data_matrix.IncrementalJacobian`); None:
    on whenever the net supports it. settings["jacobian_sweeps"] / ["jacobian_evaluations"] count the
    path positions whose Jacobian was computed / served.
    projection: how P_row(J) is formed — "svd" (default: SVD of J with the rtol cut, orthonormal to
    rounding at any conditioning) or "gram" (eigh of J Jᵀ: squares the condition number, so at
    σ_min/σ_max = 1e-6 the basis is off-orthonormal by ~1e-4; see :func:`row_space`).
    diagnostics: "full" records every per-step quantity of :class:`LeafPaths`; "lean" (a click in the
    window) records only what drawing a path needs — positions, p(y|x_t), the class, Tr G, rank J and
    the distance — and leaves ``spectrum`` and ``step_angle`` NaN and ``pattern_changes`` empty (L = 0),
    so a stalled path's :meth:`LeafPaths.stall_kind` cannot say "chattering". The path is the same.
    """
    return _run(
        net,
        "horizontal",
        sources,
        destinations,
        step_size=step_size,
        max_steps=max_steps,
        tol=tol,
        integrator=integrator,
        rtol=rtol,
        stop_on_stagnation=stop_on_stagnation,
        stagnation_window=stagnation_window,
        min_progress=min_progress,
        clip_steps=clip_steps,
        record_every=record_every,
        dtype=dtype,
        device=device,
        jacobian_method=jacobian_method,
        chunk_size=chunk_size,
        check_every=check_every,
        point_budget_bytes=point_budget_bytes,
        progress=progress,
        cancel=cancel,
        reuse_jacobian=reuse_jacobian,
        projection=projection,
        diagnostics=diagnostics,
        settings={
            "stagnation_window": int(stagnation_window),
            "min_progress": float(min_progress),
            "clip_steps": bool(clip_steps),
            "stop_on_stagnation": bool(stop_on_stagnation),
        },
    )


def random_directions(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """(n, dim) float64 unit vectors, uniformly distributed on the sphere, seeded."""
    w = np.random.default_rng(seed).standard_normal((n, dim))
    return w / np.linalg.norm(w, axis=1, keepdims=True)


def normal_paths(
    net: nn.Module,
    sources,
    directions=None,
    *,
    seed: int = 0,
    step_size: float = 0.1,
    steps: int = 100,
    integrator: str = "euler",
    rtol: float | None = None,
    record_every: int | None = None,
    dtype: torch.dtype = torch.float64,
    device=None,
    jacobian_method: str = "auto",
    chunk_size: int | None = None,
    check_every: int = 8,
    point_budget_bytes: int = 256 << 20,
    reuse_jacobian: bool | None = None,
    projection: str = "svd",
    diagnostics: str = "full",
    progress: Callable[[float, str], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> LeafPaths:
    """Normal paths from sources (N, D) along fixed directions w (N, D) (default: seeded random unit
    vectors), each step α (w − P_row(J) w)/||·|| (α: one, or (N,) one per path): across leaves, toward
    noise (their §4.2).
    projection: "svd" | "gram", diagnostics: "full" | "lean", as in :func:`horizontal_paths`."""
    S = np.asarray(sources.detach().cpu() if isinstance(sources, torch.Tensor) else sources, dtype=np.float64)
    if S.ndim == 1:
        S = S[None]
    if directions is None:
        directions = random_directions(S.shape[0], S.shape[1], seed)
    return _run(
        net,
        "normal",
        S,
        directions,
        step_size=step_size,
        max_steps=steps,
        tol=None,
        integrator=integrator,
        rtol=rtol,
        stop_on_stagnation=False,
        stagnation_window=1,
        min_progress=0.0,
        clip_steps=False,
        record_every=record_every,
        dtype=dtype,
        device=device,
        jacobian_method=jacobian_method,
        chunk_size=chunk_size,
        check_every=check_every,
        point_budget_bytes=point_budget_bytes,
        progress=progress,
        cancel=cancel,
        reuse_jacobian=reuse_jacobian,
        projection=projection,
        diagnostics=diagnostics,
        settings={"seed": int(seed)},
    )
