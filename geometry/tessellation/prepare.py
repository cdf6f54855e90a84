"""The skeleton the 2D and 3D drivers share: the domain, the network prepared for the engine, and one
nonlinearity's cut hyperplanes and pattern on every region (in slice coordinates u, k = 2 or 3)."""

from __future__ import annotations

import copy
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from geometry.networks.device import resolve_device
from geometry.errors import SplineAtlasError
from geometry.networks.network import Network
from geometry.slices import Slice, box_domain
from geometry.tessellation.affine import maxpool_pairs
from geometry.networks.spec import Abs
from geometry.tessellation.types import LayerSummary


def domain_polygon(slice_: Slice, domain) -> np.ndarray:
    """Normalise a 2D domain to a counter-clockwise convex polygon ``(m, 2)`` float64.

    ``domain``: None (the anchors' box plus a margin, else [-1, 1]^2), a box ``[umin, umax, vmin, vmax]``
    or polygon vertices ``(m, 2)`` (either orientation, must be convex).
    """
    if domain is None:
        anchors = slice_.anchors
        domain = box_domain(slice_, slice_.to_input(anchors) if len(anchors) >= 2 else None)
    d = np.asarray(domain, dtype=np.float64)
    if d.ndim == 1:
        if d.shape[0] != 4:
            raise SplineAtlasError(f"a 2D box domain is [umin, umax, vmin, vmax]; got {d.shape[0]} numbers.")
        u0, u1, v0, v1 = d
        if not (u1 > u0 and v1 > v0) or not np.all(np.isfinite(d)):
            raise SplineAtlasError(f"the domain box {d.tolist()} is empty or not finite; give umin < umax and vmin < vmax.")
        return np.array([[u0, v0], [u1, v0], [u1, v1], [u0, v1]])
    if d.ndim != 2 or d.shape[1] != 2 or d.shape[0] < 3 or not np.all(np.isfinite(d)):
        raise SplineAtlasError("a polygon domain needs at least 3 finite (u, v) vertices.")
    e = np.roll(d, -1, axis=0) - d
    cr = e[:, 0] * np.roll(e, -1, axis=0)[:, 1] - e[:, 1] * np.roll(e, -1, axis=0)[:, 0]
    scale = np.abs(e).max() ** 2
    if np.all(cr <= 1e-12 * scale):
        d, cr = d[::-1].copy(), -cr
    if np.any(cr < -1e-12 * scale) or cr.sum() <= 0:
        raise SplineAtlasError("the domain polygon must be convex (and not degenerate); use its convex hull.")
    return d


def domain_box3(slice_: Slice, domain) -> np.ndarray:
    """Normalise a 3D domain to a box ``[umin, umax, vmin, vmax, wmin, wmax]`` (6,) float64."""
    if domain is None:
        anchors = slice_.anchors
        domain = box_domain(slice_, slice_.to_input(anchors) if len(anchors) >= 2 else None)
    d = np.asarray(domain, dtype=np.float64).reshape(-1)
    if d.shape[0] != 6 or not np.all(np.isfinite(d)) or not np.all(d[1::2] > d[0::2]):
        raise SplineAtlasError(f"a 3D domain is a box [umin, umax, vmin, vmax, wmin, wmax] with min < max; got {d.tolist()}.")
    return d


def layer_summaries(net: Network) -> tuple[LayerSummary, ...]:
    return tuple(LayerSummary(li.index, li.kind, li.width) for li in net.layer_infos)


class EngineNet:
    """The parts of a Network the engine needs, with its layers copied to ``dtype`` on ``device``."""

    def __init__(self, network: Network, dtype, device):
        p = next(network.layers.parameters(), None)
        same = p is None or (p.dtype == dtype and p.device == device)
        if same:
            self.layers = network.layers
        else:
            self.layers = copy.deepcopy(network.layers).to(device=device, dtype=dtype)
            self.layers.requires_grad_(False)  # only input gradients are ever taken (slope norms)
        self.layers.eval()
        self.layer_infos = network.layer_infos
        self.input_shape = network.input_shape
        self.input_dim = network.input_dim


def prepare(network: Network, slice_: Slice, device, dtype=torch.float64):
    """Check the network and slice, copy the layers to ``dtype`` on ``device``, and give the one region of
    depth 0: the slice's affine map ``X0 (1, k+1, *input_shape)`` (origin, then the basis rows)."""
    if not isinstance(network, Network):
        raise SplineAtlasError("tessellate needs a geometry.networks.network.Network (load one with open_run/load_checkpoint).")
    network.require_piecewise_affine("exact tessellation")
    if slice_.ambient_dim != network.input_dim:
        raise SplineAtlasError(
            f"the slice lives in R^{slice_.ambient_dim} but the network takes {network.input_dim} inputs; make the slice from this network's data."
        )
    dev = resolve_device(device)
    net = EngineNet(network, dtype, dev)
    k = slice_.dim
    X0 = torch.empty(1, k + 1, network.input_dim, dtype=dtype, device=dev)
    X0[0, 0] = torch.as_tensor(slice_.origin, dtype=dtype, device=dev)
    X0[0, 1:] = torch.as_tensor(slice_.basis.T, dtype=dtype, device=dev)
    return net, dev, X0.reshape(1, k + 1, *network.input_shape)


