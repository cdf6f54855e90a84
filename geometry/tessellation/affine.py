"""Per-region affine maps pushed through a canonical network, one nonlinearity at a time.

On a region of the slice every intermediate tensor is affine in the slice coordinates u (k of them):
``z(u) = m + sum_i u_i M_i``. We hold it as one tensor ``X (R, k+1, *shape)``: ``X[:, 0]`` is the
offset m, ``X[:, 1 + i]`` the i-th linear column M_i. An affine torch module f acts as
``f(m)`` on the offset and ``f(M_i) - f(0)`` on the columns (its linear part), so any affine op of the
canonical form (Linear, Conv2d, BatchNorm in eval, AvgPool, Flatten, Identity, residual sums) works
without special cases; Linear/Conv2d get a fast path that skips the bias on the columns.

:func:`walk` runs the network's ``nn.Sequential`` on such an X and calls ``on_nonlinearity`` at every
nonlinearity; that callback may subdivide the regions (returning the new X and the index of the parent
region of each new one), and pending residual branches are re-indexed accordingly.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from geometry.networks.spec import Abs, Residual

PL_MODULES = (nn.ReLU, nn.LeakyReLU, Abs, nn.MaxPool2d)
SMOOTH_MODULES = (nn.GELU, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.ELU, nn.SiLU, nn.Softmax)


class StopWalk(Exception):
    """Raised by a callback to end the walk early (depth reached)."""


def apply_affine(module: nn.Module, X: torch.Tensor) -> torch.Tensor:
    """Push ``X (R, k+1, *shape)`` through one affine module; returns ``(R, k+1, *out_shape)``."""
    R, k1 = X.shape[:2]
    if isinstance(module, (nn.Flatten, nn.Identity, nn.Dropout)):
        return X.reshape(R, k1, -1) if isinstance(module, nn.Flatten) else X
    if isinstance(module, nn.Linear):
        y = torch.nn.functional.linear(X, module.weight)
        if module.bias is not None:
            y[:, 0] += module.bias
        return y
    flat = X.reshape(R * k1, *X.shape[2:])
    if isinstance(module, nn.Conv2d) and module.padding_mode == "zeros":
        y = module._conv_forward(flat, module.weight, None)
        y = y.reshape(R, k1, *y.shape[1:])
        if module.bias is not None:
            y[:, 0] += module.bias.view(-1, 1, 1)
        return y
    y = module(flat)
    y = y.reshape(R, k1, *y.shape[1:])
    zero = module(torch.zeros(1, *X.shape[2:], dtype=X.dtype, device=X.device))
    y[:, 1:] -= zero
    return y


def walk(
    seq: nn.Sequential,
    X: torch.Tensor,
    on_nonlinearity: Callable[[nn.Module, int, torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]],
    counter: list[int] | None = None,
    pending: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """Run ``seq`` on the affine batch X. ``on_nonlinearity(module, layer_index, X) -> (X_new, parent)``
    where ``parent (R_new,) int64`` maps new regions to old ones (None: regions unchanged)."""
    counter = [0] if counter is None else counter
    pending = [] if pending is None else pending
    for module in seq.children():
        if isinstance(module, Residual):
            pending.append(X)
            body = walk(module.body, X, on_nonlinearity, counter, pending)
            skip = pending.pop()
            for m in module.shortcut.children() if module.shortcut is not None else ():  # affine only (validated)
                skip = apply_affine(m, skip)
            X = skip + body
            continue
        if isinstance(module, PL_MODULES + SMOOTH_MODULES):
            X, parent = on_nonlinearity(module, counter[0], X)
            counter[0] += 1
            if parent is not None:
                for i in range(len(pending)):
                    pending[i] = pending[i][parent]
            continue
        X = apply_affine(module, X)
    return X


def activate(module: nn.Module, X: torch.Tensor, pattern: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """Apply a piecewise-linear activation with a FIXED pattern to ``X (R, k+1, *shape)``.

    pattern: (R, w) bool (pre > 0) for ReLU/LeakyReLU/Abs; (R, w) int64 argmax indices for MaxPool2d
    (as ``Network.trace``). ``inplace``: X may be overwritten (ReLU/LeakyReLU/Abs).
    """
    R, k1 = X.shape[:2]
    shape = X.shape[2:]
    if isinstance(module, nn.MaxPool2d):
        C, H, W = shape
        idx = pattern.view(R, 1, C, -1).expand(R, k1, C, pattern.shape[1] // C)
        out = X.reshape(R, k1, C, H * W).gather(3, idx)
        ho, wo = _pool_out_hw(module, H, W)
        return out.reshape(R, k1, C, ho, wo)
    flat = X.reshape(R, k1, -1)
    p = pattern.view(R, 1, -1)
    if isinstance(module, nn.ReLU):
        out = flat.mul_(p) if inplace else flat * p.to(X.dtype)
    elif isinstance(module, nn.LeakyReLU):
        out = flat * torch.where(p, 1.0, module.negative_slope).to(X.dtype)
    elif isinstance(module, Abs):
        out = flat * torch.where(p, 1.0, -1.0).to(X.dtype)
    else:  # pragma: no cover - smooth layers are refused before any walk
        raise TypeError(f"not a piecewise-linear module: {module}")
    return out.reshape(R, k1, *shape)


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _pool_out_hw(module: nn.MaxPool2d, H: int, W: int) -> tuple[int, int]:
    kh, kw = _pair(module.kernel_size)
    sh, sw = _pair(module.stride if module.stride is not None else module.kernel_size)
    ph, pw = _pair(module.padding)
    return (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1


def maxpool_pairs(module: nn.MaxPool2d, C: int, H: int, W: int, device) -> torch.Tensor:
    """(P, 2) int64 flat indices (into C*H*W) of every pair of inputs sharing a pooling window.

    The max of a window is affine where the order of its members does not change, so the window's
    cut lines are the pairwise differences. Padding/dilation other than the defaults are refused.
    """
    from geometry.errors import NotPiecewiseAffineError

    if _pair(module.padding) != (0, 0) or _pair(module.dilation) != (1, 1) or module.ceil_mode:
        raise NotPiecewiseAffineError("exact tessellation supports MaxPool2d without padding, dilation or ceil_mode only.")
    kh, kw = _pair(module.kernel_size)
    sh, sw = _pair(module.stride if module.stride is not None else module.kernel_size)
    ho, wo = _pool_out_hw(module, H, W)
    oy = torch.arange(ho, device=device) * sh
    ox = torch.arange(wo, device=device) * sw
    dy = torch.arange(kh, device=device)
    dx = torch.arange(kw, device=device)
    ys = (oy[:, None, None, None] + dy[None, None, :, None]).expand(ho, wo, kh, kw)
    xs = (ox[None, :, None, None] + dx[None, None, None, :]).expand(ho, wo, kh, kw)
    members = (ys * W + xs).reshape(ho * wo, kh * kw)
    ii, jj = torch.triu_indices(kh * kw, kh * kw, 1, device=device)
    pairs = torch.stack([members[:, ii], members[:, jj]], dim=-1).reshape(-1, 2)
    chan = (torch.arange(C, device=device) * H * W).view(C, 1, 1)
    return (pairs.view(1, -1, 2) + chan).reshape(-1, 2)
