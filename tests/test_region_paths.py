"""Fawzi region paths (Algorithm 1) and the convex-combination experiment, on nets with known regions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geometry.networks.datasets import builtin_dataset
from geometry.errors import DatasetError
from geometry.networks.network import Network
from geometry.boundary.region_paths import convex_combination_probability, find_region_path
from geometry.networks.spec import mlp_spec, validate_spec


def _diamond_net():
    """Class 0 outside the diamond |x| + |y| < 1 (a non-convex region), class 1 inside."""
    net = Network(
        validate_spec(
            {
                "input_shape": [2],
                "layers": [{"type": "linear", "in_features": 2, "out_features": 2}, {"type": "abs"}, {"type": "linear", "in_features": 2, "out_features": 2}],
            }
        )
    ).to_dtype_device(torch.float64)
    with torch.no_grad():
        net.layers[0].weight.copy_(torch.eye(2, dtype=torch.float64))
        net.layers[0].bias.zero_()
        net.layers[2].weight.copy_(torch.tensor([[1.0, 1.0], [0.0, 0.0]], dtype=torch.float64))
        net.layers[2].bias.copy_(torch.tensor([-1.0, 0.0], dtype=torch.float64))
    return net


def _outside(P):
    return np.abs(P).sum(1) > 1


def test_region_path_goes_around_the_hole():
    net = _diamond_net()
    x1, x2 = np.array([2.0, 0.35]), np.array([-1.9, 0.25])
    paper = find_region_path(net, x1, x2, samples_per_segment=32, max_depth=8, margin=0.0)  # minimal projections
    assert not paper.success and "budget" in paper.message  # stalls at the hole's corner (0, 1)
    assert _outside(paper.anchors).all()
    rp = find_region_path(net, x1, x2, samples_per_segment=32, margin=0.25)
    assert rp.success and rp.label == 0 and rp.projections >= 1
    assert len(rp.anchors) > 2
    np.testing.assert_allclose(rp.anchors[0], x1)
    np.testing.assert_allclose(rp.anchors[-1], x2)
    assert _outside(rp.anchors).all()
    dense = rp.sample(per_segment=400)  # 12× the resolution the search checked
    assert _outside(dense).all()
    with torch.no_grad():
        assert (net(torch.as_tensor(dense)).argmax(1) == 0).all()
    # the straight segment is not valid, so the path must be longer than it
    assert rp.length > np.linalg.norm(x2 - x1)


def test_region_path_straight_when_convex_and_errors():
    net = _diamond_net()
    rp = find_region_path(net, [0.1, 0.2], [-0.3, 0.1])  # inside the convex diamond
    assert rp.success and len(rp.anchors) == 2 and rp.projections == 0
    with pytest.raises(DatasetError):
        find_region_path(net, [0.0, 0.1], [3.0, 3.0])  # different classes
    rp0 = find_region_path(net, [2.0, 0.35], [-1.9, 0.25], max_depth=0)
    assert not rp0.success and "budget" in rp0.message


def test_region_path_on_a_trained_spiral_net_keeps_the_class():
    torch.manual_seed(0)
    ds = builtin_dataset("spirals", n=600, seed=0)
    net = Network(mlp_spec([2, 32, 32, 3]))
    X, y = torch.as_tensor(ds.X_train), torch.as_tensor(ds.y_train)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(300):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(X), y).backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    net.eval()
    with torch.no_grad():
        pred = net(X).argmax(1).numpy()
    cls = np.flatnonzero(pred == 0)
    a, b = ds.X_train[cls[0]], ds.X_train[cls[np.argmax(np.linalg.norm(ds.X_train[cls] - ds.X_train[cls[0]], axis=1))]]
    rp = find_region_path(net, a, b, max_depth=12)
    assert rp.success, rp.message
    with torch.no_grad():
        lab = net(torch.as_tensor(rp.sample(200), dtype=torch.float32)).argmax(1)
    assert (lab == rp.label).float().mean() > 0.999


def test_convex_combinations_convex_vs_nonconvex_region():
    net = _diamond_net()
    rng = np.random.default_rng(0)
    ang = rng.uniform(0, 2 * np.pi, 400)
    ring = np.stack([np.cos(ang), np.sin(ang)], 1) * 1.5  # outside: class 0
    core = rng.uniform(-0.35, 0.35, (200, 2))  # inside: class 1 (convex)
    res = convex_combination_probability(net, np.concatenate([ring, core]), ks=(1, 2, 5, 10), samples=2000, dtype=torch.float64)
    assert res.per_class[:, 1] == pytest.approx(1.0)  # convex class: always kept
    outer = res.per_class[:, 0]
    assert outer[0] == 1.0 and outer[1] < 0.95 and outer[3] < outer[1]
    # closed form check for k = 1 mixtures is trivial; for k = 2 compare to a direct Monte Carlo
    i, j = rng.integers(0, 400, (2, 20000))
    w = rng.uniform(size=20000)[:, None]
    mc = _outside(w * ring[i] + (1 - w) * ring[j]).mean()
    assert outer[1] == pytest.approx(mc, abs=0.04)
