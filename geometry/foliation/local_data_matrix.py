"""The local data matrix G(x) = Jᵀ diag(p) J of Grementieri & Fioresi, batched, never D×D.

J = Jac_x log p(y|x) is C×D (row i = ∇_x log p_i), p = softmax(logits). The paper's eq. (6)
G(x) = E_{y~p}[∇ log p ∇ log pᵀ] = Σ_i p_i ∇log p_i ∇log p_iᵀ = Jᵀ diag(p) J. Because
Σ_i p_i ∇ log p_i = ∇ Σ_i p_i = 0 (their eq. 4), rank G ≤ C − 1 (their Prop. 2.1).

Everything here works with J only: the non-zero spectrum of G is that of the C×C matrix
A Aᵀ with A = diag(√p) J, Tr G = Σ_i p_i ||∇ log p_i||² (their eq. 11), and the leaf's tangent
space (ker G)^⊥ = row(J) (for p > 0) is spanned by an orthonormal row basis obtained from the
C×C Gram matrix J Jᵀ (or an SVD of J) with a relative tolerance, so rank-deficient J (rank < C−1)
is handled.

J itself is computed from the logit Jacobian J_s (C_out×D, C_out backward passes batched over
the N points, or torch.func.vmap(jacrev)) as J = (I − 1 pᵀ) J_s, which is exactly the Jacobian of
log_softmax. A single-logit binary net is treated as logits (0, s).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from geometry.errors import BudgetExceededError, CancelledError, DatasetError, SplineAtlasError

JACOBIAN_METHODS = ("auto", "backprop", "vjp", "loop", "jacrev")


@dataclass(frozen=True)
class LogProbJacobian:
    """log p and its input Jacobian for N points.

    logits: (N, C) (a single-logit net's output s is returned as (0, s)); logp: (N, C);
    probs: (N, C); jacobian: (N, C, D) = d log p / d x; patterns: per-layer activation patterns
    from ``net.trace`` (list of (N, w_l)) when asked for, else None.
    """

    logits: torch.Tensor
    logp: torch.Tensor
    probs: torch.Tensor
    jacobian: torch.Tensor
    patterns: list[torch.Tensor] | None


@dataclass(frozen=True)
class LocalDataMatrix:
    """G(x) summarised without forming it, for N points (numpy, float64).

    probs: (N, C); predicted: (N,) int64; trace: (N,) Tr G; eigenvalues: (N, C) the C largest
    eigenvalues of G, descending (all others are 0); rank: (N,) int64 numerical rank of G
    (eigenvalues above ``rtol² · λ_max``, i.e. singular values of diag(√p)J above rtol·σ_max);
    jacobian_rank: (N,) int64 numerical rank of J (dimension of the leaf's tangent space);
    jacobian: (N, C, D) J, or None when not kept.
    """

    probs: np.ndarray
    predicted: np.ndarray
    trace: np.ndarray
    eigenvalues: np.ndarray
    rank: np.ndarray
    jacobian_rank: np.ndarray
    jacobian: np.ndarray | None
    rtol: float


@dataclass(frozen=True)
class RowSpace:
    """Orthonormal basis of row(J) per point. basis: (N, C, D) (rows beyond the rank are zero);
    rank: (N,) int64; singular_values: (N, C) descending, of J."""

    basis: torch.Tensor
    rank: torch.Tensor
    singular_values: torch.Tensor

    def project(self, r: torch.Tensor) -> torch.Tensor:
        """P_row(J) r for r: (N, D) -> (N, D) (in the basis dtype)."""
        coeff = torch.einsum("ncd,nd->nc", self.basis, r.to(self.basis.dtype))
        return torch.einsum("ncd,nc->nd", self.basis, coeff)

    def residual(self, r: torch.Tensor) -> torch.Tensor:
        """r − P_row(J) r (the component in ker G)."""
        r = r.to(self.basis.dtype)
        return r - self.project(r)


def default_rtol(dtype: torch.dtype, dim: int) -> float:
    """Relative singular-value tolerance: like numpy.matrix_rank, max(C, D)·eps, but at least
    1e-7 because the Gram route resolves singular values only down to ~sqrt(eps64)·σ_max."""
    return float(max(dim * torch.finfo(dtype).eps, 1e-7))


def _two_logits(logits: torch.Tensor) -> torch.Tensor:
    if logits.shape[1] == 1:
        return torch.cat([torch.zeros_like(logits), logits], 1)
    return logits


def log_prob_jacobian(net: nn.Module, x: torch.Tensor, method: str = "auto", with_patterns: bool = False) -> LogProbJacobian:
    """J = Jac_x log softmax(net(x)) for x: (N, D) (device/dtype of the net).

    method: "backprop" — one forward pass storing each layer's input, then one explicit batched
    backward sweep of all C_out cotangents at once (batch C_out·N: matmul, conv_transpose, masks,
    max-unpool scatter); "auto" — "backprop" when every layer is supported, else "vjp";
    "vjp" — one forward pass, then all C_out backward passes at once (autograd.grad with
    ``is_grads_batched``, i.e. vmap over the rows of the identity); "loop" — one forward pass and
    C_out separate backward passes; "jacrev" — torch.func.vmap(jacrev) per sample.
    with_patterns: also return the activation patterns (from ``net.trace``; "vjp"/"loop" only get them
    from the same forward pass).
    """
    if method not in JACOBIAN_METHODS:
        raise SplineAtlasError(f"unknown Jacobian method {method!r}; use one of {', '.join(JACOBIAN_METHODS)}.")
    x = x.detach()
    n = x.shape[0]
    patterns = None
    layers = getattr(net, "layers", None)
    if method in ("auto", "backprop"):
        ok = isinstance(layers, nn.Sequential) and _backprop_supported(layers)
        if not ok and method == "backprop":
            raise SplineAtlasError("the explicit backprop Jacobian supports spec-built Sequential nets without softmax layers; use method='vjp'.")
        method = "backprop" if ok else "vjp"
    if method == "backprop":
        js, logits_raw, patterns = _backprop_jacobian(net, x, with_patterns)
        n = x.shape[0]
    elif method == "jacrev":
        from torch.func import jacrev, vmap

        def f(xi):
            return net(xi[None])[0]

        with torch.no_grad():
            if with_patterns and hasattr(net, "trace"):
                tr = net.trace(x)
                logits_raw, patterns = tr.logits, [p.detach() for p in tr.patterns]
            else:
                logits_raw = net(x)
        js = vmap(jacrev(f))(x)  # (N, C_out, D)
        logits_raw = logits_raw.detach()
    else:
        with torch.enable_grad():
            xg = x.requires_grad_(True)
            if with_patterns and hasattr(net, "trace"):
                tr = net.trace(xg)
                out, patterns = tr.logits, [p.detach() for p in tr.patterns]
            else:
                out = net(xg)
            c_out = out.shape[1]
            if method == "vjp" and c_out > 1:
                eye = torch.eye(c_out, dtype=out.dtype, device=out.device)[:, None, :].expand(c_out, n, c_out)
                (js,) = torch.autograd.grad(out, xg, grad_outputs=eye, is_grads_batched=True)
                js = js.transpose(0, 1)  # (N, C_out, D)
            else:
                rows = []
                for c in range(c_out):
                    (g,) = torch.autograd.grad(out[:, c].sum(), xg, retain_graph=c < c_out - 1)
                    rows.append(g)
                js = torch.stack(rows, 1)
            logits_raw = out.detach()
        js = js.reshape(n, c_out, -1)
    return _as_log_prob_jacobian(js, logits_raw, patterns)


_ELEMENTWISE_SMOOTH = (nn.GELU, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.ELU, nn.SiLU)


def _backprop_supported(seq: nn.Sequential) -> bool:
    from geometry.networks.spec import Abs, Residual

    for m in seq.children():
        if isinstance(m, Residual):
            if m.shortcut is not None or not _backprop_supported(m.body):  # projection shortcuts: autograd
                return False
        elif not isinstance(
            m,
            (nn.Linear, nn.Conv2d, nn.ReLU, nn.LeakyReLU, Abs, nn.MaxPool2d, nn.AvgPool2d, nn.Flatten, nn.Identity, nn.BatchNorm1d, nn.BatchNorm2d, nn.Dropout)
            + _ELEMENTWISE_SMOOTH,
        ):
            return False
    return True


def _forward_record(seq: nn.Sequential, x: torch.Tensor, tape: list, patterns: list | None) -> torch.Tensor:
    """Forward pass that appends (module, input, extra) to ``tape`` (extra: maxpool indices / nested tape)."""
    from geometry.networks.spec import Abs, Residual

    for m in seq.children():
        if isinstance(m, Residual):
            inner: list = []
            y = x + _forward_record(m.body, x, inner, patterns)
            tape.append((m, x, inner))
            x = y
            continue
        n = x.shape[0]
        if isinstance(m, nn.MaxPool2d):
            y, idx = nn.functional.max_pool2d(x, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode, return_indices=True)
            tape.append((m, x, idx))
            if patterns is not None:
                patterns.append(idx.reshape(n, -1))
        else:
            y = m(x)
            tape.append((m, x, None))
            if patterns is not None:
                if isinstance(m, (nn.ReLU, nn.LeakyReLU, Abs)):
                    patterns.append(x.reshape(n, -1) > 0)
                elif isinstance(m, _ELEMENTWISE_SMOOTH):
                    patterns.append(torch.zeros(n, x[0].numel(), dtype=torch.bool, device=x.device))
        x = y
    return x


def _simple_pool(m: nn.AvgPool2d, xin: torch.Tensor) -> bool:
    """Square, non-overlapping, unpadded average pooling (its backward is an upsampling / k²)."""
    k, st = m.kernel_size, m.stride if m.stride is not None else m.kernel_size
    k = k if isinstance(k, int) else (k[0] if k[0] == k[1] else None)
    st = st if isinstance(st, int) else (st[0] if st[0] == st[1] else None)
    pad = m.padding if isinstance(m.padding, int) else max(m.padding)
    return k is not None and st == k and pad == 0 and not m.ceil_mode


def _backward_sweep(tape: list, g: torch.Tensor, c: int) -> torch.Tensor:
    """Pull cotangents g: (C·N, *out_shape) (class-major) back through a recorded tape."""
    from geometry.networks.spec import Abs, Residual

    def rep(t: torch.Tensor) -> torch.Tensor:  # (N, ...) -> (C·N, ...) matching g's layout
        return t.unsqueeze(0).expand(c, *t.shape).reshape(c * t.shape[0], *t.shape[1:])

    def scale(g: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # g * rep(t) without materialising rep(t)
        return (g.view(c, t.shape[0], *g.shape[1:]) * t).view(g.shape)

    for m, xin, extra in reversed(tape):
        if isinstance(m, Residual):
            g = g + _backward_sweep(extra, g, c)
        elif isinstance(m, nn.Linear):
            g = g @ m.weight
        elif isinstance(m, nn.Conv2d):
            kk = m.weight.shape[2] * m.weight.shape[3]
            if m.groups == 1 and m.in_channels * kk <= 16 and isinstance(m.padding, tuple):
                # few input channels (an image's first layer): Wᵀ g then col2im (fold) beats the
                # generic transposed-convolution kernel several times on CPU
                b, co = g.shape[0], g.shape[1]
                cols = m.weight.reshape(co, -1).t() @ g.reshape(b, co, -1)
                g = nn.functional.fold(cols, xin.shape[2:], m.weight.shape[2:], dilation=m.dilation, padding=m.padding, stride=m.stride)
            else:
                g = torch.nn.grad.conv2d_input((g.shape[0], *xin.shape[1:]), m.weight, g, m.stride, m.padding, m.dilation, m.groups)
        elif isinstance(m, nn.ReLU):
            g = scale(g, (xin > 0).to(g.dtype))
        elif isinstance(m, nn.LeakyReLU):
            g = scale(g, torch.where(xin > 0, 1.0, m.negative_slope).to(g.dtype))
        elif isinstance(m, Abs):
            g = scale(g, torch.sign(xin).to(g.dtype))
        elif isinstance(m, nn.MaxPool2d):
            nb, ch = g.shape[0], g.shape[1]
            out = torch.zeros(nb, ch, xin.shape[2] * xin.shape[3], dtype=g.dtype, device=g.device)
            out.scatter_add_(2, rep(extra).reshape(nb, ch, -1), g.reshape(nb, ch, -1))
            g = out.reshape(nb, *xin.shape[1:])
        elif isinstance(m, (nn.Flatten, nn.Identity, nn.Dropout)):
            g = g.reshape(g.shape[0], *xin.shape[1:])
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            scale = (m.running_var + m.eps).rsqrt()
            if m.weight is not None:
                scale = scale * m.weight
            shape = (1, -1) + (1,) * (g.ndim - 2)
            g = g * scale.reshape(shape)
        elif isinstance(m, nn.AvgPool2d) and _simple_pool(m, xin):
            k = m.kernel_size if isinstance(m.kernel_size, int) else m.kernel_size[0]
            up = g.repeat_interleave(k, 2).repeat_interleave(k, 3) / (k * k)
            out = torch.zeros((g.shape[0], *xin.shape[1:]), dtype=g.dtype, device=g.device)
            out[:, :, : up.shape[2], : up.shape[3]] = up
            g = out
        elif isinstance(m, _ELEMENTWISE_SMOOTH):
            with torch.enable_grad():
                xi = xin.detach().requires_grad_(True)
                (dact,) = torch.autograd.grad(m(xi).sum(), xi)
            g = scale(g, dact)
        else:  # any other affine module (AvgPool2d): vjp of the linear part, natively batched
            with torch.enable_grad():
                z = torch.zeros((g.shape[0], *xin.shape[1:]), dtype=g.dtype, device=g.device, requires_grad=True)
                (g,) = torch.autograd.grad(m(z), z, grad_outputs=g)
    return g


def _backprop_forward(net: nn.Module, x: torch.Tensor, with_patterns: bool):
    """One recorded forward pass: (tape, raw logits (N, C_out), patterns or None)."""
    patterns: list | None = [] if with_patterns else None
    tape: list = []
    with torch.no_grad():
        xin = net._as_batch(x) if hasattr(net, "_as_batch") else x
        logits = _forward_record(net.layers, xin, tape, patterns)
    return tape, logits, patterns


def _backprop_sweep(tape: list, n: int, logits: torch.Tensor) -> torch.Tensor:
    """Logit Jacobian (n, C_out, D) from a recorded tape by one batched backward sweep."""
    with torch.no_grad():
        c_out = logits.shape[1]
        # log_softmax's Jacobian (I − 1pᵀ) J_s is unchanged by subtracting one row from all rows of J_s,
        # so C−1 cotangents e_i − e_last suffice (the last row becomes 0); a single logit needs 1.
        eye = torch.eye(c_out, dtype=logits.dtype, device=logits.device)
        rows = eye if c_out == 1 else eye[:-1] - eye[-1:]
        c = rows.shape[0]
        g = rows[:, None, :].expand(c, n, c_out).reshape(c * n, c_out)
        gx = _backward_sweep(tape, g, c)
    js = gx.reshape(c, n, -1).transpose(0, 1)
    if c_out > 1:
        js = torch.cat([js, torch.zeros_like(js[:, :1])], 1)
    return js


def _backprop_jacobian(net: nn.Module, x: torch.Tensor, with_patterns: bool):
    """Logit Jacobian (N, C_out, D) by one recorded forward pass and one batched backward sweep."""
    tape, logits, patterns = _backprop_forward(net, x, with_patterns)
    return _backprop_sweep(tape, x.shape[0], logits), logits, patterns


def _slice_tape(tape: list, idx: torch.Tensor) -> list:
    """The tape of the points ``idx`` only (layer inputs, max-pool indices and nested tapes sliced)."""
    out = []
    for m, xin, extra in tape:
        if isinstance(extra, list):
            extra = _slice_tape(extra, idx)
        elif isinstance(extra, torch.Tensor):
            extra = extra[idx]
        out.append((m, xin[idx], extra))
    return out


def _piecewise_affine_seq(seq: nn.Sequential) -> bool:
    """Every module affine or piecewise linear with its pieces fully described by the recorded patterns
    (ReLU / LeakyReLU / Abs masks, max-pool argmax): then the logit Jacobian is a function of the patterns."""
    from geometry.networks.spec import Concat, Residual

    for m in seq.children():
        if isinstance(m, Residual):
            if not _piecewise_affine_seq(m.body):
                return False
        elif isinstance(m, Concat):
            if not all(_piecewise_affine_seq(b) for b in m.branches):
                return False
        elif isinstance(m, _ELEMENTWISE_SMOOTH):
            return False
    return True


def _as_log_prob_jacobian(js: torch.Tensor, logits_raw: torch.Tensor, patterns) -> LogProbJacobian:
    js, logits_raw = js.detach(), logits_raw.detach()
    if logits_raw.shape[1] == 1:
        js = torch.cat([torch.zeros_like(js), js], 1)
    logits = _two_logits(logits_raw)
    logp = torch.log_softmax(logits, 1)
    probs = logp.exp()
    jac = js - torch.einsum("nc,ncd->nd", probs, js)[:, None, :]  # (I − 1pᵀ) J_s
    return LogProbJacobian(logits, logp, probs, jac, patterns)


class IncrementalJacobian:
    """J = Jac_x log p at a moving batch of N points, reusing each point's logit Jacobian S while its
    activation pattern is unchanged.

    For a piecewise-affine net S(x) (C_out×D) is constant on every linear region: the backward sweep
    reads only the weights, the ReLU/LeakyReLU/Abs masks and the max-pool argmax, so two points with
    equal patterns have the same S (the same arithmetic, up to the batch composition of the kernels).
    Each call runs one forward pass for all points, compares the patterns with the cached ones and
    runs the (C−1)-cotangent backward sweep only for the points whose pattern changed; J = (I − 1pᵀ)S
    is then formed with the new p. Only for spec-built nets the explicit backprop supports and that are
    piecewise affine (``IncrementalJacobian.supported(net)``).
    ``recomputed``: total number of points whose S was (re)computed; ``calls_points``: points served.
    """

    def __init__(self, net: nn.Module):
        if not self.supported(net):
            raise SplineAtlasError("Jacobian reuse needs a spec-built piecewise-affine Sequential net (ReLU/LeakyReLU/Abs/max-pool, no smooth activations).")
        self.net = net
        self._S: torch.Tensor | None = None
        self._pats: list[torch.Tensor] | None = None
        self.recomputed = 0
        self.calls_points = 0

    @staticmethod
    def supported(net: nn.Module) -> bool:
        layers = getattr(net, "layers", None)
        return isinstance(layers, nn.Sequential) and _backprop_supported(layers) and _piecewise_affine_seq(layers)

    def __call__(self, x: torch.Tensor) -> LogProbJacobian:
        """x: (N, D), the same N points (moved) on every call; returns J with patterns."""
        x = x.detach()
        n = x.shape[0]
        tape, logits, pats = _backprop_forward(self.net, x, True)
        if self._S is None or self._S.shape[0] != n:
            changed = torch.ones(n, dtype=torch.bool, device=x.device)
            S = None
        else:
            changed = torch.zeros(n, dtype=torch.bool, device=x.device)
            for a, b in zip(pats, self._pats):
                changed |= (a != b).reshape(n, -1).any(1)
            S = self._S
        idx = changed.nonzero().flatten()
        if idx.numel() == n:
            S = _backprop_sweep(tape, n, logits)
        elif idx.numel():
            S = S.clone()
            S[idx] = _backprop_sweep(_slice_tape(tape, idx), idx.numel(), logits[idx])
        self._S, self._pats = S, pats
        self.recomputed += int(idx.numel())
        self.calls_points += n
        return _as_log_prob_jacobian(S, logits, pats)


def row_space(jacobian: torch.Tensor, rtol: float | None = None, method: str = "gram") -> RowSpace:
    """Orthonormal basis of row(J) for J: (N, C, D), robust when rank J < C (tolerance, not QR).

    method "svd": torch.linalg.svd of J (float64), rows of Vᵀ for σ_k > rtol·σ_max: orthonormal to
    rounding at any conditioning. method "gram": eigh of the C×C Gram matrix J Jᵀ in float64, rows of
    U_kᵀ J / σ_k; forming J Jᵀ squares the condition number (at σ_min/σ_max = 1e-6 these rows are off
    unit length by ~1e-4), so a second pass re-orthonormalises them (Cholesky of their own C×C Gram
    matrix, "CholeskyQR2"; the span is unchanged). Both return float64 bases; gram is ~3-5× cheaper
    than svd (CPU), and its singular values are resolved only down to ~sqrt(eps)·σ_max (hence the
    1e-7 floor of :func:`default_rtol`).
    """
    J = jacobian.to(torch.float64)
    n, c, d = J.shape
    if rtol is None:
        rtol = default_rtol(jacobian.dtype, max(c, d))
    if method == "svd":
        _, s, vh = torch.linalg.svd(J, full_matrices=False)  # s: (N, k) descending
        keep = s > rtol * s[:, :1]
        basis = vh * keep[..., None]
        sv = s
    elif method == "gram":
        K = J @ J.transpose(1, 2)
        lam, U = torch.linalg.eigh(K)  # ascending
        lam, U = lam.flip(1), U.flip(2)
        sv = lam.clamp_min(0).sqrt()
        keep = sv > rtol * sv[:, :1]
        inv = torch.where(keep, 1.0 / sv.clamp_min(torch.finfo(torch.float64).tiny), torch.zeros_like(sv))
        basis = torch.einsum("nck,ncd->nkd", U, J) * inv[..., None]  # (N, C, D)
        # second pass: the kept rows span the right space but carry the squared conditioning in their
        # lengths/angles; their Gram matrix is ≈ I (well conditioned), so Cholesky of it is exact to
        # rounding. Dropped rows are zero: put 1 on their diagonal (block diagonal, no mixing).
        G2 = basis @ basis.transpose(1, 2) + torch.diag_embed((~keep).to(torch.float64))
        L, info = torch.linalg.cholesky_ex(G2)
        ok = info == 0
        if not bool(ok.all()):
            L = torch.where(ok[:, None, None], L, torch.eye(c, dtype=torch.float64, device=J.device).expand(n, c, c))
        basis = torch.linalg.solve_triangular(L, basis, upper=False)
    else:
        raise SplineAtlasError(f"unknown row-space method {method!r}; use 'gram' or 'svd'.")
    keep = keep & (sv[:, :1] > 0)
    return RowSpace(basis, keep.sum(1), sv)


def g_spectrum(probs: torch.Tensor, jacobian: torch.Tensor) -> torch.Tensor:
    """(N, C) eigenvalues of G = Jᵀ diag(p) J, descending, from the C×C matrix A Aᵀ, A = diag(√p) J."""
    A = probs.to(torch.float64).sqrt()[..., None] * jacobian.to(torch.float64)
    K = A @ A.transpose(1, 2)
    return torch.linalg.eigvalsh(K).flip(1).clamp_min(0)


def g_trace(probs: torch.Tensor, jacobian: torch.Tensor) -> torch.Tensor:
    """(N,) Tr G = Σ_i p_i ||∇ log p_i||² (their eq. 11)."""
    return (probs.to(torch.float64) * jacobian.to(torch.float64).pow(2).sum(2)).sum(1)


def numerical_rank(eigenvalues: torch.Tensor, rtol: float) -> torch.Tensor:
    """(N,) count of eigenvalues of a PSD matrix above rtol²·λ_max (rtol on singular values)."""
    lam_max = eigenvalues[:, :1]
    return ((eigenvalues > (rtol**2) * lam_max) & (lam_max > 0)).sum(1)


def _prepare(net: nn.Module, dtype, device):
    from geometry.networks.torch_utils import prepare_model

    return prepare_model(net, dtype, device)


def local_data_matrix(
    net: nn.Module,
    X,
    *,
    dtype: torch.dtype = torch.float64,
    device=None,
    rtol: float | None = None,
    method: str = "auto",
    keep_jacobian: bool = False,
    batch_size: int = 512,
    progress: Callable[[float, str], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> LocalDataMatrix:
    """Trace, spectrum and numerical rank of G(x) for every row of X: (N, D), in chunks.

    The net is copied to ``dtype`` on ``device`` (default: the net's device). Never forms D×D.
    """
    model = _prepare(net, dtype, device)
    dev = next(model.parameters()).device
    X = torch.as_tensor(np.asarray(X) if not isinstance(X, torch.Tensor) else X).to(dev, dtype)
    if X.ndim != 2:
        raise DatasetError(f"local data matrix needs flat points (N, D); got shape {tuple(X.shape)}.")
    parts: dict[str, list] = {k: [] for k in ("p", "tr", "ev", "rk", "jrk", "jac")}
    n = X.shape[0]
    for s in range(0, n, batch_size):
        if cancel is not None and cancel():
            raise CancelledError("local data matrix computation was cancelled.")
        lj = log_prob_jacobian(model, X[s : s + batch_size], method)
        tol = default_rtol(dtype, max(lj.jacobian.shape[1:])) if rtol is None else rtol
        ev = g_spectrum(lj.probs, lj.jacobian)
        parts["p"].append(lj.probs.detach().cpu().double())
        parts["tr"].append(g_trace(lj.probs, lj.jacobian).cpu())
        parts["ev"].append(ev.cpu())
        parts["rk"].append(numerical_rank(ev, tol).cpu())
        parts["jrk"].append(row_space(lj.jacobian, tol).rank.cpu())
        if keep_jacobian:
            parts["jac"].append(lj.jacobian.detach().cpu().double())
        if progress is not None:
            e = min(n, s + batch_size)
            progress(e / n, f"local data matrix {e}/{n} points")
    probs = torch.cat(parts["p"]).numpy()
    tol = default_rtol(dtype, X.shape[1]) if rtol is None else rtol
    return LocalDataMatrix(
        probs=probs,
        predicted=probs.argmax(1).astype(np.int64),
        trace=torch.cat(parts["tr"]).numpy(),
        eigenvalues=torch.cat(parts["ev"]).numpy(),
        rank=torch.cat(parts["rk"]).numpy().astype(np.int64),
        jacobian_rank=torch.cat(parts["jrk"]).numpy().astype(np.int64),
        jacobian=torch.cat(parts["jac"]).numpy() if keep_jacobian else None,
        rtol=float(tol),
    )


def dense_local_data_matrix(net: nn.Module, x, max_dim: int = 4096) -> np.ndarray:
    """(N, D, D) G(x) formed explicitly, for small D only (brute-force checks and tiny inputs).

    Computed independently of :func:`log_prob_jacobian`: torch.autograd.functional.jacobian of
    log_softmax per point, then Σ_i p_i g_i g_iᵀ. Refuses D > max_dim (BudgetExceededError).
    """
    model = _prepare(net, torch.float64, None)
    X = torch.as_tensor(np.asarray(x, dtype=np.float64))
    if X.shape[1] > max_dim:
        raise BudgetExceededError(f"dense G(x) would be {X.shape[1]}×{X.shape[1]}; use local_data_matrix (works with J only).")
    out = []
    for xi in X:

        def f(z):
            return torch.log_softmax(_two_logits(model(z[None])), 1)[0]

        Jm = torch.autograd.functional.jacobian(f, xi)
        p = f(xi).exp().detach()
        out.append(torch.einsum("c,cd,ce->de", p, Jm, Jm).numpy())
    return np.stack(out)


@dataclass(frozen=True)
class TraceCurve:
    """Mean Tr G over a point set for every checkpoint of a run (the paper's Fig. 2).

    epochs: (E,) int64; mean_trace, median_trace, std_trace: (E,) float64; mean_rank: (E,) mean
    numerical rank of G; accuracy: (E,) fraction predicted == labels (NaN without labels);
    num_points: points used.
    """

    epochs: np.ndarray
    mean_trace: np.ndarray
    median_trace: np.ndarray
    std_trace: np.ndarray
    mean_rank: np.ndarray
    accuracy: np.ndarray
    num_points: int

    def to_json(self) -> dict:
        return {
            "epochs": self.epochs.tolist(),
            "mean_trace": self.mean_trace.tolist(),
            "median_trace": self.median_trace.tolist(),
            "std_trace": self.std_trace.tolist(),
            "mean_rank": self.mean_rank.tolist(),
            "accuracy": self.accuracy.tolist(),
            "num_points": self.num_points,
        }


def trace_over_run(
    run,
    X=None,
    y=None,
    *,
    max_points: int = 512,
    split: str = "test",
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device=None,
    method: str = "auto",
    progress: Callable[[float, str], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> TraceCurve:
    """Mean Tr G(x, w_e) over a fixed point set for every checkpoint e of ``run`` (geometry.networks.runs.Run).

    X: (N, D) points (default: the run's dataset ``split``, a seeded subset of ``max_points``);
    y: (N,) labels for the accuracy column (optional). The same points are used at every epoch.
    """
    if X is None:
        ds = run.dataset
        if ds is None:
            raise DatasetError(f"run {run.name!r} names no dataset; pass the points X explicitly.")
        X, y = (ds.X_test, ds.y_test) if split == "test" and len(ds.X_test) else (ds.X_train, ds.y_train)
    X = np.asarray(X)
    if len(X) > max_points:
        idx = np.sort(np.random.default_rng(seed).choice(len(X), max_points, replace=False))
        X = X[idx]
        y = None if y is None else np.asarray(y)[idx]
    E = len(run)
    cols = {k: np.full(E, np.nan) for k in ("mean", "median", "std", "rank", "acc")}
    for i in range(E):
        if cancel is not None and cancel():
            raise CancelledError("trace over training was cancelled.")
        ldm = local_data_matrix(run.network(i), X, dtype=dtype, device=device, method=method)
        cols["mean"][i] = ldm.trace.mean()
        cols["median"][i] = np.median(ldm.trace)
        cols["std"][i] = ldm.trace.std()
        cols["rank"][i] = ldm.rank.mean()
        if y is not None:
            cols["acc"][i] = float((ldm.predicted == np.asarray(y)).mean())
        if progress is not None:
            progress((i + 1) / E, f"Tr G: checkpoint {i + 1}/{E} (epoch {run.epochs[i]})")
    return TraceCurve(np.asarray(run.epochs, dtype=np.int64), cols["mean"], cols["median"], cols["std"], cols["rank"], cols["acc"], int(len(X)))
