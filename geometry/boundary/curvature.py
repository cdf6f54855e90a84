"""Principal curvatures of the decision boundary near a point (Fawzi et al., "Classification regions of
deep neural networks", Section IV, eq. 1).

The boundary between the predicted class j = k̂(x) and class i is {F = 0}, F = f_i − f_j. At a boundary
point z with unit normal n = ∇F/||∇F|| and tangent projector P = I − n nᵀ, the normal curvature along a
tangent v is κ(z, v) = vᵀ H_F v / (||v||² ||∇F||) (eq. 1), and the principal curvatures are the nonzero
eigenvalues of G = ||∇F||⁻¹ P H_F P. We never form H_F: G is applied through Hessian-vector products
and its spectrum on the tangent space is found by Lanczos (full reorthogonalisation; with D − 1 steps it
is the exact eigendecomposition). z is DeepFool's x + r(x), pulled back onto {F = 0} by Newton steps
along ∇F.

Hessian-vector products:
* ``exact`` — double backward (torch autograd); for smooth networks.
* ``secant`` — central difference of gradients at a user-chosen input-space scale h:
  H v ≈ (∇F(z + h v) − ∇F(z − h v)) / (2h) for ||v|| = 1; the curvatures are then the eigenvalues of
  this finite-difference Hessian, symmetrised, in the Lanczos (Krylov) basis of the tangent space. For piecewise-linear networks the Hessian is
  zero almost everywhere, so this "curvature at scale h" (how the boundary bends across the linear
  regions within distance h) is the meaningful quantity; results carry ``scale = h``.
``auto`` picks secant for a piecewise-affine :class:`~geometry.networks.network.Network` (then ``fd_scale`` is
required) and exact otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from geometry.boundary.deepfool import deepfool

from geometry.networks.torch_utils import as_tensor, module_device, prepare_model
from geometry.errors import CancelledError, SplineAtlasError

Progress = Callable[[float, str], None] | None
Cancel = Callable[[], bool] | None


# -- F = f_i − f_j, its gradient and Hessian-vector products -----------------------------------
def _model_dtype(model, default=torch.float64):
    p = next(iter(model.parameters()), None)
    return p.dtype if p is not None else default


def resolve_mode(model: nn.Module, mode: str, fd_scale: float | None) -> tuple[str, float | None]:
    """('exact' | 'secant', scale) for ``mode`` in auto/exact/secant (see the module docstring)."""
    if mode not in ("auto", "exact", "secant"):
        raise SplineAtlasError(f"curvature mode must be auto, exact or secant; got {mode!r}.")
    if mode == "auto":
        pl = bool(getattr(model, "is_piecewise_affine", False))
        mode = "secant" if (pl or fd_scale is not None) else "exact"
    if mode == "secant":
        if fd_scale is None or not fd_scale > 0:
            raise SplineAtlasError(
                "this network is piecewise-linear, so its Hessian is zero almost everywhere: give a finite-difference "
                "scale (fd_scale / --fd-scale, in input units, e.g. 0.1 x the typical DeepFool distance)."
            )
        return "secant", float(fd_scale)
    return "exact", None


def needs_scale(model: nn.Module, mode: str = "auto") -> bool:
    """True when ``mode`` resolves to secant HVPs for this model (so a finite-difference scale is needed)."""
    return mode == "secant" or (mode == "auto" and bool(getattr(model, "is_piecewise_affine", False)))


def _F(model, X, ci, cj):
    logits = model(X)
    if logits.shape[1] == 1:  # binary single-logit net: logits (0, f)
        logits = torch.cat([torch.zeros_like(logits), logits], 1)
    return logits.gather(1, ci[:, None])[:, 0] - logits.gather(1, cj[:, None])[:, 0]


def _grad_F(model, X, ci, cj, create_graph=False):
    X = X.detach().requires_grad_(True)
    with torch.enable_grad():
        F = _F(model, X, ci, cj)
        (g,) = torch.autograd.grad(F.sum(), X, create_graph=create_graph)
    return F.detach(), g if create_graph else g.detach(), X


def _hvp(model, X, ci, cj, V, mode, scale):
    """(M, D) H_F(X) V row by row."""
    if mode == "exact":
        with torch.enable_grad():
            _, g, Xg = _grad_F(model, X, ci, cj, create_graph=True)
            (hv,) = torch.autograd.grad((g * V).sum(), Xg, allow_unused=True)
        return torch.zeros_like(V) if hv is None else hv.detach()
    gp = _grad_F(model, X + scale * V, ci, cj)[1]
    gm = _grad_F(model, X - scale * V, ci, cj)[1]
    return (gp - gm) / (2.0 * scale)


def _project(V, n):
    return V - (V * n).sum(-1, keepdim=True) * n


# -- principal curvatures ----------------------------------------------------------------------
@dataclass(frozen=True)
class CurvatureResult:
    """Principal curvatures of the boundary between ``base`` and ``other`` at ``points``.

    points: (N, D) float64 boundary points z. base / other: (N,) int64 classes j (x's class) and i, F = f_i − f_j.
    curvatures: (N, k) float64 principal curvatures, descending (Ritz values of G on the tangent space).
    directions: (N, k, D) float64 unit principal directions (tangent to the boundary).
    gradient_norm: (N,) ||∇F(z)||. boundary_residual: (N,) |F(z)| / ||∇F(z)|| (distance-like; ~0 on the boundary).
    mode: "exact" | "secant"; scale: the secant scale h in input units (None for exact).
    complete: k == D − 1, so ``curvatures`` is the whole spectrum and ``mean_curvature`` is exact.
    """

    points: np.ndarray
    base: np.ndarray
    other: np.ndarray
    curvatures: np.ndarray
    directions: np.ndarray
    gradient_norm: np.ndarray
    boundary_residual: np.ndarray
    mode: str
    scale: float | None
    complete: bool

    @property
    def mean_curvature(self) -> np.ndarray:
        """(N,) average of the D − 1 principal curvatures (NaN unless ``complete``)."""
        if not self.complete:
            return np.full(self.points.shape[0], np.nan)
        return self.curvatures.mean(1)

    @property
    def label(self) -> str:
        return "exact Hessian" if self.mode == "exact" else f"secant Hessian at scale {self.scale:g}"

    def to_json(self) -> dict:
        return {
            "mode": self.mode,
            "scale": self.scale,
            "label": self.label,
            "complete": self.complete,
            "base": self.base.tolist(),
            "other": self.other.tolist(),
            "curvatures": self.curvatures.tolist(),
            "mean_curvature": self.mean_curvature.tolist(),
            "gradient_norm": self.gradient_norm.tolist(),
            "boundary_residual": self.boundary_residual.tolist(),
        }


def project_to_boundary(net_or_model, z, base, other, *, steps: int = 8, prepared: bool = False, dtype=torch.float64, device=None) -> np.ndarray:
    """(N, D) Newton steps z ← z − F(z) ∇F(z) / ||∇F(z)||² onto {f_other = f_base} (exact in one step
    inside a linear region of a piecewise-linear net)."""
    model = net_or_model if prepared else prepare_model(net_or_model, dtype, device)
    dev = module_device(model)
    Z = as_tensor(z, _model_dtype(model), dev)
    ci = torch.as_tensor(np.asarray(other), device=dev).long()
    cj = torch.as_tensor(np.asarray(base), device=dev).long()
    for _ in range(steps):
        F, g, _ = _grad_F(model, Z, ci, cj)
        gn2 = (g * g).sum(1)
        ok = gn2 > 0
        Z = Z - torch.where(ok, F / gn2.clamp_min(torch.finfo(Z.dtype).tiny), 0.0)[:, None] * g
    return Z.to("cpu", torch.float64).numpy()


def curvatures_at(
    net: nn.Module,
    z,
    base,
    other,
    *,
    num: int | None = None,
    mode: str = "auto",
    fd_scale: float | None = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    device=None,
    batch_size: int = 256,
    progress: Progress = None,
    cancel: Cancel = None,
) -> CurvatureResult:
    """Principal curvatures of {f_other = f_base} at the points z (N, D), by batched Lanczos on G.

    num: number of Lanczos steps / curvatures (default and maximum D − 1: the full spectrum). The
    extreme curvatures converge first, so a small ``num`` gives the largest |κ| cheaply.
    """
    model = prepare_model(net, dtype, device)
    mode, scale = resolve_mode(model, mode, fd_scale)
    dev = module_device(model)
    Z = as_tensor(z, dtype, dev)
    N, D = Z.shape
    if D < 2:
        raise SplineAtlasError("curvature needs at least 2 input dimensions.")
    k = D - 1 if num is None else int(min(max(num, 1), D - 1))
    ci_all = torch.as_tensor(np.broadcast_to(np.asarray(other), (N,)).copy(), device=dev).long()
    cj_all = torch.as_tensor(np.broadcast_to(np.asarray(base), (N,)).copy(), device=dev).long()
    gen = torch.Generator(device="cpu").manual_seed(seed)
    curv = np.zeros((N, k))
    dirs = np.zeros((N, k, D))
    gnorm = np.zeros(N)
    resid = np.zeros(N)
    for s in range(0, N, batch_size):
        if cancel is not None and cancel():
            raise CancelledError("curvature computation was cancelled.")
        e = min(N, s + batch_size)
        X, ci, cj = Z[s:e], ci_all[s:e], cj_all[s:e]
        F, g, _ = _grad_F(model, X, ci, cj)
        gn = g.norm(dim=1)
        if bool((gn == 0).any()):
            raise SplineAtlasError("the boundary gradient vanishes at a point: curvature is undefined there.")
        n = g / gn[:, None]

        def G(V):
            return _project(_hvp(model, X, ci, cj, _project(V, n), mode, scale), n) / gn[:, None]

        theta, Y = _lanczos(G, n, k, gen, cancel)
        curv[s:e] = theta.to("cpu", torch.float64).numpy()
        dirs[s:e] = Y.to("cpu", torch.float64).numpy()
        gnorm[s:e] = gn.to("cpu", torch.float64).numpy()
        resid[s:e] = (F.abs() / gn).to("cpu", torch.float64).numpy()
        if progress is not None:
            progress(e / N, f"curvature {e}/{N} points")
    return CurvatureResult(Z.to("cpu", torch.float64).numpy(), cj_all.cpu().numpy(), ci_all.cpu().numpy(), curv, dirs, gnorm, resid, mode, scale, k == D - 1)


def _lanczos(G, n, k, gen, cancel):
    """Batched Lanczos with full reorthogonalisation on the tangent spaces ⟂ n (M, D), then Rayleigh-Ritz.

    Returns Ritz values (M, k) descending and Ritz vectors (M, k, D). The Ritz values are the eigenvalues
    of the symmetrised projected matrix sym(Qᵀ G Q) built from the stored products G q_t: for an exact
    (linear, symmetric) G this is Lanczos' tridiagonal matrix; for the secant operator of a
    piecewise-linear net (not exactly linear in v) it is the symmetrised finite-difference Hessian in
    the Krylov basis. A breakdown (invariant subspace) restarts with a fresh random tangent vector
    orthogonal to the basis, so k Ritz values are always produced.
    """
    M, D = n.shape
    dt, dev = n.dtype, n.device
    Q = torch.zeros(M, k, D, dtype=dt, device=dev)
    GQ = torch.zeros(M, k, D, dtype=dt, device=dev)

    def fresh(t):
        v = torch.randn(M, D, generator=gen, dtype=dt).to(dev)
        v = _project(v, n)
        for _ in range(2):
            if t:
                v = v - torch.einsum("mtd,mt->md", Q[:, :t], torch.einsum("mtd,md->mt", Q[:, :t], v))
            v = _project(v, n)
        return v / v.norm(dim=1, keepdim=True)

    q = fresh(0)
    for t in range(k):
        if cancel is not None and cancel():
            raise CancelledError("curvature computation was cancelled.")
        Q[:, t] = q
        w = G(q)
        GQ[:, t] = w
        if t + 1 == k:
            break
        for _ in range(2):  # full reorthogonalisation, twice
            w = w - torch.einsum("mtd,mt->md", Q[:, : t + 1], torch.einsum("mtd,md->mt", Q[:, : t + 1], w))
            w = _project(w, n)
        b = w.norm(dim=1)
        ref = GQ[:, : t + 1].norm(dim=2).amax(1).clamp_min(1e-300)
        broke = b <= 1e-10 * ref
        nxt = w / b.clamp_min(torch.finfo(dt).tiny)[:, None]
        if bool(broke.any()):
            nxt = torch.where(broke[:, None], fresh(t + 1), nxt)
        q = nxt
    T = torch.einsum("msd,mtd->mst", Q, GQ)
    T = 0.5 * (T + T.transpose(1, 2))
    theta, S = torch.linalg.eigh(T)
    theta, S = theta.flip(1), S.flip(2)
    Y = torch.einsum("mts,mtd->msd", S, Q)
    return theta, Y


def principal_curvatures(
    net: nn.Module,
    x,
    *,
    num: int | None = None,
    mode: str = "auto",
    fd_scale: float | None = None,
    overshoot: float = 0.02,
    max_iter: int = 50,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    device=None,
    progress: Progress = None,
    cancel: Cancel = None,
) -> CurvatureResult:
    """Fawzi's principal curvatures of the decision boundary near each point of x (N, D).

    z = x + r(x) (DeepFool, batched), projected onto the boundary between x's class and the class DeepFool
    reached; then :func:`curvatures_at`. Points where DeepFool does not converge raise SplineAtlasError.
    """
    model = prepare_model(net, dtype, device)
    resolve_mode(model, mode, fd_scale)  # fail early, before DeepFool
    df = deepfool(model, x, overshoot=overshoot, max_iter=max_iter, dtype=dtype, device=device, cancel=cancel)
    if not df.converged.all():
        bad = np.nonzero(~df.converged)[0][:5].tolist()
        raise SplineAtlasError(f"DeepFool found no decision boundary near points {bad}; raise max_iter or drop them.")
    z = project_to_boundary(model, df.perturbed, df.original_labels, df.labels, prepared=True)
    return curvatures_at(
        model, z, df.original_labels, df.labels, num=num, mode=mode, fd_scale=fd_scale, seed=seed, dtype=dtype, device=device, progress=progress, cancel=cancel
    )
