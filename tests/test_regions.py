"""Region toolbox (geometry/regions) against brute force and closed forms on small nets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import linprog

from geometry.errors import ArchitectureError, SplineAtlasError
from geometry.networks.network import Network
from geometry.regions import (
    active_bits,
    bisection_walk,
    boundary_distance,
    chebyshev,
    describe_region,
    dual_points,
    enumerate_regions,
    grid_dual,
    hamming,
    hamming_at_distance,
    hrep_at,
    hreps_from_patterns,
    line_walk,
    map_between,
    min_region_perturbation,
    nearest_neighbour_agreement,
    neighbours,
    patterns_of,
    region_stats,
    walk_counts,
)
from geometry.regions.affine import run_layers
from geometry.regions.lp import _normalised
from geometry.networks.spec import mlp_spec, validate_spec


def _net(widths, seed=0, activation="relu"):
    torch.manual_seed(seed)
    return Network(mlp_spec(widths, activation=activation))


def _cnn(seed=0):
    torch.manual_seed(seed)
    return Network(
        validate_spec(
            {
                "input_shape": [1, 4, 4],
                "layers": [
                    {"type": "conv2d", "in_channels": 1, "out_channels": 2, "kernel_size": 3, "padding": 1},
                    {"type": "relu"},
                    {"type": "avgpool2d", "kernel_size": 2},
                    {"type": "residual", "body": [{"type": "conv2d", "in_channels": 2, "out_channels": 2, "kernel_size": 1}]},
                    {"type": "relu"},
                    {"type": "flatten"},
                    {"type": "linear", "in_features": 8, "out_features": 3},
                ],
            }
        )
    )


@pytest.mark.parametrize(
    "make", [lambda: _net([3, 8, 8, 4]), lambda: _net([3, 8, 8, 4], activation="leaky_relu"), lambda: _net([3, 8, 8, 4], activation="abs"), _cnn]
)
def test_hrep_matches_forward_pass_inside_region(make):
    net = make()
    rng = np.random.default_rng(1)
    x = rng.standard_normal(net.input_dim)
    h = hrep_at(net, x)
    assert h.contains(x)
    # points of the same region: shrink toward x until the pattern is unchanged
    d, _ = boundary_distance(h, x)
    Y = x + 0.9 * d * rng.standard_normal((50, net.input_dim)) / np.sqrt(net.input_dim) / 3
    same = np.all(patterns_of(net, Y) == h.pattern, axis=1)
    assert same.sum() >= 10
    Y = Y[same]
    with torch.no_grad():
        n64 = net.to_dtype_device(torch.float64)
        pres, logits = run_layers(n64, torch.as_tensor(Y))
    pre = torch.cat(pres, 1).numpy()
    sgn = np.where(h.pattern, -1.0, 1.0)
    # pre-activation = G y + g with A = s' G, c = -s' g
    G, g = sgn[:, None] * h.A, -sgn * h.c
    np.testing.assert_allclose(Y @ G.T + g, pre, atol=1e-10)
    np.testing.assert_allclose(h.logits(Y), logits.numpy(), atol=1e-10)
    # a point outside the region violates A x <= c
    far = x + 3 * d * h.A[boundary_distance(h, x)[1]] / np.linalg.norm(h.A[boundary_distance(h, x)[1]])
    assert not h.contains(far)


def test_maxpool_and_smooth_nets_are_refused_clearly():
    torch.manual_seed(0)
    mp = Network(
        validate_spec(
            {
                "input_shape": [1, 4, 4],
                "layers": [
                    {"type": "conv2d", "in_channels": 1, "out_channels": 1, "kernel_size": 3, "padding": 1},
                    {"type": "maxpool2d", "kernel_size": 2},
                    {"type": "flatten"},
                    {"type": "linear", "in_features": 4, "out_features": 2},
                ],
            }
        )
    )
    with pytest.raises(ArchitectureError, match="maxpool2d"):
        hrep_at(mp, np.zeros(16))
    with pytest.raises(SplineAtlasError, match="piecewise-affine"):
        hrep_at(_net([2, 4, 2], activation="tanh"), np.zeros(2))


def _eq6_brute(h, box=None, tol=1e-9):
    """The article's eq. 6 verbatim: one LP per row over all the other rows (+ box)."""
    An, cn, valid = _normalised(h)
    D = h.dim
    bounds = [(None, None)] * D if box is None else list(zip(np.broadcast_to(box[0], D), np.broadcast_to(box[1], D)))
    act = []
    for k in np.flatnonzero(valid):
        others = valid.copy()
        others[k] = False
        A_ub = np.vstack([An[others], An[k]])
        b_ub = np.r_[cn[others], cn[k] + 1.0]
        res = linprog(-An[k], A_ub=A_ub, b_ub=b_ub, bounds=bounds, method="highs")
        if -res.fun > cn[k] + tol:
            act.append(k)
    return np.array(act, np.int64)


