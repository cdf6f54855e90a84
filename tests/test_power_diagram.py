"""Power-diagram centroids/radii (Balestriero et al. 2019) against brute force over ALL codes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from geometry.errors import NotPiecewiseAffineError, SplineAtlasError
from geometry.networks.network import Network
from geometry.power_diagram import boundary_distances, centroids, distance_distributions, laguerre_argmin, layer_affine, project_sites, slice_power_diagram
from geometry.slices import Slice
from geometry.networks.spec import digits_cnn_spec, mlp_spec


pytestmark = pytest.mark.usefixtures("one_torch_thread")

SLOPE = {"relu": (0.0, 1.0), "leaky_relu": (0.1, 1.0), "abs": (-1.0, 1.0)}  # unit slope for code 0 / 1


def _net(widths, activation="relu", seed=0):
    torch.manual_seed(seed)
    net = Network(mlp_spec(widths, activation=activation, negative_slope=0.1)).to_dtype_device(torch.float64)
    with torch.no_grad():
        for m in net.layers:
            if isinstance(m, torch.nn.Linear):
                m.bias.normal_(0, 0.5)
    return net


def _weights(net):
    lins = [m for m in net.layers if isinstance(m, torch.nn.Linear)]
    return [(m.weight.detach().numpy(), m.bias.detach().numpy()) for m in lins]


def _brute_force(w, b, x, slopes):
    """argmin over all codes r in {0,1}^K of ||x - mu_r||^2 - rad_r with MAS pieces (s_r w_k, s_r b_k).

    w: (K, D), b: (K,), x: (D,). Returns (best code (K,) bool, mu (D,), rad)."""
    K = w.shape[0]
    best = None
    for code in itertools.product([0, 1], repeat=K):
        s = np.array([slopes[c] for c in code])
        mu = s @ w
        rad = mu @ mu + 2 * s @ b
        val = (x - mu) @ (x - mu) - rad
        if best is None or val < best[0]:
            best = (val, np.array(code, dtype=bool), mu, rad)
    return best[1:]


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "abs"])
def test_layer1_argmin_over_all_codes_is_the_forward_pattern(activation):
    net = _net([3, 6, 4, 2], activation)
    (W1, b1), _, _ = _weights(net)
    x = np.random.default_rng(1).normal(size=(25, 3))
    pat = net.trace(torch.as_tensor(x)).patterns[0].numpy()
    c = centroids(net, x, layers=[0])
    for i in range(len(x)):
        code, mu, rad = _brute_force(W1, b1, x[i], SLOPE[activation])
        assert np.array_equal(code, pat[i])
        assert np.allclose(c.centroids[0, i], mu, atol=1e-12)
        assert c.radii[0, i] == pytest.approx(rad, abs=1e-10)


def test_deeper_layer_restricted_to_region_matches_brute_force():
    net = _net([3, 5, 5, 4, 2])
    (W1, b1), (W2, b2), (W3, b3), _ = _weights(net)
    x = np.random.default_rng(2).normal(size=(20, 3))
    tr = net.trace(torch.as_tensor(x))
    c = centroids(net, x)  # all three layers at once
    la = layer_affine(net, x, 2)
    for i in range(len(x)):
        p1, p2 = tr.patterns[0][i].numpy(), tr.patterns[1][i].numpy()
        # z_2(x) = A x + c on x's region of layers 1..2, written out from the weights
        A1, c1 = W1 * p1[:, None], b1 * p1
        A2, c2 = (W2 @ A1) * p2[:, None], (W2 @ c1 + b2) * p2
        for layer, (A, cc, W, b) in enumerate([(np.eye(3), np.zeros(3), W1, b1), (A1, c1, W2, b2), (A2, c2, W3, b3)]):
            w, bb = W @ A, W @ cc + b
            code, mu, rad = _brute_force(w, bb, x[i], SLOPE["relu"])
            assert np.array_equal(code, tr.patterns[layer][i].numpy()), (i, layer)
            assert np.allclose(c.centroids[layer, i], mu, atol=1e-12)
            assert c.radii[layer, i] == pytest.approx(rad, abs=1e-10)
            if layer == 2:
                assert np.allclose(la.weight[i], w, atol=1e-12) and np.allclose(la.bias[i], bb, atol=1e-12)


def test_cnn_centroid_is_the_sum_of_active_unit_gradients():
    torch.manual_seed(0)
    net = Network(digits_cnn_spec(channels=2, hidden=8)).to_dtype_device(torch.float64)
    x = np.random.default_rng(0).random((3, 64))
    c = centroids(net, x)
    assert c.centroids.shape == (3, 3, 64) and c.images(0).shape == (3, 1, 8, 8)
    for layer in range(3):
        la = layer_affine(net, x, layer)
        pos = la.pre > 0
        mu = np.einsum("nk,nkd->nd", pos.astype(float), la.weight)
        rad = np.einsum("nd,nd->n", mu, mu) + 2 * (pos * la.bias).sum(1)
        assert np.allclose(c.centroids[layer], mu, atol=1e-10)
        assert np.allclose(c.radii[layer], rad, atol=1e-9)


def _sampled_cells(net, sl, n=3000, seed=0):
    u = np.random.default_rng(seed).uniform(-2, 2, size=(n, 2))
    tr = net.trace(torch.as_tensor(sl.to_input(u)))
    return u, [p.numpy() for p in tr.patterns]


def test_slice_projected_diagram_reproduces_sampled_cells():
    net = _net([5, 6, 6, 3])
    rng = np.random.default_rng(3)
    sl = Slice.from_directions(rng.normal(size=5), rng.normal(size=(2, 5)))
    u, pats = _sampled_cells(net, sl)
    c = centroids(net, sl.to_input(u))
    sites, srad = project_sites(c.centroids, c.radii, sl)
    # one site per distinct code of layers 0..l, taken from one point of each cell
    for layer in range(2):
        key = np.concatenate(pats[: layer + 1], axis=1)
        _, first, inv = np.unique(key, axis=0, return_index=True, return_inverse=True)
        parent_key = np.concatenate(pats[:layer], axis=1) if layer else np.zeros((len(u), 0))
        for pk in np.unique(parent_key, axis=0):
            members = np.all(parent_key == pk, axis=1)
            cells = np.unique(inv[members])
            got = cells[laguerre_argmin(u[members], sites[layer, first[cells]], srad[layer, first[cells]])]
            assert np.array_equal(got, inv[members])


def test_slice_projected_diagram_reproduces_tessellation():
    engine = pytest.importorskip("geometry.tessellation.engine")
    net = _net([4, 6, 5, 3])
    rng = np.random.default_rng(4)
    sl = Slice.from_directions(rng.normal(size=4), rng.normal(size=(2, 4)))
    tess = engine.tessellate(net, sl, domain=[-2, 2, -2, 2])
    pd = slice_power_diagram(net, tess)
    assert pd.sites.shape == (2, tess.num_regions, 2)
    u = rng.uniform(-1.99, 1.99, size=(2000, 2))
    reg = tess.region_of(u)
    # layer 1 (0-based 0): the depth-1 ancestor; sites of regions with distinct layer-0 codes
    code0 = tess.pattern(0)
    _, first0, inv0 = np.unique(code0, axis=0, return_index=True, return_inverse=True)
    got0 = laguerre_argmin(u, pd.sites[0, first0], pd.site_radii[0, first0])
    assert np.array_equal(got0, inv0[reg])
    # last layer: within each parent region, argmin over its children's sites is the child
    codes = np.concatenate([tess.pattern(0), tess.pattern(1)], axis=1)
    parent = np.unique(code0, axis=0, return_inverse=True)[1]
    for i in range(0, len(u), 7):
        sib = np.nonzero(parent == parent[reg[i]])[0]
        j = sib[laguerre_argmin(u[i : i + 1], pd.sites[1, sib], pd.site_radii[1, sib])[0]]
        assert np.array_equal(codes[j], codes[reg[i]])


def test_boundary_distance_is_the_exact_inscribed_radius():
    net = _net([2, 8, 8, 3])
    x = np.random.default_rng(5).normal(size=(12, 2))
    d = boundary_distances(net, x)
    dmin = np.minimum.accumulate(d, axis=0)  # region of layers 0..l: nearest of all its cuts
    theta = np.linspace(0, 2 * np.pi, 4000, endpoint=False)
    circle = np.stack([np.cos(theta), np.sin(theta)], 1)
    for i in range(len(x)):
        p0 = [p[0].numpy() for p in net.trace(torch.as_tensor(x[i : i + 1])).patterns]
        for layer in range(2):

            def same(rho):
                pts = x[i] + rho * circle
                tr = net.trace(torch.as_tensor(pts)).patterns
                return np.all([np.all(tr[j].numpy() == p0[j], axis=1) for j in range(layer + 1)], axis=0)

            assert same(0.999 * dmin[layer, i]).all()
            assert not same(1.001 * dmin[layer, i]).all()


def test_errors():
    net = Network(mlp_spec([2, 4, 2], activation="tanh"))
    with pytest.raises(NotPiecewiseAffineError):
        centroids(net, np.zeros((1, 2)))
    with pytest.raises(SplineAtlasError):
        centroids(_net([2, 4, 2]), np.zeros((1, 2)), layers=[3])
    with pytest.raises(SplineAtlasError):
        centroids(_net([2, 4, 2]), np.zeros((1, 3)))


def test_maxpool_boundary_distance_matches_window_pairs_and_is_inscribed():
    from geometry.networks.spec import validate_spec

    spec = validate_spec(
        {
            "input_shape": [1, 4, 4],
            "num_classes": 3,
            "layers": [
                {"type": "conv2d", "in_channels": 1, "out_channels": 2, "kernel_size": 3, "padding": 1},
                {"type": "maxpool2d", "kernel_size": 2},
                {"type": "flatten"},
                {"type": "linear", "in_features": 8, "out_features": 3},
            ],
        }
    )
    torch.manual_seed(0)
    net = Network(spec).to_dtype_device(torch.float64)
    rng = np.random.default_rng(6)
    x = rng.normal(size=(6, 16))
    d = boundary_distances(net, x)[0]
    la = layer_affine(net, x, 0)  # the pool's inputs (2 x 4 x 4) and their gradients
    for i in range(len(x)):
        v = la.pre[i].reshape(2, 2, 2, 2, 2).transpose(0, 1, 3, 2, 4).reshape(2, 4, 4)  # (C, window, member)
        g = la.weight[i].reshape(2, 2, 2, 2, 2, 16).transpose(0, 1, 3, 2, 4, 5).reshape(2, 4, 4, 16)
        best = np.inf
        for c in range(2):
            for w in range(4):
                a = v[c, w].argmax()
                for j in range(4):
                    if j != a:
                        best = min(best, (v[c, w, a] - v[c, w, j]) / np.linalg.norm(g[c, w, a] - g[c, w, j]))
        assert d[i] == pytest.approx(best, rel=1e-10)
        # nothing changes inside the inscribed ball (random directions)
        u = rng.normal(size=(500, 16))
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        pats = net.trace(torch.as_tensor(x[i] + 0.999 * d[i] * u)).patterns[0].numpy()
        assert np.all(pats == net.trace(torch.as_tensor(x[i : i + 1])).patterns[0].numpy())


def test_distance_distributions_over_a_run():
    from pathlib import Path

    from geometry.networks.runs import open_run

    path = Path(__file__).resolve().parents[1] / "assets" / "runs" / "spirals"
    if not path.exists():
        pytest.skip("demo run not bundled")
    run = open_run(path)
    X = np.asarray(run.dataset.X_train[:50], dtype=np.float64)
    dd = distance_distributions(run, X, epochs=run.epochs[:2] + run.epochs[-1:])
    assert dd.distances.shape == (3, run.network(0).depth, 50)
    assert np.allclose(dd.distances[-1], boundary_distances(run.network(len(run) - 1), X))
    counts, edges = dd.log_histograms(bins=10)
    assert counts.shape == (3, dd.distances.shape[1], 10) and counts[0, 0].sum() == np.isfinite(dd.distances[0, 0]).sum()
