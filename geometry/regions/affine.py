"""Activation patterns, region affine maps and H-representations (Liu et al., eqs. 3-5).

A *pattern* is the flat binary vector of a point: one bit per unit of every piecewise-linear
layer (ReLU, LeakyReLU, Abs), layers in forward order, ``bit = pre-activation > 0`` (their eq. 3).
``layer_offsets[l]:layer_offsets[l+1]`` are the bits of layer l.

With the pattern fixed the network is affine, so every layer's pre-activation on the region is
``h_l(x) = G_l x + g_l``. We get all ``G_l, g_l`` (and the logits' ``W, b``) in ONE forward pass of
the batch ``[0, e_1, ..., e_D]`` through the network with the pattern imposed (activation replaced
by a fixed per-unit slope): ``g = h(0)``, ``G[:, i] = h(e_i) - h(0)``. This works for any affine
layers (linear, conv, batch norm, avg pool, residual sums) and never forms the products
``W_L diag(s) ... W_1`` explicitly. The region is then (their eq. 5, with their sign vector
``s' = -1`` for on-bits, ``+1`` for off-bits) ``A x <= c`` with ``A = s' * G``, ``c = -s' * g``.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from geometry.errors import ArchitectureError, BudgetExceededError
from geometry.networks.network import Network
from geometry.networks.spec import Abs, Concat, Residual

_RELU_LIKE = (nn.ReLU, nn.LeakyReLU, Abs)
_SMOOTH = (nn.GELU, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.ELU, nn.SiLU, nn.Softmax)


def check_supported(net: Network) -> None:
    """Raise a typed error if the region tools cannot handle ``net`` (smooth layers, max-pooling)."""
    net.require_piecewise_affine("region geometry (H-representations, active bits, line walks)")
    for li in net.layer_infos:
        if li.kind == "maxpool2d":
            raise ArchitectureError(
                f"layer {li.path} is maxpool2d: the region tools handle ReLU/LeakyReLU/Abs layers (binary patterns); "
                f"replace max-pooling by avgpool2d or use the slice tessellation for this network."
            )


def layer_offsets(net: Network) -> np.ndarray:
    """(L+1,) int64: bit ranges of the layers inside a flat pattern."""
    return np.concatenate([[0], np.cumsum([li.width for li in net.layer_infos])]).astype(np.int64)


def _slope_factor(module: nn.Module, mask: torch.Tensor, dtype) -> torch.Tensor:
    on = mask.to(dtype)
    if isinstance(module, nn.LeakyReLU):
        return on + (1.0 - on) * module.negative_slope
    if isinstance(module, Abs):
        return 2.0 * on - 1.0
    return on


def run_layers(net: Network, x: torch.Tensor, masks: list[torch.Tensor] | None = None) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Forward pass recording every nonlinearity's flattened input (pre-activation).

    x: (N, D). masks: None for the true network, or one (N, width_l) bool tensor per layer: the
    pattern imposed on layer l (the network is then affine in x). Returns (pres, logits),
    pres[l]: (N, width_l), logits: (N, C).
    """
    pres: list[torch.Tensor] = []

    def walk(seq: nn.Sequential, h: torch.Tensor) -> torch.Tensor:
        for module in seq.children():
            if isinstance(module, Residual):
                h = module.skip(h) + walk(module.body, h)
                continue
            if isinstance(module, Concat):
                h = module.combine([walk(branch, h) for branch in module.branches])
                continue
            if isinstance(module, _RELU_LIKE):
                n = h.shape[0]
                pre = h.reshape(n, -1)
                m = (pre > 0) if masks is None else masks[len(pres)]
                pres.append(pre)
                h = (pre * _slope_factor(module, m, pre.dtype)).reshape(h.shape)
            elif isinstance(module, _SMOOTH + (nn.MaxPool2d,)):
                raise ArchitectureError(f"region tools cannot impose a pattern on {type(module).__name__}.")
            else:
                h = module(h)
        return h

    logits = walk(net.layers, x.reshape(x.shape[0], *net.input_shape))
    return pres, logits


