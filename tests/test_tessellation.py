"""Exact 2D tessellation: invariants checked against forward passes and independent brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from geometry.networks.datasets import builtin_dataset
from geometry.errors import BudgetExceededError, CancelledError, NotPiecewiseAffineError, SplineAtlasError
from geometry.networks.network import Network
from geometry.slices import Slice
from geometry.networks.spec import digits_cnn_spec, mlp_spec, validate_spec
from geometry.tessellation import Tessellation2D, has_slope_norms, region_slope_norms, tessellate, tessellate_all_depths, with_slope_norms

BOX = [-1.0, 1.0, -1.0, 1.0]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _train(net: Network, X: np.ndarray, y: np.ndarray, steps: int = 300, seed: int = 0) -> Network:
    torch.manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    Xt, yt = torch.tensor(X, dtype=torch.float32), torch.tensor(y)
    for _ in range(steps):
        opt.zero_grad()
        out = net(Xt)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(out[:, 0], yt.float()) if out.shape[1] == 1 else torch.nn.functional.cross_entropy(out, yt)
        loss.backward()
        opt.step()
    return net.eval()


def _net(widths, seed=0, activation="relu"):
    torch.manual_seed(seed)
    return Network(mlp_spec(widths, activation=activation))


@pytest.fixture(scope="module")
def trained3():
    """A 2-16-16-3 MLP trained briefly on 3-arm spirals (scaled into [-1, 1]^2)."""
    ds = builtin_dataset("spirals", n=300, seed=1)
    X = ds.X_train / np.abs(ds.X_train).max()
    return _train(_net([2, 16, 16, 3], seed=3), X, ds.y_train, steps=200)


def _dist_to_edges(t: Tessellation2D, u: np.ndarray) -> np.ndarray:
    seg = t.edges()
    a, b = seg[:, 0], seg[:, 1]
    ab = b - a
    L2 = np.maximum((ab * ab).sum(1), 1e-300)
    d = np.full(len(u), np.inf)
    for i in range(0, len(u), 256):
        p = u[i : i + 256, None, :]
        s = np.clip(((p - a) * ab).sum(2) / L2, 0, 1)
        q = a + s[..., None] * ab
        d[i : i + 256] = np.sqrt(((p - q) ** 2).sum(2)).min(1)
    return d


def _check_patterns(t: Tessellation2D, net: Network, n: int = 3000, seed: int = 0, margin: float = 1e-7) -> int:
    rng = np.random.default_rng(seed)
    lo, hi = t.domain.min(0), t.domain.max(0)
    u = rng.uniform(lo, hi, (n, 2))
    r = t.region_of(u)
    inside_domain = r >= 0
    far = _dist_to_edges(t, u) > margin
    sel = inside_domain & far
    x = torch.tensor(t.slice.to_input(u[sel]))
    with torch.no_grad():
        tr = net.to_dtype_device(torch.float64).trace(x)
    # a neuron that is identically zero on a region reads as +-1e-16 in a float64 forward pass: within
    # tolerance everywhere, so such (point, neuron) entries are not compared (the engine says "inactive")
    for j in range(t.depth):
        got = t.pattern(j)[r[sel]]
        want = tr.patterns[j].numpy()
        if t.layers[j].kind != "maxpool2d":
            fuzzy = np.abs(tr.preactivations[j].numpy()) <= 1e-12
            got, want = got | fuzzy, want | fuzzy
        assert np.array_equal(got, want), f"layer {j}: {np.mean(np.all(got == want, 1)):.4f} of points agree"
    return int(sel.sum())


def _polygon_contains(poly: np.ndarray, pts: np.ndarray, tol: float) -> np.ndarray:
    e = np.roll(poly, -1, 0) - poly
    d = pts[:, None, :] - poly[None]
    cr = e[None, :, 0] * d[..., 1] - e[None, :, 1] * d[..., 0]
    return np.all(cr / np.linalg.norm(e, axis=1) > tol, axis=1)


def _check_tiling(t: Tessellation2D, n: int = 1500, seed: int = 1):
    areas = t.areas()
    assert np.all(areas > 0), "every polygon is counter-clockwise with positive area"
    assert areas.sum() == pytest.approx(t.domain_area(), rel=1e-9, abs=1e-12)
    # convexity: all turns left (to tolerance)
    for r in range(min(t.num_regions, 400)):
        p = t.polygon(r)
        e = np.roll(p, -1, 0) - p
        turn = e[:, 0] * np.roll(e, -1, 0)[:, 1] - e[:, 1] * np.roll(e, -1, 0)[:, 0]
        assert np.all(turn > -1e-9), f"region {r} is not convex"
    # no overlaps: a point is strictly inside at most one polygon (brute force over all polygons)
    rng = np.random.default_rng(seed)
    lo, hi = t.domain.min(0), t.domain.max(0)
    u = rng.uniform(lo, hi, (n, 2))
    inside = np.stack([_polygon_contains(p, u, 1e-9) for p in t.polygons()], 1)
    assert inside.sum(1).max() <= 1


def test_patterns_match_forward_pass_and_tile_domain(trained3):
    t = tessellate(trained3, Slice.input_plane(2), BOX)
    assert t.full_depth and t.num_regions > 50
    assert _check_patterns(t, trained3) > 2500
    _check_tiling(t)
    # logits maps are exact: evaluate on interior points
    c = t.centroids()
    want = trained3.to_dtype_device(torch.float64)(torch.tensor(c)).detach().numpy()
    got = np.einsum("rck,rk->rc", t.out_linear, c) + t.out_offset
    assert np.allclose(got, want, atol=1e-9)


@pytest.mark.parametrize("activation", ["leaky_relu", "abs"])
def test_other_activations(activation):
    net = _net([2, 12, 12, 2], seed=5, activation=activation)
    t = tessellate(net, Slice.input_plane(2), BOX)
    _check_patterns(t, net, n=1500)
    assert t.areas().sum() == pytest.approx(4.0, rel=1e-12)
    # the logit maps are the forward pass's to rounding (the slope in float64, not a float32 0.01)
    c = t.centroids()
    with torch.no_grad():
        want = net.to_dtype_device(torch.float64)(torch.tensor(c)).numpy()
    got = np.einsum("rck,rk->rc", t.out_linear, c) + t.out_offset
    assert np.abs(got - want).max() <= 1e-13 * np.abs(want).max()


def test_batchnorm_network():
    torch.manual_seed(6)
    net = Network(mlp_spec([2, 10, 10, 3], batchnorm=True))
    with torch.no_grad():  # non-trivial running statistics (eval-mode batch norm is affine)
        for m in net.layers:
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
    t = tessellate(net, Slice.input_plane(2), BOX)
    _check_patterns(t, net, n=1500)
    c = t.centroids()
    with torch.no_grad():
        want = net.to_dtype_device(torch.float64)(torch.tensor(c)).numpy()
    assert np.allclose(np.einsum("rck,rk->rc", t.out_linear, c) + t.out_offset, want, atol=1e-9)


def test_k_lines_in_general_position_give_1_plus_k_plus_k_choose_2():
    K = 12
    rng = np.random.default_rng(0)
    theta = np.linspace(0, 0.6 * np.pi, K) + 0.02 * rng.uniform(size=K)
    rad = 0.25 + 0.01 * rng.uniform(size=K)  # lines tangent to ~a circle: all crossings well inside
    net = _net([2, K, 1])
    with torch.no_grad():
        net.layers[0].weight.copy_(torch.tensor(np.stack([np.cos(theta), np.sin(theta)], 1)))
        net.layers[0].bias.copy_(torch.tensor(-rad))
    W, b = np.stack([np.cos(theta), np.sin(theta)], 1), -rad
    for i in range(K):  # the premise: every pairwise intersection lies inside the domain
        for j in range(i + 1, K):
            p = np.linalg.solve(W[[i, j]], -b[[i, j]])
            assert np.all(np.abs(p) < 1)
    t = tessellate(net, Slice.input_plane(2), BOX)
    assert t.num_regions == 1 + K + math.comb(K, 2)
    # and the edges created by layer 0 are exactly the cuts
    assert set(np.unique(t.edge_layer)) == {-1, 0}


def test_dense_sampling_agrees_with_region_count():
    net = _net([2, 6, 6, 2], seed=11)
    t = tessellate(net, Slice.input_plane(2), BOX)
    codes = np.concatenate([t.pattern(j) for j in range(t.depth)], 1)
    keys = {c.tobytes() for c in codes}
    assert len(keys) == t.num_regions, "each full-depth activation pattern is one convex region"
    g = np.linspace(-1, 1, 401)
    uu = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    tr = net.to_dtype_device(torch.float64).trace(torch.tensor(uu))
    sampled = np.concatenate([p.numpy() for p in tr.patterns], 1)
    skeys, counts = np.unique(sampled, axis=0, return_counts=True)
    assert {s.tobytes() for s in skeys} <= keys, "every sampled pattern is one of the regions"
    cell_area = (2 / 400) ** 2
    big = t.areas() > 40 * cell_area
    big_keys = {codes[r].tobytes() for r in np.nonzero(big)[0]}
    assert big_keys <= {s.tobytes() for s in skeys}, "every region larger than the sampling scale is sampled"
    # the sample counts estimate the areas
    area_of = {codes[r].tobytes(): a for r, a in enumerate(t.areas())}
    for s, c in zip(skeys, counts):
        a = area_of[s.tobytes()]
        if a > 400 * cell_area:
            assert c * cell_area == pytest.approx(a, rel=0.1)


def test_degenerate_lines_coincident_concurrent_dead_and_through_a_corner():
    W = np.array([[1, 0], [0, 1], [1, 0], [1, 1], [1, -1], [0, 0], [2, 0]], dtype=np.float64)
    b = np.array([0, 0, 0, 0, -2, -1, 0], dtype=np.float64)  # x=0, y=0, x=0 again, x+y=0, corner, dead, 2x=0
    net = _net([2, 7, 2])
    with torch.no_grad():
        net.layers[0].weight.copy_(torch.tensor(W))
        net.layers[0].bias.copy_(torch.tensor(b))
    t = tessellate(net, Slice.input_plane(2), BOX)
    assert t.num_regions == 6  # three concurrent distinct lines through the origin
    _check_tiling(t)
    _check_patterns(t, net, n=2000)
    # a tiny tolerance-scale sliver: a line just inside the domain edge must not lose area
    with torch.no_grad():
        net.layers[0].bias[4] = -2 + 1e-12
    t = tessellate(net, Slice.input_plane(2), BOX)
    assert t.areas().sum() == pytest.approx(4.0, rel=1e-12)


@pytest.mark.parametrize("seed", [0, 8, 20, 24])
def test_integer_weights_full_of_coincidences(seed):
    """Weights and biases in {-1, 0, 1}: lines through vertices, concurrent, coincident and zero neurons."""
    torch.manual_seed(seed)
    net = Network(mlp_spec([2, 6, 6, 6, 3]))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.layers:
            if isinstance(m, torch.nn.Linear):
                m.weight.copy_(torch.randint(-1, 2, m.weight.shape, generator=g).float())
                m.bias.copy_(torch.randint(-1, 2, m.bias.shape, generator=g).float())
    t = tessellate(net, Slice.input_plane(2), BOX)
    _check_tiling(t, n=300)
    assert _check_patterns(t, net, n=1000, margin=1e-6) > 500
    cell_area = Tessellation2D.areas.__get__(_CellView(t))()
    assert np.all(cell_area > 0) and cell_area.sum() == pytest.approx(4.0, rel=1e-9)


def test_all_depths_refine_and_edges_carry_their_layer(trained3):
    ts = tessellate_all_depths(trained3, Slice.input_plane(2), BOX)
    assert [t.depth for t in ts] == [1, 2]
    assert ts[0].num_regions < ts[1].num_regions
    fine, coarse = ts[1], ts[0]
    r = coarse.region_of(fine.centroids())
    assert np.array_equal(r, fine.parent)
    assert np.array_equal(fine.pattern(0), coarse.pattern(0)[fine.parent])
    for t in ts:
        assert t.areas().sum() == pytest.approx(4.0, rel=1e-12)
        assert t.edge_layer.max() == t.depth - 1
    # an edge made by layer j lies on a zero of some layer-j neuron (checked by a forward pass)
    seg = fine.edges()
    mid = seg.mean(1)
    with torch.no_grad():
        tr = trained3.to_dtype_device(torch.float64).trace(torch.tensor(mid))
    for j in (0, 1):
        on = fine.edge_layer == j
        assert np.abs(tr.preactivations[j].numpy()[on]).min(1).max() < 1e-9
    on_dom = fine.edge_layer == -1
    assert np.all(np.isclose(np.abs(mid[on_dom]).max(1), 1.0))
    # constant-class labels at partial depth agree with the full-depth classes
    const = coarse.classes >= 0
    assert const.any()
    ok = (coarse.classes[fine.parent] == fine.classes) | ~const[fine.parent]
    assert ok.all()


def test_decision_boundary_is_the_true_argmax_boundary(trained3):
    t = tessellate(trained3, Slice.input_plane(2), BOX)
    seg = t.boundary_segments
    assert seg.shape[0] > 5 and seg.shape[1:] == (2, 2)
    f = trained3.to_dtype_device(torch.float64)
    for w in (0.0, 0.25, 0.5, 0.75, 1.0):
        p = seg[:, 0] * (1 - w) + seg[:, 1] * w
        logits = f(torch.tensor(p)).detach().numpy()
        top2 = np.sort(logits, 1)[:, -2:]
        assert np.allclose(top2[:, 0], top2[:, 1], atol=1e-8), "top two logits tie on the boundary"
        c0, c1 = t.boundary_classes.T
        assert np.allclose(logits[np.arange(len(p)), c0], top2[:, 1], atol=1e-8)
        assert np.allclose(logits[np.arange(len(p)), c1], top2[:, 1], atol=1e-8)
    # either side of each segment's midpoint: the two classes
    mid = seg.mean(1)
    d = seg[:, 1] - seg[:, 0]
    nrm = np.stack([-d[:, 1], d[:, 0]], 1) / np.linalg.norm(d, axis=1, keepdims=True)
    delta = 1e-6
    a = f(torch.tensor(mid + delta * nrm)).argmax(1).numpy()
    b = f(torch.tensor(mid - delta * nrm)).argmax(1).numpy()
    assert np.all(a != b)
    assert np.all(np.sort(np.stack([a, b], 1), 1) == np.sort(t.boundary_classes, 1))
    # argmax cells: the class of the cell containing a point is the forward pass's class
    rng = np.random.default_rng(3)
    u = rng.uniform(-1, 1, (3000, 2))
    from geometry.tessellation.locate import locate_points

    cell = locate_points(t.class_cell_vertices, t.class_cell_offsets, u)
    logits = f(torch.tensor(u)).detach().numpy()
    srt = np.sort(logits, 1)
    clear = srt[:, -1] - srt[:, -2] > 1e-7
    assert np.array_equal(t.class_cell_class[cell][clear], logits.argmax(1)[clear])
    # cells tile each region
    cell_area = np.bincount(t.class_cell_region, Tessellation2D.areas.__get__(_CellView(t))(), minlength=t.num_regions)
    assert np.allclose(cell_area, t.areas(), atol=1e-12)
    assert t.class_mixed.sum() == len(np.unique(t.boundary_region))


class _CellView:
    def __init__(self, t):
        self.vertices, self.offsets = t.class_cell_vertices, t.class_cell_offsets


def test_binary_single_logit_boundary_is_the_zero_level_set():
    ds = builtin_dataset("moons", n=400, seed=2)
    X = ds.X_train / np.abs(ds.X_train).max()
    net = _train(_net([2, 10, 10, 1], seed=4), X, ds.y_train, steps=200)
    t = tessellate(net, Slice.input_plane(2), BOX)
    seg = t.boundary_segments
    assert seg.shape[0] > 3
    f = net.to_dtype_device(torch.float64)
    assert np.abs(f(torch.tensor(seg.reshape(-1, 2))).detach().numpy()).max() < 1e-9
    assert np.all(t.boundary_classes == [[0, 1]])
    c = t.centroids()
    clear = ~t.class_mixed
    assert np.array_equal(t.classes[clear], (f(torch.tensor(c)).detach().numpy()[:, 0] > 0)[clear].astype(int))


def test_slope_norm_is_the_jacobian_spectral_norm():
    net = _net([2, 8, 8, 3], seed=2)
    t = tessellate(net, Slice.input_plane(2), BOX)
    c = torch.tensor(t.centroids()[:20])
    J = torch.autograd.functional.jacobian(lambda x: net.to_dtype_device(torch.float64)(x).sum(0), c)  # (3, n, 2)
    want = torch.linalg.matrix_norm(J.permute(1, 0, 2), ord=2).numpy()
    assert np.allclose(t.slope_norm[:20], want, rtol=1e-10)


def _digits_cnn_plane():
    """A small random digits CNN, the plane through three training images and a 0.6 x 0.6 box at its corner."""
    torch.manual_seed(0)
    net = Network(digits_cnn_spec(channels=2, hidden=8))
    sl = Slice.through_points(builtin_dataset("digits").X_train[[0, 1, 2]])
    a = sl.anchors
    return net, sl, [a[:, 0].min(), a[:, 0].min() + 0.6, a[:, 1].min(), a[:, 1].min() + 0.6]


def test_cnn_slice_through_three_digit_images():
    net, sl, box = _digits_cnn_plane()
    ts = tessellate_all_depths(net, sl, box)
    t = ts[-1]
    assert len(ts) == net.depth == 3 and t.num_regions > 20
    assert t.areas().sum() == pytest.approx(0.36, rel=1e-9)
    _check_patterns(t, net, n=1500)
    # slope norm w.r.t. the FULL 64-D input (not just the slice)
    c = torch.tensor(sl.to_input(t.centroids()[:10]))
    f = net.to_dtype_device(torch.float64)
    J = torch.autograd.functional.jacobian(lambda x: f(x).sum(0), c).permute(1, 0, 2)  # (n, 10, 64)
    assert np.allclose(t.slope_norm[:10], torch.linalg.matrix_norm(J, ord=2).numpy(), rtol=1e-9)


def test_slope_norms_computed_afterwards_are_the_engines():
    """A view that skips ||A_w|| during the tessellation (slope_norm=False) and asks for them later gets the
    same numbers: all regions, a few, and on a slice of the whole input space (D == k) and of a CNN (D > k)."""
    cnn, sl, box = _digits_cnn_plane()
    for net, slice_, dom in ((cnn, sl, box), (_net([2, 8, 8, 3], seed=2), Slice.input_plane(2), BOX)):
        want = tessellate(net, slice_, dom)
        lazy = tessellate(net, slice_, dom, slope_norm=False)
        assert has_slope_norms(want) and not has_slope_norms(lazy) and np.isnan(lazy.slope_norm).all()
        filled = with_slope_norms(net, lazy)
        assert has_slope_norms(filled) and np.isnan(lazy.slope_norm).all()  # a copy: lazy is unchanged
        np.testing.assert_allclose(filled.slope_norm, want.slope_norm, rtol=1e-12)
        table = lazy.vertex_table
        assert with_slope_norms(net, lazy).vertex_table is table  # the geometry's table is not rebuilt
        some = np.array([lazy.num_regions - 1, 0, 3])
        np.testing.assert_allclose(region_slope_norms(net, lazy, some), want.slope_norm[some], rtol=1e-12)
    partial = tessellate(cnn, sl, box, depth=2)
    with pytest.raises(SplineAtlasError, match="full-depth"):
        region_slope_norms(cnn, partial)
    with pytest.raises(CancelledError):
        region_slope_norms(cnn, tessellate(cnn, sl, box, slope_norm=False), cancel=lambda: True)


def test_maxpool_and_residual_networks():
    spec = validate_spec(
        {
            "input_shape": [1, 4, 4],
            "layers": [
                {"type": "conv2d", "in_channels": 1, "out_channels": 2, "kernel_size": 3, "padding": 1},
                {"type": "maxpool2d", "kernel_size": 2},
                {"type": "flatten"},
                {
                    "type": "residual",
                    "body": [
                        {"type": "linear", "in_features": 8, "out_features": 8},
                        {"type": "relu"},
                        {"type": "linear", "in_features": 8, "out_features": 8},
                    ],
                },
                {"type": "relu"},
                {"type": "linear", "in_features": 8, "out_features": 3},
            ],
        }
    )
    torch.manual_seed(1)
    net = Network(spec)
    rng = np.random.default_rng(0)
    sl = Slice.from_directions(rng.normal(size=16), rng.normal(size=(2, 16)))
    t = tessellate(net, sl, [-2, 2, -2, 2])
    assert t.layers[0].kind == "maxpool2d" and t.pattern(0).dtype == np.int64
    assert t.areas().sum() == pytest.approx(16.0, rel=1e-12)
    _check_patterns(t, net, n=2000)


def test_convex_polygon_domain():
    net = _net([2, 10, 10, 2], seed=8)
    pent = np.array([[np.cos(a), np.sin(a)] for a in np.linspace(0, 2 * np.pi, 6)[:-1]])[::-1]  # clockwise given
    t = tessellate(net, Slice.input_plane(2), pent)
    assert t.domain_area() > 0
    assert t.areas().sum() == pytest.approx(t.domain_area(), rel=1e-12)
    _check_patterns(t, net, n=1500)
    with pytest.raises(SplineAtlasError, match="convex"):
        tessellate(net, Slice.input_plane(2), [[0, 0], [1, 0], [0.2, 0.2], [0, 1]])


def test_budget_cancel_progress_and_refusals():
    net = _net([2, 32, 32, 2], seed=0)
    with pytest.raises(BudgetExceededError, match=r"regions at layer \d of 2"):
        tessellate(net, Slice.input_plane(2), BOX, max_regions=30)
    calls = []
    tessellate(net, Slice.input_plane(2), BOX, progress=lambda f, m: calls.append(f))
    assert calls[-1] == 1.0 and calls == sorted(calls)
    with pytest.raises(CancelledError):
        tessellate(net, Slice.input_plane(2), BOX, cancel=lambda: True)
    smooth = Network(mlp_spec([2, 8, 2], activation="gelu"))
    with pytest.raises(NotPiecewiseAffineError, match="gelu"):
        tessellate(smooth, Slice.input_plane(2), BOX)
    with pytest.raises(SplineAtlasError, match="depth"):
        tessellate(net, Slice.input_plane(2), BOX, depth=3)
    partial = tessellate(net, Slice.input_plane(2), BOX, depth=1)
    assert partial.depth == 1 and np.all(partial.classes == -1) and np.isnan(partial.slope_norm).all()
    quick = tessellate(net, Slice.input_plane(2), BOX, boundary=False, slope_norm=False)
    assert np.isnan(quick.slope_norm).all() and quick.boundary_segments.shape == (0, 2, 2)
    assert quick.num_regions == tessellate(net, Slice.input_plane(2), BOX).num_regions


def test_json_export():
    net = _net([2, 6, 6, 3], seed=1)
    t = tessellate(net, Slice.input_plane(2), BOX)
    js = t.to_json()
    assert js["domain"] == t.domain.tolist() and np.allclose(js["basis"], np.eye(2))
    assert len(js["regions"]) == t.num_regions
    assert js["format"] == "splineatlas-tessellation/2"
    reg = js["regions"][0]
    assert set(reg) >= {"loop", "pattern", "class", "slope_norm"}
    assert [len(p) for p in reg["pattern"]] == [6, 6]
    points = np.array(js["points"])
    v = points[reg["loop"]]
    assert 0.5 * np.sum(v[:, 0] * np.roll(v[:, 1], -1) - np.roll(v[:, 0], -1) * v[:, 1]) > 0
    # every vertex once: the points are distinct and each region's loop is its polygon
    assert len(np.unique(points, axis=0)) == len(points) < len(t.vertices)
    for r, region in enumerate(js["regions"]):
        assert np.allclose(points[region["loop"]], t.polygon(r), atol=1e-12)
    edges = np.array(js["edges"])
    assert edges.shape == (len(js["edge_layer"]), 2) == np.array(js["edge_regions"]).shape
    assert len(js["decision_boundary"]) == len(t.boundary_segments)


def _assert_same_tessellation(ta, tb, rtol=1e-9):
    """Two tessellations of the same slice are the same up to the order of their regions: each region of
    ``tb`` (located by an interior point in ``ta``) maps to a distinct region of ``ta`` with the same
    patterns, size, class and slope norm, and the decision boundaries have the same number of pieces."""
    assert ta.num_regions == tb.num_regions
    perm = ta.region_of(tb.centroids())
    assert np.array_equal(np.sort(perm), np.arange(ta.num_regions)), "a bijection between the regions"
    for j in range(ta.depth):
        assert np.array_equal(ta.pattern(j)[perm], tb.pattern(j)), f"layer {j} patterns"
    size_a, size_b = (ta.areas(), tb.areas()) if ta.slice.dim == 2 else (ta.volumes(), tb.volumes())
    assert np.allclose(size_a[perm], size_b, rtol=rtol, atol=1e-12)
    assert np.array_equal(ta.classes[perm], tb.classes)
    if ta.full_depth:
        assert np.allclose(ta.slope_norm[perm], tb.slope_norm, rtol=1e-7)
        assert len(ta.boundary_classes) == len(tb.boundary_classes)


def test_equivalence_helper_can_fail(trained3):
    """The CPU/CUDA comparison below is not vacuous: it accepts a re-run and rejects a different net."""
    ta = tessellate(trained3, Slice.input_plane(2), BOX, device="cpu")
    _assert_same_tessellation(ta, tessellate(trained3, Slice.input_plane(2), BOX, device="cpu"))
    other = _net([2, 16, 16, 3], seed=4)
    with pytest.raises(AssertionError):
        _assert_same_tessellation(ta, tessellate(other, Slice.input_plane(2), BOX, device="cpu"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CPU vs CUDA equivalence needs a CUDA device (torch.cuda.is_available() is False)")
@pytest.mark.parametrize("dim", [2, 3])
def test_cpu_and_cuda_give_the_same_tessellation(trained3, dim):
    if dim == 2:
        net, sl, dom = trained3, Slice.input_plane(2), BOX
    else:
        net, sl, dom = _net([3, 10, 10, 3], seed=1), Slice.input_plane(3), [-1.0, 1.0] * 3
    cpu = tessellate_all_depths(net, sl, dom, device="cpu")
    gpu = tessellate_all_depths(net, sl, dom, device="cuda")
    assert gpu[-1].device.startswith("cuda") and cpu[-1].device == "cpu"
    assert [t.num_regions for t in cpu] == [t.num_regions for t in gpu]
    for tc, tg in zip(cpu, gpu):
        _assert_same_tessellation(tc, tg)


def test_small_convolutions_as_dense_matrices_are_the_convolution(monkeypatch):
    """A small conv on many regions runs as one product with its dense matrix: the same maps as the conv
    (and a conv it would not pay for, or one whose weights changed, is not served a stale matrix)."""
    import geometry.tessellation.affine as affine

    torch.manual_seed(3)
    conv = torch.nn.Conv2d(8, 16, 3, padding=1).double()
    X = torch.randn(300, 3, 8, 4, 4, dtype=torch.float64)
    dense = affine.apply_affine(conv, X)
    assert conv in affine._dense_matrices  # the dense path was taken
    monkeypatch.setattr(affine, "DENSE_CONV_MAX_RATIO", 0)
    direct = affine.apply_affine(conv, X)
    torch.testing.assert_close(dense, direct, rtol=1e-12, atol=1e-12)
    monkeypatch.undo()
    with torch.no_grad():
        conv.weight.mul_(2.0)  # new weights: the matrix is rebuilt
    torch.testing.assert_close(affine.apply_affine(conv, X)[:, 1:], 2 * direct[:, 1:], rtol=1e-12, atol=1e-12)


def _cut_squares(seed: int, R: int = 40, n: int = 24):
    """Unit squares cut by n random lines each (most crossing), with a zero line, constant lines, a line
    through a vertex and one along an edge: ``(X, crossings, owner, interior)``."""
    from geometry.tessellation import planar
    from geometry.tessellation.engine import _interior_points

    g = torch.Generator().manual_seed(seed)
    eps = 1e-9
    corner = torch.rand(R, 1, 2, generator=g, dtype=torch.float64) * 4
    square = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
    V = (corner + square).contiguous()
    E = torch.full((R, 4), -1, dtype=torch.int16)
    cnt = torch.full((R,), 4)
    X = torch.randn(R, 3, n, generator=g, dtype=torch.float64)
    X[:, 0] -= X[:, 1] * (corner[:, 0, :1] + 0.5) + X[:, 2] * (corner[:, 0, 1:] + 0.5)  # most lines cross
    X[:, :, 0] = 0.0  # a zero line
    X[:, 1:, 1] = 0.0  # constant lines
    X[:, 0, 2] = -(X[:, 1, 2] * V[:, 0, 0] + X[:, 2, 2] * V[:, 0, 1])  # through a vertex
    X[:, 1, 3], X[:, 2, 3], X[:, 0, 3] = 0.0, 1.0, -V[:, 0, 1]  # along the bottom edge
    crossings = planar.crossing_table(V, cnt, X, eps, sides=True)
    V2, E2, cnt2, owner = planar.subdivide(V, E, cnt, X, eps, 0, crossings=crossings)
    assert V2.shape[0] > 2 * R  # the lines did cut
    return X, crossings, owner, _interior_points(V2, cnt2)


@pytest.mark.parametrize("module", [torch.nn.ReLU(), torch.nn.LeakyReLU(0.1), "abs"], ids=["relu", "leaky", "abs"])
def test_a_linear_layer_on_not_yet_gathered_pieces_is_the_gathered_product(module):
    """After an elementwise layer the engine applies the next Linear to the regions once and corrects the
    entries whose pattern changed; it must equal gathering, masking and multiplying every piece."""
    from geometry.networks.spec import Abs
    from geometry.tessellation.affine import Activated, activate, apply_affine
    from geometry.tessellation.prepare import children_pattern

    module = Abs() if module == "abs" else module
    X, crossings, owner, interior = _cut_squares(3)
    child = children_pattern(X, owner, interior, crossings)
    assert child.changed_piece.numel() > 0
    torch.manual_seed(0)
    linear = torch.nn.Linear(X.shape[2], 7).double()
    lazy = Activated(module, X, owner, child.pattern, crossings.side, child.changed_piece, child.changed_unit)
    want = apply_affine(linear, activate(module, X.index_select(0, owner), child.pattern))
    with torch.no_grad():
        assert torch.equal(lazy.materialize(), activate(module, X.index_select(0, owner), child.pattern))
        got = lazy.linear(linear)
    assert (got - want).abs().max() <= 1e-14 * want.abs().max()
    lazy = Activated(module, X, owner, child.pattern, crossings.side, child.changed_piece, child.changed_unit)
    lazy.GATHER_BYTES = 5 * X[0].numel() * X.element_size()  # five pieces a slice
    with torch.no_grad():
        sliced = lazy.gathered_linear(linear)
    assert sliced.shape == want.shape and (sliced - want).abs().max() <= 1e-14 * want.abs().max()


@pytest.mark.parametrize("seed,slice_entries", [(0, 1 << 20), (1, 1 << 20), (1, 7)])
def test_children_pattern_is_the_pattern_of_every_piece_s_own_maps(seed, slice_entries, monkeypatch):
    """The engine reads a layer's pattern on the pieces from the crossing table's centre signs plus the
    lines near each region; it must equal the pattern evaluated on each piece's gathered maps, on regions
    with lines through vertices, lines along edges, constant and zero lines."""
    from geometry.tessellation.prepare import children_pattern, layer_pattern

    import geometry.tessellation.prepare as prepare

    monkeypatch.setattr(prepare, "PATTERN_SLICE_ENTRIES", slice_entries)  # 7: many slices of the pairs
    X, crossings, owner, interior = _cut_squares(seed)
    module = torch.nn.ReLU()
    expected = layer_pattern(module, X.index_select(0, owner), interior)
    assert torch.equal(children_pattern(X, owner, interior, crossings).pattern, expected)