@pytest.mark.parametrize("widths,box", [([2, 12, 12, 3], None), ([2, 12, 12, 3], (-1.0, 1.0)), ([5, 10, 10, 3], None), ([4, 16, 3], (-0.5, 0.5))])
def test_active_bits_equal_eq6_lps(widths, box):
    net = _net(widths, seed=3)
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = rng.uniform(-0.4, 0.4, widths[0])
        h = hrep_at(net, x)
        a = active_bits(h, interior=x, box=box)
        np.testing.assert_array_equal(a.bits, _eq6_brute(h, box))
        np.testing.assert_array_equal(active_bits(h, interior=x, box=box, method="lp").bits, a.bits)
        # witnesses lie on their facet and inside the region
        An, cn, _ = _normalised(h)
        np.testing.assert_allclose(np.einsum("kd,kd->k", An[a.bits], a.witness), cn[a.bits], atol=1e-9)
        assert np.all(h.contains(a.witness, tol=1e-9))


def _adjacency_margin(hp, hq, k):
    """max t: a point on hyperplane k inside both regions with margin t on every other row (> 0: shared facet)."""
    Ap, cp_, vp = _normalised(hp)
    Aq, cq, vq = _normalised(hq)
    D = hp.dim
    rows_p = vp & (np.arange(hp.n_bits) != k)
    rows_q = vq & (np.arange(hq.n_bits) != k)
    A_ub = np.vstack([np.hstack([Ap[rows_p], np.ones((rows_p.sum(), 1))]), np.hstack([Aq[rows_q], np.ones((rows_q.sum(), 1))])])
    b_ub = np.r_[cp_[rows_p], cq[rows_q]]
    A_eq = np.hstack([Ap[k], [0.0]])[None, :]
    res = linprog(np.r_[np.zeros(D), -1.0], A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=[cp_[k]], bounds=[(-50, 50)] * D + [(None, 1.0)], method="highs")
    return -res.fun if res.status == 0 else -np.inf


def test_active_flips_are_neighbours_and_inactive_flips_are_not():
    net = _net([2, 8, 8, 3], seed=5)
    x = np.array([0.2, -0.1])
    h = hrep_at(net, x)
    a = active_bits(h, interior=x)
    nb = neighbours(net, h, a, box=(-50, 50), chebyshev_check=True)
    assert nb.verified.all() and np.all(nb.radius > 1e-9)
    np.testing.assert_array_equal(patterns_of(net, nb.points), nb.patterns)
    assert np.all(hamming(nb.patterns, h.pattern) == 1)
    for k in range(h.n_bits):
        flipped = h.pattern.copy()
        flipped[k] ^= True
        hq = hreps_from_patterns(net, flipped)[0]
        margin = _adjacency_margin(h, hq, k)
        if k in a.bits:
            assert margin > 1e-7
        else:
            assert margin <= 1e-9 or chebyshev(hq, box=(-50, 50)).radius <= 1e-9