_NET64_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _as_net64(net: Network, device=None) -> Network:
    """A float64 copy of ``net`` on ``device`` (``net`` itself if it already is), cached per network.

    The cache key includes every parameter's storage pointer and in-place version counter, so a copy is
    rebuilt after the weights change (e.g. an optimiser step) and never served stale."""
    p = next(net.parameters(), None)
    dev = torch.device(device) if device is not None else (p.device if p is not None else torch.device("cpu"))
    if p is None or (p.dtype == torch.float64 and p.device == dev):
        return net
    key = (str(dev), tuple((t.data_ptr(), t._version) for t in net.state_dict(keep_vars=True).values()))
    hit = _NET64_CACHE.get(net)
    if hit is not None and hit[0] == key:
        return hit[1]
    copy = net.to_dtype_device(torch.float64, dev)
    _NET64_CACHE[net] = (key, copy)
    return copy


def patterns_of(net: Network, X, device=None, batch_size: int = 8192) -> np.ndarray:
    """Flat activation patterns of points. X: (N, D) -> (N, n_bits) bool (float64 forward pass)."""
    check_supported(net)
    net64 = _as_net64(net, device)
    dev = next(net64.parameters()).device
    X = torch.as_tensor(np.asarray(X, dtype=np.float64), device=dev).reshape(-1, net.input_dim)
    out = []
    with torch.no_grad():
        for s in range(0, X.shape[0], batch_size):
            pres, _ = run_layers(net64, X[s : s + batch_size])
            out.append(torch.cat([p > 0 for p in pres], dim=1).cpu().numpy() if pres else np.zeros((min(batch_size, X.shape[0] - s), 0), bool))
    return np.concatenate(out) if out else np.zeros((0, int(layer_offsets(net)[-1])), bool)


