"""Per-region affine maps pushed through a canonical network, one nonlinearity at a time.

On a region of the slice every intermediate tensor is affine in the slice coordinates u (k of them):
``z(u) = m + sum_i u_i M_i``. We hold it as one tensor ``X (R, k+1, *shape)``: ``X[:, 0]`` is the
offset m, ``X[:, 1 + i]`` the i-th linear column M_i. An affine torch module f acts as
``f(m)`` on the offset and ``f(M_i) - f(0)`` on the columns (its linear part), so any affine op of the
canonical form (Linear, convolutions, BatchNorm in eval, AvgPool, padding, scaling, Flatten, Identity)
works without special cases; Linear and the convolutions get a fast path that skips the bias on the
columns. Residual sums and concatenations walk their branches on the same X.

:func:`walk` runs the network's ``nn.Sequential`` on such an X and calls ``on_nonlinearity`` at every
nonlinearity; that callback may subdivide the regions (returning the new X and the index of the parent
region of each new one), and pending branch values (a residual's input, a concatenation's finished
branches) are re-indexed accordingly.
"""

from __future__ import annotations

import math
import weakref

from typing import Callable

import torch
from torch import nn

from geometry.networks.spec import Abs, Concat, Residual

PL_MODULES = (nn.ReLU, nn.LeakyReLU, Abs, nn.MaxPool2d)
SMOOTH_MODULES = (nn.GELU, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.ELU, nn.SiLU, nn.Softmax)


class StopWalk(Exception):
    """Raised by a callback to end the walk early (depth reached)."""


CONV_SCRATCH_BYTES = 64 << 20  # a convolution's im2col buffer per call (CPU float64 convs unfold the whole batch)