def layer_lines(module: nn.Module, X: torch.Tensor) -> torch.Tensor:
    """The cut hyperplanes of one nonlinearity on each region: ``H (R, k+1, n)``, hyperplane j having
    value ``H[r, 0, j] + sum_i H[r, 1+i, j] u_i``.

    ReLU/LeakyReLU/Abs: one per neuron (its pre-activation). MaxPool2d: the pairwise differences of the
    members of each pooling window.
    """
    R, k1 = X.shape[:2]
    if isinstance(module, nn.MaxPool2d):
        C, H, W = X.shape[2:]
        pairs = maxpool_pairs(module, C, H, W, X.device)
        flat = X.reshape(R, k1, -1)
        h = flat[:, :, pairs[:, 0]] - flat[:, :, pairs[:, 1]]
    else:
        h = X.reshape(R, k1, -1)
    return h


def num_lines(module: nn.Module, X: torch.Tensor) -> int:
    """How many cut lines :func:`layer_lines` gives each region (without computing them)."""
    if isinstance(module, nn.MaxPool2d):
        C, H, W = X.shape[2:]
        return int(maxpool_pairs(module, C, H, W, "cpu").shape[0])
    return int(X[0, 0].numel()) if X.shape[0] else 0


def layer_pattern(module: nn.Module, X: torch.Tensor, interior: torch.Tensor) -> torch.Tensor:
    """Pattern of a nonlinearity on each region from an interior point ``(R, k)``: (R, w) bool or int64."""
    R, k1 = X.shape[:2]
    h = X[:, 0].clone()
    view = (R,) + (1,) * (X.dim() - 2)
    for i in range(k1 - 1):
        h.addcmul_(interior[:, i].view(view), X[:, 1 + i])
    if isinstance(module, nn.MaxPool2d):
        _, idx = torch.nn.functional.max_pool2d(h, module.kernel_size, module.stride, module.padding, module.dilation, module.ceil_mode, return_indices=True)
        return idx.reshape(R, -1)
    return h.reshape(R, -1) > 0


ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, Abs)  # one cut line per unit, the pattern is (pre-activation > 0)
PATTERN_SLICE_ENTRIES = 1 << 20  # (pair, piece) entries evaluated at a time by children_pattern


class ChildPattern(NamedTuple):
    """:func:`children_pattern`: the pattern (R', w) and the (piece, unit) entries where it differs from the
    piece's region's centre sign."""

    pattern: torch.Tensor
    changed_piece: torch.Tensor
    changed_unit: torch.Tensor


def children_pattern(X: torch.Tensor, owner: torch.Tensor, interior: torch.Tensor, crossings) -> ChildPattern:
    """The pattern of an elementwise nonlinearity (:data:`ELEMENTWISE`) on the pieces its lines cut from
    the regions of ``X (R, k+1, *shape)``, exactly :func:`layer_pattern` of ``X[owner]`` at ``interior``,
    without gathering the maps of every piece: a line that stays beyond eps of a region's bounding ball
    has its sign at the region's centre on all of it (``crossings.side``, from the crossing table), and
    only the pairs the ball test kept (``near_r``, ``near_n``) are evaluated, at each piece's interior
    point, with the same arithmetic as :func:`layer_pattern`."""
    R, k1 = X.shape[:2]
    dev = X.device
    pattern = crossings.side.index_select(0, owner)
    near_r, near_n = crossings.near_r, crossings.near_n
    if near_r.numel() == 0:
        none = owner.new_zeros(0)
        return ChildPattern(pattern, none, none)
    # every (near pair, piece of that pair's region), in slices of the pairs: the pieces of a region are
    # grouped by a stable sort; each slice's index and value tensors stay under PATTERN_SLICE_ENTRIES
    per_region = torch.bincount(owner, minlength=R)
    first_piece = torch.cumsum(per_region, 0) - per_region
    by_region = torch.argsort(owner, stable=True)
    m = per_region.index_select(0, near_r)
    ends = torch.cumsum(m, 0)
    flat = X.reshape(R, k1, -1)
    pieces, units = [], []
    lo = 0
    while lo < near_r.shape[0]:
        reach = int(ends[lo - 1]) if lo else 0
        hi = max(lo + 1, int(torch.searchsorted(ends, reach + PATTERN_SLICE_ENTRIES, right=True)))
        r, u, mm = near_r[lo:hi], near_n[lo:hi], m[lo:hi]
        pair = torch.repeat_interleave(torch.arange(r.shape[0], device=dev), mm)
        within = torch.arange(pair.shape[0], device=dev) - (torch.cumsum(mm, 0) - mm).index_select(0, pair)
        piece = by_region.index_select(0, first_piece.index_select(0, r).index_select(0, pair) + within)
        maps = flat[r, :, u].index_select(0, pair)  # (T, k+1): each pair's line
        h = maps[:, 0].clone()
        for i in range(k1 - 1):
            h.addcmul_(interior[:, i].index_select(0, piece), maps[:, 1 + i])
        unit, new = u.index_select(0, pair), h > 0
        changed = new != pattern[piece, unit]
        pattern[piece, unit] = new
        pieces.append(piece[changed])
        units.append(unit[changed])
        lo = hi
    return ChildPattern(pattern, torch.cat(pieces), torch.cat(units))
