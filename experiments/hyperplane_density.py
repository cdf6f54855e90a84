"""The survey's Fig. 8 in miniature: where a deep network's hyperplanes lie at initialisation.

Balestriero, Humayun & Baraniuk ("the geometry of deep learning", section on batch normalisation)
initialise an 11-layer ReLU network on 2D inputs three ways -- (i) zero biases, (ii) random biases,
(iii) batch normalisation with the data's statistics -- and plot the density of the hyperplanes of
layers 3, 7 and 11 over the input plane for data with a star-shaped distribution: only batch
normalisation concentrates them where the data lie. Here the densities are exact (edge length per
unit area from the exact tessellation, :func:`geometry.tessellation.density.edge_density`), and each
configuration's *concentration* is the share of a layer's hyperplane length inside the grid cells that
hold data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from geometry.networks.network import Network
from geometry.networks.spec import parse_arch_string
from geometry.slices import Slice
from geometry.tessellation import tessellate_all_depths
from geometry.tessellation.density import EdgeDensity, edge_density

CONFIGS = ("zero bias", "random bias", "batch norm")
DOMAIN = np.array([-1.0, 1.0, -1.0, 1.0])


def star_curve_data(n: int = 2000, seed: int = 0, points: int = 5, noise: float = 0.02) -> np.ndarray:
    """(n, 2) points along the star-shaped curve r(θ) = 0.45 + 0.3 cos(points · θ), with Gaussian noise."""
    rng = np.random.default_rng(seed)
    th = rng.uniform(0, 2 * np.pi, n)
    r = 0.45 + 0.3 * np.cos(points * th)
    return np.c_[r * np.cos(th), r * np.sin(th)] + noise * rng.standard_normal((n, 2))


def initialised_network(config: str, width: int, depth: int, seed: int, X: np.ndarray) -> Network:
    """The network of ``config`` at initialisation: the same seeded random weights in every configuration;
    zero or torch's random biases; or batch norm after each hidden linear layer (γ = 1, β = 0) holding the
    data's per-unit mean and variance (one full-batch pass in training mode, as the first gradient step
    would see them), then evaluated with those statistics."""
    if config not in CONFIGS:
        raise ValueError(f"config must be one of {CONFIGS}; got {config!r}")
    torch.manual_seed(seed)
    net = Network(parse_arch_string("-".join(["2"] + [str(width)] * depth + ["2"]), "relu", config == "batch norm"))
    if config == "zero bias":
        with torch.no_grad():
            for m in net.layers.modules():
                if isinstance(m, torch.nn.Linear):
                    m.bias.zero_()
    if config == "batch norm":
        for m in net.layers.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.momentum = None  # a cumulative average: after one batch, exactly that batch's statistics
                m.reset_running_stats()
        net.layers.train()
        with torch.no_grad():
            net.layers(torch.as_tensor(X, dtype=torch.float32))
        net.layers.eval()
    return net


@dataclass(frozen=True)
class DensityExperiment:
    """densities[config][k]: the EdgeDensity of layer ``layers[k]`` (1-based); concentration[config][k]: the
    share of that layer's hyperplane length in grid cells holding data (``data_cells``: their share of
    the grid, what a uniform spread would give); regions[config]: full-depth region count."""

    layers: tuple[int, ...]
    densities: dict
    concentration: dict
    regions: dict
    data: np.ndarray
    data_cells: float
    width: int
    depth: int
    seed: int


def batchnorm_density_experiment(
    width: int = 16, depth: int = 11, seed: int = 0, grid: int = 64, layers=(3, 7, 11), n: int = 2000, max_regions: int = 2_000_000, cancel=None
) -> DensityExperiment:
    """Exact hyperplane densities of ``layers`` (1-based; clipped to ``depth``) for the three initialisations."""
    X = star_curve_data(n, seed)
    layers = tuple(sorted({min(max(int(v), 1), depth) for v in layers}))
    iu = np.clip(((X[:, 0] - DOMAIN[0]) / (DOMAIN[1] - DOMAIN[0]) * grid).astype(int), 0, grid - 1)
    iv = np.clip(((X[:, 1] - DOMAIN[2]) / (DOMAIN[3] - DOMAIN[2]) * grid).astype(int), 0, grid - 1)
    holds_data = np.zeros((grid, grid), dtype=bool)
    holds_data[iu, iv] = True
    densities, concentration, regions = {}, {}, {}
    for config in CONFIGS:
        net = initialised_network(config, width, depth, seed, X)
        by_depth = tessellate_all_depths(net, Slice.input_plane(2), DOMAIN, max_regions=max_regions, cancel=cancel)
        maps: list[EdgeDensity] = [edge_density(by_depth[layer - 1], layer - 1, grid) for layer in layers]
        densities[config] = maps
        concentration[config] = [float(m.density[holds_data].sum() / m.density.sum()) if m.density.sum() > 0 else float("nan") for m in maps]
        regions[config] = by_depth[-1].num_regions
    return DensityExperiment(layers, densities, concentration, regions, X, float(holds_data.mean()), int(width), int(depth), int(seed))


__all__ = ["CONFIGS", "DensityExperiment", "batchnorm_density_experiment", "initialised_network", "star_curve_data"]