def _in_chunks(conv, flat: torch.Tensor, module: nn.Module) -> torch.Tensor:
    """``conv(flat)`` a slice of the batch at a time, into one output tensor. A CPU convolution in float64
    unfolds its whole batch first (kernel-area times the input: 9x for 3x3, 1 GB for a 100 MB batch),
    which would be most of a CNN tessellation's peak memory; slices keep that buffer under
    ``CONV_SCRATCH_BYTES``."""
    n = flat.shape[0]
    per_item = flat[0].numel() * flat.element_size() * max(1, math.prod(module.kernel_size))
    step = max(1, CONV_SCRATCH_BYTES // max(per_item, 1))
    if step >= n:
        return conv(flat)
    first = conv(flat[:step])
    out = first.new_empty((n, *first.shape[1:]))
    out[:step] = first
    del first
    for a in range(step, n, step):
        out[a : a + step] = conv(flat[a : a + step])
    return out


DENSE_CONV_MAX_BYTES = 32 << 20  # a convolution's dense matrix and the identity basis that builds it, when it is used instead
DENSE_CONV_MAX_RATIO = 4  # ... and only when its multiply-adds are at most this many times the convolution's
_dense_matrices: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _dense_conv(conv, m: nn.Module, flat: torch.Tensor) -> torch.Tensor | None:
    """``conv(flat)`` as one matrix product with the convolution's dense matrix, or None where that would
    not pay. A small convolution on many regions (the digits CNN's second conv: 8x4x4 -> 16x4x4 on 52k
    affine columns) runs 5-6x faster so on CPU in float64, where torch has no fast convolution; the dense
    matrix is the convolution of the identity basis, built once per module, weights and dtype."""
    n, shape = flat.shape[0], flat.shape[1:]
    in_f = math.prod(shape)
    per_output = max(1, (m.in_channels // m.groups) * math.prod(m.kernel_size))
    if in_f > DENSE_CONV_MAX_RATIO * per_output or n < 4 * in_f:
        return None
    key = (m.weight.data_ptr(), m.weight._version, tuple(shape), flat.dtype, flat.device)
    hit = _dense_matrices.get(m)
    if hit is not None and hit[0] == key:
        W, out_shape = hit[1], hit[2]
    else:
        with torch.no_grad():
            out_shape = conv(flat.new_zeros((1, *shape))).shape[1:]
            if in_f * (in_f + math.prod(out_shape)) * flat.element_size() > DENSE_CONV_MAX_BYTES:  # the identity basis and the matrix
                return None
            W = conv(torch.eye(in_f, dtype=flat.dtype, device=flat.device).reshape(in_f, *shape)).reshape(in_f, -1)
        _dense_matrices[m] = (key, W, out_shape)
    return (flat.reshape(n, in_f) @ W).reshape(n, *out_shape)


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
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d)) and module.padding_mode == "zeros":
        m = module

        def conv(x):
            if isinstance(m, nn.ConvTranspose2d):
                return nn.functional.conv_transpose2d(x, m.weight, None, m.stride, m.padding, m.output_padding, m.groups, m.dilation)
            return m._conv_forward(x, m.weight, None)

        y = _dense_conv(conv, m, flat)
        if y is None:
            y = _in_chunks(conv, flat, module)
        y = y.reshape(R, k1, *y.shape[1:])
        if module.bias is not None:
            y[:, 0] += module.bias.view(-1, *([1] * (y.dim() - 3)))
        return y
    y = module(flat)
    y = y.reshape(R, k1, *y.shape[1:])
    zero = module(torch.zeros(1, *X.shape[2:], dtype=X.dtype, device=X.device))
    y[:, 1:] -= zero
    return y


class Activated:
    """The maps after an elementwise nonlinearity on pieces cut from regions, not yet gathered per piece:
    piece i is ``f(X[owner[i]], pattern[i])``. Most pieces' patterns are their region's ``side`` (its
    pattern at the region's centre); the (piece, unit) entries that differ are listed. A Linear layer
    (after Flatten, Identity or Dropout) is applied to the R regions once and corrected on the changed
    entries, ``y_i = W f(X_r, side_r) + sum_j (f(1) - f(0)) s_ij W[:, j] X_r[:, j]`` (s = +-1), instead
    of gathering, masking and multiplying every piece's maps (most of a wide layer's time and memory).
    When few pieces share a region it gathers them a slice at a time instead (:meth:`gathered_linear`);
    anything else first :meth:`materialize` s the maps. Equal to the direct product up to rounding."""

    CORRECTION_BYTES = 32 << 20  # the corrections are added a slice of the changed entries at a time
    GATHER_BYTES = 64 << 20  # gathered_linear gathers the pieces' maps a slice of this size at a time

    def __init__(self, module, X, owner, pattern, side, changed_piece, changed_unit, inplace: bool = False):
        self.module, self.X, self.owner, self.pattern, self.side = module, X, owner, pattern, side
        self.changed_piece, self.changed_unit = changed_piece, changed_unit
        self.inplace = inplace  # X is this object's alone (no pending branch shares it): activate it in place

    def materialize(self) -> torch.Tensor:
        """The pieces' maps ``(R', k+1, *shape)``."""
        return activate(self.module, self.X.index_select(0, self.owner), self.pattern, inplace=True)

    def pieces(self, a: int, b: int) -> "Activated":
        """Pieces ``a:b`` alone, with their own copy of their regions' maps: chunks of a layer's pieces go
        through the rest of the network one after the other, so none may activate the shared maps in place."""
        regions, owner = torch.unique(self.owner[a:b], return_inverse=True)
        keep = (self.changed_piece >= a) & (self.changed_piece < b)
        return Activated(
            self.module, self.X.index_select(0, regions), owner, self.pattern[a:b], self.side.index_select(0, regions),
            self.changed_piece[keep] - a, self.changed_unit[keep], inplace=True,
        )  # fmt: skip

    def reshaped(self, shape) -> "Activated":
        X = self.X.reshape(self.X.shape[0], self.X.shape[1], *shape)
        return Activated(self.module, X, self.owner, self.pattern, self.side, self.changed_piece, self.changed_unit, self.inplace)

    def worth_it(self) -> bool:
        """Correcting the regions' product is cheaper than the pieces' own (few changed entries)."""
        return self.X.shape[0] < self.owner.shape[0] * 0.9 and self.changed_piece.shape[0] * 4 <= self.pattern.numel()

    def gathered_linear(self, module: nn.Linear) -> torch.Tensor:
        """``apply_affine(module, self.materialize())`` a slice of the pieces at a time: the pieces' maps are
        never all held at once (a wide last layer before a narrow output)."""
        n = self.owner.shape[0]
        step = max(1, self.GATHER_BYTES // max(1, self.X[0].numel() * self.X.element_size()))
        if step >= n:
            return apply_affine(module, self.materialize())
        out = None
        for a in range(0, n, step):
            piece = activate(self.module, self.X.index_select(0, self.owner[a : a + step]), self.pattern[a : a + step], inplace=True)
            y = apply_affine(module, piece)
            out = y.new_empty((n, *y.shape[1:])) if out is None else out
            out[a : a + step] = y
        return out

    def linear(self, module: nn.Linear) -> torch.Tensor:
        """``apply_affine(module, self.materialize())``, from the regions' product and the corrections.
        Consumes the regions' maps: they are let go before the pieces' output is gathered (the peak is
        the regions' output and the pieces', not the maps as well)."""
        R, k1 = self.X.shape[:2]
        flat = self.X.reshape(R, k1, -1)
        piece, unit = self.changed_piece, self.changed_unit
        gain = torch.where(self.pattern[piece, unit], 1.0, -1.0).to(flat.dtype) * (1.0 - off_slope(self.module))  # f(new) - f(side)
        x = flat[self.owner.index_select(0, piece), :, unit] * gain[:, None]  # (T, k+1): the changed entries' maps
        y = torch.nn.functional.linear(activate(self.module, flat, self.side, inplace=self.inplace), module.weight)
        self.X = flat = None
        if module.bias is not None:
            y[:, 0] += module.bias
        out = y.index_select(0, self.owner)
        del y
        n_out = module.weight.shape[0]
        step = max(1, self.CORRECTION_BYTES // (k1 * n_out * out.element_size()))
        target = out.view(out.shape[0], k1 * n_out)
        for a in range(0, piece.shape[0], step):
            u = unit[a : a + step]
            target.index_add_(0, piece[a : a + step], (x[a : a + step, :, None] * module.weight.t().index_select(0, u)[:, None, :]).reshape(-1, k1 * n_out))
        return out


def walk(
    seq: nn.Sequential,
    X: torch.Tensor,
    on_nonlinearity: Callable[[nn.Module, int, torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]],
    counter: list[int] | None = None,
    pending: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """Run ``seq`` on the affine batch X. ``on_nonlinearity(module, layer_index, X) -> (X_new, parent)``
    where ``parent (R_new,) int64`` maps new regions to old ones (None: regions unchanged); X_new may be
    an :class:`Activated` (the pieces' maps, gathered only when a module needs them)."""
    counter = [0] if counter is None else counter
    pending = [] if pending is None else pending
    for module in seq.children():
        if isinstance(X, Activated):  # pieces' maps not gathered yet: only a Linear (or a reshape) reads them as they are
            if isinstance(module, (nn.Flatten, nn.Identity, nn.Dropout)):
                X = X.reshaped((-1,)) if isinstance(module, nn.Flatten) else X
                continue
            if isinstance(module, nn.Linear):
                X = X.linear(module) if X.worth_it() else X.gathered_linear(module)
                continue
            X = X.materialize()
        if isinstance(module, Residual):
            pending.append(X)
            body = walk(module.body, X, on_nonlinearity, counter, pending)
            skip = pending.pop()
            for m in module.shortcut.children() if module.shortcut is not None else ():  # affine only (validated)
                skip = apply_affine(m, skip)
            X = skip + body
            continue
        if isinstance(module, Concat):  # every branch walks the same (re-indexed) input; finished ones wait in pending
            base = len(pending)
            pending.append(X)
            for branch in module.branches:
                pending.append(walk(branch, pending[base], on_nonlinearity, counter, pending))
            outputs = pending[base + 1 :]
            del pending[base:]
            X = module.combine(outputs, lead=2)
            continue
        if isinstance(module, PL_MODULES + SMOOTH_MODULES):
            X, parent = on_nonlinearity(module, counter[0], X)
            counter[0] += 1
            if parent is not None:
                for i in range(len(pending)):
                    pending[i] = pending[i][parent]
            continue
        X = apply_affine(module, X)
    return X.materialize() if isinstance(X, Activated) else X


def off_slope(module: nn.Module) -> float:
    """The slope of an elementwise piecewise-linear layer where its pattern is False (pre-activation <= 0)."""
    if isinstance(module, nn.ReLU):
        return 0.0
    if isinstance(module, nn.LeakyReLU):
        return float(module.negative_slope)
    if isinstance(module, Abs):
        return -1.0
    raise TypeError(f"not a piecewise-linear module: {module}")  # smooth layers are refused before any walk


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
        ho, wo = pool_windows(module, H, W, "meta")[2]
        return out.reshape(R, k1, C, ho, wo)
    flat = X.reshape(R, k1, -1)
    p = pattern.view(R, 1, -1)
    if isinstance(module, nn.ReLU):
        out = flat.mul_(p) if inplace else flat * p.to(X.dtype)
    else:  # LeakyReLU, Abs: the slope in X's precision (a Python float in torch.where would be float32)
        out = flat * torch.where(p, 1.0, torch.tensor(off_slope(module), dtype=X.dtype, device=X.device))
    return out.reshape(R, k1, *shape)


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def pool_windows(module: nn.MaxPool2d, H: int, W: int, device) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    """The members of every window of a max pooling over an ``H x W`` map: ``members (P, kh*kw)`` flat
    indices into ``H*W`` (clamped), ``valid (P, kh*kw)`` bool (False where the window overhangs the map:
    padding or ``ceil_mode``; torch pads with -inf, so those places never win) and the output size.

    Windows follow torch's rule, padding, dilation and ``ceil_mode`` included (torchvision's ResNet stem
    pools 3x3, stride 2, padding 1); the output size is torch's own (a pooling of a meta tensor)."""
    kh, kw = _pair(module.kernel_size)
    sh, sw = _pair(module.stride if module.stride not in (None, ()) else module.kernel_size)
    ph, pw = _pair(module.padding)
    dh, dw = _pair(module.dilation)
    out = torch.nn.functional.max_pool2d(torch.empty(1, 1, H, W, device="meta"), (kh, kw), (sh, sw), (ph, pw), (dh, dw), module.ceil_mode)
    ho, wo = out.shape[2:]
    ys = (torch.arange(ho, device=device) * sh - ph)[:, None, None, None] + (torch.arange(kh, device=device) * dh)[None, None, :, None]
    xs = (torch.arange(wo, device=device) * sw - pw)[None, :, None, None] + (torch.arange(kw, device=device) * dw)[None, None, None, :]
    ys, xs = ys.expand(ho, wo, kh, kw), xs.expand(ho, wo, kh, kw)
    valid = ((ys >= 0) & (ys < H) & (xs >= 0) & (xs < W)).reshape(ho * wo, kh * kw)
    members = (ys.clamp(0, H - 1) * W + xs.clamp(0, W - 1)).reshape(ho * wo, kh * kw)
    return members, valid, (int(ho), int(wo))


def maxpool_pairs(module: nn.MaxPool2d, C: int, H: int, W: int, device) -> torch.Tensor:
    """(P, 2) int64 flat indices (into C*H*W) of every pair of inputs sharing a pooling window.

    The max of a window is affine where the order of its members does not change, so the window's
    cut lines are the pairwise differences of its members inside the map (padding never wins)."""
    members, valid, _ = pool_windows(module, H, W, device)
    kk = members.shape[1]
    ii, jj = torch.triu_indices(kk, kk, 1, device=device)
    pairs = torch.stack([members[:, ii], members[:, jj]], dim=-1)
    pairs = pairs[valid[:, ii] & valid[:, jj]].reshape(-1, 2)
    chan = (torch.arange(C, device=device) * H * W).view(C, 1, 1)
    return (pairs.view(1, -1, 2) + chan).reshape(-1, 2)
