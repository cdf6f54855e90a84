"""Local data matrix and leaf paths: brute-force checks against dense G and independent autograd Jacobians."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from geometry.networks.datasets import builtin_dataset
from geometry.errors import CancelledError, DatasetError, SplineAtlasError
from geometry.foliation.leaf_paths import REACHED, STAGNATED, horizontal_paths, normal_paths, random_directions
from geometry.foliation.local_data_matrix import dense_local_data_matrix, local_data_matrix, log_prob_jacobian, row_space, trace_over_run
from geometry.networks.network import Network
from geometry.networks.spec import digits_cnn_spec, mlp_spec, validate_spec


def _train(net, X, y, steps, lr=1e-2, batch=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.as_tensor(X, dtype=torch.float32)
    y = torch.as_tensor(y, dtype=torch.int64)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        net.train()
        for _ in range(steps):
            idx = torch.randint(0, len(X), (min(batch, len(X)),), generator=g)
            opt.zero_grad()
            nn.functional.cross_entropy(net(X[idx]), y[idx]).backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
        net.eval()
    return net


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits():
    return builtin_dataset("digits")


@pytest.fixture(scope="module")
def digits_mlp(digits):
    torch.manual_seed(0)
    net = _train(Network(mlp_spec([64, 32, 32, 10])), digits.X_train, digits.y_train, steps=150)
    acc = (net(torch.as_tensor(digits.X_test)).argmax(1).numpy() == digits.y_test).mean()
    assert acc > 0.8, acc
    return net


def _indep_jacobian(net, x):
    """(C, D) Jacobian of log_softmax at one point, by torch.autograd.functional.jacobian (float64)."""
    m = net.to_dtype_device(torch.float64)

    def f(z):
        return torch.log_softmax(m(z[None]), 1)[0]

    return torch.autograd.functional.jacobian(f, torch.as_tensor(x, dtype=torch.float64)).numpy()


def _row_residual(J: np.ndarray, s: np.ndarray) -> float:
    """||s − P_row(J) s|| by numpy least squares (independent of the engine's projection)."""
    coef, *_ = np.linalg.lstsq(J.T, s, rcond=None)
    return float(np.linalg.norm(s - J.T @ coef))


def test_jacobian_methods_agree_with_autograd_functional():
    torch.manual_seed(1)
    specs = [
        digits_cnn_spec(channels=2, hidden=8),
        mlp_spec([5, 7, 7, 4], activation="leaky_relu"),
        mlp_spec([3, 6, 1]),
        validate_spec(
            {
                "input_shape": [1, 6, 6],
                "layers": [
                    {"type": "conv2d", "in_channels": 1, "out_channels": 3, "kernel_size": 3},
                    {"type": "relu"},
                    {"type": "maxpool2d", "kernel_size": 2},
                    {"type": "flatten"},
                    {"type": "residual", "body": [{"type": "linear", "in_features": 12, "out_features": 12}, {"type": "abs"}]},
                    {"type": "linear", "in_features": 12, "out_features": 3},
                    {"type": "softplus"},
                    {"type": "linear", "in_features": 3, "out_features": 3},
                ],
            }
        ),
        validate_spec(
            {
                "input_shape": [1, 7, 7],
                "layers": [  # odd size: pooling drops a row/column
                    {"type": "conv2d", "in_channels": 1, "out_channels": 2, "kernel_size": 3, "padding": 1},
                    {"type": "relu"},
                    {"type": "avgpool2d", "kernel_size": 2},
                    {"type": "flatten"},
                    {"type": "linear", "in_features": 18, "out_features": 4},
                ],
            }
        ),
        validate_spec(
            {
                "input_shape": [1, 8, 8],
                "layers": [  # strided first conv (col2im route)
                    {"type": "conv2d", "in_channels": 1, "out_channels": 3, "kernel_size": 3, "stride": 2},
                    {"type": "relu"},
                    {"type": "flatten"},
                    {"type": "linear", "in_features": 27, "out_features": 3},
                ],
            }
        ),
    ]
    for spec in specs:
        net = Network(spec).to_dtype_device(torch.float64)
        X = torch.randn(4, net.input_dim, dtype=torch.float64)
        ref = np.stack([_indep_jacobian(net, x) if net.output_dim > 1 else None for x in X]) if net.output_dim > 1 else None
        outs = {m: log_prob_jacobian(net, X, m, with_patterns=True) for m in ("backprop", "vjp", "loop", "jacrev")}
        for m, o in outs.items():
            if ref is not None:
                np.testing.assert_allclose(o.jacobian.numpy(), ref, atol=1e-10, err_msg=m)
            np.testing.assert_allclose(o.jacobian.numpy(), outs["loop"].jacobian.numpy(), atol=1e-10, err_msg=m)
        tr = net.trace(X)
        for a, b in zip(outs["backprop"].patterns, tr.patterns):
            assert torch.equal(a, b)
    # single-logit binary net: J rows are ∇ log(1−σ(s)) and ∇ log σ(s)
    net = Network(mlp_spec([3, 6, 1])).to_dtype_device(torch.float64)
    X = torch.randn(3, 3, dtype=torch.float64)
    lj = log_prob_jacobian(net, X)
    s = net(X)[:, 0].detach()
    gs = torch.stack([torch.autograd.functional.jacobian(lambda z: net(z[None])[0, 0], x) for x in X])
    np.testing.assert_allclose(lj.jacobian[:, 1].numpy(), ((1 - torch.sigmoid(s))[:, None] * gs).numpy(), atol=1e-12)
    np.testing.assert_allclose(lj.jacobian[:, 0].numpy(), (-torch.sigmoid(s)[:, None] * gs).numpy(), atol=1e-12)


def test_local_data_matrix_matches_dense_G_and_rank_bound(digits_mlp, digits):
    rng = np.random.default_rng(0)
    X = np.concatenate([digits.X_test[:20], rng.uniform(-1, 2, (20, 64))]).astype(np.float64)
    ldm = local_data_matrix(digits_mlp, X, keep_jacobian=True)
    G = dense_local_data_matrix(digits_mlp, X)  # (N, 64, 64), independent route
    np.testing.assert_allclose(ldm.trace, np.trace(G, axis1=1, axis2=2), rtol=1e-9, atol=1e-12)
    ev_dense = np.sort(np.linalg.eigvalsh(G), axis=1)[:, ::-1]
    np.testing.assert_allclose(ldm.eigenvalues, ev_dense[:, :10], atol=1e-9 * ev_dense[:, :1].max())
    assert (ev_dense[:, 10:] < 1e-9 * ev_dense[:, :1]).all()  # nothing beyond the C×C spectrum
    C = 10
    assert (ldm.rank <= C - 1).all() and (ldm.jacobian_rank <= C - 1).all()
    for g in G:  # numpy's own rank of the dense matrix
        assert np.linalg.matrix_rank(g, tol=1e-8 * np.abs(g).max()) <= C - 1
    assert (ldm.jacobian_rank == C - 1).mean() > 0.9  # generic points: the bound is attained
    # probabilities weighted rows sum to zero (their eq. 4)
    np.testing.assert_allclose(np.einsum("nc,ncd->nd", ldm.probs, ldm.jacobian), 0, atol=1e-10)


def test_row_space_is_robust_to_rank_deficiency():
    torch.manual_seed(0)
    B = torch.randn(6, 3, 40, dtype=torch.float64)
    mix = torch.randn(6, 5, 3, dtype=torch.float64)
    J = mix @ B  # (6, 5, 40) of rank 3
    J[0] = 0.0  # and one zero matrix
    for method in ("gram", "svd"):
        rs = row_space(J, method=method)
        assert rs.rank.tolist() == [0, 3, 3, 3, 3, 3]
        Q = rs.basis.numpy()
        for i in range(1, 6):
            q = Q[i][: int(rs.rank[i])]
            np.testing.assert_allclose(q @ q.T, np.eye(3), atol=1e-10)
        r = torch.randn(6, 40, dtype=torch.float64)
        pr = rs.project(r).numpy()
        for i in range(1, 6):
            coef, *_ = np.linalg.lstsq(J[i].numpy().T, r[i].numpy(), rcond=None)
            np.testing.assert_allclose(pr[i], J[i].numpy().T @ coef, atol=1e-9)
        np.testing.assert_allclose(pr[0], 0)


def _graded(n, c, d, svals, seed=0):
    """(n, c, d) float64 matrices U diag(svals) Vᵀ with random orthonormal U, V (singular values known)."""
    g = torch.Generator().manual_seed(seed)
    U, _ = torch.linalg.qr(torch.randn(n, c, c, dtype=torch.float64, generator=g))
    V, _ = torch.linalg.qr(torch.randn(n, d, c, dtype=torch.float64, generator=g))
    S = torch.zeros(c, dtype=torch.float64)
    S[: len(svals)] = torch.tensor(svals, dtype=torch.float64)
    return U @ torch.diag(S) @ V.transpose(1, 2)


@pytest.mark.parametrize("method", ["svd", "gram"])
@pytest.mark.parametrize("case", ["graded", "graded_rank_deficient", "duplicate_row"])
def test_row_space_projection_with_graded_singular_values_matches_lstsq(method, case):
    # singular values 1, 1e-3, 1e-6 (J Jᵀ: 1 .. 1e-12, so a plain Gram route is off-orthonormal by ~1e-4)
    if case == "graded":
        J, rank = _graded(4, 3, 30, [1.0, 1e-3, 1e-6]), 3
    elif case == "graded_rank_deficient":  # a 4th singular value that is exactly zero
        J, rank = _graded(4, 4, 30, [1.0, 1e-3, 1e-6, 0.0], seed=1), 3
    else:  # exactly rank deficient: row 3 is a copy of row 0
        J = _graded(4, 4, 30, [1.0, 1e-3, 1e-6, 1e-2], seed=2)
        J[:, 3] = J[:, 0]
        rank = 3
    rs = row_space(J, method=method)
    assert rs.rank.tolist() == [rank] * 4
    Q = rs.basis.numpy()
    r = np.random.default_rng(0).standard_normal((4, 30))
    pr = rs.project(torch.as_tensor(r)).numpy()
    for i in range(4):
        q = Q[i][:rank]
        np.testing.assert_allclose(q @ q.T, np.eye(rank), atol=1e-12)
        assert np.abs(Q[i][rank:]).max(initial=0.0) == 0.0
        Ji = J[i].numpy()
        coef, *_ = np.linalg.lstsq(Ji.T, r[i], rcond=None)  # min ||Jᵀ c − r||: Jᵀ c is the projection
        np.testing.assert_allclose(pr[i], Ji.T @ coef, atol=1e-8)
        np.testing.assert_allclose(pr[i], np.linalg.pinv(Ji, rcond=1e-9) @ (Ji @ r[i]), atol=1e-8)
        # the residual is orthogonal to every row of J
        np.testing.assert_allclose(Ji @ (r[i] - pr[i]), 0.0, atol=1e-12)


def test_path_projection_choice(digits_mlp, digits):
    X = digits.X_test
    kw = dict(step_size=0.1, max_steps=6, record_every=1)
    a = horizontal_paths(digits_mlp, X[:2], X[2:4], projection="svd", **kw)
    b = horizontal_paths(digits_mlp, X[:2], X[2:4], projection="gram", **kw)
    assert a.settings["projection"] == "svd" and b.settings["projection"] == "gram"
    np.testing.assert_allclose(a.points, b.points, atol=1e-8)
    n = normal_paths(digits_mlp, X[:2], steps=4, projection="gram", seed=1)
    assert n.settings["projection"] == "gram" and np.all(np.abs(n.step_angle - 90) < 1e-3)
    with pytest.raises(SplineAtlasError, match="projection"):
        horizontal_paths(digits_mlp, X[:1], X[1:2], projection="qr", max_steps=1)


def test_horizontal_steps_lie_in_row_space_and_normal_steps_are_orthogonal(digits_mlp, digits):
    X = digits.X_test
    hp = horizontal_paths(digits_mlp, X[:3], X[3:6], step_size=0.1, max_steps=12, record_every=1)
    npth = normal_paths(digits_mlp, X[:3], step_size=0.1, steps=12, record_every=1, seed=3)
    for lp, tangent in ((hp, True), (npth, False)):
        for i in range(3):
            n = int(lp.num_steps[i])
            assert n >= 3
            P = lp.points[i]
            for t in range(n):
                step = P[t + 1] - P[t]
                J = _indep_jacobian(digits_mlp, P[t])
                if tangent:
                    assert _row_residual(J, step) <= 1e-8 * np.linalg.norm(step)
                else:  # orthogonal to every ∇ log p_i
                    assert np.abs(J @ step).max() <= 1e-8 * np.linalg.norm(J) * np.linalg.norm(step)
                assert np.linalg.norm(step) == pytest.approx(lp.step_length[i, t], rel=1e-9)
            ang = lp.step_angle[i, :n]
            assert (ang < 1e-3).all() if tangent else (np.abs(ang - 90) < 1e-3).all()


def test_normal_path_keeps_the_prediction(digits_mlp, digits):
    """Their eq. (8): along ker G the output distribution does not change to second order."""
    X = digits.X_test[:8]
    lp = normal_paths(digits_mlp, X, step_size=0.02, steps=25)
    # and a random (non-projected) walk of the same length for contrast
    assert (lp.predicted == lp.predicted[:, :1]).all()
    dp_normal = np.abs(lp.probs[:, 1:] - lp.probs[:, :-1]).max(-1)  # (N, T)
    # per-step change is tiny unless an activation region was crossed (logit differences are
    # exactly constant along ker J inside one linear region)
    same_region = lp.pattern_changes.sum(-1) == 0
    assert same_region.any()
    assert dp_normal[same_region].max() < 1e-5
    W = random_directions(len(X), 64, seed=9)
    net64 = digits_mlp.to_dtype_device(torch.float64)
    with torch.no_grad():
        p0 = torch.softmax(net64(torch.as_tensor(X, dtype=torch.float64)), 1)
        p1 = torch.softmax(net64(torch.as_tensor(X + 0.02 * W, dtype=torch.float64)), 1)
    assert (p1 - p0).abs().max(1).values.median() > 10 * np.median(dp_normal[:, 0])


def test_horizontal_path_reaches_a_destination_on_its_leaf(digits_mlp, digits):
    """Destinations on the source's leaf piece (x + row(J), same linear region) are reached exactly."""
    X = digits.X_test[:6].astype(np.float64)
    net64 = digits_mlp.to_dtype_device(torch.float64)
    lj = log_prob_jacobian(net64, torch.as_tensor(X), with_patterns=True)
    rs = row_space(lj.jacobian)
    w = rs.project(torch.as_tensor(random_directions(6, 64, seed=4))).numpy()
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    dest = X.copy()
    for i in range(6):  # longest move (≤ 1) along the leaf that stays in the source's linear region
        for r in (1.0, 0.5, 0.25, 0.12, 0.06, 0.03):
            pats = net64.trace(torch.as_tensor(X[i] + r * w[i])[None]).patterns
            if all(torch.equal(p[0], q[i]) for p, q in zip(pats, lj.patterns)):
                dest[i] = X[i] + r * w[i]
                break
    moved = np.linalg.norm(dest - X, axis=1) > 0
    assert moved.sum() >= 4
    lp = horizontal_paths(digits_mlp, X[moved], dest[moved], step_size=0.05, max_steps=100, tol=1e-9)
    assert (lp.status == REACHED).all(), [lp.status_name(i) for i in range(len(lp))]
    assert (np.linalg.norm(lp.final_points - dest[moved], axis=1) <= 1e-9).all()
    steps_needed = np.ceil(np.linalg.norm(dest[moved] - X[moved], axis=1) / 0.05)
    assert (lp.num_steps <= steps_needed + 1).all()


def test_digit_to_digit_paths_descend_and_report_their_end(digits_mlp, digits):
    """Between two real digits the greedy descent never increases ||d − x|| and ends with an honest
    status: reached, or stagnated short of d (piecewise-flat leaves), never silently at the budget."""
    lp = horizontal_paths(digits_mlp, digits.X_test[:6], digits.X_test[6:12], step_size=0.1, max_steps=400)
    for i in range(6):
        n = int(lp.num_steps[i])
        d = lp.distance[i, : n + 1]
        assert (np.diff(d) <= 1e-12).all()
        assert lp.status_name(i) in ("reached", "stagnated")
        if lp.status_name(i) == "stagnated":
            assert d[-1] > lp.settings["tol"][i] and d[-1] < d[0]
        assert lp.summary(i)["class_sequence"][0]["class"] == int(lp.predicted[i, 0])


def test_noisy_start_stagnates_and_is_reported(digits_mlp, digits):
    """Their Fig. 6: a start pushed across leaves (normal path) cannot come back to a clean digit."""
    X = digits.X_test[:4]
    noisy = normal_paths(digits_mlp, X, step_size=0.2, steps=15, seed=5).final_points
    lp = horizontal_paths(digits_mlp, noisy, X, step_size=0.05, max_steps=600, stagnation_window=50)
    assert (lp.status == STAGNATED).all()
    assert (lp.distance[np.arange(4), lp.num_steps] > 0.5).all()
    assert (lp.num_steps < 600).all()


def test_batched_paths_equal_one_at_a_time(digits):
    torch.manual_seed(2)
    cnn = Network(digits_cnn_spec(channels=2, hidden=8))
    smooth = Network(mlp_spec([64, 16, 10], activation="tanh"))
    S, Dst = digits.X_test[:4], digits.X_test[4:8]
    # (RK4 on a ReLU net near a stall point normalises a rounding-level vector: compare it on a smooth net)
    for rk, T, net in (("euler", 12, cnn), ("rk4", 4, smooth)):
        both = horizontal_paths(net, S, Dst, step_size=0.1, max_steps=T, integrator=rk, stagnation_window=3)
        for i in range(4):
            one = horizontal_paths(net, S[i], Dst[i], step_size=0.1, max_steps=T, integrator=rk, stagnation_window=3)
            n = int(one.num_steps[0])
            assert n == both.num_steps[i] and one.status[0] == both.status[i]
            np.testing.assert_allclose(one.final_points[0], both.final_points[i], atol=1e-10)
            np.testing.assert_allclose(one.distance[0, : n + 1], both.distance[i, : n + 1], atol=1e-10)
            np.testing.assert_allclose(one.trace[0, : n + 1], both.trace[i, : n + 1], rtol=1e-8)
            assert (one.pattern_changes[0, :n] == both.pattern_changes[i, :n]).all()
    wn = random_directions(4, 64, seed=1)
    nb = normal_paths(cnn, S, wn, steps=10)
    n0 = normal_paths(cnn, S[2], wn[2], steps=10)
    np.testing.assert_allclose(n0.points[0], nb.points[2], atol=1e-10)


def test_one_step_size_per_path_equals_each_path_on_its_own(digits):
    """A batch with a step size per path (the window batches clicked paths of different lengths) traces
    every path exactly as alone; a wrong number of step sizes is one clear error."""
    torch.manual_seed(3)
    net = Network(digits_cnn_spec(channels=2, hidden=8))
    S, Dst = digits.X_test[:3], digits.X_test[3:6]
    alphas = np.array([0.05, 0.1, 0.2])
    both = horizontal_paths(net, S, Dst, step_size=alphas, max_steps=15, stagnation_window=4)
    assert both.settings["step_size"] == alphas.tolist()
    for i, a in enumerate(alphas):
        one = horizontal_paths(net, S[i], Dst[i], step_size=float(a), max_steps=15, stagnation_window=4)
        n = int(one.num_steps[0])
        assert n == both.num_steps[i] and one.status[0] == both.status[i]
        np.testing.assert_allclose(one.distance[0, : n + 1], both.distance[i, : n + 1], atol=1e-10)
        assert np.all(both.step_length[i, :n] <= a + 1e-12)
    nb = normal_paths(net, S, random_directions(3, 64, seed=4), step_size=alphas, steps=6)
    for i, a in enumerate(alphas):
        np.testing.assert_allclose(nb.step_length[i, :6], a, rtol=1e-9)
    with pytest.raises(DatasetError, match="2 step sizes for 3 paths"):
        horizontal_paths(net, S, Dst, step_size=[0.1, 0.2], max_steps=2)
    with pytest.raises(SplineAtlasError, match="step_size"):
        horizontal_paths(net, S, Dst, step_size=[0.1, -1.0, 0.2], max_steps=2)


def test_rk4_tracks_the_field_more_accurately_on_a_smooth_net():
    """On a smooth net the horizontal path is an ODE; RK4 stays tangent better than Euler at the same step."""
    torch.manual_seed(0)
    net = Network(mlp_spec([6, 16, 4], activation="tanh")).to_dtype_device(torch.float64)
    s = torch.randn(2, 6, dtype=torch.float64).numpy()
    d = s + 3 * random_directions(2, 6, seed=1)
    fine = horizontal_paths(net, s, d, step_size=0.005, max_steps=100, stop_on_stagnation=False, clip_steps=False)
    e = horizontal_paths(net, s, d, step_size=0.25, max_steps=2, stop_on_stagnation=False, clip_steps=False)
    r = horizontal_paths(net, s, d, step_size=0.25, max_steps=2, integrator="rk4", stop_on_stagnation=False, clip_steps=False)
    err_e = np.linalg.norm(e.final_points - fine.final_points, axis=1)
    err_r = np.linalg.norm(r.final_points - fine.final_points, axis=1)
    assert (err_r < err_e).all()


def test_errors_and_cancel(digits_mlp, digits):
    with pytest.raises(DatasetError):
        horizontal_paths(digits_mlp, np.zeros((2, 63)), np.zeros((2, 63)))
    with pytest.raises(DatasetError):
        horizontal_paths(digits_mlp, np.zeros((2, 64)), np.zeros((3, 64)))
    with pytest.raises(CancelledError):
        horizontal_paths(digits_mlp, digits.X_test[:2], digits.X_test[2:4], cancel=lambda: True)
    lp = horizontal_paths(digits_mlp, digits.X_test[0], digits.X_test[0])  # already there
    assert lp.status[0] == REACHED and lp.num_steps[0] == 0


class _FakeRun:
    """The part of geometry.networks.runs.Run that trace_over_run uses (name, epochs, len, network(i), dataset)."""

    def __init__(self, nets, epochs):
        self._nets, self.epochs, self.name, self.dataset = nets, epochs, "fake", None

    def __len__(self):
        return len(self._nets)

    def network(self, i):
        return self._nets[i]


def test_trace_over_run_is_per_checkpoint_mean_trace(digits):
    torch.manual_seed(0)
    nets = []
    net = Network(mlp_spec([64, 16, 10]))
    for steps in (0, 30, 60):
        if steps:
            _train(net, digits.X_train, digits.y_train, steps=30)
        clone = Network(net.spec)
        clone.layers.load_state_dict(net.layers.state_dict())
        nets.append(clone.eval())
    run = _FakeRun(nets, [0, 30, 60])
    X = digits.X_test[:40]
    seen = []
    curve = trace_over_run(run, X, digits.y_test[:40], dtype=torch.float64, progress=lambda f, m: seen.append(f))
    for i, n in enumerate(nets):
        assert curve.mean_trace[i] == pytest.approx(np.trace(dense_local_data_matrix(n, X), axis1=1, axis2=2).mean(), rel=1e-9)
    assert curve.accuracy[2] > curve.accuracy[0] and seen[-1] == 1.0
    with pytest.raises(DatasetError):
        trace_over_run(run)
    with pytest.raises(CancelledError):
        trace_over_run(run, X, cancel=lambda: True)


BUNDLED_DIGITS = __import__("pathlib").Path(__file__).resolve().parents[1] / "assets" / "runs" / "digits"


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=1, keepdims=True)


