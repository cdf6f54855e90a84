"""DeepFool: closed forms on linear classifiers, label flips with small ||r|| on a trained net."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from geometry.networks.datasets import builtin_dataset
from geometry.boundary.deepfool import deepfool
from geometry.errors import SplineAtlasError
from geometry.networks.network import Network
from geometry.networks.spec import mlp_spec


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _linear_net(W, b):
    net = Network(mlp_spec([W.shape[1], W.shape[0]])).to_dtype_device(torch.float64)
    with torch.no_grad():
        net.layers[0].weight.copy_(torch.as_tensor(W))
        net.layers[0].bias.copy_(torch.as_tensor(b))
    return net


def _trained_mlp(seed=0, widths=(2, 24, 24, 3), smooth=False, steps=250):
    torch.manual_seed(seed)
    ds = builtin_dataset("spirals", n=600, seed=seed) if widths[-1] == 3 else builtin_dataset("moons", n=400, seed=seed)
    net = Network(mlp_spec(list(widths), activation="tanh" if smooth else "relu"))
    X = torch.as_tensor(ds.X_train, dtype=torch.float32)
    y = torch.as_tensor(ds.y_train, dtype=torch.int64)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny net: threads only add contention; restored below
    try:
        net.train()
        for _ in range(steps):
            opt.zero_grad()
            nn.functional.cross_entropy(net(X), y).backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    net.eval()
    return net, ds


def test_binary_linear_matches_closed_form():
    rng = np.random.default_rng(0)
    W = rng.normal(size=(2, 5))
    b = rng.normal(size=2)
    net = _linear_net(W, b)
    x = rng.normal(size=(40, 5))
    res = deepfool(net, x, overshoot=0.0)
    w = W[1] - W[0]
    f = x @ w + (b[1] - b[0])  # f > 0 <=> class 1
    # closed form: orthogonal projection onto the hyperplane, plus the reference's 1e-4 on the step length
    expected = -(f / (w @ w) + 1e-4 * np.sign(f) / np.linalg.norm(w))[:, None] * w[None]
    assert np.allclose(res.perturbation, expected, atol=1e-10)
    assert np.all(res.iterations == 1) and np.all(res.converged)
    assert np.all(res.labels != res.original_labels)
    assert np.allclose(res.norms, np.abs(f) / np.linalg.norm(w) + 1e-4, atol=1e-12)


def test_multiclass_linear_projects_onto_nearest_hyperplane():
    rng = np.random.default_rng(1)
    W = rng.normal(size=(4, 3))
    b = rng.normal(size=4)
    net = _linear_net(W, b)
    x = rng.normal(size=(60, 3)) * 2
    res = deepfool(net, x, overshoot=0.02)
    k0 = np.argmax(x @ W.T + b, axis=1)
    for i in range(len(x)):
        # brute force: the nearest hyperplane f_k = f_k0 (the first DeepFool step is exactly this projection)
        d = [(abs((x[i] @ (W[k] - W[k0[i]])) + b[k] - b[k0[i]]) / np.linalg.norm(W[k] - W[k0[i]]), k) for k in range(4) if k != k0[i]]
        dmin, kmin = min(d)
        if res.iterations[i] == 1:
            assert res.norms[i] == pytest.approx(1.02 * (dmin + 1e-4), rel=1e-9)
            assert res.labels[i] == kmin
        # never shorter than the true minimal perturbation (distance to the class region's complement)
        assert res.norms[i] >= dmin - 1e-9
    assert res.converged.all()
    assert (res.iterations == 1).mean() > 0.8


def test_trained_net_flips_labels_with_small_perturbations(relu_net):
    net, ds = relu_net
    x = ds.X_test[:80]
    res = deepfool(net, x)
    assert res.converged.all()
    logits = net.to_dtype_device(torch.float64)(torch.as_tensor(res.perturbed, dtype=torch.float64)).argmax(1).numpy()
    assert np.array_equal(logits, res.labels)
    assert np.all(res.labels != res.original_labels)
    # small: brute force the true minimal perturbation on a dense grid (2D input): DeepFool is never
    # shorter (up to the grid step) and typically close to it
    net64 = net.to_dtype_device(torch.float64)
    g = np.linspace(-2.5, 2.5, 501)
    G = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    gl = net64(torch.as_tensor(G)).argmax(1).numpy()
    h = g[1] - g[0]
    ratios = []
    for i in range(len(x)):
        other = G[gl != res.original_labels[i]]
        bf = np.linalg.norm(other - x[i], axis=1).min()
        assert res.norms[i] >= bf - h
        ratios.append(res.norms[i] / max(bf, h))
    assert np.median(ratios) < 1.3
    # batched equals one-at-a-time
    one = [deepfool(net, x[i : i + 1]).perturbation[0] for i in range(0, 80, 16)]
    assert np.allclose(np.stack(one), res.perturbation[::16], atol=1e-10)


@pytest.fixture(scope="module")
def relu_net():
    return _trained_mlp()


def test_targeted_reaches_the_target(relu_net):
    net, ds = relu_net
    x = ds.X_test[:50]
    for t in range(3):
        res = deepfool(net, x, target=t, overshoot=0.02, max_iter=100)
        assert res.converged.mean() > 0.95
        assert np.all(res.labels[res.converged] == t)
        already = res.original_labels == t
        assert np.all(res.iterations[already] == 0) and np.allclose(res.perturbation[already], 0)
    # per-point targets
    tg = (deepfool(net, x).original_labels + 1) % 3
    res = deepfool(net, x, target=tg, max_iter=100)
    assert np.all(res.labels[res.converged] == tg[res.converged])


def test_bad_arguments_raise_typed_errors():
    net = _linear_net(np.eye(2), np.zeros(2))
    with pytest.raises(SplineAtlasError):
        deepfool(net, np.zeros((3, 5)))
    with pytest.raises(SplineAtlasError):
        deepfool(net, np.zeros((3, 2)), target=7)
    with pytest.raises(SplineAtlasError):
        deepfool(net, np.zeros((3, 2)), overshoot=-1)


def test_smooth_net_untargeted():
    net, ds = _trained_mlp(smooth=True, steps=100)
    x = ds.X_test[:40]
    res = deepfool(net, x)
    assert res.converged.all() and np.all(res.labels != res.original_labels)
    back = net.to_dtype_device(torch.float64)(torch.as_tensor(res.perturbed)).argmax(1).numpy()
    assert np.array_equal(back, res.labels)


def test_binary_single_logit_net():
    W = np.array([[1.0, -2.0, 0.5]])
    net = _linear_net(W, np.array([0.3]))
    x = np.random.default_rng(3).normal(size=(10, 3))
    res = deepfool(net, x, overshoot=0.0)
    f = x @ W[0] + 0.3
    assert np.array_equal(res.original_labels, (f > 0).astype(int))
    assert res.converged.all() and np.all(res.labels != res.original_labels)
    assert np.allclose(res.norms, np.abs(f) / np.linalg.norm(W[0]) + 1e-4, atol=1e-12)


def test_candidates_and_cancel():
    from geometry.errors import CancelledError

    rng = np.random.default_rng(4)
    W, b = rng.normal(size=(5, 3)), rng.normal(size=5)
    net = _linear_net(W, b)
    x = rng.normal(size=(30, 3))
    res = deepfool(net, x, candidates=2, overshoot=0.0)
    logits = x @ W.T + b
    runner = np.argsort(-logits, axis=1)[:, 1]
    k0 = logits.argmax(1)
    first = res.iterations == 1
    # with only the runner-up as candidate, one step lands on the hyperplane f_k0 = f_runner-up
    w = W[runner] - W[k0]
    d = np.abs(np.einsum("nd,nd->n", x, w) + b[runner] - b[k0]) / np.linalg.norm(w, axis=1)
    assert np.allclose(res.norms[first], d[first] + 1e-4, atol=1e-10)
    seen = []
    deepfool(net, x, batch_size=10, progress=lambda f, m: seen.append(f))
    assert seen == pytest.approx([1 / 3, 2 / 3, 1.0])
    with pytest.raises(CancelledError):
        deepfool(net, x, cancel=lambda: True)


def _reference_deepfool(net, x, num_classes=10, overshoot=0.02, max_iter=50):
    """The published DeepFool (Moosavi-Dezfooli et al. 2016, Algorithm 2, as in the authors' reference code),
    written out step by step for one point: the top ``num_classes`` classes of f(x), the nearest
    linearised boundary, a step of length |f'_l| / ||w_l|| + 1e-4 along w_l / ||w_l||, the label checked
    at x + (1 + overshoot) r. Returns (r with overshoot, iterations)."""
    x = torch.as_tensor(x, dtype=torch.float64)[None]
    with torch.no_grad():
        order = torch.argsort(net(x)[0], descending=True)[:num_classes]
    label = int(order[0])
    r_tot = torch.zeros_like(x)
    k_i, loops = label, 0
    while k_i == label and loops < max_iter:
        xg = (x + (1 + overshoot) * r_tot).requires_grad_(True)
        fs = net(xg)[0]
        (grad_orig,) = torch.autograd.grad(fs[order[0]], xg, retain_graph=True)
        best, w = float("inf"), None
        for k in range(1, len(order)):
            (grad_k,) = torch.autograd.grad(fs[order[k]], xg, retain_graph=True)
            w_k = grad_k - grad_orig
            f_k = (fs[order[k]] - fs[order[0]]).detach()
            pert_k = float(f_k.abs() / w_k.norm())
            if pert_k < best:
                best, w = pert_k, w_k
        r_tot = r_tot + (best + 1e-4) * w / w.norm()
        with torch.no_grad():
            k_i = int(net(x + (1 + overshoot) * r_tot)[0].argmax())
        loops += 1
    return ((1 + overshoot) * r_tot)[0].numpy(), loops


def test_matches_a_straightforward_implementation_of_the_published_algorithm_on_a_cnn():
    from geometry.networks.spec import digits_cnn_spec

    torch.manual_seed(5)
    net = Network(digits_cnn_spec()).to(torch.float64).eval()
    net.requires_grad_(False)
    x = torch.rand(12, 64, dtype=torch.float64).numpy()
    res = deepfool(net, x, candidates=10, overshoot=0.02, max_iter=50)
    for i in range(len(x)):
        r_ref, loops = _reference_deepfool(net, x[i])
        assert res.iterations[i] == loops
        assert abs(res.norms[i] - np.linalg.norm(r_ref)) < 1e-6
        np.testing.assert_allclose(res.perturbation[i], r_ref, atol=1e-6)
    assert res.converged.all() and (res.iterations > 1).any()
