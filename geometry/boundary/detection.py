"""Curvature-sign detector of perturbed samples (Fawzi et al., "Classification regions of deep neural
networks", Section V, Algorithm 2).

For a point x with predicted class k̂ and every other class i, F_i = f_i − f_k̂ and
G_{F_i}(x) = ||∇F_i(x)||⁻¹ P_i H_{F_i}(x) P_i with P_i = I − n_i n_iᵀ, n_i = ∇F_i/||∇F_i|| (the paper
writes I − ∇F∇Fᵀ, which is a projector only for a unit gradient). The average curvature of the
boundary towards i is E_{v ~ S^{d−1}} vᵀ G_{F_i} v, estimated with T random unit vectors (no
eigendecomposition; G is evaluated at x itself instead of on the boundary, as in the paper):
    ρ(x) = 1/(L T) Σ_{i ≠ k̂} Σ_j v_jᵀ G_{F_i}(x) v_j       (L = number of classes).
The paper is inconsistent about the sign. Its text and Algorithm 2 say natural images have ρ < 0 and
declare x perturbed when ρ ≥ t, recovering argmax_{i ≠ k̂} Σ_j v_jᵀ G_{F_i} v_j; its Table II says the
opposite (κ > 0 for 97% of original samples, κ < 0 for 96% of perturbed ones). (Algorithm 2 as printed
also sets "perturbed ← false" in both branches.) On the small nets we measured (digits MLPs, ReLU with
secant HVPs and softplus with exact ones) clean points have the LARGER ρ and the original label of a
perturbed point is the class with the most NEGATIVE score, i.e. Table II's sign. Both rules are offered:
``perturbed_when="below"`` (default: perturbed iff ρ < t, label = argmin_i score) and ``"above"``
(Algorithm 2 as printed: perturbed iff ρ ≥ t, label = argmax_i score). ρ is not centred at 0 on
small nets, so pick t with :func:`calibrate_threshold` on clean points and their DeepFool versions.
Hessian-vector products are exact for smooth nets and secant at a labelled scale for piecewise-linear
nets (see :mod:`geometry.boundary.curvature`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from geometry.boundary.curvature import _grad_F, _hvp, _project, resolve_mode
from geometry.networks.torch_utils import as_tensor, module_device, prepare_model
from geometry.errors import CancelledError, SplineAtlasError

Progress = Callable[[float, str], None] | None
Cancel = Callable[[], bool] | None


@dataclass(frozen=True)
class DetectionResult:
    """Algorithm 2 on N points.

    rho: (N,) float64 the curvature statistic ρ. class_scores: (N, C) float64 mean vᵀG_{F_i}v per class
    (NaN at the predicted class). perturbed: (N,) bool ρ ≥ threshold. predicted: (N,) int64 k̂(x).
    labels: (N,) int64 recovered label (argmax of class_scores where perturbed, else k̂).
    threshold, perturbed_when ("below" | "above"), num_samples, mode ("exact" | "secant"), scale (secant
    scale or None).
    """

    rho: np.ndarray
    class_scores: np.ndarray
    perturbed: np.ndarray
    predicted: np.ndarray
    labels: np.ndarray
    threshold: float
    perturbed_when: str
    num_samples: int
    mode: str
    scale: float | None

    def with_threshold(self, threshold: float, perturbed_when: str | None = None) -> "DetectionResult":
        """The same statistics re-thresholded (no recomputation)."""
        rule = self.perturbed_when if perturbed_when is None else _check_rule(perturbed_when)
        if rule == "below":
            pert = self.rho < threshold
            best = np.where(np.isnan(self.class_scores), np.inf, self.class_scores).argmin(1)
        else:
            pert = self.rho >= threshold
            best = np.where(np.isnan(self.class_scores), -np.inf, self.class_scores).argmax(1)
        rec = np.where(pert, best, self.predicted)
        return DetectionResult(self.rho, self.class_scores, pert, self.predicted, rec, float(threshold), rule, self.num_samples, self.mode, self.scale)

    def to_json(self) -> dict:
        return {
            "threshold": self.threshold,
            "perturbed_when": self.perturbed_when,
            "num_samples": self.num_samples,
            "mode": self.mode,
            "scale": self.scale,
            "rho": self.rho.tolist(),
            "perturbed": self.perturbed.tolist(),
            "predicted": self.predicted.tolist(),
            "recovered_labels": self.labels.tolist(),
            "class_scores": [[None if np.isnan(v) else float(v) for v in row] for row in self.class_scores],
        }


def _check_rule(rule: str) -> str:
    if rule not in ("below", "above"):
        raise SplineAtlasError(f"perturbed_when must be 'below' or 'above'; got {rule!r}.")
    return rule


def detect_perturbed(
    net: nn.Module,
    x,
    *,
    threshold: float = 0.0,
    perturbed_when: str = "below",
    num_samples: int = 20,
    mode: str = "auto",
    fd_scale: float | None = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    device=None,
    batch_size: int = 2048,
    progress: Progress = None,
    cancel: Cancel = None,
) -> DetectionResult:
    """Fawzi Algorithm 2: perturbed/clean per point of x (N, D) and the recovered label.

    All N × (C − 1) × T Hessian-vector products run as batched rows (``batch_size`` rows at a time).
    """
    if num_samples < 1:
        raise SplineAtlasError("num_samples must be at least 1.")
    _check_rule(perturbed_when)
    model = prepare_model(net, dtype, device)
    mode, scale = resolve_mode(model, mode, fd_scale)
    dev = module_device(model)
    X = as_tensor(x, dtype, dev)
    N, D = X.shape
    with torch.no_grad():
        logits = model(X)
    if logits.shape[1] == 1:
        logits = torch.cat([torch.zeros_like(logits), logits], 1)
    C = logits.shape[1]
    khat = logits.argmax(1)
    T = int(num_samples)
    # rows: (point p, other class i, sample j)
    others = torch.arange(C, device=dev)[None].expand(N, C)
    others = others[others != khat[:, None]].reshape(N, C - 1)
    p_idx = torch.arange(N, device=dev)[:, None, None].expand(N, C - 1, T).reshape(-1)
    i_idx = others[:, :, None].expand(N, C - 1, T).reshape(-1)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    vals = torch.empty(p_idx.shape[0], dtype=dtype, device=dev)
    M = p_idx.shape[0]
    for s in range(0, M, batch_size):
        if cancel is not None and cancel():
            raise CancelledError("detection was cancelled.")
        e = min(M, s + batch_size)
        xb, ci, cj = X[p_idx[s:e]], i_idx[s:e], khat[p_idx[s:e]]
        _, g, _ = _grad_F(model, xb, ci, cj)
        gn = g.norm(dim=1)
        n = g / gn.clamp_min(torch.finfo(dtype).tiny)[:, None]
        v = torch.randn(e - s, D, generator=gen, dtype=dtype).to(dev)
        v = v / v.norm(dim=1, keepdim=True)
        w = _project(v, n)
        wn = w.norm(dim=1)
        wu = w / wn.clamp_min(torch.finfo(dtype).tiny)[:, None]
        hw = _hvp(model, xb, ci, cj, wu, mode, scale)
        val = wn**2 * (wu * hw).sum(1) / gn
        vals[s:e] = torch.where(gn > 0, val, torch.zeros_like(val))
        if progress is not None:
            progress(e / M, f"curvature detector {e}/{M} Hessian-vector products")
    per = vals.reshape(N, C - 1, T)
    scores = torch.full((N, C), float("nan"), dtype=dtype, device=dev)
    scores.scatter_(1, others, per.mean(2))
    rho = per.sum((1, 2)) / (C * T)
    res = DetectionResult(
        rho.to("cpu", torch.float64).numpy(),
        scores.to("cpu", torch.float64).numpy(),
        np.zeros(N, bool),
        khat.cpu().numpy().astype(np.int64),
        khat.cpu().numpy().astype(np.int64),
        float(threshold),
        perturbed_when,
        T,
        mode,
        scale,
    )
    return res.with_threshold(threshold)


@dataclass(frozen=True)
class DetectionRates:
    """How well the detector separates clean points from perturbed ones.

    clean_accuracy: fraction of clean points declared clean (true negatives). perturbed_detection: fraction of
    perturbed points declared perturbed. balanced_accuracy: their mean (0.5 = chance). auc: area under the ROC
    of ρ separating perturbed from clean in the rule's direction (0.5 = chance). label_recovery: among detected perturbed points, the fraction whose
    recovered label equals the true (clean) label, when given.
    """

    clean_accuracy: float
    perturbed_detection: float
    balanced_accuracy: float
    auc: float
    label_recovery: float | None


def calibrate_threshold(clean_rho, perturbed_rho, perturbed_when: str = "below") -> float:
    """The threshold t maximising balanced accuracy on calibration statistics (clean points and their
    perturbed versions, e.g. DeepFool on training data): midpoint between consecutive sorted values."""
    _check_rule(perturbed_when)
    a, b = np.asarray(clean_rho, dtype=np.float64), np.asarray(perturbed_rho, dtype=np.float64)
    if a.size == 0 or b.size == 0:
        raise SplineAtlasError("calibration needs clean and perturbed statistics.")
    v = np.unique(np.concatenate([a, b]))
    cand = np.concatenate([[v[0] - 1.0], 0.5 * (v[1:] + v[:-1]), [v[-1] + 1.0]])
    if perturbed_when == "below":
        tn = (a[None] >= cand[:, None]).mean(1)
        tp = (b[None] < cand[:, None]).mean(1)
    else:
        tn = (a[None] < cand[:, None]).mean(1)
        tp = (b[None] >= cand[:, None]).mean(1)
    return float(cand[np.argmax(tn + tp)])


def detection_rates(clean: DetectionResult, perturbed: DetectionResult, true_labels=None) -> DetectionRates:
    """Rates of :func:`detect_perturbed` on clean points and on their perturbed versions (same threshold)."""
    tn = float(np.mean(~clean.perturbed))
    tp = float(np.mean(perturbed.perturbed))
    a, b = clean.rho, perturbed.rho
    # AUC = P(rho_perturbed > rho_clean) + 0.5 P(tie), by ranks
    allv = np.concatenate([a, b])
    ranks = _average_ranks(allv)
    auc = float((ranks[len(a) :].sum() - len(b) * (len(b) + 1) / 2) / (len(a) * len(b))) if len(a) and len(b) else float("nan")
    if clean.perturbed_when == "below":
        auc = 1.0 - auc
    rec = None
    if true_labels is not None and perturbed.perturbed.any():
        t = np.asarray(true_labels)
        rec = float(np.mean(perturbed.labels[perturbed.perturbed] == t[perturbed.perturbed]))
    return DetectionRates(tn, tp, 0.5 * (tn + tp), auc, rec)


def _average_ranks(v: np.ndarray) -> np.ndarray:
    order = np.argsort(v, kind="mergesort")
    ranks = np.empty(len(v))
    sv = v[order]
    i = 0
    while i < len(v):
        j = i
        while j + 1 < len(v) and sv[j + 1] == sv[i]:
            j += 1
        ranks[order[i : j + 1]] = 0.5 * (i + j) + 1
        i = j + 1
    return ranks