@pytest.mark.skipif(not (BUNDLED_DIGITS / "run.json").exists(), reason="bundled digits run not present")
def test_bundled_digits_paths_reach_or_end_at_a_verified_local_minimum_of_the_leaf():
    """Issue 8 asks that a horizontal path between two digits of the bundled run reaches its destination.
    On this ReLU CNN it does not (see geometry/foliation/leaf_paths.py: measured on 40 pairs, every step size and
    integrator): each path ends where P_row(J)(d − x) = 0 inside a linear region, i.e. at the closest
    point to d of its flat leaf piece. This test holds the engine to that account: every path either
    reaches d, or its reported "local minimum" is verified independently (autograd Jacobian + lstsq
    projection, strict activation pattern, every nearby point of the leaf piece is farther from d), and
    the end point does not depend on the step size (not an artefact of α)."""
    from geometry.networks.runs import open_run

    run = open_run(BUNDLED_DIGITS)
    net = run.network(len(run) - 1)
    ds = run.dataset
    src, dst = ds.X_test[[0, 5]].astype(np.float64), ds.X_test[[1, 9]].astype(np.float64)
    lp = horizontal_paths(net, src, dst, step_size=0.1, max_steps=500)
    fine = horizontal_paths(net, src, dst, step_size=0.03, max_steps=1000)
    net64 = net.to_dtype_device(torch.float64)
    rng = np.random.default_rng(0)
    for i in range(len(src)):
        n = int(lp.num_steps[i])
        assert lp.distance[i, n] < lp.distance[i, 0]
        if lp.status[i] == REACHED:
            assert np.linalg.norm(lp.final_points[i] - dst[i]) <= lp.settings["tol"][i]
            continue
        assert lp.stall_kind(i) == "local minimum" and lp.summary(i)["stall"] == "local minimum"
        x = lp.final_points[i]
        r = dst[i] - x
        J = _indep_jacobian(net, x)
        assert np.linalg.norm(r) - _row_residual(J, r) <= 1e-8 * np.linalg.norm(r)  # r ⟂ row(J)
        with torch.no_grad():
            tx = net64.trace(torch.as_tensor(x)[None])
            assert min(float(p.abs().min()) for p in tx.preactivations) > 0  # strictly inside a region
            basis = np.linalg.svd(J, full_matrices=False)[2][:9]
            Z = x + 1e-4 * _unit(rng.standard_normal((8, 9)) @ basis)  # leaf-piece neighbours
            tz = net64.trace(torch.as_tensor(Z))
            assert all(bool((pz == px).all()) for pz, px in zip(tz.patterns, tx.patterns))
            assert (np.linalg.norm(dst[i] - Z, axis=1) > np.linalg.norm(r)).all()
        assert fine.status[i] != REACHED
        assert abs(fine.distance[i, fine.num_steps[i]] - lp.distance[i, n]) <= 0.02 * lp.distance[i, 0]