def test_chebyshev_ball_inside_region_and_touching():
    net = _net([3, 10, 10, 3], seed=2)
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.3, 0.3, 3)
    h = hrep_at(net, x)
    box = (-1.0, 1.0)
    cb = chebyshev(h, box=box)
    assert cb.radius > 0
    u = rng.standard_normal((2000, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    ball = cb.centre + (1 - 1e-9) * cb.radius * u
    assert np.all(h.contains(ball, tol=0)) and np.all(np.abs(ball) <= 1.0)
    assert np.all(np.all(patterns_of(net, ball) == h.pattern, axis=1))
    An, cn, v = _normalised(h)
    gaps = np.r_[(cn - An @ cb.centre)[v], 1 - cb.centre, cb.centre + 1]
    assert abs(gaps.min() - cb.radius) < 1e-9  # the ball touches a wall: it cannot grow
    # same optimum from the active rows only
    a = active_bits(h, interior=cb.centre, box=box)
    assert abs(chebyshev(h, box=box, rows=a.bits).radius - cb.radius) < 1e-9


def test_boundary_distance_is_exact_by_sampling():
    net = _net([2, 10, 10, 3], seed=4)
    x = np.array([0.1, 0.05])
    h = hrep_at(net, x)
    d, k = boundary_distance(h, x)
    ang = np.linspace(0, 2 * np.pi, 20000, endpoint=False)
    circ = np.stack([np.cos(ang), np.sin(ang)], 1)
    assert np.all(np.all(patterns_of(net, x + d * (1 - 1e-7) * circ) == h.pattern, axis=1))
    assert not np.all(np.all(patterns_of(net, x + d * (1 + 1e-3) * circ) == h.pattern, axis=1))
    foot = x + d * h.A[k] / np.linalg.norm(h.A[k])
    assert abs((h.c - h.A @ foot)[k]) < 1e-10 and h.contains(foot)


def test_min_perturbation_closed_form_linear_net():
    net = _net([3, 4], seed=0)  # no hidden layer: one region, f affine
    x = np.array([0.3, -0.2, 0.5])
    h = hrep_at(net, x)
    assert h.n_bits == 0
    f = h.logits(x)
    i = int(np.argmax(f))
    closed = min((f[i] - f[j]) / np.linalg.norm(h.W[i] - h.W[j]) for j in range(4) if j != i)
    r = min_region_perturbation(h, x)
    assert r.exists and abs(r.distance - closed) < 1e-6
    z = x + r.delta
    fz = h.logits(z)
    assert abs(fz[i] - fz[r.target]) < 1e-6 and fz[i] >= fz.max() - 1e-6


def test_min_perturbation_matches_dense_sampling_in_2d():
    torch.manual_seed(0)
    net = _net([2, 6, 3], seed=11)
    g = np.linspace(-2, 2, 401)
    X = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    P = patterns_of(net, X)
    with torch.no_grad():
        lab = net(torch.as_tensor(X, dtype=torch.float32)).argmax(1).numpy()
    checked = 0
    for x in np.random.default_rng(2).uniform(-1.5, 1.5, (12, 2)):
        h = hrep_at(net, x)
        r = min_region_perturbation(h, x, box=(-2, 2))
        i = int(np.argmax(h.logits(x)))
        inside = np.all(P == h.pattern, axis=1) & (lab != i)
        if not inside.any():
            assert not r.exists or r.distance > 0
            continue
        brute = np.linalg.norm(X[inside] - x, axis=1).min()
        assert r.exists
        assert r.distance <= brute + 1e-6 and brute - r.distance <= 2 * 0.01 + 1e-6
        checked += 1
    assert checked >= 3


def test_min_perturbation_working_set_equals_full_qp():
    """Constraint generation (default) against one cvxpy QP on every row: same per-class distances,
    same infeasible classes, same target; including a tight box (most classes infeasible) and
    hyperplane projections that violate many rows (several rounds)."""
    net = _net([6, 24, 24, 5], seed=4)
    rng = np.random.default_rng(5)
    X = rng.uniform(-1, 1, (8, 6))
    hs = hreps_from_patterns(net, patterns_of(net, X))
    rounds = 0
    for h, x in zip(hs, X):
        An, cn, valid = _normalised(h)
        f = h.logits(x)
        i = int(np.argmax(f))
        for j in range(5):  # the closed-form hyperplane projection leaves the region?
            if j != i:
                wd = h.W[i] - h.W[j]
                d0 = -(f[i] - f[j]) / (wd @ wd) * wd
                rounds += int(np.any(An[valid] @ (x + d0) > cn[valid] + 1e-9))
        for box in (None, (-1.5, 1.5), (x - 0.05, x + 0.05)):
            a = min_region_perturbation(h, x, box=box)
            b = min_region_perturbation(h, x, box=box, method="full")
            assert a.method == "working-set" and b.method == "full"
            assert np.array_equal(np.isfinite(a.per_class), np.isfinite(b.per_class)) and a.target == b.target
            fin = np.isfinite(b.per_class)
            np.testing.assert_allclose(a.per_class[fin], b.per_class[fin], atol=1e-6)
            if a.exists:
                z = x + a.delta
                assert h.contains(z, tol=1e-6)
                fz = h.logits(z)
                assert fz[a.target] >= fz[i] - 1e-6
    assert rounds > 10  # the working set really had rows to add
    with pytest.raises(SplineAtlasError, match="QP method"):
        min_region_perturbation(hs[0], X[0], method="simplex")


def test_line_walk_crossings_match_forward_passes():
    net = _net([2, 12, 12, 3], seed=7)
    a, b = np.array([-1.5, -1.0]), np.array([1.3, 1.6])
    w = line_walk(net, a, b)
    assert w.t[0] == 0 and w.t[-1] == 1 and np.all(np.diff(w.t) > 0)
    mids = 0.5 * (w.t[:-1] + w.t[1:])
    np.testing.assert_array_equal(patterns_of(net, a + mids[:, None] * (b - a)), w.patterns)
    for j, t in enumerate(w.crossings):
        eps = 1e-9 * max(1.0, t)
        p0, p1 = patterns_of(net, np.array([a + (t - eps) * (b - a), a + (t + eps) * (b - a)]))
        np.testing.assert_array_equal(np.flatnonzero(p0 != p1), w.flipped[j])
    # dense sampling sees the same number of pattern changes
    ts = np.linspace(0, 1, 100001)
    P = patterns_of(net, a + ts[:, None] * (b - a))
    assert 1 + np.count_nonzero(np.any(P[1:] != P[:-1], axis=1)) == w.n_regions
    # the bisection (Algorithm 2) visits a subsequence of the exact walk's regions
    bis = bisection_walk(net, a, b)
    keys = [p.tobytes() for p in w.patterns]
    pos = [keys.index(p.tobytes()) for p in bis.patterns]
    assert pos == sorted(pos) and pos[0] == 0 and pos[-1] == len(keys) - 1
    assert len(bis.patterns) <= w.n_regions


def test_enumeration_equals_dense_sampling_2d():
    net = _net([2, 8, 8, 3], seed=1)
    box = (-1.0, 1.0)
    e = enumerate_regions(net, box)
    keys = {p.tobytes() for p in e.patterns}
    assert len(keys) == e.n_regions
    np.testing.assert_array_equal(patterns_of(net, e.points), e.patterns)
    np.testing.assert_array_equal(patterns_of(net, e.centres), e.patterns)
    g = np.linspace(-1, 1, 601)[1:-1]  # spacing 1/300: every ball of radius > 0.004 holds a grid point
    X = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    sampled = {p.tobytes() for p in patterns_of(net, X)}
    assert sampled <= keys
    big = {p.tobytes() for p, r in zip(e.patterns, e.radii) if r > 0.004}
    assert big <= sampled
    # adjacency pairs differ in exactly one bit
    assert np.all(hamming(e.patterns[e.adjacency[:, 0]], e.patterns[e.adjacency[:, 1]]) == 1)


def test_enumeration_3d_input():
    net = _net([3, 6, 6, 2], seed=2)
    e = enumerate_regions(net, (-1.0, 1.0))
    rng = np.random.default_rng(0)
    sampled = {p.tobytes() for p in patterns_of(net, rng.uniform(-1, 1, (50000, 3)))}
    keys = {p.tobytes() for p in e.patterns}
    assert sampled <= keys
    np.testing.assert_array_equal(patterns_of(net, e.centres), e.patterns)
    assert {p.tobytes() for p, r in zip(e.patterns, e.radii) if r > 0.1} <= sampled


def test_dual_points_are_jacobians_and_self_map_is_identity():
    net = _net([2, 8, 8, 3], seed=0)
    X = np.random.default_rng(0).uniform(-1, 1, (40, 2))
    C = dual_points(net, X)
    n64 = net.to_dtype_device(torch.float64)
    J = torch.func.vmap(torch.func.jacrev(lambda v: n64(v[None])[0]))(torch.as_tensor(X)).detach().numpy()
    np.testing.assert_allclose(C[:, :, :2], J, atol=1e-10)
    with torch.no_grad():
        out = n64(torch.as_tensor(X)).detach().numpy()
    np.testing.assert_allclose(np.einsum("ncd,nd->nc", C, np.hstack([X, np.ones((40, 1))])), out, atol=1e-10)
    y = out.argmax(1)
    m = map_between(net, net, X, X, y)
    assert m.acc_net1 == m.acc_net2 == m.acc_mapped == 1.0 and m.residual < 1e-8
    gd = grid_dual(net, (-1, 1), resolution=41)
    assert gd.counts.sum() == 41 * 41 and len(gd.duals) == len(np.unique(np.packbits(gd.patterns, axis=1), axis=0))


def test_statistics_helpers():
    net = _net([2, 8, 8, 3], seed=0)
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (30, 2))
    y = (X[:, 0] > 0).astype(int)
    assert np.all(hamming_at_distance(net, X, 0.0, samples=2) == 0)
    hd = hamming_at_distance(net, X, 0.5, samples=3)
    assert hd.shape == (30, 3) and hd.max() > 0
    acc = nearest_neighbour_agreement(net, X, y)
    assert 0.0 <= acc["euclidean"] <= 1.0 and 0.0 <= acc["hamming"] <= 1.0
    st = region_stats(net, {"train": X[:5], "test": X[5:8]}, box=(-1.5, 1.5))
    assert list(st.summary()) == ["train", "test"] and np.all(st.radius > 0) and np.all(st.active > 0)
    ham, nreg = walk_counts(net, X[:4], X[4:8])
    assert np.all(nreg >= 1) and np.all(nreg - 1 >= (ham > 0))


def test_describe_region_report_is_consistent():
    net = _net([2, 8, 8, 3], seed=0)
    x = np.array([0.25, -0.4])
    r = describe_region(net, x, box=(-2, 2), check_neighbours=True)
    js = r.to_json()
    assert js["active_count"] == len(js["neighbours"]) == r.active.count
    assert all(n["verified"] for n in js["neighbours"])
    assert 0 < r.chebyshev.radius and r.boundary_distance > 0


def test_dual_over_epochs_and_clustering():
    from geometry.regions import cluster_accuracy, dual_over_epochs

    nets = [_net([2, 6, 6, 3], seed=s) for s in range(3)]

    class _Run:
        epochs = [0, 5, 9]

        def network(self, i):
            return nets[i]

    X = np.random.default_rng(1).uniform(-1, 1, (25, 2))
    mo = dual_over_epochs(_Run(), X)
    assert mo.duals.shape == (3, 25, 3, 3) and list(mo.epochs) == [0, 5, 9]
    for e in range(3):
        np.testing.assert_allclose(mo.duals[e], dual_points(nets[e], X))
        assert mo.n_regions[e] == len(np.unique(np.packbits(patterns_of(nets[e], X), axis=1), axis=0))
    # k-means with as many clusters as distinct maps reproduces the network exactly (closed form)
    with torch.no_grad():
        y = nets[0](torch.as_tensor(X, dtype=torch.float32)).argmax(1).numpy()
    k = mo.n_regions[0]
    assert cluster_accuracy(nets[0], X, X, y, k=int(k)) == 1.0


def test_region_qp_equals_deepfool_on_one_region_net():
    """On an affine net (one region) DeepFool's linearised step is exact up to its small extra push (the reference
    implementation adds 1e-4 to each step): same direction, distance equal to ~1e-4 relative."""
    from geometry.boundary.deepfool import deepfool

    net = _net([4, 3], seed=5)
    X = np.random.default_rng(3).standard_normal((6, 4))
    df = deepfool(net, X, overshoot=0.0)
    for x, r in zip(X, df.perturbation):
        q = min_region_perturbation(hrep_at(net, x), x)
        nr = np.linalg.norm(r)
        assert q.exists and q.distance <= nr + 1e-7 and nr - q.distance < 2e-4 * max(1.0, q.distance)
        assert q.delta @ r / (q.distance * nr) > 1 - 1e-6


@pytest.mark.parametrize("widths, seed", [([2, 12, 12, 3], 4), ([3, 8, 8, 2], 5)], ids=["2d", "3d"])
def test_enumeration_by_qhull_equals_the_lp_traversal(widths, seed):
    """The low-dimensional path (Qhull facets, batched steps, Chebyshev centres as the best vertex of each
    facet LP) finds the same regions, facets and adjacency as the per-region LP traversal, and its radii
    are the Chebyshev LP's over all rows."""
    net = _net(widths, seed=seed)
    box = (-1.0, 1.0)
    fast, slow = enumerate_regions(net, box, method="qhull"), enumerate_regions(net, box, method="lp")
    key = lambda e: {p.tobytes(): i for i, p in enumerate(e.patterns)}  # noqa: E731
    kf, ks = key(fast), key(slow)
    assert kf.keys() == ks.keys() and fast.n_regions > 50
    order = np.array([ks[p.tobytes()] for p in fast.patterns])
    np.testing.assert_array_equal(slow.active_counts[order], fast.active_counts)
    pairs = lambda e, o: {tuple(sorted((o[a], o[b]))) for a, b in e.adjacency}  # noqa: E731
    assert pairs(fast, order) == pairs(slow, np.arange(slow.n_regions))
    np.testing.assert_array_equal(patterns_of(net, fast.points), fast.patterns)
    np.testing.assert_array_equal(patterns_of(net, fast.centres), fast.patterns)
    lo, hi = np.full(widths[0], -1.0), np.full(widths[0], 1.0)
    for r, h in enumerate(hreps_from_patterns(net, fast.patterns)):
        ref = chebyshev(h, box=(lo, hi))
        assert abs(ref.radius - fast.radii[r]) <= 1e-9 * (1 + ref.radius), r
        An, cn, valid = _normalised(h)
        dist = np.concatenate([(cn - An @ fast.centres[r])[valid], fast.centres[r] - lo, hi - fast.centres[r]])
        assert dist.min() >= fast.radii[r] - 1e-9  # the ball fits
    with pytest.raises(SplineAtlasError, match="method"):
        enumerate_regions(net, box, method="simplex")