def hamming(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Hamming distance between patterns. p, q: (..., n_bits) bool (broadcast) -> (...) int64."""
    return np.count_nonzero(np.asarray(p, bool) != np.asarray(q, bool), axis=-1).astype(np.int64)


def pairwise_hamming(P: np.ndarray, Q: np.ndarray | None = None) -> np.ndarray:
    """All-pairs Hamming distances: P (n, b), Q (m, b) bool -> (n, m) int64 (one matrix product)."""
    Q = P if Q is None else Q
    p = torch.as_tensor(np.asarray(P, np.float32))
    q = torch.as_tensor(np.asarray(Q, np.float32))
    d = p @ (1 - q).T + (1 - p) @ q.T
    return torch.round(d).to(torch.int64).numpy()


@dataclass(frozen=True)
class RegionMaps:
    """Affine maps of R regions given by their patterns.

    G: (R, n_bits, D) and g: (R, n_bits): pre-activations ``h = G x + g`` on each region;
    W: (R, C, D) and b: (R, C): logits ``W x + b`` on each region (the region's affine map, W_omega).
    """

    G: np.ndarray
    g: np.ndarray
    W: np.ndarray
    b: np.ndarray


def region_maps(net: Network, patterns: np.ndarray, device=None, max_rows: int = 200_000) -> RegionMaps:
    """Pre-activation and logit affine maps on the regions of ``patterns`` ((R, n_bits) bool).

    One pattern-imposed forward pass of ``[0, e_1..e_D]`` per region, batched over regions
    (chunks of at most ``max_rows`` forward rows). float64 throughout.
    """
    check_supported(net)
    net64 = _as_net64(net, device)
    dev = next(net64.parameters()).device
    P = np.atleast_2d(np.asarray(patterns, bool))
    offs = layer_offsets(net)
    if P.shape[1] != offs[-1]:
        raise ArchitectureError(f"patterns have {P.shape[1]} bits but this network has {offs[-1]} units.")
    D = net.input_dim
    if D + 1 > max_rows:
        raise BudgetExceededError(f"input dimension {D} is too large for region maps (limit {max_rows - 1}).")
    R = P.shape[0]
    per = max(1, max_rows // (D + 1))
    basis = torch.cat([torch.zeros(1, D, dtype=torch.float64, device=dev), torch.eye(D, dtype=torch.float64, device=dev)])
    Gs, gs, Ws, bs = [], [], [], []
    with torch.no_grad():
        for s in range(0, R, per):
            Pc = torch.as_tensor(P[s : s + per], device=dev)
            r = Pc.shape[0]
            X = basis.repeat(r, 1)
            rep = Pc.repeat_interleave(D + 1, dim=0)
            masks = [rep[:, offs[l] : offs[l + 1]] for l in range(len(offs) - 1)]
            pres, logits = run_layers(net64, X, masks)
            pre = torch.cat(pres, dim=1) if pres else torch.zeros(r * (D + 1), 0, dtype=torch.float64, device=dev)
            pre = pre.reshape(r, D + 1, -1)
            lg = logits.reshape(r, D + 1, -1)
            gs.append(pre[:, 0].cpu().numpy())
            Gs.append((pre[:, 1:] - pre[:, :1]).transpose(1, 2).cpu().numpy())
            bs.append(lg[:, 0].cpu().numpy())
            Ws.append((lg[:, 1:] - lg[:, :1]).transpose(1, 2).cpu().numpy())
    return RegionMaps(np.concatenate(Gs), np.concatenate(gs), np.concatenate(Ws), np.concatenate(bs))


@dataclass(frozen=True)
class HRep:
    """A region's half-space description ``A x <= c`` (Liu et al. eq. 5) and affine map.

    pattern: (n_bits,) bool; A: (n_bits, D) float64, row k = s'_k * grad h_k (s' = -1 on, +1 off);
    c: (n_bits,) float64; W: (C, D), b: (C,): the logits on the region; layer_offsets: (L+1,) int64.
    Rows keep the network's scale; ``norms`` are their Euclidean norms (0 for a unit that is constant
    on the region, e.g. dead downstream of an all-off layer: such a row is never a facet).
    """

    pattern: np.ndarray
    A: np.ndarray
    c: np.ndarray
    W: np.ndarray
    b: np.ndarray
    layer_offsets: np.ndarray

    @property
    def n_bits(self) -> int:
        return int(self.A.shape[0])

    @property
    def dim(self) -> int:
        return int(self.A.shape[1])

    @property
    def norms(self) -> np.ndarray:
        return np.linalg.norm(self.A, axis=1)

    def slack(self, x: np.ndarray) -> np.ndarray:
        """c - A x: (n_bits,) for x (D,), or (N, n_bits) for x (N, D)."""
        return self.c - np.asarray(x, np.float64) @ self.A.T

    def contains(self, x: np.ndarray, tol: float = 1e-9) -> np.ndarray | bool:
        """Whether x (D,) or (N, D) satisfies every inequality up to ``tol`` (scaled by row norms)."""
        s = self.slack(x)
        return np.all(s >= -tol * np.maximum(self.norms, 1.0), axis=-1)

    def layer_of(self, bit: int) -> int:
        """0-based layer index of a bit."""
        return int(np.searchsorted(self.layer_offsets, bit, side="right") - 1)

    def logits(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, np.float64) @ self.W.T + self.b


def hreps_from_patterns(net: Network, patterns: np.ndarray, device=None) -> list[HRep]:
    """H-representations of the regions with the given patterns ((R, n_bits) or (n_bits,) bool)."""
    P = np.atleast_2d(np.asarray(patterns, bool))
    maps = region_maps(net, P, device=device)
    offs = layer_offsets(net)
    out = []
    for r in range(P.shape[0]):
        sgn = np.where(P[r], -1.0, 1.0)
        out.append(HRep(P[r].copy(), sgn[:, None] * maps.G[r], -sgn * maps.g[r], maps.W[r], maps.b[r], offs))
    return out


def hrep_at(net: Network, x, device=None) -> HRep:
    """H-representation of the region holding the point x ((D,) array)."""
    p = patterns_of(net, np.asarray(x, np.float64).reshape(1, -1), device=device)
    return hreps_from_patterns(net, p, device=device)[0]


def boundary_distance(h: HRep, x: np.ndarray) -> tuple[float, int]:
    """Exact Euclidean distance from x (inside the region) to the region's boundary, and the bit.

    For a point inside a convex polyhedron the nearest boundary point lies on the nearest of ALL its
    hyperplanes (if the foot on hyperplane k were outside, the segment to it would cross a closer
    hyperplane first), so ``min_k slack_k / ||a_k||`` is exact; redundant rows are never strictly
    closer, so no LP is needed. Returns (distance, bit index); (inf, -1) without any constraint.
    """
    n = h.norms
    ok = n > 1e-12 * max(1.0, float(n.max(initial=0.0)))
    if not ok.any():
        return float("inf"), -1
    d = np.full(h.n_bits, np.inf)
    d[ok] = h.slack(x)[ok] / n[ok]
    k = int(np.argmin(d))
    return float(max(d[k], 0.0)), k