def test_jacobian_reuse_inside_a_region_is_exact_and_skips_backward_sweeps(digits):
    """A piecewise-affine net's logit Jacobian depends only on the activation pattern (masks, max-pool
    argmax): reusing it while a path stays in its region must give the same path as recomputing."""
    torch.manual_seed(3)
    spec = validate_spec(
        {
            "input_shape": [1, 8, 8],
            "layers": [
                {"type": "conv2d", "in_channels": 1, "out_channels": 3, "kernel_size": 3, "padding": 1},
                {"type": "relu"},
                {"type": "maxpool2d", "kernel_size": 2},
                {"type": "flatten"},
                {"type": "linear", "in_features": 48, "out_features": 12},
                {"type": "leaky_relu"},
                {"type": "linear", "in_features": 12, "out_features": 10},
            ],
        }
    )
    net = _train(Network(spec), digits.X_train, digits.y_train, steps=60)
    S, Dst = digits.X_test[:5], digits.X_test[5:10]
    kw = dict(step_size=0.1, max_steps=60, clip_steps=False, stop_on_stagnation=False, chunk_size=2)
    off = horizontal_paths(net, S, Dst, reuse_jacobian=False, **kw)
    on = horizontal_paths(net, S, Dst, **kw)  # auto: on for this net
    assert on.settings["jacobian_reuse"] and not off.settings["jacobian_reuse"]
    assert on.settings["jacobian_evaluations"] == 5 * 61
    # sweeps = first evaluation + one per region-changing step (paths oscillate inside their last region)
    changed = int((on.pattern_changes.sum(-1) > 0).sum())
    assert on.settings["jacobian_sweeps"] == 5 + changed < on.settings["jacobian_evaluations"]
    for k in ("final_points", "distance", "trace", "spectrum", "step_angle", "probs"):
        np.testing.assert_allclose(getattr(on, k), getattr(off, k), rtol=1e-9, atol=1e-10, err_msg=k)
    assert (on.pattern_changes == off.pattern_changes).all() and (on.tangent_rank == off.tangent_rank).all()
    nn_ = normal_paths(net, S, steps=20, step_size=0.05)
    assert nn_.settings["jacobian_sweeps"] < nn_.settings["jacobian_evaluations"]
    np.testing.assert_allclose(nn_.final_points, normal_paths(net, S, steps=20, step_size=0.05, reuse_jacobian=False).final_points, atol=1e-10)
    smooth = Network(mlp_spec([64, 8, 10], activation="tanh"))
    assert not horizontal_paths(smooth, S[:1], Dst[:1], max_steps=2).settings["jacobian_reuse"]
    with pytest.raises(SplineAtlasError):
        horizontal_paths(smooth, S[:1], Dst[:1], max_steps=2, reuse_jacobian=True)


