"""Local complexity (orthoplex frame) and exact square region counts, against independent brute force."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geometry.errors import CancelledError, DatasetError, SplineAtlasError
from geometry.local_complexity import (
    count_polygons_in_squares,
    local_complexity,
    local_complexity_loop,
    orthoplex_directions,
    sample_boundary_points,
    square_region_counts,
)
from geometry.networks.network import Network
from geometry.slices import Slice
from geometry.networks.spec import digits_cnn_spec, mlp_spec
from geometry.tessellation import tessellate, tessellate_all_depths


def _net(widths, seed=0, activation="relu"):
    torch.manual_seed(seed)
    net = Network(mlp_spec(widths, activation=activation, negative_slope=0.1))
    with torch.no_grad():
        for m in net.layers:
            if isinstance(m, torch.nn.Linear):
                m.bias.normal_(0, 0.5)
    return net.eval()


def test_frame_is_orthonormal_and_identity_in_2d():
    assert np.array_equal(orthoplex_directions(2, 16), np.eye(2))
    V = orthoplex_directions(64, 10, seed=3)
    assert V.shape == (10, 64)
    assert np.allclose(V @ V.T, np.eye(10), atol=1e-12)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "abs"])
def test_batched_equals_per_point_loop(activation):
    net = _net([5, 12, 10, 3], activation=activation)
    X = np.random.default_rng(0).normal(size=(40, 5))
    a = local_complexity(net, X, radius=0.3, dims=4, seed=1, max_vertices_per_batch=50)  # several chunks
    b = local_complexity_loop(net, X, radius=0.3, dims=4, seed=1)
    assert a.per_layer.shape == (net.depth, 40)
    assert np.array_equal(a.per_layer, b.per_layer)
    assert np.array_equal(a.total, a.per_layer.sum(0))
    assert a.total.max() > 0 and a.total.min() >= 0


def test_maxpool_cnn_batched_equals_loop():
    torch.manual_seed(0)
    net = Network(digits_cnn_spec()).eval()
    X = np.random.default_rng(1).random((3, 64))
    a = local_complexity(net, X, radius=0.2, dims=2)
    b = local_complexity_loop(net, X, radius=0.2, dims=2)
    assert np.array_equal(a.per_layer, b.per_layer)
    assert a.per_layer.shape == (net.depth, 3)


def test_first_layer_matches_closed_form():
    """Layer 1 is affine in x: its hyperplane w.x + b = 0 meets the orthoplex hull of radius r iff
    |w.x + b| <= r max_i |w.v_i| (the dual norm of the L1 ball spanned by the frame)."""
    net = _net([6, 30, 8, 2], seed=2)
    V = orthoplex_directions(6, 4, seed=5)
    X = np.random.default_rng(2).normal(size=(200, 6))
    r = 0.4
    lc = local_complexity(net, X, radius=r, directions=V)
    W = net.layers[0].weight.detach().double().numpy()
    b = net.layers[0].bias.detach().double().numpy()
    h = X @ W.T + b
    reach = r * np.abs(W @ V.T).max(axis=1)
    expected = (np.abs(h) < reach[None]).sum(axis=1)
    assert np.array_equal(lc.per_layer[0], expected)


def test_lc_bounded_by_exact_crossings_of_the_diamond():
    """In 2D the frame hull is a diamond; tessellating it exactly gives which neurons' zero sets cross it.
    A sign change on the vertices implies a crossing (continuity), so LC <= exact, and for a small frame
    (no folding) they agree almost always."""
    net = _net([2, 10, 10, 3], seed=4)
    X = np.random.default_rng(4).uniform(-1, 1, size=(25, 2))
    r = 0.05
    lc = local_complexity(net, X, radius=r)
    agree = 0
    for i, x in enumerate(X):
        diamond = x + r * np.array([[1, 0], [0, 1], [-1, 0], [0, -1]])
        t = tessellate(net, Slice.input_plane(2), diamond)
        exact = [int(np.sum(t.pattern(l).any(0) & ~t.pattern(l).all(0))) for l in range(net.depth)]
        assert np.all(lc.per_layer[:, i] <= exact)
        agree += int(np.array_equal(lc.per_layer[:, i], exact))
    assert agree >= 22


def test_polygons_in_squares_on_a_grid():
    """A 4x4 grid of unit cells: squares around a grid node meet 4 cells, inside a cell 1, and a square
    exactly the size of a cell, aligned with it, meets only that cell (touching edges do not count)."""
    polys = [np.array([[i, j], [i + 1, j], [i + 1, j + 1], [i, j + 1]], dtype=float) for i in range(4) for j in range(4)]
    V = np.concatenate(polys)
    off = np.arange(0, 4 * 17, 4)
    C = np.array([[2.0, 2.0], [1.5, 1.5], [1.5, 1.5], [0.0, 0.0], [2.0, 1.5]])
    H = [0.1, 0.1, 0.5, 0.3, 0.7]
    got = [int(count_polygons_in_squares(V, off, C[k : k + 1], H[k])[0]) for k in range(len(C))]
    assert got == [4, 1, 1, 1, 6]


def test_square_counts_equal_direct_tessellation_and_bound_sampling():
    net = _net([2, 12, 12, 3], seed=6)
    sl = Slice.input_plane(2)
    rng = np.random.default_rng(6)
    C = rng.uniform(-0.8, 0.8, size=(6, 2))
    h = 0.12
    res = square_region_counts(net, sl, C, h)
    assert res.counts.shape == (net.depth, 6)
    assert np.all(np.diff(res.counts, axis=0) >= 0)  # deeper layers only refine
    g = np.linspace(-h, h, 121)
    uu, vv = np.meshgrid(g, g)
    close = 0
    for i, c in enumerate(C):
        direct = tessellate_all_depths(net, sl, [c[0] - h, c[0] + h, c[1] - h, c[1] + h])
        assert [len(t) for t in direct] == res.counts[:, i].tolist()
        pts = torch.as_tensor(c + np.stack([uu.ravel(), vv.ravel()], 1))
        tr = net.to_dtype_device(torch.float64).trace(pts)
        codes = np.concatenate([p.numpy() for p in tr.patterns], axis=1)
        sampled = len(np.unique(codes, axis=0))
        assert sampled <= res.counts[-1, i]
        close += int(sampled >= res.counts[-1, i] - 1)
    assert close >= 5
    assert np.allclose(res.density, res.counts / (2 * h) ** 2)


def test_square_counts_accept_precomputed_tessellations():
    net = _net([2, 8, 8, 2], seed=7)
    sl = Slice.input_plane(2)
    ts = tessellate_all_depths(net, sl, [-1, 1, -1, 1])
    C = np.array([[0.0, 0.0], [0.5, -0.5]])
    a = square_region_counts(net, sl, C, 0.2, tessellations=ts)
    b = square_region_counts(net, sl, C, 0.2)
    assert np.array_equal(a.counts, b.counts)
    assert square_region_counts(net, sl, C, 0.2, tessellations=ts, depth=1).counts.shape == (1, 2)


def test_boundary_samples_lie_on_segments():
    seg = np.array([[[0, 0], [1, 0]], [[0, 0], [0, 3]]], dtype=float)
    p = sample_boundary_points(seg, 400, seed=1)
    assert p.shape == (400, 2)
    assert np.all((np.abs(p[:, 0]) < 1e-12) | (np.abs(p[:, 1]) < 1e-12))
    assert 0.6 < np.mean(p[:, 1] > 0) < 0.9  # ~3/4 by length
    assert sample_boundary_points(np.zeros((0, 2, 2)), 5).shape == (0, 2)


def test_errors_and_cancel():
    net = _net([2, 4, 2])
    with pytest.raises(SplineAtlasError):
        local_complexity(net, np.zeros((3, 2)), radius=0.0)
    with pytest.raises(DatasetError):
        local_complexity(net, np.zeros((3, 5)))
    with pytest.raises(CancelledError):
        local_complexity(net, np.zeros((30, 2)), max_vertices_per_batch=8, cancel=lambda: True)
    with pytest.raises(SplineAtlasError):
        square_region_counts(net, Slice.input_plane(2), np.zeros((1, 2)), -1.0)
    smooth = Network(mlp_spec([2, 4, 2], activation="gelu"))
    with pytest.raises(SplineAtlasError, match="gelu|GELU|piecewise"):
        local_complexity(smooth, np.zeros((1, 2)))
