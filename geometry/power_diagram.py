"""Power-diagram centroids and radii of a network's layer-wise partition (Balestriero, Cosentino,
Aazhang & Baraniuk 2019, "The geometry of deep networks: power diagram subdivision").

Layer l (0-based; the l-th nonlinearity) with units z_{l,k} = σ(h_{l,k}), restricted to the region of
layers 0..l-1 that holds x, has affine pre-activations h_{l,k}(x) = <w_k, x> + b_k there. Its
partition of that region is the power diagram (paper eq. 2, Theorem 3) with, for each code r,
    μ_r = Σ_k [A]_{k, r_k},     rad_r = ||μ_r||² + 2 Σ_k [B]_{k, r_k},
where (A_{k,r}, B_{k,r}) is unit k's affine piece r (ReLU: (0, 0) and (w_k, b_k); leaky ReLU (ηw, ηb)
and (w, b); abs ±(w, b); max-pool: the window members' affine maps) and x's cell is
argmin_r ||x − μ_r||² − rad_r. The centroid of x's own cell is one backward pass (paper eq. 20):
    μ_l(x) = ∇_x Σ_k z_{l,k}(x),
and, since Σ_k z_{l,k}(x) = <μ_l(x), x> + Σ_k B_{k, r_k(x)} on the cell, its radius is
    rad_l(x) = ||μ_l(x)||² + 2 (Σ_k z_{l,k}(x) − <μ_l(x), x>).
(The paper's eq. 21 prints this radius with the opposite overall sign and f^(1→l) where f^(1→l−1) is
meant; Theorem 3 — used here — is the form whose argmin reproduces the forward pass, which the
tests check by brute force over all codes.)

In an orthonormal slice x = o + B u the diagram stays a power diagram with sites Bᵀ(μ − o) and radii
rad − ||(I − BBᵀ)(μ − o)||² (expand ||o + Bu − μ||²).

The per-layer distance to the nearest boundary of the layer-l subdivision (paper Fig. 5) is
min_k |h_{l,k}(x)| / ||∇_x h_{l,k}(x)|| (max-pool: min over the window's other members j of
(h_max − h_j) / ||∇h_max − ∇h_j||).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from geometry.networks.torch_utils import as_tensor, module_device, prepare_model
from geometry.errors import CancelledError, NotPiecewiseAffineError, SplineAtlasError
from geometry.slices import Slice
from geometry.tessellation.affine import pool_windows

Progress = Callable[[float, str], None] | None
Cancel = Callable[[], bool] | None


# -- reaching inside the network ---------------------------------------------------------------
class _StopForward(Exception):
    """Raised by a hook once the requested layer is recorded: the rest of the forward pass is skipped."""


class _LayerTap:
    """Forward hooks on every nonlinearity of a Network: records inputs (pre) and outputs (post).

    stop_after: end the forward pass right after that layer (0-based) is recorded (``run`` returns None).
    """

    def __init__(self, model: nn.Module, stop_after: int | None = None):
        infos = getattr(model, "layer_infos", None)
        if infos is None:
            raise SplineAtlasError("power-diagram tools need a geometry.networks.network.Network (it names its layers).")
        self.model = model
        self.infos = infos
        self.stop_after = stop_after
        self.pre: list[torch.Tensor | None] = [None] * len(infos)
        self.post: list[torch.Tensor | None] = [None] * len(infos)
        self.handles = []
        for li in infos:
            mod = model.layers.get_submodule(li.path)
            self.handles.append(mod.register_forward_hook(self._hook(li.index)))

    def _hook(self, i):
        def fn(module, inp, out):
            self.pre[i] = inp[0]
            self.post[i] = out
            if i == self.stop_after:
                raise _StopForward

        return fn

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()

    def run(self, x: torch.Tensor):
        """x: (N, D) flat; returns logits (None when stopped early) and fills ``pre``/``post``."""
        try:
            return self.model(x)
        except _StopForward:
            return None


def _check_layers(model, layers) -> list[int]:
    L = len(model.layer_infos)
    if L == 0:
        raise SplineAtlasError("this network has no nonlinearity, so no layer-wise partition.")
    if layers is None:
        layers = list(range(L))
    elif isinstance(layers, (int, np.integer)):
        layers = [int(layers)]
    layers = [int(l) for l in layers]
    for l in layers:
        if not 0 <= l < L:
            raise SplineAtlasError(f"layer {l + 1} does not exist: this network has layers 1..{L}.")
    deepest = max(layers)
    bad = next((li for li in model.layer_infos[: deepest + 1] if not li.piecewise_linear), None)
    if bad is not None:
        raise NotPiecewiseAffineError(
            f"power diagrams need piecewise-linear layers up to layer {deepest + 1}, but layer {bad.index + 1} "
            f"({bad.path}) is {bad.kind}; pick an earlier layer or a piecewise-affine network."
        )
    return layers


# -- centroids and radii of x's own cell -------------------------------------------------------
@dataclass(frozen=True)
class Centroids:
    """Power-diagram centroid and radius of the cell holding each point, per requested layer.

    layers: tuple of 0-based layer indices (len L'). centroids: (L', N, D) float64 — μ_l(x) (paper
    eq. 20), images of ``input_shape`` for image data. radii: (L', N) float64 — rad_l(x) (Theorem 3).
    input_shape: the network's input shape, to view a centroid as an image.
    """

    layers: tuple[int, ...]
    centroids: np.ndarray
    radii: np.ndarray
    input_shape: tuple[int, ...]

    def images(self, layer_pos: int) -> np.ndarray:
        """(N, *input_shape) the centroids of ``self.layers[layer_pos]`` shaped like the inputs."""
        return self.centroids[layer_pos].reshape(-1, *self.input_shape)

    def power(self, x: np.ndarray, layer_pos: int) -> np.ndarray:
        """(N,) Laguerre distance ||x − μ||² − rad of each point to its own site."""
        d = np.asarray(x, dtype=np.float64) - self.centroids[layer_pos]
        return np.einsum("nd,nd->n", d, d) - self.radii[layer_pos]


def centroids(
    net: nn.Module, x, layers=None, *, dtype: torch.dtype = torch.float64, device=None, batch_size: int = 4096, progress: Progress = None, cancel: Cancel = None
) -> Centroids:
    """μ_l(x) = ∇_x Σ_k z_{l,k}(x) and rad_l(x) for every point and requested layer (0-based).

    x: (N, D) or (D,). One forward pass per chunk and one backward pass per layer (the points are
    independent, so the gradient of the batch sum is every point's own gradient). Layers up to the
    deepest requested one must be piecewise-linear (else NotPiecewiseAffineError).
    """
    model = prepare_model(net, dtype, device)
    layers = _check_layers(model, layers)
    X = as_tensor(x, dtype, module_device(model))
    n, D = X.shape
    if D != model.input_dim:
        raise SplineAtlasError(f"points have {D} coordinates but the network takes {model.input_dim} inputs.")
    mus = np.zeros((len(layers), n, D))
    rads = np.zeros((len(layers), n))
    with _LayerTap(model, stop_after=max(layers)) as tap:
        for s in range(0, n, batch_size):
            if cancel is not None and cancel():
                raise CancelledError("centroid computation was cancelled.")
            e = min(n, s + batch_size)
            xb = X[s:e].clone().requires_grad_(True)
            tap.run(xb)
            for j, l in enumerate(layers):
                z = tap.post[l].reshape(e - s, -1).sum(1)  # (m,)
                (mu,) = torch.autograd.grad(z.sum(), xb, retain_graph=j + 1 < len(layers))
                mu = mu.detach()
                rad = (mu * mu).sum(1) + 2.0 * (z.detach() - (mu * xb.detach()).sum(1))
                mus[j, s:e] = mu.to("cpu", torch.float64).numpy()
                rads[j, s:e] = rad.to("cpu", torch.float64).numpy()
            if progress is not None:
                progress(e / n, f"centroids {e}/{n} points")
    return Centroids(tuple(layers), mus, rads, tuple(model.input_shape))


# -- the layer's affine map on x's region ------------------------------------------------------
@dataclass(frozen=True)
class LayerAffine:
    """Layer l's pre-activations restricted to the region of layers 0..l-1 holding each point.

    weight: (N, K, D) float64 — ∇_x h_{l,k}(x) (rows w_k = (W_l A)_k); bias: (N, K) float64 — b_k =
    h_k(x) − <w_k, x>; pre: (N, K) float64 — h_{l,k}(x). For a max-pool layer the "units" are the pool's
    INPUT entries (C·H·W of them), whose maxima over windows the layer outputs.
    """

    layer: int
    weight: np.ndarray
    bias: np.ndarray
    pre: np.ndarray


def _pre_fn(model, l):
    """x (D,) -> layer l's pre-activations, flattened (K,)."""

    def f(xs):
        with _LayerTap(model, stop_after=l) as tap:
            tap.run(xs[None])
            return tap.pre[l].reshape(-1)

    return f


def _jacobian_pre(model, X: torch.Tensor, l: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(pre (m, K), jac (m, K, D)) of layer l's pre-activations at the points X (m, D)."""
    f = _pre_fn(model, l)
    with torch.no_grad():
        with _LayerTap(model, stop_after=l) as tap:
            tap.run(X)
            pre = tap.pre[l].reshape(X.shape[0], -1)
    K, D = pre.shape[1], X.shape[1]
    jac_fn = torch.func.jacfwd(f) if D <= K else torch.func.jacrev(f)
    jac = torch.func.vmap(jac_fn)(X)
    return pre, jac.reshape(X.shape[0], K, D)


def _pre_grad_norms(model, X: torch.Tensor, l: int, chunk: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """(pre (m, K), ||∇_x h_k|| (m, K)) without materialising the (m, K, D) Jacobian: forward-mode JVPs
    along the input axes, ``chunk`` axes at a time (vmapped), accumulating squared partial derivatives."""
    m, D = X.shape

    def f(xb):
        with _LayerTap(model, stop_after=l) as tap:
            tap.run(xb)
            return tap.pre[l].reshape(xb.shape[0], -1)

    with torch.no_grad():
        pre = f(X)
    sq = torch.zeros_like(pre)
    eye = torch.eye(D, dtype=X.dtype, device=X.device)
    for s in range(0, D, chunk):
        dirs = eye[s : s + chunk][:, None, :].expand(-1, m, D)  # (c, m, D)
        cols = torch.func.vmap(lambda v: torch.func.jvp(f, (X,), (v,))[1])(dirs)  # (c, m, K)
        sq += (cols * cols).sum(0)
    return pre, sq.sqrt()


def layer_affine(net: nn.Module, x, layer: int, *, dtype: torch.dtype = torch.float64, device=None, batch_size: int = 512) -> LayerAffine:
    """Layer ``layer``'s pre-activation affine map on each point's region (Jacobian by vmap'd autodiff)."""
    model = prepare_model(net, dtype, device)
    _check_layers(model, [layer])
    X = as_tensor(x, dtype, module_device(model))
    pres, jacs = [], []
    for s in range(0, X.shape[0], batch_size):
        pre, jac = _jacobian_pre(model, X[s : s + batch_size], layer)
        pres.append(pre)
        jacs.append(jac)
    pre = torch.cat(pres).to("cpu", torch.float64).numpy()
    W = torch.cat(jacs).to("cpu", torch.float64).numpy()
    b = pre - np.einsum("nkd,nd->nk", W, X.to("cpu", torch.float64).numpy())
    return LayerAffine(layer, W, b, pre)


# -- distance to the nearest region boundary (Fig. 5) ------------------------------------------
def boundary_distances(
    net: nn.Module, x, layers=None, *, dtype: torch.dtype = torch.float64, device=None, batch_size: int = 256, progress: Progress = None, cancel: Cancel = None
) -> np.ndarray:
    """(L', N) float64 distance from each point to the nearest cut of layer l on its region (paper Fig. 5).

    d_l(x) = min_k |h_{l,k}(x)| / ||∇_x h_{l,k}(x)|| over the layer's units (units with a zero gradient
    never cut and are skipped; inf if none cuts). Max-pool layers: min over windows and members j of
    (h_max − h_j) / ||∇h_max − ∇h_j||. Exact: the region of layers 0..l-1 makes h affine near x.
    """
    model = prepare_model(net, dtype, device)
    layers = _check_layers(model, layers)
    X = as_tensor(x, dtype, module_device(model))
    n = X.shape[0]
    out = np.full((len(layers), n), np.inf)
    steps = len(layers) * ((n + batch_size - 1) // batch_size)
    done = 0
    for j, l in enumerate(layers):
        module = model.layers.get_submodule(model.layer_infos[l].path)
        for s in range(0, n, batch_size):
            if cancel is not None and cancel():
                raise CancelledError("boundary-distance computation was cancelled.")
            xb = X[s : s + batch_size]
            if isinstance(module, nn.MaxPool2d):
                pre, jac = _jacobian_pre(model, xb, l)
                d = _maxpool_distances(model, module, l, xb, pre, jac)
            else:
                pre, gn = _pre_grad_norms(model, xb, l)
                d = torch.where(gn > 0, pre.abs() / gn, torch.full_like(gn, float("inf"))).min(1).values
            out[j, s : s + xb.shape[0]] = d.to("cpu", torch.float64).numpy()
            done += 1
            if progress is not None:
                progress(done / steps, f"boundary distances, layer {l + 1}")
    return out


def _maxpool_distances(model, module, l, xb, pre, jac):
    """Distance to the nearest argmax change of any pooling window (see boundary_distances)."""
    with torch.no_grad(), _LayerTap(model, stop_after=l) as tap:
        tap.run(xb)
        shape = tap.pre[l].shape[1:]  # (C, H, W) of the pool's input
    C, H, W = shape
    members, valid, _ = pool_windows(module, H, W, xb.device)  # (P, kk) within a channel
    members = (members[None] + (torch.arange(C, device=xb.device) * H * W)[:, None, None]).reshape(-1, members.shape[1])
    valid = valid.repeat(C, 1)
    vals = pre[:, members].masked_fill(~valid, float("-inf"))  # (m, U, kk); padding never wins
    top = vals.argmax(2, keepdim=True)
    vmax = vals.gather(2, top)
    gm = jac[:, members]  # (m, U, kk, D)
    gtop = gm.gather(2, top[..., None].expand(-1, -1, 1, gm.shape[3]))
    gap = vmax - vals
    gn = (gtop - gm).norm(dim=3)
    is_top = torch.zeros_like(gap, dtype=torch.bool).scatter_(2, top, True)
    d = torch.where(~is_top & valid & (gn > 0), gap / gn, torch.full_like(gap, float("inf")))
    return d.reshape(d.shape[0], -1).min(1).values


# -- slices -------------------------------------------------------------------------------------
def project_sites(centroids_: np.ndarray, radii: np.ndarray, slice_: Slice) -> tuple[np.ndarray, np.ndarray]:
    """Restrict a power diagram of R^D to the slice x = o + B u (B orthonormal).

    centroids_: (..., D); radii: (...). Returns sites (..., k) = Bᵀ(μ − o) and radii (...) =
    rad − ||(I − BBᵀ)(μ − o)||², so that ||x(u) − μ||² − rad = ||u − site||² − radius on the slice.
    """
    d = np.asarray(centroids_, dtype=np.float64) - slice_.origin
    sites = d @ slice_.basis
    perp = d - sites @ slice_.basis.T
    return sites, np.asarray(radii, dtype=np.float64) - np.einsum("...d,...d->...", perp, perp)


@dataclass(frozen=True)
class SlicePowerDiagram:
    """Every region of a tessellated slice, every layer 0..depth-1: its power-diagram site.

    layers: tuple of 0-based layers (len L'). centroids: (L', R, D) float64 μ in input space.
    radii: (L', R) float64 rad in input space. sites: (L', R, k) float64 Bᵀ(μ − o) in slice
    coordinates. site_radii: (L', R) float64 rad − ||(I − BBᵀ)(μ − o)||².
    Region r's cell at layer l is the argmin of ||u − sites[l, s]||² − site_radii[l, s] over the
    regions s sharing r's ancestor at depth l (same parent for l = depth-1; all regions for layer 0).
    """

    layers: tuple[int, ...]
    centroids: np.ndarray
    radii: np.ndarray
    sites: np.ndarray
    site_radii: np.ndarray


def slice_power_diagram(
    net: nn.Module, tess, layers=None, *, dtype: torch.dtype = torch.float64, device=None, progress: Progress = None, cancel: Cancel = None
) -> SlicePowerDiagram:
    """Centroids and radii of every region of a tessellation (``Tessellation2D``/``3D``), projected to the slice.

    μ and rad are constant on a region for layers < tess.depth, so they are evaluated at one interior
    point per region (the polygon's area centroid; the vertex mean in 3D), batched.
    """
    depth = int(tess.depth)
    if layers is None:
        layers = list(range(depth))
    layers = [int(l) for l in ([layers] if isinstance(layers, (int, np.integer)) else layers)]
    if any(not 0 <= l < depth for l in layers):
        raise SplineAtlasError(f"the tessellation has depth {depth}: layers must be in 1..{depth}.")
    u = tess.centroids()
    x = tess.slice.to_input(u)
    c = centroids(net, x, layers, dtype=dtype, device=device, progress=progress, cancel=cancel)
    sites, srad = project_sites(c.centroids, c.radii, tess.slice)
    return SlicePowerDiagram(tuple(layers), c.centroids, c.radii, sites, srad)


def laguerre_argmin(points: np.ndarray, sites: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """(n,) index of the power-diagram cell of each point: argmin_s ||p − site_s||² − rad_s.

    points: (n, k); sites: (S, k); radii: (S,).
    """
    p = np.asarray(points, dtype=np.float64)
    s = np.asarray(sites, dtype=np.float64)
    pw = (p * p).sum(1)[:, None] - 2.0 * p @ s.T + (s * s).sum(1)[None] - np.asarray(radii)[None]
    return pw.argmin(1)


# -- Fig. 5: distance distributions per layer and per epoch ---------------------------------------
@dataclass(frozen=True)
class DistanceDistributions:
    """Distances from points to the nearest region boundary, per checkpoint and layer (paper Fig. 5).

    epochs: (E,) int64 epochs of the checkpoints used. layers: 0-based layers (len L').
    distances: (E, L', N) float64 (inf where no neuron of the layer cuts near the point).
    """

    epochs: np.ndarray
    layers: tuple[int, ...]
    distances: np.ndarray

    def log_histograms(self, bins: int = 40) -> tuple[np.ndarray, np.ndarray]:
        """(counts (E, L', bins), edges (bins+1,)) histograms of log10 distance on shared edges."""
        finite = np.isfinite(self.distances) & (self.distances > 0)
        logd = np.log10(np.where(finite, self.distances, 1.0))
        lo, hi = (logd[finite].min(), logd[finite].max()) if finite.any() else (-1.0, 0.0)
        edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
        E, L, _ = self.distances.shape
        counts = np.zeros((E, L, bins), dtype=np.int64)
        for e in range(E):
            for j in range(L):
                counts[e, j] = np.histogram(logd[e, j][finite[e, j]], bins=edges)[0]
        return counts, edges


def distance_distributions(
    run, x, layers=None, epochs=None, *, dtype: torch.dtype = torch.float64, device=None, progress: Progress = None, cancel: Cancel = None
) -> DistanceDistributions:
    """:func:`boundary_distances` of the points ``x (N, D)`` at every checkpoint of a run (or the given
    epochs): how training moves the region boundaries relative to the data (paper Fig. 5)."""
    idx = list(range(len(run))) if epochs is None else [run.index_of_epoch(int(e)) for e in epochs]
    out, lay = [], None
    for n, i in enumerate(idx):
        if cancel is not None and cancel():
            raise CancelledError("distance distributions were cancelled.")
        net = run.network(i)
        lay = _check_layers(net, layers)
        out.append(boundary_distances(net, x, lay, dtype=dtype, device=device, cancel=cancel))
        if progress is not None:
            progress((n + 1) / len(idx), f"boundary distances, epoch {run.epochs[i]}")
    return DistanceDistributions(np.array([run.epochs[i] for i in idx], dtype=np.int64), tuple(lay or ()), np.stack(out) if out else np.zeros((0, 0, 0)))