def test_lean_paths_are_the_full_paths_without_the_extra_diagnostics(digits):
    """diagnostics="lean" (a click) must trace the very same paths and record the same positions, classes,
    Tr G, ranks and distances; only the spectrum, step angles and pattern changes are left out."""
    torch.manual_seed(3)
    cnn = Network(digits_cnn_spec(channels=2, hidden=8))
    S, Dst = digits.X_test[:3], digits.X_test[3:6]
    runs = [
        (horizontal_paths, (S, Dst), dict(step_size=0.1, max_steps=25, stagnation_window=5)),
        (normal_paths, (S, random_directions(3, 64, seed=4)), dict(step_size=0.1, steps=15)),
    ]
    for fn, args, kw in runs:
        full = fn(cnn, *args, record_every=1, **kw)
        lean = fn(cnn, *args, record_every=1, diagnostics="lean", **kw)
        assert lean.settings["diagnostics"] == "lean" and full.settings["diagnostics"] == "full"
        np.testing.assert_array_equal(lean.num_steps, full.num_steps)
        np.testing.assert_array_equal(lean.status, full.status)
        np.testing.assert_array_equal(lean.points, full.points)
        np.testing.assert_array_equal(lean.predicted, full.predicted)
        np.testing.assert_array_equal(lean.tangent_rank, full.tangent_rank)
        for name in ("probs", "trace", "distance", "step_length", "final_points"):
            np.testing.assert_allclose(getattr(lean, name), getattr(full, name), rtol=1e-12, atol=1e-12, err_msg=name)
        assert np.isnan(lean.spectrum).all() and np.isnan(lean.step_angle).all()
        assert lean.pattern_changes.shape[:2] == full.pattern_changes.shape[:2] and lean.pattern_changes.shape[2] == 0
        assert full.pattern_changes.shape[2] > 0 and np.isfinite(full.spectrum).all()
        s = lean.summary(0)
        assert s["region_changes"] is None and s["max_step_angle_deg"] is None
        assert s["final_distance"] == full.summary(0)["final_distance"]
    with pytest.raises(SplineAtlasError, match="diagnostics"):
        horizontal_paths(cnn, S, Dst, max_steps=2, diagnostics="none")


