"""DeepFool minimal perturbations (Moosavi-Dezfooli et al. 2016), batched, for any differentiable net.

Used by Fawzi et al. ("Classification regions of deep neural networks") as r(x), the smallest
perturbation that reaches the decision boundary: cross-sections are drawn through x spanned by r(x),
curvature is measured at x + r(x), and Algorithm 1 (region paths) uses the *targeted* variant.

Multiclass untargeted step (DeepFool, Algorithm 2 of the DeepFool paper), at the current iterate x_i
with original label k0:  w_k = ∇f_k(x_i) − ∇f_k0(x_i),  f'_k = f_k(x_i) − f_k0(x_i),
l = argmin_{k≠k0} |f'_k| / ||w_k||,  r_i = (|f'_l| / ||w_l|| + 1e-4) · w_l / ||w_l||,  r ← r + r_i,
x_{i+1} = x + (1 + overshoot) r, until the label changes. The 1e-4 is the reference implementation's margin
added to each step's *length* (the paper's Algorithm 2 steps exactly |f'_l| / ||w_l||); adding it to the
function gap instead would lengthen a step by 1e-4 / ||w_l||, 17x the margin when ||w|| = 0.06.
Targeted step towards class t: among the
classes k that still beat t, project onto the *farthest* linearised half-space f_t − f_k ≥ 0
(necessary for t to win), until t is the top class.

Everything is batched: each iteration runs one forward pass over the still-active points and one
backward pass per (candidate) class, because the points are independent (eval mode) so ∇ of the
batch sum gives every point's own gradient (the reference implementation runs one image at a time).
Points stop individually (converged, stuck on a zero gradient, or the iteration budget).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from geometry.networks.torch_utils import as_tensor, module_device, prepare_model
from geometry.errors import CancelledError, SplineAtlasError

_EPS_STEP = 1e-4  # the reference implementation's additive margin on each step's length (not on the gap)


@dataclass(frozen=True)
class DeepFoolResult:
    """DeepFool on N points of R^D.

    perturbation: (N, D) float64 — r with overshoot included, so ``x + r`` is the perturbed point.
    perturbed: (N, D) float64 — x + r.
    iterations: (N,) int64 — linearised steps taken per point.
    converged: (N,) bool — the label changed (untargeted) / became the target (targeted).
    original_labels: (N,) int64 — argmax of the logits at x.
    labels: (N,) int64 — argmax of the logits at x + r.
    targets: (N,) int64 or None — the target class of each point (targeted runs only).
    overshoot: float — the overshoot factor used.
    """

    perturbation: np.ndarray
    perturbed: np.ndarray
    iterations: np.ndarray
    converged: np.ndarray
    original_labels: np.ndarray
    labels: np.ndarray
    targets: np.ndarray | None
    overshoot: float

    @property
    def norms(self) -> np.ndarray:
        """(N,) ||r||_2 per point."""
        return np.linalg.norm(self.perturbation, axis=1)

    def to_json(self) -> dict:
        return {
            "overshoot": self.overshoot,
            "norms": self.norms.tolist(),
            "iterations": self.iterations.tolist(),
            "converged": self.converged.tolist(),
            "original_labels": self.original_labels.tolist(),
            "labels": self.labels.tolist(),
            "targets": None if self.targets is None else self.targets.tolist(),
            "perturbation": self.perturbation.tolist(),
        }


def deepfool(
    net: nn.Module,
    x,
    *,
    target=None,
    overshoot: float = 0.02,
    max_iter: int = 50,
    candidates: int | None = None,
    dtype: torch.dtype = torch.float64,
    device=None,
    batch_size: int = 4096,
    progress: Callable[[float, str], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> DeepFoolResult:
    """DeepFool minimal perturbation r(x) for a batch of points (untargeted or targeted).

    net: any differentiable module mapping flat inputs (N, D) to logits (N, C) (e.g. a Network; smooth
    activations are fine). x: (N, D) or (D,) array/tensor. target: None (untargeted), an int, or (N,)
    ints (targeted: reach class t; points already in t take 0 steps). overshoot: the step is
    (1 + overshoot) r so the point lands just past the boundary. candidates: for untargeted runs, only
    consider the top-`candidates` classes of the original logits (the reference uses 10); None = all.
    The computation runs on a float64 (by default) copy of the net, in chunks of ``batch_size``.
    Returns a :class:`DeepFoolResult` (numpy, float64).
    """
    if overshoot < 0:
        raise SplineAtlasError(f"overshoot must be >= 0; got {overshoot}.")
    if max_iter < 1:
        raise SplineAtlasError(f"max_iter must be >= 1; got {max_iter}.")
    model = prepare_model(net, dtype, device)
    dev = module_device(model)
    X = as_tensor(x, dtype, dev)
    n = X.shape[0]
    tgt = None
    if target is not None:
        tgt = torch.as_tensor(np.broadcast_to(np.asarray(target, dtype=np.int64), (n,)).copy(), device=dev)
    outs = []
    for s in range(0, n, batch_size):
        if cancel is not None and cancel():
            raise CancelledError("DeepFool was cancelled.")
        e = min(n, s + batch_size)
        outs.append(_deepfool_chunk(model, X[s:e], None if tgt is None else tgt[s:e], overshoot, max_iter, candidates, cancel))
        if progress is not None:
            progress(e / n, f"DeepFool {e}/{n} points")
    cat = [torch.cat([o[i] for o in outs]) if outs else torch.zeros(0) for i in range(5)]
    r, iters, conv, k0, kfin = cat
    r_np = r.detach().to("cpu", torch.float64).numpy().reshape(n, -1)
    x_np = X.detach().to("cpu", torch.float64).numpy()
    return DeepFoolResult(
        perturbation=r_np,
        perturbed=x_np + r_np,
        iterations=iters.cpu().numpy().astype(np.int64),
        converged=conv.cpu().numpy().astype(bool),
        original_labels=k0.cpu().numpy().astype(np.int64),
        labels=kfin.cpu().numpy().astype(np.int64),
        targets=None if tgt is None else tgt.cpu().numpy().astype(np.int64),
        overshoot=float(overshoot),
    )


def _deepfool_chunk(model, X, tgt, overshoot, max_iter, candidates, cancel):
    n, d = X.shape
    dev = X.device
    with torch.no_grad():
        logits0 = _logits(model, X)
    C = logits0.shape[1]
    if tgt is not None and (int(tgt.min()) < 0 or int(tgt.max()) >= C):
        raise SplineAtlasError(f"DeepFool targets must be class indices in 0..{C - 1}.")
    k0 = logits0.argmax(1)
    if tgt is None and candidates is not None and candidates < C:
        cand = logits0.argsort(1, descending=True)[:, : max(2, candidates)]  # (n, m), cand[:, 0] == k0
    else:
        cand = None
    r_tot = torch.zeros_like(X)
    iters = torch.zeros(n, dtype=torch.int64, device=dev)
    conv = (k0 == tgt) if tgt is not None else torch.zeros(n, dtype=torch.bool, device=dev)
    active = ~conv
    labels = k0.clone()
    for _ in range(max_iter + 1):
        idx = active.nonzero(as_tuple=True)[0]
        if idx.numel() == 0:
            break
        if cancel is not None and cancel():
            raise CancelledError("DeepFool was cancelled.")
        xi = (X[idx] + (1.0 + overshoot) * r_tot[idx]).requires_grad_(True)
        logits = _logits(model, xi)
        ki = logits.detach().argmax(1)
        labels[idx] = ki
        done = (ki == tgt[idx]) if tgt is not None else (ki != k0[idx])
        conv[idx] = done
        over_budget = iters[idx] >= max_iter
        stop = done | over_budget
        keep = ~stop
        if not bool(keep.any()):
            active[idx] = False
            break
        if tgt is None:
            step, ok = _untargeted_step(logits, xi, k0[idx], None if cand is None else cand[idx], keep)
        else:
            step, ok = _targeted_step(logits, xi, tgt[idx], keep)
        move = keep & ok
        r_tot[idx[move]] += step[move]
        iters[idx[move]] += 1
        active[idx[stop | ~ok]] = False  # stuck points (zero gradient) stop unconverged
    return (1.0 + overshoot) * r_tot, iters, conv, k0, labels


def _logits(model, x):
    """Logits (n, C); a binary single-logit net f is treated as the two logits (0, f)."""
    out = model(x)
    if out.ndim != 2:
        raise SplineAtlasError(f"DeepFool needs a classifier returning (N, C) logits; got shape {tuple(out.shape)}.")
    return torch.cat([torch.zeros_like(out), out], 1) if out.shape[1] == 1 else out


def _untargeted_step(logits, xi, k0, cand, keep):
    """One DeepFool step per row: (step (m, D), ok (m,)) where ok is False on a zero gradient."""
    m, C = logits.shape
    classes = range(C) if cand is None else range(cand.shape[1])
    grads = []
    f0 = logits.gather(1, k0[:, None])[:, 0]
    for j in classes:
        col = torch.full((m,), j, dtype=torch.int64, device=xi.device) if cand is None else cand[:, j]
        fj = logits.gather(1, col[:, None])[:, 0]
        (g,) = torch.autograd.grad((fj - f0)[keep].sum(), xi, retain_graph=True)
        grads.append((g, (fj - f0).detach(), col))
    w = torch.stack([g for g, _, _ in grads], 1)  # (m, K, D)
    fdiff = torch.stack([f for _, f, _ in grads], 1)  # (m, K)
    cols = torch.stack([c for _, _, c in grads], 1)  # (m, K)
    wn = w.norm(dim=2)
    dist = fdiff.abs() / wn
    dist = torch.where((cols == k0[:, None]) | (wn == 0), torch.full_like(dist, float("inf")), dist)
    best = dist.argmin(1)
    ok = torch.isfinite(dist.gather(1, best[:, None])[:, 0])
    wl = w[torch.arange(m), best]
    fl = fdiff[torch.arange(m), best].abs()
    wln = wn[torch.arange(m), best].clamp_min(torch.finfo(w.dtype).tiny)
    step = (fl / wln + _EPS_STEP)[:, None] * wl / wln[:, None]
    return step, ok


def _targeted_step(logits, xi, tgt, keep):
    """Project onto the farthest violated linearised half-space f_t − f_k ≥ 0 (one backward pass)."""
    m, C = logits.shape
    ld = logits.detach()
    ft = ld.gather(1, tgt[:, None])
    gap = ld - ft  # (m, C) > 0 where k beats t
    # the farthest violated half-space needs every ||∇(f_k − f_t)||: one backward pass per class.
    grads = []
    for k in range(C):
        (g,) = torch.autograd.grad((logits[:, k] - logits.gather(1, tgt[:, None])[:, 0])[keep].sum(), xi, retain_graph=True)
        grads.append(g)
    w = torch.stack(grads, 1)  # (m, C, D): ∇(f_k − f_t)
    wn = w.norm(dim=2)
    dist = gap / wn
    viol = (gap >= 0) & (torch.arange(C, device=xi.device)[None] != tgt[:, None]) & (wn > 0)
    dist = torch.where(viol, dist, torch.full_like(dist, -float("inf")))
    best = dist.argmax(1)
    ok = torch.isfinite(dist.gather(1, best[:, None])[:, 0])
    wl = -w[torch.arange(m), best]  # ∇(f_t − f_k): direction that raises t
    fl = gap[torch.arange(m), best]
    wln = wn[torch.arange(m), best].clamp_min(torch.finfo(w.dtype).tiny)
    step = (fl / wln + _EPS_STEP)[:, None] * wl / wln[:, None]
    return step, ok