@pytest.mark.skipif(not (BUNDLED_DIGITS / "run.json").exists(), reason="bundled digits run not present")
def test_float32_paths_stop_at_a_local_minimum_where_float64_paths_do():
    """At a local minimum of ||d − x|| on the leaf, P(d − x) is rounding: ~1e-7·||d − x|| when the net runs
    in float32 (the window's precision). Such a path must stop there as the float64 path does, not creep
    on in 1e-7 steps until the stagnation window ends it (it took 106 steps instead of 15 so)."""
    from geometry.networks.runs import open_run

    run = open_run(BUNDLED_DIGITS)
    net = run.network(len(run) - 1)
    g = torch.Generator().manual_seed(0)
    S = torch.rand(4, 64, generator=g, dtype=torch.float64).numpy()
    D = torch.rand(4, 64, generator=g, dtype=torch.float64).numpy()
    alpha = 0.02 * np.linalg.norm(D - S, axis=1)
    p64, p32 = (horizontal_paths(net, S, D, step_size=alpha, max_steps=200, dtype=dt) for dt in (torch.float64, torch.float32))
    assert (p64.status == STAGNATED).all() and (p32.status == STAGNATED).all()
    assert [p64.stall_kind(i) for i in range(4)] == [p32.stall_kind(i) for i in range(4)] == ["local minimum"] * 4
    np.testing.assert_array_equal(p32.num_steps, p64.num_steps)
    np.testing.assert_allclose(p32.final_points, p64.final_points, atol=1e-5)
